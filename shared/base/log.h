/* log.h — leveled logging with a per-component prefix, to stderr and/or a file.
 *
 * One line per call, written with a single write(2) so lines from the
 * ZooKeeper completion thread and the main loop never interleave.
 * Library modules log at debug only; errors are logged once, by the caller
 * that decides what to do about them.
 *
 * The log_*_errno() forms set errno from their error argument, so "%m" in the
 * format prints its text, and they return -abs(error) for "return log_..." use. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

#include "macro.h"

enum log_level {
        LOG_LEVEL_DEBUG,
        LOG_LEVEL_INFO,
        LOG_LEVEL_WARNING,
        LOG_LEVEL_ERROR,
        _LOG_LEVEL_MAX,
        _LOG_LEVEL_INVALID = -EINVAL,
};

/* Set the component prefix (copied) and minimum level. Writes to stderr
 * until log_open_file() succeeds; stderr stays on when also_stderr. */
void log_setup(const char *component, enum log_level level);
/* Also (or instead) log to PATH, opened O_APPEND; reopened by log_reopen()
 * for logrotate. Returns 0 or -errno. */
int log_open_file(const char *path, bool also_stderr);
int log_reopen(void);
void log_close(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
enum log_level log_level_from_string(const char *s);
const char *log_level_to_string(enum log_level level);

int log_internal(enum log_level level, int error, const char *fmt, ...) _printf_(3, 4);
int log_internalv(enum log_level level, int error, const char *fmt, va_list ap) _printf_(3, 0);

#define log_debug(...) log_internal(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_LEVEL_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...) log_internal(LOG_LEVEL_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
