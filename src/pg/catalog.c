/*
 * catalog.c
 *		The rnnlm.model table: one row per model, weights as bytea.  Every
 *		statement names its schema and operators explicitly so that a
 *		caller's search_path cannot redirect it.  Callers are SPI-connected.
 */
#include "rnnlm_pg.h"

#include "common/cryptohash.h"
#include "common/sha2.h"

#include <ctype.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/lsyscache.h"
#include "catalog/namespace.h"

static int	write_with_name(const char *sql, const char *name);

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
 * Whether the schema is 0.3's (it has rnnlm.version_counter, and the job
 * table's wait_reason): not before ALTER EXTENSION rnnlm UPDATE from 0.2,
 * when this library already serves a 0.2 schema.
 */
bool
rnnlm_schema_is_v03(void)
{
	return OidIsValid(get_relname_relid("version_counter", get_namespace_oid("rnnlm", false)));
}

/*
 * The number of the next version stored under a name, from its counter,
 * which never goes back: a version dropped, or a model dropped and trained
 * again, leaves its numbers used for good.  The counter's row stays locked
 * until the transaction ends, so two replacements of one model are numbered
 * one after the other.
 */
static int32
next_version(const char *name)
{
	bool		isnull;

	write_with_name("INSERT INTO rnnlm.version_counter AS c (name, last_version) "
					"VALUES ($1, 1 OPERATOR(pg_catalog.+) GREATEST(0, "
					"  (SELECT pg_catalog.max(version) FROM rnnlm.model "
					"    WHERE name OPERATOR(pg_catalog.=) $1), "
					"  (SELECT pg_catalog.max(version) FROM rnnlm.model_version "
					"    WHERE name OPERATOR(pg_catalog.=) $1))) "
					"ON CONFLICT (name) DO UPDATE SET last_version = 1 OPERATOR(pg_catalog.+) "
					"  GREATEST(c.last_version, EXCLUDED.last_version OPERATOR(pg_catalog.-) 1) "
					"WHERE $2 IS NOT NULL "
					"RETURNING last_version",
					name);
	if (SPI_processed != 1)
		elog(ERROR, "rnnlm: could not number the new version of model \"%s\"", name);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
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

/*
 * Runs one of rnnlm's writes with two parameters, the model name and the
 * calling role, as the extension's owner (privilege.c): the statement
 * itself keeps to the rows that role owns ($2).
 */
static int
write_with_name(const char *sql, const char *name)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		values[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(GetUserId())};
	int			ret;

	ret = rnnlm_spi_write(sql, 2, argtypes, values, NULL);
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

/*
 * The surprise quantiles (RNNLM_SURPRISE_POINTS of them, into q) of the
 * model's row of that revision (version 0), or of its version; false when
 * it has none.  Read as the caller, under row-level security; the caller
 * is SPI-connected.
 */
bool
rnnlm_catalog_surprise(const char *name, int64 revision, int32 version, double *q)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int64GetDatum(version > 0 ? version : revision)};
	bool		isnull;
	Datum		d;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i,
				ret;

	if (!rnnlm_schema_is_v03())
		return false;
	ret = SPI_execute_with_args(version > 0 ?
								"SELECT surprise FROM rnnlm.model "
								"WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
								"UNION ALL SELECT surprise FROM rnnlm.model_version "
								"WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2" :
								"SELECT surprise FROM rnnlm.model "
								"WHERE name OPERATOR(pg_catalog.=) $1 AND revision OPERATOR(pg_catalog.=) $2",
								2, types, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "rnnlm: could not read the surprise of model \"%s\": %s", name,
			 SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	deconstruct_array(DatumGetArrayTypeP(d), FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, &nulls, &n);
	if (n != RNNLM_SURPRISE_POINTS)
		return false;
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			return false;
		q[i] = DatumGetFloat8(elems[i]);
		if (isnan(q[i]) || (i > 0 && q[i] < q[i - 1]))
			return false;		/* not what a training stores */
	}
	return true;
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

/* The surprise quantiles as a float8[] Datum, or NULL (nulls[i]) when there are none. */
static Datum
surprise_datum(const double *q, char *nulls, int i)
{
	Datum		elems[RNNLM_SURPRISE_POINTS];
	int			k;

	if (q == NULL)
	{
		nulls[i] = 'n';
		return (Datum) 0;
	}
	for (k = 0; k < RNNLM_SURPRISE_POINTS; k++)
		elems[k] = Float8GetDatum(q[k]);
	return PointerGetDatum(construct_array(elems, RNNLM_SURPRISE_POINTS, FLOAT8OID, sizeof(float8),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * Moves the model's current version, if any, into rnnlm.model_version
 * (before it is replaced).  The row is locked first, so that a drop that
 * commits meanwhile is waited for and then seen: nothing is archived, and
 * the model is stored anew as version 1.
 */
static void
archive_current(const char *name)
{
	bool		v03 = rnnlm_schema_is_v03();

	write_with_name(psprintf("INSERT INTO rnnlm.model_version (name, version, sha256, parameters, train_loss, "
							 "  val_loss, created_at, weights%s) "
							 "SELECT name, version, sha256, parameters, train_loss, val_loss, created_at, weights%s "
							 "  FROM (SELECT * FROM rnnlm.model WHERE name OPERATOR(pg_catalog.=) $1 "
							 "          AND " RNNLM_OWNED_BY("$2") " FOR UPDATE) m "
							 "ON CONFLICT (name, version) DO NOTHING",
							 v03 ? ", surprise, provenance" : "", v03 ? ", surprise, provenance" : ""),
					name);
}

/* Deletes the older versions beyond the model's keep_versions, pinned ones aside. */
static void
prune_versions(const char *name)
{
	write_with_name("DELETE FROM rnnlm.model_version v USING rnnlm.model m "
					"WHERE v.name OPERATOR(pg_catalog.=) $1 AND m.name OPERATOR(pg_catalog.=) $1 "
					"  AND " RNNLM_OWNED_BY_OF("$2", "m") " AND NOT v.pinned "
					"  AND v.version OPERATOR(pg_catalog.<) "
					"      (m.version OPERATOR(pg_catalog.-) m.keep_versions)",
					name);
}

/*
 * Deletes the training queries of the model's versions that are gone (a
 * pruned or dropped version, or every one of a dropped model).
 */
static void
clean_training_queries(const char *name)
{
	if (!rnnlm_schema_is_v03())
		return;
	write_with_name("DELETE FROM rnnlm.training_query q "
					"WHERE q.name OPERATOR(pg_catalog.=) $1 "
					"  AND NOT EXISTS (SELECT 1 FROM rnnlm.model m WHERE m.name OPERATOR(pg_catalog.=) $1 "
					"                    AND m.version OPERATOR(pg_catalog.=) q.version) "
					"  AND NOT EXISTS (SELECT 1 FROM rnnlm.model_version v WHERE v.name OPERATOR(pg_catalog.=) $1 "
					"                    AND v.version OPERATOR(pg_catalog.=) q.version) "
					"  AND $2 IS NOT NULL",
					name);
}

/*
 * Records what version version of the model was trained on, readable by
 * its owner only: the training query, the embeddings_query option (NULL
 * when none) and the search_path they ran with.
 */
static void
store_training_query(const char *name, int32 version, const char *query, const char *embeddings_query)
{
	Oid			types[5] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5] = {CStringGetTextDatum(name), Int32GetDatum(version), CStringGetTextDatum(query),
		embeddings_query ? CStringGetTextDatum(embeddings_query) : (Datum) 0,
	CStringGetTextDatum(GetConfigOption("search_path", false, false))};
	char		nulls[6] = {' ', ' ', ' ', embeddings_query ? ' ' : 'n', ' ', '\0'};

	if (rnnlm_spi_write("INSERT INTO rnnlm.training_query (name, version, query, embeddings_query, search_path) "
						"VALUES ($1, $2, $3, $4, $5) "
						"ON CONFLICT (name, version) DO UPDATE SET query = EXCLUDED.query, "
						"  embeddings_query = EXCLUDED.embeddings_query, search_path = EXCLUDED.search_path",
						5, types, values, nulls) != SPI_OK_INSERT)
		elog(ERROR, "rnnlm: could not record the training query of model \"%s\"", name);
}

/* What an imported version's provenance says: who imported it, and when. */
static char *
import_provenance(void)
{
	StringInfoData s;
	char	   *role = GetUserNameFromId(GetUserId(), true);

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"imported_by\": ");
	if (role)
		escape_json(&s, role);
	else
		appendStringInfoString(&s, "null");
	appendStringInfoString(&s, ", \"imported_at\": ");
	escape_json(&s, timestamptz_to_str(GetCurrentTimestamp()));
	appendStringInfo(&s, ", \"rnnlm_version\": \"%s\"}", RNNLM_LIBRARY_VERSION);
	return s.data;
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
		"VALUES ($1, $15::pg_catalog.oid::pg_catalog.regrole, "
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
		"created_at = EXCLUDED.created_at, weights = EXCLUDED.weights%s "
		"WHERE " RNNLM_OWNED_BY_OF("$15", "m");
	Oid			argtypes[21] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, INT4OID, INT4OID,
		INT4OID, INT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, INT8OID, JSONBOID, BYTEAOID,
	OIDOID, JSONBOID, TEXTOID, INT4OID, INT4OID, FLOAT8ARRAYOID, JSONBOID};
	Datum		values[21];
	char		nulls[22];
	const rl_config *c = &row->model->cfg;
	const rl_train_result *r = row->result;
	bool		v02 = catalog_has_history();
	bool		v03 = v02 && rnnlm_schema_is_v03();
	bool		stored;
	bytea	   *weights;
	int			ret;
	char	   *stmt;

	memset(nulls, ' ', sizeof(nulls));
	nulls[21] = '\0';
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
	values[12] = row->opts ? JsonbPGetDatum(rnnlm_options_shown(row->opts))
		: DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"imported\": true}"));
	values[13] = PointerGetDatum(weights);
	values[14] = ObjectIdGetDatum(GetUserId());
	values[15] = DirectFunctionCall1(jsonb_in, CStringGetDatum(row->history ? row->history : "[]"));
	values[16] = row->parent ? CStringGetTextDatum(row->parent) : (Datum) 0;
	if (row->parent == NULL)
		nulls[16] = 'n';
	values[17] = Int32GetDatum(row->opts ? row->opts->keep_versions : 0);
	/* a property of the model: only a value given changes it (an import keeps it) */
	if (row->opts == NULL || !rnnlm_option_given(row->opts, "keep_versions"))
		nulls[17] = 'n';
	values[18] = Int32GetDatum(v03 ? next_version(row->name) : 0);
	values[19] = surprise_datum(row->surprise, nulls, 19);
	values[20] = DirectFunctionCall1(jsonb_in, CStringGetDatum(row->provenance ? row->provenance
															   : import_provenance()));

	if (v02 && row->replace)
		archive_current(row->name);
	stmt = psprintf(sql, revision_column(),
					v03 ? ", history, parent, version, sha256, keep_versions, surprise, provenance" :
					v02 ? ", history, parent, version, sha256, keep_versions" : "",
					revision_sequence(),
					v02 ? (v03 ? ", $16, $17, $19, pg_catalog.sha256($14), COALESCE($18, 1), $20, $21"
						   : ", $16, $17, 1, pg_catalog.sha256($14), COALESCE($18, 1)") : "",
					row->replace ? psprintf(update, revision_column(), revision_column(),
											v02 ? psprintf(", history = EXCLUDED.history, "
														   "parent = EXCLUDED.parent, "
														   "version = %s, "
														   "sha256 = EXCLUDED.sha256, "
														   "keep_versions = COALESCE($18, m.keep_versions)%s",
														   v03 ? "$19" : "m.version OPERATOR(pg_catalog.+) 1",
														   v03 ? ", surprise = EXCLUDED.surprise, "
														   "provenance = EXCLUDED.provenance" : "")
											: "") : "NOTHING",
					revision_column());
	ret = rnnlm_spi_write(stmt, v03 ? 21 : v02 ? 18 : 15, argtypes, values, nulls);
	if (ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "rnnlm: could not store the model: %s", SPI_result_code_string(ret));
	pfree(weights);
	stored = SPI_processed > 0;
	if (v02 && stored)
		prune_versions(row->name);
	if (v03 && stored)
	{
		clean_training_queries(row->name);
		if (row->query)
			store_training_query(row->name, DatumGetInt32(values[18]), row->query,
								 row->opts ? row->opts->embeddings_query : NULL);
	}
	return stored;
}

/* Deletes a model; false if there was none. */
bool
rnnlm_catalog_delete(const char *name)
{
	bool		deleted;

	write_with_name("DELETE FROM rnnlm.model WHERE name OPERATOR(pg_catalog.=) $1 "
					"  AND " RNNLM_OWNED_BY("$2"),
					name);
	deleted = SPI_processed > 0;
	if (deleted)
		clean_training_queries(name);
	return deleted;
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

/* ---------------- model versions ---------------- */

/*
 * Whether s is a reference to a pinned version, name@N or
 * name@sha256:<1 to 64 hex digits>, parsed into ref; false for a plain name
 * (which may contain '@' itself).
 */
bool
rnnlm_parse_ref(const char *s, RnnlmRef *ref)
{
	const char *at = strrchr(s, '@');
	const char *suffix;
	size_t		nlen,
				i;

	if (at == NULL || at == s)
		return false;
	nlen = (size_t) (at - s);
	suffix = at + 1;
	memset(ref, 0, sizeof(*ref));
	if (strncmp(suffix, "sha256:", 7) == 0)
	{
		const char *hex = suffix + 7;
		size_t		hlen = strlen(hex);

		if (hlen < 1 || hlen > 64)
			return false;
		for (i = 0; i < hlen; i++)
		{
			if (!isxdigit((unsigned char) hex[i]))
				return false;
			ref->sha_prefix[i] = (char) tolower((unsigned char) hex[i]);
		}
	}
	else
	{
		long		v = 0;

		if (suffix[0] == '\0' || strlen(suffix) > 9)
			return false;
		for (i = 0; suffix[i]; i++)
		{
			if (!isdigit((unsigned char) suffix[i]))
				return false;
			v = v * 10 + (suffix[i] - '0');
		}
		if (v < 1)
			return false;
		ref->version = (int32) v;
	}
	if (nlen > RNNLM_MAX_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("model name is too long"),
				 errdetail("Model names are at most %d bytes.", RNNLM_MAX_NAME)));
	memcpy(ref->name, s, nlen);
	ref->name[nlen] = '\0';
	return true;
}

/*
 * The version number a reference names, with its SHA-256 (hex, into
 * sha_hex[65]); an ERROR naming the version if it is not stored (or not
 * visible to the caller), or if a prefix matches several.
 */
int32
rnnlm_catalog_resolve_ref(const RnnlmRef *ref, char *sha_hex)
{
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
	Datum		values[3];
	char		nulls[4] = "   ";
	bool		isnull;
	int			ret;
	bool		exists;
	char	   *shown = ref->version > 0 ? psprintf("%d", ref->version)
		: psprintf("sha256:%s", ref->sha_prefix);

	if (!catalog_has_history())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model versions need rnnlm 0.2"),
				 errhint("Run ALTER EXTENSION rnnlm UPDATE.")));
	values[0] = CStringGetTextDatum(ref->name);
	values[1] = Int32GetDatum(ref->version);
	values[2] = CStringGetTextDatum(ref->sha_prefix);
	ret = SPI_execute_with_args("SELECT version, sha256 FROM rnnlm.model_versions "
								"WHERE name OPERATOR(pg_catalog.=) $1 AND "
								"  ($2 OPERATOR(pg_catalog.>) 0 AND version OPERATOR(pg_catalog.=) $2 OR "
								"   $2 OPERATOR(pg_catalog.=) 0 AND "
								"   pg_catalog.left(sha256, pg_catalog.length($3)) OPERATOR(pg_catalog.=) $3)",
								3, argtypes, values, nulls, true, 2);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "rnnlm: catalog statement failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("rnnlm model reference \"%s@%s\" matches several versions", ref->name, shown),
				 errhint("Give more of the SHA-256, or the version number.")));
	if (SPI_processed == 0)
	{
		rnnlm_catalog_revision(ref->name, &exists);
		if (!exists)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("rnnlm model \"%s\" does not exist", ref->name),
					 errhint("SELECT name FROM rnnlm.models lists the models you can use.")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" has no version %s", ref->name, shown),
				 errhint("SELECT version, sha256 FROM rnnlm.model_versions WHERE name = '%s' lists its versions.",
						 ref->name)));
	}
	strlcpy(sha_hex, TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
														 2, &isnull)), 65);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Raises XX001 unless the bytes loaded for a version of a model have the
 * SHA-256 (hex) that names it: a reference by version or hash never serves
 * other weights, whatever was done to the tables.
 */
static void
check_sha256(const char *name, int32 version, const char *sha_hex, const bytea *blob)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char		hex[2 * PG_SHA256_DIGEST_LENGTH + 1];

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) VARDATA_ANY(blob), VARSIZE_ANY_EXHDR(blob)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "rnnlm: could not compute a SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[sizeof(hex) - 1] = '\0';
	if (strcmp(hex, sha_hex) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the stored weights of version %d of rnnlm model \"%s\" do not match its SHA-256",
						version, name),
				 errdetail("The version is %s; the weights stored for it hash to %s.", sha_hex, hex)));
}

/*
 * The weights of one version of a model (its number and SHA-256, as
 * rnnlm_catalog_resolve_ref found them), copied into cxt; NULL if it is not
 * stored.  XX001 when the bytes do not hash to sha_hex.
 */
bytea *
rnnlm_catalog_version_weights(const char *name, int32 version, const char *sha_hex,
							  MemoryContext cxt)
{
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
	Datum		values[3] = {CStringGetTextDatum(name), Int32GetDatum(version),
	CStringGetTextDatum(sha_hex)};
	bool		isnull;
	Datum		d;
	MemoryContext old;
	bytea	   *result;
	int			ret;

	/* the row whose number and hash are the version's (the current row first) */
	ret = SPI_execute_with_args("SELECT weights FROM ("
								"  SELECT 0 AS archived, weights FROM rnnlm.model "
								"   WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
								"     AND pg_catalog.encode(sha256, 'hex') OPERATOR(pg_catalog.=) $3 "
								"  UNION ALL "
								"  SELECT 1, weights FROM rnnlm.model_version "
								"   WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
								"     AND pg_catalog.encode(sha256, 'hex') OPERATOR(pg_catalog.=) $3) v "
								"ORDER BY archived LIMIT 1",
								3, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "rnnlm: catalog statement failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	old = MemoryContextSwitchTo(cxt);
	result = DatumGetByteaPCopy(d);
	MemoryContextSwitchTo(old);
	check_sha256(name, version, sha_hex, result);
	return result;
}

/*
 * Runs a statement on one older version (name $1, version $2, the caller
 * $3, and $4 when nargs is 4) of a model the caller owns, as the
 * extension's owner.
 */
static uint64
exec_on_version(const char *sql, int nargs, const char *name, int32 version, bool pinned)
{
	Oid			argtypes[4] = {TEXTOID, INT4OID, OIDOID, BOOLOID};
	Datum		values[4] = {CStringGetTextDatum(name), Int32GetDatum(version),
	ObjectIdGetDatum(GetUserId()), BoolGetDatum(pinned)};
	int			ret;

	rnnlm_catalog_check_owner(name);
	if (!rnnlm_catalog_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", name)));
	ret = rnnlm_spi_write(sql, nargs, argtypes, values, NULL);
	if (ret < 0)
		elog(ERROR, "rnnlm: catalog statement failed: %s", SPI_result_code_string(ret));
	return SPI_processed;
}

PG_FUNCTION_INFO_V1(rnnlm_pin_version);

/* rnnlm_pin_version(model_name, version, pinned): keeps an older version whatever keep_versions says. */
Datum
rnnlm_pin_version(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), false);
	uint64		n;

	PreventCommandIfReadOnly("rnnlm_pin_version()");
	SPI_connect();
	n = exec_on_version("UPDATE rnnlm.model_version v SET pinned = $4 FROM rnnlm.model m "
						"WHERE v.name OPERATOR(pg_catalog.=) $1 AND v.version OPERATOR(pg_catalog.=) $2 "
						"  AND m.name OPERATOR(pg_catalog.=) $1 AND " RNNLM_OWNED_BY_OF("$3", "m"),
						4, name, PG_GETARG_INT32(1), PG_GETARG_BOOL(2));
	SPI_finish();
	PG_RETURN_BOOL(n > 0);
}

PG_FUNCTION_INFO_V1(rnnlm_drop_version);

/* rnnlm_drop_version(model_name, version): deletes an older version (the current one stays). */
Datum
rnnlm_drop_version(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), false);
	uint64		n;

	PreventCommandIfReadOnly("rnnlm_drop_version()");
	SPI_connect();
	n = exec_on_version("DELETE FROM rnnlm.model_version v USING rnnlm.model m "
						"WHERE v.name OPERATOR(pg_catalog.=) $1 AND v.version OPERATOR(pg_catalog.=) $2 "
						"  AND m.name OPERATOR(pg_catalog.=) $1 AND " RNNLM_OWNED_BY_OF("$3", "m"),
						3, name, PG_GETARG_INT32(1), false);
	if (n > 0)
		clean_training_queries(name);
	SPI_finish();
	PG_RETURN_BOOL(n > 0);
}
