/*
 * remote.c
 *		libpq connections to the database behind a postgres_fdw foreign
 *		server, opened under the rules of both postgres_fdw and dblink, so
 *		that rnnlm reaches no database that either of them would refuse.
 *
 * rnnlm_remote_connect opens every connection (rnnlm_publish's and
 * rnnlm_train_federated's):
 *	- the current role needs USAGE on the server, checked before anything
 *	  else, as dblink_connect(server) does;
 *	- the options are the server's and the user mapping's (the role's own,
 *	  else PUBLIC's, as postgres_fdw finds it), less those that are not
 *	  libpq's (extensions, password_required, ...);
 *	- a role that is not a superuser needs a non-empty password among them,
 *	  and the remote server must have asked for it (PQconnectionUsedPassword),
 *	  so that no role borrows the local server's own credentials (.pgpass,
 *	  certificates, Kerberos) or the remote's "trust".  postgres_fdw waives
 *	  both for a mapping that a superuser gave password_required 'false';
 *	  dblink does not, and neither does rnnlm.
 * Errors name the server and never an option's value; the detail of a
 * failed connection is libpq's reason, which does not show the password.
 *
 * A statement is sent without waiting (rnnlm_remote_send) so that several
 * servers work at once, and its result is awaited on the backend's latch
 * (rnnlm_remote_result): a cancel or a timeout here interrupts the wait,
 * and rnnlm_remote_close then cancels the remote statement before closing.
 * A remote error becomes a local ERROR with the remote SQLSTATE and the
 * server's name.
 */
#include "remote.h"

#include <math.h>

#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_bswap.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/wait_event.h"

/* Whether a connection option name is one libpq knows. */
static bool
libpq_option(const char *name)
{
	PQconninfoOption *opts = PQconndefaults(),
			   *o;
	bool		found = false;

	for (o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, name) == 0)
			found = true;
	PQconninfoFree(opts);
	return found;
}

/* Raises an ERROR unless the current role has USAGE on the server. */
static void
check_usage(ForeignServer *srv)
{
	AclResult	acl = pg_foreign_server_aclcheck(srv->serverid, GetUserId(), ACL_USAGE);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_FOREIGN_SERVER, srv->servername);
}

/* Whether a superuser gave the user mapping password_required 'false'. */
static bool
password_waived(const UserMapping *um)
{
	ListCell   *lc;

	foreach(lc, um->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "password_required") == 0)
			return !defGetBoolean(def);
	}
	return false;
}

/* The hint of a "password is required" error. */
static int
password_hint(const char *server, bool waived, bool connected)
{
	if (waived)
		return errhint("rnnlm, like dblink, ignores the password_required 'false' of the user "
					   "mapping of server \"%s\": it needs a password that the remote server "
					   "asks for.", server);
	if (connected)
		return errhint("The authentication method of the database of server \"%s\" must "
					   "be changed to one that asks for the password.", server);
	return errhint("Set a non-empty password in the user mapping of server \"%s\".", server);
}

/* Raises an ERROR unless a non-empty password is among the options. */
static void
require_password_option(const char *server, bool waived, const char *const *keys,
						const char *const *vals)
{
	int			i;

	for (i = 0; keys[i] != NULL; i++)
		if (strcmp(keys[i], "password") == 0 && vals[i][0] != '\0')
			return;
	ereport(ERROR,
			(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
			 errmsg("password is required"),
			 errdetail("Non-superusers must provide a password in the user mapping."),
			 password_hint(server, waived, false)));
}

/*
 * Raises an ERROR unless the named postgres_fdw server exists and the
 * current role has USAGE on it: what a job checks when it is submitted,
 * before its worker connects under every rule.
 */
void
rnnlm_remote_check_usage(const char *server)
{
	check_usage(GetForeignServerByName(server, false));
}

/* Opens a libpq connection to the server, under the rules above. */
PGconn *
rnnlm_remote_connect(const char *server, const char *application)
{
	ForeignServer *srv = GetForeignServerByName(server, false);
	ForeignDataWrapper *fdw;
	Oid			userid = GetUserId();
	bool		privileged = superuser_arg(userid);
	UserMapping *um;
	List	   *options;
	ListCell   *lc;
	const char **keys,
			  **vals;
	int			n = 0;
	PGconn	   *conn;

	check_usage(srv);
	fdw = GetForeignDataWrapper(srv->fdwid);
	if (strcmp(fdw->fdwname, "postgres_fdw") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a postgres_fdw server", server)));
	um = GetUserMapping(userid, srv->serverid);
	options = list_concat(list_copy(srv->options), um->options);
	keys = palloc(sizeof(char *) * (list_length(options) + 3));
	vals = palloc(sizeof(char *) * (list_length(options) + 3));
	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		/* postgres_fdw's own options (password_required ...) stay here */
		if (!libpq_option(def->defname))
			continue;
		keys[n] = def->defname;
		vals[n++] = defGetString(def);
	}
	keys[n] = "fallback_application_name";
	vals[n++] = application;
	/* text travels in this database's encoding, as postgres_fdw's does */
	keys[n] = "client_encoding";
	vals[n++] = GetDatabaseEncodingName();
	keys[n] = NULL;
	vals[n] = NULL;
	if (!privileged)
		require_password_option(server, password_waived(um), keys, vals);
	conn = PQconnectdbParams(keys, vals, false);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = pstrdup(PQerrorMessage(conn));
		size_t		len = strlen(msg);

		PQfinish(conn);
		/* libpq ends its message with a newline */
		if (len > 0 && msg[len - 1] == '\n')
			msg[len - 1] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to server \"%s\"", server),
				 errdetail_internal("%s", msg)));
	}
	if (!privileged && !PQconnectionUsedPassword(conn))
	{
		PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required"),
				 errdetail("Non-superuser cannot connect if the server does not request a password."),
				 password_hint(server, password_waived(um), true)));
	}
	return conn;
}

/* Sends a statement with parameters, not waiting for its result. */
void
rnnlm_remote_send(PGconn *conn, const char *server, const char *sql, int nparams,
				  const Oid *types, const char *const *values, const int *lengths,
				  const int *formats, int binary_result)
{
	if (!PQsendQueryParams(conn, sql, nparams, types, values, lengths, formats, binary_result))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not send a statement to server \"%s\"", server),
				 errdetail_internal("%s", PQerrorMessage(conn))));
}

/* Raises the error of a failed result (which it frees) as a local ERROR. */
static void
raise_remote(PGresult *res, const char *server)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	char	   *msg = pstrdup(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ?
							  PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) :
							  PQresultErrorMessage(res));
	char	   *d = detail ? pstrdup(detail) : NULL;
	char	   *h = hint ? pstrdup(hint) : NULL;
	int			code = ERRCODE_FDW_ERROR;

	if (state && strlen(state) == 5)
		code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
	PQclear(res);
	ereport(ERROR,
			(errcode(code),
			 errmsg("on server \"%s\": %s", server, msg),
			 d ? errdetail_internal("%s", d) : 0,
			 h ? errhint("%s", h) : 0));
}

/*
 * Waits for the result of the statement sent, on the latch so that a cancel
 * is seen; ERROR if it failed.  The caller PQclears the result.
 */
PGresult *
rnnlm_remote_result(PGconn *conn, const char *server)
{
	PGresult   *volatile last = NULL;

	CHECK_FOR_INTERRUPTS();		/* even when the result is there already */
	PG_TRY();
	{
		for (;;)
		{
			PGresult   *res;

			while (PQisBusy(conn))
			{
				int			rc = WaitLatchOrSocket(MyLatch,
												   WL_LATCH_SET | WL_SOCKET_READABLE |
												   WL_EXIT_ON_PM_DEATH,
												   PQsocket(conn), -1L, PG_WAIT_EXTENSION);

				if (rc & WL_LATCH_SET)
				{
					ResetLatch(MyLatch);
					CHECK_FOR_INTERRUPTS();
				}
				if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
					ereport(ERROR,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("lost the connection to server \"%s\"", server),
							 errdetail_internal("%s", PQerrorMessage(conn))));
			}
			res = PQgetResult(conn);
			if (res == NULL)
				break;
			PQclear(last);
			last = res;
		}
	}
	PG_CATCH();
	{
		PQclear(last);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (last == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("server \"%s\" returned no result", server),
				 errdetail_internal("%s", PQerrorMessage(conn))));
	if (PQresultStatus(last) != PGRES_TUPLES_OK && PQresultStatus(last) != PGRES_COMMAND_OK)
		raise_remote(last, server);
	return last;
}

/* Sends a statement and waits for its result. */
PGresult *
rnnlm_remote_exec(PGconn *conn, const char *server, const char *sql, int nparams,
				  const Oid *types, const char *const *values, const int *lengths,
				  const int *formats, int binary_result)
{
	rnnlm_remote_send(conn, server, sql, nparams, types, values, lengths, formats, binary_result);
	return rnnlm_remote_result(conn, server);
}

/* Raises an ERROR unless the remote database has rnnlm at min_version or later. */
void
rnnlm_remote_check_extension(PGconn *conn, const char *server, const char *min_version)
{
	const char *param[1] = {min_version};
	PGresult   *res = rnnlm_remote_exec(conn, server,
										"SELECT extversion, string_to_array(extversion, '.')::int[] "
										"  >= string_to_array($1, '.')::int[] "
										"FROM pg_catalog.pg_extension WHERE extname = 'rnnlm'",
										1, NULL, param, NULL, NULL, 0);
	bool		present = PQntuples(res) == 1;
	bool		recent = present && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	char	   *have = present ? pstrdup(PQgetvalue(res, 0, 0)) : NULL;

	PQclear(res);
	if (!present)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("the database of server \"%s\" has no rnnlm extension", server)));
	if (!recent)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("the database of server \"%s\" has rnnlm %s; %s or later is needed",
						server, have, min_version),
				 errhint("Run ALTER EXTENSION rnnlm UPDATE there.")));
}

/* Cancels the statement in progress, if any, and closes the connection. */
void
rnnlm_remote_close(PGconn *conn)
{
	if (conn == NULL)
		return;
	if (PQtransactionStatus(conn) == PQTRANS_ACTIVE)
	{
		PGcancel   *cancel = PQgetCancel(conn);
		char		err[256];

		if (cancel)
		{
			(void) PQcancel(cancel, err, sizeof(err));
			PQfreeCancel(cancel);
		}
	}
	PQfinish(conn);
}

/* The bytes of a binary column, checked to be n long. */
static const char *
binary_value(const PGresult *res, int row, int col, int n)
{
	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != n)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("unexpected value in column %d of a remote result", col + 1)));
	return PQgetvalue(res, row, col);
}

/* A bigint column of a binary result. */
int64
rnnlm_remote_int8(const PGresult *res, int row, int col)
{
	uint64		v;

	memcpy(&v, binary_value(res, row, col, 8), 8);
	return (int64) pg_ntoh64(v);
}

/* A double precision column of a binary result (NULL: NaN). */
double
rnnlm_remote_float8(const PGresult *res, int row, int col)
{
	uint64		v;
	double		d;

	if (PQgetisnull(res, row, col))
		return NAN;
	memcpy(&v, binary_value(res, row, col, 8), 8);
	v = pg_ntoh64(v);
	memcpy(&d, &v, 8);
	return d;
}

/* A boolean column of a binary result. */
bool
rnnlm_remote_bool(const PGresult *res, int row, int col)
{
	return *binary_value(res, row, col, 1) != 0;
}
