"""s3:// roots against a real S3-compatible server (moto's) that the test starts on loopback."""

import socket
import threading
import time

import boto3
import lance
import psycopg
import pyarrow as pa
import pytest
from moto.server import ThreadedMotoServer

from conftest import run, served, sql_json, trust_conninfo

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="lake")
    yield endpoint
    server.stop()


def s3_args(endpoint):
    return ["--data", "s3://lake/root", "--s3-endpoint", endpoint, "--s3-allow-http", "--s3-region", "us-east-1"]


def storage_options(endpoint):
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
            "aws_endpoint": endpoint, "aws_region": "us-east-1", "allow_http": "true"}


def test_s3_root_lists_reads_and_writes(s3_endpoint):
    lance.write_dataset(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), "s3://lake/root/items.lance",
                        storage_options=storage_options(s3_endpoint))
    args = s3_args(s3_endpoint)
    tables = run([*args, "sql", "--format", "json", "-c",
                  "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'lancesql'"],
                 env=CREDENTIALS)
    assert '"items"' in tables.stdout
    rows = run([*args, "sql", "--format", "json", "-c", "SELECT sum(id) AS s FROM items WHERE id > 1"],
               env=CREDENTIALS)
    assert '"s":5' in rows.stdout.replace(" ", "")
    run([*args, "sql", "-c", "CREATE TABLE doubled AS SELECT id * 2 AS id FROM items"], env=CREDENTIALS)
    written = lance.dataset("s3://lake/root/doubled.lance", storage_options=storage_options(s3_endpoint))
    assert sorted(written.to_table().column("id").to_pylist()) == [2, 4, 6]


def test_unreachable_store_is_a_clear_error():
    port = free_port()  # nothing listens here
    result = run(["--data", "s3://lake/root", "--s3-endpoint", f"http://127.0.0.1:{port}", "--s3-allow-http",
                  "--storage-option", "aws_retry_max_retries=0", "sql", "-c", "SELECT * FROM items"],
                 env=CREDENTIALS, check=False)
    assert result.returncode != 0
    assert "items" in result.stderr or "s3://lake/root" in result.stderr
    assert "panicked" not in result.stderr


def test_store_failing_mid_write_leaves_the_table_as_it_was():
    """The S3 server goes away during a large INSERT: the INSERT fails with 58030 naming where,
    the server keeps serving, and once the store is back the table is at its old version with
    its old rows and takes new writes."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    store = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    store.start()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(
                     Bucket="flaky")
    args = ["--s3-endpoint", endpoint, "--s3-allow-http", "--s3-region", "us-east-1",
            "--storage-option", "aws_retry_max_retries=1", "--pg-auth", "trust"]
    try:
        with served("s3://flaky/root", *args, env=CREDENTIALS) as addresses:
            with psycopg.connect(trust_conninfo(addresses["pg"]), autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (id BIGINT NOT NULL, label TEXT)")
                conn.execute("INSERT INTO kept VALUES (1, 'a'), (2, 'b'), (3, 'c')")
                failure = []

                def insert():
                    try:
                        with psycopg.connect(trust_conninfo(addresses["pg"]),
                                             autocommit=True) as writer:
                            writer.execute("INSERT INTO kept SELECT value, 'row ' || value "
                                           "FROM generate_series(1, 5000000)")
                        failure.append(None)
                    except psycopg.Error as error:
                        failure.append(error)

                writer = threading.Thread(target=insert)
                writer.start()
                time.sleep(1.0)
                store.stop()
                writer.join(timeout=240)
                assert failure and failure[0] is not None, "the INSERT finished before the store went away"
                assert failure[0].sqlstate == "58030", repr(failure[0])
                assert "s3://flaky/root/kept.lance" in str(failure[0])
                store = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
                store.start()
                assert conn.execute("SELECT count(*), sum(id) FROM kept").fetchone() == (3, 6)
                conn.execute("INSERT INTO kept VALUES (4, 'd')")
                assert conn.execute("SELECT count(*) FROM kept").fetchone() == (4,)
        dataset = lance.dataset("s3://flaky/root/kept.lance",
                                storage_options=storage_options(endpoint))
        assert dataset.count_rows() == 4
        assert dataset.version == 3
    finally:
        store.stop()
