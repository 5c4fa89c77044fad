/* rnnlm--0.3.sql: built by make from rnnlm--0.2.sql and rnnlm--0.2--0.3.sql; do not edit */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION rnnlm" to load this file. \quit

CREATE SCHEMA rnnlm;
COMMENT ON SCHEMA rnnlm IS 'models stored by the rnnlm extension';

CREATE SEQUENCE rnnlm.model_version_seq;

-- One row per trained model.  weights holds the model file (doc/format.md).
CREATE TABLE rnnlm.model (
    name            text PRIMARY KEY
                    CHECK (name OPERATOR(pg_catalog.<>) '' AND pg_catalog.octet_length(name) OPERATOR(pg_catalog.<=) 63),
    owner           regrole NOT NULL,
    version         bigint NOT NULL,
    cell            text NOT NULL,
    tokenizer       text NOT NULL,
    vocab_size      integer NOT NULL,
    embedding_dim   integer NOT NULL,
    hidden_size     integer NOT NULL,
    num_layers      integer NOT NULL,
    parameters      bigint NOT NULL,
    train_loss      double precision,
    val_loss        double precision,
    val_perplexity  double precision,
    trained_tokens  bigint NOT NULL,
    options         jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    weights         bytea NOT NULL,
    grantees        regrole[] NOT NULL DEFAULT '{}'    -- '-' (0) is PUBLIC
);
-- the weights are floats that do not compress; store them out of line as they are
ALTER TABLE rnnlm.model ALTER COLUMN weights SET STORAGE EXTERNAL;

-- Every new or changed model row gets a new version from the sequence (a
-- version written by hand is ignored), so every backend's cached copy is
-- reloaded by its next statement and can never be mistaken for another.
CREATE FUNCTION rnnlm.model_new_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    NEW.version := pg_catalog.nextval('rnnlm.model_version_seq'::pg_catalog.regclass);
    RETURN NEW;
END
$$;
CREATE TRIGGER model_new_version BEFORE INSERT OR UPDATE ON rnnlm.model
    FOR EACH ROW EXECUTE FUNCTION rnnlm.model_new_version();

-- pg_dump keeps the models
SELECT pg_catalog.pg_extension_config_dump('rnnlm.model', '');
SELECT pg_catalog.pg_extension_config_dump('rnnlm.model_version_seq', '');

-- Whether the current role may use a model: it belongs to the owning role
-- or to a role the model is granted to, or the model is granted to PUBLIC.
-- Roles that no longer exist grant nothing (and raise no error).
CREATE FUNCTION rnnlm.can_use(owner regrole, grantees regrole[]) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
    SELECT 0::oid OPERATOR(pg_catalog.=) ANY (grantees::oid[])
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                    WHERE (r.oid OPERATOR(pg_catalog.=) owner::oid
                           OR r.oid OPERATOR(pg_catalog.=) ANY (grantees::oid[]))
                      AND pg_catalog.pg_has_role(CURRENT_USER, r.oid, 'MEMBER'))
$$;

-- Whether the current role owns a model (belongs to the owning role).
CREATE FUNCTION rnnlm.is_owner(owner regrole) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                    WHERE r.oid OPERATOR(pg_catalog.=) owner::oid
                      AND pg_catalog.pg_has_role(CURRENT_USER, r.oid, 'MEMBER'))
$$;

-- Row-level security: a role reads the models it may use, and creates,
-- changes and deletes only models it owns; superusers see everything.
ALTER TABLE rnnlm.model ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_use ON rnnlm.model FOR SELECT
    USING (rnnlm.can_use(owner, grantees));
CREATE POLICY model_create ON rnnlm.model FOR INSERT
    WITH CHECK (owner::oid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles
                                                    WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER));
CREATE POLICY model_change ON rnnlm.model FOR UPDATE
    USING (rnnlm.is_owner(owner)) WITH CHECK (rnnlm.is_owner(owner));
CREATE POLICY model_delete ON rnnlm.model FOR DELETE
    USING (rnnlm.is_owner(owner));
GRANT USAGE ON SCHEMA rnnlm TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON rnnlm.model TO PUBLIC;
-- SELECT too: pg_dump reads the counter of every extension config sequence
GRANT USAGE, SELECT ON SEQUENCE rnnlm.model_version_seq TO PUBLIC;

CREATE VIEW rnnlm.models WITH (security_barrier) AS
SELECT name, owner, cell, tokenizer, vocab_size, embedding_dim, hidden_size,
       num_layers, parameters,
       pg_catalog.octet_length(weights)::bigint AS size_bytes,
       train_loss, val_loss, val_perplexity, trained_tokens, created_at, options,
       ARRAY(SELECT CASE WHEN g::oid OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE g::text END
               FROM pg_catalog.unnest(grantees) AS g) AS granted_to
  FROM rnnlm.model;
ALTER VIEW rnnlm.models SET (security_invoker = true);
GRANT SELECT ON rnnlm.models TO PUBLIC;
COMMENT ON VIEW rnnlm.models IS 'the rnnlm models the current role can use';

CREATE FUNCTION rnnlm_train(model_name text, training_query text,
                            options jsonb DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'rnnlm_train'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_train(text, text, jsonb) IS
    'train a language model on the rows of a query returning one text column';

CREATE FUNCTION rnnlm_generate(model_name text, prompt text DEFAULT '',
                               max_tokens integer DEFAULT 100,
                               temperature double precision DEFAULT 1.0,
                               top_k integer DEFAULT 0,
                               top_p double precision DEFAULT 1.0,
                               seed bigint DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'rnnlm_generate'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION rnnlm_generate(text, text, integer, double precision, integer, double precision, bigint) IS
    'sample a continuation of the prompt from a model';

CREATE FUNCTION rnnlm_perplexity(model_name text, input text)
RETURNS double precision
AS 'MODULE_PATHNAME', 'rnnlm_perplexity'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION rnnlm_perplexity(text, text) IS
    'perplexity of a text under a model (higher = more surprising)';

CREATE FUNCTION rnnlm_perplexity(model_name text, inputs text[])
RETURNS double precision[]
AS 'MODULE_PATHNAME', 'rnnlm_perplexity_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION rnnlm_perplexity(text, text[]) IS
    'perplexities of many texts, in order (NULL for NULL), scored as one batch';

CREATE FUNCTION rnnlm_token_logprobs(model_name text, input text,
                                     OUT "position" integer, OUT token_id integer,
                                     OUT token text, OUT logprob double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rnnlm_token_logprobs'
LANGUAGE C STRICT STABLE PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION rnnlm_token_logprobs(text, text) IS
    'log-probability of each token of a text (then of the end of document) under a model';

CREATE FUNCTION rnnlm_evaluate(model_name text, query text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'rnnlm_evaluate'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_evaluate(text, text) IS
    'token-weighted loss, perplexity and accuracy of a model over the rows of a query';

CREATE FUNCTION rnnlm_drop(model_name text, if_exists boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rnnlm_drop'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_drop(text, boolean) IS 'delete a model';

CREATE FUNCTION rnnlm_export(model_name text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'rnnlm_export'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_export(text) IS
    'the model file (doc/format.md) of a model, for rnnlm_import elsewhere';

CREATE FUNCTION rnnlm_import(model_name text, data bytea, replace boolean DEFAULT false)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'rnnlm_import'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_import(text, bytea, boolean) IS
    'store a model file from rnnlm_export under a name, after validating it';

-- Grant the use of a model (generate, score, evaluate, export, read its
-- row) to a role or PUBLIC; only its owner (or a superuser) may.
CREATE FUNCTION rnnlm_grant(model_name text, role_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
DECLARE
    grantee regrole;
BEGIN
    grantee := rnnlm._check_grant(model_name, role_name);
    UPDATE rnnlm.model
       SET grantees = grantees OPERATOR(pg_catalog.||) grantee
     WHERE name OPERATOR(pg_catalog.=) model_name
       AND NOT grantee OPERATOR(pg_catalog.=) ANY (grantees);
END
$$;
COMMENT ON FUNCTION rnnlm_grant(text, text) IS 'let a role (or PUBLIC) use a model';

CREATE FUNCTION rnnlm_revoke(model_name text, role_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
DECLARE
    grantee regrole;
BEGIN
    grantee := rnnlm._check_grant(model_name, role_name);
    UPDATE rnnlm.model
       SET grantees = pg_catalog.array_remove(grantees, grantee)
     WHERE name OPERATOR(pg_catalog.=) model_name
       AND grantee OPERATOR(pg_catalog.=) ANY (grantees);
END
$$;
COMMENT ON FUNCTION rnnlm_revoke(text, text) IS 'take back a grant of rnnlm_grant';

-- The checks shared by rnnlm_grant and rnnlm_revoke; returns the grantee.
CREATE FUNCTION rnnlm._check_grant(model_name text, role_name text)
RETURNS regrole
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $$
DECLARE
    model_owner regrole;
    grantee oid;
BEGIN
    IF model_name IS NULL OR role_name IS NULL THEN
        RAISE EXCEPTION 'model name and role name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT m.owner INTO model_owner FROM rnnlm.model m
     WHERE m.name OPERATOR(pg_catalog.=) model_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rnnlm model "%" does not exist', model_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM rnnlm.models lists the models you can use.';
    END IF;
    IF NOT rnnlm.is_owner(model_owner)
       AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles
                 WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        RAISE EXCEPTION 'must be owner of rnnlm model "%"', model_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF pg_catalog.upper(role_name) OPERATOR(pg_catalog.=) 'PUBLIC' THEN
        RETURN 0::oid::regrole;
    END IF;
    SELECT oid INTO grantee FROM pg_catalog.pg_roles
     WHERE rolname OPERATOR(pg_catalog.=) role_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role "%" does not exist', role_name
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN grantee::regrole;
END
$$;
/* rnnlm--0.1--0.2.sql: training jobs run by background workers, per-epoch
 * history, fine-tuning from a parent model, hyperparameter search. */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION

-- The stamp every change of a model row gets (which tells caches to reload)
-- is its revision: "version" is kept for a model's numbered versions.
ALTER TABLE rnnlm.model RENAME COLUMN version TO revision;
ALTER SEQUENCE rnnlm.model_version_seq RENAME TO model_revision_seq;
DROP TRIGGER model_new_version ON rnnlm.model;
DROP FUNCTION rnnlm.model_new_version();

-- Every stored model is a numbered, immutable version.  The row of
-- rnnlm.model holds the current one (version, the SHA-256 of its model file);
-- replacing a model moves it to rnnlm.model_version, where up to
-- keep_versions older versions (besides pinned ones) are kept.  A model from
-- 0.1 becomes version 1.
ALTER TABLE rnnlm.model ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE rnnlm.model ADD COLUMN sha256 bytea;
ALTER TABLE rnnlm.model ADD COLUMN keep_versions integer NOT NULL DEFAULT 1
    CHECK (keep_versions OPERATOR(pg_catalog.>=) 0);
UPDATE rnnlm.model SET sha256 = pg_catalog.sha256(weights);

-- Every new or changed model row gets a new revision from the sequence (a
-- revision written by hand is ignored), so every backend's cached copy is
-- reloaded by its next statement and can never be mistaken for another;
-- and the SHA-256 of its weights, the content hash of the version it holds.
CREATE FUNCTION rnnlm.model_new_revision() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    NEW.revision := pg_catalog.nextval('rnnlm.model_revision_seq'::pg_catalog.regclass);
    NEW.sha256 := pg_catalog.sha256(NEW.weights);
    RETURN NEW;
END
$$;
CREATE TRIGGER model_new_revision BEFORE INSERT OR UPDATE ON rnnlm.model
    FOR EACH ROW EXECUTE FUNCTION rnnlm.model_new_revision();

CREATE TABLE rnnlm.model_version (
    name            text NOT NULL REFERENCES rnnlm.model (name) ON DELETE CASCADE ON UPDATE CASCADE,
    version         integer NOT NULL,
    sha256          bytea NOT NULL,
    parameters      bigint NOT NULL,
    train_loss      double precision,
    val_loss        double precision,
    created_at      timestamptz NOT NULL,
    pinned          boolean NOT NULL DEFAULT false,
    weights         bytea NOT NULL,
    PRIMARY KEY (name, version)
);
ALTER TABLE rnnlm.model_version ALTER COLUMN weights SET STORAGE EXTERNAL;
SELECT pg_catalog.pg_extension_config_dump('rnnlm.model_version', '');
-- a version is visible, and changeable, as its model is
ALTER TABLE rnnlm.model_version ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_version_use ON rnnlm.model_version FOR SELECT
    USING (EXISTS (SELECT 1 FROM rnnlm.model m WHERE m.name OPERATOR(pg_catalog.=) model_version.name));
CREATE POLICY model_version_change ON rnnlm.model_version FOR ALL
    USING (EXISTS (SELECT 1 FROM rnnlm.model m WHERE m.name OPERATOR(pg_catalog.=) model_version.name
                     AND rnnlm.is_owner(m.owner)))
    WITH CHECK (EXISTS (SELECT 1 FROM rnnlm.model m WHERE m.name OPERATOR(pg_catalog.=) model_version.name
                          AND rnnlm.is_owner(m.owner)));
GRANT SELECT, INSERT, UPDATE, DELETE ON rnnlm.model_version TO PUBLIC;

-- An older version never changes: only its pin may; its SHA-256 is always
-- that of its weights.
CREATE FUNCTION rnnlm.model_version_frozen() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        NEW.sha256 := pg_catalog.sha256(NEW.weights);
    ELSIF (NEW.version, NEW.sha256, NEW.parameters, NEW.train_loss, NEW.val_loss, NEW.created_at, NEW.weights)
          IS DISTINCT FROM
          (OLD.version, OLD.sha256, OLD.parameters, OLD.train_loss, OLD.val_loss, OLD.created_at, OLD.weights) THEN
        RAISE EXCEPTION 'version % of rnnlm model "%" cannot be changed', OLD.version, OLD.name
            USING ERRCODE = '55000',
                  HINT = 'Versions are immutable: rnnlm_pin_version() pins one, rnnlm_drop_version() drops one.';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER model_version_frozen BEFORE INSERT OR UPDATE ON rnnlm.model_version
    FOR EACH ROW EXECUTE FUNCTION rnnlm.model_version_frozen();

CREATE VIEW rnnlm.model_versions WITH (security_barrier, security_invoker = true) AS
SELECT name, version, pg_catalog.encode(sha256, 'hex') AS sha256, true AS current, false AS pinned,
       parameters, pg_catalog.octet_length(weights)::bigint AS size_bytes, train_loss, val_loss, created_at
  FROM rnnlm.model
UNION ALL
SELECT name, version, pg_catalog.encode(sha256, 'hex'), false, pinned,
       parameters, pg_catalog.octet_length(weights)::bigint, train_loss, val_loss, created_at
  FROM rnnlm.model_version;
GRANT SELECT ON rnnlm.model_versions TO PUBLIC;
COMMENT ON VIEW rnnlm.model_versions IS 'every stored version of the rnnlm models the current role can use';

-- What a model was fine-tuned from (its name at the time), and one entry per
-- epoch trained: {"epoch", "learning_rate", "train_loss", "val_loss", "seconds"}.
-- Models stored by 0.1 have no parent and an empty history.
ALTER TABLE rnnlm.model ADD COLUMN parent text;
ALTER TABLE rnnlm.model ADD COLUMN history jsonb NOT NULL DEFAULT '[]';
-- a model fine-tuned by this library before the update (on the 0.1 table,
-- which had no parent column) recorded its parent in its options
UPDATE rnnlm.model SET parent = options OPERATOR(pg_catalog.->>) 'init_from'
 WHERE options OPERATOR(pg_catalog.->>) 'init_from' IS NOT NULL;

-- (security_invoker again: CREATE OR REPLACE VIEW resets the view's options,
-- and without it the view would show every model to everyone.)
CREATE OR REPLACE VIEW rnnlm.models WITH (security_barrier, security_invoker = true) AS
SELECT name, owner, cell, tokenizer, vocab_size, embedding_dim, hidden_size,
       num_layers, parameters,
       pg_catalog.octet_length(weights)::bigint AS size_bytes,
       train_loss, val_loss, val_perplexity, trained_tokens, created_at, options,
       ARRAY(SELECT CASE WHEN g::oid OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE g::text END
               FROM pg_catalog.unnest(grantees) AS g) AS granted_to,
       parent, version, pg_catalog.encode(sha256, 'hex') AS sha256, keep_versions
  FROM rnnlm.model;

-- One row per training job (rnnlm_train_async).  state is what the job last
-- recorded; the view rnnlm.jobs shows a 'queued' or 'running' job whose
-- worker is gone as 'interrupted'.  checkpoint holds the last checkpoint
-- file (doc/format.md) of a job that has not finished.
CREATE TABLE rnnlm.job (
    id              bigserial PRIMARY KEY,
    model           text NOT NULL
                    CHECK (model OPERATOR(pg_catalog.<>) '' AND pg_catalog.octet_length(model) OPERATOR(pg_catalog.<=) 63),
    owner           regrole NOT NULL,
    training_query  text NOT NULL,
    options         jsonb NOT NULL,
    search_path     text NOT NULL,
    threads         integer NOT NULL,
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running', 'succeeded', 'failed', 'cancelled'])),
    worker_pid      integer,
    epoch           integer,
    epochs          integer,
    step            bigint,
    steps           bigint,
    train_loss      double precision,
    val_loss        double precision,
    tokens_per_second double precision,
    eta             timestamptz,
    submitted_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at      timestamptz,
    updated_at      timestamptz,
    finished_at     timestamptz,
    error           text,
    error_code      text,
    summary         jsonb,
    history         jsonb NOT NULL DEFAULT '[]',
    checkpoint      bytea,
    checkpointed_at timestamptz,
    resumes         integer NOT NULL DEFAULT 0,
    servers         name[]          -- a federated training's; NULL for rnnlm_train_async
);
ALTER TABLE rnnlm.job ALTER COLUMN checkpoint SET STORAGE EXTERNAL;

-- pg_dump keeps the jobs' history; a job that was running is shown as
-- 'interrupted' after a restore, since its worker is not there.
SELECT pg_catalog.pg_extension_config_dump('rnnlm.job', '');
SELECT pg_catalog.pg_extension_config_dump('rnnlm.job_id_seq', '');

-- A role sees, cancels and forgets only its own jobs; superusers see all.
ALTER TABLE rnnlm.job ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_read ON rnnlm.job FOR SELECT
    USING (rnnlm.is_owner(owner));
CREATE POLICY job_create ON rnnlm.job FOR INSERT
    WITH CHECK (owner::oid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles
                                                    WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER));
CREATE POLICY job_change ON rnnlm.job FOR UPDATE
    USING (rnnlm.is_owner(owner)) WITH CHECK (rnnlm.is_owner(owner));
CREATE POLICY job_delete ON rnnlm.job FOR DELETE
    USING (rnnlm.is_owner(owner));
GRANT SELECT, INSERT, UPDATE, DELETE ON rnnlm.job TO PUBLIC;
GRANT USAGE, SELECT ON SEQUENCE rnnlm.job_id_seq TO PUBLIC;

-- The pid of the worker running a job, or NULL when none is.  A job's
-- worker holds a session advisory lock on (1919839852, the job id modulo
-- 2^31) from the moment it starts until it exits, crash included; pg_locks
-- shows it to every role, whatever its privileges, and is never stale.
CREATE FUNCTION rnnlm.job_worker(job_id bigint)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
    SELECT l.pid FROM pg_catalog.pg_locks l
     WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
       AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                               WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
       AND l.classid OPERATOR(pg_catalog.=) 1919839852::pg_catalog.oid
       AND l.objid OPERATOR(pg_catalog.=) (job_id OPERATOR(pg_catalog.%) 2147483648)::pg_catalog.oid
       AND l.objsubid OPERATOR(pg_catalog.=) 2
       AND l.granted
     LIMIT 1
$$;

CREATE VIEW rnnlm.jobs WITH (security_barrier, security_invoker = true) AS
SELECT id, model, owner,
       CASE WHEN state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running'])
                 AND worker_pid IS NOT NULL
                 AND rnnlm.job_worker(id) IS NULL
            THEN 'interrupted' ELSE state END AS state,
       epoch, epochs, step, steps, train_loss, val_loss, tokens_per_second,
       started_at, updated_at, eta, error, summary,
       submitted_at, finished_at, checkpointed_at, resumes, worker_pid,
       training_query, options, servers
  FROM rnnlm.job;
GRANT SELECT ON rnnlm.jobs TO PUBLIC;
COMMENT ON VIEW rnnlm.jobs IS 'the rnnlm training jobs of the current role';

CREATE FUNCTION rnnlm_train_async(model_name text, training_query text,
                                  options jsonb DEFAULT '{}')
RETURNS bigint
AS 'MODULE_PATHNAME', 'rnnlm_train_async'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_train_async(text, text, jsonb) IS
    'start training a model in a background worker; returns the job id';

CREATE FUNCTION rnnlm_cancel(job_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rnnlm_cancel'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION rnnlm_cancel(bigint) IS
    'stop a queued or running training job; no model is stored';

CREATE FUNCTION rnnlm_wait(job_id bigint, timeout interval DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'rnnlm_wait'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_wait(bigint, interval) IS
    'wait for a training job to end; its summary, or its error';

CREATE FUNCTION rnnlm_resume(job_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'rnnlm_resume'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION rnnlm_resume(bigint) IS
    'continue an interrupted training job from its last checkpoint';

CREATE FUNCTION rnnlm_forget(job_id bigint)
RETURNS boolean
LANGUAGE plpgsql STRICT VOLATILE SET search_path = pg_catalog AS $$
DECLARE
    job_state text;
BEGIN
    SELECT j.state INTO job_state FROM rnnlm.jobs j WHERE j.id OPERATOR(pg_catalog.=) job_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF job_state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']) THEN
        RAISE EXCEPTION 'rnnlm job % is %', job_id, job_state
            USING ERRCODE = 'object_in_use',
                  HINT = 'Cancel it first with rnnlm_cancel().';
    END IF;
    DELETE FROM rnnlm.job j WHERE j.id OPERATOR(pg_catalog.=) job_id;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION rnnlm_forget(bigint) IS 'remove a finished training job from rnnlm.jobs';

-- The rows of a history array (rnnlm.model.history, rnnlm.job.history).
CREATE FUNCTION rnnlm.history_rows(history jsonb,
                                   OUT epoch integer, OUT learning_rate double precision,
                                   OUT train_loss double precision,
                                   OUT val_loss double precision,
                                   OUT seconds double precision)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
    SELECT h.epoch, h.learning_rate, h.train_loss, h.val_loss, h.seconds
      FROM pg_catalog.jsonb_to_recordset(history)
             AS h(epoch integer, learning_rate double precision, train_loss double precision,
                  val_loss double precision, seconds double precision)
     ORDER BY h.epoch
$$;

-- The per-epoch history of a stored model or, when no model of that name is
-- stored yet, of the latest job training it (also while it runs).
CREATE FUNCTION rnnlm_training_history(model_name text,
                                       OUT epoch integer, OUT learning_rate double precision,
                                       OUT train_loss double precision,
                                       OUT val_loss double precision,
                                       OUT seconds double precision)
RETURNS SETOF record
LANGUAGE sql STRICT STABLE SET search_path = pg_catalog AS $$
    SELECT h.* FROM rnnlm.history_rows(COALESCE(
        (SELECT m.history FROM rnnlm.model m WHERE m.name OPERATOR(pg_catalog.=) model_name),
        (SELECT j.history FROM rnnlm.job j WHERE j.model OPERATOR(pg_catalog.=) model_name
          ORDER BY j.id DESC LIMIT 1))) h
$$;
COMMENT ON FUNCTION rnnlm_training_history(text) IS
    'learning rate, losses and seconds of every epoch a model was trained';

CREATE FUNCTION rnnlm_training_history(job_id bigint,
                                       OUT epoch integer, OUT learning_rate double precision,
                                       OUT train_loss double precision,
                                       OUT val_loss double precision,
                                       OUT seconds double precision)
RETURNS SETOF record
LANGUAGE sql STRICT STABLE SET search_path = pg_catalog AS $$
    SELECT h.* FROM rnnlm.history_rows(
        (SELECT j.history FROM rnnlm.job j WHERE j.id OPERATOR(pg_catalog.=) job_id)) h
$$;
COMMENT ON FUNCTION rnnlm_training_history(bigint) IS
    'learning rate, losses and seconds of every epoch a training job has run so far';

CREATE FUNCTION rnnlm_tune(model_name text, training_query text, grid jsonb,
                           options jsonb DEFAULT '{}',
                           OUT trial integer, OUT trial_options jsonb,
                           OUT train_loss double precision, OUT val_loss double precision,
                           OUT best_epoch integer, OUT chosen boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rnnlm_tune'
LANGUAGE C VOLATILE ROWS 8;
COMMENT ON FUNCTION rnnlm_tune(text, text, jsonb, jsonb) IS
    'train one model per combination of a grid of options and keep the best by validation loss';

-- A statement that calls the per-row functions runs without JIT (their
-- COST makes large scans parallel, and would also make them JIT-compiled,
-- which only loads LLVM for work done in C): src/pg/jit.c.  The support
-- function makes the planner load the library while it plans such a
-- statement, so that the library's executor hook sees that statement too.
CREATE FUNCTION rnnlm.planner_support(internal) RETURNS internal
AS 'MODULE_PATHNAME', 'rnnlm_planner_support'
LANGUAGE C STRICT;
ALTER FUNCTION rnnlm_perplexity(text, text) SUPPORT rnnlm.planner_support;
ALTER FUNCTION rnnlm_perplexity(text, text[]) SUPPORT rnnlm.planner_support;
ALTER FUNCTION rnnlm_token_logprobs(text, text) SUPPORT rnnlm.planner_support;
ALTER FUNCTION rnnlm_generate(text, text, integer, double precision, integer, double precision, bigint)
    SUPPORT rnnlm.planner_support;

CREATE FUNCTION rnnlm_next_tokens(model_name text, prefix text, k integer DEFAULT 10,
                                  OUT token text, OUT probability double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rnnlm_next_tokens'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000 ROWS 10
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_next_tokens(text, text, integer) IS
    'the k most likely next tokens after a prefix, most likely first, with their probabilities';

CREATE FUNCTION rnnlm_embed(model_name text, input text, pooling text DEFAULT 'mean')
RETURNS real[]
AS 'MODULE_PATHNAME', 'rnnlm_embed'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 10000
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_embed(text, text, text) IS
    'a text as a vector: the top layer''s hidden states after its tokens, their mean or the last';

CREATE FUNCTION rnnlm_embed(model_name text, inputs text[], pooling text DEFAULT 'mean',
                            OUT ordinality integer, OUT embedding real[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rnnlm_embed_array'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100000
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_embed(text, text[], text) IS
    'many texts as vectors, one row per element in order (NULL for a NULL element)';

CREATE FUNCTION rnnlm_classify(models text[], input text)
RETURNS text
AS 'MODULE_PATHNAME', 'rnnlm_classify'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 20000
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_classify(text[], text) IS
    'the model (one per class) under which the input is most likely';

CREATE FUNCTION rnnlm_classify_scores(models text[], input text,
                                      OUT model text, OUT loss double precision,
                                      OUT probability double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'rnnlm_classify_scores'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 20000 ROWS 2
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_classify_scores(text[], text) IS
    'each model''s loss (nats per character) on the input and the probability of its class';

CREATE FUNCTION rnnlm_perplexity_at(model_ref text, input text)
RETURNS double precision
AS 'MODULE_PATHNAME', 'rnnlm_perplexity_at'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE COST 10000
SUPPORT rnnlm.planner_support;
COMMENT ON FUNCTION rnnlm_perplexity_at(text, text) IS
    'rnnlm_perplexity of a pinned model version (name@N or name@sha256:prefix), which never changes';

CREATE FUNCTION rnnlm_publish(model_ref text, server name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rnnlm_publish'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION rnnlm_publish(text, name) IS
    'copy a model version, with its grants, to the database of a postgres_fdw server (false if it is there already)';

CREATE FUNCTION rnnlm_train_federated(model_name text, servers name[], training_query text,
                                      options jsonb DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'rnnlm_train_federated'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_train_federated(text, name[], text, jsonb) IS
    'train a model over the rows of a query on several postgres_fdw servers by federated averaging; the text stays on each server';

CREATE FUNCTION rnnlm_train_federated_async(model_name text, servers name[], training_query text,
                                            options jsonb DEFAULT '{}')
RETURNS bigint
AS 'MODULE_PATHNAME', 'rnnlm_train_federated_async'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm_train_federated_async(text, name[], text, jsonb) IS
    'start rnnlm_train_federated as a background job; returns the job id (see rnnlm.jobs, rnnlm_wait)';

-- A shard's side of rnnlm_train_federated, which calls these through each
-- server's user mapping (in the schema rnnlm, whatever the search_path);
-- a session lives in one connection.
CREATE FUNCTION rnnlm.federated_begin(session text, training_query text, options jsonb,
                                      parent bytea DEFAULT NULL)
RETURNS TABLE(unit bytea, count bigint)
AS 'MODULE_PATHNAME', 'rnnlm_federated_begin'
LANGUAGE C VOLATILE ROWS 10000;
COMMENT ON FUNCTION rnnlm.federated_begin(text, text, jsonb, bytea) IS
    'federated training, on a shard: read the rows and return the counts of their training units (none when fine-tuning parent)';

CREATE FUNCTION rnnlm.federated_start(session text, model bytea, seed bigint,
                                      OUT documents bigint, OUT validation_documents bigint,
                                      OUT steps bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'rnnlm_federated_start'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm.federated_start(text, bytea, bigint) IS
    'federated training, on a shard: take the coordinator''s new model and make the token streams';

CREATE FUNCTION rnnlm.federated_train(session text, weights bytea, learning_rate double precision,
                                      max_steps integer, OUT new_weights bytea, OUT tokens bigint,
                                      OUT loss_sum double precision, OUT epoch_ended boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'rnnlm_federated_train'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm.federated_train(text, bytea, double precision, integer) IS
    'federated training, on a shard: train one round from the given weights (NULL: the current ones)';

CREATE FUNCTION rnnlm.federated_evaluate(session text, weights bytea,
                                         OUT val_loss double precision, OUT val_tokens bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'rnnlm_federated_evaluate'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rnnlm.federated_evaluate(text, bytea) IS
    'federated training, on a shard: the validation loss of the given weights (NULL: the current ones)';

CREATE FUNCTION rnnlm.federated_end(session text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rnnlm_federated_end'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION rnnlm.federated_end(text) IS
    'federated training, on a shard: free the session (false if there was none)';

CREATE FUNCTION rnnlm_pin_version(model_name text, version integer, pinned boolean DEFAULT true)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rnnlm_pin_version'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION rnnlm_pin_version(text, integer, boolean) IS
    'keep an older version of a model whatever keep_versions says (or let it go again)';

CREATE FUNCTION rnnlm_drop_version(model_name text, version integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rnnlm_drop_version'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION rnnlm_drop_version(text, integer) IS
    'delete an older version of a model';

CREATE FUNCTION rnnlm_runtime()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'rnnlm_runtime'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION rnnlm_runtime() IS
    'the processor features, BLAS kernels, vector kernels, precision and threads this backend uses';
/* rnnlm--0.2--0.3.sql: rnnlm's tables written only by its functions,
 * version numbers never reused, job liveness no role can take, jobs that
 * wait for a slot. */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION

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
