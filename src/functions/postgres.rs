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

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int32Array, StringArray};
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

/// `pg_get_function_result(oid)`, `pg_get_function_arguments(oid)`: NULL, because lancesql's
/// `pg_proc` holds no function definitions to describe (psql's `\df` lists no functions, as on
/// a fresh Postgres database).
pub fn function_description(name: &str) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    )
}
