--
-- rnnlm_options: the jsonb options of rnnlm_train
--
SET client_min_messages = warning;

CREATE TABLE opt_docs AS
SELECT (ARRAY['One fish, two fish.', 'Red fish, blue fish!', 'Old fish, new fish?'])[1 + i % 3] AS body
  FROM generate_series(1, 30) AS i;

-- Trains a throwaway model with opts (when an object, over tiny settings);
-- returns 'ok' (and drops it) or the error's SQLSTATE and message.
CREATE FUNCTION opt_try(opts jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    IF jsonb_typeof(opts) = 'object' THEN
        opts := '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1}'::jsonb || opts;
    END IF;
    PERFORM rnnlm_train('opt_try', 'SELECT body FROM opt_docs', opts);
    PERFORM rnnlm_drop('opt_try');
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END
$$;

--
-- every key, set to a value other than its default, is stored in
-- rnnlm.models.options (replace is an action, not a property: not stored)
--
SELECT rnnlm_train('opt_all', 'SELECT body FROM opt_docs',
                   '{"cell": "gru", "tokenizer": "word", "max_vocab": 5, "lowercase": false,
                     "embedding_dim": 9, "hidden_size": 10, "num_layers": 2, "dropout": 0.25,
                     "epochs": 2, "batch_size": 3, "seq_len": 7, "learning_rate": 0.004,
                     "clip_norm": 1.5, "validation_fraction": 0.2, "seed": 12345,
                     "replace": false}')->>'model' AS model;
SELECT jsonb_pretty(options) FROM rnnlm.models WHERE name = 'opt_all';
SELECT options ? 'replace' AS replace_stored,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(options) AS k) AS keys
  FROM rnnlm.models WHERE name = 'opt_all';
-- the columns agree with the options
SELECT cell, tokenizer, vocab_size, embedding_dim, hidden_size, num_layers
  FROM rnnlm.models WHERE name = 'opt_all';
-- replace: true on an existing model replaces it, and is not stored either
SELECT rnnlm_train('opt_all', 'SELECT body FROM opt_docs',
                   '{"cell": "rnn", "embedding_dim": 8, "hidden_size": 8, "num_layers": 1,
                     "epochs": 1, "replace": true}')->>'cell' AS cell;
SELECT cell, options->>'cell' AS option_cell, options ? 'replace' AS replace_stored
  FROM rnnlm.models WHERE name = 'opt_all';
SELECT rnnlm_drop('opt_all');

--
-- defaults; max_vocab and lowercase depend on the tokenizer
--
SELECT rnnlm_train('opt_word', 'SELECT body FROM opt_docs',
                   '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1}')->>'model' AS model;
SELECT rnnlm_train('opt_char', 'SELECT body FROM opt_docs',
                   '{"tokenizer": "char", "embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1}')->>'model' AS model;
SELECT rnnlm_train('opt_char_set', 'SELECT body FROM opt_docs',
                   '{"tokenizer": "char", "max_vocab": 10, "lowercase": true,
                     "embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1}')->>'model' AS model;
SELECT rnnlm_train('opt_word_set', 'SELECT body FROM opt_docs',
                   '{"tokenizer": "word", "max_vocab": 0, "lowercase": false,
                     "embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1}')->>'model' AS model;
SELECT name, options->'tokenizer' AS tokenizer, options->'max_vocab' AS max_vocab,
       options->'lowercase' AS lowercase, vocab_size
  FROM rnnlm.models WHERE name LIKE 'opt\_%' ORDER BY name;
-- the other defaults
SELECT options - '{embedding_dim,hidden_size,num_layers,epochs}'::text[] AS defaults
  FROM rnnlm.models WHERE name = 'opt_word';
SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'opt\_%' ORDER BY name;

-- seed and the integers go through float8: 2^53 + 1 is taken as 2^53
SELECT rnnlm_train('opt_seed', 'SELECT body FROM opt_docs',
                   '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1,
                     "seed": 9007199254740993}')->>'model' AS model;
SELECT options->'seed' AS seed FROM rnnlm.models WHERE name = 'opt_seed';
SELECT rnnlm_drop('opt_seed');

-- validation_fraction 0: no validation set, so no validation loss
SELECT s->'validation_documents' AS validation_documents, s->'val_tokens' AS val_tokens,
       s->'val_loss' AS val_loss, s->'val_perplexity' AS val_perplexity,
       (s->>'train_loss')::float8 > 0 AS has_train_loss
  FROM rnnlm_train('opt_noval', 'SELECT body FROM opt_docs',
                   '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1,
                     "validation_fraction": 0}') AS s;
SELECT val_loss IS NULL AS no_val_loss, val_perplexity IS NULL AS no_val_perplexity,
       train_loss > 0 AS has_train_loss
  FROM rnnlm.models WHERE name = 'opt_noval';
SELECT rnnlm_drop('opt_noval');

-- NULL options mean all defaults (the query fails before anything is trained)
SELECT rnnlm_train('opt_null', 'SELECT body FROM opt_docs WHERE false', NULL);
-- options are checked before the query is run
SELECT rnnlm_train('opt_null', 'SELECT no_such_column FROM opt_docs', '{"epochs": 0}');

--
-- valid values, at the edges of each range
--
SELECT o::text AS options, opt_try(o) AS result
  FROM (VALUES ('{}'::jsonb),
               ('{"cell": "lstm"}'), ('{"cell": "gru"}'), ('{"cell": "rnn"}'),
               ('{"tokenizer": "word"}'), ('{"tokenizer": "char"}'),
               ('{"max_vocab": 0}'), ('{"max_vocab": 1}'), ('{"max_vocab": 1999998}'),
               ('{"lowercase": true}'), ('{"lowercase": false}'),
               ('{"embedding_dim": 1}'), ('{"hidden_size": 1}'),
               ('{"num_layers": 1}'), ('{"num_layers": 3}'),
               ('{"dropout": 0}'), ('{"dropout": 0.95}'),
               ('{"epochs": 1}'), ('{"epochs": 2.0}'),
               ('{"batch_size": 1}'), ('{"batch_size": 4096}'),
               ('{"seq_len": 1}'), ('{"seq_len": 10000}'),
               ('{"learning_rate": 1e-9}'), ('{"learning_rate": 10}'),
               ('{"clip_norm": 0}'), ('{"clip_norm": 1000000}'),
               ('{"validation_fraction": 0}'), ('{"validation_fraction": 0.9}'),
               ('{"seed": 0}'), ('{"seed": 9007199254740992}'),
               ('{"replace": true}'), ('{"replace": false}')) AS v(o);

--
-- each key: a value of the wrong type, and values out of range
--
SELECT o::text AS options, opt_try(o) AS error
  FROM (VALUES ('{"cell": 1}'::jsonb), ('{"cell": "transformer"}'), ('{"cell": "LSTM"}'),
               ('{"tokenizer": true}'), ('{"tokenizer": "sentencepiece"}'),
               ('{"max_vocab": "10"}'), ('{"max_vocab": -1}'), ('{"max_vocab": 1999999}'), ('{"max_vocab": 2.5}'),
               ('{"lowercase": "yes"}'), ('{"lowercase": 1}'),
               ('{"embedding_dim": "8"}'), ('{"embedding_dim": 0}'), ('{"embedding_dim": 16385}'), ('{"embedding_dim": 8.5}'),
               ('{"hidden_size": null}'), ('{"hidden_size": 0}'), ('{"hidden_size": 16385}'),
               ('{"num_layers": [1]}'), ('{"num_layers": 0}'), ('{"num_layers": 17}'),
               ('{"dropout": "0.1"}'), ('{"dropout": -0.1}'), ('{"dropout": 0.96}'),
               ('{"epochs": {}}'), ('{"epochs": 0}'), ('{"epochs": 100001}'), ('{"epochs": 1e10}'),
               ('{"batch_size": true}'), ('{"batch_size": 0}'), ('{"batch_size": 4097}'),
               ('{"seq_len": "x"}'), ('{"seq_len": 0}'), ('{"seq_len": 10001}'),
               ('{"learning_rate": "0.1"}'), ('{"learning_rate": 0}'), ('{"learning_rate": -1}'), ('{"learning_rate": 10.5}'),
               ('{"clip_norm": false}'), ('{"clip_norm": -1}'), ('{"clip_norm": 1000001}'),
               ('{"validation_fraction": "0"}'), ('{"validation_fraction": -0.1}'), ('{"validation_fraction": 0.91}'),
               ('{"seed": "1"}'), ('{"seed": -1}'), ('{"seed": 1.5}'), ('{"seed": 9007199254740994}'),
               ('{"replace": "true"}'), ('{"replace": 1}')) AS v(o);

-- numbers beyond the range of float8 are out of range for their key (22023,
-- naming it); one that underflows to 0 is 0, valid for dropout
SELECT k, left(opt_try(jsonb_build_object(k, v)), 5) AS sqlstate,
       opt_try(jsonb_build_object(k, v)) LIKE '%"' || k || '"%' AS names_key
  FROM (VALUES ('epochs', 1e400), ('seed', 1e309), ('dropout', 1e-400), ('learning_rate', -1e400)) AS v(k, v);

-- the full errors, with their hints
\set VERBOSITY default
SELECT rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '{"cell": "transformer"}');
SELECT rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '{"tokenizer": "sentencepiece"}');
SELECT rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '{"epochs": "ten"}');
SELECT rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '{"learning_rate": 0}');
SELECT rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '{"hidden_size": 100000}');
-- unknown keys (names are case-sensitive)
SELECT rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '{"epoch": 1}');
SELECT rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '{"Cell": "gru"}');
SELECT opt_try('{"layers": 2}');
-- options that are not an object
SELECT rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '[{"epochs": 1}]');
SELECT o::text AS options, opt_try(o) AS error
  FROM (VALUES ('[]'::jsonb), ('"epochs"'), ('5'), ('true'), ('null')) AS v(o);
-- the SQLSTATE is invalid_parameter_value (22023)
DO $$
BEGIN
    PERFORM rnnlm_train('opt_bad', 'SELECT body FROM opt_docs', '{"dropout": 1}');
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE WARNING 'caught invalid_parameter_value: %', SQLERRM;
END
$$;

-- nothing was left behind
SELECT count(*) FROM rnnlm.models;

DROP FUNCTION opt_try(jsonb);
DROP TABLE opt_docs;
