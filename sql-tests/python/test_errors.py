"""Bad input gets a clear error naming what was wrong; nothing is lost or half-written."""

import lance
import pyarrow as pa

from conftest import BIN, run, sql_json


def test_missing_table_is_named_and_exit_is_nonzero(data):
    result = run(["--data", str(data), "sql", "-c", "SELECT * FROM nope"], check=False)
    assert result.returncode != 0
    assert "nope" in result.stderr and "42P01" in result.stderr


def test_bad_sql_is_a_syntax_error(data):
    result = run(["--data", str(data), "sql", "-c", "SELEC 1"], check=False)
    assert result.returncode != 0
    assert "42601" in result.stderr


def test_script_stops_at_first_error(data, tmp_path):
    script = tmp_path / "s.sql"
    script.write_text("CREATE TABLE a AS SELECT 1 AS x;\nSELECT * FROM missing;\nCREATE TABLE b AS SELECT 2 AS y;\n")
    result = run(["--data", str(data), "sql", "-f", str(script)], check=False)
    assert result.returncode != 0
    assert (data / "a.lance").exists() and not (data / "b.lance").exists()


def test_corrupt_dataset_is_named_and_others_still_work(data):
    lance.write_dataset(pa.table({"x": [1, 2]}), str(data / "good.lance"))
    versions = data / "broken.lance" / "_versions"
    versions.mkdir(parents=True)
    (versions / "1.manifest").write_bytes(b"this is not a manifest")
    result = run(["--data", str(data), "sql", "-c", "SELECT * FROM broken"], check=False)
    assert result.returncode != 0
    assert "broken" in result.stderr
    assert sql_json(data, "SELECT sum(x) AS s FROM good") == [{"s": 3}]


def test_import_errors_leave_existing_tables_untouched(data, tmp_path):
    lance.write_dataset(pa.table({"x": [1]}), str(data / "keep.lance"))
    csv = tmp_path / "in.csv"
    csv.write_text("x\n5\n6\n")
    exists = run(["--data", str(data), "import", str(csv), "keep"], check=False)
    assert exists.returncode != 0 and "keep" in exists.stderr and "already exists" in exists.stderr
    assert lance.dataset(str(data / "keep.lance")).to_table().column("x").to_pylist() == [1]

    missing = run(["--data", str(data), "import", str(tmp_path / "none.csv"), "t"], check=False)
    assert missing.returncode != 0 and "none.csv" in missing.stderr

    unknown = tmp_path / "data.txt"
    unknown.write_text("x\n")
    result = run(["--data", str(data), "import", str(unknown), "t"], check=False)
    assert result.returncode != 0 and "--format" in result.stderr

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    result = run(["--data", str(data), "import", str(bad), "t"], check=False)
    assert result.returncode != 0 and "bad.parquet" in result.stderr
    assert not (data / "t.lance").exists()


def test_output_formats(data):
    run(["--data", str(data), "sql", "-c", "CREATE TABLE f AS SELECT 1 AS a, 'x' AS b"])
    csv = run(["--data", str(data), "sql", "--format", "csv", "-c", "SELECT * FROM f"]).stdout
    assert csv.splitlines() == ["a,b", "1,x"]
    table = run(["--data", str(data), "sql", "-c", "SELECT * FROM f"]).stdout
    assert "| a | b |" in table
    assert sql_json(data, "SELECT * FROM f WHERE a > 5") == []


def test_demo_data_is_written_once(data):
    first = run(["--data", str(data), "sql", "--demo-if-empty", "--format", "json", "-c",
                 "SELECT count(*) AS n FROM products"])
    assert "demo" in first.stderr
    second = run(["--data", str(data), "sql", "--demo-if-empty", "--format", "json", "-c",
                  "SELECT count(*) AS n FROM reviews"])
    assert "demo" not in second.stderr
    assert lance.dataset(str(data / "products.lance")).count_rows() == 2000
