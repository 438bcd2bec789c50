/* tests/fuzz/fuzz_safetensors.c: libFuzzer target for safetensors header
 * parsing and validation (engine/safetensors.c, st_parse).
 *
 * Every accepted tensor must lie inside the buffer: the target touches the
 * first and last byte of each one through the converters, so ASan reports any
 * validation gap as an out-of-bounds read. Single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1); /* exact size: overreads are caught */
    if (!buf) return 0;
    memcpy(buf, data, size);
    struct st_file f;
    char err[256];
    err[0] = 0;
    if (st_parse(&f, buf, size, err, sizeof err) == 0) {
        volatile float sink = 0;
        for (int i = 0; i < f.n; i++) {
            const struct st_tensor *t = &f.tensors[i];
            const unsigned char *p = t->data;
            if (p < buf || p + t->nbytes > buf + size) abort();
            if ((size_t)t->numel * st_dtype_size(t->dtype) != t->nbytes) abort();
            if (t->numel > 0) {
                sink += st_get_f32(t, 0);
                sink += st_get_f32(t, t->numel - 1);
            }
            if (st_find(&f, t->name) != t) abort();
            if (i && strcmp(f.tensors[i - 1].name, t->name) >= 0) abort();
        }
        (void)sink;
        st_close(&f);
    } else if (!err[0]) {
        abort();
    }
    free(buf);
    return 0;
}
