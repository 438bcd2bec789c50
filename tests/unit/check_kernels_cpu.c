/* tests/unit/check_kernels_cpu.c: each CPU reference op on fresh random
 * inputs against the plain formula (written here in double, the slow obvious
 * way), plus the properties the engine relies on: a GEMM row is bit-identical
 * alone or in a batch, the conv and the recurrence carry their state exactly
 * across calls, paged attention equals contiguous attention.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/act.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/conv1d.h"
#include "kernels/cpu/gated_rmsnorm.h"
#include "kernels/cpu/gdn_gate.h"
#include "kernels/cpu/gdn_recurrent.h"
#include "kernels/cpu/l2norm.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23))) - 1.0f;
}
static float *randv(size_t n, float scale)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
    return p;
}
static void close_to(const float *got, const double *want, size_t n, double atol, double rtol,
                     const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        ck_assert_msg(d <= atol + rtol * fabs(want[i]), "%s[%zu]: %.9g, expected %.9g", what, i,
                      got[i], want[i]);
    }
}

/* ------------------------------------------------------------------ matmul */

START_TEST(test_matmul)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 64, 33}, {9, 130, 257}, {40, 96, 100}};
    int T = shapes[_i][0], N = shapes[_i][1], O = shapes[_i][2];
    int ldx = N + 3, ldy = O + 2; /* strided rows */
    float *x = randv((size_t)T * ldx, 1), *w = randv((size_t)O * N, 1), *y = randv((size_t)T * ldy, 9);
    double *ref = malloc(sizeof(double) * (size_t)T * O);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < O; o++) {
            double s = 0;
            for (int i = 0; i < N; i++) s += (double)x[t * ldx + i] * w[o * N + i];
            ref[t * O + o] = s;
        }
    kern_cpu_matmul(y, ldy, x, ldx, w, T, N, O, 0);
    float *yc = malloc(sizeof(float) * (size_t)T * O);
    for (int t = 0; t < T; t++) memcpy(yc + t * O, y + t * ldy, sizeof(float) * O);
    close_to(yc, ref, (size_t)T * O, 1e-5 * sqrt(N), 1e-5, "matmul");
    /* each row alone, and with 1 thread, is bit-identical to the batch */
    float *one = malloc(sizeof(float) * O);
    for (int t = 0; t < T; t++) {
        kern_cpu_matmul(one, O, x + t * ldx, ldx, w, 1, N, O, 1);
        ck_assert_msg(memcmp(one, y + t * ldy, sizeof(float) * O) == 0, "row %d differs alone", t);
    }
    free(x), free(w), free(y), free(ref), free(yc), free(one);
}
END_TEST

/* ----------------------------------------------------------- norms, acts */

START_TEST(test_rmsnorm_l2norm_gated)
{
    int T = 5, n = 37;
    float *x = randv((size_t)T * n, 3), *w = randv(n, 1), *y = malloc(sizeof(float) * T * n);
    double *ref = malloc(sizeof(double) * T * n);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[t * n + i] * x[t * n + i];
        for (int i = 0; i < n; i++) ref[t * n + i] = w[i] * x[t * n + i] / sqrt(ss / n + 1e-6);
    }
    kern_cpu_rmsnorm(y, x, n, w, T, n, 1e-6f);
    close_to(y, ref, (size_t)T * n, 1e-6, 1e-5, "rmsnorm");
    kern_cpu_rmsnorm(x, x, n, w, T, n, 1e-6f); /* in place */
    ck_assert(memcmp(x, y, sizeof(float) * T * n) == 0);

    /* l2norm with eps inside the sqrt, then scale */
    float *v = randv(4 * 12, 2);
    double want[48];
    for (int j = 0; j < 4; j++) {
        double ss = 0;
        for (int i = 0; i < 12; i++) ss += (double)v[j * 12 + i] * v[j * 12 + i];
        for (int i = 0; i < 12; i++) want[j * 12 + i] = v[j * 12 + i] / sqrt(ss + 1e-6) * 0.25;
    }
    kern_cpu_l2norm(v, 4, 12, 1e-6f, 0.25f);
    close_to(v, want, 48, 1e-7, 1e-5, "l2norm");
    /* a zero vector stays finite (eps) */
    float z[8] = {0};
    kern_cpu_l2norm(z, 1, 8, 1e-6f, 1.0f);
    for (int i = 0; i < 8; i++) ck_assert(z[i] == 0.0f);

    /* gated: per head norm (eps 1e-5) with the shared weight, then silu(z) */
    int H = 3, Dv = 10;
    float *o = randv((size_t)T * H * Dv, 2), *g = randv((size_t)T * H * Dv, 4), *wo = randv(Dv, 1);
    double *go = malloc(sizeof(double) * T * H * Dv);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *oh = o + (t * H + h) * Dv;
            double ss = 0;
            for (int i = 0; i < Dv; i++) ss += (double)oh[i] * oh[i];
            for (int i = 0; i < Dv; i++) {
                double zz = g[(t * H + h) * Dv + i];
                go[(t * H + h) * Dv + i] = wo[i] * oh[i] / sqrt(ss / Dv + 1e-5) * zz / (1 + exp(-zz));
            }
        }
    kern_cpu_gated_rmsnorm(o, H * Dv, g, H * Dv, wo, T, H, Dv, 1e-5f);
    close_to(o, go, (size_t)T * H * Dv, 1e-6, 1e-5, "gated_rmsnorm");

    /* swiglu */
    float a[6] = {-30, -1, 0, 0.5f, 3, 25}, b[6] = {1, 2, 3, 4, 5, 6}, out[6];
    double sw[6];
    for (int i = 0; i < 6; i++) sw[i] = a[i] / (1 + exp(-(double)a[i])) * b[i];
    kern_cpu_swiglu(out, a, b, 6);
    close_to(out, sw, 6, 1e-7, 1e-6, "swiglu");
    free(x), free(w), free(y), free(ref), free(v), free(o), free(g), free(wo), free(go);
}
END_TEST

START_TEST(test_gdn_gate)
{
    enum { T = 3, Hv = 4 };
    float a[T * 6], b[T * 6], A_log[Hv] = {0.1f, 1.0f, 2.0f, 2.7f}, dt[Hv] = {-3, -1, 0.5f, 21};
    for (int i = 0; i < T * 6; i++) a[i] = 8 * frand(), b[i] = 6 * frand();
    a[0] = 30; /* a + dt_bias > 20: softplus is the identity there */
    float g[T * Hv], beta[T * Hv];
    for (int neg = 0; neg < 2; neg++) {
        kern_cpu_gdn_gate(g, beta, a, b, 6, A_log, dt, neg, T, Hv);
        double wg[T * Hv], wb[T * Hv];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < Hv; h++) {
                double x = (double)a[t * 6 + h] + dt[h];
                double sp = x > 20 ? x : log1p(exp(x));
                wg[t * Hv + h] = -exp((double)A_log[h]) * sp;
                wb[t * Hv + h] = (neg ? 2.0 : 1.0) / (1 + exp(-(double)b[t * 6 + h]));
            }
        close_to(g, wg, T * Hv, 1e-6, 1e-5, "g");
        close_to(beta, wb, T * Hv, 1e-7, 1e-6, "beta");
        for (int i = 0; i < T * Hv; i++) ck_assert(g[i] <= 0);
    }
}
END_TEST

/* ------------------------------------------------------------------ conv1d */

START_TEST(test_conv1d_state)
{
    int T = 9, CD = 11, K = 4;
    float *u = randv((size_t)T * CD, 2), *w = randv((size_t)CD * K, 1);
    double *want = malloc(sizeof(double) * T * CD);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < CD; c++) {
            double s = 0;
            for (int j = 0; j < K; j++) {
                int src = t - (K - 1) + j;
                if (src >= 0) s += (double)w[c * K + j] * u[src * CD + c];
            }
            want[t * CD + c] = s / (1 + exp(-s));
        }
    /* one shot from a zero state */
    float *st = calloc((size_t)(K - 1) * CD, sizeof(float)), *out = malloc(sizeof(float) * T * CD);
    kern_cpu_conv1d_silu(out, CD, u, CD, st, w, T, CD, K);
    close_to(out, want, (size_t)T * CD, 1e-6, 1e-5, "conv one shot");
    for (int r = 0; r < K - 1; r++) /* state = last K-1 inputs */
        ck_assert(memcmp(st + r * CD, u + (T - (K - 1) + r) * CD, sizeof(float) * CD) == 0);
    /* in pieces of 1, 2 (shorter than K-1), then the rest: identical */
    static const int cuts[] = {1, 2, 1, 5};
    float *st2 = calloc((size_t)(K - 1) * CD, sizeof(float)), *out2 = malloc(sizeof(float) * T * CD);
    for (int i = 0, t0 = 0; i < 4; t0 += cuts[i], i++)
        kern_cpu_conv1d_silu(out2 + t0 * CD, CD, u + t0 * CD, CD, st2, w, cuts[i], CD, K);
    ck_assert(memcmp(out, out2, sizeof(float) * T * CD) == 0);
    ck_assert(memcmp(st, st2, sizeof(float) * (K - 1) * CD) == 0);
    free(u), free(w), free(want), free(st), free(out), free(st2), free(out2);
}
END_TEST

/* ------------------------------------------------------------- recurrence */

START_TEST(test_gdn_recurrent)
{
    int T = 13, Hk = 2, Hv = 4, Dk = 6, Dv = 5;
    int ldq = Hk * Dk, ldv = Hv * Dv;
    float *q = randv((size_t)T * ldq, 0.5f), *k = randv((size_t)T * ldq, 0.5f), *v = randv((size_t)T * ldv, 1);
    float *g = malloc(sizeof(float) * T * Hv), *beta = malloc(sizeof(float) * T * Hv);
    for (int i = 0; i < T * Hv; i++) g[i] = -fabsf(frand()) * 2, beta[i] = 1 + frand();
    size_t ss = (size_t)Hv * Dk * Dv;
    float *S0 = randv(ss, 0.3f), *S = malloc(sizeof(float) * ss), *o = malloc(sizeof(float) * T * ldv);
    memcpy(S, S0, sizeof(float) * ss);
    /* the formula in double, state (Dk x Dv) per value head */
    double *Sd = malloc(sizeof(double) * ss), *od = malloc(sizeof(double) * T * ldv);
    for (size_t i = 0; i < ss; i++) Sd[i] = S0[i];
    for (int t = 0; t < T; t++)
        for (int h = 0; h < Hv; h++) {
            int kh = h / (Hv / Hk);
            double *Sh = Sd + (size_t)h * Dk * Dv, dl[16];
            const float *qt = q + t * ldq + kh * Dk, *kt = k + t * ldq + kh * Dk, *vt = v + t * ldv + h * Dv;
            double dec = exp((double)g[t * Hv + h]);
            for (int i = 0; i < Dk * Dv; i++) Sh[i] *= dec;
            for (int j = 0; j < Dv; j++) {
                double m = 0;
                for (int i = 0; i < Dk; i++) m += Sh[i * Dv + j] * kt[i];
                dl[j] = beta[t * Hv + h] * (vt[j] - m);
            }
            for (int i = 0; i < Dk; i++)
                for (int j = 0; j < Dv; j++) Sh[i * Dv + j] += kt[i] * dl[j];
            for (int j = 0; j < Dv; j++) {
                double s = 0;
                for (int i = 0; i < Dk; i++) s += Sh[i * Dv + j] * qt[i];
                od[t * ldv + h * Dv + j] = s;
            }
        }
    float *snaps[13];
    float *snapbuf = malloc(sizeof(float) * ss * T);
    for (int t = 0; t < T; t++) snaps[t] = snapbuf + ss * t;
    kern_cpu_gdn_recurrent(o, ldv, q, ldq, k, ldq, v, ldv, g, beta, S, T, Hk, Hv, Dk, Dv, snaps);
    close_to(o, od, (size_t)T * ldv, 1e-5, 1e-4, "gdn o");
    close_to(S, Sd, ss, 1e-5, 1e-4, "gdn state");
    ck_assert(memcmp(snaps[T - 1], S, sizeof(float) * ss) == 0);
    /* token by token from the same start: bit-identical, and snapshot t is
     * the state after token t */
    float *S2 = malloc(sizeof(float) * ss), *o2 = malloc(sizeof(float) * T * ldv);
    memcpy(S2, S0, sizeof(float) * ss);
    for (int t = 0; t < T; t++) {
        kern_cpu_gdn_recurrent(o2 + t * ldv, ldv, q + t * ldq, ldq, k + t * ldq, ldq, v + t * ldv, ldv,
                               g + t * Hv, beta + t * Hv, S2, 1, Hk, Hv, Dk, Dv, NULL);
        ck_assert(memcmp(S2, snaps[t], sizeof(float) * ss) == 0);
    }
    ck_assert(memcmp(o, o2, sizeof(float) * T * ldv) == 0);
    free(q), free(k), free(v), free(g), free(beta), free(S0), free(S), free(o), free(Sd), free(od);
    free(snapbuf), free(S2), free(o2);
}
END_TEST

/* --------------------------------------------------------------- attention */

START_TEST(test_paged_attention)
{
    int Hq = 6, Hkv = 2, D = 8, bs = 4, nblk = 16, cache = 9, n = 7, ctx = cache + n;
    int ld = Hq * D, ldk = Hkv * D;
    float *K = randv((size_t)ctx * ldk, 1), *Vv = randv((size_t)ctx * ldk, 1), *q = randv((size_t)n * ld, 1);
    float *kp = calloc((size_t)nblk * bs * ldk, sizeof(float)), *vp = calloc((size_t)nblk * bs * ldk, sizeof(float));
    int32_t bt[4] = {11, 2, 7, 0}; /* scattered blocks */
    kern_cpu_kv_write(kp, vp, K, ldk, Vv, ldk, bt, bs, Hkv, D, 0, cache);          /* history */
    kern_cpu_kv_write(kp, vp, K + cache * ldk, ldk, Vv + cache * ldk, ldk, bt, bs, Hkv, D, cache, n);
    float *out = malloc(sizeof(float) * n * ld);
    float scale = 1.0f / sqrtf((float)D);
    ck_assert_int_eq(kern_cpu_attention(out, ld, q, ld, kp, vp, bt, bs, Hq, Hkv, D, cache, n, scale), 0);
    double *want = malloc(sizeof(double) * n * ld);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < Hq; h++) {
            int kvh = h / (Hq / Hkv), c = cache + i + 1;
            double sc[32], mx = -INFINITY, sum = 0;
            for (int j = 0; j < c; j++) {
                double s = 0;
                for (int d = 0; d < D; d++) s += (double)q[i * ld + h * D + d] * K[j * ldk + kvh * D + d];
                sc[j] = s * scale;
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int j = 0; j < c; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int d = 0; d < D; d++) {
                double o = 0;
                for (int j = 0; j < c; j++) o += sc[j] / sum * Vv[j * ldk + kvh * D + d];
                want[i * ld + h * D + d] = o;
            }
        }
    close_to(out, want, (size_t)n * ld, 1e-6, 1e-5, "attention");
    free(K), free(Vv), free(q), free(kp), free(vp), free(out), free(want);
}
END_TEST

/* -------------------------------------------------------------------- rope */

START_TEST(test_rope)
{
    struct cfg_rope r = {.mode = CFG_ROPE_DEFAULT, .theta = 10000, .factor = 1};
    int D = 16, H = 3, T = 4;
    float inv[8], sc;
    ck_assert_int_eq(kern_cpu_rope_freqs(&r, D, 4096, 0, inv, &sc), 0);
    for (int i = 0; i < D / 2; i++) ck_assert(fabs(inv[i] - pow(10000.0, -2.0 * i / D)) < 1e-6 * inv[i] + 1e-12);
    ck_assert(sc == 1.0f);
    int32_t pos[4] = {0, 1, 17, 1000};
    float *x = randv((size_t)T * H * D, 1), *x0 = malloc(sizeof(float) * T * H * D);
    memcpy(x0, x, sizeof(float) * T * H * D);
    kern_cpu_rope_apply(x, H * D, H, D, T, pos, inv, 1.0f);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < D / 2; i++) {
                const float *a = x0 + (t * H + h) * D;
                double ang = (double)(float)((float)pos[t] * inv[i]);
                double w1 = a[i] * cos(ang) - a[i + D / 2] * sin(ang);
                double w2 = a[i + D / 2] * cos(ang) + a[i] * sin(ang);
                ck_assert(fabs(x[(t * H + h) * D + i] - w1) < 1e-5);
                ck_assert(fabs(x[(t * H + h) * D + i + D / 2] - w2) < 1e-5);
            }
    /* position 0 is the identity */
    ck_assert(memcmp(x, x0, sizeof(float) * H * D) == 0);
    /* linear: frequencies divided by the factor */
    struct cfg_rope lin = r;
    lin.mode = CFG_ROPE_LINEAR;
    lin.factor = 4;
    float inv2[8];
    kern_cpu_rope_freqs(&lin, D, 4096, 0, inv2, &sc);
    for (int i = 0; i < D / 2; i++) ck_assert(inv2[i] == inv[i] / 4.0f);
    /* dynamic: plain below max_position_embeddings, lower frequencies past it */
    struct cfg_rope dyn = r;
    dyn.mode = CFG_ROPE_DYNAMIC;
    dyn.factor = 2;
    kern_cpu_rope_freqs(&dyn, D, 64, 10, inv2, &sc);
    ck_assert(memcmp(inv, inv2, sizeof inv) == 0);
    kern_cpu_rope_freqs(&dyn, D, 64, 500, inv2, &sc);
    ck_assert(inv2[0] == 1.0f && inv2[D / 2 - 1] < inv[D / 2 - 1]);
    /* NoPE and odd head dims have no frequencies */
    struct cfg_rope none = {.mode = CFG_ROPE_NONE};
    ck_assert_int_eq(kern_cpu_rope_freqs(&none, D, 64, 0, inv2, &sc), -1);
    ck_assert_int_eq(kern_cpu_rope_freqs(&r, 7, 64, 0, inv2, &sc), -1);
    free(x), free(x0);
}
END_TEST

Suite *kernels_cpu_suite(void)
{
    Suite *s = suite_create("kernels_cpu");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_matmul, 0, 5);
    tcase_add_test(tc, test_rmsnorm_l2norm_gated);
    tcase_add_test(tc, test_gdn_gate);
    tcase_add_test(tc, test_conv1d_state);
    tcase_add_test(tc, test_gdn_recurrent);
    tcase_add_test(tc, test_paged_attention);
    tcase_add_test(tc, test_rope);
    suite_add_tcase(s, tc);
    return s;
}
