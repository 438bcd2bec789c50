/* engine/config.c: config.json and generation_config.json for OLMo Hybrid,
 * parsed with cJSON into struct cfg_model (the tree is deleted at once).
 *
 * Runs on the main thread at startup (and in the fuzzer). Every rule for an
 * absent field follows transformers' OlmoHybridConfig (models/olmo_hybrid,
 * checked against 5.x): the class defaults for absent sizes, the layer_types
 * pattern, the linear (GDN) head defaults and the rope standardisation. The
 * input is untrusted: a wrong type, a non-integral or non-positive size, or an
 * impossible combination is an error naming the field, never a crash.
 */
#include "engine/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest size we accept for any single dimension, and for derived products
 * (heads * head_dim, conv dim): keeps every later int product far from
 * overflow. The 7B model is ~3840 wide; 1<<24 leaves ample room. */
#define CFG_MAX_DIM (1 << 24)
#define CFG_MAX_FILE (16u << 20)

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *json_type_name(const cJSON *j)
{
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "a list";
    if (cJSON_IsObject(j)) return "an object";
    return "an invalid value";
}

/* ---------------------------------------------------------------- field readers */

/* Exact integral double in [lo, hi]? */
static int num_is_int(const cJSON *j, double lo, double hi)
{
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    return isfinite(v) && v == floor(v) && v >= lo && v <= hi;
}

/* Integer field. Absent or null -> def (0 returned). When present it must be an
 * integer in [lo, hi]. */
static int get_int(const cJSON *o, const char *key, int def, int lo, int hi, int *out, char *err,
                   size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return fail(err, errlen, "%s: expected an integer, got %s", key, json_type_name(j));
    if (!num_is_int(j, lo, hi))
        return fail(err, errlen, "%s: expected an integer in [%d, %d], got %.17g", key, lo, hi,
                    j->valuedouble);
    *out = (int)j->valuedouble;
    return 0;
}

/* Like get_int but tells whether the field was given (absent/null -> 0). */
static int get_opt_int(const cJSON *o, const char *key, int lo, int hi, int *out, int *given,
                       char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    *given = j && !cJSON_IsNull(j);
    return get_int(o, key, 0, lo, hi, out, err, errlen);
}

static int get_double(const cJSON *o, const char *key, double def, double *out, char *err,
                      size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return fail(err, errlen, "%s: expected a number, got %s", key, json_type_name(j));
    *out = j->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *key, bool def, bool *out, char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(j))
        return fail(err, errlen, "%s: expected true or false, got %s", key, json_type_name(j));
    *out = cJSON_IsTrue(j);
    return 0;
}

/* Token id field: absent -> def; null -> -1 (explicitly none). */
static int get_token_id(const cJSON *o, const char *key, int def, int *out, char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) {
        *out = def;
        return 0;
    }
    if (cJSON_IsNull(j)) {
        *out = -1;
        return 0;
    }
    return get_int(o, key, def, 0, INT32_MAX, out, err, errlen);
}

static int eos_add(struct cfg_model *c, int id, char *err, size_t errlen)
{
    for (int i = 0; i < c->num_eos; i++)
        if (c->eos_ids[i] == id) return 0;
    if (c->num_eos >= CFG_MAX_EOS)
        return fail(err, errlen, "eos_token_id: more than %d distinct ids", CFG_MAX_EOS);
    c->eos_ids[c->num_eos++] = id;
    return 0;
}

/* eos_token_id: an int, a list of ints, or null. Unioned into c->eos_ids. */
static int get_eos(struct cfg_model *c, const cJSON *j, char *err, size_t errlen)
{
    if (!j || cJSON_IsNull(j)) return 0;
    if (cJSON_IsNumber(j)) {
        if (!num_is_int(j, 0, INT32_MAX))
            return fail(err, errlen, "eos_token_id: expected a non-negative integer, got %.17g",
                        j->valuedouble);
        return eos_add(c, (int)j->valuedouble, err, errlen);
    }
    if (!cJSON_IsArray(j))
        return fail(err, errlen, "eos_token_id: expected an integer or a list of integers, got %s",
                    json_type_name(j));
    int idx = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        if (!num_is_int(e, 0, INT32_MAX))
            return fail(err, errlen, "eos_token_id[%d]: expected a non-negative integer, got %s", idx,
                        json_type_name(e));
        if (eos_add(c, (int)e->valuedouble, err, errlen)) return -1;
        idx++;
    }
    return 0;
}

/* ---------------------------------------------------------------- rope */

/* Standardisation, as transformers does it: the parameters dict is
 * rope_parameters, else the legacy rope_scaling; its rope_theta, when the key
 * is absent, comes from the legacy top-level rope_theta, else 10000. A
 * rope_theta that is explicitly null (in either place) means NoPE: the model
 * builds no rotary embedding at all. */
static int parse_rope(struct cfg_model *c, const cJSON *root, char *err, size_t errlen)
{
    struct cfg_rope *r = &c->rope;
    memset(r, 0, sizeof *r);
    r->mode = CFG_ROPE_DEFAULT;
    r->theta = 10000.0;
    r->factor = 1.0;
    r->beta_fast = 32.0;
    r->beta_slow = 1.0;
    r->truncate = true;

    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const char *pname = "rope_parameters";
    if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
        return fail(err, errlen, "rope_parameters: expected an object or null, got %s",
                    json_type_name(params));
    if (!params || cJSON_IsNull(params)) {
        params = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
        pname = "rope_scaling";
        if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
            return fail(err, errlen, "rope_scaling: expected an object or null, got %s",
                        json_type_name(params));
        if (params && cJSON_IsNull(params)) params = NULL;
    }
    const cJSON *legacy_theta = cJSON_GetObjectItemCaseSensitive(root, "rope_theta");
    const cJSON *theta = params ? cJSON_GetObjectItemCaseSensitive(params, "rope_theta") : NULL;
    const char *tname = "rope_parameters.rope_theta";
    if (params && !strcmp(pname, "rope_scaling")) tname = "rope_scaling.rope_theta";
    if (!theta) {
        theta = legacy_theta;
        tname = "rope_theta";
    }

    if (theta && cJSON_IsNull(theta)) {
        r->mode = CFG_ROPE_NONE;
        r->theta = 0;
        snprintf(r->source, sizeof r->source, "%s", tname);
        return 0; /* NoPE: the rest of the dict has no effect */
    }
    if (theta) {
        if (!cJSON_IsNumber(theta) || !isfinite(theta->valuedouble) || theta->valuedouble <= 0)
            return fail(err, errlen, "%s: expected a positive number or null, got %s", tname,
                        cJSON_IsNumber(theta) ? "a non-positive number" : json_type_name(theta));
        r->theta = theta->valuedouble;
        snprintf(r->source, sizeof r->source, "%s", !strcmp(tname, "rope_theta") ? "rope_theta" : pname);
    } else {
        snprintf(r->source, sizeof r->source, "default");
    }
    if (!params) return 0;

    const cJSON *type = cJSON_GetObjectItemCaseSensitive(params, "rope_type");
    if (!type || cJSON_IsNull(type)) type = cJSON_GetObjectItemCaseSensitive(params, "type");
    const char *ts = "default";
    if (type && !cJSON_IsNull(type)) {
        if (!cJSON_IsString(type))
            return fail(err, errlen, "%s.rope_type: expected a string, got %s", pname, json_type_name(type));
        ts = type->valuestring;
    }
    if (!strcmp(ts, "default")) r->mode = CFG_ROPE_DEFAULT;
    else if (!strcmp(ts, "linear")) r->mode = CFG_ROPE_LINEAR;
    else if (!strcmp(ts, "dynamic")) r->mode = CFG_ROPE_DYNAMIC;
    else if (!strcmp(ts, "yarn")) r->mode = CFG_ROPE_YARN;
    else if (!strcmp(ts, "llama3")) r->mode = CFG_ROPE_LLAMA3;
    else
        return fail(err, errlen,
                    "%s.rope_type: unsupported '%.40s' (supported: default, linear, dynamic, yarn, llama3)",
                    pname, ts);

    char key[64];
#define RD(field, name, def)                                                       \
    do {                                                                           \
        if (get_double(params, name, def, &r->field, err, errlen)) {               \
            if (err && errlen) {                                                   \
                char tmp[256];                                                     \
                snprintf(tmp, sizeof tmp, "%s.%s", pname, err);                    \
                snprintf(err, errlen, "%s", tmp);                                  \
            }                                                                      \
            return -1;                                                             \
        }                                                                          \
    } while (0)
    double prf;
    RD(factor, "factor", 1.0);
    RD(original_max_position, "original_max_position_embeddings", 0.0);
    RD(low_freq_factor, "low_freq_factor", 0.0);
    RD(high_freq_factor, "high_freq_factor", 0.0);
    RD(beta_fast, "beta_fast", 32.0);
    RD(beta_slow, "beta_slow", 1.0);
    RD(attention_factor, "attention_factor", 0.0);
    RD(mscale, "mscale", 0.0);
    RD(mscale_all_dim, "mscale_all_dim", 0.0);
    if (get_double(params, "partial_rotary_factor", 1.0, &prf, err, errlen)) return -1;
#undef RD
    if (get_bool(params, "truncate", true, &r->truncate, err, errlen)) return -1;
    if (prf != 1.0)
        return fail(err, errlen, "%s.partial_rotary_factor: %g is not supported (RoPE covers the whole head_dim)",
                    pname, prf);

    int need_factor = r->mode != CFG_ROPE_DEFAULT;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(params, "factor");
    if (need_factor && (!f || cJSON_IsNull(f)))
        return fail(err, errlen, "%s.factor: required for rope_type '%s'", pname, ts);
    if (need_factor && !(r->factor >= 1.0) && r->mode != CFG_ROPE_LINEAR)
        return fail(err, errlen, "%s.factor: must be >= 1 for rope_type '%s', got %g", pname, ts, r->factor);
    if (r->factor <= 0) return fail(err, errlen, "%s.factor: must be positive, got %g", pname, r->factor);
    if (r->mode == CFG_ROPE_LLAMA3) {
        const char *req[] = { "low_freq_factor", "high_freq_factor", "original_max_position_embeddings" };
        for (int i = 0; i < 3; i++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(params, req[i]);
            if (!x || cJSON_IsNull(x))
                return fail(err, errlen, "%s.%s: required for rope_type 'llama3'", pname, req[i]);
        }
        if (!(r->high_freq_factor > r->low_freq_factor) || r->low_freq_factor <= 0)
            return fail(err, errlen, "%s: llama3 needs 0 < low_freq_factor < high_freq_factor", pname);
    }
    if (r->original_max_position < 0 || r->original_max_position != floor(r->original_max_position)) {
        snprintf(key, sizeof key, "%s.original_max_position_embeddings", pname);
        return fail(err, errlen, "%s: expected a non-negative integer", key);
    }
    /* yarn/dynamic fall back to max_position_embeddings as the original length
     * (transformers' rule when the field is absent). */
    if ((r->mode == CFG_ROPE_YARN || r->mode == CFG_ROPE_DYNAMIC) && r->original_max_position == 0)
        r->original_max_position = c->max_position_embeddings;
    return 0;
}

static double yarn_get_mscale(double scale, double mscale)
{
    if (scale <= 1) return 1.0;
    return 0.1 * mscale * log(scale) + 1.0;
}

double cfg_rope_attention_factor(const struct cfg_model *c)
{
    const struct cfg_rope *r = &c->rope;
    if (r->mode != CFG_ROPE_YARN) return 1.0;
    if (r->attention_factor > 0) return r->attention_factor;
    double factor = r->factor;
    if (r->mscale > 0 && r->mscale_all_dim > 0)
        return yarn_get_mscale(factor, r->mscale) / yarn_get_mscale(factor, r->mscale_all_dim);
    return yarn_get_mscale(factor, 1.0);
}

/* ---------------------------------------------------------------- layer types */

static int parse_layer_types(struct cfg_model *c, const cJSON *root, char *err, size_t errlen)
{
    int L = c->num_hidden_layers;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (!lt || cJSON_IsNull(lt)) {
        /* HF: linear everywhere, full where i % 4 == 3; the last layer is made
         * full when no layer would be (small models). */
        int any_full = 0;
        for (int i = 0; i < L; i++) {
            c->layer_types[i] = (i % 4 == 3) ? CFG_LAYER_FULL : CFG_LAYER_LINEAR;
            any_full |= i % 4 == 3;
        }
        if (!any_full) c->layer_types[L - 1] = CFG_LAYER_FULL;
        c->layer_types_given = false;
    } else {
        if (!cJSON_IsArray(lt))
            return fail(err, errlen, "layer_types: expected a list of strings, got %s", json_type_name(lt));
        int n = cJSON_GetArraySize(lt);
        if (n != L)
            return fail(err, errlen, "layer_types: has %d entries but num_hidden_layers is %d", n, L);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt)
        {
            if (!cJSON_IsString(e))
                return fail(err, errlen, "layer_types[%d]: expected a string, got %s", i, json_type_name(e));
            if (!strcmp(e->valuestring, "linear_attention")) c->layer_types[i] = CFG_LAYER_LINEAR;
            else if (!strcmp(e->valuestring, "full_attention")) c->layer_types[i] = CFG_LAYER_FULL;
            else
                return fail(err, errlen,
                            "layer_types[%d]: unknown layer type '%.40s' (expected \"linear_attention\" or "
                            "\"full_attention\")",
                            i, e->valuestring);
            i++;
        }
        c->layer_types_given = true;
    }
    c->num_gdn_layers = c->num_attn_layers = 0;
    for (int i = 0; i < L; i++) {
        if (c->layer_types[i] == CFG_LAYER_FULL) c->num_attn_layers++;
        else c->num_gdn_layers++;
    }
    /* OlmoHybridConfig.validate_architecture: both kinds must appear. */
    if (c->num_gdn_layers == 0)
        return fail(err, errlen, "layer_types: OLMo Hybrid needs at least one \"linear_attention\" layer");
    if (c->num_attn_layers == 0)
        return fail(err, errlen, "layer_types: OLMo Hybrid needs at least one \"full_attention\" layer");
    return 0;
}

/* ---------------------------------------------------------------- config.json */

int cfg_parse_json(struct cfg_model *out, const char *json, size_t len, char *err, size_t errlen)
{
    struct cfg_model *c = out;
    memset(c, 0, sizeof *c);
    c->gen_temperature = c->gen_top_p = c->gen_repetition_penalty = NAN;
    c->gen_top_k = c->gen_max_new_tokens = c->gen_do_sample = -1;
    if (err && errlen) err[0] = 0;

    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return fail(err, errlen, "not valid JSON (near byte %ld)",
                           cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - json) : -1L);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        fail(err, errlen, "expected a JSON object at the top level, got %s", json_type_name(root));
        goto done;
    }

    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!mt) {
        fail(err, errlen, "model_type: missing (deltaserve serves olmo_hybrid)");
        goto done;
    }
    if (!cJSON_IsString(mt)) {
        fail(err, errlen, "model_type: expected a string, got %s", json_type_name(mt));
        goto done;
    }
    if (strcmp(mt->valuestring, "olmo_hybrid")) {
        fail(err, errlen, "unsupported model_type '%.60s' (deltaserve serves olmo_hybrid)", mt->valuestring);
        goto done;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);

    /* Absent sizes take OlmoHybridConfig's class defaults (the 7B shapes), as
     * transformers would. */
#define GI(field, key, def, lo, hi) \
    if (get_int(root, key, def, lo, hi, &c->field, err, errlen)) goto done
    GI(vocab_size, "vocab_size", 100352, 1, CFG_MAX_DIM);
    GI(hidden_size, "hidden_size", 3840, 1, CFG_MAX_DIM);
    GI(intermediate_size, "intermediate_size", 11008, 1, CFG_MAX_DIM);
    GI(num_hidden_layers, "num_hidden_layers", 32, 1, CFG_MAX_LAYERS);
    GI(num_attention_heads, "num_attention_heads", 30, 1, CFG_MAX_DIM);
    GI(num_key_value_heads, "num_key_value_heads", c->num_attention_heads, 1, CFG_MAX_DIM);
    GI(linear_num_key_heads, "linear_num_key_heads", c->num_attention_heads, 1, CFG_MAX_DIM);
    GI(linear_num_value_heads, "linear_num_value_heads", c->num_attention_heads, 1, CFG_MAX_DIM);
    GI(linear_conv_kernel_dim, "linear_conv_kernel_dim", 4, 1, 64);
    GI(max_position_embeddings, "max_position_embeddings", 65536, 1, INT32_MAX);
#undef GI
    int given;
    if (get_opt_int(root, "head_dim", 1, CFG_MAX_DIM, &c->head_dim, &given, err, errlen)) goto done;
    if (!given) {
        /* Olmo3Attention: getattr(config, "head_dim", hidden // heads) */
        c->head_dim = c->hidden_size / c->num_attention_heads;
        if (c->head_dim < 1) {
            fail(err, errlen, "num_attention_heads: %d heads do not fit hidden_size %d", c->num_attention_heads,
                 c->hidden_size);
            goto done;
        }
    }
    if (get_opt_int(root, "linear_key_head_dim", 1, CFG_MAX_DIM, &c->linear_key_head_dim, &given, err, errlen))
        goto done;
    if (!given) {
        /* int(0.75 * hidden / Hk): Python float math, truncated */
        c->linear_key_head_dim = (int)(0.75 * (double)c->hidden_size / (double)c->linear_num_key_heads);
        if (c->linear_key_head_dim < 1) {
            fail(err, errlen, "linear_num_key_heads: %d heads give a default linear_key_head_dim of 0",
                 c->linear_num_key_heads);
            goto done;
        }
    }
    if (get_opt_int(root, "linear_value_head_dim", 1, CFG_MAX_DIM, &c->linear_value_head_dim, &given, err,
                    errlen))
        goto done;
    if (!given) c->linear_value_head_dim = 2 * c->linear_key_head_dim;

    /* allow_neg_eigval: transformers' key is linear_allow_neg_eigval (default
     * true); the bare name is accepted as an alias from other writers. */
    {
        bool alias;
        if (get_bool(root, "allow_neg_eigval", true, &alias, err, errlen)) goto done;
        if (get_bool(root, "linear_allow_neg_eigval", alias, &c->allow_neg_eigval, err, errlen)) goto done;
    }
    if (get_double(root, "rms_norm_eps", 1e-6, &c->rms_norm_eps, err, errlen)) goto done;
    if (!(c->rms_norm_eps > 0) || c->rms_norm_eps >= 1) {
        fail(err, errlen, "rms_norm_eps: expected a small positive number, got %g", c->rms_norm_eps);
        goto done;
    }
    /* transformers' OlmoHybridConfig default: tie_word_embeddings = False */
    if (get_bool(root, "tie_word_embeddings", false, &c->tie_word_embeddings, err, errlen)) goto done;
    if (get_token_id(root, "bos_token_id", -1, &c->bos_token_id, err, errlen)) goto done;
    if (get_token_id(root, "pad_token_id", 100277, &c->pad_token_id, err, errlen)) goto done;
    {
        const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
        if (!eos) {
            c->eos_ids[0] = 100257; /* class default */
            c->num_eos = 1;
        } else if (get_eos(c, eos, err, errlen))
            goto done;
    }
    {
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
        if (act && !cJSON_IsNull(act) && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu"))) {
            fail(err, errlen, "hidden_act: only \"silu\" is supported, got %s%.40s%s",
                 cJSON_IsString(act) ? "'" : "", cJSON_IsString(act) ? act->valuestring : json_type_name(act),
                 cJSON_IsString(act) ? "'" : "");
            goto done;
        }
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
        if (q && !cJSON_IsNull(q)) {
            fail(err, errlen, "quantization_config: quantized checkpoints are not supported (deltaserve loads "
                              "F32/F16/BF16 weights)");
            goto done;
        }
        bool bias;
        if (get_bool(root, "attention_bias", false, &bias, err, errlen)) goto done;
        if (bias) {
            fail(err, errlen, "attention_bias: true is not supported (OLMo Hybrid has no biases)");
            goto done;
        }
    }

    /* Cross-field rules. */
    if (c->num_attention_heads % c->num_key_value_heads) {
        fail(err, errlen, "num_key_value_heads: %d does not divide num_attention_heads %d",
             c->num_key_value_heads, c->num_attention_heads);
        goto done;
    }
    if (c->linear_num_value_heads % c->linear_num_key_heads) {
        fail(err, errlen, "linear_num_value_heads: %d is not a multiple of linear_num_key_heads %d",
             c->linear_num_value_heads, c->linear_num_key_heads);
        goto done;
    }
    {
        int64_t q = (int64_t)c->num_attention_heads * c->head_dim;
        int64_t kd = (int64_t)c->linear_num_key_heads * c->linear_key_head_dim;
        int64_t vd = (int64_t)c->linear_num_value_heads * c->linear_value_head_dim;
        if (q > CFG_MAX_DIM || 2 * kd + vd > CFG_MAX_DIM) {
            fail(err, errlen, "attention/linear head sizes are too large (heads*head_dim %lld, conv dim %lld)",
                 (long long)q, (long long)(2 * kd + vd));
            goto done;
        }
    }
    if (parse_layer_types(c, root, err, errlen)) goto done;
    if (parse_rope(c, root, err, errlen)) goto done;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------- generation_config.json */

int cfg_parse_generation(struct cfg_model *c, const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return fail(err, errlen, "not valid JSON");
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        fail(err, errlen, "expected a JSON object at the top level, got %s", json_type_name(root));
        goto done;
    }
    /* Validate everything into locals first so a bad file leaves c unchanged. */
    struct cfg_model tmp = *c;
    if (get_eos(&tmp, cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), err, errlen)) goto done;
    if (get_double(root, "temperature", NAN, &tmp.gen_temperature, err, errlen)) goto done;
    if (get_double(root, "top_p", NAN, &tmp.gen_top_p, err, errlen)) goto done;
    if (get_double(root, "repetition_penalty", NAN, &tmp.gen_repetition_penalty, err, errlen)) goto done;
    if (get_int(root, "top_k", -1, 0, INT32_MAX, &tmp.gen_top_k, err, errlen)) goto done;
    if (get_int(root, "max_new_tokens", -1, 0, INT32_MAX, &tmp.gen_max_new_tokens, err, errlen)) goto done;
    {
        const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "do_sample");
        if (ds && !cJSON_IsNull(ds)) {
            bool b;
            if (get_bool(root, "do_sample", false, &b, err, errlen)) goto done;
            tmp.gen_do_sample = b;
        }
    }
    if (!isnan(tmp.gen_temperature) && tmp.gen_temperature < 0) {
        fail(err, errlen, "temperature: must be >= 0, got %g", tmp.gen_temperature);
        goto done;
    }
    if (!isnan(tmp.gen_top_p) && !(tmp.gen_top_p > 0 && tmp.gen_top_p <= 1)) {
        fail(err, errlen, "top_p: must be in (0, 1], got %g", tmp.gen_top_p);
        goto done;
    }
    if (!isnan(tmp.gen_repetition_penalty) && !(tmp.gen_repetition_penalty > 0)) {
        fail(err, errlen, "repetition_penalty: must be > 0, got %g", tmp.gen_repetition_penalty);
        goto done;
    }
    /* The file may also restate bos/pad; fill them only where config had none. */
    int id;
    if (get_token_id(root, "bos_token_id", -1, &id, err, errlen)) goto done;
    if (tmp.bos_token_id < 0) tmp.bos_token_id = id;
    if (get_token_id(root, "pad_token_id", -1, &id, err, errlen)) goto done;
    if (tmp.pad_token_id < 0) tmp.pad_token_id = id;
    *c = tmp;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------- files */

/* Read a whole (small) file. Returns 0, -1 with err, or 1 when it does not exist. */
static int read_small_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 1;
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > CFG_MAX_FILE + 4096) {
                free(buf);
                fclose(f);
                return fail(err, errlen, "%s: larger than %u bytes", path, CFG_MAX_FILE);
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return fail(err, errlen, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fail(err, errlen, "%s: read error", path);
    }
    *out = buf;
    *outlen = n;
    return 0;
}

int cfg_load_dir(struct cfg_model *out, const char *dir, char *err, size_t errlen)
{
    char path[4096], why[512];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    int r = read_small_file(path, &text, &len, err, errlen);
    if (r == 1) return fail(err, errlen, "%s: not found (a model directory needs config.json)", path);
    if (r) return -1;
    r = cfg_parse_json(out, text, len, why, sizeof why);
    free(text);
    if (r) return fail(err, errlen, "%s: %s", path, why);

    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    text = NULL;
    r = read_small_file(path, &text, &len, err, errlen);
    if (r == 1) return 0;
    if (r) return -1;
    r = cfg_parse_generation(out, text, len, why, sizeof why);
    free(text);
    if (r) return fail(err, errlen, "%s: %s", path, why);
    return 0;
}

void cfg_rope_describe(const struct cfg_model *c, char *buf, size_t len)
{
    const struct cfg_rope *r = &c->rope;
    if (r->mode == CFG_ROPE_NONE) {
        snprintf(buf, len, "NoPE (no position encoding: %s is null)", r->source);
        return;
    }
    char from[96];
    if (!strcmp(r->source, "default"))
        snprintf(from, sizeof from, "no rope_theta given: transformers' default 10000");
    else
        snprintf(from, sizeof from, "from %s", r->source);
    switch (r->mode) {
    case CFG_ROPE_LINEAR:
        snprintf(buf, len, "RoPE linear theta=%g factor=%g (%s)", r->theta, r->factor, from);
        break;
    case CFG_ROPE_DYNAMIC:
        snprintf(buf, len, "RoPE dynamic-NTK theta=%g factor=%g original_max=%g (%s)", r->theta, r->factor,
                 r->original_max_position, from);
        break;
    case CFG_ROPE_YARN:
        snprintf(buf, len, "RoPE yarn theta=%g factor=%g original_max=%g beta_fast=%g beta_slow=%g mscale=%g (%s)",
                 r->theta, r->factor, r->original_max_position, r->beta_fast, r->beta_slow,
                 cfg_rope_attention_factor(c), from);
        break;
    case CFG_ROPE_LLAMA3:
        snprintf(buf, len, "RoPE llama3 theta=%g factor=%g low=%g high=%g original_max=%g (%s)", r->theta,
                 r->factor, r->low_freq_factor, r->high_freq_factor, r->original_max_position, from);
        break;
    default:
        snprintf(buf, len, "RoPE theta=%g (%s)", r->theta, from);
        break;
    }
}
