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
 * Whether a job has a worker is told by a session advisory lock that the
 * worker takes before anything else and holds until it exits, crash or not
 * (rnnlm.job_worker): pg_locks is current and shows every role every lock,
 * where pg_stat_activity is a per-transaction snapshot and hides other
 * roles' sessions.  A second worker for the same job (a resume racing a
 * live worker) finds the lock taken and exits without touching the job.
 */
#include "rnnlm_pg.h"

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

/* The first key of a job's advisory lock ("rnnl"); the second is its id mod 2^31. */
#define RNNLM_JOB_LOCK_KEY 1919839852

/* A running job records its progress at least this often. */
#define PROGRESS_SECONDS 10.0

/* What the launching backend tells the worker (in bgw_extra). */
typedef struct JobLaunch
{
	int64		job_id;
	Oid			database;
	Oid			role;
	TransactionId submitter;	/* wait for it to end; invalid for a resume */
} JobLaunch;

StaticAssertDecl(sizeof(JobLaunch) <= BGW_EXTRALEN, "JobLaunch fits in bgw_extra");

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

/* Starts the worker of a job; returns its pid. */
static int
start_worker(int64 job_id, Oid role)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	JobLaunch	launch;
	pid_t		pid;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "rnnlm");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "rnnlm_job_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "rnnlm training job " INT64_FORMAT, job_id);
	snprintf(w.bgw_type, BGW_MAXLEN, "rnnlm training job");
	w.bgw_main_arg = Int64GetDatum(job_id);
	w.bgw_notify_pid = MyProcPid;
	launch.job_id = job_id;
	launch.database = MyDatabaseId;
	launch.role = role;
	launch.submitter = GetTopTransactionIdIfAny();
	memcpy(w.bgw_extra, &launch, sizeof(launch));

	if (!RegisterDynamicBackgroundWorker(&w, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a background worker for rnnlm training job " INT64_FORMAT, job_id),
				 errdetail("Every one of the max_worker_processes (%d) slots is in use.",
						   max_worker_processes),
				 errhint("Wait for other jobs to finish, or raise max_worker_processes (which needs a restart).")));
	if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("the background worker of rnnlm training job " INT64_FORMAT " did not start", job_id),
				 errhint("The server log may say why.")));
	return (int) pid;
}

/* Runs a statement whose first parameter is the job id. */
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
	ret = SPI_execute_with_args(sql, nargs + 1, argtypes, argvalues, argnulls, false, 0);
	if (ret != expect)
		elog(ERROR, "rnnlm: job statement failed: %s", SPI_result_code_string(ret));
}

/*
 * Waits (at most 10 s) until a job's new worker holds the job's lock, which
 * it takes first thing, so that rnnlm.jobs does not take the moment before
 * for a worker that is gone.
 */
static void
await_worker(int64 job_id)
{
	int			i;

	for (i = 0; i < 1000; i++)
	{
		bool		isnull;

		exec_job("SELECT rnnlm.job_worker($1) IS NOT NULL", job_id, 0, NULL, NULL, NULL,
				 SPI_OK_SELECT);
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Records the pid of a job's new worker. */
static void
record_worker(int64 job_id, int pid)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(pid)};

	exec_job("UPDATE rnnlm.job SET worker_pid = $2 WHERE id OPERATOR(pg_catalog.=) $1",
			 job_id, 1, types, values, NULL, SPI_OK_UPDATE);
	await_worker(job_id);
}

/* Removes this role's finished jobs older than rnnlm.job_retention. */
static void
expire_jobs(void)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(rnnlm_job_retention_min)};

	if (rnnlm_job_retention_min <= 0)
		return;
	if (SPI_execute_with_args("DELETE FROM rnnlm.job "
							  "WHERE state OPERATOR(pg_catalog.=) ANY (ARRAY['succeeded', 'failed', 'cancelled']) "
							  "AND finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() "
							  "  OPERATOR(pg_catalog.-) pg_catalog.make_interval(mins => $1)) "
							  "AND rnnlm.is_owner(owner)",
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "rnnlm: could not expire old jobs");
}

/* Inserts the job row (servers: a federated training's, or NULL); returns its id. */
static int64
insert_job(const char *name, const char *query, Jsonb *options, ArrayType *servers)
{
	Oid			types[6] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, NAMEARRAYOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', servers ? ' ' : 'n'};
	bool		isnull;
	int			ret;

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(query);
	values[2] = JsonbPGetDatum(options ? options :
							   DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))));
	values[3] = CStringGetTextDatum(GetConfigOption("search_path", false, false));
	values[4] = Int32GetDatum(rnnlm_threads);
	values[5] = PointerGetDatum(servers);
	ret = SPI_execute_with_args("INSERT INTO rnnlm.job (model, owner, training_query, options, search_path, threads, servers) "
								"VALUES ($1, (SELECT oid FROM pg_catalog.pg_roles "
								"  WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER)::pg_catalog.regrole, "
								"  $2, $3, $4, $5, $6) RETURNING id",
								6, types, values, nulls, false, 0);
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

/* Records a job (its name, options and parent checked first) and starts its worker. */
static int64
submit_job(const char *name, const char *query, Jsonb *options, const RnnlmOptions *opts,
		   ArrayType *servers)
{
	RnnlmTraining t;
	int64		job_id;

	rnnlm_check_read_only_query(query, "training query");
	check_can_login(GetUserId());
	SPI_connect();
	rnnlm_training_init(&t, name, opts, CurrentMemoryContext, false);
	rnnlm_training_check_target(&t);
	check_parent_exists(opts, name);
	rnnlm_training_free(&t);
	expire_jobs();
	job_id = insert_job(name, query, options, servers);
	record_worker(job_id, start_worker(job_id, GetUserId()));
	SPI_finish();
	return job_id;
}

/*
 * rnnlm_train_async(model_name, training_query, options): checks what
 * rnnlm_train would check before reading any row, records the job, starts
 * its worker and returns the job id.
 */
Datum
rnnlm_train_async(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	char	   *query = rnnlm_training_query_arg(fcinfo, 1);
	Jsonb	   *options = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	RnnlmOptions opts;

	PreventCommandIfReadOnly("rnnlm_train_async()");
	rnnlm_parse_options(options, &opts);
	PG_RETURN_INT64(submit_job(name, query, options, &opts, NULL));
}

/*
 * rnnlm_train_federated_async(model_name, servers, training_query, options):
 * the same for a federated training, whose servers must exist here.
 */
Datum
rnnlm_train_federated_async(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
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
		(void) GetForeignServerByName(names[i], false);
	rnnlm_parse_federated_options(options, &opts);
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
		exec_job("UPDATE rnnlm.job SET state = 'queued', worker_pid = NULL, "
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
	record_worker(job_id, start_worker(job_id, owner));
	SPI_finish();
	PG_RETURN_INT64(job_id);
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
	exec_job("UPDATE rnnlm.job SET state = 'running', worker_pid = $2, "
			 "  started_at = COALESCE(started_at, pg_catalog.now()), updated_at = pg_catalog.now() "
			 "WHERE id OPERATOR(pg_catalog.=) $1 AND state OPERATOR(pg_catalog.=) 'queued' "
			 "RETURNING model, training_query, options, search_path, threads, checkpoint, servers",
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
	row->checkpoint = isnull ? NULL : DatumGetByteaPCopy(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7, &isnull);
	row->servers = isnull ? NULL : DatumGetArrayTypePCopy(d);
	MemoryContextSwitchTo(old);
	commit_txn();
	return true;
}

/* Records where the training is (p, history), and a checkpoint when ckpt is not NULL. */
static void
record_progress(int64 job_id, const rl_run_progress *p, const char *history,
				const uint8 *ckpt, size_t ckpt_len)
{
	Oid			types[10] = {INT4OID, INT4OID, INT8OID, INT8OID, FLOAT8OID, FLOAT8OID,
	FLOAT8OID, FLOAT8OID, JSONBOID, BYTEAOID};
	Datum		values[10];
	char		nulls[10];
	bytea	   *blob = NULL;

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
	if (ckpt)
	{
		blob = palloc_extended(VARHDRSZ + ckpt_len, MCXT_ALLOC_HUGE);
		SET_VARSIZE(blob, VARHDRSZ + ckpt_len);
		memcpy(VARDATA(blob), ckpt, ckpt_len);
		values[9] = PointerGetDatum(blob);
	}
	else
		nulls[9] = 'n';
	exec_job("UPDATE rnnlm.job SET epoch = $2, epochs = $3, step = $4, steps = $5, "
			 "  train_loss = $6, val_loss = $7, tokens_per_second = $8, "
			 "  eta = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $9), "
			 "  history = $10, checkpoint = COALESCE($11, checkpoint), "
			 "  checkpointed_at = CASE WHEN $11 IS NULL THEN checkpointed_at ELSE pg_catalog.now() END, "
			 "  updated_at = pg_catalog.now() WHERE id OPERATOR(pg_catalog.=) $1",
			 job_id, 10, types, values, nulls, SPI_OK_UPDATE);
	commit_txn();				/* frees blob with the transaction's memory */
}

/* Records where a local training's run is, with a checkpoint when ckpt is not NULL. */
static void
record_run_progress(int64 job_id, RnnlmTraining *t, const uint8 *ckpt, size_t ckpt_len)
{
	rl_run_progress p;

	rl_run_progress_get(t->run, &p);
	record_progress(job_id, &p, rnnlm_training_history_json(t), ckpt, ckpt_len);
}

/* Saves a checkpoint of the run into the job row. */
static void
record_checkpoint(int64 job_id, RnnlmTraining *t)
{
	uint8_t    *ckpt;
	size_t		len;

	if (rl_run_save(t->run, &ckpt, &len) != RL_OK)
		rnnlm_raise(&t->env, "saving a checkpoint");
	record_run_progress(job_id, t, ckpt, len);
	rl_free(&t->env, ckpt);
}

/* Trains to the end, recording progress and checkpoints between slices. */
static void
train_job(int64 job_id, RnnlmTraining *t)
{
	double		ckpt_every = t->opts.checkpoint_minutes * 60.0;
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
			record_run_progress(job_id, t, NULL, 0);
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
	record_run_progress(job_id, t, NULL, 0);
	rnnlm_training_finish(t);	/* frees the run */
	store_job(job_id, t);
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
	exec_job("UPDATE rnnlm.job SET state = $2, error = $3, error_code = $4, checkpoint = NULL, "
			 "  eta = NULL, finished_at = pg_catalog.now(), updated_at = pg_catalog.now() "
			 "WHERE id OPERATOR(pg_catalog.=) $1",
			 job_id, 3, types, values, NULL, SPI_OK_UPDATE);
	expire_jobs();
	commit_txn();
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
			record_progress(job_id, &p, rnnlm_federation_training(f)->history, NULL, 0);
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

/*
 * Takes the job's session advisory lock (see rnnlm.job_worker), held until
 * this process exits; false when another worker holds it already.
 */
static bool
lock_job(int64 job_id)
{
	bool		got;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	got = DatumGetBool(DirectFunctionCall2(pg_try_advisory_lock_int4,
										   Int32GetDatum(RNNLM_JOB_LOCK_KEY),
										   Int32GetDatum((int32) (job_id % 2147483648LL))));
	CommitTransactionCommand();
	return got;
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

/* The worker's entry point. */
void
rnnlm_job_main(Datum arg)
{
	JobLaunch	launch;
	MemoryContext cxt;

	memcpy(&launch, MyBgworkerEntry->bgw_extra, sizeof(launch));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(launch.database, launch.role, 0);
	cxt = AllocSetContextCreate(TopMemoryContext, "rnnlm job", ALLOCSET_DEFAULT_SIZES);
	worker_cxt = cxt;

	if (!lock_job(launch.job_id))
		proc_exit(0);			/* the job has a worker */
	PG_TRY();
	{
		wait_for_submitter(launch.submitter);
		run_job(launch.job_id, cxt);
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
		record_failure(launch.job_id, edata);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
	proc_exit(0);
}
