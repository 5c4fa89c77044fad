/*
 * rnnlm_pg.h
 *		The Postgres layer of rnnlm: SQL functions, SPI, the model table,
 *		GUCs and the per-backend model cache, on top of the plain-C core.
 */
#ifndef RNNLM_PG_H
#define RNNLM_PG_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "rnnlm_core.h"

/* Longest model name accepted, in bytes. */
#define RNNLM_MAX_NAME 63

/* Most tokens rnnlm_generate produces in one call. */
#define RNNLM_MAX_GENERATE 10000

/* GUCs (rnnlm.c) */
extern int	rnnlm_threads;
extern int	rnnlm_max_memory_mb;

#define RNNLM_MAX_MEMORY_BYTES() ((size_t) rnnlm_max_memory_mb << 20)

/* glue.c: the core's environment inside a backend */
extern void rnnlm_env_init(rl_env *env, MemoryContext cxt, bool progress);
extern void rnnlm_raise(rl_env *env, const char *what) pg_attribute_noreturn();
extern void rnnlm_prepare_blas(void);
extern char *rnnlm_check_name(Datum d, bool isnull);
extern char *rnnlm_text_to_utf8(text *t, size_t *len);
extern text *rnnlm_utf8_to_text(const char *s, size_t len);
extern void rnnlm_append_json_real(StringInfo s, const char *key, double v);

/* options.c: the jsonb options of rnnlm_train */
typedef struct RnnlmOptions
{
	rl_cell_kind cell;
	rl_tokenizer_kind tokenizer;
	int32		max_vocab;		/* 0 = unlimited */
	bool		lowercase;
	int32		embedding_dim;
	int32		hidden_size;
	int32		num_layers;
	double		dropout;
	int32		epochs;
	int32		batch_size;
	int32		seq_len;
	double		learning_rate;
	double		clip_norm;
	double		validation_fraction;
	int64		seed;
	bool		replace;
} RnnlmOptions;

extern void rnnlm_parse_options(Jsonb *options, RnnlmOptions *opts);
extern Jsonb *rnnlm_options_to_jsonb(const RnnlmOptions *opts);

/* spi_rows.c: reading a one-text-column query */
typedef void (*rnnlm_row_fn) (void *arg, const char *utf8, size_t len);
extern uint64 rnnlm_read_text_rows(const char *query, const char *what,
								   rnnlm_row_fn fn, void *arg, uint64 *nonnull);

/* catalog.c: the rnnlm.model table (callers are SPI-connected) */
typedef struct RnnlmModelRow
{
	const char *name;
	bool		replace;
	const RnnlmOptions *opts;
	const rl_model *model;
	const rl_train_result *result;
	const uint8 *blob;
	size_t		blob_len;
} RnnlmModelRow;

extern bool rnnlm_catalog_exists(const char *name);
extern void rnnlm_catalog_check_owner(const char *name);
extern int64 rnnlm_catalog_version(const char *name, bool *found);
extern bytea *rnnlm_catalog_weights(const char *name, int64 *version, MemoryContext cxt);
extern bool rnnlm_catalog_store(const RnnlmModelRow *row);
extern bool rnnlm_catalog_delete(const char *name);

/* cache.c: models loaded once per backend */
typedef struct RnnlmLoaded
{
	rl_model   *model;
	rl_state   *state;
	void	   *sample_work;
	int64		version;
} RnnlmLoaded;

extern RnnlmLoaded *rnnlm_get_model(FunctionCallInfo fcinfo, const char *name);

#endif							/* RNNLM_PG_H */
