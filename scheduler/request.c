/* scheduler/request.c: request lifetime (refcount), parameter copies, and the
 * per-request outbox: the engine thread appends (ob_*), HTTP threads drain.
 *
 * Threads: sched_request_* and sched_delta_fini run on any thread; ob_* run
 * on the engine thread. The outbox is guarded by impl->mu; the notify
 * callback by impl->notify_mu (see the lock order in sched.h).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler/sched_internal.h"

int64_t sched_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const char *sched_finish_str(enum sched_finish f)
{
    switch (f) {
    case SCHED_FINISH_STOP: return "stop";
    case SCHED_FINISH_LENGTH: return "length";
    case SCHED_FINISH_ABORT: return "abort";
    case SCHED_FINISH_ERROR: return "error";
    default: return NULL;
    }
}

void sched_params_init(struct sched_params *p)
{
    memset(p, 0, sizeof(*p));
    p->n = 1;
    p->max_tokens = -1;
    p->skip_special_tokens = true;
    samp_params_init(&p->sampling);
    p->logprobs = -1;
    p->prompt_logprobs = -1;
}

/* --- create / free ---------------------------------------------------------- */

static void impl_free(struct sched_req_impl *im)
{
    if (!im) return;
    free(im->id);
    free(im->prompt);
    if (im->stop)
        for (int i = 0; i < im->p.num_stop; i++) free(im->stop[i]);
    free(im->stop);
    free(im->stop_len);
    free(im->stop_ids);
    free(im->bias);
    free(im->fork_slots);
    if (im->seqs) {
        for (int i = 0; i < im->p.n; i++) {
            free(im->seqs[i].tokens);
            free(im->seqs[i].blocks);
            tok_buf_fini(&im->seqs[i].text);
        }
        free(im->seqs);
    }
    free(im->plp);
    if (im->ob) {
        for (int i = 0; i < im->p.n; i++) {
            free(im->ob[i].tokens);
            free(im->ob[i].lps);
            free(im->ob[i].text);
        }
        free(im->ob);
    }
    free(im->ob_plp);
    pthread_mutex_destroy(&im->mu);
    pthread_cond_destroy(&im->cv);
    pthread_mutex_destroy(&im->notify_mu);
    free(im);
}

struct sched_request *sched_request_create(const struct sched_params *p)
{
    if (!p || p->n < 1 || p->n > 1024 || p->prompt_len < 0 || p->num_stop < 0 ||
        p->num_stop_token_ids < 0 || p->sampling.num_logit_bias < 0)
        return NULL;
    struct sched_request *r = calloc(1, sizeof(*r));
    struct sched_req_impl *im = calloc(1, sizeof(*im));
    if (!r || !im) {
        free(r);
        free(im);
        return NULL;
    }
    pthread_mutex_init(&im->mu, NULL);
    pthread_cond_init(&im->cv, NULL);
    pthread_mutex_init(&im->notify_mu, NULL);
    r->impl = im;
    atomic_init(&r->refcount, 1);
    atomic_init(&r->cancelled, false);
    im->p = *p;
    if (p->id && !(im->id = strdup(p->id))) goto fail;
    im->p.id = im->id;
    im->prompt = malloc(sizeof(int32_t) * (size_t)(p->prompt_len ? p->prompt_len : 1));
    if (!im->prompt) goto fail;
    if (p->prompt_len) memcpy(im->prompt, p->prompt, sizeof(int32_t) * (size_t)p->prompt_len);
    im->p.prompt = im->prompt;
    if (p->num_stop) {
        im->stop = calloc((size_t)p->num_stop, sizeof(char *));
        im->stop_len = calloc((size_t)p->num_stop, sizeof(size_t));
        if (!im->stop || !im->stop_len) goto fail;
        for (int i = 0; i < p->num_stop; i++) {
            const char *src = p->stop[i] ? p->stop[i] : "";
            if (!(im->stop[i] = strdup(src))) goto fail;
            im->stop_len[i] = strlen(src);
            if (im->stop_len[i] > im->max_stop_len) im->max_stop_len = im->stop_len[i];
        }
    }
    im->p.stop = (const char *const *)im->stop;
    if (p->num_stop_token_ids) {
        im->stop_ids = malloc(sizeof(int32_t) * (size_t)p->num_stop_token_ids);
        if (!im->stop_ids) goto fail;
        memcpy(im->stop_ids, p->stop_token_ids, sizeof(int32_t) * (size_t)p->num_stop_token_ids);
    }
    im->p.stop_token_ids = im->stop_ids;
    if (p->sampling.num_logit_bias) {
        im->bias = malloc(sizeof(struct samp_bias) * (size_t)p->sampling.num_logit_bias);
        if (!im->bias) goto fail;
        memcpy(im->bias, p->sampling.logit_bias,
               sizeof(struct samp_bias) * (size_t)p->sampling.num_logit_bias);
    }
    im->p.sampling.logit_bias = im->bias;
    im->seqs = calloc((size_t)p->n, sizeof(struct sched_seq));
    im->ob = calloc((size_t)p->n, sizeof(struct ob_choice));
    if (!im->seqs || !im->ob) goto fail;
    for (int i = 0; i < p->n; i++) {
        im->seqs[i].r = r;
        im->seqs[i].choice = i;
        im->seqs[i].slot = -1;
        im->ob[i].stop_token = -1;
        im->ob[i].stop_index = -1;
    }
    im->active_index = -1;
    return r;
fail:
    impl_free(im);
    free(r);
    return NULL;
}

void sched_request_retain(struct sched_request *r)
{
    atomic_fetch_add_explicit(&r->refcount, 1, memory_order_relaxed);
}

void sched_request_release(struct sched_request *r)
{
    if (!r) return;
    if (atomic_fetch_sub_explicit(&r->refcount, 1, memory_order_acq_rel) == 1) {
        impl_free(r->impl);
        free(r);
    }
}

void sched_request_set_notify(struct sched_request *r, sched_notify_fn fn, void *user)
{
    pthread_mutex_lock(&r->impl->notify_mu);
    r->impl->notify = fn;
    r->impl->notify_user = user;
    pthread_mutex_unlock(&r->impl->notify_mu);
}

void sched_request_detach(struct sched_request *r)
{
    /* taking the lock waits out a notify in progress */
    sched_request_set_notify(r, NULL, NULL);
}

void sched_request_notify(struct sched_request *r)
{
    struct sched_req_impl *im = r->impl;
    pthread_mutex_lock(&im->notify_mu);
    if (im->notify) im->notify(im->notify_user);
    pthread_mutex_unlock(&im->notify_mu);
}

/* --- HTTP side: drain / wait ------------------------------------------------ */

void sched_delta_fini(struct sched_delta *d)
{
    if (!d) return;
    if (d->choices) {
        for (int i = 0; i < d->n; i++) {
            free(d->choices[i].tokens);
            free(d->choices[i].logprobs);
            free(d->choices[i].text);
        }
        free(d->choices);
    }
    free(d->prompt_logprobs);
    memset(d, 0, sizeof(*d));
}

int sched_request_drain(struct sched_request *r, struct sched_delta *out)
{
    struct sched_req_impl *im = r->impl;
    memset(out, 0, sizeof(*out));
    int n = im->p.n;
    /* allocate outside the lock; the moved buffers need no copies */
    struct sched_choice_delta *ch = calloc((size_t)n, sizeof(*ch));
    char **empty = calloc((size_t)n, sizeof(char *));
    if (!ch || !empty) {
        free(ch);
        free(empty);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) empty[i] = calloc(1, 1);
    pthread_mutex_lock(&im->mu);
    int changed = im->dirty ? 1 : 0;
    if (!changed) {
        /* nothing new: hand back an empty delta (callers may skip fini) */
        pthread_mutex_unlock(&im->mu);
        for (int i = 0; i < n; i++) free(empty[i]);
        free(empty);
        free(ch);
        return 0;
    }
    im->dirty = false;
    for (int i = 0; i < n; i++) {
        struct ob_choice *o = &im->ob[i];
        struct sched_choice_delta *c = &ch[i];
        c->index = i;
        c->tokens = o->tokens;
        c->num_tokens = o->ntok;
        c->logprobs = o->lps;
        o->tokens = NULL;
        o->lps = NULL;
        o->ntok = o->cap = o->lp_cap = 0;
        if (o->text) {
            c->text = o->text;
            c->text_len = o->text_len;
            o->text = NULL;
            o->text_len = o->text_cap = 0;
        } else {
            c->text = empty[i];
            empty[i] = NULL;
        }
        if (o->finish_pending) {
            c->finish = o->finish;
            o->finish_pending = false;
        }
        c->completion_tokens = o->completion_tokens;
        c->stop_token = o->stop_token;
        c->stop_index = o->stop_index;
    }
    if (im->plp_pending) {
        out->prompt_logprobs = im->ob_plp;
        out->num_prompt_logprobs = im->ob_nplp;
        im->ob_plp = NULL;
        im->plp_pending = false;
    }
    out->done = im->done;
    im->done_pending = false;
    out->error = im->error;
    memcpy(out->error_msg, im->error_msg, sizeof(out->error_msg));
    out->prompt_tokens = im->p.prompt_len;
    out->completion_tokens = im->completion_total;
    out->timing = im->timing;
    pthread_mutex_unlock(&im->mu);
    for (int i = 0; i < n; i++) free(empty[i]);
    free(empty);
    out->n = n;
    out->choices = ch;
    return changed;
}

int sched_request_wait(struct sched_request *r, int timeout_ms)
{
    struct sched_req_impl *im = r->impl;
    pthread_mutex_lock(&im->mu);
    if (timeout_ms < 0) {
        while (!im->dirty) pthread_cond_wait(&im->cv, &im->mu);
    } else if (!im->dirty) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!im->dirty)
            if (pthread_cond_timedwait(&im->cv, &im->mu, &ts) == ETIMEDOUT) break;
    }
    int got = im->dirty ? 1 : 0;
    pthread_mutex_unlock(&im->mu);
    return got;
}

/* --- engine side: appends ------------------------------------------------------ */

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static void ob_text_locked(struct ob_choice *o, const char *text, size_t len)
{
    if (!len) return;
    if (o->text_len + len + 1 > o->text_cap) {
        size_t nc = o->text_cap ? o->text_cap * 2 : 64;
        while (nc < o->text_len + len + 1) nc *= 2;
        char *q = realloc(o->text, nc);
        if (!q) return; /* out of memory: the text delta is lost, tokens still flow */
        o->text = q;
        o->text_cap = nc;
    }
    memcpy(o->text + o->text_len, text, len);
    o->text_len += len;
    o->text[o->text_len] = 0;
}

static void signal_locked(struct sched_req_impl *im)
{
    im->dirty = true;
    pthread_cond_broadcast(&im->cv);
}

void ob_append_token(struct sched_request *r, int choice, int32_t tok,
                     const struct sched_tok_lp *lp, const char *text, size_t len)
{
    struct sched_req_impl *im = r->impl;
    pthread_mutex_lock(&im->mu);
    struct ob_choice *o = &im->ob[choice];
    if (grow((void **)&o->tokens, &o->cap, o->ntok + 1, sizeof(int32_t)) == 0 &&
        (im->p.logprobs < 0 ||
         grow((void **)&o->lps, &o->lp_cap, o->ntok + 1, sizeof(struct sched_tok_lp)) == 0)) {
        o->tokens[o->ntok] = tok;
        if (im->p.logprobs >= 0) o->lps[o->ntok] = *lp;
        o->ntok++;
    }
    o->completion_tokens++;
    im->completion_total++;
    ob_text_locked(o, text, len);
    signal_locked(im);
    pthread_mutex_unlock(&im->mu);
}

void ob_append_text(struct sched_request *r, int choice, const char *text, size_t len)
{
    if (!len) return;
    struct sched_req_impl *im = r->impl;
    pthread_mutex_lock(&im->mu);
    ob_text_locked(&im->ob[choice], text, len);
    signal_locked(im);
    pthread_mutex_unlock(&im->mu);
}

void ob_finish_choice(struct sched_request *r, int choice, enum sched_finish f,
                      int32_t stop_token, int stop_index)
{
    struct sched_req_impl *im = r->impl;
    pthread_mutex_lock(&im->mu);
    struct ob_choice *o = &im->ob[choice];
    if (o->finish == SCHED_FINISH_NONE) {
        o->finish = f;
        o->finish_pending = true;
        o->stop_token = stop_token;
        o->stop_index = stop_index;
        signal_locked(im);
    }
    pthread_mutex_unlock(&im->mu);
}

void ob_set_prompt_logprobs(struct sched_request *r, struct sched_tok_lp *plp, int n)
{
    struct sched_req_impl *im = r->impl;
    pthread_mutex_lock(&im->mu);
    free(im->ob_plp);
    im->ob_plp = plp; /* ownership moves to the outbox */
    im->ob_nplp = n;
    im->plp_pending = true;
    signal_locked(im);
    pthread_mutex_unlock(&im->mu);
}

void ob_set_done(struct sched_request *r, int error, const char *msg)
{
    struct sched_req_impl *im = r->impl;
    pthread_mutex_lock(&im->mu);
    im->done = true;
    im->done_pending = true;
    if (error && !im->error) {
        im->error = error;
        if (msg) {
            strncpy(im->error_msg, msg, sizeof(im->error_msg) - 1);
            im->error_msg[sizeof(im->error_msg) - 1] = 0;
        }
    }
    if (!im->timing.finish_ns) im->timing.finish_ns = sched_now_ns();
    signal_locked(im);
    pthread_mutex_unlock(&im->mu);
}

/* which: 0 arrival, 1 first scheduled, 2 first token, 3 last token. Only the
 * first write of 0..2 sticks. */
void ob_set_timing(struct sched_request *r, int which, int64_t ns)
{
    struct sched_req_impl *im = r->impl;
    pthread_mutex_lock(&im->mu);
    struct sched_timing *t = &im->timing;
    switch (which) {
    case 0: if (!t->arrival_ns) t->arrival_ns = ns; break;
    case 1: if (!t->first_scheduled_ns) t->first_scheduled_ns = ns; break;
    case 2: if (!t->first_token_ns) t->first_token_ns = ns; break;
    default: t->last_token_ns = ns; break;
    }
    pthread_mutex_unlock(&im->mu);
}
