/* server/complete_cli.c: `deltaserve complete --model DIR (--prompt TEXT |
 * --prompt-tokens 1,2,3) [--max-tokens N] [--temperature T] [--logprobs K]
 * [--echo] ...`: builds the /v1/completions request body from the flags and
 * runs it through the server's own parsing, scheduling and response code
 * (gen_run_offline), so the output is exactly what the endpoint returns.
 * Main thread. */
#include "server/complete_cli.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "server/args.h"
#include "server/gen.h"
#include "server/loader.h"
#include "server/serve.h"

extern char **environ;

struct complete_opts {
    char prompt[1 << 20];
    char prompt_tokens[1 << 20];
    int max_tokens;
    double temperature;
    double top_p;
    int logprobs;
    bool echo;
    int n;
    char stop[1024];
    int64_t request_seed;
    char request[1 << 16];            /* a whole JSON body (overrides the flags above) */
};

#define CO(f) offsetof(struct complete_opts, f)
static const struct arg_opt g_copts[] = {
    {"prompt", ARG_STR, CO(prompt), sizeof(((struct complete_opts *)0)->prompt), 0, 0, NULL, "prompt text"},
    {"prompt-tokens", ARG_STR, CO(prompt_tokens), sizeof(((struct complete_opts *)0)->prompt_tokens), 0, 0, NULL,
     "prompt as token ids, e.g. 1,2,3"},
    {"max-tokens", ARG_INT, CO(max_tokens), 0, -1, 1 << 30, NULL, "tokens to generate (default 16)"},
    {"temperature", ARG_F64, CO(temperature), 0, -1, 2, NULL, "sampling temperature (default: the model's, else 1)"},
    {"top-p", ARG_F64, CO(top_p), 0, -1, 1, NULL, "nucleus sampling"},
    {"logprobs", ARG_INT, CO(logprobs), 0, -1, 20, NULL, "log-probs of each token plus K alternatives"},
    {"echo", ARG_BOOL, CO(echo), 0, 0, 1, NULL, "include the prompt (with --logprobs: its log-probs)"},
    {"n", ARG_INT, CO(n), 0, 1, 128, NULL, "completions to generate"},
    {"stop", ARG_STR, CO(stop), sizeof(((struct complete_opts *)0)->stop), 0, 0, NULL, "a stop string"},
    {"request-seed", ARG_I64, CO(request_seed), 0, -1, 9.2e18, NULL, "the request's seed"},
    {"request", ARG_STR, CO(request), sizeof(((struct complete_opts *)0)->request), 0, 0, NULL,
     "a whole /v1/completions JSON body instead of the flags above"},
};
#define N_COPTS (sizeof g_copts / sizeof g_copts[0])

/* "1, 2,3" -> JSON array; NULL on a bad list. */
static cJSON *parse_ids(const char *s)
{
    cJSON *arr = cJSON_CreateArray();
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0) { cJSON_Delete(arr); return NULL; }
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v));
        p = end;
        if (*p && *p != ',' && *p != ' ') { cJSON_Delete(arr); return NULL; }
    }
    return arr;
}

int complete_cli_main(int argc, char **argv)
{
    static struct srv_args a;
    static struct complete_opts o;
    memset(&o, 0, sizeof o);
    o.max_tokens = -1;
    o.temperature = -1;
    o.top_p = -1;
    o.logprobs = -1;
    o.request_seed = -1;
    char err[1024];
    int rc = srv_args_parse(&a, argc, argv, environ, g_copts, N_COPTS, &o, true, err, sizeof err);
    if (rc == 1) {
        srv_args_usage("complete", g_copts, N_COPTS);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "deltaserve complete: %s\n", err);
        return 2;
    }
    char *body = NULL;
    if (o.request[0]) {
        body = strdup(o.request);
    } else {
        if (!o.prompt[0] == !o.prompt_tokens[0]) {
            fprintf(stderr, "deltaserve complete: give exactly one of --prompt or --prompt-tokens\n");
            return 2;
        }
        cJSON *req = cJSON_CreateObject();
        if (o.prompt[0]) cJSON_AddStringToObject(req, "prompt", o.prompt);
        else {
            cJSON *ids = parse_ids(o.prompt_tokens);
            if (!ids) {
                fprintf(stderr, "deltaserve complete: --prompt-tokens: expected comma-separated token ids\n");
                cJSON_Delete(req);
                return 2;
            }
            cJSON_AddItemToObject(req, "prompt", ids);
        }
        if (o.max_tokens >= 0) cJSON_AddNumberToObject(req, "max_tokens", o.max_tokens);
        if (o.temperature >= 0) cJSON_AddNumberToObject(req, "temperature", o.temperature);
        if (o.top_p >= 0) cJSON_AddNumberToObject(req, "top_p", o.top_p);
        if (o.logprobs >= 0) cJSON_AddNumberToObject(req, "logprobs", o.logprobs);
        if (o.echo) cJSON_AddTrueToObject(req, "echo");
        if (o.n > 0) cJSON_AddNumberToObject(req, "n", o.n);
        if (o.stop[0]) cJSON_AddStringToObject(req, "stop", o.stop);
        if (o.request_seed >= 0) cJSON_AddNumberToObject(req, "seed", (double)o.request_seed);
        body = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
    }
    if (!body) return 1;
    /* The CLI's stdout is the response; logs stay on stderr, quieter by default. */
    if (!getenv("DELTASERVE_LOG_LEVEL") && !strstr(a.log_level, "debug")) snprintf(a.log_level, sizeof a.log_level, "warning");
    srv_setup_logging(&a);
    static struct srv_app app;
    app.args = &a;
    app.start_time = (int64_t)time(NULL);
    static struct srv_model m;
    if (srv_model_load(&m, &a, &app, err, sizeof err)) {
        fprintf(stderr, "deltaserve complete: %s\n", err);
        free(body);
        return 1;
    }
    srv_model_banner(&m, &a);
    atomic_store(&app.state, SRV_SERVING);
    int status = 0;
    char *out = gen_run_offline(&app, OAI_COMPLETION, body, strlen(body), &status);
    free(body);
    if (out) printf("%s\n", out);
    free(out);
    srv_model_unload(&m);
    return status == 200 ? 0 : 1;
}
