//! Postgres run-time parameters and the session commands the engine answers itself.
//!
//! Clients set and read Postgres parameters (`SET application_name = ...`, `SHOW
//! transaction_isolation`, `SET statement_timeout = '5s'`, `SET TIME ZONE 'UTC'`, `DISCARD ALL`).
//! Each parameter here has its Postgres default, a rule for the values lancesql can honour (a
//! value it cannot honour is refused, never stored and ignored), and a documented effect:
//! - `statement_timeout` cancels statements that run longer (SQLSTATE 57014);
//! - `TimeZone` is DataFusion's `datafusion.execution.time_zone` as well;
//! - the others are reported back as set (`application_name`, `extra_float_digits`, ...) or are
//!   fixed facts about the server (`server_version`, `integer_datetimes`, ...).
//!
//! Names with a dot (`lance.*`, `datafusion.*`) are DataFusion settings and never come here.
//! Names are matched case-insensitively and shown as Postgres spells them (`DateStyle`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{self, Expr};

use crate::config::POSTGRES_VERSION;
use crate::engine::transaction::BlockModes;
use crate::error::{Error, Result};

/// [`POSTGRES_VERSION`] as `server_version_num`.
const POSTGRES_VERSION_NUM: &str = "160006";

/// Which values a parameter accepts.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Any text.
    Text,
    /// Only its default: a fact about the server.
    Fixed,
    /// A duration: a number of milliseconds, or a number with a unit (`us`, `ms`, `s`, `min`,
    /// `h`, `d`); `0` turns it off.
    Milliseconds,
    /// An integer in a range.
    Integer { min: i64, max: i64 },
    /// One of these (case-insensitive; stored as listed).
    OneOf(&'static [&'static str]),
    /// A time zone name or offset the Arrow kernels know.
    TimeZone,
    /// A date output style: lancesql writes ISO dates only.
    DateStyle,
    /// A schema search path: lancesql has one schema, `public`, so the path must include it.
    SearchPath,
}

/// One Postgres parameter.
#[derive(Debug)]
struct Parameter {
    name: &'static str,
    default: &'static str,
    rule: Rule,
    /// Sent to Postgres-wire clients at startup and whenever it changes (`GUC_REPORT`).
    reported: bool,
}

const fn parameter(name: &'static str, default: &'static str, rule: Rule) -> Parameter {
    Parameter {
        name,
        default,
        rule,
        reported: false,
    }
}

const fn reported(name: &'static str, default: &'static str, rule: Rule) -> Parameter {
    Parameter {
        name,
        default,
        rule,
        reported: true,
    }
}

/// Isolation levels lancesql provides: each statement reads one committed version of each table
/// (Postgres' READ COMMITTED); READ UNCOMMITTED means the same in Postgres.
const ISOLATION_LEVELS: &[&str] = &["read committed", "read uncommitted"];

/// Every parameter the engine knows. Read-only-server defaults are applied in
/// [`Variables::new`].
const PARAMETERS: &[Parameter] = &[
    reported("application_name", "", Rule::Text),
    reported(
        "client_encoding",
        "UTF8",
        Rule::OneOf(&["UTF8", "SQL_ASCII"]),
    ),
    reported("DateStyle", "ISO, MDY", Rule::DateStyle),
    reported(
        "default_transaction_read_only",
        "off",
        Rule::OneOf(&["off"]),
    ),
    reported("in_hot_standby", "off", Rule::Fixed),
    reported("integer_datetimes", "on", Rule::Fixed),
    reported("IntervalStyle", "postgres", Rule::OneOf(&["postgres"])),
    reported("is_superuser", "off", Rule::Fixed),
    reported("search_path", "\"$user\", public", Rule::SearchPath),
    reported("server_encoding", "UTF8", Rule::Fixed),
    reported("server_version", POSTGRES_VERSION, Rule::Fixed),
    reported("session_authorization", "lancesql", Rule::Fixed),
    reported("standard_conforming_strings", "on", Rule::OneOf(&["on"])),
    reported("TimeZone", "UTC", Rule::TimeZone),
    parameter("bytea_output", "hex", Rule::OneOf(&["hex"])),
    parameter(
        "client_min_messages",
        "notice",
        Rule::OneOf(&[
            "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error",
        ]),
    ),
    parameter(
        "default_transaction_isolation",
        "read committed",
        Rule::OneOf(ISOLATION_LEVELS),
    ),
    parameter(
        "extra_float_digits",
        "1",
        Rule::Integer { min: -15, max: 3 },
    ),
    parameter(
        "idle_in_transaction_session_timeout",
        "0",
        Rule::Milliseconds,
    ),
    parameter("lock_timeout", "0", Rule::Milliseconds),
    parameter("max_identifier_length", "63", Rule::Fixed),
    parameter("server_version_num", POSTGRES_VERSION_NUM, Rule::Fixed),
    parameter("statement_timeout", "0", Rule::Milliseconds),
    parameter(
        "transaction_isolation",
        "read committed",
        Rule::OneOf(ISOLATION_LEVELS),
    ),
    parameter("transaction_read_only", "off", Rule::OneOf(&["off"])),
];

fn find(name: &str) -> Option<&'static Parameter> {
    PARAMETERS
        .iter()
        .find(|parameter| parameter.name.eq_ignore_ascii_case(name))
}

/// A session's Postgres parameters. Clones share the values (one per session).
#[derive(Debug, Clone)]
pub(crate) struct Variables {
    values: Arc<Mutex<HashMap<&'static str, String>>>,
    /// Defaults that differ from Postgres' for this server (read-only mode, the login's user).
    defaults: Arc<Mutex<HashMap<&'static str, String>>>,
    /// Reported parameters `SET`/`RESET` touched since [`Variables::take_reported_changes`].
    touched: Arc<Mutex<BTreeSet<&'static str>>>,
}

impl Variables {
    pub fn new(read_only: bool) -> Self {
        let mut defaults = HashMap::new();
        if read_only {
            for name in ["default_transaction_read_only", "transaction_read_only"] {
                defaults.insert(name, "on".to_string());
            }
        }
        Variables {
            values: Arc::new(Mutex::new(HashMap::new())),
            defaults: Arc::new(Mutex::new(defaults)),
            touched: Arc::default(),
        }
    }

    fn touch(&self, parameter: &'static Parameter) {
        if parameter.reported {
            self.touched
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(parameter.name);
        }
    }

    fn values(&self) -> MutexGuard<'_, HashMap<&'static str, String>> {
        // Whole values only: a poisoned map is still consistent.
        self.values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn defaults(&self) -> MutexGuard<'_, HashMap<&'static str, String>> {
        self.defaults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn default_of(&self, parameter: &'static Parameter) -> String {
        self.defaults()
            .get(parameter.name)
            .cloned()
            .unwrap_or_else(|| parameter.default.to_string())
    }

    /// The current value of `parameter`.
    fn value(&self, parameter: &'static Parameter) -> String {
        let set = self.values().get(parameter.name).cloned();
        set.unwrap_or_else(|| self.default_of(parameter))
    }

    /// The value of the parameter `name`, if it is one.
    pub fn get(&self, name: &str) -> Option<String> {
        find(name).map(|parameter| self.value(parameter))
    }

    /// Sets `name` (a known parameter) to `value` after checking it; returns the stored form.
    pub fn set(&self, name: &str, value: &str) -> Result<String> {
        let parameter = find(name).ok_or_else(|| unknown(name))?;
        let stored = self.check(parameter, value)?;
        self.values().insert(parameter.name, stored.clone());
        self.touch(parameter);
        Ok(stored)
    }

    /// Makes `value` the default of `name` for this session (what the login asked for, which
    /// `RESET` returns to), after the checks of `SET`.
    pub fn set_default(&self, name: &str, value: &str) -> Result<()> {
        let parameter = find(name).ok_or_else(|| unknown(name))?;
        let stored = self.check(parameter, value)?;
        self.defaults().insert(parameter.name, stored);
        Ok(())
    }

    /// Who logged in (`session_authorization`).
    pub fn set_user(&self, user: &str) {
        self.defaults()
            .insert("session_authorization", user.to_string());
    }

    /// Returns `name` to its default.
    pub fn reset(&self, name: &str) -> Result<()> {
        let parameter = find(name).ok_or_else(|| unknown(name))?;
        self.values().remove(parameter.name);
        self.touch(parameter);
        Ok(())
    }

    /// Returns every parameter to its default.
    pub fn reset_all(&self) {
        let names: Vec<&'static str> = self.values().drain().map(|(name, _)| name).collect();
        for name in names {
            if let Some(parameter) = find(name) {
                self.touch(parameter);
            }
        }
    }

    /// The reported parameters `SET`/`RESET` touched since the last call, with their values
    /// now (a client is told of each, as Postgres does with ParameterStatus).
    pub fn take_reported_changes(&self) -> Vec<(String, String)> {
        let touched = std::mem::take(
            &mut *self
                .touched
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        touched
            .into_iter()
            .filter_map(|name| {
                find(name).map(|parameter| (name.to_string(), self.value(parameter)))
            })
            .collect()
    }

    /// The parameters Postgres-wire clients are told about, with their current values.
    pub fn reported(&self) -> Vec<(String, String)> {
        PARAMETERS
            .iter()
            .filter(|parameter| parameter.reported)
            .map(|parameter| (parameter.name.to_string(), self.value(parameter)))
            .collect()
    }

    /// The statement timeout, if one is set.
    pub fn statement_timeout(&self) -> Option<Duration> {
        let value = self.get("statement_timeout")?;
        let milliseconds = parse_milliseconds(&value).ok()?;
        (milliseconds > 0).then(|| Duration::from_millis(milliseconds))
    }

    /// `value` as `parameter` stores it, or why it cannot be honoured.
    fn check(&self, parameter: &'static Parameter, value: &str) -> Result<String> {
        // Some drivers quote startup values (asyncpg sends `'utf-8'`), as SQL would.
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|inner| inner.strip_suffix('\''))
            .unwrap_or(value);
        let refuse = |why: &str| {
            Error::invalid(format!(
                "invalid value for parameter \"{}\": \"{value}\": {why}",
                parameter.name
            ))
        };
        match parameter.rule {
            Rule::Text => Ok(value.to_string()),
            Rule::Fixed => {
                let current = self.value(parameter);
                if value.eq_ignore_ascii_case(&current) {
                    Ok(current)
                } else {
                    Err(Error::invalid(format!(
                        "parameter \"{}\" cannot be changed (it is \"{current}\")",
                        parameter.name
                    )))
                }
            }
            Rule::Milliseconds => {
                let milliseconds = parse_milliseconds(value).map_err(|why| refuse(&why))?;
                Ok(format_milliseconds(milliseconds))
            }
            Rule::Integer { min, max } => match value.trim().parse::<i64>() {
                Ok(number) if (min..=max).contains(&number) => Ok(number.to_string()),
                _ => Err(refuse(&format!("expected an integer from {min} to {max}"))),
            },
            Rule::OneOf(allowed) => {
                let normalized = value.trim().to_ascii_lowercase().replace('-', "");
                allowed
                    .iter()
                    .find(|choice| choice.to_ascii_lowercase().replace('-', "") == normalized)
                    .map(|choice| (*choice).to_string())
                    .ok_or_else(|| {
                        refuse(&format!(
                            "lancesql supports {}",
                            allowed
                                .iter()
                                .map(|choice| format!("'{choice}'"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            }
            Rule::TimeZone => {
                let zone = value.trim();
                zone.parse::<arrow::array::timezone::Tz>()
                    .map(|_| zone.to_string())
                    .map_err(|_| {
                        refuse("expected a time zone name (such as 'UTC' or 'Europe/Paris') or an offset ('+02:00')")
                    })
            }
            Rule::DateStyle => {
                let words: Vec<String> = value
                    .split(',')
                    .map(|word| word.trim().to_ascii_uppercase())
                    .collect();
                let order = words
                    .iter()
                    .find(|word| matches!(word.as_str(), "MDY" | "DMY" | "YMD"))
                    .cloned()
                    .unwrap_or_else(|| "MDY".to_string());
                let known = words
                    .iter()
                    .all(|word| matches!(word.as_str(), "ISO" | "MDY" | "DMY" | "YMD"));
                if known {
                    Ok(format!("ISO, {order}"))
                } else {
                    Err(refuse("lancesql writes dates in ISO style only"))
                }
            }
            Rule::SearchPath => {
                let names_public = value.split(',').any(|schema| {
                    schema
                        .trim()
                        .trim_matches('"')
                        .eq_ignore_ascii_case("public")
                });
                if names_public {
                    Ok(value.to_string())
                } else {
                    Err(refuse(
                        "lancesql has one schema, public, so the path must include it",
                    ))
                }
            }
        }
    }
}

fn unknown(name: &str) -> Error {
    Error::UndefinedParameter {
        name: name.to_string(),
    }
}

/// A Postgres duration setting in milliseconds (`5000`, `'5s'`, `'1min'`, `'250ms'`).
fn parse_milliseconds(value: &str) -> std::result::Result<u64, String> {
    let text = value.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| "expected a duration such as 5000, '5s' or '1min'".to_string())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' (use us, ms, s, min, h or d)"
            ));
        }
    };
    let milliseconds = (number * scale).round();
    if !(0.0..=i32::MAX as f64).contains(&milliseconds) {
        return Err(format!("must be from 0 to {} milliseconds", i32::MAX));
    }
    Ok(milliseconds as u64)
}

/// A duration as Postgres shows it: in the largest unit that divides it exactly.
fn format_milliseconds(milliseconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ];
    if milliseconds == 0 {
        return "0".to_string();
    }
    UNITS
        .iter()
        .find(|(size, _)| milliseconds.is_multiple_of(*size))
        .map(|(size, unit)| format!("{}{unit}", milliseconds / size))
        .unwrap_or_else(|| format!("{milliseconds}ms"))
}

/// The namespace of the engine's own knobs.
const LANCE_PREFIX: &str = "lance.";

/// A statement the session carries out itself rather than planning it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SessionCommand {
    /// `SET name = value` / `SET TIME ZONE value`; `None` is `DEFAULT`.
    Set { name: String, value: Option<String> },
    /// `RESET name`.
    Reset(String),
    /// `RESET lance.<name>`: an engine knob back to the session's initial value (DataFusion's own
    /// `RESET` knows only its built-in namespaces).
    ResetSetting(String),
    /// `RESET ALL`: Postgres parameters and DataFusion settings back to their defaults.
    ResetAll,
    /// `SHOW name`: one row, one column named after the parameter.
    Show(String),
    /// `DISCARD ALL`: `RESET ALL` and `DEALLOCATE ALL`.
    DiscardAll,
}

impl SessionCommand {
    /// The command `statement` is, if the session carries it out itself.
    pub fn from_statement(statement: &DFStatement) -> Result<Option<SessionCommand>> {
        use ast::Statement as S;
        let inner = match statement {
            DFStatement::Reset(datafusion::sql::parser::ResetStatement::Variable(name)) => {
                let name = name.to_string();
                return Ok(if name.eq_ignore_ascii_case("all") {
                    Some(SessionCommand::ResetAll)
                } else if name
                    .get(..LANCE_PREFIX.len())
                    .is_some_and(|prefix| prefix.eq_ignore_ascii_case(LANCE_PREFIX))
                {
                    Some(SessionCommand::ResetSetting(name.to_ascii_lowercase()))
                } else {
                    find(&name).map(|parameter| SessionCommand::Reset(parameter.name.to_string()))
                });
            }
            DFStatement::Statement(inner) => inner.as_ref(),
            _ => return Ok(None),
        };
        Ok(match inner {
            S::Set(ast::Set::SingleAssignment {
                variable, values, ..
            }) => {
                let name = variable.to_string();
                if name.contains('.') {
                    return Ok(None);
                }
                let Some(parameter) = find(&name) else {
                    return Err(unknown(&name));
                };
                Some(SessionCommand::Set {
                    name: parameter.name.to_string(),
                    value: setting_value(values),
                })
            }
            S::Set(ast::Set::SetTimeZone { value, .. }) => Some(SessionCommand::Set {
                name: "TimeZone".to_string(),
                value: setting_value(std::slice::from_ref(value)),
            }),
            S::Set(ast::Set::SetTransaction { modes, .. }) => {
                let isolation = modes.iter().find_map(|mode| match mode {
                    ast::TransactionMode::IsolationLevel(level) => Some(level),
                    ast::TransactionMode::AccessMode(_) => None,
                });
                if check_transaction_modes(modes)?.snapshot {
                    return Err(Error::Unsupported {
                        what: "SET TRANSACTION to REPEATABLE READ or SERIALIZABLE: begin the \
                               block with BEGIN ISOLATION LEVEL ... instead"
                            .into(),
                    });
                }
                isolation.map(|level| SessionCommand::Set {
                    name: "default_transaction_isolation".to_string(),
                    value: Some(level.to_string().to_ascii_lowercase()),
                })
            }
            S::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|part| part.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let name = match name.to_ascii_lowercase().as_str() {
                    "time zone" => "TimeZone".to_string(),
                    "transaction isolation level" => "transaction_isolation".to_string(),
                    _ => name,
                };
                find(&name).map(|parameter| SessionCommand::Show(parameter.name.to_string()))
            }
            S::Discard {
                object_type: ast::DiscardObject::ALL,
            } => Some(SessionCommand::DiscardAll),
            _ => None,
        })
    }

    /// The columns the command returns (only `SHOW` returns any).
    pub fn schema(&self) -> SchemaRef {
        match self {
            SessionCommand::Show(name) => Arc::new(Schema::new(vec![Field::new(
                name.as_str(),
                DataType::Utf8,
                false,
            )])),
            _ => Arc::new(Schema::empty()),
        }
    }

    /// `SHOW name`'s one row.
    pub fn show(variables: &Variables, name: &str) -> Result<RecordBatch> {
        let value = variables.get(name).ok_or_else(|| unknown(name))?;
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec![value]))],
        )
        .map_err(Into::into)
    }
}

/// The modes of `BEGIN` / `START TRANSACTION` (see [`BlockModes`]): REPEATABLE READ and
/// SERIALIZABLE read one snapshot; READ WRITE on a read-only server is left to the statements
/// themselves.
pub(crate) fn check_transaction_modes(modes: &[ast::TransactionMode]) -> Result<BlockModes> {
    let mut block = BlockModes::default();
    for mode in modes {
        match mode {
            ast::TransactionMode::IsolationLevel(level) => {
                block.snapshot = match level {
                    ast::TransactionIsolationLevel::ReadCommitted
                    | ast::TransactionIsolationLevel::ReadUncommitted => false,
                    ast::TransactionIsolationLevel::RepeatableRead
                    | ast::TransactionIsolationLevel::Serializable => true,
                    other => {
                        return Err(Error::Unsupported {
                            what: format!("isolation level {other}"),
                        });
                    }
                }
            }
            ast::TransactionMode::AccessMode(access) => {
                block.read_only = matches!(access, ast::TransactionAccessMode::ReadOnly);
            }
        }
    }
    Ok(block)
}

/// The text of a `SET` value list: strings unquoted, words and numbers as written, several
/// values joined with ", " (`SET DateStyle TO ISO, MDY`); `None` for `DEFAULT` / `LOCAL`.
fn setting_value(values: &[Expr]) -> Option<String> {
    let words: Vec<String> = values
        .iter()
        .map(|value| match value {
            Expr::Value(value) => match &value.value {
                ast::Value::SingleQuotedString(text) | ast::Value::DoubleQuotedString(text) => {
                    text.clone()
                }
                other => other.to_string(),
            },
            Expr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect();
    match words.as_slice() {
        [word] if word.eq_ignore_ascii_case("default") || word.eq_ignore_ascii_case("local") => {
            None
        }
        _ => Some(words.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_show_as_postgres_does() {
        assert_eq!(parse_milliseconds("5000"), Ok(5000));
        assert_eq!(parse_milliseconds("5s"), Ok(5000));
        assert_eq!(parse_milliseconds("1.5 s"), Ok(1500));
        assert_eq!(parse_milliseconds("2min"), Ok(120_000));
        assert!(parse_milliseconds("5 parsecs").is_err());
        assert!(parse_milliseconds("-1").is_err());
        assert_eq!(format_milliseconds(0), "0");
        assert_eq!(format_milliseconds(5000), "5s");
        assert_eq!(format_milliseconds(1500), "1500ms");
        assert_eq!(format_milliseconds(3_600_000), "1h");
    }

    #[test]
    fn values_are_checked_and_normalized() {
        let variables = Variables::new(false);
        assert_eq!(
            variables.set("DATESTYLE", "iso, dmy").ok(),
            Some("ISO, DMY".into())
        );
        assert!(variables.set("DateStyle", "German").is_err());
        assert_eq!(variables.get("datestyle"), Some("ISO, DMY".into()));
        assert!(variables.set("server_version", "9.6").is_err());
        assert!(variables.set("server_version", POSTGRES_VERSION).is_ok());
        assert!(variables.set("timezone", "Mars/Olympus").is_err());
        assert_eq!(
            variables.set("TimeZone", "Europe/Paris").ok(),
            Some("Europe/Paris".into())
        );
        assert!(variables.set("search_path", "analytics").is_err());
        assert!(variables.set("no_such_thing", "1").is_err());
        assert_eq!(variables.statement_timeout(), None);
        assert_eq!(
            variables.set("statement_timeout", "2s").ok(),
            Some("2s".into())
        );
        assert_eq!(variables.statement_timeout(), Some(Duration::from_secs(2)));
        variables.reset_all();
        assert_eq!(variables.get("DateStyle"), Some("ISO, MDY".into()));
        assert_eq!(
            Variables::new(true).get("default_transaction_read_only"),
            Some("on".into())
        );
    }
}
