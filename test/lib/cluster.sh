# Shared shell functions for test/run.sh and test/demo.sh (sourced, not executed).
#
# They build a relocatable copy of the PostgreSQL 15 install with the extension
# installed into it (nothing is written to system directories), stage a copy of
# the repository in a private work directory, run commands there as an
# unprivileged user (initdb and postgres refuse to run as root), and start and
# stop throwaway clusters.
#
# The work directory W (mktemp -d) holds:
#   inst/     the relocatable tree: $W/inst/usr/lib/postgresql/15/{bin,lib}, $W/inst/usr/share/postgresql/15
#   repo/     a copy of the built repository, which the tests run from
#   data/     a copy of ../shared/data, when the test user cannot read it in place
#   home/ tmp/ tap/ cluster/   the test user's HOME, TMPDIR, TAP test output, throwaway cluster
#
# Settings: PG_CONFIG (default: the PostgreSQL 15 pg_config), RNNLM_TEST_USER
# (the unprivileged user used when running as root, default rnnlm_test),
# RNNLM_TMP (where W is created, default $TMPDIR or /tmp), RNNLM_KEEP=1 (keep W
# when something failed), RNNLM_DATA_DIR (the corpora, default ../shared/data
# beside the repository).

: "${PG_CONFIG:=/usr/lib/postgresql/15/bin/pg_config}"
: "${RNNLM_TEST_USER:=rnnlm_test}"
W=   # the work directory, set by make_workdir (never taken from the environment)

# Print a progress line.
say() { printf '== %s\n' "$*"; }

# Print an error to stderr and exit 1.
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Set PG_BINDIR, PG_PKGLIBDIR, PG_SHAREDIR, PG_PERL_LIB and PG_REGRESS_BIN from $PG_CONFIG.
pg_paths() {
  [[ -x $PG_CONFIG ]] || die "pg_config not found at $PG_CONFIG (set PG_CONFIG)"
  PG_BINDIR=$("$PG_CONFIG" --bindir)
  PG_PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
  PG_SHAREDIR=$("$PG_CONFIG" --sharedir)
  local pgxs
  pgxs=$(dirname "$("$PG_CONFIG" --pgxs)")   # .../lib/pgxs/src/makefiles
  PG_PERL_LIB=$(dirname "$pgxs")/test/perl
  PG_REGRESS_BIN=$(dirname "$pgxs")/test/regress/pg_regress
  [[ -f $PG_PERL_LIB/PostgreSQL/Test/Cluster.pm ]] || die "PostgreSQL's TAP modules are missing under $PG_PERL_LIB"
}

# Create the private work directory and set W to its path.
make_workdir() {
  local base=${RNNLM_TMP:-${TMPDIR:-/tmp}}
  W=$(mktemp -d "$base/rnnlm-test.XXXXXX")
  mkdir -p "$W"/{home,tmp,tap,cluster}
}

# Run "make -C REPO ARGS..." with the PostgreSQL 15 pg_config.
repo_make() {
  local repo=$1; shift
  make -C "$repo" --no-print-directory PG_CONFIG="$PG_CONFIG" "$@"
}

# Install the extension into $W/inst and complete that into a relocatable PostgreSQL tree.
build_reloc_tree() {
  local repo=$1 inst=$W/inst d
  say "installing the extension into a relocatable PostgreSQL tree in $inst"
  repo_make "$repo" install DESTDIR="$inst" >"$W/install.log" 2>&1 \
    || { cat "$W/install.log" >&2; die "make install DESTDIR=$inst failed"; }
  # Programs are real copies: postgres finds its share and lib directories
  # relative to its own resolved path, so a symlink would lead back to /usr.
  mkdir -p "$inst$PG_BINDIR"
  cp -L --preserve=mode,timestamps "$PG_BINDIR"/* "$inst$PG_BINDIR/"
  # Everything else may stay where it is: symlinks, without replacing the
  # extension's files that make install has just put there.
  for d in "$PG_PKGLIBDIR" "$PG_SHAREDIR"; do
    mkdir -p "$inst$d"
    cp -rsn "$d/." "$inst$d/"
  done
  [[ $("$inst$PG_BINDIR/pg_config" --sharedir) == "$inst$PG_SHAREDIR" ]] \
    || die "the copied PostgreSQL does not resolve its directories relative to itself"
  [[ -f $inst$PG_SHAREDIR/extension/rnnlm.control ]] \
    || die "make install did not put rnnlm.control under $inst$PG_SHAREDIR/extension"
}

# Copy the built repository (without .git) to DEST, where the test user can read it.
stage_repo() {
  local repo=$1 dest=$2
  mkdir -p "$dest"
  tar -C "$repo" --exclude=./.git --exclude=./tmp_check -cf - . | tar -C "$dest" -xf -
}

# Print the user the tests run as: RNNLM_TEST_USER when root (created if missing), else the caller.
test_user() {
  if (( EUID != 0 )); then id -un; return; fi
  if ! id -u "$RNNLM_TEST_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "/var/lib/$RNNLM_TEST_USER" --create-home \
      --shell /usr/sbin/nologin "$RNNLM_TEST_USER" >&2 \
      || id -u "$RNNLM_TEST_USER" >/dev/null 2>&1 \
      || die "could not create the user $RNNLM_TEST_USER"
  fi
  printf '%s\n' "$RNNLM_TEST_USER"
}

# Run a command as USER (root only), or as the caller when USER is the caller.
as_user() {
  local user=$1; shift
  if (( EUID == 0 )); then runuser -u "$user" -- "$@"; else "$@"; fi
}

# Print a directory holding the corpora that USER can read (copying into $W/data if needed), or nothing.
stage_data() {
  local user=$1 repo=$2 src
  src=${RNNLM_DATA_DIR:-$(dirname "$repo")/shared/data}
  [[ -d $src ]] || return 0
  # shellcheck disable=SC2016  # $1 is expanded by the inner sh
  if as_user "$user" sh -c 'cd "$1" && for f in *; do [ -r "$f" ] || exit 1; done' sh "$src" 2>/dev/null; then
    printf '%s\n' "$src"
  elif (( EUID == 0 )); then
    cp -r "$src" "$W/data" && printf '%s\n' "$W/data"
  else
    printf 'note: %s is not readable; tests that need it will skip\n' "$src" >&2
  fi
}

# Give the work directory to USER and check that USER can reach it.
hand_over_workdir() {
  local user=$1
  (( EUID == 0 )) || return 0
  chown -R -h "$user:" "$W"   # -h: the symlinks into /usr themselves, never their targets
  runuser -u "$user" -- test -w "$W/tmp" \
    || die "$user cannot write to $W; set RNNLM_TMP to a directory it can reach"
}

# Run a command as USER in the work directory, with a clean and explicit environment.
run_as_test_user() {
  local user=$1; shift
  local -a envv=()
  local v
  # Settings the caller may pass through.
  for v in $(compgen -e); do
    case $v in
      RNNLM_DATA_DIR|RNNLM_REPO|RNNLM_WORKDIR|RNNLM_SUMMARY_FILE) ;;
      RNNLM_*|PG_TEST_*|ASAN_OPTIONS|LSAN_OPTIONS|UBSAN_OPTIONS|CI|TERM) envv+=("$v=${!v}") ;;
    esac
  done
  envv+=(
    HOME="$W/home" USER="$user" LOGNAME="$user" SHELL=/bin/bash
    PATH="$W/inst$PG_BINDIR:/usr/bin:/bin"
    LANG=C.UTF-8 TMPDIR="$W/tmp"
    PG_CONFIG="$PG_CONFIG"
    PG_REGRESS="$PG_REGRESS_BIN"
    PERL5LIB="$W/repo/test/perl:$PG_PERL_LIB"
    TESTDIR="$W/tap" TESTDATADIR="$W/tap/tmp_check" TESTLOGDIR="$W/tap/tmp_check/log"
    RNNLM_WORKDIR="$W" RNNLM_REPO="$W/repo"
    RNNLM_PYTHON="${RNNLM_PYTHON:-/usr/bin/python3}"
    RNNLM_SUMMARY_FILE="$W/summary"
  )
  [[ -z ${DATA_DIR:-} ]] || envv+=(RNNLM_DATA_DIR="$DATA_DIR")
  (cd "$W" && as_user "$user" env -i "${envv[@]}" "$@")
}

# Prepare everything up to the test phase: work dir, relocatable tree, repo copy, data, user.
stage_all() {
  local repo=$1
  build_reloc_tree "$repo"
  stage_repo "$repo" "$W/repo"
  TEST_USER=$(test_user)
  DATA_DIR=$(stage_data "$TEST_USER" "$repo")
  hand_over_workdir "$TEST_USER"
  say "running as $TEST_USER in $W${DATA_DIR:+ (data: $DATA_DIR)}"
}

# Create and start a throwaway cluster in DIR; export PGHOST, PGPORT, PGUSER, PGDATABASE for it.
cluster_start() {
  local dir=$1 port me
  me=$(id -un)
  # Only a Unix socket in a private directory is used, so any port number is free.
  port=$(( 20000 + RANDOM % 20000 ))
  mkdir -p "$dir/sock"
  initdb -D "$dir/data" -A trust -E UTF8 --locale=C -N >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
port = $port
unix_socket_directories = '$dir/sock'
fsync = off
max_connections = 20
EOF
  pg_ctl -D "$dir/data" -l "$dir/postgres.log" -w -t 120 start >/dev/null \
    || { cat "$dir/postgres.log" >&2; die "the throwaway cluster did not start"; }
  export PGHOST="$dir/sock" PGPORT="$port" PGUSER="$me" PGDATABASE=postgres
}

# Stop the throwaway cluster in DIR if it is running.
cluster_stop() {
  local dir=$1
  [[ -f $dir/data/postmaster.pid ]] || return 0
  pg_ctl -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
    || pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

# Stop any server still running from a data directory under W (a test that died may leave one).
stop_stray_servers() {
  [[ -n $W && -d $W ]] || return 0
  local pidfile pid datadir
  while IFS= read -r pidfile; do
    pid=$(sed -n 1p "$pidfile" 2>/dev/null) || continue
    datadir=$(sed -n 2p "$pidfile" 2>/dev/null) || continue
    [[ $pid =~ ^[0-9]+$ ]] || continue
    # Only a postmaster whose working directory is that data directory.
    [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$datadir" ]] || continue
    kill -QUIT "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done < <(find "$W" -name postmaster.pid -type f 2>/dev/null)
}

# Stop every other process still working in W (a test killed on a time limit may leave some).
stop_leftovers() {
  [[ -n $W && -d $W ]] || return 0
  local p cwd
  local -a pids=()
  for p in /proc/[0-9]*; do
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    [[ $cwd == "$W" || $cwd == "$W"/* ]] || continue
    [[ ${p#/proc/} != "$$" && ${p#/proc/} != "$BASHPID" ]] && pids+=("${p#/proc/}")
  done
  (( ${#pids[@]} )) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null
  for _ in $(seq 25); do kill -0 "${pids[@]}" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

# Remove the work directory, or keep it when RNNLM_KEEP=1 and STATUS is non-zero.
remove_workdir() {
  local status=$1
  [[ -n $W && -d $W ]] || return 0
  stop_stray_servers
  stop_leftovers
  if [[ ${RNNLM_KEEP:-0} == 1 && $status != 0 ]]; then
    say "kept the work directory $W"
  else
    rm -rf "$W"
  fi
}
