/* rnnlm--0.2--0.3.sql: rnnlm's tables written only by its functions,
 * version numbers never reused, job liveness no role can take, jobs that
 * wait for a slot. */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION rnnlm UPDATE TO '0.3'" to load this file. \quit

-- No role but the extension's owner writes rnnlm's tables: every change a
-- user may make goes through rnnlm's functions, which check ownership and
-- grants and switch to the owner only around their own statements
-- (src/pg/privilege.c).  Reading stays as it was, under row-level
-- security; with SELECT alone a role can take no lock stronger than ACCESS
-- SHARE on them, which blocks nobody's use.  The sequences keep SELECT for
-- pg_dump.
REVOKE INSERT, UPDATE, DELETE ON rnnlm.model, rnnlm.model_version, rnnlm.job FROM PUBLIC;
REVOKE USAGE ON SEQUENCE rnnlm.model_revision_seq, rnnlm.job_id_seq FROM PUBLIC;

-- The last version number used under each name.  It never goes back: a
-- dropped version, or a model dropped and trained again, leaves its numbers
-- used for good, so name@N always names the same weights.  Only the
-- extension's owner reads or writes it.
CREATE TABLE rnnlm.version_counter (
    name            text PRIMARY KEY,
    last_version    integer NOT NULL CHECK (last_version OPERATOR(pg_catalog.>=) 1)
);
SELECT pg_catalog.pg_extension_config_dump('rnnlm.version_counter', '');
INSERT INTO rnnlm.version_counter (name, last_version)
SELECT v.name, pg_catalog.max(v.version)
  FROM (SELECT name, version FROM rnnlm.model
        UNION ALL SELECT name, version FROM rnnlm.model_version) v
 GROUP BY v.name;

-- Grants, revokes and forgetting a job are done in C, as the other writes.
DROP FUNCTION rnnlm._check_grant(text, text);

CREATE OR REPLACE FUNCTION rnnlm_grant(model_name text, role_name text)
RETURNS void
AS 'MODULE_PATHNAME', 'rnnlm_grant'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_grant(text, text) IS 'let a role (or PUBLIC) use a model';

-- role_name may also be the number that rnnlm.models.granted_to shows for
-- a grantee role that was dropped.
CREATE OR REPLACE FUNCTION rnnlm_revoke(model_name text, role_name text)
RETURNS void
AS 'MODULE_PATHNAME', 'rnnlm_revoke'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_revoke(text, text) IS
    'take back a grant of rnnlm_grant (a dropped role by the number granted_to shows)';

CREATE OR REPLACE FUNCTION rnnlm_forget(job_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rnnlm_forget'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION rnnlm_forget(bigint) IS 'remove a finished training job from rnnlm.jobs';

-- Why a queued job has not started yet (rnnlm.max_jobs_per_role, or no free
-- background worker slot); NULL once it has.
ALTER TABLE rnnlm.job ADD COLUMN wait_reason text;

-- The pid of the worker running a job, or NULL when none is.  A job's
-- worker holds a lock from the moment it starts until it exits, crash
-- included, on a tag that no SQL function can take (a "userlock": database,
-- owner, job id modulo 2^32, 1), taken in C; pg_locks shows it to every
-- role, whatever its privileges, and is never stale.
CREATE OR REPLACE FUNCTION rnnlm.job_worker(job_id bigint)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
    SELECT l.pid FROM pg_catalog.pg_locks l
     WHERE l.locktype OPERATOR(pg_catalog.=) 'userlock'
       AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                               WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
       AND l.objid OPERATOR(pg_catalog.=) (job_id OPERATOR(pg_catalog.%) 4294967296)::pg_catalog.oid
       AND l.objsubid OPERATOR(pg_catalog.=) 1
       AND l.granted
     LIMIT 1
$$;

CREATE OR REPLACE VIEW rnnlm.jobs WITH (security_barrier, security_invoker = true) AS
SELECT id, model, owner,
       CASE WHEN state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running'])
                 AND worker_pid IS NOT NULL
                 AND rnnlm.job_worker(id) IS NULL
            THEN 'interrupted' ELSE state END AS state,
       epoch, epochs, step, steps, train_loss, val_loss, tokens_per_second,
       started_at, updated_at, eta, error, summary,
       submitted_at, finished_at, checkpointed_at, resumes, worker_pid,
       training_query, options, servers, error_code, wait_reason,
       CASE WHEN state OPERATOR(pg_catalog.=) 'succeeded' THEN 1.0::double precision
            WHEN epochs OPERATOR(pg_catalog.>) 0 AND epoch OPERATOR(pg_catalog.>=) 1 THEN
                 LEAST(1.0::double precision,
                   ((epoch OPERATOR(pg_catalog.-) 1)::double precision
                    OPERATOR(pg_catalog.+) CASE WHEN steps OPERATOR(pg_catalog.>) 0
                         THEN step::double precision OPERATOR(pg_catalog./) steps ELSE 0 END)
                   OPERATOR(pg_catalog./) epochs)
            ELSE 0.0::double precision END AS fraction_done,
       CASE WHEN state OPERATOR(pg_catalog.=) 'running' AND eta IS NOT NULL
            THEN GREATEST(eta OPERATOR(pg_catalog.-) pg_catalog.now(), '0'::interval) END
         AS time_remaining
  FROM rnnlm.job;

-- Calibrated surprise: how surprising the validation rows of a training
-- were under the model it stored (each row's mean negative log-likelihood
-- per token, in nats), as 101 quantiles, from the least surprising row to
-- the most.  NULL for models without them (trained before 0.3, imported,
-- trained without validation data, or federated).  A version keeps its own.
ALTER TABLE rnnlm.model ADD COLUMN surprise double precision[];
ALTER TABLE rnnlm.model_version ADD COLUMN surprise double precision[];

CREATE FUNCTION rnnlm_surprise_percentile(model_name text, input text)
RETURNS double precision
AS 'MODULE_PATHNAME', 'rnnlm_surprise_percentile'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_surprise_percentile(text, text) IS
    'the fraction of the model''s validation rows that were less surprising than the text, in [0, 1]';

CREATE FUNCTION rnnlm_surprise_percentile(model_name text, inputs text[])
RETURNS double precision[]
AS 'MODULE_PATHNAME', 'rnnlm_surprise_percentile_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_surprise_percentile(text, text[]) IS
    'rnnlm_surprise_percentile of many texts, in order (NULL for NULL), scored as one batch';

CREATE FUNCTION rnnlm_surprise_percentile_at(model_ref text, input text)
RETURNS double precision
AS 'MODULE_PATHNAME', 'rnnlm_surprise_percentile_at'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_surprise_percentile_at(text, text) IS
    'rnnlm_surprise_percentile of a pinned model version (name@N or name@sha256:prefix), which never changes';

-- rnnlm.models says which models rnnlm_surprise_percentile can place a text for
CREATE OR REPLACE VIEW rnnlm.models WITH (security_barrier, security_invoker = true) AS
SELECT name, owner, cell, tokenizer, vocab_size, embedding_dim, hidden_size,
       num_layers, parameters,
       pg_catalog.octet_length(weights)::bigint AS size_bytes,
       train_loss, val_loss, val_perplexity, trained_tokens, created_at, options,
       ARRAY(SELECT CASE WHEN g::oid OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE g::text END
               FROM pg_catalog.unnest(grantees) AS g) AS granted_to,
       parent, version, pg_catalog.encode(sha256, 'hex') AS sha256, keep_versions,
       surprise IS NOT NULL AS calibrated
  FROM rnnlm.model;

-- Provenance: how each version was made.  What a grantee may see is in the
-- rows (the role that trained it, when, from how many rows and tokens, with
-- which rnnlm, backend and precision; the options are in options); the
-- training query, which may name tables and filters a grantee cannot read,
-- is kept apart, readable by the model's owner (and its members) only.
-- NULL for versions made before 0.3.
ALTER TABLE rnnlm.model ADD COLUMN provenance jsonb;
ALTER TABLE rnnlm.model_version ADD COLUMN provenance jsonb;

CREATE TABLE rnnlm.training_query (
    name            text NOT NULL,
    version         integer NOT NULL,
    query           text NOT NULL,
    embeddings_query text,          -- the option of that name, if given
    search_path     text,           -- when it was trained
    PRIMARY KEY (name, version)
);
ALTER TABLE rnnlm.training_query ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_query_owner ON rnnlm.training_query FOR SELECT
    USING (EXISTS (SELECT 1 FROM rnnlm.model m
                    WHERE m.name OPERATOR(pg_catalog.=) training_query.name
                      AND rnnlm.is_owner(m.owner)
                      AND (m.version OPERATOR(pg_catalog.=) training_query.version
                           OR EXISTS (SELECT 1 FROM rnnlm.model_version v
                                       WHERE v.name OPERATOR(pg_catalog.=) m.name
                                         AND v.version OPERATOR(pg_catalog.=) training_query.version))));
-- The embeddings_query option is SQL too: from 0.3 it is kept with the
-- training query, and the options that every grantee reads say only that
-- there was one; so for the models stored before.
UPDATE rnnlm.model
   SET options = options OPERATOR(pg_catalog.||) '{"embeddings_query": true}'::jsonb
 WHERE options OPERATOR(pg_catalog.?) 'embeddings_query'
   AND pg_catalog.jsonb_typeof(options OPERATOR(pg_catalog.->) 'embeddings_query') OPERATOR(pg_catalog.=) 'string';
GRANT SELECT ON rnnlm.training_query TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('rnnlm.training_query', '');
COMMENT ON TABLE rnnlm.training_query IS
    'the training query of each rnnlm model version, readable by the model''s owner only';

CREATE OR REPLACE VIEW rnnlm.model_versions WITH (security_barrier, security_invoker = true) AS
SELECT v.*, q.query AS training_query, q.embeddings_query
  FROM (SELECT name, version, pg_catalog.encode(sha256, 'hex') AS sha256, true AS current, false AS pinned,
               parameters, pg_catalog.octet_length(weights)::bigint AS size_bytes, train_loss, val_loss,
               created_at, provenance
          FROM rnnlm.model
        UNION ALL
        SELECT name, version, pg_catalog.encode(sha256, 'hex'), false, pinned,
               parameters, pg_catalog.octet_length(weights)::bigint, train_loss, val_loss,
               created_at, provenance
          FROM rnnlm.model_version) v
  LEFT JOIN rnnlm.training_query q
    ON q.name OPERATOR(pg_catalog.=) v.name AND q.version OPERATOR(pg_catalog.=) v.version;

-- Retraining as before: a new version on the stored training query of the
-- current version, with its options changed only by those given; the
-- query runs as the model's owner, whoever calls.
CREATE FUNCTION rnnlm_retrain(model_name text, options jsonb DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'rnnlm_retrain'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_retrain(text, jsonb) IS
    'trains a new version of a model on the query and options of its current version (options given override), as its owner';

CREATE FUNCTION rnnlm_retrain_async(model_name text, options jsonb DEFAULT '{}')
RETURNS bigint
AS 'MODULE_PATHNAME', 'rnnlm_retrain_async'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_retrain_async(text, jsonb) IS
    'rnnlm_retrain as a background job of the model''s owner; returns the job id';

-- A model card: what a model is, how it was made and how it scores, as
-- jsonb and as a readable report.  Plain SQL under the caller's rights: it
-- reads what the caller may read (a grantee gets no training query).
CREATE FUNCTION rnnlm.sparkline(v double precision[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
    SELECT pg_catalog.string_agg(
             CASE WHEN x IS NULL THEN ' '
                  WHEN hi OPERATOR(pg_catalog.=) lo THEN '▄'
                  ELSE pg_catalog.substr('▁▂▃▄▅▆▇█',
                         1 OPERATOR(pg_catalog.+) pg_catalog.floor((x OPERATOR(pg_catalog.-) lo)
                           OPERATOR(pg_catalog./) (hi OPERATOR(pg_catalog.-) lo)
                           OPERATOR(pg_catalog.*) 7.999)::integer, 1) END,
             '' ORDER BY i)
      FROM pg_catalog.unnest(v) WITH ORDINALITY AS u(x, i),
           (SELECT pg_catalog.min(y) AS lo, pg_catalog.max(y) AS hi FROM pg_catalog.unnest(v) AS y) AS r
$$;

CREATE FUNCTION rnnlm_describe_jsonb(model_name text) RETURNS jsonb
LANGUAGE plpgsql STRICT STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m       record;
    v       record;
    q       double precision[];
    hist    jsonb;
    vers    jsonb;
BEGIN
    SELECT * INTO m FROM rnnlm.models WHERE name OPERATOR(pg_catalog.=) model_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rnnlm model "%" does not exist', model_name
            USING ERRCODE = '42704', HINT = 'SELECT name FROM rnnlm.models lists the models you can use.';
    END IF;
    SELECT * INTO v FROM rnnlm.model_versions WHERE name OPERATOR(pg_catalog.=) model_name AND current;
    SELECT mm.surprise, (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(h) ORDER BY h.epoch), '[]')
                           FROM rnnlm.history_rows(mm.history) h)
      INTO q, hist
      FROM rnnlm.model mm WHERE mm.name OPERATOR(pg_catalog.=) model_name;
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('version', x.version, 'current', x.current,
               'pinned', x.pinned, 'created_at', x.created_at, 'val_loss', x.val_loss) ORDER BY x.version)
      INTO vers FROM rnnlm.model_versions x WHERE x.name OPERATOR(pg_catalog.=) model_name;
    RETURN pg_catalog.jsonb_build_object(
        'name', m.name, 'owner', m.owner::text, 'version', m.version, 'sha256', m.sha256,
        'cell', m.cell, 'tokenizer', m.tokenizer, 'vocab_size', m.vocab_size,
        'embedding_dim', m.embedding_dim, 'hidden_size', m.hidden_size, 'num_layers', m.num_layers,
        'parameters', m.parameters, 'size_bytes', m.size_bytes,
        'train_loss', m.train_loss, 'val_loss', m.val_loss, 'val_perplexity', m.val_perplexity,
        'created_at', m.created_at, 'options', m.options, 'parent', m.parent,
        'granted_to', pg_catalog.to_jsonb(m.granted_to), 'keep_versions', m.keep_versions,
        'provenance', v.provenance, 'training_query', v.training_query,
        'surprise_perplexity', CASE WHEN q IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object(
            'median', pg_catalog.exp(q[51]), 'p90', pg_catalog.exp(q[91]),
            'p99', pg_catalog.exp(q[100]), 'max', pg_catalog.exp(q[101])) END,
        'history', hist, 'versions', vers);
END
$$;
COMMENT ON FUNCTION rnnlm_describe_jsonb(text) IS
    'a model card of an rnnlm model, as jsonb: what it is, how it was made and how it scores';

CREATE FUNCTION rnnlm_describe(model_name text) RETURNS text
LANGUAGE plpgsql STRICT STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c   jsonb := @extschema@.rnnlm_describe_jsonb(model_name);
    p   jsonb := c OPERATOR(pg_catalog.->) 'provenance';
    s   jsonb := c OPERATOR(pg_catalog.->) 'surprise_perplexity';
    out text;
BEGIN
    out := pg_catalog.format(E'rnnlm model %s, version %s, owned by %s\n', c->>'name', c->>'version', c->>'owner')
        OPERATOR(pg_catalog.||) pg_catalog.format(E'  %s, %s layer%s of %s, embedding %s; %s tokenizer, %s tokens; %s parameters (%s)\n',
            c->>'cell', c->>'num_layers', CASE WHEN (c->>'num_layers') OPERATOR(pg_catalog.=) '1' THEN '' ELSE 's' END,
            c->>'hidden_size', c->>'embedding_dim', c->>'tokenizer', c->>'vocab_size',
            pg_catalog.to_char((c->>'parameters')::bigint, 'FM999,999,999,999'),
            pg_catalog.pg_size_pretty((c->>'size_bytes')::bigint));
    IF p ? 'trained_by' THEN
        out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'  trained by %s on %s with rnnlm %s (%s, %s)%s\n',
            p->>'trained_by', pg_catalog.left(p->>'finished_at', 16), p->>'rnnlm_version', p->>'backend', p->>'precision',
            CASE WHEN p ? 'rows' THEN pg_catalog.format(', from %s rows: %s documents, %s held out',
                                                          p->>'rows', p->>'documents', p->>'validation_documents')
                 ELSE '' END);
    ELSIF p ? 'imported_by' THEN
        out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'  imported by %s on %s\n', p->>'imported_by',
                                                             pg_catalog.left(p->>'imported_at', 16));
    END IF;
    IF c->>'parent' IS NOT NULL THEN
        out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'  fine-tuned from %s\n', c->>'parent');
    END IF;
    IF c->>'training_query' IS NOT NULL THEN
        out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'  training query: %s\n', c->>'training_query');
    END IF;
    IF c->>'train_loss' IS NOT NULL THEN
        out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'  loss (nats per token): train %s, validation %s (perplexity %s)\n',
            pg_catalog.round((c->>'train_loss')::numeric, 3), COALESCE(pg_catalog.round((c->>'val_loss')::numeric, 3)::text, '-'),
            COALESCE(pg_catalog.round((c->>'val_perplexity')::numeric, 2)::text, '-'));
    END IF;
    IF pg_catalog.jsonb_array_length(c->'history') OPERATOR(pg_catalog.>) 0 THEN
        out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'  per epoch (%s): train %s  validation %s\n',
            pg_catalog.jsonb_array_length(c->'history'),
            rnnlm.sparkline(ARRAY(SELECT (e->>'train_loss')::float8 FROM pg_catalog.jsonb_array_elements(c->'history') e)),
            rnnlm.sparkline(ARRAY(SELECT (e->>'val_loss')::float8 FROM pg_catalog.jsonb_array_elements(c->'history') e)));
    END IF;
    IF pg_catalog.jsonb_typeof(s) OPERATOR(pg_catalog.=) 'object' THEN
        out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'  validation rows'' perplexity: median %s, 90%% %s, 99%% %s, max %s\n',
            pg_catalog.round((s->>'median')::numeric, 2), pg_catalog.round((s->>'p90')::numeric, 2),
            pg_catalog.round((s->>'p99')::numeric, 2), pg_catalog.round((s->>'max')::numeric, 2));
    ELSE
        out := out OPERATOR(pg_catalog.||) E'  no calibration of surprise (rnnlm_surprise_percentile needs one)\n';
    END IF;
    out := out OPERATOR(pg_catalog.||) pg_catalog.format(E'  versions: %s; granted to: %s',
        (SELECT pg_catalog.string_agg((e->>'version') OPERATOR(pg_catalog.||) CASE WHEN (e->>'pinned')::boolean THEN ' (pinned)' ELSE '' END, ', ')
           FROM pg_catalog.jsonb_array_elements(c->'versions') e),
        COALESCE(NULLIF((SELECT pg_catalog.string_agg(g, ', ') FROM pg_catalog.jsonb_array_elements_text(c->'granted_to') g), ''), 'nobody'));
    RETURN out;
END
$$;
COMMENT ON FUNCTION rnnlm_describe(text) IS
    'a model card of an rnnlm model, as readable text (rnnlm_describe_jsonb has the same facts)';

-- Trainings running in backends (rnnlm_train, rnnlm_tune, rnnlm_retrain), as
-- shared memory shows them when rnnlm is in shared_preload_libraries; empty
-- otherwise.  A role sees those of the roles it is a member of (filtered in
-- C: shared memory has no row-level security); superusers see all.
CREATE FUNCTION rnnlm.trainings_in_progress(OUT pid integer, OUT database text, OUT role regrole,
                                            OUT model text, OUT epoch integer, OUT epochs integer,
                                            OUT step bigint, OUT steps bigint,
                                            OUT fraction_done double precision,
                                            OUT train_loss double precision,
                                            OUT started_at timestamptz, OUT updated_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rnnlm_trainings'
LANGUAGE C VOLATILE;
CREATE VIEW rnnlm.trainings AS SELECT * FROM rnnlm.trainings_in_progress();
GRANT SELECT ON rnnlm.trainings TO PUBLIC;
COMMENT ON VIEW rnnlm.trainings IS
    'the rnnlm trainings running in backends now, with rnnlm in shared_preload_libraries';
