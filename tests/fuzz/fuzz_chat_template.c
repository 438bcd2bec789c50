/* tests/fuzz/fuzz_chat_template.c: libFuzzer target for the chat-template
 * interpreter (engine/chat_template.h, engine/tmpl_*.c).
 *
 * The input is a template source. It must either fail to parse with a
 * non-empty message, or render against a fixed conversation (with tools and
 * tool calls) to a string or a non-empty error; never crash, leak, read out of
 * bounds or hang (the render limits bound time and memory). Single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char CTX[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":\"hi \\u00e9\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
    "\"arguments\":{\"a\":1,\"b\":[true,null,2.5],\"c\":{\"d\":\"x\"}}}}]},{\"role\":\"tool\",\"content\":\"r\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}],"
    "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"xs\":[3,1,2],\"s\":\" str \"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cJSON *ctx;
    if (!ctx) ctx = cJSON_Parse(CTX);
    char *src = malloc(size + 1);
    if (!src) return 0;
    memcpy(src, data, size);
    src[size] = 0;
    char err[512] = "";
    struct tmpl *t = tmpl_create(src, err, sizeof err);
    free(src);
    if (!t) {
        if (!err[0]) abort();
        return 0;
    }
    char *out = NULL;
    err[0] = 0;
    int rc = tmpl_render(t, ctx, &out, err, sizeof err);
    if (rc == TMPL_OK && !out) abort();
    if (rc != TMPL_OK && out) abort();
    free(out);
    tmpl_destroy(t);
    return 0;
}
