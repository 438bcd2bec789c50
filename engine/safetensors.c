/* engine/safetensors.c: validate and expose safetensors files (mmapped,
 * read-only), single or sharded through model.safetensors.index.json.
 *
 * Runs on the main thread at startup (and in the fuzzer via st_parse). The
 * header is hostile input: its length is bounded by the file, every tensor's
 * dtype, shape (with overflow checks), and data_offsets are checked against the
 * data section, tensors may not overlap and names may not repeat. Only then is
 * a tensor exposed. Tensors are kept sorted by name so lookups are a bsearch.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data section; offsets are relative to it.
 */
#include "engine/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation caps the header at 100 MB; a 7B checkpoint's
 * header is a few tens of KB. */
#define ST_MAX_HEADER (100u << 20)
#define ST_MAX_INDEX (64u << 20)

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

size_t st_dtype_size(enum st_dtype d)
{
    return d == ST_F32 ? 4 : 2;
}

const char *st_dtype_name(enum st_dtype d)
{
    switch (d) {
    case ST_F32: return "F32";
    case ST_F16: return "F16";
    case ST_BF16: return "BF16";
    }
    return "?";
}

/* ---------------------------------------------------------------- conversions */

float st_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Data may be unaligned (the header length need not be a multiple of 4), so
 * every read goes through memcpy. */
void st_convert_f32(enum st_dtype dt, const void *src, int64_t n, float *dst)
{
    const unsigned char *p = src;
    if (dt == ST_F32) {
        memcpy(dst, p, (size_t)n * 4);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = dt == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
    }
}

float st_get_f32(const struct st_tensor *t, int64_t i)
{
    float f;
    st_convert_f32(t->dtype, (const unsigned char *)t->data + (size_t)i * st_dtype_size(t->dtype), 1, &f);
    return f;
}

void st_to_f32(const struct st_tensor *t, float *dst)
{
    st_convert_f32(t->dtype, t->data, t->numel, dst);
}

/* ---------------------------------------------------------------- header parsing */

static void free_tensors(struct st_tensor *t, int n)
{
    if (!t) return;
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

struct span {
    uint64_t begin, end;
    int idx;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A JSON number that is an exact non-negative integer below 2^53 (cJSON keeps
 * numbers as doubles; beyond 2^53 they would silently round). */
static int get_u53(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= 0) || v != floor(v) || v >= 9007199254740992.0) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_entry(struct st_tensor *t, const cJSON *e, const unsigned char *data, uint64_t data_len,
                       uint64_t *begin, uint64_t *end, char *err, size_t errlen)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return fail(err, errlen, "tensor '%.200s': entry is not an object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return fail(err, errlen, "tensor '%.200s': missing or non-string dtype", name);
    if (!strcmp(dt->valuestring, "F32")) t->dtype = ST_F32;
    else if (!strcmp(dt->valuestring, "F16")) t->dtype = ST_F16;
    else if (!strcmp(dt->valuestring, "BF16")) t->dtype = ST_BF16;
    else
        return fail(err, errlen, "tensor '%.200s': unsupported dtype '%.20s' (deltaserve loads F32, F16, BF16)",
                    name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return fail(err, errlen, "tensor '%.200s': missing or non-list shape", name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return fail(err, errlen, "tensor '%.200s': %d dimensions (at most %d)", name, nd, ST_MAX_DIMS);
    int64_t numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh)
    {
        uint64_t v;
        if (get_u53(d, &v)) return fail(err, errlen, "tensor '%.200s': shape[%d] is not a non-negative integer", name, i);
        t->shape[i] = (int64_t)v;
        if (__builtin_mul_overflow(numel, (int64_t)v, &numel))
            return fail(err, errlen, "tensor '%.200s': shape product overflows", name);
        i++;
    }
    t->ndim = nd;
    t->numel = numel;
    uint64_t nbytes;
    if (__builtin_mul_overflow((uint64_t)numel, (uint64_t)st_dtype_size(t->dtype), &nbytes))
        return fail(err, errlen, "tensor '%.200s': byte size overflows", name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return fail(err, errlen, "tensor '%.200s': data_offsets must be a list [begin, end]", name);
    if (get_u53(cJSON_GetArrayItem(off, 0), begin) || get_u53(cJSON_GetArrayItem(off, 1), end))
        return fail(err, errlen, "tensor '%.200s': data_offsets are not non-negative integers", name);
    if (*begin > *end)
        return fail(err, errlen, "tensor '%.200s': data_offsets begin %llu > end %llu", name,
                    (unsigned long long)*begin, (unsigned long long)*end);
    if (*end > data_len)
        return fail(err, errlen, "tensor '%.200s': data_offsets end %llu is past the data section (%llu bytes): "
                    "truncated or corrupt file", name, (unsigned long long)*end, (unsigned long long)data_len);
    if (*end - *begin != nbytes)
        return fail(err, errlen, "tensor '%.200s': data_offsets span %llu bytes but %s shape needs %llu", name,
                    (unsigned long long)(*end - *begin), dt->valuestring, (unsigned long long)nbytes);
    t->nbytes = (size_t)nbytes;
    t->data = data + *begin;
    return 0;
}

int st_parse(struct st_file *out, const void *data, size_t len, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const unsigned char *p = data;
    if (len < 8) return fail(err, errlen, "file is %zu bytes: too short for a safetensors header", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > len - 8)
        return fail(err, errlen, "header length %llu exceeds the file (%zu bytes): truncated or corrupt",
                    (unsigned long long)hlen, len);
    if (hlen > ST_MAX_HEADER) return fail(err, errlen, "header length %llu is over the 100 MB limit", (unsigned long long)hlen);
    if (hlen < 2 || p[8] != '{') return fail(err, errlen, "header does not start with a JSON object");
    const char *hdr = (const char *)p + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) return fail(err, errlen, "header is not valid JSON");
    /* Writers pad the header with spaces to an 8-byte boundary; nothing else
     * may follow the object. */
    for (const char *q = end; q && q < hdr + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != '\0') {
            cJSON_Delete(root);
            return fail(err, errlen, "header has trailing bytes after the JSON object");
        }
    int rc = -1;
    struct st_tensor *ts = NULL;
    struct span *spans = NULL;
    int n = 0;
    if (!cJSON_IsObject(root)) {
        fail(err, errlen, "header is not a JSON object");
        goto done;
    }
    int cap = cJSON_GetArraySize(root);
    ts = calloc(cap ? cap : 1, sizeof *ts);
    spans = calloc(cap ? cap : 1, sizeof *spans);
    if (!ts || !spans) {
        fail(err, errlen, "out of memory");
        goto done;
    }
    const unsigned char *dsec = p + 8 + hlen;
    uint64_t dlen = len - 8 - hlen;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (!e->string || !e->string[0]) {
            fail(err, errlen, "header has a tensor with an empty name");
            goto done;
        }
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                fail(err, errlen, "__metadata__ is not an object");
                goto done;
            }
            continue;
        }
        struct st_tensor *t = &ts[n];
        if (parse_entry(t, e, dsec, dlen, &spans[n].begin, &spans[n].end, err, errlen)) goto done;
        t->name = strdup(e->string);
        if (!t->name) {
            fail(err, errlen, "out of memory");
            goto done;
        }
        spans[n].idx = n;
        n++;
    }
    /* No two tensors may share bytes (an empty tensor shares none). */
    qsort(spans, n, sizeof *spans, cmp_span);
    uint64_t prev_end = 0;
    int prev = -1;
    for (int i = 0; i < n; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev >= 0 && spans[i].begin < prev_end) {
            fail(err, errlen, "tensors '%.200s' and '%.200s' overlap in the data section", ts[prev].name,
                 ts[spans[i].idx].name);
            goto done;
        }
        prev_end = spans[i].end;
        prev = spans[i].idx;
    }
    qsort(ts, n, sizeof *ts, cmp_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(ts[i - 1].name, ts[i].name)) {
            fail(err, errlen, "tensor '%.200s' appears twice in the header", ts[i].name);
            goto done;
        }
    out->tensors = ts;
    out->n = n;
    ts = NULL;
    rc = 0;
done:
    free_tensors(ts, n);
    free(spans);
    cJSON_Delete(root);
    return rc;
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    struct st_tensor key = { .name = (char *)name };
    return f->n ? bsearch(&key, f->tensors, f->n, sizeof key, cmp_name) : NULL;
}

/* ---------------------------------------------------------------- files */

int st_open(struct st_file *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    char why[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, errlen, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fail(err, errlen, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        return fail(err, errlen, "%s: file is %zu bytes: too short for a safetensors header", path, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return fail(err, errlen, "%s: mmap: %s", path, strerror(errno));
    if (st_parse(f, map, len, why, sizeof why)) {
        munmap(map, len);
        memset(f, 0, sizeof *f);
        return fail(err, errlen, "%s: %s", path, why);
    }
    f->map = map;
    f->map_len = len;
    f->path = strdup(path);
    if (!f->path) {
        st_close(f);
        return fail(err, errlen, "%s: out of memory", path);
    }
    return 0;
}

void st_close(struct st_file *f)
{
    if (!f) return;
    free_tensors(f->tensors, f->n);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* ---------------------------------------------------------------- sets (sharded) */

static int set_add_file(struct st_set *s, const char *path, char *err, size_t errlen)
{
    struct st_file *nf = realloc(s->files, (size_t)(s->nfiles + 1) * sizeof *nf);
    if (!nf) return fail(err, errlen, "out of memory");
    s->files = nf;
    if (st_open(&s->files[s->nfiles], path, err, errlen)) return -1;
    s->nfiles++;
    return 0;
}

static int read_file_text(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, errlen, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > ST_MAX_INDEX) {
        close(fd);
        return fail(err, errlen, "%s: not a regular file under 64 MB", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return fail(err, errlen, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            free(buf);
            close(fd);
            return fail(err, errlen, "%s: read error", path);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *outlen = n;
    return 0;
}

/* A shard name from the index must be a plain file name in DIR (no path
 * separators, no "..": the index must not reach outside the model). */
static int shard_name_ok(const char *s)
{
    return s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int open_index(struct st_set *s, const char *dir, const char *ipath, char *err, size_t errlen)
{
    char *text = NULL, path[4096];
    size_t len = 0;
    if (read_file_text(ipath, &text, &len, err, errlen)) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return fail(err, errlen, "%s: not valid JSON", ipath);
    int rc = -1;
    char **shards = NULL;
    int nshards = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        fail(err, errlen, "%s: weight_map missing or not an object", ipath);
        goto done;
    }
    int cap = cJSON_GetArraySize(wm);
    if (cap == 0) {
        fail(err, errlen, "%s: weight_map is empty", ipath);
        goto done;
    }
    shards = calloc(cap, sizeof *shards);
    if (!shards) {
        fail(err, errlen, "out of memory");
        goto done;
    }
    /* Pass 1: the distinct shard files, in first-seen order. */
    const cJSON *e;
    cJSON_ArrayForEach(e, wm)
    {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            fail(err, errlen, "%s: weight_map['%.200s'] is not a plain shard file name", ipath, e->string);
            goto done;
        }
        int k;
        for (k = 0; k < nshards; k++)
            if (!strcmp(shards[k], e->valuestring)) break;
        if (k == nshards) shards[nshards++] = e->valuestring;
    }
    for (int k = 0; k < nshards; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, shards[k]);
        if (set_add_file(s, path, err, errlen)) goto done;
    }
    /* Pass 2: every mapped tensor is in the shard that the map names. */
    cJSON_ArrayForEach(e, wm)
    {
        int k;
        for (k = 0; k < nshards; k++)
            if (!strcmp(shards[k], e->valuestring)) break;
        if (!st_find(&s->files[k], e->string)) {
            fail(err, errlen, "%s: tensor '%.200s' is mapped to %s but that shard does not contain it", ipath,
                 e->string, shards[k]);
            goto done;
        }
    }
    /* And the converse: a shard tensor the map does not name, or a name in
     * two shards, makes lookups ambiguous. */
    for (int k = 0; k < s->nfiles; k++)
        for (int i = 0; i < s->files[k].n; i++) {
            const char *nm = s->files[k].tensors[i].name;
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(wm, nm);
            if (!m || strcmp(m->valuestring, shards[k])) {
                fail(err, errlen, "%s: shard %s holds tensor '%.200s' that the index maps %s%s", ipath, shards[k],
                     nm, m ? "to " : "nowhere", m ? m->valuestring : "");
                goto done;
            }
        }
    rc = 0;
done:
    free(shards);
    cJSON_Delete(root);
    return rc;
}

int st_set_open(struct st_set *s, const char *dir, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(path, &sb) == 0) {
        if (open_index(s, dir, path, err, errlen)) goto fail;
        return 0;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &sb) == 0) {
        if (set_add_file(s, path, err, errlen)) goto fail;
        return 0;
    }
    /* Else exactly one *.safetensors file. */
    DIR *d = opendir(dir);
    if (!d) return fail(err, errlen, "%s: %s", dir, strerror(errno));
    char found[1024] = "";
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 12 && !strcmp(de->d_name + l - 12, ".safetensors")) {
            if (!count) snprintf(found, sizeof found, "%s", de->d_name);
            count++;
        }
    }
    closedir(d);
    if (count == 0) return fail(err, errlen, "%s: no model.safetensors, index or *.safetensors file", dir);
    if (count > 1)
        return fail(err, errlen, "%s: %d .safetensors files but no model.safetensors.index.json to say which", dir,
                    count);
    snprintf(path, sizeof path, "%s/%s", dir, found);
    if (set_add_file(s, path, err, errlen)) goto fail;
    return 0;
fail:
    st_set_close(s);
    return -1;
}

void st_set_close(struct st_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->nfiles; i++) st_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

const struct st_tensor *st_set_find(const struct st_set *s, const char *name)
{
    for (int i = 0; i < s->nfiles; i++) {
        const struct st_tensor *t = st_find(&s->files[i], name);
        if (t) return t;
    }
    return NULL;
}
