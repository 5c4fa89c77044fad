/*
 * launcher.c
 *		With rnnlm in shared_preload_libraries: the jobs that a restart or a
 *		crash interrupted resume on their own.
 *
 * A background worker registered when the server starts ("rnnlm
 * launcher") lists the databases, and for each one starts a short-lived
 * worker that connects to it, resumes the interrupted training jobs there
 * (as rnnlm_resume would, from their last checkpoint; federated jobs keep
 * no checkpoint and stay interrupted) and starts every queued job as slots
 * allow.  The launcher then waits, holding one background worker slot, so
 * that the postmaster starts it again after a crash, when the jobs of the
 * crashed server are interrupted in turn.  rnnlm.resume_jobs turns it off.
 * Without preloading nothing runs on its own: call rnnlm_resume().
 */
#include "rnnlm_pg.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void rnnlm_launcher_main(Datum arg);
PGDLLEXPORT void rnnlm_resume_main(Datum arg);

/* Fills a worker of this library that runs function. */
static void
init_worker(BackgroundWorker *w, const char *function, const char *name, int flags)
{
	memset(w, 0, sizeof(*w));
	w->bgw_flags = flags;
	w->bgw_start_time = BgWorkerStart_RecoveryFinished;
	snprintf(w->bgw_library_name, BGW_MAXLEN, "rnnlm");
	snprintf(w->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(w->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(w->bgw_type, BGW_MAXLEN, "%s", name);
}

/* Registers the launcher (from _PG_init, while shared_preload_libraries load). */
void
rnnlm_launcher_register(void)
{
	BackgroundWorker w;

	init_worker(&w, "rnnlm_launcher_main", "rnnlm launcher",
				BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION);
	w.bgw_restart_time = 5;
	RegisterBackgroundWorker(&w);
}

/* The databases that accept connections, other than templates. */
static List *
database_list(void)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext keep = CurrentMemoryContext;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(keep);
		dbs = lappend_oid(dbs, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/* Runs the resuming worker of one database, and waits for it to end. */
static void
resume_in(Oid database)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;

	init_worker(&w, "rnnlm_resume_main", "rnnlm resume",
				BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION);
	w.bgw_restart_time = BGW_NEVER_RESTART;
	w.bgw_main_arg = ObjectIdGetDatum(database);
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
	{
		ereport(LOG,
				(errmsg("rnnlm launcher: no background worker slot to resume the jobs of database %u", database)));
		return;
	}
	(void) WaitForBackgroundWorkerShutdown(handle);
}

/* The launcher's entry point. */
void
rnnlm_launcher_main(Datum arg)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	if (rnnlm_resume_jobs)
	{
		ListCell   *lc;
		List	   *dbs = database_list();

		foreach(lc, dbs)
		{
			CHECK_FOR_INTERRUPTS();
			resume_in(lfirst_oid(lc));
		}
	}
	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

/* Whether this database has rnnlm with the 0.3 schema. */
static bool
has_rnnlm_03(void)
{
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension "
					"WHERE extname OPERATOR(pg_catalog.=) 'rnnlm'", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "rnnlm resume: could not read pg_extension");
	return SPI_processed > 0 && rnnlm_schema_is_v03();
}

/* The entry point of the worker that resumes the jobs of one database. */
void
rnnlm_resume_main(Datum arg)
{
	int			n = 0;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "rnnlm: resuming interrupted training jobs");
	if (has_rnnlm_03())
		n = rnnlm_resume_interrupted_jobs();
	if (n > 0)
		ereport(LOG,
				(errmsg("rnnlm: resumed %d interrupted training job%s in database \"%s\"",
						n, n == 1 ? "" : "s", get_database_name(MyDatabaseId))));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
