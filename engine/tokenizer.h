/* engine/tokenizer.h: Hugging Face tokenizer.json (byte-level BPE) in C.
 *
 * defines: struct tokenizer, struct tok_stream, tok_load, tok_load_json,
 *          tok_free, tok_encode, tok_decode, tok_stream_init, tok_stream_push,
 *          tok_stream_flush, tok_stream_fini, tok_id_to_piece, tok_token_to_id,
 *          tok_vocab_size, tok_is_special
 *
 * Threads: loaded once at startup; afterwards tok_encode/tok_decode are
 * thread-safe (they read the tokenizer and use only caller-owned or
 * thread-local scratch). A tok_stream belongs to one request and is used by one
 * thread at a time.
 *
 * Exactness: ids must equal @huggingface/tokenizers' for the same file and
 * text. Unsupported tokenizer.json features are an error at load naming the
 * feature. Invalid UTF-8 input is documented in docs/api.md (policy chosen by
 * the implementation and tested).
 */
#ifndef DS_ENGINE_TOKENIZER_H
#define DS_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tokenizer; /* opaque */

/* Load a tokenizer.json file, or parse one from memory. NULL + err on failure. */
struct tokenizer *tok_load(const char *path, char *err, size_t errlen);
struct tokenizer *tok_load_json(const char *json, size_t len, char *err, size_t errlen);
void tok_free(struct tokenizer *t);

/* Encode text (len bytes) to ids. add_special: prepend/append the post
 * processor's special tokens when the file defines them (BOS etc.).
 * Returns the count (>= 0) and sets *ids to a malloc'd array the caller frees,
 * or -1 on failure. */
int tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
               int32_t **ids);

/* Decode ids to a malloc'd NUL-terminated string (caller frees); *out_len gets
 * its length when non-NULL. Unknown ids are an error (returns NULL). */
char *tok_decode(const struct tokenizer *t, const int32_t *ids, int n, bool skip_special,
                 size_t *out_len);

/* Largest id + 1 (vocabulary plus added tokens). */
int tok_vocab_size(const struct tokenizer *t);
/* id -> token string as stored (byte-level form); NULL if unknown. */
const char *tok_id_to_piece(const struct tokenizer *t, int32_t id);
/* token string (as in vocab or added tokens) -> id, or -1. */
int32_t tok_token_to_id(const struct tokenizer *t, const char *piece);
bool tok_is_special(const struct tokenizer *t, int32_t id);

/* Incremental detokenizer for streaming: push ids one at a time; each push
 * returns only complete UTF-8 (never a split sequence). The concatenation of
 * every push plus the flush equals tok_decode of all ids. */
struct tok_stream {
    const struct tokenizer *t;  /* borrowed */
    bool skip_special;
    unsigned char pend[8];      /* bytes of an incomplete UTF-8 sequence */
    int npend;
};
void tok_stream_init(struct tok_stream *s, const struct tokenizer *t, bool skip_special);
/* Appends the newly completed text for id into out (at most cap-1 bytes plus
 * NUL; cap >= 64 is always enough for one token... the return value is the
 * byte count written, or -1 for an unknown id or too small a buffer). */
int tok_stream_push(struct tok_stream *s, int32_t id, char *out, size_t cap);
/* Emits whatever is pending (invalid trailing bytes become U+FFFD, as the
 * one-shot decode does). */
int tok_stream_flush(struct tok_stream *s, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
