/*
 * grants.c
 *		rnnlm_grant and rnnlm_revoke: who besides its owner may use a model
 *		(rnnlm.model.grantees, read by rnnlm.can_use in the table's
 *		row-level security).  Only the model's owner or a superuser changes
 *		them, and only through these functions (privilege.c).
 */
#include "rnnlm_pg.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(rnnlm_grant);
PG_FUNCTION_INFO_V1(rnnlm_revoke);

/* Whether s is a decimal number (an OID as granted_to shows a dropped role). */
static bool
is_number(const char *s)
{
	if (*s == '\0' || strlen(s) > 10)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char) *s))
			return false;
	return true;
}

/*
 * The grantee a role name means: 0 for PUBLIC, else the role's OID; for a
 * revoke, also the number of a dropped role.  42704 when there is none.
 */
static Oid
grantee_oid(const char *role, bool revoking)
{
	Oid			oid;

	if (pg_strcasecmp(role, "public") == 0)
		return InvalidOid;
	oid = get_role_oid(role, true);
	if (OidIsValid(oid))
		return oid;
	if (revoking && is_number(role))
		return (Oid) strtoul(role, NULL, 10);
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("role \"%s\" does not exist", role)));
	return InvalidOid;			/* keep the compiler quiet */
}

/*
 * Checks the arguments of a grant or revoke and the caller's right to it,
 * then runs the change (SQL with the name $1, the caller $2, the grantee $3).
 */
static void
change_grants(FunctionCallInfo fcinfo, bool revoking, const char *sql)
{
	char	   *name;
	char	   *role;
	Oid			types[3] = {TEXTOID, OIDOID, OIDOID};
	Datum		values[3];
	int			ret;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name and role name must not be NULL")));
	PreventCommandIfReadOnly(revoking ? "rnnlm_revoke()" : "rnnlm_grant()");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	role = text_to_cstring(PG_GETARG_TEXT_PP(1));
	SPI_connect();
	if (!rnnlm_catalog_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", name),
				 errhint("SELECT name FROM rnnlm.models lists the models you can use.")));
	rnnlm_catalog_check_owner(name);
	values[0] = CStringGetTextDatum(name);
	values[1] = ObjectIdGetDatum(GetUserId());
	values[2] = ObjectIdGetDatum(grantee_oid(role, revoking));
	ret = rnnlm_spi_write(sql, 3, types, values, NULL);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "rnnlm: could not change the grants: %s", SPI_result_code_string(ret));
	SPI_finish();
}

/* rnnlm_grant(model_name, role_name): lets a role (or PUBLIC) use a model. */
Datum
rnnlm_grant(PG_FUNCTION_ARGS)
{
	change_grants(fcinfo, false,
				  "UPDATE rnnlm.model "
				  "   SET grantees = grantees OPERATOR(pg_catalog.||) $3::pg_catalog.regrole "
				  " WHERE name OPERATOR(pg_catalog.=) $1 AND " RNNLM_OWNED_BY("$2")
				  "   AND NOT $3::pg_catalog.regrole OPERATOR(pg_catalog.=) ANY (grantees)");
	PG_RETURN_VOID();
}

/*
 * rnnlm_revoke(model_name, role_name): takes back a grant; a grantee role
 * that was dropped is named by the number rnnlm.models.granted_to shows.
 */
Datum
rnnlm_revoke(PG_FUNCTION_ARGS)
{
	change_grants(fcinfo, true,
				  "UPDATE rnnlm.model "
				  "   SET grantees = pg_catalog.array_remove(grantees, $3::pg_catalog.regrole) "
				  " WHERE name OPERATOR(pg_catalog.=) $1 AND " RNNLM_OWNED_BY("$2")
				  "   AND $3::pg_catalog.regrole OPERATOR(pg_catalog.=) ANY (grantees)");
	PG_RETURN_VOID();
}
