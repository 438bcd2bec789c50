/* server/chat.c: chat messages -> prompt text with the model's template (see
 * chat.h). HTTP threads (render) and the main thread (load). */
#include "server/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/log.h"

#if __has_include("engine/chat_template.h")
#include "engine/chat_template.h"
#define DS_HAVE_TMPL 1
#endif

#ifndef DS_HAVE_TMPL
int chat_load(struct tmpl **out, const char *model_dir, const char *override_path, char *err, size_t errlen)
{
    *out = NULL;
    LOG_WARN("this build has no chat template engine: /v1/chat/completions answers 400");
    return 0;
}

void chat_free(struct tmpl *t) { (void)t; }

int chat_render(const struct srv_app *app, const char *messages_json, const char *tools_json,
                bool add_generation_prompt, bool continue_final_message, const char *kwargs_json,
                char **out, struct srv_error *err)
{
    *out = NULL;
    return srv_err_set(err, SRV_ENOTSUP, "messages", "This server has no chat template: use /v1/completions");
}
#endif

#ifdef DS_HAVE_TMPL
/* Added by the chat-template owner so the tree links once
 * engine/chat_template.h exists; the server owner may reshape it. */
int chat_load(struct tmpl **out, const char *model_dir, const char *override_path, char *err, size_t errlen)
{
    *out = NULL;
    if (override_path) {
        FILE *f = fopen(override_path, "rb");
        if (!f) {
            snprintf(err, errlen, "%s: cannot open chat template", override_path);
            return -1;
        }
        size_t cap = 1 << 16, n = 0;
        char *src = malloc(cap + 1);
        size_t r;
        while (src && (r = fread(src + n, 1, cap - n, f)) > 0) {
            n += r;
            if (n == cap) {
                char *ns = realloc(src, cap * 2 + 1);
                if (!ns) {
                    free(src);
                    src = NULL;
                    break;
                }
                src = ns, cap *= 2;
            }
        }
        fclose(f);
        if (!src) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        src[n] = 0;
        char e[400];
        *out = tmpl_create(src, e, sizeof e);
        free(src);
        if (!*out) {
            snprintf(err, errlen, "%s: %s", override_path, e);
            return -1;
        }
        return 0;
    }
    *out = tmpl_load_for_model(model_dir, err, errlen, NULL);
    return *out ? 0 : -1;
}

void chat_free(struct tmpl *t) { tmpl_destroy(t); }

/* transformers' continue_final_message: cut the rendering right after the
 * final message's (stripped) content, dropping the end-of-turn tokens. */
static int cut_after_final(char *text, const cJSON *messages)
{
    const cJSON *last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
    const cJSON *c = last ? cJSON_GetObjectItemCaseSensitive(last, "content") : NULL;
    if (!cJSON_IsString(c)) return -1;
    const char *s = c->valuestring, *e = s + strlen(s);
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r')) e--;
    size_t n = (size_t)(e - s);
    if (n == 0) return -1;
    char *hit = NULL;
    for (char *p = text; *p; p++)
        if (!strncmp(p, s, n)) hit = p;
    if (!hit) return -1;
    hit[n] = 0;
    return 0;
}

int chat_render(const struct srv_app *app, const char *messages_json, const char *tools_json,
                bool add_generation_prompt, bool continue_final_message, const char *kwargs_json,
                char **out, struct srv_error *err)
{
    *out = NULL;
    if (!app->tmpl) return srv_err_set(err, SRV_ENOTSUP, "messages", "This server has no chat template: use /v1/completions");
    cJSON *ctx = kwargs_json ? cJSON_Parse(kwargs_json) : cJSON_CreateObject();
    cJSON *msgs = cJSON_Parse(messages_json ? messages_json : "[]");
    cJSON *tools = tools_json ? cJSON_Parse(tools_json) : cJSON_CreateNull();
    if (!ctx || !msgs || !tools || !cJSON_IsObject(ctx)) {
        cJSON_Delete(ctx), cJSON_Delete(msgs), cJSON_Delete(tools);
        return srv_err_set(err, SRV_ENOMEM, NULL, "out of memory");
    }
    /* our variables win over same-named chat_template_kwargs */
    const char *ours[] = {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) cJSON_DeleteItemFromObjectCaseSensitive(ctx, ours[i]);
    cJSON_AddItemToObject(ctx, "messages", msgs);
    cJSON_AddItemToObject(ctx, "tools", tools);
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", add_generation_prompt && !continue_final_message);
    if (app->bos_token[0]) cJSON_AddStringToObject(ctx, "bos_token", app->bos_token);
    if (app->eos_token[0]) cJSON_AddStringToObject(ctx, "eos_token", app->eos_token);
    char e[512];
    int rc = tmpl_render(app->tmpl, ctx, out, e, sizeof e);
    if (rc == TMPL_OK && continue_final_message && cut_after_final(*out, msgs)) {
        free(*out);
        *out = NULL;
        cJSON_Delete(ctx);
        return srv_err_set(err, SRV_EINVAL, "messages",
                           "continue_final_message: the final message's content was not found in the rendered template");
    }
    cJSON_Delete(ctx);
    if (rc == TMPL_ENOMEM) return srv_err_set(err, SRV_ENOMEM, NULL, "out of memory");
    if (rc != TMPL_OK) return srv_err_set(err, SRV_EINVAL, "messages", "chat template: %s", e);
    return 0;
}
#endif

