/* server/http.h: the libmicrohttpd daemon: connections, bodies, limits, auth,
 * suspend/resume, disconnect detection; routes.c decides what each URL does.
 *
 * defines: struct http_server, struct http_req, http_create, http_port,
 *          http_destroy, http_reply, http_reply_json, http_reply_error,
 *          http_suspend_locked, http_wake, http_watch, http_unwatch
 *
 * Threads. MHD runs an internal polling thread pool (MHD_USE_EPOLL, one epoll
 * per pool thread); the access handler, content readers and the completion
 * callback run there. http_wake may be called from any thread (the engine
 * thread's notify). A watchdog thread waits on an epoll set of the sockets of
 * generation requests (EPOLLRDHUP) and cancels a request whose client hung up
 * while its connection was suspended (MHD does not look at suspended
 * connections, so it would only notice at the next write).
 *
 * Lifetime of one request (struct http_req, MHD's *req_cls): created on the
 * first handler call (headers), body appended on the upload calls, routed on
 * the final call; freed in MHD's NOTIFY_COMPLETED callback, which first lets
 * the generation side (gen_completed) detach and release its scheduler
 * requests.
 */
#ifndef DS_SERVER_HTTP_H
#define DS_SERVER_HTTP_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/app.h"
#include "server/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

struct http_server;
struct gen_req;
struct http_route;

struct http_req {
    struct http_server *srv;          /* borrowed */
    struct srv_app *app;              /* borrowed */
    struct MHD_Connection *conn;      /* borrowed, valid until completion */
    const struct http_route *route;   /* matched on the first call; NULL = none */
    char method[16];
    char path[512];                   /* URL path, query stripped */
    char *body;                       /* owned, NUL-terminated */
    size_t len, cap;
    bool responded;                   /* a response was queued */
    bool too_big;                     /* body over the limit: dropping the rest */
    uint64_t discarded;               /* bytes dropped */
    int status;                       /* status of the queued response */
    int64_t start_ns;
    struct gen_req *gen;              /* owned: a completion/chat request */
    pthread_mutex_t mu;               /* guards suspended and the gen outputs */
    bool suspended;
    int watch_slot;                   /* -1 = not watched */
};

/* Start listening on args->host:args->port. Returns NULL with err. Main thread. */
struct http_server *http_create(struct srv_app *app, char *err, size_t errlen);
int http_port(const struct http_server *h);
/* Stop the daemon (callers resume every suspended connection first, by
 * finishing their requests: sched_stop does) and free. Main thread. */
void http_destroy(struct http_server *h);

/* Queue a response (body copied; ctype NULL = application/json). Adds
 * Retry-After for 429/503. Returns MHD_YES/MHD_NO for the handler to return. */
enum MHD_Result http_reply(struct http_req *r, int status, const char *ctype, const char *body, size_t len);
enum MHD_Result http_reply_json(struct http_req *r, int status, const char *json);
enum MHD_Result http_reply_error(struct http_req *r, const struct srv_error *e);

/* Suspend r's connection. Caller holds r->mu and is inside the access handler
 * or a content reader of r. */
void http_suspend_locked(struct http_req *r);
/* Resume r's connection if it is suspended. Any thread; takes r->mu. */
void http_wake(struct http_req *r);

/* Watch r's socket for a hang-up while it waits; on one, cancel_fn(cancel_arg)
 * is called once on the watchdog thread (it must not block). http_unwatch is
 * called before r is freed. Any thread. */
void http_watch(struct http_req *r, void (*cancel_fn)(void *), void *cancel_arg);
void http_unwatch(struct http_req *r);

/* Routing, implemented in routes.c. */
const struct http_route *routes_match(const char *method, const char *path, int *status, bool *needs_body);
bool routes_needs_auth(const struct http_route *rt, const struct srv_args *a);
enum MHD_Result routes_dispatch(struct http_req *r);

/* Generation side, implemented in gen.c. */
enum MHD_Result gen_continue(struct http_req *r);
void gen_completed(struct http_req *r, bool client_gone);

#ifdef __cplusplus
}
#endif
#endif
