/*
 * tune.c
 *		rnnlm_tune(model_name, training_query, grid, options): one training
 *		per combination of the grid's values, one after the other in the
 *		caller's statement; the trial with the lowest validation loss is
 *		stored under model_name, and every trial is returned as a row.
 *
 * A trial's options are options || one value of each grid key, so a grid
 * key may be any training option and is checked as rnnlm_train checks it.
 * Only the best trial so far is kept in memory besides the one training.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(rnnlm_tune);

#define DEFAULT_MAX_TRIALS 16
#define MAX_MAX_TRIALS 1000

/* One grid key and its values, as JSON text. */
typedef struct GridAxis
{
	char	   *key;
	int			n;
	char	  **values;
} GridAxis;

/* JSON text of one jsonb value. */
static char *
value_text(JsonbValue *v)
{
	Jsonb	   *jb = JsonbValueToJsonb(v);

	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/* The values of one grid key, which must be a non-empty array. */
static void
read_axis(GridAxis *axis, JsonbValue *v)
{
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	int			cap = 4;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm_tune grid entry \"%s\" must be a non-empty array", axis->key),
				 errhint("For example '{\"hidden_size\": [128, 256], \"cell\": [\"lstm\", \"gru\"]}'.")));
	axis->values = palloc(cap * sizeof(char *));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (axis->n == cap)
			axis->values = repalloc(axis->values, (cap *= 2) * sizeof(char *));
		axis->values[axis->n++] = value_text(&elem);
	}
}

/* Parses the grid object; returns the number of keys and sets *trials. */
static int
read_grid(Jsonb *grid, GridAxis **axes, int64 *trials)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0,
				cap;

	if (!JB_ROOT_IS_OBJECT(grid) || JB_ROOT_COUNT(grid) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm_tune grid must be a non-empty JSON object of arrays"),
				 errhint("For example '{\"hidden_size\": [128, 256], \"cell\": [\"lstm\", \"gru\"]}'.")));
	cap = JB_ROOT_COUNT(grid);
	*axes = palloc0(cap * sizeof(GridAxis));
	*trials = 1;
	it = JsonbIteratorInit(&grid->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		GridAxis   *axis;

		if (tok != WJB_KEY)
			continue;
		axis = &(*axes)[n++];
		axis->key = pnstrdup(v.val.string.val, v.val.string.len);
		if (strcmp(axis->key, "replace") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rnnlm_tune grid cannot vary \"replace\""),
					 errhint("Put {\"replace\": true} in the options.")));
		(void) JsonbIteratorNext(&it, &v, true);
		read_axis(axis, &v);
		*trials *= axis->n;
		if (*trials > MAX_MAX_TRIALS)
			*trials = MAX_MAX_TRIALS + 1;
	}
	return n;
}

/* The options of trial i: options || the i-th combination of the grid. */
static Jsonb *
trial_options(Jsonb *options, GridAxis *axes, int naxes, int64 i)
{
	StringInfoData s;
	int			k;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (k = naxes - 1; k >= 0; k--)
	{
		int			pick = (int) (i % axes[k].n);

		i /= axes[k].n;
		if (s.len > 1)
			appendStringInfoString(&s, ", ");
		escape_json(&s, axes[k].key);
		appendStringInfo(&s, ": %s", axes[k].values[pick]);
	}
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(options),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data))));
}

/* max_trials from the options (then removed from them). */
static int
take_max_trials(Jsonb **options)
{
	JsonbValue *v;
	double		num;

	v = getKeyJsonValueFromContainer(&(*options)->root, "max_trials", strlen("max_trials"), NULL);
	if (v == NULL)
		return DEFAULT_MAX_TRIALS;
	if (v->type != jbvNumeric ||
		(num = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)))) < 1 ||
		num > MAX_MAX_TRIALS || num != floor(num))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm option \"max_trials\" must be an integer between 1 and %d",
						MAX_MAX_TRIALS)));
	*options = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(*options),
												  CStringGetTextDatum("max_trials")));
	return (int) num;
}

/* Parses a trial's options, which must hold out validation data. */
static void
parse_trial(Jsonb *options, RnnlmOptions *opts)
{
	rnnlm_parse_options(options, opts);
	if (opts->validation_fraction <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm_tune needs validation data to compare trials"),
				 errhint("Leave validation_fraction at its default or set it above 0.")));
}

/* Returns one trial's row. */
static void
put_trial(ReturnSetInfo *rsinfo, int64 i, const RnnlmOptions *opts,
		  const rl_train_result *res, bool chosen)
{
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	values[0] = Int32GetDatum((int32) i + 1);
	values[1] = JsonbPGetDatum(rnnlm_options_to_jsonb(opts));
	values[2] = Float8GetDatum(res->train_loss);
	values[3] = Float8GetDatum(res->val_loss);
	values[4] = Int32GetDatum(res->best_epoch);
	values[5] = BoolGetDatum(chosen);
	nulls[2] = isnan(res->train_loss);
	nulls[3] = isnan(res->val_loss);
	nulls[4] = res->best_epoch == 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Trains one trial to the end (not stored). */
static void
train_trial(RnnlmTraining *t, const char *name, const RnnlmOptions *opts, const char *query)
{
	rnnlm_training_init(t, name, opts, CurrentMemoryContext, false);
	rnnlm_training_load_parent(t);
	rnnlm_training_read(t, query);
	rnnlm_training_start(t);
	rnnlm_training_run(t);
	rnnlm_training_finish(t);
}

/* rnnlm_tune(model_name, training_query, grid, options): see the file header. */
Datum
rnnlm_tune(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_new_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	char	   *query = rnnlm_training_query_arg(fcinfo, 1);
	Jsonb	   *options;
	GridAxis   *axes;
	int			naxes,
				max_trials;
	int64		ntrials,
				i,
				best = -1;
	RnnlmOptions *opts;
	rl_train_result *results;
	RnnlmTraining best_t,
				t;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rnnlm_tune grid must not be NULL")));
	options = PG_ARGISNULL(3) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))
		: PG_GETARG_JSONB_P(3);
	PreventCommandIfReadOnly("rnnlm_tune()");
	if (!JB_ROOT_IS_OBJECT(options))
		rnnlm_parse_options(options, palloc(sizeof(RnnlmOptions)));	/* its error */
	max_trials = take_max_trials(&options);
	/* a replacement starts from the current version's options, as rnnlm_train's */
	options = rnnlm_replacement_options(name, options, palloc(sizeof(RnnlmOptions)), false);
	naxes = read_grid(PG_GETARG_JSONB_P(2), &axes, &ntrials);
	if (ntrials > max_trials)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the rnnlm_tune grid has %s%lld combinations, more than max_trials (%d)",
						ntrials > MAX_MAX_TRIALS ? "over " : "",
						(long long) Min(ntrials, MAX_MAX_TRIALS), max_trials),
				 errhint("Shrink the grid, or raise the option max_trials (at most %d).", MAX_MAX_TRIALS)));

	/* every trial's options are checked before the first one trains */
	opts = palloc(ntrials * sizeof(RnnlmOptions));
	results = palloc0(ntrials * sizeof(rl_train_result));
	for (i = 0; i < ntrials; i++)
		parse_trial(trial_options(options, axes, naxes, i), &opts[i]);
	rnnlm_prepare_compute();
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	rnnlm_training_init(&t, name, &opts[0], CurrentMemoryContext, false);
	rnnlm_training_check_target(&t);
	rnnlm_training_free(&t);
	memset(&best_t, 0, sizeof(best_t));
	for (i = 0; i < ntrials; i++)
	{
		CHECK_FOR_INTERRUPTS();
		train_trial(&t, name, &opts[i], query);
		results[i] = t.res;
		if (best < 0 || t.res.val_loss < results[best].val_loss)
		{
			rnnlm_training_free(&best_t);
			best_t = t;
			best = i;
		}
		else
			rnnlm_training_free(&t);
	}
	best_t.opts.replace = opts[0].replace;
	rnnlm_training_store(&best_t);
	rnnlm_training_free(&best_t);
	SPI_finish();

	for (i = 0; i < ntrials; i++)
		put_trial(rsinfo, i, &opts[i], &results[i], i == best);
	return (Datum) 0;
}
