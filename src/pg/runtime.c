/*
 * runtime.c
 *		rnnlm_runtime(): what this backend computes with, as jsonb: the
 *		processor's features, the BLAS library and the kernels it chose, the
 *		vector kernels rnnlm chose, the precision and the thread count.
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

/* rnnlm_runtime(): see the file header. */
Datum
rnnlm_runtime(PG_FUNCTION_ARGS)
{
	StringInfoData s;

	rnnlm_prepare_blas();
	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	append_cpu(&s);
	append_blas(&s);
	appendStringInfo(&s, ", \"kernels\": {\"matrix\": \"openblas sgemm, fp32\", "
					 "\"vector\": \"%s\"}", rl_kernels_name());
	appendStringInfoString(&s, ", \"precision\": \"fp32\"");
	appendStringInfo(&s, ", \"threads\": %d}", rnnlm_threads);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
