/* tests/unit/check_chat_template.c: the chat-template interpreter against the
 * reference engine.
 *
 * tests/fixtures/templates/cases.json lists (template, context) cases: the
 * real OLMo 3 instruct template plus ChatML, Llama 3 / 3.1, Qwen 2.5 / 3,
 * Mistral, Gemma and macro-style templates, and inline feature cases.
 * expected.json holds what @huggingface/jinja renders for each (regenerate
 * with `node tools/tmpl-expected.mjs`). Every case is one loop test: the C
 * output must equal the reference byte for byte, or fail where it fails (with
 * the same message for raise_exception).
 * Also: parse errors name the line, model-directory loading (jinja file,
 * tokenizer_config string and list forms, ChatML fallback) and concurrent
 * renders of one template from several threads.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "engine/chat_template.h"

#define FIXDIR "tests/fixtures/templates"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

/* Loaded once when the suite is built; forked tests inherit the parsed trees. */
static cJSON *g_cases, *g_expected;

static int n_cases(void)
{
    char *s = slurp(FIXDIR "/cases.json");
    char *e = slurp(FIXDIR "/expected.json");
    g_cases = s ? cJSON_Parse(s) : NULL;
    g_expected = e ? cJSON_Parse(e) : NULL;
    free(s);
    free(e);
    int n = g_cases ? cJSON_GetArraySize(g_cases) : 1;
    return n > 0 ? n : 1; /* at least one test, which then fails clearly */
}

static const cJSON *case_by_name(const char *name)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, g_cases)
    {
        if (!strcmp(cJSON_GetObjectItem(c, "name")->valuestring, name)) return c;
    }
    return NULL;
}

/* Shows where two renderings first differ. */
static void diff_msg(char *buf, size_t n, const char *got, const char *want)
{
    size_t i = 0;
    while (got[i] && got[i] == want[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    snprintf(buf, n, "first difference at byte %zu:\n got: ...%.80s\nwant: ...%.80s", i, got + from, want + from);
}

#define CHUNK 64 /* cases per forked test: a fork per case costs more than the case */

/* expected.json was rendered on the day it was generated, and templates
 * without a date_string (Llama 3.1) print strftime_now("%d %b %Y"): where our
 * output shows today's date (UTC or local) and the reference shows another
 * date of that shape at the same byte after "Today Date: ", take the
 * reference's, so the case stays exact on any day (strftime_now itself is
 * checked against the clock in test_strftime_now). */
static void today_to_recorded(char *out, const char *want)
{
    char today[2][32];
    time_t now = time(NULL);
    struct tm tm[2];
    gmtime_r(&now, &tm[0]);
    localtime_r(&now, &tm[1]);
    for (int i = 0; i < 2; i++)
        if (strftime(today[i], sizeof today[i], "%d %b %Y", &tm[i]) != 11) return;
    size_t wl = strlen(want), ol = strlen(out);
    for (char *p = out; (p = strstr(p, "Today Date: ")) != NULL; p += 12) {
        size_t off = (size_t)(p - out) + 12;
        if (off + 11 > wl || off + 11 > ol) break;
        const char *w = want + off;
        int shaped = w[0] >= '0' && w[0] <= '3' && w[1] >= '0' && w[1] <= '9' && w[2] == ' ' &&
                     w[6] == ' ' && w[7] >= '0' && w[7] <= '9' && w[10] >= '0' && w[10] <= '9';
        if (shaped && !strncmp(want + off - 12, "Today Date: ", 12) &&
            (!strncmp(out + off, today[0], 11) || !strncmp(out + off, today[1], 11)))
            memcpy(out + off, w, 11);
    }
}

/* Checks one case; on mismatch writes why into msg and returns 0. */
static int check_case(const cJSON *c, char *msg, size_t msglen)
{
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g_expected, "results"))
    {
        if (!strcmp(cJSON_GetObjectItem(e, "name")->valuestring, name)) break;
    }
    if (!e) return snprintf(msg, msglen, "%s: no expected result; rerun node tools/tmpl-expected.mjs", name), 0;
    char *src;
    const cJSON *tf = cJSON_GetObjectItem(c, "template");
    if (tf) {
        char path[512];
        snprintf(path, sizeof(path), FIXDIR "/%s", tf->valuestring);
        src = slurp(path);
    } else {
        src = strdup(cJSON_GetObjectItem(c, "source")->valuestring);
    }
    if (!src) return snprintf(msg, msglen, "%s: cannot read its template", name), 0;
    const cJSON *ctx = cJSON_GetObjectItem(c, "context");
    const cJSON *from = cJSON_GetObjectItem(c, "context_from");
    if (from) {
        const cJSON *fc = case_by_name(from->valuestring);
        ctx = fc ? cJSON_GetObjectItem(fc, "context") : NULL;
    }
    char err[512] = "";
    char *out = NULL;
    struct tmpl *t = tmpl_create(src, err, sizeof(err));
    int rc = t ? tmpl_render(t, ctx, &out, err, sizeof(err)) : TMPL_ERENDER;
    const cJSON *want_out = cJSON_GetObjectItem(e, "output");
    const cJSON *want_err = cJSON_GetObjectItem(e, "error");
    int ok = 1;
    if (cJSON_IsTrue(cJSON_GetObjectItem(c, "c_extension"))) {
        /* the reference fails on a filter we support on purpose (select/reject) */
        if (rc != TMPL_OK) ok = 0, snprintf(msg, msglen, "%s: extension case failed: %s", name, err);
    } else if (want_out) {
        if (rc != TMPL_OK) {
            ok = 0, snprintf(msg, msglen, "%s: render failed: %s", name, err);
        } else if (today_to_recorded(out, want_out->valuestring), strcmp(out, want_out->valuestring)) {
            char d[400];
            diff_msg(d, sizeof(d), out, want_out->valuestring);
            ok = 0, snprintf(msg, msglen, "%s: output differs from @huggingface/jinja; %s", name, d);
        }
    } else if (!want_err) {
        ok = 0, snprintf(msg, msglen, "%s: expected.json entry has neither output nor error", name);
    } else if (rc == TMPL_OK || out) {
        ok = 0, snprintf(msg, msglen, "%s: reference fails (%s) but we rendered: %.200s", name, want_err->valuestring,
                         out ? out : "");
    } else if (!err[0] && want_err->valuestring[0]) {
        ok = 0, snprintf(msg, msglen, "%s: error without a message", name);
    } else if ((strstr(name, "bad-alternation") || strstr(name, "raise")) && strcmp(err, want_err->valuestring)) {
        /* raise_exception() messages reach the client verbatim */
        ok = 0, snprintf(msg, msglen, "%s: message \"%s\" != reference \"%s\"", name, err, want_err->valuestring);
    }
    free(out);
    tmpl_destroy(t);
    free(src);
    return ok;
}

START_TEST(test_reference_cases)
{
    ck_assert_msg(g_cases && g_expected, "cannot load " FIXDIR "/cases.json and expected.json (run from the repo root)");
    int n = cJSON_GetArraySize(g_cases), bad = 0;
    char first[1024] = "";
    for (int i = _i * CHUNK; i < n && i < (_i + 1) * CHUNK; i++) {
        char msg[1024];
        if (!check_case(cJSON_GetArrayItem(g_cases, i), msg, sizeof(msg))) {
            if (!bad) snprintf(first, sizeof(first), "%s", msg);
            fprintf(stderr, "chat_template: %s\n", msg);
            bad++;
        }
    }
    ck_assert_msg(bad == 0, "%d case(s) of chunk %d differ; first: %s", bad, _i, first);
}
END_TEST

/* ---- parse errors ------------------------------------------------------------ */

static void expect_parse_error(const char *src, const char *want_sub)
{
    char err[512] = "";
    struct tmpl *t = tmpl_create(src, err, sizeof(err));
    ck_assert_msg(t == NULL, "template should not parse: %s", src);
    ck_assert_msg(strstr(err, want_sub) != NULL, "error \"%s\" lacks \"%s\"", err, want_sub);
}

START_TEST(test_parse_errors_name_line)
{
    expect_parse_error("line1\n{% if x %}\nno end\n", "line 3");
    expect_parse_error("a\nb\n{{ x | wordcount }}", "template line 3: unsupported filter 'wordcount'");
    expect_parse_error("{% for x in y %}\n{{ x is divisibleby }}{% endfor %}", "template line 2: unsupported test 'divisibleby'");
    expect_parse_error("\n\n\n{% include 'x.jinja' %}", "template line 4: Unknown statement type: include");
    expect_parse_error("{{ 'unterminated }}", "Unexpected end of input");
    expect_parse_error("one\ntwo {{ x + }}", "line 2");
    expect_parse_error("{% set %}", "line 1");
    expect_parse_error("{{ a.'x' }}", "Expected identifier or integer following dot operator");
    expect_parse_error("{# never closed", "Missing end of comment tag");
    expect_parse_error("{% macro m(a, a) %}{% endmacro %}", "Duplicate parameter name: a");
    expect_parse_error("{{ f(a=1, 2) }}", "Positional arguments must come before keyword arguments");
    expect_parse_error("{{ 'x' | 'y' }}", "Expected identifier for the filter");
    /* trim_blocks removes newlines, yet lines still count in the original source */
    expect_parse_error("{% if a %}\n{% if b %}\n{% endif %}\n\n{{ x | nope }}{% endif %}", "template line 5");
    /* absurd nesting is an error, not a stack overflow */
    {
        size_t n = 200000;
        char *deep = malloc(n * 2 + 16);
        strcpy(deep, "{{ ");
        size_t o = 3;
        for (size_t i = 0; i < n; i++) deep[o++] = '(';
        deep[o++] = '1';
        for (size_t i = 0; i < n; i++) deep[o++] = ')';
        strcpy(deep + o, " }}");
        expect_parse_error(deep, "nested too deeply");
        free(deep);
        char *nots = malloc(n * 4 + 16);
        strcpy(nots, "{{ ");
        for (size_t i = 0; i < n; i++) memcpy(nots + 3 + i * 4, "not ", 4);
        strcpy(nots + 3 + n * 4, "1 }}");
        expect_parse_error(nots, "nested too deeply");
        free(nots);
        char *ifs = malloc(n * 12 + 16);
        ifs[0] = 0;
        for (size_t i = 0; i < n; i++) memcpy(ifs + i * 11, "{% if 1 %}x", 11);
        ifs[n * 11] = 0;
        expect_parse_error(ifs, "nested too deeply");
        free(ifs);
    }
    /* a valid template parses and destroys cleanly */
    char err[128];
    struct tmpl *t = tmpl_create("{{ messages | length }}", err, sizeof(err));
    ck_assert_ptr_nonnull(t);
    tmpl_destroy(t);
    tmpl_destroy(NULL);
}
END_TEST

START_TEST(test_render_error_names_line)
{
    char err[512] = "";
    char *out = (char *)1;
    struct tmpl *t = tmpl_create("ok\n{% for m in messages %}\n{{ m.content + 1 }}{% endfor %}", err, sizeof(err));
    ck_assert_ptr_nonnull(t);
    cJSON *ctx = cJSON_Parse("{\"messages\":[{\"content\":null}]}");
    ck_assert_int_eq(tmpl_render(t, ctx, &out, err, sizeof(err)), TMPL_ERENDER);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(err, "template line 3") && strstr(err, "null"), "got: %s", err);
    /* a non-object context is a clear error, not a crash */
    cJSON *arr = cJSON_Parse("[1]");
    ck_assert_int_eq(tmpl_render(t, arr, &out, err, sizeof(err)), TMPL_ERENDER);
    /* NULL context: no variables; `messages` is undefined -> for over undefined fails */
    ck_assert_int_eq(tmpl_render(t, NULL, &out, err, sizeof(err)), TMPL_ERENDER);
    cJSON_Delete(arr);
    cJSON_Delete(ctx);
    tmpl_destroy(t);
}
END_TEST

START_TEST(test_limits)
{
    /* runaway templates hit a limit instead of eating the server */
    char err[512] = "";
    char *out = NULL;
    struct tmpl *t = tmpl_create("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", err, sizeof(err));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tmpl_render(t, NULL, &out, err, sizeof(err)), TMPL_ERENDER);
    ck_assert_msg(strstr(err, "too deep") != NULL, "got: %s", err);
    tmpl_destroy(t);
    t = tmpl_create("{{ range(100000000) | length }}", err, sizeof(err));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tmpl_render(t, NULL, &out, err, sizeof(err)), TMPL_ERENDER);
    tmpl_destroy(t);
}
END_TEST

/* ---- model directories ---------------------------------------------------------- */

static void mkmodel(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/ds_tmpl_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void rm_model(const char *dir)
{
    const char *names[] = {"chat_template.jinja", "tokenizer_config.json", "chat_template.json"};
    char path[512];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static char *render_str(const struct tmpl *t, const char *ctx_json)
{
    char err[512] = "";
    char *out = NULL;
    cJSON *ctx = cJSON_Parse(ctx_json);
    ck_assert_ptr_nonnull(ctx);
    int rc = tmpl_render(t, ctx, &out, err, sizeof(err));
    cJSON_Delete(ctx);
    ck_assert_msg(rc == TMPL_OK, "render failed: %s", err);
    return out;
}

/* Index and slice numbers beyond long long (fuzzer find, reproducer in
 * tests/fuzz/crashes_chat_template): clamped, rendered like any too-large
 * index, never an undefined cast. */
START_TEST(test_huge_indices)
{
    char err[512] = "";
    struct tmpl *t = tmpl_create("{{ xs[1:99999999999999999999999] }}|{{ xs[-99999999999999999999:2] }}|"
                                 "{{ xs[::99999999999999999999] }}|{{ xs[::-99999999999999999999] }}|"
                                 "{{ xs[99999999999999999999] is undefined }}|"
                                 "{{ s[-99999999999999999999] is undefined }}",
                                 err, sizeof(err));
    ck_assert_msg(t != NULL, "%s", err);
    char *out = render_str(t, "{\"xs\":[1,2,3],\"s\":\"abc\"}");
    ck_assert_str_eq(out, "[2, 3]|[1, 2]|[1]|[3]|true|true");
    free(out);
    tmpl_destroy(t);
}
END_TEST

START_TEST(test_fallback_chatml)
{
    char dir[64], err[512] = "";
    int fb = -1;
    mkmodel(dir, sizeof(dir));
    write_file(dir, "tokenizer_config.json", "{\"eos_token\": \"<|endoftext|>\"}");
    struct tmpl *t = tmpl_load_for_model(dir, err, sizeof(err), &fb);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_int_eq(fb, 1);
    char *out = render_str(t, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"add_generation_prompt\":true}");
    ck_assert_str_eq(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    tmpl_destroy(t);
    /* no tokenizer_config.json at all: still the fallback */
    rm_model(dir);
    mkmodel(dir, sizeof(dir));
    t = tmpl_load_for_model(dir, err, sizeof(err), NULL);
    ck_assert_ptr_nonnull(t);
    tmpl_destroy(t);
    rm_model(dir);
}
END_TEST

START_TEST(test_tokenizer_config_string)
{
    char dir[64], err[512] = "";
    int fb = -1;
    mkmodel(dir, sizeof(dir));
    write_file(dir, "tokenizer_config.json",
               "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\","
               " \"chat_template\": \"{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}\"}");
    struct tmpl *t = tmpl_load_for_model(dir, err, sizeof(err), &fb);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_int_eq(fb, 0);
    char *out = render_str(t, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    ck_assert_str_eq(out, "<s>[user]x</s>"); /* bos/eos defaults from the config */
    free(out);
    out = render_str(t, "{\"messages\":[],\"bos_token\":\"B\",\"eos_token\":\"E\"}");
    ck_assert_str_eq(out, "BE"); /* the caller's tokens win */
    free(out);
    tmpl_destroy(t);
    /* chat_template.jinja takes precedence over the config's string */
    write_file(dir, "chat_template.jinja", "jinja file {{ eos_token }}\n");
    t = tmpl_load_for_model(dir, err, sizeof(err), &fb);
    ck_assert_ptr_nonnull(t);
    out = render_str(t, "{}");
    ck_assert_str_eq(out, "jinja file </s>");
    free(out);
    tmpl_destroy(t);
    /* a broken template is a startup error naming file and line */
    write_file(dir, "chat_template.jinja", "ok\n{{ x | bogus }}");
    t = tmpl_load_for_model(dir, err, sizeof(err), &fb);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, "chat_template.jinja") && strstr(err, "line 2"), "got: %s", err);
    rm_model(dir);
}
END_TEST

START_TEST(test_tokenizer_config_list)
{
    char dir[64], err[512] = "";
    mkmodel(dir, sizeof(dir));
    write_file(dir, "tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"TOOLS{{ tools | length }}\"},"
               " {\"name\": \"default\", \"template\": \"PLAIN{{ messages | length }}\"},"
               " {\"name\": \"rag\", \"template\": \"RAG{{ documents | length }}\"}]}");
    int fb = -1;
    struct tmpl *t = tmpl_load_for_model(dir, err, sizeof(err), &fb);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_int_eq(fb, 0);
    const char *names[4];
    ck_assert_uint_eq(tmpl_variant_names(t, names, 4), 3);
    ck_assert_str_eq(names[0], "default");
    ck_assert_ptr_nonnull(tmpl_variant(t, "tool_use"));
    ck_assert_ptr_nonnull(tmpl_variant(t, "rag"));
    ck_assert_ptr_null(tmpl_variant(t, "nope"));
    ck_assert_ptr_eq(tmpl_variant(t, "default"), t);
    char *out = render_str(t, "{\"messages\":[1,2]}");
    ck_assert_str_eq(out, "PLAIN2");
    free(out);
    out = render_str(t, "{\"messages\":[1,2], \"tools\": null}");
    ck_assert_str_eq(out, "PLAIN2"); /* tools: null is "no tools" */
    free(out);
    out = render_str(t, "{\"messages\":[1], \"tools\": [1,2,3]}");
    ck_assert_str_eq(out, "TOOLS3"); /* tools given: tool_use variant */
    free(out);
    char *o2 = NULL;
    cJSON *ctx = cJSON_Parse("{\"documents\":[1]}");
    ck_assert_int_eq(tmpl_render(tmpl_variant(t, "rag"), ctx, &o2, err, sizeof(err)), TMPL_OK);
    ck_assert_str_eq(o2, "RAG1");
    free(o2);
    cJSON_Delete(ctx);
    tmpl_destroy(t);
    /* a broken variant names itself */
    write_file(dir, "tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"default\", \"template\": \"ok\"}, {\"name\": \"tool_use\", \"template\": \"{% if %}\"}]}");
    t = tmpl_load_for_model(dir, err, sizeof(err), &fb);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, "tool_use") && strstr(err, "line 1"), "got: %s", err);
    write_file(dir, "tokenizer_config.json", "{\"chat_template\": 5}");
    ck_assert_ptr_null(tmpl_load_for_model(dir, err, sizeof(err), &fb));
    write_file(dir, "tokenizer_config.json", "{not json");
    ck_assert_ptr_null(tmpl_load_for_model(dir, err, sizeof(err), &fb));
    rm_model(dir);
}
END_TEST

/* ---- threads ---------------------------------------------------------------------- */

struct thr {
    const struct tmpl *t;
    const char *ctx;
    const char *want;
    int bad;
};

static void *thr_main(void *arg)
{
    struct thr *th = arg;
    cJSON *ctx = cJSON_Parse(th->ctx);
    for (int i = 0; i < 300; i++) {
        char err[256], *out = NULL;
        if (tmpl_render(th->t, ctx, &out, err, sizeof(err)) != TMPL_OK || strcmp(out, th->want)) th->bad++;
        free(out);
    }
    cJSON_Delete(ctx);
    return NULL;
}

START_TEST(test_concurrent_render)
{
    char *src = slurp(FIXDIR "/olmo3-instruct.jinja");
    ck_assert_ptr_nonnull(src);
    char err[512];
    struct tmpl *t = tmpl_create(src, err, sizeof(err));
    ck_assert_msg(t != NULL, "%s", err);
    /* different contexts per thread, each checked against a single-threaded render */
    static const char *ctxs[4] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":null,\"add_generation_prompt\":true}",
        "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"b\"}],\"tools\":[{\"name\":\"f\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1,\"y\":[2]}}}]}],\"tools\":null,\"eos_token\":\"E\"}",
        "{\"messages\":[{\"role\":\"tool\",\"content\":\"d\"}],\"tools\":[]}",
    };
    char *want[4];
    for (int i = 0; i < 4; i++) want[i] = render_str(t, ctxs[i]);
    pthread_t th[8];
    struct thr a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (struct thr){t, ctxs[i % 4], want[i % 4], 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, thr_main, &a[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(a[i].bad, 0);
    }
    for (int i = 0; i < 4; i++) free(want[i]);
    tmpl_destroy(t);
    free(src);
}
END_TEST

START_TEST(test_strftime_now)
{
    char err[256];
    struct tmpl *t = tmpl_create("{{ strftime_now('%Y-%m-%d|%B|%b|%%|%Q') }}", err, sizeof(err));
    ck_assert_ptr_nonnull(t);
    char *out = NULL;
    time_t before = time(NULL);
    ck_assert_int_eq(tmpl_render(t, NULL, &out, err, sizeof(err)), TMPL_OK);
    time_t after = time(NULL);
    char w1[64], w2[64];
    struct tm tm;
    localtime_r(&before, &tm);
    strftime(w1, sizeof(w1), "%Y-%m-%d|%B|%b|%%|%%Q", &tm);
    localtime_r(&after, &tm);
    strftime(w2, sizeof(w2), "%Y-%m-%d|%B|%b|%%|%%Q", &tm);
    ck_assert_msg(!strcmp(out, w1) || !strcmp(out, w2), "got %s want %s", out, w1);
    free(out);
    tmpl_destroy(t);
}
END_TEST

Suite *chat_template_suite(void)
{
    Suite *s = suite_create("chat_template");
    TCase *ref = tcase_create("reference");
    tcase_add_loop_test(ref, test_reference_cases, 0, (n_cases() + CHUNK - 1) / CHUNK);
    suite_add_tcase(s, ref);
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parse_errors_name_line);
    tcase_add_test(tc, test_render_error_names_line);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_huge_indices);
    tcase_add_test(tc, test_fallback_chatml);
    tcase_add_test(tc, test_tokenizer_config_string);
    tcase_add_test(tc, test_tokenizer_config_list);
    tcase_add_test(tc, test_concurrent_render);
    tcase_add_test(tc, test_strftime_now);
    suite_add_tcase(s, tc);
    return s;
}
