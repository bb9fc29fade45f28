//! Functions Postgres clients call to learn what they talk to.
//!
//! `version()` answers like Postgres (`PostgreSQL 16.6 ...`): drivers and ORMs (SQLAlchemy,
//! pgjdbc, DBeaver) parse the number after `PostgreSQL` and refuse a server they cannot place.

use std::sync::Arc;

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
