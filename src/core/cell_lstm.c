/*
 * cell_lstm.c
 *		The LSTM, gate blocks in the order i, f, g, o:
 *		C_t = f * C_{t-1} + i * g,  h_t = o * tanh(C_t).
 */
#include "rnnlm_core.h"

#include <string.h>

/* One forward step. */
static void
lstm_forward(const rl_prod *p, const float *wh, int H, int B, const float *hprev, const float *cprev,
			 float *g, float *h, float *c, float *rh)
{
	int			GH = 4 * H;
	int			b,
				j;

	(void) rh;
	rl_mm(p, 0, 1, B, GH, H, 1.0f, hprev, H, wh, H, 1.0f, g, GH);
	for (b = 0; b < B; b++)
	{
		float	   *gi = g + (size_t) b * GH;
		float	   *gf = gi + H;
		float	   *gg = gi + 2 * H;
		float	   *go = gi + 3 * H;
		const float *cp = cprev + (size_t) b * H;
		float	   *cb = c + (size_t) b * H;
		float	   *hb = h + (size_t) b * H;

		rl_k_sigmoid(gi, 2 * (size_t) H);
		rl_k_tanh(gg, H);
		rl_k_sigmoid(go, H);
		for (j = 0; j < H; j++)
		{
			cb[j] = gf[j] * cp[j] + gi[j] * gg[j];
			hb[j] = cb[j];
		}
		rl_k_tanh(hb, H);
		for (j = 0; j < H; j++)
			hb[j] *= go[j];
	}
}

/* One backward step. */
static void
lstm_backward(const rl_prod *p, const float *wh, int H, int B, const float *hprev, const float *cprev,
			  const float *g, const float *h, const float *c, const float *rh,
			  const float *dh, float *dc, float *dg, float *dhprev, float *tmp)
{
	int			GH = 4 * H;
	int			b,
				j;

	(void) hprev;
	(void) h;
	(void) rh;
	/* tanh(C_t) of every stream, into tmp */
	memcpy(tmp, c, (size_t) B * H * sizeof(float));
	rl_k_tanh(tmp, (size_t) B * H);
	for (b = 0; b < B; b++)
	{
		const float *gi = g + (size_t) b * GH;
		const float *cp = cprev + (size_t) b * H;
		const float *tcb = tmp + (size_t) b * H;
		const float *dhb = dh + (size_t) b * H;
		float	   *dcb = dc + (size_t) b * H;
		float	   *d = dg + (size_t) b * GH;

		for (j = 0; j < H; j++)
		{
			float		i = gi[j],
						f = gi[H + j],
						gv = gi[2 * H + j],
						o = gi[3 * H + j];
			float		tc = tcb[j];
			float		dct = dhb[j] * o * (1.0f - tc * tc) + dcb[j];

			d[j] = dct * gv * i * (1.0f - i);
			d[H + j] = dct * cp[j] * f * (1.0f - f);
			d[2 * H + j] = dct * i * (1.0f - gv * gv);
			d[3 * H + j] = dhb[j] * tc * o * (1.0f - o);
			dcb[j] = dct * f;
		}
	}
	rl_mm(p, 0, 0, B, H, GH, 1.0f, dg, GH, wh, H, 0.0f, dhprev, H);
}

const rl_cell_ops rl_lstm_ops = {4, 4, lstm_forward, lstm_backward};
