//! The `lancesql` command: the embedded SQL shell, the Postgres-wire server and the importer.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use futures::FutureExt;
use lancesql::cli::args::{EngineArgs, FlightArgs, PgArgs, StoreArgs};
use lancesql::cli::import::{ImportFormat, import_file};
use lancesql::cli::output::{OutputFormat, is_closed_output};
use lancesql::cli::shell::{Shell, report};
use lancesql::flightsql::FlightSessions;
use lancesql::pgwire::PgServer;
use lancesql::pgwire::access::{AuthMethod, PgConfig, Users};
use lancesql::{Engine, EngineConfig, Error, StoreConfig};
use lancesql_flight::{FlightConfig, FlightServer, Login};

/// mimalloc reuses freed memory: with the system allocator each multi-megabyte batch (blobs,
/// vectors, a take's rows) was mapped afresh and page-faulted in, about a third of the server's
/// time per take of 32 rows of 100 KB (measured with `perf`; see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_decommits`: its place in `mi_option_e` (mimalloc.h, the same in
/// mimalloc 2 and 3); the Rust bindings name only some of the options.
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Has mimalloc give purged memory back with `MADV_FREE` instead of `MADV_DONTNEED`. Results of
/// wide rows go through tens of megabytes a batch; with `MADV_DONTNEED` each purge made the next
/// batch fault every page in afresh, zeroing it (two thirds of the server's time while the ADBC
/// PostgreSQL driver read a 1M-row table of vectors; see docs/benchmarks.md). `MADV_FREE` pages
/// stay mapped until the kernel needs the memory, so reusing them costs nothing, and the kernel
/// still reclaims them under memory pressure. Setting `MIMALLOC_PURGE_DECOMMITS` in the
/// environment keeps mimalloc's own choice.
fn purge_freed_memory_lazily() {
    if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores a value in mimalloc's option table, which may be
    // changed at any time; option 5 takes 0 or 1.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) }
}

/// SQL over Lance datasets.
#[derive(Parser, Debug)]
#[command(name = "lancesql", version, about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    engine: EngineArgs,

    /// Log filter (tracing's env-filter syntax), written to stderr.
    #[arg(long, env = "LANCESQL_LOG", default_value = "warn", global = true)]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run SQL: interactively, the statements given with -c / -f, or statements piped in.
    Sql {
        /// SQL to run (repeatable, run in order); disables the interactive prompt.
        #[arg(short = 'c', long = "command")]
        commands: Vec<String>,

        /// File of SQL statements to run (repeatable, after any -c).
        #[arg(short = 'f', long = "file")]
        files: Vec<PathBuf>,

        /// Result format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table, env = "LANCESQL_FORMAT")]
        format: OutputFormat,

        /// Most rows a table shows (the rest are counted); 0 shows all. Other formats write all.
        #[arg(long, env = "LANCESQL_MAX_ROWS", default_value_t = 1000)]
        max_rows: usize,

        /// Write the demo tables first if the data root has no tables (creating a missing local
        /// data folder).
        #[arg(long, env = "LANCESQL_DEMO_IF_EMPTY", default_value_t = false)]
        demo_if_empty: bool,
    },
    /// Serve the Postgres wire protocol (psql, drivers, BI tools) and Arrow Flight SQL (ADBC,
    /// JDBC, pyarrow) until SIGINT or SIGTERM.
    Serve {
        #[command(flatten)]
        pg: PgArgs,

        #[command(flatten)]
        flight: FlightArgs,

        /// Write the demo tables first if the data root has no tables (creating a missing local
        /// data folder).
        #[arg(long, env = "LANCESQL_DEMO_IF_EMPTY", default_value_t = false)]
        demo_if_empty: bool,
    },
    /// Create a table from a Parquet, CSV or JSON-lines file (creating a missing local data
    /// folder).
    Import {
        /// The file to read.
        file: String,
        /// The new table's name.
        table: String,
        /// The file's format.
        #[arg(long, value_enum, default_value_t = ImportFormat::Auto)]
        format: ImportFormat,
    },
}

fn main() -> ExitCode {
    purge_freed_memory_lazily();
    let cli = Cli::parse();
    lancesql::runtime::size_lance_pool(cli.engine.lance_cpu_threads);
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // A panic is a bug, but it must reach the user as one clear line: no backtrace, no source
    // path (the location goes to the debug log).
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown failure");
        tracing::error!("internal error: {message}");
        if let Some(location) = info.location() {
            tracing::debug!(%location, "where the internal error happened");
        }
    }));
    let runtime = match lancesql::runtime::build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ERROR: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match lancesql::runtime::run_on_statement_thread(&runtime, move || run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): nothing more to say.
        Ok(Err(error)) if is_closed_output(&error) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            report(&error);
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("ERROR: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let writes = match &cli.command {
        Command::Sql { demo_if_empty, .. } | Command::Serve { demo_if_empty, .. } => *demo_if_empty,
        Command::Import { .. } => true,
    };
    let store = StoreConfig::from(cli.store);
    if writes && Engine::create_local_root(&store)? {
        eprintln!("created the data folder {}", store.data);
    }
    let engine = Engine::new(&store, EngineConfig::from(cli.engine))?;
    // The servers check their access rules and bind before anything is written.
    let servers = match &cli.command {
        Command::Serve { pg, flight, .. } => Some(bind_servers(&engine, pg, flight).await?),
        _ => None,
    };
    let session = engine.session()?;
    let demo_if_empty = matches!(
        cli.command,
        Command::Sql {
            demo_if_empty: true,
            ..
        } | Command::Serve {
            demo_if_empty: true,
            ..
        }
    );
    if demo_if_empty && lancesql::cli::demo::ensure_demo_data(&session).await? {
        eprintln!(
            "wrote demo tables 'products' and 'reviews' to {}",
            engine.location()
        );
    }
    if let Some(servers) = servers {
        return serve(servers).await;
    }
    match cli.command {
        Command::Sql {
            commands,
            files,
            format,
            max_rows,
            ..
        } => {
            let shell = Shell::new(session, format, max_rows);
            let stdin = std::io::stdin();
            if commands.is_empty() && files.is_empty() && stdin.is_terminal() {
                return shell.interactive(history_path()).await;
            }
            let mut stdout = std::io::stdout().lock();
            if commands.is_empty() && files.is_empty() {
                return shell.run_piped(&mut stdin.lock(), &mut stdout).await;
            }
            for sql in &commands {
                shell.run_script(sql, &mut stdout).await?;
            }
            for file in &files {
                let sql = std::fs::read_to_string(file).map_err(|source| Error::File {
                    path: file.display().to_string(),
                    source,
                })?;
                shell.run_script(&sql, &mut stdout).await?;
            }
            stdout.flush().map_err(lancesql::cli::output::output_error)
        }
        // Served above, after the demo data was written.
        Command::Serve { .. } => Ok(()),
        Command::Import {
            file,
            table,
            format,
        } => {
            let rows = import_file(&session, &file, &table, format).await?;
            eprintln!("imported {rows} rows into {table}");
            Ok(())
        }
    }
}

/// The bound listeners of `lancesql serve`.
struct Servers {
    pg: PgServer,
    pg_config: PgConfig,
    flight: Option<(FlightServer<FlightSessions>, FlightConfig)>,
}

async fn bind_servers(engine: &Engine, pg: &PgArgs, flight: &FlightArgs) -> Result<Servers, Error> {
    let pg_config = PgConfig::from(pg.clone());
    let pg = PgServer::bind(engine.clone(), &pg_config).await?;
    let flight = match flight.config(pg_config.auth) {
        Some(config) => {
            let users = std::sync::Arc::new(Users::load(&pg_config)?);
            let sessions = FlightSessions::new(engine.clone(), users);
            let server = FlightServer::bind(sessions, &config)
                .await
                .map_err(|error| Error::invalid(format!("Flight SQL: {error}")))?;
            Some((server, config))
        }
        None => None,
    };
    Ok(Servers {
        pg,
        pg_config,
        flight,
    })
}

/// Says where the bound listeners are and how to connect, and serves until SIGINT or SIGTERM
/// (then waits for open connections and calls to finish).
async fn serve(servers: Servers) -> Result<(), Error> {
    let Servers {
        pg,
        pg_config,
        flight,
    } = servers;
    let address = pg.local_addr()?;
    let (host, port) = (address.ip(), address.port());
    let user = match &pg_config.user {
        Some((user, _)) => user.as_str(),
        None => "lancesql",
    };
    let mut conninfo = format!("host={host} port={port} dbname=lancesql user={user}");
    if pg.tls() {
        conninfo.push_str(" sslmode=require");
    }
    let mut lines = vec![
        format!("lancesql: Postgres wire protocol on {address}"),
        format!("  psql \"{conninfo}\""),
        format!(
            "  python -c \"import psycopg; print(psycopg.connect('{conninfo}').execute('SELECT 1').fetchall())\""
        ),
    ];
    if pg_config.auth == AuthMethod::Password {
        lines.push("  (password logins: set PGPASSWORD, or answer the prompt)".into());
    }
    if let Some((server, config)) = &flight {
        let address = server
            .local_addr()
            .map_err(|error| Error::invalid(error.to_string()))?;
        let scheme = if server.tls() { "grpc+tls" } else { "grpc" };
        let uri = format!("{scheme}://{address}");
        lines.push(format!("lancesql: Arrow Flight SQL on {address}"));
        let login = match config.login {
            Login::Password => format!(", db_kwargs={{'username': '{user}', 'password': '...'}}"),
            Login::Anonymous => String::new(),
        };
        lines.push(format!(
            "  python -c \"import adbc_driver_flightsql.dbapi as f; c = f.connect('{uri}'{login}); cur = c.cursor(); cur.execute('SELECT 1'); print(cur.fetchall())\""
        ));
    }
    // Whoever started the server may stop reading after the address (`| head -1`): the server
    // goes on serving.
    let mut stdout = std::io::stdout();
    let banner = lines
        .iter()
        .try_for_each(|line| writeln!(stdout, "{line}"))
        .and_then(|()| stdout.flush());
    if let Err(error) = banner {
        tracing::warn!(%error, "could not print the connect lines");
    }
    let shutdown = shutdown_signal().boxed().shared();
    match flight {
        Some((flight, _)) => {
            let flight = async {
                flight
                    .serve(shutdown.clone())
                    .await
                    .map_err(|error| Error::invalid(error.to_string()))
            };
            let (pg, flight) = tokio::join!(pg.serve(shutdown.clone()), flight);
            pg.and(flight)?;
        }
        None => pg.serve(shutdown).await?,
    }
    eprintln!("lancesql: stopped");
    Ok(())
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot watch for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".lancesql_history"))
}
