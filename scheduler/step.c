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

#define SCHED_MAX_BANNED (CFG_MAX_EOS + 64)

/* min_tokens: eos and stop ids may not be sampled while only ngen tokens
 * are generated. Fills banned[SCHED_MAX_BANNED]; returns the count. */
static int job_banned(const struct sched *s, const struct sched_seq *q, int ngen, int32_t *banned)
{
    const struct sched_req_impl *im = q->r->impl;
    const struct sched_params *p = &im->p;
    int nb = 0;
    if (ngen < p->min_tokens) {
        if (!p->ignore_eos)
            for (int i = 0; i < s->mc->num_eos; i++) banned[nb++] = s->mc->eos_ids[i];
        for (int i = 0; i < p->num_stop_token_ids && nb < SCHED_MAX_BANNED; i++)
            banned[nb++] = im->stop_ids[i];
    }
    return nb;
}

/* Phase 2 of sampling (any worker thread): one token for q from its logits
 * row. Reads scheduler state, writes only *res. */
static int job_sample(const struct sched *s, struct samp_ctx *ctx, const struct sched_seq *q,
                      const float *logits, struct samp_result *res)
{
    const struct sched_req_impl *im = q->r->impl;
    const struct sched_params *p = &im->p;
    int32_t banned[SCHED_MAX_BANNED];
    int nb = job_banned(s, q, q->num_generated, banned);
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

/* --- device sampling (engine ops->sample) --------------------------------------------
 * When the backend samples on the device, a step keeps its logits there
 * (eng_batch.logits_on_device) and one ops->sample call covers every row of
 * the step: the jobs (plain rows, n>1 choices sharing a row) and every
 * position of every verify row. Verify position t is sampled with exactly
 * the context the sequential host path gives it when drafts 0..t-1 were
 * accepted (output history + drafts[0..t), RNG counter and min_tokens at
 * num_generated + t); on_verify_row uses position t only in that case, so
 * the tokens are the host path's. Steps that need the raw rows on the host
 * (prompt log-probs) sample on the host; steps beyond the device sampler's
 * capacity (-E2BIG) fetch the logits and sample on the host. */
struct sched_devsamp {
    struct eng_sample_row *rows;   /* [cap] */
    struct samp_result *res;       /* [cap] */
    int32_t *banned;               /* [cap * SCHED_MAX_BANNED] */
    int cap;
    int32_t *hist;                 /* verify rows with penalties: output + drafts */
    size_t hist_cap;
    int *vres;                     /* [logits row] -> index into res of a verify position, -1 */
    int vres_cap, nvres;
    bool active;                   /* this step's verify positions are in res */
    int rc;                        /* ops->sample's status for this step */
};

void sched_devsamp_free(struct sched *s)
{
    struct sched_devsamp *d = s->devsamp;
    if (!d) return;
    free(d->rows);
    free(d->res);
    free(d->banned);
    free(d->hist);
    free(d->vres);
    free(d);
    s->devsamp = NULL;
}

/* The step can sample on the device: the backend offers it, every logits row
 * fits its kept rows, and no row is a prompt log-prob row. */
static bool devsamp_usable(const struct sched *s, int L)
{
    const struct engine *e = s->cfg.eng;
    if (!e || !e->ops->sample || !e->ops->fetch_logits || L <= 0 || L > e->sample_max_logits)
        return false;
    for (int l = 0; l < L; l++)
        if (s->lrow_pos[l] >= 0) return false;
    return true;
}

static int devsamp_reserve(struct sched *s, int n, size_t hist, int L)
{
    struct sched_devsamp *d = s->devsamp;
    if (!d && !(d = s->devsamp = calloc(1, sizeof *d))) return -ENOMEM;
    if (n > d->cap) {
        int nc = n > 2 * d->cap ? n : 2 * d->cap;
        struct eng_sample_row *r = realloc(d->rows, sizeof(*r) * (size_t)nc);
        if (r) d->rows = r;
        struct samp_result *x = realloc(d->res, sizeof(*x) * (size_t)nc);
        if (x) d->res = x;
        int32_t *b = realloc(d->banned, sizeof(*b) * (size_t)nc * SCHED_MAX_BANNED);
        if (b) d->banned = b;
        if (!r || !x || !b) return -ENOMEM;
        d->cap = nc;
    }
    if (hist > d->hist_cap) {
        int32_t *h = realloc(d->hist, sizeof(*h) * hist);
        if (!h) return -ENOMEM;
        d->hist = h;
        d->hist_cap = hist;
    }
    if (L > d->vres_cap) {
        int *v = realloc(d->vres, sizeof(*v) * (size_t)L);
        if (!v) return -ENOMEM;
        d->vres = v;
        d->vres_cap = L;
    }
    return 0;
}

/* One row's arguments, as job_sample passes them to samp_sample. */
static void devsamp_row(const struct sched *s, const struct sched_seq *q, int lrow,
                        const int32_t *out, int ngen, int32_t *banned, struct eng_sample_row *r)
{
    const struct sched_req_impl *im = q->r->impl;
    const struct sched_params *p = &im->p;
    r->logits_row = lrow;
    r->params = &p->sampling;
    r->prompt = im->prompt;
    r->num_prompt = p->prompt_len;
    r->output = out;
    r->num_output = ngen;
    r->banned = banned;
    r->num_banned = job_banned(s, q, ngen, banned);
    r->seed = im->seed;
    r->stream = (uint64_t)q->choice;
    r->counter = (uint64_t)ngen;
    r->num_logprobs = p->logprobs;
}

static bool verify_live(const struct sched_seq *q) { return q->state == SEQ_RUNNING && q->num_draft > 0; }

static bool has_penalties(const struct sched_seq *q)
{
    const struct samp_params *sp = &((const struct sched_req_impl *)q->r->impl)->p.sampling;
    return sp->repetition_penalty != 1.0f || sp->frequency_penalty != 0.0f ||
           sp->presence_penalty != 0.0f;
}

/* Samples the step's jobs (and verify positions) on the device and applies
 * the jobs; falls back to the host on -E2BIG or out of memory. */
static void devsamp_run(struct sched *s, int L)
{
    struct engine *e = s->cfg.eng;
    int n = s->num_jobs;
    size_t hist = 0;
    for (int l = 0; l < L; l++) {
        if (s->lrow_pos[l] != -2) continue;
        const struct sched_seq *q = s->rows[s->lrow_seq[l]];
        if (!verify_live(q)) continue;
        n += q->num_draft + 1;
        if (has_penalties(q)) hist += (size_t)q->num_generated + (size_t)q->num_draft;
    }
    int rc = devsamp_reserve(s, n > 0 ? n : 1, hist, L);
    struct sched_devsamp *d = s->devsamp;
    if (rc == 0) {
        d->active = false;
        d->nvres = L;
        for (int l = 0; l < L; l++) d->vres[l] = -1;
        int k = 0;
        for (int i = 0; i < s->num_jobs; i++, k++) {
            const struct sched_seq *q = s->jobs[i].q;
            const struct sched_req_impl *im = q->r->impl;
            int lrow = (int)((s->jobs[i].logits - s->logits) / s->vocab);
            devsamp_row(s, q, lrow, q->tokens + im->p.prompt_len, q->num_generated,
                        d->banned + (size_t)k * SCHED_MAX_BANNED, &d->rows[k]);
        }
        size_t ho = 0;
        for (int l = 0; l < L; l++) {
            if (s->lrow_pos[l] != -2) continue;
            const struct sched_seq *q = s->rows[s->lrow_seq[l]];
            if (!verify_live(q)) continue;
            const struct sched_req_impl *im = q->r->impl;
            const int32_t *out = q->tokens + im->p.prompt_len;
            if (has_penalties(q)) { /* the history position t sees: output + drafts[0..t) */
                int32_t *h = d->hist + ho;
                memcpy(h, out, sizeof(int32_t) * (size_t)q->num_generated);
                memcpy(h + q->num_generated, q->spec_draft, sizeof(int32_t) * (size_t)q->num_draft);
                ho += (size_t)q->num_generated + (size_t)q->num_draft;
                out = h;
            }
            for (int t = 0; t <= q->num_draft; t++, k++) {
                devsamp_row(s, q, l + t, out, q->num_generated + t,
                            d->banned + (size_t)k * SCHED_MAX_BANNED, &d->rows[k]);
                d->vres[l + t] = k;
            }
        }
        rc = k > 0 ? e->ops->sample(e, d->rows, k, d->res) : 0;
    }
    if (rc == -E2BIG || rc == -ENOMEM) { /* beyond the device's capacity: host path */
        int frc = e->ops->fetch_logits(e, s->logits);
        if (frc == 0) {
            run_jobs(s);
            return;
        }
        rc = frc;
    }
    d = s->devsamp;
    if (d) {
        d->active = true;
        d->rc = rc;
    }
    for (int i = 0; i < s->num_jobs; i++) {
        static const struct samp_result none;
        job_apply(s, s->jobs[i].q, rc, rc < 0 || !d ? &none : &d->res[i]);
    }
    s->num_jobs = 0;
}

/* Verify position t of the row whose first logits row is lg: the device's
 * result when this step sampled on the device, else sampled here. */
static int verify_sample(struct sched *s, struct sched_seq *q, const float *lg, int t,
                         struct samp_result *res)
{
    const struct sched_devsamp *d = s->devsamp;
    if (d && d->active) {
        int l = (int)((lg - s->logits) / s->vocab) + t;
        if (d->rc < 0) return d->rc;
        if (l < 0 || l >= d->nvres || d->vres[l] < 0) return -EIO; /* never: all were sampled */
        *res = d->res[d->vres[l]];
        return 0;
    }
    return job_sample(s, s->samp, q, lg + (size_t)t * (size_t)s->vocab, res);
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
        int rc = verify_sample(s, q, lg, t, &res);
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
        .logits_on_device = devsamp_usable(s, L),
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
    if (b.logits_on_device) devsamp_run(s, L); /* device sampling (above) */
    else run_jobs(s);
    /* verify rows after the parallel jobs: sequential per position, on samps[0] */
    for (int l = 0; l < L; l++) {
        if (s->lrow_pos[l] != -2) continue;
        struct sched_seq *q = s->rows[s->lrow_seq[l]];
        if (q->state != SEQ_RUNNING || q->num_draft <= 0) continue;
        on_verify_row(s, q, s->logits + (size_t)l * (size_t)s->vocab);
    }
    if (s->devsamp) s->devsamp->active = false;
    return N;
}
