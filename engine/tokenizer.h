/* engine/tokenizer.h: Hugging Face tokenizer.json (byte-level BPE) in C.
 *
 * defines: struct tokenizer, struct tok_stream, struct tok_buf, tok_load,
 *          tok_load_json, tok_free, tok_encode, tok_decode, tok_stream_init,
 *          tok_stream_push, tok_stream_flush, tok_buf_fini, tok_id_to_piece,
 *          tok_token_to_id, tok_vocab_size, tok_is_special, tok_is_added
 *
 * Threads: loaded once at startup; afterwards tok_encode/tok_decode are
 * thread-safe (they read the tokenizer and use only caller-owned or
 * per-thread scratch, created on a thread's first call and freed at thread
 * exit or tok_free). A tok_stream belongs to one request and is used by one
 * thread at a time. tok_free must not race with any other call. Scratch per
 * calling thread and tokenizer: a 1 MiB word cache and a PCRE2 JIT stack
 * (32 KiB, grown on demand up to 8 MiB).
 *
 * Exactness: ids equal @huggingface/tokenizers' (the npm package, which
 * translates the Oniguruma patterns of tokenizer.json to Unicode regexes) for
 * the same file and text; tests/fixtures/tokenizer/expected.json pins this.
 * Supported: model BPE (vocab; merges as "a b" strings or [a, b] pairs;
 * ignore_merges; unk_token), normalizer null, pre-tokenizers Split (Regex or
 * String pattern, all five behaviors, invert), ByteLevel (add_prefix_space,
 * use_regex = the GPT-2 pattern) and Sequence of them, added tokens
 * (special/lstrip/rstrip/normalized/single_word), post-processors null,
 * ByteLevel, TemplateProcessing and Sequence, decoder ByteLevel. Anything else
 * is a load error naming the feature.
 * Where the npm reference departs from Hugging Face's Rust semantics in ways
 * the real files never exercise, we follow Rust: Split behaviors other than
 * Removed (the JS port treats them all as Isolated, and drops unmatched text
 * under invert), and added tokens' single_word (ignored by the JS port). The
 * unit tests pin these with a generated tokenizer. Unicode letter/number
 * classes come from PCRE2's tables (Unicode 14 in PCRE2 10.42), so characters
 * assigned later may split differently from a newer JS engine.
 *
 * Invalid UTF-8 input (docs/api.md "Tokenization"): each invalid sequence is
 * replaced by U+FFFD exactly as the WHATWG TextDecoder does, then encoded.
 * Decoded text is always valid UTF-8 (undecodable bytes become U+FFFD, again
 * as TextDecoder does). No clean_up_tokenization_spaces is applied.
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

/* Load a tokenizer.json file, or parse one from memory (json need not be
 * NUL-terminated). Returns NULL and writes a one-line reason to err (naming the
 * unsupported feature, the bad field or the I/O error) on failure. Any thread;
 * usually the main thread at startup. */
struct tokenizer *tok_load(const char *path, char *err, size_t errlen);
struct tokenizer *tok_load_json(const char *json, size_t len, char *err, size_t errlen);
/* Frees t and every thread's scratch for it. NULL is a no-op. */
void tok_free(struct tokenizer *t);

/* Encode text (len bytes, any bytes: invalid UTF-8 is replaced, see above) to
 * ids. add_special: apply the post processor's special tokens (BOS etc.) when
 * the file defines them. Returns the count (>= 0) and sets *ids to a malloc'd
 * array the caller frees (non-NULL even for 0 ids), or -1 on out-of-memory or
 * a regex engine failure (then *ids is NULL). Thread-safe. */
int tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
               int32_t **ids);

/* Decode ids to a malloc'd NUL-terminated UTF-8 string (caller frees);
 * *out_len gets its length when non-NULL. skip_special drops tokens marked
 * special (before byte decoding, as HF does). Unknown ids (outside
 * [0, tok_vocab_size) or holes) are an error: returns NULL. Thread-safe. */
char *tok_decode(const struct tokenizer *t, const int32_t *ids, int n, bool skip_special,
                 size_t *out_len);

/* Largest id + 1 (vocabulary plus added tokens). */
int tok_vocab_size(const struct tokenizer *t);
/* id -> token string as stored (byte-level form, or the added token's
 * content); NULL if unknown. The string lives as long as t. */
const char *tok_id_to_piece(const struct tokenizer *t, int32_t id);
/* token string (as in vocab or added tokens) -> id, or -1. */
int32_t tok_token_to_id(const struct tokenizer *t, const char *piece);
/* true for added tokens with "special": true (false for unknown ids). */
bool tok_is_special(const struct tokenizer *t, int32_t id);
/* true for any added token (special or not). */
bool tok_is_added(const struct tokenizer *t, int32_t id);

/* Growable output buffer for the streaming detokenizer. Zero-initialise it
 * (struct tok_buf b = {0};), let pushes append, consume data[0..len) and set
 * len = 0 to reuse, tok_buf_fini to free. data is NUL-terminated after every
 * successful append. */
struct tok_buf {
    char *data; /* owned */
    size_t len;
    size_t cap;
};
void tok_buf_fini(struct tok_buf *b);

/* Incremental detokenizer for streaming: push ids one at a time; each push
 * appends only complete UTF-8 (never a split sequence: bytes that may still
 * complete a character are held back). The concatenation of every push plus
 * the flush equals tok_decode of all ids with the same skip_special. */
struct tok_stream {
    const struct tokenizer *t; /* borrowed */
    bool skip_special;
    /* WHATWG UTF-8 decoder state (private). */
    uint32_t cp;
    int needed, seen;
    uint8_t lower, upper;
};
void tok_stream_init(struct tok_stream *s, const struct tokenizer *t, bool skip_special);
/* Appends the newly completed text for id to out. Returns the number of bytes
 * appended (>= 0), or -1 for an unknown id (state unchanged) or out of memory. */
int tok_stream_push(struct tok_stream *s, int32_t id, struct tok_buf *out);
/* Appends whatever is pending (an incomplete trailing sequence becomes U+FFFD,
 * as the one-shot decode does) and resets the decoder state. Returns bytes
 * appended or -1 on out of memory. */
int tok_stream_flush(struct tok_stream *s, struct tok_buf *out);

#ifdef __cplusplus
}
#endif
#endif
