/* tests/fuzz/fuzz_request.c: libFuzzer target for the request path of the
 * OpenAI routes: body bytes -> parameters (server/oai_parse.h) -> for chat,
 * the prompt through the real OLMo chat template (server/chat.h) -> tokens
 * through the real OLMo tokenizer (engine/tokenizer.h).
 *
 * Input: byte 0 picks the route (bits 0-1: /v1/completions, /v1/chat/
 * completions, /tokenize, /detokenize) and whether the token-id checks are on
 * (bit 2: vocab_size in the limits); the rest is the request body, copied to
 * an exact-size buffer (the parser must honour len, not a NUL).
 *
 * Checked on every input (abort on violation):
 *   - the parser returns 0 or a negative srv_err with a non-empty message, an
 *     HTTP status of 400..599, and an error body that is valid JSON in
 *     OpenAI's shape ({"error":{"message":string,...}});
 *   - a parsed request keeps its documented ranges (n, stop count, logprobs,
 *     token ids in the vocabulary when checked, exactly one of text/ids per
 *     prompt, min_tokens <= max_tokens);
 *   - oai_request_fini/oai_tok_request_fini free everything (LeakSanitizer),
 *     also after a failed parse;
 *   - chat messages render to a prompt or a clean SRV_EINVAL/ENOTSUP error,
 *     and the prompt encodes; decode(encode(prompt)) == prompt when the
 *     prompt is valid UTF-8.
 * Never crash, leak or read out of bounds (ASan+UBSan: make fuzz).
 * Single-threaded. The model directory is $DS_FUZZ_MODEL, else
 * models/olmo-hybrid-tiny (run-fuzz.sh runs from the repository root).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/chat_template.h"
#include "engine/tokenizer.h"
#include "server/app.h"
#include "server/chat.h"
#include "server/errors.h"
#include "server/oai_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct srv_app g_app;
static bool g_ready;

static void setup(void)
{
    if (g_ready) return;
    const char *dir = getenv("DS_FUZZ_MODEL");
    if (!dir) dir = "models/olmo-hybrid-tiny";
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct tokenizer *tok = tok_load(path, err, sizeof err);
    if (!tok) { fprintf(stderr, "fuzz_request: %s: %s\n", path, err); abort(); }
    struct tmpl *t = NULL;
    if (chat_load(&t, dir, NULL, err, sizeof err)) { fprintf(stderr, "fuzz_request: template: %s\n", err); abort(); }
    g_app.tok = tok;
    g_app.tmpl = t;
    g_app.vocab_size = tok_vocab_size(tok);
    g_app.max_model_len = 65536;
    /* tokenizer_config.json of the bundled model */
    snprintf(g_app.bos_token, sizeof g_app.bos_token, "%s", "<|endoftext|>");
    snprintf(g_app.eos_token, sizeof g_app.eos_token, "%s", "<|im_end|>");
    g_ready = true;
}

static void check_error(int rc, const struct srv_error *e)
{
    if (rc >= 0 || rc <= -SRV_ERR_COUNT_) abort();
    if (!e->message[0]) abort();
    if (memchr(e->param, 0, sizeof e->param) == NULL) abort();
    if (memchr(e->message, 0, sizeof e->message) == NULL) abort();
    int st = srv_err_status(rc);
    if (st < 400 || st > 599) abort();
    char *js = srv_err_json(e);
    if (!js) abort();
    cJSON *j = cJSON_Parse(js);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (!cJSON_IsObject(o) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "message"))) abort();
    cJSON_Delete(j);
    free(js);
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i], lo = 0x80, hi = 0xBF;
        size_t k;
        if (b < 0x80) { i++; continue; }
        if (b >= 0xC2 && b <= 0xDF) k = 1;
        else if (b >= 0xE0 && b <= 0xEF) { k = 2; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
        else if (b >= 0xF0 && b <= 0xF4) { k = 3; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
        else return false;
        if (i + k >= n || s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += k + 1;
    }
    return true;
}

/* Render through the model's template, then tokenize the prompt and check
 * the round trip. */
static void render_and_tokenize(const char *messages, const char *tools, bool agp, bool cont,
                                const char *kwargs)
{
    char *prompt = NULL;
    struct srv_error e;
    memset(&e, 0, sizeof e);
    int rc = chat_render(&g_app, messages, tools, agp, cont, kwargs, &prompt, &e);
    if (rc) {
        if (prompt) abort();
        if (rc != SRV_EINVAL && rc != SRV_ENOTSUP) abort();
        check_error(rc, &e);
        return;
    }
    if (!prompt) abort();
    size_t n = strlen(prompt);
    int32_t *ids = NULL;
    int k = tok_encode(g_app.tok, prompt, n, false, &ids);
    if (k < 0) abort();
    for (int i = 0; i < k; i++)
        if (ids[i] < 0 || ids[i] >= g_app.vocab_size) abort();
    size_t dl = 0;
    char *d = tok_decode(g_app.tok, ids, k, false, &dl);
    /* the body's strings may carry invalid UTF-8 (cJSON keeps the bytes);
     * encode replaces it with U+FFFD, so only valid text must round-trip */
    if (!d) abort();
    if (valid_utf8((const unsigned char *)prompt, n) && (dl != n || memcmp(d, prompt, n))) {
        size_t i = 0;
        while (d && i < n && i < dl && d[i] == prompt[i]) i++;
        fprintf(stderr, "round trip differs at byte %zu (lengths %zu -> %zu)\nprompt:  [%.*s]\ndecoded: [%.*s]\n", i, n, dl,
                (int)(n - i < 80 ? n - i : 80), prompt + i, d ? (int)(dl - i < 80 ? dl - i : 80) : 0, d ? d + i : "");
        abort();
    }
    free(d);
    free(ids);
    free(prompt);
}

static void check_request(const struct oai_request *r, enum oai_kind kind, const struct oai_limits *lim)
{
    if (r->kind != kind) abort();
    if (r->n < 1 || r->n > lim->max_n) abort();
    if (r->num_stop < 0 || r->num_stop > lim->max_stop) abort();
    for (int i = 0; i < r->num_stop; i++)
        if (!r->stop || !r->stop[i]) abort();
    if (r->logprobs < -1 || r->logprobs > lim->max_logprobs) abort();
    if (r->prompt_logprobs < -1 || r->prompt_logprobs > lim->max_logprobs) abort();
    if (r->max_tokens < -1) abort();
    if (r->max_tokens >= 0 && r->min_tokens > r->max_tokens) abort();
    if (r->has_temperature && !(r->temperature >= 0 && r->temperature <= 2)) abort();
    if (lim->vocab_size > 0) {
        for (int i = 0; i < r->num_stop_token_ids; i++)
            if (r->stop_token_ids[i] < 0 || r->stop_token_ids[i] >= lim->vocab_size) abort();
        for (int i = 0; i < r->num_logit_bias; i++)
            if (r->logit_bias[i].token < 0 || r->logit_bias[i].token >= lim->vocab_size) abort();
    }
    if (kind == OAI_COMPLETION) {
        if (r->num_prompts < 1 || !r->prompts) abort();
        for (int p = 0; p < r->num_prompts; p++) {
            const struct oai_prompt *pr = &r->prompts[p];
            if (pr->text && pr->ids) abort();
            if (!pr->ids && pr->num_ids != 0) abort();
            if (pr->text && pr->text[pr->text_len] != 0) abort();
            if (pr->ids && lim->vocab_size > 0)
                for (int i = 0; i < pr->num_ids; i++)
                    if (pr->ids[i] < 0 || pr->ids[i] >= lim->vocab_size) abort();
            if (pr->text) {
                /* what the server does next: encode the prompt */
                int32_t *ids = NULL;
                int k = tok_encode(g_app.tok, pr->text, pr->text_len, r->add_special_tokens, &ids);
                if (k < 0) abort();
                free(ids);
            }
        }
    } else {
        if (!r->messages_json) abort();
        render_and_tokenize(r->messages_json, r->tools_json, r->add_generation_prompt,
                            r->continue_final_message, r->chat_template_kwargs_json);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    setup();
    int route = data[0] & 3;
    struct oai_limits lim;
    oai_limits_init(&lim);
    lim.vocab_size = (data[0] & 4) ? g_app.vocab_size : 0;
    size_t n = size - 1;
    char *body = malloc(n ? n : 1);
    if (!body) return 0;
    memcpy(body, data + 1, n);
    struct srv_error e;
    memset(&e, 0, sizeof e);
    if (route <= 1) {
        enum oai_kind kind = route == 0 ? OAI_COMPLETION : OAI_CHAT;
        struct oai_request r;
        memset(&r, 0x5a, sizeof r); /* the parser must initialise every field */
        int rc = oai_parse(kind, body, n, &lim, &r, &e);
        if (rc) check_error(rc, &e);
        else check_request(&r, kind, &lim);
        oai_request_fini(&r);
    } else {
        struct oai_tok_request r;
        memset(&r, 0x5a, sizeof r);
        int rc = route == 2 ? oai_parse_tokenize(body, n, &lim, &r, &e)
                            : oai_parse_detokenize(body, n, &lim, &r, &e);
        if (rc) {
            check_error(rc, &e);
        } else if (route == 2) {
            if (!r.prompt == !r.messages_json) abort();
            if (r.prompt) {
                int32_t *ids = NULL;
                int k = tok_encode(g_app.tok, r.prompt, r.prompt_len, r.add_special_tokens, &ids);
                if (k < 0) abort();
                free(ids);
            } else {
                render_and_tokenize(r.messages_json, r.tools_json, r.add_generation_prompt,
                                    r.continue_final_message, NULL);
            }
        } else {
            if (r.num_tokens < 0 || (r.num_tokens > 0 && !r.tokens)) abort();
            if (lim.vocab_size > 0) {
                for (int i = 0; i < r.num_tokens; i++)
                    if (r.tokens[i] < 0 || r.tokens[i] >= lim.vocab_size) abort();
                char *d = tok_decode(g_app.tok, r.tokens, r.num_tokens, false, NULL);
                if (!d) abort();
                free(d);
            }
        }
        oai_tok_request_fini(&r);
    }
    free(body);
    return 0;
}
