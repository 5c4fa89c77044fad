#!/usr/bin/env bash
# The demo: trains a small character-level LSTM on the fortunes corpus, inside
# PostgreSQL, and shows what it learned.
#
#   test/demo.sh
#
# Installs missing Debian packages (test/deps.sh), builds the extension,
# installs it into a relocatable copy of PostgreSQL in a temporary directory,
# starts a throwaway cluster as an unprivileged user (rnnlm_test when run as
# root), loads /usr/share/games/fortunes/{fortunes,literature,riddles} (from
# fortunes-min; one document per fortune) into a table fortunes(id, body),
# trains the model fortunes with rnnlm_train (progress shows as NOTICEs),
# prints three samples continuing "The ", and lists the fortunes the model
# finds least and most surprising (rnnlm_perplexity). Takes about a minute
# on two cores.
#
# Environment: RNNLM_DEMO_OPTIONS replaces the training options (jsonb);
# RNNLM_FORTUNES_DIR the corpus directory; RNNLM_KEEP=1 keeps the temporary
# directory when something failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
# shellcheck source-path=SCRIPTDIR source=lib/cluster.sh
. "$here/lib/cluster.sh"

default_options='{"tokenizer":"char","embedding_dim":32,"hidden_size":256,"num_layers":1,"epochs":10,"seq_len":64,"batch_size":32,"learning_rate":0.003}'

# Write the fortunes of the named files to stdout in COPY text format, one document a line.
fortunes_as_copy() {
  perl -e '
    local $/;
    for my $file (@ARGV) {
      open my $fh, "<", $file or die "cannot read $file: $!\n";
      for my $doc (split /^%\n/m, <$fh>) {
        $doc =~ s/\n+\z//;
        next unless $doc =~ /\S/;
        $doc =~ s/\\/\\\\/g; $doc =~ s/\n/\\n/g; $doc =~ s/\r/\\r/g; $doc =~ s/\t/\\t/g;
        print "$doc\n";
      }
    }' "$@"
}

# The demo itself, run as the unprivileged user in the work directory.
inner() {
  W=$RNNLM_WORKDIR
  local dir=${RNNLM_FORTUNES_DIR:-/usr/share/games/fortunes}
  local options=${RNNLM_DEMO_OPTIONS:-$default_options}
  trap 'cluster_stop "$W/cluster"' EXIT
  say "starting a throwaway cluster"
  cluster_start "$W/cluster"

  say "loading the fortunes corpus from $dir"
  fortunes_as_copy "$dir/fortunes" "$dir/literature" "$dir/riddles" >"$W/fortunes.copy"
  psql -X -q -v ON_ERROR_STOP=1 \
    -c 'CREATE EXTENSION rnnlm' \
    -c 'CREATE TABLE fortunes (id serial PRIMARY KEY, body text NOT NULL)' \
    -c '\copy fortunes (body) FROM pstdin' <"$W/fortunes.copy"

  say "training, sampling, scoring"
  psql -X -v ON_ERROR_STOP=1 -v options="$options" -f - <<'SQL'
\set QUIET on
\pset pager off
SET client_min_messages = notice;
SELECT count(*) AS fortunes, sum(length(body)) AS characters FROM fortunes;

\echo Training the model "fortunes" with :options
\timing on
\pset tuples_only on
\pset format unaligned
SELECT jsonb_pretty(rnnlm_train('fortunes', 'SELECT body FROM fortunes', :'options'::jsonb));

\set prompt 'The '
\echo
\echo Three samples: the prompt :'prompt' and what the model continues it with
SELECT format(E'--- seed %s ---\n%s%s\n', i, :'prompt',
              rnnlm_generate('fortunes', :'prompt', max_tokens => 200, temperature => 0.8, seed => i))
FROM generate_series(1, 3) AS i;
\pset format aligned
\pset tuples_only off

\echo Scoring every fortune:
CREATE TEMP TABLE scored AS
SELECT id, rnnlm_perplexity('fortunes', body) AS perplexity, body FROM fortunes;
\timing off

\echo
\echo The 5 least surprising fortunes (lowest perplexity):
SELECT id, round(perplexity::numeric, 2) AS perplexity,
       left(regexp_replace(body, '\s+', ' ', 'g'), 100) AS fortune
FROM scored ORDER BY perplexity, id LIMIT 5;

\echo The 5 most surprising fortunes (highest perplexity):
SELECT id, round(perplexity::numeric, 2) AS perplexity,
       left(regexp_replace(body, '\s+', ' ', 'g'), 100) AS fortune
FROM scored ORDER BY perplexity DESC, id LIMIT 5;
SQL
}

# Stop what is left and remove the work directory.
finish() {
  local status=$?
  set +e
  remove_workdir "$status"
  exit "$status"
}

if [[ ${1:-} == --inner ]]; then
  shift
  inner "$@"
  exit
fi

trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$here/deps.sh"
pg_paths
make_workdir
say "make"
repo_make "$repo" -j"$(nproc)" || die "make failed"
stage_all "$repo"
run_as_test_user "$TEST_USER" bash "$W/repo/test/demo.sh" --inner
