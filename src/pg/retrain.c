/*
 * retrain.c
 *		rnnlm_retrain and rnnlm_retrain_async: a new version of a model,
 *		trained on the query its current version was trained on, with its
 *		options changed only by those given.
 *
 * The stored query is the owner's SQL, so it runs as the model's owner,
 * never as the caller: a superuser who retrains another role's model must
 * not run that role's SQL with superuser rights.  As REFRESH MATERIALIZED
 * VIEW does, the user is switched to the owner under a security-restricted
 * operation (no SET ROLE, no session state the query could leave behind),
 * with the search_path the version was trained with; the caller must be
 * the owner, a member of the owning role or a superuser.  A job is
 * submitted as the owner likewise, and its worker runs as the owner anyway.
 */
#include "rnnlm_pg.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(rnnlm_retrain);
PG_FUNCTION_INFO_V1(rnnlm_retrain_async);

/* What the current version of a model was trained on and with. */
typedef struct Recipe
{
	Oid			owner;
	char	   *query;
	char	   *search_path;	/* or NULL */
	Jsonb	   *options;		/* the stored ones, then those given, then replace */
} Recipe;

/* A text column of the only row, copied into the caller's context (NULL for NULL). */
static char *
recipe_text(int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

/*
 * Reads the recipe of the model's current version, for a caller who must
 * be its owner (or a member of the owning role, or a superuser).
 */
static void
read_recipe(const char *name, Jsonb *given, Recipe *r)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[2] = {TEXTOID, JSONBOID};
	Datum		values[2] = {CStringGetTextDatum(name), JsonbPGetDatum(given)};
	bool		isnull;
	Datum		d;
	int			ret;

	if (!rnnlm_schema_is_v03())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("rnnlm_retrain needs the rnnlm 0.3 schema"),
				 errhint("ALTER EXTENSION rnnlm UPDATE")));
	SPI_connect();
	/*
	 * The stored options are every option as resolved: those that only fit
	 * the word tokenizer go when another one is used, those whose defaults
	 * come from the tokenizer go when the tokenizer changes, and with
	 * init_from the vocabulary and architecture go, being the parent's.
	 */
	ret = SPI_execute_with_args("SELECT m.owner::pg_catalog.oid, rnnlm.is_owner(m.owner), q.query, "
								"       m.provenance OPERATOR(pg_catalog.->>) 'search_path', "
								"       ((m.options OPERATOR(pg_catalog.-) "
								"          CASE WHEN t.tok OPERATOR(pg_catalog.<>) "
								"                    (m.options OPERATOR(pg_catalog.->>) 'tokenizer') "
								"               THEN '{max_vocab,lowercase,filters,split_on_punctuation}'::pg_catalog.text[] "
								"               WHEN t.tok OPERATOR(pg_catalog.<>) 'word' "
								"               THEN '{filters,split_on_punctuation}'::pg_catalog.text[] "
								"               ELSE '{}'::pg_catalog.text[] END) "
								"         OPERATOR(pg_catalog.-) "
								"          CASE WHEN pg_catalog.jsonb_typeof(t.parent) OPERATOR(pg_catalog.=) 'string' "
								"               THEN '{max_vocab,cell,tokenizer,lowercase,normalize,split_on_punctuation,"
								"                      filters,embedding_dim,hidden_size,num_layers}'::pg_catalog.text[] "
								"               ELSE '{}'::pg_catalog.text[] END) "
								"         OPERATOR(pg_catalog.||) $2 "
								"         OPERATOR(pg_catalog.||) '{\"replace\": true}'::pg_catalog.jsonb "
								"  FROM rnnlm.model m "
								"  CROSS JOIN LATERAL (SELECT COALESCE($2 OPERATOR(pg_catalog.->>) 'tokenizer', "
								"                                     m.options OPERATOR(pg_catalog.->>) 'tokenizer') AS tok, "
								"                            COALESCE($2 OPERATOR(pg_catalog.->) 'init_from', "
								"                                     m.options OPERATOR(pg_catalog.->) 'init_from') AS parent) t "
								"  LEFT JOIN rnnlm.training_query q "
								"    ON q.name OPERATOR(pg_catalog.=) m.name "
								"   AND q.version OPERATOR(pg_catalog.=) m.version "
								" WHERE m.name OPERATOR(pg_catalog.=) $1",
								2, types, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "rnnlm: could not read model \"%s\": %s", name, SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", name)));
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be the owner of rnnlm model \"%s\" to retrain it", name)));
	r->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	r->query = recipe_text(3, cxt);
	r->search_path = recipe_text(4, cxt);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
	if (!isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);	/* SPI_finish frees SPI's */

		r->options = DatumGetJsonbPCopy(d);
		MemoryContextSwitchTo(old);
	}
	else
		r->options = NULL;
	SPI_finish();
	if (r->query == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rnnlm model \"%s\" has no training query to retrain on", name),
				 errdetail("Versions trained before 0.3, imported models and federated models keep none."),
				 errhint("Train it with rnnlm_train() and {\"replace\": true}; later versions can then be retrained.")));
}

/* The options argument: {} for NULL. */
static Jsonb *
options_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	return PG_GETARG_JSONB_P(argno);
}

/*
 * Becomes the model's owner, in a security-restricted operation with the
 * version's search_path; *save_* say how to come back (leave_owner).  An
 * error on the way is undone by the transaction's abort.
 */
static int
become_owner(const Recipe *r, Oid *save_user, int *save_sec)
{
	int			nest;

	GetUserIdAndSecContext(save_user, save_sec);
	nest = NewGUCNestLevel();
	SetUserIdAndSecContext(r->owner, *save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (r->search_path)
		(void) set_config_option("search_path", r->search_path, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/* Comes back from become_owner. */
static void
leave_owner(int nest, Oid save_user, int save_sec)
{
	AtEOXact_GUC(false, nest);
	SetUserIdAndSecContext(save_user, save_sec);
}

/* rnnlm_retrain(model_name, options): a new version, trained now, as the owner. */
Datum
rnnlm_retrain(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	Recipe		r;
	Oid			save_user;
	int			save_sec,
				nest;
	char	   *summary;

	PreventCommandIfReadOnly("rnnlm_retrain()");
	read_recipe(name, options_arg(fcinfo, 1), &r);
	nest = become_owner(&r, &save_user, &save_sec);
	summary = rnnlm_train_model(name, r.query, r.options);
	leave_owner(nest, save_user, save_sec);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(summary)));
}

/* rnnlm_retrain_async(model_name, options): the same as a job of the owner's. */
Datum
rnnlm_retrain_async(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	Recipe		r;
	Oid			save_user;
	int			save_sec,
				nest;
	int64		job_id;

	PreventCommandIfReadOnly("rnnlm_retrain_async()");
	read_recipe(name, options_arg(fcinfo, 1), &r);
	nest = become_owner(&r, &save_user, &save_sec);
	job_id = rnnlm_submit_training_job(name, r.query, r.options);
	leave_owner(nest, save_user, save_sec);
	PG_RETURN_INT64(job_id);
}
