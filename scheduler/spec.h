/* scheduler/spec.h: speculative decoding helpers that need no engine: the
 * prompt-lookup (n-gram) drafter and the acceptance rules.
 *
 * defines: SPEC_NGRAM_MIN_DEFAULT, SPEC_NGRAM_MAX_DEFAULT, spec_cfg_check,
 *          spec_ngram_propose, spec_accept_greedy, spec_sample_verify,
 *          struct spec_adapt, spec_adapt_limit, spec_adapt_update, spec_adapt_rate,
 *          SPEC_MIN_ACCEPT_DEFAULT, SPEC_PROBE_INTERVAL_DEFAULT
 *
 * Threads: pure functions on caller-owned arrays; any thread (the scheduler
 * calls them on the engine thread).
 *
 * OLMo Hybrid has no draft head, so drafts come from the request's own
 * tokens (prompt then output): find the most recent earlier occurrence of the
 * last n tokens, for n from ngram_max down to ngram_min, and propose the up to
 * k tokens that followed it. The acceptance rules keep decoding lossless:
 * greedy rows accept drafts while they equal the target argmax (then the
 * target's own next token is the bonus); sampled rows use speculative
 * sampling for a deterministic draft, which leaves the output distribution
 * unchanged.
 */
#ifndef DS_SCHEDULER_SPEC_H
#define DS_SCHEDULER_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* vLLM's defaults for method "ngram" (prompt_lookup_min/max both 5 when
 * neither is given). */
#define SPEC_NGRAM_MIN_DEFAULT 5
#define SPEC_NGRAM_MAX_DEFAULT 5
/* Upper bounds on what a configuration may ask for (keeps scans and the
 * per-sequence slot count bounded). */
#define SPEC_MAX_TOKENS 16
#define SPEC_MAX_NGRAM 64

/* Validates a drafter configuration: 0 <= k <= SPEC_MAX_TOKENS (0 = off) and,
 * when k > 0, 1 <= ngram_min <= ngram_max <= SPEC_MAX_NGRAM. Returns 0, or
 * -EINVAL with a message in err (which may be NULL). */
int spec_cfg_check(int k, int ngram_min, int ngram_max, char *err, size_t errlen);

/* Prompt-lookup drafting over toks[0..n) (prompt then generated ids).
 * For m = ngram_max down to ngram_min (m < n), looks for the most recent
 * j < n-m with toks[j..j+m) == toks[n-m..n); the first m that matches wins
 * and the drafts are toks[j+m ..) up to k of them and never past n.
 * Writes them to draft[0..ret) and returns ret (0 when nothing matches or the
 * arguments are out of range; negative never). *matched_n (may be NULL)
 * receives m, or 0. Cost O(n * (ngram_max - ngram_min + 1) * ngram_max). */
int spec_ngram_propose(const int32_t *toks, int n, int ngram_min, int ngram_max, int k,
                       int32_t *draft, int *matched_n);

/* Greedy acceptance. target[t] is the argmax after verify position t
 * (t = 0..k: position 0 is the sequence's last token, position t its draft
 * t-1). Returns a = the number of accepted drafts (drafts[i] == target[i] for
 * every i < a, and a == k or drafts[a] != target[a]); the tokens the row
 * emits are drafts[0..a) then the bonus target[a], a+1 in all. */
int spec_accept_greedy(const int32_t *drafts, int k, const int32_t *target);

/* Speculative sampling for one deterministic draft x against the target
 * distribution p[0..vocab) (non-negative, summing to ~1, after temperature,
 * top-k/top-p): accept x when u_accept < p[x]; otherwise draw from p with x
 * removed and renormalized, by inverse CDF with u_resample (both uniforms in
 * [0,1)). Writes the token to *out and returns 1 when x was accepted, 0 when
 * resampled, -EINVAL for x out of range. The marginal of *out is exactly p. */
int spec_sample_verify(const float *p, int vocab, int32_t x, double u_accept,
                       double u_resample, int32_t *out);

/* --- adaptive draft length (per sequence) -------------------------------
 *
 * A draft token costs verify work whether or not it is accepted, so drafting
 * on text that does not repeat only slows decoding down. Each sequence keeps
 * an estimate a of the probability that a draft token is accepted given the
 * ones before it were: decayed counts of accepted drafts A and rejections R
 * (a verify that stopped before its last draft is one rejection; one that
 * accepted everything is none: the run was cut, not refused), a = A/(A+R),
 * both counts multiplied by SPEC_ADAPT_DECAY before each verify's result is
 * added, starting from the prior A=2, R=1. Draft t+1 is accepted with
 * probability about a^(t+1), so a step drafts the largest d <= k with
 * a^d >= min_accept: min_accept is the price of one draft token in decode
 * steps (0.1: a draft is worth verifying when it is accepted at least one
 * time in ten). When even one draft is not worth it (a < min_accept) the
 * sequence decodes plainly for an off period, then probes again from the
 * prior; a probe that accepts nothing doubles the off period (4, 8, ... up
 * to probe_interval steps), one that accepts something resets it to 4.
 * min_accept <= 0 turns adaptation off (always k drafts, vLLM's behaviour).
 */
#define SPEC_MIN_ACCEPT_DEFAULT 0.1
#define SPEC_PROBE_INTERVAL_DEFAULT 64
#define SPEC_PROBE_FIRST 4
#define SPEC_ADAPT_DECAY 0.8f
#define SPEC_ADAPT_PRIOR_ACC 2.0f
#define SPEC_ADAPT_PRIOR_REJ 1.0f

/* Per-sequence adaptation state; all zero = fresh (a new sequence). */
struct spec_adapt {
    bool started;
    bool probing;   /* the next verify is a probe after an off period */
    float acc, rej; /* decayed counts (see above) */
    int off;        /* decode steps left without drafting */
    int backoff;    /* length of the next off period */
};

/* Drafts the sequence may propose this decode step, 0..k (0 = plain
 * decode). Call once per decode step of the sequence (it counts down the
 * off period). probe_interval <= 0 means SPEC_PROBE_INTERVAL_DEFAULT. */
int spec_adapt_limit(struct spec_adapt *a, int k, double min_accept, int probe_interval);
/* Records one verify: drafted > 0 drafts were verified, accepted of them
 * (0..drafted) were emitted as proposed. Nothing for drafted <= 0. */
void spec_adapt_update(struct spec_adapt *a, int drafted, int accepted, double min_accept,
                       int probe_interval);
/* The current estimate of the per-draft acceptance probability. */
double spec_adapt_rate(const struct spec_adapt *a);

#endif
