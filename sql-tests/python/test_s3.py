"""s3:// roots against a real S3-compatible server (moto's) that the test starts on loopback."""

import socket

import boto3
import lance
import pyarrow as pa
import pytest
from moto.server import ThreadedMotoServer

from conftest import run, sql_json

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
