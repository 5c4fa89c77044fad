/*
 * tap.c
 *		The TAP producer and the shared helpers declared in tap.h.
 */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	n_emitted = 0;
static int	n_failed = 0;
static int	n_todo_failed = 0;

/* Prints one test point; returns cond. */
int
tap_ok(int cond, const char *fmt,...)
{
	va_list		ap;

	n_emitted++;
	if (!cond)
		n_failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", n_emitted);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

/* Prints one test point for a known bug, with a TODO directive; returns cond. */
int
tap_todo(int cond, const char *why, const char *fmt,...)
{
	va_list		ap;

	n_emitted++;
	if (!cond)
		n_todo_failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", n_emitted);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # TODO %s\n", why);
	fflush(stdout);
	return cond;
}

/* Prints a diagnostic line. */
void
tap_diag(const char *fmt,...)
{
	va_list		ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Stops the whole run. */
void
tap_bail(const char *fmt,...)
{
	va_list		ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(255);
}

/* Test points printed so far. */
int
tap_emitted(void)
{
	return n_emitted;
}

/* Failed test points so far, known bugs not included. */
int
tap_failed(void)
{
	return n_failed;
}

/* Failed TODO test points so far. */
int
tap_todo_failed(void)
{
	return n_todo_failed;
}

/* ---------- the counting allocator ---------- */

static void *(*base_alloc) (void *ud, size_t size);
static void (*base_dealloc) (void *ud, void *ptr);
static long live_blocks = 0;
static long fail_countdown = -1;

/* Allocates through the base allocator, counting, or fails on demand. */
static void *
counting_alloc(void *ud, size_t size)
{
	void	   *p;

	if (fail_countdown == 0)
	{
		fail_countdown = -1;
		return NULL;
	}
	if (fail_countdown > 0)
		fail_countdown--;
	p = base_alloc(ud, size);
	if (p)
		live_blocks++;
	return p;
}

/* Frees through the base allocator, counting. */
static void
counting_dealloc(void *ud, void *ptr)
{
	if (ptr)
		live_blocks--;
	base_dealloc(ud, ptr);
}

/* Sets env up with malloc, wrapped by the counters. */
void
test_env_init(rl_env *env)
{
	rl_env_init_malloc(env);
	base_alloc = env->alloc;
	base_dealloc = env->dealloc;
	env->alloc = counting_alloc;
	env->dealloc = counting_dealloc;
}

/* Blocks currently allocated. */
long
test_live_blocks(void)
{
	return live_blocks;
}

/* Arms (n >= 0) or disarms (n < 0) a one-off allocation failure. */
void
test_fail_alloc_at(long n)
{
	fail_countdown = n < 0 ? -1 : n;
}

/* ---------- helpers ---------- */

/* Fills n floats uniformly from [-a, a]. */
void
test_fill_uniform(float *p, size_t n, double a, rl_rng *rng)
{
	size_t		i;

	for (i = 0; i < n; i++)
		p[i] = (float) ((2.0 * rl_rng_uniform(rng) - 1.0) * a);
}

/* A vocabulary of V synthetic tokens after the two special ones. */
rl_vocab *
test_vocab(rl_env *env, int32_t V)
{
	uint32_t   *lengths = malloc(sizeof(uint32_t) * (size_t) V);
	char	   *strings = malloc((size_t) V * 16 + 16);
	size_t		pos = 0;
	rl_vocab   *v = NULL;
	int32_t		i;

	if (!lengths || !strings)
		tap_bail("out of memory");
	for (i = 0; i < V; i++)
	{
		int			n;

		if (i == RL_TOKEN_EOD)
			n = sprintf(strings + pos, "<eod>");
		else if (i == RL_TOKEN_UNK)
			n = sprintf(strings + pos, "<unk>");
		else
			n = sprintf(strings + pos, "t%d", (int) i);
		lengths[i] = (uint32_t) n;
		pos += (size_t) n;
	}
	if (rl_vocab_create(env, V, lengths, strings, &v) != RL_OK)
		v = NULL;
	free(lengths);
	free(strings);
	return v;
}

/* A model of the given shape with uniform random weights. */
rl_model *
test_model(rl_env *env, rl_cell_kind cell, int32_t V, int32_t E, int32_t H,
		   int32_t L, double scale, uint64_t seed)
{
	rl_config	cfg;
	rl_model   *m = NULL;
	rl_vocab   *v;
	rl_rng		rng;

	memset(&cfg, 0, sizeof(cfg));
	cfg.cell = cell;
	cfg.tokenizer = RL_TOK_WORD;
	cfg.lowercase = 1;
	cfg.vocab_size = V;
	cfg.embedding_dim = E;
	cfg.hidden_size = H;
	cfg.num_layers = L;
	v = test_vocab(env, V);
	if (v == NULL)
		tap_bail("could not build a test vocabulary: %s", env->errmsg);
	if (rl_model_create(env, &cfg, v, &m) != RL_OK)
		tap_bail("could not build a test model: %s", env->errmsg);
	rl_rng_seed(&rng, seed);
	test_fill_uniform(m->params, m->nparams, scale, &rng);
	return m;
}

/* A char model over a copy of v (the model owns its vocabulary), from seed. */
rl_model *
test_model_for_vocab(rl_env *env, const rl_vocab *v, rl_cell_kind cell,
					 int32_t E, int32_t H, int32_t L, uint64_t seed)
{
	rl_config	cfg;
	rl_vocab   *copy;
	rl_model   *m;
	uint32_t   *lens = malloc((size_t) v->size * sizeof(uint32_t));
	int32_t		i;

	if (lens == NULL)
		tap_bail("out of memory");
	for (i = 0; i < v->size; i++)
	{
		size_t		len;

		(void) rl_vocab_token(v, i, &len);
		lens[i] = (uint32_t) len;
	}
	if (rl_vocab_create(env, v->size, lens, v->strings, &copy) != RL_OK)
		tap_bail("rl_vocab_create: %s", env->errmsg);
	free(lens);
	memset(&cfg, 0, sizeof(cfg));
	cfg.cell = cell;
	cfg.tokenizer = RL_TOK_CHAR;
	cfg.lowercase = 1;
	cfg.vocab_size = copy->size;
	cfg.embedding_dim = E;
	cfg.hidden_size = H;
	cfg.num_layers = L;
	if (rl_model_create(env, &cfg, copy, &m) != RL_OK)
		tap_bail("rl_model_create: %s", env->errmsg);
	rl_model_init_weights(m, seed, 1.0f);
	return m;
}
