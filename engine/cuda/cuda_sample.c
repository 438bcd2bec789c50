/* engine/cuda/cuda_sample.c: device sampling for the CUDA backend: the
 * standalone sampler (cuda_sample.h) and the backend's ops->sample /
 * ops->fetch_logits over the logits rows the last forward kept on the device
 * (eng_batch.logits_on_device).
 *
 * Per call: the rows' parameters become struct kern_samp_job entries and
 * their logit_bias, bans and penalty history go into one pool behind them,
 * in one pinned buffer that goes up in one copy. The history is reduced on
 * the host to its distinct tokens with their output counts (O(history), the
 * same walk the CPU sampler does), so the kernel touches only those ids and
 * the upload is at most the history's size. Steps beyond the capacity fixed
 * at init answer -E2BIG and the scheduler samples them on the host.
 *
 * Threads: init/fini on the main thread, the rest on the engine thread.
 */
#include "engine/cuda/cuda_sample.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"

/* jobs, then the pool, 16-byte aligned */
static size_t jobs_bytes(int n)
{
    return ((size_t)n * sizeof(struct kern_samp_job) + 15) & ~(size_t)15;
}

size_t cu_sampler_device_bytes(int vocab, int max_jobs, size_t pool_ints)
{
    return jobs_bytes(max_jobs) + pool_ints * 4 +
           (size_t)max_jobs * kern_samp_work_floats(vocab) * 4 +
           (size_t)max_jobs * (sizeof(struct samp_result) + 4);
}

void cu_sampler_fini(struct cu_sampler *s)
{
    if (!s)
        return;
    if (s->h_stage)
        cudaFreeHost(s->h_stage);
    if (s->h_out)
        cudaFreeHost(s->h_out);
    if (s->h_margin)
        cudaFreeHost(s->h_margin);
    cudaFree(s->d_stage);
    cudaFree(s->d_work);
    cudaFree(s->d_out);
    cudaFree(s->d_margin);
    free(s->stamp);
    free(s->cnt);
    memset(s, 0, sizeof *s);
}

int cu_sampler_init(struct cu_sampler *s, int vocab, int max_jobs, size_t pool_ints,
                    cudaStream_t stream)
{
    memset(s, 0, sizeof *s);
    if (vocab <= 0 || max_jobs <= 0 || pool_ints > (size_t)INT32_MAX)
        return -EINVAL;
    s->vocab = vocab;
    s->max_jobs = max_jobs;
    s->pool_cap = pool_ints;
    s->stream = stream;
    size_t stage = jobs_bytes(max_jobs) + pool_ints * 4;
    size_t nj = (size_t)max_jobs;
    if (cudaMallocHost((void **)&s->h_stage, stage) != cudaSuccess ||
        cudaMalloc((void **)&s->d_stage, stage) != cudaSuccess ||
        cudaMalloc((void **)&s->d_work, nj * kern_samp_work_floats(vocab) * 4) != cudaSuccess ||
        cudaMalloc((void **)&s->d_out, nj * sizeof(struct samp_result)) != cudaSuccess ||
        cudaMallocHost((void **)&s->h_out, nj * sizeof(struct samp_result)) != cudaSuccess ||
        cudaMalloc((void **)&s->d_margin, nj * 4) != cudaSuccess ||
        cudaMallocHost((void **)&s->h_margin, nj * 4) != cudaSuccess)
        goto fail;
    s->stamp = calloc((size_t)vocab, sizeof *s->stamp);
    s->cnt = calloc((size_t)vocab, sizeof *s->cnt);
    if (!s->stamp || !s->cnt)
        goto fail;
    return 0;
fail:
    (void)cudaGetLastError();
    cu_sampler_fini(s);
    return -ENOMEM;
}

/* The distinct history tokens of one row as (token, output count) pairs at
 * pool[*used...]: prompt u output with repetition, output alone otherwise.
 * Returns the pair count, or -E2BIG when the pool is full. */
static int pack_penalties(struct cu_sampler *s, const struct eng_sample_row *r, bool rep,
                          int32_t *pool, size_t *used)
{
    const int V = s->vocab;
    if (++s->epoch == 0) { /* a fresh epoch invalidates every stamp at once */
        memset(s->stamp, 0, sizeof(*s->stamp) * (size_t)V);
        s->epoch = 1;
    }
    const uint32_t ep = s->epoch;
    size_t start = *used;
    int np = 0;
    for (int pass = 0; pass < (rep ? 2 : 1); pass++) {
        const int32_t *src = pass ? r->prompt : r->output;
        int cnt = pass ? r->num_prompt : r->num_output;
        for (int i = 0; i < cnt; i++) {
            int32_t t = src[i];
            if (t < 0 || t >= V)
                continue;
            if (s->stamp[t] != ep) {
                if (start + 2 * (size_t)np + 2 > s->pool_cap)
                    return -E2BIG;
                s->stamp[t] = ep;
                s->cnt[t] = 0;
                pool[start + 2 * (size_t)np] = t;
                np++;
            }
            if (!pass)
                s->cnt[t]++;
        }
    }
    for (int e = 0; e < np; e++)
        pool[start + 2 * (size_t)e + 1] = s->cnt[pool[start + 2 * (size_t)e]];
    *used = start + 2 * (size_t)np;
    return np;
}

int cu_sampler_run(struct cu_sampler *s, const float *d_logits, int num_rows,
                   const struct eng_sample_row *rows, int n, struct samp_result *out,
                   float *margin)
{
    if (!s || !d_logits || n < 0 || (n > 0 && (!rows || !out)))
        return -EINVAL;
    if (n == 0)
        return 0;
    if (n > s->max_jobs)
        return -E2BIG;
    const int V = s->vocab;
    struct kern_samp_job *jobs = (struct kern_samp_job *)s->h_stage;
    int32_t *pool = (int32_t *)(s->h_stage + jobs_bytes(n));
    size_t used = 0;
    for (int j = 0; j < n; j++) {
        const struct eng_sample_row *r = &rows[j];
        const struct samp_params *p = r->params;
        if (!p || r->logits_row < 0 || r->logits_row >= num_rows || r->num_logprobs < -1 ||
            r->num_logprobs > SAMP_MAX_LOGPROBS || r->num_banned < 0 || r->num_prompt < 0 ||
            r->num_output < 0 || p->num_logit_bias < 0 ||
            (p->num_logit_bias > 0 && !p->logit_bias))
            return -EINVAL;
        struct kern_samp_job *J = &jobs[j];
        memset(J, 0, sizeof *J);
        J->row = r->logits_row;
        J->num_logprobs = r->num_logprobs;
        J->greedy = samp_is_greedy(p);
        J->top_k = p->top_k > 0 && p->top_k < V ? p->top_k : 0;
        J->invt = J->greedy ? 0.0f : 1.0f / p->temperature; /* as sampling.c computes it */
        J->top_p = p->top_p;
        J->min_p = p->min_p;
        J->rep = p->repetition_penalty;
        J->freq = p->frequency_penalty;
        J->pres = p->presence_penalty;
        J->seed = r->seed;
        J->stream = r->stream;
        J->counter = r->counter;
        /* logit_bias in request order (duplicates add in order, as on the CPU) */
        if (used + 2 * (size_t)p->num_logit_bias > s->pool_cap)
            return -E2BIG;
        J->bias_off = (int32_t)used;
        J->nbias = p->num_logit_bias;
        for (int b = 0; b < p->num_logit_bias; b++) {
            float f = p->logit_bias[b].bias;
            int32_t bits;
            memcpy(&bits, &f, 4);
            pool[used++] = p->logit_bias[b].token;
            pool[used++] = bits;
        }
        if (used + (size_t)r->num_banned > s->pool_cap)
            return -E2BIG;
        J->ban_off = (int32_t)used;
        J->nban = r->num_banned;
        for (int b = 0; b < r->num_banned; b++)
            pool[used++] = r->banned[b];
        bool rep = p->repetition_penalty != 1.0f;
        bool fp = p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
        J->pen_off = (int32_t)used;
        if (rep || fp) {
            if ((r->num_output > 0 && !r->output) || (rep && r->num_prompt > 0 && !r->prompt))
                return -EINVAL;
            int np = pack_penalties(s, r, rep, pool, &used);
            if (np < 0)
                return np;
            J->npen = np;
        }
    }
    size_t bytes = jobs_bytes(n) + used * 4;
    CU_CHECK(cudaMemcpyAsync(s->d_stage, s->h_stage, bytes, cudaMemcpyHostToDevice, s->stream));
    int rc = kern_sample(d_logits, V, (const struct kern_samp_job *)s->d_stage,
                         (const int32_t *)(s->d_stage + jobs_bytes(n)), n, s->d_work, s->d_out,
                         margin ? s->d_margin : NULL, s->stream);
    if (rc) {
        LOG_ERROR("cuda: kern_sample launch failed: %s", cudaGetErrorString((cudaError_t)rc));
        return -EIO;
    }
    CU_CHECK(cudaMemcpyAsync(s->h_out, s->d_out, (size_t)n * sizeof(struct samp_result),
                             cudaMemcpyDeviceToHost, s->stream));
    if (margin)
        CU_CHECK(cudaMemcpyAsync(s->h_margin, s->d_margin, (size_t)n * 4, cudaMemcpyDeviceToHost,
                                 s->stream));
    CU_CHECK(cudaStreamSynchronize(s->stream));
    memcpy(out, s->h_out, (size_t)n * sizeof(struct samp_result));
    if (margin)
        memcpy(margin, s->h_margin, (size_t)n * 4);
    return 0;
}

/* --- the backend's ops ---------------------------------------------------------- */

static int sample_jobs(const struct eng_cuda_options *o) { return o->max_seqs > 0 ? o->max_seqs : 1; }

size_t cu_sample_workspace_bytes(const struct cfg_model *c, const struct eng_cuda_options *o)
{
    if (o->no_device_sampling)
        return 0;
    return cu_sampler_device_bytes(c->vocab_size, sample_jobs(o), CU_SAMPLE_POOL_INTS);
}

int cu_sample_backend_init(struct engine *e, struct cu_impl *m)
{
    m->kept_rows = -1;
    e->sample_max_logits = 0;
    if (m->opt.no_device_sampling)
        return 0;
    m->sampler = calloc(1, sizeof *m->sampler);
    if (!m->sampler)
        return -ENOMEM;
    int rc = cu_sampler_init(m->sampler, m->V, sample_jobs(&m->opt), CU_SAMPLE_POOL_INTS,
                             m->stream);
    if (rc) {
        free(m->sampler);
        m->sampler = NULL;
        return rc;
    }
    e->sample_max_logits = m->opt.max_logits; /* one lm_head chunk stays on the device */
    return 0;
}

void cu_sample_backend_fini(struct cu_impl *m)
{
    if (m && m->sampler) {
        cu_sampler_fini(m->sampler);
        free(m->sampler);
        m->sampler = NULL;
    }
}

int cu_sample_op(struct engine *e, const struct eng_sample_row *rows, int n,
                 struct samp_result *out)
{
    struct cu_impl *m = e->impl;
    if (!m->sampler || m->kept_rows < 0)
        return -EINVAL; /* no forward kept its logits */
    int rc = cu_sampler_run(m->sampler, m->logits, m->kept_rows, rows, n, out, NULL);
    if (rc == -E2BIG) {
        /* rare (more rows than max_seqs after n>1 forks, or huge penalty
         * histories): say so now and then, the scheduler samples on the host */
        if (m->sample_fallbacks++ % 1000 == 0)
            LOG_WARN("cuda: a step with %d sampled rows exceeds the device sampler (%d rows, "
                     "%zu history entries): sampled on the host (%llu times so far)",
                     n, m->sampler->max_jobs, m->sampler->pool_cap,
                     (unsigned long long)m->sample_fallbacks);
    }
    return rc;
}

int cu_fetch_logits_op(struct engine *e, float *logits)
{
    struct cu_impl *m = e->impl;
    if (m->kept_rows < 0 || !logits)
        return -EINVAL;
    if (m->kept_rows > 0)
        CU_CHECK(cudaMemcpyAsync(logits, m->logits, (size_t)m->kept_rows * m->V * 4,
                                 cudaMemcpyDeviceToHost, m->stream));
    CU_CHECK(cudaStreamSynchronize(m->stream));
    return 0;
}
