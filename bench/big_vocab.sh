#!/usr/bin/env bash
# A word model with a vocabulary of 50,000 words, trained with the exact
# softmax and with the sampled output layer (sampled_softmax 512 and 2048):
# training tokens per second and the exact validation loss after one epoch
# over the same 200,000 training tokens, validated on 20,000 tokens.  The
# corpus is the definitions of Debian's dict-gcide (the Collaborative
# International Dictionary of English), one definition line per document,
# installed by this script (as root, or with sudo) when missing.  Prints a
# Markdown table and the machine.
#
#   bash bench/big_vocab.sh
#
# Builds bench/big_vocab.c against src/core/*.c into a temporary directory
# (nothing is written into the repository).  RNNLM_BV_THREADS sets the
# threads of the matrix products (default 1).  About 6 minutes on one core,
# nearly all of it the exact softmax.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
dict=/usr/share/dictd/gcide.dict.dz
if [[ ! -r $dict ]]; then
  if (( EUID == 0 )); then
    apt-get install -y --no-install-recommends dict-gcide >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n apt-get install -y --no-install-recommends dict-gcide >/dev/null
  fi
fi
if [[ ! -r $dict ]]; then
  echo "big_vocab.sh: skipped: $dict not found (apt-get install dict-gcide)"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnlm-bv.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$repo"
${CC:-cc} -std=gnu99 -O2 -Wall -Wextra -Werror -Isrc/core -o "$tmp/big_vocab" \
  src/core/*.c bench/big_vocab.c -lutf8proc -ldl -lpthread -lm

# the definitions: the indented text lines of the dictionary, markup removed
zcat "$dict" | sed -n 's/^   *//p' | grep -av '^\[' | sed 's/<[^>]*>//g' >"$tmp/corpus.txt"
export RNNLM_BV_THREADS=${RNNLM_BV_THREADS:-1}
export OPENBLAS_NUM_THREADS=$RNNLM_BV_THREADS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$tmp/big_vocab" 50000 200000 20000 0 512 2048 <"$tmp/corpus.txt" | tee "$tmp/results" >&2

read -r _ vocab _ docs _ ntrain _ nval < <(grep '^vocab' "$tmp/results")
distinct=$(tr -s '[:space:][:punct:]' '\n' <"$tmp/corpus.txt" | tr 'A-Z' 'a-z' | sort -u | wc -l)
echo "Word LSTM (embedding 128, hidden 256, 1 layer, batch 32, seq_len 35), vocabulary $vocab"
echo "(the 50,000 most frequent of about $distinct distinct words in $docs definition lines of"
echo "dict-gcide), one epoch over the same 200,000 training tokens, exact validation loss on 20,000."
echo
echo "| output layer | training tokens/s | validation loss (nats/token) | train loss | seconds |"
echo "| --- | ---: | ---: | ---: | ---: |"
awk '$1 == "result" {
    name = $2 == 0 ? "exact softmax" : "sampled_softmax " $2
    printf "| %s | %.0f | %.3f | %.3f | %.1f |\n", name, $3, $4, $5, $6 }' "$tmp/results"
echo
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $RNNLM_BV_THREADS thread(s) for the products; load before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Reproduce: bash bench/big_vocab.sh"
