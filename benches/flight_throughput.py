"""Arrow Flight SQL throughput: lancesql against roapi 0.12.7 and a bare pyarrow.flight DoGet
server, all read with the same client; and bulk ingest with ADBC against pylance's
write_dataset (docs/benchmarks.md has the figures).

Data: --rows rows (default 5,000,000) of (id int64, category string, price float64, name
string), deterministic. lancesql serves them as a Lance dataset; roapi from a Parquet file of the
same rows (loaded into memory, its default); the bare server from an in-memory Arrow table.

Reads: `SELECT * FROM items` through the ADBC Flight SQL driver (fetch_arrow_table) for lancesql
and roapi; DoGet of the whole table through pyarrow.flight for the bare server. Each figure is
the best of --repeat runs, in Arrow bytes per second (the table's in-memory size over the time).
Ingest: `adbc_ingest` of the same table into a new lancesql table, against `lance.write_dataset`
of it into a local folder.

Run with `scripts/dev bench-flight` (optimised build) or directly:
  python benches/flight_throughput.py --lancesql target/release/lancesql --roapi roapi [--rows N]
"""

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import lance
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq

from bench_support import free_port, items, start_lancesql, stop


class BareServer(flight.FlightServerBase):
    """DoGet of one in-memory table: the ceiling for any Flight server on this machine."""

    def __init__(self, location, table):
        super().__init__(location)
        self.table = table

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.table)


def wait_for_port(port, process=None, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on port {port}")


def read_adbc(uri):
    with flightsql.connect(uri, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM items")
        return cursor.fetch_arrow_table()


def read_bare(port):
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    return client.do_get(flight.Ticket(b"items")).read_all()


def best_of(repeat, action, expected_rows=None):
    best, result = None, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - started
        if expected_rows is not None and result.num_rows != expected_rows:
            raise SystemExit(f"read {result.num_rows} rows, expected {expected_rows}")
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lancesql", required=True, help="the lancesql binary (optimised)")
    parser.add_argument("--roapi", required=True, help="the roapi 0.12.7 binary")
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="lancesql-flight-bench-")
    root = os.path.join(folder, "lance")
    os.makedirs(root)
    processes, bare = [], None
    try:
        table = items(args.rows, seed=11)
        size = table.nbytes
        print(f"{args.rows:,} rows, {size / 1e6:,.0f} MB as Arrow", flush=True)
        lance.write_dataset(table, os.path.join(root, "items.lance"))
        parquet = os.path.join(folder, "items.parquet")
        pq.write_table(table, parquet)

        lancesql, _, address = start_lancesql(args.lancesql, root)
        processes.append(lancesql)
        roapi_port = free_port()
        roapi = subprocess.Popen(
            [args.roapi, "--addr-flight-sql", f"127.0.0.1:{roapi_port}",
             "--addr-http", f"127.0.0.1:{free_port()}", "--addr-postgres",
             f"127.0.0.1:{free_port()}", "-t", f"items={parquet}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(roapi)
        wait_for_port(roapi_port, roapi, timeout=300)
        bare_port = free_port()
        bare = BareServer(f"grpc://127.0.0.1:{bare_port}", table)
        threading.Thread(target=bare.serve, daemon=True).start()
        wait_for_port(bare_port)

        contenders = {
            "bare pyarrow.flight DoGet (from memory)": lambda: read_bare(bare_port),
            "roapi 0.12.7 (Parquet loaded into memory)": lambda: read_adbc(
                f"grpc://127.0.0.1:{roapi_port}"),
            "lancesql (Lance dataset on local disk)": lambda: read_adbc(f"grpc://{address}"),
        }
        results = {}
        for name, read in contenders.items():
            seconds, _ = best_of(args.repeat, read, args.rows)
            results[name] = size / seconds
        print("\n| server | GB/s | rows/s |")
        print("|---|---|---|")
        for name, rate in results.items():
            print(f"| {name} | {rate / 1e9:.2f} | {rate / size * args.rows:,.0f} |")
        ours = results["lancesql (Lance dataset on local disk)"]
        print(f"\nlancesql / roapi: {ours / results['roapi 0.12.7 (Parquet loaded into memory)']:.2f}x")
        print(f"lancesql / bare DoGet: {ours / results['bare pyarrow.flight DoGet (from memory)']:.2f}x")

        counter = iter(range(1_000_000))

        # ADBC sends each record batch as one gRPC message, and its client refuses messages over
        # 16 MiB: the table goes in batches of 100,000 rows, as a loader would send it.
        chunked = pa.Table.from_batches(table.to_batches(max_chunksize=100_000))

        def ingest():
            name = f"ingested_{next(counter)}"
            with flightsql.connect(f"grpc://{address}", autocommit=True) as connection:
                with connection.cursor() as cursor:
                    cursor.adbc_ingest(name, chunked, mode="create")
            return table

        def write_dataset():
            target = os.path.join(folder, f"pylance_{next(counter)}.lance")
            lance.write_dataset(table, target)
            return table

        ingest_seconds, _ = best_of(args.repeat, ingest)
        pylance_seconds, _ = best_of(args.repeat, write_dataset)
        print("\n| ingest | seconds | GB/s |")
        print("|---|---|---|")
        print(f"| lancesql adbc_ingest | {ingest_seconds:.2f} | {size / ingest_seconds / 1e9:.2f} |")
        print(f"| pylance write_dataset | {pylance_seconds:.2f} | {size / pylance_seconds / 1e9:.2f} |")
        print(f"\nadbc_ingest / write_dataset: {pylance_seconds / ingest_seconds:.2f}x")
    finally:
        if bare is not None:
            bare.shutdown()
        for process in processes:
            stop(process)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
