/*
 * tokenizer.c
 *		The tokenizers, as one table of operations; the vocabulary; a table
 *		of distinct strings (rl_strtab); and the builder that streams
 *		training documents in before the vocabulary is known.
 *
 * word: words between white space; char: one token per code point; bpe:
 * byte-level byte-pair encoding (bpe.c).  How text is cut into units under
 * a model's rules is text.c.  Everything else (the SQL layer, the model
 * file) asks the row of rl_tokenizer() rather than testing the kind.
 *
 * The builder gives each distinct unit (word, code point, bpe piece) a
 * provisional id at first sight and stores the stream of provisional ids;
 * when the documents are all in, the validation documents are split off,
 * the tokenizer learns its vocabulary from the training documents' units,
 * each distinct unit is encoded once, and the stream is rewritten as
 * token ids.
 */
#include "rnnlm_core.h"

#include <stdlib.h>
#include <string.h>

#define PROV_EOD	(-1)

struct rl_builder
{
	rl_env	   *env;
	rl_config	cfg;			/* the tokenizer and its text rules */
	rl_strtab	units;			/* distinct units, in first-seen order */
	/* the stream of provisional ids, PROV_EOD between documents */
	int32_t    *ids;
	size_t		nids,
				ids_cap;
	size_t	   *doc_end;		/* index just past each document's EOD */
	size_t		ndocs,
				docs_cap;
	rl_status	err;
};

/* Names of the cells, as used in SQL and the catalog. */
const char *
rl_cell_name(rl_cell_kind cell)
{
	switch (cell)
	{
		case RL_CELL_RNN:
			return "rnn";
		case RL_CELL_LSTM:
			return "lstm";
		case RL_CELL_GRU:
			return "gru";
	}
	return "?";
}

static rl_status rank_learn(rl_env *env, const rl_unit_count *units, int32_t nunits,
							int32_t max_vocab, rl_vocab **out);

/* word and char: a unit is one token, looked up (or <unk>). */
static size_t
lookup_encode(const rl_vocab *v, const char *unit, size_t len, int32_t *ids)
{
	ids[0] = rl_vocab_lookup(v, unit, len);
	return 1;
}

/* The tokens' texts back to back, with a space between them when spaced. */
static size_t
decode_tokens(const rl_vocab *v, const int32_t *ids, size_t n, char *out, int spaced)
{
	size_t		i,
				k = 0;

	for (i = 0; i < n; i++)
	{
		size_t		len;
		const char *t = rl_vocab_token(v, ids[i], &len);

		if (t == NULL)
			continue;
		if (spaced && k > 0)
			out[k++] = ' ';
		memcpy(out + k, t, len);
		k += len;
	}
	return k;
}

/* word: the tokens' texts joined by single spaces. */
static size_t
spaced_decode(const rl_vocab *v, const int32_t *ids, size_t n, char *out)
{
	return decode_tokens(v, ids, n, out, 1);
}

/* char and bpe: the tokens' texts (bpe: bytes) back to back. */
static size_t
joined_decode(const rl_vocab *v, const int32_t *ids, size_t n, char *out)
{
	return decode_tokens(v, ids, n, out, 0);
}

/* word and char: a token is shown as its text. */
static size_t
text_describe(const rl_vocab *v, int32_t id, char *buf)
{
	size_t		len;
	const char *t = rl_vocab_token(v, id, &len);

	if (t == NULL)
		return 0;
	memcpy(buf, t, len);
	buf[len] = '\0';
	return len;
}

/* bpe: the merges, in the order learned: u32 count, then (u32 a, u32 b) each. */
static size_t
merges_size(const rl_vocab *v)
{
	return 4 + 8 * (size_t) v->nmerges;
}

/* Writes the merges section. */
static void
merges_write(const rl_vocab *v, uint8_t *p)
{
	int32_t		r;

	rl_put_u32(p, (uint32_t) v->nmerges);
	for (r = 0; r < 2 * v->nmerges; r++)
		rl_put_u32(p + 4 + 4 * (size_t) r, (uint32_t) v->merges[r]);
}

/* Reads and checks the merges section into the vocabulary. */
static rl_status
merges_read(rl_env *env, rl_vocab *v, const uint8_t *p, size_t len)
{
	uint32_t	n;
	int32_t    *pairs;
	uint32_t	r;
	rl_status	st;

	if (len < 4)
		return rl_error(env, RL_ERR_FORMAT, "the bpe merges section is truncated");
	n = rl_get_u32(p);
	if (n > (uint32_t) v->size || len != 4 + 8 * (size_t) n)
		return rl_error(env, RL_ERR_FORMAT, "the bpe merges section has the wrong size");
	pairs = rl_alloc_array(env, 2 * (size_t) n + 1, sizeof(int32_t));
	if (pairs == NULL)
		return env->status;
	for (r = 0; r < 2 * n; r++)
	{
		uint32_t	id = rl_get_u32(p + 4 + 4 * (size_t) r);

		pairs[r] = id > (uint32_t) INT32_MAX ? -1 : (int32_t) id;
	}
	st = rl_bpe_index(env, v, pairs, (int32_t) n);
	rl_free(env, pairs);
	return st;
}

/* The tokenizers, indexed by rl_tokenizer_kind. */
static const rl_tokenizer_ops tokenizers[RL_NUM_TOKENIZERS] = {
	[RL_TOK_WORD] = {
		.name = "word", .default_max_vocab = 10000, .default_lowercase = 1,
		.has_unk = 1,
		.learn = rank_learn, .encode = lookup_encode, .decode = spaced_decode,
		.describe = text_describe,
	},
	[RL_TOK_CHAR] = {
		.name = "char", .default_max_vocab = 0, .default_lowercase = 0,
		.has_unk = 1,
		.learn = rank_learn, .encode = lookup_encode, .decode = joined_decode,
		.describe = text_describe,
	},
	[RL_TOK_BPE] = {
		.name = "bpe", .default_max_vocab = 8000, .default_lowercase = 0,
		.has_unk = 0,
		.learn = rl_bpe_learn, .encode = rl_bpe_encode, .decode = joined_decode,
		.describe = rl_bpe_describe,
		.section_tag = RL_TAG('M', 'E', 'R', 'G'),
		.section_size = merges_size, .section_write = merges_write,
		.section_read = merges_read,
	},
};

/* The row of a tokenizer, or NULL for an unknown kind. */
const rl_tokenizer_ops *
rl_tokenizer(rl_tokenizer_kind kind)
{
	if ((unsigned) kind >= RL_NUM_TOKENIZERS)
		return NULL;
	return &tokenizers[kind];
}

/* Names of the tokenizers. */
const char *
rl_tokenizer_name(rl_tokenizer_kind kind)
{
	const rl_tokenizer_ops *t = rl_tokenizer(kind);

	return t ? t->name : "?";
}
/* FNV-1a hash of a token's bytes (the vocabulary's and bpe learning's hashes). */
uint32_t
rl_hash_bytes(const char *s, size_t len)
{
	uint32_t	h = 2166136261u;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		h ^= (unsigned char) s[i];
		h *= 16777619u;
	}
	return h;
}

/* ---------------- vocabulary ---------------- */

/* Builds a vocabulary from size tokens given as lengths plus concatenated bytes. */
rl_status
rl_vocab_create(rl_env *env, int32_t size, const uint32_t *lengths,
				const char *strings, rl_vocab **out)
{
	rl_vocab   *v;
	size_t		total = 0;
	int32_t		i;

	*out = NULL;
	if (size < RL_NUM_SPECIAL + 1 || size > RL_MAX_VOCAB)
		return rl_error(env, RL_ERR_INVALID, "vocabulary size %d is out of range", size);
	for (i = 0; i < size; i++)
	{
		if (lengths[i] == 0 || lengths[i] > RL_MAX_TOKEN_BYTES)
			return rl_error(env, RL_ERR_FORMAT, "vocabulary entry %d has invalid length %u",
							i, lengths[i]);
		total += lengths[i];
	}
	v = rl_alloc0(env, sizeof(rl_vocab));
	if (v == NULL)
		return env->status;
	v->size = size;
	v->offsets = rl_alloc_array(env, (size_t) size + 1, sizeof(uint32_t));
	v->strings = rl_alloc(env, total + 1);
	v->nslots = 16;
	while (v->nslots < (uint32_t) size * 2)
		v->nslots *= 2;
	v->slots = rl_alloc_array(env, v->nslots, sizeof(int32_t));
	if (!v->offsets || !v->strings || !v->slots)
	{
		rl_vocab_free(env, v);
		return env->status;
	}
	memcpy(v->strings, strings, total);
	v->strings[total] = '\0';
	memset(v->slots, 0xFF, v->nslots * sizeof(int32_t));
	total = 0;
	for (i = 0; i < size; i++)
	{
		uint32_t	h;

		v->offsets[i] = (uint32_t) total;
		h = rl_hash_bytes(v->strings + total, lengths[i]) & (v->nslots - 1);
		while (v->slots[h] >= 0)
		{
			int32_t		j = v->slots[h];

			if (v->offsets[j + 1] - v->offsets[j] == lengths[i] &&
				memcmp(v->strings + v->offsets[j], v->strings + total, lengths[i]) == 0)
			{
				rl_vocab_free(env, v);
				return rl_error(env, RL_ERR_FORMAT, "vocabulary entry %d is a duplicate", i);
			}
			h = (h + 1) & (v->nslots - 1);
		}
		v->offsets[i + 1] = (uint32_t) (total + lengths[i]);
		v->slots[h] = i;
		total += lengths[i];
	}
	v->offsets[size] = (uint32_t) total;
	*out = v;
	return RL_OK;
}

/* The id of a token, or RL_TOKEN_UNK. */
int32_t
rl_vocab_lookup(const rl_vocab *v, const char *tok, size_t len)
{
	uint32_t	h = rl_hash_bytes(tok, len) & (v->nslots - 1);

	while (v->slots[h] >= 0)
	{
		int32_t		j = v->slots[h];

		if (v->offsets[j + 1] - v->offsets[j] == len &&
			memcmp(v->strings + v->offsets[j], tok, len) == 0)
			return j;
		h = (h + 1) & (v->nslots - 1);
	}
	return RL_TOKEN_UNK;
}

/* The text of token id (not NUL-terminated), or NULL if out of range. */
const char *
rl_vocab_token(const rl_vocab *v, int32_t id, size_t *len)
{
	if (id < 0 || id >= v->size)
		return NULL;
	*len = v->offsets[id + 1] - v->offsets[id];
	return v->strings + v->offsets[id];
}

/* Frees a vocabulary. */
void
rl_vocab_free(rl_env *env, rl_vocab *v)
{
	if (v == NULL)
		return;
	rl_free(env, v->offsets);
	rl_free(env, v->strings);
	rl_free(env, v->slots);
	rl_free(env, v->merges);
	rl_free(env, v->merge_into);
	rl_free(env, v->merge_slots);
	rl_free(env, v);
}

/* ---------------- tokenizing with a fixed vocabulary ---------------- */

typedef struct tokenize_ctx
{
	rl_env	   *env;
	const rl_tokenizer_ops *ops;
	const rl_vocab *v;
	int32_t    *ids;
	size_t		n,
				cap;
} tokenize_ctx;

/* emit callback: appends the unit's ids. */
static int
tokenize_emit(void *ud, const char *tok, size_t len)
{
	tokenize_ctx *t = ud;
	void	   *p = t->ids;

	if (!rl_grow(t->env, &p, &t->cap, t->n + len, sizeof(int32_t)))
		return 0;
	t->ids = p;
	t->n += t->ops->encode(t->v, tok, len, t->ids + t->n);
	return 1;
}

/* Tokenizes text with a model's vocabulary and rules. */
rl_status
rl_tokenize(rl_env *env, const rl_config *c, const rl_vocab *v,
			const char *text, size_t len, int32_t **ids, size_t *n)
{
	tokenize_ctx t = {env, rl_tokenizer(c->tokenizer), v, NULL, 0, 0};

	if (t.ops == NULL)
		return rl_error(env, RL_ERR_INVALID, "unknown tokenizer %d", (int) c->tokenizer);
	if (!rl_split(env, c, text, len, tokenize_emit, &t))
	{
		rl_free(env, t.ids);
		return env->status;
	}
	if (t.ids == NULL)
	{
		t.ids = rl_alloc(env, sizeof(int32_t));
		if (t.ids == NULL)
			return env->status;
	}
	*ids = t.ids;
	*n = t.n;
	return RL_OK;
}

/*
 * The text of ids under the tokenizer's decode, then cleaned to whole UTF-8
 * (bpe tokens are bytes: a character cut off at the end is dropped, a stray
 * byte becomes U+FFFD).
 */
rl_status
rl_detokenize(rl_env *env, const rl_config *c, const rl_vocab *v,
			  const int32_t *ids, size_t n, char **out, size_t *len)
{
	const rl_tokenizer_ops *ops = rl_tokenizer(c->tokenizer);
	size_t		raw_cap,
				raw_len;
	char	   *raw,
			   *clean;

	*out = NULL;
	if (ops == NULL)
		return rl_error(env, RL_ERR_INVALID, "unknown tokenizer %d", (int) c->tokenizer);
	if (rl_mul_overflow(n, RL_MAX_TOKEN_BYTES + 1, &raw_cap))
		return rl_error(env, RL_ERR_INVALID, "too many tokens to decode");
	raw = rl_alloc(env, raw_cap + 1);
	if (raw == NULL)
		return env->status;
	raw_len = ops->decode(v, ids, n, raw);
	clean = rl_alloc(env, 3 * raw_len + 1);
	if (clean == NULL)
	{
		rl_free(env, raw);
		return env->status;
	}
	*len = rl_utf8_clean(raw, raw_len, clean);
	rl_free(env, raw);
	*out = clean;
	return RL_OK;
}

/* ---------------- the builder ---------------- */

/* ---------------- distinct strings ---------------- */

/* An empty table of distinct strings. */
rl_status
rl_strtab_init(rl_strtab *t, rl_env *env)
{
	memset(t, 0, sizeof(*t));
	t->env = env;
	t->nslots = 1024;
	t->slots = rl_alloc_array(env, t->nslots, sizeof(int32_t));
	if (t->slots == NULL)
		return env->status;
	memset(t->slots, 0xFF, t->nslots * sizeof(int32_t));
	return RL_OK;
}

/* Doubles the table's slots. */
static int
strtab_rehash(rl_strtab *t)
{
	uint32_t	nslots = t->nslots * 2;
	int32_t    *slots = rl_alloc_array(t->env, nslots, sizeof(int32_t));
	int32_t		i;

	if (slots == NULL)
		return 0;
	memset(slots, 0xFF, nslots * sizeof(int32_t));
	for (i = 0; i < t->n; i++)
	{
		uint32_t	h = rl_hash_bytes(t->str + t->off[i], t->off[i + 1] - t->off[i]) & (nslots - 1);

		while (slots[h] >= 0)
			h = (h + 1) & (nslots - 1);
		slots[h] = i;
	}
	rl_free(t->env, t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 1;
}

/*
 * The id of a string (0, 1, ... in first-seen order), added if new; -1 on
 * an error (the env's), which what names when there would be more than max.
 */
int32_t
rl_strtab_intern(rl_strtab *t, const char *s, size_t len, int32_t max, const char *what)
{
	uint32_t	h = rl_hash_bytes(s, len) & (t->nslots - 1);
	int32_t		id;
	void	   *p;

	while ((id = t->slots[h]) >= 0)
	{
		if (t->off[id + 1] - t->off[id] == len && memcmp(t->str + t->off[id], s, len) == 0)
			return id;
		h = (h + 1) & (t->nslots - 1);
	}
	if (t->n >= max || t->str_len + len > UINT32_MAX)
	{
		rl_error(t->env, RL_ERR_DATA, "too many distinct %s", what);
		return -1;
	}
	p = t->str;
	if (!rl_grow(t->env, &p, &t->str_cap, t->str_len + len, 1))
		return -1;
	t->str = p;
	p = t->off;
	if (!rl_grow(t->env, &p, &t->off_cap, (size_t) t->n + 2, sizeof(uint32_t)))
		return -1;
	t->off = p;
	id = t->n++;
	t->off[id] = (uint32_t) t->str_len;
	memcpy(t->str + t->str_len, s, len);
	t->str_len += len;
	t->off[id + 1] = (uint32_t) t->str_len;
	t->slots[h] = id;
	if ((uint32_t) t->n * 2 > t->nslots && !strtab_rehash(t))
		return -1;
	return id;
}

/* Frees what the table holds. */
void
rl_strtab_free(rl_strtab *t)
{
	rl_free(t->env, t->str);
	rl_free(t->env, t->off);
	rl_free(t->env, t->slots);
	memset(t, 0, sizeof(*t));
}

/* ---------------- the builder ---------------- */

/* Starts a builder for training documents. */
rl_status
rl_builder_create(rl_env *env, const rl_config *c, rl_builder **out)
{
	rl_builder *b;

	*out = NULL;
	if (rl_tokenizer(c->tokenizer) == NULL)
		return rl_error(env, RL_ERR_INVALID, "unknown tokenizer %d", (int) c->tokenizer);
	b = rl_alloc0(env, sizeof(rl_builder));
	if (b == NULL)
		return env->status;
	b->env = env;
	b->cfg = *c;
	if (rl_strtab_init(&b->units, env) != RL_OK)
	{
		rl_free(env, b);
		return env->status;
	}
	*out = b;
	return RL_OK;
}

/* Appends a provisional id to the stream. */
static int
builder_push(rl_builder *b, int32_t id)
{
	void	   *p = b->ids;

	if (!rl_grow(b->env, &p, &b->ids_cap, b->nids + 1, sizeof(int32_t)))
		return 0;
	b->ids = p;
	b->ids[b->nids++] = id;
	return 1;
}

/* emit callback: finds or adds the token and appends its provisional id. */
static int
builder_emit(void *ud, const char *tok, size_t len)
{
	rl_builder *b = ud;
	int32_t		id = rl_strtab_intern(&b->units, tok, len, RL_MAX_VOCAB * 8,
									  "tokens in the training data");

	return id >= 0 && builder_push(b, id);
}

/* Adds one document. */
rl_status
rl_builder_add(rl_builder *b, const char *text, size_t len)
{
	void	   *p;

	if (b->nids == 0 && !builder_push(b, PROV_EOD))
		return b->env->status;
	if (!rl_split(b->env, &b->cfg, text, len, builder_emit, b))
		return b->env->status;
	if (!builder_push(b, PROV_EOD))
		return b->env->status;
	p = b->doc_end;
	if (!rl_grow(b->env, &p, &b->docs_cap, b->ndocs + 1, sizeof(size_t)))
		return b->env->status;
	b->doc_end = p;
	b->doc_end[b->ndocs++] = b->nids;
	return RL_OK;
}

/* Documents added so far. */
size_t
rl_builder_documents(const rl_builder *b)
{
	return b->ndocs;
}

/* Tokens (end-of-document markers included) added so far. */
size_t
rl_builder_tokens(const rl_builder *b)
{
	return b->nids;
}

typedef struct rank_entry
{
	uint64_t	count;
	int32_t		id;
} rank_entry;

/* Orders by count descending, then first-seen order. */
static int
rank_cmp(const void *a, const void *b)
{
	const rank_entry *x = a,
			   *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* word and char: the max_vocab most frequent units (0 = all), ties in first-seen order. */
static rl_status
rank_learn(rl_env *env, const rl_unit_count *units, int32_t nunits,
		   int32_t max_vocab, rl_vocab **out)
{
	rank_entry *rank = rl_alloc_array(env, (size_t) nunits + 1, sizeof(rank_entry));
	uint32_t   *lengths = NULL;
	char	   *strings = NULL;
	size_t		bytes = 10,
				pos = 10;
	int32_t		nkeep = 0,
				k;
	rl_status	st;

	*out = NULL;
	if (rank == NULL)
		return env->status;
	for (k = 0; k < nunits; k++)
	{
		rank[k].id = k;
		rank[k].count = units[k].count;
		bytes += units[k].len;
	}
	qsort(rank, (size_t) nunits, sizeof(rank_entry), rank_cmp);
	while (nkeep < nunits && rank[nkeep].count > 0 &&
		   (max_vocab <= 0 || nkeep < max_vocab) &&
		   nkeep < RL_MAX_VOCAB - RL_NUM_SPECIAL)
		nkeep++;
	if (nkeep == 0)
	{
		rl_free(env, rank);
		return rl_error(env, RL_ERR_DATA, "the training documents contain no tokens");
	}
	lengths = rl_alloc_array(env, (size_t) nkeep + RL_NUM_SPECIAL, sizeof(uint32_t));
	strings = rl_alloc(env, bytes);
	if (!lengths || !strings)
	{
		st = env->status;
		goto done;
	}
	memcpy(strings, "<eod><unk>", 10);
	lengths[RL_TOKEN_EOD] = 5;
	lengths[RL_TOKEN_UNK] = 5;
	for (k = 0; k < nkeep; k++)
	{
		const rl_unit_count *u = &units[rank[k].id];

		lengths[RL_NUM_SPECIAL + k] = u->len;
		memcpy(strings + pos, u->text, u->len);
		pos += u->len;
	}
	st = rl_vocab_create(env, nkeep + RL_NUM_SPECIAL, lengths, strings, out);
done:
	rl_free(env, rank);
	rl_free(env, lengths);
	rl_free(env, strings);
	return st;
}

/* The distinct units with their counts over the training documents (the stream before split). */
static rl_unit_count *
builder_counts(rl_builder *b, size_t split)
{
	rl_unit_count *u = rl_alloc_array(b->env, (size_t) b->units.n + 1, sizeof(rl_unit_count));
	size_t		i;
	int32_t		k;

	if (u == NULL)
		return NULL;
	for (k = 0; k < b->units.n; k++)
	{
		u[k].text = b->units.str + b->units.off[k];
		u[k].len = b->units.off[k + 1] - b->units.off[k];
		u[k].count = 0;
	}
	for (i = 0; i < split; i++)
		if (b->ids[i] >= 0)
			u[b->ids[i]].count++;
	return u;
}

/* The token ids of every distinct unit: unit k is ids[off[k] .. off[k + 1]). */
typedef struct unit_ids
{
	size_t	   *off;
	int32_t    *ids;
} unit_ids;

/* Encodes every distinct unit once with the vocabulary. */
static int
encode_units(rl_builder *b, const rl_vocab *v, unit_ids *e)
{
	const rl_tokenizer_ops *ops = rl_tokenizer(b->cfg.tokenizer);
	size_t		total = 0;
	int32_t		k;

	e->off = rl_alloc_array(b->env, (size_t) b->units.n + 1, sizeof(size_t));
	e->ids = rl_alloc_array(b->env, b->units.str_len + 1, sizeof(int32_t));
	if (!e->off || !e->ids)
		return 0;
	for (k = 0; k < b->units.n; k++)
	{
		e->off[k] = total;
		total += ops->encode(v, b->units.str + b->units.off[k], b->units.off[k + 1] - b->units.off[k], e->ids + total);
		if ((k & 4095) == 0 && !rl_tick(b->env))
			return 0;
	}
	e->off[b->units.n] = total;
	return 1;
}

/* Rewrites a slice of the provisional stream as token ids; prefix_eod adds a leading EOD. */
static int32_t *
builder_map(rl_builder *b, const unit_ids *e, size_t from, size_t to,
			int prefix_eod, size_t *n)
{
	size_t		len = prefix_eod ? 1 : 0,
				i,
				k = 0;
	int32_t    *out;

	for (i = from; i < to; i++)
		len += b->ids[i] == PROV_EOD ? 1 : e->off[b->ids[i] + 1] - e->off[b->ids[i]];
	out = rl_alloc_array(b->env, len ? len : 1, sizeof(int32_t));
	if (out == NULL)
		return NULL;
	if (prefix_eod)
		out[k++] = RL_TOKEN_EOD;
	for (i = from; i < to; i++)
	{
		int32_t		id = b->ids[i];

		if (id == PROV_EOD)
			out[k++] = RL_TOKEN_EOD;
		else
		{
			size_t		m = e->off[id + 1] - e->off[id];

			memcpy(out + k, e->ids + e->off[id], m * sizeof(int32_t));
			k += m;
		}
	}
	*n = len;
	return out;
}

/* The id streams of the training and validation documents under the vocabulary. */
static rl_status
builder_streams(rl_builder *b, size_t split, size_t val_docs, const rl_vocab *vocab,
				int32_t **train, size_t *ntrain, int32_t **val, size_t *nval)
{
	unit_ids	e = {NULL, NULL};
	rl_status	st = RL_OK;

	if (!encode_units(b, vocab, &e))
		st = b->env->status;
	else
	{
		*train = builder_map(b, &e, 0, split, 0, ntrain);
		if (*train != NULL && val_docs > 0)
			*val = builder_map(b, &e, split, b->nids, 1, nval);
		if (*train == NULL || (val_docs > 0 && *val == NULL))
		{
			rl_free(b->env, *train);
			*train = NULL;
			st = b->env->status;
		}
	}
	rl_free(b->env, e.off);
	rl_free(b->env, e.ids);
	return st;
}

/* Where the training documents end in the stream, or an error if none are left. */
static rl_status
builder_split(rl_builder *b, size_t val_docs, size_t *split)
{
	if (val_docs >= b->ndocs)
		return rl_error(b->env, RL_ERR_DATA,
						"no training documents left after holding out %zu for validation", val_docs);
	*split = b->doc_end[b->ndocs - val_docs - 1];
	return RL_OK;
}

/* Splits off validation documents, learns the vocabulary, rewrites the streams. */
rl_status
rl_builder_finish(rl_builder *b, size_t val_docs, int32_t max_vocab,
				  rl_vocab **vocab, int32_t **train, size_t *ntrain,
				  int32_t **val, size_t *nval)
{
	rl_env	   *env = b->env;
	rl_unit_count *counts;
	size_t		split = 0;
	rl_status	st;

	*vocab = NULL;
	*train = *val = NULL;
	*ntrain = *nval = 0;
	if ((st = builder_split(b, val_docs, &split)) != RL_OK)
		return st;
	counts = builder_counts(b, split);
	if (counts == NULL)
		return env->status;
	if (b->units.n == 0 || split <= b->ndocs - val_docs + 1)
	{
		rl_free(env, counts);
		return rl_error(env, RL_ERR_DATA, "the training documents contain no tokens");
	}
	st = rl_tokenizer(b->cfg.tokenizer)->learn(env, counts, b->units.n, max_vocab, vocab);
	rl_free(env, counts);
	if (st == RL_OK)
		st = builder_streams(b, split, val_docs, *vocab, train, ntrain, val, nval);
	if (st != RL_OK)
	{
		rl_vocab_free(env, *vocab);
		*vocab = NULL;
	}
	return st;
}

/*
 * Like rl_builder_finish, but with a vocabulary that is given (the model a
 * new one is fine-tuned from): every unit outside it becomes RL_TOKEN_UNK.
 */
rl_status
rl_builder_finish_vocab(rl_builder *b, size_t val_docs, const rl_vocab *vocab,
						int32_t **train, size_t *ntrain, int32_t **val, size_t *nval)
{
	size_t		split = 0;
	rl_status	st;

	*train = *val = NULL;
	*ntrain = *nval = 0;
	if ((st = builder_split(b, val_docs, &split)) != RL_OK)
		return st;
	return builder_streams(b, split, val_docs, vocab, train, ntrain, val, nval);
}

/*
 * The distinct units of the training documents with their counts, for a
 * vocabulary learned elsewhere from several builders' counts (federated
 * training); the caller frees the array, whose texts point into b.
 */
rl_status
rl_builder_unit_counts(rl_builder *b, size_t val_docs, rl_unit_count **units, int32_t *n)
{
	size_t		split = 0;
	rl_status	st;

	*units = NULL;
	*n = 0;
	if ((st = builder_split(b, val_docs, &split)) != RL_OK)
		return st;
	if ((*units = builder_counts(b, split)) == NULL)
		return b->env->status;
	*n = b->units.n;
	return RL_OK;
}

/* Frees a builder and everything it holds. */
void
rl_builder_free(rl_builder *b)
{
	if (b == NULL)
		return;
	rl_strtab_free(&b->units);
	rl_free(b->env, b->ids);
	rl_free(b->env, b->doc_end);
	rl_free(b->env, b);
}
