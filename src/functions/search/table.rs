//! [`SearchTable`]: the result of a search table function as a DataFusion table, planned into a
//! [`LanceSearchExec`].

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, Subquery, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::error::{Error, Result};
use crate::physical::search::{LanceSearchExec, SearchKind};
use crate::provider::table::LanceTable;

use super::arguments::{parameter, string};
use super::table_argument;

/// What each search function knows about its own arguments.
pub(super) trait SearchFunction: Debug + Send + Sync {
    fn name(&self) -> &'static str;

    /// How the function is called, for errors: `name(table, ...)`.
    fn usage(&self) -> &'static str;

    /// The fewest and the most arguments it takes (`None`: trailing options, no most).
    fn arity(&self) -> (usize, Option<usize>);

    /// The result's columns.
    fn schema(&self, table: &LanceTable, arguments: &[Expr]) -> Result<SchemaRef>;

    /// Validates every argument; the search to run, or `None` while an argument is an unbound
    /// parameter (everything else is still checked).
    fn resolve(
        &self,
        table: &LanceTable,
        arguments: &[Expr],
        session: &dyn Session,
    ) -> Result<Option<SearchKind>>;

    /// The type a bind parameter at argument `position` takes when the client does not say.
    fn parameter_type(
        &self,
        table: &LanceTable,
        arguments: &[Expr],
        position: usize,
    ) -> Option<DataType>;
}

/// The table `function` returns for `args`: the argument count checked, and the table the first
/// argument names taken from the statement's snapshot.
pub(super) fn call(
    function: Arc<dyn SearchFunction>,
    args: TableFunctionArgs,
) -> DFResult<Arc<dyn TableProvider>> {
    let exprs = args.exprs();
    let name = function.name();
    let count = match function.arity() {
        (least, None) if exprs.len() < least => Some(format!("at least {least}")),
        (least, Some(most)) if exprs.len() < least || exprs.len() > most => {
            Some(if least == most {
                least.to_string()
            } else {
                format!("{least} to {most}")
            })
        }
        _ => None,
    };
    if let Some(count) = count {
        return Err(DataFusionError::from(Error::invalid(format!(
            "{name} takes {count} arguments, got {}: {}",
            exprs.len(),
            function.usage()
        ))));
    }
    let table_name = string(name, "table", &exprs[0])?;
    let table = table_argument(name, args.session(), &table_name)?;
    Ok(Arc::new(SearchTable::try_new(
        function,
        table,
        exprs.to_vec(),
        args.session(),
    )?))
}

/// A search function's result: the table it searches, its arguments, and the search they
/// resolve to once every parameter is bound.
#[derive(Debug, Clone)]
pub struct SearchTable {
    function: Arc<dyn SearchFunction>,
    table: Arc<LanceTable>,
    arguments: Vec<Expr>,
    schema: SchemaRef,
    search: Option<SearchKind>,
}

impl SearchTable {
    pub(super) fn try_new(
        function: Arc<dyn SearchFunction>,
        table: Arc<LanceTable>,
        arguments: Vec<Expr>,
        session: &dyn Session,
    ) -> Result<Self> {
        let schema = function.schema(&table, &arguments)?;
        let search = function.resolve(&table, &arguments, session)?;
        Ok(SearchTable {
            function,
            table,
            arguments,
            schema,
            search,
        })
    }

    /// The result of `search` over `table`, decided by the engine rather than written as a call
    /// (the arguments are empty, so there is nothing to bind).
    pub(super) fn of_search(
        function: Arc<dyn SearchFunction>,
        table: Arc<LanceTable>,
        schema: SchemaRef,
        search: SearchKind,
    ) -> SearchTable {
        SearchTable {
            function,
            table,
            arguments: Vec::new(),
            schema,
            search: Some(search),
        }
    }

    /// The search the arguments resolve to; `None` while a parameter is unbound or an argument
    /// is a scalar subquery.
    pub fn into_search(self) -> Option<SearchKind> {
        self.search
    }

    /// Whether an argument is a scalar subquery, evaluated each time the search is planned
    /// physically.
    pub fn has_subquery_argument(&self) -> bool {
        self.arguments
            .iter()
            .any(|argument| subquery_argument(argument).is_some())
    }

    /// The bind parameters among the arguments, typed as the client should send them.
    pub fn parameters(&self) -> Vec<(String, FieldRef)> {
        self.arguments
            .iter()
            .enumerate()
            .filter_map(|(position, argument)| {
                let (id, field) = parameter(argument)?;
                let field = field.or_else(|| {
                    self.function
                        .parameter_type(&self.table, &self.arguments, position)
                        .map(|data_type| Arc::new(Field::new("", data_type, true)))
                })?;
                Some((id, field))
            })
            .collect()
    }

    /// The same search with `values` bound to its parameters, validated again.
    pub fn bind(&self, values: &ParamValues, session: &dyn Session) -> Result<SearchTable> {
        if self.arguments.is_empty() {
            return Ok(self.clone());
        }
        let arguments = self
            .arguments
            .iter()
            .map(|argument| {
                // Bottom up: `$n` becomes its value, then a cast around it (`$1::float4[]`,
                // or casts nested) is applied to that value, as planning folded the casts of
                // values written in the statement.
                argument
                    .clone()
                    .transform_up(|expr| match &expr {
                        Expr::Placeholder(placeholder) => {
                            let bound = values.get_placeholders_with_values(&placeholder.id)?;
                            Ok(Transformed::yes(Expr::Literal(bound.value, None)))
                        }
                        Expr::Cast(cast) => match cast.expr.as_ref() {
                            Expr::Literal(value, _) => {
                                let value = value.cast_to(cast.field.data_type())?;
                                Ok(Transformed::yes(Expr::Literal(value, None)))
                            }
                            _ => Ok(Transformed::no(expr)),
                        },
                        _ => Ok(Transformed::no(expr)),
                    })
                    .map(|transformed| transformed.data)
                    .map_err(Error::from)
            })
            .collect::<Result<Vec<Expr>>>()?;
        SearchTable::try_new(
            self.function.clone(),
            self.table.clone(),
            arguments,
            session,
        )
    }
}

impl SearchTable {
    /// The search, once the scalar subqueries among the arguments are evaluated (the only
    /// arguments left open after binding).
    async fn with_subqueries_evaluated(&self, state: &dyn Session) -> DFResult<SearchKind> {
        let unbound: Vec<String> = self.parameters().into_iter().map(|(id, _)| id).collect();
        if !unbound.is_empty() {
            return Err(DataFusionError::from(Error::invalid(format!(
                "{}: parameter {} has no value bound",
                self.function.name(),
                unbound.join(", ")
            ))));
        }
        let mut arguments = Vec::with_capacity(self.arguments.len());
        for argument in &self.arguments {
            let Some((subquery, cast)) = subquery_argument(argument) else {
                arguments.push(argument.clone());
                continue;
            };
            let plan = state.create_physical_plan(&subquery.subquery).await?;
            let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
            let rows: usize = batches.iter().map(|batch| batch.num_rows()).sum();
            let Some(batch) = batches.iter().find(|batch| batch.num_rows() > 0) else {
                return Err(DataFusionError::from(Error::invalid(format!(
                    "{}: the subquery argument returned no row",
                    self.function.name()
                ))));
            };
            if rows > 1 || batch.num_columns() != 1 {
                return Err(DataFusionError::from(Error::invalid(format!(
                    "{}: a subquery argument must return one value (one row, one column); it \
                     returned {rows} rows of {} columns",
                    self.function.name(),
                    batch.num_columns()
                ))));
            }
            let mut value = ScalarValue::try_from_array(batch.column(0), 0)?;
            if let Some(field) = cast {
                value = value.cast_to(field.data_type())?;
            }
            arguments.push(Expr::Literal(value, None));
        }
        self.function
            .resolve(&self.table, &arguments, state)?
            .ok_or_else(|| {
                DataFusionError::from(Error::Internal {
                    message: format!(
                        "{}: arguments still open after evaluating subqueries",
                        self.function.name()
                    ),
                })
            })
    }
}

/// The scalar subquery `argument` is, and the type it is cast to (`(SELECT ...)::float4[]`).
fn subquery_argument(argument: &Expr) -> Option<(&Subquery, Option<FieldRef>)> {
    match argument {
        Expr::ScalarSubquery(subquery) => Some((subquery, None)),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::ScalarSubquery(subquery) => Some((subquery, Some(cast.field.clone()))),
            _ => None,
        },
        _ => None,
    }
}

#[async_trait]
impl TableProvider for SearchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let search = match &self.search {
            Some(search) => search.clone(),
            None => self.with_subqueries_evaluated(state).await?,
        };
        let output_schema = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => self.schema.clone(),
        };
        let spec = self.table.search_spec(
            &output_schema,
            search,
            state.config_options().execution.batch_size,
        );
        Ok(Arc::new(LanceSearchExec::new(spec, output_schema)))
    }
}
