/*
 * progress.c
 *		With rnnlm in shared_preload_libraries: the trainings that run in
 *		backends (rnnlm_train, rnnlm_tune, rnnlm_retrain) are seen from every
 *		session, in rnnlm.trainings, through shared memory.
 *
 * A job reports its progress in its row, in transactions of its own; a
 * training inside a statement cannot (its transaction is the caller's),
 * so it writes a slot in shared memory instead: one per backend, taken when
 * the training starts, updated at least every second, freed when it ends
 * or when its (sub)transaction aborts.  Rows read from shared memory get no
 * row-level security, so rnnlm.trainings filters them in C: a role sees
 * the trainings of the roles it is a member of; superusers see all.
 * Without preloading there is no shared memory to ask for, and
 * rnnlm.trainings is empty (the NOTICEs after each epoch remain).
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* One training in progress. */
typedef struct TrainingSlot
{
	int			pid;			/* 0: free */
	Oid			database;
	Oid			role;
	char		model[RNNLM_MAX_NAME + 1];
	int32		epoch,
				epochs;
	int64		step,
				steps;
	double		train_loss;
	TimestampTz started_at,
				updated_at;
} TrainingSlot;

typedef struct TrainingShared
{
	LWLock	   *lock;
	int			n;
	TrainingSlot slots[FLEXIBLE_ARRAY_MEMBER];
} TrainingShared;

static TrainingShared *shared = NULL;
static TrainingSlot *mine = NULL;
static shmem_request_hook_type prev_request = NULL;
static shmem_startup_hook_type prev_startup = NULL;

/* The shared memory the slots take. */
static Size
shared_size(void)
{
	return add_size(offsetof(TrainingShared, slots), mul_size(MaxBackends, sizeof(TrainingSlot)));
}

static void
request_shmem(void)
{
	if (prev_request)
		prev_request();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("rnnlm trainings", 1);
}

static void
startup_shmem(void)
{
	bool		found;

	if (prev_startup)
		prev_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("rnnlm trainings", shared_size(), &found);
	if (!found)
	{
		memset(shared, 0, shared_size());
		shared->lock = &(GetNamedLWLockTranche("rnnlm trainings"))->lock;
		shared->n = MaxBackends;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Frees this backend's slot. */
static void
release_slot(void)
{
	if (mine == NULL || shared == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	mine->pid = 0;
	LWLockRelease(shared->lock);
	mine = NULL;
}

/* A training that fails takes its slot with it. */
static void
on_xact(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		release_slot();
}

static void
on_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		release_slot();
}

/* Asks for the shared memory (from _PG_init, while shared_preload_libraries load). */
void
rnnlm_progress_init(void)
{
	prev_request = shmem_request_hook;
	shmem_request_hook = request_shmem;
	prev_startup = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
	RegisterXactCallback(on_xact, NULL);
	RegisterSubXactCallback(on_subxact, NULL);
}

/* A training of model starts in this backend. */
void
rnnlm_progress_begin(const char *model)
{
	int			i;

	if (shared == NULL)
		return;
	release_slot();
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < shared->n && mine == NULL; i++)
		if (shared->slots[i].pid == 0)
			mine = &shared->slots[i];
	if (mine)
	{
		memset(mine, 0, sizeof(*mine));
		mine->pid = MyProcPid;
		mine->database = MyDatabaseId;
		mine->role = GetUserId();
		strlcpy(mine->model, model, sizeof(mine->model));
		mine->started_at = mine->updated_at = GetCurrentTimestamp();
		mine->train_loss = NAN;
	}
	LWLockRelease(shared->lock);
}

/* Whether this backend reports a training (so that it trains in slices). */
bool
rnnlm_progress_active(void)
{
	return mine != NULL;
}

/* Where this backend's training is. */
void
rnnlm_progress_update(const rl_run_progress *p)
{
	if (mine == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	mine->epoch = p->epoch;
	mine->epochs = p->epochs;
	mine->step = (int64) p->step;
	mine->steps = (int64) p->steps;
	mine->train_loss = p->train_loss;
	mine->updated_at = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

/* This backend's training ended. */
void
rnnlm_progress_end(void)
{
	release_slot();
}

PG_FUNCTION_INFO_V1(rnnlm_trainings);

/* rnnlm.trainings_in_progress(): the rows of rnnlm.trainings. */
Datum
rnnlm_trainings(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TrainingSlot *copy;
	int			n = 0,
				i;

	InitMaterializedSRF(fcinfo, 0);
	if (shared == NULL)
		return (Datum) 0;
	copy = palloc(sizeof(TrainingSlot) * shared->n);
	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->n; i++)
		if (shared->slots[i].pid != 0)
			copy[n++] = shared->slots[i];
	LWLockRelease(shared->lock);
	for (i = 0; i < n; i++)
	{
		TrainingSlot *s = &copy[i];
		Datum		values[12];
		bool		nulls[12] = {false};
		char	   *db;

		if (!superuser() && !has_privs_of_role(GetUserId(), s->role))
			continue;
		db = get_database_name(s->database);
		values[0] = Int32GetDatum(s->pid);
		values[1] = db ? CStringGetTextDatum(db) : (Datum) 0;
		nulls[1] = db == NULL;
		values[2] = ObjectIdGetDatum(s->role);
		values[3] = CStringGetTextDatum(s->model);
		values[4] = Int32GetDatum(s->epoch);
		values[5] = Int32GetDatum(s->epochs);
		values[6] = Int64GetDatum(s->step);
		values[7] = Int64GetDatum(s->steps);
		values[8] = Float8GetDatum(s->epochs > 0 && s->epoch >= 1 ?
								   Min(1.0, ((double) (s->epoch - 1) +
											 (s->steps > 0 ? (double) s->step / (double) s->steps : 0.0)) /
									   (double) s->epochs) : 0.0);
		values[9] = Float8GetDatum(s->train_loss);
		nulls[9] = isnan(s->train_loss);
		values[10] = TimestampTzGetDatum(s->started_at);
		values[11] = TimestampTzGetDatum(s->updated_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
