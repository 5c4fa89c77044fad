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
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "rnnlm_core.h"

/* The version of this library, recorded in each model it trains. */
#define RNNLM_LIBRARY_VERSION "0.3"

/* Longest model name accepted, in bytes. */
#define RNNLM_MAX_NAME 63
/* A model reference: a name, or name@N, or name@sha256:<hex prefix> */
#define RNNLM_MAX_REF (RNNLM_MAX_NAME + 8 + 64)

/* Most tokens rnnlm_generate produces in one call. */
#define RNNLM_MAX_GENERATE 10000

/* Most helper threads a backend may use (rnnlm.threads). */
#define RNNLM_MAX_THREADS 64

/* GUCs (rnnlm.c) */
extern int	rnnlm_threads;
extern int	rnnlm_precision;	/* rl_precision of scoring and generation */
extern int	rnnlm_backend;		/* 0 auto, else 1 + a row of the core's backends */
extern const char *rnnlm_backend_setting(void);
extern int	rnnlm_max_memory_mb;
extern int	rnnlm_job_retention_min;
extern int	rnnlm_max_jobs_per_role;
extern double rnnlm_min_checkpoint_minutes;

#define RNNLM_MAX_MEMORY_BYTES() ((size_t) rnnlm_max_memory_mb << 20)

/* jit.c: no JIT for statements that call the per-row functions */
extern void rnnlm_jit_init(void);

/* glue.c: the core's environment inside a backend */
extern void rnnlm_env_init(rl_env *env, MemoryContext cxt, bool progress);
extern void rnnlm_raise(rl_env *env, const char *what) pg_attribute_noreturn();
extern void rnnlm_prepare_compute(void);
extern const char *rnnlm_backend_install_hint(const char *name);
extern rl_precision rnnlm_resolve_precision(rl_precision want, const char *what);
extern char *rnnlm_check_name(Datum d, bool isnull);
extern char *rnnlm_check_new_name(Datum d, bool isnull);
extern char *rnnlm_check_ref(Datum d, bool isnull);
extern char *rnnlm_text_to_utf8(text *t, size_t *len);
extern int32_t *rnnlm_tokenize(rl_env *env, const rl_model *m, const char *u,
							   size_t len, size_t *n);
extern text *rnnlm_token_text(const rl_model *m, int32_t id);
extern text *rnnlm_utf8_to_text(const char *s, size_t len);
extern void rnnlm_append_json_real(StringInfo s, const char *key, double v);

/*
 * The starting value of an LSTM's forget-gate bias, chosen by measurement
 * (README, "forget_bias").
 */
#define RNNLM_DEFAULT_FORGET_BIAS 0.0

/* options.c: the jsonb options of rnnlm_train, one table of specs */
typedef struct RnnlmOptions
{
	int32		cell;			/* rl_cell_kind */
	int32		tokenizer;		/* rl_tokenizer_kind */
	int32		max_vocab;		/* 0 = unlimited */
	bool		lowercase;
	int32		normalize;		/* rl_normalize */
	char	   *filters;		/* word: the characters filtered, or NULL */
	bool		split_on_punctuation;
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
	double		forget_bias;
	bool		keep_best;
	int32		early_stopping_patience;
	double		lr_decay;
	int32		lr_patience;
	char	   *init_from;		/* model name, or NULL */
	double		checkpoint_minutes;
	int32		precision;		/* rl_precision; resolved when training starts */
	char	   *embeddings_query;	/* (token, vector) rows, or NULL */
	bool		freeze_embeddings;
	int32		sampled_softmax;	/* draws a training step; 0 = the exact softmax */
	int32		keep_versions;	/* older versions kept when the model is replaced */
	int32		round_steps;	/* federated: chunks a shard trains between averages; 0 = an epoch */
	bool		replace;
	uint64		given;			/* bit i: the option of row i was set by the caller */
} RnnlmOptions;

extern void rnnlm_options_init(void);
extern void rnnlm_parse_options(Jsonb *options, RnnlmOptions *opts);
extern void rnnlm_parse_federated_options(Jsonb *options, RnnlmOptions *opts);
extern bool rnnlm_option_given(const RnnlmOptions *opts, const char *key);
extern const char *rnnlm_option_choice_name(const char *key, int value);
extern Jsonb *rnnlm_options_to_jsonb(const RnnlmOptions *opts);
extern Jsonb *rnnlm_options_shown(const RnnlmOptions *opts);

/*
 * How a replacement treats an option of the current version (OptSpec in
 * options.c): only for the word tokenizer; defaulted from the tokenizer;
 * taken from the parent with init_from; a source of the data rather than a
 * setting; SQL kept for the owner only (shown to others as true).
 */
#define RNNLM_OPT_WORD_ONLY 1
#define RNNLM_OPT_TOKENIZER_DEFAULT 2
#define RNNLM_OPT_FROM_PARENT 4
#define RNNLM_OPT_DATA_SOURCE 8
#define RNNLM_OPT_OWNER_ONLY 16
#define RNNLM_OPT_FEDERATED 32		/* for rnnlm_option_keys: the federated-only ones */
extern Datum rnnlm_option_keys(int flags);
extern void rnnlm_core_train_opts(const RnnlmOptions *opts, rl_train_opts *to);

/* spi_rows.c: reading a one-text-column query */
typedef void (*rnnlm_row_fn) (void *arg, const char *utf8, size_t len);

extern void rnnlm_check_read_only_query(const char *query, const char *what);
extern uint64 rnnlm_read_text_rows(const char *query, const char *what,
								   rnnlm_row_fn fn, void *arg, uint64 *nonnull);
typedef void (*rnnlm_vector_row_fn) (void *arg, const char *utf8, size_t len,
									 const double *v, int n);
extern uint64 rnnlm_read_vector_rows(const char *query, const char *what,
									 rnnlm_vector_row_fn fn, void *arg, uint64 *used);

/* privilege.c: rnnlm's tables written as the extension's owner */
extern Oid	rnnlm_extension_owner(void);
extern int	rnnlm_spi_write(const char *sql, int nargs, Oid *types, Datum *values,
							const char *nulls);
extern int	rnnlm_spi_read_all(const char *sql, int nargs, Oid *types, Datum *values,
							   const char *nulls);

/*
 * SQL for such a write: whether the role given as parameter p belongs to
 * the owner of the row (of table alias t); a superuser belongs to every role.
 */
#define RNNLM_OWNED_BY_OF(p, t) \
	"pg_catalog.pg_has_role(" p "::pg_catalog.oid, " t ".owner::pg_catalog.oid, 'MEMBER')"
#define RNNLM_OWNED_BY(p) \
	"pg_catalog.pg_has_role(" p "::pg_catalog.oid, owner::pg_catalog.oid, 'MEMBER')"

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
	const char *history;		/* JSON array of epochs, or NULL */
	const char *parent;			/* init_from, or NULL */
	const double *surprise;		/* RNNLM_SURPRISE_POINTS quantiles, or NULL */
	const char *provenance;		/* JSON object: how the version was made (see train.c) */
	const char *query;			/* its training query, or NULL */
} RnnlmModelRow;

/* How many quantiles of the validation rows' surprise a model keeps (surprise.c). */
#define RNNLM_SURPRISE_POINTS 101

/* A parsed reference to a pinned version: name@N or name@sha256:<prefix>. */
typedef struct RnnlmRef
{
	char		name[RNNLM_MAX_NAME + 1];
	int32		version;		/* > 0, or 0 with a SHA-256 prefix */
	char		sha_prefix[65];	/* lower-case hex */
} RnnlmRef;

extern bool rnnlm_parse_ref(const char *s, RnnlmRef *ref);
extern int32 rnnlm_catalog_resolve_ref(const RnnlmRef *ref, char *sha_hex);
extern bytea *rnnlm_catalog_version_weights(const char *name, int32 version,
											 const char *sha_hex, MemoryContext cxt);
extern bool rnnlm_catalog_exists(const char *name);
extern bool rnnlm_schema_is_v03(void);
extern void rnnlm_catalog_check_owner(const char *name);
extern int64 rnnlm_catalog_revision(const char *name, bool *found);
extern bytea *rnnlm_catalog_weights(const char *name, int64 *revision, MemoryContext cxt);
extern bool rnnlm_catalog_surprise(const char *name, int64 revision, int32 version, double *q);
extern bool rnnlm_catalog_store(const RnnlmModelRow *row);
extern bool rnnlm_catalog_delete(const char *name);

/* pretrained.c: the vectors of embeddings_query for the vocabulary's tokens */
typedef struct RnnlmPretrained
{
	int32		dim;			/* 0 until the first row */
	float	   *rows;			/* [V, dim]: row id where have[id] */
	char	   *have;			/* [V] */
	int64		rows_read;
	int64		found;			/* tokens of the vocabulary given a vector */
} RnnlmPretrained;

/* train.c: one training, step by step (see there) */
typedef struct RnnlmTraining
{
	const char *name;
	RnnlmOptions opts;
	MemoryContext cxt;			/* everything below lives here */
	rl_env		env;
	rl_builder *builder;
	size_t		ndocs,
				nval_docs;
	rl_vocab   *vocab;			/* until the model owns it */
	int32_t    *train,
			   *val;
	size_t		ntrain,
				nval;
	rl_model   *model;
	RnnlmPretrained pretrained;
	rl_run	   *run;
	rl_train_result res;
	char	   *history;		/* JSON, once finished */
	uint8_t    *blob;
	size_t		blob_len;
	char	   *summary_extra;	/* more "key": value pairs for the summary, or NULL */
	double	   *surprise;		/* the validation rows' surprise quantiles, or NULL */
	char	   *query;			/* the training query, once read (in cxt) */
	uint64		rows;			/* the rows it returned */
	TimestampTz started_at;
} RnnlmTraining;

extern void rnnlm_training_init(RnnlmTraining *t, const char *name,
								const RnnlmOptions *opts, MemoryContext parent,
								bool notices);
extern void rnnlm_training_check_target(RnnlmTraining *t);
extern void rnnlm_training_load_parent(RnnlmTraining *t);
extern void rnnlm_training_read(RnnlmTraining *t, const char *query);
extern void rnnlm_training_text_config(const RnnlmTraining *t, rl_config *cfg);
extern void rnnlm_training_read_rows(RnnlmTraining *t, const char *query);
extern void rnnlm_training_build_streams(RnnlmTraining *t);
extern void rnnlm_training_create_model(RnnlmTraining *t, bool with_run);
extern void rnnlm_training_start(RnnlmTraining *t);
extern void rnnlm_training_run(RnnlmTraining *t);
extern void rnnlm_training_finish(RnnlmTraining *t);
extern char *rnnlm_training_history_json(RnnlmTraining *t);
extern char *rnnlm_history_json(const rl_epoch_stats *h, int32 n);
extern void rnnlm_training_store(RnnlmTraining *t);
extern char *rnnlm_training_summary(RnnlmTraining *t, MemoryContext cxt);
extern char *rnnlm_train_model(const char *name, const char *query, Jsonb *options);
extern int64 rnnlm_submit_training_job(const char *name, const char *query, Jsonb *options);

/* replacement.c */
extern Jsonb *rnnlm_inherit_options(const char *name, Jsonb *given, bool as_before);
extern Jsonb *rnnlm_replacement_options(const char *name, Jsonb *options, RnnlmOptions *opts,
										bool federated);
extern void rnnlm_training_free(RnnlmTraining *t);
extern char *rnnlm_training_query_arg(FunctionCallInfo fcinfo, int argno);
extern void rnnlm_pretrained_read(RnnlmTraining *t);
extern void rnnlm_pretrained_apply(RnnlmTraining *t);

/* job_slots.c: a job's worker lock, rnnlm.max_jobs_per_role, starting workers */
typedef struct RnnlmJobLaunch
{
	int64		job_id;
	Oid			database;
	Oid			role;			/* the job's owner, as whom the worker connects */
	TransactionId submitter;	/* the worker waits for it to end; or invalid */
} RnnlmJobLaunch;

extern bool rnnlm_job_lock(int64 job_id, Oid owner, bool legacy);
extern void rnnlm_job_unlock(int64 job_id, Oid owner, bool legacy);
extern void rnnlm_dispatch_jobs(bool write_all);
extern int	rnnlm_resume_interrupted_jobs(void);

/* job_files.c: a job's checkpoint, kept as a file out of the WAL */
extern void rnnlm_job_file_write(int64 job_id, const uint8 *data, size_t len);
extern bytea *rnnlm_job_file_read(int64 job_id);
extern void rnnlm_job_file_remove(int64 job_id);

/* launcher.c: with shared_preload_libraries, interrupted jobs resume on their own */
extern bool rnnlm_resume_jobs;
extern void rnnlm_launcher_register(void);

/* progress.c: with shared_preload_libraries, trainings in backends seen from everywhere */
extern void rnnlm_progress_init(void);
extern void rnnlm_progress_begin(const char *model);
extern bool rnnlm_progress_active(void);
extern void rnnlm_progress_update(const rl_run_progress *p);
extern void rnnlm_progress_end(void);
extern int64 rnnlm_take_next_job(Oid role, bool legacy);

/* federated.c: the coordinator of a federated training, step by step */
typedef struct RnnlmFederation RnnlmFederation;

extern char **rnnlm_federated_servers(ArrayType *arr, int *n);
extern RnnlmFederation *rnnlm_federation_create(const char *name, char **servers, int nservers,
												const RnnlmOptions *opts, Jsonb *jopts,
												MemoryContext cxt, bool notices);
extern void rnnlm_federation_prepare(RnnlmFederation *f, const char *query);
extern bool rnnlm_federation_epoch(RnnlmFederation *f);
extern void rnnlm_federation_progress(const RnnlmFederation *f, rl_run_progress *p);
extern void rnnlm_federation_finish(RnnlmFederation *f);
extern RnnlmTraining *rnnlm_federation_training(RnnlmFederation *f);
extern void rnnlm_federation_free(RnnlmFederation *f);

/* cache.c: models loaded once per backend */
typedef struct RnnlmLoaded
{
	rl_model   *model;
	rl_state   *state;
	MemoryContext cxt;			/* where model and state live */
	void	   *sample_work;
	int64		revision;		/* of the model row it was loaded from; 0 for a pinned version */
} RnnlmLoaded;

extern RnnlmLoaded *rnnlm_get_model(FunctionCallInfo fcinfo, const char *name);

/* score.c: the scoring functions that surprise.c builds on */
extern PGDLLEXPORT Datum rnnlm_perplexity(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum rnnlm_perplexity_at(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum rnnlm_perplexity_array(PG_FUNCTION_ARGS);

/* surprise.c */
extern double *rnnlm_surprise_quantiles(RnnlmTraining *t);
extern rl_precision rnnlm_use_precision(RnnlmLoaded *lm);

#endif							/* RNNLM_PG_H */
