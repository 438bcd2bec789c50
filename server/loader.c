/* server/loader.c: model directory -> running scheduler (see loader.h).
 * Main thread, startup and shutdown only. */
#include "server/loader.h"
#include "server/serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#ifdef DS_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif
#include "server/chat.h"

/* Pick the device: auto = CUDA when built with it and a GPU answers. */
static int pick_device(struct srv_model *m, const struct srv_args *a, char *err, size_t errlen)
{
    bool want_cuda = !strcmp(a->device, "cuda");
#ifdef DS_HAVE_CUDA
    char desc[160] = "";
    /* --device cpu never touches the CUDA runtime */
    int ok = strcmp(a->device, "cpu") ? eng_cuda_available(desc, sizeof desc) : 0;
    if (ok && strcmp(a->device, "cpu")) {
        snprintf(m->device, sizeof m->device, "cuda");
        snprintf(m->device_desc, sizeof m->device_desc, "%s", desc);
        return 0;
    }
    if (want_cuda) {
        snprintf(err, errlen, "--device cuda: no usable CUDA device (%s)", desc[0] ? desc : "none found");
        return -1;
    }
    if (!strcmp(a->device, "auto")) LOG_INFO("no usable GPU (%s): using the CPU backend", desc);
#else
    if (want_cuda) {
        snprintf(err, errlen, "--device cuda: this binary was built without CUDA (rebuild with nvcc on PATH)");
        return -1;
    }
    if (!strcmp(a->device, "auto")) LOG_INFO("built without CUDA: using the CPU backend");
#endif
    snprintf(m->device, sizeof m->device, "cpu");
    snprintf(m->device_desc, sizeof m->device_desc, "CPU (reference backend, fp32)");
    return 0;
}

static int plan_memory(struct srv_model *m, const struct srv_args *a, int max_len, const struct eng_backend_ops **ops,
                       char *err, size_t errlen)
{
    int bs = a->block_size;
#ifdef DS_HAVE_CUDA
    if (!strcmp(m->device, "cuda")) {
        struct eng_cuda_options o;
        eng_cuda_default_options(&o);
        o.max_tokens = a->max_num_batched_tokens;
        o.max_seqs = a->max_num_seqs;
        o.max_blocks_per_seq = (max_len + bs - 1) / bs;
        o.ssm_state_bf16 = srv_args_ssm_bf16(a);
        eng_cuda_set_options(&o);
        size_t freeb = 0, total = 0;
        if (eng_cuda_mem_info(&freeb, &total)) {
            snprintf(err, errlen, "cannot query GPU memory");
            return -1;
        }
        size_t used = (total - freeb) + eng_cuda_weight_bytes(&m->cfg) + eng_cuda_workspace_bytes(&m->cfg, &o);
        size_t budget = sched_memplan_gpu_budget(total, used, a->gpu_memory_utilization);
        /* KV in bf16; SSM state fp32, or bf16 with --ssm-state-dtype bfloat16 */
        if (sched_memplan_compute(&m->cfg, budget, bs, max_len, a->max_num_seqs, 2, o.ssm_state_bf16 ? 2 : 4,
                                  &m->plan, err, errlen))
            return -1;
        *ops = &eng_backend_cuda;
        return 0;
    }
#endif
    size_t budget = a->kv_cache_memory > 0 ? (size_t)a->kv_cache_memory : SCHED_DEFAULT_KV_CACHE_MEMORY;
    if (sched_memplan_compute(&m->cfg, budget, bs, max_len, a->max_num_seqs, 4, 4, &m->plan, err, errlen)) return -1;
    *ops = &eng_backend_cpu;
    return 0;
}

int srv_model_load(struct srv_model *m, const struct srv_args *a, struct srv_app *app, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    char path[PATH_MAX + 32], e2[400];
    if (cfg_load_dir(&m->cfg, a->model, e2, sizeof e2)) {
        snprintf(err, errlen, "%s: %s", a->model, e2);
        return -1;
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", a->model);
    m->tok = tok_load(path, e2, sizeof e2);
    if (!m->tok) {
        snprintf(err, errlen, "%s: %s", path, e2);
        goto fail;
    }
    if (chat_load(&m->tmpl, a->model, a->chat_template[0] ? a->chat_template : NULL, e2, sizeof e2)) {
        snprintf(err, errlen, "chat template: %s", e2);
        goto fail;
    }
    if (pick_device(m, a, err, errlen)) goto fail;
    if (srv_args_ssm_bf16(a) && strcmp(m->device, "cuda")) {
        snprintf(err, errlen, "--ssm-state-dtype bfloat16: the cpu backend keeps the GDN state in float32 only "
                              "(use a CUDA device, or --ssm-state-dtype float32)");
        goto fail;
    }
    if (eng_weights_load(&m->w, &m->cfg, a->model, e2, sizeof e2)) {
        snprintf(err, errlen, "%s: %s", a->model, e2);
        goto fail;
    }
    m->have_w = true;
    int max_len = a->max_model_len > 0 ? a->max_model_len : m->cfg.max_position_embeddings;
    if (a->max_model_len > m->cfg.max_position_embeddings && m->cfg.max_position_embeddings > 0)
        LOG_WARN("--max-model-len %d exceeds the model's max_position_embeddings %d", a->max_model_len,
                 m->cfg.max_position_embeddings);
    const struct eng_backend_ops *ops = NULL;
    if (plan_memory(m, a, max_len, &ops, err, errlen)) goto fail;
    if (!strcmp(a->speculative, "ngram") && a->num_speculative_tokens > 0) {
        /* verify rows hold 1+k extra state slots each (scheduler/memplan_spec.c) */
        int spec_seqs = a->spec_disable_by_batch_size > 0 && a->spec_disable_by_batch_size < a->max_num_seqs
                            ? a->spec_disable_by_batch_size : a->max_num_seqs;
        if (sched_memplan_add_spec(&m->plan, a->num_speculative_tokens, spec_seqs, e2, sizeof e2) < 0)
            LOG_WARN("%s", e2);
    }
    struct eng_memory mem = {m->plan.num_kv_blocks, m->plan.block_size, m->plan.num_state_slots};
    m->eng = eng_create(&m->cfg, &m->w, ops, &mem, e2, sizeof e2);
    if (!m->eng) {
        snprintf(err, errlen, "%s", e2);
        goto fail;
    }
    m->eng->num_threads = a->threads;
    struct sched_config sc;
    sched_config_init(&sc);
    sc.eng = m->eng;
    sc.tok = m->tok;
    sc.max_num_seqs = a->max_num_seqs;
    sc.max_num_batched_tokens = a->max_num_batched_tokens;
    sc.max_model_len = max_len;
    sc.max_queued = a->max_queued_requests;
    sc.default_seed = (uint64_t)a->seed;
    sc.log_requests = false; /* the server logs one line per request itself (gen.c) */
    if (!strcmp(a->speculative, "ngram") && a->num_speculative_tokens > 0) {
        /* sizes validated at parse (args.c finish); both backends run
         * verify rows (per-token state snapshots into spec slots) */
        sc.num_speculative_tokens = a->num_speculative_tokens;
        sc.ngram_min = a->ngram_min;
        sc.ngram_max = a->ngram_max;
        sc.spec_min_acceptance = a->spec_min_acceptance;
        sc.spec_probe_interval = a->spec_probe_interval;
        sc.spec_disable_by_batch_size = a->spec_disable_by_batch_size;
    }
    sc.on_fatal = srv_on_engine_fatal; /* unusable device: exit non-zero (serve.c) */
    m->sched = sched_create(&sc, e2, sizeof e2);
    if (!m->sched) {
        snprintf(err, errlen, "scheduler: %s", e2);
        goto fail;
    }
    int rc = sched_start(m->sched);
    if (rc) {
        snprintf(err, errlen, "scheduler: cannot start the engine thread (%s)", strerror(-rc));
        goto fail;
    }
    if (app) {
        app->cfg = &m->cfg;
        app->tok = m->tok;
        app->tmpl = m->tmpl;
        app->sched = m->sched;
        app->max_model_len = max_len;
        app->vocab_size = tok_vocab_size(m->tok);
        if (app->vocab_size > m->cfg.vocab_size) app->vocab_size = m->cfg.vocab_size;
        app->device = m->device;
        const char *bos = m->cfg.bos_token_id >= 0 ? tok_id_to_piece(m->tok, m->cfg.bos_token_id) : NULL;
        const char *eos = m->cfg.num_eos > 0 ? tok_id_to_piece(m->tok, m->cfg.eos_ids[0]) : NULL;
        snprintf(app->bos_token, sizeof app->bos_token, "%s", bos ? bos : "");
        snprintf(app->eos_token, sizeof app->eos_token, "%s", eos ? eos : "");
    }
    return 0;
fail:
    srv_model_unload(m);
    return -1;
}

void srv_model_unload(struct srv_model *m)
{
    if (m->sched) {
        sched_stop(m->sched);
        sched_destroy(m->sched);
    }
    if (m->eng) eng_destroy(m->eng);
    if (m->have_w) eng_weights_free(&m->w);
    chat_free(m->tmpl);
    if (m->tok) tok_free(m->tok);
    memset(m, 0, sizeof *m);
}

void srv_model_banner(const struct srv_model *m, const struct srv_args *a)
{
    const struct cfg_model *c = &m->cfg;
    char rope[160], plan[400];
    cfg_rope_describe(c, rope, sizeof rope);
    sched_memplan_describe(&m->plan, plan, sizeof plan);
    LOG_INFO("deltaserve: model %s (served as \"%s\")", a->model, a->served_model_name);
    LOG_INFO("device: %s (%s)", m->device, m->device_desc);
    LOG_INFO("model: %s, %d layers (%d gated deltanet + %d attention), hidden %d, mlp %d, vocab %d, "
             "attention %d heads / %d kv heads x %d, gdn %d key heads x %d, %d value heads x %d, conv %d",
             c->model_type, c->num_hidden_layers, c->num_gdn_layers, c->num_attn_layers, c->hidden_size,
             c->intermediate_size, c->vocab_size, c->num_attention_heads, c->num_key_value_heads, c->head_dim,
             c->linear_num_key_heads, c->linear_key_head_dim, c->linear_num_value_heads, c->linear_value_head_dim,
             c->linear_conv_kernel_dim);
    LOG_INFO("rope: %s", rope);
    LOG_INFO("%s", plan);
    LOG_INFO("limits: max_model_len %d, max_num_seqs %d, max_num_batched_tokens %d, max_queued_requests %d, "
             "chat template %s",
             m->plan.max_model_len, a->max_num_seqs, a->max_num_batched_tokens, a->max_queued_requests,
             m->tmpl ? "loaded" : "none");
}
