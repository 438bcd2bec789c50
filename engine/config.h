/* engine/config.h: the OLMo Hybrid model configuration (config.json and
 * generation_config.json), parsed once at startup with cJSON.
 *
 * defines: struct cfg_model, cfg_load_dir, cfg_parse_json, cfg_parse_generation
 *
 * Threads: loaded on the main thread before anything else starts; read-only
 * afterwards, so any thread may read it without locking.
 *
 * Faithfulness: every default follows the HF rules written down in
 * ../shared/MODEL.md (layer_types, linear dims, rope variants, eos as an int
 * or a list, tie_word_embeddings). Where a checkpoint's file disagrees with
 * those defaults, the file wins.
 */
#ifndef DS_ENGINE_CONFIG_H
#define DS_ENGINE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CFG_MAX_LAYERS 256
#define CFG_MAX_EOS 16

enum cfg_layer_type { CFG_LAYER_LINEAR = 0, CFG_LAYER_FULL = 1 };

/* Which position encoding the attention layers use (MODEL.md). */
enum cfg_rope_mode {
    CFG_ROPE_DEFAULT = 0,  /* rotate-half RoPE, plain theta */
    CFG_ROPE_NONE = 1,     /* NoPE: rope_parameters.rope_theta is null */
    CFG_ROPE_LINEAR = 2,   /* rope_type "linear": positions / factor */
    CFG_ROPE_DYNAMIC = 3,  /* rope_type "dynamic" NTK */
    CFG_ROPE_YARN = 4,     /* rope_type "yarn" */
    CFG_ROPE_LLAMA3 = 5,   /* rope_type "llama3" */
};

struct cfg_rope {
    enum cfg_rope_mode mode;
    double theta;                 /* base; 10000 when absent */
    double factor;                /* scaling factor (linear/dynamic/yarn/llama3); 1 if none */
    double original_max_position; /* original_max_position_embeddings, 0 if none */
    double low_freq_factor, high_freq_factor; /* llama3 */
    double beta_fast, beta_slow;  /* yarn; defaults 32 and 1 */
    double attention_factor;      /* yarn mscale on cos/sin; 0 = computed default
                                   * (use cfg_rope_attention_factor for the resolved value) */
    double mscale, mscale_all_dim; /* yarn (DeepSeek style); 0 when absent */
    bool truncate;                /* yarn: truncate the correction range (default true) */
    char source[32];              /* where theta came from, for the banner: "rope_parameters",
                                   * "rope_scaling", "rope_theta" (legacy top level) or "default"
                                   * (no theta anywhere: 10000); for NoPE the null key's name */
};

struct cfg_model {
    char model_type[64];          /* "olmo_hybrid" */
    int vocab_size;
    int hidden_size;              /* C */
    int intermediate_size;        /* F, SwiGLU */
    int num_hidden_layers;        /* L */
    int num_attention_heads;      /* Hq */
    int num_key_value_heads;      /* Hkv */
    int head_dim;                 /* D = hidden / heads unless given */
    int linear_num_key_heads;     /* Hk (GDN) */
    int linear_num_value_heads;   /* Hv (GDN), multiple of Hk */
    int linear_key_head_dim;      /* Dk */
    int linear_value_head_dim;    /* Dv */
    int linear_conv_kernel_dim;   /* K = 4 */
    bool allow_neg_eigval;        /* beta *= 2 */
    double rms_norm_eps;          /* 1e-6 for OLMo Hybrid */
    int max_position_embeddings;
    bool tie_word_embeddings;
    struct cfg_rope rope;
    enum cfg_layer_type layer_types[CFG_MAX_LAYERS];
    bool layer_types_given;       /* false: the HF default pattern was applied */
    int num_gdn_layers;           /* count of CFG_LAYER_LINEAR */
    int num_attn_layers;          /* count of CFG_LAYER_FULL */
    /* eos: union of config.json and generation_config.json ids */
    int eos_ids[CFG_MAX_EOS];
    int num_eos;
    int bos_token_id;             /* -1 when none */
    int pad_token_id;             /* -1 when none */
    /* generation_config.json defaults (NAN / -1 when absent) */
    double gen_temperature, gen_top_p;
    int gen_top_k;
    double gen_repetition_penalty;
    int gen_max_new_tokens;
    int gen_do_sample;            /* generation_config do_sample: -1 absent, 0 or 1 */
};

/* Derived sizes, all in elements. */
static inline int cfg_gdn_key_dim(const struct cfg_model *c)   { return c->linear_num_key_heads * c->linear_key_head_dim; }
static inline int cfg_gdn_value_dim(const struct cfg_model *c) { return c->linear_num_value_heads * c->linear_value_head_dim; }
static inline int cfg_gdn_conv_dim(const struct cfg_model *c)  { return 2 * cfg_gdn_key_dim(c) + cfg_gdn_value_dim(c); }

/* Parse a config.json text of len bytes (need not be NUL-terminated). out is
 * overwritten entirely. Absent fields take transformers' OlmoHybridConfig
 * defaults (sizes of the 7B model; tie_word_embeddings false; eos 100257;
 * pad 100277; no bos; linear_allow_neg_eigval true; layer_types, linear dims,
 * kv heads and head_dim as in MODEL.md); absent rope -> RoPE theta 10000,
 * rope_theta null -> NoPE. gen_* fields are reset to "absent". model_type must
 * be "olmo_hybrid". Returns 0, or -1 with a one-line reason naming the field
 * in err (wrong type, non-integral, out of range, inconsistent). Any thread;
 * no global state besides cJSON's error pointer (call at startup). */
int cfg_parse_json(struct cfg_model *out, const char *json, size_t len, char *err, size_t errlen);

/* Merge a generation_config.json text into an already-parsed config: eos ids
 * (int or list) are unioned into eos_ids; temperature, top_p, top_k,
 * repetition_penalty, max_new_tokens, do_sample recorded; bos/pad filled only
 * where config.json had none. Returns 0, or -1 with err and c unchanged. */
int cfg_parse_generation(struct cfg_model *c, const char *json, size_t len, char *err, size_t errlen);

/* Load DIR/config.json and, when present, DIR/generation_config.json (a bad
 * generation_config.json is an error too). Errors are prefixed by the file's
 * path. Returns 0 or -1. Main thread, at startup. */
int cfg_load_dir(struct cfg_model *out, const char *dir, char *err, size_t errlen);

/* The yarn attention (mscale) factor on cos/sin as transformers resolves it
 * (attention_factor if given, else from factor/mscale/mscale_all_dim); 1 for
 * every other rope mode. */
double cfg_rope_attention_factor(const struct cfg_model *c);

/* A one-line description of the position encoding for the startup banner. */
void cfg_rope_describe(const struct cfg_model *c, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
