--
-- rnnlm_security: ownership, grants, row-level security against direct DML,
-- the caller's privileges for training and evaluation queries, a hostile
-- search_path, rnnlm.max_memory, export and import
--
SET client_min_messages = warning;
-- errors raised inside helper functions do not need their context
\set SHOW_CONTEXT never

CREATE TABLE sec_docs AS
SELECT i AS id, (ARRAY['red apples are sweet', 'green pears are hard', 'ripe plums are soft'])[1 + i % 3] AS body
  FROM generate_series(1, 60) AS i;
GRANT SELECT ON sec_docs TO PUBLIC;
-- a table only alice may read
CREATE TABLE sec_secret AS
SELECT 'the vault code is ' || (ARRAY['four two', 'nine one', 'seven seven'])[1 + i % 3] AS body
  FROM generate_series(1, 30) AS i;

-- tiny settings
CREATE FUNCTION sec_opts(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"cell": "rnn", "embedding_dim": 4, "hidden_size": 4, "num_layers": 1, "epochs": 1,
             "learning_rate": 0.01, "seed": 1}'::jsonb OPERATOR(pg_catalog.||) extra
$$;
-- runs a statement as the current role; 'ok (N rows)' or 'SQLSTATE: message'
CREATE FUNCTION sec_try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    st text;
    msg text;
BEGIN
    EXECUTE q;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN 'ok (' OPERATOR(pg_catalog.||) n OPERATOR(pg_catalog.||) ' rows)';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) msg;
END
$$;
-- the roles that can see a model, by the view: one row per model visible
CREATE FUNCTION sec_visible() RETURNS TABLE (name text, owner text, granted_to text[])
LANGUAGE sql AS $$
    SELECT name, owner::text, granted_to FROM rnnlm.models ORDER BY name
$$;

CREATE ROLE regress_rnnsec_alice;
CREATE ROLE regress_rnnsec_bob;
CREATE ROLE regress_rnnsec_carol;      -- member of alice
CREATE ROLE regress_rnnsec_dave;       -- member of team
CREATE ROLE regress_rnnsec_eve;        -- no grants at all
CREATE ROLE regress_rnnsec_team;
CREATE ROLE regress_rnnsec_gone;       -- dropped after a grant
CREATE ROLE "regress_rnnsec_Mixed Case";
GRANT regress_rnnsec_alice TO regress_rnnsec_carol;
GRANT regress_rnnsec_team TO regress_rnnsec_dave;
GRANT SELECT ON sec_secret TO regress_rnnsec_alice;

-- no function of the extension is SECURITY DEFINER; the SQL ones pin their
-- search_path
SELECT p.oid::regprocedure AS function, p.prosecdef AS security_definer, p.proconfig
  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
 WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'rnnlm') AND d.deptype = 'e'
 ORDER BY p.oid::regprocedure::text COLLATE "C";

--
-- ownership: the role that trains owns the model
--
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_train('sec_a', 'SELECT body FROM sec_docs', sec_opts())->>'model' AS model;
SELECT rnnlm_train('sec_a2', 'SELECT body FROM sec_docs', sec_opts('{"seed": 2}'))->>'model' AS model;
SELECT name, owner, owner = current_user::regrole AS mine FROM rnnlm.model ORDER BY name;
SELECT * FROM sec_visible();
SELECT rnnlm_perplexity('sec_a', 'red apples') AS ppl_a,
       rnnlm_perplexity('sec_a2', 'red apples') AS ppl_a2 \gset
SET ROLE regress_rnnsec_bob;
SELECT rnnlm_train('sec_b', 'SELECT body FROM sec_docs', sec_opts('{"seed": 3}'))->>'model' AS model;
-- bob sees only his own model
SELECT * FROM sec_visible();
SELECT name FROM rnnlm.model ORDER BY name;

-- bob cannot see alice's models: "does not exist" for everything, except
-- that names are unique (42710), and a replacement of an invisible model
-- fails on the row-level security of the table
SELECT label, sec_try(q) AS result FROM (VALUES
    ('perplexity', $$SELECT rnnlm_perplexity('sec_a', 'red apples')$$),
    ('perplexity array', $$SELECT rnnlm_perplexity('sec_a', ARRAY['red apples', 'green pears'])$$),
    ('generate', $$SELECT rnnlm_generate('sec_a', 'red', 5, seed => 1)$$),
    ('token_logprobs', $$SELECT * FROM rnnlm_token_logprobs('sec_a', 'red apples')$$),
    ('evaluate', $$SELECT rnnlm_evaluate('sec_a', 'SELECT body FROM sec_docs')$$),
    ('export', $$SELECT rnnlm_export('sec_a')$$),
    ('select weights', $$SELECT weights FROM rnnlm.model WHERE name = 'sec_a'$$),
    ('drop', $$SELECT rnnlm_drop('sec_a')$$),
    ('drop if exists', $$SELECT rnnlm_drop('sec_a', if_exists => true)$$),
    ('grant', $$SELECT rnnlm_grant('sec_a', 'regress_rnnsec_bob')$$),
    ('revoke', $$SELECT rnnlm_revoke('sec_a', 'regress_rnnsec_bob')$$),
    ('train', $$SELECT rnnlm_train('sec_a', 'SELECT body FROM sec_docs', sec_opts())$$),
    ('train replace', $$SELECT rnnlm_train('sec_a', 'SELECT body FROM sec_docs', sec_opts('{"replace": true}'))$$),
    ('import', $$SELECT rnnlm_import('sec_a', rnnlm_export('sec_b'))$$),
    ('import replace', $$SELECT rnnlm_import('sec_a', rnnlm_export('sec_b'), replace => true)$$)
  ) AS t(label, q);
-- (to bob, there is no such model)
SELECT rnnlm_drop('sec_a', if_exists => true) AS dropped;
RESET ROLE;
-- nothing of alice's changed
SELECT name, owner, cell, grantees FROM rnnlm.model ORDER BY name;
SELECT rnnlm_perplexity('sec_a', 'red apples') = :ppl_a AS sec_a_unchanged;

--
-- grants
--
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_grant('sec_a', 'regress_rnnsec_bob');
-- twice is harmless
SELECT rnnlm_grant('sec_a', 'regress_rnnsec_bob');
SELECT * FROM sec_visible();
SET ROLE regress_rnnsec_bob;
SELECT * FROM sec_visible();
-- bob may use sec_a now, and only sec_a
SELECT rnnlm_perplexity('sec_a', 'red apples') = :ppl_a AS same_perplexity,
       (SELECT p[2] IS NULL AND abs(p[1] - rnnlm_perplexity('sec_a', 'red apples')) < 1e-6 * p[1]
                AND abs(p[3] - rnnlm_perplexity('sec_a', 'green pears')) < 1e-6 * p[3]
          FROM (SELECT rnnlm_perplexity('sec_a', ARRAY['red apples', NULL, 'green pears']) AS p) AS x) AS same_array,
       rnnlm_generate('sec_a', 'red', 5, seed => 1) IS NOT NULL AS generates,
       (SELECT count(*) FROM rnnlm_token_logprobs('sec_a', 'red apples')) AS tokens,
       (rnnlm_evaluate('sec_a', 'SELECT body FROM sec_docs')->>'perplexity')::float8 > 1 AS evaluates,
       rnnlm_export('sec_a') = (SELECT weights FROM rnnlm.model WHERE name = 'sec_a') AS exports;
SELECT rnnlm_perplexity('sec_a2', 'red apples');
-- ... but may not manage it, nor grant it onwards
SELECT label, sec_try(q) AS result FROM (VALUES
    ('drop', $$SELECT rnnlm_drop('sec_a')$$),
    ('drop if exists', $$SELECT rnnlm_drop('sec_a', if_exists => true)$$),
    ('grant onwards', $$SELECT rnnlm_grant('sec_a', 'regress_rnnsec_eve')$$),
    ('grant to PUBLIC', $$SELECT rnnlm_grant('sec_a', 'PUBLIC')$$),
    ('revoke', $$SELECT rnnlm_revoke('sec_a', 'regress_rnnsec_bob')$$),
    ('train replace', $$SELECT rnnlm_train('sec_a', 'SELECT body FROM sec_docs', sec_opts('{"replace": true}'))$$),
    ('import replace', $$SELECT rnnlm_import('sec_a', rnnlm_export('sec_b'), replace => true)$$)
  ) AS t(label, q);
-- the errors in full
SELECT rnnlm_drop('sec_a');
SELECT rnnlm_grant('sec_a', 'regress_rnnsec_eve');
SELECT rnnlm_train('sec_a', 'SELECT body FROM sec_docs', sec_opts('{"replace": true}'));
RESET ROLE;
SELECT name, owner, grantees FROM rnnlm.model ORDER BY name;

-- PUBLIC, in any case, once
SET ROLE regress_rnnsec_eve;
SELECT count(*) AS eve_sees FROM rnnlm.models;
SELECT rnnlm_perplexity('sec_a', 'red apples');
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_grant('sec_a', 'PUBLIC');
SELECT rnnlm_grant('sec_a', 'public');
SELECT rnnlm_grant('sec_a', 'Public');
SELECT granted_to FROM rnnlm.models WHERE name = 'sec_a';
SET ROLE regress_rnnsec_eve;
SELECT name, granted_to FROM rnnlm.models;
SELECT rnnlm_perplexity('sec_a', 'red apples') = :ppl_a AS eve_uses_it;
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_revoke('sec_a', 'pUbLiC');
SELECT granted_to FROM rnnlm.models WHERE name = 'sec_a';
SET ROLE regress_rnnsec_eve;
-- taken back, also for the model eve's session has loaded
SELECT count(*) AS eve_sees FROM rnnlm.models;
SELECT rnnlm_perplexity('sec_a', 'red apples');
SELECT rnnlm_generate('sec_a', 'red', 3, seed => 1);

-- revoking what was never granted is harmless; bad arguments
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_revoke('sec_a', 'regress_rnnsec_eve');
SELECT label, sec_try(q) AS result FROM (VALUES
    ('grant to a missing role', $$SELECT rnnlm_grant('sec_a', 'regress_rnnsec_nobody')$$),
    ('revoke from a missing role', $$SELECT rnnlm_revoke('sec_a', 'regress_rnnsec_nobody')$$),
    ('grant of a missing model', $$SELECT rnnlm_grant('sec_nothing', 'regress_rnnsec_bob')$$),
    ('grant NULL model', $$SELECT rnnlm_grant(NULL, 'regress_rnnsec_bob')$$),
    ('grant to NULL', $$SELECT rnnlm_grant('sec_a', NULL)$$),
    ('revoke NULL model', $$SELECT rnnlm_revoke(NULL, 'regress_rnnsec_bob')$$),
    ('revoke from NULL', $$SELECT rnnlm_revoke('sec_a', NULL)$$),
    ('role names are not identifiers', $$SELECT rnnlm_grant('sec_a', '"regress_rnnsec_bob"')$$)
  ) AS t(label, q);
SELECT rnnlm_grant('sec_a', 'regress_rnnsec_nobody');
SELECT rnnlm_grant('sec_a', NULL);
SELECT granted_to FROM rnnlm.models WHERE name = 'sec_a';

-- a grant to a role works for its members
SELECT rnnlm_grant('sec_a2', 'regress_rnnsec_team');
SET ROLE regress_rnnsec_dave;
SELECT name, granted_to FROM rnnlm.models;
SELECT rnnlm_perplexity('sec_a2', 'red apples') > 1 AS dave_uses_it;
SET ROLE regress_rnnsec_eve;
SELECT rnnlm_perplexity('sec_a2', 'red apples');

-- a grantee role that is dropped: the others keep their grants and no one
-- gets an error from the policy; the dangling entry grants nothing
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_grant('sec_a2', 'regress_rnnsec_gone');
SELECT rnnlm_grant('sec_a2', 'regress_rnnsec_bob');
SELECT granted_to FROM rnnlm.models WHERE name = 'sec_a2';
RESET ROLE;
DROP ROLE regress_rnnsec_gone;
SET ROLE regress_rnnsec_alice;
-- (a dropped role shows as its number, which is not printed)
SELECT array_length(granted_to, 1) AS entries,
       ARRAY(SELECT g FROM unnest(granted_to) AS g WHERE g !~ '^[0-9]+$') AS named
  FROM rnnlm.models WHERE name = 'sec_a2';
SELECT rnnlm_perplexity('sec_a2', 'red apples') > 1 AS owner_uses_it;
SET ROLE regress_rnnsec_bob;
SELECT rnnlm_perplexity('sec_a2', 'red apples') > 1 AS bob_uses_it;
SELECT name FROM rnnlm.models ORDER BY name;
SET ROLE regress_rnnsec_dave;
SELECT rnnlm_perplexity('sec_a2', 'red apples') > 1 AS dave_uses_it;
SET ROLE regress_rnnsec_eve;
SELECT count(*) AS eve_sees FROM rnnlm.models;
SELECT rnnlm_perplexity('sec_a2', 'red apples');
SET ROLE regress_rnnsec_alice;
-- the grants to bob and team can still be revoked
SELECT rnnlm_revoke('sec_a2', 'regress_rnnsec_team');
SELECT rnnlm_revoke('sec_a2', 'regress_rnnsec_bob');
SELECT array_length(granted_to, 1) AS entries,
       ARRAY(SELECT g FROM unnest(granted_to) AS g WHERE g !~ '^[0-9]+$') AS named
  FROM rnnlm.models WHERE name = 'sec_a2';
SET ROLE regress_rnnsec_dave;
SELECT rnnlm_perplexity('sec_a2', 'red apples');
-- the owner cannot clear the dangling entry by hand any more (no role
-- writes rnnlm.model), and the role's name is gone: rnnlm_revoke takes the
-- number that granted_to shows
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_revoke('sec_a2', 'regress_rnnsec_gone');
UPDATE rnnlm.model SET grantees = '{}' WHERE name = 'sec_a2';
SELECT g AS gone_oid FROM rnnlm.models, unnest(granted_to) AS g WHERE name = 'sec_a2' \gset
SELECT rnnlm_revoke('sec_a2', :'gone_oid');
SELECT granted_to FROM rnnlm.models WHERE name = 'sec_a2';
RESET ROLE;

--
-- members of the owning role and superusers manage a model; a replacement
-- keeps the owner and the grants
--
SET ROLE regress_rnnsec_carol;
SELECT * FROM sec_visible();
SELECT rnnlm_train('sec_a', 'SELECT body FROM sec_docs', sec_opts('{"cell": "gru", "replace": true}'))->>'cell' AS cell;
SELECT name, owner, cell, granted_to FROM rnnlm.models WHERE name = 'sec_a';
SELECT rnnlm_perplexity('sec_a', 'red apples') <> :ppl_a AS replaced;
SELECT rnnlm_revoke('sec_a', 'regress_rnnsec_bob');
SELECT rnnlm_grant('sec_a', 'regress_rnnsec_dave');
SELECT rnnlm_grant('sec_a', 'regress_rnnsec_bob');
SELECT rnnlm_import('sec_a', (SELECT weights FROM rnnlm.model WHERE name = 'sec_a2'), replace => true)->>'model' AS imported;
SELECT name, owner, granted_to, options FROM rnnlm.models WHERE name = 'sec_a';
-- a member creates models in its own name
SELECT rnnlm_train('sec_c', 'SELECT body FROM sec_docs', sec_opts())->>'model' AS model;
SELECT name, owner FROM rnnlm.models ORDER BY name;
SELECT rnnlm_drop('sec_c');
-- and drops those of the role it belongs to
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_train('sec_a3', 'SELECT body FROM sec_docs', sec_opts())->>'model' AS model;
SET ROLE regress_rnnsec_carol;
SELECT rnnlm_drop('sec_a3');
SET ROLE regress_rnnsec_bob;
SELECT rnnlm_perplexity('sec_a', 'red apples') = :ppl_a2 AS bob_sees_the_import;
RESET ROLE;
-- a superuser manages every model, keeping its owner and grants
SELECT rnnlm_train('sec_a', 'SELECT body FROM sec_docs', sec_opts('{"replace": true}'))->>'cell' AS cell;
SELECT name, owner, cell, granted_to FROM rnnlm.models WHERE name = 'sec_a';
SELECT rnnlm_perplexity('sec_a', 'red apples') = :ppl_a AS first_model_again;
SELECT rnnlm_revoke('sec_a', 'regress_rnnsec_dave');
SELECT rnnlm_grant('sec_b', 'regress_rnnsec_alice');
SELECT name, owner, granted_to FROM rnnlm.models ORDER BY name;
-- SET SESSION AUTHORIZATION works the same as SET ROLE
SET SESSION AUTHORIZATION regress_rnnsec_alice;
SELECT name, owner, granted_to FROM rnnlm.models ORDER BY name;
SELECT rnnlm_drop('sec_b');
SELECT rnnlm_revoke('sec_b', 'regress_rnnsec_alice');
SELECT rnnlm_perplexity('sec_b', 'red apples') > 1 AS alice_uses_sec_b;
RESET SESSION AUTHORIZATION;
SELECT rnnlm_revoke('sec_b', 'regress_rnnsec_alice');

--
-- direct DML on rnnlm.model cannot get around the rules
--
-- bob, a grantee of sec_a: reads it, changes and deletes nothing of it
SET ROLE regress_rnnsec_bob;
SELECT label, sec_try(q) AS result FROM (VALUES
    ('select sec_a', $$SELECT weights FROM rnnlm.model WHERE name = 'sec_a'$$),
    ('select sec_a2', $$SELECT weights FROM rnnlm.model WHERE name = 'sec_a2'$$),
    ('update weights', $$UPDATE rnnlm.model SET weights = '\x00' WHERE name = 'sec_a'$$),
    ('update owner', $$UPDATE rnnlm.model SET owner = 'regress_rnnsec_bob' WHERE name = 'sec_a'$$),
    ('update grantees', $$UPDATE rnnlm.model SET grantees = '{-}' WHERE name = 'sec_a'$$),
    ('update all but own', $$UPDATE rnnlm.model SET grantees = grantees || 'regress_rnnsec_eve'::regrole WHERE name <> 'sec_b'$$),
    ('delete sec_a', $$DELETE FROM rnnlm.model WHERE name = 'sec_a'$$),
    ('delete all but own', $$DELETE FROM rnnlm.model WHERE name <> 'sec_b'$$),
    ('insert as alice', $$INSERT INTO rnnlm.model SELECT 'sec_fake', 'regress_rnnsec_alice', 1, cell, tokenizer,
         vocab_size, embedding_dim, hidden_size, num_layers, parameters, train_loss, val_loss, val_perplexity,
         trained_tokens, options, created_at, weights, '{}' FROM rnnlm.model WHERE name = 'sec_b'$$),
    ('upsert over sec_a', $$INSERT INTO rnnlm.model SELECT 'sec_a', owner, revision, cell, tokenizer,
         vocab_size, embedding_dim, hidden_size, num_layers, parameters, train_loss, val_loss, val_perplexity,
         trained_tokens, options, created_at, weights, '{-}' FROM rnnlm.model WHERE name = 'sec_b'
         ON CONFLICT (name) DO UPDATE SET weights = EXCLUDED.weights$$),
    ('upsert over sec_a2', $$INSERT INTO rnnlm.model SELECT 'sec_a2', owner, revision, cell, tokenizer,
         vocab_size, embedding_dim, hidden_size, num_layers, parameters, train_loss, val_loss, val_perplexity,
         trained_tokens, options, created_at, weights, '{-}' FROM rnnlm.model WHERE name = 'sec_b'
         ON CONFLICT (name) DO UPDATE SET grantees = EXCLUDED.grantees$$),
    ('give own model away', $$UPDATE rnnlm.model SET owner = 'regress_rnnsec_alice' WHERE name = 'sec_b'$$),
    ('truncate', $$TRUNCATE rnnlm.model$$),
    ('disable row security', $$ALTER TABLE rnnlm.model DISABLE ROW LEVEL SECURITY$$),
    ('drop policy', $$DROP POLICY model_use ON rnnlm.model$$),
    ('replace can_use', $$CREATE OR REPLACE FUNCTION rnnlm.can_use(regrole, regrole[]) RETURNS boolean
         LANGUAGE sql AS 'SELECT true'$$),
    ('read the weights by training', $$SELECT rnnlm_train('sec_steal', 'SELECT encode(weights, ''hex'') FROM rnnlm.model WHERE name = ''sec_a2''', sec_opts())$$),
    ('setval', $$SELECT setval('rnnlm.model_revision_seq', 1)$$)
  ) AS t(label, q);
-- eve, with no grant, the same
SET ROLE regress_rnnsec_eve;
SELECT label, sec_try(q) AS result FROM (VALUES
    ('select all', $$SELECT * FROM rnnlm.model$$),
    ('update all', $$UPDATE rnnlm.model SET weights = '\x00'$$),
    ('delete all', $$DELETE FROM rnnlm.model$$),
    ('insert as alice', $$INSERT INTO rnnlm.model VALUES ('sec_fake', 'regress_rnnsec_alice', 1, 'rnn', 'word',
         1, 1, 1, 1, 1, NULL, NULL, NULL, 0, '{}', now(), '\x00', '{}')$$)
  ) AS t(label, q);
-- the error in full (terse: the failing row would show the time)
\set VERBOSITY terse
INSERT INTO rnnlm.model VALUES ('sec_fake', 'regress_rnnsec_alice', 1, 'rnn', 'word',
    1, 1, 1, 1, 1, NULL, NULL, NULL, 0, '{}', now(), '\x00', '{}');
\set VERBOSITY default
-- alice, the owner, may change her rows but not give them to another role
SET ROLE regress_rnnsec_alice;
SELECT label, sec_try(q) AS result FROM (VALUES
    ('give sec_a to bob', $$UPDATE rnnlm.model SET owner = 'regress_rnnsec_bob' WHERE name = 'sec_a'$$),
    ('give sec_a to carol', $$UPDATE rnnlm.model SET owner = 'regress_rnnsec_carol' WHERE name = 'sec_a'$$),
    ('insert as bob', $$INSERT INTO rnnlm.model SELECT 'sec_fake', 'regress_rnnsec_bob', 1, cell, tokenizer,
         vocab_size, embedding_dim, hidden_size, num_layers, parameters, train_loss, val_loss, val_perplexity,
         trained_tokens, options, created_at, weights, '{}' FROM rnnlm.model WHERE name = 'sec_a'$$),
    ('update own grantees', $$UPDATE rnnlm.model SET grantees = '{regress_rnnsec_eve}' WHERE name = 'sec_a2'$$),
    ('update bob''s sec_b', $$UPDATE rnnlm.model SET grantees = '{-}' WHERE name = 'sec_b'$$)
  ) AS t(label, q);
SET ROLE regress_rnnsec_eve;
SELECT name, granted_to FROM rnnlm.models;
RESET ROLE;
-- nothing changed
SELECT name, owner, grantees FROM rnnlm.model ORDER BY name;
SELECT rnnlm_perplexity('sec_a', 'red apples') = :ppl_a AS sec_a_unchanged;

-- a row inserted by hand cannot pass for a model another role used in this
-- session: eve reuses the name and revision of alice's dropped model, and
-- must get her own model, not alice's from the cache
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_train('sec_private', 'SELECT body FROM sec_secret', sec_opts())->>'model' AS model;
SELECT rnnlm_perplexity('sec_private', 'the vault code is four two') AS ppl_private \gset
SELECT revision AS private_revision FROM rnnlm.model WHERE name = 'sec_private' \gset
SELECT rnnlm_drop('sec_private');
SET ROLE regress_rnnsec_eve;
SELECT rnnlm_train('sec_decoy', 'SELECT body FROM sec_docs', sec_opts('{"seed": 5}'))->>'model' AS model;
SELECT rnnlm_perplexity('sec_decoy', 'the vault code is four two') AS ppl_decoy \gset
INSERT INTO rnnlm.model SELECT 'sec_private', owner, :private_revision, cell, tokenizer, vocab_size,
       embedding_dim, hidden_size, num_layers, parameters, train_loss, val_loss, val_perplexity,
       trained_tokens, options, created_at, weights, '{}'
  FROM rnnlm.model WHERE name = 'sec_decoy';
-- (no role inserts rows by hand any more; the function beside it makes the
-- same model, whose revision is a new one)
SELECT rnnlm_import('sec_private', rnnlm_export('sec_decoy'))->>'model' AS model;
SELECT rnnlm_perplexity('sec_private', 'the vault code is four two') = :ppl_decoy AS eve_gets_her_model,
       rnnlm_perplexity('sec_private', 'the vault code is four two') = :ppl_private AS eve_gets_alices_model;
SELECT rnnlm_drop('sec_private'), rnnlm_drop('sec_decoy');
RESET ROLE;

-- within one statement too, a role may use only what it can see: the second
-- evaluation of the same PL/pgSQL expression, as eve, must not reuse the
-- model it loaded as alice
DO $$
DECLARE
    p float8;
BEGIN
    FOR i IN 1 .. 2 LOOP
        IF i = 1 THEN
            SET ROLE regress_rnnsec_alice;
        ELSE
            SET ROLE regress_rnnsec_eve;
        END IF;
        p := rnnlm_perplexity('sec_a2', 'red apples');
        RAISE WARNING 'as %: scored %', current_user, p > 1;
    END LOOP;
END
$$;
RESET ROLE;

--
-- training and evaluation queries run with the caller's privileges
--
SET ROLE regress_rnnsec_bob;
SELECT rnnlm_train('sec_steal', 'SELECT body FROM sec_secret', sec_opts());
SELECT rnnlm_evaluate('sec_b', 'SELECT body FROM sec_secret');
SELECT rnnlm_evaluate('sec_a', 'SELECT body FROM sec_secret');
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_train('sec_s', 'SELECT body FROM sec_secret', sec_opts())->>'documents' AS documents;
SELECT (rnnlm_evaluate('sec_s', 'SELECT body FROM sec_secret')->>'documents')::int AS documents;
SET ROLE regress_rnnsec_bob;
SELECT rnnlm_perplexity('sec_s', 'the vault code is');
SELECT count(*) AS steal_models FROM rnnlm.models WHERE name LIKE 'sec_steal%';
RESET ROLE;
SELECT rnnlm_drop('sec_s');

--
-- a hostile search_path: objects in schema evil that would hijack
-- unqualified names raise an ERROR if anything calls them
--
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.trap(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evil.% was called', what;
END
$$;
CREATE FUNCTION evil.eq_text(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('=(text,text)') $$;
CREATE FUNCTION evil.ne_text(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('<>(text,text)') $$;
CREATE FUNCTION evil.eq_name(name, name) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('=(name,name)') $$;
CREATE FUNCTION evil.eq_name_text(name, text) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('=(name,text)') $$;
CREATE FUNCTION evil.eq_oid(oid, oid) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('=(oid,oid)') $$;
CREATE FUNCTION evil.eq_regrole(regrole, regrole) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('=(regrole,regrole)') $$;
CREATE FUNCTION evil.le_int(integer, integer) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('<=(integer,integer)') $$;
CREATE FUNCTION evil.cat_regrole(regrole[], regrole) RETURNS regrole[] LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('||(regrole[],regrole)') THEN $1 END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq_text);
CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.ne_text);
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.eq_name);
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = text, FUNCTION = evil.eq_name_text);
CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.eq_oid);
CREATE OPERATOR evil.= (LEFTARG = regrole, RIGHTARG = regrole, FUNCTION = evil.eq_regrole);
CREATE OPERATOR evil.<= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.le_int);
CREATE OPERATOR evil.|| (LEFTARG = regrole[], RIGHTARG = regrole, FUNCTION = evil.cat_regrole);
CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('nextval(regclass)') THEN 1 END $$;
CREATE FUNCTION evil.nextval(text) RETURNS bigint LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('nextval(text)') THEN 1 END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('now()') THEN NULL::timestamptz END $$;
CREATE FUNCTION evil."current_user"() RETURNS name LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('current_user()') THEN NULL::name END $$;
CREATE FUNCTION evil.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('pg_has_role(name,oid,text)') $$;
CREATE FUNCTION evil.pg_has_role(name, name, text) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('pg_has_role(name,name,text)') $$;
CREATE FUNCTION evil.pg_has_role(oid, oid, text) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('pg_has_role(oid,oid,text)') $$;
CREATE FUNCTION evil.upper(text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('upper(text)') THEN $1 END $$;
CREATE FUNCTION evil.array_remove(regrole[], regrole) RETURNS regrole[] LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('array_remove') THEN $1 END $$;
CREATE FUNCTION evil.octet_length(text) RETURNS integer LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('octet_length(text)') THEN 1 END $$;
CREATE FUNCTION evil.octet_length(bytea) RETURNS integer LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('octet_length(bytea)') THEN 1 END $$;
CREATE FUNCTION evil.unnest(regrole[]) RETURNS SETOF regrole LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('unnest') THEN $1[1] END $$;
CREATE SEQUENCE evil.model_revision_seq;
-- a table like rnnlm.model, holding a damaged copy of sec_a and a model
-- that exists nowhere else; any write to it raises
CREATE TABLE evil.model (LIKE rnnlm.model INCLUDING DEFAULTS);
INSERT INTO evil.model SELECT name, owner, revision, cell, tokenizer, vocab_size, embedding_dim, hidden_size,
       num_layers, parameters, train_loss, val_loss, val_perplexity, trained_tokens, options, created_at,
       '\x00', '{-}'
  FROM rnnlm.model WHERE name = 'sec_a';
INSERT INTO evil.model SELECT 'sec_ghost', owner, revision, cell, tokenizer, vocab_size, embedding_dim, hidden_size,
       num_layers, parameters, train_loss, val_loss, val_perplexity, trained_tokens, options, created_at,
       weights, '{-}'
  FROM rnnlm.model WHERE name = 'sec_a';
GRANT ALL ON evil.model TO PUBLIC;
CREATE FUNCTION evil.model_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.trap('model_write');
    RETURN NULL;
END
$$;
CREATE TRIGGER model_write BEFORE INSERT OR UPDATE OR DELETE ON evil.model
    FOR EACH ROW EXECUTE FUNCTION evil.model_write();
CREATE VIEW evil.pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE evil.trap('pg_roles');
CREATE VIEW evil.models AS SELECT * FROM rnnlm.models WHERE evil.trap('models');
GRANT SELECT ON evil.pg_roles, evil.models TO PUBLIC;
-- temporary relations come first in any search_path that does not name
-- pg_temp, even in functions with SET search_path = pg_catalog
CREATE TEMP TABLE model (LIKE rnnlm.model INCLUDING DEFAULTS);
CREATE TEMP VIEW pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE evil.trap('pg_temp.pg_roles');
GRANT ALL ON pg_temp.model, pg_temp.pg_roles TO PUBLIC;

-- the reference results, with a normal search_path
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_train('sec_ev0', 'SELECT body FROM sec_docs', sec_opts('{"cell": "lstm", "seed": 11}'))->>'model' AS model;
SELECT rnnlm_perplexity('sec_ev0', 'green pears are hard') AS ev_ppl,
       rnnlm_perplexity('sec_ev0', ARRAY['green pears are hard', 'red apples'])::text AS ev_ppls,
       rnnlm_generate('sec_ev0', 'ripe', 6, seed => 4) AS ev_gen,
       (SELECT string_agg(l.logprob::text, ',' ORDER BY l.position)
          FROM rnnlm_token_logprobs('sec_ev0', 'green pears are hard') AS l) AS ev_logprobs,
       rnnlm_evaluate('sec_ev0', 'SELECT body FROM sec_docs')::text AS ev_eval,
       md5(rnnlm_export('sec_ev0')) AS ev_md5 \gset
RESET ROLE;

-- everything again with evil first, as alice, bob and a superuser
SET search_path = evil, public;
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_train('sec_ev1', 'SELECT body FROM sec_docs', '{"cell": "lstm", "embedding_dim": 4, "hidden_size": 4,
         "num_layers": 1, "epochs": 1, "learning_rate": 0.01, "seed": 11}')->>'model' AS model;
SELECT rnnlm_perplexity('sec_ev1', 'green pears are hard') AS ev1_ppl,
       rnnlm_perplexity('sec_ev1', ARRAY['green pears are hard', 'red apples'])::text AS ev1_ppls,
       rnnlm_generate('sec_ev1', 'ripe', 6, seed => 4) AS ev1_gen,
       (SELECT string_agg(l.logprob::text, ',' ORDER BY l.position)
          FROM rnnlm_token_logprobs('sec_ev1', 'green pears are hard') AS l) AS ev1_logprobs,
       rnnlm_evaluate('sec_ev1', 'SELECT body FROM sec_docs')::text AS ev1_eval,
       md5(rnnlm_export('sec_ev1')) AS ev1_md5 \gset
SELECT rnnlm_grant('sec_ev1', 'regress_rnnsec_bob');
SELECT rnnlm_grant('sec_ev1', 'regress_rnnsec_bob');
SELECT rnnlm_grant('sec_ev1', 'public');
SELECT rnnlm_revoke('sec_ev1', 'PUBLIC');
SELECT rnnlm_import('sec_ev1_copy', rnnlm_export('sec_ev1'))->>'parameters' AS parameters;
SELECT rnnlm_import('sec_ev1_copy', rnnlm_export('sec_ev0'), replace => true)->>'parameters' AS parameters;
SELECT rnnlm_perplexity('sec_ev1_copy', 'green pears are hard') AS ev1_copy_ppl \gset
SELECT rnnlm_train('sec_ev1', 'SELECT body FROM sec_docs', '{"cell": "lstm", "embedding_dim": 4, "hidden_size": 4,
         "num_layers": 1, "epochs": 1, "learning_rate": 0.01, "seed": 11, "replace": true}')->>'model' AS model;
SELECT rnnlm_drop('sec_ev1_copy');
SELECT rnnlm_drop('sec_ev1_copy', if_exists => true);
-- alice's damaged twin in evil.model and the ghost are never read
SELECT rnnlm_perplexity('sec_a', 'red apples') AS ev1_sec_a \gset
SELECT rnnlm_perplexity('sec_ghost', 'red apples');
SELECT rnnlm_drop('sec_ghost');
SET ROLE regress_rnnsec_bob;
SELECT rnnlm_perplexity('sec_ev1', 'green pears are hard') AS ev1_bob_ppl \gset
SELECT rnnlm_drop('sec_ev1');
SELECT rnnlm_grant('sec_ev1', 'regress_rnnsec_eve');
RESET ROLE;
SELECT rnnlm_grant('sec_ev1', 'regress_rnnsec_dave');
SELECT rnnlm_revoke('sec_ev1', 'regress_rnnsec_dave');

-- and with evil before pg_catalog
SET search_path = evil, pg_catalog, public;
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_train('sec_ev2', 'SELECT body FROM sec_docs', '{"cell": "lstm", "embedding_dim": 4, "hidden_size": 4,
         "num_layers": 1, "epochs": 1, "learning_rate": 0.01, "seed": 11}')->>'model' AS model;
SELECT rnnlm_perplexity('sec_ev2', 'green pears are hard') AS ev2_ppl,
       rnnlm_perplexity('sec_ev2', ARRAY['green pears are hard', 'red apples'])::text AS ev2_ppls,
       rnnlm_generate('sec_ev2', 'ripe', 6, seed => 4) AS ev2_gen,
       (SELECT string_agg(l.logprob::text, ',' ORDER BY l.position)
          FROM rnnlm_token_logprobs('sec_ev2', 'green pears are hard') AS l) AS ev2_logprobs,
       rnnlm_evaluate('sec_ev2', 'SELECT body FROM sec_docs')::text AS ev2_eval,
       md5(rnnlm_export('sec_ev2')) AS ev2_md5 \gset
SELECT rnnlm_grant('sec_ev2', 'regress_rnnsec_bob');
SELECT rnnlm_grant('sec_ev2', 'PUBLIC');
SELECT rnnlm_revoke('sec_ev2', 'public');
SELECT rnnlm_import('sec_ev2_copy', rnnlm_export('sec_ev2'))->>'parameters' AS parameters;
SELECT rnnlm_import('sec_ev2_copy', rnnlm_export('sec_ev2'), replace => true)->>'parameters' AS parameters;
SELECT rnnlm_train('sec_ev2', 'SELECT body FROM sec_docs', '{"cell": "lstm", "embedding_dim": 4, "hidden_size": 4,
         "num_layers": 1, "epochs": 1, "learning_rate": 0.01, "seed": 11, "replace": true}')->>'model' AS model;
SELECT rnnlm_drop('sec_ev2_copy');
SELECT rnnlm_perplexity('sec_a', 'red apples') AS ev2_sec_a \gset
SELECT rnnlm_perplexity('sec_ghost', 'red apples');
SET ROLE regress_rnnsec_bob;
SELECT rnnlm_perplexity('sec_ev2', 'green pears are hard') AS ev2_bob_ppl \gset
SELECT rnnlm_revoke('sec_ev2', 'regress_rnnsec_bob');
RESET ROLE;
SELECT rnnlm_grant('sec_ev2', 'regress_rnnsec_dave');
SELECT rnnlm_revoke('sec_ev2', 'regress_rnnsec_dave');
RESET search_path;

-- the same results as with a normal search_path
SELECT :ev_ppl = :ev1_ppl AND :ev_ppl = :ev2_ppl AS same_perplexity,
       :'ev_ppls' = :'ev1_ppls' AND :'ev_ppls' = :'ev2_ppls' AS same_perplexities,
       :'ev_gen' = :'ev1_gen' AND :'ev_gen' = :'ev2_gen' AS same_generation,
       :'ev_logprobs' = :'ev1_logprobs' AND :'ev_logprobs' = :'ev2_logprobs' AS same_logprobs,
       :'ev_eval'::jsonb - 'seconds' - 'tokens_per_second' = :'ev1_eval'::jsonb - 'seconds' - 'tokens_per_second'
         AND :'ev_eval'::jsonb - 'seconds' - 'tokens_per_second' = :'ev2_eval'::jsonb - 'seconds' - 'tokens_per_second' AS same_evaluation,
       :'ev_md5' = :'ev1_md5' AND :'ev_md5' = :'ev2_md5' AS same_weights,
       :ev1_copy_ppl = :ev_ppl AS import_replaced,
       :ev1_bob_ppl = :ev_ppl AND :ev2_bob_ppl = :ev_ppl AS bob_same,
       :ev1_sec_a = :ppl_a AND :ev2_sec_a = :ppl_a AS sec_a_from_rnnlm_model;
SELECT name, owner, cell, grantees, md5(weights) = :'ev_md5' AS same_weights
  FROM rnnlm.model WHERE name LIKE 'sec_ev%' ORDER BY name;
-- evil.model and the temporary table were never written to
SELECT name, weights = '\x00' AS damaged FROM evil.model ORDER BY name;
SELECT count(*) AS temp_rows FROM pg_temp.model;
SELECT last_value, is_called FROM evil.model_revision_seq;
DROP VIEW pg_temp.pg_roles;
DROP TABLE pg_temp.model;
DROP SCHEMA evil CASCADE;
SELECT rnnlm_drop('sec_ev0'), rnnlm_drop('sec_ev1'), rnnlm_drop('sec_ev2');

--
-- rnnlm.max_memory
--
SHOW rnnlm.max_memory;
SELECT context FROM pg_settings WHERE name = 'rnnlm.max_memory';
-- a model of 3176652 parameters (12 MB), made while the limit is 4 GB (and
-- not loaded by this session)
SELECT rnnlm_train('sec_big', 'SELECT body FROM sec_docs',
                   sec_opts('{"embedding_dim": 16, "hidden_size": 1024, "num_layers": 2}'))->>'parameters' AS parameters;
SELECT rnnlm_grant('sec_big', 'regress_rnnsec_alice');
-- only a superuser may change the limit
SET ROLE regress_rnnsec_alice;
SET rnnlm.max_memory = '8MB';
SELECT sec_try($$SET rnnlm.max_memory = '8MB'$$) AS set_limit,
       sec_try($$SELECT set_config('rnnlm.max_memory', '64GB', false)$$) AS raise_limit;
SHOW rnnlm.max_memory;
RESET ROLE;
SET rnnlm.max_memory = '8MB';
SHOW rnnlm.max_memory;
SET ROLE regress_rnnsec_alice;
-- a training that would exceed it fails before it starts: no epoch NOTICE
SET client_min_messages = notice;
DO $$ BEGIN RAISE NOTICE 'notices are shown'; END $$;
SELECT rnnlm_train('sec_big2', 'SELECT body FROM sec_docs',
                   sec_opts('{"embedding_dim": 16, "hidden_size": 1024, "num_layers": 2, "epochs": 1000}'));
SELECT rnnlm_train('sec_big2', 'SELECT body FROM sec_docs',
                   sec_opts('{"cell": "lstm", "embedding_dim": 64, "hidden_size": 512, "epochs": 1000}'));
SET client_min_messages = warning;
SELECT sec_try($$SELECT rnnlm_train('sec_big2', 'SELECT body FROM sec_docs',
                   sec_opts('{"embedding_dim": 16, "hidden_size": 1024, "num_layers": 2}'))$$) AS train;
-- an import of a model over the limit fails, and so does its loading
-- (54000 like the import, not XX001 "invalid weights")
SELECT rnnlm_import('sec_big2', rnnlm_export('sec_big'));
SELECT sec_try($$SELECT rnnlm_import('sec_big2', rnnlm_export('sec_big'))$$) AS import;
SELECT left(sec_try($$SELECT rnnlm_perplexity('sec_big', 'red apples')$$), 5) AS load_sqlstate;
-- small models are fine
SELECT rnnlm_perplexity('sec_a2', 'red apples') > 1 AS small_model_loads;
SELECT count(*) AS big2_models FROM rnnlm.models WHERE name = 'sec_big2';
RESET ROLE;
RESET rnnlm.max_memory;
SHOW rnnlm.max_memory;
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_import('sec_big2', rnnlm_export('sec_big'))->>'parameters' AS parameters;
SELECT rnnlm_perplexity('sec_big2', 'red apples') = rnnlm_perplexity('sec_big', 'red apples') AS same_perplexity,
       rnnlm_perplexity('sec_big', 'red apples') > 1 AS big_loads;
SELECT rnnlm_drop('sec_big2');
RESET ROLE;
SELECT rnnlm_drop('sec_big');

--
-- export and import
--
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_grant('sec_a', 'regress_rnnsec_bob');
SELECT rnnlm_import('sec_a_copy', rnnlm_export('sec_a')) - 'size_bytes' AS imported;
SELECT name, owner, options, granted_to, size_bytes = (SELECT size_bytes FROM rnnlm.models WHERE name = 'sec_a') AS same_size
  FROM rnnlm.models WHERE name = 'sec_a_copy';
-- the same model: same perplexities, scores and samples
SELECT rnnlm_perplexity('sec_a_copy', 'red apples') = rnnlm_perplexity('sec_a', 'red apples') AS same_perplexity,
       rnnlm_perplexity('sec_a_copy', ARRAY['red apples', 'plums are hard', ''])::text
         = rnnlm_perplexity('sec_a', ARRAY['red apples', 'plums are hard', ''])::text AS same_perplexities,
       (SELECT array_agg(logprob ORDER BY position) FROM rnnlm_token_logprobs('sec_a_copy', 'ripe plums are sweet'))
         = (SELECT array_agg(logprob ORDER BY position) FROM rnnlm_token_logprobs('sec_a', 'ripe plums are sweet')) AS same_logprobs,
       rnnlm_generate('sec_a_copy', 'green', 8, seed => 9) = rnnlm_generate('sec_a', 'green', 8, seed => 9) AS same_sample,
       rnnlm_export('sec_a_copy') = rnnlm_export('sec_a') AS same_file;
-- bob may export alice's model (a grant exposes the weights) and import it
-- as his own
SET ROLE regress_rnnsec_bob;
SELECT rnnlm_import('sec_bob_copy', rnnlm_export('sec_a'))->>'model' AS model;
SELECT name, owner, granted_to FROM rnnlm.models ORDER BY name;
SELECT rnnlm_perplexity('sec_bob_copy', 'red apples') = :ppl_a AS same_perplexity;
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_perplexity('sec_bob_copy', 'red apples');
SET ROLE regress_rnnsec_bob;
-- errors
SELECT label, sec_try(q) AS result FROM (VALUES
    ('garbage', $$SELECT rnnlm_import('sec_junk', '\x0102030405060708'::bytea)$$),
    ('empty', $$SELECT rnnlm_import('sec_junk', ''::bytea)$$),
    ('truncated', $$SELECT rnnlm_import('sec_junk', substring(rnnlm_export('sec_a') FROM 1 FOR 100))$$),
    ('NULL data', $$SELECT rnnlm_import('sec_junk', NULL)$$),
    ('NULL name', $$SELECT rnnlm_import(NULL, rnnlm_export('sec_a'))$$),
    ('existing, own', $$SELECT rnnlm_import('sec_bob_copy', rnnlm_export('sec_a'))$$),
    ('existing, granted', $$SELECT rnnlm_import('sec_a', rnnlm_export('sec_bob_copy'))$$),
    ('existing, invisible', $$SELECT rnnlm_import('sec_a2', rnnlm_export('sec_bob_copy'))$$),
    ('replace, own', $$SELECT rnnlm_import('sec_bob_copy', rnnlm_export('sec_b'), replace => true)->>'model'$$),
    ('replace, granted', $$SELECT rnnlm_import('sec_a', rnnlm_export('sec_b'), replace => true)$$),
    ('export, invisible', $$SELECT rnnlm_export('sec_a2')$$),
    ('export, missing', $$SELECT rnnlm_export('sec_nothing')$$),
    ('export, NULL', $$SELECT rnnlm_export(NULL)$$)
  ) AS t(label, q);
SELECT rnnlm_import('sec_junk', '\x0102030405060708'::bytea);
SELECT rnnlm_import('sec_bob_copy', rnnlm_export('sec_a'));
SELECT count(*) AS junk_models FROM rnnlm.models WHERE name = 'sec_junk';
SELECT rnnlm_drop('sec_bob_copy');
-- an owner's import with replace keeps the grants
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_import('sec_a_copy', rnnlm_export('sec_a2'), replace => true)->>'model' AS model;
SELECT rnnlm_grant('sec_a_copy', 'regress_rnnsec_eve');
SELECT rnnlm_import('sec_a_copy', rnnlm_export('sec_a'), replace => true)->>'model' AS model;
SELECT name, owner, granted_to FROM rnnlm.models WHERE name = 'sec_a_copy';
SET ROLE regress_rnnsec_eve;
SELECT rnnlm_perplexity('sec_a_copy', 'red apples') = :ppl_a AS eve_uses_the_copy;
SET ROLE regress_rnnsec_alice;
SELECT rnnlm_drop('sec_a_copy');
RESET ROLE;

--
-- a role whose name needs quoting owns what it trains and imports
--
SELECT rnnlm_grant('sec_a2', 'regress_rnnsec_Mixed Case');
SELECT granted_to FROM rnnlm.models WHERE name = 'sec_a2';
SET ROLE "regress_rnnsec_Mixed Case";
SELECT sec_try($$SELECT rnnlm_train('sec_mixed', 'SELECT body FROM sec_docs', sec_opts())$$) AS train;
SELECT sec_try($$SELECT rnnlm_import('sec_mixed2', rnnlm_export('sec_a2'))$$) AS import;
SELECT name, owner, owner::oid = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS mine
  FROM rnnlm.model ORDER BY name;
SELECT rnnlm_drop('sec_mixed', if_exists => true), rnnlm_drop('sec_mixed2', if_exists => true);
RESET ROLE;

--
-- clean up
--
SELECT rnnlm_drop('sec_a'), rnnlm_drop('sec_a2'), rnnlm_drop('sec_b');
SELECT count(*) AS models_left FROM rnnlm.model;
DROP FUNCTION sec_visible(), sec_try(text), sec_opts(jsonb);
DROP TABLE sec_docs, sec_secret;
DROP ROLE regress_rnnsec_alice, regress_rnnsec_bob, regress_rnnsec_carol, regress_rnnsec_dave,
          regress_rnnsec_eve, regress_rnnsec_team, "regress_rnnsec_Mixed Case";
