/*
 * publish.c
 *		rnnlm_publish: copies a model version, with its grants, to the
 *		database behind a postgres_fdw foreign server, through that server's
 *		user mapping for the current role, so that every shard holds the
 *		same version (the same SHA-256) for rnnlm_perplexity_at.
 *
 * The connection is remote.c's: the server's options and the role's user
 * mapping, waits that a cancel interrupts.  On the remote side the version is stored with
 * rnnlm_import(name, file, replace => true), owned by the mapping's user;
 * when the remote model already has that SHA-256 nothing is sent and the
 * result is false.  Grants go with rnnlm_grant; a grantee role the remote
 * side does not have is skipped with a WARNING.
 */
#include "rnnlm_pg.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(rnnlm_publish);

/* What is published: the name, the model file, its hash, the grantees. */
typedef struct Published
{
	char	   *name;
	bytea	   *file;
	char		sha[65];
	char	  **grantees;
	int			ngrantees;
} Published;

/* Reads the referenced version (or the current one) and its grants, into caller's context. */
static void
read_published(const char *refstr, Published *p, MemoryContext caller)
{
	RnnlmRef	ref;
	int64		revision;
	bool		isnull;
	Datum		d;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int			i;
	MemoryContext spi = CurrentMemoryContext;

	if (rnnlm_parse_ref(refstr, &ref))
	{
		p->name = MemoryContextStrdup(caller, ref.name);
		p->file = rnnlm_catalog_version_weights(ref.name, rnnlm_catalog_resolve_ref(&ref, p->sha),
												p->sha, caller);
	}
	else
	{
		p->name = MemoryContextStrdup(caller, refstr);
		p->file = rnnlm_catalog_weights(refstr, &revision, caller);
	}
	if (p->file == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", p->name)));
	values[0] = CStringGetTextDatum(p->name);
	if (SPI_execute_with_args("SELECT granted_to, sha256 FROM rnnlm.models WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "rnnlm: could not read the grants of model \"%s\"", p->name);
	if (p->sha[0] == '\0')
		strlcpy(p->sha, TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
														   2, &isnull)), sizeof(p->sha));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	arr = DatumGetArrayTypePCopy(d);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &p->ngrantees);
	MemoryContextSwitchTo(caller);
	p->grantees = palloc(sizeof(char *) * (p->ngrantees + 1));
	for (i = 0; i < p->ngrantees; i++)
		p->grantees[i] = TextDatumGetCString(elems[i]);
	MemoryContextSwitchTo(spi);
}

/* Runs a remote statement with text parameters and results. */
static PGresult *
remote(PGconn *conn, const char *server, const char *sql, int n, const char *const *params,
	   const int *lengths, const int *formats, const Oid *types)
{
	return rnnlm_remote_exec(conn, server, sql, n, types, params, lengths, formats, 0);
}

/* Copies the version to the remote side; false if it is there already. */
static bool
publish_to(PGconn *conn, const char *server, const Published *p)
{
	const char *name_param[1] = {p->name};
	PGresult   *res;
	bool		same;
	int			i;

	rnnlm_remote_check_extension(conn, server, "0.2");
	res = remote(conn, server, "SELECT sha256 FROM rnnlm.models WHERE name = $1", 1, name_param,
				 NULL, NULL, NULL);
	same = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && strcmp(PQgetvalue(res, 0, 0), p->sha) == 0;
	PQclear(res);
	if (same)
		return false;
	{
		const char *params[2] = {p->name, VARDATA_ANY(p->file)};
		int			lengths[2] = {0, (int) VARSIZE_ANY_EXHDR(p->file)};
		int			formats[2] = {0, 1};
		Oid			types[2] = {TEXTOID, BYTEAOID};

		PQclear(remote(conn, server, "SELECT rnnlm_import($1, $2, true)", 2, params, lengths,
					   formats, types));
	}
	for (i = 0; i < p->ngrantees; i++)
	{
		const char *params[2] = {p->name, p->grantees[i]};

		bool		known;

		res = remote(conn, server,
					 "SELECT $1::text IS NOT NULL AND ($2::text = 'PUBLIC' OR EXISTS "
					 "  (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $2::text))",
					 2, params, NULL, NULL, NULL);
		known = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);			/* before the next call, which may raise */
		if (known)
			PQclear(remote(conn, server, "SELECT rnnlm_grant($1, $2)", 2, params, NULL, NULL, NULL));
		else
			ereport(WARNING,
					(errmsg("role \"%s\" does not exist on server \"%s\": model \"%s\" is not granted to it there",
							p->grantees[i], server, p->name)));
	}
	return true;
}

/* rnnlm_publish(model_ref, server): the version and its grants, on the server's database. */
Datum
rnnlm_publish(PG_FUNCTION_ARGS)
{
	char	   *ref = rnnlm_check_ref(PG_GETARG_DATUM(0), false);
	char	   *server = NameStr(*PG_GETARG_NAME(1));
	Published	p;
	PGconn	   *volatile conn = NULL;
	bool		sent = false;

	MemoryContext caller = CurrentMemoryContext;

	memset(&p, 0, sizeof(p));
	SPI_connect();
	read_published(ref, &p, caller);
	SPI_finish();
	PG_TRY();
	{
		conn = rnnlm_remote_connect(server, "rnnlm_publish");
		sent = publish_to(conn, server, &p);
	}
	PG_FINALLY();
	{
		rnnlm_remote_close(conn);
	}
	PG_END_TRY();
	PG_RETURN_BOOL(sent);
}
