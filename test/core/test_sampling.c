/*
 * test_sampling.c
 *		The random number generator and rl_sample: argmax at temperature 0,
 *		<unk> never drawn, top-k and top-p, reproducibility from a seed and
 *		the frequencies of many draws against the softmax distribution.
 */
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SN 7

/* One draw from a copy of logits (rl_sample may modify its input). */
static int32_t
draw(const float *logits, int32_t n, double temperature, int32_t top_k, double top_p,
	 rl_rng *rng, void *work)
{
	float		z[64];
	rl_sample_opts o;

	memcpy(z, logits, (size_t) n * sizeof(float));
	o.temperature = temperature;
	o.top_k = top_k;
	o.top_p = top_p;
	return rl_sample(z, n, &o, rng, work);
}

/* The argmax of logits, skipping <unk>. */
static int32_t
argmax_no_unk(const float *z, int32_t n)
{
	int32_t		best = RL_TOKEN_EOD,
				i;

	for (i = 0; i < n; i++)
		if (i != RL_TOKEN_UNK && z[i] > z[best])
			best = i;
	return best;
}

/*
 * Draws ndraws times and returns the chi-square statistic of the counts
 * against the probabilities p (ids with p == 0 must never be drawn: any
 * such draw makes the statistic infinite).
 */
static double
chi_square(const float *logits, const double *p, double temperature, int32_t top_k,
		   double top_p, int ndraws, uint64_t seed, void *work)
{
	long		counts[SN];
	rl_rng		rng;
	double		chi = 0.0;
	int			i;

	memset(counts, 0, sizeof(counts));
	rl_rng_seed(&rng, seed);
	for (i = 0; i < ndraws; i++)
	{
		int32_t		k = draw(logits, SN, temperature, top_k, top_p, &rng, work);

		if (k < 0 || k >= SN)
			return INFINITY;
		counts[k]++;
	}
	for (i = 0; i < SN; i++)
	{
		double		e = p[i] * ndraws;

		if (p[i] == 0.0)
		{
			if (counts[i] > 0)
				return INFINITY;
			continue;
		}
		chi += (counts[i] - e) * (counts[i] - e) / e;
	}
	return chi;
}

/* softmax(logits / temperature) without <unk>, in double. */
static void
softmax_no_unk(const float *z, double temperature, double *p)
{
	double		s = 0.0;
	int			i;

	for (i = 0; i < SN; i++)
	{
		p[i] = i == RL_TOKEN_UNK ? 0.0 : exp(z[i] / temperature);
		s += p[i];
	}
	for (i = 0; i < SN; i++)
		p[i] /= s;
}

/* Runs the sampling checks. */
void
test_sampling(void)
{
	void	   *work = malloc(rl_sample_work_size(64));
	rl_rng		rng,
				rng2;
	float		z[SN];
	float		unk_top[SN] = {0.5f, 9.0f, 0.2f, 1.0f, -1.0f, 0.9f, 0.0f};
	float		dist[SN] = {0.3f, 2.0f, 1.0f, -0.5f, 0.7f, 0.0f, 1.4f};
	double		p[SN];
	int			i,
				j,
				bad,
				unk_drawn,
				outside;
	double		chi,
				sum,
				mn,
				mx;

	if (work == NULL)
		tap_bail("out of memory");
	rl_rng_seed(&rng, 11);

	/* temperature 0 is the argmax, <unk> excluded */
	bad = 0;
	for (i = 0; i < 300; i++)
	{
		for (j = 0; j < SN; j++)
			z[j] = (float) (rl_rng_uniform(&rng) * 10.0 - 5.0);
		if (draw(z, SN, 0.0, 0, 1.0, &rng, work) != argmax_no_unk(z, SN))
			bad++;
	}
	tap_ok(bad == 0, "temperature 0 returns the argmax (%d mismatches in 300)", bad);
	tap_ok(draw(unk_top, SN, 0.0, 0, 1.0, &rng, work) == 3 &&
		   draw(unk_top, SN, 0.0, 5, 0.5, &rng, work) == 3,
		   "temperature 0 never returns <unk>, even when it has the highest logit");

	unk_drawn = 0;
	for (i = 0; i < 5000; i++)
		if (draw(unk_top, SN, 1.0, 0, 1.0, &rng, work) == RL_TOKEN_UNK)
			unk_drawn++;
	tap_ok(unk_drawn == 0, "sampling never draws <unk> (%d of 5000 draws)", unk_drawn);

	bad = 0;
	for (i = 0; i < 300; i++)
	{
		for (j = 0; j < SN; j++)
			z[j] = (float) (rl_rng_uniform(&rng) * 4.0 - 2.0);
		if (draw(z, SN, 1.0 + (i % 3), 1, 1.0, &rng, work) != argmax_no_unk(z, SN))
			bad++;
	}
	tap_ok(bad == 0, "top_k 1 returns the argmax at any temperature (%d mismatches in 300)", bad);

	/* dist's top two (without <unk>) are ids 6 and 2 */
	outside = 0;
	for (i = 0; i < 3000; i++)
	{
		int32_t		k = draw(dist, SN, 1.0, 2, 1.0, &rng, work);

		if (k != 6 && k != 2)
			outside++;
	}
	tap_ok(outside == 0, "top_k 2 draws only the two most likely tokens (%d outside)", outside);

	/* reproducibility */
	{
		int32_t		a[200],
					b[200],
					c[200];
		int			same = 1,
					differ = 0;

		rl_rng_seed(&rng, 1234);
		for (i = 0; i < 200; i++)
			a[i] = draw(dist, SN, 1.0, 0, 1.0, &rng, work);
		rl_rng_seed(&rng, 1234);
		for (i = 0; i < 200; i++)
			b[i] = draw(dist, SN, 1.0, 0, 1.0, &rng, work);
		rl_rng_seed(&rng2, 1235);
		for (i = 0; i < 200; i++)
			c[i] = draw(dist, SN, 1.0, 0, 1.0, &rng2, work);
		for (i = 0; i < 200; i++)
		{
			same &= a[i] == b[i];
			differ += a[i] != c[i];
		}
		tap_ok(same, "the same seed repeats the same 200 draws");
		tap_ok(differ > 50, "another seed gives other draws (%d of 200 differ)", differ);
	}

	/* frequencies: 4 degrees of freedom at most, p(chi2 > 35) < 1e-6 */
	softmax_no_unk(dist, 1.0, p);
	chi = chi_square(dist, p, 1.0, 0, 1.0, 60000, 99, work);
	tap_ok(chi < 35.0, "60000 draws at temperature 1 follow the softmax (chi-square %.2f, 5 dof)",
		   chi);
	softmax_no_unk(dist, 0.5, p);
	chi = chi_square(dist, p, 0.5, 0, 1.0, 60000, 98, work);
	tap_ok(chi < 35.0, "60000 draws at temperature 0.5 follow softmax(z / 0.5) (chi-square %.2f)",
		   chi);

	/* top_p: the smallest set of top tokens reaching top_p of the mass */
	outside = 0;
	for (i = 0; i < 2000; i++)
		if (draw(dist, SN, 1.0, 0, 0.01, &rng, work) != 6)
			outside++;
	tap_ok(outside == 0, "a small top_p keeps only the most likely token (%d others drawn)", outside);
	softmax_no_unk(dist, 1.0, p);
	{
		/* ids by probability: 6, 2, 4, 0, 5, 3; the first two hold less than 0.75 */
		double		two = p[6] + p[2];
		double		three = two + p[4];
		double		q[SN];

		for (i = 0; i < SN; i++)
			q[i] = (i == 6 || i == 2 || i == 4) ? p[i] / three : 0.0;
		chi = chi_square(dist, q, 1.0, 0, (two + three) / 2.0, 40000, 97, work);
		tap_ok(chi < 30.0,
			   "top_p %.3f keeps the top three tokens, renormalised (chi-square %.2f)",
			   (two + three) / 2.0, chi);
	}

	/* the generator itself */
	rl_rng_seed(&rng, 3);
	sum = 0.0;
	mn = 1.0;
	mx = 0.0;
	for (i = 0; i < 100000; i++)
	{
		double		u = rl_rng_uniform(&rng);

		sum += u;
		mn = fmin(mn, u);
		mx = fmax(mx, u);
	}
	tap_ok(mn >= 0.0 && mx < 1.0 && fabs(sum / 100000 - 0.5) < 0.005,
		   "rl_rng_uniform lies in [0, 1) with mean 1/2 (%.4f)", sum / 100000);

	/* nothing to draw but the specials */
	{
		float		two[2] = {-3.0f, 5.0f};

		tap_ok(draw(two, 2, 1.0, 0, 1.0, &rng, work) == RL_TOKEN_EOD &&
			   draw(two, 2, 0.0, 0, 1.0, &rng, work) == RL_TOKEN_EOD,
			   "with only <eod> and <unk>, <eod> is drawn");
	}

	/* rl_top_k against a full ranking by selection, with ties and a NaN */
	{
		float		lg[300];
		int32_t		got[300],
					want[300];
		unsigned char used[300];
		int			n,
					k,
					wrong = 0,
					cases = 0;

		for (n = 1; n <= 300; n += 37)
			for (k = 0; k <= n + 2; k += 1 + n / 5)
			{
				int32_t		c,
							m,
							r;

				for (i = 0; i < n; i++)
					lg[i] = (float) (rl_rng_next(&rng) % 17) * 0.5f;
				if (n > 3)
					lg[3] = NAN;
				c = rl_top_k(lg, n, k, got);
				/* the brute force: repeatedly the highest unused, lowest id first */
				memset(used, 0, sizeof(used));
				for (m = 0; m < (k < n ? k : n); m++)
				{
					int32_t		best = -1;

					for (r = 0; r < n; r++)
						if (!used[r] && !isnan(lg[r]) && (best < 0 || lg[r] > lg[best]))
							best = r;
					if (best < 0)
						break;
					used[best] = 1;
					want[m] = best;
				}
				wrong += c != m || (c > 0 && memcmp(got, want, sizeof(int32_t) * c) != 0);
				cases++;
			}
		tap_ok(wrong == 0, "rl_top_k ranks like a full sort, highest first, ties in id order, NaN last (%d of %d cases wrong)",
			   wrong, cases);
	}
	free(work);
}
