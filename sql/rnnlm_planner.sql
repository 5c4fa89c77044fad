--
-- rnnlm_planner: a scan that scores every row gets a parallel plan, and
-- runs without JIT even where its cost is far above jit_above_cost (JIT
-- would only load LLVM for work done in C).  Other statements keep JIT.
--
SET client_min_messages = warning;
CREATE TABLE pl_docs AS
SELECT i, 'line ' || i || ' of a corpus about printers' AS body
  FROM generate_series(1, 2000) AS i;
ANALYZE pl_docs;
SELECT rnnlm_train('pl_m', 'SELECT body FROM pl_docs LIMIT 200',
                   '{"tokenizer": "char", "epochs": 1, "hidden_size": 8,
                     "embedding_dim": 4, "num_layers": 1}')->'epochs_run' AS epochs_run;

-- Whether a statement was JIT-compiled, from EXPLAIN ANALYZE.
CREATE FUNCTION pl_jit_used(query text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, TIMING OFF, SUMMARY OFF, FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0) ->> 'JIT' IS NOT NULL;
END
$$;

-- the plan: parallel, as rnnlm_perplexity's cost asks
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT sum(rnnlm_perplexity('pl_m', body)) FROM pl_docs;
EXPLAIN (COSTS OFF) SELECT i FROM pl_docs ORDER BY rnnlm_perplexity('pl_m', body) DESC LIMIT 5;

-- JIT for everything that costs anything ...
SET jit = on;
SET jit_above_cost = 0;
SET jit_inline_above_cost = 0;
SET jit_optimize_above_cost = 0;
-- ... is used by a statement without rnnlm (where the server has JIT at all) ...
SELECT pl_jit_used('SELECT sum(length(body)) FROM pl_docs') = pg_jit_available() AS other_statements_keep_jit;
-- ... and not by the statements that score rows, in the leader or the workers
SELECT pl_jit_used('SELECT sum(rnnlm_perplexity(''pl_m'', body)) FROM pl_docs') AS scoring_jit;
SELECT pl_jit_used('SELECT i FROM pl_docs ORDER BY rnnlm_perplexity(''pl_m'', body) DESC LIMIT 5') AS ordering_jit;
SELECT pl_jit_used('SELECT count(*) FROM pl_docs WHERE rnnlm_perplexity(''pl_m'', body) > 1') AS filter_jit;
SELECT pl_jit_used('SELECT rnnlm_perplexity(''pl_m'', array_agg(body)) FROM pl_docs') AS array_jit;
SELECT pl_jit_used('SELECT (SELECT sum(logprob) FROM rnnlm_token_logprobs(''pl_m'', body)) FROM pl_docs') AS logprobs_jit;
SELECT pl_jit_used('SELECT rnnlm_generate(''pl_m'', body, 3, seed => 1) FROM pl_docs LIMIT 10') AS generate_jit;

-- also when the library is not loaded yet: the first statement of a session
\c
SET jit = on;
SET jit_above_cost = 0;
SET jit_inline_above_cost = 0;
SET jit_optimize_above_cost = 0;
SELECT pl_jit_used('SELECT sum(rnnlm_perplexity(''pl_m'', body)) FROM pl_docs') AS first_statement_jit;
SELECT pl_jit_used('SELECT sum(length(body)) FROM pl_docs') = pg_jit_available() AS other_statements_keep_jit;
RESET ALL;
SELECT rnnlm_drop('pl_m');
