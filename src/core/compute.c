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
 *
 * int8 (scoring only) changes just the one-row products of a stream, the
 * bandwidth-bound recurrent step of per-row scoring and generation: they
 * read an int8 copy of the weight matrices with one scale per row and sum
 * the fp32 activations in fp32.
 */
#include "backend.h"

#include <math.h>
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
	if (want == RL_PREC_INT8)
	{
		*got = RL_PREC_INT8;	/* own kernels, on every processor */
		return RL_OK;
	}
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
	switch (p)
	{
		case RL_PREC_BF16:
			return "bf16";
		case RL_PREC_AUTO:
			return "auto";
		case RL_PREC_INT8:
			return "int8";
		case RL_PREC_FP32:
			break;
	}
	return "fp32";
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

/* Frees what rl_prod_init or rl_prod_init_int8 allocated. */
void
rl_prod_free(rl_env *env, rl_prod *p)
{
	if (p == NULL)
		return;
	if (p->w16)
		rl_free(env, p->w16);
	if (p->w8)
		rl_free(env, p->w8);
	if (p->scales)
		rl_free(env, p->scales);
	memset(p, 0, sizeof(*p));
}

/* Quantizes one row: scale = max |w| / 127, q = round(w / scale). */
static void
quantize_row(const float *w, size_t n, int8_t *q, float *scale)
{
	float		mx = 0.0f;
	size_t		j;

	for (j = 0; j < n; j++)
		if (fabsf(w[j]) > mx)
			mx = fabsf(w[j]);
	*scale = mx > 0.0f ? mx / 127.0f : 1.0f;
	for (j = 0; j < n; j++)
	{
		long		v = lrintf(w[j] / *scale);

		q[j] = (int8_t) (v > 127 ? 127 : v < -127 ? -127 : v);
	}
}

/* Adds the matrix at x (rows x cols) of the weights to p's int8 copy. */
static void
add_int8_matrix(rl_prod *p, const float *x, size_t rows, size_t cols, size_t *nscales)
{
	rl_prod_matrix *mx = &p->mats[p->nmats++];
	size_t		r;

	mx->off = (size_t) (x - p->w);
	mx->rows = rows;
	mx->cols = cols;
	mx->scale0 = *nscales;
	if (p->scales)
		for (r = 0; r < rows; r++)
			quantize_row(x + r * cols, cols, p->w8 + mx->off + r * cols, &p->scales[*nscales + r]);
	*nscales += rows;
}

/* Adds every weight matrix of model m (W_x, W_h of each layer, W_hy); sizes only without scales. */
static void
add_model_matrices(rl_prod *p, const rl_model *m, size_t *nscales)
{
	const rl_config *c = &m->cfg;
	size_t		GH = (size_t) rl_cell_gates(c->cell) * c->hidden_size;
	int			l;

	p->nmats = 0;
	*nscales = 0;
	for (l = 0; l < c->num_layers; l++)
	{
		add_int8_matrix(p, m->layers[l].wx, GH, (size_t) m->layers[l].in_dim, nscales);
		add_int8_matrix(p, m->layers[l].wh, GH, (size_t) c->hidden_size, nscales);
	}
	add_int8_matrix(p, m->why, (size_t) c->vocab_size, (size_t) c->hidden_size, nscales);
}

/*
 * Sets p up so that the one-row products on model m's weight matrices read
 * an int8 copy of them, one scale per row (max |w| / 127, rounded to
 * nearest); every other product stays fp32.
 */
rl_status
rl_prod_init_int8(rl_env *env, rl_prod *p, const rl_model *m)
{
	size_t		nscales;

	memset(p, 0, sizeof(*p));
	p->w = m->params;
	p->nw = m->nparams;
	add_model_matrices(p, m, &nscales);
	p->w8 = rl_alloc(env, m->nparams ? m->nparams : 1);
	p->scales = p->w8 ? rl_alloc_array(env, nscales, sizeof(float)) : NULL;
	if (p->scales == NULL)
	{
		rl_prod_free(env, p);
		return env->status;
	}
	add_model_matrices(p, m, &nscales);
	p->int8 = 1;
	return RL_OK;
}

/* The one-row product on the int8 copy, if b is one of its matrices' rows; 0 if not. */
static int
int8_matvec(const rl_prod *p, int n, int k, const float *a, const float *b, float beta,
			float *c)
{
	size_t		off = (size_t) (b - p->w);
	int			i;

	for (i = 0; i < p->nmats; i++)
	{
		const rl_prod_matrix *mx = &p->mats[i];

		if (off >= mx->off && off < mx->off + mx->rows * mx->cols &&
			mx->cols == (size_t) k && (off - mx->off) % mx->cols == 0 &&
			(off - mx->off) / mx->cols + (size_t) n <= mx->rows)
		{
			rl_k_matvec_i8(p->w8 + off, p->scales + mx->scale0 + (off - mx->off) / mx->cols,
						   n, k, a, c, beta == 1.0f);
			return 1;
		}
	}
	return 0;
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
	int			lda16,
				ldb16;

	/* int8: one stream's one-row products on the weights' int8 copy */
	if (p && p->int8 && m == 1 && tb && !ta && ldb == k && alpha == 1.0f &&
		(beta == 0.0f || beta == 1.0f) && k > 0 && n > 0 &&
		b >= p->w && b < p->w + p->nw && int8_matvec(p, n, k, a, b, beta, c))
		return;
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
	/* the converted operands' leading dimensions may differ from the fp32 ones */
	lda16 = lda;
	ldb16 = ldb;
	a16 = operand16(p, a, ta ? k : m, ta ? m : k, &lda16, 0);
	b16 = operand16(p, b, tb ? n : k, tb ? k : n, &ldb16, 1);
	if (a16 == NULL || b16 == NULL)
	{
		rl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	bf16_backend->gemm_bf16(ta, tb, m, n, k, alpha, a16, lda16, b16, ldb16, beta, c, ldc);
}

/* ---------------- the reference backend ---------------- */

/* Element (i, j) of op(X), X row-major with leading dimension ld. */
#define OP(x, t, i, j, ld) ((t) ? (x)[(size_t) (j) * (ld) + (i)] : (x)[(size_t) (i) * (ld) + (j)])

/*
 * C = alpha op(A) op(B) + beta C as plain loops summing in fp32, each
 * element read through LOAD (the fp32 and bf16 products differ only there).
 */
#define REFERENCE_GEMM(LOAD) \
	do { \
		int			i_, j_, q_; \
		for (i_ = 0; i_ < m; i_++) \
			for (j_ = 0; j_ < n; j_++) \
			{ \
				float		s_ = 0.0f; \
				float	   *cij_ = c + (size_t) i_ * ldc + j_; \
				for (q_ = 0; q_ < k; q_++) \
					s_ += LOAD(OP(a, ta, i_, q_, lda)) * LOAD(OP(b, tb, q_, j_, ldb)); \
				*cij_ = alpha * s_ + (beta == 0.0f ? 0.0f : beta * *cij_); \
			} \
	} while (0)

#define AS_FP32(v) (v)

/* fp32 products as plain loops. */
void
rl_reference_sgemm(int ta, int tb, int m, int n, int k, float alpha,
				   const float *a, int lda, const float *b, int ldb,
				   float beta, float *c, int ldc)
{
	REFERENCE_GEMM(AS_FP32);
}

/* bf16 products as plain loops, summing in fp32. */
void
rl_reference_gemm_bf16(int ta, int tb, int m, int n, int k, float alpha,
					   const uint16_t *a, int lda, const uint16_t *b, int ldb,
					   float beta, float *c, int ldc)
{
	REFERENCE_GEMM(rl_bf16_to_float);
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
