/* tests/fuzz/fuzz_tokenizer.c: libFuzzer target for the tokenizer
 * (engine/tok_*.c).
 *
 * First byte even: the rest is a tokenizer.json document for tok_load_json
 * (the fast vocab/merges scanner, cJSON, the Oniguruma -> PCRE2 rewrite); it
 * must load or fail with a non-empty error, and a loaded one must encode a
 * probe text. First byte odd: the rest is text for a fixed small tokenizer
 * (cl100k's Split regex + ByteLevel, added tokens with lstrip/rstrip, a few
 * merges): encode must succeed, decode(encode(x)) must be valid UTF-8 and
 * equal x when x is valid UTF-8, and the streaming detokenizer must equal the
 * one-shot decode. Never crash, leak or read out of bounds (ASan+UBSan:
 * make fuzz). Single-threaded.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

static struct tokenizer *fixed_tok(void)
{
    static struct tokenizer *t;
    if (t) return t;
    char *j = malloc(1 << 16);
    size_t o = 0;
    o += (size_t)sprintf(j + o,
        "{\"added_tokens\":[{\"id\":300,\"content\":\"<|endoftext|>\",\"special\":true},"
        "{\"id\":301,\"content\":\"<m>\",\"special\":false,\"lstrip\":true,\"rstrip\":true}],"
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
        "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Removed\",\"invert\":true},{\"type\":\"ByteLevel\",\"use_regex\":false}]},"
        "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{");
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        int cp = direct ? b : 256 + n++;
        if (cp == '"' || cp == '\\') o += (size_t)sprintf(j + o, "%s\"\\%c\":%d", b ? "," : "", cp, b);
        else o += (size_t)sprintf(j + o, "%s\"\\u%04x\":%d", b ? "," : "", cp, b);
    }
    o += (size_t)sprintf(j + o, ",\"\\u0120t\":256,\"he\":257,\"\\u0120the\":258,\"\\u0120\\u0120\":259},"
                                "\"merges\":[\"\\u0120 t\",\"h e\",\"\\u0120t he\",\"\\u0120 \\u0120\"]}}");
    char err[256];
    t = tok_load_json(j, o, err, sizeof err);
    free(j);
    if (!t) { fprintf(stderr, "fixed tokenizer: %s\n", err); abort(); }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char err[256];
    if (!(data[0] & 1)) {
        char *buf = malloc(n ? n : 1); /* exact size: the loader must honour n */
        if (!buf) return 0;
        memcpy(buf, s, n);
        err[0] = 0;
        struct tokenizer *t = tok_load_json(buf, n, err, sizeof err);
        free(buf);
        if (!t) {
            if (!err[0]) abort();
            return 0;
        }
        int32_t *ids = NULL;
        int k = tok_encode(t, "Hello, world! 123 <|endoftext|>", 31, true, &ids);
        if (k < 0) abort();
        for (int i = 0; i < k; i++)
            if (ids[i] < 0 || ids[i] >= tok_vocab_size(t)) abort();
        char *d = tok_decode(t, ids, k, false, NULL);
        free(d);
        free(ids);
        tok_free(t);
        return 0;
    }
    struct tokenizer *t = fixed_tok();
    int32_t *ids = NULL;
    int k = tok_encode(t, s, n, false, &ids);
    if (k < 0) abort();
    size_t dl;
    char *d = tok_decode(t, ids, k, false, &dl);
    if (!d || !valid_utf8((const unsigned char *)d, dl)) abort();
    /* lstrip/rstrip of <m> drop whitespace, so only compare without it */
    if (valid_utf8(data + 1, n) && !memmem(s, n, "<m>", 3) && (dl != n || memcmp(d, s, n))) abort();
    struct tok_stream st;
    struct tok_buf out = {0};
    tok_stream_init(&st, t, data[0] & 2);
    for (int i = 0; i < k; i++)
        if (tok_stream_push(&st, ids[i], &out) < 0) abort();
    if (tok_stream_flush(&st, &out) < 0) abort();
    char *d2 = tok_decode(t, ids, k, data[0] & 2, &dl);
    if (!d2 || dl != out.len || memcmp(d2, out.data, dl)) abort();
    tok_buf_fini(&out);
    free(d2);
    free(d);
    free(ids);
    return 0;
}
