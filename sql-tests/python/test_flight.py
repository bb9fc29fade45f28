"""`lancesql serve` over Arrow Flight SQL: the real binary on 127.0.0.1 port 0, driven by the ADBC
Flight SQL driver from PyPI and by pyarrow.flight directly. Results are compared with the
embedded shell's Arrow output over the same data root; ingested tables are read back by
pylance."""

import datetime
import subprocess
import threading

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import lance
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import served, sql_arrow
from test_pgwire_access import write_private


@pytest.fixture
def server(data):
    """A server over `data` (with the demo tables) whose Flight SQL needs no login; yields the
    Flight SQL URI."""
    with served(data, "--pg-auth", "trust") as addresses:
        host, port = addresses["flight"]
        yield f"grpc://{host}:{port}"


def query(uri, sql, parameters=None, **connect):
    with flight_sql.connect(uri, **connect) as conn, conn.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetch_arrow_table()


def test_query_results_equal_the_embedded_engines(server, data):
    for sql in [
        "SELECT * FROM products ORDER BY id",
        "SELECT * FROM reviews ORDER BY 1",
        "SELECT category, count(*) AS n, avg(price) AS mean FROM products "
        "GROUP BY category ORDER BY category",
    ]:
        expected = sql_arrow(data, sql)
        got = query(server, sql)
        assert got.schema.names == expected.schema.names, sql
        assert got.cast(expected.schema).equals(expected), sql


def test_every_common_type_arrives_as_arrow(server):
    table = query(
        server,
        "SELECT 1::int AS i, 2::bigint AS b, 2.5::double AS f, CAST(1.5 AS REAL) AS r, "
        "'x' AS s, true AS t, DATE '2024-01-02' AS d, TIMESTAMP '2024-01-02 03:04:05' AS ts, "
        "CAST(1.25 AS DECIMAL(10,2)) AS n, X'0102' AS by, [1.0, 2.0] AS v, NULL::int AS z",
    )
    assert [str(field.type) for field in table.schema] == [
        "int32", "int64", "double", "float", "string", "bool", "date32[day]",
        "timestamp[ns]", "decimal128(10, 2)", "binary", "list<item: double>", "int32"]
    assert table.to_pylist() == [{
        "i": 1, "b": 2, "f": 2.5, "r": 1.5, "s": "x", "t": True,
        "d": datetime.date(2024, 1, 2), "ts": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "n": __import__("decimal").Decimal("1.25"), "by": b"\x01\x02", "v": [1.0, 2.0],
        "z": None}]


def test_parameters_including_vectors_and_row_ids(server):
    with flight_sql.connect(server) as conn, conn.cursor() as cur:
        seen = []
        for wanted in (1, 2, 5):
            cur.execute("SELECT id FROM products WHERE id = $1", (wanted,))
            seen.append(cur.fetchone()[0])
        assert seen == [1, 2, 5]
        # Python lists bind as Arrow lists: a float query vector, int64 row ids.
        cur.execute("SELECT $1 AS vector", ([0.5, 1.0, 2.0],))
        assert cur.fetch_arrow_table().column(0).to_pylist() == [[0.5, 1.0, 2.0]]
        cur.execute("SELECT id FROM products WHERE array_has($1, id) ORDER BY id", ([3, 1, 4],))
        assert [row[0] for row in cur.fetchall()] == [1, 3, 4]


def test_settings_persist_in_the_session_and_errors_keep_it_serving(server):
    with flight_sql.connect(server) as conn, conn.cursor() as cur:
        cur.execute("SET lance.fragment_readahead = 7")
        cur.execute("SHOW lance.fragment_readahead")
        assert cur.fetchall()[0][-1] == "7"
        with pytest.raises(adbc_driver_manager.ProgrammingError, match="no_such_table"):
            cur.execute("SELECT * FROM no_such_table")
        with pytest.raises(adbc_driver_manager.Error, match="(?i)syntax|expected"):
            cur.execute("SELEC 1")
        cur.execute("SELECT 1 AS still_serving")
        assert cur.fetchall() == [(1,)]


def test_a_repeated_query_plans_afresh_after_other_writers_and_settings(server, data):
    """A session reuses a query's plan across calls (GetFlightInfo, DoGet, executions of one
    prepared statement) only while planning again would give the same plan."""
    path = f"{data}/repeated.lance"
    lance.write_dataset(pa.table({"id": [1, 2]}), path)
    sql = "SELECT * FROM repeated ORDER BY id"
    with flight_sql.connect(server) as conn, conn.cursor() as cur:
        cur.execute(sql)
        assert cur.fetchall() == [(1,), (2,)]
        # Another process appends, then replaces the table with other columns.
        lance.write_dataset(pa.table({"id": [3]}), path, mode="append")
        cur.execute(sql)
        assert cur.fetchall() == [(1,), (2,), (3,)]
        lance.write_dataset(pa.table({"id": [9], "name": ["new"]}), path, mode="overwrite")
        cur.execute(sql)
        assert cur.fetch_arrow_table().to_pylist() == [{"id": 9, "name": "new"}]
        # A setting that changes how the statement is planned: unquoted names kept as written.
        cur.execute("SELECT ID FROM repeated")
        assert cur.fetchall() == [(9,)]
        cur.execute("SET datafusion.sql_parser.enable_ident_normalization = false")
        with pytest.raises(adbc_driver_manager.Error, match="ID"):
            cur.execute("SELECT ID FROM repeated")


def test_metadata_calls(server):
    with flight_sql.connect(server) as conn:
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "lancesql"
        assert info["driver_name"] == "ADBC Flight SQL Driver - Go"
        for depth in ["catalogs", "db_schemas", "tables", "columns", "all"]:
            objects = conn.adbc_get_objects(depth=depth).read_all().to_pylist()
            (ours,) = [catalog for catalog in objects if catalog["catalog_name"] == "lancesql"]
            if depth == "catalogs":
                continue
            schemas = {schema["db_schema_name"]: schema for schema in ours["catalog_db_schemas"]}
            assert "public" in schemas, depth
            if depth == "db_schemas":
                continue
            tables = {t["table_name"]: t for t in schemas["public"]["db_schema_tables"]}
            assert {"products", "reviews"} <= set(tables), depth
            assert tables["products"]["table_type"] == "TABLE"
            if depth in ("columns", "all"):
                columns = [c["column_name"] for c in tables["products"]["table_columns"]]
                assert columns[:2] == ["id", "name"], columns
        products = conn.adbc_get_table_schema("products")
        assert products.names[:2] == ["id", "name"]
        assert set(conn.adbc_get_table_types()) == {"TABLE", "VIEW", "SYSTEM TABLE"}


def test_ingest_creates_appends_and_replaces_read_back_by_pylance(server, data):
    first = pa.table({"id": pa.array([1, 2], pa.int64()), "label": ["a", "b"],
                      "v": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32(), 2))})
    more = pa.table({"id": pa.array([3], pa.int64()), "label": pa.array([None], pa.string()),
                     "v": pa.array([[5.0, 6.0]], pa.list_(pa.float32(), 2))})
    uri = str(data / "landed.lance")
    with flight_sql.connect(server) as conn, conn.cursor() as cur:
        assert cur.adbc_ingest("landed", first, mode="create") == 2
        assert lance.dataset(uri).to_table().equals(first)
        with pytest.raises(adbc_driver_manager.Error, match="already exists"):
            cur.adbc_ingest("landed", first, mode="create")
        assert cur.adbc_ingest("landed", more, mode="append") == 1
        assert lance.dataset(uri).to_table().sort_by("id").equals(
            pa.concat_tables([first, more]))
        with pytest.raises(adbc_driver_manager.Error, match="does not exist"):
            cur.adbc_ingest("not_there", more, mode="append")
        assert not (data / "not_there.lance").exists()
        replaced = pa.table({"other": ["x", "y", "z"]})
        assert cur.adbc_ingest("landed", replaced, mode="replace") == 3
        assert lance.dataset(uri).to_table().equals(replaced)
        assert cur.adbc_ingest("created_or_appended", more, mode="create_append") == 1
        assert cur.adbc_ingest("created_or_appended", more, mode="create_append") == 1
        cur.execute("SELECT count(*) FROM created_or_appended")
        assert cur.fetchone()[0] == 2
    # Every ingest was one commit: create, append, replace.
    assert len(lance.dataset(uri).versions()) == 3



def test_a_long_ingest_is_written_in_chunks_in_order_as_one_commit(server, data):
    """An ingest longer than lance.max_rows_per_file is written as data files of that many rows
    (several writers at once), in the order the batches came, as one version."""
    rows = pa.table({"id": pa.array(range(12_500), pa.int64()),
                     "name": [f"n{i}" for i in range(12_500)]})
    uri = str(data / "chunked.lance")
    with flight_sql.connect(server) as conn, conn.cursor() as cur:
        cur.execute("SET lance.max_rows_per_file = 3000")
        batches = pa.RecordBatchReader.from_batches(rows.schema,
                                                    rows.to_batches(max_chunksize=1000))
        assert cur.adbc_ingest("chunked", batches, mode="create") == 12_500
    dataset = lance.dataset(uri)
    assert dataset.version == 1
    assert [f.count_rows() for f in dataset.get_fragments()] == [3000] * 4 + [500]
    assert dataset.to_table().equals(rows)

def test_a_failed_ingest_leaves_the_table_as_it_was(server, data):
    uri = str(data / "kept.lance")
    with flight_sql.connect(server) as conn, conn.cursor() as cur:
        cur.adbc_ingest("kept", pa.table({"id": pa.array([1], pa.int64())}), mode="create")
        for wrong, says in [(pa.table({"id": ["not a number"]}), "not a number"),
                            (pa.table({"id": [2], "extra": [1]}), "no column 'extra'")]:
            with pytest.raises(adbc_driver_manager.Error, match=says):
                cur.adbc_ingest("kept", wrong, mode="append")
        cur.execute("SELECT id FROM kept")
        assert cur.fetchall() == [(1,)]
    assert len(lance.dataset(uri).versions()) == 1


def flight_sql_command(name, fields):
    """A Flight SQL command as protobuf `Any`, from (number, wire value) fields, so pyarrow.flight
    can speak Flight SQL without a Flight SQL library."""
    def varint(value):
        out = bytearray()
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    def field(number, value):
        if isinstance(value, int):
            return varint(number << 3) + varint(value)
        value = value.encode() if isinstance(value, str) else value
        return varint(number << 3 | 2) + varint(len(value)) + value

    body = b"".join(field(number, value) for number, value in fields)
    type_url = f"type.googleapis.com/arrow.flight.protocol.sql.{name}"
    return field(1, type_url) + field(2, body)


def test_pyarrow_flight_get_info_do_get_and_do_put(server, data):
    client = flight.FlightClient(server)
    command = flight_sql_command("CommandStatementQuery", [(1, "SELECT id, name FROM products "
                                                              "WHERE id < 3 ORDER BY id")])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
    assert info.schema.names == ["id", "name"]
    (endpoint,) = info.endpoints
    table = client.do_get(endpoint.ticket).read_all()
    assert table.column("id").to_pylist() == [0, 1, 2]
    # Bulk ingest by DoPut: CommandStatementIngest with if_not_exist=CREATE, if_exists=FAIL.
    options = b"\x08\x01\x10\x01"
    ingest = flight_sql_command("CommandStatementIngest", [(1, options), (2, "by_do_put")])
    rows = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
    writer, reader = client.do_put(flight.FlightDescriptor.for_command(ingest), rows.schema)
    writer.write_table(rows)
    writer.done_writing()
    reply = reader.read()
    writer.close()
    assert reply is not None and reply.to_pybytes() == b"\x08\x03"  # DoPutUpdateResult(3)
    assert lance.dataset(str(data / "by_do_put.lance")).to_table().equals(rows)


def make_certificate(folder):
    """A self-signed certificate for localhost (gRPC clients check the subject alternative
    name), and its key readable by its owner only."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=120,
    )
    key.chmod(0o600)
    return cert, key


def test_logins_tokens_and_tls(data, tmp_path):
    users = write_private(tmp_path / "users", "alice:s3cret\n")
    cert, key = make_certificate(tmp_path)
    args = ["--pg-users-file", str(users), "--flight-tls-cert", str(cert),
            "--flight-tls-key", str(key)]
    with served(data, *args) as addresses:
        host, port = addresses["flight"]
        uri = f"grpc+tls://localhost:{port}"
        tls = {"adbc.flight.sql.client_option.tls_root_certs": cert.read_text()}
        login = {"username": "alice", "password": "s3cret"}
        table = query(uri, "SELECT count(*) AS n FROM products", db_kwargs={**tls, **login})
        assert table.column("n")[0].as_py() > 0
        for wrong in [{"username": "alice", "password": "wrong"},
                      {"username": "nobody", "password": "s3cret"}, {}]:
            with pytest.raises(adbc_driver_manager.Error, match="(?i)unauthenticated|password|token"):
                query(uri, "SELECT 1", db_kwargs={**tls, **wrong})
        # Plaintext is not served on a TLS listener.
        with pytest.raises(adbc_driver_manager.Error):
            query(f"grpc://{host}:{port}", "SELECT 1", db_kwargs=login)
        # pyarrow.flight: a call without the token, then with a forged one.
        client = flight.FlightClient(uri, tls_root_certs=cert.read_bytes())
        command = flight_sql_command("CommandStatementQuery", [(1, "SELECT 1")])
        descriptor = flight.FlightDescriptor.for_command(command)
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.get_flight_info(descriptor)
        forged = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer forged")])
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.get_flight_info(descriptor, forged)
        token = client.authenticate_basic_token("alice", "s3cret")
        info = client.get_flight_info(descriptor, flight.FlightCallOptions(headers=[token]))
        assert info.schema.names == ["Int64(1)"]


def test_misconfigured_flight_refuses_to_start_and_writes_nothing(data, tmp_path):
    from conftest import run
    cert, key = make_certificate(tmp_path)
    key.chmod(0o644)
    for args, says in [
        (["--flight-tls-cert", str(cert)], "both a certificate and a key"),
        (["--flight-tls-cert", str(cert), "--flight-tls-key", str(key)], "chmod 600"),
        (["--flight-auth", "password"], "need at least one user"),
        (["--flight-listen", "0.0.0.0:0"], "loopback addresses only"),
    ]:
        result = run(["--data", str(data), "serve", "--pg-listen", "127.0.0.1:0", "--pg-auth",
                      "trust", "--demo-if-empty", *args], check=False)
        assert result.returncode != 0 and says in result.stderr, (args, result.stderr)
    assert not any(data.iterdir())


def test_a_cancelled_fetch_frees_the_server(server):
    """ADBC's cancel stops a long fetch; the server keeps answering."""
    with flight_sql.connect(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT value FROM generate_series(1, 10000000000) AS t(value)")
        reader = cur.fetch_record_batch()
        reader.read_next_batch()
        threading.Timer(0.2, cur.adbc_cancel).start()
        with pytest.raises(Exception, match="(?i)cancel"):
            while True:
                reader.read_next_batch()
    assert query(server, "SELECT 3 AS n").column("n").to_pylist() == [3]


def test_go_database_sql_driver(server, data, tmp_path):
    """arrow-go's Flight SQL `database/sql` driver (sql-tests/clients/go, built with the Go toolchain
    scripts/setup.sh checks for): a query, a prepared statement run with two values, and a
    missing table's error, against the embedded engine's answers."""
    import json
    import pathlib
    import shutil

    go = shutil.which("go") or "/usr/local/go/bin/go"
    source = pathlib.Path(__file__).resolve().parents[1] / "clients" / "go"
    binary = tmp_path / "flightsql-client"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=source, check=True, timeout=900)
    dsn = server.replace("grpc://", "flightsql://") + "?timeout=30s"
    result = subprocess.run([str(binary), dsn], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    expected = sql_arrow(data, "SELECT id, name FROM products WHERE id < 3 ORDER BY id")
    assert got["query"] == [[row["id"], row["name"]] for row in expected.to_pylist()]
    assert got["prepared"] == [[3, 4], [3, 5], [7, 8], [7, 9]]
    assert "NotFound" in got["error"] and "no_such_table" in got["error"]


def test_flight_sql_jdbc_driver(server, data, tmp_path):
    """The Arrow Flight SQL JDBC driver from Maven Central (what DBeaver and DataGrip use), run
    with java: DatabaseMetaData, a query and a PreparedStatement with a `?` parameter."""
    import os
    import pathlib

    clients = pathlib.Path(__file__).resolve().parents[1] / "clients"
    cache = pathlib.Path(os.environ.get("LANCESQL_CACHE", pathlib.Path.home() / ".cache/lancesql"))
    jar = cache / "jdbc" / "flight-sql-jdbc-driver-18.3.0.jar"
    subprocess.run(["javac", "-d", str(tmp_path), str(clients / "JdbcProbe.java")],
                   check=True, timeout=120)
    url = server.replace("grpc://", "jdbc:arrow-flight-sql://") + "?useEncryption=false"
    result = subprocess.run(
        ["java", "--add-opens=java.base/java.nio=ALL-UNNAMED", "-cp", f"{jar}:{tmp_path}",
         "JdbcProbe", url],
        capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and "ERR" not in result.stdout, result.stdout + result.stderr
    assert lines[0] == "product lancesql 0.1.0"
    assert {"table public.products TABLE", "table public.reviews TABLE"} <= set(lines)
    assert "column id BIGINT -5 nullable=0" in lines
    assert "column embedding ARRAY 2003 nullable=1" in lines
    expected = sql_arrow(data, "SELECT id, name, price FROM products WHERE id < 3 ORDER BY id")
    count = sql_arrow(data, "SELECT count(*) AS n FROM products").column("n")[0].as_py()
    assert f"count {count}" in lines
    assert [line for line in lines if line.startswith("row ")] == [
        f"row {r['id']} {r['name']} {r['price']}" for r in expected.to_pylist()]
