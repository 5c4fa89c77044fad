/*
 * kernels.c
 *		Vector kernels for the work that is not a large matrix product: the
 *		gate nonlinearities, softmax sums and the one-row products of scoring
 *		and generation.
 *
 * Each set of kernels is one row of a table (rl_kernel_ops): a portable
 * set and an AVX2+FMA set.  The best set the processor's feature flags
 * allow is chosen once, at first use (the binary itself is built for the
 * baseline x86-64, or any other target, and runs anywhere); a new set (for
 * AVX-512, say) is one more row.  exp is the classic Cephes single-precision polynomial, tanh
 * uses its small-argument polynomial below 0.625 and 1 - 2/(e^{2x}+1) above;
 * both are within a few ulp of the libm results, far below what the
 * gradient checks and the reference comparison can see.
 */
#include "rnnlm_core.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define RL_HAVE_X86 1
#include <immintrin.h>
#endif

/* ---------------- portable versions ---------------- */

/* In-place logistic function. */
static void
sigmoid_portable(float *x, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		x[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* In-place tanh. */
static void
tanh_portable(float *x, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		x[i] = tanhf(x[i]);
}

/* Largest element. */
static float
max_portable(const float *x, size_t n)
{
	float		m = -INFINITY;
	size_t		i;

	for (i = 0; i < n; i++)
		if (x[i] > m)
			m = x[i];
	return m;
}

/* sum of exp(x - shift); the terms are stored in out unless it is NULL. */
static double
expsum_portable(const float *x, size_t n, float shift, float *out)
{
	double		s = 0.0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		float		e = expf(x[i] - shift);

		if (out)
			out[i] = e;
		s += e;
	}
	return s;
}

/* y = A x (+ y when accumulate), A row-major [n, k]. */
static void
matvec_portable(const float *a, int n, int k, const float *x, float *y, int accumulate)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		const float *r = a + (size_t) i * k;
		float		s = 0.0f;

		for (j = 0; j < k; j++)
			s += r[j] * x[j];
		y[i] = accumulate ? y[i] + s : s;
	}
}

/* Sum of squares, accumulated in double. */
static double
sumsq_portable(const float *x, size_t n)
{
	double		s = 0.0;
	size_t		i;

	for (i = 0; i < n; i++)
		s += (double) x[i] * x[i];
	return s;
}

/* Adam with beta1 0.9, beta2 0.999, eps 1e-8 on gradients scaled by gscale. */
static void
adam_portable(float *p, const float *g, float *m, float *v, size_t n,
			  float gscale, float step, float rc2)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		float		gi = g[i] * gscale;

		m[i] = 0.9f * m[i] + 0.1f * gi;
		v[i] = 0.999f * v[i] + 0.001f * gi * gi;
		p[i] -= step * m[i] / (sqrtf(v[i]) * rc2 + 1e-8f);
	}
}

/* ---------------- AVX2 + FMA versions ---------------- */

#ifdef RL_HAVE_X86

#define AVX2 __attribute__((target("avx2,fma")))

/* exp of 8 floats (Cephes expf). */
AVX2 static inline __m256
exp8(__m256 x)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	__m256		fx,
				y,
				z;
	__m256i		e;

	x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447505531f));
	fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
	fx = _mm256_floor_ps(fx);
	x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
	x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
	z = _mm256_mul_ps(x, x);
	y = _mm256_set1_ps(1.9875691500e-4f);
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
	y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, one));
	e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* tanh of 8 floats. */
AVX2 static inline __m256
tanh8(__m256 x)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	const __m256 one = _mm256_set1_ps(1.0f);
	__m256		ax = _mm256_andnot_ps(sign, x);
	__m256		z = _mm256_mul_ps(x, x);
	__m256		small,
				large,
				e;

	/* |x| < 0.625: x + x^3 P(x^2) */
	small = _mm256_set1_ps(-5.70498872745e-3f);
	small = _mm256_fmadd_ps(small, z, _mm256_set1_ps(2.06390887954e-2f));
	small = _mm256_fmadd_ps(small, z, _mm256_set1_ps(-5.37397155531e-2f));
	small = _mm256_fmadd_ps(small, z, _mm256_set1_ps(1.33314422036e-1f));
	small = _mm256_fmadd_ps(small, z, _mm256_set1_ps(-3.33332819422e-1f));
	small = _mm256_fmadd_ps(_mm256_mul_ps(small, z), x, x);
	/* otherwise: sign(x) (1 - 2 / (exp(2|x|) + 1)) */
	e = exp8(_mm256_add_ps(ax, ax));
	large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
	large = _mm256_or_ps(large, _mm256_and_ps(sign, x));
	return _mm256_blendv_ps(small, large, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_GE_OQ));
}

/* In-place logistic function. */
AVX2 static void
sigmoid_avx2(float *x, size_t n)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		v = _mm256_loadu_ps(x + i);
		__m256		e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));

		_mm256_storeu_ps(x + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
	}
	sigmoid_portable(x + i, n - i);
}

/* In-place tanh. */
AVX2 static void
tanh_avx2(float *x, size_t n)
{
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, tanh8(_mm256_loadu_ps(x + i)));
	tanh_portable(x + i, n - i);
}

/* Largest element. */
AVX2 static float
max_avx2(const float *x, size_t n)
{
	__m256		m = _mm256_set1_ps(-INFINITY);
	float		lanes[8],
				r;
	size_t		i = 0;
	int			j;

	for (; i + 8 <= n; i += 8)
		m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
	_mm256_storeu_ps(lanes, m);
	r = max_portable(x + i, n - i);
	for (j = 0; j < 8; j++)
		if (lanes[j] > r)
			r = lanes[j];
	return r;
}

/* sum of exp(x - shift), terms stored in out unless NULL. */
AVX2 static double
expsum_avx2(const float *x, size_t n, float shift, float *out)
{
	__m256		s = _mm256_setzero_ps();
	__m256		sh = _mm256_set1_ps(shift);
	float		lanes[8];
	double		total;
	size_t		i = 0;
	int			j;

	for (; i + 8 <= n; i += 8)
	{
		__m256		e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));

		if (out)
			_mm256_storeu_ps(out + i, e);
		s = _mm256_add_ps(s, e);
	}
	_mm256_storeu_ps(lanes, s);
	total = expsum_portable(x + i, n - i, shift, out ? out + i : NULL);
	for (j = 0; j < 8; j++)
		total += lanes[j];
	return total;
}

/* Horizontal sum of 8 floats. */
AVX2 static inline float
hsum8(__m256 v)
{
	__m128		lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

/* y = A x (+ y), four rows at a time. */
AVX2 static void
matvec_avx2(const float *a, int n, int k, const float *x, float *y, int accumulate)
{
	int			i = 0,
				j;

	for (; i + 4 <= n; i += 4)
	{
		const float *r0 = a + (size_t) i * k;
		const float *r1 = r0 + k,
				   *r2 = r1 + k,
				   *r3 = r2 + k;
		__m256		s0 = _mm256_setzero_ps(),
					s1 = _mm256_setzero_ps(),
					s2 = _mm256_setzero_ps(),
					s3 = _mm256_setzero_ps();
		float		t0,
					t1,
					t2,
					t3;

		for (j = 0; j + 8 <= k; j += 8)
		{
			__m256		xv = _mm256_loadu_ps(x + j);

			s0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + j), xv, s0);
			s1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + j), xv, s1);
			s2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + j), xv, s2);
			s3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + j), xv, s3);
		}
		t0 = hsum8(s0);
		t1 = hsum8(s1);
		t2 = hsum8(s2);
		t3 = hsum8(s3);
		for (; j < k; j++)
		{
			t0 += r0[j] * x[j];
			t1 += r1[j] * x[j];
			t2 += r2[j] * x[j];
			t3 += r3[j] * x[j];
		}
		if (accumulate)
		{
			y[i] += t0;
			y[i + 1] += t1;
			y[i + 2] += t2;
			y[i + 3] += t3;
		}
		else
		{
			y[i] = t0;
			y[i + 1] = t1;
			y[i + 2] = t2;
			y[i + 3] = t3;
		}
	}
	matvec_portable(a + (size_t) i * k, n - i, k, x, y + i, accumulate);
}

/* Sum of squares, accumulated in double. */
AVX2 static double
sumsq_avx2(const float *x, size_t n)
{
	__m256d		a = _mm256_setzero_pd(),
				b = _mm256_setzero_pd();
	double		lanes[4];
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		v = _mm256_loadu_ps(x + i);
		__m256d		lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
		__m256d		hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));

		a = _mm256_fmadd_pd(lo, lo, a);
		b = _mm256_fmadd_pd(hi, hi, b);
	}
	_mm256_storeu_pd(lanes, _mm256_add_pd(a, b));
	return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sumsq_portable(x + i, n - i);
}

/*
 * Adam on gradients scaled by gscale.  The same operations as the portable
 * version, in the same order, except that the multiply-adds are fused.
 */
AVX2 static void
adam_avx2(float *p, const float *g, float *m, float *v, size_t n,
		  float gscale, float step, float rc2)
{
	const __m256 b1 = _mm256_set1_ps(0.9f),
				one_b1 = _mm256_set1_ps(0.1f),
				b2 = _mm256_set1_ps(0.999f),
				one_b2 = _mm256_set1_ps(0.001f),
				eps = _mm256_set1_ps(1e-8f),
				vs = _mm256_set1_ps(gscale),
				vstep = _mm256_set1_ps(step),
				vrc2 = _mm256_set1_ps(rc2);
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), vs);
		__m256		mi = _mm256_fmadd_ps(b1, _mm256_loadu_ps(m + i), _mm256_mul_ps(one_b1, gi));
		__m256		vi = _mm256_fmadd_ps(b2, _mm256_loadu_ps(v + i),
										 _mm256_mul_ps(_mm256_mul_ps(one_b2, gi), gi));
		__m256		den = _mm256_fmadd_ps(_mm256_sqrt_ps(vi), vrc2, eps);

		_mm256_storeu_ps(m + i, mi);
		_mm256_storeu_ps(v + i, vi);
		_mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i),
											  _mm256_div_ps(_mm256_mul_ps(vstep, mi), den)));
	}
	adam_portable(p + i, g + i, m + i, v + i, n - i, gscale, step, rc2);
}

#endif

/* ---------------- the table ---------------- */

/* One set of kernels and what the processor needs for it. */
typedef struct rl_kernel_ops
{
	const char *name;
	int			(*usable) (void);
	void		(*sigmoid) (float *x, size_t n);
	void		(*tanh) (float *x, size_t n);
	float		(*max) (const float *x, size_t n);
	double		(*expsum) (const float *x, size_t n, float shift, float *out);
	void		(*matvec) (const float *a, int n, int k, const float *x, float *y,
						   int accumulate);
	double		(*sumsq) (const float *x, size_t n);
	void		(*adam) (float *p, const float *g, float *m, float *v, size_t n,
						 float gscale, float step, float rc2);
} rl_kernel_ops;

/* Always usable. */
static int
always(void)
{
	return 1;
}

#ifdef RL_HAVE_X86
/* The processor (and the OS) support AVX2 and FMA. */
static int
has_avx2_fma(void)
{
	rl_cpu_info cpu;

	rl_cpu_detect(&cpu);
	return cpu.has[RL_CPU_AVX2] && cpu.has[RL_CPU_FMA];
}
#endif

/* Best first: the first usable row is the default. */
static const rl_kernel_ops kernel_table[] = {
#ifdef RL_HAVE_X86
	{"avx2+fma", has_avx2_fma, sigmoid_avx2, tanh_avx2, max_avx2, expsum_avx2,
	matvec_avx2, sumsq_avx2, adam_avx2},
#endif
	{"portable", always, sigmoid_portable, tanh_portable, max_portable, expsum_portable,
	matvec_portable, sumsq_portable, adam_portable},
};

#define N_KERNEL_SETS ((int) (sizeof(kernel_table) / sizeof(kernel_table[0])))

static const rl_kernel_ops *kernels;	/* chosen once */

/* The set in use, choosing the best usable one on first call. */
static const rl_kernel_ops *
ops(void)
{
	int			i;

	if (kernels == NULL)
		for (i = 0; i < N_KERNEL_SETS && kernels == NULL; i++)
			if (kernel_table[i].usable())
				kernels = &kernel_table[i];
	return kernels;
}

/* The name of the set in use. */
const char *
rl_kernels_name(void)
{
	return ops()->name;
}

/* The number of sets compiled in; rl_kernels_set(i) names each. */
int
rl_kernels_count(void)
{
	return N_KERNEL_SETS;
}

/* The name of set i, and whether this processor can run it. */
const char *
rl_kernels_set_name(int i, int *usable)
{
	if (i < 0 || i >= N_KERNEL_SETS)
		return NULL;
	*usable = kernel_table[i].usable();
	return kernel_table[i].name;
}

/* Uses set i (the best usable one for -1); -1 if this processor cannot run it. */
int
rl_kernels_use(int i)
{
	if (i < 0)
	{
		kernels = NULL;
		(void) ops();
		return 0;
	}
	if (i >= N_KERNEL_SETS || !kernel_table[i].usable())
		return -1;
	kernels = &kernel_table[i];
	return 0;
}

/* ---------------- the entry points ---------------- */

/* x = 1 / (1 + exp(-x)), elementwise. */
void
rl_k_sigmoid(float *x, size_t n)
{
	ops()->sigmoid (x, n);
}

/* x = tanh(x), elementwise. */
void
rl_k_tanh(float *x, size_t n)
{
	ops()->tanh (x, n);
}

/* The largest of n floats (-inf for none). */
float
rl_k_max(const float *x, size_t n)
{
	return ops()->max (x, n);
}

/* Sum of exp(x[i] - shift); each term is also written to out unless NULL. */
double
rl_k_expsum(const float *x, size_t n, float shift, float *out)
{
	return ops()->expsum (x, n, shift, out);
}

/* y = A x, or y += A x when accumulate; A is row-major [n, k]. */
void
rl_k_matvec(const float *a, int n, int k, const float *x, float *y, int accumulate)
{
	ops()->matvec (a, n, k, x, y, accumulate);
}

/* Sum of the squares of n floats, in double. */
double
rl_k_sumsq(const float *x, size_t n)
{
	return ops()->sumsq (x, n);
}

/* One Adam update of n parameters with gradients g * gscale. */
void
rl_k_adam(float *p, const float *g, float *m, float *v, size_t n,
		  float gscale, float step, float rc2)
{
	ops()->adam (p, g, m, v, n, gscale, step, rc2);
}
