/* server/gen.c: /v1/completions and /v1/chat/completions: parse, render,
 * tokenize, submit to the scheduler, then collect the output into one JSON
 * response or an SSE stream.
 *
 * Threads: gen_start, gen_continue and the SSE reader run on MHD pool threads
 * (the request's connection thread); on_notify runs on the engine thread and
 * only wakes the connection; cancel_all runs on the watchdog thread.
 *
 * Waiting without a thread per request: after submitting, the connection is
 * suspended. Each notify resumes it; MHD then calls the access handler again
 * (non-streaming: gen_continue drains the outbox and suspends again until
 * every choice is done) or the content reader (streaming: drain into SSE
 * chunks, hand them to MHD, suspend when nothing is pending). r->mu orders
 * "drain then suspend" against "notify then resume", so no wake-up is lost.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/log.h"
#include "server/chat.h"
#include "server/gen.h"
#include "server/http.h"
#include "server/oai_parse.h"
#include "server/oai_response.h"

struct gen_group {
    struct sched_request *sr;         /* owned reference (the HTTP side's) */
    bool done;
    bool echo_sent;                   /* streaming echo chunk emitted */
    int32_t *ids;                     /* owned prompt ids */
    int num_ids;
    struct sched_timing timing;
};

struct gen_req {
    struct http_req *h;               /* borrowed back-pointer */
    struct srv_app *app;              /* borrowed */
    struct oai_request req;           /* owned parsed request */
    char id[64];
    struct oai_resp_ctx ctx;
    int num_groups, n;
    struct gen_group *groups;         /* [num_groups] owned */
    struct oai_result res;            /* accumulated output; echo texts */
    /* streaming */
    char *out;                        /* pending SSE bytes [out_off, out_len) */
    size_t out_len, out_off, out_cap;
    int *text_off;                    /* [num_groups*n] completions text_offset */
    bool stream_done;                 /* [DONE] queued */
    bool all_done;
    int prompt_tokens, completion_tokens;
    int error;                        /* first engine error (negative errno) */
    char error_msg[160];
    bool logged;
    atomic_bool cancelled;            /* the client hung up (watchdog) */
    int64_t start_ns;                 /* request arrival (for the log line) */
};

/* --- helpers ------------------------------------------------------------- */

static void on_notify(void *user) { http_wake(user); }

static void cancel_all(void *arg)
{
    struct gen_req *g = arg;
    atomic_store(&g->cancelled, true);
    for (int i = 0; i < g->num_groups; i++)
        if (g->groups[i].sr) sched_cancel(g->app->sched, g->groups[i].sr);
}

static void gen_free(struct gen_req *g)
{
    if (!g) return;
    for (int i = 0; i < g->num_groups; i++) {
        if (g->groups[i].sr) {
            sched_request_detach(g->groups[i].sr);
            sched_request_release(g->groups[i].sr);
        }
        free(g->groups[i].ids);
    }
    free(g->groups);
    oai_result_fini(&g->res);
    oai_request_fini(&g->req);
    free(g->out);
    free(g->text_off);
    free(g);
}

static int out_append(struct gen_req *g, const char *s, size_t n)
{
    if (g->out_len + n > g->out_cap) {
        size_t nc = g->out_cap ? g->out_cap : 4096;
        while (nc < g->out_len + n) nc *= 2;
        char *b = realloc(g->out, nc);
        if (!b) return SRV_ENOMEM;
        g->out = b;
        g->out_cap = nc;
    }
    memcpy(g->out + g->out_len, s, n);
    g->out_len += n;
    return 0;
}

/* "data: <json>\n\n"; takes ownership of json. */
static int out_event(struct gen_req *g, char *json)
{
    if (!json) return SRV_ENOMEM;
    int rc = out_append(g, "data: ", 6);
    if (!rc) rc = out_append(g, json, strlen(json));
    if (!rc) rc = out_append(g, "\n\n", 2);
    free(json);
    return rc;
}

static double ms(int64_t a, int64_t b) { return (a && b && b >= a) ? (double)(b - a) / 1e6 : -1; }

/* One log line per finished request. */
static void log_finished(struct gen_req *g, int status)
{
    if (g->logged) return;
    g->logged = true;
    if (atomic_load(&g->cancelled) && g->h) status = 499; /* nginx's "client closed request" */
    atomic_fetch_sub(&g->app->inflight, 1);
    struct sched_timing t = g->groups[0].timing;
    const char *finish = "none";
    if (g->res.groups && g->res.groups[0].choices) {
        const char *f = oai_finish_reason(g->res.groups[0].choices[0].finish);
        if (f) finish = f;
    }
    if (status == 499 && !strcmp(finish, "none")) finish = "abort"; /* the client left first */
    /* Latency histograms are pushed by the scheduler's step loop (the one
     * place that sees every token's time), not here. */
    if (g->app->args->disable_log_requests) return;
    LOG_INFO("request %s finished: status=%d prompt_tokens=%d completion_tokens=%d queue_ms=%.1f "
             "ttft_ms=%.1f total_ms=%.1f finish=%s%s",
             g->id, status, g->prompt_tokens, g->completion_tokens, ms(t.arrival_ns, t.first_scheduled_ns),
             ms(t.arrival_ns, t.first_token_ns), (double)(srv_now_ns() - g->start_ns) / 1e6, finish,
             g->req.stream ? " stream" : "");
}

/* Drain every group's outbox into g->res. Caller holds h->mu. */
static int drain_all(struct gen_req *g)
{
    bool all = true;
    for (int i = 0; i < g->num_groups; i++) {
        struct gen_group *G = &g->groups[i];
        if (G->done) continue;
        struct sched_delta d;
        while (sched_request_drain(G->sr, &d) > 0) {
            int rc = oai_result_add(&g->res, i, &d);
            G->timing = d.timing;
            if (d.error && !g->error) {
                g->error = d.error;
                snprintf(g->error_msg, sizeof g->error_msg, "%s", d.error_msg);
            }
            if (d.done) G->done = true;
            sched_delta_fini(&d);
            if (rc) return rc;
            if (G->done) break;
        }
        if (!G->done) all = false;
    }
    g->prompt_tokens = g->completion_tokens = 0;
    for (int i = 0; i < g->num_groups; i++) {
        g->prompt_tokens += g->res.groups[i].prompt_tokens;
        g->completion_tokens += g->res.groups[i].completion_tokens;
    }
    g->all_done = all;
    return 0;
}

/* --- non-streaming ------------------------------------------------------- */

static enum MHD_Result reply_final(struct gen_req *g)
{
    struct http_req *h = g->h;
    if (g->error) {
        struct srv_error e;
        srv_err_set(&e, SRV_EINTERNAL, NULL, "The engine failed on this request: %s",
                    g->error_msg[0] ? g->error_msg : strerror(-g->error));
        log_finished(g, 500);
        return http_reply_error(h, &e);
    }
    char *body = g->req.kind == OAI_CHAT ? oai_chat_json(&g->ctx, &g->res, g->req.logprobs)
                                         : oai_completion_json(&g->ctx, &g->res, g->req.echo, g->req.logprobs);
    if (!body) {
        struct srv_error e;
        srv_err_set(&e, SRV_ENOMEM, NULL, "out of memory building the response");
        log_finished(g, 500);
        return http_reply_error(h, &e);
    }
    log_finished(g, 200);
    enum MHD_Result rc = http_reply_json(h, 200, body);
    free(body);
    return rc;
}

enum MHD_Result gen_continue(struct http_req *h)
{
    struct gen_req *g = h->gen;
    pthread_mutex_lock(&h->mu);
    int rc = drain_all(g);
    if (rc == 0 && !g->all_done) {
        http_suspend_locked(h);
        pthread_mutex_unlock(&h->mu);
        return MHD_YES;
    }
    pthread_mutex_unlock(&h->mu);
    if (rc) {
        cancel_all(g);
        struct srv_error e;
        srv_err_set(&e, SRV_ENOMEM, NULL, "out of memory");
        log_finished(g, 500);
        return http_reply_error(h, &e);
    }
    return reply_final(g);
}

/* --- streaming ----------------------------------------------------------- */

/* Turn everything drained since the last call into SSE events. Caller holds h->mu. */
static int stream_fill(struct gen_req *g)
{
    bool usage_null = g->req.include_usage;
    enum oai_kind kind = g->req.kind;
    int lp = g->req.logprobs;
    for (int i = 0; i < g->num_groups; i++) {
        struct gen_group *G = &g->groups[i];
        struct oai_group *R = &g->res.groups[i];
        if (G->done) continue;
        struct sched_delta d;
        while (sched_request_drain(G->sr, &d) > 0) {
            G->timing = d.timing;
            if (d.prompt_tokens) R->prompt_tokens = d.prompt_tokens;
            R->completion_tokens = d.completion_tokens;
            if (d.prompt_logprobs && !R->prompt_lps) {
                R->prompt_lps = d.prompt_logprobs;
                R->num_prompt_lps = d.num_prompt_logprobs;
                d.prompt_logprobs = NULL;
            }
            /* echo: the prompt first, once its log-probs are known (if asked) */
            if (g->req.echo && !G->echo_sent && (lp < 0 || R->prompt_lps || d.done)) {
                for (int c = 0; c < g->n; c++) {
                    int idx = i * g->n + c;
                    if (out_event(g, oai_chunk_json(&g->ctx, kind, idx, R->prompt_text, R->prompt_lps,
                                                    lp >= 0 ? R->num_prompt_lps : 0, true, lp,
                                                    SCHED_FINISH_NONE, -1, -1, &g->text_off[idx], usage_null)))
                        goto oom;
                }
                G->echo_sent = true;
            }
            for (int c = 0; c < d.n; c++) {
                struct sched_choice_delta *cd = &d.choices[c];
                struct oai_choice_acc *acc = &R->choices[cd->index];
                acc->num_tokens = cd->completion_tokens;
                if (cd->finish != SCHED_FINISH_NONE) acc->finish = cd->finish;
                if (!cd->text_len && !cd->num_tokens && cd->finish == SCHED_FINISH_NONE) continue;
                if (!cd->text_len && cd->finish == SCHED_FINISH_NONE && !(lp >= 0 && cd->num_tokens)) continue;
                int idx = i * g->n + cd->index;
                /* chat, as OpenAI streams it: the finish_reason comes in its
                 * own chunk with an empty delta after the last content */
                bool split = kind == OAI_CHAT && cd->finish != SCHED_FINISH_NONE && (cd->text_len || cd->num_tokens);
                if (out_event(g, oai_chunk_json(&g->ctx, kind, idx, cd->text, cd->logprobs, cd->logprobs ? cd->num_tokens : 0,
                                                false, lp, split ? SCHED_FINISH_NONE : cd->finish, cd->stop_token,
                                                cd->stop_index, &g->text_off[idx], usage_null)))
                    goto oom;
                if (split && out_event(g, oai_chunk_json(&g->ctx, kind, idx, "", NULL, 0, false, lp, cd->finish,
                                                         cd->stop_token, cd->stop_index, &g->text_off[idx], usage_null)))
                    goto oom;
            }
            if (d.error && !g->error) {
                g->error = d.error;
                snprintf(g->error_msg, sizeof g->error_msg, "%s", d.error_msg);
                struct srv_error e;
                srv_err_set(&e, SRV_EINTERNAL, NULL, "The engine failed on this request: %s", d.error_msg);
                if (out_event(g, srv_err_json(&e))) goto oom;
            }
            bool done = d.done;
            sched_delta_fini(&d);
            if (done) { G->done = true; break; }
        }
    }
    bool all = true;
    g->prompt_tokens = g->completion_tokens = 0;
    for (int i = 0; i < g->num_groups; i++) {
        all &= g->groups[i].done;
        g->prompt_tokens += g->res.groups[i].prompt_tokens;
        g->completion_tokens += g->res.groups[i].completion_tokens;
    }
    g->all_done = all;
    if (all && !g->stream_done) {
        if (g->req.include_usage &&
            out_event(g, oai_chunk_usage(&g->ctx, kind, g->prompt_tokens, g->completion_tokens)))
            return SRV_ENOMEM;
        if (out_append(g, "data: [DONE]\n\n", 14)) return SRV_ENOMEM;
        g->stream_done = true;
        log_finished(g, g->error ? 500 : 200);
    }
    return 0;
oom:
    return SRV_ENOMEM;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_req *h = cls;
    struct gen_req *g = h->gen;
    pthread_mutex_lock(&h->mu);
    if (g->out_off == g->out_len) {
        g->out_off = g->out_len = 0;
        if (!g->stream_done && stream_fill(g)) {
            cancel_all(g);
            pthread_mutex_unlock(&h->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    if (g->out_len > g->out_off) {
        size_t n = g->out_len - g->out_off;
        if (n > max) n = max;
        memcpy(buf, g->out + g->out_off, n);
        g->out_off += n;
        pthread_mutex_unlock(&h->mu);
        return (ssize_t)n;
    }
    if (g->stream_done) {
        pthread_mutex_unlock(&h->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    http_suspend_locked(h);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static enum MHD_Result start_stream(struct gen_req *g)
{
    struct http_req *h = g->h;
    if (g->req.kind == OAI_CHAT) {
        for (int i = 0; i < g->num_groups * g->n; i++)
            if (out_event(g, oai_chunk_chat_role(&g->ctx, i, g->req.include_usage))) return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_reader, h, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result rc = MHD_queue_response(h->conn, 200, resp);
    MHD_destroy_response(resp);
    h->responded = true;
    h->status = 200;
    return rc;
}

/* --- start --------------------------------------------------------------- */

static int map_submit_err(int rc, const char *msg, struct srv_error *e)
{
    switch (rc) {
    case -EINVAL: return srv_err_set(e, SRV_EINVAL, NULL, "%s", msg);
    case -E2BIG: return srv_err_set(e, SRV_ETOOLONG, "messages", "%s", msg);
    case -EAGAIN: return srv_err_set(e, SRV_EQUEUE, NULL, "The server is busy: the request queue is full; retry later");
    case -ESHUTDOWN: return srv_err_set(e, SRV_EUNAVAIL, NULL, "The server is shutting down");
    case -ENOMEM: return srv_err_set(e, SRV_ENOMEM, NULL, "out of memory");
    default: return srv_err_set(e, SRV_EINTERNAL, NULL, "could not queue the request: %s", msg);
    }
}

/* Build the prompt ids of every group (tokenize text, render chat). */
static int build_prompts(struct gen_req *g, struct srv_error *e)
{
    const struct srv_app *app = g->app;
    const struct oai_request *q = &g->req;
    g->num_groups = q->kind == OAI_CHAT ? 1 : q->num_prompts;
    g->groups = calloc((size_t)g->num_groups, sizeof *g->groups);
    if (!g->groups || oai_result_init(&g->res, g->num_groups, g->n))
        return srv_err_set(e, SRV_ENOMEM, NULL, "out of memory");
    for (int i = 0; i < g->num_groups; i++) {
        struct gen_group *G = &g->groups[i];
        struct oai_group *R = &g->res.groups[i];
        char *text = NULL;
        size_t text_len = 0;
        if (q->kind == OAI_CHAT) {
            int rc = chat_render(app, q->messages_json, q->tools_json, q->add_generation_prompt,
                                 q->continue_final_message, q->chat_template_kwargs_json, &text, e);
            if (rc) return rc;
            text_len = strlen(text);
        } else if (q->prompts[i].text) {
            text = q->prompts[i].text;
            text_len = q->prompts[i].text_len;
        }
        if (text) {
            int n = tok_encode(app->tok, text, text_len, q->add_special_tokens, &G->ids);
            if (n < 0) {
                if (q->kind == OAI_CHAT) free(text);
                return srv_err_set(e, SRV_EINVAL, q->kind == OAI_CHAT ? "messages" : "prompt",
                                   "the prompt could not be tokenized");
            }
            G->num_ids = n;
            if (q->echo) {
                R->prompt_text = malloc(text_len + 1);
                if (R->prompt_text) { memcpy(R->prompt_text, text, text_len); R->prompt_text[text_len] = 0; R->prompt_text_len = text_len; }
            }
            if (q->kind == OAI_CHAT) free(text);
        } else {
            G->num_ids = q->prompts[i].num_ids;
            G->ids = malloc(sizeof(int32_t) * (size_t)(G->num_ids ? G->num_ids : 1));
            if (!G->ids) return srv_err_set(e, SRV_ENOMEM, NULL, "out of memory");
            memcpy(G->ids, q->prompts[i].ids, sizeof(int32_t) * (size_t)G->num_ids);
            for (int k = 0; k < G->num_ids; k++)
                if (G->ids[k] < 0 || G->ids[k] >= app->vocab_size)
                    return srv_err_set(e, SRV_EINVAL, "prompt", "'prompt': token id %d is out of vocabulary (size %d)",
                                       (int)G->ids[k], app->vocab_size);
            if (q->echo) {
                size_t l = 0;
                R->prompt_text = G->num_ids ? tok_decode(app->tok, G->ids, G->num_ids, false, &l) : strdup("");
                R->prompt_text_len = R->prompt_text ? l : 0;
            }
        }
        if (G->num_ids == 0)
            return srv_err_set(e, SRV_EINVAL, q->kind == OAI_CHAT ? "messages" : "prompt", "The prompt is empty");
    }
    return 0;
}

static double dflt(double given, bool has, double model, double fallback)
{
    if (has) return given;
    return isnan(model) ? fallback : model;
}

static int submit_all(struct gen_req *g, struct srv_error *e)
{
    const struct srv_app *app = g->app;
    const struct oai_request *q = &g->req;
    const struct cfg_model *cfg = app->cfg;
    for (int i = 0; i < g->num_groups; i++) {
        struct gen_group *G = &g->groups[i];
        int max_tokens = q->max_tokens;
        int room = app->max_model_len - G->num_ids;
        if (room < 0 || (room == 0 && max_tokens != 0))
            return srv_err_set(e, SRV_ETOOLONG, q->kind == OAI_CHAT ? "messages" : "prompt",
                               "This model's maximum context length is %d tokens. However, your %s has %d "
                               "tokens. Please reduce the length of the %s.",
                               app->max_model_len, q->kind == OAI_CHAT ? "messages" : "prompt", G->num_ids,
                               q->kind == OAI_CHAT ? "messages" : "prompt");
        /* max_tokens is clamped to what fits (issue 8); none given = the rest */
        if (max_tokens < 0 || max_tokens > room) max_tokens = room;
        struct sched_params p;
        sched_params_init(&p);
        p.id = g->id;
        p.prompt = G->ids;
        p.prompt_len = G->num_ids;
        p.n = g->n;
        p.max_tokens = max_tokens;
        p.min_tokens = q->min_tokens < max_tokens ? q->min_tokens : max_tokens;
        p.ignore_eos = q->ignore_eos;
        p.stop = (const char *const *)q->stop;
        p.num_stop = q->num_stop;
        p.stop_token_ids = q->stop_token_ids;
        p.num_stop_token_ids = q->num_stop_token_ids;
        p.include_stop_str_in_output = q->include_stop_str_in_output;
        p.skip_special_tokens = q->skip_special_tokens;
        samp_params_init(&p.sampling);
        p.sampling.temperature = (float)dflt(q->temperature, q->has_temperature, cfg->gen_temperature, 1.0);
        p.sampling.top_p = (float)dflt(q->top_p, q->has_top_p, cfg->gen_top_p, 1.0);
        p.sampling.top_k = q->has_top_k ? q->top_k : (cfg->gen_top_k > 0 ? cfg->gen_top_k : -1);
        p.sampling.min_p = (float)q->min_p;
        p.sampling.presence_penalty = (float)q->presence_penalty;
        p.sampling.frequency_penalty = (float)q->frequency_penalty;
        p.sampling.repetition_penalty = (float)dflt(q->repetition_penalty, q->has_repetition_penalty,
                                                    cfg->gen_repetition_penalty, 1.0);
        p.sampling.logit_bias = q->logit_bias;
        p.sampling.num_logit_bias = q->num_logit_bias;
        p.has_seed = q->has_seed;
        p.seed = q->seed;
        p.logprobs = q->logprobs;
        p.prompt_logprobs = q->echo && q->logprobs >= 0 ? q->logprobs : q->prompt_logprobs;
        G->sr = sched_request_create(&p);
        if (!G->sr) return srv_err_set(e, SRV_ENOMEM, NULL, "out of memory");
        if (g->h) sched_request_set_notify(G->sr, on_notify, g->h);
        char msg[256] = "";
        int rc = sched_submit(app->sched, G->sr, msg, sizeof msg);
        if (rc) {
            map_submit_err(rc, msg, e);
            sched_request_detach(G->sr);
            sched_request_release(G->sr);
            G->sr = NULL;
            return e->code;
        }
        G->timing.arrival_ns = srv_now_ns();
    }
    return 0;
}

/* Parse, check, render, tokenize and submit. h may be NULL (offline). */
static struct gen_req *gen_prepare(struct srv_app *app, struct http_req *h, enum oai_kind kind, const char *body,
                                   size_t len, struct srv_error *e)
{
    enum srv_state st = srv_app_state(app);
    if (st != SRV_SERVING) {
        srv_err_set(e, SRV_EUNAVAIL, NULL, st == SRV_LOADING ? "The model is still loading" : "The server is shutting down");
        return NULL;
    }
    struct gen_req *g = calloc(1, sizeof *g);
    if (!g) {
        srv_err_set(e, SRV_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    g->h = h;
    g->app = app;
    g->start_ns = h ? h->start_ns : srv_now_ns();
    struct oai_limits lim;
    oai_limits_init(&lim);
    lim.max_logprobs = app->args->max_logprobs < SAMP_MAX_LOGPROBS ? app->args->max_logprobs : SAMP_MAX_LOGPROBS;
    lim.vocab_size = app->vocab_size;
    int rc = oai_parse(kind, body, len, &lim, &g->req, e);
    if (rc) goto fail;
    if (g->req.model && strcmp(g->req.model, app->args->served_model_name)) {
        srv_err_set(e, SRV_ENOMODEL, "model", "The model `%s` does not exist.", g->req.model);
        goto fail;
    }
    g->n = g->req.n;
    oai_make_id(g->id, sizeof g->id, kind == OAI_CHAT ? "chatcmpl-" : "cmpl-");
    g->ctx = (struct oai_resp_ctx){app->tok, g->id, (int64_t)time(NULL), app->args->served_model_name,
                                   (const char *const *)g->req.stop, g->req.num_stop};
    if ((rc = build_prompts(g, e))) goto fail;
    g->text_off = calloc((size_t)(g->num_groups * g->n), sizeof(int));
    if (!g->text_off) { srv_err_set(e, SRV_ENOMEM, NULL, "out of memory"); goto fail; }
    atomic_fetch_add(&app->inflight, 1);
    if ((rc = submit_all(g, e))) {
        atomic_fetch_sub(&app->inflight, 1);
        cancel_all(g);
        goto fail;
    }
    return g;
fail:
    gen_free(g);
    return NULL;
}

enum MHD_Result gen_start(struct http_req *h, enum oai_kind kind)
{
    struct srv_error e;
    struct gen_req *g = gen_prepare(h->app, h, kind, h->body, h->len, &e);
    if (!g) return http_reply_error(h, &e);
    h->gen = g;
    atomic_fetch_add(&h->app->open_gen, 1);
    http_watch(h, cancel_all, g);
    if (g->req.stream) return start_stream(g);
    return gen_continue(h);
}

/* --- offline (deltaserve complete) --------------------------------------- */

char *gen_run_offline(struct srv_app *app, enum oai_kind kind, const char *body, size_t len, int *status)
{
    struct srv_error e;
    struct gen_req *g = gen_prepare(app, NULL, kind, body, len, &e);
    char *out = NULL;
    if (!g) goto err;
    for (;;) {
        if (drain_all(g)) { srv_err_set(&e, SRV_ENOMEM, NULL, "out of memory"); goto err; }
        if (g->all_done) break;
        for (int i = 0; i < g->num_groups; i++)
            if (!g->groups[i].done) { sched_request_wait(g->groups[i].sr, 1000); break; }
    }
    if (g->error) {
        srv_err_set(&e, SRV_EINTERNAL, NULL, "The engine failed on this request: %s", g->error_msg);
        goto err;
    }
    out = kind == OAI_CHAT ? oai_chat_json(&g->ctx, &g->res, g->req.logprobs)
                           : oai_completion_json(&g->ctx, &g->res, g->req.echo, g->req.logprobs);
    log_finished(g, 200);
    gen_free(g);
    *status = 200;
    return out;
err:
    if (g) { log_finished(g, srv_err_status(e.code)); gen_free(g); }
    *status = srv_err_status(e.code);
    return srv_err_json(&e);
}

void gen_completed(struct http_req *h, bool client_gone)
{
    struct gen_req *g = h->gen;
    h->gen = NULL;
    if (!g) return;
    if (!g->all_done) cancel_all(g);
    if (!g->logged) log_finished(g, client_gone ? 499 : h->status);
    struct srv_app *app = g->app;
    gen_free(g);
    atomic_fetch_sub(&app->open_gen, 1);
}
