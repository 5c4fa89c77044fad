/*
 * job_slots.c
 *		Where training jobs run: the lock that tells whether a job has a
 *		worker, the cap of rnnlm.max_jobs_per_role, and starting the workers
 *		of queued jobs as slots allow (rnnlm_dispatch_jobs).
 *
 * A job's worker holds, from its start until it exits (crash included), a
 * session lock on a tag no SQL function reaches: a "userlock" (database,
 * owner, job id modulo 2^32, 1), taken here with LockAcquire.  PostgreSQL's
 * own functions take only advisory tags, so no role can take a job's lock
 * first, or hold one to make a job look alive; pg_locks shows it to every
 * role (rnnlm.job_worker).  The owner in the tag lets the lock table count
 * a role's running jobs across every database, which is what the cap
 * counts: rows are not, since a job submitted in a transaction that has
 * not committed is seen by no one else.
 *
 * Starting workers is serialized by a second such lock (tag 0, 0, 0, 2),
 * so that two backends do not both start a role's last allowed job.  A job
 * waits as 'queued', with the reason in rnnlm.job.wait_reason, when its
 * role is at the cap or no background worker slot is free; it is started
 * by the next dispatch: when a job of any role ends (its worker first
 * runs the oldest waiting job of its own role itself, passing its slot on,
 * then dispatches the rest), when a job is submitted or resumed, and while
 * rnnlm_wait waits for a queued job.
 *
 * A dispatch writes only rows that the current transaction wrote already
 * (the job it submits or resumes), and a worker that ends commits its
 * writes at once: a dispatch from an open transaction never leaves other
 * jobs' rows locked, which would hold their workers back.
 */
#include "rnnlm_pg.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

/* The last field of the tags: a job's worker, and the dispatch. */
#define TAG_WORKER 1
#define TAG_DISPATCH 2

/* The tag of a job's worker lock. */
static void
worker_tag(LOCKTAG *tag, Oid database, Oid owner, int64 job_id)
{
	tag->locktag_field1 = database;
	tag->locktag_field2 = owner;
	tag->locktag_field3 = (uint32) ((uint64) job_id & 0xFFFFFFFF);
	tag->locktag_field4 = TAG_WORKER;
	tag->locktag_type = LOCKTAG_USERLOCK;
	tag->locktag_lockmethodid = USER_LOCKMETHOD;
}

/*
 * The tag of the advisory lock (1919839852, job id modulo 2^31) by which
 * rnnlm.job_worker of a 0.2 schema, before ALTER EXTENSION rnnlm UPDATE,
 * tells that a job has a worker.
 */
static void
legacy_tag(LOCKTAG *tag, int64 job_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 1919839852,
						 (uint32) (job_id % 2147483648LL), 2);
}

/*
 * Takes this worker's lock on its job, held until the process exits; false
 * when another worker holds it already.  legacy: the schema is 0.2's,
 * whose rnnlm.job_worker looks for its advisory lock too.
 */
bool
rnnlm_job_lock(int64 job_id, Oid owner, bool legacy)
{
	LOCKTAG		tag;

	worker_tag(&tag, MyDatabaseId, owner, job_id);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	if (legacy)
	{
		legacy_tag(&tag, job_id);
		(void) LockAcquire(&tag, ExclusiveLock, true, true);
	}
	return true;
}

/* Releases this worker's lock on its job (before it dispatches others). */
void
rnnlm_job_unlock(int64 job_id, Oid owner, bool legacy)
{
	LOCKTAG		tag;

	if (legacy)
	{
		legacy_tag(&tag, job_id);
		(void) LockRelease(&tag, ExclusiveLock, true);
	}
	worker_tag(&tag, MyDatabaseId, owner, job_id);
	(void) LockRelease(&tag, ExclusiveLock, true);
}

/*
 * The worker locks held in the lock table: of one role (job_id < 0), or of
 * one job of that role.  Read from the lock table, never by trying the lock,
 * which would make a worker taking it then think its job has another.
 */
static int
held_worker_locks(Oid role, int64 job_id)
{
	LockData   *locks = GetLockStatusData();
	int			i,
				n = 0;

	for (i = 0; i < locks->nelements; i++)
	{
		LockInstanceData *l = &locks->locks[i];

		if (l->locktag.locktag_type == LOCKTAG_USERLOCK &&
			l->locktag.locktag_field4 == TAG_WORKER &&
			l->locktag.locktag_field2 == role && l->holdMask != 0 &&
			(job_id < 0 || (l->locktag.locktag_field1 == MyDatabaseId &&
							l->locktag.locktag_field3 == (uint32) ((uint64) job_id & 0xFFFFFFFF))))
			n++;
	}
	return n;
}

/*
 * Registers the worker of a job and waits for it to start; its pid, or 0
 * when every background worker slot is taken.  submitter: the transaction
 * the worker waits for before it reads the job (invalid: none).
 */
static int
start_worker(int64 job_id, Oid role, TransactionId submitter, BackgroundWorkerHandle **handle)
{
	BackgroundWorker w;
	RnnlmJobLaunch launch;
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
	launch.submitter = submitter;
	memcpy(w.bgw_extra, &launch, sizeof(launch));

	if (!RegisterDynamicBackgroundWorker(&w, handle))
		return 0;
	if (WaitForBackgroundWorkerStartup(*handle, &pid) != BGWH_STARTED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("the background worker of rnnlm training job " INT64_FORMAT " did not start", job_id),
				 errhint("The server log may say why.")));
	return (int) pid;
}

/*
 * Waits (at most 10 s) until a job's new worker holds the job's lock, which
 * it takes first thing, so that neither rnnlm.jobs nor the next dispatch
 * takes the moment before for a job without a worker; not at all once the
 * worker has exited (it could not connect, say: its role lost LOGIN).
 */
static void
await_worker(int64 job_id, Oid role, BackgroundWorkerHandle *handle)
{
	int			i;
	pid_t		pid;

	for (i = 0; i < 1000 && held_worker_locks(role, job_id) == 0; i++)
	{
		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Records why a job of this transaction waits (NULL: it started), with its worker's pid. */
static void
record_start(int64 job_id, const char *reason, int pid)
{
	Oid			types[3] = {INT8OID, TEXTOID, INT4OID};
	Datum		values[3] = {Int64GetDatum(job_id), reason ? CStringGetTextDatum(reason) : (Datum) 0,
	Int32GetDatum(pid)};
	char		nulls[4] = {' ', reason ? ' ' : 'n', pid ? ' ' : 'n', '\0'};

	if (rnnlm_spi_write(rnnlm_schema_is_v03() ?
						"UPDATE rnnlm.job SET wait_reason = $2, worker_pid = $3 "
						"WHERE id OPERATOR(pg_catalog.=) $1" :
						"UPDATE rnnlm.job SET worker_pid = $3 "
						"WHERE id OPERATOR(pg_catalog.=) $1 AND $2 IS NULL",
						3, types, values, nulls) != SPI_OK_UPDATE)
		elog(ERROR, "rnnlm: could not record the start of job " INT64_FORMAT, job_id);
}

/* The reason a job of this role waits, or NULL when it may start. */
static char *
wait_reason(Oid role, bool slot_free)
{
	if (held_worker_locks(role, -1) >= rnnlm_max_jobs_per_role)
	{
		char	   *name = GetUserNameFromId(role, true);

		return psprintf("role \"%s\" already runs %d training jobs (rnnlm.max_jobs_per_role)",
						name ? name : "?", rnnlm_max_jobs_per_role);
	}
	if (!slot_free)
		return psprintf("no background worker slot is free (max_worker_processes = %d)",
						max_worker_processes);
	return NULL;
}

/* One queued job as a dispatch reads it. */
typedef struct QueuedJob
{
	int64		id;
	Oid			owner;
	bool		ours;			/* written by the current transaction */
	char	   *reason;			/* what its row says now, or NULL */
} QueuedJob;

/* The queued jobs of every role that have no worker, oldest first (*n of them). */
static QueuedJob *
queued_jobs(int *n)
{
	QueuedJob  *jobs;
	uint64		i;
	int			ret;

	ret = rnnlm_spi_read_all(rnnlm_schema_is_v03() ?
							 "SELECT id, owner::pg_catalog.oid, xmin::pg_catalog.text, wait_reason "
							 "FROM rnnlm.job WHERE state OPERATOR(pg_catalog.=) 'queued' "
							 "  AND worker_pid IS NULL AND rnnlm.job_worker(id) IS NULL "
							 "ORDER BY id" :
							 "SELECT id, owner::pg_catalog.oid, xmin::pg_catalog.text, NULL::pg_catalog.text "
							 "FROM rnnlm.job WHERE state OPERATOR(pg_catalog.=) 'queued' "
							 "  AND worker_pid IS NULL AND rnnlm.job_worker(id) IS NULL "
							 "ORDER BY id",
							 0, NULL, NULL, NULL);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "rnnlm: could not read the queued jobs: %s", SPI_result_code_string(ret));
	*n = (int) SPI_processed;
	jobs = palloc0(sizeof(QueuedJob) * Max(*n, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *xmin = SPI_getvalue(tup, desc, 3);

		jobs[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		jobs[i].owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		jobs[i].ours = TransactionIdIsCurrentTransactionId((TransactionId) strtoul(xmin, NULL, 10));
		jobs[i].reason = SPI_getvalue(tup, desc, 4);
	}
	return jobs;
}

/*
 * Starts one queued job if its role's cap and the slots allow, or records
 * why it waits; whether a slot is still free.
 */
static bool
dispatch_one(const QueuedJob *j, bool slot_free, bool write_all)
{
	char	   *reason = wait_reason(j->owner, slot_free);
	int			pid = 0;
	BackgroundWorkerHandle *handle = NULL;

	if (reason == NULL)
	{
		pid = start_worker(j->id, j->owner,
						   j->ours ? GetTopTransactionIdIfAny() : InvalidTransactionId, &handle);
		if (pid != 0)
			await_worker(j->id, j->owner, handle);
		else
		{
			slot_free = false;
			reason = wait_reason(j->owner, false);
		}
	}
	/* only the current transaction's own rows, unless it ends now: see the note at the top */
	if ((j->ours || write_all) && (pid != 0 || j->reason == NULL || strcmp(j->reason, reason) != 0))
		record_start(j->id, reason, pid);
	return slot_free;
}

/* Takes (acquire) or releases the lock that serializes dispatches. */
static void
dispatch_lock(bool acquire)
{
	LOCKTAG		tag;

	memset(&tag, 0, sizeof(tag));
	tag.locktag_field4 = TAG_DISPATCH;
	tag.locktag_type = LOCKTAG_USERLOCK;
	tag.locktag_lockmethodid = USER_LOCKMETHOD;
	if (acquire)
		(void) LockAcquire(&tag, ExclusiveLock, true, false);
	else
		LockRelease(&tag, ExclusiveLock, true);
}

/*
 * Starts the workers of the queued jobs of every role, oldest first, as far
 * as rnnlm.max_jobs_per_role and the free background worker slots allow.
 * The caller is SPI-connected in a transaction that may write; write_all:
 * it commits at once (a worker that ended), so the reasons of every job
 * still waiting are recorded too.
 */
void
rnnlm_dispatch_jobs(bool write_all)
{
	dispatch_lock(true);
	PG_TRY();
	{
		int			n,
					i;
		QueuedJob  *jobs = queued_jobs(&n);
		bool		slot_free = true;

		for (i = 0; i < n; i++)
			slot_free = dispatch_one(&jobs[i], slot_free, write_all);
	}
	PG_FINALLY();
	{
		dispatch_lock(false);
	}
	PG_END_TRY();
}

/*
 * For a worker whose job ended, with its lock released: takes the oldest
 * queued job of its own role that has no worker, when the role's cap
 * allows, and marks it started by this process.  A worker holds its
 * background worker slot until it exits, so it could not start a waiting
 * job when every slot is taken; running the next job itself passes the
 * slot on.  The job's id, or -1 when there is none.  The caller is
 * SPI-connected in a transaction that commits at once.
 */
int64
rnnlm_take_next_job(Oid role, bool legacy)
{
	volatile int64 taken = -1;

	dispatch_lock(true);
	PG_TRY();
	{
		int			n,
					i;
		QueuedJob  *jobs = queued_jobs(&n);

		for (i = 0; i < n && taken < 0; i++)
		{
			if (jobs[i].owner != role || wait_reason(role, true) != NULL)
				continue;
			if (rnnlm_job_lock(jobs[i].id, role, legacy))
			{
				record_start(jobs[i].id, NULL, MyProcPid);
				taken = jobs[i].id;
			}
		}
	}
	PG_FINALLY();
	{
		dispatch_lock(false);
	}
	PG_END_TRY();
	return taken;
}
