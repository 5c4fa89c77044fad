/*
 * infer.c
 *		Running a model over one stream: a token at a time for generation,
 *		and a document at a time for scoring.
 *
 * Scoring knows the whole document in advance, so it runs layer by layer
 * over chunks of RL_SCORE_CHUNK positions: each layer's input projection
 * and the output layer are matrix products over the chunk, and only the
 * recurrent product W_h h_{t-1} is computed step by step.  That step reads
 * one layer's W_h at a time, which stays in cache, where a token-at-a-time
 * pass streams every weight of the model for every token.
 */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
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

	size_t		CH = RL_SCORE_CHUNK;

	*out = NULL;
	/* h, c: L*H each; x: wide; gates: G*H; rh, hnew, cnew: H each; logits: V */
	total = 2 * L * H + wide + G * H + 3 * H + (size_t) c->vocab_size;
	/* the chunk: two of CH*wide, CH*G*H, two of CH*H, CH*V, CH ints */
	total += CH * (2 * wide + G * H + 2 * H + (size_t) c->vocab_size + 1);
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
	p += c->vocab_size;
	s->cx = p;
	p += CH * wide;
	s->cy = p;
	p += CH * wide;
	s->cg = p;
	p += CH * G * H;
	s->cc = p;
	p += CH * H;
	s->crh = p;
	p += CH * H;
	s->clogits = p;
	p += CH * (size_t) c->vocab_size;
	s->cin = (int32_t *) p;
	*out = s;
	return RL_OK;
}

/*
 * Runs the stream's products in precision p (RL_PREC_FP32, RL_PREC_BF16 or
 * RL_PREC_INT8, resolved): bf16 keeps a bf16 copy of the model's weights,
 * int8 an int8 copy of its matrices for the one-row products, allocated
 * from env, which must outlive the state (the model's weights must not
 * change while it is in use).
 */
rl_status
rl_state_set_precision(rl_env *env, rl_state *s, rl_precision p)
{
	const rl_config *c = &s->m->cfg;
	size_t		wide = (size_t) (c->embedding_dim > c->hidden_size ?
								 c->embedding_dim : c->hidden_size);

	if (rl_state_precision(s) == p)
		return RL_OK;
	rl_prod_free(env, &s->prod);
	if (p == RL_PREC_BF16)
		return rl_prod_init(env, &s->prod, s->m->params, s->m->nparams, RL_SCORE_CHUNK * wide);
	if (p == RL_PREC_INT8)
		return rl_prod_init_int8(env, &s->prod, s->m);
	return RL_OK;
}

/* The precision of the stream's products. */
rl_precision
rl_state_precision(const rl_state *s)
{
	return s->prod.bf16 ? RL_PREC_BF16 : s->prod.int8 ? RL_PREC_INT8 : RL_PREC_FP32;
}

/* Resets the state to the document start (all zero). */
void
rl_state_reset(rl_state *s)
{
	size_t		n = (size_t) s->m->cfg.num_layers * s->m->cfg.hidden_size;

	memset(s->h, 0, n * sizeof(float));
	memset(s->c, 0, n * sizeof(float));
}

/* The layer buffers of one stream: input x, gates, output h (and C, r*h), state h0 (C0). */
static rl_layer_buf
stream_layer(const rl_state *s, int l, float *x, float *gates, float *h, float *c, float *rh)
{
	const rl_config *cfg = &s->m->cfg;
	size_t		off = (size_t) l * cfg->hidden_size;
	rl_layer_buf lb;

	memset(&lb, 0, sizeof(lb));
	lb.x = x;
	lb.gates = gates;
	lb.h = h;
	lb.c = cfg->cell == RL_CELL_LSTM ? c : NULL;
	lb.rh = cfg->cell == RL_CELL_GRU ? rh : NULL;
	lb.h0 = s->h + off;
	lb.c0 = cfg->cell == RL_CELL_LSTM ? s->c + off : NULL;
	return lb;
}

/* Feeds one token and computes the logits of the next one. */
void
rl_state_feed(rl_state *s, int32_t token)
{
	const rl_model *m = s->m;
	const rl_config *c = &m->cfg;
	int			H = c->hidden_size;
	float	   *hnew = s->rh + H;
	float	   *cnew = s->rh + 2 * H;
	int			l;

	if (token < 0 || token >= c->vocab_size)
		token = RL_TOKEN_UNK;
	memcpy(s->x, m->emb + (size_t) token * c->embedding_dim,
		   c->embedding_dim * sizeof(float));
	for (l = 0; l < c->num_layers; l++)
	{
		rl_layer_buf lb = stream_layer(s, l, s->x, s->gates, hnew, cnew, s->rh);

		(void) rl_layer_forward(NULL, &s->prod, m, l, &lb, 1, 1);
		memcpy(lb.h0, hnew, H * sizeof(float));
		if (lb.c0)
			memcpy(lb.c0, cnew, H * sizeof(float));
		memcpy(s->x, hnew, H * sizeof(float));
	}
	memcpy(s->logits, m->by, c->vocab_size * sizeof(float));
	rl_mm(&s->prod, 0, 1, 1, c->vocab_size, H, 1.0f, s->x, H, m->why, H, 1.0f, s->logits,
		  c->vocab_size);
}

/* log softmax(logits)[target]: rl_log_softmax_row, which only reads without a gradient. */
double
rl_log_softmax_at(const float *logits, int32_t n, int32_t target, int *is_top1)
{
	return rl_log_softmax_row((float *) logits, n, target, is_top1, 0.0f);
}

/*
 * out[T, n] += X[T, k] W[n, k]^T.  A matrix product packs W before it
 * starts, which for a short document costs more than reading W once per
 * row, so a few rows are done as matrix-vector products.
 */
static void
chunk_product(const rl_prod *p, const float *x, int T, int k, const float *w, int n,
			  float *out)
{
	int			t;

	if (T >= 8)
	{
		rl_mm(p, 0, 1, T, n, k, 1.0f, x, k, w, k, 1.0f, out, n);
		return;
	}
	for (t = 0; t < T; t++)
		rl_mm(p, 0, 1, 1, n, k, 1.0f, x + (size_t) t * k, k, w, k, 1.0f,
			  out + (size_t) t * n, n);
}

/*
 * Runs layer l over T positions of the chunk: s->cx holds the input, s->cy
 * receives h_t; the layer's state in s->h, s->c is carried in and out.
 */
static void
chunk_layer(rl_state *s, int l, int T)
{
	int			H = s->m->cfg.hidden_size;
	rl_layer_buf lb = stream_layer(s, l, s->cx, s->cg, s->cy, s->cc, s->crh);

	(void) rl_layer_forward(NULL, &s->prod, s->m, l, &lb, T, 1);
	memcpy(lb.h0, s->cy + (size_t) (T - 1) * H, H * sizeof(float));
	if (lb.c0)
		memcpy(lb.c0, s->cc + (size_t) (T - 1) * H, H * sizeof(float));
}

/*
 * Runs positions pos .. pos+T-1 of a document through every layer, from
 * the state the previous chunk left: position p has the input ids[p-1]
 * (<eod> at 0).  s->cx then holds the top layer's h of each position.
 */
static void
chunk_forward(rl_state *s, const int32_t *ids, size_t pos, int T)
{
	const rl_model *m = s->m;
	int32_t		V = m->cfg.vocab_size;
	int			E = m->cfg.embedding_dim,
				t,
				l;

	for (t = 0; t < T; t++)
	{
		size_t		p = pos + t;
		int32_t		in = p == 0 ? RL_TOKEN_EOD : ids[p - 1];

		if (in < 0 || in >= V)
			in = RL_TOKEN_UNK;
		s->cin[t] = in;
		memcpy(s->cx + (size_t) t * E, m->emb + (size_t) in * E, E * sizeof(float));
	}
	for (l = 0; l < m->cfg.num_layers; l++)
	{
		float	   *swap;

		chunk_layer(s, l, T);
		swap = s->cx;
		s->cx = s->cy;
		s->cy = swap;
	}
}

/* Positions in the chunk at pos of a document of n tokens (n + 1 in all). */
static int
chunk_len(size_t n, size_t pos)
{
	return (int) ((n + 1 - pos) < RL_SCORE_CHUNK ? n + 1 - pos : RL_SCORE_CHUNK);
}

/*
 * Scores a document (ids, then end of document) from the document-start
 * state.  Returns the summed negative log-likelihood (nats) and how many of
 * the n + 1 predictions had the target as their top-1 token; the
 * log-probability of each prediction goes to token_logprobs unless NULL.
 */
rl_status
rl_score(rl_env *env, rl_state *s, const int32_t *ids, size_t n,
		 double *nll, size_t *correct, double *token_logprobs)
{
	const rl_model *m = s->m;
	int32_t		V = m->cfg.vocab_size;
	int			H = m->cfg.hidden_size;
	double		total = 0.0;
	size_t		ok = 0,
				pos;

	rl_state_reset(s);
	/* position p has input ids[p-1] (EOD at 0) and target ids[p] (EOD at n) */
	for (pos = 0; pos <= n; pos += RL_SCORE_CHUNK)
	{
		int			T = chunk_len(n, pos),
					t;

		if (!rl_tick(env))
			return env->status;
		chunk_forward(s, ids, pos, T);
		for (t = 0; t < T; t++)
			memcpy(s->clogits + (size_t) t * V, m->by, V * sizeof(float));
		chunk_product(&s->prod, s->cx, T, H, m->why, V, s->clogits);
		for (t = 0; t < T; t++)
		{
			size_t		p = pos + t;
			int32_t		target = p < n ? ids[p] : RL_TOKEN_EOD;
			int			top1;
			double		lp;

			if (target < 0 || target >= V)
				target = RL_TOKEN_UNK;
			lp = rl_log_softmax_at(s->clogits + (size_t) t * V, V, target, &top1);
			total -= lp;
			ok += top1;
			if (token_logprobs)
				token_logprobs[p] = lp;
		}
	}
	*nll = total;
	if (correct)
		*correct = ok;
	return RL_OK;
}

/*
 * A fixed-size vector of a document: the top layer's hidden state after
 * each of its n tokens (read from the document start), their mean
 * (pooling RL_POOL_MEAN) or the last (RL_POOL_LAST); for an empty document,
 * the state after the document start.  out has hidden_size floats.
 */
rl_status
rl_embed(rl_env *env, rl_state *s, const int32_t *ids, size_t n, rl_pooling pooling,
		 float *out)
{
	int			H = s->m->cfg.hidden_size,
				j;
	double	   *sum = rl_alloc_array(env, (size_t) H, sizeof(double));
	size_t		pos,
				counted = 0;

	if (sum == NULL)
		return env->status;
	rl_state_reset(s);
	/* position 0 is the state after <eod>, position p that after token p - 1 */
	for (pos = 0; pos <= n; pos += RL_SCORE_CHUNK)
	{
		int			T = chunk_len(n, pos),
					t;

		if (!rl_tick(env))
		{
			rl_free(env, sum);
			return env->status;
		}
		chunk_forward(s, ids, pos, T);
		for (t = 0; t < T; t++)
		{
			size_t		p = pos + t;
			const float *h = s->cx + (size_t) t * H;

			/* the states after the text's tokens; after <eod> only when it is empty */
			if (n > 0 && p == 0)
				continue;
			if (pooling == RL_POOL_LAST && p != n)
				continue;
			for (j = 0; j < H; j++)
				sum[j] += h[j];
			counted++;
		}
	}
	for (j = 0; j < H; j++)
		out[j] = (float) (sum[j] / (double) counted);
	rl_free(env, sum);
	return RL_OK;
}

typedef struct doc_len
{
	size_t		len;
	size_t		index;
} doc_len;

/* Orders documents by length, longest first, then by position. */
static int
doc_len_cmp(const void *a, const void *b)
{
	const doc_len *x = a,
			   *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

/*
 * Scores many documents as parallel streams of one batch: documents of
 * similar length are grouped, each group runs as B streams through the
 * batched forward pass (forward.c, the one training runs), and positions
 * past a document's end are padding whose predictions are ignored.  Each
 * document starts from the zero state, as in rl_score.
 */
rl_status
rl_score_many(rl_env *env, rl_model *m, const int32_t *const *docs,
			  const size_t *lens, size_t ndocs, rl_precision precision,
			  double *nll, size_t *correct)
{
	const int32_t B = 32;
	int32_t		V = m->cfg.vocab_size;
	int32_t		S;
	rl_fwd		f;
	doc_len    *order = NULL;
	double	   *row_nll = NULL;
	unsigned char *row_top1 = NULL;
	int32_t    *inputs = NULL,
			   *targets = NULL;
	rl_status	st = RL_OK;
	double		loss;
	size_t		g,
				i;

	if (ndocs == 0)
		return RL_OK;
	memset(&f, 0, sizeof(f));
	/*
	 * Chunks as long as the logits of one chunk allow within about 32 MB: the
	 * output layer's weights are packed once per chunk.
	 */
	S = (int32_t) ((8u << 20) / ((size_t) V * B));
	S = S < 8 ? 8 : (S > RL_SCORE_CHUNK ? RL_SCORE_CHUNK : S);
	order = rl_alloc_array(env, ndocs, sizeof(doc_len));
	row_nll = rl_alloc_array(env, (size_t) B * S, sizeof(double));
	row_top1 = rl_alloc_array(env, (size_t) B * S, 1);
	inputs = rl_alloc_array(env, (size_t) B * S, sizeof(int32_t));
	targets = rl_alloc_array(env, (size_t) B * S, sizeof(int32_t));
	if (!order || !row_nll || !row_top1 || !inputs || !targets)
	{
		st = env->status;
		goto done;
	}
	st = rl_fwd_init(&f, env, m, B, S, 0.0, 0);
	if (st == RL_OK)
		st = rl_fwd_set_precision(&f, precision);
	if (st != RL_OK)
		goto done;
	for (i = 0; i < ndocs; i++)
	{
		order[i].len = lens[i];
		order[i].index = i;
		nll[i] = 0.0;
		if (correct)
			correct[i] = 0;
	}
	qsort(order, ndocs, sizeof(doc_len), doc_len_cmp);

	for (g = 0; g < ndocs; g += B)
	{
		int32_t		nb = (int32_t) (ndocs - g < (size_t) B ? ndocs - g : (size_t) B);
		size_t		positions = order[g].len + 1;	/* the longest of the group */
		size_t		pos;

		f.cur_B = nb;
		rl_fwd_reset_state(&f);
		for (pos = 0; pos < positions; pos += S)
		{
			int32_t		T = (int32_t) (positions - pos < (size_t) S ? positions - pos : (size_t) S);
			int32_t		t,
						b;

			for (t = 0; t < T; t++)
				for (b = 0; b < nb; b++)
				{
					const doc_len *d = &order[g + b];
					const int32_t *ids = docs[d->index];
					size_t		p = pos + t;
					int32_t		in = RL_TOKEN_EOD,
								out = RL_TOKEN_EOD;

					if (p >= 1 && p <= d->len)
						in = ids[p - 1];
					if (p < d->len)
						out = ids[p];
					inputs[t * nb + b] = (in >= 0 && in < V) ? in : RL_TOKEN_UNK;
					targets[t * nb + b] = (out >= 0 && out < V) ? out : RL_TOKEN_UNK;
				}
			st = rl_fwd_run(&f, inputs, targets, T, 0, 0.0f, &loss, row_nll, row_top1);
			if (st != RL_OK)
				goto done;
			rl_fwd_carry(&f, T);
			for (t = 0; t < T; t++)
				for (b = 0; b < nb; b++)
				{
					const doc_len *d = &order[g + b];

					if (pos + t > d->len)
						continue;
					nll[d->index] += row_nll[t * nb + b];
					if (correct)
						correct[d->index] += row_top1[t * nb + b];
				}
		}
	}
done:
	rl_fwd_free(&f);
	rl_free(env, order);
	rl_free(env, row_nll);
	rl_free(env, row_top1);
	rl_free(env, inputs);
	rl_free(env, targets);
	return st;
}

/* Frees a state. */
void
rl_state_free(rl_env *env, rl_state *s)
{
	if (s == NULL)
		return;
	rl_prod_free(env, &s->prod);
	rl_free(env, s->h);
	rl_free(env, s);
}
