/*
 * transfer.c
 *		rnnlm_export and rnnlm_import: moving a model between databases as its
 *		model file (doc/format.md).  An import is validated completely, under
 *		rnnlm.max_memory, before anything is stored.
 */
#include "rnnlm_pg.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(rnnlm_export);
PG_FUNCTION_INFO_V1(rnnlm_import);

/* The model file of a model the caller may use (its current version, or the one referenced). */
Datum
rnnlm_export(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_ref(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	MemoryContext caller = CurrentMemoryContext;
	int64		revision;
	bytea	   *blob;
	RnnlmRef	ref;

	SPI_connect();
	if (rnnlm_parse_ref(name, &ref))
	{
		char		sha[65];

		blob = rnnlm_catalog_version_weights(ref.name, rnnlm_catalog_resolve_ref(&ref, sha), sha, caller);
	}
	else
		blob = rnnlm_catalog_weights(name, &revision, caller);
	SPI_finish();
	if (blob == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", name),
				 errhint("SELECT name FROM rnnlm.models lists the models you can use.")));
	PG_RETURN_BYTEA_P(blob);
}

/* Validates a model file and stores it under a name owned by the caller. */
Datum
rnnlm_import(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_new_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	bool		replace = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);
	bytea	   *data;
	MemoryContext cxt;
	rl_env		env;
	rl_model   *model;
	RnnlmModelRow row;
	StringInfoData s;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model data must not be NULL")));
	PreventCommandIfReadOnly("rnnlm_import()");
	data = PG_GETARG_BYTEA_PP(1);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "rnnlm import",
								ALLOCSET_DEFAULT_SIZES);
	rnnlm_env_init(&env, cxt, false);
	if (rl_model_deserialize(&env, (const uint8 *) VARDATA_ANY(data),
							 VARSIZE_ANY_EXHDR(data), &model) != RL_OK)
	{
		if (env.status == RL_ERR_FORMAT)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid rnnlm model data: %s", env.errmsg),
					 errhint("Pass the unchanged output of rnnlm_export().")));
		rnnlm_raise(&env, "importing the model");
	}

	SPI_connect();
	if (replace)
		rnnlm_catalog_check_owner(name);
	memset(&row, 0, sizeof(row));
	row.name = name;
	row.replace = replace;
	row.opts = NULL;
	row.model = model;
	row.result = NULL;
	row.blob = (const uint8 *) VARDATA_ANY(data);
	row.blob_len = VARSIZE_ANY_EXHDR(data);
	if (!rnnlm_catalog_store(&row))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("rnnlm model \"%s\" already exists", name),
				 errhint("Pass replace => true to replace it.")));
	SPI_finish();

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"model\": ");
	escape_json(&s, name);
	appendStringInfo(&s, ", \"cell\": \"%s\", \"tokenizer\": \"%s\", \"vocab_size\": %d, "
					 "\"embedding_dim\": %d, \"hidden_size\": %d, \"num_layers\": %d, "
					 "\"parameters\": %zu, \"size_bytes\": %zu}",
					 rl_cell_name(model->cfg.cell), rl_tokenizer_name(model->cfg.tokenizer),
					 model->cfg.vocab_size, model->cfg.embedding_dim, model->cfg.hidden_size,
					 model->cfg.num_layers, model->nparams, (size_t) VARSIZE_ANY_EXHDR(data));
	MemoryContextDelete(cxt);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
