--
-- rnnlm_retrain: a new version on the training query of the current
-- version, with its options changed only by those given, run as the model's
-- owner (whoever calls) with the search_path it was trained with
--
SET client_min_messages = warning;
CREATE ROLE regress_rnnrt_alice LOGIN;
CREATE ROLE regress_rnnrt_bob;
CREATE SCHEMA regress_rnnrt AUTHORIZATION regress_rnnrt_alice;
SET ROLE regress_rnnrt_alice;
SET search_path = regress_rnnrt, public;
CREATE TABLE docs AS
  SELECT i, 'ticket ' || i || ': the printer on floor ' || i % 4 || ' is out of paper' AS body
    FROM generate_series(1, 100) i;
-- the query names its table without a schema, and yields rows only when it
-- runs as alice
SELECT rnnlm_train('rt_m',
  'SELECT CASE WHEN current_user = ''regress_rnnrt_alice'' THEN body END FROM docs',
  '{"tokenizer": "char", "hidden_size": 8, "embedding_dim": 4, "num_layers": 1, "epochs": 1,
    "seed": 5, "keep_versions": 5}')->>'model' AS model;
RESET search_path;

-- as before: the same query (found through the stored search_path) and options
SELECT rnnlm_retrain('rt_m')->>'model' AS model;
SELECT v.version, (v.provenance->>'rows')::int AS rows, v.training_query IS NOT NULL AS has_query
  FROM rnnlm.model_versions v WHERE v.name = 'rt_m' ORDER BY v.version;
SELECT options->>'hidden_size' AS hidden, options->>'seed' AS seed, options->>'epochs' AS epochs,
       options->>'tokenizer' AS tokenizer, keep_versions
  FROM rnnlm.models WHERE name = 'rt_m';
-- changed only by the options given; on the rows there are now
INSERT INTO regress_rnnrt.docs SELECT i, 'ticket ' || i || ': the scanner is jammed' FROM generate_series(101, 150) i;
SELECT rnnlm_retrain('rt_m', '{"epochs": 2}')->>'epochs_run' AS epochs_run;
SELECT options->>'hidden_size' AS hidden, options->>'epochs' AS epochs, options->>'seed' AS seed
  FROM rnnlm.models WHERE name = 'rt_m';
SELECT version, (provenance->>'rows')::int AS rows FROM rnnlm.model_versions WHERE name = 'rt_m' ORDER BY version;
SELECT rnnlm_grant('rt_m', 'regress_rnnrt_bob');
RESET ROLE;

-- a grantee may not retrain it
SET ROLE regress_rnnrt_bob;
SELECT rnnlm_retrain('rt_m');
SELECT rnnlm_retrain_async('rt_m');
RESET ROLE;

-- a superuser may, and the query still runs as alice (as a superuser, the
-- CASE would give only NULLs, and the training would fail)
SELECT rnnlm_retrain('rt_m')->>'model' AS model;
SELECT version, provenance->>'trained_by' AS trained_by FROM rnnlm.model_versions
 WHERE name = 'rt_m' AND current;
-- as a job too, which is alice's
SELECT rnnlm_retrain_async('rt_m', '{"seed": 6}') AS job \gset
SELECT rnnlm_wait(:job)->>'model' AS model;
SELECT owner, state FROM rnnlm.jobs WHERE id = :job;
SELECT version, options->>'seed' AS seed FROM rnnlm.models WHERE name = 'rt_m';

-- a replacement by rnnlm_train keeps the options left out too (not the
-- query, nor init_from or embeddings_query, which are the caller's to give)
SET ROLE regress_rnnrt_alice;
SELECT rnnlm_train('rt_r', 'SELECT body FROM regress_rnnrt.docs',
                   '{"tokenizer": "char", "cell": "gru", "hidden_size": 8, "embedding_dim": 4,
                     "num_layers": 1, "epochs": 1, "dropout": 0.1}')->>'cell' AS cell;
SELECT s->>'cell' AS cell, s->>'tokenizer' AS tokenizer, (s->'parameters')::int = p.parameters AS same_size
  FROM rnnlm_train('rt_r', 'SELECT body FROM regress_rnnrt.docs WHERE i > 10', '{"replace": true}') AS s,
       (SELECT parameters FROM rnnlm.model_versions WHERE name = 'rt_r' AND version = 1) AS p;
SELECT options->>'dropout' AS dropout, options->>'hidden_size' AS hidden FROM rnnlm.models WHERE name = 'rt_r';
-- and a fine-tune from another model takes that model's architecture instead
SELECT rnnlm_train('rt_r', 'SELECT body FROM regress_rnnrt.docs',
                   '{"replace": true, "init_from": "rt_m"}')->>'cell' AS cell;
-- a job likewise
SELECT rnnlm_train_async('rt_r', 'SELECT body FROM regress_rnnrt.docs', '{"replace": true, "epochs": 2}') AS rjob \gset
SELECT s->>'cell' AS cell, s->>'epochs' AS epochs FROM rnnlm_wait(:rjob) AS s;
SELECT rnnlm_forget(:rjob);

-- an embeddings_query is SQL too: the options every grantee reads say only
-- that there was one; the owner reads it beside the training query, and a
-- retraining runs it again
CREATE TABLE regress_rnnrt.vecs AS
  SELECT c AS token, ARRAY[0.1, 0.2, 0.3, 0.4]::real[] AS vector FROM unnest(ARRAY['t', 'e', 'p']) c;
SELECT rnnlm_train('rt_e', 'SELECT body FROM regress_rnnrt.docs',
                   '{"tokenizer": "char", "hidden_size": 8, "embedding_dim": 4, "num_layers": 1, "epochs": 1,
                     "embeddings_query": "SELECT token, vector FROM regress_rnnrt.vecs"}')->>'pretrained_tokens' AS pretrained;
SELECT rnnlm_grant('rt_e', 'regress_rnnrt_bob');
SELECT m.options->'embeddings_query' AS in_options, v.embeddings_query, v.provenance ? 'search_path' AS path_shown
  FROM rnnlm.models m JOIN rnnlm.model_versions v USING (name) WHERE name = 'rt_e';
SET ROLE regress_rnnrt_bob;
SELECT m.options->'embeddings_query' AS in_options, v.embeddings_query, v.training_query
  FROM rnnlm.models m JOIN rnnlm.model_versions v USING (name) WHERE name = 'rt_e';
SET ROLE regress_rnnrt_alice;
SELECT rnnlm_retrain('rt_e')->>'pretrained_tokens' AS pretrained;
SELECT rnnlm_train('rt_e', 'SELECT body FROM regress_rnnrt.docs', '{"replace": true}')->>'pretrained_tokens' AS replaced_without;
-- advisory locks that the owner's query takes do not stay with a
-- superuser's session that retrains the model
SELECT rnnlm_train('rt_lock', 'SELECT body FROM regress_rnnrt.docs WHERE pg_advisory_lock(4242) IS NOT NULL',
                   '{"tokenizer": "char", "hidden_size": 8, "embedding_dim": 4, "num_layers": 1, "epochs": 1}')->>'model' AS model;
SELECT pg_advisory_unlock_all();
RESET ROLE;
SELECT rnnlm_retrain('rt_lock')->>'model' AS model;
SELECT count(*) AS advisory_locks_left FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SET ROLE regress_rnnrt_alice;

-- what cannot be retrained
SELECT rnnlm_import('rt_imp', rnnlm_export('rt_m'))->>'cell' AS cell;
SELECT rnnlm_retrain('rt_imp');
SELECT rnnlm_retrain('rt_none');
SELECT rnnlm_retrain(NULL);
SELECT rnnlm_retrain('rt_m', '{"no_such_option": 1}');
-- another tokenizer: the options that came from the old one go
SELECT rnnlm_retrain('rt_m', '{"tokenizer": "word"}')->>'tokenizer' AS tokenizer;
SELECT options->>'max_vocab' AS max_vocab, options->>'lowercase' AS lowercase FROM rnnlm.models WHERE name = 'rt_m';
BEGIN READ ONLY;
SELECT rnnlm_retrain('rt_m');
ROLLBACK;
SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'rt\_%' ORDER BY name;
SELECT rnnlm_forget(:job);
RESET ROLE;

DROP SCHEMA regress_rnnrt CASCADE;
DROP ROLE regress_rnnrt_alice;
DROP ROLE regress_rnnrt_bob;
