/*
 * test_tokenizer.c
 *		The word and char tokenizers (rl_split), the vocabulary, the
 *		builder that turns training documents into id streams, and
 *		rl_tokenize with a fixed vocabulary.
 */
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXTOK 64

typedef struct tok_list
{
	int			n;
	int			bad;			/* an empty or invalid UTF-8 token was seen */
	int			limit;			/* stop after this many tokens; 0 = never */
	size_t		len[MAXTOK];
	char		text[MAXTOK][RL_MAX_TOKEN_BYTES + 1];
} tok_list;

/* emit callback: stores a token. */
static int
collect(void *ud, const char *tok, size_t len)
{
	tok_list   *l = ud;

	if (len == 0 || len > RL_MAX_TOKEN_BYTES || !rl_utf8_valid(tok, len))
		l->bad = 1;
	if (l->n < MAXTOK && len <= RL_MAX_TOKEN_BYTES)
	{
		memcpy(l->text[l->n], tok, len);
		l->text[l->n][len] = '\0';
		l->len[l->n] = len;
	}
	l->n++;
	return l->limit == 0 || l->n < l->limit;
}

/* Splits text; tokens land in l. */
static int
split(tok_list *l, rl_tokenizer_kind kind, int lowercase, const char *text, size_t len)
{
	memset(l, 0, sizeof(*l));
	rl_env		env;

	test_env_init(&env);
	return rl_split(&env, TEST_TEXT_V01(kind, lowercase), text, len, collect, l);
}

/* Whether text splits into exactly the NULL-terminated expected tokens. */
static int
split_is(rl_tokenizer_kind kind, int lowercase, const char *text, const char *const *want)
{
	static tok_list l;
	int			i;

	if (!split(&l, kind, lowercase, text, strlen(text)) || l.bad)
		return 0;
	for (i = 0; want[i]; i++)
		if (i >= l.n || strlen(want[i]) != l.len[i] || memcmp(want[i], l.text[i], l.len[i]) != 0)
			break;
	if (want[i] != NULL || i != l.n)
	{
		tap_diag("split of \"%s\" gave %d tokens:", text, l.n);
		for (i = 0; i < l.n && i < MAXTOK; i++)
			tap_diag("  \"%s\"", l.text[i]);
		return 0;
	}
	return 1;
}

/* Checks a split and emits one test point. */
static void
expect_split(rl_tokenizer_kind kind, int lowercase, const char *text,
			 const char *const *want, const char *desc)
{
	tap_ok(split_is(kind, lowercase, text, want), "%s tokenizer%s: %s",
		   rl_tokenizer_name(kind), lowercase ? "" : " (no lowercase)", desc);
}

/* Whether every token of l is U+FFFD or ASCII, and there are n of them. */
static int
all_replacement(const tok_list *l, int n)
{
	int			i;

	if (l->n != n || l->bad)
		return 0;
	for (i = 0; i < n; i++)
		if (l->len[i] != 3 || memcmp(l->text[i], "\xEF\xBF\xBD", 3) != 0)
			return 0;
	return 1;
}

/* rl_split on its own. */
static void
check_split(void)
{
	static tok_list l;
	static const char *const hello[] = {"hello", "world", NULL};
	static const char *const hello_nl[] = {"Hello", "WORLD", NULL};
	static const char *const dont[] = {"dont", NULL};
	static const char *const ab[] = {"ab", NULL};
	static const char *const end[] = {"end", NULL};
	static const char *const ws[] = {"a", "b", "c", "d", "e", "f", "g", NULL};
	static const char *const elan[] = {"\xC3\xA9lan", "\xC3\xA9" "cole", NULL};
	static const char *const elan_nl[] = {"\xC3\x89lan", "\xC3\x89" "COLE", NULL};
	static const char *const greek[] = {"\xCE\xB1\xCE\xB2\xCE\xB3",
	"\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", NULL};
	static const char *const none[] = {NULL};
	static const char *const zh[] = {"\xE4\xBD\xA0", "\xE5\xA5\xBD", "\xE4\xB8\x96",
	"\xE7\x95\x8C", NULL};
	static const char *const chars_lower[] = {"a", "\xC3\xA9", " ", "x", NULL};
	int			i,
				ok;

	expect_split(RL_TOK_WORD, 1, "Hello WORLD", hello, "lowercases \"Hello WORLD\"");
	expect_split(RL_TOK_WORD, 0, "Hello WORLD", hello_nl, "keeps case when lowercase is off");
	expect_split(RL_TOK_WORD, 1, "don't!", dont, "\"don't!\" is \"dont\"");
	expect_split(RL_TOK_WORD, 1, "a,b", ab, "\"a,b\" is \"ab\"");
	expect_split(RL_TOK_WORD, 1, "end.", end, "\"end.\" is \"end\"");
	expect_split(RL_TOK_WORD, 1,
				 "  a\tb\nc\xC2\xA0" "d\xE3\x80\x80" "e\r\nf\xE2\x80\x83g  ", ws,
				 "splits on spaces, tabs, newlines, U+00A0, U+3000, U+2003");
	expect_split(RL_TOK_WORD, 1, "\xC3\x89lan \xC3\x89" "COLE", elan,
				 "lowercases accented letters (\"\xC3\x89lan \xC3\x89" "COLE\")");
	expect_split(RL_TOK_WORD, 0, "\xC3\x89lan \xC3\x89" "COLE", elan_nl,
				 "leaves accented capitals alone when lowercase is off");
	expect_split(RL_TOK_WORD, 1,
				 "\xCE\x91\xCE\x92\xCE\x93 \xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2",
				 greek, "lowercases Greek and Cyrillic");
	expect_split(RL_TOK_WORD, 1, " !!! ... , \xE2\x80\x94 ", none,
				 "punctuation alone gives no tokens");
	expect_split(RL_TOK_CHAR, 1, "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C", zh,
				 "Chinese text gives one 3-byte token per character");
	expect_split(RL_TOK_CHAR, 1, "A\xC3\x89 X", chars_lower,
				 "lowercases, and keeps spaces as tokens");

	/* NFC e-acute is one two-byte token; the decomposed form is two code points */
	split(&l, RL_TOK_CHAR, 0, "\xC3\xA9", 2);
	ok = l.n == 1 && l.len[0] == 2 && memcmp(l.text[0], "\xC3\xA9", 2) == 0;
	split(&l, RL_TOK_CHAR, 0, "e\xCC\x81", 3);
	ok = ok && l.n == 2 && l.len[0] == 1 && l.len[1] == 2;
	split(&l, RL_TOK_CHAR, 0, "\xF0\x9F\x98\x80", 4);
	ok = ok && l.n == 1 && l.len[0] == 4;
	tap_ok(ok, "char tokenizer: one token per code point (NFC \xC3\xA9 is 1 token of 2 bytes, emoji 4 bytes)");

	/* invalid UTF-8 becomes U+FFFD, one per bad byte, never a fragment */
	split(&l, RL_TOK_CHAR, 1, "\xFF", 1);
	ok = all_replacement(&l, 1);
	split(&l, RL_TOK_CHAR, 1, "\xE4\xBD", 2);	/* truncated 3-byte sequence */
	ok = ok && all_replacement(&l, 2);
	split(&l, RL_TOK_CHAR, 1, "\xC0\xAF", 2);	/* overlong '/' */
	ok = ok && all_replacement(&l, 2);
	split(&l, RL_TOK_CHAR, 1, "\xED\xA0\x80", 3);	/* a surrogate */
	ok = ok && all_replacement(&l, 3);
	split(&l, RL_TOK_CHAR, 1, "\xF4\x90\x80\x80", 4);	/* above U+10FFFF */
	ok = ok && all_replacement(&l, 4);
	tap_ok(ok, "char tokenizer: invalid bytes become U+FFFD tokens");

	split(&l, RL_TOK_WORD, 1, "ab\xFF" "cd \x80", 7);
	ok = l.n == 2 && !l.bad && l.len[0] == 7 &&
		memcmp(l.text[0], "ab\xEF\xBF\xBD" "cd", 7) == 0 &&
		l.len[1] == 3 && memcmp(l.text[1], "\xEF\xBF\xBD", 3) == 0;
	tap_ok(ok, "word tokenizer: invalid bytes become U+FFFD inside words");

	/* random bytes never give an empty token or a fragment */
	{
		rl_rng		rng;
		unsigned char buf[96];
		int			trial,
					bad = 0;

		rl_rng_seed(&rng, 8);
		for (trial = 0; trial < 3000; trial++)
		{
			size_t		n = 1 + rl_rng_next(&rng) % sizeof(buf);
			size_t		k;

			for (k = 0; k < n; k++)
			{
				uint64_t	r = rl_rng_next(&rng);

				/* mostly high bytes, some ASCII letters and spaces */
				buf[k] = (r & 3) == 0 ? (unsigned char) ("ab Z\t.'c"[(r >> 8) & 7])
					: (unsigned char) (0x80 | (r >> 16));
			}
			split(&l, (rl_tokenizer_kind) (trial & 1), trial & 2 ? 1 : 0, (const char *) buf, n);
			if (l.bad)
				bad++;
		}
		tap_ok(bad == 0, "3000 random byte strings give only non-empty valid UTF-8 tokens (%d bad)",
			   bad);
	}

	/* a word longer than the limit is cut at a code point boundary */
	{
		char		big[1300];

		for (i = 0; i < 600; i++)
			memcpy(big + 2 * i, "\xC3\xA9", 2);
		split(&l, RL_TOK_WORD, 1, big, 1200);
		tap_ok(l.n == 1 && !l.bad && l.len[0] <= RL_MAX_TOKEN_BYTES && l.len[0] >= 1000,
			   "a 1200-byte word becomes one valid token of at most %d bytes (%zu)",
			   RL_MAX_TOKEN_BYTES, l.n ? l.len[0] : 0);
	}

	/* the callback can stop the split */
	memset(&l, 0, sizeof(l));
	l.limit = 2;
	{
		rl_env		env;

		test_env_init(&env);
		ok = rl_split(&env, TEST_TEXT_V01(RL_TOK_WORD, 1), "a b c d e", 9, collect, &l) == 0 && l.n == 2;
	}
	tap_ok(ok, "rl_split stops, returning 0, when the callback returns 0");
}

/* Whether a stream equals the expected ids. */
static int
stream_is(const int32_t *s, size_t n, const int32_t *want, size_t nwant)
{
	size_t		i;

	if (n != nwant)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] != want[i])
			return 0;
	return 1;
}

/* Whether vocabulary entry id is the given text. */
static int
vocab_is(const rl_vocab *v, int32_t id, const char *text)
{
	size_t		len;
	const char *t = rl_vocab_token(v, id, &len);

	return t != NULL && len == strlen(text) && memcmp(t, text, len) == 0;
}

/* Builds a vocabulary and streams from docs; returns the builder's status. */
static rl_status
build(rl_env *env, rl_tokenizer_kind kind, const char *const *docs, int ndocs, size_t val_docs,
	  int32_t max_vocab, rl_vocab **v, int32_t **tr, size_t *ntr, int32_t **va, size_t *nva,
	  size_t *ndocs_seen, size_t *ntokens_seen)
{
	rl_builder *b;
	rl_status	st;
	int			i;

	*v = NULL;
	*tr = *va = NULL;
	st = rl_builder_create(env, TEST_TEXT_V01(kind, 1), &b);
	if (st != RL_OK)
		return st;
	for (i = 0; i < ndocs; i++)
	{
		st = rl_builder_add(b, docs[i], strlen(docs[i]));
		if (st != RL_OK)
		{
			rl_builder_free(b);
			return st;
		}
	}
	if (ndocs_seen)
		*ndocs_seen = rl_builder_documents(b);
	if (ntokens_seen)
		*ntokens_seen = rl_builder_tokens(b);
	st = rl_builder_finish(b, val_docs, max_vocab, v, tr, ntr, va, nva);
	rl_builder_free(b);
	return st;
}

/* The builder and rl_tokenize. */
static void
check_builder(rl_env *env)
{
	rl_vocab   *v;
	int32_t    *tr,
			   *va;
	size_t		ntr,
				nva,
				nd = 0,
				nt = 0;
	rl_status	st;

	/* stream layout */
	{
		static const char *const docs[] = {"a b", "c", "", "b a!"};
		/* counts a2 b2 c1: ids a=2 b=3 (tie: a seen first) c=4 */
		static const int32_t want[] = {0, 2, 3, 0, 4, 0, 0, 3, 2, 0};

		st = build(env, RL_TOK_WORD, docs, 4, 0, 0, &v, &tr, &ntr, &va, &nva, &nd, &nt);
		tap_ok(st == RL_OK && v->size == 5 && vocab_is(v, 0, "<eod>") && vocab_is(v, 1, "<unk>"),
			   "builder: ids 0 and 1 are <eod> and <unk>");
		tap_ok(st == RL_OK && stream_is(tr, ntr, want, 10) && va == NULL && nva == 0,
			   "builder: the stream starts with <eod> and every document (even empty) ends with one");
		tap_ok(nd == 4 && nt == 10, "builder: counts 4 documents and 10 tokens (%zu, %zu)", nd, nt);
		if (st == RL_OK)
		{
			rl_vocab_free(env, v);
			rl_free(env, tr);
		}
	}

	/* frequencies and ties; max_vocab */
	{
		static const char *const docs[] = {"x y y z", "z w q q q"};
		/* counts: q3, y2, z2, x1, w1; ties broken by first sight: y before z, x before w */
		static const int32_t want_all[] = {0, 5, 3, 3, 4, 0, 4, 6, 2, 2, 2, 0};
		static const int32_t want_3[] = {0, 1, 3, 3, 4, 0, 4, 1, 2, 2, 2, 0};
		int			ok;

		st = build(env, RL_TOK_WORD, docs, 2, 0, 0, &v, &tr, &ntr, &va, &nva, NULL, NULL);
		ok = st == RL_OK && v->size == 7 && vocab_is(v, 2, "q") && vocab_is(v, 3, "y") &&
			vocab_is(v, 4, "z") && vocab_is(v, 5, "x") && vocab_is(v, 6, "w") &&
			stream_is(tr, ntr, want_all, 12);
		tap_ok(ok, "builder: ids follow frequency, ties in first-seen order");
		if (st == RL_OK)
		{
			rl_vocab_free(env, v);
			rl_free(env, tr);
		}
		st = build(env, RL_TOK_WORD, docs, 2, 0, 3, &v, &tr, &ntr, &va, &nva, NULL, NULL);
		ok = st == RL_OK && v->size == 5 && vocab_is(v, 2, "q") && vocab_is(v, 3, "y") &&
			vocab_is(v, 4, "z") && stream_is(tr, ntr, want_3, 12);
		tap_ok(ok, "builder: max_vocab 3 keeps the 3 most frequent tokens, the rest become <unk>");
		if (st == RL_OK)
		{
			rl_vocab_free(env, v);
			rl_free(env, tr);
		}
	}

	/* validation split: last documents, vocabulary from training only */
	{
		static const char *const docs[] = {"a b", "c a", "e a", "b f"};
		static const int32_t want_tr[] = {0, 2, 3, 0, 4, 2, 0};
		static const int32_t want_va[] = {0, 1, 2, 0, 3, 1, 0};
		int			ok;

		st = build(env, RL_TOK_WORD, docs, 4, 2, 0, &v, &tr, &ntr, &va, &nva, NULL, NULL);
		ok = st == RL_OK && stream_is(tr, ntr, want_tr, 7) && stream_is(va, nva, want_va, 7);
		tap_ok(ok, "builder: validation takes the last documents and starts with <eod>");
		tap_ok(st == RL_OK && v->size == 5 && rl_vocab_lookup(v, "e", 1) == RL_TOKEN_UNK &&
			   rl_vocab_lookup(v, "f", 1) == RL_TOKEN_UNK && rl_vocab_lookup(v, "c", 1) == 4,
			   "builder: tokens seen only in validation documents are <unk>");
		if (st == RL_OK)
		{
			int32_t    *ids = NULL;
			size_t		n = 99;
			static const int32_t want[] = {2, 1, 3, 1, 4};

			st = rl_tokenize(env, TEST_TEXT_V01(RL_TOK_WORD, 1), v, "A zz b e  C", 11, &ids, &n);
			tap_ok(st == RL_OK && stream_is(ids, n, want, 5),
				   "rl_tokenize maps known tokens to their ids and unseen ones to <unk>, no <eod>");
			if (st == RL_OK)
				rl_free(env, ids);
			st = rl_tokenize(env, TEST_TEXT_V01(RL_TOK_WORD, 1), v, " ... ", 5, &ids, &n);
			tap_ok(st == RL_OK && n == 0, "rl_tokenize of text without tokens gives no ids");
			if (st == RL_OK)
				rl_free(env, ids);
			rl_vocab_free(env, v);
			rl_free(env, tr);
			rl_free(env, va);
		}
		else
		{
			tap_ok(0, "rl_tokenize maps known tokens to their ids and unseen ones to <unk>, no <eod>");
			tap_ok(0, "rl_tokenize of text without tokens gives no ids");
		}
	}

	/* char tokenizer through the builder */
	{
		static const char *const docs[] = {"\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xBD\xA0", "ab"};
		static const int32_t want[] = {0, 2, 3, 2, 0, 4, 5, 0};
		int			ok;

		st = build(env, RL_TOK_CHAR, docs, 2, 0, 0, &v, &tr, &ntr, &va, &nva, NULL, NULL);
		ok = st == RL_OK && stream_is(tr, ntr, want, 8) && vocab_is(v, 2, "\xE4\xBD\xA0") &&
			vocab_is(v, 3, "\xE5\xA5\xBD");
		tap_ok(ok, "builder: the char tokenizer gives one id per code point");
		if (st == RL_OK)
		{
			rl_vocab_free(env, v);
			rl_free(env, tr);
		}
	}

	/* errors */
	{
		static const char *const docs[] = {"a", "b"};
		static const char *const empty[] = {"...", "!"};

		st = build(env, RL_TOK_WORD, docs, 2, 2, 0, &v, &tr, &ntr, &va, &nva, NULL, NULL);
		tap_ok(st == RL_ERR_DATA && v == NULL && tr == NULL,
			   "builder: holding out every document is RL_ERR_DATA");
		st = build(env, RL_TOK_WORD, empty, 2, 0, 0, &v, &tr, &ntr, &va, &nva, NULL, NULL);
		tap_ok(st == RL_ERR_DATA && v == NULL,
			   "builder: training documents without tokens are RL_ERR_DATA");
	}

	/* many distinct tokens: the hash tables grow */
	{
		rl_builder *b;
		char		word[32];
		int			i,
					bad = 0;

		if (rl_builder_create(env, TEST_TEXT_V01(RL_TOK_WORD, 1), &b) != RL_OK)
			tap_bail("rl_builder_create: %s", env->errmsg);
		for (i = 0; i < 5000; i++)
		{
			/* w{i} appears 1 + (i % 3) times */
			int			n = snprintf(word, sizeof(word), "w%d w%d w%d", i, i, i);
			int			keep = 1 + i % 3;
			int			len = 0,
						k;

			for (k = 0; k < n && keep > 0; k++)
				if (word[k] == ' ' && --keep == 0)
					len = k;
			if (keep > 0)
				len = n;
			if (rl_builder_add(b, word, (size_t) len) != RL_OK)
				bad++;
		}
		st = rl_builder_finish(b, 0, 0, &v, &tr, &ntr, &va, &nva);
		rl_builder_free(b);
		if (st == RL_OK)
		{
			/* w2, w5, ... (3 times) come first in order, then w1, w4, ..., then w0, w3, ... */
			for (i = 0; i < 5000; i++)
			{
				int			n = snprintf(word, sizeof(word), "w%d", i);
				int			rank = i % 3 == 2 ? i / 3 : i % 3 == 1 ? 1666 + i / 3 : 3333 + i / 3;

				if (rl_vocab_lookup(v, word, (size_t) n) != RL_NUM_SPECIAL + rank)
					bad++;
			}
			/* 1 leading <eod>, 1666 * 3 + 1667 * 2 + 1667 tokens, 5000 <eod> */
			if (v->size != 5002 || ntr != 15000)
				bad++;
			rl_vocab_free(env, v);
			rl_free(env, tr);
		}
		tap_ok(st == RL_OK && bad == 0,
			   "builder: 5000 distinct words get frequency-ordered ids that look up correctly (%d bad)",
			   bad);
	}
}

/* The vocabulary on its own. */
static void
check_vocab(rl_env *env)
{
	rl_vocab   *v;
	static const uint32_t lens[] = {5, 5, 1, 2, 3};
	static const uint32_t dup_lens[] = {5, 5, 2, 2, 2};
	static const uint32_t zero_lens[] = {5, 5, 0, 1};
	int32_t		i;
	int			ok = 1;
	size_t		len;

	if (rl_vocab_create(env, 5, lens, "<eod><unk>a\xC3\xA9xyz", &v) != RL_OK)
		tap_bail("rl_vocab_create: %s", env->errmsg);
	for (i = 0; i < 5; i++)
	{
		const char *t = rl_vocab_token(v, i, &len);

		if (t == NULL || rl_vocab_lookup(v, t, len) != i)
			ok = 0;
	}
	ok = ok && rl_vocab_token(v, 5, &len) == NULL && rl_vocab_token(v, -1, &len) == NULL &&
		rl_vocab_lookup(v, "xy", 2) == RL_TOKEN_UNK && rl_vocab_lookup(v, "\xC3\xA9", 2) == 3;
	tap_ok(ok, "vocabulary: every token looks up to its id; unknown text is <unk>");
	rl_vocab_free(env, v);

	v = NULL;
	tap_ok(rl_vocab_create(env, 5, dup_lens, "<eod><unk>ab\xC3\xA9" "ab", &v) != RL_OK && v == NULL &&
		   strstr(env->errmsg, "duplicate") != NULL,
		   "vocabulary: a duplicate entry is refused (%s)", env->errmsg);
	tap_ok(rl_vocab_create(env, 4, zero_lens, "<eod><unk>a", &v) != RL_OK && v == NULL,
		   "vocabulary: an empty entry is refused");
	tap_ok(rl_vocab_create(env, 2, lens, "<eod><unk>", &v) != RL_OK && v == NULL,
		   "vocabulary: fewer than 3 entries is refused");

	ok = rl_utf8_valid("abc", 3) && rl_utf8_valid("\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x98\x80", 9) &&
		rl_utf8_valid("\xEF\xBF\xBD", 3) && rl_utf8_valid("", 0) &&
		!rl_utf8_valid("\xFF", 1) && !rl_utf8_valid("a\xC3", 2) &&
		!rl_utf8_valid("\xC0\x80", 2) && !rl_utf8_valid("\xED\xA0\x80", 3) &&
		!rl_utf8_valid("\xF4\x90\x80\x80", 4) && !rl_utf8_valid("\x80", 1);
	tap_ok(ok, "rl_utf8_valid accepts UTF-8 and refuses stray, truncated, overlong and surrogate bytes");
}

/* Every allocation failure in the builder and rl_tokenize is RL_ERR_NOMEM without a leak. */
static void
check_alloc_failures(rl_env *env)
{
	static const char *const docs[] = {"one two two three", "three three four", "five one"};
	static const char many[] = "one two three four five six seven eight nine ten eleven twelve "
		"thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty";
	long		n,
				bad = 0,
				live = test_live_blocks();
	rl_vocab   *v;
	int32_t    *tr,
			   *va;
	size_t		ntr,
				nva;
	rl_status	st;

	for (n = 0; n < 10000; n++)
	{
		test_fail_alloc_at(n);
		st = build(env, RL_TOK_WORD, docs, 3, 1, 0, &v, &tr, &ntr, &va, &nva, NULL, NULL);
		test_fail_alloc_at(-1);
		if (st == RL_OK)
		{
			int32_t    *ids = NULL;
			size_t		k;

			/* and rl_tokenize, failing each of its allocations */
			for (k = 0; k < 64; k++)
			{
				test_fail_alloc_at((long) k);
				st = rl_tokenize(env, TEST_TEXT_V01(RL_TOK_WORD, 1), v, many, strlen(many), &ids, &ntr);
				test_fail_alloc_at(-1);
				if (st == RL_OK)
				{
					rl_free(env, ids);
					break;
				}
				if (st != RL_ERR_NOMEM)
					bad++;
			}
			rl_vocab_free(env, v);
			rl_free(env, tr);
			rl_free(env, va);
			break;
		}
		if (st != RL_ERR_NOMEM || test_live_blocks() != live)
			bad++;
	}
	tap_ok(bad == 0 && n > 5 && test_live_blocks() == live,
		   "each of %ld allocation failures in the builder and rl_tokenize is RL_ERR_NOMEM, no leak",
		   n);
}

/* Runs the tokenizer checks. */
void
test_tokenizers(void)
{
	rl_env		env;
	long		live;

	test_env_init(&env);
	live = test_live_blocks();
	check_split();
	check_builder(&env);
	check_vocab(&env);
	check_alloc_failures(&env);
	tap_ok(test_live_blocks() == live, "tokenizers free everything they allocate (%ld blocks left)",
		   test_live_blocks() - live);
}
