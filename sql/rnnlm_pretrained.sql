--
-- rnnlm_pretrained: embeddings_query (a model's embeddings start from the
-- vectors of a query) and freeze_embeddings (the embedding matrix is not
-- trained), checked on the bytes of the stored model (doc/format.md)
--
SET client_min_messages = warning;
CREATE TABLE pre_docs AS
SELECT 'the ' || (ARRAY['cat', 'dog', 'hen'])[1 + i % 3] || ' sat on the mat ' || (i % 5) AS body
  FROM generate_series(1, 60) AS i;
CREATE TABLE pre_vecs (token text, vec real[]);
INSERT INTO pre_vecs VALUES
    ('cat', '{1, 2, 3, 4}'), ('mat', '{-1, 0.5, 0.25, 8}'), ('the', '{0, 0, 0, 1.5}'),
    ('zebra', '{7, 7, 7, 7}'),             -- not in the vocabulary: ignored
    ('cat', '{5, 5, 5, 5}'),               -- a token found twice keeps its first vector
    (NULL, '{1, 1, 1, 1}'), ('sat', NULL);  -- NULLs are skipped
CREATE FUNCTION pre_opts(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"hidden_size": 8, "num_layers": 1, "batch_size": 4, "seq_len": 8,
             "learning_rate": 0.05, "seed": 3, "validation_fraction": 0}'::jsonb || extra
$$;
-- the payload offset of a section of a model file (format version 2), and a
-- real as the 4 little-endian bytes the file holds
CREATE FUNCTION pre_u32(b bytea, off int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT get_byte(b, off)::bigint | (get_byte(b, off + 1)::bigint << 8)
         | (get_byte(b, off + 2)::bigint << 16) | (get_byte(b, off + 3)::bigint << 24)
$$;
CREATE FUNCTION pre_section(b bytea, tag text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    pos int := 16;
BEGIN
    FOR i IN 1 .. pre_u32(b, 12) LOOP
        IF substring(b FROM pos + 1 FOR 4) = convert_to(tag, 'UTF8') THEN
            RETURN pos + 12;
        END IF;
        pos := pos + 12 + pre_u32(b, pos + 4);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE FUNCTION pre_le(x real) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT set_byte(set_byte(set_byte(set_byte('\x00000000'::bytea,
               0, get_byte(b, 3)), 1, get_byte(b, 2)), 2, get_byte(b, 1)), 3, get_byte(b, 0))
      FROM (SELECT float4send(x) AS b) AS s
$$;
-- the embedding matrix of a model, and the row of one token
CREATE FUNCTION pre_emb(m_name text) RETURNS bytea LANGUAGE sql AS $$
    SELECT substring(weights FROM pre_section(weights, 'PARM') + 1 FOR 4 * vocab_size * embedding_dim)
      FROM rnnlm.model WHERE name = m_name
$$;
CREATE FUNCTION pre_row(m_name text, token text) RETURNS bytea LANGUAGE sql AS $$
    SELECT substring(pre_emb(m_name) FROM 1 + 4 * m.embedding_dim * t.token_id FOR 4 * m.embedding_dim)
      FROM rnnlm.models m, rnnlm_token_logprobs(m_name, token) AS t
     WHERE m.name = m_name AND t.position = 1
$$;
CREATE FUNCTION pre_bytes(v real[]) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(pre_le(x), ''::bytea ORDER BY i) FROM unnest(v) WITH ORDINALITY AS u(x, i)
$$;

-- frozen, one epoch and three: the embedding size comes from the vectors;
-- the tokens found start from their vectors and keep them, bit for bit
SELECT rnnlm_train('pre_f1', 'SELECT body FROM pre_docs',
                   pre_opts('{"epochs": 1, "freeze_embeddings": true,
                              "embeddings_query": "SELECT token, vec FROM pre_vecs"}'))->>'pretrained_tokens'
       AS pretrained_tokens;
SELECT embedding_dim FROM rnnlm.models WHERE name = 'pre_f1';
SELECT rnnlm_train('pre_f3', 'SELECT body FROM pre_docs',
                   pre_opts('{"epochs": 3, "freeze_embeddings": true,
                              "embeddings_query": "SELECT token, vec FROM pre_vecs"}'))->>'model' AS model;
SELECT t, pre_row('pre_f3', t) = pre_bytes(v) AS starts_from_its_vector
  FROM (VALUES ('cat', '{1, 2, 3, 4}'::real[]), ('mat', '{-1, 0.5, 0.25, 8}'), ('the', '{0, 0, 0, 1.5}')) AS c(t, v);
SELECT pre_emb('pre_f1') = pre_emb('pre_f3') AS whole_matrix_unchanged_by_training,
       (SELECT weights FROM rnnlm.model WHERE name = 'pre_f1')
         <> (SELECT weights FROM rnnlm.model WHERE name = 'pre_f3') AS other_weights_trained,
       (SELECT train_loss FROM rnnlm.models WHERE name = 'pre_f3')
         < (SELECT train_loss FROM rnnlm.models WHERE name = 'pre_f1') AS still_learns;
-- not frozen: the vectors are only where training starts
SELECT rnnlm_train('pre_u1', 'SELECT body FROM pre_docs',
                   pre_opts('{"epochs": 1, "embeddings_query": "SELECT token, vec FROM pre_vecs"}'))->>'model' AS model;
SELECT rnnlm_train('pre_u3', 'SELECT body FROM pre_docs',
                   pre_opts('{"epochs": 3, "embeddings_query": "SELECT token, vec FROM pre_vecs"}'))->>'model' AS model;
SELECT pre_emb('pre_u1') <> pre_emb('pre_u3') AS matrix_trained,
       pre_row('pre_u3', 'cat') <> pre_bytes('{1, 2, 3, 4}') AS cat_moved;
-- freeze_embeddings without a query keeps the random start
SELECT rnnlm_train('pre_r1', 'SELECT body FROM pre_docs',
                   pre_opts('{"epochs": 1, "embedding_dim": 4, "freeze_embeddings": true}'))->>'model' AS model;
SELECT rnnlm_train('pre_r3', 'SELECT body FROM pre_docs',
                   pre_opts('{"epochs": 3, "embedding_dim": 4, "freeze_embeddings": true}'))->>'model' AS model;
SELECT pre_emb('pre_r1') = pre_emb('pre_r3') AS random_start_kept;
-- the options say that there was an embeddings_query; the query itself is
-- kept with the training query, for the owner
SELECT m.options->'freeze_embeddings' AS freeze, m.options->'embeddings_query' AS query,
       v.embeddings_query AS kept
  FROM rnnlm.models m JOIN rnnlm.model_versions v USING (name) WHERE name = 'pre_f1';
-- double precision[] vectors, and embedding_dim given equal to them
SELECT rnnlm_train('pre_d', 'SELECT body FROM pre_docs',
                   pre_opts('{"epochs": 1, "embedding_dim": 4,
                              "embeddings_query": "SELECT token, vec::float8[] FROM pre_vecs"}'))->>'pretrained_tokens' AS found;

-- errors
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs',
                   pre_opts('{"embedding_dim": 8, "embeddings_query": "SELECT token, vec FROM pre_vecs"}'));
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs',
                   pre_opts($${"embeddings_query": "SELECT * FROM (VALUES ('cat', '{1,2}'::real[]), ('mat', '{1,2,3}')) v"}$$));
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs',
                   pre_opts('{"embeddings_query": "SELECT token FROM pre_vecs"}'));
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs',
                   pre_opts('{"embeddings_query": "SELECT token, 5 FROM pre_vecs"}'));
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs',
                   pre_opts('{"embeddings_query": "SELECT token, vec FROM pre_vecs WHERE false"}'));
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs',
                   pre_opts($${"embeddings_query": "SELECT 'cat', '{1,NaN}'::real[]"}$$));
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs',
                   pre_opts('{"embeddings_query": "DELETE FROM pre_vecs RETURNING token, vec"}'));
SELECT count(*) AS vectors_kept FROM pre_vecs;
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs',
                   pre_opts('{"init_from": "pre_f1", "embeddings_query": "SELECT token, vec FROM pre_vecs"}'));
SELECT rnnlm_train('pre_err', 'SELECT body FROM pre_docs', pre_opts('{"freeze_embeddings": 1}'));
-- fine-tuning may freeze the parent's embeddings
SELECT rnnlm_train('pre_ft', 'SELECT body FROM pre_docs',
                   '{"init_from": "pre_u1", "epochs": 1, "freeze_embeddings": true, "validation_fraction": 0}')->>'model' AS model;
SELECT pre_emb('pre_ft') = pre_emb('pre_u1') AS parent_embeddings_kept;

SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'pre\_%' ORDER BY name;
DROP FUNCTION pre_opts(jsonb), pre_u32(bytea, int), pre_section(bytea, text), pre_le(real),
              pre_emb(text), pre_row(text, text), pre_bytes(real[]);
DROP TABLE pre_docs, pre_vecs;
