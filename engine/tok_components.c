/* engine/tok_components.c: the pipeline components of tokenizer.json, the
 * pre_tokenizer chain (Split / ByteLevel / Sequence) and the post_processor
 * (ByteLevel / TemplateProcessing / Sequence), from cJSON into struct
 * tokenizer. Anything else is an error naming the component.
 *
 * Runs at load time on the loading thread (called by tok_load_json after the
 * vocabulary is in place, so TemplateProcessing can resolve its tokens).
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok_internal.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool json_true(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const char *json_type(const cJSON *o)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

int tok_load_pre(struct tokenizer *t, const cJSON *p, char *err, size_t errlen)
{
    if (!p || cJSON_IsNull(p)) return 0;
    const char *ty = json_type(p);
    if (!ty) { set_err(err, errlen, "tokenizer.json: pre_tokenizer without a type"); return -1; }
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(arr)) {
            set_err(err, errlen, "tokenizer.json: pre_tokenizer Sequence without pretokenizers");
            return -1;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
            if (tok_load_pre(t, e, err, errlen)) return -1;
        return 0;
    }
    if (t->n_pre >= TOK_MAX_PRE) {
        set_err(err, errlen, "tokenizer.json: more than %d pre-tokenizers", TOK_MAX_PRE);
        return -1;
    }
    struct tok_pre *pr = &t->pre[t->n_pre];
    memset(pr, 0, sizeof *pr);
    if (!strcmp(ty, "ByteLevel")) {
        pr->kind = TOK_PRE_BYTELEVEL;
        pr->add_prefix_space = json_true(p, "add_prefix_space");
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) {
            pr->re = tok_regex_compile_gpt2(err, errlen);
            if (!pr->re) return -1;
        }
        t->n_pre++;
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        pr->kind = TOK_PRE_SPLIT;
        pr->invert = json_true(p, "invert");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        const char *bs = cJSON_IsString(b) ? b->valuestring : "";
        static const char *names[] = {"Isolated", "Removed", "MergedWithPrevious",
                                      "MergedWithNext", "Contiguous"};
        int bi = -1;
        for (int i = 0; i < 5; i++)
            if (!strcmp(bs, names[i])) bi = i;
        if (bi < 0) {
            set_err(err, errlen, "tokenizer.json: unsupported Split behavior '%s'", bs);
            return -1;
        }
        pr->behavior = (enum tok_split_behavior)bi;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(pat, "String");
        if (cJSON_IsString(rx)) pr->re = tok_regex_compile_onig(rx->valuestring, err, errlen);
        else if (cJSON_IsString(st))
            pr->re = tok_regex_compile_literal(st->valuestring, strlen(st->valuestring), err, errlen);
        else {
            set_err(err, errlen, "tokenizer.json: Split pattern is neither Regex nor String");
            return -1;
        }
        if (!pr->re) return -1;
        t->n_pre++;
        return 0;
    }
    set_err(err, errlen, "tokenizer.json: unsupported pre_tokenizer type '%s'", ty);
    return -1;
}

int tok_load_post(struct tokenizer *t, const cJSON *p, char *err, size_t errlen)
{
    if (!p || cJSON_IsNull(p)) return 0;
    const char *ty = json_type(p);
    if (!ty) { set_err(err, errlen, "tokenizer.json: post_processor without a type"); return -1; }
    if (!strcmp(ty, "ByteLevel")) return 0; /* offsets only */
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "processors"))
            if (tok_load_post(t, e, err, errlen)) return -1;
        return 0;
    }
    if (strcmp(ty, "TemplateProcessing")) {
        set_err(err, errlen, "tokenizer.json: unsupported post_processor type '%s'", ty);
        return -1;
    }
    if (t->post_pre || t->post_suf) {
        set_err(err, errlen, "tokenizer.json: more than one TemplateProcessing post_processor");
        return -1;
    }
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    int n = cJSON_GetArraySize(single);
    t->post_pre = calloc((size_t)n + 1, sizeof(int32_t));
    t->post_suf = calloc((size_t)n + 1, sizeof(int32_t));
    if (!t->post_pre || !t->post_suf) { set_err(err, errlen, "out of memory"); return -1; }
    bool seen_a = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        if (sq) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(sq, "id");
            if (!cJSON_IsString(id) || strcmp(id->valuestring, "A") || seen_a) {
                set_err(err, errlen, "tokenizer.json: TemplateProcessing single template "
                                     "must hold sequence A once");
                return -1;
            }
            seen_a = true;
        } else if (sp) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(sp, "id");
            int32_t tid = cJSON_IsString(id) ? tok_token_to_id(t, id->valuestring) : -1;
            if (tid < 0) {
                set_err(err, errlen, "tokenizer.json: TemplateProcessing special token '%s' "
                                     "is not in the vocabulary",
                        cJSON_IsString(id) ? id->valuestring : "?");
                return -1;
            }
            if (seen_a) t->post_suf[t->n_post_suf++] = tid;
            else t->post_pre[t->n_post_pre++] = tid;
        } else {
            set_err(err, errlen, "tokenizer.json: unsupported TemplateProcessing item");
            return -1;
        }
    }
    return 0;
}

