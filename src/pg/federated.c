/*
 * federated.c
 *		rnnlm_train_federated: trains one model over the rows of several
 *		shards without their text leaving them (federated averaging), the
 *		coordinator's side; the shards' is federated_shard.c.
 *
 * The coordinator opens a connection to every server (remote.c: its user
 * mapping) and, on all of them at once:
 *   1. begin: each shard reads its rows and returns the counts of its
 *      training units; the coordinator sums them (in the servers' order)
 *      and learns the vocabulary as one training would from all the rows
 *      (with init_from, the parent goes instead, for its text rules and
 *      vocabulary);
 *   2. start: the coordinator creates the model (the seed's weights, or
 *      the parent's) and sends it; each shard makes its token streams and a run;
 *   3. every round, each shard trains round_steps chunks (or an epoch)
 *      from the same weights on its own rows and returns its weights; the
 *      coordinator averages them weighted by the tokens each trained.  An
 *      epoch ends when every shard has trained its own epoch: then each
 *      shard scores the average on its validation rows, and the validation
 *      loss is the token-weighted mean over all shards.  The epoch rules
 *      (keep-best, rate decay, early stopping) are rnnlm_train's, on it.
 *   4. the model is stored here as any trained model.
 * Each shard keeps its own Adam moments and dropout stream (seed + its
 * place in the array) from round to round.
 */
#include "rnnlm_pg.h"
#include "remote.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(rnnlm_train_federated);

/* The rnnlm a shard must have: the one with the federated functions. */
#define SHARD_MIN_VERSION "0.2"

/* Options the coordinator keeps to itself; the shards get the others. */
#define COORDINATOR_ONLY_OPTIONS "'{embeddings_query,init_from,round_steps,replace,keep_versions}'::text[]"

/* One shard of the training. */
typedef struct FedShard
{
	const char *server;
	PGconn	   *conn;
	int64		documents,
				val_documents,
				steps;			/* chunks in its epoch */
	bool		epoch_done;		/* has trained its share of the epoch in progress */
	bool		current;		/* holds the latest average */
} FedShard;

/* The coordinator's state (RnnlmFederation in rnnlm_pg.h). */
struct RnnlmFederation
{
	RnnlmTraining t;			/* the model, options, result and history */
	char		session[NAMEDATALEN];
	char	   *options;		/* the caller's options, as jsonb text */
	FedShard   *shards;
	int			nshards;
	rl_train_opts to;
	rl_epoch_rules rules;
	size_t		P;				/* parameters */
	double	   *acc;			/* the average being summed */
	float	   *received;		/* one shard's weights */
	float	   *best;			/* the best epoch's weights, with keep_best */
	rl_epoch_stats *hist;
	int32		nhist;
	int64		rounds;
	int64		epoch_rounds;	/* of the last epoch */
	double		val_tokens;		/* of the last validation */
	const char *query;
};

typedef struct RnnlmFederation Federation;

/*
 * The servers of a name[] array (NULL: an error): distinct, non-NULL
 * names, at least one; *n receives how many.
 */
char	  **
rnnlm_federated_servers(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **names;
	int			i,
				j;

	if (arr == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("servers must not be NULL")));
	deconstruct_array(arr, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &elems, &nulls, n);
	if (*n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("servers must name at least one foreign server")));
	names = palloc(sizeof(char *) * *n);
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("servers must not contain NULL")));
		names[i] = pstrdup(NameStr(*DatumGetName(elems[i])));
		for (j = 0; j < i; j++)
			if (strcmp(names[j], names[i]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("server \"%s\" is named twice", names[i]),
						 errhint("Each shard's rows would be trained on twice.")));
	}
	return names;
}

/*
 * A federated training of the model name over the servers, with parsed
 * options and the caller's jsonb (NULL: none); everything in cxt.
 */
RnnlmFederation *
rnnlm_federation_create(const char *name, char **servers, int nservers,
						const RnnlmOptions *opts, Jsonb *jopts, MemoryContext cxt, bool notices)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Federation *f = palloc0(sizeof(Federation));
	int			i;

	f->shards = palloc0(sizeof(FedShard) * nservers);
	f->nshards = nservers;
	for (i = 0; i < nservers; i++)
		f->shards[i].server = pstrdup(servers[i]);
	f->options = jopts ? JsonbToCString(NULL, &jopts->root, VARSIZE(jopts)) : pstrdup("{}");
	snprintf(f->session, sizeof(f->session), "%d.%lld", MyProcPid, (long long) GetCurrentTimestamp());
	rnnlm_training_init(&f->t, pstrdup(name), opts, cxt, notices);
	MemoryContextSwitchTo(old);
	return f;
}

/* Opens the connections and checks each shard's rnnlm. */
static void
fed_connect(Federation *f)
{
	int			i;

	for (i = 0; i < f->nshards; i++)
	{
		FedShard   *s = &f->shards[i];

		s->conn = rnnlm_remote_connect(s->server, "rnnlm_train_federated");
		rnnlm_remote_check_extension(s->conn, s->server, SHARD_MIN_VERSION);
	}
}

/* Closes every connection, cancelling what is in progress. */
static void
fed_disconnect(Federation *f)
{
	int			i;

	for (i = 0; i < f->nshards; i++)
	{
		rnnlm_remote_close(f->shards[i].conn);
		f->shards[i].conn = NULL;
	}
}

/* The model's file, for the shards: serialised into *len bytes. */
static uint8_t *
model_file(Federation *f, size_t *len)
{
	uint8_t    *file;

	if (rl_model_serialize(&f->t.env, f->t.model, &file, len) != RL_OK)
		rnnlm_raise(&f->t.env, "serializing the model");
	if (*len > (size_t) PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("rnnlm model of %zu MB is too large to send to a shard", *len >> 20)));
	return file;
}

/*
 * Sends begin to every shard (with the parent when fine-tuning) and,
 * unless fine-tuning, learns the vocabulary from their summed unit counts.
 */
static void
fed_begin(Federation *f, const char *query)
{
	static const char *sql =
	"SELECT unit, count FROM rnnlm.federated_begin($1, $2, $3::jsonb OPERATOR(pg_catalog.-) "
	COORDINATOR_ONLY_OPTIONS ", $4)";
	size_t		len = 0;
	uint8_t    *parent = f->t.model ? model_file(f, &len) : NULL;
	const char *params[4] = {f->session, query, f->options, (const char *) parent};
	int			lengths[4] = {0, 0, 0, (int) len};
	int			formats[4] = {0, 0, 0, 1};
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, BYTEAOID};
	rl_env	   *env = &f->t.env;
	rl_unit_tally *tally;
	const rl_unit_count *units;
	int32_t		n;
	int			i;

	for (i = 0; i < f->nshards; i++)
		rnnlm_remote_send(f->shards[i].conn, f->shards[i].server, sql, 4, types, params,
						  lengths, formats, 1);
	if (parent)
		rl_free(env, parent);
	if (rl_unit_tally_create(env, &tally) != RL_OK)
		rnnlm_raise(env, "counting the training units");
	for (i = 0; i < f->nshards; i++)
	{
		PGresult   *res = rnnlm_remote_result(f->shards[i].conn, f->shards[i].server);
		int			r;

		for (r = 0; r < PQntuples(res); r++)
		{
			int64		count = rnnlm_remote_int8(res, r, 1);

			if ((r & 4095) == 0)
				CHECK_FOR_INTERRUPTS();
			if (count <= 0 ||
				rl_unit_tally_add(tally, PQgetvalue(res, r, 0), (uint32_t) PQgetlength(res, r, 0),
								  (uint64_t) count) != RL_OK)
			{
				PQclear(res);
				if (count <= 0)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_ERROR),
							 errmsg("server \"%s\" sent a count that is not positive", f->shards[i].server)));
				rnnlm_raise(env, "counting the training units");
			}
		}
		PQclear(res);
	}
	if (f->t.model == NULL)
	{
		units = rl_unit_tally_units(tally, &n);
		if (rl_tokenizer((rl_tokenizer_kind) f->t.opts.tokenizer)->learn(env, units, n,
																		  f->t.opts.max_vocab,
																		  &f->t.vocab) != RL_OK)
			rnnlm_raise(env, "building the vocabulary");
	}
	rl_unit_tally_free(tally);
}

/* Bytes the coordinator holds besides the model: the sum, one shard's weights, the best. */
static size_t
coordinator_memory(size_t P)
{
	return P * (sizeof(double) + 2 * sizeof(float));
}

/*
 * Creates the model (unless fine-tuning: the parent's), with the buffers of
 * averaging, checked against rnnlm.max_memory.
 */
static void
fed_create_model(Federation *f)
{
	size_t		need;

	if (f->t.model == NULL)
	{
		rnnlm_pretrained_read(&f->t);
		rnnlm_training_create_model(&f->t, false);
	}
	f->P = f->t.model->nparams;
	need = coordinator_memory(f->P);
	if (need > RNNLM_MAX_MEMORY_BYTES())
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("rnnlm federated training would need %zu MB here, more than rnnlm.max_memory (%d MB)",
						(need + (1 << 20) - 1) >> 20, rnnlm_max_memory_mb)));
	f->acc = MemoryContextAllocHuge(f->t.cxt, f->P * sizeof(double));
	f->received = MemoryContextAllocHuge(f->t.cxt, f->P * sizeof(float));
	f->best = MemoryContextAllocHuge(f->t.cxt, f->P * sizeof(float));
	rnnlm_core_train_opts(&f->t.opts, &f->to);
	rl_epoch_rules_init(&f->rules, &f->to);
}

/* Sends the new model to every shard, which makes its streams and run. */
static void
fed_start(Federation *f)
{
	static const char *sql =
	"SELECT documents, validation_documents, steps FROM rnnlm.federated_start($1, $2, $3)";
	size_t		len;
	uint8_t    *file = model_file(f, &len);
	int			i;

	for (i = 0; i < f->nshards; i++)
	{
		char	   *seed = psprintf(INT64_FORMAT, f->t.opts.seed + i);
		const char *params[3] = {f->session, (const char *) file, seed};
		int			lengths[3] = {0, (int) len, 0};
		int			formats[3] = {0, 1, 0};
		Oid			types[3] = {TEXTOID, BYTEAOID, INT8OID};

		rnnlm_remote_send(f->shards[i].conn, f->shards[i].server, sql, 3, types, params,
						  lengths, formats, 1);
	}
	rl_free(&f->t.env, file);
	for (i = 0; i < f->nshards; i++)
	{
		FedShard   *s = &f->shards[i];
		PGresult   *res = rnnlm_remote_result(s->conn, s->server);

		s->documents = rnnlm_remote_int8(res, 0, 0);
		s->val_documents = rnnlm_remote_int8(res, 0, 1);
		s->steps = rnnlm_remote_int8(res, 0, 2);
		s->current = true;
		PQclear(res);
		f->t.ndocs += s->documents;
		f->t.nval_docs += s->val_documents;
	}
}

/* The model's weights as a weights file, for the shards. */
static char *
average_file(Federation *f, int *len)
{
	size_t		n = rl_weights_file_size(f->P);
	char	   *b;

	if (n > (size_t) PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("rnnlm model is too large to send to a shard")));
	b = MemoryContextAllocHuge(CurrentMemoryContext, n);
	rl_weights_file_write(f->t.model->params, f->P, (uint8_t *) b);
	*len = (int) n;
	return b;
}

/* Sends one call with (session, weights or NULL, more text parameters) to a shard. */
static void
send_with_weights(FedShard *s, const char *sql, const char *session, const char *file,
				  int len, const char *p3, const char *p4)
{
	const char *params[4] = {session, s->current ? NULL : file, p3, p4};
	int			lengths[4] = {0, len, 0, 0};
	int			formats[4] = {0, 1, 0, 0};
	Oid			types[4] = {TEXTOID, BYTEAOID, FLOAT8OID, INT4OID};

	rnnlm_remote_send(s->conn, s->server, sql, p3 ? 4 : 2, types, params, lengths, formats, 1);
}

/* Adds one shard's weights (a weights file from a result) to the sum. */
static void
add_weights(Federation *f, const FedShard *s, PGresult *res, int64 tokens)
{
	if (PQgetisnull(res, 0, 0) ||
		rl_weights_file_read(&f->t.env, (const uint8_t *) PQgetvalue(res, 0, 0),
							 (size_t) PQgetlength(res, 0, 0), f->received, f->P) != RL_OK)
	{
		char	   *msg = pstrdup(f->t.env.errmsg);

		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("server \"%s\" sent weights that cannot be used", s->server),
				 errdetail("%s", msg)));
	}
	rl_average_add(f->acc, f->received, f->P, (double) tokens);
}

/*
 * One round: every shard that has not finished its share of the epoch
 * trains round_steps chunks from the latest average; the token-weighted
 * average of what they return becomes the model's weights.  Adds the
 * tokens and summed loss trained to *tokens and *loss.
 */
static void
fed_round(Federation *f, int64 *tokens, double *loss)
{
	static const char *sql =
	"SELECT new_weights, tokens, loss_sum, epoch_ended FROM rnnlm.federated_train($1, $2, $3, $4)";
	char	   *file = NULL;
	int			len = 0,
				i;
	char		lr[32],
				steps[16];
	double		total = 0;

	/* on the stack: a long training has many rounds, in one memory context */
	snprintf(lr, sizeof(lr), "%.17g", f->rules.lr);
	snprintf(steps, sizeof(steps), "%d", f->t.opts.round_steps);

	for (i = 0; i < f->nshards; i++)
		if (!f->shards[i].epoch_done && !f->shards[i].current && file == NULL)
			file = average_file(f, &len);
	for (i = 0; i < f->nshards; i++)
		if (!f->shards[i].epoch_done)
			send_with_weights(&f->shards[i], sql, f->session, file, len, lr, steps);
	memset(f->acc, 0, f->P * sizeof(double));
	for (i = 0; i < f->nshards; i++)
	{
		FedShard   *s = &f->shards[i];
		PGresult   *res;
		int64		n;

		if (s->epoch_done)
			continue;
		res = rnnlm_remote_result(s->conn, s->server);
		n = rnnlm_remote_int8(res, 0, 1);
		s->epoch_done = rnnlm_remote_bool(res, 0, 3);
		if (n <= 0)
		{
			PQclear(res);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("server \"%s\" trained no tokens in a round", s->server)));
		}
		add_weights(f, s, res, n);
		*loss += rnnlm_remote_float8(res, 0, 2);
		PQclear(res);
		*tokens += n;
		total += (double) n;
	}
	if (file)
		pfree(file);
	if (total > 0)
	{
		rl_average_take(f->acc, f->P, total, f->t.model->params);
		for (i = 0; i < f->nshards; i++)
			f->shards[i].current = false;
	}
	f->rounds++;
}

/*
 * Sends the average to every shard and returns its token-weighted loss on
 * all the shards' validation rows (NaN when none has any).
 */
static double
fed_validate(Federation *f)
{
	static const char *sql = "SELECT val_loss, val_tokens FROM rnnlm.federated_evaluate($1, $2)";
	char	   *file = NULL;
	int			len = 0,
				i;
	double		sum = 0,
				count = 0;

	for (i = 0; i < f->nshards; i++)
		if (!f->shards[i].current && file == NULL)
			file = average_file(f, &len);
	for (i = 0; i < f->nshards; i++)
		send_with_weights(&f->shards[i], sql, f->session, file, len, NULL, NULL);
	for (i = 0; i < f->nshards; i++)
	{
		FedShard   *s = &f->shards[i];
		PGresult   *res = rnnlm_remote_result(s->conn, s->server);
		int64		n = rnnlm_remote_int8(res, 0, 1);

		if (n > 0)
		{
			sum += rnnlm_remote_float8(res, 0, 0) * (double) n;
			count += (double) n;
		}
		s->current = true;
		PQclear(res);
	}
	if (file)
		pfree(file);
	f->val_tokens = count;
	return count > 0 ? sum / count : NAN;
}

/* One epoch: rounds until every shard has trained its own epoch, then validation and the rules. */
static void
fed_epoch(Federation *f)
{
	double		t0 = rl_now_seconds();
	int64		tokens = 0;
	double		loss = 0;
	rl_epoch_stats es;
	int			i;
	bool		more = true;
	int64		rounds0 = f->rounds;

	for (i = 0; i < f->nshards; i++)
		f->shards[i].epoch_done = false;
	while (more)
	{
		fed_round(f, &tokens, &loss);
		more = false;
		for (i = 0; i < f->nshards; i++)
			more |= !f->shards[i].epoch_done;
	}
	memset(&es, 0, sizeof(es));
	es.epoch = f->nhist + 1;
	es.epochs = f->t.opts.epochs;
	es.learning_rate = f->rules.lr;
	es.train_loss = tokens > 0 ? loss / (double) tokens : NAN;
	es.val_loss = fed_validate(f);
	es.seconds = rl_now_seconds() - t0;
	es.tokens_per_second = es.seconds > 0 ? (double) tokens / es.seconds : 0;
	if (f->nhist == 0)
		f->t.res.train_tokens = (size_t) tokens;
	if (f->hist == NULL)
		f->hist = MemoryContextAlloc(f->t.cxt, sizeof(rl_epoch_stats) * f->t.opts.epochs);
	f->hist[f->nhist++] = es;
	f->epoch_rounds = f->rounds - rounds0;
	if (rl_epoch_rules_apply(&f->rules, &f->to, es.epoch, es.val_loss))
		memcpy(f->best, f->t.model->params, f->P * sizeof(float));
	{
		MemoryContext old = MemoryContextSwitchTo(f->t.cxt);

		if (f->t.history)
			pfree(f->t.history);
		f->t.history = rnnlm_history_json(f->hist, f->nhist);
		MemoryContextSwitchTo(old);
	}
	if (f->t.env.epoch_done)
		f->t.env.epoch_done(f->t.env.ud, &es);
}

/* The result of the training, with the kept epoch's weights in the model. */
static void
fed_finish(Federation *f)
{
	rl_train_result *res = &f->t.res;
	int32		kept = f->nhist;
	double		seconds = 0;
	int32		i;

	if (f->to.keep_best && f->rules.best_epoch > 0 && f->rules.best_epoch != f->nhist)
	{
		memcpy(f->t.model->params, f->best, f->P * sizeof(float));
		kept = f->rules.best_epoch;
	}
	for (i = 0; i < f->nhist; i++)
		seconds += f->hist[i].seconds;
	res->epochs_run = f->nhist;
	res->best_epoch = f->rules.best_epoch;
	res->stopped_early = f->rules.stopped;
	res->kept_epoch = kept;
	res->train_loss = f->hist[kept - 1].train_loss;
	res->val_loss = f->hist[kept - 1].val_loss;
	res->val_tokens = (size_t) f->val_tokens;
	res->seconds = seconds;
	res->tokens_per_second = seconds > 0 ? (double) res->train_tokens * f->nhist / seconds : 0;
	if (rl_model_serialize(&f->t.env, f->t.model, &f->t.blob, &f->t.blob_len) != RL_OK)
		rnnlm_raise(&f->t.env, "serializing the model");
}

/* Frees every shard's session (best effort: the connections close next). */
static void
fed_end(Federation *f)
{
	const char *params[1] = {f->session};
	int			i;

	for (i = 0; i < f->nshards; i++)
		PQclear(rnnlm_remote_exec(f->shards[i].conn, f->shards[i].server,
								  "SELECT rnnlm.federated_end($1)", 1, NULL, params,
								  NULL, NULL, 0));
}

/* The shards' part of the summary: "servers": [...], "rounds": n. */
static char *
shards_json(const Federation *f)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	appendStringInfoString(&s, "\"servers\": [");
	for (i = 0; i < f->nshards; i++)
	{
		appendStringInfo(&s, "%s{\"server\": ", i ? ", " : "");
		escape_json(&s, f->shards[i].server);
		appendStringInfo(&s, ", \"documents\": " INT64_FORMAT ", \"validation_documents\": " INT64_FORMAT
						 ", \"steps_per_epoch\": " INT64_FORMAT "}",
						 f->shards[i].documents, f->shards[i].val_documents, f->shards[i].steps);
	}
	appendStringInfo(&s, "], \"rounds\": " INT64_FORMAT, f->rounds);
	return s.data;
}

/*
 * Checks the target name, loads the parent, connects and starts every
 * shard: the rows read there, the vocabulary, the model sent.  The caller
 * is SPI-connected in a transaction; the connections outlive it.
 */
void
rnnlm_federation_prepare(RnnlmFederation *f, const char *query)
{
	rnnlm_training_check_target(&f->t);
	rnnlm_training_load_parent(&f->t);
	fed_connect(f);
	fed_begin(f, query);
	fed_create_model(f);
	fed_start(f);
}

/* Trains one epoch; false when there is none left (every epoch, or early stopping). */
bool
rnnlm_federation_epoch(RnnlmFederation *f)
{
	if (f->nhist >= f->t.opts.epochs || f->rules.stopped)
		return false;
	fed_epoch(f);
	return f->nhist < f->t.opts.epochs && !f->rules.stopped;
}

/* Where the training is, after its last epoch, for a job's progress. */
void
rnnlm_federation_progress(const RnnlmFederation *f, rl_run_progress *p)
{
	double		secs = 0;
	int32		i;

	memset(p, 0, sizeof(*p));
	p->epochs = f->t.opts.epochs;
	p->epoch = f->nhist;
	p->step = p->steps = (size_t) f->epoch_rounds;
	p->train_loss = f->nhist ? f->hist[f->nhist - 1].train_loss : NAN;
	p->val_loss = f->nhist ? f->hist[f->nhist - 1].val_loss : NAN;
	p->learning_rate = f->rules.lr;
	for (i = 0; i < f->nhist; i++)
		secs += f->hist[i].seconds;
	p->tokens_per_second = secs > 0 ? (double) f->t.res.train_tokens * f->nhist / secs : 0;
	p->seconds_left = f->nhist ? secs / f->nhist * (f->t.opts.epochs - f->nhist) : NAN;
}

/* Ends the shards' sessions and sets the result: the kept weights, serialised. */
void
rnnlm_federation_finish(RnnlmFederation *f)
{
	fed_end(f);
	fed_finish(f);
	f->t.summary_extra = MemoryContextStrdup(f->t.cxt, shards_json(f));
}

/* The training behind the federation: the model, result and history to store. */
RnnlmTraining *
rnnlm_federation_training(RnnlmFederation *f)
{
	return &f->t;
}

/* Closes the connections (cancelling what runs there) and frees the training. */
void
rnnlm_federation_free(RnnlmFederation *f)
{
	fed_disconnect(f);
	rnnlm_training_free(&f->t);
}

/* rnnlm_train_federated(model_name, servers, training_query, options): federated averaging over shards. */
Datum
rnnlm_train_federated(PG_FUNCTION_ARGS)
{
	char	   *name = rnnlm_check_new_name(PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	char	   *query = rnnlm_training_query_arg(fcinfo, 2);
	Jsonb	   *jopts = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	MemoryContext caller = CurrentMemoryContext;
	RnnlmOptions opts;
	RnnlmFederation *volatile f;
	char	  **servers;
	int			nservers;
	char	   *summary;

	PreventCommandIfReadOnly("rnnlm_train_federated()");
	servers = rnnlm_federated_servers(PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1), &nservers);
	jopts = rnnlm_replacement_options(name, jopts, &opts, true);
	rnnlm_prepare_compute();

	SPI_connect();
	f = rnnlm_federation_create(name, servers, nservers, &opts, jopts, CurrentMemoryContext, true);
	PG_TRY();
	{
		rnnlm_federation_prepare(f, query);
		while (rnnlm_federation_epoch(f))
			;
		rnnlm_federation_finish(f);
	}
	PG_FINALLY();
	{
		fed_disconnect(f);
	}
	PG_END_TRY();
	rnnlm_training_store(&f->t);
	summary = rnnlm_training_summary(&f->t, caller);
	rnnlm_federation_free(f);
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(summary)));
}
