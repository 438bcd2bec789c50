/* tests/unit/check_config.c: config.json / generation_config.json parsing:
 * every fixture variant in tests/fixtures/config and every bad-file class.
 * Runs in the Check runner (fork mode), from the repository root.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "tests/unit/util_st_writer.h"

#define FIX "tests/fixtures/config/"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void load_fixture(struct cfg_model *c, const char *name)
{
    char path[256], err[512];
    snprintf(path, sizeof path, FIX "%s", name);
    size_t len;
    char *text = slurp(path, &len);
    int rc = cfg_parse_json(c, text, len, err, sizeof err);
    free(text);
    ck_assert_msg(rc == 0, "%s: %s", name, err);
}

static int parse_str(struct cfg_model *c, const char *json, char *err, size_t errlen)
{
    return cfg_parse_json(c, json, strlen(json), err, errlen);
}

/* ---------------------------------------------------------------- good variants */

START_TEST(test_7b)
{
    struct cfg_model c;
    load_fixture(&c, "olmo_hybrid_7b.json");
    ck_assert_str_eq(c.model_type, "olmo_hybrid");
    ck_assert_int_eq(c.vocab_size, 100352);
    ck_assert_int_eq(c.hidden_size, 3840);
    ck_assert_int_eq(c.intermediate_size, 11008);
    ck_assert_int_eq(c.num_hidden_layers, 32);
    ck_assert_int_eq(c.num_attention_heads, 30);
    ck_assert_int_eq(c.num_key_value_heads, 30);
    ck_assert_int_eq(c.head_dim, 128);
    ck_assert_int_eq(c.linear_key_head_dim, 96);
    ck_assert_int_eq(c.linear_value_head_dim, 192);
    ck_assert_int_eq(cfg_gdn_conv_dim(&c), 2 * 30 * 96 + 30 * 192);
    ck_assert_int_eq(c.num_gdn_layers, 24);
    ck_assert_int_eq(c.num_attn_layers, 8);
    ck_assert(c.layer_types_given);
    for (int i = 0; i < 32; i++) ck_assert_int_eq(c.layer_types[i], i % 4 == 3 ? CFG_LAYER_FULL : CFG_LAYER_LINEAR);
    ck_assert(c.allow_neg_eigval);
    ck_assert(!c.tie_word_embeddings);
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_NONE);
    ck_assert_int_eq(c.num_eos, 1);
    ck_assert_int_eq(c.eos_ids[0], 100257);
    ck_assert_int_eq(c.pad_token_id, 100277);
    ck_assert_int_eq(c.bos_token_id, -1);
    ck_assert_double_eq_tol(c.rms_norm_eps, 1e-6, 1e-18);
    ck_assert_int_eq(c.max_position_embeddings, 65536);
    ck_assert(isnan(c.gen_temperature));
    ck_assert_int_eq(c.gen_top_k, -1);
    ck_assert_int_eq(c.gen_do_sample, -1);
    char d[256];
    cfg_rope_describe(&c, d, sizeof d);
    ck_assert_msg(strstr(d, "NoPE") != NULL, "%s", d);
}
END_TEST

START_TEST(test_rope_gqa_tied)
{
    struct cfg_model c;
    load_fixture(&c, "tiny_rope_gqa.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_DEFAULT);
    ck_assert_double_eq(c.rope.theta, 500000.0);
    ck_assert_str_eq(c.rope.source, "rope_parameters");
    ck_assert_int_eq(c.num_attention_heads, 8);
    ck_assert_int_eq(c.num_key_value_heads, 2);
    ck_assert_int_eq(c.head_dim, 8);
    ck_assert_int_eq(c.linear_num_key_heads, 2);
    ck_assert_int_eq(c.linear_num_value_heads, 4);
    ck_assert_int_eq(c.linear_key_head_dim, 16);
    ck_assert_int_eq(c.linear_value_head_dim, 24);
    ck_assert(!c.allow_neg_eigval);
    ck_assert(c.tie_word_embeddings);
    ck_assert_int_eq(c.num_eos, 2);
    ck_assert_int_eq(c.eos_ids[0], 100257);
    ck_assert_int_eq(c.eos_ids[1], 100265);
    ck_assert_int_eq(c.bos_token_id, 2);
    ck_assert_int_eq(c.pad_token_id, 1);
    ck_assert_int_eq(c.layer_types[0], CFG_LAYER_LINEAR);
    ck_assert_int_eq(c.layer_types[1], CFG_LAYER_FULL);
    ck_assert_int_eq(c.layer_types[3], CFG_LAYER_FULL);
    ck_assert_int_eq(c.num_attn_layers, 2);
    char d[256];
    cfg_rope_describe(&c, d, sizeof d);
    ck_assert_msg(strstr(d, "RoPE theta=500000") != NULL, "%s", d);
}
END_TEST

START_TEST(test_defaults)
{
    /* no head_dim, no kv heads, no linear dims, no layer_types, NoPE */
    struct cfg_model c;
    load_fixture(&c, "tiny_nope_defaults.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_NONE);
    ck_assert_int_eq(c.num_key_value_heads, 4);
    ck_assert_int_eq(c.head_dim, 10);
    /* int(0.75 * 40 / 3) = 10, value = 2 * key */
    ck_assert_int_eq(c.linear_key_head_dim, 10);
    ck_assert_int_eq(c.linear_value_head_dim, 20);
    ck_assert_int_eq(c.linear_conv_kernel_dim, 4);
    ck_assert(c.allow_neg_eigval);           /* HF default true */
    ck_assert(!c.tie_word_embeddings);        /* HF default false */
    ck_assert_int_eq(c.num_eos, 1);           /* class default eos 100257 */
    ck_assert_int_eq(c.eos_ids[0], 100257);
    ck_assert_int_eq(c.pad_token_id, 100277);
    ck_assert_int_eq(c.max_position_embeddings, 65536);
    ck_assert(!c.layer_types_given);
    /* 6 layers: full only at i = 3 */
    for (int i = 0; i < 6; i++) ck_assert_int_eq(c.layer_types[i], i == 3 ? CFG_LAYER_FULL : CFG_LAYER_LINEAR);
    ck_assert_int_eq(c.num_attn_layers, 1);
    ck_assert_int_eq(c.num_gdn_layers, 5);
}
END_TEST

START_TEST(test_default_layer_types_small)
{
    /* 3 layers: no i % 4 == 3, so the last layer becomes full */
    struct cfg_model c;
    load_fixture(&c, "legacy_rope_theta.json");
    ck_assert_int_eq(c.num_hidden_layers, 3);
    ck_assert_int_eq(c.layer_types[0], CFG_LAYER_LINEAR);
    ck_assert_int_eq(c.layer_types[1], CFG_LAYER_LINEAR);
    ck_assert_int_eq(c.layer_types[2], CFG_LAYER_FULL);
    /* 8 layers: full at 3 and 7 */
    load_fixture(&c, "missing_rope.json");
    for (int i = 0; i < 8; i++) ck_assert_int_eq(c.layer_types[i], (i == 3 || i == 7) ? CFG_LAYER_FULL : CFG_LAYER_LINEAR);
    /* default key dim truncates: int(0.75 * 50 / 4) = int(9.375) = 9 */
    char err[256];
    ck_assert_int_eq(parse_str(&c,
                               "{\"model_type\":\"olmo_hybrid\",\"hidden_size\":50,\"num_attention_heads\":5,"
                               "\"linear_num_key_heads\":4,\"linear_num_value_heads\":8,\"num_hidden_layers\":4}",
                               err, sizeof err),
                     0);
    ck_assert_int_eq(c.linear_key_head_dim, 9);
    ck_assert_int_eq(c.linear_value_head_dim, 18);
    ck_assert_int_eq(c.head_dim, 10);
    /* and the class defaults: 30 heads at 3840 -> 96 / 192 */
    ck_assert_int_eq(parse_str(&c, "{\"model_type\":\"olmo_hybrid\"}", err, sizeof err), 0);
    ck_assert_int_eq(c.hidden_size, 3840);
    ck_assert_int_eq(c.linear_key_head_dim, 96);
    ck_assert_int_eq(c.linear_value_head_dim, 192);
    ck_assert_int_eq(c.num_hidden_layers, 32);
    ck_assert_int_eq(c.num_attn_layers, 8);
}
END_TEST

START_TEST(test_legacy_rope_theta)
{
    struct cfg_model c;
    load_fixture(&c, "legacy_rope_theta.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_DEFAULT);
    ck_assert_double_eq(c.rope.theta, 1e6);
    ck_assert_str_eq(c.rope.source, "rope_theta");
}
END_TEST

START_TEST(test_missing_rope)
{
    struct cfg_model c;
    char d[256];
    load_fixture(&c, "missing_rope.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_DEFAULT);
    ck_assert_double_eq(c.rope.theta, 10000.0);
    ck_assert_str_eq(c.rope.source, "default");
    cfg_rope_describe(&c, d, sizeof d);
    ck_assert_msg(strstr(d, "10000") && strstr(d, "default"), "%s", d);
    load_fixture(&c, "null_rope_parameters.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_DEFAULT);
    ck_assert_double_eq(c.rope.theta, 10000.0);
    ck_assert_str_eq(c.rope.source, "default");
}
END_TEST

START_TEST(test_rope_precedence)
{
    struct cfg_model c;
    char err[256];
    /* what convert_olmo_hybrid_weights_to_hf writes for a NoPE model:
     * rope_parameters null and rope_theta null -> NoPE */
    ck_assert_int_eq(parse_str(&c, "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":null,\"rope_theta\":null}", err,
                               sizeof err),
                     0);
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_NONE);
    ck_assert_str_eq(c.rope.source, "rope_theta");
    /* a dict without rope_theta takes the legacy top-level one */
    ck_assert_int_eq(parse_str(&c,
                               "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_type\":\"linear\","
                               "\"factor\":2},\"rope_theta\":250000}",
                               err, sizeof err),
                     0);
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_LINEAR);
    ck_assert_double_eq(c.rope.theta, 250000);
    /* ... and 10000 when there is none anywhere */
    ck_assert_int_eq(parse_str(&c, "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_type\":\"default\"}}",
                               err, sizeof err),
                     0);
    ck_assert_double_eq(c.rope.theta, 10000);
    ck_assert_str_eq(c.rope.source, "default");
    /* rope_parameters wins over legacy rope_scaling and rope_theta */
    ck_assert_int_eq(parse_str(&c,
                               "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":1000},"
                               "\"rope_scaling\":{\"type\":\"linear\",\"factor\":4},\"rope_theta\":5}",
                               err, sizeof err),
                     0);
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_DEFAULT);
    ck_assert_double_eq(c.rope.theta, 1000);
    /* NoPE ignores the rest of the dict (even an unknown rope_type) */
    ck_assert_int_eq(parse_str(&c,
                               "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":null,"
                               "\"rope_type\":\"default\"}}",
                               err, sizeof err),
                     0);
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_NONE);
    /* yarn with mscale / mscale_all_dim (DeepSeek style) */
    ck_assert_int_eq(parse_str(&c,
                               "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":1e4,"
                               "\"rope_type\":\"yarn\",\"factor\":4,\"mscale\":0.707,\"mscale_all_dim\":0.707,"
                               "\"truncate\":false}}",
                               err, sizeof err),
                     0);
    ck_assert_double_eq_tol(cfg_rope_attention_factor(&c), 1.0, 1e-12);
    ck_assert(!c.rope.truncate);
    ck_assert_int_eq(parse_str(&c,
                               "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":1e4,"
                               "\"rope_type\":\"yarn\",\"factor\":4,\"attention_factor\":1.5}}",
                               err, sizeof err),
                     0);
    ck_assert_double_eq(cfg_rope_attention_factor(&c), 1.5);
    ck_assert(c.rope.truncate);
}
END_TEST

START_TEST(test_rope_yarn)
{
    struct cfg_model c;
    load_fixture(&c, "rope_yarn.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_YARN);
    ck_assert_double_eq(c.rope.theta, 500000.0);
    ck_assert_double_eq(c.rope.factor, 8.0);
    ck_assert_double_eq(c.rope.original_max_position, 4096);
    ck_assert_double_eq(c.rope.beta_fast, 16);
    ck_assert_double_eq(c.rope.beta_slow, 2);
    ck_assert_double_eq(c.rope.attention_factor, 0);
    /* transformers: 0.1 * ln(factor) + 1 */
    ck_assert_double_eq_tol(cfg_rope_attention_factor(&c), 0.1 * log(8.0) + 1.0, 1e-12);
    char d[256];
    cfg_rope_describe(&c, d, sizeof d);
    ck_assert_msg(strstr(d, "yarn") != NULL, "%s", d);
}
END_TEST

START_TEST(test_rope_llama3_linear_dynamic)
{
    struct cfg_model c;
    load_fixture(&c, "rope_llama3.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_LLAMA3);
    ck_assert_double_eq(c.rope.factor, 8.0);
    ck_assert_double_eq(c.rope.low_freq_factor, 1.0);
    ck_assert_double_eq(c.rope.high_freq_factor, 4.0);
    ck_assert_double_eq(c.rope.original_max_position, 8192);
    ck_assert_double_eq(cfg_rope_attention_factor(&c), 1.0);
    load_fixture(&c, "rope_linear.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_LINEAR);
    ck_assert_double_eq(c.rope.factor, 2.0);
    ck_assert_double_eq(c.rope.theta, 10000.0);
    ck_assert_str_eq(c.rope.source, "rope_parameters");
    load_fixture(&c, "legacy_rope_scaling_dynamic.json");
    ck_assert_int_eq(c.rope.mode, CFG_ROPE_DYNAMIC);
    ck_assert_double_eq(c.rope.factor, 4.0);
    ck_assert_double_eq(c.rope.theta, 20000.0);
    ck_assert_str_eq(c.rope.source, "rope_theta");
    ck_assert_double_eq(c.rope.original_max_position, 2048); /* falls back to max_position_embeddings */
}
END_TEST

START_TEST(test_eos_forms)
{
    struct cfg_model c;
    char err[256];
    ck_assert_int_eq(parse_str(&c, "{\"model_type\":\"olmo_hybrid\",\"eos_token_id\":7}", err, sizeof err), 0);
    ck_assert_int_eq(c.num_eos, 1);
    ck_assert_int_eq(c.eos_ids[0], 7);
    ck_assert_int_eq(parse_str(&c, "{\"model_type\":\"olmo_hybrid\",\"eos_token_id\":[7,9,7]}", err, sizeof err), 0);
    ck_assert_int_eq(c.num_eos, 2); /* duplicates collapse */
    ck_assert_int_eq(c.eos_ids[1], 9);
    ck_assert_int_eq(parse_str(&c, "{\"model_type\":\"olmo_hybrid\",\"eos_token_id\":null}", err, sizeof err), 0);
    ck_assert_int_eq(c.num_eos, 0);
    ck_assert_int_eq(parse_str(&c, "{\"model_type\":\"olmo_hybrid\",\"eos_token_id\":[]}", err, sizeof err), 0);
    ck_assert_int_eq(c.num_eos, 0);
}
END_TEST

START_TEST(test_head_dim_alias_and_explicit)
{
    struct cfg_model c;
    char err[256];
    ck_assert_int_eq(parse_str(&c,
                               "{\"model_type\":\"olmo_hybrid\",\"hidden_size\":64,\"num_attention_heads\":4,"
                               "\"head_dim\":32,\"allow_neg_eigval\":false}",
                               err, sizeof err),
                     0);
    ck_assert_int_eq(c.head_dim, 32);
    ck_assert(!c.allow_neg_eigval);
    /* linear_allow_neg_eigval wins over the alias */
    ck_assert_int_eq(parse_str(&c,
                               "{\"model_type\":\"olmo_hybrid\",\"allow_neg_eigval\":false,"
                               "\"linear_allow_neg_eigval\":true}",
                               err, sizeof err),
                     0);
    ck_assert(c.allow_neg_eigval);
}
END_TEST

/* ---------------------------------------------------------------- bad files */

#define OK_BASE "\"model_type\":\"olmo_hybrid\",\"vocab_size\":64,\"hidden_size\":32,\"intermediate_size\":48"
#define OK_BASE4 OK_BASE ",\"num_attention_heads\":4"

static const struct bad_case {
    const char *json;
    const char *want; /* substring of the error */
} bad_cases[] = {
    { "{\"model_type\":\"olmo_hybrid\",", "not valid JSON" },
    { "", "not valid JSON" },
    { "[1,2]", "top level" },
    { "{\"model_type\":\"llama\"}", "unsupported model_type 'llama' (deltaserve serves olmo_hybrid)" },
    { "{\"model_type\":\"qwen3_next\",\"hidden_size\":8}", "unsupported model_type 'qwen3_next'" },
    { "{\"hidden_size\":8}", "model_type" },
    { "{\"model_type\":7}", "model_type: expected a string" },
    { "{\"model_type\":\"olmo_hybrid\",\"hidden_size\":\"32\"}", "hidden_size: expected an integer, got a string" },
    { "{\"model_type\":\"olmo_hybrid\",\"hidden_size\":-32}", "hidden_size" },
    { "{\"model_type\":\"olmo_hybrid\",\"hidden_size\":0}", "hidden_size" },
    { "{\"model_type\":\"olmo_hybrid\",\"vocab_size\":-1}", "vocab_size" },
    { "{\"model_type\":\"olmo_hybrid\",\"num_hidden_layers\":3.5}", "num_hidden_layers" },
    { "{\"model_type\":\"olmo_hybrid\",\"num_hidden_layers\":1e300}", "num_hidden_layers" },
    { "{\"model_type\":\"olmo_hybrid\",\"num_hidden_layers\":257}", "num_hidden_layers" },
    { "{\"model_type\":\"olmo_hybrid\",\"intermediate_size\":[1]}", "intermediate_size: expected an integer, got a list" },
    { "{\"model_type\":\"olmo_hybrid\",\"tie_word_embeddings\":\"yes\"}", "tie_word_embeddings: expected true or false" },
    { "{\"model_type\":\"olmo_hybrid\",\"tie_word_embeddings\":1}", "tie_word_embeddings" },
    { "{\"model_type\":\"olmo_hybrid\",\"rms_norm_eps\":\"1e-6\"}", "rms_norm_eps" },
    { "{\"model_type\":\"olmo_hybrid\",\"rms_norm_eps\":-1}", "rms_norm_eps" },
    { "{\"model_type\":\"olmo_hybrid\",\"linear_allow_neg_eigval\":\"true\"}", "linear_allow_neg_eigval" },
    { "{\"model_type\":\"olmo_hybrid\",\"eos_token_id\":\"2\"}", "eos_token_id" },
    { "{\"model_type\":\"olmo_hybrid\",\"eos_token_id\":[1,\"x\"]}", "eos_token_id[1]" },
    { "{\"model_type\":\"olmo_hybrid\",\"eos_token_id\":-5}", "eos_token_id" },
    { "{\"model_type\":\"olmo_hybrid\",\"pad_token_id\":1.5}", "pad_token_id" },
    { "{" OK_BASE4 ",\"num_hidden_layers\":4,\"layer_types\":[\"linear_attention\",\"full_attention\"]}",
      "layer_types: has 2 entries but num_hidden_layers is 4" },
    { "{" OK_BASE4 ",\"num_hidden_layers\":2,\"layer_types\":[\"linear_attention\",\"sliding_attention\"]}",
      "layer_types[1]: unknown layer type 'sliding_attention'" },
    { "{" OK_BASE4 ",\"num_hidden_layers\":2,\"layer_types\":[\"linear_attention\",3]}", "layer_types[1]: expected a string" },
    { "{" OK_BASE4 ",\"num_hidden_layers\":2,\"layer_types\":\"full_attention\"}", "layer_types: expected a list" },
    { "{" OK_BASE4 ",\"num_hidden_layers\":2,\"layer_types\":[\"linear_attention\",\"linear_attention\"]}",
      "full_attention" },
    { "{" OK_BASE4 ",\"num_hidden_layers\":2,\"layer_types\":[\"full_attention\",\"full_attention\"]}",
      "linear_attention" },
    { "{" OK_BASE4 ",\"num_hidden_layers\":1}", "linear_attention" }, /* default makes the only layer full */
    { "{" OK_BASE ",\"num_hidden_layers\":4,\"num_attention_heads\":4,\"linear_num_key_heads\":4,"
      "\"linear_num_value_heads\":6}",
      "linear_num_value_heads: 6 is not a multiple of linear_num_key_heads 4" },
    { "{" OK_BASE ",\"num_hidden_layers\":4,\"num_attention_heads\":4,\"num_key_value_heads\":3}", "num_key_value_heads" },
    { "{" OK_BASE ",\"num_hidden_layers\":4,\"num_attention_heads\":64}", "num_attention_heads" },
    { "{" OK_BASE ",\"num_hidden_layers\":4,\"num_attention_heads\":4,\"linear_num_key_heads\":64}",
      "linear_num_key_heads" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":\"big\"}}", "rope_parameters.rope_theta" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":-1}}", "rope_parameters.rope_theta" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":[1]}", "rope_parameters: expected an object" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":1e4,\"rope_type\":\"longrope\"}}",
      "rope_type: unsupported 'longrope'" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":1e4,\"rope_type\":\"yarn\"}}",
      "rope_parameters.factor: required" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":1e4,\"rope_type\":\"yarn\",\"factor\":\"4\"}}",
      "rope_parameters.factor" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":1e4,\"rope_type\":\"llama3\",\"factor\":8,"
      "\"low_freq_factor\":1}}",
      "high_freq_factor: required" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_parameters\":{\"rope_theta\":1e4,\"partial_rotary_factor\":0.5}}",
      "partial_rotary_factor" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_theta\":\"x\"}", "rope_theta" },
    { "{\"model_type\":\"olmo_hybrid\",\"rope_scaling\":7}", "rope_scaling" },
    { "{\"model_type\":\"olmo_hybrid\",\"hidden_act\":\"gelu\"}", "hidden_act" },
    { "{\"model_type\":\"olmo_hybrid\",\"attention_bias\":true}", "attention_bias" },
    { "{\"model_type\":\"olmo_hybrid\",\"quantization_config\":{\"quant_method\":\"fp8\"}}", "quantization_config" },
    { "{\"model_type\":\"olmo_hybrid\",\"linear_conv_kernel_dim\":0}", "linear_conv_kernel_dim" },
    { "{\"model_type\":\"olmo_hybrid\",\"head_dim\":-4}", "head_dim" },
};

START_TEST(test_bad)
{
    const struct bad_case *bc = &bad_cases[_i];
    struct cfg_model c;
    char err[512] = "";
    int rc = parse_str(&c, bc->json, err, sizeof err);
    ck_assert_msg(rc == -1, "case %d accepted: %s", _i, bc->json);
    ck_assert_msg(strstr(err, bc->want) != NULL, "case %d: error '%s' lacks '%s'", _i, err, bc->want);
}
END_TEST

START_TEST(test_bad_length_not_terminated)
{
    /* the parser honours len: a valid prefix with garbage after it is cut */
    const char *s = "{\"model_type\":\"olmo_hybrid\"}GARBAGE";
    struct cfg_model c;
    char err[256];
    ck_assert_int_eq(cfg_parse_json(&c, s, 28, err, sizeof err), 0);
    ck_assert_int_eq(cfg_parse_json(&c, s, 20, err, sizeof err), -1);
}
END_TEST

/* ---------------------------------------------------------------- generation_config + dirs */

START_TEST(test_generation)
{
    struct cfg_model c;
    load_fixture(&c, "tiny_nope_defaults.json"); /* eos 100257 */
    size_t len;
    char *g = slurp(FIX "generation_config.json", &len);
    char err[256];
    ck_assert_int_eq(cfg_parse_generation(&c, g, len, err, sizeof err), 0);
    free(g);
    ck_assert_int_eq(c.num_eos, 2);
    ck_assert_int_eq(c.eos_ids[0], 100257);
    ck_assert_int_eq(c.eos_ids[1], 100265);
    ck_assert_double_eq(c.gen_temperature, 0.6);
    ck_assert_double_eq(c.gen_top_p, 0.95);
    ck_assert_int_eq(c.gen_top_k, 50);
    ck_assert_double_eq(c.gen_repetition_penalty, 1.1);
    ck_assert_int_eq(c.gen_max_new_tokens, 512);
    ck_assert_int_eq(c.gen_do_sample, 1);
    /* int eos, unioned */
    ck_assert_int_eq(cfg_parse_generation(&c, "{\"eos_token_id\":5}", 18, err, sizeof err), 0);
    ck_assert_int_eq(c.num_eos, 3);
    ck_assert_int_eq(c.eos_ids[2], 5);
}
END_TEST

START_TEST(test_generation_bad)
{
    static const char *bad[] = {
        "{\"temperature\":\"hot\"}", "{\"top_k\":1.5}",          "{\"top_p\":2}",
        "{\"eos_token_id\":{}}",     "{\"max_new_tokens\":-1}",  "{\"repetition_penalty\":0}",
        "{\"do_sample\":\"yes\"}", "nope",                      "[]",
    };
    static const char *want[] = { "temperature", "top_k", "top_p", "eos_token_id", "max_new_tokens",
                                  "repetition_penalty", "do_sample", "JSON", "object" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct cfg_model c;
        load_fixture(&c, "missing_rope.json");
        struct cfg_model before = c;
        char err[256] = "";
        ck_assert_int_eq(cfg_parse_generation(&c, bad[i], strlen(bad[i]), err, sizeof err), -1);
        ck_assert_msg(strstr(err, want[i]) != NULL, "'%s' -> '%s'", bad[i], err);
        ck_assert_int_eq(c.num_eos, before.num_eos); /* unchanged on failure */
    }
}
END_TEST

START_TEST(test_load_dir)
{
    char dir[256], err[512];
    ck_assert(stw_tmpdir(dir, sizeof dir) != NULL);
    struct cfg_model c;
    ck_assert_int_eq(cfg_load_dir(&c, dir, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "config.json") && strstr(err, "not found"), "%s", err);
    ck_assert_int_eq(stw_write_text(dir, "config.json", "{\"model_type\":\"olmo_hybrid\",\"eos_token_id\":3}"), 0);
    ck_assert_int_eq(cfg_load_dir(&c, dir, err, sizeof err), 0);
    ck_assert_int_eq(c.num_eos, 1);
    ck_assert_int_eq(stw_write_text(dir, "generation_config.json", "{\"eos_token_id\":[3,4],\"top_k\":20}"), 0);
    ck_assert_int_eq(cfg_load_dir(&c, dir, err, sizeof err), 0);
    ck_assert_int_eq(c.num_eos, 2);
    ck_assert_int_eq(c.gen_top_k, 20);
    ck_assert_int_eq(stw_write_text(dir, "generation_config.json", "{\"top_k\":\"x\"}"), 0);
    ck_assert_int_eq(cfg_load_dir(&c, dir, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "generation_config.json") && strstr(err, "top_k"), "%s", err);
    ck_assert_int_eq(stw_write_text(dir, "config.json", "{\"model_type\":\"mamba\"}"), 0);
    ck_assert_int_eq(cfg_load_dir(&c, dir, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "config.json: unsupported model_type 'mamba'"), "%s", err);
    stw_rmtree(dir);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("good");
    tcase_add_test(tc, test_7b);
    tcase_add_test(tc, test_rope_gqa_tied);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_default_layer_types_small);
    tcase_add_test(tc, test_legacy_rope_theta);
    tcase_add_test(tc, test_missing_rope);
    tcase_add_test(tc, test_rope_precedence);
    tcase_add_test(tc, test_rope_yarn);
    tcase_add_test(tc, test_rope_llama3_linear_dynamic);
    tcase_add_test(tc, test_eos_forms);
    tcase_add_test(tc, test_head_dim_alias_and_explicit);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad");
    tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof bad_cases / sizeof *bad_cases));
    tcase_add_test(tc, test_bad_length_not_terminated);
    suite_add_tcase(s, tc);
    tc = tcase_create("generation");
    tcase_add_test(tc, test_generation);
    tcase_add_test(tc, test_generation_bad);
    tcase_add_test(tc, test_load_dir);
    suite_add_tcase(s, tc);
    return s;
}
