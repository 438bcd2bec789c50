/* server/oai_parse.c: request JSON -> struct oai_request with full type and
 * range validation (see oai_parse.h). Runs on HTTP worker threads and in the
 * offline CLI; pure apart from malloc.
 *
 * null counts as absent for every optional field (clients send explicit nulls
 * for unset parameters). Ranges follow OpenAI's documented ones where OpenAI
 * has the field, vLLM's for its extensions. */
#include "server/oai_parse.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- field getters: 0 absent/null, 1 present, < 0 error ------------------ */

static const cJSON *field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static int get_bool(const cJSON *o, const char *name, bool *out, struct srv_error *e)
{
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return srv_err_set(e, SRV_EINVAL, name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

/* A number in [lo, hi] (lo excluded when lo_open). */
static int get_num(const cJSON *o, const char *name, double lo, double hi, bool lo_open,
                   double *out, struct srv_error *e)
{
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return srv_err_set(e, SRV_EINVAL, name, "'%s' must be a number", name);
    double d = v->valuedouble;
    if ((lo_open ? d <= lo : d < lo) || d > hi)
        return srv_err_set(e, SRV_EINVAL, name, "'%s' must be in %s%g, %g], got %g", name,
                           lo_open ? "(" : "[", lo, hi, d);
    *out = d;
    return 1;
}

static bool is_integer(const cJSON *v)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble) &&
           fabs(v->valuedouble) < 9.2e18;
}

static int get_int(const cJSON *o, const char *name, double lo, double hi, int64_t *out,
                   struct srv_error *e)
{
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!is_integer(v)) return srv_err_set(e, SRV_EINVAL, name, "'%s' must be an integer", name);
    double d = v->valuedouble;
    if (d < lo || d > hi)
        return srv_err_set(e, SRV_EINVAL, name, "'%s' must be in [%.0f, %.0f], got %.0f", name, lo, hi, d);
    *out = (int64_t)d;
    return 1;
}

static int get_str(const cJSON *o, const char *name, char **out, struct srv_error *e)
{
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsString(v)) return srv_err_set(e, SRV_EINVAL, name, "'%s' must be a string", name);
    *out = strdup(v->valuestring);
    if (!*out) return srv_err_set(e, SRV_ENOMEM, name, "out of memory");
    return 1;
}

/* An integer array element as a token id. */
static int tok_id(const cJSON *v, const struct oai_limits *lim, const char *param, int32_t *out,
                  struct srv_error *e)
{
    if (!is_integer(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX)
        return srv_err_set(e, SRV_EINVAL, param, "'%s' must contain non-negative integer token ids", param);
    if (lim->vocab_size > 0 && v->valuedouble >= lim->vocab_size)
        return srv_err_set(e, SRV_EINVAL, param, "'%s': token id %.0f is out of vocabulary (size %d)",
                           param, v->valuedouble, lim->vocab_size);
    *out = (int32_t)v->valuedouble;
    return 0;
}

static int id_array(const cJSON *arr, const struct oai_limits *lim, const char *param,
                    int32_t **ids, int *n, struct srv_error *e)
{
    int cnt = cJSON_GetArraySize(arr);
    *ids = malloc(sizeof(int32_t) * (size_t)(cnt > 0 ? cnt : 1));
    if (!*ids) return srv_err_set(e, SRV_ENOMEM, param, "out of memory");
    *n = 0;
    for (const cJSON *it = arr->child; it; it = it->next) {
        int rc = tok_id(it, lim, param, &(*ids)[*n], e);
        if (rc) return rc;
        (*n)++;
    }
    return 0;
}

/* --- prompt (completions) ------------------------------------------------ */

static int add_text_prompt(struct oai_request *r, const cJSON *s, struct srv_error *e)
{
    struct oai_prompt *p = &r->prompts[r->num_prompts];
    p->text_len = strlen(s->valuestring);
    p->text = strdup(s->valuestring);
    if (!p->text) return srv_err_set(e, SRV_ENOMEM, "prompt", "out of memory");
    r->num_prompts++;
    return 0;
}

static int parse_prompt(const cJSON *root, const struct oai_limits *lim, struct oai_request *r,
                        struct srv_error *e)
{
    const cJSON *p = field(root, "prompt");
    if (!p) return srv_err_set(e, SRV_EINVAL, "prompt", "'prompt' is required");
    if (cJSON_IsString(p)) {
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return srv_err_set(e, SRV_ENOMEM, "prompt", "out of memory");
        return add_text_prompt(r, p, e);
    }
    if (!cJSON_IsArray(p))
        return srv_err_set(e, SRV_EINVAL, "prompt",
                           "'prompt' must be a string, an array of strings, an array of token ids "
                           "or an array of token id arrays");
    int cnt = cJSON_GetArraySize(p);
    if (cnt == 0) return srv_err_set(e, SRV_EINVAL, "prompt", "'prompt' must not be empty");
    const cJSON *first = p->child;
    if (cJSON_IsNumber(first)) {
        /* one prompt of token ids */
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return srv_err_set(e, SRV_ENOMEM, "prompt", "out of memory");
        r->num_prompts = 1;
        return id_array(p, lim, "prompt", &r->prompts[0].ids, &r->prompts[0].num_ids, e);
    }
    if (cnt > lim->max_prompts)
        return srv_err_set(e, SRV_EINVAL, "prompt", "'prompt' has %d prompts; at most %d are allowed in one request",
                           cnt, lim->max_prompts);
    r->prompts = calloc((size_t)cnt, sizeof *r->prompts);
    if (!r->prompts) return srv_err_set(e, SRV_ENOMEM, "prompt", "out of memory");
    bool strings = cJSON_IsString(first);
    for (const cJSON *it = p->child; it; it = it->next) {
        if (strings) {
            if (!cJSON_IsString(it))
                return srv_err_set(e, SRV_EINVAL, "prompt", "'prompt' mixes strings and other types");
            int rc = add_text_prompt(r, it, e);
            if (rc) return rc;
        } else {
            if (!cJSON_IsArray(it))
                return srv_err_set(e, SRV_EINVAL, "prompt",
                                   "'prompt' must be a string, an array of strings, an array of token "
                                   "ids or an array of token id arrays");
            if (cJSON_GetArraySize(it) == 0)
                return srv_err_set(e, SRV_EINVAL, "prompt", "'prompt' contains an empty token list");
            struct oai_prompt *q = &r->prompts[r->num_prompts];
            int rc = id_array(it, lim, "prompt", &q->ids, &q->num_ids, e);
            r->num_prompts++;
            if (rc) return rc;
        }
    }
    return 0;
}

/* --- messages (chat) ----------------------------------------------------- */

/* content: string | [{"type":"text","text":...}, ...] -> one string (parts
 * joined with "\n", as vLLM does for string-content templates). NULL for null. */
static int message_content(const cJSON *m, int idx, char **out, struct srv_error *e)
{
    char param[96];
    snprintf(param, sizeof param, "messages[%d].content", idx);
    const cJSON *c = field(m, "content");
    *out = NULL;
    if (!c) return 0;
    if (cJSON_IsString(c)) {
        *out = strdup(c->valuestring);
        return *out ? 1 : srv_err_set(e, SRV_ENOMEM, param, "out of memory");
    }
    if (!cJSON_IsArray(c))
        return srv_err_set(e, SRV_EINVAL, param, "'%s' must be a string or an array of content parts", param);
    size_t total = 1;
    int j = 0;
    for (const cJSON *it = c->child; it; it = it->next, j++) {
        const cJSON *type = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "type") : NULL;
        const cJSON *text = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "text") : NULL;
        if (!cJSON_IsString(type))
            return srv_err_set(e, SRV_EINVAL, param, "'%s[%d]' must be an object with a string 'type'", param, j);
        if (strcmp(type->valuestring, "text") && strcmp(type->valuestring, "input_text") &&
            strcmp(type->valuestring, "refusal"))
            return srv_err_set(e, SRV_ENOTSUP, param,
                               "'%s[%d].type' \"%s\" is not supported: this model takes text only",
                               param, j, type->valuestring);
        if (!strcmp(type->valuestring, "refusal")) text = cJSON_GetObjectItemCaseSensitive(it, "refusal");
        if (!cJSON_IsString(text))
            return srv_err_set(e, SRV_EINVAL, param, "'%s[%d].text' must be a string", param, j);
        total += strlen(text->valuestring) + 1;
    }
    char *s = malloc(total);
    if (!s) return srv_err_set(e, SRV_ENOMEM, param, "out of memory");
    size_t o = 0;
    for (const cJSON *it = c->child; it; it = it->next) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(it, "text");
        if (!cJSON_IsString(text)) text = cJSON_GetObjectItemCaseSensitive(it, "refusal");
        size_t l = strlen(text->valuestring);
        if (o) s[o++] = '\n';
        memcpy(s + o, text->valuestring, l);
        o += l;
    }
    s[o] = 0;
    *out = s;
    return 1;
}

/* tool_calls: [{"id","type":"function","function":{"name","arguments"}}]; the
 * arguments JSON string becomes an object for the template (templates iterate
 * arguments.items(), vLLM does the same conversion). */
static int message_tool_calls(const cJSON *m, int idx, cJSON *dst, struct srv_error *e)
{
    char param[96];
    snprintf(param, sizeof param, "messages[%d].tool_calls", idx);
    const cJSON *tc = field(m, "tool_calls");
    if (!tc) return 0;
    if (!cJSON_IsArray(tc)) return srv_err_set(e, SRV_EINVAL, param, "'%s' must be an array", param);
    cJSON *arr = cJSON_AddArrayToObject(dst, "tool_calls");
    if (!arr) return srv_err_set(e, SRV_ENOMEM, param, "out of memory");
    int j = 0;
    for (const cJSON *it = tc->child; it; it = it->next, j++) {
        const cJSON *fn = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "function") : NULL;
        const cJSON *name = cJSON_IsObject(fn) ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
        const cJSON *args = cJSON_IsObject(fn) ? cJSON_GetObjectItemCaseSensitive(fn, "arguments") : NULL;
        const cJSON *id = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "id") : NULL;
        if (!cJSON_IsString(name))
            return srv_err_set(e, SRV_EINVAL, param, "'%s[%d].function.name' must be a string", param, j);
        if (id && !cJSON_IsNull(id) && !cJSON_IsString(id))
            return srv_err_set(e, SRV_EINVAL, param, "'%s[%d].id' must be a string", param, j);
        cJSON *parsed = NULL;
        if (cJSON_IsString(args)) {
            parsed = cJSON_Parse(args->valuestring);
            if (!cJSON_IsObject(parsed)) {
                cJSON_Delete(parsed);
                return srv_err_set(e, SRV_EINVAL, param,
                                   "'%s[%d].function.arguments' must be a JSON object encoded as a string",
                                   param, j);
            }
        } else if (cJSON_IsObject(args)) {
            parsed = cJSON_Duplicate(args, 1);
        } else if (!args || cJSON_IsNull(args)) {
            parsed = cJSON_CreateObject();
        } else {
            return srv_err_set(e, SRV_EINVAL, param, "'%s[%d].function.arguments' must be a string", param, j);
        }
        cJSON *call = cJSON_CreateObject(), *f = cJSON_CreateObject();
        if (cJSON_IsString(id)) cJSON_AddStringToObject(call, "id", id->valuestring);
        cJSON_AddStringToObject(call, "type", "function");
        cJSON_AddStringToObject(f, "name", name->valuestring);
        cJSON_AddItemToObject(f, "arguments", parsed);
        cJSON_AddItemToObject(call, "function", f);
        cJSON_AddItemToArray(arr, call);
    }
    return 1;
}

static int parse_messages(const cJSON *root, struct oai_request *r, struct srv_error *e)
{
    const cJSON *ms = field(root, "messages");
    if (!ms) return srv_err_set(e, SRV_EINVAL, "messages", "'messages' is required");
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) == 0)
        return srv_err_set(e, SRV_EINVAL, "messages", "'messages' must be a non-empty array");
    cJSON *out = cJSON_CreateArray();
    int rc = 0, i = 0;
    for (const cJSON *m = ms->child; m; m = m->next, i++) {
        char param[64];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) { rc = srv_err_set(e, SRV_EINVAL, param, "'%s' must be an object", param); goto out; }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!cJSON_IsString(role) || !role->valuestring[0] || strlen(role->valuestring) > 64) {
            rc = srv_err_set(e, SRV_EINVAL, param, "'%s' must be a non-empty string", param);
            goto out;
        }
        cJSON *dm = cJSON_CreateObject();
        cJSON_AddItemToArray(out, dm);
        cJSON_AddStringToObject(dm, "role", role->valuestring);
        char *content = NULL;
        if ((rc = message_content(m, i, &content, e)) < 0) goto out;
        if ((rc = message_tool_calls(m, i, dm, e)) < 0) { free(content); goto out; }
        bool has_calls = rc == 1;
        rc = 0;
        if (!content && !(has_calls || !strcmp(role->valuestring, "assistant"))) {
            snprintf(param, sizeof param, "messages[%d].content", i);
            rc = srv_err_set(e, SRV_EINVAL, param, "'%s' is required for role \"%s\"", param, role->valuestring);
            goto out;
        }
        if (content) cJSON_AddStringToObject(dm, "content", content);
        else cJSON_AddNullToObject(dm, "content");
        free(content);
        static const char *const str_fields[] = {"name", "tool_call_id", "reasoning_content"};
        for (size_t k = 0; k < sizeof str_fields / sizeof *str_fields; k++) {
            const cJSON *v = field(m, str_fields[k]);
            if (!v) continue;
            if (!cJSON_IsString(v)) {
                snprintf(param, sizeof param, "messages[%d].%s", i, str_fields[k]);
                rc = srv_err_set(e, SRV_EINVAL, param, "'%s' must be a string", param);
                goto out;
            }
            cJSON_AddStringToObject(dm, str_fields[k], v->valuestring);
        }
    }
    r->num_messages = i;
    r->messages_json = cJSON_PrintUnformatted(out);
    if (!r->messages_json) rc = srv_err_set(e, SRV_ENOMEM, "messages", "out of memory");
out:
    cJSON_Delete(out);
    return rc;
}

/* --- shared sampling fields ---------------------------------------------- */

static int parse_stop(const cJSON *root, const struct oai_limits *lim, struct oai_request *r,
                      struct srv_error *e)
{
    const cJSON *s = field(root, "stop");
    if (!s) return 0;
    int cnt = cJSON_IsString(s) ? 1 : cJSON_IsArray(s) ? cJSON_GetArraySize(s) : -1;
    if (cnt < 0) return srv_err_set(e, SRV_EINVAL, "stop", "'stop' must be a string or an array of strings");
    if (cnt > lim->max_stop)
        return srv_err_set(e, SRV_EINVAL, "stop", "'stop' has %d entries; at most %d are allowed", cnt, lim->max_stop);
    if (cnt == 0) return 0;
    r->stop = calloc((size_t)cnt, sizeof *r->stop);
    if (!r->stop) return srv_err_set(e, SRV_ENOMEM, "stop", "out of memory");
    const cJSON *it = cJSON_IsString(s) ? s : s->child;
    for (int i = 0; i < cnt; i++, it = it->next) {
        if (!cJSON_IsString(it)) return srv_err_set(e, SRV_EINVAL, "stop", "'stop' must contain only strings");
        if (!it->valuestring[0]) {
            if (cJSON_IsString(s)) return 0; /* "" = no stop string (OpenAI accepts it) */
            return srv_err_set(e, SRV_EINVAL, "stop", "'stop' strings must not be empty");
        }
        r->stop[r->num_stop] = strdup(it->valuestring);
        if (!r->stop[r->num_stop]) return srv_err_set(e, SRV_ENOMEM, "stop", "out of memory");
        r->num_stop++;
    }
    return 0;
}

static int parse_logit_bias(const cJSON *root, const struct oai_limits *lim, struct oai_request *r,
                            struct srv_error *e)
{
    const cJSON *b = field(root, "logit_bias");
    if (!b) return 0;
    if (!cJSON_IsObject(b))
        return srv_err_set(e, SRV_EINVAL, "logit_bias", "'logit_bias' must be an object of token id -> bias");
    int cnt = cJSON_GetArraySize(b);
    if (cnt > 1024) return srv_err_set(e, SRV_EINVAL, "logit_bias", "'logit_bias' has more than 1024 entries");
    if (cnt == 0) return 0;
    r->logit_bias = calloc((size_t)cnt, sizeof *r->logit_bias);
    if (!r->logit_bias) return srv_err_set(e, SRV_ENOMEM, "logit_bias", "out of memory");
    for (const cJSON *it = b->child; it; it = it->next) {
        char *end;
        long id = strtol(it->string, &end, 10);
        if (!it->string[0] || *end || id < 0 || id > INT32_MAX || (lim->vocab_size > 0 && id >= lim->vocab_size))
            return srv_err_set(e, SRV_EINVAL, "logit_bias", "'logit_bias' key \"%s\" is not a valid token id", it->string);
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < -100 || it->valuedouble > 100)
            return srv_err_set(e, SRV_EINVAL, "logit_bias", "'logit_bias' values must be numbers in [-100, 100]");
        r->logit_bias[r->num_logit_bias].token = (int32_t)id;
        r->logit_bias[r->num_logit_bias].bias = (float)it->valuedouble;
        r->num_logit_bias++;
    }
    return 0;
}

static int parse_common(const cJSON *root, const struct oai_limits *lim, struct oai_request *r,
                        struct srv_error *e)
{
    int rc;
    int64_t i64;
    double d;
    if ((rc = get_str(root, "model", &r->model, e)) < 0) return rc;
    if ((rc = get_int(root, "max_tokens", 0, INT32_MAX, &i64, e)) < 0) return rc;
    if (rc) r->max_tokens = (int)i64;
    if (r->kind == OAI_CHAT) {
        if ((rc = get_int(root, "max_completion_tokens", 0, INT32_MAX, &i64, e)) < 0) return rc;
        if (rc) r->max_tokens = (int)i64;
    }
    if ((rc = get_num(root, "temperature", 0, 2, false, &r->temperature, e)) < 0) return rc;
    r->has_temperature = rc;
    if ((rc = get_num(root, "top_p", 0, 1, true, &r->top_p, e)) < 0) return rc;
    r->has_top_p = rc;
    if ((rc = get_int(root, "top_k", -1, INT32_MAX, &i64, e)) < 0) return rc;
    if (rc) { r->top_k = (int)i64; r->has_top_k = true; }
    if ((rc = get_num(root, "min_p", 0, 1, false, &r->min_p, e)) < 0) return rc;
    if ((rc = get_num(root, "presence_penalty", -2, 2, false, &r->presence_penalty, e)) < 0) return rc;
    if ((rc = get_num(root, "frequency_penalty", -2, 2, false, &r->frequency_penalty, e)) < 0) return rc;
    if ((rc = get_num(root, "repetition_penalty", 0, 2, true, &r->repetition_penalty, e)) < 0) return rc;
    r->has_repetition_penalty = rc;
    if ((rc = get_int(root, "n", 1, lim->max_n, &i64, e)) < 0) return rc;
    if (rc) r->n = (int)i64;
    if ((rc = get_int(root, "best_of", 1, lim->max_n, &i64, e)) < 0) return rc;
    if (rc && i64 != r->n)
        return srv_err_set(e, SRV_ENOTSUP, "best_of", "'best_of' other than n is not supported");
    if ((rc = get_bool(root, "stream", &r->stream, e)) < 0) return rc;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) return srv_err_set(e, SRV_EINVAL, "stream_options", "'stream_options' must be an object");
        if (!r->stream)
            return srv_err_set(e, SRV_EINVAL, "stream_options", "'stream_options' is only allowed when 'stream' is true");
        struct srv_error sub;
        if ((rc = get_bool(so, "include_usage", &r->include_usage, &sub)) < 0)
            return srv_err_set(e, rc, "stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
        if ((rc = get_bool(so, "continuous_usage_stats", &r->continuous_usage_stats, &sub)) < 0)
            return srv_err_set(e, rc, "stream_options.continuous_usage_stats",
                               "'stream_options.continuous_usage_stats' must be a boolean");
    }
    if ((rc = parse_stop(root, lim, r, e)) < 0) return rc;
    const cJSON *sti = field(root, "stop_token_ids");
    if (sti) {
        if (!cJSON_IsArray(sti))
            return srv_err_set(e, SRV_EINVAL, "stop_token_ids", "'stop_token_ids' must be an array of token ids");
        if ((rc = id_array(sti, lim, "stop_token_ids", &r->stop_token_ids, &r->num_stop_token_ids, e)) < 0) return rc;
    }
    if ((rc = get_int(root, "seed", -9.2e18, 9.2e18, &i64, e)) < 0) return rc;
    if (rc) { r->has_seed = true; r->seed = (uint64_t)i64; }
    if ((rc = parse_logit_bias(root, lim, r, e)) < 0) return rc;
    if ((rc = get_str(root, "user", &r->user, e)) < 0) return rc;
    if ((rc = get_int(root, "min_tokens", 0, INT32_MAX, &i64, e)) < 0) return rc;
    if (rc) r->min_tokens = (int)i64;
    if (r->max_tokens >= 0 && r->min_tokens > r->max_tokens)
        return srv_err_set(e, SRV_EINVAL, "min_tokens", "'min_tokens' (%d) must not exceed 'max_tokens' (%d)",
                           r->min_tokens, r->max_tokens);
    if ((rc = get_bool(root, "ignore_eos", &r->ignore_eos, e)) < 0) return rc;
    if ((rc = get_bool(root, "skip_special_tokens", &r->skip_special_tokens, e)) < 0) return rc;
    if ((rc = get_bool(root, "include_stop_str_in_output", &r->include_stop_str_in_output, e)) < 0) return rc;
    if ((rc = get_bool(root, "add_special_tokens", &r->add_special_tokens, e)) < 0) return rc;
    if ((rc = get_int(root, "prompt_logprobs", 0, lim->max_logprobs, &i64, e)) < 0) return rc;
    if (rc) r->prompt_logprobs = (int)i64;
    (void)d;
    return 0;
}

/* --- entry points -------------------------------------------------------- */

void oai_limits_init(struct oai_limits *l)
{
    l->max_logprobs = SAMP_MAX_LOGPROBS;
    l->max_n = 128;
    l->vocab_size = 0;
    l->max_stop = 16;
    l->max_prompts = 1024;
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
 * JSON text must be UTF-8 (RFC 8259); a body that is not is rejected here
 * rather than silently turned into U+FFFD by the tokenizer. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        int len;
        unsigned min;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
        else return false;
        if (i + (size_t)len > n) return false;
        unsigned cp = c & (0xFFu >> (len + 1));
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += (size_t)len;
    }
    return true;
}

static cJSON *parse_root(const char *body, size_t len, struct srv_error *e)
{
    if (!utf8_valid((const unsigned char *)body, len)) {
        srv_err_set(e, SRV_EJSON, NULL, "We could not parse the JSON body of your request: it is not valid UTF-8");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    /* nothing but whitespace may follow the value */
    for (const char *p = end; root && p && p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        srv_err_set(e, SRV_EJSON, NULL, "We could not parse the JSON body of your request: invalid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        srv_err_set(e, SRV_EJSON, NULL, "The request body must be a JSON object");
        return NULL;
    }
    return root;
}

static void request_defaults(struct oai_request *r, enum oai_kind kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->max_tokens = -1;
    r->temperature = 1.0;
    r->top_p = 1.0;
    r->top_k = -1;
    r->repetition_penalty = 1.0;
    r->n = 1;
    r->logprobs = -1;
    r->prompt_logprobs = -1;
    r->skip_special_tokens = true;
    r->add_special_tokens = kind == OAI_COMPLETION;
    r->add_generation_prompt = true;
}

int oai_parse(enum oai_kind kind, const char *body, size_t len, const struct oai_limits *lim,
              struct oai_request *out, struct srv_error *err)
{
    request_defaults(out, kind);
    cJSON *root = parse_root(body, len, err);
    if (!root) return err->code;
    int rc;
    int64_t i64;
    if ((rc = parse_common(root, lim, out, err)) < 0) goto fail;
    if (kind == OAI_COMPLETION) {
        if ((rc = parse_prompt(root, lim, out, err)) < 0) goto fail;
        if ((rc = get_bool(root, "echo", &out->echo, err)) < 0) goto fail;
        if ((rc = get_int(root, "logprobs", 0, lim->max_logprobs, &i64, err)) < 0) goto fail;
        if (rc) out->logprobs = (int)i64;
        const cJSON *sfx = field(root, "suffix");
        if (sfx && (!cJSON_IsString(sfx) || sfx->valuestring[0])) {
            rc = srv_err_set(err, SRV_ENOTSUP, "suffix", "'suffix' is not supported");
            goto fail;
        }
        if (out->max_tokens < 0) out->max_tokens = 16; /* OpenAI's completions default */
    } else {
        if ((rc = parse_messages(root, out, err)) < 0) goto fail;
        bool lp = false;
        if ((rc = get_bool(root, "logprobs", &lp, err)) < 0) goto fail;
        if ((rc = get_int(root, "top_logprobs", 0, lim->max_logprobs, &i64, err)) < 0) goto fail;
        if (rc && !lp) {
            rc = srv_err_set(err, SRV_EINVAL, "top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
            goto fail;
        }
        if (lp) out->logprobs = rc ? (int)i64 : 0;
        const cJSON *tools = field(root, "tools");
        if (tools) {
            if (!cJSON_IsArray(tools)) {
                rc = srv_err_set(err, SRV_EINVAL, "tools", "'tools' must be an array");
                goto fail;
            }
            out->tools_json = cJSON_PrintUnformatted(tools);
        }
        const cJSON *rf = field(root, "response_format");
        if (rf) {
            const cJSON *t = cJSON_IsObject(rf) ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
            if (!cJSON_IsString(t)) {
                rc = srv_err_set(err, SRV_EINVAL, "response_format", "'response_format' must be an object with a 'type'");
                goto fail;
            }
            if (strcmp(t->valuestring, "text")) {
                rc = srv_err_set(err, SRV_ENOTSUP, "response_format",
                                 "'response_format' type \"%s\" is not supported (only \"text\")", t->valuestring);
                goto fail;
            }
        }
        if ((rc = get_bool(root, "add_generation_prompt", &out->add_generation_prompt, err)) < 0) goto fail;
        if ((rc = get_bool(root, "continue_final_message", &out->continue_final_message, err)) < 0) goto fail;
        if (out->continue_final_message && out->add_generation_prompt && field(root, "add_generation_prompt")) {
            rc = srv_err_set(err, SRV_EINVAL, "continue_final_message",
                             "'continue_final_message' and 'add_generation_prompt' cannot both be true");
            goto fail;
        }
        if (out->continue_final_message) out->add_generation_prompt = false;
        const cJSON *kw = field(root, "chat_template_kwargs");
        if (kw) {
            if (!cJSON_IsObject(kw)) {
                rc = srv_err_set(err, SRV_EINVAL, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
                goto fail;
            }
            out->chat_template_kwargs_json = cJSON_PrintUnformatted(kw);
        }
    }
    cJSON_Delete(root);
    return 0;
fail:
    cJSON_Delete(root);
    oai_request_fini(out);
    request_defaults(out, kind);
    return rc;
}

void oai_request_fini(struct oai_request *r)
{
    for (int i = 0; i < r->num_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    /* a prompt that failed mid-parse may sit one past num_prompts */
    free(r->prompts);
    for (int i = 0; i < r->num_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->model);
    free(r->messages_json);
    free(r->tools_json);
    free(r->chat_template_kwargs_json);
    free(r->stop_token_ids);
    free(r->logit_bias);
    free(r->user);
    memset(r, 0, sizeof *r);
}

/* --- /tokenize and /detokenize ------------------------------------------ */

static void tok_defaults(struct oai_tok_request *r)
{
    memset(r, 0, sizeof *r);
    r->add_generation_prompt = true;
}

int oai_parse_tokenize(const char *body, size_t len, const struct oai_limits *lim,
                       struct oai_tok_request *out, struct srv_error *err)
{
    tok_defaults(out);
    cJSON *root = parse_root(body, len, err);
    if (!root) return err->code;
    int rc;
    struct oai_request tmp;
    request_defaults(&tmp, OAI_CHAT);
    if ((rc = get_str(root, "model", &out->model, err)) < 0) goto fail;
    if (field(root, "messages")) {
        if ((rc = parse_messages(root, &tmp, err)) < 0) goto fail;
        out->messages_json = tmp.messages_json;
        tmp.messages_json = NULL;
        const cJSON *tools = field(root, "tools");
        if (cJSON_IsArray(tools)) out->tools_json = cJSON_PrintUnformatted(tools);
        out->add_special_tokens = false;
        if ((rc = get_bool(root, "add_generation_prompt", &out->add_generation_prompt, err)) < 0) goto fail;
        if ((rc = get_bool(root, "continue_final_message", &out->continue_final_message, err)) < 0) goto fail;
        if (out->continue_final_message) out->add_generation_prompt = false;
    } else {
        if ((rc = get_str(root, "prompt", &out->prompt, err)) < 0) goto fail;
        if (!rc) {
            rc = srv_err_set(err, SRV_EINVAL, "prompt", "'prompt' (a string) or 'messages' is required");
            goto fail;
        }
        out->prompt_len = strlen(out->prompt);
        out->add_special_tokens = true;
    }
    if ((rc = get_bool(root, "add_special_tokens", &out->add_special_tokens, err)) < 0) goto fail;
    (void)lim;
    oai_request_fini(&tmp);
    cJSON_Delete(root);
    return 0;
fail:
    oai_request_fini(&tmp);
    cJSON_Delete(root);
    oai_tok_request_fini(out);
    return rc;
}

int oai_parse_detokenize(const char *body, size_t len, const struct oai_limits *lim,
                         struct oai_tok_request *out, struct srv_error *err)
{
    tok_defaults(out);
    cJSON *root = parse_root(body, len, err);
    if (!root) return err->code;
    int rc;
    if ((rc = get_str(root, "model", &out->model, err)) < 0) goto fail;
    const cJSON *t = field(root, "tokens");
    if (!cJSON_IsArray(t)) {
        rc = srv_err_set(err, SRV_EINVAL, "tokens", "'tokens' must be an array of token ids");
        goto fail;
    }
    if ((rc = id_array(t, lim, "tokens", &out->tokens, &out->num_tokens, err)) < 0) goto fail;
    cJSON_Delete(root);
    return 0;
fail:
    cJSON_Delete(root);
    oai_tok_request_fini(out);
    return rc;
}

void oai_tok_request_fini(struct oai_tok_request *r)
{
    free(r->model);
    free(r->prompt);
    free(r->messages_json);
    free(r->tools_json);
    free(r->tokens);
    memset(r, 0, sizeof *r);
}
