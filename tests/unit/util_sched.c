/* tests/unit/util_sched.c: scheduler test helpers (see util_sched.h). */
#include "tests/unit/util_sched.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "scheduler/sched_internal.h"
#include "tests/unit/util_fake_engine.h"
#include "tests/unit/util_st_writer.h"

char ts_model_dir[256];

void ts_model_make(uint32_t seed)
{
    char err[256];
    log_set_level(LOG_LVL_WARN);
    ck_assert_msg(stw_make_tiny_model(ts_model_dir, sizeof ts_model_dir, seed, err, sizeof err) == 0,
                  "%s", err);
}

void ts_model_drop(void)
{
    if (ts_model_dir[0]) stw_rmtree(ts_model_dir);
    ts_model_dir[0] = 0;
}

int ts_out_collect(struct ts_out *o, struct sched_request *r)
{
    struct sched_delta d;
    int changed = sched_request_drain(r, &d);
    ck_assert_int_ge(changed, 0);
    if (changed == 0) {
        ck_assert_int_eq(d.n, 0);
        ck_assert_ptr_null(d.choices);
        return 0;
    }
    o->n = d.n;
    ck_assert_int_le(d.n, TS_MAX_N);
    for (int c = 0; c < d.n; c++) {
        struct sched_choice_delta *cd = &d.choices[c];
        if (cd->num_tokens) {
            o->tokens[c] = realloc(o->tokens[c], sizeof(int32_t) * (size_t)(o->ntok[c] + cd->num_tokens));
            memcpy(o->tokens[c] + o->ntok[c], cd->tokens, sizeof(int32_t) * (size_t)cd->num_tokens);
            if (cd->logprobs) {
                o->lps[c] = realloc(o->lps[c], sizeof(float) * (size_t)(o->ntok[c] + cd->num_tokens));
                o->lpx[c] = realloc(o->lpx[c], sizeof(struct sched_tok_lp) * (size_t)(o->ntok[c] + cd->num_tokens));
                memcpy(o->lpx[c] + o->ntok[c], cd->logprobs, sizeof(struct sched_tok_lp) * (size_t)cd->num_tokens);
                for (int i = 0; i < cd->num_tokens; i++) {
                    ck_assert_int_eq(cd->logprobs[i].token, cd->tokens[i]);
                    o->lps[c][o->ntok[c] + i] = cd->logprobs[i].logprob;
                }
            }
            o->ntok[c] += cd->num_tokens;
        }
        ck_assert_int_eq(cd->completion_tokens, o->ntok[c]);
        if (cd->text_len) {
            o->text[c] = realloc(o->text[c], o->text_len[c] + cd->text_len + 1);
            memcpy(o->text[c] + o->text_len[c], cd->text, cd->text_len);
            o->text_len[c] += cd->text_len;
            o->text[c][o->text_len[c]] = 0;
        }
        if (cd->finish != SCHED_FINISH_NONE) {
            o->finish[c] = cd->finish;
            o->finish_count[c]++;
            o->stop_token[c] = cd->stop_token;
            o->stop_index[c] = cd->stop_index;
        }
    }
    if (d.prompt_logprobs) {
        o->plp_count++;
        free(o->plp);
        o->plp = d.prompt_logprobs;
        o->nplp = d.num_prompt_logprobs;
        d.prompt_logprobs = NULL;
    }
    if (d.done) {
        if (o->done) o->done_deltas += changed;
        o->done = true;
        o->error = d.error;
    }
    sched_delta_fini(&d);
    return changed;
}

void ts_out_fini(struct ts_out *o)
{
    for (int c = 0; c < TS_MAX_N; c++) {
        free(o->tokens[c]);
        free(o->lps[c]);
        free(o->lpx[c]);
        free(o->text[c]);
    }
    free(o->plp);
    memset(o, 0, sizeof(*o));
}

void ts_params(struct sched_params *p, const int32_t *prompt, int len, int max_tokens)
{
    sched_params_init(p);
    p->prompt = prompt;
    p->prompt_len = len;
    p->max_tokens = max_tokens;
    p->sampling.temperature = 0.0f;
}

int ts_run_sync(struct sched *s, struct engine *e, struct sched_request **rs, struct ts_out *outs,
                int nr, int max_steps)
{
    char err[256];
    int steps = 0;
    for (;;) {
        bool all = true;
        for (int i = 0; i < nr; i++) all = all && outs[i].done;
        if (all) break;
        int rc = sched_step_sync(s);
        ck_assert_int_ge(rc, 0);
        ck_assert_msg(sched_check_invariants(s, err, sizeof err) == 0, "step %d: %s", steps, err);
        if (e) ck_assert_msg(fake_engine_errors(e) == 0, "fake engine: %s", fake_engine_error_msg(e));
        for (int i = 0; i < nr; i++) ts_out_collect(&outs[i], rs[i]);
        ck_assert_int_lt(++steps, max_steps);
    }
    return steps;
}
