/* kernels/cpu/attention.h: causal softmax attention with GQA over a paged KV
 * cache, and the KV append. Engine thread; (token, head) pairs run in parallel.
 *
 * KV pool layout, per attention layer, K and V alike:
 *   pool[block][slot_in_block][kv_head][D]   fp32
 * Token p of a sequence lives in block block_table[p / block_size] at slot
 * p % block_size.
 *
 * defines: kern_cpu_kv_write, kern_cpu_attention
 */
#ifndef DS_KERNELS_CPU_ATTENTION_H
#define DS_KERNELS_CPU_ATTENTION_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Store n new tokens of one sequence at positions cache_len..cache_len+n-1:
 * k, v rows (Hkv*D each) at k + i*ldk, v + i*ldv. */
void kern_cpu_kv_write(float *kpool, float *vpool, const float *k, int ldk, const float *v,
                       int ldv, const int32_t *block_table, int block_size, int Hkv, int D,
                       int cache_len, int n);

/* For the n new query tokens of one sequence (token i at position
 * cache_len + i attends to positions 0..cache_len+i, already in the pool):
 *   out_h = softmax_j(q_h . K_j * scale) V_j, kv head of q head h = h / (Hq/Hkv).
 * q rows (Hq*D) at q + i*ldq; out rows at out + i*ldo.
 * Returns 0, or -1 when the per-thread score buffers (cache_len+n floats
 * each) cannot be allocated (out is then incomplete). */
int kern_cpu_attention(float *out, int ldo, const float *q, int ldq, const float *kpool,
                        const float *vpool, const int32_t *block_table, int block_size, int Hq,
                        int Hkv, int D, int cache_len, int n, float scale);

#ifdef __cplusplus
}
#endif
#endif
