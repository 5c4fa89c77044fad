/*
 * forget_bias.c
 *		Validation loss of a character LSTM for one starting value of the
 *		LSTM forget-gate bias, to choose the default of the forget_bias
 *		training option.
 *
 * Trains through the plain-C core exactly as rnnlm_train (src/pg/train.c)
 * would for a user passing the corpus one document per line: every line is
 * a document (empty lines too, as documents without tokens), the last 10% of
 * the documents (validation_docs(0.1, ndocs)) are held out, the character
 * tokenizer keeps case and the whole vocabulary.  The model and training
 * follow the fixed protocol: LSTM, 2 layers of hidden 256, embedding 64,
 * batch 32, seq_len 100, Adam at learning rate 0.002, clip_norm 5, dropout
 * 0, seed 42, 3 epochs, one OpenBLAS thread.  The validation loss (nats per
 * token) is printed after every epoch, so one run gives both the 1-epoch
 * and the 3-epoch figure.
 *
 *   forget_bias BIAS [CORPUS]
 *
 * CORPUS defaults to ../shared/data/tinyshakespeare.txt (relative to the
 * current directory, i.e. the repository root).  RNNLM_FB_LINES=N reads only
 * the first N lines (a smoke run; 0 or unset = all).  Progress goes to
 * stderr; one line "result BIAS VAL1 VAL3 TOKENS_PER_S THREADS DOCS VALDOCS"
 * goes to stdout for bench/forget_bias.sh.
 *
 * Reproduce (builds into a temporary directory, runs bias 0 then 1):
 *   bash bench/forget_bias.sh
 */
#include "rnnlm_core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FB_EPOCHS 3

/* Validation losses collected by the epoch callback. */
typedef struct fb_progress
{
	double		val_loss[FB_EPOCHS + 1];
} fb_progress;

/* How many of ndocs documents to hold out, as src/pg/train.c computes it. */
static size_t
validation_docs(double fraction, size_t ndocs)
{
	size_t		k;

	if (fraction <= 0.0 || ndocs < 2)
		return 0;
	k = (size_t) floor(fraction * (double) ndocs + 0.5);
	if (k < 1)
		k = 1;
	if (k > ndocs - 1)
		k = ndocs - 1;
	return k;
}

/* Prints the message of a failed core call and exits. */
static void
die_env(const rl_env *env, const char *what)
{
	fprintf(stderr, "forget_bias: %s: %s\n", what, env->errmsg);
	exit(1);
}

/* Reads a whole file into a malloc'd buffer; exits on failure. */
static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	size_t		cap = 0,
				n = 0;

	if (f == NULL)
	{
		perror(path);
		exit(1);
	}
	for (;;)
	{
		size_t		got;

		if (cap - n < 65536)
		{
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
			if (buf == NULL)
			{
				fprintf(stderr, "forget_bias: out of memory reading %s\n", path);
				exit(1);
			}
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
	{
		perror(path);
		exit(1);
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Epoch callback: prints the epoch's figures and keeps its validation loss. */
static void
epoch_done(void *ud, const rl_epoch_stats *st)
{
	fb_progress *p = ud;

	if (st->epoch >= 1 && st->epoch <= FB_EPOCHS)
		p->val_loss[st->epoch] = st->val_loss;
	fprintf(stderr, "epoch %d/%d: train_loss %.4f val_loss %.4f, %.1f s, %.0f tokens/s\n",
			st->epoch, st->epochs, st->train_loss, st->val_loss, st->seconds,
			st->tokens_per_second);
}

/* Builds the split, trains for FB_EPOCHS epochs and prints the result line. */
int
main(int argc, char **argv)
{
	const char *path = "../shared/data/tinyshakespeare.txt";
	const char *lines_env = getenv("RNNLM_FB_LINES");
	long		max_lines = lines_env ? atol(lines_env) : 0;
	char		errbuf[RL_ERRMSG_LEN];
	char	   *text,
			   *end,
			   *p;
	size_t		len,
				ndocs,
				val_docs,
				ntrain,
				nval;
	float		fb;
	long		nlines = 0;
	rl_env		env;
	rl_builder *b;
	rl_vocab   *vocab;
	int32_t    *train,
			   *val;
	rl_config	cfg;
	rl_model   *m;
	rl_train_opts o;
	rl_train_result res;
	fb_progress prog;

	if (argc < 2 || argc > 3)
	{
		fprintf(stderr, "usage: %s FORGET_BIAS [CORPUS]\n", argv[0]);
		return 2;
	}
	fb = strtof(argv[1], &end);
	if (end == argv[1] || *end != '\0')
	{
		fprintf(stderr, "forget_bias: not a number: %s\n", argv[1]);
		return 2;
	}
	if (argc == 3)
		path = argv[2];

	if (rl_blas_load(errbuf, sizeof(errbuf)) != 0)
	{
		fprintf(stderr, "forget_bias: %s\n", errbuf);
		return 1;
	}
	rl_blas_set_threads(1);

	rl_env_init_malloc(&env);
	memset(&prog, 0, sizeof(prog));
	for (int e = 0; e <= FB_EPOCHS; e++)
		prog.val_loss[e] = NAN;
	env.epoch_done = epoch_done;
	env.ud = &prog;

	/* one document per line; a final newline ends the last line */
	text = read_file(path, &len);
	if (rl_builder_create(&env, RL_TOK_CHAR, 0, &b) != RL_OK)
		die_env(&env, "creating the builder");
	p = text;
	while (p < text + len && (max_lines <= 0 || nlines < max_lines))
	{
		char	   *nl = memchr(p, '\n', (size_t) (text + len - p));
		size_t		n = nl ? (size_t) (nl - p) : (size_t) (text + len - p);

		if (rl_builder_add(b, p, n) != RL_OK)
			die_env(&env, "adding a document");
		nlines++;
		p += n + (nl ? 1 : 0);
	}
	free(text);

	ndocs = rl_builder_documents(b);
	val_docs = validation_docs(0.1, ndocs);
	if (rl_builder_finish(b, val_docs, 0, &vocab, &train, &ntrain, &val, &nval) != RL_OK)
		die_env(&env, "building the vocabulary");
	rl_builder_free(b);
	fprintf(stderr, "%s: %zu documents, %zu held out; vocabulary %d; %zu training and %zu validation ids\n",
			path, ndocs, val_docs, vocab->size, ntrain, nval);

	memset(&cfg, 0, sizeof(cfg));
	cfg.cell = RL_CELL_LSTM;
	cfg.tokenizer = RL_TOK_CHAR;
	cfg.lowercase = 0;
	cfg.vocab_size = vocab->size;
	cfg.embedding_dim = 64;
	cfg.hidden_size = 256;
	cfg.num_layers = 2;
	if (rl_model_create(&env, &cfg, vocab, &m) != RL_OK)
		die_env(&env, "creating the model");
	rl_model_init_weights(m, 42, fb);

	memset(&o, 0, sizeof(o));
	o.epochs = FB_EPOCHS;
	o.batch_size = 32;
	o.seq_len = 100;
	o.learning_rate = 0.002;
	o.clip_norm = 5;
	o.dropout = 0;
	o.seed = 42;
	fprintf(stderr, "forget_bias %g, %d BLAS thread(s)\n", (double) fb, rl_blas_threads());
	if (rl_train(&env, m, train, ntrain, val, nval, &o, &res) != RL_OK)
		die_env(&env, "training");

	printf("result %g %.4f %.4f %.0f %d %zu %zu\n", (double) fb, prog.val_loss[1],
		   prog.val_loss[FB_EPOCHS], res.tokens_per_second, rl_blas_threads(),
		   ndocs, val_docs);

	rl_free(&env, train);
	rl_free(&env, val);
	rl_model_free(&env, m);
	return 0;
}
