/*
 * spi_rows.c
 *		Streams the rows of a user's query that returns one text column, with
 *		the caller's privileges, through a cursor so the rows are never all in
 *		memory at once.
 */
#include "rnnlm_pg.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#define FETCH_ROWS 1000

/* Whether typid is (a domain over) a text-like type. */
static bool
is_text_type(Oid typid)
{
	Oid			base = getBaseType(typid);

	return base == TEXTOID || base == VARCHAROID || base == BPCHAROID ||
		base == NAMEOID;
}

/*
 * Runs query (SPI must be connected) and calls fn with each non-NULL value as
 * UTF-8.  Returns the number of rows; *nonnull gets the non-NULL ones.
 * what names the argument in errors ("training query").
 */
uint64
rnnlm_read_text_rows(const char *query, const char *what,
					 rnnlm_row_fn fn, void *arg, uint64 *nonnull)
{
	SPIPlanPtr	plan;
	Portal		portal;
	TupleDesc	desc;
	uint64		rows = 0;
	MemoryContext rowcxt,
				old;

	*nonnull = 0;
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not prepare the %s: %s", what,
						SPI_result_code_string(SPI_result))));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s must return rows", what),
				 errhint("Pass a query such as 'SELECT body FROM documents'.")));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, false);
	desc = portal->tupDesc;
	if (desc->natts != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the %s must return exactly one column", what),
				 errdetail("It returns %d columns.", desc->natts),
				 errhint("Select a single text column, or concatenate several with ||.")));
	if (!is_text_type(TupleDescAttr(desc, 0)->atttypid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the %s must return a text column", what),
				 errdetail("Its column is of type %s.",
						   format_type_be(TupleDescAttr(desc, 0)->atttypid)),
				 errhint("Cast the column to text.")));

	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "rnnlm rows",
								   ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		uint64		i;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
										  1, &isnull);

			rows++;
			if (isnull)
				continue;
			(*nonnull)++;
			old = MemoryContextSwitchTo(rowcxt);
			{
				Oid			base = getBaseType(TupleDescAttr(desc, 0)->atttypid);
				text	   *t;
				char	   *u;
				size_t		len;

				if (base == NAMEOID)
					t = cstring_to_text(NameStr(*DatumGetName(d)));
				else
					t = DatumGetTextPP(d);
				u = rnnlm_text_to_utf8(t, &len);
				MemoryContextSwitchTo(old);
				fn(arg, u, len);
			}
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rowcxt);
	return rows;
}
