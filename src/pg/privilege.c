/*
 * privilege.c
 *		rnnlm's tables are written only by rnnlm's functions: no role but the
 *		extension's owner holds INSERT, UPDATE, DELETE or TRUNCATE on them
 *		(sql/rnnlm--0.2--0.3.sql), and a function switches to that owner
 *		only around its own statements on them (rnnlm_spi_write), never
 *		around a caller's query.
 *
 * Running as the owner of the tables bypasses their row-level security, so
 * every statement passed here checks for itself whose rows it touches: it
 * takes the calling role (GetUserId() before the switch) as a parameter,
 * and the function has checked ownership or grants first.
 */
#include "rnnlm_pg.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"

/* The role that owns the extension rnnlm, and so its tables. */
Oid
rnnlm_extension_owner(void)
{
	Oid			ext = get_extension_oid("rnnlm", false);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		elog(ERROR, "rnnlm: extension rnnlm has no owner");
	return owner;
}

/*
 * Runs one of rnnlm's own statements on its tables as the extension's owner
 * (a restricted operation, as for a maintenance command run for another
 * role) with search_path pg_catalog, pg_temp, and returns SPI's result
 * code; the caller is SPI-connected.  The previous user and search_path
 * are restored on error too.
 */
static int
spi_as_owner(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
			 bool read_only)
{
	Oid			save_user;
	int			save_sec;
	int			save_nest;
	volatile int ret = 0;

	GetUserIdAndSecContext(&save_user, &save_sec);
	save_nest = NewGUCNestLevel();
	SetUserIdAndSecContext(rnnlm_extension_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		ret = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
	}
	PG_FINALLY();
	{
		AtEOXact_GUC(false, save_nest);
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
	return ret;
}

/* A write of rnnlm's on its tables, as the extension's owner (spi_as_owner). */
int
rnnlm_spi_write(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	return spi_as_owner(sql, nargs, types, values, nulls, false);
}

/*
 * A read of rows of every role, as the extension's owner: what rnnlm's own
 * bookkeeping needs (the queued jobs of all roles), never shown to the
 * caller.  Not in SPI's read-only mode, which would not see the rows the
 * current command wrote (the job just submitted).
 */
int
rnnlm_spi_read_all(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			ret = spi_as_owner(sql, nargs, types, values, nulls, false);

	if (ret >= 0 && ret != SPI_OK_SELECT)
		elog(ERROR, "rnnlm: a bookkeeping read ran as a write (%s)", SPI_result_code_string(ret));
	return ret;
}
