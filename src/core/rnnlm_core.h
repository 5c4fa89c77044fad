/*
 * rnnlm_core.h
 *		The plain-C core of rnnlm: tensors on OpenBLAS, recurrent cells,
 *		training, tokenizers, sampling and the model file format.
 *
 * Nothing here includes a Postgres header.  Every entry point that can fail
 * takes an rl_env, which supplies the allocator and a "keep going?" callback
 * and receives an error status plus message; the caller decides how to
 * report it.  All memory the core owns is obtained through env->alloc, so a
 * caller that allocates from an arena (a Postgres memory context) can throw
 * the whole arena away when it unwinds.
 *
 * Matrices are row-major float32.  A batch of T time steps of B streams is
 * stored time-major: row t*B + b.
 */
#ifndef RNNLM_CORE_H
#define RNNLM_CORE_H

#include <stddef.h>
#include <stdint.h>

#define RL_ERRMSG_LEN 256

/* Limits enforced on every configuration, trained or loaded. */
#define RL_MAX_VOCAB		2000000
#define RL_MAX_EMBED		16384
#define RL_MAX_HIDDEN		16384
#define RL_MAX_LAYERS		16
#define RL_MAX_TOKEN_BYTES	1024

/* Reserved token ids. */
#define RL_TOKEN_EOD		0	/* end of document; also the document-start input */
#define RL_TOKEN_UNK		1	/* anything outside the vocabulary */
#define RL_NUM_SPECIAL		2

typedef enum rl_status
{
	RL_OK = 0,
	RL_ERR_NOMEM,				/* an allocation failed */
	RL_ERR_INVALID,				/* invalid argument or configuration */
	RL_ERR_FORMAT,				/* corrupt or unsupported model blob */
	RL_ERR_CANCELLED,			/* the tick callback asked to stop */
	RL_ERR_DATA,				/* not enough training data */
	RL_ERR_BLAS,				/* the BLAS library could not be loaded */
	RL_ERR_NUMERIC,				/* training diverged (NaN or Inf) */
	RL_ERR_LIMIT,				/* an allocation above env->max_alloc */
	RL_ERR_UNSUPPORTED			/* this processor or library cannot do what was asked */
} rl_status;

struct rl_epoch_stats;

/* What the caller lends the core: memory, cancellation, progress. */
typedef struct rl_env
{
	void	   *(*alloc) (void *ud, size_t size);	/* NULL on failure */
	void		(*dealloc) (void *ud, void *ptr);
	int			(*tick) (void *ud); /* 0 = stop; may also not return */
	void		(*epoch_done) (void *ud, const struct rl_epoch_stats *st);	/* optional */
	void	   *ud;
	size_t		max_alloc;		/* refuse any single allocation above this; 0 = none */
	rl_status	status;
	char		errmsg[RL_ERRMSG_LEN];
} rl_env;

/* env.c */
extern void rl_env_init_malloc(rl_env *env);
extern void *rl_alloc(rl_env *env, size_t size);
extern void *rl_alloc0(rl_env *env, size_t size);
extern void *rl_alloc_array(rl_env *env, size_t n, size_t elem);
extern void rl_free(rl_env *env, void *ptr);
extern rl_status rl_error(rl_env *env, rl_status st, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
extern int	rl_tick(rl_env *env);
extern int	rl_mul_overflow(size_t a, size_t b, size_t *out);
extern int	rl_add_overflow(size_t a, size_t b, size_t *out);
extern int	rl_grow(rl_env *env, void **ptr, size_t *cap, size_t need, size_t elem);
extern double rl_now_seconds(void);	/* monotonic clock */

/* blas.c: OpenBLAS, loaded at run time with every signal blocked */
extern int	rl_blas_load(char *errbuf, size_t errlen);
extern void rl_blas_set_threads(int nthreads);
extern int	rl_blas_threads(void);

/* compute.c: the backends of the matrix products, and their precision */
typedef enum rl_precision
{
	RL_PREC_FP32 = 0,
	RL_PREC_BF16 = 1,
	RL_PREC_AUTO = 2,
	RL_PREC_INT8 = 3			/* scoring only: the one-row products from int8 weights */
} rl_precision;

#define RL_MAX_BACKENDS 4

/* What rl_compute_use chose, for the runtime report. */
typedef struct rl_compute_info
{
	char		chosen[32];		/* "auto" or a backend's name */
	const char *fp32;			/* the backend of fp32 products */
	char		fp32_kernel[192];
	const char *bf16;			/* the backend of bf16 products; "" for none */
	char		bf16_kernel[192];
	int			count;			/* every backend compiled in: */
	const char *names[RL_MAX_BACKENDS];
	int			loads[RL_MAX_BACKENDS]; /* usable here */
	int			has_bf16[RL_MAX_BACKENDS];	/* its bf16 products run here */
} rl_compute_info;

extern const char *rl_backend_name(int i);
extern int	rl_compute_use(const char *name, char *err, size_t errlen);
extern void rl_compute_set_threads(int nthreads);
extern int	rl_compute_threads(void);
extern void rl_compute_describe(rl_compute_info *info);
extern rl_status rl_precision_resolve(rl_env *env, rl_precision want, rl_precision *got);
extern const char *rl_precision_name(rl_precision p);
extern void rl_sgemm(int transa, int transb, int m, int n, int k,
					 float alpha, const float *a, int lda,
					 const float *b, int ldb,
					 float beta, float *c, int ldc);

/*
 * The products of one pass (a trainer's, a stream's) in reduced precision:
 * the weights [w, w + nw), and either their bf16 copy with scratch for
 * converting the other operand of a product (two of cap elements), or (a
 * stream's only) an int8 copy of its weight matrices with one scale per
 * row, which the one-row products read.  Neither (or no rl_prod at all)
 * means fp32.
 */
typedef struct rl_prod_matrix
{
	size_t		off;			/* of its first weight in w */
	size_t		rows,
				cols;
	size_t		scale0;			/* its first row's scale */
} rl_prod_matrix;

typedef struct rl_prod
{
	int			bf16;
	const float *w;
	size_t		nw;
	uint16_t   *w16;
	uint16_t   *scratch;
	size_t		cap;
	int			int8;
	int8_t	   *w8;				/* [nw]; the matrices' entries filled */
	float	   *scales;
	int			nmats;
	rl_prod_matrix mats[2 * RL_MAX_LAYERS + 1];
} rl_prod;

extern size_t rl_prod_bytes(size_t nw, size_t cap);
extern rl_status rl_prod_init(rl_env *env, rl_prod *p, const float *w, size_t nw,
							  size_t cap);
extern void rl_prod_sync(rl_prod *p);
struct rl_model;
extern rl_status rl_prod_init_int8(rl_env *env, rl_prod *p, const struct rl_model *m);
extern void rl_prod_free(rl_env *env, rl_prod *p);
extern void rl_mm(const rl_prod *p, int ta, int tb, int m, int n, int k,
				  float alpha, const float *a, int lda, const float *b, int ldb,
				  float beta, float *c, int ldc);

/* cpu.c: the processor's feature flags */
enum
{
	RL_CPU_SSE42, RL_CPU_AVX, RL_CPU_AVX2, RL_CPU_FMA, RL_CPU_F16C,
	RL_CPU_AVX512F, RL_CPU_AVX512BW, RL_CPU_AVX512DQ, RL_CPU_AVX512VL,
	RL_CPU_AVX512VNNI, RL_CPU_AVX512BF16, RL_CPU_AMXTILE, RL_CPU_AMXBF16,
	RL_CPU_AMXINT8, RL_CPU_NFEATURES
};

typedef struct rl_cpu_info
{
	char		vendor[13];		/* "GenuineIntel", "AuthenticAMD", ... */
	unsigned char has[RL_CPU_NFEATURES];	/* supported by the CPU and the OS */
} rl_cpu_info;

extern void rl_cpu_detect(rl_cpu_info *info);
extern const char *rl_cpu_feature_name(int f);

/* What OpenBLAS chose when it was loaded (empty strings before, or if it does not say). */
typedef struct rl_blas_info
{
	char		library[64];	/* the file loaded */
	char		core[64];		/* openblas_get_corename(): its kernels */
	char		config[256];	/* openblas_get_config() */
	int			legacy_core;	/* kernels older than AVX2 on a CPU with AVX2 and FMA */
	const char *chosen_by;		/* "openblas", "rnnlm" (from the flags) or "user" */
	char		probed_core[64];	/* with "rnnlm": the core OpenBLAS would have used */
} rl_blas_info;

extern void rl_blas_describe(rl_blas_info *info);

/* kernels.c: elementwise and one-row kernels, one table row per instruction set */
extern const char *rl_kernels_name(void);
extern int	rl_kernels_count(void);
extern const char *rl_kernels_set_name(int i, int *usable);
extern int	rl_kernels_use(int i);
extern void rl_k_sigmoid(float *x, size_t n);
extern void rl_k_tanh(float *x, size_t n);
extern float rl_k_max(const float *x, size_t n);
extern double rl_k_expsum(const float *x, size_t n, float shift, float *out);
extern void rl_k_matvec(const float *a, int n, int k, const float *x, float *y,
						int accumulate);
extern double rl_k_sumsq(const float *x, size_t n);
extern void rl_k_adam(float *p, const float *g, float *m, float *v, size_t n,
					  float gscale, float step, float rc2);
extern void rl_k_to_bf16(const float *x, uint16_t *y, size_t n);
extern void rl_k_matvec_bf16(const uint16_t *a, int n, int k, const float *x, float *y,
							 int accumulate);
extern float rl_bf16_to_float(uint16_t h);
extern void rl_k_matvec_i8(const int8_t *q, const float *scale, int n, int k,
						   const float *x, float *y, int accumulate);

/* ---------- configuration and parameters ---------- */

typedef enum rl_cell_kind
{
	RL_CELL_RNN = 0,
	RL_CELL_LSTM = 1,
	RL_CELL_GRU = 2
} rl_cell_kind;

typedef enum rl_tokenizer_kind
{
	RL_TOK_WORD = 0,
	RL_TOK_CHAR = 1,
	RL_TOK_BPE = 2
} rl_tokenizer_kind;

#define RL_NUM_TOKENIZERS	3

/* The text rules a model was made with (rl_config.rules). */
typedef enum rl_text_rules
{
	RL_RULES_V01 = 0,			/* rnnlm 0.1's built-in tables (format version 1 models) */
	RL_RULES_UNICODE = 1		/* the Unicode library's (utf8proc): every newer model */
} rl_text_rules;

/* Unicode normalisation of the text before it is tokenized. */
typedef enum rl_normalize
{
	RL_NORM_NONE = 0,
	RL_NORM_NFC = 1,
	RL_NORM_NFKC = 2
} rl_normalize;

#define RL_MAX_FILTER_BYTES		255
#define RL_MAX_UNICODE_VERSION	31
#define RL_BPE_BYTE0			RL_NUM_SPECIAL	/* the id of byte 0 in a bpe vocabulary */
#define RL_BPE_MAX_PIECE		256 /* bytes of a pre-tokenized piece, at most */

typedef struct rl_config
{
	rl_cell_kind cell;
	rl_tokenizer_kind tokenizer;
	int			lowercase;
	int32_t		vocab_size;		/* including the special tokens */
	int32_t		embedding_dim;
	int32_t		hidden_size;
	int32_t		num_layers;
	/* how text becomes tokens, besides the tokenizer and lowercase */
	rl_text_rules rules;
	rl_normalize normalize;		/* RL_RULES_UNICODE only */
	int			split_on_punct; /* word: a filtered character separates words */
	int			has_filters;	/* word: filters, not the P and S categories */
	char		filters[RL_MAX_FILTER_BYTES + 1];	/* UTF-8, NUL-terminated */
	char		unicode_version[RL_MAX_UNICODE_VERSION + 1];	/* of the rules, "" for v0.1 */
} rl_config;

/* ---------- tokenizers and vocabulary (tokenizer.c, text.c, bpe.c) ---------- */

typedef struct rl_vocab
{
	int32_t		size;
	uint32_t   *offsets;		/* size + 1 offsets into strings */
	char	   *strings;		/* token texts back to back (bpe: raw bytes) */
	int32_t    *slots;			/* open-addressing hash: token id or -1 */
	uint32_t	nslots;
	/* bpe: merge r joins merges[2r] and merges[2r+1] into merge_into[r] */
	int32_t		nmerges;
	int32_t    *merges;
	int32_t    *merge_into;
	int64_t    *merge_slots;	/* hash of pairs: (r << 1) | 1, or 0 when free */
	uint32_t	nmerge_slots;
} rl_vocab;

/* Accumulates documents into a token stream while the vocabulary is unknown. */
/*
 * Distinct byte strings in first-seen order (tokenizer.c): string k is
 * str[off[k] .. off[k + 1]).  The builder's units, the tally of federated
 * training's counts.
 */
typedef struct rl_strtab
{
	rl_env	   *env;
	char	   *str;
	size_t		str_len,
				str_cap;
	uint32_t   *off;
	size_t		off_cap;
	int32_t		n;
	int32_t    *slots;			/* open addressing: an id, or -1 */
	uint32_t	nslots;
} rl_strtab;

extern rl_status rl_strtab_init(rl_strtab *t, rl_env *env);
extern int32_t rl_strtab_intern(rl_strtab *t, const char *s, size_t len, int32_t max,
								const char *what);
extern void rl_strtab_free(rl_strtab *t);

typedef struct rl_builder rl_builder;

/* Called once per unit of text (word, code point, bpe piece); 0 = stop. */
typedef int (*rl_token_fn) (void *ud, const char *tok, size_t len);

/* A unit of the training text, with how often the training documents hold it. */
typedef struct rl_unit_count
{
	const char *text;
	uint32_t	len;
	uint64_t	count;
} rl_unit_count;

/*
 * A tokenizer: one row of the table in tokenizer.c, which everything else
 * consults.  split cuts normalised text into units; the builder counts
 * distinct units, learn chooses the vocabulary from the counts of the
 * training documents, encode turns one unit into token ids.
 */
typedef struct rl_tokenizer_ops
{
	const char *name;
	int32_t		default_max_vocab;	/* 0 = every unit seen */
	int			default_lowercase;
	int			has_unk;		/* units outside the vocabulary become <unk> */
	int			(*split) (rl_env *env, const rl_config *c, const char *text, size_t len,
						  rl_token_fn emit, void *ud);
	rl_status	(*learn) (rl_env *env, const rl_unit_count *units, int32_t nunits,
						  int32_t max_vocab, rl_vocab **out);
	/* appends the ids of one unit to ids[*n...] (room for len ids); returns how many */
	size_t		(*encode) (const rl_vocab *v, const char *unit, size_t len, int32_t *ids);
	/* writes the text of ids back to back into out (room for n * (RL_MAX_TOKEN_BYTES + 1)); returns its length */
	size_t		(*decode) (const rl_vocab *v, const int32_t *ids, size_t n, char *out);
	/* writes token id as text for display into buf (RL_MAX_TOKEN_BYTES * 4 + 1) */
	size_t		(*describe) (const rl_vocab *v, int32_t id, char *buf);
	/* the tokenizer's own section of the model file (0: none) */
	uint32_t	section_tag;
	size_t		(*section_size) (const rl_vocab *v);
	void		(*section_write) (const rl_vocab *v, uint8_t *p);
	rl_status	(*section_read) (rl_env *env, rl_vocab *v, const uint8_t *p, size_t len);
} rl_tokenizer_ops;

extern const rl_tokenizer_ops *rl_tokenizer(rl_tokenizer_kind kind);
extern const char *rl_cell_name(rl_cell_kind cell);
extern const char *rl_tokenizer_name(rl_tokenizer_kind kind);
extern const char *rl_normalize_name(rl_normalize n);

/* The text rules of a new model: the Unicode library's, its version recorded. */
extern void rl_config_text_init(rl_config *c, rl_tokenizer_kind kind, int lowercase);
extern int	rl_config_same_text(const rl_config *a, const rl_config *b);

extern rl_status rl_builder_create(rl_env *env, const rl_config *c, rl_builder **out);
extern rl_status rl_builder_add(rl_builder *b, const char *text, size_t len);
extern size_t rl_builder_documents(const rl_builder *b);
extern size_t rl_builder_tokens(const rl_builder *b);

/* Splits off the last val_docs documents, learns the vocabulary from the
 * training documents (word, char: the max_vocab most frequent units, 0 =
 * all, ties in first-seen order; bpe: merges up to max_vocab tokens) and
 * returns id streams that each start with RL_TOKEN_EOD and end every
 * document with it. */
extern rl_status rl_builder_finish(rl_builder *b, size_t val_docs, int32_t max_vocab,
								   rl_vocab **vocab,
								   int32_t **train, size_t *ntrain,
								   int32_t **val, size_t *nval);
extern rl_status rl_builder_finish_vocab(rl_builder *b, size_t val_docs,
										 const rl_vocab *vocab,
										 int32_t **train, size_t *ntrain,
										 int32_t **val, size_t *nval);
/* The distinct units of the training documents (all but the last val_docs)
 * with their counts, in first-seen order, pointing into the builder. */
extern rl_status rl_builder_unit_counts(rl_builder *b, size_t val_docs,
										rl_unit_count **units, int32_t *n);
extern void rl_builder_free(rl_builder *b);

/* ---------- federated training's pieces (federated.c) ---------- */

/* Unit counts of several shards merged, in first-seen order. */
typedef struct rl_unit_tally rl_unit_tally;

extern rl_status rl_unit_tally_create(rl_env *env, rl_unit_tally **out);
extern rl_status rl_unit_tally_add(rl_unit_tally *t, const char *text, uint32_t len,
								   uint64_t count);
extern const rl_unit_count *rl_unit_tally_units(rl_unit_tally *t, int32_t *n);
extern void rl_unit_tally_free(rl_unit_tally *t);

/* A model's weights alone, as they travel between coordinator and shards. */
extern size_t rl_weights_file_size(size_t n);
extern void rl_weights_file_write(const float *w, size_t n, uint8_t *out);
extern rl_status rl_weights_file_read(rl_env *env, const uint8_t *data, size_t len,
									  float *w, size_t n);

/* Federated averaging: acc += weight * w, then out = acc / total. */
extern void rl_average_add(double *acc, const float *w, size_t n, double weight);
extern void rl_average_take(const double *acc, size_t n, double total, float *out);

extern rl_status rl_vocab_create(rl_env *env, int32_t size, const uint32_t *lengths,
								 const char *strings, rl_vocab **out);
extern int32_t rl_vocab_lookup(const rl_vocab *v, const char *tok, size_t len);
extern uint32_t rl_hash_bytes(const char *s, size_t len);
extern const char *rl_vocab_token(const rl_vocab *v, int32_t id, size_t *len);
extern void rl_vocab_free(rl_env *env, rl_vocab *v);
extern int	rl_utf8_valid(const char *s, size_t len);
extern size_t rl_utf8_next(const unsigned char *s, size_t len, uint32_t *cp);
extern size_t rl_utf8_put(uint32_t c, char *buf);
/* The longest prefix of s that is whole UTF-8, an invalid byte inside as U+FFFD,
 * written to out (room for 3 * len bytes); returns its length. */
extern size_t rl_utf8_clean(const char *s, size_t len, char *out);

/* Tokenizes text with the model's vocabulary and text rules; units outside
 * the vocabulary become RL_TOKEN_UNK.  *ids is allocated from env (no
 * trailing EOD). */
extern rl_status rl_tokenize(rl_env *env, const rl_config *c, const rl_vocab *v,
							 const char *text, size_t len, int32_t **ids, size_t *n);

/* The text of token ids (generated ones), as whole UTF-8, allocated from env. */
extern rl_status rl_detokenize(rl_env *env, const rl_config *c, const rl_vocab *v,
							   const int32_t *ids, size_t n, char **out, size_t *len);

/* Calls emit once per unit of text (word, code point, bpe piece), normalised. */
extern int	rl_split(rl_env *env, const rl_config *c, const char *text, size_t len,
					 rl_token_fn emit, void *ud);

/* bpe.c: byte-pair encoding */
extern rl_status rl_bpe_learn(rl_env *env, const rl_unit_count *units, int32_t nunits,
							  int32_t max_vocab, rl_vocab **out);
extern rl_status rl_bpe_index(rl_env *env, rl_vocab *v, const int32_t *pairs, int32_t n);
extern size_t rl_bpe_encode(const rl_vocab *v, const char *unit, size_t len, int32_t *ids);
extern size_t rl_bpe_describe(const rl_vocab *v, int32_t id, char *buf);

/* ---------- the model (model.c) ---------- */

typedef struct rl_layer_params
{
	int32_t		in_dim;
	float	   *wx;				/* [G*H, in_dim] */
	float	   *wh;				/* [G*H, H] */
	float	   *b;				/* [G*H] */
} rl_layer_params;

typedef struct rl_model
{
	rl_config	cfg;
	rl_vocab   *vocab;			/* owned */
	size_t		nparams;
	float	   *params;			/* every weight, in file order */
	float	   *emb;			/* [V, E] */
	rl_layer_params layers[RL_MAX_LAYERS];
	float	   *why;			/* [V, H] */
	float	   *by;				/* [V] */
} rl_model;

extern int	rl_cell_gates(rl_cell_kind cell);
extern rl_status rl_config_check(rl_env *env, const rl_config *cfg);
extern rl_status rl_config_nparams(rl_env *env, const rl_config *cfg, size_t *n);
extern void rl_param_views(const rl_config *cfg, float *base, float **emb,
						   rl_layer_params *layers, float **why, float **by);
extern rl_status rl_model_create(rl_env *env, const rl_config *cfg, rl_vocab *vocab,
								 rl_model **out);
/* Uniform weights from seed; zero biases, except an LSTM's forget gate at forget_bias. */
extern void rl_model_init_weights(rl_model *m, uint64_t seed, float forget_bias);
extern void rl_model_free(rl_env *env, rl_model *m);

/* ---------- random numbers and sampling (sample.c) ---------- */

typedef struct rl_rng
{
	uint64_t	s[4];
} rl_rng;

extern void rl_rng_seed(rl_rng *r, uint64_t seed);
extern uint64_t rl_rng_next(rl_rng *r);
extern double rl_rng_uniform(rl_rng *r);	/* [0, 1) */

/* Picks a token from logits[0..n) (modified in place); work holds
 * rl_sample_work_size(n) bytes.  temperature 0 = argmax; top_k 0 = off;
 * top_p in (0, 1].  RL_TOKEN_UNK is never drawn. */
typedef struct rl_sample_opts
{
	double		temperature;
	int32_t		top_k;
	double		top_p;
} rl_sample_opts;

extern size_t rl_sample_work_size(int32_t n);
extern int32_t rl_sample(float *logits, int32_t n, const rl_sample_opts *o,
						 rl_rng *rng, void *work);
/* The ids of the k highest logits, highest first (ties in id order); returns how many. */
extern int32_t rl_top_k(const float *logits, int32_t n, int32_t k, int32_t *out);

/* ---------- inference on one stream (infer.c) ---------- */

typedef struct rl_state
{
	const rl_model *m;
	float	   *h;				/* [L, H] */
	float	   *c;				/* [L, H], LSTM only */
	float	   *x;				/* [max(E, H)] layer input */
	float	   *gates;			/* [G*H] */
	float	   *rh;				/* [H] */
	float	   *logits;			/* [V] after rl_state_feed */
	/* scoring a document a chunk of RL_SCORE_CHUNK positions at a time */
	float	   *cx,
			   *cy;				/* [CHUNK, max(E, H)] layer input, output */
	float	   *cg;				/* [CHUNK, G*H] */
	float	   *cc,
			   *crh;			/* [CHUNK, H] LSTM C, GRU r*h */
	float	   *clogits;		/* [CHUNK, V] */
	int32_t    *cin;			/* [CHUNK] input tokens */
	rl_prod		prod;			/* the products' precision, and the bf16 weights */
} rl_state;

#define RL_SCORE_CHUNK 128

extern rl_status rl_state_create(rl_env *env, const rl_model *m, rl_state **out);
extern rl_status rl_state_set_precision(rl_env *env, rl_state *s, rl_precision p);
extern rl_precision rl_state_precision(const rl_state *s);
extern void rl_state_reset(rl_state *s);
extern void rl_state_feed(rl_state *s, int32_t token);	/* updates logits */
extern double rl_log_softmax_at(const float *logits, int32_t n, int32_t target,
								int *is_top1);
/* forward.c: the log-softmax of one row, the gradient left in z when grad_scale > 0 */
extern double rl_log_softmax_row(float *z, int32_t n, int32_t target, int *is_top1,
								 float grad_scale);
extern void rl_state_free(rl_env *env, rl_state *s);

/* Scores ids followed by RL_TOKEN_EOD from the document-start state.
 * Returns the summed negative log-likelihood (nats) and how many of the
 * n + 1 predictions had the target as their top-1 token. */
extern rl_status rl_score(rl_env *env, rl_state *s, const int32_t *ids, size_t n,
						  double *nll, size_t *correct, double *token_logprobs);

/* A document as one vector: the top layer's states after its tokens, pooled. */
typedef enum rl_pooling
{
	RL_POOL_MEAN = 0,
	RL_POOL_LAST = 1
} rl_pooling;

extern rl_status rl_embed(rl_env *env, rl_state *s, const int32_t *ids, size_t n,
						  rl_pooling pooling, float *out);

/*
 * Scores ndocs documents at once, batched across documents (similar lengths
 * together): nll[d] and correct[d] as rl_score gives them for docs[d] of
 * lens[d] tokens.  correct may be NULL.
 */
extern rl_status rl_score_many(rl_env *env, rl_model *m, const int32_t *const *docs,
							   const size_t *lens, size_t ndocs, rl_precision precision,
							   double *nll, size_t *correct);

/* ---------- training (train.c) ---------- */

typedef struct rl_train_opts
{
	int32_t		epochs;
	int32_t		batch_size;
	int32_t		seq_len;
	double		learning_rate;
	double		clip_norm;
	double		dropout;
	uint64_t	seed;
	/* what happens between epochs; all zero = every epoch at one rate */
	int			keep_best;		/* end with the epoch of lowest validation loss */
	int32_t		patience;		/* stop after this many epochs without improvement; 0 = off */
	double		lr_decay;		/* multiply the rate by this ... (0 or 1 = off) */
	int32_t		lr_patience;	/* ... after this many epochs without improvement */
	rl_precision precision;		/* of the products: FP32 or BF16, resolved */
	int			freeze_embeddings;	/* emb is not trained (no gradient, no Adam state) */
	int32_t		sampled_softmax;	/* > 0: training steps' softmax over K draws (sampled.c) */
} rl_train_opts;

typedef struct rl_epoch_stats
{
	int32_t		epoch;
	int32_t		epochs;
	double		learning_rate;	/* the rate this epoch was trained at */
	double		train_loss;
	double		val_loss;		/* NAN when there is no validation data */
	double		seconds;		/* this epoch */
	double		tokens_per_second;
} rl_epoch_stats;

typedef struct rl_train_result
{
	double		train_loss;		/* mean over the epoch whose weights are kept */
	double		val_loss;		/* NAN when there is no validation data */
	int32_t		epochs_run;		/* fewer than asked when stopped early */
	int32_t		best_epoch;		/* lowest validation loss (0 without validation data) */
	int32_t		kept_epoch;		/* the epoch whose weights the model has */
	int			stopped_early;
	size_t		train_tokens;	/* predicted tokens per epoch */
	size_t		val_tokens;
	double		seconds;
	double		tokens_per_second;
} rl_train_result;

/*
 * The epoch rules (run.c), kept by a run and by the coordinator of a
 * federated training alike: after each validated epoch a loss below the
 * best so far is the new best (the caller keeps its weights); otherwise
 * after lr_patience such epochs the rate is multiplied by lr_decay and
 * after patience of them training stops.
 */
typedef struct rl_epoch_rules
{
	double		lr;				/* the current learning rate */
	double		best_val;		/* INFINITY until an epoch is validated */
	int32_t		best_epoch;
	int32_t		since_best;		/* epochs without improvement, for early stopping */
	int32_t		lr_wait;		/* the same, for the learning rate */
	int			stopped;		/* early stopping ended the training */
} rl_epoch_rules;

extern void rl_epoch_rules_init(rl_epoch_rules *e, const rl_train_opts *o);
extern int	rl_epoch_rules_apply(rl_epoch_rules *e, const rl_train_opts *o, int32_t epoch,
								 double val_loss);

/* The working set of one batch: activations, caches, gradients, Adam moments. */
typedef struct rl_trainer rl_trainer;

extern rl_status rl_trainer_create(rl_env *env, rl_model *m, int32_t batch,
								   int32_t seq_len, double dropout, uint64_t seed,
								   rl_trainer **out);
extern void rl_trainer_reset_state(rl_trainer *tr);
/* Forward and backward over T steps; grads are left in rl_trainer_grads(). */
extern rl_status rl_trainer_loss_grad(rl_trainer *tr, const int32_t *inputs,
									  const int32_t *targets, int32_t T,
									  double *loss);
extern rl_status rl_trainer_loss(rl_trainer *tr, const int32_t *inputs,
								 const int32_t *targets, int32_t T, double *loss);
extern float *rl_trainer_grads(rl_trainer *tr);
extern void rl_trainer_set_training(rl_trainer *tr, int training);
extern rl_status rl_trainer_set_precision(rl_trainer *tr, rl_precision p);
extern void rl_trainer_weights_changed(rl_trainer *tr);
extern double rl_clip_grads(float *grads, size_t n, double clip_norm);
extern void rl_adam_step(float *params, const float *grads, float *m, float *v,
						 size_t n, double lr, int64_t t);
extern void rl_adam_step_scaled(float *params, const float *grads, float *m, float *v,
								size_t n, double lr, int64_t t, float gscale);
extern void rl_trainer_free(rl_trainer *tr);
extern rl_status rl_trainer_eval(rl_trainer *tr, const int32_t *ids, size_t n,
								 double *loss, size_t *count);
extern rl_status rl_trainer_enable_adam(rl_trainer *tr);
extern rl_status rl_trainer_freeze_embeddings(rl_trainer *tr);
extern rl_status rl_trainer_set_sampled(rl_trainer *tr, int32_t k);
extern rl_status rl_trainer_step(rl_trainer *tr, const int32_t *ids, size_t per_stream,
								 size_t pos, int32_t T, double lr, double clip_norm,
								 double *loss);

/* What a checkpoint saves of a trainer, as pointers into it. */
typedef struct rl_trainer_state
{
	float	   *adam_m,
			   *adam_v;			/* [adam_floats] each, or NULL before the first step */
	size_t		adam_floats;	/* the trained parameters: nparams, less emb when frozen */
	int64_t    *step;			/* Adam steps taken */
	rl_rng	   *rng;			/* dropout masks */
	size_t		state_floats;	/* B*H: the size of each carried state below */
	float	   *h0[RL_MAX_LAYERS];
	float	   *c0[RL_MAX_LAYERS];	/* LSTM only */
} rl_trainer_state;

extern void rl_trainer_view(rl_trainer *tr, rl_trainer_state *v);

extern size_t rl_train_memory(const rl_config *cfg, int32_t batch, int32_t seq_len,
							  double dropout, rl_precision precision, int freeze_embeddings,
							  int32_t sampled_k);
extern rl_status rl_train(rl_env *env, rl_model *m,
						  const int32_t *train, size_t ntrain,
						  const int32_t *val, size_t nval,
						  const rl_train_opts *o, rl_train_result *res);

/*
 * A training run (run.c): the epochs of rl_train taken a slice at a time, so
 * that a caller can report progress and save checkpoints between slices.
 * rl_run_advance trains until the current epoch ends (it then validates the
 * epoch and applies keep-best, learning-rate decay and early stopping) or
 * until max_seconds have passed.  A run saved with rl_run_save and restored
 * into a new run on the same model shape, data and options continues exactly
 * as the original would have: the same weights, bit for bit, for the same
 * BLAS thread count.
 */
typedef struct rl_run rl_run;

typedef struct rl_run_progress
{
	int32_t		epoch;			/* the epoch in progress (or last finished), from 1 */
	int32_t		epochs;
	size_t		step;			/* chunks done in this epoch */
	size_t		steps;			/* chunks per epoch */
	double		train_loss;		/* mean so far in this epoch; NAN before the first chunk */
	double		val_loss;		/* of the last finished epoch; NAN if none */
	double		learning_rate;
	double		tokens_per_second;	/* over the training time so far */
	double		seconds_left;	/* estimate; NAN when unknown */
} rl_run_progress;

extern size_t rl_run_memory(const rl_config *cfg, const rl_train_opts *o);
extern rl_status rl_run_create(rl_env *env, rl_model *m,
							   const int32_t *train, size_t ntrain,
							   const int32_t *val, size_t nval,
							   const rl_train_opts *o, rl_run **out);
extern rl_status rl_run_advance(rl_run *r, double max_seconds, int *epoch_ended);
extern rl_status rl_run_train_round(rl_run *r, double lr, size_t max_steps, int *epoch_ended,
									size_t *tokens, double *loss_sum);
extern rl_status rl_run_evaluate(rl_run *r, const int32_t *ids, size_t n, double *loss,
								 size_t *count);
extern void rl_run_weights_changed(rl_run *r);
extern int	rl_run_done(const rl_run *r);
extern void rl_run_progress_get(const rl_run *r, rl_run_progress *p);
extern const rl_epoch_stats *rl_run_history(const rl_run *r, int32_t *n);
extern rl_status rl_run_finish(rl_run *r, rl_train_result *res);
extern rl_status rl_run_save(rl_run *r, uint8_t **out, size_t *len);
extern rl_status rl_run_restore(rl_run *r, const uint8_t *data, size_t len);
extern void rl_run_free(rl_run *r);

/* Mean loss (nats/token) of a stream, evaluated as training batches it. */
extern rl_status rl_eval_stream(rl_env *env, rl_model *m, const int32_t *ids, size_t n,
								int32_t batch, int32_t seq_len, double *loss,
								size_t *count);

/* ---------- recurrent cells (cell.c, cell_rnn.c, cell_lstm.c, cell_gru.c) ---------- */

/*
 * One cell type's time step for B streams.  forward: on entry g [B, G*H]
 * holds W_x x_t + b; it adds the recurrent term, applies the gate
 * nonlinearities in place and writes h (and c for LSTM, r*h_{t-1} for GRU).
 * backward: from dh (the whole gradient reaching h_t) and dc (reaching C_t
 * from step t+1; replaced by the gradient reaching C_{t-1}), writes the
 * pre-activation gradients dg and the gradient reaching h_{t-1}.
 */
typedef struct rl_cell_ops
{
	int			ngates;
	int			hprev_blocks;	/* leading gate blocks of W_h that multiply h_{t-1};
								 * the rest multiply r*h_{t-1} (GRU) */
	void		(*forward) (const rl_prod *p, const float *wh, int H, int B,
							const float *hprev,
							const float *cprev, float *g, float *h, float *c, float *rh);
	void		(*backward) (const rl_prod *p, const float *wh, int H, int B,
							 const float *hprev,
							 const float *cprev, const float *g, const float *h,
							 const float *c, const float *rh, const float *dh,
							 float *dc, float *dg, float *dhprev, float *tmp);
} rl_cell_ops;

extern const rl_cell_ops rl_rnn_ops;
extern const rl_cell_ops rl_lstm_ops;
extern const rl_cell_ops rl_gru_ops;
extern const rl_cell_ops *rl_cell_ops_for(rl_cell_kind cell);

/* Activations of one layer over T steps of B streams (row t*B + b). */
typedef struct rl_layer_buf
{
	float	   *x;				/* [T*B, in] input, after dropout */
	float	   *mask;			/* [T*B, in] dropout mask on x, or NULL */
	float	   *gates;			/* [T*B, G*H] activated gates */
	float	   *h;				/* [T*B, H] */
	float	   *c;				/* [T*B, H] LSTM cell state, else NULL */
	float	   *rh;				/* [T*B, H] GRU r*h_{t-1}, else NULL */
	float	   *h0;				/* [B, H] state entering the chunk */
	float	   *c0;				/* [B, H] LSTM only */
} rl_layer_buf;

extern int	rl_layer_forward(rl_env *env, const rl_prod *p, const rl_model *m, int l,
							 rl_layer_buf *lb, int T, int B);
extern int	rl_layer_backward(rl_env *env, const rl_prod *p, const rl_model *m, int l,
							  rl_layer_buf *lb,
							  int T, int B, float *dH, float *dG, float *dX,
							  rl_layer_params *grad, float *dh_next, float *dc,
							  float *tmp);

/* ---------- the model file (format.c) ---------- */

/* A section tag of the model and checkpoint files: four ASCII bytes, first byte lowest. */
#define RL_TAG(a, b, c, d) ((uint32_t) (a) | ((uint32_t) (b) << 8) | \
							((uint32_t) (c) << 16) | ((uint32_t) (d) << 24))

#define RL_FORMAT_MAGIC		"RNNLM\0\r\n"
#define RL_FORMAT_VERSION	2	/* written; version 1 is still read */

extern rl_status rl_model_serialize(rl_env *env, const rl_model *m,
									uint8_t **out, size_t *len);
extern rl_status rl_model_deserialize(rl_env *env, const uint8_t *data, size_t len,
									  rl_model **out);
extern uint32_t rl_crc32(const uint8_t *data, size_t len);

/* Little-endian fields, for the model and checkpoint files. */
extern void rl_put_u32(uint8_t *p, uint32_t v);
extern uint32_t rl_get_u32(const uint8_t *p);
extern void rl_put_u64(uint8_t *p, uint64_t v);
extern uint64_t rl_get_u64(const uint8_t *p);

#define RL_CHECKPOINT_MAGIC		"RNNLMCKP"
#define RL_CHECKPOINT_VERSION	1

#endif							/* RNNLM_CORE_H */
