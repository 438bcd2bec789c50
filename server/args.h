/* server/args.h: deltaserve's settings from flags, environment and a JSON
 * config file.
 *
 * defines: struct srv_args, struct arg_opt, srv_args_defaults, srv_args_parse,
 *          srv_args_usage, srv_args_log
 *
 * Threads: main thread at startup only.
 *
 * Every setting has one long flag name as vLLM spells it ("--max-num-seqs").
 * The same name is the config file key ("max-num-seqs" or "max_num_seqs") and,
 * upper-cased with '-' -> '_' and prefixed, the environment variable
 * (DELTASERVE_MAX_NUM_SEQS). Precedence: flags > environment > config file >
 * defaults. Each value is checked (type and range) where it is read and the
 * error names its source, e.g.
 *   "config file config/cpu.json: key \"port\": must be an integer in [0, 65535]".
 */
#ifndef DS_SERVER_ARGS_H
#define DS_SERVER_ARGS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct srv_args {
    char model[PATH_MAX];           /* model directory (required for serve) */
    char served_model_name[PATH_MAX];    /* default: the model path as given, like vLLM */
    char host[256];                 /* 127.0.0.1 */
    int port;                       /* 8000 (0 = pick a free port, logged) */
    int max_model_len;              /* 0 = the model's max_position_embeddings */
    int max_num_seqs;               /* 256 */
    int max_num_batched_tokens;     /* 2048 */
    double gpu_memory_utilization;  /* 0.9 */
    int64_t kv_cache_memory;        /* bytes for KV + state slots on CPU; 0 = 1 GiB */
    int block_size;                 /* 16 */
    char device[8];                 /* auto | cuda | cpu */
    char api_key[256];              /* "" = no auth */
    bool auth_health_metrics;       /* also require the key on /health, /metrics, /version */
    int64_t seed;                   /* base seed for requests without one */
    char config[PATH_MAX];          /* the config file read ("" = none) */
    int max_queued_requests;        /* waiting requests beyond max_num_seqs before 429 */
    double shutdown_timeout;        /* seconds running requests get on SIGTERM */
    char log_level[16];             /* debug | info | warning | error */
    char log_format[8];             /* text | json */
    bool disable_log_requests;      /* no per-request log line */
    int64_t max_body_size;          /* bytes; 413 above */
    int max_connections;            /* concurrent connections MHD accepts */
    int timeout;                    /* idle/slow client timeout, seconds */
    int http_threads;               /* MHD thread pool size */
    int threads;                    /* CPU backend threads (0 = all cores) */
    int max_logprobs;               /* largest logprobs / top_logprobs accepted (20) */
    char chat_template[PATH_MAX];   /* override the model's chat template file */
    int num_speculative_tokens;     /* n-gram speculation drafts per step (0 = off) */
    char speculative[8];            /* ngram | off: the draft method (ngram, the only one, by default) */
    int ngram_min, ngram_max;       /* n-gram sizes; 0 = unset, resolved at parse (default 5) */
    double spec_min_acceptance;     /* adaptive draft length threshold (0 = fixed k; default 0.1) */
    int spec_probe_interval;        /* longest off period before re-probing (default 64) */
    int spec_disable_by_batch_size; /* no drafts above this many running sequences (0 = no limit) */
    char ssm_state_dtype[16];       /* GDN SSM state storage: float32 (default) | bfloat16
                                       (normalized at parse; --mamba-ssm-cache-dtype is an alias) */
};

/* 1 when the parsed settings ask for bf16 GDN SSM state. */
bool srv_args_ssm_bf16(const struct srv_args *a);

enum arg_type { ARG_STR, ARG_INT, ARG_I64, ARG_F64, ARG_BOOL, ARG_SIZE, ARG_ENUM };

/* One setting: its name (no dashes), where it lives, how it is checked. */
struct arg_opt {
    const char *name;       /* "max-num-seqs" */
    enum arg_type type;
    size_t off;             /* offsetof in the owning struct */
    size_t cap;             /* ARG_STR/ARG_ENUM: buffer size */
    double min, max;        /* numeric range (inclusive) */
    const char *choices;    /* ARG_ENUM: "auto|cuda|cpu" */
    const char *help;
};

void srv_args_defaults(struct srv_args *a);

/* Parse argv[0..argc) (argv[0] is the first option, not the program).
 * env: a NULL-terminated "NAME=value" array (environ, or a test's own).
 * extra/extra_base: options of a subcommand (e.g. complete's --prompt),
 * flags only, looked up before the common table; may be NULL.
 * need_model: a missing --model is an error.
 * Returns 0, 1 when --help was asked (usage printed to stdout), or -1 with a
 * one-line reason in err. */
int srv_args_parse(struct srv_args *a, int argc, char **argv, char *const *env,
                   const struct arg_opt *extra, size_t n_extra, void *extra_base,
                   bool need_model, char *err, size_t errlen);

void srv_args_usage(const char *cmd, const struct arg_opt *extra, size_t n_extra);

/* Log the effective settings at debug level (the API key is never printed). */
void srv_args_log(const struct srv_args *a);

#ifdef __cplusplus
}
#endif
#endif
