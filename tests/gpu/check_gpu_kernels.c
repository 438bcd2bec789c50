/* tests/gpu/check_gpu_kernels.c: every CUDA kernel against the CPU reference
 * ops (kernels/cpu) on fresh random inputs, over shape sweeps that include the
 * released 7B shapes and ragged varlen batches. Device outputs are poisoned
 * (NaN bytes) before each run, so an element a kernel skips fails the check.
 *
 * Runs on the GPU machine only (make test-gpu), CK_NOFORK, single thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"
#include "kernels/cpu/conv1d.h"
#include "kernels/cpu/gated_rmsnorm.h"
#include "kernels/cpu/gdn_gate.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/cast.h"
#include "kernels/cuda/conv1d.h"
#include "kernels/cuda/embed.h"
#include "kernels/cuda/gated_rmsnorm.h"
#include "kernels/cuda/gdn_gate.h"
#include "kernels/cuda/gdn_prep.h"
#include "kernels/cuda/gdn_recurrent.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"
#include "tests/gpu/gpu_util.h"

#define F(n) ((float *)calloc((size_t)(n), sizeof(float)))

/* ---- embedding ---- */
START_TEST(test_embed)
{
    int Cs[2] = {64, 3840};
    for (int ci = 0; ci < 2; ci++) {
        int V = 1000, C = Cs[ci], T = 37;
        gu_seed(100 + ci);
        float *tab = F((size_t)V * C), *ref = F((size_t)T * C), *got = F((size_t)T * C);
        uint16_t *tb = calloc((size_t)V * C, 2);
        int32_t tok[37];
        gu_fill_bf16(tab, tb, (size_t)V * C, -1, 1);
        for (int t = 0; t < T; t++)
            tok[t] = gu_int(0, V - 1);
        uint16_t *dt = gu_dev((size_t)V * C * 2);
        int32_t *dtok = gu_dev(sizeof tok);
        float *dx = gu_dev((size_t)T * C * 4);
        gu_up(dt, tb, (size_t)V * C * 2);
        gu_up(dtok, tok, sizeof tok);
        ck_assert_int_eq(kern_embed(dt, dtok, T, C, dx, 0), 0);
        gu_sync();
        gu_down(got, dx, (size_t)T * C * 4);
        for (int t = 0; t < T; t++)
            memcpy(ref + (size_t)t * C, tab + (size_t)tok[t] * C, (size_t)C * 4);
        int nan;
        double e = gu_rel_err(got, ref, (size_t)T * C, &nan);
        GU_EXPECT(ci ? "embed C=3840" : "embed C=64", e, nan, 0.0);
        free(tab), free(ref), free(got), free(tb);
        gu_free_all();
    }
}
END_TEST

/* ---- RMSNorm variants ---- */
START_TEST(test_rmsnorm)
{
    /* register forms of 4, 16 and 32 values a thread, and the strided form
     * past 8192 */
    int Cs[5] = {64, 3840, 4000, 5120, 9000}, Ts[5] = {1, 13, 5, 3, 2};
    for (int ci = 0; ci < 5; ci++) {
        int C = Cs[ci], T = Ts[ci];
        float eps = 1e-6f;
        gu_seed(200 + ci);
        size_t n = (size_t)T * C;
        float *x = F(n), *add = F(n), *w = F(C), *ref = F(n), *xr = F(n), *got = F(n);
        uint16_t *ob = calloc(n, 2);
        gu_fill(x, n, -2, 2);
        gu_fill(add, n, -1, 1);
        gu_fill(w, C, 0.5f, 1.5f);
        float *dx = gu_dev(n * 4), *da = gu_dev(n * 4), *dw = gu_dev(C * 4);
        uint16_t *dob = gu_dev(n * 2);
        gu_up(dx, x, n * 4);
        gu_up(da, add, n * 4);
        gu_up(dw, w, C * 4);
        /* fused add + norm */
        ck_assert_int_eq(kern_add_rmsnorm(dx, da, dw, NULL, T, C, eps, dob, 0), 0);
        gu_sync();
        for (size_t i = 0; i < n; i++)
            xr[i] = x[i] + add[i];
        kern_cpu_rmsnorm(ref, xr, C, w, T, C, eps);
        gu_down(got, dx, n * 4);
        gu_down(ob, dob, n * 2);
        int nan;
        char nm[64];
        snprintf(nm, sizeof nm, "add_rmsnorm residual C=%d T=%d", C, T);
        GU_EXPECT(nm, gu_rel_err(got, xr, n, &nan), nan, 1e-7);
        snprintf(nm, sizeof nm, "add_rmsnorm out(bf16) C=%d T=%d", C, T);
        GU_EXPECT(nm, gu_rel_err_bf16(ob, ref, n, &nan), nan, 5e-3);
        /* gathered rows (final norm on logits rows) */
        int32_t rows[3] = {0, T / 2, T - 1};
        int32_t *drows = gu_dev(sizeof rows);
        gu_up(drows, rows, sizeof rows);
        uint16_t *dob2 = gu_dev(3 * (size_t)C * 2);
        ck_assert_int_eq(kern_add_rmsnorm(dx, NULL, dw, drows, 3, C, eps, dob2, 0), 0);
        gu_sync();
        uint16_t *ob2 = calloc(3 * (size_t)C, 2);
        float *ref2 = F(3 * (size_t)C);
        gu_down(ob2, dob2, 3 * (size_t)C * 2);
        for (int r = 0; r < 3; r++)
            memcpy(ref2 + (size_t)r * C, ref + (size_t)rows[r] * C, (size_t)C * 4);
        snprintf(nm, sizeof nm, "rmsnorm gathered rows C=%d", C);
        GU_EXPECT(nm, gu_rel_err_bf16(ob2, ref2, 3 * (size_t)C, &nan), nan, 5e-3);
        /* post-norm residual: x += norm(a), a strided */
        int as = C + 7;
        float *a = F((size_t)T * as), *an = F((size_t)T * as);
        gu_fill(a, (size_t)T * as, -3, 3);
        float *dA = gu_dev((size_t)T * as * 4);
        gu_up(dA, a, (size_t)T * as * 4);
        gu_up(dx, x, n * 4);
        ck_assert_int_eq(kern_rmsnorm_add(dx, dA, as, dw, T, C, eps, dob, 0), 0);
        gu_sync();
        kern_cpu_rmsnorm(an, a, as, w, T, C, eps);
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                xr[(size_t)t * C + c] = x[(size_t)t * C + c] + an[(size_t)t * as + c];
        gu_down(got, dx, n * 4);
        gu_down(ob, dob, n * 2);
        snprintf(nm, sizeof nm, "rmsnorm_add residual C=%d", C);
        GU_EXPECT(nm, gu_rel_err(got, xr, n, &nan), nan, 1e-6);
        snprintf(nm, sizeof nm, "rmsnorm_add bf16 copy C=%d", C);
        GU_EXPECT(nm, gu_rel_err_bf16(ob, xr, n, &nan), nan, 5e-3);
        /* in place, strided (whole-vector q/k norm) */
        gu_up(dA, a, (size_t)T * as * 4);
        ck_assert_int_eq(kern_rmsnorm_inplace(dA, as, dw, T, C, eps, 0), 0);
        gu_sync();
        float *got2 = F((size_t)T * as);
        gu_down(got2, dA, (size_t)T * as * 4);
        snprintf(nm, sizeof nm, "rmsnorm_inplace strided C=%d", C);
        GU_EXPECT(nm, gu_rel_err_rows(got2, as, an, as, T, C, &nan), nan, 1e-6);
        free(x), free(add), free(w), free(ref), free(xr), free(got), free(ob), free(ob2),
            free(ref2), free(a), free(an), free(got2);
        gu_free_all();
    }
}
END_TEST

/* ---- RoPE: table (shared with the CPU) and application ---- */
START_TEST(test_rope)
{
    struct cfg_model c;
    memset(&c, 0, sizeof c);
    c.head_dim = 128;
    c.max_position_embeddings = 4096;
    c.rope.mode = CFG_ROPE_YARN;
    c.rope.theta = 500000;
    c.rope.factor = 8;
    c.rope.original_max_position = 4096;
    float inv[64], inv2[64], ms = 0, ms2 = 0;
    cu_rope_inv_freq(&c, 0, inv, &ms);
    ck_assert_int_eq(kern_cpu_rope_freqs(&c.rope, 128, 4096, 0, inv2, &ms2), 0);
    ck_assert(memcmp(inv, inv2, sizeof inv) == 0 && ms == ms2);
    int T = 20, H = 60, D = 128, ld = H * D + 3;
    gu_seed(300);
    float *x = F((size_t)T * ld), *ref = F((size_t)T * ld), *got = F((size_t)T * ld);
    int32_t pos[20];
    gu_fill(x, (size_t)T * ld, -1, 1);
    for (int t = 0; t < T; t++)
        pos[t] = t < 5 ? t : gu_int(0, 32767);
    memcpy(ref, x, (size_t)T * ld * 4);
    kern_cpu_rope_apply(ref, ld, H, D, T, pos, inv, ms);
    float *dx = gu_dev((size_t)T * ld * 4), *dinv = gu_dev(sizeof inv);
    int32_t *dpos = gu_dev(sizeof pos);
    gu_up(dx, x, (size_t)T * ld * 4);
    gu_up(dinv, inv, sizeof inv);
    gu_up(dpos, pos, sizeof pos);
    ck_assert_int_eq(kern_rope(dx, ld, H, D, dpos, dinv, ms, T, 0), 0);
    gu_sync();
    gu_down(got, dx, (size_t)T * ld * 4);
    int nan;
    GU_EXPECT("rope yarn D=128 60 heads pos<32768", gu_rel_err(got, ref, (size_t)T * ld, &nan),
              nan, 2e-6);
    free(x), free(ref), free(got);
    gu_free_all();
}
END_TEST

/* ---- conv1d over a ragged batch with slots ---- */
static void conv_case(int CD, const int *lens, int N, uint64_t seed)
{
    int K = 4, P = CD + 5, nslots = N + 3;
    gu_seed(seed);
    int qs[64], slot[64], hinit[64], tok_seq[4096];
    int T = 0;
    for (int i = 0; i < N; i++) {
        qs[i] = T;
        for (int t = 0; t < lens[i]; t++)
            tok_seq[T + t] = i;
        T += lens[i];
        slot[i] = (i * 7 + 2) % nslots;
        hinit[i] = i == 0 ? 0 : gu_int(0, 1);
    }
    qs[N] = T;
    size_t se = (size_t)(K - 1) * CD;
    float *u = F((size_t)T * P), *w = F((size_t)CD * K), *st = F(nslots * se),
          *st_ref = F(nslots * se), *ref = F((size_t)T * CD), *got = F((size_t)T * CD),
          *st_got = F(nslots * se);
    gu_fill(u, (size_t)T * P, -2, 2);
    gu_fill(w, (size_t)CD * K, -0.6f, 0.6f);
    gu_fill(st, nslots * se, -2, 2);
    memcpy(st_ref, st, nslots * se * 4);
    for (int i = 0; i < N; i++) {
        float *s = st_ref + slot[i] * se;
        if (!hinit[i])
            memset(s, 0, se * 4);
        kern_cpu_conv1d_silu(ref + (size_t)qs[i] * CD, CD, u + (size_t)qs[i] * P, P, s, w,
                             lens[i], CD, K);
    }
    float *du = gu_dev((size_t)T * P * 4), *dw = gu_dev((size_t)CD * K * 4),
          *dst = gu_dev(nslots * se * 4), *dy = gu_dev((size_t)T * CD * 4);
    int32_t *dq = gu_dev((N + 1) * 4), *dsl = gu_dev(N * 4), *dh = gu_dev(N * 4),
            *dts = gu_dev(T * 4);
    gu_up(du, u, (size_t)T * P * 4);
    gu_up(dw, w, (size_t)CD * K * 4);
    gu_up(dst, st, nslots * se * 4);
    gu_up(dq, qs, (N + 1) * 4);
    gu_up(dsl, slot, N * 4);
    gu_up(dh, hinit, N * 4);
    gu_up(dts, tok_seq, T * 4);
    ck_assert_int_eq(kern_conv1d_fwd(du, P, dw, CD, K, T, dts, dq, dsl, dh, dst, se, dy, 0), 0);
    ck_assert_int_eq(kern_conv1d_state_update(du, P, CD, K, N, dq, dsl, dh, dst, se, 0), 0);
    gu_sync();
    gu_down(got, dy, (size_t)T * CD * 4);
    gu_down(st_got, dst, nslots * se * 4);
    int nan;
    char nm[80];
    snprintf(nm, sizeof nm, "conv1d out CD=%d N=%d T=%d", CD, N, T);
    GU_EXPECT(nm, gu_rel_err(got, ref, (size_t)T * CD, &nan), nan, 1e-6);
    snprintf(nm, sizeof nm, "conv1d state (all slots) CD=%d", CD);
    GU_EXPECT(nm, gu_rel_err(st_got, st_ref, nslots * se, &nan), nan, 0.0);
    free(u), free(w), free(st), free(st_ref), free(ref), free(got), free(st_got);
    gu_free_all();
}

START_TEST(test_conv1d)
{
    int l1[6] = {1, 2, 3, 5, 17, 64};
    conv_case(48, l1, 6, 400);
    int l2[5] = {1, 1, 1, 7, 130};
    conv_case(11520, l2, 5, 401);
    int l3[1] = {1};
    conv_case(11520, l3, 1, 402);
}
END_TEST

/* ---- gating ---- */
START_TEST(test_gdn_gate)
{
    int Hvs[2] = {4, 30};
    for (int hi = 0; hi < 2; hi++) {
        int T = 50, Hv = Hvs[hi], ld = 2 * Hv + 9, aoff = 3, boff = 3 + Hv;
        gu_seed(500 + hi);
        float *p = F((size_t)T * ld), *Al = F(Hv), *dtb = F(Hv);
        gu_fill(p, (size_t)T * ld, -30, 30);
        for (int h = 0; h < Hv; h++) {
            Al[h] = logf(gu_unif(1, 16));
            dtb[h] = gu_unif(-1, 1);
        }
        float *g = F(T * Hv), *b = F(T * Hv), *gg = F(T * Hv), *gb = F(T * Hv);
        kern_cpu_gdn_gate(g, b, p + aoff, p + boff, ld, Al, dtb, 1, T, Hv);
        float *dp = gu_dev((size_t)T * ld * 4), *dA = gu_dev(Hv * 4), *dd = gu_dev(Hv * 4),
              *dg = gu_dev(T * Hv * 4), *db = gu_dev(T * Hv * 4);
        gu_up(dp, p, (size_t)T * ld * 4);
        gu_up(dA, Al, Hv * 4);
        gu_up(dd, dtb, Hv * 4);
        ck_assert_int_eq(kern_gdn_gate(dp, ld, aoff, boff, dA, dd, 1, T, Hv, dg, db, 0), 0);
        gu_sync();
        gu_down(gg, dg, T * Hv * 4);
        gu_down(gb, db, T * Hv * 4);
        int nan;
        GU_EXPECT("gdn_gate g", gu_rel_err(gg, g, T * Hv, &nan), nan, 1e-6);
        GU_EXPECT("gdn_gate beta", gu_rel_err(gb, b, T * Hv, &nan), nan, 1e-6);
        free(p), free(Al), free(dtb), free(g), free(b), free(gg), free(gb);
        gu_free_all();
    }
}
END_TEST

/* ---- the fused short-sequence prologue: conv1d + state + gate ---- */
/* kern_gdn_prep_short against the three separate kernels on the device (the
 * same bits, compared exactly) and against the CPU reference; verify-style
 * snapshots (tok_spec) on the sequences past the first two. */
static void prep_case(int CD, int Hv, int K, const int *lens, int N, uint64_t seed)
{
    int a_off = CD + 7, b_off = a_off + Hv, P = b_off + Hv + 3;
    int own = N + 2, nslots = own + 64; /* snapshot slots past the sequences' */
    gu_seed(seed);
    int qs[64], slot[64], hinit[64], tok_seq[1024], tok_spec[1024];
    int T = 0, nsnap = 0;
    for (int i = 0; i < N; i++) {
        qs[i] = T;
        for (int t = 0; t < lens[i]; t++) {
            tok_seq[T + t] = i;
            tok_spec[T + t] = i >= 2 && nsnap < 64 ? own + nsnap++ : -1;
        }
        T += lens[i];
        slot[i] = own - 1 - i; /* distinct, as the engine guarantees */
        hinit[i] = i == 0 ? 0 : gu_int(0, 1);
    }
    qs[N] = T;
    if (N > 3)
        slot[3] = -1; /* no state: zeros in, nothing written */
    size_t se = (size_t)(K - 1) * CD;
    float *u = F((size_t)T * P), *w = F((size_t)CD * K), *st = F(nslots * se),
          *Al = F(Hv), *dtb = F(Hv);
    gu_fill(u, (size_t)T * P, -3, 3);
    gu_fill(w, (size_t)CD * K, -0.6f, 0.6f);
    gu_fill(st, nslots * se, -2, 2);
    for (int h = 0; h < Hv; h++) {
        Al[h] = logf(gu_unif(1, 16));
        dtb[h] = gu_unif(-1, 1);
    }
    /* CPU reference: conv output, the final and the per-token windows, gates */
    float *ref = F((size_t)T * CD), *st_ref = F(nslots * se), *g_ref = F(T * Hv),
          *b_ref = F(T * Hv), *win = F(se);
    memcpy(st_ref, st, nslots * se * 4);
    for (int i = 0; i < N; i++) {
        float *s0 = slot[i] >= 0 ? st_ref + slot[i] * se : NULL;
        if (!s0 || !hinit[i])
            memset(win, 0, se * 4);
        else
            memcpy(win, s0, se * 4);
        for (int t = qs[i]; t < qs[i + 1]; t++) {
            kern_cpu_conv1d_silu(ref + (size_t)t * CD, CD, u + (size_t)t * P, P, win, w, 1, CD, K);
            if (tok_spec[t] >= 0 && s0) /* slot < 0: nothing written */
                memcpy(st_ref + tok_spec[t] * se, win, se * 4);
        }
        if (s0)
            memcpy(s0, win, se * 4);
    }
    kern_cpu_gdn_gate(g_ref, b_ref, u + a_off, u + b_off, P, Al, dtb, 1, T, Hv);

    float *du = gu_dev((size_t)T * P * 4), *dw = gu_dev((size_t)CD * K * 4),
          *dA = gu_dev(Hv * 4), *dd = gu_dev(Hv * 4);
    float *dst[2], *dy[2], *dg[2], *db[2];
    int32_t *dq = gu_dev((N + 1) * 4), *dsl = gu_dev(N * 4), *dh = gu_dev(N * 4),
            *dts = gu_dev(T * 4), *dsp = gu_dev(T * 4);
    for (int v = 0; v < 2; v++) {
        dst[v] = gu_dev(nslots * se * 4);
        dy[v] = gu_dev((size_t)T * CD * 4);
        dg[v] = gu_dev(T * Hv * 4);
        db[v] = gu_dev(T * Hv * 4);
        gu_up(dst[v], st, nslots * se * 4);
    }
    gu_up(du, u, (size_t)T * P * 4);
    gu_up(dw, w, (size_t)CD * K * 4);
    gu_up(dA, Al, Hv * 4);
    gu_up(dd, dtb, Hv * 4);
    gu_up(dq, qs, (N + 1) * 4);
    gu_up(dsl, slot, N * 4);
    gu_up(dh, hinit, N * 4);
    gu_up(dts, tok_seq, T * 4);
    gu_up(dsp, tok_spec, T * 4);
    ck_assert_int_eq(kern_gdn_prep_short(du, P, dw, CD, K, N, dq, dsl, dh, dsp, dst[0], se, dy[0],
                                         a_off, b_off, dA, dd, 1, Hv, dg[0], db[0], 0),
                     0);
    ck_assert_int_eq(kern_conv1d_fwd(du, P, dw, CD, K, T, dts, dq, dsl, dh, dst[1], se, dy[1], 0),
                     0);
    ck_assert_int_eq(kern_conv1d_state_update_spec(du, P, CD, K, N, dq, dsl, dh, dsp, dst[1], se,
                                                   0),
                     0);
    ck_assert_int_eq(kern_gdn_gate(du, P, a_off, b_off, dA, dd, 1, T, Hv, dg[1], db[1], 0), 0);
    gu_sync();
    float *y[2], *sg[2], *g[2], *b[2];
    for (int v = 0; v < 2; v++) {
        y[v] = F((size_t)T * CD), sg[v] = F(nslots * se), g[v] = F(T * Hv), b[v] = F(T * Hv);
        gu_down(y[v], dy[v], (size_t)T * CD * 4);
        gu_down(sg[v], dst[v], nslots * se * 4);
        gu_down(g[v], dg[v], T * Hv * 4);
        gu_down(b[v], db[v], T * Hv * 4);
    }
    ck_assert_msg(!memcmp(y[0], y[1], (size_t)T * CD * 4), "gdn_prep: conv out differs");
    ck_assert_msg(!memcmp(sg[0], sg[1], nslots * se * 4), "gdn_prep: state differs");
    ck_assert_msg(!memcmp(g[0], g[1], T * Hv * 4) && !memcmp(b[0], b[1], T * Hv * 4),
                  "gdn_prep: gates differ");
    int nan;
    char nm[96];
    snprintf(nm, sizeof nm, "gdn_prep out CD=%d K=%d N=%d T=%d", CD, K, N, T);
    GU_EXPECT(nm, gu_rel_err(y[0], ref, (size_t)T * CD, &nan), nan, 1e-6);
    snprintf(nm, sizeof nm, "gdn_prep state + %d snapshots CD=%d", nsnap, CD);
    GU_EXPECT(nm, gu_rel_err(sg[0], st_ref, nslots * se, &nan), nan, 0.0);
    GU_EXPECT("gdn_prep g", gu_rel_err(g[0], g_ref, T * Hv, &nan), nan, 1e-6);
    GU_EXPECT("gdn_prep beta", gu_rel_err(b[0], b_ref, T * Hv, &nan), nan, 1e-6);
    for (int v = 0; v < 2; v++)
        free(y[v]), free(sg[v]), free(g[v]), free(b[v]);
    free(u), free(w), free(st), free(Al), free(dtb), free(ref), free(st_ref), free(g_ref),
        free(b_ref), free(win);
    gu_free_all();
}

START_TEST(test_gdn_prep)
{
    int l1[6] = {1, 2, 3, 16, 9, 1};
    prep_case(48, 4, 4, l1, 6, 450);
    prep_case(40, 3, 2, l1, 6, 451);
    prep_case(300, 300, 8, l1, 5, 452);           /* Hv past one block's threads */
    int l2[8] = {1, 1, 1, 1, 5, 1, 9, 1};
    prep_case(11520, 30, 4, l2, 8, 453);          /* 7B shapes, verify-like rows */
    int l3[1] = {1};
    prep_case(11520, 30, 4, l3, 1, 454);          /* batch-1 decode */
}
END_TEST

/* ---- recurrent gated delta rule over a ragged batch with slots ---- */
static void gdn_case(int Hk, int Hv, int Dk, int Dv, const int *lens, int N, int bf16_state,
                     double tol, uint64_t seed)
{
    /* no pad rows, every sequence with a slot (check_gpu_chunk covers slot -1) */
    struct gu_gdn_batch *b = gu_gdn_batch_create(Hk, Hv, Dk, Dv, lens, N, 0, -1, bf16_state, seed);
    int VD = b->VD, T = b->T, nslots = b->nslots;
    size_t se = b->se;
    float *o = F((size_t)T * VD), *st_got = F(nslots * se);
    float *dO = gu_dev((size_t)T * VD * 4);
    ck_assert_int_eq(kern_gdn_recurrent(b->dy, b->dg, b->db, N, b->dq, b->dsl, b->dh, Hk, Hv, Dk,
                                        Dv, 1.0f / sqrtf((float)Dk), b->dst, bf16_state, se, dO,
                                        0),
                     0);
    gu_sync();
    gu_down(o, dO, (size_t)T * VD * 4);
    gu_state_down(st_got, b->dst, nslots * se, bf16_state);
    int nan;
    char nm[96];
    snprintf(nm, sizeof nm, "gdn_recurrent o Hk%d Hv%d Dk%d Dv%d T=%d%s", Hk, Hv, Dk, Dv, T,
             bf16_state ? " bf16" : "");
    GU_EXPECT(nm, gu_rel_err(o, b->o_ref, (size_t)T * VD, &nan), nan, tol);
    snprintf(nm, sizeof nm, "gdn_recurrent state (all slots)%s", bf16_state ? " bf16" : "");
    GU_EXPECT(nm, gu_rel_err(st_got, b->st_ref, nslots * se, &nan), nan, tol);
    free(o), free(st_got);
    gu_gdn_batch_destroy(b);
    gu_free_all();
}

START_TEST(test_gdn_recurrent)
{
    int a[4] = {1, 3, 64, 200};
    gdn_case(2, 4, 32, 64, a, 4, 0, 2e-5, 600);
    int b[4] = {1, 1, 5, 40};
    gdn_case(30, 30, 96, 192, b, 4, 0, 2e-5, 601);           /* 7B shapes */
    int c[2] = {1, 2048};
    gdn_case(2, 4, 32, 64, c, 2, 0, 1e-4, 602);              /* long sequence */
    int d[3] = {1, 1, 9};
    gdn_case(30, 30, 96, 192, d, 3, 1, 1e-2, 603);           /* bf16 state */
    int e[3] = {2, 17, 1};
    gdn_case(1, 2, 128, 128, e, 3, 0, 2e-5, 604);            /* Dk = 128 */
    gdn_case(2, 6, 16, 24, e, 3, 0, 2e-5, 605);              /* grouped heads, odd Dv */
}
END_TEST

/* ---- gated RMSNorm ---- */
START_TEST(test_gated_rmsnorm)
{
    /* register forms (2, 8 values a lane) and the strided one (Dv > 256) */
    int Hvs[3] = {4, 30, 3}, Dvs[3] = {64, 192, 300};
    for (int i = 0; i < 3; i++) {
        int T = 9, Hv = Hvs[i], Dv = Dvs[i], VD = Hv * Dv, zs = VD + 11;
        gu_seed(700 + i);
        float *o = F(T * VD), *z = F(T * zs), *w = F(Dv), *ref = F(T * VD);
        uint16_t *got = calloc((size_t)T * VD, 2);
        gu_fill(o, T * VD, -2, 2);
        gu_fill(z, T * zs, -4, 4);
        gu_fill(w, Dv, 0.5f, 1.5f);
        memcpy(ref, o, (size_t)T * VD * 4);
        kern_cpu_gated_rmsnorm(ref, VD, z, zs, w, T, Hv, Dv, 1e-5f);
        float *dO = gu_dev(T * VD * 4), *dz = gu_dev(T * zs * 4), *dw = gu_dev(Dv * 4);
        uint16_t *dout = gu_dev(T * VD * 2);
        gu_up(dO, o, T * VD * 4);
        gu_up(dz, z, T * zs * 4);
        gu_up(dw, w, Dv * 4);
        ck_assert_int_eq(kern_gated_rmsnorm(dO, dz, zs, dw, T, Hv, Dv, 1e-5f, dout, 0), 0);
        gu_sync();
        gu_down(got, dout, T * VD * 2);
        int nan;
        char nm[64];
        snprintf(nm, sizeof nm, "gated_rmsnorm Hv%d Dv%d", Hv, Dv);
        GU_EXPECT(nm, gu_rel_err_bf16(got, ref, T * VD, &nan), nan, 5e-3);
        free(o), free(z), free(w), free(ref), free(got);
        gu_free_all();
    }
}
END_TEST

/* ---- SwiGLU ---- */
START_TEST(test_swiglu)
{
    int T = 7, Fd = 11008;
    gu_seed(800);
    float *gu = F((size_t)T * 2 * Fd), *ref = F((size_t)T * Fd);
    uint16_t *got = calloc((size_t)T * Fd, 2);
    gu_fill(gu, (size_t)T * 2 * Fd, -6, 6);
    for (int t = 0; t < T; t++)
        for (int f = 0; f < Fd; f++) {
            float a = gu[(size_t)t * 2 * Fd + 2 * f], b = gu[(size_t)t * 2 * Fd + 2 * f + 1];
            ref[(size_t)t * Fd + f] = a / (1.0f + expf(-a)) * b;
        }
    float *dg = gu_dev((size_t)T * 2 * Fd * 4);
    uint16_t *dout = gu_dev((size_t)T * Fd * 2);
    gu_up(dg, gu, (size_t)T * 2 * Fd * 4);
    ck_assert_int_eq(kern_swiglu(dg, T, Fd, dout, 0), 0);
    gu_sync();
    gu_down(got, dout, (size_t)T * Fd * 2);
    int nan;
    GU_EXPECT("swiglu interleaved F=11008", gu_rel_err_bf16(got, ref, (size_t)T * Fd, &nan), nan, 5e-3);
    free(gu), free(ref), free(got);
    gu_free_all();
}
END_TEST

/* ---- cuBLASLt GEMMs (7B projection shapes, accumulate, bf16 out) ---- */
START_TEST(test_gemm)
{
    struct cu_gemm g;
    ck_assert_int_eq(cu_gemm_init(&g, (size_t)32 << 20), 0);
    /* N <= KERN_GEMV_MAX_T runs our GEMV (fp32 out), the rest and the bf16
     * outputs cuBLASLt: both paths, odd M (a clamped last row pair), K not a
     * multiple of the GEMV's 1024-element stride, and every T up to 8 */
    int shapes[][3] = {{3840, 1, 3840}, {17340, 7, 3840}, {3840, 5, 11008}, {22016, 3, 3840},
                       {100352, 2, 3840}, {96, 33, 64}, {4099, 8, 5760}, {33, 4, 24},
                       {5, 6, 8}, {3841, 2, 4096}, {17, 9, 64}};
    for (int si = 0; si < 11; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        if (gu_emulated() && M > 8192)
            M = 8191; /* the emulator runs every GEMV lane as a fiber */
        gu_seed(900 + si);
        size_t nw = (size_t)M * K, nx = (size_t)N * K, ny = (size_t)N * M;
        float *w = F(nw), *x = F(nx), *y0 = F(ny), *ref = F(ny), *got = F(ny);
        uint16_t *wb = calloc(nw, 2), *xb = calloc(nx, 2), *yb = calloc(ny, 2);
        gu_fill_bf16(w, wb, nw, -0.05f, 0.05f);
        gu_fill_bf16(x, xb, nx, -1, 1);
        gu_fill(y0, ny, -1, 1);
        kern_cpu_matmul(ref, M, x, K, w, N, K, M, 0);
        uint16_t *dw = gu_dev(nw * 2), *dx = gu_dev(nx * 2), *dyb = gu_dev(ny * 2);
        float *dy = gu_dev(ny * 4);
        gu_up(dw, wb, nw * 2);
        gu_up(dx, xb, nx * 2);
        int nan;
        char nm[96];
        /* both paths where both can run: our GEMV forced for every N up to
         * its cap (the engine's crossover is lower), then cuBLASLt */
        for (int path = 0; path < (N <= KERN_GEMV_MAX_T ? 2 : 1); path++) {
            g.gemv_max_t = path == 0 && N <= KERN_GEMV_MAX_T ? KERN_GEMV_MAX_T : 0;
            const char *via = g.gemv_max_t ? "gemv" : "gemm";
            gu_up(dy, y0, ny * 4); /* any junk: the plain call must overwrite it */
            ck_assert_int_eq(cu_gemm_run(&g, dw, dx, dy, 0, M, N, K, 0, 0), 0);
            gu_sync();
            gu_down(got, dy, ny * 4);
            snprintf(nm, sizeof nm, "%s M=%d N=%d K=%d", via, M, N, K);
            GU_EXPECT(nm, gu_rel_err(got, ref, ny, &nan), nan, 1e-5);
            /* accumulate into an existing Y (fused residual add) */
            gu_up(dy, y0, ny * 4);
            ck_assert_int_eq(cu_gemm_run(&g, dw, dx, dy, 0, M, N, K, 1, 0), 0);
            gu_sync();
            gu_down(got, dy, ny * 4);
            for (size_t i = 0; i < ny; i++)
                ref[i] += y0[i];
            snprintf(nm, sizeof nm, "%s accumulate M=%d N=%d K=%d", via, M, N, K);
            GU_EXPECT(nm, gu_rel_err(got, ref, ny, &nan), nan, 1e-5);
            for (size_t i = 0; i < ny; i++)
                ref[i] -= y0[i];
            /* each GEMV form alone, plain and accumulating (on the emulator
             * only for the smaller weights: it runs every lane as a fiber) */
            int forms = g.gemv_max_t && (!gu_emulated() || (size_t)M * K <= ((size_t)16 << 20));
            for (int form = KERN_GEMV_WARP_ROWS; forms && form <= KERN_GEMV_KSPLIT; form++)
                for (int accu = 0; accu < 2; accu++) {
                    gu_up(dy, y0, ny * 4);
                    ck_assert_int_eq(kern_gemv_form(dw, dx, dy, M, N, K, accu, form, 0), 0);
                    gu_sync();
                    gu_down(got, dy, ny * 4);
                    for (size_t i = 0; accu && i < ny; i++)
                        ref[i] += y0[i];
                    snprintf(nm, sizeof nm, "gemv %s%s M=%d N=%d K=%d",
                             form == KERN_GEMV_KSPLIT ? "k-split" : "warp rows",
                             accu ? " accumulate" : "", M, N, K);
                    GU_EXPECT(nm, gu_rel_err(got, ref, ny, &nan), nan, 1e-5);
                    for (size_t i = 0; accu && i < ny; i++)
                        ref[i] -= y0[i];
                }
        }
        ck_assert_int_eq(cu_gemm_run(&g, dw, dx, dyb, 1, M, N, K, 0, 0), 0);
        gu_sync();
        gu_down(yb, dyb, ny * 2);
        snprintf(nm, sizeof nm, "gemm bf16 out M=%d N=%d K=%d", M, N, K);
        GU_EXPECT(nm, gu_rel_err_bf16(yb, ref, ny, &nan), nan, 5e-3);
        free(w), free(x), free(y0), free(ref), free(got), free(wb), free(xb), free(yb);
        gu_free_all();
    }
    cu_gemm_fini(&g);
}
END_TEST

/* ---- the MLP's gate|up projection with SwiGLU (cu_gemm_swiglu) ---- */
/* Both paths (kern_gemv_swiglu for few tokens, cuBLASLt + kern_swiglu) against
 * the CPU matmul + SwiGLU, and the fused GEMV bit-exact against kern_gemv
 * followed by kern_swiglu. */
START_TEST(test_gemm_swiglu)
{
    struct cu_gemm g;
    ck_assert_int_eq(cu_gemm_init(&g, (size_t)32 << 20), 0);
    int shapes[][3] = {{22016, 1, 3840}, {22016, 2, 3840}, {22016, 8, 3840}, {22016, 5, 3840},
                       {34, 3, 24}, {2, 1, 8}, {66, 9, 64}, {130, 7, 136}};
    for (int si = 0; si < 8; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], Fd = M / 2;
        if (gu_emulated() && M > 8192)
            M = 8190, Fd = M / 2;
        gu_seed(950 + si);
        size_t nw = (size_t)M * K, nx = (size_t)N * K, ny = (size_t)N * M, na = (size_t)N * Fd;
        float *w = F(nw), *x = F(nx), *y = F(ny), *ref = F(na);
        uint16_t *wb = calloc(nw, 2), *xb = calloc(nx, 2), *got = calloc(na, 2),
                 *two = calloc(na, 2);
        gu_fill_bf16(w, wb, nw, -0.05f, 0.05f);
        gu_fill_bf16(x, xb, nx, -1, 1);
        kern_cpu_matmul(y, M, x, K, w, N, K, M, 0);
        for (int t = 0; t < N; t++)
            for (int f = 0; f < Fd; f++) {
                float a = y[(size_t)t * M + 2 * f], b = y[(size_t)t * M + 2 * f + 1];
                ref[(size_t)t * Fd + f] = a / (1.0f + expf(-a)) * b;
            }
        uint16_t *dw = gu_dev(nw * 2), *dx = gu_dev(nx * 2), *dact = gu_dev(na * 2);
        float *dgu = gu_dev(ny * 4);
        gu_up(dw, wb, nw * 2);
        gu_up(dx, xb, nx * 2);
        int nan;
        char nm[96];
        for (int path = 0; path < (N <= KERN_GEMV_MAX_T ? 2 : 1); path++) {
            g.gemv_max_t = path == 0 && N <= KERN_GEMV_MAX_T ? KERN_GEMV_MAX_T : 0;
            ck_assert_int_eq(cu_gemm_swiglu(&g, dw, dx, dgu, dact, M, N, K, 0), 0);
            gu_sync();
            gu_down(got, dact, na * 2);
            snprintf(nm, sizeof nm, "%s swiglu M=%d N=%d K=%d", g.gemv_max_t ? "gemv" : "gemm", M,
                     N, K);
            GU_EXPECT(nm, gu_rel_err_bf16(got, ref, na, &nan), nan, 5e-3);
            if (g.gemv_max_t) { /* the unfused pair gives the same bits */
                ck_assert_int_eq(kern_gemv(dw, dx, dgu, M, N, K, 0, 0), 0);
                ck_assert_int_eq(kern_swiglu(dgu, N, Fd, dact, 0), 0);
                gu_sync();
                gu_down(two, dact, na * 2);
                ck_assert_msg(!memcmp(got, two, na * 2), "gemv swiglu != gemv + swiglu, M=%d N=%d",
                              M, N);
            }
        }
        ck_assert_int_eq(cu_gemm_swiglu(&g, dw, dx, dgu, dact, M + 1, N, K, 0), -EINVAL);
        free(w), free(x), free(y), free(ref), free(wb), free(xb), free(got), free(two);
        gu_free_all();
    }
    cu_gemm_fini(&g);
}
END_TEST

/* ---- fp32 -> bf16 cast and the random fills ---- */
START_TEST(test_cast_fill)
{
    size_t n = 100003;
    gu_seed(1000);
    float *x = F(n), *ref = F(n);
    uint16_t *got = calloc(n, 2);
    gu_fill(x, n, -100, 100);
    for (size_t i = 0; i < n; i++)
        ref[i] = x[i];
    float *dx = gu_dev(n * 4);
    uint16_t *dout = gu_dev(n * 2);
    gu_up(dx, x, n * 4);
    ck_assert_int_eq(kern_f32_to_bf16(dx, n, dout, 0), 0);
    gu_sync();
    gu_down(got, dout, n * 2);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == gu_to_bf16(x[i]), "cast %zu", i);
    ck_assert_int_eq(kern_fill_uniform_f32(dx, n, 7, -2, 3, 0), 0);
    gu_sync();
    gu_down(ref, dx, n * 4);
    double mean = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(ref[i] >= -2 && ref[i] < 3);
        mean += ref[i];
    }
    mean /= n;
    ck_assert_msg(fabs(mean - 0.5) < 0.05, "fill mean %f", mean);
    printf("  cast exact, fill mean %.4f (expect 0.5)\n", mean);
    free(x), free(ref), free(got);
    gu_free_all();
}
END_TEST

Suite *gpu_kernels_suite(void)
{
    Suite *s = suite_create("gpu_kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_embed);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_conv1d);
    tcase_add_test(tc, test_gdn_gate);
    tcase_add_test(tc, test_gdn_prep);
    tcase_add_test(tc, test_gdn_recurrent);
    tcase_add_test(tc, test_gated_rmsnorm);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_gemm_swiglu);
    tcase_add_test(tc, test_gemm);
    tcase_add_test(tc, test_cast_fill);
    suite_add_tcase(s, tc);
    return s;
}
