/*
 * text.c
 *		From UTF-8 text to the units a tokenizer counts: words, code points
 *		or byte-level pieces, under the text rules a model was made with.
 *
 * Two sets of rules exist, and a model keeps the one it was made with
 * (rl_config.rules), so that its tokens never change:
 *
 * RL_RULES_V01, the rules of rnnlm 0.1 (every model of format version 1):
 * case folded, when asked, for ASCII, Latin-1, Latin Extended-A, basic
 * Greek and Cyrillic only; the word tokenizer removes a fixed list of
 * punctuation and splits on a fixed list of white space.  These tables are
 * kept exactly as they were.
 *
 * RL_RULES_UNICODE, every newer model, with the Unicode library (utf8proc):
 *   - the text is normalised (normalize: none, NFC or NFKC) and, when
 *     lowercase is on, case folded (Unicode full case folding);
 *   - white space is every character of category Zs, Zl or Zp or of
 *     bidirectional class WS, B or S (this includes tab, newline, U+001C to
 *     U+001F and U+0085);
 *   - word: a filtered character is one of the filters given, or else any
 *     character of a punctuation (P*) or symbol (S*) category; it is removed
 *     from the word, or with split_on_punct it separates words as white
 *     space does ("e-mail" is two words), as Keras's Tokenizer does;
 *   - bpe: the text is cut into pieces, each a run of letters, marks and
 *     numbers, a run of white space, or a run of other characters, a single
 *     space before a run that is not white space joining that run (" the");
 *     a piece longer than RL_BPE_MAX_PIECE bytes is cut at a character
 *     boundary.  Merges never cross pieces.
 * In both, a byte that is not part of well-formed UTF-8 is U+FFFD, so a
 * word or char token is never a byte fragment.
 */
#include "rnnlm_core.h"

#include <string.h>
#include <utf8proc.h>

/* Decodes one code point; invalid input yields U+FFFD and consumes one byte. */
size_t
rl_utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t	c = s[0];
	size_t		n,
				i;
	uint32_t	min;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if ((c & 0xE0) == 0xC0)
	{
		n = 2;
		c &= 0x1F;
		min = 0x80;
	}
	else if ((c & 0xF0) == 0xE0)
	{
		n = 3;
		c &= 0x0F;
		min = 0x800;
	}
	else if ((c & 0xF8) == 0xF0)
	{
		n = 4;
		c &= 0x07;
		min = 0x10000;
	}
	else
		goto bad;
	if (n > len)
		goto bad;
	for (i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			goto bad;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		goto bad;
	*cp = c;
	return n;
bad:
	*cp = 0xFFFD;
	return 1;
}

/* Encodes a code point as UTF-8 into buf (4 bytes); returns the length. */
size_t
rl_utf8_put(uint32_t c, char *buf)
{
	if (c < 0x80)
	{
		buf[0] = (char) c;
		return 1;
	}
	if (c < 0x800)
	{
		buf[0] = (char) (0xC0 | (c >> 6));
		buf[1] = (char) (0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000)
	{
		buf[0] = (char) (0xE0 | (c >> 12));
		buf[1] = (char) (0x80 | ((c >> 6) & 0x3F));
		buf[2] = (char) (0x80 | (c & 0x3F));
		return 3;
	}
	buf[0] = (char) (0xF0 | (c >> 18));
	buf[1] = (char) (0x80 | ((c >> 12) & 0x3F));
	buf[2] = (char) (0x80 | ((c >> 6) & 0x3F));
	buf[3] = (char) (0x80 | (c & 0x3F));
	return 4;
}

/* Whether s is well-formed UTF-8 without NUL characters. */
int
rl_utf8_valid(const char *s, size_t len)
{
	size_t		pos = 0;

	while (pos < len)
	{
		uint32_t	c;
		size_t		n = rl_utf8_next((const unsigned char *) s + pos, len - pos, &c);

		if (c == 0 || (c == 0xFFFD && n == 1 && (unsigned char) s[pos] >= 0x80))
			return 0;
		pos += n;
	}
	return 1;
}

/* Bytes of the UTF-8 sequence a lead byte starts (0: not a lead byte). */
static size_t
utf8_seq_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0)
		return 2;
	if ((c & 0xF0) == 0xE0)
		return 3;
	if ((c & 0xF8) == 0xF0)
		return 4;
	return 0;
}

size_t
rl_utf8_clean(const char *s, size_t len, char *out)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		pos = 0,
				k = 0;

	while (pos < len)
	{
		uint32_t	c;
		size_t		want = utf8_seq_len(u[pos]);
		size_t		n;

		/* an incomplete character at the very end is dropped */
		if (want > 1 && pos + want > len)
		{
			size_t		i;
			int			prefix = 1;

			for (i = pos + 1; i < len; i++)
				if ((u[i] & 0xC0) != 0x80)
					prefix = 0;
			if (prefix)
				break;
		}
		n = rl_utf8_next(u + pos, len - pos, &c);
		if (c == 0)
			c = 0xFFFD;
		k += rl_utf8_put(c, out + k);
		pos += n;
	}
	return k;
}

/* ---------------- the rules of rnnlm 0.1 ---------------- */

/* Simple case folding for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic. */
static uint32_t
v01_fold_case(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c < 0xC0)
		return c;
	if (c <= 0xDE && c != 0xD7)
		return c + 32;
	if (c == 0x130)				/* capital I with dot above */
		return 'i';
	if (c >= 0x100 && c <= 0x137 && (c & 1) == 0)
		return c + 1;
	if (c >= 0x139 && c <= 0x148 && (c & 1) == 1)
		return c + 1;
	if (c >= 0x14A && c <= 0x177 && (c & 1) == 0)
		return c + 1;
	if (c == 0x178)
		return 0xFF;
	if ((c == 0x179 || c == 0x17B || c == 0x17D))
		return c + 1;
	if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	if (c >= 0x410 && c <= 0x42F)
		return c + 32;
	return c;
}

/* White space, by 0.1's list. */
static int
v01_is_space(uint32_t c)
{
	return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 ||
		c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
		c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Punctuation and symbols 0.1's word tokenizer removes. */
static int
v01_is_punct(uint32_t c)
{
	if (c < 0x80)
		return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
			(c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
	if (c >= 0xA1 && c <= 0xBF)
		return c != 0xAA && c != 0xB2 && c != 0xB3 && c != 0xB5 &&
			c != 0xB9 && c != 0xBA && c != 0xBC && c != 0xBD && c != 0xBE;
	if (c == 0xD7 || c == 0xF7)
		return 1;
	if ((c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E))
		return 1;
	if ((c >= 0x3001 && c <= 0x3003) || (c >= 0x3008 && c <= 0x3011) ||
		(c >= 0x3014 && c <= 0x301F))
		return 1;
	if ((c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
		(c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65))
		return 1;
	return 0;
}

/* ---------------- the Unicode rules ---------------- */

/* White space: categories Zs, Zl, Zp, or bidirectional class WS, B, S. */
static int
uni_is_space(uint32_t c)
{
	const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t) c);

	return p->category == UTF8PROC_CATEGORY_ZS || p->category == UTF8PROC_CATEGORY_ZL ||
		p->category == UTF8PROC_CATEGORY_ZP || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
		p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

/* Punctuation (P*) or symbol (S*) categories. */
static int
uni_is_punct_or_symbol(uint32_t c)
{
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t) c);

	return (k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO) ||
		(k >= UTF8PROC_CATEGORY_SM && k <= UTF8PROC_CATEGORY_SO);
}

/* Letters, marks and numbers: what a bpe piece of "word" characters holds. */
static int
uni_is_alnum(uint32_t c)
{
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t) c);

	return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_NO;
}

/* The utf8proc options of the config's normalisation and case folding. */
static utf8proc_option_t
uni_options(const rl_config *c)
{
	utf8proc_option_t o = 0;

	if (c->normalize == RL_NORM_NFC)
		o |= UTF8PROC_STABLE | UTF8PROC_COMPOSE;
	else if (c->normalize == RL_NORM_NFKC)
		o |= UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
	if (c->lowercase)
		o |= UTF8PROC_CASEFOLD;
	return o;
}

/* Normalises and folds code points cp[0..k) as the options ask, into a new array. */
static uint32_t *
uni_transform(rl_env *env, utf8proc_option_t opt, const uint32_t *cp, size_t k, size_t *n)
{
	char	   *utf8 = rl_alloc(env, 4 * k + 1);
	size_t		blen = 0,
				cap = 2 * k + 16,
				i;
	uint32_t   *out = NULL;
	utf8proc_ssize_t got;

	if (utf8 == NULL)
		return NULL;
	for (i = 0; i < k; i++)
		blen += rl_utf8_put(cp[i], utf8 + blen);
	for (;;)
	{
		out = rl_alloc_array(env, cap, sizeof(uint32_t));
		if (out == NULL)
			break;
		/* decomposes, folds and puts combining marks in canonical order */
		got = utf8proc_decompose((const utf8proc_uint8_t *) utf8, (utf8proc_ssize_t) blen,
								 (utf8proc_int32_t *) out, (utf8proc_ssize_t) cap, opt);
		if (got >= 0 && (size_t) got <= cap)
			got = utf8proc_normalize_utf32((utf8proc_int32_t *) out, got, opt);
		if (got < 0)
		{
			rl_error(env, RL_ERR_INVALID, "text could not be normalised: %s",
					 utf8proc_errmsg(got));
			rl_free(env, out);
			out = NULL;
			break;
		}
		if ((size_t) got <= cap)
		{
			*n = (size_t) got;
			break;
		}
		rl_free(env, out);
		cap = (size_t) got;
	}
	rl_free(env, utf8);
	return out;
}

/*
 * The code points of text under the config's rules (normalised and case
 * folded as it asks), allocated from env.
 */
static uint32_t *
code_points(rl_env *env, const rl_config *c, const char *text, size_t len, size_t *n)
{
	const unsigned char *s = (const unsigned char *) text;
	uint32_t   *cp = rl_alloc_array(env, len + 1, sizeof(uint32_t));
	size_t		pos = 0,
				k = 0;

	if (cp == NULL)
		return NULL;
	while (pos < len)
	{
		uint32_t	u;

		pos += rl_utf8_next(s + pos, len - pos, &u);
		if (c->rules == RL_RULES_V01 && c->lowercase)
			u = v01_fold_case(u);
		cp[k++] = u;
	}
	if (c->rules == RL_RULES_UNICODE && uni_options(c) != 0 && k > 0)
	{
		uint32_t   *out = uni_transform(env, uni_options(c), cp, k, n);

		rl_free(env, cp);
		return out;
	}
	*n = k;
	return cp;
}

/* Whether c is one of the config's filter characters. */
static int
in_filters(const rl_config *c, uint32_t u)
{
	const unsigned char *f = (const unsigned char *) c->filters;
	size_t		len = strlen(c->filters),
				pos = 0;

	while (pos < len)
	{
		uint32_t	x;

		pos += rl_utf8_next(f + pos, len - pos, &x);
		if (x == u)
			return 1;
	}
	return 0;
}

/* A word being built: UTF-8 bytes, at most RL_MAX_TOKEN_BYTES (the rest dropped). */
typedef struct word_buf
{
	char		b[RL_MAX_TOKEN_BYTES + 4];
	size_t		len;
} word_buf;

/* Adds a code point to the word, if it fits. */
static void
word_add(word_buf *w, uint32_t u)
{
	char		buf[4];
	size_t		n = rl_utf8_put(u, buf);

	if (w->len + n <= RL_MAX_TOKEN_BYTES)
	{
		memcpy(w->b + w->len, buf, n);
		w->len += n;
	}
}

/* Emits the word, if any, and empties it; 0 if emit stopped. */
static int
word_flush(word_buf *w, rl_token_fn emit, void *ud)
{
	size_t		len = w->len;

	w->len = 0;
	return len == 0 || emit(ud, w->b, len);
}

/* The word tokenizer: words between white space, filtered characters dropped or separating. */
static int
split_words(const rl_config *c, const uint32_t *cp, size_t n, rl_token_fn emit, void *ud)
{
	word_buf	w;
	size_t		i;

	w.len = 0;
	for (i = 0; i < n; i++)
	{
		uint32_t	u = cp[i];
		int			space,
					filtered;

		if (c->rules == RL_RULES_V01)
		{
			space = v01_is_space(u);
			filtered = !space && v01_is_punct(u);
		}
		else
		{
			space = uni_is_space(u);
			filtered = !space && (c->has_filters ? in_filters(c, u) : uni_is_punct_or_symbol(u));
			if (filtered && c->split_on_punct)
				space = 1;
		}
		if (space)
		{
			if (!word_flush(&w, emit, ud))
				return 0;
			continue;
		}
		if (!filtered)
			word_add(&w, u);
	}
	return word_flush(&w, emit, ud);
}

/* The char tokenizer: one unit per code point. */
static int
split_chars(const uint32_t *cp, size_t n, rl_token_fn emit, void *ud)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		char		buf[4];

		if (!emit(ud, buf, rl_utf8_put(cp[i], buf)))
			return 0;
	}
	return 1;
}

/* The bpe piece class of a code point: 0 letter/mark/number, 1 white space, 2 other. */
static int
piece_class(uint32_t u)
{
	if (uni_is_alnum(u))
		return 0;
	return uni_is_space(u) ? 1 : 2;
}

/* The bpe pre-tokenizer: runs of one class, a single space joining the run after it. */
static int
split_pieces(const uint32_t *cp, size_t n, rl_token_fn emit, void *ud)
{
	char		piece[RL_BPE_MAX_PIECE + 4];
	size_t		plen = 0,
				i;
	int			cls = -1;

	for (i = 0; i < n; i++)
	{
		int			k = piece_class(cp[i]);
		char		buf[4];
		size_t		bl = rl_utf8_put(cp[i], buf);

		if (plen > 0)
		{
			int			joins = k == cls || (plen == 1 && piece[0] == ' ');

			if (joins && plen + bl <= RL_BPE_MAX_PIECE)
			{
				memcpy(piece + plen, buf, bl);
				plen += bl;
				cls = k;
				continue;
			}
			if (!joins && cls == 1 && plen > 1 && piece[plen - 1] == ' ')
			{
				/* the last space of a run of white space goes with what follows */
				if (!emit(ud, piece, plen - 1))
					return 0;
				piece[0] = ' ';
				memcpy(piece + 1, buf, bl);
				plen = 1 + bl;
				cls = k;
				continue;
			}
			if (!emit(ud, piece, plen))
				return 0;
			plen = 0;
		}
		memcpy(piece, buf, bl);
		plen = bl;
		cls = k;
	}
	return plen == 0 || emit(ud, piece, plen);
}

int
rl_split(rl_env *env, const rl_config *c, const char *text, size_t len,
		 rl_token_fn emit, void *ud)
{
	size_t		n = 0;
	uint32_t   *cp = code_points(env, c, text, len, &n);
	int			ok;

	if (cp == NULL)
		return 0;
	switch (c->tokenizer)
	{
		case RL_TOK_WORD:
			ok = split_words(c, cp, n, emit, ud);
			break;
		case RL_TOK_CHAR:
			ok = split_chars(cp, n, emit, ud);
			break;
		default:
			ok = split_pieces(cp, n, emit, ud);
			break;
	}
	rl_free(env, cp);
	return ok;
}

/* The rules of a new model: Unicode's, with the library's Unicode version. */
void
rl_config_text_init(rl_config *c, rl_tokenizer_kind kind, int lowercase)
{
	c->tokenizer = kind;
	c->lowercase = lowercase;
	c->rules = RL_RULES_UNICODE;
	c->normalize = RL_NORM_NONE;
	c->split_on_punct = 0;
	c->has_filters = 0;
	c->filters[0] = '\0';
	strncpy(c->unicode_version, utf8proc_unicode_version(), RL_MAX_UNICODE_VERSION);
	c->unicode_version[RL_MAX_UNICODE_VERSION] = '\0';
}

/* Whether two configs turn text into the same units (the Unicode version aside). */
int
rl_config_same_text(const rl_config *a, const rl_config *b)
{
	return a->tokenizer == b->tokenizer && a->lowercase == b->lowercase &&
		a->rules == b->rules && a->normalize == b->normalize &&
		a->split_on_punct == b->split_on_punct && a->has_filters == b->has_filters &&
		strcmp(a->filters, b->filters) == 0;
}

/* The name of a normalisation, as in the option normalize. */
const char *
rl_normalize_name(rl_normalize n)
{
	switch (n)
	{
		case RL_NORM_NONE:
			return "none";
		case RL_NORM_NFC:
			return "nfc";
		case RL_NORM_NFKC:
			return "nfkc";
	}
	return "?";
}
