/* tests/gpu/gpu_util.c: see gpu_util.h. */
#include "tests/gpu/gpu_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
