--
-- rnnlm_cells: every cell (rnn, lstm, gru) with every tokenizer (word, char),
-- stacked layers and dropout
--
SET client_min_messages = warning;

-- two sentences, each fully predictable after its first word
CREATE TABLE cell_docs AS
SELECT i AS id, (ARRAY['the sun is hot', 'a moon was cold'])[1 + i % 2] AS body
  FROM generate_series(1, 120) AS i;

CREATE TABLE cell_runs AS
SELECT c.cell, t.tok,
       rnnlm_train('cell_' || c.cell || '_' || t.tok,
                   'SELECT body FROM cell_docs ORDER BY md5(id::text)',
                   jsonb_build_object('cell', c.cell, 'tokenizer', t.tok,
                                      'embedding_dim', 12, 'hidden_size', 24, 'num_layers', 1,
                                      'epochs', 3, 'learning_rate', 0.05, 'batch_size', 8,
                                      'seq_len', 16, 'seed', 5)) AS s
  FROM (VALUES ('rnn'), ('lstm'), ('gru')) AS c(cell),
       (VALUES ('word'), ('char')) AS t(tok);

-- each trained; the sizes follow doc/format.md, with G = 1, 4, 3 gate blocks
SELECT cell, tok, s->>'cell' AS s_cell, s->>'tokenizer' AS s_tokenizer,
       (s->>'vocab_size')::int AS vocab_size, (s->>'parameters')::int AS parameters,
       (s->>'parameters')::int = v * 12 + g * 24 * (12 + 24 + 1) + v * 24 + v AS formula,
       (s->>'size_bytes')::int AS size_bytes
  FROM cell_runs,
       LATERAL (SELECT (s->>'vocab_size')::int AS v,
                       CASE cell WHEN 'rnn' THEN 1 WHEN 'lstm' THEN 4 ELSE 3 END AS g) AS x
 ORDER BY tok DESC, parameters;

-- each learned the corpus
SELECT cell, tok,
       (s->>'train_loss')::float8 < 1.0 AS train_learned,
       (s->>'val_loss')::float8 < 0.5 AS val_learned
  FROM cell_runs ORDER BY tok DESC, cell;

-- the view agrees
SELECT name, cell, tokenizer, embedding_dim, hidden_size, num_layers,
       options->>'cell' = cell AND options->>'tokenizer' = tokenizer AS options_agree,
       size_bytes = (SELECT (s->>'size_bytes')::bigint FROM cell_runs r WHERE 'cell_' || r.cell || '_' || r.tok = m.name) AS size_agrees
  FROM rnnlm.models m WHERE name LIKE 'cell\_%' ORDER BY name;

-- each scores text: seen sentences are easy, scrambled ones hard, and the
-- three functions agree with each other
SELECT r.cell, r.tok,
       rnnlm_perplexity(m, 'the sun is hot') < 2.5 AS seen_easy,
       rnnlm_perplexity(m, 'hot is sun the') > rnnlm_perplexity(m, 'the sun is hot') AS scrambled_harder,
       abs(rnnlm_perplexity(m, 'a moon was cold')
           - (SELECT exp(-avg(logprob)) FROM rnnlm_token_logprobs(m, 'a moon was cold'))) < 1e-9 AS logprobs_agree,
       abs((rnnlm_evaluate(m, $$SELECT 'a moon was cold'$$)->>'perplexity')::float8
           - rnnlm_perplexity(m, 'a moon was cold')) < 1e-4 AS evaluate_agrees,
       (rnnlm_evaluate(m, 'SELECT body FROM cell_docs')->>'loss')::float8 < 0.5 AS evaluate_learned
  FROM cell_runs r, LATERAL (SELECT 'cell_' || r.cell || '_' || r.tok AS m) AS x
 ORDER BY r.tok DESC, r.cell;

-- each generates: greedy continues the sentence, sampling is reproducible
SELECT r.cell, r.tok,
       rnnlm_generate(m, 'the sun', 10, 0) = CASE r.tok WHEN 'word' THEN 'is hot' ELSE ' is hot' END AS greedy_continues,
       rnnlm_generate(m, '', 10, 1.0, 0, 1.0, 9) = rnnlm_generate(m, '', 10, 1.0, 0, 1.0, 9) AS seeded_repeats,
       rnnlm_generate(m, '', 0) = '' AS zero_tokens
  FROM cell_runs r, LATERAL (SELECT 'cell_' || r.cell || '_' || r.tok AS m) AS x
 ORDER BY r.tok DESC, r.cell;

-- the cells give different models from the same seed
SELECT count(DISTINCT rnnlm_perplexity('cell_' || cell || '_word', 'the moon is cold')) AS distinct_word,
       count(DISTINCT rnnlm_perplexity('cell_' || cell || '_char', 'the moon is cold')) AS distinct_char
  FROM (VALUES ('rnn'), ('lstm'), ('gru')) AS c(cell);

SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'cell\_%' ORDER BY name;

--
-- two layers, with and without dropout, for each cell
--
CREATE TABLE cell_deep AS
SELECT c.cell, d.dropout,
       rnnlm_train('deep_' || c.cell || '_' || d.dropout,
                   'SELECT body FROM cell_docs ORDER BY md5(id::text)',
                   jsonb_build_object('cell', c.cell, 'embedding_dim', 8, 'hidden_size', 16,
                                      'num_layers', 2, 'dropout', d.dropout, 'epochs', 3,
                                      'learning_rate', 0.1, 'batch_size', 8, 'seq_len', 16,
                                      'seed', 5)) AS s
  FROM (VALUES ('rnn'), ('lstm'), ('gru')) AS c(cell),
       (VALUES (0.0), (0.3)) AS d(dropout);
SELECT cell, dropout, (s->>'parameters')::int AS parameters,
       (s->>'parameters')::int = v * 8 + g * 16 * (8 + 16 + 1) + g * 16 * (16 + 16 + 1) + v * 16 + v AS formula,
       (s->>'train_loss')::float8 < 1.5 AS train_learned,
       (s->>'val_loss')::float8 < 1.0 AS val_learned
  FROM cell_deep,
       LATERAL (SELECT (s->>'vocab_size')::int AS v,
                       CASE cell WHEN 'rnn' THEN 1 WHEN 'lstm' THEN 4 ELSE 3 END AS g) AS x
 ORDER BY parameters, dropout;
SELECT name, num_layers, options->'num_layers' AS num_layers_option, options->'dropout' AS dropout
  FROM rnnlm.models WHERE name LIKE 'deep\_%' ORDER BY name;
-- dropout changes training, not the model's shape
SELECT d0.cell,
       (d0.s->>'parameters') = (d3.s->>'parameters') AS same_shape,
       (d0.s->>'train_loss') <> (d3.s->>'train_loss') AS different_training
  FROM cell_deep d0 JOIN cell_deep d3 ON d0.cell = d3.cell AND d0.dropout = 0 AND d3.dropout > 0
 ORDER BY d0.cell;
-- scoring is deterministic (dropout is off at inference)
SELECT cell, dropout,
       rnnlm_perplexity('deep_' || cell || '_' || dropout, 'the sun is hot')
         = rnnlm_perplexity('deep_' || cell || '_' || dropout, 'the sun is hot') AS deterministic,
       rnnlm_perplexity('deep_' || cell || '_' || dropout, 'the sun is hot') < 3 AS seen_easy
  FROM cell_deep ORDER BY cell, dropout;
SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'deep\_%' ORDER BY name;

DROP TABLE cell_docs, cell_runs, cell_deep;
