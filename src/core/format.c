/*
 * format.c
 *		The model file: serialize (format version 2), validate and
 *		deserialize (versions 1 and 2).  The layouts are specified in
 *		doc/format.md.
 *
 * Version 2 is a list of tagged sections, so that a tokenizer (bpe's
 * merges), or later data, adds a section rather than a new header layout.
 * A tag whose first byte is an upper-case letter must be understood: a
 * reader that does not know it refuses the file; one whose first byte is
 * lower-case may be skipped.  Version 1 (rnnlm 0.1 and 0.2's first
 * models) is a fixed header, the vocabulary and the parameters; its models
 * keep the text rules of 0.1.
 *
 * A blob may come from anywhere (a restored dump, an edited row), so the
 * reader trusts nothing: the checksum is verified first, every size is
 * checked against the bytes that remain before anything is allocated, the
 * parameter count must match the one the shapes imply, and every weight
 * must be finite.  Anything else is RL_ERR_FORMAT with a message.
 */
#include "rnnlm_core.h"

#include <math.h>
#include <string.h>

#define V1_HEADER_BYTES	52
#define V2_HEADER_BYTES	16		/* magic, version, section count */
#define SECTION_HEAD	12		/* tag, length */
#define MAX_SECTIONS	64

#define TAG_CONF	RL_TAG('C', 'O', 'N', 'F')
#define TAG_TEXT	RL_TAG('T', 'E', 'X', 'T')
#define TAG_VOCAB	RL_TAG('V', 'O', 'C', 'B')
#define TAG_PARAMS	RL_TAG('P', 'A', 'R', 'M')
#define CONF_BYTES	36

/* Writes a little-endian u32. */
void
rl_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
	p[2] = (uint8_t) (v >> 16);
	p[3] = (uint8_t) (v >> 24);
}

/* Reads a little-endian u32. */
uint32_t
rl_get_u32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) |
		((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

/* Writes a little-endian u64. */
void
rl_put_u64(uint8_t *p, uint64_t v)
{
	rl_put_u32(p, (uint32_t) v);
	rl_put_u32(p + 4, (uint32_t) (v >> 32));
}

/* Reads a little-endian u64. */
uint64_t
rl_get_u64(const uint8_t *p)
{
	return (uint64_t) rl_get_u32(p) | ((uint64_t) rl_get_u32(p + 4) << 32);
}

/* CRC-32 (IEEE 802.3, as zlib) of data. */
uint32_t
rl_crc32(const uint8_t *data, size_t len)
{
	static uint32_t table[256];
	static int	ready = 0;
	uint32_t	crc = 0xFFFFFFFFu;
	size_t		i;

	if (!ready)
	{
		uint32_t	n;

		for (n = 0; n < 256; n++)
		{
			uint32_t	c = n;
			int			k;

			for (k = 0; k < 8; k++)
				c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[n] = c;
		}
		ready = 1;
	}
	for (i = 0; i < len; i++)
		crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
	return crc ^ 0xFFFFFFFFu;
}

/* ---------------- writing (version 2) ---------------- */

/* Bytes of the vocabulary section's payload. */
static size_t
vocab_bytes(const rl_vocab *v)
{
	return (size_t) v->offsets[v->size] + 4 * (size_t) v->size;
}

/* Bytes of the text rules section's payload. */
static size_t
text_bytes(const rl_config *c)
{
	return 20 + strlen(c->filters) + strlen(c->unicode_version);
}

/* Writes a section head; returns where its payload starts. */
static uint8_t *
put_section(uint8_t *p, uint32_t tag, size_t len)
{
	rl_put_u32(p, tag);
	rl_put_u64(p + 4, (uint64_t) len);
	return p + SECTION_HEAD;
}

/* Writes a u32 length and the bytes of a string. */
static uint8_t *
put_string(uint8_t *p, const char *s)
{
	size_t		n = strlen(s);

	rl_put_u32(p, (uint32_t) n);
	memcpy(p + 4, s, n);
	return p + 4 + n;
}

/* The CONF payload: the shapes. */
static void
write_conf(uint8_t *p, const rl_model *m)
{
	const rl_config *c = &m->cfg;

	rl_put_u32(p, (uint32_t) c->cell);
	rl_put_u32(p + 4, (uint32_t) c->tokenizer);
	rl_put_u32(p + 8, c->lowercase ? 1u : 0u);
	rl_put_u32(p + 12, (uint32_t) c->vocab_size);
	rl_put_u32(p + 16, (uint32_t) c->embedding_dim);
	rl_put_u32(p + 20, (uint32_t) c->hidden_size);
	rl_put_u32(p + 24, (uint32_t) c->num_layers);
	rl_put_u64(p + 28, (uint64_t) m->nparams);
}

/* The TEXT payload: the text rules. */
static void
write_text(uint8_t *p, const rl_config *c)
{
	rl_put_u32(p, (uint32_t) c->rules);
	rl_put_u32(p + 4, (uint32_t) c->normalize);
	rl_put_u32(p + 8, (c->split_on_punct ? 1u : 0u) | (c->has_filters ? 2u : 0u));
	p = put_string(p + 12, c->filters);
	put_string(p, c->unicode_version);
}

/* The VOCB payload: each token as a u32 length and its bytes. */
static void
write_vocab(uint8_t *p, const rl_vocab *v)
{
	int32_t		i;

	for (i = 0; i < v->size; i++)
	{
		size_t		tlen;
		const char *t = rl_vocab_token(v, i, &tlen);

		rl_put_u32(p, (uint32_t) tlen);
		memcpy(p + 4, t, tlen);
		p += 4 + tlen;
	}
}

/* Serializes a model into a newly allocated blob (format version 2). */
rl_status
rl_model_serialize(rl_env *env, const rl_model *m, uint8_t **out, size_t *len)
{
	const rl_tokenizer_ops *ops = rl_tokenizer(m->cfg.tokenizer);
	const rl_vocab *v = m->vocab;
	size_t		total,
				pbytes,
				tok_bytes = 0;
	uint32_t	nsections = 4;
	uint8_t    *buf,
			   *p;
	size_t		k;

	*out = NULL;
	if (v == NULL || ops == NULL)
		return rl_error(env, RL_ERR_INVALID, "model has no vocabulary");
	if (ops->section_tag)
	{
		tok_bytes = ops->section_size(v);
		nsections++;
	}
	if (rl_mul_overflow(m->nparams, 4, &pbytes) ||
		rl_add_overflow(V2_HEADER_BYTES + 4 + SECTION_HEAD * nsections + CONF_BYTES +
						text_bytes(&m->cfg), vocab_bytes(v), &total) ||
		rl_add_overflow(total, tok_bytes, &total) ||
		rl_add_overflow(total, pbytes, &total))
		return rl_error(env, RL_ERR_INVALID, "model too large to serialize");
	buf = rl_alloc(env, total);
	if (buf == NULL)
		return env->status;
	memcpy(buf, RL_FORMAT_MAGIC, 8);
	rl_put_u32(buf + 8, RL_FORMAT_VERSION);
	rl_put_u32(buf + 12, nsections);
	p = put_section(buf + V2_HEADER_BYTES, TAG_CONF, CONF_BYTES);
	write_conf(p, m);
	p = put_section(p + CONF_BYTES, TAG_TEXT, text_bytes(&m->cfg));
	write_text(p, &m->cfg);
	p = put_section(p + text_bytes(&m->cfg), TAG_VOCAB, vocab_bytes(v));
	write_vocab(p, v);
	p += vocab_bytes(v);
	if (ops->section_tag)
	{
		p = put_section(p, ops->section_tag, tok_bytes);
		ops->section_write(v, p);
		p += tok_bytes;
	}
	p = put_section(p, TAG_PARAMS, pbytes);
	for (k = 0; k < m->nparams; k++)
	{
		uint32_t	bits;

		memcpy(&bits, &m->params[k], 4);
		rl_put_u32(p, bits);
		p += 4;
	}
	rl_put_u32(p, rl_crc32(buf, (size_t) (p - buf)));
	*out = buf;
	*len = total;
	return RL_OK;
}

/* ---------------- reading ---------------- */

/* Checks the shapes of a config read from a file; nparams must match them. */
static rl_status
check_shapes(rl_env *env, uint32_t cell, uint32_t tokenizer, uint32_t flags,
			 const uint32_t dims[4], uint64_t nparams, rl_config *cfg, size_t *expect)
{
	if (cell > RL_CELL_GRU)
		return rl_error(env, RL_ERR_FORMAT, "unknown cell type %u", cell);
	cfg->cell = (rl_cell_kind) cell;
	if (rl_tokenizer((rl_tokenizer_kind) tokenizer) == NULL)
		return rl_error(env, RL_ERR_FORMAT, "unknown tokenizer %u", tokenizer);
	cfg->tokenizer = (rl_tokenizer_kind) tokenizer;
	if (flags & ~1u)
		return rl_error(env, RL_ERR_FORMAT, "unknown flags 0x%x", flags);
	cfg->lowercase = (int) (flags & 1u);
	if (dims[0] < RL_NUM_SPECIAL + 1 || dims[0] > RL_MAX_VOCAB)
		return rl_error(env, RL_ERR_FORMAT, "vocabulary size %u is out of range", dims[0]);
	cfg->vocab_size = (int32_t) dims[0];
	if (dims[1] < 1 || dims[1] > RL_MAX_EMBED)
		return rl_error(env, RL_ERR_FORMAT, "embedding dimension %u is out of range", dims[1]);
	cfg->embedding_dim = (int32_t) dims[1];
	if (dims[2] < 1 || dims[2] > RL_MAX_HIDDEN)
		return rl_error(env, RL_ERR_FORMAT, "hidden size %u is out of range", dims[2]);
	cfg->hidden_size = (int32_t) dims[2];
	if (dims[3] < 1 || dims[3] > RL_MAX_LAYERS)
		return rl_error(env, RL_ERR_FORMAT, "layer count %u is out of range", dims[3]);
	cfg->num_layers = (int32_t) dims[3];
	if (rl_config_nparams(env, cfg, expect) != RL_OK)
		return rl_error(env, RL_ERR_FORMAT, "model shape is invalid: %s", env->errmsg);
	if (nparams != (uint64_t) *expect)
		return rl_error(env, RL_ERR_FORMAT, "parameter count %llu does not match the shape (%zu)",
						(unsigned long long) nparams, *expect);
	return RL_OK;
}

/*
 * Reads the vocabulary: V entries of a u32 length and the bytes, exactly
 * len bytes.  Word and char tokens must be UTF-8; the first two are <eod>
 * and <unk>; none repeats.
 */
static rl_status
read_vocab(rl_env *env, const rl_config *cfg, const uint8_t *data, size_t len,
		   rl_vocab **out)
{
	int32_t		V = cfg->vocab_size,
				i;
	uint32_t   *lengths;
	char	   *strings;
	size_t		scan = 0,
				sbytes = 0;
	rl_status	st;
	int			utf8 = rl_tokenizer(cfg->tokenizer)->has_unk;

	*out = NULL;
	if ((size_t) V > len / 5)
		return rl_error(env, RL_ERR_FORMAT, "model data is truncated in the vocabulary");
	lengths = rl_alloc_array(env, (size_t) V, sizeof(uint32_t));
	if (lengths == NULL)
		return env->status;
	for (i = 0; i < V; i++)
	{
		uint32_t	u;

		if (len - scan < 4)
		{
			rl_free(env, lengths);
			return rl_error(env, RL_ERR_FORMAT, "model data is truncated in the vocabulary");
		}
		u = rl_get_u32(data + scan);
		if (u < 1 || u > RL_MAX_TOKEN_BYTES || len - scan - 4 < u)
		{
			rl_free(env, lengths);
			return rl_error(env, RL_ERR_FORMAT, "vocabulary entry %d has an invalid length", i);
		}
		if (utf8 && !rl_utf8_valid((const char *) data + scan + 4, u))
		{
			rl_free(env, lengths);
			return rl_error(env, RL_ERR_FORMAT, "vocabulary entry %d is not valid UTF-8", i);
		}
		lengths[i] = u;
		sbytes += u;
		scan += 4 + u;
	}
	if (scan != len)
	{
		rl_free(env, lengths);
		return rl_error(env, RL_ERR_FORMAT, "the vocabulary has %zu bytes too many", len - scan);
	}
	strings = rl_alloc(env, sbytes + 1);
	if (strings == NULL)
	{
		rl_free(env, lengths);
		return env->status;
	}
	sbytes = 0;
	scan = 0;
	for (i = 0; i < V; i++)
	{
		memcpy(strings + sbytes, data + scan + 4, lengths[i]);
		sbytes += lengths[i];
		scan += 4 + lengths[i];
	}
	if (lengths[RL_TOKEN_EOD] != 5 || memcmp(strings, "<eod>", 5) != 0 ||
		lengths[RL_TOKEN_UNK] != 5 || memcmp(strings + 5, "<unk>", 5) != 0)
	{
		rl_free(env, lengths);
		rl_free(env, strings);
		return rl_error(env, RL_ERR_FORMAT, "vocabulary does not start with <eod> and <unk>");
	}
	st = rl_vocab_create(env, V, lengths, strings, out);
	rl_free(env, lengths);
	rl_free(env, strings);
	if (st == RL_ERR_NOMEM)
		return st;
	if (st != RL_OK)
		return rl_error(env, RL_ERR_FORMAT, "invalid vocabulary: %s", env->errmsg);
	return RL_OK;
}

/* Builds the model from its config and vocabulary and reads its finite parameters. */
static rl_status
read_params(rl_env *env, const rl_config *cfg, rl_vocab *vocab, const uint8_t *data,
			size_t expect, rl_model **out)
{
	rl_model   *m;
	rl_status	st = rl_model_create(env, cfg, vocab, &m);
	size_t		k;

	if (st != RL_OK)
	{
		rl_vocab_free(env, vocab);
		return st;
	}
	for (k = 0; k < expect; k++)
	{
		uint32_t	bits = rl_get_u32(data + 4 * k);
		float		f;

		memcpy(&f, &bits, 4);
		if (!isfinite(f))
		{
			rl_model_free(env, m);
			return rl_error(env, RL_ERR_FORMAT, "parameter %zu is not finite", k);
		}
		m->params[k] = f;
	}
	*out = m;
	return RL_OK;
}

/* Format version 1: the fixed header, the vocabulary, the parameters. */
static rl_status
read_v1(rl_env *env, const uint8_t *data, size_t len, rl_model **out)
{
	rl_config	cfg;
	uint32_t	dims[4];
	uint64_t	nparams;
	size_t		expect,
				vlen,
				scan;
	rl_vocab   *vocab;
	rl_status	st;
	int32_t		i;

	if (len < V1_HEADER_BYTES + 4)
		return rl_error(env, RL_ERR_FORMAT, "model data is truncated (%zu bytes)", len);
	memset(&cfg, 0, sizeof(cfg));
	cfg.rules = RL_RULES_V01;
	for (i = 0; i < 4; i++)
		dims[i] = rl_get_u32(data + 24 + 4 * i);
	if (rl_get_u32(data + 40) != 0)
		return rl_error(env, RL_ERR_FORMAT, "reserved header field is not zero");
	nparams = rl_get_u64(data + 44);
	st = check_shapes(env, rl_get_u32(data + 12), rl_get_u32(data + 16), rl_get_u32(data + 20),
					  dims, nparams, &cfg, &expect);
	if (st != RL_OK)
		return st;
	if (cfg.tokenizer == RL_TOK_BPE)
		return rl_error(env, RL_ERR_FORMAT, "unknown tokenizer %u", (unsigned) cfg.tokenizer);
	/* the vocabulary is what lies between the header and the parameters */
	if ((len - 4 - V1_HEADER_BYTES) / 4 < expect)
		return rl_error(env, RL_ERR_FORMAT, "model data is truncated in the vocabulary");
	vlen = len - 4 - V1_HEADER_BYTES - 4 * expect;
	/* find the vocabulary's own end, for the message of a size mismatch */
	for (i = 0, scan = 0; i < cfg.vocab_size && scan + 4 <= len - 4 - V1_HEADER_BYTES; i++)
		scan += 4 + rl_get_u32(data + V1_HEADER_BYTES + scan);
	if (i == cfg.vocab_size && scan <= len - 4 - V1_HEADER_BYTES && scan != vlen)
		return rl_error(env, RL_ERR_FORMAT, "model data has %zu bytes of parameters, expected %zu",
						len - 4 - V1_HEADER_BYTES - scan, expect * 4);
	st = read_vocab(env, &cfg, data + V1_HEADER_BYTES, vlen, &vocab);
	if (st != RL_OK)
		return st;
	return read_params(env, &cfg, vocab, data + V1_HEADER_BYTES + vlen, expect, out);
}

/* The sections of a version 2 file, as found. */
typedef struct v2_sections
{
	const uint8_t *conf,
			   *text,
			   *vocab,
			   *params,
			   *tok;
	size_t		conf_len,
				text_len,
				vocab_len,
				params_len,
				tok_len;
	uint32_t	tok_tag;
} v2_sections;

/* Records one section, refusing repeats and unknown sections that must be understood. */
static rl_status
note_section(rl_env *env, v2_sections *s, uint32_t tag, const uint8_t *p, size_t len)
{
	const uint8_t **slot = NULL;
	size_t	   *slen = NULL;
	char		name[5];

	if (tag == TAG_CONF)
		slot = &s->conf, slen = &s->conf_len;
	else if (tag == TAG_TEXT)
		slot = &s->text, slen = &s->text_len;
	else if (tag == TAG_VOCAB)
		slot = &s->vocab, slen = &s->vocab_len;
	else if (tag == TAG_PARAMS)
		slot = &s->params, slen = &s->params_len;
	else if (tag == s->tok_tag && tag != 0)
		slot = &s->tok, slen = &s->tok_len;
	name[0] = (char) tag;
	name[1] = (char) (tag >> 8);
	name[2] = (char) (tag >> 16);
	name[3] = (char) (tag >> 24);
	name[4] = '\0';
	if (slot == NULL)
	{
		if (name[0] >= 'a' && name[0] <= 'z')
			return RL_OK;		/* optional, unknown here: skipped */
		return rl_error(env, RL_ERR_FORMAT, "model data has a section 0x%08x this build does not know",
						tag);
	}
	if (*slot != NULL)
		return rl_error(env, RL_ERR_FORMAT, "model data repeats the section %s", name);
	*slot = p;
	*slen = len;
	return RL_OK;
}

/* Reads the string of a TEXT section at *pos (u32 length, bytes) into buf (cap bytes). */
static int
get_string(const uint8_t *p, size_t len, size_t *pos, char *buf, size_t cap)
{
	uint32_t	n;

	if (len - *pos < 4)
		return 0;
	n = rl_get_u32(p + *pos);
	if (n >= cap || len - *pos - 4 < n)
		return 0;
	memcpy(buf, p + *pos + 4, n);
	buf[n] = '\0';
	*pos += 4 + n;
	return rl_utf8_valid(buf, n);
}

/* The TEXT section into the config. */
static rl_status
read_text(rl_env *env, const uint8_t *p, size_t len, rl_config *cfg)
{
	uint32_t	flags;
	size_t		pos = 12;

	if (len < 20)
		return rl_error(env, RL_ERR_FORMAT, "the text rules section is truncated");
	if (rl_get_u32(p) > RL_RULES_UNICODE)
		return rl_error(env, RL_ERR_FORMAT, "unknown text rules %u", rl_get_u32(p));
	cfg->rules = (rl_text_rules) rl_get_u32(p);
	if (rl_get_u32(p + 4) > RL_NORM_NFKC)
		return rl_error(env, RL_ERR_FORMAT, "unknown normalisation %u", rl_get_u32(p + 4));
	cfg->normalize = (rl_normalize) rl_get_u32(p + 4);
	flags = rl_get_u32(p + 8);
	if (flags & ~3u)
		return rl_error(env, RL_ERR_FORMAT, "unknown text flags 0x%x", flags);
	cfg->split_on_punct = (int) (flags & 1u);
	cfg->has_filters = (int) ((flags >> 1) & 1u);
	if (!get_string(p, len, &pos, cfg->filters, sizeof(cfg->filters)) ||
		!get_string(p, len, &pos, cfg->unicode_version, sizeof(cfg->unicode_version)) ||
		pos != len)
		return rl_error(env, RL_ERR_FORMAT, "the text rules section is malformed");
	if (cfg->rules == RL_RULES_V01 &&
		(cfg->normalize || cfg->split_on_punct || cfg->has_filters || cfg->tokenizer == RL_TOK_BPE))
		return rl_error(env, RL_ERR_FORMAT, "the text rules of 0.1 take no options");
	return RL_OK;
}

/* Format version 2: tagged sections. */
static rl_status
read_v2(rl_env *env, const uint8_t *data, size_t len, rl_model **out)
{
	v2_sections s;
	rl_config	cfg;
	uint32_t	dims[4],
				nsections,
				i;
	size_t		pos = V2_HEADER_BYTES,
				end = len - 4,
				expect;
	const rl_tokenizer_ops *ops;
	rl_vocab   *vocab;
	rl_status	st;

	memset(&s, 0, sizeof(s));
	memset(&cfg, 0, sizeof(cfg));
	if (len < V2_HEADER_BYTES + 4)
		return rl_error(env, RL_ERR_FORMAT, "model data is truncated (%zu bytes)", len);
	nsections = rl_get_u32(data + 12);
	if (nsections > MAX_SECTIONS)
		return rl_error(env, RL_ERR_FORMAT, "model data has %u sections", nsections);
	for (i = 0; i < nsections; i++)
	{
		uint32_t	tag;
		uint64_t	slen;

		if (end - pos < SECTION_HEAD)
			return rl_error(env, RL_ERR_FORMAT, "model data is truncated in section %u", i);
		tag = rl_get_u32(data + pos);
		slen = rl_get_u64(data + pos + 4);
		pos += SECTION_HEAD;
		if (slen > end - pos)
			return rl_error(env, RL_ERR_FORMAT, "model data is truncated in section %u", i);
		if (i == 0 && tag != TAG_CONF)
			return rl_error(env, RL_ERR_FORMAT, "model data does not start with its CONF section");
		if (i == 0)
		{
			if (slen != CONF_BYTES)
				return rl_error(env, RL_ERR_FORMAT, "the CONF section has the wrong size");
			ops = rl_tokenizer((rl_tokenizer_kind) rl_get_u32(data + pos + 4));
			s.tok_tag = ops ? ops->section_tag : 0;
		}
		if ((st = note_section(env, &s, tag, data + pos, (size_t) slen)) != RL_OK)
			return st;
		pos += (size_t) slen;
	}
	if (pos != end)
		return rl_error(env, RL_ERR_FORMAT, "model data has %zu bytes after its last section", end - pos);
	if (!s.conf || !s.text || !s.vocab || !s.params)
		return rl_error(env, RL_ERR_FORMAT, "model data lacks a required section");
	for (i = 0; i < 4; i++)
		dims[i] = rl_get_u32(s.conf + 12 + 4 * i);
	st = check_shapes(env, rl_get_u32(s.conf), rl_get_u32(s.conf + 4), rl_get_u32(s.conf + 8),
					  dims, rl_get_u64(s.conf + 28), &cfg, &expect);
	if (st != RL_OK)
		return st;
	ops = rl_tokenizer(cfg.tokenizer);
	if (ops->section_tag && s.tok == NULL)
		return rl_error(env, RL_ERR_FORMAT, "model data lacks its tokenizer's section");
	if ((st = read_text(env, s.text, s.text_len, &cfg)) != RL_OK)
		return st;
	if (s.params_len != 4 * expect)
		return rl_error(env, RL_ERR_FORMAT, "model data has %zu bytes of parameters, expected %zu",
						s.params_len, expect * 4);
	if ((st = read_vocab(env, &cfg, s.vocab, s.vocab_len, &vocab)) != RL_OK)
		return st;
	if (ops->section_tag && (st = ops->section_read(env, vocab, s.tok, s.tok_len)) != RL_OK)
	{
		rl_vocab_free(env, vocab);
		return st;
	}
	return read_params(env, &cfg, vocab, s.params, expect, out);
}

/* Validates a blob and builds the model it describes. */
rl_status
rl_model_deserialize(rl_env *env, const uint8_t *data, size_t len, rl_model **out)
{
	uint32_t	version;

	*out = NULL;
	if (len < V2_HEADER_BYTES + 4)
		return rl_error(env, RL_ERR_FORMAT, "model data is truncated (%zu bytes)", len);
	if (memcmp(data, RL_FORMAT_MAGIC, 8) != 0)
		return rl_error(env, RL_ERR_FORMAT, "model data does not start with the rnnlm magic number");
	version = rl_get_u32(data + 8);
	if (version != 1 && version != 2)
		return rl_error(env, RL_ERR_FORMAT, "unsupported model format version %u (this build reads 1 and 2)",
						version);
	if (rl_get_u32(data + len - 4) != rl_crc32(data, len - 4))
		return rl_error(env, RL_ERR_FORMAT, "model data checksum mismatch");
	return version == 1 ? read_v1(env, data, len, out) : read_v2(env, data, len, out);
}
