/* tests/fuzz/fuzz_tok_olmo.c: libFuzzer target for the tokenizer on the real
 * OLMo tokenizer.json (100k-entry byte-level BPE, the GPT-4-style Split regex,
 * the model's added/special tokens), complementing fuzz_tokenizer.c (which
 * fuzzes tokenizer.json loading and a small fixed vocabulary).
 *
 * Input: byte 0 picks the mode, the rest is the payload.
 *   bit 0 clear: payload is text. encode must succeed with ids inside the
 *     vocabulary; decode(encode(x)) must be valid UTF-8, and equal x when x is
 *     valid UTF-8 (the model has no normalizer and added tokens without
 *     strip flags); the streaming detokenizer (skip_special from bit 1) must
 *     equal the one-shot decode.
 *   bit 0 set: payload is little-endian 16-bit words mapped to ids (some
 *     beyond the vocabulary): decode must fail exactly when an id is unknown,
 *     else give valid UTF-8 equal to the streamed output (split multibyte
 *     sequences, U+FFFD at the end, special tokens skipped or kept).
 * Never crash, leak or read out of bounds (ASan+UBSan: make fuzz).
 * Single-threaded. The model directory is $DS_FUZZ_MODEL, else
 * models/olmo-hybrid-tiny (run-fuzz.sh runs from the repository root).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct tokenizer *olmo(void)
{
    static struct tokenizer *t;
    if (t) return t;
    const char *dir = getenv("DS_FUZZ_MODEL");
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir ? dir : "models/olmo-hybrid-tiny");
    t = tok_load(path, err, sizeof err);
    if (!t) { fprintf(stderr, "fuzz_tok_olmo: %s: %s\n", path, err); abort(); }
    return t;
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

/* streamed == one-shot decode; returns the one-shot text or NULL on unknown id */
static char *decode_both(const struct tokenizer *t, const int32_t *ids, int k, bool skip, size_t *dl)
{
    char *d = tok_decode(t, ids, k, skip, dl);
    struct tok_stream st;
    struct tok_buf out = {0};
    tok_stream_init(&st, t, skip);
    bool unknown = false;
    for (int i = 0; i < k; i++)
        if (tok_stream_push(&st, ids[i], &out) < 0) unknown = true;
    if (tok_stream_flush(&st, &out) < 0) abort();
    if (!d) {
        if (!unknown) abort(); /* decode failed although every id is known */
        tok_buf_fini(&out);
        return NULL;
    }
    if (unknown) abort();
    if (!valid_utf8((const unsigned char *)d, *dl)) abort();
    if (out.len != *dl || (out.len && memcmp(out.data, d, *dl))) abort();
    tok_buf_fini(&out);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const struct tokenizer *t = olmo();
    int vocab = tok_vocab_size(t);
    bool skip = data[0] & 2;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (!(data[0] & 1)) {
        char *text = malloc(n ? n : 1); /* exact size: encode must honour n */
        if (!text) return 0;
        memcpy(text, p, n);
        int32_t *ids = NULL;
        int k = tok_encode(t, text, n, data[0] & 4, &ids);
        if (k < 0 || !ids) abort();
        for (int i = 0; i < k; i++)
            if (ids[i] < 0 || ids[i] >= vocab) abort();
        size_t dl = 0;
        char *d = decode_both(t, ids, k, skip, &dl);
        if (!d) abort();
        if (!skip && !(data[0] & 4) && valid_utf8(p, n) && (dl != n || memcmp(d, text, n))) abort();
        free(d);
        free(ids);
        free(text);
        return 0;
    }
    int k = (int)(n / 2);
    int32_t *ids = malloc(sizeof *ids * (size_t)(k ? k : 1));
    if (!ids) return 0;
    /* words map onto [0, vocab + 64): mostly valid ids, a few unknown ones */
    for (int i = 0; i < k; i++) {
        uint32_t w = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
        ids[i] = (int32_t)(w * (uint32_t)(vocab + 64) / 65536u);
        if ((w & 0xff) == 0xff) ids[i] = vocab - 1 - (int32_t)(w >> 8); /* top: added tokens */
    }
    size_t dl = 0;
    char *d = decode_both(t, ids, k, skip, &dl);
    free(d);
    free(ids);
    return 0;
}
