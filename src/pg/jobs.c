/*
 * jobs.c
 *		Training jobs: rnnlm_train_async (and rnnlm_train_federated_async)
 *		records a job in rnnlm.job and starts a dynamic background worker
 *		that trains it; rnnlm_cancel, rnnlm_wait and rnnlm_resume; the
 *		worker itself (a federated job: run_federated_job).
 *
 * The worker connects to the job's database as the job's owner (the role
 * that called rnnlm_train_async, which on PostgreSQL 15 must have LOGIN),
 * so the training query runs with that role's privileges and row-level
 * security, and the model belongs to it.  The worker:
 *   1. waits for the transaction that submitted the job to end (before
 *      that the job row is not visible; if it rolled back there is no job);
 *   2. claims the job (state 'running', its pid) in a short transaction;
 *   3. reads the training rows in one read-only transaction;
 *   4. trains with no transaction or snapshot open, so a long training
 *      holds back no VACUUM; between slices of training it opens a short
 *      transaction to record progress (at least every PROGRESS_SECONDS and
 *      after every epoch) and a checkpoint (after every epoch and every
 *      checkpoint_minutes);
 *   5. stores the model and marks the job 'succeeded' in one transaction.
 * SIGINT (rnnlm_cancel, pg_cancel_backend) makes the job 'cancelled';
 * another error makes it 'failed' with the error and its SQLSTATE.  SIGTERM
 * (a shutdown, pg_terminate_backend) or a crash leaves it 'running' in the
 * table with a worker that is gone, which rnnlm.jobs shows as
 * 'interrupted'; rnnlm_resume starts a new worker that restores the last
 * checkpoint and ends with the weights an uninterrupted run would have had.
 *
 * Whether a job has a worker is told by a lock that the worker takes
 * before anything else and holds until it exits, crash or not, on a tag no
 * SQL function reaches (job_slots.c, rnnlm.job_worker): pg_locks is current
 * and shows every role every lock, where pg_stat_activity is a
 * per-transaction snapshot and hides other roles' sessions.  A second
 * worker for the same job (a resume racing a live worker) finds the lock
 * taken and exits without touching the job.  A job beyond its role's
 * rnnlm.max_jobs_per_role, or submitted when no worker slot is free, waits
 * as 'queued' until a slot frees (job_slots.c).
 *
 * Job rows are written only here, as the extension's owner (privilege.c):
 * no role can insert or change one, and a worker still checks the row it
 * claims (its owner, its threads) before it trusts it.
 */
#include "rnnlm_pg.h"
#include "remote.h"

#include <math.h>
#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "foreign/foreign.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(rnnlm_train_async);
PG_FUNCTION_INFO_V1(rnnlm_train_federated_async);
PG_FUNCTION_INFO_V1(rnnlm_cancel);
PG_FUNCTION_INFO_V1(rnnlm_wait);
PG_FUNCTION_INFO_V1(rnnlm_resume);

PGDLLEXPORT void rnnlm_job_main(Datum arg);

/* A running job records its progress at least this often. */
#define PROGRESS_SECONDS 10.0

StaticAssertDecl(sizeof(RnnlmJobLaunch) <= BGW_EXTRALEN, "RnnlmJobLaunch fits in bgw_extra");

/* The job row as the worker reads it when it claims the job. */
typedef struct JobRow
{
	char	   *model;
	char	   *query;
	Jsonb	   *options;
	char	   *search_path;
	int			threads;
	bytea	   *checkpoint;		/* or NULL */
	ArrayType  *servers;		/* a federated training's, or NULL */
	Oid			owner;
} JobRow;

/* ---------- in the calling backend ---------- */

/* Raises an ERROR unless the role may log in, as a worker must on PostgreSQL 15. */
static void
check_can_login(Oid role)
{
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	bool		can;
	char	   *name;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "rnnlm: role %u does not exist", role);
	can = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
	name = pstrdup(NameStr(((Form_pg_authid) GETSTRUCT(tup))->rolname));
	ReleaseSysCache(tup);
	if (!can)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" cannot run rnnlm training jobs because it cannot log in", name),
				 errdetail("A job's background worker connects as the role that owns the job, and PostgreSQL 15 lets only roles with LOGIN connect."),
				 errhint("Submit the job as a role with LOGIN (ALTER ROLE ... LOGIN), or train synchronously with rnnlm_train().")));
}

/*
 * Runs a statement whose first parameter is the job id: a read as the
 * caller (expect SPI_OK_SELECT), a write as the extension's owner.
 */
static void
exec_job(const char *sql, int64 job_id, int nargs, Oid *types, Datum *values,
		 const char *nulls, int expect)
{
	Oid			argtypes[12] = {INT8OID};
	Datum		argvalues[12] = {Int64GetDatum(job_id)};
	char		argnulls[13] = " ";
	int			i,
				ret;

	Assert(nargs < 12);
	for (i = 0; i < nargs; i++)
	{
		argtypes[i + 1] = types[i];
		argvalues[i + 1] = values[i];
		argnulls[i + 1] = nulls ? nulls[i] : ' ';
	}
	argnulls[nargs + 1] = '\0';
	if (expect == SPI_OK_SELECT)
		ret = SPI_execute_with_args(sql, nargs + 1, argtypes, argvalues, argnulls, false, 0);
	else
		ret = rnnlm_spi_write(sql, nargs + 1, argtypes, argvalues, argnulls);
	if (ret != expect)
		elog(ERROR, "rnnlm: job statement failed: %s", SPI_result_code_string(ret));
}

/* Removes this role's finished jobs older than rnnlm.job_retention. */
static void
expire_jobs(void)
{
	Oid			types[2] = {INT4OID, OIDOID};
	Datum		values[2] = {Int32GetDatum(rnnlm_job_retention_min), ObjectIdGetDatum(GetUserId())};

	if (rnnlm_job_retention_min <= 0)
		return;
	if (rnnlm_spi_write("DELETE FROM rnnlm.job "
							  "WHERE state OPERATOR(pg_catalog.=) ANY (ARRAY['succeeded', 'failed', 'cancelled']) "
							  "AND finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() "
							  "  OPERATOR(pg_catalog.-) pg_catalog.make_interval(mins => $1)) "
						"AND " RNNLM_OWNED_BY("$2"),
						2, types, values, NULL) != SPI_OK_DELETE)
		elog(ERROR, "rnnlm: could not expire old jobs");
}

/* Inserts the job row (servers: a federated training's, or NULL); returns its id. */
static int64
insert_job(const char *name, const char *query, Jsonb *options, ArrayType *servers)
{
	Oid			types[7] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, NAMEARRAYOID, OIDOID};
	Datum		values[7];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', servers ? ' ' : 'n', ' ', '\0'};
	bool		isnull;
	int			ret;

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(query);
	values[2] = JsonbPGetDatum(options ? options :
							   DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))));
	values[3] = CStringGetTextDatum(GetConfigOption("search_path", false, false));
	values[4] = Int32GetDatum(rnnlm_threads);
	values[5] = PointerGetDatum(servers);
	values[6] = ObjectIdGetDatum(GetUserId());
	ret = rnnlm_spi_write("INSERT INTO rnnlm.job (model, owner, training_query, options, search_path, threads, servers) "
						  "VALUES ($1, $7::pg_catalog.regrole, $2, $3, $4, $5, $6) RETURNING id",
						  7, types, values, nulls);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "rnnlm: could not record the job: %s", SPI_result_code_string(ret));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Raises an ERROR when a parent named by init_from does not exist. */
static void
check_parent_exists(const RnnlmOptions *opts, const char *name)
{
	if (opts->init_from && !rnnlm_catalog_exists(opts->init_from))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", opts->init_from),
				 errdetail("It is the init_from of model \"%s\".", name),
				 errhint("SELECT name FROM rnnlm.models lists the models you can use.")));
}

/* Raises 22023 when checkpoint_minutes is below rnnlm.min_checkpoint_minutes. */
static void
check_checkpoint_minutes(const RnnlmOptions *opts)
{
	if (opts->checkpoint_minutes < rnnlm_min_checkpoint_minutes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"checkpoint_minutes\" must be at least %g", rnnlm_min_checkpoint_minutes),
				 errdetail("rnnlm.min_checkpoint_minutes bounds how often a job writes a checkpoint, and so the WAL it writes.")));
}

/*
 * Records a job (its name, options and parent checked first) and starts its
 * worker, or leaves it queued until a slot frees.
 */
static int64
submit_job(const char *name, const char *query, Jsonb *options, const RnnlmOptions *opts,
		   ArrayType *servers)
{
	RnnlmTraining t;
	int64		job_id;

	rnnlm_check_read_only_query(query, "training query");
	check_checkpoint_minutes(opts);
	check_can_login(GetUserId());
	SPI_connect();
	rnnlm_training_init(&t, name, opts, CurrentMemoryContext, false);
	rnnlm_training_check_target(&t);
	check_parent_exists(opts, name);
	rnnlm_training_free(&t);
	expire_jobs();
	job_id = insert_job(name, query, options, servers);
	rnnlm_dispatch_jobs(false);
	SPI_finish();
	return job_id;
}

/*
 * rnnlm_train_async(model_name, training_query, options): checks what
 * rnnlm_train would check before reading any row, records the job, starts
 * its worker and returns the job id.
 */
/*
 * Records a training job of model name on query with options, as the
 * current user, and starts it as slots allow; its id.
 */
int64
rnnlm_submit_training_job(const char *name, const char *query, Jsonb *options)
{
	RnnlmOptions opts;

	options = rnnlm_replacement_options(name, options, &opts, false);
	return submit_job(name, query, options, &opts, NULL);
}

Datum
rnnlm_train_async(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_new_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	char	   *query = rnnlm_training_query_arg(fcinfo, 1);
	Jsonb	   *options = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	RnnlmOptions opts;

	PreventCommandIfReadOnly("rnnlm_train_async()");
	options = rnnlm_replacement_options(name, options, &opts, false);
	PG_RETURN_INT64(submit_job(name, query, options, &opts, NULL));
}

/*
 * rnnlm_train_federated_async(model_name, servers, training_query, options):
 * the same for a federated training, whose servers must exist here, with
 * USAGE for the caller (the worker then connects under every rule).
 */
Datum
rnnlm_train_federated_async(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_new_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	ArrayType  *servers = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
	char	   *query = rnnlm_training_query_arg(fcinfo, 2);
	Jsonb	   *options = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	RnnlmOptions opts;
	char	  **names;
	int			n,
				i;

	PreventCommandIfReadOnly("rnnlm_train_federated_async()");
	names = rnnlm_federated_servers(servers, &n);
	for (i = 0; i < n; i++)
		rnnlm_remote_check_usage(names[i]);
	options = rnnlm_replacement_options(name, options, &opts, true);
	PG_RETURN_INT64(submit_job(name, query, options, &opts, servers));
}

/*
 * The state of a job this role can see, as rnnlm.jobs shows it.  A worker
 * commits the job's end before it releases the job's lock, so a job that
 * looks interrupted is read once more: if the table then says it ended, it
 * ended in between (rather than being interrupted).
 */
static char *
job_state(int64 job_id, bool missing_ok)
{
	char	   *state;

	exec_job("SELECT state FROM rnnlm.jobs WHERE id OPERATOR(pg_catalog.=) $1",
			 job_id, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm job " INT64_FORMAT " does not exist", job_id),
				 errhint("SELECT id, model, state FROM rnnlm.jobs lists your jobs.")));
	}
	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(state, "interrupted") == 0)
	{
		exec_job("SELECT state FROM rnnlm.job WHERE id OPERATOR(pg_catalog.=) $1 "
				 "  AND state OPERATOR(pg_catalog.<>) ALL (ARRAY['queued', 'running'])",
				 job_id, 0, NULL, NULL, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	}
	return state;
}

/*
 * rnnlm_cancel(job_id): a queued or interrupted job becomes 'cancelled' at
 * once; a running one is sent SIGINT (with pg_cancel_backend's permission
 * checks), and its worker marks it 'cancelled' within a second.  false
 * when the job had already ended.
 */
Datum
rnnlm_cancel(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	char	   *state;
	bool		result = true;

	PreventCommandIfReadOnly("rnnlm_cancel()");
	SPI_connect();
	state = job_state(job_id, false);
	if (strcmp(state, "queued") == 0)
		exec_job("UPDATE rnnlm.job SET state = 'cancelled', finished_at = pg_catalog.now(), "
				 "  updated_at = pg_catalog.now(), error = 'cancelled before it started', "
				 "  error_code = '57014' "
				 "WHERE id OPERATOR(pg_catalog.=) $1 AND state OPERATOR(pg_catalog.=) 'queued'",
				 job_id, 0, NULL, NULL, NULL, SPI_OK_UPDATE);
	if (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0)
		/* the process that holds the job's lock, with pg_cancel_backend's checks */
		exec_job("SELECT pg_catalog.pg_cancel_backend(w.pid) "
				 "FROM (SELECT rnnlm.job_worker($1) AS pid) w WHERE w.pid IS NOT NULL",
				 job_id, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	else if (strcmp(state, "interrupted") == 0)
	{
		exec_job("UPDATE rnnlm.job SET state = 'cancelled', finished_at = pg_catalog.now(), "
				 "  updated_at = pg_catalog.now(), error = 'cancelled after it was interrupted', "
				 "  error_code = '57014', checkpoint = NULL "
				 "WHERE id OPERATOR(pg_catalog.=) $1 "
				 "  AND state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']) "
				 "  AND rnnlm.job_worker(id) IS NULL",
				 job_id, 0, NULL, NULL, NULL, SPI_OK_UPDATE);
		result = SPI_processed > 0;
		if (result)
			rnnlm_job_file_remove(job_id);
	}
	else
		result = false;
	SPI_finish();
	PG_RETURN_BOOL(result);
}

/* The error of a job that ended without a model. */
static void
raise_job_error(int64 job_id, const char *state, const char *error, const char *code)
{
	if (strcmp(state, "cancelled") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("rnnlm job " INT64_FORMAT " was cancelled", job_id),
				 error ? errdetail("%s", error) : 0));
	if (strcmp(state, "interrupted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rnnlm job " INT64_FORMAT " was interrupted", job_id),
				 errdetail("Its worker stopped (a server restart, a crash, or pg_terminate_backend)."),
				 errhint("Continue it from its last checkpoint with rnnlm_resume(" INT64_FORMAT ").", job_id)));
	ereport(ERROR,
			(errcode(code && strlen(code) == 5 ?
					 MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4]) :
					 ERRCODE_INTERNAL_ERROR),
			 errmsg("rnnlm job " INT64_FORMAT " failed: %s", job_id, error ? error : "unknown error")));
}

/*
 * Raises an ERROR when the job was submitted (or resumed) by the current
 * transaction: its worker waits for that transaction to end, so waiting for
 * the worker here would never end.
 */
static void
check_not_own_transaction(int64 job_id)
{
	char	   *xmin;

	SPI_connect();
	exec_job("SELECT xmin FROM rnnlm.job WHERE id OPERATOR(pg_catalog.=) $1",
			 job_id, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	xmin = SPI_processed > 0 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
	if (xmin && TransactionIdIsCurrentTransactionId((TransactionId) strtoul(xmin, NULL, 10)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rnnlm job " INT64_FORMAT " starts when this transaction commits", job_id),
				 errhint("Commit first, then call rnnlm_wait().")));
	SPI_finish();
}

/*
 * rnnlm_wait(job_id, timeout): waits until the job ends and returns its
 * summary, or raises its error; NULL when the timeout passes first.
 */
Datum
rnnlm_wait(PG_FUNCTION_ARGS)
{
	int64		job_id;
	TimestampTz deadline = 0;
	MemoryContext caller = CurrentMemoryContext;
	int			polls = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job id must not be NULL")));
	job_id = PG_GETARG_INT64(0);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("rnnlm_wait() needs READ COMMITTED isolation"),
				 errdetail("Under REPEATABLE READ or SERIALIZABLE it would never see the job end.")));
	if (!PG_ARGISNULL(1))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(1);
		double		secs = (double) iv->time / USECS_PER_SEC +
			((double) iv->month * DAYS_PER_MONTH + iv->day) * SECS_PER_DAY;

		deadline = GetCurrentTimestamp() + (TimestampTz) (Max(secs, 0) * USECS_PER_SEC);
	}
	check_not_own_transaction(job_id);
	for (;;)
	{
		char	   *state;

		SPI_connect();
		state = job_state(job_id, false);
		if (strcmp(state, "succeeded") == 0)
		{
			bool		isnull;
			Datum		d;

			exec_job("SELECT summary FROM rnnlm.job WHERE id OPERATOR(pg_catalog.=) $1",
					 job_id, 0, NULL, NULL, NULL, SPI_OK_SELECT);
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
			{
				MemoryContext old = MemoryContextSwitchTo(caller);

				d = PointerGetDatum(DatumGetJsonbPCopy(d));
				MemoryContextSwitchTo(old);
			}
			SPI_finish();
			if (isnull)
				PG_RETURN_NULL();
			PG_RETURN_DATUM(d);
		}
		if (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0)
		{
			exec_job("SELECT error, error_code FROM rnnlm.job WHERE id OPERATOR(pg_catalog.=) $1",
					 job_id, 0, NULL, NULL, NULL, SPI_OK_SELECT);
			raise_job_error(job_id, state,
							SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
							SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
		}
		/* a job that waits for a slot may find one free now (job_slots.c) */
		if (strcmp(state, "queued") == 0 && ++polls % 10 == 1 && !XactReadOnly &&
			!RecoveryInProgress())
			rnnlm_dispatch_jobs(false);
		SPI_finish();
		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
			PG_RETURN_NULL();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * rnnlm_resume(job_id): starts a new worker for an interrupted job, which
 * continues from its last checkpoint (or from the start if it had none).
 */
Datum
rnnlm_resume(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	char	   *state;
	bool		isnull;
	Oid			owner;

	PreventCommandIfReadOnly("rnnlm_resume()");
	SPI_connect();
	state = job_state(job_id, false);
	exec_job("SELECT 1 FROM rnnlm.job WHERE id OPERATOR(pg_catalog.=) $1 AND servers IS NOT NULL",
			 job_id, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("rnnlm job " INT64_FORMAT " is a federated training, which cannot be resumed", job_id),
				 errhint("Start it again with rnnlm_train_federated_async().")));
	if (strcmp(state, "interrupted") == 0)
		exec_job(rnnlm_schema_is_v03() ?
				 "UPDATE rnnlm.job SET state = 'queued', worker_pid = NULL, wait_reason = NULL, "
				 "  resumes = resumes OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.now() "
				 "WHERE id OPERATOR(pg_catalog.=) $1 "
				 "  AND state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']) "
				 "  AND rnnlm.job_worker(id) IS NULL "
				 "RETURNING owner::pg_catalog.oid" :
				 "UPDATE rnnlm.job SET state = 'queued', worker_pid = NULL, "
				 "  resumes = resumes OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.now() "
				 "WHERE id OPERATOR(pg_catalog.=) $1 "
				 "  AND state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']) "
				 "  AND rnnlm.job_worker(id) IS NULL "
				 "RETURNING owner::pg_catalog.oid",
				 job_id, 0, NULL, NULL, NULL, SPI_OK_UPDATE_RETURNING);
	if (strcmp(state, "interrupted") != 0 || SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rnnlm job " INT64_FORMAT " is %s", job_id,
						strcmp(state, "interrupted") == 0 ? "running" : state),
				 errdetail("Only an interrupted job can be resumed.")));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	check_can_login(owner);
	rnnlm_dispatch_jobs(false);
	SPI_finish();
	PG_RETURN_INT64(job_id);
}

PG_FUNCTION_INFO_V1(rnnlm_forget);

/*
 * rnnlm_forget(job_id): removes a job of the caller's that has ended from
 * rnnlm.jobs; false when there is no such job.
 */
Datum
rnnlm_forget(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	char	   *state;
	bool		result = false;

	PreventCommandIfReadOnly("rnnlm_forget()");
	SPI_connect();
	state = job_state(job_id, true);
	if (state && (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("rnnlm job " INT64_FORMAT " is %s", job_id, state),
				 errhint("Cancel it first with rnnlm_cancel().")));
	if (state)
	{
		/* job_state found it under the caller's row-level security: it is theirs */
		exec_job("DELETE FROM rnnlm.job WHERE id OPERATOR(pg_catalog.=) $1 "
				 "  AND (state OPERATOR(pg_catalog.<>) ALL (ARRAY['queued', 'running']) "
				 "       OR rnnlm.job_worker(id) IS NULL)",
				 job_id, 0, NULL, NULL, NULL, SPI_OK_DELETE);
		result = SPI_processed > 0;
		if (result)
			rnnlm_job_file_remove(job_id);
	}
	SPI_finish();
	PG_RETURN_BOOL(result);
}

/*
 * Resumes every interrupted job of this database that can be (federated
 * ones keep no checkpoint), as rnnlm_resume does, and starts the queued
 * jobs as slots allow; how many it resumed.  For the launcher (a
 * superuser), SPI-connected in a transaction that commits at once.
 */
int
rnnlm_resume_interrupted_jobs(void)
{
	int			n;

	if (rnnlm_spi_write("UPDATE rnnlm.job SET state = 'queued', worker_pid = NULL, wait_reason = NULL, "
						"  resumes = resumes OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.now() "
						"WHERE state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']) "
						"  AND worker_pid IS NOT NULL AND servers IS NULL "
						"  AND rnnlm.job_worker(id) IS NULL",
						0, NULL, NULL, NULL) != SPI_OK_UPDATE)
		elog(ERROR, "rnnlm: could not resume the interrupted jobs");
	n = (int) SPI_processed;
	rnnlm_dispatch_jobs(true);
	return n;
}

/* ---------- in the worker ---------- */

/* Starts a short transaction with a snapshot and SPI. */
static void
begin_txn(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * The worker's memory context, current whenever no transaction is open (a
 * commit leaves TopMemoryContext current, where nothing of ours belongs).
 */
static MemoryContext worker_cxt = NULL;

/* Commits the transaction of begin_txn. */
static void
commit_txn(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	if (worker_cxt)
		MemoryContextSwitchTo(worker_cxt);
}

/* A text column of the first row, copied into cxt (NULL for NULL). */
static char *
column_text(int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

/*
 * Takes a queued job: marks it running with this worker's pid and reads
 * what it is to train.  false when there is nothing to do (the submitting
 * transaction rolled back, or the job was cancelled before it started).
 */
static bool
claim_job(int64 job_id, JobRow *row, MemoryContext cxt)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(MyProcPid)};
	bool		isnull;
	Datum		d;
	MemoryContext old;

	begin_txn();
	exec_job(psprintf("UPDATE rnnlm.job SET state = 'running', worker_pid = $2, %s"
			 "  started_at = COALESCE(started_at, pg_catalog.now()), updated_at = pg_catalog.now() "
			 "WHERE id OPERATOR(pg_catalog.=) $1 AND state OPERATOR(pg_catalog.=) 'queued' "
			 "RETURNING model, training_query, options, search_path, threads, checkpoint, servers, "
			 "  owner::pg_catalog.oid", rnnlm_schema_is_v03() ? "wait_reason = NULL, " : ""),
			 job_id, 1, types, values, NULL, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
	{
		commit_txn();
		return false;
	}
	row->model = column_text(1, cxt);
	row->query = column_text(2, cxt);
	row->search_path = column_text(4, cxt);
	row->threads = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
	old = MemoryContextSwitchTo(cxt);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	row->options = DatumGetJsonbPCopy(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull);
	/* a job of 0.2 kept it in its row; now it is a file (job_files.c) */
	row->checkpoint = isnull ? rnnlm_job_file_read(job_id) : DatumGetByteaPCopy(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7, &isnull);
	row->servers = isnull ? NULL : DatumGetArrayTypePCopy(d);
	row->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 8, &isnull));
	MemoryContextSwitchTo(old);
	commit_txn();
	return true;
}

/*
 * Raises an ERROR (the job then fails with it) when a field of the claimed
 * row is out of the bounds that submitting checks: the row is trusted no
 * further than the checks it went through.  The options are parsed by the
 * same functions as at submission, when the job starts.
 */
static void
check_job_row(int64 job_id, const JobRow *row)
{
	if (row->owner != GetUserId())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("rnnlm job " INT64_FORMAT " does not belong to the role its worker runs as", job_id)));
	if (row->threads < 1 || row->threads > RNNLM_MAX_THREADS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm job " INT64_FORMAT " asks for %d threads", job_id, row->threads),
				 errdetail("rnnlm.threads is between 1 and %d.", RNNLM_MAX_THREADS)));
	if (row->search_path == NULL || row->model == NULL || row->query == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rnnlm job " INT64_FORMAT " has a NULL field", job_id)));
}

/*
 * Records where the training is (p, history); checkpointed: a checkpoint
 * of that point was just written (job_files.c).
 */
static void
record_progress(int64 job_id, const rl_run_progress *p, const char *history, bool checkpointed)
{
	Oid			types[10] = {INT4OID, INT4OID, INT8OID, INT8OID, FLOAT8OID, FLOAT8OID,
	FLOAT8OID, FLOAT8OID, JSONBOID, BOOLOID};
	Datum		values[10];
	char		nulls[10];

	memset(nulls, ' ', sizeof(nulls));
	begin_txn();
	values[0] = Int32GetDatum(p->epoch);
	values[1] = Int32GetDatum(p->epochs);
	values[2] = Int64GetDatum((int64) p->step);
	values[3] = Int64GetDatum((int64) p->steps);
	values[4] = Float8GetDatum(p->train_loss);
	values[5] = Float8GetDatum(p->val_loss);
	values[6] = Float8GetDatum(p->tokens_per_second);
	values[7] = Float8GetDatum(p->seconds_left);
	nulls[4] = isnan(p->train_loss) ? 'n' : ' ';
	nulls[5] = isnan(p->val_loss) ? 'n' : ' ';
	nulls[7] = isnan(p->seconds_left) ? 'n' : ' ';
	values[8] = DirectFunctionCall1(jsonb_in, CStringGetDatum(history ? history : "[]"));
	values[9] = BoolGetDatum(checkpointed);
	exec_job("UPDATE rnnlm.job SET epoch = $2, epochs = $3, step = $4, steps = $5, "
			 "  train_loss = $6, val_loss = $7, tokens_per_second = $8, "
			 "  eta = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $9), "
			 "  history = $10, checkpoint = CASE WHEN $11 THEN NULL ELSE checkpoint END, "
			 "  checkpointed_at = CASE WHEN $11 THEN pg_catalog.now() ELSE checkpointed_at END, "
			 "  updated_at = pg_catalog.now() WHERE id OPERATOR(pg_catalog.=) $1",
			 job_id, 10, types, values, nulls, SPI_OK_UPDATE);
	commit_txn();
}

/* Records where a local training's run is (checkpointed: see record_progress). */
static void
record_run_progress(int64 job_id, RnnlmTraining *t, bool checkpointed)
{
	rl_run_progress p;

	rl_run_progress_get(t->run, &p);
	record_progress(job_id, &p, rnnlm_training_history_json(t), checkpointed);
}

/* Saves a checkpoint of the run into the job's file, and records it. */
static void
record_checkpoint(int64 job_id, RnnlmTraining *t)
{
	uint8_t    *ckpt;
	size_t		len;

	if (rl_run_save(t->run, &ckpt, &len) != RL_OK)
		rnnlm_raise(&t->env, "saving a checkpoint");
	rnnlm_job_file_write(job_id, ckpt, len);
	rl_free(&t->env, ckpt);
	record_run_progress(job_id, t, true);
}

/* Trains to the end, recording progress and checkpoints between slices. */
static void
train_job(int64 job_id, RnnlmTraining *t)
{
	double		ckpt_every = Max(t->opts.checkpoint_minutes, rnnlm_min_checkpoint_minutes) * 60.0;
	double		last_progress = rl_now_seconds(),
				last_ckpt = last_progress;

	while (!rl_run_done(t->run))
	{
		double		now = rl_now_seconds();
		double		budget = Min(PROGRESS_SECONDS - (now - last_progress),
								 ckpt_every - (now - last_ckpt));
		int			ended;

		if (rl_run_advance(t->run, Max(budget, 0.0), &ended) != RL_OK)
			rnnlm_raise(&t->env, "training");
		now = rl_now_seconds();
		if (rl_run_done(t->run))
			break;				/* the final transaction records the end */
		if (ended || now - last_ckpt >= ckpt_every)
		{
			record_checkpoint(job_id, t);
			last_ckpt = last_progress = rl_now_seconds();
		}
		else if (now - last_progress >= PROGRESS_SECONDS)
		{
			record_run_progress(job_id, t, false);
			last_progress = rl_now_seconds();
		}
	}
}

/* Stores the finished model and marks the job succeeded, in one transaction. */
static void
store_job(int64 job_id, RnnlmTraining *t)
{
	Oid			types[2] = {JSONBOID, JSONBOID};
	Datum		values[2];

	begin_txn();
	rnnlm_training_store(t);
	values[0] = DirectFunctionCall1(jsonb_in,
									CStringGetDatum(rnnlm_training_summary(t, CurrentMemoryContext)));
	values[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(rnnlm_training_history_json(t)));
	exec_job("UPDATE rnnlm.job SET state = 'succeeded', summary = $2, history = $3, "
			 "  checkpoint = NULL, eta = NULL, finished_at = pg_catalog.now(), "
			 "  updated_at = pg_catalog.now() WHERE id OPERATOR(pg_catalog.=) $1",
			 job_id, 2, types, values, NULL, SPI_OK_UPDATE);
	expire_jobs();
	commit_txn();
}

/* Ends a local training's run, stores the model and marks the job succeeded. */
static void
finish_job(int64 job_id, RnnlmTraining *t)
{
	record_run_progress(job_id, t, false);
	rnnlm_training_finish(t);	/* frees the run */
	store_job(job_id, t);
	rnnlm_job_file_remove(job_id);
}

/* Marks the job cancelled or failed after an ERROR (in no transaction). */
static void
record_failure(int64 job_id, ErrorData *edata)
{
	bool		cancelled = edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(cancelled ? "cancelled" : "failed");
	values[1] = CStringGetTextDatum(edata->message ? edata->message : "unknown error");
	values[2] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	begin_txn();
	XactReadOnly = false;		/* the job's own record, whatever the role's default */
	exec_job("UPDATE rnnlm.job SET state = $2, error = $3, error_code = $4, checkpoint = NULL, "
			 "  eta = NULL, finished_at = pg_catalog.now(), updated_at = pg_catalog.now() "
			 "WHERE id OPERATOR(pg_catalog.=) $1",
			 job_id, 3, types, values, NULL, SPI_OK_UPDATE);
	expire_jobs();
	commit_txn();
	rnnlm_job_file_remove(job_id);
}

/*
 * A federated training job: the shards started in one transaction (the
 * connections stay open), the epochs with none open and the progress
 * recorded after each, the model stored in a last one.  No checkpoint: the
 * shards' sessions die with the worker, so such a job is not resumed.
 */
static void
run_federated_job(int64 job_id, JobRow *row, MemoryContext cxt)
{
	RnnlmOptions opts;
	RnnlmFederation *volatile f = NULL;
	char	  **servers;
	int			n;
	MemoryContext old;
	rl_run_progress p;
	bool		more;

	begin_txn();
	old = MemoryContextSwitchTo(cxt);
	rnnlm_parse_federated_options(row->options, &opts);
	servers = rnnlm_federated_servers(row->servers, &n);
	MemoryContextSwitchTo(old);
	f = rnnlm_federation_create(row->model, servers, n, &opts, row->options, cxt, false);
	PG_TRY();
	{
		rnnlm_federation_prepare(f, row->query);
		commit_txn();
		do
		{
			more = rnnlm_federation_epoch(f);
			rnnlm_federation_progress(f, &p);
			record_progress(job_id, &p, rnnlm_federation_training(f)->history, false);
		} while (more);
		rnnlm_federation_finish(f);
		store_job(job_id, rnnlm_federation_training(f));
	}
	PG_FINALLY();
	{
		rnnlm_federation_free(f);
	}
	PG_END_TRY();
}

/* Claims, reads, trains and stores one job. */
static void
run_job(int64 job_id, MemoryContext cxt)
{
	JobRow		row;
	RnnlmOptions opts;
	RnnlmTraining t;
	MemoryContext old;

	if (!claim_job(job_id, &row, cxt))
		return;
	check_job_row(job_id, &row);
	pgstat_report_activity(STATE_RUNNING, psprintf("rnnlm training job " INT64_FORMAT ": model \"%s\"",
												   job_id, row.model));
	SetConfigOption("search_path", row.search_path, PGC_USERSET, PGC_S_SESSION);
	rnnlm_threads = row.threads;
	if (row.servers)
	{
		run_federated_job(job_id, &row, cxt);
		return;
	}

	/* the rows, in one read-only transaction */
	begin_txn();
	old = MemoryContextSwitchTo(cxt);
	rnnlm_parse_options(row.options, &opts);
	MemoryContextSwitchTo(old);
	rnnlm_training_init(&t, row.model, &opts, cxt, false);
	rnnlm_training_load_parent(&t);
	rnnlm_training_read(&t, row.query);
	commit_txn();

	/* training, with no transaction open */
	rnnlm_prepare_compute();
	rnnlm_training_start(&t);
	if (row.checkpoint &&
		rl_run_restore(t.run, (const uint8_t *) VARDATA_ANY(row.checkpoint),
					   VARSIZE_ANY_EXHDR(row.checkpoint)) != RL_OK)
		rnnlm_raise(&t.env, "resuming from the checkpoint");
	train_job(job_id, &t);
	finish_job(job_id, &t);
	rnnlm_training_free(&t);
}

/* Waits for the transaction that submitted the job to commit or roll back. */
static void
wait_for_submitter(TransactionId xid)
{
	if (!TransactionIdIsValid(xid))
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	XactLockTableWait(xid, NULL, NULL, XLTW_None);
	CommitTransactionCommand();
}

/*
 * Raises 25006 when the job's owner has default_transaction_read_only on:
 * the job could not store its model (rnnlm_job_main records the failure).
 */
static void
check_writable(void)
{
	if (DefaultXactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("rnnlm training job cannot run: its role has default_transaction_read_only on"),
				 errdetail("A job's worker connects as the job's owner, with that role's settings, and could not store the model."),
				 errhint("ALTER ROLE ... SET default_transaction_read_only = off, or train with rnnlm_train().")));
}

/*
 * After a job ended: gives up its lock and takes the next queued job of the
 * same role, if any (job_slots.c), in a transaction of its own; its id, or
 * -1.  A failure here only leaves that job waiting for the next dispatch.
 */
static int64
next_job(const RnnlmJobLaunch *launch, bool legacy)
{
	volatile int64 next = -1;

	HOLD_INTERRUPTS();
	rnnlm_job_unlock(launch->job_id, launch->role, legacy);
	/* a cancel meant for the job that ended must not reach the next one */
	QueryCancelPending = false;
	PG_TRY();
	{
		begin_txn();
		XactReadOnly = false;
		next = rnnlm_take_next_job(launch->role, legacy);
		commit_txn();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		next = -1;
	}
	PG_END_TRY();
	RESUME_INTERRUPTS();
	return next;
}

/*
 * Before the worker exits: starts the jobs of other roles that waited for a
 * slot, in a transaction of its own.  A failure here only leaves those
 * jobs waiting for the next dispatch.
 */
static void
start_waiting_jobs(void)
{
	PG_TRY();
	{
		begin_txn();
		XactReadOnly = false;
		rnnlm_dispatch_jobs(true);
		commit_txn();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
}

/* Runs one job in the worker; a failure is recorded in its row. */
static void
run_one_job(const RnnlmJobLaunch *launch, MemoryContext cxt)
{
	PG_TRY();
	{
		wait_for_submitter(launch->submitter);
		check_writable();
		run_job(launch->job_id, cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
		{
			edata->elevel = LOG;
			ThrowErrorData(edata);
		}
		record_failure(launch->job_id, edata);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
}

/*
 * The worker's entry point: runs its job, then the queued jobs of the same
 * role that waited for a slot, one after the other.
 */
void
rnnlm_job_main(Datum arg)
{
	RnnlmJobLaunch launch;
	MemoryContext cxt;
	bool		legacy;

	memcpy(&launch, MyBgworkerEntry->bgw_extra, sizeof(launch));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(launch.database, launch.role, 0);
	cxt = AllocSetContextCreate(TopMemoryContext, "rnnlm job", ALLOCSET_DEFAULT_SIZES);
	worker_cxt = cxt;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	legacy = !rnnlm_schema_is_v03();
	CommitTransactionCommand();
	if (!rnnlm_job_lock(launch.job_id, launch.role, legacy))
		proc_exit(0);			/* the job has a worker */
	for (;;)
	{
		run_one_job(&launch, cxt);
		MemoryContextSwitchTo(cxt);
		MemoryContextReset(cxt);
		launch.job_id = next_job(&launch, legacy);
		launch.submitter = InvalidTransactionId;
		if (launch.job_id < 0)
			break;
	}
	start_waiting_jobs();
	proc_exit(0);
}
