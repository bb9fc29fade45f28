//! The embedded SQL shell: `lancesql sql` (interactive) and `lancesql sql -c/-f` (scripted).
//!
//! Interactive mode reads statements with line editing and history, runs each as soon as it ends
//! with `;`, prints results as tables with row counts and timings, and keeps going after errors.
//! Scripted mode runs the given statements in order, writes results in the chosen format (table,
//! CSV, JSON, Arrow IPC stream) to stdout, and stops at the first error, which the caller turns
//! into a non-zero exit status. Errors always go to stderr with their SQLSTATE.

use std::io::Write;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::session::{LanceSession, Outcome};

/// How results are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of objects per result.
    Json,
    /// Arrow IPC stream (binary) per result.
    Arrow,
}

/// A shell over one session.
pub struct Shell {
    session: LanceSession,
    format: OutputFormat,
}

impl Shell {
    pub fn new(session: LanceSession, format: OutputFormat) -> Self {
        Shell { session, format }
    }

    /// Runs every statement in `sql`, writing results to `out`; stops at the first error.
    pub async fn run_script(&self, sql: &str, out: &mut dyn Write) -> Result<()> {
        for statement in self.session.parse(sql)? {
            self.run_statement(statement, out, false).await?;
        }
        Ok(())
    }

    async fn run_statement(
        &self,
        statement: datafusion::sql::parser::Statement,
        out: &mut dyn Write,
        show_summary: bool,
    ) -> Result<()> {
        let started = Instant::now();
        match self.session.execute(statement).await? {
            Outcome::Done { tag } => {
                if self.format == OutputFormat::Table {
                    write_line(out, &tag)?;
                }
                if show_summary {
                    write_line(out, &format!("({:.3}s)", started.elapsed().as_secs_f64()))?;
                }
            }
            Outcome::Rows(frame) => {
                let schema: SchemaRef = frame.schema().inner().clone();
                let batches: Vec<RecordBatch> = frame.execute_stream().await?.try_collect().await?;
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                write_batches(self.format, &schema, &batches, out)?;
                if show_summary {
                    let noun = if rows == 1 { "row" } else { "rows" };
                    write_line(
                        out,
                        &format!("({rows} {noun}, {:.3}s)", started.elapsed().as_secs_f64()),
                    )?;
                }
            }
        }
        out.flush().map_err(stdout_error)
    }

    /// Reads statements from the terminal (or piped stdin) until `\q` or end of input.
    pub async fn interactive(&self, history: Option<std::path::PathBuf>) -> Result<()> {
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|error| Error::invalid(format!("cannot start the line editor: {error}")))?;
        if let Some(path) = &history {
            // A missing history file is normal on first use.
            let _ = editor.load_history(path);
        }
        let mut stdout = std::io::stdout();
        let mut pending = String::new();
        loop {
            let prompt = if pending.is_empty() {
                "lancesql> "
            } else {
                "     ...> "
            };
            let line = match editor.readline(prompt) {
                Ok(line) => line,
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    pending.clear();
                    continue;
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(error) => return Err(Error::invalid(format!("reading input: {error}"))),
            };
            let trimmed = line.trim();
            if pending.is_empty() && trimmed.starts_with('\\') {
                let _ = editor.add_history_entry(trimmed);
                match meta_command(trimmed) {
                    MetaCommand::Quit => break,
                    MetaCommand::Sql(sql) => self.run_interactive(&sql, &mut stdout).await,
                    MetaCommand::Help => write_line(&mut stdout, HELP)?,
                    MetaCommand::Unknown => {
                        eprintln!("unknown command '{trimmed}'; \\? lists them")
                    }
                }
                continue;
            }
            if trimmed.is_empty() && pending.is_empty() {
                continue;
            }
            pending.push_str(&line);
            pending.push('\n');
            if trimmed.ends_with(';') {
                let _ = editor.add_history_entry(pending.trim());
                let sql = std::mem::take(&mut pending);
                self.run_interactive(&sql, &mut stdout).await;
            }
        }
        if !pending.trim().is_empty() {
            self.run_interactive(&pending, &mut stdout).await;
        }
        if let Some(path) = &history
            && let Err(error) = editor.save_history(path)
        {
            tracing::warn!(%error, "could not save shell history");
        }
        Ok(())
    }

    /// Runs statements, reporting each error and going on with the next statement.
    async fn run_interactive(&self, sql: &str, out: &mut dyn Write) {
        let statements = match self.session.parse(sql) {
            Ok(statements) => statements,
            Err(error) => return report(&error),
        };
        for statement in statements {
            if let Err(error) = self.run_statement(statement, out, true).await {
                report(&error);
            }
        }
    }
}

/// Prints an error the way the shell always does: `ERROR [SQLSTATE]: message` on stderr.
pub fn report(error: &Error) {
    eprintln!("ERROR [{}]: {error}", error.sqlstate());
}

const HELP: &str = "\\dt          list tables\n\\d <table>   describe a table\n\\q           quit\nSQL statements end with ';'.";

enum MetaCommand {
    Quit,
    Help,
    Sql(String),
    Unknown,
}

fn meta_command(line: &str) -> MetaCommand {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\q"), None) => MetaCommand::Quit,
        (Some("\\?"), None) => MetaCommand::Help,
        (Some("\\dt"), None) | (Some("\\d"), None) => MetaCommand::Sql(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY table_name;"
                .into(),
        ),
        (Some("\\d"), Some(table)) => {
            MetaCommand::Sql(format!("DESCRIBE \"{}\";", table.replace('"', "\"\"")))
        }
        _ => MetaCommand::Unknown,
    }
}

fn write_batches(
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            let table =
                arrow::util::pretty::pretty_format_batches_with_schema(schema.clone(), batches)
                    .map_err(|error| Error::invalid(format!("formatting results: {error}")))?;
            write_line(out, &table.to_string())
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
            Ok(())
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            write_line(out, "")
        }
        OutputFormat::Arrow => {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut *out, schema)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            Ok(())
        }
    }
}

fn write_line(out: &mut dyn Write, text: &str) -> Result<()> {
    writeln!(out, "{text}").map_err(stdout_error)
}

fn stdout_error(source: std::io::Error) -> Error {
    Error::File {
        path: "<stdout>".into(),
        source,
    }
}
