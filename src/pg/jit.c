/*
 * jit.c
 *		Statements that call rnnlm's per-row functions run without JIT.
 *
 * rnnlm_perplexity and its kin are declared expensive (their COST), so
 * that the planner parallelises a scan that calls them once per row.  The
 * same total cost crosses jit_above_cost, and a JIT-compiled plan loads
 * LLVM into the backend (about 50 MB each, workers included) to compile
 * expressions whose time is all inside a C function, which JIT cannot make
 * faster.  No cost keeps one and not the other: with many rows, even a
 * cheap per-row cost exceeds jit_above_cost.  So the executor hook here
 * turns JIT off for a plan that calls one of these functions, before the
 * plan starts (and before a Gather hands it to workers).  The plan's
 * invalidation items name every user function it calls by syscache hash,
 * which is all the check needs.
 */
#include "rnnlm_pg.h"

#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "executor/executor.h"
#include "jit/jit.h"
#include "nodes/plannodes.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/syscache.h"

/* The functions evaluated once per row, whose plans need no JIT. */
static const char *const per_row_functions[] = {
	"rnnlm_perplexity", "rnnlm_token_logprobs", "rnnlm_generate", "rnnlm_next_tokens",
	"rnnlm_embed", "rnnlm_classify", "rnnlm_classify_scores", "rnnlm_perplexity_at",
	"rnnlm_surprise_percentile", "rnnlm_surprise_percentile_at"
};

#define MAX_HASHES 32

static ExecutorStart_hook_type prev_executor_start = NULL;

/* Adds the PROCOID hash of every C function of this library named name. */
static int
add_hashes(const char *name, uint32 *hashes, int n)
{
	CatCList   *list = SearchSysCacheList1(PROCNAMEARGSNSP, CStringGetDatum(name));
	int			i;

	for (i = 0; i < list->n_members && n < MAX_HASHES; i++)
	{
		HeapTuple	tup = &list->members[i]->tuple;
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);
		bool		isnull;
		Datum		bin;

		if (proc->prolang != ClanguageId)
			continue;
		bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);
		if (!isnull && strstr(TextDatumGetCString(bin), "rnnlm") != NULL)
			hashes[n++] = GetSysCacheHashValue1(PROCOID, ObjectIdGetDatum(proc->oid));
	}
	ReleaseSysCacheList(list);
	return n;
}

/* Whether the plan calls one of the per-row functions. */
static bool
calls_per_row_function(PlannedStmt *stmt)
{
	uint32		hashes[MAX_HASHES];
	int			n = 0,
				i;
	ListCell   *lc;

	for (i = 0; i < (int) lengthof(per_row_functions); i++)
		n = add_hashes(per_row_functions[i], hashes, n);
	foreach(lc, stmt->invalItems)
	{
		PlanInvalItem *item = lfirst_node(PlanInvalItem, lc);

		if (item->cacheId != PROCOID)
			continue;
		for (i = 0; i < n; i++)
			if (item->hashValue == hashes[i])
				return true;
	}
	return false;
}

/* ExecutorStart: no JIT for a plan that calls a per-row function. */
static void
rnnlm_executor_start(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;

	if (stmt->jitFlags != PGJIT_NONE && calls_per_row_function(stmt))
		stmt->jitFlags = PGJIT_NONE;
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* Installs the hook (from _PG_init). */
void
rnnlm_jit_init(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = rnnlm_executor_start;
}

PG_FUNCTION_INFO_V1(rnnlm_planner_support);

/*
 * The planner support function of the per-row functions.  It asks for
 * nothing (their COST stands); it exists so that the planner calls into
 * this library while it plans a statement that calls them, which loads it
 * and so installs the hook above in time for that very statement.
 */
Datum
rnnlm_planner_support(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(NULL);
}
