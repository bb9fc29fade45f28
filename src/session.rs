//! The engine and its sessions: the one way every front end runs SQL.
//!
//! [`Engine`] is built once per process from typed configuration; it owns the data root and the
//! storage bridge. [`Engine::session`] makes a [`LanceSession`] for one user or connection: a
//! DataFusion `SessionContext` with the Lance catalog as the default catalog, the `lance.*`
//! option extension and Lance's SQL functions. [`LanceSession::execute`] is the SQL front door:
//! it parses (refusing statements too complex to plan, see [`crate::parse`]), hides row-identity
//! columns from wildcards, lists the root when the statement reads the catalog, plans, and carries
//! out the statements that change the catalog (`CREATE TABLE ... AS`, `DROP TABLE`) by writing
//! Lance datasets; everything else is a DataFusion plan whose results the caller streams.
//! Integer arithmetic and `sum` fail on overflow (see [`crate::overflow`]).
//!
//! Statements must run on threads with [`crate::runtime::STATEMENT_STACK_BYTES`] of stack (the
//! runtime [`crate::runtime::build`] makes): planning recurses once per expression level, up to
//! the depth [`crate::parse`] admits.

use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::SessionConfig;
use datafusion::sql::TableReference;
use datafusion::sql::parser::Statement as DFStatement;

use crate::blocking::BlockingBridge;
use crate::catalog::{CATALOG_NAME, LanceCatalog, SCHEMA_NAME, SYSTEM_SCHEMA_NAME};
use crate::config::{EngineConfig, LanceOptions, StoreConfig};
use crate::error::{Error, Result};
use crate::hidden::hide_row_identity_columns;
use crate::late_materialization::TopKLateMaterialization;
use crate::overflow::{CheckedArithmeticPlanner, CheckedSum};
use crate::storage::DataRoot;

/// The dialect DataFusion's own SQL entry points use; the front door parses with
/// [`crate::parse::LanceSqlDialect`], which is this dialect with two capabilities changed.
pub const SQL_DIALECT: &str = "PostgreSQL";

/// One lancesql process: configuration, the data root, shared caches.
#[derive(Debug, Clone)]
pub struct Engine {
    root: Arc<DataRoot>,
    bridge: Arc<BlockingBridge>,
    config: EngineConfig,
}

impl Engine {
    /// Resolves the data root and prepares shared state. Does no I/O on remote stores.
    pub fn new(store: &StoreConfig, config: EngineConfig) -> Result<Self> {
        config.validate()?;
        Ok(Engine {
            root: Arc::new(DataRoot::new(store)?),
            bridge: Arc::new(BlockingBridge::new()?),
            config,
        })
    }

    /// The data root all tables live under.
    pub fn root(&self) -> &Arc<DataRoot> {
        &self.root
    }

    /// A new session (one per connection or shell).
    pub fn session(&self) -> Result<LanceSession> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
            .with_batch_size(self.config.batch_size)
            .with_option_extension(LanceOptions::default())
            .with_extension(self.root.clone());
        if let Some(partitions) = self.config.target_partitions {
            config = config.with_target_partitions(partitions);
        }
        config
            .options_mut()
            .set("datafusion.sql_parser.dialect", SQL_DIALECT)?;
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(physical_optimizer_rules());
        // Ours first: it must see integer arithmetic before DataFusion's planners do.
        builder
            .expr_planners()
            .get_or_insert_with(Vec::new)
            .insert(0, Arc::new(CheckedArithmeticPlanner));
        let context = SessionContext::new_with_state(builder.build());
        let catalog = Arc::new(LanceCatalog::new(self.root.clone(), self.bridge.clone()));
        context.register_catalog(CATALOG_NAME, catalog.clone());
        lance_datafusion::udf::register_functions(&context);
        context.register_udaf(CheckedSum::udaf().as_ref().clone());
        Ok(LanceSession {
            context,
            root: self.root.clone(),
            catalog,
        })
    }
}

/// DataFusion's physical optimizer rules with ours added: top-k late materialization runs after
/// the scan nodes are final (after `EnsureCooperative`) and before the dynamic-filter pushdown
/// and the sanity check, so both see the rewritten plan.
fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    let position = rules
        .iter()
        .position(|rule| rule.name() == "EnsureCooperative")
        .map_or(rules.len(), |index| index + 1);
    rules.insert(position, Arc::new(TopKLateMaterialization));
    rules
}

/// Applies [`hide_row_identity_columns`] to a statement, including the one inside `EXPLAIN`
/// (so a plan shows what the statement itself would run).
fn hide_in_wildcards(statement: &mut DFStatement) {
    match statement {
        DFStatement::Statement(inner) => hide_row_identity_columns(inner),
        DFStatement::Explain(explain) => hide_in_wildcards(&mut explain.statement),
        _ => {}
    }
}

/// Whether a statement reads the list of tables (`SHOW TABLES`, `information_schema`,
/// `system`), which is then listed afresh before planning.
fn reads_catalog(references: &[TableReference]) -> bool {
    references.iter().any(|reference| {
        matches!(
            reference.schema(),
            Some("information_schema") | Some(SYSTEM_SCHEMA_NAME)
        )
    })
}

/// What a statement produced.
pub enum Outcome {
    /// Rows to stream to the client.
    Rows(Box<DataFrame>),
    /// A command that completed; `tag` is its Postgres-style completion tag (`CREATE TABLE 42`).
    Done { tag: String },
}

/// One user's session: settings (`SET ...`) persist across its statements.
#[derive(Clone)]
pub struct LanceSession {
    context: SessionContext,
    root: Arc<DataRoot>,
    catalog: Arc<LanceCatalog>,
}

impl LanceSession {
    /// The data root this session's tables live under.
    pub fn root(&self) -> &Arc<DataRoot> {
        &self.root
    }

    /// The DataFusion context (for front ends that need catalog metadata or settings).
    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    /// Splits `sql` into statements (semicolons inside strings and comments are respected),
    /// refusing statements too complex to plan safely (SQLSTATE 54001).
    pub fn parse(&self, sql: &str) -> Result<Vec<DFStatement>> {
        crate::parse::parse_statements(sql)
    }

    /// Plans and runs one parsed statement.
    pub async fn execute(&self, mut statement: DFStatement) -> Result<Outcome> {
        hide_in_wildcards(&mut statement);
        let state = self.context.state();
        if reads_catalog(&state.resolve_table_references(&statement)?) {
            self.catalog.refresh().await?;
        }
        let plan = state.statement_to_plan(statement).await?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                let table = self.local_table_name(&create.name)?;
                if create.if_not_exists && self.root.open_latest(&table).await?.is_some() {
                    return Ok(Outcome::Done {
                        tag: "CREATE TABLE".into(),
                    });
                }
                if create.or_replace {
                    return Err(Error::invalid(format!(
                        "CREATE OR REPLACE TABLE {table} is not supported: DROP TABLE {table} first"
                    )));
                }
                let input = (*create.input).clone();
                let stream = self
                    .context
                    .execute_logical_plan(input)
                    .await?
                    .execute_stream()
                    .await?;
                let dataset = self.root.create_table(&table, stream).await?;
                let rows = dataset
                    .count_rows(None)
                    .await
                    .map_err(|source| Error::lance("counting rows", dataset.uri(), source))?;
                Ok(Outcome::Done {
                    tag: format!("CREATE TABLE {rows}"),
                })
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(drop)) => {
                let table = self.local_table_name(&drop.name)?;
                let existed = self.root.drop_table(&table).await?;
                if !existed && !drop.if_exists {
                    return Err(Error::TableNotFound { table });
                }
                Ok(Outcome::Done {
                    tag: "DROP TABLE".into(),
                })
            }
            other => {
                let frame = self.context.execute_logical_plan(other).await?;
                Ok(Outcome::Rows(Box::new(frame)))
            }
        }
    }

    /// Runs `sql` (exactly one statement) and returns its rows as a stream; commands yield an
    /// empty stream. For callers that only want rows (tests, embedding).
    pub async fn sql_stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(Error::invalid(format!(
                "expected exactly one statement, got {}",
                statements.len()
            )));
        }
        match self.execute(statements.remove(0)).await? {
            Outcome::Rows(frame) => Ok(frame.execute_stream().await?),
            Outcome::Done { .. } => Ok(Box::pin(
                datafusion::physical_plan::EmptyRecordBatchStream::new(Arc::new(
                    arrow::datatypes::Schema::empty(),
                )),
            )),
        }
    }

    /// The dataset name for a table reference that must live in our catalog and schema.
    fn local_table_name(&self, reference: &TableReference) -> Result<String> {
        let in_our_schema = reference.catalog().is_none_or(|c| c == CATALOG_NAME)
            && reference.schema().is_none_or(|s| s == SCHEMA_NAME);
        if !in_our_schema {
            return Err(Error::invalid(format!(
                "tables can only be created and dropped in {CATALOG_NAME}.{SCHEMA_NAME}, not '{reference}'"
            )));
        }
        Ok(reference.table().to_string())
    }
}
