#!/usr/bin/env bash
# How long learning the bpe tokenizer's merges takes on tinyshakespeare.txt
# (1.1 MB, one document per line, the last 10% held out): for max_vocab
# 1000, 4000 and 8000 (the default), the time to learn the merges and encode
# every line (rl_builder_finish), best of 3 runs, with the tokens per byte
# of the training lines.  Prints a Markdown table and the machine.
#
#   bash bench/bpe_learn.sh
#
# Builds bench/bpe_learn.c against src/core/*.c into a temporary directory
# (nothing is written into the repository).  The corpus comes from
# RNNLM_DATA_DIR (default ../shared/data beside the repository); without it
# the script says so and exits 0.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
data_dir=${RNNLM_DATA_DIR:-$repo/../shared/data}
corpus=$data_dir/tinyshakespeare.txt
if [[ ! -r $corpus ]]; then
  echo "bpe_learn.sh: skipped: $corpus not found (set RNNLM_DATA_DIR to the directory that holds tinyshakespeare.txt)"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnlm-bpe.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$repo"
${CC:-cc} -std=gnu99 -O2 -Wall -Wextra -Werror -Isrc/core -o "$tmp/bpe_learn" \
  src/core/*.c bench/bpe_learn.c -lutf8proc -ldl -lpthread -lm

sizes=(1000 4000 8000)
for run in 1 2 3; do
  "$tmp/bpe_learn" "$corpus" "${sizes[@]}" >>"$tmp/results"
done

echo "bpe merges learned from tinyshakespeare.txt ($(wc -c <"$corpus") bytes), best of 3 runs"
echo
echo "| max_vocab | tokens | merges | learning + encoding | reading the lines | training tokens per byte |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
for s in "${sizes[@]}"; do
  awk -v s="$s" '$1 == "result" && $2 == s {
      if (!n || $6 < learn) { learn = $6; read = $5 }
      if (!n || $5 < read) read = $5
      toks = $3; merges = $4; per = $7 / $8; n++ }
    END { printf "| %d | %d | %d | %.2f s | %.2f s | %.3f |\n", s, toks, merges, learn, read, per }' "$tmp/results"
done
echo
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Reproduce: bash bench/bpe_learn.sh"
