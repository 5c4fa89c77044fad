/*
 * cell_rnn.c
 *		The vanilla RNN: h_t = tanh(W_x x_t + W_h h_{t-1} + b).
 */
#include "rnnlm_core.h"

#include <string.h>

/* One forward step. */
static void
rnn_forward(const rl_prod *p, const float *wh, int H, int B, const float *hprev, const float *cprev,
			float *g, float *h, float *c, float *rh)
{
	(void) cprev;
	(void) c;
	(void) rh;
	rl_mm(p, 0, 1, B, H, H, 1.0f, hprev, H, wh, H, 1.0f, g, H);
	rl_k_tanh(g, (size_t) B * H);
	memcpy(h, g, (size_t) B * H * sizeof(float));
}

/* One backward step. */
static void
rnn_backward(const rl_prod *p, const float *wh, int H, int B, const float *hprev, const float *cprev,
			 const float *g, const float *h, const float *c, const float *rh,
			 const float *dh, float *dc, float *dg, float *dhprev, float *tmp)
{
	int			i;

	(void) hprev;
	(void) cprev;
	(void) g;
	(void) c;
	(void) rh;
	(void) dc;
	(void) tmp;
	for (i = 0; i < B * H; i++)
		dg[i] = dh[i] * (1.0f - h[i] * h[i]);
	rl_mm(p, 0, 0, B, H, H, 1.0f, dg, H, wh, H, 0.0f, dhprev, H);
}

const rl_cell_ops rl_rnn_ops = {1, 1, rnn_forward, rnn_backward};
