/*
 * sampled.c
 *		A cheaper output layer for training models with big vocabularies:
 *		sampled softmax.  Scoring, generation and validation always use the
 *		exact softmax over the whole vocabulary (forward.c); only the
 *		training step's loss and gradient use this.
 *
 * Each training step's softmax runs over a set of candidate tokens shared
 * by all rows of the chunk instead of over all V: <eod>, every target of
 * the chunk, and K tokens drawn (with replacement) from the log-uniform
 * (Zipfian) distribution P(id) = log((id + 2) / (id + 1)) / log(V + 1),
 * which suits vocabularies numbered by frequency, as rnnlm's word
 * vocabularies are.  A drawn candidate that is not also a target has its
 * logit lowered by log(K P(id)), its expected number of draws, so that the
 * draws stand for the rest of the vocabulary (the logQ correction of Jean
 * et al. 2015 and TensorFlow's sampled_softmax_loss); the targets are in
 * every step's set and keep their logits (correcting them too by their
 * counts in the chunk was measured worse: 1.6 nats of validation loss
 * against 0.36 on test_sampled.c's corpus).  When K is at least V every
 * token is a candidate, uncorrected, and the loss and gradient are the
 * exact softmax's.  The draws come from the forward pass's generator,
 * which checkpoints save, so a resumed run draws what the uninterrupted
 * one would have.
 */
#include "forward.h"

#include <math.h>
#include <string.h>

/* The candidates a chunk of n rows can have at most: <eod>, the targets, the draws. */
static size_t
max_candidates(const rl_config *c, size_t rows, int32_t k)
{
	size_t		n = rows + (size_t) k + 1;

	return n < (size_t) c->vocab_size ? n : (size_t) c->vocab_size;
}

/* Floats (and int32s, counted as floats) the sampled output layer of this shape holds. */
size_t
rl_sampled_floats(const rl_config *c, size_t rows, int32_t k)
{
	size_t		C;

	if (k <= 0)
		return 0;
	C = max_candidates(c, rows, k);
	/* the candidates' ids, each token's candidate index, their weights and biases */
	return C + (size_t) c->vocab_size + C * (size_t) c->hidden_size + C;
}

/* Allocates the sampled output layer of K draws a step (0: the exact softmax). */
rl_status
rl_fwd_set_sampled(rl_fwd *f, int32_t k)
{
	const rl_config *c = &f->m->cfg;
	size_t		C = max_candidates(c, (size_t) f->B * f->S, k),
				i;

	f->sampled_k = 0;
	if (k <= 0)
		return RL_OK;
	f->cand = rl_alloc_array(f->env, C, sizeof(int32_t));
	f->cand_of = rl_alloc_array(f->env, (size_t) c->vocab_size, sizeof(int32_t));
	f->cand_w = rl_alloc_array(f->env, C * (size_t) c->hidden_size, sizeof(float));
	f->cand_b = rl_alloc_array(f->env, C, sizeof(float));
	if (!f->cand || !f->cand_of || !f->cand_w || !f->cand_b)
		return f->env->status;
	for (i = 0; i < (size_t) c->vocab_size; i++)
		f->cand_of[i] = -1;
	f->sampled_k = k;
	f->cap_cand = (int32_t) C;
	return RL_OK;
}

/* Frees the sampled output layer. */
void
rl_fwd_free_sampled(rl_fwd *f)
{
	rl_free(f->env, f->cand);
	rl_free(f->env, f->cand_of);
	rl_free(f->env, f->cand_w);
	rl_free(f->env, f->cand_b);
	f->cand = f->cand_of = NULL;
	f->cand_w = f->cand_b = NULL;
	f->ncand = 0;
}

/* Adds id as a candidate (once); returns its index. */
static int32_t
add_candidate(rl_fwd *f, int32_t id)
{
	int32_t		k = f->cand_of[id];

	if (k >= 0)
		return k;
	k = f->ncand++;
	f->cand[k] = id;
	f->cand_of[id] = k;
	f->cand_b[k] = 0.0f;
	return k;
}

/* Chooses the chunk's candidates: <eod>, the targets, then the draws. */
static void
choose_candidates(rl_fwd *f, const int32_t *targets, int N)
{
	int32_t		V = f->m->cfg.vocab_size,
				K = f->sampled_k,
				i;
	double		logV1 = log((double) V + 1.0);

	for (i = 0; i < f->ncand; i++)
		f->cand_of[f->cand[i]] = -1;
	f->ncand = 0;
	if (K >= V)
	{
		for (i = 0; i < V; i++)
			add_candidate(f, i);
		return;
	}
	/* <eod> and the targets, uncorrected; then the draws not already in */
	add_candidate(f, RL_TOKEN_EOD);
	for (i = 0; i < N; i++)
		add_candidate(f, targets[i]);
	for (i = 0; i < K && f->ncand < f->cap_cand; i++)
	{
		double		u = rl_rng_uniform(&f->rng);
		int32_t		id = (int32_t) (exp(u * logV1) - 1.0),
					before = f->ncand,
					k;

		if (id < 0)
			id = 0;
		if (id >= V)
			id = V - 1;
		k = add_candidate(f, id);
		if (f->ncand > before)
			f->cand_b[k] = (float) -log((double) K *
										 (log((double) id + 2.0) - log((double) id + 1.0)) / logV1);
	}
}

/*
 * The training step's output layer over the candidates: the logits of the
 * N rows of f->top, their log-softmax and loss, the gradient (times
 * grad_scale) left in f->logits as [N, ncand].
 */
double
rl_sampled_forward(rl_fwd *f, const int32_t *targets, int N, float grad_scale,
				   double *row_nll, unsigned char *row_top1)
{
	const rl_model *m = f->m;
	int32_t		H = m->cfg.hidden_size,
				C,
				k;
	int			r;

	choose_candidates(f, targets, N);
	C = f->ncand;
	for (k = 0; k < C; k++)
	{
		memcpy(f->cand_w + (size_t) k * H, m->why + (size_t) f->cand[k] * H, H * sizeof(float));
		f->cand_b[k] += m->by[f->cand[k]];
	}
	for (r = 0; r < N; r++)
		memcpy(f->logits + (size_t) r * C, f->cand_b, C * sizeof(float));
	rl_mm(&f->prod, 0, 1, N, C, H, 1.0f, f->top, H, f->cand_w, H, 1.0f, f->logits, C);
	return rl_softmax_rows(f->logits, N, C, targets, f->cand_of, grad_scale, row_nll, row_top1);
}

/*
 * The output layer's backward over the candidates: the gradients of their
 * rows of W_hy and b_y added into g_why and g_by, and the gradient of the
 * top layer's output written to dH [N, H].
 */
void
rl_sampled_backward(rl_fwd *f, int N, float *g_why, float *g_by, float *dH)
{
	int32_t		H = f->m->cfg.hidden_size,
				C = f->ncand,
				k,
				j;
	int			r;

	rl_mm(&f->prod, 0, 0, N, H, C, 1.0f, f->logits, C, f->cand_w, H, 0.0f, dH, H);
	/* the candidates' weights are no longer needed: their gradient goes there */
	rl_mm(&f->prod, 1, 0, C, H, N, 1.0f, f->logits, C, f->top, H, 0.0f, f->cand_w, H);
	for (k = 0; k < C; k++)
	{
		float	   *g = g_why + (size_t) f->cand[k] * H;
		const float *d = f->cand_w + (size_t) k * H;
		double		sb = 0.0;

		for (j = 0; j < H; j++)
			g[j] += d[j];
		for (r = 0; r < N; r++)
			sb += f->logits[(size_t) r * C + k];
		g_by[f->cand[k]] += (float) sb;
	}
}
