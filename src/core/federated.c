/*
 * federated.c
 *		The pieces of federated training that are plain arithmetic and
 *		bytes: the tally that merges the unit counts of several shards, the
 *		file of a model's weights alone that travels between the coordinator
 *		and a shard every round, and the token-weighted average of weights
 *		(federated averaging).
 *
 * The tally keeps units in first-seen order across the shards, so that the
 * vocabulary learned from it (the tokenizer's learn, as rl_builder_finish
 * calls it) is the one a builder would learn from the shards' documents
 * read one shard after another.  The weights file is
 *
 *     "RNNLMWTS"  u64 n  n x f32  u32 CRC-32 of everything before it
 *
 * little-endian, like the model file; a reader checks its length, CRC and
 * that every weight is finite.  Averages are summed in double.
 */
#include "rnnlm_core.h"

#include <math.h>
#include <string.h>

#define WEIGHTS_MAGIC "RNNLMWTS"
#define WEIGHTS_HEADER 16

struct rl_unit_tally
{
	rl_env	   *env;
	char	   *str;			/* the units' bytes, back to back */
	size_t		str_len,
				str_cap;
	rl_unit_count *units;		/* text is an offset into str until rl_unit_tally_units */
	size_t		units_cap;
	int32_t		n;
	int32_t    *slots;			/* open addressing: unit index + 1, 0 = empty */
	uint32_t	nslots;
	int			taken;			/* rl_unit_tally_units was called */
};

/* An empty tally. */
rl_status
rl_unit_tally_create(rl_env *env, rl_unit_tally **out)
{
	rl_unit_tally *t = rl_alloc0(env, sizeof(rl_unit_tally));

	*out = NULL;
	if (t == NULL)
		return env->status;
	t->env = env;
	t->nslots = 1024;
	t->slots = rl_alloc_array(env, t->nslots, sizeof(int32_t));
	if (t->slots == NULL)
	{
		rl_free(env, t);
		return env->status;
	}
	memset(t->slots, 0, t->nslots * sizeof(int32_t));
	*out = t;
	return RL_OK;
}

/* The bytes of unit k (text holds its offset while the tally grows). */
static const char *
unit_bytes(const rl_unit_tally *t, int32_t k)
{
	return t->str + (size_t) (uintptr_t) t->units[k].text;
}

/* The slot of a unit's bytes: its own, or the empty one where it would go. */
static uint32_t
find_slot(const rl_unit_tally *t, const char *text, uint32_t len)
{
	uint32_t	mask = t->nslots - 1,
				i = rl_hash_bytes(text, len) & mask;

	while (t->slots[i] != 0)
	{
		int32_t		k = t->slots[i] - 1;

		if (t->units[k].len == len && memcmp(unit_bytes(t, k), text, len) == 0)
			break;
		i = (i + 1) & mask;
	}
	return i;
}

/* Doubles the slots when they are half full. */
static int
grow_slots(rl_unit_tally *t)
{
	uint32_t	n = t->nslots * 2;
	int32_t    *slots = rl_alloc_array(t->env, n, sizeof(int32_t)),
			   *old = t->slots;
	int32_t		k;

	if (slots == NULL)
		return 0;
	memset(slots, 0, n * sizeof(int32_t));
	t->slots = slots;
	t->nslots = n;
	for (k = 0; k < t->n; k++)
		t->slots[find_slot(t, unit_bytes(t, k), t->units[k].len)] = k + 1;
	rl_free(t->env, old);
	return 1;
}

/* Adds count occurrences of a unit (at most RL_MAX_TOKEN_BYTES bytes). */
rl_status
rl_unit_tally_add(rl_unit_tally *t, const char *text, uint32_t len, uint64_t count)
{
	rl_env	   *env = t->env;
	uint32_t	i;
	void	   *p;

	if (t->taken)
		return rl_error(env, RL_ERR_INVALID, "the tally's units were taken");
	if (len == 0 || len > RL_MAX_TOKEN_BYTES)
		return rl_error(env, RL_ERR_DATA, "a unit of %u bytes is not a token", len);
	if ((size_t) t->n * 2 >= t->nslots && !grow_slots(t))
		return env->status;
	i = find_slot(t, text, len);
	if (t->slots[i] != 0)
	{
		rl_unit_count *u = &t->units[t->slots[i] - 1];

		u->count = u->count + count < u->count ? UINT64_MAX : u->count + count;
		return RL_OK;
	}
	if (t->n >= INT32_MAX - 1)
		return rl_error(env, RL_ERR_LIMIT, "too many distinct units");
	p = t->str;
	if (!rl_grow(env, &p, &t->str_cap, t->str_len + len, 1))
		return env->status;
	t->str = p;
	p = t->units;
	if (!rl_grow(env, &p, &t->units_cap, (size_t) t->n + 1, sizeof(rl_unit_count)))
		return env->status;
	t->units = p;
	memcpy(t->str + t->str_len, text, len);
	t->units[t->n].text = (const char *) (uintptr_t) t->str_len;
	t->units[t->n].len = len;
	t->units[t->n].count = count;
	t->str_len += len;
	t->slots[i] = ++t->n;
	return RL_OK;
}

/*
 * The units with their summed counts, in first-seen order, for the
 * tokenizer's learn.  The tally takes no more units after this.
 */
const rl_unit_count *
rl_unit_tally_units(rl_unit_tally *t, int32_t *n)
{
	int32_t		k;

	if (!t->taken)
		for (k = 0; k < t->n; k++)
			t->units[k].text = unit_bytes(t, k);
	t->taken = 1;
	*n = t->n;
	return t->units;
}

/* Frees a tally. */
void
rl_unit_tally_free(rl_unit_tally *t)
{
	if (t == NULL)
		return;
	rl_free(t->env, t->str);
	rl_free(t->env, t->units);
	rl_free(t->env, t->slots);
	rl_free(t->env, t);
}

/* Bytes of the weights file of n weights. */
size_t
rl_weights_file_size(size_t n)
{
	return WEIGHTS_HEADER + n * 4 + 4;
}

/* Writes the n weights w as a weights file into out (rl_weights_file_size(n) bytes). */
void
rl_weights_file_write(const float *w, size_t n, uint8_t *out)
{
	size_t		i;

	memcpy(out, WEIGHTS_MAGIC, 8);
	rl_put_u64(out + 8, (uint64_t) n);
	for (i = 0; i < n; i++)
	{
		uint32_t	bits;

		memcpy(&bits, &w[i], 4);
		rl_put_u32(out + WEIGHTS_HEADER + 4 * i, bits);
	}
	rl_put_u32(out + WEIGHTS_HEADER + 4 * n,
			   rl_crc32(out, WEIGHTS_HEADER + 4 * n));
}

/* Reads a weights file of exactly n finite weights into w. */
rl_status
rl_weights_file_read(rl_env *env, const uint8_t *data, size_t len, float *w, size_t n)
{
	size_t		i;

	if (len < WEIGHTS_HEADER + 4 || memcmp(data, WEIGHTS_MAGIC, 8) != 0)
		return rl_error(env, RL_ERR_FORMAT, "not a weights file");
	if (rl_get_u64(data + 8) != (uint64_t) n || len != rl_weights_file_size(n))
		return rl_error(env, RL_ERR_FORMAT,
						"the weights file holds %llu weights; the model has %zu",
						(unsigned long long) rl_get_u64(data + 8), n);
	if (rl_crc32(data, len - 4) != rl_get_u32(data + len - 4))
		return rl_error(env, RL_ERR_FORMAT, "the weights file is damaged (CRC mismatch)");
	for (i = 0; i < n; i++)
	{
		uint32_t	bits = rl_get_u32(data + WEIGHTS_HEADER + 4 * i);

		memcpy(&w[i], &bits, 4);
		if (!isfinite(w[i]))
			return rl_error(env, RL_ERR_FORMAT, "weight %zu of the weights file is not finite", i);
	}
	return RL_OK;
}

/* acc += weight * w over n weights (acc in double). */
void
rl_average_add(double *acc, const float *w, size_t n, double weight)
{
	size_t		i;

	for (i = 0; i < n; i++)
		acc[i] += weight * (double) w[i];
}

/* out = acc / total, rounded to float: the weighted average. */
void
rl_average_take(const double *acc, size_t n, double total, float *out)
{
	size_t		i;

	for (i = 0; i < n; i++)
		out[i] = (float) (acc[i] / total);
}
