/*
 * replacement.c
 *		The options of a replacement: a training with "replace" starts from
 *		the options of the model's current version, changed by those given
 *		(rnnlm_train, its jobs, rnnlm_tune, federated training), and a
 *		retraining also from its sources (retrain.c).  Which options a
 *		replacement drops is the options table's (RNNLM_OPT_* in options.c).
 */
#include "rnnlm_pg.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

/*
 * The options of a replacement of model name: those of its current version,
 * as resolved (rnnlm.models.options), then those given over them; given
 * alone when the caller sees no such model.  Options that fit only the word
 * tokenizer go when another one is used, those whose defaults come from
 * the tokenizer go when the tokenizer changes, and with init_from the
 * vocabulary and architecture go, being the parent's.  as_before keeps the
 * sources of the training (init_from, embeddings_query), as a retraining
 * does; a replacement by a new training takes only the settings.  The
 * caller is SPI-connected or not; the result is in the caller's context.
 */
Jsonb *
rnnlm_inherit_options(const char *name, Jsonb *given, bool as_before)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[7] = {TEXTOID, JSONBOID, BOOLOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID};
	Datum		values[7] = {CStringGetTextDatum(name), JsonbPGetDatum(given), BoolGetDatum(as_before),
		rnnlm_option_keys(RNNLM_OPT_WORD_ONLY | RNNLM_OPT_TOKENIZER_DEFAULT),
		rnnlm_option_keys(RNNLM_OPT_WORD_ONLY),
		rnnlm_option_keys(RNNLM_OPT_FEDERATED | (as_before ? RNNLM_OPT_OWNER_ONLY : RNNLM_OPT_DATA_SOURCE)),
	rnnlm_option_keys(RNNLM_OPT_FROM_PARENT)};
	Jsonb	   *result = given;
	bool		isnull;
	Datum		d;
	int			ret;

	if (!rnnlm_schema_is_v03())
		return given;
	SPI_connect();
	/* which options go is the options table's (RNNLM_OPT_* in options.c) */
	ret = SPI_execute_with_args("SELECT ((((m.options "
								"  OPERATOR(pg_catalog.-) CASE WHEN t.tok OPERATOR(pg_catalog.<>) "
								"                               (m.options OPERATOR(pg_catalog.->>) 'tokenizer') THEN $4 "
								"    WHEN t.tok OPERATOR(pg_catalog.<>) 'word' THEN $5 "
								"    ELSE '{}'::pg_catalog.text[] END) "
								"  OPERATOR(pg_catalog.-) $6) "
								"  OPERATOR(pg_catalog.-) CASE WHEN pg_catalog.jsonb_typeof(t.parent) OPERATOR(pg_catalog.=) 'string' "
								"    THEN $7 ELSE '{}'::pg_catalog.text[] END) "
								"  OPERATOR(pg_catalog.||) $2) "
								"  FROM rnnlm.model m "
								"  CROSS JOIN LATERAL (SELECT COALESCE($2 OPERATOR(pg_catalog.->>) 'tokenizer', "
								"                                     m.options OPERATOR(pg_catalog.->>) 'tokenizer') AS tok, "
								"                            CASE WHEN $3 THEN COALESCE($2 OPERATOR(pg_catalog.->) 'init_from', "
								"                                                       m.options OPERATOR(pg_catalog.->) 'init_from') "
								"                                 ELSE $2 OPERATOR(pg_catalog.->) 'init_from' END AS parent) t "
								" WHERE m.name OPERATOR(pg_catalog.=) $1 "
								"   AND NOT (m.options OPERATOR(pg_catalog.?) 'imported')",
								7, types, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "rnnlm: could not read the options of model \"%s\": %s", name, SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);	/* SPI_finish frees SPI's */

			result = DatumGetJsonbPCopy(d);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	return result;
}

/*
 * Parses options into opts, and returns them; when they ask for replace,
 * those of the current version under them (rnnlm_inherit_options), parsed
 * again.  federated: for rnnlm_train_federated, which takes a few more.
 */
Jsonb *
rnnlm_replacement_options(const char *name, Jsonb *options, RnnlmOptions *opts, bool federated)
{
	Jsonb	   *merged;

	if (federated)
		rnnlm_parse_federated_options(options, opts);
	else
		rnnlm_parse_options(options, opts);
	if (!opts->replace)
		return options;
	merged = rnnlm_inherit_options(name, options, false);
	if (merged == options)
		return options;
	if (federated)
		rnnlm_parse_federated_options(merged, opts);
	else
		rnnlm_parse_options(merged, opts);
	return merged;
}

