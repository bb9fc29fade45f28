//! Typed configuration: where the data lives and how the engine runs.
//!
//! These are plain types: the command line (`crate::cli::args`) gives every option a `--flag`,
//! an environment variable and a default, and converts to them; embedders build them directly.
//! Process-level options live in [`StoreConfig`] and [`EngineConfig`]; per-session engine knobs
//! live in [`LanceOptions`], a DataFusion config extension, so `SET lance.use_scalar_index =
//! false` works in the shell and over every protocol, like `SET datafusion.execution.batch_size`.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use datafusion::config::{
    ConfigEntry, ConfigExtension, ConfigField, ConfigOptions, ExtensionOptions,
};
use datafusion::error::DataFusionError;

use crate::error::{Error, Result};

/// Where the Lance datasets live and how to reach them.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root folder or object-store prefix holding `<table>.lance` datasets: a local path,
    /// `file://...` or `s3://bucket/prefix`.
    pub data: String,
    /// S3 endpoint for S3-compatible stores (MinIO, Ceph, moto, ...).
    pub s3_endpoint: Option<String>,
    /// S3 region.
    pub s3_region: Option<String>,
    /// Allow plain-HTTP endpoints (local S3-compatible servers).
    pub s3_allow_http: bool,
    /// Extra object-store options passed to Lance as-is.
    pub storage_options: Vec<(String, String)>,
    /// How a local data root is read.
    pub local_io: LocalIo,
}

/// The reader Lance uses for datasets in a local folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalIo {
    /// io_uring when available, else threads.
    Auto,
    /// io_uring (Linux); an error where the kernel or a seccomp policy forbids it.
    Uring,
    /// Blocking reads on a thread pool (works everywhere).
    Threads,
}

impl std::str::FromStr for LocalIo {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(LocalIo::Auto),
            "uring" => Ok(LocalIo::Uring),
            "threads" => Ok(LocalIo::Threads),
            _ => Err(Error::invalid(format!(
                "unknown local reader '{text}': expected auto, uring or threads"
            ))),
        }
    }
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

/// Parses `key=value` (object-store options).
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected key=value, got '{text}'")),
    }
}

/// Parses a byte size: a number with an optional unit (`B`, `K`/`KiB`, `M`/`MiB`, `G`/`GiB`,
/// `T`/`TiB`; binary multiples either way), e.g. `512MiB`, `4G`, `1073741824`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("expected a size such as 512MiB or 4G, got '{text}'"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit '{other}' in '{text}'")),
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("size '{text}' is out of range"));
    }
    Ok(bytes as u64)
}

/// The share of the machine's memory (or of the container's limit, when lower) that queries
/// may use when `--memory-limit` is not given.
pub const DEFAULT_MEMORY_SHARE: f64 = 0.5;

/// [`DEFAULT_MEMORY_SHARE`] of the memory this process may use: the machine's, or the cgroup's
/// limit when one is set and lower. Falls back to 4 GiB where neither can be read.
pub fn default_memory_limit() -> u64 {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kib| kib * 1024)
        });
    let container = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let available = match (machine, container) {
        (Some(machine), Some(container)) => machine.min(container),
        (Some(bytes), None) | (None, Some(bytes)) => bytes,
        (None, None) => 8 << 30,
    };
    (available as f64 * DEFAULT_MEMORY_SHARE) as u64
}

/// The Postgres version lancesql reports (`server_version`, `version()`): the protocol and
/// catalog behaviour clients may expect of it.
pub const POSTGRES_VERSION: &str = "16.6";

/// How queries run in this process.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Partitions per query (parallel scan streams); `None`: the number of cores.
    pub target_partitions: Option<usize>,
    /// Rows per record batch produced by scans and operators.
    pub batch_size: usize,
    /// Bytes of memory all queries of the process may hold at once (sorts, joins, aggregates);
    /// `None`: [`default_memory_limit`]. A query needing more spills or fails with SQLSTATE 53200.
    pub memory_limit: Option<u64>,
    /// Bytes one query may hold; `None`: the memory limit. A query needing more fails with
    /// SQLSTATE 53200 while the others go on.
    pub query_memory_limit: Option<u64>,
    /// Refuse statements that write, with SQLSTATE 25006.
    pub read_only: bool,
    /// Folder for spill files; `None`: a temporary folder removed at exit.
    pub spill_dir: Option<PathBuf>,
    /// Opened datasets (table, version) kept for reuse across statements and sessions.
    pub dataset_cache_entries: u64,
    /// How long a listing of the data root answers catalog queries before it is taken again.
    pub listing_ttl: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            target_partitions: None,
            batch_size: 8192,
            memory_limit: None,
            query_memory_limit: None,
            read_only: false,
            spill_dir: None,
            dataset_cache_entries: 256,
            listing_ttl: Duration::from_secs(2),
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
        if self.memory_limit == Some(0) {
            return Err(Error::invalid("--memory-limit must be more than 0 bytes"));
        }
        if self.query_memory_limit == Some(0) {
            return Err(Error::invalid(
                "--query-memory-limit must be more than 0 bytes",
            ));
        }
        if self.dataset_cache_entries == 0 {
            return Err(Error::invalid("--dataset-cache-entries must be at least 1"));
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
    /// Default IVF partitions a vector search probes where an index exists (0: Lance decides).
    pub nprobes: usize,
    /// Default refine factor of vector searches over an index (0: no refine step).
    pub refine_factor: usize,
    /// Default HNSW `ef` of vector searches over an index (0: Lance decides).
    pub ef: usize,
    /// How `ORDER BY <distance>(column, vector) LIMIT k` over a table runs.
    pub nearest_order_by: NearestOrderBy,
    /// An append (INSERT, COPY FROM, ingest) that leaves the table with at least this many small
    /// fragments compacts them right after its commit (0 turns it off).
    pub auto_compact_fragments: usize,
    /// A bulk write (CREATE TABLE AS, INSERT ... SELECT, import) whose query is expected to
    /// give fewer rows than this writes its partitions one after another with one writer (one
    /// fragment, as a single stream would give); otherwise each partition has a writer of its
    /// own, at once. A query whose row count is unknown counts as large; 0: always at once.
    pub parallel_write_min_rows: usize,
    /// Rows per data file (fragment) a write or a compaction makes at most: Lance's
    /// `max_rows_per_file` and compaction target. A single stream (COPY FROM, Flight SQL
    /// ingest) longer than this is written as consecutive chunks of this many rows, each by a
    /// writer of its own, several at once; a fragment of fewer rows counts as small.
    pub max_rows_per_file: usize,
}

/// How `ORDER BY <distance>(column, vector) LIMIT k` over a Lance table runs (see
/// `functions::search::order_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestOrderBy {
    /// As an exact (flat) Lance vector search: the same rows as without the rewrite.
    Exact,
    /// As a Lance vector search through the column's vector index where one exists, with the
    /// session's `nprobes`/`ef`/`refine_factor`: faster and approximate, as pgvector's indices.
    Index,
    /// As DataFusion sorts any expression: every row's distance computed and sorted.
    Off,
}

impl NearestOrderBy {
    const ALL: [(&'static str, NearestOrderBy); 3] = [
        ("exact", NearestOrderBy::Exact),
        ("index", NearestOrderBy::Index),
        ("off", NearestOrderBy::Off),
    ];

    fn parse(value: &str) -> datafusion::error::Result<Self> {
        let lowered = value.trim().to_ascii_lowercase();
        NearestOrderBy::ALL
            .iter()
            .find(|(name, _)| *name == lowered)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| {
                DataFusionError::Configuration(format!(
                    "lance.nearest_order_by must be one of {}, got '{value}'",
                    NearestOrderBy::ALL.map(|(name, _)| name).join(", ")
                ))
            })
    }
}

impl fmt::Display for NearestOrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NearestOrderBy::ALL
            .iter()
            .find(|(_, mode)| mode == self)
            .map_or("exact", |(name, _)| name);
        f.write_str(name)
    }
}

impl LanceOptions {
    /// The session's `lance.*` settings in `config` (the defaults where the extension is missing).
    pub fn of(config: &ConfigOptions) -> LanceOptions {
        config
            .extensions
            .get::<LanceOptions>()
            .cloned()
            .unwrap_or_default()
    }
}

impl Default for LanceOptions {
    fn default() -> Self {
        LanceOptions {
            use_scalar_index: true,
            fragment_readahead: 0,
            late_materialization_max_rows: 10_000,
            nprobes: 0,
            refine_factor: 0,
            ef: 0,
            nearest_order_by: NearestOrderBy::Exact,
            auto_compact_fragments: 50,
            parallel_write_min_rows: 1 << 20,
            max_rows_per_file: 1 << 20,
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
            "nprobes" => self.nprobes.set(key, value),
            "refine_factor" => self.refine_factor.set(key, value),
            "ef" => self.ef.set(key, value),
            "nearest_order_by" => {
                self.nearest_order_by = NearestOrderBy::parse(value)?;
                Ok(())
            }
            "auto_compact_fragments" => self.auto_compact_fragments.set(key, value),
            "parallel_write_min_rows" => self.parallel_write_min_rows.set(key, value),
            "max_rows_per_file" => {
                let mut rows = self.max_rows_per_file;
                rows.set(key, value)?;
                if rows == 0 {
                    return Err(DataFusionError::Configuration(format!(
                        "lance.max_rows_per_file must be at least 1, got '{value}'"
                    )));
                }
                self.max_rows_per_file = rows;
                Ok(())
            }
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
            entry(
                "nprobes",
                self.nprobes.to_string(),
                "IVF partitions a vector search probes where an index exists (0: Lance decides)",
            ),
            entry(
                "refine_factor",
                self.refine_factor.to_string(),
                "Refine factor of vector searches over an index (0: no refine step)",
            ),
            entry(
                "ef",
                self.ef.to_string(),
                "HNSW ef of vector searches over an index (0: Lance decides)",
            ),
            entry(
                "nearest_order_by",
                self.nearest_order_by.to_string(),
                "ORDER BY <distance>(column, vector) LIMIT k runs as an exact Lance search \
                 (exact), through a vector index (index), or as a sort (off)",
            ),
            entry(
                "auto_compact_fragments",
                self.auto_compact_fragments.to_string(),
                "An append leaving at least this many small fragments compacts them (0: off)",
            ),
            entry(
                "parallel_write_min_rows",
                self.parallel_write_min_rows.to_string(),
                "A bulk write expected to give at least this many rows (or an unknown number) \
                 writes each partition of its query at once; smaller ones use one writer",
            ),
            entry(
                "max_rows_per_file",
                self.max_rows_per_file.to_string(),
                "Rows per data file (fragment) a write or compaction makes at most; a longer \
                 single stream (COPY FROM, ingest) is written as chunks of this many rows at once",
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
                "lance.late_materialization_max_rows",
                "lance.nprobes",
                "lance.refine_factor",
                "lance.ef",
                "lance.nearest_order_by",
                "lance.auto_compact_fragments",
                "lance.parallel_write_min_rows",
                "lance.max_rows_per_file"
            ]
        );
        options.set("lance.nearest_order_by", "Index").unwrap();
        let lance = options.extensions.get::<LanceOptions>().unwrap();
        assert_eq!(lance.nearest_order_by, NearestOrderBy::Index);
        let bad = options
            .set("lance.nearest_order_by", "fast")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("exact, index, off") && bad.contains("fast"),
            "{bad}"
        );
        let zero = options
            .set("lance.max_rows_per_file", "0")
            .unwrap_err()
            .to_string();
        assert!(zero.contains("lance.max_rows_per_file"), "{zero}");
        options.set("lance.max_rows_per_file", "1000").unwrap();
        let lance = options.extensions.get::<LanceOptions>().unwrap();
        assert_eq!(lance.max_rows_per_file, 1000);
    }

    #[test]
    fn byte_sizes_parse_with_units() {
        assert_eq!(parse_byte_size("1024").unwrap(), 1024);
        assert_eq!(parse_byte_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_byte_size("1.5k").unwrap(), 1536);
        assert!(parse_byte_size("0").is_err());
        assert!(
            parse_byte_size("12 parsecs")
                .unwrap_err()
                .contains("parsecs")
        );
        assert!(parse_byte_size("lots").unwrap_err().contains("lots"));
        assert!(default_memory_limit() > 0);
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
