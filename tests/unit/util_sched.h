/* tests/unit/util_sched.h: helpers shared by the scheduler test suites:
 * collecting a request's output across drains, stepping a scheduler
 * synchronously with invariant checks, and reference runs.
 *
 * defines: struct ts_out, ts_out_collect, ts_out_fini, ts_params,
 *          ts_run_sync, ts_model_dir, ts_model_make, ts_model_drop
 */
#ifndef DS_TESTS_UTIL_SCHED_H
#define DS_TESTS_UTIL_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "scheduler/sched.h"

#define TS_MAX_N 8

/* Everything a request delivered, accumulated over drains. */
struct ts_out {
    int n;
    int32_t *tokens[TS_MAX_N];
    int ntok[TS_MAX_N];
    float *lps[TS_MAX_N];          /* chosen-token logprobs when asked */
    struct sched_tok_lp *lpx[TS_MAX_N]; /* full entries (with alternatives) */
    char *text[TS_MAX_N];
    size_t text_len[TS_MAX_N];
    enum sched_finish finish[TS_MAX_N];
    int finish_count[TS_MAX_N];    /* how many deltas carried a finish (must be 1) */
    int32_t stop_token[TS_MAX_N];
    int stop_index[TS_MAX_N];
    struct sched_tok_lp *plp;
    int nplp;
    int plp_count;                 /* deltas that carried prompt logprobs */
    bool done;
    int done_deltas;               /* deltas with done set after the first */
    int error;
};

/* Drains r into o (accumulating). Returns 1 if anything changed. */
int ts_out_collect(struct ts_out *o, struct sched_request *r);
void ts_out_fini(struct ts_out *o);

/* A greedy params block for a prompt. */
void ts_params(struct sched_params *p, const int32_t *prompt, int len, int max_tokens);

/* Steps s (never started) until every request in rs is done, collecting into
 * outs, checking invariants (and, when e is a fake engine, its error count)
 * after every step (ck_assert on failure); e may be NULL. Returns the number of steps. */
int ts_run_sync(struct sched *s, struct engine *e, struct sched_request **rs, struct ts_out *outs,
                int nr, int max_steps);

/* The tiny random checkpoint a scheduler suite runs on (stw_make_tiny_model
 * from seed, in a fresh temp dir), for Check fixtures: ts_model_make sets the
 * log level to WARN and fails the test when the model cannot be written;
 * ts_model_drop removes it. One per test process. */
extern char ts_model_dir[256];
void ts_model_make(uint32_t seed);
void ts_model_drop(void);

#endif
