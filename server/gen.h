/* server/gen.h: completions and chat completions over the scheduler (gen.c).
 *
 * defines: gen_start
 *
 * Threads: MHD pool threads (the request's connection thread).
 */
#ifndef DS_SERVER_GEN_H
#define DS_SERVER_GEN_H

#include "server/http.h"
#include "server/oai_parse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Handle a complete POST body for /v1/completions (OAI_COMPLETION) or
 * /v1/chat/completions (OAI_CHAT): errors are answered at once; otherwise the
 * request is submitted and answered when done (or streamed). */
enum MHD_Result gen_start(struct http_req *h, enum oai_kind kind);

#ifdef __cplusplus
}
#endif
#endif
