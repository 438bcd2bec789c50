/* tests/unit/check_args.c: settings from flags, environment and config file
 * (server/args.c): precedence, types, ranges, error messages naming the source. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/args.h"

static char g_dir[] = "/tmp/ds_args_XXXXXX";

static const char *write_cfg(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void setup(void) { ck_assert_ptr_nonnull(mkdtemp(g_dir)); }

static int parse(struct srv_args *a, char **argv, int argc, char *const *env, char *err)
{
    return srv_args_parse(a, argc, argv, env, NULL, 0, NULL, true, err, 512);
}

START_TEST(defaults)
{
    struct srv_args a;
    char err[512];
    char *argv[] = {"--model", "models/tiny"};
    char *env[] = {NULL};
    ck_assert_int_eq(parse(&a, argv, 2, env, err), 0);
    ck_assert_str_eq(a.model, "models/tiny");
    ck_assert_str_eq(a.served_model_name, "models/tiny"); /* vLLM: the path as given */
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_int_eq(a.port, 8000);
    ck_assert_int_eq(a.max_num_seqs, 256);
    ck_assert_str_eq(a.device, "auto");
    ck_assert(a.gpu_memory_utilization == 0.9);
    ck_assert_int_eq(a.block_size, 16);
    ck_assert_str_eq(a.log_format, "text");
}
END_TEST

START_TEST(precedence)
{
    const char *cfg = write_cfg("p.json",
                                "{\"model\":\"from-file\",\"port\":7001,\"max_num_seqs\":11,\"max-num-batched-tokens\":999,"
                                "\"host\":\"0.0.0.0\",\"kv-cache-memory\":\"2GiB\",\"disable-log-requests\":true}");
    char cfgarg[300];
    snprintf(cfgarg, sizeof cfgarg, "--config=%s", cfg);
    char *argv[] = {cfgarg, "--port", "7003"};
    char *env[] = {"DELTASERVE_PORT=7002", "DELTASERVE_MAX_NUM_SEQS=12", "OTHER=1", NULL};
    struct srv_args a;
    char err[512];
    ck_assert_msg(parse(&a, argv, 3, env, err) == 0, "%s", err);
    ck_assert_int_eq(a.port, 7003);                 /* flag beats env and file */
    ck_assert_int_eq(a.max_num_seqs, 12);           /* env beats file */
    ck_assert_int_eq(a.max_num_batched_tokens, 999);/* file beats default */
    ck_assert_str_eq(a.model, "from-file");
    ck_assert_str_eq(a.host, "0.0.0.0");
    ck_assert(a.kv_cache_memory == 2ll << 30);
    ck_assert(a.disable_log_requests);
    ck_assert_str_eq(a.config, cfg);
    ck_assert_int_eq(a.max_model_len, 0);           /* untouched default */
}
END_TEST

START_TEST(config_from_env)
{
    const char *cfg = write_cfg("e.json", "{\"model\":\"m\",\"seed\":5}");
    char ev[300];
    snprintf(ev, sizeof ev, "DELTASERVE_CONFIG=%s", cfg);
    char *env[] = {ev, NULL};
    struct srv_args a;
    char err[512];
    ck_assert_msg(parse(&a, NULL, 0, env, err) == 0, "%s", err);
    ck_assert_int_eq((int)a.seed, 5);
}
END_TEST

START_TEST(flag_forms)
{
    char *argv[] = {"models/x", "--port=0", "--disable-log-requests", "--api-key", "k", "--auth-health-metrics=false",
                    "--kv-cache-memory", "512M", "--device", "cpu", "--served_model_name", "tiny", "--log-level", "warn"};
    char *env[] = {NULL};
    struct srv_args a;
    char err[512];
    ck_assert_msg(parse(&a, argv, 14, env, err) == 0, "%s", err);
    ck_assert_str_eq(a.model, "models/x");
    ck_assert_int_eq(a.port, 0);
    ck_assert(a.disable_log_requests && !a.auth_health_metrics);
    ck_assert_str_eq(a.api_key, "k");
    ck_assert(a.kv_cache_memory == 512ll << 20);
    ck_assert_str_eq(a.served_model_name, "tiny");
    ck_assert_str_eq(a.log_level, "warning");
}
END_TEST

/* Every bad value is an error naming its source and the setting. */
START_TEST(errors)
{
    static const struct { const char *argv[4]; int argc; const char *env; const char *file; const char *want; } cases[] = {
        {{"--model", "m", "--port", "70000"}, 4, NULL, NULL, "flag --port: must be an integer in [0, 65535]"},
        {{"--model", "m", "--port", "abc"}, 4, NULL, NULL, "flag --port"},
        {{"--model", "m", "--bogus", "1"}, 4, NULL, NULL, "unknown option --bogus"},
        {{"--model", "m", "--device", "tpu"}, 4, NULL, NULL, "flag --device: must be one of auto|cuda|cpu"},
        {{"--model", "m", "--gpu-memory-utilization", "1.5"}, 4, NULL, NULL, "flag --gpu-memory-utilization"},
        {{"--model", "m", "--kv-cache-memory", "lots"}, 4, NULL, NULL, "flag --kv-cache-memory"},
        {{"--model", "m", "--max-num-seqs", "2.5"}, 4, NULL, NULL, "flag --max-num-seqs"},
        {{"--model", "m", "--port"}, 3, NULL, NULL, "flag --port: needs a value"},
        {{"--port", "1"}, 2, NULL, NULL, "--model DIR is required"},
        {{"--model", "m"}, 2, "DELTASERVE_MAX_NUM_SEQS=0", NULL, "environment DELTASERVE_MAX_NUM_SEQS"},
        {{"--model", "m"}, 2, "DELTASERVE_DISABLE_LOG_REQUESTS=maybe", NULL, "environment DELTASERVE_DISABLE_LOG_REQUESTS"},
        {{"--model", "m"}, 2, NULL, "{\"port\":\"80\"}", "key \"port\": must be an integer"},
        {{"--model", "m"}, 2, NULL, "{\"nope\":1}", "key \"nope\": unknown setting"},
        {{"--model", "m"}, 2, NULL, "{\"host\":5}", "key \"host\": must be a string"},
        {{"--model", "m"}, 2, NULL, "{\"disable-log-requests\":1}", "must be true or false"},
        {{"--model", "m"}, 2, NULL, "{\"port\": 80,,}", "not a JSON object"},
        {{"--model", "m"}, 2, NULL, "[1]", "not a JSON object"},
        {{"--model", "m"}, 2, NULL, "{\"config\":\"x.json\"}", "cannot name another"},
        {{"--model", "m"}, 2, NULL, "{\"log-format\":\"xml\"}", "must be one of text|json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *argv[8];
        int argc = 0;
        for (int k = 0; k < cases[i].argc; k++) argv[argc++] = (char *)cases[i].argv[k];
        char cfgarg[300];
        if (cases[i].file) {
            snprintf(cfgarg, sizeof cfgarg, "--config=%s", write_cfg("bad.json", cases[i].file));
            argv[argc++] = cfgarg;
        }
        char *env[] = {(char *)cases[i].env, NULL};
        struct srv_args a;
        char err[512];
        ck_assert_msg(parse(&a, argv, argc, env, err) == -1, "case %zu accepted", i);
        ck_assert_msg(strstr(err, cases[i].want), "case %zu: '%s' lacks '%s'", i, err, cases[i].want);
        if (cases[i].file) ck_assert_msg(strstr(err, "config file"), "case %zu: '%s'", i, err);
    }
    /* a missing config file names the path */
    char *argv[] = {"--model", "m", "--config", "/nonexistent/c.json"};
    char *env[] = {NULL};
    struct srv_args a;
    char err[512];
    ck_assert_int_eq(parse(&a, argv, 4, env, err), -1);
    ck_assert_msg(strstr(err, "/nonexistent/c.json"), "%s", err);
}
END_TEST

START_TEST(help)
{
    char *argv[] = {"--help"};
    char *env[] = {NULL};
    struct srv_args a;
    char err[512];
    ck_assert_int_eq(parse(&a, argv, 1, env, err), 1);
}
END_TEST

/* The shipped example configs parse. */
START_TEST(example_configs)
{
    static const char *files[] = {"config/7b-h100.json", "config/7b-h200.json", "config/cpu.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        if (access(files[i], R_OK)) continue;
        char arg[300];
        snprintf(arg, sizeof arg, "--config=%s", files[i]);
        char *argv[] = {arg};
        char *env[] = {NULL};
        struct srv_args a;
        char err[512];
        ck_assert_msg(parse(&a, argv, 1, env, err) == 0, "%s: %s", files[i], err);
    }
}
END_TEST

Suite *args_suite(void)
{
    Suite *s = suite_create("args");
    TCase *t = tcase_create("args");
    tcase_add_unchecked_fixture(t, setup, NULL);
    tcase_add_test(t, defaults);
    tcase_add_test(t, precedence);
    tcase_add_test(t, config_from_env);
    tcase_add_test(t, flag_forms);
    tcase_add_test(t, errors);
    tcase_add_test(t, help);
    tcase_add_test(t, example_configs);
    suite_add_tcase(s, t);
    return s;
}
