/*
 * runtime.c
 *		rnnlm_runtime(): what this backend computes with, as jsonb: the
 *		processor's features, the BLAS library and the kernels it chose, the
 *		backends of the matrix products (fp32 and bf16) and those compiled
 *		in, the vector kernels rnnlm chose, the precision and the threads.
 */
#include "rnnlm_pg.h"

#include "utils/builtins.h"
#include "utils/json.h"

PG_FUNCTION_INFO_V1(rnnlm_runtime);

/* Appends "key": "value" (the value JSON-escaped) after a comma when not first. */
static void
append_string(StringInfo s, const char *key, const char *value, bool first)
{
	appendStringInfo(s, "%s\"%s\": ", first ? "" : ", ", key);
	escape_json(s, value);
}

/* The cpu object: vendor and the features present. */
static void
append_cpu(StringInfo s)
{
	rl_cpu_info cpu;
	int			f;
	bool		first = true;

	rl_cpu_detect(&cpu);
	appendStringInfoString(s, "\"cpu\": {");
	append_string(s, "vendor", cpu.vendor, true);
	appendStringInfoString(s, ", \"features\": [");
	for (f = 0; f < RL_CPU_NFEATURES; f++)
		if (cpu.has[f])
		{
			appendStringInfo(s, "%s\"%s\"", first ? "" : ", ", rl_cpu_feature_name(f));
			first = false;
		}
	appendStringInfoString(s, "]}");
}

/* The blas object: what OpenBLAS loaded and chose. */
static void
append_blas(StringInfo s)
{
	rl_blas_info blas;

	rl_blas_describe(&blas);
	appendStringInfoString(s, ", \"blas\": {");
	append_string(s, "library", blas.library, true);
	append_string(s, "core", blas.core, false);
	append_string(s, "config", blas.config, false);
	append_string(s, "chosen_by", blas.chosen_by ? blas.chosen_by : "", false);
	if (blas.probed_core[0])
		append_string(s, "instead_of", blas.probed_core, false);
	appendStringInfo(s, ", \"legacy_core\": %s, \"threads\": %d}",
					 blas.legacy_core ? "true" : "false", rl_blas_threads());
}

/* The products object: the backend of each precision; then every backend compiled in. */
static void
append_products(StringInfo s)
{
	rl_compute_info ci;
	int			i;

	rl_compute_describe(&ci);
	appendStringInfoString(s, ", \"products\": {");
	append_string(s, "setting", ci.chosen, true);
	appendStringInfoString(s, ", \"fp32\": {");
	append_string(s, "backend", ci.fp32, true);
	append_string(s, "kernel", ci.fp32_kernel, false);
	appendStringInfoString(s, "}, \"bf16\": ");
	if (ci.bf16[0])
	{
		appendStringInfoChar(s, '{');
		append_string(s, "backend", ci.bf16, true);
		append_string(s, "kernel", ci.bf16_kernel, false);
		appendStringInfoChar(s, '}');
	}
	else
		appendStringInfoString(s, "null");
	appendStringInfoString(s, "}, \"backends\": [");
	for (i = 0; i < ci.count; i++)
	{
		appendStringInfo(s, "%s{", i ? ", " : "");
		append_string(s, "name", ci.names[i], true);
		appendStringInfo(s, ", \"usable\": %s, \"bf16\": %s}",
						 ci.loads[i] ? "true" : "false", ci.has_bf16[i] ? "true" : "false");
	}
	appendStringInfoChar(s, ']');
}

/* The vector kernel sets compiled in, and whether this processor runs each. */
static void
append_kernels(StringInfo s)
{
	rl_compute_info ci;
	int			i,
				usable;

	rl_compute_describe(&ci);
	appendStringInfoString(s, ", \"kernels\": {");
	append_string(s, "matrix", ci.fp32_kernel, true);
	append_string(s, "vector", rl_kernels_name(), false);
	appendStringInfoString(s, ", \"vector_sets\": [");
	for (i = 0; i < rl_kernels_count(); i++)
	{
		const char *name = rl_kernels_set_name(i, &usable);

		appendStringInfo(s, "%s{", i ? ", " : "");
		append_string(s, "name", name, true);
		appendStringInfo(s, ", \"usable\": %s}", usable ? "true" : "false");
	}
	appendStringInfoString(s, "]}");
}

/* rnnlm_runtime(): see the file header. */
Datum
rnnlm_runtime(PG_FUNCTION_ARGS)
{
	StringInfoData s;
	rl_precision scoring;
	rl_env		env;
	bool		ok;

	rnnlm_prepare_compute();
	rnnlm_env_init(&env, CurrentMemoryContext, false);
	ok = rl_precision_resolve(&env, rnnlm_precision, &scoring) == RL_OK;
	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	append_cpu(&s);
	append_blas(&s);
	append_products(&s);
	append_kernels(&s);
	/* what scoring runs in now; with rnnlm.precision = bf16 where it cannot, why not */
	append_string(&s, "precision", ok ? rl_precision_name(scoring) : "unavailable", false);
	append_string(&s, "precision_setting", rl_precision_name(rnnlm_precision), false);
	if (!ok)
		append_string(&s, "precision_error", env.errmsg, false);
	appendStringInfo(&s, ", \"threads\": %d}", rnnlm_threads);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
