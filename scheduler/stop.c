/* scheduler/stop.c: stop conditions on the engine thread: eos ids, stop token
 * ids, and stop strings matched on the detokenized output text across token
 * boundaries (with the hold-back that keeps a possible stop-string prefix out
 * of the stream until it is decided).
 *
 * Why hold back: a stop string may arrive split over several tokens ("\n\n"
 * as "\n" + "\n"); text already streamed cannot be taken back, so any suffix
 * of the output that is a prefix of some stop string waits in the sequence's
 * text buffer until the next token either completes the stop string (it is
 * then cut) or rules it out (it is then released).
 */
#include <string.h>

#include "scheduler/sched_internal.h"

long stop_find(const struct sched_req_impl *im, const char *text, size_t len, size_t from,
               int *which)
{
    long best = -1;
    *which = -1;
    for (int i = 0; i < im->p.num_stop; i++) {
        size_t sl = im->stop_len[i];
        if (sl == 0 || sl > len) continue;
        /* a match ending after `from` starts at or after from - sl + 1 */
        size_t start = from + 1 > sl ? from + 1 - sl : 0;
        const char *hit = NULL;
        for (size_t p = start; p + sl <= len; p++) {
            if (text[p] == im->stop[i][0] && memcmp(text + p, im->stop[i], sl) == 0) {
                hit = text + p;
                break;
            }
        }
        if (hit && (best < 0 || hit - text < best)) {
            best = hit - text;
            *which = i;
        }
    }
    return best;
}

size_t stop_holdback(const struct sched_req_impl *im, const char *text, size_t len)
{
    size_t hold = 0;
    for (int i = 0; i < im->p.num_stop; i++) {
        size_t sl = im->stop_len[i];
        size_t k = sl - 1 < len ? sl - 1 : len;
        for (; k > hold; k--) {
            if (memcmp(text + len - k, im->stop[i], k) == 0) {
                hold = k;
                break;
            }
        }
    }
    return hold;
}

bool stop_is_eos(const struct sched *s, const struct sched_req_impl *im, int32_t tok)
{
    if (im->p.ignore_eos) return false;
    for (int i = 0; i < s->mc->num_eos; i++)
        if (s->mc->eos_ids[i] == tok) return true;
    return false;
}

bool stop_is_stop_id(const struct sched_req_impl *im, int32_t tok)
{
    for (int i = 0; i < im->p.num_stop_token_ids; i++)
        if (im->stop_ids[i] == tok) return true;
    return false;
}
