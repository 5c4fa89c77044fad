/*
 * options.c
 *		The jsonb options of rnnlm_train: every key is checked for its type and
 *		range, unknown keys are refused, and the defaults that depend on the
 *		tokenizer are filled in.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

typedef enum OptKind
{
	OPT_INT,
	OPT_REAL,
	OPT_BOOL,
	OPT_ENUM
} OptKind;

typedef struct OptSpec
{
	const char *key;
	OptKind		kind;
	double		min;
	double		max;
	bool		min_open;		/* min itself is not allowed */
	const char *choices;		/* OPT_ENUM: "a, b, c" */
} OptSpec;

static const OptSpec opt_specs[] = {
	{"cell", OPT_ENUM, 0, 0, false, "lstm, gru, rnn"},
	{"tokenizer", OPT_ENUM, 0, 0, false, "word, char"},
	{"max_vocab", OPT_INT, 0, RL_MAX_VOCAB - RL_NUM_SPECIAL, false, NULL},
	{"lowercase", OPT_BOOL, 0, 0, false, NULL},
	{"embedding_dim", OPT_INT, 1, RL_MAX_EMBED, false, NULL},
	{"hidden_size", OPT_INT, 1, RL_MAX_HIDDEN, false, NULL},
	{"num_layers", OPT_INT, 1, RL_MAX_LAYERS, false, NULL},
	{"dropout", OPT_REAL, 0, 0.95, false, NULL},
	{"epochs", OPT_INT, 1, 100000, false, NULL},
	{"batch_size", OPT_INT, 1, 4096, false, NULL},
	{"seq_len", OPT_INT, 1, 10000, false, NULL},
	{"learning_rate", OPT_REAL, 0, 10, true, NULL},
	{"clip_norm", OPT_REAL, 0, 1e6, false, NULL},
	{"validation_fraction", OPT_REAL, 0, 0.9, false, NULL},
	{"seed", OPT_INT, 0, 9007199254740992.0, false, NULL},
	{"replace", OPT_BOOL, 0, 0, false, NULL},
};

#define N_OPTS (sizeof(opt_specs) / sizeof(opt_specs[0]))

/* The list of valid keys, for error hints. */
static char *
valid_keys(void)
{
	StringInfoData s;
	size_t		i;

	initStringInfo(&s);
	for (i = 0; i < N_OPTS; i++)
		appendStringInfo(&s, "%s%s", i ? ", " : "", opt_specs[i].key);
	return s.data;
}

/* Raises the standard error for a value outside its range. */
static void
range_error(const OptSpec *spec)
{
	if (spec->kind == OPT_INT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm option \"%s\" must be an integer between %.0f and %.0f",
						spec->key, spec->min, spec->max)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("rnnlm option \"%s\" must be a number %s %g and at most %g",
					spec->key, spec->min_open ? "greater than" : "of at least",
					spec->min, spec->max)));
}

/* Checks one key's value and stores it into opts. */
static void
set_option(RnnlmOptions *opts, const OptSpec *spec, JsonbValue *v,
		   bool *lowercase_set, bool *max_vocab_set)
{
	double		num = 0;
	bool		flag = false;
	char	   *str = NULL;

	switch (spec->kind)
	{
		case OPT_INT:
		case OPT_REAL:
			if (v->type != jbvNumeric)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("rnnlm option \"%s\" must be a number", spec->key)));
			/* through text: a value beyond float8's range becomes +-inf or 0 */
			num = strtod(DatumGetCString(DirectFunctionCall1(numeric_out,
															 NumericGetDatum(v->val.numeric))),
						 NULL);
			if (isnan(num) || num < spec->min || num > spec->max ||
				(spec->min_open && num <= spec->min) ||
				(spec->kind == OPT_INT && num != floor(num)))
				range_error(spec);
			break;
		case OPT_BOOL:
			if (v->type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("rnnlm option \"%s\" must be true or false", spec->key)));
			flag = v->val.boolean;
			break;
		case OPT_ENUM:
			if (v->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("rnnlm option \"%s\" must be a string, one of: %s",
								spec->key, spec->choices)));
			str = pnstrdup(v->val.string.val, v->val.string.len);
			break;
	}

	if (strcmp(spec->key, "cell") == 0)
	{
		if (strcmp(str, "lstm") == 0)
			opts->cell = RL_CELL_LSTM;
		else if (strcmp(str, "gru") == 0)
			opts->cell = RL_CELL_GRU;
		else if (strcmp(str, "rnn") == 0)
			opts->cell = RL_CELL_RNN;
		else
			goto bad_choice;
	}
	else if (strcmp(spec->key, "tokenizer") == 0)
	{
		if (strcmp(str, "word") == 0)
			opts->tokenizer = RL_TOK_WORD;
		else if (strcmp(str, "char") == 0)
			opts->tokenizer = RL_TOK_CHAR;
		else
			goto bad_choice;
	}
	else if (strcmp(spec->key, "max_vocab") == 0)
	{
		opts->max_vocab = (int32) num;
		*max_vocab_set = true;
	}
	else if (strcmp(spec->key, "lowercase") == 0)
	{
		opts->lowercase = flag;
		*lowercase_set = true;
	}
	else if (strcmp(spec->key, "embedding_dim") == 0)
		opts->embedding_dim = (int32) num;
	else if (strcmp(spec->key, "hidden_size") == 0)
		opts->hidden_size = (int32) num;
	else if (strcmp(spec->key, "num_layers") == 0)
		opts->num_layers = (int32) num;
	else if (strcmp(spec->key, "dropout") == 0)
		opts->dropout = num;
	else if (strcmp(spec->key, "epochs") == 0)
		opts->epochs = (int32) num;
	else if (strcmp(spec->key, "batch_size") == 0)
		opts->batch_size = (int32) num;
	else if (strcmp(spec->key, "seq_len") == 0)
		opts->seq_len = (int32) num;
	else if (strcmp(spec->key, "learning_rate") == 0)
		opts->learning_rate = num;
	else if (strcmp(spec->key, "clip_norm") == 0)
		opts->clip_norm = num;
	else if (strcmp(spec->key, "validation_fraction") == 0)
		opts->validation_fraction = num;
	else if (strcmp(spec->key, "seed") == 0)
		opts->seed = (int64) num;
	else if (strcmp(spec->key, "replace") == 0)
		opts->replace = flag;
	return;

bad_choice:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("rnnlm option \"%s\" has invalid value \"%s\"", spec->key, str),
			 errhint("Valid values are: %s.", spec->choices)));
}

/* Parses and validates the options object (NULL = all defaults). */
void
rnnlm_parse_options(Jsonb *options, RnnlmOptions *opts)
{
	bool		lowercase_set = false;
	bool		max_vocab_set = false;

	opts->cell = RL_CELL_LSTM;
	opts->tokenizer = RL_TOK_WORD;
	opts->max_vocab = 10000;
	opts->lowercase = true;
	opts->embedding_dim = 256;
	opts->hidden_size = 512;
	opts->num_layers = 2;
	opts->dropout = 0.0;
	opts->epochs = 10;
	opts->batch_size = 32;
	opts->seq_len = 35;
	opts->learning_rate = 0.001;
	opts->clip_norm = 5.0;
	opts->validation_fraction = 0.1;
	opts->seed = 42;
	opts->replace = false;

	if (options != NULL)
	{
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;

		if (!JB_ROOT_IS_OBJECT(options))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rnnlm options must be a JSON object"),
					 errhint("For example '{\"epochs\": 5, \"cell\": \"gru\"}'.")));
		it = JsonbIteratorInit(&options->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *key;
			size_t		i;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(v.val.string.val, v.val.string.len);
			tok = JsonbIteratorNext(&it, &v, true);
			for (i = 0; i < N_OPTS; i++)
				if (strcmp(key, opt_specs[i].key) == 0)
					break;
			if (i == N_OPTS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown rnnlm option \"%s\"", key),
						 errhint("Valid options are: %s.", valid_keys())));
			set_option(opts, &opt_specs[i], &v, &lowercase_set, &max_vocab_set);
		}
	}

	/* defaults that depend on the tokenizer */
	if (opts->tokenizer == RL_TOK_CHAR)
	{
		if (!max_vocab_set)
			opts->max_vocab = 0;
		if (!lowercase_set)
			opts->lowercase = false;
	}
}

/* The effective options, defaults included, as stored with the model. */
Jsonb *
rnnlm_options_to_jsonb(const RnnlmOptions *o)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s,
					 "{\"cell\": \"%s\", \"tokenizer\": \"%s\", \"max_vocab\": %d, "
					 "\"lowercase\": %s, \"embedding_dim\": %d, \"hidden_size\": %d, "
					 "\"num_layers\": %d, \"dropout\": %.15g, \"epochs\": %d, "
					 "\"batch_size\": %d, \"seq_len\": %d, \"learning_rate\": %.15g, "
					 "\"clip_norm\": %.15g, \"validation_fraction\": %.15g, "
					 "\"seed\": " INT64_FORMAT "}",
					 rl_cell_name(o->cell), rl_tokenizer_name(o->tokenizer),
					 o->max_vocab, o->lowercase ? "true" : "false",
					 o->embedding_dim, o->hidden_size, o->num_layers, o->dropout,
					 o->epochs, o->batch_size, o->seq_len, o->learning_rate,
					 o->clip_norm, o->validation_fraction, o->seed);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
