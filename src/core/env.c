/*
 * env.c
 *		Allocation, error reporting and cancellation through the caller's rl_env.
 */
#include "rnnlm_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* malloc-backed allocator for standalone use. */
static void *
malloc_alloc(void *ud, size_t size)
{
	(void) ud;
	return malloc(size);
}

/* free-backed deallocator for standalone use. */
static void
malloc_dealloc(void *ud, void *ptr)
{
	(void) ud;
	free(ptr);
}

/* A tick that always continues. */
static int
always_continue(void *ud)
{
	(void) ud;
	return 1;
}

/* Sets up env to use malloc/free and never cancel. */
void
rl_env_init_malloc(rl_env *env)
{
	memset(env, 0, sizeof(*env));
	env->alloc = malloc_alloc;
	env->dealloc = malloc_dealloc;
	env->tick = always_continue;
}

/* Records an error in env and returns its status. */
rl_status
rl_error(rl_env *env, rl_status st, const char *fmt,...)
{
	va_list		ap;
	char		buf[RL_ERRMSG_LEN];

	/* through a copy, so the arguments may include env->errmsg itself */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	memcpy(env->errmsg, buf, sizeof(buf));
	env->status = st;
	return st;
}

/* Allocates size bytes, recording RL_ERR_NOMEM on failure. */
void *
rl_alloc(rl_env *env, size_t size)
{
	void	   *p;

	if (size == 0)
		size = 1;
	if (env->max_alloc && size > env->max_alloc)
	{
		rl_error(env, RL_ERR_LIMIT,
				 "%zu MB are needed at once, more than the limit of %zu MB",
				 (size + (1u << 20) - 1) >> 20, env->max_alloc >> 20);
		return NULL;
	}
	p = env->alloc(env->ud, size);
	if (p == NULL)
		rl_error(env, RL_ERR_NOMEM, "out of memory allocating %zu bytes", size);
	return p;
}

/* Allocates size zeroed bytes. */
void *
rl_alloc0(rl_env *env, size_t size)
{
	void	   *p = rl_alloc(env, size);

	if (p)
		memset(p, 0, size);
	return p;
}

/* Allocates n zeroed elements of elem bytes, checking for overflow. */
void *
rl_alloc_array(rl_env *env, size_t n, size_t elem)
{
	size_t		total;

	if (rl_mul_overflow(n, elem, &total))
	{
		rl_error(env, RL_ERR_NOMEM, "allocation size overflows");
		return NULL;
	}
	return rl_alloc0(env, total);
}

/* Frees memory from rl_alloc; NULL is ignored. */
void
rl_free(rl_env *env, void *ptr)
{
	if (ptr)
		env->dealloc(env->ud, ptr);
}

/* Asks the caller whether to continue; records cancellation. */
int
rl_tick(rl_env *env)
{
	if (env->tick && !env->tick(env->ud))
	{
		rl_error(env, RL_ERR_CANCELLED, "cancelled");
		return 0;
	}
	return 1;
}

/* a * b, returning nonzero on overflow. */
int
rl_mul_overflow(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

/* a + b, returning nonzero on overflow. */
int
rl_add_overflow(size_t a, size_t b, size_t *out)
{
	return __builtin_add_overflow(a, b, out);
}

/* Grows *ptr (of *cap elements of elem bytes) to hold at least need; 0 on failure. */
int
rl_grow(rl_env *env, void **ptr, size_t *cap, size_t need, size_t elem)
{
	size_t		newcap;
	size_t		bytes;
	void	   *p;

	if (need <= *cap)
		return 1;
	newcap = *cap ? *cap : 16;
	while (newcap < need)
	{
		if (rl_mul_overflow(newcap, 2, &newcap))
		{
			rl_error(env, RL_ERR_NOMEM, "allocation size overflows");
			return 0;
		}
	}
	if (rl_mul_overflow(newcap, elem, &bytes))
	{
		rl_error(env, RL_ERR_NOMEM, "allocation size overflows");
		return 0;
	}
	p = rl_alloc(env, bytes);
	if (p == NULL)
		return 0;
	if (*ptr)
	{
		memcpy(p, *ptr, *cap * elem);
		rl_free(env, *ptr);
	}
	*ptr = p;
	*cap = newcap;
	return 1;
}

/* Seconds on a monotonic clock. */
double
rl_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}
