/* scheduler/spec.c: the prompt-lookup (n-gram) drafter and the speculative
 * acceptance rules (greedy exact match; speculative sampling for a
 * deterministic draft). Pure functions; the scheduler calls them on the
 * engine thread. Contracts in spec.h.
 */
#include "scheduler/spec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int spec_cfg_check(int k, int ngram_min, int ngram_max, char *err, size_t errlen)
{
    if (k < 0 || k > SPEC_MAX_TOKENS) {
        if (err) snprintf(err, errlen, "num_speculative_tokens must be in [0, %d], got %d",
                          SPEC_MAX_TOKENS, k);
        return -EINVAL;
    }
    if (k == 0) return 0;
    if (ngram_min < 1 || ngram_max < ngram_min || ngram_max > SPEC_MAX_NGRAM) {
        if (err) snprintf(err, errlen,
                          "ngram sizes must satisfy 1 <= ngram_min <= ngram_max <= %d, got %d..%d",
                          SPEC_MAX_NGRAM, ngram_min, ngram_max);
        return -EINVAL;
    }
    return 0;
}

int spec_ngram_propose(const int32_t *toks, int n, int ngram_min, int ngram_max, int k,
                       int32_t *draft, int *matched_n)
{
    if (matched_n) *matched_n = 0;
    if (!toks || !draft || n < 2 || k <= 0 || ngram_min < 1 || ngram_max < ngram_min)
        return 0;
    int hi = ngram_max < n - 1 ? ngram_max : n - 1;   /* an earlier occurrence needs m < n */
    for (int m = hi; m >= ngram_min; m--) {
        const int32_t *suf = toks + (n - m);
        /* Most recent first: the latest context is the best predictor of
         * what comes next (a loop or a quote in progress). */
        for (int j = n - m - 1; j >= 0; j--) {
            if (toks[j + m - 1] != suf[m - 1] || toks[j] != suf[0]) continue;
            if (memcmp(toks + j, suf, (size_t)m * sizeof *toks) != 0) continue;
            int avail = n - (j + m);                   /* >= 1 since j < n-m */
            int c = avail < k ? avail : k;
            memcpy(draft, toks + j + m, (size_t)c * sizeof *draft);
            if (matched_n) *matched_n = m;
            return c;
        }
    }
    return 0;
}

int spec_accept_greedy(const int32_t *drafts, int k, const int32_t *target)
{
    int a = 0;
    while (a < k && drafts[a] == target[a]) a++;
    return a;
}

int spec_sample_verify(const float *p, int vocab, int32_t x, double u_accept,
                       double u_resample, int32_t *out)
{
    if (!p || !out || vocab < 1 || x < 0 || x >= vocab) return -EINVAL;
    double px = p[x] > 0.0f ? (double)p[x] : 0.0;
    if (u_accept < px) {
        *out = x;
        return 1;
    }
    /* Residual distribution max(p - q, 0) with q the point mass on x is p
     * with x removed; its mass is the sum of the others (not 1 - p[x], so a
     * p that does not sum exactly to 1 still samples correctly). */
    double rest = 0.0;
    for (int v = 0; v < vocab; v++)
        if (v != x && p[v] > 0.0f) rest += p[v];
    if (rest <= 0.0) {                 /* only reachable when px rounds below u: keep x */
        *out = x;
        return 1;
    }
    double target = u_resample * rest, acc = 0.0;
    int32_t last = -1;
    for (int v = 0; v < vocab; v++) {
        if (v == x || !(p[v] > 0.0f)) continue;
        acc += p[v];
        last = v;
        if (target < acc) {
            *out = v;
            return 0;
        }
    }
    *out = last;                        /* rounding at the top end */
    return 0;
}

/* --- adaptive draft length ----------------------------------------------------- */

static void adapt_start(struct spec_adapt *a, int probe_interval)
{
    a->started = true;
    a->probing = false;
    a->acc = SPEC_ADAPT_PRIOR_ACC;
    a->rej = SPEC_ADAPT_PRIOR_REJ;
    a->off = 0;
    a->backoff = SPEC_PROBE_FIRST < probe_interval ? SPEC_PROBE_FIRST : probe_interval;
}

/* Plain decoding for the next backoff steps, then a probe from the prior. */
static void adapt_go_off(struct spec_adapt *a, int probe_interval)
{
    a->off = a->backoff;
    a->backoff = a->backoff * 2 < probe_interval ? a->backoff * 2 : probe_interval;
    a->probing = true;
    a->acc = SPEC_ADAPT_PRIOR_ACC;
    a->rej = SPEC_ADAPT_PRIOR_REJ;
}

double spec_adapt_rate(const struct spec_adapt *a)
{
    if (!a->started) return (double)SPEC_ADAPT_PRIOR_ACC / (SPEC_ADAPT_PRIOR_ACC + SPEC_ADAPT_PRIOR_REJ);
    double t = (double)a->acc + (double)a->rej;
    return t > 0.0 ? (double)a->acc / t : 0.0;
}

int spec_adapt_limit(struct spec_adapt *a, int k, double min_accept, int probe_interval)
{
    if (k <= 0) return 0;
    if (!(min_accept > 0.0)) return k; /* adaptation off */
    if (probe_interval <= 0) probe_interval = SPEC_PROBE_INTERVAL_DEFAULT;
    if (!a->started) adapt_start(a, probe_interval);
    if (a->off > 0) {
        a->off--;
        return 0;
    }
    double r = spec_adapt_rate(a);
    int d;
    if (r >= 1.0 || min_accept >= 1.0) d = r >= 1.0 ? k : 0;
    else if (r < min_accept) d = 0;
    else { /* largest d with r^d >= min_accept (r near 1: any length, clip before the cast) */
        double x = floor(log(min_accept) / log(r) + 1e-9);
        d = x >= (double)k ? k : (int)x;
    }
    if (d <= 0) {
        adapt_go_off(a, probe_interval);
        a->off--; /* this step is the first plain one */
        return 0;
    }
    return d;
}

void spec_adapt_update(struct spec_adapt *a, int drafted, int accepted, double min_accept,
                       int probe_interval)
{
    if (drafted <= 0 || !(min_accept > 0.0)) return;
    if (probe_interval <= 0) probe_interval = SPEC_PROBE_INTERVAL_DEFAULT;
    if (!a->started) adapt_start(a, probe_interval);
    if (accepted < 0) accepted = 0;
    if (accepted > drafted) accepted = drafted;
    a->acc = a->acc * SPEC_ADAPT_DECAY + (float)accepted;
    a->rej = a->rej * SPEC_ADAPT_DECAY + (accepted < drafted ? 1.0f : 0.0f);
    if (a->probing) {
        a->probing = false;
        if (accepted == 0) adapt_go_off(a, probe_interval);
        else a->backoff = SPEC_PROBE_FIRST < probe_interval ? SPEC_PROBE_FIRST : probe_interval;
    }
}
