"""Writes: lancesql against pylance on the same rows, in the same run (docs/benchmarks.md has the
figures).

Data: --rows rows (default 10,000,000) of (id int64, category string, value int64, price
float64, name string), deterministic, written once with pylance as the table `source` and once
as a Parquet file (neither timed).

Bulk writes, in --repeat rounds of every contender once (the best round of each kept), every
contender writing all the rows:
- lancesql over the Postgres wire protocol: `CREATE TABLE ... AS SELECT * FROM source`,
  `INSERT INTO <empty table> SELECT * FROM source`, and `lancesql import` of the Parquet file
  (a process of its own, start-up included);
- pylance: `lance.write_dataset` of the rows from memory, of a scan of `source` (the work
  `CREATE TABLE AS` and `INSERT ... SELECT` do) and of the Parquet file read batch by batch (the
  work `lancesql import` does).

Changes, each side on its own copy of `source`, in --repeat rounds (the best of each kept):
`UPDATE ... WHERE id % 100 = 7` (1% of the rows) against pylance's `update`, then `ALTER TABLE
... ADD COLUMN ... GENERATED ALWAYS AS (value * 2) STORED` against pylance's `add_columns`
(dropped again, untimed, before the next round).

Row at a time: --single-rows (default 10,000) one-row INSERTs over psycopg (parameters, so
psycopg prepares the statement after its fifth run), against pylance appending the same rows one
`write_dataset(mode="append")` at a time; then each table's fragments and the time of a full scan
(`SELECT count(*), sum(value)`, and pylance's `to_table` of `value`).

Run with `scripts/dev bench-writes` (optimised build) or directly:
  python benches/write_throughput.py --lancesql target/release/lancesql [--rows N]
"""

import argparse
import itertools
import os
import shutil
import subprocess
import tempfile
import time

import lance
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench_support import items, start_lancesql, stop

COLUMNS = "id BIGINT NOT NULL, category TEXT, value BIGINT, price DOUBLE, name TEXT"


def parquet_batches(path):
    """The Parquet file as a stream of batches, as `lancesql import` reads it."""
    file = pq.ParquetFile(path)
    return pa.RecordBatchReader.from_batches(file.schema_arrow,
                                             file.iter_batches(batch_size=65536))


def best_of(repeat, action):
    """The shortest of `repeat` runs of `action`, in seconds."""
    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best


def timed(action):
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def expect(what, got, wanted):
    if got != wanted:
        raise SystemExit(f"{what}: got {got}, expected {wanted}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lancesql", required=True, help="the lancesql binary (optimised)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--single-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="lancesql-write-bench-")
    root = os.path.join(folder, "lance")
    scratch = os.path.join(folder, "pylance")
    os.makedirs(root)
    os.makedirs(scratch)
    server = None
    try:
        table = items(args.rows, seed=13, with_value=True)
        print(f"{args.rows:,} rows, {table.nbytes / 1e6:,.0f} MB as Arrow", flush=True)
        source_path = os.path.join(root, "source.lance")
        lance.write_dataset(table, source_path)
        parquet = os.path.join(folder, "items.parquet")
        pq.write_table(table, parquet)
        server, pg_port, _ = start_lancesql(args.lancesql, root, flight=False)
        connection = psycopg.connect(
            f"host=127.0.0.1 port={pg_port} user=bench dbname=lancesql", autocommit=True)
        cursor = connection.cursor()
        names = (f"t{n}" for n in itertools.count())

        def lancesql_ctas():
            cursor.execute(f"CREATE TABLE {next(names)} AS SELECT * FROM source")
            expect("CREATE TABLE AS rows", cursor.rowcount, args.rows)

        def lancesql_insert_select():
            name = next(names)
            cursor.execute(f"CREATE TABLE {name} ({COLUMNS})")
            started = time.perf_counter()
            cursor.execute(f"INSERT INTO {name} SELECT * FROM source")
            expect("INSERT ... SELECT rows", cursor.rowcount, args.rows)
            # Only the INSERT counts: the empty table's creation is subtracted.
            return time.perf_counter() - started

        def lancesql_import():
            subprocess.run([args.lancesql, "--data", root, "import", parquet, next(names)],
                           check=True, capture_output=True)

        def pylance(data):
            def write():
                lance.write_dataset(data(), os.path.join(scratch, next(names)))
            return write

        source = lance.dataset(source_path)
        bulk = {
            "lancesql CREATE TABLE AS SELECT": lancesql_ctas,
            "lancesql INSERT INTO ... SELECT": lancesql_insert_select,
            "lancesql import (Parquet)": lancesql_import,
            "pylance write_dataset (from memory)": pylance(lambda: table),
            "pylance write_dataset (scan of source)": pylance(
                lambda: source.scanner(batch_size=8192).to_reader()),
            "pylance write_dataset (Parquet batches)": pylance(
                lambda: parquet_batches(parquet)),
        }
        # Rounds of every contender once, so that the machine's drift weighs on all of them
        # alike; the best round counts. Each starts once the kernel has written back what the
        # ones before wrote (about 230 MB each), which would otherwise take a core from it.
        seconds = {}
        for _ in range(args.repeat):
            for name, action in bulk.items():
                os.sync()
                started = time.perf_counter()
                own_time = action()
                spent = own_time if own_time is not None else time.perf_counter() - started
                seconds[name] = min(seconds.get(name, spent), spent)
        print("\n| bulk write | seconds | rows/s |")
        print("|---|---|---|")
        for name, spent in seconds.items():
            print(f"| {name} | {spent:.2f} | {args.rows / spent:,.0f} |")
        scan = seconds["pylance write_dataset (scan of source)"]
        memory = seconds["pylance write_dataset (from memory)"]
        for name in ("lancesql CREATE TABLE AS SELECT", "lancesql INSERT INTO ... SELECT"):
            print(f"{name} / pylance (scan of source): {scan / seconds[name]:.2f}x; "
                  f"/ pylance (from memory): {memory / seconds[name]:.2f}x")
        parquet_write = seconds["pylance write_dataset (Parquet batches)"]
        print(f"lancesql import / pylance (Parquet batches): "
              f"{parquet_write / seconds['lancesql import (Parquet)']:.2f}x; "
              f"/ pylance (from memory): {memory / seconds['lancesql import (Parquet)']:.2f}x",
              flush=True)

        # Changes, each side on its own copy of the source rows.
        shutil.copytree(source_path, os.path.join(root, "changed.lance"))
        pylance_changed = os.path.join(scratch, "changed.lance")
        shutil.copytree(source_path, pylance_changed)
        one_percent = args.rows // 100 + (1 if args.rows % 100 > 7 else 0)
        update_sql = "UPDATE changed SET value = value + 1 WHERE id % 100 = 7"
        add_sql = ("ALTER TABLE changed ADD COLUMN doubled BIGINT "
                   "GENERATED ALWAYS AS (value * 2) STORED")
        changes = {"UPDATE 1% of rows": [], "ADD COLUMN computed": []}
        for _ in range(args.repeat):
            # Each round updates another 1% on both sides and adds the column again after
            # dropping it (untimed; dropping a column changes only metadata).
            os.sync()
            ours_update, _ = timed(lambda: cursor.execute(update_sql))
            expect("UPDATE rows", cursor.rowcount, one_percent)
            changed = lance.dataset(pylance_changed)
            os.sync()
            theirs_update, updated = timed(
                lambda: changed.update({"value": "value + 1"}, where="id % 100 = 7"))
            expect("pylance update rows", updated["num_rows_updated"], one_percent)
            os.sync()
            ours_add, _ = timed(lambda: cursor.execute(add_sql))
            changed = lance.dataset(pylance_changed)
            os.sync()
            theirs_add, _ = timed(lambda: changed.add_columns({"doubled": "value * 2"}))
            cursor.execute("ALTER TABLE changed DROP COLUMN doubled")
            lance.dataset(pylance_changed).drop_columns(["doubled"])
            changes["UPDATE 1% of rows"].append((ours_update, theirs_update))
            changes["ADD COLUMN computed"].append((ours_add, theirs_add))
        print("\n| change | lancesql s | pylance s | lancesql / pylance speed |")
        print("|---|---|---|---|")
        for name, rounds in changes.items():
            ours = min(round_[0] for round_ in rounds)
            theirs = min(round_[1] for round_ in rounds)
            print(f"| {name} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f}x |", flush=True)

        # Row at a time.
        singles = table.slice(0, args.single_rows)
        rows = singles.to_pylist()
        cursor.execute(f"CREATE TABLE one_by_one ({COLUMNS})")

        def insert_rows():
            for row in rows:
                cursor.execute("INSERT INTO one_by_one VALUES (%s, %s, %s, %s, %s)",
                               (row["id"], row["category"], row["value"], row["price"],
                                row["name"]))

        ours_rows, _ = timed(insert_rows)
        pylance_rows = os.path.join(scratch, "one_by_one.lance")

        def append_rows():
            for index in range(singles.num_rows):
                lance.write_dataset(singles.slice(index, 1), pylance_rows,
                                    mode="append" if index else "create")

        theirs_rows, _ = timed(append_rows)
        total = pc.sum(singles["value"]).as_py()

        def scan_ours():
            cursor.execute("SELECT count(*), sum(value) FROM one_by_one")
            expect("lancesql scan", cursor.fetchone(), (singles.num_rows, total))

        def scan_theirs():
            values = lance.dataset(pylance_rows).to_table(columns=["value"])["value"]
            expect("pylance scan", (len(values), pc.sum(values).as_py()),
                   (singles.num_rows, total))

        ours_scan = best_of(5, scan_ours)
        theirs_scan = best_of(5, scan_theirs)
        ours_fragments = len(lance.dataset(os.path.join(root, "one_by_one.lance")).get_fragments())
        theirs_fragments = len(lance.dataset(pylance_rows).get_fragments())
        print(f"\n{singles.num_rows:,} one-row writes")
        print("| | writes/s | fragments after | full scan ms |")
        print("|---|---|---|---|")
        print(f"| lancesql INSERT over psycopg | {singles.num_rows / ours_rows:,.0f} | "
              f"{ours_fragments} | {ours_scan * 1000:.1f} |")
        print(f"| pylance write_dataset append | {singles.num_rows / theirs_rows:,.0f} | "
              f"{theirs_fragments} | {theirs_scan * 1000:.1f} |")
        connection.close()
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
