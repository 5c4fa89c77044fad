/*
 * surprise.c
 *		Calibrated surprise: how a text's surprise compares with that of the
 *		validation rows of the training that made the model.
 *
 * When a training ends, the validation rows are scored under the model it
 * stores, each row's surprise being its mean negative log-likelihood per
 * token in nats (the log of its perplexity), and 101 quantiles of those
 * numbers are stored with the model (rnnlm.model.surprise, kept by its
 * version when it is replaced).  rnnlm_surprise_percentile then places a
 * text among them: the fraction of validation rows that were less
 * surprising than it, interpolated linearly between quantiles, so 0.99
 * means "more surprising than 99% of rows like the training data".
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(rnnlm_surprise_percentile);
PG_FUNCTION_INFO_V1(rnnlm_surprise_percentile_array);
PG_FUNCTION_INFO_V1(rnnlm_surprise_percentile_at);

/* qsort order of doubles. */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/* The quantile at p in [0, 1] of n sorted values, interpolated linearly. */
static double
quantile(const double *v, size_t n, double p)
{
	double		h = p * (double) (n - 1);
	size_t		lo = (size_t) floor(h);

	if (lo + 1 >= n)
		return v[n - 1];
	return v[lo] + (h - (double) lo) * (v[lo + 1] - v[lo]);
}

/*
 * The quantiles of the surprise of the training's validation documents
 * under its model, in t->cxt; NULL when there are none.  Called once the
 * model holds the weights it will store, before the streams are freed.
 */
double *
rnnlm_surprise_quantiles(RnnlmTraining *t)
{
	const int32_t **docs;
	size_t	   *lens;
	double	   *nll,
			   *per,
			   *q;
	size_t		i,
				start = 1,
				k = 0;

	if (t->val == NULL || t->nval < 2 || t->val[0] != RL_TOKEN_EOD)
		return NULL;
	docs = palloc(sizeof(int32_t *) * t->nval);
	lens = palloc(sizeof(size_t) * t->nval);
	for (i = 1; i < t->nval; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		if (t->val[i] == RL_TOKEN_EOD)
		{
			docs[k] = t->val + start;
			lens[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	if (k == 0)
		return NULL;
	nll = palloc(sizeof(double) * k);
	if (rl_score_many(&t->env, t->model, docs, lens, k, RL_PREC_FP32, nll, NULL) != RL_OK)
		rnnlm_raise(&t->env, "scoring the validation rows");
	per = palloc(sizeof(double) * k);
	for (i = 0; i < k; i++)
		per[i] = nll[i] / (double) (lens[i] + 1);
	qsort(per, k, sizeof(double), cmp_double);
	q = MemoryContextAlloc(t->cxt, sizeof(double) * RNNLM_SURPRISE_POINTS);
	for (i = 0; i < RNNLM_SURPRISE_POINTS; i++)
		q[i] = quantile(per, k, (double) i / (RNNLM_SURPRISE_POINTS - 1));
	pfree(docs);
	pfree(lens);
	pfree(nll);
	pfree(per);
	return q;
}

/* Where surprise x falls among the quantiles q: a fraction in [0, 1]. */
static double
rank_among(const double *q, double x)
{
	int			lo = 0,
				hi = RNNLM_SURPRISE_POINTS - 1;

	if (isnan(x))
		return x;
	if (x < q[0])
		return 0.0;
	if (x >= q[hi])
		return 1.0;
	/* q[lo] <= x < q[hi] */
	while (hi - lo > 1)
	{
		int			mid = (lo + hi) / 2;

		if (q[mid] <= x)
			lo = mid;
		else
			hi = mid;
	}
	return ((double) lo + (x - q[lo]) / (q[hi] - q[lo])) / (RNNLM_SURPRISE_POINTS - 1);
}

/* The quantiles of a loaded model, kept for the transaction. */
typedef struct CalibrationEntry
{
	const rl_model *model;		/* the loaded model they belong to */
	int64		revision;
	LocalTransactionId lxid;	/* a model's memory outlives no transaction */
	double		q[RNNLM_SURPRISE_POINTS];
} CalibrationEntry;

#define CALIBRATION_ENTRIES 8

static CalibrationEntry calibrations[CALIBRATION_ENTRIES];
static int	next_calibration = 0;

/*
 * The quantiles of the model that ref names, as loaded in lm; an ERROR
 * (55000) when it has none.
 */
static const double *
calibration(const char *ref, const RnnlmLoaded *lm)
{
	CalibrationEntry *e;
	RnnlmRef	parsed;
	bool		found;
	int			i;

	for (i = 0; i < CALIBRATION_ENTRIES; i++)
		if (calibrations[i].model == lm->model && calibrations[i].revision == lm->revision &&
			calibrations[i].lxid == MyProc->lxid)
			return calibrations[i].q;
	e = &calibrations[next_calibration];
	next_calibration = (next_calibration + 1) % CALIBRATION_ENTRIES;
	e->model = NULL;
	SPI_connect();
	if (rnnlm_parse_ref(ref, &parsed))
	{
		char		sha[65];
		int32		version = rnnlm_catalog_resolve_ref(&parsed, sha);

		found = rnnlm_catalog_surprise(parsed.name, 0, version, e->q);
	}
	else
		found = rnnlm_catalog_surprise(ref, lm->revision, 0, e->q);
	SPI_finish();
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rnnlm model \"%s\" has no calibration of its surprise", ref),
				 errdetail("A model trained by rnnlm 0.3 with validation data has one; models trained "
						   "before 0.3, imported, federated or trained without validation rows do not."),
				 errhint("Train it again with {\"replace\": true}, or compare rnnlm_perplexity() values.")));
	e->model = lm->model;
	e->revision = lm->revision;
	e->lxid = MyProc->lxid;
	return e->q;
}

/* A percentile from a perplexity (NULL stays NULL). */
static double
percentile_of(const double *q, double perplexity)
{
	return rank_among(q, log(perplexity));
}

/*
 * rnnlm_surprise_percentile(model, input): the fraction of the model's
 * validation rows that were less surprising than the input.
 */
Datum
rnnlm_surprise_percentile(PG_FUNCTION_ARGS)
{
	double		ppl = DatumGetFloat8(rnnlm_perplexity(fcinfo));
	char	   *ref = rnnlm_check_ref(PG_GETARG_DATUM(0), false);

	PG_RETURN_FLOAT8(percentile_of(calibration(ref, rnnlm_get_model(fcinfo, ref)), ppl));
}

/* rnnlm_surprise_percentile of a pinned version, IMMUTABLE. */
Datum
rnnlm_surprise_percentile_at(PG_FUNCTION_ARGS)
{
	double		ppl = DatumGetFloat8(rnnlm_perplexity_at(fcinfo));
	char	   *ref = rnnlm_check_ref(PG_GETARG_DATUM(0), false);

	PG_RETURN_FLOAT8(percentile_of(calibration(ref, rnnlm_get_model(fcinfo, ref)), ppl));
}

/* The percentiles of many texts, scored as one batch; NULL for NULL. */
Datum
rnnlm_surprise_percentile_array(PG_FUNCTION_ARGS)
{
	ArrayType  *ppl = DatumGetArrayTypeP(rnnlm_perplexity_array(fcinfo));
	char	   *ref = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	const double *q;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;

	deconstruct_array(ppl, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(ppl);
	q = calibration(ref, rnnlm_get_model(fcinfo, ref));
	for (i = 0; i < n; i++)
		if (!nulls[i])
			elems[i] = Float8GetDatum(percentile_of(q, DatumGetFloat8(elems[i])));
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, nulls, 1, ARR_DIMS(ppl), ARR_LBOUND(ppl),
											 FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
											 TYPALIGN_DOUBLE));
}
