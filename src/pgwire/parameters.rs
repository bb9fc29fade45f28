//! Bound parameter values of an extended-protocol portal, as the engine takes them.
//!
//! Values are decoded by `arrow-pg` from the type the client declared, or else the type the
//! engine inferred for the parameter. Array text is made canonical first: Postgres ignores
//! whitespace around unquoted elements (`{r, v}` is `{r,v}`), the decoder below does not, and
//! clients send it (the ADBC driver's catalog queries).

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use postgres_types::Kind;

use crate::engine::PreparedStatement;
use crate::error::Error;
use crate::pgwire::handlers::wire_error;
use crate::pgwire::wire_types::parameter_type;

/// The values bound to `$1`, `$2`, ... of `prepared` in `portal`.
pub fn bound_values<S: Clone + Default>(
    portal: &Portal<S>,
    prepared: &PreparedStatement,
) -> PgWireResult<Vec<ScalarValue>> {
    let types: Vec<Option<&DataType>> = prepared
        .parameter_fields()
        .iter()
        .map(|field| field.as_ref().map(|field| field.data_type()))
        .collect();
    let arrays: Vec<usize> = (0..portal.parameters.len())
        .filter(|&index| {
            let declared = portal
                .statement
                .parameter_types
                .get(index)
                .cloned()
                .flatten();
            let declared_array = declared
                .as_ref()
                .is_some_and(|pg_type| matches!(pg_type.kind(), Kind::Array(_)));
            let inferred_array = declared
                .as_ref()
                .is_none_or(|pg_type| *pg_type == Type::UNKNOWN)
                && types
                    .get(index)
                    .copied()
                    .flatten()
                    .is_some_and(|data_type| {
                        matches!(
                            data_type,
                            DataType::List(_)
                                | DataType::LargeList(_)
                                | DataType::FixedSizeList(..)
                        )
                    });
            !portal.parameter_format.is_binary(index) && (declared_array || inferred_array)
        })
        .collect();
    let fields = prepared.parameter_fields();
    let values = if arrays.is_empty() {
        deserialize_parameters(portal, &types)
            .map_err(|error| naming_the_parameter(portal, fields, &types, error))?
    } else {
        let mut canonical = copy_of(portal);
        for index in arrays {
            if let Some(Some(text)) = canonical.parameters.get_mut(index) {
                *text = canonical_array_text(text);
            }
        }
        deserialize_parameters(&canonical, &types)
            .map_err(|error| naming_the_parameter(&canonical, fields, &types, error))?
    };
    match values {
        ParamValues::List(values) => Ok(values.into_iter().map(|value| value.value).collect()),
        ParamValues::Map(_) => Err(wire_error(Error::invalid(
            "parameters are positional ($1, $2, ...)",
        ))),
    }
}

/// A copy of `portal` to change: portals cannot be built field by field outside pgwire, a
/// default one can be filled.
fn copy_of<S: Clone + Default>(portal: &Portal<S>) -> Portal<S> {
    let mut copy = Portal::default();
    copy.statement = portal.statement.clone();
    copy.parameter_format = portal.parameter_format.clone();
    copy.parameters = portal.parameters.clone();
    copy
}

/// `error`, a value of `portal` that could not be read, with the parameter it was (`$2`) and
/// its type (as the client declared it, else as the server described it): the decoder reads
/// all values at once and does not say which one failed, so on that failure each value is read
/// again alone (the others as NULL) to find it.
fn naming_the_parameter<S: Clone + Default>(
    portal: &Portal<S>,
    fields: &[Option<FieldRef>],
    types: &[Option<&DataType>],
    error: PgWireError,
) -> PgWireError {
    if !matches!(error, PgWireError::FailedToParseParameter(_)) {
        return error;
    }
    for index in 0..portal.parameters.len() {
        let mut alone = copy_of(portal);
        for (other, value) in alone.parameters.iter_mut().enumerate() {
            if other != index {
                *value = None;
            }
        }
        if let Err(PgWireError::FailedToParseParameter(reason)) =
            deserialize_parameters(&alone, types)
        {
            let declared = portal
                .statement
                .parameter_types
                .get(index)
                .cloned()
                .flatten()
                .filter(|pg_type| *pg_type != Type::UNKNOWN);
            let described = || {
                fields
                    .get(index)
                    .cloned()
                    .flatten()
                    .and_then(|field| parameter_type(&field).ok())
            };
            let type_name = declared
                .or_else(described)
                .map_or_else(|| "unknown".to_string(), |pg_type| type_name(&pg_type));
            return PgWireError::FailedToParseParameter(
                format!("${} as {type_name}: {reason}", index + 1).into(),
            );
        }
    }
    error
}

/// `pg_type` as SQL writes it (`float4[]`, not `_float4`).
fn type_name(pg_type: &Type) -> String {
    match pg_type.kind() {
        Kind::Array(element) => format!("{}[]", element.name()),
        _ => pg_type.name().to_string(),
    }
}

/// Array text without the whitespace Postgres ignores: around braces, commas and unquoted
/// elements (whitespace inside an element, or inside quotes, is kept).
fn canonical_array_text(text: &Bytes) -> Bytes {
    let mut out = Vec::with_capacity(text.len());
    let mut spaces = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    for &byte in text.iter() {
        if quoted {
            out.push(byte);
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => quoted = false,
                _ => {}
            }
            continue;
        }
        if byte.is_ascii_whitespace() {
            spaces.push(byte);
            continue;
        }
        let after_separator = matches!(out.last(), None | Some(b'{' | b','));
        if !matches!(byte, b',' | b'}' | b'{') && !after_separator {
            out.append(&mut spaces);
        }
        spaces.clear();
        if byte == b'"' {
            quoted = true;
        }
        out.push(byte);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::canonical_array_text;
    use bytes::Bytes;

    fn canonical(text: &str) -> String {
        String::from_utf8(canonical_array_text(&Bytes::from(text.to_string())).to_vec())
            .expect("utf-8")
    }

    #[test]
    fn whitespace_is_dropped_only_where_postgres_ignores_it() {
        assert_eq!(canonical("{p, f,  t ,m}"), "{p,f,t,m}");
        assert_eq!(canonical(" { 1.5 , -2 } "), "{1.5,-2}");
        assert_eq!(canonical("{a b, \" c ,d \"}"), "{a b,\" c ,d \"}");
        assert_eq!(canonical("{\"x\\\" y\" , z}"), "{\"x\\\" y\",z}");
        assert_eq!(canonical("{}"), "{}");
    }
}
