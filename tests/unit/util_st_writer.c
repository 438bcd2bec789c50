/* tests/unit/util_st_writer.c: write small safetensors files (and random
 * OLMo Hybrid checkpoints) from C for the loader and backend tests.
 * Single-threaded test helper; see util_st_writer.h.
 */
#include "tests/unit/util_st_writer.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct stw_tensor {
    char *name;
    enum st_dtype dt;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    unsigned char *data;
    size_t nbytes;
};

struct stw {
    struct stw_tensor *t;
    int n, cap;
};

struct stw *stw_create(void)
{
    return calloc(1, sizeof(struct stw));
}

void stw_destroy(struct stw *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w);
}

int stw_count(const struct stw *w)
{
    return w->n;
}

int stw_add(struct stw *w, const char *name, enum st_dtype dt, int ndim, const int64_t *shape, const void *data,
            size_t nbytes)
{
    if (ndim > ST_MAX_DIMS) return -1;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    if ((size_t)numel * st_dtype_size(dt) != nbytes) return -1;
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 64;
        struct stw_tensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) return -1;
        w->t = nt;
        w->cap = nc;
    }
    struct stw_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return -1;
    }
    if (nbytes) memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
    t->dt = dt;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    w->n++;
    return 0;
}

int stw_remove(struct stw *w, const char *name)
{
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) {
            free(w->t[i].name);
            free(w->t[i].data);
            memmove(&w->t[i], &w->t[i + 1], (size_t)(w->n - i - 1) * sizeof *w->t);
            w->n--;
            return 0;
        }
    return -1;
}

static uint16_t f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

int stw_add_f32(struct stw *w, const char *name, enum st_dtype dt, int ndim, const int64_t *shape,
                const float *vals)
{
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    size_t es = st_dtype_size(dt);
    unsigned char *buf = malloc((size_t)numel * es + 1);
    if (!buf) return -1;
    for (int64_t i = 0; i < numel; i++) {
        if (dt == ST_F32) {
            memcpy(buf + 4 * i, &vals[i], 4);
        } else {
            uint16_t h = dt == ST_BF16 ? st_f32_to_bf16(vals[i]) : f32_to_f16(vals[i]);
            memcpy(buf + 2 * i, &h, 2);
        }
    }
    int rc = stw_add(w, name, dt, ndim, shape, buf, (size_t)numel * es);
    free(buf);
    return rc;
}

static void put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int stw_write(const struct stw *w, const char *path, const char *metadata_json)
{
    size_t cap = 4096, len = 0;
    char *h = malloc(cap);
    if (!h) return -1;
#define APPEND(...)                                                                  \
    do {                                                                             \
        int k_ = snprintf(h + len, cap - len, __VA_ARGS__);                          \
        while ((size_t)k_ >= cap - len) {                                            \
            cap *= 2;                                                                \
            char *nh_ = realloc(h, cap);                                             \
            if (!nh_) {                                                              \
                free(h);                                                             \
                return -1;                                                           \
            }                                                                        \
            h = nh_;                                                                 \
            k_ = snprintf(h + len, cap - len, __VA_ARGS__);                          \
        }                                                                            \
        len += (size_t)k_;                                                           \
    } while (0)
    APPEND("{");
    if (metadata_json) APPEND("\"__metadata__\":%s", metadata_json);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const struct stw_tensor *t = &w->t[i];
        APPEND("%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", (i || metadata_json) ? "," : "", t->name,
               st_dtype_name(t->dt));
        for (int d = 0; d < t->ndim; d++) APPEND("%s%lld", d ? "," : "", (long long)t->shape[d]);
        APPEND("],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    APPEND("}");
    while (len % 8) APPEND(" ");
#undef APPEND
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h);
        return -1;
    }
    unsigned char lenb[8];
    put_u64le(lenb, len);
    int ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(h, 1, len, f) == len;
    for (int i = 0; ok && i < w->n; i++) ok = fwrite(w->t[i].data, 1, w->t[i].nbytes, f) == w->t[i].nbytes;
    free(h);
    if (fclose(f)) ok = 0;
    return ok ? 0 : -1;
}

int stw_write_sharded(const struct stw *w, const char *dir, int nshards)
{
    if (nshards < 1 || nshards > 99) return -1;
    struct stw **parts = calloc((size_t)nshards, sizeof *parts);
    if (!parts) return -1;
    int rc = -1;
    size_t cap = 256 + (size_t)w->n * 320, len = 0;
    char *idx = malloc(cap);
    if (!idx) goto done;
    len += (size_t)snprintf(idx + len, cap - len, "{\"metadata\":{},\"weight_map\":{");
    for (int s = 0; s < nshards; s++)
        if (!(parts[s] = stw_create())) goto done;
    for (int i = 0; i < w->n; i++) {
        const struct stw_tensor *t = &w->t[i];
        int s = i % nshards;
        if (stw_add(parts[s], t->name, t->dt, t->ndim, t->shape, t->data, t->nbytes)) goto done;
        len += (size_t)snprintf(idx + len, cap - len, "%s\"%s\":\"model-%05d-of-%05d.safetensors\"", i ? "," : "",
                                t->name, s + 1, nshards);
    }
    len += (size_t)snprintf(idx + len, cap - len, "}}");
    if (len >= cap) goto done;
    char path[4096];
    for (int s = 0; s < nshards; s++) {
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, nshards);
        if (stw_write(parts[s], path, NULL)) goto done;
    }
    rc = stw_write_text(dir, "model.safetensors.index.json", idx);
done:
    for (int s = 0; s < nshards; s++) stw_destroy(parts[s]);
    free(parts);
    free(idx);
    return rc;
}

int stw_write_raw(const char *path, uint64_t hlen_field, const char *header, const void *data, size_t data_len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t hl = strlen(header);
    unsigned char lenb[8];
    put_u64le(lenb, hlen_field == (uint64_t)-1 ? hl : hlen_field);
    int ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(header, 1, hl, f) == hl;
    if (ok && data_len) {
        if (data) {
            ok = fwrite(data, 1, data_len, f) == data_len;
        } else {
            for (size_t i = 0; ok && i < data_len; i++) ok = fputc(0, f) != EOF;
        }
    }
    if (fclose(f)) ok = 0;
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- random models */

static uint32_t rng_next(uint32_t *s)
{
    /* xorshift32: deterministic across platforms */
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static float rng_uniform(uint32_t *s)
{
    return (float)(rng_next(s) >> 8) / 16777216.0f; /* [0, 1) */
}

enum fill_kind { FILL_MAT, FILL_NORM, FILL_ALOG, FILL_DT };

static int add_rand(struct stw *w, const char *name, enum st_dtype dt, int ndim, const int64_t *shape,
                    enum fill_kind kind, int64_t fan_in, uint32_t *s)
{
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    float *v = malloc((size_t)numel * sizeof *v + 4);
    if (!v) return -1;
    float sc = fan_in > 0 ? 1.0f / sqrtf((float)fan_in) : 1.0f;
    for (int64_t i = 0; i < numel; i++) {
        float u = rng_uniform(s);
        switch (kind) {
        case FILL_MAT: v[i] = (u - 0.5f) * 2.0f * sc; break;
        case FILL_NORM: v[i] = 1.0f + (u - 0.5f) * 0.2f; break;
        case FILL_ALOG: v[i] = logf(1.0f + 15.0f * u); break;
        case FILL_DT: v[i] = -4.0f + 2.0f * u; break;
        }
    }
    int rc = stw_add_f32(w, name, dt, ndim, shape, v);
    free(v);
    return rc;
}

int stw_add_model(struct stw *w, const struct cfg_model *c, enum st_dtype dt, unsigned flags, uint32_t seed)
{
    uint32_t s = seed ? seed : 0x9e3779b9u;
    const int64_t V = c->vocab_size, C = c->hidden_size, F = c->intermediate_size;
    const int64_t QD = (int64_t)c->num_attention_heads * c->head_dim;
    const int64_t KVD = (int64_t)c->num_key_value_heads * c->head_dim;
    const int64_t KD = (int64_t)cfg_gdn_key_dim(c), VD = cfg_gdn_value_dim(c), CD = cfg_gdn_conv_dim(c);
    const int64_t Hv = c->linear_num_value_heads, K = c->linear_conv_kernel_dim;
    char n[256];
#define T2(name, a, b, kind, fan) \
    if (add_rand(w, name, dt, 2, (int64_t[]){ a, b }, kind, fan, &s)) return -1
#define T1(name, a, kind) \
    if (add_rand(w, name, dt, 1, (int64_t[]){ a }, kind, 0, &s)) return -1
#define NM(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
    T2("model.embed_tokens.weight", V, C, FILL_MAT, 1);
    T1("model.norm.weight", C, FILL_NORM);
    if (!(flags & STW_NO_LM_HEAD)) T2("lm_head.weight", V, C, FILL_MAT, C);
    int alt = (flags & STW_ALT_NORMS) != 0;
    for (int i = 0; i < c->num_hidden_layers; i++) {
        if (c->layer_types[i] == CFG_LAYER_FULL) {
            T2(NM("model.layers.%d.self_attn.q_proj.weight", i), QD, C, FILL_MAT, C);
            T2(NM("model.layers.%d.self_attn.k_proj.weight", i), KVD, C, FILL_MAT, C);
            T2(NM("model.layers.%d.self_attn.v_proj.weight", i), KVD, C, FILL_MAT, C);
            T2(NM("model.layers.%d.self_attn.o_proj.weight", i), C, QD, FILL_MAT, QD);
            T1(NM("model.layers.%d.self_attn.q_norm.weight", i), QD, FILL_NORM);
            T1(NM("model.layers.%d.self_attn.k_norm.weight", i), KVD, FILL_NORM);
            /* alt: the names transformers 5.17 saves for attention layers */
            T1(NM("model.layers.%d.%s.weight", i, alt ? "feedforward_layer_norm" : "post_attention_layernorm"), C,
               FILL_NORM);
            T1(NM("model.layers.%d.post_feedforward_layernorm.weight", i), C, FILL_NORM);
        } else {
            T2(NM("model.layers.%d.linear_attn.q_proj.weight", i), KD, C, FILL_MAT, C);
            T2(NM("model.layers.%d.linear_attn.k_proj.weight", i), KD, C, FILL_MAT, C);
            T2(NM("model.layers.%d.linear_attn.v_proj.weight", i), VD, C, FILL_MAT, C);
            T2(NM("model.layers.%d.linear_attn.g_proj.weight", i), VD, C, FILL_MAT, C);
            T2(NM("model.layers.%d.linear_attn.a_proj.weight", i), Hv, C, FILL_MAT, C);
            T2(NM("model.layers.%d.linear_attn.b_proj.weight", i), Hv, C, FILL_MAT, C);
            T2(NM("model.layers.%d.linear_attn.o_proj.weight", i), C, VD, FILL_MAT, VD);
            T1(NM("model.layers.%d.linear_attn.A_log", i), Hv, FILL_ALOG);
            T1(NM("model.layers.%d.linear_attn.dt_bias", i), Hv, FILL_DT);
            T1(NM("model.layers.%d.linear_attn.o_norm.weight", i), c->linear_value_head_dim, FILL_NORM);
            if (flags & STW_SPLIT_CONV) {
                /* uneven, like transformers 5.17: ceil/ceil/rest of CD in 3 */
                int64_t a = (CD + 2) / 3, b = (CD + 2) / 3, r = CD - a - b;
                int64_t part[3] = { a, b, r };
                const char *pn[3] = { "q", "k", "v" };
                for (int p = 0; p < 3; p++)
                    if (add_rand(w, NM("model.layers.%d.linear_attn.%s_conv1d.weight", i, pn[p]), dt, 3,
                                 (int64_t[]){ part[p], 1, K }, FILL_MAT, K, &s))
                        return -1;
            } else if (flags & STW_CONV_2D) {
                T2(NM("model.layers.%d.linear_attn.conv1d.weight", i), CD, K, FILL_MAT, K);
            } else {
                if (add_rand(w, NM("model.layers.%d.linear_attn.conv1d.weight", i), dt, 3, (int64_t[]){ CD, 1, K },
                             FILL_MAT, K, &s))
                    return -1;
            }
            T1(NM("model.layers.%d.%s.weight", i, alt ? "attention_layer_norm" : "input_layernorm"), C, FILL_NORM);
            T1(NM("model.layers.%d.%s.weight", i, alt ? "feedforward_layer_norm" : "post_attention_layernorm"), C,
               FILL_NORM);
        }
        T2(NM("model.layers.%d.mlp.gate_proj.weight", i), F, C, FILL_MAT, C);
        T2(NM("model.layers.%d.mlp.up_proj.weight", i), F, C, FILL_MAT, C);
        T2(NM("model.layers.%d.mlp.down_proj.weight", i), C, F, FILL_MAT, F);
    }
#undef T1
#undef T2
#undef NM
    return 0;
}

/* ---------------------------------------------------------------- temp dirs */

char *stw_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(buf, len, "%s/ds-test-XXXXXX", base);
    return mkdtemp(buf);
}

int stw_write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t l = strlen(text);
    int ok = fwrite(text, 1, l, f) == l;
    if (fclose(f)) ok = 0;
    return ok ? 0 : -1;
}

void stw_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) stw_rmtree(path);
        else unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* ------------------------------------------------ the shared tiny checkpoint */

const char *const STW_TINY_CONFIG_JSON =
    "{\"model_type\": \"olmo_hybrid\", \"vocab_size\": 256, \"hidden_size\": 64,"
    " \"intermediate_size\": 96, \"num_hidden_layers\": 4, \"num_attention_heads\": 8,"
    " \"num_key_value_heads\": 2, \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-06,"
    " \"eos_token_id\": 255, \"pad_token_id\": 1, \"bos_token_id\": 2, \"tie_word_embeddings\": false,"
    " \"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\"},"
    " \"layer_types\": [\"linear_attention\", \"full_attention\", \"linear_attention\", \"full_attention\"],"
    " \"linear_num_key_heads\": 2, \"linear_num_value_heads\": 4, \"linear_key_head_dim\": 16,"
    " \"linear_value_head_dim\": 24, \"linear_conv_kernel_dim\": 4, \"linear_allow_neg_eigval\": true}";

int stw_make_tiny_model(char *dir, size_t cap, uint32_t seed, char *err, size_t errlen)
{
    struct cfg_model c;
    if (cfg_parse_json(&c, STW_TINY_CONFIG_JSON, strlen(STW_TINY_CONFIG_JSON), err, errlen)) return -1;
    if (!stw_tmpdir(dir, cap)) {
        snprintf(err, errlen, "cannot create a temporary directory");
        return -1;
    }
    struct stw *w = NULL;
    char path[4096];
    int rc = -1;
    if (stw_write_text(dir, "config.json", STW_TINY_CONFIG_JSON)) goto fail;
    if (!(w = stw_create()) || stw_add_model(w, &c, ST_F32, 0, seed)) goto fail;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stw_write(w, path, NULL)) goto fail;
    rc = 0;
fail:
    if (rc) snprintf(err, errlen, "cannot write the tiny checkpoint into %s", dir);
    stw_destroy(w);
    return rc;
}
