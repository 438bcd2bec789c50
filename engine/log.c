/* engine/log.c: see log.h. One formatted line per call, written atomically. */
#include "engine/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level g_level = LOG_LVL_INFO;
static int g_json = 0;

void log_set_level(enum log_level l) { g_level = l; }
enum log_level log_get_level(void) { return g_level; }
void log_set_json(int on) { g_json = on; }

int log_parse_level(const char *s)
{
    if (!s) return -1;
    if (!strcasecmp(s, "debug")) return LOG_LVL_DEBUG;
    if (!strcasecmp(s, "info")) return LOG_LVL_INFO;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning")) return LOG_LVL_WARN;
    if (!strcasecmp(s, "error")) return LOG_LVL_ERROR;
    return -1;
}

static const char *lvl_name(enum log_level l)
{
    static const char *n[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    return (unsigned)l < 4 ? n[l] : "?";
}

/* JSON-escape src into dst (always NUL-terminated). */
static size_t json_escape(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p && o + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') { dst[o++] = '\\'; dst[o++] = (char)*p; }
        else if (*p == '\n') { dst[o++] = '\\'; dst[o++] = 'n'; }
        else if (*p < 0x20) o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", *p);
        else dst[o++] = (char)*p;
    }
    dst[o] = 0;
    return o;
}

void log_msg(enum log_level l, const char *file, int line, const char *fmt, ...)
{
    if (l < g_level) return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    char out[9000];
    int n;
    if (g_json) {
        char esc[8400];
        json_escape(esc, sizeof esc, msg);
        n = snprintf(out, sizeof out, "{\"ts\":\"%s\",\"level\":\"%s\",\"src\":\"%s:%d\",\"msg\":\"%s\"}\n",
                     when, lvl_name(l), base, line, esc);
    } else {
        n = snprintf(out, sizeof out, "%s %-5s %s\n", when, lvl_name(l), msg);
    }
    if (n < 0) return;
    if ((size_t)n >= sizeof out) n = sizeof out - 1;
    ssize_t w = write(STDERR_FILENO, out, (size_t)n);
    (void)w;
}
