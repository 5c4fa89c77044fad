/*
 * checkpoint.c
 *		The checkpoint file of a training run (doc/format.md): a model file
 *		with the current weights and the run's state in tagged sections, so a
 *		new process can continue the run exactly where it was saved.
 *
 * Like a model file, a checkpoint may come from anywhere (a job row edited
 * by hand, a restored dump), so the reader checks the checksum first and
 * then every length against what it must be for this run before copying
 * anything; a checkpoint of another model shape, data or options is refused.
 */
#include "run_internal.h"

#include <math.h>
#include <string.h>

#define TAG RL_TAG
#define TAG_MODEL	TAG('M', 'O', 'D', 'L')
#define TAG_STATE	TAG('S', 'T', 'A', 'T')
#define TAG_ADAM	TAG('A', 'D', 'A', 'M')
#define TAG_HIDDEN	TAG('H', 'I', 'D', 'N')
#define TAG_BEST	TAG('B', 'E', 'S', 'T')
#define TAG_HISTORY TAG('H', 'I', 'S', 'T')
#define TAG_PRECISION TAG('P', 'R', 'E', 'C')
#define TAG_FROZEN	TAG('F', 'R', 'Z', 'N')
#define TAG_SAMPLED	TAG('S', 'M', 'P', 'L')

#define HEADER_BYTES	16		/* magic, version, section count */
#define SECTION_HEAD	12		/* tag, length */
#define STATE_BYTES		216
#define HIST_ENTRY		44

/* A growing output buffer; the first failure sticks. */
typedef struct writer
{
	rl_env	   *env;
	uint8_t    *buf;
	size_t		len,
				cap;
	int			failed;
} writer;

/* Makes room for n more bytes; NULL after a failure. */
static uint8_t *
w_room(writer *w, size_t n)
{
	void	   *p = w->buf;

	if (w->failed)
		return NULL;
	if (!rl_grow(w->env, &p, &w->cap, w->len + n, 1))
	{
		w->failed = 1;
		return NULL;
	}
	w->buf = p;
	w->len += n;
	return w->buf + w->len - n;
}

/* Appends a u32. */
static void
w_u32(writer *w, uint32_t v)
{
	uint8_t    *p = w_room(w, 4);

	if (p)
		rl_put_u32(p, v);
}

/* Appends a u64. */
static void
w_u64(writer *w, uint64_t v)
{
	uint8_t    *p = w_room(w, 8);

	if (p)
		rl_put_u64(p, v);
}

/* Appends a double, as its IEEE-754 bits. */
static void
w_f64(writer *w, double v)
{
	uint64_t	bits;

	memcpy(&bits, &v, 8);
	w_u64(w, bits);
}

/* Appends n floats, as their IEEE-754 bits. */
static void
w_floats(writer *w, const float *x, size_t n)
{
	uint8_t    *p = w_room(w, 4 * n);
	size_t		i;
	uint32_t	bits;

	if (p == NULL)
		return;
	for (i = 0; i < n; i++)
	{
		memcpy(&bits, &x[i], 4);
		rl_put_u32(p + 4 * i, bits);
	}
}

/* Starts a section; returns where its length goes. */
static size_t
w_begin(writer *w, uint32_t tag)
{
	size_t		at;

	w_u32(w, tag);
	at = w->len;
	w_u64(w, 0);
	return at;
}

/* Ends the section whose length goes at at. */
static void
w_end(writer *w, size_t at)
{
	if (!w->failed)
		rl_put_u64(w->buf + at, w->len - at - 8);
}

/* The STAT section: the options it was made with, the data, where the run is. */
static void
write_state(writer *w, const rl_run *r, const rl_trainer_state *ts)
{
	const rl_train_opts *o = &r->o;
	int			i;

	w_u32(w, (uint32_t) o->epochs);
	w_u32(w, (uint32_t) o->batch_size);
	w_u32(w, (uint32_t) o->seq_len);
	w_u32(w, (uint32_t) o->keep_best);
	w_f64(w, o->learning_rate);
	w_f64(w, o->clip_norm);
	w_f64(w, o->dropout);
	w_u64(w, o->seed);
	w_u32(w, (uint32_t) o->patience);
	w_u32(w, (uint32_t) o->lr_patience);
	w_f64(w, o->lr_decay);
	w_u64(w, r->ntrain);
	w_u64(w, r->nval);
	w_u64(w, r->data_hash);
	w_u32(w, (uint32_t) r->B);
	w_u32(w, (uint32_t) r->epoch);
	w_u64(w, r->pos);
	w_f64(w, r->total);
	w_f64(w, r->epoch_seconds);
	w_f64(w, r->train_seconds);
	w_f64(w, r->rules.lr);
	w_f64(w, r->val_loss);
	w_u64(w, r->val_tokens);
	w_f64(w, r->rules.best_val);
	w_u32(w, (uint32_t) r->rules.best_epoch);
	w_u32(w, (uint32_t) r->rules.since_best);
	w_u32(w, (uint32_t) r->rules.lr_wait);
	w_u32(w, (uint32_t) r->rules.stopped);
	w_u64(w, (uint64_t) *ts->step);
	for (i = 0; i < 4; i++)
		w_u64(w, ts->rng->s[i]);
}

/* Saves the run as a checkpoint file, allocated from the run's env. */
rl_status
rl_run_save(rl_run *r, uint8_t **out, size_t *len)
{
	writer		w = {r->env, NULL, 0, 0, 0};
	rl_trainer_state ts;
	uint8_t    *model;
	size_t		model_len,
				at,
				P = r->m->nparams;
	int			L = r->m->cfg.num_layers,
				l,
				i;

	*out = NULL;
	*len = 0;
	rl_trainer_view(r->tr, &ts);
	if (rl_model_serialize(r->env, r->m, &model, &model_len) != RL_OK)
		return r->env->status;

	{
		uint8_t    *magic = w_room(&w, 8);

		if (magic)
			memcpy(magic, RL_CHECKPOINT_MAGIC, 8);
	}
	w_u32(&w, RL_CHECKPOINT_VERSION);
	w_u32(&w, (r->best ? 6 : 5) + (r->o.precision != RL_PREC_FP32) + (r->o.freeze_embeddings != 0) +
		  (r->o.sampled_softmax > 0));
	at = w_begin(&w, TAG_MODEL);
	if (w_room(&w, model_len))
		memcpy(w.buf + w.len - model_len, model, model_len);
	w_end(&w, at);
	rl_free(r->env, model);

	at = w_begin(&w, TAG_STATE);
	write_state(&w, r, &ts);
	w_end(&w, at);

	at = w_begin(&w, TAG_ADAM);
	w_floats(&w, ts.adam_m, ts.adam_floats);
	w_floats(&w, ts.adam_v, ts.adam_floats);
	w_end(&w, at);

	at = w_begin(&w, TAG_HIDDEN);
	for (l = 0; l < L; l++)
		w_floats(&w, ts.h0[l], ts.state_floats);
	if (r->m->cfg.cell == RL_CELL_LSTM)
		for (l = 0; l < L; l++)
			w_floats(&w, ts.c0[l], ts.state_floats);
	w_end(&w, at);

	if (r->best)
	{
		at = w_begin(&w, TAG_BEST);
		w_floats(&w, r->best, P);
		w_end(&w, at);
	}

	/* only in a run whose products are not fp32, so fp32 checkpoints stay as they were */
	if (r->o.precision != RL_PREC_FP32)
	{
		at = w_begin(&w, TAG_PRECISION);
		w_u32(&w, (uint32_t) r->o.precision);
		w_end(&w, at);
	}

	/* only in a run with frozen embeddings (whose Adam state leaves them out) */
	if (r->o.freeze_embeddings)
	{
		at = w_begin(&w, TAG_FROZEN);
		w_u32(&w, 1);
		w_end(&w, at);
	}

	/* only in a run with the sampled output layer: its draws a step */
	if (r->o.sampled_softmax > 0)
	{
		at = w_begin(&w, TAG_SAMPLED);
		w_u32(&w, (uint32_t) r->o.sampled_softmax);
		w_end(&w, at);
	}

	at = w_begin(&w, TAG_HISTORY);
	w_u32(&w, (uint32_t) r->nhist);
	for (i = 0; i < r->nhist; i++)
	{
		const rl_epoch_stats *e = &r->hist[i];

		w_u32(&w, (uint32_t) e->epoch);
		w_f64(&w, e->learning_rate);
		w_f64(&w, e->train_loss);
		w_f64(&w, e->val_loss);
		w_f64(&w, e->seconds);
		w_f64(&w, e->tokens_per_second);
	}
	w_end(&w, at);

	if (!w.failed)
		w_u32(&w, rl_crc32(w.buf, w.len));
	if (w.failed)
	{
		rl_free(r->env, w.buf);
		return r->env->status;
	}
	*out = w.buf;
	*len = w.len;
	return RL_OK;
}

/* A bounded reader over one section. */
typedef struct reader
{
	const uint8_t *p;
	size_t		left;
} reader;

/* Reads a u32 (the caller checked the length). */
static uint32_t
r_u32(reader *rd)
{
	uint32_t	v = rl_get_u32(rd->p);

	rd->p += 4;
	rd->left -= 4;
	return v;
}

/* Reads a u64. */
static uint64_t
r_u64(reader *rd)
{
	uint64_t	v = rl_get_u64(rd->p);

	rd->p += 8;
	rd->left -= 8;
	return v;
}

/* Reads a double. */
static double
r_f64(reader *rd)
{
	uint64_t	bits = r_u64(rd);
	double		v;

	memcpy(&v, &bits, 8);
	return v;
}

/* Reads n floats into x. */
static void
r_floats(reader *rd, float *x, size_t n)
{
	size_t		i;
	uint32_t	bits;

	for (i = 0; i < n; i++)
	{
		bits = rl_get_u32(rd->p + 4 * i);
		memcpy(&x[i], &bits, 4);
	}
	rd->p += 4 * n;
	rd->left -= 4 * n;
}

/* Whether a loaded model has the run's model's shape and vocabulary. */
static int
same_model(const rl_model *a, const rl_model *b)
{
	const rl_config *x = &a->cfg,
			   *y = &b->cfg;
	int32_t		i;

	if (x->cell != y->cell || !rl_config_same_text(x, y) ||
		x->vocab_size != y->vocab_size || x->embedding_dim != y->embedding_dim ||
		x->hidden_size != y->hidden_size || x->num_layers != y->num_layers)
		return 0;
	for (i = 0; i < x->vocab_size; i++)
	{
		size_t		la,
					lb;
		const char *ta = rl_vocab_token(a->vocab, i, &la);
		const char *tb = rl_vocab_token(b->vocab, i, &lb);

		if (la != lb || memcmp(ta, tb, la) != 0)
			return 0;
	}
	if (a->vocab->nmerges != b->vocab->nmerges ||
		(a->vocab->nmerges > 0 &&
		 memcmp(a->vocab->merges, b->vocab->merges, 2 * sizeof(int32_t) * (size_t) a->vocab->nmerges) != 0))
		return 0;
	return 1;
}

/* Reads the MODL section: the weights, after checking the model matches. */
static rl_status
read_model(rl_run *r, reader *rd)
{
	rl_model   *m;
	rl_status	st = rl_model_deserialize(r->env, rd->p, rd->left, &m);

	if (st != RL_OK)
		return st;
	if (!same_model(m, r->m))
		st = rl_error(r->env, RL_ERR_FORMAT,
					  "the checkpoint is of another model shape or vocabulary");
	else
	{
		memcpy(r->m->params, m->params, r->m->nparams * sizeof(float));
		rl_trainer_weights_changed(r->tr);
	}
	rl_model_free(r->env, m);
	return st;
}

/* Reads the STAT section, refusing a checkpoint of other options or data. */
static rl_status
read_state(rl_run *r, reader *rd, const rl_trainer_state *ts)
{
	const rl_train_opts *o = &r->o;
	int			same;
	int32_t		epoch,
				best_epoch;
	size_t		pos;
	int			i;

	if (rd->left != STATE_BYTES)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's state section has the wrong size");
	same = r_u32(rd) == (uint32_t) o->epochs;
	same &= r_u32(rd) == (uint32_t) o->batch_size;
	same &= r_u32(rd) == (uint32_t) o->seq_len;
	same &= r_u32(rd) == (uint32_t) o->keep_best;
	same &= r_f64(rd) == o->learning_rate;
	same &= r_f64(rd) == o->clip_norm;
	same &= r_f64(rd) == o->dropout;
	same &= r_u64(rd) == o->seed;
	same &= r_u32(rd) == (uint32_t) o->patience;
	same &= r_u32(rd) == (uint32_t) o->lr_patience;
	same &= r_f64(rd) == o->lr_decay;
	if (!same)
		return rl_error(r->env, RL_ERR_INVALID, "the checkpoint was made with other training options");
	same = r_u64(rd) == r->ntrain;
	same &= r_u64(rd) == r->nval;
	same &= r_u64(rd) == r->data_hash;
	same &= r_u32(rd) == (uint32_t) r->B;
	if (!same)
		return rl_error(r->env, RL_ERR_DATA,
						"the training data is not the data the checkpoint was made from");
	epoch = (int32_t) r_u32(rd);
	pos = r_u64(rd);
	if (epoch < 0 || epoch > o->epochs || pos >= r->per_stream || pos % o->seq_len != 0)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's position is out of range");
	r->epoch = epoch;
	r->pos = pos;
	r->total = r_f64(rd);
	r->epoch_seconds = r_f64(rd);
	r->train_seconds = r_f64(rd);
	r->rules.lr = r_f64(rd);
	r->val_loss = r_f64(rd);
	r->val_tokens = r_u64(rd);
	r->rules.best_val = r_f64(rd);
	best_epoch = (int32_t) r_u32(rd);
	if (best_epoch < 0 || best_epoch > epoch)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's best epoch is out of range");
	r->rules.best_epoch = best_epoch;
	r->rules.since_best = (int32_t) r_u32(rd);
	r->rules.lr_wait = (int32_t) r_u32(rd);
	r->rules.stopped = r_u32(rd) != 0;
	*ts->step = (int64_t) r_u64(rd);
	for (i = 0; i < 4; i++)
		ts->rng->s[i] = r_u64(rd);
	/* the counters only grow once an epoch: past epoch they would overflow */
	if (!(r->rules.lr > 0 && isfinite(r->rules.lr)) || *ts->step < 0 ||
		r->rules.since_best < 0 || r->rules.since_best > epoch || r->rules.lr_wait < 0 || r->rules.lr_wait > epoch)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's state is out of range");
	return RL_OK;
}

/* Reads the HIST section. */
static rl_status
read_history(rl_run *r, reader *rd)
{
	uint32_t	n,
				i;
	void	   *p = r->hist;

	if (rd->left < 4)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's history is truncated");
	n = r_u32(rd);
	if (n != (uint32_t) r->epoch || rd->left != (size_t) n * HIST_ENTRY)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's history does not match its epoch");
	if (n > 0 && !rl_grow(r->env, &p, &r->hist_cap, n, sizeof(rl_epoch_stats)))
		return r->env->status;
	r->hist = p;
	for (i = 0; i < n; i++)
	{
		rl_epoch_stats *e = &r->hist[i];

		e->epoch = (int32_t) r_u32(rd);
		e->epochs = r->o.epochs;
		e->learning_rate = r_f64(rd);
		e->train_loss = r_f64(rd);
		e->val_loss = r_f64(rd);
		e->seconds = r_f64(rd);
		e->tokens_per_second = r_f64(rd);
	}
	r->nhist = (int32_t) n;
	return RL_OK;
}

/* Reads a section of n floats into the given arrays, which must fill it exactly. */
static rl_status
read_floats(rl_run *r, reader *rd, float **arrays, int count, size_t n, const char *what)
{
	int			i;

	if (n > SIZE_MAX / 4 / (size_t) count || rd->left != (size_t) count * n * 4)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's %s section has the wrong size", what);
	for (i = 0; i < count; i++)
		r_floats(rd, arrays[i], n);
	return RL_OK;
}

/* Reads one section into the run. */
static rl_status
read_section(rl_run *r, uint32_t tag, reader *rd, rl_trainer_state *ts)
{
	int			L = r->m->cfg.num_layers;
	float	   *arrays[2 * RL_MAX_LAYERS];
	int			l;
	size_t		i;

	switch (tag)
	{
		case TAG_MODEL:
			return read_model(r, rd);
		case TAG_STATE:
			return read_state(r, rd, ts);
		case TAG_ADAM:
			arrays[0] = ts->adam_m;
			arrays[1] = ts->adam_v;
			return read_floats(r, rd, arrays, 2, ts->adam_floats, "Adam");
		case TAG_HIDDEN:
			for (l = 0; l < L; l++)
			{
				arrays[l] = ts->h0[l];
				arrays[L + l] = ts->c0[l];
			}
			return read_floats(r, rd, arrays, r->m->cfg.cell == RL_CELL_LSTM ? 2 * L : L,
							   ts->state_floats, "hidden state");
		case TAG_BEST:
			if (r->best == NULL)
				return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint keeps best weights this run does not");
			arrays[0] = r->best;
			if (read_floats(r, rd, arrays, 1, r->m->nparams, "best weights") != RL_OK)
				return r->env->status;
			/* they may become the model's, whose weights must be finite */
			for (i = 0; i < r->m->nparams; i++)
				if (!isfinite(r->best[i]))
					return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's best weights are not finite");
			return RL_OK;
		case TAG_HISTORY:
			return read_history(r, rd);
		case TAG_SAMPLED:
			return RL_OK;		/* checked by check_run_sections */
		case TAG_FROZEN:
			if (rd->left != 4 || rl_get_u32(rd->p) != 1 || !r->o.freeze_embeddings)
				return rl_error(r->env, RL_ERR_FORMAT,
								"the checkpoint was made with frozen embeddings, this run trains them");
			return RL_OK;
		case TAG_PRECISION:
			if (rd->left != 4 || rl_get_u32(rd->p) != (uint32_t) r->o.precision)
				return rl_error(r->env, RL_ERR_FORMAT,
								"the checkpoint was made with precision %s, this run is %s",
								rd->left == 4 && rl_get_u32(rd->p) == RL_PREC_BF16 ? "bf16" : "other",
								rl_precision_name(r->o.precision));
			return RL_OK;
	}
	return RL_OK;				/* a section of a later version: skipped */
}

/*
 * Refuses, with a clear message, a checkpoint whose embeddings were frozen
 * when the run's are not or the other way round (its Adam state has another
 * size), or whose sampled output layer differs from the run's.  A walk over
 * the section heads only; the reading checks the rest.
 */
static rl_status
check_run_sections(rl_run *r, const uint8_t *data, size_t end, uint32_t nsections)
{
	size_t		off = HEADER_BYTES;
	uint32_t	i,
				sampled = 0;
	int			frozen = 0;

	for (i = 0; i < nsections && end - off >= SECTION_HEAD; i++)
	{
		uint64_t	slen = rl_get_u64(data + off + 4);
		uint32_t	tag = rl_get_u32(data + off);

		frozen |= tag == TAG_FROZEN;
		off += SECTION_HEAD;
		if (slen > end - off)
			break;
		if (tag == TAG_SAMPLED)
			sampled = slen == 4 ? rl_get_u32(data + off) : UINT32_MAX;
		off += (size_t) slen;
	}
	if (sampled != (uint32_t) (r->o.sampled_softmax > 0 ? r->o.sampled_softmax : 0))
		return rl_error(r->env, RL_ERR_FORMAT,
						"the checkpoint was made with sampled_softmax %u, this run has %d",
						sampled, r->o.sampled_softmax > 0 ? r->o.sampled_softmax : 0);
	if (frozen && !r->o.freeze_embeddings)
		return rl_error(r->env, RL_ERR_FORMAT,
						"the checkpoint was made with frozen embeddings, this run trains them");
	if (!frozen && r->o.freeze_embeddings)
		return rl_error(r->env, RL_ERR_FORMAT,
						"the checkpoint was made with trained embeddings, this run freezes them");
	return RL_OK;
}

/*
 * Restores a checkpoint into a new run (made by rl_run_create with the same
 * model shape, data and options, before any rl_run_advance).
 */
rl_status
rl_run_restore(rl_run *r, const uint8_t *data, size_t len)
{
	static const uint32_t required[] = {TAG_MODEL, TAG_STATE, TAG_ADAM, TAG_HIDDEN, TAG_HISTORY};
	rl_trainer_state ts;
	uint32_t	nsections,
				i,
				seen = 0;
	int			seen_best = 0,
				seen_precision = 0;
	size_t		off = HEADER_BYTES,
				end;
	rl_status	st;

	if (len < HEADER_BYTES + 4 || memcmp(data, RL_CHECKPOINT_MAGIC, 8) != 0)
		return rl_error(r->env, RL_ERR_FORMAT, "not an rnnlm checkpoint");
	if (rl_get_u32(data + 8) != RL_CHECKPOINT_VERSION)
		return rl_error(r->env, RL_ERR_FORMAT, "unsupported checkpoint version %u",
						rl_get_u32(data + 8));
	end = len - 4;
	if (rl_crc32(data, end) != rl_get_u32(data + end))
		return rl_error(r->env, RL_ERR_FORMAT, "checkpoint checksum mismatch");
	rl_trainer_view(r->tr, &ts);
	nsections = rl_get_u32(data + 12);
	if (nsections > 64)
		return rl_error(r->env, RL_ERR_FORMAT, "too many checkpoint sections");
	if ((st = check_run_sections(r, data, end, nsections)) != RL_OK)
		return st;
	/* the history section is read after the state, whose epoch it must match */
	for (i = 0; i < nsections; i++)
	{
		uint32_t	tag;
		uint64_t	slen;
		reader		rd;
		int			k;

		if (end - off < SECTION_HEAD)
			return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint is truncated");
		tag = rl_get_u32(data + off);
		slen = rl_get_u64(data + off + 4);
		off += SECTION_HEAD;
		if (slen > end - off)
			return rl_error(r->env, RL_ERR_FORMAT, "a checkpoint section runs past the end");
		for (k = 0; k < 5; k++)
			if (tag == required[k])
			{
				if (seen & (1u << k))
					return rl_error(r->env, RL_ERR_FORMAT, "a checkpoint section appears twice");
				if (tag == TAG_HISTORY && !(seen & 2u))
					return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint's history comes before its state");
				seen |= 1u << k;
			}
		seen_best |= tag == TAG_BEST;
		seen_precision |= tag == TAG_PRECISION;
		rd.p = data + off;
		rd.left = (size_t) slen;
		st = read_section(r, tag, &rd, &ts);
		if (st != RL_OK)
			return st;
		off += (size_t) slen;
	}
	if (off != end)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint has trailing bytes");
	if (!seen_precision && r->o.precision != RL_PREC_FP32)
		return rl_error(r->env, RL_ERR_FORMAT,
						"the checkpoint was made with precision fp32, this run is %s",
						rl_precision_name(r->o.precision));
	if (seen != 0x1Fu || (r->best != NULL) != seen_best)
		return rl_error(r->env, RL_ERR_FORMAT, "the checkpoint lacks a required section");
	return RL_OK;
}
