/*
 * infer.c
 *		Running a model over one stream, a token at a time: the recurrent
 *		state of a document, its next-token logits, and scoring.
 */
#include "rnnlm_core.h"

#include <math.h>
#include <string.h>

/* Allocates the state for one stream of model m, reset to document start. */
rl_status
rl_state_create(rl_env *env, const rl_model *m, rl_state **out)
{
	const rl_config *c = &m->cfg;
	size_t		H = (size_t) c->hidden_size;
	size_t		G = (size_t) rl_cell_gates(c->cell);
	size_t		wide = (size_t) (c->embedding_dim > c->hidden_size ?
								 c->embedding_dim : c->hidden_size);
	size_t		L = (size_t) c->num_layers;
	rl_state   *s;
	size_t		total;
	float	   *p;

	*out = NULL;
	/* h, c: L*H each; x: wide; gates: G*H; rh, hnew, cnew: H each; logits: V */
	total = 2 * L * H + wide + G * H + 3 * H + (size_t) c->vocab_size;
	s = rl_alloc0(env, sizeof(rl_state));
	if (s == NULL)
		return env->status;
	p = rl_alloc_array(env, total, sizeof(float));
	if (p == NULL)
	{
		rl_free(env, s);
		return env->status;
	}
	s->m = m;
	s->h = p;
	p += L * H;
	s->c = p;
	p += L * H;
	s->x = p;
	p += wide;
	s->gates = p;
	p += G * H;
	s->rh = p;
	p += 3 * H;					/* rh, then new h, new c */
	s->logits = p;
	*out = s;
	return RL_OK;
}

/* Resets the state to the document start (all zero). */
void
rl_state_reset(rl_state *s)
{
	size_t		n = (size_t) s->m->cfg.num_layers * s->m->cfg.hidden_size;

	memset(s->h, 0, n * sizeof(float));
	memset(s->c, 0, n * sizeof(float));
}

/* Feeds one token and computes the logits of the next one. */
void
rl_state_feed(rl_state *s, int32_t token)
{
	const rl_model *m = s->m;
	const rl_config *c = &m->cfg;
	const rl_cell_ops *ops = rl_cell_ops_for(c->cell);
	int			H = c->hidden_size;
	int			GH = ops->ngates * H;
	float	   *hnew = s->rh + H;
	float	   *cnew = s->rh + 2 * H;
	int			l;

	if (token < 0 || token >= c->vocab_size)
		token = RL_TOKEN_UNK;
	memcpy(s->x, m->emb + (size_t) token * c->embedding_dim,
		   c->embedding_dim * sizeof(float));
	for (l = 0; l < c->num_layers; l++)
	{
		const rl_layer_params *lp = &m->layers[l];
		float	   *h = s->h + (size_t) l * H;
		float	   *cs = s->c + (size_t) l * H;

		memcpy(s->gates, lp->b, GH * sizeof(float));
		rl_sgemm(0, 1, 1, GH, lp->in_dim, 1.0f, s->x, lp->in_dim, lp->wx, lp->in_dim,
				 1.0f, s->gates, GH);
		ops->forward(lp->wh, H, 1, h, cs, s->gates, hnew, cnew, s->rh);
		memcpy(h, hnew, H * sizeof(float));
		if (c->cell == RL_CELL_LSTM)
			memcpy(cs, cnew, H * sizeof(float));
		memcpy(s->x, h, H * sizeof(float));
	}
	memcpy(s->logits, m->by, c->vocab_size * sizeof(float));
	rl_sgemm(0, 1, 1, c->vocab_size, H, 1.0f, s->x, H, m->why, H, 1.0f, s->logits,
			 c->vocab_size);
}

/* log softmax(logits)[target]; *is_top1 tells whether target is the argmax. */
double
rl_log_softmax_at(const float *logits, int32_t n, int32_t target, int *is_top1)
{
	float		mx = -INFINITY;
	int32_t		arg = 0,
				i;
	double		sum = 0.0;

	for (i = 0; i < n; i++)
		if (logits[i] > mx)
		{
			mx = logits[i];
			arg = i;
		}
	for (i = 0; i < n; i++)
		sum += exp((double) logits[i] - mx);
	if (is_top1)
		*is_top1 = (arg == target);
	return (double) logits[target] - mx - log(sum);
}

/* Scores a document (ids, then end of document) from the document-start state. */
rl_status
rl_score(rl_env *env, rl_state *s, const int32_t *ids, size_t n,
		 double *nll, size_t *correct, double *token_logprobs)
{
	int32_t		V = s->m->cfg.vocab_size;
	double		total = 0.0;
	size_t		ok = 0,
				i;

	rl_state_reset(s);
	rl_state_feed(s, RL_TOKEN_EOD);
	for (i = 0; i <= n; i++)
	{
		int32_t		target = i < n ? ids[i] : RL_TOKEN_EOD;
		int			top1;
		double		lp;

		if (target < 0 || target >= V)
			target = RL_TOKEN_UNK;
		lp = rl_log_softmax_at(s->logits, V, target, &top1);
		total -= lp;
		ok += top1;
		if (token_logprobs)
			token_logprobs[i] = lp;
		if (i < n)
		{
			if ((i & 63) == 63 && !rl_tick(env))
				return env->status;
			rl_state_feed(s, target);
		}
	}
	*nll = total;
	if (correct)
		*correct = ok;
	return RL_OK;
}

/* Frees a state. */
void
rl_state_free(rl_env *env, rl_state *s)
{
	if (s == NULL)
		return;
	rl_free(env, s->h);
	rl_free(env, s);
}
