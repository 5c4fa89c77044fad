--
-- rnnlm_tokenizers: the word, char and bpe tokenizers under the text rules
-- of new models (the Unicode library's), seen through rnnlm_token_logprobs
-- (token, token_id) and the vocabulary size; the word tokenizer's Keras
-- options; normalisation
--
-- (the database is UTF8, as pg_regress creates it in a UTF8 cluster)
SET client_min_messages = warning;

CREATE TABLE tok_docs (id int, body text);
INSERT INTO tok_docs VALUES
    (1, 'The Cat sat on the mat.'),
    (2, 'THE DOG, the cat & the bird!'),
    (3, 'Éclair café — naïve «déjà vu»'),
    (4, 'Ελληνικά ΑΒΓ Россия МОСКВА'),
    (5, '你好，世界。你好吗？'),
    (6, 'don''t stop: e-mail x@y.z, 3.14 100%');

-- tiny models: these tests are about tokens, not learning
CREATE FUNCTION tok_train(name text, opts jsonb) RETURNS int LANGUAGE sql AS $$
    SELECT (rnnlm_train(name, 'SELECT body FROM tok_docs ORDER BY id',
                        '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "epochs": 1,
                          "validation_fraction": 0}'::jsonb || opts)->>'vocab_size')::int
$$;

--
-- word: split on white space, punctuation removed, lowercased by default
-- (ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters)
--
SELECT tok_train('tok_word', '{}') AS vocab_size;
SELECT d.id, l.position, l.token_id, l.token
  FROM tok_docs d, rnnlm_token_logprobs('tok_word', d.body) AS l
 ORDER BY d.id, l.position;
-- the vocabulary is the distinct words, plus <eod> and <unk>
SELECT vocab_size = (SELECT count(DISTINCT l.token) + 1
                       FROM tok_docs d, rnnlm_token_logprobs('tok_word', d.body) AS l) AS vocab_is_distinct_plus_2
  FROM rnnlm.models WHERE name = 'tok_word';
-- case and punctuation make no difference when scoring either
SELECT rnnlm_perplexity('tok_word', 'THE CAT, SAT; ON THE MAT!!!')
       = rnnlm_perplexity('tok_word', 'the cat sat on the mat') AS same;
-- unknown words are <unk> (1); empty and punctuation-only texts have no words
SELECT position, token_id, token FROM rnnlm_token_logprobs('tok_word', 'the zebra, THE YAK');
SELECT count(*) AS rows FROM rnnlm_token_logprobs('tok_word', '... !!! ---');
-- every kind of white space separates words: tab, newline, several spaces,
-- no-break space, em space, ideographic space
SELECT position, token FROM rnnlm_token_logprobs('tok_word', E'a\tb\nc  d\u00a0e\u2003f\u3000g ');
-- a word is cut at 1024 bytes, on a character boundary
SELECT position, length(token) AS chars, octet_length(token) AS bytes
  FROM rnnlm_token_logprobs('tok_word', repeat('a', 2000) || ' ' || repeat('é', 600));

-- lowercase => false keeps case: The, the and THE are three words
SELECT tok_train('tok_case', '{"lowercase": false}') AS vocab_size;
SELECT position, token_id, token FROM rnnlm_token_logprobs('tok_case', 'The the THE cat Cat CAT');
SELECT options->'lowercase' AS lowercase FROM rnnlm.models WHERE name = 'tok_case';

-- generated words are vocabulary words, joined by single spaces
SELECT bool_and(l.token_id > 1 OR l.position = r.n) AS all_known,
       bool_and(g NOT LIKE '%  %' AND g NOT LIKE ' %' AND g NOT LIKE '% ') AS single_spaces
  FROM generate_series(1, 5) AS seed,
       LATERAL (SELECT rnnlm_generate('tok_word', 'the', 8, 1.0, 0, 1.0, seed) AS g) AS x,
       LATERAL (SELECT count(*) AS n FROM rnnlm_token_logprobs('tok_word', g)) AS r,
       rnnlm_token_logprobs('tok_word', g) AS l;
SELECT rnnlm_drop('tok_word'), rnnlm_drop('tok_case');

--
-- max_vocab: the most frequent words of the training documents are kept
-- (ties in first-seen order); the vocabulary is max_vocab + 2
--
CREATE TABLE tok_freq AS
SELECT body FROM (VALUES ('a b c d e f'), ('a b c d e'), ('a b c d'), ('a b c'), ('a b'), ('a'),
                         ('rare words only here')) AS v(body);
SELECT (rnnlm_train('tok_v3', 'SELECT body FROM tok_freq',
                    '{"max_vocab": 3, "embedding_dim": 8, "hidden_size": 8, "num_layers": 1,
                      "epochs": 1, "validation_fraction": 0}')->>'vocab_size')::int AS vocab_size;
SELECT vocab_size, options->'max_vocab' AS max_vocab FROM rnnlm.models WHERE name = 'tok_v3';
SELECT position, token_id, token FROM rnnlm_token_logprobs('tok_v3', 'a b c d e f rare');
-- max_vocab larger than the number of distinct words changes nothing
SELECT (rnnlm_train('tok_v100', 'SELECT body FROM tok_freq',
                    '{"max_vocab": 100, "embedding_dim": 8, "hidden_size": 8, "num_layers": 1,
                      "epochs": 1, "validation_fraction": 0}')->>'vocab_size')::int AS vocab_size;
-- the vocabulary comes from the training documents only: the last document
-- is held out for validation here, so its words are <unk>
SELECT (rnnlm_train('tok_val', 'SELECT body FROM tok_freq',
                    '{"embedding_dim": 8, "hidden_size": 8, "num_layers": 1,
                      "epochs": 1, "validation_fraction": 0.1}')->>'vocab_size')::int AS vocab_size;
SELECT position, token_id, token FROM rnnlm_token_logprobs('tok_val', 'a f rare words');
SELECT rnnlm_drop('tok_v3'), rnnlm_drop('tok_v100'), rnnlm_drop('tok_val');

--
-- char: one token per code point, white space and punctuation included;
-- case is kept by default
--
SELECT tok_train('tok_char', '{"tokenizer": "char"}') AS vocab_size;
SELECT vocab_size = (SELECT count(DISTINCT c) + 2
                       FROM tok_docs, regexp_split_to_table(body, '') AS c) AS vocab_is_distinct_chars_plus_2,
       options->'lowercase' AS lowercase, options->'max_vocab' AS max_vocab
  FROM rnnlm.models WHERE name = 'tok_char';
-- Chinese and accented text: one row per character, then <eod>
SELECT t, (SELECT count(*) FROM rnnlm_token_logprobs('tok_char', t)) AS rows,
       length(t) + 1 AS chars_plus_1
  FROM (VALUES ('你好'), ('café'), ('Россия'), ('a b'), ('')) AS v(t);
SELECT position, token, token_id > 1 AS known
  FROM rnnlm_token_logprobs('tok_char', '你好 café');
-- characters not seen in training are <unk>
SELECT position, token, token_id FROM rnnlm_token_logprobs('tok_char', 'Ωé☃');
-- no Unicode normalisation: a decomposed é is two code points
SELECT count(*) AS rows FROM rnnlm_token_logprobs('tok_char', E'cafe\u0301');
-- case matters by default
SELECT count(DISTINCT token_id) AS distinct_ids FROM rnnlm_token_logprobs('tok_char', 'tT');
-- generated text is characters of the vocabulary, not separated by spaces
SELECT bool_and(l.token_id > 1 OR l.token = '<eod>') AS all_known,
       bool_and(length(g) <= 12) AS at_most_12_chars
  FROM generate_series(1, 5) AS seed,
       LATERAL (SELECT rnnlm_generate('tok_char', '你', 12, 1.0, 0, 1.0, seed) AS g) AS x,
       rnnlm_token_logprobs('tok_char', g) AS l;

-- char with lowercase => true folds case; with max_vocab keeps the most
-- frequent characters
SELECT tok_train('tok_char_lower', '{"tokenizer": "char", "lowercase": true}')
       < (SELECT vocab_size FROM rnnlm.models WHERE name = 'tok_char') AS fewer_tokens;
SELECT position, token FROM rnnlm_token_logprobs('tok_char_lower', 'ÉA éa');
SELECT tok_train('tok_char_5', '{"tokenizer": "char", "max_vocab": 5}') AS vocab_size;
-- the five most frequent characters of tok_docs are known, the rest <unk>
SELECT string_agg(token, '|' ORDER BY token COLLATE "C") AS known
  FROM (SELECT DISTINCT token FROM tok_docs d, rnnlm_token_logprobs('tok_char_5', d.body)
         WHERE token_id > 1) AS x;

--
-- Unicode case folding and categories: every capital folds, every
-- punctuation and symbol character is removed, the Unicode separators split
--
INSERT INTO tok_docs VALUES
    (7, 'TIẾNG VIỆT Ἀθῆναι ΆΈΉ ȘȚ ҚАЗАҚ STRAẞE'),
    (8, E'£5 €5 ¥5 5$ a\u001cb\u001fc');
SELECT tok_train('tok_uni', '{}') AS vocab_size;
SELECT d.id, l.position, l.token FROM tok_docs d, rnnlm_token_logprobs('tok_uni', d.body) AS l
 WHERE d.id IN (7, 8) ORDER BY d.id, l.position;

-- Keras's knobs: filters (the characters filtered) and split_on_punctuation
-- (a filtered character separates words, so "e-mail" is two words)
SELECT tok_train('tok_split', '{"split_on_punctuation": true}') AS vocab_size;
SELECT position, token FROM rnnlm_token_logprobs('tok_split', 'don''t stop: e-mail x@y.z');
SELECT tok_train('tok_keras', $${"split_on_punctuation": true,
                                 "filters": "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n"}$$) AS vocab_size;
SELECT position, token FROM rnnlm_token_logprobs('tok_keras', 'don''t stop: e-mail x@y.z «déjà»');
SELECT options->'filters' AS filters, options->'split_on_punctuation' AS split
  FROM rnnlm.models WHERE name = 'tok_keras';
SELECT rnnlm_train('tok_err', 'SELECT body FROM tok_docs', '{"tokenizer": "char", "filters": "-"}');
SELECT rnnlm_train('tok_err', 'SELECT body FROM tok_docs', '{"filters": 5}');

-- normalize: nfc composes, nfkc folds compatibility forms too
SELECT tok_train('tok_nfkc', '{"tokenizer": "char", "normalize": "nfkc"}') AS vocab_size;
SELECT count(*) AS rows FROM rnnlm_token_logprobs('tok_nfkc', E'cafe\u0301');
SELECT position, token FROM rnnlm_token_logprobs('tok_nfkc', E'\ufb01\u2460');
SELECT tok_train('tok_nfc', '{"tokenizer": "char", "normalize": "nfc"}') AS vocab_size;
SELECT position, token FROM rnnlm_token_logprobs('tok_nfc', E'\ufb01e\u0301');
SELECT rnnlm_train('tok_err', 'SELECT body FROM tok_docs', '{"normalize": "nfd"}');
-- a fine-tuned model keeps its parent's rules; asking for others is refused
SELECT rnnlm_train('tok_nfc_ft', 'SELECT body FROM tok_docs',
                   '{"init_from": "tok_nfc", "epochs": 1, "validation_fraction": 0}')->>'model' AS model;
SELECT options->'normalize' AS normalize FROM rnnlm.models WHERE name = 'tok_nfc_ft';
SELECT rnnlm_train('tok_err', 'SELECT body FROM tok_docs', '{"init_from": "tok_nfc", "normalize": "nfkc"}');

--
-- bpe: byte-level byte-pair encoding; any text encodes without <unk> and the
-- tokens' bytes give the text back exactly
--
SELECT tok_train('tok_bpe', '{"tokenizer": "bpe", "max_vocab": 300}') AS vocab_size;
SELECT vocab_size, options->'max_vocab' AS max_vocab, options->'lowercase' AS lowercase
  FROM rnnlm.models WHERE name = 'tok_bpe';
SELECT t, bool_and(token_id > 1 OR position = n) AS no_unk,
       count(*) - 1 <= octet_length(t) AS at_most_one_token_per_byte
  FROM (VALUES ('你好，世界'), ('Crème brûlée'), ('emoji 😀👍🏽'), ('the cat'), ('')) AS v(t),
       LATERAL (SELECT count(*) AS n FROM rnnlm_token_logprobs('tok_bpe', t)) AS c,
       rnnlm_token_logprobs('tok_bpe', t)
 GROUP BY t, n ORDER BY t;
-- a piece of a character shows its bytes escaped (\xHH); a whole one as text
SELECT position, token FROM rnnlm_token_logprobs('tok_bpe', '☃ the cat\');
-- learned merges: seen text takes fewer tokens than its bytes
SELECT count(*) - 1 < octet_length('the cat sat on the mat') AS merged
  FROM rnnlm_token_logprobs('tok_bpe', 'the cat sat on the mat');
-- generation always returns valid UTF-8 (a cut-off character is dropped)
SELECT bool_and(g IS NOT NULL) AS all_text
  FROM generate_series(1, 20) AS seed,
       LATERAL (SELECT rnnlm_generate('tok_bpe', '你', 7, 2.0, 0, 1.0, seed) AS g) AS x;
SELECT token FROM rnnlm_next_tokens('tok_bpe', 'the', 1000) WHERE token LIKE '%\x%' LIMIT 1;
-- the default max_vocab is 8000; at least the 256 bytes and 2 reserved tokens
SELECT rnnlm_train('tok_err', 'SELECT body FROM tok_docs', '{"tokenizer": "bpe", "max_vocab": 257}');
SELECT rnnlm_train('tok_err', 'SELECT body FROM tok_docs', '{"tokenizer": "bpe", "split_on_punctuation": true}');

SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'tok\_%' ORDER BY name;

DROP FUNCTION tok_train(text, jsonb);
DROP TABLE tok_docs, tok_freq;
