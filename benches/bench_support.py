"""What the bench scripts share: their standard rows, and running the real lancesql server (a
free port, the server started on loopback with its bound addresses read from its output, and a
clean stop)."""

import signal
import socket
import subprocess

import numpy as np
import pyarrow as pa


def items(rows, seed, with_value=False):
    """`rows` deterministic rows of (id int64, category string of 32 values, [value int64 0..999,]
    price float64, name string)."""
    rng = np.random.default_rng(seed)
    categories = np.array([f"category_{i:02}" for i in range(32)])
    ids = np.arange(rows, dtype=np.int64)
    columns = {"id": ids, "category": pa.array(categories[rng.integers(0, 32, rows)])}
    if with_value:
        columns["value"] = rng.integers(0, 1000, rows)
    columns["price"] = rng.random(rows) * 1000
    columns["name"] = pa.array([f"item number {i}" for i in ids])
    return pa.table(columns)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_lancesql(binary, root, flight=True):
    """`lancesql serve` over `root` with trusted loopback logins, Postgres wire protocol and (with
    `flight`) Flight SQL on free ports. Returns the process, the Postgres port and the Flight SQL
    `host:port` (None without `flight`)."""
    process = subprocess.Popen(
        [binary, "--data", root, "serve", "--pg-listen", "127.0.0.1:0", "--pg-auth", "trust",
         "--flight-listen", "127.0.0.1:0" if flight else "off"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pg_port, flight_address = None, None
    for _ in range(10):
        line = process.stdout.readline()
        if "Postgres wire protocol on" in line:
            pg_port = int(line.rsplit(":", 1)[1])
        if "Arrow Flight SQL on" in line:
            flight_address = line.rsplit(" ", 1)[1].strip()
        if pg_port is not None and (flight_address is not None or not flight):
            return process, pg_port, flight_address
    stop(process)
    raise SystemExit("lancesql did not report its addresses")


def stop(process):
    """SIGTERM (the server drains its connections), then SIGKILL after a minute."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
