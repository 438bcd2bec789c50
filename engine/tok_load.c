/* engine/tok_load.c: tokenizer.json loader (cJSON -> flat tables), lookups and
 * per-thread scratch.
 *
 * Runs once at startup on the loading thread; the lookups (tok_vocab_find,
 * tok_merge_find, accessors) are read-only and safe from any thread;
 * tok_tls_get creates the calling thread's scratch on first use.
 *
 * Tables: the vocabulary is kept in raw-byte form (byte-level pieces decoded
 * through the GPT-2 byte<->unicode map) so BPE works on bytes, never on the
 * unicode alias strings. Merges are an open-addressing map (id_a, id_b) ->
 * (rank, id_result), the same shape tiktoken uses.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok_internal.h"
#include "engine/tok_json.h"

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

/* ---- hashing and the GPT-2 byte <-> unicode map ---- */

uint64_t tok_hash(const uint8_t *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* unicode code point (< 324) -> byte, or -1; built from bytes_to_unicode() */
static int16_t u2b[324];
static pthread_once_t u2b_once = PTHREAD_ONCE_INIT;
static void u2b_build(void)
{
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (direct) u2b[b] = (int16_t)b;
        else u2b[256 + n++] = (int16_t)b;
    }
}

/* Decode one UTF-8 code point of a NUL-terminated string validated by
 * utf8_ok (so no sequence runs past the terminator). */
static uint32_t utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (k == 2) c = ((c & 0x1F) << 6) | (s[1] & 0x3F);
    else if (k == 3) c = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    else if (k == 4)
        c = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    *p = s + k;
    return c;
}

/* Strict UTF-8 check of a NUL-terminated string (no overlongs, surrogates or
 * code points above U+10FFFF). Token strings must pass: decoded text is
 * promised to be valid UTF-8 and added tokens are emitted verbatim. */
static bool utf8_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned char b = *s, lo = 0x80, hi = 0xBF;
        int k;
        if (b < 0x80) { s++; continue; }
        if (b >= 0xC2 && b <= 0xDF) k = 1;
        else if (b >= 0xE0 && b <= 0xEF) { k = 2; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
        else if (b >= 0xF0 && b <= 0xF4) { k = 3; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
        else return false;
        if (s[1] < lo || s[1] > hi) return false;
        for (int j = 2; j <= k; j++)
            if ((s[j] & 0xC0) != 0x80) return false;
        s += k + 1;
    }
    return true;
}

/* Byte-level piece -> raw bytes into out (capacity >= strlen(piece)).
 * Returns the byte count, or -1 when a char is outside the map (such a piece
 * can never come out of BPE; decoding it follows the JS library: byte 0). */
static int piece_to_bytes(const char *piece, uint8_t *out, bool *unmapped)
{
    const unsigned char *p = (const unsigned char *)piece;
    int n = 0;
    *unmapped = false;
    while (*p) {
        uint32_t c = utf8_next(&p);
        if (c < 324 && u2b[c] >= 0) out[n++] = (uint8_t)u2b[c];
        else { out[n++] = 0; *unmapped = true; }
    }
    return n;
}

/* ---- vocabulary map (raw bytes -> id) ---- */

static const uint8_t *id_bytes(const struct tokenizer *t, int32_t id, size_t *n)
{
    *n = t->bytes_off[id + 1] - t->bytes_off[id];
    return t->bytes + t->bytes_off[id];
}

/* Does slot v hold the n bytes s? */
static inline bool vslot_eq(const struct tokenizer *t, const struct tok_vslot *v, const uint8_t *s,
                            size_t n)
{
    if (n <= TOK_VS_INLINE) return v->len == n && !memcmp(v->b, s, n);
    if (v->len != 0xFF || memcmp(v->b, s, 8)) return false;
    size_t m;
    const uint8_t *b = id_bytes(t, v->id1 - 1, &m);
    return m == n && !memcmp(b, s, n);
}

static int32_t vocab_find_h(const struct tokenizer *t, const uint8_t *s, size_t n, uint64_t h)
{
    uint32_t i = (uint32_t)h & t->vmap_mask;
    for (;;) {
        const struct tok_vslot *v = &t->vmap[i];
        if (!v->id1) return -1;
        if (vslot_eq(t, v, s, n)) return v->id1 - 1;
        i = (i + 1) & t->vmap_mask;
    }
}

int32_t tok_vocab_find(const struct tokenizer *t, const uint8_t *s, size_t n)
{
    return vocab_find_h(t, s, n, tok_hash(s, n));
}

/* Insert (or overwrite the entry with the same bytes). */
static void vmap_put(struct tokenizer *t, const uint8_t *s, size_t n, int32_t id)
{
    uint32_t i = (uint32_t)tok_hash(s, n) & t->vmap_mask;
    for (;;) {
        struct tok_vslot *v = &t->vmap[i];
        if (!v->id1) {
            v->id1 = id + 1;
            v->len = n <= TOK_VS_INLINE ? (uint8_t)n : 0xFF;
            memcpy(v->b, s, n <= TOK_VS_INLINE ? n : 8);
            return;
        }
        if (vslot_eq(t, v, s, n)) { v->id1 = id + 1; return; }
        i = (i + 1) & t->vmap_mask;
    }
}

static inline uint32_t mhash(uint64_t key, uint32_t mask)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & mask;
}

uint32_t tok_merge_find(const struct tokenizer *t, int32_t a, int32_t b, int32_t *res)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = mhash(key, t->mmask);
    uint64_t nk = ~key; /* stored inverted: 0 = empty, and ids < 2^24 never give ~0 */
    for (;;) {
        const struct tok_mslot *m = &t->mmap[i];
        if (m->nkey == nk) { *res = m->res; return m->rank; }
        if (!m->nkey) return UINT32_MAX;
        i = (i + 1) & t->mmask;
    }
}

static void merge_put(struct tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t res)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = mhash(key, t->mmask);
    while (t->mmap[i].nkey && t->mmap[i].nkey != ~key) i = (i + 1) & t->mmask;
    /* A repeated pair keeps the later rank, as the JS Map built from the list does. */
    t->mmap[i] = (struct tok_mslot){~key, rank, res};
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 1024;
    while (p < n) p <<= 1;
    return p;
}

/* ---- per-thread scratch ---- */

static void tls_free(struct tok_tls *s)
{
    if (!s) return;
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit);
    free(s->cache);
    free(s);
}

/* Thread exit: unlink this thread's scratch from its tokenizer and free it. */
static void tls_destructor(void *p)
{
    struct tok_tls *s = p;
    struct tokenizer *t = (struct tokenizer *)s->t;
    pthread_mutex_lock(&t->tls_mu);
    for (struct tok_tls **pp = &t->tls_list; *pp; pp = &(*pp)->next)
        if (*pp == s) { *pp = s->next; break; }
    pthread_mutex_unlock(&t->tls_mu);
    tls_free(s);
}

struct tok_tls *tok_tls_get(const struct tokenizer *tc)
{
    struct tokenizer *t = (struct tokenizer *)tc; /* only the mutex-guarded list changes */
    struct tok_tls *s = pthread_getspecific(t->key);
    if (s) return s;
    s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->md = pcre2_match_data_create(4, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    /* Long whitespace runs backtrack through (?!\S): give JIT room. */
    s->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    s->cache = aligned_alloc(64, (size_t)TOK_CW_SETS * 2 * sizeof *s->cache);
    if (s->cache) memset(s->cache, 0, (size_t)TOK_CW_SETS * 2 * sizeof *s->cache);
    if (!s->md || !s->mctx || !s->jit || !s->cache) { tls_free(s); return NULL; }
    pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
    if (pthread_setspecific(t->key, s)) { tls_free(s); return NULL; }
    pthread_mutex_lock(&t->tls_mu);
    s->next = t->tls_list;
    t->tls_list = s;
    pthread_mutex_unlock(&t->tls_mu);
    return s;
}

/* ---- JSON sections ---- */

static bool json_true(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const char *json_type(const cJSON *o)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

static bool str_nonempty(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0];
}

static int cmp_added_len(const void *a, const void *b)
{
    const struct tok_added *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return 0;
}

/* Split "a b" (first space) or take ["a", "b"]. */
static int merge_parts(const cJSON *m, const char **a, size_t *na, const char **b)
{
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp) return -1;
        *a = s;
        *na = (size_t)(sp - s);
        *b = sp + 1;
        return 0;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(x) || !cJSON_IsString(y)) return -1;
        *a = x->valuestring;
        *na = strlen(x->valuestring);
        *b = y->valuestring;
        return 0;
    }
    return -1;
}

static int load_model(struct tokenizer *t, const cJSON *m, char *err, size_t errlen)
{
    const char *ty = json_type(m);
    if (!m || (ty && strcmp(ty, "BPE"))) {
        set_err(err, errlen, "tokenizer.json: unsupported model type '%s' (only BPE)",
                ty ? ty : "missing");
        return -1;
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (dropout && !cJSON_IsNull(dropout)) {
        set_err(err, errlen, "tokenizer.json: unsupported BPE dropout");
        return -1;
    }
    if (json_true(m, "byte_fallback")) {
        set_err(err, errlen, "tokenizer.json: unsupported BPE byte_fallback");
        return -1;
    }
    if (str_nonempty(m, "continuing_subword_prefix")) {
        set_err(err, errlen, "tokenizer.json: unsupported BPE continuing_subword_prefix");
        return -1;
    }
    if (str_nonempty(m, "end_of_word_suffix")) {
        set_err(err, errlen, "tokenizer.json: unsupported BPE end_of_word_suffix");
        return -1;
    }
    t->ignore_merges = json_true(m, "ignore_merges");
    return 0;
}

/* The slow path's vocab/merges (documents tok_json_split rejects): strings
 * point into the cJSON tree, which outlives their use. */
static int big_from_cjson(const cJSON *m, struct tok_json_big *b)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    const cJSON *e;
    if (!cJSON_IsObject(vocab)) return 0; /* b->vocab stays NULL: reported by the caller */
    size_t nv = (size_t)cJSON_GetArraySize(vocab), nm = (size_t)cJSON_GetArraySize(merges), mb = 0;
    b->vocab = calloc(nv + 1, sizeof *b->vocab);
    b->merges = calloc(nm + 1, sizeof *b->merges);
    cJSON_ArrayForEach(e, merges) if (cJSON_IsString(e)) mb += strlen(e->valuestring) + 1;
    b->mblob = malloc(mb + 1);
    if (!b->vocab || !b->merges || !b->mblob) return -1;
    cJSON_ArrayForEach(e, vocab) {
        /* a bad id becomes -1, reported by the caller's checks */
        b->vocab[b->nvocab].s = e->string;
        b->vocab[b->nvocab].len = strlen(e->string);
        b->vocab[b->nvocab].id = (cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble <= 16777216.0)
                                     ? e->valueint : -1;
        b->nvocab++;
    }
    char *w = b->mblob;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *bb;
        size_t na;
        if (merge_parts(e, &a, &na, &bb)) { b->merges[b->nmerges].a = NULL; b->nmerges++; continue; }
        memcpy(w, a, na);
        w[na] = 0;
        b->merges[b->nmerges].a = w;
        b->merges[b->nmerges].b = bb;
        w += na + 1;
        b->nmerges++;
    }
    return 0;
}

/* ---- tok_load_json ---- */

struct tokenizer *tok_load_json(const char *json, size_t len, char *err, size_t errlen)
{
    pthread_once(&u2b_once, u2b_build);
    struct tokenizer *t = calloc(1, sizeof *t);
    cJSON *root = NULL;
    uint8_t *scratch = NULL;
    struct tok_json_big big = {0};
    char *rest = NULL;
    size_t rest_len = 0;
    if (!t) { set_err(err, errlen, "out of memory"); return NULL; }
    t->unk_id = -1;
    pthread_mutex_init(&t->tls_mu, NULL);
    if (pthread_key_create(&t->key, tls_destructor)) {
        set_err(err, errlen, "pthread_key_create failed");
        pthread_mutex_destroy(&t->tls_mu);
        free(t);
        return NULL;
    }
    /* vocab and merges by the fast path, the rest by cJSON; a document the
     * fast path rejects goes to cJSON whole, for its error messages */
    if (tok_json_split(json, len, &big, &rest, &rest_len) == 0) {
        root = cJSON_ParseWithLength(rest, rest_len);
    } else {
        tok_json_big_fini(&big);
        root = cJSON_ParseWithLength(json, len);
        if (root && big_from_cjson(cJSON_GetObjectItemCaseSensitive(root, "model"), &big)) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (!root || !cJSON_IsObject(root)) {
        set_err(err, errlen, "tokenizer.json: invalid JSON");
        goto fail;
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const char *ty = json_type(norm);
        set_err(err, errlen, "tokenizer.json: unsupported normalizer '%s' (only null)",
                ty ? ty : "?");
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (load_model(t, model, err, errlen)) goto fail;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");

    /* Pass 1: sizes. */
    int64_t max_id = -1;
    size_t blob = 0;
    size_t nv = big.nvocab;
    const cJSON *e;
    if (!big.vocab) { set_err(err, errlen, "tokenizer.json: model.vocab missing"); goto fail; }
    for (size_t k = 0; k < nv; k++) {
        if (big.vocab[k].id < 0) {
            set_err(err, errlen, "tokenizer.json: bad vocab id for '%s'", big.vocab[k].s);
            goto fail;
        }
        if (!utf8_ok(big.vocab[k].s) || strlen(big.vocab[k].s) != big.vocab[k].len) {
            set_err(err, errlen, "tokenizer.json: vocab entry %zu is not valid UTF-8", k);
            goto fail;
        }
        if (big.vocab[k].id > max_id) max_id = big.vocab[k].id;
        blob += big.vocab[k].len + 1;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777216.0 ||
            !cJSON_IsString(c) || !c->valuestring[0] || !utf8_ok(c->valuestring)) {
            set_err(err, errlen, "tokenizer.json: bad added_tokens entry");
            goto fail;
        }
        if (id->valueint > max_id) max_id = id->valueint;
        t->n_added++;
    }
    t->n_ids = (int32_t)(max_id + 1);
    size_t n = (size_t)t->n_ids;
    t->piece = calloc(n, sizeof *t->piece);
    t->flags = calloc(n, 1);
    t->bytes_off = calloc(n + 1, sizeof *t->bytes_off);
    t->piece_blob = malloc(blob + 1);
    t->bytes = malloc(blob + 1); /* raw bytes never outnumber the UTF-8 chars */
    t->added = calloc((size_t)t->n_added + 1, sizeof *t->added);
    t->vmap_mask = pow2_at_least((uint64_t)nv * 2 + (uint64_t)t->n_added * 2) - 1;
    t->vmap = calloc((size_t)t->vmap_mask + 1, sizeof *t->vmap);
    if (!t->piece || !t->flags || !t->bytes_off || !t->piece_blob || !t->bytes || !t->added ||
        !t->vmap) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }

    /* Pass 2: vocab strings, then added tokens overriding the id's piece
     * (the JS library sets vocab[id] = content). */
    size_t bo = 0;
    for (size_t k = 0; k < nv; k++) {
        size_t l = big.vocab[k].len;
        int32_t id = big.vocab[k].id;
        if (t->piece[id]) {
            set_err(err, errlen, "tokenizer.json: vocab id %d used twice", id);
            goto fail;
        }
        memcpy(t->piece_blob + bo, big.vocab[k].s, l + 1);
        t->piece[id] = t->piece_blob + bo;
        bo += l + 1;
    }
    int ai = 0;
    cJSON_ArrayForEach(e, added) {
        struct tok_added *a = &t->added[ai++];
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        a->id = cJSON_GetObjectItemCaseSensitive(e, "id")->valueint;
        a->len = strlen(c->valuestring);
        a->content = strdup(c->valuestring);
        if (!a->content) { set_err(err, errlen, "out of memory"); goto fail; }
        a->special = json_true(e, "special");
        a->lstrip = json_true(e, "lstrip");
        a->rstrip = json_true(e, "rstrip");
        a->single_word = json_true(e, "single_word");
        const cJSON *nz = cJSON_GetObjectItemCaseSensitive(e, "normalized");
        a->normalized = nz ? cJSON_IsTrue(nz) : !a->special;
        t->piece[a->id] = a->content;
        t->flags[a->id] |= TOK_F_ADDED | (a->special ? TOK_F_SPECIAL : 0);
        t->added_first[(uint8_t)a->content[0]] = 1;
    }
    /* Raw bytes per id: byte-level decode for vocab pieces, content as-is
     * for added tokens (the decoder emits those verbatim). */
    uint32_t off = 0;
    for (size_t id = 0; id < n; id++) {
        t->bytes_off[id] = off;
        if (!t->piece[id]) continue;
        if (t->flags[id] & TOK_F_ADDED) {
            size_t l = strlen(t->piece[id]);
            /* added content may be longer than the blob budget: grow */
            uint8_t *nb = realloc(t->bytes, blob + 1 + l);
            if (!nb) { set_err(err, errlen, "out of memory"); goto fail; }
            t->bytes = nb;
            blob += l;
            memcpy(t->bytes + off, t->piece[id], l);
            off += (uint32_t)l;
        } else {
            bool unmapped;
            off += (uint32_t)piece_to_bytes(t->piece[id], t->bytes + off, &unmapped);
        }
    }
    t->bytes_off[n] = off;
    for (size_t id = 0; id < n; id++) {
        if (!t->piece[id] || (t->flags[id] & TOK_F_ADDED)) continue;
        size_t l;
        const uint8_t *b = id_bytes(t, (int32_t)id, &l);
        vmap_put(t, b, l, (int32_t)id);
    }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_id[b] = tok_vocab_find(t, &c, 1);
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) t->unk_id = tok_token_to_id(t, unk->valuestring);

    /* Merges -> (id_a, id_b) -> (rank, id_ab). */
    size_t nm = big.nmerges;
    t->mmask = pow2_at_least((uint64_t)nm * 2 + 2) - 1;
    size_t ms = (size_t)t->mmask + 1;
    t->mmap = calloc(ms, sizeof *t->mmap);
    /* Batches of MB merges in three passes (decode + hash + prefetch the
     * vocab slots, look up + prefetch the merge slot, insert in rank order):
     * the lookups are cache misses into multi-MB tables, so overlapping them
     * is most of the load time saved. */
#define MB 16
#define MBUF 2048
    scratch = malloc((size_t)MB * MBUF);
    if (!t->mmap || !scratch) { set_err(err, errlen, "out of memory"); goto fail; }
    struct { uint64_t ha, hb, hab; int la, lb; int32_t ia, ib, iab; } mt[MB];
    for (size_t k0 = 0; k0 < nm; k0 += MB) {
        size_t kb = nm - k0 < MB ? nm - k0 : MB;
        for (size_t j = 0; j < kb; j++) {
            const char *a = big.merges[k0 + j].a, *b = big.merges[k0 + j].b;
            if (!a || !utf8_ok(a) || !utf8_ok(b)) {
                set_err(err, errlen, "tokenizer.json: merge %zu is not \"a b\" or [a, b]", k0 + j);
                goto fail;
            }
            if (strlen(a) + strlen(b) > MBUF) {
                set_err(err, errlen, "tokenizer.json: merge %zu longer than %d bytes", k0 + j, MBUF);
                goto fail;
            }
            uint8_t *buf = scratch + j * MBUF;
            bool u1, u2;
            mt[j].la = piece_to_bytes(a, buf, &u1);
            mt[j].lb = piece_to_bytes(b, buf + mt[j].la, &u2);
            if (u1 || u2) mt[j].la = -1; /* never in the vocab */
            if (mt[j].la < 0) continue;
            mt[j].ha = tok_hash(buf, (size_t)mt[j].la);
            mt[j].hb = tok_hash(buf + mt[j].la, (size_t)mt[j].lb);
            mt[j].hab = tok_hash(buf, (size_t)(mt[j].la + mt[j].lb));
            __builtin_prefetch(&t->vmap[mt[j].ha & t->vmap_mask]);
            __builtin_prefetch(&t->vmap[mt[j].hb & t->vmap_mask]);
            __builtin_prefetch(&t->vmap[mt[j].hab & t->vmap_mask]);
        }
        for (size_t j = 0; j < kb; j++) {
            uint8_t *buf = scratch + j * MBUF;
            int la = mt[j].la, lb = mt[j].lb;
            mt[j].ia = la < 0 ? -1 : vocab_find_h(t, buf, (size_t)la, mt[j].ha);
            mt[j].ib = la < 0 ? -1 : vocab_find_h(t, buf + la, (size_t)lb, mt[j].hb);
            mt[j].iab = la < 0 ? -1 : vocab_find_h(t, buf, (size_t)(la + lb), mt[j].hab);
            if (mt[j].ia < 0 || mt[j].ib < 0 || mt[j].iab < 0) {
                set_err(err, errlen, "tokenizer.json: merge %zu ('%s' '%s') uses a token not in "
                                     "the vocabulary", k0 + j, big.merges[k0 + j].a, big.merges[k0 + j].b);
                goto fail;
            }
            uint64_t key = ((uint64_t)(uint32_t)mt[j].ia << 32) | (uint32_t)mt[j].ib;
            __builtin_prefetch(&t->mmap[mhash(key, t->mmask)]);
        }
        for (size_t j = 0; j < kb; j++) merge_put(t, mt[j].ia, mt[j].ib, (uint32_t)(k0 + j), mt[j].iab);
    }
#undef MB
#undef MBUF
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added_len);

    if (tok_load_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err, errlen)) goto fail;
    if (tok_load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), err, errlen)) goto fail;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *dty = json_type(dec);
    if (!dty || strcmp(dty, "ByteLevel")) {
        set_err(err, errlen, "tokenizer.json: unsupported decoder '%s' (only ByteLevel)",
                dty ? dty : "null");
        goto fail;
    }
    free(scratch);
    cJSON_Delete(root);
    free(rest);
    tok_json_big_fini(&big);
    return t;
fail:
    free(scratch);
    cJSON_Delete(root);
    free(rest);
    tok_json_big_fini(&big);
    tok_free(t);
    return NULL;
}

struct tokenizer *tok_load(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0) {
        set_err(err, errlen, "%s: not a regular non-empty file", path);
        close(fd);
        return NULL;
    }
    /* mmap: the 4-7 MB file is scanned once, no copy */
    size_t len = (size_t)st.st_size;
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        set_err(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return NULL;
    }
    char e2[400] = "";
    struct tokenizer *t = tok_load_json(m, len, e2, sizeof e2);
    munmap(m, len);
    if (!t) set_err(err, errlen, "%s: %s", path, e2);
    return t;
}

void tok_free(struct tokenizer *t)
{
    if (!t) return;
    pthread_key_delete(t->key);
    for (struct tok_tls *s = t->tls_list, *nx; s; s = nx) {
        nx = s->next;
        tls_free(s);
    }
    pthread_mutex_destroy(&t->tls_mu);
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
    for (int i = 0; t->added && i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->piece);
    free(t->piece_blob);
    free(t->bytes);
    free(t->bytes_off);
    free(t->flags);
    free(t->vmap);
    free(t->mmap);
    free(t->post_pre);
    free(t->post_suf);
    free(t);
}

/* ---- accessors ---- */

int tok_vocab_size(const struct tokenizer *t) { return t->n_ids; }

const char *tok_id_to_piece(const struct tokenizer *t, int32_t id)
{
    return (id >= 0 && id < t->n_ids) ? t->piece[id] : NULL;
}

bool tok_is_special(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && (t->flags[id] & TOK_F_SPECIAL);
}

bool tok_is_added(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && (t->flags[id] & TOK_F_ADDED);
}

int32_t tok_token_to_id(const struct tokenizer *t, const char *piece)
{
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, piece)) return t->added[i].id;
    if (!utf8_ok(piece)) return -1;
    size_t l = strlen(piece);
    uint8_t stackbuf[256];
    uint8_t *tmp = l < sizeof stackbuf ? stackbuf : malloc(l + 1);
    if (!tmp) return -1;
    bool unm;
    int bl = piece_to_bytes(piece, tmp, &unm);
    int32_t id = unm ? -1 : tok_vocab_find(t, tmp, (size_t)bl);
    if (tmp != stackbuf) free(tmp);
    if (id >= 0 && strcmp(t->piece[id], piece)) id = -1;
    return id;
}
