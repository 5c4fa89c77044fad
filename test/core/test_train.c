/*
 * test_train.c
 *		Adam and gradient clipping against hand computations, then
 *		training smoke tests on a tiny repetitive corpus: every cell learns
 *		it, runs are reproducible, cancellation, dropout, divergence,
 *		progress callbacks, evaluation and allocation failures.
 */
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adam's two steps against a float64 hand computation. */
static void
check_adam(void)
{
	float		p[4] = {0.5f, -0.3f, 0.0f, 1.0f};
	float		g1[4] = {0.2f, -0.01f, 0.0f, 3.0f};
	float		g2[4] = {-0.1f, 0.02f, 0.0f, 3.0f};
	float		m[4] = {0},
				v[4] = {0};
	double		hp[4],
				hm[4] = {0},
				hv[4] = {0};
	double		err1 = 0.0,
				err2 = 0.0,
				errm = 0.0;
	const double lr = 0.1,
				b1 = 0.9,
				b2 = 0.999,
				eps = 1e-8;
	int			t,
				i;

	for (i = 0; i < 4; i++)
		hp[i] = p[i];
	for (t = 1; t <= 2; t++)
	{
		const float *g = t == 1 ? g1 : g2;

		for (i = 0; i < 4; i++)
		{
			double		mh,
						vh;

			hm[i] = b1 * hm[i] + (1 - b1) * g[i];
			hv[i] = b2 * hv[i] + (1 - b2) * (double) g[i] * g[i];
			mh = hm[i] / (1 - pow(b1, t));
			vh = hv[i] / (1 - pow(b2, t));
			hp[i] -= lr * mh / (sqrt(vh) + eps);
		}
		rl_adam_step(p, g, m, v, 4, lr, t);
		for (i = 0; i < 4; i++)
		{
			if (t == 1)
				err1 = fmax(err1, fabs(p[i] - hp[i]));
			else
				err2 = fmax(err2, fabs(p[i] - hp[i]));
			errm = fmax(errm, fmax(fabs(m[i] - hm[i]), fabs(v[i] - hv[i])));
		}
		if (t == 1)
			tap_diag("after step 1: %.7f %.7f %.7f %.7f", p[0], p[1], p[2], p[3]);
	}
	tap_ok(err1 < 1e-6, "Adam step 1 (lr 0.1) matches the hand computation (max err %.2e)", err1);
	tap_ok(err2 < 5e-6 && p[2] == 0.0f,
		   "Adam step 2 matches the hand computation to 5e-6, a zero gradient moves nothing (max err %.2e)",
		   err2);
	tap_ok(errm < 5e-7, "Adam's moment estimates match to 5e-7 (max err %.2e)", errm);
	tap_ok(err2 < 1e-6 && errm < 1e-7,
		   "Adam step 2 matches to 1e-6 and the moments to 1e-7 (%.2e, %.2e)", err2, errm);
}

/* rl_clip_grads. */
static void
check_clip(void)
{
	float		g[3] = {3.0f, 0.0f, -4.0f};
	float		h[3] = {0.3f, 0.0f, -0.4f};
	float		k[3] = {30.0f, 0.0f, -40.0f};
	double		n1,
				n2,
				n3,
				after;

	n1 = rl_clip_grads(g, 3, 1.0);
	after = sqrt((double) g[0] * g[0] + (double) g[2] * g[2]);
	tap_ok(fabs(after - 1.0) < 1e-6 && fabs(g[0] - 0.6f) < 1e-6 && fabs(g[2] + 0.8f) < 1e-6 &&
		   g[1] == 0.0f,
		   "rl_clip_grads scales to the clip norm, keeping the direction (norm after %.7f)", after);
	tap_ok(fabs(n1 - 5.0) < 1e-9, "rl_clip_grads returns the norm before clipping (%.7f)", n1);
	n2 = rl_clip_grads(h, 3, 1.0);
	tap_ok(fabs(n2 - 0.5) < 1e-7 && h[0] == 0.3f && h[2] == -0.4f,
		   "a gradient inside the clip norm is left alone");
	n3 = rl_clip_grads(k, 3, 0.0);
	tap_ok(fabs(n3 - 50.0) < 1e-9 && k[0] == 30.0f && k[2] == -40.0f,
		   "clip_norm 0 changes nothing and still returns the norm");
}

/* The training corpus: "abcabc..." documents, char tokens. */
typedef struct corpus
{
	rl_vocab   *vocab;
	int32_t    *train,
			   *val;
	size_t		ntrain,
				nval;
} corpus;

/* Builds the corpus: 8 training and 2 validation documents. */
static void
corpus_build(rl_env *env, corpus *c)
{
	rl_builder *b;
	char		doc[64];
	int			i;

	if (rl_builder_create(env, TEST_TEXT_V01(RL_TOK_CHAR, 1), &b) != RL_OK)
		tap_bail("rl_builder_create: %s", env->errmsg);
	for (i = 0; i < 10; i++)
	{
		int			reps = 8 + i % 3,
					k;

		for (k = 0; k < reps; k++)
			memcpy(doc + 3 * k, "abc", 3);
		if (rl_builder_add(b, doc, (size_t) reps * 3) != RL_OK)
			tap_bail("rl_builder_add: %s", env->errmsg);
	}
	if (rl_builder_finish(b, 2, 0, &c->vocab, &c->train, &c->ntrain, &c->val, &c->nval) != RL_OK)
		tap_bail("rl_builder_finish: %s", env->errmsg);
	rl_builder_free(b);
}

/* Frees the corpus. */
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

/* The options the smoke tests train with. */
static rl_train_opts
smoke_opts(void)
{
	rl_train_opts o;

	memset(&o, 0, sizeof(o));
	o.epochs = 12;
	o.batch_size = 4;
	o.seq_len = 10;
	o.learning_rate = 0.02;
	o.clip_norm = 5.0;
	o.dropout = 0.0;
	o.seed = 7;
	return o;
}

typedef struct progress
{
	long		ticks;
	long		allow;			/* ticks answered 1 before answering 0; -1 = always */
	long		after_stop;		/* ticks after the one that said stop */
	int			stopped;
	int			epochs_seen;
	int			epoch_order_ok;
	double		last_val;
} progress;

/* tick callback: continues allow times, then stops. */
static int
tick_cb(void *ud)
{
	progress   *p = ud;

	if (p->stopped)
		p->after_stop++;
	p->ticks++;
	if (p->allow >= 0 && p->ticks > p->allow)
	{
		p->stopped = 1;
		return 0;
	}
	return 1;
}

/* epoch_done callback: checks the epochs arrive in order. */
static void
epoch_cb(void *ud, const rl_epoch_stats *st)
{
	progress   *p = ud;

	p->epochs_seen++;
	if (st->epoch != p->epochs_seen || !isfinite(st->train_loss) || st->seconds < 0)
		p->epoch_order_ok = 0;
	p->last_val = st->val_loss;
}

/* Trains a fresh model; returns the status and fills res. */
static rl_status
train_once(rl_env *env, const corpus *c, rl_cell_kind cell, int L, uint64_t init_seed,
		   const rl_train_opts *o, rl_train_result *res, rl_model **out)
{
	rl_model   *m = corpus_model(env, c, cell, L, init_seed);
	rl_status	st = rl_train(env, m, c->train, c->ntrain, c->val, c->nval, o, res);

	*out = m;
	return st;
}

/* Every cell learns the corpus, reproducibly. */
static void
check_learning(rl_env *env, const corpus *c)
{
	double		uniform = log((double) c->vocab->size);
	int			cell;

	tap_diag("corpus: %zu training ids, %zu validation ids, V %d, uniform loss %.4f",
			 c->ntrain, c->nval, c->vocab->size, uniform);
	for (cell = RL_CELL_RNN; cell <= RL_CELL_GRU; cell++)
	{
		const char *name = rl_cell_name((rl_cell_kind) cell);
		rl_train_opts o = smoke_opts();
		rl_train_result r1,
					r2,
					r3;
		rl_model   *m1,
				   *m2,
				   *m3;
		rl_status	s1,
					s2,
					s3;
		int			L = cell == RL_CELL_GRU ? 2 : 1;

		s1 = train_once(env, c, (rl_cell_kind) cell, L, 5, &o, &r1, &m1);
		tap_diag("%s, %d layer(s): train loss %.4f, val loss %.4f, %.0f tokens/s",
				 name, L, r1.train_loss, r1.val_loss, r1.tokens_per_second);
		tap_ok(s1 == RL_OK && r1.train_loss < 0.4 * uniform && r1.val_loss < 0.4 * uniform,
			   "%s: training drives the loss well below log(V) (train %.4f, val %.4f, log V %.4f)",
			   name, r1.train_loss, r1.val_loss, uniform);
		s2 = train_once(env, c, (rl_cell_kind) cell, L, 5, &o, &r2, &m2);
		s3 = train_once(env, c, (rl_cell_kind) cell, L, 6, &o, &r3, &m3);
		tap_ok(s2 == RL_OK && s3 == RL_OK &&
			   memcmp(m1->params, m2->params, m1->nparams * sizeof(float)) == 0 &&
			   r1.train_loss == r2.train_loss && r1.val_loss == r2.val_loss &&
			   memcmp(m1->params, m3->params, m1->nparams * sizeof(float)) != 0,
			   "%s: two runs with the same seeds give bit-identical parameters", name);
		rl_model_free(env, m1);
		rl_model_free(env, m2);
		rl_model_free(env, m3);
	}
}

/* Dropout: still learns, is reproducible, and is off in evaluation mode. */
static void
check_dropout(rl_env *env, const corpus *c)
{
	double		uniform = log((double) c->vocab->size);
	rl_train_opts o = smoke_opts();
	rl_train_result r,
				r2;
	rl_model   *m,
			   *m2;
	rl_status	st,
				st2;

	o.dropout = 0.3;
	o.epochs = 20;
	st = train_once(env, c, RL_CELL_LSTM, 2, 5, &o, &r, &m);
	st2 = train_once(env, c, RL_CELL_LSTM, 2, 5, &o, &r2, &m2);
	tap_ok(st == RL_OK && st2 == RL_OK && r.val_loss < 0.5 * uniform && r.train_loss < 0.7 * uniform &&
		   memcmp(m->params, m2->params, m->nparams * sizeof(float)) == 0,
		   "dropout 0.3 (lstm, 2 layers) still learns, reproducibly (train %.4f, val %.4f)",
		   r.train_loss, r.val_loss);
	rl_model_free(env, m2);

	/* a trainer with dropout, out of training mode, equals one without */
	{
		rl_trainer *td,
				   *t0;
		int32_t		in[8],
					tg[8];
		double		a = NAN,
					b = NAN,
					d = NAN;
		int			i;

		for (i = 0; i < 8; i++)
		{
			in[i] = c->train[i];
			tg[i] = c->train[i + 1];
		}
		if (rl_trainer_create(env, m, 2, 4, 0.5, 3, &td) != RL_OK ||
			rl_trainer_create(env, m, 2, 4, 0.0, 3, &t0) != RL_OK)
			tap_bail("rl_trainer_create: %s", env->errmsg);
		rl_trainer_loss(td, in, tg, 4, &d);
		rl_trainer_reset_state(td);
		rl_trainer_set_training(td, 0);
		rl_trainer_loss(td, in, tg, 4, &a);
		rl_trainer_loss(t0, in, tg, 4, &b);
		tap_ok(isfinite(a) && a == b && d != a,
			   "dropout applies in training mode only (%.6f with, %.6f without)", d, a);
		rl_trainer_free(td);
		rl_trainer_free(t0);
	}
	rl_model_free(env, m);
}

/* Cancellation through the tick callback. */
static void
check_cancel(rl_env *env, const corpus *c)
{
	rl_train_opts o = smoke_opts();
	rl_train_result r;
	progress	p;
	rl_model   *m;
	rl_status	st;
	long		live = test_live_blocks();
	int			(*saved_tick) (void *) = env->tick;

	memset(&p, 0, sizeof(p));
	p.allow = 0;
	env->tick = tick_cb;
	env->ud = &p;
	st = train_once(env, c, RL_CELL_GRU, 1, 5, &o, &r, &m);
	rl_model_free(env, m);
	tap_ok(st == RL_ERR_CANCELLED && env->status == RL_ERR_CANCELLED && p.ticks == 1 &&
		   test_live_blocks() == live,
		   "a tick returning 0 at once stops rl_train with RL_ERR_CANCELLED [%s]", env->errmsg);

	memset(&p, 0, sizeof(p));
	p.allow = 300;
	env->status = RL_OK;
	st = train_once(env, c, RL_CELL_LSTM, 2, 5, &o, &r, &m);
	rl_model_free(env, m);
	tap_ok(st == RL_ERR_CANCELLED && p.ticks == 301 && p.after_stop == 0 &&
		   test_live_blocks() == live,
		   "a tick returning 0 mid-training stops it with RL_ERR_CANCELLED, no leak (%ld ticks)",
		   p.ticks);
	env->tick = saved_tick;
	env->ud = NULL;
	env->status = RL_OK;
}

/* Progress callbacks, the result fields and rl_eval_stream. */
static void
check_progress(rl_env *env, const corpus *c)
{
	rl_train_opts o = smoke_opts();
	rl_train_result r;
	progress	p;
	rl_model   *m;
	rl_status	st;
	double		ev = NAN;
	size_t		count = 0;
	int			(*saved_tick) (void *) = env->tick;

	memset(&p, 0, sizeof(p));
	p.allow = -1;
	p.epoch_order_ok = 1;
	o.epochs = 3;
	env->tick = tick_cb;
	env->epoch_done = epoch_cb;
	env->ud = &p;
	st = train_once(env, c, RL_CELL_RNN, 1, 5, &o, &r, &m);
	env->epoch_done = NULL;
	env->tick = saved_tick;
	env->ud = NULL;
	tap_ok(st == RL_OK && p.epochs_seen == 3 && p.epoch_order_ok && p.last_val == r.val_loss &&
		   isfinite(r.val_loss) && r.train_tokens > 0 && r.val_tokens == c->nval - 1 && p.ticks > 0,
		   "epoch_done reports epochs 1..3 in order with the final losses (%zu train, %zu val tokens)",
		   r.train_tokens, r.val_tokens);
	st = rl_eval_stream(env, m, c->val, c->nval, o.batch_size, o.seq_len, &ev, &count);
	tap_ok(st == RL_OK && ev == r.val_loss && count == r.val_tokens,
		   "rl_eval_stream gives rl_train's validation loss (%.6f, %.6f)", ev, r.val_loss);
	rl_model_free(env, m);
}

/* Bad arguments, divergence and allocation failures. */
static void
check_errors(rl_env *env, const corpus *c)
{
	rl_train_opts o = smoke_opts();
	rl_train_result r;
	rl_model   *m = corpus_model(env, c, RL_CELL_LSTM, 1, 5);
	rl_trainer *tr = NULL;
	long		live,
				n,
				bad = 0;
	rl_status	st;
	int			ok;

	ok = rl_train(env, m, c->train, 1, NULL, 0, &o, &r) == RL_ERR_DATA;
	o.epochs = 0;
	ok = ok && rl_train(env, m, c->train, c->ntrain, NULL, 0, &o, &r) == RL_ERR_INVALID;
	o = smoke_opts();
	o.batch_size = 0;
	ok = ok && rl_train(env, m, c->train, c->ntrain, NULL, 0, &o, &r) == RL_ERR_INVALID;
	ok = ok && rl_trainer_create(env, m, 0, 4, 0.0, 1, &tr) == RL_ERR_INVALID && tr == NULL;
	tap_ok(ok, "too little data is RL_ERR_DATA; zero epochs or batch size RL_ERR_INVALID");

	/* streams shorter than the batch: fewer streams, or nothing to evaluate */
	{
		double		ev = 0.0;
		size_t		count = 99;

		o = smoke_opts();
		o.epochs = 2;
		st = rl_train(env, m, c->train, 3, c->val, 2, &o, &r);
		ok = st == RL_OK && r.train_tokens == 2 && r.val_tokens == 1 && isfinite(r.train_loss) &&
			isfinite(r.val_loss);
		st = rl_eval_stream(env, m, c->val, 1, 4, 10, &ev, &count);
		tap_ok(ok && st == RL_OK && isnan(ev) && count == 0,
			   "streams shorter than the batch train and evaluate with fewer streams; "
			   "a 1-token stream evaluates to NaN over 0 tokens");
	}

	/* a learning rate large enough to overflow float32 */
	o = smoke_opts();
	o.learning_rate = 1e36;
	o.clip_norm = 0.0;
	st = rl_train(env, m, c->train, c->ntrain, c->val, c->nval, &o, &r);
	tap_ok(st == RL_ERR_NUMERIC, "a diverging run stops with RL_ERR_NUMERIC (status %d) [%s]",
		   (int) st, env->errmsg);
	rl_model_free(env, m);

	/* every allocation failure in rl_train */
	o = smoke_opts();
	o.epochs = 1;
	m = corpus_model(env, c, RL_CELL_GRU, 2, 5);
	live = test_live_blocks();
	for (n = 0; n < 1000; n++)
	{
		test_fail_alloc_at(n);
		st = rl_train(env, m, c->train, c->ntrain, c->val, c->nval, &o, &r);
		test_fail_alloc_at(-1);
		if (st == RL_OK)
			break;
		if (st != RL_ERR_NOMEM || test_live_blocks() != live)
			bad++;
	}
	tap_ok(st == RL_OK && bad == 0 && n > 3 && test_live_blocks() == live,
		   "each of %ld allocation failures in rl_train is RL_ERR_NOMEM without a leak", n);
	rl_model_free(env, m);
}

/* Runs the optimiser and training checks. */
void
test_training(void)
{
	rl_env		env;
	corpus		c;
	long		live;

	test_env_init(&env);
	live = test_live_blocks();
	check_adam();
	check_clip();
	corpus_build(&env, &c);
	check_learning(&env, &c);
	check_dropout(&env, &c);
	check_cancel(&env, &c);
	check_progress(&env, &c);
	check_errors(&env, &c);
	corpus_free(&env, &c);
	tap_ok(test_live_blocks() == live, "training frees everything it allocates (%ld left)",
		   test_live_blocks() - live);
}
