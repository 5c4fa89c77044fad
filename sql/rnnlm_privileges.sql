--
-- rnnlm_privileges: rnnlm's tables are written only by rnnlm's functions
-- (no role but the extension's owner holds INSERT, UPDATE, DELETE or
-- TRUNCATE, so none can forge a job or a model row, or lock the tables
-- against others); versions are immutable (a number is never reused, a
-- reference checks the hash of the bytes it loads); names with "@" are
-- refused; checkpoint_minutes has a floor; what a revoke reaches
--
SET client_min_messages = warning;
CREATE TABLE prv_docs AS
SELECT 'ticket ' || i || ' the printer on floor ' || (i % 5) || ' is out of toner' AS body
  FROM generate_series(1, 40) AS i;
GRANT SELECT ON prv_docs TO PUBLIC;
CREATE FUNCTION prv_opts(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"tokenizer": "char", "epochs": 1, "hidden_size": 8, "embedding_dim": 4,
             "num_layers": 1, "validation_fraction": 0}'::jsonb || extra
$$;
CREATE FUNCTION prv_try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) msg;
END
$$;
GRANT EXECUTE ON FUNCTION prv_try(text) TO PUBLIC;
CREATE ROLE regress_rnnprv_alice;
CREATE ROLE regress_rnnprv_bob;

-- PUBLIC reads the tables (under row-level security) and writes none of
-- them; nor does it take a value from their sequences
SELECT c.relname,
       has_table_privilege('public', c.oid, 'SELECT') AS sel,
       has_table_privilege('public', c.oid, 'INSERT') AS ins,
       has_table_privilege('public', c.oid, 'UPDATE') AS upd,
       has_table_privilege('public', c.oid, 'DELETE') AS del,
       has_table_privilege('public', c.oid, 'TRUNCATE') AS trunc
  FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'rnnlm') AND d.deptype = 'e'
   AND c.relkind = 'r'
 ORDER BY c.relname;
SELECT c.relname, has_sequence_privilege('public', c.oid, 'USAGE') AS usage,
       has_sequence_privilege('public', c.oid, 'SELECT') AS sel
  FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'rnnlm') AND d.deptype = 'e'
   AND c.relkind = 'S'
 ORDER BY c.relname;
-- no function of rnnlm's is SECURITY DEFINER
SELECT count(*) AS security_definer
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'rnnlm') AND d.deptype = 'e'
   AND p.prosecdef;

SET ROLE regress_rnnprv_alice;
SELECT rnnlm_train('prv_a', 'SELECT body FROM prv_docs', prv_opts('{"seed": 1}'))->>'model' AS model;
SELECT rnnlm_grant('prv_a', 'regress_rnnprv_bob');
-- a role cannot lock the tables against everyone (finding: any role could
-- freeze the extension with LOCK TABLE ... ACCESS EXCLUSIVE), forge a job
-- row, or change its own model's rows behind the functions' backs
SET ROLE regress_rnnprv_bob;
SELECT label, prv_try(q) AS result FROM (VALUES
    ('lock exclusive', $$LOCK TABLE rnnlm.model, rnnlm.job IN ACCESS EXCLUSIVE MODE$$),
    ('lock row exclusive', $$LOCK TABLE rnnlm.model IN ROW EXCLUSIVE MODE$$),
    ('lock share', $$LOCK TABLE rnnlm.model_version IN SHARE MODE$$),
    ('forge a job', $$INSERT INTO rnnlm.job (model, owner, training_query, options, search_path, threads, state, worker_pid)
         VALUES ('forged', 'regress_rnnprv_bob', 'SELECT 1', '{}', 'public', 300, 'running', 1)$$),
    ('change a job', $$UPDATE rnnlm.job SET threads = 300$$),
    ('delete jobs', $$DELETE FROM rnnlm.job$$),
    ('truncate jobs', $$TRUNCATE rnnlm.job$$),
    ('nextval', $$SELECT nextval('rnnlm.job_id_seq')$$),
    ('read the counter', $$SELECT * FROM rnnlm.version_counter$$)
  ) AS t(label, q);
SET ROLE regress_rnnprv_alice;
SELECT label, prv_try(q) AS result FROM (VALUES
    ('renumber own version', $$UPDATE rnnlm.model SET version = 7 WHERE name = 'prv_a'$$),
    ('change own weights', $$UPDATE rnnlm.model SET weights = weights || '\x00'::bytea WHERE name = 'prv_a'$$),
    ('grant by hand', $$UPDATE rnnlm.model SET grantees = '{-}' WHERE name = 'prv_a'$$),
    ('delete own model', $$DELETE FROM rnnlm.model WHERE name = 'prv_a'$$),
    ('insert a version', $$INSERT INTO rnnlm.model_version (name, version, sha256, parameters, created_at, weights)
         SELECT name, 9, sha256, parameters, created_at, weights FROM rnnlm.model WHERE name = 'prv_a'$$)
  ) AS t(label, q);
-- the functions beside them do what the owner may
SELECT rnnlm_revoke('prv_a', 'regress_rnnprv_bob');
SELECT name, granted_to FROM rnnlm.models WHERE name = 'prv_a';
-- and a role that is not the owner cannot use them
SELECT rnnlm_grant('prv_a', 'regress_rnnprv_bob');
SET ROLE regress_rnnprv_bob;
SELECT prv_try($$SELECT rnnlm_grant('prv_a', 'regress_rnnprv_bob')$$) AS bob_grants;
SELECT prv_try($$SELECT rnnlm_revoke('prv_a', 'regress_rnnprv_bob')$$) AS bob_revokes;
SELECT prv_try($$SELECT rnnlm_drop_version('prv_a', 1)$$) AS bob_drops_a_version;
SELECT prv_try($$SELECT rnnlm_drop('prv_a')$$) AS bob_drops;
RESET ROLE;
-- a grantee role that was dropped shows as a number, which rnnlm_revoke takes
CREATE ROLE regress_rnnprv_gone;
SELECT rnnlm_grant('prv_a', 'regress_rnnprv_gone');
DROP ROLE regress_rnnprv_gone;
SELECT g AS gone FROM rnnlm.models, unnest(granted_to) AS g WHERE name = 'prv_a' AND g ~ '^[0-9]+$' \gset
SET ROLE regress_rnnprv_alice;
SELECT rnnlm_revoke('prv_a', :'gone');
SELECT name, granted_to FROM rnnlm.models WHERE name = 'prv_a';
SELECT prv_try($$SELECT rnnlm_revoke('prv_a', '123')$$) AS revoke_a_number_not_granted;
SELECT prv_try($$SELECT rnnlm_grant('prv_a', '123')$$) AS grant_a_number;
SELECT prv_try($$SELECT rnnlm_grant('prv_a', NULL)$$) AS grant_null;
RESET ROLE;

-- a version number, once used, never names other weights: dropping a
-- version, or the whole model, retires its numbers
SET ROLE regress_rnnprv_alice;
SELECT rnnlm_train('prv_a', 'SELECT body FROM prv_docs', prv_opts('{"seed": 2, "replace": true, "keep_versions": 5}'))->>'model' AS model;
SELECT rnnlm_train('prv_a', 'SELECT body FROM prv_docs', prv_opts('{"seed": 3, "replace": true}'))->>'model' AS model;
SELECT version, current FROM rnnlm.model_versions WHERE name = 'prv_a' ORDER BY version;
SELECT rnnlm_drop_version('prv_a', 2);
SELECT rnnlm_train('prv_a', 'SELECT body FROM prv_docs', prv_opts('{"seed": 4, "replace": true}'))->>'model' AS model;
SELECT version, current FROM rnnlm.model_versions WHERE name = 'prv_a' ORDER BY version;
SELECT prv_try($$SELECT rnnlm_perplexity('prv_a@2', 'the printer')$$) AS at_2;
SELECT rnnlm_drop('prv_a');
SELECT rnnlm_train('prv_a', 'SELECT body FROM prv_docs', prv_opts('{"seed": 1}'))->>'model' AS model;
SELECT version FROM rnnlm.model_versions WHERE name = 'prv_a' ORDER BY version;
SELECT prv_try($$SELECT rnnlm_perplexity('prv_a@1', 'the printer')$$) AS at_1;
RESET ROLE;

-- a reference by version or hash serves only bytes with that hash, even
-- when the tables were changed behind the functions (here by a superuser,
-- the only role that still can): a current row renumbered by hand to 1
-- does not pass for version 1, and weights changed under a version are
-- refused (XX001)
SELECT rnnlm_train('prv_s', 'SELECT body FROM prv_docs', prv_opts('{"seed": 1}'))->>'model' AS model;
SELECT rnnlm_train('prv_s', 'SELECT body FROM prv_docs', prv_opts('{"seed": 2, "replace": true}'))->>'model' AS model;
SELECT sha256 AS sha1 FROM rnnlm.model_versions WHERE name = 'prv_s' AND version = 1 \gset
UPDATE rnnlm.model SET version = 1 WHERE name = 'prv_s';
SELECT encode(sha256(rnnlm_export('prv_s@sha256:' || :'sha1')), 'hex') = :'sha1' AS by_hash_is_version_1;
\set VERBOSITY terse
SELECT rnnlm_perplexity('prv_s@1', 'the printer');
ALTER TABLE rnnlm.model_version DISABLE TRIGGER model_version_frozen;
UPDATE rnnlm.model_version SET weights = (SELECT weights FROM rnnlm.model WHERE name = 'prv_s')
 WHERE name = 'prv_s' AND version = 1;
ALTER TABLE rnnlm.model_version ENABLE TRIGGER model_version_frozen;
SELECT rnnlm_perplexity('prv_s@sha256:' || :'sha1', 'the printer');
SELECT rnnlm_perplexity_at('prv_s@sha256:' || left(:'sha1', 12), 'the printer');
SELECT length(rnnlm_export('prv_s@sha256:' || :'sha1'));
\set VERBOSITY default
SELECT rnnlm_drop('prv_s');

-- names with "@" are refused wherever a model is made (42602): a reference
-- would read them as name@version
\set VERBOSITY terse
SELECT rnnlm_train('x@1', 'SELECT body FROM prv_docs', prv_opts());
SELECT rnnlm_train('y@sha256:ab', 'SELECT body FROM prv_docs', prv_opts());
SELECT rnnlm_train_async('x@1', 'SELECT body FROM prv_docs', prv_opts());
SELECT rnnlm_import('y@sha256:ab', '\x00'::bytea);
SELECT * FROM rnnlm_tune('t@2', 'SELECT body FROM prv_docs', '{"hidden_size": [4, 8]}', prv_opts());
SELECT rnnlm_train_federated('f@3', ARRAY['nowhere'], 'SELECT body FROM prv_docs', prv_opts());
-- checkpoint_minutes has a floor, rnnlm.min_checkpoint_minutes (22023)
SELECT rnnlm_train_async('prv_ckpt', 'SELECT body FROM prv_docs', prv_opts('{"checkpoint_minutes": 0.000001}'));
SHOW rnnlm.min_checkpoint_minutes;
SET ROLE regress_rnnprv_alice;
SET rnnlm.min_checkpoint_minutes = 0;
SET rnnlm.max_jobs_per_role = 100;
RESET ROLE;
\set VERBOSITY default

-- what a revoke reaches: every later statement that loads the model, but not
-- a value a prepared statement folded to a constant at plan time (an
-- IMMUTABLE call on a pinned version), which keeps its result until the
-- plan is made again
SET ROLE regress_rnnprv_alice;
SELECT rnnlm_train('prv_r', 'SELECT body FROM prv_docs', prv_opts('{"seed": 1}'))->>'model' AS model;
SELECT rnnlm_grant('prv_r', 'regress_rnnprv_bob');
SET ROLE regress_rnnprv_bob;
PREPARE prv_folded AS SELECT rnnlm_perplexity_at('prv_r@1', 'the printer') > 1 AS folded;
PREPARE prv_loaded AS SELECT rnnlm_perplexity('prv_r@1', 'the printer') > 1 AS loaded;
EXECUTE prv_folded;
EXECUTE prv_loaded;
SET ROLE regress_rnnprv_alice;
SELECT rnnlm_revoke('prv_r', 'regress_rnnprv_bob');
SET ROLE regress_rnnprv_bob;
EXECUTE prv_folded;
SELECT prv_try('EXECUTE prv_loaded') AS loaded_after_revoke;
DISCARD PLANS;
SELECT prv_try('EXECUTE prv_folded') AS folded_after_discard;
DEALLOCATE ALL;
RESET ROLE;
SELECT rnnlm_drop('prv_r');

DROP ROLE regress_rnnprv_alice;
DROP ROLE regress_rnnprv_bob;
DROP FUNCTION prv_opts(jsonb);
DROP FUNCTION prv_try(text);
DROP TABLE prv_docs;
