/* kernels/cpu/rope.h: rotary position embedding (rotate-half form on the whole
 * head) and the inverse frequencies of every rope mode HF implements.
 * Engine thread (frequencies: once at init, or per sequence for "dynamic").
 *
 * defines: kern_cpu_rope_freqs, kern_cpu_rope_apply
 */
#ifndef DS_KERNELS_CPU_ROPE_H
#define DS_KERNELS_CPU_ROPE_H

#include <stdint.h>

#include "engine/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill inv_freq[D/2] and *attn_scale (the factor HF multiplies cos and sin
 * by: yarn's attention factor, else 1) for rope mode r, head dim D, following
 * transformers' modeling_rope_utils in fp32 (default, linear, dynamic, yarn,
 * llama3). seq_len only matters for "dynamic" (HF: frequencies change once a
 * sequence is longer than max_position_embeddings); pass 0 otherwise.
 * Returns 0, or -1 for CFG_ROPE_NONE / a bad D (odd or <= 0). */
int kern_cpu_rope_freqs(const struct cfg_rope *r, int D, int max_position_embeddings,
                        int seq_len, float *inv_freq, float *attn_scale);

/* In place, for t < T and head h < nheads, rotate the D values at
 * x + t*ld + h*D by position positions[t]:
 *   ang_i = (float)pos * inv_freq[i], c = cos(ang)*scale, s = sin(ang)*scale
 *   (x_i, x_{i+D/2}) <- (x_i c - x_{i+D/2} s, x_{i+D/2} c + x_i s)
 * The angle is the fp32 product, exactly as HF forms it. */
void kern_cpu_rope_apply(float *x, int ld, int nheads, int D, int T, const int32_t *positions,
                         const float *inv_freq, float attn_scale);

#ifdef __cplusplus
}
#endif
#endif
