/*
 * test_format.c
 *		The model file: the checksum, round trips, a writer built from
 *		doc/format.md alone compared with the serializer, and the reader
 *		against truncated, bit-flipped and structurally wrong blobs.
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

	if (rl_model_serialize(env, m, &blob, &len) != RL_OK)
		tap_bail("rl_model_serialize: %s", env->errmsg);
	spec_from_model(&s, m);
	mine = spec_write(&s, &mylen);
	tap_ok(mylen == len && memcmp(mine, blob, len) == 0,
		   "%s: the serializer writes exactly the layout of doc/format.md (%zu bytes)", name, len);
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

/* Every prefix, every single bit flip, and random corruption of a small blob. */
static void
check_corruption(rl_env *env, const uint8_t *blob, size_t len)
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
			if (k < 52 && st == RL_OK && !((k == 16 || k == 20) && bit == 0))
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
	tap_diag("fuzzing a %zu-byte blob (lstm, V 5, E 2, H 2, 2 layers)", len);
	check_corruption(&env, blob, len);
	check_structure(&env, m);
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
