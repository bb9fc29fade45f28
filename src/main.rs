//! The `lancesql` command: the embedded SQL shell and the importer.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lancesql::import::{ImportFormat, import_file};
use lancesql::shell::{OutputFormat, Shell, report};
use lancesql::{Engine, EngineConfig, Error, StoreConfig};

/// SQL over Lance datasets.
#[derive(Parser, Debug)]
#[command(name = "lancesql", version, about)]
struct Cli {
    #[command(flatten)]
    store: StoreConfig,

    #[command(flatten)]
    engine: EngineConfig,

    /// Log filter (tracing's env-filter syntax), written to stderr.
    #[arg(long, env = "LANCESQL_LOG", default_value = "warn", global = true)]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run SQL: interactively, or the statements given with -c / -f.
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

        /// Write the demo tables first if the data root has no tables.
        #[arg(long, env = "LANCESQL_DEMO_IF_EMPTY", default_value_t = false)]
        demo_if_empty: bool,
    },
    /// Create a table from a Parquet, CSV or JSON-lines file.
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
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // A panic is a bug, but it must reach the user as one clear line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("internal error: {info}");
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ERROR: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let engine = Engine::new(&cli.store, cli.engine)?;
    let session = engine.session()?;
    match cli.command {
        Command::Sql {
            commands,
            files,
            format,
            demo_if_empty,
        } => {
            if demo_if_empty && lancesql::demo::ensure_demo_data(&session).await? {
                eprintln!(
                    "wrote demo tables 'products' and 'reviews' to {}",
                    engine.root().location()
                );
            }
            let shell = Shell::new(session, format);
            if commands.is_empty() && files.is_empty() {
                return shell.interactive(history_path()).await;
            }
            let mut stdout = std::io::stdout().lock();
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
            stdout.flush().map_err(|source| Error::File {
                path: "<stdout>".into(),
                source,
            })
        }
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

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".lancesql_history"))
}
