//! The one place that decides which filters reach a Lance scan, and how exactly.
//!
//! DataFusion asks, per conjunct of a `WHERE` clause, whether the provider evaluates it
//! [`Exact`](TableProviderFilterPushDown::Exact)ly (DataFusion then drops its own filter and may
//! push a `LIMIT` into the scan), [`Inexact`](TableProviderFilterPushDown::Inexact)ly (pushed,
//! and re-checked by DataFusion) or not at all. A wrong `Exact` silently changes results, and so
//! does a wrong `Inexact`: re-checking only removes rows, so an `Inexact` filter must make Lance
//! return a superset of the matching rows, which we can only promise where Lance's semantics are
//! DataFusion's, and then the filter is `Exact`. So every filter is either `Exact` or not pushed.
//!
//! [`classify`] is the allow-list, one function ([`is_exact`]) naming every form Lance evaluates
//! as DataFusion does, each checked against DataFusion by the oracle tests (`@pushed` cases
//! also assert that no DataFusion filter remains): comparisons of a column with a non-NULL
//! literal, `[NOT] IN` lists of non-NULL literals, `[NOT] BETWEEN` literals, `LIKE`/`ILIKE`
//! with a literal pattern, `IS [NOT] NULL`, boolean columns, list membership
//! (`array_has`, `array_has_any`, `array_has_all` with non-NULL needles), and `AND`/`OR`/`NOT`
//! of these, over integer, string, boolean, date, timestamp and decimal columns.
//!
//! Indexed columns follow the same rules, with one exception: negations (`NOT`, `NOT IN`, `<>`)
//! are pushed whether or not a scalar index answers them, because Lance's index results keep
//! SQL's NULL semantics (a NULL value or NULL list matches neither a condition nor its
//! negation; the oracle cases on the indexed and list fixtures check it). The exception:
//! `LIKE` on an indexed column is not pushed, since the index's `LIKE` is not SQL's. Float
//! comparisons are excluded: Lance compares floats with IEEE rules (`-0.0 = 0.0`), DataFusion
//! with a total order (`-0.0 < 0.0`, NaN largest). Anything Lance's filter planner cannot plan
//! stays in DataFusion too.
//!
//! Filters naming rows by `_rowid`/`_rowaddr` literals are exact too. When a conjunct lists
//! `_rowid`s, [`listed_rows`] gives the ids and the scan becomes a take of those rows by
//! address, with no scan for Lance to plan; the other conjuncts pushed beside it are then
//! checked on the taken rows by DataFusion's own filter, inside the scan's plan (still exact).
//! A scan naming rows by `_rowaddr` stays a Lance scan, which [`selects_rows_by_identity`]
//! keeps in one partition, Lance answering it with a take.
//!
//! [`classify`] runs Lance's filter planner once per filter (lists of row ids need none); the
//! table remembers its decisions (see [`crate::provider::table`]), so a statement plans each
//! filter once.

use arrow::datatypes::{DataType, Schema};
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::scalar::ScalarValue;
use lance_datafusion::planner::Planner;

use crate::physical::scan::ROW_IDENTITY_COLUMNS;
use lance_index::scalar::expression::{IndexInformationProvider, PlannerIndexExt};

/// What the scan knows when it classifies a filter.
pub struct FilterContext<'a> {
    /// The schema filters are written against (data columns plus `_rowid`/`_rowaddr`).
    pub schema: &'a Schema,
    /// The table's scalar indices.
    pub indices: &'a dyn IndexInformationProvider,
}

impl FilterContext<'_> {
    fn is_indexed(&self, column: &str) -> bool {
        self.indices.get_index(column).is_some()
    }

    /// The column's type, or `None` when it is unknown or an Arrow extension type (JSON is
    /// `arrow.json` over text here but JSONB inside Lance, so Lance would compare other values).
    fn column_type(&self, column: &str) -> Option<&DataType> {
        self.schema
            .field_with_name(column)
            .ok()
            .filter(|field| field.extension_type_name().is_none())
            .map(|field| field.data_type())
    }
}

/// How one filter is pushed into a Lance scan, and what of it Lance answers from indices.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterDecision {
    /// `Exact` (Lance evaluates it, DataFusion drops its own filter) or `Unsupported`.
    pub pushdown: TableProviderFilterPushDown,
    /// The part Lance's filter planner answers from scalar indices, as Lance prints it.
    pub index_query: Option<String>,
}

impl FilterDecision {
    fn unsupported() -> Self {
        FilterDecision {
            pushdown: TableProviderFilterPushDown::Unsupported,
            index_query: None,
        }
    }

    /// Whether Lance evaluates the filter.
    pub fn is_exact(&self) -> bool {
        self.pushdown == TableProviderFilterPushDown::Exact
    }
}

/// Decides how `filter` (unqualified, see [`unqualify`]) is pushed into a Lance scan. Runs
/// Lance's filter planner once, for filters on the allow-list only.
pub fn classify(filter: &Expr, context: &FilterContext<'_>) -> FilterDecision {
    if !is_exact(filter, context) {
        return FilterDecision::unsupported();
    }
    if listed_row_ids(filter).is_some() {
        // Rows listed by id: taken by address, never answered from an index; nothing for
        // Lance's planner to decide.
        return FilterDecision {
            pushdown: TableProviderFilterPushDown::Exact,
            index_query: None,
        };
    }
    let planner = Planner::new(std::sync::Arc::new(context.schema.clone()));
    match planner.create_filter_plan(filter.clone(), context.indices, true) {
        Ok(plan) => FilterDecision {
            pushdown: TableProviderFilterPushDown::Exact,
            index_query: plan.index_query.map(|query| query.to_string()),
        },
        Err(error) => {
            tracing::debug!(%filter, %error, "Lance cannot plan this filter; DataFusion keeps it");
            FilterDecision::unsupported()
        }
    }
}

/// Whether Lance answers `filter` with a take of listed rows rather than a scan: `_rowid` or
/// `_rowaddr` equal to literals (`=`, `IN`, or an `OR` of those on the same column), possibly
/// `AND`ed with other conditions. Such a read gains nothing from being split into partitions.
pub fn selects_rows_by_identity(filter: &Expr) -> bool {
    identity_column(filter).is_some()
}

/// A scan answered by taking the rows its conjuncts list by `_rowid` (see [`listed_rows`]).
#[derive(Debug, PartialEq)]
pub struct ListedRows<'a> {
    /// The ids every listing conjunct lists: sorted and distinct.
    pub row_ids: Vec<u64>,
    /// The other conjuncts, to be checked on the taken rows.
    pub conditions: Vec<&'a Expr>,
}

/// The rows `filters` (a scan's pushed conjuncts) select by listing `_rowid`s by literal (`=`,
/// `IN`, or an `OR` of those), and the conjuncts that list none; `None` when no conjunct lists
/// row ids. Listing conjuncts intersect. A list naming `_rowaddr`, `NOT IN` or a non-`UInt64`
/// value lists nothing; a NULL in a list matches no row and selects none.
pub fn listed_rows<'a>(filters: impl IntoIterator<Item = &'a Expr>) -> Option<ListedRows<'a>> {
    let mut row_ids: Option<Vec<u64>> = None;
    let mut conditions = Vec::new();
    for filter in filters {
        let Some(ids) = listed_row_ids(filter) else {
            conditions.push(filter);
            continue;
        };
        row_ids = Some(match row_ids {
            None => ids,
            Some(before) => before
                .into_iter()
                .filter(|id| ids.binary_search(id).is_ok())
                .collect(),
        });
    }
    row_ids.map(|row_ids| ListedRows {
        row_ids,
        conditions,
    })
}

/// The `_rowid`s `filter` lists (sorted, distinct), if it does nothing else.
fn listed_row_ids(filter: &Expr) -> Option<Vec<u64>> {
    let mut ids = Vec::new();
    collect_listed_row_ids(filter, &mut ids)?;
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

fn collect_listed_row_ids(filter: &Expr, ids: &mut Vec<u64>) -> Option<()> {
    let mut push = |column: &Expr, value: &Expr| -> Option<()> {
        match (column, value) {
            (Expr::Column(column), Expr::Literal(ScalarValue::UInt64(id), _))
                if column.name == lance_core::ROW_ID =>
            {
                ids.extend(id);
                Some(())
            }
            _ => None,
        }
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (left.as_ref(), right.as_ref()) {
            (value @ Expr::Literal(..), column) | (column, value) => push(column, value),
        },
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            collect_listed_row_ids(left, ids)?;
            collect_listed_row_ids(right, ids)
        }
        Expr::InList(in_list) if !in_list.negated => in_list
            .list
            .iter()
            .try_for_each(|value| push(&in_list.expr, value)),
        _ => None,
    }
}

fn identity(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(column) if ROW_IDENTITY_COLUMNS.contains(&column.name.as_str()) => {
            Some(column.name.as_str())
        }
        _ => None,
    }
}

fn identity_column(filter: &Expr) -> Option<&str> {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Eq => match (left.as_ref(), right.as_ref()) {
                (column, Expr::Literal(..)) | (Expr::Literal(..), column) => identity(column),
                _ => None,
            },
            Operator::Or => {
                let column = identity_column(left)?;
                (identity_column(right)? == column).then_some(column)
            }
            Operator::And => identity_column(left).or_else(|| identity_column(right)),
            _ => None,
        },
        Expr::InList(in_list)
            if !in_list.negated
                && in_list
                    .list
                    .iter()
                    .all(|item| matches!(item, Expr::Literal(..))) =>
        {
            identity(&in_list.expr)
        }
        _ => None,
    }
}

/// Removes table qualifiers: Lance resolves columns by name within its one dataset.
pub fn unqualify(filter: Expr) -> Expr {
    filter
        .transform(|expr| {
            Ok(match expr {
                Expr::Column(column) if column.relation.is_some() => {
                    datafusion::common::tree_node::Transformed::yes(Expr::Column(
                        datafusion::common::Column::new_unqualified(column.name),
                    ))
                }
                other => datafusion::common::tree_node::Transformed::no(other),
            })
        })
        .map(|transformed| transformed.data)
        .unwrap_or_else(|error| unreachable!("a column-renaming rewrite cannot fail: {error}"))
}

/// The allow-list: whether Lance evaluates `filter` exactly as DataFusion would. Anything not
/// named here (functions other than list membership, casts, arithmetic, parameters, subqueries,
/// volatile expressions) is not pushed.
pub fn is_exact(filter: &Expr, context: &FilterContext<'_>) -> bool {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => is_exact(left, context) && is_exact(right, context),
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => comparison_is_exact(left, right, context),
            _ => false,
        },
        Expr::Not(inner) => is_exact(inner, context),
        Expr::ScalarFunction(call) if LIST_MEMBERSHIP_FUNCTIONS.contains(&call.name()) => {
            list_membership_is_exact(&call.args, context)
        }
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => as_column(inner).is_some(),
        Expr::Column(column) => context.column_type(&column.name) == Some(&DataType::Boolean),
        Expr::Literal(ScalarValue::Boolean(_), _) => true,
        Expr::Between(between) => {
            comparison_is_exact(&between.expr, &between.low, context)
                && comparison_is_exact(&between.expr, &between.high, context)
        }
        Expr::InList(in_list) => {
            let Some(column) = as_column(&in_list.expr) else {
                return false;
            };
            let literals_not_null = in_list
                .list
                .iter()
                .all(|item| matches!(item, Expr::Literal(value, _) if !value.is_null()));
            literals_not_null && column_type_is_exact(column, context)
        }
        Expr::Like(like) => {
            let Some(column) = as_column(&like.expr) else {
                return false;
            };
            matches!(like.pattern.as_ref(), Expr::Literal(value, _) if !value.is_null())
                && is_string(context.column_type(column))
                && !context.is_indexed(column)
        }
        _ => false,
    }
}

/// List membership tests Lance plans (with a LABEL_LIST index when there is one) and evaluates
/// with DataFusion's own functions otherwise.
const LIST_MEMBERSHIP_FUNCTIONS: [&str; 3] = ["array_has", "array_has_any", "array_has_all"];

/// `f(list_column, literal)` on a list of strings or integers, with no NULL in the literal (the
/// index and DataFusion treat a NULL needle differently).
fn list_membership_is_exact(args: &[Expr], context: &FilterContext<'_>) -> bool {
    let [list, needle] = args else {
        return false;
    };
    let Some(column) = as_column(list) else {
        return false;
    };
    let item_type = match context.column_type(column) {
        Some(DataType::List(item) | DataType::LargeList(item)) => item.data_type().clone(),
        _ => return false,
    };
    let item_is_exact =
        is_integer(&item_type) || matches!(item_type, DataType::Utf8 | DataType::LargeUtf8);
    let needle_has_no_null = match needle {
        Expr::Literal(ScalarValue::List(values), _) => values.values().null_count() == 0,
        Expr::Literal(ScalarValue::LargeList(values), _) => values.values().null_count() == 0,
        Expr::Literal(value, _) => !value.is_null(),
        _ => false,
    };
    item_is_exact && needle_has_no_null
}

fn comparison_is_exact(left: &Expr, right: &Expr, context: &FilterContext<'_>) -> bool {
    let (column, other) = match (as_column(left), as_column(right)) {
        (Some(column), None) => (column, right),
        (None, Some(column)) => (column, left),
        _ => return false,
    };
    matches!(other, Expr::Literal(value, _) if !value.is_null())
        && column_type_is_exact(column, context)
}

fn column_type_is_exact(column: &str, context: &FilterContext<'_>) -> bool {
    let data_type = context.column_type(column);
    data_type.is_some_and(is_integer)
        || is_string(data_type)
        || matches!(
            data_type,
            Some(
                DataType::Boolean
                    | DataType::Date32
                    | DataType::Date64
                    | DataType::Timestamp(_, _)
                    | DataType::Decimal128(_, _)
                    | DataType::Decimal256(_, _)
            )
        )
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

fn as_column(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(column) => Some(column.name.as_str()),
        _ => None,
    }
}

fn is_string(data_type: Option<&DataType>) -> bool {
    matches!(
        data_type,
        Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use TableProviderFilterPushDown::{Exact, Unsupported};
    use arrow::datatypes::{Field, TimeUnit};
    use datafusion::logical_expr::{col, lit};
    use datafusion::prelude::{in_list, random};
    use lance_index::scalar::expression::MultiQueryParser;

    /// A table without scalar indices.
    struct NoIndices;
    impl IndexInformationProvider for NoIndices {
        fn get_index(&self, _column: &str) -> Option<(&DataType, &MultiQueryParser)> {
            None
        }
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "tags",
                DataType::List(std::sync::Arc::new(Field::new(
                    "item",
                    DataType::Utf8,
                    true,
                ))),
                true,
            ),
            Field::new("doc", DataType::Utf8, true).with_metadata(
                [("ARROW:extension:name".to_string(), "arrow.json".to_string())].into(),
            ),
        ])
    }

    use datafusion::functions_nested::expr_fn::array_has;

    fn decide(filter: Expr) -> TableProviderFilterPushDown {
        let schema = schema();
        classify(
            &filter,
            &FilterContext {
                schema: &schema,
                indices: &NoIndices,
            },
        )
        .pushdown
    }

    #[test]
    fn plain_comparisons_are_exact() {
        assert_eq!(decide(array_has(col("tags"), lit("a"))), Exact);
        assert_eq!(decide(col("id").gt(lit(5i64))), Exact);
        assert_eq!(decide(lit(5i64).lt_eq(col("id"))), Exact);
        assert_eq!(decide(col("name").eq(lit("a"))), Exact);
        assert_eq!(decide(col("flag")), Exact);
        assert_eq!(decide(col("name").is_null()), Exact);
        assert_eq!(
            decide(col("id").gt(lit(1i64)).or(col("name").like(lit("a%")))),
            Exact
        );
        assert_eq!(
            decide(in_list(col("id"), vec![lit(1i64), lit(2i64)], true)),
            Exact
        );
    }

    #[test]
    fn unsure_forms_are_not_pushed() {
        // arithmetic on a column
        assert_eq!(decide((col("id") + lit(1i64)).gt(lit(5i64))), Unsupported);
        // floats compare differently (-0.0, NaN)
        assert_eq!(decide(col("score").lt(lit(1.5f64))), Unsupported);
        assert_eq!(decide(col("score").is_null()), Exact);
        // a NULL in an IN list changes NOT IN semantics
        let with_null = in_list(
            col("id"),
            vec![lit(1i64), lit(ScalarValue::Int64(None))],
            true,
        );
        assert_eq!(decide(with_null), Unsupported);
        // a NULL needle: the index and DataFusion disagree
        assert_eq!(
            decide(array_has(col("tags"), lit(ScalarValue::Utf8(None)))),
            Unsupported
        );
        // JSON is text here but JSONB inside Lance
        assert_eq!(decide(col("doc").eq(lit("{}"))), Unsupported);
        assert_eq!(decide(col("doc").like(lit("{%"))), Unsupported);
        // comparing two columns, a cast of a column
        assert_eq!(decide(col("id").eq(col("score"))), Unsupported);
        assert_eq!(
            decide(
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(col("id")),
                    DataType::Utf8
                ))
                .eq(lit("1"))
            ),
            Unsupported
        );
    }

    #[test]
    fn functions_and_volatile_expressions_stay_in_datafusion() {
        assert_eq!(decide(random().gt(lit(0.5f64))), Unsupported);
        assert_eq!(
            decide(datafusion::functions::string::expr_fn::upper(col("name")).eq(lit("A"))),
            Unsupported
        );
        assert_eq!(
            decide(
                Expr::Placeholder(datafusion::logical_expr::expr::Placeholder::new_with_field(
                    "$1".into(),
                    None
                ))
                .eq(col("id"))
            ),
            Unsupported
        );
    }

    /// `name` under a BTREE index, `category` under a BITMAP, `tags` under a LABEL_LIST.
    struct Indexed {
        text: DataType,
        tags: DataType,
        btree: MultiQueryParser,
        bitmap: MultiQueryParser,
        label_list: MultiQueryParser,
    }

    impl Indexed {
        fn new() -> Self {
            use lance_index::scalar::expression::{LabelListQueryParser, SargableQueryParser};
            Indexed {
                text: DataType::Utf8,
                tags: schema()
                    .field_with_name("tags")
                    .unwrap()
                    .data_type()
                    .clone(),
                btree: MultiQueryParser::single(Box::new(SargableQueryParser::new(
                    "name_idx".into(),
                    "BTree".into(),
                    false,
                ))),
                bitmap: MultiQueryParser::single(Box::new(
                    SargableQueryParser::new("category_idx".into(), "Bitmap".into(), false)
                        .without_like_prefix(),
                )),
                label_list: MultiQueryParser::single(Box::new(LabelListQueryParser::new(
                    "tags_idx".into(),
                    "LabelList".into(),
                ))),
            }
        }
    }

    impl IndexInformationProvider for Indexed {
        fn get_index(&self, column: &str) -> Option<(&DataType, &MultiQueryParser)> {
            match column {
                "name" => Some((&self.text, &self.btree)),
                "category" => Some((&self.text, &self.bitmap)),
                "tags" => Some((&self.tags, &self.label_list)),
                _ => None,
            }
        }
    }

    fn decide_indexed(filter: Expr) -> FilterDecision {
        let mut fields = schema().fields().to_vec();
        fields.push(std::sync::Arc::new(Field::new(
            "category",
            DataType::Utf8,
            true,
        )));
        let schema = Schema::new(fields);
        classify(
            &filter,
            &FilterContext {
                schema: &schema,
                indices: &Indexed::new(),
            },
        )
    }

    #[test]
    fn indexed_columns_follow_the_same_rules() {
        use datafusion::functions_nested::expr_fn::array_has_any;
        // Answered by the index, and said so.
        let equal = decide_indexed(col("category").eq(lit("a")));
        assert_eq!(equal.pushdown, Exact);
        let index = equal.index_query.expect("an index query");
        assert!(index.contains("category_idx"), "{index}");
        // Negations of indexed conditions are all pushed (the oracle checks NULL semantics).
        let four = || vec![lit("a"), lit("b"), lit("c"), lit("d")];
        for negation in [
            in_list(col("category"), four(), true),
            col("category").not_eq(lit("a")),
            Expr::Not(Box::new(col("category").eq(lit("a")))),
            Expr::Not(Box::new(in_list(col("category"), four(), false))),
            Expr::Not(Box::new(array_has_any(
                col("tags"),
                lit(ScalarValue::List(ScalarValue::new_list_nullable(
                    &[ScalarValue::from("red")],
                    &DataType::Utf8,
                ))),
            ))),
        ] {
            let decision = decide_indexed(negation.clone());
            assert_eq!(decision.pushdown, Exact, "{negation}");
            assert!(decision.index_query.is_some(), "{negation}");
        }
        // An unindexed column next to an indexed one: pushed, only part answered by the index.
        let mixed = decide_indexed(col("category").eq(lit("a")).and(col("id").gt(lit(3i64))));
        assert_eq!(mixed.pushdown, Exact);
        let index = mixed.index_query.unwrap_or_default();
        assert!(
            index.contains("category_idx") && !index.contains("id >"),
            "{index}"
        );
        // LIKE on an indexed column is the index's LIKE, not SQL's: kept in DataFusion.
        assert_eq!(
            decide_indexed(col("name").like(lit("a%"))).pushdown,
            Unsupported
        );
        // Forms off the allow-list stay in DataFusion whatever the indices.
        assert_eq!(
            decide_indexed((col("id") + lit(1i64)).eq(lit(2i64))).pushdown,
            Unsupported
        );
    }

    #[test]
    fn row_identity_takes_are_recognised() {
        let ids = || in_list(col("_rowid"), vec![lit(1u64), lit(7u64)], false);
        assert!(selects_rows_by_identity(&ids()));
        assert!(selects_rows_by_identity(&col("_rowaddr").eq(lit(3u64))));
        assert!(selects_rows_by_identity(
            &col("_rowid").eq(lit(1u64)).or(col("_rowid").eq(lit(2u64)))
        ));
        assert!(selects_rows_by_identity(
            &ids().and(col("id").gt(lit(5i64)))
        ));
        // not a take: mixed columns under OR, NOT IN, a range, another column
        assert!(!selects_rows_by_identity(
            &col("_rowid")
                .eq(lit(1u64))
                .or(col("_rowaddr").eq(lit(2u64)))
        ));
        assert!(!selects_rows_by_identity(&in_list(
            col("_rowid"),
            vec![lit(1u64)],
            true
        )));
        assert!(!selects_rows_by_identity(&col("_rowid").gt(lit(1u64))));
        assert!(!selects_rows_by_identity(&col("id").eq(lit(1i64))));
    }

    #[test]
    fn listed_rows_are_the_ids_every_listing_conjunct_lists() {
        let ids = |values: &[u64]| {
            in_list(
                col("_rowid"),
                values.iter().map(|id| lit(*id)).collect(),
                false,
            )
        };
        let row_ids = |filters: &[Expr]| listed_rows(filters).map(|listed| listed.row_ids);
        assert_eq!(row_ids(&[ids(&[9, 1, 9, 4])]), Some(vec![1, 4, 9]));
        assert_eq!(
            row_ids(&[lit(3u64).eq(col("_rowid")).or(col("_rowid").eq(lit(2u64)))]),
            Some(vec![2, 3])
        );
        // Conjuncts intersect; a NULL selects nothing.
        assert_eq!(
            row_ids(&[ids(&[1, 4, 9]), ids(&[9, 4, 5])]),
            Some(vec![4, 9])
        );
        let with_null = in_list(
            col("_rowid"),
            vec![lit(1u64), lit(ScalarValue::UInt64(None))],
            false,
        );
        assert_eq!(row_ids(&[with_null]), Some(vec![1]));
        // Another condition beside a list is left to check on the taken rows.
        let beside = [ids(&[1]), col("id").gt(lit(5i64))];
        assert_eq!(
            listed_rows(&beside),
            Some(ListedRows {
                row_ids: vec![1],
                conditions: vec![&beside[1]],
            })
        );
        // Lists of nothing but these are no take: addresses, NOT IN, other types, no filters.
        assert_eq!(row_ids(&[col("_rowaddr").eq(lit(3u64))]), None);
        assert_eq!(
            row_ids(&[in_list(col("_rowid"), vec![lit(1u64)], true)]),
            None
        );
        assert_eq!(row_ids(&[col("_rowid").eq(lit(1i64))]), None);
        assert_eq!(row_ids(&[col("id").gt(lit(5i64))]), None);
        assert_eq!(row_ids(&[]), None);
    }

    #[test]
    fn qualifiers_are_removed() {
        let qualified = Expr::Column(datafusion::common::Column::new(Some("items"), "id"));
        assert_eq!(unqualify(qualified.gt(lit(1i64))), col("id").gt(lit(1i64)));
    }
}
