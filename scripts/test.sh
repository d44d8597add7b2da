#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run them.
# - Debian packages: promtool (`prometheus`), Alertmanager, fping, iproute2, Chromium and the
#   Noto fonts (browser tests), docker-compose and systemd (lint only), PostgreSQL if absent,
#   python3-venv;
# - PostgreSQL on 127.0.0.1:5432 with a database `test` that user postgres reaches without a
#   password (started and configured if needed);
# - the project and its dev extras in a virtual environment, ./.venv;
# then ruff, mypy --strict and pytest. Run as root: raw ICMP sockets and network namespaces
# need it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "scripts/test.sh: run as root (raw sockets, network namespaces)" >&2; exit 2; }

apt_pkgs=()
command -v promtool >/dev/null || apt_pkgs+=(prometheus)
command -v prometheus-alertmanager >/dev/null || apt_pkgs+=(prometheus-alertmanager)
command -v fping >/dev/null || apt_pkgs+=(fping)
command -v docker-compose >/dev/null || apt_pkgs+=(docker-compose)   # lints deploy/compose.yaml
command -v systemd-analyze >/dev/null || apt_pkgs+=(systemd)          # lints the units
command -v ip >/dev/null || apt_pkgs+=(iproute2)
command -v chromium >/dev/null || apt_pkgs+=(chromium)
[ -e /usr/share/fonts/truetype/noto/NotoSansLao-Regular.ttf ] || apt_pkgs+=(fonts-noto-core)
command -v pg_ctlcluster >/dev/null || apt_pkgs+=(postgresql)
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_pkgs+=(python3-venv)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${apt_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# PostgreSQL: running, reachable on 127.0.0.1 by user postgres without a password, db `test`.
pg_ver=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL $pg_ver"
  pg_ctlcluster --skip-systemctl-redirect "$pg_ver" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_ok() { psql -w -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; }
if ! pg_ok; then
  log "allowing password-less local TCP connections to PostgreSQL (test machine)"
  hba=/etc/postgresql/$pg_ver/main/pg_hba.conf
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$pg_ver" main reload
  sleep 1
fi
if ! psql -w -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1; then
  psql -w -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
fi

log "virtual environment .venv and pip install -e .[dev]"
[ -x .venv/bin/python ] || python3 -m venv .venv
PY=.venv/bin/python
export PATH="$PWD/.venv/bin:$PATH"   # tools installed into the venv (hadolint) are found
PIP_DISABLE_PIP_VERSION_CHECK=1 $PY -m pip install -q -e '.[dev]'

log "ruff"
$PY -m ruff check .
log "mypy --strict"
$PY -m mypy
log "pytest"
exec $PY -m pytest -q -ra "$@"
