"""Writes and history through real clients, checked against pylance: affected-row counts over
psycopg and ADBC Flight SQL, concurrent writers (several lancesql processes and pylance) losing
no committed row, SIGKILL during a large INSERT leaving all or none of its rows, and pylance
reading the versions, tags, columns and deletions lancesql wrote."""

import random
import signal
import subprocess
import threading
import time

import adbc_driver_flightsql.dbapi as flight_sql
import lance
import psycopg
import pyarrow as pa
import pytest

from conftest import BIN, run, served, sql_json, trust_conninfo


def test_affected_rows_reach_postgres_and_flight_clients(data):
    with served(data, "--pg-auth", "trust") as addresses:
        with psycopg.connect(trust_conninfo(addresses["pg"]), autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute("CREATE TABLE counted (id BIGINT NOT NULL, label TEXT)")
            cur.execute("INSERT INTO counted VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            assert cur.rowcount == 3
            assert cur.statusmessage == "INSERT 0 3"
            cur.execute("INSERT INTO counted (id, label) VALUES (%s, %s)", (4, "d"))
            assert cur.rowcount == 1
            cur.execute("UPDATE counted SET label = upper(label) WHERE id > %s", (2,))
            assert (cur.rowcount, cur.statusmessage) == (2, "UPDATE 2")
            cur.execute("DELETE FROM counted WHERE id = 1")
            assert (cur.rowcount, cur.statusmessage) == (1, "DELETE 1")
            with pytest.raises(psycopg.errors.NotNullViolation):
                cur.execute("INSERT INTO counted (label) VALUES ('no id')")
            # The connection goes on, and the failed statement left nothing behind.
            cur.execute("SELECT id, label FROM counted ORDER BY id")
            assert cur.fetchall() == [(2, "b"), (3, "C"), (4, "D")]
        host, port = addresses["flight"]
        with flight_sql.connect(f"grpc://{host}:{port}") as conn, conn.cursor() as cur:
            cur.execute("UPDATE counted SET label = 'x' WHERE id >= 3")
            assert cur.rowcount == 2
            cur.execute("DELETE FROM counted WHERE label = 'x'")
            assert cur.rowcount == 2
    assert lance.dataset(str(data / "counted.lance")).to_table().to_pylist() == [
        {"id": 2, "label": "b"}
    ]


def test_pylance_reads_what_lancesql_wrote(data):
    run(["--data", str(data), "sql",
         "-c", "CREATE TABLE shared (id BIGINT NOT NULL, score DOUBLE)",
         "-c", "INSERT INTO shared SELECT value, value * 0.5 FROM generate_series(1, 100)",
         "-c", "DELETE FROM shared WHERE id % 10 = 0",
         "-c", "ALTER TABLE shared CREATE TAG cleaned",
         "-c", "UPDATE shared SET score = -1 WHERE id = 1",
         "-c", "ALTER TABLE shared ADD COLUMN twice DOUBLE GENERATED ALWAYS AS (score * 2) STORED"])
    dataset = lance.dataset(str(data / "shared.lance"))
    assert dataset.version == 5  # the tag is no version of its own
    assert dataset.tags.list()["cleaned"]["version"] == 3
    table = dataset.to_table().sort_by("id")
    assert table.num_rows == 90
    assert table.schema.names == ["id", "score", "twice"]
    rows = {row["id"]: row for row in table.to_pylist()}
    assert rows[1] == {"id": 1, "score": -1.0, "twice": -2.0}
    assert rows[7] == {"id": 7, "score": 3.5, "twice": 7.0}
    assert 10 not in rows
    # Old versions through pylance, as lancesql's time travel reads them.
    assert lance.dataset(str(data / "shared.lance"), version="cleaned").count_rows() == 90
    assert lance.dataset(str(data / "shared.lance"), version=2).count_rows() == 100
    history = sql_json(data, "SELECT version, operation FROM system.versions ORDER BY version")
    assert [row["version"] for row in history] == [v["version"] for v in dataset.versions()]


def test_concurrent_writers_lose_no_committed_row(data):
    """Four lancesql processes and pylance append to one table at once, while one lancesql
    process updates and another deletes: every append that reported success is there."""
    run(["--data", str(data), "sql", "-c", "CREATE TABLE busy (id BIGINT NOT NULL, writer TEXT)"])
    committed = []
    lock = threading.Lock()

    def lancesql_writer(writer):
        for batch in range(5):
            first = writer * 1000 + batch * 10
            result = run(["--data", str(data), "sql", "-c",
                          f"INSERT INTO busy SELECT value, 'w{writer}' FROM "
                          f"generate_series({first}, {first + 9})"], check=False)
            if result.returncode == 0:
                with lock:
                    committed.extend(range(first, first + 10))
            else:
                # Only a lost race may fail, and it must say so.
                assert "40001" in result.stderr or "conflict" in result.stderr.lower(), result.stderr

    def pylance_writer():
        for batch in range(5):
            first = 9000 + batch * 10
            ids = list(range(first, first + 10))
            lance.write_dataset(
                pa.table({"id": pa.array(ids, pa.int64()), "writer": ["py"] * 10}),
                str(data / "busy.lance"), mode="append")
            with lock:
                committed.extend(ids)

    def updater():
        for _ in range(3):
            result = run(["--data", str(data), "sql", "-c",
                          "UPDATE busy SET writer = writer || '+' WHERE id % 7 = 0"], check=False)
            assert result.returncode == 0 or "40001" in result.stderr, result.stderr

    threads = [threading.Thread(target=lancesql_writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=pylance_writer), threading.Thread(target=updater)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = sorted(lance.dataset(str(data / "busy.lance")).to_table(columns=["id"])["id"].to_pylist())
    assert ids == sorted(committed)
    assert len(committed) >= 200  # at least the pylance appends and most lancesql ones
    counted = sql_json(data, "SELECT count(*) AS n, count(DISTINCT id) AS distinct_ids FROM busy")
    assert counted == [{"n": len(committed), "distinct_ids": len(committed)}]


def test_sigkill_during_a_large_insert_leaves_all_or_none_of_it(data):
    run(["--data", str(data), "sql",
         "-c", "CREATE TABLE big AS SELECT value AS id FROM generate_series(1, 1000)"])
    inserted = 5_000_000
    insert = ["--data", str(data), "sql", "-c",
              f"INSERT INTO big SELECT value + 1000000 AS id FROM generate_series(1, {inserted})"]
    # The kills land within the time one whole insert takes on this machine and build, so that
    # most of them interrupt a write however fast it has become.
    started = time.monotonic()
    run(insert)
    whole_insert = time.monotonic() - started
    random.seed(11)
    killed_while_running = 0
    for _ in range(8):
        process = subprocess.Popen([BIN, *insert], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.05, 0.8 * whole_insert))
        killed_while_running += process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        rows = lance.dataset(str(data / "big.lance")).count_rows()
        assert (rows - 1000) % inserted == 0, rows
        # lancesql opens it too, at the same valid version.
        assert sql_json(data, "SELECT count(*) AS n FROM big") == [{"n": rows}]
    assert killed_while_running >= 4


def test_table_changes_follow_rows_through_lancesql_writes(data):
    # Row-level history needs stable row ids: pylance creates the table with them.
    lance.write_dataset(
        pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", "c"]}),
        str(data / "tracked.lance"), enable_stable_row_ids=True)
    run(["--data", str(data), "sql",
         "-c", "INSERT INTO tracked VALUES (4, 'd')",
         "-c", "UPDATE tracked SET name = 'B' WHERE id = 2",
         "-c", "DELETE FROM tracked WHERE id = 3"])
    changes = sql_json(data, "SELECT id, name, _change_type FROM table_changes('tracked', 1, 4) "
                             "ORDER BY id")
    assert changes == [
        {"id": 2, "name": "B", "_change_type": "update"},  # the update kept the row's identity
        {"id": 3, "name": "c", "_change_type": "delete"},  # as it was before the delete
        {"id": 4, "name": "d", "_change_type": "insert"},
    ]
    assert sql_json(data, "SELECT id, _change_type FROM table_changes('tracked', 2, 3)") == [
        {"id": 2, "_change_type": "update"}]
    # A table without stable row ids has no row-level history: a clear error, not a guess.
    run(["--data", str(data), "sql", "-c", "CREATE TABLE plain AS SELECT 1 AS x",
         "-c", "INSERT INTO plain VALUES (2)"])
    failed = run(["--data", str(data), "sql", "-c", "SELECT * FROM table_changes('plain', 1, 2)"],
                 check=False)
    assert failed.returncode != 0
    assert "0A000" in failed.stderr and "stable row ids" in failed.stderr


def test_one_row_inserts_are_compacted_past_the_threshold(data):
    """Row-at-a-time writers leave one fragment per INSERT; past lance.auto_compact_fragments
    small fragments an append compacts them, losing no row; at 0 nothing is compacted."""
    with served(data, "--pg-auth", "trust") as addresses:
        with psycopg.connect(trust_conninfo(addresses["pg"]), autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute("SET lance.auto_compact_fragments = 10")
            for table in ("compacted", "scattered"):
                cur.execute(f"CREATE TABLE {table} (id BIGINT NOT NULL, label TEXT)")
            for id in range(25):
                cur.execute("INSERT INTO compacted VALUES (%s, %s)", (id, f"row {id}"))
                assert cur.statusmessage == "INSERT 0 1"
            cur.execute("SET lance.auto_compact_fragments = 0")
            for id in range(25):
                cur.execute("INSERT INTO scattered VALUES (%s, %s)", (id, f"row {id}"))
            cur.execute("SELECT count(*), sum(id) FROM compacted")
            assert cur.fetchone() == (25, sum(range(25)))
            # COPY FROM STDIN and Flight SQL ingest append through the same path.
            cur.execute("SET lance.auto_compact_fragments = 3")
            cur.execute("CREATE TABLE copied (id BIGINT NOT NULL, label TEXT)")
            for id in range(3):
                with cur.copy("COPY copied FROM STDIN") as copy:
                    copy.write_row((id, f"row {id}"))
            cur.execute("CREATE TABLE ingested (id BIGINT NOT NULL, label TEXT)")
        host, port = addresses["flight"]
        with flight_sql.connect(f"grpc://{host}:{port}") as conn, conn.cursor() as cur:
            cur.execute("SET lance.auto_compact_fragments = 3")
            for id in range(3):
                cur.adbc_ingest("ingested", pa.table({"id": [id], "label": [f"row {id}"]}),
                                mode="append")
    for name in ("copied", "ingested"):
        appended = lance.dataset(str(data / f"{name}.lance"))
        assert len(appended.get_fragments()) == 1, name
        assert sorted(appended.to_table()["id"].to_pylist()) == [0, 1, 2], name
    compacted = lance.dataset(str(data / "compacted.lance"))
    # The empty table's version 1 has no fragment. The 10th insert leaves 10 one-row fragments
    # and compacts them into 1; the 19th leaves that one and 9 more and compacts again; the six
    # inserts after it add six.
    assert len(compacted.get_fragments()) == 7
    assert sorted(compacted.to_table()["id"].to_pylist()) == list(range(25))
    # Each compaction is two commits of its own (Lance reserves the new fragment ids, then
    # rewrites), beside the create and the 25 inserts.
    assert len(compacted.versions()) == 1 + 25 + 2 * 2
    scattered = lance.dataset(str(data / "scattered.lance"))
    assert len(scattered.get_fragments()) == 25
    assert sorted(scattered.to_table()["id"].to_pylist()) == list(range(25))


def test_a_write_racing_drop_table_fails_cleanly(data):
    """DROP TABLE while a large INSERT runs: the INSERT either commits first or fails with
    'table does not exist' (never an I/O error about vanished files), the DROP succeeds, the
    table stays dropped (no half-table resurrected by the late write), and the server serves on."""
    outcomes = set()
    with served(data, "--pg-auth", "trust") as addresses:
        conninfo = trust_conninfo(addresses["pg"])
        for attempt in range(10):
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("CREATE TABLE raced AS SELECT value AS id FROM generate_series(1, 10)")
            failure = []

            def insert():
                try:
                    with psycopg.connect(conninfo, autocommit=True) as conn:
                        conn.execute("INSERT INTO raced SELECT value FROM generate_series(1, 3000000)")
                    failure.append(None)
                except psycopg.Error as error:
                    failure.append(error)

            writer = threading.Thread(target=insert)
            writer.start()
            time.sleep(0.05 * attempt)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                assert conn.execute("DROP TABLE raced").statusmessage == "DROP TABLE"
            writer.join()
            error = failure[0]
            if error is not None:
                assert isinstance(error, psycopg.errors.UndefinedTable), repr(error)
                assert "raced" in str(error)
            outcomes.add(type(error).__name__)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                with pytest.raises(psycopg.errors.UndefinedTable):
                    conn.execute("SELECT count(*) FROM raced")
    print("outcomes:", outcomes)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs to fill up (mounting needs root, as in CI's container)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_fails_the_write_and_keeps_the_table(small_disk):
    """An INSERT that fills the disk fails with 53100 naming the table, commits nothing, leaves
    no data behind (so the space is free again), and the server goes on writing."""
    with served(small_disk, "--pg-auth", "trust") as addresses:
        with psycopg.connect(trust_conninfo(addresses["pg"]), autocommit=True) as conn:
            conn.execute("CREATE TABLE filled (id BIGINT NOT NULL, label TEXT)")
            conn.execute("INSERT INTO filled VALUES (1, 'first')")
            with pytest.raises(psycopg.errors.DiskFull) as full:
                conn.execute("INSERT INTO filled SELECT value, 'a label long enough to fill "
                             "the disk ' || value FROM generate_series(1, 5000000)")
            assert "'filled'" in str(full.value) and "is full" in str(full.value)
            assert conn.execute("SELECT count(*) FROM filled").fetchone() == (1,)
            versions = conn.execute(
                "SELECT count(*) FROM system.versions WHERE table_name = 'filled'").fetchone()
            assert versions == (2,)
            conn.execute("INSERT INTO filled VALUES (2, 'second')")
            assert conn.execute("SELECT count(*) FROM filled").fetchone() == (2,)
    assert lance.dataset(str(small_disk / "filled.lance")).count_rows() == 2
