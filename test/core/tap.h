/*
 * tap.h
 *		A small TAP producer and the helpers the core unit tests share: an
 *		allocator that counts live blocks and can fail on demand, and
 *		builders for tiny vocabularies and models.
 *
 * Each test group (test_*.c) declares how many test points it emits; the
 * driver in test_core.c prints the plan from those counts.
 */
#ifndef RNNLM_TEST_TAP_H
#define RNNLM_TEST_TAP_H

#include "rnnlm_core.h"

#include <stddef.h>
#include <stdint.h>

/* ---------- TAP ---------- */

extern int	tap_ok(int cond, const char *fmt,...) __attribute__((format(printf, 2, 3)));
/* A test point for a known core bug: printed with "# TODO why", it does not fail the run. */
extern int	tap_todo(int cond, const char *why, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
extern void tap_diag(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern void tap_bail(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));
extern int	tap_emitted(void);
extern int	tap_failed(void);
extern int	tap_todo_failed(void);

/* ---------- the test environment ---------- */

/* rl_env_init_malloc(), with the allocator wrapped to count live blocks. */
extern void test_env_init(rl_env *env);
/* Blocks allocated through a test env and not yet freed. */
extern long test_live_blocks(void);
/* Makes allocation number n from now (0 = the next one) fail once; -1 = never. */
extern void test_fail_alloc_at(long n);

/* ---------- helpers ---------- */

/* Fills n floats uniformly from [-a, a]. */
extern void test_fill_uniform(float *p, size_t n, double a, rl_rng *rng);
/* A vocabulary "<eod>", "<unk>", "t2", ..., "t{V-1}". */
extern rl_vocab *test_vocab(rl_env *env, int32_t V);

/* The text settings of a tokenizer under the rules of rnnlm 0.1 (rules = 0). */
#define TEST_TEXT_V01(kind, lc) (&(rl_config) {.tokenizer = (kind), .lowercase = (lc)})
/* A model with the given shape and weights uniform in [-scale, scale]. */
extern rl_model *test_model(rl_env *env, rl_cell_kind cell, int32_t V, int32_t E,
							int32_t H, int32_t L, double scale, uint64_t seed);

/* A char model (lowercase) over a copy of v, initialised from seed (forget bias 1). */
extern rl_model *test_model_for_vocab(rl_env *env, const rl_vocab *v, rl_cell_kind cell,
									  int32_t E, int32_t H, int32_t L, uint64_t seed);

/* ---------- the groups, with the number of test points each emits ---------- */

extern void test_gradients(void);
extern void test_infer(void);
extern void test_sampling(void);
extern void test_tokenizers(void);
extern void test_format(void);
extern void test_training(void);
extern void test_kernels(void);
extern void test_run(void);
extern void test_compute(void);
extern void test_text(void);
extern void test_sampled(void);
extern void test_federated(void);

#define TEST_GRADIENTS_POINTS	60
#define TEST_INFER_POINTS		19
#define TEST_SAMPLING_POINTS	14
#define TEST_TOKENIZERS_POINTS	38
#define TEST_FORMAT_POINTS		117
#define TEST_TEXT_POINTS		19
#define TEST_SAMPLED_POINTS		4
#define TEST_FEDERATED_POINTS	14
#define TEST_TRAINING_POINTS	25
#if defined(__x86_64__) && defined(__GNUC__)
#define TEST_KERNEL_SETS		4
#else
#define TEST_KERNEL_SETS		1
#endif
#define TEST_KERNEL_SET_POINTS	7
#define TEST_KERNELS_POINTS		(TEST_KERNEL_SETS * TEST_KERNEL_SET_POINTS + 2)
#define TEST_RUN_POINTS			81
#define TEST_COMPUTE_POINTS		26

#endif							/* RNNLM_TEST_TAP_H */
