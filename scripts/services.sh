#!/usr/bin/env bash
# Starts the database servers the SQL tests use, when they are installed but
# down, and prints the environment variables the tests read. Safe to run
# again: servers that answer are left alone.
set -euo pipefail

log() { echo "services: $*" >&2; }

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "PostgreSQL is not installed (apt-get install -y postgresql)"; return 1
  fi
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then return 0; fi
  local ver; ver=$(ls /etc/postgresql | sort -V | tail -n1)
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && return 0; sleep 0.5; done
  log "PostgreSQL did not come up on 127.0.0.1:5432"; return 1
}

start_mariadb() {
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    log "MariaDB is not installed (apt-get install -y mariadb-server)"; return 1
  fi
  if mariadb-admin ping -h 127.0.0.1 -u root --silent >/dev/null 2>&1; then return 0; fi
  log "starting MariaDB"
  install -d -o mysql -g mysql /run/mysqld
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1
  for _ in $(seq 1 60); do mariadb-admin ping -h 127.0.0.1 -u root --silent >/dev/null 2>&1 && return 0; sleep 0.5; done
  log "MariaDB did not come up on 127.0.0.1:3306"; return 1
}

rc=0
start_postgres || rc=1
start_mariadb || rc=1
# Each test creates and drops its own database; make sure the defaults exist.
if [ $rc -eq 0 ]; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
  mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test" >/dev/null 2>&1 || true
fi
exit $rc
