"""Result throughput over the Postgres wire protocol: lancesql against PostgreSQL 15 holding the
same rows, read with the same clients (docs/benchmarks.md has the figures).

Tables (same rows in both servers):
  narrow  id int8, category text, value int8, score float8
  wide    the narrow columns and embedding, 384 float32 (a Lance vector; real[] in PostgreSQL)

Clients: psycopg 3 text and binary (server-side cursors, fetchmany of 10,000 rows), and the ADBC
PostgreSQL driver (binary COPY into Arrow). Each measurement reads the whole table; the best of
--repeat runs is kept.

Run with `scripts/dev bench-wire` (optimised build) or directly:
  python benches/wire_throughput.py --lancesql target/release/lancesql [--rows N] [--wide-rows N]
PostgreSQL 15 (Debian's postgresql-15) is started on loopback in a temporary folder.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import adbc_driver_postgresql.dbapi as adbc
import lance
import numpy as np
import psycopg
import pyarrow as pa

from bench_support import free_port, start_lancesql, stop

PG_BIN = "/usr/lib/postgresql/15/bin"
VECTOR_DIMS = 384
FETCH = 10_000


def batches(rows, wide, seed=7, chunk=100_000):
    """The table's rows as Arrow batches (deterministic)."""
    rng = np.random.default_rng(seed)
    categories = np.array([f"cat_{i}" for i in range(20)])
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        columns = {
            "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "category": pa.array(categories[rng.integers(0, 20, n)]),
            "value": pa.array(rng.integers(0, 1000, n, dtype=np.int64)),
            "score": pa.array(rng.random(n)),
        }
        if wide:
            flat = rng.standard_normal(n * VECTOR_DIMS, dtype=np.float32)
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(
                pa.array(flat), VECTOR_DIMS)
        yield pa.RecordBatch.from_pydict(columns)


def write_lance(root, name, rows, wide):
    schema = next(batches(1, wide)).schema
    reader = pa.RecordBatchReader.from_batches(schema, batches(rows, wide))
    lance.write_dataset(reader, os.path.join(root, f"{name}.lance"),
                        max_rows_per_file=rows // 4 + 1)


def copy_table(source, target, name, wide):
    """Copies `name` from lancesql into PostgreSQL with binary COPY on both ends."""
    vector = ", embedding real[]" if wide else ""
    with psycopg.connect(target, autocommit=True) as pg:
        pg.execute(f"DROP TABLE IF EXISTS {name}")
        pg.execute(f"CREATE TABLE {name} (id int8, category text, value int8, "
                   f"score float8{vector})")
        with psycopg.connect(source, autocommit=True) as ls:
            with ls.cursor().copy(f"COPY {name} TO STDOUT (FORMAT binary)") as out:
                with pg.cursor().copy(f"COPY {name} FROM STDIN (FORMAT binary)") as into:
                    for data in out:
                        into.write(data)
        pg.execute(f"VACUUM ANALYZE {name}")


def read_psycopg(conninfo, name, binary):
    rows = 0
    with psycopg.connect(conninfo) as connection:
        with connection.cursor(name="bench", binary=binary) as cursor:
            cursor.execute(f"SELECT * FROM {name}")
            while True:
                got = cursor.fetchmany(FETCH)
                if not got:
                    break
                rows += len(got)
    return rows


def read_adbc(uri, name):
    rows = 0
    with adbc.connect(uri) as connection:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {name}")
            for batch in cursor.fetch_record_batch():
                rows += batch.num_rows
    return rows


def measure(read, expected, repeat):
    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        rows = read()
        elapsed = time.perf_counter() - started
        if rows != expected:
            raise SystemExit(f"read {rows} rows, expected {expected}")
        best = elapsed if best is None else min(best, elapsed)
    return expected / best


def start_postgres(folder, port):
    """PostgreSQL 15 in `folder`/pg; as the `postgres` user when run as root (which it refuses)."""
    home = os.path.join(folder, "pg")
    os.makedirs(home)
    as_user = []
    if os.geteuid() == 0:
        os.chmod(folder, 0o755)
        shutil.chown(home, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(home, "data")
    subprocess.run([*as_user, f"{PG_BIN}/initdb", "-D", data, "-U", "bench", "--auth=trust",
                    "-E", "UTF8"], check=True, capture_output=True)
    process = subprocess.Popen(
        [*as_user, f"{PG_BIN}/postgres", "-D", data, "-p", str(port), "-c",
         "listen_addresses=127.0.0.1", "-k", home, "-c", "shared_buffers=2GB", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=postgres").close()
            return process
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise SystemExit("PostgreSQL did not start")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lancesql", required=True, help="the lancesql binary (optimised)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the narrow table")
    parser.add_argument("--wide-rows", type=int, default=1_000_000, help="rows of the wide table")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="lancesql-wire-bench-")
    root = os.path.join(folder, "lance")
    os.makedirs(root)
    processes = []
    try:
        print(f"writing {args.rows:,} narrow and {args.wide_rows:,} wide rows", flush=True)
        write_lance(root, "narrow", args.rows, wide=False)
        write_lance(root, "wide", args.wide_rows, wide=True)
        lancesql, ls_port, _ = start_lancesql(args.lancesql, root, flight=False)
        processes.append(lancesql)
        pg_port = free_port()
        processes.append(start_postgres(folder, pg_port))
        servers = {
            "PostgreSQL 15": (f"host=127.0.0.1 port={pg_port} user=bench dbname=postgres",
                              f"postgresql://bench@127.0.0.1:{pg_port}/postgres"),
            "lancesql": (f"host=127.0.0.1 port={ls_port} user=lancesql dbname=lancesql",
                         f"postgresql://lancesql@127.0.0.1:{ls_port}/lancesql"),
        }
        for name, wide in (("narrow", False), ("wide", True)):
            copy_table(servers["lancesql"][0], servers["PostgreSQL 15"][0], name, wide)
        print("\n| table | client | PostgreSQL 15 rows/s | lancesql rows/s | ratio |")
        print("|---|---|---|---|---|")
        for name, rows in (("narrow", args.rows), ("wide", args.wide_rows)):
            results = {}
            for server, (conninfo, uri) in servers.items():
                results[server] = {
                    "psycopg text": measure(
                        lambda: read_psycopg(conninfo, name, False), rows, args.repeat),
                    "psycopg binary": measure(
                        lambda: read_psycopg(conninfo, name, True), rows, args.repeat),
                    "ADBC": measure(lambda: read_adbc(uri, name), rows, args.repeat),
                }
            for client in results["lancesql"]:
                pg, ls = results["PostgreSQL 15"][client], results["lancesql"][client]
                print(f"| {name} | {client} | {pg:,.0f} | {ls:,.0f} | {ls / pg:.2f} |",
                      flush=True)
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
