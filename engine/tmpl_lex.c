/* engine/tmpl_lex.c: chat-template preprocessing and tokenizer.
 *
 * A line-for-line port of @huggingface/jinja's lexer.ts (v0.5.x): the same
 * preprocessing regexes (trailing newline, lstrip_blocks, trim_blocks, the
 * transformers {% generation %} tag), the same token rules and the same
 * whitespace-control handling, so text tokens come out byte-identical.
 * Preprocessing deletes characters, so a per-byte map back to the original
 * line is kept: errors name the line of the template as written.
 *
 * Threads: called from tmpl_create (startup); touches only its arena.
 */
#include <stdio.h>
#include <string.h>

#include "engine/tmpl_internal.h"

struct pp {
    char *s;
    int *line;
    size_t n;
};

static int pp_init(struct tmpl_arena *a, struct pp *p, size_t cap)
{
    p->s = ta_alloc(a, cap + 1);
    p->line = ta_alloc(a, (cap + 1) * sizeof(int));
    p->n = 0;
    return p->s && p->line ? 0 : -1;
}

static void pp_put(struct pp *p, char c, int line)
{
    p->s[p->n] = c;
    p->line[p->n] = line;
    p->n++;
}

/* JS `^` in multiline mode: start of input or after \n, \r, U+2028, U+2029. */
static int at_line_start(const char *s, size_t i)
{
    if (i == 0) return 1;
    if (s[i - 1] == '\n' || s[i - 1] == '\r') return 1;
    return i >= 3 && (unsigned char)s[i - 3] == 0xE2 && (unsigned char)s[i - 2] == 0x80 &&
           ((unsigned char)s[i - 1] == 0xA8 || (unsigned char)s[i - 1] == 0xA9);
}

static int is_ws(const char *s, size_t n, size_t i, size_t *clen)
{
    return tmpl_is_space_at(s + i, n - i, clen);
}

/* {%(-?)\s*(?:end)?generation\s*(-?)%}(\s*) at i; fills match end, flags. */
static int match_generation(const char *s, size_t n, size_t i, size_t *end, int *lstrip, int *rstrip)
{
    size_t j = i, cl;
    if (j + 2 > n || s[j] != '{' || s[j + 1] != '%') return 0;
    j += 2;
    *lstrip = 0;
    if (j < n && s[j] == '-') *lstrip = 1, j++;
    while (j < n && is_ws(s, n, j, &cl)) j += cl;
    if (j + 3 <= n && !memcmp(s + j, "end", 3) && j + 13 <= n && !memcmp(s + j + 3, "generation", 10)) j += 3;
    if (j + 10 > n || memcmp(s + j, "generation", 10)) return 0;
    j += 10;
    while (j < n && is_ws(s, n, j, &cl)) j += cl;
    *rstrip = 0;
    if (j < n && s[j] == '-') *rstrip = 1, j++;
    if (j + 2 > n || s[j] != '%' || s[j + 1] != '}') return 0;
    *end = j + 2;
    return 1;
}

/* preprocess() of lexer.ts with a line map. */
static int preprocess(struct tmpl_arena *a, const char *src, size_t len, struct pp *out)
{
    struct pp p1, p2;
    if (pp_init(a, &p1, len) || pp_init(a, &p2, len) || pp_init(a, out, len)) return -1;
    int line = 1;
    if (len > 0 && src[len - 1] == '\n') len--; /* a single trailing newline is dropped */
    /* lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1" */
    for (size_t i = 0; i < len;) {
        if (at_line_start(src, i)) {
            size_t j = i;
            while (j < len && (src[j] == ' ' || src[j] == '\t')) j++;
            if (j > i && j + 1 < len && src[j] == '{' &&
                (src[j + 1] == '#' || src[j + 1] == '%' || src[j + 1] == '-'))
                i = j; /* drop the indentation */
        }
        pp_put(&p1, src[i], line);
        if (src[i] == '\n') line++;
        i++;
    }
    /* trim_blocks: /([#%-]})\n/g -> "$1" */
    for (size_t i = 0; i < p1.n;) {
        if (i + 2 < p1.n && (p1.s[i] == '#' || p1.s[i] == '%' || p1.s[i] == '-') && p1.s[i + 1] == '}' &&
            p1.s[i + 2] == '\n') {
            pp_put(&p2, p1.s[i], p1.line[i]);
            pp_put(&p2, p1.s[i + 1], p1.line[i + 1]);
            i += 3;
            continue;
        }
        pp_put(&p2, p1.s[i], p1.line[i]);
        i++;
    }
    /* {% generation %} / {% endgeneration %} tags are removed. */
    size_t last = 0;
    for (size_t i = 0; i < p2.n; i++) {
        size_t end, cl;
        int ls, rs;
        if (p2.s[i] != '{' || !match_generation(p2.s, p2.n, i, &end, &ls, &rs)) continue;
        size_t after = end;
        while (after < p2.n && is_ws(p2.s, p2.n, after, &cl)) after += cl;
        size_t stop = i;
        /* trimEnd-like walk back over whitespace (UTF-8 aware) */
        while (ls && stop > last) {
            size_t k = stop - 1;
            while (k > last && ((unsigned char)p2.s[k] & 0xC0) == 0x80) k--;
            if (!is_ws(p2.s, p2.n, k, &cl) || k + cl != stop) break;
            stop = k;
        }
        for (size_t k = last; k < stop; k++) pp_put(out, p2.s[k], p2.line[k]);
        if (!rs)
            for (size_t k = end; k < after; k++) pp_put(out, p2.s[k], p2.line[k]);
        last = after;
        i = after - 1;
    }
    for (size_t k = last; k < p2.n; k++) pp_put(out, p2.s[k], p2.line[k]);
    out->s[out->n] = 0;
    out->line[out->n] = out->n ? out->line[out->n - 1] : 1;
    return 0;
}

struct lx {
    struct tmpl_arena *a;
    struct pp src;
    size_t pos;
    struct ttok *t;
    size_t n, cap;
    char *err;
    size_t errlen;
};

static int lx_err(struct lx *l, size_t at, const char *msg, char c)
{
    int line = l->src.line[at < l->src.n ? at : l->src.n];
    if (c)
        snprintf(l->err, l->errlen, "template line %d: %s: %c", line, msg, c);
    else
        snprintf(l->err, l->errlen, "template line %d: %s", line, msg);
    return -1;
}

static int push(struct lx *l, enum ttok_type t, const char *p, size_t n, size_t at)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        struct ttok *nt = ta_alloc(l->a, nc * sizeof(*nt));
        if (!nt) return -1;
        if (l->n) memcpy(nt, l->t, l->n * sizeof(*nt));
        l->t = nt, l->cap = nc;
    }
    l->t[l->n].t = t;
    l->t[l->n].v.p = p;
    l->t[l->n].v.n = n;
    l->t[l->n].line = l->src.line[at < l->src.n ? at : l->src.n];
    l->n++;
    return 0;
}

static int isword(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }
static int isdig(int c) { return c >= '0' && c <= '9'; }

/* consumeWhile: JS throws when the predicate still holds at the end of input. */
static int consume_digits(struct lx *l)
{
    while (l->pos < l->src.n && isdig(l->src.s[l->pos]))
        if (++l->pos >= l->src.n) return lx_err(l, l->pos, "Unexpected end of input", 0);
    return 0;
}

static void strip_trailing_ws(struct lx *l)
{
    if (l->n && l->t[l->n - 1].t == TT_TEXT) {
        struct ttok *t = &l->t[l->n - 1];
        t->v = tmpl_trim(t->v, 0, 1);
        if (t->v.n == 0) l->n--;
    }
}

static void skip_leading_ws(struct lx *l)
{
    size_t cl;
    while (l->pos < l->src.n && is_ws(l->src.s, l->src.n, l->pos, &cl)) l->pos += cl;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), 2;
    o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 63)), o[2] = (char)(0x80 | (cp & 63));
    return 3;
}

/* consumeString: the literal's contents with escapes resolved (arena copy). */
static int consume_string(struct lx *l, char quote, struct tstr *out)
{
    size_t start = l->pos;
    char *o = ta_alloc(l->a, l->src.n - start + 1);
    size_t on = 0;
    if (!o) return -1;
    for (;;) {
        if (l->pos >= l->src.n) return lx_err(l, start, "Unexpected end of input", 0);
        char c = l->src.s[l->pos];
        if (c == quote) break;
        l->pos++;
        if (c != '\\') {
            o[on++] = c;
            continue;
        }
        if (l->pos >= l->src.n) return lx_err(l, start, "Unexpected end of input", 0);
        char e = l->src.s[l->pos++];
        if (e == 'x' || e == 'u') {
            int hl = e == 'x' ? 2 : 4;
            unsigned cp = 0;
            for (int k = 0; k < hl; k++) {
                int h = l->pos + k < l->src.n ? hexval(l->src.s[l->pos + k]) : -1;
                if (h < 0) return lx_err(l, l->pos, "Invalid hexadecimal escape sequence", 0);
                cp = cp * 16 + (unsigned)h;
            }
            l->pos += (size_t)hl;
            /* JS makes one UTF-16 unit; a lone surrogate prints as U+FFFD */
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
            on += put_utf8(o + on, cp);
            continue;
        }
        char r;
        switch (e) {
        case 'n': r = '\n'; break;
        case 't': r = '\t'; break;
        case 'r': r = '\r'; break;
        case 'b': r = '\b'; break;
        case 'f': r = '\f'; break;
        case 'v': r = '\v'; break;
        case '\'': r = '\''; break;
        case '"': r = '"'; break;
        case '\\': r = '\\'; break;
        default: return lx_err(l, l->pos - 1, "Unexpected escaped character", e);
        }
        o[on++] = r;
    }
    out->p = o;
    out->n = on;
    return 0;
}

static const struct {
    const char *seq;
    enum ttok_type t;
} RULES[] = {
    {"{%", TT_OPEN_STMT}, {"%}", TT_CLOSE_STMT}, {"{{", TT_OPEN_EXPR}, {"}}", TT_CLOSE_EXPR},
    {"(", TT_LPAREN},     {")", TT_RPAREN},      {"{", TT_LBRACE},     {"}", TT_RBRACE},
    {"[", TT_LBRACKET},   {"]", TT_RBRACKET},    {",", TT_COMMA},      {".", TT_DOT},
    {":", TT_COLON},      {"|", TT_PIPE},        {"<=", TT_CMP},       {">=", TT_CMP},
    {"==", TT_CMP},       {"!=", TT_CMP},        {"<", TT_CMP},        {">", TT_CMP},
    {"+", TT_ADD},        {"-", TT_ADD},         {"~", TT_ADD},        {"**", TT_POW},
    {"*", TT_MUL},        {"//", TT_MUL},        {"/", TT_MUL},        {"%", TT_MUL},
    {"=", TT_EQUALS},
};

static int lex_main(struct lx *l)
{
    const char *s = l->src.s;
    size_t n = l->src.n;
    int curly = 0;
    while (l->pos < n) {
        int last = l->n ? (int)l->t[l->n - 1].t : -1;
        if (last == -1 || last == TT_CLOSE_STMT || last == TT_CLOSE_EXPR || last == TT_COMMENT) {
            size_t end = l->pos;
            for (;;) {
                const char *q = memchr(s + end, '{', n - end);
                if (!q) {
                    end = n;
                    break;
                }
                end = (size_t)(q - s);
                char nx = end + 1 < n ? s[end + 1] : 0;
                if (nx == '%' || nx == '{' || nx == '#') break;
                end++;
            }
            if (end > l->pos) {
                if (push(l, TT_TEXT, s + l->pos, end - l->pos, l->pos)) return -1;
                l->pos = end;
                continue;
            }
        }
        if (s[l->pos] == '{') {
            char nx = l->pos + 1 < n ? s[l->pos + 1] : 0;
            if (nx == '#') {
                size_t at = l->pos;
                l->pos += 2;
                int before = l->pos < n && s[l->pos] == '-';
                if (before) l->pos++;
                const char *e = memmem(s + l->pos, n - l->pos, "#}", 2);
                if (!e) return lx_err(l, at, "Missing end of comment tag", 0);
                size_t end = (size_t)(e - s);
                int after = end > l->pos && s[end - 1] == '-';
                if (before) strip_trailing_ws(l);
                if (push(l, TT_COMMENT, s + l->pos, end - l->pos - (after ? 1 : 0), at)) return -1;
                l->pos = end + 2;
                if (after) skip_leading_ws(l);
                continue;
            }
            if (l->pos + 2 < n && s[l->pos + 2] == '-') {
                if (nx == '%' || nx == '{') {
                    strip_trailing_ws(l);
                    if (push(l, nx == '%' ? TT_OPEN_STMT : TT_OPEN_EXPR, s + l->pos, 2, l->pos)) return -1;
                    if (nx == '{') curly = 0;
                    l->pos += 3;
                    continue;
                }
            }
        }
        /* consumeWhile(isWhitespace) */
        size_t cl;
        while (is_ws(s, n, l->pos, &cl)) {
            l->pos += cl;
            if (l->pos >= n) return lx_err(l, n, "Unexpected end of input", 0);
        }
        char c = s[l->pos];
        if (c == '-' && l->pos + 2 < n && s[l->pos + 2] == '}') {
            char nx = s[l->pos + 1];
            if (nx == '%' || nx == '}') {
                if (push(l, nx == '%' ? TT_CLOSE_STMT : TT_CLOSE_EXPR, s + l->pos + 1, 2, l->pos)) return -1;
                l->pos += 3;
                skip_leading_ws(l);
                continue;
            }
        }
        if (c == '-' || c == '+') {
            if (last == TT_TEXT || last == -1) return lx_err(l, l->pos, "Unexpected character", c);
            if (!(last == TT_IDENT || last == TT_NUM || last == TT_STR || last == TT_RPAREN ||
                  last == TT_RBRACKET)) {
                size_t at = l->pos++;
                if (consume_digits(l)) return -1;
                if (l->pos > at + 1 && l->pos + 1 < n && s[l->pos] == '.' && isdig(s[l->pos + 1])) {
                    l->pos++;
                    if (consume_digits(l)) return -1;
                }
                size_t len = l->pos - at;
                if (push(l, len > 1 ? TT_NUM : TT_UNARY, s + at, len, at)) return -1;
                continue;
            }
        }
        int matched = 0;
        for (size_t r = 0; r < sizeof(RULES) / sizeof(RULES[0]); r++) {
            size_t sl = strlen(RULES[r].seq);
            if (RULES[r].t == TT_CLOSE_EXPR && curly > 0) continue;
            if (l->pos + sl <= n && !memcmp(s + l->pos, RULES[r].seq, sl)) {
                if (push(l, RULES[r].t, s + l->pos, sl, l->pos)) return -1;
                if (RULES[r].t == TT_OPEN_EXPR) curly = 0;
                else if (RULES[r].t == TT_LBRACE) curly++;
                else if (RULES[r].t == TT_RBRACE) curly--;
                l->pos += sl;
                matched = 1;
                break;
            }
        }
        if (matched) continue;
        if (c == '\'' || c == '"') {
            size_t at = l->pos++;
            struct tstr v = {0};
            if (consume_string(l, c, &v)) return -1;
            if (push(l, TT_STR, v.p, v.n, at)) return -1;
            l->pos++;
            continue;
        }
        if (isdig(c)) {
            size_t at = l->pos;
            if (consume_digits(l)) return -1;
            if (last != TT_DOT && l->pos + 1 < n && s[l->pos] == '.' && isdig(s[l->pos + 1])) {
                l->pos++;
                if (consume_digits(l)) return -1;
            }
            if (push(l, TT_NUM, s + at, l->pos - at, at)) return -1;
            continue;
        }
        if (isword(c)) {
            size_t at = l->pos;
            while (l->pos < n && isword(s[l->pos]))
                if (++l->pos >= n) return lx_err(l, n, "Unexpected end of input", 0);
            if (push(l, TT_IDENT, s + at, l->pos - at, at)) return -1;
            continue;
        }
        return lx_err(l, l->pos, "Unexpected character", c);
    }
    return 0;
}

int tmpl_lex(struct tmpl_arena *a, const char *src, size_t len, struct ttok **toks, size_t *ntok,
             char *err, size_t errlen)
{
    struct lx l = {.a = a, .err = err, .errlen = errlen};
    if (preprocess(a, src, len, &l.src)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (lex_main(&l)) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        return -1;
    }
    *toks = l.t;
    *ntok = l.n;
    return 0;
}
