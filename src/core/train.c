/*
 * train.c
 *		Training: the token stream cut into batch_size parallel streams,
 *		truncated backpropagation through time over seq_len steps with the
 *		hidden state carried from one batch to the next, cross-entropy loss,
 *		dropout on the non-recurrent connections (embedding to layer 0,
 *		between layers, top layer to softmax), clipping by global L2 norm and
 *		Adam.
 *
 * One rl_trainer holds every buffer a batch needs, allocated once.  With a
 * fixed seed and BLAS thread count the result is deterministic.
 */
#include "rnnlm_core.h"

#include <math.h>
#include <string.h>
#include <time.h>

struct rl_trainer
{
	rl_env	   *env;
	rl_model   *m;
	int32_t		B;				/* streams allocated for */
	int32_t		S;				/* steps allocated for */
	int32_t		cur_B;			/* streams in use (<= B) */
	double		dropout;
	int			training;
	rl_rng		rng;
	rl_layer_buf lb[RL_MAX_LAYERS];
	float	   *top;			/* [S*B, H] top layer output after dropout */
	float	   *top_mask;		/* [S*B, H] or NULL */
	float	   *logits;			/* [S*B, V] */
	float	   *dA,
			   *dB;				/* [S*B, max(E, H)] */
	float	   *dG;				/* [S*B, G*H] */
	float	   *dh_next,
			   *dc,
			   *tmp;			/* [B, H] */
	float	   *grads;			/* like params */
	float	   *g_emb,
			   *g_why,
			   *g_by;
	rl_layer_params g_layers[RL_MAX_LAYERS];
	float	   *adam_m,
			   *adam_v;
	int64_t		step;
	rl_prod		prod;			/* the products' precision, and the bf16 weights */
	int64_t		prod_step;		/* the Adam step the bf16 copy was made at; -1 stale */
	int32_t    *inputs,
			   *targets;		/* [S*B] */
	/* every allocation, for freeing */
	void	   *allocs[16 + 8 * RL_MAX_LAYERS];
	int			nallocs;
};

/* Allocates n zeroed floats owned by the trainer. */
static float *
tr_floats(rl_trainer *tr, size_t n)
{
	float	   *p = rl_alloc_array(tr->env, n ? n : 1, sizeof(float));

	if (p)
		tr->allocs[tr->nallocs++] = p;
	return p;
}

/* Allocates *p (n zeroed floats) unless it is there already; 0 on failure. */
static int
tr_ensure(rl_trainer *tr, float **p, size_t n)
{
	if (*p == NULL)
		*p = tr_floats(tr, n);
	return *p != NULL;
}

/* Builds a trainer for batches of up to batch streams and seq_len steps. */
rl_status
rl_trainer_create(rl_env *env, rl_model *m, int32_t batch, int32_t seq_len,
				  double dropout, uint64_t seed, rl_trainer **out)
{
	const rl_config *c = &m->cfg;
	rl_trainer *tr;
	size_t		H = (size_t) c->hidden_size;
	size_t		G = (size_t) rl_cell_gates(c->cell);
	size_t		V = (size_t) c->vocab_size;
	size_t		rows;
	int			l;

	*out = NULL;
	if (batch < 1 || seq_len < 1)
		return rl_error(env, RL_ERR_INVALID, "batch and sequence length must be positive");
	if (rl_mul_overflow((size_t) batch, (size_t) seq_len, &rows) || rows > (size_t) INT32_MAX / (V > G * H ? V : G * H))
		return rl_error(env, RL_ERR_INVALID, "batch_size * seq_len is too large for this model");
	tr = rl_alloc0(env, sizeof(rl_trainer));
	if (tr == NULL)
		return env->status;
	tr->env = env;
	tr->m = m;
	tr->B = tr->cur_B = batch;
	tr->S = seq_len;
	tr->dropout = dropout;
	tr->training = 1;
	rl_rng_seed(&tr->rng, seed ^ 0x9E3779B97F4A7C15ULL);

	for (l = 0; l < c->num_layers; l++)
	{
		rl_layer_buf *lb = &tr->lb[l];
		size_t		in = (size_t) m->layers[l].in_dim;

		if (!(lb->x = tr_floats(tr, rows * in)) ||
			(dropout > 0 && !(lb->mask = tr_floats(tr, rows * in))) ||
			!(lb->gates = tr_floats(tr, rows * G * H)) ||
			!(lb->h = tr_floats(tr, rows * H)) ||
			!(lb->h0 = tr_floats(tr, (size_t) batch * H)))
			goto fail;
		if (c->cell == RL_CELL_LSTM &&
			(!(lb->c = tr_floats(tr, rows * H)) || !(lb->c0 = tr_floats(tr, (size_t) batch * H))))
			goto fail;
		if (c->cell == RL_CELL_GRU && !(lb->rh = tr_floats(tr, rows * H)))
			goto fail;
	}
	if (!(tr->top = tr_floats(tr, rows * H)) ||
		(dropout > 0 && !(tr->top_mask = tr_floats(tr, rows * H))) ||
		!(tr->logits = tr_floats(tr, rows * V)) ||
		!(tr->inputs = (int32_t *) tr_floats(tr, rows)) ||
		!(tr->targets = (int32_t *) tr_floats(tr, rows)))
		goto fail;
	*out = tr;
	return RL_OK;
fail:
	rl_trainer_free(tr);
	return env->status;
}

/*
 * Allocates what only the backward pass needs (gradients and their scratch)
 * on first use, so a trainer used for scoring never holds them.
 */
static int
ensure_backward(rl_trainer *tr)
{
	const rl_config *c = &tr->m->cfg;
	size_t		rows = (size_t) tr->B * tr->S;
	size_t		H = (size_t) c->hidden_size;
	size_t		G = (size_t) rl_cell_gates(c->cell);
	size_t		wide = (size_t) (c->embedding_dim > c->hidden_size ?
								 c->embedding_dim : c->hidden_size);

	if (tr->grads)
		return 1;
	/* each buffer once: a call after a failed one allocates only what is missing */
	if (!tr_ensure(tr, &tr->dA, rows * wide) ||
		!tr_ensure(tr, &tr->dB, rows * wide) ||
		!tr_ensure(tr, &tr->dG, rows * G * H) ||
		!tr_ensure(tr, &tr->dh_next, (size_t) tr->B * H) ||
		!tr_ensure(tr, &tr->dc, (size_t) tr->B * H) ||
		!tr_ensure(tr, &tr->tmp, (size_t) tr->B * H) ||
		!tr_ensure(tr, &tr->grads, tr->m->nparams))
		return 0;
	rl_param_views(c, tr->grads, &tr->g_emb, tr->g_layers, &tr->g_why, &tr->g_by);
	return 1;
}

/* Frees a trainer. */
void
rl_trainer_free(rl_trainer *tr)
{
	int			i;

	if (tr == NULL)
		return;
	rl_prod_free(tr->env, &tr->prod);
	for (i = 0; i < tr->nallocs; i++)
		rl_free(tr->env, tr->allocs[i]);
	rl_free(tr->env, tr);
}

/* Zeroes the carried hidden state. */
void
rl_trainer_reset_state(rl_trainer *tr)
{
	size_t		BH = (size_t) tr->B * tr->m->cfg.hidden_size;
	int			l;

	for (l = 0; l < tr->m->cfg.num_layers; l++)
	{
		memset(tr->lb[l].h0, 0, BH * sizeof(float));
		if (tr->lb[l].c0)
			memset(tr->lb[l].c0, 0, BH * sizeof(float));
	}
}

/* Turns dropout on (training) or off (evaluation). */
void
rl_trainer_set_training(rl_trainer *tr, int training)
{
	tr->training = training;
}

/* The elements of the largest operand a bf16 product converts: rows * max(V, G*H, E, H). */
static size_t
prod_cap(const rl_config *c, size_t rows)
{
	size_t		w = (size_t) c->vocab_size;
	size_t		gh = (size_t) rl_cell_gates(c->cell) * c->hidden_size;

	if (gh > w)
		w = gh;
	if ((size_t) c->embedding_dim > w)
		w = (size_t) c->embedding_dim;
	return rows * w;
}

/*
 * Runs the trainer's products in precision p (RL_PREC_FP32 or RL_PREC_BF16,
 * as rl_precision_resolve gave it): bf16 keeps a bf16 copy of the weights,
 * refreshed before a pass whenever they have changed.
 */
rl_status
rl_trainer_set_precision(rl_trainer *tr, rl_precision p)
{
	if (p != RL_PREC_BF16)
	{
		rl_prod_free(tr->env, &tr->prod);
		return RL_OK;
	}
	if (tr->prod.bf16)
		return RL_OK;
	tr->prod_step = -1;
	return rl_prod_init(tr->env, &tr->prod, tr->m->params, tr->m->nparams,
						prod_cap(&tr->m->cfg, (size_t) tr->B * tr->S));
}

/* Says the weights were changed from outside (restored), so the bf16 copy is stale. */
void
rl_trainer_weights_changed(rl_trainer *tr)
{
	tr->prod_step = -1;
}

/* The gradient array, laid out like the parameters. */
float *
rl_trainer_grads(rl_trainer *tr)
{
	return ensure_backward(tr) ? tr->grads : NULL;
}

/* Copies src to dst, applying inverted dropout when training. */
static void
apply_dropout(rl_trainer *tr, const float *src, float *dst, float *mask, size_t n)
{
	size_t		i;

	if (!tr->training || tr->dropout <= 0.0 || mask == NULL)
	{
		if (dst != src)
			memcpy(dst, src, n * sizeof(float));
		return;
	}
	{
		float		keep = (float) (1.0 / (1.0 - tr->dropout));

		for (i = 0; i < n; i++)
		{
			mask[i] = rl_rng_uniform(&tr->rng) < tr->dropout ? 0.0f : keep;
			dst[i] = src[i] * mask[i];
		}
	}
}

/* Multiplies a gradient by the dropout mask in use. */
static void
mask_grad(rl_trainer *tr, float *d, const float *mask, size_t n)
{
	size_t		i;

	if (!tr->training || tr->dropout <= 0.0 || mask == NULL)
		return;
	for (i = 0; i < n; i++)
		d[i] *= mask[i];
}

/*
 * Forward pass, loss and (if want_grad) backward pass over T steps.  The
 * negative log-likelihood of each row is also written to row_nll, and
 * whether its target was the top-1 token to row_top1, unless NULL.
 */
static rl_status
run_batch(rl_trainer *tr, const int32_t *inputs, const int32_t *targets,
		  int32_t T, int want_grad, double *loss, size_t *correct, double *row_nll,
		  unsigned char *row_top1)
{
	rl_env	   *env = tr->env;
	const rl_model *m = tr->m;
	const rl_config *c = &m->cfg;
	int			B = tr->cur_B;
	int			N = T * B;
	int			E = c->embedding_dim,
				H = c->hidden_size,
				V = c->vocab_size,
				L = c->num_layers;
	size_t		BH = (size_t) B * H;
	double		total = 0.0;
	size_t		ncorrect = 0;
	float		scale = 1.0f / (float) N;
	float	   *dH,
			   *dX;
	int			l,
				r;

	if (T < 1 || T > tr->S)
		return rl_error(env, RL_ERR_INVALID, "chunk of %d steps exceeds the trainer's %d", T, tr->S);
	for (r = 0; r < N; r++)
		if (inputs[r] < 0 || inputs[r] >= V || targets[r] < 0 || targets[r] >= V)
			return rl_error(env, RL_ERR_INVALID, "token id out of range");

	/* bf16: the copy of the weights as they are now */
	if (tr->prod.bf16 && (want_grad || tr->prod_step != tr->step))
	{
		rl_prod_sync(&tr->prod);
		tr->prod_step = tr->step;
	}

	/* embedding lookup, then dropout into layer 0's input */
	for (r = 0; r < N; r++)
		memcpy(tr->lb[0].x + (size_t) r * E, m->emb + (size_t) inputs[r] * E, E * sizeof(float));
	apply_dropout(tr, tr->lb[0].x, tr->lb[0].x, tr->lb[0].mask, (size_t) N * E);

	for (l = 0; l < L; l++)
	{
		if (!rl_layer_forward(env, &tr->prod, m, l, &tr->lb[l], T, B))
			return env->status;
		if (l + 1 < L)
			apply_dropout(tr, tr->lb[l].h, tr->lb[l + 1].x, tr->lb[l + 1].mask, (size_t) N * H);
	}
	apply_dropout(tr, tr->lb[L - 1].h, tr->top, tr->top_mask, (size_t) N * H);

	/* logits, softmax, loss; dlogits = (p - onehot) / N in place */
	for (r = 0; r < N; r++)
		memcpy(tr->logits + (size_t) r * V, m->by, V * sizeof(float));
	rl_mm(&tr->prod, 0, 1, N, V, H, 1.0f, tr->top, H, m->why, H, 1.0f, tr->logits, V);
	for (r = 0; r < N; r++)
	{
		float	   *z = tr->logits + (size_t) r * V;
		float		mx;
		double		sum,
					zt,
					nll;
		int			j;

		mx = rl_k_max(z, V);
		if (row_top1)
			row_top1[r] = z[targets[r]] >= mx;
		if (z[targets[r]] >= mx)
			ncorrect++;
		zt = (double) z[targets[r]] - mx;
		sum = rl_k_expsum(z, V, mx, want_grad ? z : NULL);
		nll = log(sum) - zt;
		if (isnan(nll))
			nll = INFINITY;		/* overflowed logits: probability 0, as rl_score */
		total += nll;
		if (row_nll)
			row_nll[r] = nll;
		if (want_grad)
		{
			float		inv = (float) (1.0 / sum) * scale;

			for (j = 0; j < V; j++)
				z[j] *= inv;
			z[targets[r]] -= scale;
		}
	}
	*loss = total / N;
	if (correct)
		*correct = ncorrect;

	if (want_grad)
	{
		/* output layer */
		rl_mm(&tr->prod, 1, 0, V, H, N, 1.0f, tr->logits, V, tr->top, H, 1.0f, tr->g_why, H);
		for (r = 0; r < N; r++)
		{
			const float *z = tr->logits + (size_t) r * V;
			int			j;

			for (j = 0; j < V; j++)
				tr->g_by[j] += z[j];
		}
		dH = tr->dA;
		dX = tr->dB;
		rl_mm(&tr->prod, 0, 0, N, H, V, 1.0f, tr->logits, V, m->why, H, 0.0f, dH, H);
		mask_grad(tr, dH, tr->top_mask, (size_t) N * H);

		for (l = L - 1; l >= 0; l--)
		{
			float	   *swap;

			if (!rl_layer_backward(env, &tr->prod, m, l, &tr->lb[l], T, B, dH, tr->dG, dX,
								   &tr->g_layers[l], tr->dh_next, tr->dc, tr->tmp))
				return env->status;
			mask_grad(tr, dX, tr->lb[l].mask, (size_t) N * m->layers[l].in_dim);
			swap = dH;
			dH = dX;
			dX = swap;
		}
		/* dH now holds the gradient of the embeddings looked up */
		for (r = 0; r < N; r++)
		{
			float	   *ge = tr->g_emb + (size_t) inputs[r] * E;
			const float *d = dH + (size_t) r * E;
			int			j;

			for (j = 0; j < E; j++)
				ge[j] += d[j];
		}
	}

	/* carry the state into the next chunk */
	for (l = 0; l < L; l++)
	{
		memcpy(tr->lb[l].h0, tr->lb[l].h + (T - 1) * BH, BH * sizeof(float));
		if (tr->lb[l].c0)
			memcpy(tr->lb[l].c0, tr->lb[l].c + (T - 1) * BH, BH * sizeof(float));
	}
	return RL_OK;
}

/* Loss and gradients (accumulated into the zeroed grads) over T steps. */
rl_status
rl_trainer_loss_grad(rl_trainer *tr, const int32_t *inputs, const int32_t *targets,
					 int32_t T, double *loss)
{
	if (!ensure_backward(tr))
		return tr->env->status;
	memset(tr->grads, 0, tr->m->nparams * sizeof(float));
	return run_batch(tr, inputs, targets, T, 1, loss, NULL, NULL, NULL);
}

/* Loss only, over T steps. */
rl_status
rl_trainer_loss(rl_trainer *tr, const int32_t *inputs, const int32_t *targets,
				int32_t T, double *loss)
{
	return run_batch(tr, inputs, targets, T, 0, loss, NULL, NULL, NULL);
}

/* Forward over T steps of the first B streams, without dropout; NLL per row. */
rl_status
rl_trainer_forward_rows(rl_trainer *tr, const int32_t *inputs, const int32_t *targets,
						int32_t T, int32_t B, double *row_nll, unsigned char *row_top1)
{
	int32_t		saved_B = tr->cur_B;
	int			saved_training = tr->training;
	double		loss;
	rl_status	st;

	if (B < 1 || B > tr->B)
		return rl_error(tr->env, RL_ERR_INVALID, "%d streams exceed the trainer's %d", B, tr->B);
	tr->cur_B = B;
	tr->training = 0;
	st = run_batch(tr, inputs, targets, T, 0, &loss, NULL, row_nll, row_top1);
	tr->cur_B = saved_B;
	tr->training = saved_training;
	return st;
}

/* The factor that brings a gradient of this norm to at most clip_norm (0 = off). */
static float
clip_scale(double norm, double clip_norm)
{
	return (clip_norm > 0 && norm > clip_norm) ? (float) (clip_norm / norm) : 1.0f;
}

/* Scales grads to a global L2 norm of at most clip_norm (0 = off); returns the norm. */
double
rl_clip_grads(float *grads, size_t n, double clip_norm)
{
	double		norm = sqrt(rl_k_sumsq(grads, n));
	float		s = clip_scale(norm, clip_norm);
	size_t		i;

	if (s != 1.0f)
		for (i = 0; i < n; i++)
			grads[i] *= s;
	return norm;
}

/*
 * One Adam update (beta1 0.9, beta2 0.999, eps 1e-8) at step t >= 1 with the
 * gradients multiplied by gscale (the clipping factor) as they are read.
 */
void
rl_adam_step_scaled(float *params, const float *grads, float *m, float *v,
					size_t n, double lr, int64_t t, float gscale)
{
	double		c1 = 1.0 - pow(0.9, (double) t);
	double		c2 = 1.0 - pow(0.999, (double) t);

	rl_k_adam(params, grads, m, v, n, gscale, (float) (lr / c1), (float) (1.0 / sqrt(c2)));
}

/* One Adam update (beta1 0.9, beta2 0.999, eps 1e-8) at step t >= 1. */
void
rl_adam_step(float *params, const float *grads, float *m, float *v,
			 size_t n, double lr, int64_t t)
{
	rl_adam_step_scaled(params, grads, m, v, n, lr, t, 1.0f);
}

/* Fills the trainer's input/target arrays for the chunk starting at pos. */
static void
fill_chunk(rl_trainer *tr, const int32_t *ids, size_t per_stream, size_t pos, int T)
{
	int			B = tr->cur_B;
	int			t,
				b;

	for (t = 0; t < T; t++)
		for (b = 0; b < B; b++)
		{
			size_t		k = (size_t) b * per_stream + pos + t;

			tr->inputs[t * B + b] = ids[k];
			tr->targets[t * B + b] = ids[k + 1];
		}
}

/* Mean loss of a stream without dropout; *count = predictions made. */
rl_status
rl_trainer_eval(rl_trainer *tr, const int32_t *ids, size_t n, double *loss, size_t *count)
{
	int32_t		saved_B = tr->cur_B;
	int			saved_training = tr->training;
	size_t		per_stream,
				pos;
	double		total = 0.0;
	rl_status	st = RL_OK;

	*loss = NAN;
	*count = 0;
	if (n < 2)
		return RL_OK;
	tr->cur_B = (int32_t) ((n - 1) < (size_t) tr->B ? (n - 1) : (size_t) tr->B);
	tr->training = 0;
	per_stream = (n - 1) / tr->cur_B;
	rl_trainer_reset_state(tr);
	for (pos = 0; pos < per_stream; pos += tr->S)
	{
		int			T = (int) ((per_stream - pos) < (size_t) tr->S ? per_stream - pos : (size_t) tr->S);
		double		l;

		fill_chunk(tr, ids, per_stream, pos, T);
		st = run_batch(tr, tr->inputs, tr->targets, T, 0, &l, NULL, NULL, NULL);
		if (st != RL_OK)
			break;
		total += l * T * tr->cur_B;
	}
	*count = per_stream * tr->cur_B;
	*loss = total / (double) *count;
	tr->cur_B = saved_B;
	tr->training = saved_training;
	return st;
}

/* Mean loss (nats/token) of a stream, batched as in training. */
rl_status
rl_eval_stream(rl_env *env, rl_model *m, const int32_t *ids, size_t n,
			   int32_t batch, int32_t seq_len, double *loss, size_t *count)
{
	rl_trainer *tr;
	rl_status	st = rl_trainer_create(env, m, batch, seq_len, 0.0, 0, &tr);

	if (st != RL_OK)
		return st;
	st = rl_trainer_eval(tr, ids, n, loss, count);
	rl_trainer_free(tr);
	return st;
}

/*
 * Bytes a training run of this shape holds at its peak: the weights, their
 * gradients and two Adam moments, the activations and gradients of one
 * batch (rl_trainer_create and ensure_backward), and in bf16 the copy of
 * the weights and the scratch of rl_trainer_set_precision.
 */
size_t
rl_train_memory(const rl_config *cfg, int32_t batch, int32_t seq_len, double dropout,
				rl_precision precision)
{
	rl_env		env;
	size_t		P,
				rows = (size_t) batch * seq_len,
				H = (size_t) cfg->hidden_size,
				G = (size_t) rl_cell_gates(cfg->cell),
				V = (size_t) cfg->vocab_size,
				wide = (size_t) (cfg->embedding_dim > cfg->hidden_size ?
								 cfg->embedding_dim : cfg->hidden_size),
				per_row = 0,
				floats;
	int			l;

	rl_env_init_malloc(&env);
	if (rl_config_nparams(&env, cfg, &P) != RL_OK)
		return SIZE_MAX;
	for (l = 0; l < cfg->num_layers; l++)
	{
		size_t		in = l == 0 ? (size_t) cfg->embedding_dim : H;

		per_row += in * (dropout > 0 ? 2 : 1) + G * H + 3 * H;
	}
	per_row += H * (dropout > 0 ? 2 : 1) + V + 2 * wide + G * H + 2;
	floats = 4 * P + rows * per_row + 3 * (size_t) batch * H * (cfg->num_layers + 1);
	if (floats > SIZE_MAX / 8)
		return SIZE_MAX;
	return floats * 4 + (precision == RL_PREC_BF16 ? rl_prod_bytes(P, prod_cap(cfg, rows)) : 0);
}

/* Allocates the Adam moments, zeroed, on first use. */
rl_status
rl_trainer_enable_adam(rl_trainer *tr)
{
	return (tr_ensure(tr, &tr->adam_m, tr->m->nparams) &&
			tr_ensure(tr, &tr->adam_v, tr->m->nparams)) ? RL_OK : tr->env->status;
}

/*
 * One training step on the chunk of T steps at pos of each of the cur_B
 * streams of per_stream tokens in ids: forward, backward, clipping and an
 * Adam update at learning rate lr.  *loss is the chunk's mean loss; a loss
 * or gradient that is not finite is RL_ERR_NUMERIC and changes nothing.
 */
rl_status
rl_trainer_step(rl_trainer *tr, const int32_t *ids, size_t per_stream, size_t pos,
				int32_t T, double lr, double clip_norm, double *loss)
{
	double		norm;
	rl_status	st;

	if (rl_trainer_enable_adam(tr) != RL_OK)
		return tr->env->status;
	tr->training = 1;
	fill_chunk(tr, ids, per_stream, pos, T);
	st = rl_trainer_loss_grad(tr, tr->inputs, tr->targets, T, loss);
	if (st != RL_OK)
		return st;
	norm = sqrt(rl_k_sumsq(tr->grads, tr->m->nparams));
	if (!isfinite(*loss) || !isfinite(norm))
		return rl_error(tr->env, RL_ERR_NUMERIC, "the loss is not finite");
	rl_adam_step_scaled(tr->m->params, tr->grads, tr->adam_m, tr->adam_v, tr->m->nparams,
						lr, ++tr->step, clip_scale(norm, clip_norm));
	return RL_OK;
}

/* Pointers to what a checkpoint must save of a trainer to continue it exactly. */
void
rl_trainer_view(rl_trainer *tr, rl_trainer_state *v)
{
	int			l;

	memset(v, 0, sizeof(*v));
	v->adam_m = tr->adam_m;
	v->adam_v = tr->adam_v;
	v->step = &tr->step;
	v->rng = &tr->rng;
	v->state_floats = (size_t) tr->B * tr->m->cfg.hidden_size;
	for (l = 0; l < tr->m->cfg.num_layers; l++)
	{
		v->h0[l] = tr->lb[l].h0;
		v->c0[l] = tr->lb[l].c0;
	}
}
