/*
 * glue.c
 *		What the core borrows from a backend: a memory-context allocator, a
 *		tick that runs CHECK_FOR_INTERRUPTS(), per-epoch NOTICEs; and the
 *		translation of core errors into ERRORs with SQLSTATEs.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* Allocates from the memory context in ud; NULL on failure. */
static void *
pg_alloc(void *ud, size_t size)
{
	if (size > MaxAllocHugeSize)
		return NULL;
	return MemoryContextAllocExtended((MemoryContext) ud, size,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

/* Frees a chunk from pg_alloc. */
static void
pg_dealloc(void *ud, void *ptr)
{
	pfree(ptr);
}

/* Services interrupts: a cancel or timeout unwinds from here. */
static int
pg_tick(void *ud)
{
	CHECK_FOR_INTERRUPTS();
	return 1;
}

/* Reports one finished epoch as a NOTICE. */
static void
pg_epoch_done(void *ud, const rl_epoch_stats *st)
{
	if (isnan(st->val_loss))
		ereport(NOTICE,
				(errmsg("rnnlm: epoch %d/%d: train loss %.4f, %.0f tokens/s",
						st->epoch, st->epochs, st->train_loss, st->tokens_per_second)));
	else
		ereport(NOTICE,
				(errmsg("rnnlm: epoch %d/%d: train loss %.4f, validation loss %.4f (perplexity %.2f), %.0f tokens/s",
						st->epoch, st->epochs, st->train_loss, st->val_loss,
						exp(st->val_loss), st->tokens_per_second)));
}

/* Sets up env to allocate in cxt; progress enables per-epoch NOTICEs. */
void
rnnlm_env_init(rl_env *env, MemoryContext cxt, bool progress)
{
	memset(env, 0, sizeof(*env));
	env->alloc = pg_alloc;
	env->dealloc = pg_dealloc;
	env->tick = pg_tick;
	env->epoch_done = progress ? pg_epoch_done : NULL;
	env->ud = cxt;
	env->max_alloc = RNNLM_MAX_MEMORY_BYTES();
}

/* Raises the core's error as an ERROR; what says what was being done. */
void
rnnlm_raise(rl_env *env, const char *what)
{
	int			code;

	switch (env->status)
	{
		case RL_ERR_NOMEM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case RL_ERR_FORMAT:
			code = ERRCODE_DATA_CORRUPTED;
			break;
		case RL_ERR_CANCELLED:
			code = ERRCODE_QUERY_CANCELED;
			break;
		case RL_ERR_DATA:
			code = ERRCODE_DATA_EXCEPTION;
			break;
		case RL_ERR_BLAS:
			code = ERRCODE_SYSTEM_ERROR;
			break;
		case RL_ERR_NUMERIC:
			code = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
			break;
		case RL_ERR_UNSUPPORTED:
			code = ERRCODE_FEATURE_NOT_SUPPORTED;
			break;
		case RL_ERR_LIMIT:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("rnnlm: %s: %s", what, env->errmsg),
					 errhint("The limit is rnnlm.max_memory (%d MB).", rnnlm_max_memory_mb)));
			pg_unreachable();
		case RL_ERR_INVALID:
		default:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("rnnlm: %s: %s", what, env->errmsg)));
	pg_unreachable();
}

/* What to install when the library of the backend named (an rnnlm.backend value) is missing. */
const char *
rnnlm_backend_install_hint(const char *name)
{
	return strcmp(name, "onednn") == 0 ?
		"Install oneDNN (Debian package libdnnl2), or SET rnnlm.backend = 'auto'." :
		"Install OpenBLAS (Debian package libopenblas0), or SET rnnlm.backend = 'auto'.";
}

/*
 * Picks the backend of the matrix products that rnnlm.backend names
 * (loading its library on first use) and applies rnnlm.threads.
 */
void
rnnlm_prepare_compute(void)
{
	char		err[RL_ERRMSG_LEN];
	const char *name = rnnlm_backend_setting();

	if (rl_compute_use(name, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("rnnlm: %s", err),
				 errhint("%s", rnnlm_backend_install_hint(name))));
	rl_compute_set_threads(rnnlm_threads);
}

/*
 * What a requested precision comes to on this processor and backend
 * (after rnnlm_prepare_compute); bf16 that cannot run is an ERROR.
 */
rl_precision
rnnlm_resolve_precision(rl_precision want, const char *what)
{
	rl_env		env;
	rl_precision got;

	rnnlm_prepare_compute();
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	if (rl_precision_resolve(&env, want, &got) != RL_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("rnnlm: %s in bf16 is not possible here: %s", what, env.errmsg),
				 errhint("Use precision 'fp32', or 'auto', which takes bf16 only where it runs; "
						 "rnnlm_runtime() shows what this server has.")));
	return got;
}

/* A non-NULL, non-empty text argument of at most max bytes, as a C string. */
static char *
check_model_arg(Datum d, bool isnull, size_t max, const char *what, const char *detail)
{
	char	   *s;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name must not be NULL")));
	s = text_to_cstring(DatumGetTextPP(d));
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be empty")));
	if (strlen(s) > max)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("%s is too long", what),
				 errdetail("%s", detail)));
	return s;
}

/* Validates a model name argument and returns it as a C string. */
char *
rnnlm_check_name(Datum d, bool isnull)
{
	return check_model_arg(d, isnull, RNNLM_MAX_NAME, "model name",
						   psprintf("Model names are at most %d bytes.", RNNLM_MAX_NAME));
}

/*
 * Validates the name of a model about to be made (trained, imported,
 * tuned): a model name, without the '@' that a reference reads as the start
 * of a version (name@N, name@sha256:<hex>).  42602 otherwise.
 */
char *
rnnlm_check_new_name(Datum d, bool isnull)
{
	char	   *s = rnnlm_check_name(d, isnull);

	if (strchr(s, '@') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("model name \"%s\" contains \"@\"", s),
				 errdetail("A model reference reads what follows \"@\" as a version (name@N or name@sha256:<hex>), so a new model's name must not contain \"@\".")));
	return s;
}

/*
 * Validates a model reference argument (a name, name@N or
 * name@sha256:<hex prefix>; cache.c reads it) and returns it as a C string.
 */
char *
rnnlm_check_ref(Datum d, bool isnull)
{
	return check_model_arg(d, isnull, RNNLM_MAX_REF, "model reference",
						   psprintf("Model names are at most %d bytes, then @N or @sha256:<hex>.",
									RNNLM_MAX_NAME));
}

/* The text as UTF-8 bytes (not necessarily NUL-terminated at *len). */
char *
rnnlm_text_to_utf8(text *t, size_t *len)
{
	int			n = VARSIZE_ANY_EXHDR(t);
	char	   *s = VARDATA_ANY(t);
	char	   *u = pg_server_to_any(s, n, PG_UTF8);

	*len = (u == s) ? (size_t) n : strlen(u);
	return u;
}

/* The token ids of UTF-8 text under the model's tokenizer (palloc'd). */
int32_t *
rnnlm_tokenize(rl_env *env, const rl_model *m, const char *u, size_t len, size_t *n)
{
	int32_t    *ids;

	if (rl_tokenize(env, &m->cfg, m->vocab, u, len, &ids, n) != RL_OK)
		rnnlm_raise(env, "tokenizing");
	return ids;
}

/* A token of the model as text, as its tokenizer shows it (bpe: bytes escaped). */
text *
rnnlm_token_text(const rl_model *m, int32_t id)
{
	char	   *buf = palloc(RL_MAX_TOKEN_BYTES * 4 + 1);
	size_t		n = rl_tokenizer(m->cfg.tokenizer)->describe(m->vocab, id, buf);

	return rnnlm_utf8_to_text(buf, n);
}

/* A text datum from UTF-8 bytes, converted to the server encoding. */
text *
rnnlm_utf8_to_text(const char *s, size_t len)
{
	char	   *z = palloc(len + 1);
	char	   *conv;

	memcpy(z, s, len);
	z[len] = '\0';
	conv = pg_any_to_server(z, (int) len, PG_UTF8);
	return cstring_to_text(conv);
}

/* Appends , "key": value to a JSON object; null when the value is not finite. */
void
rnnlm_append_json_real(StringInfo s, const char *key, double v)
{
	if (isnan(v) || isinf(v))
		appendStringInfo(s, ", \"%s\": null", key);
	else
		appendStringInfo(s, ", \"%s\": %.10g", key, v);
}
