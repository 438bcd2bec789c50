/* engine/cuda/cuda_gemm.c: bf16 GEMMs through cuBLASLt for the CUDA backend.
 *
 * Every projection is Y (N tokens, M out) = X (N, K) . W (M, K)^T with W the
 * checkpoint's row-major (out, in) matrix, i.e. column-major "TN": A = W
 * (K x M, op T), B = X (K x N), D = Y (M x N), fp32 accumulation, fp32 or
 * bf16 output; accumulate = 1 adds into Y (beta = 1), which fuses residual
 * adds into the GEMM. Heuristic results are cached per shape in a small ring
 * so steady-state steps (and CUDA-graph capture) do no planning. Decode-sized
 * calls (N <= gemv_max_t tokens, fp32 out) go to kern_gemv instead: a pure
 * weight stream, faster there than cuBLASLt's picks (kernels/cuda/gemv.h).
 *
 * Threads: engine thread only.
 */
#include <errno.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/swiglu.h"

#define LT_CHECK(expr)                                                                   \
    do {                                                                                 \
        cublasStatus_t st_ = (expr);                                                     \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                              \
            LOG_ERROR("cublasLt: %s failed: status %d", #expr, (int)st_);                \
            return -EIO;                                                                 \
        }                                                                                \
    } while (0)

int cu_gemm_init(struct cu_gemm *g, size_t ws_bytes)
{
    memset(g, 0, sizeof *g);
    LT_CHECK(cublasLtCreate(&g->h));
    g->ws_bytes = ws_bytes;
    g->gemv_max_t = CU_GEMV_DEFAULT_T;
    CU_CHECK(cudaMalloc(&g->ws, ws_bytes));
    return 0;
}

static void plan_free(struct cu_gemm_plan *p)
{
    if (!p->valid)
        return;
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->c);
    cublasLtMatmulDescDestroy(p->op);
    p->valid = 0;
}

void cu_gemm_fini(struct cu_gemm *g)
{
    for (int i = 0; i < CU_GEMM_PLANS; i++)
        plan_free(&g->plans[i]);
    if (g->ws)
        cudaFree(g->ws);
    if (g->h)
        cublasLtDestroy(g->h);
    memset(g, 0, sizeof *g);
}

static int plan_make(struct cu_gemm *g, struct cu_gemm_plan *p, int M, int N, int K,
                     int out_bf16, int accumulate)
{
    memset(p, 0, sizeof *p);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, (uint64_t)K, (uint64_t)M, K));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, (uint64_t)K, (uint64_t)N, K));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->c, out_bf16 ? CUDA_R_16BF : CUDA_R_32F,
                                        (uint64_t)M, (uint64_t)N, M));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t wsb = g->ws_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb,
                                         sizeof wsb);
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g->h, p->op, p->a, p->b, p->c, p->c, pref,
                                                       1, &res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || nres < 1) {
        LOG_ERROR("cublasLt: no algorithm for M=%d N=%d K=%d (status %d)", M, N, K, (int)st);
        cublasLtMatrixLayoutDestroy(p->a);
        cublasLtMatrixLayoutDestroy(p->b);
        cublasLtMatrixLayoutDestroy(p->c);
        cublasLtMatmulDescDestroy(p->op);
        return -EIO;
    }
    p->algo = res.algo;
    p->M = M;
    p->N = N;
    p->K = K;
    p->out_bf16 = out_bf16;
    p->accumulate = accumulate;
    p->valid = 1;
    return 0;
}

int cu_gemm_run(struct cu_gemm *g, const uint16_t *W, const uint16_t *X, void *Y, int out_bf16,
                int M, int N, int K, int accumulate, cudaStream_t s)
{
    if (N <= 0)
        return 0;
    if (accumulate && out_bf16)
        return -EINVAL;
    if (!out_bf16 && N <= g->gemv_max_t && kern_gemv_ok(W, X, M, N, K)) {
        int e = kern_gemv(W, X, (float *)Y, M, N, K, accumulate, s);
        if (e) {
            LOG_ERROR("cuda: kern_gemv M=%d N=%d K=%d failed: %s", M, N, K,
                      cudaGetErrorString((cudaError_t)e));
            return -EIO;
        }
        return 0;
    }
    struct cu_gemm_plan *p = NULL;
    for (int i = 0; i < CU_GEMM_PLANS; i++) {
        struct cu_gemm_plan *q = &g->plans[i];
        if (q->valid && q->M == M && q->N == N && q->K == K && q->out_bf16 == out_bf16 &&
            q->accumulate == accumulate) {
            p = q;
            break;
        }
    }
    if (!p) {
        p = &g->plans[g->next];
        g->next = (g->next + 1) % CU_GEMM_PLANS;
        plan_free(p);
        int rc = plan_make(g, p, M, N, K, out_bf16, accumulate);
        if (rc)
            return rc;
    }
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    LT_CHECK(cublasLtMatmul(g->h, p->op, &alpha, W, p->a, X, p->b, &beta, Y, p->c, Y, p->c,
                            &p->algo, g->ws, g->ws_bytes, s));
    return 0;
}

int cu_gemm_swiglu(struct cu_gemm *g, const uint16_t *W, const uint16_t *X, float *gu,
                   uint16_t *act, int M, int N, int K, cudaStream_t s)
{
    if (N <= 0)
        return 0;
    if (M % 2)
        return -EINVAL;
    int e;
    if (N <= g->gemv_max_t && kern_gemv_ok(W, X, M, N, K)) {
        if ((e = kern_gemv_swiglu(W, X, act, M, N, K, s))) {
            LOG_ERROR("cuda: kern_gemv_swiglu M=%d N=%d K=%d failed: %s", M, N, K,
                      cudaGetErrorString((cudaError_t)e));
            return -EIO;
        }
        return 0;
    }
    int rc = cu_gemm_run(g, W, X, gu, 0, M, N, K, 0, s);
    if (rc)
        return rc;
    if ((e = kern_swiglu(gu, N, M / 2, act, s))) {
        LOG_ERROR("cuda: kern_swiglu N=%d F=%d failed: %s", N, M / 2,
                  cudaGetErrorString((cudaError_t)e));
        return -EIO;
    }
    return 0;
}
