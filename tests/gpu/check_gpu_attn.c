/* tests/gpu/check_gpu_attn.c: paged KV write + causal attention against the
 * CPU reference (kern_cpu_kv_write / kern_cpu_attention) on ragged batches
 * that mix decode rows (long cached context, one new token), fresh prefills
 * and chunked-prefill continuations, with scattered block tables, at the 7B
 * head shapes and with grouped KV heads; split-KV decode with several split
 * counts. K and V are bf16-rounded first so both sides attend to the same
 * values (the GPU cache is bf16).
 *
 * Runs on the GPU machine only (make test-gpu), CK_NOFORK.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/kv_write.h"
#include "tests/gpu/gpu_util.h"

static void attn_case(int Hq, int Hkv, int D, int bs, const int *cache, const int *nnew, int N,
                      int nsplit, uint64_t seed)
{
    gu_seed(seed);
    int P = (Hq + 2 * Hkv) * D, QD = Hq * D, KVD = Hkv * D;
    int ctx_tot = 0, Tn = 0, maxb = 0, nb_tot = 0;
    for (int i = 0; i < N; i++) {
        int ctx = cache[i] + nnew[i];
        ctx_tot += ctx;
        Tn += nnew[i];
        int nb = (ctx + bs - 1) / bs;
        nb_tot += nb;
        if (nb > maxb)
            maxb = nb;
    }
    int nblocks = nb_tot + 5;
    /* scattered block ids: a permutation */
    int *perm = malloc(nblocks * sizeof *perm);
    for (int i = 0; i < nblocks; i++)
        perm[i] = i;
    for (int i = nblocks - 1; i > 0; i--) {
        int j = gu_int(0, i), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int32_t *bt = calloc((size_t)N * maxb, 4);
    int used = 0;
    for (int i = 0; i < N; i++) {
        int nb = (cache[i] + nnew[i] + bs - 1) / bs;
        for (int j = 0; j < nb; j++)
            bt[i * maxb + j] = perm[used++];
    }
    /* every context token's q|k|v row (k, v bf16-rounded) */
    float *rows = calloc((size_t)ctx_tot * P, 4);
    gu_fill(rows, (size_t)ctx_tot * P, -1.5f, 1.5f);
    for (int t = 0; t < ctx_tot; t++)
        for (int j = QD; j < P; j++)
            rows[(size_t)t * P + j] = gu_bf16_round(rows[(size_t)t * P + j]);
    int32_t *smap = malloc(ctx_tot * 4), *tseq = malloc(Tn * 4), *pos = malloc(Tn * 4);
    float *q = calloc((size_t)Tn * QD, 4);
    float *ref = calloc((size_t)Tn * QD, 4);
    size_t pool = (size_t)nblocks * bs * KVD;
    float *kp = calloc(pool, 4), *vp = calloc(pool, 4);
    int r0 = 0, t0 = 0;
    for (int i = 0; i < N; i++) {
        int ctx = cache[i] + nnew[i];
        for (int p = 0; p < ctx; p++)
            smap[r0 + p] = bt[i * maxb + p / bs] * bs + p % bs;
        for (int j = 0; j < nnew[i]; j++) {
            int p = cache[i] + j;
            tseq[t0 + j] = i;
            pos[t0 + j] = p;
            memcpy(q + (size_t)(t0 + j) * QD, rows + (size_t)(r0 + p) * P, (size_t)QD * 4);
        }
        const float *kr = rows + (size_t)r0 * P + QD;
        kern_cpu_kv_write(kp, vp, kr, P, kr + KVD, P, bt + i * maxb, bs, Hkv, D, 0, ctx);
        kern_cpu_attention(ref + (size_t)t0 * QD, QD, q + (size_t)t0 * QD, QD, kp, vp,
                           bt + i * maxb, bs, Hq, Hkv, D, cache[i], nnew[i],
                           1.0f / sqrtf((float)D));
        r0 += ctx;
        t0 += nnew[i];
    }
    /* GPU */
    float *drows = gu_dev((size_t)ctx_tot * P * 4), *dq = gu_dev((size_t)Tn * QD * 4);
    uint16_t *dk = gu_dev(pool * 2), *dv = gu_dev(pool * 2), *dout = gu_dev((size_t)Tn * QD * 2);
    int32_t *dsm = gu_dev(ctx_tot * 4), *dts = gu_dev(Tn * 4), *dpos = gu_dev(Tn * 4),
            *dbt = gu_dev((size_t)N * maxb * 4);
    int32_t *qsn = malloc((N + 1) * 4), *tiles = malloc(2 * Tn * 4);
    qsn[0] = 0;
    for (int i = 0; i < N; i++)
        qsn[i + 1] = qsn[i] + nnew[i];
    int ntiles = kern_attention_tiles(qsn, N, tiles);
    int32_t *dtiles = gu_dev(2 * Tn * 4);
    gu_up(dtiles, tiles, 2 * ntiles * 4);
    float *dwork = nsplit > 1 ? gu_dev(kern_attention_work_floats(Tn, Hq, D, nsplit) * 4) : NULL;
    gu_up(drows, rows, (size_t)ctx_tot * P * 4);
    gu_up(dq, q, (size_t)Tn * QD * 4);
    gu_up(dsm, smap, ctx_tot * 4);
    gu_up(dts, tseq, Tn * 4);
    gu_up(dpos, pos, Tn * 4);
    gu_up(dbt, bt, (size_t)N * maxb * 4);
    ck_assert_int_eq(kern_kv_write(drows, P, QD, QD + KVD, ctx_tot, Hkv, D, bs, dsm, dk, dv, 0),
                     0);
    struct kern_attn_args a = {.q = dq, .q_stride = QD, .kc = dk, .vc = dv, .block_table = dbt,
                               .max_blocks = maxb, .tok_seq = dts, .positions = dpos,
                               .tiles = dtiles, .ntiles = ntiles, .T = Tn,
                               .Hq = Hq, .Hkv = Hkv, .D = D, .bs = bs,
                               .scale = 1.0f / sqrtf((float)D), .nsplit = nsplit,
                               .work = dwork, .out = dout};
    ck_assert_int_eq(kern_attention(&a, 0), 0);
    gu_sync();
    uint16_t *got = calloc((size_t)Tn * QD, 2);
    gu_down(got, dout, (size_t)Tn * QD * 2);
    int nan;
    char nm[96];
    snprintf(nm, sizeof nm, "attention Hq%d Hkv%d D%d bs%d N=%d T=%d split=%d", Hq, Hkv, D, bs,
             N, Tn, nsplit);
    GU_EXPECT(nm, gu_rel_err_bf16(got, ref, (size_t)Tn * QD, &nan), nan, 5e-3);
    free(qsn), free(tiles);
    free(perm), free(bt), free(rows), free(smap), free(tseq), free(pos), free(q), free(ref),
        free(kp), free(vp), free(got);
    gu_free_all();
}

START_TEST(test_attention_mixed)
{
    int c1[4] = {1000, 37, 0, 50}, n1[4] = {1, 1, 70, 33};
    attn_case(30, 30, 128, 16, c1, n1, 4, 1, 1100);       /* 7B heads, mixed batch */
    int c3[2] = {300, 0}, n3[2] = {45, 77};
    attn_case(30, 30, 128, 16, c3, n3, 2, 1, 1102);        /* several query tiles */
    int c2[3] = {0, 9, 3}, n2[3] = {19, 1, 8};
    attn_case(8, 2, 64, 4, c2, n2, 3, 1, 1101);           /* grouped KV heads */
}
END_TEST

START_TEST(test_attention_split)
{
    int c[2] = {1500, 5}, n[2] = {1, 1};
    attn_case(30, 30, 128, 16, c, n, 2, 1, 1200);
    attn_case(30, 30, 128, 16, c, n, 2, 7, 1201);
    attn_case(30, 30, 128, 16, c, n, 2, 16, 1202);
    int c2[1] = {4095}, n2[1] = {1};
    attn_case(30, 30, 128, 16, c2, n2, 1, 16, 1203);
}
END_TEST

Suite *gpu_attn_suite(void)
{
    Suite *s = suite_create("gpu_attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_attention_mixed);
    tcase_add_test(tc, test_attention_split);
    suite_add_tcase(s, tc);
    return s;
}
