/*
 * test_kernels.c
 *		The vector kernels against float64 references, in every set compiled
 *		in (portable, AVX2+FMA, AVX-512, AVX-512 with AVX512_BF16; each only
 *		where the processor has it, skipped with a message otherwise), over
 *		every length up to a few vectors and extreme arguments.
 */
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 80

/* Fills x with values spread over [-a, a] plus a few extremes. */
static void
fill(float *x, int n, double a, rl_rng *rng)
{
	int			i;

	for (i = 0; i < n; i++)
		x[i] = (float) ((2.0 * rl_rng_uniform(rng) - 1.0) * a);
	if (n > 3)
	{
		x[0] = 0.0f;
		x[1] = 1e-6f;
		x[2] = (float) -a * 5;
		x[3] = 0.625f;
	}
}

/*
 * bf16 of x by its definition, independent of the kernels' integer trick:
 * the nearer of the two bf16 neighbours, the even one on a tie; denormals
 * to signed zero; NaN quiet with its upper bits kept.
 */
static uint16_t
bf16_by_definition(float x)
{
	uint32_t	u;
	uint16_t	lo;
	double		dlo,
				dhi;

	memcpy(&u, &x, 4);
	if (isnan(x))
		return (uint16_t) ((u >> 16) | 0x40);
	if (fabsf(x) < 1.17549435e-38f)
		return (uint16_t) ((u >> 16) & 0x8000);
	lo = (uint16_t) (u >> 16);
	dlo = fabs((double) x - (double) rl_bf16_to_float(lo));
	dhi = fabs((double) rl_bf16_to_float((uint16_t) (lo + 1)) - (double) x);
	if ((lo & 0x7fff) == 0x7f7f)	/* above the largest finite bf16: 2^128 */
		dhi = fabs(ldexp(1.0, 128) - fabs((double) x));
	if (dhi < dlo || (dhi == dlo && (lo & 1)))
		return (uint16_t) (lo + 1);
	return lo;
}

/* The bf16 kernels of the set in use: the conversion's bits, the one-row product. */
static void
check_bf16(const char *mode, rl_rng *rng)
{
	static const float special[] = {0.0f, -0.0f, 1e-39f, -1e-39f, 1.0f, -1.0f,
		1.00390625f, 1.01171875f, 3.3961776e38f, 3.4028235e38f, -3.4028235e38f,
	1.17549435e-38f, 65504.0f, 1e-30f};
	float		x[4 * MAXN],
				a[13 * MAXN],
				v[MAXN],
				out[13],
				inf = INFINITY,
				nan;
	uint16_t	h[4 * MAXN],
				a16[13 * MAXN];
	int			wrong = 0,
				n,
				i,
				j,
				rows;
	double		mv = 0;
	uint32_t	nanbits = 0x7fa00001u;

	memcpy(&nan, &nanbits, 4);
	for (n = 1; n <= 4 * MAXN; n++)
	{
		fill(x, n, 1e4, rng);
		for (i = 0; i < n && i < (int) (sizeof(special) / sizeof(special[0])); i++)
			x[(i * 7) % n] = special[i];
		if (n > 20)
		{
			x[17] = inf;
			x[18] = -inf;
			x[19] = nan;
		}
		rl_k_to_bf16(x, h, n);
		for (i = 0; i < n; i++)
			wrong += h[i] != bf16_by_definition(x[i]);
	}
	tap_ok(wrong == 0, "%s converts fp32 to bf16 by its definition: nearest, ties to even, denormals to zero, NaN quiet (%d wrong)",
		   mode, wrong);

	for (n = 1; n <= MAXN; n++)
		for (rows = 1; rows <= 13; rows += 4)
		{
			fill(a, rows * n, 1.0, rng);
			fill(v, n, 1.0, rng);
			rl_k_to_bf16(a, a16, (size_t) rows * n);
			for (i = 0; i < rows; i++)
				out[i] = 0.5f;
			rl_k_matvec_bf16(a16, rows, n, v, out, 1);
			for (i = 0; i < rows; i++)
			{
				double		s = 0.5;

				for (j = 0; j < n; j++)
					s += (double) rl_bf16_to_float(a16[i * n + j]) *
						rl_bf16_to_float(bf16_by_definition(v[j]));
				mv = fmax(mv, fabs(out[i] - s) / fmax(1.0, fabs(s)));
			}
		}
	tap_ok(mv < 1e-5, "%s bf16 one-row products match float64 on the bf16-rounded inputs (%.2e)", mode, mv);

	/* the int8 one-row product: diag(scale) Q qx sx, qx the activations as 13-bit integers */
	mv = 0;
	for (n = 1; n <= MAXN; n++)
		for (rows = 1; rows <= 13; rows += 4)
		{
			int8_t		q8[13 * MAXN];
			float		sc[13];
			double		vmax = 0;

			for (i = 0; i < rows * n; i++)
				q8[i] = (int8_t) ((int) (rl_rng_next(rng) % 255) - 127);
			for (i = 0; i < rows; i++)
				sc[i] = 0.001f * (float) (i + 1);
			fill(v, n, 1.0, rng);
			for (j = 0; j < n; j++)
				vmax = fmax(vmax, fabs(v[j]));
			for (i = 0; i < rows; i++)
				out[i] = 0.5f;
			rl_k_matvec_i8(q8, sc, rows, n, v, out, 1);
			for (i = 0; i < rows; i++)
			{
				double		s = 0,
							sx = vmax / 4095.0;

				for (j = 0; j < n; j++)
					s += (double) q8[i * n + j] * (vmax > 0 ? nearbyint(v[j] / sx) : 0);
				s = 0.5 + s * sc[i] * sx;
				mv = fmax(mv, fabs(out[i] - s) / fmax(1.0, fabs(s)));
			}
		}
	tap_ok(mv < 1e-5, "%s int8 one-row products match float64 on 13-bit integer activations (%.2e)", mode, mv);
}

/* Worst errors of one kernel mode; returns the count of bad cases. */
static int
check_mode(const char *mode)
{
	float		x[MAXN],
				y[MAXN],
				e[MAXN],
				a[13 * MAXN],
				v[MAXN],
				out[13];
	double		sig = 0,
				th = 0,
				es = 0,
				mv = 0;
	int			bad = 0,
				n,
				i,
				j,
				rows;
	rl_rng		rng;

	rl_rng_seed(&rng, 11);
	for (n = 1; n <= MAXN; n++)
	{
		double		want_sum = 0;
		float		mx;

		fill(x, n, 20.0, &rng);
		memcpy(y, x, sizeof(float) * n);
		rl_k_sigmoid(y, n);
		for (i = 0; i < n; i++)
			sig = fmax(sig, fabs(y[i] - 1.0 / (1.0 + exp(-(double) x[i]))));
		memcpy(y, x, sizeof(float) * n);
		rl_k_tanh(y, n);
		for (i = 0; i < n; i++)
			th = fmax(th, fabs(y[i] - tanh((double) x[i])));

		mx = rl_k_max(x, n);
		for (i = 0; i < n; i++)
			if (x[i] > mx)
				bad++;
		for (i = 0; i < n; i++)
			want_sum += exp((double) x[i] - mx);
		es = fmax(es, fabs(rl_k_expsum(x, n, mx, e) / want_sum - 1.0));
		for (i = 0; i < n; i++)
			es = fmax(es, fabs(e[i] - exp((double) x[i] - mx)) / fmax(exp((double) x[i] - mx), 1e-30));

		for (rows = 1; rows <= 13; rows += 4)
		{
			fill(a, rows * n, 1.0, &rng);
			fill(v, n, 1.0, &rng);
			for (i = 0; i < rows; i++)
				out[i] = 1.0f;
			rl_k_matvec(a, rows, n, v, out, 1);
			for (i = 0; i < rows; i++)
			{
				double		s = 1.0;

				for (j = 0; j < n; j++)
					s += (double) a[i * n + j] * v[j];
				mv = fmax(mv, fabs(out[i] - s) / fmax(1.0, fabs(s)));
			}
		}
	}
	tap_ok(sig < 2e-7 && th < 4e-7,
		   "%s sigmoid and tanh are within float precision of float64 (%.2e, %.2e)", mode, sig, th);
	tap_ok(es < 5e-6 && bad == 0,
		   "%s max is exact and exp terms and sums are within 5e-6 relative (%.2e)", mode, es);
	tap_ok(mv < 1e-5, "%s matrix-vector products match float64 (%.2e)", mode, mv);

	/* sum of squares and one scaled Adam step against float64 */
	{
		float		p[MAXN],
					g[MAXN],
					m1[MAXN],
					v1[MAXN];
		double		ss = 0,
					sq_err,
					ad = 0;

		fill(g, MAXN, 3.0, &rng);
		fill(p, MAXN, 1.0, &rng);
		for (i = 0; i < MAXN; i++)
		{
			ss += (double) g[i] * g[i];
			m1[i] = 0.01f * (float) i;
			v1[i] = 0.001f * (float) i;
		}
		sq_err = fabs(rl_k_sumsq(g, MAXN) / ss - 1.0);
		{
			float		p0[MAXN],
						m0[MAXN],
						v0[MAXN];

			memcpy(p0, p, sizeof(p));
			memcpy(m0, m1, sizeof(m1));
			memcpy(v0, v1, sizeof(v1));
			rl_k_adam(p, g, m1, v1, MAXN, 0.5f, 0.01f, 1.2f);
			for (i = 0; i < MAXN; i++)
			{
				double		gi = 0.5 * g[i];
				double		mm = 0.9 * m0[i] + 0.1 * gi;
				double		vv = 0.999 * v0[i] + 0.001 * gi * gi;
				double		pp = p0[i] - 0.01 * mm / (sqrt(vv) * 1.2 + 1e-8);

				ad = fmax(ad, fabs(p[i] - pp));
			}
		}
		tap_ok(sq_err < 1e-12 && ad < 1e-6,
			   "%s sum of squares and a scaled Adam step match float64 (%.2e, %.2e)", mode, sq_err, ad);
	}
	check_bf16(mode, &rng);
	return bad;
}

/*
 * The per-token log-probabilities of one document under each cell, with the
 * kernels in use, into lp[cell][position].
 */
#define DOC_LEN 40
static void
score_cells(double lp[3][DOC_LEN + 1])
{
	rl_env		env;
	int			cell,
				i;
	int32_t		ids[DOC_LEN];

	test_env_init(&env);
	for (i = 0; i < DOC_LEN; i++)
		ids[i] = 2 + (i * 7) % 29;
	for (cell = 0; cell < 3; cell++)
	{
		rl_model   *m = test_model(&env, (rl_cell_kind) cell, 31, 16, 48, 2, 0.3, 5);
		rl_state   *st;
		double		nll;
		size_t		correct;

		if (rl_state_create(&env, m, &st) != RL_OK ||
			rl_score(&env, st, ids, DOC_LEN, &nll, &correct, lp[cell]) != RL_OK)
			tap_bail("scoring: %s", env.errmsg);
		rl_state_free(&env, st);
		rl_model_free(&env, m);
	}
}

/* Every set of kernels compiled in: those this processor can run, checked; the rest skipped. */
void
test_kernels(void)
{
	int			i,
				usable,
				k;

	tap_diag("vector kernels in use: %s", rl_kernels_name());
	if (rl_kernels_count() != TEST_KERNEL_SETS)
		tap_bail("TEST_KERNELS_POINTS counts %d sets of kernels, not %d", TEST_KERNEL_SETS,
				 rl_kernels_count());
	for (i = 0; i < rl_kernels_count(); i++)
	{
		const char *name = rl_kernels_set_name(i, &usable);

		if (usable && rl_kernels_use(i) == 0)
			check_mode(name);
		else
			for (k = 0; k < TEST_KERNEL_SET_POINTS; k++)
				tap_ok(1, "# SKIP this processor cannot run the %s kernels (compiled, never selected here)", name);
	}
	/* every set this processor runs scores as the portable set does */
	{
		double		want[3][DOC_LEN + 1],
					got[3][DOC_LEN + 1],
					worst = 0;
		int			cell,
					j,
					sets = 0;

		for (i = 0; rl_kernels_set_name(i, &usable); i++)
			if (strcmp(rl_kernels_set_name(i, &usable), "portable") == 0)
				rl_kernels_use(i);
		score_cells(want);
		for (i = 0; i < rl_kernels_count(); i++)
		{
			if (rl_kernels_use(i) != 0)
				continue;
			sets++;
			score_cells(got);
			for (cell = 0; cell < 3; cell++)
				for (j = 0; j <= DOC_LEN; j++)
					worst = fmax(worst, fabs(got[cell][j] - want[cell][j]));
		}
		tap_ok(worst < 1e-5, "the %d sets of kernels this processor runs give the portable set's log-probabilities for rnn, lstm and gru (worst difference %.2e)",
			   sets, worst);
	}
	/* the table is best first: the default is its first set this processor can run */
	for (i = 0; rl_kernels_set_name(i, &usable) && !usable; i++)
		;
	rl_kernels_use(-1);
	tap_ok(strcmp(rl_kernels_name(), rl_kernels_set_name(i, &usable)) == 0 &&
		   rl_kernels_use(rl_kernels_count()) == -1,
		   "the default is the best set this processor can run (%s)", rl_kernels_name());
}
