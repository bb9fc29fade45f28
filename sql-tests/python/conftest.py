"""Shared helpers: run the real lancesql binary the way a user does."""

import contextlib
import json
import os
import signal
import subprocess

import pyarrow as pa
import pytest

BIN = os.environ.get("LANCESQL_BIN", "lancesql")


def run(args, *, input=None, env=None, check=True):
    """Runs `lancesql ARGS...`; returns the CompletedProcess (text mode unless input is bytes)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(
        [BIN, *args], input=input, capture_output=True, text=True, env=full_env, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"lancesql {args} failed ({result.returncode}):\n{result.stderr}")
    return result


def sql_json(data, sql, **kwargs):
    """Rows of one statement as a list of dicts."""
    result = run(["--data", str(data), "sql", "--format", "json", "-c", sql], **kwargs)
    return json.loads(result.stdout)


def sql_arrow(data, sql, env=None):
    """One statement's result as a pyarrow Table (Arrow IPC stream output)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(
        [BIN, "--data", str(data), "sql", "--format", "arrow", "-c", sql],
        capture_output=True, env=full_env, timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()
    return pa.ipc.open_stream(result.stdout).read_all()


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    return root


@contextlib.contextmanager
def served(data, *args, env=None):
    """`lancesql serve` over `data` (with the demo tables), the Postgres and Flight SQL listeners
    on 127.0.0.1 port 0 unless ARGS say otherwise; yields {"pg": (host, port), "flight":
    (host, port) or None, "process": Popen}. On exit it is stopped with SIGTERM and must stop
    cleanly."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    listen = []
    if "--flight-listen" not in args:
        listen += ["--flight-listen", "127.0.0.1:0"]
    process = subprocess.Popen(
        [BIN, "--data", str(data), "serve", "--pg-listen", "127.0.0.1:0", *listen,
         "--demo-if-empty", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
    )
    flight_off = "off" in [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--flight-listen"]
    addresses = {"pg": None, "flight": None, "process": process}

    def address(line):
        host, port = line.rsplit(" ", 1)[1].strip().rsplit(":", 1)
        return host, int(port)

    while addresses["pg"] is None or (addresses["flight"] is None and not flight_off):
        line = process.stdout.readline()
        if "Postgres wire protocol on" in line:
            addresses["pg"] = address(line)
        elif "Arrow Flight SQL on" in line:
            addresses["flight"] = address(line)
        elif not line:
            process.kill()
            raise AssertionError(process.stderr.read())
    try:
        yield addresses
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert "stopped" in process.stderr.read()


@contextlib.contextmanager
def pg_server(data, *args, env=None):
    """`served`, yielding only the Postgres listener's (host, port)."""
    with served(data, *args, env=env) as addresses:
        yield addresses["pg"]


def trust_conninfo(address, user="lancesql"):
    host, port = address
    return f"host={host} port={port} dbname=lancesql user={user}"
