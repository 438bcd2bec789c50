/* engine/tmpl_parse.c: chat-template parser (tokens -> AST).
 *
 * A port of @huggingface/jinja's parser.ts: the same grammar, precedence and
 * statement set (set/if/elif/else/for/macro/call/filter/break/continue), so a
 * template parses here exactly when it parses there. On top of that, filter and
 * test names are checked at parse time: a name no runtime type supports is a
 * startup error naming its line instead of a 400 on some later request.
 *
 * Errors unwind with longjmp to tmpl_parse (all memory is in the template's
 * arena, so nothing leaks).
 *
 * Threads: called from tmpl_create (startup) only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tmpl_internal.h"

struct ps {
    struct tmpl_arena *a;
    const struct ttok *t;
    size_t n, cur;
    int depth; /* nesting guard: the parser recurses */
    char *err;
    size_t errlen;
    jmp_buf jb;
};

static _Noreturn __attribute__((format(printf, 2, 3))) void perr(struct ps *p, const char *fmt, ...)
{
    int line = p->n ? p->t[p->cur < p->n ? p->cur : p->n - 1].line : 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "template line %d: %s", line, msg);
    longjmp(p->jb, 1);
}

static struct tnode *nn(struct ps *p, enum tn_kind k)
{
    struct tnode *x = ta_alloc(p->a, sizeof(*x));
    if (!x) perr(p, "out of memory");
    x->k = k;
    x->line = p->n ? p->t[p->cur < p->n ? p->cur : p->n - 1].line : 1;
    return x;
}

static void lpush(struct ps *p, struct tnlist *l, struct tnode *x)
{
    /* grow by doubling; capacity is implied by powers of two */
    if ((l->n & (l->n - 1)) == 0) {
        size_t nc = l->n ? l->n * 2 : 1;
        struct tnode **nv = ta_alloc(p->a, nc * sizeof(*nv));
        if (!nv) perr(p, "out of memory");
        if (l->n) memcpy(nv, l->v, l->n * sizeof(*nv));
        l->v = nv;
    }
    l->v[l->n++] = x;
}

static const char *TT_NAMES[] = {
    "Text",          "NumericLiteral",  "StringLiteral",     "Identifier",       "Equals",
    "OpenParen",     "CloseParen",      "OpenStatement",     "CloseStatement",   "OpenExpression",
    "CloseExpression", "OpenSquareBracket", "CloseSquareBracket", "OpenCurlyBracket", "CloseCurlyBracket",
    "Comma",         "Dot",             "Colon",             "Pipe",             "AdditiveBinaryOperator",
    "MultiplicativeBinaryOperator", "ExponentiationBinaryOperator", "ComparisonBinaryOperator",
    "UnaryOperator", "Comment",
};

static int is(struct ps *p, enum ttok_type t) { return p->cur < p->n && p->t[p->cur].t == t; }
static int is2(struct ps *p, enum ttok_type a, enum ttok_type b)
{
    return p->cur + 1 < p->n && p->t[p->cur].t == a && p->t[p->cur + 1].t == b;
}
static int is_ident(struct ps *p, const char *name)
{
    return is(p, TT_IDENT) && tstr_eq(p->t[p->cur].v, name);
}
static int is_stmt(struct ps *p, const char *n1, const char *n2, const char *n3)
{
    if (!is2(p, TT_OPEN_STMT, TT_IDENT)) return 0;
    struct tstr v = p->t[p->cur + 1].v;
    return tstr_eq(v, n1) || (n2 && tstr_eq(v, n2)) || (n3 && tstr_eq(v, n3));
}

static const struct ttok *expect(struct ps *p, enum ttok_type t, const char *what)
{
    if (p->cur >= p->n) perr(p, "%s, got end of template", what);
    if (p->t[p->cur].t != t) perr(p, "%s, got %s", what, TT_NAMES[p->t[p->cur].t]);
    return &p->t[p->cur++];
}
static void expect_ident(struct ps *p, const char *name)
{
    if (!is_ident(p, name)) perr(p, "Expected %s", name);
    p->cur++;
}

static struct tnode *parse_any(struct ps *p);
static struct tnode *parse_expr(struct ps *p);
static struct tnode *parse_primary(struct ps *p);
static struct tnode *parse_call(struct ps *p, struct tnode *callee);
static void parse_args(struct ps *p, struct tnlist *out, int params);
static struct tnode *parse_stmt_inner(struct ps *p);
#define TMPL_MAX_PARSE_DEPTH 300

static void parse_until(struct ps *p, struct tnlist *body, const char *a, const char *b, const char *c)
{
    while (!is_stmt(p, a, b, c)) {
        if (p->cur >= p->n) perr(p, "Unexpected end of template: expected {%% %s %%}", a);
        lpush(p, body, parse_any(p));
    }
}

static struct tnode *parse_seq(struct ps *p, int primary)
{
    struct tnode *first = primary ? parse_primary(p) : parse_expr(p);
    if (!is(p, TT_COMMA)) return first;
    struct tnode *t = nn(p, TN_TUPLE);
    lpush(p, &t->l1, first);
    for (;;) {
        p->cur++;
        lpush(p, &t->l1, primary ? parse_primary(p) : parse_expr(p));
        if (!is(p, TT_COMMA)) break;
    }
    return t;
}

static struct tnode *parse_if(struct ps *p)
{
    struct tnode *x = nn(p, TN_IF);
    x->a = parse_expr(p);
    expect(p, TT_CLOSE_STMT, "Expected closing statement token");
    parse_until(p, &x->l1, "elif", "else", "endif");
    if (is_stmt(p, "elif", NULL, NULL)) {
        p->cur += 2;
        lpush(p, &x->l2, parse_if(p));
    } else if (is_stmt(p, "else", NULL, NULL)) {
        p->cur += 2;
        expect(p, TT_CLOSE_STMT, "Expected closing statement token");
        parse_until(p, &x->l2, "endif", NULL, NULL);
    }
    return x;
}

/* Which of caller/kwargs/varargs a macro body reads. A simplification of the
 * reference's visitor: any read of the name in the body counts, unless it is a
 * declared parameter. */
static void scan_special(const struct tnode *x, int *bits)
{
    if (!x) return;
    if (x->k == TN_IDENT) {
        if (tstr_eq(x->s, "caller")) *bits |= TMPL_SPECIAL_CALLER;
        if (tstr_eq(x->s, "kwargs")) *bits |= TMPL_SPECIAL_KWARGS;
        if (tstr_eq(x->s, "varargs")) *bits |= TMPL_SPECIAL_VARARGS;
        return;
    }
    if (x->k == TN_MEMBER && !x->flag) {
        scan_special(x->a, bits);
        return;
    }
    if (x->k == TN_FILTER) {
        scan_special(x->a, bits);
        if (x->b && x->b->k == TN_CALL)
            for (size_t i = 0; i < x->b->l1.n; i++) scan_special(x->b->l1.v[i], bits);
        return;
    }
    scan_special(x->a, bits);
    scan_special(x->b, bits);
    scan_special(x->c, bits);
    for (size_t i = 0; i < x->l1.n; i++) scan_special(x->l1.v[i], bits);
    for (size_t i = 0; i < x->l2.n; i++) scan_special(x->l2.v[i], bits);
}

static int special_bits(const struct tnlist *params, const struct tnlist *body)
{
    int bits = 0;
    for (size_t i = 0; i < body->n; i++) scan_special(body->v[i], &bits);
    for (size_t i = 0; i < params->n; i++) {
        struct tstr nm = params->v[i]->s;
        if (tstr_eq(nm, "caller")) bits &= ~TMPL_SPECIAL_CALLER;
        if (tstr_eq(nm, "kwargs")) bits &= ~TMPL_SPECIAL_KWARGS;
        if (tstr_eq(nm, "varargs")) bits &= ~TMPL_SPECIAL_VARARGS;
    }
    return bits;
}

static void check_filter_node(struct ps *p, const struct tnode *f)
{
    struct tstr nm = f->k == TN_CALL ? f->a->s : f->s;
    if (!tmpl_filter_known(nm)) perr(p, "unsupported filter '%.*s'", (int)nm.n, nm.p);
}

static struct tnode *parse_stmt(struct ps *p)
{
    if (++p->depth > TMPL_MAX_PARSE_DEPTH) perr(p, "template nested too deeply");
    struct tnode *x = parse_stmt_inner(p);
    p->depth--;
    return x;
}

static struct tnode *parse_stmt_inner(struct ps *p)
{
    expect(p, TT_OPEN_STMT, "Expected opening statement token");
    if (!is(p, TT_IDENT)) perr(p, "Unknown statement, got %s", p->cur < p->n ? TT_NAMES[p->t[p->cur].t] : "end");
    struct tstr name = p->t[p->cur].v;
    struct tnode *x;
    p->cur++;
    if (tstr_eq(name, "set")) {
        x = nn(p, TN_SET);
        x->a = parse_seq(p, 0);
        if (is(p, TT_EQUALS)) {
            p->cur++;
            x->b = parse_seq(p, 0);
        } else {
            expect(p, TT_CLOSE_STMT, "Expected %} token");
            parse_until(p, &x->l1, "endset", NULL, NULL);
            expect(p, TT_OPEN_STMT, "Expected {% token");
            expect_ident(p, "endset");
        }
        if (x->a->k != TN_IDENT && x->a->k != TN_TUPLE && x->a->k != TN_MEMBER)
            perr(p, "Invalid LHS inside assignment expression");
        expect(p, TT_CLOSE_STMT, "Expected closing statement token");
    } else if (tstr_eq(name, "if")) {
        x = parse_if(p);
        expect(p, TT_OPEN_STMT, "Expected {% token");
        expect_ident(p, "endif");
        expect(p, TT_CLOSE_STMT, "Expected %} token");
    } else if (tstr_eq(name, "macro")) {
        x = nn(p, TN_MACRO);
        struct tnode *nm = parse_primary(p);
        if (nm->k != TN_IDENT) perr(p, "Expected identifier following macro statement");
        x->s = nm->s;
        parse_args(p, &x->l2, 1);
        expect(p, TT_CLOSE_STMT, "Expected closing statement token");
        parse_until(p, &x->l1, "endmacro", NULL, NULL);
        x->flag = special_bits(&x->l2, &x->l1);
        expect(p, TT_OPEN_STMT, "Expected {% token");
        expect_ident(p, "endmacro");
        expect(p, TT_CLOSE_STMT, "Expected %} token");
    } else if (tstr_eq(name, "for")) {
        x = nn(p, TN_FOR);
        x->a = parse_seq(p, 1);
        if (x->a->k != TN_IDENT && x->a->k != TN_TUPLE)
            perr(p, "Expected identifier/tuple for the loop variable");
        if (!is_ident(p, "in")) perr(p, "Expected `in` keyword following loop variable");
        p->cur++;
        x->b = parse_expr(p);
        expect(p, TT_CLOSE_STMT, "Expected closing statement token");
        parse_until(p, &x->l1, "endfor", "else", NULL);
        if (is_stmt(p, "else", NULL, NULL)) {
            p->cur += 2;
            expect(p, TT_CLOSE_STMT, "Expected closing statement token");
            parse_until(p, &x->l2, "endfor", NULL, NULL);
        }
        expect(p, TT_OPEN_STMT, "Expected {% token");
        expect_ident(p, "endfor");
        expect(p, TT_CLOSE_STMT, "Expected %} token");
    } else if (tstr_eq(name, "call")) {
        x = nn(p, TN_CALLBLOCK);
        if (is(p, TT_LPAREN)) parse_args(p, &x->l2, 1);
        struct tnode *callee = parse_primary(p);
        if (callee->k != TN_IDENT) perr(p, "Expected identifier following call statement");
        struct tnode *call = nn(p, TN_CALL);
        call->a = callee;
        parse_args(p, &call->l1, 0);
        x->a = call;
        expect(p, TT_CLOSE_STMT, "Expected closing statement token");
        parse_until(p, &x->l1, "endcall", NULL, NULL);
        x->flag = special_bits(&x->l2, &x->l1);
        expect(p, TT_OPEN_STMT, "Expected '{%'");
        expect_ident(p, "endcall");
        expect(p, TT_CLOSE_STMT, "Expected closing statement token");
    } else if (tstr_eq(name, "break") || tstr_eq(name, "continue")) {
        x = nn(p, tstr_eq(name, "break") ? TN_BREAK : TN_CONTINUE);
        expect(p, TT_CLOSE_STMT, "Expected closing statement token");
    } else if (tstr_eq(name, "filter")) {
        x = nn(p, TN_FILTERBLOCK);
        struct tnode *f = parse_primary(p);
        if (f->k == TN_IDENT && is(p, TT_LPAREN)) f = parse_call(p, f);
        if (!(f->k == TN_IDENT || (f->k == TN_CALL && f->a->k == TN_IDENT)))
            perr(p, "Expected a filter name in filter statement");
        check_filter_node(p, f);
        x->b = f;
        expect(p, TT_CLOSE_STMT, "Expected closing statement token");
        parse_until(p, &x->l1, "endfilter", NULL, NULL);
        expect(p, TT_OPEN_STMT, "Expected '{%'");
        expect_ident(p, "endfilter");
        expect(p, TT_CLOSE_STMT, "Expected '%}'");
    } else {
        p->cur--;
        perr(p, "Unknown statement type: %.*s", (int)name.n, name.p);
    }
    return x;
}

static struct tnode *parse_any(struct ps *p)
{
    const struct ttok *t = &p->t[p->cur];
    struct tnode *x;
    switch (t->t) {
    case TT_COMMENT:
        x = nn(p, TN_COMMENT);
        p->cur++;
        return x;
    case TT_TEXT:
        x = nn(p, TN_TEXT);
        x->s = t->v;
        p->cur++;
        return x;
    case TT_OPEN_STMT:
        return parse_stmt(p);
    case TT_OPEN_EXPR:
        p->cur++;
        x = parse_expr(p);
        expect(p, TT_CLOSE_EXPR, "Expected closing expression token");
        return x;
    default:
        perr(p, "Unexpected token type: %s", TT_NAMES[t->t]);
    }
}

static struct tnode *bin(struct ps *p, enum tn_op op, struct tnode *l, struct tnode *r, int line)
{
    struct tnode *x = nn(p, TN_BINARY);
    x->op = op, x->a = l, x->b = r, x->line = line;
    return x;
}

static enum tn_op op_of(struct tstr v)
{
    static const struct {
        const char *s;
        enum tn_op op;
    } T[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<", OP_LT},       {">", OP_GT},   {"<=", OP_LE},
             {">=", OP_GE}, {"+", OP_ADD}, {"-", OP_SUB},      {"~", OP_CONCAT}, {"*", OP_MUL},
             {"/", OP_DIV}, {"//", OP_FLOORDIV}, {"%", OP_MOD}, {"**", OP_POW}};
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++)
        if (tstr_eq(v, T[i].s)) return T[i].op;
    return OP_NONE;
}

static struct tnode *parse_member(struct ps *p, struct tnode *obj)
{
    while (is(p, TT_DOT) || is(p, TT_LBRACKET)) {
        int computed = is(p, TT_LBRACKET);
        p->cur++;
        struct tnode *m = nn(p, TN_MEMBER);
        m->a = obj;
        m->flag = computed;
        if (computed) {
            struct tnode *sl[4] = {0};
            size_t ns = 0;
            int is_slice = 0;
            while (!is(p, TT_RBRACKET)) {
                if (p->cur >= p->n) perr(p, "Expected closing square bracket");
                if (ns >= 4) perr(p, "Expected 0-3 arguments for slice expression");
                if (is(p, TT_COLON)) {
                    sl[ns++] = NULL;
                    p->cur++;
                    is_slice = 1;
                } else {
                    sl[ns++] = parse_expr(p);
                    if (is(p, TT_COLON)) p->cur++, is_slice = 1;
                }
            }
            if (ns == 0) perr(p, "Expected at least one argument for member/slice expression");
            if (is_slice) {
                if (ns > 3) perr(p, "Expected 0-3 arguments for slice expression");
                struct tnode *s = nn(p, TN_SLICE);
                s->a = sl[0], s->b = ns > 1 ? sl[1] : NULL, s->c = ns > 2 ? sl[2] : NULL;
                m->b = s;
            } else {
                m->b = sl[0];
            }
            expect(p, TT_RBRACKET, "Expected closing square bracket");
        } else {
            m->b = parse_primary(p);
            if (m->b->k != TN_IDENT && m->b->k != TN_INT)
                perr(p, "Expected identifier or integer following dot operator");
        }
        obj = m;
    }
    return obj;
}

static struct tnode *parse_call(struct ps *p, struct tnode *callee)
{
    struct tnode *x = nn(p, TN_CALL);
    x->a = callee;
    parse_args(p, &x->l1, 0);
    x = parse_member(p, x);
    if (is(p, TT_LPAREN)) x = parse_call(p, x);
    return x;
}

static void parse_args(struct ps *p, struct tnlist *out, int params)
{
    expect(p, TT_LPAREN, "Expected opening parenthesis for arguments list");
    int saw_kw = 0, saw_spread = 0;
    while (!is(p, TT_RPAREN)) {
        if (p->cur >= p->n) perr(p, "Expected closing parenthesis for arguments list");
        int kws = is(p, TT_POW);
        int pos_spread = is(p, TT_MUL) && tstr_eq(p->t[p->cur].v, "*");
        if (params && (kws || pos_spread)) perr(p, "Argument unpacking is not allowed in parameter declarations");
        if (kws) {
            p->cur++;
            struct tnode *s = nn(p, TN_KWSPREAD);
            s->a = parse_expr(p);
            lpush(p, out, s);
            if (is(p, TT_COMMA)) p->cur++;
            if (!is(p, TT_RPAREN)) perr(p, "Expected closing parenthesis: `**` must be applied to the final argument");
            break;
        }
        struct tnode *arg;
        if (pos_spread) {
            if (saw_spread) perr(p, "Only one `*` argument unpacking is allowed");
            saw_spread = 1;
            p->cur++;
            arg = nn(p, TN_SPREAD);
            arg->a = parse_expr(p);
        } else {
            arg = parse_expr(p);
            if (is(p, TT_EQUALS)) {
                p->cur++;
                if (arg->k != TN_IDENT)
                    perr(p, params ? "Expected identifier for parameter declaration"
                                   : "Expected identifier for keyword argument");
                struct tnode *kw = nn(p, TN_KWARG);
                kw->s = arg->s;
                kw->a = parse_expr(p);
                arg = kw;
            }
            if (params) {
                if (arg->k != TN_IDENT && arg->k != TN_KWARG) perr(p, "Expected identifier for parameter declaration");
                for (size_t i = 0; i < out->n; i++)
                    if (tstr_eqs(out->v[i]->s, arg->s)) perr(p, "Duplicate parameter name: %.*s", (int)arg->s.n, arg->s.p);
            }
            if (arg->k == TN_KWARG)
                saw_kw = 1;
            else if (saw_kw)
                perr(p, params ? "Non-default argument follows default argument"
                               : "Positional arguments must come before keyword arguments");
            else if (saw_spread)
                perr(p, "Positional arguments must not follow `*` argument unpacking");
        }
        lpush(p, out, arg);
        if (is(p, TT_COMMA)) p->cur++;
    }
    expect(p, TT_RPAREN, "Expected closing parenthesis for arguments list");
}

static struct tnode *parse_call_member(struct ps *p)
{
    struct tnode *m = parse_member(p, parse_primary(p));
    if (is(p, TT_LPAREN)) return parse_call(p, m);
    return m;
}

static struct tnode *parse_unary_sign(struct ps *p)
{
    if (p->depth > TMPL_MAX_PARSE_DEPTH) perr(p, "template nested too deeply");
    if ((is(p, TT_UNARY) || is(p, TT_ADD)) &&
        (tstr_eq(p->t[p->cur].v, "-") || tstr_eq(p->t[p->cur].v, "+"))) {
        struct tnode *x = nn(p, TN_UNARY);
        x->op = p->t[p->cur].v.p[0] == '-' ? OP_SUB : OP_ADD;
        p->cur++;
        p->depth++;
        x->a = parse_unary_sign(p);
        p->depth--;
        return x;
    }
    return parse_call_member(p);
}

static struct tnode *parse_filter(struct ps *p)
{
    struct tnode *operand = parse_unary_sign(p);
    while (is(p, TT_PIPE)) {
        p->cur++;
        struct tnode *f = parse_primary(p);
        if (f->k != TN_IDENT) perr(p, "Expected identifier for the filter");
        if (is(p, TT_LPAREN)) f = parse_call(p, f);
        if (!(f->k == TN_IDENT || (f->k == TN_CALL && f->a->k == TN_IDENT)))
            perr(p, "unsupported filter expression");
        check_filter_node(p, f);
        struct tnode *x = nn(p, TN_FILTER);
        x->a = operand, x->b = f;
        operand = x;
    }
    return operand;
}

static struct tnode *parse_test(struct ps *p)
{
    struct tnode *operand = parse_filter(p);
    while (is_ident(p, "is")) {
        p->cur++;
        int neg = is_ident(p, "not");
        if (neg) p->cur++;
        struct tnode *t = parse_primary(p);
        if (t->k != TN_IDENT) perr(p, "Expected identifier for the test");
        if (!tmpl_test_known(t->s)) perr(p, "unsupported test '%.*s'", (int)t->s.n, t->s.p);
        struct tnode *x = nn(p, TN_TEST);
        x->a = operand, x->s = t->s, x->flag = neg;
        operand = x;
    }
    return operand;
}

static struct tnode *parse_pow(struct ps *p)
{
    struct tnode *l = parse_test(p);
    while (is(p, TT_POW)) {
        int line = p->t[p->cur++].line;
        l = bin(p, OP_POW, l, parse_test(p), line);
    }
    return l;
}

static struct tnode *parse_mul(struct ps *p)
{
    struct tnode *l = parse_pow(p);
    while (is(p, TT_MUL)) {
        const struct ttok *t = &p->t[p->cur++];
        l = bin(p, op_of(t->v), l, parse_pow(p), t->line);
    }
    return l;
}

static struct tnode *parse_add(struct ps *p)
{
    struct tnode *l = parse_mul(p);
    while (is(p, TT_ADD)) {
        const struct ttok *t = &p->t[p->cur++];
        l = bin(p, op_of(t->v), l, parse_mul(p), t->line);
    }
    return l;
}

static struct tnode *parse_cmp(struct ps *p)
{
    struct tnode *l = parse_add(p);
    for (;;) {
        enum tn_op op;
        int line = p->cur < p->n ? p->t[p->cur].line : 0;
        if (is_ident(p, "not") && p->cur + 1 < p->n && p->t[p->cur + 1].t == TT_IDENT &&
            tstr_eq(p->t[p->cur + 1].v, "in"))
            op = OP_NOTIN, p->cur += 2;
        else if (is_ident(p, "in"))
            op = OP_IN, p->cur++;
        else if (is(p, TT_CMP))
            op = op_of(p->t[p->cur++].v);
        else
            break;
        l = bin(p, op, l, parse_add(p), line);
    }
    return l;
}

static struct tnode *parse_not(struct ps *p)
{
    if (is_ident(p, "not")) {
        struct tnode *x = nn(p, TN_UNARY);
        x->op = OP_NOT;
        p->cur++;
        if (++p->depth > TMPL_MAX_PARSE_DEPTH) perr(p, "template nested too deeply");
        x->a = parse_not(p);
        p->depth--;
        return x;
    }
    return parse_cmp(p);
}

static struct tnode *parse_and(struct ps *p)
{
    struct tnode *l = parse_not(p);
    while (is_ident(p, "and")) {
        int line = p->t[p->cur++].line;
        l = bin(p, OP_AND, l, parse_not(p), line);
    }
    return l;
}

static struct tnode *parse_or(struct ps *p)
{
    struct tnode *l = parse_and(p);
    while (is_ident(p, "or")) {
        int line = p->t[p->cur++].line;
        l = bin(p, OP_OR, l, parse_and(p), line);
    }
    return l;
}

static struct tnode *parse_expr_inner(struct ps *p);
static struct tnode *parse_expr(struct ps *p)
{
    if (++p->depth > TMPL_MAX_PARSE_DEPTH) perr(p, "template nested too deeply");
    struct tnode *x = parse_expr_inner(p);
    p->depth--;
    return x;
}

static struct tnode *parse_expr_inner(struct ps *p)
{
    struct tnode *a = parse_or(p);
    if (is_ident(p, "if")) {
        p->cur++;
        struct tnode *test = parse_or(p);
        if (is_ident(p, "else")) {
            p->cur++;
            struct tnode *x = nn(p, TN_TERNARY);
            x->a = test, x->b = a, x->c = parse_expr(p);
            return x;
        }
        struct tnode *x = nn(p, TN_SELECT);
        x->a = a, x->b = test;
        return x;
    }
    return a;
}

static struct tnode *parse_primary(struct ps *p)
{
    if (p->cur >= p->n) perr(p, "Unexpected end of template inside an expression");
    const struct ttok *t = &p->t[p->cur++];
    struct tnode *x;
    switch (t->t) {
    case TT_NUM: {
        char buf[64];
        size_t n = t->v.n < sizeof(buf) - 1 ? t->v.n : sizeof(buf) - 1;
        memcpy(buf, t->v.p, n);
        buf[n] = 0;
        x = nn(p, memchr(t->v.p, '.', t->v.n) ? TN_FLOAT : TN_INT);
        x->num = strtod(buf, NULL);
        return x;
    }
    case TT_STR: {
        x = nn(p, TN_STR);
        x->s = t->v;
        if (is(p, TT_STR)) { /* adjacent literals concatenate */
            size_t total = t->v.n;
            for (size_t k = p->cur; k < p->n && p->t[k].t == TT_STR; k++) total += p->t[k].v.n;
            char *buf = ta_alloc(p->a, total + 1);
            if (!buf) perr(p, "out of memory");
            memcpy(buf, t->v.p, t->v.n);
            size_t o = t->v.n;
            while (is(p, TT_STR)) {
                memcpy(buf + o, p->t[p->cur].v.p, p->t[p->cur].v.n);
                o += p->t[p->cur++].v.n;
            }
            x->s.p = buf, x->s.n = o;
        }
        return x;
    }
    case TT_IDENT:
        x = nn(p, TN_IDENT);
        x->s = t->v;
        return x;
    case TT_LPAREN:
        x = parse_seq(p, 0);
        expect(p, TT_RPAREN, "Expected closing parenthesis");
        return x;
    case TT_LBRACKET:
        x = nn(p, TN_ARRAY);
        while (!is(p, TT_RBRACKET)) {
            if (p->cur >= p->n) perr(p, "Expected closing square bracket");
            lpush(p, &x->l1, parse_expr(p));
            if (is(p, TT_COMMA)) p->cur++;
        }
        p->cur++;
        return x;
    case TT_LBRACE:
        x = nn(p, TN_OBJECT);
        while (!is(p, TT_RBRACE)) {
            if (p->cur >= p->n) perr(p, "Expected closing curly bracket");
            lpush(p, &x->l1, parse_expr(p));
            expect(p, TT_COLON, "Expected colon between key and value in object literal");
            lpush(p, &x->l2, parse_expr(p));
            if (is(p, TT_COMMA)) p->cur++;
        }
        p->cur++;
        return x;
    default:
        p->cur--;
        perr(p, "Unexpected token: %s", TT_NAMES[t->t]);
    }
}

int tmpl_parse(struct tmpl_arena *a, const struct ttok *toks, size_t ntok, struct tnlist *prog,
               char *err, size_t errlen)
{
    struct ps *p = ta_alloc(a, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->a = a, p->t = toks, p->n = ntok, p->err = err, p->errlen = errlen;
    memset(prog, 0, sizeof(*prog));
    if (setjmp(p->jb)) return -1;
    while (p->cur < p->n) lpush(p, prog, parse_any(p));
    return 0;
}
