/* tests/gpu/check_gpu_attn.c: paged KV write + causal attention against the
 * CPU reference (kern_cpu_kv_write / kern_cpu_attention) on ragged batches
 * that mix decode rows (long cached context, one new token), fresh prefills
 * and chunked-prefill continuations, with scattered block tables, at the 7B
 * head shapes and with grouped KV heads; split-KV decode with several split
 * counts. K and V are bf16-rounded first so both sides attend to the same
 * values (the GPU cache is bf16). Each batch runs through the dispatch plan
 * (kern_attention_plan: chunks of >= KERN_ATTN_PF_MIN tokens on the
 * tensor-core prefill kernel, the rest on the CUDA-core kernel) and, for the
 * mixed batches, also through plain KERN_ATTN_QT tiles (all CUDA cores).
 * The long (8192-token) case checks a sample of rows against the reference
 * (every row for NaN), which keeps the CPU side to seconds.
 *
 * The fused per-token preparation (kern_attn_prep: q/k norm, RoPE, cache
 * write) is checked against the CPU reference ops (kern_cpu_rmsnorm,
 * kern_cpu_rope_apply, kern_cpu_kv_write) and against the four unfused CUDA
 * kernels it replaces.
 *
 * Runs on the GPU machine only (make test-gpu), CK_NOFORK.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attn_prep.h"
#include "kernels/cuda/kv_write.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "tests/gpu/gpu_util.h"

static int row_sampled(int j, int n, int sample)
{
    return j < KERN_ATTN_PT || j >= n - KERN_ATTN_PT || j % sample == 0;
}

/* got (bf16, Tn rows of QD) against ref; with sample > 1 only the sampled
 * rows are compared and every row must be finite (written). */
static void check_out(const char *nm, const uint16_t *got, float *ref, int Tn, int QD,
                      const int *nnew, int N, int sample, double tol)
{
    int nan;
    if (sample <= 1) {
        GU_EXPECT(nm, gu_rel_err_bf16(got, ref, (size_t)Tn * QD, &nan), nan, tol);
        return;
    }
    float *all = malloc((size_t)Tn * QD * 4), *rs = malloc((size_t)Tn * QD * 4);
    int bad = 0;
    for (size_t k = 0; k < (size_t)Tn * QD; k++)
        bad |= !isfinite(all[k] = gu_from_bf16(got[k]));
    ck_assert_msg(!bad, "%s: unwritten or non-finite output", nm);
    int ns = 0;
    for (int i = 0, tt = 0; i < N; tt += nnew[i], i++)
        for (int j = 0; j < nnew[i]; j++)
            if (row_sampled(j, nnew[i], sample)) {
                memcpy(all + (size_t)ns * QD, all + (size_t)(tt + j) * QD, (size_t)QD * 4);
                memcpy(rs + (size_t)ns * QD, ref + (size_t)(tt + j) * QD, (size_t)QD * 4);
                ns++;
            }
    GU_EXPECT(nm, gu_rel_err(all, rs, (size_t)ns * QD, &nan), nan, tol);
    free(all), free(rs);
}

/* plan: 1 = kern_attention_plan (prefill tiles), 0 = kern_attention_tiles.
 * variants: also run each prefill kernel shape by itself.
 * sample > 1: the reference covers the first and last 64 rows of every
 * sequence and every sample-th row between. */
static void attn_run(int Hq, int Hkv, int D, int bs, const int *cache, const int *nnew, int N,
                     int nsplit, uint64_t seed, int plan, int sample, double tol, int variants)
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
        if (sample <= 1) {
            kern_cpu_attention(ref + (size_t)t0 * QD, QD, q + (size_t)t0 * QD, QD, kp, vp,
                               bt + i * maxb, bs, Hq, Hkv, D, cache[i], nnew[i],
                               1.0f / sqrtf((float)D));
        } else {
            for (int j = 0; j < nnew[i]; j++)
                if (row_sampled(j, nnew[i], sample))
                    kern_cpu_attention(ref + (size_t)(t0 + j) * QD, QD, q + (size_t)(t0 + j) * QD,
                                       QD, kp, vp, bt + i * maxb, bs, Hq, Hkv, D, cache[i] + j,
                                       1, 1.0f / sqrtf((float)D));
        }
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
    int nptiles = 0;
    int ntiles = plan ? kern_attention_plan(qsn, pos, N, tiles, &nptiles)
                      : kern_attention_tiles(qsn, N, tiles);
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
                               .work = dwork, .out = dout, .nptiles = nptiles};
    uint16_t *got = calloc((size_t)Tn * QD, 2);
    /* variant 0: kern_attention as the engine calls it; 1..: each
     * prefill kernel shape (kern_attention_prefill_variant), the decode
     * tiles through kern_attention, output poisoned again before each */
    int nv = variants && nptiles > 0 && kern_attention_prefill_supported(D)
                 ? KERN_ATTN_PF_VARIANTS : 0;
    /* decode rows only past the prefill tiles: the engine runs the one-row
     * kernel (v = 0); v = -1 runs the general one on the same tiles */
    int single = kern_attention_tiles_single(tiles, nptiles, ntiles);
    a.decode_tiles_single = single;
    for (int v = single ? -1 : 0; v <= nv; v++) {
        if (v <= 0) {
            struct kern_attn_args b = a;
            b.decode_tiles_single = v == 0 && single;
            ck_assert(cudaMemset(dout, 0xFF, (size_t)Tn * QD * 2) == cudaSuccess);
            ck_assert_int_eq(kern_attention(&b, 0), 0);
        } else {
            ck_assert(cudaMemset(dout, 0xFF, (size_t)Tn * QD * 2) == cudaSuccess);
            ck_assert_int_eq(kern_attention_prefill_variant(&a, v, 0), 0);
            struct kern_attn_args b = a;
            b.tiles += 2 * nptiles;
            b.ntiles -= nptiles;
            b.nptiles = 0;
            b.nsplit = 1;
            if (b.ntiles > 0)
                ck_assert_int_eq(kern_attention(&b, 0), 0);
        }
        gu_sync();
        gu_down(got, dout, (size_t)Tn * QD * 2);
        char nm[128];
        snprintf(nm, sizeof nm, "attention Hq%d Hkv%d D%d bs%d N=%d T=%d split=%d %s%d %s%d", Hq,
                 Hkv, D, bs, N, Tn, nsplit, plan ? "ptiles=" : "qtiles", plan ? nptiles : 0,
                 v == 0 && single ? "1row v" : "v", v);
        check_out(nm, got, ref, Tn, QD, nnew, N, sample, tol);
    }
    free(qsn), free(tiles);
    free(perm), free(bt), free(rows), free(smap), free(tseq), free(pos), free(q), free(ref),
        free(kp), free(vp), free(got);
    gu_free_all();
}

/* Every row checked; the dispatch plan (tensor-core prefill tiles) and, with
 * qtiles, again with the CUDA-core kernel alone. */
static void attn_case(int Hq, int Hkv, int D, int bs, const int *cache, const int *nnew, int N,
                      int nsplit, uint64_t seed)
{
    int nmax = 0;
    for (int i = 0; i < N; i++)
        nmax = nnew[i] > nmax ? nnew[i] : nmax;
    /* bf16 Q and P on the tensor-core path: 1e-2; fp32 on CUDA cores */
    attn_run(Hq, Hkv, D, bs, cache, nnew, N, nsplit, seed, 1, 1,
             nmax >= KERN_ATTN_PF_MIN ? 1e-2 : 5e-3, !gu_emulated() || Hq < 16);
    /* the same batch on CUDA cores alone (when the plan differs; on the
     * emulator only for the smaller head counts, which keeps it to seconds) */
    if (nmax >= KERN_ATTN_PF_MIN && (!gu_emulated() || Hq < 16))
        attn_run(Hq, Hkv, D, bs, cache, nnew, N, nsplit, seed, 0, 1, 5e-3, 0);
}

/* ---- fused q/k norm + RoPE + KV write (kern_attn_prep) ---- */

/* Cache element (block, head, offset, d) of the GPU layout [block][Hkv][bs][D]. */
static size_t kv_gidx(int blk, int h, int off, int d, int Hkv, int bs, int D)
{
    return (((size_t)blk * Hkv + h) * bs + off) * D + d;
}

/* T tokens with ragged positions (a few sequence starts, a decode row far
 * out, random positions up to 32767) and distinct scattered cache slots,
 * every fifth token (and the second) slot -1. Rows have a padded stride.
 * rope: yarn frequencies (attention factor != 1), else RoPE off. */
static void attn_prep_case(int Hq, int Hkv, int D, int bs, int T, int rope, uint64_t seed)
{
    gu_seed(seed);
    int QD = Hq * D, KVD = Hkv * D, P = QD + 2 * KVD + 5, half = D / 2;
    float eps = 1e-6f;
    int nblocks = (T + bs - 1) / bs + 3, nslot = nblocks * bs;
    size_t rn = (size_t)T * P, pool = (size_t)nblocks * bs * KVD;
    float *rows = calloc(rn, 4), *ref = calloc(rn, 4), *got = calloc(rn, 4),
          *got2 = calloc(rn, 4), *qw = calloc(QD, 4), *kw = calloc(KVD, 4),
          *inv = calloc(half, 4), *kp = calloc(pool, 4), *vp = calloc(pool, 4);
    uint16_t *kc = calloc(pool, 2), *vc = calloc(pool, 2), *kc2 = calloc(pool, 2),
             *vc2 = calloc(pool, 2);
    int32_t *pos = calloc(T, 4), *sm = calloc(T, 4), *perm = calloc(nslot, 4);
    ck_assert(rows && ref && got && got2 && qw && kw && inv && kp && vp && kc && vc && kc2 &&
              vc2 && pos && sm && perm);
    gu_fill(rows, rn, -2, 2);
    gu_fill(qw, QD, 0.5f, 1.5f);
    gu_fill(kw, KVD, 0.5f, 1.5f);
    for (int i = 0; i < nslot; i++)
        perm[i] = i;
    for (int i = nslot - 1; i > 0; i--) {
        int j = gu_int(0, i), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    for (int t = 0; t < T; t++) {
        pos[t] = t < 3 ? t : t == 3 ? 0 : t == 4 ? 4095 : gu_int(0, 32767);
        sm[t] = (t % 5 == 4 || t == 1) ? -1 : perm[t];
    }
    float ms = 1.0f;
    if (rope) {
        struct cfg_rope r;
        memset(&r, 0, sizeof r);
        r.mode = CFG_ROPE_YARN;
        r.theta = 500000;
        r.factor = 8;
        r.original_max_position = 4096;
        ck_assert_int_eq(kern_cpu_rope_freqs(&r, D, 4096 * 8, 0, inv, &ms), 0);
        ck_assert(ms != 1.0f);
    }
    /* CPU reference: whole-vector norms, rotation of every q and k head, the
     * cache rows of the tokens with a slot (CPU pool layout [blk][off][h][D]) */
    memcpy(ref, rows, rn * 4);
    kern_cpu_rmsnorm(ref, ref, P, qw, T, QD, eps);
    kern_cpu_rmsnorm(ref + QD, ref + QD, P, kw, T, KVD, eps);
    if (rope)
        kern_cpu_rope_apply(ref, P, Hq + Hkv, D, T, pos, inv, ms);
    for (int t = 0; t < T; t++) {
        if (sm[t] < 0)
            continue;
        int32_t blk = sm[t] / bs;
        const float *kr = ref + (size_t)t * P + QD;
        kern_cpu_kv_write(kp, vp, kr, KVD, kr + KVD, KVD, &blk, bs, Hkv, D, sm[t] % bs, 1);
    }
    /* GPU, fused and unfused, on poisoned caches */
    float *dr = gu_dev(rn * 4), *dr2 = gu_dev(rn * 4), *dqw = gu_dev(QD * 4),
          *dkw = gu_dev(KVD * 4), *dinv = gu_dev(half * 4);
    uint16_t *dkc = gu_dev(pool * 2), *dvc = gu_dev(pool * 2), *dkc2 = gu_dev(pool * 2),
             *dvc2 = gu_dev(pool * 2);
    int32_t *dpos = gu_dev(T * 4), *dsm = gu_dev(T * 4);
    gu_up(dr, rows, rn * 4);
    gu_up(dr2, rows, rn * 4);
    gu_up(dqw, qw, QD * 4);
    gu_up(dkw, kw, KVD * 4);
    gu_up(dinv, inv, half * 4);
    gu_up(dpos, pos, T * 4);
    gu_up(dsm, sm, T * 4);
    ck_assert_int_eq(kern_attn_prep(dr, P, T, Hq, Hkv, D, dqw, dkw, eps, dpos,
                                    rope ? dinv : NULL, ms, bs, dsm, dkc, dvc, 0),
                     0);
    ck_assert_int_eq(kern_rmsnorm_inplace(dr2, P, dqw, T, QD, eps, 0), 0);
    ck_assert_int_eq(kern_rmsnorm_inplace(dr2 + QD, P, dkw, T, KVD, eps, 0), 0);
    if (rope)
        ck_assert_int_eq(kern_rope(dr2, P, Hq + Hkv, D, dpos, dinv, ms, T, 0), 0);
    ck_assert_int_eq(kern_kv_write(dr2, P, QD, QD + KVD, T, Hkv, D, bs, dsm, dkc2, dvc2, 0), 0);
    gu_sync();
    gu_down(got, dr, rn * 4);
    gu_down(got2, dr2, rn * 4);
    gu_down(kc, dkc, pool * 2);
    gu_down(vc, dvc, pool * 2);
    gu_down(kc2, dkc2, pool * 2);
    gu_down(vc2, dvc2, pool * 2);
    int nan;
    char nm[128];
    const char *rs = rope ? "rope yarn" : "no rope";
    snprintf(nm, sizeof nm, "attn_prep q Hq%d Hkv%d D%d T=%d %s", Hq, Hkv, D, T, rs);
    GU_EXPECT(nm, gu_rel_err_rows(got, P, ref, P, T, QD, &nan), nan, rope ? 2e-6 : 1e-6);
    snprintf(nm, sizeof nm, "attn_prep q vs unfused kernels %s", rs);
    /* the register form sums in pair order: an fp32 rounding of the norm */
    GU_EXPECT(nm, gu_rel_err_rows(got, P, got2, P, T, QD, &nan), nan, 1e-6);
    /* k, v and the row padding stay as they were */
    for (int t = 0; t < T; t++)
        ck_assert_msg(memcmp(got + (size_t)t * P + QD, rows + (size_t)t * P + QD,
                             (size_t)(P - QD) * 4) == 0,
                      "attn_prep changed token %d's k/v/padding in the row", t);
    /* the cache: the slots of tokens with sm >= 0 against the reference
     * (each element within bf16 rounding of it), every other element still
     * poison (0xFFFF); the unfused kernels' cache alike */
    unsigned char *written = calloc(nslot, 1);
    for (int t = 0; t < T; t++)
        if (sm[t] >= 0)
            written[sm[t]] = 1;
    size_t nw = 0, bad = 0, diff2 = 0;
    float *cg = calloc(2 * (size_t)T * KVD, 4), *cr = calloc(2 * (size_t)T * KVD, 4);
    for (int sl = 0; sl < nslot; sl++) {
        int blk = sl / bs, off = sl % bs;
        for (int h = 0; h < Hkv; h++)
            for (int d = 0; d < D; d++) {
                size_t g = kv_gidx(blk, h, off, d, Hkv, bs, D);
                size_t c = (((size_t)blk * bs + off) * Hkv + h) * D + d;
                diff2 += kc[g] != kc2[g] || vc[g] != vc2[g];
                if (!written[sl]) {
                    bad += kc[g] != 0xFFFF || vc[g] != 0xFFFF;
                    continue;
                }
                float gk = gu_from_bf16(kc[g]), gv = gu_from_bf16(vc[g]);
                bad += !(fabsf(gk - kp[c]) <= fabsf(kp[c]) * (1.0f / 256.0f) * 1.001f);
                bad += !(fabsf(gv - vp[c]) <= fabsf(vp[c]) * (1.0f / 256.0f) * 1.001f);
                cg[nw] = gk, cr[nw++] = kp[c];
                cg[nw] = gv, cr[nw++] = vp[c];
            }
    }
    snprintf(nm, sizeof nm, "attn_prep kv cache (bf16) Hkv%d D%d bs%d %s", Hkv, D, bs, rs);
    GU_EXPECT(nm, gu_rel_err(cg, cr, nw, &nan), nan, 4e-3);
    printf("  %zu cache values, %zu outside bf16 rounding or not poison, %zu differ from "
           "the unfused kernels\n", nw, bad, diff2);
    ck_assert_msg(bad == 0, "%s: %zu cache elements wrong", nm, bad);
    ck_assert_msg(diff2 * 1000 <= nw, "%s: %zu cache elements differ from kern_kv_write", nm,
                  diff2);
    free(written), free(cg), free(cr);
    free(rows), free(ref), free(got), free(got2), free(qw), free(kw), free(inv), free(kp),
        free(vp), free(kc), free(vc), free(kc2), free(vc2), free(pos), free(sm), free(perm);
    gu_free_all();
}

START_TEST(test_attn_prep)
{
    for (int rope = 0; rope < 2; rope++) {
        attn_prep_case(30, 30, 128, 16, 37, rope, 1500 + rope); /* 7B heads */
        attn_prep_case(8, 2, 64, 4, 13, rope, 1510 + rope);     /* grouped KV heads */
        attn_prep_case(3, 1, 10, 3, 9, rope, 1520 + rope);      /* odd: D/2 = 5 */
        attn_prep_case(72, 8, 128, 16, 3, rope, 1530 + rope);   /* q past 8192: strided form */
    }
    /* an odd head dim has no rotate-half pairs */
    ck_assert_int_eq(kern_attn_prep(NULL, 7, 1, 1, 1, 7, NULL, NULL, 1e-6f, NULL, NULL, 1.0f, 4,
                                    NULL, NULL, NULL, 0),
                     (int)cudaErrorInvalidValue);
}
END_TEST

START_TEST(test_attention_mixed)
{
    int c1[4] = {1000, 37, 0, 50}, n1[4] = {1, 1, 70, 33};
    attn_case(30, 30, 128, 16, c1, n1, 4, 1, 1100);       /* 7B heads, mixed batch */
    int c3[2] = {300, 0}, n3[2] = {45, 77};
    attn_case(30, 30, 128, 16, c3, n3, 2, 1, 1102);        /* several query tiles */
    int c2[3] = {0, 9, 3}, n2[3] = {19, 1, 8};
    attn_case(8, 2, 64, 4, c2, n2, 3, 1, 1101);           /* grouped KV heads */
    int c4[2] = {5, 0}, n4[2] = {40, 20};
    attn_case(4, 2, 32, 16, c4, n4, 2, 1, 1103);          /* D 32: prefill tiles on CUDA cores */
}
END_TEST

/* Ragged varlen batches for the prefill kernel: decode rows, a 15-token chunk
 * (CUDA cores), 64/65/200/1000-token chunks, fresh and continuing cached
 * prefixes (cache_len not a multiple of the tile or block size), GQA 2x/4x,
 * D 64 and 128, several KV block sizes. */
START_TEST(test_attention_prefill_varlen)
{
    int emu = gu_emulated();
    int c1[7] = {500, 0, 0, 37, 100, 0, 3}, n1[7] = {1, 15, 64, 65, 200, 1000, 1};
    attn_run(emu ? 4 : 16, emu ? 2 : 8, 128, 16, c1, n1, 7, 1, 1300, 1, 1, 1e-2, !emu);
    int c2[5] = {0, 129, 1, 64, 2000}, n2[5] = {200, 65, 64, 17, 1};
    attn_run(emu ? 4 : 16, emu ? 1 : 4, 64, 16, c2, n2, 5, 1, 1301, 1, 1, 1e-2, !emu);
    int c3[3] = {70, 0, 9}, n3[3] = {130, 16, 1};
    attn_run(8, 4, 64, 32, c3, n3, 3, 16, 1302, 1, 1, 1e-2, 1); /* bs 32; split ignored */
    attn_run(6, 3, 128, 8, c3, n3, 3, 1, 1303, 1, 1, 1e-2, 1); /* bs 8 */
    attn_run(4, 2, 64, 12, c3, n3, 3, 1, 1304, 1, 1, 1e-2, 0); /* bs 12: not a power of 2 */
}
END_TEST

/* A long causal prefill at 7B head shapes (8192 tokens, 30/30 heads, D 128)
 * and a long chunk continuing a cached prefix; shrunk on the emulator. */
START_TEST(test_attention_prefill_long)
{
    if (gu_emulated()) {
        int c[1] = {0}, n[1] = {1536};
        attn_run(2, 1, 128, 16, c, n, 1, 1, 1400, 1, 7, 1e-2, 0);
        int c2[1] = {700}, n2[1] = {300};
        attn_run(2, 2, 64, 16, c2, n2, 1, 1, 1401, 1, 5, 1e-2, 0);
        return;
    }
    int c[1] = {0}, n[1] = {8192};
    attn_run(30, 30, 128, 16, c, n, 1, 1, 1400, 1, 61, 1e-2, 1);
    int c2[2] = {3000, 0}, n2[2] = {2000, 1};
    attn_run(30, 30, 128, 16, c2, n2, 2, 1, 1401, 1, 17, 1e-2, 1);
}
END_TEST

START_TEST(test_attention_split)
{
    int c[2] = {1500, 5}, n[2] = {1, 1};
    attn_case(30, 30, 128, 16, c, n, 2, 1, 1200);
    attn_case(30, 30, 128, 16, c, n, 2, 7, 1201);
    attn_case(30, 30, 128, 16, c, n, 2, 16, 1202);
    int c2[1] = {gu_emulated() ? 2047 : 4095}, n2[1] = {1};
    attn_case(30, 30, 128, 16, c2, n2, 1, 16, 1203);
    /* decode-only batches (the one-row kernel) at other head dims: D 96 (a
     * partial key-load group), D 256 (two groups), grouped KV heads */
    int c3[3] = {40, 0, 300}, n3[3] = {1, 1, 1};
    attn_case(8, 2, 96, 16, c3, n3, 3, 1, 1204);
    attn_case(4, 4, 256, 8, c3, n3, 3, 4, 1205);
    attn_case(6, 3, 64, 16, c3, n3, 3, 1, 1206);
}
END_TEST

Suite *gpu_attn_suite(void)
{
    Suite *s = suite_create("gpu_attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_attn_prep);
    tcase_add_test(tc, test_attention_mixed);
    tcase_add_test(tc, test_attention_split);
    tcase_add_test(tc, test_attention_prefill_varlen);
    tcase_add_test(tc, test_attention_prefill_long);
    suite_add_tcase(s, tc);
    return s;
}
