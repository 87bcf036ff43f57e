#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 for the cohort registry tests.
#
# Installs Debian's postgresql when no server binaries are found, runs initdb in a
# temporary folder (as the postgres user when we are root: initdb refuses root),
# starts the server on a free loopback port with trust authentication (loopback
# only, test data only), creates a database and writes
#   export CALCINOSIS_TEST_PG_URL=postgresql+psycopg://calcinosis@127.0.0.1:PORT/calcinosis_test
# into .ci/env. Always exits 0: where the server cannot be had it says why, and the
# tests marked `postgres` then skip with that reason.
set -uo pipefail
cd "$(dirname "$0")/.."

skip() { echo "setup-postgres: $*; PostgreSQL tests will skip"; exit 0; }

find_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

BINDIR=$(find_bindir || true)
if [ -z "$BINDIR" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    skip "no PostgreSQL server binaries and no root apt-get to install them"
  fi
  echo "setup-postgres: installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || skip "apt-get update failed"
  apt-get install -y -q --no-install-recommends postgresql >/dev/null || skip "apt-get install postgresql failed"
  BINDIR=$(find_bindir || true)
  [ -n "$BINDIR" ] || skip "postgresql installed but no initdb/pg_ctl found under /usr/lib/postgresql"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') \
  || skip "cannot find a free port"
BASE=$(mktemp -d /tmp/calcinosis-pg.XXXXXX) || skip "cannot make a temporary folder"
mkdir -p "$BASE/data" "$BASE/sock"

if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$BASE" postgres >/dev/null 2>&1 \
    || skip "running as root and no postgres user to run the server as"
  chown -R postgres "$BASE"
  as_server() { runuser -u postgres -- "$@"; }
else
  as_server() { "$@"; }
fi

as_server "$BINDIR/initdb" -D "$BASE/data" -U calcinosis --auth=trust -E UTF8 --no-locale >"$BASE/initdb.log" 2>&1 \
  || { tail -n 5 "$BASE/initdb.log"; skip "initdb failed"; }
as_server "$BINDIR/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 60 \
  -o "-p $PORT -k $BASE/sock -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
  || { tail -n 5 "$BASE/server.log"; skip "the server did not start"; }
as_server "$BINDIR/createdb" -h 127.0.0.1 -p "$PORT" -U calcinosis calcinosis_test \
  || skip "createdb failed"

URL="postgresql+psycopg://calcinosis@127.0.0.1:$PORT/calcinosis_test"
touch .ci/env
grep -v '^export CALCINOSIS_TEST_PG_URL=' .ci/env >"$BASE/env" || true
echo "export CALCINOSIS_TEST_PG_URL=$URL" >>"$BASE/env"
cat "$BASE/env" >.ci/env
echo "setup-postgres: PostgreSQL $("$BINDIR/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$PORT (data in $BASE); stop with: pg_ctl -D $BASE/data stop"
