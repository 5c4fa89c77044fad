/*
 * bpe_learn.c
 *		How long learning the bpe merges takes: the whole of a corpus (one
 *		document per line, the last 10% held out, as rnnlm_train does with
 *		validation_fraction 0.1) streamed into the builder, then the merges
 *		learned from the training lines and every line encoded
 *		(rl_builder_finish), for several vocabulary sizes.
 *
 *   bpe_learn CORPUS MAX_VOCAB...
 *
 * Prints one line per size: "result MAX_VOCAB TOKENS_IN_VOCAB MERGES
 * READ_SECONDS LEARN_SECONDS TRAIN_TOKENS TRAIN_BYTES", the learning time
 * being that of rl_builder_finish (merges and encoding).  Run by
 * bench/bpe_learn.sh.
 */
#include "rnnlm_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on a monotonic clock. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The whole file, NUL-terminated (malloc'd), or exits. */
static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fprintf(stderr, "bpe_learn: cannot read %s\n", path);
		exit(1);
	}
	buf = malloc((size_t) n + 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		fprintf(stderr, "bpe_learn: cannot read %s\n", path);
		exit(1);
	}
	buf[n] = '\0';
	fclose(f);
	*len = (size_t) n;
	return buf;
}

int
main(int argc, char **argv)
{
	size_t		len;
	char	   *text;
	int			a;

	if (argc < 3)
	{
		fprintf(stderr, "usage: bpe_learn CORPUS MAX_VOCAB...\n");
		return 2;
	}
	text = read_file(argv[1], &len);
	for (a = 2; a < argc; a++)
	{
		rl_env		env;
		rl_config	c;
		rl_builder *b;
		rl_vocab   *v;
		int32_t    *tr,
				   *va;
		size_t		ntr,
					nva,
					ndocs = 0,
					val,
					train_bytes = 0,
					pos = 0,
					i;
		double		t0,
					t1,
					t2;
		size_t	   *starts = malloc(sizeof(size_t) * (len + 2));

		rl_env_init_malloc(&env);
		memset(&c, 0, sizeof(c));
		rl_config_text_init(&c, RL_TOK_BPE, 0);
		t0 = now();
		if (starts == NULL || rl_builder_create(&env, &c, &b) != RL_OK)
			return 1;
		while (pos <= len)
		{
			char	   *nl = memchr(text + pos, '\n', len - pos);
			size_t		end = nl ? (size_t) (nl - text) : len;

			if (end == len && pos == len)
				break;
			starts[ndocs++] = pos;
			if (rl_builder_add(b, text + pos, end - pos) != RL_OK)
				return 1;
			pos = end + 1;
		}
		starts[ndocs] = len + 1;
		val = (size_t) (0.1 * (double) ndocs + 0.5);
		for (i = 0; i + val < ndocs; i++)
			train_bytes += starts[i + 1] - starts[i];
		t1 = now();
		if (rl_builder_finish(b, val, atoi(argv[a]), &v, &tr, &ntr, &va, &nva) != RL_OK)
		{
			fprintf(stderr, "bpe_learn: %s\n", env.errmsg);
			return 1;
		}
		t2 = now();
		printf("result %s %d %d %.3f %.3f %zu %zu\n", argv[a], v->size, v->nmerges,
			   t1 - t0, t2 - t1, ntr, train_bytes);
		fflush(stdout);
		rl_builder_free(b);
		rl_vocab_free(&env, v);
		free(tr);
		free(va);
		free(starts);
	}
	free(text);
	return 0;
}
