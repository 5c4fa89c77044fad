/*
 * bpe.c
 *		Byte-level byte-pair encoding: learning the merges from the training
 *		text's pieces, and encoding a piece with them.
 *
 * A bpe vocabulary is <eod>, <unk>, the 256 bytes (ids 2 to 257, in byte
 * order), then one token per merge.  Learning starts from every piece of
 * the training documents (text.c cuts them) spelled as bytes, weighted by
 * how often the piece occurs, and repeatedly merges the adjacent pair of
 * tokens that occurs most often.  Ties go to the pair whose first token has
 * the smaller id, then whose second has.  A pair occurring fewer than twice
 * is never merged, and neither is one whose bytes spell <eod> or <unk>.
 * When a merge spells a token that exists already, it yields that token
 * (no new id).  Learning stops at max_vocab tokens or when no pair is left.
 *
 * The counts are kept up to date as merges happen (each merge touches only
 * the places where its pair occurs, found from a list per pair), and the
 * best pair comes from a heap whose stale entries are skipped, so learning
 * costs about the size of the distinct pieces times a logarithm rather
 * than that times the number of merges.
 *
 * Encoding a piece applies the merges in the order they were learned: it
 * repeatedly joins every occurrence, left to right, of the adjacent pair
 * learned earliest, until no adjacent pair is a merge.
 */
#include "rnnlm_core.h"

#include <string.h>

#define NO_POS		(-1)

/* A pair of adjacent tokens and where it occurs. */
typedef struct bpe_pair
{
	int32_t		a,
				b;
	int64_t		count;
	int32_t    *where;			/* symbol positions of its first token (may be stale) */
	size_t		nwhere,
				capwhere;
	int			blocked;		/* would spell a reserved token */
} bpe_pair;

/* A heap entry: a pair and the count it had when pushed. */
typedef struct heap_entry
{
	int64_t		count;
	int32_t		pair;
} heap_entry;

typedef struct bpe_learner
{
	rl_env	   *env;
	/* symbols of every piece, back to back, as doubly linked lists */
	int32_t    *sym;
	int32_t    *next,
			   *prev;
	uint64_t   *weight;			/* the count of the piece each position is in */
	size_t		nsym;
	/* pairs, with a hash from (a, b) */
	bpe_pair   *pairs;
	size_t		npairs,
				cappairs;
	int32_t    *slots;
	size_t		nslots;
	heap_entry *heap;
	size_t		nheap,
				capheap;
	/* the tokens so far: their bytes, for new merges' bytes and duplicates */
	char	   *str;
	size_t		str_len,
				str_cap;
	uint32_t   *off;
	size_t		off_cap;
	int32_t		ntokens;
	int32_t    *tok_slots;
	size_t		ntok_slots;
	int32_t    *merges;			/* pairs (a, b), 2 per merge */
	size_t		nmerges,
				capmerges;
} bpe_learner;

/* Hash of a pair. */
static uint32_t
pair_hash(int32_t a, int32_t b)
{
	uint64_t	k = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;

	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (uint32_t) k;
}

/* Whether the heap entry x goes before y: more occurrences, then smaller ids. */
static int
heap_before(const bpe_learner *L, const heap_entry *x, const heap_entry *y)
{
	const bpe_pair *p = &L->pairs[x->pair],
			   *q = &L->pairs[y->pair];

	if (x->count != y->count)
		return x->count > y->count;
	if (p->a != q->a)
		return p->a < q->a;
	return p->b < q->b;
}

/* Pushes the pair with its current count. */
static int
heap_push(bpe_learner *L, int32_t pair)
{
	void	   *p = L->heap;
	size_t		i;

	if (!rl_grow(L->env, &p, &L->capheap, L->nheap + 1, sizeof(heap_entry)))
		return 0;
	L->heap = p;
	i = L->nheap++;
	L->heap[i].count = L->pairs[pair].count;
	L->heap[i].pair = pair;
	while (i > 0)
	{
		size_t		up = (i - 1) / 2;
		heap_entry	t;

		if (!heap_before(L, &L->heap[i], &L->heap[up]))
			break;
		t = L->heap[i];
		L->heap[i] = L->heap[up];
		L->heap[up] = t;
		i = up;
	}
	return 1;
}

/* Removes the top of the heap into *top; 0 when empty. */
static int
heap_pop(bpe_learner *L, heap_entry *top)
{
	size_t		i = 0;

	if (L->nheap == 0)
		return 0;
	*top = L->heap[0];
	L->heap[0] = L->heap[--L->nheap];
	for (;;)
	{
		size_t		l = 2 * i + 1,
					r = l + 1,
					m = i;
		heap_entry	t;

		if (l < L->nheap && heap_before(L, &L->heap[l], &L->heap[m]))
			m = l;
		if (r < L->nheap && heap_before(L, &L->heap[r], &L->heap[m]))
			m = r;
		if (m == i)
			break;
		t = L->heap[i];
		L->heap[i] = L->heap[m];
		L->heap[m] = t;
		i = m;
	}
	return 1;
}

/* Doubles the pair hash. */
static int
pairs_rehash(bpe_learner *L)
{
	size_t		nslots = L->nslots ? 2 * L->nslots : 1024,
				i;
	int32_t    *slots = rl_alloc_array(L->env, nslots, sizeof(int32_t));

	if (slots == NULL)
		return 0;
	memset(slots, 0xFF, nslots * sizeof(int32_t));
	for (i = 0; i < L->npairs; i++)
	{
		size_t		h = pair_hash(L->pairs[i].a, L->pairs[i].b) & (nslots - 1);

		while (slots[h] >= 0)
			h = (h + 1) & (nslots - 1);
		slots[h] = (int32_t) i;
	}
	rl_free(L->env, L->slots);
	L->slots = slots;
	L->nslots = nslots;
	return 1;
}

/* The index of pair (a, b), added with count 0 if new; -1 on failure. */
static int32_t
pair_get(bpe_learner *L, int32_t a, int32_t b)
{
	size_t		h;
	void	   *p;
	bpe_pair   *np;

	if ((L->npairs + 1) * 2 > L->nslots && !pairs_rehash(L))
		return -1;
	h = pair_hash(a, b) & (L->nslots - 1);
	while (L->slots[h] >= 0)
	{
		bpe_pair   *q = &L->pairs[L->slots[h]];

		if (q->a == a && q->b == b)
			return L->slots[h];
		h = (h + 1) & (L->nslots - 1);
	}
	if (L->npairs >= INT32_MAX - 1)
	{
		rl_error(L->env, RL_ERR_DATA, "too many distinct pairs of tokens to learn merges");
		return -1;
	}
	p = L->pairs;
	if (!rl_grow(L->env, &p, &L->cappairs, L->npairs + 1, sizeof(bpe_pair)))
		return -1;
	L->pairs = p;
	np = &L->pairs[L->npairs];
	memset(np, 0, sizeof(*np));
	np->a = a;
	np->b = b;
	L->slots[h] = (int32_t) L->npairs;
	return (int32_t) L->npairs++;
}

/* Adds delta occurrences of (a, b) at position pos (recorded when delta > 0). */
static int
pair_add(bpe_learner *L, int32_t a, int32_t b, int64_t delta, int32_t pos)
{
	int32_t		i = pair_get(L, a, b);
	bpe_pair   *q;

	if (i < 0)
		return 0;
	q = &L->pairs[i];
	q->count += delta;
	if (delta > 0)
	{
		void	   *p = q->where;

		if (!rl_grow(L->env, &p, &q->capwhere, q->nwhere + 1, sizeof(int32_t)))
			return 0;
		q->where = p;
		q->where[q->nwhere++] = pos;
		return heap_push(L, i);
	}
	return 1;
}

/* The id of a token with these bytes, or -1. */
static int32_t
token_find(const bpe_learner *L, const char *s, size_t len)
{
	size_t		h = rl_hash_bytes(s, len) & (L->ntok_slots - 1);

	while (L->tok_slots[h] >= 0)
	{
		int32_t		j = L->tok_slots[h];

		if (L->off[j + 1] - L->off[j] == len && memcmp(L->str + L->off[j], s, len) == 0)
			return j;
		h = (h + 1) & (L->ntok_slots - 1);
	}
	return -1;
}

/* Adds a token with these bytes (the reserved ones are added but never found). */
static int
token_add(bpe_learner *L, const char *s, size_t len, int findable)
{
	void	   *p;
	int32_t		id = L->ntokens;

	if ((size_t) (L->ntokens + 1) * 2 > L->ntok_slots)
	{
		size_t		n = L->ntok_slots ? 2 * L->ntok_slots : 1024;
		int32_t    *slots = rl_alloc_array(L->env, n, sizeof(int32_t));
		int32_t		j;

		if (slots == NULL)
			return 0;
		memset(slots, 0xFF, n * sizeof(int32_t));
		rl_free(L->env, L->tok_slots);
		L->tok_slots = slots;
		L->ntok_slots = n;
		for (j = RL_NUM_SPECIAL; j < L->ntokens; j++)
		{
			size_t		h = rl_hash_bytes(L->str + L->off[j], L->off[j + 1] - L->off[j]) & (n - 1);

			while (slots[h] >= 0)
				h = (h + 1) & (n - 1);
			slots[h] = j;
		}
	}
	p = L->str;
	if (!rl_grow(L->env, &p, &L->str_cap, L->str_len + len, 1))
		return 0;
	L->str = p;
	p = L->off;
	if (!rl_grow(L->env, &p, &L->off_cap, (size_t) L->ntokens + 2, sizeof(uint32_t)))
		return 0;
	L->off = p;
	L->off[id] = (uint32_t) L->str_len;
	memcpy(L->str + L->str_len, s, len);
	L->str_len += len;
	L->off[id + 1] = (uint32_t) L->str_len;
	L->ntokens++;
	if (findable)
	{
		size_t		h = rl_hash_bytes(s, len) & (L->ntok_slots - 1);

		while (L->tok_slots[h] >= 0)
			h = (h + 1) & (L->ntok_slots - 1);
		L->tok_slots[h] = id;
	}
	return 1;
}

/* The reserved tokens and the 256 bytes, then every piece as byte symbols. */
static int
learner_init(bpe_learner *L, const rl_unit_count *units, int32_t nunits)
{
	size_t		total = 0,
				k = 0;
	int32_t		u;
	int			c;

	if (!token_add(L, "<eod>", 5, 0) || !token_add(L, "<unk>", 5, 0))
		return 0;
	for (c = 0; c < 256; c++)
	{
		char		byte = (char) c;

		if (!token_add(L, &byte, 1, 1))
			return 0;
	}
	for (u = 0; u < nunits; u++)
		if (units[u].count > 0)
			total += units[u].len;
	if (total >= INT32_MAX)
	{
		rl_error(L->env, RL_ERR_DATA, "too much distinct training text to learn merges");
		return 0;
	}
	L->sym = rl_alloc_array(L->env, total + 1, sizeof(int32_t));
	L->next = rl_alloc_array(L->env, total + 1, sizeof(int32_t));
	L->prev = rl_alloc_array(L->env, total + 1, sizeof(int32_t));
	L->weight = rl_alloc_array(L->env, total + 1, sizeof(uint64_t));
	if (!L->sym || !L->next || !L->prev || !L->weight)
		return 0;
	for (u = 0; u < nunits; u++)
	{
		const rl_unit_count *un = &units[u];
		uint32_t	i;

		if (un->count == 0)
			continue;
		for (i = 0; i < un->len; i++)
		{
			L->sym[k + i] = RL_BPE_BYTE0 + (unsigned char) un->text[i];
			L->prev[k + i] = i == 0 ? NO_POS : (int32_t) (k + i - 1);
			L->next[k + i] = i + 1 == un->len ? NO_POS : (int32_t) (k + i + 1);
			L->weight[k + i] = un->count;
			if (i > 0 && !pair_add(L, L->sym[k + i - 1], L->sym[k + i], (int64_t) un->count,
								   (int32_t) (k + i - 1)))
				return 0;
		}
		k += un->len;
		if ((u & 1023) == 0 && !rl_tick(L->env))
			return 0;
	}
	L->nsym = k;
	return 1;
}

/* The token (new or existing) that merging pair q yields; -1 on failure. */
static int32_t
merge_token(bpe_learner *L, const bpe_pair *q)
{
	uint32_t	la = L->off[q->a + 1] - L->off[q->a],
				lb = L->off[q->b + 1] - L->off[q->b];
	char		buf[2 * RL_BPE_MAX_PIECE + 8];
	int32_t		id;

	memcpy(buf, L->str + L->off[q->a], la);
	memcpy(buf + la, L->str + L->off[q->b], lb);
	id = token_find(L, buf, la + lb);
	if (id >= 0)
		return id;
	if (!token_add(L, buf, la + lb, 1))
		return -1;
	return L->ntokens - 1;
}

/* Whether the pair's bytes spell a reserved token. */
static int
spells_reserved(const bpe_learner *L, const bpe_pair *q)
{
	uint32_t	la = L->off[q->a + 1] - L->off[q->a],
				lb = L->off[q->b + 1] - L->off[q->b];
	char		buf[2 * RL_BPE_MAX_PIECE + 8];

	if (la + lb != 5)
		return 0;
	memcpy(buf, L->str + L->off[q->a], la);
	memcpy(buf + la, L->str + L->off[q->b], lb);
	return memcmp(buf, "<eod>", 5) == 0 || memcmp(buf, "<unk>", 5) == 0;
}

/* Replaces every live occurrence of pair pi by token t, updating the neighbours' counts. */
static int
apply_merge(bpe_learner *L, int32_t pi, int32_t t)
{
	size_t		w;
	int32_t		a = L->pairs[pi].a,
				b = L->pairs[pi].b;

	for (w = 0; w < L->pairs[pi].nwhere; w++)
	{
		int32_t		i = L->pairs[pi].where[w];
		int32_t		j = L->next[i],
					left,
					right;
		int64_t		f;

		/* stale: merged away, or no longer this pair */
		if (L->sym[i] != a || j == NO_POS || L->sym[j] != b)
			continue;
		f = (int64_t) L->weight[i];
		left = L->prev[i];
		right = L->next[j];
		if (left != NO_POS &&
			(!pair_add(L, L->sym[left], a, -f, 0) || !pair_add(L, L->sym[left], t, f, left)))
			return 0;
		if (right != NO_POS &&
			(!pair_add(L, b, L->sym[right], -f, 0) || !pair_add(L, t, L->sym[right], f, i)))
			return 0;
		L->sym[i] = t;
		L->sym[j] = -1;
		L->next[i] = right;
		if (right != NO_POS)
			L->prev[right] = i;
		if ((w & 4095) == 0 && !rl_tick(L->env))
			return 0;
	}
	L->pairs[pi].count = 0;
	rl_free(L->env, L->pairs[pi].where);
	L->pairs[pi].where = NULL;
	L->pairs[pi].nwhere = L->pairs[pi].capwhere = 0;
	return 1;
}

/* Merges until max_vocab tokens or no pair occurs twice. */
static int
learn_merges(bpe_learner *L, int32_t max_vocab)
{
	heap_entry	top;

	while (L->ntokens < max_vocab && heap_pop(L, &top))
	{
		bpe_pair   *q = &L->pairs[top.pair];
		int32_t		t;
		void	   *p;

		if (q->blocked)
			continue;
		if (top.count != q->count)
		{
			/* stale: fresher if lower than it was; re-entered so the pair is not lost */
			if (top.count > q->count && q->count >= 2 && !heap_push(L, top.pair))
				return 0;
			continue;
		}
		if (q->count < 2)
			break;
		if (spells_reserved(L, q))
		{
			q->blocked = 1;
			continue;
		}
		t = merge_token(L, q);
		if (t < 0)
			return 0;
		p = L->merges;
		if (!rl_grow(L->env, &p, &L->capmerges, 2 * (L->nmerges + 1), sizeof(int32_t)))
			return 0;
		L->merges = p;
		L->merges[2 * L->nmerges] = q->a;
		L->merges[2 * L->nmerges + 1] = q->b;
		L->nmerges++;
		if (!apply_merge(L, top.pair, t))
			return 0;
	}
	return 1;
}

/* Frees what learning used. */
static void
learner_free(bpe_learner *L)
{
	size_t		i;

	for (i = 0; i < L->npairs; i++)
		rl_free(L->env, L->pairs[i].where);
	rl_free(L->env, L->pairs);
	rl_free(L->env, L->slots);
	rl_free(L->env, L->heap);
	rl_free(L->env, L->sym);
	rl_free(L->env, L->next);
	rl_free(L->env, L->prev);
	rl_free(L->env, L->weight);
	rl_free(L->env, L->str);
	rl_free(L->env, L->off);
	rl_free(L->env, L->tok_slots);
	rl_free(L->env, L->merges);
}

/* Learns merges from the counted pieces; the vocabulary has at most max_vocab tokens. */
rl_status
rl_bpe_learn(rl_env *env, const rl_unit_count *units, int32_t nunits,
			 int32_t max_vocab, rl_vocab **out)
{
	bpe_learner L;
	uint32_t   *lengths = NULL;
	int32_t		i;
	rl_status	st = RL_OK;

	*out = NULL;
	if (max_vocab <= 0 || max_vocab > RL_MAX_VOCAB)
		max_vocab = RL_MAX_VOCAB;
	if (max_vocab < RL_BPE_BYTE0 + 256)
		return rl_error(env, RL_ERR_INVALID,
						"a bpe vocabulary holds at least the 256 bytes and 2 reserved tokens (max_vocab >= %d)",
						RL_BPE_BYTE0 + 256);
	memset(&L, 0, sizeof(L));
	L.env = env;
	if (!learner_init(&L, units, nunits) || !learn_merges(&L, max_vocab))
		goto fail;
	lengths = rl_alloc_array(env, (size_t) L.ntokens, sizeof(uint32_t));
	if (lengths == NULL)
		goto fail;
	for (i = 0; i < L.ntokens; i++)
		lengths[i] = L.off[i + 1] - L.off[i];
	st = rl_vocab_create(env, L.ntokens, lengths, L.str, out);
	if (st == RL_OK)
		st = rl_bpe_index(env, *out, L.merges, (int32_t) L.nmerges);
	if (st != RL_OK)
	{
		rl_vocab_free(env, *out);
		*out = NULL;
	}
	rl_free(env, lengths);
	learner_free(&L);
	return st;

fail:
	rl_free(env, lengths);
	learner_free(&L);
	return env->status != RL_OK ? env->status : RL_ERR_NOMEM;
}

/* The merge slot of pair (a, b) in v's pair hash. */
static uint32_t
merge_slot(const rl_vocab *v, int32_t a, int32_t b)
{
	uint32_t	h = pair_hash(a, b) & (v->nmerge_slots - 1);

	while (v->merge_slots[h] != 0)
	{
		int32_t		r = (int32_t) (v->merge_slots[h] >> 1);

		if (v->merges[2 * r] == a && v->merges[2 * r + 1] == b)
			break;
		h = (h + 1) & (v->nmerge_slots - 1);
	}
	return h;
}

/*
 * Attaches merges (n pairs) to a bpe vocabulary, checking them: each pair's
 * tokens exist, its bytes spell a token of the vocabulary that is neither
 * reserved nor a byte, and no pair repeats.  Used by learning and loading.
 */
rl_status
rl_bpe_index(rl_env *env, rl_vocab *v, const int32_t *pairs, int32_t n)
{
	int32_t		r;
	char		buf[2 * RL_MAX_TOKEN_BYTES];

	if (v->size < RL_BPE_BYTE0 + 256)
		return rl_error(env, RL_ERR_FORMAT, "a bpe vocabulary must hold the 256 bytes");
	for (r = 0; r < 256; r++)
	{
		size_t		len;
		const char *t = rl_vocab_token(v, RL_BPE_BYTE0 + r, &len);

		if (len != 1 || (unsigned char) t[0] != r)
			return rl_error(env, RL_ERR_FORMAT, "bpe token %d is not byte %d", RL_BPE_BYTE0 + r, r);
	}
	v->nmerges = n;
	v->merges = rl_alloc_array(env, 2 * (size_t) n + 1, sizeof(int32_t));
	v->merge_into = rl_alloc_array(env, (size_t) n + 1, sizeof(int32_t));
	v->nmerge_slots = 16;
	while (v->nmerge_slots < 2 * (uint32_t) n + 2)
		v->nmerge_slots *= 2;
	v->merge_slots = rl_alloc_array(env, v->nmerge_slots, sizeof(int64_t));
	if (!v->merges || !v->merge_into || !v->merge_slots)
		return env->status;
	memset(v->merge_slots, 0, v->nmerge_slots * sizeof(int64_t));
	for (r = 0; r < n; r++)
	{
		int32_t		a = pairs[2 * r],
					b = pairs[2 * r + 1],
					into;
		size_t		la,
					lb;
		const char *ta,
				   *tb;
		uint32_t	h;

		if (a < RL_BPE_BYTE0 || a >= v->size || b < RL_BPE_BYTE0 || b >= v->size)
			return rl_error(env, RL_ERR_FORMAT, "bpe merge %d names a token out of range", r);
		ta = rl_vocab_token(v, a, &la);
		tb = rl_vocab_token(v, b, &lb);
		if (la + lb > RL_MAX_TOKEN_BYTES)
			return rl_error(env, RL_ERR_FORMAT, "bpe merge %d is too long", r);
		memcpy(buf, ta, la);
		memcpy(buf + la, tb, lb);
		into = rl_vocab_lookup(v, buf, la + lb);
		if (into < RL_BPE_BYTE0 + 256)
			return rl_error(env, RL_ERR_FORMAT, "bpe merge %d spells no merged token", r);
		v->merges[2 * r] = a;
		v->merges[2 * r + 1] = b;
		v->merge_into[r] = into;
		h = merge_slot(v, a, b);
		if (v->merge_slots[h] != 0)
			return rl_error(env, RL_ERR_FORMAT, "bpe merge %d repeats an earlier one", r);
		v->merge_slots[h] = ((int64_t) r << 1) | 1;
	}
	return RL_OK;
}

/* The rank of merge (a, b), or -1. */
static int32_t
merge_rank(const rl_vocab *v, int32_t a, int32_t b)
{
	uint32_t	h = merge_slot(v, a, b);

	return v->merge_slots[h] == 0 ? -1 : (int32_t) (v->merge_slots[h] >> 1);
}

/* Encodes one piece (at most RL_MAX_TOKEN_BYTES bytes) into ids; returns how many. */
size_t
rl_bpe_encode(const rl_vocab *v, const char *unit, size_t len, int32_t *ids)
{
	size_t		n = len,
				i;

	for (i = 0; i < len; i++)
		ids[i] = RL_BPE_BYTE0 + (unsigned char) unit[i];
	while (n > 1)
	{
		int32_t		best = -1;
		size_t		k = 0;

		for (i = 0; i + 1 < n; i++)
		{
			int32_t		r = merge_rank(v, ids[i], ids[i + 1]);

			if (r >= 0 && (best < 0 || r < best))
				best = r;
		}
		if (best < 0)
			break;
		for (i = 0; i < n; i++)
		{
			if (i + 1 < n && ids[i] == v->merges[2 * best] && ids[i + 1] == v->merges[2 * best + 1])
			{
				ids[k++] = v->merge_into[best];
				i++;
			}
			else
				ids[k++] = ids[i];
		}
		n = k;
	}
	return n;
}

/*
 * A bpe token for display: its bytes, those that are not part of
 * well-formed UTF-8 in the token written \xHH, and a backslash as \\.
 */
size_t
rl_bpe_describe(const rl_vocab *v, int32_t id, char *buf)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		len,
				pos = 0,
				k = 0;
	const unsigned char *s = (const unsigned char *) rl_vocab_token(v, id, &len);

	if (s == NULL)
		return 0;
	while (pos < len)
	{
		uint32_t	c;
		size_t		n = rl_utf8_next(s + pos, len - pos, &c);

		if (c == '\\')
		{
			buf[k++] = '\\';
			buf[k++] = '\\';
		}
		else if ((c == 0xFFFD && n == 1 && s[pos] >= 0x80) || c == 0)
		{
			buf[k++] = '\\';
			buf[k++] = 'x';
			buf[k++] = hex[s[pos] >> 4];
			buf[k++] = hex[s[pos] & 15];
		}
		else
		{
			memcpy(buf + k, s + pos, n);
			k += n;
		}
		pos += n;
	}
	buf[k] = '\0';
	return k;
}
