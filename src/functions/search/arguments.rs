//! Reading table-function arguments: literals of the expected kind, or bind parameters left for
//! later, with errors that name the function and the argument.

use arrow::datatypes::FieldRef;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr::Placeholder;

use crate::error::{Error, Result};

/// One argument as planning sees it.
pub(super) enum Argument<'a> {
    /// A constant.
    Value(&'a ScalarValue),
    /// A bind parameter (`$n`), with the type a cast gave it, if any.
    Parameter(Placeholder),
    /// A scalar subquery, evaluated when the search is planned for execution.
    Subquery(&'a datafusion::logical_expr::Subquery),
}

/// Argument `name` of `function`: a constant or a bind parameter; anything else (a column, a
/// subquery the planner could not fold) is refused.
pub(super) fn argument<'a>(function: &str, name: &str, expr: &'a Expr) -> Result<Argument<'a>> {
    match expr {
        Expr::Literal(value, _) => Ok(Argument::Value(value)),
        Expr::Cast(cast) if matches!(cast.expr.as_ref(), Expr::ScalarSubquery(_)) => {
            match cast.expr.as_ref() {
                Expr::ScalarSubquery(subquery) => Ok(Argument::Subquery(subquery)),
                _ => Err(not_constant(function, name, expr)),
            }
        }
        Expr::Placeholder(placeholder) => Ok(Argument::Parameter(placeholder.clone())),
        Expr::ScalarSubquery(subquery) => Ok(Argument::Subquery(subquery)),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Placeholder(placeholder) => Ok(Argument::Parameter(Placeholder {
                id: placeholder.id.clone(),
                field: Some(cast.field.clone()),
            })),
            _ => Err(not_constant(function, name, expr)),
        },
        _ => Err(not_constant(function, name, expr)),
    }
}

fn not_constant(function: &str, name: &str, expr: &Expr) -> Error {
    Error::invalid(format!(
        "{function}: argument '{name}' must be a constant or a bind parameter, got {expr}"
    ))
}

/// Argument `name` as a constant string.
pub(super) fn string(function: &str, name: &str, expr: &Expr) -> Result<String> {
    match argument(function, name, expr)? {
        Argument::Value(value) => string_value(function, name, value),
        Argument::Parameter(_) | Argument::Subquery(_) => Err(Error::invalid(format!(
            "{function}: argument '{name}' must be a string written in the statement"
        ))),
    }
}

pub(super) fn string_value(function: &str, name: &str, value: &ScalarValue) -> Result<String> {
    match value {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)) => Ok(text.clone()),
        other => Err(Error::invalid(format!(
            "{function}: argument '{name}' must be a string, got {}",
            describe(other)
        ))),
    }
}

/// A positive whole number.
pub(super) fn positive_integer(function: &str, name: &str, value: &ScalarValue) -> Result<usize> {
    let number = integer(value).filter(|number| *number > 0);
    number
        .and_then(|number| usize::try_from(number).ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{function}: argument '{name}' must be a positive integer, got {}",
                describe(value)
            ))
        })
}

/// A whole number, if `value` is one.
pub(super) fn integer(value: &ScalarValue) -> Option<i128> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => i128::from(*v),
        ScalarValue::Int16(Some(v)) => i128::from(*v),
        ScalarValue::Int32(Some(v)) => i128::from(*v),
        ScalarValue::Int64(Some(v)) => i128::from(*v),
        ScalarValue::UInt8(Some(v)) => i128::from(*v),
        ScalarValue::UInt16(Some(v)) => i128::from(*v),
        ScalarValue::UInt32(Some(v)) => i128::from(*v),
        ScalarValue::UInt64(Some(v)) => i128::from(*v),
        _ => return None,
    })
}

/// A number (whole or not).
pub(super) fn number(function: &str, name: &str, value: &ScalarValue) -> Result<f64> {
    let number = match value {
        ScalarValue::Float16(Some(v)) => Some(f64::from(*v)),
        ScalarValue::Float32(Some(v)) => Some(f64::from(*v)),
        ScalarValue::Float64(Some(v)) => Some(*v),
        ScalarValue::Decimal128(Some(v), _, scale) => {
            Some(*v as f64 / 10f64.powi(i32::from(*scale)))
        }
        other => integer(other).map(|v| v as f64),
    };
    number.filter(|v| v.is_finite()).ok_or_else(|| {
        Error::invalid(format!(
            "{function}: argument '{name}' must be a number, got {}",
            describe(value)
        ))
    })
}

/// A boolean.
pub(super) fn boolean(function: &str, name: &str, value: &ScalarValue) -> Result<bool> {
    match value {
        ScalarValue::Boolean(Some(flag)) => Ok(*flag),
        other => Err(Error::invalid(format!(
            "{function}: argument '{name}' must be true or false, got {}",
            describe(other)
        ))),
    }
}

/// A value as the user wrote it (NULL for nulls), for error messages.
pub(super) fn describe(value: &ScalarValue) -> String {
    if value.is_null() {
        "NULL".to_string()
    } else {
        format!("{value} ({})", value.data_type())
    }
}

/// Trailing `'name', value` pairs, each name once.
pub(super) fn option_pairs<'a>(
    function: &str,
    exprs: &'a [Expr],
    known: &[&str],
) -> Result<Vec<(String, &'a ScalarValue)>> {
    if !exprs.len().is_multiple_of(2) {
        return Err(Error::invalid(format!(
            "{function}: options come in pairs ('name', value); the last option has no value"
        )));
    }
    let mut options: Vec<(String, &ScalarValue)> = Vec::new();
    for pair in exprs.chunks(2) {
        let name = string(function, "option name", &pair[0])?.to_ascii_lowercase();
        if !known.contains(&name.as_str()) {
            return Err(Error::invalid(format!(
                "{function}: unknown option '{name}'; options are {}",
                known.join(", ")
            )));
        }
        if options.iter().any(|(seen, _)| *seen == name) {
            return Err(Error::invalid(format!(
                "{function}: option '{name}' is given twice"
            )));
        }
        let value = match argument(function, &name, &pair[1])? {
            Argument::Value(value) => value,
            Argument::Parameter(_) | Argument::Subquery(_) => {
                return Err(Error::invalid(format!(
                    "{function}: option '{name}' must be a constant written in the statement"
                )));
            }
        };
        options.push((name, value));
    }
    Ok(options)
}

/// The placeholder in `expr`, if the argument is a bind parameter.
pub(super) fn parameter(expr: &Expr) -> Option<(String, Option<FieldRef>)> {
    match expr {
        Expr::Placeholder(placeholder) => Some((placeholder.id.clone(), placeholder.field.clone())),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Placeholder(placeholder) => {
                Some((placeholder.id.clone(), Some(cast.field.clone())))
            }
            _ => None,
        },
        _ => None,
    }
}
