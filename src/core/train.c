/*
 * train.c
 *		Training: the token stream cut into batch_size parallel streams,
 *		truncated backpropagation through time over seq_len steps with the
 *		hidden state carried from one batch to the next, cross-entropy loss,
 *		dropout on the non-recurrent connections (embedding to layer 0,
 *		between layers, top layer to softmax), clipping by global L2 norm and
 *		Adam.
 *
 * The forward pass is forward.c's (rl_fwd), the one batched scoring runs
 * too; the trainer adds the backward pass, the gradients and Adam.  Every
 * buffer is allocated once, and rl_train_memory sums the same sizes.  With
 * a fixed seed and thread count the result is deterministic.
 */
#include "forward.h"

#include <math.h>
#include <string.h>
#include <time.h>

struct rl_trainer
{
	rl_env	   *env;
	rl_model   *m;
	rl_fwd		f;				/* the forward pass and its activations */
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
			   *adam_v;			/* for params[frozen ..] */
	size_t		frozen;			/* leading parameters not trained: emb when frozen */
	int64_t		step;
	int64_t		weights_stamp;	/* changes whenever the weights do */
	void	   *allocs[16];		/* the trainer's own buffers, for freeing */
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
	rl_trainer *tr;
	rl_status	st;

	*out = NULL;
	tr = rl_alloc0(env, sizeof(rl_trainer));
	if (tr == NULL)
		return env->status;
	tr->env = env;
	tr->m = m;
	st = rl_fwd_init(&tr->f, env, m, batch, seq_len, dropout, seed);
	if (st != RL_OK)
	{
		rl_free(env, tr);
		return st;
	}
	tr->f.training = 1;
	*out = tr;
	return RL_OK;
}

/*
 * The floats of what only the backward pass needs, the gradients besides:
 * dA, dB, dG, then dh_next, dc and tmp (ensure_backward allocates these).
 */
static void
backward_sizes(const rl_config *c, size_t rows, size_t B, size_t sizes[6])
{
	size_t		H = (size_t) c->hidden_size;
	size_t		wide = (size_t) (c->embedding_dim > c->hidden_size ?
								 c->embedding_dim : c->hidden_size);

	sizes[0] = sizes[1] = rows * wide;
	sizes[2] = rows * (size_t) rl_cell_gates(c->cell) * H;
	sizes[3] = sizes[4] = sizes[5] = B * H;
}

/*
 * Allocates what only the backward pass needs (gradients and their scratch)
 * on first use, so a trainer used for scoring never holds them.
 */
static int
ensure_backward(rl_trainer *tr)
{
	size_t		sz[6];

	if (tr->grads)
		return 1;
	backward_sizes(&tr->m->cfg, (size_t) tr->f.B * tr->f.S, (size_t) tr->f.B, sz);
	/* each buffer once: a call after a failed one allocates only what is missing */
	if (!tr_ensure(tr, &tr->dA, sz[0]) ||
		!tr_ensure(tr, &tr->dB, sz[1]) ||
		!tr_ensure(tr, &tr->dG, sz[2]) ||
		!tr_ensure(tr, &tr->dh_next, sz[3]) ||
		!tr_ensure(tr, &tr->dc, sz[4]) ||
		!tr_ensure(tr, &tr->tmp, sz[5]) ||
		!tr_ensure(tr, &tr->grads, tr->m->nparams))
		return 0;
	rl_param_views(&tr->m->cfg, tr->grads, &tr->g_emb, tr->g_layers, &tr->g_why, &tr->g_by);
	return 1;
}

/* Frees a trainer. */
void
rl_trainer_free(rl_trainer *tr)
{
	int			i;

	if (tr == NULL)
		return;
	rl_fwd_free(&tr->f);
	for (i = 0; i < tr->nallocs; i++)
		rl_free(tr->env, tr->allocs[i]);
	rl_free(tr->env, tr);
}

/* Zeroes the carried hidden state. */
void
rl_trainer_reset_state(rl_trainer *tr)
{
	rl_fwd_reset_state(&tr->f);
}

/* Turns dropout on (training) or off (evaluation). */
void
rl_trainer_set_training(rl_trainer *tr, int training)
{
	tr->f.training = training;
}

/*
 * Runs the trainer's products in precision p (RL_PREC_FP32 or RL_PREC_BF16,
 * as rl_precision_resolve gave it): bf16 keeps a bf16 copy of the weights,
 * refreshed before a pass whenever they have changed.
 */
rl_status
rl_trainer_set_precision(rl_trainer *tr, rl_precision p)
{
	return rl_fwd_set_precision(&tr->f, p);
}

/* Says the weights were changed from outside (restored), so the bf16 copy is stale. */
void
rl_trainer_weights_changed(rl_trainer *tr)
{
	tr->weights_stamp++;
}

/* The gradient array, laid out like the parameters. */
float *
rl_trainer_grads(rl_trainer *tr)
{
	return ensure_backward(tr) ? tr->grads : NULL;
}

/* Multiplies a gradient by the dropout mask in use. */
static void
mask_grad(rl_trainer *tr, float *d, const float *mask, size_t n)
{
	size_t		i;

	if (!tr->f.training || tr->f.dropout <= 0.0 || mask == NULL)
		return;
	for (i = 0; i < n; i++)
		d[i] *= mask[i];
}

/* The backward pass over T steps, from the gradient the forward pass left in the logits. */
static rl_status
backward(rl_trainer *tr, const int32_t *inputs, int32_t T)
{
	rl_fwd	   *f = &tr->f;
	const rl_model *m = tr->m;
	int			N = T * f->cur_B,
				E = m->cfg.embedding_dim,
				H = m->cfg.hidden_size,
				V = m->cfg.vocab_size,
				l,
				r,
				j;
	float	   *dH = tr->dA,
			   *dX = tr->dB;

	/* output layer: over the candidates of a sampled step, else over the vocabulary */
	if (f->sampled_step)
		rl_sampled_backward(f, N, tr->g_why, tr->g_by, dH);
	else
	{
		rl_mm(&f->prod, 1, 0, V, H, N, 1.0f, f->logits, V, f->top, H, 1.0f, tr->g_why, H);
		for (r = 0; r < N; r++)
		{
			const float *z = f->logits + (size_t) r * V;

			for (j = 0; j < V; j++)
				tr->g_by[j] += z[j];
		}
		rl_mm(&f->prod, 0, 0, N, H, V, 1.0f, f->logits, V, m->why, H, 0.0f, dH, H);
	}
	mask_grad(tr, dH, f->top_mask, (size_t) N * H);

	for (l = m->cfg.num_layers - 1; l >= 0; l--)
	{
		float	   *swap;

		if (!rl_layer_backward(tr->env, &f->prod, m, l, &f->lb[l], T, f->cur_B, dH, tr->dG, dX,
							   &tr->g_layers[l], tr->dh_next, tr->dc, tr->tmp))
			return tr->env->status;
		mask_grad(tr, dX, f->lb[l].mask, (size_t) N * m->layers[l].in_dim);
		swap = dH;
		dH = dX;
		dX = swap;
	}
	/* dH now holds the gradient of the embeddings looked up (unused when they are frozen) */
	for (r = 0; r < N && tr->frozen == 0; r++)
	{
		float	   *ge = tr->g_emb + (size_t) inputs[r] * E;
		const float *d = dH + (size_t) r * E;

		for (j = 0; j < E; j++)
			ge[j] += d[j];
	}
	return RL_OK;
}

/*
 * Forward pass, loss and (if want_grad) backward pass over T steps, then
 * the state carried on.  The negative log-likelihood of each row is also
 * written to row_nll, and whether its target was the top-1 token to
 * row_top1, unless NULL.
 */
static rl_status
run_batch(rl_trainer *tr, const int32_t *inputs, const int32_t *targets,
		  int32_t T, int want_grad, double *loss, double *row_nll,
		  unsigned char *row_top1)
{
	float		scale = want_grad ? 1.0f / (float) (T * tr->f.cur_B) : 0.0f;
	rl_status	st = rl_fwd_run(&tr->f, inputs, targets, T, tr->weights_stamp, scale,
								loss, row_nll, row_top1);

	if (st == RL_OK && want_grad)
		st = backward(tr, inputs, T);
	if (st == RL_OK)
		rl_fwd_carry(&tr->f, T);
	return st;
}

/* Loss and gradients (accumulated into the zeroed grads) over T steps. */
rl_status
rl_trainer_loss_grad(rl_trainer *tr, const int32_t *inputs, const int32_t *targets,
					 int32_t T, double *loss)
{
	if (!ensure_backward(tr))
		return tr->env->status;
	memset(tr->grads, 0, tr->m->nparams * sizeof(float));
	return run_batch(tr, inputs, targets, T, 1, loss, NULL, NULL);
}

/* Loss only, over T steps. */
rl_status
rl_trainer_loss(rl_trainer *tr, const int32_t *inputs, const int32_t *targets,
				int32_t T, double *loss)
{
	return run_batch(tr, inputs, targets, T, 0, loss, NULL, NULL);
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
	int			B = tr->f.cur_B;
	int			t,
				b;

	for (t = 0; t < T; t++)
		for (b = 0; b < B; b++)
		{
			size_t		k = (size_t) b * per_stream + pos + t;

			tr->f.inputs[t * B + b] = ids[k];
			tr->f.targets[t * B + b] = ids[k + 1];
		}
}

/* Mean loss of a stream without dropout; *count = predictions made. */
rl_status
rl_trainer_eval(rl_trainer *tr, const int32_t *ids, size_t n, double *loss, size_t *count)
{
	int32_t		saved_B = tr->f.cur_B;
	int			saved_training = tr->f.training;
	size_t		per_stream,
				pos;
	double		total = 0.0;
	rl_status	st = RL_OK;

	*loss = NAN;
	*count = 0;
	if (n < 2)
		return RL_OK;
	tr->f.cur_B = (int32_t) ((n - 1) < (size_t) tr->f.B ? (n - 1) : (size_t) tr->f.B);
	tr->f.training = 0;
	per_stream = (n - 1) / tr->f.cur_B;
	rl_trainer_reset_state(tr);
	for (pos = 0; pos < per_stream; pos += tr->f.S)
	{
		int			T = (int) ((per_stream - pos) < (size_t) tr->f.S ? per_stream - pos : (size_t) tr->f.S);
		double		l;

		fill_chunk(tr, ids, per_stream, pos, T);
		st = run_batch(tr, tr->f.inputs, tr->f.targets, T, 0, &l, NULL, NULL);
		if (st != RL_OK)
			break;
		total += l * T * tr->f.cur_B;
	}
	*count = per_stream * tr->f.cur_B;
	*loss = total / (double) *count;
	tr->f.cur_B = saved_B;
	tr->f.training = saved_training;
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
				rl_precision precision, int freeze_embeddings, int32_t sampled_k)
{
	rl_env		env;
	size_t		P,
				sz[6],
				floats;
	int			i;

	rl_env_init_malloc(&env);
	if (rl_config_nparams(&env, cfg, &P) != RL_OK)
		return SIZE_MAX;
	/* the weights, their gradients, two Adam moments (not for frozen embeddings); the
	 * forward pass; the backward's scratch */
	floats = 2 * P + 2 * (P - (freeze_embeddings ? (size_t) cfg->vocab_size * cfg->embedding_dim : 0)) +
		rl_fwd_floats(cfg, batch, seq_len, dropout) +
		rl_sampled_floats(cfg, (size_t) batch * seq_len, sampled_k);
	backward_sizes(cfg, (size_t) batch * seq_len, (size_t) batch, sz);
	for (i = 0; i < 6; i++)
		floats += sz[i];
	if (floats > SIZE_MAX / 8)
		return SIZE_MAX;
	return floats * 4 + (precision == RL_PREC_BF16 ? rl_fwd_prod_bytes(cfg, P, batch, seq_len) : 0);
}

/* Trains with the sampled output layer of k draws a step (fp32 products only). */
rl_status
rl_trainer_set_sampled(rl_trainer *tr, int32_t k)
{
	if (k > 0 && tr->f.prod.bf16)
		return rl_error(tr->env, RL_ERR_UNSUPPORTED, "sampled_softmax runs in fp32 only");
	return rl_fwd_set_sampled(&tr->f, k);
}

/* Keeps the embeddings fixed from now on: they get no update and no Adam state. */
rl_status
rl_trainer_freeze_embeddings(rl_trainer *tr)
{
	if (tr->adam_m != NULL)
		return rl_error(tr->env, RL_ERR_INVALID, "the embeddings must be frozen before training starts");
	tr->frozen = (size_t) tr->m->cfg.vocab_size * tr->m->cfg.embedding_dim;
	return RL_OK;
}

/* Allocates the Adam moments of the trained parameters, zeroed, on first use. */
rl_status
rl_trainer_enable_adam(rl_trainer *tr)
{
	return (tr_ensure(tr, &tr->adam_m, tr->m->nparams - tr->frozen) &&
			tr_ensure(tr, &tr->adam_v, tr->m->nparams - tr->frozen)) ? RL_OK : tr->env->status;
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
	tr->f.training = 1;
	fill_chunk(tr, ids, per_stream, pos, T);
	st = rl_trainer_loss_grad(tr, tr->f.inputs, tr->f.targets, T, loss);
	if (st != RL_OK)
		return st;
	norm = sqrt(rl_k_sumsq(tr->grads + tr->frozen, tr->m->nparams - tr->frozen));
	if (!isfinite(*loss) || !isfinite(norm))
		return rl_error(tr->env, RL_ERR_NUMERIC, "the loss is not finite");
	rl_adam_step_scaled(tr->m->params + tr->frozen, tr->grads + tr->frozen, tr->adam_m, tr->adam_v,
						tr->m->nparams - tr->frozen, lr, ++tr->step, clip_scale(norm, clip_norm));
	tr->weights_stamp++;
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
	v->adam_floats = tr->m->nparams - tr->frozen;
	v->step = &tr->step;
	v->rng = &tr->f.rng;
	v->state_floats = (size_t) tr->f.B * tr->m->cfg.hidden_size;
	for (l = 0; l < tr->m->cfg.num_layers; l++)
	{
		v->h0[l] = tr->f.lb[l].h0;
		v->c0[l] = tr->f.lb[l].c0;
	}
}
