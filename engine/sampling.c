/* engine/sampling.c: CPU sampling of one token from one row of fp32 logits
 * (temperature, top_k, top_p, min_p, penalties, logit_bias, seeded draws,
 * raw log-probs). Runs on the engine thread; the context is its scratch.
 *
 * The contract and the order of operations are in engine/sampling.h. Cost per
 * row is O(vocab) plus a sort of only the candidates top_p needs (collected by
 * a shrinking threshold, see top_p_mask), so a 100k vocabulary stays cheap.
 */
#include "engine/sampling.h"
#include "engine/philox.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct samp_ctx {
    int vocab;
    float *work;        /* [vocab] processed logits, then probabilities */
    int *counts;        /* [vocab] output-token counts, valid where stamp == epoch */
    uint32_t *stamp;    /* [vocab] */
    uint32_t epoch;
    int *cand;          /* [vocab] candidate ids (top_k / top_p) */
    float *tmp;         /* [vocab] quickselect scratch */
};

void samp_params_init(struct samp_params *p)
{
    memset(p, 0, sizeof(*p));
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = -1;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
}

int samp_params_validate(const struct samp_params *p, int vocab, char *err, size_t errlen)
{
#define BAD(...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)
    if (!isfinite(p->temperature) || p->temperature < 0.0f || p->temperature > 100.0f)
        BAD("temperature must be between 0 and 100, got %g", p->temperature);
    if (!isfinite(p->top_p) || p->top_p <= 0.0f || p->top_p > 1.0f)
        BAD("top_p must be in (0, 1], got %g", p->top_p);
    if (p->top_k < -1)
        BAD("top_k must be -1 (disable) or at least 1, got %d", p->top_k);
    if (!isfinite(p->min_p) || p->min_p < 0.0f || p->min_p > 1.0f)
        BAD("min_p must be in [0, 1], got %g", p->min_p);
    if (!isfinite(p->presence_penalty) || p->presence_penalty < -2.0f || p->presence_penalty > 2.0f)
        BAD("presence_penalty must be in [-2, 2], got %g", p->presence_penalty);
    if (!isfinite(p->frequency_penalty) || p->frequency_penalty < -2.0f || p->frequency_penalty > 2.0f)
        BAD("frequency_penalty must be in [-2, 2], got %g", p->frequency_penalty);
    if (!isfinite(p->repetition_penalty) || p->repetition_penalty <= 0.0f || p->repetition_penalty > 100.0f)
        BAD("repetition_penalty must be in (0, 100], got %g", p->repetition_penalty);
    if (p->num_logit_bias < 0 || (p->num_logit_bias > 0 && !p->logit_bias))
        BAD("logit_bias is malformed");
    for (int i = 0; i < p->num_logit_bias; i++) {
        const struct samp_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= vocab)
            BAD("logit_bias token id %d is out of range [0, %d)", (int)b->token, vocab);
        if (!isfinite(b->bias) || b->bias < -100.0f || b->bias > 100.0f)
            BAD("logit_bias value for token %d must be in [-100, 100], got %g", (int)b->token, b->bias);
    }
    return 0;
#undef BAD
}

struct samp_ctx *samp_ctx_create(int vocab)
{
    if (vocab <= 0) return NULL;
    struct samp_ctx *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->vocab = vocab;
    c->work = malloc(sizeof(float) * (size_t)vocab);
    c->counts = malloc(sizeof(int) * (size_t)vocab);
    c->stamp = calloc((size_t)vocab, sizeof(uint32_t));
    c->cand = malloc(sizeof(int) * (size_t)vocab);
    c->tmp = malloc(sizeof(float) * (size_t)vocab);
    if (!c->work || !c->counts || !c->stamp || !c->cand || !c->tmp) goto fail;
    return c;
fail:
    samp_ctx_destroy(c);
    return NULL;
}

void samp_ctx_destroy(struct samp_ctx *c)
{
    if (!c) return;
    free(c->work);
    free(c->counts);
    free(c->stamp);
    free(c->cand);
    free(c->tmp);
    free(c);
}

/* --- counter-based RNG ----------------------------------------------------- */

double samp_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return philox_uniform(seed, stream, counter);
}

/* --- helpers ---------------------------------------------------------------- */

/* log-sum-exp of x[n] (the raw log-softmax normaliser): expf terms (each in
 * (0, 1] after the max shift), summed in double. */
static double logsumexp(const float *x, int n)
{
    float m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > m) m = x[i];
    if (!isfinite(m)) return m;
    double s = 0.0;
    for (int i = 0; i < n; i++) s += expf(x[i] - m);
    return m + log(s);
}

/* Top k of x[n] by value, descending, ties to the lower id (insertion into a
 * k-sized list: k <= 20). */
static int top_k_list(const float *x, int n, int k, double lse, struct samp_logprob *out)
{
    int m = 0;
    if (k > n) k = n;
    for (int i = 0; i < n && k > 0; i++) {
        float v = x[i];
        if (m == k && !(v > out[m - 1].logprob)) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && v > out[j - 1].logprob) {
            out[j] = out[j - 1];
            j--;
        }
        out[j].token = i;
        out[j].logprob = v;
    }
    for (int i = 0; i < m; i++) out[i].logprob = (float)(out[i].logprob - lse);
    return m;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* k-th largest value (1-based) of v[n] by quickselect; v is clobbered. */
static float kth_largest(float *v, int n, int k)
{
    int lo = 0, hi = n - 1, target = k - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) {
                float t = v[i]; v[i] = v[j]; v[j] = t;
                i++; j--;
            }
        }
        if (target <= j) hi = j;
        else if (target >= i) lo = i;
        else return v[target];
    }
    return v[lo];
}

/* qsort_r (glibc, _GNU_SOURCE) so concurrent contexts share no state */
static int cmp_prob_desc(const void *a, const void *b, void *arg)
{
    const float *probs = arg;
    int ia = *(const int *)a, ib = *(const int *)b;
    float pa = probs[ia], pb = probs[ib];
    if (pa > pb) return -1;
    if (pa < pb) return 1;
    return ia < ib ? -1 : ia > ib;
}

/* Zeroes every probability outside the smallest highest-probability set whose
 * mass reaches top_p (the token that crosses top_p is kept, as in vLLM).
 * Only the candidates above a threshold are sorted: every token below the
 * threshold is smaller than every token above it, so once the collected mass
 * reaches top_p the kept prefix lies inside the collected set. */
static void top_p_mask(struct samp_ctx *c, float *p, int n, float pmax, double total, float top_p)
{
    double need = (double)top_p * total;
    float thr = pmax / 64.0f;
    int m = 0;
    for (;;) {
        double mass = 0.0;
        m = 0;
        for (int i = 0; i < n; i++)
            if (p[i] > 0.0f && p[i] >= thr) {
                c->cand[m++] = i;
                mass += p[i];
            }
        if (mass >= need * (1.0 - 1e-9) || thr == 0.0f) break;
        thr = thr > 1e-30f ? thr / 4096.0f : 0.0f;
    }
    int keep = m;
    if (m > 4096) {
        /* a flat distribution: sorting m candidates costs too much; bisect for
         * the largest threshold whose kept mass (p >= t) still reaches top_p.
         * Equal to the sort except that ties at the threshold are all kept. */
        float *v = c->tmp; /* the candidates' values, contiguous (vectorizes) */
        for (int i = 0; i < m; i++) v[i] = p[c->cand[i]];
        float lo = 0.0f, hi = pmax;
        for (int it = 0; it < 24; it++) { /* pmax / 2^24: below float resolution of pmax */
            float mid = 0.5f * (lo + hi);
            /* 16 float lanes (vectorizes without -ffast-math), then double */
            float acc[16] = {0};
            int i = 0;
            for (; i + 16 <= m; i += 16)
                for (int l = 0; l < 16; l++) acc[l] += v[i + l] >= mid ? v[i + l] : 0.0f;
            double mass = 0.0;
            for (int l = 0; l < 16; l++) mass += acc[l];
            for (; i < m; i++) mass += v[i] >= mid ? v[i] : 0.0f;
            if (mass >= need) lo = mid;
            else hi = mid;
        }
        for (int i = 0; i < n; i++)
            if (p[i] < lo) p[i] = 0.0f;
        return;
    }
    qsort_r(c->cand, (size_t)m, sizeof(int), cmp_prob_desc, p);
    double cum = 0.0;
    for (int i = 0; i < m; i++) {
        cum += p[c->cand[i]];
        if (cum >= need) {
            keep = i + 1;
            break;
        }
    }
    /* mark kept ones negative, zero the rest, restore the sign */
    for (int i = 0; i < keep; i++) p[c->cand[i]] = -p[c->cand[i]];
    for (int i = 0; i < n; i++) p[i] = p[i] < 0.0f ? -p[i] : 0.0f;
}

/* --- the sampler ------------------------------------------------------------- */

int samp_sample(struct samp_ctx *c, const float *logits, const struct samp_params *p,
                const int32_t *prompt, int num_prompt, const int32_t *output, int num_output,
                const int32_t *banned, int num_banned, uint64_t seed, uint64_t stream,
                uint64_t counter, int num_logprobs, struct samp_result *out)
{
    if (!c || !logits || !p || !out || num_logprobs < -1 || num_logprobs > SAMP_MAX_LOGPROBS)
        return -EINVAL;
    const int n = c->vocab;
    float *w = c->work;
    bool rep = p->repetition_penalty != 1.0f;
    bool freqpres = p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
    if (samp_is_greedy(p) && !rep && !freqpres && p->num_logit_bias == 0 && num_banned == 0) {
        /* plain greedy: no copy of the row */
        out->token = argmax(logits, n);
        goto logprobs;
    }
    memcpy(w, logits, sizeof(float) * (size_t)n);

    for (int i = 0; i < p->num_logit_bias; i++) {
        int32_t t = p->logit_bias[i].token;
        if (t >= 0 && t < n) w[t] += p->logit_bias[i].bias;
    }
    for (int i = 0; i < num_banned; i++)
        if (banned[i] >= 0 && banned[i] < n) w[banned[i]] = -INFINITY;

    if (rep || freqpres) {
        /* a fresh epoch invalidates every stamp at once (no O(vocab) clear) */
        if (++c->epoch == 0) {
            memset(c->stamp, 0, sizeof(uint32_t) * (size_t)n);
            c->epoch = 1;
        }
        const uint32_t ep = c->epoch;
        for (int i = 0; i < num_output; i++) {
            int32_t t = output[i];
            if (t < 0 || t >= n) continue;
            if (c->stamp[t] != ep) { c->stamp[t] = ep; c->counts[t] = 0; }
            c->counts[t]++;
        }
        if (rep) {
            /* HF/vLLM: divide positive logits, multiply negative ones, once per
             * distinct token seen in prompt or output */
            const float rp = p->repetition_penalty;
            for (int i = 0; i < num_prompt; i++) {
                int32_t t = prompt[i];
                if (t < 0 || t >= n) continue;
                if (c->stamp[t] != ep) { c->stamp[t] = ep; c->counts[t] = 0; }
            }
            /* stamp now marks the union; apply once per distinct id */
            for (int pass = 0; pass < 2; pass++) {
                const int32_t *src = pass ? output : prompt;
                int cnt = pass ? num_output : num_prompt;
                for (int i = 0; i < cnt; i++) {
                    int32_t t = src[i];
                    if (t < 0 || t >= n || c->stamp[t] != ep) continue;
                    if (w[t] > 0.0f) w[t] /= rp;
                    else w[t] *= rp;
                    c->stamp[t] = ep - 1; /* done: hide from the rest of this pass */
                }
            }
            /* restore the stamps of output tokens for the count lookups below */
            for (int i = 0; i < num_output; i++) {
                int32_t t = output[i];
                if (t >= 0 && t < n) c->stamp[t] = ep;
            }
        }
        if (freqpres) {
            for (int i = 0; i < num_output; i++) {
                int32_t t = output[i];
                if (t < 0 || t >= n || c->stamp[t] != ep) continue;
                int k = c->counts[t];
                w[t] -= p->frequency_penalty * (float)k + p->presence_penalty;
                c->stamp[t] = ep - 1;
            }
        }
    }

    int chosen;
    int amax = argmax(w, n);
    float wmax = w[amax];
    if (!(wmax > -INFINITY)) {
        chosen = argmax(logits, n); /* everything banned: fall back to the raw argmax */
    } else if (samp_is_greedy(p)) {
        chosen = amax;
    } else {
        const float invt = 1.0f / p->temperature;
        if (p->top_k > 0 && p->top_k < n) {
            memcpy(c->tmp, w, sizeof(float) * (size_t)n);
            float kth = kth_largest(c->tmp, n, p->top_k);
            for (int i = 0; i < n; i++)
                if (w[i] < kth) w[i] = -INFINITY;
        }
        /* softmax of w / T (probabilities in place, unnormalised total; the
         * max maps to exactly 1) */
        double total = 0.0;
        for (int i = 0; i < n; i++) {
            float e = expf((w[i] - wmax) * invt); /* -inf -> 0 */
            w[i] = e;
            total += e;
        }
        const float pmax = 1.0f;
        if (p->top_p < 1.0f) {
            top_p_mask(c, w, n, pmax, total, p->top_p);
            total = 0.0;
            for (int i = 0; i < n; i++) total += w[i];
        }
        if (p->min_p > 0.0f) {
            float thr = p->min_p * pmax;
            total = 0.0;
            for (int i = 0; i < n; i++) {
                if (w[i] < thr) w[i] = 0.0f;
                total += w[i];
            }
        }
        /* inverse-CDF draw in id order: independent of anything but the key */
        double u = samp_rng_uniform(seed, stream, counter) * total;
        double cum = 0.0;
        chosen = -1;
        int last = -1;
        for (int i = 0; i < n; i++) {
            if (w[i] <= 0.0f) continue;
            last = i;
            cum += w[i];
            if (u < cum) {
                chosen = i;
                break;
            }
        }
        if (chosen < 0) chosen = last >= 0 ? last : argmax(logits, n);
    }

    out->token = chosen;
logprobs:
    out->num_top = 0;
    out->logprob = 0.0f;
    if (num_logprobs >= 0) { /* the normaliser costs an exp per id: only when asked */
        double lse = logsumexp(logits, n);
        out->logprob = (float)(logits[out->token] - lse);
        out->num_top = num_logprobs > 0 ? top_k_list(logits, n, num_logprobs, lse, out->top) : 0;
    }
    return 0;
}

int samp_logprobs(struct samp_ctx *c, const float *logits, int32_t token, int k,
                  struct samp_result *out)
{
    if (!c || !logits || !out || token < 0 || token >= c->vocab || k < 0 || k > SAMP_MAX_LOGPROBS)
        return -EINVAL;
    double lse = logsumexp(logits, c->vocab);
    out->token = token;
    out->logprob = (float)(logits[token] - lse);
    out->num_top = k > 0 ? top_k_list(logits, c->vocab, k, lse, out->top) : 0;
    return 0;
}
