/* tests/fuzz/fuzz_config.c: libFuzzer target for config.json and
 * generation_config.json parsing (engine/config.c).
 *
 * Any input must either parse into a config that satisfies the loader's
 * invariants or fail with a non-empty error; never crash, leak or read out of
 * bounds (built with ASan+UBSan: make fuzz). Single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size copy without a terminator: the parser must honour size */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    struct cfg_model c;
    char err[256];
    err[0] = 0;
    if (cfg_parse_json(&c, buf, size, err, sizeof err) == 0) {
        /* invariants every consumer relies on */
        if (c.num_hidden_layers < 1 || c.num_hidden_layers > CFG_MAX_LAYERS) abort();
        if (c.num_gdn_layers + c.num_attn_layers != c.num_hidden_layers) abort();
        if (c.num_gdn_layers < 1 || c.num_attn_layers < 1) abort();
        if (c.hidden_size < 1 || c.head_dim < 1 || c.linear_key_head_dim < 1 || c.linear_value_head_dim < 1) abort();
        if (c.num_attention_heads % c.num_key_value_heads) abort();
        if (c.linear_num_value_heads % c.linear_num_key_heads) abort();
        if (c.num_eos < 0 || c.num_eos > CFG_MAX_EOS) abort();
        if (cfg_gdn_conv_dim(&c) < 1) abort();
        char d[256];
        cfg_rope_describe(&c, d, sizeof d);
        (void)cfg_rope_attention_factor(&c);
        /* the same bytes as a generation_config.json on top */
        if (cfg_parse_generation(&c, buf, size, err, sizeof err) == 0) {
            if (c.num_eos > CFG_MAX_EOS) abort();
        } else if (!err[0]) {
            abort();
        }
    } else if (!err[0]) {
        abort(); /* a failure must say why */
    }
    free(buf);
    return 0;
}
