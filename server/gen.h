/* server/gen.h: completions and chat completions over the scheduler (gen.c).
 *
 * defines: gen_start, gen_run_offline
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

/* The same request without HTTP (deltaserve complete): blocks until done and
 * returns the response body /v1/... would send (malloc'd; an error object
 * when *status != 200). Main thread of the CLI. */
char *gen_run_offline(struct srv_app *app, enum oai_kind kind, const char *body, size_t len, int *status);

#ifdef __cplusplus
}
#endif
#endif
