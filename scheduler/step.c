/* scheduler/step.c: runs one planned step on the engine thread: builds the
 * varlen batch (engine/engine.h contract), calls the engine, turns logits
 * rows into prompt log-probs and sampled tokens, forks n>1 requests after
 * their prefill, checks stop conditions, and delivers to the outboxes.
 *
 * Notifications and the scheduler's reference drops are deferred to the end
 * of the step (sched_touch), so no request can be freed while a later row of
 * the same step still points at it.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "scheduler/sched_internal.h"
#include "server/metrics.h"

void sched_touch(struct sched *s, struct sched_request *r)
{
    struct sched_req_impl *im = r->impl;
    if (im->touched) return;
    if (s->num_touched == s->touched_cap) {
        int nc = s->touched_cap ? s->touched_cap * 2 : 64;
        struct sched_request **t = realloc(s->touched, sizeof(*t) * (size_t)nc);
        if (!t) abort();
        s->touched = t;
        s->touched_cap = nc;
    }
    s->touched[s->num_touched++] = r;
    im->touched = true;
}

/* --- finishing ------------------------------------------------------------------- */

static double secs(int64_t a, int64_t b) { return (double)(b - a) / 1e9; }

static void request_done(struct sched *s, struct sched_request *r, int error, const char *msg)
{
    struct sched_req_impl *im = r->impl;
    im->finished = true;
    ob_set_done(r, error, msg);
    enum sched_finish f = SCHED_FINISH_NONE;
    pthread_mutex_lock(&im->mu);
    struct sched_timing t = im->timing;
    for (int i = 0; i < im->p.n; i++) /* the request's reason: the worst of its choices */
        if (im->ob[i].finish > f) f = im->ob[i].finish;
    int completion = im->completion_total;
    pthread_mutex_unlock(&im->mu);
    if (f >= SCHED_FINISH_STOP && f <= SCHED_FINISH_ERROR) s->st_finished[f]++;
    metrics_observe_e2e(secs(t.arrival_ns, t.finish_ns));
    if (t.first_scheduled_ns) metrics_observe_queue_time(secs(t.arrival_ns, t.first_scheduled_ns));
    if (s->cfg.log_requests)
        LOG_INFO("request %s finished: status=%s prompt_tokens=%d completion_tokens=%d n=%d "
                 "queue=%.3fs ttft=%.3fs total=%.3fs%s%s",
                 im->id ? im->id : "-", sched_finish_str(f) ? sched_finish_str(f) : "none",
                 im->p.prompt_len, completion, im->p.n,
                 t.first_scheduled_ns ? secs(t.arrival_ns, t.first_scheduled_ns) : -1.0,
                 t.first_token_ns ? secs(t.arrival_ns, t.first_token_ns) : -1.0,
                 secs(t.arrival_ns, t.finish_ns), msg ? " error=" : "", msg ? msg : "");
    sched_touch(s, r);
}

void seq_finish(struct sched *s, struct sched_seq *q, enum sched_finish f, int32_t stop_token,
                int stop_index)
{
    struct sched_req_impl *im = q->r->impl;
    if (q->state == SEQ_FINISHED) return;
    if (q->state == SEQ_RUNNING) seq_list_remove(s->running, &s->num_running, q);
    else if (q->state == SEQ_WAITING) seq_list_remove(s->waiting, &s->num_waiting, q);
    seq_free_resources(s, q);
    q->state = SEQ_FINISHED;
    q->scheduled = false;
    ob_finish_choice(q->r, q->choice, f, stop_token, stop_index);
    im->num_done++;
    sched_touch(s, q->r);
    if (im->num_done == im->p.n) request_done(s, q->r, 0, NULL);
}

void sched_finish_request(struct sched *s, struct sched_request *r, enum sched_finish f,
                          int error, const char *msg)
{
    struct sched_req_impl *im = r->impl;
    if (im->finished) return;
    for (int c = 0; c < im->p.n; c++) {
        struct sched_seq *q = &im->seqs[c];
        if (q->state == SEQ_FINISHED) continue;
        if (c == 0 || im->forked) {
            if (q->state == SEQ_RUNNING) seq_list_remove(s->running, &s->num_running, q);
            else if (q->state == SEQ_WAITING) seq_list_remove(s->waiting, &s->num_waiting, q);
            seq_free_resources(s, q);
        }
        q->state = SEQ_FINISHED;
        q->scheduled = false;
        ob_finish_choice(r, c, f, -1, -1);
        im->num_done++;
    }
    request_done(s, r, error, msg);
}

/* --- sampling, text and stops ------------------------------------------------------ */

static int seq_push_token(struct sched_seq *q, int32_t tok)
{
    if (q->num_tokens == q->cap) {
        int nc = q->cap ? q->cap * 2 : 64;
        int32_t *t = realloc(q->tokens, sizeof(int32_t) * (size_t)nc);
        if (!t) return -ENOMEM;
        q->tokens = t;
        q->cap = nc;
    }
    q->tokens[q->num_tokens++] = tok;
    return 0;
}

/* Phase 2 of sampling (any worker thread): one token for q from its logits
 * row. Reads scheduler state, writes only *res. */
static int job_sample(const struct sched *s, struct samp_ctx *ctx, const struct sched_seq *q,
                      const float *logits, struct samp_result *res)
{
    const struct sched_req_impl *im = q->r->impl;
    const struct sched_params *p = &im->p;
    /* min_tokens: eos and stop ids may not be sampled yet */
    int32_t banned[CFG_MAX_EOS + 64];
    int nb = 0;
    if (q->num_generated < p->min_tokens) {
        if (!p->ignore_eos)
            for (int i = 0; i < s->mc->num_eos; i++) banned[nb++] = s->mc->eos_ids[i];
        for (int i = 0; i < p->num_stop_token_ids && nb < (int)(sizeof banned / sizeof *banned); i++)
            banned[nb++] = im->stop_ids[i];
    }
    return samp_sample(ctx, logits, &p->sampling, im->prompt, p->prompt_len,
                       q->tokens + p->prompt_len, q->num_generated, banned, nb, im->seed,
                       (uint64_t)q->choice, (uint64_t)q->num_generated, p->logprobs, res);
}

/* Phase 3 (engine thread): append the sampled token, detokenize, check the
 * stop conditions, deliver. */
static void job_apply(struct sched *s, struct sched_seq *q, int rc, const struct samp_result *r)
{
    struct sched_req_impl *im = q->r->impl;
    const struct sched_params *p = &im->p;
    if (q->state != SEQ_RUNNING) return; /* its request failed in an earlier job */
    struct samp_result res = *r;
    if (rc < 0 || seq_push_token(q, res.token) < 0) {
        sched_finish_request(s, q->r, SCHED_FINISH_ERROR, rc < 0 ? rc : -ENOMEM,
                             "sampling failed");
        return;
    }
    const int32_t tok = res.token;
    q->num_generated++;
    s->st_gen++;
    int64_t now = sched_now_ns();
    if (q->last_token_ns) {
        metrics_observe_itl(secs(q->last_token_ns, now));
    } else if (!im->first_token_seen) {
        im->first_token_seen = true;
        ob_set_timing(q->r, 2, now);
        metrics_observe_ttft(secs(im->arrival_ns, now));
    }
    q->last_token_ns = now;
    ob_set_timing(q->r, 3, now);

    struct sched_tok_lp lp;
    memset(&lp, 0, sizeof(lp));
    lp.token = tok;
    lp.logprob = res.logprob;
    lp.num_top = res.num_top;
    memcpy(lp.top, res.top, sizeof(res.top[0]) * (size_t)res.num_top);

    bool can_stop = q->num_generated >= p->min_tokens;
    bool eos = can_stop && stop_is_eos(s, im, tok);
    bool sid = can_stop && stop_is_stop_id(im, tok);
    enum sched_finish fin = SCHED_FINISH_NONE;
    int32_t stop_token = -1;
    int stop_index = -1;
    const char *delta = "";
    size_t dlen = 0;
    if (s->cfg.tok) {
        size_t before = q->text.len;
        if (!((eos || sid) && !p->include_stop_str_in_output))
            (void)tok_stream_push(&q->ts, tok, &q->text); /* unknown id: no text */
        if (can_stop && p->num_stop > 0 && q->text.len > before) {
            int which;
            long pos = stop_find(im, q->text.data, q->text.len, before, &which);
            if (pos >= 0) {
                size_t cut = (size_t)pos + (p->include_stop_str_in_output ? im->stop_len[which] : 0);
                if (cut < q->emitted) cut = q->emitted; /* cannot happen: held back */
                q->text.len = cut;
                q->text.data[cut] = 0;
                fin = SCHED_FINISH_STOP;
                stop_index = which;
            }
        }
    }
    if (fin == SCHED_FINISH_NONE && (eos || sid)) {
        fin = SCHED_FINISH_STOP;
        stop_token = sid ? tok : -1;
    }
    if (fin == SCHED_FINISH_NONE && q->num_generated >= im->max_tokens) fin = SCHED_FINISH_LENGTH;
    if (s->cfg.tok) {
        if (fin != SCHED_FINISH_NONE && stop_index < 0) (void)tok_stream_flush(&q->ts, &q->text);
        size_t upto = q->text.len;
        if (fin == SCHED_FINISH_NONE && p->num_stop > 0)
            upto -= stop_holdback(im, q->text.data, q->text.len);
        if (upto > q->emitted) {
            delta = q->text.data + q->emitted;
            dlen = upto - q->emitted;
            q->emitted = upto;
        }
    }
    ob_append_token(q->r, q->choice, tok, &lp, delta, dlen);
    sched_touch(s, q->r);
    if (fin != SCHED_FINISH_NONE) seq_finish(s, q, fin, stop_token, stop_index);
}

/* n>1: the parent's prefill is done; every other choice starts from a copy
 * of its state slot and shares its KV blocks (the partial last block is
 * copied on the first write, plan.c ensure_blocks). */
static int fork_children(struct sched *s, struct sched_seq *parent)
{
    struct sched_req_impl *im = parent->r->impl;
    for (int c = 1; c < im->p.n; c++) {
        struct sched_seq *q = &im->seqs[c];
        q->tokens = malloc(sizeof(int32_t) * (size_t)parent->cap);
        q->blocks = malloc(sizeof(int32_t) * (size_t)s->max_blocks_per_seq);
        if (!q->tokens || !q->blocks) return -ENOMEM;
        q->cap = parent->cap;
        memcpy(q->tokens, parent->tokens, sizeof(int32_t) * (size_t)parent->num_tokens);
        q->num_tokens = parent->num_tokens;
        q->num_computed = parent->num_computed;
        for (int b = 0; b < parent->num_blocks; b++) {
            kv_retain(&s->kv, parent->blocks[b]);
            q->blocks[b] = parent->blocks[b];
        }
        q->num_blocks = parent->num_blocks;
        q->slot = im->fork_slots[c - 1];
        im->fork_slots[c - 1] = -1;
        int rc = eng_copy_slot(s->cfg.eng, parent->slot, q->slot);
        q->state = SEQ_RUNNING;
        if (s->cfg.tok) tok_stream_init(&q->ts, s->cfg.tok, im->p.skip_special_tokens);
        seq_list_insert(&s->running, &s->num_running, &s->running_cap, q);
        if (rc < 0) return rc;
    }
    im->forked = true;
    return 0;
}

static void add_job(struct sched *s, struct sched_seq *q, const float *logits)
{
    struct sched_req_impl *im = q->r->impl;
    if (q->num_generated >= im->max_tokens) { /* max_tokens 0 (echo scoring) */
        seq_finish(s, q, SCHED_FINISH_LENGTH, -1, -1);
        return;
    }
    struct samp_job *j = &s->jobs[s->num_jobs++];
    j->q = q;
    j->logits = logits;
    j->rc = 0;
}

/* Phase 1 (engine thread): a sampling row; forks n>1 requests first so
 * every choice gets its own job on the shared logits row. */
static void on_sample_row(struct sched *s, struct sched_seq *q, const float *logits)
{
    struct sched_req_impl *im = q->r->impl;
    if (q->choice == 0 && !im->forked && im->p.n > 1) {
        if (im->max_tokens == 0) { /* echo scoring with n > 1: nothing to fork */
            sched_finish_request(s, q->r, SCHED_FINISH_LENGTH, 0, NULL);
            return;
        }
        int rc = fork_children(s, q);
        if (rc < 0) {
            im->forked = true; /* children that got resources are freed as forked */
            sched_finish_request(s, q->r, SCHED_FINISH_ERROR, rc, "fork failed");
            return;
        }
        for (int c = 0; c < im->p.n; c++) add_job(s, &im->seqs[c], logits);
        return;
    }
    add_job(s, q, logits);
}

/* Samples every job of the step, in parallel over rows when there are
 * several (each worker has its own context; the result depends only on the
 * row and the request's RNG key, so the thread count never changes output). */
static void run_jobs(struct sched *s)
{
    const int nj = s->num_jobs;
    if (nj == 0) return;
    int nt = s->num_samps < nj ? s->num_samps : nj; /* >= 1 */
    /* a parallel region costs tens of microseconds (far more on a loaded
     * machine): only worth it for big rows (about 1M logits in the step) */
    if ((size_t)nj * (size_t)s->vocab < s->par_min_logits) nt = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int i = 0; i < nj; i++) {
        struct samp_job *j = &s->jobs[i];
        j->rc = job_sample(s, s->samps[omp_get_thread_num()], j->q, j->logits, &j->res);
    }
    for (int i = 0; i < nj; i++) job_apply(s, s->jobs[i].q, s->jobs[i].rc, &s->jobs[i].res);
    s->num_jobs = 0;
}

/* Prompt log-prob of token pos+1 from the logits at position pos. */
static void on_plp_row(struct sched *s, struct sched_seq *q, int pos, const float *logits)
{
    struct sched_req_impl *im = q->r->impl;
    if (pos + 1 != im->plp_next) return; /* already computed before a preemption */
    struct samp_result res;
    if (samp_logprobs(s->samp, logits, im->prompt[pos + 1], im->p.prompt_logprobs, &res) < 0)
        return;
    struct sched_tok_lp *e = &im->plp[pos + 1];
    e->token = res.token;
    e->logprob = res.logprob;
    e->num_top = res.num_top;
    memcpy(e->top, res.top, sizeof(res.top[0]) * (size_t)res.num_top);
    im->plp_next = pos + 2;
    if (im->plp_next == im->p.prompt_len) {
        struct sched_tok_lp *copy = malloc(sizeof(*copy) * (size_t)im->p.prompt_len);
        if (!copy) return;
        memcpy(copy, im->plp, sizeof(*copy) * (size_t)im->p.prompt_len);
        ob_set_prompt_logprobs(q->r, copy, im->p.prompt_len);
        sched_touch(s, q->r);
    }
}

/* A verify row (last token + d drafts, logits lg[t] after fed token t):
 * the target samples position t exactly as a plain decode would (same
 * penalties context, same RNG key: num_generated), and the row goes on while
 * the token equals draft t. Every token goes through job_apply, so stops and
 * max_tokens apply to each in order. Then the state after the last fed token
 * that was kept becomes the sequence's slot; the other snapshots (and the
 * slot that ran past unverified drafts) go back to the pool. */
static void on_verify_row(struct sched *s, struct sched_seq *q, const float *lg)
{
    const int d = q->num_draft;
    int e = 0, acc = 0; /* tokens emitted; drafts emitted as proposed */
    for (int t = 0; t <= d; t++) {
        struct samp_result res;
        int rc = job_sample(s, s->samp, q, lg + (size_t)t * (size_t)s->vocab, &res);
        job_apply(s, q, rc, &res);
        e++;
        bool hit = rc >= 0 && t < d && res.token == q->spec_draft[t];
        if (hit) acc++;
        if (q->state != SEQ_RUNNING) break; /* finished: its slots are already freed */
        if (!hit) break;
    }
    s->st_spec_rows++;
    s->st_spec_draft += (uint64_t)d;
    s->st_spec_accept += (uint64_t)acc;
    for (int t = 0; t < acc; t++) s->st_spec_pos[t]++;
    if (q->state != SEQ_RUNNING) return;
    spec_adapt_update(&q->adapt, d, acc, s->cfg.spec_min_acceptance, s->cfg.spec_probe_interval);
    int keep = q->spec_slots[e - 1];
    slot_free(&s->slots, q->slot);
    for (int t = 0; t <= d; t++)
        if (t != e - 1) slot_free(&s->slots, q->spec_slots[t]);
    q->slot = keep;
    q->num_draft = 0;
    q->num_computed += e - 1; /* the fed last token was counted with the row */
}

/* --- the step ---------------------------------------------------------------------- */

int sched_run_step(struct sched *s)
{
    const int bs = s->block_size;
    int T = 0, N = 0, L = 0, max_blocks = 1, ndec = 0, nver = 0;
    int64_t now = sched_now_ns();
    /* rows whose request failed during planning are dropped here */
    int w = 0;
    for (int i = 0; i < s->num_rows; i++) {
        if (s->rows[i]->state != SEQ_RUNNING) continue;
        if (i < s->num_decode_rows) ndec++;
        else if (i < s->num_decode_rows + s->num_verify_rows) nver++;
        s->rows[w] = s->rows[i];
        s->row_ntok[w] = s->row_ntok[i];
        w++;
    }
    s->num_rows = w;
    if (w == 0) return 0;
    int kspec = s->cfg.num_speculative_tokens < SPEC_MAX_TOKENS ? s->cfg.num_speculative_tokens
                                                                 : SPEC_MAX_TOKENS;
    if (nver > 0 && nver * (kspec + 1) > s->b_spec_cap) {
        int32_t *ns = realloc(s->b_spec, sizeof(int32_t) * (size_t)nver * (size_t)(kspec + 1));
        if (!ns) { /* fall back: fail the step's requests like any OOM */
            for (int i = 0; i < s->num_rows; i++)
                sched_finish_request(s, s->rows[i]->r, SCHED_FINISH_ERROR, -ENOMEM,
                                     "out of memory for speculative slots");
            return -ENOMEM;
        }
        s->b_spec = ns;
        s->b_spec_cap = nver * (kspec + 1);
    }
    for (int i = 0; i < s->num_rows; i++) {
        struct sched_seq *q = s->rows[i];
        int nt = s->row_ntok[i];
        int nb = (q->num_computed + nt + bs - 1) / bs;
        if (nb > max_blocks) max_blocks = nb;
    }
    for (int i = 0; i < s->num_rows; i++) {
        struct sched_seq *q = s->rows[i];
        struct sched_req_impl *im = q->r->impl;
        int nt = s->row_ntok[i];
        int c0 = q->num_computed;
        s->b_qs[N] = T;
        s->b_cache[N] = c0;
        s->b_slot[N] = q->slot;
        int nb = (c0 + nt + bs - 1) / bs;
        for (int j = 0; j < max_blocks; j++)
            s->b_bt[N * max_blocks + j] = j < nb ? q->blocks[j] : q->blocks[0];
        if (N >= ndec && N < ndec + nver) { /* verify: last token + drafts, logits everywhere */
            for (int t = 0; t < nt; t++) {
                s->b_tokens[T + t] = t == 0 ? q->tokens[c0] : q->spec_draft[t - 1];
                s->b_pos[T + t] = c0 + t;
                s->b_lrows[L] = T + t;
                s->lrow_seq[L] = N;
                s->lrow_pos[L] = -2 - t; /* -2: the row's first position */
                L++;
                s->b_spec[(N - ndec) * (kspec + 1) + t] = q->spec_slots[t];
            }
            T += nt;
            N++;
            continue;
        }
        for (int t = 0; t < nt; t++) {
            int pos = c0 + t;
            s->b_tokens[T + t] = q->tokens[pos];
            s->b_pos[T + t] = pos;
            /* prompt log-probs: position pos predicts prompt token pos+1 */
            if (im->p.prompt_logprobs >= 0 && q->choice == 0 && pos + 1 >= im->plp_next &&
                pos + 1 < im->p.prompt_len) {
                s->b_lrows[L] = T + t;
                s->lrow_seq[L] = N;
                s->lrow_pos[L] = pos;
                L++;
            }
        }
        if (c0 + nt == q->num_tokens) { /* caught up: sample the next token */
            s->b_lrows[L] = T + nt - 1;
            s->lrow_seq[L] = N;
            s->lrow_pos[L] = -1;
            L++;
        }
        if (!im->scheduled_once) { /* first step that runs any of its tokens */
            im->scheduled_once = true;
            ob_set_timing(q->r, 1, now);
        }
        T += nt;
        N++;
    }
    s->b_qs[N] = T;
    size_t need = (size_t)(L ? L : 1) * (size_t)s->vocab;
    if (need > s->logits_cap) {
        float *nl = realloc(s->logits, sizeof(float) * need);
        if (!nl) {
            for (int i = 0; i < N; i++)
                sched_finish_request(s, s->rows[i]->r, SCHED_FINISH_ERROR, -ENOMEM,
                                     "out of memory for logits");
            return -ENOMEM;
        }
        s->logits = nl;
        s->logits_cap = need;
    }
    struct eng_batch b = {
        .num_seqs = N, .num_tokens = T, .num_decode = ndec,
        .tokens = s->b_tokens, .positions = s->b_pos, .query_start = s->b_qs,
        .cache_len = s->b_cache, .state_slot = s->b_slot, .block_table = s->b_bt,
        .max_blocks = max_blocks, .logits_rows = s->b_lrows, .num_logits = L,
        .num_verify = nver, .max_spec = kspec, .spec_slots = s->b_spec,
    };
    int rc = eng_forward(s->cfg.eng, &b, s->logits);
    s->st_steps++;
    s->st_batched += (uint64_t)T;
    if (rc < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "engine forward failed (%d)", rc);
        LOG_ERROR("%s: failing %d requests of the step", msg, N);
        for (int i = 0; i < N; i++) sched_finish_request(s, s->rows[i]->r, SCHED_FINISH_ERROR, rc, msg);
        /* -ENODEV: the backend says the device is gone (a sticky CUDA error);
         * otherwise a run of failed steps means the same. Either way serving
         * cannot go on: mark fatal (under mu, so no submit slips past) and let
         * the engine loop fail everything and report it. */
        s->failed_steps++;
        if (rc == -ENODEV || (s->cfg.max_failed_steps > 0 && s->failed_steps >= s->cfg.max_failed_steps)) {
            pthread_mutex_lock(&s->mu);
            atomic_store(&s->fatal, rc);
            pthread_mutex_unlock(&s->mu);
            LOG_ERROR("engine: device unusable after %d failed step(s) (last error %d)", s->failed_steps, rc);
        }
        return rc;
    }
    s->failed_steps = 0;
    for (int i = 0; i < N; i++) {
        struct sched_seq *q = s->rows[i];
        q->num_computed += (i >= ndec && i < ndec + nver) ? 1 : s->row_ntok[i];
    }
    s->num_jobs = 0;
    for (int l = 0; l < L; l++) {
        struct sched_seq *q = s->rows[s->lrow_seq[l]];
        if (q->state != SEQ_RUNNING) continue; /* finished by an earlier row (error paths) */
        const float *lg = s->logits + (size_t)l * (size_t)s->vocab;
        if (s->lrow_pos[l] >= 0) on_plp_row(s, q, s->lrow_pos[l], lg);
        else if (s->lrow_pos[l] == -1) on_sample_row(s, q, lg);
    }
    run_jobs(s);
    /* verify rows after the parallel jobs: sequential per position, on samps[0] */
    for (int l = 0; l < L; l++) {
        if (s->lrow_pos[l] != -2) continue;
        struct sched_seq *q = s->rows[s->lrow_seq[l]];
        if (q->state != SEQ_RUNNING || q->num_draft <= 0) continue;
        on_verify_row(s, q, s->logits + (size_t)l * (size_t)s->vocab);
    }
    return N;
}
