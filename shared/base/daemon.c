/* daemon.c — see daemon.h.
 *
 * DESIGN: the pidfile lock is flock(2), which belongs to the open file
 * description, so it vanishes with the process that holds it: no stale-pid
 * guessing. Release unlinks the file while still holding the lock; an acquirer
 * that opened the old inode just before notices (the path no longer names the
 * inode it locked) and retries, so two instances cannot both "win".
 * Readiness travels over a CLOEXEC pipe from the daemon to the original
 * process: one byte 'R', or 'F' plus an errno; EOF without either means the
 * daemon died during startup. */
#include "daemon.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "alloc.h"
#include "log.h"

struct daemon_pidfile {
        int fd;
        char *path;
};

struct daemon_ready {
        int fd;
};

static pid_t read_pid(int fd) {
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n <= 0) return 0;
        buf[n] = '\0';
        long v = strtol(buf, NULL, 10);
        return v > 0 && v <= INT32_MAX ? (pid_t)v : 0;
}

int daemon_pidfile_acquire(const char *path, struct daemon_pidfile **ret_pidfile, pid_t *reterr_holder) {
        for (int attempt = 0; attempt < 5; attempt++) {
                _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
                if (fd < 0) return log_debug_errno(errno, "pidfile %s: open: %m", path);
                if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        if (errno != EWOULDBLOCK) return log_debug_errno(errno, "pidfile %s: flock: %m", path);
                        if (reterr_holder) *reterr_holder = read_pid(fd);
                        return -EBUSY;
                }
                struct stat a, b;
                if (fstat(fd, &a) < 0) return negative_errno();
                if (stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
                        continue; /* released and unlinked under us: retry on the new file */

                char buf[32];
                int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
                if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
                        return log_debug_errno(errno ? errno : EIO, "pidfile %s: write: %m", path);

                struct daemon_pidfile *pf = xnew(struct daemon_pidfile, 1);
                pf->fd = TAKE_FD(fd);
                pf->path = xstrdup(path);
                *ret_pidfile = pf;
                return 0;
        }
        return -EBUSY;
}

void daemon_pidfile_release(struct daemon_pidfile *pf) {
        if (!pf) return;
        (void)unlink(pf->path); /* before dropping the lock: see DESIGN */
        close(pf->fd);
        free(pf->path);
        free(pf);
}

/* The original process: wait for the verdict, never return. */
static _noreturn_ void wait_for_ready(int fd, pid_t middle) {
        while (waitpid(middle, NULL, 0) < 0 && errno == EINTR) {}
        unsigned char msg[1 + sizeof(int)];
        size_t got = 0;
        while (got < sizeof msg) {
                ssize_t n = read(fd, msg + got, sizeof msg - got);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                got += (size_t)n;
                if (msg[0] == 'R') _exit(EXIT_SUCCESS);
        }
        if (got == sizeof msg && msg[0] == 'F') {
                int e;
                memcpy(&e, msg + 1, sizeof e);
                log_error_errno(e, "daemon failed to start: %m");
        } else
                log_error("daemon exited before it was ready");
        _exit(EXIT_FAILURE);
}

int daemon_detach(struct daemon_ready **ret_ready) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) return negative_errno();
        _cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (devnull < 0) {
                int r = negative_errno();
                close(p[0]);
                close(p[1]);
                return r;
        }
        fflush(NULL); /* or buffered stdio would be written twice */
        pid_t pid = fork();
        if (pid < 0) {
                int r = negative_errno();
                close(p[0]);
                close(p[1]);
                return r;
        }
        if (pid > 0) {
                close(p[1]);
                wait_for_ready(p[0], pid);
        }

        /* Middle child: new session, then fork again so the daemon is not a
         * session leader and can never acquire a controlling terminal. */
        close(p[0]);
        if (setsid() < 0) _exit(EXIT_FAILURE);
        pid = fork();
        if (pid < 0) _exit(EXIT_FAILURE); /* the parent sees EOF and reports it */
        if (pid > 0) _exit(EXIT_SUCCESS);

        if (chdir("/") < 0) { /* "/" always exists; nothing sensible to do */ }
        for (int i = 0; i < 3; i++) (void)dup2(devnull, i);
        struct daemon_ready *r = xnew(struct daemon_ready, 1);
        r->fd = p[1];
        *ret_ready = r;
        return 0;
}

static void ready_send(struct daemon_ready *ready, const void *msg, size_t len) {
        while (write(ready->fd, msg, len) < 0 && errno == EINTR) {}
        close(ready->fd);
        free(ready);
}

void daemon_notify_ready(struct daemon_ready *ready) {
        if (!ready) return;
        ready_send(ready, "R", 1);
}

void daemon_notify_failed(struct daemon_ready *ready, int error) {
        if (!ready) return;
        unsigned char msg[1 + sizeof(int)] = { 'F' };
        int e = error < 0 ? -error : error;
        memcpy(msg + 1, &e, sizeof e);
        ready_send(ready, msg, sizeof msg);
}
