--
-- rnnlm_precision: the precision of the matrix products and their backend.
-- Training takes a precision option and scoring the rnnlm.precision
-- setting: fp32 (the default), bf16 (bf16 inputs, fp32 sums, fp32 master
-- weights) or auto; scoring also int8 (one-row products from int8
-- weights).  The reference backend runs bf16 on every processor, and int8
-- runs everywhere, so what this file shows is the same on every machine; a
-- backend without bf16 products refuses bf16 with a clear error, and auto
-- falls back.
--
SET client_min_messages = warning;
CREATE TABLE pr_docs AS
SELECT i, 'ticket ' || i || ': the printer on floor ' || (i % 7) || ' is out of toner' AS body
  FROM generate_series(1, 120) AS i;

-- the settings and their defaults
SELECT rnnlm_runtime()->>'precision' AS scoring_precision,
       rnnlm_runtime()->'products'->>'setting' AS backend_setting,
       rnnlm_runtime()->'products'->'fp32'->>'backend' AS fp32_backend;
SELECT name, setting, enumvals FROM pg_settings
 WHERE name IN ('rnnlm.precision', 'rnnlm.backend') ORDER BY name;

-- the same model trained in fp32 and, on the reference backend, in bf16
SELECT rnnlm_train('pr_fp32', 'SELECT body FROM pr_docs',
                   '{"tokenizer": "char", "cell": "gru", "epochs": 2, "hidden_size": 24,
                     "embedding_dim": 8, "num_layers": 1, "batch_size": 8, "seq_len": 16,
                     "learning_rate": 0.01}')->'epochs_run' AS epochs_run;
SET rnnlm.backend = 'reference';
SELECT rnnlm_runtime()->'products'->'bf16'->>'backend' AS bf16_backend;
SELECT rnnlm_train('pr_bf16', 'SELECT body FROM pr_docs',
                   '{"tokenizer": "char", "cell": "gru", "epochs": 2, "hidden_size": 24,
                     "embedding_dim": 8, "num_layers": 1, "batch_size": 8, "seq_len": 16,
                     "learning_rate": 0.01, "precision": "bf16"}')->'epochs_run' AS epochs_run;
SELECT name, options->>'precision' AS precision FROM rnnlm.models
 WHERE name LIKE 'pr\_%' ORDER BY name;
-- they learn alike: validation losses within 0.05 nats, weights not the same
SELECT abs(a.val_loss - b.val_loss) < 0.05 AS losses_close,
       rnnlm_export('pr_fp32') <> rnnlm_export('pr_bf16') AS weights_differ
  FROM rnnlm.models a, rnnlm.models b WHERE a.name = 'pr_fp32' AND b.name = 'pr_bf16';

-- fp32 on the reference backend scores as on OpenBLAS, within 1e-5
CREATE TABLE pr_scores AS
SELECT i, rnnlm_perplexity('pr_fp32', body) AS reference FROM pr_docs WHERE i <= 20;
RESET rnnlm.backend;
ALTER TABLE pr_scores ADD COLUMN fp32 float8;
UPDATE pr_scores SET fp32 = rnnlm_perplexity('pr_fp32', body) FROM pr_docs d WHERE d.i = pr_scores.i;
SELECT bool_and(abs(ln(reference) - ln(fp32)) < 1e-5) AS reference_agrees FROM pr_scores;

-- scoring in bf16 differs from fp32 a little, per row and batched
SET rnnlm.backend = 'reference';
SET rnnlm.precision = 'bf16';
SELECT rnnlm_runtime()->>'precision' AS scoring_precision;
SELECT bool_and(abs(s.bf16 / p.fp32 - 1) < 0.01) AS within_1_percent,
       bool_or(s.bf16 <> p.fp32) AS some_differ,
       bool_and(abs(s.bf16 - s.batched) < 1e-3 * s.bf16) AS batched_agrees
  FROM pr_scores p
  JOIN (SELECT i, rnnlm_perplexity('pr_fp32', body) AS bf16,
               (rnnlm_perplexity('pr_fp32', ARRAY[body]))[1] AS batched
          FROM pr_docs WHERE i <= 20) s USING (i);
SELECT abs((rnnlm_evaluate('pr_fp32', 'SELECT body FROM pr_docs WHERE i <= 20')->>'loss')::float8
           - (SELECT avg(ln(fp32)) FROM pr_scores)) < 0.1 AS evaluate_runs;
SELECT length(rnnlm_generate('pr_fp32', 'ticket', 20, 0.0)) > 6 AS generates;
-- fp32 is exact again: the bf16 copy is dropped and fp32 scores come back bit for bit
SET rnnlm.precision = 'fp32';
RESET rnnlm.backend;
SELECT bool_and(rnnlm_perplexity('pr_fp32', body) = fp32) AS fp32_again
  FROM pr_docs JOIN pr_scores USING (i);

-- int8 (scoring only, any processor): per-row scoring and generation read
-- an int8 copy of the weight matrices in their one-row products
SET rnnlm.precision = 'int8';
SELECT rnnlm_runtime()->>'precision' AS scoring_precision;
SELECT bool_and(abs(s.int8 / p.fp32 - 1) < 0.02) AS within_2_percent,
       bool_or(s.int8 <> p.fp32) AS some_differ,
       bool_and(s.batched = p.fp32) AS batched_is_fp32
  FROM pr_scores p
  JOIN (SELECT i, rnnlm_perplexity('pr_fp32', body) AS int8,
               (rnnlm_perplexity('pr_fp32', ARRAY[body]))[1] AS batched
          FROM pr_docs WHERE i <= 20) s USING (i);
SELECT count(*) > 3 AS token_logprobs_run FROM rnnlm_token_logprobs('pr_fp32', 'ticket 7');
SELECT length(rnnlm_generate('pr_fp32', 'ticket', 20, 0.0)) > 6 AS generates;
SELECT rnnlm_train('pr_no', 'SELECT body FROM pr_docs', '{"precision": "int8"}');
RESET rnnlm.precision;
SELECT bool_and(rnnlm_perplexity('pr_fp32', body) = fp32) AS fp32_again
  FROM pr_docs JOIN pr_scores USING (i);

-- a backend without bf16 products refuses bf16, for training and scoring:
-- a SET is refused at once, with the reason, either way round
SET rnnlm.backend = 'openblas';
SELECT rnnlm_train('pr_no', 'SELECT body FROM pr_docs', '{"precision": "bf16"}');
SET rnnlm.precision = 'bf16';
SHOW rnnlm.precision;
SET rnnlm.backend = 'reference';
SET rnnlm.precision = 'bf16';
SET rnnlm.backend = 'openblas';
SHOW rnnlm.backend;
RESET rnnlm.precision;
RESET rnnlm.backend;
-- a value from a role's settings is checked at first use instead (a login
-- never fails for it); rnnlm_runtime() says why scoring cannot run
ALTER ROLE CURRENT_USER SET rnnlm.backend = 'openblas';
ALTER ROLE CURRENT_USER SET rnnlm.precision = 'bf16';
\c
SET client_min_messages = warning;
SELECT rnnlm_perplexity('pr_fp32', 'ticket 1');
SELECT rnnlm_runtime()->>'precision' AS scoring_precision,
       rnnlm_runtime()->>'precision_error' AS why;
ALTER ROLE CURRENT_USER RESET rnnlm.backend;
ALTER ROLE CURRENT_USER RESET rnnlm.precision;
\c
SET client_min_messages = warning;
-- auto falls back to fp32 on OpenBLAS
SET rnnlm.backend = 'openblas';
SET rnnlm.precision = 'auto';
SELECT bool_and(rnnlm_perplexity('pr_fp32', body) = fp32) AS auto_is_fp32
  FROM pr_docs JOIN pr_scores USING (i);
RESET rnnlm.precision;
RESET rnnlm.backend;

-- bad values
SELECT rnnlm_train('pr_bad', 'SELECT body FROM pr_docs', '{"precision": "fp16"}');
SET rnnlm.precision = 'fp16';
SET rnnlm.backend = 'cuda';

SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'pr\_%' ORDER BY name;
DROP TABLE pr_docs, pr_scores;
