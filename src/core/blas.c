/*
 * blas.c
 *		The OpenBLAS backend of the matrix products (fp32 only: Debian's
 *		OpenBLAS has no bf16 products).
 *
 * OpenBLAS starts its worker threads while the library is being loaded, and
 * a thread inherits the signal mask of the thread that creates it.  A
 * Postgres backend must receive its signals (cancel, terminate, latch
 * wake-ups) on the main thread only, so the library is not linked in:
 * rl_blas_load() dlopen()s it with every signal blocked, and
 * rl_blas_set_threads() blocks them again around anything that may start new
 * workers.  The workers never run any code of ours.
 *
 * OpenBLAS picks its kernels from a table of processor models when it is
 * loaded, and falls back to old kernels (Prescott, SSE3) for a model it
 * does not know, several times slower on a processor with AVX2 or AVX-512.
 * Unless the user has set OPENBLAS_CORETYPE, rl_blas_load first asks a
 * child process, which loads OpenBLAS, reports the core it picked and
 * exits; if that core is older than what the feature flags say the
 * processor has, it sets OPENBLAS_CORETYPE from the flags (AVX-512 F, BW,
 * DQ and VL: SkylakeX; AVX2 and FMA: Zen on AMD, Haswell elsewhere) before
 * loading OpenBLAS itself.  rl_blas_describe says which way it went.
 */
#include "backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* CBLAS enum values, fixed by the CBLAS standard. */
#define CBLAS_ROW_MAJOR 101
#define CBLAS_NO_TRANS	111
#define CBLAS_TRANS		112

typedef void (*sgemm_fn) (int order, int ta, int tb, int m, int n, int k,
						  float alpha, const float *a, int lda,
						  const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*sgemv_fn) (int order, int ta, int m, int n, float alpha,
						  const float *a, int lda, const float *x, int incx,
						  float beta, float *y, int incy);
typedef void (*set_threads_fn) (int n);

typedef char *(*string_fn) (void);

static sgemm_fn blas_sgemm;
static string_fn blas_corename;
static string_fn blas_config;
static const char *blas_loaded;
static const char *blas_chosen_by = "openblas";
static char blas_probed[64];	/* the core OpenBLAS picked by itself, when overridden */

static int	is_legacy_core(const char *core);
static sgemv_fn blas_sgemv;
static set_threads_fn blas_set_threads;
static int	blas_nthreads = 1;

static const char *const blas_names[] = {
	"libopenblas.so.0",
	"libopenblas.so",
	NULL
};

/* dlopen()s the first OpenBLAS found; NULL if none. */
static void *
open_blas(int *index)
{
	void	   *h = NULL;
	int			i;

	for (i = 0; blas_names[i] && h == NULL; i++)
		h = dlopen(blas_names[i], RTLD_NOW | RTLD_LOCAL);
	*index = i - 1;
	return h;
}

/*
 * The core OpenBLAS picks by itself on this machine, asked of a child
 * process so that this one loads it only once.  0 on success.  The
 * environment variable RNNLM_TEST_BLAS_PROBE_CORETYPE, for the tests only,
 * makes the child's OpenBLAS pick that core, as on a processor it does not
 * know.
 */
static int
probe_core(char *core, size_t len)
{
	int			fds[2],
				status;
	pid_t		pid;
	ssize_t		n,
				got = 0;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
	{
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0)
	{
		/* the child: loads OpenBLAS, writes its core's name, exits at once */
		const char *test = getenv("RNNLM_TEST_BLAS_PROBE_CORETYPE");
		int			index;
		void	   *h;
		string_fn	name;
		const char *s = "";
		sigset_t	all;

		/* the parent's signal handlers are the caller's: none may run here */
		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		close(fds[0]);
		if (test)
			setenv("OPENBLAS_CORETYPE", test, 1);
		h = open_blas(&index);
		name = h ? (string_fn) dlsym(h, "openblas_get_corename") : NULL;
		if (name && name())
			s = name();
		if (write(fds[1], s, strlen(s)) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	while (got < (ssize_t) len - 1 &&
		   ((n = read(fds[0], core + got, len - 1 - got)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			got += n;
	close(fds[0]);
	core[got] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return got > 0 ? 0 : -1;
}

/* Sets OPENBLAS_CORETYPE from the feature flags when OpenBLAS would fall back. */
static void
choose_core(void)
{
	rl_cpu_info cpu;
	char		core[64];
	const char *pick;

	if (getenv("OPENBLAS_CORETYPE"))
	{
		blas_chosen_by = "user";
		return;
	}
	rl_cpu_detect(&cpu);
	if (!cpu.has[RL_CPU_AVX2] || !cpu.has[RL_CPU_FMA])
		return;					/* no better kernels to pick */
	if (probe_core(core, sizeof(core)) != 0 || !is_legacy_core(core))
		return;
	if (cpu.has[RL_CPU_AVX512F] && cpu.has[RL_CPU_AVX512BW] &&
		cpu.has[RL_CPU_AVX512DQ] && cpu.has[RL_CPU_AVX512VL])
		pick = "SkylakeX";
	else if (strcmp(cpu.vendor, "AuthenticAMD") == 0)
		pick = "Zen";
	else
		pick = "Haswell";
	setenv("OPENBLAS_CORETYPE", pick, 1);
	snprintf(blas_probed, sizeof(blas_probed), "%s", core);
	blas_chosen_by = "rnnlm";
}

/* Loads OpenBLAS once, with all signals blocked; returns 0 or -1 with errbuf set. */
int
rl_blas_load(char *errbuf, size_t errlen)
{
	sigset_t	all,
				old;
	void	   *h = NULL;
	int			i;

	if (blas_sgemm)
		return 0;

	choose_core();
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	h = open_blas(&i);
	if (h)
	{
		blas_sgemm = (sgemm_fn) dlsym(h, "cblas_sgemm");
		blas_sgemv = (sgemv_fn) dlsym(h, "cblas_sgemv");
		blas_set_threads = (set_threads_fn) dlsym(h, "openblas_set_num_threads");
		blas_corename = (string_fn) dlsym(h, "openblas_get_corename");
		blas_config = (string_fn) dlsym(h, "openblas_get_config");
		blas_loaded = blas_names[i];
		if (blas_set_threads)
			blas_set_threads(blas_nthreads);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (h == NULL)
	{
		snprintf(errbuf, errlen, "could not load OpenBLAS: %s", dlerror());
		return -1;
	}
	if (blas_sgemm == NULL || blas_sgemv == NULL)
	{
		snprintf(errbuf, errlen, "OpenBLAS library lacks cblas_sgemm or cblas_sgemv");
		blas_sgemm = NULL;
		return -1;
	}
	return 0;
}

/* Sets the number of BLAS worker threads; new workers start with signals blocked. */
void
rl_blas_set_threads(int nthreads)
{
	sigset_t	all,
				old;

	if (nthreads < 1)
		nthreads = 1;
	if (nthreads == blas_nthreads && blas_sgemm)
		return;
	blas_nthreads = nthreads;
	if (blas_set_threads == NULL)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	blas_set_threads(nthreads);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The thread count last set. */
int
rl_blas_threads(void)
{
	return blas_nthreads;
}

/* Row-major C = alpha * op(A) * op(B) + beta * C; m, n, k >= 1. */
static void
openblas_sgemm(int transa, int transb, int m, int n, int k,
			   float alpha, const float *a, int lda,
			   const float *b, int ldb,
			   float beta, float *c, int ldc)
{
	/* a single row or column is a matrix-vector product, which sgemm does slowly */
	if (m == 1)
	{
		/* c[1,n] = op(B)^T a: B is [n,k] when transposed, else [k,n] */
		blas_sgemv(CBLAS_ROW_MAJOR, transb ? CBLAS_NO_TRANS : CBLAS_TRANS,
				   transb ? n : k, transb ? k : n, alpha, b, ldb,
				   a, transa ? lda : 1, beta, c, 1);
		return;
	}
	if (n == 1)
	{
		/* c[m,1] = op(A) b: A is [k,m] when transposed, else [m,k] */
		blas_sgemv(CBLAS_ROW_MAJOR, transa ? CBLAS_TRANS : CBLAS_NO_TRANS,
				   transa ? k : m, transa ? m : k, alpha, a, lda,
				   b, transb ? 1 : ldb, beta, c, ldc);
		return;
	}
	blas_sgemm(CBLAS_ROW_MAJOR,
			   transa ? CBLAS_TRANS : CBLAS_NO_TRANS,
			   transb ? CBLAS_TRANS : CBLAS_NO_TRANS,
			   m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/*
 * OpenBLAS's names for kernels older than AVX2.  OpenBLAS picks its kernels
 * from a table of processor models, and one it does not know gets one of
 * these; on a processor with AVX2 and FMA that is several times slower.
 */
static const char *const legacy_cores[] = {
	"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai",
	"coppermine", "northwood", "banias", "opteron", "opteron_sse3", "barcelona",
	"bobcat", "nano", "sandybridge", "bulldozer", "piledriver", "generic", NULL
};

/* Whether a core name is one of those, case aside. */
static int
is_legacy_core(const char *core)
{
	char		lower[64];
	int			i;

	for (i = 0; core[i] && i < 63; i++)
		lower[i] = (char) ((core[i] >= 'A' && core[i] <= 'Z') ? core[i] + 32 : core[i]);
	lower[i] = '\0';
	for (i = 0; legacy_cores[i]; i++)
		if (strcmp(lower, legacy_cores[i]) == 0)
			return 1;
	return 0;
}

/* What the loaded OpenBLAS chose, and whether that falls short of this CPU. */
void
rl_blas_describe(rl_blas_info *info)
{
	rl_cpu_info cpu;
	const char *s;

	memset(info, 0, sizeof(*info));
	if (blas_loaded)
		snprintf(info->library, sizeof(info->library), "%s", blas_loaded);
	if (blas_corename && (s = blas_corename()) != NULL)
		snprintf(info->core, sizeof(info->core), "%s", s);
	if (blas_config && (s = blas_config()) != NULL)
		snprintf(info->config, sizeof(info->config), "%s", s);
	/* trailing blanks: OpenBLAS pads some names */
	while (info->core[0] && info->core[strlen(info->core) - 1] == ' ')
		info->core[strlen(info->core) - 1] = '\0';
	rl_cpu_detect(&cpu);
	info->legacy_core = info->core[0] && cpu.has[RL_CPU_AVX2] && cpu.has[RL_CPU_FMA] &&
		is_legacy_core(info->core);
	info->chosen_by = blas_chosen_by;
	snprintf(info->probed_core, sizeof(info->probed_core), "%s", blas_probed);
}

/* The kernels OpenBLAS runs, in words. */
static void
openblas_describe(char *buf, size_t len)
{
	rl_blas_info info;

	rl_blas_describe(&info);
	snprintf(buf, len, "%s sgemm, core %s", info.library, info.core[0] ? info.core : "unknown");
}

const rl_backend rl_backend_openblas = {
	"openblas", rl_blas_load, openblas_sgemm, NULL, NULL, rl_blas_set_threads,
	openblas_describe
};
