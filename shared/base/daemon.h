/* daemon.h — pidfile and detaching from the terminal with a readiness handshake.
 *
 * Order of use in a daemon's main():
 *     log_open_file(...);                 // before stderr goes to /dev/null
 *     daemon_detach(&ready);              // only with -d; before creating threads
 *     daemon_pidfile_acquire(path, &pf, &holder);   // in the daemon, so it holds its own pid
 *     ... set up, connect ...
 *     daemon_notify_ready(ready);         // now `poold -d` exits 0
 * and on any startup error: daemon_notify_failed(ready, r) (`poold -d` exits 1). */
#pragma once

#include <sys/types.h>

#include "macro.h"

struct daemon_pidfile;
struct daemon_ready;

/* Create/open path, take an exclusive flock on it (released by the kernel if
 * we die, so a stale file of a dead process is simply taken over) and write
 * our pid. Returns 0 and *ret_pidfile; -EBUSY when another process holds it,
 * with its pid in *reterr_holder (0 if it could not be read; may be NULL);
 * other -errno on I/O failure. */
int daemon_pidfile_acquire(const char *path, struct daemon_pidfile **ret_pidfile, pid_t *reterr_holder)
        _warn_unused_result_;
/* Remove the file and drop the lock. NULL is a no-op. */
void daemon_pidfile_release(struct daemon_pidfile *pf);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct daemon_pidfile *, daemon_pidfile_release);

/* Detach: fork, setsid, fork again, chdir("/"), stdin/stdout/stderr to /dev/null.
 * Returns 0 and *ret_ready only in the daemon process. The original process
 * does not return: it waits until the daemon calls daemon_notify_ready()
 * (then exits 0) or daemon_notify_failed() or exits first (then prints why on
 * its stderr and exits 1). Returns -errno, still in the original process, if
 * it could not fork. Call before any thread exists. */
int daemon_detach(struct daemon_ready **ret_ready) _warn_unused_result_;
/* Tell the waiting parent that startup succeeded; frees the handle. NULL is a no-op
 * (so foreground mode can pass the NULL it never got from daemon_detach). */
void daemon_notify_ready(struct daemon_ready *ready);
/* Tell the waiting parent that startup failed with error (-errno); frees the handle. */
void daemon_notify_failed(struct daemon_ready *ready, int error);
