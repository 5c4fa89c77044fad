/*
 * pretrained.c
 *		embeddings_query: a model's embeddings start from vectors a query
 *		returns, as (token text, vector real[] or double precision[]) rows.
 *
 * The query runs after the vocabulary is known and before the model is
 * made, read-only and with the caller's privileges, like the training
 * query; only the vectors of tokens in the vocabulary are kept (a buffer
 * the size of the embedding matrix), so a table of every word of a
 * language streams through.  The first row's length is the embedding size
 * when embedding_dim is not given, and must equal it when it is; every
 * vector must have that length and finite elements.  A token found twice
 * keeps its first vector.  Tokens of the vocabulary the query does not
 * return start random, as without it.  With freeze_embeddings the matrix
 * then stays as it starts.
 */
#include "rnnlm_pg.h"

#include <math.h>

#include "miscadmin.h"

/* Collects the vectors of the vocabulary's tokens. */
static void
add_vector(void *arg, const char *u, size_t len, const double *v, int n)
{
	RnnlmTraining *t = arg;
	RnnlmPretrained *p = &t->pretrained;
	int32_t		id;
	int			i;

	CHECK_FOR_INTERRUPTS();
	if (p->dim == 0)
	{
		size_t		bytes = (size_t) t->vocab->size * (size_t) Max(n, 1) * sizeof(float);

		if (n < 1 || n > RL_MAX_EMBED)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the vectors of the embeddings_query must have 1 to %d elements, not %d",
							RL_MAX_EMBED, n)));
		if (rnnlm_option_given(&t->opts, "embedding_dim") && n != t->opts.embedding_dim)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the vectors of the embeddings_query have %d elements, embedding_dim is %d",
							n, t->opts.embedding_dim),
					 errhint("Leave embedding_dim out to take it from the vectors.")));
		if (bytes > RNNLM_MAX_MEMORY_BYTES())
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the pretrained embeddings would take %zu MB, more than rnnlm.max_memory (%d MB)",
							bytes >> 20, rnnlm_max_memory_mb)));
		p->dim = n;
		p->rows = MemoryContextAllocExtended(t->cxt, bytes, MCXT_ALLOC_HUGE);
		p->have = MemoryContextAllocZero(t->cxt, (size_t) t->vocab->size);
	}
	if (n != p->dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the vector of token \"%s\" has %d elements, the first one had %d",
						pnstrdup(u, Min(len, 64)), n, p->dim)));
	p->rows_read++;
	id = rl_vocab_lookup(t->vocab, u, len);
	if (id < RL_NUM_SPECIAL || p->have[id])
		return;
	for (i = 0; i < n; i++)
	{
		if (!isfinite(v[i]) || fabs(v[i]) > 1e30)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the vector of token \"%s\" has an element that is not a finite number",
							pnstrdup(u, Min(len, 64)))));
		p->rows[(size_t) id * p->dim + i] = (float) v[i];
	}
	p->have[id] = 1;
	p->found++;
}

/*
 * Runs the embeddings_query (if any) against the new vocabulary; sets the
 * embedding size from it when embedding_dim was left out.
 */
void
rnnlm_pretrained_read(RnnlmTraining *t)
{
	const char *query = t->opts.embeddings_query;
	uint64		used;

	if (query == NULL)
		return;
	if (t->model != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rnnlm option \"embeddings_query\" cannot be used with init_from"),
				 errdetail("A fine-tuned model starts from the embeddings of \"%s\".",
						   t->opts.init_from)));
	rnnlm_read_vector_rows(query, "embeddings_query", add_vector, t, &used);
	if (t->pretrained.dim == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the embeddings_query returned no vectors")));
	t->opts.embedding_dim = t->pretrained.dim;
}

/* Copies the vectors found into the new model's embedding matrix. */
void
rnnlm_pretrained_apply(RnnlmTraining *t)
{
	RnnlmPretrained *p = &t->pretrained;
	int32_t		id;

	if (p->rows == NULL)
		return;
	Assert(t->model->cfg.embedding_dim == p->dim);
	for (id = RL_NUM_SPECIAL; id < t->model->cfg.vocab_size; id++)
		if (p->have[id])
			memcpy(t->model->params + (size_t) id * p->dim, p->rows + (size_t) id * p->dim,
				   sizeof(float) * p->dim);
	pfree(p->rows);
	p->rows = NULL;
}
