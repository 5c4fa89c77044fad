/*
 * format.c
 *		The model file: serialize, validate, deserialize.  The layout is
 *		specified in doc/format.md.
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

#define HEADER_BYTES 52

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

/* Serializes a model into a newly allocated blob. */
rl_status
rl_model_serialize(rl_env *env, const rl_model *m, uint8_t **out, size_t *len)
{
	const rl_config *c = &m->cfg;
	const rl_vocab *v = m->vocab;
	size_t		vbytes;
	size_t		total,
				pbytes;
	uint8_t    *buf,
			   *p;
	int32_t		i;
	size_t		k;

	*out = NULL;
	if (v == NULL)
		return rl_error(env, RL_ERR_INVALID, "model has no vocabulary");
	vbytes = (size_t) v->offsets[v->size] + 4 * (size_t) v->size;
	if (rl_mul_overflow(m->nparams, 4, &pbytes) ||
		rl_add_overflow(HEADER_BYTES + 4, vbytes, &total) ||
		rl_add_overflow(total, pbytes, &total))
		return rl_error(env, RL_ERR_INVALID, "model too large to serialize");
	buf = rl_alloc(env, total);
	if (buf == NULL)
		return env->status;
	memcpy(buf, RL_FORMAT_MAGIC, 8);
	rl_put_u32(buf + 8, RL_FORMAT_VERSION);
	rl_put_u32(buf + 12, (uint32_t) c->cell);
	rl_put_u32(buf + 16, (uint32_t) c->tokenizer);
	rl_put_u32(buf + 20, c->lowercase ? 1u : 0u);
	rl_put_u32(buf + 24, (uint32_t) c->vocab_size);
	rl_put_u32(buf + 28, (uint32_t) c->embedding_dim);
	rl_put_u32(buf + 32, (uint32_t) c->hidden_size);
	rl_put_u32(buf + 36, (uint32_t) c->num_layers);
	rl_put_u32(buf + 40, 0);
	rl_put_u32(buf + 44, (uint32_t) ((uint64_t) m->nparams));
	rl_put_u32(buf + 48, (uint32_t) ((uint64_t) m->nparams >> 32));
	p = buf + HEADER_BYTES;
	for (i = 0; i < v->size; i++)
	{
		size_t		tlen;
		const char *t = rl_vocab_token(v, i, &tlen);

		rl_put_u32(p, (uint32_t) tlen);
		memcpy(p + 4, t, tlen);
		p += 4 + tlen;
	}
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

/* Validates a blob and builds the model it describes. */
rl_status
rl_model_deserialize(rl_env *env, const uint8_t *data, size_t len, rl_model **out)
{
	rl_config	cfg;
	uint32_t	flags,
				reserved,
				u;
	uint64_t	nparams;
	size_t		expect,
				pos,
				rest,
				k;
	uint32_t   *lengths = NULL;
	char	   *strings = NULL;
	rl_vocab   *vocab = NULL;
	rl_model   *m = NULL;
	int32_t		i;
	rl_status	st;

	*out = NULL;
	if (len < HEADER_BYTES + 4)
		return rl_error(env, RL_ERR_FORMAT, "model data is truncated (%zu bytes)", len);
	if (memcmp(data, RL_FORMAT_MAGIC, 8) != 0)
		return rl_error(env, RL_ERR_FORMAT, "model data does not start with the rnnlm magic number");
	u = rl_get_u32(data + 8);
	if (u != RL_FORMAT_VERSION)
		return rl_error(env, RL_ERR_FORMAT, "unsupported model format version %u (this build reads %d)",
						u, RL_FORMAT_VERSION);
	if (rl_get_u32(data + len - 4) != rl_crc32(data, len - 4))
		return rl_error(env, RL_ERR_FORMAT, "model data checksum mismatch");

	u = rl_get_u32(data + 12);
	if (u > RL_CELL_GRU)
		return rl_error(env, RL_ERR_FORMAT, "unknown cell type %u", u);
	cfg.cell = (rl_cell_kind) u;
	u = rl_get_u32(data + 16);
	if (u > RL_TOK_CHAR)
		return rl_error(env, RL_ERR_FORMAT, "unknown tokenizer %u", u);
	cfg.tokenizer = (rl_tokenizer_kind) u;
	flags = rl_get_u32(data + 20);
	if (flags & ~1u)
		return rl_error(env, RL_ERR_FORMAT, "unknown flags 0x%x", flags);
	cfg.lowercase = (int) (flags & 1u);
	u = rl_get_u32(data + 24);
	if (u < RL_NUM_SPECIAL + 1 || u > RL_MAX_VOCAB)
		return rl_error(env, RL_ERR_FORMAT, "vocabulary size %u is out of range", u);
	cfg.vocab_size = (int32_t) u;
	u = rl_get_u32(data + 28);
	if (u < 1 || u > RL_MAX_EMBED)
		return rl_error(env, RL_ERR_FORMAT, "embedding dimension %u is out of range", u);
	cfg.embedding_dim = (int32_t) u;
	u = rl_get_u32(data + 32);
	if (u < 1 || u > RL_MAX_HIDDEN)
		return rl_error(env, RL_ERR_FORMAT, "hidden size %u is out of range", u);
	cfg.hidden_size = (int32_t) u;
	u = rl_get_u32(data + 36);
	if (u < 1 || u > RL_MAX_LAYERS)
		return rl_error(env, RL_ERR_FORMAT, "layer count %u is out of range", u);
	cfg.num_layers = (int32_t) u;
	reserved = rl_get_u32(data + 40);
	if (reserved != 0)
		return rl_error(env, RL_ERR_FORMAT, "reserved header field is not zero");
	nparams = (uint64_t) rl_get_u32(data + 44) | ((uint64_t) rl_get_u32(data + 48) << 32);
	if (rl_config_nparams(env, &cfg, &expect) != RL_OK)
		return rl_error(env, RL_ERR_FORMAT, "model shape is invalid: %s", env->errmsg);
	if (nparams != (uint64_t) expect)
		return rl_error(env, RL_ERR_FORMAT, "parameter count %llu does not match the shape (%zu)",
						(unsigned long long) nparams, expect);

	/* the vocabulary: at least 5 bytes per entry must remain */
	pos = HEADER_BYTES;
	rest = len - 4 - pos;
	if ((size_t) cfg.vocab_size > rest / 5)
		return rl_error(env, RL_ERR_FORMAT, "model data is truncated in the vocabulary");
	lengths = rl_alloc_array(env, (size_t) cfg.vocab_size, sizeof(uint32_t));
	if (lengths == NULL)
		return env->status;
	{
		size_t		scan = pos,
					sbytes = 0;

		for (i = 0; i < cfg.vocab_size; i++)
		{
			if (len - 4 - scan < 4)
				goto truncated;
			u = rl_get_u32(data + scan);
			if (u < 1 || u > RL_MAX_TOKEN_BYTES || len - 4 - scan - 4 < u)
			{
				rl_free(env, lengths);
				return rl_error(env, RL_ERR_FORMAT, "vocabulary entry %d has an invalid length", i);
			}
			if (!rl_utf8_valid((const char *) data + scan + 4, u))
			{
				rl_free(env, lengths);
				return rl_error(env, RL_ERR_FORMAT, "vocabulary entry %d is not valid UTF-8", i);
			}
			lengths[i] = u;
			sbytes += u;
			scan += 4 + u;
		}
		/* what remains must be exactly the parameters */
		if (len - 4 - scan != expect * 4)
		{
			rl_free(env, lengths);
			return rl_error(env, RL_ERR_FORMAT, "model data has %zu bytes of parameters, expected %zu",
							len - 4 - scan, expect * 4);
		}
		strings = rl_alloc(env, sbytes + 1);
		if (strings == NULL)
		{
			rl_free(env, lengths);
			return env->status;
		}
		sbytes = 0;
		for (i = 0; i < cfg.vocab_size; i++)
		{
			memcpy(strings + sbytes, data + pos + 4, lengths[i]);
			sbytes += lengths[i];
			pos += 4 + lengths[i];
		}
	}
	if (lengths[RL_TOKEN_EOD] != 5 || memcmp(strings, "<eod>", 5) != 0 ||
		lengths[RL_TOKEN_UNK] != 5 || memcmp(strings + 5, "<unk>", 5) != 0)
	{
		rl_free(env, lengths);
		rl_free(env, strings);
		return rl_error(env, RL_ERR_FORMAT, "vocabulary does not start with <eod> and <unk>");
	}
	st = rl_vocab_create(env, cfg.vocab_size, lengths, strings, &vocab);
	rl_free(env, lengths);
	rl_free(env, strings);
	if (st == RL_ERR_NOMEM)
		return st;
	if (st != RL_OK)
		return rl_error(env, RL_ERR_FORMAT, "invalid vocabulary: %s", env->errmsg);

	st = rl_model_create(env, &cfg, vocab, &m);
	if (st != RL_OK)
	{
		rl_vocab_free(env, vocab);
		return st;
	}
	for (k = 0; k < expect; k++)
	{
		uint32_t	bits = rl_get_u32(data + pos + 4 * k);
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

truncated:
	rl_free(env, lengths);
	return rl_error(env, RL_ERR_FORMAT, "model data is truncated in the vocabulary");
}
