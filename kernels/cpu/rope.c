/* kernels/cpu/rope.c: RoPE frequencies (every HF rope_type the config can
 * name) and the rotate-half application. Engine thread.
 *
 * The frequencies are computed as transformers does, in fp32 tensors: the
 * exponent i/D is an fp32 division, base**e an fp32 power, 1/x an fp32
 * division. We take the power in double and round, which is within an ulp of
 * torch; the fixture tests compare the result with the inv_freq HF recorded.
 */
#include "kernels/cpu/rope.h"
#include "kernels/cpu/par.h"

#include <math.h>

static void default_freqs(double base, int D, float *inv)
{
    for (int i = 0; i < D / 2; i++) {
        float e = (float)(2 * i) / (float)D;
        float p = (float)pow(base, (double)e);
        inv[i] = 1.0f / p;
    }
}

/* yarn helper: the dimension at which a wavelength completes num_rot turns
 * over the original context. */
static double yarn_corr_dim(double num_rot, int D, double base, double orig_max)
{
    return (D * log(orig_max / (num_rot * 2.0 * M_PI))) / (2.0 * log(base));
}

/* yarn's attention-factor rule (HF get_mscale). */
static double yarn_mscale(double scale, double m)
{
    return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

int kern_cpu_rope_freqs(const struct cfg_rope *r, int D, int max_pos, int seq_len,
                        float *inv, float *attn_scale)
{
    if (r->mode == CFG_ROPE_NONE || D <= 0 || D % 2) return -1;
    double base = r->theta > 0 ? r->theta : 10000.0;
    double factor = r->factor > 0 ? r->factor : 1.0;
    *attn_scale = 1.0f;
    switch (r->mode) {
    case CFG_ROPE_DEFAULT:
    case CFG_ROPE_NONE:
        default_freqs(base, D, inv);
        break;
    case CFG_ROPE_LINEAR:
        default_freqs(base, D, inv);
        for (int i = 0; i < D / 2; i++) inv[i] = inv[i] / (float)factor;
        break;
    case CFG_ROPE_DYNAMIC: {
        /* HF: seq_len = max(seq_len, max_position_embeddings);
         * base *= (factor*seq_len/max_pos - (factor-1)) ** (D/(D-2)). At or
         * below max_pos this is the plain base. */
        double sl = seq_len > max_pos ? seq_len : max_pos;
        double b = base;
        if (max_pos > 0 && D > 2)
            b = base * pow(factor * sl / max_pos - (factor - 1.0), (double)D / (D - 2));
        default_freqs(b, D, inv);
        break;
    }
    case CFG_ROPE_YARN: {
        double orig = r->original_max_position > 0 ? r->original_max_position : max_pos;
        double att = r->attention_factor;
        if (!(att > 0)) {
            if (r->mscale > 0 && r->mscale_all_dim > 0)
                att = yarn_mscale(factor, r->mscale) / yarn_mscale(factor, r->mscale_all_dim);
            else
                att = yarn_mscale(factor, 1.0);
        }
        double bf = r->beta_fast > 0 ? r->beta_fast : 32.0;
        double bs = r->beta_slow > 0 ? r->beta_slow : 1.0;
        double low = yarn_corr_dim(bf, D, base, orig);
        double high = yarn_corr_dim(bs, D, base, orig);
        if (r->truncate) { /* HF default: floor / ceil the correction range */
            low = floor(low);
            high = ceil(high);
        }
        if (low < 0) low = 0;
        if (high > D - 1) high = D - 1;
        if (low == high) high += 0.001;
        for (int i = 0; i < D / 2; i++) {
            float e = (float)(2 * i) / (float)D;
            float pf = (float)pow(base, (double)e);
            float extra = 1.0f / pf;
            float inter = 1.0f / ((float)factor * pf);
            float ramp = ((float)i - (float)low) / ((float)high - (float)low);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            float ef = 1.0f - ramp; /* extrapolation factor */
            inv[i] = inter * (1.0f - ef) + extra * ef;
        }
        *attn_scale = (float)att;
        break;
    }
    case CFG_ROPE_LLAMA3: {
        default_freqs(base, D, inv);
        double old_ctx = r->original_max_position > 0 ? r->original_max_position : 8192;
        double lf = r->low_freq_factor > 0 ? r->low_freq_factor : 1.0;
        double hf = r->high_freq_factor > 0 ? r->high_freq_factor : 4.0;
        float low_wl = (float)(old_ctx / lf), high_wl = (float)(old_ctx / hf);
        for (int i = 0; i < D / 2; i++) {
            float f = inv[i];
            float wl = (float)(2.0 * M_PI) / f;
            float fl = wl > low_wl ? f / (float)factor : f;
            if (!(wl < high_wl) && !(wl > low_wl)) {
                float smooth = ((float)old_ctx / wl - (float)lf) / ((float)hf - (float)lf);
                fl = (1.0f - smooth) * fl / (float)factor + smooth * fl;
            }
            inv[i] = fl;
        }
        break;
    }
    }
    return 0;
}

void kern_cpu_rope_apply(float *x, int ld, int nheads, int D, int T, const int32_t *positions,
                         const float *inv_freq, float attn_scale)
{
    int half = D / 2;
#pragma omp parallel for schedule(static) if ((int64_t)T * nheads * D >= KERN_CPU_PAR_WORK)
    for (int t = 0; t < T; t++) {
        float pos = (float)positions[t];
        for (int i = 0; i < half; i++) {
            float ang = pos * inv_freq[i];
            float c = cosf(ang) * attn_scale, s = sinf(ang) * attn_scale;
            for (int h = 0; h < nheads; h++) {
                float *v = x + (int64_t)t * ld + (int64_t)h * D;
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
    }
}
