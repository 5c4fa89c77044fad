/*
 * cpu.c
 *		What the processor can do, from its feature flags (CPUID), for the
 *		runtime report and for choosing kernels.  Nothing here looks at the
 *		processor's model: a new model with the same flags gets the same
 *		kernels.
 */
#include "rnnlm_core.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* The flags reported, in this order; the name is the one /proc/cpuinfo uses. */
static const char *const feature_names[RL_CPU_NFEATURES] = {
	"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq",
	"avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"
};

#if defined(__x86_64__) || defined(__i386__)
/* Whether the OS saves the AVX (and with zmm, AVX-512) registers: XCR0. */
static int
os_saves(unsigned mask)
{
	unsigned	a,
				b,
				c,
				d,
				lo,
				hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))	/* OSXSAVE */
		return 0;
	__asm__ volatile ("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	(void) hi;
	return (lo & mask) == mask;
}
#endif

/* Fills info with the processor's vendor and the features it and the OS support. */
void
rl_cpu_detect(rl_cpu_info *info)
{
	memset(info, 0, sizeof(*info));
	strcpy(info->vendor, "unknown");
#if defined(__x86_64__) || defined(__i386__)
	{
		unsigned	a,
					b,
					c,
					d,
					max;
		int			ymm,
					zmm;

		if (!__get_cpuid(0, &max, &b, &c, &d))
			return;
		memcpy(info->vendor, &b, 4);
		memcpy(info->vendor + 4, &d, 4);
		memcpy(info->vendor + 8, &c, 4);
		info->vendor[12] = '\0';
		ymm = os_saves(0x6);	/* SSE and AVX state */
		zmm = os_saves(0xE6);	/* and the AVX-512 state */
		__get_cpuid(1, &a, &b, &c, &d);
		info->has[RL_CPU_SSE42] = (c >> 20) & 1;
		info->has[RL_CPU_AVX] = ymm && ((c >> 28) & 1);
		info->has[RL_CPU_FMA] = ymm && ((c >> 12) & 1);
		info->has[RL_CPU_F16C] = ymm && ((c >> 29) & 1);
		if (max >= 7)
		{
			unsigned	a1 = 0,
						b1 = 0,
						c1 = 0,
						d1 = 0;

			__cpuid_count(7, 0, a, b, c, d);
			__cpuid_count(7, 1, a1, b1, c1, d1);
			info->has[RL_CPU_AVX2] = ymm && ((b >> 5) & 1);
			info->has[RL_CPU_AVX512F] = zmm && ((b >> 16) & 1);
			info->has[RL_CPU_AVX512DQ] = zmm && ((b >> 17) & 1);
			info->has[RL_CPU_AVX512BW] = zmm && ((b >> 30) & 1);
			info->has[RL_CPU_AVX512VL] = zmm && ((b >> 31) & 1);
			info->has[RL_CPU_AVX512VNNI] = zmm && ((c >> 11) & 1);
			info->has[RL_CPU_AVX512BF16] = zmm && ((a1 >> 5) & 1);
			/* AMX also needs the OS to grant the tile state; reported as the CPU says */
			info->has[RL_CPU_AMXTILE] = (d >> 24) & 1;
			info->has[RL_CPU_AMXBF16] = (d >> 22) & 1;
			info->has[RL_CPU_AMXINT8] = (d >> 25) & 1;
		}
	}
#endif
}

/* The /proc/cpuinfo name of feature f. */
const char *
rl_cpu_feature_name(int f)
{
	return f >= 0 && f < RL_CPU_NFEATURES ? feature_names[f] : "?";
}
