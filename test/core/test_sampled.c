/*
 * test_sampled.c
 *		The sampled output layer of training steps (sampled_softmax) against
 *		the exact softmax: with at least V draws a step it gives the exact
 *		loss and gradient; with fewer it touches only the rows of its
 *		candidates; and a word-like model (ids by frequency) trained with it
 *		reaches an exact validation loss within 0.5 nats of the exact
 *		softmax's (0.36 measured: the draws approximate, and the step's
 *		other targets dominate the candidates of so small a vocabulary).
 */
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SV	400				/* the vocabulary of the learning check */

/* A stream of ids from a fixed first-order chain with Zipfian successors. */
static int32_t *
zipf_chain(uint64_t seed, size_t n, int32_t V)
{
	int32_t    *ids = malloc(n * sizeof(int32_t));
	rl_rng		rng;
	size_t		i;

	if (ids == NULL)
		tap_bail("out of memory");
	rl_rng_seed(&rng, seed);
	ids[0] = RL_TOKEN_EOD;
	for (i = 1; i < n; i++)
	{
		/*
		 * the next id: one of two likely successors of the previous one among
		 * the 40 most frequent, or a Zipfian draw (ids numbered by frequency,
		 * as a word vocabulary is)
		 */
		double		u = rl_rng_uniform(&rng);
		int32_t		prev = ids[i - 1];

		if (u < 0.6)
			ids[i] = 2 + (int32_t) ((prev * 7 + 3 + (u < 0.3 ? 0 : 11)) % 40);
		else
			ids[i] = (int32_t) (exp(rl_rng_uniform(&rng) * log((double) V + 1.0)) - 1.0);
		if (ids[i] < 2 || ids[i] >= V)
			ids[i] = 2 + (ids[i] % (V - 2) + (V - 2)) % (V - 2);
		if (i % 50 == 0)
			ids[i] = RL_TOKEN_EOD;
	}
	return ids;
}

/* With K >= V the sampled step is the exact softmax: the same loss and gradient. */
static void
check_exact(rl_env *env)
{
	rl_model   *m = test_model(env, RL_CELL_LSTM, 9, 3, 5, 1, 0.5, 3);
	rl_trainer *a,
			   *b;
	int32_t		in[12],
				tg[12];
	double		la,
				lb,
				worst = 0;
	size_t		k;
	int			i;

	for (i = 0; i < 12; i++)
	{
		in[i] = (i * 5 + 1) % 9;
		tg[i] = (i * 7 + 2) % 9;
	}
	if (rl_trainer_create(env, m, 3, 4, 0.0, 1, &a) != RL_OK ||
		rl_trainer_create(env, m, 3, 4, 0.0, 1, &b) != RL_OK ||
		rl_trainer_set_sampled(b, 1000) != RL_OK)
		tap_bail("trainer: %s", env->errmsg);
	if (rl_trainer_loss_grad(a, in, tg, 4, &la) != RL_OK ||
		rl_trainer_loss_grad(b, in, tg, 4, &lb) != RL_OK)
		tap_bail("loss_grad: %s", env->errmsg);
	for (k = 0; k < m->nparams; k++)
	{
		double		d = fabs((double) rl_trainer_grads(a)[k] - rl_trainer_grads(b)[k]);

		if (d > worst)
			worst = d;
	}
	tap_ok(fabs(la - lb) < 1e-6 && worst < 1e-6,
		   "sampled_softmax with at least V draws is the exact softmax: loss %.9f vs %.9f, "
		   "worst gradient difference %.2e", la, lb, worst);
	rl_trainer_free(a);
	rl_trainer_free(b);
	rl_model_free(env, m);
}

/* With K < V a step reads and updates only its candidates' rows of the output layer. */
static void
check_candidates(rl_env *env)
{
	int32_t		V = 200;
	rl_model   *m = test_model(env, RL_CELL_GRU, V, 4, 6, 1, 0.5, 4);
	rl_trainer *t;
	int32_t		in[8],
				tg[8];
	double		loss;
	float	   *g;
	size_t		why_off = m->nparams - (size_t) V * 6 - (size_t) V;
	int			rows = 0,
				targets_have = 1,
				i,
				j;

	for (i = 0; i < 8; i++)
	{
		in[i] = 2 + i * 11;
		tg[i] = 150 + i;
	}
	if (rl_trainer_create(env, m, 2, 4, 0.0, 1, &t) != RL_OK || rl_trainer_set_sampled(t, 5) != RL_OK ||
		rl_trainer_loss_grad(t, in, tg, 4, &loss) != RL_OK)
		tap_bail("trainer: %s", env->errmsg);
	g = rl_trainer_grads(t);
	for (i = 0; i < V; i++)
	{
		int			nz = g[m->nparams - V + i] != 0.0f;

		for (j = 0; j < 6; j++)
			nz |= g[why_off + (size_t) i * 6 + j] != 0.0f;
		rows += nz;
		if (i >= 150 && i < 158 && !nz)
			targets_have = 0;
	}
	tap_ok(isfinite(loss) && rows <= 8 + 5 + 1 && targets_have,
		   "with 5 draws, a step of 8 rows changes at most 14 of the 200 output rows (%d), the targets' among them",
		   rows);
	rl_trainer_free(t);
	rl_model_free(env, m);
}

/* Trains a model of vocabulary SV with or without sampling; returns the exact validation loss. */
static double
train_zipf(rl_env *env, int32_t k, double *train_loss)
{
	rl_model   *m = test_model(env, RL_CELL_LSTM, SV, 16, 32, 1, 0.1, 9);
	int32_t    *tr = zipf_chain(1, 30000, SV),
			   *va = zipf_chain(2, 4000, SV);
	rl_train_opts o;
	rl_train_result res;
	rl_status	st;

	memset(&o, 0, sizeof(o));
	o.epochs = 3;
	o.batch_size = 16;
	o.seq_len = 20;
	o.learning_rate = 0.01;
	o.clip_norm = 5.0;
	o.seed = 5;
	o.sampled_softmax = k;
	st = rl_train(env, m, tr, 30000, va, 4000, &o, &res);
	free(tr);
	free(va);
	rl_model_free(env, m);
	if (st != RL_OK)
		tap_bail("rl_train: %s", env->errmsg);
	*train_loss = res.train_loss;
	return res.val_loss;
}

/* A sampled run learns nearly as well, by the exact validation loss. */
static void
check_learning(rl_env *env)
{
	double		tf,
				ts,
				full = train_zipf(env, 0, &tf),
				sampled = train_zipf(env, 40, &ts),
				uniform = log((double) SV);

	tap_diag("vocabulary %d: exact validation loss %.4f with the exact softmax, %.4f with 40 draws a step "
			 "(uniform: %.4f); training losses %.4f, %.4f (sampled: over the candidates)",
			 SV, full, sampled, uniform, tf, ts);
	tap_ok(isfinite(sampled) && sampled < uniform - 2.0 && sampled < full + 0.5,
		   "trained with 40 draws a step, the exact validation loss (%.3f) is within 0.5 nats of the exact softmax's (%.3f), "
		   "far below the uniform model's", sampled, full);
}

void
test_sampled(void)
{
	rl_env		env;
	long		live;

	test_env_init(&env);
	live = test_live_blocks();
	check_exact(&env);
	check_candidates(&env);
	check_learning(&env);
	tap_ok(test_live_blocks() == live, "the sampled output layer frees everything it allocates");
}
