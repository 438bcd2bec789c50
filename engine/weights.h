/* engine/weights.h: the model's tensors by role, resolved from any of the
 * checkpoint name variants in MODEL.md and shape-checked against the config.
 *
 * defines: struct eng_tensor, struct eng_layer_weights, struct eng_weights,
 *          eng_weights_load, eng_weights_free
 *
 * Threads: built on the main thread at startup; read-only afterwards.
 *
 * Tensors are views into the mmapped safetensors (any of f32/f16/bf16). The
 * one exception is a split conv checkpoint (q_conv1d/k_conv1d/v_conv1d): the
 * parts are concatenated in q,k,v order into an owned buffer of the same dtype.
 * Backends convert (CPU: to fp32) or upload (CUDA: to bf16) from these views.
 */
#ifndef DS_ENGINE_WEIGHTS_H
#define DS_ENGINE_WEIGHTS_H

#include "engine/config.h"
#include "engine/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

struct eng_tensor {
    enum st_dtype dtype;
    int64_t numel;
    const void *data;   /* borrowed from the mmap, or == owned. May be unaligned for
                         * the element size (see st_tensor.data): use memcpy or
                         * eng_tensor_to_f32 rather than casting to float*. */
    void *owned;        /* owned buffer when the tensor had to be assembled; else NULL */
    const char *name;   /* borrowed: checkpoint name (first part for assembled ones) */
    int ndim;           /* the logical shape below (conv: (CD, K), the size-1 dim dropped) */
    int64_t shape[4];
};

/* Shapes use the config's names: C hidden, F intermediate, Hq/Hkv/D attention,
 * Hk/Hv/Dk/Dv GDN, KD = Hk*Dk, VD = Hv*Dv, CD = conv dim = 2*KD + VD, K conv kernel. */
struct eng_layer_weights {
    int is_attn;                 /* 1: full attention layer; 0: GDN layer */
    /* norms. Accepted names (weights.c explains the mapping):
     *   GDN:  in_norm = input_layernorm | attention_layer_norm,
     *         post_attn_norm = post_attention_layernorm | feedforward_layer_norm
     *   attn: post_attn_norm = post_attention_layernorm | feedforward_layer_norm
     *         (transformers 5.17 renames it so in every layer on save),
     *         post_ffn_norm = post_feedforward_layernorm */
    struct eng_tensor in_norm;   /* (C)  GDN only: pre-norm of the mixer */
    struct eng_tensor post_attn_norm; /* (C) GDN: pre-norm of the MLP; attn: norm of Attn(x) */
    struct eng_tensor post_ffn_norm;  /* (C) attention only: norm of MLP(h) */
    /* attention */
    struct eng_tensor wq;        /* (Hq*D, C) */
    struct eng_tensor wk;        /* (Hkv*D, C) */
    struct eng_tensor wv;        /* (Hkv*D, C) */
    struct eng_tensor wo;        /* (C, Hq*D) */
    struct eng_tensor q_norm;    /* (Hq*D) whole-vector RMSNorm */
    struct eng_tensor k_norm;    /* (Hkv*D) */
    /* GDN */
    struct eng_tensor gq;        /* (KD, C) */
    struct eng_tensor gk;        /* (KD, C) */
    struct eng_tensor gv;        /* (VD, C) */
    struct eng_tensor gg;        /* (VD, C)  gate z */
    struct eng_tensor ga;        /* (Hv, C)  decay input a */
    struct eng_tensor gb;        /* (Hv, C)  beta input b */
    struct eng_tensor go;        /* (C, VD) */
    struct eng_tensor conv;      /* (CD, K) depthwise, q|k|v channel order */
    struct eng_tensor A_log;     /* (Hv) */
    struct eng_tensor dt_bias;   /* (Hv) */
    struct eng_tensor o_norm;    /* (Dv) shared by all value heads */
    /* MLP (both) */
    struct eng_tensor w_gate;    /* (F, C) */
    struct eng_tensor w_up;      /* (F, C) */
    struct eng_tensor w_down;    /* (C, F) */
};

struct eng_weights {
    struct st_set st;            /* owned: the open safetensors files */
    struct eng_tensor embed;     /* (V, C) */
    struct eng_tensor final_norm;/* (C) */
    struct eng_tensor lm_head;   /* (V, C); == embed when tied */
    struct eng_layer_weights *layers; /* owned [L] */
    int num_layers;
    char conv_variant[16];       /* "fused" or "split": for the banner */
    char norm_variant[40];       /* which norm names the checkpoint used */
};

/* Open DIR's safetensors, resolve every tensor the config needs, check every
 * shape, and reject missing, extra or mis-shaped tensors with an error naming
 * the tensor (and a role given under both of its names). Tied embeddings:
 * lm_head = embed (an lm_head.weight in the file is then ignored, as in
 * transformers); untied and no lm_head.weight: error. vocab_size rows may
 * exceed the tokenizer (padding rows). Returns 0 or -1 with err; on failure w
 * is empty. Main thread only. */
int eng_weights_load(struct eng_weights *w, const struct cfg_model *c, const char *dir,
                     char *err, size_t errlen);
void eng_weights_free(struct eng_weights *w);

/* Bytes of t's data. */
static inline size_t eng_tensor_nbytes(const struct eng_tensor *t)
{
    return (size_t)t->numel * st_dtype_size(t->dtype);
}

/* Convert a tensor to fp32 into dst[t->numel]. */
void eng_tensor_to_f32(const struct eng_tensor *t, float *dst);

#ifdef __cplusplus
}
#endif
#endif
