//! A table's history as SQL names it: `VERSION AS OF n`, `VERSION AS OF 'tag'` and
//! `TIMESTAMP AS OF '...'` resolved to a version number that exists now.
//!
//! Contract: resolving reads only the table's manifests and tags, never data (a version number
//! only its own manifest); a version that
//! was never written or has been removed, a tag that does not exist, or a time before the table
//! existed is an error naming the table and what was asked for.

use crate::error::{Error, Result};

use super::DataRoot;

/// Which version of a table a statement reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsOf {
    /// That version number.
    Version(u64),
    /// The version a tag names.
    Tag(String),
    /// The newest version committed at or before this time (nanoseconds since the epoch, UTC),
    /// as the statement wrote it (for errors).
    Timestamp { nanos: i64, written: String },
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsOf::Version(version) => write!(f, "version {version}"),
            AsOf::Tag(tag) => write!(f, "tag '{tag}'"),
            AsOf::Timestamp { written, .. } => write!(f, "time '{written}'"),
        }
    }
}

impl DataRoot {
    /// The version of `table` that `at` names.
    pub async fn version_as_of(&self, table: &str, at: &AsOf) -> Result<u64> {
        let dataset = self
            .open_latest(table)
            .await?
            .ok_or_else(|| Error::TableNotFound {
                table: table.to_string(),
            })?;
        let lance_error =
            |what: &str, error| Error::lance(format!("{what} of '{table}'"), dataset.uri(), error);
        let (wanted_version, wanted_time) = match at {
            AsOf::Tag(tag) => {
                return dataset
                    .tags()
                    .get_version(tag)
                    .await
                    .map_err(|error| match error {
                        lance_core::Error::RefNotFound { .. }
                        | lance_core::Error::InvalidRef { .. } => {
                            Error::invalid(format!("table '{table}' has no tag '{tag}'"))
                        }
                        other => lance_error("reading the tags", other),
                    });
            }
            AsOf::Version(version) => (Some(*version), None),
            AsOf::Timestamp { nanos, written } => (None, Some((*nanos, written))),
        };
        // A version number is checked by opening it (one manifest read, cached for the read
        // that follows); listing every version's manifest is for times and for errors only.
        if let Some(version) = wanted_version
            && self
                .open_pinned(&self.table_uri(table)?, version)
                .await
                .is_ok()
        {
            return Ok(version);
        }
        let versions = dataset
            .versions()
            .await
            .map_err(|error| lance_error("listing the versions", error))?;
        if let Some(version) = wanted_version {
            if versions.iter().any(|kept| kept.version == version) {
                return Ok(version);
            }
            let kept = match (versions.first(), versions.last()) {
                (Some(first), Some(last)) if first.version == last.version => {
                    format!("its one version is {}", first.version)
                }
                (Some(first), Some(last)) => {
                    format!("its versions are {} to {}", first.version, last.version)
                }
                _ => "it has no versions".to_string(),
            };
            return Err(Error::invalid(format!(
                "table '{table}' has no version {version} ({kept})"
            )));
        }
        let Some((nanos, written)) = wanted_time else {
            return Err(Error::Internal {
                message: format!("no version or time asked of '{table}'"),
            });
        };
        versions
            .iter()
            .filter(|kept| {
                kept.timestamp
                    .timestamp_nanos_opt()
                    .is_some_and(|committed| committed <= nanos)
            })
            .map(|kept| kept.version)
            .max()
            .ok_or_else(|| {
                let first = versions
                    .first()
                    .map(|first| format!("; its first version is from {}", first.timestamp))
                    .unwrap_or_default();
                Error::invalid(format!(
                    "table '{table}' has no version at or before '{written}'{first}"
                ))
            })
    }
}
