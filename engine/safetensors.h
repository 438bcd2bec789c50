/* engine/safetensors.h: read-only, mmapped safetensors files (single file or
 * a sharded model.safetensors.index.json).
 *
 * defines: struct st_file, struct st_tensor, struct st_set, st_parse, st_open,
 *          st_close, st_find, st_set_open, st_set_close, st_set_find, the
 *          dtype helpers and the bf16/f16/f32 converters
 *
 * Threads: opened on the main thread at startup; afterwards read-only, so any
 * thread may read tensor data without locking.
 *
 * Safety: the header is untrusted input. Every offset, size, shape and dtype is
 * validated against the file before any tensor is exposed: a truncated or
 * hostile file is an error, never an out-of-bounds read.
 */
#ifndef DS_ENGINE_SAFETENSORS_H
#define DS_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum st_dtype { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2 };

#define ST_MAX_DIMS 8

struct st_tensor {
    char *name;              /* owned */
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;        /* borrowed: points into the file's mmap. NOT necessarily
                              * aligned to the element size (writers need not pad the
                              * header): read through memcpy or the converters below. */
    size_t nbytes;
};

struct st_file {
    char *path;              /* owned */
    void *map;               /* owned mmap of the whole file */
    size_t map_len;
    struct st_tensor *tensors; /* owned [n], sorted by name (strcmp) */
    int n;
};

/* Parse and validate a safetensors image already in memory (used by st_open and
 * by the fuzzer). data/len is the whole file. Returns 0 and fills out (tensor
 * data pointers point into data; out->map/path stay NULL, so st_close frees only
 * the tensor list), or -1 with a reason in err (out is then empty).
 * Rejected: header length past the file or over 100 MB, non-JSON or trailing
 * bytes (space padding is fine), dtypes other than F32/F16/BF16 (the error
 * names tensor and dtype), negative/non-integral/overflowing shapes, offsets
 * with begin > end or end past the data section, end-begin != numel*elemsize,
 * overlapping tensors, duplicate names. __metadata__ is skipped. */
int st_parse(struct st_file *out, const void *data, size_t len, char *err, size_t errlen);

/* mmap PATH read-only and st_parse it. Returns 0 or -1 with err (prefixed by
 * the path). st_close unmaps and frees; safe on a zeroed struct. */
int st_open(struct st_file *f, const char *path, char *err, size_t errlen);
void st_close(struct st_file *f);

/* The tensor named NAME in f (bsearch), or NULL. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);

/* Bytes per element (4 or 2) and the safetensors spelling ("F32", "F16", "BF16"). */
size_t st_dtype_size(enum st_dtype d);
const char *st_dtype_name(enum st_dtype d);

/* A model's weights: one file, or every shard named by the index. */
struct st_set {
    struct st_file *files;   /* owned [nfiles] */
    int nfiles;
};

/* Opens DIR/model.safetensors.index.json when present (checking every shard
 * it names exists and every tensor it maps is in that shard, and that no shard
 * holds a tensor the map does not send there; shard names must be plain file
 * names inside DIR), else DIR/model.safetensors, else the single *.safetensors
 * in DIR. Returns 0 or -1 with err; on failure s is empty. */
int st_set_open(struct st_set *s, const char *dir, char *err, size_t errlen);
void st_set_close(struct st_set *s);

/* NULL when absent. */
const struct st_tensor *st_set_find(const struct st_set *s, const char *name);

/* Element i of t converted to fp32. */
float st_get_f32(const struct st_tensor *t, int64_t i);
/* Convert the whole tensor to fp32 into dst[t->numel]. */
void st_to_f32(const struct st_tensor *t, float *dst);

/* Convert n elements of dtype dt at src (any alignment) to fp32 into dst[n]. */
void st_convert_f32(enum st_dtype dt, const void *src, int64_t n, float *dst);

/* bf16/f16 <-> f32 helpers (round to nearest even on the way down). */
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
float st_f16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
