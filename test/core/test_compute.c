/*
 * test_compute.c
 *		The backends of the matrix products and the bf16 precision.
 *
 * Every backend that loads here (OpenBLAS, oneDNN, the portable reference)
 * computes every shape and transposition of product the core uses as the
 * reference does.  The bf16 products of every backend that runs them here
 * match float64 on bf16-rounded inputs; oneDNN's need AVX512_BF16 or
 * AMX-BF16 and are skipped, with a message, on a processor without them,
 * but the reference backend runs bf16 everywhere, so the bf16 paths of
 * training and scoring (the weights' copy, its refresh, the operands'
 * conversion, checkpoints) are covered on every machine.  int8 scoring runs
 * on every processor.
 */
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* float64 product of op(A) op(B), with the inputs rounded to bf16 when bf16. */
static double
ref_entry(int ta, int tb, int k, const float *a, int lda, const float *b, int ldb,
		  int i, int j, int bf16)
{
	double		s = 0;
	int			q;

	for (q = 0; q < k; q++)
	{
		float		x = ta ? a[(size_t) q * lda + i] : a[(size_t) i * lda + q];
		float		y = tb ? b[(size_t) j * ldb + q] : b[(size_t) q * ldb + j];

		if (bf16)
		{
			uint16_t	hx,
						hy;

			rl_k_to_bf16(&x, &hx, 1);
			rl_k_to_bf16(&y, &hy, 1);
			x = rl_bf16_to_float(hx);
			y = rl_bf16_to_float(hy);
		}
		s += (double) x * y;
	}
	return s;
}

/*
 * The worst relative error of rl_mm (p NULL: fp32) over shapes like the
 * core's: one row, one column, blocks, every transposition, padded leading
 * dimensions, alpha and beta.
 */
static double
product_error(rl_prod *p, int bf16)
{
	static const int shapes[][3] = {{1, 37, 19}, {5, 1, 23}, {7, 9, 1}, {33, 40, 17}, {64, 48, 70}};
	rl_rng		rng;
	double		worst = 0;
	int			s,
				ta,
				tb;

	rl_rng_seed(&rng, 3);
	for (s = 0; s < 5; s++)
		for (ta = 0; ta < 2; ta++)
			for (tb = 0; tb < 2; tb++)
			{
				int			m = shapes[s][0],
							n = shapes[s][1],
							k = shapes[s][2];
				int			lda = (ta ? m : k) + 3,
							ldb = (tb ? k : n) + 2,
							ldc = n + 1;
				float	   *a = malloc(sizeof(float) * (size_t) lda * (ta ? k : m));
				float	   *b = malloc(sizeof(float) * (size_t) ldb * (tb ? n : k));
				float	   *c = malloc(sizeof(float) * (size_t) ldc * m);
				float	   *c0 = malloc(sizeof(float) * (size_t) ldc * m);
				int			i,
							j;

				test_fill_uniform(a, (size_t) lda * (ta ? k : m), 1.0, &rng);
				test_fill_uniform(b, (size_t) ldb * (tb ? n : k), 1.0, &rng);
				test_fill_uniform(c, (size_t) ldc * m, 1.0, &rng);
				memcpy(c0, c, sizeof(float) * (size_t) ldc * m);
				rl_mm(p, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 1.0f, c, ldc);
				for (i = 0; i < m; i++)
					for (j = 0; j < n; j++)
					{
						double		want = 0.5 * ref_entry(ta, tb, k, a, lda, b, ldb, i, j, bf16) +
							c0[(size_t) i * ldc + j];

						worst = fmax(worst, fabs(c[(size_t) i * ldc + j] - want) / fmax(1.0, fabs(want)));
					}
				free(a);
				free(b);
				free(c);
				free(c0);
			}
	return worst;
}

/* A token stream with structure a small model learns in a few epochs. */
#define STREAM 3000
static void
make_stream(int32_t *ids, int V)
{
	int			i;

	ids[0] = RL_TOKEN_EOD;
	for (i = 1; i < STREAM; i++)
		ids[i] = i % 50 == 0 ? RL_TOKEN_EOD : 2 + ((i * 3 + i / 7) % (V - 2));
}

static rl_train_opts
small_opts(rl_precision p)
{
	rl_train_opts o;

	memset(&o, 0, sizeof(o));
	o.epochs = 3;
	o.batch_size = 8;
	o.seq_len = 12;
	o.learning_rate = 0.01;
	o.clip_norm = 5.0;
	o.seed = 9;
	o.precision = p;
	return o;
}

/* Trains a fresh LSTM in precision p; its validation loss, and the model. */
static double
train_small(rl_env *env, rl_precision p, const int32_t *ids, rl_model **out)
{
	rl_model   *m = test_model(env, RL_CELL_LSTM, 24, 16, 32, 1, 0.1, 4);
	rl_train_opts o = small_opts(p);
	rl_train_result r;

	if (rl_train(env, m, ids, 2400, ids + 2400, STREAM - 2400, &o, &r) != RL_OK)
		tap_bail("training in %s: %s", rl_precision_name(p), env->errmsg);
	*out = m;
	return r.val_loss;
}

/* Per-token log-probabilities of a few documents, per row and batched, in precision p. */
#define NDOC 6
#define DOCLEN 45
static void
score_docs(rl_env *env, rl_model *m, rl_precision p, double *row, double *batch)
{
	int32_t		docs[NDOC][DOCLEN];
	const int32_t *ptrs[NDOC];
	size_t		lens[NDOC];
	double		nll[NDOC];
	rl_state   *st;
	int			d,
				i;

	for (d = 0; d < NDOC; d++)
	{
		for (i = 0; i < DOCLEN; i++)
			docs[d][i] = 2 + ((d + i * 5) % (m->cfg.vocab_size - 2));
		ptrs[d] = docs[d];
		lens[d] = DOCLEN - 3 * d;
	}
	if (rl_state_create(env, m, &st) != RL_OK || rl_state_set_precision(env, st, p) != RL_OK)
		tap_bail("state: %s", env->errmsg);
	for (d = 0; d < NDOC; d++)
	{
		double		total;

		if (rl_score(env, st, docs[d], lens[d], &total, NULL, row + d * (DOCLEN + 1)) != RL_OK)
			tap_bail("scoring: %s", env->errmsg);
	}
	rl_state_free(env, st);
	if (rl_score_many(env, m, ptrs, lens, NDOC, p, nll, NULL) != RL_OK)
		tap_bail("scoring many: %s", env->errmsg);
	for (d = 0; d < NDOC; d++)
		batch[d] = nll[d];
}

/* Process CPU seconds, user and system. */
static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
		(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Each backend's fp32 products, and what it says it runs. */
static void
check_backends(void)
{
	rl_compute_info ci;
	char		err[RL_ERRMSG_LEN];
	int			i;

	rl_compute_describe(&ci);
	if (ci.count != 3)
		tap_bail("TEST_COMPUTE_POINTS counts 3 backends, not %d", ci.count);
	for (i = 0; i < ci.count; i++)
	{
		const char *name = ci.names[i];
		double		e;

		if (rl_compute_use(name, err, sizeof(err)) != 0)
		{
			tap_ok(1, "# SKIP backend %s does not load here: %s", name, err);
			continue;
		}
		e = product_error(NULL, 0);
		rl_compute_describe(&ci);
		tap_ok(e < 1e-5 && strcmp(ci.fp32, name) == 0,
			   "backend %s (%s): fp32 products of every shape and transposition match float64 (%.2e)",
			   name, ci.fp32_kernel, e);
	}
}

/* Each backend's bf16 products, where they run. */
static void
check_bf16_products(rl_env *env)
{
	rl_compute_info ci;
	char		err[RL_ERRMSG_LEN];
	rl_prod		p;
	float		dummy = 0;
	int			i;

	rl_compute_describe(&ci);
	for (i = 0; i < ci.count; i++)
	{
		const char *name = ci.names[i];
		double		e;

		if (rl_compute_use(name, err, sizeof(err)) != 0 || !ci.has_bf16[i])
		{
			tap_ok(1, "# SKIP backend %s has no bf16 products on this processor", name);
			continue;
		}
		if (rl_prod_init(env, &p, &dummy, 1, 64 * 80) != RL_OK)
			tap_bail("rl_prod_init: %s", env->errmsg);
		e = product_error(&p, 1);
		rl_prod_free(env, &p);
		tap_ok(e < 1e-5, "backend %s: bf16 products match float64 on bf16-rounded inputs (%.2e)",
			   name, e);
	}
	/* an operand too large for the scratch: the product runs in fp32, correctly */
	rl_compute_use("reference", err, sizeof(err));
	if (rl_prod_init(env, &p, &dummy, 1, 1) != RL_OK)
		tap_bail("rl_prod_init: %s", env->errmsg);
	{
		double		e = product_error(&p, 0);

		tap_ok(e < 1e-5, "a bf16 product whose operand does not fit the scratch runs in fp32 (%.2e)", e);
	}
	rl_prod_free(env, &p);
	rl_compute_use("auto", err, sizeof(err));
}

/* The weights' copy is what bf16 products read, until it is refreshed. */
static void
check_weight_copy(rl_env *env)
{
	float		w[4 * 8],
				x[8],
				y[4];
	char		err[RL_ERRMSG_LEN];
	rl_prod		p;
	int			i;
	double		before,
				after;

	for (i = 0; i < 32; i++)
		w[i] = 0.25f;
	for (i = 0; i < 8; i++)
		x[i] = 1.0f;
	rl_compute_use("reference", err, sizeof(err));
	if (rl_prod_init(env, &p, w, 32, 64) != RL_OK)
		tap_bail("rl_prod_init: %s", env->errmsg);
	w[0] = 100.0f;
	rl_mm(&p, 0, 1, 1, 4, 8, 1.0f, x, 8, w, 8, 0.0f, y, 4);
	before = y[0];
	rl_prod_sync(&p);
	rl_mm(&p, 0, 1, 1, 4, 8, 1.0f, x, 8, w, 8, 0.0f, y, 4);
	after = y[0];
	rl_prod_free(env, &p);
	rl_compute_use("auto", err, sizeof(err));
	tap_ok(before == 2.0 && after == 100.0f + 1.75f,
		   "bf16 products read the weights' copy, which rl_prod_sync refreshes (%g, then %g)",
		   before, after);
}

/* What bf16 and auto come to on the backends here. */
static void
check_resolve(rl_env *env)
{
	rl_cpu_info cpu;
	rl_compute_info ci;
	char		err[RL_ERRMSG_LEN];
	rl_precision got = RL_PREC_AUTO;
	int			hw;
	rl_status	st;

	rl_cpu_detect(&cpu);
	hw = cpu.has[RL_CPU_AVX512BF16] || cpu.has[RL_CPU_AMXBF16];
	rl_compute_use("openblas", err, sizeof(err));
	st = rl_precision_resolve(env, RL_PREC_BF16, &got);
	tap_ok(st == RL_ERR_UNSUPPORTED && strstr(env->errmsg, "bf16") != NULL,
		   "bf16 on OpenBLAS, which has no bf16 products, is refused: %s", env->errmsg);
	rl_compute_use("auto", err, sizeof(err));
	rl_compute_describe(&ci);
	st = rl_precision_resolve(env, RL_PREC_AUTO, &got);
	tap_ok(st == RL_OK && got == ((hw && ci.bf16[0]) ? RL_PREC_BF16 : RL_PREC_FP32),
		   "auto is bf16 exactly where the processor has bf16 instructions and a backend runs them (%s here)",
		   rl_precision_name(got));
	rl_compute_use("reference", err, sizeof(err));
	st = rl_precision_resolve(env, RL_PREC_BF16, &got);
	tap_ok(st == RL_OK && got == RL_PREC_BF16, "bf16 runs on the reference backend on any processor");
	st = rl_precision_resolve(env, RL_PREC_AUTO, &got);
	tap_ok(st == RL_OK && got == (hw ? RL_PREC_BF16 : RL_PREC_FP32),
		   "auto does not take the slow reference bf16 on a processor without bf16 (%s)",
		   rl_precision_name(got));
}

/* Scoring and training in bf16 (on the reference backend) against fp32. */
static void
check_bf16_model(rl_env *env)
{
	int32_t		ids[STREAM];
	rl_model   *m32,
			   *m16;
	double		v32,
				v16,
				row32[NDOC * (DOCLEN + 1)],
				row16[NDOC * (DOCLEN + 1)],
				b32[NDOC],
				b16[NDOC],
				mad = 0,
				rb = 0,
				untrained;
	size_t		i,
				n = 0,
				off_grid = 0;
	char		err[RL_ERRMSG_LEN];
	int			d;

	make_stream(ids, 24);
	rl_compute_use("auto", err, sizeof(err));
	v32 = train_small(env, RL_PREC_FP32, ids, &m32);
	rl_compute_use("reference", err, sizeof(err));
	v16 = train_small(env, RL_PREC_BF16, ids, &m16);
	{
		rl_model   *m0 = test_model(env, RL_CELL_LSTM, 24, 16, 32, 1, 0.1, 4);

		if (rl_eval_stream(env, m0, ids + 2400, STREAM - 2400, 8, 12, &untrained, &i) != RL_OK)
			tap_bail("eval: %s", env->errmsg);
		rl_model_free(env, m0);
	}
	tap_ok(fabs(v16 - v32) < 0.02 && v16 < untrained - 0.5,
		   "bf16 training learns as fp32 does: validation loss %.4f against %.4f (untrained %.4f)",
		   v16, v32, untrained);
	for (i = 0; i < m16->nparams; i++)
	{
		uint32_t	u;

		memcpy(&u, &m16->params[i], 4);
		off_grid += (u & 0xffff) != 0;
	}
	tap_ok(off_grid > m16->nparams / 2,
		   "bf16 training keeps fp32 master weights (%zu of %zu are not bf16 values)",
		   off_grid, m16->nparams);

	/* the fp32 model scored in both precisions */
	score_docs(env, m32, RL_PREC_BF16, row16, b16);
	rl_compute_use("auto", err, sizeof(err));
	score_docs(env, m32, RL_PREC_FP32, row32, b32);
	for (d = 0; d < NDOC; d++)
	{
		double		s = 0;
		size_t		t,
					len = DOCLEN - 3 * d;

		for (t = 0; t <= len; t++)
		{
			mad += fabs(row16[d * (DOCLEN + 1) + t] - row32[d * (DOCLEN + 1) + t]);
			s -= row16[d * (DOCLEN + 1) + t];
			n++;
		}
		rb = fmax(rb, fabs(s - b16[d]) / (len + 1));
	}
	mad /= (double) n;
	tap_ok(mad > 0 && mad < 0.02,
		   "bf16 scoring differs from fp32 by %.2e nats per token on average (tolerance 0.02)", mad);
	tap_ok(rb < 1e-3,
		   "bf16 scoring per row and batched agree within 1e-3 nats per token (%.2e)", rb);
	rl_model_free(env, m32);
	rl_model_free(env, m16);
}

/* int8 scoring: the quantization's error bound, its effect per token, batched scoring untouched. */
static void
check_int8(rl_env *env)
{
	rl_model   *m = test_model(env, RL_CELL_LSTM, 24, 16, 32, 2, 0.3, 7);
	rl_prod		p;
	double		row32[NDOC * (DOCLEN + 1)],
				row8[NDOC * (DOCLEN + 1)],
				b32[NDOC],
				b8[NDOC],
				worst = 0,
				mad = 0;
	int			i,
				d,
				same = 1;
	size_t		n = 0;

	if (rl_prod_init_int8(env, &p, m) != RL_OK)
		tap_bail("int8: %s", env->errmsg);
	for (i = 0; i < p.nmats; i++)
	{
		const rl_prod_matrix *mx = &p.mats[i];
		size_t		r,
					j;

		for (r = 0; r < mx->rows; r++)
			for (j = 0; j < mx->cols; j++)
			{
				size_t		o = mx->off + r * mx->cols + j;
				float		sc = p.scales[mx->scale0 + r];

				worst = fmax(worst, fabs(p.w8[o] * sc - m->params[o]) / sc);
			}
	}
	tap_ok(p.nmats == 5 && worst <= 0.5 + 1e-4,
		   "int8 weights are within half a step of the fp32 ones, one scale per row of each of the %d matrices (worst %.4f steps)",
		   p.nmats, worst);
	rl_prod_free(env, &p);

	score_docs(env, m, RL_PREC_FP32, row32, b32);
	score_docs(env, m, RL_PREC_INT8, row8, b8);
	for (d = 0; d < NDOC; d++)
	{
		size_t		t;

		for (t = 0; t <= (size_t) (DOCLEN - 3 * d); t++, n++)
			mad += fabs(row8[d * (DOCLEN + 1) + t] - row32[d * (DOCLEN + 1) + t]);
		same &= b8[d] == b32[d];
	}
	mad /= (double) n;
	tap_ok(mad > 0 && mad < 0.05,
		   "int8 per-row scoring differs from fp32 by %.4e nats per token on average (tolerance 0.05)", mad);
	tap_ok(same, "batched scoring with precision int8 is fp32, bit for bit (int8 is for one-row products)");
	rl_model_free(env, m);
}

/* A bf16 run's checkpoint resumes only in bf16, and then exactly. */
static void
check_bf16_checkpoint(rl_env *env)
{
	int32_t		ids[STREAM];
	rl_train_opts o16 = small_opts(RL_PREC_BF16),
				o32 = small_opts(RL_PREC_FP32);
	rl_model   *a = test_model(env, RL_CELL_GRU, 24, 16, 32, 1, 0.1, 4);
	rl_model   *b = test_model(env, RL_CELL_GRU, 24, 16, 32, 1, 0.1, 4);
	rl_model   *c = test_model(env, RL_CELL_GRU, 24, 16, 32, 1, 0.1, 4);
	rl_run	   *ra,
			   *rb,
			   *rc;
	rl_train_result res;
	uint8_t    *ck;
	size_t		cklen;
	int			ended;
	rl_status	st32;
	char		err[RL_ERRMSG_LEN];

	make_stream(ids, 24);
	rl_compute_use("reference", err, sizeof(err));
	o16.epochs = o32.epochs = 2;
	if (rl_run_create(env, a, ids, 2400, ids + 2400, STREAM - 2400, &o16, &ra) != RL_OK ||
		rl_run_advance(ra, 1e9, &ended) != RL_OK ||
		rl_run_save(ra, &ck, &cklen) != RL_OK)
		tap_bail("bf16 run: %s", env->errmsg);
	/* the same run restored into a fresh one must end with the same weights */
	if (rl_run_create(env, b, ids, 2400, ids + 2400, STREAM - 2400, &o16, &rb) != RL_OK ||
		rl_run_restore(rb, ck, cklen) != RL_OK)
		tap_bail("bf16 restore: %s", env->errmsg);
	while (!rl_run_done(ra))
		if (rl_run_advance(ra, 1e9, &ended) != RL_OK)
			tap_bail("bf16 run: %s", env->errmsg);
	while (!rl_run_done(rb))
		if (rl_run_advance(rb, 1e9, &ended) != RL_OK)
			tap_bail("bf16 resumed run: %s", env->errmsg);
	rl_run_finish(ra, &res);
	rl_run_finish(rb, &res);
	tap_ok(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0,
		   "a bf16 run restored from its checkpoint ends with the same weights, bit for bit");
	if (rl_run_create(env, c, ids, 2400, ids + 2400, STREAM - 2400, &o32, &rc) != RL_OK)
		tap_bail("fp32 run: %s", env->errmsg);
	st32 = rl_run_restore(rc, ck, cklen);
	tap_ok(st32 == RL_ERR_FORMAT && strstr(env->errmsg, "bf16") != NULL,
		   "an fp32 run refuses a bf16 checkpoint: %s", env->errmsg);
	rl_run_free(ra);
	rl_run_free(rb);
	rl_run_free(rc);
	rl_free(env, ck);
	rl_model_free(env, a);
	rl_model_free(env, b);
	rl_model_free(env, c);
	rl_compute_use("auto", err, sizeof(err));
}

/* oneDNN's OpenMP workers sleep when there is no work. */
static void
check_idle(void)
{
	char		err[RL_ERRMSG_LEN];
	float		a[256 * 256],
				c[256 * 256];
	double		t0;
	struct timespec nap = {0, 300 * 1000 * 1000};
	int			i;

	if (rl_compute_use("onednn", err, sizeof(err)) != 0)
	{
		tap_ok(1, "# SKIP oneDNN does not load here: %s", err);
		return;
	}
	for (i = 0; i < 256 * 256; i++)
		a[i] = (float) (i % 7) * 0.1f;
	rl_compute_set_threads(2);
	for (i = 0; i < 5; i++)
		rl_sgemm(0, 1, 256, 256, 256, 1.0f, a, 256, a, 256, 0.0f, c, 256);
	t0 = cpu_seconds();
	nanosleep(&nap, NULL);
	t0 = cpu_seconds() - t0;
	rl_compute_set_threads(1);
	rl_compute_use("auto", err, sizeof(err));
	tap_ok(t0 < 0.03, "oneDNN's worker threads do not spin when idle (%.3f CPU seconds in 0.3 s)", t0);
}

/* An allocator that adds up the bytes asked for. */
static size_t asked;

static void *
sum_alloc(void *ud, size_t size)
{
	(void) ud;
	asked += size;
	return calloc(1, size);
}

static void
sum_free(void *ud, void *p)
{
	(void) ud;
	free(p);
}

/* rl_train_memory is what a trainer of that shape allocates, in both precisions. */
static void
check_memory_estimate(void)
{
	rl_env		env,
				counting;
	char		err[RL_ERRMSG_LEN];
	int			prec;

	test_env_init(&env);
	rl_env_init_malloc(&counting);
	counting.alloc = sum_alloc;
	counting.dealloc = sum_free;
	rl_compute_use("reference", err, sizeof(err));
	for (prec = RL_PREC_FP32; prec <= RL_PREC_BF16; prec++)
	{
		rl_model   *m = test_model(&env, RL_CELL_LSTM, 37, 12, 20, 2, 0.1, 4);
		rl_trainer *tr;
		size_t		want = rl_train_memory(&m->cfg, 6, 9, 0.2, (rl_precision) prec, 0, 0),
					got;

		asked = 0;
		if (rl_trainer_create(&counting, m, 6, 9, 0.2, 1, &tr) != RL_OK ||
			rl_trainer_grads(tr) == NULL || rl_trainer_enable_adam(tr) != RL_OK ||
			rl_trainer_set_precision(tr, (rl_precision) prec) != RL_OK)
			tap_bail("trainer: %s", counting.errmsg);
		/* the estimate counts the model's own weights too; the allocations, the trainer's struct */
		got = asked + m->nparams * sizeof(float);
		tap_ok(got >= want && got - want < 8192,
			   "%s: rl_train_memory (%zu bytes) is what the trainer allocates plus the weights (%zu)",
			   rl_precision_name((rl_precision) prec), want, got);
		rl_trainer_free(tr);
		rl_model_free(&env, m);
	}
	/* frozen embeddings (no Adam moments for them) and the sampled output layer's buffers */
	{
		rl_model   *m = test_model(&env, RL_CELL_GRU, 300, 12, 20, 1, 0.1, 4);
		rl_trainer *tr;
		size_t		want = rl_train_memory(&m->cfg, 6, 9, 0.2, RL_PREC_FP32, 1, 7),
					got;

		asked = 0;
		if (rl_trainer_create(&counting, m, 6, 9, 0.2, 1, &tr) != RL_OK ||
			rl_trainer_grads(tr) == NULL || rl_trainer_freeze_embeddings(tr) != RL_OK ||
			rl_trainer_enable_adam(tr) != RL_OK || rl_trainer_set_sampled(tr, 7) != RL_OK)
			tap_bail("trainer: %s", counting.errmsg);
		got = asked + m->nparams * sizeof(float);
		tap_ok(got >= want && got - want < 8192,
			   "frozen embeddings and sampled_softmax 7: rl_train_memory (%zu bytes) is what the trainer "
			   "allocates plus the weights (%zu)", want, got);
		rl_trainer_free(tr);
		rl_model_free(&env, m);
	}
	rl_compute_use("auto", err, sizeof(err));
}

void
test_compute(void)
{
	rl_env		env;
	long		live = test_live_blocks();

	test_env_init(&env);
	check_backends();
	check_bf16_products(&env);
	check_weight_copy(&env);
	check_resolve(&env);
	check_bf16_model(&env);
	check_bf16_checkpoint(&env);
	check_int8(&env);
	check_idle();
	check_memory_estimate();
	tap_ok(test_live_blocks() == live, "the compute tests free everything they allocate");
}
