/*
 * embed.c
 *		rnnlm_embed: a text as a fixed-size vector, the top layer's hidden
 *		states pooled (mean or last), for similarity search; one text, or
 *		many as rows.
 */
#include "rnnlm_pg.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(rnnlm_embed);
PG_FUNCTION_INFO_V1(rnnlm_embed_array);

/* The pooling argument: 'mean' or 'last'. */
static rl_pooling
pooling_arg(text *t)
{
	char	   *s = text_to_cstring(t);

	if (strcmp(s, "mean") == 0)
		return RL_POOL_MEAN;
	if (strcmp(s, "last") == 0)
		return RL_POOL_LAST;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("pooling must be 'mean' or 'last', not \"%s\"", s)));
	pg_unreachable();
}

/* The vector of one UTF-8 text under the loaded model, as a real[]. */
static ArrayType *
embed_text(RnnlmLoaded *lm, rl_env *env, const char *u, size_t len, rl_pooling pooling)
{
	const rl_model *m = lm->model;
	int			H = m->cfg.hidden_size,
				j;
	int32_t    *ids;
	size_t		n;
	float	   *v = palloc(sizeof(float) * H);
	Datum	   *elems = palloc(sizeof(Datum) * H);

	ids = rnnlm_tokenize(env, m, u, len, &n);
	if (rl_embed(env, lm->state, ids, n, pooling, v) != RL_OK)
		rnnlm_raise(env, "embedding");
	for (j = 0; j < H; j++)
		elems[j] = Float4GetDatum(v[j]);
	pfree(ids);
	pfree(v);
	return construct_array(elems, H, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
}

/* rnnlm_embed(model, input, pooling): one text's vector. */
Datum
rnnlm_embed(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	rl_pooling	pooling = pooling_arg(PG_GETARG_TEXT_PP(2));
	RnnlmLoaded *lm = rnnlm_get_model(fcinfo, name);
	rl_env		env;
	size_t		len;
	char	   *u = rnnlm_text_to_utf8(PG_GETARG_TEXT_PP(1), &len);

	rnnlm_use_precision(lm);
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	PG_RETURN_ARRAYTYPE_P(embed_text(lm, &env, u, len, pooling));
}

/* rnnlm_embed(model, inputs[], pooling): one row (ordinality, vector) per element; NULL for NULL. */
Datum
rnnlm_embed_array(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	rl_pooling	pooling = pooling_arg(PG_GETARG_TEXT_PP(2));
	RnnlmLoaded *lm;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	rl_env		env;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("inputs must be a one-dimensional array")));
	InitMaterializedSRF(fcinfo, 0);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		return (Datum) 0;
	lm = rnnlm_get_model(fcinfo, name);
	rnnlm_use_precision(lm);
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	for (i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		isnull[2] = {false, nulls[i]};

		CHECK_FOR_INTERRUPTS();
		values[0] = Int32GetDatum(i + 1);
		values[1] = (Datum) 0;
		if (!nulls[i])
		{
			size_t		len;
			char	   *u = rnnlm_text_to_utf8(DatumGetTextPP(elems[i]), &len);

			values[1] = PointerGetDatum(embed_text(lm, &env, u, len, pooling));
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
	}
	return (Datum) 0;
}
