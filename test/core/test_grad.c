/*
 * test_grad.c
 *		Finite-difference checks of the analytic gradients of every cell
 *		type with one and two layers, for every parameter tensor, and of
 *		the hidden state carried from one chunk to the next.
 *
 * Each gradient is checked twice: from the zero state, and from the state
 * a first chunk leaves behind (run with the unperturbed weights, so that
 * the chunk under test starts from the same state whatever the
 * perturbation, which is what truncated backpropagation differentiates).
 * The second catches terms that vanish when h_0 = 0.  With dropout, a
 * fresh trainer with the same seed draws the same masks, so the loss is
 * again a smooth function of the weights and is checked the same way.
 *
 * The forward pass is float32, so the loss itself is only good to a few
 * parts in 10^7, which puts a noise of about 1e-6 on a difference quotient
 * with a step of 1e-2.  Each numeric gradient is therefore the mean of
 * GRAD_STEPS Richardson-extrapolated central differences (steps h and 2h,
 * h from GRAD_EPS up by GRAD_SPREAD each time): the extrapolation removes
 * the h^2 truncation error, and averaging over slightly different steps
 * averages the rounding noise.  Steps are measured on the stored floats.
 * An entry whose gradient is above GRAD_FLOOR must agree to GRAD_REL
 * relative error, the others to GRAD_ABS absolute error, and every tensor
 * must have an entry above the floor so that no check is vacuous.
 */
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GV 7
#define GE 4
#define GH 5
#define GB 2
#define GT 4
#define GRAD_EPS	3e-2
#define GRAD_STEPS	4
#define GRAD_SPREAD	0.07
#define GRAD_FLOOR	1e-3
#define GRAD_REL	1e-3
#define GRAD_ABS	2e-6
#define GRAD_DROPOUT 0.3

typedef struct grad_ctx
{
	rl_env	   *env;
	rl_model   *m;
	rl_trainer *tr;
	const char *label;
	double		dropout;		/* > 0: a fresh trainer with seed for every loss */
	uint64_t	seed;
	int			warm;			/* start from the state a first chunk leaves */
	int32_t		inputs[GB * GT];
	int32_t		targets[GB * GT];
	int32_t		warm_inputs[GB * GT];
	int32_t		warm_targets[GB * GT];
} grad_ctx;

/* What comparing one tensor found. */
typedef struct grad_stats
{
	size_t		entries,
				above,
				bad;
	double		worst_rel,
				worst_abs;
} grad_stats;

/* Resets the trainer's state, then runs the warm-up chunk if the check wants one. */
static void
start_state(grad_ctx *g)
{
	double		ignored;

	rl_trainer_reset_state(g->tr);
	if (g->warm &&
		rl_trainer_loss(g->tr, g->warm_inputs, g->warm_targets, GT, &ignored) != RL_OK)
		tap_bail("rl_trainer_loss failed in the warm-up chunk");
}

/* The loss (and, if grads is not NULL, its gradient) with the current weights. */
static double
loss_now(grad_ctx *g, float *grads)
{
	double		loss = NAN;
	rl_status	st;

	if (g->dropout > 0)
	{
		rl_trainer *t;

		if (rl_trainer_create(g->env, g->m, GB, GT, g->dropout, g->seed, &t) != RL_OK)
			tap_bail("rl_trainer_create: %s", g->env->errmsg);
		st = grads ? rl_trainer_loss_grad(t, g->inputs, g->targets, GT, &loss)
			: rl_trainer_loss(t, g->inputs, g->targets, GT, &loss);
		if (grads)
			memcpy(grads, rl_trainer_grads(t), g->m->nparams * sizeof(float));
		rl_trainer_free(t);
	}
	else
	{
		start_state(g);
		st = grads ? rl_trainer_loss_grad(g->tr, g->inputs, g->targets, GT, &loss)
			: rl_trainer_loss(g->tr, g->inputs, g->targets, GT, &loss);
		if (grads)
			memcpy(grads, rl_trainer_grads(g->tr), g->m->nparams * sizeof(float));
	}
	return st == RL_OK ? loss : NAN;
}

/* The loss with parameter k set to value (any warm-up uses the stored weights). */
static double
loss_at(grad_ctx *g, size_t k, float value)
{
	float	   *p = g->m->params;
	float		orig = p[k];
	double		loss = NAN;

	if (g->dropout > 0)
	{
		p[k] = value;
		loss = loss_now(g, NULL);
	}
	else
	{
		start_state(g);
		p[k] = value;
		if (rl_trainer_loss(g->tr, g->inputs, g->targets, GT, &loss) != RL_OK)
			loss = NAN;
	}
	p[k] = orig;
	return loss;
}

/* Central difference of the loss in parameter k with step h, over the step actually stored. */
static double
central(grad_ctx *g, size_t k, double h)
{
	float		orig = g->m->params[k];
	float		up = (float) (orig + h);
	float		down = (float) (orig - h);

	return (loss_at(g, k, up) - loss_at(g, k, down)) / ((double) up - (double) down);
}

/* The numeric gradient of parameter k: averaged Richardson-extrapolated central differences. */
static double
numeric_grad(grad_ctx *g, size_t k)
{
	double		sum = 0.0;
	int			j;

	for (j = 0; j < GRAD_STEPS; j++)
	{
		double		h = GRAD_EPS * (1.0 + GRAD_SPREAD * j);
		double		d1 = central(g, k, h);
		double		d2 = central(g, k, 2.0 * h);

		sum += (4.0 * d1 - d2) / 3.0;
	}
	return sum / GRAD_STEPS;
}

/* Compares the analytic gradient of entries [off, off+n) with the numeric one, adding to st. */
static void
compare_tensor(grad_ctx *g, const float *analytic, const char *tensor, size_t off, size_t n,
			   grad_stats *st)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		a = analytic[off + i];
		double		num = numeric_grad(g, off + i);
		double		big = fmax(fabs(a), fabs(num));
		double		err = fabs(a - num);
		int			wrong;

		st->entries++;
		if (!isfinite(num) || !isfinite(a))
			wrong = 1;
		else if (big > GRAD_FLOOR)
		{
			st->above++;
			st->worst_rel = fmax(st->worst_rel, err / big);
			wrong = err / big >= GRAD_REL;
		}
		else
		{
			st->worst_abs = fmax(st->worst_abs, err);
			wrong = err >= GRAD_ABS;
		}
		if (wrong && st->bad++ < 3)
			tap_diag("%s %s[%zu]%s: analytic %.8g numeric %.8g", g->label, tensor, i,
					 g->warm ? " (carried state)" : "", a, num);
	}
}

/* The tensors of a model: name, offset and size, in file order; returns the count. */
static int
model_tensors(const rl_model *m, const char **names, size_t *off, size_t *n)
{
	static const char *const layer_names[RL_MAX_LAYERS][3] = {
		{"layer 0 W_x", "layer 0 W_h", "layer 0 b"},
		{"layer 1 W_x", "layer 1 W_h", "layer 1 b"},
	};
	size_t		GH_ = (size_t) rl_cell_gates(m->cfg.cell) * m->cfg.hidden_size;
	float	   *emb,
			   *why,
			   *by;
	rl_layer_params views[RL_MAX_LAYERS];
	int			k = 0,
				l;

	/* the views rl_param_views computes must be the model's own */
	rl_param_views(&m->cfg, m->params, &emb, views, &why, &by);
	if (emb != m->emb || why != m->why || by != m->by)
		tap_bail("rl_param_views disagrees with the model's views");
	names[k] = "emb";
	off[k] = (size_t) (m->emb - m->params);
	n[k++] = (size_t) m->cfg.vocab_size * m->cfg.embedding_dim;
	for (l = 0; l < m->cfg.num_layers && l < 2; l++)
	{
		const rl_layer_params *lp = &m->layers[l];

		if (views[l].wx != lp->wx || views[l].wh != lp->wh || views[l].b != lp->b)
			tap_bail("rl_param_views disagrees with the model's layer views");
		names[k] = layer_names[l][0];
		off[k] = (size_t) (lp->wx - m->params);
		n[k++] = GH_ * (size_t) lp->in_dim;
		names[k] = layer_names[l][1];
		off[k] = (size_t) (lp->wh - m->params);
		n[k++] = GH_ * (size_t) m->cfg.hidden_size;
		names[k] = layer_names[l][2];
		off[k] = (size_t) (lp->b - m->params);
		n[k++] = GH_;
	}
	names[k] = "W_hy";
	off[k] = (size_t) (m->why - m->params);
	n[k++] = (size_t) m->cfg.vocab_size * m->cfg.hidden_size;
	names[k] = "b_y";
	off[k] = (size_t) (m->by - m->params);
	n[k++] = (size_t) m->cfg.vocab_size;
	return k;
}

/* Fills the chunks with random ids, making sure the special tokens and a repeat occur. */
static void
fill_chunks(grad_ctx *g, uint64_t seed)
{
	rl_rng		rng;
	int			i;

	rl_rng_seed(&rng, seed);
	for (i = 0; i < GB * GT; i++)
	{
		g->inputs[i] = (int32_t) (rl_rng_next(&rng) % GV);
		g->targets[i] = (int32_t) (rl_rng_next(&rng) % GV);
		g->warm_inputs[i] = (int32_t) (rl_rng_next(&rng) % GV);
		g->warm_targets[i] = (int32_t) (rl_rng_next(&rng) % GV);
	}
	g->inputs[0] = RL_TOKEN_EOD;
	g->targets[1] = RL_TOKEN_UNK;
	g->inputs[GB * GT - 1] = g->inputs[1];
}

/* Gradient, loss and state-carry checks for one cell type and layer count. */
static void
check_config(rl_env *env, rl_cell_kind cell, int L, uint64_t seed, double *worst_all)
{
	grad_ctx	g;
	char		label[64];
	float	   *analytic[2];
	const char *names[3 + 3 * 2];
	size_t		offs[3 + 3 * 2],
				sizes[3 + 3 * 2];
	double		loss_g[2],
				loss_f[2],
				first = NAN,
				carried = NAN,
				fresh = NAN;
	int			ntensors,
				k,
				w;

	snprintf(label, sizeof(label), "%s, %d layer%s", rl_cell_name(cell), L, L > 1 ? "s" : "");
	memset(&g, 0, sizeof(g));
	g.env = env;
	g.label = label;
	g.m = test_model(env, cell, GV, GE, GH, L, 0.5, seed);
	if (rl_trainer_create(env, g.m, GB, GT, 0.0, seed, &g.tr) != RL_OK)
		tap_bail("rl_trainer_create: %s", env->errmsg);
	fill_chunks(&g, seed + 1000);

	for (w = 0; w < 2; w++)
	{
		analytic[w] = malloc(g.m->nparams * sizeof(float));
		if (analytic[w] == NULL)
			tap_bail("out of memory");
		g.warm = w;
		loss_g[w] = loss_now(&g, analytic[w]);
		loss_f[w] = loss_at(&g, 0, g.m->params[0]);
	}
	tap_ok(isfinite(loss_g[0]) && loss_g[0] == loss_f[0] && loss_g[0] > 0 &&
		   isfinite(loss_g[1]) && loss_g[1] == loss_f[1] && loss_g[1] != loss_g[0],
		   "%s: rl_trainer_loss_grad and rl_trainer_loss agree on the loss (%.9g; carried %.9g)",
		   label, loss_g[0], loss_g[1]);

	ntensors = model_tensors(g.m, names, offs, sizes);
	for (k = 0; k < ntensors; k++)
	{
		grad_stats	st;

		memset(&st, 0, sizeof(st));
		for (w = 0; w < 2; w++)
		{
			g.warm = w;
			compare_tensor(&g, analytic[w], names[k], offs[k], sizes[k], &st);
		}
		g.warm = 0;
		tap_diag("%s %s: %zu entries x 2 states, %zu above %.0e, worst rel err %.2e, "
				 "worst abs err below the floor %.2e",
				 label, names[k], sizes[k], st.above, GRAD_FLOOR, st.worst_rel, st.worst_abs);
		tap_ok(st.bad == 0 && st.above > 0,
			   "%s: gradient of %s matches finite differences (worst rel err %.2e)",
			   label, names[k], st.worst_rel);
		*worst_all = fmax(*worst_all, st.worst_rel);
	}

	/* the state after one chunk is carried into the next unless reset */
	rl_trainer_reset_state(g.tr);
	rl_trainer_loss(g.tr, g.inputs, g.targets, GT, &first);
	rl_trainer_loss(g.tr, g.inputs, g.targets, GT, &carried);
	rl_trainer_reset_state(g.tr);
	rl_trainer_loss(g.tr, g.inputs, g.targets, GT, &fresh);
	tap_ok(isfinite(carried) && first == fresh && fabs(carried - fresh) > 1e-6,
		   "%s: the hidden state carries over between calls (%.6f carried, %.6f reset)",
		   label, carried, fresh);

	free(analytic[0]);
	free(analytic[1]);
	rl_trainer_free(g.tr);
	rl_model_free(env, g.m);
}

/* Gradients with dropout (two layers, so every dropout site is used); one test point. */
static void
check_dropout(rl_env *env, rl_cell_kind cell, uint64_t seed, double *worst_all)
{
	grad_ctx	g;
	char		label[64];
	float	   *analytic;
	const char *names[3 + 3 * 2];
	size_t		offs[3 + 3 * 2],
				sizes[3 + 3 * 2];
	grad_stats	st;
	double		with,
				without;
	int			ntensors,
				k;

	snprintf(label, sizeof(label), "%s, 2 layers, dropout %.1f", rl_cell_name(cell), GRAD_DROPOUT);
	memset(&g, 0, sizeof(g));
	memset(&st, 0, sizeof(st));
	g.env = env;
	g.label = label;
	g.seed = seed;
	g.m = test_model(env, cell, GV, GE, GH, 2, 0.5, seed);
	fill_chunks(&g, seed + 2000);
	analytic = malloc(g.m->nparams * sizeof(float));
	if (analytic == NULL)
		tap_bail("out of memory");
	g.dropout = GRAD_DROPOUT;
	with = loss_now(&g, analytic);
	ntensors = model_tensors(g.m, names, offs, sizes);
	for (k = 0; k < ntensors; k++)
		compare_tensor(&g, analytic, names[k], offs[k], sizes[k], &st);
	g.dropout = 0.0;
	if (rl_trainer_create(env, g.m, GB, GT, 0.0, seed, &g.tr) != RL_OK)
		tap_bail("rl_trainer_create: %s", env->errmsg);
	without = loss_now(&g, NULL);
	tap_diag("%s: %zu entries, %zu above %.0e, worst rel err %.2e, worst abs err below the floor %.2e",
			 label, st.entries, st.above, GRAD_FLOOR, st.worst_rel, st.worst_abs);
	tap_ok(st.bad == 0 && st.above > 0 && isfinite(with) && with != without,
		   "%s: every gradient matches finite differences with the same masks (worst rel err %.2e)",
		   label, st.worst_rel);
	*worst_all = fmax(*worst_all, st.worst_rel);
	free(analytic);
	rl_trainer_free(g.tr);
	rl_model_free(env, g.m);
}

/* Runs the gradient checks for rnn, lstm and gru with 1 and 2 layers, and with dropout. */
void
test_gradients(void)
{
	rl_env		env;
	double		worst = 0.0;
	int			c,
				L;

	test_env_init(&env);
	for (c = RL_CELL_RNN; c <= RL_CELL_GRU; c++)
		for (L = 1; L <= 2; L++)
			check_config(&env, (rl_cell_kind) c, L, 17 + 31 * c + L, &worst);
	for (c = RL_CELL_RNN; c <= RL_CELL_GRU; c++)
		check_dropout(&env, (rl_cell_kind) c, 91 + c, &worst);
	tap_diag("worst relative gradient error over all tensors: %.2e", worst);
}
