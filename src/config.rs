//! Typed configuration: where the data lives and how the engine runs.
//!
//! Every option has a `--flag`, an environment variable and a default (clap derives all three,
//! so `--help` is the reference). Process-level options live in [`StoreConfig`] and
//! [`EngineConfig`]; per-session engine knobs live in [`LanceOptions`], a DataFusion config
//! extension, so `SET lance.use_scalar_index = false` works in the shell and, later, over every
//! protocol, exactly like `SET datafusion.execution.batch_size = ...`.

use std::collections::HashMap;

use std::any::Any;

use datafusion::config::{ConfigEntry, ConfigExtension, ConfigField, ExtensionOptions};
use datafusion::error::DataFusionError;

use crate::error::{Error, Result};

/// Where the Lance datasets live and how to reach them.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreConfig {
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
        default_value_t = LocalIo::Auto,
        global = true
    )]
    pub local_io: LocalIo,
}

/// The reader Lance uses for datasets in a local folder.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalIo {
    /// io_uring when available, else threads.
    Auto,
    /// io_uring (Linux); an error where the kernel or a seccomp policy forbids it.
    Uring,
    /// Blocking reads on a thread pool (works everywhere).
    Threads,
}

impl StoreConfig {
    /// A configuration for a local folder with no extra options (tests, embedding).
    pub fn local(path: impl Into<String>) -> Self {
        StoreConfig {
            data: path.into(),
            s3_endpoint: None,
            s3_region: None,
            s3_allow_http: false,
            storage_options: Vec::new(),
            local_io: LocalIo::Auto,
        }
    }

    /// The options handed to Lance's object store for every dataset under the root.
    pub fn lance_storage_options(&self) -> HashMap<String, String> {
        let mut options: HashMap<String, String> = self.storage_options.iter().cloned().collect();
        if let Some(endpoint) = &self.s3_endpoint {
            options.insert("aws_endpoint".into(), endpoint.clone());
        }
        if let Some(region) = &self.s3_region {
            options.insert("aws_region".into(), region.clone());
        }
        if self.s3_allow_http {
            options.insert("aws_allow_http".into(), "true".into());
        }
        options
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected key=value, got '{text}'")),
    }
}

/// How queries run in this process.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineConfig {
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            target_partitions: None,
            batch_size: 8192,
        }
    }
}

impl EngineConfig {
    /// Rejects values no session could run with.
    pub fn validate(&self) -> Result<()> {
        if self.target_partitions == Some(0) {
            return Err(Error::invalid("--target-partitions must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("--batch-size must be at least 1"));
        }
        Ok(())
    }
}

/// Per-session knobs for Lance scans: `SET lance.<name> = <value>`, `SHOW lance.<name>`, and rows
/// named `lance.<name>` in `SHOW ALL` / `information_schema.df_settings`.
///
/// Written out rather than with DataFusion's `extensions_options!`, whose listing drops the
/// `lance.` prefix (so `SHOW lance.<name>` would find nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct LanceOptions {
    /// Answer filters from scalar indices (BTREE, BITMAP, LABEL_LIST, ZONEMAP, ...) when present.
    pub use_scalar_index: bool,
    /// Fragments each scan partition reads ahead (0 lets Lance decide).
    pub fragment_readahead: usize,
    /// `ORDER BY ... LIMIT k` with k at most this reads only the sort keys, then takes the other
    /// columns of the k rows (0 turns it off).
    pub late_materialization_max_rows: usize,
}

impl Default for LanceOptions {
    fn default() -> Self {
        LanceOptions {
            use_scalar_index: true,
            fragment_readahead: 0,
            late_materialization_max_rows: 10_000,
        }
    }
}

impl ExtensionOptions for LanceOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    /// `key` comes without the `lance.` prefix; values parse as DataFusion's own settings do.
    fn set(&mut self, key: &str, value: &str) -> datafusion::error::Result<()> {
        match key {
            "use_scalar_index" => self.use_scalar_index.set(key, value),
            "fragment_readahead" => self.fragment_readahead.set(key, value),
            "late_materialization_max_rows" => self.late_materialization_max_rows.set(key, value),
            _ => Err(DataFusionError::Configuration(format!(
                "unknown setting 'lance.{key}': lance settings are {}",
                self.entries()
                    .iter()
                    .map(|entry| entry.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        let entry = |name: &str, value: String, description: &'static str| ConfigEntry {
            key: format!("{}.{name}", Self::PREFIX),
            value: Some(value),
            description,
        };
        vec![
            entry(
                "use_scalar_index",
                self.use_scalar_index.to_string(),
                "Answer filters from scalar indices when present",
            ),
            entry(
                "fragment_readahead",
                self.fragment_readahead.to_string(),
                "Fragments each scan partition reads ahead (0 lets Lance decide)",
            ),
            entry(
                "late_materialization_max_rows",
                self.late_materialization_max_rows.to_string(),
                "Largest k for which ORDER BY ... LIMIT k reads the sort keys first (0: off)",
            ),
        ]
    }
}

impl ConfigExtension for LanceOptions {
    const PREFIX: &'static str = "lance";
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::config::ConfigOptions;

    #[test]
    fn storage_options_merge_flags_over_generic_options() {
        let mut config = StoreConfig::local("s3://bucket/root");
        config.storage_options = vec![("aws_region".into(), "eu-west-1".into())];
        config.s3_region = Some("us-east-1".into());
        config.s3_endpoint = Some("http://127.0.0.1:9000".into());
        config.s3_allow_http = true;
        let options = config.lance_storage_options();
        assert_eq!(options["aws_region"], "us-east-1");
        assert_eq!(options["aws_endpoint"], "http://127.0.0.1:9000");
        assert_eq!(options["aws_allow_http"], "true");
    }

    #[test]
    fn key_value_parsing_names_the_bad_input() {
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        let error = parse_key_value("novalue").unwrap_err();
        assert!(error.contains("novalue"));
    }

    #[test]
    fn lance_options_are_settable_by_name() {
        let mut options = ConfigOptions::new();
        options.extensions.insert(LanceOptions::default());
        options.set("lance.use_scalar_index", "false").unwrap();
        options.set("lance.fragment_readahead", "4").unwrap();
        let lance = options.extensions.get::<LanceOptions>().unwrap();
        assert!(!lance.use_scalar_index);
        assert_eq!(lance.fragment_readahead, 4);
        let unknown = options
            .set("lance.no_such_knob", "1")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("lance.no_such_knob"), "{unknown}");
        assert!(options.set("lance.use_scalar_index", "maybe").is_err());
        let keys: Vec<String> = options
            .entries()
            .into_iter()
            .map(|entry| entry.key)
            .filter(|key| key.starts_with("lance."))
            .collect();
        assert_eq!(
            keys,
            [
                "lance.use_scalar_index",
                "lance.fragment_readahead",
                "lance.late_materialization_max_rows"
            ]
        );
    }

    #[test]
    fn engine_config_rejects_zero() {
        let config = EngineConfig {
            target_partitions: Some(0),
            ..EngineConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("target-partitions")
        );
    }
}
