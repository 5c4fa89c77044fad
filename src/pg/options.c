/*
 * options.c
 *		The jsonb options of rnnlm_train and rnnlm_train_async, from one table.
 *
 * Every option is one row of opt_specs: its key, its type, where it lives in
 * RnnlmOptions, its default, its range or choices, and whether it is stored
 * with the model.  Parsing, defaults, range errors and the jsonb echo kept in
 * rnnlm.models all read that row, so a new option is one row (plus the code
 * that uses it).  Unknown keys are refused.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/numeric.h"

typedef enum OptKind
{
	OPT_INT,					/* int32, or int64 for "seed" */
	OPT_REAL,					/* double */
	OPT_BOOL,					/* bool */
	OPT_ENUM,					/* int32 index into choices' values */
	OPT_NAME,					/* char *, a model name */
	OPT_TEXT					/* char *, UTF-8 text, or NULL */
} OptKind;

typedef struct OptChoice
{
	const char *name;
	int			value;
} OptChoice;

typedef struct OptSpec
{
	const char *key;
	OptKind		kind;
	size_t		offset;			/* of the field in RnnlmOptions */
	double		def;			/* the default (OPT_ENUM: its value) */
	double		min;
	double		max;
	bool		min_open;		/* min itself is not allowed */
	const OptChoice *choices;	/* OPT_ENUM, ended by a NULL name */
	int			stored;			/* part of rnnlm.models.options: STORED_* */
	bool		federated_only; /* only rnnlm_train_federated takes it */
	int			replacing;		/* how a replacement inherits it: RNNLM_OPT_* */
} OptSpec;

/* OptSpec.stored: false, true, or only when the caller gave it. */
#define STORED_WHEN_GIVEN 2

static const OptChoice cell_choices[] = {
	{"lstm", RL_CELL_LSTM}, {"gru", RL_CELL_GRU}, {"rnn", RL_CELL_RNN}, {NULL, 0}
};
/* The core's precisions, filled in by rnnlm_options_init. */
static OptChoice precision_choices[RL_PREC_AUTO + 2];
/* The core's tokenizers and normalisations, filled in by rnnlm_options_init. */
static OptChoice tokenizer_choices[RL_NUM_TOKENIZERS + 1];
static OptChoice normalize_choices[RL_NORM_NFKC + 2];

#define OFF(field) offsetof(RnnlmOptions, field)

/*
 * The options.  The defaults of max_vocab and lowercase depend on the
 * tokenizer, and keep_best's on whether there is validation data: those
 * are settled in rnnlm_parse_options and when the data is read.
 */
static const OptSpec opt_specs[] = {
	{"cell", OPT_ENUM, OFF(cell), RL_CELL_LSTM, 0, 0, false, cell_choices, true, false, RNNLM_OPT_FROM_PARENT},
	{"tokenizer", OPT_ENUM, OFF(tokenizer), RL_TOK_WORD, 0, 0, false, tokenizer_choices, true, false, RNNLM_OPT_FROM_PARENT},
	{"max_vocab", OPT_INT, OFF(max_vocab), 10000, 0, RL_MAX_VOCAB - RL_NUM_SPECIAL, false, NULL, true, false, RNNLM_OPT_FROM_PARENT | RNNLM_OPT_TOKENIZER_DEFAULT},
	{"lowercase", OPT_BOOL, OFF(lowercase), 1, 0, 0, false, NULL, true, false, RNNLM_OPT_FROM_PARENT | RNNLM_OPT_TOKENIZER_DEFAULT},
	{"normalize", OPT_ENUM, OFF(normalize), RL_NORM_NONE, 0, 0, false, normalize_choices, true, false, RNNLM_OPT_FROM_PARENT},
	{"filters", OPT_TEXT, OFF(filters), 0, 0, RL_MAX_FILTER_BYTES, false, NULL, true, false, RNNLM_OPT_FROM_PARENT | RNNLM_OPT_WORD_ONLY},
	{"split_on_punctuation", OPT_BOOL, OFF(split_on_punctuation), 0, 0, 0, false, NULL, true, false, RNNLM_OPT_FROM_PARENT | RNNLM_OPT_WORD_ONLY},
	{"embedding_dim", OPT_INT, OFF(embedding_dim), 256, 1, RL_MAX_EMBED, false, NULL, true, false, RNNLM_OPT_FROM_PARENT},
	{"hidden_size", OPT_INT, OFF(hidden_size), 512, 1, RL_MAX_HIDDEN, false, NULL, true, false, RNNLM_OPT_FROM_PARENT},
	{"num_layers", OPT_INT, OFF(num_layers), 2, 1, RL_MAX_LAYERS, false, NULL, true, false, RNNLM_OPT_FROM_PARENT},
	{"dropout", OPT_REAL, OFF(dropout), 0.0, 0, 0.95, false, NULL, true},
	{"epochs", OPT_INT, OFF(epochs), 10, 1, 100000, false, NULL, true},
	{"batch_size", OPT_INT, OFF(batch_size), 32, 1, 4096, false, NULL, true},
	{"seq_len", OPT_INT, OFF(seq_len), 35, 1, 10000, false, NULL, true},
	{"learning_rate", OPT_REAL, OFF(learning_rate), 0.001, 0, 10, true, NULL, true},
	{"clip_norm", OPT_REAL, OFF(clip_norm), 5.0, 0, 1e6, false, NULL, true},
	{"validation_fraction", OPT_REAL, OFF(validation_fraction), 0.1, 0, 0.9, false, NULL, true},
	{"seed", OPT_INT, OFF(seed), 42, 0, 9007199254740992.0, false, NULL, true},
	{"forget_bias", OPT_REAL, OFF(forget_bias), RNNLM_DEFAULT_FORGET_BIAS, -100, 100, false, NULL, true},
	{"keep_best", OPT_BOOL, OFF(keep_best), 1, 0, 0, false, NULL, true},
	{"early_stopping_patience", OPT_INT, OFF(early_stopping_patience), 0, 0, 100000, false, NULL, true},
	{"lr_decay", OPT_REAL, OFF(lr_decay), 1.0, 0, 1, true, NULL, true},
	{"lr_patience", OPT_INT, OFF(lr_patience), 1, 1, 100000, false, NULL, true},
	{"init_from", OPT_NAME, OFF(init_from), 0, 0, 0, false, NULL, true, false, RNNLM_OPT_DATA_SOURCE},
	{"checkpoint_minutes", OPT_REAL, OFF(checkpoint_minutes), 10, 0, 10080, true, NULL, true},
	{"precision", OPT_ENUM, OFF(precision), RL_PREC_FP32, 0, 0, false, precision_choices, true},
	{"embeddings_query", OPT_TEXT, OFF(embeddings_query), 0, 0, 1 << 20, false, NULL, true, false, RNNLM_OPT_DATA_SOURCE | RNNLM_OPT_OWNER_ONLY},
	{"freeze_embeddings", OPT_BOOL, OFF(freeze_embeddings), 0, 0, 0, false, NULL, true, false, RNNLM_OPT_DATA_SOURCE},
	{"sampled_softmax", OPT_INT, OFF(sampled_softmax), 0, 0, 1000000, false, NULL, true},
	{"keep_versions", OPT_INT, OFF(keep_versions), 1, 0, 1000, false, NULL, true},
	{"round_steps", OPT_INT, OFF(round_steps), 0, 0, 1000000000, false, NULL, STORED_WHEN_GIVEN, true},
	{"replace", OPT_BOOL, OFF(replace), 0, 0, 0, false, NULL, false},
};

#define N_OPTS ((int) (sizeof(opt_specs) / sizeof(opt_specs[0])))

#define N_OPTS_MAX 64

StaticAssertDecl(sizeof(opt_specs) / sizeof(opt_specs[0]) <= N_OPTS_MAX,
				 "RnnlmOptions.given has one bit per option");

/* The field of opts that spec describes. */
static void *
field(RnnlmOptions *opts, const OptSpec *spec)
{
	return (char *) opts + spec->offset;
}

/*
 * The keys, as a text[] Datum, of the options that a replacement treats in
 * one of the ways flags names (RNNLM_OPT_*; RNNLM_OPT_FEDERATED: those only
 * rnnlm_train_federated takes).
 */
Datum
rnnlm_option_keys(int flags)
{
	Datum		keys[N_OPTS_MAX];
	int			i,
				n = 0;

	for (i = 0; i < N_OPTS; i++)
		if ((opt_specs[i].replacing & flags) != 0 ||
			((flags & RNNLM_OPT_FEDERATED) && opt_specs[i].federated_only))
			keys[n++] = CStringGetTextDatum(opt_specs[i].key);
	return PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * The options as every role that may use the model reads them
 * (rnnlm.models.options): an owner-only one, being SQL that may name what
 * a grantee cannot read, shows only as true when it was given.
 */
Jsonb *
rnnlm_options_shown(const RnnlmOptions *o)
{
	StringInfoData s;
	int			i,
				n = 0;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (i = 0; i < N_OPTS; i++)
		if ((opt_specs[i].replacing & RNNLM_OPT_OWNER_ONLY) && opt_specs[i].kind == OPT_TEXT &&
			*(char *const *) ((const char *) o + opt_specs[i].offset) != NULL)
			appendStringInfo(&s, "%s\"%s\": true", n++ ? ", " : "", opt_specs[i].key);
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(rnnlm_options_to_jsonb(o)),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data))));
}

/* The row of a key, or -1. */
static int
find_spec(const char *key)
{
	int			i;

	for (i = 0; i < N_OPTS; i++)
		if (strcmp(key, opt_specs[i].key) == 0)
			return i;
	return -1;
}

static const char *choice_name(const OptSpec *spec, int value);

/* Fills the choices that come from the core (the precisions of training, not int8); at module load. */
void
rnnlm_options_init(void)
{
	int			i;

	for (i = 0; i <= RL_PREC_AUTO; i++)
	{
		precision_choices[i].name = rl_precision_name((rl_precision) i);
		precision_choices[i].value = i;
	}
	for (i = 0; i < RL_NUM_TOKENIZERS; i++)
	{
		tokenizer_choices[i].name = rl_tokenizer_name((rl_tokenizer_kind) i);
		tokenizer_choices[i].value = i;
	}
	for (i = 0; i <= RL_NORM_NFKC; i++)
	{
		normalize_choices[i].name = rl_normalize_name((rl_normalize) i);
		normalize_choices[i].value = i;
	}
}

/* Whether the caller set the option (rather than taking its default). */
bool
rnnlm_option_given(const RnnlmOptions *opts, const char *key)
{
	int			i = find_spec(key);

	Assert(i >= 0);
	return (opts->given & ((uint64) 1 << i)) != 0;
}

/* The list of valid keys, for error hints. */
static char *
valid_keys(bool federated)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	for (i = 0; i < N_OPTS; i++)
		if (federated || !opt_specs[i].federated_only)
			appendStringInfo(&s, "%s%s", s.len ? ", " : "", opt_specs[i].key);
	return s.data;
}

/* "a, b, c": the choices of an enum option. */
static char *
choice_list(const OptSpec *spec)
{
	StringInfoData s;
	const OptChoice *c;

	initStringInfo(&s);
	for (c = spec->choices; c->name; c++)
		appendStringInfo(&s, "%s%s", c == spec->choices ? "" : ", ", c->name);
	return s.data;
}

/* The name of an enum option's value. */
const char *
rnnlm_option_choice_name(const char *key, int value)
{
	int			i = find_spec(key);

	Assert(i >= 0 && opt_specs[i].kind == OPT_ENUM);
	return choice_name(&opt_specs[i], value);
}

/* The name of an enum option's value. */
static const char *
choice_name(const OptSpec *spec, int value)
{
	const OptChoice *c;

	for (c = spec->choices; c->name; c++)
		if (c->value == value)
			return c->name;
	return "?";
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

/* Stores a number into an OPT_INT or OPT_REAL field. */
static void
set_number(RnnlmOptions *opts, const OptSpec *spec, double num)
{
	if (spec->kind == OPT_REAL)
		*(double *) field(opts, spec) = num;
	else if (spec->offset == OFF(seed))
		*(int64 *) field(opts, spec) = (int64) num;
	else
		*(int32 *) field(opts, spec) = (int32) num;
}

/* A jsonb number as a double, checked against the option's range. */
static double
checked_number(const OptSpec *spec, JsonbValue *v)
{
	double		num;

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
	return num;
}

/* A jsonb string, or the option's type error. */
static char *
checked_string(const OptSpec *spec, JsonbValue *v)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm option \"%s\" must be a string%s%s", spec->key,
						spec->choices ? ", one of: " : "",
						spec->choices ? choice_list(spec) : "")));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Checks one key's value and stores it into opts. */
static void
set_option(RnnlmOptions *opts, const OptSpec *spec, JsonbValue *v)
{
	char	   *str;
	const OptChoice *c;

	switch (spec->kind)
	{
		case OPT_INT:
		case OPT_REAL:
			set_number(opts, spec, checked_number(spec, v));
			break;
		case OPT_BOOL:
			if (v->type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("rnnlm option \"%s\" must be true or false", spec->key)));
			*(bool *) field(opts, spec) = v->val.boolean;
			break;
		case OPT_ENUM:
			str = checked_string(spec, v);
			for (c = spec->choices; c->name; c++)
				if (strcmp(str, c->name) == 0)
					break;
			if (c->name == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("rnnlm option \"%s\" has invalid value \"%s\"", spec->key, str),
						 errhint("Valid values are: %s.", choice_list(spec))));
			*(int32 *) field(opts, spec) = c->value;
			break;
		case OPT_NAME:
			/* null is "none", so that stored options can be passed back */
			if (v->type == jbvNull)
			{
				*(char **) field(opts, spec) = NULL;
				break;
			}
			str = checked_string(spec, v);
			*(char **) field(opts, spec) =
				rnnlm_check_name(CStringGetTextDatum(str), false);
			break;
		case OPT_TEXT:
			if (v->type == jbvNull)
			{
				*(char **) field(opts, spec) = NULL;
				break;
			}
			str = checked_string(spec, v);
			if (strlen(pg_server_to_any(str, (int) strlen(str), PG_UTF8)) > spec->max)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("rnnlm option \"%s\" is longer than %.0f bytes", spec->key, spec->max)));
			*(char **) field(opts, spec) = str;
			break;
	}
}

/* Sets every option to its default. */
static void
set_defaults(RnnlmOptions *opts)
{
	int			i;

	memset(opts, 0, sizeof(*opts));
	for (i = 0; i < N_OPTS; i++)
	{
		const OptSpec *spec = &opt_specs[i];

		switch (spec->kind)
		{
			case OPT_INT:
			case OPT_REAL:
				set_number(opts, spec, spec->def);
				break;
			case OPT_BOOL:
				*(bool *) field(opts, spec) = spec->def != 0;
				break;
			case OPT_ENUM:
				*(int32 *) field(opts, spec) = (int32) spec->def;
				break;
			case OPT_NAME:
			case OPT_TEXT:
				*(char **) field(opts, spec) = NULL;
				break;
		}
	}
}

/* Parses and validates the options object (NULL = all defaults); federated: for rnnlm_train_federated. */
static void
parse_options(Jsonb *options, RnnlmOptions *opts, bool federated)
{
	set_defaults(opts);
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
			int			i;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(v.val.string.val, v.val.string.len);
			tok = JsonbIteratorNext(&it, &v, true);
			i = find_spec(key);
			if (i < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown rnnlm option \"%s\"", key),
						 errhint("Valid options are: %s.", valid_keys(federated))));
			if (opt_specs[i].federated_only && !federated)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("rnnlm option \"%s\" is for rnnlm_train_federated", key)));
			set_option(opts, &opt_specs[i], &v);
			opts->given |= (uint64) 1 << i;
		}
	}

	/* defaults that depend on the tokenizer, from its row in the core */
	if (!rnnlm_option_given(opts, "max_vocab"))
		opts->max_vocab = rl_tokenizer((rl_tokenizer_kind) opts->tokenizer)->default_max_vocab;
	if (!rnnlm_option_given(opts, "lowercase"))
		opts->lowercase = rl_tokenizer((rl_tokenizer_kind) opts->tokenizer)->default_lowercase;
	if (opts->tokenizer != RL_TOK_WORD &&
		(rnnlm_option_given(opts, "filters") || rnnlm_option_given(opts, "split_on_punctuation")))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm options \"filters\" and \"split_on_punctuation\" are for the word tokenizer")));
	if (opts->tokenizer == RL_TOK_BPE && opts->max_vocab > 0 &&
		opts->max_vocab < RL_BPE_BYTE0 + 256)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm option \"max_vocab\" must be at least %d for the bpe tokenizer",
						RL_BPE_BYTE0 + 256),
				 errdetail("A bpe vocabulary holds the 256 bytes and the reserved tokens.")));
	if (opts->early_stopping_patience > 0 && opts->validation_fraction == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm option \"early_stopping_patience\" needs validation data"),
				 errhint("Set validation_fraction above 0.")));
}

/* Parses and validates the options of rnnlm_train and its kin (NULL = all defaults). */
void
rnnlm_parse_options(Jsonb *options, RnnlmOptions *opts)
{
	parse_options(options, opts, false);
}

/* The same for rnnlm_train_federated, which takes a few more. */
void
rnnlm_parse_federated_options(Jsonb *options, RnnlmOptions *opts)
{
	parse_options(options, opts, true);
}

/* Appends "key": value of one option to a JSON object under construction. */
static void
append_option(StringInfo s, RnnlmOptions *opts, const OptSpec *spec)
{
	void	   *f = field(opts, spec);

	appendStringInfo(s, "%s\"%s\": ", s->len > 1 ? ", " : "", spec->key);
	switch (spec->kind)
	{
		case OPT_INT:
			if (spec->offset == OFF(seed))
				appendStringInfo(s, INT64_FORMAT, *(int64 *) f);
			else
				appendStringInfo(s, "%d", *(int32 *) f);
			break;
		case OPT_REAL:
			appendStringInfo(s, "%.15g", *(double *) f);
			break;
		case OPT_BOOL:
			appendStringInfoString(s, *(bool *) f ? "true" : "false");
			break;
		case OPT_ENUM:
			appendStringInfo(s, "\"%s\"", choice_name(spec, *(int32 *) f));
			break;
		case OPT_NAME:
		case OPT_TEXT:
			if (*(char **) f)
				escape_json(s, *(char **) f);
			else
				appendStringInfoString(s, "null");
			break;
	}
}

/* The effective options, defaults included, as stored with the model. */
Jsonb *
rnnlm_options_to_jsonb(const RnnlmOptions *o)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (i = 0; i < N_OPTS; i++)
		if (opt_specs[i].stored == true ||
			(opt_specs[i].stored == STORED_WHEN_GIVEN && (o->given & ((uint64) 1 << i))))
			append_option(&s, (RnnlmOptions *) o, &opt_specs[i]);
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/* The core's training options from the SQL ones. */
void
rnnlm_core_train_opts(const RnnlmOptions *opts, rl_train_opts *to)
{
	memset(to, 0, sizeof(*to));
	to->epochs = opts->epochs;
	to->batch_size = opts->batch_size;
	to->seq_len = opts->seq_len;
	to->learning_rate = opts->learning_rate;
	to->clip_norm = opts->clip_norm;
	to->dropout = opts->dropout;
	to->seed = (uint64_t) opts->seed;
	to->keep_best = opts->keep_best;
	to->patience = opts->early_stopping_patience;
	to->lr_decay = opts->lr_decay;
	to->lr_patience = opts->lr_patience;
	to->precision = (rl_precision) opts->precision;
	to->freeze_embeddings = opts->freeze_embeddings;
	to->sampled_softmax = opts->sampled_softmax;
}
