/* server/bench_common.c: see bench_common.h. */
#include "server/bench_common.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_cfg_7b(struct cfg_model *c, int layers)
{
    memset(c, 0, sizeof *c);
    strcpy(c->model_type, "olmo_hybrid");
    c->vocab_size = 100352;
    c->hidden_size = 3840;
    c->intermediate_size = 11008;
    c->num_hidden_layers = layers;
    c->num_attention_heads = 30;
    c->num_key_value_heads = 30;
    c->head_dim = 128;
    c->linear_num_key_heads = 30;
    c->linear_num_value_heads = 30;
    c->linear_key_head_dim = 96;
    c->linear_value_head_dim = 192;
    c->linear_conv_kernel_dim = 4;
    c->allow_neg_eigval = true;
    c->rms_norm_eps = 1e-6;
    c->max_position_embeddings = 65536;
    c->rope.mode = CFG_ROPE_DEFAULT;
    c->rope.theta = 500000;
    c->rope.factor = 1;
    for (int l = 0; l < layers; l++) {
        c->layer_types[l] = l % 4 == 3 ? CFG_LAYER_FULL : CFG_LAYER_LINEAR;
        if (c->layer_types[l] == CFG_LAYER_FULL)
            c->num_attn_layers++;
        else
            c->num_gdn_layers++;
    }
    c->eos_ids[0] = 100257;
    c->num_eos = 1;
    c->bos_token_id = -1;
    c->pad_token_id = 100277;
}
