/*
 * init.c
 *		The module's entry point: the configuration parameters (their
 *		variables are in rnnlm.c), their check hooks, and what a preloaded
 *		library sets up (launcher.c, progress.c).  Nothing calls into this
 *		file, so that its calls into the subsystems make no loop.
 *
 * Copyright (c) 2026, the rnnlm authors
 */
#include "rnnlm_pg.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

/* The settings' values, built from the core's lists of precisions and backends. */
static struct config_enum_entry precision_options[RL_PREC_INT8 + 2];
static struct config_enum_entry backend_options[RL_MAX_BACKENDS + 2];

/* Sets one enum value. */
static void
set_entry(struct config_enum_entry *e, const char *name, int val)
{
	e->name = name;
	e->val = val;
	e->hidden = false;
}

/* Fills the enum values of rnnlm.precision and rnnlm.backend. */
static void
build_enum_options(void)
{
	int			i;

	for (i = 0; i <= RL_PREC_INT8; i++)
		set_entry(&precision_options[i], rl_precision_name((rl_precision) i), i);
	set_entry(&backend_options[0], "auto", 0);
	for (i = 0; rl_backend_name(i) && i < RL_MAX_BACKENDS; i++)
		set_entry(&backend_options[i + 1], rl_backend_name(i), i + 1);
}

/* The name of an rnnlm.backend value: "auto" or a backend's. */
static const char *
backend_value_name(int backend)
{
	return backend == 0 ? "auto" : rl_backend_name(backend - 1);
}

/*
 * Why scoring in precision prec cannot run with rnnlm.backend value backend
 * here, or NULL when it can; *loads: whether the backend's library loaded.
 * Loads it, as its first use would; every use selects the backend of the
 * settings again.
 */
static char *
precision_problem(int backend, int prec, bool *loads)
{
	char		err[RL_ERRMSG_LEN];
	rl_env		env;
	rl_precision got;

	*loads = rl_compute_use(backend_value_name(backend), err, sizeof(err)) == 0;
	if (!*loads)
		return pstrdup(err);
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	if (rl_precision_resolve(&env, (rl_precision) prec, &got) != RL_OK)
		return pstrdup(env.errmsg);
	return NULL;
}

/*
 * Check hooks of rnnlm.precision and rnnlm.backend: a SET that cannot work
 * here (bf16 without bf16 products, a backend whose library is absent) is
 * refused at once, with the reason.  Values from the configuration files,
 * ALTER ROLE and the like are checked at first use instead, so that a
 * setting meant for other machines never stops a server or a login.
 */
static bool
check_precision(int *newval, void **extra, GucSource source)
{
	char	   *why;
	bool		loads;

	if (source != PGC_S_SESSION || *newval == RL_PREC_FP32 || *newval == RL_PREC_INT8)
		return true;
	why = precision_problem(rnnlm_backend, *newval, &loads);
	if (why == NULL)
		return true;
	GUC_check_errdetail("%s.", why);
	GUC_check_errhint("Use fp32, or auto, which takes bf16 only where it runs; rnnlm_runtime() shows what this server has.");
	return false;
}

static bool
check_backend(int *newval, void **extra, GucSource source)
{
	char	   *why;
	bool		loads;

	if (source != PGC_S_SESSION)
		return true;
	why = precision_problem(*newval, rnnlm_precision, &loads);
	if (why == NULL)
		return true;
	if (!loads)
	{
		GUC_check_errdetail("%s.", why);
		GUC_check_errhint("%s", rnnlm_backend_install_hint(backend_value_name(*newval)));
	}
	else
	{
		GUC_check_errdetail("rnnlm.precision is %s: %s.", rl_precision_name((rl_precision) rnnlm_precision), why);
		GUC_check_errhint("SET rnnlm.precision = 'fp32' first, or choose a backend with bf16 products.");
	}
	return false;
}

void		_PG_init(void);

/* Defines the GUCs; BLAS is loaded lazily at first use. */
void
_PG_init(void)
{
	build_enum_options();
	rnnlm_options_init();
	DefineCustomIntVariable("rnnlm.threads",
							"Number of helper threads (BLAS, OpenMP) each backend uses for rnnlm.",
							"Helper threads run only matrix arithmetic, with every signal blocked.",
							&rnnlm_threads,
							1, 1, RNNLM_MAX_THREADS,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("rnnlm.max_memory",
							"Largest memory one rnnlm model or training run may use.",
							"Training, loading and importing fail up front, naming the memory "
							"needed, when they would need more.",
							&rnnlm_max_memory_mb,
							4096, 1, INT_MAX / 2,
							PGC_SUSET,
							GUC_UNIT_MB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("rnnlm.job_retention",
							"How long finished rnnlm training jobs stay in rnnlm.jobs.",
							"A job that succeeded, failed or was cancelled is removed this long "
							"after it ended, when its owner next submits or finishes a job; "
							"0 keeps jobs until rnnlm_forget().",
							&rnnlm_job_retention_min,
							30 * 24 * 60, 0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);
	DefineCustomIntVariable("rnnlm.max_jobs_per_role",
							"Most rnnlm training jobs of one role that run at once.",
							"A role's further jobs wait as queued (rnnlm.jobs.wait_reason says "
							"why) and start when one of its jobs ends; set it in "
							"postgresql.conf, so that no role can raise its own cap.",
							&rnnlm_max_jobs_per_role,
							2, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomRealVariable("rnnlm.min_checkpoint_minutes",
							 "Smallest checkpoint_minutes a training job may ask for.",
							 "Bounds the WAL a job writes for its checkpoints: with the default "
							 "(5) a job writes at most twice the timed checkpoints of one with "
							 "the default checkpoint_minutes (10); checkpoints at the end of each "
							 "epoch are the same for both.",
							 &rnnlm_min_checkpoint_minutes,
							 5, 0, 10080,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("rnnlm.precision",
							 "Precision of the matrix products of rnnlm's scoring and generation.",
							 "fp32 (exact, the default), bf16 (bf16 inputs, fp32 sums; needs a "
							 "processor with AVX512_BF16 or AMX-BF16), auto (bf16 where it runs) "
							 "or int8 (one-row products from int8 weights, on any processor).",
							 &rnnlm_precision,
							 RL_PREC_FP32, precision_options,
							 PGC_USERSET,
							 0,
							 check_precision, NULL, NULL);
	DefineCustomEnumVariable("rnnlm.backend",
							 "Library that runs rnnlm's matrix products.",
							 "auto: OpenBLAS for fp32 and oneDNN for bf16; openblas, onednn, or "
							 "reference (portable loops, slow, for checking).",
							 &rnnlm_backend,
							 0, backend_options,
							 PGC_USERSET,
							 0,
							 check_backend, NULL, NULL);
	DefineCustomBoolVariable("rnnlm.resume_jobs",
							 "Resumes interrupted rnnlm training jobs when the server starts.",
							 "With rnnlm in shared_preload_libraries, a launcher resumes, in every "
							 "database, the jobs that a restart or a crash interrupted; off leaves "
							 "them to rnnlm_resume().",
							 &rnnlm_resume_jobs,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("rnnlm");
	rnnlm_jit_init();
	if (process_shared_preload_libraries_in_progress)
	{
		rnnlm_launcher_register();
		rnnlm_progress_init();
	}
}
