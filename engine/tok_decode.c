/* engine/tok_decode.c: ids -> text, one-shot and streaming, plus the WHATWG
 * UTF-8 decoder both share.
 *
 * Any thread (tokenizer is read-only); a tok_stream is one request's, used by
 * one thread at a time.
 *
 * The reference (@huggingface/tokenizers' ByteLevel decoder) joins the raw
 * bytes of consecutive non-added tokens and runs them through a JS
 * TextDecoder (fatal = false), emitting each added token's content verbatim
 * between such runs; skip_special drops special tokens *before* this, so a
 * skipped token does not break a run. The TextDecoder algorithm (WHATWG
 * Encoding, "UTF-8 decoder") is itself incremental and replaces each maximal
 * invalid subpart with one U+FFFD, so running the same state machine per push
 * gives text whose concatenation equals the one-shot result by construction,
 * and a push only ever emits whole characters.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/tok_internal.h"

int tok_buf_put(struct tok_buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->len + n + 1) c *= 2;
        char *p = realloc(b->data, c);
        if (!p) return -1;
        b->data = p;
        b->cap = c;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

void tok_buf_fini(struct tok_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- WHATWG UTF-8 decoder ---- */

void tok_utf8_init(struct tok_utf8 *u)
{
    u->cp = 0;
    u->needed = u->seen = 0;
    u->lower = 0x80;
    u->upper = 0xBF;
}

static int put_cp(struct tok_buf *out, uint32_t c)
{
    uint8_t b[4];
    size_t n;
    if (c < 0x80) { b[0] = (uint8_t)c; n = 1; }
    else if (c < 0x800) { b[0] = (uint8_t)(0xC0 | (c >> 6)); b[1] = (uint8_t)(0x80 | (c & 0x3F)); n = 2; }
    else if (c < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (c >> 12));
        b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | (c >> 18));
        b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (c & 0x3F));
        n = 4;
    }
    return tok_buf_put(out, b, n);
}

int tok_utf8_feed(struct tok_utf8 *u, const uint8_t *s, size_t n, struct tok_buf *out)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        if (u->needed == 0) {
            if (b < 0x80) {
                /* ASCII run: copy in bulk */
                size_t j = i + 1;
                while (j < n && s[j] < 0x80) j++;
                if (tok_buf_put(out, s + i, j - i)) return -1;
                i = j;
                continue;
            }
            if (b >= 0xC2 && b <= 0xDF) { u->needed = 1; u->cp = b & 0x1F; }
            else if (b >= 0xE0 && b <= 0xEF) {
                if (b == 0xE0) u->lower = 0xA0;
                if (b == 0xED) u->upper = 0x9F;
                u->needed = 2;
                u->cp = b & 0xF;
            } else if (b >= 0xF0 && b <= 0xF4) {
                if (b == 0xF0) u->lower = 0x90;
                if (b == 0xF4) u->upper = 0x8F;
                u->needed = 3;
                u->cp = b & 0x7;
            } else if (put_cp(out, 0xFFFD)) return -1;
            i++;
            continue;
        }
        if (b < u->lower || b > u->upper) {
            /* maximal subpart ends here: one U+FFFD, then reprocess b */
            tok_utf8_init(u);
            if (put_cp(out, 0xFFFD)) return -1;
            continue;
        }
        u->lower = 0x80;
        u->upper = 0xBF;
        u->cp = (u->cp << 6) | (b & 0x3F);
        i++;
        if (++u->seen == u->needed) {
            uint32_t c = u->cp;
            tok_utf8_init(u);
            if (put_cp(out, c)) return -1;
        }
    }
    return 0;
}

int tok_utf8_finish(struct tok_utf8 *u, struct tok_buf *out)
{
    if (u->needed == 0) return 0;
    tok_utf8_init(u);
    return put_cp(out, 0xFFFD);
}

/* ---- one-shot decode ---- */

static bool id_ok(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && t->piece[id];
}

/* Append id's text; the shared step of tok_decode and tok_stream_push. */
static int decode_one(const struct tokenizer *t, struct tok_utf8 *u, int32_t id, bool skip_special,
                      struct tok_buf *out)
{
    uint8_t f = t->flags[id];
    if (skip_special && (f & TOK_F_SPECIAL)) return 0;
    const uint8_t *b = t->bytes + t->bytes_off[id];
    size_t n = t->bytes_off[id + 1] - t->bytes_off[id];
    if (f & TOK_F_ADDED) {
        if (tok_utf8_finish(u, out)) return -1;
        return tok_buf_put(out, b, n);
    }
    return tok_utf8_feed(u, b, n, out);
}

char *tok_decode(const struct tokenizer *t, const int32_t *ids, int n, bool skip_special,
                 size_t *out_len)
{
    for (int i = 0; i < n; i++)
        if (!id_ok(t, ids[i])) return NULL;
    struct tok_buf out = {0};
    struct tok_utf8 u;
    tok_utf8_init(&u);
    if (tok_buf_put(&out, "", 0)) return NULL;
    for (int i = 0; i < n; i++)
        if (decode_one(t, &u, ids[i], skip_special, &out)) goto fail;
    if (tok_utf8_finish(&u, &out)) goto fail;
    if (out_len) *out_len = out.len;
    return out.data;
fail:
    tok_buf_fini(&out);
    return NULL;
}

/* ---- streaming ---- */

void tok_stream_init(struct tok_stream *s, const struct tokenizer *t, bool skip_special)
{
    struct tok_utf8 u;
    tok_utf8_init(&u);
    s->t = t;
    s->skip_special = skip_special;
    s->cp = u.cp;
    s->needed = u.needed;
    s->seen = u.seen;
    s->lower = u.lower;
    s->upper = u.upper;
}

int tok_stream_push(struct tok_stream *s, int32_t id, struct tok_buf *out)
{
    if (!id_ok(s->t, id)) return -1;
    struct tok_utf8 u = {s->cp, s->needed, s->seen, s->lower, s->upper};
    size_t before = out->len;
    if (decode_one(s->t, &u, id, s->skip_special, out)) return -1;
    s->cp = u.cp;
    s->needed = u.needed;
    s->seen = u.seen;
    s->lower = u.lower;
    s->upper = u.upper;
    return (int)(out->len - before);
}

int tok_stream_flush(struct tok_stream *s, struct tok_buf *out)
{
    struct tok_utf8 u = {s->cp, s->needed, s->seen, s->lower, s->upper};
    size_t before = out->len;
    if (tok_utf8_finish(&u, out)) return -1;
    tok_stream_init(s, s->t, s->skip_special);
    if (tok_buf_put(out, "", 0)) return -1;
    return (int)(out->len - before);
}
