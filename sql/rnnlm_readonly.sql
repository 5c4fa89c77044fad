--
-- rnnlm_readonly: training and evaluation queries only read.  Each must be
-- one SELECT, VALUES or WITH ... SELECT without data-modifying parts, checked
-- before anything runs (0A000), and it runs with the transaction read-only,
-- so that a function it calls cannot write either (25006).  After every
-- refusal the table still has all its rows.
--
SET client_min_messages = warning;
-- errors raised inside the query's functions do not need their context
\set SHOW_CONTEXT never

CREATE TABLE ro_docs (id int, body text);
INSERT INTO ro_docs
SELECT i, (ARRAY['red apples are sweet', 'green pears are hard', 'ripe plums are soft'])[1 + i % 3]
  FROM generate_series(1, 6) AS i;
CREATE VIEW ro_bodies AS SELECT body FROM ro_docs;
-- a volatile function that deletes every row, called from inside a SELECT
CREATE FUNCTION ro_wipe() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    DELETE FROM ro_docs;
    RETURN 'wiped';
END
$$;
-- the SQLSTATE of a statement, or 'no error'
CREATE FUNCTION ro_state(q text) RETURNS text LANGUAGE plpgsql AS $$
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

--
-- rnnlm_train
--
-- DML with RETURNING returns rows, but is refused before it runs
SELECT rnnlm_train('ro_t', 'DELETE FROM ro_docs RETURNING body');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_train('ro_t', $$INSERT INTO ro_docs VALUES (7, 'new') RETURNING body$$);
SELECT count(*) FROM ro_docs;
SELECT rnnlm_train('ro_t', $$UPDATE ro_docs SET body = 'changed' RETURNING body$$);
SELECT count(*), count(*) FILTER (WHERE body = 'changed') AS changed FROM ro_docs;
SELECT rnnlm_train('ro_t', 'EXPLAIN ANALYZE DELETE FROM ro_docs');
SELECT count(*) FROM ro_docs;
-- DDL
SELECT rnnlm_train('ro_t', 'CREATE TABLE ro_never (body text)');
SELECT to_regclass('ro_never') IS NULL AS not_created;
SELECT rnnlm_train('ro_t', 'DROP TABLE ro_docs');
SELECT count(*) FROM ro_docs;
-- several statements, even when the first is a SELECT
SELECT rnnlm_train('ro_t', 'SELECT body FROM ro_docs; DELETE FROM ro_docs');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_train('ro_t', 'SELECT body FROM ro_docs; SELECT body FROM ro_docs');
-- a data-modifying WITH clause
SELECT rnnlm_train('ro_t', 'WITH d AS (DELETE FROM ro_docs RETURNING body) SELECT body FROM d');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_train('ro_t', $$WITH i AS (INSERT INTO ro_docs VALUES (8, 'x') RETURNING body) SELECT body FROM ro_docs$$);
SELECT count(*) FROM ro_docs;
-- SELECT INTO creates a table
SELECT rnnlm_train('ro_t', 'SELECT body INTO ro_copy FROM ro_docs');
SELECT to_regclass('ro_copy') IS NULL AS not_created;
-- row locks, at the top or in a subquery
SELECT rnnlm_train('ro_t', 'SELECT body FROM ro_docs FOR UPDATE');
SELECT rnnlm_train('ro_t', 'SELECT body FROM (SELECT body FROM ro_docs FOR SHARE) AS s');
SELECT rnnlm_train('ro_t', 'SELECT (SELECT body FROM ro_docs LIMIT 1 FOR NO KEY UPDATE)');
SELECT rnnlm_train('ro_t', 'SELECT body FROM ro_docs UNION ALL (SELECT body FROM ro_docs FOR KEY SHARE)');
SELECT count(*) FROM ro_docs;
-- a function that writes, called by a SELECT: the transaction is read-only
SELECT rnnlm_train('ro_t', 'SELECT ro_wipe()');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_train('ro_t', 'SELECT body || ro_wipe() FROM ro_docs');
SELECT count(*) FROM ro_docs;
-- nothing to run
SELECT rnnlm_train('ro_t', '');
SELECT rnnlm_train('ro_t', '  -- only a comment');
SELECT rnnlm_train('ro_t', '/* a comment */ ;');
-- a syntax error is still reported as one
SELECT rnnlm_train('ro_t', 'DELETE ro_docs');
SELECT count(*) FROM ro_docs;
SELECT count(*) AS models FROM rnnlm.models WHERE name = 'ro_t';

-- what is allowed: SELECT, VALUES, WITH ... SELECT, set operations, TABLE,
-- subqueries, a trailing semicolon and comments
SELECT q, (rnnlm_train('ro_ok', q, '{"epochs": 1, "hidden_size": 8, "embedding_dim": 4, "num_layers": 1,
                                     "tokenizer": "char", "replace": true}')->>'documents')::int AS documents
  FROM (VALUES ('SELECT body FROM ro_docs'),
               ($$VALUES ('a b c'), ('d e')$$),
               ('WITH w AS (SELECT body FROM ro_docs WHERE id > 2) SELECT body FROM w'),
               ('WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT repeat(''ab'', n) FROM r'),
               ($$SELECT body FROM ro_docs UNION SELECT 'plain text'$$),
               ('SELECT body FROM ro_docs EXCEPT SELECT body FROM ro_docs WHERE id = 1'),
               ('TABLE ro_bodies'),
               ('SELECT b FROM (SELECT upper(body) AS b FROM ro_docs) AS s WHERE b IN (SELECT upper(body) FROM ro_docs)'),
               ('(SELECT body FROM ro_docs ORDER BY id LIMIT 2)'),
               ('SELECT body FROM ro_docs; -- with a comment')) AS v(q);
SELECT count(*) FROM ro_docs;

--
-- rnnlm_evaluate: the same checks on its query
--
SELECT rnnlm_train('ro_m', 'SELECT body FROM ro_docs',
                   '{"epochs": 1, "hidden_size": 8, "embedding_dim": 4, "num_layers": 1,
                     "tokenizer": "char"}')->>'documents' AS documents;
SELECT rnnlm_evaluate('ro_m', 'DELETE FROM ro_docs RETURNING body');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_evaluate('ro_m', $$INSERT INTO ro_docs VALUES (7, 'new') RETURNING body$$);
SELECT count(*) FROM ro_docs;
SELECT rnnlm_evaluate('ro_m', $$UPDATE ro_docs SET body = 'changed' RETURNING body$$);
SELECT count(*), count(*) FILTER (WHERE body = 'changed') AS changed FROM ro_docs;
SELECT rnnlm_evaluate('ro_m', 'CREATE TABLE ro_never (body text)');
SELECT to_regclass('ro_never') IS NULL AS not_created;
SELECT rnnlm_evaluate('ro_m', 'DROP TABLE ro_docs');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_evaluate('ro_m', 'SELECT body FROM ro_docs; DELETE FROM ro_docs');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_evaluate('ro_m', 'WITH d AS (DELETE FROM ro_docs RETURNING body) SELECT body FROM d');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_evaluate('ro_m', 'SELECT body INTO ro_copy FROM ro_docs');
SELECT to_regclass('ro_copy') IS NULL AS not_created;
SELECT rnnlm_evaluate('ro_m', 'SELECT body FROM ro_docs FOR UPDATE');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_evaluate('ro_m', 'SELECT body || ro_wipe() FROM ro_docs');
SELECT count(*) FROM ro_docs;
SELECT rnnlm_evaluate('ro_m', '');
SELECT rnnlm_evaluate('ro_m', '-- only a comment');
SELECT count(*) FROM ro_docs;
-- what is allowed
SELECT q, rnnlm_evaluate('ro_m', q)->'documents' AS documents, rnnlm_evaluate('ro_m', q)->'tokens' AS tokens
  FROM (VALUES ('SELECT body FROM ro_docs'),
               ($$VALUES ('a b c'), ('d e')$$),
               ('WITH w AS (SELECT body FROM ro_docs WHERE id > 2) SELECT body FROM w'),
               ($$SELECT body FROM ro_docs UNION SELECT 'plain text'$$)) AS v(q);

--
-- the transaction is read-only only while the query runs
--
-- after an error caught by an exception block, the transaction can write again
BEGIN;
SELECT ro_state($$SELECT rnnlm_evaluate('ro_m', 'SELECT ro_wipe()')$$) AS sqlstate;
SHOW transaction_read_only;
INSERT INTO ro_docs VALUES (9, 'written after the error');
SELECT count(*) FROM ro_docs;
ROLLBACK;
-- after a successful call too
BEGIN;
SELECT rnnlm_evaluate('ro_m', 'SELECT body FROM ro_docs')->'documents' AS documents;
SHOW transaction_read_only;
INSERT INTO ro_docs VALUES (9, 'written after the call');
SELECT count(*) FROM ro_docs;
ROLLBACK;
-- and a read-only transaction stays read-only
BEGIN READ ONLY;
SELECT rnnlm_evaluate('ro_m', 'SELECT body FROM ro_docs')->'documents' AS documents;
SHOW transaction_read_only;
ROLLBACK;
-- a function that only reads may be called
CREATE FUNCTION ro_shout(t text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN upper(t) || ' (' || (SELECT count(*) FROM ro_docs) || ')';
END
$$;
SELECT rnnlm_evaluate('ro_m', 'SELECT ro_shout(body) FROM ro_docs')->'documents' AS documents;
-- as in any read-only transaction, a temporary table may be written while
-- the query runs; but what a read-only transaction still allows is undone
-- once the rows are read (the query runs in a subtransaction rolled back
-- then), so the rows it wrote are gone
CREATE TEMP TABLE ro_log (body text);
CREATE FUNCTION ro_note(t text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO ro_log VALUES (t);
    RETURN t;
END
$$;
SELECT rnnlm_evaluate('ro_m', 'SELECT ro_note(body) FROM ro_docs')->'documents' AS documents;
SELECT count(*) FROM ro_log;
-- a large object unlinked by a function the query calls (PostgreSQL 15 does
-- not guard large objects in a read-only transaction) is still there
SELECT lo_create(0) AS ro_lo \gset
CREATE FUNCTION ro_unlink(t text, lo oid) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM lo_unlink(lo) FROM pg_largeobject_metadata m WHERE m.oid = lo;
    RETURN t;
END
$$;
SELECT rnnlm_evaluate('ro_m', format('SELECT ro_unlink(body, %s) FROM ro_docs', :ro_lo))->'documents' AS documents;
SELECT rnnlm_train('ro_lo_model', format('SELECT ro_unlink(body, %s) FROM ro_docs', :ro_lo),
                   '{"tokenizer": "char", "epochs": 1, "hidden_size": 4, "embedding_dim": 4, "num_layers": 1}')->'documents' AS documents;
SELECT count(*) AS large_object_kept FROM pg_largeobject_metadata WHERE oid = :ro_lo;
SELECT lo_unlink(:ro_lo);
SELECT rnnlm_drop('ro_lo_model');
-- and a deferred constraint trigger that a write to a temporary table
-- queued never fires at commit
CREATE TEMP TABLE ro_deferred (body text);
CREATE FUNCTION ro_fire() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the deferred trigger fired for %', NEW.body;
END
$$;
CREATE CONSTRAINT TRIGGER ro_at_commit AFTER INSERT ON ro_deferred
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ro_fire();
CREATE FUNCTION ro_defer(t text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO ro_deferred VALUES (t);
    RETURN t;
END
$$;
BEGIN;
SELECT rnnlm_evaluate('ro_m', 'SELECT ro_defer(body) FROM ro_docs')->'documents' AS documents;
COMMIT;
SELECT count(*) AS deferred_rows FROM ro_deferred;

--
-- the SQLSTATEs, for programs that catch them
--
SELECT f, q, ro_state(format('SELECT %s(%L, %L)', f, CASE f WHEN 'rnnlm_train' THEN 'ro_t' ELSE 'ro_m' END, q)) AS sqlstate
  FROM (VALUES (1, 'rnnlm_train'), (2, 'rnnlm_evaluate')) AS fs(i, f),
       (VALUES (1, 'DELETE FROM ro_docs RETURNING body'),
               (2, 'CREATE TABLE ro_never (body text)'),
               (3, 'SELECT body FROM ro_docs; DELETE FROM ro_docs'),
               (4, 'WITH d AS (DELETE FROM ro_docs RETURNING body) SELECT body FROM d'),
               (5, 'SELECT body INTO ro_copy FROM ro_docs'),
               (6, 'SELECT body FROM ro_docs FOR UPDATE'),
               (7, ''),
               (8, 'SELECT body || ro_wipe() FROM ro_docs')) AS qs(j, q)
 ORDER BY i, j;
SELECT count(*) FROM ro_docs;

SELECT rnnlm_drop('ro_ok');
SELECT rnnlm_drop('ro_m');
DROP FUNCTION ro_shout(text);
DROP FUNCTION ro_note(text);
DROP TABLE ro_log;
DROP FUNCTION ro_unlink(text, oid);
DROP TABLE ro_deferred;
DROP FUNCTION ro_defer(text);
DROP FUNCTION ro_fire();
DROP FUNCTION ro_state(text);
DROP VIEW ro_bodies;
DROP TABLE ro_docs;
DROP FUNCTION ro_wipe();
