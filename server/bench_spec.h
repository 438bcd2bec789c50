/* server/bench_spec.h: `deltaserve bench --spec`, the speculative decoding
 * benchmark (issue 9, item 5), and the CPU-side pieces it is built from.
 *
 * defines: struct bench_spec_setting, struct bench_spec_result,
 *          bench_spec_teacher_force, bench_spec_projected_speedup,
 *          bench_spec_code_edit, bench_spec_quote, bench_spec_free_text,
 *          bench_spec_main
 *
 * With random weights a 7B model's own continuation is noise, so the two
 * factors of the speedup are measured apart:
 *   (a) GPU: the step time of B rows feeding 1+k tokens each (verify rows,
 *       logits at every position, a state snapshot per token) over the step
 *       time of B plain decodes, k = 1..max, through eng_forward on the CUDA
 *       backend at 7B shapes (random weights, --context cached tokens);
 *   (b) CPU: the drafter's acceptance by teacher forcing: the "model output"
 *       is a known target text (an edited copy of a code file in the prompt,
 *       an answer quoting a document in the prompt, free text not in the
 *       prompt), tokenized with the real tokenizer; each decode step drafts
 *       as the scheduler would (scheduler/spec.h: n-gram lookup, adaptive
 *       length) and accepts the drafts that equal the target.
 * The projected speedup of a setting is target tokens / sum over its steps of
 * (step time with that step's 1+d tokens / plain decode step time).
 *
 * Threads: main thread only; the helpers are pure (caller-owned memory).
 */
#ifndef DS_SERVER_BENCH_SPEC_H
#define DS_SERVER_BENCH_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "scheduler/spec.h"

/* One drafting configuration (the scheduler's flags). */
struct bench_spec_setting {
    int k;               /* --num-speculative-tokens, 1..SPEC_MAX_TOKENS */
    int ngram_min, ngram_max;
    double min_accept;   /* --spec-min-acceptance; 0 = fixed length */
    int probe_interval;  /* --spec-probe-interval; 0 = default */
};

struct bench_spec_result {
    long tokens;         /* target tokens emitted by decode steps (all but the first) */
    long steps;          /* decode steps of the sequence */
    long verify_steps;   /* steps that drafted */
    long drafts;         /* draft tokens verified */
    long accepted;       /* drafts equal to the target */
    long steps_by_draft[SPEC_MAX_TOKENS + 1]; /* steps that fed 1+d tokens, by d */
};

/* Teacher-forced decoding of target[0..nt) after prompt[0..np): target[0]
 * comes from the prefill; every later token from a decode step that drafts
 * like the scheduler (spec_adapt_limit, then at most the tokens left minus
 * one, then spec_ngram_propose over prompt + emitted target) and emits the
 * drafts equal to the target plus one more target token. Returns 0, or
 * -EINVAL for bad arguments, -ENOMEM. */
int bench_spec_teacher_force(const int32_t *prompt, int np, const int32_t *target, int nt,
                             const struct bench_spec_setting *s, struct bench_spec_result *r);

/* tokens / sum_d steps_by_draft[d] * rel_cost[d], with rel_cost[0] = 1 and
 * rel_cost[d] = (step time feeding 1+d tokens) / (plain decode step time)
 * for d = 1..max_d. Returns -1 when a step drafted more than max_d or
 * r has no steps. */
double bench_spec_projected_speedup(const struct bench_spec_result *r, const double *rel_cost,
                                    int max_d);

/* Workload texts (malloc'd NUL-terminated *prompt and *target; the caller
 * frees both). Returns 0, -EINVAL (no usable input), -ENOMEM.
 *   code_edit: the three most frequent identifiers of a C source (5+ chars,
 *     not keywords) renamed X -> ds_X everywhere; prompt = the instruction
 *     and the original file, target = the whole edited file (a fenced block).
 *     *what (may be NULL) gets "a->ds_a, ..." (malloc'd).
 *   quote: prompt = an instruction, the document and a question; target =
 *     an answer quoting every second paragraph of 200+ bytes (at most 8)
 *     verbatim, with a short line of its own after each.
 *   free_text: prompt = a short instruction; target = the text itself (not
 *     in the prompt: only its own repeats can be drafted). */
int bench_spec_code_edit(const char *src, size_t len, char **prompt, char **target, char **what);
int bench_spec_quote(const char *doc, size_t len, char **prompt, char **target);
int bench_spec_free_text(const char *text, size_t len, char **prompt, char **target);

/* `deltaserve bench --spec [options]` (argv after --spec). Returns 0, 2 for
 * bad options or unreadable inputs, 1 for a device failure. The GPU part
 * reports "unsupported" (and the projection is skipped) when this build or
 * machine has no CUDA device or the backend refuses verify rows. */
int bench_spec_main(int argc, char **argv);

#endif
