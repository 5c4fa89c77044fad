--
-- rnnlm_storage: the rnnlm.model table, the model format, damaged weights,
-- the per-session model cache, transactions, roles and rnnlm.threads
--
SET client_min_messages = warning;
-- errors raised inside helper functions do not need their context
\set SHOW_CONTEXT never

CREATE TABLE sto_docs AS
SELECT i AS id, (ARRAY['red apples are sweet', 'green pears are hard', 'ripe plums are soft'])[1 + i % 3] AS body
  FROM generate_series(1, 60) AS i;
GRANT SELECT ON sto_docs TO PUBLIC;

-- tiny settings; seed and cell vary per test
CREATE FUNCTION sto_opts(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"cell": "rnn", "embedding_dim": 4, "hidden_size": 4, "num_layers": 1, "epochs": 1,
             "learning_rate": 0.01, "seed": 1}'::jsonb || extra
$$;

--
-- the table behind the view
--
-- pg_dump keeps the models and the revision sequence
SELECT extconfig::regclass[] AS extconfig, extcondition
  FROM pg_extension WHERE extname = 'rnnlm';
-- weights are stored out of line, uncompressed; rows are protected by RLS
SELECT attname, attstorage FROM pg_attribute
 WHERE attrelid = 'rnnlm.model'::regclass AND attname = 'weights';
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'rnnlm.model'::regclass;
SELECT polname, polcmd FROM pg_policy WHERE polrelid = 'rnnlm.model'::regclass;

SELECT rnnlm_train('sto_a', 'SELECT body FROM sto_docs', sto_opts())->>'model' AS model;
-- owner is the current user; size_bytes is the length of the weights
SELECT m.name, m.owner = current_user::regrole AS owner_is_current_user,
       v.owner = m.owner AS view_owner_same,
       v.size_bytes = octet_length(m.weights) AS size_is_octet_length,
       m.revision > 0 AS has_revision,
       m.trained_tokens = m.trained_tokens AND m.parameters = v.parameters AS same_row
  FROM rnnlm.model m JOIN rnnlm.models v USING (name);
-- the table's CHECK constraint backs the name rules of the functions
-- (terse: the failing row would show the user name and the time)
\set VERBOSITY terse
INSERT INTO rnnlm.model SELECT '', owner, revision, cell, tokenizer, vocab_size, embedding_dim,
       hidden_size, num_layers, parameters, train_loss, val_loss, val_perplexity, trained_tokens,
       options, created_at, weights FROM rnnlm.model WHERE name = 'sto_a';
UPDATE rnnlm.model SET name = repeat('n', 64) WHERE name = 'sto_a';
\set VERBOSITY default

--
-- the weights follow doc/format.md
--
-- little-endian u32 reading and writing, and CRC-32 (zlib polynomial)
CREATE FUNCTION sto_u32(b bytea, off int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT get_byte(b, off)::bigint | (get_byte(b, off + 1)::bigint << 8)
         | (get_byte(b, off + 2)::bigint << 16) | (get_byte(b, off + 3)::bigint << 24)
$$;
CREATE FUNCTION sto_le32(n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT set_byte(set_byte(set_byte(set_byte('\x00000000'::bytea,
               0, (n & 255)::int), 1, ((n >> 8) & 255)::int), 2, ((n >> 16) & 255)::int), 3, ((n >> 24) & 255)::int)
$$;
CREATE TABLE sto_crc_table (i int PRIMARY KEY, v bigint);
DO $$
DECLARE
    c bigint;
BEGIN
    FOR i IN 0 .. 255 LOOP
        c := i;
        FOR j IN 1 .. 8 LOOP
            IF (c & 1) = 1 THEN
                c := (c >> 1) # 3988292384;   -- 0xEDB88320
            ELSE
                c := c >> 1;
            END IF;
        END LOOP;
        INSERT INTO sto_crc_table VALUES (i, c);
    END LOOP;
END
$$;
CREATE FUNCTION sto_crc32(b bytea) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
    t bigint[] := (SELECT array_agg(v ORDER BY i) FROM sto_crc_table);
    crc bigint := 4294967295;
BEGIN
    FOR k IN 0 .. length(b) - 1 LOOP
        crc := (crc >> 8) # t[((crc # get_byte(b, k)) & 255) + 1];
    END LOOP;
    RETURN crc # 4294967295;
END
$$;
-- the check value of CRC-32
SELECT to_hex(sto_crc32('123456789'::bytea)) AS crc_check;
-- replaces the last 4 bytes with the CRC-32 of what precedes them
CREATE FUNCTION sto_seal(b bytea) RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT substring(b FROM 1 FOR length(b) - 4) || sto_le32(sto_crc32(substring(b FROM 1 FOR length(b) - 4)))
$$;
-- overwrites the u32 at a byte offset
CREATE FUNCTION sto_put32(b bytea, off int, n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT overlay(b PLACING sto_le32(n) FROM off + 1 FOR 4)
$$;

-- the payload offset of a section of a format version 2 file, by its tag
CREATE FUNCTION sto_section(b bytea, tag text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    pos int := 16;
BEGIN
    FOR i IN 1 .. sto_u32(b, 12) LOOP
        IF substring(b FROM pos + 1 FOR 4) = convert_to(tag, 'UTF8') THEN
            RETURN pos + 12;
        END IF;
        pos := pos + 12 + sto_u32(b, pos + 4);
    END LOOP;
    RETURN NULL;
END
$$;
-- the tags of the sections, in order
CREATE FUNCTION sto_tags(b bytea) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    pos int := 16;
    tags text := '';
BEGIN
    FOR i IN 1 .. sto_u32(b, 12) LOOP
        tags := tags || CASE WHEN i > 1 THEN ' ' ELSE '' END
                     || convert_from(substring(b FROM pos + 1 FOR 4), 'UTF8');
        pos := pos + 12 + sto_u32(b, pos + 4);
    END LOOP;
    RETURN tags;
END
$$;

SELECT substring(weights FROM 1 FOR 8) AS magic,
       sto_u32(weights, 8) AS format_version, sto_u32(weights, 12) AS sections,
       sto_tags(weights) AS tags
  FROM rnnlm.model WHERE name = 'sto_a';
SELECT sto_u32(weights, c) AS cell, sto_u32(weights, c + 4) AS tokenizer,
       sto_u32(weights, c + 8) AS flags, sto_u32(weights, c + 12) = vocab_size AS v_ok,
       sto_u32(weights, c + 16) AS e, sto_u32(weights, c + 20) AS h, sto_u32(weights, c + 24) AS l,
       sto_u32(weights, c + 28) = parameters AND sto_u32(weights, c + 32) = 0 AS p_ok,
       sto_u32(weights, t) AS rules, sto_u32(weights, t + 4) AS normalize,
       sto_u32(weights, t + 8) AS text_flags, sto_u32(weights, t + 12) AS filters_len,
       convert_from(substring(weights FROM t + 21 FOR sto_u32(weights, t + 16)::int), 'UTF8')
         ~ '^[0-9]+\.[0-9]+\.[0-9]+$' AS unicode_version_recorded,
       sto_u32(weights, v) AS entry0_len, convert_from(substring(weights FROM v + 5 FOR 5), 'UTF8') AS entry0,
       sto_u32(weights, v + 9) AS entry1_len, convert_from(substring(weights FROM v + 14 FOR 5), 'UTF8') AS entry1,
       sto_u32(weights, p - 8) = 4 * parameters AS params_len_ok,
       sto_u32(weights, length(weights) - 4) = sto_crc32(substring(weights FROM 1 FOR length(weights) - 4)) AS crc_ok,
       sto_seal(weights) = weights AS seal_is_identity
  FROM rnnlm.model,
       LATERAL (SELECT sto_section(weights, 'CONF') AS c, sto_section(weights, 'TEXT') AS t,
                       sto_section(weights, 'VOCB') AS v, sto_section(weights, 'PARM') AS p) AS o
 WHERE name = 'sto_a';
-- the size: header, four section heads, CONF, TEXT, vocabulary entries, 4 bytes per parameter, checksum
SELECT length(weights) = 16 + 4 * 12 + 36 + (p_text - 12 - t_text)
         + (SELECT sum(4 + octet_length(t)) FROM (
              SELECT DISTINCT l.token AS t FROM sto_docs d, rnnlm_token_logprobs('sto_a', d.body) AS l
               WHERE l.token <> '<eod>') AS x) + 4 + 5 + 4 + 5 + 4 * parameters + 4 AS size_ok
  FROM rnnlm.model,
       LATERAL (SELECT sto_section(weights, 'TEXT') AS t_text, sto_section(weights, 'VOCB') AS p_text) AS o
 WHERE name = 'sto_a';

--
-- damaged weights: a clean ERROR (data_corrupted, XX001), never a crash
--
SELECT rnnlm_train('sto_bad', 'SELECT body FROM sto_docs', sto_opts())->>'model' AS model;
CREATE TABLE sto_good AS SELECT weights FROM rnnlm.model WHERE name = 'sto_bad';
-- truncated
UPDATE rnnlm.model SET weights = substring(weights FROM 1 FOR length(weights) / 2) WHERE name = 'sto_bad';
SELECT rnnlm_perplexity('sto_bad', 'red apples');
SELECT rnnlm_generate('sto_bad', 'red', 5);
SELECT * FROM rnnlm_token_logprobs('sto_bad', 'red apples');
SELECT rnnlm_evaluate('sto_bad', 'SELECT body FROM sto_docs');
DO $$
BEGIN
    PERFORM rnnlm_perplexity('sto_bad', 'red apples');
EXCEPTION WHEN data_corrupted THEN
    RAISE WARNING 'caught data_corrupted (%)', SQLSTATE;
END
$$;
SELECT 1 AS still_alive;
-- one byte flipped in the parameters
UPDATE rnnlm.model SET weights = set_byte(weights, length(weights) - 10, get_byte(weights, length(weights) - 10) # 255)
 WHERE name = 'sto_bad';
SELECT rnnlm_perplexity('sto_bad', 'red apples');
SELECT rnnlm_generate('sto_bad', 'red', 5);
-- random bytes
UPDATE rnnlm.model SET weights = (SELECT string_agg(decode(md5('rnnlm' || i), 'hex'), ''::bytea ORDER BY i)
                                    FROM generate_series(1, 40) AS i)
 WHERE name = 'sto_bad';
SELECT rnnlm_perplexity('sto_bad', 'red apples');
SELECT rnnlm_generate('sto_bad', 'red', 5);
-- empty
UPDATE rnnlm.model SET weights = '' WHERE name = 'sto_bad';
SELECT rnnlm_perplexity('sto_bad', 'red apples');
SELECT rnnlm_generate('sto_bad', 'red', 5);
-- wrong magic number
UPDATE rnnlm.model SET weights = overlay((SELECT weights FROM sto_good) PLACING 'XNNLM' FROM 1 FOR 5) WHERE name = 'sto_bad';
SELECT rnnlm_perplexity('sto_bad', 'red apples');
SELECT rnnlm_generate('sto_bad', 'red', 5);
SELECT 1 AS still_alive;

-- damage that keeps the checksum valid: every header field and the
-- vocabulary are checked too.  (The revision is bumped with each UPDATE, as
-- rnnlm_train does, so that a model cached by this session is reloaded.)
CREATE FUNCTION sto_try(blob bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    UPDATE rnnlm.model SET weights = blob, revision = nextval('rnnlm.model_revision_seq')
     WHERE name = 'sto_bad';
    PERFORM rnnlm_perplexity('sto_bad', 'red apples');
    PERFORM rnnlm_generate('sto_bad', 'red', 5, seed => 1);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END
$$;
SELECT label, sto_try(blob) AS result
  FROM sto_good g,
       LATERAL (SELECT sto_section(g.weights, 'CONF') AS c, sto_section(g.weights, 'TEXT') AS t,
                       sto_section(g.weights, 'VOCB') AS v, sto_section(g.weights, 'PARM') AS p) AS o,
       LATERAL (VALUES
       ('intact', sto_seal(g.weights)),
       ('format version 3', sto_seal(sto_put32(g.weights, 8, 3))),
       ('format version 1', sto_seal(sto_put32(g.weights, 8, 1))),
       ('65 sections', sto_seal(sto_put32(g.weights, 12, 65))),
       ('one section more', sto_seal(sto_put32(g.weights, 12, sto_u32(g.weights, 12) + 1))),
       ('CONF renamed XONF', sto_seal(overlay(g.weights PLACING 'X' FROM c - 11 FOR 1))),
       ('TEXT renamed tEXT', sto_seal(overlay(g.weights PLACING 't' FROM t - 11 FOR 1))),
       ('cell 3', sto_seal(sto_put32(g.weights, c, 3))),
       ('tokenizer 3', sto_seal(sto_put32(g.weights, c + 4, 3))),
       ('tokenizer 2 (bpe) without merges', sto_seal(sto_put32(g.weights, c + 4, 2))),
       ('flags 2', sto_seal(sto_put32(g.weights, c + 8, 2))),
       ('vocabulary size 2', sto_seal(sto_put32(g.weights, c + 12, 2))),
       ('vocabulary size 2000001', sto_seal(sto_put32(g.weights, c + 12, 2000001))),
       ('vocabulary size + 1', sto_seal(sto_put32(g.weights, c + 12, sto_u32(g.weights, c + 12) + 1))),
       ('embedding dim 0', sto_seal(sto_put32(g.weights, c + 16, 0))),
       ('hidden size 16385', sto_seal(sto_put32(g.weights, c + 20, 16385))),
       ('hidden size 5', sto_seal(sto_put32(g.weights, c + 20, 5))),
       ('layers 0', sto_seal(sto_put32(g.weights, c + 24, 0))),
       ('layers 17', sto_seal(sto_put32(g.weights, c + 24, 17))),
       ('parameters + 1', sto_seal(sto_put32(g.weights, c + 28, sto_u32(g.weights, c + 28) + 1))),
       ('parameters + 2^32', sto_seal(sto_put32(g.weights, c + 32, 1))),
       ('text rules 2', sto_seal(sto_put32(g.weights, t, 2))),
       ('normalize 3', sto_seal(sto_put32(g.weights, t + 4, 3))),
       ('text flags 4', sto_seal(sto_put32(g.weights, t + 8, 4))),
       ('filters past the end', sto_seal(sto_put32(g.weights, t + 12, 100))),
       ('entry 0 empty', sto_seal(sto_put32(g.weights, v, 0))),
       ('entry 0 too long', sto_seal(sto_put32(g.weights, v, 1025))),
       ('entry 0 past the end', sto_seal(sto_put32(g.weights, v, 100000))),
       ('entry 0 not <eod>', sto_seal(overlay(g.weights PLACING '<EOD>' FROM v + 5 FOR 5))),
       ('entry 1 invalid UTF-8', sto_seal(overlay(g.weights PLACING '\xff' FROM v + 14 FOR 1))),
       ('last parameter NaN', sto_seal(overlay(g.weights PLACING '\x0000c07f' FROM length(g.weights) - 7 FOR 4))),
       ('last parameter infinite', sto_seal(overlay(g.weights PLACING '\x000080ff' FROM length(g.weights) - 7 FOR 4))),
       ('trailing byte', sto_seal(g.weights || '\x00'::bytea)),
       ('missing parameter', sto_seal(overlay(g.weights PLACING '' FROM length(g.weights) - 7 FOR 4))),
       ('header only', sto_seal(substring(g.weights FROM 1 FOR 16) || '\x00000000'::bytea)),
       ('19 bytes', substring(g.weights FROM 1 FOR 19))
       ) AS m(label, blob);

-- two equal vocabulary entries ("pears" made "green"), named in the message
SELECT sto_try(sto_seal(overlay(g.weights PLACING 'green'::bytea
                                FROM position('pears'::bytea IN g.weights) FOR 5))) AS duplicate_refused
  FROM sto_good g;

-- many single-byte changes, each with a valid checksum: every one either
-- loads (a parameter still finite) or fails cleanly with XX001
SELECT count(*) AS variants,
       count(*) FILTER (WHERE r = 'ok') > 0 AS some_load,
       count(*) FILTER (WHERE r LIKE 'XX001:%') > 0 AS some_fail,
       bool_and(r = 'ok' OR r LIKE 'XX001:%') AS all_clean
  FROM sto_good g, generate_series(0, length(g.weights) - 5, 3) AS pos,
       LATERAL (SELECT sto_try(sto_seal(set_byte(g.weights, pos, get_byte(g.weights, pos) # (1 + pos % 255)))) AS r) AS x;
SELECT 1 AS still_alive;

-- good weights again: the model works; a damaged model can be dropped or
-- replaced
SELECT sto_try(weights) AS restored FROM sto_good;
SELECT rnnlm_perplexity('sto_bad', 'red apples') > 1 AS works;
UPDATE rnnlm.model SET weights = '', revision = nextval('rnnlm.model_revision_seq') WHERE name = 'sto_bad';
SELECT rnnlm_train('sto_bad', 'SELECT body FROM sto_docs', sto_opts('{"replace": true}'))->>'model' AS replaced;
SELECT rnnlm_perplexity('sto_bad', 'red apples') > 1 AS works;
UPDATE rnnlm.model SET weights = '', revision = nextval('rnnlm.model_revision_seq') WHERE name = 'sto_bad';
SELECT rnnlm_drop('sto_bad');

-- a direct UPDATE of the weights gives the row a new revision (a trigger), so
-- a session that has the model cached reads the damage at its next statement,
-- as a new session does
SELECT rnnlm_perplexity('sto_a', 'red apples') AS sto_a_before \gset
UPDATE rnnlm.model SET weights = substring(weights FROM 1 FOR 100) WHERE name = 'sto_a';
SELECT rnnlm_perplexity('sto_a', 'red apples') = :sto_a_before AS still_the_cached_model;
\c -
SET client_min_messages = warning;
SELECT rnnlm_perplexity('sto_a', 'red apples');
SELECT rnnlm_drop('sto_a');

--
-- the per-session cache follows replacements and drops
--
SELECT rnnlm_train('sto_c', 'SELECT body FROM sto_docs', sto_opts())->>'model' AS model;
SELECT rnnlm_perplexity('sto_c', 'green pears are hard') AS ppl1 \gset
SELECT revision AS v1 FROM rnnlm.model WHERE name = 'sto_c' \gset
SELECT rnnlm_train('sto_c', 'SELECT body FROM sto_docs',
                   sto_opts('{"cell": "gru", "seed": 2, "replace": true}'))->>'cell' AS cell;
-- the next statement uses the new model, which has a new revision
SELECT rnnlm_perplexity('sto_c', 'green pears are hard') <> :ppl1 AS changed,
       (SELECT revision FROM rnnlm.model WHERE name = 'sto_c') > :v1 AS new_revision,
       (SELECT cell FROM rnnlm.models WHERE name = 'sto_c') AS cell;
-- replacing back with the first settings gives the first model again
SELECT rnnlm_train('sto_c', 'SELECT body FROM sto_docs', sto_opts('{"replace": true}'))->>'cell' AS cell;
SELECT rnnlm_perplexity('sto_c', 'green pears are hard') = :ppl1 AS same_as_first;
-- dropped: gone for the next statement
SELECT rnnlm_drop('sto_c');
SELECT rnnlm_perplexity('sto_c', 'green pears are hard');
SELECT rnnlm_generate('sto_c', 'green');

-- a PL/pgSQL simple expression lives for the whole block, yet the same
-- expression evaluated again after a replacement uses the new model, and
-- after a drop raises "does not exist"
SELECT rnnlm_train('sto_c', 'SELECT body FROM sto_docs', sto_opts())->>'model' AS model;
DO $$
DECLARE
    p float8[] := '{}';
BEGIN
    FOR i IN 1 .. 3 LOOP
        p := p || rnnlm_perplexity('sto_c', 'green pears are hard');
        IF i = 1 THEN
            PERFORM rnnlm_train('sto_c', 'SELECT body FROM sto_docs',
                                sto_opts('{"cell": "gru", "seed": 2, "replace": true}'));
        ELSIF i = 2 THEN
            RAISE WARNING 'after the replacement, the same perplexity: %', p[2] = p[1];
            PERFORM rnnlm_drop('sto_c');
        END IF;
    END LOOP;
    RAISE WARNING 'after the drop, the same perplexity: %', p[3] = p[1];
END
$$;
SELECT rnnlm_drop('sto_c', if_exists => true);

-- the same training call with the same seed gives the same model
SELECT rnnlm_train('sto_s1', 'SELECT body FROM sto_docs ORDER BY id', sto_opts('{"cell": "lstm", "seed": 7}'))->>'model' AS model;
SELECT rnnlm_train('sto_s2', 'SELECT body FROM sto_docs ORDER BY id', sto_opts('{"cell": "lstm", "seed": 7}'))->>'model' AS model;
SELECT rnnlm_train('sto_s3', 'SELECT body FROM sto_docs ORDER BY id', sto_opts('{"cell": "lstm", "seed": 8}'))->>'model' AS model;
SELECT rnnlm_perplexity('sto_s1', 'ripe plums are soft') = rnnlm_perplexity('sto_s2', 'ripe plums are soft') AS same_seed_same_perplexity,
       (SELECT weights FROM rnnlm.model WHERE name = 'sto_s1') = (SELECT weights FROM rnnlm.model WHERE name = 'sto_s2') AS same_weights,
       rnnlm_perplexity('sto_s1', 'ripe plums are soft') <> rnnlm_perplexity('sto_s3', 'ripe plums are soft') AS other_seed_differs;
SELECT (SELECT train_loss FROM rnnlm.models WHERE name = 'sto_s1') = (SELECT train_loss FROM rnnlm.models WHERE name = 'sto_s2') AS same_train_loss,
       (SELECT val_loss FROM rnnlm.models WHERE name = 'sto_s1') = (SELECT val_loss FROM rnnlm.models WHERE name = 'sto_s2') AS same_val_loss;
-- ... and in a parallel worker, the same scores
SET force_parallel_mode = regress;
SELECT rnnlm_perplexity('sto_s1', 'ripe plums are soft') = rnnlm_perplexity('sto_s2', 'ripe plums are soft') AS parallel_same;
SELECT count(*) FROM rnnlm_token_logprobs('sto_s1', 'ripe plums are soft');
RESET force_parallel_mode;
SELECT rnnlm_drop('sto_s1'), rnnlm_drop('sto_s2'), rnnlm_drop('sto_s3');

--
-- transactions: the model row is written in the caller's transaction
--
BEGIN;
SELECT rnnlm_train('sto_tx', 'SELECT body FROM sto_docs', sto_opts())->>'model' AS model;
SELECT rnnlm_perplexity('sto_tx', 'red apples') > 1 AS usable_inside;
ROLLBACK;
SELECT count(*) FROM rnnlm.models WHERE name = 'sto_tx';
SELECT rnnlm_perplexity('sto_tx', 'red apples');
-- a replacement rolled back: the old model is back, in this session too
SELECT rnnlm_train('sto_tx', 'SELECT body FROM sto_docs', sto_opts())->>'model' AS model;
SELECT rnnlm_perplexity('sto_tx', 'red apples') AS tx1 \gset
BEGIN;
SELECT rnnlm_train('sto_tx', 'SELECT body FROM sto_docs', sto_opts('{"seed": 99, "replace": true}'))->>'model' AS model;
SELECT rnnlm_perplexity('sto_tx', 'red apples') <> :tx1 AS replaced_inside;
ROLLBACK;
SELECT rnnlm_perplexity('sto_tx', 'red apples') = :tx1 AS original_again;
-- a drop rolled back to a savepoint
BEGIN;
SAVEPOINT s;
SELECT rnnlm_drop('sto_tx');
SELECT rnnlm_perplexity('sto_tx', 'red apples');
ROLLBACK TO SAVEPOINT s;
SELECT rnnlm_perplexity('sto_tx', 'red apples') = :tx1 AS back;
COMMIT;
-- a read-only transaction can score but not store (rnnlm_train finds out
-- only after training) or drop
BEGIN READ ONLY;
SELECT rnnlm_perplexity('sto_tx', 'red apples') = :tx1 AS scores_read_only;
SELECT rnnlm_train('sto_ro', 'SELECT body FROM sto_docs', sto_opts());
ROLLBACK;
BEGIN READ ONLY;
SELECT rnnlm_drop('sto_tx');
ROLLBACK;
-- a cancelled training (here by statement_timeout) stores nothing
SET statement_timeout = '50ms';
SELECT rnnlm_train('sto_slow', 'SELECT body FROM sto_docs',
                   '{"hidden_size": 256, "embedding_dim": 64, "epochs": 100000}');
RESET statement_timeout;
SELECT count(*) FROM rnnlm.models WHERE name IN ('sto_ro', 'sto_slow');
-- a failed training leaves the existing model alone
SELECT rnnlm_train('sto_tx', 'SELECT body FROM sto_docs WHERE false', sto_opts('{"replace": true}'));
SELECT rnnlm_perplexity('sto_tx', 'red apples') = :tx1 AS untouched;
SELECT rnnlm_drop('sto_tx');

--
-- rnnlm.threads
--
SHOW rnnlm.threads;
SET rnnlm.threads = 2;
SHOW rnnlm.threads;
SELECT rnnlm_train('sto_threads', 'SELECT body FROM sto_docs', sto_opts('{"cell": "lstm", "hidden_size": 32}'))->>'model' AS model;
SELECT rnnlm_perplexity('sto_threads', 'red apples') > 1 AS scores,
       rnnlm_generate('sto_threads', 'red', 5, 0) = rnnlm_generate('sto_threads', 'red', 5, 0) AS greedy_repeats;
SELECT rnnlm_drop('sto_threads');
SET rnnlm.threads = 0;
SET rnnlm.threads = 65;
SET rnnlm.threads = 'many';
SHOW rnnlm.threads;
RESET rnnlm.threads;
SHOW rnnlm.threads;
SELECT name, setting, min_val, max_val, context, vartype
  FROM pg_settings WHERE name LIKE 'rnnlm.%';
-- the prefix is reserved
SET rnnlm.no_such_setting = 1;

--
-- roles: each role sees and uses only the models of roles it belongs to
--
CREATE ROLE regress_rnnlm_alice;
CREATE ROLE regress_rnnlm_bob;
SET ROLE regress_rnnlm_alice;
SELECT rnnlm_train('sto_alice', 'SELECT body FROM sto_docs', sto_opts())->>'model' AS model;
SELECT name, owner = current_user::regrole AS mine FROM rnnlm.models;
SET ROLE regress_rnnlm_bob;
SELECT count(*) AS visible FROM rnnlm.models;
SELECT rnnlm_perplexity('sto_alice', 'red apples');
SELECT rnnlm_generate('sto_alice', 'red');
SELECT rnnlm_drop('sto_alice');
WITH u AS (UPDATE rnnlm.model SET weights = '' WHERE name = 'sto_alice' RETURNING 1)
SELECT count(*) AS changed FROM u;
WITH d AS (DELETE FROM rnnlm.model WHERE name = 'sto_alice' RETURNING 1)
SELECT count(*) AS deleted FROM d;
-- names are unique across roles: bob cannot take alice's name, though the
-- errors only show it once the training is done (and the first one
-- blames another session)
SELECT rnnlm_train('sto_alice', 'SELECT body FROM sto_docs', sto_opts());
SELECT rnnlm_train('sto_alice', 'SELECT body FROM sto_docs', sto_opts('{"replace": true}'));
SELECT rnnlm_train('sto_bob', 'SELECT body FROM sto_docs', sto_opts())->>'model' AS model;
SELECT name, owner = current_user::regrole AS mine FROM rnnlm.models;
RESET ROLE;
-- a member of alice's role uses her models
GRANT regress_rnnlm_alice TO regress_rnnlm_bob;
SET ROLE regress_rnnlm_bob;
SELECT name FROM rnnlm.models ORDER BY name;
SELECT rnnlm_perplexity('sto_alice', 'red apples') > 1 AS scores;
RESET ROLE;
-- the superuser sees everything
SELECT name, owner = 'regress_rnnlm_alice'::regrole AS alice, owner = 'regress_rnnlm_bob'::regrole AS bob
  FROM rnnlm.models ORDER BY name;
REVOKE regress_rnnlm_alice FROM regress_rnnlm_bob;
SELECT rnnlm_drop('sto_alice'), rnnlm_drop('sto_bob');
DROP ROLE regress_rnnlm_alice;
DROP ROLE regress_rnnlm_bob;

SELECT count(*) FROM rnnlm.models;
DROP FUNCTION sto_try(bytea), sto_put32(bytea, int, bigint), sto_seal(bytea), sto_crc32(bytea),
              sto_le32(bigint), sto_u32(bytea, int), sto_opts(jsonb);
DROP TABLE sto_docs, sto_good, sto_crc_table;
