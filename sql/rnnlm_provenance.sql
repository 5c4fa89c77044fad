--
-- rnnlm_provenance: every version records how it was made.  rnnlm.model_versions
-- shows it: provenance (who trained it, when, from how many rows and tokens,
-- with which rnnlm, backend and precision) to whoever may use the model, and
-- training_query to the model's owner only (it may name tables and filters a
-- grantee cannot read).
--
SET client_min_messages = warning;
CREATE ROLE regress_rnnprov_alice;
CREATE ROLE regress_rnnprov_bob;
CREATE TABLE prov_docs AS
  SELECT i, 'ticket ' || i || ': the printer on floor ' || i % 4 || ' is out of paper' AS body
    FROM generate_series(1, 120) i;
GRANT SELECT ON prov_docs TO regress_rnnprov_alice;
CREATE FUNCTION prov_opts(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
  SELECT '{"tokenizer": "char", "hidden_size": 8, "embedding_dim": 4, "num_layers": 1, "epochs": 1}'::jsonb || extra
$$;

SET ROLE regress_rnnprov_alice;
SELECT rnnlm_train('prov_m', 'SELECT body FROM prov_docs WHERE i % 2 = 0', prov_opts())->>'model' AS model;
SELECT version, provenance->>'trained_by' AS trained_by,
       (provenance->>'rows')::int AS rows, (provenance->>'documents')::int AS documents,
       (provenance->>'validation_documents')::int AS validation_documents,
       (provenance->>'train_tokens')::int > 0 AS train_tokens,
       provenance->>'rnnlm_version' AS rnnlm, provenance->>'backend' AS backend,
       provenance->>'precision' AS precision, provenance->'parent' AS parent,
       (provenance->>'started_at')::timestamptz <= (provenance->>'finished_at')::timestamptz AS ordered,
       training_query
  FROM rnnlm.model_versions WHERE name = 'prov_m';
-- a fine-tuned model names its parent
SELECT rnnlm_train('prov_ft', 'SELECT body FROM prov_docs', prov_opts('{"init_from": "prov_m"}'))->>'model' AS model;
SELECT provenance->>'parent' AS parent FROM rnnlm.model_versions WHERE name = 'prov_ft';
-- a replacement is a new version with its own provenance; the old one keeps its own
SELECT rnnlm_train('prov_m', 'SELECT body FROM prov_docs', prov_opts('{"replace": true, "keep_versions": 3}'))->>'model' AS model;
SELECT version, current, (provenance->>'rows')::int AS rows, training_query
  FROM rnnlm.model_versions WHERE name = 'prov_m' ORDER BY version;
SELECT rnnlm_grant('prov_m', 'regress_rnnprov_bob');

-- a grantee sees the provenance, but not the training query
SET ROLE regress_rnnprov_bob;
SELECT version, provenance->>'trained_by' AS trained_by, training_query
  FROM rnnlm.model_versions WHERE name = 'prov_m' ORDER BY version;
SELECT count(*) AS bob_reads_queries FROM rnnlm.training_query;
-- and writes nothing there
INSERT INTO rnnlm.training_query VALUES ('prov_m', 9, 'SELECT 1');
UPDATE rnnlm.training_query SET query = 'SELECT 1';
RESET ROLE;

-- an imported model says who imported it; it has no training query
SET ROLE regress_rnnprov_alice;
SELECT rnnlm_import('prov_imp', rnnlm_export('prov_m'))->>'cell' AS cell;
SELECT provenance->>'imported_by' AS imported_by, provenance ? 'imported_at' AS dated,
       training_query IS NULL AS no_query
  FROM rnnlm.model_versions WHERE name = 'prov_imp';
-- a dropped version, and a dropped model, take their training queries with them
SELECT rnnlm_drop_version('prov_m', 1);
RESET ROLE;
SELECT name, version FROM rnnlm.training_query WHERE name LIKE 'prov\_%' ORDER BY 1, 2;
SET ROLE regress_rnnprov_alice;
SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'prov\_%' ORDER BY name;
RESET ROLE;
SELECT count(*) AS queries_left FROM rnnlm.training_query WHERE name LIKE 'prov\_%';

DROP FUNCTION prov_opts(jsonb);
DROP TABLE prov_docs;
DROP ROLE regress_rnnprov_alice;
DROP ROLE regress_rnnprov_bob;
