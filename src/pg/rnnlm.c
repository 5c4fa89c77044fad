/*
 * rnnlm.c
 *		Module entry point and configuration parameters.
 *
 * Copyright (c) 2026, the rnnlm authors
 */
#include "rnnlm_pg.h"

#include <limits.h>

#include "utils/guc.h"

PG_MODULE_MAGIC;

/* BLAS worker threads per backend. */
int			rnnlm_threads = 1;

/* The most memory one model or one training run may take, in MB. */
int			rnnlm_max_memory_mb = 4096;

/* Finished jobs are removed this many minutes after they end; 0 = never. */
int			rnnlm_job_retention_min = 30 * 24 * 60;

void		_PG_init(void);

/* Defines the GUCs; BLAS is loaded lazily at first use. */
void
_PG_init(void)
{
	DefineCustomIntVariable("rnnlm.threads",
							"Number of BLAS threads each backend uses for rnnlm.",
							"Helper threads run only matrix arithmetic, with every signal blocked.",
							&rnnlm_threads,
							1, 1, 64,
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
	MarkGUCPrefixReserved("rnnlm");
	rnnlm_jit_init();
}
