#!/usr/bin/env bash
# Installs what lancesql's build and tests need on a fresh Debian machine. Idempotent: a second
# run checks and returns in seconds.
#   - protoc (Lance compiles protobuf descriptions at build time)
#   - GNU time (the tests measure a process's peak memory with it)
#   - psql (a real Postgres client for the wire-protocol tests), openssl (test certificates)
#   - a Python virtualenv with the real clients the tests use (pylance, pyarrow, pytest, moto's S3
#     server, psycopg 3, psycopg2, asyncpg, SQLAlchemy with pandas, the ADBC PostgreSQL driver,
#     DuckDB with its postgres extension, Trino's Python client)
#   - pgjdbc (Debian's libpostgresql-jdbc-java, run with the machine's java) and node-postgres
#     (npm, into the cache)
#   - Trino's server (Maven Central, into the cache, with only the PostgreSQL connector's
#     plugins kept); it needs Java 24 or newer, which the test finds under /usr/lib/jvm
#   - the ADBC Flight SQL driver (PyPI), the Flight SQL JDBC driver (Maven Central, into the
#     cache) and arrow-go's Flight SQL driver (Go module proxy; Go itself must be installed)
set -euo pipefail

cache="${LANCESQL_CACHE:-$HOME/.cache/lancesql}"
venv="$cache/venv"
requirements="$(cd "$(dirname "$0")" && pwd)/requirements-test.txt"

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -x /usr/bin/time ] || missing+=(time)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: preparing the test virtualenv in $venv" >&2
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

# node-postgres, pinned by sql-tests/clients/package.json, installed into the cache.
clients="$(cd "$(dirname "$0")/.." && pwd)/sql-tests/clients"
node_cache="$cache/node"
node_want="$(sha256sum "$clients/package.json" | cut -d' ' -f1)"
if [ "$(cat "$node_cache/.package.sha256" 2>/dev/null)" != "$node_want" ]; then
  echo "setup: installing node-postgres in $node_cache" >&2
  mkdir -p "$node_cache"
  cp "$clients/package.json" "$node_cache/package.json"
  (cd "$node_cache" && npm install --silent --no-audit --no-fund >/dev/null)
  echo "$node_want" > "$node_cache/.package.sha256"
fi

# Trino's server, pinned with its SHA-1 from Maven Central. Unpacked with only the plugins its
# PostgreSQL connector needs, so it starts in seconds.
trino_version=476
trino_sha1=c9b38be4017ebd2f7095455aaac772fb40247ebe
trino_home="$cache/trino/trino-server-$trino_version"
if [ ! -x "$trino_home/bin/launcher" ]; then
  echo "setup: downloading Trino $trino_version into $cache/trino" >&2
  mkdir -p "$cache/trino"
  tarball="$cache/trino/trino-server-$trino_version.tar.gz"
  curl -sSf -o "$tarball.part" \
    "https://repo1.maven.org/maven2/io/trino/trino-server/$trino_version/trino-server-$trino_version.tar.gz"
  echo "$trino_sha1  $tarball.part" | sha1sum --check --quiet
  rm -rf "$trino_home.part" && mkdir -p "$trino_home.part"
  tar xzf "$tarball.part" -C "$trino_home.part" --strip-components=1
  find "$trino_home.part/plugin" -mindepth 1 -maxdepth 1 \
    ! -name postgresql ! -name geospatial -exec rm -rf {} +
  rm -f "$tarball.part"
  mv "$trino_home.part" "$trino_home"
fi

# Go's Flight SQL database/sql driver (arrow-go, pinned by sql-tests/clients/go/go.mod, go.sum),
# downloaded into Go's module cache; the test builds the client from it.
go_bin="$(command -v go || echo /usr/local/go/bin/go)"
if [ ! -x "$go_bin" ]; then
  echo "setup: the Flight SQL tests need a Go toolchain (https://go.dev/dl/); none found" >&2
  exit 1
fi
(cd "$(dirname "$0")/../sql-tests/clients/go" && "$go_bin" mod download)

# The Arrow Flight SQL JDBC driver (what DBeaver and DataGrip use for Flight SQL), pinned with its
# SHA-1 from Maven Central; run with the machine's java.
jdbc_version=18.3.0
jdbc_sha1=a77be460b83b673e41c5e2d364e7189a223f4861
jdbc_jar="$cache/jdbc/flight-sql-jdbc-driver-$jdbc_version.jar"
if [ ! -f "$jdbc_jar" ]; then
  echo "setup: downloading the Flight SQL JDBC driver $jdbc_version into $cache/jdbc" >&2
  mkdir -p "$cache/jdbc"
  curl -sSf -o "$jdbc_jar.part" \
    "https://repo1.maven.org/maven2/org/apache/arrow/flight-sql-jdbc-driver/$jdbc_version/flight-sql-jdbc-driver-$jdbc_version.jar"
  echo "$jdbc_sha1  $jdbc_jar.part" | sha1sum --check --quiet
  mv "$jdbc_jar.part" "$jdbc_jar"
fi
