//! The fixed answers of the Flight SQL metadata calls: SqlInfo, XDBC type info, table types,
//! and the (empty) key listings, with result schemas exactly as the specification gives them.

use std::sync::{Arc, LazyLock};

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity,
    SqlSupportedTransaction, SqlSupportedTransactions, SupportedSqlGrammar, XdbcDataType,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The table types GetTables reports, and GetTableTypes lists.
pub const TABLE_TYPES: [&str; 3] = ["SYSTEM TABLE", "TABLE", "VIEW"];

/// What GetSqlInfo answers about the server and its SQL.
pub fn sql_info(server_name: &str, server_version: &str) -> SqlInfoData {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, server_name);
    builder.append(SqlInfo::FlightSqlServerVersion, server_version);
    builder.append(
        SqlInfo::FlightSqlServerArrowVersion,
        datafusion::arrow::ARROW_VERSION,
    );
    builder.append(SqlInfo::FlightSqlServerReadOnly, false);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    // Each statement commits on its own: no Flight SQL transactions or savepoints.
    builder.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    builder.append(SqlInfo::FlightSqlServerCancel, true);
    builder.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    builder.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    builder.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    builder.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    builder.append(SqlInfo::SqlDdlCatalog, false);
    builder.append(SqlInfo::SqlDdlSchema, false);
    builder.append(SqlInfo::SqlDdlTable, true);
    builder.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    builder.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    builder.append(SqlInfo::SqlAllTablesAreSelectable, true);
    builder.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    builder.append(SqlInfo::SqlSearchStringEscape, "\\");
    builder.append(SqlInfo::SqlExtraNameCharacters, "");
    builder.append(SqlInfo::SqlSupportsColumnAliasing, true);
    builder.append(SqlInfo::SqlNullPlusNullIsNull, true);
    builder.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    builder.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    builder.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    builder.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    builder.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    builder.append(
        SqlInfo::SqlSupportedGrammar,
        SupportedSqlGrammar::SqlCoreGrammar as i32,
    );
    builder.append(SqlInfo::SqlSchemaTerm, "schema");
    builder.append(SqlInfo::SqlCatalogTerm, "catalog");
    builder.append(SqlInfo::SqlProcedureTerm, "procedure");
    builder.append(SqlInfo::SqlCatalogAtStart, true);
    builder.append(SqlInfo::SqlTransactionsSupported, false);
    builder.append(
        SqlInfo::SqlDefaultTransactionIsolation,
        SqlSupportedTransactions::SqlTransactionUnspecified as i32,
    );
    builder.append(SqlInfo::SqlBatchUpdatesSupported, false);
    builder.append(SqlInfo::SqlSavepointsSupported, false);
    builder.append(SqlInfo::SqlKeywords, &SQL_KEYWORDS[..]);
    builder.append(SqlInfo::SqlNumericFunctions, &NUMERIC_FUNCTIONS[..]);
    builder.append(SqlInfo::SqlStringFunctions, &STRING_FUNCTIONS[..]);
    builder.append(SqlInfo::SqlDatetimeFunctions, &DATETIME_FUNCTIONS[..]);
    // The builder only fails on duplicate or mistyped entries, which the fixed list above does
    // not have (the tests build it).
    builder
        .build()
        .expect("the fixed SqlInfo list builds (checked by the tests)")
}

// Words beyond SQL:2003's reserved list that lancesql's SQL gives meaning to.
const SQL_KEYWORDS: [&str; 8] = [
    "EXPLAIN", "ANALYZE", "SHOW", "COPY", "VACUUM", "ILIKE", "LIMIT", "OFFSET",
];
const NUMERIC_FUNCTIONS: [&str; 14] = [
    "abs", "ceil", "exp", "floor", "ln", "log", "log10", "power", "round", "sqrt", "sin", "cos",
    "trunc", "random",
];
const STRING_FUNCTIONS: [&str; 12] = [
    "concat", "length", "lower", "ltrim", "replace", "rtrim", "substr", "trim", "upper",
    "position", "left", "right",
];
const DATETIME_FUNCTIONS: [&str; 6] = [
    "current_date",
    "current_time",
    "now",
    "date_trunc",
    "date_part",
    "to_timestamp",
];

/// What GetXdbcTypeInfo answers: the SQL types a client can write in DDL and casts.
pub fn xdbc_type_info() -> &'static XdbcTypeInfoData {
    static INFO: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
        let mut builder = XdbcTypeInfoDataBuilder::new();
        for (name, data_type, xdbc, literal_quote) in [
            ("boolean", DataType::Boolean, XdbcDataType::XdbcBit, None),
            (
                "smallint",
                DataType::Int16,
                XdbcDataType::XdbcSmallint,
                None,
            ),
            ("integer", DataType::Int32, XdbcDataType::XdbcInteger, None),
            ("bigint", DataType::Int64, XdbcDataType::XdbcBigint, None),
            ("real", DataType::Float32, XdbcDataType::XdbcFloat, None),
            ("double", DataType::Float64, XdbcDataType::XdbcDouble, None),
            (
                "decimal",
                DataType::Decimal128(38, 10),
                XdbcDataType::XdbcDecimal,
                None,
            ),
            (
                "varchar",
                DataType::Utf8,
                XdbcDataType::XdbcVarchar,
                Some("'"),
            ),
            (
                "bytea",
                DataType::Binary,
                XdbcDataType::XdbcVarbinary,
                Some("'"),
            ),
            ("date", DataType::Date32, XdbcDataType::XdbcDate, Some("'")),
            (
                "timestamp",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
                XdbcDataType::XdbcTimestamp,
                Some("'"),
            ),
        ] {
            let numeric = data_type.is_numeric();
            builder.append(XdbcTypeInfo {
                type_name: name.into(),
                data_type: xdbc,
                column_size: None,
                literal_prefix: literal_quote.map(str::to_owned),
                literal_suffix: literal_quote.map(str::to_owned),
                create_params: None,
                nullable: Nullable::NullabilityNullable,
                case_sensitive: matches!(data_type, DataType::Utf8),
                searchable: Searchable::Full,
                unsigned_attribute: numeric.then_some(false),
                fixed_prec_scale: false,
                auto_increment: numeric.then_some(false),
                local_type_name: Some(name.into()),
                minimum_scale: None,
                maximum_scale: None,
                sql_data_type: xdbc,
                datetime_subcode: None,
                num_prec_radix: numeric.then_some(10),
                interval_precision: None,
            });
        }
        builder
            .build()
            .expect("the fixed XDBC type list builds (checked by the tests)")
    });
    &INFO
}

/// The schema of GetPrimaryKeys' result.
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// The schema of GetExportedKeys', GetImportedKeys' and GetCrossReference's results.
pub fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// No rows of `schema`: lancesql tables have no primary or foreign keys.
pub fn no_rows(schema: SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_answers_build() {
        let info = sql_info("lancesql", "0.1.0");
        let batch = info
            .record_batch([SqlInfo::FlightSqlServerName as u32])
            .expect("name");
        assert_eq!(batch.num_rows(), 1);
        let all = info.record_batch(Vec::<u32>::new()).expect("all");
        assert!(all.num_rows() > 30);
        let types = xdbc_type_info().record_batch(None).expect("types");
        assert_eq!(types.num_rows(), 11);
        let bigints = xdbc_type_info()
            .record_batch(Some(XdbcDataType::XdbcBigint as i32))
            .expect("bigint");
        assert_eq!(bigints.num_rows(), 1);
    }
}
