#!/usr/bin/env bash
# Installs the Debian 12 packages that building, testing and the demo need.
#
#   test/deps.sh
#
# Does nothing (quickly) when they are all present. Otherwise, as root it runs
# apt-get itself; as another user it uses "sudo -n" when that works, and else
# prints the apt-get command to run and exits 1.
#
# One package is optional: postgresql-15-pgvector, for test/t/150_pgvector.t
# only (rnnlm does not use pgvector). Debian 12 does not package it; it is
# installed the same way when an apt source offers it (PGDG does), and else a
# note says that test will skip. It never makes this script fail.
set -euo pipefail

packages=(
  build-essential gcc make perl
  postgresql-15 postgresql-client-15 postgresql-server-dev-15
  postgresql-15-cron
  libopenblas-dev
  python3-torch python3-numpy
  fortunes-min fortunes-de fortunes-zh
  libutf8proc-dev libpq-dev
  libipc-run-perl
  python3-psycopg2
)

# Print those of the named packages that are not installed.
missing_packages() {
  local p
  for p; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || printf '%s\n' "$p"
  done
}

# Install pgvector when it is missing and an apt source offers it; a note, never
# a failure, when it cannot be had. Nothing to do when it is installed, from
# the package or from source (its control file is there).
optional_pgvector() {
  local p=postgresql-15-pgvector
  [[ -n $(missing_packages "$p") && ! -e /usr/share/postgresql/15/extension/vector.control ]] || return 0
  if ! apt-cache show "$p" >/dev/null 2>&1; then
    echo "note: $p is not packaged for this Debian (no apt source offers it); test/t/150_pgvector.t will skip"
    return 0
  fi
  local -a install=(apt-get install -y --no-install-recommends "$p")
  if (( EUID == 0 )); then
    echo "== installing optional package: $p"
    DEBIAN_FRONTEND=noninteractive "${install[@]}" || true
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "== installing optional package: $p"
    sudo -n env DEBIAN_FRONTEND=noninteractive "${install[@]}" || true
  fi
  [[ -z $(missing_packages "$p") ]] ||
    echo "note: $p is not installed (as root: DEBIAN_FRONTEND=noninteractive ${install[*]}); test/t/150_pgvector.t will skip"
}

# Test::More ships with perl; only ask for the separate package if it is not there.
perl -MTest::More -e 1 2>/dev/null || packages+=(libtest-simple-perl)

mapfile -t missing < <(missing_packages "${packages[@]}")
(( ${#missing[@]} )) || { optional_pgvector; exit 0; }

install=(apt-get install -y --no-install-recommends "${missing[@]}")
echo "== installing missing packages: ${missing[*]}"
if (( EUID == 0 )); then
  apt-get update
  DEBIAN_FRONTEND=noninteractive "${install[@]}"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo -n apt-get update
  sudo -n env DEBIAN_FRONTEND=noninteractive "${install[@]}"
else
  echo "error: missing packages; as root, run:" >&2
  echo "  apt-get update && DEBIAN_FRONTEND=noninteractive ${install[*]}" >&2
  exit 1
fi

mapfile -t missing < <(missing_packages "${packages[@]}")
if (( ${#missing[@]} )); then
  echo "error: still missing after apt-get: ${missing[*]}" >&2
  exit 1
fi

optional_pgvector
