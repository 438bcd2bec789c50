/* server/http.c: the libmicrohttpd daemon (see http.h): request setup, body
 * collection under --max-body-size, auth, 503 while loading or draining,
 * responses, suspend/resume, and the disconnect watchdog.
 * Threads: MHD pool threads; the watchdog thread; http_wake from any thread. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"

#define WATCH_MAX 65536

struct watch_entry {
    struct http_req *r;              /* borrowed; NULL = free slot */
    void (*cancel_fn)(void *);
    void *cancel_arg;
    int fd;
};

struct http_server {
    struct srv_app *app;             /* borrowed */
    struct MHD_Daemon *d;
    int port;
    /* watchdog */
    int epfd, stopfd;
    pthread_t watch_thread;
    bool watch_started;
    pthread_mutex_t watch_mu;        /* guards the table */
    struct watch_entry *watch;       /* [WATCH_MAX] */
    int *watch_free;                 /* stack of free slots */
    int watch_nfree;
};

/* --- responses ----------------------------------------------------------- */

enum MHD_Result http_reply(struct http_req *r, int status, const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype ? ctype : "application/json");
    if (status == 429 || status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 405 && r->route == NULL) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, POST");
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->responded = true;
    r->status = status;
    return rc;
}

enum MHD_Result http_reply_json(struct http_req *r, int status, const char *json)
{
    return http_reply(r, status, "application/json", json, strlen(json));
}

enum MHD_Result http_reply_error(struct http_req *r, const struct srv_error *e)
{
    char *s = srv_err_json(e);
    if (!s) return MHD_NO;
    enum MHD_Result rc = http_reply_json(r, srv_err_status(e->code), s);
    free(s);
    if (e->code != SRV_ENOTFOUND)
        LOG_DEBUG("%s %s -> %d %s", r->method, r->path, srv_err_status(e->code), e->message);
    return rc;
}

static enum MHD_Result reply_err(struct http_req *r, int code, const char *param, const char *msg)
{
    struct srv_error e;
    srv_err_set(&e, code, param, "%s", msg);
    return http_reply_error(r, &e);
}

/* --- suspend / resume ---------------------------------------------------- */

void http_suspend_locked(struct http_req *r)
{
    r->suspended = true;
    MHD_suspend_connection(r->conn);
}

void http_wake(struct http_req *r)
{
    pthread_mutex_lock(&r->mu);
    bool resume = r->suspended;
    r->suspended = false;
    pthread_mutex_unlock(&r->mu);
    /* Outside the lock: only the thread that cleared the flag resumes, and the
     * connection cannot complete while suspended, so conn is valid here. */
    if (resume) MHD_resume_connection(r->conn);
}

/* --- the disconnect watchdog -------------------------------------------- */

void http_watch(struct http_req *r, void (*cancel_fn)(void *), void *cancel_arg)
{
    struct http_server *h = r->srv;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || h->epfd < 0) return;
    pthread_mutex_lock(&h->watch_mu);
    if (r->watch_slot < 0 && h->watch_nfree > 0) {
        int slot = h->watch_free[--h->watch_nfree];
        h->watch[slot] = (struct watch_entry){r, cancel_fn, cancel_arg, ci->connect_fd};
        struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLHUP | EPOLLERR, .data.u64 = (uint64_t)slot};
        if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, ci->connect_fd, &ev) == 0) {
            r->watch_slot = slot;
        } else {
            h->watch[slot].r = NULL;
            h->watch_free[h->watch_nfree++] = slot;
        }
    }
    pthread_mutex_unlock(&h->watch_mu);
}

static void unwatch_locked(struct http_server *h, int slot)
{
    struct watch_entry *w = &h->watch[slot];
    epoll_ctl(h->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->r->watch_slot = -1;
    w->r = NULL;
    h->watch_free[h->watch_nfree++] = slot;
}

void http_unwatch(struct http_req *r)
{
    struct http_server *h = r->srv;
    pthread_mutex_lock(&h->watch_mu);
    if (r->watch_slot >= 0 && h->watch[r->watch_slot].r == r) unwatch_locked(h, r->watch_slot);
    pthread_mutex_unlock(&h->watch_mu);
}

/* A stale event (slot reused after the request completed) is harmless: the
 * slot is checked under the lock, and a reused slot's fd is the new owner's,
 * whose own hang-up is what the event would report. */
static void *watch_main(void *arg)
{
    struct http_server *h = arg;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(h->epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == UINT64_MAX) return NULL; /* stopfd */
            int slot = (int)evs[i].data.u64;
            pthread_mutex_lock(&h->watch_mu);
            struct watch_entry *w = &h->watch[slot];
            if (w->r) {
                void (*fn)(void *) = w->cancel_fn;
                void *a = w->cancel_arg;
                LOG_DEBUG("client of %s %s hung up; cancelling", w->r->method, w->r->path);
                unwatch_locked(h, slot);
                if (fn) fn(a);       /* sched_cancel: never blocks */
            }
            pthread_mutex_unlock(&h->watch_mu);
        }
    }
    return NULL;
}

/* --- the access handler -------------------------------------------------- */

/* Constant-time comparison of the presented key with the configured one: the
 * loop length depends only on the configured key. */
static bool key_ok(const char *given, const char *want)
{
    size_t gl = given ? strlen(given) : 0, wl = strlen(want);
    unsigned d = (unsigned)(gl != wl);
    for (size_t i = 0; i < wl; i++) {
        unsigned char g = i < gl ? (unsigned char)given[i] : 0;
        d |= (unsigned)(g ^ (unsigned char)want[i]);
    }
    return d == 0;
}

static bool auth_ok(struct http_req *r)
{
    const char *hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *tok = NULL;
    if (hdr && !strncasecmp(hdr, "Bearer ", 7)) {
        tok = hdr + 7;
        while (*tok == ' ') tok++;
    }
    return key_ok(tok, r->app->args->api_key);
}

static struct http_req *req_new(struct http_server *h, struct MHD_Connection *conn, const char *url, const char *method)
{
    struct http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = h;
    r->app = h->app;
    r->conn = conn;
    r->watch_slot = -1;
    r->start_ns = srv_now_ns();
    snprintf(r->method, sizeof r->method, "%s", method);
    size_t pl = strcspn(url, "?");
    if (pl >= sizeof r->path) pl = sizeof r->path - 1;
    memcpy(r->path, url, pl);
    r->path[pl] = 0;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static enum MHD_Result first_call(struct http_req *r)
{
    const struct srv_args *a = r->app->args;
    int status = 0;
    bool needs_body = false;
    r->route = routes_match(r->method, r->path, &status, &needs_body);
    if (!r->route) {
        char msg[600];
        if (status == 405) {
            snprintf(msg, sizeof msg, "Method %s is not allowed for %s", r->method, r->path);
            return reply_err(r, SRV_EMETHOD, NULL, msg);
        }
        snprintf(msg, sizeof msg, "Not found: %s %s", r->method, r->path);
        return reply_err(r, SRV_ENOTFOUND, NULL, msg);
    }
    if (a->api_key[0] && routes_needs_auth(r->route, a) && !auth_ok(r))
        return reply_err(r, SRV_EAUTH, NULL,
                         "Incorrect or missing API key: send 'Authorization: Bearer <key>'");
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoll(cl, NULL, 10) > a->max_body_size) {
        char msg[128];
        snprintf(msg, sizeof msg, "Request body too large (limit %lld bytes)", (long long)a->max_body_size);
        return reply_err(r, SRV_ETOOBIG, NULL, msg);
    }
    return MHD_YES;
}

static enum MHD_Result append_body(struct http_req *r, const char *data, size_t n)
{
    int64_t max = r->app->args->max_body_size;
    if (r->too_big || (int64_t)(r->len + n) > max) {
        /* Answering in the middle of the upload would close the socket with
         * unread data, and the client would see a reset instead of the 413.
         * So the rest is read and dropped (up to 4x the limit) and the 413
         * goes out on the final call. */
        r->too_big = true;
        r->discarded += n;
        return r->discarded > 4 * (uint64_t)max ? MHD_NO : MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
        size_t nc = r->cap ? r->cap : 4096;
        while (nc < r->len + n + 1) nc *= 2;
        char *b = realloc(r->body, nc);
        if (!b) return reply_err(r, SRV_ENOMEM, NULL, "out of memory");
        r->body = b;
        r->cap = nc;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    struct http_server *h = cls;
    struct http_req *r = *req_cls;
    if (!r) {
        r = req_new(h, conn, url, method);
        if (!r) return MHD_NO;
        *req_cls = r;
        return first_call(r);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->responded) return MHD_YES; /* an early error was queued: discard */
        return append_body(r, upload_data, n);
    }
    if (r->responded) return MHD_YES;
    if (r->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "Request body too large (limit %lld bytes)", (long long)r->app->args->max_body_size);
        return reply_err(r, SRV_ETOOBIG, NULL, msg);
    }
    if (r->gen) return gen_continue(r);   /* resumed after a suspension */
    if (!r->body) {
        r->body = strdup("");
        if (!r->body) return MHD_NO;
    }
    return routes_dispatch(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct http_req *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    http_unwatch(r);
    if (r->gen) gen_completed(r, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (r->route || r->status)
        LOG_DEBUG("%s %s %d %.1fms%s", r->method, r->path, r->status,
                  (double)(srv_now_ns() - r->start_ns) / 1e6,
                  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    pthread_mutex_destroy(&r->mu);
    free(r->body);
    free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    LOG_DEBUG("libmicrohttpd: %s", buf);
}

/* --- lifecycle ----------------------------------------------------------- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *sl, bool *v6,
                   char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc || !res) {
        snprintf(err, errlen, "--host %s: cannot resolve: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sl = res->ai_addrlen;
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

struct http_server *http_create(struct srv_app *app, char *err, size_t errlen)
{
    const struct srv_args *a = app->args;
    struct http_server *h = calloc(1, sizeof *h);
    if (!h) { snprintf(err, errlen, "out of memory"); return NULL; }
    h->app = app;
    h->epfd = h->stopfd = -1;
    pthread_mutex_init(&h->watch_mu, NULL);
    h->watch = calloc(WATCH_MAX, sizeof *h->watch);
    h->watch_free = malloc(sizeof(int) * WATCH_MAX);
    if (!h->watch || !h->watch_free) { snprintf(err, errlen, "out of memory"); goto fail; }
    for (int i = 0; i < WATCH_MAX; i++) h->watch_free[i] = WATCH_MAX - 1 - i;
    h->watch_nfree = WATCH_MAX;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->epfd < 0 || h->stopfd < 0) { snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno)); goto fail; }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->stopfd, &ev);
    if (pthread_create(&h->watch_thread, NULL, watch_main, h)) { snprintf(err, errlen, "cannot start a thread"); goto fail; }
    h->watch_started = true;

    struct sockaddr_storage ss;
    socklen_t sl;
    bool v6;
    if (resolve(a->host, a->port, &ss, &sl, &v6, err, errlen)) goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)a->port, NULL, NULL, access_handler, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)a->http_threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->timeout,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, h,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen on %s:%d (port in use or address not available)", a->host, a->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : a->port;
    return h;
fail:
    http_destroy(h);
    return NULL;
}

int http_port(const struct http_server *h) { return h->port; }

void http_destroy(struct http_server *h)
{
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    if (h->watch_started) {
        uint64_t one = 1;
        ssize_t w = write(h->stopfd, &one, sizeof one);
        (void)w;
        pthread_join(h->watch_thread, NULL);
    }
    if (h->epfd >= 0) close(h->epfd);
    if (h->stopfd >= 0) close(h->stopfd);
    pthread_mutex_destroy(&h->watch_mu);
    free(h->watch);
    free(h->watch_free);
    free(h);
}
