#!/usr/bin/env bash
# Which starting value of the LSTM forget-gate bias, 0 or 1, gives the lower
# validation loss: trains the protocol's character LSTM (2 layers of hidden
# 256, embedding 64, batch 32, seq_len 100, Adam 0.002, clip_norm 5, dropout
# 0, seed 42; one document per line of tinyshakespeare.txt, the last 10% of
# the documents held out) for 3 epochs with forget_bias 0, then 1, on one
# OpenBLAS thread, and prints a Markdown table of the validation loss after
# 1 and 3 epochs (see bench/forget_bias.c).
#
#   bash bench/forget_bias.sh
#
# Builds bench/forget_bias.c against src/core/*.c into a temporary directory
# (nothing is written into the repository).  The corpus comes from
# RNNLM_DATA_DIR (default ../shared/data beside the repository); without it
# the script says so and exits 0.  RNNLM_FB_LINES=N trains on the first N
# lines only (a smoke run; its numbers are not the protocol's).  Each run is
# about a million characters an epoch: several minutes an epoch on one core.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
data_dir=${RNNLM_DATA_DIR:-$repo/../shared/data}
corpus=$data_dir/tinyshakespeare.txt
if [[ ! -r $corpus ]]; then
  echo "forget_bias.sh: skipped: $corpus not found (set RNNLM_DATA_DIR to the directory that holds tinyshakespeare.txt)"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnlm-fb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cd "$repo"
${CC:-cc} -std=gnu99 -O2 -Wall -Wextra -Werror -Isrc/core -o "$tmp/forget_bias" \
  src/core/*.c bench/forget_bias.c -lutf8proc -ldl -lpthread -lm

export OPENBLAS_NUM_THREADS=1
load_before=$(cut -d" " -f1-3 /proc/loadavg)
rows=()
threads=
for fb in 0 1; do
  echo "== forget_bias $fb" >&2
  line=$("$tmp/forget_bias" "$fb" "$corpus" | grep '^result ')
  read -r _ bias val1 val3 tps threads docs valdocs <<<"$line"
  rows+=("| $bias | $val1 | $val3 | $tps |")
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
ncpu=$(nproc)
load_after=$(cut -d" " -f1-3 /proc/loadavg)
echo
if [[ -n ${RNNLM_FB_LINES:-} && ${RNNLM_FB_LINES} != 0 ]]; then
  echo "(smoke run: first $RNNLM_FB_LINES lines only; not the protocol's numbers)"
  echo
fi
echo "| forget_bias | val loss after 1 epoch | after 3 epochs | tokens/s |"
echo "| --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
echo "Validation loss in nats per token on $valdocs of $docs documents (lines); tokens/s: training tokens per second over the 3 epochs, validation passes included."
echo "Machine: ${cpu:-unknown CPU} ($ncpu CPUs), OpenBLAS threads: $threads; load average before $load_before, after $load_after."
echo "Reproduce: bash bench/forget_bias.sh"
