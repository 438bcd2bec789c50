/* server/errors.h: request-reachable error codes and OpenAI error objects.
 *
 * defines: enum srv_err, struct srv_error, srv_err_set, srv_err_status,
 *          srv_err_type, srv_err_code_str, srv_err_json
 *
 * Threads: pure functions; any thread.
 *
 * One table (errors.c) maps every code to its HTTP status, OpenAI "type" and
 * "code" strings, so a handler only decides *which* error happened. Every
 * error body has OpenAI's shape:
 *   {"error": {"message": "...", "type": "...", "param": "..."|null, "code": "..."|null}}
 */
#ifndef DS_SERVER_ERRORS_H
#define DS_SERVER_ERRORS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum srv_err {
    SRV_OK = 0,
    SRV_EINVAL = -1,      /* 400 a field has a wrong type or value (param names it) */
    SRV_EJSON = -2,       /* 400 the body is not valid JSON / not an object */
    SRV_ETOOLONG = -3,    /* 400 the prompt (plus max_tokens) does not fit the model */
    SRV_EAUTH = -4,       /* 401 missing or wrong API key */
    SRV_ENOTFOUND = -5,   /* 404 unknown route */
    SRV_ENOMODEL = -6,    /* 404 unknown model name */
    SRV_EMETHOD = -7,     /* 405 method not allowed on this route */
    SRV_ETOOBIG = -8,     /* 413 request body over --max-body-size */
    SRV_EQUEUE = -9,      /* 429 the request queue is full (Retry-After) */
    SRV_EUNAVAIL = -10,   /* 503 loading or draining (Retry-After) */
    SRV_ENOTSUP = -11,    /* 400 a valid OpenAI feature this server does not support */
    SRV_ENOMEM = -12,     /* 500 out of memory (never caused by input size: limits come first) */
    SRV_EINTERNAL = -13,  /* 500 an engine failure */
    SRV_ECANCELED = -14,  /* request cancelled (client gone); no body is sent */
    SRV_ETIMEOUT = -15,   /* 408 the client was too slow */
    SRV_ERR_COUNT_ = 16
};

struct srv_error {
    int code;             /* enum srv_err */
    char param[64];       /* offending field name ("" = null) */
    char message[512];
};

/* Fill e (code, param may be NULL) with a printf-formatted message. Returns code. */
int srv_err_set(struct srv_error *e, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int srv_err_status(int code);          /* HTTP status (500 for unknown codes) */
const char *srv_err_type(int code);    /* OpenAI "type" string */
const char *srv_err_code_str(int code);/* OpenAI "code" string, or NULL for null */

/* The error body as a malloc'd NUL-terminated JSON string (caller frees); NULL
 * only when out of memory. */
char *srv_err_json(const struct srv_error *e);

#ifdef __cplusplus
}
#endif
#endif
