/* engine/tmpl_eval.c: chat-template evaluator (expressions, statements, scopes).
 *
 * Mirrors the Interpreter of @huggingface/jinja's runtime.ts: the same operator
 * dispatch order (so the same expressions succeed, fail or coerce), the same
 * scoping (for loops get a child scope, if blocks do not), the same loop
 * variable, macro binding and break/continue behaviour (a broken or continued
 * iteration's output is dropped, as the reference drops it).
 *
 * Errors unwind with longjmp to tmpl_render in chat_template.c. This is safe
 * because a render owns nothing but its arena (freed by tmpl_render) and holds
 * no locks; it keeps every evaluation function free of error plumbing.
 *
 * Threads: any thread; all state is in the struct tmpl_rt of one render.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tmpl_internal.h"

#define TMPL_MAX_DEPTH 400
#define TMPL_MAX_STEPS 20000000u

_Noreturn void tmpl_fail(struct tmpl_rt *rt, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (rt->at)
        snprintf(rt->err, rt->errlen, "template line %d: %s", rt->at->line, msg);
    else
        snprintf(rt->err, rt->errlen, "%s", msg);
    longjmp(*rt->fail, 1);
}

/* ---- scopes ------------------------------------------------------------------- */

struct tscope *tmpl_scope_new(struct tmpl_rt *rt, struct tscope *parent)
{
    struct tscope *s = tmpl_alloc(rt, sizeof(*s));
    s->parent = parent;
    return s;
}

void tmpl_scope_set(struct tmpl_rt *rt, struct tscope *sc, struct tstr name, struct tv v)
{
    for (size_t i = 0; i < sc->n; i++)
        if (tstr_eqs(sc->vars[i].name, name)) {
            sc->vars[i].v = v;
            return;
        }
    if (sc->n == sc->cap) {
        size_t nc = sc->cap ? sc->cap * 2 : 8;
        struct tvar *nv = tmpl_alloc(rt, nc * sizeof(*nv));
        if (sc->n) memcpy(nv, sc->vars, sc->n * sizeof(*nv));
        sc->vars = nv, sc->cap = nc;
    }
    sc->vars[sc->n].name = name;
    sc->vars[sc->n].v = v;
    sc->n++;
}

static struct tvar *scope_find(const struct tscope *sc, struct tstr name)
{
    for (; sc; sc = sc->parent)
        for (size_t i = 0; i < sc->n; i++)
            if (tstr_eqs(sc->vars[i].name, name)) return &sc->vars[i];
    return NULL;
}

struct tv tmpl_scope_get(const struct tscope *sc, struct tstr name)
{
    struct tvar *v = scope_find(sc, name);
    return v ? v->v : tv_undef();
}

/* ---- equality ---------------------------------------------------------------- */

static int is_num(struct tv v) { return v.t == TV_INT || v.t == TV_FLOAT; }
static int is_numlike(struct tv v) { return is_num(v) || v.t == TV_BOOL; }
static double numval(struct tv v) { return v.t == TV_BOOL ? (double)v.b : v.n; }
static int is_container(struct tv v) { return v.t >= TV_ARRAY; }
static const void *ptr_of(struct tv v) { return v.t == TV_ARRAY ? (const void *)v.a : v.t == TV_FUNC ? (const void *)v.f : (const void *)v.o; }

/* JS StringToNumber: NaN for anything that is not a full numeric literal. */
static double js_str_to_num(struct tstr s)
{
    s = tmpl_trim(s, 1, 1);
    if (s.n == 0) return 0;
    char buf[128];
    if (s.n >= sizeof(buf)) return NAN;
    memcpy(buf, s.p, s.n);
    buf[s.n] = 0;
    const char *p = buf;
    if (!strcmp(p, "Infinity") || !strcmp(p, "+Infinity")) return INFINITY;
    if (!strcmp(p, "-Infinity")) return -INFINITY;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X' || p[1] == 'o' || p[1] == 'O' || p[1] == 'b' || p[1] == 'B')) {
        int base = (p[1] == 'x' || p[1] == 'X') ? 16 : (p[1] == 'o' || p[1] == 'O') ? 8 : 2;
        if (!p[2]) return NAN;
        double v = 0;
        for (const char *q = p + 2; *q; q++) {
            int d = (*q >= '0' && *q <= '9') ? *q - '0' : (*q >= 'a' && *q <= 'f') ? *q - 'a' + 10 : (*q >= 'A' && *q <= 'F') ? *q - 'A' + 10 : 99;
            if (d >= base) return NAN;
            v = v * base + d;
        }
        return v;
    }
    const char *q = p;
    if (*q == '+' || *q == '-') q++;
    int digits = 0;
    while (*q >= '0' && *q <= '9') q++, digits++;
    if (*q == '.') {
        q++;
        while (*q >= '0' && *q <= '9') q++, digits++;
    }
    if (!digits) return NAN;
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!(*q >= '0' && *q <= '9')) return NAN;
        while (*q >= '0' && *q <= '9') q++;
    }
    if (*q) return NAN;
    return strtod(p, NULL);
}

int tmpl_strict_eq(struct tv a, struct tv b)
{
    if (is_num(a) && is_num(b)) return a.n == b.n;
    if (a.t != b.t) return 0;
    switch (a.t) {
    case TV_UNDEF:
    case TV_NULL: return 1;
    case TV_BOOL: return a.b == b.b;
    case TV_STR: return tstr_eqs(a.s, b.s);
    default: return ptr_of(a) == ptr_of(b);
    }
}

static struct tv to_primitive(struct tmpl_rt *rt, struct tv v)
{
    struct tbuf b = {0};
    tv_raw(rt, &b, v);
    return tv_str(tbuf_str(&b));
}

static int loose_eq_rt(struct tmpl_rt *rt, struct tv a, struct tv b)
{
    int an = a.t == TV_UNDEF || a.t == TV_NULL, bn = b.t == TV_UNDEF || b.t == TV_NULL;
    if (an || bn) return an && bn;
    if (is_container(a) && is_container(b)) return a.t == b.t && ptr_of(a) == ptr_of(b);
    if (is_container(a)) {
        if (!rt) return 0;
        return loose_eq_rt(rt, to_primitive(rt, a), b);
    }
    if (is_container(b)) {
        if (!rt) return 0;
        return loose_eq_rt(rt, a, to_primitive(rt, b));
    }
    if (a.t == TV_STR && b.t == TV_STR) return tstr_eqs(a.s, b.s);
    double x = a.t == TV_STR ? js_str_to_num(a.s) : numval(a);
    double y = b.t == TV_STR ? js_str_to_num(b.s) : numval(b);
    return x == y;
}

int tmpl_loose_eq(struct tv a, struct tv b) { return loose_eq_rt(NULL, a, b); }

/* compareRuntimeValues (sort, dictsort). */
int tmpl_compare(struct tmpl_rt *rt, struct tv a, struct tv b, int cs)
{
    if (a.t == TV_NULL && b.t == TV_NULL) return 0;
    if (a.t == TV_NULL || b.t == TV_NULL || ((a.t == TV_UNDEF) != (b.t == TV_UNDEF)))
        tmpl_fail(rt, "Cannot compare %s with %s", tv_type_name(a), tv_type_name(b));
    if (a.t == TV_UNDEF) return 0;
    if (is_numlike(a) && is_numlike(b)) {
        double x = numval(a), y = numval(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.t != b.t || (a.t == TV_ARRAY && a.a->tuple != b.a->tuple))
        tmpl_fail(rt, "Cannot compare different types: %s and %s", tv_type_name(a), tv_type_name(b));
    if (a.t != TV_STR) tmpl_fail(rt, "Cannot compare type: %s", tv_type_name(a));
    /* JS compares UTF-16 units; for the BMP this equals UTF-8 byte order */
    struct tstr x = cs ? a.s : tmpl_case_map(rt, a.s, 0, (size_t)-1);
    struct tstr y = cs ? b.s : tmpl_case_map(rt, b.s, 0, (size_t)-1);
    size_t n = x.n < y.n ? x.n : y.n;
    int c = n ? memcmp(x.p, y.p, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return x.n < y.n ? -1 : x.n > y.n;
}

/* ---- operators ------------------------------------------------------------------ */

static struct tv concat_raw(struct tmpl_rt *rt, struct tv l, struct tv r)
{
    struct tbuf b = {0};
    if (l.t == TV_STR && r.t == TV_STR) { /* the common case: one exact allocation */
        char *p = tmpl_alloc(rt, l.s.n + r.s.n + 1);
        if (l.s.n) memcpy(p, l.s.p, l.s.n);
        if (r.s.n) memcpy(p + l.s.n, r.s.p, r.s.n);
        return tv_str((struct tstr){p, l.s.n + r.s.n});
    }
    tv_raw(rt, &b, l);
    tv_raw(rt, &b, r);
    return tv_str(tbuf_str(&b));
}

static int str_contains(struct tstr hay, struct tstr needle)
{
    if (needle.n == 0) return 1;
    return hay.n >= needle.n && memmem(hay.p, hay.n, needle.p, needle.n) != NULL;
}

static const char *OPNAME[] = {"", "and", "or", "not", "==", "!=", "<", ">", "<=", ">=", "in", "not in",
                               "+", "-", "~", "*", "/", "//", "%", "**"};

static struct tv eval_binary(struct tmpl_rt *rt, const struct tnode *n, struct tscope *sc)
{
    enum tn_op op = n->op;
    struct tv l = tmpl_eval(rt, n->a, sc);
    if (op == OP_AND) return tv_truthy(l) ? tmpl_eval(rt, n->b, sc) : l;
    if (op == OP_OR) return tv_truthy(l) ? l : tmpl_eval(rt, n->b, sc);
    struct tv r = tmpl_eval(rt, n->b, sc);
    rt->at = n;
    if (op == OP_EQ) return tv_bool(loose_eq_rt(rt, l, r));
    if (op == OP_NE) return tv_bool(!loose_eq_rt(rt, l, r));
    if (is_num(l) && is_num(r) && op != OP_CONCAT && op != OP_POW) {
        double a = l.n, b = r.n;
        int fl = l.t == TV_FLOAT || r.t == TV_FLOAT;
        switch (op) {
        case OP_ADD: return fl ? tv_float(a + b) : tv_int(a + b);
        case OP_SUB: return fl ? tv_float(a - b) : tv_int(a - b);
        case OP_MUL: return fl ? tv_float(a * b) : tv_int(a * b);
        case OP_DIV: return tv_float(a / b);
        case OP_FLOORDIV: return fl ? tv_float(floor(a / b)) : tv_int(floor(a / b));
        case OP_MOD: return fl ? tv_float(fmod(a, b)) : tv_int(fmod(a, b));
        case OP_LT: return tv_bool(a < b);
        case OP_GT: return tv_bool(a > b);
        case OP_GE: return tv_bool(a >= b);
        case OP_LE: return tv_bool(a <= b);
        default: break;
        }
    } else if (l.t == TV_UNDEF || r.t == TV_UNDEF) {
        if (r.t == TV_UNDEF && (op == OP_IN || op == OP_NOTIN)) return tv_bool(op == OP_NOTIN);
        if (op == OP_CONCAT && l.t != TV_NULL && r.t != TV_NULL) {
            struct tbuf b = {0};
            if (l.t != TV_UNDEF) tv_raw(rt, &b, l);
            if (r.t != TV_UNDEF) tv_raw(rt, &b, r);
            return tv_str(tbuf_str(&b));
        }
        tmpl_fail(rt, "Cannot perform operation %s on undefined values", OPNAME[op]);
    } else if (l.t == TV_NULL || r.t == TV_NULL) {
        tmpl_fail(rt, "Cannot perform operation on null values");
    } else if (op == OP_CONCAT) {
        return concat_raw(rt, l, r);
    } else if (op == OP_POW && is_numlike(l) && is_numlike(r)) {
        double a = numval(l), b = numval(r);
        if (a == 0 && b < 0) tmpl_fail(rt, "0.0 cannot be raised to a negative power");
        double res = pow(a, b);
        if (!isfinite(res)) tmpl_fail(rt, "Exponentiation result is not a finite real number");
        return (l.t == TV_FLOAT || r.t == TV_FLOAT || b < 0) ? tv_float(res) : tv_int(res);
    } else if (l.t == TV_ARRAY && r.t == TV_ARRAY) {
        if (op == OP_ADD) {
            struct tv out = tv_array(rt, l.a->n + r.a->n);
            if (l.a->n) memcpy(out.a->v, l.a->v, l.a->n * sizeof(struct tv));
            if (r.a->n) memcpy(out.a->v + l.a->n, r.a->v, r.a->n * sizeof(struct tv));
            return out;
        }
    } else if (r.t == TV_ARRAY) {
        if (op == OP_IN || op == OP_NOTIN) {
            int member = 0;
            for (size_t i = 0; i < r.a->n && !member; i++) member = tmpl_strict_eq(r.a->v[i], l);
            return tv_bool(op == OP_IN ? member : !member);
        }
    }
    if ((l.t == TV_STR || r.t == TV_STR) && op == OP_ADD) return concat_raw(rt, l, r);
    if (l.t == TV_STR && r.t == TV_STR && (op == OP_IN || op == OP_NOTIN)) {
        int c = str_contains(r.s, l.s);
        return tv_bool(op == OP_IN ? c : !c);
    }
    if (l.t == TV_STR && r.t == TV_OBJECT && (op == OP_IN || op == OP_NOTIN)) {
        int c = tobj_get(r.o, l.s) != NULL;
        return tv_bool(op == OP_IN ? c : !c);
    }
    tmpl_fail(rt, "Unknown operator \"%s\" between %s and %s", OPNAME[op], tv_type_name(l), tv_type_name(r));
}

/* ---- member access, slices ------------------------------------------------------- */

/* An index, slice bound or step as an integer: numbers are doubles, and one beyond
 * long long's range (a template may write any literal) would make the cast
 * undefined; anything past +-2^62 acts like it on any real length. */
static long long slice_ll(double n)
{
    const double lim = 4611686018427387904.0; /* 2^62 */
    if (n != n)
        return 0; /* NaN */
    return n >= lim ? (long long)lim : n <= -lim ? -(long long)lim : (long long)n;
}

/* utils.ts slice() over n items; fills idx with the chosen positions. */
static size_t slice_idx(struct tmpl_rt *rt, long long len, struct tv start, struct tv stop, struct tv step, long long **out)
{
    long long st = step.t == TV_INT ? slice_ll(step.n) : 1;
    if (st == 0) tmpl_fail(rt, "slice step cannot be zero");
    long long s, e;
    if (st > 0) {
        s = start.t == TV_INT ? slice_ll(start.n) : 0;
        s = s < 0 ? (len + s > 0 ? len + s : 0) : (s < len ? s : len);
        e = stop.t == TV_INT ? slice_ll(stop.n) : len;
        e = e < 0 ? (len + e > 0 ? len + e : 0) : (e < len ? e : len);
    } else {
        s = start.t == TV_INT ? slice_ll(start.n) : len - 1;
        s = s < 0 ? (len + s > -1 ? len + s : -1) : (s < len - 1 ? s : len - 1);
        e = stop.t == TV_INT ? slice_ll(stop.n) : -1;
        e = e < -1 ? (len + e > -1 ? len + e : -1) : (e < len - 1 ? e : len - 1);
    }
    long long cnt = 0;
    for (long long i = s; st > 0 ? i < e : i > e; i += st) cnt++;
    *out = tmpl_alloc(rt, (size_t)(cnt ? cnt : 1) * sizeof(long long));
    size_t k = 0;
    for (long long i = s; st > 0 ? i < e : i > e; i += st) (*out)[k++] = i;
    return k;
}

static struct tv eval_slice(struct tmpl_rt *rt, struct tv obj, const struct tnode *sl, struct tscope *sc)
{
    if (obj.t != TV_ARRAY && obj.t != TV_STR) tmpl_fail(rt, "Slice object must be an array or string");
    struct tv a = sl->a ? tmpl_eval(rt, sl->a, sc) : tv_undef();
    struct tv b = sl->b ? tmpl_eval(rt, sl->b, sc) : tv_undef();
    struct tv c = sl->c ? tmpl_eval(rt, sl->c, sc) : tv_undef();
    if (!(a.t == TV_INT || a.t == TV_UNDEF)) tmpl_fail(rt, "Slice start must be numeric or undefined");
    if (!(b.t == TV_INT || b.t == TV_UNDEF)) tmpl_fail(rt, "Slice stop must be numeric or undefined");
    if (!(c.t == TV_INT || c.t == TV_UNDEF)) tmpl_fail(rt, "Slice step must be numeric or undefined");
    long long *idx;
    if (obj.t == TV_ARRAY) {
        size_t k = slice_idx(rt, (long long)obj.a->n, a, b, c, &idx);
        struct tv out = tv_array(rt, k);
        for (size_t i = 0; i < k; i++) out.a->v[i] = obj.a->v[idx[i]];
        return out;
    }
    /* strings slice by code point (Array.from) */
    size_t ncp = 0;
    for (size_t i = 0; i < obj.s.n; i += tmpl_utf8_next(obj.s.p + i, obj.s.n - i)) ncp++;
    size_t *off = tmpl_alloc(rt, (ncp + 1) * sizeof(size_t));
    size_t j = 0;
    for (size_t i = 0; i < obj.s.n; i += tmpl_utf8_next(obj.s.p + i, obj.s.n - i)) off[j++] = i;
    off[ncp] = obj.s.n;
    size_t k = slice_idx(rt, (long long)ncp, a, b, c, &idx);
    struct tbuf buf = {0};
    for (size_t i = 0; i < k; i++) tbuf_put(rt, &buf, obj.s.p + off[idx[i]], off[idx[i] + 1] - off[idx[i]]);
    return tv_str(tbuf_str(&buf));
}

/* String#at(i) on UTF-16 units; half of a surrogate pair becomes U+FFFD. */
static struct tv str_at(struct tmpl_rt *rt, struct tstr s, double di)
{
    long long len = (long long)tmpl_utf16_len(s), i = slice_ll(di);
    if (i < 0) i += len;
    if (i < 0 || i >= len) return tv_undef();
    long long u = 0;
    for (size_t p = 0; p < s.n;) {
        size_t cl = tmpl_utf8_next(s.p + p, s.n - p);
        int units = cl == 4 ? 2 : 1;
        if (i < u + units) {
            if (units == 2) return tv_cstr(rt, "\xEF\xBF\xBD", 3);
            return tv_str((struct tstr){s.p + p, cl});
        }
        u += units, p += cl;
    }
    return tv_undef();
}

static struct tv eval_member(struct tmpl_rt *rt, const struct tnode *n, struct tscope *sc)
{
    struct tv obj = tmpl_eval(rt, n->a, sc);
    struct tv prop;
    rt->at = n;
    if (n->flag) {
        if (n->b->k == TN_SLICE) return eval_slice(rt, obj, n->b, sc);
        prop = tmpl_eval(rt, n->b, sc);
        rt->at = n;
    } else if (n->b->k == TN_INT) {
        prop = tv_int(n->b->num);
    } else {
        prop = tv_str(n->b->s);
    }
    if (obj.t == TV_OBJECT || obj.t == TV_NS) {
        if (prop.t != TV_STR) tmpl_fail(rt, "Cannot access property with non-string: got %s", tv_type_name(prop));
        struct tv *v = tobj_get(obj.o, prop.s);
        if (v) return *v;
        return obj.t == TV_OBJECT ? tmpl_builtin_member(rt, obj, prop.s) : tv_undef();
    }
    if (obj.t == TV_ARRAY || obj.t == TV_STR) {
        if (prop.t == TV_INT) {
            if (obj.t == TV_STR) return str_at(rt, obj.s, prop.n);
            long long i = slice_ll(prop.n), len = (long long)obj.a->n;
            if (i < 0) i += len;
            return (i >= 0 && i < len) ? obj.a->v[i] : tv_undef();
        }
        if (prop.t == TV_STR) return tmpl_builtin_member(rt, obj, prop.s);
        tmpl_fail(rt, "Cannot access property with non-string/non-number: got %s", tv_type_name(prop));
    }
    if (prop.t != TV_STR) tmpl_fail(rt, "Cannot access property with non-string: got %s", tv_type_name(prop));
    return tmpl_builtin_member(rt, obj, prop.s);
}

/* ---- calls ------------------------------------------------------------------------ */

void tmpl_eval_args(struct tmpl_rt *rt, const struct tnlist *args, struct tscope *sc, struct tv **pos,
                    size_t *npos, struct tobj **kw)
{
    size_t cap = args->n + 1, n = 0;
    struct tv *p = tmpl_alloc(rt, cap * sizeof(*p));
    struct tobj *k = NULL;
    for (size_t i = 0; i < args->n; i++) {
        const struct tnode *a = args->v[i];
        if (a->k == TN_SPREAD) {
            struct tv v = tmpl_eval(rt, a->a, sc);
            if (v.t != TV_ARRAY) tmpl_fail(rt, "Cannot unpack non-iterable type: %s", tv_type_name(v));
            struct tv *np = tmpl_alloc(rt, (cap + v.a->n) * sizeof(*np));
            memcpy(np, p, n * sizeof(*np));
            p = np, cap += v.a->n;
            for (size_t j = 0; j < v.a->n; j++) p[n++] = v.a->v[j];
        } else if (a->k != TN_KWARG && a->k != TN_KWSPREAD) {
            p[n++] = tmpl_eval(rt, a, sc);
        }
    }
    for (size_t i = 0; i < args->n; i++) {
        const struct tnode *a = args->v[i];
        if (a->k != TN_KWARG && a->k != TN_KWSPREAD) continue;
        if (!k) k = tv_object(rt).o, k->kind = TOBJ_KWARGS;
        if (a->k == TN_KWARG) {
            struct tv v = tmpl_eval(rt, a->a, sc);
            if (tobj_get(k, a->s)) tmpl_fail(rt, "Got multiple values for keyword argument '%.*s'", (int)a->s.n, a->s.p);
            tobj_append(rt, k, a->s, v);
        } else {
            struct tv v = tmpl_eval(rt, a->a, sc);
            if (v.t != TV_OBJECT) tmpl_fail(rt, "Argument after ** must be a mapping, not %s", tv_type_name(v));
            for (size_t j = 0; j < v.o->n; j++) {
                if (tobj_get(k, v.o->kv[j].k))
                    tmpl_fail(rt, "Got multiple values for keyword argument '%.*s'", (int)v.o->kv[j].k.n, v.o->kv[j].k.p);
                tobj_append(rt, k, v.o->kv[j].k, v.o->kv[j].v);
            }
        }
    }
    if (k && k->n == 0) k = NULL;
    *pos = p, *npos = n, *kw = k;
}

static void bind_macro_args(struct tmpl_rt *rt, const char *name, const struct tnlist *params, int special,
                            struct tv *args, size_t nargs, struct tobj *kw, struct tscope *scope)
{
    size_t nkw = kw ? kw->n : 0;
    char *used = tmpl_alloc(rt, nkw + 1);
    for (size_t i = 0; i < params->n; i++) {
        const struct tnode *pm = params->v[i];
        struct tstr pname = pm->s;
        int have = i < nargs;
        struct tv v = have ? args[i] : tv_undef();
        for (size_t j = 0; !have && j < nkw; j++)
            if (!used[j] && tstr_eqs(kw->kv[j].k, pname)) v = kw->kv[j].v, used[j] = 1, have = 1;
        tmpl_scope_set(rt, scope, pname, v);
    }
    struct tv rest = tv_object(rt);
    for (size_t j = 0; j < nkw; j++)
        if (!used[j]) tobj_append(rt, rest.o, kw->kv[j].k, kw->kv[j].v);
    if (special & TMPL_SPECIAL_KWARGS)
        tmpl_scope_set(rt, scope, tstr_lit("kwargs"), rest);
    else if (rest.o->n)
        tmpl_fail(rt, "macro %s takes no keyword argument '%.*s'", name, (int)rest.o->kv[0].k.n, rest.o->kv[0].k.p);
    if (special & TMPL_SPECIAL_VARARGS) {
        size_t extra = nargs > params->n ? nargs - params->n : 0;
        struct tv va = tv_array(rt, extra);
        for (size_t i = 0; i < extra; i++) va.a->v[i] = args[params->n + i];
        tmpl_scope_set(rt, scope, tstr_lit("varargs"), va);
    } else if (nargs > params->n) {
        tmpl_fail(rt, "macro %s takes not more than %zu argument(s)", name, params->n);
    }
    /* defaults are evaluated after every parameter is bound */
    for (size_t i = 0; i < params->n; i++) {
        const struct tnode *pm = params->v[i];
        if (pm->k != TN_KWARG || i < nargs) continue;
        int from_kw = 0;
        for (size_t j = 0; j < nkw; j++)
            if (tstr_eqs(kw->kv[j].k, pm->s)) from_kw = 1;
        if (!from_kw) tmpl_scope_set(rt, scope, pm->s, tmpl_eval(rt, pm->a, scope));
    }
}

static struct tv eval_body_string(struct tmpl_rt *rt, const struct tnlist *body, struct tscope *sc)
{
    struct tbuf b = {0};
    if (tmpl_render_block(rt, body, sc, &b)) tmpl_fail(rt, "break/continue outside of a loop");
    return tv_str(tbuf_str(&b));
}

struct tv tmpl_call(struct tmpl_rt *rt, struct tv fn, struct tv *args, size_t nargs, struct tobj *kw,
                    struct tscope *callsite)
{
    if (fn.t != TV_FUNC) tmpl_fail(rt, "Cannot call something that is not a function: got %s", tv_type_name(fn));
    const struct tfunc *f = fn.f;
    if (f->kind == TF_BUILTIN) return tmpl_call_builtin(rt, f, args, nargs, kw);
    if (++rt->depth > TMPL_MAX_DEPTH) tmpl_fail(rt, "template recursion too deep");
    struct tv r;
    if (f->kind == TF_MACRO) {
        struct tscope *parent = f->closure;
        if (f->def->flag & TMPL_SPECIAL_CALLER) {
            struct tv caller = tv_undef();
            if (callsite && callsite->call_block) {
                for (size_t i = 0; i < callsite->n; i++)
                    if (tstr_eq(callsite->vars[i].name, "caller")) caller = callsite->vars[i].v;
            }
            parent = tmpl_scope_new(rt, f->closure);
            tmpl_scope_set(rt, parent, tstr_lit("caller"), caller);
        }
        struct tscope *ms = tmpl_scope_new(rt, parent);
        char name[96];
        snprintf(name, sizeof(name), "'%.*s'", (int)f->def->s.n > 80 ? 80 : (int)f->def->s.n, f->def->s.p);
        bind_macro_args(rt, name, &f->def->l2, f->def->flag, args, nargs, kw, ms);
        r = eval_body_string(rt, &f->def->l1, ms);
    } else {
        struct tscope *cs = tmpl_scope_new(rt, f->closure);
        bind_macro_args(rt, "None", &f->def->l2, f->def->flag, args, nargs, kw, cs);
        r = eval_body_string(rt, &f->def->l1, cs);
    }
    rt->depth--;
    return r;
}

static struct tv eval_call(struct tmpl_rt *rt, const struct tnode *n, struct tscope *sc)
{
    struct tv *args;
    size_t nargs;
    struct tobj *kw;
    tmpl_eval_args(rt, &n->l1, sc, &args, &nargs, &kw);
    struct tv fn = tmpl_eval(rt, n->a, sc);
    rt->at = n;
    return tmpl_call(rt, fn, args, nargs, kw, sc);
}

static struct tv eval_callblock(struct tmpl_rt *rt, const struct tnode *n, struct tscope *sc)
{
    struct tfunc *caller = tmpl_alloc(rt, sizeof(*caller));
    caller->kind = TF_CALLER, caller->def = n, caller->closure = sc;
    struct tv *args;
    size_t nargs;
    struct tobj *kw;
    tmpl_eval_args(rt, &n->a->l1, sc, &args, &nargs, &kw);
    struct tv fn = tmpl_eval(rt, n->a->a, sc);
    rt->at = n;
    if (fn.t != TV_FUNC) tmpl_fail(rt, "Cannot call something that is not a function: got %s", tv_type_name(fn));
    struct tscope *env = tmpl_scope_new(rt, sc);
    env->call_block = 1;
    tmpl_scope_set(rt, env, tstr_lit("caller"), (struct tv){.t = TV_FUNC, .f = caller});
    return tmpl_call(rt, fn, args, nargs, kw, env);
}

/* ---- expressions ------------------------------------------------------------------- */

struct tv tmpl_eval(struct tmpl_rt *rt, const struct tnode *n, struct tscope *sc)
{
    if (!n) return tv_undef();
    rt->at = n;
    if (++rt->depth > TMPL_MAX_DEPTH) tmpl_fail(rt, "template expression nesting too deep");
    struct tv r;
    switch (n->k) {
    case TN_IDENT: r = tmpl_scope_get(sc, n->s); break;
    case TN_INT: r = tv_int(n->num); break;
    case TN_FLOAT: r = tv_float(n->num); break;
    case TN_STR:
    case TN_TEXT: r = tv_str(n->s); break;
    case TN_BINARY: r = eval_binary(rt, n, sc); break;
    case TN_MEMBER: r = eval_member(rt, n, sc); break;
    case TN_CALL: r = eval_call(rt, n, sc); break;
    case TN_FILTER: {
        struct tv v = tmpl_eval(rt, n->a, sc);
        rt->at = n;
        r = tmpl_apply_filter(rt, v, n->b, sc);
        break;
    }
    case TN_TEST: {
        struct tv v = tmpl_eval(rt, n->a, sc);
        rt->at = n;
        int t = tmpl_run_test(rt, n->s, v, NULL);
        r = tv_bool(n->flag ? !t : t);
        break;
    }
    case TN_TERNARY: r = tv_truthy(tmpl_eval(rt, n->a, sc)) ? tmpl_eval(rt, n->b, sc) : tmpl_eval(rt, n->c, sc); break;
    case TN_SELECT: r = tv_truthy(tmpl_eval(rt, n->b, sc)) ? tmpl_eval(rt, n->a, sc) : tv_undef(); break;
    case TN_UNARY: {
        struct tv v = tmpl_eval(rt, n->a, sc);
        rt->at = n;
        if (n->op == OP_NOT) {
            r = tv_bool(!tv_truthy(v));
        } else {
            if (!is_numlike(v)) tmpl_fail(rt, "Unknown operator \"%s\" for %s", n->op == OP_SUB ? "-" : "+", tv_type_name(v));
            double x = (n->op == OP_SUB ? -1 : 1) * numval(v);
            r = v.t == TV_FLOAT ? tv_float(x) : tv_int(x);
        }
        break;
    }
    case TN_ARRAY:
    case TN_TUPLE:
        r = tv_array(rt, n->l1.n);
        r.a->tuple = n->k == TN_TUPLE;
        for (size_t i = 0; i < n->l1.n; i++) r.a->v[i] = tmpl_eval(rt, n->l1.v[i], sc);
        break;
    case TN_OBJECT:
        r = tv_object(rt);
        for (size_t i = 0; i < n->l1.n; i++) {
            struct tv k = tmpl_eval(rt, n->l1.v[i], sc);
            if (k.t != TV_STR) tmpl_fail(rt, "Object keys must be strings: got %s", tv_type_name(k));
            tobj_set(rt, r.o, k.s, tmpl_eval(rt, n->l2.v[i], sc));
        }
        break;
    case TN_CALLBLOCK: r = eval_callblock(rt, n, sc); break;
    case TN_FILTERBLOCK: {
        struct tv body = eval_body_string(rt, &n->l1, sc);
        rt->at = n;
        r = tmpl_apply_filter(rt, body, n->b, sc);
        break;
    }
    default: tmpl_fail(rt, "unexpected node in expression");
    }
    rt->depth--;
    return r;
}

/* ---- statements ----------------------------------------------------------------------- */

static void bind_loopvar(struct tmpl_rt *rt, const struct tnode *lv, struct tv cur, struct tscope *sc)
{
    if (lv->k == TN_IDENT) return tmpl_scope_set(rt, sc, lv->s, cur);
    for (size_t j = 0; j < lv->l1.n; j++) {
        if (lv->l1.v[j]->k != TN_IDENT) tmpl_fail(rt, "Cannot unpack non-identifier type");
        tmpl_scope_set(rt, sc, lv->l1.v[j]->s, j < cur.a->n ? cur.a->v[j] : tv_undef());
    }
}

static int render_for(struct tmpl_rt *rt, const struct tnode *n, struct tscope *env, struct tbuf *out)
{
    struct tscope *sc = tmpl_scope_new(rt, env);
    const struct tnode *test = NULL;
    struct tv it;
    if (n->b->k == TN_SELECT) {
        it = tmpl_eval(rt, n->b->a, sc);
        test = n->b->b;
    } else {
        it = tmpl_eval(rt, n->b, sc);
    }
    rt->at = n;
    if (it.t == TV_OBJECT) { /* iterating a mapping yields its keys */
        struct tv keys = tv_array(rt, it.o->n);
        for (size_t i = 0; i < it.o->n; i++) keys.a->v[i] = tv_str(it.o->kv[i].k);
        it = keys;
    } else if (it.t != TV_ARRAY) {
        tmpl_fail(rt, "Expected iterable or object type in for loop: got %s", tv_type_name(it));
    }
    const struct tnode *lv = n->a;
    struct tv *items = tmpl_alloc(rt, (it.a->n + 1) * sizeof(*items));
    size_t ni = 0;
    for (size_t i = 0; i < it.a->n; i++) {
        struct tv cur = it.a->v[i];
        if (lv->k == TN_TUPLE) {
            if (cur.t != TV_ARRAY || cur.a->tuple) tmpl_fail(rt, "Cannot unpack non-iterable type: %s", tv_type_name(cur));
            if (lv->l1.n != cur.a->n) tmpl_fail(rt, "Too %s items to unpack", lv->l1.n > cur.a->n ? "few" : "many");
        }
        if (test) {
            struct tscope *ls = tmpl_scope_new(rt, sc);
            bind_loopvar(rt, lv, cur, ls);
            if (!tv_truthy(tmpl_eval(rt, test, ls))) continue;
        }
        items[ni++] = cur;
    }
    int none = 1;
    for (size_t i = 0; i < ni; i++) {
        if (++rt->steps > TMPL_MAX_STEPS) tmpl_fail(rt, "template loop limit exceeded");
        struct tv loop = tv_object(rt);
        struct tobj *o = loop.o;
        tobj_append(rt, o, tstr_lit("index"), tv_int((double)i + 1));
        tobj_append(rt, o, tstr_lit("index0"), tv_int((double)i));
        tobj_append(rt, o, tstr_lit("revindex"), tv_int((double)(ni - i)));
        tobj_append(rt, o, tstr_lit("revindex0"), tv_int((double)(ni - i - 1)));
        tobj_append(rt, o, tstr_lit("first"), tv_bool(i == 0));
        tobj_append(rt, o, tstr_lit("last"), tv_bool(i == ni - 1));
        tobj_append(rt, o, tstr_lit("length"), tv_int((double)ni));
        tobj_append(rt, o, tstr_lit("previtem"), i > 0 ? items[i - 1] : tv_undef());
        tobj_append(rt, o, tstr_lit("nextitem"), i + 1 < ni ? items[i + 1] : tv_undef());
        tmpl_scope_set(rt, sc, tstr_lit("loop"), loop);
        bind_loopvar(rt, lv, items[i], sc);
        size_t mark = out->n;
        int fl = tmpl_render_block(rt, &n->l1, sc, out);
        if (fl) {
            out->n = mark; /* the reference drops an interrupted iteration's output */
            if (fl == 1) break;
            continue;
        }
        none = 0;
    }
    if (none) return tmpl_render_block(rt, &n->l2, sc, out);
    return 0;
}

/* `x|first` / `x|last` of an empty list give the reference a bare JS
 * undefined: fatal wherever it is used, except that storing it with set and
 * reading it back yields an ordinary undefined. */
static struct tv eval_set_rhs(struct tmpl_rt *rt, const struct tnode *e, struct tscope *sc)
{
    if (e->k == TN_FILTER && e->b->k == TN_IDENT && (tstr_eq(e->b->s, "first") || tstr_eq(e->b->s, "last"))) {
        struct tv v = tmpl_eval(rt, e->a, sc);
        if (v.t == TV_ARRAY && v.a->n == 0) return tv_undef();
        rt->at = e;
        return tmpl_apply_filter(rt, v, e->b, sc);
    }
    return tmpl_eval(rt, e, sc);
}

static int exec_set(struct tmpl_rt *rt, const struct tnode *n, struct tscope *sc)
{
    struct tv rhs;
    if (n->b) {
        rhs = eval_set_rhs(rt, n->b, sc);
    } else {
        struct tbuf b = {0};
        int fl = tmpl_render_block(rt, &n->l1, sc, &b);
        if (fl) return fl;
        rhs = tv_str(tbuf_str(&b));
    }
    rt->at = n;
    const struct tnode *t = n->a;
    if (t->k == TN_IDENT) {
        tmpl_scope_set(rt, sc, t->s, rhs);
    } else if (t->k == TN_TUPLE) {
        if (rhs.t != TV_ARRAY) tmpl_fail(rt, "Cannot unpack non-iterable type in set: %s", tv_type_name(rhs));
        if (rhs.a->n != t->l1.n) tmpl_fail(rt, "Too %s items to unpack in set", t->l1.n > rhs.a->n ? "few" : "many");
        for (size_t i = 0; i < t->l1.n; i++) {
            if (t->l1.v[i]->k != TN_IDENT) tmpl_fail(rt, "Cannot unpack to non-identifier in set");
            tmpl_scope_set(rt, sc, t->l1.v[i]->s, rhs.a->v[i]);
        }
    } else {
        struct tv obj = tmpl_eval(rt, t->a, sc);
        rt->at = n;
        if (obj.t != TV_NS) tmpl_fail(rt, "cannot assign attribute on non-namespace object");
        if (t->flag || t->b->k != TN_IDENT) tmpl_fail(rt, "Cannot assign to member with non-identifier property");
        tobj_set(rt, obj.o, t->b->s, rhs);
    }
    return 0;
}

int tmpl_render_block(struct tmpl_rt *rt, const struct tnlist *body, struct tscope *sc, struct tbuf *out)
{
    if (++rt->depth > TMPL_MAX_DEPTH) tmpl_fail(rt, "template nesting too deep");
    int fl = 0;
    for (size_t i = 0; i < body->n && !fl; i++) {
        const struct tnode *s = body->v[i];
        rt->at = s;
        switch (s->k) {
        case TN_TEXT:
        case TN_STR: tbuf_put(rt, out, s->s.p, s->s.n); break;
        case TN_COMMENT: break;
        case TN_IF: {
            struct tv t = tmpl_eval(rt, s->a, sc);
            fl = tmpl_render_block(rt, tv_truthy(t) ? &s->l1 : &s->l2, sc, out);
            break;
        }
        case TN_FOR: fl = render_for(rt, s, sc, out); break;
        case TN_SET: fl = exec_set(rt, s, sc); break;
        case TN_BREAK: fl = 1; break;
        case TN_CONTINUE: fl = 2; break;
        case TN_MACRO: {
            struct tfunc *f = tmpl_alloc(rt, sizeof(*f));
            f->kind = TF_MACRO, f->def = s, f->closure = sc;
            tmpl_scope_set(rt, sc, s->s, (struct tv){.t = TV_FUNC, .f = f});
            break;
        }
        default: {
            struct tv v = tmpl_eval(rt, s, sc);
            if (v.t != TV_NULL && v.t != TV_UNDEF) tv_display(rt, out, v);
        }
        }
    }
    rt->depth--;
    return fl;
}
