/* tests/unit/check_ssm_dtype.c: --ssm-state-dtype float32|bfloat16 (and
 * vLLM's spelling --mamba-ssm-cache-dtype) from flags, environment and config
 * file (server/args.c), its validation, the CPU backend's refusal of bf16
 * state at startup (server/loader.c), and the slot size the memory plan uses
 * for each dtype (eng_slot_bytes; with CUDA, the same bytes the backend
 * allocates, eng_cuda_slot_bytes). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/engine.h"
#ifdef DS_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif
#include "engine/log.h"
#include "scheduler/sched.h"
#include "server/args.h"
#include "server/loader.h"

static int parse(struct srv_args *a, int argc, char **argv, char *const *env, char *err)
{
    return srv_args_parse(a, argc, argv, env, NULL, 0, NULL, true, err, 512);
}

START_TEST(test_dtype_values)
{
    struct srv_args a;
    char err[512];
    char *env0[] = {NULL};
    char *d[] = {"--model", "m"};
    ck_assert_int_eq(parse(&a, 2, d, env0, err), 0);
    ck_assert_str_eq(a.ssm_state_dtype, "float32"); /* default: fp32 state */
    ck_assert(!srv_args_ssm_bf16(&a));
    /* every accepted spelling, normalized */
    static const char *in[] = {"float32", "fp32", "auto", "bfloat16", "bf16"};
    static const char *out[] = {"float32", "float32", "float32", "bfloat16", "bfloat16"};
    for (int i = 0; i < 5; i++) {
        char *f[] = {"--model", "m", "--ssm-state-dtype", (char *)in[i]};
        ck_assert_int_eq(parse(&a, 4, f, env0, err), 0);
        ck_assert_str_eq(a.ssm_state_dtype, out[i]);
        ck_assert_int_eq(srv_args_ssm_bf16(&a), i >= 3);
        char val[64];
        snprintf(val, sizeof val, "--mamba-ssm-cache-dtype=%s", in[i]); /* vLLM's name */
        char *g[] = {"--model", "m", val};
        ck_assert_int_eq(parse(&a, 3, g, env0, err), 0);
        ck_assert_str_eq(a.ssm_state_dtype, out[i]);
    }
    /* a bad value: a clear error naming the flag and the choices */
    char *bad[] = {"--model", "m", "--ssm-state-dtype", "float16"};
    ck_assert_int_ne(parse(&a, 4, bad, env0, err), 0);
    ck_assert_msg(strstr(err, "--ssm-state-dtype") && strstr(err, "bfloat16") && strstr(err, "float16"), "%s",
                  err);
    char *bad2[] = {"--model", "m", "--mamba-ssm-cache-dtype", "half"};
    ck_assert_int_ne(parse(&a, 4, bad2, env0, err), 0);
    ck_assert_msg(strstr(err, "--mamba-ssm-cache-dtype") && strstr(err, "\"half\""), "%s", err);
    char *miss[] = {"--model", "m", "--ssm-state-dtype"};
    ck_assert_int_ne(parse(&a, 3, miss, env0, err), 0);
    ck_assert_msg(strstr(err, "needs a value"), "%s", err);
}
END_TEST

START_TEST(test_dtype_precedence)
{
    struct srv_args a;
    char err[512], dir[] = "/tmp/ds_ssmdt_XXXXXX", path[300], cfgarg[320];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/c.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"model\": \"m\", \"mamba_ssm_cache_dtype\": \"bfloat16\"}", f);
    fclose(f);
    snprintf(cfgarg, sizeof cfgarg, "--config=%s", path);
    char *env0[] = {NULL};
    /* config file alone */
    char *f1[] = {cfgarg};
    ck_assert_int_eq(parse(&a, 1, f1, env0, err), 0);
    ck_assert_str_eq(a.ssm_state_dtype, "bfloat16");
    /* the environment beats the file, in either spelling */
    char *env1[] = {"DELTASERVE_SSM_STATE_DTYPE=float32", NULL};
    ck_assert_int_eq(parse(&a, 1, f1, env1, err), 0);
    ck_assert_str_eq(a.ssm_state_dtype, "float32");
    char *env2[] = {"DELTASERVE_MAMBA_SSM_CACHE_DTYPE=bf16", NULL};
    char *f0[] = {"--model", "m"};
    ck_assert_int_eq(parse(&a, 2, f0, env2, err), 0);
    ck_assert_str_eq(a.ssm_state_dtype, "bfloat16");
    /* a flag beats both */
    char *f2[] = {cfgarg, "--ssm-state-dtype", "fp32"};
    ck_assert_int_eq(parse(&a, 3, f2, env2, err), 0);
    ck_assert_str_eq(a.ssm_state_dtype, "float32");
    /* a bad environment value names the variable */
    char *env3[] = {"DELTASERVE_SSM_STATE_DTYPE=int8", NULL};
    ck_assert_int_ne(parse(&a, 2, f0, env3, err), 0);
    ck_assert_msg(strstr(err, "DELTASERVE_SSM_STATE_DTYPE") && strstr(err, "int8"), "%s", err);
    /* a config file value of the wrong type */
    f = fopen(path, "w");
    fputs("{\"ssm-state-dtype\": 16}", f);
    fclose(f);
    ck_assert_int_ne(parse(&a, 3, (char *[]){cfgarg, "--model", "m"}, env0, err), 0);
    ck_assert_msg(strstr(err, "ssm-state-dtype") && strstr(err, "string"), "%s", err);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* The CPU backend has fp32 state only: bf16 is a startup error, not a
 * silent fp32 run (the bundled tiny model, --device cpu). */
START_TEST(test_dtype_cpu_refuses_bf16)
{
    log_set_level(LOG_LVL_ERROR);
    struct srv_args a;
    char err[512];
    char *env0[] = {NULL};
    char *f[] = {"--model", "models/olmo-hybrid-tiny", "--device", "cpu", "--ssm-state-dtype", "bf16"};
    ck_assert_int_eq(parse(&a, 6, f, env0, err), 0);
    struct srv_model m;
    ck_assert_int_ne(srv_model_load(&m, &a, NULL, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "--ssm-state-dtype bfloat16") && strstr(err, "float32 only"), "%s", err);
    /* float32 on the same model loads */
    char *g[] = {"--model", "models/olmo-hybrid-tiny", "--device", "cpu", "--ssm-state-dtype", "float32"};
    ck_assert_int_eq(parse(&a, 6, g, env0, err), 0);
    ck_assert_msg(srv_model_load(&m, &a, NULL, err, sizeof err) == 0, "%s", err);
    srv_model_unload(&m);
}
END_TEST

static void cfg_7b(struct cfg_model *c)
{
    static const char *j =
        "{\"model_type\":\"olmo_hybrid\",\"vocab_size\":100352,\"hidden_size\":3840,"
        "\"intermediate_size\":11008,\"num_hidden_layers\":32,\"num_attention_heads\":30,"
        "\"num_key_value_heads\":30,\"linear_num_key_heads\":30,\"linear_num_value_heads\":30,"
        "\"linear_key_head_dim\":96,\"linear_value_head_dim\":192,\"linear_conv_kernel_dim\":4,"
        "\"max_position_embeddings\":65536,\"rms_norm_eps\":1e-6,\"eos_token_id\":100257,"
        "\"pad_token_id\":100277,\"tie_word_embeddings\":false}";
    char err[256];
    ck_assert_msg(cfg_parse_json(c, j, strlen(j), err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c->num_gdn_layers, 24);
    ck_assert_int_eq(c->num_attn_layers, 8);
}

/* Slot bytes: the conv window stays fp32, only the SSM state halves. */
START_TEST(test_dtype_slot_bytes)
{
    struct cfg_model c;
    cfg_7b(&c);
    size_t conv = 3u * 11520u, ssm = 30u * 96u * 192u;
    ck_assert_uint_eq(eng_slot_bytes(&c, 4), 24u * (conv * 4 + ssm * 4)); /* 56.4 MB */
    ck_assert_uint_eq(eng_slot_bytes(&c, 2), 24u * (conv * 4 + ssm * 2)); /* 29.9 MB */
#ifdef DS_HAVE_CUDA
    /* the plan's figure is what the CUDA backend allocates per slot */
    ck_assert_uint_eq(eng_cuda_slot_bytes(&c, 0), eng_slot_bytes(&c, 4));
    ck_assert_uint_eq(eng_cuda_slot_bytes(&c, 1), eng_slot_bytes(&c, 2));
    ck_assert_uint_eq(eng_cuda_kv_block_bytes(&c, 16), eng_kv_block_bytes(&c, 16, 2));
#endif
    /* the plan: same budget, bf16 state -> smaller slots, at least as many
     * slots and at least as much KV */
    struct sched_memplan p4, p2;
    char err[256];
    size_t budget = (size_t)20 << 30;
    ck_assert_int_eq(sched_memplan_compute(&c, budget, 16, 32768, 256, 2, 4, &p4, err, sizeof err), 0);
    ck_assert_int_eq(sched_memplan_compute(&c, budget, 16, 32768, 256, 2, 2, &p2, err, sizeof err), 0);
    ck_assert_uint_eq(p2.slot_bytes, eng_slot_bytes(&c, 2));
    ck_assert_int_ge(p2.num_state_slots, p4.num_state_slots);
    ck_assert_int_ge(p2.num_kv_blocks, p4.num_kv_blocks);
    ck_assert_int_gt(p2.num_state_slots + p2.num_kv_blocks, p4.num_state_slots + p4.num_kv_blocks);
    ck_assert_uint_le(p2.used_bytes, budget);
    printf("  20 GiB at 7B/32768: fp32 state %d slots %d blocks; bf16 state %d slots %d blocks\n",
           p4.num_state_slots, p4.num_kv_blocks, p2.num_state_slots, p2.num_kv_blocks);
}
END_TEST

Suite *ssm_dtype_suite(void)
{
    Suite *s = suite_create("ssm_dtype");
    TCase *tc = tcase_create("ssm_dtype");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_dtype_values);
    tcase_add_test(tc, test_dtype_precedence);
    tcase_add_test(tc, test_dtype_cpu_refuses_bf16);
    tcase_add_test(tc, test_dtype_slot_bytes);
    suite_add_tcase(s, tc);
    return s;
}
