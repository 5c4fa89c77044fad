/*
 * federated.c
 *		The pieces of federated training that are plain arithmetic and
 *		bytes: the tally that merges the unit counts of several shards, the
 *		file of a model's weights alone that travels between the coordinator
 *		and a shard every round, and the token-weighted average of weights
 *		(federated averaging).
 *
 * The tally (an rl_strtab of the units, as the builder's, with their
 * counts) keeps units in first-seen order across the shards, so that the
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
	rl_strtab	units;			/* the distinct units, in first-seen order */
	rl_unit_count *counts;		/* counts[k] of unit k; texts set by rl_unit_tally_units */
	size_t		counts_cap;
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
	if (rl_strtab_init(&t->units, env) != RL_OK)
	{
		rl_free(env, t);
		return env->status;
	}
	*out = t;
	return RL_OK;
}

/* Adds count occurrences of a unit (at most RL_MAX_TOKEN_BYTES bytes). */
rl_status
rl_unit_tally_add(rl_unit_tally *t, const char *text, uint32_t len, uint64_t count)
{
	rl_env	   *env = t->env;
	int32_t		before = t->units.n,
				k;
	rl_unit_count *u;
	void	   *p = t->counts;

	if (t->taken)
		return rl_error(env, RL_ERR_INVALID, "the tally's units were taken");
	if (len == 0 || len > RL_MAX_TOKEN_BYTES)
		return rl_error(env, RL_ERR_DATA, "a unit of %u bytes is not a token", len);
	/* room for a new unit's count first, so that a unit is never without one */
	if (!rl_grow(env, &p, &t->counts_cap, (size_t) before + 1, sizeof(rl_unit_count)))
		return env->status;
	t->counts = p;
	if ((k = rl_strtab_intern(&t->units, text, len, INT32_MAX - 1, "units")) < 0)
		return env->status;
	u = &t->counts[k];
	if (k == before)
	{
		u->text = NULL;			/* set by rl_unit_tally_units */
		u->len = len;
		u->count = 0;
	}
	u->count = u->count + count < u->count ? UINT64_MAX : u->count + count;
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

	for (k = 0; k < t->units.n; k++)
		t->counts[k].text = t->units.str + t->units.off[k];
	t->taken = 1;
	*n = t->units.n;
	return t->counts;
}

/* Frees a tally. */
void
rl_unit_tally_free(rl_unit_tally *t)
{
	if (t == NULL)
		return;
	rl_strtab_free(&t->units);
	rl_free(t->env, t->counts);
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
	if (rl_get_u64(data + 8) != (uint64_t) n)
		return rl_error(env, RL_ERR_FORMAT,
						"the weights file holds %llu weights; the model has %zu",
						(unsigned long long) rl_get_u64(data + 8), n);
	if (len != rl_weights_file_size(n))
		return rl_error(env, RL_ERR_FORMAT,
						"the weights file of %zu weights is %zu bytes long; it should be %zu",
						n, len, rl_weights_file_size(n));
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
