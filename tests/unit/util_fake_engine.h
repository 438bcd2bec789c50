/* tests/unit/util_fake_engine.h: a fake engine backend for fast scheduler
 * policy tests (the one allowed stand-in, STYLE.md).
 *
 * defines: fake_engine_create, fake_engine_destroy, fake_engine_errors,
 *          fake_engine_error_msg, fake_engine_forwards, fake_engine_set_markov_from,
 *          fake_engine_markov_logits
 *
 * It implements struct eng_backend_ops for real: every token is written into
 * its KV block cell, every GDN slot holds a running hash of the tokens it
 * absorbed and their count. A logits row is a deterministic function of the
 * whole token history, read back from the KV cells through the block table,
 * and the backend checks that history against the slot's hash; a scheduler
 * that passes a wrong block table, a stale slot, a shared writable block or
 * a wrong cache length therefore gets a recorded error (and wrong tokens),
 * not silently equal output. Speculative verify rows are supported: the
 * slot after each fed token is copied into its spec slot (engine.h).
 * Single-threaded (engine thread).
 */
#ifndef DS_TESTS_UTIL_FAKE_ENGINE_H
#define DS_TESTS_UTIL_FAKE_ENGINE_H

#include <stdint.h>

#include "engine/engine.h"

/* A fake model with vocab ids, eos ids eos[0..neos), max_position_embeddings
 * max_pos; memory as given. NULL on out of memory. */
struct engine *fake_engine_create(int vocab, const int *eos, int neos, int max_pos, int num_blocks,
                                  int block_size, int num_slots);
void fake_engine_destroy(struct engine *e);
/* Consistency violations seen so far (0 = the scheduler kept every invariant
 * the fake can observe) and the first one's description. */
int fake_engine_errors(const struct engine *e);
const char *fake_engine_error_msg(const struct engine *e);
/* Forward calls so far. */
int fake_engine_forwards(const struct engine *e);
/* The fake's logits for a history (what the engine returns after those
 * tokens): lets a test compute the expected greedy continuation alone. */
void fake_engine_logits(int vocab, const int32_t *hist, int n, float *out);
/* From position pos on, a logits row depends only on the token fed there
 * (not on the history), so greedy output falls into a short cycle: text
 * that starts repeating at a known place (speculation tests). Default:
 * never. The KV and slot consistency checks still run. */
void fake_engine_set_markov_from(struct engine *e, int pos);
/* The logits of a row at or after that position whose fed token is tok. */
void fake_engine_markov_logits(int vocab, int32_t tok, float *out);

#endif
