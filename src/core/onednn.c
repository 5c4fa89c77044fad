/*
 * onednn.c
 *		The oneDNN backend of the matrix products: fp32 and, where the
 *		processor has AVX512_BF16 or AMX-BF16, bf16 inputs with fp32 sums.
 *
 * oneDNN picks its kernels from the processor's feature flags (never from
 * a table of models), so on AMX it runs tile kernels and on AVX512_BF16 the
 * bf16 dot products.  Debian's libdnnl2 is opened at run time (nothing is
 * linked), so a machine without it still works in fp32 on OpenBLAS.
 *
 * Threads.  This oneDNN runs on OpenMP (libgomp), which starts its worker
 * threads at the first parallel region that needs them and whenever a
 * region needs more.  Every call into oneDNN therefore runs with all
 * signals blocked, so that any thread it starts has them blocked too; the
 * workers run only oneDNN's code.  The thread count is set with
 * omp_set_num_threads.  libgomp's idle workers spin before they sleep
 * (300,000 rounds by default); unless the user set OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT, GOMP_SPINCOUNT is set to 10,000 before the library is
 * loaded, a few microseconds, so that a backend between queries does not
 * burn a core.
 */
#include "backend.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*dnnl_sgemm_fn) (char ta, char tb, int64_t m, int64_t n, int64_t k,
							  float alpha, const float *a, int64_t lda,
							  const float *b, int64_t ldb, float beta, float *c,
							  int64_t ldc);
typedef int (*dnnl_bf16_fn) (char ta, char tb, int64_t m, int64_t n, int64_t k,
							 float alpha, const uint16_t *a, int64_t lda,
							 const uint16_t *b, int64_t ldb, float beta, float *c,
							 int64_t ldc);

/* dnnl_version_t of the C API */
typedef struct dnnl_version
{
	int			major,
				minor,
				patch;
	const char *hash;
	unsigned	cpu_runtime,
				gpu_runtime;
} dnnl_version;

static void *handle;
static int	load_failed;
static char load_error[RL_ERRMSG_LEN];
static dnnl_sgemm_fn f_sgemm;
static dnnl_bf16_fn f_bf16;
static int	(*f_isa) (void);
static const dnnl_version *(*f_version) (void);
static void (*f_omp_set_num_threads) (int);
static int	bf16_probe = -1;	/* unknown, 0, 1 */

/* Blocks every signal in this thread, keeping the old mask in *old. */
static void
block_signals(sigset_t *old)
{
	sigset_t	all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, old);
}

/* Restores the mask block_signals saved. */
static void
restore_signals(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* Loads libdnnl.so.2 once, with every signal blocked; 0 or -1 with err set. */
static int
onednn_load(char *err, size_t errlen)
{
	sigset_t	old;

	if (handle)
		return 0;
	if (load_failed)
	{
		snprintf(err, errlen, "%s", load_error);
		return -1;
	}
	if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT"))
		setenv("GOMP_SPINCOUNT", "10000", 1);
	block_signals(&old);
	handle = getenv("RNNLM_TEST_NO_ONEDNN") ? NULL : dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
	restore_signals(&old);
	if (handle)
	{
		f_sgemm = (dnnl_sgemm_fn) dlsym(handle, "dnnl_sgemm");
		f_bf16 = (dnnl_bf16_fn) dlsym(handle, "dnnl_gemm_bf16bf16f32");
		f_isa = (int (*) (void)) dlsym(handle, "dnnl_get_effective_cpu_isa");
		f_version = (const dnnl_version *(*) (void)) dlsym(handle, "dnnl_version");
		f_omp_set_num_threads = (void (*) (int)) dlsym(handle, "omp_set_num_threads");
		if (f_sgemm == NULL)
		{
			dlclose(handle);
			handle = NULL;
			snprintf(load_error, sizeof(load_error), "libdnnl.so.2 lacks dnnl_sgemm");
		}
	}
	else
		snprintf(load_error, sizeof(load_error), "could not load oneDNN: %s",
				 getenv("RNNLM_TEST_NO_ONEDNN") ? "RNNLM_TEST_NO_ONEDNN is set" : dlerror());
	if (handle == NULL)
	{
		load_failed = 1;
		snprintf(err, errlen, "%s", load_error);
		return -1;
	}
	return 0;
}

/* fp32 product; on a oneDNN error, the reference computes it. */
static void
onednn_sgemm(int ta, int tb, int m, int n, int k, float alpha,
			 const float *a, int lda, const float *b, int ldb,
			 float beta, float *c, int ldc)
{
	sigset_t	old;
	int			st;

	block_signals(&old);
	st = f_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
				 beta, c, ldc);
	restore_signals(&old);
	if (st != 0)
		rl_reference_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* bf16 product; on a oneDNN error, the reference computes it. */
static void
onednn_gemm_bf16(int ta, int tb, int m, int n, int k, float alpha,
				 const uint16_t *a, int lda, const uint16_t *b, int ldb,
				 float beta, float *c, int ldc)
{
	sigset_t	old;
	int			st;

	block_signals(&old);
	st = f_bf16(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
				beta, c, ldc);
	restore_signals(&old);
	if (st != 0)
		rl_reference_gemm_bf16(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/*
 * Whether oneDNN's bf16 product runs here: the processor has bf16
 * instructions and a 2x2 product succeeds (oneDNN refuses it otherwise).
 */
static int
onednn_bf16_usable(void)
{
	rl_cpu_info cpu;

	if (bf16_probe < 0)
	{
		uint16_t	one[4] = {0x3f80, 0x3f80, 0x3f80, 0x3f80};
		float		c[4] = {0};
		sigset_t	old;

		rl_cpu_detect(&cpu);
		bf16_probe = 0;
		if (handle && f_bf16 && (cpu.has[RL_CPU_AVX512BF16] || cpu.has[RL_CPU_AMXBF16]))
		{
			block_signals(&old);
			bf16_probe = f_bf16('N', 'T', 2, 2, 2, 1.0f, one, 2, one, 2, 0.0f, c, 2) == 0 &&
				c[0] == 2.0f && c[3] == 2.0f;
			restore_signals(&old);
		}
	}
	return bf16_probe;
}

/* OpenMP threads for oneDNN (the calling thread's setting, which it reads). */
static void
onednn_set_threads(int n)
{
	if (f_omp_set_num_threads)
		f_omp_set_num_threads(n);
}

/* The name of a dnnl_cpu_isa_t value of oneDNN 2.x. */
static const char *
isa_name(int isa)
{
	switch (isa)
	{
		case 0x1:
			return "sse41";
		case 0x3:
			return "avx";
		case 0x7:
			return "avx2";
		case 0x407:
			return "avx2_vnni";
		case 0x27:
			return "avx512_core";
		case 0x67:
			return "avx512_core_vnni";
		case 0xe7:
			return "avx512_core_bf16";
		case 0x3e7:
			return "avx512_core_amx";
		case 0:
			return "all";
	}
	return "other";
}

/* Version and instruction set, in words. */
static void
onednn_describe(char *buf, size_t len)
{
	const dnnl_version *v = f_version ? f_version() : NULL;
	int			isa = f_isa ? f_isa() : -1;

	if (v)
		snprintf(buf, len, "oneDNN %d.%d.%d, isa %s", v->major, v->minor, v->patch,
				 isa >= 0 ? isa_name(isa) : "unknown");
	else
		snprintf(buf, len, "oneDNN");
}

const rl_backend rl_backend_onednn = {
	"onednn", onednn_load, onednn_sgemm, onednn_bf16_usable, onednn_gemm_bf16,
	onednn_set_threads, onednn_describe
};
