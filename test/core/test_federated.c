/*
 * test_federated.c
 *		The pieces of federated training (federated.c, and the rounds of
 *		run.c): the vocabulary learned from the merged unit counts of two
 *		shards is the one learned from their documents in one place, for
 *		every tokenizer; the weights file round-trips and a damaged one is
 *		refused; the weighted average; and federated averaging of one shard,
 *		or of two shards with the same data, at any round length, is the
 *		plain training run bit for bit.  The epoch rules shared with the
 *		coordinator are checked on a sequence of losses.
 */
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const docs_a[] = {
	"the cat sat on the mat", "a dog ran in the fog", "the cat ran on the log",
	"a cat sat in the sun", "naïve café, déjà vu",
};
static const char *const docs_b[] = {
	"the dog sat on the mat", "a log lay in the fog", "the sun sat on the log",
	"a dog and a cat ran", "the mat lay in the sun", "日本語のテキスト",
};

#define NA ((int) (sizeof(docs_a) / sizeof(docs_a[0])))
#define NB ((int) (sizeof(docs_b) / sizeof(docs_b[0])))

/* A builder of the tokenizer over docs[0..n). */
static rl_builder *
builder_of(rl_env *env, rl_tokenizer_kind kind, const char *const *docs, int n)
{
	rl_config	cfg;
	rl_builder *b;
	int			i;

	memset(&cfg, 0, sizeof(cfg));
	rl_config_text_init(&cfg, kind, 1);
	if (rl_builder_create(env, &cfg, &b) != RL_OK)
		tap_bail("rl_builder_create: %s", env->errmsg);
	for (i = 0; i < n; i++)
		if (rl_builder_add(b, docs[i], strlen(docs[i])) != RL_OK)
			tap_bail("rl_builder_add: %s", env->errmsg);
	return b;
}

/* Adds a builder's unit counts (last val_docs held out) to a tally. */
static void
tally_builder(rl_env *env, rl_unit_tally *t, rl_builder *b, size_t val_docs)
{
	rl_unit_count *u;
	int32_t		n,
				k;

	if (rl_builder_unit_counts(b, val_docs, &u, &n) != RL_OK)
		tap_bail("rl_builder_unit_counts: %s", env->errmsg);
	for (k = 0; k < n; k++)
		if (u[k].count > 0 && rl_unit_tally_add(t, u[k].text, u[k].len, u[k].count) != RL_OK)
			tap_bail("rl_unit_tally_add: %s", env->errmsg);
	rl_free(env, u);
}

/* Whether two vocabularies have the same tokens in the same order. */
static int
same_vocab(const rl_vocab *a, const rl_vocab *b)
{
	int32_t		i;

	if (a->size != b->size)
		return 0;
	for (i = 0; i < a->size; i++)
	{
		size_t		la,
					lb;
		const char *ta = rl_vocab_token(a, i, &la),
				   *tb = rl_vocab_token(b, i, &lb);

		if (la != lb || memcmp(ta, tb, la) != 0)
			return 0;
	}
	return 1;
}

/* The vocabulary of shards a and b's merged counts against a and b in one builder. */
static void
check_vocab(rl_env *env, rl_tokenizer_kind kind, int32_t max_vocab)
{
	const char *all[NA + NB];
	rl_builder *a = builder_of(env, kind, docs_a, NA),
			   *b = builder_of(env, kind, docs_b, NB),
			   *ab;
	rl_unit_tally *t;
	const rl_unit_count *units;
	int32_t		n;
	rl_vocab   *fed,
			   *one;
	int32_t    *train,
			   *val;
	size_t		ntrain,
				nval;
	int			i;

	for (i = 0; i < NA; i++)
		all[i] = docs_a[i];
	for (i = 0; i < NB; i++)
		all[NA + i] = docs_b[i];
	ab = builder_of(env, kind, all, NA + NB);
	if (rl_unit_tally_create(env, &t) != RL_OK)
		tap_bail("rl_unit_tally_create: %s", env->errmsg);
	tally_builder(env, t, a, 0);
	tally_builder(env, t, b, 0);
	units = rl_unit_tally_units(t, &n);
	if (rl_tokenizer(kind)->learn(env, units, n, max_vocab, &fed) != RL_OK)
		tap_bail("learn: %s", env->errmsg);
	if (rl_builder_finish(ab, 0, max_vocab, &one, &train, &ntrain, &val, &nval) != RL_OK)
		tap_bail("rl_builder_finish: %s", env->errmsg);
	tap_ok(same_vocab(fed, one) && fed->size > RL_NUM_SPECIAL,
		   "%s: the vocabulary of two shards' merged counts is the one of their documents together (%d tokens)",
		   rl_tokenizer_name(kind), fed->size);
	rl_vocab_free(env, fed);
	rl_vocab_free(env, one);
	rl_free(env, train);
	rl_free(env, val);
	rl_unit_tally_free(t);
	rl_builder_free(a);
	rl_builder_free(b);
	rl_builder_free(ab);
}

/* The tally's refusals, and counts that add up. */
static void
check_tally(rl_env *env)
{
	rl_unit_tally *t;
	const rl_unit_count *u;
	char		big[RL_MAX_TOKEN_BYTES + 1];
	int32_t		n;
	int			ok,
				i;

	memset(big, 'x', sizeof(big));
	if (rl_unit_tally_create(env, &t) != RL_OK)
		tap_bail("rl_unit_tally_create: %s", env->errmsg);
	ok = rl_unit_tally_add(t, "", 0, 1) == RL_ERR_DATA &&
		rl_unit_tally_add(t, big, sizeof(big), 1) == RL_ERR_DATA;
	/* enough distinct units to grow the table several times */
	for (i = 0; i < 5000 && ok; i++)
	{
		char		s[16];

		snprintf(s, sizeof(s), "u%d", i % 2500);
		ok = rl_unit_tally_add(t, s, (uint32_t) strlen(s), (uint64_t) i) == RL_OK;
	}
	u = rl_unit_tally_units(t, &n);
	ok = ok && n == 2500 && u[7].len == 2 && memcmp(u[7].text, "u7", 2) == 0 &&
		u[7].count == 7 + 2507;
	ok = ok && rl_unit_tally_add(t, "late", 4, 1) == RL_ERR_INVALID;
	tap_ok(ok, "the tally sums counts in first-seen order and refuses empty, oversized and late units");
	rl_unit_tally_free(t);
}

/* The weights file: a round trip, and every kind of damage refused. */
static void
check_weights_file(rl_env *env)
{
	float		w[5] = {1.5f, -2.25f, 0.0f, 3e-7f, 1e30f},
				r[5];
	size_t		len = rl_weights_file_size(5);
	uint8_t    *f = malloc(len),
			   *g = malloc(len);
	uint32_t	nan_bits = 0x7FC00000u;
	int			ok;

	rl_weights_file_write(w, 5, f);
	ok = rl_weights_file_read(env, f, len, r, 5) == RL_OK && memcmp(w, r, sizeof(w)) == 0;
	ok = ok && rl_weights_file_read(env, f, len, r, 4) == RL_ERR_FORMAT;
	ok = ok && rl_weights_file_read(env, f, len - 1, r, 5) == RL_ERR_FORMAT;
	ok = ok && rl_weights_file_read(env, f, 3, r, 5) == RL_ERR_FORMAT;
	memcpy(g, f, len);
	g[20] ^= 0x10;
	ok = ok && rl_weights_file_read(env, g, len, r, 5) == RL_ERR_FORMAT;
	/* a NaN with a correct CRC */
	memcpy(g, f, len);
	rl_put_u32(g + 16 + 8, nan_bits);
	rl_put_u32(g + len - 4, rl_crc32(g, len - 4));
	ok = ok && rl_weights_file_read(env, g, len, r, 5) == RL_ERR_FORMAT;
	tap_ok(ok, "the weights file round-trips; a wrong count, a truncation, a flipped bit and a NaN are refused");
	/* a truncated file says its length, not two equal counts */
	ok = rl_weights_file_read(env, f, len - 1, r, 5) == RL_ERR_FORMAT &&
		strstr(env->errmsg, "is 39 bytes long; it should be 40") != NULL &&
		strstr(env->errmsg, "holds 5 weights; the model has 5") == NULL;
	tap_ok(ok, "a truncated weights file's error names its length (%s)", env->errmsg);
	free(f);
	free(g);
}

/* The token-weighted average. */
static void
check_average(void)
{
	float		a[3] = {1.0f, 2.0f, -4.0f},
				b[3] = {5.0f, -2.0f, 0.5f},
				out[3];
	double		acc[3] = {0, 0, 0};

	rl_average_add(acc, a, 3, 300.0);
	rl_average_add(acc, b, 3, 100.0);
	rl_average_take(acc, 3, 400.0, out);
	tap_ok(out[0] == 2.0f && out[1] == 1.0f && out[2] == -2.875f,
		   "federated averaging weights each shard's weights by its tokens");
}

/* A char corpus: the vocabulary of docs_a and docs_b, one training stream. */
typedef struct fed_corpus
{
	rl_vocab   *vocab;
	int32_t    *train,
			   *val;
	size_t		ntrain,
				nval;
} fed_corpus;

static void
fed_corpus_make(rl_env *env, fed_corpus *c)
{
	const char *all[NA + NB];
	rl_builder *b;
	int			i;

	for (i = 0; i < NA; i++)
		all[i] = docs_a[i];
	for (i = 0; i < NB; i++)
		all[NA + i] = docs_b[i];
	b = builder_of(env, RL_TOK_CHAR, all, NA + NB);
	if (rl_builder_finish(b, 0, 0, &c->vocab, &c->train, &c->ntrain, &c->val, &c->nval) != RL_OK)
		tap_bail("rl_builder_finish: %s", env->errmsg);
	rl_builder_free(b);
}

static void
train_opts(rl_train_opts *o, int32_t epochs)
{
	memset(o, 0, sizeof(*o));
	o->epochs = epochs;
	o->batch_size = 4;
	o->seq_len = 5;
	o->learning_rate = 0.01;
	o->clip_norm = 5.0;
	o->dropout = 0.1;
	o->seed = 7;
	o->precision = RL_PREC_FP32;
}

/*
 * Federated averaging of nshards shards that all hold the corpus, rounds of
 * round_steps chunks (0: an epoch), for epochs epochs; the averaged weights
 * end in m.
 */
static void
federate(rl_env *env, const fed_corpus *c, rl_model *m, int nshards, size_t round_steps,
		 int32_t epochs)
{
	rl_model   *sm[2];
	rl_run	   *runs[2];
	rl_train_opts o;
	double	   *acc = calloc(m->nparams, sizeof(double));
	int32_t		e;
	int			s;

	train_opts(&o, 1000000);
	for (s = 0; s < nshards; s++)
	{
		sm[s] = test_model_for_vocab(env, c->vocab, RL_CELL_LSTM, 6, 8, 1, 11);
		memcpy(sm[s]->params, m->params, m->nparams * sizeof(float));
		if (rl_run_create(env, sm[s], c->train, c->ntrain, NULL, 0, &o, &runs[s]) != RL_OK)
			tap_bail("rl_run_create: %s", env->errmsg);
	}
	for (e = 0; e < epochs; e++)
	{
		int			ended = 0;

		while (!ended)
		{
			double		total = 0;

			memset(acc, 0, m->nparams * sizeof(double));
			for (s = 0; s < nshards; s++)
			{
				size_t		tokens;
				double		loss;

				if (rl_run_train_round(runs[s], o.learning_rate, round_steps, &ended,
									   &tokens, &loss) != RL_OK)
					tap_bail("rl_run_train_round: %s", env->errmsg);
				rl_average_add(acc, sm[s]->params, m->nparams, (double) tokens);
				total += (double) tokens;
			}
			rl_average_take(acc, m->nparams, total, m->params);
			for (s = 0; s < nshards; s++)
			{
				memcpy(sm[s]->params, m->params, m->nparams * sizeof(float));
				rl_run_weights_changed(runs[s]);
			}
		}
	}
	for (s = 0; s < nshards; s++)
	{
		rl_run_free(runs[s]);
		rl_model_free(env, sm[s]);
	}
	free(acc);
}

/* Federated averaging of one shard, or two with the same data, is the plain run. */
static void
check_fedavg(rl_env *env)
{
	fed_corpus	c;
	rl_model   *plain,
			   *fed;
	rl_train_opts o;
	rl_train_result res;
	static const size_t rounds[3] = {0, 2, 3};
	static const int shards[3] = {1, 1, 2};
	int			i;

	fed_corpus_make(env, &c);
	plain = test_model_for_vocab(env, c.vocab, RL_CELL_LSTM, 6, 8, 1, 11);
	train_opts(&o, 3);
	if (rl_train(env, plain, c.train, c.ntrain, NULL, 0, &o, &res) != RL_OK)
		tap_bail("rl_train: %s", env->errmsg);
	for (i = 0; i < 3; i++)
	{
		fed = test_model_for_vocab(env, c.vocab, RL_CELL_LSTM, 6, 8, 1, 11);
		federate(env, &c, fed, shards[i], rounds[i], 3);
		tap_ok(memcmp(fed->params, plain->params, plain->nparams * sizeof(float)) == 0,
			   "federated averaging of %d shard%s with the data, rounds of %zu steps%s, is the plain training bit for bit",
			   shards[i], shards[i] > 1 ? "s" : "", rounds[i], rounds[i] ? "" : " (an epoch)");
		rl_model_free(env, fed);
	}
	{
		rl_run	   *r;
		int			ended;
		size_t		tokens;
		double		loss;

		train_opts(&o, 3);
		if (rl_run_create(env, plain, c.train, c.ntrain, NULL, 0, &o, &r) != RL_OK)
			tap_bail("rl_run_create: %s", env->errmsg);
		tap_ok(rl_run_train_round(r, 0.0, 0, &ended, &tokens, &loss) == RL_ERR_INVALID &&
			   rl_run_train_round(r, NAN, 0, &ended, &tokens, &loss) == RL_ERR_INVALID &&
			   rl_run_train_round(r, 0.01, 1, &ended, &tokens, &loss) == RL_OK &&
			   tokens == (size_t) 4 * 5 && isfinite(loss) && !ended,
			   "a round refuses a rate that is not positive and reports the tokens of its steps");
		rl_run_free(r);
	}
	rl_model_free(env, plain);
	rl_vocab_free(env, c.vocab);
	rl_free(env, c.train);
	rl_free(env, c.val);
}

/* The epoch rules on a sequence of losses. */
static void
check_rules(void)
{
	rl_train_opts o;
	rl_epoch_rules e;
	static const double losses[6] = {3.0, 2.5, NAN, 2.6, 2.7, 2.8};
	int			best[6],
				i;

	train_opts(&o, 6);
	o.patience = 3;
	o.lr_decay = 0.5;
	o.lr_patience = 2;
	rl_epoch_rules_init(&e, &o);
	for (i = 0; i < 6; i++)
		best[i] = rl_epoch_rules_apply(&e, &o, i + 1, losses[i]);
	tap_ok(best[0] && best[1] && !best[2] && !best[3] && !best[4] && !best[5] &&
		   e.best_epoch == 2 && e.best_val == 2.5 && e.lr == 0.005 && e.stopped,
		   "the epoch rules: best epoch 2, the rate halved after two worse epochs, stopped after three");
}

void
test_federated(void)
{
	rl_env		env;

	test_env_init(&env);
	check_vocab(&env, RL_TOK_WORD, 0);
	check_vocab(&env, RL_TOK_WORD, 6);
	check_vocab(&env, RL_TOK_CHAR, 0);
	check_vocab(&env, RL_TOK_BPE, 300);
	check_tally(&env);
	check_weights_file(&env);
	check_average();
	check_fedavg(&env);
	check_rules();
	tap_ok(test_live_blocks() == 0, "federated pieces: no block is leaked (%ld live)",
		   test_live_blocks());
}
