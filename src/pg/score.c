/*
 * score.c
 *		Scoring text with a stored model: rnnlm_perplexity (one row),
 *		rnnlm_token_logprobs (per token) and rnnlm_evaluate (a whole query).
 *
 * A document is scored from the document-start state: its tokens, then the
 * end-of-document token, each predicted from what precedes it.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "executor/spi.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(rnnlm_perplexity);
PG_FUNCTION_INFO_V1(rnnlm_perplexity_array);
PG_FUNCTION_INFO_V1(rnnlm_token_logprobs);
PG_FUNCTION_INFO_V1(rnnlm_evaluate);

/* exp of the mean negative log-likelihood per token of one text. */
Datum
rnnlm_perplexity(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	RnnlmLoaded *lm = rnnlm_get_model(fcinfo, name);
	rl_env		env;
	size_t		len,
				n;
	char	   *u = rnnlm_text_to_utf8(PG_GETARG_TEXT_PP(1), &len);
	int32_t    *ids;
	double		nll;

	rnnlm_use_precision(lm);
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	ids = rnnlm_tokenize(&env, lm->model, u, len, &n);
	if (rl_score(&env, lm->state, ids, n, &nll, NULL, NULL) != RL_OK)
		rnnlm_raise(&env, "scoring");
	pfree(ids);
	PG_RETURN_FLOAT8(exp(nll / (double) (n + 1)));
}

PG_FUNCTION_INFO_V1(rnnlm_perplexity_at);

/*
 * rnnlm_perplexity of a pinned version (name@N or name@sha256:<prefix>),
 * IMMUTABLE: the version can never change.
 */
Datum
rnnlm_perplexity_at(PG_FUNCTION_ARGS)
{
	char	   *ref = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	RnnlmRef	parsed;

	if (!rnnlm_parse_ref(ref, &parsed))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm_perplexity_at needs a pinned model version, not \"%s\"", ref),
				 errhint("Name a version: '%s@1', or '%s@sha256:' and a prefix of its SHA-256 "
						 "(rnnlm.model_versions lists them).", ref, ref)));
	return rnnlm_perplexity(fcinfo);
}

/* Perplexities of many texts, batched across texts; NULL for NULL. */
Datum
rnnlm_perplexity_array(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	RnnlmLoaded *lm;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i,
				k = 0;
	int32_t   **docs;
	size_t	   *lens;
	double	   *nll;
	Datum	   *out;
	int			dims[1],
				lbs[1];
	rl_env		env;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("inputs must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(FLOAT8OID));
	lm = rnnlm_get_model(fcinfo, name);
	rnnlm_prepare_compute();
	rnnlm_env_init(&env, CurrentMemoryContext, false);

	docs = palloc(sizeof(int32_t *) * n);
	lens = palloc(sizeof(size_t) * n);
	nll = palloc(sizeof(double) * n);
	for (i = 0; i < n; i++)
	{
		size_t		len;
		char	   *u;

		if (nulls[i])
			continue;
		CHECK_FOR_INTERRUPTS();
		u = rnnlm_text_to_utf8(DatumGetTextPP(elems[i]), &len);
		docs[k] = rnnlm_tokenize(&env, lm->model, u, len, &lens[k]);
		k++;
	}
	if (rl_score_many(&env, lm->model, (const int32_t *const *) docs, lens, k,
					  rnnlm_resolve_precision(rnnlm_precision, "scoring"), nll, NULL) != RL_OK)
		rnnlm_raise(&env, "scoring");

	out = palloc(sizeof(Datum) * n);
	k = 0;
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		out[i] = Float8GetDatum(exp(nll[k] / (double) (lens[k] + 1)));
		k++;
	}
	dims[0] = n;
	lbs[0] = ARR_LBOUND(arr)[0];
	PG_RETURN_ARRAYTYPE_P(construct_md_array(out, nulls, 1, dims, lbs, FLOAT8OID,
											 sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

typedef struct SplitCtx
{
	const rl_model *m;
	StringInfoData toks;		/* token texts, NUL-separated */
	int32_t    *ids;
	size_t		n,
				cap;
	char	   *shown;			/* a token as its tokenizer shows it */
} SplitCtx;

/*
 * Split callback: records the ids of a unit and their texts: the unit's own
 * text for <unk> (the word that was not in the vocabulary), else the token
 * as the tokenizer shows it.
 */
static int
record_token(void *ud, const char *tok, size_t len)
{
	SplitCtx   *c = ud;
	const rl_tokenizer_ops *ops = rl_tokenizer(c->m->cfg.tokenizer);
	size_t		got,
				j;

	if (c->n + len > c->cap)
	{
		c->cap = Max(c->cap * 2, c->n + len + 64);
		c->ids = c->ids ? repalloc_huge(c->ids, c->cap * sizeof(int32_t))
			: palloc_extended(c->cap * sizeof(int32_t), MCXT_ALLOC_HUGE);
	}
	got = ops->encode(c->m->vocab, tok, len, c->ids + c->n);
	for (j = 0; j < got; j++)
	{
		int32_t		id = c->ids[c->n + j];

		if (id == RL_TOKEN_UNK)
			appendBinaryStringInfo(&c->toks, tok, (int) len);
		else
			appendBinaryStringInfo(&c->toks, c->shown,
								   (int) ops->describe(c->m->vocab, id, c->shown));
		appendStringInfoChar(&c->toks, '\0');
	}
	c->n += got;
	return 1;
}

/* One row per predicted token: position, id, text and log-probability. */
Datum
rnnlm_token_logprobs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	RnnlmLoaded *lm = rnnlm_get_model(fcinfo, name);
	const rl_model *m = lm->model;
	size_t		len;
	char	   *u = rnnlm_text_to_utf8(PG_GETARG_TEXT_PP(1), &len);
	SplitCtx	sc;
	rl_env		env;
	double		nll;
	double	   *lps;
	const char *tok;
	size_t		i;

	InitMaterializedSRF(fcinfo, 0);
	rnnlm_use_precision(lm);
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	memset(&sc, 0, sizeof(sc));
	sc.m = m;
	sc.shown = palloc(RL_MAX_TOKEN_BYTES * 4 + 1);
	initStringInfo(&sc.toks);
	if (!rl_split(&env, &m->cfg, u, len, record_token, &sc))
		rnnlm_raise(&env, "tokenizing");
	lps = palloc_extended((sc.n + 1) * sizeof(double), MCXT_ALLOC_HUGE);
	if (rl_score(&env, lm->state, sc.ids, sc.n, &nll, NULL, lps) != RL_OK)
		rnnlm_raise(&env, "scoring");

	tok = sc.toks.data;
	for (i = 0; i <= sc.n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		size_t		tlen;

		values[0] = Int32GetDatum((int32) (i + 1));
		if (i < sc.n)
		{
			tlen = strlen(tok);
			values[1] = Int32GetDatum(sc.ids[i]);
			values[2] = PointerGetDatum(rnnlm_utf8_to_text(tok, tlen));
			tok += tlen + 1;
		}
		else
		{
			values[1] = Int32GetDatum(RL_TOKEN_EOD);
			values[2] = CStringGetTextDatum("<eod>");
		}
		values[3] = Float8GetDatum(lps[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

#define EVAL_BATCH 2048

typedef struct EvalCtx
{
	rl_env	   *env;
	RnnlmLoaded *lm;
	rl_precision precision;		/* of the products */
	MemoryContext batch_cxt;	/* token ids of the pending documents */
	int32_t    *docs[EVAL_BATCH];	/* scored together, longest first, so */
	size_t		lens[EVAL_BATCH];	/* more of them means less padding */
	int			pending;
	double		nll;
	uint64		tokens;
	uint64		correct;
	uint64		documents;
} EvalCtx;

/* Scores the pending documents as one batch and accumulates. */
static void
eval_flush(EvalCtx *c)
{
	double	   *nll;
	size_t	   *ok;
	int			i;

	if (c->pending == 0)
		return;
	nll = palloc(sizeof(double) * c->pending);
	ok = palloc(sizeof(size_t) * c->pending);
	if (rl_score_many(c->env, c->lm->model, (const int32_t *const *) c->docs, c->lens,
					  c->pending, c->precision, nll, ok) != RL_OK)
		rnnlm_raise(c->env, "scoring");
	for (i = 0; i < c->pending; i++)
	{
		c->nll += nll[i];
		c->tokens += c->lens[i] + 1;
		c->correct += ok[i];
		c->documents++;
	}
	pfree(nll);
	pfree(ok);
	c->pending = 0;
	MemoryContextReset(c->batch_cxt);
}

/* Row callback: tokenizes one document; every EVAL_BATCH, scores them. */
static void
eval_row(void *arg, const char *utf8, size_t len)
{
	EvalCtx    *c = arg;
	MemoryContext old = MemoryContextSwitchTo(c->batch_cxt);

	c->env->ud = c->batch_cxt;
	c->docs[c->pending] = rnnlm_tokenize(c->env, c->lm->model, utf8, len, &c->lens[c->pending]);
	c->pending++;
	MemoryContextSwitchTo(old);
	if (c->pending == EVAL_BATCH)
		eval_flush(c);
}

/* Corpus-level loss, perplexity and accuracy over the rows of a query. */
Datum
rnnlm_evaluate(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	char	   *query;
	EvalCtx		c;
	rl_env		env;
	uint64		rows,
				nonnull;
	double		loss;
	StringInfoData s;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("evaluation query must not be NULL")));
	query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	memset(&c, 0, sizeof(c));
	c.lm = rnnlm_get_model(fcinfo, name);
	c.precision = rnnlm_resolve_precision(rnnlm_precision, "scoring");
	c.env = &env;

	c.batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "rnnlm evaluate",
										ALLOCSET_DEFAULT_SIZES);
	rnnlm_env_init(&env, c.batch_cxt, false);
	SPI_connect();
	rows = rnnlm_read_text_rows(query, "evaluation query", eval_row, &c, &nonnull);
	eval_flush(&c);
	SPI_finish();
	MemoryContextDelete(c.batch_cxt);
	if (nonnull == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the evaluation query returned %s",
						rows == 0 ? "no rows" : "only NULL values")));

	loss = c.nll / (double) c.tokens;
	initStringInfo(&s);
	appendStringInfo(&s, "{\"documents\": " UINT64_FORMAT ", \"tokens\": " UINT64_FORMAT,
					 c.documents, c.tokens);
	rnnlm_append_json_real(&s, "loss", loss);
	rnnlm_append_json_real(&s, "perplexity", exp(loss));
	rnnlm_append_json_real(&s, "bits_per_token", loss / M_LN2);
	rnnlm_append_json_real(&s, "accuracy", (double) c.correct / (double) c.tokens);
	appendStringInfoChar(&s, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
