--
-- rnnlm_basic: the extension's objects and every function on one small model
--
-- Per-epoch NOTICEs carry timings: keep them out of the expected output.
SET client_min_messages = warning;

-- the functions the extension installs, with their signatures and markings
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result,
       p.provolatile, p.proisstrict, p.proparallel
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
  JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
 WHERE e.extname = 'rnnlm' AND d.deptype = 'e'
 ORDER BY p.proname, pg_get_function_arguments(p.oid) COLLATE "C";

-- the view's columns, in order
SELECT attnum, attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute
 WHERE attrelid = 'rnnlm.models'::regclass AND attnum > 0
 ORDER BY attnum;

-- nothing trained yet
SELECT count(*) FROM rnnlm.models;

-- a tiny corpus: three sentences, 50 times each, in a fixed shuffled order;
-- after its first word, each sentence is fully predictable
CREATE TABLE basic_docs AS
SELECT i AS id,
       (ARRAY['The cat sat on the mat.',
              'A dog ran in the park!',
              'My bird sang all day, all night.'])[1 + i % 3] AS body
  FROM generate_series(1, 150) AS i;

CREATE TABLE basic_summary AS
SELECT rnnlm_train('basic_lstm', 'SELECT body FROM basic_docs ORDER BY md5(id::text)',
                   '{"cell": "lstm", "embedding_dim": 16, "hidden_size": 32,
                     "num_layers": 1, "epochs": 3, "learning_rate": 0.05,
                     "batch_size": 8, "seq_len": 16, "seed": 1}') AS s;

-- the summary: its keys, the values that do not depend on arithmetic ...
SELECT array_agg(k ORDER BY k) AS summary_keys
  FROM basic_summary, jsonb_object_keys(s) AS k;
SELECT s->>'model' AS model, s->>'cell' AS cell, s->>'tokenizer' AS tokenizer,
       (s->>'vocab_size')::int AS vocab_size, (s->>'parameters')::int AS parameters,
       (s->>'epochs')::int AS epochs, (s->>'documents')::int AS documents,
       (s->>'validation_documents')::int AS validation_documents,
       (s->>'train_tokens')::int > 0 AS has_train_tokens,
       (s->>'val_tokens')::int AS val_tokens
  FROM basic_summary;
-- ... and the ones that do, as thresholds
SELECT (s->>'train_loss')::float8 < 1.0 AS train_learned,
       (s->>'val_loss')::float8 < 1.0 AS val_learned,
       abs((s->>'val_perplexity')::float8 - exp((s->>'val_loss')::float8)) < 1e-4 AS perplexity_is_exp_loss,
       (s->>'seconds')::float8 >= 0 AS seconds_ok,
       (s->>'tokens_per_second')::float8 > 0 AS speed_ok,
       (s->>'size_bytes')::bigint > 4 * (s->>'parameters')::bigint AS size_ok
  FROM basic_summary;

-- the parameter count follows doc/format.md: V*E + G*H*(E + H + 1) + V*H + V
SELECT (s->>'parameters')::int = v * 16 + 4 * 32 * (16 + 32 + 1) + v * 32 + v AS formula
  FROM basic_summary, LATERAL (SELECT (s->>'vocab_size')::int) AS x(v);

-- the view: stable columns as they are, the others as checks
SELECT name, owner = current_user::regrole AS owner_is_me, cell, tokenizer,
       vocab_size, embedding_dim, hidden_size, num_layers, parameters,
       size_bytes = (SELECT (s->>'size_bytes')::bigint FROM basic_summary) AS size_matches,
       train_loss < 1.0 AS train_learned,
       val_loss < 1.0 AS val_learned,
       abs(val_perplexity - exp(val_loss)) < 1e-9 AS val_perplexity_ok,
       trained_tokens = 3 * (SELECT (s->>'train_tokens')::bigint FROM basic_summary) AS trained_tokens_ok,
       created_at <= now() AND created_at > now() - interval '1 hour' AS created_recently
  FROM rnnlm.models;
SELECT jsonb_pretty(options) FROM rnnlm.models WHERE name = 'basic_lstm';
-- the summary agrees with the view
SELECT abs(m.train_loss - (b.s->>'train_loss')::float8) < 1e-5 AS train_loss_same,
       abs(m.val_loss - (b.s->>'val_loss')::float8) < 1e-5 AS val_loss_same,
       m.parameters = (b.s->>'parameters')::bigint AS parameters_same,
       m.vocab_size = (b.s->>'vocab_size')::int AS vocab_same
  FROM rnnlm.models m, basic_summary b;

--
-- rnnlm_token_logprobs: one row per token, then <eod>; words are lowercased
-- and stripped of punctuation; unknown words get token_id 1 (<unk>)
--
SELECT position, token_id, token, logprob < 0 AS negative
  FROM rnnlm_token_logprobs('basic_lstm', 'The cat sat on the ZEBRA.');
-- after the first word the corpus leaves no choice: the model is confident,
-- and the unknown word is unlikely
SELECT position, token, logprob > ln(0.5) AS likely
  FROM rnnlm_token_logprobs('basic_lstm', 'the cat sat on the mat')
 WHERE position > 1;
SELECT token, logprob < ln(0.1) AS unlikely
  FROM rnnlm_token_logprobs('basic_lstm', 'the cat sat on the zebra')
 WHERE token_id = 1;
-- an empty text scores just the end of the document
SELECT position, token_id, token FROM rnnlm_token_logprobs('basic_lstm', '');
-- STRICT: NULL in, no rows out
SELECT count(*) FROM rnnlm_token_logprobs('basic_lstm', NULL);
SELECT count(*) FROM rnnlm_token_logprobs(NULL, 'the cat');

--
-- rnnlm_perplexity
--
SELECT rnnlm_perplexity('basic_lstm', 'the cat sat on the mat') < 2 AS seen_is_easy,
       rnnlm_perplexity('basic_lstm', 'mat the on sat cat the') > 5 AS shuffled_is_hard,
       rnnlm_perplexity('basic_lstm', 'The CAT sat, on the mat!')
         = rnnlm_perplexity('basic_lstm', 'the cat sat on the mat') AS normalised_same;
-- it is exp(-mean log-probability) of rnnlm_token_logprobs, <eod> included
SELECT abs(rnnlm_perplexity('basic_lstm', t)
           - (SELECT exp(-avg(logprob)) FROM rnnlm_token_logprobs('basic_lstm', t))) < 1e-9 AS consistent
  FROM (VALUES ('the cat sat on the mat'), ('a dog saw a zebra'), (''), ('!!!')) AS v(t);
-- on '' (or text without words) it scores only <eod>
SELECT abs(rnnlm_perplexity('basic_lstm', '')
           - exp(-(SELECT logprob FROM rnnlm_token_logprobs('basic_lstm', '')))) < 1e-9 AS eod_only,
       rnnlm_perplexity('basic_lstm', '') = rnnlm_perplexity('basic_lstm', ' ... ') AS punctuation_only_same;
-- STRICT: NULL in, NULL out
SELECT rnnlm_perplexity('basic_lstm', NULL) IS NULL AS null_text,
       rnnlm_perplexity(NULL, 'the cat') IS NULL AS null_model;
-- works over a table, once per row
SELECT id % 3 AS kind, count(*), max(rnnlm_perplexity('basic_lstm', body)) < 2 AS all_easy
  FROM basic_docs GROUP BY 1 ORDER BY 1;

--
-- rnnlm_generate
--
-- greedy decoding (temperature 0) is deterministic and follows the corpus
SELECT rnnlm_generate('basic_lstm', 'the cat', 3, 0) = rnnlm_generate('basic_lstm', 'the cat', 3, 0) AS greedy_repeats,
       rnnlm_generate('basic_lstm', 'the cat', 3, 0) = 'sat on the' AS greedy_follows_corpus;
-- the same seed gives the same text; different seeds do not all agree
SELECT rnnlm_generate('basic_lstm', 'the', 20, 1.5, 0, 1.0, 42)
       = rnnlm_generate('basic_lstm', 'the', 20, 1.5, 0, 1.0, 42) AS same_seed_same_text;
SELECT count(DISTINCT rnnlm_generate('basic_lstm', 'the', 20, 2.0, 0, 1.0, seed)) > 1 AS seeds_differ
  FROM generate_series(1, 10) AS seed;
-- max_tokens bounds the number of words; 0 gives ''
SELECT bool_and(coalesce(array_length(regexp_split_to_array(nullif(g, ''), ' '), 1), 0) <= 4) AS at_most_4
  FROM (SELECT rnnlm_generate('basic_lstm', '', 4, 1.0, 0, 1.0, seed) AS g
          FROM generate_series(1, 20) AS seed) AS x;
SELECT rnnlm_generate('basic_lstm', 'the cat', 0) = '' AS empty,
       rnnlm_generate('basic_lstm', 'the cat', max_tokens => 0, seed => 5) = '' AS empty_named;
-- every generated word is in the vocabulary (<unk> is never drawn)
SELECT bool_and(l.token_id > 1 OR l.token = '<eod>') AS all_known
  FROM generate_series(1, 10) AS seed,
       rnnlm_token_logprobs('basic_lstm', rnnlm_generate('basic_lstm', 'a', 10, 1.5, 0, 1.0, seed)) AS l;
-- top_k => 1 and a tiny top_p are greedy whatever the temperature
SELECT rnnlm_generate('basic_lstm', 'the', 5, 1.0, 1, 1.0, 3) = rnnlm_generate('basic_lstm', 'the', 5, 0) AS top_k_1_greedy,
       rnnlm_generate('basic_lstm', 'the', 5, 5.0, 0, 1e-9, 3) = rnnlm_generate('basic_lstm', 'the', 5, 0) AS tiny_top_p_greedy;
-- the defaults: a prompt of '', 100 tokens at most, temperature 1
SELECT rnnlm_generate('basic_lstm', seed => 11) = rnnlm_generate('basic_lstm', '', 100, 1.0, 0, 1.0, 11) AS defaults;
-- without a seed, sampling is random but still works
SELECT rnnlm_generate('basic_lstm', 'the', 5) IS NOT NULL AS unseeded;

--
-- rnnlm_evaluate: token-weighted loss over the rows of a query
--
CREATE TABLE basic_eval AS
SELECT rnnlm_evaluate('basic_lstm', 'SELECT body FROM basic_docs WHERE id <= 30') AS e;
SELECT array_agg(k ORDER BY k) AS evaluate_keys FROM basic_eval, jsonb_object_keys(e) AS k;
SELECT (e->>'documents')::int AS documents,
       (e->>'tokens')::int AS tokens,
       (e->>'tokens')::int = (SELECT count(*) FROM basic_docs d, rnnlm_token_logprobs('basic_lstm', d.body)
                               WHERE d.id <= 30) AS tokens_are_rows_plus_eod,
       abs((e->>'perplexity')::float8 - exp((e->>'loss')::float8)) < 1e-4 AS perplexity_is_exp_loss,
       abs((e->>'bits_per_token')::float8 - (e->>'loss')::float8 / ln(2)) < 1e-5 AS bits_are_loss_over_ln2,
       abs((e->>'loss')::float8 - (SELECT -avg(l.logprob) FROM basic_docs d, rnnlm_token_logprobs('basic_lstm', d.body) l
                                    WHERE d.id <= 30)) < 1e-5 AS loss_is_mean_nll,
       (e->>'loss')::float8 < 1.0 AS learned,
       (e->>'accuracy')::float8 BETWEEN 0.75 AND 1.0 AS accurate
  FROM basic_eval;
-- NULL rows are skipped; the token count is sum(words + 1)
SELECT rnnlm_evaluate('basic_lstm', $$VALUES ('the cat'), (NULL), ('a b c d')$$)->'documents' AS documents,
       rnnlm_evaluate('basic_lstm', $$VALUES ('the cat'), (NULL), ('a b c d')$$)->'tokens' AS tokens;
-- one document: the same loss as rnnlm_perplexity
SELECT abs((rnnlm_evaluate('basic_lstm', $$SELECT 'a dog ran in the park'$$)->>'perplexity')::float8
           - rnnlm_perplexity('basic_lstm', 'a dog ran in the park')) < 1e-4 AS same_as_perplexity;

--
-- rnnlm_perplexity over an array: batched, same order, NULL for NULL
--
SELECT array_length(p, 1) AS n,
       p[2] IS NULL AS null_for_null,
       abs(p[1] - rnnlm_perplexity('basic_lstm', 'the cat sat on the mat')) < 1e-6 * p[1] AS first,
       abs(p[3] - rnnlm_perplexity('basic_lstm', '')) < 1e-6 * p[3] AS empty,
       abs(p[4] - rnnlm_perplexity('basic_lstm', 'zebra zebra')) < 1e-6 * p[4] AS unknown_words
  FROM (SELECT rnnlm_perplexity('basic_lstm',
                 ARRAY['the cat sat on the mat', NULL, '', 'zebra zebra']) AS p) s;
-- a whole table in one call agrees with one call per row
SELECT bool_and(abs(a.p - rnnlm_perplexity('basic_lstm', d.body)) < 1e-6 * a.p) AS all_rows_agree,
       count(*) AS rows
  FROM (SELECT unnest(rnnlm_perplexity('basic_lstm', array_agg(body ORDER BY id))) AS p,
               generate_series(1, count(*)::int) AS i
          FROM basic_docs) a
  JOIN basic_docs d ON d.id = a.i;
SELECT rnnlm_perplexity('basic_lstm', '{}'::text[]) AS empty_array,
       rnnlm_perplexity('basic_lstm', NULL::text[]) AS null_array;
SELECT rnnlm_perplexity('basic_lstm', ARRAY[['a', 'b'], ['c', 'd']]);
SELECT rnnlm_perplexity('no_such_model', ARRAY['a']);

--
-- rnnlm_drop
--
SELECT rnnlm_drop('basic_lstm');
SELECT count(*) FROM rnnlm.models;
SELECT rnnlm_drop('basic_lstm', if_exists => true);
SELECT rnnlm_drop('basic_lstm');

DROP TABLE basic_docs, basic_summary, basic_eval;
