/* tests/unit/util_fixture.c: reading the HF reference fixtures (refs.json
 * index + refs.bin little-endian f32) and opening a fixture model as a CPU
 * engine. Test-only. */
#include "tests/unit/util_fixture.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

static int32_t *int_array(const cJSON *a, int *n)
{
    *n = cJSON_GetArraySize(a);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(*n > 0 ? *n : 1));
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) v[i++] = (int32_t)it->valuedouble;
    return v;
}

int fx_refs_load(struct fx_refs *r, const char *dir, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    char path[1024];
    size_t blen = 0;
    snprintf(path, sizeof path, "%s/refs.bin", dir);
    char *bin = slurp(path, &blen);
    if (!bin) {
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    r->data = (float *)bin; /* malloc'd: aligned for float */
    r->ndata = blen / sizeof(float);
    snprintf(path, sizeof path, "%s/refs.json", dir);
    char *js = slurp(path, NULL);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    free(js);
    if (!root) {
        snprintf(err, errlen, "cannot parse %s", path);
        fx_refs_free(r);
        return -1;
    }
    r->vocab = cJSON_GetObjectItem(root, "vocab")->valueint;
    const cJSON *seqs = cJSON_GetObjectItem(root, "sequences");
    r->nseq = cJSON_GetArraySize(seqs);
    r->seqs = calloc((size_t)r->nseq, sizeof(*r->seqs));
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, seqs)
    {
        struct fx_seq *q = &r->seqs[i++];
        snprintf(q->name, sizeof q->name, "%s", cJSON_GetObjectItem(s, "name")->valuestring);
        q->tokens = int_array(cJSON_GetObjectItem(s, "tokens"), &q->len);
        q->lp = r->data + (size_t)cJSON_GetObjectItem(s, "lp_offset")->valuedouble;
    }
    const cJSON *full = cJSON_GetObjectItem(root, "full_rows");
    r->full_seq = fx_refs_find(r, cJSON_GetObjectItem(full, "seq")->valuestring);
    r->full_start = cJSON_GetObjectItem(full, "start")->valueint;
    r->full_count = cJSON_GetObjectItem(full, "count")->valueint;
    r->full = r->data + (size_t)cJSON_GetObjectItem(full, "offset")->valuedouble;
    const cJSON *inv = cJSON_GetObjectItem(root, "rope_inv_freq");
    if (inv) {
        r->n_inv = cJSON_GetArraySize(inv);
        r->inv_freq = malloc(sizeof(float) * (size_t)r->n_inv);
        int j = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, inv) r->inv_freq[j++] = (float)it->valuedouble;
        r->attn_scaling = cJSON_GetObjectItem(root, "rope_attention_scaling")->valuedouble;
    }
    const cJSON *gr = cJSON_GetObjectItem(root, "greedy");
    if (gr) {
        r->greedy_prompt = int_array(cJSON_GetObjectItem(gr, "prompt"), &r->n_greedy_prompt);
        r->greedy_out = int_array(cJSON_GetObjectItem(gr, "output"), &r->n_greedy_out);
    }
    cJSON_Delete(root);
    if (r->full_seq < 0 || (size_t)(r->full - r->data) + (size_t)r->full_count * r->vocab > r->ndata) {
        snprintf(err, errlen, "%s: full rows out of range", dir);
        fx_refs_free(r);
        return -1;
    }
    return 0;
}

void fx_refs_free(struct fx_refs *r)
{
    for (int i = 0; r->seqs && i < r->nseq; i++) free(r->seqs[i].tokens);
    free(r->seqs);
    free(r->data);
    free(r->inv_freq);
    free(r->greedy_prompt);
    free(r->greedy_out);
    memset(r, 0, sizeof(*r));
}

int fx_refs_find(const struct fx_refs *r, const char *name)
{
    for (int i = 0; i < r->nseq; i++)
        if (!strcmp(r->seqs[i].name, name)) return i;
    return -1;
}

int fx_model_open(struct fx_model *m, const char *dir, int num_blocks, int block_size, int num_slots,
                  char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    if (cfg_load_dir(&m->cfg, dir, err, errlen)) return -1;
    if (eng_weights_load(&m->w, &m->cfg, dir, err, errlen)) return -1;
    struct eng_memory mem = {.num_kv_blocks = num_blocks, .block_size = block_size,
                             .num_state_slots = num_slots};
    m->e = eng_create(&m->cfg, &m->w, &eng_backend_cpu, &mem, err, errlen);
    if (!m->e) {
        eng_weights_free(&m->w);
        return -1;
    }
    /* One thread: the tiny models gain nothing from more, and on a loaded CI
     * box idle OpenMP workers spinning cost more than the work itself. The
     * threads test sets more and checks the results are bit-identical. */
    m->e->num_threads = 1;
    return 0;
}

void fx_model_close(struct fx_model *m)
{
    eng_destroy(m->e);
    eng_weights_free(&m->w);
    memset(m, 0, sizeof(*m));
}
