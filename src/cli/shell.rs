//! The embedded SQL shell: `lancesql sql` (interactive or piped) and `lancesql sql -c/-f`.
//!
//! Contract:
//! - Interactive mode (standard input is a terminal) reads statements with line editing and
//!   history (saved after every entry), runs each as soon as it ends with `;`, prints results as
//!   tables with row counts and timings, and keeps going after errors. Ctrl-C while a statement
//!   runs cancels that statement (SQLSTATE 57014) and returns to the prompt; Ctrl-C at the prompt
//!   clears the line.
//! - Scripted mode (`-c`, `-f`, or statements piped on standard input) runs statements in order,
//!   writes only results to standard output, and stops at the first error, which the caller turns
//!   into a non-zero exit status.
//! - Results stream batch by batch in every format (see [`crate::cli::output`]); errors always go to
//!   standard error with their SQLSTATE.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use futures::TryStreamExt;

use crate::cli::output::{OutputFormat, Written, output_error, write_results};
use crate::cli::progress::TerminalProgress;
use crate::engine::session::{LanceSession, Outcome};
use crate::error::{Error, Result};

/// A shell over one session.
pub struct Shell {
    session: LanceSession,
    format: OutputFormat,
    max_rows: usize,
}

/// Whether counts and timings follow each result (interactive use only).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Summary {
    Show,
    Hide,
}

impl Shell {
    /// A shell writing results in `format`; tables show at most `max_rows` rows (0: all). Long
    /// statements show their progress when standard error is a terminal.
    pub fn new(session: LanceSession, format: OutputFormat, max_rows: usize) -> Self {
        let session = if std::io::stderr().is_terminal() {
            session.with_progress(std::sync::Arc::new(TerminalProgress::default()))
        } else {
            session
        };
        Shell {
            session,
            format,
            max_rows,
        }
    }

    /// Runs every statement in `sql`, writing results to `out`; stops at the first error.
    pub async fn run_script(&self, sql: &str, out: &mut dyn Write) -> Result<()> {
        for statement in self.session.parse(sql)? {
            self.run_statement(statement, out, Summary::Hide).await?;
        }
        Ok(())
    }

    /// Runs statements (and `\` commands) read from a pipe, as a script: stops at the first
    /// error.
    pub async fn run_piped(&self, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<()> {
        let mut buffer = StatementBuffer::default();
        loop {
            let mut line = String::new();
            let read =
                tokio::task::block_in_place(|| input.read_line(&mut line)).map_err(|source| {
                    Error::File {
                        path: "<stdin>".into(),
                        source,
                    }
                })?;
            let entry = if read == 0 {
                buffer.finish()
            } else {
                buffer.push(&line)
            };
            let flow = match entry {
                Some(Entry::Meta(command)) => self.run_meta(command, out, Summary::Hide).await?,
                Some(Entry::Sql(sql)) => {
                    self.run_script(&sql, out).await?;
                    Flow::Continue
                }
                None => Flow::Continue,
            };
            if flow == Flow::Quit {
                return Ok(());
            }
            if read == 0 {
                return Ok(());
            }
        }
    }

    /// Reads statements from the terminal until `\q` or end of input.
    pub async fn interactive(&self, history: Option<PathBuf>) -> Result<()> {
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|error| Error::invalid(format!("cannot start the line editor: {error}")))?;
        if let Some(path) = &history {
            // A missing history file is normal on first use.
            let _ = editor.load_history(path);
        }
        let mut stdout = std::io::stdout();
        let mut buffer = StatementBuffer::default();
        loop {
            let prompt = if buffer.is_empty() {
                "lancesql> "
            } else {
                "     ...> "
            };
            let entry = match tokio::task::block_in_place(|| editor.readline(prompt)) {
                Ok(line) => buffer.push(&line),
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                Err(rustyline::error::ReadlineError::Eof) => buffer.finish(),
                Err(error) => return Err(Error::invalid(format!("reading input: {error}"))),
            };
            let Some(entry) = entry else {
                if buffer.ended {
                    break;
                }
                continue;
            };
            let _ = editor.add_history_entry(entry.text());
            if let Some(path) = &history
                && let Err(error) = editor.save_history(path)
            {
                tracing::warn!(%error, "could not save shell history");
            }
            let flow = match entry {
                Entry::Meta(command) => {
                    cancellable(self.run_meta(command, &mut stdout, Summary::Show)).await
                }
                Entry::Sql(sql) => {
                    self.run_interactive(&sql, &mut stdout).await;
                    Ok(Flow::Continue)
                }
            };
            match flow {
                Ok(Flow::Quit) => break,
                Ok(Flow::Continue) => {}
                Err(error) => report(&error),
            }
            if buffer.ended {
                break;
            }
        }
        Ok(())
    }

    /// Runs statements, reporting each error and going on with the next statement; Ctrl-C
    /// cancels the running statement and the ones after it.
    async fn run_interactive(&self, sql: &str, out: &mut dyn Write) {
        let statements = match self.session.parse(sql) {
            Ok(statements) => statements,
            Err(error) => return report(&error),
        };
        for statement in statements {
            match cancellable(self.run_statement(statement, out, Summary::Show)).await {
                Ok(()) => {}
                Err(Error::Cancelled) => {
                    report(&Error::Cancelled);
                    return;
                }
                Err(error) => report(&error),
            }
        }
    }

    async fn run_statement(
        &self,
        statement: datafusion::sql::parser::Statement,
        out: &mut dyn Write,
        summary: Summary,
    ) -> Result<()> {
        let started = Instant::now();
        match self.session.run(statement).await? {
            Outcome::Done(tag) => {
                if self.format == OutputFormat::Table {
                    write_line(out, &tag.to_string())?;
                }
                if summary == Summary::Show {
                    self.write_summary(out, &format!("({:.3}s)", started.elapsed().as_secs_f64()))?;
                }
            }
            Outcome::Rows { stream, .. } => {
                let written = write_results(self.format, stream, self.max_rows, out).await?;
                if self.format == OutputFormat::Table && written.shown < written.rows {
                    write_line(
                        out,
                        &format!(
                            "(showing the first {} of {} rows: --max-rows 0 shows all)",
                            written.shown, written.rows
                        ),
                    )?;
                }
                if summary == Summary::Show {
                    self.write_summary(out, &row_summary(written, started))?;
                }
            }
        }
        out.flush().map_err(output_error)
    }

    /// Counts and timings go next to tables; with machine formats they go to standard error, so
    /// the output stays a valid CSV, JSON or Arrow stream.
    fn write_summary(&self, out: &mut dyn Write, text: &str) -> Result<()> {
        if self.format == OutputFormat::Table {
            write_line(out, text)
        } else {
            eprintln!("{text}");
            Ok(())
        }
    }

    async fn run_meta(
        &self,
        command: MetaCommand,
        out: &mut dyn Write,
        summary: Summary,
    ) -> Result<Flow> {
        match command {
            MetaCommand::Quit => return Ok(Flow::Quit),
            MetaCommand::Help => write_line(out, HELP)?,
            MetaCommand::ListTables => {
                for statement in self.session.parse(LIST_TABLES)? {
                    self.run_statement(statement, out, summary).await?;
                }
                self.report_unreadable_entries().await?;
            }
            MetaCommand::Describe(table) => {
                let sql = format!("DESCRIBE \"{}\"", table.replace('"', "\"\""));
                for statement in self.session.parse(&sql)? {
                    self.run_statement(statement, out, summary).await?;
                }
            }
            MetaCommand::Unknown(text) => {
                return Err(Error::invalid(format!(
                    "unknown command '{text}'; \\? lists them"
                )));
            }
        }
        Ok(Flow::Continue)
    }

    /// After `\dt`: names the entries under the root that are not readable tables, on stderr.
    async fn report_unreadable_entries(&self) -> Result<()> {
        let stream = self
            .session
            .sql_stream("SELECT entry, reason FROM system.unreadable_entries ORDER BY entry")
            .await?;
        let batches: Vec<arrow::array::RecordBatch> = stream.try_collect().await?;
        for batch in batches {
            let entries = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>();
            let reasons = batch
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>();
            if let (Some(entries), Some(reasons)) = (entries, reasons) {
                for (entry, reason) in entries.iter().zip(reasons.iter()) {
                    eprintln!(
                        "unreadable: {}: {}",
                        entry.unwrap_or_default(),
                        reason.unwrap_or_default()
                    );
                }
            }
        }
        Ok(())
    }
}

/// Runs `work`, or stops it at Ctrl-C with [`Error::Cancelled`]. Dropping the work cancels the
/// statement: its streams and the tasks feeding them stop.
async fn cancellable<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(Error::Cancelled),
    }
}

fn row_summary(written: Written, started: Instant) -> String {
    let noun = if written.rows == 1 { "row" } else { "rows" };
    format!(
        "({} {noun}, {:.3}s)",
        written.rows,
        started.elapsed().as_secs_f64()
    )
}

/// Prints an error the way the shell always does: `ERROR [SQLSTATE]: message` on stderr.
pub fn report(error: &Error) {
    eprintln!("ERROR [{}]: {error}", error.sqlstate());
}

const HELP: &str = "\\dt          list tables (and name unreadable entries)\n\\d <table>   describe a table\n\\q           quit\nSQL statements end with ';'. Ctrl-C cancels a running statement.";

const LIST_TABLES: &str = "SELECT table_name FROM information_schema.tables \
     WHERE table_schema = 'public' ORDER BY table_name";

#[derive(Debug, Clone, PartialEq, Eq)]
enum MetaCommand {
    Quit,
    Help,
    ListTables,
    Describe(String),
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

fn meta_command(line: &str) -> MetaCommand {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\q"), None) => MetaCommand::Quit,
        (Some("\\?"), None) => MetaCommand::Help,
        (Some("\\dt"), None) | (Some("\\d"), None) => MetaCommand::ListTables,
        (Some("\\d"), Some(table)) => MetaCommand::Describe(table.to_string()),
        _ => MetaCommand::Unknown(line.to_string()),
    }
}

/// One complete piece of input: a `\` command, or SQL ending with `;`.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Meta(MetaCommand),
    Sql(String),
}

impl Entry {
    /// The text as entered, for the history.
    fn text(&self) -> String {
        match self {
            Entry::Meta(MetaCommand::Quit) => "\\q".into(),
            Entry::Meta(MetaCommand::Help) => "\\?".into(),
            Entry::Meta(MetaCommand::ListTables) => "\\dt".into(),
            Entry::Meta(MetaCommand::Describe(table)) => format!("\\d {table}"),
            Entry::Meta(MetaCommand::Unknown(text)) => text.clone(),
            Entry::Sql(sql) => sql.trim().to_string(),
        }
    }
}

/// Collects lines until they form an entry: a `\` command on a line of its own, or SQL up to a
/// line ending with `;` (or the end of input).
#[derive(Default)]
struct StatementBuffer {
    pending: String,
    /// The input has ended.
    ended: bool,
}

impl StatementBuffer {
    fn is_empty(&self) -> bool {
        self.pending.trim().is_empty()
    }

    fn clear(&mut self) {
        self.pending.clear();
    }

    fn push(&mut self, line: &str) -> Option<Entry> {
        let trimmed = line.trim();
        if self.is_empty() && trimmed.starts_with('\\') {
            self.pending.clear();
            return Some(Entry::Meta(meta_command(trimmed)));
        }
        if trimmed.is_empty() && self.is_empty() {
            return None;
        }
        self.pending.push_str(line.trim_end_matches(['\n', '\r']));
        self.pending.push('\n');
        if trimmed.ends_with(';') {
            Some(Entry::Sql(std::mem::take(&mut self.pending)))
        } else {
            None
        }
    }

    /// The end of input: whatever is pending is the last entry.
    fn finish(&mut self) -> Option<Entry> {
        self.ended = true;
        if self.is_empty() {
            None
        } else {
            Some(Entry::Sql(std::mem::take(&mut self.pending)))
        }
    }
}

fn write_line(out: &mut dyn Write, text: &str) -> Result<()> {
    writeln!(out, "{text}").map_err(output_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_entries() {
        let mut buffer = StatementBuffer::default();
        assert_eq!(buffer.push("SELECT 1"), None);
        assert_eq!(
            buffer.push("  + 1;"),
            Some(Entry::Sql("SELECT 1\n  + 1;\n".into()))
        );
        assert_eq!(
            buffer.push("\\dt"),
            Some(Entry::Meta(MetaCommand::ListTables))
        );
        assert_eq!(
            buffer.push("\\d items"),
            Some(Entry::Meta(MetaCommand::Describe("items".into())))
        );
        assert_eq!(buffer.push("SELECT 2"), None);
        assert_eq!(buffer.finish(), Some(Entry::Sql("SELECT 2\n".into())));
        assert!(buffer.ended);
        assert_eq!(buffer.finish(), None);
    }
}
