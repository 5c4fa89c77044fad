--
-- rnnlm_describe: a model card, as jsonb and as text
--
SET client_min_messages = warning;
CREATE ROLE regress_rnndesc_alice;
CREATE ROLE regress_rnndesc_bob;
CREATE TABLE desc_docs AS
  SELECT i, 'ticket ' || i || ': the printer on floor ' || i % 4 || ' is out of paper' AS body
    FROM generate_series(1, 120) i;
GRANT SELECT ON desc_docs TO regress_rnndesc_alice;
SET ROLE regress_rnndesc_alice;
SELECT rnnlm_train('desc_m', 'SELECT body FROM desc_docs',
                   '{"tokenizer": "char", "cell": "gru", "hidden_size": 8, "embedding_dim": 4,
                     "num_layers": 1, "epochs": 3}')->>'model' AS model;
SELECT k FROM jsonb_object_keys(rnnlm_describe_jsonb('desc_m')) k ORDER BY k;
SELECT c->>'cell' AS cell, c->>'hidden_size' AS hidden, c->'provenance'->>'rows' AS rows,
       c->>'training_query' AS training_query, jsonb_array_length(c->'history') AS epochs,
       (c->'surprise_perplexity'->>'median')::float8 <= (c->'surprise_perplexity'->>'p90')::float8 AS ordered,
       jsonb_array_length(c->'versions') AS versions
  FROM rnnlm_describe_jsonb('desc_m') c;
-- the report: one line per fact, the losses per epoch as a sparkline
SELECT regexp_replace(line, '[0-9][0-9.,:-]*', 'N', 'g') AS line
  FROM regexp_split_to_table(rnnlm_describe('desc_m'), E'\n') AS line
 WHERE line !~ 'trained by';
SELECT rnnlm_describe('desc_m') ~ 'per epoch \(3\): train [▁▂▃▄▅▆▇█]{3}  validation [▁▂▃▄▅▆▇█]{3}' AS sparklines;
SELECT rnnlm.sparkline(ARRAY[3, 2, 1, NULL, 1]) AS falling, rnnlm.sparkline(ARRAY[1, 1]) AS flat;
-- a grantee sees the card without the training query; others nothing
SET ROLE regress_rnndesc_bob;
SELECT rnnlm_describe('desc_m');
SET ROLE regress_rnndesc_alice;
SELECT rnnlm_grant('desc_m', 'regress_rnndesc_bob');
SET ROLE regress_rnndesc_bob;
SELECT rnnlm_describe_jsonb('desc_m') ? 'training_query' AS has_key,
       rnnlm_describe_jsonb('desc_m')->>'training_query' AS training_query,
       rnnlm_describe('desc_m') ~ 'training query' AS shows_query;
RESET ROLE;
-- an imported model has no calibration, and says who imported it
SET ROLE regress_rnndesc_alice;
SELECT rnnlm_import('desc_imp', rnnlm_export('desc_m'))->>'cell' AS cell;
SELECT regexp_replace(line, '[0-9][0-9.,:-]*', 'N', 'g') AS line
  FROM regexp_split_to_table(rnnlm_describe('desc_imp'), E'\n') AS line
 WHERE line ~ 'imported|calibration';
SELECT rnnlm_describe('desc_none');
SELECT rnnlm_describe(NULL) IS NULL AS strict;
SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'desc\_%' ORDER BY name;
RESET ROLE;
DROP TABLE desc_docs;
DROP ROLE regress_rnndesc_alice;
DROP ROLE regress_rnndesc_bob;
