/*
 * rnnlm.c
 *		The configuration parameters' variables, which every file reads
 *		(defined, with their check hooks, in init.c).
 *
 * Copyright (c) 2026, the rnnlm authors
 */
#include "rnnlm_pg.h"

PG_MODULE_MAGIC;

/* Helper threads of the matrix products (BLAS, OpenMP) per backend. */
int			rnnlm_threads = 1;

/* The most memory one model or one training run may take, in MB. */
int			rnnlm_max_memory_mb = 4096;

/* Finished jobs are removed this many minutes after they end; 0 = never. */
int			rnnlm_job_retention_min = 30 * 24 * 60;
int			rnnlm_max_jobs_per_role = 2;
double		rnnlm_min_checkpoint_minutes = 5;

/* With shared_preload_libraries: resume interrupted jobs when the server starts. */
bool		rnnlm_resume_jobs = true;

/* The precision of scoring and generation (rl_precision). */
int			rnnlm_precision = RL_PREC_FP32;

/* The backend of the matrix products: 0 auto, else 1 + its row in the core's table. */
int			rnnlm_backend = 0;

/* The name rnnlm.backend is set to: "auto" or a backend's. */
const char *
rnnlm_backend_setting(void)
{
	return rnnlm_backend == 0 ? "auto" : rl_backend_name(rnnlm_backend - 1);
}
