/* engine/chat_template.c: public API of the chat-template interpreter:
 * create/destroy, render (the longjmp boundary for render errors) and loading
 * a model directory's template(s) with the ChatML fallback.
 *
 * Threads: tmpl_create / tmpl_load_for_model / tmpl_destroy on the startup
 * thread; tmpl_render on any HTTP thread, concurrently (the template is only
 * read; each render has its own arena).
 */
#include "engine/chat_template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "engine/tmpl_internal.h"

/* A render may not allocate more than this (protects the server from
 * templates that loop over huge request data). */
#define TMPL_RENDER_MEM_LIMIT ((size_t)512 << 20)

struct tmpl {
    struct tmpl_arena arena; /* owns source copy, tokens, AST */
    struct tnlist prog;
    char *name;             /* variant name (owned, in arena) */
    char *bos, *eos;        /* defaults from tokenizer_config.json (owned, NULL if none) */
    struct tmpl **variants; /* owned siblings (only on the returned/default one) */
    size_t nvariants;
};

static const char CHATML[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const char *tmpl_chatml_source(void) { return CHATML; }

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (errlen) snprintf(err, errlen, "%s", msg);
}

struct tmpl *tmpl_create(const char *source, char *err, size_t errlen)
{
    char e[512] = "";
    struct tmpl *t = calloc(1, sizeof(*t));
    if (!t) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    size_t len = strlen(source);
    struct ttok *toks;
    size_t ntok;
    if (tmpl_lex(&t->arena, source, len, &toks, &ntok, e, sizeof(e))) goto fail;
    if (tmpl_parse(&t->arena, toks, ntok, &t->prog, e, sizeof(e))) goto fail;
    t->name = ta_alloc(&t->arena, 8);
    if (!t->name) goto fail;
    memcpy(t->name, "default", 8);
    return t;
fail:
    set_err(err, errlen, e[0] ? e : "out of memory");
    ta_free_all(&t->arena);
    free(t);
    return NULL;
}

void tmpl_destroy(struct tmpl *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nvariants; i++) tmpl_destroy(t->variants[i]);
    free(t->variants);
    free(t->bos);
    free(t->eos);
    ta_free_all(&t->arena);
    free(t);
}

const struct tmpl *tmpl_variant(const struct tmpl *t, const char *name)
{
    if (!t || !name) return NULL;
    if (!strcmp(t->name, name)) return t;
    for (size_t i = 0; i < t->nvariants; i++)
        if (!strcmp(t->variants[i]->name, name)) return t->variants[i];
    return !strcmp(name, "default") ? t : NULL;
}

size_t tmpl_variant_names(const struct tmpl *t, const char **names, size_t max)
{
    size_t n = 0;
    if (n < max) names[n] = t->name;
    n++;
    for (size_t i = 0; i < t->nvariants; i++, n++)
        if (n < max) names[n] = t->variants[i]->name;
    return n;
}

/* ---- render ------------------------------------------------------------------ */

static void render_body(struct tmpl_rt *rt, const struct tmpl *t, const cJSON *ctx, struct tbuf *out)
{
    struct tscope *root = tmpl_scope_new(rt, NULL);
    tmpl_setup_globals(rt, root);
    int have_bos = 0, have_eos = 0;
    if (ctx && !cJSON_IsObject(ctx)) tmpl_fail(rt, "chat template context must be a JSON object");
    for (const cJSON *c = ctx ? ctx->child : NULL; c; c = c->next) {
        if (!c->string) continue;
        struct tstr k = tstr_lit(c->string);
        for (size_t i = 0; i < root->n; i++)
            if (tstr_eqs(root->vars[i].name, k)) tmpl_fail(rt, "Variable already declared: %s", c->string);
        tmpl_scope_set(rt, root, k, tv_from_json(rt, c, 0));
        if (!strcmp(c->string, "bos_token")) have_bos = 1;
        if (!strcmp(c->string, "eos_token")) have_eos = 1;
    }
    if (!have_bos && t->bos) tmpl_scope_set(rt, root, tstr_lit("bos_token"), tv_str(tstr_lit(t->bos)));
    if (!have_eos && t->eos) tmpl_scope_set(rt, root, tstr_lit("eos_token"), tv_str(tstr_lit(t->eos)));
    if (tmpl_render_block(rt, &t->prog, root, out)) {
        rt->at = NULL;
        tmpl_fail(rt, "break/continue outside of a loop");
    }
}

/* The longjmp target of a render: nothing here is used after the jump. */
static int render_guarded(struct tmpl_rt *rt, const struct tmpl *t, const cJSON *ctx, struct tbuf *buf)
{
    jmp_buf jb;
    rt->fail = &jb;
    if (setjmp(jb)) return -1;
    render_body(rt, t, ctx, buf);
    return 0;
}

int tmpl_render(const struct tmpl *t, const cJSON *context, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!t) {
        set_err(err, errlen, "no chat template");
        return TMPL_ERENDER;
    }
    const cJSON *tools = context ? cJSON_GetObjectItemCaseSensitive(context, "tools") : NULL;
    if (tools && !cJSON_IsNull(tools)) {
        const struct tmpl *tu = tmpl_variant(t, "tool_use");
        if (tu) t = tu;
    }
    char e[512] = "";
    struct tmpl_rt rt = {0};
    struct tbuf buf = {0};
    rt.arena.limit = TMPL_RENDER_MEM_LIMIT;
    rt.arena.cached = 1;
    rt.err = e;
    rt.errlen = sizeof(e);
    if (render_guarded(&rt, t, context, &buf)) {
        ta_free_all(&rt.arena);
        set_err(err, errlen, e);
        return TMPL_ERENDER;
    }
    char *s = malloc(buf.n + 1);
    if (!s) {
        ta_free_all(&rt.arena);
        set_err(err, errlen, "out of memory");
        return TMPL_ENOMEM;
    }
    if (buf.n) memcpy(s, buf.p, buf.n);
    s[buf.n] = 0;
    ta_free_all(&rt.arena);
    *out = s;
    return TMPL_OK;
}

/* ---- loading a model directory ------------------------------------------------ */

static char *read_file(const char *path, int *missing)
{
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *missing = errno == ENOENT;
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t nc = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, nc + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb, cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

static char *token_string(const cJSON *j)
{
    if (cJSON_IsString(j)) return strdup(j->valuestring);
    if (cJSON_IsObject(j)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
        if (cJSON_IsString(c)) return strdup(c->valuestring);
    }
    return NULL;
}

static struct tmpl *create_named(const char *src, const char *name, const char *file, char *err, size_t errlen)
{
    char e[512];
    struct tmpl *t = tmpl_create(src, e, sizeof(e));
    if (!t) {
        if (errlen) snprintf(err, errlen, "%s: chat template '%s': %s", file, name, e);
        return NULL;
    }
    size_t n = strlen(name) + 1;
    char *nm = ta_alloc(&t->arena, n);
    if (!nm) {
        tmpl_destroy(t);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(nm, name, n);
    t->name = nm;
    return t;
}

/* tokenizer_config.json "chat_template" as a list of {name, template}. */
static struct tmpl *load_list(const cJSON *list, const char *file, char *err, size_t errlen)
{
    size_t n = (size_t)cJSON_GetArraySize(list), k = 0;
    struct tmpl **all = calloc(n ? n : 1, sizeof(*all));
    struct tmpl *main = NULL;
    if (!all) goto oom;
    for (const cJSON *c = list->child; c; c = c->next) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(c, "template");
        if (!cJSON_IsString(nm) || !cJSON_IsString(src)) {
            if (errlen) snprintf(err, errlen, "%s: chat_template list entries need string \"name\" and \"template\"", file);
            goto fail;
        }
        all[k] = create_named(src->valuestring, nm->valuestring, file, err, errlen);
        if (!all[k]) goto fail;
        k++;
    }
    if (k == 0) {
        if (errlen) snprintf(err, errlen, "%s: chat_template list is empty", file);
        goto fail;
    }
    size_t mi = 0;
    for (size_t i = 0; i < k; i++)
        if (!strcmp(all[i]->name, "default")) mi = i;
    main = all[mi];
    main->variants = calloc(k, sizeof(*main->variants));
    if (!main->variants && k > 1) goto oom;
    for (size_t i = 0; i < k; i++)
        if (i != mi) main->variants[main->nvariants++] = all[i];
    free(all);
    return main;
oom:
    set_err(err, errlen, "out of memory");
fail:
    for (size_t i = 0; all && i < k; i++) tmpl_destroy(all[i]);
    free(all);
    return NULL;
}

struct tmpl *tmpl_load_for_model(const char *model_dir, char *err, size_t errlen, int *used_fallback)
{
    char path[4096], cfgpath[4096];
    int missing;
    struct tmpl *t = NULL;
    char *bos = NULL, *eos = NULL;
    cJSON *cfg = NULL;
    if (used_fallback) *used_fallback = 0;
    snprintf(cfgpath, sizeof(cfgpath), "%s/tokenizer_config.json", model_dir);
    char *cfgtext = read_file(cfgpath, &missing);
    if (!cfgtext && !missing) {
        if (errlen) snprintf(err, errlen, "%s: cannot read: %s", cfgpath, strerror(errno));
        return NULL;
    }
    if (cfgtext) {
        cfg = cJSON_Parse(cfgtext);
        free(cfgtext);
        if (!cfg) {
            if (errlen) snprintf(err, errlen, "%s: invalid JSON", cfgpath);
            return NULL;
        }
        bos = token_string(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"));
        eos = token_string(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token"));
    }
    snprintf(path, sizeof(path), "%s/chat_template.jinja", model_dir);
    char *src = read_file(path, &missing);
    if (src) {
        t = create_named(src, "default", path, err, errlen);
        free(src);
        if (!t) goto fail;
    } else if (!missing) {
        if (errlen) snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    const cJSON *ct = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
    if (!t && cJSON_IsString(ct)) {
        if (!(t = create_named(ct->valuestring, "default", cfgpath, err, errlen))) goto fail;
    } else if (!t && cJSON_IsArray(ct)) {
        if (!(t = load_list(ct, cfgpath, err, errlen))) goto fail;
    } else if (!t && ct && !cJSON_IsNull(ct)) {
        if (errlen) snprintf(err, errlen, "%s: chat_template must be a string or a list of {name, template}", cfgpath);
        goto fail;
    }
    if (!t) {
        snprintf(path, sizeof(path), "%s/chat_template.json", model_dir);
        char *jt = read_file(path, &missing);
        if (jt) {
            cJSON *j = cJSON_Parse(jt);
            free(jt);
            const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "chat_template") : NULL;
            if (cJSON_IsString(s)) t = create_named(s->valuestring, "default", path, err, errlen);
            else if (errlen) snprintf(err, errlen, "%s: no string \"chat_template\"", path);
            cJSON_Delete(j);
            if (!t) goto fail;
        }
    }
    if (!t) {
        LOG_WARN("model %s has no chat template; falling back to ChatML", model_dir);
        t = tmpl_create(CHATML, err, errlen);
        if (!t) goto fail;
        if (used_fallback) *used_fallback = 1;
    }
    t->bos = bos;
    t->eos = eos;
    /* variants render with the same token defaults */
    for (size_t i = 0; i < t->nvariants; i++) {
        t->variants[i]->bos = bos ? strdup(bos) : NULL;
        t->variants[i]->eos = eos ? strdup(eos) : NULL;
    }
    cJSON_Delete(cfg);
    return t;
fail:
    free(bos);
    free(eos);
    cJSON_Delete(cfg);
    return NULL;
}
