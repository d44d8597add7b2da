#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run them.
# Installs: Debian packages (promtool from `prometheus`, fping, iproute2, PostgreSQL if absent),
# the project with its dev extras; starts PostgreSQL on 127.0.0.1:5432 if it is not running.
# Run as root (raw ICMP sockets and network namespaces need it). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_pkgs=()
command -v promtool >/dev/null || apt_pkgs+=(prometheus)
command -v fping >/dev/null || apt_pkgs+=(fping)
command -v ip >/dev/null || apt_pkgs+=(iproute2)
command -v pg_ctlcluster >/dev/null || apt_pkgs+=(postgresql)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${apt_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# PostgreSQL on 127.0.0.1:5432 with a database `test` that user postgres reaches without a password.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL"
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
fi

log "pip install -e .[dev]"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check -e '.[dev]'

log "ruff"
python3 -m ruff check .
log "mypy --strict"
python3 -m mypy
log "pytest"
exec python3 -m pytest -q -ra "$@"
