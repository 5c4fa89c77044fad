/*
 * spi_rows.c
 *		Streams the rows of a user's query that returns one text column, with
 *		the caller's privileges, through a cursor so the rows are never all in
 *		memory at once.  The query must be one read-only statement, and it is
 *		run read-only.
 */
#include "rnnlm_pg.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "tcop/utility.h"
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

/* Error context while parsing: a syntax error points into the query, as in SPI. */
static void
parse_error_callback(void *arg)
{
	const char *query = arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(query);
	}
	else
		errcontext("SQL statement \"%s\"", query);
}

/* The SQL words of a row-locking clause's strength. */
static const char *
locking_name(LockClauseStrength strength)
{
	switch (strength)
	{
		case LCS_FORKEYSHARE:
			return "FOR KEY SHARE";
		case LCS_FORSHARE:
			return "FOR SHARE";
		case LCS_FORNOKEYUPDATE:
			return "FOR NO KEY UPDATE";
		case LCS_FORUPDATE:
			return "FOR UPDATE";
		case LCS_NONE:
			break;
	}
	return "FOR UPDATE";
}

/*
 * Raw-tree walker: true, with *detail saying what it is, at the first part of
 * a SELECT that writes or locks: SELECT INTO, FOR UPDATE/SHARE, or an INSERT,
 * UPDATE, DELETE or MERGE (which the grammar allows only in a WITH clause).
 * It visits every subquery: set operations, CTEs, FROM and sublinks.
 */
static bool
find_write(Node *node, char **detail)
{
	if (node == NULL)
		return false;
	if (IsA(node, SelectStmt))
	{
		SelectStmt *s = (SelectStmt *) node;

		if (s->intoClause != NULL)
		{
			*detail = pstrdup("It contains SELECT INTO, which creates a table.");
			return true;
		}
		if (s->lockingClause != NIL)
		{
			LockingClause *lc = linitial_node(LockingClause, s->lockingClause);

			*detail = psprintf("It locks rows with %s.", locking_name(lc->strength));
			return true;
		}
	}
	else if (IsA(node, InsertStmt) || IsA(node, UpdateStmt) ||
			 IsA(node, DeleteStmt) || IsA(node, MergeStmt))
	{
		*detail = psprintf("It has a data-modifying WITH clause (%s).",
						   CreateCommandName(node));
		return true;
	}
	return raw_expression_tree_walker(node, find_write, (void *) detail);
}

/*
 * Raises an ERROR unless query is exactly one read-only statement: a SELECT,
 * VALUES or WITH ... SELECT with no data-modifying WITH clause, no SELECT INTO
 * and no FOR UPDATE/SHARE anywhere.  Only parses, so nothing of the query
 * runs before it passes.  what names the argument ("training query").
 */
void
rnnlm_check_read_only_query(const char *query, const char *what)
{
	ErrorContextCallback errcb;
	List	   *stmts;
	Node	   *stmt;
	char	   *detail = NULL;

	errcb.callback = parse_error_callback;
	errcb.arg = (void *) query;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	stmts = raw_parser(query, RAW_PARSE_DEFAULT);
	error_context_stack = errcb.previous;

	if (list_length(stmts) != 1)
		detail = list_length(stmts) == 0 ? pstrdup("It contains no statement.") :
			psprintf("It contains %d statements.", list_length(stmts));
	else
	{
		stmt = linitial_node(RawStmt, stmts)->stmt;
		if (!IsA(stmt, SelectStmt))
		{
			const char *name = CreateCommandName(stmt);
			bool		vowel = name[0] != '\0' && strchr("AEIOU", name[0]) != NULL;

			detail = psprintf("It is %s %s statement.", vowel ? "an" : "a", name);
		}
		else
			find_write(stmt, &detail);
	}
	if (detail != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the %s must be a single read-only statement", what),
				 errdetail_internal("%s", detail),
				 errhint("Pass one SELECT, VALUES or WITH ... SELECT query that only reads, such as 'SELECT body FROM documents'.")));
}

/*
 * Opens a read-only cursor on plan, checks that it returns one text column,
 * and calls fn with each non-NULL value as UTF-8.  Returns the number of
 * rows; *nonnull gets the non-NULL ones.
 */
static uint64
fetch_text_rows(SPIPlanPtr plan, const char *what,
				rnnlm_row_fn fn, void *arg, uint64 *nonnull)
{
	Portal		portal;
	TupleDesc	desc;
	uint64		rows = 0;
	MemoryContext rowcxt,
				old;

	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
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

/*
 * Runs query (SPI must be connected) and calls fn with each non-NULL value as
 * UTF-8.  Returns the number of rows; *nonnull gets the non-NULL ones.
 * what names the argument in errors ("training query").
 *
 * The query only reads, in two ways.  Before anything runs, it must parse as
 * exactly one read-only statement (rnnlm_check_read_only_query), so that a DELETE
 * ... RETURNING, a data-modifying WITH or a second statement is refused
 * instead of executed.  Then it runs through a read-only cursor with the
 * transaction itself made read-only (XactReadOnly) for as long as the cursor
 * is open and fetched, so that a volatile function called by the SELECT that
 * tries to write fails with 25006 read_only_sql_transaction, just as in a
 * READ ONLY transaction (which, as there, still lets it write temporary
 * tables).  The saved value is restored in PG_FINALLY, on error too, so that
 * an error caught by a savepoint or a PL/pgSQL exception block does not leave
 * the rest of the transaction read-only; and a transaction that was already
 * read-only stays so.
 */
uint64
rnnlm_read_text_rows(const char *query, const char *what,
					 rnnlm_row_fn fn, void *arg, uint64 *nonnull)
{
	SPIPlanPtr	plan;
	bool		saved_read_only = XactReadOnly;
	uint64		rows;

	*nonnull = 0;
	rnnlm_check_read_only_query(query, what);
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

	XactReadOnly = true;
	PG_TRY();
	{
		rows = fetch_text_rows(plan, what, fn, arg, nonnull);
	}
	PG_FINALLY();
	{
		XactReadOnly = saved_read_only;
	}
	PG_END_TRY();
	return rows;
}
