/* tests/unit/check_memplan.c: the startup memory plan (scheduler/memplan.c)
 * at the released 7B shapes (MODEL.md: 32 layers, 24 GDN + 8 attention,
 * hidden 3840, 30 heads, GDN key dim 96, value dim 192, vocab 100352) on an
 * 80 GB H100 (79.1 GiB, --gpu-memory-utilization 0.9) at --max-model-len
 * 32768: issue 6 asks for at least 64 concurrent sequences. Also the banner's
 * "maximum concurrency" figure and the general rule's bounds (slots at most
 * half the budget, one full-length sequence always fits). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/config.h"
#include "engine/engine.h"
#ifdef DS_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif
#include "scheduler/sched.h"

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

/* Device bytes in use before the plan on an 80 GB H100 serving the 7B with
 * the server's defaults: weights + step workspace (the backend's own figures
 * when built with CUDA) + 1 GiB for the CUDA context, cuBLAS and graphs. */
static size_t h100_used(const struct cfg_model *c, int max_len)
{
#ifdef DS_HAVE_CUDA
    struct eng_cuda_options o;
    eng_cuda_default_options(&o);
    o.max_tokens = 2048; /* --max-num-batched-tokens default */
    o.max_seqs = 256;    /* --max-num-seqs default */
    o.max_blocks_per_seq = (max_len + 15) / 16;
    size_t w = eng_cuda_weight_bytes(c), ws = eng_cuda_workspace_bytes(c, &o);
    ck_assert_uint_gt(w, (size_t)14800000000u); /* 7.43B params in bf16: 14.9 GB */
    ck_assert_uint_lt(w, (size_t)15000000000u);
    return w + ws + ((size_t)1 << 30);
#else
    (void)c;
    (void)max_len;
    return (size_t)14900000000u + ((size_t)3 << 30);
#endif
}

#define GIB(x) ((size_t)((x) * 1073741824.0))

START_TEST(test_memplan_7b_h100)
{
    struct cfg_model c;
    cfg_7b(&c);
    size_t total = GIB(79.1);
    size_t used = h100_used(&c, 32768);
    size_t budget = sched_memplan_gpu_budget(total, used, 0.9);
    struct sched_memplan p;
    char err[256], line[512];
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        ck_assert_int_eq(sched_memplan_compute(&c, budget, 16, 32768, 256, 2, bf16 ? 2 : 4, &p, err,
                                               sizeof err),
                         0);
        long long kv_tokens = (long long)p.num_kv_blocks * p.block_size;
        double conc = sched_memplan_max_concurrency(&p);
        sched_memplan_describe(&p, line, sizeof line);
        printf("  7B, 80 GB H100, 0.9, 32768, %s state: budget %.1f GiB; %d state slots (%.1f GiB), "
               "KV %d blocks = %lld tokens (%.1f GiB); %.2fx at full length\n  %s\n",
               bf16 ? "bf16" : "fp32", budget / 1073741824.0, p.num_state_slots,
               (double)p.num_state_slots * p.slot_bytes / 1073741824.0, p.num_kv_blocks, kv_tokens,
               (double)p.num_kv_blocks * p.kv_block_bytes / 1073741824.0, conc, line);
        /* issue 6: at least 64 concurrent sequences */
        ck_assert_int_ge(p.num_state_slots, 64);
        ck_assert_int_eq(p.num_state_slots, 256); /* --max-num-seqs, the default */
        /* and KV for them: 64 sequences of 4k tokens each at once, and more
         * than ten of full length */
        ck_assert_int_ge(kv_tokens, 64LL * 4096);
        ck_assert(conc >= 10.0);
        ck_assert(fabs(conc - (double)kv_tokens / 32768.0) < 1e-9);
        ck_assert_int_eq(p.max_seqs_at_max_len, (int)(p.num_kv_blocks / 2048));
        ck_assert_uint_le(p.used_bytes, budget);
        ck_assert_uint_le(p.num_state_slots * p.slot_bytes, budget / 2);
        char want[96];
        snprintf(want, sizeof want, "maximum concurrency for 32768 tokens per request: %.2fx", conc);
        ck_assert_msg(strstr(line, want) != NULL, "%s", line);
    }
    /* speculation's slots (k = 4 for every one of the 64 first sequences)
     * still leave 64 running sequences and over ten full-length ones */
    ck_assert_int_eq(sched_memplan_compute(&c, budget, 16, 32768, 256, 2, 4, &p, err, sizeof err), 0);
    int n = sched_memplan_add_spec(&p, 4, 64, err, sizeof err);
    ck_assert_int_gt(n, 0);
    printf("  + speculation k=4: %d verifying sequences (%d spec slots), KV %d blocks, %.2fx\n", n,
           p.num_spec_slots, p.num_kv_blocks, sched_memplan_max_concurrency(&p));
    ck_assert_int_ge(p.num_state_slots - p.num_spec_slots, 64);
    ck_assert(sched_memplan_max_concurrency(&p) >= 5.0);
}
END_TEST

/* The rule's bounds on budgets where slots, not max_num_seqs, are the limit. */
START_TEST(test_memplan_bounds)
{
    struct cfg_model c;
    cfg_7b(&c);
    struct sched_memplan p;
    char err[256];
    size_t slb = eng_slot_bytes(&c, 4), kvb = eng_kv_block_bytes(&c, 16, 2), per_max = 32768 / 16;
    /* a 24 GB card: about 6 GiB after weights; one full-length sequence needs
     * 3.75 GiB of KV, the slots get the rest */
    size_t budget = GIB(6);
    ck_assert_int_eq(sched_memplan_compute(&c, budget, 16, 32768, 256, 2, 4, &p, err, sizeof err), 0);
    ck_assert_int_ge(p.num_kv_blocks, (int)per_max);                       /* one full sequence */
    ck_assert_int_eq(p.num_state_slots, (int)((budget - per_max * kvb) / slb)); /* the rest */
    ck_assert_uint_le(p.used_bytes, budget);
    /* a large budget, short context: slots capped at half the budget */
    budget = GIB(20);
    ck_assert_int_eq(sched_memplan_compute(&c, budget, 16, 4096, 4096, 2, 4, &p, err, sizeof err), 0);
    ck_assert_int_eq(p.num_state_slots, (int)(budget / 2 / slb));
    ck_assert_int_ge((long long)p.num_kv_blocks * kvb, (long long)(budget / 2) - (long long)kvb);
    /* exactly one sequence's worth: one slot, its KV */
    budget = slb + per_max * kvb;
    ck_assert_int_eq(sched_memplan_compute(&c, budget, 16, 32768, 256, 2, 4, &p, err, sizeof err), 0);
    ck_assert_int_eq(p.num_state_slots, 1);
    ck_assert_int_eq(p.num_kv_blocks, (int)per_max);
    ck_assert(fabs(sched_memplan_max_concurrency(&p) - 1.0) < 1e-9);
    /* one byte less: a clear error */
    ck_assert_int_eq(sched_memplan_compute(&c, budget - 1, 16, 32768, 256, 2, 4, &p, err, sizeof err), -ENOMEM);
    ck_assert_msg(strstr(err, "--max-model-len") && strstr(err, "--gpu-memory-utilization"), "%s", err);
}
END_TEST

Suite *memplan_suite(void)
{
    Suite *s = suite_create("memplan");
    TCase *tc = tcase_create("memplan");
    tcase_add_test(tc, test_memplan_7b_h100);
    tcase_add_test(tc, test_memplan_bounds);
    suite_add_tcase(s, tc);
    return s;
}
