"""`lancesql serve`: the real binary on 127.0.0.1 port 0, driven by real Postgres clients (psycopg 3
and psql). Results are compared with the embedded shell's over the same data root."""

import os
import subprocess
import threading

import psycopg
import pytest

from conftest import pg_server, sql_json, trust_conninfo


@pytest.fixture
def server(data):
    """A running server over `data` (with the demo tables), trusting loopback logins; yields its
    connection string."""
    with pg_server(data, "--pg-auth", "trust") as address:
        yield trust_conninfo(address)


def rows(conninfo, sql, params=None, binary=False):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        with conn.cursor(binary=binary) as cur:
            cur.execute(sql, params)
            return cur.fetchall()


def test_queries_match_the_embedded_engine(server, data):
    sql = "SELECT id, name, price FROM products WHERE price > 20 ORDER BY id"
    expected = [tuple(row.values()) for row in sql_json(data, sql)]
    got = rows(server, sql)
    assert got and len(got) == len(expected)
    assert [(r[0], r[1]) for r in got] == [(r[0], r[1]) for r in expected]
    assert [float(r[2]) for r in got] == [float(r[2]) for r in expected]


def test_parameters_bind_in_text_and_binary(server):
    sql = "SELECT id, name FROM products WHERE id = %s"
    text = rows(server, sql, (3,))
    binary = rows(server, sql, (3,), binary=True)
    assert text == binary and len(text) == 1 and text[0][0] == 3
    # The same prepared statement, executed with other values.
    with psycopg.connect(server, autocommit=True) as conn:
        with conn.cursor() as cur:
            seen = []
            for wanted in (1, 2, 5):
                cur.execute("SELECT id FROM products WHERE id = %s", (wanted,), prepare=True)
                seen.append(cur.fetchone()[0])
    assert seen == [1, 2, 5]


def test_a_repeated_query_plans_afresh_after_other_writers_and_settings(server, data):
    """Drivers send a parameterised query's text again for every execution (psycopg, unnamed,
    before it prepares a named statement), and scripts and dashboards send the same simple
    query again; the session reuses the plan only while planning again would give the same
    one."""
    import lance
    import pyarrow as pa

    path = f"{data}/repeated.lance"
    lance.write_dataset(pa.table({"id": [1, 2]}), path)
    sql = "SELECT * FROM repeated WHERE id >= %s ORDER BY id"
    with psycopg.connect(server, autocommit=True, prepare_threshold=None) as conn:
        assert conn.execute(sql, (0,)).fetchall() == [(1,), (2,)]
        assert conn.execute(sql, (2,)).fetchall() == [(2,)]
        # Another process appends, then replaces the table with other columns.
        lance.write_dataset(pa.table({"id": [3]}), path, mode="append")
        assert conn.execute(sql, (0,)).fetchall() == [(1,), (2,), (3,)]
        lance.write_dataset(pa.table({"id": [9], "name": ["new"]}), path, mode="overwrite")
        cursor = conn.execute(sql, (0,))
        assert [column.name for column in cursor.description] == ["id", "name"]
        assert cursor.fetchall() == [(9, "new")]
        # A setting that changes how the statement is planned: unquoted names kept as written.
        assert conn.execute("SELECT ID FROM repeated WHERE id > %s", (0,)).fetchall() == [(9,)]
        conn.execute("SET datafusion.sql_parser.enable_ident_normalization = false")
        with pytest.raises(psycopg.Error, match="ID"):
            conn.execute("SELECT ID FROM repeated WHERE id > %s", (0,))
    # The simple protocol (psycopg's client-side binding) reuses a repeated text on the same
    # terms.
    with psycopg.connect(server, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        simple = "SELECT * FROM repeated ORDER BY id"
        assert conn.execute(simple).fetchall() == [(9, "new")]
        assert conn.execute(simple).fetchall() == [(9, "new")]
        lance.write_dataset(pa.table({"id": [10], "name": ["newer"]}), path, mode="append")
        assert conn.execute(simple).fetchall() == [(9, "new"), (10, "newer")]
        lance.write_dataset(pa.table({"id": [11]}), path, mode="overwrite")
        cursor = conn.execute(simple)
        assert [column.name for column in cursor.description] == ["id"]
        assert cursor.fetchall() == [(11,)]


def test_common_types_round_trip(server):
    (row,) = rows(
        server,
        "SELECT 1::bigint AS i, 2.5::double AS f, 'x' AS t, true AS b, DATE '2024-01-02' AS d, "
        "TIMESTAMP '2024-01-02 03:04:05' AS ts, [1, 2, 3] AS l",
        binary=True,
    )
    import datetime

    assert row[:5] == (1, 2.5, "x", True, datetime.date(2024, 1, 2))
    assert row[5] == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert list(row[6]) == [1, 2, 3]


def test_errors_carry_the_engine_sqlstate_and_the_connection_goes_on(server):
    with psycopg.connect(server, autocommit=True) as conn:
        for sql, error in [
            ("SELECT * FROM no_such_table", psycopg.errors.UndefinedTable),
            ("SELECT nope FROM products", psycopg.errors.UndefinedColumn),
            ("SELEC 1", psycopg.errors.SyntaxError),
            ("SELECT 1 / 0", psycopg.errors.DivisionByZero),
            ("SELECT 9223372036854775807 + 1", psycopg.errors.NumericValueOutOfRange),
        ]:
            with pytest.raises(error):
                conn.execute(sql)
            assert conn.execute("SELECT 42").fetchone() == (42,)


def test_transactions_settings_and_commands(server):
    # psycopg's default opens a transaction with BEGIN and ends it with COMMIT.
    with psycopg.connect(server) as conn:
        conn.execute("SET lance.fragment_readahead = 2")
        assert conn.execute("SHOW lance.fragment_readahead").fetchone() == (
            "lance.fragment_readahead", "2")
        created = conn.execute("CREATE TABLE copied AS SELECT * FROM products WHERE id < 4")
        # As Postgres reports CREATE TABLE AS.
        assert created.statusmessage == "SELECT 4"
        conn.commit()
    assert rows(server, "SELECT count(*) FROM copied") == [(4,)]
    with psycopg.connect(server, autocommit=True) as conn:
        cur = conn.execute("DROP TABLE copied")
        assert cur.statusmessage == "DROP TABLE"


def test_psql_runs_scripts_with_several_statements(server, tmp_path):
    script = tmp_path / "script.sql"
    script.write_text(
        "SELECT count(*) AS n FROM products;\n"
        "SELECT 1 AS a; SELECT 2 AS b;\n"
        "EXPLAIN SELECT id FROM products WHERE id = 1;\n"
    )
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    result = subprocess.run(
        ["psql", server, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", str(script)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    count = sql_json_count(server)
    assert lines[:3] == [str(count), "1", "2"]
    assert any("LanceScan" in line and "id = Int64(1)" in line for line in lines)
    failed = subprocess.run(
        ["psql", server, "-X", "-v", "ON_ERROR_STOP=1", "-c", "SELECT * FROM nope"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert failed.returncode != 0 and "does not exist" in failed.stderr


def sql_json_count(conninfo):
    return rows(conninfo, "SELECT count(*) FROM products")[0][0]


def test_a_cancel_request_stops_the_query_not_the_server(server):
    with psycopg.connect(server, autocommit=True) as conn:
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute(
                    "SELECT count(*) FROM generate_series(1, 2000000000) WHERE value % 7 = 3")
        finally:
            timer.cancel()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def psql(conninfo, *commands):
    args = ["psql", conninfo, "-X", "-v", "ON_ERROR_STOP=1"]
    for command in commands:
        args += ["-c", command]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_psql_catalog_commands(server):
    tables = psql(server, "\\dt")
    assert "public | products | table" in tables and "public | reviews  | table" in tables
    described = psql(server, "\\d products")
    assert 'Table "public.products"' in described
    assert any(line.split("|")[0].strip() == "id" and "bigint" in line
               for line in described.splitlines())
    assert "lancesql" in psql(server, "\\l")
    assert "public" in psql(server, "\\dn")
    # No user-defined functions, as on a fresh Postgres database.
    functions = psql(server, "\\df")
    assert "List of functions" in functions and "(0 rows)" in functions
    expanded = psql(server, "\\x", "SELECT id, name FROM products WHERE id = 0")
    assert "-[ RECORD 1 ]" in expanded and "name | classic novel 0" in expanded


def test_tables_written_by_another_process_appear_without_reconnecting(server, data):
    import time

    import lance
    import pyarrow as pa

    listed = "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r'"

    def has_later():
        return ("later",) in conn.execute(listed).fetchall()

    with psycopg.connect(server, autocommit=True) as conn:
        assert not has_later()
        lance.write_dataset(pa.table({"x": [1, 2]}), str(data / "later.lance"))
        # Names resolve afresh for every statement; listings within the listing cache's life.
        assert conn.execute("SELECT count(*) FROM later").fetchone() == (2,)
        deadline = time.monotonic() + 15
        while not has_later():
            assert time.monotonic() < deadline, "pg_class never listed the new table"
            time.sleep(0.25)


def test_the_readme_run_command_serves_demo_data_and_prints_connect_lines(tmp_path):
    """`scripts/dev run`, as the README gives it (with port 0 so tests can run side by side)."""
    import pathlib
    import shlex
    import signal
    import sys

    repo = pathlib.Path(__file__).resolve().parents[2]
    env = dict(os.environ, LANCESQL_DATA=str(tmp_path / "data"))
    process = subprocess.Popen(
        ["bash", str(repo / "scripts" / "dev"), "run", "--pg-listen", "127.0.0.1:0",
         "--flight-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=repo,
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        assert "Postgres wire protocol on 127.0.0.1:" in lines[0], lines
        psql_line, python_line = lines[1].strip(), lines[2].strip()
        assert psql_line.startswith("psql ") and python_line.startswith("python -c ")
        # The printed lines work as pasted.
        result = subprocess.run(shlex.split(psql_line) + ["-X", "-A", "-t", "-c",
                                                          "SELECT count(*) FROM products"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and int(result.stdout) > 0, result.stderr
        python = shlex.split(python_line)
        python[0] = sys.executable
        result = subprocess.run(python, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() == "[(1,)]", result.stderr
        # Then Arrow Flight SQL's address and its ADBC line, which works as pasted too.
        line = process.stdout.readline()
        while "Arrow Flight SQL on 127.0.0.1:" not in line:
            assert line, "no Flight SQL line"
            line = process.stdout.readline()
        adbc = shlex.split(process.stdout.readline().strip())
        assert adbc[:2] == ["python", "-c"], adbc
        adbc[0] = sys.executable
        result = subprocess.run(adbc, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() == "[(1,)]", result.stderr
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


def test_asyncpg_reads_through_portals_with_row_limits(server):
    """asyncpg always uses the extended protocol with binary results; its cursors Execute a
    portal with a row limit again and again (PortalSuspended until the last rows)."""
    import asyncio

    import asyncpg

    params = dict(item.split("=", 1) for item in server.split())

    async def read():
        conn = await asyncpg.connect(host=params["host"], port=int(params["port"]),
                                     user="lancesql", database="lancesql", ssl=False)
        try:
            expected = await conn.fetch("SELECT id, name, price FROM products ORDER BY id")
            async with conn.transaction():
                cursor = conn.cursor("SELECT id, name, price FROM products ORDER BY id",
                                     prefetch=7)
                streamed = [record async for record in cursor]
                cursor = await conn.cursor("SELECT id FROM products WHERE id > $1 ORDER BY id", 10)
                first = await cursor.fetch(5)
                second = await cursor.fetch(5)
            return expected, streamed, first, second
        finally:
            await conn.close()

    expected, streamed, first, second = asyncio.run(read())
    assert len(expected) > 100 and streamed == expected
    assert [r["id"] for r in first] == [11, 12, 13, 14, 15]
    assert [r["id"] for r in second] == [16, 17, 18, 19, 20]


def test_asyncpg_binds_arrays_and_reads_settings(server):
    """asyncpg learns array codecs from its type introspection query (answered with an
    equivalent, see engine/compat.rs), binding `int8[]` row ids and `float4[]` vectors; its
    `current_setting('jit')` probe gets Postgres' 42704, which it expects."""
    import asyncio

    import asyncpg

    params = dict(item.split("=", 1) for item in server.split())

    async def run():
        conn = await asyncpg.connect(host=params["host"], port=int(params["port"]),
                                     user="analyst", database="lancesql", ssl=False)
        try:
            chosen = await conn.fetch(
                "SELECT id FROM products WHERE id = ANY($1::bigint[]) ORDER BY id", [7, 3, 5])
            vector = await conn.fetchval("SELECT $1::real[]", [0.5, -1.0, 2.25])
            user = await conn.fetchval("SELECT session_user")
            with pytest.raises(asyncpg.UndefinedObjectError, match='"jit"'):
                await conn.fetchval("SELECT current_setting('jit')")
            path = await conn.fetchval("SELECT current_setting('search_path')")
            return [r["id"] for r in chosen], vector, user, path
        finally:
            await conn.close()

    chosen, vector, user, path = asyncio.run(run())
    assert chosen == [3, 5, 7] and vector == [0.5, -1.0, 2.25]
    assert user == "analyst" and path == '"$user", public'


def test_psql_tab_completes_table_names(server):
    """psql's completion queries (readline, in a terminal) list lancesql's tables."""
    import pexpect

    params = dict(item.split("=", 1) for item in server.split())
    child = pexpect.spawn(
        "psql", ["-X", "-h", params["host"], "-p", params["port"], "-U", "lancesql", "lancesql"],
        encoding="utf-8", timeout=30, env=dict(os.environ, TERM="dumb"))
    try:
        child.expect("lancesql=> ")
        child.send("SELECT count(*) FROM prod\t")
        child.expect("products")
        child.send(";\r")
        child.expect(r"\(1 row\)")
        child.send("\\d revi\t")
        child.expect("reviews")
        child.send("\r")
        child.expect("product_id")
        child.sendline("\\q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_server_side_cursors(server, binary):
    """psycopg's named cursors: DECLARE with bound parameters, Describe of the cursor as a
    portal, FETCH FORWARD n in text or binary, CLOSE; WITH HOLD cursors outlive the commit."""
    query = "SELECT id, name, price FROM products WHERE id >= %s ORDER BY id"
    expected = rows(server, query, (3,))
    with psycopg.connect(server) as conn:
        with conn.cursor("lines", binary=binary) as cur:
            cur.itersize = 7
            cur.execute(query, (3,))
            assert [column.name for column in cur.description] == ["id", "name", "price"]
            first = cur.fetchmany(5)
            rest = list(cur)
        assert first + rest == expected and len(expected) > 20
        conn.commit()
        with conn.cursor("held", withhold=True, binary=binary) as cur:
            cur.execute("SELECT id FROM products WHERE id < %s ORDER BY id", (4,))
            conn.commit()
            assert cur.fetchall() == [(0,), (1,), (2,), (3,)]
        conn.commit()
        with pytest.raises(psycopg.errors.InvalidCursorName):
            conn.execute("FETCH 1 FROM lines")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_copy_to_stdout_in_text_csv_and_binary(server, tmp_path):
    query = "SELECT id, name, price FROM products WHERE id < 6 ORDER BY id"
    expected = rows(server, query)
    # Text and CSV through psql, as a user types them.
    text = psql(server, f"COPY ({query}) TO STDOUT")
    assert [line.split("\t") for line in text.splitlines()] == [
        [str(i), n, str(p)] for i, n, p in expected]
    csv_out = psql(server, "COPY products (id, name) TO STDOUT WITH (FORMAT csv, HEADER)")
    lines = csv_out.splitlines()
    assert lines[0] == "id,name" and len(lines) == 1 + sql_json_count(server)
    special = psql(server, "COPY (SELECT 1 AS a, NULL AS b, 'x,y' AS c, E'tab\\there' AS d) "
                           "TO STDOUT WITH (FORMAT csv, HEADER)")
    assert special.splitlines() == ["a,b,c,d", '1,,"x,y",tab\there']
    escaped = psql(server, "COPY (SELECT NULL AS b, E'tab\\there' AS d) TO STDOUT")
    assert escaped.splitlines() == ["\\N\ttab\\there"]
    # psql's \copy writes the client's file through COPY ... TO STDOUT.
    local = tmp_path / "local.csv"
    psql(server, f"\\copy ({query}) TO '{local}' WITH (FORMAT csv)")
    assert local.read_text().splitlines()[0] == f"{expected[0][0]},{expected[0][1]},{expected[0][2]}"
    # Binary, as drivers read bulk results.
    with psycopg.connect(server, autocommit=True) as conn:
        cur = conn.cursor()
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "float8"])
            binary = list(copy.rows())
        assert binary == [(i, n, float(p)) for i, n, p in expected]
        with cur.copy("COPY (SELECT id FROM products WHERE id < 0) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(["int8"])
            assert list(copy.rows()) == []
        for statement, error in [
            ("COPY products TO '/tmp/lancesql-copy-out'", psycopg.errors.FeatureNotSupported),
            ("COPY products TO STDOUT (FORMAT parquet)", psycopg.errors.InvalidParameterValue),
            ("COPY products TO STDOUT (FORMAT text, HEADER)", psycopg.errors.InvalidParameterValue),
        ]:
            with pytest.raises(error):
                conn.execute(statement)
        assert not os.path.exists("/tmp/lancesql-copy-out")
        assert conn.execute("SELECT 1").fetchone() == (1,)



def test_a_long_copy_is_written_in_chunks_in_order_as_one_commit(server, data):
    """A COPY longer than lance.max_rows_per_file is written as data files of that many rows,
    by several writers at once, in the stream's order, as one version; a failure in its last
    chunk leaves no file behind."""
    import lance

    def data_files():
        return sorted(os.listdir(data / "chunked.lance" / "data"))

    with psycopg.connect(server, autocommit=True) as conn:
        cur = conn.cursor()
        conn.execute("CREATE TABLE chunked (id BIGINT NOT NULL, name TEXT)")
        conn.execute("SET lance.max_rows_per_file = 5000")
        with cur.copy("COPY chunked (id, name) FROM STDIN") as copy:
            for i in range(23000):
                copy.write_row((i, f"n{i}"))
        assert cur.rowcount == 23000
        dataset = lance.dataset(str(data / "chunked.lance"))
        assert dataset.version == 2
        assert [f.count_rows() for f in dataset.get_fragments()] == [5000] * 4 + [3000]
        assert dataset.to_table(columns=["id"])["id"].to_pylist() == list(range(23000))
        files = data_files()
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with cur.copy("COPY chunked (id) FROM STDIN") as copy:
                for i in range(23000, 40000):
                    copy.write_row((i,))
                copy.write(b"not-a-number\n")
        assert lance.dataset(str(data / "chunked.lance")).version == 2
        assert data_files() == files
        assert conn.execute("SELECT count(*), max(id) FROM chunked").fetchone() == (23000, 22999)

def test_copy_from_stdin_appends_in_one_commit_or_not_at_all(server, data):
    import lance
    import pyarrow as pa

    uri = str(data / "loads.lance")
    lance.write_dataset(pa.table({"id": pa.array([1], pa.int64()), "name": ["a"],
                                  "score": pa.array([1.5], pa.float64())}), uri)

    def state():
        dataset = lance.dataset(uri)
        return dataset.version, dataset.count_rows()

    # Text format through psql: escapes, \N, a tab inside a value.
    result = subprocess.run(
        ["psql", server, "-X", "-v", "ON_ERROR_STOP=1", "-c", "COPY loads FROM STDIN"],
        input="2\tb\t2.5\n3\t\\N\t\\N\n4\ttab\\there\t4\n", capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 0 and "COPY 3" in result.stdout, result.stderr
    # CSV with a header, quoted delimiters and newlines, and a column list (score is NULL).
    result = subprocess.run(
        ["psql", server, "-X", "-v", "ON_ERROR_STOP=1", "-c",
         "COPY loads (id, name) FROM STDIN WITH (FORMAT csv, HEADER)"],
        input='id,name\n5,"x,y"\n6,"two\nlines"\n7,\n', capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "COPY 3" in result.stdout, result.stderr
    got = rows(server, "SELECT id, name, score FROM loads ORDER BY id")
    assert got == [(1, "a", 1.5), (2, "b", 2.5), (3, None, None), (4, "tab\there", 4.0),
                   (5, "x,y", None), (6, "two\nlines", None), (7, None, None)]
    # pylance reads what the COPYs wrote, one version per COPY.
    version, count = state()
    assert count == 7 and version == 3

    # psycopg's COPY: 20000 rows in many CopyData messages and several batches, one commit.
    with psycopg.connect(server, autocommit=True) as conn:
        cur = conn.cursor()
        with cur.copy("COPY loads (id, name, score) FROM STDIN") as copy:
            for i in range(100, 20100):
                copy.write_row((i, f"n{i}", i / 2))
        assert cur.rowcount == 20000
        assert state() == (version + 1, count + 20000)
        before = state()
        # A bad value in the last row: nothing of the COPY is written.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with cur.copy("COPY loads (id, score) FROM STDIN") as copy:
                for i in range(30000, 39999):
                    copy.write_row((i, 1.0))
                copy.write(b"39999\tnot-a-number\n")
        assert state() == before
        # The client gives up mid-COPY (psycopg sends CopyFail and re-raises): nothing is
        # written either, and the connection goes on.
        with pytest.raises(RuntimeError):
            with cur.copy("COPY loads (id) FROM STDIN") as copy:
                copy.write_row((50000,))
                raise RuntimeError("the client changed its mind")
        assert state() == before
        for statement, error in [
            ("COPY no_such_table FROM STDIN", psycopg.errors.UndefinedTable),
            ("COPY loads (nope) FROM STDIN", psycopg.errors.UndefinedColumn),
            ("COPY new_binary (a) FROM STDIN (FORMAT binary)", psycopg.errors.FeatureNotSupported),
        ]:
            with pytest.raises(error):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM loads").fetchone() == (before[1],)


def test_binary_copy_from_stdin_loads_typed_values_and_vectors(server, data):
    """Binary COPY, as drivers bulk-load: every value in its binary encoding, including
    float4[] into a fixed-size vector column; pylance reads back exactly what was sent."""
    import lance
    import pyarrow as pa

    uri = str(data / "embeddings.lance")
    vector = pa.list_(pa.float32(), 3)
    lance.write_dataset(pa.table({
        "id": pa.array([0], pa.int64()), "label": ["zero"],
        "weight": pa.array([0.0], pa.float32()),
        "vector": pa.array([[0.0, 0.0, 0.0]], vector)}), uri)
    sent = [(i, f"row {i}" if i % 5 else None, i / 4, [i, i + 0.5, -i]) for i in range(1, 20001)]
    with psycopg.connect(server, autocommit=True) as conn:
        cur = conn.cursor()
        with cur.copy("COPY embeddings (id, label, weight, vector) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "float4", "float4[]"])
            for row in sent:
                copy.write_row(row)
        assert cur.rowcount == len(sent)
        table = lance.dataset(uri).to_table().sort_by("id")
        assert lance.dataset(uri).version == 2 and table.num_rows == len(sent) + 1
        assert table["label"].to_pylist()[1:6] == ["row 1", "row 2", "row 3", "row 4", None]
        assert table["vector"].to_pylist()[2] == [2.0, 2.5, -2.0]
        assert table["weight"].to_pylist()[3] == 0.75
        # A vector of the wrong length fails the whole COPY: nothing is committed.
        with pytest.raises(psycopg.Error):
            with cur.copy("COPY embeddings (id, vector) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "float4[]"])
                copy.write_row((1, [1.0, 2.0, 3.0]))
                copy.write_row((2, [1.0, 2.0]))
        assert lance.dataset(uri).version == 2
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone() == (len(sent) + 1,)


def test_copy_from_stdin_creates_a_missing_table_with_the_named_columns(server, data):
    import lance

    result = subprocess.run(
        ["psql", server, "-X", "-v", "ON_ERROR_STOP=1", "-c",
         "COPY fresh (city, population) FROM STDIN WITH (FORMAT csv, HEADER)"],
        input="city,population\nOslo,709000\nBergen,\n", capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 0 and "COPY 2" in result.stdout, result.stderr
    dataset = lance.dataset(str(data / "fresh.lance"))
    assert dataset.version == 1 and dataset.schema.names == ["city", "population"]
    assert rows(server, "SELECT city, CAST(population AS BIGINT) FROM fresh ORDER BY city") == [
        ("Bergen", None), ("Oslo", 709000)]
    # A failed COPY creates nothing: the table does not appear.
    with psycopg.connect(server, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            with conn.cursor().copy("COPY never (a, b) FROM STDIN") as copy:
                copy.write(b"1\t2\n1\t2\t3\n")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM never")
        assert conn.execute("SELECT count(*) FROM fresh").fetchone() == (2,)


def test_vector_columns_read_as_arrays_in_text_and_binary(server, data):
    """Fixed-size-list vectors (Lance's embedding columns) are float4[] on the wire; reading
    one must never cost the connection."""
    import lance
    import pyarrow as pa

    vectors = pa.array([[0.5, 1.0], [2.0, -3.5]], pa.list_(pa.float32(), 2))
    lance.write_dataset(pa.table({"id": pa.array([1, 2], pa.int64()), "v": vectors}),
                        str(data / "vectors.lance"))
    for binary in (False, True):
        assert rows(server, "SELECT id, v FROM vectors ORDER BY id", binary=binary) == [
            (1, [0.5, 1.0]), (2, [2.0, -3.5])]
    # (Postgres would print {0.5,1}: arrow-pg keeps a decimal point on whole floats.)
    assert "{0.5,1.0}" in psql(server, "SELECT v FROM vectors ORDER BY id")


def test_adbc_postgresql_driver(server, data):
    """The ADBC PostgreSQL driver from PyPI: its connect-time type query, queries read through
    binary COPY, parameters, bulk ingest (CREATE TABLE, then binary COPY) read back by pylance,
    and catalog listings down to tables."""
    import adbc_driver_postgresql.dbapi as adbc
    import lance
    import pyarrow as pa

    params = dict(item.split("=", 1) for item in server.split())
    uri = f"postgresql://lancesql@{params['host']}:{params['port']}/lancesql"
    lance.write_dataset(pa.table({
        "id": pa.array([1], pa.int64()), "label": ["a"],
        "v": pa.array([[1.0, 2.0]], pa.list_(pa.float32(), 2))}), str(data / "items.lance"))
    with adbc.connect(uri) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1::int AS i, 2.5::double AS f, 'x' AS s, true AS b, "
                        "DATE '2024-01-02' AS d, TIMESTAMP '2024-01-02 03:04:05' AS ts, "
                        "CAST(1.25 AS DECIMAL(10,2)) AS n, X'0102' AS by")
            import datetime
            assert cur.fetchall() == [(1, 2.5, "x", True, datetime.date(2024, 1, 2),
                                       datetime.datetime(2024, 1, 2, 3, 4, 5), "1.25", b"\x01\x02")]
            cur.execute("SELECT id FROM products WHERE id < $1 ORDER BY id", (3,))
            assert cur.fetchall() == [(0,), (1,), (2,)]
            appended = pa.table({"id": pa.array([2, 3], pa.int64()), "label": ["b", None],
                                 "v": pa.array([[3.0, 4.0], [5.0, 6.0]], pa.list_(pa.float32()))})
            assert cur.adbc_ingest("items", appended, mode="append") == 2
            assert cur.adbc_ingest("fresh_ingest", pa.table({"a": [1, 2], "b": ["x", "y"]}),
                                   mode="create") == 2
            conn.commit()
            cur.execute("SELECT id, label, v FROM items ORDER BY id")
            assert cur.fetch_arrow_table().to_pylist() == [
                {"id": 1, "label": "a", "v": [1.0, 2.0]}, {"id": 2, "label": "b", "v": [3.0, 4.0]},
                {"id": 3, "label": None, "v": [5.0, 6.0]}]
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        (ours,) = [catalog for catalog in objects if catalog["catalog_name"] == "lancesql"]
        (public,) = ours["catalog_db_schemas"]
        tables = {table["table_name"] for table in public["db_schema_tables"]}
        assert {"items", "products", "reviews", "fresh_ingest"} <= tables
        assert conn.adbc_get_table_schema("items").names[:2] == ["id", "label"]
    assert lance.dataset(str(data / "items.lance")).count_rows() == 3
    fresh = lance.dataset(str(data / "fresh_ingest.lance")).to_table()
    assert fresh.to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_transaction_blocks_read_one_snapshot_or_refuse_writes(server, data):
    """REPEATABLE READ and SERIALIZABLE blocks read each table at the version they first read it
    at while pylance appends; writes inside them, or inside READ ONLY blocks, are refused."""
    import lance
    import pyarrow as pa

    uri = str(data / "counted.lance")
    lance.write_dataset(pa.table({"n": pa.array([1, 2], pa.int64())}), uri)
    more = pa.table({"n": pa.array([3], pa.int64())})
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        assert conn.execute("SELECT count(*) FROM counted").fetchone() == (2,)
        lance.write_dataset(more, uri, mode="append")
        assert conn.execute("SELECT count(*), max(n) FROM counted").fetchone() == (2, 2)
        conn.execute("COMMIT")
        assert conn.execute("SELECT count(*) FROM counted").fetchone() == (3,)
        # READ COMMITTED (the default) sees each commit as it lands.
        conn.execute("BEGIN")
        lance.write_dataset(more, uri, mode="append")
        assert conn.execute("SELECT count(*) FROM counted").fetchone() == (4,)
        conn.execute("COMMIT")
        for begin, error in [
            ("BEGIN READ ONLY", psycopg.errors.ReadOnlySqlTransaction),
            ("BEGIN ISOLATION LEVEL SERIALIZABLE", psycopg.errors.FeatureNotSupported),
        ]:
            conn.execute(begin)
            with pytest.raises(error):
                conn.execute("CREATE TABLE copied AS SELECT * FROM counted")
            conn.execute("ROLLBACK")
        assert lance.dataset(uri).count_rows() == 4
        assert not (data / "copied.lance").exists()


def test_duckdb_attaches_lancesql_and_reads_filters_and_joins(server, data):
    """DuckDB 1.5.5 with its postgres extension (from PyPI): ATTACH, the catalog it reads on
    attach, scans in REPEATABLE READ blocks split by ctid ranges (Lance row addresses)."""
    import os
    import shutil

    import duckdb
    import duckdb_extension_postgres

    packaged = os.path.join(os.path.dirname(duckdb_extension_postgres.__file__), "extensions",
                            f"v{duckdb.__version__}", "postgres.duckdb_extension")
    extension = data.parent / "postgres_scanner.duckdb_extension"
    shutil.copy(packaged, extension)
    duck = duckdb.connect()
    duck.execute(f"LOAD '{extension}'")
    duck.execute(f"ATTACH '{server}' AS ls (TYPE postgres, READ_ONLY)")
    tables = {row[2] for row in duck.execute("SHOW ALL TABLES").fetchall() if row[0] == "ls"}
    assert {"products", "reviews"} <= tables
    expected_count = rows(server, "SELECT count(*) FROM products")[0][0]
    assert duck.execute("SELECT count(*) FROM ls.public.products").fetchone() == (expected_count,)
    query = "SELECT id, name FROM {products} WHERE price > 100 ORDER BY id LIMIT 5"
    assert duck.execute(query.format(products="ls.public.products")).fetchall() == rows(
        server, query.format(products="products"))
    join = ("SELECT p.id, count(*) AS n FROM {p} p JOIN {r} r ON r.product_id = p.id "
            "GROUP BY p.id ORDER BY n DESC, p.id LIMIT 5")
    assert duck.execute(join.format(p="ls.public.products", r="ls.public.reviews")).fetchall() == \
        rows(server, join.format(p="products", r="reviews"))


CLIENTS = os.path.join(os.path.dirname(__file__), "..", "clients")
CACHE = os.environ.get("LANCESQL_CACHE", os.path.expanduser("~/.cache/lancesql"))


def test_pgjdbc_metadata_query_and_prepared_statement(server, tmp_path):
    """pgjdbc from Debian (what DBeaver, DataGrip and most JVM tools use), run with java."""
    params = dict(item.split("=", 1) for item in server.split())
    jar = "/usr/share/java/postgresql.jar"
    subprocess.run(["javac", "-d", str(tmp_path), os.path.join(CLIENTS, "JdbcProbe.java")],
                   check=True, timeout=120)
    result = subprocess.run(
        ["java", "-cp", f"{jar}:{tmp_path}", "JdbcProbe",
         f"jdbc:postgresql://{params['host']}:{params['port']}/lancesql"],
        capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and "ERR" not in result.stdout, result.stdout + result.stderr
    assert lines[0] == "product PostgreSQL 16.6"
    assert {"table public.products TABLE", "table public.reviews TABLE"} <= set(lines)
    assert "column id int8 -5 nullable=0" in lines and "column price float8 8 nullable=0" in lines
    expected = rows(server, "SELECT id, name, price FROM products WHERE id < 3 ORDER BY id")
    assert f"count {rows(server, 'SELECT count(*) FROM products')[0][0]}" in lines
    assert [line for line in lines if line.startswith("row ")] == [
        f"row {i} {n} {p}" for i, n, p in expected]


def test_node_postgres(server):
    params = dict(item.split("=", 1) for item in server.split())
    # node-postgres reads timestamps without zone in the local zone.
    env = dict(os.environ, NODE_PATH=os.path.join(CACHE, "node", "node_modules"), TZ="UTC")
    result = subprocess.run(
        ["node", os.path.join(CLIENTS, "node_probe.js"),
         f"postgresql://lancesql@{params['host']}:{params['port']}/lancesql"],
        capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    import json
    count, some, types, error, again = result.stdout.splitlines()
    assert json.loads(count) == [{"n": str(rows(server, "SELECT count(*) FROM products")[0][0])}]
    expected = rows(server, "SELECT id, name, price FROM products WHERE id < 3 ORDER BY id")
    assert json.loads(some) == [{"id": str(i), "name": n, "price": p} for i, n, p in expected]
    assert json.loads(types) == [{"i": 1, "f": 2.5, "b": True, "v": [1.5, 2],
                                  "ts": "2024-01-02T03:04:05.000Z"}]
    assert error == "error 42P01" and json.loads(again) == [{"answer": "42"}]


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_sqlalchemy_inspector_and_pandas(server, driver):
    """SQLAlchemy's PostgreSQL dialect over both drivers: connect-time type lookups, the
    inspector's schema, table and column reflection, and pandas queries with parameters."""
    import pandas as pd
    import sqlalchemy as sa

    params = dict(item.split("=", 1) for item in server.split())
    engine = sa.create_engine(
        f"postgresql+{driver}://lancesql@{params['host']}:{params['port']}/lancesql")
    try:
        inspector = sa.inspect(engine)
        assert "public" in inspector.get_schema_names()
        assert {"products", "reviews"} <= set(inspector.get_table_names())
        columns = {c["name"]: str(c["type"]) for c in inspector.get_columns("products")}
        assert columns["id"] == "BIGINT" and columns["name"] == "TEXT"
        assert columns["price"] == "DOUBLE PRECISION"
        # Types as the wire sends them; the row-identity columns are system columns.
        assert columns["launched_at"] == "TIMESTAMP"
        assert columns["embedding"] == "ARRAY" and "_rowid" not in columns
        frame = pd.read_sql(sa.text("SELECT id, price FROM products WHERE id < :n ORDER BY id"),
                            engine, params={"n": 5})
        assert list(frame["id"]) == [0, 1, 2, 3, 4]
        assert frame["price"].dtype.kind == "f"
        # A table name: the table's columns, read after SQLAlchemy reflects its keys and indices.
        whole = pd.read_sql("reviews", engine)
        assert len(whole) == rows(server, "SELECT count(*) FROM reviews")[0][0]
        assert list(whole.columns) == ["id", "product_id", "stars", "body", "created_at",
                                       "helpful_votes"]
        assert str(whole["created_at"].dtype) == "datetime64[ns, UTC]"
    finally:
        engine.dispose()
