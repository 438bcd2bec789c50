/* tests/unit/util_st_writer.h: a tiny safetensors writer for tests, plus a
 * builder of random OLMo Hybrid checkpoints for a given config.
 *
 * defines: struct stw, stw_create, stw_destroy, stw_add, stw_add_f32,
 *          stw_remove, stw_write, stw_write_sharded, stw_write_raw, stw_add_model, stw_tmpdir, stw_write_text,
 *          stw_rmtree
 *
 * Test-only helper (single-threaded). Shared: the CPU backend tests reuse it
 * to build small checkpoints without Python.
 */
#ifndef DS_TESTS_UTIL_ST_WRITER_H
#define DS_TESTS_UTIL_ST_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/safetensors.h"

struct stw;

struct stw *stw_create(void);
void stw_destroy(struct stw *w);

/* Add a tensor with raw bytes already in dtype (copied). nbytes must equal
 * numel * elemsize. Returns 0 or -1. */
int stw_add(struct stw *w, const char *name, enum st_dtype dt, int ndim, const int64_t *shape, const void *data,
            size_t nbytes);
/* Add a tensor from fp32 values, converted to dt (RNE for bf16/f16... f16 via
 * a simple conversion). vals has numel entries. */
int stw_add_f32(struct stw *w, const char *name, enum st_dtype dt, int ndim, const int64_t *shape,
                const float *vals);
/* Number of tensors added so far. */
int stw_count(const struct stw *w);
/* Drop the tensor NAME. Returns 0, or -1 when there is none. */
int stw_remove(struct stw *w, const char *name);

/* Write the file: header (with an optional __metadata__ JSON object text, may
 * be NULL), padded with spaces to 8 bytes, then the data in add order.
 * Returns 0 or -1. */
int stw_write(const struct stw *w, const char *path, const char *metadata_json);

/* Write the tensors round-robin into nshards files DIR/model-0000i-of-0000n.safetensors
 * plus DIR/model.safetensors.index.json. Returns 0 or -1. */
int stw_write_sharded(const struct stw *w, const char *dir, int nshards);

/* Write a hand-made (possibly lying) file: 8-byte length `hlen_field`, then
 * the header text, then data_len bytes of data (zeros if data is NULL). Pass
 * hlen_field = (uint64_t)-1 to use strlen(header). */
int stw_write_raw(const char *path, uint64_t hlen_field, const char *header, const void *data, size_t data_len);

/* Flags for stw_add_model. */
#define STW_SPLIT_CONV 1u   /* q/k/v_conv1d parts (uneven split) instead of conv1d */
#define STW_ALT_NORMS 2u    /* attention_layer_norm / feedforward_layer_norm names */
#define STW_NO_LM_HEAD 4u   /* omit lm_head.weight (for tied configs) */
#define STW_CONV_2D 8u      /* fused conv stored as [CD, K] instead of [CD, 1, K] */

/* Add every tensor of an OLMo Hybrid model with config c, random values from
 * seed (matrices ~ U(-0.5,0.5)/sqrt(fan_in), norms ~ 1 +- 0.1, A_log =
 * log U(1,16), dt_bias small), in dtype dt. Returns 0 or -1. */
int stw_add_model(struct stw *w, const struct cfg_model *c, enum st_dtype dt, unsigned flags, uint32_t seed);

/* mkdtemp under $TMPDIR (or /tmp) into buf; returns buf or NULL. */
char *stw_tmpdir(char *buf, size_t len);
/* Write text to DIR/NAME. Returns 0 or -1. */
int stw_write_text(const char *dir, const char *name, const char *text);
/* rm -r DIR (only plain files and one level of directories). */
void stw_rmtree(const char *dir);

/* The tiny random OLMo Hybrid checkpoint the scheduler-on-CPU tests share
 * (vocab 256, hidden 64, 4 layers GDN/attn alternating, GQA 8/2, Hv = 2*Hk,
 * eos 255): config.json text, and a writer that makes a fresh temp dir into
 * dir (cap bytes) holding config.json + model.safetensors (f32, random from
 * seed). Returns 0, or -1 with a reason in err. */
extern const char *const STW_TINY_CONFIG_JSON;
int stw_make_tiny_model(char *dir, size_t cap, uint32_t seed, char *err, size_t errlen);

#endif
