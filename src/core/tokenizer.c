/*
 * tokenizer.c
 *		UTF-8 text to token ids: the word and char tokenizers, the vocabulary
 *		and the builder that streams training documents in before the
 *		vocabulary is known.
 *
 * word: case folded (when asked) for Latin, Greek and Cyrillic letters,
 * punctuation removed, split on Unicode whitespace.  char: one token per
 * code point.  Invalid UTF-8 bytes become U+FFFD, so a token is never a byte
 * fragment.
 *
 * The builder gives each distinct token a provisional id at first sight and
 * stores the stream of provisional ids; when the documents are all in, the
 * validation documents are split off, training-set frequencies pick the
 * vocabulary (ties in first-seen order) and the stream is renumbered.
 */
#include "rnnlm_core.h"

#include <stdlib.h>
#include <string.h>

#define PROV_EOD	(-1)

struct rl_builder
{
	rl_env	   *env;
	rl_tokenizer_kind kind;
	int			lowercase;
	/* distinct tokens, in first-seen order */
	char	   *str;
	size_t		str_len,
				str_cap;
	uint32_t   *off;
	size_t		off_cap;
	int32_t		ndistinct;
	int32_t    *slots;
	uint32_t	nslots;
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

/* Names of the tokenizers. */
const char *
rl_tokenizer_name(rl_tokenizer_kind kind)
{
	return kind == RL_TOK_CHAR ? "char" : "word";
}

/* Decodes one code point; invalid input yields U+FFFD and consumes one byte. */
static size_t
utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t	c = s[0];
	size_t		n,
				i;
	uint32_t	min;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if ((c & 0xE0) == 0xC0)
	{
		n = 2;
		c &= 0x1F;
		min = 0x80;
	}
	else if ((c & 0xF0) == 0xE0)
	{
		n = 3;
		c &= 0x0F;
		min = 0x800;
	}
	else if ((c & 0xF8) == 0xF0)
	{
		n = 4;
		c &= 0x07;
		min = 0x10000;
	}
	else
		goto bad;
	if (n > len)
		goto bad;
	for (i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			goto bad;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		goto bad;
	*cp = c;
	return n;
bad:
	*cp = 0xFFFD;
	return 1;
}

/* Encodes a code point as UTF-8 into buf (4 bytes); returns the length. */
static size_t
utf8_put(uint32_t c, char *buf)
{
	if (c < 0x80)
	{
		buf[0] = (char) c;
		return 1;
	}
	if (c < 0x800)
	{
		buf[0] = (char) (0xC0 | (c >> 6));
		buf[1] = (char) (0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000)
	{
		buf[0] = (char) (0xE0 | (c >> 12));
		buf[1] = (char) (0x80 | ((c >> 6) & 0x3F));
		buf[2] = (char) (0x80 | (c & 0x3F));
		return 3;
	}
	buf[0] = (char) (0xF0 | (c >> 18));
	buf[1] = (char) (0x80 | ((c >> 12) & 0x3F));
	buf[2] = (char) (0x80 | ((c >> 6) & 0x3F));
	buf[3] = (char) (0x80 | (c & 0x3F));
	return 4;
}

/* Simple case folding for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic. */
static uint32_t
fold_case(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c < 0xC0)
		return c;
	if (c <= 0xDE && c != 0xD7)
		return c + 32;
	if (c == 0x130)				/* capital I with dot above */
		return 'i';
	if (c >= 0x100 && c <= 0x137 && (c & 1) == 0)
		return c + 1;
	if (c >= 0x139 && c <= 0x148 && (c & 1) == 1)
		return c + 1;
	if (c >= 0x14A && c <= 0x177 && (c & 1) == 0)
		return c + 1;
	if (c == 0x178)
		return 0xFF;
	if ((c == 0x179 || c == 0x17B || c == 0x17D))
		return c + 1;
	if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	if (c >= 0x410 && c <= 0x42F)
		return c + 32;
	return c;
}

/* Unicode white space. */
static int
is_space(uint32_t c)
{
	return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 ||
		c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
		c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Punctuation and symbols the word tokenizer removes. */
static int
is_punct(uint32_t c)
{
	if (c < 0x80)
		return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
			(c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
	if (c >= 0xA1 && c <= 0xBF)
		return c != 0xAA && c != 0xB2 && c != 0xB3 && c != 0xB5 &&
			c != 0xB9 && c != 0xBA && c != 0xBC && c != 0xBD && c != 0xBE;
	if (c == 0xD7 || c == 0xF7)
		return 1;
	if ((c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E))
		return 1;
	if ((c >= 0x3001 && c <= 0x3003) || (c >= 0x3008 && c <= 0x3011) ||
		(c >= 0x3014 && c <= 0x301F))
		return 1;
	if ((c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
		(c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65))
		return 1;
	return 0;
}

/* Splits text into normalised tokens, calling emit for each; 0 if emit stopped. */
int
rl_split(rl_tokenizer_kind kind, int lowercase, const char *text, size_t len,
		 rl_token_fn emit, void *ud)
{
	const unsigned char *s = (const unsigned char *) text;
	char		word[RL_MAX_TOKEN_BYTES + 4];
	size_t		wlen = 0;
	size_t		pos = 0;

	while (pos < len)
	{
		uint32_t	c;
		char		buf[4];
		size_t		n;

		pos += utf8_next(s + pos, len - pos, &c);
		if (lowercase)
			c = fold_case(c);
		if (kind == RL_TOK_CHAR)
		{
			n = utf8_put(c, buf);
			if (!emit(ud, buf, n))
				return 0;
			continue;
		}
		if (is_space(c))
		{
			if (wlen > 0 && !emit(ud, word, wlen))
				return 0;
			wlen = 0;
			continue;
		}
		if (is_punct(c))
			continue;
		n = utf8_put(c, buf);
		if (wlen + n <= RL_MAX_TOKEN_BYTES)
		{
			memcpy(word + wlen, buf, n);
			wlen += n;
		}
	}
	if (wlen > 0 && !emit(ud, word, wlen))
		return 0;
	return 1;
}

/* FNV-1a hash of a token. */
static uint32_t
hash_token(const char *s, size_t len)
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
		h = hash_token(v->strings + total, lengths[i]) & (v->nslots - 1);
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
	uint32_t	h = hash_token(tok, len) & (v->nslots - 1);

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
	rl_free(env, v);
}

/* ---------------- tokenizing with a fixed vocabulary ---------------- */

typedef struct tokenize_ctx
{
	rl_env	   *env;
	const rl_vocab *v;
	int32_t    *ids;
	size_t		n,
				cap;
} tokenize_ctx;

/* emit callback: appends the token's id. */
static int
tokenize_emit(void *ud, const char *tok, size_t len)
{
	tokenize_ctx *t = ud;
	void	   *p = t->ids;

	if (!rl_grow(t->env, &p, &t->cap, t->n + 1, sizeof(int32_t)))
		return 0;
	t->ids = p;
	t->ids[t->n++] = rl_vocab_lookup(t->v, tok, len);
	return 1;
}

/* Tokenizes text against a vocabulary. */
rl_status
rl_tokenize(rl_env *env, const rl_vocab *v, rl_tokenizer_kind kind, int lowercase,
			const char *text, size_t len, int32_t **ids, size_t *n)
{
	tokenize_ctx t = {env, v, NULL, 0, 0};

	if (!rl_split(kind, lowercase, text, len, tokenize_emit, &t))
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

/* ---------------- the builder ---------------- */

/* Starts a builder for training documents. */
rl_status
rl_builder_create(rl_env *env, rl_tokenizer_kind kind, int lowercase, rl_builder **out)
{
	rl_builder *b = rl_alloc0(env, sizeof(rl_builder));

	*out = NULL;
	if (b == NULL)
		return env->status;
	b->env = env;
	b->kind = kind;
	b->lowercase = lowercase;
	b->nslots = 1024;
	b->slots = rl_alloc_array(env, b->nslots, sizeof(int32_t));
	if (b->slots == NULL)
	{
		rl_free(env, b);
		return env->status;
	}
	memset(b->slots, 0xFF, b->nslots * sizeof(int32_t));
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

/* Doubles the builder's hash table. */
static int
builder_rehash(rl_builder *b)
{
	uint32_t	nslots = b->nslots * 2;
	int32_t    *slots = rl_alloc_array(b->env, nslots, sizeof(int32_t));
	int32_t		i;

	if (slots == NULL)
		return 0;
	memset(slots, 0xFF, nslots * sizeof(int32_t));
	for (i = 0; i < b->ndistinct; i++)
	{
		uint32_t	h = hash_token(b->str + b->off[i], b->off[i + 1] - b->off[i]) & (nslots - 1);

		while (slots[h] >= 0)
			h = (h + 1) & (nslots - 1);
		slots[h] = i;
	}
	rl_free(b->env, b->slots);
	b->slots = slots;
	b->nslots = nslots;
	return 1;
}

/* emit callback: finds or adds the token and appends its provisional id. */
static int
builder_emit(void *ud, const char *tok, size_t len)
{
	rl_builder *b = ud;
	uint32_t	h = hash_token(tok, len) & (b->nslots - 1);
	int32_t		id;
	void	   *p;

	while ((id = b->slots[h]) >= 0)
	{
		if (b->off[id + 1] - b->off[id] == len &&
			memcmp(b->str + b->off[id], tok, len) == 0)
			return builder_push(b, id);
		h = (h + 1) & (b->nslots - 1);
	}
	if (b->ndistinct >= RL_MAX_VOCAB * 8 || b->str_len + len > UINT32_MAX)
	{
		rl_error(b->env, RL_ERR_DATA, "too many distinct tokens in the training data");
		return 0;
	}
	p = b->str;
	if (!rl_grow(b->env, &p, &b->str_cap, b->str_len + len, 1))
		return 0;
	b->str = p;
	p = b->off;
	if (!rl_grow(b->env, &p, &b->off_cap, (size_t) b->ndistinct + 2, sizeof(uint32_t)))
		return 0;
	b->off = p;
	id = b->ndistinct++;
	b->off[id] = (uint32_t) b->str_len;
	memcpy(b->str + b->str_len, tok, len);
	b->str_len += len;
	b->off[id + 1] = (uint32_t) b->str_len;
	b->slots[h] = id;
	if ((uint32_t) b->ndistinct * 2 > b->nslots && !builder_rehash(b))
		return 0;
	return builder_push(b, id);
}

/* Adds one document. */
rl_status
rl_builder_add(rl_builder *b, const char *text, size_t len)
{
	void	   *p;

	if (b->nids == 0 && !builder_push(b, PROV_EOD))
		return b->env->status;
	if (!rl_split(b->kind, b->lowercase, text, len, builder_emit, b))
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

/* Renumbers a slice of the provisional stream; prefix_eod adds a leading EOD. */
static int32_t *
builder_map(rl_builder *b, const int32_t *map, size_t from, size_t to,
			int prefix_eod, size_t *n)
{
	size_t		len = to - from + (prefix_eod ? 1 : 0);
	int32_t    *out = rl_alloc_array(b->env, len ? len : 1, sizeof(int32_t));
	size_t		i,
				k = 0;

	if (out == NULL)
		return NULL;
	if (prefix_eod)
		out[k++] = RL_TOKEN_EOD;
	for (i = from; i < to; i++)
		out[k++] = b->ids[i] == PROV_EOD ? RL_TOKEN_EOD : map[b->ids[i]];
	*n = len;
	return out;
}

/* Splits off validation documents, chooses the vocabulary, renumbers the streams. */
rl_status
rl_builder_finish(rl_builder *b, size_t val_docs, int32_t max_vocab,
				  rl_vocab **vocab, int32_t **train, size_t *ntrain,
				  int32_t **val, size_t *nval)
{
	rl_env	   *env = b->env;
	size_t		split,
				i;
	rank_entry *rank = NULL;
	int32_t    *map = NULL;
	uint32_t   *lengths = NULL;
	char	   *strings = NULL;
	int32_t		nkeep = 0,
				k;
	size_t		pos;
	rl_status	st = RL_OK;

	*vocab = NULL;
	*train = *val = NULL;
	*ntrain = *nval = 0;
	if (val_docs >= b->ndocs)
		return rl_error(env, RL_ERR_DATA, "no training documents left after holding out %zu for validation",
						val_docs);
	split = b->doc_end[b->ndocs - val_docs - 1];

	rank = rl_alloc_array(env, (size_t) b->ndistinct + 1, sizeof(rank_entry));
	map = rl_alloc_array(env, (size_t) b->ndistinct + 1, sizeof(int32_t));
	if (!rank || !map)
		goto fail;
	for (k = 0; k < b->ndistinct; k++)
		rank[k].id = k;
	for (i = 0; i < split; i++)
		if (b->ids[i] >= 0)
			rank[b->ids[i]].count++;
	qsort(rank, b->ndistinct, sizeof(rank_entry), rank_cmp);
	while (nkeep < b->ndistinct && rank[nkeep].count > 0 &&
		   (max_vocab <= 0 || nkeep < max_vocab) &&
		   nkeep < RL_MAX_VOCAB - RL_NUM_SPECIAL)
		nkeep++;
	if (nkeep == 0)
	{
		st = rl_error(env, RL_ERR_DATA, "the training documents contain no tokens");
		goto fail;
	}

	lengths = rl_alloc_array(env, (size_t) nkeep + RL_NUM_SPECIAL, sizeof(uint32_t));
	strings = rl_alloc(env, b->str_len + 16);
	if (!lengths || !strings)
		goto fail;
	memcpy(strings, "<eod><unk>", 10);
	lengths[RL_TOKEN_EOD] = 5;
	lengths[RL_TOKEN_UNK] = 5;
	pos = 10;
	for (k = 0; k < b->ndistinct; k++)
		map[k] = RL_TOKEN_UNK;
	for (k = 0; k < nkeep; k++)
	{
		int32_t		id = rank[k].id;
		uint32_t	len = b->off[id + 1] - b->off[id];

		map[id] = RL_NUM_SPECIAL + k;
		lengths[RL_NUM_SPECIAL + k] = len;
		memcpy(strings + pos, b->str + b->off[id], len);
		pos += len;
	}
	st = rl_vocab_create(env, nkeep + RL_NUM_SPECIAL, lengths, strings, vocab);
	if (st != RL_OK)
		goto fail;

	*train = builder_map(b, map, 0, split, 0, ntrain);
	if (*train == NULL)
		goto fail;
	if (val_docs > 0)
	{
		*val = builder_map(b, map, split, b->nids, 1, nval);
		if (*val == NULL)
			goto fail;
	}
	rl_free(env, rank);
	rl_free(env, map);
	rl_free(env, lengths);
	rl_free(env, strings);
	return RL_OK;

fail:
	if (st == RL_OK)
		st = env->status;
	rl_free(env, rank);
	rl_free(env, map);
	rl_free(env, lengths);
	rl_free(env, strings);
	rl_vocab_free(env, *vocab);
	rl_free(env, *train);
	rl_free(env, *val);
	*vocab = NULL;
	*train = *val = NULL;
	return st;
}

/*
 * Like rl_builder_finish, but with a vocabulary that is given (the model a
 * new one is fine-tuned from): every token outside it becomes RL_TOKEN_UNK.
 */
rl_status
rl_builder_finish_vocab(rl_builder *b, size_t val_docs, const rl_vocab *vocab,
						int32_t **train, size_t *ntrain, int32_t **val, size_t *nval)
{
	rl_env	   *env = b->env;
	int32_t    *map;
	size_t		split;
	int32_t		k;

	*train = *val = NULL;
	*ntrain = *nval = 0;
	if (val_docs >= b->ndocs)
		return rl_error(env, RL_ERR_DATA, "no training documents left after holding out %zu for validation",
						val_docs);
	split = b->doc_end[b->ndocs - val_docs - 1];
	map = rl_alloc_array(env, (size_t) b->ndistinct + 1, sizeof(int32_t));
	if (map == NULL)
		return env->status;
	for (k = 0; k < b->ndistinct; k++)
	{
		int32_t		id = rl_vocab_lookup(vocab, b->str + b->off[k], b->off[k + 1] - b->off[k]);

		map[k] = id < 0 ? RL_TOKEN_UNK : id;
	}
	*train = builder_map(b, map, 0, split, 0, ntrain);
	if (*train != NULL && val_docs > 0)
		*val = builder_map(b, map, split, b->nids, 1, nval);
	rl_free(env, map);
	if (*train == NULL || (val_docs > 0 && *val == NULL))
	{
		rl_free(env, *train);
		*train = NULL;
		return env->status;
	}
	return RL_OK;
}

/* Frees a builder and everything it holds. */
void
rl_builder_free(rl_builder *b)
{
	if (b == NULL)
		return;
	rl_free(b->env, b->str);
	rl_free(b->env, b->off);
	rl_free(b->env, b->slots);
	rl_free(b->env, b->ids);
	rl_free(b->env, b->doc_end);
	rl_free(b->env, b);
}

/* Whether s is well-formed UTF-8 without NUL characters. */
int
rl_utf8_valid(const char *s, size_t len)
{
	size_t		pos = 0;

	while (pos < len)
	{
		uint32_t	c;
		size_t		n = utf8_next((const unsigned char *) s + pos, len - pos, &c);

		if (c == 0 || (c == 0xFFFD && n == 1 && (unsigned char) s[pos] >= 0x80))
			return 0;
		pos += n;
	}
	return 1;
}
