--
-- rnnlm_surprise: calibrated surprise.  A training stores the quantiles of
-- its validation rows' surprise (mean nats per token under the stored
-- model); rnnlm_surprise_percentile places a text among them: the fraction
-- of validation rows that were less surprising, in [0, 1].
--
SET client_min_messages = warning;
CREATE TABLE sur_docs AS
  SELECT i, format('ticket %s: the printer on floor %s says %s', (i * 7919) % 1000, i % 5,
                   (ARRAY['paper jam', 'toner low', 'offline', 'nothing at all'])[i % 4 + 1]) AS body
    FROM generate_series(1, 400) i;
SELECT rnnlm_train('sur_m', 'SELECT body FROM sur_docs ORDER BY i',
                   '{"tokenizer": "char", "hidden_size": 32, "embedding_dim": 16, "num_layers": 1,
                     "epochs": 4, "learning_rate": 0.01, "validation_fraction": 0.25}')->>'model' AS model;

-- 101 quantiles, in order
SELECT array_length(surprise, 1) AS points, (SELECT calibrated FROM rnnlm.models WHERE name = 'sur_m') AS calibrated,
       surprise = ARRAY(SELECT unnest(surprise) ORDER BY 1) AS sorted,
       surprise[1] > 0 AS positive
  FROM rnnlm.model WHERE name = 'sur_m';
-- they are those of the validation rows (the last quarter), scored as
-- rnnlm_perplexity scores them: the median row's surprise is the middle one
SELECT abs(percentile_cont(0.5) WITHIN GROUP (ORDER BY ln(rnnlm_perplexity('sur_m', body)))
           - (SELECT surprise[51] FROM rnnlm.model WHERE name = 'sur_m')) < 1e-6 AS median_matches
  FROM sur_docs WHERE i > 300;

-- a row like the training data sits in the middle; garbage above them all
SELECT rnnlm_surprise_percentile('sur_m', 'ticket 123: the printer on floor 2 says toner low') BETWEEN 0.02 AND 0.98 AS typical,
       rnnlm_surprise_percentile('sur_m', 'zqxj vvkp 77 ##!') AS garbage;
-- the validation rows themselves spread from 0 to 1 (per-row scoring
-- differs from the batched scoring of the calibration in the last bits),
-- with about 1% of them in the top 1% (up to ties)
SELECT count(*) FILTER (WHERE rnnlm_surprise_percentile('sur_m', body) >= 0.99) <= 2 AS few_in_top_1_percent,
       min(rnnlm_surprise_percentile('sur_m', body)) < 0.01 AS least_near_0,
       max(rnnlm_surprise_percentile('sur_m', body)) > 0.99 AS most_near_1
  FROM sur_docs WHERE i > 300;
-- the batch form gives the same numbers (to 1e-4), NULL for NULL
SELECT (SELECT bool_and(CASE WHEN b IS NULL THEN s IS NULL ELSE abs(b - s) < 1e-4 END)
          FROM unnest(rnnlm_surprise_percentile('sur_m', ARRAY['ticket 42: the printer on floor 1 says offline', NULL, 'zqxj']),
                      ARRAY[rnnlm_surprise_percentile('sur_m', 'ticket 42: the printer on floor 1 says offline'), NULL,
                            rnnlm_surprise_percentile('sur_m', 'zqxj')]) AS u(b, s)) AS batch_agrees,
       rnnlm_surprise_percentile('sur_m', ARRAY[]::text[]) AS empty,
       rnnlm_surprise_percentile('sur_m', NULL::text) IS NULL AS strict;
-- a pinned version keeps its own calibration when the model is replaced
SELECT rnnlm_surprise_percentile('sur_m', 'the printer on floor 3 says paper jam') AS p1 \gset
SELECT rnnlm_train('sur_m', 'SELECT body FROM sur_docs ORDER BY i',
                   '{"tokenizer": "char", "hidden_size": 32, "embedding_dim": 16, "num_layers": 1,
                     "epochs": 1, "learning_rate": 0.01, "validation_fraction": 0.25, "replace": true,
                     "keep_versions": 1}')->>'model' AS model;
SELECT rnnlm_surprise_percentile_at('sur_m@1', 'the printer on floor 3 says paper jam') = :p1 AS version_1_kept,
       (SELECT surprise FROM rnnlm.model_version WHERE name = 'sur_m' AND version = 1)
         <> (SELECT surprise FROM rnnlm.model WHERE name = 'sur_m') AS version_2_has_its_own;
SELECT rnnlm_surprise_percentile_at('sur_m', 'x');

-- models without a calibration: imported, trained without validation rows
SELECT rnnlm_import('sur_imported', rnnlm_export('sur_m'))->>'cell' AS cell;
SELECT rnnlm_surprise_percentile('sur_imported', 'the printer');
SELECT rnnlm_train('sur_noval', 'SELECT body FROM sur_docs',
                   '{"tokenizer": "char", "hidden_size": 8, "embedding_dim": 4, "num_layers": 1,
                     "epochs": 1, "validation_fraction": 0}')->>'model' AS model;
SELECT rnnlm_surprise_percentile('sur_noval', 'the printer');
SELECT name, calibrated FROM rnnlm.models WHERE name LIKE 'sur\_%' ORDER BY name;
SELECT rnnlm_surprise_percentile('no_such_model', 'the printer');

-- another role: only with a grant, as for every scoring function
CREATE ROLE regress_rnnsur_bob;
SET ROLE regress_rnnsur_bob;
SELECT rnnlm_surprise_percentile('sur_m', 'the printer');
RESET ROLE;
SELECT rnnlm_grant('sur_m', 'regress_rnnsur_bob');
SET ROLE regress_rnnsur_bob;
SELECT rnnlm_surprise_percentile('sur_m', 'zqxj vvkp 77 ##!') AS bob_garbage;
RESET ROLE;

SELECT rnnlm_drop(name) FROM rnnlm.models WHERE name LIKE 'sur\_%' ORDER BY name;
DROP ROLE regress_rnnsur_bob;
DROP TABLE sur_docs;
