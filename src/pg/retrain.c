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
#include "utils/json.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(rnnlm_retrain);
PG_FUNCTION_INFO_V1(rnnlm_retrain_async);

/* What the current version of a model was trained on and with. */
typedef struct Recipe
{
	Oid			owner;
	char	   *query;
	char	   *search_path;	/* or NULL */
	char	   *embeddings_query;	/* or NULL */
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

/* Whether a jsonb object has the key. */
static bool
jsonb_has_key(Jsonb *j, const char *key)
{
	return DatumGetBool(DirectFunctionCall2(jsonb_exists, JsonbPGetDatum(j), CStringGetTextDatum(key)));
}

/* j with key set to the string value. */
static Jsonb *
jsonb_set_text(Jsonb *j, const char *key, const char *value)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	escape_json(&s, key);
	appendStringInfoString(&s, ": ");
	escape_json(&s, value);
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(j),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data))));
}

/* The options given, with "replace": true. */
static Jsonb *
jsonb_with_replace(Jsonb *given)
{
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(given),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"replace\": true}"))));
}

/*
 * Reads the recipe of the model's current version, for a caller who must
 * be its owner (or a member of the owning role, or a superuser).
 */
static void
read_recipe(const char *name, Jsonb *given, Recipe *r)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	int			ret;

	if (!rnnlm_schema_is_v03())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("rnnlm_retrain needs the rnnlm 0.3 schema"),
				 errhint("ALTER EXTENSION rnnlm UPDATE")));
	SPI_connect();
	ret = SPI_execute_with_args("SELECT m.owner::pg_catalog.oid, rnnlm.is_owner(m.owner), q.query, "
								"       q.search_path, q.embeddings_query "
								"  FROM rnnlm.model m LEFT JOIN rnnlm.training_query q "
								"    ON q.name OPERATOR(pg_catalog.=) m.name "
								"   AND q.version OPERATOR(pg_catalog.=) m.version "
								" WHERE m.name OPERATOR(pg_catalog.=) $1",
								1, types, values, NULL, true, 1);
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
	r->embeddings_query = recipe_text(5, cxt);
	SPI_finish();
	if (r->query == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rnnlm model \"%s\" has no training query to retrain on", name),
				 errdetail("Versions trained before 0.3, imported models and federated models keep none."),
				 errhint("Train it with rnnlm_train() and {\"replace\": true}; later versions can then be retrained.")));
	r->options = rnnlm_inherit_options(name, jsonb_with_replace(given), true);
	/* the stored options say only that there was an embeddings_query */
	if (r->embeddings_query && !jsonb_has_key(given, "embeddings_query"))
		r->options = jsonb_set_text(r->options, "embeddings_query", r->embeddings_query);
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

/* How many advisory locks this backend holds. */
static int64
advisory_locks_held(void)
{
	bool		isnull;
	int64		n;

	SPI_connect();
	if (SPI_execute("SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks "
					"WHERE locktype OPERATOR(pg_catalog.=) 'advisory' "
					"  AND pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "rnnlm: could not read this backend's locks");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return n;
}

/*
 * After another role's query ran in this session: session-level advisory
 * locks it took would stay with the caller's session, so when the caller
 * held none before, they are released (with a WARNING).
 */
static void
release_owner_locks(const char *name, int64 held_before)
{
	if (held_before > 0 || advisory_locks_held() == 0)
		return;
	SPI_connect();
	(void) SPI_execute("SELECT pg_catalog.pg_advisory_unlock_all()", false, 0);
	SPI_finish();
	ereport(WARNING,
			(errmsg("released the advisory locks that the training query of rnnlm model \"%s\" took", name),
			 errdetail("The query runs as the model's owner; its session-level locks are not the caller's.")));
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
	int64		locks = 0;

	PreventCommandIfReadOnly("rnnlm_retrain()");
	read_recipe(name, options_arg(fcinfo, 1), &r);
	if (r.owner != GetUserId())
		locks = advisory_locks_held();
	nest = become_owner(&r, &save_user, &save_sec);
	summary = rnnlm_train_model(name, r.query, r.options);
	leave_owner(nest, save_user, save_sec);
	if (r.owner != save_user)
		release_owner_locks(name, locks);
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
