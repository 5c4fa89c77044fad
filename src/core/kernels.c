/*
 * kernels.c
 *		Vector kernels for the work that is not a large matrix product: the
 *		gate nonlinearities, softmax sums and the one-row products of scoring
 *		and generation.
 *
 * Each set of kernels is one row of a table (rl_kernel_ops): portable,
 * AVX2+FMA, AVX-512 (F, BW, DQ, VL) and AVX-512 with AVX512_BF16.  The best
 * set the processor's feature flags allow is chosen once, at first use.  The
 * binary itself is built for the baseline x86-64 (or any other target) and
 * runs anywhere: each set's functions are compiled for their own
 * instruction set and only ever called where the flags allow.  A new set
 * is one more row.
 *
 * The one-row product also comes from an int8 copy of the weights (one
 * scale per row) times the activations as 13-bit integers (one scale per
 * call), summed exactly in int32, so every set gives the same bits.  The bf16 kernels (conversion,
 * and the one-row product from a bf16 copy of the weights with fp32 sums) round to nearest even and flush denormals
 * to zero, as the AVX512_BF16 instructions do, so every set converts to the
 * same bits.  exp is the classic Cephes single-precision polynomial, tanh
 * uses its small-argument polynomial below 0.625 and 1 - 2/(e^{2x}+1) above;
 * both are within a few ulp of the libm results, far below what the
 * gradient checks and the reference comparison can see.
 */
#include "rnnlm_core.h"

#include <math.h>
#include <stdlib.h>
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

/*
 * fp32 to bf16, rounding to nearest even.  Every kernel set gives the same
 * bits as this one: denormals become zero of the same sign (as the
 * AVX512_BF16 instruction does) and a NaN stays a quiet NaN.
 */
static inline uint16_t
bf16_round(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	if ((u & 0x7f800000u) == 0)
		return (uint16_t) ((u >> 16) & 0x8000u);	/* zero or denormal */
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((u >> 16) | 0x0040u);	/* NaN */
	return (uint16_t) ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* The fp32 value of a bf16. */
static inline float
bf16_value(uint16_t h)
{
	uint32_t	u = (uint32_t) h << 16;
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* y = bf16(x), elementwise. */
static void
to_bf16_portable(const float *x, uint16_t *y, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		y[i] = bf16_round(x[i]);
}

/* y = A bf16(x) (+ y), A bf16 row-major [n, k], accumulated in fp32. */
static void
matvec_bf16_portable(const uint16_t *a, int n, int k, const float *x, float *y,
					 int accumulate)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		const uint16_t *r = a + (size_t) i * k;
		float		s = 0.0f;

		for (j = 0; j < k; j++)
			s += bf16_value(r[j]) * bf16_value(bf16_round(x[j]));
		y[i] = accumulate ? y[i] + s : s;
	}
}

/*
 * The activations of an int8 product as integers: x[j] = sx * qx[j] with
 * |qx| <= RL_I8_XMAX, rounded to nearest; returns sx (0 when x is all zero
 * or not finite, and then qx is all zero).  13 bits keep every int32 sum of
 * a row of up to 16,384 products exact.
 */
#define RL_I8_XMAX 4095

static float
quantize_x(const float *x, int k, int16_t *qx)
{
	float		mx = 0.0f,
				inv;
	int			j;

	for (j = 0; j < k; j++)
		if (fabsf(x[j]) > mx)
			mx = fabsf(x[j]);
	if (!(mx > 0.0f) || !isfinite(mx))
	{
		memset(qx, 0, (size_t) k * sizeof(int16_t));
		return 0.0f;
	}
	inv = (float) RL_I8_XMAX / mx;
	for (j = 0; j < k; j++)
		qx[j] = (int16_t) lrintf(x[j] * inv);
	return mx / (float) RL_I8_XMAX;
}

/* The largest k an int8 product takes (the widest layer input). */
#define RL_I8_MAXK (RL_MAX_EMBED > RL_MAX_HIDDEN ? RL_MAX_EMBED : RL_MAX_HIDDEN)

/* Stores row i's result: the exact integer sum times both scales. */
static inline void
i8_store(float *y, int i, int32_t sum, const float *scale, float sx, int accumulate)
{
	float		v = (float) sum * (scale[i] * sx);

	y[i] = accumulate ? y[i] + v : v;
}

/* y = diag(scale) Q x (+ y), Q int8 row-major [n, k]: the one-row product from int8 weights. */
static void
matvec_i8_portable(const int8_t *q, const float *scale, int n, int k, const float *x,
				   float *y, int accumulate)
{
	int16_t		qx[RL_I8_MAXK];
	float		sx = quantize_x(x, k, qx);
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		const int8_t *r = q + (size_t) i * k;
		int32_t		s = 0;

		for (j = 0; j < k; j++)
			s += (int32_t) r[j] * qx[j];
		i8_store(y, i, s, scale, sx, accumulate);
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


/* bf16 of 8 floats, as bf16_round does, in the low half of each 32-bit lane. */
AVX2 static inline __m256i
bf16_round8(__m256 x)
{
	__m256i		u = _mm256_castps_si256(x);
	__m256i		top = _mm256_srli_epi32(u, 16);
	__m256i		zero_exp = _mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7f800000)),
											  _mm256_setzero_si256());
	__m256i		nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
										 _mm256_set1_epi32(0x7f800000));
	__m256i		odd = _mm256_and_si256(top, _mm256_set1_epi32(1));
	__m256i		r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), odd), 16);

	r = _mm256_blendv_epi8(r, _mm256_or_si256(top, _mm256_set1_epi32(0x40)), nan);
	return _mm256_blendv_epi8(r, _mm256_and_si256(top, _mm256_set1_epi32(0x8000)), zero_exp);
}

/* The fp32 value of bf16(x) for 8 floats. */
AVX2 static inline __m256
bf16_trunc8(__m256 x)
{
	return _mm256_castsi256_ps(_mm256_slli_epi32(bf16_round8(x), 16));
}

/* 8 bf16 as fp32. */
AVX2 static inline __m256
bf16_load8(const uint16_t *p)
{
	__m256i		w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* y = bf16(x), sixteen at a time. */
AVX2 static void
to_bf16_avx2(const float *x, uint16_t *y, size_t n)
{
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256i		p = _mm256_packus_epi32(bf16_round8(_mm256_loadu_ps(x + i)),
											bf16_round8(_mm256_loadu_ps(x + i + 8)));

		_mm256_storeu_si256((__m256i *) (y + i), _mm256_permute4x64_epi64(p, 0xD8));
	}
	to_bf16_portable(x + i, y + i, n - i);
}

/* y = A bf16(x) (+ y), A bf16 [n, k]: the weights widened as they are loaded. */
AVX2 static void
matvec_bf16_avx2(const uint16_t *a, int n, int k, const float *x, float *y, int accumulate)
{
	int			i = 0,
				j;

	for (; i + 4 <= n; i += 4)
	{
		const uint16_t *r0 = a + (size_t) i * k;
		const uint16_t *r1 = r0 + k,
				   *r2 = r1 + k,
				   *r3 = r2 + k;
		__m256		s0 = _mm256_setzero_ps(),
					s1 = _mm256_setzero_ps(),
					s2 = _mm256_setzero_ps(),
					s3 = _mm256_setzero_ps();
		float		t[4];
		int			q;

		for (j = 0; j + 8 <= k; j += 8)
		{
			__m256		xv = bf16_trunc8(_mm256_loadu_ps(x + j));

			s0 = _mm256_fmadd_ps(bf16_load8(r0 + j), xv, s0);
			s1 = _mm256_fmadd_ps(bf16_load8(r1 + j), xv, s1);
			s2 = _mm256_fmadd_ps(bf16_load8(r2 + j), xv, s2);
			s3 = _mm256_fmadd_ps(bf16_load8(r3 + j), xv, s3);
		}
		t[0] = hsum8(s0);
		t[1] = hsum8(s1);
		t[2] = hsum8(s2);
		t[3] = hsum8(s3);
		for (; j < k; j++)
		{
			float		xj = bf16_value(bf16_round(x[j]));

			t[0] += bf16_value(r0[j]) * xj;
			t[1] += bf16_value(r1[j]) * xj;
			t[2] += bf16_value(r2[j]) * xj;
			t[3] += bf16_value(r3[j]) * xj;
		}
		for (q = 0; q < 4; q++)
			y[i + q] = accumulate ? y[i + q] + t[q] : t[q];
	}
	matvec_bf16_portable(a + (size_t) i * k, n - i, k, x, y + i, accumulate);
}

/* Horizontal sum of 8 int32. */
AVX2 static inline int32_t
hsum8i(__m256i v)
{
	__m128i		lo = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));

	lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0x4E));
	lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0xB1));
	return _mm_cvtsi128_si32(lo);
}

/* Row r's int8 weights (16 from j), widened, times the integer activations, added to acc. */
#define I8_STEP(acc, row) \
	acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16( \
		_mm_loadu_si128((const __m128i *) ((row) + j))), xv))

/*
 * y = diag(scale) Q x (+ y), four rows at a time: the int8 weights widened
 * to int16 and multiplied by the integer activations in pairs (vpmaddwd),
 * sixteen a step; the sums are exact, so every set gives the same result.
 */
AVX2 static void
matvec_i8_avx2(const int8_t *q, const float *scale, int n, int k, const float *x, float *y,
			   int accumulate)
{
	int16_t		qx[RL_I8_MAXK];
	float		sx = quantize_x(x, k, qx);
	int			i = 0,
				j,
				r;

	for (; i < n; i += 4)
	{
		int			rows = n - i < 4 ? n - i : 4;
		const int8_t *q0 = q + (size_t) i * k;
		const int8_t *q1 = q0 + (rows > 1 ? k : 0),
				   *q2 = q0 + (rows > 2 ? 2 * (size_t) k : 0),
				   *q3 = q0 + (rows > 3 ? 3 * (size_t) k : 0);
		__m256i		s0 = _mm256_setzero_si256(),
					s1 = _mm256_setzero_si256(),
					s2 = _mm256_setzero_si256(),
					s3 = _mm256_setzero_si256();
		int32_t		t[4];

		/* fewer than four rows left: the missing ones repeat row 0, unused */
		for (j = 0; j + 16 <= k; j += 16)
		{
			__m256i		xv = _mm256_loadu_si256((const __m256i *) (qx + j));

			I8_STEP(s0, q0);
			I8_STEP(s1, q1);
			I8_STEP(s2, q2);
			I8_STEP(s3, q3);
		}
		t[0] = hsum8i(s0);
		t[1] = hsum8i(s1);
		t[2] = hsum8i(s2);
		t[3] = hsum8i(s3);
		for (r = 0; r < rows; r++)
		{
			const int8_t *qr = r == 0 ? q0 : r == 1 ? q1 : r == 2 ? q2 : q3;
			int			jj;

			for (jj = j; jj < k; jj++)
				t[r] += (int32_t) qr[jj] * qx[jj];
			i8_store(y, i + r, t[r], scale, sx, accumulate);
		}
	}
}

/* ---------------- AVX-512 versions ---------------- */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")))

/* exp of 16 floats (the Cephes polynomial of exp8). */
AVX512 static inline __m512
exp16(__m512 x)
{
	__m512		fx,
				y,
				z;
	__m512i		e;

	x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
	x = _mm512_max_ps(x, _mm512_set1_ps(-87.3365447505531f));
	fx = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
	fx = _mm512_roundscale_ps(fx, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
	x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
	x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
	z = _mm512_mul_ps(x, x);
	y = _mm512_set1_ps(1.9875691500e-4f);
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
	y = _mm512_fmadd_ps(y, z, _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
	e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(fx), _mm512_set1_epi32(127)), 23);
	return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

/* tanh of 16 floats (the polynomials of tanh8). */
AVX512 static inline __m512
tanh16(__m512 x)
{
	const __m512 one = _mm512_set1_ps(1.0f);
	__m512		ax = _mm512_abs_ps(x);
	__m512		z = _mm512_mul_ps(x, x);
	__m512		small,
				large;

	small = _mm512_set1_ps(-5.70498872745e-3f);
	small = _mm512_fmadd_ps(small, z, _mm512_set1_ps(2.06390887954e-2f));
	small = _mm512_fmadd_ps(small, z, _mm512_set1_ps(-5.37397155531e-2f));
	small = _mm512_fmadd_ps(small, z, _mm512_set1_ps(1.33314422036e-1f));
	small = _mm512_fmadd_ps(small, z, _mm512_set1_ps(-3.33332819422e-1f));
	small = _mm512_fmadd_ps(_mm512_mul_ps(small, z), x, x);
	large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f),
											 _mm512_add_ps(exp16(_mm512_add_ps(ax, ax)), one)));
	large = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(large),
												_mm512_and_si512(_mm512_castps_si512(x),
																 _mm512_set1_epi32((int) 0x80000000u))));
	return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_GE_OQ),
								small, large);
}

/* In-place logistic function. */
AVX512 static void
sigmoid_avx512(float *x, size_t n)
{
	const __m512 one = _mm512_set1_ps(1.0f);
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(x + i)));

		_mm512_storeu_ps(x + i, _mm512_div_ps(one, _mm512_add_ps(one, e)));
	}
	sigmoid_avx2(x + i, n - i);
}

/* In-place tanh. */
AVX512 static void
tanh_avx512(float *x, size_t n)
{
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(x + i, tanh16(_mm512_loadu_ps(x + i)));
	tanh_avx2(x + i, n - i);
}

/* sum of exp(x - shift), terms stored in out unless NULL. */
AVX512 static double
expsum_avx512(const float *x, size_t n, float shift, float *out)
{
	__m512		s = _mm512_setzero_ps();
	__m512		sh = _mm512_set1_ps(shift);
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh));

		if (out)
			_mm512_storeu_ps(out + i, e);
		s = _mm512_add_ps(s, e);
	}
	return (double) _mm512_reduce_add_ps(s) +
		expsum_avx2(x + i, n - i, shift, out ? out + i : NULL);
}

/* y = A x (+ y), four rows at a time. */
AVX512 static void
matvec_avx512(const float *a, int n, int k, const float *x, float *y, int accumulate)
{
	int			i = 0,
				j,
				q;

	for (; i + 4 <= n; i += 4)
	{
		const float *r = a + (size_t) i * k;
		__m512		s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(),
		_mm512_setzero_ps(), _mm512_setzero_ps()};
		float		t[4];

		for (j = 0; j + 16 <= k; j += 16)
		{
			__m512		xv = _mm512_loadu_ps(x + j);

			for (q = 0; q < 4; q++)
				s[q] = _mm512_fmadd_ps(_mm512_loadu_ps(r + (size_t) q * k + j), xv, s[q]);
		}
		for (q = 0; q < 4; q++)
		{
			t[q] = _mm512_reduce_add_ps(s[q]);
			if (j < k)
				matvec_avx2(r + (size_t) q * k + j, 1, k - j, x + j, &t[q], 1);
			y[i + q] = accumulate ? y[i + q] + t[q] : t[q];
		}
	}
	matvec_avx2(a + (size_t) i * k, n - i, k, x, y + i, accumulate);
}

/* Adam on gradients scaled by gscale: the operations of adam_avx2. */
AVX512 static void
adam_avx512(float *p, const float *g, float *m, float *v, size_t n,
			float gscale, float step, float rc2)
{
	const __m512 b1 = _mm512_set1_ps(0.9f),
				one_b1 = _mm512_set1_ps(0.1f),
				b2 = _mm512_set1_ps(0.999f),
				one_b2 = _mm512_set1_ps(0.001f),
				eps = _mm512_set1_ps(1e-8f),
				vs = _mm512_set1_ps(gscale),
				vstep = _mm512_set1_ps(step),
				vrc2 = _mm512_set1_ps(rc2);
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), vs);
		__m512		mi = _mm512_fmadd_ps(b1, _mm512_loadu_ps(m + i), _mm512_mul_ps(one_b1, gi));
		__m512		vi = _mm512_fmadd_ps(b2, _mm512_loadu_ps(v + i),
										 _mm512_mul_ps(_mm512_mul_ps(one_b2, gi), gi));
		__m512		den = _mm512_fmadd_ps(_mm512_sqrt_ps(vi), vrc2, eps);

		_mm512_storeu_ps(m + i, mi);
		_mm512_storeu_ps(v + i, vi);
		_mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_loadu_ps(p + i),
											  _mm512_div_ps(_mm512_mul_ps(vstep, mi), den)));
	}
	adam_avx2(p + i, g + i, m + i, v + i, n - i, gscale, step, rc2);
}

/* bf16 of 16 floats, as bf16_round does, one per 32-bit lane. */
AVX512 static inline __m512i
bf16_round16(__m512 x)
{
	__m512i		u = _mm512_castps_si512(x);
	__m512i		top = _mm512_srli_epi32(u, 16);
	__mmask16	zero_exp = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
	__mmask16	nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
											  _mm512_set1_epi32(0x7f800000));
	__m512i		odd = _mm512_and_si512(top, _mm512_set1_epi32(1));
	__m512i		r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd), 16);

	r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(top, _mm512_set1_epi32(0x40)));
	return _mm512_mask_mov_epi32(r, zero_exp, _mm512_and_si512(top, _mm512_set1_epi32(0x8000)));
}

/* y = bf16(x), sixteen at a time. */
AVX512 static void
to_bf16_avx512(const float *x, uint16_t *y, size_t n)
{
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *) (y + i),
							_mm512_cvtepi32_epi16(bf16_round16(_mm512_loadu_ps(x + i))));
	to_bf16_avx2(x + i, y + i, n - i);
}

/* 16 bf16 as fp32. */
AVX512 static inline __m512
bf16_load16(const uint16_t *p)
{
	__m512i		w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *) p));

	return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

/* y = A bf16(x) (+ y), A bf16 [n, k], four rows at a time. */
AVX512 static void
matvec_bf16_avx512(const uint16_t *a, int n, int k, const float *x, float *y, int accumulate)
{
	int			i = 0,
				j,
				q;

	for (; i + 4 <= n; i += 4)
	{
		const uint16_t *r = a + (size_t) i * k;
		__m512		s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(),
		_mm512_setzero_ps(), _mm512_setzero_ps()};

		for (j = 0; j + 16 <= k; j += 16)
		{
			__m512		xv = _mm512_castsi512_ps(_mm512_slli_epi32(bf16_round16(_mm512_loadu_ps(x + j)), 16));

			for (q = 0; q < 4; q++)
				s[q] = _mm512_fmadd_ps(bf16_load16(r + (size_t) q * k + j), xv, s[q]);
		}
		for (q = 0; q < 4; q++)
		{
			float		t = _mm512_reduce_add_ps(s[q]);

			if (j < k)
				matvec_bf16_avx2(r + (size_t) q * k + j, 1, k - j, x + j, &t, 1);
			y[i + q] = accumulate ? y[i + q] + t : t;
		}
	}
	matvec_bf16_avx2(a + (size_t) i * k, n - i, k, x, y + i, accumulate);
}

/* Row r's int8 weights (32 from j), widened, times the integer activations, added to acc. */
#define I8_STEP512(acc, row) \
	acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_cvtepi8_epi16( \
		_mm256_loadu_si256((const __m256i *) ((row) + j))), xv))

/* y = diag(scale) Q x (+ y), as matvec_i8_avx2, thirty-two columns a step. */
AVX512 static void
matvec_i8_avx512(const int8_t *q, const float *scale, int n, int k, const float *x,
				 float *y, int accumulate)
{
	int16_t		qx[RL_I8_MAXK];
	float		sx = quantize_x(x, k, qx);
	int			i = 0,
				j,
				r;

	for (; i < n; i += 4)
	{
		int			rows = n - i < 4 ? n - i : 4;
		const int8_t *q0 = q + (size_t) i * k;
		const int8_t *q1 = q0 + (rows > 1 ? k : 0),
				   *q2 = q0 + (rows > 2 ? 2 * (size_t) k : 0),
				   *q3 = q0 + (rows > 3 ? 3 * (size_t) k : 0);
		__m512i		s0 = _mm512_setzero_si512(),
					s1 = _mm512_setzero_si512(),
					s2 = _mm512_setzero_si512(),
					s3 = _mm512_setzero_si512();
		int32_t		t[4];

		for (j = 0; j + 32 <= k; j += 32)
		{
			__m512i		xv = _mm512_loadu_si512((const void *) (qx + j));

			I8_STEP512(s0, q0);
			I8_STEP512(s1, q1);
			I8_STEP512(s2, q2);
			I8_STEP512(s3, q3);
		}
		t[0] = _mm512_reduce_add_epi32(s0);
		t[1] = _mm512_reduce_add_epi32(s1);
		t[2] = _mm512_reduce_add_epi32(s2);
		t[3] = _mm512_reduce_add_epi32(s3);
		for (r = 0; r < rows; r++)
		{
			const int8_t *qr = r == 0 ? q0 : r == 1 ? q1 : r == 2 ? q2 : q3;
			int			jj;

			for (jj = j; jj < k; jj++)
				t[r] += (int32_t) qr[jj] * qx[jj];
			i8_store(y, i + r, t[r], scale, sx, accumulate);
		}
	}
}

/* y = bf16(x) by the processor's own conversion (the same bits as bf16_round). */
AVX512BF16 static void
to_bf16_avx512bf16(const float *x, uint16_t *y, size_t n)
{
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256bh	h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));

		memcpy(y + i, &h, sizeof(h));
	}
	to_bf16_portable(x + i, y + i, n - i);
}

/* y = A bf16(x) (+ y) with the bf16 dot-product instruction, 32 columns a step. */
AVX512BF16 static void
matvec_bf16_avx512bf16(const uint16_t *a, int n, int k, const float *x, float *y,
					   int accumulate)
{
	int			i = 0,
				j,
				q;

	for (; i + 4 <= n; i += 4)
	{
		const uint16_t *r = a + (size_t) i * k;
		__m512		s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(),
		_mm512_setzero_ps(), _mm512_setzero_ps()};

		for (j = 0; j + 32 <= k; j += 32)
		{
			__m512bh	xv = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + j + 16),
												 _mm512_loadu_ps(x + j));

			for (q = 0; q < 4; q++)
			{
				__m512i		w = _mm512_loadu_si512((const void *) (r + (size_t) q * k + j));
				__m512bh	wb;

				memcpy(&wb, &w, sizeof(wb));
				s[q] = _mm512_dpbf16_ps(s[q], wb, xv);
			}
		}
		for (q = 0; q < 4; q++)
		{
			float		t = _mm512_reduce_add_ps(s[q]);

			if (j < k)
				matvec_bf16_avx2(r + (size_t) q * k + j, 1, k - j, x + j, &t, 1);
			y[i + q] = accumulate ? y[i + q] + t : t;
		}
	}
	matvec_bf16_avx2(a + (size_t) i * k, n - i, k, x, y + i, accumulate);
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
	void		(*to_bf16) (const float *x, uint16_t *y, size_t n);
	void		(*matvec_bf16) (const uint16_t *a, int n, int k, const float *x, float *y,
								int accumulate);
	void		(*matvec_i8) (const int8_t *q, const float *scale, int n, int k,
							  const float *x, float *y, int accumulate);
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

/* The processor has AVX-512 F, BW, DQ and VL (and AVX2 and FMA, for the tails). */
static int
has_avx512(void)
{
	rl_cpu_info cpu;

	rl_cpu_detect(&cpu);
	return has_avx2_fma() && cpu.has[RL_CPU_AVX512F] && cpu.has[RL_CPU_AVX512BW] &&
		cpu.has[RL_CPU_AVX512DQ] && cpu.has[RL_CPU_AVX512VL];
}

/* ... and AVX512_BF16. */
static int
has_avx512bf16(void)
{
	rl_cpu_info cpu;

	rl_cpu_detect(&cpu);
	return has_avx512() && cpu.has[RL_CPU_AVX512BF16];
}
#endif

/* Best first: the first usable row is the default. */
static const rl_kernel_ops kernel_table[] = {
#ifdef RL_HAVE_X86
	{"avx512bf16", has_avx512bf16, sigmoid_avx512, tanh_avx512, max_avx2, expsum_avx512,
	matvec_avx512, sumsq_avx2, adam_avx512, to_bf16_avx512bf16, matvec_bf16_avx512bf16,
	matvec_i8_avx512},
	{"avx512", has_avx512, sigmoid_avx512, tanh_avx512, max_avx2, expsum_avx512,
	matvec_avx512, sumsq_avx2, adam_avx512, to_bf16_avx512, matvec_bf16_avx512,
	matvec_i8_avx512},
	{"avx2+fma", has_avx2_fma, sigmoid_avx2, tanh_avx2, max_avx2, expsum_avx2,
	matvec_avx2, sumsq_avx2, adam_avx2, to_bf16_avx2, matvec_bf16_avx2, matvec_i8_avx2},
#endif
	{"portable", always, sigmoid_portable, tanh_portable, max_portable, expsum_portable,
	matvec_portable, sumsq_portable, adam_portable, to_bf16_portable, matvec_bf16_portable,
	matvec_i8_portable},
};

#define N_KERNEL_SETS ((int) (sizeof(kernel_table) / sizeof(kernel_table[0])))

static const rl_kernel_ops *kernels;	/* chosen once */

/*
 * The set in use, choosing on first call the best usable one, or the one
 * the environment variable RNNLM_TEST_KERNELS names (for the tests: a
 * server then runs, say, the portable set on any processor).
 */
static const rl_kernel_ops *
ops(void)
{
	const char *forced;
	int			i;

	if (kernels != NULL)
		return kernels;
	forced = getenv("RNNLM_TEST_KERNELS");
	for (i = 0; forced && i < N_KERNEL_SETS && kernels == NULL; i++)
		if (strcmp(kernel_table[i].name, forced) == 0 && kernel_table[i].usable())
			kernels = &kernel_table[i];
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

/* y = bf16(x), rounded to nearest even: the same bits from every set. */
void
rl_k_to_bf16(const float *x, uint16_t *y, size_t n)
{
	ops()->to_bf16 (x, y, n);
}

/* y = A bf16(x), or y += A bf16(x); A is bf16 row-major [n, k], sums in fp32. */
void
rl_k_matvec_bf16(const uint16_t *a, int n, int k, const float *x, float *y,
				 int accumulate)
{
	ops()->matvec_bf16 (a, n, k, x, y, accumulate);
}

/* The fp32 value of a bf16 (exact). */
float
rl_bf16_to_float(uint16_t h)
{
	return bf16_value(h);
}

/* y = diag(scale) Q x, or y += it; Q int8 row-major [n, k], sums in fp32. */
void
rl_k_matvec_i8(const int8_t *q, const float *scale, int n, int k, const float *x,
			   float *y, int accumulate)
{
	ops()->matvec_i8 (q, scale, n, k, x, y, accumulate);
}
