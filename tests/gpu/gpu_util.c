/* tests/gpu/gpu_util.c: see gpu_util.h. */
#include "tests/gpu/gpu_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_backend.h"
#include "engine/engine.h"
#include "kernels/cpu/gdn_recurrent.h"
#include "kernels/cpu/l2norm.h"
#include "scheduler/sched.h"
#include "scheduler/sched_internal.h"
#include "tests/unit/util_st_writer.h"

static void **g_ptrs;
static int g_n, g_cap;

void *gu_dev(size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 16);
    ck_assert_msg(e == cudaSuccess, "cudaMalloc(%zu): %s", bytes, cudaGetErrorString(e));
    ck_assert(cudaMemset(p, 0xFF, bytes ? bytes : 16) == cudaSuccess);
    if (g_n == g_cap) {
        g_cap = g_cap ? 2 * g_cap : 64;
        g_ptrs = realloc(g_ptrs, (size_t)g_cap * sizeof *g_ptrs);
        ck_assert(g_ptrs != NULL);
    }
    g_ptrs[g_n++] = p;
    return p;
}

void gu_free_all(void)
{
    cudaDeviceSynchronize();
    for (int i = 0; i < g_n; i++)
        cudaFree(g_ptrs[i]);
    g_n = 0;
}

void gu_up(void *dst, const void *src, size_t bytes)
{
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
    ck_assert_msg(e == cudaSuccess, "H2D: %s", cudaGetErrorString(e));
}

void gu_down(void *dst, const void *src, size_t bytes)
{
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
    ck_assert_msg(e == cudaSuccess, "D2H: %s", cudaGetErrorString(e));
}

void gu_sync(void)
{
    cudaError_t e = cudaDeviceSynchronize();
    ck_assert_msg(e == cudaSuccess, "sync: %s", cudaGetErrorString(e));
    e = cudaGetLastError();
    ck_assert_msg(e == cudaSuccess, "last error: %s", cudaGetErrorString(e));
}

static uint64_t g_rng = 0x1234567;
int gu_emulated(void)
{
#ifdef DS_CUDA_EMU
    return 1;
#else
    const char *q = getenv("DS_GPU_QUICK");
    return q && *q && *q != '0';
#endif
}

void gu_seed(uint64_t s) { g_rng = s * 0x9e3779b97f4a7c15ull + 1; }
static uint64_t next(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
float gu_unif(float lo, float hi) { return lo + (hi - lo) * (float)((next() >> 40) * (1.0 / 16777216.0)); }
int gu_int(int lo, int hi) { return lo + (int)(next() % (uint64_t)(hi - lo + 1)); }
void gu_fill(float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = gu_unif(lo, hi);
}

uint16_t gu_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
float gu_from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
float gu_bf16_round(float f) { return gu_from_bf16(gu_to_bf16(f)); }
void gu_fill_bf16(float *p, uint16_t *bf, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        bf[i] = gu_to_bf16(gu_unif(lo, hi));
        p[i] = gu_from_bf16(bf[i]);
    }
}

double gu_rel_err_rows(const float *a, int la, const float *ref, int lr, int rows, int w, int *nan)
{
    double num = 0, den = 0;
    *nan = 0;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < w; i++) {
            double x = a[(size_t)r * la + i], y = ref[(size_t)r * lr + i];
            if (!isfinite(x))
                *nan = 1;
            num += (x - y) * (x - y);
            den += y * y;
        }
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

double gu_rel_err(const float *a, const float *ref, size_t n, int *nan)
{
    return gu_rel_err_rows(a, (int)n, ref, (int)n, 1, (int)n, nan);
}

double gu_rel_err_bf16(const uint16_t *a, const float *ref, size_t n, int *nan)
{
    double num = 0, den = 0;
    *nan = 0;
    for (size_t i = 0; i < n; i++) {
        double x = gu_from_bf16(a[i]), y = ref[i];
        if (!isfinite(x))
            *nan = 1;
        num += (x - y) * (x - y);
        den += y * y;
    }
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

void *gu_state_up(const float *src, size_t n, int bf16)
{
    void *d = gu_dev(n * (bf16 ? 2 : 4));
    if (bf16) {
        uint16_t *sb = calloc(n, 2);
        ck_assert(sb != NULL);
        for (size_t i = 0; i < n; i++)
            sb[i] = gu_to_bf16(src[i]);
        gu_up(d, sb, n * 2);
        free(sb);
    } else {
        gu_up(d, src, n * 4);
    }
    return d;
}

void gu_state_down(float *dst, const void *dev, size_t n, int bf16)
{
    if (bf16) {
        uint16_t *sb = calloc(n, 2);
        ck_assert(sb != NULL);
        gu_down(sb, dev, n * 2);
        for (size_t i = 0; i < n; i++)
            dst[i] = gu_from_bf16(sb[i]);
        free(sb);
    } else {
        gu_down(dst, dev, n * 4);
    }
}

static float *gu_falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_msg(p != NULL, "calloc(%zu floats)", n);
    return p;
}

struct gu_gdn_batch *gu_gdn_batch_create(int Hk, int Hv, int Dk, int Dv, const int *lens, int N,
                                         int pad, int neg_seq, int bf16_state, uint64_t seed)
{
    ck_assert(N >= 1 && N <= 64 && pad >= 0 && Hk > 0 && Hv % Hk == 0);
    struct gu_gdn_batch *b = calloc(1, sizeof *b);
    ck_assert(b != NULL);
    int KD = Hk * Dk, VD = Hv * Dv, CD = 2 * KD + VD, nslots = N + 2;
    *b = (struct gu_gdn_batch){.Hk = Hk, .Hv = Hv, .Dk = Dk, .Dv = Dv, .KD = KD, .VD = VD,
                               .CD = CD, .N = N, .pad = pad, .nslots = nslots,
                               .bf16_state = bf16_state, .se = (size_t)Hv * Dk * Dv};
    /* the draw order (hinit, y, g/beta, states) fixes what a seed gives */
    gu_seed(seed);
    int T = pad;
    for (int i = 0; i < N; i++) {
        b->qs[i] = T;
        T += lens[i];
        b->slot[i] = i == neg_seq ? -1 : nslots - 1 - i;
        b->hinit[i] = i == 0 ? 0 : (i == 1 ? 1 : gu_int(0, 1));
    }
    b->qs[N] = T;
    b->T = T;
    size_t se = b->se, ns = (size_t)nslots * se;
    b->y = gu_falloc((size_t)T * CD);
    b->g = gu_falloc((size_t)T * Hv);
    b->bt = gu_falloc((size_t)T * Hv);
    b->st = gu_falloc(ns);
    b->st_ref = gu_falloc(ns);
    b->o_ref = gu_falloc((size_t)T * VD);
    float *yn = gu_falloc((size_t)T * CD), *tmp = gu_falloc(se);
    gu_fill(b->y, (size_t)T * CD, -1, 1);
    for (size_t i = 0; i < (size_t)T * Hv; i++) {
        b->g[i] = -expf(gu_unif(0, 1.5f)) * log1pf(expf(gu_unif(-6, 2)));
        b->bt[i] = 2.0f / (1.0f + expf(-gu_unif(-4, 4)));
    }
    gu_fill(b->st, ns, -0.3f, 0.3f);
    if (bf16_state)
        for (size_t i = 0; i < ns; i++)
            b->st[i] = gu_bf16_round(b->st[i]);
    memcpy(b->st_ref, b->st, ns * 4);
    /* the reference takes q/k normalized (the kernels normalize themselves) */
    memcpy(yn, b->y, (size_t)T * CD * 4);
    for (int t = 0; t < T; t++) {
        kern_cpu_l2norm(yn + (size_t)t * CD, Hk, Dk, 1e-6f, 1.0f / sqrtf((float)Dk));
        kern_cpu_l2norm(yn + (size_t)t * CD + KD, Hk, Dk, 1e-6f, 1.0f);
    }
    for (int i = 0; i < N; i++) {
        float *S = b->slot[i] >= 0 ? b->st_ref + b->slot[i] * se : tmp;
        if (!b->hinit[i] || b->slot[i] < 0)
            memset(S, 0, se * 4);
        size_t q0 = (size_t)b->qs[i];
        const float *r = yn + q0 * CD;
        kern_cpu_gdn_recurrent(b->o_ref + q0 * VD, VD, r, CD, r + KD, CD, r + 2 * KD, CD,
                               b->g + q0 * Hv, b->bt + q0 * Hv, S, lens[i], Hk, Hv, Dk, Dv, NULL);
    }
    free(yn), free(tmp);

    b->dst = gu_state_up(b->st, ns, bf16_state);
    b->dy = gu_dev((size_t)T * CD * 4);
    b->dg = gu_dev((size_t)T * Hv * 4);
    b->db = gu_dev((size_t)T * Hv * 4);
    b->dq = gu_dev((size_t)(N + 1) * 4);
    b->dsl = gu_dev((size_t)N * 4);
    b->dh = gu_dev((size_t)N * 4);
    gu_up(b->dy, b->y, (size_t)T * CD * 4);
    gu_up(b->dg, b->g, (size_t)T * Hv * 4);
    gu_up(b->db, b->bt, (size_t)T * Hv * 4);
    gu_up(b->dq, b->qs, (size_t)(N + 1) * 4);
    gu_up(b->dsl, b->slot, (size_t)N * 4);
    gu_up(b->dh, b->hinit, (size_t)N * 4);
    return b;
}

void gu_gdn_batch_destroy(struct gu_gdn_batch *b)
{
    if (!b)
        return;
    free(b->y), free(b->g), free(b->bt), free(b->st), free(b->st_ref), free(b->o_ref);
    free(b);
}

const char *const GU_CFG_TINY =
    "{\"model_type\":\"olmo_hybrid\",\"vocab_size\":300,\"hidden_size\":64,"
    "\"intermediate_size\":160,\"num_hidden_layers\":8,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"head_dim\":16,\"linear_num_key_heads\":2,"
    "\"linear_num_value_heads\":4,\"linear_key_head_dim\":16,\"linear_value_head_dim\":32,"
    "\"linear_conv_kernel_dim\":4,\"allow_neg_eigval\":true,\"rms_norm_eps\":1e-6,"
    "\"max_position_embeddings\":4096,\"tie_word_embeddings\":false,\"rope_theta\":10000,"
    "\"eos_token_id\":1,\"pad_token_id\":0}";

const char *const GU_CFG_WIDE =
    "{\"model_type\":\"olmo_hybrid\",\"vocab_size\":512,\"hidden_size\":384,"
    "\"intermediate_size\":512,\"num_hidden_layers\":4,\"num_attention_heads\":3,"
    "\"num_key_value_heads\":3,\"head_dim\":128,\"linear_num_key_heads\":2,"
    "\"linear_num_value_heads\":2,\"linear_key_head_dim\":96,\"linear_value_head_dim\":192,"
    "\"linear_conv_kernel_dim\":4,\"allow_neg_eigval\":true,\"rms_norm_eps\":1e-6,"
    "\"max_position_embeddings\":4096,\"tie_word_embeddings\":true,"
    "\"rope_parameters\":{\"rope_theta\":null,\"rope_type\":\"default\"},"
    "\"eos_token_id\":1,\"pad_token_id\":0}";

void gu_random_model(const char *json, uint32_t seed, struct cfg_model *cfg,
                     struct eng_weights *w, char *dir, size_t cap)
{
    char err[256], path[4096];
    ck_assert_msg(cfg_parse_json(cfg, json, strlen(json), err, sizeof err) == 0, "%s", err);
    ck_assert(stw_tmpdir(dir, cap) != NULL);
    struct stw *sw = stw_create();
    ck_assert(sw != NULL);
    unsigned flags = cfg->tie_word_embeddings ? STW_NO_LM_HEAD : 0;
    ck_assert_int_eq(stw_add_model(sw, cfg, ST_BF16, flags, seed), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(stw_write(sw, path, NULL), 0);
    stw_destroy(sw);
    ck_assert_msg(eng_weights_load(w, cfg, dir, err, sizeof err) == 0, "%s", err);
}

void gu_pair_open(struct gu_pair *p, uint64_t rng_seed, const char *json, uint32_t seed,
                  const struct gu_pair_shape *sh)
{
    char err[256];
    memset(p, 0, sizeof *p);
    gu_seed(rng_seed);
    gu_random_model(json, seed, &p->cfg, &p->w, p->dir, sizeof p->dir);
    struct eng_memory mem = {.num_kv_blocks = sh->kv_blocks, .block_size = 16,
                             .num_state_slots = sh->state_slots};
    p->cpu = eng_create(&p->cfg, &p->w, &eng_backend_cpu, &mem, err, sizeof err);
    ck_assert_msg(p->cpu != NULL, "%s", err);
    struct eng_cuda_options o;
    eng_cuda_default_options(&o);
    /* step sizes (the workspace), then the lm_head chunk and the state dtype */
    o.max_tokens = sh->max_tokens, o.max_seqs = sh->max_seqs;
    o.max_blocks_per_seq = sh->max_blocks_per_seq;
    o.max_logits = sh->max_logits, o.ssm_state_bf16 = sh->ssm_state_bf16;
    eng_cuda_set_options(&o);
    p->gpu = eng_create(&p->cfg, &p->w, &eng_backend_cuda, &mem, err, sizeof err);
    ck_assert_msg(p->gpu != NULL, "%s", err);
    p->V = p->cfg.vocab_size;
}

void gu_pair_close(struct gu_pair *p)
{
    eng_destroy(p->gpu);
    eng_destroy(p->cpu);
    eng_weights_free(&p->w);
    stw_rmtree(p->dir);
}

int gu_argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

void gu_compare_logits(struct gu_row_stats *st, const float *a, const float *b, int V,
                       double lp_tol, double rel_tol, const char *what, int r)
{
    double ma = -1e30, mb = -1e30, sa = 0, sb = 0, num = 0, den = 0;
    for (int v = 0; v < V; v++) {
        ck_assert_msg(isfinite(b[v]), "%s row %d: GPU logit %d not finite", what, r, v);
        ma = fmax(ma, a[v]);
        mb = fmax(mb, b[v]);
        num += (double)(a[v] - b[v]) * (a[v] - b[v]);
        den += (double)a[v] * a[v];
    }
    for (int v = 0; v < V; v++) {
        sa += exp(a[v] - ma);
        sb += exp(b[v] - mb);
    }
    int ta = gu_argmax(a, V), tb = gu_argmax(b, V);
    double dl = fabs((a[ta] - ma - log(sa)) - (b[ta] - mb - log(sb)));
    double rel = sqrt(num) / fmax(sqrt(den), 1e-30);
    st->rows++;
    st->max_lp = fmax(st->max_lp, dl);
    st->max_rel = fmax(st->max_rel, rel);
    if (ta == tb) {
        st->agree++;
    } else {
        st->ties++;
        ck_assert_msg(a[ta] - a[tb] < 2 * lp_tol,
                      "%s row %d: top-1 differs (%d vs %d) without a near-tie (gap %.4f)", what,
                      r, ta, tb, a[ta] - a[tb]);
    }
    ck_assert_msg(dl <= lp_tol, "%s row %d: |dlogp| %.4f > %.3f", what, r, dl, lp_tol);
    ck_assert_msg(rel <= rel_tol, "%s row %d: rel err %.4f > %.3f", what, r, rel, rel_tol);
}

struct sched *gu_sched_create(struct engine *e, int k, int max_seqs, int max_batched_tokens,
                              int max_model_len)
{
    char err[256];
    struct sched_config c;
    sched_config_init(&c);
    c.eng = e;
    c.max_num_seqs = max_seqs, c.max_num_batched_tokens = max_batched_tokens;
    c.max_model_len = max_model_len;
    c.default_seed = 5, c.log_requests = false;
    c.num_speculative_tokens = k, c.ngram_min = 1, c.ngram_max = 3; /* n-gram drafts */
    struct sched *s = sched_create(&c, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

struct sched_request *gu_sched_submit(struct sched *s, const struct sched_params *ps)
{
    char err[256];
    struct sched_request *r = sched_request_create(ps);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(sched_submit(s, r, err, sizeof err) == 0, "%s", err);
    return r;
}

void gu_sched_run(struct sched *s, struct sched_request *const *rs, int nr, int max_steps,
                  void (*on_delta)(void *ctx, int i, const struct sched_delta *d), void *ctx)
{
    char err[256];
    int *done = calloc(nr > 0 ? (size_t)nr : 1, sizeof *done);
    ck_assert(done != NULL);
    for (int steps = 0;; steps++) {
        int all = 1;
        for (int i = 0; i < nr; i++)
            all = all && done[i];
        if (all)
            break;
        ck_assert_int_lt(steps, max_steps);
        ck_assert_int_ge(sched_step_sync(s), 0);
        ck_assert_msg(sched_check_invariants(s, err, sizeof err) == 0, "step %d: %s", steps, err);
        for (int i = 0; i < nr; i++) {
            struct sched_delta d;
            if (sched_request_drain(rs[i], &d) != 1)
                continue;
            ck_assert_msg(d.error == 0, "request %d failed: %s", i, d.error_msg);
            on_delta(ctx, i, &d);
            if (d.done)
                done[i] = 1;
            sched_delta_fini(&d);
        }
    }
    free(done);
}
