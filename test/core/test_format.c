/*
 * test_format.c
 *		The model file: the checksum, round trips, writers of both format
 *		versions built from doc/format.md alone (version 1 to check that
 *		old files load, version 2 compared with the serializer), and the
 *		reader against truncated, bit-flipped and structurally wrong blobs
 *		of both versions, bpe models included.
 *
 * Mutated blobs are tried both as they are (the checksum must catch them)
 * and with the checksum recomputed, so that the structural checks are
 * reached.  A mutated blob with a valid checksum may load (a flipped
 * mantissa bit is still a model); it must then score text to a finite
 * value.  Every load runs with env.max_alloc at 64 MB: the reader must
 * check sizes against the blob before allocating, so an allocation
 * refused for that limit is a failure, as is a leaked block.
 */
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_ALLOC	((size_t) 64 << 20)
#define MAXV 8

/* A blob described field by field, written exactly as doc/format.md says. */
typedef struct spec
{
	uint8_t		magic[8];
	uint32_t	version,
				cell,
				tokenizer,
				flags,
				V,
				E,
				H,
				L,
				reserved;
	uint64_t	nparams;
	int			ntok;
	const char *tok[MAXV];
	uint32_t	toklen[MAXV];
	int64_t		lenfield[MAXV];	/* the length written; -1 = toklen */
	const float *params;
	size_t		nfloats;
	size_t		extra;			/* zero bytes before the checksum */
	int			nan_at;			/* parameter index to replace, or -1 */
	float		nan_value;
} spec;

/* Appends a little-endian u32. */
static uint8_t *
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
	p[2] = (uint8_t) (v >> 16);
	p[3] = (uint8_t) (v >> 24);
	return p + 4;
}

/* Recomputes the checksum of a blob in place. */
static void
fix_crc(uint8_t *blob, size_t len)
{
	if (len >= 4)
		put32(blob + len - 4, rl_crc32(blob, len - 4));
}

/* Writes the blob a spec describes (malloc'd). */
static uint8_t *
spec_write(const spec *s, size_t *len)
{
	size_t		n = 52 + 4 * s->nfloats + s->extra + 4;
	uint8_t    *buf,
			   *p;
	size_t		k;
	int			i;

	for (i = 0; i < s->ntok; i++)
		n += 4 + s->toklen[i];
	buf = calloc(1, n);
	if (buf == NULL)
		tap_bail("out of memory");
	memcpy(buf, s->magic, 8);
	p = put32(buf + 8, s->version);
	p = put32(p, s->cell);
	p = put32(p, s->tokenizer);
	p = put32(p, s->flags);
	p = put32(p, s->V);
	p = put32(p, s->E);
	p = put32(p, s->H);
	p = put32(p, s->L);
	p = put32(p, s->reserved);
	p = put32(p, (uint32_t) s->nparams);
	p = put32(p, (uint32_t) (s->nparams >> 32));
	for (i = 0; i < s->ntok; i++)
	{
		p = put32(p, s->lenfield[i] >= 0 ? (uint32_t) s->lenfield[i] : s->toklen[i]);
		memcpy(p, s->tok[i], s->toklen[i]);
		p += s->toklen[i];
	}
	for (k = 0; k < s->nfloats; k++)
	{
		float		f = (int) k == s->nan_at ? s->nan_value : s->params[k];
		uint32_t	bits;

		memcpy(&bits, &f, 4);
		p = put32(p, bits);
	}
	p += s->extra;
	put32(p, rl_crc32(buf, (size_t) (p - buf)));
	*len = n;
	return buf;
}

/* P for a shape, from the formula of doc/format.md. */
static uint64_t
doc_nparams(uint64_t G, uint64_t V, uint64_t E, uint64_t H, uint64_t L)
{
	uint64_t	n = V * E + V * H + V;
	uint64_t	l;

	for (l = 0; l < L; l++)
		n += G * H * ((l == 0 ? E : H) + H + 1);
	return n;
}

/* ---------------- version 2, from doc/format.md ---------------- */

#define MAXSEC 70

/* A section of a version 2 blob. */
typedef struct sec
{
	char		tag[5];
	uint8_t    *data;
	size_t		len;
} sec;

/* A version 2 blob described as its sections. */
typedef struct spec2
{
	int			n;
	sec			s[MAXSEC];
	int64_t		declared;		/* the section count written; -1 = n */
	size_t		extra;			/* zero bytes before the checksum */
} spec2;

/* Appends a little-endian u64. */
static uint8_t *
put64(uint8_t *p, uint64_t v)
{
	return put32(put32(p, (uint32_t) v), (uint32_t) (v >> 32));
}

/* Writes the blob a spec2 describes (malloc'd). */
static uint8_t *
spec2_write(const spec2 *s, size_t *len)
{
	size_t		n = 16 + s->extra + 4;
	uint8_t    *buf,
			   *p;
	int			i;

	for (i = 0; i < s->n; i++)
		n += 12 + s->s[i].len;
	buf = calloc(1, n);
	if (buf == NULL)
		tap_bail("out of memory");
	memcpy(buf, "RNNLM\0\r\n", 8);
	p = put32(buf + 8, 2);
	p = put32(p, s->declared >= 0 ? (uint32_t) s->declared : (uint32_t) s->n);
	for (i = 0; i < s->n; i++)
	{
		memcpy(p, s->s[i].tag, 4);
		p = put64(p + 4, s->s[i].len);
		memcpy(p, s->s[i].data, s->s[i].len);
		p += s->s[i].len;
	}
	p += s->extra;
	put32(p, rl_crc32(buf, (size_t) (p - buf)));
	*len = n;
	return buf;
}

/* Adds a section with a copy of the payload. */
static void
spec2_add(spec2 *s, const char *tag, const uint8_t *data, size_t len)
{
	sec		   *x = &s->s[s->n++];

	memcpy(x->tag, tag, 5);
	x->data = malloc(len + 1);
	if (x->data == NULL)
		tap_bail("out of memory");
	memcpy(x->data, data, len);
	x->len = len;
}

/* Frees a spec2's payloads. */
static void
spec2_free(spec2 *s)
{
	int			i;

	for (i = 0; i < s->n; i++)
		free(s->s[i].data);
	s->n = 0;
}

/* Appends a u32 length and the bytes of a string. */
static uint8_t *
put_str(uint8_t *p, const char *str)
{
	p = put32(p, (uint32_t) strlen(str));
	memcpy(p, str, strlen(str));
	return p + strlen(str);
}

/* The sections of a model, as doc/format.md lays them out. */
static void
spec2_from_model(spec2 *s, const rl_model *m)
{
	const rl_config *c = &m->cfg;
	const rl_vocab *v = m->vocab;
	uint8_t    *buf = malloc(16 * (size_t) v->size + v->offsets[v->size] + 4 * m->nparams + 1024),
			   *p;
	int32_t		i;
	size_t		k;

	if (buf == NULL)
		tap_bail("out of memory");
	memset(s, 0, sizeof(*s));
	s->declared = -1;
	p = put32(buf, (uint32_t) c->cell);
	p = put32(p, (uint32_t) c->tokenizer);
	p = put32(p, c->lowercase ? 1 : 0);
	p = put32(p, (uint32_t) c->vocab_size);
	p = put32(p, (uint32_t) c->embedding_dim);
	p = put32(p, (uint32_t) c->hidden_size);
	p = put32(p, (uint32_t) c->num_layers);
	p = put64(p, doc_nparams((uint64_t) rl_cell_gates(c->cell), (uint64_t) c->vocab_size,
							 (uint64_t) c->embedding_dim, (uint64_t) c->hidden_size,
							 (uint64_t) c->num_layers));
	spec2_add(s, "CONF", buf, (size_t) (p - buf));
	p = put32(buf, (uint32_t) c->rules);
	p = put32(p, (uint32_t) c->normalize);
	p = put32(p, (c->split_on_punct ? 1u : 0u) | (c->has_filters ? 2u : 0u));
	p = put_str(p, c->filters);
	p = put_str(p, c->unicode_version);
	spec2_add(s, "TEXT", buf, (size_t) (p - buf));
	p = buf;
	for (i = 0; i < v->size; i++)
	{
		size_t		len;
		const char *t = rl_vocab_token(v, i, &len);

		p = put32(p, (uint32_t) len);
		memcpy(p, t, len);
		p += len;
	}
	spec2_add(s, "VOCB", buf, (size_t) (p - buf));
	if (c->tokenizer == RL_TOK_BPE)
	{
		p = put32(buf, (uint32_t) v->nmerges);
		for (i = 0; i < 2 * v->nmerges; i++)
			p = put32(p, (uint32_t) v->merges[i]);
		spec2_add(s, "MERG", buf, (size_t) (p - buf));
	}
	p = buf;
	for (k = 0; k < m->nparams; k++)
	{
		uint32_t	bits;

		memcpy(&bits, &m->params[k], 4);
		p = put32(p, bits);
	}
	spec2_add(s, "PARM", buf, (size_t) (p - buf));
	free(buf);
}

/* The spec of a model (pointing into it). */
static void
spec_from_model(spec *s, const rl_model *m)
{
	const rl_config *c = &m->cfg;
	int			i;

	memset(s, 0, sizeof(*s));
	memcpy(s->magic, "RNNLM\0\r\n", 8);
	s->version = 1;
	s->cell = (uint32_t) c->cell;
	s->tokenizer = (uint32_t) c->tokenizer;
	s->flags = c->lowercase ? 1 : 0;
	s->V = (uint32_t) c->vocab_size;
	s->E = (uint32_t) c->embedding_dim;
	s->H = (uint32_t) c->hidden_size;
	s->L = (uint32_t) c->num_layers;
	s->nparams = doc_nparams((uint64_t) rl_cell_gates(c->cell), s->V, s->E, s->H, s->L);
	s->ntok = c->vocab_size;
	if (s->ntok > MAXV)
		tap_bail("test model vocabulary too large");
	for (i = 0; i < s->ntok; i++)
	{
		size_t		len;

		s->tok[i] = rl_vocab_token(m->vocab, i, &len);
		s->toklen[i] = (uint32_t) len;
		s->lenfield[i] = -1;
	}
	s->params = m->params;
	s->nfloats = m->nparams;
	s->nan_at = -1;
}

/* A model with the given tokens and random weights. */
static rl_model *
make_model(rl_env *env, rl_cell_kind cell, rl_tokenizer_kind tk, int lowercase,
		   const char *const *toks, int ntok, int E, int H, int L, uint64_t seed)
{
	uint32_t	lens[MAXV];
	char		strings[256];
	size_t		pos = 0;
	rl_vocab   *v;
	rl_model   *m;
	rl_config	cfg;
	rl_rng		rng;
	int			i;

	for (i = 0; i < ntok; i++)
	{
		lens[i] = (uint32_t) strlen(toks[i]);
		memcpy(strings + pos, toks[i], lens[i]);
		pos += lens[i];
	}
	if (rl_vocab_create(env, ntok, lens, strings, &v) != RL_OK)
		tap_bail("rl_vocab_create: %s", env->errmsg);
	memset(&cfg, 0, sizeof(cfg));
	cfg.cell = cell;
	cfg.tokenizer = tk;
	cfg.lowercase = lowercase;
	cfg.vocab_size = ntok;
	cfg.embedding_dim = E;
	cfg.hidden_size = H;
	cfg.num_layers = L;
	if (rl_model_create(env, &cfg, v, &m) != RL_OK)
		tap_bail("rl_model_create: %s", env->errmsg);
	rl_rng_seed(&rng, seed);
	test_fill_uniform(m->params, m->nparams, 0.5, &rng);
	return m;
}

/* The score of a short document, or NaN. */
static double
score_of(rl_env *env, const rl_model *m, double *lps)
{
	static const int32_t ids[] = {2, 3, 2, 4, 1, 2};
	rl_state   *s;
	double		nll = NAN;
	size_t		correct;
	int32_t		fixed[6];
	int			i;

	for (i = 0; i < 6; i++)
		fixed[i] = ids[i] < m->cfg.vocab_size ? ids[i] : RL_TOKEN_UNK;
	if (rl_state_create(env, m, &s) != RL_OK)
		return NAN;
	if (rl_score(env, s, fixed, 6, &nll, &correct, lps) != RL_OK)
		nll = NAN;
	rl_state_free(env, s);
	return nll;
}

/* Whether two models have the same configuration, vocabulary and parameter bits. */
static int
models_equal(const rl_model *a, const rl_model *b)
{
	int32_t		i;

	if (memcmp(&a->cfg, &b->cfg, sizeof(rl_config)) != 0 || a->nparams != b->nparams ||
		a->vocab->size != b->vocab->size)
		return 0;
	for (i = 0; i < a->vocab->size; i++)
	{
		size_t		la,
					lb;
		const char *ta = rl_vocab_token(a->vocab, i, &la);
		const char *tb = rl_vocab_token(b->vocab, i, &lb);

		if (la != lb || memcmp(ta, tb, la) != 0 || rl_vocab_lookup(b->vocab, ta, la) != i)
			return 0;
	}
	return memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0;
}

/* Problems seen while loading blobs that may be corrupt. */
typedef struct load_stats
{
	long		tried,
				loaded,
				nomem,
				other_status,
				leaked,
				not_finite,
				ok_with_bad_crc;
} load_stats;

/*
 * Loads a blob that may be corrupt and records what went wrong: a status
 * other than RL_OK or RL_ERR_FORMAT, an allocation refused by max_alloc, a
 * leak, or a model that loads but does not score to a finite value.
 */
static rl_status
try_load(rl_env *env, const uint8_t *data, size_t len, load_stats *ls)
{
	long		live = test_live_blocks();
	rl_model   *m = NULL;
	rl_status	st;

	env->max_alloc = FUZZ_MAX_ALLOC;
	env->status = RL_OK;
	st = rl_model_deserialize(env, data, len, &m);
	ls->tried++;
	if (st == RL_OK)
	{
		ls->loaded++;
		if (m == NULL || !isfinite(score_of(env, m, NULL)))
			ls->not_finite++;
		rl_model_free(env, m);
	}
	else if (st == RL_ERR_NOMEM)
		ls->nomem++;
	else if (st != RL_ERR_FORMAT || m != NULL)
		ls->other_status++;
	if (test_live_blocks() != live)
		ls->leaked++;
	env->max_alloc = 0;
	return st;
}

/* Whether the stats show no problem. */
static int
stats_clean(const load_stats *ls)
{
	return ls->nomem == 0 && ls->other_status == 0 && ls->leaked == 0 && ls->not_finite == 0;
}

/* Describes load stats in a diagnostic. */
static void
stats_diag(const char *what, const load_stats *ls)
{
	tap_diag("%s: %ld blobs, %ld loaded, %ld refused for max_alloc, %ld other statuses, "
			 "%ld leaked, %ld loaded but scored non-finite",
			 what, ls->tried, ls->loaded, ls->nomem, ls->other_status, ls->leaked, ls->not_finite);
}

/* Round trip of one model. */
static void
check_round_trip(rl_env *env, rl_cell_kind cell, rl_tokenizer_kind tk, int lowercase)
{
	static const char *const toks[] = {"<eod>", "<unk>", "a", "\xC3\xA9t\xC3\xA9", "\xE4\xBD\xA0",
	"xyz", "q"};
	rl_model   *m = make_model(env, cell, tk, lowercase, toks, 7, 3, 4, 2, 100 + cell);
	rl_model   *m2 = NULL;
	uint8_t    *blob = NULL,
			   *blob2 = NULL,
			   *mine;
	size_t		len = 0,
				len2 = 0,
				mylen;
	spec		s;
	double		lp1[8],
				lp2[8],
				a,
				b;
	const char *name = rl_cell_name(cell);

	spec_from_model(&s, m);
	mine = spec_write(&s, &mylen);
	m2 = NULL;
	tap_ok(rl_model_deserialize(env, mine, mylen, &m2) == RL_OK && models_equal(m, m2) &&
		   m2->cfg.rules == RL_RULES_V01,
		   "%s: a file of format version 1 (%zu bytes) loads, with the text rules of 0.1", name, mylen);
	rl_model_free(env, m2);
	m2 = NULL;
	free(mine);
	if (rl_model_serialize(env, m, &blob, &len) != RL_OK)
		tap_bail("rl_model_serialize: %s", env->errmsg);
	{
		spec2		s2;

		spec2_from_model(&s2, m);
		mine = spec2_write(&s2, &mylen);
		spec2_free(&s2);
	}
	tap_ok(mylen == len && memcmp(mine, blob, len) == 0,
		   "%s: the serializer writes exactly the version 2 layout of doc/format.md (%zu bytes)", name, len);
	free(mine);

	if (rl_model_deserialize(env, blob, len, &m2) != RL_OK)
	{
		tap_diag("rl_model_deserialize: %s", env->errmsg);
		tap_ok(0, "%s: round trip", name);
		tap_ok(0, "%s: round trip scores", name);
	}
	else
	{
		rl_model_serialize(env, m2, &blob2, &len2);
		tap_ok(models_equal(m, m2) && blob2 && len2 == len && memcmp(blob, blob2, len) == 0,
			   "%s: deserialize(serialize(m)) has the same config, vocabulary and parameter bits",
			   name);
		a = score_of(env, m, lp1);
		b = score_of(env, m2, lp2);
		tap_ok(isfinite(a) && a == b && memcmp(lp1, lp2, 7 * sizeof(double)) == 0,
			   "%s: the loaded model scores identically (%.9g, %.9g)", name, a, b);
		rl_free(env, blob2);
		rl_model_free(env, m2);
	}
	rl_free(env, blob);
	rl_model_free(env, m);
}

/*
 * Every prefix, every single bit flip, and random corruption of a small
 * blob.  A bit flip in the first header_end bytes (the fixed fields) must
 * be refused, except bit 0 of the tokenizer (at byte tok_at: word and char
 * swap) and of the lowercase flag (the next u32).
 */
static void
check_corruption(rl_env *env, const uint8_t *blob, size_t len, size_t header_end, size_t tok_at)
{
	uint8_t    *buf = malloc(len + 16);
	load_stats	raw,
				fixed;
	size_t		k,
				bad_status,
				header_loaded_bad;
	int			bit;

	if (buf == NULL)
		tap_bail("out of memory");

	/* truncations */
	memset(&raw, 0, sizeof(raw));
	memset(&fixed, 0, sizeof(fixed));
	bad_status = 0;
	for (k = 0; k < len; k++)
	{
		memcpy(buf, blob, k);
		if (try_load(env, buf, k, &raw) != RL_ERR_FORMAT)
			bad_status++;
		fix_crc(buf, k);
		if (try_load(env, buf, k, &fixed) != RL_ERR_FORMAT)
			bad_status++;
	}
	stats_diag("truncations", &raw);
	tap_ok(bad_status == 0 && stats_clean(&raw) && raw.loaded == 0,
		   "every one of the %zu truncations is RL_ERR_FORMAT", len);
	stats_diag("truncations, checksum recomputed", &fixed);
	tap_ok(bad_status == 0 && stats_clean(&fixed) && fixed.loaded == 0,
		   "every truncation with its checksum recomputed is RL_ERR_FORMAT");

	/* single bit flips everywhere */
	memset(&raw, 0, sizeof(raw));
	memset(&fixed, 0, sizeof(fixed));
	bad_status = 0;
	header_loaded_bad = 0;
	for (k = 0; k < len; k++)
		for (bit = 0; bit < 8; bit++)
		{
			rl_status	st;

			memcpy(buf, blob, len);
			buf[k] ^= (uint8_t) (1u << bit);
			if (try_load(env, buf, len, &raw) != RL_ERR_FORMAT)
				bad_status++;
			if (k >= len - 4)
				continue;
			fix_crc(buf, len);
			st = try_load(env, buf, len, &fixed);
			/* in the header only the tokenizer's and the lowercase flag's low bits may change */
			if (k < header_end && st == RL_OK && !((k == tok_at || k == tok_at + 4) && bit == 0))
			{
				if (header_loaded_bad++ < 3)
					tap_diag("header byte %zu bit %d flipped still loads", k, bit);
			}
		}
	stats_diag("bit flips", &raw);
	tap_ok(bad_status == 0 && stats_clean(&raw) && raw.loaded == 0,
		   "all %zu single bit flips are caught (RL_ERR_FORMAT)", len * 8);
	stats_diag("bit flips, checksum recomputed", &fixed);
	tap_ok(stats_clean(&fixed),
		   "bit flips with the checksum recomputed load to a finite-scoring model or are RL_ERR_FORMAT");
	tap_ok(header_loaded_bad == 0,
		   "header bit flips with the checksum recomputed are refused, except tokenizer and lowercase");

	/* random corruption of a few bytes, checksum recomputed */
	{
		rl_rng		rng;
		int			trial;

		memset(&fixed, 0, sizeof(fixed));
		rl_rng_seed(&rng, 4242);
		for (trial = 0; trial < 3000; trial++)
		{
			int			nbytes = 1 + (int) (rl_rng_next(&rng) % 4);
			int			j;

			memcpy(buf, blob, len);
			for (j = 0; j < nbytes; j++)
			{
				uint64_t	r = rl_rng_next(&rng);
				/* half the time in the header and vocabulary */
				size_t		at = (r & 1) ? (size_t) ((r >> 8) % 100) : (size_t) ((r >> 8) % (len - 4));

				buf[at] = (uint8_t) (r >> 40);
			}
			fix_crc(buf, len);
			try_load(env, buf, len, &fixed);
		}
		stats_diag("random corruption, checksum recomputed", &fixed);
		tap_ok(stats_clean(&fixed), "3000 randomly corrupted blobs load cleanly or are RL_ERR_FORMAT");
	}
	free(buf);
}

/* One structural mutation: must be RL_ERR_FORMAT without a refused allocation or a leak. */
static void
expect_format(rl_env *env, const spec *s, const char *desc)
{
	load_stats	ls;
	size_t		len;
	uint8_t    *blob = spec_write(s, &len);
	rl_status	st;

	memset(&ls, 0, sizeof(ls));
	st = try_load(env, blob, len, &ls);
	if (st != RL_ERR_FORMAT)
		tap_diag("status %d: %s", (int) st, env->errmsg);
	tap_ok(st == RL_ERR_FORMAT && stats_clean(&ls), "refused (RL_ERR_FORMAT): %s [%s]",
		   desc, st == RL_ERR_FORMAT ? env->errmsg : "");
	free(blob);
}

/* Header and vocabulary fields that are wrong, with a valid checksum. */
static void
check_structure(rl_env *env, const rl_model *m)
{
	spec		base,
				s;
	float		extra_params[512];
	static const char *const dup[] = {"<eod>", "<unk>", "a", "\xC3\xA9", "a"};

	spec_from_model(&base, m);

#define MUTATE(stmt, desc) do { s = base; stmt; expect_format(env, &s, desc); } while (0)
	MUTATE(s.magic[0] = 'r', "wrong magic");
	MUTATE(s.magic[5] = 1, "magic without its NUL");
	MUTATE(s.version = 0, "version 0");
	MUTATE(s.version = 2, "version 2");
	MUTATE(s.cell = 3, "cell 3");
	MUTATE(s.cell = 0xFFFFFFFFu, "cell 0xFFFFFFFF");
	MUTATE(s.tokenizer = 2, "tokenizer 2");
	MUTATE(s.flags = 2, "flags bit 1");
	MUTATE(s.flags = 0x80000001u, "flags bit 31");
	MUTATE(s.V = 0xFFFFFFFFu, "V = 0xFFFFFFFF");
	MUTATE(s.V = 0, "V = 0");
	MUTATE(s.V = 2, "V = 2");
	MUTATE(s.V = RL_MAX_VOCAB + 1, "V = 2,000,001");
	MUTATE((s.V = RL_MAX_VOCAB, s.nparams = doc_nparams(4, s.V, s.E, s.H, s.L)),
		   "V = 2,000,000 with a matching parameter count");
	MUTATE(s.E = 0, "E = 0");
	MUTATE(s.E = RL_MAX_EMBED + 1, "E = 16385");
	MUTATE(s.H = 0, "H = 0");
	MUTATE(s.H = RL_MAX_HIDDEN + 1, "H = 16385");
	MUTATE(s.H = 0xFFFFFFFFu, "H = 0xFFFFFFFF");
	MUTATE((s.E = RL_MAX_EMBED, s.H = RL_MAX_HIDDEN, s.L = RL_MAX_LAYERS,
			s.nparams = doc_nparams(4, s.V, s.E, s.H, s.L)),
		   "E = H = 16384, 16 layers with a matching parameter count");
	MUTATE(s.L = 0, "0 layers");
	MUTATE(s.L = RL_MAX_LAYERS + 1, "17 layers");
	MUTATE(s.reserved = 1, "reserved = 1");
	MUTATE(s.reserved = 0x80000000u, "reserved = 0x80000000");
	MUTATE(s.nparams += 1, "parameter count one too many");
	MUTATE(s.nparams -= 1, "parameter count one too few");
	MUTATE(s.nparams |= (uint64_t) 1 << 32, "parameter count with its high word set");
	MUTATE((s.nparams -= 1, s.nfloats -= 1), "one parameter short, consistently");
	MUTATE(s.lenfield[2] = 0xFFFFFFFFu, "vocabulary entry length 0xFFFFFFFF");
	MUTATE(s.lenfield[2] = 0x80000000u, "vocabulary entry length 2^31");
	MUTATE(s.lenfield[2] = RL_MAX_TOKEN_BYTES + 1, "vocabulary entry length 1025");
	MUTATE(s.lenfield[2] = 0, "vocabulary entry length 0");
	MUTATE(s.lenfield[2] = s.toklen[2] + 1, "vocabulary entry length one too long");
	MUTATE((s.ntok = 5, s.tok[4] = dup[4], s.toklen[4] = 1, s.tok[3] = dup[3], s.toklen[3] = 2),
		   "a duplicate vocabulary entry");
	MUTATE((s.tok[3] = "\xFF", s.toklen[3] = 1), "vocabulary entry 0xFF");
	MUTATE((s.tok[3] = "\xC0\xAF", s.toklen[3] = 2), "overlong UTF-8 in a vocabulary entry");
	MUTATE((s.tok[3] = "\xE4\xBD", s.toklen[3] = 2), "truncated UTF-8 in a vocabulary entry");
	MUTATE((s.tok[3] = "\xED\xA0\x80", s.toklen[3] = 3), "a surrogate in a vocabulary entry");
	MUTATE((s.tok[0] = "<unk>", s.tok[1] = "<eod>"), "<unk> before <eod>");
	MUTATE(s.tok[0] = "<EOD>", "entry 0 is not <eod>");
	MUTATE((s.tok[1] = "<unk", s.toklen[1] = 4), "entry 1 is not <unk>");
	MUTATE((s.tok[0] = "a", s.toklen[0] = 1, s.tok[2] = "<eod>", s.toklen[2] = 5),
		   "<eod> is not entry 0");
	MUTATE((s.nan_at = 0, s.nan_value = NAN), "a NaN parameter");
	MUTATE((s.nan_at = (int) s.nfloats / 2, s.nan_value = INFINITY), "an infinite parameter");
	MUTATE((s.nan_at = (int) s.nfloats - 1, s.nan_value = -INFINITY), "a -Inf last parameter");
	MUTATE(s.extra = 1, "one extra byte before the checksum");
	MUTATE(s.extra = 4, "four extra bytes before the checksum");
	if (base.nfloats + 1 > sizeof(extra_params) / sizeof(float))
		tap_bail("test model too large");
	memcpy(extra_params, base.params, base.nfloats * sizeof(float));
	extra_params[base.nfloats] = 0.25f;
	MUTATE((s.params = extra_params, s.nfloats += 1), "one parameter more than the count");
#undef MUTATE
}

/* One version 2 mutation: must be RL_ERR_FORMAT without a refused allocation or a leak. */
static void
expect_format2(rl_env *env, const spec2 *s, const char *desc)
{
	load_stats	ls;
	size_t		len;
	uint8_t    *blob = spec2_write(s, &len);
	rl_status	st;

	memset(&ls, 0, sizeof(ls));
	st = try_load(env, blob, len, &ls);
	if (st != RL_ERR_FORMAT)
		tap_diag("status %d: %s", (int) st, env->errmsg);
	tap_ok(st == RL_ERR_FORMAT && stats_clean(&ls), "version 2 refused (RL_ERR_FORMAT): %s [%s]",
		   desc, st == RL_ERR_FORMAT ? env->errmsg : "");
	free(blob);
}

/* The index of a section by tag, or bails. */
static int
sec_index(const spec2 *s, const char *tag)
{
	int			i;

	for (i = 0; i < s->n; i++)
		if (memcmp(s->s[i].tag, tag, 4) == 0)
			return i;
	tap_bail("no section %s", tag);
}

/* Removes section i. */
static void
sec_drop(spec2 *s, int i)
{
	free(s->s[i].data);
	memmove(&s->s[i], &s->s[i + 1], sizeof(sec) * (size_t) (s->n - i - 1));
	s->n--;
}

/* A deep copy of a spec2. */
static void
spec2_copy(spec2 *dst, const spec2 *src)
{
	int			i;

	*dst = *src;
	dst->n = 0;
	for (i = 0; i < src->n; i++)
		spec2_add(dst, src->s[i].tag, src->s[i].data, src->s[i].len);
}

/* Sets the u32 at byte off of section tag. */
static void
sec_put32(spec2 *s, const char *tag, size_t off, uint32_t v)
{
	put32(s->s[sec_index(s, tag)].data + off, v);
}

/* Sections of a version 2 file that are wrong, missing, repeated or unknown. */
static void
check_structure_v2(rl_env *env, const rl_model *m)
{
	spec2		base,
				s;
	uint8_t		junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	int			i;

	spec2_from_model(&base, m);
#define MUTATE2(stmt, desc) do { spec2_copy(&s, &base); stmt; expect_format2(env, &s, desc); spec2_free(&s); } while (0)
	MUTATE2(sec_drop(&s, sec_index(&s, "CONF")), "no CONF section");
	MUTATE2(sec_drop(&s, sec_index(&s, "TEXT")), "no TEXT section");
	MUTATE2(sec_drop(&s, sec_index(&s, "VOCB")), "no VOCB section");
	MUTATE2(sec_drop(&s, sec_index(&s, "PARM")), "no PARM section");
	MUTATE2((spec2_add(&s, "TEXT", s.s[1].data, s.s[1].len)), "the TEXT section twice");
	MUTATE2((spec2_add(&s, "CONF", s.s[0].data, s.s[0].len), sec_drop(&s, 0)), "CONF not first");
	MUTATE2(spec2_add(&s, "XTRA", junk, 8), "an unknown section that must be understood");
	MUTATE2(spec2_add(&s, "MERG", junk, 4), "a bpe merges section in a word model");
	MUTATE2(s.declared = s.n + 1, "one section more declared than present");
	MUTATE2(s.declared = s.n - 1, "one section fewer declared than present");
	MUTATE2(s.declared = 0xFFFFFFFFu, "2^32 - 1 sections declared");
	MUTATE2(s.extra = 3, "three bytes after the last section");
	MUTATE2(s.s[sec_index(&s, "PARM")].len -= 4, "one parameter short");
	MUTATE2(s.s[sec_index(&s, "CONF")].len -= 4, "a short CONF section");
	MUTATE2(s.s[sec_index(&s, "VOCB")].len -= 1, "a VOCB section one byte short");
	MUTATE2(sec_put32(&s, "CONF", 4, 3), "tokenizer 3");
	MUTATE2(sec_put32(&s, "CONF", 4, 2), "a bpe model without its merges");
	MUTATE2(sec_put32(&s, "TEXT", 0, 2), "text rules 2");
	MUTATE2(sec_put32(&s, "TEXT", 4, 3), "normalisation 3");
	MUTATE2(sec_put32(&s, "TEXT", 4, 1), "the rules of 0.1 with a normalisation");
	MUTATE2(sec_put32(&s, "TEXT", 8, 4), "text flags bit 2");
	MUTATE2(sec_put32(&s, "TEXT", 12, 300), "a filter string longer than its section");
	MUTATE2(sec_put32(&s, "TEXT", 16, 40), "a Unicode version string that runs on");
	for (i = 0; i < 8; i++)
		junk[i] = 0;
	MUTATE2((spec2_free(&s), spec2_add(&s, "CONF", base.s[0].data, base.s[0].len), s.declared = 65),
			"65 sections declared");
#undef MUTATE2

	/* an unknown section whose tag starts in lower case is skipped */
	{
		uint8_t    *blob;
		size_t		len;
		rl_model   *m2 = NULL;

		spec2_copy(&s, &base);
		spec2_add(&s, "xtra", junk, 8);
		blob = spec2_write(&s, &len);
		tap_ok(rl_model_deserialize(env, blob, len, &m2) == RL_OK && models_equal(m, m2),
			   "version 2: an unknown section tagged in lower case is skipped, the model loads");
		rl_model_free(env, m2);
		free(blob);
		spec2_free(&s);
	}
	spec2_free(&base);
}

/* A small bpe model learned from text, with Unicode rules. */
static rl_model *
make_bpe_model(rl_env *env)
{
	static const char *const docs[] = {
		"the cat sat on the mat", "the cat ate the rat", "\xE4\xBD\xA0\xE5\xA5\xBD \xE4\xBD\xA0\xE5\xA5\xBD",
		"caf\xC3\xA9 caf\xC3\xA9 the the"
	};
	rl_config	c;
	rl_builder *b;
	rl_vocab   *v;
	int32_t    *tr,
			   *va;
	size_t		ntr,
				nva;
	rl_model   *m;
	rl_rng		rng;
	int			i;

	memset(&c, 0, sizeof(c));
	rl_config_text_init(&c, RL_TOK_BPE, 0);
	if (rl_builder_create(env, &c, &b) != RL_OK)
		tap_bail("rl_builder_create: %s", env->errmsg);
	for (i = 0; i < 4; i++)
		rl_builder_add(b, docs[i], strlen(docs[i]));
	if (rl_builder_finish(b, 0, 270, &v, &tr, &ntr, &va, &nva) != RL_OK)
		tap_bail("rl_builder_finish: %s", env->errmsg);
	rl_builder_free(b);
	rl_free(env, tr);
	c.cell = RL_CELL_GRU;
	c.vocab_size = v->size;
	c.embedding_dim = 2;
	c.hidden_size = 2;
	c.num_layers = 1;
	if (rl_model_create(env, &c, v, &m) != RL_OK)
		tap_bail("rl_model_create: %s", env->errmsg);
	rl_rng_seed(&rng, 5);
	test_fill_uniform(m->params, m->nparams, 0.5, &rng);
	return m;
}

/* A bpe model's file: round trip, the layout, its merges section checked, fuzzed. */
static void
check_bpe_format(rl_env *env)
{
	rl_model   *m = make_bpe_model(env),
			   *m2 = NULL;
	uint8_t    *blob,
			   *mine;
	size_t		len,
				mylen;
	spec2		base,
				s;
	int			same;

	if (rl_model_serialize(env, m, &blob, &len) != RL_OK)
		tap_bail("rl_model_serialize: %s", env->errmsg);
	spec2_from_model(&base, m);
	mine = spec2_write(&base, &mylen);
	tap_ok(mylen == len && memcmp(mine, blob, len) == 0,
		   "bpe: the serializer writes the layout of doc/format.md, merges included (%d merges, %zu bytes)",
		   m->vocab->nmerges, len);
	free(mine);
	same = rl_model_deserialize(env, blob, len, &m2) == RL_OK && models_equal(m, m2) &&
		m2->vocab->nmerges == m->vocab->nmerges &&
		memcmp(m2->vocab->merges, m->vocab->merges, 8 * (size_t) m->vocab->nmerges) == 0 &&
		memcmp(m2->vocab->merge_into, m->vocab->merge_into, 4 * (size_t) m->vocab->nmerges) == 0;
	tap_ok(same, "bpe: the model round-trips with its merges");
	rl_model_free(env, m2);

#define MUTATE2(stmt, desc) do { spec2_copy(&s, &base); stmt; expect_format2(env, &s, desc); spec2_free(&s); } while (0)
	MUTATE2(sec_drop(&s, sec_index(&s, "MERG")), "bpe: no merges section");
	MUTATE2(sec_put32(&s, "MERG", 0, 100000), "bpe: a merge count beyond the section");
	MUTATE2(sec_put32(&s, "MERG", 4, (uint32_t) m->cfg.vocab_size), "bpe: a merge of a token out of range");
	MUTATE2(sec_put32(&s, "MERG", 4, 0), "bpe: a merge of <eod>");
	MUTATE2(sec_put32(&s, "MERG", 8, RL_BPE_BYTE0 + 'Q'), "bpe: a merge that spells no token");
	MUTATE2(memcpy(s.s[sec_index(&s, "MERG")].data + 12, s.s[sec_index(&s, "MERG")].data + 4, 8),
			"bpe: a merge repeated");
	MUTATE2(s.s[sec_index(&s, "VOCB")].data[18 + 5 * 'a' + 4] = 'b', "bpe: the byte tokens out of order");
#undef MUTATE2
	spec2_free(&base);
	tap_diag("fuzzing a %zu-byte bpe model file", len);
	check_corruption(env, blob, len, 64, 32);
	rl_free(env, blob);
	rl_model_free(env, m);
}

/* Allocation failures while reading and writing are RL_ERR_NOMEM, without leaks. */
static void
check_alloc_failures(rl_env *env, const uint8_t *blob, size_t len)
{
	long		n,
				bad = 0,
				not_nomem = 0,
				live = test_live_blocks();
	rl_model   *m = NULL;
	uint8_t    *out = NULL;
	size_t		outlen;
	rl_status	st = RL_ERR_NOMEM;

	for (n = 0; n < 1000; n++)
	{
		test_fail_alloc_at(n);
		st = rl_model_deserialize(env, blob, len, &m);
		test_fail_alloc_at(-1);
		if (st == RL_OK)
			break;
		if ((st != RL_ERR_NOMEM && st != RL_ERR_FORMAT) || m != NULL || test_live_blocks() != live)
			bad++;
		if (st != RL_ERR_NOMEM)
		{
			if (not_nomem++ == 0)
				tap_diag("allocation failure %ld in deserialize gives status %d: %s",
						 n, (int) st, env->errmsg);
		}
	}
	if (st == RL_OK)
	{
		test_fail_alloc_at(0);
		st = rl_model_serialize(env, m, &out, &outlen);
		test_fail_alloc_at(-1);
		if (st != RL_ERR_NOMEM || out != NULL)
			bad++;
		rl_model_free(env, m);
	}
	else
		bad++;
	tap_ok(bad == 0 && n > 3 && test_live_blocks() == live,
		   "each of %ld allocation failures in deserialize, and one in serialize, fails cleanly without a leak",
		   n);
	tap_ok(not_nomem == 0,
		   "every allocation failure in deserialize is RL_ERR_NOMEM (%ld are not)", not_nomem);
}

/* The checksum, round trips, corruption and structure. */
void
test_format(void)
{
	rl_env		env;
	long		live;
	static const char *const toks[] = {"<eod>", "<unk>", "a", "\xC3\xA9", "xyz"};
	rl_model   *m;
	uint8_t    *blob;
	size_t		len;
	int			c;

	test_env_init(&env);
	live = test_live_blocks();
	tap_ok(rl_crc32((const uint8_t *) "123456789", 9) == 0xCBF43926u &&
		   rl_crc32((const uint8_t *) "", 0) == 0 &&
		   rl_crc32((const uint8_t *) "a", 1) == 0xE8B7BE43u,
		   "rl_crc32 gives the CRC-32 check value 0xCBF43926 for \"123456789\"");

	for (c = RL_CELL_RNN; c <= RL_CELL_GRU; c++)
		check_round_trip(&env, (rl_cell_kind) c, c == RL_CELL_LSTM ? RL_TOK_CHAR : RL_TOK_WORD,
						 c != RL_CELL_GRU);

	m = make_model(&env, RL_CELL_LSTM, RL_TOK_WORD, 1, toks, 5, 2, 2, 2, 7);
	if (rl_model_serialize(&env, m, &blob, &len) != RL_OK)
		tap_bail("rl_model_serialize: %s", env.errmsg);
	{
		spec		s1;
		uint8_t    *v1;
		size_t		v1len;

		spec_from_model(&s1, m);
		v1 = spec_write(&s1, &v1len);
		tap_diag("fuzzing a %zu-byte blob of format version 1 (lstm, V 5, E 2, H 2, 2 layers)", v1len);
		check_corruption(&env, v1, v1len, 52, 16);
		free(v1);
	}
	tap_diag("fuzzing its %zu-byte blob of format version 2", len);
	check_corruption(&env, blob, len, 64, 32);
	check_structure(&env, m);
	check_structure_v2(&env, m);
	check_bpe_format(&env);
	check_alloc_failures(&env, blob, len);

	/* a duplicate entry is reported as such */
	{
		spec		s;
		uint8_t    *b;
		size_t		blen;
		rl_model   *out = NULL;

		spec_from_model(&s, m);
		s.tok[4] = "a";
		s.toklen[4] = 1;
		b = spec_write(&s, &blen);
		rl_model_deserialize(&env, b, blen, &out);
		tap_ok(strstr(env.errmsg, "entry 4 is a duplicate") != NULL &&
			   strstr(env.errmsg, "vocabulary: invalid vocabulary") == NULL,
			   "the message for a duplicate vocabulary entry names it [%s]", env.errmsg);
		free(b);
	}

	rl_free(&env, blob);
	rl_model_free(&env, m);
	tap_ok(test_live_blocks() == live, "the format tests free everything they allocate (%ld left)",
		   test_live_blocks() - live);
}
