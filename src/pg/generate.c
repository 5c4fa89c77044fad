/*
 * generate.c
 *		rnnlm_generate: condition on a prompt, then sample until max_tokens
 *		or the end-of-document token; rnnlm_next_tokens: the most likely
 *		next tokens after a prefix.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(rnnlm_generate);
PG_FUNCTION_INFO_V1(rnnlm_next_tokens);

/*
 * Feeds the document start and then the tokens of the UTF-8 text to the
 * loaded model's stream, whose logits then predict what follows.
 */
static void
condition_on(RnnlmLoaded *lm, rl_env *env, const char *u, size_t len)
{
	const rl_model *m = lm->model;
	int32_t    *ids;
	size_t		n,
				i;

	ids = rnnlm_tokenize(env, m, u, len, &n);
	rl_state_reset(lm->state);
	rl_state_feed(lm->state, RL_TOKEN_EOD);
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		rl_state_feed(lm->state, ids[i]);
	}
	pfree(ids);
}

/* Generates a continuation of the prompt. */
Datum
rnnlm_generate(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	int32		max_tokens = PG_ARGISNULL(2) ? 100 : PG_GETARG_INT32(2);
	rl_sample_opts so;
	RnnlmLoaded *lm;
	const rl_model *m;
	rl_rng		rng;
	rl_env		env;
	size_t		len;
	char	   *u;
	int32_t    *ids;
	char	   *generated;
	int32		produced = 0;

	so.temperature = PG_ARGISNULL(3) ? 1.0 : PG_GETARG_FLOAT8(3);
	so.top_k = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
	so.top_p = PG_ARGISNULL(5) ? 1.0 : PG_GETARG_FLOAT8(5);
	if (max_tokens < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_tokens must not be negative")));
	if (max_tokens > RNNLM_MAX_GENERATE)
	{
		ereport(NOTICE,
				(errmsg("max_tokens %d capped at %d", max_tokens, RNNLM_MAX_GENERATE)));
		max_tokens = RNNLM_MAX_GENERATE;
	}
	if (isnan(so.temperature) || so.temperature < 0 || isinf(so.temperature))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("temperature must be a finite number of at least 0"),
				 errhint("0 picks the most likely token every time.")));
	if (so.top_k < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_k must not be negative"),
				 errhint("0 turns top-k filtering off.")));
	if (isnan(so.top_p) || so.top_p <= 0 || so.top_p > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_p must be in (0, 1]"),
				 errhint("1 turns nucleus filtering off.")));
	if (PG_ARGISNULL(6))
		rl_rng_seed(&rng, pg_prng_uint64(&pg_global_prng_state));
	else
		rl_rng_seed(&rng, (uint64_t) PG_GETARG_INT64(6));

	lm = rnnlm_get_model(fcinfo, name);
	m = lm->model;
	rnnlm_use_precision(lm);
	rnnlm_env_init(&env, CurrentMemoryContext, false);

	if (PG_ARGISNULL(1))
	{
		u = "";
		len = 0;
	}
	else
		u = rnnlm_text_to_utf8(PG_GETARG_TEXT_PP(1), &len);
	condition_on(lm, &env, u, len);

	ids = palloc(sizeof(int32_t) * Max(max_tokens, 1));
	while (produced < max_tokens)
	{
		int32_t		tok;

		CHECK_FOR_INTERRUPTS();
		tok = rl_sample(lm->state->logits, m->cfg.vocab_size, &so, &rng, lm->sample_work);
		if (tok == RL_TOKEN_EOD)
			break;
		ids[produced++] = tok;
		rl_state_feed(lm->state, tok);
	}
	if (rl_detokenize(&env, &m->cfg, m->vocab, ids, (size_t) produced, &generated, &len) != RL_OK)
		rnnlm_raise(&env, "decoding the generated tokens");
	PG_RETURN_TEXT_P(rnnlm_utf8_to_text(generated, len));
}

/*
 * The k most likely next tokens after the prefix, most likely first (ties
 * in vocabulary order), with their probabilities; <eod> and <unk> appear
 * under those names when they rank.
 */
Datum
rnnlm_next_tokens(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	int32		k = PG_GETARG_INT32(2);
	RnnlmLoaded *lm;
	const rl_model *m;
	rl_env		env;
	size_t		len;
	char	   *u;
	const float *z;
	float		mx;
	double		sum;
	int32_t    *top;
	int32_t		count,
				i,
				V;

	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1")));
	InitMaterializedSRF(fcinfo, 0);
	lm = rnnlm_get_model(fcinfo, name);
	m = lm->model;
	V = m->cfg.vocab_size;
	rnnlm_use_precision(lm);
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	u = rnnlm_text_to_utf8(PG_GETARG_TEXT_PP(1), &len);
	condition_on(lm, &env, u, len);

	/* the softmax of the logits, for the k that rank highest */
	z = lm->state->logits;
	top = palloc(sizeof(int32_t) * (k < V ? k : V));
	count = rl_top_k(z, V, k, top);
	mx = rl_k_max(z, V);
	sum = rl_k_expsum(z, V, mx, NULL);
	for (i = 0; i < count; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		double		p = exp((double) z[top[i]] - mx) / sum;

		values[0] = PointerGetDatum(rnnlm_token_text(m, top[i]));
		values[1] = Float8GetDatum(isfinite(p) ? p : 0.0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
