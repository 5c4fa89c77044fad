--
-- rnnlm_federated: a shard's side of federated training, called here
-- directly in one connection as rnnlm_train_federated calls it on each
-- shard (the whole training over postgres_fdw servers is test/t/180);
-- option checks of rnnlm_train_federated that need no server
--
SET client_min_messages = warning;
CREATE TABLE fed_docs AS
SELECT 'ticket ' || i || ' the printer on floor ' || (i % 5) || ' is out of toner' AS body
  FROM generate_series(1, 40) AS i;
CREATE FUNCTION fed_opts(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"tokenizer": "word", "epochs": 1, "hidden_size": 8, "embedding_dim": 4,
             "num_layers": 1, "batch_size": 4, "seq_len": 8, "validation_fraction": 0.25,
             "seed": 1}'::jsonb || extra
$$;
-- the coordinator's model: trained here only for its vocabulary and shape
SELECT rnnlm_train('fed_m', 'SELECT body FROM fed_docs', fed_opts()) AS summary \gset
SELECT (:'summary'::jsonb)->>'vocab_size' AS vocab_size;

-- begin: the counts of the training rows' units (30 of the 40 rows; the
-- last 10 are held out), and nothing else about the text
SELECT count(*) AS units, sum(count) AS occurrences,
       max(count) FILTER (WHERE unit = 'printer'::bytea) AS printer
  FROM rnnlm.federated_begin('s1', 'SELECT body FROM fed_docs', fed_opts());
-- start: the coordinator's model, token streams, a run
SELECT * FROM rnnlm.federated_start('s1', rnnlm_export('fed_m'), 7);
-- the validation rows' loss of the weights there (the model's own) is
-- the one its training reported
SELECT round(val_loss::numeric, 6) = round(((:'summary'::jsonb)->>'val_loss')::numeric, 6) AS same_as_trained,
       val_tokens = ((:'summary'::jsonb)->>'val_tokens')::bigint AS same_tokens
  FROM rnnlm.federated_evaluate('s1', NULL);
-- a round of 2 chunks from the weights there: B * seq_len tokens each,
-- in a weights file of the model's parameters; then the rest of the epoch
SELECT length(new_weights) = 16 + 4 * (SELECT parameters FROM rnnlm.models WHERE name = 'fed_m') + 4
         AS weights_file_size,
       tokens, loss_sum > 0 AS has_loss, epoch_ended
  FROM rnnlm.federated_train('s1', NULL, 0.01, 2);
SELECT tokens > 0 AS trained, epoch_ended FROM rnnlm.federated_train('s1', NULL, 0.01, 0);
-- weights sent back are used: evaluating the trained weights differs from the start
SELECT val_loss <> ((:'summary'::jsonb)->>'val_loss')::float8 AS changed
  FROM rnnlm.federated_evaluate('s1', (SELECT new_weights FROM rnnlm.federated_train('s1', NULL, 0.01, 1)));

-- the session's errors
SELECT * FROM rnnlm.federated_start('s1', rnnlm_export('fed_m'), 7);
SELECT * FROM rnnlm.federated_train('other', NULL, 0.01, 1);
SELECT * FROM rnnlm.federated_train('s1', NULL, 0, 1);
SELECT * FROM rnnlm.federated_train('s1', NULL, 0.01, -1);
-- a failed call leaves the session unusable, and the next call says so
SELECT * FROM rnnlm.federated_evaluate('s1', '\x00'::bytea);
SELECT * FROM rnnlm.federated_evaluate('s1', NULL);
SELECT rnnlm.federated_end('s1') AS ended;

-- a model that splits text otherwise than the session's options is refused
SELECT count(*) > 0 AS counted
  FROM rnnlm.federated_begin('s2', 'SELECT body FROM fed_docs', fed_opts('{"tokenizer": "char"}'));
SELECT * FROM rnnlm.federated_start('s2', rnnlm_export('fed_m'), 7);
-- damaged model bytes are refused, not trusted
SELECT count(*) > 0 AS counted
  FROM rnnlm.federated_begin('s3', 'SELECT body FROM fed_docs', fed_opts());
SELECT * FROM rnnlm.federated_start('s3', '\x524e4e4c4d'::bytea, 7);
SELECT * FROM rnnlm.federated_train('s3', NULL, 0.01, 1);
SELECT rnnlm.federated_end('s3') AS ended, rnnlm.federated_end('s3') AS again;
-- fine-tuning: begin gets the parent (its text rules, its vocabulary) and
-- returns no counts; start then takes the coordinator's copy of it
SELECT count(*) AS counts
  FROM rnnlm.federated_begin('s6', 'SELECT body FROM fed_docs', fed_opts('{"tokenizer": "char"}'), rnnlm_export('fed_m'));
SELECT documents, steps FROM rnnlm.federated_start('s6', rnnlm_export('fed_m'), 7);
SELECT round(val_loss::numeric, 6) = round(((:'summary'::jsonb)->>'val_loss')::numeric, 6) AS parent_weights
  FROM rnnlm.federated_evaluate('s6', NULL);
SELECT rnnlm.federated_end('s6') AS ended;
-- the training query's errors are rnnlm_train's
SELECT * FROM rnnlm.federated_begin('s4', 'SELECT body FROM fed_docs WHERE false', fed_opts());
SELECT * FROM rnnlm.federated_begin('s4', 'DELETE FROM fed_docs RETURNING body', fed_opts());
SELECT * FROM rnnlm.federated_begin(NULL, 'SELECT body FROM fed_docs', fed_opts());
SELECT * FROM rnnlm.federated_begin('s4', NULL, fed_opts());
-- the training query cannot reach the session it fills: ending it, starting
-- it or beginning another from there is refused (once it freed the memory
-- the outer call was writing, and the backend crashed)
SELECT count(*) FROM rnnlm.federated_begin('s7',
  'SELECT body FROM fed_docs WHERE rnnlm.federated_end(''s7'') IS NOT NULL', fed_opts());
SELECT count(*) FROM rnnlm.federated_begin('s7',
  'SELECT body FROM fed_docs WHERE (SELECT count(*) FROM rnnlm.federated_begin(''s8'', ''SELECT 1::text'', ''{}'')) >= 0',
  fed_opts());
SELECT count(*) FROM rnnlm.federated_begin('s7',
  'SELECT body FROM fed_docs WHERE (SELECT documents FROM rnnlm.federated_start(''s7'', ''\x00'', 1)) >= 0',
  fed_opts());
SELECT rnnlm.federated_end('s7') AS ended;

-- rnnlm_train_federated's own checks
SELECT rnnlm_train_federated('x', NULL, 'SELECT 1');
SELECT rnnlm_train_federated('x', ARRAY[]::name[], 'SELECT 1');
SELECT rnnlm_train_federated('x', ARRAY['a', NULL]::name[], 'SELECT 1');
SELECT rnnlm_train_federated('x', ARRAY['a', 'a']::name[], 'SELECT 1');
SELECT rnnlm_train_federated('x', ARRAY['a']::name[], NULL);
SELECT rnnlm_train_federated('x', ARRAY['a']::name[], 'SELECT 1', '{"round_steps": -1}');
SELECT rnnlm_train_federated('x', ARRAY['a']::name[], 'SELECT 1', '{"init_from": "no_such_model"}');
SELECT rnnlm_train_federated('fed_m', ARRAY['a']::name[], 'SELECT 1');
SELECT rnnlm_train_federated('x', ARRAY['no_such_server']::name[], 'SELECT 1');
SELECT rnnlm_train('x', 'SELECT body FROM fed_docs', '{"round_steps": 10}');
-- the coordinator stores a model: not in a read-only transaction; a
-- shard's side writes nothing (a shard may be a hot standby)
BEGIN READ ONLY;
SELECT rnnlm_train_federated('x', ARRAY['a']::name[], 'SELECT 1');
ROLLBACK;
BEGIN READ ONLY;
SELECT count(*) > 0 AS counted
  FROM rnnlm.federated_begin('s5', 'SELECT body FROM fed_docs', fed_opts());
SELECT documents FROM rnnlm.federated_start('s5', rnnlm_export('fed_m'), 7);
SELECT tokens > 0 AS trained FROM rnnlm.federated_train('s5', NULL, 0.01, 1);
COMMIT;
SELECT rnnlm.federated_end('s5') AS ended;
SELECT rnnlm_train('x', 'SELECT body FROM fed_docs', '{"no_such": 1}');

SELECT rnnlm_drop('fed_m');
DROP TABLE fed_docs;
DROP FUNCTION fed_opts(jsonb);
