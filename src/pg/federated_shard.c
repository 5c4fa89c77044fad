/*
 * federated_shard.c
 *		A shard's side of federated training: the functions that
 *		rnnlm_train_federated (federated.c) calls on every shard through
 *		libpq, one session of them per coordinator connection.
 *
 *   rnnlm.federated_begin(session, training_query, options, parent)
 *       reads this shard's rows, holds out its validation documents and
 *       returns the counts of its training units (words, characters, bpe
 *       pieces): the only thing about the text that leaves the shard; with
 *       the model fine-tuned from (parent), its text rules and no counts;
 *   rnnlm.federated_start(session, model, seed)
 *       takes the coordinator's new model (vocabulary and initial weights),
 *       turns the rows into token streams and creates the run;
 *   rnnlm.federated_train(session, weights, learning_rate, max_steps)
 *       sets the weights given (the latest average) and trains a round:
 *       max_steps chunks, or the rest of the epoch; returns the weights;
 *   rnnlm.federated_evaluate(session, weights)
 *       sets the weights and returns their loss on the validation rows;
 *   rnnlm.federated_end(session).
 *
 * The session lives in the backend between calls, in a memory context
 * under TopMemoryContext, so that the rows are read once and the Adam
 * moments carry over from round to round.  A call that fails leaves the
 * session marked busy; the next call frees it and says so.  Nothing here
 * writes a table: a shard may be a hot standby.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(rnnlm_federated_begin);
PG_FUNCTION_INFO_V1(rnnlm_federated_start);
PG_FUNCTION_INFO_V1(rnnlm_federated_train);
PG_FUNCTION_INFO_V1(rnnlm_federated_evaluate);
PG_FUNCTION_INFO_V1(rnnlm_federated_end);

/* The training a shard holds between the coordinator's calls. */
typedef struct ShardSession
{
	char		id[NAMEDATALEN];
	MemoryContext cxt;			/* holds this struct, the options and t.cxt */
	bool		busy;			/* a call is in progress, or failed */
	RnnlmTraining t;
	int32_t    *val;			/* the validation stream, evaluated on request */
	size_t		nval;
} ShardSession;

static ShardSession *session = NULL;

/*
 * True while rnnlm.federated_begin runs the caller's training query, which
 * could call these functions again: they would free or change the session
 * that the outer call is filling.
 */
static bool reading_rows = false;

/* Refuses a call of these functions from a federated training's own query. */
static void
check_not_reentered(void)
{
	if (reading_rows)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("rnnlm.federated_begin() and the functions of its session cannot be called from its training query")));
}

/* Frees the session, if any. */
static void
session_free(void)
{
	if (session == NULL)
		return;
	if (session->t.run)
		rl_run_free(session->t.run);
	MemoryContextDelete(session->cxt);
	session = NULL;
}

/* The session id argument, which must be given. */
static char *
session_arg(FunctionCallInfo fcinfo)
{
	char	   *id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("federated training session must not be NULL")));
	id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strlen(id) == 0 || strlen(id) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("federated training session must be 1 to %d bytes", NAMEDATALEN - 1)));
	return id;
}

/* The session of this call, if it is usable. */
static ShardSession *
session_get(FunctionCallInfo fcinfo)
{
	char	   *id = session_arg(fcinfo);

	check_not_reentered();
	if (session == NULL || strcmp(session->id, id) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no federated training session \"%s\" in this connection", id),
				 errhint("rnnlm_train_federated() calls these functions; rnnlm.federated_begin() starts a session.")));
	if (session->busy)
	{
		session_free();
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("federated training session \"%s\" was interrupted", id),
				 errdetail("An earlier call of the session failed; the session is gone.")));
	}
	return session;
}

/*
 * Marks the session busy until session_leave: if the work in between
 * fails, the session is not to be trusted and the next call frees it.
 */
static void
session_work(ShardSession *s)
{
	s->busy = true;
	rnnlm_prepare_compute();
}

/* The work of the call is done: the session is usable again. */
static void
session_leave(ShardSession *s)
{
	s->busy = false;
}

/* Writes the given weights file into the session's model. */
static void
set_weights(ShardSession *s, bytea *file)
{
	rl_model   *m = s->t.model;

	if (rl_weights_file_read(&s->t.env, (const uint8_t *) VARDATA_ANY(file),
							 VARSIZE_ANY_EXHDR(file), m->params, m->nparams) != RL_OK)
		rnnlm_raise(&s->t.env, "reading the weights");
	rl_run_weights_changed(s->t.run);
}

/* The session's model weights as a weights file. */
static bytea *
weights_file(const ShardSession *s)
{
	size_t		len = rl_weights_file_size(s->t.model->nparams);
	bytea	   *b = (bytea *) palloc_extended(VARHDRSZ + len, MCXT_ALLOC_HUGE);

	SET_VARSIZE(b, VARHDRSZ + len);
	rl_weights_file_write(s->t.model->params, s->t.model->nparams, (uint8_t *) VARDATA(b));
	return b;
}

/* A one-row result of the function's declared type. */
static Datum
result_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	TupleDesc	desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "rnnlm: a federated function must return a record");
	desc = BlessTupleDesc(desc);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/* A model file argument as a model in the session's memory. */
static rl_model *
model_arg(ShardSession *s, bytea *file, const char *what)
{
	rl_model   *m;

	if (rl_model_deserialize(&s->t.env, (const uint8_t *) VARDATA_ANY(file),
							 VARSIZE_ANY_EXHDR(file), &m) != RL_OK)
		rnnlm_raise(&s->t.env, what);
	return m;
}

/*
 * rnnlm.federated_begin(session, training_query, options, parent): reads the
 * rows, returns unit counts (none when fine-tuning parent, whose text rules
 * and vocabulary are the model's).
 */
Datum
rnnlm_federated_begin(PG_FUNCTION_ARGS)
{
	char	   *id = session_arg(fcinfo);
	char	   *query = rnnlm_training_query_arg(fcinfo, 1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt,
				old;
	ShardSession *s;
	RnnlmOptions opts;
	rl_unit_count *units;
	int32_t		n,
				k;

	check_not_reentered();
	session_free();
	cxt = AllocSetContextCreate(TopMemoryContext, "rnnlm federated shard", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	s = palloc0(sizeof(ShardSession));
	s->cxt = cxt;
	strlcpy(s->id, id, sizeof(s->id));
	s->busy = true;				/* from here an error leaves it for the next call to free */
	session = s;
	rnnlm_parse_options(PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), &opts);
	MemoryContextSwitchTo(old);
	rnnlm_prepare_compute();

	rnnlm_training_init(&s->t, "federated", &opts, cxt, false);
	if (!PG_ARGISNULL(3))
		s->t.model = model_arg(s, PG_GETARG_BYTEA_PP(3), "loading the model to fine-tune from");
	SPI_connect();
	reading_rows = true;
	PG_TRY();
	{
		rnnlm_training_read_rows(&s->t, query);
	}
	PG_FINALLY();
	{
		reading_rows = false;
	}
	PG_END_TRY();
	SPI_finish();
	InitMaterializedSRF(fcinfo, 0);
	if (s->t.model)
	{
		session_leave(s);
		return (Datum) 0;		/* the vocabulary is the parent's */
	}
	if (rl_builder_unit_counts(s->t.builder, s->t.nval_docs, &units, &n) != RL_OK)
		rnnlm_raise(&s->t.env, "counting the training units");
	for (k = 0; k < n; k++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		bytea	   *unit;

		if ((k & 65535) == 0)
			CHECK_FOR_INTERRUPTS();
		if (units[k].count == 0)
			continue;			/* only in validation documents */
		unit = palloc(VARHDRSZ + units[k].len);
		SET_VARSIZE(unit, VARHDRSZ + units[k].len);
		memcpy(VARDATA(unit), units[k].text, units[k].len);
		values[0] = PointerGetDatum(unit);
		values[1] = Int64GetDatum((int64) Min(units[k].count, (uint64) PG_INT64_MAX));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(unit);
	}
	rl_free(&s->t.env, units);
	session_leave(s);
	return (Datum) 0;
}

/* Refuses a model whose text rules are not the ones this shard split its rows by. */
static void
check_same_rules(const ShardSession *s, const rl_model *m)
{
	rl_config	here;

	rnnlm_training_text_config(&s->t, &here);
	if (here.tokenizer != m->cfg.tokenizer)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the coordinator's model does not split text as this shard does"),
				 errdetail("It has the %s tokenizer; the options the session began with give %s.",
						   rl_tokenizer_name(m->cfg.tokenizer), rl_tokenizer_name(here.tokenizer))));
	if (!rl_config_same_text(&here, &m->cfg) ||
		strcmp(here.unicode_version, m->cfg.unicode_version) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the coordinator's model does not split text as this shard does"),
				 errdetail("Its text rules (Unicode %s) differ from those of the options the session began with here (Unicode %s).",
						   m->cfg.unicode_version, here.unicode_version)));
}

/* rnnlm.federated_start(session, model, seed): token streams and a run for the coordinator's model. */
Datum
rnnlm_federated_start(PG_FUNCTION_ARGS)
{
	ShardSession *s;
	RnnlmTraining *t;
	rl_model   *m;
	rl_run_progress p;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model and seed must not be NULL")));
	s = session_get(fcinfo);
	t = &s->t;
	if (t->run != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("federated training session \"%s\" has started already", s->id)));
	session_work(s);
	m = model_arg(s, PG_GETARG_BYTEA_PP(1), "loading the coordinator's model");
	check_same_rules(s, m);
	if (t->model)
		rl_model_free(&t->env, t->model);	/* the parent: m starts from its weights */
	t->model = m;
	rnnlm_training_build_streams(t);
	/* the coordinator validates: the run trains only, as long as it is asked */
	s->val = t->val;
	s->nval = t->nval;
	t->val = NULL;
	t->nval = 0;
	t->opts.epochs = PG_INT32_MAX;
	t->opts.seed = PG_GETARG_INT64(2);
	rnnlm_training_start(t);
	rl_run_progress_get(t->run, &p);
	values[0] = Int64GetDatum((int64) t->ndocs);
	values[1] = Int64GetDatum((int64) t->nval_docs);
	values[2] = Int64GetDatum((int64) p.steps);
	session_leave(s);
	PG_RETURN_DATUM(result_row(fcinfo, values, nulls));
}

/* The run of a started session. */
static rl_run *
started_run(const ShardSession *s)
{
	if (s->t.run == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("federated training session \"%s\" has not started", s->id),
				 errhint("rnnlm.federated_start() gives it the model.")));
	return s->t.run;
}

/* rnnlm.federated_train(session, weights, learning_rate, max_steps): one round. */
Datum
rnnlm_federated_train(PG_FUNCTION_ARGS)
{
	ShardSession *s;
	rl_run	   *run;
	int			ended;
	size_t		tokens;
	double		loss;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3) || !(PG_GETARG_FLOAT8(2) > 0) ||
		isinf(PG_GETARG_FLOAT8(2)) || PG_GETARG_INT32(3) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("learning_rate must be a positive number and max_steps 0 or more")));
	s = session_get(fcinfo);
	run = started_run(s);
	session_work(s);
	if (!PG_ARGISNULL(1))
		set_weights(s, PG_GETARG_BYTEA_PP(1));
	if (rl_run_train_round(run, PG_GETARG_FLOAT8(2), (size_t) PG_GETARG_INT32(3), &ended,
						   &tokens, &loss) != RL_OK)
		rnnlm_raise(&s->t.env, "training");
	values[0] = PointerGetDatum(weights_file(s));
	values[1] = Int64GetDatum((int64) tokens);
	values[2] = Float8GetDatum(loss);
	values[3] = BoolGetDatum(ended != 0);
	session_leave(s);
	PG_RETURN_DATUM(result_row(fcinfo, values, nulls));
}

/* rnnlm.federated_evaluate(session, weights): the validation loss of the weights. */
Datum
rnnlm_federated_evaluate(PG_FUNCTION_ARGS)
{
	ShardSession *s = session_get(fcinfo);
	rl_run	   *run = started_run(s);
	double		loss;
	size_t		count;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	session_work(s);
	if (!PG_ARGISNULL(1))
		set_weights(s, PG_GETARG_BYTEA_PP(1));
	if (rl_run_evaluate(run, s->val, s->nval, &loss, &count) != RL_OK)
		rnnlm_raise(&s->t.env, "validating");
	values[0] = Float8GetDatum(loss);
	nulls[0] = count == 0;
	values[1] = Int64GetDatum((int64) count);
	session_leave(s);
	PG_RETURN_DATUM(result_row(fcinfo, values, nulls));
}

/* rnnlm.federated_end(session): frees the session; true if there was one. */
Datum
rnnlm_federated_end(PG_FUNCTION_ARGS)
{
	char	   *id = session_arg(fcinfo);
	bool		found;

	check_not_reentered();
	found = session != NULL && strcmp(session->id, id) == 0;
	if (found)
		session_free();
	PG_RETURN_BOOL(found);
}
