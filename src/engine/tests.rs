//! The front door's contract, end to end over a temporary data root: prepare once and execute
//! with parameters, completion tags, re-planning after other writers, one shared open per
//! (table, version), memory limits, listings that block nobody, and `EXPLAIN ANALYZE` metrics.

use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use futures::TryStreamExt;

use crate::config::{EngineConfig, StoreConfig};
use crate::engine::{CommandTag, Engine, LanceSession, Outcome, StatementKind};
use crate::error::{Error, ErrorKind};

/// Runs `test` on the engine's runtime, on a thread with a statement-sized stack.
fn run<F: Future<Output = ()>>(test: impl FnOnce() -> F + Send) {
    let runtime = crate::runtime::build().expect("runtime");
    crate::runtime::run_on_statement_thread(&runtime, test).expect("the test thread");
}

fn engine_over(root: &std::path::Path, config: EngineConfig) -> Engine {
    let store = StoreConfig::local(root.to_str().expect("utf-8 path"));
    Engine::new(
        &store,
        EngineConfig {
            target_partitions: Some(2),
            ..config
        },
    )
    .expect("engine")
}

/// A session of a new engine over an empty temporary root, which lives as long as the guard.
fn scratch_session() -> (tempfile::TempDir, LanceSession) {
    let root = tempfile::tempdir().expect("root");
    let engine = engine_over(root.path(), EngineConfig::default());
    (root, engine.session().expect("session"))
}

async fn outcome(session: &LanceSession, sql: &str) -> Result<Outcome, Error> {
    let prepared = session.prepare_sql(sql).await?;
    session.execute(&prepared, Vec::new()).await
}

async fn tag(session: &LanceSession, sql: &str) -> CommandTag {
    match outcome(session, sql).await {
        Ok(Outcome::Done(tag)) => tag,
        Ok(Outcome::Rows { .. }) => panic!("{sql} returned rows"),
        Err(error) => panic!("{sql}: {error}"),
    }
}

async fn batches(session: &LanceSession, sql: &str) -> Result<Vec<RecordBatch>, Error> {
    Ok(session.sql_stream(sql).await?.try_collect().await?)
}

/// The first column of `sql`'s rows, as integers.
async fn integers(session: &LanceSession, sql: &str) -> Vec<i64> {
    let batches = batches(session, sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    integers_of(&batches)
}

/// The rows an execution returned; panics if it failed or returned none.
async fn rows_of(outcome: Result<Outcome, Error>) -> Vec<RecordBatch> {
    match outcome {
        Ok(Outcome::Rows { stream, .. }) => stream.try_collect().await.expect("rows"),
        Ok(Outcome::Done(tag)) => panic!("{tag}"),
        Err(error) => panic!("{error}"),
    }
}

/// Row ids bound as the one parameter of a prepared `take(table, $1)`.
fn ids(values: &[u64]) -> Vec<ScalarValue> {
    let list = arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::UInt64Type, _, _>(
        [Some(values.iter().map(|value| Some(*value)))],
    );
    vec![ScalarValue::List(std::sync::Arc::new(list))]
}

fn integers_of(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|batch| {
            batch
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

async fn text(session: &LanceSession, sql: &str) -> String {
    let batches = batches(session, sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    arrow::util::pretty::pretty_format_batches(&batches)
        .expect("printable")
        .to_string()
}

const CREATE_TEN: &str = "CREATE TABLE t AS SELECT value AS id FROM generate_series(1, 10)";
/// `v`: ids 1 to 64 at row positions 0 to 63, each with the vector `[id, id % 7]`.
const CREATE_VECTORS: &str = "CREATE TABLE v AS SELECT value AS id, arrow_cast([CAST(value AS \
     FLOAT), CAST(value % 7 AS FLOAT)], 'FixedSizeList(2, Float32)') AS embedding FROM \
     generate_series(1, 64)";

#[test]
fn a_statement_is_planned_once_and_executed_with_new_parameters() {
    run(|| async {
        let root = tempfile::tempdir().expect("root");
        let engine = engine_over(root.path(), EngineConfig::default());
        let session = engine.session().expect("session");
        assert_eq!(
            tag(&session, CREATE_TEN).await,
            CommandTag::Select { rows: 10 }
        );
        let prepared = session
            .prepare_sql("SELECT id, id * 2 AS twice FROM t WHERE id > $1 ORDER BY id LIMIT 2")
            .await
            .expect("prepare");
        // Known before anything runs.
        let types: Vec<Option<&DataType>> = prepared
            .parameter_fields()
            .iter()
            .map(|field| field.as_ref().map(|field| field.data_type()))
            .collect();
        assert_eq!(types, [Some(&DataType::Int64)]);
        let schema = prepared.schema();
        let columns: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|field| (field.name().as_str(), field.data_type()))
            .collect();
        assert_eq!(
            columns,
            [("id", &DataType::Int64), ("twice", &DataType::Int64)]
        );
        assert_eq!(prepared.kind(), &StatementKind::Query);
        let opens = engine.dataset_opens();
        for (after, expected) in [(0i64, [1i64, 2]), (5, [6, 7]), (8, [9, 10])] {
            let outcome = session
                .execute(&prepared, vec![ScalarValue::Int64(Some(after))])
                .await
                .expect("execute");
            let Outcome::Rows { stream, kind } = outcome else {
                panic!("a query returns rows");
            };
            let batches: Vec<RecordBatch> = stream.try_collect().await.expect("rows");
            assert_eq!(integers_of(&batches), expected);
            assert_eq!(kind.tag_after(2).to_string(), "SELECT 2");
        }
        // Nothing was opened again to run it three times.
        assert_eq!(engine.dataset_opens(), opens);
        // A missing or extra parameter is an error naming the problem, and the session goes on.
        let error = match session.execute(&prepared, Vec::new()).await {
            Err(error) => error,
            Ok(_) => panic!("a missing parameter must fail"),
        };
        assert!(error.to_string().contains("$1"), "{error}");
        assert_eq!(integers(&session, "SELECT count(*) FROM t").await, [10]);
    });
}

#[test]
fn every_statement_kind_reports_its_postgres_tag() {
    run(|| async {
        let (_root, session) = scratch_session();
        let created = tag(&session, CREATE_TEN).await;
        assert_eq!(created.to_string(), "SELECT 10");
        assert_eq!(
            tag(&session, "CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS id").await,
            CommandTag::CreateTable
        );
        assert_eq!(
            tag(&session, "SET datafusion.execution.batch_size = 100").await,
            CommandTag::Set
        );
        assert_eq!(
            session
                .setting("datafusion.execution.batch_size")
                .as_deref(),
            Some("100")
        );
        assert_eq!(
            tag(&session, "SET lance.fragment_readahead = 3").await,
            CommandTag::Set
        );
        assert_eq!(
            session.setting("lance.fragment_readahead").as_deref(),
            Some("3")
        );
        for (sql, kind, tag_text) in [
            ("SHOW lance.fragment_readahead", StatementKind::Show, "SHOW"),
            ("EXPLAIN SELECT * FROM t", StatementKind::Explain, "EXPLAIN"),
            ("SELECT * FROM t", StatementKind::Query, "SELECT 10"),
            ("VALUES (1), (2)", StatementKind::Query, "SELECT 10"),
        ] {
            let prepared = session.prepare_sql(sql).await.expect(sql);
            assert_eq!(prepared.kind(), &kind, "{sql}");
            assert!(prepared.kind().returns_rows());
            assert_eq!(prepared.kind().tag_after(10).to_string(), tag_text, "{sql}");
        }
        for (sql, expected) in [
            ("BEGIN", "BEGIN"),
            ("COMMIT", "COMMIT"),
            ("ROLLBACK", "ROLLBACK"),
        ] {
            assert_eq!(tag(&session, sql).await.to_string(), expected);
        }
        let create_prepared = session
            .prepare_sql("CREATE TABLE u AS SELECT 1 AS x")
            .await
            .expect("prepare a create");
        assert!(create_prepared.schema().fields().is_empty());
        assert!(!create_prepared.kind().returns_rows());
        assert_eq!(tag(&session, "DROP TABLE t").await, CommandTag::DropTable);
        let again = outcome(&session, "DROP TABLE t").await.err().expect("gone");
        assert_eq!(again.kind(), ErrorKind::UndefinedTable);
        assert_eq!(
            tag(&session, "DROP TABLE IF EXISTS t").await,
            CommandTag::DropTable
        );
    });
}

#[test]
fn unknown_names_get_their_own_errors_before_planning() {
    run(|| async {
        let (_root, session) = scratch_session();
        tag(&session, CREATE_TEN).await;
        for (sql, kind, named) in [
            ("SELECT * FROM nope", ErrorKind::UndefinedTable, "nope"),
            (
                "SELECT * FROM t JOIN nope ON true",
                ErrorKind::UndefinedTable,
                "nope",
            ),
            (
                "SELECT * FROM nowhere.t",
                ErrorKind::UndefinedSchema,
                "nowhere",
            ),
            (
                "SELECT * FROM system.nope",
                ErrorKind::UndefinedTable,
                "system.nope",
            ),
            (
                "SELECT no_such_fn(id) FROM t",
                ErrorKind::UndefinedFunction,
                "no_such_fn",
            ),
            ("SELECT nope FROM t", ErrorKind::UndefinedColumn, "nope"),
        ] {
            let error = session.prepare_sql(sql).await.expect_err(sql);
            assert_eq!(error.kind(), kind, "{sql}: {error}");
            assert!(error.to_string().contains(named), "{sql}: {error}");
        }
        // CTEs and table functions are not tables.
        assert_eq!(
            integers(
                &session,
                "WITH c AS (SELECT 1::bigint AS x) SELECT x FROM c"
            )
            .await,
            [1]
        );
        assert_eq!(
            integers(&session, "SELECT count(*) FROM generate_series(1, 5)").await,
            [5]
        );
    });
}

#[test]
fn prepared_statements_see_other_writers_and_refuse_changed_columns() {
    run(|| async {
        let root = tempfile::tempdir().expect("root");
        let engine = engine_over(root.path(), EngineConfig::default());
        // Another process writing the same root.
        let other = engine_over(root.path(), EngineConfig::default());
        let session = engine.session().expect("session");
        let writer = other.session().expect("writer");
        tag(&writer, CREATE_TEN).await;
        let count = session
            .prepare_sql("SELECT count(*) FROM t")
            .await
            .expect("prepare count");
        let star = session
            .prepare_sql("SELECT * FROM t")
            .await
            .expect("prepare star");
        let counted = |outcome| async move { integers_of(&rows_of(outcome).await) };
        assert_eq!(
            counted(session.execute(&count, Vec::new()).await).await,
            [10]
        );
        // Dropped and created again with the same name, the same version number, other rows.
        tag(&writer, "DROP TABLE t").await;
        tag(
            &writer,
            "CREATE TABLE t AS SELECT value AS id FROM generate_series(1, 3)",
        )
        .await;
        assert_eq!(
            counted(session.execute(&count, Vec::new()).await).await,
            [3]
        );
        // Created again with other columns: the star query can no longer keep its promise.
        tag(&writer, "DROP TABLE t").await;
        tag(&writer, "CREATE TABLE t AS SELECT 'x' AS id").await;
        let error = session
            .execute(&star, Vec::new())
            .await
            .err()
            .expect("changed columns");
        assert_eq!(error.kind(), ErrorKind::FeatureNotSupported, "{error}");
        assert!(error.to_string().contains("prepare it again"), "{error}");
        assert_eq!(
            counted(session.execute(&count, Vec::new()).await).await,
            [1]
        );
    });
}

#[test]
fn a_prepared_statement_runs_under_the_settings_of_its_execution() {
    run(|| async {
        let (_root, session) = scratch_session();
        tag(&session, CREATE_VECTORS).await;
        tag(
            &session,
            "CREATE INDEX ON v USING IVF_FLAT (embedding) WITH (num_partitions = 2)",
        )
        .await;
        let explain = session
            .prepare_sql("EXPLAIN SELECT id FROM vector_search('v', 'embedding', [3.0, 3.0], 2)")
            .await
            .expect("prepare");
        let plan_text = |outcome| async move {
            arrow::util::pretty::pretty_format_batches(&rows_of(outcome).await)
                .expect("printable")
                .to_string()
        };
        let before = plan_text(session.execute(&explain, Vec::new()).await).await;
        assert!(!before.contains("nprobes="), "{before}");
        // Executing changes nothing the plan depends on.
        assert!(session.is_current(&explain).await.expect("current"));
        tag(&session, "SET lance.nprobes = 2").await;
        assert!(!session.is_current(&explain).await.expect("current"));
        let after = plan_text(session.execute(&explain, Vec::new()).await).await;
        assert!(after.contains("nprobes=2"), "{after}");
        tag(&session, "RESET lance.nprobes").await;
        let reset = plan_text(session.execute(&explain, Vec::new()).await).await;
        assert!(!reset.contains("nprobes="), "{reset}");
    });
}

#[test]
fn a_prepared_statement_planned_again_keeps_its_new_plan_for_the_executions_after() {
    run(|| async {
        let (_root, session) = scratch_session();
        tag(&session, CREATE_TEN).await;
        tag(&session, CREATE_VECTORS).await;
        let count = session
            .prepare_sql("SELECT count(*) FROM t WHERE id > $1")
            .await
            .expect("prepare count");
        let above = |n: i64| vec![ScalarValue::Int64(Some(n))];
        let counted = |outcome| async move { integers_of(&rows_of(outcome).await) };
        assert_eq!(counted(session.execute(&count, above(5)).await).await, [5]);
        // A write makes the plan stale; the execution after it plans again, once.
        tag(&session, "INSERT INTO t VALUES (11), (12)").await;
        assert!(!session.is_current(&count).await.expect("current"));
        assert_eq!(counted(session.execute(&count, above(5)).await).await, [7]);
        assert!(
            session.is_current(&count).await.expect("current"),
            "the plan made again was not kept"
        );
        assert_eq!(counted(session.execute(&count, above(10)).await).await, [2]);
        // So does a `SET`.
        tag(&session, "SET datafusion.execution.batch_size = 4").await;
        assert!(!session.is_current(&count).await.expect("current"));
        assert_eq!(counted(session.execute(&count, above(0)).await).await, [12]);
        assert!(session.is_current(&count).await.expect("current"));
        // A take planned again keeps its new optimised plan too.
        let take = session
            .prepare_sql("SELECT id FROM take('v', $1)")
            .await
            .expect("prepare take");
        assert_eq!(counted(session.execute(&take, ids(&[2])).await).await, [3]);
        tag(&session, "DELETE FROM v WHERE id = 3").await;
        let Ok(Outcome::Rows { stream, .. }) = session.execute(&take, ids(&[2])).await else {
            panic!("the take did not start");
        };
        let error = stream
            .try_collect::<Vec<_>>()
            .await
            .expect_err("a deleted row");
        assert!(error.to_string().contains("row id 2"), "{error}");
        assert!(session.is_current(&take).await.expect("current"));
        assert!(take.keeps_optimized_plan(), "the new plan was not kept");
        assert_eq!(counted(session.execute(&take, ids(&[3])).await).await, [4]);
    });
}

#[test]
fn a_query_whose_parameters_are_search_arguments_binds_new_values_into_one_optimised_plan() {
    run(|| async {
        let (_root, session) = scratch_session();
        tag(&session, CREATE_VECTORS).await;
        let take = session
            .prepare_sql("SELECT id FROM take('v', $1)")
            .await
            .expect("prepare take");
        // One fragment written at once: row ids are row positions, `id` is position + 1.
        for (rows, expected) in [(vec![0, 5], vec![1, 6]), (vec![10, 3, 3], vec![11, 4, 4])] {
            let outcome = session.execute(&take, ids(&rows)).await;
            assert_eq!(integers_of(&rows_of(outcome).await), expected);
            assert!(
                take.keeps_optimized_plan(),
                "the take was optimised each time"
            );
        }
        let nearest = session
            .prepare_sql("SELECT id FROM vector_search('v', 'embedding', $1, 1)")
            .await
            .expect("prepare search");
        for (at, expected) in [(3.0f32, 3), (5.0, 5), (3.0, 3)] {
            let vector = arrow::array::ListArray::from_iter_primitive::<
                arrow::datatypes::Float32Type,
                _,
                _,
            >([Some([Some(at), Some(at)])]);
            let outcome = session
                .execute(
                    &nearest,
                    vec![ScalarValue::List(std::sync::Arc::new(vector))],
                )
                .await;
            assert_eq!(integers_of(&rows_of(outcome).await), [expected]);
        }
        assert!(nearest.keeps_optimized_plan());
        // `now()` is folded when a plan is optimised, so this plan is optimised every time.
        let timed = session
            .prepare_sql("SELECT now() AS at FROM take('v', $1)")
            .await
            .expect("prepare timed");
        let at = |outcome| async move {
            arrow::util::pretty::pretty_format_batches(&rows_of(outcome).await)
                .expect("printable")
                .to_string()
        };
        let first = at(session.execute(&timed, ids(&[1])).await).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = at(session.execute(&timed, ids(&[1])).await).await;
        assert_ne!(first, second, "now() was kept from an earlier execution");
        assert!(!timed.keeps_optimized_plan());
    });
}

#[test]
fn a_bound_search_runs_again_in_the_physical_plan_of_its_first_execution() {
    run(|| async {
        let (_root, session) = scratch_session();
        tag(&session, CREATE_VECTORS).await;
        let vector = |x: f32, y: f32| {
            let list = arrow::array::ListArray::from_iter_primitive::<
                arrow::datatypes::Float32Type,
                _,
                _,
            >([Some([Some(x), Some(y)])]);
            vec![ScalarValue::List(std::sync::Arc::new(list))]
        };
        let nearest = session
            .prepare_sql("SELECT id, _distance FROM vector_search('v', 'embedding', $1, 2)")
            .await
            .expect("prepare search");
        assert_eq!(
            integers_of(&rows_of(session.execute(&nearest, vector(3.0, 3.4)).await).await),
            [3, 4]
        );
        assert!(nearest.keeps_physical_plan(), "a lone search was not kept");
        assert_eq!(
            integers_of(&rows_of(session.execute(&nearest, vector(40.3, 5.0)).await).await),
            [40, 41]
        );
        // Values are still validated one by one: a wrong dimension fails, naming it, and the
        // next execution runs as before.
        let wrong = session
            .execute(
                &nearest,
                vec![ScalarValue::List(std::sync::Arc::new(
                    arrow::array::ListArray::from_iter_primitive::<
                        arrow::datatypes::Float32Type,
                        _,
                        _,
                    >([Some([Some(1.0f32), Some(2.0), Some(3.0)])]),
                ))],
            )
            .await;
        let Err(error) = wrong else {
            panic!("a 3-float vector searched a 2-float column");
        };
        assert!(error.to_string().contains("dimension"), "{error}");
        assert_eq!(
            integers_of(&rows_of(session.execute(&nearest, vector(10.3, 3.0)).await).await),
            [10, 11]
        );
        // A value that would give the search other columns (two query vectors: `query_index`)
        // is planned afresh, as the statement's first execution would be.
        let two_vectors = || {
            let inner = arrow::array::ListArray::from_iter_primitive::<
                arrow::datatypes::Float32Type,
                _,
                _,
            >([
                Some([Some(3.0f32), Some(3.4)]),
                Some([Some(40.3), Some(5.0)]),
            ]);
            let field = std::sync::Arc::new(arrow::datatypes::Field::new_list_field(
                arrow::array::Array::data_type(&inner).clone(),
                true,
            ));
            let outer = arrow::array::ListArray::new(
                field,
                arrow::buffer::OffsetBuffer::from_lengths([2]),
                std::sync::Arc::new(inner),
                None,
            );
            vec![ScalarValue::List(std::sync::Arc::new(outer))]
        };
        let shown = |outcome: Result<Outcome, Error>| async move {
            match outcome {
                Ok(Outcome::Rows { stream, .. }) => match stream.try_collect::<Vec<_>>().await {
                    Ok(batches) => arrow::util::pretty::pretty_format_batches(&batches)
                        .expect("printable")
                        .to_string(),
                    Err(error) => error.to_string(),
                },
                Ok(Outcome::Done(tag)) => panic!("{tag}"),
                Err(error) => error.to_string(),
            }
        };
        let fresh = session
            .prepare_sql("SELECT id, _distance FROM vector_search('v', 'embedding', $1, 2)")
            .await
            .expect("prepare search");
        assert_eq!(
            shown(session.execute(&nearest, two_vectors()).await).await,
            shown(session.execute(&fresh, two_vectors()).await).await
        );
        assert!(nearest.keeps_physical_plan());
        // A take kept so fails on a row id naming no row, and then takes again.
        let take = session
            .prepare_sql("SELECT id FROM take('v', $1)")
            .await
            .expect("prepare take");
        assert_eq!(
            integers_of(&rows_of(session.execute(&take, ids(&[1, 1])).await).await),
            [2, 2]
        );
        assert!(take.keeps_physical_plan());
        let Ok(Outcome::Rows { stream, .. }) = session.execute(&take, ids(&[1000])).await else {
            panic!("the take did not start");
        };
        let error = stream
            .try_collect::<Vec<_>>()
            .await
            .expect_err("no such row");
        assert!(error.to_string().contains("row id 1000"), "{error}");
        assert_eq!(
            integers_of(&rows_of(session.execute(&take, ids(&[7])).await).await),
            [8]
        );
        // A search argument that is a subquery is evaluated when the search is planned
        // physically, so such a plan is planned each time: a random row each execution.
        let drawn = session
            .prepare_sql(
                "SELECT id FROM take('v', (SELECT make_array(CAST(floor(random() * 60) AS \
                 BIGINT))))",
            )
            .await
            .expect("prepare drawn");
        let mut draws = std::collections::BTreeSet::new();
        for _ in 0..20 {
            draws.extend(integers_of(
                &rows_of(session.execute(&drawn, Vec::new()).await).await,
            ));
        }
        assert!(draws.len() > 1, "the subquery ran once: {draws:?}");
        assert!(!drawn.keeps_physical_plan());
        // Without parameters the kept plan runs again as it is, until a write makes it stale.
        let listed = session
            .prepare_sql("SELECT id FROM v WHERE _rowid IN (2, 4)")
            .await
            .expect("prepare listed");
        let listed_ids = || async {
            let mut found = integers_of(&rows_of(session.execute(&listed, Vec::new()).await).await);
            found.sort_unstable();
            found
        };
        assert_eq!(listed_ids().await, [3, 5]);
        assert!(listed.keeps_physical_plan());
        assert_eq!(listed_ids().await, [3, 5]);
        tag(&session, "DELETE FROM v WHERE id = 3").await;
        assert_eq!(listed_ids().await, [5]);
        assert!(
            listed.keeps_physical_plan(),
            "the plan made again was not kept"
        );
        assert_eq!(listed_ids().await, [5]);
        // Plans whose nodes share state between executions (an aggregate, a repartitioned
        // filter) are planned physically each time, with the right answers.
        let cases = [
            (
                "SELECT count(*) FROM take('v', $1)",
                [(vec![0, 1, 1], vec![3]), (vec![4], vec![1])],
            ),
            (
                "SELECT id FROM take('v', $1) WHERE id > 1",
                [(vec![0, 1, 1], vec![2, 2]), (vec![4], vec![5])],
            ),
        ];
        for (sql, runs) in cases {
            let prepared = session.prepare_sql(sql).await.expect("prepare");
            for (rows, expected) in runs {
                let outcome = session.execute(&prepared, ids(&rows)).await;
                assert_eq!(integers_of(&rows_of(outcome).await), expected, "{sql}");
            }
            assert!(prepared.keeps_optimized_plan(), "{sql}");
            assert!(!prepared.keeps_physical_plan(), "{sql}");
        }
    });
}

#[test]
fn executions_of_kept_plans_share_one_copy_of_the_state_until_a_setting_changes() {
    run(|| async {
        let (_root, session) = scratch_session();
        let batch_size = |state: &datafusion::execution::session_state::SessionState| {
            state.config_options().execution.batch_size
        };
        let first = session.current_state();
        assert!(std::sync::Arc::ptr_eq(&first, &session.current_state()));
        // Statements that change no setting keep the copy.
        tag(&session, CREATE_TEN).await;
        assert!(std::sync::Arc::ptr_eq(&first, &session.current_state()));
        tag(&session, "SET datafusion.execution.batch_size = 4").await;
        let after_set = session.current_state();
        assert_eq!(batch_size(&after_set), 4);
        assert!(!std::sync::Arc::ptr_eq(&first, &after_set));
        // A Postgres parameter with a DataFusion effect, and `RESET ALL`.
        tag(&session, "SET TimeZone = 'Europe/Paris'").await;
        let zoned = session.current_state();
        assert_eq!(
            zoned.config_options().execution.time_zone.as_deref(),
            Some("Europe/Paris")
        );
        assert_eq!(batch_size(&zoned), 4);
        tag(&session, "RESET ALL").await;
        let reset = session.current_state();
        assert_eq!(batch_size(&reset), batch_size(&first));
        assert_eq!(
            reset.config_options().execution.time_zone,
            first.config_options().execution.time_zone
        );
        // A clone of the session is the same session: it sees the same settings.
        tag(&session.clone(), "SET datafusion.execution.batch_size = 7").await;
        assert_eq!(batch_size(&session.current_state()), 7);
    });
}

#[test]
fn a_session_reuses_its_recent_queries_until_another_statement_runs() {
    run(|| async {
        let (_root, session) = scratch_session();
        let query = |n: usize| format!("SELECT {n} AS n");
        let first = session
            .prepare_sql_reusing(&query(0))
            .await
            .expect("prepare");
        let again = session.prepare_sql_reusing(&query(0)).await.expect("again");
        assert!(std::sync::Arc::ptr_eq(&first, &again), "prepared again");
        for n in 1..=super::recent::KEPT {
            session
                .prepare_sql_reusing(&query(n))
                .await
                .expect("prepare");
        }
        let kept = |n| {
            let sql = query(n);
            let session = &session;
            async move { session.reusable(&sql).await.expect("reusable").is_some() }
        };
        assert!(!kept(0).await, "the least recently used is dropped");
        assert!(kept(1).await);
        // Only queries are kept; any other statement empties the cache.
        let begin = session.prepare_sql_reusing("BEGIN").await.expect("BEGIN");
        assert!(session.reusable("BEGIN").await.expect("reusable").is_none());
        session
            .execute(&begin, Vec::new())
            .await
            .expect("BEGIN runs");
        assert!(!kept(1).await, "kept across BEGIN");
        tag(&session, "COMMIT").await;
        // Queries run by their text (embedding) are kept too, and still see writes.
        tag(&session, CREATE_TEN).await;
        let sum = "SELECT sum(id) FROM t";
        assert_eq!(integers(&session, sum).await, [55]);
        assert!(session.reusable(sum).await.expect("reusable").is_some());
        assert_eq!(integers(&session, sum).await, [55]);
        tag(&session, "INSERT INTO t VALUES (45)").await;
        assert!(session.reusable(sum).await.expect("reusable").is_none());
        assert_eq!(integers(&session, sum).await, [100]);
    });
}

#[test]
fn sixteen_sessions_share_one_open_of_each_version() {
    run(|| async {
        let root = tempfile::tempdir().expect("root");
        let writer = engine_over(root.path(), EngineConfig::default());
        tag(&writer.session().expect("session"), CREATE_TEN).await;
        let engine = engine_over(root.path(), EngineConfig::default());
        assert_eq!(engine.dataset_opens(), 0);
        let queries: Vec<_> = (0..16)
            .map(|_| {
                let session = engine.session().expect("session");
                tokio::spawn(async move { integers(&session, "SELECT sum(id) FROM t").await })
            })
            .collect();
        for query in queries {
            assert_eq!(query.await.expect("query task"), [55]);
        }
        assert_eq!(engine.dataset_opens(), 1);
        // A new version is one more open, shared again.
        tag(&writer.session().expect("session"), "DROP TABLE t").await;
        tag(&writer.session().expect("session"), CREATE_TEN).await;
        let session = engine.session().expect("session");
        assert_eq!(integers(&session, "SELECT count(*) FROM t").await, [10]);
        assert_eq!(integers(&session, "SELECT count(*) FROM t").await, [10]);
        assert_eq!(engine.dataset_opens(), 2);
    });
}

#[test]
fn sessions_copy_one_template_and_keep_their_catalogs_and_settings_apart() {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};
    use datafusion::catalog::{
        CatalogProvider, MemTable, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
    };

    run(|| async {
        let root = tempfile::tempdir().expect("root");
        let engine = engine_over(root.path(), EngineConfig::default());
        let first = engine.session().expect("session");
        let second = engine.session().expect("session");

        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let rows = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![7]))])
            .expect("batch");
        let tables = MemorySchemaProvider::new();
        tables
            .register_table(
                "m".into(),
                Arc::new(MemTable::try_new(schema, vec![vec![rows]]).expect("table")),
            )
            .expect("register table");
        let extra = MemoryCatalogProvider::new();
        extra
            .register_schema("public", Arc::new(tables))
            .expect("register schema");
        first
            .register_catalog("extra", Arc::new(extra))
            .expect("register catalog");

        let count_extra_columns =
            "SELECT count(*) FROM lancesql_columns() WHERE table_catalog = 'extra'";
        assert_eq!(integers(&first, "SELECT x FROM extra.public.m").await, [7]);
        assert_eq!(integers(&first, count_extra_columns).await, [1]);
        assert!(
            batches(&second, "SELECT x FROM extra.public.m")
                .await
                .is_err()
        );
        assert_eq!(integers(&second, count_extra_columns).await, [0]);

        let default = first.setting("lance.nprobes");
        assert_ne!(default.as_deref(), Some("7"));
        tag(&first, "SET lance.nprobes = 7").await;
        assert_eq!(first.setting("lance.nprobes").as_deref(), Some("7"));
        assert_eq!(second.setting("lance.nprobes"), default);
        let third = engine.session().expect("session");
        assert_eq!(third.setting("lance.nprobes"), default);

        // The catalog emulation each session copies works in every one of them.
        for session in [&first, &second, &third] {
            let types = integers(session, "SELECT count(*) FROM pg_catalog.pg_type").await;
            assert!(types[0] > 0, "pg_type is empty");
        }
    });
}

#[test]
fn a_query_over_the_memory_limit_fails_and_the_next_one_runs() {
    run(|| async {
        let root = tempfile::tempdir().expect("root");
        let engine = engine_over(
            root.path(),
            EngineConfig {
                memory_limit: Some(4 << 20),
                ..EngineConfig::default()
            },
        );
        let session = engine.session().expect("session");
        let error = batches(
            &session,
            "SELECT array_agg(value) FROM generate_series(1, 2000000)",
        )
        .await
        .expect_err("over the limit");
        assert_eq!(error.kind(), ErrorKind::OutOfMemory, "{error}");
        assert_eq!(error.sqlstate(), "53200");
        assert!(error.to_string().contains("memory"), "{error}");
        assert_eq!(
            integers(&session, "SELECT count(*) FROM generate_series(1, 1000)").await,
            [1000]
        );
        // Sorting more than the limit spills instead of failing.
        let analyzed = text(
            &session,
            "EXPLAIN ANALYZE SELECT value FROM generate_series(1, 500000) ORDER BY value DESC",
        )
        .await;
        let spills = analyzed
            .lines()
            .filter(|line| line.contains("SortExec"))
            .filter_map(|line| line.split("spill_count=").nth(1))
            .filter_map(|rest| rest.split([',', ']']).next()?.trim().parse::<u64>().ok())
            .sum::<u64>();
        assert!(spills > 0, "the sort did not spill:\n{analyzed}");
        let sorted = integers(
            &session,
            "SELECT value FROM generate_series(1, 500000) ORDER BY value DESC",
        )
        .await;
        assert_eq!(sorted.len(), 500_000);
        assert_eq!((sorted[0], sorted[499_999]), (500_000, 1));
    });
}

#[test]
fn a_slow_listing_blocks_no_other_session() {
    run(|| async {
        let root = tempfile::tempdir().expect("root");
        let engine = engine_over(root.path(), EngineConfig::default());
        let session = engine.session().expect("session");
        tag(&session, CREATE_TEN).await;
        *engine.catalog().listing_delay.lock().expect("delay lock") = Duration::from_secs(5);
        engine.catalog().forget_listing().await;
        let lister = engine.session().expect("session");
        let listing = tokio::spawn(async move {
            integers(
                &lister,
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(integers(&session, "SELECT count(*) FROM t").await, [10]);
        assert!(!listing.is_finished(), "the query waited for the listing");
        assert_eq!(listing.await.expect("listing task"), [1]);
    });
}

#[test]
fn explain_analyze_shows_what_scans_and_takes_did() {
    run(|| async {
        let root = tempfile::tempdir().expect("root");
        let engine = engine_over(root.path(), EngineConfig::default());
        let session = engine.session().expect("session");
        tag(
            &session,
            "CREATE TABLE t AS SELECT value AS id, repeat('x', 100) AS payload FROM generate_series(1, 1000)",
        )
        .await;
        let scan = text(&session, "EXPLAIN ANALYZE SELECT id FROM t WHERE id > 990").await;
        let line = scan
            .lines()
            .find(|line| line.contains("LanceScan"))
            .expect("a scan line");
        for metric in [
            "output_rows=10",
            "fragments=1",
            "bytes_read=",
            "iops=",
            "index_comparisons=",
            "scan_time=",
        ] {
            assert!(line.contains(metric), "{metric} missing: {line}");
        }
        let take = text(
            &session,
            "EXPLAIN ANALYZE SELECT * FROM t ORDER BY id DESC LIMIT 3",
        )
        .await;
        let line = take
            .lines()
            .find(|line| line.contains("LanceTake"))
            .expect("a take line");
        for metric in ["output_rows=3", "fragments=1", "take_time="] {
            assert!(line.contains(metric), "{metric} missing: {line}");
        }
        // The take function: rows produced and the time spent producing them.
        let taken = text(
            &session,
            "EXPLAIN ANALYZE SELECT * FROM take('t', [5, 7, 5, 900])",
        )
        .await;
        let line = taken
            .lines()
            .find(|line| line.contains("LanceTakeRows"))
            .expect("a take line");
        for metric in ["output_rows=4", "elapsed_compute="] {
            assert!(line.contains(metric), "{metric} missing: {line}");
        }
    });
}

/// Every stage a statement reported, as `start <stage>` / `done <stage>`.
#[derive(Debug, Default)]
struct RecordedStages(std::sync::Mutex<Vec<String>>);

impl RecordedStages {
    fn events(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }
}

impl crate::engine::WorkProgress for RecordedStages {
    fn stage_started(&self, stage: &str, _total: Option<u64>, _unit: &str) {
        self.0
            .lock()
            .expect("not poisoned")
            .push(format!("start {stage}"));
    }

    fn stage_advanced(&self, _stage: &str, _completed: u64) {}

    fn stage_finished(&self, stage: &str) {
        self.0
            .lock()
            .expect("not poisoned")
            .push(format!("done {stage}"));
    }
}

#[test]
fn index_builds_report_their_stages_to_the_session_progress() {
    run(|| async {
        let root = tempfile::tempdir().expect("root");
        let engine = engine_over(root.path(), EngineConfig::default());
        let stages = std::sync::Arc::new(RecordedStages::default());
        let session = engine
            .session()
            .expect("session")
            .with_progress(stages.clone());
        tag(&session, CREATE_TEN).await;
        assert!(stages.events().is_empty(), "{:?}", stages.events());
        assert_eq!(
            tag(&session, "CREATE INDEX ON t USING BTREE (id)").await,
            CommandTag::CreateIndex
        );
        let events = stages.events();
        assert!(!events.is_empty(), "no stage reported");
        // Stages run one after another: each start is followed by its own end.
        for pair in events.chunks(2) {
            let [start, done] = pair else {
                panic!("unfinished stage in {events:?}");
            };
            assert_eq!(
                start.strip_prefix("start "),
                done.strip_prefix("done "),
                "{events:?}"
            );
        }
    });
}
