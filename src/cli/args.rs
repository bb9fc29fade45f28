//! Command-line options for the engine's typed configuration: every option has a `--flag`, an
//! environment variable and a default (`lancesql --help` is the reference), and converts into
//! [`StoreConfig`] / [`EngineConfig`], which know nothing of the command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{EngineConfig, LocalIo, StoreConfig, parse_byte_size, parse_key_value};
use crate::pgwire::access::{AuthMethod, PgConfig};
use lancesql_flight::{FlightConfig, Login};

/// Where the Lance datasets live and how to reach them.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Root folder or object-store prefix holding `<table>.lance` datasets: a local path,
    /// `file://...` or `s3://bucket/prefix`.
    #[arg(
        long = "data",
        env = "LANCESQL_DATA",
        default_value = "./data",
        global = true
    )]
    pub data: String,

    /// S3 endpoint for S3-compatible stores (MinIO, Ceph, moto, ...). AWS_ENDPOINT works too.
    #[arg(long, env = "LANCESQL_S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,

    /// S3 region. AWS_REGION / AWS_DEFAULT_REGION work too.
    #[arg(long, env = "LANCESQL_S3_REGION", global = true)]
    pub s3_region: Option<String>,

    /// Allow plain-HTTP endpoints (local S3-compatible servers).
    #[arg(
        long,
        env = "LANCESQL_S3_ALLOW_HTTP",
        default_value_t = false,
        global = true
    )]
    pub s3_allow_http: bool,

    /// Extra object-store option passed to Lance as-is, `key=value` (repeatable; the environment
    /// variable takes a comma-separated list). Credentials come from the usual AWS_* variables.
    #[arg(long = "storage-option", env = "LANCESQL_STORAGE_OPTIONS", global = true, value_delimiter = ',', value_parser = parse_key_value)]
    pub storage_options: Vec<(String, String)>,

    /// How a local data root is read: `uring` (Lance's io_uring reader), `threads` (blocking
    /// reads on a thread pool), or `auto` (io_uring when the kernel and container allow it).
    #[arg(
        long = "local-io",
        env = "LANCESQL_LOCAL_IO",
        value_enum,
        default_value_t = LocalIoArg::Auto,
        global = true
    )]
    pub local_io: LocalIoArg,
}

/// [`LocalIo`] as a command-line choice.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalIoArg {
    /// io_uring when available, else threads.
    Auto,
    /// io_uring (Linux); an error where the kernel or a seccomp policy forbids it.
    Uring,
    /// Blocking reads on a thread pool (works everywhere).
    Threads,
}

impl From<StoreArgs> for StoreConfig {
    fn from(args: StoreArgs) -> Self {
        StoreConfig {
            data: args.data,
            s3_endpoint: args.s3_endpoint,
            s3_region: args.s3_region,
            s3_allow_http: args.s3_allow_http,
            storage_options: args.storage_options,
            local_io: match args.local_io {
                LocalIoArg::Auto => LocalIo::Auto,
                LocalIoArg::Uring => LocalIo::Uring,
                LocalIoArg::Threads => LocalIo::Threads,
            },
        }
    }
}

/// How queries run in this process.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Partitions per query (parallel scan streams). Defaults to the number of cores.
    #[arg(long, env = "LANCESQL_TARGET_PARTITIONS", global = true)]
    pub target_partitions: Option<usize>,

    /// Rows per record batch produced by scans and operators.
    #[arg(
        long,
        env = "LANCESQL_BATCH_SIZE",
        default_value_t = 8192,
        global = true
    )]
    pub batch_size: usize,

    /// Memory all queries together may use for sorts, joins and aggregates (e.g. 2GiB); a query
    /// needing more spills to disk or fails with SQLSTATE 53200. Default: half the machine's
    /// memory (or of the container's limit, when lower).
    #[arg(long, env = "LANCESQL_MEMORY_LIMIT", value_parser = parse_byte_size, global = true)]
    pub memory_limit: Option<u64>,

    /// Memory one query may use (e.g. 512MiB), so one huge query fails with SQLSTATE 53200
    /// while others keep running. Default: the --memory-limit.
    #[arg(long, env = "LANCESQL_QUERY_MEMORY_LIMIT", value_parser = parse_byte_size, global = true)]
    pub query_memory_limit: Option<u64>,

    /// Refuse every statement that writes (CREATE, DROP, INSERT, ...) with SQLSTATE 25006.
    #[arg(long, env = "LANCESQL_READ_ONLY", global = true)]
    pub read_only: bool,

    /// Folder for spill files. Default: a temporary folder, removed at exit.
    #[arg(long, env = "LANCESQL_SPILL_DIR", global = true)]
    pub spill_dir: Option<PathBuf>,

    /// Opened datasets (table, version) kept for reuse by all sessions.
    #[arg(
        long,
        env = "LANCESQL_DATASET_CACHE_ENTRIES",
        default_value_t = 256,
        global = true
    )]
    pub dataset_cache_entries: u64,

    /// Milliseconds a listing of the data root answers catalog queries (psql's \dt, BI tools)
    /// before the root is listed again.
    #[arg(
        long,
        env = "LANCESQL_LISTING_TTL_MS",
        default_value_t = 2000,
        global = true
    )]
    pub listing_ttl_ms: u64,

    /// Threads of Lance's own pool, which encodes written columns and decodes read ones.
    /// Default: the number of cores (Lance's own default keeps two cores for I/O, which leaves
    /// a machine of two cores one thread for all its encoding).
    #[arg(long, env = "LANCE_CPU_THREADS", value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub lance_cpu_threads: Option<u64>,
}

impl From<EngineArgs> for EngineConfig {
    fn from(args: EngineArgs) -> Self {
        EngineConfig {
            target_partitions: args.target_partitions,
            batch_size: args.batch_size,
            memory_limit: args.memory_limit,
            query_memory_limit: args.query_memory_limit,
            read_only: args.read_only,
            spill_dir: args.spill_dir,
            dataset_cache_entries: args.dataset_cache_entries,
            listing_ttl: Duration::from_millis(args.listing_ttl_ms),
        }
    }
}

/// The Postgres wire front end of `lancesql serve`: where it listens and who may connect.
#[derive(clap::Args, Debug, Clone)]
pub struct PgArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "LANCESQL_PG_LISTEN", default_value = "127.0.0.1:5433")]
    pub pg_listen: String,

    /// How clients log in: `password` (SCRAM-SHA-256, users from --pg-users-file or
    /// LANCESQL_PG_USER/LANCESQL_PG_PASSWORD) or `trust` (no password; loopback only unless
    /// --pg-trust-network).
    #[arg(long, env = "LANCESQL_PG_AUTH", value_enum, default_value_t = AuthMethod::Password)]
    pub pg_auth: AuthMethod,

    /// File of `name:password` lines (mode 600), for password logins.
    #[arg(long, env = "LANCESQL_PG_USERS_FILE")]
    pub pg_users_file: Option<PathBuf>,

    /// A user for password logins, with --pg-password (prefer the environment variable: flags
    /// show in process listings).
    #[arg(long, env = "LANCESQL_PG_USER", default_value = "lancesql")]
    pub pg_user: String,

    /// The password of --pg-user.
    #[arg(long, env = "LANCESQL_PG_PASSWORD", hide_env_values = true)]
    pub pg_password: Option<String>,

    /// Allow --pg-auth trust on a non-loopback listen address.
    #[arg(long, env = "LANCESQL_PG_TRUST_NETWORK")]
    pub pg_trust_network: bool,

    /// PEM certificate chain for TLS (with --pg-tls-key).
    #[arg(long, env = "LANCESQL_PG_TLS_CERT")]
    pub pg_tls_cert: Option<PathBuf>,

    /// PEM private key for TLS (mode 600).
    #[arg(long, env = "LANCESQL_PG_TLS_KEY")]
    pub pg_tls_key: Option<PathBuf>,

    /// Refuse logins that do not use TLS (28000).
    #[arg(long, env = "LANCESQL_PG_REQUIRE_TLS")]
    pub pg_require_tls: bool,

    /// Connections served at once; the next client is refused with SQLSTATE 53300.
    #[arg(long, env = "LANCESQL_PG_MAX_CONNECTIONS", default_value_t = 100)]
    pub pg_max_connections: usize,
}

impl From<PgArgs> for PgConfig {
    fn from(args: PgArgs) -> Self {
        PgConfig {
            listen: args.pg_listen,
            auth: args.pg_auth,
            users_file: args.pg_users_file,
            user: args.pg_password.map(|password| (args.pg_user, password)),
            trust_network: args.pg_trust_network,
            tls_cert: args.pg_tls_cert,
            tls_key: args.pg_tls_key,
            require_tls: args.pg_require_tls,
            max_connections: args.pg_max_connections,
        }
    }
}

/// How Flight SQL clients log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlightAuth {
    /// Basic credentials at the handshake, checked against the Postgres front end's users
    /// (--pg-users-file, LANCESQL_PG_USER/LANCESQL_PG_PASSWORD).
    Password,
    /// No login: for a machine's own users only (loopback unless --flight-anonymous-network).
    None,
}

/// The Flight SQL front end of `lancesql serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct FlightArgs {
    /// Address for Arrow Flight SQL; port 0 picks a free port (the bound address is printed);
    /// `off` serves no Flight SQL.
    #[arg(
        long,
        env = "LANCESQL_FLIGHT_LISTEN",
        default_value = "127.0.0.1:32010"
    )]
    pub flight_listen: String,

    /// How Flight SQL clients log in; by default as --pg-auth says (`trust` means `none`).
    #[arg(long, env = "LANCESQL_FLIGHT_AUTH", value_enum)]
    pub flight_auth: Option<FlightAuth>,

    /// Allow --flight-auth none on a non-loopback listen address.
    #[arg(long, env = "LANCESQL_FLIGHT_ANONYMOUS_NETWORK")]
    pub flight_anonymous_network: bool,

    /// PEM certificate chain for Flight SQL over TLS (with --flight-tls-key).
    #[arg(long, env = "LANCESQL_FLIGHT_TLS_CERT")]
    pub flight_tls_cert: Option<PathBuf>,

    /// PEM private key for Flight SQL over TLS.
    #[arg(long, env = "LANCESQL_FLIGHT_TLS_KEY")]
    pub flight_tls_key: Option<PathBuf>,

    /// Seconds a Flight SQL session (bearer token) lives without being used.
    #[arg(
        long,
        env = "LANCESQL_FLIGHT_SESSION_IDLE_SECS",
        default_value_t = 3600
    )]
    pub flight_session_idle_secs: u64,
}

impl FlightArgs {
    /// The Flight SQL server's settings, or `None` when it is turned off. Logins follow
    /// `pg_auth` unless --flight-auth says otherwise.
    pub fn config(&self, pg_auth: AuthMethod) -> Option<FlightConfig> {
        if self.flight_listen.eq_ignore_ascii_case("off") {
            return None;
        }
        Some(FlightConfig {
            listen: self.flight_listen.clone(),
            login: match (self.flight_auth, pg_auth) {
                (Some(FlightAuth::Password), _) | (None, AuthMethod::Password) => Login::Password,
                (Some(FlightAuth::None), _) | (None, AuthMethod::Trust) => Login::Anonymous,
            },
            anonymous_network: self.flight_anonymous_network,
            tls_cert: self.flight_tls_cert.clone(),
            tls_key: self.flight_tls_key.clone(),
            session_idle_timeout: Duration::from_secs(self.flight_session_idle_secs),
            server_name: "lancesql".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
        })
    }
}
