--
-- rnnlm_training: what happens between epochs (keep_best, early stopping,
-- learning-rate decay), fine-tuning, forget_bias, rnnlm_tune, the per-epoch
-- history, and a job trained by a background worker.
--
-- Losses differ in their last digits from one processor to another, so
-- this file checks the documented rules against the history each run
-- records, and compares weights (md5) only between runs on this machine.
--
SET client_min_messages = warning;
\set SHOW_CONTEXT never

CREATE TABLE tr_docs AS
SELECT i, (ARRAY['the printer is jammed again', 'cannot log in to the vpn',
                 'my screen flickers at noon', 'the printer prints blank pages',
                 'vpn drops every hour', 'email will not sync on my phone'])[1 + i % 6]
          || ' ' || (ARRAY['today', 'please help', 'urgent', 'since monday'])[1 + (i * 7) % 4] AS body
  FROM generate_series(1, 60) AS i;

-- Options of a small word model that fits the training rows in a few epochs
-- and then stops improving on the held-out ones.
CREATE FUNCTION tr_opts(extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"epochs": 20, "hidden_size": 32, "embedding_dim": 16, "num_layers": 1,
             "learning_rate": 0.05, "batch_size": 4, "seq_len": 8,
             "validation_fraction": 0.2, "seed": 3}'::jsonb || extra
$$;
CREATE FUNCTION tr_md5(model_name text) RETURNS text LANGUAGE sql AS $$
    SELECT md5(weights) FROM rnnlm.model WHERE name = model_name
$$;
-- The history of a model with, per epoch, whether it improved on every earlier one.
CREATE FUNCTION tr_hist(model text)
RETURNS TABLE (epoch int, learning_rate float8, val_loss float8, improved boolean)
LANGUAGE sql AS $$
    SELECT h.epoch, h.learning_rate, h.val_loss,
           h.val_loss < coalesce(min(h.val_loss) OVER (ORDER BY h.epoch
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 'infinity')
      FROM rnnlm_training_history(model) h
$$;

--
-- keep_best (the default): the stored model is the epoch of lowest
-- validation loss, the same weights as training just that many epochs
--
CREATE TABLE tr_summary AS
SELECT rnnlm_train('tr_best', 'SELECT body FROM tr_docs ORDER BY i', tr_opts()) AS s;
SELECT s->'epochs_run' AS epochs_run, s->'stopped_early' AS stopped_early,
       s->'kept_epoch' = s->'best_epoch' AS kept_is_best,
       (s->>'kept_epoch')::int < (s->>'epochs_run')::int AS best_is_not_last,
       (s->>'best_epoch')::int = (SELECT epoch FROM tr_hist('tr_best')
                                   ORDER BY val_loss, epoch LIMIT 1) AS best_is_argmin,
       abs((s->>'val_loss')::float8 - (SELECT min(val_loss) FROM tr_hist('tr_best'))) < 1e-9 AS loss_is_min
  FROM tr_summary;
SELECT count(*) AS epochs_recorded, bool_and(learning_rate = 0.05) AS one_rate
  FROM rnnlm_training_history('tr_best');
SELECT val_loss = (SELECT min(val_loss) FROM tr_hist('tr_best')) AS stored_val_loss_is_min,
       trained_tokens = (SELECT (s->>'train_tokens')::bigint * 20 FROM tr_summary) AS trained_all_epochs
  FROM rnnlm.models WHERE name = 'tr_best';
SELECT rnnlm_train('tr_best_n', 'SELECT body FROM tr_docs ORDER BY i',
                   tr_opts(jsonb_build_object('epochs', (SELECT s->'kept_epoch' FROM tr_summary),
                                              'keep_best', false)))->'kept_epoch'
       = (SELECT s->'kept_epoch' FROM tr_summary) AS same_epochs;
SELECT tr_md5('tr_best') = tr_md5('tr_best_n') AS same_weights_as_shorter_run;
-- keep_best off: the last epoch is stored
SELECT s->'kept_epoch' AS kept_epoch, s->'best_epoch' = (SELECT s->'best_epoch' FROM tr_summary) AS same_best
  FROM (SELECT rnnlm_train('tr_last', 'SELECT body FROM tr_docs ORDER BY i',
                           tr_opts('{"keep_best": false}')) AS s) x;
SELECT tr_md5('tr_last') <> tr_md5('tr_best') AS differs_from_best;
-- without validation data there is no best epoch: the last is stored
SELECT s->'best_epoch' AS best_epoch, s->'kept_epoch' AS kept_epoch, s->'val_loss' AS val_loss
  FROM (SELECT rnnlm_train('tr_noval', 'SELECT body FROM tr_docs ORDER BY i',
                           tr_opts('{"validation_fraction": 0, "epochs": 3}')) AS s) x;
SELECT count(*) AS epochs, bool_and(val_loss IS NULL) AS no_val_loss
  FROM rnnlm_training_history('tr_noval');

--
-- early stopping: stops after `patience` epochs in a row without improvement
--
CREATE TABLE tr_early AS
SELECT p, rnnlm_train('tr_early_' || p, 'SELECT body FROM tr_docs ORDER BY i',
                      tr_opts(jsonb_build_object('early_stopping_patience', p,
                                                 'keep_best', false))) AS s
  FROM generate_series(1, 2) AS p;
SELECT p, s->'stopped_early' AS stopped_early,
       (s->>'epochs_run')::int < 20 AS before_the_end,
       -- the last p epochs did not improve, and no earlier p in a row failed to
       (SELECT bool_and(NOT improved) FROM tr_hist('tr_early_' || p) h
         WHERE h.epoch > (e.s->>'epochs_run')::int - p) AS last_p_no_better,
       (SELECT count(*) FROM tr_hist('tr_early_' || p)) = (s->>'epochs_run')::int AS history_complete
  FROM tr_early e ORDER BY p;
-- the weights are those of a run asked for exactly that many epochs
SELECT rnnlm_train('tr_early_n', 'SELECT body FROM tr_docs ORDER BY i',
                   tr_opts(jsonb_build_object('epochs', (SELECT s->'epochs_run' FROM tr_early WHERE p = 1),
                                              'keep_best', false)))->'stopped_early' AS stopped_early;
SELECT tr_md5('tr_early_1') = tr_md5('tr_early_n') AS same_weights;
-- it needs validation data
SELECT rnnlm_train('tr_x', 'SELECT body FROM tr_docs',
                   '{"early_stopping_patience": 2, "validation_fraction": 0}');

--
-- learning-rate decay: halved after every epoch that did not improve
--
SELECT rnnlm_train('tr_decay', 'SELECT body FROM tr_docs ORDER BY i',
                   tr_opts('{"lr_decay": 0.5, "lr_patience": 1}'))->'epochs_run' AS epochs_run;
SELECT bool_and(learning_rate = expected) AS rule_holds, count(*) FILTER (WHERE learning_rate < 0.05) > 0 AS decayed
  FROM (SELECT epoch, learning_rate,
               0.05 * power(0.5, count(*) FILTER (WHERE NOT improved)
                                   OVER (ORDER BY epoch ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) AS expected
          FROM tr_hist('tr_decay')) h;
-- with lr_patience 2 the rate is halved after two epochs in a row without improvement
SELECT rnnlm_train('tr_decay2', 'SELECT body FROM tr_docs ORDER BY i',
                   tr_opts('{"lr_decay": 0.5, "lr_patience": 2, "epochs": 16}'))->'epochs_run' AS epochs_run;
WITH RECURSIVE h AS (SELECT * FROM tr_hist('tr_decay2')),
walk AS (
    SELECT 1 AS epoch, 0.05::float8 AS lr, 0 AS wait
    UNION ALL
    SELECT w.epoch + 1,
           CASE WHEN NOT h.improved AND w.wait + 1 >= 2 THEN w.lr * 0.5 ELSE w.lr END,
           CASE WHEN h.improved OR w.wait + 1 >= 2 THEN 0 ELSE w.wait + 1 END
      FROM walk w JOIN h ON h.epoch = w.epoch
     WHERE w.epoch < 16)
SELECT bool_and(h.learning_rate = w.lr) AS rule_holds
  FROM h JOIN walk w USING (epoch);

--
-- forget_bias: the starting forget-gate bias of an LSTM; other cells ignore it
--
SELECT rnnlm_train('tr_fb0', 'SELECT body FROM tr_docs', tr_opts('{"epochs": 1, "forget_bias": 0}'))->'epochs_run' AS e;
SELECT rnnlm_train('tr_fb1', 'SELECT body FROM tr_docs', tr_opts('{"epochs": 1, "forget_bias": 1}'))->'epochs_run' AS e;
SELECT tr_md5('tr_fb0') <> tr_md5('tr_fb1') AS lstm_differs,
       (SELECT options->'forget_bias' FROM rnnlm.models WHERE name = 'tr_fb0') AS stored;
SELECT rnnlm_train('tr_gru0', 'SELECT body FROM tr_docs', tr_opts('{"epochs": 1, "cell": "gru", "forget_bias": 0}'))->'epochs_run' AS e;
SELECT rnnlm_train('tr_gru1', 'SELECT body FROM tr_docs', tr_opts('{"epochs": 1, "cell": "gru", "forget_bias": 1}'))->'epochs_run' AS e;
SELECT tr_md5('tr_gru0') = tr_md5('tr_gru1') AS gru_ignores_it;
SELECT rnnlm_train('tr_x', 'SELECT body FROM tr_docs', '{"forget_bias": 101}');

--
-- fine-tuning: start from a model, train on new rows
--
CREATE TABLE tr_new AS
SELECT i, (ARRAY['the cat sat on the mat', 'the dog sat on the log',
                 'the cat chased the dog', 'the printer ate the cat'])[1 + i % 4]
          || ' ' || (ARRAY['today', 'again', 'at noon'])[1 + i % 3] AS body
  FROM generate_series(1, 40) AS i;
SELECT s->'parent' AS parent, s->'vocab_size' = (SELECT to_jsonb(vocab_size) FROM rnnlm.models WHERE name = 'tr_best') AS same_vocab
  FROM (SELECT rnnlm_train('tr_tuned', 'SELECT body FROM tr_new ORDER BY i',
                           '{"init_from": "tr_best", "epochs": 4, "learning_rate": 0.02,
                             "batch_size": 4, "seq_len": 8, "validation_fraction": 0.25}') AS s) x;
SELECT name, parent, cell, hidden_size, embedding_dim, num_layers,
       options->'init_from' AS init_from, options->'max_vocab' AS max_vocab
  FROM rnnlm.models WHERE name IN ('tr_best', 'tr_tuned') ORDER BY name;
-- on the new rows held out, the fine-tuned model does better than its parent
SELECT (rnnlm_evaluate('tr_tuned', 'SELECT body FROM tr_new WHERE i > 30')->>'loss')::float8
     < (rnnlm_evaluate('tr_best', 'SELECT body FROM tr_new WHERE i > 30')->>'loss')::float8 AS improves;
-- words the parent never saw are <unk>: the vocabulary does not change
SELECT token, token_id FROM rnnlm_token_logprobs('tr_tuned', 'the cat printer') ORDER BY position;
-- the architecture is the parent's: options that differ, or max_vocab, are errors
SELECT rnnlm_train('tr_x', 'SELECT body FROM tr_new', '{"init_from": "tr_best", "hidden_size": 64}');
SELECT rnnlm_train('tr_x', 'SELECT body FROM tr_new', '{"init_from": "tr_best", "cell": "gru"}');
SELECT rnnlm_train('tr_x', 'SELECT body FROM tr_new', '{"init_from": "tr_best", "max_vocab": 50}');
SELECT rnnlm_train('tr_x', 'SELECT body FROM tr_new', '{"init_from": "tr_best", "hidden_size": 32, "epochs": 1}')->'parent' AS same_size_is_fine;
SELECT rnnlm_train('tr_x2', 'SELECT body FROM tr_new', '{"init_from": "tr_nope"}');
SELECT rnnlm_train('tr_x2', 'SELECT body FROM tr_new', '{"init_from": ""}');
SELECT rnnlm_train('tr_x2', 'SELECT body FROM tr_new', '{"init_from": 5}');

--
-- rnnlm_tune: one trial per combination; the best is stored
--
CREATE TABLE tr_trials AS
SELECT * FROM rnnlm_tune('tr_tuned_best', 'SELECT body FROM tr_docs ORDER BY i',
                         '{"hidden_size": [8, 32], "cell": ["lstm", "gru"]}',
                         tr_opts('{"epochs": 3}'));
SELECT trial, trial_options->>'cell' AS cell, trial_options->'hidden_size' AS hidden_size,
       best_epoch IS NOT NULL AS has_best, chosen
       = (val_loss = (SELECT min(val_loss) FROM tr_trials)) AS chosen_is_lowest
  FROM tr_trials ORDER BY trial;
SELECT count(*) FILTER (WHERE chosen) AS chosen FROM tr_trials;
SELECT m.val_loss = t.val_loss AS stored_is_chosen, m.cell = t.trial_options->>'cell' AS same_cell
  FROM rnnlm.models m, tr_trials t WHERE m.name = 'tr_tuned_best' AND t.chosen;
-- the stored model is the one training that trial alone gives
SELECT rnnlm_train('tr_tuned_alone', 'SELECT body FROM tr_docs ORDER BY i',
                   (SELECT trial_options FROM tr_trials WHERE chosen))->'epochs_run' AS e;
SELECT tr_md5('tr_tuned_best') = tr_md5('tr_tuned_alone') AS same_weights;
-- errors: too many trials, a bad grid, an invalid value, no validation data, an existing name
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '{"hidden_size": [8, 16, 32], "seed": [1, 2]}',
                         '{"max_trials": 5}');
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '{"hidden_size": 8}');
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '{"hidden_size": []}');
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '[]');
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '{"hidden_size": [8, 0]}');
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '{"nope": [1]}');
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '{"replace": [true]}');
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '{"seed": [1]}', '{"validation_fraction": 0}');
SELECT * FROM rnnlm_tune('tr_best', 'SELECT body FROM tr_docs', '{"seed": [1]}');
SELECT * FROM rnnlm_tune('tr_t', 'SELECT body FROM tr_docs', '{"seed": [1]}', '{"max_trials": 0}');
SELECT * FROM rnnlm_tune('tr_t', 'DELETE FROM tr_docs RETURNING body', '{"seed": [1]}');
SELECT count(*) AS rows_left FROM tr_docs;

--
-- a job: the background worker trains exactly what rnnlm_train trains
--
SELECT rnnlm_train_async('tr_job', 'SELECT body FROM tr_docs ORDER BY i', tr_opts('{"epochs": 4}')) AS job \gset
SELECT (s->>'epochs_run')::int AS epochs_run, s->'model' AS model
  FROM rnnlm_wait(:job) AS s;
SELECT state, epoch, epochs, step = steps AS last_step, error, summary->'kept_epoch' AS kept_epoch,
       checkpointed_at IS NOT NULL AS checkpointed, finished_at >= started_at AS ordered,
       fraction_done, time_remaining
  FROM rnnlm.jobs WHERE id = :job;
SELECT rnnlm_train('tr_sync', 'SELECT body FROM tr_docs ORDER BY i', tr_opts('{"epochs": 4}'))->'epochs_run' AS e;
SELECT tr_md5('tr_job') = tr_md5('tr_sync') AS same_weights,
       (SELECT val_loss FROM rnnlm.models WHERE name = 'tr_job')
       = (SELECT val_loss FROM rnnlm.models WHERE name = 'tr_sync') AS same_loss,
       (SELECT surprise FROM rnnlm.model WHERE name = 'tr_job')
       = (SELECT surprise FROM rnnlm.model WHERE name = 'tr_sync') AS same_calibration;
SELECT count(*) AS epochs FROM rnnlm_training_history(:job);
SELECT (SELECT array_agg(val_loss ORDER BY epoch) FROM rnnlm_training_history(:job))
     = (SELECT array_agg(val_loss ORDER BY epoch) FROM rnnlm_training_history('tr_job')) AS same_history;
-- without shared_preload_libraries, rnnlm.trainings has nothing to show
SELECT count(*) AS trainings_seen FROM rnnlm.trainings;
-- the checkpoint of a finished job is gone; forget removes the job
SELECT checkpoint IS NULL AS no_checkpoint FROM rnnlm.job WHERE id = :job;
SELECT rnnlm_forget(:job) AS forgotten, rnnlm_forget(:job) AS again;
SELECT count(*) FROM rnnlm.jobs WHERE id = :job;
-- a job whose training fails records the error, which rnnlm_wait raises
SELECT rnnlm_train_async('tr_job_bad', 'SELECT body FROM tr_docs WHERE false', '{}') AS bad \gset
SELECT rnnlm_wait(:bad);
SELECT state, error, summary FROM rnnlm.jobs WHERE id = :bad;
-- the same checks as rnnlm_train, before any job is recorded
SELECT rnnlm_train_async('tr_best', 'SELECT body FROM tr_docs');
SELECT rnnlm_train_async('tr_j', 'SELECT body FROM tr_docs', '{"epochs": 0}');
SELECT rnnlm_train_async('tr_j', 'DELETE FROM tr_docs RETURNING body');
SELECT rnnlm_train_async('tr_j', NULL);
SELECT rnnlm_train_async('tr_j', 'SELECT body FROM tr_docs', '{"init_from": "tr_nope"}');
SELECT count(*) AS jobs FROM rnnlm.jobs WHERE model = 'tr_j';
-- unknown jobs
SELECT rnnlm_cancel(-1);
SELECT rnnlm_wait(-1);
SELECT rnnlm_resume(-1);
SELECT rnnlm_forget(-1);
SELECT rnnlm_resume(:bad);

--
-- rnnlm.job_retention: finished jobs older than it go when the role's next job is submitted
--
SELECT rnnlm_train_async('tr_keep', 'SELECT body FROM tr_docs', tr_opts('{"epochs": 1}')) AS keep \gset
SELECT rnnlm_wait(:keep)->'epochs_run' AS epochs_run;
UPDATE rnnlm.job SET finished_at = now() - interval '2 hours' WHERE id = :bad;
SET rnnlm.job_retention = '1h';
SELECT rnnlm_train_async('tr_keep2', 'SELECT body FROM tr_docs', tr_opts('{"epochs": 1}')) AS keep2 \gset
SELECT id = :bad AS is_old, id = :keep AS is_recent FROM rnnlm.jobs WHERE id IN (:bad, :keep) ORDER BY id;
SELECT rnnlm_wait(:keep2)->'epochs_run' AS epochs_run;
RESET rnnlm.job_retention;
-- a job submitted in this transaction cannot be waited for before it commits
BEGIN;
SELECT rnnlm_train_async('tr_same', 'SELECT body FROM tr_docs', tr_opts('{"epochs": 1}')) AS same \gset
SELECT rnnlm_wait(:same);
ROLLBACK;
SELECT count(*) AS jobs FROM rnnlm.jobs WHERE model = 'tr_same';

--
-- sampled_softmax: each training step's softmax runs over sampled
-- candidates; validation, scoring and generation stay exact
--
SELECT rnnlm_train('tr_sampled', 'SELECT body FROM tr_docs',
                   tr_opts('{"epochs": 3, "sampled_softmax": 4}'))->'epochs_run' AS epochs_run;
SELECT val_loss < ln(vocab_size) - 1 AS learned, options->'sampled_softmax' AS k
  FROM rnnlm.models WHERE name = 'tr_sampled';
-- the stored model scores with the exact softmax: its probabilities sum to 1
SELECT abs(sum(probability) - 1) < 1e-6 AS exact_distribution
  FROM rnnlm_next_tokens('tr_sampled', 'the', 100000);
SELECT rnnlm_train('tr_bad', 'SELECT body FROM tr_docs', tr_opts('{"sampled_softmax": -1}'));
SELECT rnnlm_drop('tr_sampled');
