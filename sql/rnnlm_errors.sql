--
-- rnnlm_errors: the errors users will hit, and the edge cases that work
--
SET client_min_messages = warning;
-- errors raised inside the training query show where they happened
\set SHOW_CONTEXT never

CREATE TABLE err_docs (id int, body text, n int, v varchar(40), nm name);
INSERT INTO err_docs
SELECT i, b, length(b), b, b
  FROM generate_series(1, 30) AS i,
       LATERAL (SELECT (ARRAY['the quick brown fox', 'jumps over the lazy dog',
                               'the dog sleeps'])[1 + i % 3] AS b) AS x;
CREATE DOMAIN err_text AS text CHECK (VALUE <> 'forbidden');

SELECT rnnlm_train('err_m', 'SELECT body FROM err_docs',
                   '{"embedding_dim": 8, "hidden_size": 16, "num_layers": 1, "epochs": 2,
                     "learning_rate": 0.01, "seed": 3}')->>'vocab_size' AS vocab_size;

--
-- model names
--
-- unknown models
SELECT rnnlm_generate('err_nope', 'the');
SELECT rnnlm_perplexity('err_nope', 'the');
SELECT * FROM rnnlm_token_logprobs('err_nope', 'the');
SELECT rnnlm_evaluate('err_nope', 'SELECT body FROM err_docs');
SELECT rnnlm_drop('err_nope');
SELECT rnnlm_drop('err_nope', true);
-- NULL names (rnnlm_perplexity and rnnlm_token_logprobs are STRICT: NULL)
SELECT rnnlm_train(NULL, 'SELECT body FROM err_docs');
SELECT rnnlm_generate(NULL, 'the');
SELECT rnnlm_evaluate(NULL, 'SELECT body FROM err_docs');
SELECT rnnlm_drop(NULL);
SELECT rnnlm_perplexity(NULL, 'the') IS NULL AS strict_null;
-- empty names
SELECT rnnlm_train('', 'SELECT body FROM err_docs');
SELECT rnnlm_generate('', 'the');
SELECT rnnlm_perplexity('', 'the');
SELECT * FROM rnnlm_token_logprobs('', 'the');
SELECT rnnlm_evaluate('', 'SELECT body FROM err_docs');
SELECT rnnlm_drop('');
-- names are at most 63 bytes
SELECT rnnlm_train(repeat('x', 64), 'SELECT body FROM err_docs');
SELECT rnnlm_generate(repeat('x', 64), 'the');
SELECT rnnlm_perplexity(repeat('x', 64), 'the');
SELECT rnnlm_evaluate(repeat('x', 64), 'SELECT body FROM err_docs');
SELECT rnnlm_drop(repeat('x', 64));
-- bytes, not characters: 21 three-byte characters fit, 22 do not
SELECT rnnlm_train(repeat('模', 22), 'SELECT body FROM err_docs');
SELECT rnnlm_train(repeat('模', 21), 'SELECT body FROM err_docs',
                   '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1}')->>'vocab_size' AS vocab_size;
SELECT octet_length(name), rnnlm_perplexity(name, 'the dog') > 0 AS scores, rnnlm_drop(name)
  FROM rnnlm.models WHERE name LIKE '模%';
-- 63 bytes is fine; names are case-sensitive and taken as they are
SELECT rnnlm_train(repeat('y', 63), 'SELECT body FROM err_docs',
                   '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1}')->>'vocab_size' AS vocab_size;
SELECT rnnlm_perplexity(repeat('Y', 63), 'the');
SELECT rnnlm_drop(repeat('y', 63));
SELECT rnnlm_train('Err M', 'SELECT body FROM err_docs',
                   '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1}')->>'model' AS model;
SELECT rnnlm_perplexity('err m', 'the');
SELECT rnnlm_drop('Err M');

--
-- the training query
--
SELECT rnnlm_train('err_t', NULL);
SELECT rnnlm_train('err_t', 'SELEC body FROM err_docs');
SELECT rnnlm_train('err_t', 'SELECT body FROM err_no_such_table');
SELECT rnnlm_train('err_t', 'SELECT no_such_column FROM err_docs');
SELECT rnnlm_train('err_t', 'SELECT 1/0 || body FROM err_docs');
SELECT rnnlm_train('err_t', 'SELECT body FROM err_docs WHERE false');
SELECT rnnlm_train('err_t', 'SELECT id, body FROM err_docs');
SELECT rnnlm_train('err_t', 'SELECT n FROM err_docs');
SELECT rnnlm_train('err_t', 'SELECT body::bytea FROM err_docs');
SELECT rnnlm_train('err_t', 'SELECT NULL::text FROM err_docs');
SELECT rnnlm_train('err_t', 'SELECT NULL::text');
SELECT rnnlm_train('err_t', 'SELECT body FROM err_docs WHERE body IS NULL');
SELECT rnnlm_train('err_t', $$SELECT '!!! ...' FROM err_docs$$);
SELECT rnnlm_train('err_t', $$SELECT '' FROM err_docs$$);
-- statements that return no rows at all
SELECT rnnlm_train('err_t', 'DELETE FROM err_docs WHERE false');
SELECT rnnlm_train('err_t', 'CREATE TABLE err_never (t text)');
SELECT rnnlm_train('err_t', '');
SELECT rnnlm_train('err_t', 'SELECT body FROM err_docs; SELECT body FROM err_docs');
-- nothing was stored, nothing was created
SELECT count(*) FROM rnnlm.models WHERE name = 'err_t';
SELECT to_regclass('err_never') IS NULL AS not_created;

-- text-like columns work: varchar, name, a domain over text, VALUES, a
-- trailing semicolon, NULL rows among others (skipped)
SELECT q, (rnnlm_train('err_ok', q, '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1,
                                      "epochs": 1, "replace": true}')->>'documents')::int AS documents
  FROM (VALUES ('SELECT v FROM err_docs'),
               ('SELECT nm FROM err_docs'),
               ('SELECT body::err_text FROM err_docs'),
               ('SELECT body::char(30) FROM err_docs'),
               ($$VALUES ('one two'), ('three four five')$$),
               ('SELECT body FROM err_docs;'),
               ('SELECT CASE WHEN id % 2 = 0 THEN body END FROM err_docs')) AS v(q);
SELECT rnnlm_drop('err_ok');

--
-- an existing model
--
SELECT rnnlm_perplexity('err_m', 'the quick brown fox') AS before \gset
SELECT rnnlm_train('err_m', 'SELECT body FROM err_docs');
SELECT count(*) FROM rnnlm.models WHERE name = 'err_m';
-- replace: a different model now
SELECT rnnlm_train('err_m', 'SELECT body FROM err_docs',
                   '{"cell": "gru", "embedding_dim": 8, "hidden_size": 8, "num_layers": 1,
                     "epochs": 1, "seed": 4, "replace": true}')->>'cell' AS cell;
SELECT rnnlm_perplexity('err_m', 'the quick brown fox') <> :before AS perplexity_changed;
SELECT cell, hidden_size, options->'cell' AS cell_option, options->'seed' AS seed
  FROM rnnlm.models WHERE name = 'err_m';
-- replace on a model that does not exist yet just creates it
SELECT rnnlm_train('err_new', 'SELECT body FROM err_docs',
                   '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1,
                     "replace": true}')->>'model' AS model;
SELECT rnnlm_drop('err_new');

--
-- rnnlm_generate's arguments
--
SELECT rnnlm_generate('err_m', 'the', -1);
SELECT rnnlm_generate('err_m', 'the', 5, -0.5);
SELECT rnnlm_generate('err_m', 'the', 5, 'NaN');
SELECT rnnlm_generate('err_m', 'the', 5, 'Infinity');
SELECT rnnlm_generate('err_m', 'the', 5, 1.0, -1);
SELECT rnnlm_generate('err_m', 'the', 5, 1.0, 0, 0);
SELECT rnnlm_generate('err_m', 'the', 5, 1.0, 0, 1.5);
SELECT rnnlm_generate('err_m', 'the', 5, 1.0, 0, -0.1);
SELECT rnnlm_generate('err_m', 'the', 5, 1.0, 0, 'NaN');
-- arguments are checked before the model is looked up
SELECT rnnlm_generate('err_nope', 'the', -1);
-- a huge max_tokens is capped, with a NOTICE
SET client_min_messages = notice;
SELECT length(rnnlm_generate('err_m', 'the', 1000000, 1.0, 0, 1.0, 1)) >= 0 AS capped;
SET client_min_messages = warning;
-- the largest allowed values are fine, as is a top_k above the vocabulary size
SELECT rnnlm_generate('err_m', 'the', 5, 1000.0, 1000000, 1.0, 1) IS NOT NULL AS ok;
SELECT rnnlm_generate('err_m', 'the', 10000, 1.0, 0, 1.0, 1) IS NOT NULL AS ok;
-- a prompt of only unknown tokens (or of punctuation) works
SELECT rnnlm_generate('err_m', 'xylophone zeppelin', 5, 0) IS NOT NULL AS unknown_prompt,
       rnnlm_generate('err_m', '?!', 5, 0) = rnnlm_generate('err_m', '', 5, 0) AS punct_prompt_is_empty;
-- a NULL prompt is the empty prompt; NULL sampling arguments take their defaults
SELECT rnnlm_generate('err_m', NULL, 5, 0) = rnnlm_generate('err_m', '', 5, 0) AS null_prompt,
       rnnlm_generate('err_m', 'the', NULL, NULL, NULL, NULL, 7)
         = rnnlm_generate('err_m', 'the', 100, 1.0, 0, 1.0, 7) AS null_defaults;

--
-- scoring
--
-- unknown words are scored as <unk>
SELECT rnnlm_perplexity('err_m', 'xylophone zeppelin') > 1 AS unknown_ok;
SELECT count(*) AS rows, bool_and(token_id = 1 OR token = '<eod>') AS all_unk
  FROM rnnlm_token_logprobs('err_m', 'xylophone zeppelin');
-- rnnlm_evaluate: the same checks on its query
SELECT rnnlm_evaluate('err_m', NULL);
SELECT rnnlm_evaluate('err_m', 'SELEC body FROM err_docs');
SELECT rnnlm_evaluate('err_m', 'SELECT body FROM err_no_such_table');
SELECT rnnlm_evaluate('err_m', 'SELECT body FROM err_docs WHERE false');
SELECT rnnlm_evaluate('err_m', 'SELECT NULL::text FROM err_docs');
SELECT rnnlm_evaluate('err_m', 'SELECT id, body FROM err_docs');
SELECT rnnlm_evaluate('err_m', 'SELECT n FROM err_docs');
SELECT rnnlm_evaluate('err_m', 'DELETE FROM err_docs');
SELECT count(*) FROM err_docs;
-- documents without any known token still count: <eod> is always scored
SELECT rnnlm_evaluate('err_m', $$VALUES (''), ('!!!'), ('xylophone')$$)->'documents' AS documents,
       rnnlm_evaluate('err_m', $$VALUES (''), ('!!!'), ('xylophone')$$)->'tokens' AS tokens;

--
-- the SQLSTATEs, for programs that catch them
--
CREATE FUNCTION err_state(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st;
END
$$;
SELECT q, err_state(q) AS sqlstate
  FROM (VALUES ($$SELECT rnnlm_generate('err_nope')$$),
               ($$SELECT rnnlm_drop('err_nope')$$),
               ($$SELECT rnnlm_generate(NULL)$$),
               ($$SELECT rnnlm_perplexity('', 'x')$$),
               ($$SELECT rnnlm_drop(repeat('x', 64))$$),
               ($$SELECT rnnlm_train('err_t', NULL)$$),
               ($$SELECT rnnlm_train('err_m', 'SELECT body FROM err_docs')$$),
               ($$SELECT rnnlm_train('err_t', 'SELEC')$$),
               ($$SELECT rnnlm_train('err_t', 'SELECT body FROM err_no_such_table')$$),
               ($$SELECT rnnlm_train('err_t', 'SELECT body FROM err_docs WHERE false')$$),
               ($$SELECT rnnlm_train('err_t', 'SELECT NULL::text')$$),
               ($$SELECT rnnlm_train('err_t', 'SELECT '''' FROM err_docs')$$),
               ($$SELECT rnnlm_train('err_t', 'SELECT id, body FROM err_docs')$$),
               ($$SELECT rnnlm_train('err_t', 'SELECT id FROM err_docs')$$),
               ($$SELECT rnnlm_train('err_t', 'DELETE FROM err_docs')$$),
               ($$SELECT rnnlm_train('err_t', 'SELECT body FROM err_docs', '{"epochs": 0}')$$),
               ($$SELECT rnnlm_generate('err_m', 'x', -1)$$),
               ($$SELECT rnnlm_generate('err_m', 'x', 1, -1)$$),
               ($$SELECT rnnlm_evaluate('err_m', 'SELECT body FROM err_docs WHERE false')$$)) AS v(q);
DROP FUNCTION err_state(text);

--
-- the session is fine after all these errors
--
SELECT rnnlm_perplexity('err_m', 'the dog sleeps') > 1 AS still_works;
SELECT rnnlm_drop('err_m');
SELECT count(*) FROM rnnlm.models;

DROP TABLE err_docs;
DROP DOMAIN err_text;
