/* engine/tmpl_internal.h: shared internals of the chat-template interpreter
 * (lexer, parser, values, evaluator, filters). Not a public header: only
 * engine/tmpl_*.c and engine/chat_template.c include it.
 *
 * defines: struct tmpl_arena (bump allocator), struct tstr, struct tv (runtime
 *          value), struct tnode (AST), struct tmpl_rt (per-render state), and
 *          the functions each tmpl_*.c file exports to the others.
 *
 * Semantics follow @huggingface/jinja (the JavaScript engine transformers.js
 * and the HF hub use), not Python Jinja2, wherever the two differ: the aim is
 * byte-identical output to that reference. Comments marked "JS:" name a quirk
 * copied on purpose.
 *
 * Threads: a parsed template (AST in its own arena) is immutable after
 * tmpl_create; every render owns a private struct tmpl_rt (arena, scopes,
 * output), so any number of threads may render one template at once.
 */
#ifndef DS_ENGINE_TMPL_INTERNAL_H
#define DS_ENGINE_TMPL_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* ---- arena ------------------------------------------------------------- */

struct tmpl_blk;
struct tmpl_arena {
    struct tmpl_blk *head; /* owned chain of blocks */
    size_t total;          /* bytes allocated so far */
    size_t limit;          /* 0 = unlimited; else allocation beyond fails */
    int cached;            /* recycle blocks through a per-thread cache (renders) */
};
/* Returns zeroed memory, or NULL when out of memory / over the limit. */
void *ta_alloc(struct tmpl_arena *a, size_t n);
void *ta_alloc_raw(struct tmpl_arena *a, size_t n); /* not zeroed */
void ta_free_all(struct tmpl_arena *a);

/* ---- strings ------------------------------------------------------------ */

struct tstr {
    const char *p; /* borrowed: arena, AST or the caller's cJSON; not NUL-terminated */
    size_t n;
};

/* Growable byte buffer living in an arena (old storage is simply abandoned). */
struct tbuf {
    char *p;
    size_t n, cap;
};

/* ---- runtime values ----------------------------------------------------- */

enum tv_type {
    TV_UNDEF = 0,
    TV_NULL,
    TV_BOOL,
    TV_INT,   /* JS number that was integral when created (double storage, as JS) */
    TV_FLOAT, /* JS FloatValue */
    TV_STR,
    TV_ARRAY, /* also tuples (struct tarr.tuple) */
    TV_OBJECT,
    TV_NS, /* namespace(): mutable attribute bag, not a mapping */
    TV_FUNC,
};

struct tarr;
struct tobj;
struct tfunc;

struct tv {
    enum tv_type t;
    union {
        int b;
        double n;
        struct tstr s;
        struct tarr *a;
        struct tobj *o;
        struct tfunc *f;
    };
};

struct tarr {
    size_t n;
    struct tv *v;
    int tuple; /* JS TupleValue (type name differs from ArrayValue) */
};

struct tkv {
    struct tstr k;
    struct tv v;
};

enum tobj_kind { TOBJ_PLAIN = 0, TOBJ_KWARGS };

struct tobj {
    size_t n, cap;
    struct tkv *kv; /* insertion order */
    enum tobj_kind kind;
};

enum tfunc_kind {
    TF_BUILTIN, /* method bound to .self, or a global */
    TF_MACRO,
    TF_CALLER, /* body of a {% call %} block */
};

struct tscope;
struct tnode;
struct tfunc {
    enum tfunc_kind kind;
    int id;                  /* builtin id (tmpl_filters.c) */
    struct tv self;          /* bound receiver for methods */
    const struct tnode *def; /* macro / call block node */
    struct tscope *closure;  /* defining scope */
};

/* ---- AST ----------------------------------------------------------------- */

enum tn_kind {
    /* statements */
    TN_TEXT,
    TN_IF,
    TN_FOR,
    TN_SET,
    TN_MACRO,
    TN_CALLBLOCK,
    TN_FILTERBLOCK,
    TN_BREAK,
    TN_CONTINUE,
    TN_COMMENT,
    /* expressions */
    TN_STR,
    TN_INT,
    TN_FLOAT,
    TN_IDENT,
    TN_ARRAY,
    TN_TUPLE,
    TN_OBJECT,
    TN_MEMBER,
    TN_SLICE,
    TN_CALL,
    TN_FILTER,
    TN_TEST,
    TN_BINARY,
    TN_UNARY,
    TN_TERNARY,
    TN_SELECT,
    TN_KWARG,
    TN_SPREAD,
    TN_KWSPREAD,
};

enum tn_op {
    OP_NONE = 0,
    OP_AND,
    OP_OR,
    OP_NOT,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_GT,
    OP_LE,
    OP_GE,
    OP_IN,
    OP_NOTIN,
    OP_ADD,
    OP_SUB,
    OP_CONCAT,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
};

struct tnlist {
    struct tnode **v;
    size_t n;
};

/* One node shape for everything; which fields mean what per kind:
 *   TEXT/STR/IDENT: s.  INT/FLOAT: num.  ARRAY/TUPLE: l1.  OBJECT: l1 keys, l2 values.
 *   MEMBER: a object, b property, flag computed.  SLICE: a start, b stop, c step (NULL = none).
 *   CALL: a callee, l1 args.  FILTER: a operand, b filter (IDENT or CALL).
 *   TEST: a operand, s test name, flag negate.  BINARY: op, a, b.  UNARY: op, a.
 *   TERNARY: a cond, b true, c false.  SELECT: a lhs, b test.  KWARG: s key, a value.
 *   SPREAD/KWSPREAD: a.  IF: a test, l1 body, l2 else.  FOR: a loopvar, b iterable,
 *   l1 body, l2 else.  SET: a target, b value (or NULL: l1 body).  MACRO: s name,
 *   l2 params, l1 body, flag special-arg bits.  CALLBLOCK: a call expr, l2 caller
 *   params, l1 body, flag bits.  FILTERBLOCK: b filter, l1 body. */
struct tnode {
    enum tn_kind k;
    enum tn_op op;
    int line; /* 1-based line in the original source */
    int flag;
    struct tstr s;
    double num;
    struct tnode *a, *b, *c;
    struct tnlist l1, l2;
};

/* special-argument bits for macros (which of these the body reads) */
#define TMPL_SPECIAL_CALLER 1
#define TMPL_SPECIAL_KWARGS 2
#define TMPL_SPECIAL_VARARGS 4

/* ---- lexer ---------------------------------------------------------------- */

enum ttok_type {
    TT_TEXT,
    TT_NUM,
    TT_STR,
    TT_IDENT,
    TT_EQUALS,
    TT_LPAREN,
    TT_RPAREN,
    TT_OPEN_STMT,
    TT_CLOSE_STMT,
    TT_OPEN_EXPR,
    TT_CLOSE_EXPR,
    TT_LBRACKET,
    TT_RBRACKET,
    TT_LBRACE,
    TT_RBRACE,
    TT_COMMA,
    TT_DOT,
    TT_COLON,
    TT_PIPE,
    TT_ADD,  /* + - ~ */
    TT_MUL,  /* * / // % */
    TT_POW,  /* ** */
    TT_CMP,  /* < > <= >= == != */
    TT_UNARY,
    TT_COMMENT,
};

struct ttok {
    enum ttok_type t;
    struct tstr v;
    int line;
};

/* Tokenizes source (preprocessed with lstrip_blocks + trim_blocks, as
 * @huggingface/jinja's Template does). Tokens and strings live in `a`.
 * Returns 0, or -1 with a message naming the line in err. */
int tmpl_lex(struct tmpl_arena *a, const char *src, size_t len, struct ttok **toks, size_t *ntok,
             char *err, size_t errlen);

/* Parses tokens into a program (list of statements). 0 or -1 + err (with line). */
int tmpl_parse(struct tmpl_arena *a, const struct ttok *toks, size_t ntok, struct tnlist *prog,
               char *err, size_t errlen);

/* ---- per-render state ------------------------------------------------------ */

struct tvar {
    struct tstr name;
    struct tv v;
};

struct tscope {
    struct tscope *parent;
    struct tvar *vars;
    size_t n, cap;
    int call_block; /* JS CALL_BLOCK_SCOPE */
};

struct tmpl_rt {
    struct tmpl_arena arena;
    jmp_buf *fail; /* longjmp target: errors unwind the whole render (see tmpl_eval.c) */
    char *err;
    size_t errlen;
    int depth;              /* recursion guard */
    size_t steps;           /* loop iteration budget */
    const struct tnode *at; /* node being evaluated, for error lines */
};

/* Reports an error and unwinds the render (never returns). */
_Noreturn void tmpl_fail(struct tmpl_rt *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *tmpl_alloc(struct tmpl_rt *rt, size_t n); /* fails the render on OOM */

/* ---- values (tmpl_value.c) ----------------------------------------------- */

struct tv tv_undef(void);
struct tv tv_null(void);
struct tv tv_bool(int b);
struct tv tv_int(double n);
struct tv tv_float(double n);
struct tv tv_str(struct tstr s);
struct tv tv_cstr(struct tmpl_rt *rt, const char *s, size_t n); /* copies */
struct tv tv_array(struct tmpl_rt *rt, size_t n);              /* n zeroed (undef) slots */
struct tv tv_object(struct tmpl_rt *rt);
struct tstr tstr_lit(const char *s);
int tstr_eq(struct tstr a, const char *lit);
int tstr_eqs(struct tstr a, struct tstr b);

void tobj_set(struct tmpl_rt *rt, struct tobj *o, struct tstr k, struct tv v);
struct tv *tobj_get(const struct tobj *o, struct tstr k); /* NULL if absent */
void tobj_append(struct tmpl_rt *rt, struct tobj *o, struct tstr k, struct tv v); /* no dedupe */

void tbuf_put(struct tmpl_rt *rt, struct tbuf *b, const char *p, size_t n);
void tbuf_puts(struct tmpl_rt *rt, struct tbuf *b, const char *s);
struct tstr tbuf_str(const struct tbuf *b);

/* JS-style type name, e.g. "StringValue" (used in error messages). */
const char *tv_type_name(struct tv v);
int tv_truthy(struct tv v);
/* JS Number#toString. */
void tmpl_fmt_number(struct tmpl_rt *rt, struct tbuf *b, double x);
/* RuntimeValue.toString(): how {{ v }} renders (floats as 3.0, containers as JSON). */
void tv_display(struct tmpl_rt *rt, struct tbuf *b, struct tv v);
/* String(v.value): what + and ~ concatenate (floats as 3, objects "[object Map]"). */
void tv_raw(struct tmpl_rt *rt, struct tbuf *b, struct tv v);

struct tojson_opts {
    int indent; /* 0 = none */
    int ensure_ascii;
    int sort_keys;
    int have_seps;
    struct tstr item_sep, key_sep;
};
void tv_tojson(struct tmpl_rt *rt, struct tbuf *b, struct tv v, const struct tojson_opts *o, int depth,
               int undef_as_null);

/* cJSON -> runtime value (deep copy of structure, strings borrowed). */
struct tv tv_from_json(struct tmpl_rt *rt, const cJSON *j, int depth);

/* UTF-8 helpers with JS (UTF-16) semantics. */
size_t tmpl_utf16_len(struct tstr s);
int tmpl_is_space_at(const char *p, size_t n, size_t *clen); /* JS \s at p */
struct tstr tmpl_trim(struct tstr s, int left, int right);
size_t tmpl_utf8_next(const char *p, size_t n); /* bytes of the code point at p (>=1) */

/* ---- evaluator (tmpl_eval.c) ---------------------------------------------- */

struct tv tmpl_eval(struct tmpl_rt *rt, const struct tnode *n, struct tscope *sc);
struct tscope *tmpl_scope_new(struct tmpl_rt *rt, struct tscope *parent);
void tmpl_scope_set(struct tmpl_rt *rt, struct tscope *sc, struct tstr name, struct tv v);
struct tv tmpl_scope_get(const struct tscope *sc, struct tstr name);
/* Renders a statement list into out; returns 0, or 1/2 for break/continue. */
int tmpl_render_block(struct tmpl_rt *rt, const struct tnlist *body, struct tscope *sc, struct tbuf *out);
/* Evaluates call arguments JS-style: positional values then kwargs (NULL if none). */
void tmpl_eval_args(struct tmpl_rt *rt, const struct tnlist *args, struct tscope *sc, struct tv **pos,
                    size_t *npos, struct tobj **kw);
struct tv tmpl_call(struct tmpl_rt *rt, struct tv fn, struct tv *args, size_t nargs, struct tobj *kw,
                    struct tscope *callsite);
int tmpl_loose_eq(struct tv a, struct tv b);   /* JS == on .value */
int tmpl_strict_eq(struct tv a, struct tv b);  /* JS === on .value */
int tmpl_compare(struct tmpl_rt *rt, struct tv a, struct tv b, int case_sensitive);

/* ---- filters, tests, builtins (tmpl_filters.c) ---------------------------- */

/* 1 if `name` is a filter / test some value type supports (checked at parse time). */
int tmpl_filter_known(struct tstr name);
int tmpl_test_known(struct tstr name);
/* Runs test `name` on v (and arg for selectattr's value). */
int tmpl_run_test(struct tmpl_rt *rt, struct tstr name, struct tv v, const struct tv *arg);
struct tv tmpl_apply_filter(struct tmpl_rt *rt, struct tv operand, const struct tnode *filter, struct tscope *sc);
/* Builtin member lookup (e.g. "upper" on strings); undefined when absent. */
struct tv tmpl_builtin_member(struct tmpl_rt *rt, struct tv self, struct tstr name);
struct tv tmpl_call_builtin(struct tmpl_rt *rt, const struct tfunc *f, struct tv *args, size_t nargs,
                            struct tobj *kw);
/* Unicode upper/lower casing of the first max_cps code points (JS toUpperCase). */
struct tstr tmpl_case_map(struct tmpl_rt *rt, struct tstr s, int upper, size_t max_cps);
/* Declares globals (true, none, namespace, range, raise_exception, strftime_now, ...). */
void tmpl_setup_globals(struct tmpl_rt *rt, struct tscope *sc);

#endif
