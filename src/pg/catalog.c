/*
 * catalog.c
 *		The rnnlm.model table: one row per model, weights as bytea.  Every
 *		statement names its schema and operators explicitly so that a
 *		caller's search_path cannot redirect it.  Callers are SPI-connected.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "catalog/namespace.h"

/*
 * Whether rnnlm.model has the columns of 0.2 (parent, history): not before
 * ALTER EXTENSION rnnlm UPDATE, when this library already serves a 0.1
 * schema.
 */
static bool
catalog_has_history(void)
{
	Oid			rel = get_relname_relid("model", get_namespace_oid("rnnlm", false));

	return OidIsValid(rel) && get_attnum(rel, "history") != InvalidAttrNumber;
}

/*
 * The column of a model row's revision (the stamp of its last change) and
 * the sequence it comes from: "version" and model_version_seq in the 0.1
 * schema, which this library serves until ALTER EXTENSION rnnlm UPDATE.
 */
static const char *
revision_column(void)
{
	return catalog_has_history() ? "revision" : "version";
}

/* The sequence of the revisions, as revision_column. */
static const char *
revision_sequence(void)
{
	return catalog_has_history() ? "rnnlm.model_revision_seq" : "rnnlm.model_version_seq";
}

/* Runs a statement with one text parameter, the model name. */
static int
exec_with_name(const char *sql, const char *name, bool read_only, long limit)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	int			ret;

	ret = SPI_execute_with_args(sql, 1, argtypes, values, NULL, read_only, limit);
	if (ret < 0)
		elog(ERROR, "rnnlm: catalog statement failed: %s", SPI_result_code_string(ret));
	return ret;
}

/* Whether a model of this name exists (and is visible to the caller). */
bool
rnnlm_catalog_exists(const char *name)
{
	bool		found;

	rnnlm_catalog_revision(name, &found);
	return found;
}

/*
 * Raises an ERROR unless the current role may replace or drop the named model
 * (it belongs to the owning role, or is a superuser).  A model the role
 * cannot see at all is left to the caller's "does not exist" handling.
 */
void
rnnlm_catalog_check_owner(const char *name)
{
	bool		isnull;

	exec_with_name("SELECT rnnlm.is_owner(owner) OR (SELECT rolsuper FROM pg_catalog.pg_roles "
				   "  WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) "
				   "FROM rnnlm.model WHERE name OPERATOR(pg_catalog.=) $1",
				   name, true, 1);
	if (SPI_processed > 0 &&
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of rnnlm model \"%s\"", name),
				 errhint("A model can be replaced or dropped only by a member of the role that owns it.")));
}

/* The model row's revision (changed by every change); *found = false if none. */
int64
rnnlm_catalog_revision(const char *name, bool *found)
{
	bool		isnull;
	Datum		d;

	exec_with_name(psprintf("SELECT %s FROM rnnlm.model "
							"WHERE name OPERATOR(pg_catalog.=) $1", revision_column()),
				   name, true, 1);
	*found = SPI_processed > 0;
	if (!*found)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return DatumGetInt64(d);
}

/* The model's weights and their row's revision, copied into cxt; NULL if there is no such model. */
bytea *
rnnlm_catalog_weights(const char *name, int64 *revision, MemoryContext cxt)
{
	bool		isnull;
	Datum		d;
	MemoryContext old;
	bytea	   *result;

	exec_with_name(psprintf("SELECT %s, weights FROM rnnlm.model "
							"WHERE name OPERATOR(pg_catalog.=) $1", revision_column()),
				   name, true, 1);
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	*revision = DatumGetInt64(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(cxt);
	result = DatumGetByteaPCopy(d);
	MemoryContextSwitchTo(old);
	return result;
}

/* A float8 Datum, or NULL for NaN. */
static Datum
float_or_null(double v, char *nulls, int i)
{
	if (isnan(v))
	{
		nulls[i] = 'n';
		return (Datum) 0;
	}
	return Float8GetDatum(v);
}

/*
 * Inserts the model, or replaces the existing row when row->replace (keeping
 * its owner and grants).  Returns false if a model of that name exists and
 * replace is off.  row->opts and row->result are NULL for an imported model.
 */
bool
rnnlm_catalog_store(const RnnlmModelRow *row)
{
	static const char *sql =
		"INSERT INTO rnnlm.model AS m (name, owner, %s, cell, tokenizer, vocab_size, "
		"  embedding_dim, hidden_size, num_layers, parameters, train_loss, val_loss, "
		"  val_perplexity, trained_tokens, options, created_at, weights%s) "
		"VALUES ($1, (SELECT oid FROM pg_catalog.pg_roles "
		"             WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER)::pg_catalog.regrole, "
		"  pg_catalog.nextval('%s'::pg_catalog.regclass), "
		"  $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
		"  pg_catalog.now(), $14%s) "
		"ON CONFLICT (name) DO %s "
		"RETURNING %s";
	static const char *update =
		"UPDATE SET %s = EXCLUDED.%s, "
		"cell = EXCLUDED.cell, tokenizer = EXCLUDED.tokenizer, "
		"vocab_size = EXCLUDED.vocab_size, embedding_dim = EXCLUDED.embedding_dim, "
		"hidden_size = EXCLUDED.hidden_size, num_layers = EXCLUDED.num_layers, "
		"parameters = EXCLUDED.parameters, train_loss = EXCLUDED.train_loss, "
		"val_loss = EXCLUDED.val_loss, val_perplexity = EXCLUDED.val_perplexity, "
		"trained_tokens = EXCLUDED.trained_tokens, options = EXCLUDED.options, "
		"created_at = EXCLUDED.created_at, weights = EXCLUDED.weights%s";
	Oid			argtypes[16] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, INT4OID, INT4OID,
		INT4OID, INT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, INT8OID, JSONBOID, BYTEAOID,
	JSONBOID, TEXTOID};
	Datum		values[16];
	char		nulls[17];
	const rl_config *c = &row->model->cfg;
	const rl_train_result *r = row->result;
	bool		v02 = catalog_has_history();
	bytea	   *weights;
	int			ret;
	char	   *stmt;

	memset(nulls, ' ', sizeof(nulls));
	nulls[16] = '\0';
	weights = palloc_extended(VARHDRSZ + row->blob_len, MCXT_ALLOC_HUGE);
	SET_VARSIZE(weights, VARHDRSZ + row->blob_len);
	memcpy(VARDATA(weights), row->blob, row->blob_len);

	values[0] = CStringGetTextDatum(row->name);
	values[1] = CStringGetTextDatum(rl_cell_name(c->cell));
	values[2] = CStringGetTextDatum(rl_tokenizer_name(c->tokenizer));
	values[3] = Int32GetDatum(c->vocab_size);
	values[4] = Int32GetDatum(c->embedding_dim);
	values[5] = Int32GetDatum(c->hidden_size);
	values[6] = Int32GetDatum(c->num_layers);
	values[7] = Int64GetDatum((int64) row->model->nparams);
	values[8] = float_or_null(r ? r->train_loss : NAN, nulls, 8);
	values[9] = float_or_null(r ? r->val_loss : NAN, nulls, 9);
	values[10] = float_or_null(r ? exp(r->val_loss) : NAN, nulls, 10);
	values[11] = Int64GetDatum(r ? (int64) r->train_tokens * r->epochs_run : 0);
	values[12] = row->opts ? JsonbPGetDatum(rnnlm_options_to_jsonb(row->opts))
		: DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"imported\": true}"));
	values[13] = PointerGetDatum(weights);
	values[14] = DirectFunctionCall1(jsonb_in, CStringGetDatum(row->history ? row->history : "[]"));
	values[15] = row->parent ? CStringGetTextDatum(row->parent) : (Datum) 0;
	if (row->parent == NULL)
		nulls[15] = 'n';

	stmt = psprintf(sql, revision_column(), v02 ? ", history, parent" : "", revision_sequence(),
					v02 ? ", $15, $16" : "",
					row->replace ? psprintf(update, revision_column(), revision_column(),
											v02 ? ", history = EXCLUDED.history, "
											"parent = EXCLUDED.parent" : "") : "NOTHING",
					revision_column());
	ret = SPI_execute_with_args(stmt, v02 ? 16 : 14, argtypes, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "rnnlm: could not store the model: %s", SPI_result_code_string(ret));
	pfree(weights);
	return SPI_processed > 0;
}

/* Deletes a model; false if there was none. */
bool
rnnlm_catalog_delete(const char *name)
{
	exec_with_name("DELETE FROM rnnlm.model WHERE name OPERATOR(pg_catalog.=) $1",
				   name, false, 0);
	return SPI_processed > 0;
}

PG_FUNCTION_INFO_V1(rnnlm_drop);

/* rnnlm_drop(model_name, if_exists): deletes a model. */
Datum
rnnlm_drop(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	bool		if_exists = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	bool		deleted;

	SPI_connect();
	rnnlm_catalog_check_owner(name);
	deleted = rnnlm_catalog_delete(name);
	SPI_finish();
	if (!deleted && !if_exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", name),
				 errhint("Pass if_exists => true to ignore a missing model.")));
	PG_RETURN_BOOL(deleted);
}
