/* engine/tok_internal.h: private structures shared by the tokenizer files
 * (tok_load.c, tok_json.c, tok_components.c, tok_regex.c, tok_encode.c,
 * tok_decode.c). Not for other modules:
 * use engine/tokenizer.h.
 *
 * defines: struct tokenizer, struct tok_added, struct tok_pre, struct tok_tls,
 *          tok_vocab_find, tok_merge_find, tok_regex_*, tok_tls_get,
 *          tok_utf8_*, tok_buf_put
 *
 * Threads: the tokenizer is immutable after load; per-thread scratch (PCRE2
 * match data, JIT stack, word cache) hangs off a pthread key.
 */
#ifndef DS_ENGINE_TOK_INTERNAL_H
#define DS_ENGINE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"

struct tok_added {
    char *content; /* owned, UTF-8 */
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, normalized, single_word;
};

enum tok_pre_kind { TOK_PRE_SPLIT, TOK_PRE_BYTELEVEL };
enum tok_split_behavior {
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
};

#define TOK_MAX_PRE 8

struct tok_pre {
    enum tok_pre_kind kind;
    pcre2_code *re; /* owned; NULL for ByteLevel without use_regex */
    bool invert;    /* Split */
    enum tok_split_behavior behavior;
    bool add_prefix_space; /* ByteLevel */
};

/* Word cache entry, one 64-byte line: a pre-token of up to TOK_CW_KEY bytes
 * -> up to TOK_CW_IDS ids. The cache is 2-way set associative (way 0 = most
 * recent), TOK_CW_SETS sets: 1 MiB per thread per tokenizer. */
#define TOK_CW_KEY 26
#define TOK_CW_IDS 9
#define TOK_CW_SETS 8192
struct __attribute__((aligned(64))) tok_cw {
    uint8_t klen; /* 0 = empty */
    uint8_t nids;
    uint8_t key[TOK_CW_KEY];
    int32_t ids[TOK_CW_IDS];
};

/* One thread's scratch for one tokenizer. */
struct tok_tls {
    struct tok_tls *next; /* owned by the tokenizer's list */
    const struct tokenizer *t;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    struct tok_cw *cache; /* [TOK_CW_SETS][2] */
};

/* Vocabulary slot, 16 bytes: pieces of up to TOK_VS_INLINE bytes are
 * compared in the slot itself (one cache miss per probe); longer ones keep
 * their first 8 bytes here as a filter and are confirmed in t->bytes. */
#define TOK_VS_INLINE 11
struct tok_vslot {
    int32_t id1;   /* id + 1; 0 = empty (so calloc'd memory is an empty map) */
    uint8_t len;   /* byte length, or 0xFF for longer than TOK_VS_INLINE */
    uint8_t b[TOK_VS_INLINE];
};

struct tok_mslot {
    uint64_t nkey; /* ~(a << 32 | b); 0 = empty */
    uint32_t rank;
    int32_t res;
};

struct tokenizer {
    int32_t n_ids;          /* largest id + 1 */
    char **piece;           /* [n_ids] stored token strings (NULL = hole); into piece_blob or added */
    char *piece_blob;       /* owned */
    uint8_t *bytes;         /* owned: concatenated raw bytes of each id's piece */
    uint32_t *bytes_off;    /* [n_ids + 1] offsets into bytes */
    uint8_t *flags;         /* [n_ids] TOK_F_* */
    /* raw bytes -> id, open addressing with linear probing */
    struct tok_vslot *vmap;
    uint32_t vmap_mask;
    /* merges: key (a << 32 | b) -> rank, result id, one cache line per probe */
    struct tok_mslot *mmap;
    uint32_t mmask;
    int32_t byte_id[256];
    int32_t unk_id;         /* -1 if none */
    bool ignore_merges;
    /* added tokens, sorted by descending length for longest-match splitting */
    struct tok_added *added;
    int n_added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */
    struct tok_pre pre[TOK_MAX_PRE];
    int n_pre;
    int32_t *post_pre, *post_suf; /* owned: ids added around the text when add_special */
    int n_post_pre, n_post_suf;
    pthread_key_t key;
    pthread_mutex_t tls_mu;
    struct tok_tls *tls_list; /* every thread's scratch, freed by tok_free */
};

#define TOK_F_ADDED 1
#define TOK_F_SPECIAL 2

/* -- tok_load.c -- */
int32_t tok_vocab_find(const struct tokenizer *t, const uint8_t *s, size_t n);
/* rank of merging ids a,b (and the result in *res), or UINT32_MAX */
uint32_t tok_merge_find(const struct tokenizer *t, int32_t a, int32_t b, int32_t *res);
struct tok_tls *tok_tls_get(const struct tokenizer *t);
uint64_t tok_hash(const uint8_t *s, size_t n);

/* -- tok_components.c: pre_tokenizer / post_processor (NULL or JSON null =
 * none); 0, or -1 with err naming the unsupported component -- */
struct cJSON;
int tok_load_pre(struct tokenizer *t, const struct cJSON *p, char *err, size_t errlen);
int tok_load_post(struct tokenizer *t, const struct cJSON *p, char *err, size_t errlen);

/* -- tok_regex.c -- */
/* Translate an Oniguruma pattern (tokenizer.json "Regex") to PCRE2 the way
 * @huggingface/tokenizers translates it to JS, and compile it with JIT.
 * NULL + err on failure (naming the unsupported construct). */
pcre2_code *tok_regex_compile_onig(const char *pat, char *err, size_t errlen);
/* A literal string pattern ("String"). */
pcre2_code *tok_regex_compile_literal(const char *s, size_t n, char *err, size_t errlen);
/* The GPT-2 pattern used by ByteLevel's use_regex (JS \s semantics). */
pcre2_code *tok_regex_compile_gpt2(char *err, size_t errlen);

/* -- tok_decode.c: WHATWG UTF-8 decoder (TextDecoder, fatal=false) -- */
struct tok_utf8 {
    uint32_t cp;
    int needed, seen;
    uint8_t lower, upper;
};
void tok_utf8_init(struct tok_utf8 *u);
/* Feed bytes; decoded UTF-8 (with U+FFFD for errors) appended to out. */
int tok_utf8_feed(struct tok_utf8 *u, const uint8_t *s, size_t n, struct tok_buf *out);
/* End of stream: an incomplete sequence becomes U+FFFD. */
int tok_utf8_finish(struct tok_utf8 *u, struct tok_buf *out);
int tok_buf_put(struct tok_buf *b, const void *s, size_t n);

#endif
