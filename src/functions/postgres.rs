//! Functions Postgres clients call to learn what they talk to, which the catalog emulation
//! (`datafusion-pg-catalog`) lacks.
//!
//! - `version()` answers like Postgres (`PostgreSQL 16.6 ...`): drivers and ORMs (SQLAlchemy,
//!   pgjdbc, DBeaver) parse the number after `PostgreSQL` and refuse a server they cannot place.
//! - `to_regtype(name)`: the OID of a built-in type (Postgres' OIDs, as `pg_type` lists them),
//!   NULL for any other name (psycopg looks types up with it on connect).
//! - `pg_type_is_visible(oid)`, `pg_function_is_visible(oid)`: true; every type and function
//!   lancesql has lives in `pg_catalog`, which is always on the search path (SQLAlchemy's column
//!   reflection and psql's `\df` ask).
//! - `pg_get_function_result(oid)`, `pg_get_function_arguments(oid)`: NULL (psql's `\df`).
//! - `pg_get_indexdef(index oid [, column, pretty])`: NULL; lancesql's `pg_index` has no rows
//!   (SQLAlchemy's index reflection).
//! - `col_description(table oid, column number)`: NULL; lancesql keeps no column comments (the
//!   ADBC driver's column listing).
//! - `pg_my_temp_schema()`: 0, as in a session without temporary tables (the ADBC driver's
//!   schema listing).
//! - `parse_ident(text [, strict])`: Postgres' rules (whitespace around dots, unquoted names
//!   folded to lower case, `""` inside quotes), replacing the catalog emulation's, which keeps
//!   spaces and case. `'"public" . "products"'::regclass` resolves through it (the ADBC driver's
//!   ingest).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, ListBuilder, StringArray, StringBuilder,
};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use crate::config::POSTGRES_VERSION;

/// `version()`: the Postgres version lancesql speaks, then what it is.
pub fn version() -> ScalarUDF {
    let text = format!(
        "PostgreSQL {POSTGRES_VERSION} (lancesql {}) on {}-{}, Apache DataFusion and Lance",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
    );
    create_udf(
        "version",
        Vec::new(),
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// Built-in type names and aliases with their Postgres OIDs.
const BUILTIN_TYPES: &[(&str, i32)] = &[
    ("bool", 16),
    ("boolean", 16),
    ("bytea", 17),
    ("char", 18),
    ("name", 19),
    ("int8", 20),
    ("bigint", 20),
    ("int2", 21),
    ("smallint", 21),
    ("int4", 23),
    ("integer", 23),
    ("int", 23),
    ("text", 25),
    ("oid", 26),
    ("json", 114),
    ("float4", 700),
    ("real", 700),
    ("float8", 701),
    ("double precision", 701),
    ("varchar", 1043),
    ("character varying", 1043),
    ("date", 1082),
    ("time", 1083),
    ("timestamp", 1114),
    ("timestamp without time zone", 1114),
    ("timestamptz", 1184),
    ("timestamp with time zone", 1184),
    ("interval", 1186),
    ("numeric", 1700),
    ("decimal", 1700),
    ("uuid", 2950),
    ("jsonb", 3802),
];

/// `to_regtype(text)`: a built-in type's OID, or NULL.
pub fn to_regtype() -> ScalarUDF {
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|arguments| {
            let lookup = |name: Option<&str>| {
                let name = name?
                    .trim()
                    .trim_start_matches("pg_catalog.")
                    .to_ascii_lowercase();
                BUILTIN_TYPES
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(_, oid)| *oid)
            };
            Ok(match &arguments[0] {
                ColumnarValue::Scalar(value) => {
                    let name = match value {
                        ScalarValue::Utf8(name) | ScalarValue::LargeUtf8(name) => name.as_deref(),
                        _ => None,
                    };
                    ColumnarValue::Scalar(ScalarValue::Int32(lookup(name)))
                }
                ColumnarValue::Array(array) => {
                    let names = arrow::compute::cast(array, &DataType::Utf8)?;
                    let names = names
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| {
                            datafusion::error::DataFusionError::Internal(
                                "to_regtype: names did not cast to text".into(),
                            )
                        })?;
                    let oids: Int32Array = names.iter().map(lookup).collect();
                    ColumnarValue::Array(Arc::new(oids) as ArrayRef)
                }
            })
        }),
    )
}

/// `pg_type_is_visible(oid)`, `pg_function_is_visible(oid)`: true for any object (see the
/// module docs); NULL for NULL.
pub fn visible(name: &str) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|arguments| {
            Ok(match &arguments[0] {
                ColumnarValue::Scalar(value) => {
                    ColumnarValue::Scalar(ScalarValue::Boolean((!value.is_null()).then_some(true)))
                }
                ColumnarValue::Array(array) => {
                    let visible: BooleanArray = (0..array.len())
                        .map(|row| array.is_valid(row).then_some(true))
                        .collect();
                    ColumnarValue::Array(Arc::new(visible) as ArrayRef)
                }
            })
        }),
    )
}

/// A function of any arguments that answers NULL text: what Postgres describes and lancesql
/// has nothing of (see the module docs): `pg_get_function_result`, `pg_get_function_arguments`
/// (`pg_proc` holds no definitions, so psql's `\df` lists no functions, as on a fresh Postgres
/// database), `col_description` (no comments) and `pg_get_indexdef` (`pg_index` has no rows).
pub fn null_text(name: &'static str) -> ScalarUDF {
    ScalarUDF::new_from_impl(NullText {
        name,
        signature: datafusion::logical_expr::Signature::variadic_any(Volatility::Stable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NullText {
    name: &'static str,
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for NullText {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        _: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// `pg_my_temp_schema()`: the OID of the session's temporary schema, 0 for none.
pub fn my_temp_schema() -> ScalarUDF {
    create_udf(
        "pg_my_temp_schema",
        Vec::new(),
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(0))))),
    )
}

/// `parse_ident(text [, strict boolean])`: a qualified name split into its parts (see the
/// module docs).
pub fn parse_ident() -> ScalarUDF {
    let parts = DataType::List(Arc::new(arrow::datatypes::Field::new(
        "item",
        DataType::Utf8,
        true,
    )));
    let signature = datafusion::logical_expr::Signature::one_of(
        vec![
            datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Utf8]),
            datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
        ],
        Volatility::Immutable,
    );
    datafusion::logical_expr::ScalarUDF::new_from_impl(ParseIdent { signature, parts })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ParseIdent {
    signature: datafusion::logical_expr::Signature,
    parts: DataType,
}

impl datafusion::logical_expr::ScalarUDFImpl for ParseIdent {
    fn name(&self) -> &str {
        "parse_ident"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.parts.clone())
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = arrays[0]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(
                    "parse_ident: names are not text".into(),
                )
            })?;
        let strict = match arrays.get(1) {
            Some(flags) => Some(flags.as_any().downcast_ref::<BooleanArray>().ok_or_else(
                || {
                    datafusion::error::DataFusionError::Internal(
                        "parse_ident: strict is not boolean".into(),
                    )
                },
            )?),
            None => None,
        };
        let mut builder = ListBuilder::new(StringBuilder::new());
        for row in 0..rows {
            if names.is_null(row) || strict.is_some_and(|flags| flags.is_null(row)) {
                builder.append_null();
                continue;
            }
            let strict = strict.is_none_or(|flags| flags.value(row));
            let parts = split_identifier(names.value(row), strict).map_err(|reason| {
                datafusion::error::DataFusionError::External(Box::new(
                    crate::error::Error::invalid(format!(
                        "string is not a valid identifier: \"{}\" ({reason})",
                        names.value(row)
                    )),
                ))
            })?;
            for part in parts {
                builder.values().append_value(part);
            }
            builder.append(true);
        }
        let parts: ArrayRef = Arc::new(builder.finish());
        Ok(ColumnarValue::Array(parts))
    }
}

/// Splits a qualified SQL name as Postgres' `parse_ident` does; with `strict`, nothing may
/// follow the last part.
fn split_identifier(text: &str, strict: bool) -> Result<Vec<String>, &'static str> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut part = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => part.push('"'),
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err("unclosed double quotes"),
                }
            }
            if part.is_empty() {
                return Err("quoted identifier must not be empty");
            }
        } else {
            while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '$') {
                part.extend(c.to_lowercase());
            }
            if part.is_empty() {
                return Err(if parts.is_empty() {
                    "no valid identifier"
                } else {
                    "no valid identifier after \".\""
                });
            }
        }
        parts.push(part);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'.').is_none() {
            break;
        }
    }
    if strict && chars.peek().is_some() {
        return Err("text after the identifier");
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::split_identifier;

    #[test]
    fn identifiers_split_as_in_postgres() {
        assert_eq!(
            split_identifier("\"public\" . \"products\"", true),
            Ok(vec!["public".to_string(), "products".to_string()])
        );
        assert_eq!(
            split_identifier("  MySchema.\"Odd \"\"Name\"\"\"", true),
            Ok(vec!["myschema".to_string(), "Odd \"Name\"".to_string()])
        );
        assert_eq!(
            split_identifier("a.b junk", false),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert!(split_identifier("a.b junk", true).is_err());
        assert!(split_identifier("a.", true).is_err());
        assert!(split_identifier("\"open", true).is_err());
        assert!(split_identifier("", true).is_err());
    }
}
