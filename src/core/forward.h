/*
 * forward.h
 *		The batched forward pass: B streams over up to S steps through the
 *		embedding, the layers and the softmax.  Training (train.c) runs its
 *		backward pass on what this leaves; batched scoring (infer.c) uses it
 *		alone.  Core-internal: the rest of the world goes through
 *		rnnlm_core.h.
 */
#ifndef RNNLM_FORWARD_H
#define RNNLM_FORWARD_H

#include "rnnlm_core.h"

#define RL_FWD_MAX_ALLOCS (8 + 8 * RL_MAX_LAYERS)

typedef struct rl_fwd
{
	rl_env	   *env;
	rl_model   *m;
	int32_t		B;				/* streams allocated for */
	int32_t		S;				/* steps allocated for */
	int32_t		cur_B;			/* streams in use (<= B) */
	double		dropout;
	int			training;		/* dropout on */
	rl_rng		rng;			/* dropout masks */
	rl_layer_buf lb[RL_MAX_LAYERS];
	float	   *top;			/* [S*B, H] top layer output after dropout */
	float	   *top_mask;		/* [S*B, H] or NULL */
	float	   *logits;			/* [S*B, V]; with keep_probs, softmax * scale */
	int32_t    *inputs,
			   *targets;		/* [S*B] */
	rl_prod		prod;			/* the products' precision, and the bf16 weights */
	/* the sampled output layer of training steps (sampled.c); sampled_k 0 = off */
	int32_t		sampled_k;
	int			sampled_step;	/* the last forward pass was a sampled training step */
	int32_t		cap_cand,
				ncand;
	int32_t    *cand,
			   *cand_of;
	float	   *cand_w,
			   *cand_b;
	int64_t		prod_stamp;		/* the weights' stamp the bf16 copy was made at */
	void	   *allocs[RL_FWD_MAX_ALLOCS];
	int			nallocs;
} rl_fwd;

extern size_t rl_fwd_floats(const rl_config *c, int32_t B, int32_t S, double dropout);
extern rl_status rl_fwd_init(rl_fwd *f, rl_env *env, rl_model *m, int32_t B, int32_t S,
							 double dropout, uint64_t seed);
extern void rl_fwd_free(rl_fwd *f);
extern rl_status rl_fwd_set_precision(rl_fwd *f, rl_precision p);
extern size_t rl_fwd_prod_bytes(const rl_config *c, size_t nparams, int32_t B, int32_t S);
extern void rl_fwd_reset_state(rl_fwd *f);
extern rl_status rl_fwd_run(rl_fwd *f, const int32_t *inputs, const int32_t *targets,
							int32_t T, int64_t weights_stamp, float grad_scale,
							double *loss, double *row_nll, unsigned char *row_top1);
extern void rl_fwd_carry(rl_fwd *f, int32_t T);
extern double rl_softmax_rows(float *logits, int N, int32_t ncols, const int32_t *targets,
							  const int32_t *map, float grad_scale, double *row_nll,
							  unsigned char *row_top1);

/* sampled.c */
extern size_t rl_sampled_floats(const rl_config *c, size_t rows, int32_t k);
extern rl_status rl_fwd_set_sampled(rl_fwd *f, int32_t k);
extern void rl_fwd_free_sampled(rl_fwd *f);
extern double rl_sampled_forward(rl_fwd *f, const int32_t *targets, int N, float grad_scale,
								 double *row_nll, unsigned char *row_top1);
extern void rl_sampled_backward(rl_fwd *f, int N, float *g_why, float *g_by, float *dH);

#endif							/* RNNLM_FORWARD_H */
