/* zk.h — one ZooKeeper session, driven from the owner's event loop.
 *
 * libzookeeper-mt calls watchers and completions on its own completion
 * thread. struct zk never runs user code there: it queues every completion,
 * watch and session-state change, signals an eventfd, and the owner calls
 * zk_dispatch() (on its own thread) to run the queued callbacks in order.
 * Unless said otherwise, every function here must be called from the owner
 * thread, the one that calls zk_dispatch().
 *
 * Paths are relative to the chroot given in the host string.
 *
 * Error mapping (ZooKeeper code → negative errno), used by every function:
 *   ZNONODE → -ENOENT            ZNODEEXISTS → -EEXIST       ZBADVERSION → -ESTALE
 *   ZNOTEMPTY → -ENOTEMPTY       ZCONNECTIONLOSS, ZSESSIONMOVED → -ECONNRESET
 *   ZSESSIONEXPIRED, ZINVALIDSTATE → -EKEYEXPIRED (the session is gone)
 *   ZOPERATIONTIMEOUT → -ETIMEDOUT   ZCLOSING → -ESHUTDOWN   ZNOAUTH, ZAUTHFAILED → -EACCES
 *   ZBADARGUMENTS, ZINVALIDACL → -EINVAL   ZNOCHILDRENFOREPHEMERALS → -EPERM
 *   ZMARSHALLINGERROR → -EBADMSG  ZTHROTTLEDOP → -EAGAIN     ZNOTREADONLY → -EROFS
 *   anything else → -EIO. A node larger than ZK_DATA_MAX reads as -EFBIG. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct zk;

/* What one session sent and received since zk_new(): every request (each
 * makepath step and each synchronous call counts) and every watch event.
 * The launcher's cost per node request is measured in these (tests/bench). */
struct zk_counts {
        uint64_t get, exists, children, set, create, del, watch_events;
        uint64_t multi;         /* zk_amulti() requests (one each) ... */
        uint64_t multi_ops;     /* ... and the operations they carried */
};

/* ZooKeeper's default jute.maxbuffer: no legitimate node is larger. */
#define ZK_DATA_MAX (1024 * 1024)

struct zk_stat {
        int64_t czxid, mzxid, pzxid;
        int64_t ctime, mtime; /* milliseconds since the epoch */
        int32_t version, cversion, aversion;
        int64_t ephemeral_owner;
        int32_t data_length, num_children;
};

enum zk_state {
        ZK_STATE_CONNECTED, /* (re)connected; after EXPIRED this is a new session */
        ZK_STATE_SUSPENDED, /* connection lost; the session (and its ephemerals) may survive */
        ZK_STATE_EXPIRED,   /* session gone: ephemerals and watches lost; zk opens a new one */
        _ZK_STATE_MAX,
        _ZK_STATE_INVALID = -EINVAL,
};

enum zk_event {
        ZK_EVENT_CREATED,
        ZK_EVENT_DELETED,
        ZK_EVENT_CHANGED,
        ZK_EVENT_CHILD,
        _ZK_EVENT_MAX,
        _ZK_EVENT_INVALID = -EINVAL,
};

/* Create flags (zk_create, zk_acreate). */
enum {
        ZK_PERSISTENT = 0,
        ZK_EPHEMERAL = 1 << 0,
        ZK_SEQUENCE = 1 << 1,
        ZK_MAKEPATH = 1 << 2, /* create missing parents (persistent, empty data) like kazoo */
};

const char *zk_state_to_string(enum zk_state s);
const char *zk_event_to_string(enum zk_event e);
/* ZooKeeper return code → negative errno (table above); 0 for ZOK. */
int zk_errno(int zrc);

/* TLS client material: PEM file paths, as zookeeper-tls in nodepool.yaml.
 * The server's certificate must chain to CA (or to a system CA, as with
 * kazoo); host names are not checked (neither does Nodepool). */
struct zk_tls {
        const char *ca;   /* CA certificate(s) */
        const char *cert; /* client certificate (chain) */
        const char *key;  /* its private key, unencrypted */
};

/* Start a session to HOSTS ("h:p,h:p/chroot"); connects in the background,
 * over TLS if TLS is not NULL (the paths are copied; the files are read on
 * every connect). A TLS handshake failure is logged once as an error (again
 * after a success, or as a reminder every ten minutes) and retried like any
 * connection loss. Returns 0, -EINVAL (a TLS path missing, empty or with a
 * comma: the client's separator) or -errno; *ret owned by the caller (zk_free). */
int zk_new(const char *hosts, int session_timeout_ms, const struct zk_tls *tls, struct zk **ret);
/* Close the session (ephemerals go at once) and free everything. NULL ok.
 * Pending callbacks are dropped without being called. */
void zk_free(struct zk *zk);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct zk *, zk_free);

/* Block until connected (reopening an expired session). 0, -ETIMEDOUT. */
int zk_connect_wait(struct zk *zk, int timeout_ms);
bool zk_is_connected(struct zk *zk);
/* Bumped whenever the session is lost (expiry seen) — ephemerals created
 * under an older generation are gone. Thread-safe. */
uint64_t zk_session_generation(struct zk *zk);
/* Session timeout the server granted (ms); 0 before the first connect. */
int zk_session_timeout(struct zk *zk);

/* The current session's id (the ephemeralOwner of the nodes it creates); 0
 * while there is none. Owner thread. */
int64_t zk_session_id(struct zk *zk);
/* The session's queue of confirmed deletes of our ephemerals (zk_release.h):
 * made on first use, freed by zk_free(). Owner thread. */
struct zk_release_queue *zk_releases(struct zk *zk);

/* The eventfd the owner polls (POLLIN) and then calls zk_dispatch(). */
int zk_event_fd(struct zk *zk);
/* Run every queued callback on the calling (owner) thread, in arrival order. */
void zk_dispatch(struct zk *zk);

/* Session-state listeners, called from zk_dispatch(). Several may be added;
 * each (cb, userdata) pair once. zk_set_state_cb() is add under its name. */
typedef void (*zk_state_cb)(struct zk *zk, enum zk_state state, void *userdata);
void zk_add_state_listener(struct zk *zk, zk_state_cb cb, void *userdata);
void zk_remove_state_listener(struct zk *zk, zk_state_cb cb, void *userdata);
void zk_set_state_cb(struct zk *zk, zk_state_cb cb, void *userdata);

/* ---- synchronous helpers (block the caller for a round trip) ---- */

/* Read PATH. *ret_data is NUL-terminated (not counted in *ret_len) and owned
 * by the caller; a node with null data reads as "" / 0. ret_stat may be NULL. */
int zk_get(struct zk *zk, const char *path, char **ret_data, size_t *ret_len, struct zk_stat *ret_stat);
/* Write PATH if its version is VERSION (-1: any). ret_stat may be NULL. */
int zk_set(struct zk *zk, const char *path, const void *data, size_t len, int version, struct zk_stat *ret_stat);
/* Create PATH with FLAGS (ZK_*); data NULL means empty b"". *ret_path (may be
 * NULL) gets the created path (with the sequence suffix), caller frees. */
int zk_create(struct zk *zk, const char *path, const void *data, size_t len, unsigned flags, char **ret_path);
int zk_delete(struct zk *zk, const char *path, int version);
/* Delete PATH and everything below it, children first; a missing node is 0. */
int zk_delete_recursive(struct zk *zk, const char *path);
/* 1 exists (ret_stat filled if not NULL), 0 does not, or -errno. */
int zk_exists(struct zk *zk, const char *path, struct zk_stat *ret_stat);
/* Children names of PATH, unsorted, as a NULL-terminated vector (zk_strv_free). */
int zk_get_children(struct zk *zk, const char *path, char ***ret_children, size_t *ret_n);
/* Create PATH and missing parents, persistent with empty data; existing is fine. */
int zk_ensure_path(struct zk *zk, const char *path);
/* Block until PATH changes or is deleted, the session state changes, or
 * TIMEOUT_MS (-1: forever) passes: 0 woken, 1 PATH does not exist (nothing
 * to wait for), -ETIMEDOUT, or -errno. For blocking recipes (lock acquire). */
int zk_wait_change(struct zk *zk, const char *path, int timeout_ms);
void zk_strv_free(char **v);

/* ---- asynchronous operations; callbacks run from zk_dispatch() ---- */

struct zk_result {
        int r;                   /* 0 or -errno */
        const char *path;        /* the path the operation was issued on */
        const char *data;        /* aget: NUL-terminated */
        size_t len;              /* aget */
        const struct zk_stat *stat; /* aget, aset, aexists, aget_children, acreate, amulti (its last
                                     * set's), NULL on error */
        char **children;         /* aget_children: NULL-terminated; valid during the callback */
        size_t n_children;
        const char *created_path; /* acreate */
        size_t multi_failed;     /* amulti with r < 0: 1 + the index of the operation that failed,
                                  * 0 when none did (e.g. the connection was lost) */
        bool watch_registered;   /* a watch was asked for and is now set */
        uint64_t watch_id;       /* its id, matched by zk_watch_event.id */
};
struct zk_watch_event {
        enum zk_event type;
        const char *path;
        uint64_t id;
};
/* Everything the callbacks point to is valid only during the call. */
typedef void (*zk_result_cb)(struct zk *zk, const struct zk_result *res, void *userdata);
/* A one-shot watch: called at most once, on a node event (session changes go
 * to state listeners; an expiry silently drops every watch). */
typedef void (*zk_watch_cb)(struct zk *zk, const struct zk_watch_event *ev, void *userdata);

/* Each takes a completion CB (NULL: fire and forget) and, for reads, an
 * optional WATCH. USERDATA goes to both. All return 0 (the callback will
 * run exactly once, maybe with an error) — errors are reported through it. */
int zk_aget(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata);
int zk_aexists(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata);
int zk_aget_children(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata);
int zk_aset(struct zk *zk, const char *path, const void *data, size_t len, int version, zk_result_cb cb,
            void *userdata);
/* With ZK_MAKEPATH, missing parents are created (bottom-up, as kazoo). */
int zk_acreate(struct zk *zk, const char *path, const void *data, size_t len, unsigned flags, zk_result_cb cb,
               void *userdata);
int zk_adelete(struct zk *zk, const char *path, int version, zk_result_cb cb, void *userdata);
/* One operation of a zk_amulti(). */
enum zk_multi_kind {
        ZK_MULTI_DELETE,        /* PATH if its version is VERSION (-1: any) */
        ZK_MULTI_SET,           /* DATA (LEN bytes) into PATH if its version is VERSION (-1: any) */
        ZK_MULTI_CHECK,         /* nothing, but PATH must be at VERSION */
        ZK_MULTI_CREATE,        /* PATH with DATA (LEN bytes) and FLAGS (ZK_*, no ZK_MAKEPATH) */
};
struct zk_multi_op {
        enum zk_multi_kind kind;
        const char *path;
        const void *data;
        size_t len;
        int version;
        unsigned flags;
};
/* OPS (N, copied) applied atomically, in order, as one request: all or none.
 * CB's res->r is 0, or the error of the first operation that failed (then
 * nothing was applied; res->multi_failed says which); res->path is OPS[0]'s
 * path, res->created_path the path the last create made, res->stat the
 * record as the last set left it. 0, or -EINVAL (no operation, more than 64, a bad
 * path, kind or flag, data over ZK_DATA_MAX). */
int zk_amulti(struct zk *zk, const struct zk_multi_op *ops, size_t n, zk_result_cb cb, void *userdata);
/* Drop (never call) every pending callback and watch whose userdata is
 * USERDATA: call before freeing the object they point to. Cost: the calls
 * hashed with USERDATA, not every outstanding one. NULL USERDATA: no-op. */
void zk_cancel(struct zk *zk, void *userdata);

/* The session's counts so far. Any thread. */
void zk_get_counts(struct zk *zk, struct zk_counts *ret);
/* Requests sent on the session and not answered yet. Any thread. */
unsigned zk_pending(struct zk *zk);
