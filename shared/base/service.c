/* service.c — see service.h. */
#include "service.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_diag.h"
#include "daemon.h"
#include "log.h"
#include "logconfig.h"
#include "macro.h"
#include "loop.h"
#include "zk.h"

int service_config_load(const char *path, const char *secure, struct config **ret) {
        struct config_diags diags = {};
        struct config *c = NULL;
        int r = config_load(path, secure, &c, &diags);
        for (size_t i = 0; i < diags.n; i++) {
                const struct config_diag *d = &diags.items[i];
                enum log_level lvl = d->severity == CONFIG_SEVERITY_ERROR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING;
                if (d->line > 0)
                        log_internal(lvl, 0, "%s:%u:%u: %s", d->file, d->line, d->column, d->message);
                else
                        log_internal(lvl, 0, "%s: %s", d->file, d->message);
        }
        config_diags_clear(&diags);
        if (r < 0) return r;
        *ret = c;
        return 0;
}

int service_start(const char *name, const char *logfile, bool foreground, const char *pidfile,
                  struct daemon_ready **ret_ready, struct daemon_pidfile **ret_pidfile) {
        int r;
        if (logfile) {
                _cleanup_free_ char *file = NULL, *note = NULL;
                r = logconfig_resolve(logfile, &file, &note);
                if (r < 0) return log_error_errno(r, "cannot read %s: %m", logfile);
                if (file) {
                        r = log_open_file(file, foreground);
                        if (r < 0) return log_error_errno(r, "cannot open log file %s: %m", file);
                }
                if (note) log_info("%s", note);
        }
        struct daemon_ready *ready = NULL;
        if (!foreground) {
                r = daemon_detach(&ready);
                if (r < 0) return log_error_errno(r, "cannot detach: %m");
        }
        struct daemon_pidfile *pf = NULL;
        if (pidfile) {
                pid_t holder = 0;
                r = daemon_pidfile_acquire(pidfile, &pf, &holder);
                if (r == -EBUSY)
                        log_error("another %s (pid %d) holds %s", name, (int)holder, pidfile);
                else if (r < 0)
                        log_error_errno(r, "pid file %s: %m", pidfile);
                if (r < 0) {
                        daemon_notify_failed(ready, r);
                        return r;
                }
        }
        *ret_ready = ready;
        *ret_pidfile = pf;
        return 0;
}

static void on_zk_event(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        zk_dispatch(ud);
}

int service_zk_attach(struct loop *loop, struct zk *zk, struct loop_io **ret_io) {
        return loop_add_fd(loop, zk_event_fd(zk), EPOLLIN, on_zk_event, zk, ret_io);
}

bool service_file_changed(const char *path, struct timespec *mtime) {
        if (!path) return false;
        struct stat st;
        struct timespec now = {};
        if (stat(path, &st) == 0) now = st.st_mtim;
        bool changed = now.tv_sec != mtime->tv_sec || now.tv_nsec != mtime->tv_nsec;
        *mtime = now;
        return changed;
}

void service_hostname(char *buf, size_t len) {
        if (gethostname(buf, len) < 0 || !buf[0]) snprintf(buf, len, "localhost");
        buf[len - 1] = '\0';
}

bool service_stop_pending(void) {
        sigset_t set;
        if (sigpending(&set) < 0) return false;
        return sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1;
}
