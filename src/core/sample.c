/*
 * sample.c
 *		A seeded random number generator (xoshiro256**, seeded through
 *		splitmix64) and sampling of the next token: temperature, top-k,
 *		top-p.
 */
#include "rnnlm_core.h"

#include <math.h>
#include <stdlib.h>

typedef struct cand
{
	float		p;
	int32_t		id;
} cand;

/* One splitmix64 step, used to spread a seed over the state. */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Seeds the generator. */
void
rl_rng_seed(rl_rng *r, uint64_t seed)
{
	int			i;

	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

/* Rotates left. */
static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* The next 64 random bits. */
uint64_t
rl_rng_next(rl_rng *r)
{
	uint64_t   *s = r->s;
	uint64_t	result = rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* A uniform double in [0, 1). */
double
rl_rng_uniform(rl_rng *r)
{
	return (double) (rl_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Bytes of work space rl_sample needs for n logits. */
size_t
rl_sample_work_size(int32_t n)
{
	return (size_t) n * sizeof(cand);
}

/* Orders candidates by probability descending, then id. */
static int
cand_cmp(const void *a, const void *b)
{
	const cand *x = a,
			   *y = b;

	if (x->p != y->p)
		return x->p > y->p ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* Picks the next token from logits. */
int32_t
rl_sample(float *logits, int32_t n, const rl_sample_opts *o, rl_rng *rng, void *work)
{
	cand	   *c = work;
	int32_t		i,
				k = 0,
				best = -1;
	float		mx = -INFINITY;
	double		sum = 0.0,
				u,
				acc;

	for (i = 0; i < n; i++)
		if (i != RL_TOKEN_UNK && (best < 0 || logits[i] > mx))
		{
			mx = logits[i];
			best = i;
		}
	if (o->temperature <= 0.0 || best < 0)
		return best < 0 ? RL_TOKEN_EOD : best;

	for (i = 0; i < n; i++)
	{
		if (i == RL_TOKEN_UNK)
			continue;
		c[k].p = (float) exp((logits[i] - mx) / o->temperature);
		c[k].id = i;
		k++;
	}
	if ((o->top_k > 0 && o->top_k < k) || o->top_p < 1.0)
	{
		qsort(c, k, sizeof(cand), cand_cmp);
		if (o->top_k > 0 && o->top_k < k)
			k = o->top_k;
		if (o->top_p < 1.0)
		{
			double		total = 0.0,
						run = 0.0;
			int32_t		keep;

			for (i = 0; i < k; i++)
				total += c[i].p;
			for (keep = 0; keep < k; keep++)
			{
				run += c[keep].p;
				if (run >= o->top_p * total)
				{
					keep++;
					break;
				}
			}
			k = keep < 1 ? 1 : (keep > k ? k : keep);
		}
	}
	for (i = 0; i < k; i++)
		sum += c[i].p;
	u = rl_rng_uniform(rng) * sum;
	acc = 0.0;
	for (i = 0; i < k; i++)
	{
		acc += c[i].p;
		if (u < acc)
			return c[i].id;
	}
	return c[k - 1].id;
}

/* Whether entry a of logits ranks below entry b: a lower logit, or equal and a later id. */
static int
ranks_below(const float *logits, int32_t a, int32_t b)
{
	return logits[a] < logits[b] || (logits[a] == logits[b] && a > b);
}

/* Restores the min-heap order of heap[0..n) below position i (the lowest ranked on top). */
static void
sift_down(const float *logits, int32_t *heap, int32_t n, int32_t i)
{
	for (;;)
	{
		int32_t		l = 2 * i + 1,
					r = l + 1,
					m = i,
					t;

		if (l < n && ranks_below(logits, heap[l], heap[m]))
			m = l;
		if (r < n && ranks_below(logits, heap[r], heap[m]))
			m = r;
		if (m == i)
			return;
		t = heap[i];
		heap[i] = heap[m];
		heap[m] = t;
		i = m;
	}
}

/*
 * The ids of the k highest logits (at most n), highest first, ties in id
 * order, into out[0..k); returns how many.  NaN logits rank lowest.  A
 * heap of k: O(n log k).
 */
int32_t
rl_top_k(const float *logits, int32_t n, int32_t k, int32_t *out)
{
	int32_t		size = 0,
				i;

	if (k > n)
		k = n;
	if (k <= 0)
		return 0;
	for (i = 0; i < n; i++)
	{
		if (isnan(logits[i]))
			continue;
		if (size < k)
		{
			int32_t		j = size++;

			out[j] = i;
			/* sift up */
			while (j > 0 && ranks_below(logits, out[j], out[(j - 1) / 2]))
			{
				int32_t		p = (j - 1) / 2,
							t = out[p];

				out[p] = out[j];
				out[j] = t;
				j = p;
			}
		}
		else if (ranks_below(logits, out[0], i))
		{
			out[0] = i;
			sift_down(logits, out, size, 0);
		}
	}
	/* heap order to highest first: pop the lowest to the end, repeatedly */
	for (i = size - 1; i > 0; i--)
	{
		int32_t		t = out[0];

		out[0] = out[i];
		out[i] = t;
		sift_down(logits, out, i, 0);
	}
	return size;
}
