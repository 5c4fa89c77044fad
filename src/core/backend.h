/*
 * backend.h
 *		What a backend of the matrix products provides: one table row each
 *		(blas.c: OpenBLAS, onednn.c: oneDNN, compute.c: the portable
 *		reference), consulted only by compute.c, which picks one once.
 *
 * Every product here is row-major C = alpha op(A) op(B) + beta C with m, n
 * and k at least 1.  A backend that runs helper threads starts them with
 * every signal blocked, and they never run code of rnnlm's.
 */
#ifndef RNNLM_BACKEND_H
#define RNNLM_BACKEND_H

#include "rnnlm_core.h"

typedef struct rl_backend
{
	const char *name;
	/* makes the backend usable (loads its library); 0, or -1 with err set */
	int			(*load) (char *err, size_t errlen);
	void		(*sgemm) (int ta, int tb, int m, int n, int k, float alpha,
						  const float *a, int lda, const float *b, int ldb,
						  float beta, float *c, int ldc);
	/* whether gemm_bf16 runs on this processor; NULL when there is none */
	int			(*bf16_usable) (void);
	/* bf16 inputs, fp32 sums and output */
	void		(*gemm_bf16) (int ta, int tb, int m, int n, int k, float alpha,
							  const uint16_t *a, int lda, const uint16_t *b, int ldb,
							  float beta, float *c, int ldc);
	void		(*set_threads) (int nthreads);
	/* the kernels it runs, in words */
	void		(*describe) (char *buf, size_t len);
} rl_backend;

extern const rl_backend rl_backend_openblas;
extern const rl_backend rl_backend_onednn;
extern const rl_backend rl_backend_reference;

/* the portable products, which a backend may fall back on */
extern void rl_reference_sgemm(int ta, int tb, int m, int n, int k, float alpha,
							   const float *a, int lda, const float *b, int ldb,
							   float beta, float *c, int ldc);
extern void rl_reference_gemm_bf16(int ta, int tb, int m, int n, int k, float alpha,
								   const uint16_t *a, int lda, const uint16_t *b,
								   int ldb, float beta, float *c, int ldc);

#endif							/* RNNLM_BACKEND_H */
