//! Reading tables as they were: `FROM t VERSION AS OF 3`, `FROM t TIMESTAMP AS OF
//! '2026-01-01 00:00:00+00'` (also `FOR SYSTEM_TIME AS OF`), and by tag, `FROM t AT (TAG =>
//! 'nightly')` (also `AT (VERSION => 3)` and `AT (TIMESTAMP => '...')`).
//!
//! DataFusion's planner ignores table versions, so this runs on the parsed statement before its
//! tables are resolved: each versioned reference to a table is resolved (tags and manifests
//! only, through the data root) to a version number, renamed to the snapshot's name for the
//! table at that version ([`versioned_name`]) and aliased to the name it was written with, so
//! the rest of the statement refers to it as before. One table at two versions is two tables
//! of the statement (give them aliases to join them). Times without an offset are UTC.
//!
//! The search functions take the same as an option, `vector_search('t', ..., 'version', 3)` (or
//! a tag name): the option is resolved here too and the call handed the table at that version.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, ObjectNamePart,
    TableAlias, TableFactor, TableVersion, Value, VisitMut, VisitorMut,
};

use crate::catalog::versioned_name;
use crate::error::{Error, Result};
use crate::functions::search::options_start;
use crate::storage::DataRoot;
use crate::storage::history::AsOf;

/// Resolves every versioned table reference in `statement` and renames it to the table at that
/// version (see the module docs).
pub(super) async fn pin_versions(statement: &mut DFStatement, root: &DataRoot) -> Result<()> {
    let inner = match statement {
        DFStatement::Statement(inner) => inner,
        DFStatement::Explain(explain) => {
            return Box::pin(pin_versions(&mut explain.statement, root)).await;
        }
        _ => return Ok(()),
    };
    let mut found = Collect::default();
    let _ = inner.visit(&mut found);
    if let Some(error) = found.error {
        return Err(error);
    }
    if found.requests.is_empty() {
        return Ok(());
    }
    let mut versions = Vec::with_capacity(found.requests.len());
    for (table, at) in &found.requests {
        versions.push(root.version_as_of(table, at).await?);
    }
    let _ = inner.visit(&mut Rename {
        versions: versions.into_iter(),
    });
    Ok(())
}

/// The versioned references, in the order the visitor meets them.
#[derive(Default)]
struct Collect {
    requests: Vec<(String, AsOf)>,
    error: Option<Error>,
}

impl VisitorMut for Collect {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let request = match factor {
            TableFactor::Table {
                name,
                version: Some(version),
                args,
                ..
            } => {
                if args.is_some() {
                    Err(Error::invalid(format!(
                        "{name}(...) is a function; only tables have versions"
                    )))
                } else {
                    table_name(name).and_then(|table| Ok(Some((table, as_of(version)?))))
                }
            }
            _ => search_version(factor).map(|found| found.map(|(_, table, at)| (table, at))),
        };
        match request {
            Ok(Some(request)) => {
                self.requests.push(request);
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(error) => {
                self.error = Some(error);
                ControlFlow::Break(())
            }
        }
    }
}

/// Renames each versioned reference, taking the versions in the order [`Collect`] found them.
struct Rename {
    versions: std::vec::IntoIter<u64>,
}

impl VisitorMut for Rename {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let Ok(Some((position, table, _))) = search_version(factor) {
            let (
                Some(number),
                TableFactor::Table {
                    args: Some(args), ..
                },
            ) = (self.versions.next(), factor)
            else {
                return ControlFlow::Break(());
            };
            args.args[0] = FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                Value::SingleQuotedString(versioned_name(&table, number)),
            )));
            args.args.drain(position..position + 2);
            return ControlFlow::Continue(());
        }
        let TableFactor::Table {
            name,
            alias,
            version: version @ Some(_),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let (Some(number), Some(ObjectNamePart::Identifier(written))) =
            (self.versions.next(), name.0.last().cloned())
        else {
            return ControlFlow::Break(());
        };
        let table = normalize(&written);
        if let Some(last) = name.0.last_mut() {
            *last =
                ObjectNamePart::Identifier(Ident::with_quote('"', versioned_name(&table, number)));
        }
        if alias.is_none() {
            *alias = Some(TableAlias {
                explicit: true,
                name: written,
                columns: Vec::new(),
                at: None,
            });
        }
        *version = None;
        ControlFlow::Continue(())
    }
}

/// The `'version', n` (or `'version', 'tag'`) option of a search-function call: where the pair
/// starts among the arguments, the table the call searches, and the version asked for. `None`
/// for anything else, and for a call whose table argument is not a string (the function
/// reports that itself).
fn search_version(factor: &TableFactor) -> Result<Option<(usize, String, AsOf)>> {
    let TableFactor::Table {
        name,
        args: Some(args),
        version: None,
        ..
    } = factor
    else {
        return Ok(None);
    };
    let [ObjectNamePart::Identifier(function)] = name.0.as_slice() else {
        return Ok(None);
    };
    let function = function.value.to_lowercase();
    let Some(start) = options_start(&function) else {
        return Ok(None);
    };
    let literal = |position: usize| match args.args.get(position) {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(value)))) => Some(&value.value),
        _ => None,
    };
    let Some(position) = (start..args.args.len()).step_by(2).find(|position| {
        matches!(literal(*position), Some(Value::SingleQuotedString(option))
            if option.eq_ignore_ascii_case("version"))
    }) else {
        return Ok(None);
    };
    let at = match literal(position + 1) {
        Some(Value::Number(number, _)) => number
            .parse::<u64>()
            .ok()
            .filter(|version| *version > 0)
            .map(AsOf::Version),
        Some(Value::SingleQuotedString(tag)) => Some(AsOf::Tag(tag.clone())),
        _ => None,
    }
    .ok_or_else(|| {
        Error::invalid(format!(
            "{function}: option 'version' takes a version number (from 1) or a tag name, \
             written as a constant"
        ))
    })?;
    match literal(0) {
        Some(Value::SingleQuotedString(table)) => Ok(Some((position, table.clone(), at))),
        _ => Ok(None),
    }
}

/// The table a versioned reference names (its last part, as SQL folds it).
fn table_name(name: &ObjectName) -> Result<String> {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => Ok(normalize(ident)),
        _ => Err(Error::invalid(format!("'{name}' is not a table name"))),
    }
}

fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// What a version clause asks for.
fn as_of(version: &TableVersion) -> Result<AsOf> {
    match version {
        TableVersion::VersionAsOf(expr) => version_number(expr),
        TableVersion::TimestampAsOf(expr) | TableVersion::ForSystemTimeAsOf(expr) => {
            timestamp(expr)
        }
        TableVersion::Function(Expr::Function(function))
            if function.name.to_string().eq_ignore_ascii_case("at") =>
        {
            at_function(function)
        }
        other => Err(Error::invalid(format!(
            "unsupported table version '{other}': write VERSION AS OF n, TIMESTAMP AS OF '...', \
             or AT (TAG => 'name')"
        ))),
    }
}

/// `AT (VERSION => n)`, `AT (TAG => 'name')` or `AT (TIMESTAMP => '...')`.
fn at_function(function: &ast::Function) -> Result<AsOf> {
    let usage = || {
        Error::invalid(format!(
            "{function}: write AT (VERSION => n), AT (TAG => 'name') or AT (TIMESTAMP => '...')"
        ))
    };
    let FunctionArguments::List(list) = &function.args else {
        return Err(usage());
    };
    let [
        FunctionArg::Named {
            name,
            arg: FunctionArgExpr::Expr(value),
            ..
        },
    ] = list.args.as_slice()
    else {
        return Err(usage());
    };
    match name.value.to_ascii_lowercase().as_str() {
        "version" => version_number(value),
        "timestamp" => timestamp(value),
        "tag" => match value {
            Expr::Value(value) => match &value.value {
                Value::SingleQuotedString(tag) => Ok(AsOf::Tag(tag.clone())),
                _ => Err(usage()),
            },
            _ => Err(usage()),
        },
        _ => Err(usage()),
    }
}

pub(super) fn version_number(expr: &Expr) -> Result<AsOf> {
    let text = match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(number, _) => Some(number.to_string()),
            _ => None,
        },
        _ => None,
    };
    text.and_then(|text| text.parse::<u64>().ok())
        .filter(|version| *version > 0)
        .map(AsOf::Version)
        .ok_or_else(|| {
            Error::invalid(format!(
                "a table version is a whole number from 1, not '{expr}'"
            ))
        })
}

pub(super) fn timestamp(expr: &Expr) -> Result<AsOf> {
    let written = match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text.clone()),
            _ => None,
        },
        Expr::TypedString(typed) => match &typed.value.value {
            Value::SingleQuotedString(text) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| {
        Error::invalid(format!(
            "TIMESTAMP AS OF takes a time written as a string ('2026-01-01 00:00:00+00'), not \
             '{expr}'"
        ))
    })?;
    let nanos = arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(&written).map_err(
        |error| {
            Error::invalid(format!(
                "'{written}' is not a time TIMESTAMP AS OF understands: {error}"
            ))
        },
    )?;
    Ok(AsOf::Timestamp { nanos, written })
}
