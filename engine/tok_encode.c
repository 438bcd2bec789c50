/* engine/tok_encode.c: text -> ids (added-token split, pre-tokenizers, BPE).
 *
 * Any thread, concurrently: the tokenizer is read-only and the only mutable
 * state is the calling thread's scratch (tok_tls_get: PCRE2 match data, JIT
 * stack, word cache).
 *
 * Order of operations, as in @huggingface/tokenizers' Tokenizer.encode_text:
 *  1. invalid UTF-8 -> U+FFFD (WHATWG TextDecoder; the JS reference only ever
 *     sees such strings),
 *  2. split on added tokens: at each position the longest added token wins;
 *     lstrip/rstrip trim (JS) whitespace from the neighbouring sections,
 *  3. each text section goes through the pre-tokenizer chain (Split /
 *     ByteLevel), applied depth-first so no intermediate lists are built,
 *  4. each pre-token is BPE'd on raw bytes (ByteLevel's byte->unicode alias is a
 *     bijection, so working on bytes gives the same merges),
 *  5. TemplateProcessing ids around the result when add_special.
 *
 * BPE: lowest merge rank first, leftmost on ties (the JS priority queue uses
 * rank + position/len). Short words use a tiktoken-style linear scan, long
 * ones (whitespace runs, long tokens) a heap over a linked list, so the cost
 * stays O(n log n). A per-thread 2-way cache holds short words' ids.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/tok_internal.h"

struct enc {
    const struct tokenizer *t;
    struct tok_tls *tls;
    int32_t *ids; /* owned until returned */
    size_t n, cap;
    int err; /* nonzero: out of memory or regex failure */
};

static void push_id(struct enc *e, int32_t id)
{
    if (e->n == e->cap) {
        size_t c = e->cap ? e->cap * 2 : 256;
        int32_t *p = realloc(e->ids, c * sizeof *p);
        if (!p) { e->err = 1; return; }
        e->ids = p;
        e->cap = c;
    }
    e->ids[e->n++] = id;
}

/* ---- UTF-8 helpers ---- */

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        uint8_t b = s[i];
        size_t k;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) k = 1;
        else if (b >= 0xE0 && b <= 0xEF) { k = 2; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
        else if (b >= 0xF0 && b <= 0xF4) { k = 3; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
        else return false;
        if (i + k >= n) return false;
        if (s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xBF) return false;
        i += k + 1;
    }
    return true;
}

static uint32_t dec_at(const uint8_t *s, size_t *len)
{
    uint32_t c = s[0];
    if (c < 0x80) { *len = 1; return c; }
    if (c < 0xE0) { *len = 2; return ((c & 0x1F) << 6) | (s[1] & 0x3F); }
    if (c < 0xF0) { *len = 3; return ((c & 0xF) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F); }
    *len = 4;
    return ((c & 7) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* JS String.prototype.trim's whitespace (WhiteSpace + LineTerminator). */
static bool js_space(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static size_t trim_start(const uint8_t *s, size_t n)
{
    size_t i = 0, l;
    while (i < n && js_space(dec_at(s + i, &l))) i += l;
    return i;
}

static size_t trim_end(const uint8_t *s, size_t n)
{
    while (n > 0) {
        size_t st = n - 1, l;
        while (st > 0 && (s[st] & 0xC0) == 0x80) st--;
        if (!js_space(dec_at(s + st, &l))) break;
        n = st;
    }
    return n;
}

/* ---- BPE ---- */

/* Heap entries: rank << 32 | position of the pair's left symbol, so one
 * integer compare orders by rank, then leftmost. */
static void hsift_down(uint64_t *h, size_t n, size_t i)
{
    uint64_t v = h[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = v;
        if (l < n && h[l] < best) { m = l; best = h[l]; }
        if (l + 1 < n && h[l + 1] < best) m = l + 1;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = v;
}

static void hpush(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t hpop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0];
    h[0] = h[--(*n)];
    if (*n) hsift_down(h, *n, 0);
    return top;
}

static void emit_sym(struct enc *e, int32_t id)
{
    if (id >= 0) push_id(e, id);
    else if (e->t->unk_id >= 0) push_id(e, e->t->unk_id);
    /* else: dropped, as the reference does for out-of-vocabulary symbols */
}

/* Linear scan: symbols id[0..m), rank[i] of pair (i, i+1). */
static size_t bpe_linear(const struct tokenizer *t, int32_t *id, uint32_t *rank, int32_t *res, size_t m)
{
    for (size_t i = 0; i + 1 < m; i++) rank[i] = tok_merge_find(t, id[i], id[i + 1], &res[i]);
    while (m > 1) {
        uint32_t best = UINT32_MAX;
        size_t k = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (rank[i] < best) { best = rank[i]; k = i; }
        if (best == UINT32_MAX) break;
        id[k] = res[k];
        memmove(id + k + 1, id + k + 2, (m - k - 2) * sizeof *id);
        memmove(rank + k + 1, rank + k + 2, (m - k - 2) * sizeof *rank);
        memmove(res + k + 1, res + k + 2, (m - k - 2) * sizeof *res);
        m--;
        if (k > 0) rank[k - 1] = tok_merge_find(t, id[k - 1], id[k], &res[k - 1]);
        if (k + 1 < m) rank[k] = tok_merge_find(t, id[k], id[k + 1], &res[k]);
    }
    return m;
}

/* Heap over a linked list for long words (O(n log n)). An entry is stale
 * when its left symbol died or the pair now there has another rank: ranks
 * are unique per (a, b), so an equal rank means the same pair. Returns 0 or
 * -1 (out of memory, or a word of 4 GiB). */
static int bpe_heap(struct enc *e, const uint8_t *s, size_t n)
{
    const struct tokenizer *t = e->t;
    if (n >= UINT32_MAX) return -1;
    int32_t *id = malloc(n * sizeof *id);
    int32_t *nx = malloc(n * sizeof *nx);
    int32_t *pv = malloc(n * sizeof *pv);
    size_t hcap = 2 * n + 4, hn = 0;
    uint64_t *h = malloc(hcap * sizeof *h);
    int rc = -1;
    if (!id || !nx || !pv || !h) goto out;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_id[s[i]];
        nx[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        pv[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r;
        uint32_t rk = tok_merge_find(t, id[i], id[i + 1], &r);
        if (rk != UINT32_MAX) h[hn++] = (uint64_t)rk << 32 | i;
    }
    for (size_t k = hn / 2; k-- > 0;) hsift_down(h, hn, k); /* heapify */
    while (hn) {
        uint64_t top = hpop(h, &hn);
        int32_t i = (int32_t)(uint32_t)top, j = nx[i], r;
        if (pv[i] == -2 || j < 0) continue; /* i merged into its left, or last */
        if (tok_merge_find(t, id[i], id[j], &r) != (uint32_t)(top >> 32)) continue;
        id[i] = r;
        nx[i] = nx[j];
        if (nx[j] >= 0) pv[nx[j]] = i;
        pv[j] = -2;
        if (hn + 2 > hcap) {
            hcap *= 2;
            uint64_t *nh = realloc(h, hcap * sizeof *h);
            if (!nh) goto out;
            h = nh;
        }
        int32_t rr;
        if (pv[i] >= 0) {
            uint32_t rk = tok_merge_find(t, id[pv[i]], id[i], &rr);
            if (rk != UINT32_MAX) hpush(h, &hn, (uint64_t)rk << 32 | (uint32_t)pv[i]);
        }
        if (nx[i] >= 0) {
            uint32_t rk = tok_merge_find(t, id[i], id[nx[i]], &rr);
            if (rk != UINT32_MAX) hpush(h, &hn, (uint64_t)rk << 32 | (uint32_t)i);
        }
    }
    for (int32_t i = 0; i >= 0; i = nx[i]) emit_sym(e, id[i]);
    rc = 0;
out:
    free(id);
    free(nx);
    free(pv);
    free(h);
    return rc;
}

#define BPE_LINEAR_MAX 96

static void bpe_word(struct enc *e, const uint8_t *s, size_t n)
{
    const struct tokenizer *t = e->t;
    if (n == 0) return;
    if (n == 1) { emit_sym(e, t->byte_id[s[0]]); return; }
    if (t->ignore_merges) {
        int32_t id = tok_vocab_find(t, s, n);
        if (id >= 0) { push_id(e, id); return; }
    }
    struct tok_cw *set = NULL;
    if (n <= TOK_CW_KEY) {
        set = &e->tls->cache[2 * (tok_hash(s, n) & (TOK_CW_SETS - 1))];
        for (int w = 0; w < 2; w++) {
            struct tok_cw *c = &set[w];
            if (c->klen == n && !memcmp(c->key, s, n)) {
                for (int i = 0; i < c->nids; i++) push_id(e, c->ids[i]);
                if (w) { /* keep the most recent in way 0 */
                    struct tok_cw tmp = set[0];
                    set[0] = set[1];
                    set[1] = tmp;
                }
                return;
            }
        }
    }
    if (n > BPE_LINEAR_MAX) {
        if (bpe_heap(e, s, n)) e->err = 1;
        return;
    }
    int32_t id[BPE_LINEAR_MAX], res[BPE_LINEAR_MAX];
    uint32_t rank[BPE_LINEAR_MAX];
    for (size_t i = 0; i < n; i++) id[i] = t->byte_id[s[i]];
    size_t m = bpe_linear(t, id, rank, res, n);
    size_t before = e->n;
    bool all_known = true;
    for (size_t i = 0; i < m; i++) {
        if (id[i] < 0) all_known = false;
        emit_sym(e, id[i]);
    }
    if (set && all_known && m <= TOK_CW_IDS && !e->err && e->n - before == m) {
        set[1] = set[0]; /* evict the least recent */
        set[0].klen = (uint8_t)n;
        set[0].nids = (uint8_t)m;
        memcpy(set[0].key, s, n);
        memcpy(set[0].ids, id, m * sizeof *id);
    }
}

/* ---- pre-tokenizers ---- */

static void pre_run(struct enc *e, int stage, const uint8_t *s, size_t n);

/* Next match of re in s[0..n) at or after *pos (JS global-match stepping:
 * an empty match advances one code point). Returns 1 with [*ms, *me), 0 at
 * the end, -1 on a regex engine error. */
static int next_match(struct enc *e, const pcre2_code *re, const uint8_t *s, size_t n, size_t *pos,
                      size_t *ms, size_t *me)
{
    if (*pos > n) return 0;
    int rc = pcre2_match(re, s, n, *pos, PCRE2_NO_UTF_CHECK, e->tls->md, e->tls->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return -1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->tls->md);
    *ms = ov[0];
    *me = ov[1];
    if (*me > *ms) *pos = *me;
    else if (*me < n) { size_t l; dec_at(s + *me, &l); *pos = *me + l; }
    else *pos = n + 1;
    return 1;
}

struct seg {
    size_t a, b;
    bool delim;
};

/* Split with HF (Rust) behavior semantics; the invert + Removed case (the JS
 * reference's only invert path, used by the real files) streams matches. */
static void pre_split(struct enc *e, int stage, const struct tok_pre *p, const uint8_t *s, size_t n)
{
    size_t pos = 0, ms, me;
    int r;
    if (p->invert && p->behavior == TOK_SPLIT_REMOVED) {
        while ((r = next_match(e, p->re, s, n, &pos, &ms, &me)) > 0)
            if (me > ms) pre_run(e, stage + 1, s + ms, me - ms);
        if (r < 0) e->err = 1;
        return;
    }
    /* General path: collect (segment, is_delimiter), apply the behavior. */
    size_t cap = 16, ns = 0, prev = 0;
    struct seg *sg = malloc(cap * sizeof *sg);
    if (!sg) { e->err = 1; return; }
#define ADD_SEG(x, y, d)                                                    \
    do {                                                                    \
        if (ns + 1 > cap) {                                                 \
            cap *= 2;                                                       \
            struct seg *q = realloc(sg, cap * sizeof *sg);                  \
            if (!q) { e->err = 1; free(sg); return; }                       \
            sg = q;                                                         \
        }                                                                   \
        sg[ns++] = (struct seg){(x), (y), (d)};                             \
    } while (0)
    while ((r = next_match(e, p->re, s, n, &pos, &ms, &me)) > 0) {
        if (prev != ms) ADD_SEG(prev, ms, p->invert);
        ADD_SEG(ms, me, !p->invert);
        prev = me;
    }
    if (r < 0) { e->err = 1; free(sg); return; }
    if (prev != n) ADD_SEG(prev, n, p->invert);
#undef ADD_SEG
    size_t no = 0;
    bool prev_match = false;
    switch (p->behavior) {
    case TOK_SPLIT_ISOLATED: no = ns; break;
    case TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < ns; i++)
            if (!sg[i].delim) sg[no++] = sg[i];
        break;
    case TOK_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < ns; i++) {
            if (sg[i].delim && !prev_match && no > 0) sg[no - 1].b = sg[i].b;
            else sg[no++] = sg[i];
            prev_match = sg[i].delim;
        }
        break;
    case TOK_SPLIT_MERGED_NEXT: {
        /* right to left, then the survivors are in reverse order */
        size_t w = ns;
        for (size_t i = ns; i-- > 0;) {
            bool d = sg[i].delim;
            if (d && !prev_match && w < ns) sg[w].a = sg[i].a;
            else sg[--w] = sg[i];
            prev_match = d;
        }
        memmove(sg, sg + w, (ns - w) * sizeof *sg);
        no = ns - w;
        break;
    }
    case TOK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < ns; i++) {
            if (sg[i].delim == prev_match && no > 0) sg[no - 1].b = sg[i].b;
            else sg[no++] = sg[i];
            prev_match = sg[i].delim;
        }
        break;
    }
    for (size_t i = 0; i < no && !e->err; i++)
        if (sg[i].b > sg[i].a) pre_run(e, stage + 1, s + sg[i].a, sg[i].b - sg[i].a);
    free(sg);
}

static void pre_bytelevel(struct enc *e, int stage, const struct tok_pre *p, const uint8_t *s, size_t n)
{
    uint8_t *tmp = NULL;
    if (p->add_prefix_space && s[0] != ' ') {
        tmp = malloc(n + 1);
        if (!tmp) { e->err = 1; return; }
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        s = tmp;
        n++;
    }
    if (!p->re) pre_run(e, stage + 1, s, n);
    else {
        size_t pos = 0, ms, me;
        int r;
        while ((r = next_match(e, p->re, s, n, &pos, &ms, &me)) > 0 && !e->err)
            if (me > ms) pre_run(e, stage + 1, s + ms, me - ms);
        if (r < 0) e->err = 1;
    }
    free(tmp);
}

static void pre_run(struct enc *e, int stage, const uint8_t *s, size_t n)
{
    if (n == 0 || e->err) return;
    if (stage == e->t->n_pre) { bpe_word(e, s, n); return; }
    const struct tok_pre *p = &e->t->pre[stage];
    if (p->kind == TOK_PRE_SPLIT) pre_split(e, stage, p, s, n);
    else pre_bytelevel(e, stage, p, s, n);
}

/* ---- added tokens ---- */

struct section {
    size_t a, b;  /* text span (after trimming) */
    int32_t id;   /* added token id, or -1 for text */
};

/* Longest added token matching at s[i..n), or NULL. */
static const struct tok_added *added_at(const struct tokenizer *t, const uint8_t *s, size_t n, size_t i)
{
    for (int k = 0; k < t->n_added; k++) { /* sorted longest first */
        const struct tok_added *a = &t->added[k];
        if (a->len <= n - i && !memcmp(s + i, a->content, a->len)) return a;
    }
    return NULL;
}

static bool word_byte(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int32_t added_exact(const struct tokenizer *t, const uint8_t *s, size_t n)
{
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].len == n && !memcmp(t->added[k].content, s, n)) return t->added[k].id;
    return -1;
}

static void encode_text(struct enc *e, const uint8_t *s, size_t n)
{
    const struct tokenizer *t = e->t;
    if (t->n_added == 0) { pre_run(e, 0, s, n); return; }
    /* sections: text and added tokens alternate; built first so lstrip/rstrip
     * can trim both neighbours */
    size_t cap = 16, ns = 0, start = 0;
    struct section *sc = malloc(cap * sizeof *sc);
    if (!sc) { e->err = 1; return; }
    for (size_t i = 0; i < n;) {
        const struct tok_added *a = t->added_first[s[i]] ? added_at(t, s, n, i) : NULL;
        /* single_word (HF Rust semantics; the JS reference ignores it): no
         * word character may touch the match */
        if (a && a->single_word &&
            ((i > 0 && word_byte(s[i - 1])) || (i + a->len < n && word_byte(s[i + a->len]))))
            a = NULL;
        if (!a) { i++; continue; }
        if (ns + 2 > cap) {
            cap *= 2;
            struct section *q = realloc(sc, cap * sizeof *sc);
            if (!q) { e->err = 1; free(sc); return; }
            sc = q;
        }
        if (i > start) sc[ns++] = (struct section){start, i, -1};
        sc[ns++] = (struct section){i, i + a->len, a->id};
        i += a->len;
        start = i;
    }
    if (start < n) {
        struct section *q = ns + 1 > cap ? realloc(sc, (cap + 1) * sizeof *sc) : sc;
        if (!q) { e->err = 1; free(sc); return; }
        sc = q;
        sc[ns++] = (struct section){start, n, -1};
    }
    for (size_t k = 0; k < ns; k++) {
        if (sc[k].id < 0) continue;
        const struct tok_added *a = NULL;
        for (int j = 0; j < t->n_added; j++)
            if (t->added[j].id == sc[k].id && t->added[j].len == sc[k].b - sc[k].a) a = &t->added[j];
        if (!a) continue;
        if (a->lstrip && k > 0) sc[k - 1].b = sc[k - 1].a + trim_end(s + sc[k - 1].a, sc[k - 1].b - sc[k - 1].a);
        if (a->rstrip && k + 1 < ns) sc[k + 1].a += trim_start(s + sc[k + 1].a, sc[k + 1].b - sc[k + 1].a);
    }
    for (size_t k = 0; k < ns && !e->err; k++) {
        size_t a = sc[k].a, b = sc[k].b;
        if (b <= a) continue;
        int32_t id = added_exact(t, s + a, b - a);
        if (id >= 0) push_id(e, id);
        else pre_run(e, 0, s + a, b - a);
    }
    free(sc);
}

int tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
               int32_t **ids)
{
    *ids = NULL;
    struct enc e = {.t = t};
    e.tls = tok_tls_get(t);
    if (!e.tls) return -1;
    const uint8_t *s = (const uint8_t *)text;
    struct tok_buf clean = {0};
    if (!utf8_valid(s, len)) {
        struct tok_utf8 u;
        tok_utf8_init(&u);
        if (tok_utf8_feed(&u, s, len, &clean) || tok_utf8_finish(&u, &clean)) {
            tok_buf_fini(&clean);
            return -1;
        }
        s = (const uint8_t *)clean.data;
        len = clean.len;
    }
    if (add_special)
        for (int i = 0; i < t->n_post_pre; i++) push_id(&e, t->post_pre[i]);
    if (len) encode_text(&e, s, len);
    if (add_special)
        for (int i = 0; i < t->n_post_suf; i++) push_id(&e, t->post_suf[i]);
    tok_buf_fini(&clean);
    if (!e.err && !e.ids) {
        e.ids = malloc(sizeof(int32_t));
        if (!e.ids) e.err = 1;
    }
    if (e.err) {
        free(e.ids);
        return -1;
    }
    *ids = e.ids;
    return (int)e.n;
}
