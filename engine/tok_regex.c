/* engine/tok_regex.c: tokenizer.json regexes -> PCRE2 (UTF + UCP, JIT).
 *
 * Runs at load time on the loading thread. tokenizer.json patterns are written
 * for Oniguruma (the Rust tokenizers crate). Our reference, the npm
 * @huggingface/tokenizers, translates them structurally to JS `u`-mode
 * regexes; this file performs the same translation, targeting PCRE2 instead,
 * so both engines see the same character sets: \s is \p{White_Space}, \d is
 * \p{Nd}, \w is Oniguruma's word set, \h is a hex digit, `.` excludes only
 * \n, ^/$ are line anchors, (?i:...) folds ASCII letters only (PCRE2's own
 * caseless mode would also fold e.g. U+017F to s), atomic groups and
 * possessive quantifiers become ordinary ones (as in JS; the README of the
 * npm package documents this), and {n}+ stacks as in Oniguruma.
 * Constructs we do not translate (class intersections, nested classes,
 * complement escapes inside classes, unknown group flags, unknown escapes)
 * are a load error naming the construct.
 *
 * The ByteLevel pre-tokenizer's GPT-2 pattern is a native JS regex in the
 * reference, so its \s is JS's (adds U+FEFF, lacks U+0085): see
 * tok_regex_compile_gpt2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok_internal.h"

struct sb {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *np = realloc(b->p, c);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_puts(struct sb *b, const char *s) { sb_put(b, s, strlen(s)); }

#define WORD_IN_CLASS "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}"
#define WORD_CHARS WORD_IN_CLASS "\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}"
#define WORD_CLASS "[" WORD_CHARS "]"
#define NON_WORD_CLASS "[^" WORD_CHARS "]"
#define HEX_CHARS "0-9A-Fa-f"

static bool is_alpha(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static bool is_alnum(int c) { return is_alpha(c) || (c >= '0' && c <= '9'); }

/* Length in bytes of the UTF-8 char at s. */
static size_t u8len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    for (size_t i = 1; i < k; i++)
        if (!s[i]) return i;
    return k;
}

/* \p{..} \P{..} \x{..} \u{..} at s: fills kind/body, returns length or 0. */
static size_t braced_escape(const char *s, char *kind, const char **body, size_t *blen)
{
    if (s[0] != '\\' || !strchr("pPxu", s[1]) || !s[1] || s[2] != '{') return 0;
    const char *e = strchr(s + 3, '}');
    if (!e) return 0;
    *kind = s[1];
    *body = s + 3;
    *blen = (size_t)(e - (s + 3));
    return (size_t)(e - s) + 1;
}

static bool is_hex(int c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* \xHH, \uHHHH, \cX: length or 0 */
static size_t fixed_escape(const char *s)
{
    if (s[0] != '\\') return 0;
    if (s[1] == 'x' && is_hex(s[2]) && is_hex(s[3])) return 4;
    if (s[1] == 'u' && is_hex(s[2]) && is_hex(s[3]) && is_hex(s[4]) && is_hex(s[5])) return 6;
    if (s[1] == 'c' && is_alpha(s[2])) return 3;
    return 0;
}

/* Emit a code-point escape (from \x{..}, \xHH, \uHHHH), ASCII-folded when asked. */
static void emit_cp(struct sb *o, const char *hex, size_t n, bool fold)
{
    char buf[16];
    if (n > 8) n = 8;
    memcpy(buf, hex, n);
    buf[n] = 0;
    unsigned long cp = strtoul(buf, NULL, 16);
    if (fold && cp < 128 && is_alpha((int)cp)) {
        char f[5] = {'[', (char)(cp | 0x20), (char)(cp & ~0x20u), ']', 0};
        sb_puts(o, f);
        return;
    }
    char e[24];
    snprintf(e, sizeof e, "\\x{%lx}", cp);
    sb_puts(o, e);
}

static int fail(char *err, size_t errlen, const char *what, size_t at)
{
    snprintf(err, errlen, "tokenizer.json: unsupported regex construct (%s) at offset %zu", what,
             at);
    return -1;
}

/* Letters whose other case must be added so an ASCII-caseless class matches
 * both cases (what the JS translation computes by testing membership). */
static int fold_additions(const char *frag, char *add, char *err, size_t errlen)
{
    struct sb t = {0};
    sb_puts(&t, "^[");
    sb_puts(&t, frag);
    sb_puts(&t, "]$");
    if (t.oom) return fail(err, errlen, "out of memory", 0);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)t.p, t.n, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    free(t.p);
    if (!re) return fail(err, errlen, "character class", eo);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int na = 0;
    for (int k = 0; k < 26 && md; k++) {
        char up = (char)('A' + k), lo = (char)('a' + k);
        bool hu = pcre2_match(re, (PCRE2_SPTR)&up, 1, 0, 0, md, NULL) >= 0;
        bool hl = pcre2_match(re, (PCRE2_SPTR)&lo, 1, 0, 0, md, NULL) >= 0;
        if (hu != hl) add[na++] = hu ? lo : up;
    }
    add[na] = 0;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return 0;
}

/* Parse the class starting at pat[*i] == '['; append its PCRE2 form to o. */
static int parse_class(const char *pat, size_t *ip, bool fold, struct sb *o, char *err,
                       size_t errlen)
{
    size_t i = *ip + 1, start = *ip;
    bool neg = pat[i] == '^';
    if (neg) i++;
    size_t first = i;
    struct sb f = {0};
    int rc = -1;
    while (pat[i]) {
        char c = pat[i];
        if (c == '\\') {
            char kind;
            const char *body;
            size_t blen, l = braced_escape(pat + i, &kind, &body, &blen);
            if (l) {
                if (kind == 'x' || kind == 'u') emit_cp(&f, body, blen, false);
                else if (blen == 4 && !memcmp(body, "Word", 4)) {
                    if (kind == 'P') { fail(err, errlen, "\\P{Word} inside a class", i); goto out; }
                    sb_puts(&f, WORD_IN_CLASS);
                } else sb_put(&f, pat + i, l);
                i += l;
                continue;
            }
            l = fixed_escape(pat + i);
            if (l) {
                if (pat[i + 1] == 'c') sb_put(&f, pat + i, l);
                else emit_cp(&f, pat + i + 2, l - 2, false);
                i += l;
                continue;
            }
            char n = pat[i + 1];
            if (!n) { fail(err, errlen, "trailing backslash", i); goto out; }
            size_t nl = u8len(pat + i + 1);
            const char *lit = pat + i + 1;
            i += 1 + nl;
            switch (n) {
            case '\n': sb_puts(&f, "\\n"); break;
            case '\r': sb_puts(&f, "\\r"); break;
            case '\t': sb_puts(&f, "\\t"); break;
            case '\f': sb_puts(&f, "\\f"); break;
            case '\v': case 'v': sb_puts(&f, "\\x0b"); break;
            case 'h': sb_puts(&f, HEX_CHARS); break;
            case 'w': sb_puts(&f, WORD_IN_CLASS); break;
            case 'd': sb_puts(&f, "\\p{Nd}"); break;
            case 'D': sb_puts(&f, "\\P{Nd}"); break;
            case 's': sb_puts(&f, "\\p{White_Space}"); break;
            case 'S': sb_puts(&f, "\\P{White_Space}"); break;
            case 'a': sb_puts(&f, "\\x07"); break;
            case 'e': sb_puts(&f, "\\x1B"); break;
            case 'n': case 'r': case 't': case 'f': case 'b':
                sb_put(&f, lit - 1, 2);
                break;
            default:
                if (is_alnum(n)) { fail(err, errlen, "escape inside a class", i - 2); goto out; }
                if ((unsigned char)n < 0x80) sb_put(&f, lit - 1, 2); /* \ + punct is literal */
                else sb_put(&f, lit, nl); /* identity escape of a non-ASCII char */
            }
            continue;
        }
        if (c == ']') {
            if (i == first) { sb_puts(&f, "\\]"); i++; continue; }
            break;
        }
        if (c == '&' && pat[i + 1] == '&') { fail(err, errlen, "class intersection &&", i); goto out; }
        if (c == '[') {
            static const struct { const char *n, *frag; } posix[] = {
                {"alpha", "\\p{Alphabetic}"}, {"alnum", "\\p{Alphabetic}\\p{Nd}"},
                {"digit", "\\p{Nd}"}, {"lower", "\\p{Lowercase}"}, {"upper", "\\p{Uppercase}"},
                {"space", "\\p{White_Space}"}, {"blank", "\\t\\p{Zs}"}, {"punct", "\\p{P}\\p{S}"},
                {"cntrl", "\\p{Cc}"}, {"word", WORD_IN_CLASS}, {"xdigit", HEX_CHARS}};
            bool done = false;
            if (pat[i + 1] == ':') {
                for (size_t k = 0; k < sizeof posix / sizeof posix[0]; k++) {
                    size_t nl = strlen(posix[k].n);
                    if (!strncmp(pat + i + 2, posix[k].n, nl) && !strncmp(pat + i + 2 + nl, ":]", 2)) {
                        sb_puts(&f, posix[k].frag);
                        i += 2 + nl + 2;
                        done = true;
                        break;
                    }
                }
            }
            if (!done) { fail(err, errlen, "nested or negated POSIX class", i); goto out; }
            continue;
        }
        if (c == '-') {
            if (f.n == 0 || pat[i + 1] == ']') sb_puts(&f, "\\-");
            else sb_puts(&f, "-");
            i++;
            continue;
        }
        if (c == '^' && f.n == 0) { sb_puts(&f, "\\^"); i++; continue; }
        size_t l = u8len(pat + i);
        if (l == 1 && !is_alnum(c)) sb_put(&f, "\\", 1);
        sb_put(&f, pat + i, l);
        i += l;
    }
    if (pat[i] != ']') { fail(err, errlen, "unterminated class", start); goto out; }
    if (f.oom) { fail(err, errlen, "out of memory", start); goto out; }
    if (f.n == 0) { fail(err, errlen, "empty class", start); goto out; }
    if (fold) {
        char add[27];
        if (fold_additions(f.p, add, err, errlen)) goto out;
        sb_puts(&f, add);
    }
    sb_puts(o, neg ? "[^" : "[");
    sb_put(o, f.p, f.n);
    sb_puts(o, "]");
    *ip = i + 1;
    rc = 0;
out:
    free(f.p);
    return rc;
}

/* The structural rewrite (port of rewrite_oniguruma_to_js). */
static int rewrite(const char *pat, struct sb *o, char *err, size_t errlen)
{
    long atom_start = -1;
    bool lwq = false, fold = false;
    struct { long pos; bool fold; } st[256];
    int depth = 0;
#define EMIT_ATOM_BEGIN() (atom_start = (long)o->n, lwq = false)
    for (size_t i = 0; pat[i];) {
        char c = pat[i];
        if (c == '\\') {
            char kind;
            const char *body;
            size_t blen, l = braced_escape(pat + i, &kind, &body, &blen);
            if (l) {
                EMIT_ATOM_BEGIN();
                if (kind == 'x' || kind == 'u') emit_cp(o, body, blen, fold);
                else if (blen == 4 && !memcmp(body, "Word", 4))
                    sb_puts(o, kind == 'p' ? WORD_CLASS : NON_WORD_CLASS);
                else sb_put(o, pat + i, l);
                i += l;
                continue;
            }
            l = fixed_escape(pat + i);
            if (l) {
                EMIT_ATOM_BEGIN();
                if (pat[i + 1] == 'c') sb_put(o, pat + i, l);
                else emit_cp(o, pat + i + 2, l - 2, fold);
                i += l;
                continue;
            }
            char n = pat[i + 1];
            if (!n) return fail(err, errlen, "trailing backslash", i);
            size_t nl = u8len(pat + i + 1);
            const char *lit = pat + i + 1;
            i += 1 + nl;
            if (n == 'G') continue;
            EMIT_ATOM_BEGIN();
            switch (n) {
            case '\n': sb_puts(o, "\\n"); break;
            case '\r': sb_puts(o, "\\r"); break;
            case '\t': sb_puts(o, "\\t"); break;
            case '\f': sb_puts(o, "\\f"); break;
            case '\v': case 'v': sb_puts(o, "\\x0b"); break;
            case 'A': sb_puts(o, "\\A"); break;
            case 'z': sb_puts(o, "\\z"); break;
            case 'Z': sb_puts(o, "\\Z"); break;
            case 'h': sb_puts(o, "[" HEX_CHARS "]"); break;
            case 'H': sb_puts(o, "[^" HEX_CHARS "]"); break;
            case 'w': sb_puts(o, WORD_CLASS); break;
            case 'W': sb_puts(o, NON_WORD_CLASS); break;
            case 'd': sb_puts(o, "\\p{Nd}"); break;
            case 'D': sb_puts(o, "\\P{Nd}"); break;
            case 's': sb_puts(o, "\\p{White_Space}"); break;
            case 'S': sb_puts(o, "\\P{White_Space}"); break;
            case 'b':
                sb_puts(o, "(?:(?<!" WORD_CLASS ")(?=" WORD_CLASS ")|(?<=" WORD_CLASS ")(?!" WORD_CLASS "))");
                break;
            case 'B':
                sb_puts(o, "(?:(?<!" WORD_CLASS ")(?!" WORD_CLASS ")|(?<=" WORD_CLASS ")(?=" WORD_CLASS "))");
                break;
            case 'a': sb_puts(o, "\\x07"); break;
            case 'e': sb_puts(o, "\\x1B"); break;
            case 'n': case 'r': case 't': case 'f': case '0':
                sb_put(o, lit - 1, 2);
                break;
            default:
                if (n >= '1' && n <= '9') sb_put(o, lit - 1, 2); /* backreference */
                else if (is_alnum(n)) return fail(err, errlen, "escape", i - 2);
                else if ((unsigned char)n < 0x80) sb_put(o, lit - 1, 2);
                else sb_put(o, lit, nl); /* identity escape of a non-ASCII char */
            }
            continue;
        }
        switch (c) {
        case '[':
            EMIT_ATOM_BEGIN();
            if (parse_class(pat, &i, fold, o, err, errlen)) return -1;
            continue;
        case ']': EMIT_ATOM_BEGIN(); sb_puts(o, "\\]"); i++; continue;
        case '.': EMIT_ATOM_BEGIN(); sb_puts(o, "[^\\n]"); i++; continue;
        case '^': EMIT_ATOM_BEGIN(); sb_puts(o, "(?:(?<![\\s\\S])|(?<=\\n))"); i++; continue;
        case '$': EMIT_ATOM_BEGIN(); sb_puts(o, "(?:(?=\\n)|(?![\\s\\S]))"); i++; continue;
        case '(': {
            if (depth >= 256) return fail(err, errlen, "groups nested too deep", i);
            st[depth].pos = (long)o->n;
            st[depth].fold = fold;
            depth++;
            const char *p = pat + i;
            size_t pl = 1;
            const char *op = "(";
            if (!strncmp(p, "(?i:", 4)) { pl = 4; op = "(?:"; fold = true; }
            else if (!strncmp(p, "(?<=", 4) || !strncmp(p, "(?<!", 4)) { pl = 4; op = NULL; }
            else if (!strncmp(p, "(?:", 3) || !strncmp(p, "(?=", 3) || !strncmp(p, "(?!", 3)) { pl = 3; op = NULL; }
            else if (!strncmp(p, "(?>", 3)) { pl = 3; op = "(?:"; }
            else if (!strncmp(p, "(?<", 3) && (is_alpha(p[3]) || p[3] == '_')) {
                size_t k = 3;
                while (is_alnum(p[k]) || p[k] == '_') k++;
                if (p[k] != '>') return fail(err, errlen, "group name", i);
                pl = k + 1;
                op = NULL;
            } else if (p[1] == '?') return fail(err, errlen, "group flags", i);
            if (op) sb_puts(o, op);
            else sb_put(o, p, pl);
            lwq = false;
            i += pl;
            continue;
        }
        case ')':
            if (!depth) return fail(err, errlen, "unbalanced )", i);
            sb_puts(o, ")");
            depth--;
            atom_start = st[depth].pos;
            fold = st[depth].fold;
            lwq = false;
            i++;
            continue;
        case '|': sb_puts(o, "|"); atom_start = -1; lwq = false; i++; continue;
        case '{': {
            /* {n} {n,} {n,m} {,m} */
            size_t k = i + 1;
            bool digits1 = false, comma = false, ok = true;
            while (pat[k] >= '0' && pat[k] <= '9') { k++; digits1 = true; }
            if (pat[k] == ',') {
                comma = true;
                k++;
                bool d2 = false;
                while (pat[k] >= '0' && pat[k] <= '9') { k++; d2 = true; }
                if (!digits1 && !d2) ok = false;
            } else if (!digits1) ok = false;
            if (pat[k] != '}') ok = false;
            if (!ok || atom_start < 0) { EMIT_ATOM_BEGIN(); sb_puts(o, "\\{"); i++; continue; }
            struct sb body = {0};
            if (!digits1 && comma) sb_puts(&body, "0");
            sb_put(&body, pat + i + 1, k - (i + 1));
            i = k + 1;
            if (pat[i] == '+' || pat[i] == '*') {
                /* Oniguruma stacks {n}+ as (?:X{n})+ rather than possessive. */
                struct sb w = {0};
                sb_puts(&w, "(?:");
                sb_put(&w, o->p + atom_start, o->n - (size_t)atom_start);
                sb_puts(&w, "{");
                sb_put(&w, body.p ? body.p : "", body.n);
                sb_puts(&w, "})");
                sb_put(&w, pat + i, 1);
                o->n = (size_t)atom_start;
                sb_put(o, w.p ? w.p : "", w.n);
                bool oom = w.oom;
                free(w.p);
                if (oom) o->oom = true;
                i++;
            } else {
                sb_puts(o, "{");
                sb_put(o, body.p ? body.p : "", body.n);
                sb_puts(o, "}");
            }
            if (body.oom) o->oom = true;
            free(body.p);
            lwq = true;
            continue;
        }
        case '}': EMIT_ATOM_BEGIN(); sb_puts(o, "\\}"); i++; continue;
        case '+':
            if (lwq) { i++; continue; } /* possessive -> greedy, as in the JS port */
            sb_puts(o, "+");
            lwq = true;
            i++;
            continue;
        case '*':
        case '?':
            sb_put(o, &c, 1);
            lwq = true;
            i++;
            continue;
        default: {
            EMIT_ATOM_BEGIN();
            size_t l = u8len(pat + i);
            if (fold && is_alpha(c)) {
                char f[5] = {'[', (char)(c | 0x20), (char)(c & ~0x20), ']', 0};
                sb_puts(o, f);
            } else sb_put(o, pat + i, l);
            i += l;
            continue;
        }
        }
    }
#undef EMIT_ATOM_BEGIN
    if (depth) return fail(err, errlen, "unbalanced (", strlen(pat));
    if (o->oom) return fail(err, errlen, "out of memory", 0);
    return 0;
}

static pcre2_code *compile(const char *pat, size_t n, uint32_t extra, const char *orig, char *err,
                           size_t errlen)
{
    int ec;
    PCRE2_SIZE eo;
    /* PCRE2_LITERAL admits no UCP (irrelevant to a literal anyway) */
    uint32_t opts = (extra & PCRE2_LITERAL) ? PCRE2_UTF | extra : PCRE2_UTF | PCRE2_UCP | extra;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, opts, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[200];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "tokenizer.json: regex '%.80s' does not compile in PCRE2: %s",
                 orig, (const char *)msg);
        return NULL;
    }
    /* JIT is an optimisation: without it (unsupported CPU) the interpreter runs. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

pcre2_code *tok_regex_compile_onig(const char *pat, char *err, size_t errlen)
{
    /* The JS port first rewrites the BLOOM pattern [^(\s|[X])] to [^()|\sX]. */
    struct sb pre = {0};
    for (const char *p = pat; *p;) {
        const char *q = strstr(p, "[^(\\s|[");
        if (!q) { sb_puts(&pre, p); break; }
        const char *x = q + 7, *e = strchr(x, ']');
        if (!e || e == x || strncmp(e, "])]", 3)) {
            sb_put(&pre, p, (size_t)(x - p));
            p = x;
            continue;
        }
        sb_put(&pre, p, (size_t)(q - p));
        sb_puts(&pre, "[^()|\\s");
        sb_put(&pre, x, (size_t)(e - x));
        sb_puts(&pre, "]");
        p = e + 3;
    }
    if (pre.oom) { snprintf(err, errlen, "out of memory"); free(pre.p); return NULL; }
    struct sb o = {0};
    pcre2_code *re = NULL;
    if (!rewrite(pre.p ? pre.p : "", &o, err, errlen))
        re = compile(o.p ? o.p : "", o.n, 0, pat, err, errlen);
    free(o.p);
    free(pre.p);
    return re;
}

pcre2_code *tok_regex_compile_literal(const char *s, size_t n, char *err, size_t errlen)
{
    return compile(s, n, PCRE2_LITERAL, s, err, errlen);
}

/* JS \s: WhiteSpace + LineTerminator (U+FEFF in, U+0085 out). */
#define JS_WS "\\t\\n\\x0b\\f\\r\\x20\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}" \
              "\\x{202f}\\x{205f}\\x{3000}\\x{feff}"

pcre2_code *tok_regex_compile_gpt2(char *err, size_t errlen)
{
    static const char pat[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" JS_WS
                              "\\p{L}\\p{N}]+|[" JS_WS "]+(?![^" JS_WS "])|[" JS_WS "]+";
    return compile(pat, sizeof pat - 1, 0, "ByteLevel GPT-2 pattern", err, errlen);
}
