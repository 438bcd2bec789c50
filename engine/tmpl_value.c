/* engine/tmpl_value.c: runtime values of the chat-template interpreter: the
 * arena, strings and buffers, JS-compatible number formatting, value-to-string
 * conversions, tojson, and conversion of the cJSON request context.
 *
 * Strings are UTF-8 bytes; where the reference counts UTF-16 code units
 * (length) or trims JS whitespace, the helpers here do the same on UTF-8.
 *
 * Threads: everything works on one render's private state (struct tmpl_rt) or
 * on the template's arena during tmpl_create; no globals.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tmpl_internal.h"

/* ---- arena ------------------------------------------------------------- */

struct tmpl_blk {
    struct tmpl_blk *next;
    size_t used, cap;
    max_align_t data[];
};

#define TMPL_BLK 65536
#define TMPL_CACHE_BYTES ((size_t)4 << 20) /* kept per thread */
#define TMPL_CACHE_BLK_MAX ((size_t)1 << 20) /* larger blocks go back to malloc */

/* Each rendering thread keeps up to 4 MiB of the blocks of its last renders
 * (blocks up to 1 MiB): a render then writes memory that is already mapped
 * instead of faulting in fresh pages, which glibc would otherwise get from and
 * return to the kernel on every request (10x the cost of the render). Freed
 * when the thread exits. */
struct blk_cache {
    struct tmpl_blk *head;
    size_t bytes;
};
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_dtor(void *p)
{
    struct blk_cache *c = p;
    for (struct tmpl_blk *b = c->head, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    free(c);
}
static void cache_init(void) { (void)pthread_key_create(&cache_key, cache_dtor); }

static struct blk_cache *cache_get(int create)
{
    pthread_once(&cache_once, cache_init);
    struct blk_cache *c = pthread_getspecific(cache_key);
    if (!c && create && (c = calloc(1, sizeof(*c))) && pthread_setspecific(cache_key, c)) {
        free(c);
        c = NULL;
    }
    return c;
}

/* Uninitialized memory (buffers that are written before they are read). */
void *ta_alloc_raw(struct tmpl_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && a->total + n > a->limit) return NULL;
    struct tmpl_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > TMPL_BLK ? n : TMPL_BLK;
        struct blk_cache *c = a->cached ? cache_get(0) : NULL;
        struct tmpl_blk **pp = c ? &c->head : NULL;
        while (pp && *pp && (*pp)->cap < cap) pp = &(*pp)->next; /* first fit */
        if (pp && *pp) {
            b = *pp;
            *pp = b->next;
            c->bytes -= b->cap;
            cap = b->cap;
        } else {
            b = malloc(sizeof(*b) + cap);
            if (!b) return NULL;
        }
        b->next = a->head, b->used = 0, b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    a->total += n;
    return p;
}

void *ta_alloc(struct tmpl_arena *a, size_t n)
{
    void *p = ta_alloc_raw(a, n);
    if (p) memset(p, 0, n);
    return p;
}

void ta_free_all(struct tmpl_arena *a)
{
    struct blk_cache *c = a->cached ? cache_get(1) : NULL;
    for (struct tmpl_blk *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        if (c && b->cap <= TMPL_CACHE_BLK_MAX && c->bytes + b->cap <= TMPL_CACHE_BYTES) {
            b->next = c->head, c->head = b, c->bytes += b->cap;
            continue;
        }
        free(b);
    }
    a->head = NULL;
    a->total = 0;
}

void *tmpl_alloc(struct tmpl_rt *rt, size_t n)
{
    void *p = ta_alloc(&rt->arena, n);
    if (!p) tmpl_fail(rt, "template rendering exceeded its memory limit");
    return p;
}

/* ---- strings, buffers, constructors ------------------------------------- */

struct tstr tstr_lit(const char *s) { return (struct tstr){s, strlen(s)}; }
int tstr_eq(struct tstr a, const char *lit) { return a.n == strlen(lit) && !memcmp(a.p, lit, a.n); }
int tstr_eqs(struct tstr a, struct tstr b) { return a.n == b.n && (a.n == 0 || !memcmp(a.p, b.p, a.n)); }

void tbuf_put(struct tmpl_rt *rt, struct tbuf *b, const char *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->n + n) nc *= 2;
        char *np = ta_alloc_raw(&rt->arena, nc);
        if (!np) tmpl_fail(rt, "template rendering exceeded its memory limit");
        if (b->n) memcpy(np, b->p, b->n);
        b->p = np, b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
void tbuf_puts(struct tmpl_rt *rt, struct tbuf *b, const char *s) { tbuf_put(rt, b, s, strlen(s)); }
struct tstr tbuf_str(const struct tbuf *b) { return (struct tstr){b->p ? b->p : "", b->n}; }

struct tv tv_undef(void) { return (struct tv){.t = TV_UNDEF}; }
struct tv tv_null(void) { return (struct tv){.t = TV_NULL}; }
struct tv tv_bool(int b) { return (struct tv){.t = TV_BOOL, .b = !!b}; }
struct tv tv_int(double n) { return (struct tv){.t = TV_INT, .n = n}; }
struct tv tv_float(double n) { return (struct tv){.t = TV_FLOAT, .n = n}; }
struct tv tv_str(struct tstr s) { return (struct tv){.t = TV_STR, .s = s}; }
struct tv tv_cstr(struct tmpl_rt *rt, const char *s, size_t n)
{
    char *p = tmpl_alloc(rt, n + 1);
    memcpy(p, s, n);
    return tv_str((struct tstr){p, n});
}
struct tv tv_array(struct tmpl_rt *rt, size_t n)
{
    struct tarr *a = tmpl_alloc(rt, sizeof(*a));
    a->n = n;
    a->v = tmpl_alloc(rt, (n ? n : 1) * sizeof(struct tv));
    return (struct tv){.t = TV_ARRAY, .a = a};
}
struct tv tv_object(struct tmpl_rt *rt)
{
    struct tobj *o = tmpl_alloc(rt, sizeof(*o));
    return (struct tv){.t = TV_OBJECT, .o = o};
}

struct tv *tobj_get(const struct tobj *o, struct tstr k)
{
    for (size_t i = 0; i < o->n; i++)
        if (tstr_eqs(o->kv[i].k, k)) return &o->kv[i].v;
    return NULL;
}

void tobj_set(struct tmpl_rt *rt, struct tobj *o, struct tstr k, struct tv v)
{
    struct tv *e = tobj_get(o, k);
    if (e) {
        *e = v; /* JS Map.set keeps the original position */
        return;
    }
    tobj_append(rt, o, k, v);
}

void tobj_append(struct tmpl_rt *rt, struct tobj *o, struct tstr k, struct tv v)
{
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 8;
        struct tkv *nk = tmpl_alloc(rt, nc * sizeof(*nk));
        if (o->n) memcpy(nk, o->kv, o->n * sizeof(*nk));
        o->kv = nk, o->cap = nc;
    }
    o->kv[o->n].k = k;
    o->kv[o->n].v = v;
    o->n++;
}

/* ---- UTF-8 with JS semantics ---------------------------------------------- */

static unsigned utf8_decode(const char *s, size_t n, size_t *len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (p[0] < 0x80) return *len = 1, p[0];
    int need = p[0] >= 0xF0 ? 3 : p[0] >= 0xE0 ? 2 : p[0] >= 0xC0 ? 1 : -1;
    if (need < 0 || (size_t)need >= n) return *len = 1, 0xFFFD;
    unsigned cp = p[0] & (0x3F >> need);
    for (int i = 1; i <= need; i++) {
        if ((p[i] & 0xC0) != 0x80) return *len = 1, 0xFFFD;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    *len = (size_t)need + 1;
    return cp;
}

size_t tmpl_utf8_next(const char *p, size_t n)
{
    size_t l;
    if (!n) return 0;
    utf8_decode(p, n, &l);
    return l;
}

static int js_space(unsigned c)
{
    if (c <= 32) return c == 32 || (c >= 9 && c <= 13);
    return c > 127 && (c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
                       c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF);
}

int tmpl_is_space_at(const char *p, size_t n, size_t *clen)
{
    if (!n) return *clen = 0, 0;
    unsigned c = utf8_decode(p, n, clen);
    return js_space(c);
}

struct tstr tmpl_trim(struct tstr s, int left, int right)
{
    size_t cl;
    if (left)
        while (s.n && tmpl_is_space_at(s.p, s.n, &cl)) s.p += cl, s.n -= cl;
    if (right)
        while (s.n) {
            size_t k = s.n - 1;
            while (k > 0 && ((unsigned char)s.p[k] & 0xC0) == 0x80 && s.n - k < 4) k--;
            if (!tmpl_is_space_at(s.p + k, s.n - k, &cl) || k + cl != s.n) break;
            s.n = k;
        }
    return s;
}

size_t tmpl_utf16_len(struct tstr s)
{
    size_t u = 0, l;
    for (size_t i = 0; i < s.n; i += l) u += utf8_decode(s.p + i, s.n - i, &l) >= 0x10000 ? 2 : 1;
    return u;
}

/* ---- numbers ---------------------------------------------------------------- */

/* Number.prototype.toString(): shortest round-trip digits, JS layout rules. */
void tmpl_fmt_number(struct tmpl_rt *rt, struct tbuf *b, double x)
{
    char buf[64], dig[32], out[400];
    if (isnan(x)) return tbuf_puts(rt, b, "NaN");
    if (isinf(x)) return tbuf_puts(rt, b, x < 0 ? "-Infinity" : "Infinity");
    if (x == 0) return tbuf_puts(rt, b, "0");
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    const char *q = buf;
    size_t o = 0, k = 0;
    if (*q == '-') out[o++] = '-', q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') dig[k++] = *q;
    int e = atoi(q + 1);
    while (k > 1 && dig[k - 1] == '0') k--;
    int n = e + 1;
    if ((int)k <= n && n <= 21) {
        memcpy(out + o, dig, k), o += k;
        for (int i = (int)k; i < n; i++) out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, dig, (size_t)n), o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, dig + n, k - (size_t)n), o += k - (size_t)n;
    } else if (-6 < n && n <= 0) {
        out[o++] = '0', out[o++] = '.';
        for (int i = 0; i < -n; i++) out[o++] = '0';
        memcpy(out + o, dig, k), o += k;
    } else {
        out[o++] = dig[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, dig + 1, k - 1), o += k - 1;
        }
        o += (size_t)snprintf(out + o, sizeof(out) - o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    tbuf_put(rt, b, out, o);
}

/* FloatValue.toString(): integral floats keep one decimal ("3.0"). */
static void fmt_float(struct tmpl_rt *rt, struct tbuf *b, double x)
{
    if (x == 0 && signbit(x)) return tbuf_puts(rt, b, "-0.0");
    if (isfinite(x) && x == floor(x)) {
        if (fabs(x) >= 1e21) return tmpl_fmt_number(rt, b, x); /* toFixed falls back to toString */
        char buf[400];
        int n = snprintf(buf, sizeof(buf), "%.1f", x);
        return tbuf_put(rt, b, buf, (size_t)n);
    }
    tmpl_fmt_number(rt, b, x);
}

/* ---- conversions ------------------------------------------------------------- */

const char *tv_type_name(struct tv v)
{
    switch (v.t) {
    case TV_UNDEF: return "UndefinedValue";
    case TV_NULL: return "NullValue";
    case TV_BOOL: return "BooleanValue";
    case TV_INT: return "IntegerValue";
    case TV_FLOAT: return "FloatValue";
    case TV_STR: return "StringValue";
    case TV_ARRAY: return v.a->tuple ? "TupleValue" : "ArrayValue";
    case TV_OBJECT: return v.o->kind == TOBJ_KWARGS ? "KeywordArgumentsValue" : "ObjectValue";
    case TV_NS: return "NamespaceValue";
    case TV_FUNC: return "FunctionValue";
    }
    return "?";
}

int tv_truthy(struct tv v)
{
    switch (v.t) {
    case TV_UNDEF:
    case TV_NULL: return 0;
    case TV_BOOL: return v.b;
    case TV_INT:
    case TV_FLOAT: return v.n != 0 && !isnan(v.n);
    case TV_STR: return v.s.n > 0;
    case TV_ARRAY: return v.a->n > 0;
    case TV_OBJECT: return v.o->n > 0;
    case TV_NS:
    case TV_FUNC: return 1;
    }
    return 0;
}

void tv_display(struct tmpl_rt *rt, struct tbuf *b, struct tv v)
{
    static const struct tojson_opts none;
    switch (v.t) {
    case TV_UNDEF: return tbuf_puts(rt, b, "undefined");
    case TV_NULL: return tbuf_puts(rt, b, "null");
    case TV_BOOL: return tbuf_puts(rt, b, v.b ? "true" : "false");
    case TV_INT: return tmpl_fmt_number(rt, b, v.n);
    case TV_FLOAT: return fmt_float(rt, b, v.n);
    case TV_STR: return tbuf_put(rt, b, v.s.p, v.s.n);
    case TV_ARRAY:
    case TV_OBJECT:
    case TV_NS: return tv_tojson(rt, b, v, &none, 0, 0);
    case TV_FUNC: tmpl_fail(rt, "Cannot render a function value");
    }
}

void tv_raw(struct tmpl_rt *rt, struct tbuf *b, struct tv v)
{
    switch (v.t) {
    case TV_FLOAT: return tmpl_fmt_number(rt, b, v.n);
    case TV_ARRAY:
        for (size_t i = 0; i < v.a->n; i++) {
            if (i) tbuf_put(rt, b, ",", 1);
            tv_display(rt, b, v.a->v[i]);
        }
        return;
    case TV_OBJECT:
    case TV_NS: return tbuf_puts(rt, b, "[object Map]");
    default: return tv_display(rt, b, v);
    }
}

/* ---- tojson ------------------------------------------------------------------ */

/* JSON.stringify(string), then makeAsciiSafe when ensure_ascii. */
static void json_string(struct tmpl_rt *rt, struct tbuf *b, struct tstr s, int ascii)
{
    static const char hex[] = "0123456789abcdef";
    tbuf_put(rt, b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < s.n;) {
        unsigned char c = (unsigned char)s.p[i];
        const char *esc = NULL;
        char tmp[16];
        size_t el = 0, cl = 1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20 || (ascii && c >= 0x7F)) {
                unsigned cp = c < 0x80 ? c : utf8_decode(s.p + i, s.n - i, &cl);
                unsigned u[2] = {cp, 0};
                int nu = 1;
                if (cp >= 0x10000) cp -= 0x10000, u[0] = 0xD800 + (cp >> 10), u[1] = 0xDC00 + (cp & 0x3FF), nu = 2;
                for (int k = 0; k < nu; k++) {
                    tmp[el++] = '\\', tmp[el++] = 'u';
                    for (int sh = 12; sh >= 0; sh -= 4) tmp[el++] = hex[(u[k] >> sh) & 15];
                }
                esc = tmp;
            }
        }
        if (!esc) {
            run++, i++;
            continue;
        }
        tbuf_put(rt, b, s.p + i - run, run);
        run = 0;
        tbuf_put(rt, b, esc, el ? el : strlen(esc));
        i += cl;
    }
    tbuf_put(rt, b, s.p + s.n - run, run);
    tbuf_put(rt, b, "\"", 1);
}

/* Approximates String.prototype.localeCompare (ICU root collation), which
 * tojson(sort_keys=true) uses: three levels, compared in order over the whole
 * string: primary (punctuation < digits < letters, letters without case or
 * accent), secondary (accents), tertiary (lower case before upper case).
 * ASCII punctuation follows the CLDR root order; Latin-1 letters fold to their
 * base letter; other characters sort after letters by code point. */
struct coll {
    unsigned p, s, t;
};
static struct coll coll_of(unsigned cp)
{
    static const char PUNCT[] = "\t\n\v\f\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";
    static const char L1[] = "AAAAAAACEEEEIIIIDNOOOOO*OUUUUYTsaaaaaaaceeeeiiiidnooooo/ouuuuyty"; /* U+00C0..U+00FF */
    if (cp < 0x80) {
        const char *q = cp ? strchr(PUNCT, (int)cp) : NULL;
        if (q) return (struct coll){1 + (unsigned)(q - PUNCT), 0, 0};
        if (cp >= '0' && cp <= '9') return (struct coll){100 + cp - '0', 0, 0};
        if (cp >= 'a' && cp <= 'z') return (struct coll){200 + (cp - 'a') * 2, 0, 0};
        if (cp >= 'A' && cp <= 'Z') return (struct coll){200 + (cp - 'A') * 2, 0, 1};
        return (struct coll){50 + cp, 0, 0}; /* other controls and symbols */
    }
    if (cp >= 0xC0 && cp <= 0xFF && L1[cp - 0xC0] != '*' && L1[cp - 0xC0] != '/') {
        char base = L1[cp - 0xC0];
        int upper = base >= 'A' && base <= 'Z';
        unsigned lb = (unsigned)(upper ? base + 32 : base);
        return (struct coll){200 + (lb - 'a') * 2 + (cp == 0xDE || cp == 0xFE ? 60 : 0), 1 + (cp & 7), (unsigned)upper};
    }
    return (struct coll){1000 + cp, 0, 0};
}
static int locale_cmp(struct tstr a, struct tstr b)
{
    for (int level = 0; level < 3; level++) {
        size_t i = 0, j = 0;
        for (;;) {
            if (i >= a.n || j >= b.n) {
                if (i < a.n || j < b.n) return i < a.n ? 1 : -1;
                break;
            }
            size_t la, lb;
            struct coll x = coll_of(utf8_decode(a.p + i, a.n - i, &la));
            struct coll y = coll_of(utf8_decode(b.p + j, b.n - j, &lb));
            i += la, j += lb;
            unsigned vx = level == 0 ? x.p : level == 1 ? x.s : x.t;
            unsigned vy = level == 0 ? y.p : level == 1 ? y.s : y.t;
            if (vx != vy) return vx < vy ? -1 : 1;
        }
    }
    return 0;
}

static void pad(struct tmpl_rt *rt, struct tbuf *b, int indent, int depth)
{
    tbuf_put(rt, b, "\n", 1);
    for (int i = 0; i < indent * depth; i++) tbuf_put(rt, b, " ", 1);
}

void tv_tojson(struct tmpl_rt *rt, struct tbuf *b, struct tv v, const struct tojson_opts *o, int depth,
               int undef_as_null)
{
    if (depth > 512) tmpl_fail(rt, "tojson: nesting too deep");
    struct tstr isep = o->have_seps ? o->item_sep : tstr_lit(o->indent ? "," : ", ");
    struct tstr ksep = o->have_seps ? o->key_sep : tstr_lit(": ");
    switch (v.t) {
    case TV_NULL: return tbuf_puts(rt, b, "null");
    case TV_UNDEF: return tbuf_puts(rt, b, undef_as_null ? "null" : "undefined");
    case TV_BOOL: return tbuf_puts(rt, b, v.b ? "true" : "false");
    case TV_INT:
    case TV_FLOAT:
        if (!isfinite(v.n)) return tbuf_puts(rt, b, "null");
        return tmpl_fmt_number(rt, b, v.n);
    case TV_STR: return json_string(rt, b, v.s, o->ensure_ascii);
    case TV_ARRAY:
        if (v.a->tuple) break;
        tbuf_put(rt, b, "[", 1);
        for (size_t i = 0; i < v.a->n; i++) {
            if (i) tbuf_put(rt, b, isep.p, isep.n);
            if (o->indent) pad(rt, b, o->indent, depth + 1);
            tv_tojson(rt, b, v.a->v[i], o, depth + 1, undef_as_null);
        }
        if (o->indent && v.a->n) pad(rt, b, o->indent, depth);
        tbuf_put(rt, b, "]", 1);
        return;
    case TV_OBJECT:
    case TV_NS: {
        if (v.t == TV_OBJECT && v.o->kind == TOBJ_KWARGS) break;
        size_t n = v.o->n;
        const struct tkv **ord = tmpl_alloc(rt, (n ? n : 1) * sizeof(*ord));
        for (size_t i = 0; i < n; i++) ord[i] = &v.o->kv[i];
        if (o->sort_keys) /* insertion sort: stable, like Array#sort */
            for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && locale_cmp(ord[j - 1]->k, ord[j]->k) > 0; j--) {
                    const struct tkv *t = ord[j];
                    ord[j] = ord[j - 1], ord[j - 1] = t;
                }
        tbuf_put(rt, b, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i) tbuf_put(rt, b, isep.p, isep.n);
            if (o->indent) pad(rt, b, o->indent, depth + 1);
            json_string(rt, b, ord[i]->k, o->ensure_ascii);
            tbuf_put(rt, b, ksep.p, ksep.n);
            tv_tojson(rt, b, ord[i]->v, o, depth + 1, undef_as_null);
        }
        if (o->indent && n) pad(rt, b, o->indent, depth);
        tbuf_put(rt, b, "}", 1);
        return;
    }
    case TV_FUNC: break;
    }
    tmpl_fail(rt, "Cannot convert to JSON: %s", tv_type_name(v));
}

/* ---- cJSON context -> values ---------------------------------------------------- */

/* JS objects list "array index" keys (canonical uint32 < 2^32-1) first, in
 * ascending order, whatever the JSON order was. */
static int index_key(const char *k, unsigned long long *out)
{
    size_t n = strlen(k);
    if (n == 0 || n > 10 || (n > 1 && k[0] == '0')) return 0;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9') return 0;
        v = v * 10 + (unsigned)(k[i] - '0');
    }
    if (v >= 4294967295ULL) return 0;
    *out = v;
    return 1;
}

struct ixent {
    unsigned long long v;
    size_t pos;
    const cJSON *c;
};
static int ixent_cmp(const void *a, const void *b)
{
    const struct ixent *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

struct tv tv_from_json(struct tmpl_rt *rt, const cJSON *j, int depth)
{
    if (depth > 200) tmpl_fail(rt, "request JSON nested too deeply for the chat template");
    if (!j) return tv_undef();
    if (cJSON_IsNull(j)) return tv_null();
    if (cJSON_IsBool(j)) return tv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        return isfinite(d) && d == floor(d) ? tv_int(d) : tv_float(d);
    }
    if (cJSON_IsString(j)) return tv_str(tstr_lit(j->valuestring ? j->valuestring : ""));
    if (cJSON_IsArray(j)) {
        size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
        struct tv a = tv_array(rt, n);
        for (const cJSON *c = j->child; c && i < n; c = c->next) a.a->v[i++] = tv_from_json(rt, c, depth + 1);
        return a;
    }
    if (cJSON_IsObject(j)) {
        struct tv o = tv_object(rt);
        size_t n = (size_t)cJSON_GetArraySize(j), ni = 0;
        /* keys are deduplicated (last value wins at the first position, as
         * JSON.parse does) only for objects of sane size: the check is linear */
        int dedupe = n <= 512;
        unsigned long long ix;
        struct ixent *ie = tmpl_alloc(rt, (n ? n : 1) * sizeof(*ie));
        size_t pos = 0;
        for (const cJSON *c = j->child; c; c = c->next, pos++)
            if (c->string && index_key(c->string, &ix)) ie[ni].v = ix, ie[ni].pos = pos, ie[ni].c = c, ni++;
        qsort(ie, ni, sizeof(*ie), ixent_cmp);
        for (size_t i = 0; i < ni; i++) {
            struct tv v = tv_from_json(rt, ie[i].c, depth + 1);
            if (dedupe) tobj_set(rt, o.o, tstr_lit(ie[i].c->string), v);
            else tobj_append(rt, o.o, tstr_lit(ie[i].c->string), v);
        }
        for (const cJSON *c = j->child; c; c = c->next) {
            if (!c->string || index_key(c->string, &ix)) continue;
            struct tv v = tv_from_json(rt, c, depth + 1);
            if (dedupe) tobj_set(rt, o.o, tstr_lit(c->string), v);
            else tobj_append(rt, o.o, tstr_lit(c->string), v);
        }
        return o;
    }
    return tv_undef();
}
