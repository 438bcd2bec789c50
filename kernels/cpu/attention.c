/* kernels/cpu/attention.c: paged causal attention (GQA) and KV append, fp32.
 * Engine thread; OpenMP over (query token, head).
 *
 * Softmax as torch eager attention: scores = q.k * scale, subtract the row
 * max, exponentiate, divide by the sum, then weight V with the normalised
 * probabilities. Each query's work is independent of the batch around it.
 */
#include "kernels/cpu/attention.h"
#include "kernels/cpu/par.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline const float *kv_row(const float *pool, const int32_t *bt, int bs, int Hkv, int D,
                                  int pos, int kvh)
{
    int64_t blk = bt[pos / bs];
    return pool + ((blk * bs + pos % bs) * Hkv + kvh) * (int64_t)D;
}

void kern_cpu_kv_write(float *kpool, float *vpool, const float *k, int ldk, const float *v,
                       int ldv, const int32_t *block_table, int block_size, int Hkv, int D,
                       int cache_len, int n)
{
    size_t row = sizeof(float) * (size_t)Hkv * D;
    for (int i = 0; i < n; i++) {
        int pos = cache_len + i;
        int64_t blk = block_table[pos / block_size];
        int64_t off = (blk * block_size + pos % block_size) * (int64_t)Hkv * D;
        memcpy(kpool + off, k + (int64_t)i * ldk, row);
        memcpy(vpool + off, v + (int64_t)i * ldv, row);
    }
}

int kern_cpu_attention(float *out, int ldo, const float *q, int ldq, const float *kpool,
                        const float *vpool, const int32_t *block_table, int block_size, int Hq,
                        int Hkv, int D, int cache_len, int n, float scale)
{
    int group = Hq / Hkv;
    int ctx_max = cache_len + n;
    int64_t work = (int64_t)n * Hq * ctx_max * D;
    int failed = 0;
#pragma omp parallel if (work >= KERN_CPU_PAR_WORK) reduction(| : failed)
    {
        float *p = malloc(sizeof(float) * (size_t)ctx_max);
        if (!p) failed = 1;
#pragma omp for schedule(dynamic, 4)
        for (int64_t th = 0; th < (int64_t)n * Hq; th++) {
            if (!p) continue;
            int i = (int)(th / Hq), h = (int)(th % Hq), kvh = h / group;
            int ctx = cache_len + i + 1;
            const float *qh = q + (int64_t)i * ldq + (int64_t)h * D;
            float mx = -INFINITY;
            for (int j = 0; j < ctx; j++) {
                const float *kj = kv_row(kpool, block_table, block_size, Hkv, D, j, kvh);
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += qh[d] * kj[d];
                s *= scale;
                p[j] = s;
                if (s > mx) mx = s;
            }
            float sum = 0.0f;
            for (int j = 0; j < ctx; j++) {
                p[j] = expf(p[j] - mx);
                sum += p[j];
            }
            float inv = 1.0f / sum;
            float *oh = out + (int64_t)i * ldo + (int64_t)h * D;
            for (int d = 0; d < D; d++) oh[d] = 0.0f;
            for (int j = 0; j < ctx; j++) {
                const float *vj = kv_row(vpool, block_table, block_size, Hkv, D, j, kvh);
                float w = p[j] * inv;
                for (int d = 0; d < D; d++) oh[d] += w * vj[d];
            }
        }
        free(p);
    }
    return failed ? -1 : 0;
}
