/*
 * cell_gru.c
 *		The GRU, gate blocks in the order z, r, h~:
 *		h~ = tanh(W_xh~ x + W_hh~ (r * h_{t-1}) + b_h~),
 *		h_t = (1 - z) * h_{t-1} + z * h~.
 */
#include "rnnlm_core.h"

/* One forward step. */
static void
gru_forward(const rl_prod *p, const float *wh, int H, int B, const float *hprev, const float *cprev,
			float *g, float *h, float *c, float *rh)
{
	int			GH = 3 * H;
	int			b,
				j;

	(void) cprev;
	(void) c;
	rl_mm(p, 0, 1, B, 2 * H, H, 1.0f, hprev, H, wh, H, 1.0f, g, GH);
	for (b = 0; b < B; b++)
	{
		float	   *gz = g + (size_t) b * GH;
		float	   *gr = gz + H;
		const float *hp = hprev + (size_t) b * H;
		float	   *rb = rh + (size_t) b * H;

		rl_k_sigmoid(gz, 2 * (size_t) H);
		for (j = 0; j < H; j++)
			rb[j] = gr[j] * hp[j];
	}
	rl_mm(p, 0, 1, B, H, H, 1.0f, rh, H, wh + (size_t) 2 * H * H, H, 1.0f, g + 2 * H, GH);
	for (b = 0; b < B; b++)
	{
		const float *gz = g + (size_t) b * GH;
		float	   *gc = g + (size_t) b * GH + 2 * H;
		const float *hp = hprev + (size_t) b * H;
		float	   *hb = h + (size_t) b * H;

		rl_k_tanh(gc, H);
		for (j = 0; j < H; j++)
			hb[j] = (1.0f - gz[j]) * hp[j] + gz[j] * gc[j];
	}
}

/* One backward step; tmp receives the gradient reaching r * h_{t-1}. */
static void
gru_backward(const rl_prod *p, const float *wh, int H, int B, const float *hprev, const float *cprev,
			 const float *g, const float *h, const float *c, const float *rh,
			 const float *dh, float *dc, float *dg, float *dhprev, float *tmp)
{
	int			GH = 3 * H;
	int			b,
				j;

	(void) cprev;
	(void) h;
	(void) c;
	(void) rh;
	(void) dc;
	for (b = 0; b < B; b++)
	{
		const float *gb = g + (size_t) b * GH;
		const float *hp = hprev + (size_t) b * H;
		const float *dhb = dh + (size_t) b * H;
		float	   *d = dg + (size_t) b * GH;

		for (j = 0; j < H; j++)
		{
			float		z = gb[j],
						hc = gb[2 * H + j];

			d[j] = dhb[j] * (hc - hp[j]) * z * (1.0f - z);
			d[2 * H + j] = dhb[j] * z * (1.0f - hc * hc);
		}
	}
	rl_mm(p, 0, 0, B, H, H, 1.0f, dg + 2 * H, GH, wh + (size_t) 2 * H * H, H, 0.0f, tmp, H);
	for (b = 0; b < B; b++)
	{
		const float *gb = g + (size_t) b * GH;
		const float *hp = hprev + (size_t) b * H;
		const float *dhb = dh + (size_t) b * H;
		const float *drh = tmp + (size_t) b * H;
		float	   *d = dg + (size_t) b * GH;
		float	   *dp = dhprev + (size_t) b * H;

		for (j = 0; j < H; j++)
		{
			float		z = gb[j],
						r = gb[H + j];

			d[H + j] = drh[j] * hp[j] * r * (1.0f - r);
			dp[j] = dhb[j] * (1.0f - z) + drh[j] * r;
		}
	}
	rl_mm(p, 0, 0, B, H, 2 * H, 1.0f, dg, GH, wh, H, 1.0f, dhprev, H);
}

const rl_cell_ops rl_gru_ops = {3, 2, gru_forward, gru_backward};
