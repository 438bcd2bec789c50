/* engine/tmpl_filters.c: chat-template filters, tests, methods and globals.
 *
 * Ported from applyFilter, Environment.TESTS, the builtins of StringValue /
 * ObjectValue / ArrayValue and setupGlobals in @huggingface/jinja's
 * runtime.ts. The reference dispatches a bare filter (`x|trim`) and a called
 * one (`x|join(', ')`) through different tables, and each table only accepts
 * some operand types; both tables are copied as they are, so a filter that
 * fails there fails here. One extension: select/reject (called form), which
 * Llama 3.1's template names in a branch.
 *
 * Threads: any thread; works on one render's state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <locale.h>
#include <pthread.h>
#include <wctype.h>

#include "engine/tmpl_internal.h"

enum {
    B_UPPER, B_LOWER, B_STRIP, B_TITLE, B_CAPITALIZE, B_RSTRIP, B_LSTRIP, B_STARTSWITH, B_ENDSWITH,
    B_SPLIT, B_REPLACE, B_GET, B_ITEMS, B_KEYS, B_VALUES, B_DICTSORT,
    B_NAMESPACE, B_RAISE, B_RANGE, B_STRFTIME,
};

static const char *FILTERS[] = {
    "safe", "tojson", "list", "first", "last", "length", "reverse", "sort", "join", "string", "unique",
    "upper", "lower", "title", "capitalize", "trim", "indent", "int", "float", "abs", "items", "bool",
    "keys", "values", "get", "dictsort", "default", "selectattr", "rejectattr", "map", "replace",
    "select", "reject",
};
static const char *TESTS[] = {
    "boolean", "callable", "odd", "even", "false", "true", "none", "string", "number", "integer",
    "iterable", "mapping", "sequence", "lower", "upper", "defined", "undefined", "equalto", "eq",
};

static int in_list(struct tstr n, const char **l, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++)
        if (tstr_eq(n, l[i])) return 1;
    return 0;
}
int tmpl_filter_known(struct tstr n) { return in_list(n, FILTERS, sizeof(FILTERS) / sizeof(FILTERS[0])); }
int tmpl_test_known(struct tstr n) { return in_list(n, TESTS, sizeof(TESTS) / sizeof(TESTS[0])); }

/* ---- small helpers ------------------------------------------------------------- */

/* String#toUpperCase / toLowerCase: per code point through the C.UTF-8
 * locale's simple case mapping (plus ß -> SS); falls back to ASCII when that
 * locale is missing. JS's context-dependent rules (final sigma) are not done. */
static locale_t case_loc;
static pthread_once_t case_once = PTHREAD_ONCE_INIT;
static void case_init(void) { case_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0); }

static size_t enc_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 63)), o[2] = (char)(0x80 | (cp & 63)), 3;
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 63)), o[2] = (char)(0x80 | ((cp >> 6) & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

static unsigned dec_utf8(const char *s, size_t n, size_t *len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t l = tmpl_utf8_next(s, n);
    *len = l;
    if (l == 1) return p[0] < 0x80 ? p[0] : 0xFFFFFFFFu; /* invalid byte: copied as is */
    unsigned cp = p[0] & (0x7F >> l);
    for (size_t i = 1; i < l; i++) cp = cp << 6 | (p[i] & 0x3F);
    return cp;
}

struct tstr tmpl_case_map(struct tmpl_rt *rt, struct tstr s, int upper, size_t max_cps)
{
    pthread_once(&case_once, case_init);
    char *p = tmpl_alloc(rt, s.n * 2 + 1); /* SS doubles at most */
    size_t o = 0, cps = 0;
    for (size_t i = 0; i < s.n;) {
        size_t l;
        unsigned cp = dec_utf8(s.p + i, s.n - i, &l);
        if (cps++ >= max_cps || cp == 0xFFFFFFFFu) {
            memcpy(p + o, s.p + i, l), o += l, i += l;
            continue;
        }
        unsigned m = cp;
        if (cp < 0x80) {
            if (upper && cp >= 'a' && cp <= 'z') m = cp - 32;
            if (!upper && cp >= 'A' && cp <= 'Z') m = cp + 32;
        } else if (upper && cp == 0xDF) {
            p[o++] = 'S', p[o++] = 'S', i += l;
            continue;
        } else if (case_loc) {
            m = (unsigned)(upper ? towupper_l((wint_t)cp, case_loc) : towlower_l((wint_t)cp, case_loc));
        }
        size_t el = enc_utf8(p + o, m);
        if (el > l + 1) { /* never grows past the buffer: keep the original */
            memcpy(p + o, s.p + i, l), el = l;
        }
        o += el, i += l;
    }
    return (struct tstr){p, o};
}

static struct tv str_map(struct tmpl_rt *rt, struct tstr s, int upper)
{
    return tv_str(tmpl_case_map(rt, s, upper, (size_t)-1));
}

static int isw(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

static struct tv str_title(struct tmpl_rt *rt, struct tstr s)
{
    char *p = tmpl_alloc(rt, s.n + 1);
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (isw(c) && (i == 0 || !isw(s.p[i - 1])) && c >= 'a' && c <= 'z') c -= 32; /* /\b\w/g */
        p[i] = c;
    }
    return tv_str((struct tstr){p, s.n});
}

static struct tv str_capitalize(struct tmpl_rt *rt, struct tstr s)
{
    return tv_str(tmpl_case_map(rt, s, 1, 1)); /* first character only */
}

static int has_prefix(struct tstr s, struct tstr p) { return s.n >= p.n && !memcmp(s.p, p.p, p.n); }
static int has_suffix(struct tstr s, struct tstr p) { return s.n >= p.n && !memcmp(s.p + s.n - p.n, p.p, p.n); }

static struct tv str_affix(struct tmpl_rt *rt, struct tstr s, struct tv *a, size_t na, int end, const char *nm)
{
    if (na == 0) tmpl_fail(rt, "%s() requires at least one argument", nm);
    if (a[0].t == TV_STR) return tv_bool(end ? has_suffix(s, a[0].s) : has_prefix(s, a[0].s));
    if (a[0].t == TV_ARRAY) {
        for (size_t i = 0; i < a[0].a->n; i++) {
            struct tv it = a[0].a->v[i];
            if (it.t != TV_STR) tmpl_fail(rt, "%s() tuple elements must be strings", nm);
            if (end ? has_suffix(s, it.s) : has_prefix(s, it.s)) return tv_bool(1);
        }
        return tv_bool(0);
    }
    tmpl_fail(rt, "%s() argument must be a string or tuple of strings", nm);
}

static void arr_push(struct tmpl_rt *rt, struct tv *arr, size_t *cap, struct tv v)
{
    if (arr->a->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        struct tv *nv = tmpl_alloc(rt, nc * sizeof(*nv));
        if (arr->a->n) memcpy(nv, arr->a->v, arr->a->n * sizeof(*nv));
        arr->a->v = nv, *cap = nc;
    }
    arr->a->v[arr->a->n++] = v;
}

static struct tv str_split(struct tmpl_rt *rt, struct tstr s, struct tv *a, size_t na)
{
    struct tv sep = na > 0 ? a[0] : tv_null();
    if (sep.t != TV_STR && sep.t != TV_NULL) tmpl_fail(rt, "sep argument must be a string or null");
    struct tv mx = na > 1 ? a[1] : tv_int(-1);
    if (mx.t != TV_INT) tmpl_fail(rt, "maxsplit argument must be a number");
    struct tv out = tv_array(rt, 0);
    size_t cap = 0, cl;
    if (sep.t == TV_NULL) {
        struct tstr t = tmpl_trim(s, 1, 0);
        size_t i = 0;
        while (i < t.n) {
            while (i < t.n && tmpl_is_space_at(t.p + i, t.n - i, &cl)) i += cl;
            if (i >= t.n) break;
            size_t st = i;
            while (i < t.n && !tmpl_is_space_at(t.p + i, t.n - i, &cl)) i += tmpl_utf8_next(t.p + i, t.n - i);
            if (mx.n >= 0 && (double)out.a->n >= mx.n) {
                arr_push(rt, &out, &cap, tv_str((struct tstr){t.p + st, t.n - st}));
                break;
            }
            arr_push(rt, &out, &cap, tv_str((struct tstr){t.p + st, i - st}));
        }
        return out;
    }
    if (sep.s.n == 0) tmpl_fail(rt, "empty separator");
    size_t st = 0;
    for (;;) {
        const char *hit = mx.n >= 0 && (double)out.a->n >= mx.n ? NULL : memmem(s.p + st, s.n - st, sep.s.p, sep.s.n);
        if (!hit) {
            arr_push(rt, &out, &cap, tv_str((struct tstr){s.p + st, s.n - st}));
            break;
        }
        arr_push(rt, &out, &cap, tv_str((struct tstr){s.p + st, (size_t)(hit - (s.p + st))}));
        st = (size_t)(hit - s.p) + sep.s.n;
    }
    return out;
}

/* utils.ts replace(): Python str.replace with an optional count. */
static struct tv str_replace(struct tmpl_rt *rt, struct tstr s, struct tv *a, size_t na)
{
    if (na < 2) tmpl_fail(rt, "replace() requires at least two arguments");
    if (a[0].t != TV_STR || a[1].t != TV_STR) tmpl_fail(rt, "replace() arguments must be strings");
    struct tv count = tv_null();
    if (na > 2) {
        if (a[2].t == TV_OBJECT && a[2].o->kind == TOBJ_KWARGS) {
            struct tv *c = tobj_get(a[2].o, tstr_lit("count"));
            count = c ? *c : tv_null();
        } else {
            count = a[2];
        }
    }
    if (count.t != TV_INT && count.t != TV_NULL) tmpl_fail(rt, "replace() count argument must be a number or null");
    if (count.t == TV_INT && count.n == 0) return tv_str(s);
    double remaining = (count.t == TV_NULL || count.n < 0) ? INFINITY : count.n;
    struct tstr old = a[0].s, rep = a[1].s;
    struct tbuf b = {0};
    if (old.n == 0) {
        for (size_t i = 0;; i += tmpl_utf8_next(s.p + i, s.n - i)) {
            if (remaining > 0) tbuf_put(rt, &b, rep.p, rep.n), remaining--;
            if (i >= s.n) break;
            tbuf_put(rt, &b, s.p + i, tmpl_utf8_next(s.p + i, s.n - i));
        }
        return tv_str(tbuf_str(&b));
    }
    size_t i = 0;
    while (i < s.n) {
        const char *hit = remaining > 0 ? memmem(s.p + i, s.n - i, old.p, old.n) : NULL;
        if (!hit) break;
        tbuf_put(rt, &b, s.p + i, (size_t)(hit - (s.p + i)));
        tbuf_put(rt, &b, rep.p, rep.n);
        remaining--;
        i = (size_t)(hit - s.p) + old.n;
    }
    tbuf_put(rt, &b, s.p + i, s.n - i);
    return tv_str(tbuf_str(&b));
}

static struct tv obj_items(struct tmpl_rt *rt, struct tobj *o)
{
    struct tv r = tv_array(rt, o->n);
    for (size_t i = 0; i < o->n; i++) {
        struct tv pair = tv_array(rt, 2);
        pair.a->v[0] = tv_str(o->kv[i].k);
        pair.a->v[1] = o->kv[i].v;
        r.a->v[i] = pair;
    }
    return r;
}

static int is_kwargs(struct tv v) { return v.t == TV_OBJECT && v.o->kind == TOBJ_KWARGS; }

static struct tv *kwget(struct tobj *kw, const char *k) { return kw ? tobj_get(kw, tstr_lit(k)) : NULL; }

/* insertion sort (stable, like Array#sort) with the reference's comparator */
struct sortctx {
    struct tmpl_rt *rt;
    int cs, rev;
};
static void sort_values(struct sortctx *c, struct tv *keys, struct tv *vals, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            int r = tmpl_compare(c->rt, keys[j - 1], keys[j], c->cs);
            if (c->rev) r = -r;
            if (r <= 0) break;
            struct tv t = keys[j];
            keys[j] = keys[j - 1], keys[j - 1] = t;
            t = vals[j], vals[j] = vals[j - 1], vals[j - 1] = t;
        }
}

static struct tv obj_dictsort(struct tmpl_rt *rt, struct tobj *o, struct tv *a, size_t na)
{
    struct tobj *kw = NULL;
    struct tv pos[3];
    size_t np = 0;
    for (size_t i = 0; i < na; i++) {
        if (is_kwargs(a[i])) kw = a[i].o;
        else if (np < 3) pos[np++] = a[i];
    }
    struct tv *k;
    struct tv cs = np > 0 ? pos[0] : (k = kwget(kw, "case_sensitive")) ? *k : tv_bool(0);
    if (cs.t != TV_BOOL) tmpl_fail(rt, "case_sensitive must be a boolean");
    struct tv by = np > 1 ? pos[1] : (k = kwget(kw, "by")) ? *k : tv_str(tstr_lit("key"));
    if (by.t != TV_STR) tmpl_fail(rt, "by must be a string");
    if (!tstr_eq(by.s, "key") && !tstr_eq(by.s, "value")) tmpl_fail(rt, "by must be either 'key' or 'value'");
    struct tv rev = np > 2 ? pos[2] : (k = kwget(kw, "reverse")) ? *k : tv_bool(0);
    if (rev.t != TV_BOOL) tmpl_fail(rt, "reverse must be a boolean");
    struct tv items = obj_items(rt, o);
    struct tv *keys = tmpl_alloc(rt, (o->n + 1) * sizeof(*keys));
    int idx = tstr_eq(by.s, "key") ? 0 : 1;
    for (size_t i = 0; i < o->n; i++) keys[i] = items.a->v[i].a->v[idx];
    struct sortctx c = {rt, cs.b, rev.b};
    sort_values(&c, keys, items.a->v, o->n);
    return items;
}

/* ---- globals ---------------------------------------------------------------------- */

static struct tv g_namespace(struct tmpl_rt *rt, struct tv *a, size_t na)
{
    struct tobj *kw = NULL;
    if (na && is_kwargs(a[na - 1])) kw = a[--na].o;
    if (na > 1) tmpl_fail(rt, "namespace expected at most 1 argument, got %zu", na);
    struct tv ns = tv_object(rt);
    ns.t = TV_NS;
    if (na == 1) {
        struct tv src = a[0];
        if (src.t == TV_OBJECT) {
            for (size_t i = 0; i < src.o->n; i++) tobj_set(rt, ns.o, src.o->kv[i].k, src.o->kv[i].v);
        } else if (src.t == TV_ARRAY) {
            for (size_t i = 0; i < src.a->n; i++) {
                struct tv pr = src.a->v[i], key, val;
                if (pr.t == TV_ARRAY && pr.a->n == 2) {
                    key = pr.a->v[0], val = pr.a->v[1];
                } else if (pr.t == TV_STR && pr.s.n >= 2 && tmpl_utf16_len(pr.s) == 2) {
                    size_t c1 = tmpl_utf8_next(pr.s.p, pr.s.n);
                    key = tv_str((struct tstr){pr.s.p, c1});
                    val = tv_str((struct tstr){pr.s.p + c1, pr.s.n - c1});
                } else {
                    tmpl_fail(rt, "namespace expected an object or an iterable of [key, value] pairs");
                }
                if (key.t != TV_STR) tmpl_fail(rt, "namespace keys must be strings");
                tobj_set(rt, ns.o, key.s, val);
            }
        } else {
            tmpl_fail(rt, "'%s' object is not iterable", tv_type_name(src));
        }
    }
    if (kw)
        for (size_t i = 0; i < kw->n; i++) tobj_set(rt, ns.o, kw->kv[i].k, kw->kv[i].v);
    return ns;
}

static struct tv g_range(struct tmpl_rt *rt, struct tv *a, size_t na)
{
    for (size_t i = 0; i < na && i < 3; i++)
        if (a[i].t != TV_INT && a[i].t != TV_FLOAT) tmpl_fail(rt, "range() arguments must be numbers");
    if (na == 0) tmpl_fail(rt, "range() expects at least one argument");
    double start = 0, stop = a[0].n, step = 1;
    if (na >= 2) start = a[0].n, stop = a[1].n;
    if (na >= 3) step = a[2].n;
    if (step == 0) tmpl_fail(rt, "range() step must not be zero");
    double cnt = step > 0 ? ceil((stop - start) / step) : ceil((start - stop) / -step);
    if (!(cnt > 0)) cnt = 0;
    if (cnt > 10000000) tmpl_fail(rt, "range() too large");
    struct tv r = tv_array(rt, (size_t)cnt);
    for (size_t i = 0; i < (size_t)cnt; i++) {
        double v = start + step * (double)i;
        r.a->v[i] = v == floor(v) ? tv_int(v) : tv_float(v);
    }
    return r;
}

static struct tv g_strftime(struct tmpl_rt *rt, struct tv *a, size_t na)
{
    static const char *MON[] = {"January", "February", "March", "April", "May", "June", "July",
                                "August", "September", "October", "November", "December"};
    if (na < 1 || a[0].t != TV_STR) tmpl_fail(rt, "strftime_now() expects a format string");
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    struct tbuf b = {0};
    struct tstr f = a[0].s;
    char tmp[32];
    for (size_t i = 0; i < f.n; i++) {
        if (f.p[i] != '%' || i + 1 >= f.n || !strchr("YmdbBHM%", f.p[i + 1]) || !f.p[i + 1]) {
            tbuf_put(rt, &b, f.p + i, 1);
            continue;
        }
        char c = f.p[++i];
        int n = 0;
        switch (c) {
        case 'Y': n = snprintf(tmp, sizeof(tmp), "%d", tm.tm_year + 1900); break;
        case 'm': n = snprintf(tmp, sizeof(tmp), "%02d", tm.tm_mon + 1); break;
        case 'd': n = snprintf(tmp, sizeof(tmp), "%02d", tm.tm_mday); break;
        case 'b': n = snprintf(tmp, sizeof(tmp), "%.3s", MON[tm.tm_mon]); break;
        case 'B': n = snprintf(tmp, sizeof(tmp), "%s", MON[tm.tm_mon]); break;
        case 'H': n = snprintf(tmp, sizeof(tmp), "%02d", tm.tm_hour); break;
        case 'M': n = snprintf(tmp, sizeof(tmp), "%02d", tm.tm_min); break;
        default: n = snprintf(tmp, sizeof(tmp), "%%"); break;
        }
        tbuf_put(rt, &b, tmp, (size_t)n);
    }
    return tv_str(tbuf_str(&b));
}

static struct tv mkfunc(struct tmpl_rt *rt, int id, struct tv self)
{
    struct tfunc *f = tmpl_alloc(rt, sizeof(*f));
    f->kind = TF_BUILTIN, f->id = id, f->self = self;
    return (struct tv){.t = TV_FUNC, .f = f};
}

void tmpl_setup_globals(struct tmpl_rt *rt, struct tscope *sc)
{
    tmpl_scope_set(rt, sc, tstr_lit("namespace"), mkfunc(rt, B_NAMESPACE, tv_undef()));
    tmpl_scope_set(rt, sc, tstr_lit("false"), tv_bool(0));
    tmpl_scope_set(rt, sc, tstr_lit("true"), tv_bool(1));
    tmpl_scope_set(rt, sc, tstr_lit("none"), tv_null());
    tmpl_scope_set(rt, sc, tstr_lit("raise_exception"), mkfunc(rt, B_RAISE, tv_undef()));
    tmpl_scope_set(rt, sc, tstr_lit("range"), mkfunc(rt, B_RANGE, tv_undef()));
    tmpl_scope_set(rt, sc, tstr_lit("strftime_now"), mkfunc(rt, B_STRFTIME, tv_undef()));
    tmpl_scope_set(rt, sc, tstr_lit("True"), tv_bool(1));
    tmpl_scope_set(rt, sc, tstr_lit("False"), tv_bool(0));
    tmpl_scope_set(rt, sc, tstr_lit("None"), tv_null());
}

/* ---- methods ---------------------------------------------------------------------- */

struct tv tmpl_builtin_member(struct tmpl_rt *rt, struct tv self, struct tstr name)
{
    static const struct {
        const char *n;
        int id;
    } SM[] = {{"upper", B_UPPER},         {"lower", B_LOWER},     {"strip", B_STRIP},   {"title", B_TITLE},
              {"capitalize", B_CAPITALIZE}, {"rstrip", B_RSTRIP}, {"lstrip", B_LSTRIP}, {"startswith", B_STARTSWITH},
              {"endswith", B_ENDSWITH},     {"split", B_SPLIT},   {"replace", B_REPLACE}},
      OM[] = {{"get", B_GET}, {"items", B_ITEMS}, {"keys", B_KEYS}, {"values", B_VALUES}, {"dictsort", B_DICTSORT}};
    if (self.t == TV_STR) {
        if (tstr_eq(name, "length")) return tv_int((double)tmpl_utf16_len(self.s));
        for (size_t i = 0; i < sizeof(SM) / sizeof(SM[0]); i++)
            if (tstr_eq(name, SM[i].n)) return mkfunc(rt, SM[i].id, self);
    } else if (self.t == TV_OBJECT) {
        for (size_t i = 0; i < sizeof(OM) / sizeof(OM[0]); i++)
            if (tstr_eq(name, OM[i].n)) return mkfunc(rt, OM[i].id, self);
    } else if (self.t == TV_ARRAY) {
        if (tstr_eq(name, "length")) return tv_int((double)self.a->n);
    }
    return tv_undef();
}

struct tv tmpl_call_builtin(struct tmpl_rt *rt, const struct tfunc *f, struct tv *args, size_t nargs,
                            struct tobj *kw)
{
    /* JS calling convention: keyword arguments arrive as one trailing object */
    struct tv *a = args;
    size_t na = nargs;
    if (kw) {
        a = tmpl_alloc(rt, (nargs + 1) * sizeof(*a));
        if (nargs) memcpy(a, args, nargs * sizeof(*a));
        a[na++] = (struct tv){.t = TV_OBJECT, .o = kw};
    }
    struct tv s = f->self;
    switch (f->id) {
    case B_UPPER: return str_map(rt, s.s, 1);
    case B_LOWER: return str_map(rt, s.s, 0);
    case B_STRIP: return tv_str(tmpl_trim(s.s, 1, 1));
    case B_RSTRIP: return tv_str(tmpl_trim(s.s, 0, 1));
    case B_LSTRIP: return tv_str(tmpl_trim(s.s, 1, 0));
    case B_TITLE: return str_title(rt, s.s);
    case B_CAPITALIZE: return str_capitalize(rt, s.s);
    case B_STARTSWITH: return str_affix(rt, s.s, a, na, 0, "startswith");
    case B_ENDSWITH: return str_affix(rt, s.s, a, na, 1, "endswith");
    case B_SPLIT: return str_split(rt, s.s, a, na);
    case B_REPLACE: return str_replace(rt, s.s, a, na);
    case B_GET: {
        if (na < 1 || a[0].t != TV_STR) tmpl_fail(rt, "Object key must be a string: got %s", na ? tv_type_name(a[0]) : "undefined");
        struct tv *v = tobj_get(s.o, a[0].s);
        return v ? *v : na > 1 ? a[1] : tv_null();
    }
    case B_ITEMS: return obj_items(rt, s.o);
    case B_KEYS: {
        struct tv r = tv_array(rt, s.o->n);
        for (size_t i = 0; i < s.o->n; i++) r.a->v[i] = tv_str(s.o->kv[i].k);
        return r;
    }
    case B_VALUES: {
        struct tv r = tv_array(rt, s.o->n);
        for (size_t i = 0; i < s.o->n; i++) r.a->v[i] = s.o->kv[i].v;
        return r;
    }
    case B_DICTSORT: return obj_dictsort(rt, s.o, a, na);
    case B_NAMESPACE: return g_namespace(rt, a, na);
    case B_RAISE: {
        struct tbuf b = {0};
        if (na && a[0].t != TV_UNDEF) tv_raw(rt, &b, a[0]);
        /* the template author's message is what the client should see */
        rt->at = NULL;
        tmpl_fail(rt, "%.*s", (int)b.n, b.p ? b.p : "");
    }
    case B_RANGE: return g_range(rt, a, na);
    case B_STRFTIME: return g_strftime(rt, a, na);
    }
    tmpl_fail(rt, "unknown builtin");
}
