"""Trino's PostgreSQL connector pointed at lancesql: Trino lists the tables and columns through
pgjdbc's catalog queries, then pushes filters, aggregates and joins down as SQL over pgwire.
Results must equal lancesql's own. Trino (installed by scripts/setup.sh) needs Java 24+."""

import glob
import os
import re
import signal
import socket
import subprocess
import time

import psycopg
import pytest
import trino

from conftest import pg_server

CACHE = os.environ.get("LANCESQL_CACHE", os.path.expanduser("~/.cache/lancesql"))
TRINO_HOME = os.path.join(CACHE, "trino", "trino-server-476")


def java_home():
    """A JDK new enough for Trino 476 (24 or newer), from /usr/lib/jvm."""
    for home in sorted(glob.glob("/usr/lib/jvm/*")):
        release = os.path.join(home, "release")
        if not os.path.exists(release):
            continue
        match = re.search(r'JAVA_VERSION="(\d+)', open(release).read())
        if match and int(match.group(1)) >= 24:
            return home
    raise AssertionError("Trino 476 needs a JDK 24 or newer under /usr/lib/jvm; none found")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lancesql(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with pg_server(data, "--pg-auth", "trust") as address:
        yield address


@pytest.fixture(scope="module")
def trino_cursor(lancesql, tmp_path_factory):
    host, port = lancesql
    etc = tmp_path_factory.mktemp("trino-etc")
    var = tmp_path_factory.mktemp("trino-var")
    http_port = free_port()
    (etc / "catalog").mkdir()
    (etc / "node.properties").write_text(
        f"node.environment=test\nnode.id=lancesql-test\nnode.data-dir={var}\n")
    (etc / "jvm.config").write_text(
        "-server\n-Xmx1G\n-XX:+UseG1GC\n-Djdk.attach.allowAttachSelf=true\n")
    (etc / "config.properties").write_text(
        f"coordinator=true\nnode-scheduler.include-coordinator=true\n"
        f"http-server.http.port={http_port}\ndiscovery.uri=http://127.0.0.1:{http_port}\n")
    # Arrays (Lance vectors) are read as Trino arrays rather than left out.
    (etc / "catalog" / "lance.properties").write_text(
        f"connector.name=postgresql\n"
        f"connection-url=jdbc:postgresql://{host}:{port}/lancesql\n"
        f"connection-user=lancesql\npostgresql.array-mapping=AS_ARRAY\n")
    java = java_home()
    env = dict(os.environ, JAVA_HOME=java, PATH=f"{java}/bin:{os.environ['PATH']}")
    log = open(var / "server.log", "w")
    process = subprocess.Popen(
        [os.path.join(TRINO_HOME, "bin", "launcher"), "run", f"--etc-dir={etc}",
         f"--data-dir={var}"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while "SERVER STARTED" not in (var / "server.log").read_text():
            assert process.poll() is None, (var / "server.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "Trino did not start in 180 s"
            time.sleep(1)
        connection = trino.dbapi.connect(host="127.0.0.1", port=http_port, user="test",
                                         catalog="lance", schema="public")
        yield connection.cursor()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def trino_rows(cursor, sql):
    cursor.execute(sql)
    return [tuple(row) for row in cursor.fetchall()]


def lancesql_rows(address, sql):
    host, port = address
    with psycopg.connect(host=host, port=port, dbname="lancesql", user="lancesql",
                         autocommit=True) as connection:
        return connection.execute(sql).fetchall()


def test_trino_lists_tables_and_columns_with_their_types(trino_cursor):
    assert trino_rows(trino_cursor, "SHOW TABLES") == [("products",), ("reviews",)]
    columns = {name: kind for name, kind, *_ in trino_rows(trino_cursor, "DESCRIBE products")}
    # Lance's row-identity columns stay out, as from `SELECT *`.
    assert columns == {
        "id": "bigint", "name": "varchar", "category": "varchar", "description": "varchar",
        "price": "double", "in_stock": "integer", "rating": "real",
        "launched_at": "timestamp(6) with time zone", "embedding": "array(real)",
    }


def test_trino_filtered_aggregate_equals_lancesql(trino_cursor, lancesql):
    sql = ("SELECT category, count(*), sum(price), max(launched_at) FROM products "
           "WHERE price > 10 AND category <> 'toys' GROUP BY category ORDER BY category")
    got = trino_rows(trino_cursor, sql)
    expected = lancesql_rows(lancesql, sql)
    assert len(got) == len(expected) == 5
    for (category, count, total, latest), want in zip(got, expected):
        assert (category, count, latest) == (want[0], want[1], want[3])
        assert total == pytest.approx(want[2], rel=1e-12)


def test_trino_join_and_vectors_equal_lancesql(trino_cursor, lancesql):
    join = ("SELECT p.category, count(*), sum(r.stars) FROM products p "
            "JOIN reviews r ON r.product_id = p.id WHERE r.stars >= 4 "
            "GROUP BY p.category ORDER BY p.category")
    got = trino_rows(trino_cursor, join)
    assert got and got == [tuple(row) for row in lancesql_rows(lancesql, join)]
    vectors = "SELECT id, embedding FROM products WHERE id < 3 ORDER BY id"
    expected = lancesql_rows(lancesql, vectors)
    got = trino_rows(trino_cursor, vectors)
    assert [row[0] for row in got] == [row[0] for row in expected] == [0, 1, 2]
    for (_, vector), (_, want) in zip(got, expected):
        assert vector == pytest.approx(want, rel=1e-6)
