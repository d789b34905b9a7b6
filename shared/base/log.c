/* log.c — see log.h. The logger is the one process-wide singleton outside a
 * daemon struct: every module, in every thread, must be able to log before
 * and after the daemon struct exists. */
#include "log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "alloc.h"

#define LOG_LINE_MAX 4096

static struct {
        pthread_mutex_t lock;
        char component[64];
        enum log_level level;
        char *path;
        int fd;
        bool to_stderr;
} logger = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .component = "poold",
        .level = LOG_LEVEL_INFO,
        .fd = -1,
        .to_stderr = true,
};

static const char *const level_names[_LOG_LEVEL_MAX] = {
        [LOG_LEVEL_DEBUG] = "DEBUG",
        [LOG_LEVEL_INFO] = "INFO",
        [LOG_LEVEL_WARNING] = "WARNING",
        [LOG_LEVEL_ERROR] = "ERROR",
};

const char *log_level_to_string(enum log_level level) {
        if (level < 0 || level >= _LOG_LEVEL_MAX) return NULL;
        return level_names[level];
}

enum log_level log_level_from_string(const char *s) {
        if (!s) return _LOG_LEVEL_INVALID;
        for (int i = 0; i < _LOG_LEVEL_MAX; i++)
                if (strcasecmp(s, level_names[i]) == 0) return (enum log_level)i;
        if (strcasecmp(s, "warn") == 0) return LOG_LEVEL_WARNING;
        return _LOG_LEVEL_INVALID;
}

void log_setup(const char *component, enum log_level level) {
        pthread_mutex_lock(&logger.lock);
        snprintf(logger.component, sizeof logger.component, "%s", component ? component : "poold");
        if (level >= 0 && level < _LOG_LEVEL_MAX) logger.level = level;
        pthread_mutex_unlock(&logger.lock);
}

void log_set_level(enum log_level level) {
        if (level < 0 || level >= _LOG_LEVEL_MAX) return;
        pthread_mutex_lock(&logger.lock);
        logger.level = level;
        pthread_mutex_unlock(&logger.lock);
}

enum log_level log_get_level(void) {
        pthread_mutex_lock(&logger.lock);
        enum log_level l = logger.level;
        pthread_mutex_unlock(&logger.lock);
        return l;
}

static int open_log(const char *path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
        return fd < 0 ? negative_errno() : fd;
}

int log_open_file(const char *path, bool also_stderr) {
        int fd = open_log(path);
        if (fd < 0) return fd;
        pthread_mutex_lock(&logger.lock);
        if (logger.fd >= 0) close(logger.fd);
        free(logger.path);
        logger.fd = fd;
        logger.path = xstrdup(path);
        logger.to_stderr = also_stderr;
        pthread_mutex_unlock(&logger.lock);
        return 0;
}

int log_reopen(void) {
        int r = 0;
        pthread_mutex_lock(&logger.lock);
        if (logger.path) {
                int fd = open_log(logger.path);
                if (fd < 0)
                        r = fd; /* keep writing to the old file rather than lose lines */
                else {
                        close(logger.fd);
                        logger.fd = fd;
                }
        }
        pthread_mutex_unlock(&logger.lock);
        return r;
}

void log_close(void) {
        pthread_mutex_lock(&logger.lock);
        if (logger.fd >= 0) close(logger.fd);
        logger.fd = -1;
        free(logger.path);
        logger.path = NULL;
        logger.to_stderr = true;
        pthread_mutex_unlock(&logger.lock);
}

static void write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR) continue;
                        return; /* nowhere left to report a logging failure */
                }
                buf += n;
                len -= (size_t)n;
        }
}

int log_internalv(enum log_level level, int error, const char *fmt, va_list ap) {
        int ret = error < 0 ? error : -error;
        if (level < 0 || level >= _LOG_LEVEL_MAX) level = LOG_LEVEL_ERROR;

        int saved_errno = errno;
        pthread_mutex_lock(&logger.lock);
        if (level < logger.level) {
                pthread_mutex_unlock(&logger.lock);
                errno = saved_errno;
                return ret;
        }

        char line[LOG_LINE_MAX];
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        size_t n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof line - n, ".%03ld %s %s: ", (long)(tv.tv_usec / 1000),
                              level_names[level], logger.component);
        if (n < sizeof line) {
                if (error != 0) errno = ret < 0 ? -ret : ret;
                int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
                if (m > 0) n += (size_t)m;
        }
        if (n >= sizeof line) {
                /* Truncated: mark it so a reader knows the line is incomplete. */
                n = sizeof line - 5;
                memcpy(line + n, "...", 3);
                n += 3;
        }
        line[n++] = '\n';

        if (logger.fd >= 0) write_all(logger.fd, line, n);
        if (logger.to_stderr || logger.fd < 0) write_all(STDERR_FILENO, line, n);
        pthread_mutex_unlock(&logger.lock);
        errno = saved_errno;
        return ret;
}

int log_internal(enum log_level level, int error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = log_internalv(level, error, fmt, ap);
        va_end(ap);
        return r;
}
