"""Datasets written by pylance are read by lancesql without loss, and the other way round."""

import datetime
import decimal
import subprocess
import time

import lance
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import BIN, run, sql_arrow, sql_json


def rich_table():
    """One column per interesting Lance type."""
    n = 6
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "text": pa.array(["a", None, "ccc", "", "é", "z"]),
            "vec_f32": pa.FixedSizeListArray.from_arrays(
                pa.array([float(i) for i in range(n * 4)], pa.float32()), 4
            ),
            "vec_f16": pa.FixedSizeListArray.from_arrays(
                pa.array([float(i) for i in range(n * 2)], pa.float16()), 2
            ),
            "vec_f64": pa.FixedSizeListArray.from_arrays(
                pa.array([float(i) for i in range(n * 2)], pa.float64()), 2
            ),
            "vec_i8": pa.FixedSizeListArray.from_arrays(pa.array(list(range(n * 2)), pa.int8()), 2),
            "vec_u8": pa.FixedSizeListArray.from_arrays(pa.array(list(range(n * 2)), pa.uint8()), 2),
            "tags": pa.array([["x"], [], None, ["y", "z"], ["x"], ["w"]], pa.list_(pa.string())),
            "meta": pa.array(
                [{"k": i, "v": str(i)} if i % 2 else None for i in range(n)],
                pa.struct([("k", pa.int32()), ("v", pa.string())]),
            ),
            "attrs": pa.array(
                [[("a", 1)], [], None, [("b", 2), ("c", 3)], [("d", 4)], [("e", 5)]],
                pa.map_(pa.string(), pa.int64()),
            ),
            "payload": pa.array([b"\x00\x01", None, b"", b"xyz", b"\xff", b"q"], pa.large_binary()),
            "kind": pa.array(["red", "blue", "red", None, "blue", "red"]).dictionary_encode(),
            "at": pa.array(
                [datetime.datetime(2024, 1, 1, h, tzinfo=datetime.timezone.utc) for h in range(n)],
                pa.timestamp("us", tz="Europe/Paris"),
            ),
            "price": pa.array([decimal.Decimal(f"{i}.25") for i in range(n)], pa.decimal128(10, 2)),
            "day": pa.array([datetime.date(2024, 2, i + 1) for i in range(n)], pa.date32()),
            "ratio": pa.array([0.5, float("nan"), None, -0.0, 1e300, 2.0], pa.float64()),
            "doc": pa.array(['{"a": 1}', None, "[1, 2]", '"s"', "null", "{}"], pa.json_(pa.utf8())),
        }
    )


def assert_same_table(actual, expected):
    """Same column names, Arrow types and values (NaN compared by its text)."""
    assert actual.schema.names == expected.schema.names
    for name in expected.schema.names:
        assert actual.schema.field(name).type == expected.schema.field(name).type, name
        if name == "ratio":
            assert [str(v) for v in actual.column(name).to_pylist()] == [
                str(v) for v in expected.column(name).to_pylist()
            ]
        else:
            assert actual.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_pylance_dataset_reads_back_unchanged(data):
    lance.write_dataset(rich_table(), str(data / "rich.lance"))
    expected = lance.dataset(str(data / "rich.lance")).to_table()
    assert_same_table(sql_arrow(data, "SELECT * FROM rich ORDER BY id"), expected)


def test_top_k_takes_every_type_unchanged(data):
    # ORDER BY ... LIMIT reads the sort key first and takes the other columns of the k rows.
    lance.write_dataset(rich_table(), str(data / "rich.lance"), max_rows_per_file=2)
    plan = sql_json(data, "EXPLAIN SELECT * FROM rich ORDER BY id DESC LIMIT 4")
    assert "LanceTake" in plan[-1]["plan"]
    expected = lance.dataset(str(data / "rich.lance")).to_table().take([5, 4, 3, 2])
    assert_same_table(sql_arrow(data, "SELECT * FROM rich ORDER BY id DESC LIMIT 4"), expected)


def test_blob_columns_read_as_bytes(data):
    blob_field = pa.field("blob", pa.large_binary(), metadata={"lance-encoding:blob": "true"})
    schema = pa.schema([pa.field("id", pa.int64()), blob_field])
    table = pa.table({"id": [1, 2], "blob": [b"a" * 100, b"b" * 5]}, schema=schema)
    lance.write_dataset(table, str(data / "blobs.lance"))
    rows = sql_json(data, "SELECT id, length(blob) AS n FROM blobs ORDER BY id")
    assert rows == [{"id": 1, "n": 100}, {"id": 2, "n": 5}]
    # Through a top-k the blob column is taken by row address, still as bytes.
    top = sql_arrow(data, "SELECT blob, id FROM blobs ORDER BY id DESC LIMIT 1")
    assert top.column("blob").to_pylist() == [b"b" * 5]


def test_take_follows_stable_row_ids_and_refuses_deleted_rows(data):
    # Stable row ids: an updated row moves to a new fragment and keeps its id, so ids are no
    # longer addresses. A deleted row's id names nothing: take refuses it, `_rowid IN` skips it.
    blob_field = pa.field("blob", pa.large_binary(), metadata={"lance-encoding:blob": "true"})
    schema = pa.schema([pa.field("id", pa.int64()), blob_field])
    table = pa.table({"id": list(range(12)), "blob": [bytes([i]) * 50 for i in range(12)]},
                     schema=schema)
    uri = str(data / "stable.lance")
    lance.write_dataset(table, uri, max_rows_per_file=4, enable_stable_row_ids=True)
    dataset = lance.dataset(uri)
    dataset.update({"id": "id + 100"}, where="id = 2")
    dataset.delete("id = 5")
    dataset = lance.dataset(uri)
    row_id = dict(zip(*[dataset.to_table(columns=["id"], with_row_id=True)[c].to_pylist()
                        for c in ("id", "_rowid")]))
    wanted = [row_id[7], row_id[102], row_id[0], row_id[102]]
    assert row_id[102] == 2, "the updated row keeps its row id"
    expected = dataset._take_rows(wanted, columns=["id"])["id"].to_pylist()
    ids = ", ".join(map(str, wanted))
    taken = sql_arrow(data, f"SELECT id, blob FROM take('stable', [{ids}])")
    assert taken.column("id").to_pylist() == expected == [7, 102, 0, 102]
    assert taken.column("blob").to_pylist() == [bytes([i]) * 50 for i in (7, 2, 0, 2)]
    deleted = 5  # the row id of the deleted row (written in order, stable ids from 0)
    refused = run(["--data", str(data), "sql", "-c",
                   f"SELECT id FROM take('stable', [0, {deleted}])"], check=False)
    assert refused.returncode != 0
    assert f"row id {deleted} does not exist in table 'stable'" in refused.stderr
    rows = sql_json(data, f"SELECT id FROM stable WHERE _rowid IN (0, 2, {deleted}) ORDER BY id")
    assert rows == [{"id": 0}, {"id": 102}]
    # Other conditions beside the list are checked on the taken rows, blob columns included.
    rows = sql_json(data, "SELECT id, length(blob) AS n FROM stable "
                          f"WHERE _rowid IN (0, 1, 2, {deleted}) AND id > 0 AND length(blob) = 50 "
                          "ORDER BY id")
    assert rows == [{"id": 1, "n": 50}, {"id": 102, "n": 50}]


def test_take_refuses_deleted_rows_and_missing_fragments_by_address(data):
    # Without stable row ids a row id is an address: fragment << 32 | offset.
    uri = str(data / "plain.lance")
    lance.write_dataset(pa.table({"id": list(range(6))}), uri, max_rows_per_file=3)
    lance.dataset(uri).delete("id = 4")
    assert sql_json(data, f"SELECT id FROM take('plain', [{2**32 + 2}, 0])") == [
        {"id": 5}, {"id": 0}]
    for missing in (2**32 + 1, 2**32 + 3, 7 * 2**32):
        refused = run(["--data", str(data), "sql", "-c",
                       f"SELECT id FROM take('plain', [0, {missing}])"], check=False)
        assert f"row id {missing} does not exist in table 'plain'" in refused.stderr, missing
    rows = sql_json(data, f"SELECT id FROM plain WHERE _rowid IN (0, {2**32 + 1}, {7 * 2**32})")
    assert rows == [{"id": 0}]


def test_deletions_and_new_versions_by_pylance_are_seen(data):
    uri = str(data / "items.lance")
    lance.write_dataset(pa.table({"id": list(range(10))}), uri)
    assert sql_json(data, "SELECT count(*) AS n FROM items") == [{"n": 10}]
    lance.dataset(uri).delete("id >= 7")
    assert sql_json(data, "SELECT count(*) AS n, max(id) AS m FROM items") == [{"n": 7, "m": 6}]


def test_versions_and_tags_written_by_pylance_read_as_pylance_reads_them(data):
    uri = str(data / "items.lance")
    lance.write_dataset(pa.table({"id": list(range(10))}), uri)
    lance.write_dataset(pa.table({"id": list(range(10, 15))}), uri, mode="append")
    dataset = lance.dataset(uri)
    dataset.delete("id % 2 = 0")
    dataset = lance.dataset(uri)
    dataset.tags.create("before-delete", 2)
    assert dataset.version == 3
    for version in (1, 2, 3):
        expected = sorted(lance.dataset(uri, version=version).to_table()["id"].to_pylist())
        rows = sql_json(data, f"SELECT id FROM items VERSION AS OF {version} ORDER BY id")
        assert [row["id"] for row in rows] == expected, version
    tagged = sql_json(data, "SELECT count(*) AS n FROM items AT (TAG => 'before-delete')")
    assert tagged == [{"n": 15}]
    # The newest version committed at or before a time: just after version 2's commit. Lance
    # keeps nanoseconds; pylance gives microseconds computed in floating point from them, which
    # can come out up to ~1.3 us early, so 2 us later is after the commit (and long before
    # version 3's).
    committed = next(v for v in dataset.versions() if v["version"] == 2)["timestamp"]
    just_after = committed.astimezone(datetime.timezone.utc) + datetime.timedelta(microseconds=2)
    at = just_after.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rows = sql_json(data, f"SELECT count(*) AS n FROM items TIMESTAMP AS OF '{at}'")
    assert rows == [{"n": 15}]
    # One query, two versions: the rows the delete removed.
    removed = sql_json(data, "SELECT old.id FROM items VERSION AS OF 2 AS old "
                             "LEFT JOIN items AS now ON old.id = now.id "
                             "WHERE now.id IS NULL ORDER BY old.id")
    assert [row["id"] for row in removed] == list(range(0, 15, 2))


def test_lancesql_ctas_is_read_by_pylance(data):
    lance.write_dataset(rich_table(), str(data / "rich.lance"))
    run(["--data", str(data), "sql", "-c",
         "CREATE TABLE copy AS SELECT id, text, vec_f32, at, price FROM rich WHERE id > 1"])
    copied = lance.dataset(str(data / "copy.lance")).to_table().sort_by("id")
    source = rich_table().filter(pa.compute.greater(rich_table()["id"], 1))
    assert copied.column("id").to_pylist() == source.column("id").to_pylist()
    assert copied.column("vec_f32").to_pylist() == source.column("vec_f32").to_pylist()
    assert copied.schema.field("at").type == pa.timestamp("us", tz="Europe/Paris")
    assert copied.column("price").to_pylist() == source.column("price").to_pylist()


def test_import_parquet_csv_jsonl(data, tmp_path):
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", None], "score": [1.5, None, 3.0]})
    pq.write_table(table, tmp_path / "in.parquet")
    (tmp_path / "in.csv").write_text("id,name\n1,a\n2,b\n")
    (tmp_path / "in.jsonl").write_text('{"id": 1, "tag": "x"}\n{"id": 2, "tag": "y"}\n')
    for file, name in [("in.parquet", "from_parquet"), ("in.csv", "from_csv"), ("in.jsonl", "from_jsonl")]:
        result = run(["--data", str(data), "import", str(tmp_path / file), name])
        assert "imported" in result.stderr
    assert lance.dataset(str(data / "from_parquet.lance")).to_table().equals(table)
    assert sql_json(data, "SELECT id, name FROM from_csv ORDER BY id") == [
        {"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert lance.dataset(str(data / "from_jsonl.lance")).count_rows() == 2


def test_tables_appear_and_disappear_without_restart(data):
    """One long-running shell (statements piped in) sees datasets another process creates and
    removes: by name at once, in listings once the listing cache (2 s by default) expires."""
    shell = subprocess.Popen(
        [BIN, "--data", str(data), "sql"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    query = "SELECT count(*) AS tables FROM information_schema.tables WHERE table_catalog = 'lancesql' AND table_schema = 'public';\n"

    def ask(sql=query):
        shell.stdin.write(sql)
        shell.stdin.flush()
        lines = []
        # A result table ends with its third rule line (above and below the header, at the end).
        while sum(line.startswith("+") for line in lines) < 3:
            line = shell.stdout.readline()
            assert line, "shell exited early"
            lines.append(line)
        return [l for l in lines if l.strip().strip("|").strip().isdigit()][0].strip("| \n")

    def listing_shows(expected):
        deadline = time.monotonic() + 15
        while ask() != expected:
            assert time.monotonic() < deadline, f"the listing never showed {expected} tables"
            time.sleep(0.25)

    try:
        assert ask() == "0"
        lance.write_dataset(pa.table({"x": [1]}), str(data / "later.lance"))
        # Names are resolved afresh for every statement; only listings are cached.
        assert ask("SELECT count(*) AS n FROM later;\n") == "1"
        listing_shows("1")
        import shutil
        shutil.rmtree(data / "later.lance")
        listing_shows("0")
    finally:
        shell.stdin.close()
        shell.wait(timeout=60)


def test_every_local_reader_reads_and_writes(data):
    # `auto` picks io_uring where the kernel allows it; `threads` works everywhere.
    lance.write_dataset(pa.table({"id": list(range(5))}), str(data / "nums.lance"))
    for reader in ["threads", "auto"]:
        env = {"LANCESQL_LOCAL_IO": reader}
        created = run(
            ["--data", str(data), "sql", "-c", f"CREATE TABLE copy_{reader} AS SELECT * FROM nums"],
            env=env,
        )
        # Writes must commit with Lance's safe local commit handler, whatever the reader.
        assert "unsafe commit" not in created.stderr.lower(), created.stderr
        rows = sql_json(data, f"SELECT sum(id) AS s FROM copy_{reader}", env=env)
        assert rows == [{"s": 10}]
    bad = run(["--data", str(data), "--local-io", "fast", "sql", "-c", "SELECT 1"], check=False)
    assert bad.returncode != 0 and "fast" in bad.stderr
