--
-- rnnlm_versions: every stored model is a numbered, immutable version;
-- name@N and name@sha256:<prefix> name one; rnnlm_perplexity_at is the
-- IMMUTABLE form for a pinned version; keep_versions, pinning, dropping
--
SET client_min_messages = warning;
CREATE TABLE ver_docs AS
SELECT 'ticket ' || i || ' the printer on floor ' || (i % 5) || ' is out of toner' AS body
  FROM generate_series(1, 40) AS i;
CREATE FUNCTION ver_opts(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"tokenizer": "char", "epochs": 1, "hidden_size": 8, "embedding_dim": 4,
             "num_layers": 1, "validation_fraction": 0}'::jsonb || extra
$$;

-- a new model is version 1, with the SHA-256 of its model file
SELECT rnnlm_train('ver_m', 'SELECT body FROM ver_docs', ver_opts('{"seed": 1}'))->>'model' AS model;
SELECT v.version, v.sha256 = encode(sha256(m.weights), 'hex') AS sha_is_the_files, v.keep_versions
  FROM rnnlm.models v JOIN rnnlm.model m USING (name) WHERE name = 'ver_m';
SELECT rnnlm_perplexity('ver_m', 'the printer') AS p1 \gset
SELECT sha256 AS sha1 FROM rnnlm.models WHERE name = 'ver_m' \gset
-- replacing adds version 2; the name points to it, version 1 stays as it was
SELECT rnnlm_train('ver_m', 'SELECT body FROM ver_docs', ver_opts('{"seed": 2, "replace": true}'))->>'model' AS model;
SELECT version, current, pinned, sha256 = :'sha1' AS is_first
  FROM rnnlm.model_versions WHERE name = 'ver_m' ORDER BY version;
SELECT rnnlm_perplexity('ver_m', 'the printer') <> :p1 AS latest_is_new,
       rnnlm_perplexity('ver_m@1', 'the printer') = :p1 AS at_1_is_first,
       rnnlm_perplexity('ver_m@sha256:' || left(:'sha1', 10), 'the printer') = :p1 AS by_sha_prefix,
       rnnlm_perplexity('ver_m@2', 'the printer') = rnnlm_perplexity('ver_m', 'the printer') AS at_2_is_latest;
-- the IMMUTABLE form takes only a pinned reference
SELECT p.provolatile, p.proparallel FROM pg_proc p WHERE p.proname = 'rnnlm_perplexity_at';
SELECT rnnlm_perplexity_at('ver_m@1', 'the printer') = :p1 AS immutable_at_1;
SELECT rnnlm_perplexity_at('ver_m', 'the printer');
-- the other functions take references too
SELECT count(*) > 0 AS token_logprobs FROM rnnlm_token_logprobs('ver_m@1', 'the printer');
SELECT (rnnlm_evaluate('ver_m@1', 'SELECT body FROM ver_docs')->>'documents')::int AS evaluated;
SELECT array_length(rnnlm_embed('ver_m@1', 'the printer'), 1) AS embed_dims;
SELECT rnnlm_classify(ARRAY['ver_m@1', 'ver_m@2'], 'the printer') IS NOT NULL AS classified;
SELECT rnnlm_generate('ver_m@1', 'the', 5, seed => 1) = rnnlm_generate('ver_m@1', 'the', 5, seed => 1) AS generates,
       (SELECT count(*) FROM rnnlm_next_tokens('ver_m@1', 'the', 3)) AS next_tokens,
       md5(rnnlm_export('ver_m@1')) = (SELECT md5(weights) FROM rnnlm.model_version
                                        WHERE name = 'ver_m' AND version = 1) AS exports_version_1;
-- a version that is not stored is named in the error
SELECT rnnlm_perplexity('ver_m@7', 'the printer');
SELECT rnnlm_perplexity('ver_m@sha256:ffffffffff', 'the printer');
SELECT rnnlm_perplexity('ver_nope@1', 'the printer');
-- keep_versions (default 1): a third version drops the first, unless it is pinned
SELECT rnnlm_train('ver_m', 'SELECT body FROM ver_docs', ver_opts('{"seed": 3, "replace": true}'))->>'model' AS model;
SELECT string_agg(version::text, ',' ORDER BY version) AS versions FROM rnnlm.model_versions WHERE name = 'ver_m';
SELECT rnnlm_pin_version('ver_m', 2);
SELECT rnnlm_train('ver_m', 'SELECT body FROM ver_docs', ver_opts('{"seed": 4, "replace": true}'))->>'model' AS model;
SELECT string_agg(version::text || CASE WHEN pinned THEN '(pinned)' ELSE '' END, ',' ORDER BY version) AS versions
  FROM rnnlm.model_versions WHERE name = 'ver_m';
SELECT rnnlm_pin_version('ver_m', 2, false), rnnlm_drop_version('ver_m', 2), rnnlm_drop_version('ver_m', 2);
SELECT rnnlm_perplexity('ver_m@2', 'the printer');
-- keep_versions 0 keeps no older version; import with replace adds one too
SELECT rnnlm_train('ver_m', 'SELECT body FROM ver_docs',
                   ver_opts('{"seed": 5, "replace": true, "keep_versions": 0}'))->>'model' AS model;
SELECT string_agg(version::text, ',' ORDER BY version) AS versions FROM rnnlm.model_versions WHERE name = 'ver_m';
SELECT rnnlm_import('ver_m', rnnlm_export('ver_m@5'), true)->>'model' AS imported;
SELECT version, keep_versions FROM rnnlm.models WHERE name = 'ver_m';
-- keep_versions is the model's: a replacement that does not give it keeps it
SELECT rnnlm_train('ver_m', 'SELECT body FROM ver_docs', ver_opts('{"seed": 6, "replace": true, "keep_versions": 2}'))->>'model' AS model;
SELECT rnnlm_train('ver_m', 'SELECT body FROM ver_docs', ver_opts('{"seed": 7, "replace": true}'))->>'model' AS model;
SELECT rnnlm_train('ver_m', 'SELECT body FROM ver_docs', ver_opts('{"seed": 8, "replace": true}'))->>'model' AS model;
SELECT keep_versions, (SELECT string_agg(version::text, ',' ORDER BY version) FROM rnnlm.model_versions
                        WHERE name = 'ver_m') AS versions
  FROM rnnlm.models WHERE name = 'ver_m';
-- dropping the model drops its versions
SELECT rnnlm_drop('ver_m');
SELECT count(*) AS versions_left FROM rnnlm.model_version WHERE name = 'ver_m';

-- versions are visible, and usable, as their model is: by its owner and
-- the roles it is granted to; pinning and dropping them is the owner's
CREATE ROLE regress_rnnver_alice;
CREATE ROLE regress_rnnver_bob;
GRANT SELECT ON ver_docs TO PUBLIC;
SET ROLE regress_rnnver_alice;
SELECT rnnlm_train('ver_a', 'SELECT body FROM ver_docs', ver_opts())->>'model' AS model;
SELECT rnnlm_train('ver_a', 'SELECT body FROM ver_docs', ver_opts('{"seed": 9, "replace": true}'))->>'model' AS model;
SET ROLE regress_rnnver_bob;
SELECT count(*) AS bob_sees FROM rnnlm.model_versions WHERE name = 'ver_a';
SELECT count(*) AS bob_reads FROM rnnlm.model_version WHERE name = 'ver_a';
SELECT rnnlm_perplexity('ver_a@1', 'the printer');
UPDATE rnnlm.model_version SET pinned = true WHERE name = 'ver_a';
DELETE FROM rnnlm.model_version WHERE name = 'ver_a';
SET ROLE regress_rnnver_alice;
SELECT rnnlm_grant('ver_a', 'regress_rnnver_bob');
SET ROLE regress_rnnver_bob;
SELECT count(*) AS bob_sees_granted FROM rnnlm.model_versions WHERE name = 'ver_a';
SELECT rnnlm_perplexity('ver_a@1', 'the printer') > 1 AS bob_scores_version_1;
SELECT rnnlm_drop_version('ver_a', 1);
SELECT rnnlm_pin_version('ver_a', 1);
UPDATE rnnlm.model_version SET pinned = true WHERE name = 'ver_a';
SELECT count(*) FILTER (WHERE pinned) AS pinned_by_bob FROM rnnlm.model_versions WHERE name = 'ver_a';
-- even its owner cannot change an older version, only pin it; a version
-- written by hand gets the SHA-256 of its weights
SET ROLE regress_rnnver_alice;
UPDATE rnnlm.model_version SET weights = weights || '\x00'::bytea WHERE name = 'ver_a';
UPDATE rnnlm.model_version SET sha256 = '\x00'::bytea WHERE name = 'ver_a';
UPDATE rnnlm.model_version SET pinned = true WHERE name = 'ver_a';
INSERT INTO rnnlm.model_version (name, version, sha256, parameters, created_at, weights)
SELECT name, 7, '\x00'::bytea, parameters, created_at, weights FROM rnnlm.model_version WHERE name = 'ver_a';
SELECT version, pinned, sha256 = (SELECT sha256 FROM rnnlm.model_versions WHERE name = 'ver_a' AND version = 1)
         AS same_hash_as_its_weights
  FROM rnnlm.model_versions WHERE name = 'ver_a' AND NOT current ORDER BY version;
RESET ROLE;
-- no role but the extension's owner writes the table (above: 42501); even
-- the owner (here a superuser) cannot change an older version but its pin
UPDATE rnnlm.model_version SET weights = weights || '\x00'::bytea WHERE name = 'ver_a';
UPDATE rnnlm.model_version SET version = 9 WHERE name = 'ver_a';
UPDATE rnnlm.model_version SET pinned = true WHERE name = 'ver_a' RETURNING version, pinned;
SELECT rnnlm_drop('ver_a');
DROP ROLE regress_rnnver_alice;
DROP ROLE regress_rnnver_bob;

DROP FUNCTION ver_opts(jsonb);
DROP TABLE ver_docs;
