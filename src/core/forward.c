/*
 * forward.c
 *		The batched forward pass, and the log-softmax every pass shares.
 *
 * One rl_fwd holds the activations of B streams over up to S steps, stored
 * time-major (row t*B + b), allocated once.  rl_fwd_run looks up the
 * embeddings, applies dropout when training, runs each layer
 * (rl_layer_forward: the cells' one forward step), then the output layer
 * and the softmax; with a gradient scale it also leaves in the logits the
 * gradient of the mean loss with respect to them, for the trainer's
 * backward pass.  Training (train.c) and batched scoring (infer.c) both run
 * this; per-row scoring and generation (infer.c) run the same cell steps
 * and the same log-softmax on one stream.
 *
 * Sizes.  fwd_buffers walks every buffer once, for allocating them and for
 * rl_fwd_floats (the memory estimate), so the two cannot disagree.
 */
#include "forward.h"

#include <math.h>
#include <string.h>

/*
 * log softmax(z)[target]; *is_top1 tells whether target is the argmax.
 * Logits that overflowed or went NaN (a model with extreme weights) give
 * probability 0, never NaN.  With grad_scale > 0, z is replaced by
 * (softmax(z) - onehot(target)) * grad_scale, the gradient of the loss
 * times grad_scale.
 */
double
rl_log_softmax_row(float *z, int32_t n, int32_t target, int *is_top1, float grad_scale)
{
	float		mx = rl_k_max(z, n);
	double		zt = (double) z[target] - mx,
				sum,
				lp;

	if (is_top1)
		*is_top1 = (z[target] >= mx);
	if (!isfinite(mx))
	{
		/* logits overflowed (extreme weights): only infinite ones have mass */
		return (mx > 0 && z[target] == mx) ? 0.0 : -INFINITY;
	}
	sum = rl_k_expsum(z, n, mx, grad_scale > 0 ? z : NULL);
	lp = zt - log(sum);
	if (grad_scale > 0)
	{
		float		inv = (float) (1.0 / sum) * grad_scale;
		int32_t		j;

		for (j = 0; j < n; j++)
			z[j] *= inv;
		z[target] -= grad_scale;
	}
	return isnan(lp) ? -INFINITY : lp;
}

/* Counts n floats into *total and, unless sizing, allocates them into *slot. */
static int
need(rl_fwd *f, float **slot, size_t n, size_t *total)
{
	*total += n;
	if (f == NULL)
		return 1;
	*slot = rl_alloc_array(f->env, n ? n : 1, sizeof(float));
	if (*slot == NULL)
		return 0;
	f->allocs[f->nallocs++] = *slot;
	return 1;
}

/*
 * Every buffer of a forward pass of B streams over S steps: allocated into
 * f, or only counted when f is NULL.  The total of floats goes to *total.
 * 0 when an allocation failed.
 */
static int
fwd_buffers(rl_fwd *f, const rl_config *c, int32_t B, int32_t S, double dropout,
			size_t *total)
{
	size_t		rows = (size_t) B * S,
				H = (size_t) c->hidden_size,
				G = (size_t) rl_cell_gates(c->cell),
				V = (size_t) c->vocab_size;
	rl_layer_buf scratch;
	float	   *ids;
	int			l;

	*total = 0;
	for (l = 0; l < c->num_layers; l++)
	{
		rl_layer_buf *lb = f ? &f->lb[l] : &scratch;
		size_t		in = l == 0 ? (size_t) c->embedding_dim : H;

		if (!need(f, &lb->x, rows * in, total) ||
			(dropout > 0 && !need(f, &lb->mask, rows * in, total)) ||
			!need(f, &lb->gates, rows * G * H, total) ||
			!need(f, &lb->h, rows * H, total) ||
			!need(f, &lb->h0, (size_t) B * H, total))
			return 0;
		if (c->cell == RL_CELL_LSTM &&
			(!need(f, &lb->c, rows * H, total) || !need(f, &lb->c0, (size_t) B * H, total)))
			return 0;
		if (c->cell == RL_CELL_GRU && !need(f, &lb->rh, rows * H, total))
			return 0;
	}
	if (!need(f, f ? &f->top : &ids, rows * H, total) ||
		(dropout > 0 && !need(f, f ? &f->top_mask : &ids, rows * H, total)) ||
		!need(f, f ? &f->logits : &ids, rows * V, total) ||
		!need(f, f ? (float **) &f->inputs : &ids, rows, total) ||
		!need(f, f ? (float **) &f->targets : &ids, rows, total))
		return 0;
	return 1;
}

/* Floats a forward pass of this shape holds (what rl_fwd_init allocates). */
size_t
rl_fwd_floats(const rl_config *c, int32_t B, int32_t S, double dropout)
{
	size_t		total;

	(void) fwd_buffers(NULL, c, B, S, dropout, &total);
	return total;
}

/* The elements of the largest operand a bf16 product converts: rows * max(V, G*H, E). */
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

/* Bytes rl_fwd_set_precision allocates for bf16. */
size_t
rl_fwd_prod_bytes(const rl_config *c, size_t nparams, int32_t B, int32_t S)
{
	return rl_prod_bytes(nparams, prod_cap(c, (size_t) B * S));
}

/* Sets f up for B streams of up to S steps of model m (fp32, dropout off). */
rl_status
rl_fwd_init(rl_fwd *f, rl_env *env, rl_model *m, int32_t B, int32_t S, double dropout,
			uint64_t seed)
{
	const rl_config *c = &m->cfg;
	size_t		rows,
				total,
				widest = (size_t) (c->vocab_size > rl_cell_gates(c->cell) * c->hidden_size ?
								   c->vocab_size : rl_cell_gates(c->cell) * c->hidden_size);

	memset(f, 0, sizeof(*f));
	if (B < 1 || S < 1)
		return rl_error(env, RL_ERR_INVALID, "batch and sequence length must be positive");
	if (rl_mul_overflow((size_t) B, (size_t) S, &rows) || rows > (size_t) INT32_MAX / widest)
		return rl_error(env, RL_ERR_INVALID, "batch_size * seq_len is too large for this model");
	f->env = env;
	f->m = m;
	f->B = f->cur_B = B;
	f->S = S;
	f->dropout = dropout;
	f->prod_stamp = -1;
	rl_rng_seed(&f->rng, seed ^ 0x9E3779B97F4A7C15ULL);
	if (!fwd_buffers(f, c, B, S, dropout, &total))
	{
		rl_status	st = env->status;

		rl_fwd_free(f);
		return st;
	}
	return RL_OK;
}

/* Frees what rl_fwd_init and rl_fwd_set_precision allocated. */
void
rl_fwd_free(rl_fwd *f)
{
	int			i;

	if (f->env == NULL)
		return;
	rl_prod_free(f->env, &f->prod);
	rl_fwd_free_sampled(f);
	for (i = 0; i < f->nallocs; i++)
		rl_free(f->env, f->allocs[i]);
	f->nallocs = 0;
}

/*
 * Runs the products in precision p (RL_PREC_FP32 or RL_PREC_BF16, as
 * rl_precision_resolve gave it): bf16 keeps a bf16 copy of the weights,
 * refreshed by rl_fwd_run whenever the weights' stamp changes.
 */
rl_status
rl_fwd_set_precision(rl_fwd *f, rl_precision p)
{
	if (p != RL_PREC_BF16)
	{
		rl_prod_free(f->env, &f->prod);
		return RL_OK;
	}
	if (f->prod.bf16)
		return RL_OK;
	f->prod_stamp = -1;
	return rl_prod_init(f->env, &f->prod, f->m->params, f->m->nparams,
						prod_cap(&f->m->cfg, (size_t) f->B * f->S));
}

/* Zeroes the carried hidden state. */
void
rl_fwd_reset_state(rl_fwd *f)
{
	size_t		BH = (size_t) f->B * f->m->cfg.hidden_size;
	int			l;

	for (l = 0; l < f->m->cfg.num_layers; l++)
	{
		memset(f->lb[l].h0, 0, BH * sizeof(float));
		if (f->lb[l].c0)
			memset(f->lb[l].c0, 0, BH * sizeof(float));
	}
}

/* Copies src to dst, applying inverted dropout when training. */
static void
apply_dropout(rl_fwd *f, const float *src, float *dst, float *mask, size_t n)
{
	float		keep;
	size_t		i;

	if (!f->training || f->dropout <= 0.0 || mask == NULL)
	{
		if (dst != src)
			memcpy(dst, src, n * sizeof(float));
		return;
	}
	keep = (float) (1.0 / (1.0 - f->dropout));
	for (i = 0; i < n; i++)
	{
		mask[i] = rl_rng_uniform(&f->rng) < f->dropout ? 0.0f : keep;
		dst[i] = src[i] * mask[i];
	}
}

/*
 * The forward pass over T steps of the cur_B streams, from the carried
 * state: the mean loss in *loss, and per row the negative log-likelihood
 * and whether the target was the top-1 token (unless NULL).  With
 * grad_scale > 0 the logits are left holding the loss's gradient times
 * grad_scale.  weights_stamp says which weights these are: a bf16 copy
 * made at another stamp is refreshed first.  The state is not carried on
 * (rl_fwd_carry).
 */
rl_status
rl_fwd_run(rl_fwd *f, const int32_t *inputs, const int32_t *targets, int32_t T,
		   int64_t weights_stamp, float grad_scale, double *loss, double *row_nll,
		   unsigned char *row_top1)
{
	rl_env	   *env = f->env;
	const rl_model *m = f->m;
	const rl_config *c = &m->cfg;
	int			N = T * f->cur_B,
				E = c->embedding_dim,
				H = c->hidden_size,
				V = c->vocab_size,
				L = c->num_layers,
				l,
				r;

	if (T < 1 || T > f->S)
		return rl_error(env, RL_ERR_INVALID, "chunk of %d steps exceeds the trainer's %d", T, f->S);
	for (r = 0; r < N; r++)
		if (inputs[r] < 0 || inputs[r] >= V || targets[r] < 0 || targets[r] >= V)
			return rl_error(env, RL_ERR_INVALID, "token id out of range");
	if (f->prod.bf16 && f->prod_stamp != weights_stamp)
	{
		rl_prod_sync(&f->prod);
		f->prod_stamp = weights_stamp;
	}

	/* embedding lookup, then dropout into layer 0's input */
	for (r = 0; r < N; r++)
		memcpy(f->lb[0].x + (size_t) r * E, m->emb + (size_t) inputs[r] * E, E * sizeof(float));
	apply_dropout(f, f->lb[0].x, f->lb[0].x, f->lb[0].mask, (size_t) N * E);
	for (l = 0; l < L; l++)
	{
		if (!rl_layer_forward(env, &f->prod, m, l, &f->lb[l], T, f->cur_B))
			return env->status;
		if (l + 1 < L)
			apply_dropout(f, f->lb[l].h, f->lb[l + 1].x, f->lb[l + 1].mask, (size_t) N * H);
	}
	apply_dropout(f, f->lb[L - 1].h, f->top, f->top_mask, (size_t) N * H);

	/* a training step with the sampled output layer: the softmax over candidates */
	f->sampled_step = f->sampled_k > 0 && grad_scale > 0;
	if (f->sampled_step)
	{
		*loss = rl_sampled_forward(f, targets, N, grad_scale, row_nll, row_top1) / N;
		return RL_OK;
	}

	/* logits and the log-softmax of each row */
	for (r = 0; r < N; r++)
		memcpy(f->logits + (size_t) r * V, m->by, V * sizeof(float));
	rl_mm(&f->prod, 0, 1, N, V, H, 1.0f, f->top, H, m->why, H, 1.0f, f->logits, V);
	*loss = rl_softmax_rows(f->logits, N, V, targets, NULL, grad_scale, row_nll, row_top1) / N;
	return RL_OK;
}

/*
 * The log-softmax of each of N rows of ncols logits, the target of row r
 * being column targets[r] (or map[targets[r]] with a map): the summed
 * negative log-likelihood, per row in row_nll and whether the target was
 * the top-1 column in row_top1 (unless NULL); with grad_scale > 0 the
 * logits are left holding the gradient times grad_scale.
 */
double
rl_softmax_rows(float *logits, int N, int32_t ncols, const int32_t *targets, const int32_t *map,
				float grad_scale, double *row_nll, unsigned char *row_top1)
{
	double		total = 0.0;
	int			r;

	for (r = 0; r < N; r++)
	{
		int			top1;
		int32_t		t = map ? map[targets[r]] : targets[r];
		double		nll = -rl_log_softmax_row(logits + (size_t) r * ncols, ncols, t, &top1, grad_scale);

		total += nll;
		if (row_nll)
			row_nll[r] = nll;
		if (row_top1)
			row_top1[r] = (unsigned char) top1;
	}
	return total;
}

/* Carries the state at step T-1 into the next chunk. */
void
rl_fwd_carry(rl_fwd *f, int32_t T)
{
	size_t		BH = (size_t) f->cur_B * f->m->cfg.hidden_size;
	int			l;

	for (l = 0; l < f->m->cfg.num_layers; l++)
	{
		memcpy(f->lb[l].h0, f->lb[l].h + (T - 1) * BH, BH * sizeof(float));
		if (f->lb[l].c0)
			memcpy(f->lb[l].c0, f->lb[l].c + (T - 1) * BH, BH * sizeof(float));
	}
}
