/*
 * cell.c
 *		What every cell type shares: a layer's forward pass over a chunk of T
 *		steps and its backward pass with the weight gradients.
 *
 * The input projection W_x x + b of all T*B rows is one matrix product
 * before the time loop, and the weight gradients are matrix products after
 * it; only the recurrent term is computed step by step.
 */
#include "rnnlm_core.h"

#include <string.h>

/* The operations of a cell type. */
const rl_cell_ops *
rl_cell_ops_for(rl_cell_kind cell)
{
	switch (cell)
	{
		case RL_CELL_RNN:
			return &rl_rnn_ops;
		case RL_CELL_LSTM:
			return &rl_lstm_ops;
		case RL_CELL_GRU:
			return &rl_gru_ops;
	}
	return NULL;
}

/*
 * Forward pass of layer l over T steps of B streams; 0 if cancelled (env
 * NULL: never asks).  Training, batched and per-row scoring and generation
 * all run their layers through this.
 */
int
rl_layer_forward(rl_env *env, const rl_prod *p, const rl_model *m, int l,
				 rl_layer_buf *lb, int T, int B)
{
	const rl_cell_ops *ops = rl_cell_ops_for(m->cfg.cell);
	const rl_layer_params *lp = &m->layers[l];
	int			H = m->cfg.hidden_size;
	int			GH = ops->ngates * H;
	int			I = lp->in_dim;
	size_t		BH = (size_t) B * H;
	int			t,
				r;

	/*
	 * gates = b + X W_x^T: the bias first, so the product accumulates onto
	 * it.  A matrix product packs W_x before it starts, which for a few
	 * steps of one stream costs more than reading W_x once per step, so
	 * those are one-row products.
	 */
	for (r = 0; r < T * B; r++)
		memcpy(lb->gates + (size_t) r * GH, lp->b, GH * sizeof(float));
	if (B == 1 && T < 8)
		for (r = 0; r < T; r++)
			rl_mm(p, 0, 1, 1, GH, I, 1.0f, lb->x + (size_t) r * I, I, lp->wx, I, 1.0f,
				  lb->gates + (size_t) r * GH, GH);
	else
		rl_mm(p, 0, 1, T * B, GH, I, 1.0f, lb->x, I, lp->wx, I, 1.0f, lb->gates, GH);
	for (t = 0; t < T; t++)
	{
		const float *hprev = t ? lb->h + (t - 1) * BH : lb->h0;
		const float *cprev = lb->c ? (t ? lb->c + (t - 1) * BH : lb->c0) : NULL;

		if (env && !rl_tick(env))
			return 0;
		ops->forward(p, lp->wh, H, B, hprev, cprev,
					 lb->gates + (size_t) t * B * GH, lb->h + t * BH,
					 lb->c ? lb->c + t * BH : NULL,
					 lb->rh ? lb->rh + t * BH : NULL);
	}
	return 1;
}

/*
 * Backward pass of layer l over T steps (truncated: nothing flows in from
 * step T).  dH [T*B, H] holds the gradient reaching each h_t from above and
 * is used as scratch.  Accumulates into grad; writes the gradient of the
 * layer input into dX unless it is NULL.  Returns 0 if cancelled.
 */
int
rl_layer_backward(rl_env *env, const rl_prod *p, const rl_model *m, int l,
				  rl_layer_buf *lb,
				  int T, int B, float *dH, float *dG, float *dX,
				  rl_layer_params *grad, float *dh_next, float *dc, float *tmp)
{
	const rl_cell_ops *ops = rl_cell_ops_for(m->cfg.cell);
	const rl_layer_params *lp = &m->layers[l];
	int			H = m->cfg.hidden_size;
	int			GH = ops->ngates * H;
	int			split = ops->hprev_blocks * H;
	int			I = lp->in_dim;
	size_t		BH = (size_t) B * H;
	int			t,
				r,
				j;

	memset(dh_next, 0, BH * sizeof(float));
	memset(dc, 0, BH * sizeof(float));
	for (t = T - 1; t >= 0; t--)
	{
		float	   *dh = dH + t * BH;
		const float *hprev = t ? lb->h + (t - 1) * BH : lb->h0;
		const float *cprev = lb->c ? (t ? lb->c + (t - 1) * BH : lb->c0) : NULL;
		size_t		i;

		if (!rl_tick(env))
			return 0;
		for (i = 0; i < BH; i++)
			dh[i] += dh_next[i];
		ops->backward(p, lp->wh, H, B, hprev, cprev,
					  lb->gates + (size_t) t * B * GH, lb->h + t * BH,
					  lb->c ? lb->c + t * BH : NULL,
					  lb->rh ? lb->rh + t * BH : NULL,
					  dh, dc, dG + (size_t) t * B * GH, dh_next, tmp);
	}

	/* dW_x += dG^T X */
	rl_mm(p, 1, 0, GH, I, T * B, 1.0f, dG, GH, lb->x, I, 1.0f, grad->wx, I);
	/* dW_h (blocks on h_{t-1}) += dG^T [h0; h_0 .. h_{T-2}] */
	rl_mm(p, 1, 0, split, H, B, 1.0f, dG, GH, lb->h0, H, 1.0f, grad->wh, H);
	if (T > 1)
		rl_mm(p, 1, 0, split, H, (T - 1) * B, 1.0f, dG + (size_t) B * GH, GH,
				 lb->h, H, 1.0f, grad->wh, H);
	/* dW_h (blocks on r*h_{t-1}) += dG^T RH */
	if (split < GH)
		rl_mm(p, 1, 0, GH - split, H, T * B, 1.0f, dG + split, GH,
				 lb->rh, H, 1.0f, grad->wh + (size_t) split * H, H);
	for (r = 0; r < T * B; r++)
	{
		const float *g = dG + (size_t) r * GH;

		for (j = 0; j < GH; j++)
			grad->b[j] += g[j];
	}
	if (dX)
		rl_mm(p, 0, 0, T * B, I, GH, 1.0f, dG, GH, lp->wx, I, 0.0f, dX, I);
	return 1;
}
