#!/usr/bin/env bash
# rnnlm inside PostgreSQL against PyTorch, on the same machine and data, side
# by side, in one run.
#
#   bench/run.sh [--quick] [--threads N] [--output FILE]
#
# Builds the extension, installs it into a relocatable copy of PostgreSQL in
# a temporary directory and starts a throwaway cluster as an unprivileged
# user (the functions of test/lib/cluster.sh, as test/demo.sh does), then
# measures, one thing at a time so nothing competes for the CPUs:
#   1. the sgemm peak of OpenBLAS at N threads and at 1 (bench/sgemm_peak.py);
#   2. training throughput, one epoch, of four reference models (W: words,
#      max_vocab 10000, embedding 256, hidden 512, 2 layers, batch 32,
#      seq_len 35; C: characters, embedding 64, hidden 512, 2 layers, batch
#      32, seq_len 100; each as LSTM and GRU), rnnlm_train against the same
#      model trained by PyTorch (bench/torch_bench.py), with model GFLOP/s as
#      a share of the sgemm peak and the validation loss of both;
#   3. batched scoring of the validation documents: rnnlm_evaluate (and the
#      array form of rnnlm_perplexity when the extension has it) against a
#      batched PyTorch forward pass;
#   4. per-row scoring, rnnlm_perplexity once per row at rnnlm.threads = 1,
#      against PyTorch at batch 1 on one thread, and the per-call overhead
#      on a one-character input, with model C and with a tiny model;
#   5. the backend's peak resident memory while training and scoring, and
#      whether it stays flat over 100,000 and 1,000,000 scored rows;
#   6. a parallel query: rnnlm_perplexity over a table with 0 and 2 workers;
#   7. where the processor has bf16 instructions (AVX512_BF16 or AMX-BF16)
#      and rnnlm runs bf16 products there: training, batched and per-row
#      scoring in bf16 (rnnlm precision 'bf16', PyTorch under
#      torch.autocast("cpu", torch.bfloat16)), and bf16 scoring's agreement
#      with fp32 (mean absolute difference of the per-token log-probabilities
#      of the validation documents); elsewhere the report says it skipped;
#   8. per-row scoring with rnnlm.precision = int8 (the one-row products
#      from int8 weights, on any processor) and its agreement with fp32.
# PyTorch trains and scores batches with torch.set_num_threads(1) and with N
# (OPENBLAS_NUM_THREADS = N both times); the report keeps its better run.
# The report also states what each side computes with (rnnlm_runtime(): the
# backend and kernels of the products, the vector kernels; PyTorch's BLAS
# and oneDNN).
# The data is tinyshakespeare.txt from RNNLM_DATA_DIR (default ../shared/data
# beside the repository).
#
# Prints a Markdown report (a table to paste into the README, then every raw
# number) and also writes it to FILE (default bench/results/latest.md, which
# git ignores; the raw results go beside it as FILE.raw.tsv).  The full run takes about 20 minutes on two cores; --quick
# trains and scores tiny subsets (a smoke run, 1-2 minutes; its numbers are
# not representative).
#
# Options (or environment variables):
#   --threads N    RNNLM_BENCH_THREADS   threads for training and batched
#                                        scoring: rnnlm.threads for rnnlm,
#                                        OPENBLAS_NUM_THREADS for PyTorch
#                                        (with torch.set_num_threads 1 and N,
#                                        the better kept); default 2
#   --quick        RNNLM_BENCH_QUICK=1   tiny subsets
#   --output FILE  RNNLM_BENCH_OUTPUT    where the report is written
# Sizes (lines of the corpus; defaults depend on --quick):
#   RNNLM_BENCH_W_LINES, RNNLM_BENCH_C_LINES (training documents of W and C),
#   RNNLM_BENCH_ROWS (per-row scoring rows of 100 characters),
#   RNNLM_BENCH_A_ROWS (one-character rows), RNNLM_BENCH_TORCH_ROWS and
#   RNNLM_BENCH_TORCH_A_ROWS (how many of those PyTorch scores with the large
#   models: its batch-1 pass is slow), RNNLM_BENCH_PAR_ROWS (parallel query
#   table), RNNLM_BENCH_FLAT_ROWS (rows of the memory flatness check, first
#   measured after a tenth of them).
# Also: OPENBLAS_CORETYPE, when set, is passed on to PostgreSQL and PyTorch;
# RNNLM_PYTHON (default /usr/bin/python3) must import torch and numpy;
# RNNLM_KEEP=1 keeps the temporary directory when something failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
# shellcheck source-path=SCRIPTDIR source=../test/lib/cluster.sh
. "$repo/test/lib/cluster.sh"

# ------------------------------------------------------------------ helpers

# Append a result line: KEY, VALUE (text or JSON) to the raw results.
rec() { printf '%s\t%s\n' "$1" "$2" >>"$RAW"; }

# psql against the throwaway cluster: tuples only, tab-separated, stop on error.
q() { psql -X -q -At -F $'\t' -v ON_ERROR_STOP=1 "$@"; }

# Run a psql script from stdin (one fresh session) and append its rows to the raw results.
q_rec() { q "$@" -f - >>"$RAW"; }

# Percentage of idle CPU time over the next SECONDS (from /proc/stat).
cpu_idle_pct() {
  local secs=$1 a b
  read -r -a a < <(grep '^cpu ' /proc/stat)
  sleep "$secs"
  read -r -a b < <(grep '^cpu ' /proc/stat)
  local total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (b[4] - a[4] + b[5] - a[5]) / total : 100 ))
}

# The table (and file) of documents a configuration trains on.
docs_of() { [[ $1 == w_* ]] && echo w_docs || echo c_docs; }

# Sample the 1-minute load average every 5 seconds into FILE until killed
# (the run itself keeps at most about THREADS tasks runnable).
sample_load() {
  local nap
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  while :; do
    cut -d' ' -f1 /proc/loadavg
    sleep 5 & nap=$!
    wait "$nap"
  done >"$1"
}

# Training options (jsonb) of a configuration: the four reference models and
# "tiny", a small character LSTM for the per-call overhead, memory and parallel checks.
train_options() {
  local cfg=$1 cell=${1#*_}
  case $cfg in
    tiny) printf '{"cell":"lstm","tokenizer":"char","max_vocab":0,"embedding_dim":16,"hidden_size":64,"num_layers":1,"batch_size":32,"seq_len":64,"epochs":1,"learning_rate":0.001,"clip_norm":5,"validation_fraction":0.1,"seed":42}' ;;
    w_*) printf '{"cell":"%s","tokenizer":"word","max_vocab":10000,"embedding_dim":256,"hidden_size":512,"num_layers":2,"batch_size":32,"seq_len":35,"epochs":1,"learning_rate":0.001,"clip_norm":5,"validation_fraction":0.1,"seed":42}' "$cell" ;;
    c_*) printf '{"cell":"%s","tokenizer":"char","max_vocab":0,"embedding_dim":64,"hidden_size":512,"num_layers":2,"batch_size":32,"seq_len":100,"epochs":1,"learning_rate":0.001,"clip_norm":5,"validation_fraction":0.1,"seed":42}' "$cell" ;;
  esac
}

# The same configuration as bench/torch_bench.py arguments.
torch_options() {
  local cfg=$1 cell=${1#*_}
  case $cfg in
    tiny) echo "--cell lstm --tokenizer char --max-vocab 0 --emb 16 --hidden 64 --layers 1 --batch 32 --seq 64" ;;
    w_*) echo "--cell $cell --tokenizer word --max-vocab 10000 --emb 256 --hidden 512 --layers 2 --batch 32 --seq 35" ;;
    c_*) echo "--cell $cell --tokenizer char --max-vocab 0 --emb 64 --hidden 512 --layers 2 --batch 32 --seq 100" ;;
  esac
}

# PyTorch with THREADS OpenBLAS threads (torch itself uses one thread).
torch_run() {
  local threads=$1; shift
  OPENBLAS_NUM_THREADS=$threads "$PY" "$BENCH/torch_bench.py" "$@"
}

# ------------------------------------------------------------------ the parts

# Machine, versions, settings.
part_header() {
  local idle
  say "checking that the machine is idle"
  idle=$(cpu_idle_pct 3)
  rec env.cpu_idle_pct_at_start "$idle"
  (( idle >= 90 )) || printf 'warning: only %s%% of the CPU time was idle before the run: other work will skew the numbers\n' "$idle" >&2
  rec env.date "$(date -u '+%Y-%m-%d %H:%M UTC')"
  rec env.cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  rec env.cpus "$(nproc)"
  rec env.mem_gb "$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
  rec env.flags "$(grep -o -w -E 'avx2|fma|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  rec env.threads_per_core "$(lscpu 2>/dev/null | sed -n 's/^Thread(s) per core:[[:space:]]*//p')"
  rec env.hypervisor "$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor:[[:space:]]*//p')"
  rec env.kernel "$(uname -r)"
  rec env.openblas_coretype "${OPENBLAS_CORETYPE:-}"
  rec env.threads "$THREADS"
  rec env.quick "$QUICK"
  rec env.commit "${RNNLM_BENCH_COMMIT:-}"
  rec env.command "${RNNLM_BENCH_COMMAND:-bash bench/run.sh}"
  rec env.torch "$("$PY" -c 'import torch; print(torch.__version__)')"
  rec env.numpy "$("$PY" -c 'import numpy; print(numpy.__version__)')"
  rec env.python "$("$PY" -c 'import sys; print(sys.version.split()[0])')"
}

# 1. The sgemm peak at THREADS and at 1 thread; measured at the start and at
# the end of the run (keys with the suffix WHEN), the report keeps the best.
part_sgemm() {
  local when=$1 runs=7
  local -a counts=("$THREADS")
  (( QUICK )) && runs=3
  (( THREADS == 1 )) || counts+=(1)
  say "sgemm peak through OpenBLAS at ${counts[*]} threads ($when)"
  OPENBLAS_NUM_THREADS=$THREADS "$PY" "$BENCH/sgemm_peak.py" --runs "$runs" "${counts[@]}" |
    sed "s/^sgemm\.gflops\.[0-9]*/&.$when/" >>"$RAW"
}

# The corpus cut into the benchmark's tables.
part_data() {
  say "preparing the data from $CORPUS"
  "$PY" "$BENCH/torch_bench.py" prepare --data "$CORPUS" --out "$D" \
    --w-lines "$W_LINES" --c-lines "$C_LINES" --rows "$ROWS" --par-rows "$PAR_ROWS" >>"$RAW"
  W_VAL=$(awk -F'\t' '$1 == "data.w.val_docs" { print $2 }' "$RAW")
  C_VAL=$(awk -F'\t' '$1 == "data.c.val_docs" { print $2 }' "$RAW")
  # JIT off: rnnlm_perplexity's COST makes any query over a few thousand rows
  # JIT-compiled, and loading LLVM adds about 50 MB to a backend's memory.
  q -c 'ALTER SYSTEM SET jit = off' -c 'SELECT pg_reload_conf()' >/dev/null
  q -c 'CREATE EXTENSION rnnlm' \
    -c 'CREATE TABLE w_docs (id serial PRIMARY KEY, line text NOT NULL)' \
    -c 'CREATE TABLE c_docs (id serial PRIMARY KEY, line text NOT NULL)' \
    -c 'CREATE TABLE rows (id serial PRIMARY KEY, line text NOT NULL)' \
    -c 'CREATE TABLE par (id serial PRIMARY KEY, line text NOT NULL)' \
    -c "\\copy w_docs (line) FROM '$D/w_docs.txt'" \
    -c "\\copy c_docs (line) FROM '$D/c_docs.txt'" \
    -c "\\copy rows (line) FROM '$D/rows.txt'" \
    -c "\\copy par (line) FROM '$D/par.txt'" \
    -c 'VACUUM ANALYZE'
  # Helpers: the time a query takes inside the backend, and the backend's memory.
  q <<'SQL'
CREATE FUNCTION bench_timed(query text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  r text;
BEGIN
  EXECUTE query INTO r;
  RETURN jsonb_build_object('seconds', extract(epoch FROM clock_timestamp() - t0), 'result', r);
END $$;
CREATE FUNCTION bench_mem() RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object(
           'vmrss_kb', substring(s FROM 'VmRSS:\s+(\d+)')::bigint,
           'vmhwm_kb', substring(s FROM 'VmHWM:\s+(\d+)')::bigint)
    FROM pg_read_file('/proc/self/status') AS s $$;
SQL
  q_rec <<'SQL'
SELECT 'env.postgres', version();
SELECT 'env.rnnlm_version', extversion FROM pg_extension WHERE extname = 'rnnlm';
SELECT 'env.has_batch_perplexity', to_regprocedure('rnnlm_perplexity(text,text[])') IS NOT NULL;
SELECT 'mem.fresh_backend', bench_mem();
SQL
}

# 2 and 5. Training (a fresh session each, for its memory high-water mark);
# with PRECISION bf16, the model is CFG_bf16.
train_rnnlm() {
  local cfg=$1 precision=${2:-fp32} table name opts
  table=$(docs_of "$cfg")
  name=$cfg
  opts=$(train_options "$cfg")
  if [[ $precision != fp32 ]]; then
    name=${cfg}_$precision
    opts="${opts%\}},\"precision\":\"$precision\"}"
  fi
  say "$name: rnnlm_train, rnnlm.threads = $THREADS, precision $precision"
  q_rec -v cfg="$name" -v threads="$THREADS" -v opts="$opts" \
    -v query="SELECT line FROM $table ORDER BY id" <<'SQL'
SET rnnlm.threads = :threads;
SELECT :'cfg' || '.rnnlm.train', rnnlm_train(:'cfg', :'query', :'opts'::jsonb);
SELECT :'cfg' || '.rnnlm.train_mem', bench_mem();
SQL
}

# The intra-op thread counts PyTorch runs with: 1, and THREADS.
torch_thread_counts() { if (( THREADS > 1 )); then echo 1 "$THREADS"; else echo 1; fi; }

# PyTorch training at each thread count (keys CFG.torch.train.tN), and with
# bf16 under autocast (CFG_bf16.torch.train.tN).
train_torch() {
  local cfg=$1 precision=${2:-fp32} tt name=$1
  local -a extra=()
  [[ $precision == bf16 ]] && { extra=(--bf16); name=${cfg}_bf16; }
  for tt in $(torch_thread_counts); do
    say "$name: PyTorch training, torch.set_num_threads($tt), OPENBLAS_NUM_THREADS = $THREADS"
    # shellcheck disable=SC2046  # the options are words
    torch_run "$THREADS" train --config "$name" --docs "$D/$(docs_of "$cfg").txt" \
      --save "$D/$name.pt" $(torch_options "$cfg") --torch-threads "$tt" --tag ".t$tt" \
      "${extra[@]}" >>"$RAW"
  done
}

# 3. Batched scoring of the validation documents (keys CFG.*, or CFG_bf16.*
# in bf16: the fp32-trained model scored with rnnlm.precision = bf16).
score_batch() {
  local cfg=$1 precision=${2:-fp32} table nval key=$1 tt
  local -a extra=()
  table=$(docs_of "$cfg")
  [[ $cfg == w_* ]] && nval=$W_VAL || nval=$C_VAL
  [[ $precision == bf16 ]] && { extra=(--bf16); key=${cfg}_bf16; }
  say "$key: batched scoring of the $nval validation documents, precision $precision"
  q_rec -v cfg="$cfg" -v key="$key" -v precision="$precision" -v threads="$THREADS" -v nval="$nval" \
    -v query="SELECT line FROM $table WHERE id > (SELECT max(id) FROM $table) - $nval ORDER BY id" \
    -v has_batch="$(q -c "SELECT to_regprocedure('rnnlm_perplexity(text,text[])') IS NOT NULL")" <<'SQL'
SET rnnlm.threads = :threads;
SET rnnlm.precision = :'precision';
SET max_parallel_workers_per_gather = 0;
SELECT rnnlm_perplexity(:'cfg', 'a') \g /dev/null
SELECT :'key' || '.rnnlm.evaluate', bench_timed(format('SELECT rnnlm_evaluate(%L, %L)', :'cfg', :'query'));
\if :has_batch
SELECT :'key' || '.rnnlm.perplexity_array',
       bench_timed(format('SELECT avg(p) FROM unnest(rnnlm_perplexity(%L, ARRAY(%s))) AS p', :'cfg', :'query'));
\endif
SQL
  for tt in $(torch_thread_counts); do
    torch_run "$THREADS" score-batch --config "$key" --model "$D/$cfg.pt" \
      --docs "$D/$table.txt" --val-docs "$nval" --torch-threads "$tt" --tag ".t$tt" \
      "${extra[@]}" >>"$RAW"
  done
}

# 7. A precision's agreement with fp32 scoring: the mean absolute difference
# of the per-token log-probabilities over the validation documents (at most 300).
agreement() {
  local cfg=$1 precision=$2 table nval
  table=$(docs_of "$cfg")
  [[ $cfg == w_* ]] && nval=$W_VAL || nval=$C_VAL
  (( nval > 300 )) && nval=300
  say "$cfg: agreement of $precision with fp32 scoring over $nval validation documents"
  q_rec -v cfg="$cfg" -v nval="$nval" -v table="$table" -v precision="$precision" <<'SQL'
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE lp32 AS
  SELECT d.id, t.position, t.logprob
    FROM (SELECT id, line FROM :"table" ORDER BY id DESC LIMIT :nval) d,
         rnnlm_token_logprobs(:'cfg', d.line) t;
SET rnnlm.precision = :'precision';
CREATE TEMP TABLE lp16 AS
  SELECT d.id, t.position, t.logprob
    FROM (SELECT id, line FROM :"table" ORDER BY id DESC LIMIT :nval) d,
         rnnlm_token_logprobs(:'cfg', d.line) t;
SELECT :'cfg' || '.agreement.' || :'precision',
       jsonb_build_object('tokens', count(*), 'mean_abs_diff', avg(abs(a.logprob - b.logprob)),
                          'max_abs_diff', max(abs(a.logprob - b.logprob)))
  FROM lp32 a JOIN lp16 b USING (id, position);
SQL
}

# 4 and 5. Per-row scoring at one thread, and the per-call overhead; PyTorch
# scores the first TORCH_ROWS of the same rows and 'a' TORCH_A times (its
# batch-1 forward pass is slow enough that the whole set would dominate the run).
score_rows() {
  local cfg=$1 torch_rows=$2 torch_a=$3 precision=${4:-fp32}
  say "$cfg: per-row scoring of $ROWS rows at one thread (PyTorch: $torch_rows), and $A_ROWS one-character rows (PyTorch: $torch_a), precision $precision"
  if [[ $precision != fp32 ]]; then
    q_rec -v cfg="$cfg" -v precision="$precision" <<'SQL'
SET rnnlm.threads = 1;
SET rnnlm.precision = :'precision';
SET max_parallel_workers_per_gather = 0;
SELECT rnnlm_perplexity(:'cfg', 'a') \g /dev/null
SELECT :'cfg' || '_' || :'precision' || '.rnnlm.score_rows',
       bench_timed(format('SELECT avg(rnnlm_perplexity(%L, line)) FROM rows', :'cfg'))
       || jsonb_build_object('rows', (SELECT count(*) FROM rows));
SQL
    return
  fi
  q_rec -v cfg="$cfg" -v a_rows="$A_ROWS" <<'SQL'
SET rnnlm.threads = 1;
SET max_parallel_workers_per_gather = 0;
SELECT :'cfg' || '.rnnlm.first_call', bench_timed(format('SELECT rnnlm_perplexity(%L, %L)', :'cfg', 'a'));
SELECT :'cfg' || '.rnnlm.score_rows',
       bench_timed(format('SELECT avg(rnnlm_perplexity(%L, line)) FROM rows', :'cfg'))
       || jsonb_build_object('rows', (SELECT count(*) FROM rows));
SELECT :'cfg' || '.rnnlm.score_rows_mem', bench_mem();
SELECT :'cfg' || '.rnnlm.score_a',
       bench_timed(format('SELECT avg(rnnlm_perplexity(%L, a)) FROM (SELECT %L::text AS a FROM generate_series(1, %s)) s',
                          :'cfg', 'a', :'a_rows'))
       || jsonb_build_object('rows', :a_rows);
SQL
  torch_run 1 score-rows --config "$cfg" --model "$D/$cfg.pt" --rows "$D/rows.txt" \
    --max-rows "$torch_rows" --repeat-a "$torch_a" >>"$RAW"
}

# 5. Memory flatness: one backend scoring many short rows with a tiny model.
part_flat() {
  say "memory flatness: a tiny model over $(( FLAT_ROWS / 10 )) and then $FLAT_ROWS rows in one backend"
  q_rec -v n1=$(( FLAT_ROWS / 10 )) -v n2="$FLAT_ROWS" <<'SQL'
SET rnnlm.threads = 1;
SET max_parallel_workers_per_gather = 0;
SELECT 'tiny.rnnlm.first_call', bench_timed($$SELECT rnnlm_perplexity('tiny', 'a')$$);
SELECT 'flat.mem_loaded', bench_mem();
SELECT 'flat.run1', bench_timed(format(
  $$SELECT avg(rnnlm_perplexity('tiny', 'row ' || i)) FROM generate_series(1, %s) i$$, :n1))
  || jsonb_build_object('rows', :n1);
SELECT 'flat.mem1', bench_mem() || jsonb_build_object('rows_scored', :n1);
SELECT 'flat.run2', bench_timed(format(
  $$SELECT avg(rnnlm_perplexity('tiny', 'row ' || i)) FROM generate_series(%s, %s) i$$, :n1 + 1, :n2))
  || jsonb_build_object('rows', :n2 - :n1);
SELECT 'flat.mem2', bench_mem() || jsonb_build_object('rows_scored', :n2);
SQL
}

# 6. Parallel query over the table par with the tiny model.
part_parallel() {
  local reps=2 r w
  (( QUICK )) && reps=1
  say "parallel query: rnnlm_perplexity over $PAR_ROWS rows, 0 and 2 workers"
  for (( r = 1; r <= reps; r++ )); do
    for w in 0 2; do
      q -v w="$w" >"$R/explain.$w.$r.txt" <<'SQL'
SET rnnlm.threads = 1;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = :w;
SELECT rnnlm_perplexity('tiny', 'a') \g /dev/null
EXPLAIN (ANALYZE) SELECT sum(rnnlm_perplexity('tiny', line)) FROM par;
SQL
      rec "parallel.$w.$r.launched" "$(sed -n 's/.*Workers Launched: \([0-9]*\).*/\1/p' "$R/explain.$w.$r.txt" | head -1)"
      rec "parallel.$w.$r.ms" "$(sed -n 's/^Execution Time: \([0-9.]*\) ms.*/\1/p' "$R/explain.$w.$r.txt")"
      rec "parallel.$w.$r.plan" "$(jq_string <"$R/explain.$w.$r.txt")"
    done
  done
}

# Standard input as one JSON string (for multi-line values in the raw results).
jq_string() { "$PY" -c 'import json, sys; print(json.dumps(sys.stdin.read()))'; }

# ------------------------------------------------------------------ the run, as the test user

inner() {
  W=$RNNLM_WORKDIR
  BENCH=$RNNLM_REPO/bench
  PY=${RNNLM_PYTHON:-/usr/bin/python3}
  THREADS=${RNNLM_BENCH_THREADS:-2}
  QUICK=${RNNLM_BENCH_QUICK:-0}
  R=$W/results
  D=$W/benchdata
  RAW=$R/raw.tsv
  CORPUS=${RNNLM_DATA_DIR:-}/tinyshakespeare.txt
  [[ -r $CORPUS ]] || die "cannot read $CORPUS"
  if (( QUICK )); then
    : "${RNNLM_BENCH_W_LINES:=400}" "${RNNLM_BENCH_C_LINES:=300}" "${RNNLM_BENCH_ROWS:=100}"
    : "${RNNLM_BENCH_A_ROWS:=1000}" "${RNNLM_BENCH_PAR_ROWS:=2000}" "${RNNLM_BENCH_FLAT_ROWS:=100000}"
    : "${RNNLM_BENCH_TORCH_ROWS:=30}" "${RNNLM_BENCH_TORCH_A_ROWS:=200}"
  else
    : "${RNNLM_BENCH_W_LINES:=10000}" "${RNNLM_BENCH_C_LINES:=5000}" "${RNNLM_BENCH_ROWS:=2000}"
    : "${RNNLM_BENCH_A_ROWS:=20000}" "${RNNLM_BENCH_PAR_ROWS:=20000}" "${RNNLM_BENCH_FLAT_ROWS:=1000000}"
    : "${RNNLM_BENCH_TORCH_ROWS:=500}" "${RNNLM_BENCH_TORCH_A_ROWS:=2000}"
  fi
  W_LINES=$RNNLM_BENCH_W_LINES C_LINES=$RNNLM_BENCH_C_LINES ROWS=$RNNLM_BENCH_ROWS
  A_ROWS=$RNNLM_BENCH_A_ROWS PAR_ROWS=$RNNLM_BENCH_PAR_ROWS FLAT_ROWS=$RNNLM_BENCH_FLAT_ROWS
  TORCH_ROWS=$RNNLM_BENCH_TORCH_ROWS TORCH_A_ROWS=$RNNLM_BENCH_TORCH_A_ROWS
  mkdir -p "$R" "$D"
  : >"$RAW"
  sample_load "$R/load.txt" &
  SAMPLER=$!
  trap 'kill "$SAMPLER" 2>/dev/null || true; cluster_stop "$W/cluster"' EXIT

  part_header
  part_sgemm start
  say "starting a throwaway cluster"
  cluster_start "$W/cluster"
  part_data

  q_rec <<'SQL'
SELECT 'env.runtime', rnnlm_runtime();
SQL
  "$PY" "$BENCH/torch_bench.py" env >>"$RAW"

  local cfg bf16
  for cfg in w_lstm w_gru c_lstm c_gru; do
    train_rnnlm "$cfg"
    train_torch "$cfg"
    score_batch "$cfg"
  done
  # the tiny model: characters, LSTM, embedding 16, hidden 64, 1 layer
  train_rnnlm tiny
  train_torch tiny

  score_rows c_lstm "$TORCH_ROWS" "$TORCH_A_ROWS"
  score_rows c_gru "$TORCH_ROWS" "$TORCH_A_ROWS"
  score_rows tiny "$ROWS" "$A_ROWS"
  part_flat
  part_parallel

  # int8 per-row scoring, on every processor
  score_rows c_lstm 0 0 int8
  score_rows c_gru 0 0 int8
  agreement c_lstm int8
  agreement c_gru int8

  # 7. bf16, where the processor has it and rnnlm runs it
  bf16=$(q -c "SELECT rnnlm_runtime()->'products'->'bf16' IS NOT NULL AND
                      rnnlm_runtime()->'cpu'->'features' ?| ARRAY['avx512_bf16', 'amx_bf16']")
  if [[ $bf16 == t ]]; then
    for cfg in w_lstm w_gru c_lstm c_gru; do
      train_rnnlm "$cfg" bf16
      train_torch "$cfg" bf16
      score_batch "$cfg" bf16
      agreement "$cfg" bf16
    done
    score_rows c_lstm 0 0 bf16
    score_rows c_gru 0 0 bf16
  else
    say "bf16: skipped, this processor has no bf16 instructions (AVX512_BF16 or AMX-BF16)"
    rec bf16.skipped "this processor has no bf16 instructions (AVX512_BF16 or AMX-BF16)"
  fi
  cluster_stop "$W/cluster"
  part_sgemm end
  rec env.cpu_idle_pct_at_end "$(cpu_idle_pct 3)"
  kill "$SAMPLER" 2>/dev/null || true
  rec env.load_samples "[$(paste -sd, "$R/load.txt")]"

  say "report"
  "$PY" "$BENCH/report.py" "$RAW" >"$R/report.md"
}

# ------------------------------------------------------------------ the caller's side

usage() { sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}"; }

# Stop what is left and remove the work directory (the EXIT trap).
# shellcheck disable=SC2317  # reached through the trap
finish() {
  local status=$?
  set +e
  remove_workdir "$status"
  exit "$status"
}

# The caller's side: check, build, stage, run inner() as the test user, keep the report.
main() {
  local threads=${RNNLM_BENCH_THREADS:-2} quick=${RNNLM_BENCH_QUICK:-0}
  local output=${RNNLM_BENCH_OUTPUT:-$here/results/latest.md}
  local data_dir py cmd
  while (( $# )); do
    case $1 in
      --quick) quick=1 ;;
      --threads) [[ $# -ge 2 ]] || die "--threads needs a number"; threads=$2; shift ;;
      --threads=*) threads=${1#*=} ;;
      --output) [[ $# -ge 2 ]] || die "--output needs a file"; output=$2; shift ;;
      --output=*) output=${1#*=} ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
  done
  [[ $threads =~ ^[1-9][0-9]*$ && $threads -le 64 ]] || die "--threads must be 1 to 64"
  [[ $quick == 0 || $quick == 1 ]] || die "RNNLM_BENCH_QUICK must be 0 or 1"

  data_dir=${RNNLM_DATA_DIR:-$(dirname "$repo")/shared/data}
  [[ -r $data_dir/tinyshakespeare.txt ]] \
    || die "the benchmark needs tinyshakespeare.txt in $data_dir (set RNNLM_DATA_DIR to the directory that holds it)"
  py=${RNNLM_PYTHON:-/usr/bin/python3}
  "$py" -c 'import torch, numpy' 2>/dev/null \
    || die "$py cannot import torch and numpy (Debian: apt-get install python3-torch python3-numpy; or set RNNLM_PYTHON)"

  # The command that reproduces this run, and the commit it measures.
  cmd="bash bench/run.sh --threads $threads"
  (( quick )) && cmd+=" --quick"
  [[ -n ${OPENBLAS_CORETYPE:-} ]] && cmd="OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE $cmd"
  export RNNLM_BENCH_COMMAND=$cmd RNNLM_BENCH_THREADS=$threads RNNLM_BENCH_QUICK=$quick
  RNNLM_BENCH_COMMIT=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || true)
  if [[ -n $RNNLM_BENCH_COMMIT && -n $(git -C "$repo" status --porcelain -- src sql Makefile 2>/dev/null) ]]; then
    RNNLM_BENCH_COMMIT+=" with uncommitted changes"
  fi
  export RNNLM_BENCH_COMMIT

  trap finish EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  bash "$repo/test/deps.sh"
  pg_paths
  make_workdir
  say "make"
  repo_make "$repo" -j"$(nproc)" >"$W/make.log" 2>&1 || { cat "$W/make.log" >&2; die "make failed"; }
  stage_all "$repo"
  # OPENBLAS_CORETYPE is not among the variables the test user's clean environment keeps.
  local -a pass_env=()
  [[ -n ${OPENBLAS_CORETYPE:-} ]] && pass_env+=("OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE")
  local status=0
  run_as_test_user "$TEST_USER" env "${pass_env[@]}" bash "$W/repo/bench/run.sh" --inner || status=$?

  # The raw results are kept even when a later step failed.
  mkdir -p "$(dirname "$output")"
  [[ -s $W/results/raw.tsv ]] && cp "$W/results/raw.tsv" "${output%.md}.raw.tsv"
  (( status == 0 )) || die "the benchmark failed (raw results so far: ${output%.md}.raw.tsv)"
  cp "$W/results/report.md" "$output"
  echo
  cat "$output"
  echo
  say "report written to $output (raw results: ${output%.md}.raw.tsv; bench/report.py turns them into the report)"
}

# Everything above is only definitions, so editing this file during a run is harmless.
if [[ ${1:-} == --inner ]]; then
  shift
  inner "$@"
else
  main "$@"
fi
exit
