/* server/oai_response.c: OpenAI response JSON (see oai_response.h). Runs on
 * the HTTP thread that owns the request (or the offline CLI). */
#include "server/oai_response.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "server/errors.h"

/* --- accumulation -------------------------------------------------------- */

int oai_result_init(struct oai_result *r, int num_groups, int n)
{
    memset(r, 0, sizeof *r);
    r->groups = calloc((size_t)num_groups, sizeof *r->groups);
    if (!r->groups) return SRV_ENOMEM;
    r->num_groups = num_groups;
    r->n = n;
    for (int g = 0; g < num_groups; g++) {
        r->groups[g].choices = calloc((size_t)n, sizeof(struct oai_choice_acc));
        if (!r->groups[g].choices) return SRV_ENOMEM;
        for (int i = 0; i < n; i++) {
            r->groups[g].choices[i].stop_token = -1;
            r->groups[g].choices[i].stop_index = -1;
        }
    }
    return 0;
}

void oai_result_fini(struct oai_result *r)
{
    for (int g = 0; g < r->num_groups; g++) {
        struct oai_group *G = &r->groups[g];
        free(G->prompt_text);
        free(G->prompt_ids);
        free(G->prompt_lps);
        for (int i = 0; G->choices && i < r->n; i++) {
            free(G->choices[i].text);
            free(G->choices[i].tokens);
            free(G->choices[i].lps);
        }
        free(G->choices);
    }
    free(r->groups);
    memset(r, 0, sizeof *r);
}

static int acc_add(struct oai_choice_acc *a, const struct sched_choice_delta *d)
{
    if (a->len + d->text_len + 1 > a->cap) {
        size_t nc = (a->cap ? a->cap : 64);
        while (nc < a->len + d->text_len + 1) nc *= 2;
        char *t = realloc(a->text, nc);
        if (!t) return SRV_ENOMEM;
        a->text = t;
        a->cap = nc;
    }
    if (d->text_len) memcpy(a->text + a->len, d->text, d->text_len);
    a->len += d->text_len;
    a->text[a->len] = 0;
    if (d->num_tokens) {
        if (a->num_tokens + d->num_tokens > a->cap_tokens) {
            int nc = a->cap_tokens ? a->cap_tokens : 16;
            while (nc < a->num_tokens + d->num_tokens) nc *= 2;
            int32_t *t = realloc(a->tokens, sizeof(int32_t) * (size_t)nc);
            if (!t) return SRV_ENOMEM;
            a->tokens = t;
            if (d->logprobs || a->lps) {
                struct sched_tok_lp *l = realloc(a->lps, sizeof(struct sched_tok_lp) * (size_t)nc);
                if (!l) return SRV_ENOMEM;
                a->lps = l;
            }
            a->cap_tokens = nc;
        }
        memcpy(a->tokens + a->num_tokens, d->tokens, sizeof(int32_t) * (size_t)d->num_tokens);
        if (d->logprobs && a->lps)
            memcpy(a->lps + a->num_tokens, d->logprobs, sizeof(struct sched_tok_lp) * (size_t)d->num_tokens);
        a->num_tokens += d->num_tokens;
    }
    if (d->finish != SCHED_FINISH_NONE) {
        a->finish = d->finish;
        a->stop_token = d->stop_token;
        a->stop_index = d->stop_index;
    }
    return 0;
}

int oai_result_add(struct oai_result *r, int g, struct sched_delta *d)
{
    struct oai_group *G = &r->groups[g];
    for (int i = 0; i < d->n && i < r->n; i++) {
        int idx = d->choices[i].index;
        if (idx < 0 || idx >= r->n) continue;
        int rc = acc_add(&G->choices[idx], &d->choices[i]);
        if (rc) return rc;
    }
    if (d->prompt_logprobs && !G->prompt_lps) {
        G->prompt_lps = d->prompt_logprobs;
        G->num_prompt_lps = d->num_prompt_logprobs;
        d->prompt_logprobs = NULL;
        d->num_prompt_logprobs = 0;
    }
    if (d->prompt_tokens) G->prompt_tokens = d->prompt_tokens;
    G->completion_tokens = d->completion_tokens;
    return 0;
}

/* --- helpers ------------------------------------------------------------- */

const char *oai_finish_reason(enum sched_finish f)
{
    switch (f) {
    case SCHED_FINISH_STOP: return "stop";
    case SCHED_FINISH_LENGTH: return "length";
    case SCHED_FINISH_ABORT: return "abort";
    case SCHED_FINISH_ERROR: return "error";
    default: return NULL;
    }
}

void oai_make_id(char *buf, size_t len, const char *prefix)
{
    unsigned char rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)buf;
        for (size_t i = 0; i < sizeof rnd; i++) { x = x * 6364136223846793005ull + 1442695040888963407ull; rnd[i] = (unsigned char)(x >> 56); }
    }
    int o = snprintf(buf, len, "%s", prefix);
    for (size_t i = 0; i < sizeof rnd && o > 0 && (size_t)o + 2 < len; i++)
        o += snprintf(buf + o, len - (size_t)o, "%02x", rnd[i]);
}

/* The text of one token as vLLM reports it (the token decoded alone). */
static char *tok_text(const struct tokenizer *t, int32_t id, size_t *len)
{
    char *s = t ? tok_decode(t, &id, 1, false, len) : NULL;
    if (!s) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "token_id:%d", (int)id);
        s = strdup(buf);
        if (len) *len = s ? (size_t)n : 0;
    }
    return s;
}

/* Characters (code points) in s: text_offset counts characters, as Python does. */
static int utf8_chars(const char *s, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static void add_stop_reason(const struct oai_resp_ctx *c, cJSON *choice, enum sched_finish f, int32_t stop_token, int stop_index)
{
    if (f == SCHED_FINISH_STOP && stop_index >= 0 && stop_index < c->num_stop)
        cJSON_AddStringToObject(choice, "stop_reason", c->stop[stop_index]);
    else if (f == SCHED_FINISH_STOP && stop_token >= 0)
        cJSON_AddNumberToObject(choice, "stop_reason", stop_token);
    else
        cJSON_AddNullToObject(choice, "stop_reason");
}

static void add_finish(cJSON *choice, enum sched_finish f)
{
    const char *s = oai_finish_reason(f);
    if (s) cJSON_AddStringToObject(choice, "finish_reason", s);
    else cJSON_AddNullToObject(choice, "finish_reason");
}

/* Completions schema: append tokens [0, n) of lps to the four arrays. */
struct lp_arrays { cJSON *obj, *tokens, *token_logprobs, *top_logprobs, *text_offset; };

static void lp_arrays_init(struct lp_arrays *a)
{
    a->obj = cJSON_CreateObject();
    a->tokens = cJSON_AddArrayToObject(a->obj, "tokens");
    a->token_logprobs = cJSON_AddArrayToObject(a->obj, "token_logprobs");
    a->top_logprobs = cJSON_AddArrayToObject(a->obj, "top_logprobs");
    a->text_offset = cJSON_AddArrayToObject(a->obj, "text_offset");
}

static void lp_completion_append(const struct tokenizer *t, struct lp_arrays *a, const struct sched_tok_lp *lps,
                                 int n, bool first_null, int k, int *offset)
{
    for (int i = 0; i < n; i++) {
        const struct sched_tok_lp *lp = &lps[i];
        size_t len = 0;
        char *s = tok_text(t, lp->token, &len);
        cJSON_AddItemToArray(a->tokens, cJSON_CreateString(s ? s : ""));
        cJSON_AddItemToArray(a->text_offset, cJSON_CreateNumber(*offset));
        *offset += s ? utf8_chars(s, len) : 0;
        if (i == 0 && first_null) {
            cJSON_AddItemToArray(a->token_logprobs, cJSON_CreateNull());
            cJSON_AddItemToArray(a->top_logprobs, cJSON_CreateNull());
            free(s);
            continue;
        }
        cJSON_AddItemToArray(a->token_logprobs, num_or_null(lp->logprob));
        /* vLLM: the top-k alternatives plus the chosen token */
        cJSON *top = cJSON_CreateObject();
        for (int j = 0; j < lp->num_top && j < k; j++) {
            char *ts = tok_text(t, lp->top[j].token, NULL);
            if (ts && !cJSON_GetObjectItemCaseSensitive(top, ts)) cJSON_AddItemToObject(top, ts, num_or_null(lp->top[j].logprob));
            free(ts);
        }
        if (s && !cJSON_GetObjectItemCaseSensitive(top, s)) cJSON_AddItemToObject(top, s, num_or_null(lp->logprob));
        cJSON_AddItemToArray(a->top_logprobs, top);
        free(s);
    }
}

static cJSON *bytes_array(const char *s, size_t len)
{
    cJSON *b = cJSON_CreateArray();
    for (size_t i = 0; i < len; i++) cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)s[i]));
    return b;
}

/* Chat schema: {"token","logprob","bytes","top_logprobs":[...]} per token. */
static void lp_chat_append(const struct tokenizer *t, cJSON *content, const struct sched_tok_lp *lps, int n, int k)
{
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        char *s = tok_text(t, lps[i].token, &len);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "token", s ? s : "");
        cJSON_AddItemToObject(e, "logprob", num_or_null(lps[i].logprob));
        cJSON_AddItemToObject(e, "bytes", bytes_array(s ? s : "", len));
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int j = 0; j < lps[i].num_top && j < k; j++) {
            size_t tl = 0;
            char *ts = tok_text(t, lps[i].top[j].token, &tl);
            cJSON *te = cJSON_CreateObject();
            cJSON_AddStringToObject(te, "token", ts ? ts : "");
            cJSON_AddItemToObject(te, "logprob", num_or_null(lps[i].top[j].logprob));
            cJSON_AddItemToObject(te, "bytes", bytes_array(ts ? ts : "", tl));
            cJSON_AddItemToArray(top, te);
            free(ts);
        }
        cJSON_AddItemToArray(content, e);
        free(s);
    }
}

static cJSON *envelope(const struct oai_resp_ctx *c, const char *object)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", c->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)c->created);
    cJSON_AddStringToObject(root, "model", c->model);
    return root;
}

static void add_usage(cJSON *root, int prompt, int completion)
{
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + completion);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
}

static char *finish_json(cJSON *root)
{
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* --- whole responses ----------------------------------------------------- */

char *oai_completion_json(const struct oai_resp_ctx *c, const struct oai_result *r, bool echo, int logprobs)
{
    cJSON *root = envelope(c, "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    int prompt = 0, completion = 0;
    for (int g = 0; g < r->num_groups; g++) {
        const struct oai_group *G = &r->groups[g];
        prompt += G->prompt_tokens;
        for (int i = 0; i < r->n; i++) {
            const struct oai_choice_acc *a = &G->choices[i];
            completion += a->num_tokens;
            cJSON *ch = cJSON_CreateObject();
            cJSON_AddNumberToObject(ch, "index", g * r->n + i);
            size_t tl = (echo ? G->prompt_text_len : 0) + a->len;
            char *text = malloc(tl + 1);
            if (!text) { cJSON_Delete(ch); cJSON_Delete(root); return NULL; }
            size_t o = 0;
            if (echo && G->prompt_text_len) { memcpy(text, G->prompt_text, G->prompt_text_len); o = G->prompt_text_len; }
            if (a->len) memcpy(text + o, a->text, a->len);
            text[tl] = 0;
            cJSON_AddStringToObject(ch, "text", text);
            free(text);
            if (logprobs >= 0) {
                struct lp_arrays la;
                lp_arrays_init(&la);
                int off = 0;
                if (echo && G->prompt_lps) lp_completion_append(c->tok, &la, G->prompt_lps, G->num_prompt_lps, true, logprobs, &off);
                if (a->lps) lp_completion_append(c->tok, &la, a->lps, a->num_tokens, false, logprobs, &off);
                cJSON_AddItemToObject(ch, "logprobs", la.obj);
            } else {
                cJSON_AddNullToObject(ch, "logprobs");
            }
            add_finish(ch, a->finish);
            add_stop_reason(c, ch, a->finish, a->stop_token, a->stop_index);
            cJSON_AddItemToArray(choices, ch);
        }
    }
    add_usage(root, prompt, completion);
    return finish_json(root);
}

char *oai_chat_json(const struct oai_resp_ctx *c, const struct oai_result *r, int logprobs)
{
    cJSON *root = envelope(c, "chat.completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    int prompt = 0, completion = 0;
    for (int g = 0; g < r->num_groups; g++) {
        const struct oai_group *G = &r->groups[g];
        prompt += G->prompt_tokens;
        for (int i = 0; i < r->n; i++) {
            const struct oai_choice_acc *a = &G->choices[i];
            completion += a->num_tokens;
            cJSON *ch = cJSON_CreateObject();
            cJSON_AddNumberToObject(ch, "index", g * r->n + i);
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", a->text ? a->text : "");
            cJSON_AddArrayToObject(msg, "tool_calls");
            if (logprobs >= 0) {
                cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
                cJSON *content = cJSON_AddArrayToObject(lp, "content");
                if (a->lps) lp_chat_append(c->tok, content, a->lps, a->num_tokens, logprobs);
            } else {
                cJSON_AddNullToObject(ch, "logprobs");
            }
            add_finish(ch, a->finish);
            add_stop_reason(c, ch, a->finish, a->stop_token, a->stop_index);
            cJSON_AddItemToArray(choices, ch);
        }
    }
    add_usage(root, prompt, completion);
    return finish_json(root);
}

/* --- streaming chunks ---------------------------------------------------- */

char *oai_chunk_json(const struct oai_resp_ctx *c, enum oai_kind kind, int index, const char *text,
                     const struct sched_tok_lp *lps, int num_lps, bool first_lp_null, int logprobs,
                     enum sched_finish finish, int32_t stop_token, int stop_index,
                     int *text_offset, bool usage_null)
{
    cJSON *root = envelope(c, kind == OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", index);
    if (kind == OAI_CHAT) {
        cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
        if (text && (text[0] || finish == SCHED_FINISH_NONE)) cJSON_AddStringToObject(delta, "content", text);
        if (logprobs >= 0 && lps && num_lps) {
            cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
            lp_chat_append(c->tok, cJSON_AddArrayToObject(lp, "content"), lps, num_lps, logprobs);
        } else {
            cJSON_AddNullToObject(ch, "logprobs");
        }
    } else {
        cJSON_AddStringToObject(ch, "text", text ? text : "");
        if (logprobs >= 0 && lps && num_lps) {
            struct lp_arrays la;
            lp_arrays_init(&la);
            int off0 = 0;
            lp_completion_append(c->tok, &la, lps, num_lps, first_lp_null, logprobs, text_offset ? text_offset : &off0);
            cJSON_AddItemToObject(ch, "logprobs", la.obj);
        } else {
            cJSON_AddNullToObject(ch, "logprobs");
        }
    }
    add_finish(ch, finish);
    if (finish != SCHED_FINISH_NONE) add_stop_reason(c, ch, finish, stop_token, stop_index);
    if (usage_null) cJSON_AddNullToObject(root, "usage");
    return finish_json(root);
}

char *oai_chunk_chat_role(const struct oai_resp_ctx *c, int index, bool usage_null)
{
    cJSON *root = envelope(c, "chat.completion.chunk");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", index);
    cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
    cJSON_AddStringToObject(delta, "role", "assistant");
    cJSON_AddStringToObject(delta, "content", "");
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddNullToObject(ch, "finish_reason");
    if (usage_null) cJSON_AddNullToObject(root, "usage");
    return finish_json(root);
}

char *oai_chunk_usage(const struct oai_resp_ctx *c, enum oai_kind kind, int prompt_tokens, int completion_tokens)
{
    cJSON *root = envelope(c, kind == OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(root, "choices");
    add_usage(root, prompt_tokens, completion_tokens);
    return finish_json(root);
}
