/*
 * model.c
 *		The model's shape: configuration checks, the parameter layout (one
 *		flat array, in file order; see doc/format.md) and initialisation.
 */
#include "rnnlm_core.h"

#include <math.h>
#include <string.h>

/* Gate blocks per cell: rnn 1, lstm 4 (i f g o), gru 3 (z r h~). */
int
rl_cell_gates(rl_cell_kind cell)
{
	switch (cell)
	{
		case RL_CELL_RNN:
			return 1;
		case RL_CELL_LSTM:
			return 4;
		case RL_CELL_GRU:
			return 3;
	}
	return 0;
}

/* Checks every field of a configuration against the limits. */
rl_status
rl_config_check(rl_env *env, const rl_config *cfg)
{
	if (rl_cell_gates(cfg->cell) == 0)
		return rl_error(env, RL_ERR_INVALID, "unknown cell type %d", (int) cfg->cell);
	if (rl_tokenizer(cfg->tokenizer) == NULL)
		return rl_error(env, RL_ERR_INVALID, "unknown tokenizer %d", (int) cfg->tokenizer);
	if (cfg->vocab_size < RL_NUM_SPECIAL + 1 || cfg->vocab_size > RL_MAX_VOCAB)
		return rl_error(env, RL_ERR_INVALID, "vocabulary size %d is out of range", cfg->vocab_size);
	if (cfg->embedding_dim < 1 || cfg->embedding_dim > RL_MAX_EMBED)
		return rl_error(env, RL_ERR_INVALID, "embedding_dim %d is out of range", cfg->embedding_dim);
	if (cfg->hidden_size < 1 || cfg->hidden_size > RL_MAX_HIDDEN)
		return rl_error(env, RL_ERR_INVALID, "hidden_size %d is out of range", cfg->hidden_size);
	if (cfg->num_layers < 1 || cfg->num_layers > RL_MAX_LAYERS)
		return rl_error(env, RL_ERR_INVALID, "num_layers %d is out of range", cfg->num_layers);
	return RL_OK;
}

/* Number of float parameters of a configuration, with overflow checks. */
rl_status
rl_config_nparams(rl_env *env, const rl_config *cfg, size_t *n)
{
	size_t		V = (size_t) cfg->vocab_size;
	size_t		E = (size_t) cfg->embedding_dim;
	size_t		H = (size_t) cfg->hidden_size;
	size_t		G = (size_t) rl_cell_gates(cfg->cell);
	size_t		total,
				t;
	int			l;
	rl_status	st = rl_config_check(env, cfg);

	if (st != RL_OK)
		return st;
	if (rl_mul_overflow(V, E, &total))
		goto overflow;
	for (l = 0; l < cfg->num_layers; l++)
	{
		size_t		in = l == 0 ? E : H;

		/* G*H*(in + H + 1) */
		if (rl_add_overflow(in, H + 1, &t) || rl_mul_overflow(t, G * H, &t) ||
			rl_add_overflow(total, t, &total))
			goto overflow;
	}
	if (rl_mul_overflow(V, H + 1, &t) || rl_add_overflow(total, t, &total))
		goto overflow;
	if (total > SIZE_MAX / sizeof(float))
		goto overflow;
	*n = total;
	return RL_OK;
overflow:
	return rl_error(env, RL_ERR_INVALID, "model size overflows");
}

/* Points the per-tensor views into a flat parameter (or gradient) array. */
void
rl_param_views(const rl_config *cfg, float *base, float **emb,
			   rl_layer_params *layers, float **why, float **by)
{
	size_t		V = (size_t) cfg->vocab_size;
	size_t		E = (size_t) cfg->embedding_dim;
	size_t		H = (size_t) cfg->hidden_size;
	size_t		G = (size_t) rl_cell_gates(cfg->cell);
	float	   *p = base;
	int			l;

	*emb = p;
	p += V * E;
	for (l = 0; l < cfg->num_layers; l++)
	{
		size_t		in = l == 0 ? E : H;

		layers[l].in_dim = (int32_t) in;
		layers[l].wx = p;
		p += G * H * in;
		layers[l].wh = p;
		p += G * H * H;
		layers[l].b = p;
		p += G * H;
	}
	*why = p;
	p += V * H;
	*by = p;
}

/* Allocates a model of the given shape (weights zero); takes ownership of vocab. */
rl_status
rl_model_create(rl_env *env, const rl_config *cfg, rl_vocab *vocab, rl_model **out)
{
	rl_model   *m;
	size_t		n;
	rl_status	st;

	*out = NULL;
	st = rl_config_nparams(env, cfg, &n);
	if (st != RL_OK)
		return st;
	if (vocab && vocab->size != cfg->vocab_size)
		return rl_error(env, RL_ERR_INVALID, "vocabulary has %d entries, configuration says %d",
						vocab->size, cfg->vocab_size);
	m = rl_alloc0(env, sizeof(rl_model));
	if (m == NULL)
		return env->status;
	m->cfg = *cfg;
	m->nparams = n;
	m->params = rl_alloc_array(env, n, sizeof(float));
	if (m->params == NULL)
	{
		rl_free(env, m);
		return env->status;
	}
	rl_param_views(cfg, m->params, &m->emb, m->layers, &m->why, &m->by);
	m->vocab = vocab;
	*out = m;
	return RL_OK;
}

/* Fills n floats uniformly from [-a, a]. */
static void
fill_uniform(float *p, size_t n, double a, rl_rng *rng)
{
	size_t		i;

	for (i = 0; i < n; i++)
		p[i] = (float) ((2.0 * rl_rng_uniform(rng) - 1.0) * a);
}

/*
 * Initialises the weights from a seed: embeddings uniform with unit
 * variance, cell and output weights uniform in [-1/sqrt(H), 1/sqrt(H)],
 * biases zero except the LSTM forget gate's, which is forget_bias.
 */
void
rl_model_init_weights(rl_model *m, uint64_t seed, float forget_bias)
{
	const rl_config *c = &m->cfg;
	size_t		H = (size_t) c->hidden_size;
	size_t		G = (size_t) rl_cell_gates(c->cell);
	double		a = 1.0 / sqrt((double) H);
	rl_rng		rng;
	int			l;
	size_t		i;

	rl_rng_seed(&rng, seed);
	fill_uniform(m->emb, (size_t) c->vocab_size * c->embedding_dim, sqrt(3.0), &rng);
	for (l = 0; l < c->num_layers; l++)
	{
		rl_layer_params *lp = &m->layers[l];

		fill_uniform(lp->wx, G * H * lp->in_dim, a, &rng);
		fill_uniform(lp->wh, G * H * H, a, &rng);
		memset(lp->b, 0, G * H * sizeof(float));
		if (c->cell == RL_CELL_LSTM)
			for (i = 0; i < H; i++)
				lp->b[H + i] = forget_bias;
	}
	fill_uniform(m->why, (size_t) c->vocab_size * H, a, &rng);
	memset(m->by, 0, (size_t) c->vocab_size * sizeof(float));
}

/* Frees a model and its vocabulary. */
void
rl_model_free(rl_env *env, rl_model *m)
{
	if (m == NULL)
		return;
	rl_vocab_free(env, m->vocab);
	rl_free(env, m->params);
	rl_free(env, m);
}
