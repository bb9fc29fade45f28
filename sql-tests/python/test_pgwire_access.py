"""`lancesql serve` security and session behaviour, with real clients: SCRAM passwords, TLS,
read-only mode, the connection limit, the per-query memory limit, statement timeouts and Postgres
parameters. After every refusal the server must still answer."""

import asyncio
import os
import socket
import stat
import struct
import subprocess
import threading
import time

import asyncpg
import psycopg
import pytest

from conftest import pg_server, run, trust_conninfo


def write_private(path, text):
    path.write_text(text)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


def recv_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the server closed the connection mid-message"
        data += chunk
    return data


def startup_refusal(address, user="lancesql"):
    """Sends a plaintext StartupMessage; returns (severity, SQLSTATE, message) of the server's
    ErrorResponse, or None when the server went on with the login."""
    host, port = address
    parameters = b"user\0" + user.encode() + b"\0database\0lancesql\0\0"
    body = struct.pack("!I", 196608) + parameters
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(struct.pack("!I", len(body) + 4) + body)
        kind = recv_exact(sock, 1)
        (length,) = struct.unpack("!I", recv_exact(sock, 4))
        payload = recv_exact(sock, length - 4)
    if kind != b"E":
        return None
    fields = {f[:1].decode(): f[1:].decode() for f in payload.split(b"\0") if f}
    return fields["S"], fields["C"], fields["M"]


def answers(conninfo, **kwargs):
    with psycopg.connect(conninfo, autocommit=True, **kwargs) as conn:
        return conn.execute("SELECT count(*) FROM products").fetchone()[0] > 0


def answers_once_a_slot_is_free(conninfo, seconds=10.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return answers(conninfo)
        except psycopg.OperationalError as error:
            if "too many clients" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_password_logins_use_scram_and_refuse_wrong_passwords(data, tmp_path):
    users = write_private(tmp_path / "users", "# name:password\nalice:s3cret\n")
    env = {"LANCESQL_PG_USER": "bob", "LANCESQL_PG_PASSWORD": "hunter2"}
    with pg_server(data, "--pg-users-file", str(users), env=env) as (host, port):
        base = f"host={host} port={port} dbname=lancesql"
        assert answers(f"{base} user=alice password=s3cret")
        assert answers(f"{base} user=bob password=hunter2")
        for user, password in [("alice", "wrong"), ("nobody", "s3cret"), ("bob", "s3cret")]:
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(f"{base} user={user} password='{password}'")

        async def asyncpg_login(password):
            conn = await asyncpg.connect(host=host, port=port, user="alice", password=password,
                                         database="lancesql", ssl=False)
            try:
                return await conn.fetchval("SELECT count(*) FROM products")
            finally:
                await conn.close()

        # asyncpg reports the SQLSTATE of a refused login: 28P01.
        with pytest.raises(asyncpg.exceptions.InvalidPasswordError):
            asyncio.run(asyncpg_login("wrong"))
        assert asyncio.run(asyncpg_login("s3cret")) > 0
        # A login without a password at all is refused too.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"{base} user=alice", connect_timeout=10)
        assert answers(f"{base} user=alice password=s3cret")


@pytest.mark.parametrize("args, says", [
    ([], "password authentication needs users"),
    (["--pg-auth", "trust", "--pg-listen", "0.0.0.0:0"], "loopback addresses only"),
    (["--pg-tls-cert", "/nonexistent/cert.pem", "--pg-tls-key", "/nonexistent/key.pem",
      "--pg-auth", "trust"], "/nonexistent/cert.pem"),
    (["--pg-tls-cert", "/etc/hostname", "--pg-auth", "trust"], "both --pg-tls-cert and"),
    (["--pg-require-tls", "--pg-auth", "trust"], "--pg-require-tls needs"),
    (["--pg-auth", "trust", "--pg-max-connections", "0"], "at least 1"),
    (["--pg-auth", "trust", "--lance-cpu-threads", "0"], "'--lance-cpu-threads"),
])
def test_misconfigurations_refuse_to_start_and_write_nothing(data, args, says):
    listen = [] if "--pg-listen" in args else ["--pg-listen", "127.0.0.1:0"]
    result = run(["--data", str(data), "serve", *listen, "--demo-if-empty", *args], check=False)
    assert result.returncode != 0
    assert says in result.stderr
    assert "Postgres wire protocol on" not in result.stdout
    assert not any(data.iterdir()), "a refused start wrote demo data"


def test_a_users_file_others_can_read_is_refused(data, tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:s3cret\n")
    users.chmod(0o644)
    result = run(["--data", str(data), "serve", "--pg-listen", "127.0.0.1:0",
                  "--pg-users-file", str(users)], check=False)
    assert result.returncode != 0 and "chmod 600" in result.stderr


def make_certificate(folder):
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=120,
    )
    key.chmod(0o600)
    return cert, key


def test_a_key_that_does_not_fit_the_certificate_refuses_to_start(data, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _ = make_certificate(tmp_path / "a")
    _, other_key = make_certificate(tmp_path / "b")
    result = run(["--data", str(data), "serve", "--pg-listen", "127.0.0.1:0", "--pg-auth",
                  "trust", "--pg-tls-cert", str(cert), "--pg-tls-key", str(other_key)],
                 check=False)
    assert result.returncode != 0 and "does not fit the certificate" in result.stderr
    assert not any(data.iterdir())


def test_tls_is_negotiated_and_can_be_required(data, tmp_path):
    cert, key = make_certificate(tmp_path)
    users = write_private(tmp_path / "users", "alice:s3cret\n")
    args = ["--pg-tls-cert", str(cert), "--pg-tls-key", str(key), "--pg-require-tls",
            "--pg-users-file", str(users)]
    with pg_server(data, *args) as address:
        host, port = address
        base = f"host={host} port={port} dbname=lancesql user=alice password=s3cret"
        with psycopg.connect(f"{base} sslmode=require", autocommit=True) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT count(*) FROM products").fetchone()[0] > 0
        # Plaintext is refused before any password is asked for.
        assert startup_refusal(address, "alice")[:2] == ("FATAL", "28000")
        with pytest.raises(psycopg.OperationalError, match="requires TLS"):
            psycopg.connect(f"{base} sslmode=disable")
        # psql (libpq from Debian) negotiates TLS and SCRAM as well.
        result = subprocess.run(
            ["psql", f"{base} sslmode=require", "-X", "-A", "-t", "-c", "SELECT 7"],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0 and result.stdout.strip() == "7", result.stderr
        assert answers(f"{base} sslmode=require")


def test_read_only_mode_refuses_writes_with_25006(data):
    with pg_server(data, "--pg-auth", "trust", "--read-only") as address:
        with psycopg.connect(trust_conninfo(address), autocommit=True) as conn:
            for statement in ["CREATE TABLE t AS SELECT 1 AS x", "DROP TABLE products",
                              "INSERT INTO products (id) VALUES (1)", "COPY products FROM STDIN"]:
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    conn.execute(statement)
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            assert conn.execute("SELECT count(*) FROM products").fetchone()[0] > 0
    assert sorted(p.name for p in data.iterdir()) == ["products.lance", "reviews.lance"]


def test_the_connection_limit_refuses_the_next_client_with_53300(data):
    with pg_server(data, "--pg-auth", "trust", "--pg-max-connections", "1") as address:
        with psycopg.connect(trust_conninfo(address), autocommit=True) as held:
            assert startup_refusal(address)[:2] == ("FATAL", "53300")
            with pytest.raises(psycopg.OperationalError, match="too many clients"):
                psycopg.connect(trust_conninfo(address))
            assert held.execute("SELECT 1").fetchone() == (1,)
            # A cancel request opens a connection too, but takes no slot.
            timer = threading.Timer(1.0, held.cancel)
            timer.start()
            try:
                with pytest.raises(psycopg.errors.QueryCanceled):
                    held.execute("SELECT sum(value) FROM generate_series(1, 20000000000)")
            finally:
                timer.cancel()
            assert held.execute("SELECT 1").fetchone() == (1,)
        # The slot is free again once the server has seen the first client leave (as in
        # PostgreSQL, that happens a moment after the client's close returns).
        assert answers_once_a_slot_is_free(trust_conninfo(address))


def test_one_query_over_the_memory_limit_fails_alone(data):
    with pg_server(data, "--pg-auth", "trust", "--query-memory-limit", "4MiB") as address:
        with psycopg.connect(trust_conninfo(address), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.OutOfMemory, match="query-memory-limit"):
                conn.execute("SELECT array_agg(value) FROM generate_series(1, 5000000)")
            small = conn.execute("SELECT array_length(array_agg(value), 1) "
                                 "FROM generate_series(1, 1000)").fetchone()
            assert small == (1000,)


def test_statement_timeout_cancels_and_the_session_goes_on(data):
    with pg_server(data, "--pg-auth", "trust") as address:
        with psycopg.connect(trust_conninfo(address), autocommit=True) as conn:
            conn.execute("SET statement_timeout = '300ms'")
            assert conn.execute("SHOW statement_timeout").fetchone() == ("300ms",)
            with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
                conn.execute("SELECT sum(value) FROM generate_series(1, 20000000000)")
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.execute("RESET statement_timeout")
            assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_postgres_parameters_and_session_commands(data):
    with pg_server(data, "--pg-auth", "trust") as address:
        conninfo = trust_conninfo(address, user="carol")
        with psycopg.connect(conninfo, autocommit=True, application_name="nightly") as conn:
            info = conn.info
            assert info.parameter_status("server_version") == "16.6"
            assert info.server_version == 160006
            assert info.parameter_status("session_authorization") == "carol"
            assert conn.execute("SHOW application_name").fetchone() == ("nightly",)
            conn.execute("SET application_name = 'reports'")
            # Reported back as Postgres does, without asking.
            assert info.parameter_status("application_name") == "reports"
            assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL 16.6 ")
            conn.execute("SET TIME ZONE 'Europe/Paris'")
            assert conn.execute("SHOW TimeZone").fetchone() == ("Europe/Paris",)
            assert info.parameter_status("TimeZone") == "Europe/Paris"
            conn.execute("SET DateStyle TO ISO, DMY")
            assert conn.execute("SHOW datestyle").fetchone() == ("ISO, DMY",)
            conn.execute("SET extra_float_digits = 3")
            assert conn.execute("SHOW TRANSACTION ISOLATION LEVEL").fetchone() == (
                "read committed",)
            for statement, error in [
                ("SET DateStyle = 'German'", psycopg.errors.InvalidParameterValue),
                ("SET no_such_parameter = 1", psycopg.errors.UndefinedObject),
                ("SET server_version = '9.6'", psycopg.errors.InvalidParameterValue),
                ("SET search_path = analytics", psycopg.errors.InvalidParameterValue),
                ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                 psycopg.errors.FeatureNotSupported),
                ("COPY (SELECT 1) TO '/tmp/lancesql-copy.csv'", psycopg.errors.FeatureNotSupported),
                ("CREATE VIEW v AS SELECT 1", psycopg.errors.FeatureNotSupported),
            ]:
                with pytest.raises(error):
                    conn.execute(statement)
            assert not os.path.exists("/tmp/lancesql-copy.csv")
            conn.execute("PREPARE two AS SELECT 2")
            assert conn.execute("EXECUTE two").fetchone() == (2,)
            conn.execute("SET lance.fragment_readahead = 3")
            assert conn.execute("DISCARD ALL").statusmessage == "DISCARD ALL"
            assert conn.execute("SHOW application_name").fetchone() == ("nightly",)
            assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
            assert conn.execute("SHOW lance.fragment_readahead").fetchone()[1] != "3"
            with pytest.raises(psycopg.Error):
                conn.execute("EXECUTE two")
        # Savepoints are accepted inside transactions (each statement still commits alone).
        with psycopg.connect(conninfo) as conn:
            with conn.transaction():
                with conn.transaction():
                    assert conn.execute("SELECT 1").fetchone() == (1,)
        # A login asking for a value lancesql cannot honour is refused with the reason.
        with pytest.raises(psycopg.OperationalError, match="ISO style only"):
            psycopg.connect(conninfo, options="-c DateStyle=German")
