/*
 * rnnlm.c
 *		Module entry point and configuration parameters.
 *
 * Copyright (c) 2026, the rnnlm authors
 */
#include "rnnlm_pg.h"

#include "utils/guc.h"

PG_MODULE_MAGIC;

/* BLAS worker threads per backend. */
int			rnnlm_threads = 1;

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
	MarkGUCPrefixReserved("rnnlm");
}
