/*
 * spi_rows.c
 *		Streams the rows of a user's query (one text column; or a token and
 *		its vector), with the caller's privileges, through a cursor so the
 *		rows are never all in memory at once.  The query must be one read-only statement, and it is
 *		run read-only.
 */
#include "rnnlm_pg.h"

#include "access/xact.h"
#include "utils/resowner.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "tcop/utility.h"
#include "utils/array.h"
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

/* What a reader expects of a query's rows, and what it does with each. */
typedef struct RowReader
{
	/* checks the query's columns (ERROR if they will not do) */
	void		(*check) (TupleDesc desc, const char *what);
	/* one row, in a short-lived context; returns whether it was used (not NULL) */
	bool		(*row) (HeapTuple tup, TupleDesc desc, void *arg);
	void	   *arg;
} RowReader;

/*
 * Opens a read-only cursor on plan, has the reader check its columns, and
 * gives it each row.  Returns the number of rows; *used gets those the
 * reader used.
 */
static uint64
fetch_rows(SPIPlanPtr plan, const char *what, const RowReader *reader, uint64 *used)
{
	Portal		portal;
	uint64		rows = 0;
	MemoryContext rowcxt,
				old;

	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	reader->check(portal->tupDesc, what);
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
			rows++;
			old = MemoryContextSwitchTo(rowcxt);
			if (reader->row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, reader->arg))
				(*used)++;
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rowcxt);
	return rows;
}

/* Column attno (1-based) of a row as UTF-8 text, or NULL. */
static char *
column_utf8(HeapTuple tup, TupleDesc desc, int attno, size_t *len)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, attno, &isnull);
	text	   *t;

	if (isnull)
		return NULL;
	if (getBaseType(TupleDescAttr(desc, attno - 1)->atttypid) == NAMEOID)
		t = cstring_to_text(NameStr(*DatumGetName(d)));
	else
		t = DatumGetTextPP(d);
	return rnnlm_text_to_utf8(t, len);
}

/* A query of one text column. */
static void
check_text_column(TupleDesc desc, const char *what)
{
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
}

/* The callback and argument of rnnlm_read_text_rows. */
typedef struct TextRows
{
	rnnlm_row_fn fn;
	void	   *arg;
} TextRows;

/* A text row: the callback with its value, unless NULL. */
static bool
text_row(HeapTuple tup, TupleDesc desc, void *arg)
{
	TextRows   *tr = arg;
	size_t		len;
	char	   *u = column_utf8(tup, desc, 1, &len);

	if (u == NULL)
		return false;
	tr->fn(tr->arg, u, len);
	return true;
}

/* A query of (token text, vector real[] or float8[]). */
static void
check_vector_columns(TupleDesc desc, const char *what)
{
	Oid			vec;

	if (desc->natts != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the %s must return two columns, a token and its vector", what),
				 errdetail("It returns %d columns.", desc->natts)));
	if (!is_text_type(TupleDescAttr(desc, 0)->atttypid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the first column of the %s must be text", what),
				 errdetail("It is of type %s.", format_type_be(TupleDescAttr(desc, 0)->atttypid))));
	vec = getBaseType(TupleDescAttr(desc, 1)->atttypid);
	if (vec != FLOAT4ARRAYOID && vec != FLOAT8ARRAYOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the second column of the %s must be real[] or double precision[]", what),
				 errdetail("It is of type %s.", format_type_be(TupleDescAttr(desc, 1)->atttypid)),
				 errhint("Cast it, for example embedding::real[].")));
}

/* The callback and argument of rnnlm_read_vector_rows. */
typedef struct VectorRows
{
	rnnlm_vector_row_fn fn;
	void	   *arg;
	const char *what;
} VectorRows;

/* A (token, vector) row: the callback with both as UTF-8 and doubles, unless either is NULL. */
static bool
vector_row(HeapTuple tup, TupleDesc desc, void *arg)
{
	VectorRows *vr = arg;
	size_t		len;
	char	   *u = column_utf8(tup, desc, 1, &len);
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, 2, &isnull);
	ArrayType  *a;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	double	   *v;
	Oid			elem;

	if (u == NULL || isnull)
		return false;
	a = DatumGetArrayTypeP(d);
	elem = ARR_ELEMTYPE(a);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the vectors of the %s must be one-dimensional", vr->what)));
	if (elem == FLOAT4OID)
		deconstruct_array(a, FLOAT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
	else
		deconstruct_array(a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	v = palloc(sizeof(double) * (n > 0 ? n : 1));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the vector of a token of the %s has a NULL element", vr->what)));
		v[i] = elem == FLOAT4OID ? (double) DatumGetFloat4(elems[i]) : DatumGetFloat8(elems[i]);
	}
	vr->fn(vr->arg, u, len, v, n);
	return true;
}

/*
 * Runs the fetch in an internal subtransaction that is rolled back once the
 * rows are read, read-only for its whole length: see rnnlm_read_text_rows.
 */
static uint64
fetch_in_subtransaction(SPIPlanPtr plan, const char *what, const RowReader *reader,
						uint64 *used)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		saved_read_only = XactReadOnly;
	uint64		rows = 0;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	XactReadOnly = true;
	PG_TRY();
	{
		rows = fetch_rows(plan, what, reader, used);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
		XactReadOnly = saved_read_only;
		ReThrowError(edata);
	}
	PG_END_TRY();
	/* what the query did that a read-only transaction allows is undone here */
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
	XactReadOnly = saved_read_only;
	return rows;
}

/* Runs a read-only query through a reader; see rnnlm_read_text_rows. */
static uint64
read_rows(const char *query, const char *what, const RowReader *reader, uint64 *used)
{
	SPIPlanPtr	plan;

	*used = 0;
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
	return fetch_in_subtransaction(plan, what, reader, used);
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
 * READ ONLY transaction.  What a read-only transaction still lets a function
 * do inside the database -- write temporary tables, create or unlink large
 * objects (PostgreSQL 15 does not guard them), queue deferred trigger events
 * or notifications -- is undone: the query runs in an internal subtransaction
 * that is rolled back once its rows are read, so nothing of it is left to
 * commit.  The saved read-only flag is restored on error too, so that an
 * error caught by a savepoint or a PL/pgSQL exception block does not leave
 * the rest of the transaction read-only; and a transaction that was already
 * read-only stays so.  Not undone, as by no rollback: what happens outside
 * the database's transaction (signals such as pg_cancel_backend, files
 * written by a superuser's function, session-level advisory locks).
 */
uint64
rnnlm_read_text_rows(const char *query, const char *what,
					 rnnlm_row_fn fn, void *arg, uint64 *nonnull)
{
	TextRows	tr = {fn, arg};
	RowReader	reader = {check_text_column, text_row, &tr};

	return read_rows(query, what, &reader, nonnull);
}

/*
 * Like rnnlm_read_text_rows, for a query of (token text, vector real[] or
 * double precision[]): fn gets each row whose token and vector are not NULL.
 */
uint64
rnnlm_read_vector_rows(const char *query, const char *what,
					   rnnlm_vector_row_fn fn, void *arg, uint64 *used)
{
	VectorRows	vr = {fn, arg, what};
	RowReader	reader = {check_vector_columns, vector_row, &vr};

	return read_rows(query, what, &reader, used);
}
