/*
 * train.c
 *		One training, step by step, shared by rnnlm_train (all of it in the
 *		caller's statement), the background worker of rnnlm_train_async
 *		(jobs.c: the steps in separate transactions) and rnnlm_tune; and
 *		rnnlm_train itself.
 *
 * The steps: check the target name, load the model to fine-tune from, read
 * the rows and build the token streams, size and create the model and the
 * run, train, finish (the kept epoch's weights, serialised), store.  Every
 * allocation of the core lives in the training's own memory context, which
 * rnnlm_training_free deletes, or its parent if an ERROR (a cancel, a
 * timeout) unwinds first.  Callers are SPI-connected for the steps that
 * read or write tables.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(rnnlm_train);

/* Bytea values are limited to 1 GB. */
#define MAX_BLOB_BYTES ((size_t) MaxAllocSize - VARHDRSZ)

/* Sets up a training of the model name with checked options. */
void
rnnlm_training_init(RnnlmTraining *t, const char *name, const RnnlmOptions *opts,
					MemoryContext parent, bool notices)
{
	memset(t, 0, sizeof(*t));
	t->name = name;
	t->opts = *opts;
	t->opts.precision = rnnlm_resolve_precision(opts->precision, "training");
	t->cxt = AllocSetContextCreate(parent, "rnnlm training", ALLOCSET_DEFAULT_SIZES);
	rnnlm_env_init(&t->env, t->cxt, notices);
	t->started_at = GetCurrentTimestamp();
}

/* Frees everything the training holds. */
void
rnnlm_training_free(RnnlmTraining *t)
{
	if (t->cxt)
		MemoryContextDelete(t->cxt);
	t->cxt = NULL;
}

/* The error for a name that is taken and not to be replaced. */
static void
raise_exists(const char *name, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("rnnlm model \"%s\" already exists", name),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("%s", hint)));
}

/* Checks that the model may be stored: new, or replaceable by this role. */
void
rnnlm_training_check_target(RnnlmTraining *t)
{
	if (t->opts.replace)
		rnnlm_catalog_check_owner(t->name);
	else if (rnnlm_catalog_exists(t->name))
		raise_exists(t->name, NULL,
					 "Pass {\"replace\": true} to replace it, or drop it with rnnlm_drop().");
}

/* Raises an ERROR when an architecture option given differs from the parent's. */
static void
check_inherited(const RnnlmTraining *t, const char *key, const char *given,
				const char *parent)
{
	if (rnnlm_option_given(&t->opts, key) && strcmp(given, parent) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm option \"%s\" does not match the model \"%s\" to fine-tune from",
						key, t->opts.init_from),
				 errdetail("It is %s there and %s here.", parent, given),
				 errhint("Leave the architecture options out with init_from: they are the parent's.")));
}

/* The same for an integer option. */
static void
check_inherited_int(const RnnlmTraining *t, const char *key, int given, int parent)
{
	check_inherited(t, key, psprintf("%d", given), psprintf("%d", parent));
}

/*
 * With init_from: loads that model (one the caller may use) as the starting
 * weights and vocabulary, and takes its architecture into the options.
 */
void
rnnlm_training_load_parent(RnnlmTraining *t)
{
	RnnlmOptions *o = &t->opts;
	bytea	   *weights;
	int64		stamp;
	rl_config  *c;

	if (o->init_from == NULL)
		return;
	weights = rnnlm_catalog_weights(o->init_from, &stamp, t->cxt);
	if (weights == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", o->init_from),
				 errdetail("It is the init_from of model \"%s\".", t->name),
				 errhint("SELECT name FROM rnnlm.models lists the models you can use.")));
	if (rl_model_deserialize(&t->env, (const uint8_t *) VARDATA_ANY(weights),
							 VARSIZE_ANY_EXHDR(weights), &t->model) != RL_OK)
		rnnlm_raise(&t->env, "loading the model to fine-tune from");
	pfree(weights);
	c = &t->model->cfg;
	if (rnnlm_option_given(o, "max_vocab"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm option \"max_vocab\" cannot be used with init_from"),
				 errdetail("A fine-tuned model keeps the vocabulary of \"%s\".", o->init_from)));
	check_inherited(t, "cell", rnnlm_option_choice_name("cell", o->cell),
					rnnlm_option_choice_name("cell", c->cell));
	check_inherited(t, "tokenizer", rnnlm_option_choice_name("tokenizer", o->tokenizer),
					rnnlm_option_choice_name("tokenizer", c->tokenizer));
	check_inherited(t, "lowercase", o->lowercase ? "true" : "false",
					c->lowercase ? "true" : "false");
	check_inherited(t, "normalize", rnnlm_option_choice_name("normalize", o->normalize),
					rnnlm_option_choice_name("normalize", c->normalize));
	check_inherited(t, "split_on_punctuation", o->split_on_punctuation ? "true" : "false",
					c->split_on_punct ? "true" : "false");
	check_inherited(t, "filters", o->filters ? o->filters : "(the Unicode categories)",
					c->has_filters ? pg_any_to_server(c->filters, (int) strlen(c->filters), PG_UTF8)
					: "(the Unicode categories)");
	check_inherited_int(t, "embedding_dim", o->embedding_dim, c->embedding_dim);
	check_inherited_int(t, "hidden_size", o->hidden_size, c->hidden_size);
	check_inherited_int(t, "num_layers", o->num_layers, c->num_layers);
	o->cell = c->cell;
	o->tokenizer = c->tokenizer;
	o->lowercase = c->lowercase;
	o->normalize = c->normalize;
	o->split_on_punctuation = c->split_on_punct;
	o->filters = c->has_filters
		? pg_any_to_server(c->filters, (int) strlen(c->filters), PG_UTF8) : NULL;
	o->max_vocab = c->vocab_size - RL_NUM_SPECIAL;
	o->embedding_dim = c->embedding_dim;
	o->hidden_size = c->hidden_size;
	o->num_layers = c->num_layers;
}

/*
 * How the new model turns text into tokens: the parent's rules when
 * fine-tuning, else the Unicode rules with the options'.
 */
void
rnnlm_training_text_config(const RnnlmTraining *t, rl_config *cfg)
{
	const RnnlmOptions *o = &t->opts;

	if (t->model)
	{
		*cfg = t->model->cfg;
		return;
	}
	memset(cfg, 0, sizeof(*cfg));
	rl_config_text_init(cfg, (rl_tokenizer_kind) o->tokenizer, o->lowercase);
	cfg->normalize = (rl_normalize) o->normalize;
	cfg->split_on_punct = o->split_on_punctuation;
	if (o->filters)
	{
		cfg->has_filters = 1;
		strlcpy(cfg->filters, pg_server_to_any(o->filters, (int) strlen(o->filters), PG_UTF8),
				sizeof(cfg->filters));
	}
}

/* Row callback: adds one document to the builder. */
static void
add_document(void *arg, const char *utf8, size_t len)
{
	RnnlmTraining *t = arg;

	if (rl_builder_add(t->builder, utf8, len) != RL_OK)
		rnnlm_raise(&t->env, "reading the training data");
}

/* How many of ndocs documents to hold out for validation. */
static size_t
validation_docs(double fraction, size_t ndocs)
{
	size_t		k;

	if (fraction <= 0.0 || ndocs < 2)
		return 0;
	k = (size_t) floor(fraction * (double) ndocs + 0.5);
	if (k < 1)
		k = 1;
	if (k > ndocs - 1)
		k = ndocs - 1;
	return k;
}

/*
 * Runs the training query into the builder, and settles how many of its
 * documents are held out for validation.
 */
void
rnnlm_training_read_rows(RnnlmTraining *t, const char *query)
{
	uint64		rows,
				nonnull;
	rl_config	cfg;

	rnnlm_training_text_config(t, &cfg);
	if (rl_builder_create(&t->env, &cfg, &t->builder) != RL_OK)
		rnnlm_raise(&t->env, "starting training");
	rows = rnnlm_read_text_rows(query, "training query", add_document, t, &nonnull);
	t->query = MemoryContextStrdup(t->cxt, query);
	t->rows = rows;
	if (rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the training query returned no rows")));
	if (nonnull == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the training query returned only NULL values"),
				 errhint("NULL rows are skipped; there is no text to learn from.")));
	t->ndocs = rl_builder_documents(t->builder);
	t->nval_docs = validation_docs(t->opts.validation_fraction, t->ndocs);
}

/*
 * Turns the builder's documents into the training and validation token
 * streams: with the model's vocabulary when there is a model already (the
 * parent, or the coordinator's of a federated training), else learning it.
 */
void
rnnlm_training_build_streams(RnnlmTraining *t)
{
	rl_status	st;

	if (t->model)
		st = rl_builder_finish_vocab(t->builder, t->nval_docs, t->model->vocab,
									 &t->train, &t->ntrain, &t->val, &t->nval);
	else
		st = rl_builder_finish(t->builder, t->nval_docs, t->opts.max_vocab, &t->vocab,
							   &t->train, &t->ntrain, &t->val, &t->nval);
	if (st != RL_OK)
		rnnlm_raise(&t->env, "building the vocabulary");
	rl_builder_free(t->builder);
	t->builder = NULL;
	if (t->ntrain < 3)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the training data has too few tokens (%zu)", t->ntrain - 1),
				 errhint("Rows that are empty or only punctuation contain no tokens for the word tokenizer.")));
}

/*
 * Runs the training query and turns its rows into the training and
 * validation token streams (with the parent's vocabulary when fine-tuning),
 * then the embeddings_query, if any, against that vocabulary.
 */
void
rnnlm_training_read(RnnlmTraining *t, const char *query)
{
	rnnlm_training_read_rows(t, query);
	rnnlm_training_build_streams(t);
	/* the embeddings_query too, while the caller's transaction is open */
	rnnlm_pretrained_read(t);
}

/* Refuses a model that exceeds what may be stored. */
static void
check_model_limit(const RnnlmTraining *t, const rl_config *cfg, const rl_vocab *vocab)
{
	size_t		nparams,
				est;
	rl_env		env = t->env;

	if (rl_config_nparams(&env, cfg, &nparams) != RL_OK)
		rnnlm_raise(&env, "sizing the model");
	est = nparams * 4 + (size_t) vocab->offsets[vocab->size] + 4 * (size_t) vocab->size + 64;
	if (nparams > MAX_BLOB_BYTES / 4 || est > MAX_BLOB_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("rnnlm model would take %zu MB, over the 1 GB a stored model may take",
						est >> 20),
				 errhint("Lower hidden_size, embedding_dim, num_layers or max_vocab.")));
}

/* Refuses a run that needs more than rnnlm.max_memory. */
static void
check_run_limit(const rl_config *cfg, const rl_train_opts *to)
{
	size_t		need = rl_run_memory(cfg, to);

	if (need > RNNLM_MAX_MEMORY_BYTES())
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("rnnlm training would need %zu MB, more than rnnlm.max_memory (%d MB)",
						(need + (1 << 20) - 1) >> 20, rnnlm_max_memory_mb),
				 errhint("Lower hidden_size, embedding_dim, num_layers, max_vocab, batch_size or seq_len, or ask a superuser to raise rnnlm.max_memory.")));
}

/*
 * Creates the new model from the options and t->vocab, with its initial
 * weights (and the pretrained embeddings, if any); with_run also checks
 * that a run of it fits in rnnlm.max_memory here.
 */
void
rnnlm_training_create_model(RnnlmTraining *t, bool with_run)
{
	rl_train_opts to;
	rl_config	cfg;

	rnnlm_core_train_opts(&t->opts, &to);
	rnnlm_training_text_config(t, &cfg);
	cfg.cell = t->opts.cell;
	cfg.vocab_size = t->vocab->size;
	cfg.embedding_dim = t->opts.embedding_dim;
	cfg.hidden_size = t->opts.hidden_size;
	cfg.num_layers = t->opts.num_layers;
	check_model_limit(t, &cfg, t->vocab);
	if (with_run)
		check_run_limit(&cfg, &to);
	if (rl_model_create(&t->env, &cfg, t->vocab, &t->model) != RL_OK)
		rnnlm_raise(&t->env, "creating the model");
	t->vocab = NULL;			/* the model's now */
	rl_model_init_weights(t->model, (uint64_t) t->opts.seed, (float) t->opts.forget_bias);
	rnnlm_pretrained_apply(t);
}

/* Creates the model (unless fine-tuning) and the training run. */
void
rnnlm_training_start(RnnlmTraining *t)
{
	rl_train_opts to;

	rnnlm_core_train_opts(&t->opts, &to);
	if (t->model == NULL)
		rnnlm_training_create_model(t, true);
	else
	{
		check_model_limit(t, &t->model->cfg, t->model->vocab);
		check_run_limit(&t->model->cfg, &to);
	}
	if (rl_run_create(&t->env, t->model, t->train, t->ntrain, t->val, t->nval, &to,
					  &t->run) != RL_OK)
		rnnlm_raise(&t->env, "training");
}

/* Trains every remaining epoch in one go. */
void
rnnlm_training_run(RnnlmTraining *t)
{
	int			ended;
	rl_run_progress p;

	/* with shared memory, in slices of a second, each reported (progress.c) */
	rnnlm_progress_begin(t->name);
	while (!rl_run_done(t->run))
	{
		if (rl_run_advance(t->run, rnnlm_progress_active() ? 1.0 : INFINITY, &ended) != RL_OK)
			rnnlm_raise(&t->env, "training");
		rl_run_progress_get(t->run, &p);
		rnnlm_progress_update(&p);
	}
	rnnlm_progress_end();
}

/*
 * Ends the run: the kept epoch's weights, serialised into t->blob.  The run
 * (the trainer's activations, gradients and Adam moments, by far the most
 * memory) and the token streams are freed first, so that storing the model,
 * which copies it several times, does not add to the training's peak.
 */
void
rnnlm_training_finish(RnnlmTraining *t)
{
	if (rl_run_finish(t->run, &t->res) != RL_OK)
		rnnlm_raise(&t->env, "training");
	{
		MemoryContext old = MemoryContextSwitchTo(t->cxt);

		t->history = rnnlm_training_history_json(t);
		MemoryContextSwitchTo(old);
	}
	rl_run_free(t->run);
	t->run = NULL;
	t->surprise = rnnlm_surprise_quantiles(t);
	rl_free(&t->env, t->train);
	rl_free(&t->env, t->val);
	t->train = t->val = NULL;
	if (rl_model_serialize(&t->env, t->model, &t->blob, &t->blob_len) != RL_OK)
		rnnlm_raise(&t->env, "serializing the model");
}

/* Appends , "key": v with every digit a double has (null when not finite). */
static void
append_exact(StringInfo s, const char *key, double v)
{
	if (isnan(v) || isinf(v))
		appendStringInfo(s, ", \"%s\": null", key);
	else
		appendStringInfo(s, ", \"%s\": %.17g", key, v);
}

/* Epochs as a JSON array (rnnlm_training_history's rows), in the current memory context. */
char *
rnnlm_history_json(const rl_epoch_stats *h, int32 n)
{
	StringInfoData s;
	int32		i;

	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (i = 0; i < n; i++)
	{
		appendStringInfo(&s, "%s{\"epoch\": %d", i ? ", " : "", h[i].epoch);
		append_exact(&s, "learning_rate", h[i].learning_rate);
		append_exact(&s, "train_loss", h[i].train_loss);
		append_exact(&s, "val_loss", h[i].val_loss);
		append_exact(&s, "seconds", h[i].seconds);
		appendStringInfoChar(&s, '}');
	}
	appendStringInfoChar(&s, ']');
	return s.data;
}

/* The finished epochs of the training as JSON, while the run goes on or once finished. */
char *
rnnlm_training_history_json(RnnlmTraining *t)
{
	const rl_epoch_stats *h;
	int32_t		n;

	if (t->run == NULL)
		return t->history;		/* finished */
	h = rl_run_history(t->run, &n);
	return rnnlm_history_json(h, n);
}

/* Appends , "key": "value" (JSON-escaped; null for NULL). */
static void
append_text(StringInfo s, const char *key, const char *value)
{
	appendStringInfo(s, ", \"%s\": ", key);
	if (value)
		escape_json(s, value);
	else
		appendStringInfoString(s, "null");
}

/*
 * How the version was made, as a JSON object: who trained it and when, from
 * how much data, with which rnnlm, backend and precision.  The options are
 * the model row's own column; the training query is kept apart (catalog.c).
 */
static char *
training_provenance(const RnnlmTraining *t)
{
	StringInfoData s;
	char	   *role = GetUserNameFromId(GetUserId(), true);

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"trained_by\": ");
	if (role)
		escape_json(&s, role);
	else
		appendStringInfoString(&s, "null");
	append_text(&s, "started_at", timestamptz_to_str(t->started_at));
	append_text(&s, "finished_at", timestamptz_to_str(GetCurrentTimestamp()));
	if (t->query)				/* read here, not on the shards of a federated training */
		appendStringInfo(&s, ", \"rows\": " UINT64_FORMAT ", \"documents\": %zu, "
						 "\"validation_documents\": %zu, \"train_tokens\": %zu, \"val_tokens\": %zu",
						 t->rows, t->ndocs - t->nval_docs, t->nval_docs,
						 (size_t) t->res.train_tokens, (size_t) t->res.val_tokens);
	append_text(&s, "rnnlm_version", RNNLM_LIBRARY_VERSION);
	append_text(&s, "backend", rnnlm_backend_setting());
	append_text(&s, "precision", rl_precision_name(t->opts.precision));
	append_text(&s, "parent", t->opts.init_from);
	appendStringInfoChar(&s, '}');
	return s.data;
}

/* Stores the finished model under its name (callers are SPI-connected). */
void
rnnlm_training_store(RnnlmTraining *t)
{
	RnnlmModelRow row;

	memset(&row, 0, sizeof(row));
	row.name = t->name;
	row.replace = t->opts.replace;
	row.opts = &t->opts;
	row.model = t->model;
	row.result = &t->res;
	row.blob = t->blob;
	row.blob_len = t->blob_len;
	row.history = rnnlm_training_history_json(t);
	row.parent = t->opts.init_from;
	row.surprise = t->surprise;
	row.provenance = training_provenance(t);
	row.query = t->query;
	if (!rnnlm_catalog_store(&row))
		raise_exists(t->name,
					 "Another session stored it while this one was training, or it belongs to a role whose models you cannot see.",
					 "Pass {\"replace\": true} to replace it.");
}

/* What rnnlm_train returns, as JSON text allocated in cxt. */
char *
rnnlm_training_summary(RnnlmTraining *t, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	const rl_config *cfg = &t->model->cfg;
	const rl_train_result *res = &t->res;
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"model\": ");
	escape_json(&s, t->name);
	appendStringInfo(&s, ", \"cell\": \"%s\", \"tokenizer\": \"%s\"",
					 rl_cell_name(cfg->cell), rl_tokenizer_name(cfg->tokenizer));
	appendStringInfo(&s, ", \"vocab_size\": %d, \"parameters\": %zu, \"epochs\": %d",
					 cfg->vocab_size, t->model->nparams, t->opts.epochs);
	appendStringInfo(&s, ", \"epochs_run\": %d, \"stopped_early\": %s, \"kept_epoch\": %d",
					 res->epochs_run, res->stopped_early ? "true" : "false", res->kept_epoch);
	if (res->best_epoch > 0)
		appendStringInfo(&s, ", \"best_epoch\": %d", res->best_epoch);
	else
		appendStringInfoString(&s, ", \"best_epoch\": null");
	appendStringInfo(&s, ", \"documents\": %zu, \"validation_documents\": %zu",
					 t->ndocs, t->nval_docs);
	appendStringInfo(&s, ", \"train_tokens\": %zu, \"val_tokens\": %zu",
					 res->train_tokens, res->val_tokens);
	rnnlm_append_json_real(&s, "train_loss", res->train_loss);
	rnnlm_append_json_real(&s, "val_loss", res->val_loss);
	rnnlm_append_json_real(&s, "val_perplexity", exp(res->val_loss));
	appendStringInfo(&s, ", \"size_bytes\": %zu", t->blob_len);
	rnnlm_append_json_real(&s, "seconds", res->seconds);
	rnnlm_append_json_real(&s, "tokens_per_second", res->tokens_per_second);
	if (t->opts.embeddings_query)
		appendStringInfo(&s, ", \"pretrained_tokens\": " INT64_FORMAT, t->pretrained.found);
	if (t->opts.init_from)
	{
		appendStringInfoString(&s, ", \"parent\": ");
		escape_json(&s, t->opts.init_from);
	}
	if (t->summary_extra)
		appendStringInfo(&s, ", %s", t->summary_extra);
	appendStringInfoChar(&s, '}');
	MemoryContextSwitchTo(old);
	return s.data;
}

/* The training query argument, which must not be NULL. */
char *
rnnlm_training_query_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("training query must not be NULL")));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * Trains and stores model name on the rows of query with options, within
 * the caller's statement; the summary as JSON text in the caller's context.
 */
char *
rnnlm_train_model(const char *name, const char *query, Jsonb *options)
{
	MemoryContext caller = CurrentMemoryContext;
	RnnlmOptions opts;
	RnnlmTraining t;
	char	   *summary;

	(void) rnnlm_replacement_options(name, options, &opts, false);
	rnnlm_prepare_compute();

	SPI_connect();
	rnnlm_training_init(&t, name, &opts, CurrentMemoryContext, true);
	rnnlm_training_check_target(&t);
	rnnlm_training_load_parent(&t);
	rnnlm_training_read(&t, query);
	rnnlm_training_start(&t);
	rnnlm_training_run(&t);
	rnnlm_training_finish(&t);
	rnnlm_training_store(&t);
	summary = rnnlm_training_summary(&t, caller);
	rnnlm_training_free(&t);
	SPI_finish();
	return summary;
}

/* rnnlm_train(model_name, training_query, options): trains and stores a model. */
Datum
rnnlm_train(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_new_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	char	   *query = rnnlm_training_query_arg(fcinfo, 1);

	PreventCommandIfReadOnly("rnnlm_train()");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(
		rnnlm_train_model(name, query, PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2)))));
}
