/*
 * test_run.c
 *		Training runs taken a slice at a time (run.c) and their checkpoints
 *		(checkpoint.c): a run saved and restored into a new process's run
 *		continues bit for bit; keep-best, early stopping and learning-rate
 *		decay follow the epoch rules, recomputed here from the run's own
 *		history; a checkpoint of other options, data or model, a truncated
 *		or corrupted one, is refused without a crash or a leak; allocation
 *		failures; progress reports.
 */
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HIST 128

/* A character corpus: vocabulary, training and validation streams. */
typedef struct corpus
{
	rl_vocab   *vocab;
	int32_t    *train,
			   *val;
	size_t		ntrain,
				nval;
} corpus;

/* Builds a corpus from ndocs documents, the last val_docs for validation. */
static void
corpus_from_docs(rl_env *env, char *const *docs, int ndocs, int val_docs, corpus *c)
{
	rl_builder *b;
	int			i;

	if (rl_builder_create(env, TEST_TEXT_V01(RL_TOK_CHAR, 1), &b) != RL_OK)
		tap_bail("rl_builder_create: %s", env->errmsg);
	for (i = 0; i < ndocs; i++)
		if (rl_builder_add(b, docs[i], strlen(docs[i])) != RL_OK)
			tap_bail("rl_builder_add: %s", env->errmsg);
	if (rl_builder_finish(b, (size_t) val_docs, 0, &c->vocab, &c->train, &c->ntrain,
						  &c->val, &c->nval) != RL_OK)
		tap_bail("rl_builder_finish: %s", env->errmsg);
	rl_builder_free(b);
}

/* Sentences with some structure: the resume tests train on them. */
static void
corpus_text(rl_env *env, corpus *c)
{
	static const char *const base[] = {
		"the cat sat on the mat",
		"a dog ran in the fog",
		"the cat ran on the log",
		"a cat sat in the sun",
		"the dog sat on the mat",
		"a log lay in the fog",
		"the sun sat on the log",
		"a dog and a cat ran",
		"the mat lay in the sun",
		"a fog sat on the dog",
	};
	char	   *docs[10];
	int			i;

	for (i = 0; i < 10; i++)
		docs[i] = (char *) base[i];
	corpus_from_docs(env, docs, 10, 2, c);
}

/*
 * Letters from a Markov chain (mostly the next letter, often three on, else
 * any): a little to learn, then a small training stream to memorise, so at a
 * high rate the validation loss falls for a few epochs and then rises.
 */
static void
corpus_random(rl_env *env, corpus *c)
{
	char		buf[9][24];
	char	   *docs[9];
	rl_rng		rng;
	int			i,
				k,
				prev = 0;

	rl_rng_seed(&rng, 424242);
	for (i = 0; i < 9; i++)
	{
		for (k = 0; k < 20; k++)
		{
			double		u = rl_rng_uniform(&rng);
			int			next;

			if (u < 0.6)
				next = (prev + 1) % 8;
			else if (u < 0.8)
				next = (prev + 3) % 8;
			else
				next = (int) (rl_rng_uniform(&rng) * 8);
			buf[i][k] = (char) ('a' + next);
			prev = next;
		}
		buf[i][20] = '\0';
		docs[i] = buf[i];
	}
	corpus_from_docs(env, docs, 9, 3, c);
}

/* Frees a corpus. */
static void
corpus_free(rl_env *env, corpus *c)
{
	rl_vocab_free(env, c->vocab);
	rl_free(env, c->train);
	rl_free(env, c->val);
}

/* A small char model over a copy of the corpus vocabulary, initialised from seed. */
static rl_model *
corpus_model(rl_env *env, const corpus *c, rl_cell_kind cell, int L, uint64_t seed)
{
	return test_model_for_vocab(env, c->vocab, cell, 8, 16, L, seed);
}

/* Options of a small run. */
static rl_train_opts
base_opts(void)
{
	rl_train_opts o;

	memset(&o, 0, sizeof(o));
	o.epochs = 3;
	o.batch_size = 4;
	o.seq_len = 8;
	o.learning_rate = 0.01;
	o.clip_norm = 5.0;
	o.dropout = 0.0;
	o.seed = 11;
	return o;
}

/* The overfitting setting: the random corpus at a high rate. */
static rl_train_opts
overfit_opts(void)
{
	rl_train_opts o = base_opts();

	o.epochs = 40;
	o.learning_rate = 0.05;
	return o;
}

/*
 * Runs to the end through rl_run_advance (whole epochs), copying the
 * history out; returns the first failing status.
 */
static rl_status
run_all(rl_env *env, rl_model *m, const corpus *c, int use_val, const rl_train_opts *o,
		rl_train_result *res, rl_epoch_stats *hist, int32_t *nhist)
{
	rl_run	   *r;
	int			ended;
	rl_status	st;
	const rl_epoch_stats *h;
	int32_t		n = 0;

	memset(res, 0, sizeof(*res));
	*nhist = 0;
	st = rl_run_create(env, m, c->train, c->ntrain, use_val ? c->val : NULL,
					   use_val ? c->nval : 0, o, &r);
	if (st != RL_OK)
		return st;
	while (st == RL_OK && !rl_run_done(r))
		st = rl_run_advance(r, INFINITY, &ended);
	h = rl_run_history(r, &n);
	if (n > MAX_HIST)
		n = MAX_HIST;
	if (n > 0)
		memcpy(hist, h, (size_t) n * sizeof(*h));
	*nhist = n;
	if (st == RL_OK)
		st = rl_run_finish(r, res);
	rl_run_free(r);
	return st;
}

/* Whether two histories have the same rates and losses, bit for bit. */
static int
same_history(const rl_epoch_stats *a, int32_t na, const rl_epoch_stats *b, int32_t nb)
{
	int32_t		i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
	{
		if (a[i].epoch != b[i].epoch ||
			memcmp(&a[i].learning_rate, &b[i].learning_rate, sizeof(double)) != 0 ||
			memcmp(&a[i].train_loss, &b[i].train_loss, sizeof(double)) != 0 ||
			memcmp(&a[i].val_loss, &b[i].val_loss, sizeof(double)) != 0)
			return 0;
	}
	return 1;
}

/* Whether two results agree bit for bit on everything but the timings. */
static int
same_result(const rl_train_result *a, const rl_train_result *b)
{
	return memcmp(&a->train_loss, &b->train_loss, sizeof(double)) == 0 &&
		memcmp(&a->val_loss, &b->val_loss, sizeof(double)) == 0 &&
		a->epochs_run == b->epochs_run && a->best_epoch == b->best_epoch &&
		a->kept_epoch == b->kept_epoch && a->stopped_early == b->stopped_early &&
		a->train_tokens == b->train_tokens && a->val_tokens == b->val_tokens;
}

/* ---------- 1. resume is bit-identical ---------- */

typedef struct resumed
{
	rl_model   *m;
	rl_train_result res;
	rl_epoch_stats hist[MAX_HIST];
	int32_t		nhist;
	int			calls;			/* rl_run_advance calls */
	int			saves;			/* checkpoints taken */
	int			epoch_end_saves;	/* of them, right after an epoch ended */
	int			start_saves;	/* of them, before the first chunk */
	int			one_chunk;		/* every call trained exactly one chunk */
	int			progress_same;	/* every restored run reported the saved one's progress */
	rl_status	st;
} resumed;

/*
 * Saves r, frees it and its model, and continues in a new run on a fresh
 * model (initialised from another seed: the restore must overwrite it).
 */
static rl_status
checkpoint_cycle(rl_env *env, const corpus *c, rl_cell_kind cell, int L, const rl_train_opts *o,
				 rl_run **r, rl_model **m, uint64_t fresh_seed, int *progress_same)
{
	int			done_before = rl_run_done(*r);
	uint8_t    *blob;
	size_t		len;
	rl_run_progress before,
				after;
	rl_status	st;

	rl_run_progress_get(*r, &before);
	st = rl_run_save(*r, &blob, &len);
	if (st != RL_OK)
		return st;
	rl_run_free(*r);
	rl_model_free(env, *m);
	*r = NULL;
	*m = corpus_model(env, c, cell, L, fresh_seed);
	st = rl_run_create(env, *m, c->train, c->ntrain, c->val, c->nval, o, r);
	if (st == RL_OK)
		st = rl_run_restore(*r, blob, len);
	rl_free(env, blob);
	if (st == RL_OK)
	{
		/* the restored run reports where the saved one was */
		rl_run_progress_get(*r, &after);
		if (after.epoch != before.epoch || after.epochs != before.epochs ||
			after.step != before.step || after.steps != before.steps ||
			memcmp(&after.train_loss, &before.train_loss, sizeof(double)) != 0 ||
			memcmp(&after.val_loss, &before.val_loss, sizeof(double)) != 0 ||
			after.learning_rate != before.learning_rate ||
			(isnan(after.seconds_left) != isnan(before.seconds_left)) ||
			rl_run_done(*r) != done_before)
			*progress_same = 0;
	}
	return st;
}

/* Trains one chunk per call, checkpointing every `every` calls, at every epoch end and at the start. */
static void
run_resumed(rl_env *env, const corpus *c, rl_cell_kind cell, int L, uint64_t seed,
			const rl_train_opts *o, int every, resumed *out)
{
	rl_run	   *r = NULL;
	rl_model   *m = corpus_model(env, c, cell, L, seed);
	const rl_epoch_stats *h;
	rl_status	st;
	int32_t		n;
	size_t		want_step = 0;

	memset(out, 0, sizeof(*out));
	out->one_chunk = 1;
	out->progress_same = 1;
	st = rl_run_create(env, m, c->train, c->ntrain, c->val, c->nval, o, &r);
	if (st == RL_OK)
	{
		st = checkpoint_cycle(env, c, cell, L, o, &r, &m, seed + 1000, &out->progress_same);
		out->saves++;
		out->start_saves++;
	}
	while (st == RL_OK && !rl_run_done(r))
	{
		rl_run_progress p;
		int			ended = 0;

		st = rl_run_advance(r, 0.0, &ended);
		if (st != RL_OK)
			break;
		rl_run_progress_get(r, &p);
		out->calls++;
		/* one chunk a call: the step moves by one, and the epoch ends at the last */
		want_step++;
		if (p.step != want_step || (ended != 0) != (want_step == p.steps))
			out->one_chunk = 0;
		if (ended)
			want_step = 0;
		if (ended || out->calls % every == 0)
		{
			st = checkpoint_cycle(env, c, cell, L, o, &r, &m, seed + 1000 + (uint64_t) out->saves,
								  &out->progress_same);
			out->saves++;
			out->epoch_end_saves += ended;
		}
	}
	if (st == RL_OK)
	{
		h = rl_run_history(r, &n);
		out->nhist = n > MAX_HIST ? MAX_HIST : n;
		memcpy(out->hist, h, (size_t) out->nhist * sizeof(*h));
		st = rl_run_finish(r, &out->res);
	}
	rl_run_free(r);
	out->m = m;
	out->st = st;
}

/* One resume case: rl_train uninterrupted against the checkpointed run. */
static void
check_resume_case(rl_env *env, const corpus *c, const char *name, rl_cell_kind cell, int L,
				  const rl_train_opts *o, int every, int want_rules)
{
	rl_model   *a = corpus_model(env, c, cell, L, 5),
			   *h = corpus_model(env, c, cell, L, 5);
	rl_train_result ra,
				rh;
	rl_epoch_stats hist[MAX_HIST];
	int32_t		nhist;
	resumed    *b = malloc(sizeof(resumed));
	rl_status	sa,
				sh;
	int			decays = 0,
				i;

	if (b == NULL)
		tap_bail("out of memory");
	sa = rl_train(env, a, c->train, c->ntrain, c->val, c->nval, o, &ra);
	sh = run_all(env, h, c, 1, o, &rh, hist, &nhist);
	run_resumed(env, c, cell, L, 5, o, every, b);
	for (i = 1; i < nhist; i++)
		decays += hist[i].learning_rate < hist[i - 1].learning_rate;
	tap_diag("%s: %d chunk calls, %d checkpoints (%d at an epoch's end, %d at the start); "
			 "%d epochs, kept %d, best %d, %d rate decays, val %.6f",
			 name, b->calls, b->saves, b->epoch_end_saves, b->start_saves,
			 ra.epochs_run, ra.kept_epoch, ra.best_epoch, decays, ra.val_loss);
	tap_ok(sa == RL_OK && sh == RL_OK && b->st == RL_OK &&
		   memcmp(a->params, b->m->params, a->nparams * sizeof(float)) == 0 &&
		   same_result(&ra, &b->res) && same_result(&ra, &rh) &&
		   same_history(hist, nhist, b->hist, b->nhist) && isfinite(ra.val_loss),
		   "%s: a run checkpointed and restored %d times ends with rl_train's weights, "
		   "result and losses, bit for bit%s%s",
		   name, b->saves, b->st != RL_OK ? ": " : "", b->st != RL_OK ? env->errmsg : "");
	tap_ok(b->saves > b->epoch_end_saves + 1 && b->epoch_end_saves == ra.epochs_run &&
		   b->start_saves == 1 && b->one_chunk && b->progress_same &&
		   (!want_rules || (decays > 0 && ra.kept_epoch < ra.epochs_run && ra.stopped_early)),
		   "%s: the checkpoints fell mid-epoch, at each epoch's end and at the start, one chunk a call, "
		   "and each restored run reported the saved one's progress%s", name,
		   want_rules ? "; the rate fell, the best epoch was kept and the run stopped early" : "");
	rl_model_free(env, a);
	rl_model_free(env, h);
	rl_model_free(env, b->m);
	free(b);
}

/* Resume after checkpoints is bit-identical to an uninterrupted run. */
static void
check_resume(rl_env *env, const corpus *text, const corpus *rnd)
{
	rl_train_opts o = base_opts();

	o.dropout = 0.2;
	o.keep_best = 1;
	check_resume_case(env, text, "lstm, dropout 0.2, keep_best", RL_CELL_LSTM, 1, &o, 3, 0);

	o = base_opts();
	check_resume_case(env, text, "gru, 2 layers", RL_CELL_GRU, 2, &o, 4, 0);

	/* every epoch rule at work: the best weights, the rate and the counters travel */
	o = overfit_opts();
	o.epochs = 30;
	o.keep_best = 1;
	o.patience = 4;
	o.lr_decay = 0.5;
	o.lr_patience = 2;
	check_resume_case(env, rnd, "rnn, overfitting, every epoch rule", RL_CELL_RNN, 1, &o, 3, 1);

	/* frozen embeddings: the Adam state leaves them out, and resuming keeps them frozen */
	o = base_opts();
	o.freeze_embeddings = 1;
	check_resume_case(env, text, "gru, frozen embeddings", RL_CELL_GRU, 1, &o, 3, 0);

	/* the sampled output layer: its draws come from the saved generator */
	o = base_opts();
	o.sampled_softmax = 6;
	check_resume_case(env, text, "lstm, sampled_softmax 6", RL_CELL_LSTM, 1, &o, 3, 0);
}

/* freeze_embeddings: the embeddings stay bit for bit, the rest trains; checkpoints tell them apart. */
static void
check_freeze(rl_env *env, const corpus *c)
{
	rl_train_opts o = base_opts();
	rl_model   *m = corpus_model(env, c, RL_CELL_LSTM, 1, 9),
			   *u = corpus_model(env, c, RL_CELL_LSTM, 1, 9);
	size_t		E = (size_t) m->cfg.vocab_size * m->cfg.embedding_dim;
	float	   *before = malloc(m->nparams * sizeof(float));
	rl_train_result res;
	rl_epoch_stats hist[MAX_HIST];
	int32_t		nhist;
	rl_status	st,
				su;
	rl_run	   *r = NULL,
			   *r2 = NULL;
	uint8_t    *blob = NULL;
	size_t		len = 0;
	int			ended;

	if (before == NULL)
		tap_bail("out of memory");
	memcpy(before, m->params, m->nparams * sizeof(float));
	o.freeze_embeddings = 1;
	st = run_all(env, m, c, 1, &o, &res, hist, &nhist);
	o.freeze_embeddings = 0;
	su = run_all(env, u, c, 1, &o, &res, hist, &nhist);
	tap_ok(st == RL_OK && memcmp(m->params, before, E * sizeof(float)) == 0 &&
		   memcmp(m->params + E, before + E, (m->nparams - E) * sizeof(float)) != 0,
		   "freeze_embeddings: the embedding matrix is bit-identical after training, the other weights changed");
	tap_ok(su == RL_OK && memcmp(u->params, before, E * sizeof(float)) != 0,
		   "without it the embedding matrix changes");
	o.freeze_embeddings = 1;
	len = rl_run_memory(&m->cfg, &o);
	o.freeze_embeddings = 0;
	tap_ok(len + 2 * E * sizeof(float) == rl_run_memory(&m->cfg, &o),
		   "frozen embeddings have no Adam moments: the memory estimate is 2 V E floats lower");
	len = 0;

	/* a frozen run's checkpoint does not resume an unfrozen run, nor the other way round */
	o.freeze_embeddings = 1;
	st = rl_run_create(env, m, c->train, c->ntrain, c->val, c->nval, &o, &r);
	if (st == RL_OK)
		st = rl_run_advance(r, 0.0, &ended);
	if (st == RL_OK)
		st = rl_run_save(r, &blob, &len);
	o.freeze_embeddings = 0;
	if (st == RL_OK)
		st = rl_run_create(env, u, c->train, c->ntrain, c->val, c->nval, &o, &r2);
	tap_ok(st == RL_OK && rl_run_restore(r2, blob, len) == RL_ERR_FORMAT &&
		   strstr(env->errmsg, "frozen") != NULL,
		   "a checkpoint with frozen embeddings is refused by a run that trains them [%s]", env->errmsg);
	rl_run_free(r);
	rl_run_free(r2);
	rl_free(env, blob);
	r = r2 = NULL;
	blob = NULL;
	st = rl_run_create(env, u, c->train, c->ntrain, c->val, c->nval, &o, &r);
	if (st == RL_OK)
		st = rl_run_advance(r, 0.0, &ended);
	if (st == RL_OK)
		st = rl_run_save(r, &blob, &len);
	o.freeze_embeddings = 1;
	if (st == RL_OK)
		st = rl_run_create(env, m, c->train, c->ntrain, c->val, c->nval, &o, &r2);
	tap_ok(st == RL_OK && rl_run_restore(r2, blob, len) == RL_ERR_FORMAT &&
		   strstr(env->errmsg, "freezes") != NULL,
		   "and one that trains them is refused by a run that freezes them [%s]", env->errmsg);
	rl_run_free(r);
	rl_run_free(r2);
	rl_free(env, blob);
	free(before);
	rl_model_free(env, m);
	rl_model_free(env, u);
}

/* ---------- 2. keep_best ---------- */

static void
check_keep_best(rl_env *env, const corpus *c)
{
	rl_train_opts o = overfit_opts();
	rl_train_result res,
				r2;
	rl_epoch_stats hist[MAX_HIST];
	int32_t		n,
				n2,
				i,
				argmin = 0;
	double		minv = INFINITY,
				ev = NAN;
	size_t		count = 0;
	rl_model   *m = corpus_model(env, c, RL_CELL_LSTM, 1, 5),
			   *m2 = corpus_model(env, c, RL_CELL_LSTM, 1, 5);
	rl_status	st;

	o.keep_best = 1;
	st = run_all(env, m, c, 1, &o, &res, hist, &n);
	for (i = 0; i < n; i++)
		if (hist[i].val_loss < minv)
		{
			minv = hist[i].val_loss;
			argmin = i + 1;
		}
	tap_diag("keep_best: %d epochs, val loss from %.4f to a minimum %.4f at epoch %d, last %.4f",
			 n, n > 0 ? hist[0].val_loss : NAN, minv, argmin, n > 0 ? hist[n - 1].val_loss : NAN);
	tap_ok(st == RL_OK && n == o.epochs && res.epochs_run == o.epochs && !res.stopped_early &&
		   res.val_loss == minv && res.kept_epoch == argmin && res.best_epoch == argmin,
		   "keep_best: the result's val_loss is the history's minimum and kept_epoch its first argmin "
		   "(%.6f at epoch %d)", res.val_loss, res.kept_epoch);
	tap_ok(res.kept_epoch < res.epochs_run && hist[n - 1].val_loss > minv,
		   "keep_best: the overfitting setting's best epoch (%d) is not the last (%d)",
		   res.kept_epoch, res.epochs_run);
	st = rl_eval_stream(env, m, c->val, c->nval, o.batch_size, o.seq_len, &ev, &count);
	tap_ok(st == RL_OK && fabs(ev - res.val_loss) <= 1e-9 && count == res.val_tokens &&
		   res.train_loss == hist[res.kept_epoch - 1].train_loss,
		   "keep_best: the finished model evaluates to the kept epoch's val loss (%.9f, %.9f)",
		   ev, res.val_loss);

	/* the kept weights are those the run had after that epoch */
	o.keep_best = 0;
	o.epochs = res.kept_epoch;
	st = run_all(env, m2, c, 1, &o, &r2, hist, &n2);
	tap_ok(st == RL_OK && memcmp(m->params, m2->params, m->nparams * sizeof(float)) == 0,
		   "keep_best: the finished model has the weights of a run stopped after epoch %d, bit for bit",
		   res.kept_epoch);
	rl_model_free(env, m);
	rl_model_free(env, m2);
}

/* ---------- 3. early stopping ---------- */

/*
 * Replays the epoch rules on a history: whether each epoch's rate is the
 * one the rules give, where the run must stop, and how often the rate fell.
 */
typedef struct replay
{
	int			rates_ok;
	int32_t		stop_at;		/* the epoch patience stops at; 0 = none */
	int32_t		best_epoch;
	int			decays;
	int32_t		first_decayed;	/* the first epoch trained at a decayed rate; 0 = none */
} replay;

static replay
replay_rules(const rl_epoch_stats *h, int32_t n, const rl_train_opts *o)
{
	replay		rp;
	double		best = INFINITY,
				lr = o->learning_rate;
	int32_t		since = 0,
				wait = 0,
				i;

	memset(&rp, 0, sizeof(rp));
	rp.rates_ok = 1;
	for (i = 0; i < n; i++)
	{
		if (h[i].learning_rate != lr || h[i].epoch != i + 1)
			rp.rates_ok = 0;
		if (h[i].val_loss < best)
		{
			best = h[i].val_loss;
			rp.best_epoch = i + 1;
			since = wait = 0;
			continue;
		}
		since++;
		wait++;
		if (o->lr_decay > 0 && o->lr_decay != 1.0 && o->lr_patience > 0 && wait >= o->lr_patience)
		{
			lr *= o->lr_decay;
			wait = 0;
			rp.decays++;
			if (rp.first_decayed == 0)
				rp.first_decayed = i + 2;
		}
		if (o->patience > 0 && since >= o->patience && rp.stop_at == 0)
			rp.stop_at = i + 1;
	}
	return rp;
}

/*
 * Whether a run that stopped after n epochs obeyed patience: its last
 * `patience` epochs did not improve on the best before them, and (in
 * *no_earlier) no earlier window of `patience` epochs failed to improve.
 */
static int
stop_rule_ok(const rl_epoch_stats *hist, int32_t n, int32_t patience, int *no_earlier)
{
	double		best_before = INFINITY;
	int32_t		i,
				k;
	int			last_ok = n > patience;

	for (i = 0; i < n - patience; i++)
		best_before = fmin(best_before, hist[i].val_loss);
	for (i = n - patience; i < n && i >= 0; i++)
		last_ok &= !(hist[i].val_loss < best_before);
	*no_earlier = 1;
	for (k = patience; k < n; k++)
	{
		double		b = INFINITY;
		int			improved = 0;

		for (i = 0; i < k - patience; i++)
			b = fmin(b, hist[i].val_loss);
		for (i = k - patience; i < k; i++)
		{
			if (hist[i].val_loss < b)
				improved = 1;
			b = fmin(b, hist[i].val_loss);
		}
		if (!improved)
			*no_earlier = 0;
	}
	return last_ok;
}

/* Whether an improvement came after fewer than patience epochs without one. */
static int
wait_interrupted(const rl_epoch_stats *hist, int32_t n, int32_t patience)
{
	double		best = INFINITY;
	int32_t		i,
				wait = 0;
	int			hit = 0;

	for (i = 0; i < n; i++)
	{
		if (hist[i].val_loss < best)
		{
			best = hist[i].val_loss;
			hit |= wait > 0 && wait < patience;
			wait = 0;
		}
		else
			wait++;
	}
	return hit;
}

static void
check_early_stopping(rl_env *env, const corpus *c)
{
	rl_train_opts o = overfit_opts();
	rl_train_result res,
				rt;
	rl_epoch_stats hist[MAX_HIST];
	int32_t		n;
	rl_model   *m = corpus_model(env, c, RL_CELL_GRU, 1, 5),
			   *mt = corpus_model(env, c, RL_CELL_GRU, 1, 5);
	rl_status	st,
				stt;
	replay		rp;
	int			window_ok = 1,
				last_ok;

	o.epochs = 60;
	o.patience = 2;
	st = run_all(env, m, c, 1, &o, &res, hist, &n);
	rp = replay_rules(hist, n, &o);
	tap_diag("early stopping: stopped after %d of %d epochs, best epoch %d", res.epochs_run,
			 o.epochs, res.best_epoch);
	tap_ok(st == RL_OK && res.stopped_early == 1 && res.epochs_run < o.epochs &&
		   n == res.epochs_run && res.kept_epoch == res.epochs_run,
		   "patience 2: the run stops early (%d of %d epochs), keeping the last epoch without keep_best",
		   res.epochs_run, o.epochs);

	last_ok = stop_rule_ok(hist, n, o.patience, &window_ok);
	tap_ok(last_ok && window_ok && rp.stop_at == n && rp.best_epoch == res.best_epoch &&
		   res.best_epoch == n - o.patience,
		   "patience 2: the last 2 epochs did not improve on the best (epoch %d) and no earlier 2 epochs in a row failed to",
		   res.best_epoch);

	/* rl_train stops at the same epoch, with keep_best going back to the best */
	o.keep_best = 1;
	stt = rl_train(env, mt, c->train, c->ntrain, c->val, c->nval, &o, &rt);
	tap_ok(stt == RL_OK && rt.stopped_early && rt.epochs_run == res.epochs_run &&
		   rt.kept_epoch == res.best_epoch && rt.val_loss == hist[res.best_epoch - 1].val_loss,
		   "patience 2 with keep_best: rl_train stops at epoch %d too and keeps epoch %d",
		   rt.epochs_run, rt.kept_epoch);
	rl_model_free(env, m);
	rl_model_free(env, mt);

	/*
	 * An improvement restarts the count: a history where one comes after an
	 * epoch without one needs a noisy validation loss (a little dropout); the
	 * first setting that has one counts.
	 */
	{
		static const struct
		{
			rl_cell_kind cell;
			double		dropout,
						lr;
		}			tries[] = {
			{RL_CELL_LSTM, 0.1, 0.02}, {RL_CELL_LSTM, 0.1, 0.01}, {RL_CELL_LSTM, 0.1, 0.03},
			{RL_CELL_GRU, 0.05, 0.01}, {RL_CELL_LSTM, 0.05, 0.03},
		};
		int			t,
					all_ok = 1,
					interrupted = 0;

		for (t = 0; t < (int) (sizeof(tries) / sizeof(tries[0])) && !interrupted; t++)
		{
			rl_model   *m2 = corpus_model(env, c, tries[t].cell, 1, 5);

			o = overfit_opts();
			o.epochs = 60;
			o.patience = 2;
			o.dropout = tries[t].dropout;
			o.learning_rate = tries[t].lr;
			st = run_all(env, m2, c, 1, &o, &res, hist, &n);
			rp = replay_rules(hist, n, &o);
			all_ok &= st == RL_OK && n == res.epochs_run && res.stopped_early &&
				stop_rule_ok(hist, n, o.patience, &window_ok) && window_ok && rp.stop_at == n;
			interrupted |= wait_interrupted(hist, n, o.patience);
			rl_model_free(env, m2);
		}
		tap_ok(all_ok && interrupted,
			   "patience 2: an improvement after an epoch without one restarts the count "
			   "(%d setting(s), stopped after %d epochs)", t, n);
	}
}

/*
 * Ties: at a rate too small to move a weight every epoch has the same
 * validation loss, which is no improvement; the first epoch is the best.
 */
static void
check_ties(rl_env *env, const corpus *c)
{
	rl_train_opts o = overfit_opts();
	rl_train_result res;
	rl_epoch_stats hist[MAX_HIST];
	int32_t		n,
				i;
	rl_model   *m = corpus_model(env, c, RL_CELL_GRU, 1, 5);
	rl_status	st;
	int			equal = 1,
				halved = 1;

	o.learning_rate = 1e-30;
	o.epochs = 10;
	o.keep_best = 1;
	o.patience = 4;
	o.lr_decay = 0.5;
	o.lr_patience = 1;
	st = run_all(env, m, c, 1, &o, &res, hist, &n);
	for (i = 1; i < n; i++)
	{
		equal &= memcmp(&hist[i].val_loss, &hist[0].val_loss, sizeof(double)) == 0;
		halved &= hist[i].learning_rate == hist[i - 1].learning_rate * (i == 1 ? 1.0 : 0.5);
	}
	tap_ok(st == RL_OK && n == 5 && equal && halved && res.stopped_early && res.epochs_run == 5 &&
		   res.best_epoch == 1 && res.kept_epoch == 1,
		   "ties are no improvement: equal val losses keep epoch 1, halve the rate after each later epoch and stop after 1 + patience 4");
	rl_model_free(env, m);
}

/* ---------- 4. learning-rate decay ---------- */

static void
check_lr_decay(rl_env *env, const corpus *c)
{
	rl_train_opts o = overfit_opts(),
				plain;
	rl_train_result res,
				rp_res;
	rl_epoch_stats *hist = malloc(2 * MAX_HIST * sizeof(rl_epoch_stats)),
			   *phist;
	int32_t		n,
				pn,
				i;
	rl_model   *m = corpus_model(env, c, RL_CELL_GRU, 1, 5),
			   *pm = corpus_model(env, c, RL_CELL_GRU, 1, 5);
	rl_status	st,
				pst;
	replay		rp;
	int			same_before = 1;

	if (hist == NULL)
		tap_bail("out of memory");
	phist = hist + MAX_HIST;
	o.epochs = 20;
	o.lr_decay = 0.5;
	o.lr_patience = 1;
	plain = o;
	plain.lr_decay = 0.0;
	plain.lr_patience = 0;
	st = run_all(env, m, c, 1, &o, &res, hist, &n);
	pst = run_all(env, pm, c, 1, &plain, &rp_res, phist, &pn);
	rp = replay_rules(hist, n, &o);
	tap_diag("lr decay: %d decays, first epoch at a decayed rate %d, final rate %g",
			 rp.decays, rp.first_decayed, n > 0 ? hist[n - 1].learning_rate : NAN);
	tap_ok(st == RL_OK && n == o.epochs && hist[0].learning_rate == o.learning_rate && rp.rates_ok,
		   "lr_decay 0.5, lr_patience 1: each epoch's rate is the one the rule gives from the val losses before it");
	tap_ok(rp.decays >= 1 && rp.first_decayed > 1 && rp.first_decayed <= n &&
		   hist[n - 1].learning_rate < o.learning_rate,
		   "lr decay: the rate fell %d time(s), first for epoch %d", rp.decays, rp.first_decayed);
	/* the decayed rate is the one trained with: until then the runs agree */
	for (i = 0; i < rp.first_decayed - 1 && i < pn && i < n; i++)
		if (hist[i].train_loss != phist[i].train_loss)
			same_before = 0;
	tap_ok(pst == RL_OK && rp.first_decayed > 1 && same_before &&
		   hist[rp.first_decayed - 1].train_loss != phist[rp.first_decayed - 1].train_loss &&
		   memcmp(m->params, pm->params, m->nparams * sizeof(float)) != 0,
		   "lr decay: training matches a run without decay up to epoch %d and differs from then on",
		   rp.first_decayed);

	/*
	 * lr_patience 2: the wait restarts on an improvement as well as on a
	 * decay.  A history where an improvement cuts a wait short needs a noisy
	 * validation loss: a little dropout; the first setting that has one counts.
	 */
	{
		static const struct
		{
			rl_cell_kind cell;
			double		dropout,
						lr;
		}			tries[] = {
			{RL_CELL_LSTM, 0.1, 0.02}, {RL_CELL_LSTM, 0.1, 0.01}, {RL_CELL_LSTM, 0.1, 0.03},
			{RL_CELL_GRU, 0.05, 0.01}, {RL_CELL_LSTM, 0.05, 0.03},
		};
		int			t,
					all_ok = 1,
					decays = 0,
					interrupted = 0;

		for (t = 0; t < (int) (sizeof(tries) / sizeof(tries[0])) && !interrupted; t++)
		{
			rl_model   *m2 = corpus_model(env, c, tries[t].cell, 1, 5);
			int			wait = 0;
			double		best = INFINITY;

			o.lr_patience = 2;
			o.dropout = tries[t].dropout;
			o.learning_rate = tries[t].lr;
			st = run_all(env, m2, c, 1, &o, &res, hist, &n);
			rp = replay_rules(hist, n, &o);
			all_ok &= st == RL_OK && n == o.epochs && rp.rates_ok;
			decays += rp.decays;
			for (i = 0; i < n; i++)
			{
				if (hist[i].val_loss < best)
				{
					best = hist[i].val_loss;
					interrupted |= wait == 1;
					wait = 0;
				}
				else if (++wait >= o.lr_patience)
					wait = 0;
			}
			rl_model_free(env, m2);
		}
		tap_ok(all_ok && decays >= 1 && interrupted,
			   "lr_patience 2: the rates follow the rule, through an improvement that restarts the wait "
			   "(%d setting(s), %d decays)", t, decays);
	}
	free(hist);
	rl_model_free(env, m);
	rl_model_free(env, pm);
}

/* ---------- 5. no validation data ---------- */

static void
check_no_val(rl_env *env, const corpus *c)
{
	rl_train_opts o = overfit_opts(),
				plain;
	rl_train_result res,
				pres;
	rl_epoch_stats hist[MAX_HIST],
				phist[MAX_HIST];
	int32_t		n,
				pn,
				i;
	rl_model   *m = corpus_model(env, c, RL_CELL_LSTM, 1, 5),
			   *pm = corpus_model(env, c, RL_CELL_LSTM, 1, 5);
	rl_status	st,
				pst;
	int			nan_ok = 1;

	o.epochs = 12;
	plain = o;
	o.keep_best = 1;
	o.patience = 1;
	o.lr_decay = 0.5;
	o.lr_patience = 1;
	st = run_all(env, m, c, 0, &o, &res, hist, &n);
	pst = run_all(env, pm, c, 0, &plain, &pres, phist, &pn);
	for (i = 0; i < n; i++)
		if (!isnan(hist[i].val_loss) || hist[i].learning_rate != o.learning_rate)
			nan_ok = 0;
	tap_ok(st == RL_OK && res.epochs_run == o.epochs && n == o.epochs && !res.stopped_early &&
		   res.best_epoch == 0 && res.kept_epoch == o.epochs && isnan(res.val_loss) &&
		   res.val_tokens == 0 && nan_ok && res.train_loss == hist[n - 1].train_loss,
		   "without validation data every epoch runs at the first rate, best_epoch 0, kept_epoch %d",
		   res.kept_epoch);
	tap_ok(pst == RL_OK && memcmp(m->params, pm->params, m->nparams * sizeof(float)) == 0 &&
		   same_result(&res, &pres),
		   "without validation data keep_best, patience and lr_decay change nothing, bit for bit");
	rl_model_free(env, m);
	rl_model_free(env, pm);
}

/* ---------- 6. restore refuses what is not this run's ---------- */

typedef struct section
{
	uint32_t	tag;
	size_t		head;			/* offset of the tag */
	size_t		len;			/* of the payload, after the 12-byte head */
} section;

#define TAGV(s) ((uint32_t) (s)[0] | ((uint32_t) (s)[1] << 8) | \
				 ((uint32_t) (s)[2] << 16) | ((uint32_t) (s)[3] << 24))

/* Finds a well-formed checkpoint's sections; returns how many. */
static int
parse_sections(const uint8_t *b, size_t len, section *s, int max)
{
	uint32_t	n = rl_get_u32(b + 12),
				i;
	size_t		off = 16;

	for (i = 0; i < n && (int) i < max; i++)
	{
		if (off + 12 > len - 4)
			tap_bail("checkpoint section walk ran off the end");
		s[i].tag = rl_get_u32(b + off);
		s[i].head = off;
		s[i].len = (size_t) rl_get_u64(b + off + 4);
		off += 12 + s[i].len;
	}
	if (off != len - 4)
		tap_bail("checkpoint sections do not fill it");
	return (int) n;
}

/* The payload offset of the section with tag, or 0. */
static size_t
section_at(const uint8_t *b, size_t len, uint32_t tag)
{
	section		s[16];
	int			n = parse_sections(b, len, s, 16),
				i;

	for (i = 0; i < n; i++)
		if (s[i].tag == tag)
			return s[i].head + 12;
	return 0;
}

/* Recomputes the trailing CRC. */
static void
fix_crc(uint8_t *b, size_t len)
{
	rl_put_u32(b + len - 4, rl_crc32(b, len - 4));
}

/* A malloc'd copy of exactly len bytes, so ASan sees any read past the end. */
static uint8_t *
copy_blob(const uint8_t *b, size_t len)
{
	uint8_t    *p = malloc(len ? len : 1);

	if (p == NULL)
		tap_bail("out of memory");
	if (len)
		memcpy(p, b, len);
	return p;
}

/*
 * Rebuilds a checkpoint from the sections of src in the given order (indexes
 * into s; -1 = an extra section of an unknown tag), with a fresh CRC.
 */
static uint8_t *
rebuild(const uint8_t *src, const section *s, const int *order, int n, size_t *len)
{
	size_t		total = 16 + 4,
				off = 16;
	uint8_t    *b;
	int			i;

	for (i = 0; i < n; i++)
		total += 12 + (order[i] < 0 ? 8 : s[order[i]].len);
	b = malloc(total);
	if (b == NULL)
		tap_bail("out of memory");
	memcpy(b, src, 12);
	rl_put_u32(b + 12, (uint32_t) n);
	for (i = 0; i < n; i++)
	{
		if (order[i] < 0)
		{
			rl_put_u32(b + off, TAGV("XTRA"));
			rl_put_u64(b + off + 4, 8);
			rl_put_u64(b + off + 12, 0x0123456789ABCDEFULL);
			off += 20;
		}
		else
		{
			memcpy(b + off, src + s[order[i]].head, 12 + s[order[i]].len);
			off += 12 + s[order[i]].len;
		}
	}
	fix_crc(b, total);
	*len = total;
	return b;
}

/* Restores blob into a new run of the given model, data and options; frees everything. */
static rl_status
try_restore(rl_env *env, const corpus *c, rl_cell_kind cell, const int32_t *train,
			const rl_train_opts *o, const uint8_t *blob, size_t len, const uint8_t *expect_params)
{
	rl_model   *m = corpus_model(env, c, cell, 1, 77);
	rl_run	   *r;
	rl_status	st = rl_run_create(env, m, train, c->ntrain, c->val, c->nval, o, &r);
	int			ended;

	if (st != RL_OK)
		tap_bail("rl_run_create: %s", env->errmsg);
	st = rl_run_restore(r, blob, len);
	/* a restore that succeeds must continue: run it out and compare */
	if (st == RL_OK && expect_params)
	{
		rl_train_result res;

		while (st == RL_OK && !rl_run_done(r))
			st = rl_run_advance(r, INFINITY, &ended);
		if (st == RL_OK)
			st = rl_run_finish(r, &res);
		if (st == RL_OK && memcmp(m->params, expect_params, m->nparams * sizeof(float)) != 0)
			st = RL_ERR_INVALID;	/* a different continuation: reported as a failure */
	}
	rl_run_free(r);
	rl_model_free(env, m);
	return st;
}

/* A patch of one STAT or header field, with the CRC fixed. */
typedef struct patch
{
	const char *what;
	uint32_t	tag;			/* section; 0 = from the blob's start */
	long		at;				/* offset in the payload (or blob); -8 = the section length */
	int			width;			/* 4 or 8 */
	uint64_t	value;
} patch;

/* STAT payload offsets (checkpoint.c's write_state) */
#define ST_EPOCH	92
#define ST_POS		96
#define ST_LR		128
#define ST_BESTVAL	152
#define ST_BESTEP	160
#define ST_SINCE	164
#define ST_LRWAIT	168
#define ST_STEP		176

static void
check_refusals(rl_env *env, const corpus *c)
{
	rl_train_opts o = overfit_opts(),
				other;
	rl_model   *m = corpus_model(env, c, RL_CELL_RNN, 1, 5),
			   *m2;
	rl_run	   *r,
			   *victim;
	uint8_t    *blob,
			   *b;
	size_t		len,
				blen,
				i,
				bad;
	int32_t    *train2;
	uint8_t    *final_params;
	rl_train_result res;
	rl_status	st;
	int			ended,
				k,
				calls = 0;
	long		live;
	section		s[16];
	int			ns;
	uint64_t	nanbits;
	double		dnan = NAN,
				dneg = -1.0;

	o.epochs = 4;
	o.keep_best = 1;
	o.lr_decay = 0.5;
	o.lr_patience = 2;

	/* a checkpoint in epoch 2, with a history and best weights */
	st = rl_run_create(env, m, c->train, c->ntrain, c->val, c->nval, &o, &r);
	while (st == RL_OK)
	{
		rl_run_progress p;

		rl_run_progress_get(r, &p);
		if (p.epoch == 2 && p.step == 2)
			break;
		st = rl_run_advance(r, 0.0, &ended);
		calls++;
	}
	if (st != RL_OK || rl_run_save(r, &blob, &len) != RL_OK)
		tap_bail("could not make a checkpoint: %s", env->errmsg);
	/* where the checkpointed run ends */
	while (st == RL_OK && !rl_run_done(r))
		st = rl_run_advance(r, INFINITY, &ended);
	if (st != RL_OK || rl_run_finish(r, &res) != RL_OK)
		tap_bail("could not finish the run: %s", env->errmsg);
	final_params = copy_blob((const uint8_t *) m->params, m->nparams * sizeof(float));
	rl_run_free(r);
	ns = parse_sections(blob, len, s, 16);
	tap_diag("checkpoint after %d chunks: %zu bytes, %d sections", calls, len, ns);
	tap_ok(ns == 6 &&
		   try_restore(env, c, RL_CELL_RNN, c->train, &o, blob, len, final_params) == RL_OK,
		   "the checkpoint has 6 sections and, restored into a new run, ends with the original's weights");

	live = test_live_blocks();

	/* other options */
	{
		int			refused = 1;

		for (k = 0; k < 10; k++)
		{
			other = o;
			switch (k)
			{
				case 0:
					other.seed++;
					break;
				case 1:
					other.epochs++;
					break;
				case 2:
					other.learning_rate *= 2;
					break;
				case 3:
					other.keep_best = 0;
					break;
				case 4:
					other.patience = 3;
					break;
				case 5:
					other.lr_decay = 0.25;
					break;
				case 6:
					other.dropout = 0.1;
					break;
				case 7:
					other.clip_norm = 1.0;
					break;
				case 8:
					other.lr_patience = 1;
					break;
				case 9:
					other.seq_len = 4;
					break;
			}
			st = try_restore(env, c, RL_CELL_RNN, c->train, &other, blob, len, NULL);
			if (st != RL_ERR_INVALID)
			{
				tap_diag("option change %d: status %d [%s]", k, (int) st, env->errmsg);
				refused = 0;
			}
		}
		tap_ok(refused && test_live_blocks() == live,
			   "a checkpoint of other options (seed, epochs, rate, keep_best, patience, decay, dropout, clip, "
			   "lr_patience, seq_len) is RL_ERR_INVALID");
		other = o;
		other.batch_size = 2;
		st = try_restore(env, c, RL_CELL_RNN, c->train, &other, blob, len, NULL);
		tap_ok(st == RL_ERR_INVALID, "a checkpoint of another batch size is RL_ERR_INVALID [%s]",
			   env->errmsg);
	}

	/* other data */
	train2 = malloc(c->ntrain * sizeof(int32_t));
	if (train2 == NULL)
		tap_bail("out of memory");
	memcpy(train2, c->train, c->ntrain * sizeof(int32_t));
	train2[c->ntrain / 2] = train2[c->ntrain / 2] == 2 ? 3 : 2;
	st = try_restore(env, c, RL_CELL_RNN, train2, &o, blob, len, NULL);
	tap_ok(st == RL_ERR_DATA && test_live_blocks() == live,
		   "a checkpoint of other training data (one token changed) is RL_ERR_DATA [%s]", env->errmsg);
	free(train2);
	{
		corpus		c2 = *c;
		int32_t    *val2 = malloc(c->nval * sizeof(int32_t));

		if (val2 == NULL)
			tap_bail("out of memory");
		memcpy(val2, c->val, c->nval * sizeof(int32_t));
		val2[1] = val2[1] == 2 ? 3 : 2;
		c2.val = val2;
		st = try_restore(env, &c2, RL_CELL_RNN, c->train, &o, blob, len, NULL);
		k = st == RL_ERR_DATA;
		c2.val = c->val;
		c2.ntrain = c->ntrain - 1;
		st = try_restore(env, &c2, RL_CELL_RNN, c->train, &o, blob, len, NULL);
		tap_ok(k && st == RL_ERR_DATA && test_live_blocks() == live,
			   "other validation data, or a shorter training stream, is RL_ERR_DATA too");
		free(val2);
	}

	/* another model shape */
	st = try_restore(env, c, RL_CELL_GRU, c->train, &o, blob, len, NULL);
	tap_ok(st == RL_ERR_FORMAT && test_live_blocks() == live,
		   "a checkpoint of another cell type is RL_ERR_FORMAT [%s]", env->errmsg);

	/* truncated at every length, and every byte changed: one run, never modified */
	m2 = corpus_model(env, c, RL_CELL_RNN, 1, 77);
	if (rl_run_create(env, m2, c->train, c->ntrain, c->val, c->nval, &o, &victim) != RL_OK)
		tap_bail("rl_run_create: %s", env->errmsg);
	bad = 0;
	for (i = 0; i < len; i++)
	{
		b = copy_blob(blob, i);
		st = rl_run_restore(victim, b, i);
		free(b);
		if (st != RL_ERR_FORMAT)
		{
			if (bad++ < 3)
				tap_diag("truncated to %zu bytes: status %d", i, (int) st);
		}
	}
	tap_ok(bad == 0,
		   "a checkpoint truncated to each of its %zu shorter lengths is RL_ERR_FORMAT", len);
	{
		uint8_t    *longer = malloc(len + 1);

		if (longer == NULL)
			tap_bail("out of memory");
		memcpy(longer, blob, len);
		longer[len] = 0;
		st = rl_run_restore(victim, longer, len + 1);
		k = st == RL_ERR_FORMAT;
		fix_crc(longer, len + 1);	/* the old CRC's last byte becomes part of the data */
		st = rl_run_restore(victim, longer, len + 1);
		tap_ok(k && st == RL_ERR_FORMAT, "a checkpoint with a byte appended is RL_ERR_FORMAT, "
			   "with the CRC fixed too [%s]", env->errmsg);
		free(longer);
	}
	bad = 0;
	b = copy_blob(blob, len);
	for (i = 0; i < len; i++)
	{
		uint8_t		was = b[i];

		b[i] ^= (uint8_t) (1u << (i % 8)) | 0x40;
		st = rl_run_restore(victim, b, len);
		b[i] = was;
		if (st != RL_ERR_FORMAT)
		{
			if (bad++ < 3)
				tap_diag("byte %zu changed: status %d", i, (int) st);
		}
	}
	free(b);
	tap_ok(bad == 0, "each of its %zu bytes changed is RL_ERR_FORMAT (the CRC or the header)", len);
	rl_run_free(victim);
	rl_model_free(env, m2);
	tap_ok(test_live_blocks() == live, "refused restores leak nothing (%ld blocks)",
		   test_live_blocks() - live);

	/* fields patched and the CRC recomputed: the section checks themselves */
	memcpy(&nanbits, &dnan, 8);
	{
		uint64_t	negbits;
		patch		patches[24];
		int			np = 0;

		memcpy(&negbits, &dneg, 8);
		patches[np++] = (patch) {"STAT epoch 0xFFFFFFFF", TAGV("STAT"), ST_EPOCH, 4, 0xFFFFFFFFu};
		patches[np++] = (patch) {"STAT epoch 0x7FFFFFFF", TAGV("STAT"), ST_EPOCH, 4, 0x7FFFFFFFu};
		patches[np++] = (patch) {"STAT epoch epochs + 1", TAGV("STAT"), ST_EPOCH, 4, (uint64_t) o.epochs + 1};
		patches[np++] = (patch) {"STAT epoch 0 (the history has 1)", TAGV("STAT"), ST_EPOCH, 4, 0};
		patches[np++] = (patch) {"STAT position 2^63", TAGV("STAT"), ST_POS, 8, 1ULL << 63};
		patches[np++] = (patch) {"STAT position inside a chunk", TAGV("STAT"), ST_POS, 8, 1};
		patches[np++] = (patch) {"STAT position past the epoch", TAGV("STAT"), ST_POS, 8, 1024};
		patches[np++] = (patch) {"STAT rate NaN", TAGV("STAT"), ST_LR, 8, nanbits};
		patches[np++] = (patch) {"STAT rate -1", TAGV("STAT"), ST_LR, 8, negbits};
		patches[np++] = (patch) {"STAT rate 0", TAGV("STAT"), ST_LR, 8, 0};
		patches[np++] = (patch) {"STAT best epoch past the epoch", TAGV("STAT"), ST_BESTEP, 4, 2};
		patches[np++] = (patch) {"STAT best epoch -1", TAGV("STAT"), ST_BESTEP, 4, 0xFFFFFFFFu};
		patches[np++] = (patch) {"STAT Adam step -1", TAGV("STAT"), ST_STEP, 8, UINT64_MAX};
		patches[np++] = (patch) {"STAT length 2^64-1", TAGV("STAT"), -8, 8, UINT64_MAX};
		patches[np++] = (patch) {"STAT length 2^40", TAGV("STAT"), -8, 8, 1ULL << 40};
		patches[np++] = (patch) {"STAT length 215", TAGV("STAT"), -8, 8, 215};
		patches[np++] = (patch) {"MODL length 2^63", TAGV("MODL"), -8, 8, 1ULL << 63};
		patches[np++] = (patch) {"ADAM length short by 4", TAGV("ADAM"), -8, 8, 8 * (uint64_t) m->nparams - 4};
		patches[np++] = (patch) {"HIST count 2", TAGV("HIST"), 0, 4, 2};
		patches[np++] = (patch) {"HIST count 2^30", TAGV("HIST"), 0, 4, 1u << 30};
		patches[np++] = (patch) {"section count 2^32-1", 0, 12, 4, 0xFFFFFFFFu};
		patches[np++] = (patch) {"section count 5 (one left over)", 0, 12, 4, 5};
		patches[np++] = (patch) {"section count 7 (one missing)", 0, 12, 4, 7};
		patches[np++] = (patch) {"version 2", 0, 8, 4, 2};

		for (k = 0; k < np; k++)
		{
			size_t		at;
			patch	   *pt = &patches[k];

			b = copy_blob(blob, len);
			if (pt->tag == 0)
				at = (size_t) pt->at;
			else
			{
				size_t		payload = section_at(blob, len, pt->tag);

				if (payload == 0)
					tap_bail("no section for patch %s", pt->what);
				at = pt->at == -8 ? payload - 8 : payload + (size_t) pt->at;
			}
			if (pt->width == 4)
				rl_put_u32(b + at, (uint32_t) pt->value);
			else
				rl_put_u64(b + at, pt->value);
			fix_crc(b, len);
			st = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, len, NULL);
			tap_ok(st == RL_ERR_FORMAT && test_live_blocks() == live,
				   "CRC fixed, %s: RL_ERR_FORMAT [%s]", pt->what, env->errmsg);
			free(b);
		}
	}

	/* a section's tag changed: twice, or unknown and so missing */
	{
		size_t		hidn = section_at(blob, len, TAGV("HIDN"));
		rl_status	s1,
					s2;

		b = copy_blob(blob, len);
		rl_put_u32(b + hidn - 12, TAGV("ADAM"));
		fix_crc(b, len);
		s1 = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, len, NULL);
		rl_put_u32(b + hidn - 12, TAGV("ZZZZ"));
		fix_crc(b, len);
		s2 = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, len, NULL);
		free(b);
		tap_ok(s1 == RL_ERR_FORMAT && s2 == RL_ERR_FORMAT,
			   "CRC fixed, a section appearing twice or a required one missing: RL_ERR_FORMAT [%s]",
			   env->errmsg);
	}

	/* a model byte changed under a fixed outer CRC: the model's own checks */
	{
		size_t		modl = section_at(blob, len, TAGV("MODL"));
		rl_status	s1,
					s2;

		b = copy_blob(blob, len);
		b[modl + 60] ^= 0x55;
		fix_crc(b, len);
		s1 = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, len, NULL);
		free(b);
		b = copy_blob(blob, len);
		b[modl] ^= 0x01;		/* the model's magic */
		fix_crc(b, len);
		s2 = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, len, NULL);
		free(b);
		tap_ok(s1 == RL_ERR_FORMAT && s2 == RL_ERR_FORMAT && test_live_blocks() == live,
			   "CRC fixed, a byte of the embedded model changed: RL_ERR_FORMAT [%s]", env->errmsg);
	}

	/*
	 * Values that would only hurt later, CRC fixed: best weights that are not
	 * finite (rl_run_finish would put them in the model, which the model
	 * reader then refuses), and epoch counters at INT32_MAX with a best loss
	 * no epoch can beat (the next epoch's end would overflow them).  A
	 * restore that is wrongly accepted is continued to the end.
	 */
	{
		size_t		best = section_at(blob, len, TAGV("BEST"));
		size_t		stat = section_at(blob, len, TAGV("STAT"));
		float		fnan = NAN;
		uint32_t	fbits;
		double		zero = 0.0;
		uint64_t	zbits;
		rl_status	s1,
					s2,
					s3;

		memcpy(&fbits, &fnan, 4);
		b = copy_blob(blob, len);
		rl_put_u32(b + best + 4 * 7, fbits);
		fix_crc(b, len);
		s1 = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, len, final_params);
		free(b);
		tap_ok(s1 == RL_ERR_FORMAT, "CRC fixed, a best weight NaN: RL_ERR_FORMAT (status %d) [%s]",
			   (int) s1, env->errmsg);
		memcpy(&zbits, &zero, 8);
		b = copy_blob(blob, len);
		rl_put_u64(b + stat + ST_BESTVAL, zbits);
		rl_put_u32(b + stat + ST_SINCE, 0x7FFFFFFFu);
		fix_crc(b, len);
		s2 = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, len, final_params);
		rl_put_u32(b + stat + ST_SINCE, 0);
		rl_put_u32(b + stat + ST_LRWAIT, 0x7FFFFFFFu);
		fix_crc(b, len);
		s3 = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, len, final_params);
		free(b);
		tap_ok(s2 == RL_ERR_FORMAT && s3 == RL_ERR_FORMAT && test_live_blocks() == live,
			   "CRC fixed, epochs without improvement at INT32_MAX: RL_ERR_FORMAT (status %d, %d) [%s]",
			   (int) s2, (int) s3, env->errmsg);
	}

	/* sections rearranged, dropped or added, with a fresh CRC */
	{
		int			idx[6],
					t,
					order[8];
		static const char *const tags[6] = {"MODL", "STAT", "ADAM", "HIDN", "BEST", "HIST"};
		rl_status	s_hist_first,
					s_no_best,
					s_swapped,
					s_extra;

		for (t = 0; t < 6; t++)
		{
			idx[t] = -1;
			for (k = 0; k < ns; k++)
				if (s[k].tag == TAGV(tags[t]))
					idx[t] = k;
			if (idx[t] < 0)
				tap_bail("the checkpoint lacks %s", tags[t]);
		}
		/* HIST before STAT */
		order[0] = idx[0];
		order[1] = idx[5];
		order[2] = idx[1];
		order[3] = idx[2];
		order[4] = idx[3];
		order[5] = idx[4];
		b = rebuild(blob, s, order, 6, &blen);
		s_hist_first = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, blen, NULL);
		free(b);
		/* BEST dropped */
		order[0] = idx[0];
		order[1] = idx[1];
		order[2] = idx[2];
		order[3] = idx[3];
		order[4] = idx[5];
		b = rebuild(blob, s, order, 5, &blen);
		s_no_best = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, blen, NULL);
		free(b);
		tap_ok(s_hist_first == RL_ERR_FORMAT && s_no_best == RL_ERR_FORMAT,
			   "rebuilt with the history before the state, or without the best weights: RL_ERR_FORMAT");
		/* a legal other order, and an unknown section of a later version */
		order[0] = idx[4];
		order[1] = idx[3];
		order[2] = idx[1];
		order[3] = idx[2];
		order[4] = idx[0];
		order[5] = idx[5];
		b = rebuild(blob, s, order, 6, &blen);
		s_swapped = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, blen, final_params);
		free(b);
		order[0] = idx[0];
		order[1] = -1;
		order[2] = idx[1];
		order[3] = idx[2];
		order[4] = idx[3];
		order[5] = idx[4];
		order[6] = idx[5];
		order[7] = -1;
		b = rebuild(blob, s, order, 8, &blen);
		s_extra = try_restore(env, c, RL_CELL_RNN, c->train, &o, b, blen, final_params);
		free(b);
		tap_ok(s_swapped == RL_OK && s_extra == RL_OK && test_live_blocks() == live,
			   "sections in another order, or with unknown sections added, restore and continue to the same weights%s%s",
			   s_swapped != RL_OK || s_extra != RL_OK ? ": " : "",
			   s_swapped != RL_OK || s_extra != RL_OK ? env->errmsg : "");
	}

	rl_free(env, blob);
	free(final_params);
	rl_model_free(env, m);
}

/* ---------- 7. memory: nothing leaks, allocation failures ---------- */

static void
check_memory(rl_env *env, const corpus *c)
{
	rl_train_opts o = overfit_opts();
	rl_model   *m = corpus_model(env, c, RL_CELL_LSTM, 1, 5),
			   *m2 = corpus_model(env, c, RL_CELL_LSTM, 1, 9);
	rl_run	   *r = NULL,
			   *r2;
	uint8_t    *blob = NULL;
	size_t		len = 0,
				P = m->nparams;
	rl_train_result res;
	rl_status	st;
	long		live = test_live_blocks(),
				n,
				bad = 0;
	int			ended,
				i;

	o.epochs = 2;
	o.keep_best = 1;

	/* rl_run_memory counts the kept weights */
	tap_ok(rl_run_memory(&m->cfg, &o) ==
		   rl_train_memory(&m->cfg, o.batch_size, o.seq_len, o.dropout, RL_PREC_FP32, 0, 0) +
		   P * sizeof(float),
		   "rl_run_memory is rl_train_memory plus the kept weights with keep_best");

	/* a whole save, restore, continue, finish and free */
	st = rl_run_create(env, m, c->train, c->ntrain, c->val, c->nval, &o, &r);
	for (i = 0; st == RL_OK && i < 6; i++)
		st = rl_run_advance(r, 0.0, &ended);
	if (st == RL_OK)
		st = rl_run_save(r, &blob, &len);
	rl_run_free(r);
	if (st == RL_OK)
		st = rl_run_create(env, m2, c->train, c->ntrain, c->val, c->nval, &o, &r);
	if (st == RL_OK)
		st = rl_run_restore(r, blob, len);
	while (st == RL_OK && !rl_run_done(r))
		st = rl_run_advance(r, INFINITY, &ended);
	if (st == RL_OK)
		st = rl_run_finish(r, &res);
	rl_run_free(r);
	rl_free(env, blob);
	tap_ok(st == RL_OK && test_live_blocks() == live,
		   "save, restore, continue, finish and free leave no block allocated (%ld left)",
		   test_live_blocks() - live);

	/* rl_run_create */
	for (n = 0; n < 1000; n++)
	{
		r = (rl_run *) &n;
		test_fail_alloc_at(n);
		st = rl_run_create(env, m, c->train, c->ntrain, c->val, c->nval, &o, &r);
		test_fail_alloc_at(-1);
		if (st == RL_OK)
			break;
		if (st != RL_ERR_NOMEM || r != NULL || test_live_blocks() != live)
			bad++;
	}
	tap_ok(st == RL_OK && bad == 0 && n > 3,
		   "each of %ld allocation failures in rl_run_create (keep_best) is RL_ERR_NOMEM without a leak", n);

	/* rl_run_save, in epoch 2 */
	for (i = 0; st == RL_OK && i < 6; i++)
		st = rl_run_advance(r, 0.0, &ended);
	if (st != RL_OK)
		tap_bail("rl_run_advance: %s", env->errmsg);
	{
		long		live_run = test_live_blocks();

		bad = 0;
		for (n = 0; n < 1000; n++)
		{
			blob = (uint8_t *) &n;
			len = 99;
			test_fail_alloc_at(n);
			st = rl_run_save(r, &blob, &len);
			test_fail_alloc_at(-1);
			if (st == RL_OK)
				break;
			if (st != RL_ERR_NOMEM || blob != NULL || len != 0 || test_live_blocks() != live_run)
				bad++;
		}
		tap_ok(st == RL_OK && bad == 0 && n > 2 && test_live_blocks() == live_run + 1,
			   "each of %ld allocation failures in rl_run_save is RL_ERR_NOMEM without a leak", n);
	}
	rl_run_free(r);

	/* rl_run_restore, each into a new run */
	bad = 0;
	for (n = 0; n < 1000; n++)
	{
		if (rl_run_create(env, m2, c->train, c->ntrain, c->val, c->nval, &o, &r2) != RL_OK)
			tap_bail("rl_run_create: %s", env->errmsg);
		test_fail_alloc_at(n);
		st = rl_run_restore(r2, blob, len);
		test_fail_alloc_at(-1);
		rl_run_free(r2);
		if (st == RL_OK)
			break;
		if (st != RL_ERR_NOMEM || test_live_blocks() != live + 1)
			bad++;
	}
	tap_ok(st == RL_OK && bad == 0 && n > 2,
		   "each of %ld allocation failures in rl_run_restore is RL_ERR_NOMEM without a leak", n);
	rl_free(env, blob);

	/* rl_run_advance: the gradients on the first chunk, the history at an epoch's end */
	bad = 0;
	for (n = 0; n < 1000; n++)
	{
		if (rl_run_create(env, m2, c->train, c->ntrain, c->val, c->nval, &o, &r2) != RL_OK)
			tap_bail("rl_run_create: %s", env->errmsg);
		test_fail_alloc_at(n);
		st = RL_OK;
		while (st == RL_OK && !rl_run_done(r2))
			st = rl_run_advance(r2, INFINITY, &ended);
		test_fail_alloc_at(-1);
		rl_run_free(r2);
		if (st == RL_OK)
			break;
		if (st != RL_ERR_NOMEM || test_live_blocks() != live)
			bad++;
	}
	tap_ok(st == RL_OK && bad == 0 && n > 2 && test_live_blocks() == live,
		   "each of %ld allocation failures in rl_run_advance is RL_ERR_NOMEM without a leak", n);
	rl_model_free(env, m);
	rl_model_free(env, m2);
}

/* ---------- 8. progress ---------- */

typedef struct epochs_seen
{
	int			n;
	int			in_order;
} epochs_seen;

/* epoch_done callback: counts the epochs, checking their order. */
static void
on_epoch(void *ud, const rl_epoch_stats *st)
{
	epochs_seen *e = ud;

	e->n++;
	if (st->epoch != e->n)
		e->in_order = 0;
}

static void
check_progress(rl_env *env, const corpus *c)
{
	rl_train_opts o = base_opts();
	rl_model   *m = corpus_model(env, c, RL_CELL_GRU, 1, 5);
	rl_run	   *r;
	rl_run_progress p;
	rl_status	st;
	int32_t		B,
				nh,
				nh2;
	size_t		expect_steps,
				want_step = 0;
	int32_t		want_epoch = 1;
	int			ended,
				steps_ok = 1,
				eta_ok = 1,
				loss_ok = 1,
				calls = 0,
				ends = 0;
	epochs_seen seen = {0, 1};
	double		lr0;

	o.epochs = 3;
	B = (int32_t) ((c->ntrain - 1) < (size_t) o.batch_size ? c->ntrain - 1 : (size_t) o.batch_size);
	expect_steps = ((c->ntrain - 1) / (size_t) B + (size_t) o.seq_len - 1) / (size_t) o.seq_len;
	env->epoch_done = on_epoch;
	env->ud = &seen;
	st = rl_run_create(env, m, c->train, c->ntrain, c->val, c->nval, &o, &r);
	if (st != RL_OK)
		tap_bail("rl_run_create: %s", env->errmsg);
	rl_run_progress_get(r, &p);
	lr0 = p.learning_rate;
	tap_ok(p.epoch == 1 && p.epochs == 3 && p.step == 0 && p.steps == expect_steps &&
		   isnan(p.train_loss) && isnan(p.val_loss) && isnan(p.seconds_left) &&
		   p.learning_rate == o.learning_rate,
		   "before the first chunk: epoch 1 of 3, step 0 of %zu, no losses, no estimate", p.steps);
	while (st == RL_OK && !rl_run_done(r))
	{
		st = rl_run_advance(r, 0.0, &ended);
		calls++;
		rl_run_progress_get(r, &p);
		want_step++;
		if (p.epoch != want_epoch || p.step != want_step || p.steps != expect_steps ||
			(ended != 0) != (want_step == expect_steps))
		{
			if (steps_ok)
				tap_diag("call %d: epoch %d step %zu ended %d, expected epoch %d step %zu",
						 calls, p.epoch, p.step, ended, want_epoch, want_step);
			steps_ok = 0;
		}
		if (!isfinite(p.seconds_left) || p.seconds_left < 0)
			eta_ok = 0;
		if (!isfinite(p.train_loss) || (ends > 0 && !isfinite(p.val_loss)) ||
			!(p.tokens_per_second > 0))
			loss_ok = 0;
		if (ended)
		{
			ends++;
			want_step = 0;
			want_epoch++;
			if (!isfinite(p.val_loss))
				loss_ok = 0;
		}
	}
	tap_ok(st == RL_OK && steps_ok && ends == 3 && calls == 3 * (int) expect_steps,
		   "with max_seconds 0 each call trains one chunk: step 1..%zu in each of epochs 1..3", expect_steps);
	tap_ok(eta_ok && p.seconds_left == 0 && loss_ok,
		   "seconds_left is finite from the first chunk on and 0 at the end; the losses and speed are reported");
	rl_run_history(r, &nh);
	st = rl_run_advance(r, 0.0, &ended);
	rl_run_history(r, &nh2);
	rl_run_progress_get(r, &p);
	tap_ok(st == RL_OK && ended == 0 && nh == 3 && nh2 == 3 && p.epoch == 3 && p.step == expect_steps &&
		   seen.n == 3 && seen.in_order && p.learning_rate == lr0,
		   "epoch_done saw epochs 1..3; rl_run_advance after the end does nothing");
	env->epoch_done = NULL;
	env->ud = NULL;
	rl_run_free(r);
	rl_model_free(env, m);
}

/* Runs the training-run and checkpoint checks. */
void
test_run(void)
{
	rl_env		env;
	corpus		text,
				rnd;
	long		live;

	test_env_init(&env);
	live = test_live_blocks();
	corpus_text(&env, &text);
	corpus_random(&env, &rnd);
	tap_diag("text corpus: %zu training, %zu validation ids, V %d; random corpus: %zu, %zu, V %d",
			 text.ntrain, text.nval, text.vocab->size, rnd.ntrain, rnd.nval, rnd.vocab->size);
	check_resume(&env, &text, &rnd);
	check_freeze(&env, &text);
	check_keep_best(&env, &rnd);
	check_early_stopping(&env, &rnd);
	check_ties(&env, &rnd);
	check_lr_decay(&env, &rnd);
	check_no_val(&env, &rnd);
	check_refusals(&env, &rnd);
	check_memory(&env, &rnd);
	check_progress(&env, &text);
	corpus_free(&env, &text);
	corpus_free(&env, &rnd);
	tap_ok(test_live_blocks() == live, "training runs free everything they allocate (%ld left)",
		   test_live_blocks() - live);
}
