/* engine/tok_json.c: fast paths for the two big members of tokenizer.json,
 * model.vocab (~100k "piece": id pairs) and model.merges (~100k strings or
 * pairs).
 *
 * Runs at load time on the loading thread. A general DOM parser (cJSON)
 * spends most of a 100k-vocabulary load in malloc, one node and one key copy
 * per entry; here the two members are located with a skip-scanner, cut out of
 * the text handed to cJSON (replaced by {} and []), and decoded straight into
 * flat arrays, strings unescaped into one blob.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/tok_json.h"

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* p at '"': returns the position after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\') { p++; continue; }
        if (*p == '"') return p + 1;
    }
    return NULL;
}

/* Skip any JSON value; NULL on malformed input. */
static const char *skip_value(const char *p, const char *e)
{
    p = ws(p, e);
    if (p >= e) return NULL;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < e; p++) {
            if (*p == '"') {
                p = skip_string(p, e);
                if (!p) return NULL;
                p--;
            } else if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' &&
           *p != '\t')
        p++;
    return p;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *put_utf8(char *o, uint32_t c)
{
    if (c < 0x80) *o++ = (char)c;
    else if (c < 0x800) { *o++ = (char)(0xC0 | (c >> 6)); *o++ = (char)(0x80 | (c & 0x3F)); }
    else if (c < 0x10000) {
        *o++ = (char)(0xE0 | (c >> 12));
        *o++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *o++ = (char)(0x80 | (c & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (c >> 18));
        *o++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *o++ = (char)(0x80 | (c & 0x3F));
    }
    return o;
}

/* p at '"': unescape into *o (NUL-terminated); returns after the quote. The
 * output never exceeds the input length. Lone surrogates become U+FFFD (a JS
 * string could hold one, UTF-8 cannot). */
static const char *read_string(const char *p, const char *e, char **o)
{
    char *w = *o;
    for (p++; p < e; p++) {
        char c = *p;
        if (c == '"') {
            *w++ = 0;
            *o = w;
            return p + 1;
        }
        if (c != '\\') { *w++ = c; continue; }
        if (++p >= e) return NULL;
        switch (*p) {
        case 'n': *w++ = '\n'; break;
        case 't': *w++ = '\t'; break;
        case 'r': *w++ = '\r'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case '/': *w++ = '/'; break;
        case '\\': *w++ = '\\'; break;
        case '"': *w++ = '"'; break;
        case 'u': {
            if (e - p < 5) return NULL;
            int a = hexv(p[1]), b = hexv(p[2]), c2 = hexv(p[3]), d = hexv(p[4]);
            if ((a | b | c2 | d) < 0) return NULL;
            uint32_t cp = (uint32_t)(a << 12 | b << 8 | c2 << 4 | d);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 7 && p[1] == '\\' && p[2] == 'u') {
                int a2 = hexv(p[3]), b2 = hexv(p[4]), c3 = hexv(p[5]), d2 = hexv(p[6]);
                uint32_t lo = (a2 | b2 | c3 | d2) < 0 ? 0 : (uint32_t)(a2 << 12 | b2 << 8 | c3 << 4 | d2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
            w = put_utf8(w, cp);
            break;
        }
        default: return NULL;
        }
    }
    return NULL;
}

struct find_ctx {
    struct tok_json_big *b;
    const char *vocab, *vocab_end, *merges, *merges_end;
    bool bad;
};

static const char *parse_vocab(struct tok_json_big *b, const char *p, const char *e);
static const char *parse_merges(struct tok_json_big *b, const char *p, const char *e);

/* Walk the members of the object at p; fn parses (or skips) each value and
 * returns its end. Returns the end of the object, or NULL when malformed. */
static const char *walk_object(const char *p, const char *e,
                               const char *(*fn)(struct find_ctx *c, const char *k, size_t kl,
                                                 const char *v, const char *e),
                               struct find_ctx *ctx)
{
    p = ws(p, e);
    if (p >= e || *p != '{') return NULL;
    p = ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (;;) {
        p = ws(p, e);
        if (p >= e || *p != '"') return NULL;
        const char *ks = p + 1, *ke = skip_string(p, e);
        if (!ke) return NULL;
        p = ws(ke, e);
        if (p >= e || *p != ':') return NULL;
        const char *v = ws(p + 1, e);
        if (v >= e) return NULL;
        const char *ve = fn(ctx, ks, (size_t)(ke - 1 - ks), v, e);
        if (!ve) return NULL;
        p = ws(ve, e);
        if (p < e && *p == ',') { p++; continue; }
        if (p < e && *p == '}') return p + 1;
        return NULL;
    }
}

/* Inside "model": decode vocab and merges in place (one pass over them). */
static const char *on_model_key(struct find_ctx *f, const char *k, size_t kl, const char *v, const char *e)
{
    if (kl == 5 && !memcmp(k, "vocab", 5) && *v == '{' && !f->vocab) {
        f->vocab = v;
        f->vocab_end = parse_vocab(f->b, v, e);
        return f->vocab_end;
    }
    if (kl == 6 && !memcmp(k, "merges", 6) && *v == '[' && !f->merges) {
        f->merges = v;
        f->merges_end = parse_merges(f->b, v, e);
        return f->merges_end;
    }
    return skip_value(v, e);
}

static const char *on_top_key(struct find_ctx *f, const char *k, size_t kl, const char *v, const char *e)
{
    if (kl == 5 && !memcmp(k, "model", 5) && *v == '{') return walk_object(v, e, on_model_key, f);
    return skip_value(v, e);
}

static const char *parse_vocab(struct tok_json_big *b, const char *p, const char *e)
{
    size_t cap = 1024;
    b->vocab = malloc(cap * sizeof *b->vocab);
    b->vblob = malloc((size_t)(e - p) + 1);
    if (!b->vocab || !b->vblob) return NULL;
    char *w = b->vblob;
    p = ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (;;) {
        p = ws(p, e);
        if (p >= e || *p != '"') return NULL;
        char *key = w;
        p = read_string(p, e, &w);
        if (!p) return NULL;
        p = ws(p, e);
        if (p >= e || *p != ':') return NULL;
        p = ws(p + 1, e);
        long id = 0;
        const char *d = p;
        while (p < e && *p >= '0' && *p <= '9' && id <= 16777216) id = id * 10 + (*p++ - '0');
        if (p == d || id > 16777216 || (p < e && (*p == '.' || *p == 'e' || *p == 'E'))) return NULL;
        if (b->nvocab == cap) {
            cap *= 2;
            struct tok_json_entry *nv = realloc(b->vocab, cap * sizeof *nv);
            if (!nv) return NULL;
            b->vocab = nv;
        }
        b->vocab[b->nvocab].s = key;
        b->vocab[b->nvocab].len = (size_t)(w - 1 - key);
        b->vocab[b->nvocab].id = (int32_t)id;
        b->nvocab++;
        p = ws(p, e);
        if (p < e && *p == ',') { p++; continue; }
        if (p < e && *p == '}') return p + 1;
        return NULL;
    }
}

static const char *parse_merges(struct tok_json_big *b, const char *p, const char *e)
{
    size_t cap = 1024;
    b->merges = malloc(cap * sizeof *b->merges);
    b->mblob = malloc((size_t)(e - p) + 2);
    if (!b->merges || !b->mblob) return NULL;
    char *w = b->mblob;
    p = ws(p + 1, e);
    if (p < e && *p == ']') return p + 1;
    for (;;) {
        p = ws(p, e);
        if (b->nmerges == cap) {
            cap *= 2;
            struct tok_json_merge *nm = realloc(b->merges, cap * sizeof *nm);
            if (!nm) return NULL;
            b->merges = nm;
        }
        struct tok_json_merge *m = &b->merges[b->nmerges];
        if (p < e && *p == '"') {
            /* "a b": split at the first space, as the reference does */
            char *s = w;
            p = read_string(p, e, &w);
            if (!p) return NULL;
            char *sp = strchr(s, ' ');
            if (!sp) return NULL;
            *sp = 0;
            m->a = s;
            m->b = sp + 1;
            /* the reference's split(" ", 2) drops anything after a second space */
            char *sp2 = strchr(sp + 1, ' ');
            if (sp2) *sp2 = 0;
        } else if (p < e && *p == '[') {
            p = ws(p + 1, e);
            if (p >= e || *p != '"') return NULL;
            m->a = w;
            p = read_string(p, e, &w);
            if (!p) return NULL;
            p = ws(p, e);
            if (p >= e || *p != ',') return NULL;
            p = ws(p + 1, e);
            if (p >= e || *p != '"') return NULL;
            m->b = w;
            p = read_string(p, e, &w);
            if (!p) return NULL;
            p = ws(p, e);
            if (p >= e || *p != ']') return NULL;
            p++;
        } else return NULL;
        b->nmerges++;
        p = ws(p, e);
        if (p < e && *p == ',') { p++; continue; }
        if (p < e && *p == ']') return p + 1;
        return NULL;
    }
}

int tok_json_split(const char *json, size_t len, struct tok_json_big *b, char **rest, size_t *rest_len)
{
    memset(b, 0, sizeof *b);
    *rest = NULL;
    const char *e = json + len;
    struct find_ctx f = {.b = b};
    if (!walk_object(json, e, on_top_key, &f) || !f.vocab) return -1;
    b->have_merges = f.merges != NULL;
    /* the rest: the document with both members emptied, for cJSON */
    char *r = malloc(len + 8);
    if (!r) return -1;
    size_t o = 0;
    const char *cut[2][2] = {{f.vocab, f.vocab_end}, {f.merges, f.merges_end}};
    if (f.merges && f.merges < f.vocab) {
        const char *t0 = cut[0][0], *t1 = cut[0][1];
        cut[0][0] = cut[1][0];
        cut[0][1] = cut[1][1];
        cut[1][0] = t0;
        cut[1][1] = t1;
    }
    const char *p = json;
    for (int k = 0; k < 2; k++) {
        if (!cut[k][0]) continue;
        memcpy(r + o, p, (size_t)(cut[k][0] - p));
        o += (size_t)(cut[k][0] - p);
        r[o++] = *cut[k][0] == '{' ? '{' : '[';
        r[o++] = *cut[k][0] == '{' ? '}' : ']';
        p = cut[k][1];
    }
    memcpy(r + o, p, (size_t)(e - p));
    o += (size_t)(e - p);
    r[o] = 0;
    *rest = r;
    *rest_len = o;
    return 0;
}

void tok_json_big_fini(struct tok_json_big *b)
{
    free(b->vocab);
    free(b->vblob);
    free(b->merges);
    free(b->mblob);
    memset(b, 0, sizeof *b);
}
