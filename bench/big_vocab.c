/*
 * big_vocab.c
 *		A word model with a big vocabulary, with and without the sampled
 *		output layer (the training option sampled_softmax): training tokens
 *		per second and the exact validation loss after the same training.
 *
 * The corpus is text on standard input, one document per line (bench/
 * big_vocab.sh feeds it the definitions of Debian's dict-gcide).  The word
 * tokenizer (the rules of new models, lowercase) keeps the MAX_VOCAB most
 * frequent words of the training lines (the last 10% of the lines are
 * held out); then one epoch is trained over the first TRAIN_TOKENS tokens
 * of the training stream, and validated (exact softmax) on the first
 * VAL_TOKENS of the validation stream, for each K given (0: the exact
 * softmax).  Model: LSTM, 1 layer, embedding 128, hidden 256, batch 32,
 * seq_len 35, Adam 0.002, clip 5, seed 42; the matrix products on
 * RNNLM_BV_THREADS threads (default 1).
 *
 *   big_vocab MAX_VOCAB TRAIN_TOKENS VAL_TOKENS K... < corpus
 *
 * Prints "vocab V DISTINCT_WORDS" then per K "result K TOKENS_PER_S
 * VAL_LOSS TRAIN_LOSS SECONDS".  Run by bench/big_vocab.sh.
 */
#include "rnnlm_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	rl_env		env;
	rl_config	c;
	rl_builder *b;
	rl_vocab   *v;
	int32_t    *tr,
			   *va;
	size_t		ntr,
				nva,
				ndocs,
				cap = 1 << 16,
				len;
	char	   *line = malloc(cap);
	int32_t		max_vocab;
	size_t		train_tokens,
				val_tokens;
	int			a;

	if (argc < 5 || line == NULL)
	{
		fprintf(stderr, "usage: big_vocab MAX_VOCAB TRAIN_TOKENS VAL_TOKENS K... < corpus\n");
		return 2;
	}
	max_vocab = atoi(argv[1]);
	train_tokens = (size_t) atol(argv[2]);
	val_tokens = (size_t) atol(argv[3]);
	rl_env_init_malloc(&env);
	rl_compute_set_threads(getenv("RNNLM_BV_THREADS") ? atoi(getenv("RNNLM_BV_THREADS")) : 1);
	memset(&c, 0, sizeof(c));
	rl_config_text_init(&c, RL_TOK_WORD, 1);
	if (rl_builder_create(&env, &c, &b) != RL_OK)
		return 1;
	while (fgets(line, (int) cap, stdin))
	{
		len = strlen(line);
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (rl_builder_add(b, line, len) != RL_OK)
			return 1;
	}
	ndocs = rl_builder_documents(b);
	if (rl_builder_finish(b, (size_t) (0.1 * (double) ndocs + 0.5), max_vocab, &v, &tr, &ntr,
						  &va, &nva) != RL_OK)
	{
		fprintf(stderr, "big_vocab: %s\n", env.errmsg);
		return 1;
	}
	rl_builder_free(b);
	printf("vocab %d docs %zu train_stream %zu val_stream %zu\n", v->size, ndocs, ntr, nva);
	fflush(stdout);
	if (train_tokens > ntr)
		train_tokens = ntr;
	if (val_tokens > nva)
		val_tokens = nva;
	for (a = 4; a < argc; a++)
	{
		rl_model   *m;
		rl_vocab   *copy;
		rl_train_opts o;
		rl_train_result res;
		uint32_t   *lengths = malloc(sizeof(uint32_t) * (size_t) v->size);
		int32_t		i;

		c.cell = RL_CELL_LSTM;
		c.vocab_size = v->size;
		c.embedding_dim = 128;
		c.hidden_size = 256;
		c.num_layers = 1;
		for (i = 0; i < v->size; i++)
			lengths[i] = v->offsets[i + 1] - v->offsets[i];
		if (rl_vocab_create(&env, v->size, lengths, v->strings, &copy) != RL_OK ||
			rl_model_create(&env, &c, copy, &m) != RL_OK)
		{
			fprintf(stderr, "big_vocab: %s\n", env.errmsg);
			return 1;
		}
		free(lengths);
		rl_model_init_weights(m, 42, 0.0f);
		memset(&o, 0, sizeof(o));
		o.epochs = 1;
		o.batch_size = 32;
		o.seq_len = 35;
		o.learning_rate = 0.002;
		o.clip_norm = 5.0;
		o.seed = 42;
		o.sampled_softmax = atoi(argv[a]);
		if (rl_train(&env, m, tr, train_tokens, va, val_tokens, &o, &res) != RL_OK)
		{
			fprintf(stderr, "big_vocab: %s\n", env.errmsg);
			return 1;
		}
		printf("result %d %.1f %.4f %.4f %.1f\n", o.sampled_softmax, res.tokens_per_second,
			   res.val_loss, res.train_loss, res.seconds);
		fflush(stdout);
		rl_model_free(&env, m);
	}
	return 0;
}
