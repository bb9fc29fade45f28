//! The SQL test runner: `.slt` files and oracle comparisons against the embedded engine.
//!
//! - Every `slt/*.slt` file runs in a fresh session over the same fixture root, with
//!   sqllogictest's own runner (`query`, `statement ok`, `statement error <regex>`).
//! - Every query in `oracle.sql` runs twice, once over the Lance fixture and once over the same
//!   rows in a DataFusion `MemTable` (`oracle.public.<table>`), and the sorted results must match.
//!   `{t}` stands for each table with the basic schema, `{evolved}` for the schema-evolved one,
//!   `{labels}` for the table with a LABEL_LIST-indexed list column.
//!
//! The engine is reached through [`SqlTarget`], so the same files can later run over the
//! Postgres wire and Flight SQL. Arguments: an optional substring; only files and oracle queries
//! containing it run. `LANCESQL_SLT_COMPLETE=1` rewrites the expected results of the selected
//! `.slt` files from the engine's output (review the diff before committing). Ends with `N passed, N failed` and a non-zero exit status on failure.

mod fixtures;

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::TryStreamExt;
use lancesql::engine::session::Outcome;
use lancesql::{Engine, EngineConfig, LanceSession, StoreConfig};
use sqllogictest::{DBOutput, DefaultColumnType};

/// The rows of a result as text, with the column types.
struct Rows {
    types: Vec<DataType>,
    rows: Vec<Vec<String>>,
}

/// Where SQL goes: today the embedded engine; the front ends add their own targets.
#[async_trait]
trait SqlTarget: Send {
    /// Runs one statement (or several) and returns the rows of the last result as text.
    async fn query(&mut self, sql: &str) -> Result<Option<Rows>, lancesql::Error>;
}

struct Embedded {
    session: LanceSession,
}

#[async_trait]
impl SqlTarget for Embedded {
    async fn query(&mut self, sql: &str) -> Result<Option<Rows>, lancesql::Error> {
        let mut last = None;
        for statement in self.session.parse(sql)? {
            last = match self.session.run(statement).await? {
                Outcome::Done(_) => None,
                Outcome::Rows { stream, .. } => {
                    let types = stream
                        .schema()
                        .fields()
                        .iter()
                        .map(|field| field.data_type().clone())
                        .collect();
                    let batches: Vec<RecordBatch> = stream.try_collect().await?;
                    Some(Rows {
                        types,
                        rows: format_rows(&batches)?,
                    })
                }
            };
        }
        Ok(last)
    }
}

/// Formats cells as DataFusion's own sqllogictest suite does: NULL, `(empty)` for empty
/// strings, and one output row per line of a multi-line cell (EXPLAIN plans).
fn format_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, lancesql::Error> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|formatter| {
                    let text = formatter.value(row).to_string();
                    if text.is_empty() {
                        "(empty)".to_string()
                    } else {
                        text
                    }
                })
                .collect();
            let lines: Vec<Vec<&str>> = cells
                .iter()
                .map(|cell| cell.trim_end().lines().collect())
                .collect();
            let height = lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
            for line in 0..height {
                rows.push(
                    lines
                        .iter()
                        .map(|cell_lines| {
                            cell_lines
                                .get(line)
                                .map_or("", |l| l.trim_end())
                                .to_string()
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(rows)
}

/// Compares whole rows with whitespace collapsed, so continuation lines of a multi-line cell
/// (whose other cells are empty) compare equal to their indented text.
fn row_validator(
    normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let actual: Vec<String> = actual
        .iter()
        .map(|row| normalizer(&row.join(" ")))
        .collect();
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    actual == expected
}

/// The sqllogictest letter of a column: `I` integers, `R` floating point and decimals, `T`
/// everything else (what DataFusion's own suite uses).
fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

struct SltDb<T: SqlTarget>(T);

/// An engine error as `.slt` files see it: `[SQLSTATE] message`, so `statement error` lines can
/// assert the code as well as the words.
#[derive(Debug)]
struct SltError(lancesql::Error);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.0.sqlstate(), self.0)
    }
}

impl std::error::Error for SltError {}

#[async_trait]
impl<T: SqlTarget> sqllogictest::AsyncDB for SltDb<T> {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        match self.0.query(sql).await.map_err(SltError)? {
            None => Ok(DBOutput::StatementComplete(0)),
            Some(Rows { types, rows }) => Ok(DBOutput::Rows {
                types: types.iter().map(column_type).collect(),
                rows,
            }),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lancesql-embedded"
    }
}

async fn session_for(engine: &Engine, oracle: &[fixtures::Oracle]) -> LanceSession {
    let session = engine.session().expect("session");
    fixtures::register_oracle(&session, oracle);
    session
}

async fn run_slt_files(
    engine: &Engine,
    oracle: &[fixtures::Oracle],
    filter: &str,
    complete: bool,
) -> (usize, Vec<String>) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("sql-tests/slt exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "slt"))
        .filter(|path| path.to_string_lossy().contains(filter))
        .collect();
    files.sort();
    let mut passed = 0;
    let mut failures = Vec::new();
    for file in files {
        let session = session_for(engine, oracle).await;
        let mut runner = sqllogictest::Runner::new(move || {
            let session = session.clone();
            async move { Ok(SltDb(Embedded { session })) }
        });
        runner.with_validator(row_validator);
        runner.with_column_validator(sqllogictest::strict_column_validator);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if complete {
            // Maintainer mode: rewrite expected results with what the engine returns now.
            let updated = runner
                .update_test_file(
                    &file,
                    " ",
                    row_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::strict_column_validator,
                )
                .await;
            match updated {
                Ok(()) => println!("slt {name} ... rewritten"),
                Err(error) => failures.push(format!("slt {name}: {error}")),
            }
            continue;
        }
        match runner.run_file_async(&file).await {
            Ok(()) => {
                println!("slt {name} ... ok");
                passed += 1;
            }
            Err(error) => {
                println!("slt {name} ... FAILED\n{error}");
                failures.push(format!("slt {name}"));
            }
        }
    }
    (passed, failures)
}

async fn run_oracle_queries(
    engine: &Engine,
    oracle: &[fixtures::Oracle],
    filter: &str,
) -> (usize, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests/oracle.sql");
    let text = std::fs::read_to_string(&path).expect("sql-tests/oracle.sql exists");
    let without_comments: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let templates: Vec<String> = without_comments
        .split(';')
        .map(|query| query.trim().to_string())
        .filter(|query| !query.is_empty() && query.contains(filter))
        .collect();
    let mut target = Embedded {
        session: session_for(engine, oracle).await,
    };
    let mut passed = 0;
    let mut failures = Vec::new();
    for template in &templates {
        let (template, must_push) = match template.strip_prefix(PUSHED_MARK) {
            Some(rest) => (rest.trim(), true),
            None => (template.as_str(), false),
        };
        let Some((placeholder, tables)) = placeholder_tables(template) else {
            println!("oracle template without a table placeholder: {template}");
            failures.push(format!("oracle template without a placeholder: {template}"));
            continue;
        };
        // With ORDER BY the order is part of the answer; otherwise rows may come in any order.
        let ordered = template.to_ascii_uppercase().contains("ORDER BY");
        for table in tables {
            let lance_sql = template.replace(placeholder, table);
            let oracle_table = format!("oracle.public.{table}");
            let oracle_sql = template.replace(placeholder, &oracle_table);
            let lance = target
                .query(&lance_sql)
                .await
                .map(|rows| comparable(rows, ordered));
            let expected = target
                .query(&oracle_sql)
                .await
                .map(|rows| comparable(rows, ordered));
            let results_match = match (lance, expected) {
                (Ok(actual), Ok(expected)) if actual == expected => true,
                (actual, expected) => {
                    println!(
                        "oracle mismatch for: {lance_sql}\n  lance:  {actual:?}\n  oracle: {expected:?}"
                    );
                    false
                }
            };
            let pushed = !must_push || filter_is_pushed(&mut target, &lance_sql).await;
            if results_match && pushed {
                passed += 1;
            } else {
                failures.push(format!("oracle {lance_sql}"));
            }
        }
    }
    println!("oracle: {passed} comparisons matched");
    (passed, failures)
}

/// Marks an oracle query whose whole `WHERE` clause must be evaluated by the Lance scan.
const PUSHED_MARK: &str = "@pushed";

/// The placeholder a template uses and the fixtures it stands for; `None` when it has none.
fn placeholder_tables(template: &str) -> Option<(&'static str, Vec<&'static str>)> {
    if template.contains("{t}") {
        Some(("{t}", fixtures::BASIC_TABLES.to_vec()))
    } else if template.contains("{labels}") {
        Some(("{labels}", vec!["t_labels"]))
    } else if template.contains("{evolved}") {
        Some(("{evolved}", vec!["t_evolved"]))
    } else {
        None
    }
}

/// Whether the physical plan of `sql` leaves no filter to DataFusion (every condition went into
/// the scan); prints the plan when it does not.
async fn filter_is_pushed(target: &mut Embedded, sql: &str) -> bool {
    let plan = match target.query(&format!("EXPLAIN {sql}")).await {
        Ok(Some(rows)) => rows
            .rows
            .iter()
            .map(|row| row.join(" "))
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(None) => String::new(),
        Err(error) => format!("EXPLAIN failed: {error}"),
    };
    let physical = plan.split("physical_plan").nth(1).unwrap_or_default();
    let pushed = !physical.is_empty() && !physical.contains("FilterExec");
    if !pushed {
        println!("filter not pushed into the scan for: {sql}\n{plan}");
    }
    pushed
}

/// Rows to compare: as they came when the query orders them, sorted otherwise.
fn comparable(rows: Option<Rows>, ordered: bool) -> Vec<Vec<String>> {
    let mut rows = rows.map(|rows| rows.rows).unwrap_or_default();
    if !ordered {
        rows.sort();
    }
    rows
}

fn main() {
    // `cargo test` passes libtest flags (e.g. --nocapture); only a bare word is a filter.
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    let complete = std::env::var_os("LANCESQL_SLT_COMPLETE").is_some();
    // The engine's own runtime and statement thread, as the binary runs them: the suite plans
    // statements as deep as the engine admits.
    let runtime = lancesql::runtime::build().expect("tokio runtime");
    let (passed, failures) = lancesql::runtime::run_on_statement_thread(&runtime, || async {
        let root = tempfile::tempdir().expect("temporary data root");
        let root_path = root.path().to_string_lossy().to_string();
        let oracle = fixtures::write_fixtures(&root_path).await;
        let engine = Engine::new(
            &StoreConfig::local(root_path.clone()),
            EngineConfig {
                target_partitions: Some(2),
                ..EngineConfig::default()
            },
        )
        .expect("engine over the fixture root");
        let (slt_passed, mut failures) = run_slt_files(&engine, &oracle, &filter, complete).await;
        let (oracle_passed, oracle_failures) = run_oracle_queries(&engine, &oracle, &filter).await;
        failures.extend(oracle_failures);
        (slt_passed + oracle_passed, failures)
    })
    .expect("the statement thread");
    println!("{passed} passed, {} failed", failures.len());
    if !failures.is_empty() {
        for failure in &failures {
            println!("  failed: {failure}");
        }
        std::process::exit(1);
    }
}
