--
-- rnnlm_uses: what a trained model is used for besides scoring and
-- generating: rnnlm_next_tokens, the most likely next tokens after a
-- prefix; rnnlm_embed, a text as a vector; rnnlm_classify, which of
-- several models (one per class) a text most likely comes from.
--
SET client_min_messages = warning;
CREATE TABLE us_docs AS
SELECT i, 'ticket ' || i || ': the printer on floor ' || (i % 7) || ' is out of toner' AS body
  FROM generate_series(1, 150) AS i;
SELECT rnnlm_train('us_char', 'SELECT body FROM us_docs',
                   '{"tokenizer": "char", "cell": "gru", "epochs": 3, "hidden_size": 32,
                     "embedding_dim": 8, "num_layers": 1, "batch_size": 8, "seq_len": 24,
                     "learning_rate": 0.01}')->'epochs_run' AS epochs_run;
SELECT rnnlm_train('us_word', 'SELECT body FROM us_docs',
                   '{"epochs": 3, "hidden_size": 16, "embedding_dim": 8, "num_layers": 1,
                     "batch_size": 4, "seq_len": 8, "learning_rate": 0.01}')->'epochs_run' AS epochs_run;

-- k rows, most likely first, probabilities in (0, 1] summing to at most 1
SELECT count(*) AS k_rows,
       bool_and(probability > 0 AND probability <= 1) AS in_range,
       sum(probability) <= 1 + 1e-9 AS sum_at_most_1
  FROM rnnlm_next_tokens('us_char', 'the printer on fl', 5);
SELECT bool_and(p >= next_p) AS descending
  FROM (SELECT probability AS p, lead(probability, 1, 0) OVER (ORDER BY ordinality) AS next_p
          FROM rnnlm_next_tokens('us_char', 'the printer on fl', 5) WITH ORDINALITY) s;
-- the model has learned the obvious continuation
SELECT token FROM rnnlm_next_tokens('us_char', 'the printer on fl', 1);
SELECT token FROM rnnlm_next_tokens('us_word', 'the printer is out of', 1);

-- the probabilities are the model's: each one is exp of what rnnlm_token_logprobs
-- gives that token (within 1e-5: scoring runs a document's steps as matrix
-- products, generation one step at a time)
SELECT bool_and(abs(ln(n.probability) - t.logprob) < 1e-5) AS agrees_with_token_logprobs
  FROM rnnlm_next_tokens('us_char', 'ticket 1', 4) n,
       LATERAL (SELECT logprob FROM rnnlm_token_logprobs('us_char', 'ticket 1' || n.token)
                 WHERE position = 9) t;

-- every token: the whole distribution, <eod> and <unk> under those names
SELECT count(*) = (SELECT vocab_size FROM rnnlm.models WHERE name = 'us_char') AS whole_vocabulary,
       abs(sum(probability) - 1) < 1e-6 AS sums_to_1,
       bool_or(token = '<eod>') AS has_eod, bool_or(token = '<unk>') AS has_unk
  FROM rnnlm_next_tokens('us_char', 'ticket', 100000);
-- after a whole document, the end of the document is the likeliest next token
SELECT token FROM rnnlm_next_tokens('us_word', 'ticket 4 the printer on floor 4 is out of toner', 1);
-- an empty prefix predicts the first token of a document
SELECT token FROM rnnlm_next_tokens('us_word', '', 1);

-- the default k, NULLs, bad arguments
SELECT count(*) AS default_k FROM rnnlm_next_tokens('us_char', 'ticket');
SELECT count(*) AS null_prefix FROM rnnlm_next_tokens('us_char', NULL);
SELECT * FROM rnnlm_next_tokens('us_char', 'ticket', 0);
SELECT * FROM rnnlm_next_tokens('us_nope', 'ticket');

-- rnnlm_embed: hidden_size reals, the same for the same text, mean and last differ
CREATE FUNCTION us_cos(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
  SELECT sum(x * y) / sqrt(sum(x * x) * sum(y * y))
    FROM unnest(a, b) AS u(x, y) $$;
SELECT array_length(rnnlm_embed('us_word', 'the printer is out of toner'), 1) AS dims,
       rnnlm_embed('us_word', 'the printer is out of toner')
         = rnnlm_embed('us_word', 'the printer is out of toner') AS deterministic,
       rnnlm_embed('us_word', 'the printer is out of toner', 'last')
         <> rnnlm_embed('us_word', 'the printer is out of toner', 'mean') AS pooling_differs,
       rnnlm_embed('us_word', 'ticket 3 the printer', 'last')
         = rnnlm_embed('us_word', 'ticket 3 the printer') AS not_last_by_default;
-- a near-paraphrase is closer than a text of other words
SELECT us_cos(rnnlm_embed('us_char', 'the printer on floor 2 is out of toner'),
              rnnlm_embed('us_char', 'the printer on floor 5 is out of toner'))
     > us_cos(rnnlm_embed('us_char', 'the printer on floor 2 is out of toner'),
              rnnlm_embed('us_char', 'qqq zzz xxx')) + 0.05 AS paraphrase_closer;
-- the batch form: one row per element, in order, equal to the single form; NULL for NULL
SELECT ordinality, embedding IS NULL AS is_null,
       embedding = rnnlm_embed('us_char', (ARRAY['ticket 1', NULL, 'floor 3'])[ordinality]) AS same
  FROM rnnlm_embed('us_char', ARRAY['ticket 1', NULL, 'floor 3']);
SELECT count(*) AS empty_rows FROM rnnlm_embed('us_char', ARRAY[]::text[]);
SELECT array_length(rnnlm_embed('us_char', ''), 1) AS empty_text_dims;
SELECT rnnlm_embed('us_char', 'ticket', 'max');
SELECT rnnlm_embed('us_char', NULL) IS NULL AS null_input;
DROP FUNCTION us_cos(real[], real[]);

-- rnnlm_classify: a second class, texts of another kind
CREATE TABLE us_pets AS
SELECT i, 'my ' || (ARRAY['cat', 'dog', 'hen'])[1 + i % 3] || ' sleeps on the '
          || (ARRAY['sofa', 'mat', 'bed', 'rug'])[1 + i % 4] || ' all day' AS body
  FROM generate_series(1, 150) AS i;
SELECT rnnlm_train('us_pets', 'SELECT body FROM us_pets',
                   '{"tokenizer": "char", "cell": "gru", "epochs": 3, "hidden_size": 32,
                     "embedding_dim": 8, "num_layers": 1, "batch_size": 8, "seq_len": 24,
                     "learning_rate": 0.01}')->'epochs_run' AS epochs_run;
SELECT t, rnnlm_classify(ARRAY['us_char', 'us_pets'], t) AS class
  FROM unnest(ARRAY['ticket 500: the printer on floor 3 is out of toner',
                    'my dog sleeps on the rug all day',
                    'the printer is out of toner',
                    'my hen sleeps all day']) AS t;
-- the scores: one row per model in order; the probabilities sum to 1; for a
-- char model the loss (nats per character and end of text) is ln(perplexity);
-- the probabilities' ratio is that of the likelihoods
SELECT model, loss < 1.5 AS low_loss, probability > 0.99 AS likely
  FROM rnnlm_classify_scores(ARRAY['us_char', 'us_pets'], 'my cat sleeps on the bed all day');
SELECT abs(sum(probability) - 1) < 1e-12 AS sums_to_1,
       bool_and(abs(loss - ln(rnnlm_perplexity(model, 'ticket 9: the printer'))) < 1e-9)
         AS loss_is_ln_perplexity,
       abs(ln(min(probability) FILTER (WHERE model = 'us_pets') / min(probability) FILTER (WHERE model = 'us_char'))
           - (min(loss) FILTER (WHERE model = 'us_char') - min(loss) FILTER (WHERE model = 'us_pets'))
             * (length('ticket 9: the printer') + 1)) < 1e-6 AS likelihood_ratio
  FROM rnnlm_classify_scores(ARRAY['us_char', 'us_pets'], 'ticket 9: the printer');
-- one model: probability 1; a model may be named twice
SELECT probability FROM rnnlm_classify_scores(ARRAY['us_pets'], 'anything');
SELECT rnnlm_classify(ARRAY['us_pets', 'us_pets'], 'my cat') AS tie;
-- NULLs and bad arguments
SELECT rnnlm_classify(ARRAY['us_char', 'us_pets'], NULL) IS NULL AS null_input;
SELECT rnnlm_classify(ARRAY[]::text[], 'my cat');
SELECT rnnlm_classify(ARRAY['us_char', NULL], 'my cat');
SELECT rnnlm_classify(ARRAY['us_char', 'us_nope'], 'my cat');
SELECT rnnlm_classify(ARRAY[ARRAY['us_char'], ARRAY['us_pets']], 'my cat');
DROP TABLE us_pets;

SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'us\_%' ORDER BY name;
DROP TABLE us_docs;
