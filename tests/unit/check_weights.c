/* tests/unit/check_weights.c: binding checkpoint tensors to roles: every name
 * variant (fused/split conv, both norm spellings, tied head), sharded sets,
 * and every way a checkpoint can be wrong (missing, extra, mis-shaped, double
 * spelled, bad split conv). Tiny random checkpoints are written in the test by
 * tests/unit/util_st_writer.c.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/weights.h"
#include "tests/unit/util_st_writer.h"

/* 4 layers (GDN, attn, GDN, attn), GQA 4/2 heads, GDN 2 key / 4 value heads
 * with uneven dims, so every shape differs from every other. */
static const char *CFG_JSON =
    "{\"model_type\":\"olmo_hybrid\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
    "\"num_hidden_layers\":4,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
    "\"linear_num_key_heads\":2,\"linear_num_value_heads\":4,\"linear_key_head_dim\":6,"
    "\"linear_value_head_dim\":5,\"linear_conv_kernel_dim\":4,"
    "\"layer_types\":[\"linear_attention\",\"full_attention\",\"linear_attention\",\"full_attention\"],"
    "\"tie_word_embeddings\":%s}";

static char tmp[256];
static struct cfg_model cfg;

static void make_cfg(int tied)
{
    char json[1024], err[256];
    snprintf(json, sizeof json, CFG_JSON, tied ? "true" : "false");
    ck_assert_msg(cfg_parse_json(&cfg, json, strlen(json), err, sizeof err) == 0, "%s", err);
}

static void setup(void)
{
    ck_assert(stw_tmpdir(tmp, sizeof tmp) != NULL);
    make_cfg(0);
}

static void teardown(void)
{
    stw_rmtree(tmp);
}

static struct stw *model(unsigned flags, enum st_dtype dt)
{
    struct stw *w = stw_create();
    ck_assert_int_eq(stw_add_model(w, &cfg, dt, flags, 7), 0);
    return w;
}

static void save(struct stw *w)
{
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    ck_assert_int_eq(stw_write(w, p, "{\"format\":\"pt\"}"), 0);
    stw_destroy(w);
}

static void load_ok(struct eng_weights *ew)
{
    char err[1024];
    ck_assert_msg(eng_weights_load(ew, &cfg, tmp, err, sizeof err) == 0, "%s", err);
}

static void load_fails(const char *want)
{
    struct eng_weights ew;
    char err[1024] = "";
    ck_assert_msg(eng_weights_load(&ew, &cfg, tmp, err, sizeof err) == -1, "accepted (wanted '%s')", want);
    ck_assert_msg(strstr(err, want) != NULL, "'%s' lacks '%s'", err, want);
    ck_assert(ew.layers == NULL && ew.st.nfiles == 0);
}

static void check_2d(const struct eng_tensor *t, int64_t a, int64_t b)
{
    ck_assert_msg(t->data != NULL, "unbound tensor");
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], a);
    ck_assert_int_eq(t->shape[1], b);
    ck_assert_int_eq(t->numel, a * b);
}

static void check_1d(const struct eng_tensor *t, int64_t a)
{
    ck_assert_msg(t->data != NULL, "unbound tensor");
    ck_assert_int_eq(t->ndim, 1);
    ck_assert_int_eq(t->shape[0], a);
}

/* Every role bound with the config's shapes. */
static void check_all_roles(const struct eng_weights *w)
{
    const int64_t C = 16, F = 24, V = 40, QD = 4 * 4, KVD = 2 * 4, KD = 12, VD = 20, CD = 2 * KD + VD;
    check_2d(&w->embed, V, C);
    check_2d(&w->lm_head, V, C);
    check_1d(&w->final_norm, C);
    ck_assert_int_eq(w->num_layers, 4);
    for (int i = 0; i < 4; i++) {
        const struct eng_layer_weights *l = &w->layers[i];
        ck_assert_int_eq(l->is_attn, i % 2);
        if (l->is_attn) {
            check_2d(&l->wq, QD, C);
            check_2d(&l->wk, KVD, C);
            check_2d(&l->wv, KVD, C);
            check_2d(&l->wo, C, QD);
            check_1d(&l->q_norm, QD);
            check_1d(&l->k_norm, KVD);
            check_1d(&l->post_attn_norm, C);
            check_1d(&l->post_ffn_norm, C);
            ck_assert(l->gq.data == NULL && l->conv.data == NULL && l->in_norm.data == NULL);
        } else {
            check_2d(&l->gq, KD, C);
            check_2d(&l->gk, KD, C);
            check_2d(&l->gv, VD, C);
            check_2d(&l->gg, VD, C);
            check_2d(&l->ga, 4, C);
            check_2d(&l->gb, 4, C);
            check_2d(&l->go, C, VD);
            check_2d(&l->conv, CD, 4);
            check_1d(&l->A_log, 4);
            check_1d(&l->dt_bias, 4);
            check_1d(&l->o_norm, 5);
            check_1d(&l->in_norm, C);
            check_1d(&l->post_attn_norm, C);
            ck_assert(l->wq.data == NULL && l->post_ffn_norm.data == NULL);
        }
        check_2d(&l->w_gate, F, C);
        check_2d(&l->w_up, F, C);
        check_2d(&l->w_down, C, F);
    }
}

/* ---------------------------------------------------------------- good */

START_TEST(test_fused_bf16)
{
    save(model(0, ST_BF16));
    struct eng_weights w;
    load_ok(&w);
    check_all_roles(&w);
    ck_assert_str_eq(w.conv_variant, "fused");
    ck_assert_str_eq(w.norm_variant, "input/post_attention_layernorm");
    ck_assert_int_eq(w.embed.dtype, ST_BF16);
    ck_assert(w.lm_head.data != w.embed.data);
    ck_assert_str_eq(w.layers[0].in_norm.name, "model.layers.0.input_layernorm.weight");
    ck_assert_str_eq(w.layers[1].post_attn_norm.name, "model.layers.1.post_attention_layernorm.weight");
    ck_assert(w.layers[0].conv.owned == NULL); /* a view into the mmap */
    /* conversion matches the file */
    const struct st_tensor *t = st_set_find(&w.st, "model.layers.1.self_attn.q_proj.weight");
    float *a = malloc(sizeof(float) * (size_t)t->numel);
    eng_tensor_to_f32(&w.layers[1].wq, a);
    for (int64_t i = 0; i < t->numel; i++) ck_assert(a[i] == st_get_f32(t, i));
    free(a);
    eng_weights_free(&w);
    eng_weights_free(&w); /* safe twice */
}
END_TEST

START_TEST(test_f32_f16_and_conv2d)
{
    save(model(STW_CONV_2D, ST_F32));
    struct eng_weights w;
    load_ok(&w);
    check_all_roles(&w);
    ck_assert_int_eq(w.layers[2].conv.dtype, ST_F32);
    eng_weights_free(&w);
    save(model(0, ST_F16));
    load_ok(&w);
    check_all_roles(&w);
    ck_assert_int_eq(w.layers[3].w_down.dtype, ST_F16);
    eng_weights_free(&w);
}
END_TEST

START_TEST(test_split_conv_alt_norms)
{
    struct stw *sw = model(STW_SPLIT_CONV | STW_ALT_NORMS, ST_BF16);
    save(sw);
    struct eng_weights w;
    load_ok(&w);
    check_all_roles(&w);
    ck_assert_str_eq(w.conv_variant, "split");
    ck_assert_str_eq(w.norm_variant, "attention/feedforward_layer_norm");
    ck_assert_str_eq(w.layers[0].in_norm.name, "model.layers.0.attention_layer_norm.weight");
    ck_assert_str_eq(w.layers[0].post_attn_norm.name, "model.layers.0.feedforward_layer_norm.weight");
    ck_assert_str_eq(w.layers[1].post_attn_norm.name, "model.layers.1.feedforward_layer_norm.weight");
    ck_assert_str_eq(w.layers[1].post_ffn_norm.name, "model.layers.1.post_feedforward_layernorm.weight");
    /* the assembled conv is q, k, v rows in order, uneven parts (15/15/14 of 44) */
    const struct eng_tensor *cv = &w.layers[2].conv;
    ck_assert(cv->owned != NULL && cv->data == cv->owned);
    const char *pn[3] = { "q", "k", "v" };
    int64_t row = 0, sizes[3];
    for (int p = 0; p < 3; p++) {
        char nm[128];
        snprintf(nm, sizeof nm, "model.layers.2.linear_attn.%s_conv1d.weight", pn[p]);
        const struct st_tensor *t = st_set_find(&w.st, nm);
        ck_assert(t != NULL);
        sizes[p] = t->shape[0];
        ck_assert_int_eq(memcmp((const char *)cv->data + row * 4 * 2, t->data, t->nbytes), 0);
        row += t->shape[0];
    }
    ck_assert_int_eq(row, 44);
    ck_assert(sizes[0] != sizes[2]);
    eng_weights_free(&w);
}
END_TEST

START_TEST(test_tied)
{
    make_cfg(1);
    save(model(STW_NO_LM_HEAD, ST_BF16));
    struct eng_weights w;
    load_ok(&w);
    check_all_roles(&w);
    ck_assert(w.lm_head.data == w.embed.data);
    ck_assert(w.lm_head.owned == NULL);
    eng_weights_free(&w);
    /* tied with a stray lm_head.weight: the embedding wins, like transformers */
    save(model(0, ST_BF16));
    load_ok(&w);
    ck_assert(w.lm_head.data == w.embed.data);
    eng_weights_free(&w);
}
END_TEST

START_TEST(test_untied_missing_head)
{
    save(model(STW_NO_LM_HEAD, ST_BF16));
    load_fails("lm_head.weight");
}
END_TEST

START_TEST(test_sharded)
{
    struct stw *sw = model(STW_SPLIT_CONV, ST_BF16);
    ck_assert_int_eq(stw_write_sharded(sw, tmp, 3), 0);
    stw_destroy(sw);
    struct eng_weights w;
    load_ok(&w);
    ck_assert_int_eq(w.st.nfiles, 3);
    check_all_roles(&w);
    eng_weights_free(&w);
}
END_TEST

START_TEST(test_inv_freq_ignored)
{
    struct stw *sw = model(0, ST_BF16);
    float v[2] = { 1, 2 };
    ck_assert_int_eq(stw_add_f32(sw, "model.layers.1.self_attn.rotary_emb.inv_freq", ST_F32, 1, (int64_t[]){ 2 }, v), 0);
    save(sw);
    struct eng_weights w;
    load_ok(&w);
    eng_weights_free(&w);
}
END_TEST

/* ---------------------------------------------------------------- bad */

static const char *const role_names[] = {
    "model.embed_tokens.weight",
    "model.norm.weight",
    "lm_head.weight",
    "model.layers.0.linear_attn.q_proj.weight",
    "model.layers.0.linear_attn.k_proj.weight",
    "model.layers.0.linear_attn.v_proj.weight",
    "model.layers.0.linear_attn.g_proj.weight",
    "model.layers.0.linear_attn.a_proj.weight",
    "model.layers.0.linear_attn.b_proj.weight",
    "model.layers.0.linear_attn.o_proj.weight",
    "model.layers.0.linear_attn.A_log",
    "model.layers.0.linear_attn.dt_bias",
    "model.layers.0.linear_attn.o_norm.weight",
    "model.layers.2.linear_attn.conv1d.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.2.post_attention_layernorm.weight",
    "model.layers.1.self_attn.q_proj.weight",
    "model.layers.1.self_attn.k_proj.weight",
    "model.layers.1.self_attn.v_proj.weight",
    "model.layers.3.self_attn.o_proj.weight",
    "model.layers.1.self_attn.q_norm.weight",
    "model.layers.1.self_attn.k_norm.weight",
    "model.layers.1.post_attention_layernorm.weight",
    "model.layers.3.post_feedforward_layernorm.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.3.mlp.down_proj.weight",
};
#define N_ROLES ((int)(sizeof role_names / sizeof *role_names))

START_TEST(test_missing_each)
{
    struct stw *sw = model(0, ST_BF16);
    ck_assert_int_eq(stw_remove(sw, role_names[_i]), 0);
    save(sw);
    load_fails(role_names[_i]);
    load_fails("missing tensor");
}
END_TEST

START_TEST(test_misshaped_each)
{
    struct stw *sw = model(0, ST_BF16);
    ck_assert_int_eq(stw_remove(sw, role_names[_i]), 0);
    float v[21] = { 0 };
    ck_assert_int_eq(stw_add_f32(sw, role_names[_i], ST_BF16, 2, (int64_t[]){ 3, 7 }, v), 0);
    save(sw);
    char want[256];
    snprintf(want, sizeof want, "tensor %s has shape [3, 7], expected", role_names[_i]);
    load_fails(want);
}
END_TEST

START_TEST(test_transposed)
{
    /* right numel, wrong orientation: o_proj as (VD, C) instead of (C, VD) */
    struct stw *sw = model(0, ST_BF16);
    const char *nm = "model.layers.0.linear_attn.o_proj.weight";
    ck_assert_int_eq(stw_remove(sw, nm), 0);
    float v[320] = { 0 };
    ck_assert_int_eq(stw_add_f32(sw, nm, ST_BF16, 2, (int64_t[]){ 20, 16 }, v), 0);
    save(sw);
    load_fails("has shape [20, 16], expected [16, 20]");
}
END_TEST

START_TEST(test_extra)
{
    struct stw *sw = model(0, ST_BF16);
    float v[4] = { 0 };
    ck_assert_int_eq(stw_add_f32(sw, "model.layers.0.self_attn.q_proj.weight", ST_BF16, 1, (int64_t[]){ 4 }, v), 0);
    save(sw);
    load_fails("unexpected tensor model.layers.0.self_attn.q_proj.weight");
    sw = model(0, ST_BF16);
    ck_assert_int_eq(stw_add_f32(sw, "model.layers.4.mlp.up_proj.weight", ST_BF16, 1, (int64_t[]){ 4 }, v), 0);
    save(sw);
    load_fails("unexpected tensor model.layers.4.mlp.up_proj.weight");
}
END_TEST

START_TEST(test_both_norm_names)
{
    struct stw *sw = model(0, ST_BF16);
    float v[16] = { 0 };
    ck_assert_int_eq(stw_add_f32(sw, "model.layers.0.attention_layer_norm.weight", ST_BF16, 1, (int64_t[]){ 16 }, v), 0);
    save(sw);
    load_fails("both model.layers.0.input_layernorm.weight and model.layers.0.attention_layer_norm.weight");
    /* attention layer: post_attention_layernorm and its saved name together */
    sw = model(0, ST_BF16);
    ck_assert_int_eq(stw_add_f32(sw, "model.layers.1.feedforward_layer_norm.weight", ST_BF16, 1, (int64_t[]){ 16 }, v), 0);
    save(sw);
    load_fails("both model.layers.1.post_attention_layernorm.weight and model.layers.1.feedforward_layer_norm.weight");
    /* transformers never writes attention_layer_norm in an attention layer
     * (it would load as input_layernorm, which those layers lack) */
    sw = model(0, ST_BF16);
    ck_assert_int_eq(stw_add_f32(sw, "model.layers.1.attention_layer_norm.weight", ST_BF16, 1, (int64_t[]){ 16 }, v), 0);
    save(sw);
    load_fails("unexpected tensor model.layers.1.attention_layer_norm.weight");
}
END_TEST

START_TEST(test_split_conv_bad)
{
    const char *q = "model.layers.0.linear_attn.q_conv1d.weight";
    const char *v = "model.layers.0.linear_attn.v_conv1d.weight";
    float z[64 * 4] = { 0 };
    /* a part missing */
    struct stw *sw = model(STW_SPLIT_CONV, ST_BF16);
    ck_assert_int_eq(stw_remove(sw, v), 0);
    save(sw);
    load_fails("missing tensor model.layers.0.linear_attn.v_conv1d.weight");
    /* wrong total: v has 13 channels instead of 14 */
    sw = model(STW_SPLIT_CONV, ST_BF16);
    ck_assert_int_eq(stw_remove(sw, v), 0);
    ck_assert_int_eq(stw_add_f32(sw, v, ST_BF16, 3, (int64_t[]){ 13, 1, 4 }, z), 0);
    save(sw);
    load_fails("43 channels in all, expected conv dim 44");
    /* wrong kernel size on one part */
    sw = model(STW_SPLIT_CONV, ST_BF16);
    ck_assert_int_eq(stw_remove(sw, q), 0);
    ck_assert_int_eq(stw_add_f32(sw, q, ST_BF16, 3, (int64_t[]){ 15, 1, 3 }, z), 0);
    save(sw);
    load_fails("tensor model.layers.0.linear_attn.q_conv1d.weight has shape [15, 1, 3]");
    /* mixed dtypes among parts */
    sw = model(STW_SPLIT_CONV, ST_BF16);
    ck_assert_int_eq(stw_remove(sw, q), 0);
    ck_assert_int_eq(stw_add_f32(sw, q, ST_F32, 3, (int64_t[]){ 15, 1, 4 }, z), 0);
    save(sw);
    load_fails("must share a dtype");
    /* fused and split both present */
    sw = model(0, ST_BF16);
    ck_assert_int_eq(stw_add_f32(sw, q, ST_BF16, 3, (int64_t[]){ 15, 1, 4 }, z), 0);
    save(sw);
    load_fails("both model.layers.0.linear_attn.conv1d.weight and split");
    /* fused with the wrong middle dim */
    sw = model(0, ST_BF16);
    const char *f = "model.layers.0.linear_attn.conv1d.weight";
    ck_assert_int_eq(stw_remove(sw, f), 0);
    ck_assert_int_eq(stw_add_f32(sw, f, ST_BF16, 3, (int64_t[]){ 44, 2, 2 }, z), 0);
    save(sw);
    load_fails("expected [44, 1, 4]");
}
END_TEST

START_TEST(test_config_mismatch)
{
    /* a checkpoint for other layer_types: layer 1 weights are GDN-named */
    save(model(0, ST_BF16));
    char json[1024], err[256];
    snprintf(json, sizeof json,
             "{\"model_type\":\"olmo_hybrid\",\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":24,"
             "\"num_hidden_layers\":4,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
             "\"linear_num_key_heads\":2,\"linear_num_value_heads\":4,\"linear_key_head_dim\":6,"
             "\"linear_value_head_dim\":5}");
    ck_assert_int_eq(cfg_parse_json(&cfg, json, strlen(json), err, sizeof err), 0); /* default: full only at 3 */
    load_fails("model.layers.1.");
    /* a bigger vocab than the checkpoint */
    make_cfg(0);
    cfg.vocab_size = 41;
    load_fails("tensor model.embed_tokens.weight has shape [40, 16], expected [41, 16]");
    /* no safetensors at all */
    stw_rmtree(tmp);
    ck_assert(stw_tmpdir(tmp, sizeof tmp) != NULL);
    make_cfg(0);
    load_fails("no model.safetensors");
}
END_TEST

/* Every HF-written checkpoint committed under tests/fixtures/models (made by
 * tools/make_fixtures.py with transformers) and the bundled default model must
 * load: the real-world check of the name variants. */
static int load_model_dir(const char *dir)
{
    char err[1024];
    struct cfg_model c;
    ck_assert_msg(cfg_load_dir(&c, dir, err, sizeof err) == 0, "%s", err);
    struct eng_weights w;
    ck_assert_msg(eng_weights_load(&w, &c, dir, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(w.num_layers, c.num_hidden_layers);
    if (c.tie_word_embeddings) ck_assert(w.lm_head.data == w.embed.data);
    eng_weights_free(&w);
    return 1;
}

START_TEST(test_committed_fixtures)
{
    int n = 0;
    DIR *d = opendir("tests/fixtures/models");
    if (d) {
        struct dirent *de;
        char path[512];
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "tests/fixtures/models/%s/config.json", de->d_name);
            FILE *f = fopen(path, "r");
            if (!f) continue;
            fclose(f);
            snprintf(path, sizeof path, "tests/fixtures/models/%s", de->d_name);
            n += load_model_dir(path);
        }
        closedir(d);
    }
    FILE *f = fopen("models/olmo-hybrid-tiny/config.json", "r");
    if (f) {
        fclose(f);
        n += load_model_dir("models/olmo-hybrid-tiny");
    }
    fprintf(stderr, "weights: %d committed model(s) loaded\n", n);
}
END_TEST

Suite *weights_suite(void)
{
    Suite *s = suite_create("weights");
    TCase *tc = tcase_create("variants");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fused_bf16);
    tcase_add_test(tc, test_f32_f16_and_conv2d);
    tcase_add_test(tc, test_split_conv_alt_norms);
    tcase_add_test(tc, test_tied);
    tcase_add_test(tc, test_untied_missing_head);
    tcase_add_test(tc, test_sharded);
    tcase_add_test(tc, test_inv_freq_ignored);
    tcase_add_test(tc, test_committed_fixtures);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_missing_each, 0, N_ROLES);
    tcase_add_loop_test(tc, test_misshaped_each, 0, N_ROLES);
    tcase_add_test(tc, test_transposed);
    tcase_add_test(tc, test_extra);
    tcase_add_test(tc, test_both_norm_names);
    tcase_add_test(tc, test_split_conv_bad);
    tcase_add_test(tc, test_config_mismatch);
    suite_add_tcase(s, tc);
    return s;
}
