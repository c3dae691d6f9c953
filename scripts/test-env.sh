#!/usr/bin/env bash
# Makes sure this machine has what `npm test` talks to: PostgreSQL 15 and
# Redis 7 running on their default ports, and promtool, amtool,
# prometheus-alertmanager and pgbouncer (the pooler tests start their
# own, in transaction mode) installed. Installs from Debian/Ubuntu
# packages where missing (needs root); starts the services if they are down.
# Safe to run again.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Debian installs it in /usr/sbin, which a non-root PATH may lack.
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt_install "${missing[@]}"
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ops-overview-tests.log
fi
for _ in $(seq 1 30); do
  if pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then break; fi
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432
redis-cli -h 127.0.0.1 -p 6379 ping

# The tests connect as the `postgres` superuser over TCP without a password
# (TEST_PG_ADMIN_URL overrides it). Debian's default pg_hba asks for one over
# TCP; say so instead of failing obscurely later.
if ! psql "${TEST_PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}" -Atqc 'select 1' >/dev/null 2>&1; then
  echo "cannot connect as ${TEST_PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}:" >&2
  echo "  set TEST_PG_ADMIN_URL to a superuser URL, or allow trust for 127.0.0.1 in pg_hba.conf for a throw-away test server" >&2
  exit 1
fi
echo "test environment ready"
