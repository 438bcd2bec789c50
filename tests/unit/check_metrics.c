/* tests/unit/check_metrics.c: server/metrics.c against a small strict parser
 * of the Prometheus text exposition format 0.0.4.
 *
 * The parser (prom_parse) rejects anything a Prometheus scrape would reject
 * or that our contract forbids: malformed names, label syntax or values,
 * samples without a preceding # TYPE, duplicate HELP/TYPE, histograms whose
 * buckets are not ascending / cumulative / closed by +Inf, or whose _count
 * differs from the +Inf bucket, and samples without a model_name label. The
 * "parser rejects" test feeds it broken expositions so the checker itself is
 * known to fail when it should. Runs in the test's forked child.
 */
#include <check.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched.h"
#include "server/metrics.h"
#include "tests/unit/util_fake_engine.h"
#include "tests/unit/util_sched.h"

/* --- strict exposition parser ------------------------------------------------ */

#define P_MAX_SAMPLES 512
#define P_MAX_FAMS 64
#define P_MAX_LABELS 8
#define P_NAME 128
#define P_VAL 256

struct p_label {
    char name[P_NAME];
    char value[P_VAL]; /* unescaped */
};

struct p_sample {
    char name[P_NAME];
    int nlabels;
    struct p_label labels[P_MAX_LABELS];
    double value;
    int fam; /* index into families */
};

struct p_family {
    char name[P_NAME];
    char type[16];
    int has_help, has_type;
};

struct prom {
    int nsamples, nfams;
    struct p_sample s[P_MAX_SAMPLES];
    struct p_family f[P_MAX_FAMS];
    char err[256];
};

static int perr(struct prom *p, int line, const char *msg)
{
    snprintf(p->err, sizeof(p->err), "line %d: %s", line, msg);
    return -1;
}

static int is_name_start(int c, int colon) { return isalpha(c) || c == '_' || (colon && c == ':'); }
static int is_name_char(int c, int colon) { return isalnum(c) || c == '_' || (colon && c == ':'); }

/* Read a metric (colon=1) or label (colon=0) name at *s into out. */
static int read_name(const char **s, char *out, int colon)
{
    const char *q = *s;
    if (!is_name_start((unsigned char)*q, colon)) return -1;
    size_t n = 0;
    while (is_name_char((unsigned char)*q, colon)) {
        if (n + 1 >= P_NAME) return -1;
        out[n++] = *q++;
    }
    out[n] = '\0';
    *s = q;
    return 0;
}

/* A Prometheus float: decimal/exponent, or +Inf/-Inf/NaN. Whole token. */
static int read_value(const char *tok, double *v)
{
    if (!strcmp(tok, "+Inf")) { *v = INFINITY; return 0; }
    if (!strcmp(tok, "-Inf")) { *v = -INFINITY; return 0; }
    if (!strcmp(tok, "NaN")) { *v = NAN; return 0; }
    if (!*tok) return -1;
    for (const char *c = tok; *c; c++)
        if (!isdigit((unsigned char)*c) && !strchr("+-.eE", *c)) return -1;
    char *end;
    *v = strtod(tok, &end);
    return *end ? -1 : 0;
}

static int find_family(struct prom *p, const char *name)
{
    for (int i = 0; i < p->nfams; i++)
        if (!strcmp(p->f[i].name, name)) return i;
    return -1;
}

static const char *label_get(const struct p_sample *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (!strcmp(s->labels[i].name, name)) return s->labels[i].value;
    return NULL;
}

/* Which family does a sample name belong to? Exact match, or for histograms
 * the name minus _bucket/_sum/_count. */
static int family_of(struct prom *p, const char *name)
{
    int f = find_family(p, name);
    if (f >= 0) return f;
    static const char *const suf[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), m = strlen(suf[i]);
        if (n > m && !strcmp(name + n - m, suf[i])) {
            char base[P_NAME];
            memcpy(base, name, n - m);
            base[n - m] = '\0';
            f = find_family(p, base);
            if (f >= 0 && !strcmp(p->f[f].type, "histogram")) return f;
        }
    }
    return -1;
}

static int parse_comment(struct prom *p, int ln, const char *s)
{
    /* "# HELP name text" | "# TYPE name type"; other comments are allowed. */
    int help = !strncmp(s, "# HELP ", 7), type = !strncmp(s, "# TYPE ", 7);
    if (!help && !type) return 0;
    s += 7;
    char name[P_NAME];
    if (read_name(&s, name, 1) < 0) return perr(p, ln, "bad metric name in HELP/TYPE");
    if (*s != ' ') return perr(p, ln, "HELP/TYPE: expected space after name");
    s++;
    int f = find_family(p, name);
    if (f < 0) {
        if (p->nfams == P_MAX_FAMS) return perr(p, ln, "too many families");
        f = p->nfams++;
        memset(&p->f[f], 0, sizeof(p->f[f]));
        snprintf(p->f[f].name, P_NAME, "%s", name);
    }
    for (int i = 0; i < p->nsamples; i++)
        if (p->s[i].fam == f) return perr(p, ln, "HELP/TYPE after the family's samples");
    if (help) {
        if (p->f[f].has_help++) return perr(p, ln, "duplicate HELP");
        if (!*s) return perr(p, ln, "empty HELP text");
        for (; *s; s++) /* only \\ and \n escapes are legal in HELP */
            if (*s == '\\' && s[1] != '\\' && s[1] != 'n') return perr(p, ln, "bad HELP escape");
            else if (*s == '\\') s++;
    } else {
        if (p->f[f].has_type++) return perr(p, ln, "duplicate TYPE");
        if (strcmp(s, "counter") && strcmp(s, "gauge") && strcmp(s, "histogram") &&
            strcmp(s, "summary") && strcmp(s, "untyped"))
            return perr(p, ln, "unknown TYPE");
        snprintf(p->f[f].type, sizeof(p->f[f].type), "%s", s);
    }
    return 0;
}

static int parse_sample(struct prom *p, int ln, const char *s)
{
    if (p->nsamples == P_MAX_SAMPLES) return perr(p, ln, "too many samples");
    struct p_sample *x = &p->s[p->nsamples];
    memset(x, 0, sizeof(*x));
    if (read_name(&s, x->name, 1) < 0) return perr(p, ln, "bad metric name");
    if (*s == '{') {
        s++;
        while (*s != '}') {
            if (x->nlabels == P_MAX_LABELS) return perr(p, ln, "too many labels");
            struct p_label *l = &x->labels[x->nlabels];
            if (read_name(&s, l->name, 0) < 0) return perr(p, ln, "bad label name");
            if (!strncmp(l->name, "__", 2)) return perr(p, ln, "reserved label name");
            for (int i = 0; i < x->nlabels; i++)
                if (!strcmp(x->labels[i].name, l->name)) return perr(p, ln, "duplicate label");
            if (*s++ != '=') return perr(p, ln, "expected = after label name");
            if (*s++ != '"') return perr(p, ln, "label value must be quoted");
            size_t n = 0;
            for (;;) {
                char c = *s++;
                if (!c) return perr(p, ln, "unterminated label value");
                if (c == '"') break;
                if (c == '\\') {
                    char e = *s++;
                    c = e == 'n' ? '\n' : e == '\\' ? '\\' : e == '"' ? '"' : 0;
                    if (!c) return perr(p, ln, "bad escape in label value");
                }
                if (n + 1 >= P_VAL) return perr(p, ln, "label value too long");
                l->value[n++] = c;
            }
            l->value[n] = '\0';
            x->nlabels++;
            if (*s == ',') s++;
            else if (*s != '}') return perr(p, ln, "expected , or } in labels");
        }
        s++;
    }
    if (*s++ != ' ') return perr(p, ln, "expected one space before value");
    char tok[64];
    size_t n = 0;
    while (*s && *s != ' ') {
        if (n + 1 >= sizeof(tok)) return perr(p, ln, "value too long");
        tok[n++] = *s++;
    }
    tok[n] = '\0';
    if (read_value(tok, &x->value) < 0) return perr(p, ln, "bad sample value");
    if (*s == ' ') { /* optional integer millisecond timestamp */
        s++;
        if (*s == '-') s++;
        if (!isdigit((unsigned char)*s)) return perr(p, ln, "bad timestamp");
        while (isdigit((unsigned char)*s)) s++;
    }
    if (*s) return perr(p, ln, "trailing characters");
    x->fam = family_of(p, x->name);
    if (x->fam < 0 || !p->f[x->fam].has_type) return perr(p, ln, "sample without # TYPE");
    if (!p->f[x->fam].has_help) return perr(p, ln, "sample without # HELP");
    const char *type = p->f[x->fam].type;
    if (!label_get(x, "model_name")) return perr(p, ln, "sample without model_name label");
    if (!strcmp(type, "counter") && (x->value < 0 || isnan(x->value)))
        return perr(p, ln, "negative counter");
    if (!strcmp(type, "histogram")) {
        int is_bucket = strlen(x->name) > 7 && !strcmp(x->name + strlen(x->name) - 7, "_bucket");
        if (is_bucket != (label_get(x, "le") != NULL)) return perr(p, ln, "le label misuse");
        if (strcmp(x->name, p->f[x->fam].name) == 0) return perr(p, ln, "bare histogram sample");
    }
    p->nsamples++;
    return 0;
}

/* Same label set ignoring le? (groups one histogram series) */
static int same_series(const struct p_sample *a, const struct p_sample *b)
{
    int na = 0, nb = 0;
    for (int i = 0; i < a->nlabels; i++) {
        if (!strcmp(a->labels[i].name, "le")) continue;
        na++;
        const char *v = label_get(b, a->labels[i].name);
        if (!v || strcmp(v, a->labels[i].value)) return 0;
    }
    for (int i = 0; i < b->nlabels; i++) nb += strcmp(b->labels[i].name, "le") != 0;
    return na == nb;
}

/* Histogram invariants, per series. */
static int check_histograms(struct prom *p)
{
    for (int f = 0; f < p->nfams; f++) {
        if (strcmp(p->f[f].type, "histogram")) continue;
        char bname[P_NAME + 8], cname[P_NAME + 8], sname[P_NAME + 8];
        snprintf(bname, sizeof(bname), "%s_bucket", p->f[f].name);
        snprintf(cname, sizeof(cname), "%s_count", p->f[f].name);
        snprintf(sname, sizeof(sname), "%s_sum", p->f[f].name);
        int any = 0;
        for (int i = 0; i < p->nsamples; i++) {
            if (strcmp(p->s[i].name, cname)) continue;
            any = 1;
            const struct p_sample *cnt = &p->s[i], *sum = NULL;
            double prev_le = -INFINITY, prev_v = 0;
            int nb = 0, saw_inf = 0;
            for (int j = 0; j < p->nsamples; j++) {
                const struct p_sample *b = &p->s[j];
                if (!strcmp(b->name, sname) && same_series(b, cnt)) sum = b;
                if (strcmp(b->name, bname) || !same_series(b, cnt)) continue;
                double le;
                if (read_value(label_get(b, "le"), &le) < 0 || isnan(le)) {
                    snprintf(p->err, sizeof(p->err), "%s: bad le", bname);
                    return -1;
                }
                if (saw_inf || le <= prev_le || b->value < prev_v || b->value != floor(b->value)) {
                    snprintf(p->err, sizeof(p->err), "%s: buckets not ascending/cumulative", bname);
                    return -1;
                }
                saw_inf = isinf(le) && le > 0;
                prev_le = le;
                prev_v = b->value;
                nb++;
            }
            if (!nb || !saw_inf || !sum) {
                snprintf(p->err, sizeof(p->err), "%s: missing +Inf bucket or _sum", p->f[f].name);
                return -1;
            }
            if (prev_v != cnt->value) {
                snprintf(p->err, sizeof(p->err), "%s: _count != +Inf bucket", p->f[f].name);
                return -1;
            }
        }
        if (!any) {
            snprintf(p->err, sizeof(p->err), "%s: histogram without _count", p->f[f].name);
            return -1;
        }
    }
    return 0;
}

/* Parse text into *p (zeroed here). 0 = valid, -1 = invalid (p->err says why). */
static int prom_parse(struct prom *p, const char *text)
{
    memset(p, 0, sizeof(*p));
    size_t tl = strlen(text);
    if (tl == 0 || text[tl - 1] != '\n') return perr(p, 0, "exposition must end with a newline");
    char *copy = strdup(text);
    ck_assert_ptr_nonnull(copy);
    int ln = 0, rc = 0;
    char *save = NULL;
    /* strtok_r would merge empty lines; walk by hand so they are caught. */
    for (char *line = copy; *line; ln++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        (void)save;
        if (!*line) rc = perr(p, ln + 1, "empty line");
        else if (strchr(line, '\r')) rc = perr(p, ln + 1, "carriage return");
        else if (line[0] == '#') rc = parse_comment(p, ln + 1, line);
        else rc = parse_sample(p, ln + 1, line);
        if (rc) break;
        line = nl + 1;
    }
    free(copy);
    if (rc == 0) rc = check_histograms(p);
    return rc;
}

/* Value of the sample name{k1="v1"[,k2="v2"]} (model_name ignored); NAN if absent. */
static double pval(const struct prom *p, const char *name, const char *k, const char *v)
{
    for (int i = 0; i < p->nsamples; i++) {
        if (strcmp(p->s[i].name, name)) continue;
        if (k) {
            const char *got = label_get(&p->s[i], k);
            if (!got || strcmp(got, v)) continue;
        }
        return p->s[i].value;
    }
    return NAN;
}

static const char *ptype(const struct prom *p, const char *fam)
{
    for (int i = 0; i < p->nfams; i++)
        if (!strcmp(p->f[i].name, fam)) return p->f[i].type;
    return "";
}

/* Render and parse; fails the test on invalid output. Caller-provided prom. */
static void render_parse(struct prom *p)
{
    size_t len = 0;
    char *t = metrics_render(&len);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(len, strlen(t));
    int rc = prom_parse(p, t);
    if (rc) fprintf(stderr, "exposition rejected: %s\n%s", p->err, t);
    ck_assert_int_eq(rc, 0);
    free(t);
}

static struct prom P; /* big: keep it off the stack */

/* --- tests ----------------------------------------------------------------- */

START_TEST(test_before_init_noop)
{
    ck_assert_ptr_null(metrics_render(NULL));
    metrics_observe_ttft(1.0); /* must not crash */
    metrics_add_prompt_tokens(5);
    metrics_inc_request_success(METRICS_FINISH_STOP);
    ck_assert_int_eq(metrics_init(NULL), -1);
    ck_assert_int_eq(metrics_init(""), -1);
    ck_assert_ptr_null(metrics_render(NULL));
}
END_TEST

START_TEST(test_families_and_types)
{
    ck_assert_int_eq(metrics_init("olmo-hybrid-tiny"), 0);
    render_parse(&P);
    static const char *const gauges[] = {"num_requests_running", "num_requests_waiting",
                                         "kv_cache_usage_perc", "gdn_state_slots_used"};
    static const char *const counters[] = {"prompt_tokens_total", "generation_tokens_total",
                                           "request_success_total", "num_preemptions_total"};
    static const char *const hists[] = {"time_to_first_token_seconds",
                                        "inter_token_latency_seconds",
                                        "e2e_request_latency_seconds", "request_queue_time_seconds"};
    char n[128];
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof(n), "deltaserve:%s", gauges[i]);
        ck_assert_str_eq(ptype(&P, n), "gauge");
        ck_assert(pval(&P, n, "model_name", "olmo-hybrid-tiny") == 0);
        snprintf(n, sizeof(n), "deltaserve:%s", counters[i]);
        ck_assert_str_eq(ptype(&P, n), "counter");
        snprintf(n, sizeof(n), "deltaserve:%s", hists[i]);
        ck_assert_str_eq(ptype(&P, n), "histogram");
        snprintf(n, sizeof(n), "deltaserve:%s_count", hists[i]);
        ck_assert(pval(&P, n, NULL, NULL) == 0);
    }
    ck_assert_int_eq(P.nfams, 12);
    /* All three finish reasons are present from the start (rate() needs a 0). */
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "stop") == 0);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "length") == 0);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "abort") == 0);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "error") == 0);
    /* vLLM's boundaries: 22 TTFT buckets + Inf, 19 ITL + Inf, 21 latency + Inf. */
    int nb[4] = {0};
    for (int i = 0; i < P.nsamples; i++)
        for (int h = 0; h < 4; h++) {
            snprintf(n, sizeof(n), "deltaserve:%s_bucket", hists[h]);
            nb[h] += !strcmp(P.s[i].name, n);
        }
    ck_assert_int_eq(nb[0], 23);
    ck_assert_int_eq(nb[1], 20);
    ck_assert_int_eq(nb[2], 22);
    ck_assert_int_eq(nb[3], 22);
    ck_assert(pval(&P, "deltaserve:time_to_first_token_seconds_bucket", "le", "2560") == 0);
    ck_assert(pval(&P, "deltaserve:request_queue_time_seconds_bucket", "le", "7680") == 0);
    metrics_fini();
    ck_assert_ptr_null(metrics_render(NULL));
}
END_TEST

START_TEST(test_histogram_values)
{
    ck_assert_int_eq(metrics_init("m"), 0);
    metrics_observe_ttft(0.001);  /* exactly on a bound: le is inclusive */
    metrics_observe_ttft(0.05);   /* (0.04, 0.06] */
    metrics_observe_ttft(3000.0); /* beyond 2560: only +Inf */
    metrics_observe_ttft(-1.0);   /* ignored */
    metrics_observe_ttft(NAN);    /* ignored */
    metrics_observe_ttft(INFINITY);
    metrics_observe_itl(0.02);
    metrics_observe_e2e(1.25);
    metrics_observe_queue_time(0.0);
    render_parse(&P);
    const char *b = "deltaserve:time_to_first_token_seconds_bucket";
    ck_assert(pval(&P, b, "le", "0.001") == 1);
    ck_assert(pval(&P, b, "le", "0.04") == 1);
    ck_assert(pval(&P, b, "le", "0.06") == 2);
    ck_assert(pval(&P, b, "le", "2560") == 2);
    ck_assert(pval(&P, b, "le", "+Inf") == 3);
    ck_assert(pval(&P, "deltaserve:time_to_first_token_seconds_count", NULL, NULL) == 3);
    ck_assert_double_eq_tol(pval(&P, "deltaserve:time_to_first_token_seconds_sum", NULL, NULL),
                            3000.051, 1e-9);
    ck_assert(pval(&P, "deltaserve:inter_token_latency_seconds_bucket", "le", "0.01") == 0);
    ck_assert(pval(&P, "deltaserve:inter_token_latency_seconds_bucket", "le", "0.025") == 1);
    ck_assert(pval(&P, "deltaserve:e2e_request_latency_seconds_bucket", "le", "1") == 0);
    ck_assert(pval(&P, "deltaserve:e2e_request_latency_seconds_bucket", "le", "1.5") == 1);
    ck_assert(pval(&P, "deltaserve:e2e_request_latency_seconds_sum", NULL, NULL) == 1.25);
    ck_assert(pval(&P, "deltaserve:request_queue_time_seconds_bucket", "le", "0.3") == 1);
    /* re-init resets every value */
    ck_assert_int_eq(metrics_init("m"), 0);
    render_parse(&P);
    ck_assert(pval(&P, "deltaserve:time_to_first_token_seconds_count", NULL, NULL) == 0);
    metrics_fini();
}
END_TEST

START_TEST(test_counters)
{
    ck_assert_int_eq(metrics_init("m"), 0);
    metrics_add_prompt_tokens(10);
    metrics_add_prompt_tokens(7);
    metrics_add_prompt_tokens(-3); /* ignored: counters never go down */
    metrics_add_generation_tokens(5);
    metrics_inc_request_success(METRICS_FINISH_STOP);
    metrics_inc_request_success(METRICS_FINISH_STOP);
    metrics_inc_request_success(METRICS_FINISH_LENGTH);
    metrics_inc_request_success(METRICS_FINISH_COUNT); /* ignored */
    metrics_inc_request_success((enum metrics_finish) - 1);
    metrics_inc_preemptions(3);
    render_parse(&P);
    ck_assert(pval(&P, "deltaserve:prompt_tokens_total", NULL, NULL) == 17);
    ck_assert(pval(&P, "deltaserve:generation_tokens_total", NULL, NULL) == 5);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "stop") == 2);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "length") == 1);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "abort") == 0);
    ck_assert(pval(&P, "deltaserve:num_preemptions_total", NULL, NULL) == 3);
    ck_assert_int_eq(metrics_finish_reason_parse("stop"), METRICS_FINISH_STOP);
    ck_assert_int_eq(metrics_finish_reason_parse("length"), METRICS_FINISH_LENGTH);
    ck_assert_int_eq(metrics_finish_reason_parse("abort"), METRICS_FINISH_ABORT);
    ck_assert_int_eq(metrics_finish_reason_parse("error"), METRICS_FINISH_ERROR);
    ck_assert_int_eq(metrics_finish_reason_parse("eos"), -1);
    ck_assert_int_eq(metrics_finish_reason_parse(NULL), -1);
    metrics_fini();
}
END_TEST

struct fake_stats {
    int calls;
    int fail;
    struct metrics_gauges g;
};

static int pull_gauges(void *user, struct metrics_gauges *out)
{
    struct fake_stats *st = user;
    st->calls++;
    if (st->fail) return -1;
    *out = st->g;
    return 0;
}

START_TEST(test_gauges_push_and_pull)
{
    ck_assert_int_eq(metrics_init("m"), 0);
    struct metrics_gauges g = {.num_requests_running = 3, .num_requests_waiting = 9,
                               .kv_cache_usage_perc = 0.25, .gdn_state_slots_used = 4};
    metrics_set_gauges(&g);
    render_parse(&P);
    ck_assert(pval(&P, "deltaserve:num_requests_running", NULL, NULL) == 3);
    ck_assert(pval(&P, "deltaserve:num_requests_waiting", NULL, NULL) == 9);
    ck_assert(pval(&P, "deltaserve:kv_cache_usage_perc", NULL, NULL) == 0.25);
    ck_assert(pval(&P, "deltaserve:gdn_state_slots_used", NULL, NULL) == 4);

    struct fake_stats st = {.g = {.num_requests_running = 1, .num_requests_waiting = 2,
                                  .kv_cache_usage_perc = 0.5, .gdn_state_slots_used = 1}};
    metrics_set_gauge_source(pull_gauges, &st);
    render_parse(&P);
    ck_assert_int_eq(st.calls, 1);
    ck_assert(pval(&P, "deltaserve:num_requests_waiting", NULL, NULL) == 2);
    ck_assert(pval(&P, "deltaserve:kv_cache_usage_perc", NULL, NULL) == 0.5);
    /* A failing source keeps the last good snapshot. */
    st.fail = 1;
    st.g.num_requests_waiting = 100;
    render_parse(&P);
    ck_assert_int_eq(st.calls, 2);
    ck_assert(pval(&P, "deltaserve:num_requests_waiting", NULL, NULL) == 2);
    /* Pulled totals replace pushed counters while the source is set. */
    metrics_add_prompt_tokens(5);
    st.fail = 0;
    st.g.has_totals = 1;
    st.g.prompt_tokens_total = 1000;
    st.g.generation_tokens_total = 77;
    st.g.preemptions_total = 2;
    st.g.success_total[METRICS_FINISH_ERROR] = 4;
    render_parse(&P);
    ck_assert(pval(&P, "deltaserve:prompt_tokens_total", NULL, NULL) == 1000);
    ck_assert(pval(&P, "deltaserve:generation_tokens_total", NULL, NULL) == 77);
    ck_assert(pval(&P, "deltaserve:num_preemptions_total", NULL, NULL) == 2);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "error") == 4);
    ck_assert(pval(&P, "deltaserve:num_requests_waiting", NULL, NULL) == 100);
    /* Removing the source falls back to pushed values (counters too). */
    metrics_set_gauge_source(NULL, NULL);
    g.num_requests_waiting = 11;
    metrics_set_gauges(&g);
    render_parse(&P);
    ck_assert_int_eq(st.calls, 3);
    ck_assert(pval(&P, "deltaserve:num_requests_waiting", NULL, NULL) == 11);
    ck_assert(pval(&P, "deltaserve:prompt_tokens_total", NULL, NULL) == 5);
    metrics_fini();
}
END_TEST

/* The scheduler's snapshot drives gauges and totals (metrics_attach_sched's
 * mapping), through a real pull source. */
static int pull_sched_stats(void *user, struct metrics_gauges *out)
{
    metrics_from_sched_stats(user, out);
    return 0;
}

START_TEST(test_sched_stats_mapping)
{
    ck_assert_int_eq(metrics_init("m"), 0);
    struct sched_stats st;
    memset(&st, 0, sizeof(st));
    st.num_running = 7;
    st.num_waiting = 3;
    st.kv_blocks_used = 30;
    st.kv_blocks_total = 120;
    st.kv_usage = 0.25;
    st.slots_used = 7;
    st.slots_total = 16;
    st.preemptions_total = 2;
    st.prompt_tokens_total = 1234;
    st.generation_tokens_total = 567;
    st.requests_finished[SCHED_FINISH_NONE] = 99; /* never a finished_reason */
    st.requests_finished[SCHED_FINISH_STOP] = 10;
    st.requests_finished[SCHED_FINISH_LENGTH] = 4;
    st.requests_finished[SCHED_FINISH_ABORT] = 2;
    st.requests_finished[SCHED_FINISH_ERROR] = 1;
    metrics_set_gauge_source(pull_sched_stats, &st);
    render_parse(&P);
    ck_assert(pval(&P, "deltaserve:num_requests_running", NULL, NULL) == 7);
    ck_assert(pval(&P, "deltaserve:num_requests_waiting", NULL, NULL) == 3);
    ck_assert(pval(&P, "deltaserve:kv_cache_usage_perc", NULL, NULL) == 0.25);
    ck_assert(pval(&P, "deltaserve:gdn_state_slots_used", NULL, NULL) == 7);
    ck_assert(pval(&P, "deltaserve:prompt_tokens_total", NULL, NULL) == 1234);
    ck_assert(pval(&P, "deltaserve:generation_tokens_total", NULL, NULL) == 567);
    ck_assert(pval(&P, "deltaserve:num_preemptions_total", NULL, NULL) == 2);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "stop") == 10);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "length") == 4);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "abort") == 2);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "error") == 1);
    /* the next scrape sees the scheduler's new values */
    st.generation_tokens_total = 600;
    render_parse(&P);
    ck_assert(pval(&P, "deltaserve:generation_tokens_total", NULL, NULL) == 600);
    metrics_fini();
}
END_TEST

/* Speculative decoding counters (vLLM's spec_decode_* names) from a real
 * speculative scheduler run on the fake engine: present only when
 * speculation is configured, one per_pos sample per position, and
 * consistent: accepted <= draft tokens <= k * drafts, the per-position
 * counts sum to accepted and never grow with the position. */
START_TEST(test_spec_decode_metrics)
{
    ck_assert_int_eq(metrics_init("m"), 0);
    struct sched_stats st;
    memset(&st, 0, sizeof(st));
    metrics_set_gauge_source(pull_sched_stats, &st);
    render_parse(&P);
    ck_assert_int_eq(P.nfams, 12); /* speculation off: no spec_decode families */
    ck_assert(isnan(pval(&P, "deltaserve:spec_decode_num_drafts_total", NULL, NULL)));

    enum { K = 4, PL = 12, MT = 160 };
    int eos = 63;
    struct engine *e = fake_engine_create(64, &eos, 1, 512, 64, 16, 16);
    ck_assert_ptr_nonnull(e);
    fake_engine_set_markov_from(e, PL + 40); /* repeats after 40 tokens: drafts get accepted */
    struct sched_config c;
    sched_config_init(&c);
    c.eng = e;
    c.max_num_seqs = 2;
    c.max_num_batched_tokens = 64;
    c.max_model_len = 512;
    c.default_seed = 1;
    c.log_requests = false;
    c.num_speculative_tokens = K;
    c.ngram_min = 1;
    c.ngram_max = 2;
    char err[256];
    struct sched *s = sched_create(&c, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    struct sched_request *rq[2];
    struct ts_out o[2];
    int32_t prompt[2][PL];
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < PL; i++) prompt[r][i] = (int32_t)((i * 37 + r * 11 + 5) % 63);
        struct sched_params p;
        ts_params(&p, prompt[r], PL, MT);
        p.ignore_eos = true;
        rq[r] = sched_request_create(&p);
        ck_assert_msg(sched_submit(s, rq[r], err, sizeof err) == 0, "%s", err);
        memset(&o[r], 0, sizeof o[r]);
    }
    ts_run_sync(s, e, rq, o, 2, 10000);
    sched_get_stats(s, &st);
    render_parse(&P);
    ck_assert_int_eq(P.nfams, 16);
    static const char *const fams[] = {"spec_decode_num_drafts_total", "spec_decode_num_draft_tokens_total",
                                       "spec_decode_num_accepted_tokens_total",
                                       "spec_decode_num_accepted_tokens_per_pos_total"};
    char n[128];
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof(n), "deltaserve:%s", fams[i]);
        ck_assert_str_eq(ptype(&P, n), "counter");
    }
    double drafts = pval(&P, "deltaserve:spec_decode_num_drafts_total", NULL, NULL);
    double dtok = pval(&P, "deltaserve:spec_decode_num_draft_tokens_total", NULL, NULL);
    double acc = pval(&P, "deltaserve:spec_decode_num_accepted_tokens_total", NULL, NULL);
    ck_assert(drafts == (double)st.spec_drafts_total && dtok == (double)st.spec_draft_tokens_total &&
              acc == (double)st.spec_accepted_tokens_total);
    ck_assert(drafts > 0 && acc > 0);
    ck_assert(acc <= dtok && dtok <= K * drafts && drafts <= dtok);
    double sum = 0, prev = INFINITY;
    int npos = 0;
    for (int i = 0; i < P.nsamples; i++)
        if (!strcmp(P.s[i].name, "deltaserve:spec_decode_num_accepted_tokens_per_pos_total")) npos++;
    ck_assert_int_eq(npos, K);
    for (int i = 0; i < K; i++) {
        char pos[16];
        snprintf(pos, sizeof pos, "%d", i);
        double v = pval(&P, "deltaserve:spec_decode_num_accepted_tokens_per_pos_total", "position", pos);
        ck_assert(!isnan(v));
        ck_assert(v <= prev); /* a draft is accepted only after every one before it */
        ck_assert(v <= drafts);
        prev = v;
        sum += v;
    }
    ck_assert(sum == acc);
    /* every generated token: one per verify row or decode, plus the accepted drafts */
    ck_assert(pval(&P, "deltaserve:generation_tokens_total", NULL, NULL) == 2.0 * MT);
    fprintf(stderr, "spec metrics: %.0f drafts, %.0f draft tokens, %.0f accepted, position 0: %.0f\n", drafts,
            dtok, acc, pval(&P, "deltaserve:spec_decode_num_accepted_tokens_per_pos_total", "position", "0"));
    metrics_set_gauge_source(NULL, NULL);
    for (int r = 0; r < 2; r++) {
        ts_out_fini(&o[r]);
        sched_request_release(rq[r]);
    }
    sched_destroy(s);
    fake_engine_destroy(e);
    metrics_fini();
}
END_TEST

START_TEST(test_label_escaping)
{
    const char *name = "my \"model\"\\v1\nx";
    ck_assert_int_eq(metrics_init(name), 0);
    render_parse(&P);
    for (int i = 0; i < P.nsamples; i++) ck_assert_str_eq(label_get(&P.s[i], "model_name"), name);
    metrics_fini();
}
END_TEST

START_TEST(test_parser_rejects)
{
    /* Each of these must be rejected; a checker that accepts them is useless. */
    static const char *const bad[] = {
        /* sample without TYPE */
        "x{model_name=\"m\"} 1\n",
        /* no HELP */
        "# TYPE x gauge\nx{model_name=\"m\"} 1\n",
        /* missing model_name */
        "# HELP x h\n# TYPE x gauge\nx 1\n",
        /* unquoted label value */
        "# HELP x h\n# TYPE x gauge\nx{model_name=m} 1\n",
        /* bad escape */
        "# HELP x h\n# TYPE x gauge\nx{model_name=\"a\\q\"} 1\n",
        /* bad value */
        "# HELP x h\n# TYPE x gauge\nx{model_name=\"m\"} one\n",
        /* trailing garbage */
        "# HELP x h\n# TYPE x gauge\nx{model_name=\"m\"} 1 2 3\n",
        /* bad metric name */
        "# HELP 1x h\n# TYPE 1x gauge\n1x{model_name=\"m\"} 1\n",
        /* unknown type */
        "# HELP x h\n# TYPE x meter\nx{model_name=\"m\"} 1\n",
        /* duplicate TYPE */
        "# HELP x h\n# TYPE x gauge\n# TYPE x gauge\nx{model_name=\"m\"} 1\n",
        /* negative counter */
        "# HELP c_total h\n# TYPE c_total counter\nc_total{model_name=\"m\"} -1\n",
        /* no final newline */
        "# HELP x h\n# TYPE x gauge\nx{model_name=\"m\"} 1",
        /* histogram: buckets not cumulative */
        "# HELP h h\n# TYPE h histogram\n"
        "h_bucket{le=\"1\",model_name=\"m\"} 2\nh_bucket{le=\"+Inf\",model_name=\"m\"} 1\n"
        "h_sum{model_name=\"m\"} 1\nh_count{model_name=\"m\"} 1\n",
        /* histogram: no +Inf */
        "# HELP h h\n# TYPE h histogram\n"
        "h_bucket{le=\"1\",model_name=\"m\"} 1\n"
        "h_sum{model_name=\"m\"} 1\nh_count{model_name=\"m\"} 1\n",
        /* histogram: count != +Inf bucket */
        "# HELP h h\n# TYPE h histogram\n"
        "h_bucket{le=\"1\",model_name=\"m\"} 1\nh_bucket{le=\"+Inf\",model_name=\"m\"} 1\n"
        "h_sum{model_name=\"m\"} 1\nh_count{model_name=\"m\"} 2\n",
        /* histogram: le not ascending */
        "# HELP h h\n# TYPE h histogram\n"
        "h_bucket{le=\"2\",model_name=\"m\"} 0\nh_bucket{le=\"1\",model_name=\"m\"} 0\n"
        "h_bucket{le=\"+Inf\",model_name=\"m\"} 0\n"
        "h_sum{model_name=\"m\"} 0\nh_count{model_name=\"m\"} 0\n",
        /* duplicate label */
        "# HELP x h\n# TYPE x gauge\nx{model_name=\"m\",model_name=\"n\"} 1\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = prom_parse(&P, bad[i]);
        if (rc == 0) fprintf(stderr, "parser accepted bad input #%zu\n", i);
        ck_assert_int_eq(rc, -1);
    }
    /* and a valid one passes */
    ck_assert_int_eq(prom_parse(&P, "# HELP h h\n# TYPE h histogram\n"
                                    "h_bucket{le=\"1\",model_name=\"m\"} 1\n"
                                    "h_bucket{le=\"+Inf\",model_name=\"m\"} 2\n"
                                    "h_sum{model_name=\"m\"} 3.5\nh_count{model_name=\"m\"} 2\n"),
                     0);
}
END_TEST

/* --- concurrency ------------------------------------------------------------ */

#define T_THREADS 8
#define T_ITERS 20000

static void *writer(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < T_ITERS; i++) {
        metrics_add_generation_tokens(1);
        metrics_add_prompt_tokens(2);
        metrics_observe_itl(0.001 * (double)(i % 100)); /* 0 .. 0.099 */
        if (i % 10 == 0) metrics_inc_request_success((enum metrics_finish)(id % 3));
        if (i % 100 == 0) {
            struct metrics_gauges g = {.num_requests_running = id};
            metrics_set_gauges(&g);
        }
    }
    return NULL;
}

static volatile int stop_reader;
static struct prom PR; /* the reader's own parse buffer */

static void *reader(void *arg)
{
    int *renders = arg;
    while (!stop_reader) {
        char *t = metrics_render(NULL);
        if (!t) return (void *)1;
        int rc = prom_parse(&PR, t);
        free(t);
        if (rc) return (void *)2; /* torn histogram or malformed output */
        (*renders)++;
    }
    return NULL;
}

START_TEST(test_concurrent_updates)
{
    ck_assert_int_eq(metrics_init("m"), 0);
    pthread_t w[T_THREADS], r;
    int renders = 0;
    stop_reader = 0;
    ck_assert_int_eq(pthread_create(&r, NULL, reader, &renders), 0);
    for (long i = 0; i < T_THREADS; i++)
        ck_assert_int_eq(pthread_create(&w[i], NULL, writer, (void *)i), 0);
    for (int i = 0; i < T_THREADS; i++) pthread_join(w[i], NULL);
    stop_reader = 1;
    void *rres;
    pthread_join(r, &rres);
    if (rres) fprintf(stderr, "reader: %s\n", PR.err);
    ck_assert_ptr_null(rres);
    ck_assert_int_gt(renders, 0);

    render_parse(&P);
    const double n = (double)T_THREADS * T_ITERS;
    ck_assert(pval(&P, "deltaserve:generation_tokens_total", NULL, NULL) == n);
    ck_assert(pval(&P, "deltaserve:prompt_tokens_total", NULL, NULL) == 2 * n);
    ck_assert(pval(&P, "deltaserve:inter_token_latency_seconds_count", NULL, NULL) == n);
    /* i%100 in 0..9 -> 0..0.009 s: le=0.01 holds 10 of every 100 */
    ck_assert(pval(&P, "deltaserve:inter_token_latency_seconds_bucket", "le", "0.01") ==
              n / 10 + n / 100); /* 0.010 itself is <= 0.01 */
    double want_sum = 0;
    for (int i = 0; i < 100; i++) want_sum += 0.001 * i;
    want_sum *= n / 100;
    ck_assert_double_eq_tol(pval(&P, "deltaserve:inter_token_latency_seconds_sum", NULL, NULL),
                            want_sum, 1e-6 * want_sum);
    /* ids 0..7 -> reasons 0,1,2,0,1,2,0,1: stop 3, length 3, abort 2 threads */
    double per = T_ITERS / 10;
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "stop") == 3 * per);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "length") == 3 * per);
    ck_assert(pval(&P, "deltaserve:request_success_total", "finished_reason", "abort") == 2 * per);
    metrics_fini();
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("exposition");
    tcase_add_test(tc, test_before_init_noop);
    tcase_add_test(tc, test_families_and_types);
    tcase_add_test(tc, test_histogram_values);
    tcase_add_test(tc, test_counters);
    tcase_add_test(tc, test_gauges_push_and_pull);
    tcase_add_test(tc, test_sched_stats_mapping);
    tcase_add_test(tc, test_spec_decode_metrics);
    tcase_add_test(tc, test_label_escaping);
    tcase_add_test(tc, test_parser_rejects);
    suite_add_tcase(s, tc);
    TCase *tcc = tcase_create("concurrency");
    tcase_set_timeout(tcc, 60);
    tcase_add_test(tcc, test_concurrent_updates);
    suite_add_tcase(s, tcc);
    return s;
}
