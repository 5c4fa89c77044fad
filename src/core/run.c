/*
 * run.c
 *		A training run: epochs over the token stream with validation after
 *		each, keep-best, learning-rate decay on a plateau and early stopping,
 *		taken a slice at a time so that the caller can report progress and
 *		save checkpoints in between.  rl_train runs one to the end.
 *
 * The epoch rules, after each epoch with validation data (val loss v):
 *   v < best:   best = v, the weights are remembered (keep_best), and both
 *               "epochs without improvement" counters restart;
 *   otherwise:  both counters grow; when the learning-rate counter reaches
 *               lr_patience the rate is multiplied by lr_decay and that
 *               counter restarts; when the other reaches patience the run
 *               stops.
 * Without validation data every epoch runs at the first rate.
 *
 * The checkpoint (checkpoint.c) saves everything below that changes as the
 * run goes, so a restored run takes the same steps with the same numbers.
 */
#include "run_internal.h"

#include <math.h>
#include <string.h>

/* FNV-1a over a token stream, continuing from h. */
static uint64_t
hash_ids(uint64_t h, const int32_t *ids, size_t n)
{
	size_t		i;
	int			k;

	for (i = 0; i < n; i++)
	{
		uint32_t	v = (uint32_t) ids[i];

		for (k = 0; k < 4; k++)
		{
			h ^= (v >> (8 * k)) & 0xFF;
			h *= 0x100000001B3ULL;
		}
	}
	return h;
}

/* A fingerprint of the training and validation streams. */
uint64_t
rl_run_data_hash(const int32_t *train, size_t ntrain, const int32_t *val, size_t nval)
{
	uint64_t	h = 0xCBF29CE484222325ULL;

	h = hash_ids(h, train, ntrain);
	h ^= 0xFF;					/* the boundary between the streams counts */
	h *= 0x100000001B3ULL;
	return hash_ids(h, val, nval);
}

/*
 * Bytes a run of this shape holds at its peak: the trainer's (weights,
 * gradients, Adam moments, one batch's activations) and the kept weights.
 */
size_t
rl_run_memory(const rl_config *cfg, const rl_train_opts *o)
{
	rl_env		env;
	size_t		base = rl_train_memory(cfg, o->batch_size, o->seq_len, o->dropout,
								   o->precision, o->freeze_embeddings, o->sampled_softmax),
				P;

	rl_env_init_malloc(&env);
	if (base == SIZE_MAX || rl_config_nparams(&env, cfg, &P) != RL_OK)
		return SIZE_MAX;
	if (o->keep_best)
		base += P * sizeof(float);
	return base;
}

/* Frees a run (the model is the caller's). */
void
rl_run_free(rl_run *r)
{
	if (r == NULL)
		return;
	rl_trainer_free(r->tr);
	rl_free(r->env, r->best);
	rl_free(r->env, r->hist);
	rl_free(r->env, r);
}

/* Starts a run that trains m on train, validating on val after each epoch. */
rl_status
rl_run_create(rl_env *env, rl_model *m, const int32_t *train, size_t ntrain,
			  const int32_t *val, size_t nval, const rl_train_opts *o, rl_run **out)
{
	rl_run	   *r;
	rl_status	st;

	*out = NULL;
	if (ntrain < 2)
		return rl_error(env, RL_ERR_DATA, "the training data has fewer than 2 tokens");
	if (o->epochs < 1 || o->batch_size < 1 || o->seq_len < 1)
		return rl_error(env, RL_ERR_INVALID, "epochs, batch_size and seq_len must be positive");
	r = rl_alloc0(env, sizeof(rl_run));
	if (r == NULL)
		return env->status;
	r->env = env;
	r->m = m;
	r->o = *o;
	r->train = train;
	r->ntrain = ntrain;
	r->val = val;
	r->nval = val ? nval : 0;
	r->B = (ntrain - 1) < (size_t) o->batch_size ? (int32_t) (ntrain - 1) : o->batch_size;
	r->per_stream = (ntrain - 1) / r->B;
	r->steps = (r->per_stream + o->seq_len - 1) / o->seq_len;
	r->data_hash = rl_run_data_hash(train, ntrain, r->val, r->nval);
	rl_epoch_rules_init(&r->rules, o);
	r->val_loss = NAN;

	st = rl_trainer_create(env, m, r->B, o->seq_len, o->dropout, o->seed, &r->tr);
	if (st == RL_OK && o->freeze_embeddings)
		st = rl_trainer_freeze_embeddings(r->tr);
	if (st == RL_OK)
		st = rl_trainer_enable_adam(r->tr);
	if (st == RL_OK)
		st = rl_trainer_set_precision(r->tr, o->precision);
	if (st == RL_OK)
		st = rl_trainer_set_sampled(r->tr, o->sampled_softmax);
	if (st == RL_OK && o->keep_best && r->nval >= 2 &&
		!(r->best = rl_alloc_array(env, m->nparams, sizeof(float))))
		st = env->status;
	if (st != RL_OK)
	{
		rl_run_free(r);
		return st;
	}
	*out = r;
	return RL_OK;
}

/* Whether every epoch has run, or early stopping ended the run. */
int
rl_run_done(const rl_run *r)
{
	return r->rules.stopped || r->epoch >= r->o.epochs;
}

/* The rules' state before the first epoch. */
void
rl_epoch_rules_init(rl_epoch_rules *e, const rl_train_opts *o)
{
	memset(e, 0, sizeof(*e));
	e->lr = o->learning_rate;
	e->best_val = INFINITY;
}

/*
 * Applies the epoch rules to the validation loss of epoch (from 1); returns
 * 1 when it is the best so far, whose weights the caller keeps.
 */
int
rl_epoch_rules_apply(rl_epoch_rules *e, const rl_train_opts *o, int32_t epoch, double val_loss)
{
	if (isnan(val_loss))
		return 0;
	if (val_loss < e->best_val)
	{
		e->best_val = val_loss;
		e->best_epoch = epoch;
		e->since_best = e->lr_wait = 0;
		return 1;
	}
	e->since_best++;
	e->lr_wait++;
	if (o->lr_decay > 0 && o->lr_decay != 1.0 && o->lr_patience > 0 &&
		e->lr_wait >= o->lr_patience)
	{
		e->lr *= o->lr_decay;
		e->lr_wait = 0;
	}
	if (o->patience > 0 && e->since_best >= o->patience)
		e->stopped = 1;
	return 0;
}

/* Validates the epoch just trained, records it and applies the epoch rules. */
static rl_status
end_epoch(rl_run *r)
{
	rl_env	   *env = r->env;
	double		t0 = rl_now_seconds();
	rl_epoch_stats es;
	void	   *p = r->hist;
	rl_status	st;

	st = rl_trainer_eval(r->tr, r->val, r->nval, &r->val_loss, &r->val_tokens);
	if (st != RL_OK)
		return st;
	r->epoch_seconds += rl_now_seconds() - t0;
	r->epoch++;
	es.epoch = r->epoch;
	es.epochs = r->o.epochs;
	es.learning_rate = r->rules.lr;
	es.train_loss = r->total / (double) (r->per_stream * r->B);
	es.val_loss = r->val_loss;
	es.seconds = r->epoch_seconds;
	es.tokens_per_second = es.seconds > 0 ? (double) (r->per_stream * r->B) / es.seconds : 0;
	if (!rl_grow(env, &p, &r->hist_cap, (size_t) r->nhist + 1, sizeof(rl_epoch_stats)))
		return env->status;
	r->hist = p;
	r->hist[r->nhist++] = es;
	if (rl_epoch_rules_apply(&r->rules, &r->o, r->epoch, r->val_loss) && r->best)
		memcpy(r->best, r->m->params, r->m->nparams * sizeof(float));
	r->train_seconds += r->epoch_seconds;
	r->pos = 0;
	r->total = 0.0;
	r->epoch_seconds = 0.0;
	if (env->epoch_done)
		env->epoch_done(env->ud, &es);
	return RL_OK;
}

/*
 * Trains chunks of the epoch in progress until it ends (it is then
 * validated), max_seconds have passed or max_steps chunks are done (0: no
 * limit), whichever is first; at least one chunk.  tokens and loss, when
 * given, receive the tokens predicted and their summed loss.
 */
static rl_status
advance(rl_run *r, double max_seconds, size_t max_steps, int *epoch_ended,
		size_t *tokens, double *loss_sum)
{
	rl_env	   *env = r->env;
	const rl_train_opts *o = &r->o;
	double		t0 = rl_now_seconds(),
				last = t0;
	size_t		done = 0;
	rl_status	st;

	*epoch_ended = 0;
	if (r->pos == 0)
		rl_trainer_reset_state(r->tr);
	while (r->pos < r->per_stream)
	{
		int32_t		T = (int32_t) ((r->per_stream - r->pos) < (size_t) o->seq_len ?
								   r->per_stream - r->pos : (size_t) o->seq_len);
		double		loss;

		if (!rl_tick(env))
			return env->status;
		st = rl_trainer_step(r->tr, r->train, r->per_stream, r->pos, T, r->rules.lr,
							 o->clip_norm, &loss);
		if (st == RL_ERR_NUMERIC)
			return rl_error(env, RL_ERR_NUMERIC,
							"training diverged in epoch %d (loss is not finite); try a lower learning_rate or clip_norm",
							r->epoch + 1);
		if (st != RL_OK)
			return st;
		r->total += loss * T * r->B;
		r->pos += T;
		done++;
		if (tokens)
			*tokens += (size_t) T * r->B;
		if (loss_sum)
			*loss_sum += loss * T * r->B;
		last = rl_now_seconds();
		if (r->pos < r->per_stream &&
			(last - t0 >= max_seconds || (max_steps > 0 && done >= max_steps)))
		{
			r->epoch_seconds += last - t0;
			return RL_OK;
		}
	}
	r->epoch_seconds += last - t0;
	*epoch_ended = 1;
	return end_epoch(r);
}

/*
 * Trains until the epoch in progress ends (and is validated) or max_seconds
 * have passed, whichever is first; at least one chunk either way.
 */
rl_status
rl_run_advance(rl_run *r, double max_seconds, int *epoch_ended)
{
	*epoch_ended = 0;
	if (rl_run_done(r))
		return RL_OK;
	return advance(r, max_seconds, 0, epoch_ended, NULL, NULL);
}

/*
 * One shard's part of a round of federated training: at most max_steps
 * chunks (0: the rest of the epoch in progress) at the learning rate lr,
 * from the model's weights as they are.  tokens and loss_sum receive what
 * was trained.  Such a run is made with no validation data and as many
 * epochs as it may need; the coordinator validates and keeps the rules.
 */
rl_status
rl_run_train_round(rl_run *r, double lr, size_t max_steps, int *epoch_ended,
				   size_t *tokens, double *loss_sum)
{
	*tokens = 0;
	*loss_sum = 0.0;
	*epoch_ended = 0;
	if (rl_run_done(r))
		return rl_error(r->env, RL_ERR_INVALID, "the run has no epoch left to train");
	if (!(lr > 0 && isfinite(lr)))
		return rl_error(r->env, RL_ERR_INVALID, "the learning rate must be positive");
	r->rules.lr = lr;
	return advance(r, INFINITY, max_steps, epoch_ended, tokens, loss_sum);
}

/* The run's mean loss over a stream with the weights as they are now. */
rl_status
rl_run_evaluate(rl_run *r, const int32_t *ids, size_t n, double *loss, size_t *count)
{
	return rl_trainer_eval(r->tr, ids, n, loss, count);
}

/* Tells the run that the caller wrote new weights into its model. */
void
rl_run_weights_changed(rl_run *r)
{
	rl_trainer_weights_changed(r->tr);
}

/* Where the run is, for progress reports. */
void
rl_run_progress_get(const rl_run *r, rl_run_progress *p)
{
	size_t		done_steps = (r->pos + r->o.seq_len - 1) / r->o.seq_len;
	double		secs = r->train_seconds + r->epoch_seconds;
	double		tokens = (double) r->epoch * r->per_stream * r->B + (double) r->pos * r->B;
	size_t		left_steps;

	memset(p, 0, sizeof(*p));
	p->epochs = r->o.epochs;
	p->epoch = r->pos > 0 || r->epoch == 0 ? r->epoch + 1 : r->epoch;
	p->step = r->pos > 0 ? done_steps : (r->epoch > 0 ? r->steps : 0);
	p->steps = r->steps;
	p->train_loss = r->pos > 0 ? r->total / (double) (r->pos * r->B) :
		(r->nhist > 0 ? r->hist[r->nhist - 1].train_loss : NAN);
	p->val_loss = r->val_loss;
	p->learning_rate = r->rules.lr;
	p->tokens_per_second = secs > 0 ? tokens / secs : 0;
	left_steps = rl_run_done(r) ? 0 :
		(size_t) (r->o.epochs - r->epoch) * r->steps - done_steps;
	p->seconds_left = secs > 0 && tokens > 0 ?
		(double) left_steps * r->o.seq_len * r->B * secs / tokens : NAN;
}

/* The finished epochs, in order. */
const rl_epoch_stats *
rl_run_history(const rl_run *r, int32_t *n)
{
	*n = r->nhist;
	return r->hist;
}

/* Ends the run: leaves the kept epoch's weights in the model and sums it up. */
rl_status
rl_run_finish(rl_run *r, rl_train_result *res)
{
	int32_t		kept = r->epoch;

	memset(res, 0, sizeof(*res));
	res->train_loss = res->val_loss = NAN;
	res->train_tokens = r->per_stream * r->B;
	res->val_tokens = r->val_tokens;
	res->epochs_run = r->epoch;
	res->best_epoch = r->rules.best_epoch;
	res->stopped_early = r->rules.stopped;
	if (r->best && r->rules.best_epoch > 0 && r->rules.best_epoch != r->epoch)
	{
		memcpy(r->m->params, r->best, r->m->nparams * sizeof(float));
		rl_trainer_weights_changed(r->tr);
		kept = r->rules.best_epoch;
	}
	res->kept_epoch = kept;
	if (kept > 0 && kept <= r->nhist)
	{
		res->train_loss = r->hist[kept - 1].train_loss;
		res->val_loss = r->hist[kept - 1].val_loss;
	}
	res->seconds = r->train_seconds;
	res->tokens_per_second = r->train_seconds > 0 ?
		(double) res->train_tokens * r->epoch / r->train_seconds : 0;
	return RL_OK;
}

/* Trains m on the train stream for o->epochs epochs, validating on val. */
rl_status
rl_train(rl_env *env, rl_model *m, const int32_t *train, size_t ntrain,
		 const int32_t *val, size_t nval, const rl_train_opts *o,
		 rl_train_result *res)
{
	rl_run	   *r;
	int			ended;
	rl_status	st;

	memset(res, 0, sizeof(*res));
	res->train_loss = res->val_loss = NAN;
	st = rl_run_create(env, m, train, ntrain, val, nval, o, &r);
	if (st != RL_OK)
		return st;
	while (st == RL_OK && !rl_run_done(r))
		st = rl_run_advance(r, INFINITY, &ended);
	if (st == RL_OK)
		st = rl_run_finish(r, res);
	rl_run_free(r);
	return st;
}
