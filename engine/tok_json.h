/* engine/tok_json.h: fast decoding of tokenizer.json's model.vocab and
 * model.merges (private to the tokenizer files).
 *
 * defines: struct tok_json_big, tok_json_split, tok_json_big_fini
 *
 * Threads: load time only; no shared state.
 */
#ifndef DS_ENGINE_TOK_JSON_H
#define DS_ENGINE_TOK_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tok_json_entry {
    const char *s; /* into vblob, NUL-terminated UTF-8 */
    size_t len;
    int32_t id;
};

struct tok_json_merge {
    const char *a, *b; /* into mblob */
};

struct tok_json_big {
    struct tok_json_entry *vocab; /* owned, [nvocab] in file order */
    size_t nvocab;
    char *vblob;                  /* owned */
    struct tok_json_merge *merges; /* owned, [nmerges] in rank order */
    size_t nmerges;
    char *mblob;                  /* owned */
    bool have_merges;
};

/* Decode model.vocab and model.merges of the document json[0..len) into b and
 * return in *rest (malloc'd, NUL-terminated, caller frees) the document with
 * those two members replaced by {} and [], for a general JSON parser.
 * Returns 0, or -1 when the document is malformed or lacks model.vocab (b is
 * then partly filled: call tok_json_big_fini either way). */
int tok_json_split(const char *json, size_t len, struct tok_json_big *b, char **rest,
                   size_t *rest_len);
void tok_json_big_fini(struct tok_json_big *b);

#endif
