"""Search and random access: lancesql against pylance on the same dataset, in the same run
(docs/benchmarks.md has the figures).

Data (written with pylance, not timed): `items`, --rows rows (default 200,000) of (id int64,
category string, text string of 12 words from a 2,000-word vocabulary, embedding 128 x float32
around 64 cluster centres) with an IVF_PQ index on `embedding` and an INVERTED index on `text`;
and `blobs`, --blob-rows rows (default 2,000) of (id, label, payload of 100 KB), every payload
distinct (as images or audio are; repeated payloads would be dictionary-encoded by Lance and
measure its dictionary decoding instead).

pylance runs in this process, so its figures depend on the C allocator: glibc hands blocks over
its mmap threshold back to the kernel on every free and raises that threshold only after large
frees, so a take of megabytes can pay for faulting its memory in afresh or not, depending on what
the process did before (a factor of five for the loop). The script pins the threshold high at
start, which gives pylance its best case every time.

Each contender runs the same --queries queries one after another (one client, as an application
serving requests would) after a warm-up pass; figures are queries per second:
- k-nearest (k = 10, nprobes 20, refine factor 2): pylance `to_table(nearest=...)` against
  lancesql's `vector_search(...)` over Flight SQL (ADBC, the vector bound as `?`) and over the
  Postgres wire protocol (psycopg, `%s`). Every query's ids must equal pylance's (same settings,
  same recall), else the run stops.
- full text (two vocabulary words, 10 best): pylance `to_table(full_text_query=..., limit=10)`
  against `fts(...)` with 'limit' 10 over both protocols, ids compared the same way.
- 100 random rows: pylance `_take_rows` against `take('items', ?)` over both protocols (psycopg
  with binary results).
- filter, shuffle, take over `blobs`: the row ids of one label, shuffled, read back in batches of
  32 rows (payload included), in rows per second, over both protocols.

Run with `scripts/dev bench-search` (optimised build) or directly:
  python benches/search_throughput.py --lancesql target/release/lancesql [--rows N]
"""

import argparse
import ctypes
import os
import random
import shutil
import tempfile
import time

import adbc_driver_flightsql.dbapi as flightsql
import lance
import numpy as np
import psycopg
import pyarrow as pa

from bench_support import start_lancesql, stop

DIMENSIONS = 128
K = 10
NPROBES = 20
REFINE_FACTOR = 2
TAKE_ROWS = 100
BLOB_BYTES = 100_000
SHUFFLE_BATCH = 32


def write_items(path, rows, seed=17):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, DIMENSIONS)).astype(np.float32)
    embedding = centres[rng.integers(0, 64, rows)] + rng.normal(
        scale=0.3, size=(rows, DIMENSIONS)).astype(np.float32)
    vocabulary = np.array([f"word{i}" for i in range(2000)])
    words = vocabulary[rng.zipf(1.3, size=(rows, 12)) % 2000]
    table = pa.table({
        "id": np.arange(rows, dtype=np.int64),
        "category": pa.array([f"category_{i % 16}" for i in range(rows)]),
        "text": pa.array([" ".join(row) for row in words]),
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(embedding.reshape(-1)), DIMENSIONS),
    })
    dataset = lance.write_dataset(table, path)
    dataset.create_index("embedding", "IVF_PQ", num_partitions=128, num_sub_vectors=16)
    dataset.create_scalar_index("text", "INVERTED")
    return lance.dataset(path), embedding, vocabulary


def write_blobs(path, rows, seed=19):
    rng = np.random.default_rng(seed)
    table = pa.table({
        "id": np.arange(rows, dtype=np.int64),
        "label": pa.array([f"label_{i % 4}" for i in range(rows)]),
        "payload": pa.array([rng.bytes(BLOB_BYTES) for _ in range(rows)], pa.large_binary()),
    })
    return lance.write_dataset(table, path, max_rows_per_file=500)


def pin_allocator():
    """Keeps glibc's heap for blocks up to 64 MiB and memory freed up to 256 MiB, whatever ran
    before (see the module doc); both are fixed once set, no longer adjusted by glibc."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_mmap_threshold, 64 << 20) and libc.mallopt(m_trim_threshold, 256 << 20)):
        raise SystemExit("mallopt refused to pin the allocator's thresholds")


def per_second(count, action):
    """`count` divided by the seconds `action` takes, after one untimed warm-up run."""
    action()
    started = time.perf_counter()
    action()
    return count / (time.perf_counter() - started)


def same_ids(what, ours, theirs):
    for query, (got, wanted) in enumerate(zip(ours, theirs)):
        if got != wanted:
            raise SystemExit(f"{what}, query {query}: lancesql found {got}, pylance {wanted}")


def vector_parameter(vector):
    return pa.record_batch([pa.array([[float(x) for x in vector]], pa.list_(pa.float32()))],
                           names=["query"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lancesql", required=True, help="the lancesql binary (optimised)")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--blob-rows", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    pin_allocator()

    folder = tempfile.mkdtemp(prefix="lancesql-search-bench-")
    server = None
    try:
        started = time.perf_counter()
        dataset, embedding, vocabulary = write_items(os.path.join(folder, "items.lance"),
                                                     args.rows)
        blobs = write_blobs(os.path.join(folder, "blobs.lance"), args.blob_rows)
        print(f"{args.rows:,} items with IVF_PQ and INVERTED indices, {args.blob_rows:,} blobs "
              f"of {BLOB_BYTES // 1000} KB, written in {time.perf_counter() - started:.0f} s",
              flush=True)
        server, pg_port, flight_address = start_lancesql(args.lancesql, folder)
        flight = flightsql.connect(f"grpc://{flight_address}", autocommit=True)
        flight_cursor = flight.cursor()
        pg = psycopg.connect(f"host=127.0.0.1 port={pg_port} user=bench dbname=lancesql",
                             autocommit=True)
        # Binary results for rows with payloads, as a loader would ask (text would hex-encode
        # every blob).
        pg_binary = pg.cursor(binary=True)
        rng = random.Random(23)
        queries = [embedding[rng.randrange(args.rows)] + np.float32(0.05)
                   for _ in range(args.queries)]
        texts = [f"{rng.choice(vocabulary[:200])} {rng.choice(vocabulary[:200])}"
                 for _ in range(args.queries)]
        results = {}

        def pylance_nearest():
            # The columns lancesql's query returns, named (Lance warns when `_distance` is
            # added without being asked for).
            return [dataset.to_table(columns=["id", "_distance"], nearest={
                "column": "embedding", "q": query, "k": K, "nprobes": NPROBES,
                "refine_factor": REFINE_FACTOR},
                disable_scoring_autoprojection=True)["id"].to_pylist() for query in queries]

        nearest_sql = (f"SELECT id, _distance FROM vector_search('items', 'embedding', ?, {K}, "
                       f"'nprobes', {NPROBES}, 'refine_factor', {REFINE_FACTOR})")

        def flight_nearest():
            found = []
            for query in queries:
                flight_cursor.execute(nearest_sql, parameters=vector_parameter(query))
                found.append(flight_cursor.fetch_arrow_table()["id"].to_pylist())
            return found

        def pg_nearest():
            return [[row[0] for row in pg.execute(nearest_sql.replace("?", "%s"),
                                                  ([float(x) for x in query],)).fetchall()]
                    for query in queries]

        expected = pylance_nearest()
        same_ids("vector_search over Flight SQL", flight_nearest(), expected)
        same_ids("vector_search over psycopg", pg_nearest(), expected)
        results["k-nearest"] = {
            "pylance": per_second(len(queries), pylance_nearest),
            "lancesql Flight SQL (ADBC)": per_second(len(queries), flight_nearest),
            "lancesql pgwire (psycopg)": per_second(len(queries), pg_nearest),
        }

        def pylance_fts():
            return [dataset.to_table(columns=["id"], full_text_query=text, limit=K,
                                     disable_scoring_autoprojection=True)["id"].to_pylist()
                    for text in texts]

        fts_sql = f"SELECT id, _score FROM fts('items', ?, 'limit', {K})"

        def flight_fts():
            found = []
            for text in texts:
                flight_cursor.execute(fts_sql, parameters=pa.record_batch(
                    [pa.array([text])], names=["query"]))
                found.append(flight_cursor.fetch_arrow_table()["id"].to_pylist())
            return found

        def pg_fts():
            return [[row[0] for row in pg.execute(fts_sql.replace("?", "%s"), (text,)).fetchall()]
                    for text in texts]

        expected = [sorted(ids) for ids in pylance_fts()]
        same_ids("fts over Flight SQL", [sorted(ids) for ids in flight_fts()], expected)
        same_ids("fts over psycopg", [sorted(ids) for ids in pg_fts()], expected)
        results["full text"] = {
            "pylance": per_second(len(texts), pylance_fts),
            "lancesql Flight SQL (ADBC)": per_second(len(texts), flight_fts),
            "lancesql pgwire (psycopg)": per_second(len(texts), pg_fts),
        }

        row_sets = [rng.sample(range(args.rows), TAKE_ROWS) for _ in range(args.queries)]

        def pylance_take():
            for ids in row_sets:
                dataset._take_rows(ids)

        def flight_take():
            for ids in row_sets:
                flight_cursor.execute("SELECT * FROM take('items', ?)", parameters=pa.record_batch(
                    [pa.array([ids], pa.list_(pa.int64()))], names=["ids"]))
                if flight_cursor.fetch_arrow_table().num_rows != TAKE_ROWS:
                    raise SystemExit("take returned the wrong number of rows")

        def pg_take():
            for ids in row_sets:
                if len(pg_binary.execute("SELECT * FROM take('items', %s)", (ids,)).fetchall()) \
                        != TAKE_ROWS:
                    raise SystemExit("take returned the wrong number of rows")

        results[f"{TAKE_ROWS} random rows"] = {
            "pylance": per_second(len(row_sets), pylance_take),
            "lancesql Flight SQL (ADBC)": per_second(len(row_sets), flight_take),
            "lancesql pgwire (psycopg)": per_second(len(row_sets), pg_take),
        }

        label = "label_1"
        expected_rows = sum(1 for i in range(args.blob_rows) if i % 4 == 1)

        def pylance_workflow():
            ids = blobs.to_table(columns=[], filter=f"label = '{label}'",
                                 with_row_id=True)["_rowid"].to_pylist()
            rng.shuffle(ids)
            read = 0
            for start in range(0, len(ids), SHUFFLE_BATCH):
                read += blobs._take_rows(ids[start:start + SHUFFLE_BATCH]).num_rows
            if read != expected_rows:
                raise SystemExit(f"pylance workflow read {read} rows")

        def flight_workflow():
            flight_cursor.execute(f"SELECT _rowid FROM blobs WHERE label = '{label}'")
            ids = flight_cursor.fetch_arrow_table()["_rowid"].to_pylist()
            rng.shuffle(ids)
            read = 0
            for start in range(0, len(ids), SHUFFLE_BATCH):
                batch = pa.array([ids[start:start + SHUFFLE_BATCH]], pa.list_(pa.uint64()))
                flight_cursor.execute("SELECT * FROM take('blobs', ?)",
                                      parameters=pa.record_batch([batch], names=["ids"]))
                read += flight_cursor.fetch_arrow_table().num_rows
            if read != expected_rows:
                raise SystemExit(f"lancesql workflow read {read} rows")

        def pg_workflow():
            ids = [row[0] for row in pg_binary.execute(
                "SELECT _rowid FROM blobs WHERE label = %s", (label,)).fetchall()]
            rng.shuffle(ids)
            read = 0
            for start in range(0, len(ids), SHUFFLE_BATCH):
                read += len(pg_binary.execute("SELECT * FROM take('blobs', %s)",
                                              (ids[start:start + SHUFFLE_BATCH],)).fetchall())
            if read != expected_rows:
                raise SystemExit(f"lancesql workflow read {read} rows")

        results["filter, shuffle, take (rows/s)"] = {
            "pylance": per_second(expected_rows, pylance_workflow),
            "lancesql Flight SQL (ADBC)": per_second(expected_rows, flight_workflow),
            "lancesql pgwire (psycopg)": per_second(expected_rows, pg_workflow),
        }

        print("\n| workload | contender | per second | / pylance |")
        print("|---|---|---|---|")
        for workload, contenders in results.items():
            for name, rate in contenders.items():
                print(f"| {workload} | {name} | {rate:,.0f} | "
                      f"{rate / contenders['pylance']:.2f}x |")
        flight.close()
        pg.close()
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
