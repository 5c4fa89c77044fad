/*
 * train.c
 *		rnnlm_train(model_name, training_query, options): read the documents
 *		through SPI, build the vocabulary, train, store.
 *
 * Everything the core allocates lives in one memory context that is
 * deleted on the way out, or with its parent if an ERROR (a cancel, a
 * timeout) unwinds through here.  The model row is written only at the end,
 * in the caller's transaction, so a failed or cancelled call leaves the
 * table as it was.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(rnnlm_train);

/* Bytea values are limited to 1 GB. */
#define MAX_BLOB_BYTES ((size_t) MaxAllocSize - VARHDRSZ)

typedef struct TrainInput
{
	rl_env	   *env;
	rl_builder *builder;
} TrainInput;

/* Row callback: adds one document to the builder. */
static void
add_document(void *arg, const char *utf8, size_t len)
{
	TrainInput *in = arg;

	if (rl_builder_add(in->builder, utf8, len) != RL_OK)
		rnnlm_raise(in->env, "reading the training data");
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

/* Trains a model on the rows of a query and stores it. */
Datum
rnnlm_train(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	char	   *query;
	RnnlmOptions opts;
	MemoryContext cxt;
	rl_env		env;
	TrainInput	in;
	uint64		rows,
				nonnull;
	size_t		ndocs,
				nval_docs,
				ntrain,
				nval,
				nparams,
				est;
	rl_vocab   *vocab;
	int32_t    *train,
			   *val;
	rl_config	cfg;
	rl_model   *model;
	rl_train_opts to;
	rl_train_result res;
	uint8_t    *blob;
	size_t		blob_len;
	RnnlmModelRow row;
	StringInfoData s;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("training query must not be NULL")));
	query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	PreventCommandIfReadOnly("rnnlm_train()");
	rnnlm_parse_options(PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), &opts);
	rnnlm_prepare_blas();

	SPI_connect();
	if (opts.replace)
		rnnlm_catalog_check_owner(name);
	else if (rnnlm_catalog_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("rnnlm model \"%s\" already exists", name),
				 errhint("Pass {\"replace\": true} to replace it, or drop it with rnnlm_drop().")));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "rnnlm train",
								ALLOCSET_DEFAULT_SIZES);
	rnnlm_env_init(&env, cxt, true);
	if (rl_builder_create(&env, opts.tokenizer, opts.lowercase, &in.builder) != RL_OK)
		rnnlm_raise(&env, "starting training");
	in.env = &env;
	rows = rnnlm_read_text_rows(query, "training query", add_document, &in, &nonnull);
	if (rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the training query returned no rows")));
	if (nonnull == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the training query returned only NULL values"),
				 errhint("NULL rows are skipped; there is no text to learn from.")));

	ndocs = rl_builder_documents(in.builder);
	nval_docs = validation_docs(opts.validation_fraction, ndocs);
	if (rl_builder_finish(in.builder, nval_docs, opts.max_vocab, &vocab,
						  &train, &ntrain, &val, &nval) != RL_OK)
		rnnlm_raise(&env, "building the vocabulary");
	rl_builder_free(in.builder);
	if (ntrain < 3)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the training data has too few tokens (%zu)", ntrain - 1),
				 errhint("Rows that are empty or only punctuation contain no tokens for the word tokenizer.")));

	cfg.cell = opts.cell;
	cfg.tokenizer = opts.tokenizer;
	cfg.lowercase = opts.lowercase;
	cfg.vocab_size = vocab->size;
	cfg.embedding_dim = opts.embedding_dim;
	cfg.hidden_size = opts.hidden_size;
	cfg.num_layers = opts.num_layers;
	if (rl_config_nparams(&env, &cfg, &nparams) != RL_OK)
		rnnlm_raise(&env, "sizing the model");
	est = nparams * 4 + (size_t) vocab->offsets[vocab->size] + 4 * (size_t) vocab->size + 64;
	if (nparams > MAX_BLOB_BYTES / 4 || est > MAX_BLOB_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("rnnlm model would take %zu MB, over the 1 GB a stored model may take",
						est >> 20),
				 errhint("Lower hidden_size, embedding_dim, num_layers or max_vocab.")));

	{
		size_t		need = rl_train_memory(&cfg, opts.batch_size, opts.seq_len, opts.dropout);

		if (need > RNNLM_MAX_MEMORY_BYTES())
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("rnnlm training would need %zu MB, more than rnnlm.max_memory (%d MB)",
							(need + (1 << 20) - 1) >> 20, rnnlm_max_memory_mb),
					 errhint("Lower hidden_size, embedding_dim, num_layers, max_vocab, batch_size or seq_len, or ask a superuser to raise rnnlm.max_memory.")));
	}
	if (rl_model_create(&env, &cfg, vocab, &model) != RL_OK)
		rnnlm_raise(&env, "creating the model");
	rl_model_init_weights(model, (uint64_t) opts.seed, 1.0f);

	to.epochs = opts.epochs;
	to.batch_size = opts.batch_size;
	to.seq_len = opts.seq_len;
	to.learning_rate = opts.learning_rate;
	to.clip_norm = opts.clip_norm;
	to.dropout = opts.dropout;
	to.seed = (uint64_t) opts.seed;
	if (rl_train(&env, model, train, ntrain, val, nval, &to, &res) != RL_OK)
		rnnlm_raise(&env, "training");

	if (rl_model_serialize(&env, model, &blob, &blob_len) != RL_OK)
		rnnlm_raise(&env, "serializing the model");

	row.name = name;
	row.replace = opts.replace;
	row.opts = &opts;
	row.model = model;
	row.result = &res;
	row.blob = blob;
	row.blob_len = blob_len;
	if (!rnnlm_catalog_store(&row))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("rnnlm model \"%s\" already exists", name),
				 errdetail("Another session stored it while this one was training, or it belongs to a role whose models you cannot see."),
				 errhint("Pass {\"replace\": true} to replace it.")));

	/* the summary is built after SPI_finish, in the caller's context */
	MemoryContextDelete(cxt);
	SPI_finish();

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"model\": ");
	escape_json(&s, name);
	appendStringInfo(&s, ", \"cell\": \"%s\", \"tokenizer\": \"%s\"",
					 rl_cell_name(cfg.cell), rl_tokenizer_name(cfg.tokenizer));
	appendStringInfo(&s, ", \"vocab_size\": %d, \"parameters\": %zu, \"epochs\": %d",
					 cfg.vocab_size, nparams, opts.epochs);
	appendStringInfo(&s, ", \"documents\": %zu, \"validation_documents\": %zu",
					 ndocs, nval_docs);
	appendStringInfo(&s, ", \"train_tokens\": %zu, \"val_tokens\": %zu",
					 res.train_tokens, res.val_tokens);
	rnnlm_append_json_real(&s, "train_loss", res.train_loss);
	rnnlm_append_json_real(&s, "val_loss", res.val_loss);
	rnnlm_append_json_real(&s, "val_perplexity", exp(res.val_loss));
	appendStringInfo(&s, ", \"size_bytes\": %zu", blob_len);
	rnnlm_append_json_real(&s, "seconds", res.seconds);
	rnnlm_append_json_real(&s, "tokens_per_second", res.tokens_per_second);
	appendStringInfoChar(&s, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
