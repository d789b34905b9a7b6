/* service.h — start-up and reload plumbing shared by the daemons.
 *
 * Small pieces both poold and poold-builder need in the same way: loading
 * the configuration with every diagnostic logged, hooking a ZooKeeper
 * session into the event loop, and noticing that a config file changed. */
#pragma once

#include <stdbool.h>
#include <time.h>

struct config;
struct daemon_pidfile;
struct daemon_ready;
struct loop;
struct loop_io;
struct zk;

/* Load PATH (+ SECURE, may be NULL), logging every diagnostic at its
 * severity as "FILE:LINE:COL: message". 0 and *ret (caller frees), or
 * -EINVAL (errors logged) / other -errno. */
int service_config_load(const char *path, const char *secure, struct config **ret);

/* Process shape both daemons share, in this order: log to LOGFILE (NULL:
 * stderr; also echoed to stderr when FOREGROUND; a Python logging
 * configuration there is read for its file handler, never written: see
 * logconfig.h), detach unless FOREGROUND
 * (the parent waits for daemon_notify_ready/failed on *ret_ready), then take
 * PIDFILE (NULL: none). Errors are logged naming NAME. On success returns 0
 * with *ret_ready (NULL in the foreground) and *ret_pidfile (NULL without a
 * pidfile); on failure a -errno, after notifying a waiting parent. */
int service_start(const char *name, const char *logfile, bool foreground, const char *pidfile,
                  struct daemon_ready **ret_ready, struct daemon_pidfile **ret_pidfile);

/* Run zk_dispatch() whenever the session has queued callbacks. The returned
 * watch must be removed (loop_io_remove) before zk_free. */
int service_zk_attach(struct loop *loop, struct zk *zk, struct loop_io **ret_io);

/* True when PATH's mtime differs from *mtime (updated in place). A missing
 * file counts as mtime 0, so deleting and restoring it is a change too.
 * NULL path: false. */
bool service_file_changed(const char *path, struct timespec *mtime);

/* The host's name as Nodepool reports it (gethostname; "localhost" if unset). */
void service_hostname(char *buf, size_t len);

/* A stop signal (SIGTERM or SIGINT) is pending: blocked for the event loop's
 * signalfd, it waits there until the loop runs. A start-up step that blocks
 * (the first ZooKeeper connect) polls this so a stop is not delayed by it. */
bool service_stop_pending(void);
