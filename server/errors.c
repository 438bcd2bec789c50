/* server/errors.c: the one table from error codes to HTTP statuses and OpenAI
 * error object fields (see errors.h). Any thread. */
#include "server/errors.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_row {
    int status;
    const char *type;
    const char *code; /* NULL -> JSON null */
};

/* Indexed by -code. The types follow OpenAI's API (invalid_request_error for
 * every client mistake, including auth and unknown models, as api.openai.com
 * answers); vLLM answers the same statuses. */
static const struct err_row g_rows[SRV_ERR_COUNT_] = {
    [0] = {200, "", NULL},
    [-SRV_EINVAL] = {400, "invalid_request_error", "invalid_value"},
    [-SRV_EJSON] = {400, "invalid_request_error", "invalid_json"},
    [-SRV_ETOOLONG] = {400, "invalid_request_error", "context_length_exceeded"},
    [-SRV_EAUTH] = {401, "invalid_request_error", "invalid_api_key"},
    [-SRV_ENOTFOUND] = {404, "invalid_request_error", "not_found"},
    [-SRV_ENOMODEL] = {404, "invalid_request_error", "model_not_found"},
    [-SRV_EMETHOD] = {405, "invalid_request_error", "method_not_allowed"},
    [-SRV_ETOOBIG] = {413, "invalid_request_error", "request_too_large"},
    [-SRV_EQUEUE] = {429, "rate_limit_error", "rate_limit_exceeded"},
    [-SRV_EUNAVAIL] = {503, "service_unavailable_error", "service_unavailable"},
    [-SRV_ENOTSUP] = {400, "invalid_request_error", "unsupported_value"},
    [-SRV_ENOMEM] = {500, "server_error", "out_of_memory"},
    [-SRV_EINTERNAL] = {500, "server_error", "internal_error"},
    [-SRV_ECANCELED] = {499, "invalid_request_error", "cancelled"},
    [-SRV_ETIMEOUT] = {408, "invalid_request_error", "timeout"},
};

static const struct err_row *row(int code)
{
    if (code > 0 || code <= -SRV_ERR_COUNT_) return &g_rows[-SRV_EINTERNAL];
    return &g_rows[-code];
}

int srv_err_set(struct srv_error *e, int code, const char *param, const char *fmt, ...)
{
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

int srv_err_status(int code) { return row(code)->status; }
const char *srv_err_type(int code) { return row(code)->type; }
const char *srv_err_code_str(int code) { return row(code)->code; }

char *srv_err_json(const struct srv_error *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(root, "error");
    if (!o) goto fail;
    cJSON_AddStringToObject(o, "message", e->message[0] ? e->message : "error");
    cJSON_AddStringToObject(o, "type", srv_err_type(e->code));
    if (e->param[0]) cJSON_AddStringToObject(o, "param", e->param);
    else cJSON_AddNullToObject(o, "param");
    const char *c = srv_err_code_str(e->code);
    if (c) cJSON_AddStringToObject(o, "code", c);
    else cJSON_AddNullToObject(o, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
fail:
    cJSON_Delete(root);
    return NULL;
}
