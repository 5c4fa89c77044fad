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
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(rnnlm_perplexity);
PG_FUNCTION_INFO_V1(rnnlm_token_logprobs);
PG_FUNCTION_INFO_V1(rnnlm_evaluate);

/* Tokenizes UTF-8 text with the model's vocabulary. */
static int32_t *
tokenize(rl_env *env, const rl_model *m, const char *u, size_t len, size_t *n)
{
	int32_t    *ids;

	if (rl_tokenize(env, m->vocab, m->cfg.tokenizer, m->cfg.lowercase, u, len,
					&ids, n) != RL_OK)
		rnnlm_raise(env, "tokenizing");
	return ids;
}

/* exp of the mean negative log-likelihood per token of one text. */
Datum
rnnlm_perplexity(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), false);
	RnnlmLoaded *lm = rnnlm_get_model(fcinfo, name);
	rl_env		env;
	size_t		len,
				n;
	char	   *u = rnnlm_text_to_utf8(PG_GETARG_TEXT_PP(1), &len);
	int32_t    *ids;
	double		nll;

	rnnlm_prepare_blas();
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	ids = tokenize(&env, lm->model, u, len, &n);
	if (rl_score(&env, lm->state, ids, n, &nll, NULL, NULL) != RL_OK)
		rnnlm_raise(&env, "scoring");
	pfree(ids);
	PG_RETURN_FLOAT8(exp(nll / (double) (n + 1)));
}

typedef struct SplitCtx
{
	const rl_vocab *v;
	StringInfoData toks;		/* token texts, NUL-separated */
	int32_t    *ids;
	size_t		n,
				cap;
} SplitCtx;

/* Split callback: records a token's text and id. */
static int
record_token(void *ud, const char *tok, size_t len)
{
	SplitCtx   *c = ud;

	if (c->n == c->cap)
	{
		c->cap = c->cap ? c->cap * 2 : 64;
		c->ids = c->ids ? repalloc_huge(c->ids, c->cap * sizeof(int32_t))
			: palloc_extended(c->cap * sizeof(int32_t), MCXT_ALLOC_HUGE);
	}
	c->ids[c->n++] = rl_vocab_lookup(c->v, tok, len);
	appendBinaryStringInfo(&c->toks, tok, (int) len);
	appendStringInfoChar(&c->toks, '\0');
	return 1;
}

/* One row per predicted token: position, id, text and log-probability. */
Datum
rnnlm_token_logprobs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), false);
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
	rnnlm_prepare_blas();
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	memset(&sc, 0, sizeof(sc));
	sc.v = m->vocab;
	initStringInfo(&sc.toks);
	rl_split(m->cfg.tokenizer, m->cfg.lowercase, u, len, record_token, &sc);
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

typedef struct EvalCtx
{
	rl_env	   *env;
	RnnlmLoaded *lm;
	double		nll;
	uint64		tokens;
	uint64		correct;
	uint64		documents;
} EvalCtx;

/* Row callback: scores one document and accumulates. */
static void
eval_row(void *arg, const char *utf8, size_t len)
{
	EvalCtx    *c = arg;
	size_t		n,
				ok;
	double		nll;
	int32_t    *ids = tokenize(c->env, c->lm->model, utf8, len, &n);

	if (rl_score(c->env, c->lm->state, ids, n, &nll, &ok, NULL) != RL_OK)
		rnnlm_raise(c->env, "scoring");
	pfree(ids);
	c->nll += nll;
	c->tokens += n + 1;
	c->correct += ok;
	c->documents++;
}

/* Corpus-level loss, perplexity and accuracy over the rows of a query. */
Datum
rnnlm_evaluate(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
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
	rnnlm_prepare_blas();
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	c.env = &env;

	SPI_connect();
	rows = rnnlm_read_text_rows(query, "evaluation query", eval_row, &c, &nonnull);
	SPI_finish();
	if (nonnull == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the evaluation query returned %s",
						rows == 0 ? "no rows" : "only NULL values")));

	loss = c.nll / (double) c.tokens;
	initStringInfo(&s);
	appendStringInfo(&s,
					 "{\"documents\": " UINT64_FORMAT ", \"tokens\": " UINT64_FORMAT
					 ", \"loss\": %.6f, \"perplexity\": %.6f, \"bits_per_token\": %.6f"
					 ", \"accuracy\": %.6f}",
					 c.documents, c.tokens, loss, exp(loss), loss / M_LN2,
					 (double) c.correct / (double) c.tokens);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
