/* server/routes.c: the route table and the small endpoints: /v1/models,
 * /v1/models/{id}, /tokenize, /detokenize, /health, /version, /metrics.
 * Completions and chat go to gen.c. Threads: MHD pool threads. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "server/chat.h"
#include "server/gen.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/oai_parse.h"

#define DS_VERSION "0.1.0"

enum route_id {
    RT_COMPLETIONS, RT_CHAT, RT_MODELS, RT_MODEL, RT_TOKENIZE, RT_DETOKENIZE,
    RT_HEALTH, RT_VERSION, RT_METRICS,
};

struct http_route {
    enum route_id id;
    const char *method;
    const char *path;
    bool prefix;       /* path is a prefix (/v1/models/{id}) */
    bool body;         /* reads a body */
    int auth;          /* 1: under --api-key; 2: only with --auth-health-metrics */
};

static const struct http_route g_routes[] = {
    {RT_COMPLETIONS, "POST", "/v1/completions", false, true, 1},
    {RT_CHAT, "POST", "/v1/chat/completions", false, true, 1},
    {RT_MODELS, "GET", "/v1/models", false, false, 1},
    {RT_MODEL, "GET", "/v1/models/", true, false, 1},
    {RT_TOKENIZE, "POST", "/tokenize", false, true, 1},
    {RT_DETOKENIZE, "POST", "/detokenize", false, true, 1},
    {RT_HEALTH, "GET", "/health", false, false, 2},
    {RT_VERSION, "GET", "/version", false, false, 2},
    {RT_METRICS, "GET", "/metrics", false, false, 2},
};
#define N_ROUTES (sizeof g_routes / sizeof g_routes[0])

static bool path_match(const struct http_route *rt, const char *path)
{
    if (rt->prefix) return !strncmp(path, rt->path, strlen(rt->path)) && path[strlen(rt->path)];
    size_t l = strlen(rt->path);
    /* a trailing slash is tolerated, as most servers do */
    return !strncmp(path, rt->path, l) && (path[l] == 0 || (path[l] == '/' && path[l + 1] == 0));
}

const struct http_route *routes_match(const char *method, const char *path, int *status, bool *needs_body)
{
    bool path_seen = false;
    bool head = !strcmp(method, "HEAD");
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (!path_match(&g_routes[i], path)) continue;
        path_seen = true;
        if (!strcmp(g_routes[i].method, method) || (head && !strcmp(g_routes[i].method, "GET"))) {
            *needs_body = g_routes[i].body;
            *status = 200;
            return &g_routes[i];
        }
    }
    *status = path_seen ? 405 : 404;
    return NULL;
}

bool routes_needs_auth(const struct http_route *rt, const struct srv_args *a)
{
    return rt->auth == 1 || (rt->auth == 2 && a->auth_health_metrics);
}

/* --- small endpoints ----------------------------------------------------- */

static enum MHD_Result reply_cjson(struct http_req *r, int status, cJSON *root)
{
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) return MHD_NO;
    enum MHD_Result rc = http_reply_json(r, status, s);
    free(s);
    return rc;
}

static enum MHD_Result unavailable(struct http_req *r)
{
    struct srv_error e;
    enum srv_state st = srv_app_state(r->app);
    srv_err_set(&e, SRV_EUNAVAIL, NULL, st == SRV_LOADING ? "The model is still loading" : "The server is shutting down");
    return http_reply_error(r, &e);
}

static cJSON *model_obj(const struct srv_app *app)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", app->args->served_model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)app->start_time);
    cJSON_AddStringToObject(m, "owned_by", "deltaserve");
    cJSON_AddStringToObject(m, "root", app->args->model);
    cJSON_AddNullToObject(m, "parent");
    cJSON_AddNumberToObject(m, "max_model_len", app->max_model_len);
    cJSON_AddArrayToObject(m, "permission");
    return m;
}

static enum MHD_Result route_models(struct http_req *r)
{
    if (srv_app_state(r->app) == SRV_LOADING) return unavailable(r);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON_AddItemToArray(data, model_obj(r->app));
    return reply_cjson(r, 200, root);
}

static enum MHD_Result route_model(struct http_req *r)
{
    if (srv_app_state(r->app) == SRV_LOADING) return unavailable(r);
    const char *id = r->path + strlen("/v1/models/");
    /* MHD has already percent-decoded the path */
    if (strcmp(id, r->app->args->served_model_name)) {
        struct srv_error e;
        srv_err_set(&e, SRV_ENOMODEL, "model", "The model `%s` does not exist.", id);
        return http_reply_error(r, &e);
    }
    return reply_cjson(r, 200, model_obj(r->app));
}

static enum MHD_Result route_health(struct http_req *r)
{
    if (srv_app_state(r->app) != SRV_SERVING) return unavailable(r);
    return http_reply(r, 200, "text/plain", "", 0);
}

static enum MHD_Result route_version(struct http_req *r)
{
    return http_reply_json(r, 200, "{\"version\":\"" DS_VERSION "\"}");
}

static enum MHD_Result route_metrics(struct http_req *r)
{
    size_t len = 0;
    char *s = metrics_render(&len);
    if (!s) {
        struct srv_error e;
        srv_err_set(&e, SRV_EUNAVAIL, NULL, "metrics are not available yet");
        return http_reply_error(r, &e);
    }
    enum MHD_Result rc = http_reply(r, 200, METRICS_CONTENT_TYPE, s, len);
    free(s);
    return rc;
}

static int check_model(const struct srv_app *app, const char *model, struct srv_error *e)
{
    if (model && strcmp(model, app->args->served_model_name))
        return srv_err_set(e, SRV_ENOMODEL, "model", "The model `%s` does not exist.", model);
    return 0;
}

static enum MHD_Result route_tokenize(struct http_req *r)
{
    struct srv_app *app = r->app;
    if (srv_app_state(app) != SRV_SERVING) return unavailable(r);
    struct oai_limits lim;
    oai_limits_init(&lim);
    lim.vocab_size = app->vocab_size;
    struct oai_tok_request q;
    struct srv_error e;
    char *text = NULL;
    int32_t *ids = NULL;
    if (oai_parse_tokenize(r->body, r->len, &lim, &q, &e) || check_model(app, q.model, &e)) goto fail;
    size_t tl;
    if (q.messages_json) {
        if (chat_render(app, q.messages_json, q.tools_json, q.add_generation_prompt, q.continue_final_message,
                        NULL, &text, &e))
            goto fail;
        tl = strlen(text);
    } else {
        text = q.prompt;
        q.prompt = NULL;
        tl = q.prompt_len;
    }
    int n = tok_encode(app->tok, text, tl, q.add_special_tokens, &ids);
    if (n < 0) {
        srv_err_set(&e, SRV_EINVAL, "prompt", "the prompt could not be tokenized");
        goto fail;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "count", n);
    cJSON_AddNumberToObject(root, "max_model_len", app->max_model_len);
    cJSON *arr = cJSON_AddArrayToObject(root, "tokens");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    cJSON_AddNullToObject(root, "token_strs");
    free(ids);
    free(text);
    oai_tok_request_fini(&q);
    return reply_cjson(r, 200, root);
fail:
    free(ids);
    free(text);
    oai_tok_request_fini(&q);
    return http_reply_error(r, &e);
}

static enum MHD_Result route_detokenize(struct http_req *r)
{
    struct srv_app *app = r->app;
    if (srv_app_state(app) != SRV_SERVING) return unavailable(r);
    struct oai_limits lim;
    oai_limits_init(&lim);
    lim.vocab_size = app->vocab_size;
    struct oai_tok_request q;
    struct srv_error e;
    if (oai_parse_detokenize(r->body, r->len, &lim, &q, &e) || check_model(app, q.model, &e)) {
        oai_tok_request_fini(&q);
        return http_reply_error(r, &e);
    }
    size_t len = 0;
    char *text = q.num_tokens ? tok_decode(app->tok, q.tokens, q.num_tokens, false, &len) : strdup("");
    oai_tok_request_fini(&q);
    if (!text) {
        srv_err_set(&e, SRV_EINVAL, "tokens", "'tokens' could not be decoded");
        return http_reply_error(r, &e);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "prompt", text);
    free(text);
    return reply_cjson(r, 200, root);
}

enum MHD_Result routes_dispatch(struct http_req *r)
{
    switch (r->route->id) {
    case RT_COMPLETIONS: return gen_start(r, OAI_COMPLETION);
    case RT_CHAT: return gen_start(r, OAI_CHAT);
    case RT_MODELS: return route_models(r);
    case RT_MODEL: return route_model(r);
    case RT_TOKENIZE: return route_tokenize(r);
    case RT_DETOKENIZE: return route_detokenize(r);
    case RT_HEALTH: return route_health(r);
    case RT_VERSION: return route_version(r);
    case RT_METRICS: return route_metrics(r);
    }
    return MHD_NO;
}
