/*
 * cache.c
 *		Models loaded once per backend.
 *
 * A loaded model is kept in its own memory context under a backend-lifetime
 * root, keyed by name, together with the row revision it was loaded from.
 * The first call of a function in each statement asks the table for the
 * current revision (one index lookup under the statement's snapshot) and
 * reloads when it changed, so a replaced or dropped model is noticed by the
 * next statement in every session; later calls in the same statement reuse
 * what the first found (kept in fn_extra, one entry per model name, so a
 * function of several models looks each up once per statement too).  Any
 * UPDATE of a model row bumps its revision (a trigger), so weights changed
 * by hand are noticed too.  A model superseded by a newer
 * revision is not freed at once, since another call site of the running
 * statement may still use it: its context is moved under the transaction's
 * and goes away when the transaction ends.
 */
#include "rnnlm_pg.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

/* the cache key of a pinned version: name@<its sha256 in hex> */
#define KEY_LEN (RNNLM_MAX_NAME + 1 + 64)

typedef struct CacheEntry
{
	char		name[KEY_LEN + 1];	/* hash key: a name, or name@sha256 */
	MemoryContext cxt;
	RnnlmLoaded loaded;
} CacheEntry;

typedef struct CallCache
{
	char		name[RNNLM_MAX_REF + 1];	/* the reference as given */
	TimestampTz stmt_start;		/* statement the lookup was made in */
	CommandId	cid;			/* and its command counter */
	Oid			userid;			/* and the role it was made as */
	SubTransactionId subxid;	/* and the subtransaction */
	uint64		snap_count;		/* and the snapshot's completed-xact count */
	TransactionId snap_xmin;	/* and its xmin */
	RnnlmLoaded loaded;
} CallCache;

/* What one call site (fn_extra) has looked up: one entry per model name. */
typedef struct CallCacheSet
{
	int			n,
				cap;
	CallCache  *entries;
} CallCacheSet;

static HTAB *model_cache = NULL;
static MemoryContext cache_root = NULL;

/* Records what the current call sees: statement, command, role, snapshot. */
static void
call_stamp(CallCache *cc)
{
	Snapshot	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : NULL;

	cc->stmt_start = GetCurrentStatementStartTimestamp();
	cc->cid = GetCurrentCommandId(false);
	cc->userid = GetUserId();
	cc->subxid = GetCurrentSubTransactionId();
	cc->snap_count = snap ? snap->snapXactCompletionCount : 0;
	cc->snap_xmin = snap ? snap->xmin : InvalidTransactionId;
}

/* Whether the current call sees what the call recorded in cc saw. */
static bool
call_matches(const CallCache *cc)
{
	Snapshot	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : NULL;

	return snap != NULL &&
		cc->stmt_start == GetCurrentStatementStartTimestamp() &&
		cc->cid == GetCurrentCommandId(false) &&
		cc->userid == GetUserId() &&
		cc->subxid == GetCurrentSubTransactionId() &&
		cc->snap_count == snap->snapXactCompletionCount &&
		cc->snap_xmin == snap->xmin;
}

/* Creates the backend's cache on first use. */
static void
cache_init(void)
{
	HASHCTL		ctl;

	if (model_cache)
		return;
	cache_root = AllocSetContextCreate(TopMemoryContext, "rnnlm model cache",
									   ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = KEY_LEN + 1;
	ctl.entrysize = sizeof(CacheEntry);
	ctl.hcxt = cache_root;
	model_cache = hash_create("rnnlm models", 16, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* Drops a cache entry; its memory lives until the end of the transaction. */
static void
cache_retire(CacheEntry *e)
{
	if (e->cxt)
		MemoryContextSetParent(e->cxt, TopTransactionContext);
	hash_search(model_cache, e->name, HASH_REMOVE, NULL);
}

/*
 * Loads the named model's current revision, or its version (> 0, whose
 * SHA-256 is sha_hex), into a new context.
 */
static void
cache_load(const char *name, int32 version, const char *sha_hex, CacheEntry *e)
{
	MemoryContext cxt;
	bytea	   *blob;
	int64		revision = 0;
	rl_env		env;
	rl_model   *model;
	rl_state   *state;

	/* built under the caller's context until complete, so an error frees it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "rnnlm model",
								ALLOCSET_DEFAULT_SIZES);
	blob = version > 0 ? rnnlm_catalog_version_weights(name, version, sha_hex, CurrentMemoryContext)
		: rnnlm_catalog_weights(name, &revision, CurrentMemoryContext);
	if (blob == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", name)));
	rnnlm_env_init(&env, cxt, false);
	if (rl_model_deserialize(&env, (const uint8 *) VARDATA_ANY(blob),
							 VARSIZE_ANY_EXHDR(blob), &model) != RL_OK)
	{
		if (env.status != RL_ERR_FORMAT)
			rnnlm_raise(&env, "loading the model");
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("rnnlm model \"%s\" has invalid weights: %s", name, env.errmsg),
				 errhint("Train the model again with {\"replace\": true}, or drop it with rnnlm_drop().")));
	}
	if (rl_state_create(&env, model, &state) != RL_OK)
		rnnlm_raise(&env, "loading the model");
	e->loaded.sample_work = rl_alloc(&env, rl_sample_work_size(model->cfg.vocab_size));
	if (e->loaded.sample_work == NULL)
		rnnlm_raise(&env, "loading the model");
	pfree(blob);

	MemoryContextSetParent(cxt, cache_root);
	e->cxt = cxt;
	e->loaded.model = model;
	e->loaded.state = state;
	e->loaded.cxt = cxt;
	e->loaded.revision = revision;
}

/* The cache entry of the named model's current revision, (re)loaded if it changed. */
static CacheEntry *
get_current(const char *name)
{
	bool		found;
	int64		revision;
	CacheEntry *e;

	if (strlen(name) > RNNLM_MAX_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("model name is too long"),
				 errdetail("Model names are at most %d bytes.", RNNLM_MAX_NAME)));
	revision = rnnlm_catalog_revision(name, &found);
	e = hash_search(model_cache, name, HASH_FIND, NULL);
	if (!found)
	{
		if (e)
			cache_retire(e);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rnnlm model \"%s\" does not exist", name),
				 errhint("SELECT name FROM rnnlm.models lists the models you can use.")));
	}
	if (e == NULL || e->loaded.revision != revision)
	{
		CacheEntry	fresh;

		memset(&fresh, 0, sizeof(fresh));
		cache_load(name, 0, NULL, &fresh);
		if (e)
			cache_retire(e);
		e = hash_search(model_cache, name, HASH_ENTER, NULL);
		e->cxt = fresh.cxt;
		e->loaded = fresh.loaded;
	}
	return e;
}

/*
 * The cache entry of a pinned version.  The version is looked up every
 * statement (the caller must still be able to use the model), but, being
 * immutable, its weights are loaded once: the entry is keyed by the name
 * and the version's SHA-256, so a model dropped and made again under the
 * same name and number is another entry.
 */
static CacheEntry *
get_pinned(const RnnlmRef *ref)
{
	char		key[KEY_LEN + 1];
	char		sha[65];
	int32		version = rnnlm_catalog_resolve_ref(ref, sha);
	CacheEntry *e;

	snprintf(key, sizeof(key), "%s@%s", ref->name, sha);
	e = hash_search(model_cache, key, HASH_FIND, NULL);
	if (e == NULL)
	{
		CacheEntry	fresh;

		memset(&fresh, 0, sizeof(fresh));
		cache_load(ref->name, version, sha, &fresh);
		e = hash_search(model_cache, key, HASH_ENTER, NULL);
		e->cxt = fresh.cxt;
		e->loaded = fresh.loaded;
	}
	return e;
}

/*
 * The model a reference names (a name: its current version as of this
 * statement; name@N or name@sha256:<prefix>: that version), loaded.  Raises
 * an ERROR if it does not exist or its stored weights are invalid.
 */
RnnlmLoaded *
rnnlm_get_model(FunctionCallInfo fcinfo, const char *name)
{
	CallCacheSet *set = (CallCacheSet *) fcinfo->flinfo->fn_extra;
	CallCache  *cc = NULL;
	CacheEntry *e;
	RnnlmRef	ref;
	int			i;

	if (set == NULL)
	{
		set = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallCacheSet));
		fcinfo->flinfo->fn_extra = set;
	}
	for (i = 0; i < set->n && cc == NULL; i++)
		if (strcmp(set->entries[i].name, name) == 0)
			cc = &set->entries[i];

	/*
	 * Reuse the lookup of an earlier call that saw exactly what this one
	 * sees.  A function expression can outlive a statement (PL/pgSQL keeps
	 * simple expressions for the whole transaction), so the statement's start
	 * time, command counter, role, subtransaction and snapshot must all
	 * match: a new statement, a change made or rolled back by this
	 * transaction, a transaction committed elsewhere and visible now, or a
	 * SET ROLE looks the model up again (under the row-level security of the
	 * role then in effect).
	 */
	if (cc && call_matches(cc))
		return &cc->loaded;

	rnnlm_prepare_compute();
	cache_init();
	SPI_connect();
	if (rnnlm_parse_ref(name, &ref))
		e = get_pinned(&ref);
	else
		e = get_current(name);
	SPI_finish();

	if (cc == NULL)
	{
		if (set->n == set->cap)
		{
			set->cap = set->cap ? 2 * set->cap : 1;
			set->entries = set->entries
				? repalloc(set->entries, sizeof(CallCache) * set->cap)
				: MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(CallCache) * set->cap);
		}
		cc = &set->entries[set->n++];
		strlcpy(cc->name, name, sizeof(cc->name));
	}
	call_stamp(cc);
	cc->loaded = e->loaded;
	return &cc->loaded;
}

/*
 * Sets the loaded model's stream to the precision rnnlm.precision comes
 * to (making or dropping its bf16 copy of the weights, in the model's
 * context) and returns it.
 */
rl_precision
rnnlm_use_precision(RnnlmLoaded *lm)
{
	rl_precision p = rnnlm_resolve_precision(rnnlm_precision, "scoring");
	rl_env		env;

	if (rl_state_precision(lm->state) != p)
	{
		rnnlm_env_init(&env, lm->cxt, false);
		if (rl_state_set_precision(&env, lm->state, p) != RL_OK)
			rnnlm_raise(&env, "preparing bf16 weights");
	}
	return p;
}
