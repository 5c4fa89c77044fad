/*
 * test_infer.c
 *		Inference: the log-softmax, the cells' forward pass against a
 *		float64 reference written from the equations of doc/format.md,
 *		rl_score against feeding tokens by hand, and the batched training
 *		forward pass against the same reference.
 */
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IV 9
#define IE 6
#define IH 4
#define IL 2

typedef struct ref_state
{
	double		h[RL_MAX_LAYERS][IH];
	double		c[RL_MAX_LAYERS][IH];
} ref_state;

/* The logistic function in double. */
static double
sigm(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

/* One step of the reference model: feeds tok and writes the next-token logits. */
static void
ref_step(const rl_model *m, ref_state *s, int32_t tok, double *logits)
{
	const rl_config *c = &m->cfg;
	int			H = c->hidden_size;
	int			G = rl_cell_gates(c->cell);
	double		x[IE > IH ? IE : IH];
	double		pre[4 * IH];
	int			in = c->embedding_dim,
				l,
				i,
				j;

	for (i = 0; i < in; i++)
		x[i] = m->emb[(size_t) tok * in + i];
	for (l = 0; l < c->num_layers; l++)
	{
		const rl_layer_params *lp = &m->layers[l];
		double	   *h = s->h[l];
		double		rh[IH];

		for (j = 0; j < G * H; j++)
		{
			double		acc = lp->b[j];

			for (i = 0; i < in; i++)
				acc += (double) lp->wx[(size_t) j * in + i] * x[i];
			pre[j] = acc;
		}
		if (c->cell == RL_CELL_GRU)
		{
			/* z and r see h_{t-1}; h~ sees r * h_{t-1} */
			for (j = 0; j < 2 * H; j++)
				for (i = 0; i < H; i++)
					pre[j] += (double) lp->wh[(size_t) j * H + i] * h[i];
			for (i = 0; i < H; i++)
				rh[i] = sigm(pre[H + i]) * h[i];
			for (j = 2 * H; j < 3 * H; j++)
				for (i = 0; i < H; i++)
					pre[j] += (double) lp->wh[(size_t) j * H + i] * rh[i];
			for (i = 0; i < H; i++)
			{
				double		z = sigm(pre[i]);
				double		hc = tanh(pre[2 * H + i]);

				h[i] = (1.0 - z) * h[i] + z * hc;
			}
		}
		else
		{
			for (j = 0; j < G * H; j++)
				for (i = 0; i < H; i++)
					pre[j] += (double) lp->wh[(size_t) j * H + i] * h[i];
			if (c->cell == RL_CELL_RNN)
				for (i = 0; i < H; i++)
					h[i] = tanh(pre[i]);
			else
				for (i = 0; i < H; i++)
				{
					double		ig = sigm(pre[i]);
					double		fg = sigm(pre[H + i]);
					double		gg = tanh(pre[2 * H + i]);
					double		og = sigm(pre[3 * H + i]);

					s->c[l][i] = fg * s->c[l][i] + ig * gg;
					h[i] = og * tanh(s->c[l][i]);
				}
		}
		for (i = 0; i < H; i++)
			x[i] = h[i];
		in = H;
	}
	for (j = 0; j < c->vocab_size; j++)
	{
		double		acc = m->by[j];

		for (i = 0; i < H; i++)
			acc += (double) m->why[(size_t) j * H + i] * x[i];
		logits[j] = acc;
	}
}

/* log softmax in double. */
static double
ref_log_softmax(const double *z, int n, int target)
{
	double		mx = z[0],
				s = 0.0;
	int			i;

	for (i = 1; i < n; i++)
		mx = fmax(mx, z[i]);
	for (i = 0; i < n; i++)
		s += exp(z[i] - mx);
	return z[target] - mx - log(s);
}

/* rl_log_softmax_at against a direct computation, extreme values and normalisation. */
static void
check_log_softmax(void)
{
	rl_rng		rng;
	float		z[37];
	double		zd[37];
	double		worst = 0.0,
				mass_err = 0.0;
	int			trial,
				i,
				top_bad = 0;
	float		ext[4] = {1000.0f, 0.0f, -1000.0f, 1000.0f};
	double		a,
				b,
				c;
	int			top_a,
				top_b,
				top_c;

	rl_rng_seed(&rng, 5);
	for (trial = 0; trial < 200; trial++)
	{
		int			n = 3 + trial % 35;
		int			arg = 0;
		double		mass = 0.0;

		for (i = 0; i < n; i++)
		{
			z[i] = (float) ((rl_rng_uniform(&rng) - 0.5) * 20.0);
			zd[i] = z[i];
			if (z[i] > z[arg])
				arg = i;
		}
		for (i = 0; i < n; i++)
		{
			int			top;
			double		got = rl_log_softmax_at(z, n, i, &top);
			double		want = ref_log_softmax(zd, n, i);

			worst = fmax(worst, fabs(got - want));
			mass += exp(got);
			if (top != (i == arg))
				top_bad++;
		}
		mass_err = fmax(mass_err, fabs(mass - 1.0));
	}
	tap_ok(worst < 1e-6 && top_bad == 0,
		   "rl_log_softmax_at matches a float64 computation to float precision (max err %.2e) and flags the argmax",
		   worst);
	tap_ok(mass_err < 1e-6, "the probabilities sum to 1 (max err %.2e)", mass_err);

	/* logits far apart: no overflow, no NaN */
	a = rl_log_softmax_at(ext, 3, 0, &top_a);
	b = rl_log_softmax_at(ext, 3, 2, &top_b);
	c = rl_log_softmax_at(ext, 4, 1, &top_c);
	tap_ok(fabs(a) < 1e-12 && fabs(b + 2000.0) < 1e-9 && top_a && !top_b &&
		   fabs(c - (-1000.0 - log(2.0))) < 1e-9 && !top_c,
		   "rl_log_softmax_at is stable for logits of +-1000 (%.6g, %.6g, %.6g)", a, b, c);
}

/* rl_state_feed over a token sequence against the float64 reference. */
static void
check_feed(rl_env *env, rl_model *m, const char *name)
{
	static const int32_t seq[] = {0, 2, 5, 5, 1, 8, 3, 0, 7, 2, 4, 6, 6};
	rl_state   *s;
	ref_state	rs;
	double		ref[IV];
	double		worst = 0.0;
	size_t		t;
	int			j;

	memset(&rs, 0, sizeof(rs));
	if (rl_state_create(env, m, &s) != RL_OK)
		tap_bail("rl_state_create: %s", env->errmsg);
	for (t = 0; t < sizeof(seq) / sizeof(seq[0]); t++)
	{
		rl_state_feed(s, seq[t]);
		ref_step(m, &rs, seq[t], ref);
		for (j = 0; j < IV; j++)
			worst = fmax(worst, fabs(s->logits[j] - ref[j]) / fmax(1.0, fabs(ref[j])));
	}
	tap_ok(worst < 1e-5,
		   "%s: rl_state_feed logits follow the equations of doc/format.md (max err %.2e)",
		   name, worst);
	rl_state_free(env, s);
}

/* rl_score_many against rl_score, over more documents than one batch holds. */
static void
check_score_many(rl_env *env, rl_model *m, const char *name)
{
	enum
	{
		NDOCS = 45
	};
	int32_t    *docs[NDOCS];
	size_t		lens[NDOCS],
				correct[NDOCS],
				i,
				j,
				bad = 0;
	double		nll[NDOCS],
				worst = 0.0;
	rl_state   *s;

	if (rl_state_create(env, m, &s) != RL_OK)
		tap_bail("rl_state_create: %s", env->errmsg);
	for (i = 0; i < NDOCS; i++)
	{
		lens[i] = (i * 37) % 150;
		docs[i] = rl_alloc_array(env, lens[i] + 1, sizeof(int32_t));
		for (j = 0; j < lens[i]; j++)
			docs[i][j] = (int32_t) ((i + j * 5) % m->cfg.vocab_size);
	}
	if (rl_score_many(env, m, (const int32_t *const *) docs, lens, NDOCS, RL_PREC_FP32,
					  nll, correct) != RL_OK)
		tap_bail("rl_score_many: %s", env->errmsg);
	for (i = 0; i < NDOCS; i++)
	{
		double		one;
		size_t		ok;

		if (rl_score(env, s, docs[i], lens[i], &one, &ok, NULL) != RL_OK)
			tap_bail("rl_score: %s", env->errmsg);
		worst = fmax(worst, fabs(one - nll[i]) / (lens[i] + 1));
		if (ok != correct[i])
			bad++;
		rl_free(env, docs[i]);
	}
	tap_ok(worst < 1e-5 && bad == 0,
		   "%s: rl_score_many scores %d documents of 0 to 149 tokens as rl_score does (max err/token %.2e, %zu top-1 counts differ)",
		   name, (int) NDOCS, worst, bad);
	rl_state_free(env, s);
}

/*
 * rl_score against rl_state_feed and rl_log_softmax_at by hand, over a
 * document long enough to cross several scoring chunks.
 */
static void
check_score(rl_env *env, rl_model *m, const char *name)
{
	int32_t		ids[3 * RL_SCORE_CHUNK + 5];
	size_t		n = sizeof(ids) / sizeof(ids[0]);
	rl_state   *s;
	double		lps[3 * RL_SCORE_CHUNK + 6],
				nll = NAN,
				nll2 = NAN,
				hand = 0.0,
				hand_lp[3 * RL_SCORE_CHUNK + 6];
	size_t		correct = 99,
				correct2 = 99,
				hand_correct = 0,
				i;
	int			same = 1;

	for (i = 0; i < n; i++)
		ids[i] = (int32_t) ((i * 7 + 3) % m->cfg.vocab_size);
	if (rl_state_create(env, m, &s) != RL_OK)
		tap_bail("rl_state_create: %s", env->errmsg);
	/* leave some state behind first: rl_score must start from the reset state */
	rl_state_feed(s, 4);
	rl_state_feed(s, 6);
	if (rl_score(env, s, ids, n, &nll, &correct, lps) != RL_OK)
		tap_bail("rl_score: %s", env->errmsg);

	rl_state_reset(s);
	rl_state_feed(s, RL_TOKEN_EOD);
	for (i = 0; i <= n; i++)
	{
		int32_t		target = i < n ? ids[i] : RL_TOKEN_EOD;
		int			top;

		hand_lp[i] = rl_log_softmax_at(s->logits, IV, target, &top);
		hand -= hand_lp[i];
		hand_correct += top;
		if (i < n)
			rl_state_feed(s, target);
	}
	/* chunked matrix products sum in another order than one step at a time */
	for (i = 0; i <= n; i++)
		if (fabs(lps[i] - hand_lp[i]) > 1e-5)
			same = 0;
	if (rl_score(env, s, ids, n, &nll2, &correct2, NULL) != RL_OK)
		tap_bail("rl_score: %s", env->errmsg);
	tap_ok(same && fabs(nll - hand) < 1e-5 * (n + 1) && correct == hand_correct &&
		   nll2 == nll && correct2 == correct && nll > 0,
		   "%s: rl_score gives the sum of -log p of feeding by hand (%.6f vs %.6f, top-1 %zu vs %zu)",
		   name, nll, hand, correct, hand_correct);
	rl_state_free(env, s);
}

/* The trainer's batched forward pass over two chunks against the reference on each stream. */
static void
check_trainer_forward(rl_env *env, rl_model *m, const char *name)
{
	enum
	{
		B = 3, T = 5
	};
	int32_t		in[2][T * B],
				tg[2][T * B];
	rl_trainer *tr;
	ref_state	rs;
	double		ref[IV],
				want[2] = {0.0, 0.0},
				got[2] = {NAN, NAN};
	rl_rng		rng;
	int			t,
				b,
				k;

	rl_rng_seed(&rng, 77);
	for (k = 0; k < 2; k++)
		for (t = 0; t < T * B; t++)
		{
			in[k][t] = (int32_t) (rl_rng_next(&rng) % IV);
			tg[k][t] = (int32_t) (rl_rng_next(&rng) % IV);
		}
	/* each stream runs on from the first chunk into the second */
	for (b = 0; b < B; b++)
	{
		memset(&rs, 0, sizeof(rs));
		for (k = 0; k < 2; k++)
			for (t = 0; t < T; t++)
			{
				ref_step(m, &rs, in[k][t * B + b], ref);
				want[k] -= ref_log_softmax(ref, IV, tg[k][t * B + b]);
			}
	}
	if (rl_trainer_create(env, m, B, T, 0.0, 1, &tr) != RL_OK)
		tap_bail("rl_trainer_create: %s", env->errmsg);
	for (k = 0; k < 2; k++)
	{
		want[k] /= T * B;
		if (rl_trainer_loss(tr, in[k], tg[k], T, &got[k]) != RL_OK)
			tap_bail("rl_trainer_loss: %s", env->errmsg);
	}
	tap_ok(fabs(got[0] - want[0]) < 1e-5 * want[0] && fabs(got[1] - want[1]) < 1e-5 * want[1],
		   "%s: the batched training loss equals the reference per stream, first chunk and "
		   "carried on (%.8f vs %.8f, %.8f vs %.8f)", name, got[0], want[0], got[1], want[1]);
	rl_trainer_free(tr);
}

/* Out-of-range ids score as <unk>, and resetting a state equals a fresh one. */
static void
check_unk_and_reset(rl_env *env)
{
	rl_model   *m = test_model(env, RL_CELL_LSTM, IV, IE, IH, IL, 0.5, 3);
	int32_t		odd[] = {2, 99, 4, -5};
	int32_t		unk[] = {2, 1, 4, 1};
	rl_state   *s,
			   *f;
	double		a = NAN,
				b = NAN;
	size_t		ca,
				cb;
	int			same;

	if (rl_state_create(env, m, &s) != RL_OK || rl_state_create(env, m, &f) != RL_OK)
		tap_bail("rl_state_create: %s", env->errmsg);
	rl_score(env, s, odd, 4, &a, &ca, NULL);
	rl_score(env, s, unk, 4, &b, &cb, NULL);
	tap_ok(isfinite(a) && a == b && ca == cb,
		   "ids outside the vocabulary score as <unk> (%.6f vs %.6f)", a, b);

	rl_state_feed(s, 3);
	rl_state_feed(s, 5);
	rl_state_reset(s);
	rl_state_feed(s, 2);
	rl_state_feed(f, 2);
	same = memcmp(s->logits, f->logits, IV * sizeof(float)) == 0;
	tap_ok(same, "rl_state_reset returns to the document-start state");
	rl_state_free(env, s);
	rl_state_free(env, f);
	rl_model_free(env, m);
}

/* Runs the inference checks. */
/*
 * rl_embed against feeding the tokens one at a time: last pooling is the
 * top layer's state after the last token, mean the average of the states
 * after each token, the empty text the state after <eod>; over a document
 * longer than a chunk, for every cell.
 */
static void
check_embed(rl_env *env)
{
	double		worst = 0;
	int			c;

	for (c = RL_CELL_RNN; c <= RL_CELL_GRU; c++)
	{
		rl_model   *m = test_model(env, (rl_cell_kind) c, 23, 6, 10, 2, 0.6, 70 + c);
		int			H = m->cfg.hidden_size;
		size_t		n = RL_SCORE_CHUNK + 37,
					i;
		int32_t    *ids = malloc(sizeof(int32_t) * n);
		double	   *mean = calloc((size_t) H, sizeof(double));
		float		e_mean[10],
					e_last[10],
					e_empty[10],
					after_eod[10];
		rl_state   *s;
		int			j;

		for (i = 0; i < n; i++)
			ids[i] = 2 + (int32_t) ((i * 5) % 21);
		if (rl_state_create(env, m, &s) != RL_OK)
			tap_bail("state: %s", env->errmsg);
		rl_state_reset(s);
		rl_state_feed(s, RL_TOKEN_EOD);
		memcpy(after_eod, s->h + (size_t) (m->cfg.num_layers - 1) * H, sizeof(float) * H);
		for (i = 0; i < n; i++)
		{
			rl_state_feed(s, ids[i]);
			for (j = 0; j < H; j++)
				mean[j] += s->h[(size_t) (m->cfg.num_layers - 1) * H + j] / (double) n;
		}
		/* s->h now holds the state after the last token */
		{
			float		last[10];

			memcpy(last, s->h + (size_t) (m->cfg.num_layers - 1) * H, sizeof(float) * H);
			if (rl_embed(env, s, ids, n, RL_POOL_MEAN, e_mean) != RL_OK ||
				rl_embed(env, s, ids, n, RL_POOL_LAST, e_last) != RL_OK ||
				rl_embed(env, s, ids, 0, RL_POOL_MEAN, e_empty) != RL_OK)
				tap_bail("rl_embed: %s", env->errmsg);
			for (j = 0; j < H; j++)
			{
				worst = fmax(worst, fabs(e_last[j] - last[j]));
				worst = fmax(worst, fabs(e_mean[j] - mean[j]));
				worst = fmax(worst, fabs(e_empty[j] - after_eod[j]));
			}
		}
		rl_state_free(env, s);
		rl_model_free(env, m);
		free(ids);
		free(mean);
	}
	tap_ok(worst < 1e-5,
		   "rl_embed (mean, last, empty text) matches the states of feeding the tokens one at a time, for rnn, lstm and gru (%.2e)",
		   worst);
}

void
test_infer(void)
{
	rl_env		env;
	long		live;
	int			c;

	test_env_init(&env);
	live = test_live_blocks();
	check_log_softmax();
	check_embed(&env);
	for (c = RL_CELL_RNN; c <= RL_CELL_GRU; c++)
	{
		rl_model   *m = test_model(&env, (rl_cell_kind) c, IV, IE, IH, IL, 0.7, 40 + c);
		char		name[32];

		snprintf(name, sizeof(name), "%s, %d layers", rl_cell_name((rl_cell_kind) c), IL);
		check_feed(&env, m, name);
		check_score(&env, m, name);
		check_score_many(&env, m, name);
		check_trainer_forward(&env, m, name);
		rl_model_free(&env, m);
	}
	check_unk_and_reset(&env);
	tap_ok(test_live_blocks() == live, "inference frees everything it allocates (%ld blocks left)",
		   test_live_blocks() - live);
}
