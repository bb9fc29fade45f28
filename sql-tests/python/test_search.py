"""Search through real clients: `lancesql serve` on 127.0.0.1 port 0, tables written by pylance,
indices built with SQL, and every result checked against pylance over the same dataset (exact
search, `take` of the same row ids) or against an exact search (recall of the indices)."""

import asyncio

import adbc_driver_flightsql.dbapi as flight_sql
import asyncpg
import lance
import numpy as np
import psycopg
import pyarrow as pa
import pytest

from conftest import served, trust_conninfo

DIM = 32


def clustered(rows, seed):
    """Vectors shaped like real embeddings: clusters in a low-dimensional subspace, plus noise
    (uniform random vectors would make every index look bad and every search look alike)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((24, 6)) * 4
    basis = rng.standard_normal((6, DIM))
    low = centres[rng.integers(0, len(centres), rows)] + rng.standard_normal((rows, 6)) * 0.6
    return (low @ basis + rng.standard_normal((rows, DIM)) * 0.1).astype(np.float32)


def write_vectors(data, name, rows, seed=5, mode="create", first_id=0):
    vectors = clustered(rows, seed)
    table = pa.table({
        "id": pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
        "label": pa.array([f"row {i}" for i in range(first_id, first_id + rows)]),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
    })
    return lance.write_dataset(table, str(data / f"{name}.lance"), mode=mode,
                               max_rows_per_file=max(rows // 3, 1))


@pytest.fixture
def server(data):
    with served(data, "--pg-auth", "trust") as addresses:
        yield addresses


def exact_ids(dataset, query, k):
    found = dataset.to_table(columns=["id"], nearest={
        "column": "embedding", "q": query, "k": k, "use_index": False})
    return found["id"].to_pylist()


def test_query_vectors_and_row_ids_bind_as_parameters(server, data):
    dataset = write_vectors(data, "vecs", 600)
    query = clustered(1, seed=99)[0]
    expected = exact_ids(dataset, query, 5)
    with psycopg.connect(trust_conninfo(server["pg"]), autocommit=True) as conn:
        # psycopg sends a list of floats as float8[]; the column holds float32.
        rows = conn.execute(
            "SELECT id FROM vector_search('vecs', 'embedding', %s, 5)",
            ([float(x) for x in query],)).fetchall()
        assert [row[0] for row in rows] == expected
        # A cast written on the parameter (as pgvector users write `%s::vector`) applies to the
        # bound value: psycopg's float8[] becomes the float4[] asked for.
        for cast in ("float4[]", "real[]", "double precision[]"):
            rows = conn.execute(
                f"SELECT id FROM vector_search('vecs', 'embedding', %s::{cast}, 5)",
                ([float(x) for x in query],)).fetchall()
            assert [row[0] for row in rows] == expected, cast
        # k bound too, and the same statement run again with other values.
        statement = "SELECT id FROM vector_search('vecs', 'embedding', %s, %s)"
        assert [r[0] for r in conn.execute(statement, ([float(x) for x in query], 3))] == \
            expected[:3]
        other = clustered(1, seed=7)[0]
        assert [r[0] for r in conn.execute(statement, ([float(x) for x in other], 4))] == \
            exact_ids(dataset, other, 4)
        # Row ids as int8[]: the rows of pylance's take of the same ids, in the order given.
        ids = dataset.to_table(columns=["id"], with_row_id=True)["_rowid"].to_pylist()
        wanted = [ids[450], ids[3], ids[3], ids[201]]
        rows = conn.execute("SELECT id, label FROM take('vecs', %s)", (wanted,)).fetchall()
        taken = dataset._take_rows(wanted, columns=["id", "label"])
        assert rows == list(zip(taken["id"].to_pylist(), taken["label"].to_pylist()))
        assert conn.execute("SELECT id, label FROM take('vecs', %s::bigint[])",
                            (wanted,)).fetchall() == rows
        # A bad bound value gets the same error a literal gets, and the session goes on.
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="has 2 dimensions"):
            conn.execute(statement, ([1.0, 2.0], 3))
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # A bound value that the cast written on it cannot read fails as Postgres fails it
        # (22P02), and the session goes on.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation,
                           match=r"\$1 as float4\[\]: invalid float"):
            conn.execute("SELECT id FROM vector_search('vecs', 'embedding', %s::float4[], 5)",
                         (["a", "b"],))
        with pytest.raises(psycopg.errors.InvalidTextRepresentation,
                           match=r"\$1 as int8\[\]: invalid digit"):
            conn.execute("SELECT id FROM take('vecs', %s::bigint[])", (["a", "b"],))
        with pytest.raises(psycopg.errors.InvalidTextRepresentation,
                           match=r"\$2 as int8: invalid digit"):
            conn.execute(statement, ([float(x) for x in query], "five"))
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_asyncpg_binds_the_vector_with_the_described_type(server, data):
    """asyncpg encodes parameters with the types the server describes: float4[] here."""
    dataset = write_vectors(data, "vecs", 300)
    query = clustered(1, seed=42)[0]
    host, port = server["pg"]

    async def search():
        conn = await asyncpg.connect(host=host, port=port, user="lancesql",
                                     database="lancesql", ssl=False)
        try:
            statement = await conn.prepare(
                "SELECT id, _distance FROM vector_search('vecs', 'embedding', $1, 6)")
            types = [parameter.name for parameter in statement.get_parameters()]
            return types, await statement.fetch([float(x) for x in query])
        finally:
            await conn.close()

    types, rows = asyncio.run(search())
    assert types == ["float4[]"]
    assert [row["id"] for row in rows] == exact_ids(dataset, query, 6)
    assert [row["_distance"] for row in rows] == sorted(row["_distance"] for row in rows)


def test_flight_sql_binds_the_query_vector(server, data):
    dataset = write_vectors(data, "vecs", 300)
    query = clustered(1, seed=8)[0]
    host, port = server["flight"]
    with flight_sql.connect(f"grpc://{host}:{port}") as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM vector_search('vecs', 'embedding', ?, 5)",
                    parameters=pa.record_batch([pa.array([[float(x) for x in query]])],
                                               names=["query"]))
        assert cur.fetch_arrow_table()["id"].to_pylist() == exact_ids(dataset, query, 5)


def recall(conn, dataset, kind, options, queries, k=10):
    found = 0
    for query in queries:
        vector = [float(x) for x in query]
        rows = conn.execute(
            f"SELECT id FROM vector_search('vecs', 'embedding', %s, {k}{options})",
            (vector,)).fetchall()
        found += len({row[0] for row in rows} & set(exact_ids(dataset, query, k)))
    return found / (k * len(queries))


@pytest.mark.parametrize("kind, with_options, search_options", [
    ("IVF_PQ", "num_partitions = 16, num_sub_vectors = 8, max_iterations = 20",
     ", 'nprobes', 6, 'refine_factor', 10"),
    ("IVF_HNSW_SQ", "num_partitions = 8, max_iterations = 20",
     ", 'nprobes', 6, 'ef', 100, 'refine_factor', 5"),
])
def test_index_recall_against_exact_search(server, data, kind, with_options, search_options):
    dataset = write_vectors(data, "vecs", 4000)
    queries = clustered(20, seed=1234)
    with psycopg.connect(trust_conninfo(server["pg"]), autocommit=True) as conn:
        conn.execute(f"CREATE INDEX emb_idx ON vecs USING {kind} (embedding) WITH ({with_options})")
        row = conn.execute(
            "SELECT index_type, columns, rows_indexed, rows_unindexed FROM system.indices "
            "WHERE table_name = 'vecs'").fetchone()
        assert row == (kind, "embedding", 4000, 0)
        achieved = recall(conn, dataset, kind, search_options, queries)
        # Lance trains the index from random samples: recall varies between builds (0.945-1.0
        # for IVF_PQ here). A broken or bypassed index would be far below either bound.
        assert achieved >= 0.9, f"{kind} recall@10 {achieved}"
    # The index is Lance's own: pylance sees it on the new version.
    described = lance.dataset(str(data / "vecs.lance")).describe_indices()
    assert [index.name for index in described] == ["emb_idx"]


def test_rows_appended_after_the_index_are_still_found(server, data):
    write_vectors(data, "vecs", 2000)
    with psycopg.connect(trust_conninfo(server["pg"]), autocommit=True) as conn:
        conn.execute("CREATE INDEX ON vecs USING IVF_FLAT (embedding) WITH (num_partitions = 4)")
        # Another writer (pylance) appends rows the index has not seen.
        appended = write_vectors(data, "vecs", 30, seed=77, mode="append", first_id=10_000)
        target = clustered(30, seed=77)[5]
        assert conn.execute(
            "SELECT rows_indexed, rows_unindexed FROM system.indices WHERE table_name = 'vecs'"
        ).fetchone() == (2000, 30)
        statement = "SELECT id FROM vector_search('vecs', 'embedding', %s, 1{})"
        vector = [float(x) for x in target]
        assert conn.execute(statement.format(""), (vector,)).fetchone() == (10_005,)
        # A search of the version before the append does not see the new rows.
        assert conn.execute(statement.format(", 'version', 2"), (vector,)).fetchone() \
            != (10_005,)
        # fast_search reads only what the index covers.
        assert conn.execute(statement.format(", 'fast_search', true"), (vector,)).fetchone() \
            != (10_005,)
        # OPTIMIZE compacts the small fragments and folds the appended rows into the index.
        before = lance.dataset(str(data / "vecs.lance"))
        report = conn.execute("OPTIMIZE vecs").fetchone()
        (name, fragments_removed, fragments_added, files_removed, files_added,
         indices_optimized, version) = report
        assert name == "vecs" and fragments_removed > fragments_added > 0, report
        assert files_removed >= fragments_removed and files_added == fragments_added, report
        assert indices_optimized == 1 and version > before.version, report
        assert conn.execute(
            "SELECT rows_indexed, rows_unindexed FROM system.indices WHERE table_name = 'vecs'"
        ).fetchone() == (2030, 0)
        assert conn.execute(statement.format(", 'fast_search', true"), (vector,)).fetchone() \
            == (10_005,)
        # pylance reads the new version, and the old one is still there, with the same rows.
        after = lance.dataset(str(data / "vecs.lance"))
        assert after.version == version and after.count_rows() == 2030
        assert len(after.get_fragments()) < len(before.get_fragments())
        assert lance.dataset(str(data / "vecs.lance"), version=before.version).count_rows() \
            == 2030
        # With nothing left to do, OPTIMIZE commits nothing.
        assert conn.execute("OPTIMIZE TABLE vecs").fetchone() == ("vecs", 0, 0, 0, 0, 0, version)
    assert appended.count_rows() == 2030


WORDS = ("lance columnar vector search index table version fragment scan filter shuffle "
         "training data blob row take sample query text token score ranking fusion").split()


def write_documents(data, name, rows, seed=3):
    rng = np.random.default_rng(seed)
    bodies = [" ".join(rng.choice(WORDS, size=rng.integers(4, 16))) for _ in range(rows)]
    titles = [" ".join(rng.choice(WORDS, size=3)) for _ in range(rows)]
    table = pa.table({"id": pa.array(np.arange(rows, dtype=np.int64)),
                      "title": titles, "body": bodies})
    return lance.write_dataset(table, str(data / f"{name}.lance"),
                               max_rows_per_file=max(rows // 2, 1))


def test_full_text_results_equal_pylances(server, data):
    write_documents(data, "docs", 400)
    with psycopg.connect(trust_conninfo(server["pg"]), autocommit=True) as conn:
        conn.execute("CREATE INDEX ON docs USING INVERTED (body) WITH (with_position = true)")
        conn.execute("CREATE INDEX ON docs USING INVERTED (title)")
        dataset = lance.dataset(str(data / "docs.lance"))
        from lance.query import (BooleanQuery, FullTextOperator, MatchQuery, MultiMatchQuery,
                                 Occur, PhraseQuery)

        def pylance(query, limit=None):
            found = dataset.to_table(columns=["id"], full_text_query=query, limit=limit)
            return sorted(zip(found["id"].to_pylist(),
                              [round(s, 4) for s in found["_score"].to_pylist()]))

        def ours(sql, *parameters):
            rows = conn.execute(sql, parameters).fetchall()
            return sorted((row[0], round(row[1], 4)) for row in rows)

        cases = [
            ("SELECT id, _score FROM fts('docs', 'vector search', 'columns', 'body')",
             MatchQuery("vector search", "body")),
            ("SELECT id, _score FROM fts('docs', 'vector search', 'columns', 'body', "
             "'operator', 'and')",
             MatchQuery("vector search", "body", operator=FullTextOperator.AND)),
            ("SELECT id, _score FROM fts('docs', 'shuffle training', 'columns', 'body', "
             "'phrase', true)",
             PhraseQuery("shuffle training", "body")),
            ("SELECT id, _score FROM fts('docs', 'blob', 'columns', 'title, body')",
             MultiMatchQuery("blob", ["title", "body"])),
            ("SELECT id, _score FROM fts('docs', 'lance', 'columns', 'body', 'must_not', 'scan')",
             BooleanQuery([(Occur.MUST, MatchQuery("lance", "body")),
                           (Occur.MUST_NOT, MatchQuery("scan", "body"))])),
        ]
        for sql, query in cases:
            expected = pylance(query)
            assert expected, f"pylance finds nothing for {query}: the case tests nothing"
            assert ours(sql) == expected, sql
        # The best 10, with the query bound as a parameter.
        best = conn.execute(
            "SELECT id FROM fts('docs', %s, 'columns', 'body', 'limit', 10)",
            ("token ranking",)).fetchall()
        expected = dataset.to_table(columns=["id"], limit=10,
                                    full_text_query=MatchQuery("token ranking", "body"))
        assert [row[0] for row in best] == expected["id"].to_pylist()


def test_hybrid_search_binds_the_vector_and_the_text(server, data):
    rows = 300
    rng = np.random.default_rng(8)
    vectors = clustered(rows, seed=8)
    table = pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "body": [" ".join(rng.choice(WORDS, size=8)) for _ in range(rows)],
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
    })
    dataset = lance.write_dataset(table, str(data / "hybrid_docs.lance"))
    query = clustered(1, seed=77)[0]
    with psycopg.connect(trust_conninfo(server["pg"]), autocommit=True) as conn:
        conn.execute("CREATE INDEX ON hybrid_docs USING INVERTED (body)")
        statement = ("SELECT id, _distance IS NOT NULL, _score IS NOT NULL "
                     "FROM hybrid_search('hybrid_docs', 'embedding', %s, %s, 5)")
        found = conn.execute(statement, ([float(x) for x in query], "vector search")).fetchall()
    # Reciprocal rank fusion of pylance's two result lists gives the same ranking.
    nearest = exact_ids(dataset, query, 5)
    text = dataset.to_table(columns=["id"], limit=5, full_text_query=__import__(
        "lance.query", fromlist=["MatchQuery"]).MatchQuery("vector search", "body"))
    text = text["id"].to_pylist()
    fused = {}
    for ranking in (nearest, text):
        for rank, row in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + 1.0 / (60 + rank + 1)
    expected = sorted(fused, key=lambda row: -fused[row])[:5]
    assert sorted(row[0] for row in found) == sorted(expected)
    for row, has_distance, has_score in found:
        assert has_distance == (row in nearest) and has_score == (row in text)


def test_row_ids_of_mixed_sizes_bound_by_psycopg_are_taken(server, data):
    # Fragments of 2 rows: row ids past 2^32 beside small ones, which psycopg binds as
    # numeric[] (not int8[]); text and binary results both.
    table = pa.table({"id": pa.array(range(6), pa.int64()),
                      "payload": pa.array([bytes([i]) * 1000 for i in range(6)], pa.binary())})
    dataset = lance.write_dataset(table, str(data / "frags.lance"), max_rows_per_file=2)
    ids = dataset.to_table(columns=["id"], with_row_id=True)["_rowid"].to_pylist()
    wanted = [ids[5], ids[0], ids[3], ids[0]]
    assert max(wanted) > 2**32 and min(wanted) < 2**31
    taken = dataset._take_rows(wanted, columns=["id", "payload"])
    expected = list(zip(taken["id"].to_pylist(), taken["payload"].to_pylist()))
    with psycopg.connect(trust_conninfo(server["pg"]), autocommit=True) as conn:
        for cursor in (conn.cursor(), conn.cursor(binary=True)):
            rows = cursor.execute("SELECT id, payload FROM take('frags', %s)",
                                  (wanted,)).fetchall()
            assert [(row[0], bytes(row[1])) for row in rows] == expected
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="integers from 0"):
            conn.execute("SELECT id FROM take('frags', %s)", ([1.5, 2.0],))
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_sample_rows_are_pylances_take_of_the_same_row_ids(server, data):
    dataset = write_vectors(data, "sampled", 900)
    with psycopg.connect(trust_conninfo(server["pg"]), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT _rowid, id, label FROM sample('sampled', 40, 11)").fetchall()
        again = conn.execute(
            "SELECT _rowid, id, label FROM sample('sampled', 40, 11)").fetchall()
    assert rows == again and len(rows) == 40 and len({row[0] for row in rows}) == 40
    # _rowid is uint64, which the wire sends as numeric.
    taken = dataset._take_rows([int(row[0]) for row in rows], columns=["id", "label"])
    assert [row[1:] for row in rows] == list(zip(taken["id"].to_pylist(),
                                                 taken["label"].to_pylist()))
    # Shuffled, not in table order.
    assert [row[1] for row in rows] != sorted(row[1] for row in rows)
    # Positions are drawn among live rows only: rows pylance deletes are never sampled.
    dataset.delete("id < 300")
    with psycopg.connect(trust_conninfo(server["pg"]), autocommit=True) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM sample('sampled', 2000)")]
    assert sorted(ids) == list(range(300, 900))
