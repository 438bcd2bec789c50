/* server/metrics.c: the process-global Prometheus registry behind
 * server/metrics.h and its text exposition (format version 0.0.4).
 *
 * Threads: updates come from the scheduler thread (tokens, latencies, gauges)
 * and HTTP threads (aborts); rendering runs on an HTTP thread. Counters are
 * C11 atomics (a relaxed fetch_add per token costs nothing); each histogram
 * has its own mutex so that a rendered histogram is always self-consistent
 * (count == +Inf bucket, buckets cumulative), which lock-free per-bucket
 * atomics would not guarantee. Gauges sit under one small mutex.
 *
 * The registry pointer is published with an atomic so calls before
 * metrics_init (or after metrics_fini) are cheap no-ops; init/fini themselves
 * run on the main thread while no other thread uses the registry.
 */
#include "server/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched.h" /* struct sched_stats, enum sched_finish (types only) */

/* --- bucket boundaries (vLLM's, vllm/v1/metrics/loggers.py) --------------- */

static const double ttft_buckets[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                      0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0,
                                      20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double itl_buckets[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                     0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                     7.5,  10.0,  20.0, 40.0,  80.0};
static const double request_latency_buckets[] = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,   2.5,
                                                 5.0,  10.0,  15.0,  20.0,  30.0,  40.0,  50.0,
                                                 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define HIST_MAX_BUCKETS 32

/* One classic histogram. counts[i] is the NON-cumulative count of
 * observations in (le[i-1], le[i]]; counts[n] is the overflow (> le[n-1]).
 * Rendering accumulates, so observe touches one slot. */
struct metrics_hist {
    const char *name; /* borrowed, static */
    const char *help; /* borrowed, static */
    const double *le; /* (n) upper bounds, ascending, borrowed */
    size_t n;
    pthread_mutex_t mu;
    uint64_t counts[HIST_MAX_BUCKETS + 1]; /* guarded by mu */
    double sum;                            /* guarded by mu */
    uint64_t count;                        /* guarded by mu */
};

enum { H_TTFT, H_ITL, H_E2E, H_QUEUE, H_COUNT };

struct metrics_reg {
    char *label; /* owned: escaped model_name label value */
    _Atomic int64_t prompt_tokens;
    _Atomic int64_t generation_tokens;
    _Atomic int64_t preemptions;
    _Atomic int64_t success[METRICS_FINISH_COUNT];
    pthread_mutex_t gauge_mu;
    struct metrics_gauges gauges; /* guarded by gauge_mu: last pushed / pulled */
    metrics_gauge_fn source;      /* set on the main thread only */
    void *source_user;            /* borrowed */
    struct metrics_hist hist[H_COUNT];
};

static _Atomic(struct metrics_reg *) g_reg;

static const char *const finish_names[METRICS_FINISH_COUNT] = {"stop", "length", "abort",
                                                                 "error"};

/* --- setup ----------------------------------------------------------------- */

/* Escape a label value per the exposition format: backslash, double quote
 * and line feed. Returns malloc'd text or NULL. */
static char *escape_label(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1);
    if (!out) return NULL;
    char *p = out;
    for (; *s; s++) {
        if (*s == '\\') { *p++ = '\\'; *p++ = '\\'; }
        else if (*s == '"') { *p++ = '\\'; *p++ = '"'; }
        else if (*s == '\n') { *p++ = '\\'; *p++ = 'n'; }
        else *p++ = *s;
    }
    *p = '\0';
    return out;
}

static void hist_setup(struct metrics_hist *h, const char *name, const char *help,
                       const double *le, size_t n)
{
    h->name = name;
    h->help = help;
    h->le = le;
    h->n = n;
    pthread_mutex_init(&h->mu, NULL);
}

static void reg_free(struct metrics_reg *r)
{
    if (!r) return;
    for (int i = 0; i < H_COUNT; i++) pthread_mutex_destroy(&r->hist[i].mu);
    pthread_mutex_destroy(&r->gauge_mu);
    free(r->label);
    free(r);
}

int metrics_init(const char *model_name)
{
    if (!model_name || !*model_name) return -1;
    struct metrics_reg *r = calloc(1, sizeof(*r));
    if (!r) return -1;
    r->label = escape_label(model_name);
    if (!r->label) goto fail;
    pthread_mutex_init(&r->gauge_mu, NULL);
    hist_setup(&r->hist[H_TTFT], "time_to_first_token_seconds",
               "Histogram of time to first token in seconds.", ttft_buckets,
               NELEM(ttft_buckets));
    hist_setup(&r->hist[H_ITL], "inter_token_latency_seconds",
               "Histogram of inter-token latency in seconds.", itl_buckets, NELEM(itl_buckets));
    hist_setup(&r->hist[H_E2E], "e2e_request_latency_seconds",
               "Histogram of e2e request latency in seconds.", request_latency_buckets,
               NELEM(request_latency_buckets));
    hist_setup(&r->hist[H_QUEUE], "request_queue_time_seconds",
               "Histogram of time spent in WAITING phase for request.", request_latency_buckets,
               NELEM(request_latency_buckets));
    /* Re-init replaces the registry: only legal while no other thread uses it. */
    reg_free(atomic_exchange(&g_reg, r));
    return 0;
fail:
    free(r->label);
    free(r);
    return -1;
}

void metrics_fini(void)
{
    reg_free(atomic_exchange(&g_reg, NULL));
}

void metrics_set_gauge_source(metrics_gauge_fn fn, void *user)
{
    struct metrics_reg *r = atomic_load(&g_reg);
    if (!r) return;
    pthread_mutex_lock(&r->gauge_mu);
    r->source = fn;
    r->source_user = user;
    r->gauges.has_totals = 0; /* pulled totals die with their source */
    pthread_mutex_unlock(&r->gauge_mu);
}

void metrics_set_gauges(const struct metrics_gauges *g)
{
    struct metrics_reg *r = atomic_load(&g_reg);
    if (!r || !g) return;
    pthread_mutex_lock(&r->gauge_mu);
    r->gauges = *g;
    r->gauges.has_totals = 0; /* push carries gauges only; counters are pushed apart */
    pthread_mutex_unlock(&r->gauge_mu);
}

/* --- counters -------------------------------------------------------------- */

static void counter_add(_Atomic int64_t *c, int64_t n)
{
    if (n > 0) atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void metrics_add_prompt_tokens(int64_t n)
{
    struct metrics_reg *r = atomic_load(&g_reg);
    if (r) counter_add(&r->prompt_tokens, n);
}

void metrics_add_generation_tokens(int64_t n)
{
    struct metrics_reg *r = atomic_load(&g_reg);
    if (r) counter_add(&r->generation_tokens, n);
}

void metrics_inc_request_success(enum metrics_finish reason)
{
    struct metrics_reg *r = atomic_load(&g_reg);
    if (!r || (int)reason < 0 || reason >= METRICS_FINISH_COUNT) return;
    counter_add(&r->success[reason], 1);
}

void metrics_inc_preemptions(int64_t n)
{
    struct metrics_reg *r = atomic_load(&g_reg);
    if (r) counter_add(&r->preemptions, n);
}

int metrics_finish_reason_parse(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < METRICS_FINISH_COUNT; i++)
        if (!strcmp(s, finish_names[i])) return i;
    return -1;
}

/* --- histograms ------------------------------------------------------------ */

static void hist_observe(int which, double s)
{
    struct metrics_reg *r = atomic_load(&g_reg);
    if (!r || !isfinite(s) || s < 0) return;
    struct metrics_hist *h = &r->hist[which];
    /* Prometheus buckets are upper-inclusive: v <= le. Linear scan: n <= 22. */
    size_t i = 0;
    while (i < h->n && s > h->le[i]) i++;
    pthread_mutex_lock(&h->mu);
    h->counts[i]++;
    h->sum += s;
    h->count++;
    pthread_mutex_unlock(&h->mu);
}

void metrics_observe_ttft(double s) { hist_observe(H_TTFT, s); }
void metrics_observe_itl(double s) { hist_observe(H_ITL, s); }
void metrics_observe_e2e(double s) { hist_observe(H_E2E, s); }
void metrics_observe_queue_time(double s) { hist_observe(H_QUEUE, s); }

/* --- scheduler snapshot mapping --------------------------------------------- */

/* enum sched_finish STOP..ERROR -> enum metrics_finish STOP..ERROR. */
_Static_assert(SCHED_FINISH_LENGTH - SCHED_FINISH_STOP == METRICS_FINISH_LENGTH,
               "finish enums out of step");
_Static_assert(SCHED_FINISH_ABORT - SCHED_FINISH_STOP == METRICS_FINISH_ABORT,
               "finish enums out of step");
_Static_assert(SCHED_FINISH_ERROR - SCHED_FINISH_STOP == METRICS_FINISH_ERROR,
               "finish enums out of step");
_Static_assert(SCHED_FINISH_ERROR < (int)(sizeof(((struct sched_stats *)0)->requests_finished) /
                                          sizeof(uint64_t)),
               "requests_finished too small");

void metrics_from_sched_stats(const struct sched_stats *st, struct metrics_gauges *g)
{
    memset(g, 0, sizeof(*g));
    if (!st) return;
    g->num_requests_running = st->num_running;
    g->num_requests_waiting = st->num_waiting;
    g->kv_cache_usage_perc = st->kv_usage;
    g->gdn_state_slots_used = st->slots_used;
    g->has_totals = 1;
    g->prompt_tokens_total = st->prompt_tokens_total;
    g->generation_tokens_total = st->generation_tokens_total;
    g->preemptions_total = st->preemptions_total;
    for (int i = 0; i < METRICS_FINISH_COUNT; i++)
        g->success_total[i] = st->requests_finished[SCHED_FINISH_STOP + i];
    int k = st->spec_num_positions;
    g->spec_num_positions = k < 0 ? 0 : k > METRICS_SPEC_MAX_POS ? METRICS_SPEC_MAX_POS : k;
    g->spec_drafts_total = st->spec_drafts_total;
    g->spec_draft_tokens_total = st->spec_draft_tokens_total;
    g->spec_accepted_tokens_total = st->spec_accepted_tokens_total;
    for (int i = 0; i < g->spec_num_positions; i++) g->spec_accepted_per_pos[i] = st->spec_accepted_per_pos[i];
}

_Static_assert(sizeof(((struct sched_stats *)0)->spec_accepted_per_pos) ==
                   METRICS_SPEC_MAX_POS * sizeof(uint64_t),
               "METRICS_SPEC_MAX_POS out of step with the scheduler");

/* --- rendering ------------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t cap = b->cap * 2;
        while (cap - b->len <= (size_t)n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
}

/* Shortest of %.15g/%.17g that reads back exactly: sums stay readable
 * (0.3, not 0.29999999999999999) and still round-trip. Bucket bounds come out
 * as vLLM's ("0.001", "2560"). */
static void fmt_double(char *out, size_t n, double v)
{
    snprintf(out, n, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, n, "%.17g", v);
}

static void header(struct buf *b, const char *name, const char *help, const char *type)
{
    buf_printf(b, "# HELP deltaserve:%s %s\n# TYPE deltaserve:%s %s\n", name, help, name, type);
}

static void render_hist(struct buf *b, struct metrics_hist *h, const char *label)
{
    uint64_t counts[HIST_MAX_BUCKETS + 1];
    double sum;
    uint64_t count;
    pthread_mutex_lock(&h->mu);
    memcpy(counts, h->counts, sizeof(counts));
    sum = h->sum;
    count = h->count;
    pthread_mutex_unlock(&h->mu);

    header(b, h->name, h->help, "histogram");
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i < h->n; i++) {
        cum += counts[i];
        fmt_double(le, sizeof(le), h->le[i]);
        buf_printf(b, "deltaserve:%s_bucket{le=\"%s\",model_name=\"%s\"} %llu\n", h->name, le, label,
                   (unsigned long long)cum);
    }
    cum += counts[h->n];
    buf_printf(b, "deltaserve:%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", h->name, label,
               (unsigned long long)cum);
    fmt_double(le, sizeof(le), sum);
    buf_printf(b, "deltaserve:%s_sum{model_name=\"%s\"} %s\n", h->name, label, le);
    buf_printf(b, "deltaserve:%s_count{model_name=\"%s\"} %llu\n", h->name, label,
               (unsigned long long)count);
}

char *metrics_render(size_t *len)
{
    struct metrics_reg *r = atomic_load(&g_reg);
    if (!r) return NULL;

    /* Pull outside the histogram locks; the source may take the scheduler's
     * lock. gauge_mu is held across the call so the source cannot be swapped
     * under us; the callback must not call back into metrics. */
    struct metrics_gauges g;
    pthread_mutex_lock(&r->gauge_mu);
    if (r->source) {
        struct metrics_gauges pulled;
        memset(&pulled, 0, sizeof(pulled));
        if (r->source(r->source_user, &pulled) == 0) r->gauges = pulled;
    }
    g = r->gauges;
    pthread_mutex_unlock(&r->gauge_mu);

    uint64_t prompt = (uint64_t)atomic_load(&r->prompt_tokens);
    uint64_t gen = (uint64_t)atomic_load(&r->generation_tokens);
    uint64_t preempt = (uint64_t)atomic_load(&r->preemptions);
    uint64_t success[METRICS_FINISH_COUNT];
    for (int i = 0; i < METRICS_FINISH_COUNT; i++) success[i] = (uint64_t)atomic_load(&r->success[i]);
    if (g.has_totals) {
        prompt = g.prompt_tokens_total;
        gen = g.generation_tokens_total;
        preempt = g.preemptions_total;
        memcpy(success, g.success_total, sizeof(success));
    }

    struct buf b = {.p = malloc(8192), .len = 0, .cap = 8192, .oom = 0};
    if (!b.p) return NULL;
    b.p[0] = '\0';
    const char *L = r->label;

    header(&b, "num_requests_running", "Number of requests in model execution batches.", "gauge");
    buf_printf(&b, "deltaserve:num_requests_running{model_name=\"%s\"} %lld\n", L,
               (long long)g.num_requests_running);
    header(&b, "num_requests_waiting", "Number of requests waiting to be processed.", "gauge");
    buf_printf(&b, "deltaserve:num_requests_waiting{model_name=\"%s\"} %lld\n", L,
               (long long)g.num_requests_waiting);
    header(&b, "kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", "gauge");
    char num[32];
    fmt_double(num, sizeof(num), isfinite(g.kv_cache_usage_perc) ? g.kv_cache_usage_perc : 0.0);
    buf_printf(&b, "deltaserve:kv_cache_usage_perc{model_name=\"%s\"} %s\n", L, num);
    header(&b, "gdn_state_slots_used",
           "Number of Gated DeltaNet recurrent-state slots in use.", "gauge");
    buf_printf(&b, "deltaserve:gdn_state_slots_used{model_name=\"%s\"} %lld\n", L,
               (long long)g.gdn_state_slots_used);

    /* Counters: in format 0.0.4 the HELP/TYPE lines carry the full sample
     * name including _total (prometheus_client's 0.0.4 output does too). */
    header(&b, "prompt_tokens_total", "Number of prefill tokens processed.", "counter");
    buf_printf(&b, "deltaserve:prompt_tokens_total{model_name=\"%s\"} %llu\n", L,
               (unsigned long long)prompt);
    header(&b, "generation_tokens_total", "Number of generation tokens processed.", "counter");
    buf_printf(&b, "deltaserve:generation_tokens_total{model_name=\"%s\"} %llu\n", L,
               (unsigned long long)gen);
    header(&b, "request_success_total", "Count of successfully processed requests.", "counter");
    for (int i = 0; i < METRICS_FINISH_COUNT; i++)
        buf_printf(&b,
                   "deltaserve:request_success_total{finished_reason=\"%s\",model_name=\"%s\"} "
                   "%llu\n",
                   finish_names[i], L, (unsigned long long)success[i]);
    header(&b, "num_preemptions_total", "Cumulative number of preemption from the engine.", "counter");
    buf_printf(&b, "deltaserve:num_preemptions_total{model_name=\"%s\"} %llu\n", L,
               (unsigned long long)preempt);

    if (g.has_totals && g.spec_num_positions > 0) {
        /* vLLM's SpecDecodingProm names and help texts */
        header(&b, "spec_decode_num_drafts_total", "Number of spec decoding drafts.", "counter");
        buf_printf(&b, "deltaserve:spec_decode_num_drafts_total{model_name=\"%s\"} %llu\n", L,
                   (unsigned long long)g.spec_drafts_total);
        header(&b, "spec_decode_num_draft_tokens_total", "Number of draft tokens.", "counter");
        buf_printf(&b, "deltaserve:spec_decode_num_draft_tokens_total{model_name=\"%s\"} %llu\n", L,
                   (unsigned long long)g.spec_draft_tokens_total);
        header(&b, "spec_decode_num_accepted_tokens_total", "Number of accepted tokens.", "counter");
        buf_printf(&b, "deltaserve:spec_decode_num_accepted_tokens_total{model_name=\"%s\"} %llu\n", L,
                   (unsigned long long)g.spec_accepted_tokens_total);
        header(&b, "spec_decode_num_accepted_tokens_per_pos_total", "Accepted tokens per draft position.",
               "counter");
        int np = g.spec_num_positions > METRICS_SPEC_MAX_POS ? METRICS_SPEC_MAX_POS : g.spec_num_positions;
        for (int i = 0; i < np; i++)
            buf_printf(&b,
                       "deltaserve:spec_decode_num_accepted_tokens_per_pos_total{model_name=\"%s\","
                       "position=\"%d\"} %llu\n",
                       L, i, (unsigned long long)g.spec_accepted_per_pos[i]);
    }

    for (int i = 0; i < H_COUNT; i++) render_hist(&b, &r->hist[i], L);

    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.len;
    return b.p;
}
