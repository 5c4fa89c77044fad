/*
 * test_core.c
 *		Unit tests of the plain-C core, as one TAP stream.
 *
 * Each group lives in its own file (test_*.c) and declares in tap.h how many
 * test points it emits, so the plan can be printed first.  The groups use a
 * counting allocator (tap.c) to check that nothing leaks, including on
 * error paths.  Exits non-zero when any test point fails, except those
 * marked TODO: they document known bugs of the core and pass once fixed.
 * The sanitized build runs as a machine without oneDNN would.
 */
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct test_group
{
	const char *name;
	void		(*run) (void);
	int			points;
} test_group;

static const test_group groups[] = {
	{"kernels", test_kernels, TEST_KERNELS_POINTS},
	{"gradients", test_gradients, TEST_GRADIENTS_POINTS},
	{"inference", test_infer, TEST_INFER_POINTS},
	{"sampling", test_sampling, TEST_SAMPLING_POINTS},
	{"tokenizers", test_tokenizers, TEST_TOKENIZERS_POINTS},
	{"text", test_text, TEST_TEXT_POINTS},
	{"format", test_format, TEST_FORMAT_POINTS},
	{"training", test_training, TEST_TRAINING_POINTS},
	{"sampled", test_sampled, TEST_SAMPLED_POINTS},
	{"federated", test_federated, TEST_FEDERATED_POINTS},
	{"runs", test_run, TEST_RUN_POINTS},
	{"compute", test_compute, TEST_COMPUTE_POINTS},
};

#define NGROUPS ((int) (sizeof(groups) / sizeof(groups[0])))

/* Runs every group in order and checks each emitted what it declared. */
int
main(void)
{
	char		err[256];
	int			total = 0,
				bad_counts = 0,
				i;

	setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef __SANITIZE_ADDRESS__
	/*
	 * LeakSanitizer cannot stop libgomp's threads at exit, so the sanitized
	 * build runs as a machine without oneDNN: the forced fallback.
	 */
	setenv("RNNLM_TEST_NO_ONEDNN", "1", 1);
#endif
	if (rl_compute_use("auto", err, sizeof(err)) != 0)
		tap_bail("%s", err);
	rl_compute_set_threads(1);
	for (i = 0; i < NGROUPS; i++)
		total += groups[i].points;
	printf("1..%d\n", total);
	for (i = 0; i < NGROUPS; i++)
	{
		int			before = tap_emitted();
		long		live = test_live_blocks();

		tap_diag("---- %s ----", groups[i].name);
		groups[i].run();
		if (tap_emitted() - before != groups[i].points)
		{
			tap_diag("group %s emitted %d test points, declared %d",
					 groups[i].name, tap_emitted() - before, groups[i].points);
			bad_counts++;
		}
		if (test_live_blocks() != live)
		{
			tap_diag("group %s left %ld blocks allocated", groups[i].name,
					 test_live_blocks() - live);
			bad_counts++;
		}
	}
	if (tap_todo_failed() > 0)
		tap_diag("%d test points marked TODO (known core bugs) failed", tap_todo_failed());
	if (tap_failed() > 0)
		tap_diag("%d of %d test points failed", tap_failed(), tap_emitted());
	return (tap_failed() > 0 || bad_counts > 0) ? 1 : 0;
}
