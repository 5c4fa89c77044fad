/*
 * run_internal.h
 *		The state of a training run, shared by run.c (which advances it) and
 *		checkpoint.c (which saves and restores it).  Not part of the core's
 *		API: everything else goes through rnnlm_core.h.
 */
#ifndef RNNLM_RUN_INTERNAL_H
#define RNNLM_RUN_INTERNAL_H

#include "rnnlm_core.h"

struct rl_run
{
	rl_env	   *env;
	rl_model   *m;				/* the caller's; trained in place */
	rl_trainer *tr;
	rl_train_opts o;
	const int32_t *train,
			   *val;
	size_t		ntrain,
				nval;
	int32_t		B;				/* parallel streams */
	size_t		per_stream;		/* tokens of each stream one epoch predicts */
	size_t		steps;			/* chunks per epoch */
	uint64_t	data_hash;		/* rl_run_data_hash of train and val */

	/* where the run is: everything a checkpoint saves */
	int32_t		epoch;			/* epochs finished */
	size_t		pos;			/* tokens of each stream done in the epoch in progress */
	double		total;			/* loss summed over the epoch in progress */
	double		epoch_seconds;	/* spent on the epoch in progress */
	double		train_seconds;	/* spent on the finished epochs */
	double		val_loss;		/* of the last finished epoch */
	size_t		val_tokens;
	rl_epoch_rules rules;		/* the rate, the best epoch, early stopping */
	float	   *best;			/* weights of best_epoch, with keep_best and validation data */
	rl_epoch_stats *hist;		/* one per finished epoch */
	size_t		hist_cap;
	int32_t		nhist;
};

extern uint64_t rl_run_data_hash(const int32_t *train, size_t ntrain,
								 const int32_t *val, size_t nval);

#endif							/* RNNLM_RUN_INTERNAL_H */
