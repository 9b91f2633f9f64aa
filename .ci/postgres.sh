#!/usr/bin/env bash
# Install (if needed) and start a local PostgreSQL server for the multi-replica store tests, create a
# role and a database they may use (the role has CREATEDB: each test makes its own database), and print
#
#     DIGEST_TEST_POSTGRES_URL=postgresql://digest_test:…@127.0.0.1:PORT/digest_test
#
# as the LAST line on stdout (everything else goes to stderr). Run as root, non-interactive, on Debian.
# Idempotent: a second run finds the server up and the role and database in place, and prints the same line.
#
#     pg_line=$(bash .ci/postgres.sh | tail -n 1) && export "$pg_line"
set -euo pipefail

ROLE=digest_test
DB=digest_test
PASSWORD=ci-throwaway-pw # a throwaway server on 127.0.0.1 only, for tests
CLUSTER=main

log() { echo "postgres.sh: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  log "run me as root (I install packages and start the server as the postgres user)"
  exit 1
fi

server_version() { # the newest installed Debian server, e.g. 15
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1 || true)
  [[ -n $bin ]] && basename "$(dirname "$(dirname "$bin")")"
}

# 1. The server package (Debian's postgresql: server, client and the pg_*cluster tools).
if [[ -z $(server_version || true) ]] || ! command -v pg_ctlcluster >/dev/null || ! command -v psql >/dev/null; then
  log "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq postgresql >&2
fi
VER=$(server_version)
[[ -n $VER ]] || { log "no PostgreSQL server binaries after installing postgresql"; exit 1; }

# 2. A cluster. The package creates "main" unless told not to (create_main_cluster = false, or an image
# that removed it); create it when missing.
if [[ -z $(pg_lsclusters -h "$VER" "$CLUSTER" 2>/dev/null || true) ]]; then
  log "creating cluster $VER/$CLUSTER"
  pg_createcluster "$VER" "$CLUSTER" >&2
fi
PORT=$(pg_lsclusters -h "$VER" "$CLUSTER" | awk '{print $3}')

# 3. Start it (no systemd in containers: pg_ctlcluster then runs pg_ctl itself as the cluster owner).
install -d -m 2775 -o postgres -g postgres /var/run/postgresql
status=$(pg_lsclusters -h "$VER" "$CLUSTER" | awk '{print $4}')
if [[ $status != online* ]]; then
  log "starting cluster $VER/$CLUSTER on port $PORT"
  if ! pg_ctlcluster "$VER" "$CLUSTER" start >&2; then
    log "could not start the cluster; its log:"
    tail -n 30 "/var/log/postgresql/postgresql-$VER-$CLUSTER.log" >&2 || true
    exit 1
  fi
fi

# 4. Wait until it accepts connections (on TCP, which is what the tests use).
for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$PORT"; then break; fi
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2 || { log "the server does not accept connections on 127.0.0.1:$PORT"; exit 1; }

# 5. Role (CREATEDB: each test creates and drops its own database) and database, idempotently.
as_postgres() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"; }
as_postgres >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SQL
# pg_signal_backend: DROP DATABASE … WITH (FORCE) at the end of a test may have to stop an autovacuum worker.
as_postgres -c "GRANT pg_signal_backend TO $ROLE" >&2
if [[ $(as_postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'") != 1 ]]; then
  as_postgres -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi

URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
# 6. Check the URL itself works (password auth over TCP, as the tests will connect).
PGCONNECT_TIMEOUT=10 psql -X -q "$URL" -tAc "SELECT 1" >/dev/null || { log "cannot log in as $ROLE over TCP"; exit 1; }
log "PostgreSQL $VER ready on 127.0.0.1:$PORT"
echo "DIGEST_TEST_POSTGRES_URL=$URL"
