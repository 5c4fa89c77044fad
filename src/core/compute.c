/*
 * compute.c
 *		The matrix products: which backend runs them, in which precision.
 *
 * A backend is one row of a table (backend.h): OpenBLAS, oneDNN and the
 * portable reference.  rl_compute_use picks the backend of the fp32
 * products and the one of the bf16 products once; every product then goes
 * through a pointer, with no test of flags per call.  "auto" takes
 * OpenBLAS for fp32 (the portable baseline) and oneDNN for bf16 where the
 * processor has AVX512_BF16 or AMX-BF16; naming a backend takes both from
 * it.  The reference backend is plain loops: slow, exact to its
 * definition, on every processor, so that the tests cover the bf16 paths
 * on a machine without bf16 instructions.
 *
 * Precision.  A bf16 product rounds both inputs to bf16 (nearest even) and
 * sums in fp32 into an fp32 result.  The weights stay fp32 (the master
 * copy that Adam updates); an rl_prod keeps their bf16 copy, refreshed by
 * its owner after they change, and converts any other operand (the
 * activations) into its scratch as the product starts.  A product whose
 * operand would not fit the scratch, or a call without an rl_prod, runs in
 * fp32.
 */
#include "backend.h"

#include <stdio.h>
#include <string.h>

static const rl_backend *const backends[] = {
	&rl_backend_openblas,
	&rl_backend_onednn,
	&rl_backend_reference,
};

#define N_BACKENDS ((int) (sizeof(backends) / sizeof(backends[0])))

static const rl_backend *fp32_backend;	/* NULL until chosen */
static const rl_backend *bf16_backend;	/* NULL: no bf16 products */
static char chosen[32];			/* what rl_compute_use was asked for */
static int	nthreads = 1;

/* The table row named name, or NULL. */
static const rl_backend *
find_backend(const char *name)
{
	int			i;

	for (i = 0; i < N_BACKENDS; i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

/* The processor has bf16 instructions of its own. */
static int
cpu_has_bf16(void)
{
	rl_cpu_info cpu;

	rl_cpu_detect(&cpu);
	return cpu.has[RL_CPU_AVX512BF16] || cpu.has[RL_CPU_AMXBF16];
}

/* Whether a backend loads and has bf16 products that run here. */
static int
bf16_runs(const rl_backend *b)
{
	char		err[RL_ERRMSG_LEN];

	return b->bf16_usable && b->load(err, sizeof(err)) == 0 && b->bf16_usable();
}

/*
 * Picks the backends: "auto", or the name of one.  0, or -1 with err set
 * (and nothing changed) when the named backend cannot be loaded.
 */
int
rl_compute_use(const char *name, char *err, size_t errlen)
{
	const rl_backend *f = NULL,
			   *h = NULL;
	int			i;

	if (fp32_backend && strcmp(name, chosen) == 0)
		return 0;
	if (strcmp(name, "auto") == 0)
	{
		for (i = 0; i < N_BACKENDS && f == NULL; i++)
			if (backends[i]->load(err, errlen) == 0)
				f = backends[i];
		if (cpu_has_bf16() && bf16_runs(&rl_backend_onednn))
			h = &rl_backend_onednn;
	}
	else
	{
		f = find_backend(name);
		if (f == NULL)
		{
			snprintf(err, errlen, "unknown compute backend \"%s\"", name);
			return -1;
		}
		if (f->load(err, errlen) != 0)
			return -1;
		if (bf16_runs(f))
			h = f;
	}
	fp32_backend = f;
	bf16_backend = h;
	snprintf(chosen, sizeof(chosen), "%s", name);
	rl_compute_set_threads(nthreads);
	return 0;
}

/* The name of backend i of the table, or NULL past its end. */
const char *
rl_backend_name(int i)
{
	return i >= 0 && i < N_BACKENDS ? backends[i]->name : NULL;
}

/* The backends in use, choosing "auto" on first use. */
static const rl_backend *
fp32(void)
{
	char		err[RL_ERRMSG_LEN];

	if (fp32_backend == NULL)
		(void) rl_compute_use("auto", err, sizeof(err));
	return fp32_backend;
}

/* Sets the helper threads of every loaded backend. */
void
rl_compute_set_threads(int n)
{
	nthreads = n < 1 ? 1 : n;
	if (fp32_backend && fp32_backend->set_threads)
		fp32_backend->set_threads(nthreads);
	if (bf16_backend && bf16_backend != fp32_backend && bf16_backend->set_threads)
		bf16_backend->set_threads(nthreads);
}

/* The thread count last set. */
int
rl_compute_threads(void)
{
	return nthreads;
}

/*
 * What a requested precision comes to here: bf16 needs a bf16 backend;
 * auto is bf16 where the processor has bf16 instructions and a backend
 * runs them, fp32 otherwise.  RL_ERR_UNSUPPORTED for bf16 that cannot run.
 */
rl_status
rl_precision_resolve(rl_env *env, rl_precision want, rl_precision *got)
{
	(void) fp32();
	*got = RL_PREC_FP32;
	if (want == RL_PREC_FP32)
		return RL_OK;
	if (want == RL_PREC_AUTO)
	{
		if (bf16_backend && cpu_has_bf16())
			*got = RL_PREC_BF16;
		return RL_OK;
	}
	if (bf16_backend == NULL && strcmp(chosen, "auto") != 0)
		return rl_error(env, RL_ERR_UNSUPPORTED,
						"the %s backend has no bf16 products on this processor", chosen);
	if (bf16_backend == NULL)
		return rl_error(env, RL_ERR_UNSUPPORTED, "%s",
						cpu_has_bf16() ?
						"oneDNN (libdnnl2), which runs the bf16 products, could not be used here" :
						"this processor has no bf16 instructions (AVX512_BF16 or AMX-BF16)");
	*got = RL_PREC_BF16;
	return RL_OK;
}

/* The name of a precision. */
const char *
rl_precision_name(rl_precision p)
{
	return p == RL_PREC_BF16 ? "bf16" : p == RL_PREC_AUTO ? "auto" : "fp32";
}

/* What is in use, for the runtime report. */
void
rl_compute_describe(rl_compute_info *info)
{
	int			i;

	memset(info, 0, sizeof(*info));
	(void) fp32();
	snprintf(info->chosen, sizeof(info->chosen), "%s", chosen);
	info->fp32 = fp32_backend ? fp32_backend->name : "";
	info->bf16 = bf16_backend ? bf16_backend->name : "";
	if (fp32_backend)
		fp32_backend->describe(info->fp32_kernel, sizeof(info->fp32_kernel));
	if (bf16_backend)
		bf16_backend->describe(info->bf16_kernel, sizeof(info->bf16_kernel));
	for (i = 0; i < N_BACKENDS && i < RL_MAX_BACKENDS; i++)
	{
		char		err[RL_ERRMSG_LEN];

		info->names[i] = backends[i]->name;
		info->loads[i] = backends[i]->load(err, sizeof(err)) == 0;
		info->has_bf16[i] = info->loads[i] && bf16_runs(backends[i]);
	}
	info->count = i;
}

/* Row-major C = alpha * op(A) * op(B) + beta * C, in fp32. */
void
rl_sgemm(int transa, int transb, int m, int n, int k,
		 float alpha, const float *a, int lda,
		 const float *b, int ldb,
		 float beta, float *c, int ldc)
{
	if (m <= 0 || n <= 0)
		return;
	if (k <= 0)
	{
		int			i,
					j;

		for (i = 0; i < m; i++)
			for (j = 0; j < n; j++)
				c[(size_t) i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t) i * ldc + j];
		return;
	}
	/* the recurrent step of one stream: a row-major matrix times a vector */
	if (m == 1 && transb && !transa && ldb == k && alpha == 1.0f &&
		(beta == 0.0f || beta == 1.0f))
	{
		rl_k_matvec(b, n, k, a, c, beta == 1.0f);
		return;
	}
	fp32()->sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---------------- bf16 products ---------------- */

/* Bytes rl_prod_init allocates for nw weights and scratch of cap elements. */
size_t
rl_prod_bytes(size_t nw, size_t cap)
{
	return (nw + 2 * cap) * sizeof(uint16_t);
}

/*
 * Sets p up for bf16 products on the weights w[0..nw), with room to
 * convert other operands of up to cap elements; w16 is filled at once.
 */
rl_status
rl_prod_init(rl_env *env, rl_prod *p, const float *w, size_t nw, size_t cap)
{
	memset(p, 0, sizeof(*p));
	p->w16 = rl_alloc_array(env, nw + 2 * cap, sizeof(uint16_t));
	if (p->w16 == NULL)
		return env->status;
	p->bf16 = 1;
	p->w = w;
	p->nw = nw;
	p->scratch = p->w16 + nw;
	p->cap = cap;
	rl_prod_sync(p);
	return RL_OK;
}

/* Refreshes the bf16 copy of the weights after they changed. */
void
rl_prod_sync(rl_prod *p)
{
	if (p && p->bf16)
		rl_k_to_bf16(p->w, p->w16, p->nw);
}

/* Frees what rl_prod_init allocated. */
void
rl_prod_free(rl_env *env, rl_prod *p)
{
	if (p && p->w16)
		rl_free(env, p->w16);
	if (p)
		memset(p, 0, sizeof(*p));
}

/*
 * The bf16 form of a rows x cols operand x (leading dimension *ld): the
 * weights' copy, or x converted into scratch slot (then *ld = cols).  NULL
 * when it does not fit.
 */
static const uint16_t *
operand16(const rl_prod *p, const float *x, int rows, int cols, int *ld, int slot)
{
	uint16_t   *s = p->scratch + (size_t) slot * p->cap;
	int			r;

	if (x >= p->w && x < p->w + p->nw)
		return p->w16 + (x - p->w);
	if ((size_t) rows * cols > p->cap)
		return NULL;
	for (r = 0; r < rows; r++)
		rl_k_to_bf16(x + (size_t) r * *ld, s + (size_t) r * cols, cols);
	*ld = cols;
	return s;
}

/*
 * C = alpha op(A) op(B) + beta C in the precision of p: as rl_sgemm when p
 * is NULL or fp32, else with bf16 inputs and fp32 sums.
 */
void
rl_mm(const rl_prod *p, int ta, int tb, int m, int n, int k,
	  float alpha, const float *a, int lda, const float *b, int ldb,
	  float beta, float *c, int ldc)
{
	const uint16_t *a16,
			   *b16;

	if (p == NULL || !p->bf16 || bf16_backend == NULL || m <= 0 || n <= 0 || k <= 0)
	{
		rl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	/* one stream's step: the bf16 one-row kernel on the weights' copy */
	if (m == 1 && tb && !ta && ldb == k && alpha == 1.0f &&
		(beta == 0.0f || beta == 1.0f) && b >= p->w && b < p->w + p->nw)
	{
		rl_k_matvec_bf16(p->w16 + (b - p->w), n, k, a, c, beta == 1.0f);
		return;
	}
	a16 = operand16(p, a, ta ? k : m, ta ? m : k, &lda, 0);
	b16 = operand16(p, b, tb ? n : k, tb ? k : n, &ldb, 1);
	if (a16 == NULL || b16 == NULL)
	{
		rl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	bf16_backend->gemm_bf16(ta, tb, m, n, k, alpha, a16, lda, b16, ldb, beta, c, ldc);
}

/* ---------------- the reference backend ---------------- */

/* Element (i, j) of op(X), X row-major with leading dimension ld. */
#define OP(x, t, i, j, ld) ((t) ? (x)[(size_t) (j) * (ld) + (i)] : (x)[(size_t) (i) * (ld) + (j)])

/* fp32 products as plain loops. */
void
rl_reference_sgemm(int ta, int tb, int m, int n, int k, float alpha,
				   const float *a, int lda, const float *b, int ldb,
				   float beta, float *c, int ldc)
{
	int			i,
				j,
				q;

	for (i = 0; i < m; i++)
		for (j = 0; j < n; j++)
		{
			float		s = 0.0f;
			float	   *cij = c + (size_t) i * ldc + j;

			for (q = 0; q < k; q++)
				s += OP(a, ta, i, q, lda) * OP(b, tb, q, j, ldb);
			*cij = alpha * s + (beta == 0.0f ? 0.0f : beta * *cij);
		}
}

/* bf16 products as plain loops, summing in fp32. */
void
rl_reference_gemm_bf16(int ta, int tb, int m, int n, int k, float alpha,
					   const uint16_t *a, int lda, const uint16_t *b, int ldb,
					   float beta, float *c, int ldc)
{
	int			i,
				j,
				q;

	for (i = 0; i < m; i++)
		for (j = 0; j < n; j++)
		{
			float		s = 0.0f;
			float	   *cij = c + (size_t) i * ldc + j;

			for (q = 0; q < k; q++)
				s += rl_bf16_to_float(OP(a, ta, i, q, lda)) *
					rl_bf16_to_float(OP(b, tb, q, j, ldb));
			*cij = alpha * s + (beta == 0.0f ? 0.0f : beta * *cij);
		}
}

/* Always usable. */
static int
reference_load(char *err, size_t errlen)
{
	(void) err;
	(void) errlen;
	return 0;
}

/* bf16 runs everywhere, in software. */
static int
reference_bf16_usable(void)
{
	return 1;
}

/* Says what it is. */
static void
reference_describe(char *buf, size_t len)
{
	snprintf(buf, len, "portable loops (reference)");
}

const rl_backend rl_backend_reference = {
	"reference", reference_load, rl_reference_sgemm, reference_bf16_usable,
	rl_reference_gemm_bf16, NULL, reference_describe
};
