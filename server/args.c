/* server/args.c: flags, DELTASERVE_* environment and the JSON config file into
 * struct srv_args (see args.h). Main thread, startup only.
 *
 * The settings are one table; the three sources walk it the same way and every
 * value goes through arg_set_str() (strings from flags and the environment) or
 * arg_set_json() (config file values), which check type and range. */
#include "server/args.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/log.h"
#include "scheduler/spec.h"

#define OPT_S(n, f, h) {n, ARG_STR, offsetof(struct srv_args, f), sizeof(((struct srv_args *)0)->f), 0, 0, NULL, h}
#define OPT_I(n, f, lo, hi, h) {n, ARG_INT, offsetof(struct srv_args, f), 0, lo, hi, NULL, h}
#define OPT_L(n, f, lo, hi, h) {n, ARG_I64, offsetof(struct srv_args, f), 0, lo, hi, NULL, h}
#define OPT_F(n, f, lo, hi, h) {n, ARG_F64, offsetof(struct srv_args, f), 0, lo, hi, NULL, h}
#define OPT_B(n, f, h) {n, ARG_BOOL, offsetof(struct srv_args, f), 0, 0, 1, NULL, h}
#define OPT_Z(n, f, lo, hi, h) {n, ARG_SIZE, offsetof(struct srv_args, f), 0, lo, hi, NULL, h}
#define OPT_E(n, f, c, h) {n, ARG_ENUM, offsetof(struct srv_args, f), sizeof(((struct srv_args *)0)->f), 0, 0, c, h}
/* --ssm-state-dtype values: vLLM's names for --mamba-ssm-cache-dtype plus the
 * short ones; auto = float32 (the state's reference precision) */
#define SSM_DTYPES "auto|float32|fp32|bfloat16|bf16"

static const struct arg_opt g_opts[] = {
    OPT_S("model", model, "model directory (config.json, safetensors, tokenizer.json)"),
    OPT_S("served-model-name", served_model_name, "name clients use in \"model\" (default: the --model path)"),
    OPT_S("host", host, "address to listen on (default 127.0.0.1)"),
    OPT_I("port", port, 0, 65535, "TCP port (default 8000; 0 picks a free one)"),
    OPT_I("max-model-len", max_model_len, 0, 1 << 24, "context length limit (default: the model's)"),
    OPT_I("max-num-seqs", max_num_seqs, 1, 65536, "sequences running at once (default 256)"),
    OPT_I("max-num-batched-tokens", max_num_batched_tokens, 1, 1 << 24, "tokens per engine step (default 2048)"),
    OPT_F("gpu-memory-utilization", gpu_memory_utilization, 0.01, 1.0, "fraction of GPU memory to use (default 0.9)"),
    OPT_Z("kv-cache-memory", kv_cache_memory, 0, 1e15, "CPU: bytes for KV cache + state slots, e.g. 2GiB (default 1GiB)"),
    OPT_I("block-size", block_size, 1, 1024, "tokens per KV block (default 16)"),
    OPT_E("device", device, "auto|cuda|cpu", "auto (GPU when present), cuda or cpu"),
    OPT_S("api-key", api_key, "require 'Authorization: Bearer KEY' on /v1 routes"),
    OPT_B("auth-health-metrics", auth_health_metrics, "also require the key on /health, /metrics, /version"),
    OPT_L("seed", seed, 0, 9.2e18, "seed for requests that give none (default 0)"),
    OPT_S("config", config, "JSON file with any of these settings (keys = flag names)"),
    OPT_I("max-queued-requests", max_queued_requests, 0, 1 << 24, "waiting requests before 429 (default 1024)"),
    OPT_F("shutdown-timeout", shutdown_timeout, 0, 86400, "seconds running requests get on SIGTERM (default 30)"),
    OPT_E("log-level", log_level, "debug|info|warning|warn|error", "log level (default info)"),
    OPT_E("log-format", log_format, "text|json", "log line format (default text)"),
    OPT_B("disable-log-requests", disable_log_requests, "no log line per finished request"),
    OPT_Z("max-body-size", max_body_size, 1024, 1e12, "largest request body, bytes (default 32MiB)"),
    OPT_I("max-connections", max_connections, 1, 1 << 20, "concurrent connections (default 1024)"),
    OPT_I("timeout", timeout, 0, 86400, "idle / slow client timeout, seconds (default 60; 0 = none)"),
    OPT_I("http-threads", http_threads, 1, 256, "HTTP worker threads (default 4)"),
    OPT_I("threads", threads, 0, 4096, "CPU backend threads (default 0 = all cores)"),
    OPT_I("max-logprobs", max_logprobs, 0, 1000, "largest logprobs / top_logprobs (default 20)"),
    OPT_S("chat-template", chat_template, "chat template file overriding the model's"),
    OPT_I("num-speculative-tokens", num_speculative_tokens, 0, SPEC_MAX_TOKENS, "n-gram speculative drafts per step (default 0 = off)"),
    OPT_E("speculative", speculative, "ngram|off", "speculative draft method: ngram (prompt lookup; default) or off"),
    OPT_I("ngram-min", ngram_min, 1, SPEC_MAX_NGRAM, "smallest n-gram the drafter matches (default 5, at most --ngram-max)"),
    OPT_I("ngram-max", ngram_max, 1, SPEC_MAX_NGRAM, "largest n-gram the drafter matches (default 5, at least --ngram-min)"),
    OPT_F("spec-min-acceptance", spec_min_acceptance, 0, 1, "adaptive drafts: propose a draft only while its estimated acceptance is at least this (default 0.1; 0 = always k)"),
    OPT_I("spec-probe-interval", spec_probe_interval, 1, 1 << 20, "adaptive drafts: longest plain-decode run before drafting is retried (default 64)"),
    OPT_I("speculative-disable-by-batch-size", spec_disable_by_batch_size, 0, 1 << 20, "no drafts while more sequences than this run (default 0 = no limit)"),
    OPT_E("ssm-state-dtype", ssm_state_dtype, SSM_DTYPES, "GDN recurrent (SSM) state storage: float32 (default) or bfloat16 (half the state memory; CUDA only)"),
    OPT_E("mamba-ssm-cache-dtype", ssm_state_dtype, SSM_DTYPES, "alias of --ssm-state-dtype (vLLM's name)"),
};
#define N_OPTS (sizeof g_opts / sizeof g_opts[0])

void srv_args_defaults(struct srv_args *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->host, sizeof a->host, "127.0.0.1");
    a->port = 8000;
    a->max_num_seqs = 256;
    a->max_num_batched_tokens = 2048;
    a->gpu_memory_utilization = 0.9;
    a->block_size = 16;
    snprintf(a->device, sizeof a->device, "auto");
    a->max_queued_requests = 1024;
    a->shutdown_timeout = 30;
    snprintf(a->log_level, sizeof a->log_level, "info");
    snprintf(a->log_format, sizeof a->log_format, "text");
    a->max_body_size = 32ll << 20;
    a->max_connections = 1024;
    a->timeout = 60;
    a->http_threads = 4;
    a->max_logprobs = 20;
    snprintf(a->speculative, sizeof a->speculative, "ngram");
    a->spec_min_acceptance = SPEC_MIN_ACCEPT_DEFAULT;
    a->spec_probe_interval = SPEC_PROBE_INTERVAL_DEFAULT;
    snprintf(a->ssm_state_dtype, sizeof a->ssm_state_dtype, "float32");
}

bool srv_args_ssm_bf16(const struct srv_args *a)
{
    return !strcmp(a->ssm_state_dtype, "bfloat16");
}

/* "max_num_seqs" and "max-num-seqs" name the same setting. */
static bool name_eq(const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; a[i] && i < blen; i++) {
        char x = a[i] == '_' ? '-' : a[i], y = b[i] == '_' ? '-' : b[i];
        if (x != y) return false;
    }
    return !a[i] && i == blen;
}

static const struct arg_opt *find(const struct arg_opt *t, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (name_eq(t[i].name, name, len)) return &t[i];
    return NULL;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* "4GiB", "512M", "1e9", "1048576" -> bytes. */
static int parse_size(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0) return -1;
    while (*end == ' ') end++;
    double mul = 1;
    if (*end) {
        char u = (char)toupper((unsigned char)*end);
        const char *rest = end + 1;
        if (u == 'K') mul = 1024.0;
        else if (u == 'M') mul = 1024.0 * 1024;
        else if (u == 'G') mul = 1024.0 * 1024 * 1024;
        else if (u == 'T') mul = 1024.0 * 1024 * 1024 * 1024;
        else if (u == 'B' && !end[1]) rest = end + 1;
        else return -1;
        if (*rest && strcasecmp(rest, "iB") && strcasecmp(rest, "B") && strcasecmp(rest, "i")) return -1;
    }
    *out = v * mul;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")) *out = true;
    else if (!strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off")) *out = false;
    else return -1;
    return 0;
}

static bool enum_ok(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && !strncmp(p, v, l)) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

static void range_msg(const struct arg_opt *o, char *buf, size_t len)
{
    if (o->type == ARG_F64) snprintf(buf, len, "a number in [%g, %g]", o->min, o->max);
    else if (o->type == ARG_SIZE) snprintf(buf, len, "a size in bytes (e.g. 4GiB) in [%.0f, %g]", o->min, o->max);
    else snprintf(buf, len, "an integer in [%.0f, %.0f]", o->min, o->max);
}

/* Store a numeric value after the range check. */
static int set_num(const struct arg_opt *o, void *base, double v, const char *src, char *err, size_t errlen)
{
    char r[96];
    range_msg(o, r, sizeof r);
    if (!isfinite(v) || v < o->min || v > o->max)
        return fail(err, errlen, "%s: must be %s", src, r);
    if ((o->type == ARG_INT || o->type == ARG_I64) && v != floor(v))
        return fail(err, errlen, "%s: must be %s", src, r);
    char *p = (char *)base + o->off;
    switch (o->type) {
    case ARG_INT: *(int *)p = (int)v; break;
    case ARG_I64: case ARG_SIZE: *(int64_t *)p = (int64_t)v; break;
    case ARG_F64: *(double *)p = v; break;
    default: return fail(err, errlen, "%s: internal type error", src);
    }
    return 0;
}

static int set_str_value(const struct arg_opt *o, void *base, const char *v, const char *src, char *err, size_t errlen)
{
    char *p = (char *)base + o->off;
    if (o->type == ARG_ENUM && !enum_ok(o->choices, v))
        return fail(err, errlen, "%s: must be one of %s, got \"%s\"", src, o->choices, v);
    if (strlen(v) >= o->cap) return fail(err, errlen, "%s: longer than %zu bytes", src, o->cap - 1);
    snprintf(p, o->cap, "%s", v);
    return 0;
}

/* A value given as text (flag or environment). */
static int arg_set_str(const struct arg_opt *o, void *base, const char *v, const char *src, char *err, size_t errlen)
{
    char r[96];
    switch (o->type) {
    case ARG_STR: case ARG_ENUM:
        return set_str_value(o, base, v, src, err, errlen);
    case ARG_BOOL: {
        bool b;
        if (parse_bool(v, &b)) return fail(err, errlen, "%s: must be true or false, got \"%s\"", src, v);
        *(bool *)((char *)base + o->off) = b;
        return 0;
    }
    case ARG_SIZE: {
        double d;
        range_msg(o, r, sizeof r);
        if (parse_size(v, &d)) return fail(err, errlen, "%s: must be %s, got \"%s\"", src, r, v);
        return set_num(o, base, floor(d), src, err, errlen);
    }
    default: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        range_msg(o, r, sizeof r);
        if (!*v || *end || errno) return fail(err, errlen, "%s: must be %s, got \"%s\"", src, r, v);
        return set_num(o, base, d, src, err, errlen);
    }
    }
}

/* A value from the config file: JSON types must match. */
static int arg_set_json(const struct arg_opt *o, void *base, const cJSON *v, const char *src, char *err, size_t errlen)
{
    char r[96];
    switch (o->type) {
    case ARG_STR: case ARG_ENUM:
        if (!cJSON_IsString(v)) return fail(err, errlen, "%s: must be a string", src);
        return set_str_value(o, base, v->valuestring, src, err, errlen);
    case ARG_BOOL:
        if (!cJSON_IsBool(v)) return fail(err, errlen, "%s: must be true or false", src);
        *(bool *)((char *)base + o->off) = cJSON_IsTrue(v);
        return 0;
    case ARG_SIZE:
        if (cJSON_IsString(v)) return arg_set_str(o, base, v->valuestring, src, err, errlen);
        /* fall through */
    default:
        range_msg(o, r, sizeof r);
        if (!cJSON_IsNumber(v)) return fail(err, errlen, "%s: must be %s", src, r);
        return set_num(o, base, v->valuedouble, src, err, errlen);
    }
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int load_config(struct srv_args *a, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return fail(err, errlen, "config file %s: cannot read: %s", path, strerror(errno));
    const char *ep = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &ep, 0);
    int rc = 0;
    if (!root || !cJSON_IsObject(root)) {
        int line = 1;
        for (const char *p = text; ep && p < ep; p++) line += *p == '\n';
        rc = fail(err, errlen, "config file %s: not a JSON object (error near line %d)", path, line);
        goto out;
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        char src[PATH_MAX + 128];
        snprintf(src, sizeof src, "config file %s: key \"%s\"", path, it->string);
        const struct arg_opt *o = find(g_opts, N_OPTS, it->string, strlen(it->string));
        if (!o) { rc = fail(err, errlen, "%s: unknown setting", src); goto out; }
        if (!strcmp(o->name, "config")) { rc = fail(err, errlen, "%s: a config file cannot name another", src); goto out; }
        if (cJSON_IsNull(it)) continue; /* null = keep the default */
        if ((rc = arg_set_json(o, a, it, src, err, errlen))) goto out;
    }
out:
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* DELTASERVE_MAX_NUM_SEQS -> the option, or NULL. */
static const struct arg_opt *env_opt(const char *kv, const char **val)
{
    static const char pre[] = "DELTASERVE_";
    if (strncmp(kv, pre, sizeof pre - 1)) return NULL;
    const char *name = kv + sizeof pre - 1, *eq = strchr(name, '=');
    if (!eq) return NULL;
    char low[128];
    size_t n = (size_t)(eq - name);
    if (n >= sizeof low) return NULL;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    *val = eq + 1;
    return find(g_opts, N_OPTS, low, n);
}

static int finish(struct srv_args *a, bool need_model, char *err, size_t errlen)
{
    if (need_model && !a->model[0]) return fail(err, errlen, "--model DIR is required");
    if (!a->served_model_name[0]) {
        /* vLLM: served_model_name defaults to the model argument as given. */
        snprintf(a->served_model_name, sizeof a->served_model_name, "%s", a->model);
    }
    if (!a->host[0]) return fail(err, errlen, "--host: must not be empty");
    if (!strcmp(a->log_level, "warn")) snprintf(a->log_level, sizeof a->log_level, "warning");
    /* one spelling per dtype from here on (the loader and the banner compare it) */
    if (!strcmp(a->ssm_state_dtype, "bf16")) snprintf(a->ssm_state_dtype, sizeof a->ssm_state_dtype, "bfloat16");
    else if (strcmp(a->ssm_state_dtype, "bfloat16"))
        snprintf(a->ssm_state_dtype, sizeof a->ssm_state_dtype, "float32");
    /* n-gram sizes: vLLM's 5..5 when neither is given; one given moves the other default to fit */
    if (!a->ngram_min && !a->ngram_max) a->ngram_min = a->ngram_max = SPEC_NGRAM_MAX_DEFAULT;
    else if (!a->ngram_min) a->ngram_min = a->ngram_max < SPEC_NGRAM_MIN_DEFAULT ? a->ngram_max : SPEC_NGRAM_MIN_DEFAULT;
    else if (!a->ngram_max) a->ngram_max = a->ngram_min > SPEC_NGRAM_MAX_DEFAULT ? a->ngram_min : SPEC_NGRAM_MAX_DEFAULT;
    char e2[160];
    if (spec_cfg_check(a->num_speculative_tokens, a->ngram_min, a->ngram_max, e2, sizeof e2))
        return fail(err, errlen, "--num-speculative-tokens/--ngram-min/--ngram-max: %s", e2);
    return 0;
}

int srv_args_parse(struct srv_args *a, int argc, char **argv, char *const *env,
                   const struct arg_opt *extra, size_t n_extra, void *extra_base,
                   bool need_model, char *err, size_t errlen)
{
    srv_args_defaults(a);
    err[0] = 0;
    /* 1. the config file: --config on the command line beats DELTASERVE_CONFIG */
    const char *cfg = NULL;
    for (char *const *e = env; e && *e; e++)
        if (!strncmp(*e, "DELTASERVE_CONFIG=", 18)) cfg = *e + 18;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) cfg = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9)) cfg = argv[i] + 9;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    }
    if (cfg && *cfg) {
        if (load_config(a, cfg, err, errlen)) return -1;
        snprintf(a->config, sizeof a->config, "%s", cfg);
    }
    /* 2. environment */
    for (char *const *e = env; e && *e; e++) {
        const char *val;
        const struct arg_opt *o = env_opt(*e, &val);
        if (!o || !strcmp(o->name, "config")) continue;
        char src[160];
        snprintf(src, sizeof src, "environment %.*s", (int)(strchr(*e, '=') - *e), *e);
        if (arg_set_str(o, a, val, src, err, errlen)) return -1;
    }
    /* 3. flags */
    bool positional_model = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strncmp(s, "--", 2)) {
            /* `deltaserve serve DIR`, as `vllm serve MODEL` */
            if (positional_model) return fail(err, errlen, "unexpected argument \"%s\"", s);
            positional_model = true;
            if (strlen(s) >= sizeof a->model) return fail(err, errlen, "model path too long");
            snprintf(a->model, sizeof a->model, "%s", s);
            continue;
        }
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        void *base = extra_base;
        const struct arg_opt *o = extra ? find(extra, n_extra, name, nl) : NULL;
        if (!o) { o = find(g_opts, N_OPTS, name, nl); base = a; }
        if (!o) return fail(err, errlen, "unknown option --%.*s (see --help)", (int)nl, name);
        char src[160];
        snprintf(src, sizeof src, "flag --%s", o->name);
        const char *val;
        if (eq) val = eq + 1;
        else if (o->type == ARG_BOOL) val = "true";
        else if (i + 1 < argc) val = argv[++i];
        else return fail(err, errlen, "%s: needs a value", src);
        if (arg_set_str(o, base, val, src, err, errlen)) return -1;
    }
    return finish(a, need_model, err, errlen);
}

static void usage_rows(const struct arg_opt *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char lhs[64];
        const char *meta = t[i].type == ARG_BOOL ? "" : t[i].type == ARG_ENUM ? " CHOICE" : " V";
        snprintf(lhs, sizeof lhs, "--%s%s", t[i].name, meta);
        printf("  %-32s %s\n", lhs, t[i].help);
    }
}

void srv_args_usage(const char *cmd, const struct arg_opt *extra, size_t n_extra)
{
    printf("usage: deltaserve %s [--model] DIR [options]\n", cmd);
    if (extra && n_extra) {
        printf("\n%s options:\n", cmd);
        usage_rows(extra, n_extra);
    }
    printf("\noptions (also DELTASERVE_<NAME> in the environment and keys of --config FILE;\n"
           "precedence: flags > environment > config file > defaults):\n");
    usage_rows(g_opts, N_OPTS);
}

void srv_args_log(const struct srv_args *a)
{
    LOG_DEBUG("settings: model=%s served_model_name=%s host=%s port=%d max_model_len=%d "
              "max_num_seqs=%d max_num_batched_tokens=%d gpu_memory_utilization=%g "
              "kv_cache_memory=%lld block_size=%d device=%s api_key=%s seed=%lld config=%s "
              "max_queued_requests=%d shutdown_timeout=%g max_body_size=%lld max_connections=%d "
              "timeout=%d http_threads=%d threads=%d",
              a->model, a->served_model_name, a->host, a->port, a->max_model_len, a->max_num_seqs,
              a->max_num_batched_tokens, a->gpu_memory_utilization, (long long)a->kv_cache_memory,
              a->block_size, a->device, a->api_key[0] ? "(set)" : "(none)", (long long)a->seed,
              a->config[0] ? a->config : "(none)", a->max_queued_requests, a->shutdown_timeout,
              (long long)a->max_body_size, a->max_connections, a->timeout, a->http_threads,
              a->threads);
}
