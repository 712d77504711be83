#!/usr/bin/env bash
# Run a command next to a throwaway PostgreSQL cluster, for the store's PostgreSQL tests.
#
#   tools/with_postgres.sh make test
#
# Installs Debian's `postgresql` package when the server binaries are missing (root only), starts
# a private cluster (trust auth, loopback, a free port, data in a temp dir), creates a database,
# exports EDGESCORE_TEST_POSTGRES_URL, runs the command, and always stops and deletes the cluster.
# If PostgreSQL cannot be had, it says so loudly and runs the command anyway: the PostgreSQL tests
# then skip (pytest -ra lists why) and the SQLite half of the store suite still runs.
set -euo pipefail

log() { echo "with_postgres: $*" >&2; }

find_pg_bin() {
  local dir
  # Debian keeps the server binaries out of PATH, one folder per major version: take the newest.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) \
             "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

install_pg() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "PostgreSQL server binaries not found and cannot install them (need root + apt-get)"
    return 1
  fi
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null && apt-get install -y -qq postgresql </dev/null >/dev/null
}

as_pg() {
  # initdb and postgres refuse to run as root: run them as the package's `postgres` user.
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + RANDOM % 20000))
}

start_cluster() {
  PGBIN=$(find_pg_bin) || { install_pg && PGBIN=$(find_pg_bin); } || return 1
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    log "running as root but there is no 'postgres' user to run the server as"
    return 1
  fi
  # /tmp, not $TMPDIR: the postgres user must be able to reach it.
  PGTMP=$(mktemp -d /tmp/edgescore-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PGTMP"; fi
  local port
  port=$(free_port)
  as_pg "$PGBIN/initdb" -D "$PGTMP/data" -U postgres --auth=trust --encoding=UTF8 --no-locale \
    >"$PGTMP/initdb.log" 2>&1 || { cat "$PGTMP/initdb.log" >&2; return 1; }
  # fsync off: a throwaway test cluster needs no crash safety, and it makes DDL much faster.
  as_pg "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PGTMP -c fsync=off" start >/dev/null \
    || { tail -n 20 "$PGTMP/server.log" >&2; return 1; }
  as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres edgescore_test || return 1
  export EDGESCORE_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/edgescore_test"
  log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') at $EDGESCORE_TEST_POSTGRES_URL"
}

stop_cluster() {
  if [ -n "${PGTMP:-}" ] && [ -d "$PGTMP" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PGTMP"
  fi
}

PGTMP=""
PGBIN=""
trap stop_cluster EXIT
trap 'exit 130' INT TERM

if [ -n "${EDGESCORE_TEST_POSTGRES_URL:-}" ]; then
  log "using the given EDGESCORE_TEST_POSTGRES_URL"
elif ! start_cluster; then
  stop_cluster
  PGTMP=""
  log "WARNING: no PostgreSQL cluster; the PostgreSQL store tests will be skipped"
fi

"$@"
