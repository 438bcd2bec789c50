/* engine/weights.c: bind every checkpoint tensor to its role in the model,
 * checking its shape against the config.
 *
 * Runs on the main thread at startup. Names follow MODEL.md "Checkpoint formats
 * seen in the wild": the transformers names, split q/k/v conv tensors, and the
 * alternate norm names attention_layer_norm / feedforward_layer_norm. A tensor
 * that is missing, mis-shaped, or present but used by no role is an error that
 * names it; so is a checkpoint that gives both spellings of one role.
 *
 * Norm names. transformers' linear (GDN) decoder layer has input_layernorm
 * (pre-norm of the mixer) and post_attention_layernorm (pre-norm of the MLP);
 * its attention layer (OLMo 2/3 post-norm) has post_attention_layernorm (on the
 * attention output) and post_feedforward_layernorm (on the MLP output). The
 * released checkpoints (convert_olmo_hybrid_weights_to_hf.py) name the GDN
 * norms attention_layer_norm / feedforward_layer_norm, and transformers'
 * conversion mapping for olmo_hybrid renames, in EVERY layer,
 *     attention_layer_norm   <-> input_layernorm
 *     feedforward_layer_norm <-> post_attention_layernorm
 * (on load, and in reverse on save: 5.17 writes attention layers with
 * feedforward_layer_norm + post_feedforward_layernorm). So accepted are:
 *   GDN:  in_norm        = input_layernorm | attention_layer_norm
 *         post_attn_norm = post_attention_layernorm | feedforward_layer_norm
 *   attn: post_attn_norm = post_attention_layernorm | feedforward_layer_norm
 *         post_ffn_norm  = post_feedforward_layernorm
 */
#include "engine/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Loader state: which checkpoint tensors some role has claimed. */
struct binder {
    const struct st_set *st;
    char **used; /* [nfiles][n] */
    char *err;
    size_t errlen;
};

/* Find NAME and mark it used; NULL when absent. */
static const struct st_tensor *claim(struct binder *b, const char *name)
{
    for (int i = 0; i < b->st->nfiles; i++) {
        const struct st_file *f = &b->st->files[i];
        const struct st_tensor *t = st_find(f, name);
        if (t) {
            b->used[i][t - f->tensors] = 1;
            return t;
        }
    }
    return NULL;
}

static int has(const struct binder *b, const char *name)
{
    return st_set_find(b->st, name) != NULL;
}

static void shape_str(char *buf, size_t len, int nd, const int64_t *d)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < nd && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static void view(struct eng_tensor *dst, const struct st_tensor *t, int nd, const int64_t *shape)
{
    dst->dtype = t->dtype;
    dst->numel = t->numel;
    dst->data = t->data;
    dst->owned = NULL;
    dst->name = t->name;
    dst->ndim = nd;
    for (int i = 0; i < nd; i++) dst->shape[i] = shape[i];
}

/* Bind a tensor whose shape must be exactly shape[nd]. */
static int bind(struct binder *b, struct eng_tensor *dst, const char *name, int nd, const int64_t *shape)
{
    const struct st_tensor *t = claim(b, name);
    if (!t) return fail(b->err, b->errlen, "missing tensor %s", name);
    int ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[128], got[128];
        shape_str(want, sizeof want, nd, shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return fail(b->err, b->errlen, "tensor %s has shape %s, expected %s from config.json", name, got, want);
    }
    view(dst, t, nd, shape);
    return 0;
}

static int bind1(struct binder *b, struct eng_tensor *dst, const char *name, int64_t d0)
{
    return bind(b, dst, name, 1, (int64_t[]){ d0 });
}

static int bind2(struct binder *b, struct eng_tensor *dst, const char *name, int64_t d0, int64_t d1)
{
    return bind(b, dst, name, 2, (int64_t[]){ d0, d1 });
}

/* One role with two accepted spellings (prefix + a or prefix + b). Which one
 * was used is returned through *which (0 = a, 1 = b). */
static int bind_either(struct binder *b, struct eng_tensor *dst, const char *prefix, const char *a,
                       const char *bname, int64_t d0, int *which)
{
    char na[256], nb[256];
    snprintf(na, sizeof na, "%s%s", prefix, a);
    snprintf(nb, sizeof nb, "%s%s", prefix, bname);
    int ha = has(b, na), hb = has(b, nb);
    if (ha && hb) return fail(b->err, b->errlen, "both %s and %s are present: one role, two tensors", na, nb);
    if (!ha && !hb) return fail(b->err, b->errlen, "missing tensor %s (or %s)", na, nb);
    *which = hb;
    return bind1(b, dst, hb ? nb : na, d0);
}

/* The depthwise conv (CD, K): fused conv1d.weight [CD, 1, K] (or [CD, K]), or
 * q/k/v_conv1d parts [n_i, 1, K] whose n_i sum to CD. transformers 5.17 writes
 * uneven parts, so only the total and each K are checked; the parts are
 * concatenated in q, k, v order (the channel order of u = [q; k; v]). */
static int bind_conv(struct binder *b, struct eng_tensor *dst, const char *pre, int64_t CD, int64_t K,
                     int *split)
{
    char fused[256], parts[3][256];
    static const char *pn[3] = { "q", "k", "v" };
    snprintf(fused, sizeof fused, "%sconv1d.weight", pre);
    int any_split = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(parts[i], sizeof parts[i], "%s%s_conv1d.weight", pre, pn[i]);
        any_split |= has(b, parts[i]);
    }
    int64_t shape[2] = { CD, K };
    if (has(b, fused)) {
        if (any_split)
            return fail(b->err, b->errlen, "both %s and split q/k/v_conv1d tensors are present", fused);
        *split = 0;
        const struct st_tensor *t = claim(b, fused);
        int ok = (t->ndim == 3 && t->shape[0] == CD && t->shape[1] == 1 && t->shape[2] == K) ||
                 (t->ndim == 2 && t->shape[0] == CD && t->shape[1] == K);
        if (!ok) {
            char got[128];
            shape_str(got, sizeof got, t->ndim, t->shape);
            return fail(b->err, b->errlen, "tensor %s has shape %s, expected [%lld, 1, %lld] from config.json", fused,
                        got, (long long)CD, (long long)K);
        }
        view(dst, t, 2, shape);
        return 0;
    }
    if (!any_split) return fail(b->err, b->errlen, "missing tensor %s (or split %s)", fused, parts[0]);
    *split = 1;
    const struct st_tensor *t[3];
    int64_t total = 0;
    for (int i = 0; i < 3; i++) {
        t[i] = claim(b, parts[i]);
        if (!t[i]) return fail(b->err, b->errlen, "missing tensor %s (the other split conv parts are present)", parts[i]);
        int ok = (t[i]->ndim == 3 && t[i]->shape[1] == 1 && t[i]->shape[2] == K) ||
                 (t[i]->ndim == 2 && t[i]->shape[1] == K);
        if (!ok || t[i]->shape[0] < 1) {
            char got[128];
            shape_str(got, sizeof got, t[i]->ndim, t[i]->shape);
            return fail(b->err, b->errlen, "tensor %s has shape %s, expected [n, 1, %lld]", parts[i], got, (long long)K);
        }
        if (t[i]->dtype != t[0]->dtype)
            return fail(b->err, b->errlen, "tensor %s is %s but %s is %s: split conv parts must share a dtype",
                        parts[i], st_dtype_name(t[i]->dtype), parts[0], st_dtype_name(t[0]->dtype));
        total += t[i]->shape[0];
    }
    if (total != CD)
        return fail(b->err, b->errlen, "split conv %s{q,k,v}_conv1d.weight have %lld channels in all, expected conv dim %lld",
                    pre, (long long)total, (long long)CD);
    size_t es = st_dtype_size(t[0]->dtype);
    unsigned char *buf = malloc((size_t)(CD * K) * es);
    if (!buf) return fail(b->err, b->errlen, "out of memory assembling %s", parts[0]);
    size_t o = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(buf + o, t[i]->data, t[i]->nbytes);
        o += t[i]->nbytes;
    }
    view(dst, t[0], 2, shape);
    dst->numel = CD * K;
    dst->data = buf;
    dst->owned = buf;
    return 0;
}

static int load_layer(struct binder *b, struct eng_layer_weights *lw, const struct cfg_model *c, int i,
                      int *alt_norms, int *split_conv)
{
    char pre[96], name[256];
    const int64_t C = c->hidden_size, F = c->intermediate_size;
    lw->is_attn = c->layer_types[i] == CFG_LAYER_FULL;
    snprintf(pre, sizeof pre, "model.layers.%d.", i);
#define NM(suffix) (snprintf(name, sizeof name, "%s%s", pre, suffix), name)
    int w1 = 0, w2 = 0;
    if (lw->is_attn) {
        const int64_t QD = (int64_t)c->num_attention_heads * c->head_dim;
        const int64_t KVD = (int64_t)c->num_key_value_heads * c->head_dim;
        if (bind2(b, &lw->wq, NM("self_attn.q_proj.weight"), QD, C)) return -1;
        if (bind2(b, &lw->wk, NM("self_attn.k_proj.weight"), KVD, C)) return -1;
        if (bind2(b, &lw->wv, NM("self_attn.v_proj.weight"), KVD, C)) return -1;
        if (bind2(b, &lw->wo, NM("self_attn.o_proj.weight"), C, QD)) return -1;
        if (bind1(b, &lw->q_norm, NM("self_attn.q_norm.weight"), QD)) return -1;
        if (bind1(b, &lw->k_norm, NM("self_attn.k_norm.weight"), KVD)) return -1;
        /* transformers 5.17's conversion mapping renames post_attention_layernorm
         * <-> feedforward_layer_norm in every layer (attention layers too), so
         * an attention layer saved by it holds feedforward_layer_norm (the norm
         * on the attention output) and post_feedforward_layernorm. */
        if (bind_either(b, &lw->post_attn_norm, pre, "post_attention_layernorm.weight",
                        "feedforward_layer_norm.weight", C, &w1))
            return -1;
        if (bind1(b, &lw->post_ffn_norm, NM("post_feedforward_layernorm.weight"), C)) return -1;
        w2 = w1;
    } else {
        const int64_t KD = (int64_t)c->linear_num_key_heads * c->linear_key_head_dim;
        const int64_t VD = (int64_t)c->linear_num_value_heads * c->linear_value_head_dim;
        const int64_t Hv = c->linear_num_value_heads;
        if (bind2(b, &lw->gq, NM("linear_attn.q_proj.weight"), KD, C)) return -1;
        if (bind2(b, &lw->gk, NM("linear_attn.k_proj.weight"), KD, C)) return -1;
        if (bind2(b, &lw->gv, NM("linear_attn.v_proj.weight"), VD, C)) return -1;
        if (bind2(b, &lw->gg, NM("linear_attn.g_proj.weight"), VD, C)) return -1;
        if (bind2(b, &lw->ga, NM("linear_attn.a_proj.weight"), Hv, C)) return -1;
        if (bind2(b, &lw->gb, NM("linear_attn.b_proj.weight"), Hv, C)) return -1;
        if (bind2(b, &lw->go, NM("linear_attn.o_proj.weight"), C, VD)) return -1;
        if (bind1(b, &lw->A_log, NM("linear_attn.A_log"), Hv)) return -1;
        if (bind1(b, &lw->dt_bias, NM("linear_attn.dt_bias"), Hv)) return -1;
        if (bind1(b, &lw->o_norm, NM("linear_attn.o_norm.weight"), c->linear_value_head_dim)) return -1;
        char cpre[128];
        snprintf(cpre, sizeof cpre, "%slinear_attn.", pre);
        int sp = 0;
        if (bind_conv(b, &lw->conv, cpre, 2 * KD + VD, c->linear_conv_kernel_dim, &sp)) return -1;
        *split_conv |= sp ? 1 : 2;
        if (bind_either(b, &lw->in_norm, pre, "input_layernorm.weight", "attention_layer_norm.weight", C, &w1))
            return -1;
        if (bind_either(b, &lw->post_attn_norm, pre, "post_attention_layernorm.weight",
                        "feedforward_layer_norm.weight", C, &w2))
            return -1;
    }
    *alt_norms |= (w1 ? 1 : 2) | (w2 ? 1 : 2);
    if (bind2(b, &lw->w_gate, NM("mlp.gate_proj.weight"), F, C)) return -1;
    if (bind2(b, &lw->w_up, NM("mlp.up_proj.weight"), F, C)) return -1;
    if (bind2(b, &lw->w_down, NM("mlp.down_proj.weight"), C, F)) return -1;
#undef NM
    return 0;
}

/* Tensors no role claims. Non-persistent rotary buffers that old writers
 * saved (…rotary_emb.inv_freq) are derived from the config and ignored, as
 * transformers ignores them. */
static int check_unused(struct binder *b)
{
    int extra = 0;
    const char *first = NULL;
    for (int i = 0; i < b->st->nfiles; i++) {
        const struct st_file *f = &b->st->files[i];
        for (int j = 0; j < f->n; j++) {
            if (b->used[i][j]) continue;
            const char *nm = f->tensors[j].name;
            static const char suffix[] = "rotary_emb.inv_freq";
            size_t l = strlen(nm), sl = sizeof suffix - 1;
            if (l >= sl && !strcmp(nm + l - sl, suffix)) continue;
            if (!first) first = nm;
            extra++;
        }
    }
    if (extra)
        return fail(b->err, b->errlen, "unexpected tensor %s%s (not part of an OLMo Hybrid model with this config.json)",
                    first, extra > 1 ? " and others" : "");
    return 0;
}

int eng_weights_load(struct eng_weights *w, const struct cfg_model *c, const char *dir, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    char why[768];
    struct binder b = { .st = &w->st, .err = why, .errlen = sizeof why };
    why[0] = 0;
    if (st_set_open(&w->st, dir, err, errlen)) return -1;
    b.used = calloc(w->st.nfiles ? w->st.nfiles : 1, sizeof *b.used);
    if (!b.used) goto oom;
    for (int i = 0; i < w->st.nfiles; i++)
        if (!(b.used[i] = calloc(w->st.files[i].n ? w->st.files[i].n : 1, 1))) goto oom;
    w->num_layers = c->num_hidden_layers;
    w->layers = calloc(w->num_layers, sizeof *w->layers);
    if (!w->layers) goto oom;

    const int64_t V = c->vocab_size, C = c->hidden_size;
    if (bind2(&b, &w->embed, "model.embed_tokens.weight", V, C)) goto fail;
    if (bind1(&b, &w->final_norm, "model.norm.weight", C)) goto fail;
    if (c->tie_word_embeddings) {
        /* Tied: the head IS the embedding (transformers ties after loading, so
         * a stray lm_head.weight in the file has no effect). */
        if (claim(&b, "lm_head.weight")) { /* accepted, unused */
        }
        w->lm_head = w->embed;
        w->lm_head.owned = NULL;
    } else {
        if (!has(&b, "lm_head.weight")) {
            snprintf(why, sizeof why, "missing tensor lm_head.weight (and tie_word_embeddings is false)");
            goto fail;
        }
        if (bind2(&b, &w->lm_head, "lm_head.weight", V, C)) goto fail;
    }
    int alt = 0, split = 0;
    for (int i = 0; i < w->num_layers; i++)
        if (load_layer(&b, &w->layers[i], c, i, &alt, &split)) goto fail;
    if (check_unused(&b)) goto fail;

    snprintf(w->conv_variant, sizeof w->conv_variant, "%s", split == 1 ? "split" : split == 2 ? "fused" : "mixed");
    snprintf(w->norm_variant, sizeof w->norm_variant, "%s",
             alt == 2 ? "input/post_attention_layernorm" : alt == 1 ? "attention/feedforward_layer_norm" : "mixed");
    for (int i = 0; i < w->st.nfiles; i++) free(b.used[i]);
    free(b.used);
    return 0;
oom:
    snprintf(why, sizeof why, "out of memory");
fail:
    if (b.used) {
        for (int i = 0; i < w->st.nfiles; i++) free(b.used[i]);
        free(b.used);
    }
    fail(err, errlen, "%s: %s", dir, why);
    eng_weights_free(w);
    return -1;
}

void eng_weights_free(struct eng_weights *w)
{
    if (!w) return;
    if (w->layers)
        for (int i = 0; i < w->num_layers; i++) free(w->layers[i].conv.owned);
    free(w->layers);
    st_set_close(&w->st);
    memset(w, 0, sizeof *w);
}

void eng_tensor_to_f32(const struct eng_tensor *t, float *dst)
{
    st_convert_f32(t->dtype, t->data, t->numel, dst);
}
