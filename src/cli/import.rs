//! `lancesql import <file> <table>`: turns a Parquet, CSV or JSON-lines file into a Lance table.
//!
//! Files are read by DataFusion's own readers (schema inference, type handling) and streamed
//! into a new dataset, so memory use stays flat for any file size. Progress (rows written) is
//! shown on stderr when it is a terminal. The target must not exist; a failed import leaves no
//! table behind.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions};
use futures::TryStreamExt;

use crate::engine::WriteInput;
use crate::engine::session::LanceSession;
use crate::error::{Error, Result};

/// The format of an import source.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// From the file extension.
    Auto,
    Parquet,
    Csv,
    /// Newline-delimited JSON.
    Jsonl,
}

impl ImportFormat {
    fn resolve(self, path: &str) -> Result<ImportFormat> {
        if self != ImportFormat::Auto {
            return Ok(self);
        }
        let extension = Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("parquet") | Some("pq") => Ok(ImportFormat::Parquet),
            Some("csv") => Ok(ImportFormat::Csv),
            Some("jsonl") | Some("ndjson") | Some("json") => Ok(ImportFormat::Jsonl),
            _ => Err(Error::invalid(format!(
                "cannot tell the format of '{path}' from its extension; pass --format parquet|csv|jsonl"
            ))),
        }
    }
}

/// Imports `path` as the new table `table`; returns the number of rows written.
pub async fn import_file(
    session: &LanceSession,
    path: &str,
    table: &str,
    format: ImportFormat,
) -> Result<u64> {
    import_rows(session, path, table, format)
        .await
        .map_err(|source| match source {
            Error::File { .. } => source,
            other => Error::Source {
                path: path.to_string(),
                source: Box::new(other),
            },
        })
}

async fn import_rows(
    session: &LanceSession,
    path: &str,
    table: &str,
    format: ImportFormat,
) -> Result<u64> {
    let metadata = std::fs::metadata(path).map_err(|source| Error::File {
        path: path.to_string(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(Error::invalid(format!("'{path}' is not a file")));
    }
    // The file is read by a DataFusion context of its own: the engine only writes the table.
    // Parquet strings are read as plain strings, the type Lance stores: read as string views
    // (DataFusion's default) each batch would be built once as views and again by Lance's cast.
    let mut config = datafusion::prelude::SessionConfig::new();
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let context = datafusion::prelude::SessionContext::new_with_config(config);
    let extension = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let frame = match format.resolve(path)? {
        ImportFormat::Parquet => {
            context
                .read_parquet(
                    path,
                    ParquetReadOptions::default().file_extension(&extension),
                )
                .await?
        }
        ImportFormat::Csv => {
            context
                .read_csv(
                    path,
                    CsvReadOptions::new()
                        .has_header(true)
                        .file_extension(&extension),
                )
                .await?
        }
        ImportFormat::Jsonl | ImportFormat::Auto => {
            context
                .read_json(path, JsonReadOptions::default().file_extension(&extension))
                .await?
        }
    };
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    // Each partition of the read (row groups, byte ranges) is written at once, in file order.
    let task = Arc::new(frame.task_ctx());
    let parts = WriteInput::partitions(frame.create_physical_plan().await?, task)?;
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_message(format!("importing {path} into {table}"));
    let counted = parts.map_parts(|part| with_progress(part, progress.clone()));
    let created = session.create_table(table, counted).await;
    progress.finish_and_clear();
    created.map_err(|error| locate_csv_error(error, &columns))
}

/// Arrow's CSV reader names a bad value's column by position and its line by data row ("for
/// column 1 at line 7"); say what a person looks for in the file: the column's name and the
/// file's line (the header is line 1). The error kind (and so its SQLSTATE) stays the same.
fn locate_csv_error(error: Error, columns: &[String]) -> Error {
    let Error::DataFusion(inner) = &error else {
        return error;
    };
    let datafusion::error::DataFusionError::ArrowError(arrow_error, _) = inner.as_ref() else {
        return error;
    };
    let arrow::error::ArrowError::ParseError(message) = arrow_error.as_ref() else {
        return error;
    };
    match with_column_name(message, columns) {
        Some(message) => Error::from(arrow::error::ArrowError::ParseError(message)),
        None => error,
    }
}

fn with_column_name(message: &str, columns: &[String]) -> Option<String> {
    let (before, index, after) = split_number(message, "for column ")?;
    let name = columns.get(index)?;
    let (middle, row, rest) = split_number(after, " at line ")?;
    Some(format!(
        "{before}'{name}' (column {index}){middle}{} of the file{rest}",
        row + 1
    ))
}

/// `text` split around the number following `marker`: (up to and with the marker, the number,
/// the rest).
fn split_number<'a>(text: &'a str, marker: &str) -> Option<(&'a str, usize, &'a str)> {
    let start = text.find(marker)? + marker.len();
    let digits = text[start..].find(|c: char| !c.is_ascii_digit())?;
    let number = text[start..start + digits].parse().ok()?;
    Some((&text[..start], number, &text[start + digits..]))
}

fn with_progress(
    stream: SendableRecordBatchStream,
    progress: indicatif::ProgressBar,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let counted = stream.inspect_ok(move |batch: &RecordBatch| {
        progress.inc(batch.num_rows() as u64);
        progress.set_message(format!("{} rows written", progress.position()));
    });
    Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), counted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_the_column() {
        let columns = vec!["id".to_string(), "amount".to_string()];
        let message = "Error while parsing value 'lots' as type 'Int64' for column 1 at line 7. Row data: '[7,lots]'";
        assert_eq!(
            with_column_name(message, &columns).unwrap(),
            "Error while parsing value 'lots' as type 'Int64' for column 'amount' (column 1) at line 8 of the file. Row data: '[7,lots]'"
        );
        assert_eq!(with_column_name("no position here", &columns), None);
        assert_eq!(with_column_name("for column 9 at line 1", &columns), None);
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(
            ImportFormat::Auto.resolve("a/b.parquet").unwrap(),
            ImportFormat::Parquet
        );
        assert_eq!(
            ImportFormat::Auto.resolve("x.CSV").unwrap(),
            ImportFormat::Csv
        );
        assert_eq!(
            ImportFormat::Auto.resolve("x.jsonl").unwrap(),
            ImportFormat::Jsonl
        );
        assert_eq!(
            ImportFormat::Csv.resolve("x.txt").unwrap(),
            ImportFormat::Csv
        );
        let error = ImportFormat::Auto.resolve("x.txt").unwrap_err().to_string();
        assert!(
            error.contains("x.txt") && error.contains("--format"),
            "{error}"
        );
    }
}
