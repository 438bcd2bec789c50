/* engine/tmpl_apply.c: filter application (`x|f`, `x|f(args)`) and tests
 * (`x is t`) for the chat-template interpreter.
 *
 * A port of Interpreter.applyFilter and Environment.TESTS from
 * @huggingface/jinja's runtime.ts, keeping its two dispatch tables (bare and
 * called filters) and its per-type branches, so the same template succeeds or
 * fails here as there. Methods and globals live in tmpl_filters.c.
 *
 * Threads: any thread; works on one render's state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tmpl_internal.h"

/* ---- tests --------------------------------------------------------------------- */

static int is_cased(struct tmpl_rt *rt, struct tstr s, int upper)
{
    return tstr_eqs(s, tmpl_case_map(rt, s, upper, (size_t)-1)); /* str === str.toLowerCase() */
}

int tmpl_run_test(struct tmpl_rt *rt, struct tstr n, struct tv v, const struct tv *arg)
{
    if (tstr_eq(n, "boolean")) return v.t == TV_BOOL;
    if (tstr_eq(n, "callable")) return v.t == TV_FUNC;
    if (tstr_eq(n, "odd") || tstr_eq(n, "even")) {
        if (v.t != TV_INT) tmpl_fail(rt, "cannot %.*s on %s", (int)n.n, n.p, tv_type_name(v));
        int odd = fmod(v.n, 2) != 0;
        return tstr_eq(n, "odd") ? odd : !odd;
    }
    if (tstr_eq(n, "false")) return v.t == TV_BOOL && !v.b;
    if (tstr_eq(n, "true")) return v.t == TV_BOOL && v.b;
    if (tstr_eq(n, "none")) return v.t == TV_NULL;
    if (tstr_eq(n, "string")) return v.t == TV_STR;
    if (tstr_eq(n, "number")) return v.t == TV_INT || v.t == TV_FLOAT;
    if (tstr_eq(n, "integer")) return v.t == TV_INT;
    if (tstr_eq(n, "iterable")) return (v.t == TV_ARRAY && !v.a->tuple) || v.t == TV_STR;
    if (tstr_eq(n, "mapping")) return v.t == TV_OBJECT;
    if (tstr_eq(n, "sequence")) return v.t == TV_ARRAY || v.t == TV_OBJECT || v.t == TV_STR;
    if (tstr_eq(n, "lower")) return v.t == TV_STR && is_cased(rt, v.s, 0);
    if (tstr_eq(n, "upper")) return v.t == TV_STR && is_cased(rt, v.s, 1);
    if (tstr_eq(n, "defined")) return v.t != TV_UNDEF;
    if (tstr_eq(n, "undefined")) return v.t == TV_UNDEF;
    if (tstr_eq(n, "equalto") || tstr_eq(n, "eq")) {
        /* JS: `b.value` of a missing argument throws */
        if (!arg) tmpl_fail(rt, "test '%.*s' needs a value to compare with", (int)n.n, n.p);
        return tmpl_strict_eq(v, *arg);
    }
    tmpl_fail(rt, "Unknown test: %.*s", (int)n.n, n.p);
}

/* ---- helpers -------------------------------------------------------------------- */

static struct tv *kwget(struct tobj *kw, const char *k) { return kw ? tobj_get(kw, tstr_lit(k)) : NULL; }

static struct tv opt(struct tv *pos, size_t np, size_t i, struct tobj *kw, const char *k, struct tv dflt)
{
    if (i < np) return pos[i];
    struct tv *v = kwget(kw, k);
    return v ? *v : dflt;
}

/* parseInt(s, 10) / parseFloat(s): NaN when no numeric prefix. */
static double js_parse_num(struct tstr s, int is_float)
{
    s = tmpl_trim(s, 1, 0);
    char buf[128];
    size_t n = s.n < sizeof(buf) - 1 ? s.n : sizeof(buf) - 1;
    memcpy(buf, s.p, n);
    buf[n] = 0;
    const char *p = buf;
    size_t i = 0;
    if (p[i] == '+' || p[i] == '-') i++;
    if (is_float && !strncmp(p + i, "Infinity", 8)) return p[0] == '-' ? -INFINITY : INFINITY;
    size_t d0 = i;
    while (p[i] >= '0' && p[i] <= '9') i++;
    size_t intd = i - d0;
    if (!is_float) {
        if (!intd) return NAN;
        return strtod((buf[i] = 0, buf), NULL);
    }
    size_t fracd = 0;
    if (p[i] == '.') {
        size_t j = i + 1;
        while (p[j] >= '0' && p[j] <= '9') j++, fracd++;
        if (intd || fracd) i = j;
    }
    if (!intd && !fracd) return NAN;
    if (p[i] == 'e' || p[i] == 'E') {
        size_t j = i + 1;
        if (p[j] == '+' || p[j] == '-') j++;
        if (p[j] >= '0' && p[j] <= '9') {
            while (p[j] >= '0' && p[j] <= '9') j++;
            i = j;
        }
    }
    buf[i] = 0;
    return strtod(buf, NULL);
}

/* getAttributeValue: "a.b.0" paths through objects and arrays. */
static struct tv attr_path(struct tv item, struct tstr path)
{
    struct tv v = item;
    size_t st = 0;
    for (;;) {
        const char *dot = memchr(path.p + st, '.', path.n - st);
        struct tstr part = {path.p + st, dot ? (size_t)(dot - (path.p + st)) : path.n - st};
        if (v.t == TV_OBJECT || v.t == TV_NS) {
            struct tv *e = tobj_get(v.o, part);
            v = e ? *e : tv_undef();
        } else if (v.t == TV_ARRAY) {
            char buf[32];
            size_t n = part.n < 31 ? part.n : 31;
            memcpy(buf, part.p, n);
            buf[n] = 0;
            char *end;
            long idx = strtol(buf, &end, 10);
            if (end == buf || idx < 0 || (size_t)idx >= v.a->n) return tv_undef();
            v = v.a->v[idx];
        } else {
            return tv_undef();
        }
        if (!dot) break;
        st = (size_t)(dot - path.p) + 1;
    }
    return v;
}

/* Array#join over raw values: null/undefined become "". */
static struct tv join_raw(struct tmpl_rt *rt, struct tv arr, struct tstr sep)
{
    struct tbuf b = {0};
    for (size_t i = 0; i < arr.a->n; i++) {
        if (i) tbuf_put(rt, &b, sep.p, sep.n);
        struct tv x = arr.a->v[i];
        if (x.t != TV_NULL && x.t != TV_UNDEF) tv_raw(rt, &b, x);
    }
    return tv_str(tbuf_str(&b));
}

static struct tv indent_str(struct tmpl_rt *rt, struct tstr s, struct tstr ind, int first, int blank)
{
    struct tbuf b = {0};
    size_t st = 0;
    for (int line = 0;; line++) {
        const char *nl = memchr(s.p + st, '\n', s.n - st);
        size_t len = nl ? (size_t)(nl - (s.p + st)) : s.n - st;
        if (!((!first && line == 0) || (!blank && len == 0))) tbuf_put(rt, &b, ind.p, ind.n);
        tbuf_put(rt, &b, s.p + st, len);
        if (!nl) break;
        tbuf_put(rt, &b, "\n", 1);
        st += len + 1;
    }
    return tv_str(tbuf_str(&b));
}

static _Noreturn void no_filter(struct tmpl_rt *rt, const char *kind, struct tstr f)
{
    tmpl_fail(rt, "Unknown %s filter: %.*s", kind, (int)f.n, f.p);
}

static struct tv need_item(struct tmpl_rt *rt, struct tv arr, size_t i)
{
    /* JS returns a bare `undefined` here, which crashes whatever uses it */
    if (i >= arr.a->n) tmpl_fail(rt, "Cannot read properties of undefined (first/last of an empty list)");
    return arr.a->v[i];
}

static struct tv sort_array(struct tmpl_rt *rt, struct tv arr, int rev, int cs, struct tv attr)
{
    size_t n = arr.a->n;
    struct tv out = tv_array(rt, n), *keys = tmpl_alloc(rt, (n + 1) * sizeof(*keys));
    struct tbuf pb = {0};
    if (attr.t == TV_INT) tmpl_fmt_number(rt, &pb, attr.n);
    struct tstr path = attr.t == TV_STR ? attr.s : tbuf_str(&pb);
    for (size_t i = 0; i < n; i++) {
        out.a->v[i] = arr.a->v[i];
        keys[i] = attr.t == TV_NULL ? arr.a->v[i] : attr_path(arr.a->v[i], path);
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            int r = tmpl_compare(rt, keys[j - 1], keys[j], cs);
            if (rev) r = -r;
            if (r <= 0) break;
            struct tv t = keys[j];
            keys[j] = keys[j - 1], keys[j - 1] = t;
            t = out.a->v[j], out.a->v[j] = out.a->v[j - 1], out.a->v[j - 1] = t;
        }
    return out;
}

/* ---- bare filters: x|name ------------------------------------------------------------ */

static struct tv filter_bare(struct tmpl_rt *rt, struct tv v, struct tstr f, struct tscope *sc)
{
    static const struct tojson_opts dflt;
    if (tstr_eq(f, "safe")) return v;
    if (tstr_eq(f, "tojson")) {
        struct tbuf b = {0};
        tv_tojson(rt, &b, v, &dflt, 0, 1);
        return tv_str(tbuf_str(&b));
    }
    if (v.t == TV_ARRAY) {
        if (tstr_eq(f, "list")) return v;
        if (tstr_eq(f, "first")) return need_item(rt, v, 0);
        if (tstr_eq(f, "last")) return need_item(rt, v, v.a->n ? v.a->n - 1 : 0);
        if (tstr_eq(f, "length")) return tv_int((double)v.a->n);
        if (tstr_eq(f, "reverse")) {
            struct tv r = tv_array(rt, v.a->n);
            for (size_t i = 0; i < v.a->n; i++) r.a->v[i] = v.a->v[v.a->n - 1 - i];
            return r;
        }
        if (tstr_eq(f, "sort")) return sort_array(rt, v, 0, 0, tv_null());
        if (tstr_eq(f, "join")) return join_raw(rt, v, tstr_lit(""));
        if (tstr_eq(f, "string")) {
            static const struct tojson_opts o;
            struct tbuf b = {0};
            tv_tojson(rt, &b, v, &o, 0, 0);
            return tv_str(tbuf_str(&b));
        }
        if (tstr_eq(f, "unique")) {
            struct tv r = tv_array(rt, v.a->n);
            size_t k = 0;
            for (size_t i = 0; i < v.a->n; i++) {
                int seen = 0;
                for (size_t j = 0; j < k && !seen; j++) seen = tmpl_strict_eq(r.a->v[j], v.a->v[i]);
                if (!seen) r.a->v[k++] = v.a->v[i];
            }
            r.a->n = k;
            return r;
        }
        no_filter(rt, "ArrayValue", f);
    }
    if (v.t == TV_STR) {
        if (tstr_eq(f, "length") || tstr_eq(f, "upper") || tstr_eq(f, "lower") || tstr_eq(f, "title") ||
            tstr_eq(f, "capitalize")) {
            struct tv m = tmpl_builtin_member(rt, v, f);
            return m.t == TV_FUNC ? tmpl_call(rt, m, NULL, 0, NULL, sc) : m;
        }
        if (tstr_eq(f, "trim")) return tv_str(tmpl_trim(v.s, 1, 1));
        if (tstr_eq(f, "indent")) return indent_str(rt, v.s, tstr_lit("    "), 0, 0);
        if (tstr_eq(f, "join") || tstr_eq(f, "string")) return v;
        if (tstr_eq(f, "int")) {
            double x = js_parse_num(v.s, 0);
            return tv_int(isnan(x) ? 0 : x);
        }
        if (tstr_eq(f, "float")) {
            double x = js_parse_num(v.s, 1);
            return tv_float(isnan(x) ? 0 : x);
        }
        no_filter(rt, "StringValue", f);
    }
    if (v.t == TV_INT || v.t == TV_FLOAT) {
        if (tstr_eq(f, "abs")) return v.t == TV_INT ? tv_int(fabs(v.n)) : tv_float(fabs(v.n));
        if (tstr_eq(f, "int")) return tv_int(trunc(v.n) + 0.0);
        if (tstr_eq(f, "float")) return tv_float(v.n);
        if (tstr_eq(f, "string")) {
            struct tbuf b = {0};
            tv_display(rt, &b, v);
            return tv_str(tbuf_str(&b));
        }
        no_filter(rt, "NumericValue", f);
    }
    if (v.t == TV_OBJECT) {
        if (tstr_eq(f, "items")) return tmpl_call(rt, tmpl_builtin_member(rt, v, f), NULL, 0, NULL, sc);
        if (tstr_eq(f, "length")) return tv_int((double)v.o->n);
        struct tv m = tmpl_builtin_member(rt, v, f);
        if (m.t == TV_FUNC) return tmpl_call(rt, m, NULL, 0, NULL, sc);
        if (m.t != TV_UNDEF) return m;
        no_filter(rt, "ObjectValue", f);
    }
    if (v.t == TV_BOOL) {
        if (tstr_eq(f, "bool")) return v;
        if (tstr_eq(f, "int")) return tv_int(v.b);
        if (tstr_eq(f, "float")) return tv_float(v.b);
        if (tstr_eq(f, "string")) return tv_str(tstr_lit(v.b ? "true" : "false"));
        no_filter(rt, "BooleanValue", f);
    }
    tmpl_fail(rt, "Cannot apply filter \"%.*s\" to type: %s", (int)f.n, f.p, tv_type_name(v));
}

/* ---- called filters: x|name(args) ---------------------------------------------------- */

static struct tv filter_tojson(struct tmpl_rt *rt, struct tv v, struct tobj *kw)
{
    struct tojson_opts o = {0};
    struct tv *x;
    if ((x = kwget(kw, "indent")) && x->t != TV_NULL) {
        if (x->t != TV_INT) tmpl_fail(rt, "If set, indent must be a number");
        if (x->n < 0 || x->n > 64) tmpl_fail(rt, "tojson indent out of range");
        o.indent = (int)x->n;
    }
    if ((x = kwget(kw, "ensure_ascii"))) {
        if (x->t != TV_BOOL) tmpl_fail(rt, "If set, ensure_ascii must be a boolean");
        o.ensure_ascii = x->b;
    }
    if ((x = kwget(kw, "sort_keys"))) {
        if (x->t != TV_BOOL) tmpl_fail(rt, "If set, sort_keys must be a boolean");
        o.sort_keys = x->b;
    }
    if ((x = kwget(kw, "separators")) && x->t != TV_NULL) {
        if (x->t != TV_ARRAY) tmpl_fail(rt, "If set, separators must be a tuple of two strings");
        if (x->a->n != 2 || x->a->v[0].t != TV_STR || x->a->v[1].t != TV_STR)
            tmpl_fail(rt, "separators must be a tuple of two strings");
        o.have_seps = 1, o.item_sep = x->a->v[0].s, o.key_sep = x->a->v[1].s;
    }
    struct tbuf b = {0};
    tv_tojson(rt, &b, v, &o, 0, 1);
    return tv_str(tbuf_str(&b));
}

static struct tv filter_called(struct tmpl_rt *rt, struct tv v, const struct tnode *call, struct tscope *sc)
{
    struct tstr f = call->a->s;
    struct tv *pos;
    size_t np;
    struct tobj *kw;
    if (tstr_eq(f, "selectattr") || tstr_eq(f, "rejectattr")) {
        int sel = tstr_eq(f, "selectattr");
        if (v.t != TV_ARRAY) tmpl_fail(rt, "Unknown %s filter: %.*s", tv_type_name(v), (int)f.n, f.p);
        for (size_t i = 0; i < v.a->n; i++)
            if (v.a->v[i].t != TV_OBJECT && v.a->v[i].t != TV_NS)
                tmpl_fail(rt, "`%.*s` can only be applied to array of objects", (int)f.n, f.p);
        for (size_t i = 0; i < call->l1.n; i++)
            if (call->l1.v[i]->k != TN_STR) tmpl_fail(rt, "arguments of `%.*s` must be strings", (int)f.n, f.p);
        if (call->l1.n == 0) tmpl_fail(rt, "`%.*s` needs an attribute name", (int)f.n, f.p);
        struct tstr attr = call->l1.v[0]->s;
        struct tv val = call->l1.n > 2 ? tv_str(call->l1.v[2]->s) : tv_undef();
        struct tv r = tv_array(rt, v.a->n);
        size_t k = 0;
        for (size_t i = 0; i < v.a->n; i++) {
            struct tv *a = tobj_get(v.a->v[i].o, attr);
            int res = 0;
            if (a) {
                if (call->l1.n > 1)
                    res = tmpl_run_test(rt, call->l1.v[1]->s, *a, call->l1.n > 2 ? &val : NULL);
                else
                    res = tv_truthy(*a);
            }
            if (sel ? res : !res) r.a->v[k++] = v.a->v[i];
        }
        r.a->n = k;
        return r;
    }
    tmpl_eval_args(rt, &call->l1, sc, &pos, &np, &kw);
    rt->at = call;
    if (tstr_eq(f, "tojson")) return filter_tojson(rt, v, kw);
    if (tstr_eq(f, "join")) {
        struct tv sep = opt(pos, np, 0, kw, "separator", tv_str(tstr_lit("")));
        if (v.t != TV_STR && v.t != TV_ARRAY) tmpl_fail(rt, "Cannot apply filter \"join\" to type: %s", tv_type_name(v));
        if (sep.t != TV_STR) tmpl_fail(rt, "separator must be a string");
        if (v.t == TV_ARRAY) return join_raw(rt, v, sep.s);
        struct tbuf b = {0};
        for (size_t i = 0; i < v.s.n;) {
            size_t cl = tmpl_utf8_next(v.s.p + i, v.s.n - i);
            if (i) tbuf_put(rt, &b, sep.s.p, sep.s.n);
            tbuf_put(rt, &b, v.s.p + i, cl);
            i += cl;
        }
        return tv_str(tbuf_str(&b));
    }
    if (tstr_eq(f, "int") || tstr_eq(f, "float")) {
        int isint = tstr_eq(f, "int");
        struct tv d = opt(pos, np, 0, kw, "default", isint ? tv_int(0) : tv_float(0));
        if (v.t == TV_STR) {
            double x = js_parse_num(v.s, !isint);
            return isnan(x) ? d : isint ? tv_int(x) : tv_float(x);
        }
        if (v.t == TV_INT || v.t == TV_FLOAT) return isint ? tv_int(trunc(v.n) + 0.0) : tv_float(v.n);
        if (v.t == TV_BOOL) return isint ? tv_int(v.b) : tv_float(v.b);
        tmpl_fail(rt, "Cannot apply filter \"%.*s\" to type: %s", (int)f.n, f.p, tv_type_name(v));
    }
    if (tstr_eq(f, "default")) {
        struct tv d = np > 0 ? pos[0] : tv_str(tstr_lit(""));
        struct tv bo = opt(pos, np, 1, kw, "boolean", tv_bool(0));
        if (bo.t != TV_BOOL) tmpl_fail(rt, "`default` filter flag must be a boolean");
        if (v.t == TV_UNDEF || (bo.b && !tv_truthy(v))) return d;
        return v;
    }
    if (v.t == TV_ARRAY) {
        if (tstr_eq(f, "sort")) {
            struct tv rev = opt(pos, np, 0, kw, "reverse", tv_bool(0));
            if (rev.t != TV_BOOL) tmpl_fail(rt, "reverse must be a boolean");
            struct tv cs = opt(pos, np, 1, kw, "case_sensitive", tv_bool(0));
            if (cs.t != TV_BOOL) tmpl_fail(rt, "case_sensitive must be a boolean");
            struct tv at = opt(pos, np, 2, kw, "attribute", tv_null());
            if (at.t != TV_STR && at.t != TV_INT && at.t != TV_NULL)
                tmpl_fail(rt, "attribute must be a string, integer, or null");
            return sort_array(rt, v, rev.b, cs.b, at);
        }
        if (tstr_eq(f, "map")) {
            struct tv *at = kwget(kw, "attribute");
            if (!at) tmpl_fail(rt, "`map` expressions without `attribute` set are not currently supported.");
            if (at->t != TV_STR) tmpl_fail(rt, "attribute must be a string");
            struct tv *d = kwget(kw, "default");
            struct tv r = tv_array(rt, v.a->n);
            for (size_t i = 0; i < v.a->n; i++) {
                struct tv it = v.a->v[i];
                if (it.t != TV_OBJECT && it.t != TV_NS) tmpl_fail(rt, "items in map must be an object");
                struct tv x = attr_path(it, at->s);
                r.a->v[i] = x.t == TV_UNDEF ? (d ? *d : tv_undef()) : x;
            }
            return r;
        }
        if (tstr_eq(f, "select") || tstr_eq(f, "reject")) { /* extension, see top of file */
            int sel = tstr_eq(f, "select");
            struct tv r = tv_array(rt, v.a->n);
            size_t k = 0;
            for (size_t i = 0; i < v.a->n; i++) {
                int res;
                if (np == 0) res = tv_truthy(v.a->v[i]);
                else if (pos[0].t != TV_STR) tmpl_fail(rt, "%.*s expects a test name", (int)f.n, f.p);
                else if (!tmpl_test_known(pos[0].s)) tmpl_fail(rt, "Unknown test: %.*s", (int)pos[0].s.n, pos[0].s.p);
                else res = tmpl_run_test(rt, pos[0].s, v.a->v[i], np > 1 ? &pos[1] : NULL);
                if (sel ? res : !res) r.a->v[k++] = v.a->v[i];
            }
            r.a->n = k;
            return r;
        }
        no_filter(rt, "ArrayValue", f);
    }
    if (v.t == TV_STR) {
        if (tstr_eq(f, "indent")) {
            struct tv w = opt(pos, np, 0, kw, "width", tv_int(4));
            if (w.t != TV_INT && w.t != TV_STR) tmpl_fail(rt, "width must be an integer or a string");
            struct tv first = opt(pos, np, 1, kw, "first", tv_bool(0));
            struct tv blank = opt(pos, np, 2, kw, "blank", tv_bool(0));
            struct tstr ind = w.t == TV_STR ? w.s : tstr_lit("");
            if (w.t == TV_INT) {
                size_t nsp = w.n > 0 ? (size_t)(w.n > 256 ? 256 : w.n) : 0;
                char *sp = tmpl_alloc(rt, nsp + 1);
                memset(sp, ' ', nsp);
                ind = (struct tstr){sp, nsp};
            }
            return indent_str(rt, v.s, ind, tv_truthy(first), tv_truthy(blank));
        }
        if (tstr_eq(f, "replace")) {
            struct tv m = tmpl_builtin_member(rt, v, f);
            /* the reference always appends the (possibly empty) kwargs object */
            struct tobj *k = kw;
            if (!k) k = tv_object(rt).o, k->kind = TOBJ_KWARGS;
            struct tv *a = tmpl_alloc(rt, (np + 1) * sizeof(*a));
            if (np) memcpy(a, pos, np * sizeof(*a));
            a[np] = (struct tv){.t = TV_OBJECT, .o = k};
            return tmpl_call_builtin(rt, m.f, a, np + 1, NULL);
        }
        no_filter(rt, "StringValue", f);
    }
    if (v.t == TV_OBJECT) {
        struct tv m = tmpl_builtin_member(rt, v, f);
        if (m.t == TV_FUNC) return tmpl_call(rt, m, pos, np, kw, sc);
        no_filter(rt, "ObjectValue", f);
    }
    tmpl_fail(rt, "Cannot apply filter \"%.*s\" to type: %s", (int)f.n, f.p, tv_type_name(v));
}

struct tv tmpl_apply_filter(struct tmpl_rt *rt, struct tv operand, const struct tnode *filter, struct tscope *sc)
{
    if (filter->k == TN_IDENT) return filter_bare(rt, operand, filter->s, sc);
    return filter_called(rt, operand, filter, sc);
}
