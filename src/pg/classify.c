/*
 * classify.c
 *		rnnlm_classify and rnnlm_classify_scores: language-model
 *		classification, one model per class.
 *
 * Each model scores the whole input (its tokens, then the end of the
 * document) from the document-start state.  Its total log-likelihood
 * ll_m = -NLL_m is the log-probability of the text under that class's
 * model, so with equal priors the probability of class m is
 *
 *     p_m = exp(ll_m) / sum_j exp(ll_j)
 *
 * (computed with the largest ll subtracted first).  The loss reported is
 * NLL_m divided by the input's characters plus one (the end of the text),
 * a divisor the same for every model, whatever its tokenizer: the class
 * with the lowest loss is the most probable one.  Ties go to the model
 * named first.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(rnnlm_classify);
PG_FUNCTION_INFO_V1(rnnlm_classify_scores);

/* The classes and their scores for one input. */
typedef struct ClassScores
{
	int			n;
	char	  **names;
	double	   *loss;			/* nats per character of the input */
	double	   *probability;
	int			best;
} ClassScores;

/* The model names of the array argument: at least one, none NULL. */
static char **
model_names(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **names;
	int			i;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("models must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	if (*n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("models must name at least one model")));
	names = palloc(sizeof(char *) * *n);
	for (i = 0; i < *n; i++)
		names[i] = rnnlm_check_ref(elems[i], nulls[i]);
	return names;
}

/* The characters of UTF-8 text (an invalid byte counts as one). */
static size_t
utf8_chars(const char *u, size_t len)
{
	size_t		i,
				n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char) u[i] & 0xC0) != 0x80)
			n++;
	return n;
}

/* The total negative log-likelihood, in nats, of the text under a model. */
static double
text_nll(FunctionCallInfo fcinfo, const char *name, const char *u, size_t len)
{
	RnnlmLoaded *lm = rnnlm_get_model(fcinfo, name);
	rl_env		env;
	int32_t    *ids;
	size_t		n;
	double		nll;

	rnnlm_use_precision(lm);
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	ids = rnnlm_tokenize(&env, lm->model, u, len, &n);
	if (rl_score(&env, lm->state, ids, n, &nll, NULL, NULL) != RL_OK)
		rnnlm_raise(&env, "scoring");
	pfree(ids);
	return nll;
}

/* Scores the input (argument 1) under every model of argument 0. */
static ClassScores *
classify(FunctionCallInfo fcinfo)
{
	ClassScores *cs = palloc0(sizeof(ClassScores));
	size_t		len;
	char	   *u;
	double		chars,
				top = -INFINITY,
				sum = 0.0;
	double	   *ll;
	int			i;

	cs->names = model_names(PG_GETARG_ARRAYTYPE_P(0), &cs->n);
	u = rnnlm_text_to_utf8(PG_GETARG_TEXT_PP(1), &len);
	chars = (double) utf8_chars(u, len) + 1.0;
	ll = palloc(sizeof(double) * cs->n);
	cs->loss = palloc(sizeof(double) * cs->n);
	cs->probability = palloc(sizeof(double) * cs->n);
	for (i = 0; i < cs->n; i++)
	{
		double		nll;

		CHECK_FOR_INTERRUPTS();
		nll = text_nll(fcinfo, cs->names[i], u, len);
		ll[i] = -nll;
		cs->loss[i] = nll / chars;
		if (ll[i] > top)
		{
			top = ll[i];
			cs->best = i;
		}
	}
	for (i = 0; i < cs->n; i++)
		sum += exp(ll[i] - top);
	for (i = 0; i < cs->n; i++)
		cs->probability[i] = exp(ll[i] - top) / sum;
	pfree(ll);
	return cs;
}

/* rnnlm_classify(models, input): the model whose class the input most likely is. */
Datum
rnnlm_classify(PG_FUNCTION_ARGS)
{
	ClassScores *cs = classify(fcinfo);

	PG_RETURN_TEXT_P(cstring_to_text(cs->names[cs->best]));
}

/* rnnlm_classify_scores(models, input): (model, loss, probability) per model, in order. */
Datum
rnnlm_classify_scores(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ClassScores *cs;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	cs = classify(fcinfo);
	for (i = 0; i < cs->n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(cs->names[i]);
		values[1] = Float8GetDatum(cs->loss[i]);
		values[2] = Float8GetDatum(cs->probability[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
