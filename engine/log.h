/* engine/log.h: leveled logging to stderr, text or JSON lines.
 *
 * defines: log_set_level, log_set_json, log_parse_level, log_msg, LOG_DEBUG,
 *          LOG_INFO, LOG_WARN, LOG_ERROR
 *
 * Threads: any thread may log; each line is written with one write(2) so lines
 * from different threads never interleave. Level and format are set once at
 * startup before other threads start.
 */
#ifndef DS_ENGINE_LOG_H
#define DS_ENGINE_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO = 1, LOG_LVL_WARN = 2, LOG_LVL_ERROR = 3 };

void log_set_level(enum log_level l);
enum log_level log_get_level(void);
void log_set_json(int on);
/* "debug"|"info"|"warning"|"warn"|"error" -> level; -1 if unknown. */
int log_parse_level(const char *s);
void log_msg(enum log_level l, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_DEBUG(...) log_msg(LOG_LVL_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_INFO(...) log_msg(LOG_LVL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_WARN(...) log_msg(LOG_LVL_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_ERROR(...) log_msg(LOG_LVL_ERROR, __FILE__, __LINE__, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
