/*
 * remote.h
 *		Connections to the databases behind postgres_fdw foreign servers,
 *		for rnnlm_publish and rnnlm_train_federated (remote.c), opened only
 *		where both postgres_fdw and dblink would open them.
 */
#ifndef RNNLM_REMOTE_H
#define RNNLM_REMOTE_H

#include "postgres.h"

#include "libpq-fe.h"

/* USAGE on the server; for a role that is not a superuser, a password used. */
extern PGconn *rnnlm_remote_connect(const char *server, const char *application);
extern void rnnlm_remote_check_usage(const char *server);
extern void rnnlm_remote_check_extension(PGconn *conn, const char *server, const char *min_version);
extern void rnnlm_remote_send(PGconn *conn, const char *server, const char *sql, int nparams,
							  const Oid *types, const char *const *values, const int *lengths,
							  const int *formats, int binary_result);
extern PGresult *rnnlm_remote_result(PGconn *conn, const char *server);
extern PGresult *rnnlm_remote_exec(PGconn *conn, const char *server, const char *sql, int nparams,
								   const Oid *types, const char *const *values,
								   const int *lengths, const int *formats, int binary_result);
extern void rnnlm_remote_close(PGconn *conn);

/* Columns of a binary result. */
extern int64 rnnlm_remote_int8(const PGresult *res, int row, int col);
extern double rnnlm_remote_float8(const PGresult *res, int row, int col);
extern bool rnnlm_remote_bool(const PGresult *res, int row, int col);

#endif							/* RNNLM_REMOTE_H */
