//! The engine and its sessions: the one way every front end runs SQL.
//!
//! [`Engine`] is built once per process from typed configuration. It owns what all sessions
//! share: the data root with its dataset cache, the catalog with its listing cache, and one
//! DataFusion runtime whose memory pool (`--memory-limit`) and spill folder (`--spill-dir`)
//! bound every query of the process together. [`Engine::session`] makes a [`LanceSession`] for
//! one user or connection: its own settings (`SET lance.nprobes = 20`, `SET datafusion...`).
//!
//! A statement goes through two steps, so that protocols with separate Parse/Describe and
//! Execute (Postgres' extended protocol, Flight SQL's prepared statements) plan it once:
//! - [`LanceSession::prepare`] hides `_rowid`/`_rowaddr` from wildcards, resolves the tables the
//!   statement names (asynchronously, once, into a snapshot; see [`crate::catalog`]), refuses
//!   unknown tables, schemas and functions with their own errors, and plans. The result, a
//!   [`PreparedStatement`], knows its parameter types and result schema.
//! - [`LanceSession::execute`] binds parameter values and runs it, as often as asked: a query
//!   yields a stream of record batches, a command a typed [`CommandTag`]. When a table the plan
//!   reads has a newer version, the statement is planned again, so each execution sees the
//!   latest data (and fails, as Postgres does, if its result columns changed).
//!
//! Commands that change the catalog (`CREATE TABLE ... AS`, `DROP TABLE`) are carried out here
//! by writing through the data root; everything else runs as a DataFusion plan. Integer
//! arithmetic and `sum` fail on overflow (see [`crate::functions::overflow`]).
//!
//! Statements must run on threads with [`crate::runtime::STATEMENT_STACK_BYTES`] of stack (the
//! runtime [`crate::runtime::build`] makes): planning recurses once per expression level, up to
//! the depth [`crate::engine::parse`] admits.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DFSchema, ParamValues, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    DdlStatement, Deallocate, EmptyRelation, LogicalPlan, Statement as PlanStatement,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{EmptyRecordBatchStream, ExecutionPlan, execute_stream};
use datafusion::prelude::SessionConfig;
use datafusion::sql::ResolvedTableReference;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{self, Visit, Visitor};

use crate::catalog::live::LiveCatalog;
use crate::catalog::{CATALOG_NAME, Catalog, SCHEMA_NAME, SYSTEM_SCHEMA_NAME, StatementCatalog};
use crate::config::{EngineConfig, LanceOptions, StoreConfig, default_memory_limit};
use crate::engine::copy::binary::WireType;
use crate::engine::copy::{Copy, CopyFormat, CopyOptions};
use crate::engine::hidden::hide_row_identity_columns;
use crate::engine::history::HistoryCommand;
use crate::engine::limits::{query_runtime, stream_until};
use crate::engine::optimized::OptimizedOnce;
use crate::engine::planned::{Plan, PlanSlot};
use crate::engine::recent::RecentQueries;
use crate::engine::session_functions::session_functions;
use crate::engine::transaction::{BlockModes, CursorStatement, FetchCount, TransactionBlock};
use crate::engine::variables::{SessionCommand, Variables, check_transaction_modes};
use crate::engine::writes::RowChange;
use crate::error::{Error, Result};
use crate::functions::overflow::CheckedArithmeticPlanner;
use crate::functions::search::order_by::NearestOrderBy;
use crate::physical::late_materialization::TopKLateMaterialization;
use crate::provider::table::LanceTable;
use crate::storage::index::IndexDefinition;
use crate::storage::maintenance::{OptimizeReport, VacuumReport};
use crate::storage::progress::WorkProgress;
use crate::storage::{AutoCompact, DataRoot, WriteInput};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

/// The dialect DataFusion's own SQL entry points use; the front door parses with
/// [`crate::engine::parse::LanceSqlDialect`], which is this dialect with two capabilities changed.
pub const SQL_DIALECT: &str = "PostgreSQL";

/// The deepest parenthesis nesting a statement may have to be handed to the stock PostgreSQL
/// parser (see [`LanceSession::parse`]); client catalog queries nest about 4 deep.
const KNOWN_QUERY_MAX_NESTING: usize = 8;

/// The deepest nesting of parentheses in `sql`, outside quoted strings and identifiers.
fn parenthesis_depth(sql: &str) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    for character in sql.chars() {
        match (quote, character) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(character),
            (None, '(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')') => depth = depth.saturating_sub(1),
            (None, _) => {}
        }
    }
    deepest
}

/// How many memory consumers a "query over the memory limit" error names.
const REPORTED_MEMORY_CONSUMERS: usize = 3;

/// One lancesql process: configuration and everything sessions share.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    root: Arc<DataRoot>,
    catalog: Arc<Catalog>,
    runtime: Arc<RuntimeEnv>,
    memory_limit: u64,
    /// Rewrites Postgres client idioms (`::regclass`, `OPERATOR(pg_catalog.~)`, unqualified
    /// `pg_*` tables, ...) into SQL DataFusion plans.
    postgres: Arc<PostgresCompatibilityParser>,
    config: EngineConfig,
    /// What [`Engine::session`] copies.
    template: SessionState,
}

impl Engine {
    /// Resolves the data root and prepares shared state. Does no I/O on remote stores.
    pub fn new(store: &StoreConfig, config: EngineConfig) -> Result<Self> {
        config.validate()?;
        let root = Arc::new(DataRoot::new(store, config.dataset_cache_entries)?);
        let catalog = Arc::new(Catalog::new(root.clone(), &config));
        let memory_limit = config.memory_limit.unwrap_or_else(default_memory_limit);
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(usize::try_from(memory_limit).unwrap_or(usize::MAX)),
            std::num::NonZeroUsize::new(REPORTED_MEMORY_CONSUMERS)
                .unwrap_or(std::num::NonZeroUsize::MIN),
        );
        let mut runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(pool));
        if let Some(folder) = &config.spill_dir {
            std::fs::create_dir_all(folder).map_err(|source| Error::File {
                path: folder.display().to_string(),
                source,
            })?;
            runtime = runtime.with_temp_file_path(folder);
        }
        let runtime = Arc::new(runtime.build()?);
        let template = session_template(&config, &root, &catalog, &runtime, memory_limit)?;
        Ok(Engine {
            shared: Arc::new(Shared {
                root,
                catalog,
                runtime,
                memory_limit,
                postgres: Arc::new(PostgresCompatibilityParser::new()),
                config,
                template,
            }),
        })
    }

    /// Creates the local data folder `store` names if it is missing (for commands that write);
    /// returns whether it did. Remote roots are left alone.
    pub fn create_local_root(store: &StoreConfig) -> Result<bool> {
        crate::storage::create_local_root(&store.data)
    }

    /// Where the tables live, as a user names it.
    pub fn location(&self) -> &str {
        self.shared.root.location()
    }

    /// The URI lancesql reads `table` from (for tools that compare against Lance directly).
    pub fn table_location(&self, table: &str) -> Result<String> {
        self.shared.root.table_uri(table)
    }

    /// How many times a dataset was opened from the store since the engine started (every
    /// other use was served from the shared cache).
    pub fn dataset_opens(&self) -> u64 {
        self.shared.root.dataset_opens()
    }

    /// The shared catalog (tests reach into it to slow listings down).
    #[cfg(test)]
    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.shared.catalog
    }

    /// A new session (one per connection or shell): a copy of the shared template with its own
    /// catalog list (so catalogs one session registers stay its own), settings and variables.
    pub fn session(&self) -> Result<LanceSession> {
        let config = &self.shared.config;
        let template = &self.shared.template;
        let lancesql = template
            .catalog_list()
            .catalog(CATALOG_NAME)
            .ok_or_else(|| Error::Internal {
                message: format!("the session template has no '{CATALOG_NAME}' catalog"),
            })?;
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(CATALOG_NAME.to_string(), lancesql);
        let state = SessionStateBuilder::new_from_existing(template.clone())
            .with_catalog_list(catalogs)
            .build();
        let context = SessionContext::new_with_state(state);
        crate::functions::register_catalog_functions(&context);
        let variables = Variables::new(config.read_only);
        for function in session_functions(&variables) {
            context.register_udf(function);
        }
        let initial_options = Arc::new(context.state().config_options().as_ref().clone());
        Ok(LanceSession {
            context,
            catalog: self.shared.catalog.clone(),
            postgres: self.shared.postgres.clone(),
            variables,
            initial_options,
            runtime: self.shared.runtime.clone(),
            read_only: config.read_only,
            query_memory_limit: usize::try_from(
                config
                    .query_memory_limit
                    .unwrap_or(self.shared.memory_limit),
            )
            .unwrap_or(usize::MAX),
            prepared_names: Arc::default(),
            transaction: TransactionBlock::default(),
            progress: None,
            recent: Arc::default(),
            state_copy: Arc::default(),
        })
    }
}

/// What every session starts from, built once per engine: settings, planners and optimizer
/// rules, functions, and the `lancesql` catalog with Postgres catalog emulation installed
/// (decoding the emulation's static `pg_catalog` tables takes milliseconds, too long for every
/// connection and for every Flight SQL call that comes without a session token).
fn session_template(
    config: &EngineConfig,
    root: &Arc<DataRoot>,
    catalog: &Arc<Catalog>,
    runtime: &Arc<RuntimeEnv>,
    memory_limit: u64,
) -> Result<SessionState> {
    let mut session_config = SessionConfig::new()
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(false)
        .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
        .with_batch_size(config.batch_size)
        .with_option_extension(LanceOptions::default())
        .with_extension(root.clone());
    if let Some(partitions) = config.target_partitions {
        session_config = session_config.with_target_partitions(partitions);
    }
    // A sort reserves this much up front to merge what it spilled; it must leave room for
    // the sorts of other partitions and queries under a small limit.
    let merge_reservation = session_config
        .options()
        .execution
        .sort_spill_reservation_bytes
        .min(usize::try_from(memory_limit / 16).unwrap_or(usize::MAX));
    session_config
        .options_mut()
        .execution
        .sort_spill_reservation_bytes = merge_reservation;
    session_config
        .options_mut()
        .set("datafusion.sql_parser.dialect", SQL_DIALECT)?;
    // DataFusion 54.1 executes uncorrelated scalar subqueries in a `ScalarSubqueryExec`, and
    // a plan with one loses its top sort when ORDER BY names a column the select list does
    // not (`SELECT a ... WHERE a < (SELECT 5) ORDER BY b` comes back unordered). Planned as
    // joins, as before 54, the order holds (`slt/safety.slt` asserts it).
    session_config
        .options_mut()
        .optimizer
        .enable_physical_uncorrelated_scalar_subquery = false;
    let mut builder = SessionStateBuilder::new()
        .with_config(session_config)
        .with_runtime_env(runtime.clone())
        .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
        .with_default_features()
        .with_optimizer_rule(Arc::new(NearestOrderBy))
        .with_physical_optimizer_rules(physical_optimizer_rules());
    // Ours first: it must see integer arithmetic before DataFusion's planners do.
    builder
        .expr_planners()
        .get_or_insert_with(Vec::new)
        .insert(0, Arc::new(CheckedArithmeticPlanner));
    let context = SessionContext::new_with_state(builder.build());
    // `lancesql` between statements, where Postgres catalog emulation (`pg_catalog` and
    // its functions) is installed; statements see it through their own snapshot.
    context.register_catalog(CATALOG_NAME, Arc::new(LiveCatalog::new(catalog.clone())));
    setup_pg_catalog(&context, CATALOG_NAME, EmptyContextProvider)
        .map_err(|error| Error::from(*error))?;
    crate::functions::register_all(&context);
    Ok(context.state())
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

/// What a command reports when it completes: Postgres' command tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandTag {
    /// A query, or `CREATE TABLE ... AS` (which Postgres also reports as `SELECT n`).
    Select { rows: u64 },
    /// `CREATE TABLE` that found the table already there (`IF NOT EXISTS`).
    CreateTable,
    /// `DROP TABLE`.
    DropTable,
    /// `INSERT`, after adding `rows` rows.
    Insert { rows: u64 },
    /// `UPDATE`, after changing `rows` rows.
    Update { rows: u64 },
    /// `DELETE`, after removing `rows` rows.
    Delete { rows: u64 },
    /// `TRUNCATE`.
    Truncate,
    /// `MERGE`, after inserting, updating and deleting `rows` rows in all.
    Merge { rows: u64 },
    /// `ALTER TABLE` of a column.
    AlterTable,
    /// `VACUUM`, after its report.
    Vacuum,
    /// `CALL` of a history procedure (tags, restore), or its `ALTER TABLE`/`RESTORE` form.
    Call,
    /// `CREATE INDEX`.
    CreateIndex,
    /// `DROP INDEX`.
    DropIndex,
    /// `OPTIMIZE`, after its report.
    Optimize,
    /// `SET`.
    Set,
    /// `RESET`.
    Reset,
    /// `SHOW`.
    Show,
    /// `EXPLAIN` (with or without `ANALYZE`).
    Explain,
    /// `PREPARE`.
    Prepare,
    /// `DEALLOCATE`.
    Deallocate,
    /// `BEGIN`/`START TRANSACTION`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, `RELEASE`: accepted,
    /// each statement being its own transaction (see [`TransactionControl`]).
    Transaction(TransactionControl),
    /// `DISCARD ALL`.
    Discard,
    /// `COPY ... TO STDOUT`, after `rows` rows.
    Copy { rows: u64 },
    /// `DECLARE ... CURSOR`.
    DeclareCursor,
    /// `FETCH`, after `rows` rows.
    Fetch { rows: u64 },
    /// `CLOSE name` (`all: false`) or `CLOSE ALL`.
    CloseCursor { all: bool },
}

impl CommandTag {
    /// The rows the command produced or affected, where its tag reports them.
    pub fn rows(&self) -> Option<u64> {
        match self {
            CommandTag::Select { rows }
            | CommandTag::Insert { rows }
            | CommandTag::Update { rows }
            | CommandTag::Delete { rows }
            | CommandTag::Merge { rows }
            | CommandTag::Copy { rows }
            | CommandTag::Fetch { rows } => Some(*rows),
            _ => None,
        }
    }
}

/// What a bulk ingest does when its table already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestExisting {
    /// Refuse (42P07).
    Fail,
    /// Add the rows as one new version.
    Append,
    /// Replace rows and columns as one new version.
    Replace,
}

/// Transaction-control statements. Each statement commits on its own; what a block means is in
/// [`transaction`](super::transaction). Clients that wrap their work in `BEGIN ... COMMIT` work
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionControl {
    Begin(BlockModes),
    Commit,
    Rollback,
    Savepoint,
    Release,
    RollbackToSavepoint,
}

impl TransactionControl {
    /// Postgres' completion tag.
    pub fn tag(self) -> &'static str {
        match self {
            TransactionControl::Begin(_) => "BEGIN",
            TransactionControl::Commit => "COMMIT",
            TransactionControl::Rollback | TransactionControl::RollbackToSavepoint => "ROLLBACK",
            TransactionControl::Savepoint => "SAVEPOINT",
            TransactionControl::Release => "RELEASE",
        }
    }

    /// Whether the statement ends the transaction block (`COMMIT`, `ROLLBACK`).
    pub fn ends_block(self) -> bool {
        matches!(
            self,
            TransactionControl::Commit | TransactionControl::Rollback
        )
    }
}

impl fmt::Display for CommandTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandTag::Select { rows } => write!(f, "SELECT {rows}"),
            CommandTag::CreateTable => f.write_str("CREATE TABLE"),
            CommandTag::DropTable => f.write_str("DROP TABLE"),
            // Postgres' INSERT tag carries an object id, always 0 since tables have no OIDs.
            CommandTag::Insert { rows } => write!(f, "INSERT 0 {rows}"),
            CommandTag::Update { rows } => write!(f, "UPDATE {rows}"),
            CommandTag::Delete { rows } => write!(f, "DELETE {rows}"),
            CommandTag::Truncate => f.write_str("TRUNCATE TABLE"),
            CommandTag::Merge { rows } => write!(f, "MERGE {rows}"),
            CommandTag::Call => f.write_str("CALL"),
            CommandTag::AlterTable => f.write_str("ALTER TABLE"),
            CommandTag::Vacuum => f.write_str("VACUUM"),
            CommandTag::CreateIndex => f.write_str("CREATE INDEX"),
            CommandTag::DropIndex => f.write_str("DROP INDEX"),
            CommandTag::Set => f.write_str("SET"),
            CommandTag::Reset => f.write_str("RESET"),
            CommandTag::Optimize => f.write_str("OPTIMIZE"),
            CommandTag::Show => f.write_str("SHOW"),
            CommandTag::Explain => f.write_str("EXPLAIN"),
            CommandTag::Prepare => f.write_str("PREPARE"),
            CommandTag::Deallocate => f.write_str("DEALLOCATE"),
            CommandTag::Transaction(control) => f.write_str(control.tag()),
            CommandTag::Discard => f.write_str("DISCARD ALL"),
            CommandTag::Copy { rows } => write!(f, "COPY {rows}"),
            CommandTag::DeclareCursor => f.write_str("DECLARE CURSOR"),
            CommandTag::Fetch { rows } => write!(f, "FETCH {rows}"),
            CommandTag::CloseCursor { all: false } => f.write_str("CLOSE CURSOR"),
            CommandTag::CloseCursor { all: true } => f.write_str("CLOSE CURSOR ALL"),
        }
    }
}

/// What kind of statement was prepared: whether it yields rows and how its completion reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// A query (`SELECT`, `VALUES`, `WITH`, `DESCRIBE`): rows, then `SELECT n`.
    Query,
    /// `SHOW ...`: rows, then `SHOW`.
    Show,
    /// `EXPLAIN ...`: rows, then `EXPLAIN`.
    Explain,
    /// `CREATE TABLE`: a new Lance dataset, then `SELECT n` when it had `AS SELECT` (as
    /// Postgres reports it), `CREATE TABLE` otherwise.
    CreateTable {
        table: String,
        if_not_exists: bool,
        as_select: bool,
    },
    /// `DROP TABLE`.
    DropTable { table: String, if_exists: bool },
    /// `INSERT`, `UPDATE`, `DELETE` or `TRUNCATE`: one commit by the table's write hooks,
    /// then the rows affected ([`super::writes`]).
    Write(RowChange),
    /// `MERGE INTO table USING ...`: one Lance merge-insert ([`super::merge`]).
    Merge {
        table: String,
        statement: Box<ast::Merge>,
    },
    /// A history procedure: tags and restore ([`super::history`]).
    History(HistoryCommand),
    /// `ALTER TABLE` with one column operation ([`super::alter`]).
    AlterTable {
        table: String,
        if_exists: bool,
        operation: Box<ast::AlterTableOperation>,
    },
    /// `CREATE INDEX`: built and committed by the data root.
    CreateIndex(IndexDefinition),
    /// `DROP INDEX name [ON table]`.
    DropIndex {
        name: String,
        table: Option<String>,
        if_exists: bool,
    },
    /// `OPTIMIZE [TABLE] table`: compaction and index optimisation by the data root, then one
    /// row saying what it did ([`optimize_report_schema`]).
    Optimize { table: String },
    /// `COPY ... TO STDOUT`: rows (with no row description) the front end writes in the COPY
    /// format, then `COPY n`.
    CopyOut(CopyOptions),
    /// `COPY table FROM STDIN`: the front end decodes the client's data into rows of the
    /// statement's schema (its target columns) and hands them to [`LanceSession::copy_in`].
    /// With `creates`, the table does not exist yet and the COPY creates it with the columns
    /// it names, as text.
    CopyIn {
        table: String,
        options: CopyOptions,
        creates: bool,
    },
    /// `DECLARE name CURSOR FOR query`: runs the query and keeps its rows for `FETCH`.
    DeclareCursor { name: String, holdable: bool },
    /// `FETCH`: the next rows of an open cursor, then `FETCH n`.
    Fetch { name: String, count: FetchCount },
    /// `CLOSE name` or `CLOSE ALL` (`None`).
    CloseCursor(Option<String>),
    /// A session command with no rows (`SET`, `RESET`, `PREPARE`, transaction control, ...).
    Command(CommandTag),
}

impl StatementKind {
    /// Whether executing the statement yields rows.
    pub fn returns_rows(&self) -> bool {
        matches!(
            self,
            StatementKind::Query
                | StatementKind::Show
                | StatementKind::Explain
                | StatementKind::Fetch { .. }
                | StatementKind::Optimize { .. }
                | StatementKind::History(HistoryCommand::Vacuum { .. })
        )
    }

    /// The completion tag after `rows` rows were produced (for statements that return rows).
    pub fn tag_after(&self, rows: u64) -> CommandTag {
        match self {
            StatementKind::Show => CommandTag::Show,
            StatementKind::Explain => CommandTag::Explain,
            StatementKind::Command(tag) => tag.clone(),
            StatementKind::DropTable { .. } => CommandTag::DropTable,
            StatementKind::Write(change) => match change {
                RowChange::Insert => CommandTag::Insert { rows },
                RowChange::Update => CommandTag::Update { rows },
                RowChange::Delete => CommandTag::Delete { rows },
                RowChange::Truncate => CommandTag::Truncate,
            },
            StatementKind::CreateIndex(_) => CommandTag::CreateIndex,
            StatementKind::DropIndex { .. } => CommandTag::DropIndex,
            StatementKind::Optimize { .. } => CommandTag::Optimize,
            StatementKind::History(HistoryCommand::Vacuum { .. }) => CommandTag::Vacuum,
            StatementKind::History(_) => CommandTag::Call,
            StatementKind::AlterTable { .. } => CommandTag::AlterTable,
            StatementKind::Merge { .. } => CommandTag::Merge { rows },
            StatementKind::CreateTable {
                as_select: false, ..
            } => CommandTag::CreateTable,
            StatementKind::Query | StatementKind::CreateTable { .. } => CommandTag::Select { rows },
            StatementKind::CopyOut(_) | StatementKind::CopyIn { .. } => CommandTag::Copy { rows },
            StatementKind::DeclareCursor { .. } => CommandTag::DeclareCursor,
            StatementKind::Fetch { .. } => CommandTag::Fetch { rows },
            StatementKind::CloseCursor(name) => CommandTag::CloseCursor {
                all: name.is_none(),
            },
        }
    }
}

/// A statement planned once, to be executed any number of times.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    statement: DFStatement,
    kind: StatementKind,
    /// Replaced when an execution finds it stale (see [`super::planned`]).
    plan: PlanSlot,
    parameter_fields: Vec<Option<FieldRef>>,
    schema: SchemaRef,
    /// Set when the session carries the statement out itself (Postgres parameters).
    command: Option<SessionCommand>,
}

impl PreparedStatement {
    /// What kind of statement this is.
    pub fn kind(&self) -> &StatementKind {
        &self.kind
    }

    /// The types of `$1`, `$2`, ... in order; `None` where the statement does not determine one
    /// (the client's declared type, or text, applies). A field's metadata says which Postgres
    /// type an Arrow type stands for where that is not the usual one (`oid` is an `Int32`
    /// marked by the catalog emulation).
    pub fn parameter_fields(&self) -> &[Option<FieldRef>] {
        &self.parameter_fields
    }

    /// Whether executing the statement made its optimised plan and kept it (tests check that
    /// the statements meant to skip the optimiser do).
    #[cfg(test)]
    pub(crate) fn keeps_optimized_plan(&self) -> bool {
        self.plan
            .get()
            .optimized
            .as_ref()
            .is_some_and(|optimized| optimized.is_made())
    }

    /// Whether executing the statement kept its physical plan too (see [`super::optimized`]).
    #[cfg(test)]
    pub(crate) fn keeps_physical_plan(&self) -> bool {
        self.plan
            .get()
            .optimized
            .as_ref()
            .is_some_and(|optimized| optimized.physical().is_some())
    }

    /// The columns executing the statement yields (no columns for commands).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The columns executing the statement with `parameters` yields: where the statement
    /// leaves a placeholder untyped (`SELECT $1`), the bound value's type decides.
    pub fn schema_with(&self, parameters: &[ScalarValue]) -> Result<SchemaRef> {
        if parameters.is_empty() || self.command.is_some() || !self.kind.returns_rows() {
            return Ok(self.schema());
        }
        let bound = self
            .plan
            .get()
            .logical
            .clone()
            .with_param_values(ParamValues::List(
                parameters.iter().cloned().map(Into::into).collect(),
            ))
            .map_err(Error::from_datafusion)?;
        Ok(Arc::new(bound.schema().as_arrow().clone()))
    }

    /// The statement as it will run, for logs.
    pub fn sql(&self) -> String {
        self.statement.to_string()
    }
}

/// A statement planned against the catalog snapshot it resolved.
struct Planned {
    plan: LogicalPlan,
    /// The tables the plan reads, as resolved.
    tables: Vec<(String, Arc<LanceTable>)>,
    /// Whether the plan read a listing of the root (`information_schema`, `pg_catalog`, ...).
    reads_catalog: bool,
}

/// What executing a statement produced.
pub enum Outcome {
    /// Rows to stream to the client; the completion tag is `kind.tag_after(rows streamed)`.
    Rows {
        stream: SendableRecordBatchStream,
        kind: StatementKind,
    },
    /// A command that completed.
    Done(CommandTag),
}

/// One user's session: settings (`SET ...`) and SQL-level prepared statements persist across
/// its statements.
#[derive(Clone)]
pub struct LanceSession {
    context: SessionContext,
    catalog: Arc<Catalog>,
    postgres: Arc<PostgresCompatibilityParser>,
    /// Postgres parameters (`application_name`, `statement_timeout`, ...).
    variables: Variables,
    /// The DataFusion settings the session started with (`RESET ALL`, `DISCARD ALL`).
    initial_options: Arc<ConfigOptions>,
    /// The process's runtime, which each execution caps at `query_memory_limit`.
    runtime: Arc<RuntimeEnv>,
    read_only: bool,
    query_memory_limit: usize,
    /// Names `PREPARE` gave statements (for `DEALLOCATE ALL` and `DISCARD ALL`).
    prepared_names: Arc<std::sync::Mutex<BTreeSet<String>>>,
    /// Open SQL cursors and the transaction block that scopes them.
    transaction: TransactionBlock,
    /// Where long work (index builds) reports its stages, if anyone listens.
    progress: Option<Arc<dyn WorkProgress>>,
    /// Queries prepared recently, by SQL text ([`Self::prepare_sql_reusing`]).
    recent: Arc<RecentQueries>,
    /// A copy of the session state made under its current settings, which executions of kept
    /// optimised plans share ([`Self::current_state`]).
    state_copy: Arc<std::sync::Mutex<Option<Arc<SessionState>>>>,
}

impl LanceSession {
    /// The same session, reporting the stages of long work its statements do (`CREATE INDEX`,
    /// `OPTIMIZE`) to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn WorkProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Splits `sql` into statements (semicolons inside strings and comments are respected),
    /// refusing statements too complex to plan safely (SQLSTATE 54001), and rewrites the
    /// Postgres idioms clients send into SQL DataFusion plans.
    pub fn parse(&self, sql: &str) -> Result<Vec<DFStatement>> {
        tracing::debug!(sql, "statement received");
        let sql = crate::engine::compat::known_statement(sql).unwrap_or(sql);
        let statements = crate::engine::parse::parse_statements(sql)?;
        if let Some(known) = self.known_client_query(sql, statements.len()) {
            return Ok(known);
        }
        let statements = statements
            .into_iter()
            .map(|statement| match statement {
                DFStatement::Statement(inner) => {
                    let mut statement = self.postgres.rewrite(*inner);
                    crate::engine::compat::rewrite(&mut statement);
                    DFStatement::Statement(Box::new(statement))
                }
                other => other,
            })
            .collect();
        Ok(statements)
    }

    /// Catalog queries of known clients (psql's `\d`, DBeaver, ...) that DataFusion cannot plan
    /// as written are replaced whole by `datafusion-pg-catalog`'s equivalents. Its parser is
    /// PostgreSQL's stock one, whose time grows exponentially with nested calls, so it only sees
    /// statements that already passed the engine's own parser, read `pg_catalog`, and nest
    /// shallowly.
    fn known_client_query(&self, sql: &str, statements: usize) -> Option<Vec<DFStatement>> {
        const CATALOG: &[u8] = b"pg_catalog";
        let names_catalog = sql
            .as_bytes()
            .windows(CATALOG.len())
            .any(|window| window.eq_ignore_ascii_case(CATALOG));
        if !names_catalog || parenthesis_depth(sql) > KNOWN_QUERY_MAX_NESTING {
            return None;
        }
        let parsed = self.postgres.parse(sql).ok()?;
        (parsed.len() == statements).then(|| {
            parsed
                .into_iter()
                .map(|mut statement| {
                    crate::engine::compat::rewrite(&mut statement);
                    DFStatement::Statement(Box::new(statement))
                })
                .collect()
        })
    }

    /// Parses `sql`, which must hold exactly one statement, and prepares it.
    pub async fn prepare_sql(&self, sql: &str) -> Result<PreparedStatement> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(Error::invalid(format!(
                "expected exactly one statement, got {}",
                statements.len()
            )));
        }
        self.prepare(statements.remove(0)).await
    }

    /// [`Self::prepare_sql`], reusing the query this session last prepared from the same text
    /// while it [is current](Self::is_current) (see [`super::recent`]).
    pub async fn prepare_sql_reusing(&self, sql: &str) -> Result<Arc<PreparedStatement>> {
        if let Some(kept) = self.reusable(sql).await? {
            return Ok(kept);
        }
        let prepared = Arc::new(self.prepare_sql(sql).await?);
        self.remember(sql, &prepared);
        Ok(prepared)
    }

    /// The query this session prepared from `sql`, if it kept it and it is still current.
    pub async fn reusable(&self, sql: &str) -> Result<Option<Arc<PreparedStatement>>> {
        match self.recent.get(sql) {
            Some(kept) if self.is_current(&kept).await? => Ok(Some(kept)),
            _ => Ok(None),
        }
    }

    /// Keeps `prepared`, prepared from `sql`, for [`Self::reusable`] if it is a query.
    pub fn remember(&self, sql: &str, prepared: &Arc<PreparedStatement>) {
        self.recent.keep(sql, prepared);
    }

    /// Keeps a copy of `prepared`, prepared from `sql` a moment ago to run once with
    /// [`Self::execute_fresh`], for [`Self::reusable`] if it is a query: the copy is checked
    /// for currency when it is reused, the statement itself runs as just planned (a catalog
    /// query would otherwise be planned twice).
    pub fn remember_copy(&self, sql: &str, prepared: &PreparedStatement) {
        if matches!(prepared.kind(), StatementKind::Query) {
            self.recent.keep(sql, &Arc::new(prepared.clone()));
        }
    }

    /// Resolves the tables `statement` names and plans it (see the module docs).
    pub async fn prepare(&self, mut statement: DFStatement) -> Result<PreparedStatement> {
        refuse_unsupported(&statement)?;
        if let Some(what) = writes(&statement) {
            let block = self.transaction.modes();
            if self.read_only {
                return Err(Error::ReadOnly {
                    statement: what.to_string(),
                });
            }
            if block.read_only {
                return Err(Error::ReadOnlyTransaction {
                    statement: what.to_string(),
                });
            }
            if block.snapshot {
                return Err(Error::Unsupported {
                    what: format!(
                        "{what} inside a REPEATABLE READ or SERIALIZABLE block: writes commit on \
                         their own, outside its snapshot; COMMIT first"
                    ),
                });
            }
        }
        if let Some(command) = SessionCommand::from_statement(&statement)? {
            return Ok(PreparedStatement {
                kind: match &command {
                    SessionCommand::Show(_) => StatementKind::Show,
                    SessionCommand::Set { .. } => StatementKind::Command(CommandTag::Set),
                    SessionCommand::Reset(_)
                    | SessionCommand::ResetSetting(_)
                    | SessionCommand::ResetAll => StatementKind::Command(CommandTag::Reset),
                    SessionCommand::DiscardAll => StatementKind::Command(CommandTag::Discard),
                },
                schema: command.schema(),
                statement,
                plan: PlanSlot::new(Plan::unchecked(empty_plan())),
                parameter_fields: Vec::new(),
                command: Some(command),
            });
        }
        let (copy, cursor) = match &statement {
            DFStatement::Statement(inner) => (
                Copy::from_statement(inner)?,
                CursorStatement::from_statement(inner)?,
            ),
            _ => (None, None),
        };
        // A COPY is planned as the query that produces (or types) its rows, a DECLARE as its
        // cursor's query.
        let special_kind = match (copy, cursor) {
            (
                _,
                Some(CursorStatement::Declare {
                    name,
                    holdable,
                    query,
                }),
            ) => {
                statement = DFStatement::Statement(Box::new(ast::Statement::Query(query)));
                Some(StatementKind::DeclareCursor { name, holdable })
            }
            (_, Some(CursorStatement::Fetch { name, count })) => {
                Some(StatementKind::Fetch { name, count })
            }
            (_, Some(CursorStatement::Close(name))) => Some(StatementKind::CloseCursor(name)),
            (None, None) => None,
            (Some(Copy::Out { query, options }), None) => {
                statement = DFStatement::Statement(Box::new(query));
                Some(StatementKind::CopyOut(options))
            }
            (
                Some(Copy::In {
                    table,
                    columns,
                    column_names,
                    options,
                }),
                None,
            ) => {
                let table = local_table_name(&table)?;
                if self.catalog.table(&table).await?.is_none() && !column_names.is_empty() {
                    return self.prepare_creating_copy(statement, table, column_names, options);
                }
                statement = DFStatement::Statement(Box::new(columns));
                Some(StatementKind::CopyIn {
                    table,
                    options,
                    creates: false,
                })
            }
        };
        hide_in_wildcards(&mut statement);
        let kind = match special_kind {
            Some(kind) => kind,
            None => statement_kind(&statement)?,
        };
        let plan = match kind {
            // DataFusion has no transactions, cursors or indices; nothing to plan.
            StatementKind::Command(CommandTag::Transaction(_))
            | StatementKind::CreateIndex(_)
            | StatementKind::DropIndex { .. }
            | StatementKind::Optimize { .. }
            | StatementKind::History(_)
            | StatementKind::AlterTable { .. }
            | StatementKind::Merge { .. }
            | StatementKind::Fetch { .. }
            | StatementKind::CloseCursor(_) => Plan::unchecked(empty_plan()),
            _ => self.plan_for_execution(&statement, &kind).await?,
        };
        let parameter_fields = parameter_fields(&plan.logical)?;
        if let StatementKind::CopyIn { options, .. } = &kind
            && options.format == CopyFormat::Binary
        {
            for field in plan.logical.schema().fields() {
                WireType::of(field.name(), field.data_type())?;
            }
        }
        let schema = if let StatementKind::Fetch { name, .. } = &kind {
            self.transaction.schema(name)?
        } else if let StatementKind::Optimize { .. } = &kind {
            optimize_report_schema()
        } else if let StatementKind::History(HistoryCommand::Vacuum { .. }) = &kind {
            vacuum_report_schema()
        } else if kind.returns_rows() || matches!(kind, StatementKind::CopyIn { .. }) {
            Arc::new(plan.logical.schema().as_arrow().clone())
        } else {
            Arc::new(Schema::empty())
        };
        Ok(PreparedStatement {
            statement,
            kind,
            plan: PlanSlot::new(plan),
            parameter_fields,
            schema,
            command: None,
        })
    }

    /// `COPY table (columns) FROM STDIN` for a table that does not exist: the COPY creates it,
    /// with the columns it names as nullable text (text and CSV carry no types).
    fn prepare_creating_copy(
        &self,
        statement: DFStatement,
        table: String,
        column_names: Vec<String>,
        options: CopyOptions,
    ) -> Result<PreparedStatement> {
        if options.format == CopyFormat::Binary {
            return Err(Error::Unsupported {
                what: format!(
                    "binary COPY into table '{table}', which does not exist: binary data carries \
                     no column types, so create the table first or COPY in text or CSV"
                ),
            });
        }
        let mut fields = Vec::with_capacity(column_names.len());
        for name in column_names {
            if fields.iter().any(|field: &Field| field.name() == &name) {
                return Err(Error::invalid(format!(
                    "column \"{name}\" is named more than once in the COPY"
                )));
            }
            fields.push(Field::new(name, DataType::Utf8, true));
        }
        Ok(PreparedStatement {
            statement,
            kind: StatementKind::CopyIn {
                table,
                options,
                creates: true,
            },
            plan: PlanSlot::new(Plan::unchecked(empty_plan())),
            parameter_fields: Vec::new(),
            schema: Arc::new(Schema::new(fields)),
            command: None,
        })
    }

    /// Runs a prepared statement with `parameters` bound to `$1`, `$2`, ... in order, within
    /// the session's `statement_timeout` (planning and streaming together).
    pub async fn execute(
        &self,
        prepared: &PreparedStatement,
        parameters: Vec<ScalarValue>,
    ) -> Result<Outcome> {
        let Some(timeout) = self.variables.statement_timeout() else {
            return self.execute_unlimited(prepared, parameters).await;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let after_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let outcome =
            tokio::time::timeout_at(deadline, self.execute_unlimited(prepared, parameters))
                .await
                .map_err(|_| Error::StatementTimeout { after_ms })??;
        Ok(match outcome {
            Outcome::Rows { stream, kind } => Outcome::Rows {
                stream: stream_until(stream, tokio::time::sleep_until(deadline), move || {
                    Error::StatementTimeout { after_ms }
                }),
                kind,
            },
            done => done,
        })
    }

    async fn execute_unlimited(
        &self,
        prepared: &PreparedStatement,
        parameters: Vec<ScalarValue>,
    ) -> Result<Outcome> {
        if !matches!(prepared.kind, StatementKind::Query) {
            // It may change what the kept queries' names resolve to.
            self.recent.clear();
        }
        if let Some(command) = &prepared.command {
            return self.carry_out(command).await;
        }
        let mut planned = prepared.plan.get();
        if !self.plan_is_current(&planned).await? {
            planned = Arc::new(self.plan_again(prepared).await?);
            prepared.plan.replace(planned.clone());
        }
        if let Some(optimized) = &planned.optimized {
            return self
                .query_optimized_once(prepared, &planned.logical, optimized, parameters)
                .await;
        }
        let plan = planned.logical.clone();
        let plan = if parameters.is_empty() && prepared.parameter_fields.is_empty() {
            plan
        } else {
            let values = ParamValues::List(parameters.into_iter().map(Into::into).collect());
            // Read in place: a copy of the whole session state per execution costs more than
            // binding does.
            let state = self.context.state_ref();
            let plan = super::search::bind_parameters(plan, &values, &*state.read())?;
            plan.with_param_values(values)?
        };
        match &prepared.kind {
            StatementKind::CreateTable {
                table,
                if_not_exists,
                ..
            } => {
                let rows = self
                    .create_table_from_plan(table, *if_not_exists, plan)
                    .await?;
                Ok(Outcome::Done(match rows {
                    Some(rows) => prepared.kind.tag_after(rows),
                    None => CommandTag::CreateTable,
                }))
            }
            StatementKind::DropTable { table, if_exists } => {
                self.drop_table(table, *if_exists).await
            }
            StatementKind::Write(change) => {
                let rows = Box::pin(self.write(*change, plan)).await?;
                Ok(Outcome::Done(prepared.kind.tag_after(rows)))
            }
            StatementKind::History(HistoryCommand::Vacuum { table, retain }) => {
                let report = self.catalog.root().vacuum_table(table, *retain).await?;
                let batch = vacuum_report(table, &report)?;
                Ok(Outcome::Rows {
                    stream: Box::pin(MemoryStream::try_new(
                        vec![batch],
                        vacuum_report_schema(),
                        None,
                    )?),
                    kind: prepared.kind.clone(),
                })
            }
            StatementKind::History(command) => {
                Box::pin(self.carry_out_history(command)).await?;
                Ok(Outcome::Done(CommandTag::Call))
            }
            StatementKind::Merge { table, statement } => {
                let rows = Box::pin(self.merge(table, statement)).await?;
                Ok(Outcome::Done(CommandTag::Merge { rows }))
            }
            StatementKind::AlterTable {
                table,
                if_exists,
                operation,
            } => {
                Box::pin(self.alter_table(table, *if_exists, operation)).await?;
                Ok(Outcome::Done(CommandTag::AlterTable))
            }
            StatementKind::CreateIndex(definition) => {
                self.catalog
                    .root()
                    .create_index(definition, self.progress.clone())
                    .await?;
                Ok(Outcome::Done(CommandTag::CreateIndex))
            }
            StatementKind::DropIndex {
                name,
                table,
                if_exists,
            } => self.drop_index(name, table.as_deref(), *if_exists).await,
            StatementKind::Optimize { table } => {
                let rows_per_fragment =
                    LanceOptions::of(self.context.state_ref().read().config_options())
                        .max_rows_per_file;
                let report = self
                    .catalog
                    .root()
                    .optimize_table(table, rows_per_fragment, self.progress.clone())
                    .await?;
                let batch = optimize_report(table, &report)?;
                Ok(Outcome::Rows {
                    stream: Box::pin(MemoryStream::try_new(
                        vec![batch],
                        optimize_report_schema(),
                        None,
                    )?),
                    kind: prepared.kind.clone(),
                })
            }
            StatementKind::CopyIn { .. } => Err(Error::Unsupported {
                what: "COPY ... FROM STDIN here: it reads its rows from a Postgres client (psql, \
                       drivers); use `lancesql import` locally"
                    .into(),
            }),
            // Every statement is its own transaction; BEGIN/COMMIT/ROLLBACK are accepted so
            // clients that send them work, and scope cursors.
            StatementKind::Command(CommandTag::Transaction(control)) => {
                if let TransactionControl::Begin(modes) = control {
                    self.transaction.begin(*modes);
                } else if control.ends_block() {
                    self.transaction.end_transaction();
                }
                Ok(Outcome::Done(CommandTag::Transaction(*control)))
            }
            StatementKind::DeclareCursor { name, holdable } => {
                // Refused before the query starts, not after.
                self.transaction.check_declare(name, *holdable)?;
                let stream = self.stream(plan).await?;
                self.transaction.declare(name, *holdable, stream)?;
                Ok(Outcome::Done(CommandTag::DeclareCursor))
            }
            StatementKind::Fetch { name, count } => Ok(Outcome::Rows {
                stream: self.transaction.fetch(name, *count)?,
                kind: prepared.kind.clone(),
            }),
            StatementKind::CloseCursor(name) => {
                self.transaction.close(name.as_deref())?;
                Ok(Outcome::Done(prepared.kind.tag_after(0)))
            }
            StatementKind::Command(tag) => {
                // SET, RESET, PREPARE and friends change this session's state.
                let (prepares, deallocates) = match &plan {
                    LogicalPlan::Statement(PlanStatement::Prepare(prepare)) => {
                        (Some(prepare.name.clone()), None)
                    }
                    LogicalPlan::Statement(PlanStatement::Deallocate(deallocate)) => {
                        (None, Some(deallocate.name.clone()))
                    }
                    _ => (None, None),
                };
                if deallocates
                    .as_deref()
                    .is_some_and(|name| name.eq_ignore_ascii_case("all"))
                    && !self.prepared_names().contains("all")
                {
                    self.deallocate_all().await?;
                    return Ok(Outcome::Done(tag.clone()));
                }
                self.context
                    .execute_logical_plan(plan)
                    .await?
                    .collect()
                    .await?;
                if let Some(name) = prepares {
                    self.prepared_names().insert(name);
                }
                if let Some(name) = deallocates {
                    self.prepared_names().remove(&name);
                }
                Ok(Outcome::Done(tag.clone()))
            }
            kind => Ok(Outcome::Rows {
                stream: self.stream(plan).await?,
                kind: kind.clone(),
            }),
        }
    }

    /// Runs a current prepared query from its kept optimised plan (see [`OptimizedOnce`]): its
    /// parameters, all search arguments, are bound into that plan, which is then only planned
    /// physically; or, where the physical plan was kept too, into the kept physical plan's search.
    async fn query_optimized_once(
        &self,
        prepared: &PreparedStatement,
        plan: &LogicalPlan,
        optimized: &OptimizedOnce,
        parameters: Vec<ScalarValue>,
    ) -> Result<Outcome> {
        let shared = self.current_state();
        let state = shared.as_ref();
        let values = (!parameters.is_empty())
            .then(|| ParamValues::List(parameters.into_iter().map(Into::into).collect()));
        if let Some(kept) = optimized.physical()
            && let Some(physical) = kept.bound(values.as_ref(), state)?
        {
            return Ok(Outcome::Rows {
                stream: execute_stream(physical, self.kept_plan_task(state))?,
                kind: prepared.kind.clone(),
            });
        }
        let plan = optimized.optimize(plan, state)?;
        let plan = match &values {
            Some(values) => super::search::bind_parameters(plan, values, state)?,
            None => plan,
        };
        let (physical, task) = self.physical_as_is(state, &plan).await?;
        optimized.keep_physical(&physical, values.is_some())?;
        Ok(Outcome::Rows {
            stream: execute_stream(physical, task)?,
            kind: prepared.kind.clone(),
        })
    }

    /// The task context a kept physical plan runs in: its memory capped at the per-query limit,
    /// and without the session's function maps, whose copy was most of a context's cost. Such a
    /// plan looks up no function while it runs (see [`super::optimized`]).
    fn kept_plan_task(&self, state: &SessionState) -> Arc<TaskContext> {
        Arc::new(TaskContext::new(
            None,
            state.session_id().to_string(),
            state.config().clone(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            query_runtime(&self.runtime, self.query_memory_limit),
        ))
    }

    /// The session state under its settings now, copied once per change of settings rather than
    /// per execution: a copy (its function maps entry by entry, then their drop) was the largest
    /// share of a bound `take`'s own time beside physical planning. Only for plans whose
    /// planning reads no clock (kept optimised plans): the copy keeps the query start time of the
    /// moment it was made. Settings change only by replacing their `Arc`
    /// (`SessionConfig::options_mut` copies on write while this copy shares them), so a copy
    /// with the session's current settings is the state now; functions are fixed when the
    /// session starts, and catalogs registered later go into the catalog list the copy shares.
    pub(super) fn current_state(&self) -> Arc<SessionState> {
        let settings = self.settings();
        let mut kept = self
            .state_copy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(state) = kept.as_ref()
            && Arc::ptr_eq(state.config().options(), &settings)
        {
            return state.clone();
        }
        let state = Arc::new(self.context.state());
        *kept = Some(state.clone());
        state
    }

    /// `plan` planned physically in `state` as it is (no analysis or optimisation), with the
    /// task context to run it in: its memory capped at the per-query limit.
    async fn physical_as_is(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
    ) -> Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)> {
        let physical = state
            .query_planner()
            .create_physical_plan(plan, state)
            .await?;
        let task = TaskContext::from(state)
            .with_runtime(query_runtime(&self.runtime, self.query_memory_limit));
        Ok((physical, Arc::new(task)))
    }

    /// Runs a planned `INSERT`, `UPDATE`, `DELETE` or `TRUNCATE`; returns the rows affected.
    /// Only an insert's rows are a query worth optimising: the others hand the table their
    /// condition and values as written (analysed, so typed), so they are planned physically
    /// without the logical optimizer, which may rewrite them into columns the table does not
    /// have (common subexpressions).
    async fn write(&self, change: RowChange, plan: LogicalPlan) -> Result<u64> {
        let batches = if change == RowChange::Insert {
            futures::TryStreamExt::try_collect::<Vec<_>>(self.stream(plan).await?).await?
        } else {
            let state = self.context.state();
            let analyzed =
                state
                    .analyzer()
                    .execute_and_check(plan, state.config_options(), |_, _| {})?;
            let (physical, task) = self.physical_as_is(&state, &analyzed).await?;
            datafusion::physical_plan::collect(physical, task).await?
        };
        super::writes::affected_rows(&batches)
    }

    /// Runs `plan` as one query whose rows are written: each of its partitions a part, written
    /// at once.
    async fn partitions(&self, plan: LogicalPlan) -> Result<WriteInput> {
        let (physical, task) = self.physical(plan).await?;
        Ok(WriteInput::partitions(physical, task)?)
    }

    /// Runs `plan` as one query.
    async fn stream(&self, plan: LogicalPlan) -> Result<SendableRecordBatchStream> {
        let (physical, task) = self.physical(plan).await?;
        Ok(execute_stream(physical, task)?)
    }

    /// `plan` optimised and planned physically, with the task context to run it in: its memory
    /// capped at the per-query limit.
    async fn physical(
        &self,
        plan: LogicalPlan,
    ) -> Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)> {
        let frame = self.context.execute_logical_plan(plan).await?;
        let task = frame
            .task_ctx()
            .with_runtime(query_runtime(&self.runtime, self.query_memory_limit));
        Ok((frame.create_physical_plan().await?, Arc::new(task)))
    }

    fn prepared_names(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // Whole names only: a poisoned set is still consistent.
        self.prepared_names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `DEALLOCATE ALL`: forgets every statement `PREPARE` made in this session.
    async fn deallocate_all(&self) -> Result<()> {
        let names = std::mem::take(&mut *self.prepared_names());
        for name in names {
            let plan = LogicalPlan::Statement(PlanStatement::Deallocate(Deallocate { name }));
            self.context
                .execute_logical_plan(plan)
                .await?
                .collect()
                .await?;
        }
        Ok(())
    }

    /// Carries out a statement the session answers itself.
    async fn carry_out(&self, command: &SessionCommand) -> Result<Outcome> {
        match command {
            SessionCommand::Set { name, value } => {
                match value {
                    Some(value) => self.variables.set(name, value).map(drop)?,
                    None => self.variables.reset(name)?,
                }
                self.apply_time_zone();
                Ok(Outcome::Done(CommandTag::Set))
            }
            SessionCommand::Reset(name) => {
                self.variables.reset(name)?;
                self.apply_time_zone();
                Ok(Outcome::Done(CommandTag::Reset))
            }
            SessionCommand::ResetSetting(key) => {
                let initial = self
                    .initial_options
                    .entries()
                    .into_iter()
                    .find(|entry| entry.key == *key)
                    .ok_or_else(|| Error::UndefinedParameter { name: key.clone() })?;
                let state = self.context.state_ref();
                let mut state = state.write();
                match initial.value {
                    Some(value) => state.config_mut().options_mut().set(key, &value)?,
                    None => {
                        return Err(Error::Internal {
                            message: format!("setting '{key}' has no initial value to reset to"),
                        });
                    }
                }
                Ok(Outcome::Done(CommandTag::Reset))
            }
            SessionCommand::ResetAll => {
                self.reset_all();
                Ok(Outcome::Done(CommandTag::Reset))
            }
            SessionCommand::DiscardAll => {
                self.reset_all();
                self.transaction.discard();
                self.deallocate_all().await?;
                Ok(Outcome::Done(CommandTag::Discard))
            }
            SessionCommand::Show(name) => {
                let batch = SessionCommand::show(&self.variables, name)?;
                let schema = batch.schema();
                Ok(Outcome::Rows {
                    stream: Box::pin(MemoryStream::try_new(vec![batch], schema, None)?),
                    kind: StatementKind::Show,
                })
            }
        }
    }

    /// Postgres parameters with an effect on DataFusion: `TimeZone` is its session time zone
    /// (left as DataFusion's own default while it is UTC).
    fn apply_time_zone(&self) {
        let zone = self
            .variables
            .get("TimeZone")
            .filter(|zone| !zone.eq_ignore_ascii_case("UTC"))
            .or_else(|| self.initial_options.execution.time_zone.clone());
        self.context
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .execution
            .time_zone = zone;
    }

    /// Postgres parameters and DataFusion settings back to what the session started with.
    fn reset_all(&self) {
        self.variables.reset_all();
        *self.context.state_ref().write().config_mut().options_mut() =
            self.initial_options.as_ref().clone();
        self.apply_time_zone();
    }

    /// The Postgres parameters a wire client is told about at startup, with their values.
    pub fn reported_parameters(&self) -> Vec<(String, String)> {
        self.variables.reported()
    }

    /// The columns of the open SQL cursor `name` (a front end may describe it as a portal).
    pub fn cursor_schema(&self, name: &str) -> Result<SchemaRef> {
        self.transaction.schema(name)
    }

    /// The reported Postgres parameters statements changed since the last call (`SET
    /// application_name`, `SET TIME ZONE`, `RESET ALL`), with their values now.
    pub fn take_reported_changes(&self) -> Vec<(String, String)> {
        self.variables.take_reported_changes()
    }

    /// What a login asked for at connection startup (`application_name`, `DateStyle`, ...) and
    /// who logged in, as this session's defaults (what `RESET` returns to). Names that are not
    /// Postgres parameters (`user`, `database`, ...) are skipped; values lancesql cannot honour
    /// are refused with the reason, as `SET` would refuse them.
    pub fn apply_startup_parameters<'a>(
        &self,
        user: Option<&str>,
        parameters: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        if let Some(user) = user {
            self.variables.set_user(user);
        }
        for (name, value) in parameters {
            if self.variables.get(name).is_some() {
                self.variables.set_default(name, value)?;
            }
        }
        self.apply_time_zone();
        Ok(())
    }

    /// Appends `rows` (of `prepared.schema()`, the target columns of a prepared `COPY table
    /// FROM STDIN`) to its table in one commit. If `rows` fails, nothing is committed.
    pub async fn copy_in(
        &self,
        prepared: &PreparedStatement,
        rows: SendableRecordBatchStream,
    ) -> Result<CommandTag> {
        let StatementKind::CopyIn { table, creates, .. } = &prepared.kind else {
            return Err(Error::invalid(
                "copy_in takes a prepared COPY ... FROM STDIN",
            ));
        };
        let rows = if *creates {
            self.create_table(table, self.one_stream(rows)).await?
        } else {
            self.catalog
                .root()
                .append_table(table, self.one_stream(rows), self.auto_compact())
                .await?
        };
        Ok(CommandTag::Copy { rows })
    }

    /// `rows`, one ordered stream, as a write of this session: data files of its
    /// `lance.max_rows_per_file` rows, a long stream written by up to `target_partitions`
    /// writers at once.
    fn one_stream(&self, rows: SendableRecordBatchStream) -> WriteInput {
        let state = self.context.state_ref();
        let state = state.read();
        let config = state.config_options();
        WriteInput::stream(
            rows,
            config.execution.target_partitions,
            &LanceOptions::of(config),
        )
    }

    /// This session's automatic compaction (`lance.auto_compact_fragments` small fragments,
    /// small meaning under `lance.max_rows_per_file` rows), for the appends it runs itself.
    fn auto_compact(&self) -> AutoCompact {
        AutoCompact::of(&LanceOptions::of(
            self.context.state_ref().read().config_options(),
        ))
    }

    /// Prepares and runs one parsed statement with no parameters.
    pub async fn run(&self, statement: DFStatement) -> Result<Outcome> {
        let prepared = self.prepare(statement).await?;
        self.execute_fresh(prepared).await
    }

    /// Runs `sql` (exactly one statement) and returns its rows as a stream; commands yield an
    /// empty stream. For callers that only want rows (tests, embedding). A query run again is
    /// not parsed and planned again while it is current, as for the front ends (see
    /// [`super::recent`]).
    pub async fn sql_stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let outcome = match self.reusable(sql).await? {
            Some(kept) => self.execute(&kept, Vec::new()).await?,
            None => {
                let prepared = self.prepare_sql(sql).await?;
                self.remember_copy(sql, &prepared);
                self.execute_fresh(prepared).await?
            }
        };
        match outcome {
            Outcome::Rows { stream, .. } => Ok(stream),
            Outcome::Done(_) => Ok(Box::pin(EmptyRecordBatchStream::new(Arc::new(
                Schema::empty(),
            )))),
        }
    }

    /// Writes `data` as the new table `table` (committed as its version 1); returns its rows.
    pub async fn create_table(&self, table: &str, data: WriteInput) -> Result<u64> {
        let root = self.catalog.root();
        let created = root.create_table(table, data).await;
        self.catalog.forget_listing().await;
        let dataset = created?;
        let rows = dataset
            .count_rows(None)
            .await
            .map_err(|source| Error::lance("counting rows", dataset.uri(), source))?;
        Ok(rows as u64)
    }

    /// Bulk ingest (Flight SQL): writes `data` into `table` in one commit, creating the table
    /// when it is missing and `create_if_missing` holds (otherwise 42P01), and doing what
    /// `existing` says when it is there. A failure leaves the table as it was. Returns the
    /// rows written.
    pub async fn ingest(
        &self,
        table: &str,
        create_if_missing: bool,
        existing: IngestExisting,
        data: SendableRecordBatchStream,
    ) -> Result<u64> {
        let statement = || format!("an ingest into '{table}'");
        if self.read_only {
            return Err(Error::ReadOnly {
                statement: statement(),
            });
        }
        if self.transaction.modes().read_only {
            return Err(Error::ReadOnlyTransaction {
                statement: statement(),
            });
        }
        let root = self.catalog.root();
        let exists = root.open_latest(table).await?.is_some();
        let written = match (exists, existing) {
            (true, IngestExisting::Fail) => Err(Error::TableExists {
                table: table.to_string(),
            }),
            (true, IngestExisting::Append) => {
                root.append_table(table, self.one_stream(data), self.auto_compact())
                    .await
            }
            (true, IngestExisting::Replace) => {
                root.replace_table(table, self.one_stream(data)).await
            }
            (false, _) if !create_if_missing => Err(Error::TableNotFound {
                table: table.to_string(),
            }),
            (false, _) => self.create_table(table, self.one_stream(data)).await,
        };
        self.catalog.forget_listing().await;
        written
    }

    /// The names of the tables under the data root.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        Ok(self.catalog.listing().await?.tables.clone())
    }

    /// Adds a catalog other than `lancesql` (in-memory tables for embedding and tests).
    pub fn register_catalog(&self, name: &str, catalog: Arc<dyn CatalogProvider>) -> Result<()> {
        if name == CATALOG_NAME {
            return Err(Error::invalid(format!(
                "the catalog '{CATALOG_NAME}' is the data root's"
            )));
        }
        self.context.register_catalog(name, catalog);
        Ok(())
    }

    /// A value of a session setting (`datafusion.*` or `lance.*`), as `SHOW` would print it.
    pub fn setting(&self, key: &str) -> Option<String> {
        self.context
            .state()
            .config_options()
            .entries()
            .into_iter()
            .find(|entry| entry.key == key)
            .and_then(|entry| entry.value)
    }

    /// Executes a statement prepared a moment ago (no parameters), without checking for newer
    /// versions: what [`LanceSession::run`] does after preparing.
    pub async fn execute_fresh(&self, prepared: PreparedStatement) -> Result<Outcome> {
        let logical = prepared.plan.get().logical.clone();
        prepared.plan.replace(Arc::new(Plan::unchecked(logical)));
        self.execute(&prepared, Vec::new()).await
    }

    /// Whether `prepared` would be planned the same way now: it read no listing of the root,
    /// each table it read is still the version it resolved (or the one the open transaction
    /// block pinned), and no `SET` changed the settings it was planned with. Executing a
    /// statement that is not current plans it again.
    pub async fn is_current(&self, prepared: &PreparedStatement) -> Result<bool> {
        self.plan_is_current(&prepared.plan.get()).await
    }

    /// Whether `plan` would be made the same way now (see [`Self::is_current`]).
    async fn plan_is_current(&self, plan: &Plan) -> Result<bool> {
        if plan.reads_catalog {
            return Ok(false);
        }
        if let Some(settings) = &plan.settings
            && !Arc::ptr_eq(settings, &self.settings())
        {
            return Ok(false);
        }
        for (name, planned) in &plan.tables {
            let latest = match self.transaction.pinned(name) {
                Some(pinned) => Some(pinned),
                None => self.catalog.table(name).await?,
            };
            if latest.is_none_or(|latest| !Arc::ptr_eq(&latest, planned)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The session's settings as they are now.
    fn settings(&self) -> Arc<ConfigOptions> {
        self.context.state_ref().read().config().options().clone()
    }

    /// The statement planned again, for when it is not [current](Self::is_current); fails if
    /// its result columns changed.
    async fn plan_again(&self, prepared: &PreparedStatement) -> Result<Plan> {
        let plan = self
            .plan_for_execution(&prepared.statement, &prepared.kind)
            .await?;
        if prepared.kind.returns_rows() {
            let schema = plan.logical.schema().as_arrow().clone();
            let same_columns = schema.fields().len() == prepared.schema.fields().len()
                && schema
                    .fields()
                    .iter()
                    .zip(prepared.schema.fields())
                    .all(|(now, then)| {
                        now.name() == then.name() && now.data_type() == then.data_type()
                    });
            if !same_columns {
                return Err(Error::ResultTypeChanged {
                    detail: format!(
                        "the statement now returns ({}); prepare it again",
                        describe_columns(&schema)
                    ),
                });
            }
        }
        Ok(plan)
    }

    /// The statement planned under the session's settings as they are now: its tables resolved,
    /// its array placeholders typed, and a place for its optimised plan where one may be kept.
    async fn plan_for_execution(
        &self,
        statement: &DFStatement,
        kind: &StatementKind,
    ) -> Result<Plan> {
        let settings = self.settings();
        let Planned {
            plan,
            tables,
            reads_catalog,
        } = self.plan(statement, kind).await?;
        let logical = type_array_placeholders(plan)?;
        let optimized = OptimizedOnce::for_query(kind, &logical, reads_catalog);
        Ok(Plan {
            logical,
            tables,
            reads_catalog,
            settings: Some(settings),
            optimized,
        })
    }

    /// Resolves the statement's tables into a snapshot and plans against it; returns the plan and
    /// the tables it read.
    async fn plan(&self, statement: &DFStatement, kind: &StatementKind) -> Result<Planned> {
        let mut statement = statement.clone();
        super::time_travel::pin_versions(&mut statement, self.catalog.root()).await?;
        let statement = &statement;
        let base = self.context.state();
        let references: Vec<ResolvedTableReference> = base
            .resolve_table_references(statement)?
            .into_iter()
            .map(|reference| reference.resolve(CATALOG_NAME, SCHEMA_NAME))
            .collect();
        let mut ours: BTreeSet<String> = references
            .iter()
            .filter(|reference| is_ours(reference))
            .map(|reference| reference.table.to_string())
            .collect();
        // `vector_search('items', ...)` reads `items` as much as `FROM items` does.
        ours.extend(super::search::searched_tables(statement));
        let ours: Vec<String> = ours.into_iter().collect();
        let reads_catalog = references.iter().any(|reference| {
            reference.catalog.as_ref() == CATALOG_NAME
                && matches!(
                    reference.schema.as_ref(),
                    "information_schema" | "pg_catalog" | SYSTEM_SCHEMA_NAME
                )
        });
        let others = base.catalog_list().catalog(CATALOG_NAME);
        let pinned: HashMap<String, Arc<LanceTable>> = ours
            .iter()
            .filter_map(|name| Some((name.clone(), self.transaction.pinned(name)?)))
            .collect();
        let snapshot = Arc::new(
            self.catalog
                .resolve(&ours, &pinned, reads_catalog, others)
                .await?,
        );
        for name in &ours {
            if let Some(table) = snapshot.table(name) {
                self.transaction.pin(name, table);
            }
        }
        let named;
        let statement = if matches!(kind, StatementKind::Write(RowChange::Insert)) {
            let mut with_columns = statement.clone();
            super::writes::name_inserted_columns(&mut with_columns, &snapshot)?;
            named = with_columns;
            &named
        } else {
            statement
        };
        let state = statement_state(base, snapshot.clone());
        let target = match kind {
            StatementKind::CreateTable { table, .. } => Some(table.as_str()),
            _ => None,
        };
        check_references(&state, &references, target)?;
        let plan = match state.statement_to_plan(statement.clone()).await {
            Ok(plan) => plan,
            Err(error) => return Err(classify_planning_error(&state, statement, error)),
        };
        super::writes::check_write(&plan)?;
        let tables = ours
            .iter()
            .filter_map(|name| {
                snapshot
                    .table(name)
                    .map(|table| (name.clone(), table.clone()))
            })
            .collect();
        Ok(Planned {
            plan,
            tables,
            reads_catalog,
        })
    }

    /// Carries out a planned `CREATE TABLE`; returns the rows written, or `None` when `IF NOT
    /// EXISTS` found the table there.
    async fn create_table_from_plan(
        &self,
        table: &str,
        if_not_exists: bool,
        plan: LogicalPlan,
    ) -> Result<Option<u64>> {
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
            return Err(Error::Internal {
                message: "CREATE TABLE planned as something else".into(),
            });
        };
        if if_not_exists && self.catalog.table(table).await?.is_some() {
            return Ok(None);
        }
        let rows = self.partitions((*create.input).clone()).await?;
        Ok(Some(self.create_table(table, rows).await?))
    }

    async fn drop_table(&self, table: &str, if_exists: bool) -> Result<Outcome> {
        let dropped = self.catalog.root().drop_table(table).await;
        self.catalog.forget_listing().await;
        if !dropped? && !if_exists {
            return Err(Error::TableNotFound {
                table: table.to_string(),
            });
        }
        Ok(Outcome::Done(CommandTag::DropTable))
    }
}

impl LanceSession {
    /// Runs a `MERGE` into `table`; returns the rows it inserted, updated and deleted.
    async fn merge(&self, table: &str, statement: &ast::Merge) -> Result<u64> {
        let Some(current) = self.catalog.table(table).await? else {
            return Err(Error::TableNotFound {
                table: table.to_string(),
            });
        };
        let columns: Vec<String> = current
            .schema_without_row_identity()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let merge = super::merge::plan_merge(statement, table, &columns)?;
        let source = self.prepare_sql(&merge.source_query).await?;
        let rows = self.stream(source.plan.get().logical.clone()).await?;
        let counts = self
            .catalog
            .root()
            .merge_rows(table, rows, merge.keys, merge.actions)
            .await?;
        Ok(counts.inserted + counts.updated + counts.deleted)
    }

    /// Changes one column of `table` (see [`super::alter`]).
    async fn alter_table(
        &self,
        table: &str,
        if_exists: bool,
        operation: &ast::AlterTableOperation,
    ) -> Result<()> {
        let Some(current) = self.catalog.table(table).await? else {
            if if_exists {
                return Ok(());
            }
            return Err(Error::TableNotFound {
                table: table.to_string(),
            });
        };
        let change = super::alter::column_change(&self.context.state(), &current, operation)?;
        if let Some(change) = change {
            self.catalog.root().alter_table(table, change).await?;
        }
        Ok(())
    }

    /// Tags a version, drops a tag, or restores a version.
    async fn carry_out_history(&self, command: &HistoryCommand) -> Result<()> {
        let root = self.catalog.root();
        match command {
            HistoryCommand::CreateTag { table, tag, at } => {
                root.create_tag(table, tag, at.as_ref()).await?;
            }
            HistoryCommand::DropTag {
                table,
                tag,
                if_exists,
            } => {
                if !root.drop_tag(table, tag).await? && !if_exists {
                    return Err(Error::invalid(format!(
                        "table '{table}' has no tag '{tag}'"
                    )));
                }
            }
            HistoryCommand::Restore { table, at } => {
                root.restore_table(table, at).await?;
            }
            HistoryCommand::Vacuum { .. } => {
                return Err(Error::Internal {
                    message: "VACUUM reports rows; it is not a plain command".into(),
                });
            }
        }
        Ok(())
    }

    /// `DROP INDEX name [ON table]`: without a table, the one table holding an index of that
    /// name.
    async fn drop_index(
        &self,
        name: &str,
        table: Option<&str>,
        if_exists: bool,
    ) -> Result<Outcome> {
        let not_found = || Error::IndexNotFound {
            index: name.to_string(),
            table: table.map(str::to_string),
        };
        let table = match table {
            Some(table) => Some(table.to_string()),
            None => {
                let listing = self.catalog.listing().await?;
                let mut holders = Vec::new();
                for candidate in &listing.tables {
                    if let Some(opened) = self.catalog.table(candidate).await?
                        && opened.indices().iter().any(|index| index.name == name)
                    {
                        holders.push(candidate.clone());
                    }
                }
                if holders.len() > 1 {
                    return Err(Error::invalid(format!(
                        "index '{name}' exists on several tables ({}); say which with DROP INDEX \
                         {name} ON <table>",
                        holders.join(", ")
                    )));
                }
                holders.pop()
            }
        };
        let dropped = match &table {
            Some(table) => self.catalog.root().drop_index(table, name).await?,
            None => false,
        };
        if !dropped && !if_exists {
            return Err(not_found());
        }
        Ok(Outcome::Done(CommandTag::DropIndex))
    }
}

fn describe_columns(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|field| format!("{} {}", field.name(), field.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_ours(reference: &ResolvedTableReference) -> bool {
    reference.catalog.as_ref() == CATALOG_NAME && reference.schema.as_ref() == SCHEMA_NAME
}

/// The session's state with `lancesql` answered by the statement's snapshot.
fn statement_state(base: SessionState, snapshot: Arc<StatementCatalog>) -> SessionState {
    let catalogs = Arc::new(StatementCatalogs {
        base: base.catalog_list().clone(),
        lancesql: snapshot,
    });
    // Swapped in place: rebuilding the state registers every function again (a tenth of a
    // millisecond per statement).
    let mut state = base;
    state.register_catalog_list(catalogs);
    state
}

/// The session's catalogs, with `lancesql` replaced by one statement's snapshot.
#[derive(Debug)]
struct StatementCatalogs {
    base: Arc<dyn CatalogProviderList>,
    lancesql: Arc<StatementCatalog>,
}

impl CatalogProviderList for StatementCatalogs {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.base.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        let mut names = self.base.catalog_names();
        names.retain(|name| name != CATALOG_NAME);
        names.push(CATALOG_NAME.to_string());
        names.sort();
        names
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == CATALOG_NAME {
            Some(self.lancesql.clone())
        } else {
            self.base.catalog(name)
        }
    }
}

/// Refuses a statement naming a schema or table that does not exist, with an error saying
/// which; `target` (the table a `CREATE TABLE` makes) may be missing.
fn check_references(
    state: &SessionState,
    references: &[ResolvedTableReference],
    target: Option<&str>,
) -> Result<()> {
    for reference in references {
        let table = reference.table.as_ref();
        let is_target = is_ours(reference) && target == Some(table);
        // `FROM generate_series(1, 3)`: a table function, not a table.
        let is_function = state.table_functions().contains_key(table);
        if is_target || is_function {
            continue;
        }
        let Ok(schema) = state.schema_for_ref(reference.clone()) else {
            return Err(Error::SchemaNotFound {
                schema: format!("{}.{}", reference.catalog, reference.schema),
            });
        };
        if !schema.table_exist(table) {
            return Err(Error::TableNotFound {
                table: if is_ours(reference) {
                    table.to_string()
                } else {
                    format!("{}.{}", reference.schema, table)
                },
            });
        }
    }
    Ok(())
}

/// A planning failure as the user should see it: a call of a function no registry knows is
/// [`Error::UndefinedFunction`] (found from the statement, not from DataFusion's message).
fn classify_planning_error(
    state: &SessionState,
    statement: &DFStatement,
    error: datafusion::error::DataFusionError,
) -> Error {
    let error = Error::from(error);
    if error.kind() != crate::error::ErrorKind::InvalidStatement {
        return error;
    }
    match unknown_function(state, statement) {
        Some(name) => Error::UndefinedFunction { name },
        None => error,
    }
}

/// The first function the statement calls that no registry of `state` knows.
fn unknown_function(state: &SessionState, statement: &DFStatement) -> Option<String> {
    struct Calls(Vec<String>);
    impl Visitor for Calls {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &ast::Expr) -> ControlFlow<()> {
            // `ARRAY(SELECT ...)` parses as a call with a subquery for arguments: it is syntax,
            // not a function lookup.
            if let ast::Expr::Function(function) = expr
                && !matches!(function.args, ast::FunctionArguments::Subquery(_))
                && let [ast::ObjectNamePart::Identifier(ident)] = function.name.0.as_slice()
            {
                self.0.push(match ident.quote_style {
                    Some(_) => ident.value.clone(),
                    None => ident.value.to_ascii_lowercase(),
                });
            }
            ControlFlow::Continue(())
        }
    }
    let DFStatement::Statement(inner) = statement else {
        return None;
    };
    let mut calls = Calls(Vec::new());
    let _ = inner.visit(&mut calls);
    // Calls DataFusion's SQL planner turns into plan nodes rather than looking them up.
    const PLANNED_FORMS: &[&str] = &["unnest"];
    calls.0.into_iter().find(|name| {
        !PLANNED_FORMS.contains(&name.as_str())
            && !state.scalar_functions().contains_key(name)
            && !state.aggregate_functions().contains_key(name)
            && !state.window_functions().contains_key(name)
            && !state.table_functions().contains_key(name)
    })
}

/// The kind of a parsed statement.
fn statement_kind(statement: &DFStatement) -> Result<StatementKind> {
    use ast::Statement as S;
    let DFStatement::Statement(inner) = statement else {
        return Ok(match statement {
            DFStatement::Explain(_) => StatementKind::Explain,
            DFStatement::Reset(_) => StatementKind::Command(CommandTag::Reset),
            _ => StatementKind::Query,
        });
    };
    if let Some(change) = RowChange::of(inner) {
        return Ok(StatementKind::Write(change));
    }
    if let Some(command) = HistoryCommand::from_statement(inner)? {
        return Ok(StatementKind::History(command));
    }
    Ok(match inner.as_ref() {
        S::CreateTable(create) => StatementKind::CreateTable {
            table: local_table_name(&create.name)?,
            if_not_exists: create.if_not_exists,
            as_select: create.query.is_some(),
        },
        S::Drop {
            object_type: ast::ObjectType::Table,
            names,
            if_exists,
            ..
        } => {
            let [name] = names.as_slice() else {
                return Err(Error::invalid("DROP TABLE takes one table at a time"));
            };
            StatementKind::DropTable {
                table: local_table_name(name)?,
                if_exists: *if_exists,
            }
        }
        S::CreateIndex(create) => StatementKind::CreateIndex(super::indices::definition(
            create,
            local_table_name(&create.table_name)?,
        )?),
        S::Drop {
            object_type: ast::ObjectType::Index,
            names,
            if_exists,
            table,
            ..
        } => {
            let [name] = names.as_slice() else {
                return Err(Error::invalid("DROP INDEX takes one index at a time"));
            };
            StatementKind::DropIndex {
                name: super::indices::single_name("index", name)?,
                table: table.as_ref().map(local_table_name).transpose()?,
                if_exists: *if_exists,
            }
        }
        S::OptimizeTable {
            name,
            on_cluster,
            partition,
            include_final,
            deduplicate,
            predicate,
            zorder,
            ..
        } => {
            if on_cluster.is_some()
                || partition.is_some()
                || *include_final
                || deduplicate.is_some()
                || predicate.is_some()
                || zorder.is_some()
            {
                return Err(Error::Unsupported {
                    what: "OPTIMIZE clauses (ON CLUSTER, PARTITION, FINAL, DEDUPLICATE, WHERE, \
                           ZORDER BY): OPTIMIZE [TABLE] name compacts and re-indexes the whole \
                           table"
                        .into(),
                });
            }
            StatementKind::Optimize {
                table: local_table_name(name)?,
            }
        }
        S::Set(_) => StatementKind::Command(CommandTag::Set),
        S::Merge(merge) => {
            let ast::TableFactor::Table { name, .. } = &merge.table else {
                return Err(Error::Unsupported {
                    what: format!("MERGE INTO {}: the target must be a table", merge.table),
                });
            };
            StatementKind::Merge {
                table: local_table_name(name)?,
                statement: Box::new(merge.clone()),
            }
        }
        S::AlterTable(alter) => {
            let [operation] = alter.operations.as_slice() else {
                return Err(Error::invalid(
                    "ALTER TABLE makes one change at a time (each change is one version)",
                ));
            };
            StatementKind::AlterTable {
                table: local_table_name(&alter.name)?,
                if_exists: alter.if_exists,
                operation: Box::new(operation.clone()),
            }
        }
        S::ShowVariable { .. } | S::ShowTables { .. } | S::ShowColumns { .. } => {
            StatementKind::Show
        }
        S::Explain { .. } => StatementKind::Explain,
        S::Prepare { .. } => StatementKind::Command(CommandTag::Prepare),
        S::Deallocate { .. } => StatementKind::Command(CommandTag::Deallocate),
        S::StartTransaction { modes, .. } => StatementKind::Command(CommandTag::Transaction(
            TransactionControl::Begin(check_transaction_modes(modes)?),
        )),
        S::Commit { .. } => {
            StatementKind::Command(CommandTag::Transaction(TransactionControl::Commit))
        }
        S::Rollback {
            savepoint: None, ..
        } => StatementKind::Command(CommandTag::Transaction(TransactionControl::Rollback)),
        S::Rollback { .. } => StatementKind::Command(CommandTag::Transaction(
            TransactionControl::RollbackToSavepoint,
        )),
        S::Savepoint { .. } => {
            StatementKind::Command(CommandTag::Transaction(TransactionControl::Savepoint))
        }
        S::ReleaseSavepoint { .. } => {
            StatementKind::Command(CommandTag::Transaction(TransactionControl::Release))
        }
        _ => StatementKind::Query,
    })
}

/// The columns of a maintenance statement's one-row report: `table_name`, then `counts`.
fn report_schema(counts: &[&str]) -> SchemaRef {
    let mut fields = vec![Field::new("table_name", DataType::Utf8, false)];
    fields.extend(
        counts
            .iter()
            .map(|name| Field::new(*name, DataType::Int64, false)),
    );
    Arc::new(Schema::new(fields))
}

/// A one-row report of `schema` ([`report_schema`]) on `table`.
fn report(schema: SchemaRef, table: &str, counts: &[u64]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![table.to_string()]))];
    columns.extend(counts.iter().map(|count| {
        Arc::new(Int64Array::from(vec![
            i64::try_from(*count).unwrap_or(i64::MAX),
        ])) as ArrayRef
    }));
    Ok(RecordBatch::try_new(schema, columns)?)
}

const OPTIMIZE_COUNTS: [&str; 6] = [
    "fragments_removed",
    "fragments_added",
    "files_removed",
    "files_added",
    "indices_optimized",
    "version",
];

/// The columns of `OPTIMIZE`'s one-row report.
fn optimize_report_schema() -> SchemaRef {
    report_schema(&OPTIMIZE_COUNTS)
}

/// `OPTIMIZE`'s report on `table`.
fn optimize_report(table: &str, done: &OptimizeReport) -> Result<RecordBatch> {
    let count = |value: usize| value as u64;
    report(
        optimize_report_schema(),
        table,
        &[
            count(done.fragments_removed),
            count(done.fragments_added),
            count(done.files_removed),
            count(done.files_added),
            count(done.indices_optimized),
            done.version,
        ],
    )
}

/// The columns of `VACUUM`'s one-row report.
fn vacuum_report_schema() -> SchemaRef {
    report_schema(&["versions_removed", "files_removed", "bytes_removed"])
}

/// `VACUUM`'s report on `table`.
fn vacuum_report(table: &str, done: &VacuumReport) -> Result<RecordBatch> {
    report(
        vacuum_report_schema(),
        table,
        &[
            done.versions_removed,
            done.files_removed,
            done.bytes_removed,
        ],
    )
}

/// The dataset name for a table that must live in our catalog and schema.
fn local_table_name(name: &ast::ObjectName) -> Result<String> {
    let reference = datafusion::sql::planner::object_name_to_table_reference(name.clone(), true)?;
    let in_our_schema = reference.catalog().is_none_or(|c| c == CATALOG_NAME)
        && reference.schema().is_none_or(|s| s == SCHEMA_NAME);
    if !in_our_schema {
        return Err(Error::invalid(format!(
            "tables can only be created and dropped in {CATALOG_NAME}.{SCHEMA_NAME}, not '{reference}'"
        )));
    }
    Ok(reference.table().to_string())
}

/// `$1`, `$2`, ... types in order, up to the highest number the plan uses; a number the plan
/// does not use (a gap, or one in a branch planning removed) has no type of its own, as in
/// Postgres, and the client's declared type (or text) applies.
fn parameter_fields(plan: &LogicalPlan) -> Result<Vec<Option<FieldRef>>> {
    let mut found: HashMap<String, Option<FieldRef>> = plan.get_parameter_fields()?;
    for (id, field) in super::search::parameter_fields(plan)? {
        let known = found.entry(id).or_insert(None);
        if known.is_none() {
            *known = Some(field);
        }
    }
    let mut numbered = HashMap::with_capacity(found.len());
    for (name, data_type) in found {
        let position = name
            .strip_prefix('$')
            .and_then(|number| number.parse::<usize>().ok())
            .filter(|position| *position >= 1)
            .ok_or_else(|| {
                Error::invalid(format!("parameters are numbered $1, $2, ...; found {name}"))
            })?;
        numbered.insert(position, data_type);
    }
    let highest = numbered.keys().copied().max().unwrap_or(0);
    Ok((1..=highest)
        .map(|position| numbered.get(&position).cloned().flatten())
        .collect())
}

/// Gives `$n` in `x = ANY($n)` (planned as `array_has($n, x)`) the type Postgres infers for
/// it, an array of `x`'s type, and `$n` in `$n::type` that type, where DataFusion leaves them
/// unknown: clients that send parameters untyped (the ADBC driver's catalog queries) or take
/// the described type (asyncpg) then bind their arrays as arrays.
fn type_array_placeholders(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::expr::Placeholder;
    use datafusion::logical_expr::{Expr, ExprSchemable};
    let typed = plan.transform_up_with_subqueries(|node| {
        let inputs = node.inputs();
        let schema = match inputs.as_slice() {
            [] => node.schema().as_ref().clone(),
            [input] => input.schema().as_ref().clone(),
            [first, rest @ ..] => {
                let mut merged = first.schema().as_ref().clone();
                for input in rest {
                    merged.merge(input.schema());
                }
                merged
            }
        };
        node.map_expressions(|expr| {
            expr.transform_up(|expr| {
                if let Expr::Cast(mut cast) = expr {
                    // `$n::int8[]`: the placeholder has the type it is cast to, as in Postgres.
                    if let Expr::Placeholder(placeholder @ Placeholder { field: None, .. }) =
                        cast.expr.as_mut()
                    {
                        // The cast's field, metadata included (`oid` is marked so).
                        placeholder.field = Some(cast.field.clone());
                        return Ok(Transformed::yes(Expr::Cast(cast)));
                    }
                    return Ok(Transformed::no(Expr::Cast(cast)));
                }
                let Expr::ScalarFunction(mut call) = expr else {
                    return Ok(Transformed::no(expr));
                };
                let untyped = matches!(
                    call.args.first(),
                    Some(Expr::Placeholder(Placeholder { field: None, .. }))
                );
                if call.func.name() != "array_has" || call.args.len() != 2 || !untyped {
                    return Ok(Transformed::no(Expr::ScalarFunction(call)));
                }
                let Ok(element) = call.args[1].get_type(&schema) else {
                    return Ok(Transformed::no(Expr::ScalarFunction(call)));
                };
                if let Expr::Placeholder(placeholder) = &mut call.args[0] {
                    let list = DataType::List(Arc::new(Field::new("item", element, true)));
                    placeholder.field = Some(Arc::new(Field::new("", list, true)));
                }
                Ok(Transformed::yes(Expr::ScalarFunction(call)))
            })
        })
    })?;
    Ok(typed.data)
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

/// A plan that does nothing (statements the session carries out without DataFusion).
fn empty_plan() -> LogicalPlan {
    LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(DFSchema::empty()),
    })
}

/// Refuses statements lancesql deliberately does not run, saying what to do instead. Files on
/// the server are never read or written by SQL: a server's clients must not reach its disk.
fn refuse_unsupported(statement: &DFStatement) -> Result<()> {
    use ast::Statement as S;
    let what = match statement {
        DFStatement::CopyTo(_) => {
            "COPY ... TO a file on the server: use COPY ... TO STDOUT from a Postgres client, or \
             `lancesql sql --format csv` locally"
        }
        DFStatement::CreateExternalTable(_) => {
            "CREATE EXTERNAL TABLE: tables are Lance datasets under the data root; use \
             `lancesql import` or CREATE TABLE ... AS"
        }
        DFStatement::Statement(inner) => match inner.as_ref() {
            S::CreateView(_) => "CREATE VIEW (views are on the roadmap)",
            S::CreateSchema { .. } => "CREATE SCHEMA: the data root is the one schema, public",
            S::CreateDatabase { .. } => "CREATE DATABASE: the data root is the one database",
            S::CreateFunction(_) => "CREATE FUNCTION",
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    Err(Error::Unsupported {
        what: what.to_string(),
    })
}

/// What `statement` writes, as its keyword, if it writes anything.
fn writes(statement: &DFStatement) -> Option<&'static str> {
    use ast::Statement as S;
    let DFStatement::Statement(inner) = statement else {
        return match statement {
            DFStatement::CopyTo(_) => Some("COPY"),
            DFStatement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE"),
            _ => None,
        };
    };
    Some(match inner.as_ref() {
        S::CreateTable(_) => "CREATE TABLE",
        S::Drop { .. } => "DROP",
        S::Insert(_) => "INSERT",
        S::Update { .. } => "UPDATE",
        S::Delete(_) => "DELETE",
        S::Merge { .. } => "MERGE",
        S::Truncate { .. } => "TRUNCATE",
        S::AlterTable { .. } => "ALTER TABLE",
        S::CreateIndex(_) => "CREATE INDEX",
        S::OptimizeTable { .. } => "OPTIMIZE",
        S::Call(_) => "CALL",
        S::CreateView(_) => "CREATE VIEW",
        S::Copy { to: false, .. } => "COPY FROM",
        _ => return None,
    })
}
