/* tools/cuda-emu/emu_runtime.cpp: a CPU emulator for the CUDA subset that
 * deltaserve's kernels and CUDA backend use (test tool, single host thread).
 *
 * Device side: emu_launch runs the grid block by block; a block's threads are
 * fibers (own stacks, a hand-written x86-64 context switch) scheduled round
 * robin; a fiber runs until it reaches __syncthreads, __syncwarp or a warp
 * shuffle (each a barrier of its block or its warp of 32 lanes) or exits.
 * Exited threads leave their barriers, as on the GPU. Device memory is host
 * memory; streams, events and copies are synchronous; graph capture answers
 * "not supported" (the backend's eager fallback runs). cuBLASLt's matmul is a
 * plain fp32-accumulating loop (column-major, op T/N, bf16/fp32 types).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <functional>

#include "cublasLt.h"
#include "emu_device.h"

/* ---------------- fibers ---------------- */
extern "C" void emu_swap(void **save_sp, void *load_sp);
asm(".text\n.globl emu_swap\n.type emu_swap,@function\nemu_swap:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n  ret\n");

#define EMU_STACK (256 * 1024)
#define EMU_MAXT 1024

struct fiber {
    void *sp;
    char *stack;
    unsigned tid;
    int done;
};
struct warp {
    int alive, arrived;
    unsigned gen;
    uint64_t buf[32];
};

emu_thread_idx emu_tid;
dim3 emu_bid, emu_bdim, emu_gdim;
static fiber g_f[EMU_MAXT];
static warp g_w[EMU_MAXT / 32];
static int g_nthreads, g_alive, g_barrier_arrived;
static unsigned g_barrier_gen;
static fiber *g_cur;
static void *g_sched_sp;
static const std::function<void()> *g_body;
static cudaError_t g_last_err = cudaSuccess;

static void yield_to_sched(void) { emu_swap(&g_cur->sp, g_sched_sp); }

static void warp_release_check(warp *w)
{
    if (w->arrived > 0 && w->arrived == w->alive) {
        w->arrived = 0;
        w->gen++;
    }
}
static void block_release_check(void)
{
    if (g_barrier_arrived > 0 && g_barrier_arrived == g_alive) {
        g_barrier_arrived = 0;
        g_barrier_gen++;
    }
}

static void warp_barrier(void)
{
    warp *w = &g_w[g_cur->tid / 32];
    unsigned gen = w->gen;
    w->arrived++;
    warp_release_check(w);
    while (w->gen == gen)
        yield_to_sched();
}

void emu_syncwarp(void) { warp_barrier(); }

void emu_syncthreads(void)
{
    unsigned gen = g_barrier_gen;
    g_barrier_arrived++;
    block_release_check();
    while (g_barrier_gen == gen)
        yield_to_sched();
}

uint64_t emu_shfl_u64(uint64_t v, int src, int xor_mode)
{
    warp *w = &g_w[g_cur->tid / 32];
    int lane = g_cur->tid & 31;
    w->buf[lane] = v;
    warp_barrier();
    int from = xor_mode ? (lane ^ src) : (src & 31);
    uint64_t r = w->buf[from];
    warp_barrier();
    return r;
}

static void fiber_main(void)
{
    (*g_body)();
    g_cur->done = 1;
    g_alive--;
    warp *w = &g_w[g_cur->tid / 32];
    w->alive--;
    warp_release_check(w);
    block_release_check();
    emu_swap(&g_cur->sp, g_sched_sp);
    abort(); /* never resumed */
}

static void fiber_init(fiber *f)
{
    if (!f->stack) {
        f->stack = (char *)mmap(NULL, EMU_STACK, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (f->stack == MAP_FAILED) {
            perror("emu: mmap");
            abort();
        }
    }
    uintptr_t top = ((uintptr_t)(f->stack + EMU_STACK)) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = 0;                    /* alignment slot: entry sees rsp = 8 mod 16 */
    *--sp = (void *)fiber_main;   /* ret target */
    for (int i = 0; i < 6; i++)
        *--sp = 0;                /* rbp rbx r12 r13 r14 r15 */
    f->sp = sp;
    f->done = 0;
}

void emu_launch(dim3 g, dim3 b, const std::function<void()> &body)
{
    int nt = (int)(b.x * b.y * b.z);
    if (b.y != 1 || b.z != 1 || nt <= 0 || nt > EMU_MAXT || nt % 32 || g.x == 0 || g.y == 0 ||
        g.z == 0) {
        if (nt % 32 == 0 && nt > 0 && g.x && g.y && g.z)
            fprintf(stderr, "emu: only 1-D blocks\n");
        g_last_err = cudaErrorInvalidValue;
        return;
    }
    emu_gdim = g;
    emu_bdim = b;
    g_body = &body;
    for (unsigned z = 0; z < g.z; z++)
        for (unsigned y = 0; y < g.y; y++)
            for (unsigned x = 0; x < g.x; x++) {
                emu_bid = dim3(x, y, z);
                g_nthreads = nt;
                g_alive = nt;
                g_barrier_arrived = 0;
                for (int w = 0; w < nt / 32; w++) {
                    g_w[w].alive = 32;
                    g_w[w].arrived = 0;
                }
                for (int t = 0; t < nt; t++) {
                    g_f[t].tid = (unsigned)t;
                    fiber_init(&g_f[t]);
                }
                while (g_alive > 0) {
                    for (int t = 0; t < nt; t++) {
                        if (g_f[t].done)
                            continue;
                        g_cur = &g_f[t];
                        emu_tid.x = (unsigned)t;
                        emu_tid.y = emu_tid.z = 0;
                        emu_swap(&g_sched_sp, g_f[t].sp);
                    }
                }
            }
}

/* ---------------- runtime ---------------- */
extern "C" {
const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error (emulator)";
    case cudaErrorInvalidValue: return "invalid argument (emulator)";
    case cudaErrorMemoryAllocation: return "out of memory (emulator)";
    case cudaErrorNotSupported: return "operation not supported (emulator)";
    default: return "error (emulator)";
    }
}
cudaError_t cudaGetLastError(void)
{
    cudaError_t e = g_last_err;
    g_last_err = cudaSuccess;
    return e;
}
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev)
{
    memset(p, 0, sizeof *p);
    strcpy(p->name, "CPU CUDA emulator");
    p->totalGlobalMem = (size_t)16 << 30;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    (void)dev;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) { (void)dev; return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t *fr, size_t *tot) { *fr = (size_t)8 << 30; *tot = (size_t)16 << 30; return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = aligned_alloc(256, (n + 255) & ~(size_t)255);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMallocHost(void **p, size_t n) { return cudaMalloc(p, n); }
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMemset(void *p, int v, size_t n) { memset(p, v, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) { (void)s; memset(p, v, n); return cudaSuccess; }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind k) { (void)k; memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind k, cudaStream_t st) { (void)k; (void)st; memmove(d, s, n); return cudaSuccess; }
struct emu_stream { int x; };
struct emu_event { int x; };
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned f) { (void)f; *s = new emu_stream(); return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t s) { delete s; return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s) { (void)s; return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new emu_event(); return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned f) { (void)f; return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) { (void)e; (void)s; return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t e) { (void)e; return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) { (void)a; (void)b; *ms = 1.0f; return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode m) { (void)s; (void)m; return cudaErrorNotSupported; }
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) { (void)s; *g = NULL; return cudaErrorNotSupported; }
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long f) { (void)g; (void)f; *x = NULL; return cudaErrorNotSupported; }
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s) { (void)x; (void)s; return cudaErrorNotSupported; }
cudaError_t cudaGraphDestroy(cudaGraph_t g) { (void)g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) { (void)x; return cudaSuccess; }

/* ---------------- cuBLASLt ---------------- */
struct emu_lt { int x; };
struct emu_desc { int ta, tb; };
struct emu_layout { cudaDataType t; uint64_t rows, cols; int64_t ld; };
struct emu_pref { int x; };
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { *h = new emu_lt(); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType s) { (void)c; (void)s; *d = new emu_desc(); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *v, size_t n)
{
    int op = 0;
    memcpy(&op, v, n < sizeof op ? n : sizeof op);
    if (a == CUBLASLT_MATMUL_DESC_TRANSA) d->ta = op == CUBLAS_OP_T;
    if (a == CUBLASLT_MATMUL_DESC_TRANSB) d->tb = op == CUBLAS_OP_T;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType t, uint64_t r, uint64_t c, int64_t ld)
{
    *l = new emu_layout{t, r, c, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) { *p = new emu_pref(); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *v, size_t n) { (void)p; (void)a; (void)v; (void)n; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t p, int req, cublasLtMatmulHeuristicResult_t *res, int *nres)
{
    (void)h; (void)d; (void)a; (void)b; (void)c; (void)dd; (void)p; (void)req;
    memset(res, 0, sizeof *res);
    *nres = 1;
    return CUBLAS_STATUS_SUCCESS;
}
static float ld_el(const void *p, cudaDataType t, size_t i)
{
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A, cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta, const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t *algo, void *ws, size_t wsb, cudaStream_t s)
{
    (void)h; (void)algo; (void)ws; (void)wsb; (void)s;
    float al = *(const float *)alpha, be = *(const float *)beta;
    /* op(A) is M x K, op(B) is K x N, D is M x N (column-major) */
    int64_t M = ld->rows, N = ld->cols;
    int64_t K = d->ta ? la->rows : la->cols;
    if ((d->tb ? lb->cols : lb->rows) != (uint64_t)K) return CUBLAS_STATUS_INVALID_VALUE;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                size_t ia = d->ta ? (size_t)(m * la->ld + k) : (size_t)(k * la->ld + m);
                size_t ib = d->tb ? (size_t)(k * lb->ld + n) : (size_t)(n * lb->ld + k);
                acc += ld_el(A, la->t, ia) * ld_el(B, lb->t, ib);
            }
            float r = al * acc;
            if (be != 0.0f) r += be * ld_el(C, lc->t, (size_t)(n * lc->ld + m));
            size_t io = (size_t)(n * ld->ld + m);
            if (ld->t == CUDA_R_32F) {
                ((float *)D)[io] = r;
            } else {
                __nv_bfloat16 bb = __float2bfloat16_rn(r);
                ((uint16_t *)D)[io] = bb.x;
            }
        }
    return CUBLAS_STATUS_SUCCESS;
}
}
