/* server/bench.c: `deltaserve bench`: end-to-end and per-kernel timings of
 * the CUDA backend at the released OLMo-Hybrid-7B shapes, with random bf16
 * weights generated on the GPU (no download), next to ceilings measured in
 * the same run (device-to-device copy bandwidth, cuBLASLt bf16 GEMM rate).
 *
 *   decode: B sequences (B in --decode-batches, default 1,8,64,256) each with
 *     --context cached tokens (default 1024; KV and state filled with random
 *     data), one new token each per step; tok/s = B / median step time. The
 *     step time is host wall clock around eng_forward: metadata upload, the
 *     forward (CUDA-graph replay), logits copy-back and sync.
 *   prefill: 1 x 8192 and 16 x 512 tokens from empty state; tok/s = tokens /
 *     median step time (logits of each sequence's last token).
 *   kernels: GDN recurrent decode (state TB/s), GDN prefill (ns/token/layer),
 *     attention decode, and the fused projection GEMMs, timed with CUDA
 *     events over repeated launches.
 * Output: a human table on stdout; --json FILE writes one JSON object per
 * measurement line (for docs/benchmarks.md).
 *
 * Threads: main thread only.
 */
#include "server/bench.h"
#include "server/bench_common.h"
#include "server/bench_spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DS_HAVE_CUDA
int bench_main(int argc, char **argv)
{
    if (argc > 0 && !strcmp(argv[0], "--spec")) return bench_spec_main(argc - 1, argv + 1); /* CPU part runs */
    fprintf(stderr, "deltaserve bench: this build has no CUDA backend (nvcc was absent)\n");
    return 2;
}
#else
#include <math.h>
#include <time.h>

#include "engine/cuda/cuda_internal.h"
#include "engine/engine.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cast.h"
#include "kernels/cuda/gdn_chunk.h"
#include "kernels/cuda/gdn_recurrent.h"
#include "kernels/cuda/gemv.h"

static FILE *g_json;

static void emit(const char *what, const char *shape, double value, const char *unit,
                 const char *note)
{
    printf("  %-34s %-22s %12.3f %-8s %s\n", what, shape, value, unit, note ? note : "");
    if (g_json)
        fprintf(g_json, "{\"what\":\"%s\",\"shape\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}\n",
                what, shape, value, unit);
    fflush(stdout);
}

/* ---- ceilings ---- */
static int ceilings(struct cu_impl *m)
{
    size_t bytes = (size_t)2 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
        cudaFree(a);
        return -ENOMEM;
    }
    kern_fill_uniform_f32(a, bytes / 4, 1, -1, 1, m->stream);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    double t[10];
    for (int i = 0; i < 12; i++) {
        cudaEventRecord(e0, m->stream);
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, m->stream);
        cudaEventRecord(e1, m->stream);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        if (i >= 2)
            t[i - 2] = ms;
    }
    double ms = bench_median(t, 10);
    emit("ceiling: D2D copy (read+write)", "2 GiB", 2.0 * bytes / (ms * 1e-3) / 1e12, "TB/s",
         NULL);
    cudaFree(a);
    cudaFree(b);
    /* bf16 GEMM 8192^3 on random data */
    int n = 8192;
    uint16_t *A = NULL, *B = NULL, *C = NULL;
    if (cudaMalloc((void **)&A, (size_t)n * n * 2) || cudaMalloc((void **)&B, (size_t)n * n * 2) ||
        cudaMalloc((void **)&C, (size_t)n * n * 2))
        return -ENOMEM;
    kern_fill_uniform_bf16(A, (size_t)n * n, 2, -1, 1, m->stream);
    kern_fill_uniform_bf16(B, (size_t)n * n, 3, -1, 1, m->stream);
    for (int i = 0; i < 12; i++) {
        cudaEventRecord(e0, m->stream);
        if (cu_gemm_run(&m->gemm, A, B, C, 1, n, n, n, 0, m->stream))
            return -EIO;
        cudaEventRecord(e1, m->stream);
        cudaEventSynchronize(e1);
        float f;
        cudaEventElapsedTime(&f, e0, e1);
        if (i >= 2)
            t[i - 2] = f;
    }
    ms = bench_median(t, 10);
    emit("ceiling: bf16 GEMM (cuBLASLt)", "8192^3", 2.0 * n * n * (double)n / (ms * 1e-3) / 1e12,
         "TFLOP/s", NULL);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return 0;
}

/* ---- end to end ---- */
struct bench_ctx {
    struct engine *e;
    struct cfg_model *c;
    int mb;        /* block-table width */
    int32_t *bt;   /* [nslots * mb] */
    float *logits; /* host */
};

static double run_step(struct bench_ctx *b, int N, const int *cache, const int *nnew, int ndec)
{
    size_t T = 0, n = N > 0 ? (size_t)N : 1;
    for (int i = 0; i < N; i++)
        T += (size_t)nnew[i];
    int32_t *tok = malloc(T * 4 + 4), *pos = malloc(T * 4 + 4), *qs = malloc((n + 1) * 4),
            *cl = malloc(n * 4), *sl = malloc(n * 4), *rows = malloc(n * 4);
    int t = 0;
    for (int i = 0; i < N; i++) {
        qs[i] = t;
        cl[i] = cache[i];
        sl[i] = i;
        for (int j = 0; j < nnew[i]; j++, t++) {
            tok[t] = (int32_t)((t * 7919u + i * 104729u) % 100000u);
            pos[t] = cache[i] + j;
        }
        rows[i] = t - 1;
    }
    qs[N] = T;
    struct eng_batch bt = {.num_seqs = N, .num_tokens = T, .num_decode = ndec, .tokens = tok,
                           .positions = pos, .query_start = qs, .cache_len = cl,
                           .state_slot = sl, .block_table = b->bt, .max_blocks = b->mb,
                           .logits_rows = rows, .num_logits = N};
    double t0 = bench_now_s();
    int rc = eng_forward(b->e, &bt, b->logits);
    double dt = bench_now_s() - t0;
    free(tok), free(pos), free(qs), free(cl), free(sl), free(rows);
    return rc ? -1.0 : dt;
}

static int bench_decode(struct bench_ctx *b, int B, int ctx, int iters)
{
    int *cache = malloc(B * sizeof *cache), *one = malloc(B * sizeof *one);
    double *t = malloc(iters * sizeof *t);
    for (int i = 0; i < B; i++)
        cache[i] = ctx, one[i] = 1;
    for (int w = 0; w < 3; w++) { /* warm-up: plans, graph capture */
        if (run_step(b, B, cache, one, B) < 0)
            return -EIO;
        for (int i = 0; i < B; i++)
            cache[i]++;
    }
    for (int k = 0; k < iters; k++) {
        t[k] = run_step(b, B, cache, one, B);
        if (t[k] < 0)
            return -EIO;
        for (int i = 0; i < B; i++)
            cache[i]++;
    }
    double med = bench_median(t, iters);
    char shape[64], note[64];
    snprintf(shape, sizeof shape, "B=%d ctx=%d", B, ctx);
    snprintf(note, sizeof note, "(step %.3f ms)", med * 1e3);
    emit("decode", shape, B / med, "tok/s", note);
    free(cache), free(one), free(t);
    return 0;
}

/* Where a decode step's GPU time goes: one eager step of B decodes queued
 * behind a 30 ms spin (so the GPU runs its kernels back to back, as in a
 * graph replay), an event after every op (cu_prof in cuda_internal.h); op
 * time = time since the previous op's event, summed per op name. */
static int bench_decode_profile(struct bench_ctx *b, struct cu_impl *m, int B, int ctx)
{
    struct cu_prof *p = &m->prof;
    for (int i = 0; i < CU_PROF_MAX; i++)
        if (cudaEventCreate(&p->ev[i]) != cudaSuccess)
            return -EIO;
    int *cache = malloc(B * sizeof *cache), *one = malloc(B * sizeof *one);
    for (int i = 0; i < B; i++)
        cache[i] = ctx, one[i] = 1;
    int rc = run_step(b, B, cache, one, B) < 0 ? -EIO : 0; /* warm: plans */
    for (int i = 0; i < B; i++)
        cache[i]++;
    p->on = 1;
    p->n = 0;
    if (!rc && kern_spin_us(30000, m->stream))
        rc = -EIO;
    if (!rc && run_step(b, B, cache, one, B) < 0)
        rc = -EIO;
    p->on = 0;
    if (!rc && p->n < 2)
        rc = -EIO;
    struct op_sum {
        const char *what;
        int calls;
        float us;
    } agg[48];
    int na = 0;
    float total = 0;
    for (int k = 1; k < p->n && !rc; k++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, p->ev[k - 1], p->ev[k]) != cudaSuccess) {
            rc = -EIO;
            break;
        }
        int a = 0;
        while (a < na && strcmp(agg[a].what, p->what[k]))
            a++;
        if (a == na && na < 48)
            agg[na++] = (struct op_sum){p->what[k], 0, 0};
        if (a < na)
            agg[a].calls++, agg[a].us += ms * 1e3f;
        total += ms * 1e3f;
    }
    for (int a = 0; a < na && !rc; a++) {
        char shape[64], note[64];
        snprintf(shape, sizeof shape, "B=%d %s", B, agg[a].what);
        snprintf(note, sizeof note, "(%d calls, %.1f%% of %.0f us)", agg[a].calls,
                 100.0 * agg[a].us / total, total);
        emit("decode step op", shape, agg[a].us, "us", note);
    }
    if (rc)
        fprintf(stderr, "bench: decode profile B=%d failed\n", B);
    for (int i = 0; i < CU_PROF_MAX; i++)
        cudaEventDestroy(p->ev[i]);
    p->n = 0;
    free(cache), free(one);
    return rc;
}

static int bench_prefill(struct bench_ctx *b, int N, int L, int reps)
{
    int *cache = calloc(N, sizeof *cache), *n = malloc(N * sizeof *n);
    double t[8];
    for (int i = 0; i < N; i++)
        n[i] = L;
    if (run_step(b, N, cache, n, 0) < 0) /* warm-up */
        return -EIO;
    for (int k = 0; k < reps; k++)
        if ((t[k] = run_step(b, N, cache, n, 0)) < 0)
            return -EIO;
    double med = bench_median(t, reps);
    char shape[64], note[64];
    snprintf(shape, sizeof shape, "%dx%d", N, L);
    snprintf(note, sizeof note, "(step %.2f ms)", med * 1e3);
    emit("prefill", shape, (double)N * L / med, "tok/s", note);
    free(cache), free(n);
    return 0;
}

/* ---- per kernel ---- */
/* Mean ms of reps calls of fn after one warm-up call, or -1 (and the CUDA
 * error printed) when a call fails or the device reports an error: a failed
 * kernel must never be timed as if it ran. */
static double ev_time(cudaStream_t s, int reps, int (*fn)(void *), void *arg)
{
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    int rc = fn(arg);
    cudaEventRecord(e0, s);
    for (int i = 0; i < reps && !rc; i++)
        rc = fn(arg);
    cudaEventRecord(e1, s);
    cudaError_t ce = cudaEventSynchronize(e1);
    float ms = 0;
    if (ce == cudaSuccess)
        ce = cudaEventElapsedTime(&ms, e0, e1);
    if (ce == cudaSuccess)
        ce = cudaGetLastError();
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (rc || ce != cudaSuccess) {
        fprintf(stderr, "bench: timed call failed: rc %d, %s\n", rc, cudaGetErrorString(ce));
        return -1.0;
    }
    return ms / reps;
}

struct gdn_arg {
    float *y, *g, *beta, *o;
    int32_t *qs, *slot, *hi;
    void *state;
    int N, bf16;
    size_t se;
    cudaStream_t s;
};

static int gdn_fn(void *p)
{
    struct gdn_arg *a = p;
    return kern_gdn_recurrent(a->y, a->g, a->beta, a->N, a->qs, a->slot, a->hi, 30, 30, 96, 192,
                              0.10206f, a->state, a->bf16, a->se, a->o, a->s);
}

static int bench_gdn(struct cu_impl *m, int N, int L, int bf16)
{
    int T = N * L, CD = 11520;
    size_t se = (size_t)30 * 96 * 192, esz = bf16 ? 2 : 4;
    struct gdn_arg a = {.N = N, .bf16 = bf16, .se = se, .s = m->stream};
    int32_t *h = malloc((N + 1) * 4 * 3);
    for (int i = 0; i <= N; i++) {
        h[i] = i * L;
        h[N + 1 + i] = i;
        h[2 * (N + 1) + i] = 1;
    }
    if (cudaMalloc((void **)&a.y, (size_t)T * CD * 4) || cudaMalloc((void **)&a.g, T * 30 * 4) ||
        cudaMalloc((void **)&a.beta, T * 30 * 4) || cudaMalloc((void **)&a.o, (size_t)T * 5760 * 4) ||
        cudaMalloc((void **)&a.qs, (N + 1) * 4 * 3) || cudaMalloc(&a.state, N * se * esz))
        return -ENOMEM;
    a.slot = a.qs + N + 1;
    a.hi = a.qs + 2 * (N + 1);
    cudaMemcpy(a.qs, h, (N + 1) * 4 * 3, cudaMemcpyHostToDevice);
    kern_fill_uniform_f32(a.y, (size_t)T * CD, 5, -1, 1, m->stream);
    kern_fill_uniform_f32(a.g, T * 30, 6, -0.5f, -0.01f, m->stream);
    kern_fill_uniform_f32(a.beta, T * 30, 7, 0.1f, 1.9f, m->stream);
    if (bf16)
        kern_fill_uniform_bf16(a.state, N * se, 8, -0.1f, 0.1f, m->stream);
    else
        kern_fill_uniform_f32(a.state, N * se, 8, -0.1f, 0.1f, m->stream);
    double ms = ev_time(m->stream, L == 1 ? 50 : 3, gdn_fn, &a);
    if (ms < 0)
        return -EIO;
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d%s", N, L, bf16 ? " bf16 state" : "");
    if (L == 1) {
        double bytes = 2.0 * N * se * esz;
        char note[64];
        snprintf(note, sizeof note, "(%.1f us/layer)", ms * 1e3);
        emit("kernel: GDN decode state traffic", shape, bytes / (ms * 1e-3) / 1e12, "TB/s", note);
    } else {
        emit("kernel: GDN prefill (recurrent)", shape, ms * 1e6 / T, "ns/tok", "(per layer)");
    }
    cudaFree(a.y), cudaFree(a.g), cudaFree(a.beta), cudaFree(a.o), cudaFree(a.qs),
        cudaFree(a.state);
    free(h);
    return 0;
}

struct gdn_chunk_arg {
    float *y, *g, *beta, *o;
    int32_t *plan, *slot, *hi;
    void *state, *work;
    size_t wb, se;
    int N, nc, flags;
    cudaStream_t s;
};

static int gdn_chunk_fn(void *p)
{
    struct gdn_chunk_arg *a = p;
    return kern_gdn_chunk_ex(a->y, a->g, a->beta, a->N, a->plan, a->nc, a->slot, a->hi, 30, 30,
                             96, 192, 0.10206f, a->state, 0, a->se, a->o, a->work, a->wb, a->s,
                             a->flags);
}

/* The chunked prefill kernel (kernels/cuda/gdn_chunk.h) at the 7B GDN shapes,
 * N sequences of L tokens, initial state from fp32 slots: the auto choice
 * (what the engine runs), then each stage alone and each variant's total
 * (kern_gdn_chunk_ex flags), so the split rule can be tuned. A stage alone
 * reuses the workspace the previous rows left (same inputs); the state slots
 * are updated in place by every scan run, as in the engine. */
static int bench_gdn_chunk(struct cu_impl *m, int N, int L)
{
    int T = N * L, CD = 11520;
    size_t se = (size_t)30 * 96 * 192;
    int32_t *qs = malloc((N + 1) * 4);
    for (int i = 0; i <= N; i++)
        qs[i] = i * L;
    struct gdn_chunk_arg a = {.N = N, .se = se, .s = m->stream};
    int nmax = kern_gdn_chunk_count_max(T, N);
    size_t pn = kern_gdn_chunk_plan_ints(N, nmax);
    int32_t *h = malloc((pn + 2 * (size_t)N) * 4);
    a.nc = kern_gdn_chunk_plan(qs, N, h);
    for (int i = 0; i < N; i++) {
        h[pn + i] = i;
        h[pn + N + i] = 1;
    }
    a.wb = kern_gdn_chunk_split_work_bytes(a.nc, 30, 96, 192); /* both variants */
    if (cudaMalloc((void **)&a.y, (size_t)T * CD * 4) || cudaMalloc((void **)&a.g, T * 30 * 4) ||
        cudaMalloc((void **)&a.beta, T * 30 * 4) || cudaMalloc((void **)&a.o, (size_t)T * 5760 * 4) ||
        cudaMalloc((void **)&a.plan, (pn + 2 * (size_t)N) * 4) ||
        cudaMalloc(&a.state, N * se * 4) || cudaMalloc(&a.work, a.wb))
        return -ENOMEM;
    a.slot = a.plan + pn;
    a.hi = a.plan + pn + N;
    cudaMemcpy(a.plan, h, (pn + 2 * (size_t)N) * 4, cudaMemcpyHostToDevice);
    kern_fill_uniform_f32(a.y, (size_t)T * CD, 5, -1, 1, m->stream);
    kern_fill_uniform_f32(a.g, T * 30, 6, -0.5f, -0.01f, m->stream);
    kern_fill_uniform_f32(a.beta, T * 30, 7, 0.1f, 1.9f, m->stream);
    kern_fill_uniform_f32(a.state, N * se, 8, -0.1f, 0.1f, m->stream);
    a.flags = KERN_GDN_CHUNK_AUTO;
    double ms = ev_time(m->stream, 10, gdn_chunk_fn, &a);
    if (ms < 0)
        return -EIO;
    char shape[64], note[96];
    snprintf(shape, sizeof shape, "%dx%d", N, L);
    snprintf(note, sizeof note, "(%.1f us/layer, auto: %s, workspace %.0f MB)", ms * 1e3,
             kern_gdn_chunk_auto_split(N, a.nc, 30, 192) ? "split" : "fused", a.wb / 1e6);
    emit("kernel: GDN prefill (chunk)", shape, ms * 1e6 / T, "ns/tok", note);
    static const struct {
        const char *what;
        int flags;
    } rows[] = {
        {"kernel: GDN chunk prep", KERN_GDN_CHUNK_PREP_ONLY},
        {"kernel: GDN chunk scan (fused)", KERN_GDN_CHUNK_FUSED | KERN_GDN_CHUNK_SCAN_ONLY},
        {"kernel: GDN chunk scan (split)", KERN_GDN_CHUNK_SPLIT | KERN_GDN_CHUNK_SCAN_ONLY},
        {"kernel: GDN chunk split states", KERN_GDN_CHUNK_STATES_ONLY},
        {"kernel: GDN chunk split output", KERN_GDN_CHUNK_OUT_ONLY}, /* after the states rows */
        {"kernel: GDN prefill (chunk fused)", KERN_GDN_CHUNK_FUSED},
        {"kernel: GDN prefill (chunk split)", KERN_GDN_CHUNK_SPLIT},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        a.flags = rows[i].flags;
        ms = ev_time(m->stream, 10, gdn_chunk_fn, &a); /* -1 on any failure: report, don't time */
        if (ms < 0) {
            fprintf(stderr, "bench: %s %s failed\n", rows[i].what, shape);
            rc = -EIO;
            break;
        }
        snprintf(note, sizeof note, "(%.1f us/layer)", ms * 1e3);
        emit(rows[i].what, shape, ms * 1e6 / T, "ns/tok", note);
    }
    cudaFree(a.y), cudaFree(a.g), cudaFree(a.beta), cudaFree(a.o), cudaFree(a.plan),
        cudaFree(a.state), cudaFree(a.work);
    free(h), free(qs);
    return rc;
}

struct attn_arg {
    struct kern_attn_args a;
    cudaStream_t s;
    int variant; /* > 0: only that prefill kernel shape (tuning) */
};
static int attn_fn(void *p)
{
    struct attn_arg *x = p;
    return x->variant ? kern_attention_prefill_variant(&x->a, x->variant, x->s)
                      : kern_attention(&x->a, x->s);
}

static int bench_attn(struct cu_impl *m, int N, int L, int ctx_before)
{
    int T = N * L, D = 128, H = 30, bs = 16;
    int ctx = ctx_before + L, nb = (ctx + bs - 1) / bs;
    size_t kvn = (size_t)N * nb * H * bs * D;
    int32_t *h = malloc(((size_t)N * nb + 4 * T) * 4);
    for (int i = 0; i < N * nb; i++)
        h[i] = i;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < L; j++) {
            h[N * nb + i * L + j] = i;
            h[N * nb + T + i * L + j] = ctx_before + j;
        }
    struct attn_arg x = {.s = m->stream};
    float *q;
    uint16_t *kc, *vc, *out;
    int32_t *d;
    float *work;
    if (cudaMalloc((void **)&q, (size_t)T * H * D * 4) || cudaMalloc((void **)&kc, kvn * 2) ||
        cudaMalloc((void **)&vc, kvn * 2) || cudaMalloc((void **)&out, (size_t)T * H * D * 2) ||
        cudaMalloc((void **)&d, ((size_t)N * nb + 4 * T) * 4) ||
        cudaMalloc((void **)&work, 1024 * (D + 2) * 4))
        return -ENOMEM;
    int32_t *qsn = malloc((N + 1) * 4);
    for (int i = 0; i <= N; i++)
        qsn[i] = i * L;
    /* the engine's dispatch: prefill chunks as tensor-core tiles */
    int nptiles = 0;
    int ntiles = kern_attention_plan(qsn, h + N * nb + T, N, h + N * nb + 2 * T, &nptiles);
    free(qsn);
    cudaMemcpy(d, h, ((size_t)N * nb + 4 * T) * 4, cudaMemcpyHostToDevice);
    kern_fill_uniform_f32(q, (size_t)T * H * D, 9, -1, 1, m->stream);
    kern_fill_uniform_bf16(kc, kvn, 10, -1, 1, m->stream);
    kern_fill_uniform_bf16(vc, kvn, 11, -1, 1, m->stream);
    int ns = T * H >= 264 ? 1 : (1024 / (T * H) > 16 ? 16 : 1024 / (T * H));
    x.a = (struct kern_attn_args){.q = q, .q_stride = H * D, .kc = kc, .vc = vc,
                                  .block_table = d, .max_blocks = nb, .tok_seq = d + N * nb,
                                  .positions = d + N * nb + T, .tiles = d + N * nb + 2 * T,
                                  .ntiles = ntiles, .T = T, .Hq = H, .Hkv = H,
                                  .D = D, .bs = bs, .scale = 0.0884f, .nsplit = ns,
                                  .work = work, .out = out, .nptiles = nptiles,
                                  .decode_tiles_single = kern_attention_tiles_single(
                                      h + N * nb + 2 * T, nptiles, ntiles)};
    double ms = ev_time(m->stream, L == 1 ? 50 : 3, attn_fn, &x);
    if (ms < 0) {
        fprintf(stderr, "bench: attention %dx%d ctx %d failed\n", N, L, ctx_before);
        return -EIO;
    }
    char shape[64], note[64];
    snprintf(shape, sizeof shape, "%dx%d ctx=%d", N, L, ctx);
    double kvbytes = L == 1 ? 2.0 * N * ctx * H * D * 2 : 0;
    if (L == 1)
        snprintf(note, sizeof note, "(KV read %.2f TB/s, split %d)",
                 kvbytes / (ms * 1e-3) / 1e12, ns);
    else /* causal: query j of a sequence sees ctx_before + j + 1 keys */
        snprintf(note, sizeof note, "(per layer, %.0f TFLOP/s)",
                 4.0 * D * H * N * ((double)L * ctx_before + (double)L * (L + 1) / 2) /
                     (ms * 1e-3) / 1e12);
    emit(L == 1 ? "kernel: attention decode" : "kernel: attention prefill", shape, ms * 1e3,
         "us", note);
    /* each tensor-core prefill kernel shape alone (rows x warps x row tiles) */
    for (int v = 1; v <= KERN_ATTN_PF_VARIANTS && L > 1 && nptiles > 0; v++) {
        x.variant = v;
        double mv = ev_time(m->stream, 3, attn_fn, &x);
        if (mv < 0) {
            fprintf(stderr, "bench: attention prefill variant %d failed\n", v);
            return -EIO;
        }
        snprintf(note, sizeof note, "(%s, %.0f TFLOP/s)", v == 1 ? "64x4w" : v == 2 ? "128x8w" : "128x4w2t",
                 4.0 * D * H * N * ((double)L * ctx_before + (double)L * (L + 1) / 2) /
                     (mv * 1e-3) / 1e12);
        emit("kernel: attention prefill variant", shape, mv * 1e3, "us", note);
    }
    cudaFree(q), cudaFree(kc), cudaFree(vc), cudaFree(out), cudaFree(d), cudaFree(work);
    free(h);
    return 0;
}

struct gemm_arg {
    struct cu_impl *m;
    uint16_t *W, *X;
    float *Y;
    int M, N, K;
};
static int gemm_fn(void *p)
{
    struct gemm_arg *g = p;
    return cu_gemm_run(&g->m->gemm, g->W, g->X, g->Y, 0, g->M, g->N, g->K, 0, g->m->stream);
}

struct gemv_form_arg {
    struct gemm_arg *g;
    int form;
};
static int gemv_form_fn(void *p)
{
    struct gemv_form_arg *a = p;
    return kern_gemv_form(a->g->W, a->g->X, a->g->Y, a->g->M, a->g->N, a->g->K, 0, a->form,
                          a->g->m->stream);
}

static int bench_gemm(struct cu_impl *m, const char *name, const uint16_t *W, int M, int K, int N)
{
    struct gemm_arg g = {.m = m, .W = (uint16_t *)W, .M = M, .N = N, .K = K};
    if (cudaMalloc((void **)&g.X, (size_t)N * K * 2) || cudaMalloc((void **)&g.Y, (size_t)N * M * 4))
        return -ENOMEM;
    kern_fill_uniform_bf16(g.X, (size_t)N * K, 12, -1, 1, m->stream);
    /* up to KERN_GEMV_MAX_T tokens: our GEMV and cuBLASLt side by side (the
     * engine's gemv_max_t picks between them; this is the data for it) */
    int ways = N <= KERN_GEMV_MAX_T ? 2 : 1, keep = m->gemm.gemv_max_t;
    for (int w = 0; w < ways; w++) {
        m->gemm.gemv_max_t = w ? 0 : KERN_GEMV_MAX_T;
        double ms = ev_time(m->stream, 20, gemm_fn, &g);
        if (ms < 0) {
            m->gemm.gemv_max_t = keep;
            cudaFree(g.X), cudaFree(g.Y);
            return -EIO;
        }
        char shape[64], note[96], nm[96];
        snprintf(shape, sizeof shape, "%dx%d T=%d", M, K, N);
        double bytes = (double)M * K * 2 + (double)N * K * 2 + (double)N * M * 4;
        snprintf(note, sizeof note, "(%.2f TB/s, %.0f TFLOP/s%s)", bytes / (ms * 1e-3) / 1e12,
                 2.0 * M * K * N / (ms * 1e-3) / 1e12,
                 ways == 1 ? "" : w ? ", cuBLASLt" : ", our GEMV");
        snprintf(nm, sizeof nm, "%s%s", name, w ? " (cuBLASLt)" : "");
        emit(nm, shape, ms * 1e3, "us", note);
    }
    m->gemm.gemv_max_t = keep;
    /* both GEMV forms alone (kernels/cuda/gemv.h: the auto rule's data) */
    for (int form = KERN_GEMV_WARP_ROWS; ways == 2 && form <= KERN_GEMV_KSPLIT; form++) {
        struct gemv_form_arg a = {&g, form};
        double ms = ev_time(m->stream, 20, gemv_form_fn, &a);
        if (ms < 0) {
            cudaFree(g.X), cudaFree(g.Y);
            return -EIO;
        }
        char shape[64], note[96], nm[96];
        snprintf(shape, sizeof shape, "%dx%d T=%d", M, K, N);
        double bytes = (double)M * K * 2 + (double)N * K * 2 + (double)N * M * 4;
        snprintf(note, sizeof note, "(%.2f TB/s)", bytes / (ms * 1e-3) / 1e12);
        snprintf(nm, sizeof nm, "%s (GEMV %s)", name,
                 form == KERN_GEMV_KSPLIT ? "k-split" : "warp rows");
        emit(nm, shape, ms * 1e3, "us", note);
    }
    cudaFree(g.X), cudaFree(g.Y);
    return 0;
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: deltaserve bench [--decode-batches 1,8,64,256] [--context 1024]\n"
            "         [--iters 20] [--layers 32] [--ssm-state-dtype fp32|bf16] [--no-graphs]\n"
            "         [--skip-e2e] [--skip-kernels] [--only gdn|chunk|attn|gemm] [--json FILE]\n"
            "       deltaserve bench --spec [options]   speculative decoding (--spec --help)\n"
            "Random bf16 weights at the OLMo-Hybrid-7B shapes are generated on the GPU.\n");
}

int bench_main(int argc, char **argv)
{
    if (argc > 0 && !strcmp(argv[0], "--spec")) return bench_spec_main(argc - 1, argv + 1); /* server/bench_spec.c */
    int batches[16] = {1, 8, 64, 256}, nb = 4, ctx = 1024, iters = 20, layers = 32, bf16 = 0,
        graphs = 1, e2e = 1, kernels = 1;
    const char *json = NULL, *only = NULL; /* --only: one group of kernel rows, no e2e */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--decode-batches") && v) {
            if ((nb = parse_list(v, batches, 16)) <= 0) {
                fprintf(stderr, "bench: bad --decode-batches '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--context") && v) {
            ctx = atoi(v), i++;
        } else if (!strcmp(a, "--iters") && v) {
            iters = atoi(v), i++;
        } else if (!strcmp(a, "--layers") && v) {
            layers = atoi(v), i++;
        } else if (!strcmp(a, "--ssm-state-dtype") && v) {
            if (strcmp(v, "bf16") && strcmp(v, "fp32")) {
                fprintf(stderr, "bench: --ssm-state-dtype must be fp32 or bf16\n");
                return 2;
            }
            bf16 = !strcmp(v, "bf16"), i++;
        } else if (!strcmp(a, "--no-graphs")) {
            graphs = 0;
        } else if (!strcmp(a, "--skip-e2e")) {
            e2e = 0;
        } else if (!strcmp(a, "--skip-kernels")) {
            kernels = 0;
        } else if (!strcmp(a, "--only") && v) {
            if (strcmp(v, "gdn") && strcmp(v, "chunk") && strcmp(v, "attn") && strcmp(v, "gemm")) {
                fprintf(stderr, "bench: --only takes gdn, chunk, attn or gemm\n");
                return 2;
            }
            only = v, e2e = 0, i++;
        } else if (!strcmp(a, "--json") && v) {
            json = v, i++;
        } else {
            fprintf(stderr, "bench: unknown or incomplete option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (ctx < 1 || iters < 1 || iters > 1000 || layers < 4 || layers > 64 || layers % 4) {
        fprintf(stderr, "bench: --context >= 1, --iters 1..1000, --layers a multiple of 4\n");
        return 2;
    }
    char desc[256];
    if (!eng_cuda_available(desc, sizeof desc)) {
        fprintf(stderr, "deltaserve bench: %s\n", desc);
        return 2;
    }
    if (json && !(g_json = fopen(json, "w"))) {
        fprintf(stderr, "bench: cannot write %s\n", json);
        return 2;
    }
    struct cfg_model c;
    bench_cfg_7b(&c, layers);
    int maxB = 0;
    for (int i = 0; i < nb; i++)
        maxB = batches[i] > maxB ? batches[i] : maxB;
    int nslots = maxB > 16 ? maxB : 16;
    /* KV: decode needs nslots sequences of ctx+warm+iters tokens; the
     * prefills use sequence 0 (8192 tokens) and 0..15 (512 tokens each). */
    int bs = 16;
    int per_seq = (ctx + 3 + iters + bs - 1) / bs;
    int big = (8192 + bs - 1) / bs;
    int r0 = per_seq > big ? per_seq : big;
    int rs = per_seq > 32 ? per_seq : 32;
    int mb = r0;
    struct eng_cuda_options o;
    eng_cuda_default_options(&o);
    o.max_tokens = 8192;
    o.max_seqs = maxB > 16 ? maxB : 16;
    o.max_blocks_per_seq = mb;
    o.max_logits = o.max_seqs;
    o.ssm_state_bf16 = bf16;
    o.use_graphs = graphs;
    o.random_weights_seed = 0x5eed;
    eng_cuda_set_options(&o);
    /* block table: sequence i owns a private range; sequences 0 (8192-token
     * prefill) and 0..15 (512 each) fit inside their ranges */

    size_t nblocks = (size_t)r0 + (size_t)(nslots - 1) * rs;
    struct engine e;
    memset(&e, 0, sizeof e);
    e.cfg = &c;
    e.w = NULL;
    e.ops = &eng_backend_cuda;
    e.mem.block_size = bs;
    e.mem.num_kv_blocks = (int)nblocks;
    e.mem.num_state_slots = nslots;
    printf("deltaserve bench on %s: OLMo-Hybrid-7B shapes, %d layers, random bf16 weights, "
           "%s SSM state, graphs %s\n",
           desc, layers, bf16 ? "bf16" : "fp32", graphs ? "on" : "off");
    printf("  KV blocks %zu x %d tokens (%.1f GiB), %d state slots (%.1f GiB)\n", nblocks, bs,
           (double)nblocks * eng_cuda_kv_block_bytes(&c, bs) / (1 << 30), nslots,
           (double)nslots * eng_cuda_slot_bytes(&c, bf16) / (1 << 30));
    double t0 = bench_now_s();
    if (e.ops->init(&e)) {
        fprintf(stderr, "bench: backend init failed\n");
        return 1;
    }
    struct cu_impl *m = e.impl;
    printf("  init (random weights %.2f GiB) %.1f s\n", (double)m->weight_bytes / (1 << 30),
           bench_now_s() - t0);
    int rc = 0;
    if (eng_cuda_randomize_state(&e, 77)) {
        rc = 1;
        goto out;
    }
    if (ceilings(m)) {
        rc = 1;
        goto out;
    }
    struct bench_ctx b = {.e = &e, .c = &c, .mb = mb};
    b.bt = malloc((size_t)nslots * mb * 4);
    b.logits = malloc((size_t)o.max_seqs * c.vocab_size * 4);
    for (int i = 0; i < nslots; i++)
        for (int j = 0; j < mb; j++) {
            long blk = i == 0 ? j : r0 + (long)(i - 1) * rs + j;
            b.bt[(size_t)i * mb + j] = (int32_t)(blk < (long)nblocks ? blk : (long)nblocks - 1);
        }
    if (e2e) {
        for (int i = 0; i < nb && !rc; i++)
            rc = bench_decode(&b, batches[i], ctx, iters) ? 1 : 0;
        if (!rc)
            rc = bench_prefill(&b, 1, 8192, 3) ? 1 : 0;
        if (!rc)
            rc = bench_prefill(&b, 16, 512, 3) ? 1 : 0;
        if (!rc)
            rc = bench_decode_profile(&b, m, 1, ctx) || bench_decode_profile(&b, m, 64, ctx);
    }
    if (kernels && !rc) {
#define GROUP(name) (!only || !strcmp(only, name))
        int gb[4] = {1, 8, 64, 256};
        for (int i = 0; i < 4 && !rc && GROUP("gdn"); i++)
            rc = bench_gdn(m, gb[i], 1, bf16) ? 1 : 0;
        if (!rc && GROUP("gdn"))
            rc = bench_gdn(m, 1, 8192, 0) || bench_gdn(m, 16, 512, 0) || bench_gdn(m, 4, 2048, 0);
        if (!rc && GROUP("chunk"))
            rc = bench_gdn_chunk(m, 1, 8192) || bench_gdn_chunk(m, 4, 2048) ||
                 bench_gdn_chunk(m, 16, 512);
        if (!rc && GROUP("attn"))
            rc = bench_attn(m, 1, 1, 1024) || bench_attn(m, 64, 1, 1024) ||
                 bench_attn(m, 256, 1, 1024) || bench_attn(m, 1, 8192, 0) ||
                 bench_attn(m, 16, 512, 0);
        const struct cu_layer *g0 = &m->layers[0], *a0 = &m->layers[3];
        int Ts[5] = {1, 4, 8, 64, 8192};
        for (int i = 0; i < 5 && !rc && GROUP("gemm"); i++) {
            rc = bench_gemm(m, "gemm: GDN in-proj [q;k;v;g;a;b]", g0->w_in, m->gdn_in_rows, m->C,
                            Ts[i]) ||
                 bench_gemm(m, "gemm: GDN out", g0->w_o, m->C, m->VD, Ts[i]) ||
                 bench_gemm(m, "gemm: MLP [gate;up]", g0->w_gu, 2 * m->F, m->C, Ts[i]) ||
                 bench_gemm(m, "gemm: MLP down", g0->w_down, m->C, m->F, Ts[i]) ||
                 bench_gemm(m, "gemm: attn [q;k;v]", a0->w_in, m->attn_in_rows, m->C, Ts[i]) ||
                 bench_gemm(m, "gemm: lm_head", m->lm_head, m->V, m->C, Ts[i] > 256 ? 256 : Ts[i]);
        }
#undef GROUP
    }
    free(b.bt);
    free(b.logits);
out:
    if (rc)
        fprintf(stderr, "bench: failed (see log)\n");
    e.ops->destroy(&e);
    if (g_json)
        fclose(g_json);
    return rc;
}
#endif
