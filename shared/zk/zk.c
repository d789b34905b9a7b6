/* zk.c — see zk.h.
 *
 * DESIGN. libzookeeper-mt has two threads of its own: an I/O thread and a
 * completion thread that calls watchers and completions. Those trampolines
 * only copy results into a heap "call", append it to a FIFO under zk->mu and
 * poke an eventfd; zk_dispatch() on the owner thread runs the user callbacks.
 *
 * Every pending operation and armed watch is a struct zk_call on the
 * zk->all list, so that zk_cancel() can mute it, and so that calls the library
 * will never complete (watches still registered when a handle is closed, the
 * library frees them without calling us) are freed by us after close.
 *
 * Session expiry: the library cannot revive an expired handle. The watcher
 * bumps the session generation at once (locks check it), queues EXPIRED, and
 * the dispatcher closes the old handle and opens a new one before telling the
 * listeners, who then see CONNECTED again when the new session is up.
 *
 * Blocking recipes (zk_wait_change) use "sync waiter" watches that signal a
 * condition variable instead of the queue, so they work without dispatch.
 *
 * TLS: OpenSSL writes with write(), not send(MSG_NOSIGNAL) as the plaintext
 * path does, so a server that closed the connection raises SIGPIPE in the
 * writing thread, which would kill a program that does not ignore it. The
 * library writes from its I/O thread (which inherits SIGPIPE blocked from
 * handle_open()) and, flushing the close request, from zookeeper_close()'s
 * caller (see handle_close()). */
#include "zk.h"

#include <openssl/err.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "alloc.h"
#include "log.h"
#include "zk_release.h"

enum call_kind { CALL_OP, CALL_WATCH, CALL_STATE };

/* zk_cancel() runs for every object freed on the loop: a bucket per userdata
 * hash keeps it from walking every outstanding call. */
#define ZK_UD_BUCKETS 1024
enum op_type { OP_GET, OP_EXISTS, OP_CHILDREN, OP_SET, OP_CREATE, OP_DELETE, OP_MULTI, _OP_MAX };

struct zk;
static void count_sync(struct zk *zk, enum op_type op);

struct zk_call {
        struct zk *zk;
        enum call_kind kind;
        struct zk_call *all_prev, *all_next; /* zk->all, ops and watches only */
        struct zk_call *ud_prev, *ud_next;   /* zk->by_ud bucket of userdata (non-NULL only) */
        struct zk_call *q_next;              /* zk->queue */
        bool queued, cancelled, linked;
        void *userdata;

        /* CALL_OP */
        enum op_type op;
        zk_result_cb cb;
        char *path;
        struct zk_call *watch; /* armed together with this read, or NULL */
        char *data;            /* request (create/set) then result (get) */
        size_t len;
        int version;
        unsigned flags;
        int r;
        bool has_stat;
        struct Stat stat;
        char **children;
        size_t n_children;
        char *created;
        size_t mp_cur; /* makepath: length of the ancestor being created, 0 = target */
        int mp_steps;
        /* OP_MULTI: the operations and their answers, alive until the answer */
        zoo_op_t *mops;
        zoo_op_result_t *mres;
        struct Stat *mstats;
        char **mpaths, **mdata, **mcreated;
        size_t n_mops;
        size_t mfailed;        /* 1 + the index of the operation that failed, 0 none */

        /* CALL_WATCH */
        struct zk_call *arming_op; /* the read that armed it, until that read is dispatched */
        zk_watch_cb wcb;
        uint64_t id;
        int ev_type;
        char *ev_path;
        bool sync_waiter, fired, abandoned;

        /* CALL_STATE */
        enum zk_state state;
        uint64_t hid;
};

/* The context of one zhandle: lets the watcher ignore a closed handle's events. */
struct zk_handle_ctx {
        struct zk *zk;
        uint64_t hid;
};

struct zk_listener {
        zk_state_cb cb;
        void *userdata;
};

struct zk {
        zhandle_t *zh;
        struct zk_handle_ctx *hctx;
        char *hosts;
        char *tls; /* "ca,cert,key" for zookeeper_init2_ssl, or NULL: plaintext */
        int timeout_ms;
        int efd;

        pthread_mutex_t mu;
        pthread_cond_t cond;
        /* under mu */
        uint64_t n_ops[_OP_MAX], n_watch_events, n_multi_ops;  /* zk_get_counts() */
        struct zk_call *all;
        struct zk_call *by_ud[ZK_UD_BUCKETS]; /* the same calls by userdata, for zk_cancel() */
        struct zk_call *q_head, *q_tail;
        uint64_t hid;         /* current handle id */
        uint64_t session_gen; /* bumped on every expiry */
        uint64_t state_seq;   /* bumped on every state change (wakes waiters) */
        uint64_t next_id;
        unsigned inflight;    /* async requests the library has not answered yet */
        unsigned cond_waiters; /* threads in cond_wait_locked() */
        bool connected, expired, ever_connected;

        /* owner thread only */
        struct zk_release_queue *releases; /* made on first use */
        struct zk_listener *listeners;
        size_t n_listeners;
        unsigned notifying;
};

static const char *const state_names[_ZK_STATE_MAX] = {
        [ZK_STATE_CONNECTED] = "CONNECTED",
        [ZK_STATE_SUSPENDED] = "SUSPENDED",
        [ZK_STATE_EXPIRED] = "EXPIRED",
};
static const char *const event_names[_ZK_EVENT_MAX] = {
        [ZK_EVENT_CREATED] = "CREATED",
        [ZK_EVENT_DELETED] = "DELETED",
        [ZK_EVENT_CHANGED] = "CHANGED",
        [ZK_EVENT_CHILD] = "CHILD",
};

const char *zk_state_to_string(enum zk_state s) {
        return s >= 0 && s < _ZK_STATE_MAX ? state_names[s] : NULL;
}

const char *zk_event_to_string(enum zk_event e) {
        return e >= 0 && e < _ZK_EVENT_MAX ? event_names[e] : NULL;
}

int zk_errno(int zrc) {
        switch (zrc) {
        case ZOK: return 0;
        case ZNONODE: return -ENOENT;
        case ZNODEEXISTS: return -EEXIST;
        case ZBADVERSION: return -ESTALE;
        case ZNOTEMPTY: return -ENOTEMPTY;
        case ZCONNECTIONLOSS:
        case ZSESSIONMOVED: return -ECONNRESET;
        case ZSESSIONEXPIRED:
        case ZINVALIDSTATE: return -EKEYEXPIRED;
        case ZOPERATIONTIMEOUT: return -ETIMEDOUT;
        case ZCLOSING: return -ESHUTDOWN;
        case ZNOAUTH:
        case ZAUTHFAILED: return -EACCES;
        case ZBADARGUMENTS:
        case ZINVALIDACL: return -EINVAL;
        case ZNOCHILDRENFOREPHEMERALS: return -EPERM;
        case ZMARSHALLINGERROR: return -EBADMSG;
        case ZTHROTTLEDOP: return -EAGAIN;
        case ZNOTREADONLY: return -EROFS;
        default: return -EIO;
        }
}

static void stat_from(struct zk_stat *d, const struct Stat *s) {
        *d = (struct zk_stat){
                .czxid = s->czxid,
                .mzxid = s->mzxid,
                .pzxid = s->pzxid,
                .ctime = s->ctime,
                .mtime = s->mtime,
                .version = s->version,
                .cversion = s->cversion,
                .aversion = s->aversion,
                .ephemeral_owner = s->ephemeralOwner,
                .data_length = s->dataLength,
                .num_children = s->numChildren,
        };
}

static int create_mode(unsigned flags) {
        bool eph = flags & ZK_EPHEMERAL, seq = flags & ZK_SEQUENCE;
        return eph ? (seq ? ZOO_EPHEMERAL_SEQUENTIAL : ZOO_EPHEMERAL)
                   : (seq ? ZOO_PERSISTENT_SEQUENTIAL : ZOO_PERSISTENT);
}

/* Copy a String_vector into a NULL-terminated strv (library memory freed by caller). */
static char **strv_from(const struct String_vector *sv, size_t *ret_n) {
        size_t n = sv->count > 0 ? (size_t)sv->count : 0;
        char **v = xnew(char *, n + 1);
        for (size_t i = 0; i < n; i++) v[i] = xstrdup(sv->data[i]);
        *ret_n = n;
        return v;
}

void zk_strv_free(char **v) {
        if (!v) return;
        for (char **p = v; *p; p++) free(*p);
        free(v);
}

/* ---------------------------------------------------------------- calls */

static void call_free(struct zk_call *c) {
        if (!c) return;
        free(c->path);
        free(c->data);
        zk_strv_free(c->children);
        free(c->created);
        free(c->ev_path);
        for (size_t i = 0; i < c->n_mops; i++) {
                free(c->mpaths[i]);
                free(c->mdata[i]);
                free(c->mcreated[i]);
        }
        free(c->mcreated);
        free(c->mpaths);
        free(c->mdata);
        free(c->mops);
        free(c->mres);
        free(c->mstats);
        free(c);
}

static size_t ud_bucket(const void *userdata) {
        uintptr_t h = (uintptr_t)userdata;
        h ^= h >> 17;
        h *= UINT64_C(0x9e3779b97f4a7c15) & UINTPTR_MAX;
        return (size_t)(h >> 7) & (ZK_UD_BUCKETS - 1);
}

/* under mu */
static void all_link(struct zk *zk, struct zk_call *c) {
        c->all_prev = NULL;
        c->all_next = zk->all;
        if (zk->all) zk->all->all_prev = c;
        zk->all = c;
        c->linked = true;
        if (c->userdata) {
                struct zk_call **b = &zk->by_ud[ud_bucket(c->userdata)];
                c->ud_prev = NULL;
                c->ud_next = *b;
                if (*b) (*b)->ud_prev = c;
                *b = c;
        }
}

/* under mu */
static void all_unlink(struct zk *zk, struct zk_call *c) {
        if (!c->linked) return;
        if (c->all_prev)
                c->all_prev->all_next = c->all_next;
        else
                zk->all = c->all_next;
        if (c->all_next) c->all_next->all_prev = c->all_prev;
        c->all_prev = c->all_next = NULL;
        if (c->userdata) {
                if (c->ud_prev)
                        c->ud_prev->ud_next = c->ud_next;
                else
                        zk->by_ud[ud_bucket(c->userdata)] = c->ud_next;
                if (c->ud_next) c->ud_next->ud_prev = c->ud_prev;
                c->ud_prev = c->ud_next = NULL;
        }
        c->linked = false;
}

static void poke(struct zk *zk) {
        uint64_t one = 1;
        /* EAGAIN means the counter is already non-zero: the owner will wake. */
        ssize_t n = write(zk->efd, &one, sizeof one);
        (void)n;
}

/* Append to the dispatch queue; caller holds zk->mu. */
static void queue_append_locked(struct zk *zk, struct zk_call *c) {
        c->queued = true;
        c->q_next = NULL;
        if (zk->q_tail)
                zk->q_tail->q_next = c;
        else
                zk->q_head = c;
        zk->q_tail = c;
}

/* Append to the dispatch queue; any thread. Only the call that makes the queue
 * non-empty wakes the owner: zk_dispatch() reads the eventfd before it takes the
 * queue, so a wake-up it consumed is always followed by a take of everything queued. */
static void enqueue(struct zk *zk, struct zk_call *c) {
        pthread_mutex_lock(&zk->mu);
        bool was_empty = !zk->q_head;
        queue_append_locked(zk, c);
        pthread_mutex_unlock(&zk->mu);
        if (was_empty) poke(zk);
}

/* Wait on zk->cond (under mu), counted so that signallers skip the broadcast
 * when nobody waits. DEADLINE NULL: no timeout. Returns pthread's code. */
static int cond_wait_locked(struct zk *zk, const struct timespec *deadline) {
        zk->cond_waiters++;
        int e = deadline ? pthread_cond_timedwait(&zk->cond, &zk->mu, deadline) : pthread_cond_wait(&zk->cond, &zk->mu);
        zk->cond_waiters--;
        return e;
}

static void inflight_done(struct zk *zk) {
        pthread_mutex_lock(&zk->mu);
        if (zk->inflight > 0) zk->inflight--;
        if (zk->cond_waiters) pthread_cond_broadcast(&zk->cond);
        pthread_mutex_unlock(&zk->mu);
}

/* ---------------------------------------------------------------- TLS failures */

/* A failed TLS handshake (unknown CA, rejected client certificate) is retried
 * on every reconnect, several times a second. It is logged as an error once,
 * then again only with another reason, as a reminder every TLS_LOG_REPEAT_S,
 * or after a successful connect. The library's log callback has no context
 * pointer, so this one piece of state is the process's. */
#define TLS_LOG_REPEAT_S 600
static struct {
        pthread_mutex_t mu;
        char reason[256]; /* of the last failure logged; "" after a connect */
        time_t logged_at;  /* CLOCK_MONOTONIC seconds */
        unsigned repeats;  /* failures with that reason since */
} tls_log = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void tls_log_connected(void) {
        pthread_mutex_lock(&tls_log.mu);
        tls_log.reason[0] = '\0';
        tls_log.repeats = 0;
        pthread_mutex_unlock(&tls_log.mu);
}

/* The library's text after its "time:pid(tid):LEVEL@function@line: " prefix. */
static const char *lib_message_text(const char *m) {
        const char *p = strstr(m, "ZOO_");
        if (p) p = strchr(p, '@');
        if (p) p = strchr(p + 1, '@');
        if (p) p = strstr(p, ": ");
        return p ? p + 2 : m;
}

/* On the library's I/O thread: is MESSAGE about TLS? Then log it (de-duplicated)
 * with OpenSSL's reason from this thread's error queue, which it also empties
 * (the library leaves it filled, and stale entries confuse SSL_get_error()). */
static bool tls_log_failure(const char *message, size_t n) {
        unsigned long e, last = 0;
        while ((e = ERR_get_error()) != 0) last = e;
        const char *text = lib_message_text(message);
        size_t tn = n - (size_t)(text - message);
        if (!last && !memmem(text, tn, "ssl", 3) && !memmem(text, tn, "SSL", 3)) return false;

        /* "Socket 127.0.0.1:2281 zk retcode=-15, errno=0(Success): error in ssl connect" */
        char server[128] = "";
        const char *what = text;
        size_t wn = tn;
        const char *rc = memmem(text, tn, " zk retcode=", 12);
        if (strncmp(text, "Socket ", 7) == 0 && rc) {
                snprintf(server, sizeof server, " at %.*s", (int)(rc - text - 7), text + 7);
                const char *c = memmem(rc, tn - (size_t)(rc - text), "): ", 3);
                if (c) {
                        what = c + 3;
                        wn = tn - (size_t)(what - text);
                }
        }
        char reason[256];
        const char *lib_reason = last ? ERR_reason_error_string(last) : NULL;
        if (lib_reason)
                snprintf(reason, sizeof reason, "%s", lib_reason);
        else
                snprintf(reason, sizeof reason, "%.*s", (int)wn, what);
        /* Which side refused: we (the server's certificate does not chain to
         * our CA) or the server (an alert: it refused our certificate). */
        const char *hint = strstr(reason, "certificate verify failed")
                                   ? " (the server's certificate is not signed by zookeeper-tls 'ca')"
                           : strstr(reason, "alert") ? " (the server refused the client certificate, zookeeper-tls 'cert')"
                                                     : "";

        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        pthread_mutex_lock(&tls_log.mu);
        bool same = strcmp(tls_log.reason, reason) == 0;
        unsigned repeats = same ? ++tls_log.repeats : 0;
        bool due = !same || now.tv_sec - tls_log.logged_at >= TLS_LOG_REPEAT_S;
        if (due) {
                snprintf(tls_log.reason, sizeof tls_log.reason, "%s", reason);
                tls_log.logged_at = now.tv_sec;
                tls_log.repeats = 0;
        }
        pthread_mutex_unlock(&tls_log.mu);

        if (!due)
                log_debug("libzookeeper: %.*s", (int)n, message);
        else if (!same)
                log_error("TLS connection to ZooKeeper%s failed: %.*s%s%s%s. Retrying; the same failure is "
                          "logged again every %d min",
                          server, (int)wn, what, lib_reason ? ": " : "", lib_reason ? lib_reason : "", hint,
                          TLS_LOG_REPEAT_S / 60);
        else
                log_error("TLS connection to ZooKeeper%s still failing: %s (%u times in %d min)", server, reason,
                          repeats, TLS_LOG_REPEAT_S / 60);
        return true;
}

/* ---------------------------------------------------------------- library callbacks (completion thread) */

static void watch_fired(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
        struct zk_call *w = ctx;
        struct zk *zk = w->zk;

        /* Session changes reach us through the global watcher; the node watch
         * stays registered across a reconnect. */
        if (type == ZOO_SESSION_EVENT) return;

        pthread_mutex_lock(&zk->mu);
        zk->n_watch_events++;
        if (w->fired) { /* a watch fires once; never queue it twice */
                pthread_mutex_unlock(&zk->mu);
                return;
        }
        w->fired = true;
        w->ev_type = type;
        w->ev_path = xstrdup(path ? path : "");
        if (w->sync_waiter) {
                if (w->abandoned) {
                        all_unlink(zk, w);
                        call_free(w);
                } else
                        pthread_cond_broadcast(&zk->cond);
                pthread_mutex_unlock(&zk->mu);
                return;
        }
        pthread_mutex_unlock(&zk->mu);
        enqueue(zk, w);
}

static void global_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
        struct zk_handle_ctx *h = ctx;
        struct zk *zk = h->zk;
        int q = -1;

        if (type != ZOO_SESSION_EVENT) return;

        pthread_mutex_lock(&zk->mu);
        if (h->hid != zk->hid) { /* a closing handle */
                pthread_mutex_unlock(&zk->mu);
                return;
        }
        if (state == ZOO_CONNECTED_STATE || state == ZOO_READONLY_STATE) {
                if (zk->tls) tls_log_connected();
                zk->connected = true;
                zk->ever_connected = true;
                q = ZK_STATE_CONNECTED;
        } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
                if (!zk->expired) {
                        zk->expired = true;
                        zk->session_gen++;
                        q = ZK_STATE_EXPIRED;
                }
                zk->connected = false;
        } else if (zk->connected) { /* CONNECTING / ASSOCIATING after being connected */
                zk->connected = false;
                q = ZK_STATE_SUSPENDED;
        }
        zk->state_seq++;
        pthread_cond_broadcast(&zk->cond);
        pthread_mutex_unlock(&zk->mu);

        if (q >= 0) {
                struct zk_call *c = xnew(struct zk_call, 1);
                c->zk = zk;
                c->kind = CALL_STATE;
                c->state = (enum zk_state)q;
                c->hid = h->hid;
                enqueue(zk, c);
        }
}

static void op_done(struct zk_call *c, int zrc) {
        inflight_done(c->zk);
        c->r = zk_errno(zrc);
        if (c->watch) {
                bool registered = c->op == OP_EXISTS ? (zrc == ZOK || zrc == ZNONODE) : zrc == ZOK;
                if (!registered) c->watch->abandoned = true; /* freed in dispatch */
        }
        enqueue(c->zk, c);
}

static void data_done(int rc, const char *value, int value_len, const struct Stat *stat, const void *data) {
        struct zk_call *c = (struct zk_call *)data;
        if (rc == ZOK) {
                if (value_len > ZK_DATA_MAX) {
                        inflight_done(c->zk);
                        c->r = -EFBIG; /* the watch is still set: report it as an error */
                        c->has_stat = true;
                        c->stat = *stat;
                        enqueue(c->zk, c);
                        return;
                }
                size_t n = value && value_len > 0 ? (size_t)value_len : 0;
                free(c->data);
                c->data = xmalloc(n + 1);
                if (n) memcpy(c->data, value, n);
                c->data[n] = '\0';
                c->len = n;
                c->has_stat = true;
                c->stat = *stat;
        }
        op_done(c, rc);
}

static void stat_done(int rc, const struct Stat *stat, const void *data) {
        struct zk_call *c = (struct zk_call *)data;
        if (rc == ZOK && stat) {
                c->has_stat = true;
                c->stat = *stat;
        }
        op_done(c, rc);
}

static void children_done(int rc, const struct String_vector *strings, const struct Stat *stat, const void *data) {
        struct zk_call *c = (struct zk_call *)data;
        if (rc == ZOK) {
                c->children = strv_from(strings, &c->n_children);
                if (stat) {
                        c->has_stat = true;
                        c->stat = *stat;
                }
        }
        op_done(c, rc);
}

static void create_done(int rc, const char *value, const struct Stat *stat, const void *data) {
        struct zk_call *c = (struct zk_call *)data;
        if (rc == ZOK) {
                free(c->created);
                c->created = xstrdup(value);
                if (stat) {
                        c->has_stat = true;
                        c->stat = *stat;
                }
        }
        op_done(c, rc);
}

static void void_done(int rc, const void *data) { op_done((struct zk_call *)data, rc); }

static void multi_done(int rc, const void *data) {
        struct zk_call *c = (struct zk_call *)data;
        for (size_t i = c->n_mops; rc == ZOK && i-- > 0;)
                if (c->mcreated[i]) { /* the last create's path (the library filled our buffer) */
                        free(c->created);
                        c->created = xstrdup(c->mcreated[i]);
                        break;
                }
        for (size_t i = c->n_mops; rc == ZOK && i-- > 0;)
                if (c->mops[i].type == ZOO_SETDATA_OP) { /* the last set's stat (into c->mstats[i]) */
                        c->has_stat = true;
                        c->stat = c->mstats[i];
                        break;
                }
        /* A failed multi answers every operation: OK before the failing one, its
         * error, then "runtime inconsistency" for the ones not tried. Results of
         * a multi that never got an answer stay zeroed (ZOK). */
        c->mfailed = 0;
        for (size_t i = 0; rc != ZOK && i < c->n_mops; i++)
                if (c->mres[i].err != ZOK && c->mres[i].err != ZRUNTIMEINCONSISTENCY) {
                        c->mfailed = i + 1;
                        break;
                }
        op_done(c, rc);
}

static void zk_log_cb(const char *message) {
        size_t n = strlen(message);
        while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r')) n--;
        if (tls_log_failure(message, n)) return;
        /* Library chatter (connection retries…) is debug for us: the owner
         * learns what matters through state listeners. */
        log_debug("libzookeeper: %.*s", (int)n, message);
}

static void deadline_after(struct timespec *ts, int timeout_ms) {
        clock_gettime(CLOCK_MONOTONIC, ts);
        ts->tv_sec += timeout_ms / 1000;
        ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

/* ---------------------------------------------------------------- handle lifecycle */

/* SIGPIPE blocked in the calling thread (see DESIGN); *old gets the mask to restore. */
static void sigpipe_block(sigset_t *old) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, old);
}

/* Restore OLD, first dropping a SIGPIPE that became pending meanwhile
 * (one already pending before WAS_PENDING is left for the caller). */
static void sigpipe_restore(const sigset_t *old, bool was_pending) {
        if (!was_pending) {
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, SIGPIPE);
                const struct timespec zero = { 0 };
                while (sigtimedwait(&set, NULL, &zero) == SIGPIPE) {}
        }
        pthread_sigmask(SIG_SETMASK, old, NULL);
}

static bool sigpipe_pending(void) {
        sigset_t p;
        return sigpending(&p) == 0 && sigismember(&p, SIGPIPE) == 1;
}

static int handle_open(struct zk *zk) {
        pthread_mutex_lock(&zk->mu);
        uint64_t hid = ++zk->hid;
        zk->connected = false;
        zk->expired = false;
        zk->state_seq++;
        pthread_mutex_unlock(&zk->mu);

        struct zk_handle_ctx *h = xnew(struct zk_handle_ctx, 1);
        h->zk = zk;
        h->hid = hid;
        /* The library's threads start here and inherit SIGPIPE blocked. */
        sigset_t old;
        sigpipe_block(&old);
        zhandle_t *zh = zk->tls ? zookeeper_init2_ssl(zk->hosts, zk->tls, global_watcher, zk->timeout_ms, NULL, h, 0,
                                                      zk_log_cb)
                                : zookeeper_init2(zk->hosts, global_watcher, zk->timeout_ms, NULL, h, 0, zk_log_cb);
        int r = zh ? 0 : negative_errno();
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!zh) {
                free(h);
                return r;
        }
        /* By default the client re-resolves the host names on every socket
         * readiness check: one getaddrinfo per request under load. Once a
         * minute is plenty (it still resolves on connection loss). */
        zoo_set_servers_resolution_delay(zh, 60 * 1000);
        zk->zh = zh;
        zk->hctx = h;
        return 0;
}

/* Close the current handle; calls the library still holds are finished off:
 * watches freed (they can never fire), unfinished operations failed. */
static void handle_close(struct zk *zk) {
        if (!zk->zh) return;
        /* libzookeeper-mt leaks requests still in flight at close (it fakes
         * their answers onto a completion queue nobody processes any more),
         * and a fire-and-forget delete should reach the server: let them
         * finish first while we are connected, for a bounded time. */
        struct timespec deadline;
        deadline_after(&deadline, 2000);
        pthread_mutex_lock(&zk->mu);
        while (zk->inflight > 0 && zk->connected)
                if (cond_wait_locked(zk, &deadline) == ETIMEDOUT) break;
        zk->hid++; /* from now on the old handle's session events are ignored */
        zk->inflight = 0;
        pthread_mutex_unlock(&zk->mu);

        /* Joins the library threads; may run completions on this thread, and
         * writes the close request from it. */
        sigset_t old;
        sigpipe_block(&old);
        bool was_pending = sigpipe_pending();
        zookeeper_close(zk->zh);
        sigpipe_restore(&old, was_pending);
        zk->zh = NULL;
        free(zk->hctx);
        zk->hctx = NULL;

        pthread_mutex_lock(&zk->mu);
        struct zk_call *c = zk->all, *next;
        for (; c; c = next) {
                next = c->all_next;
                if (c->queued) continue;
                if (c->kind == CALL_WATCH) {
                        if (c->arming_op)
                                c->abandoned = true; /* its read's dispatch frees it */
                        else {
                                all_unlink(zk, c);
                                call_free(c);
                        }
                } else if (c->kind == CALL_OP) {
                        c->r = -EKEYEXPIRED;
                        queue_append_locked(zk, c);
                }
        }
        pthread_mutex_unlock(&zk->mu);
        poke(zk);
}

static void set_library_log_level(void) { zoo_set_debug_level(ZOO_LOG_LEVEL_WARN); }

static bool tls_path_ok(const char *p) { return p && *p && !strchr(p, ','); }

int zk_new(const char *hosts, int session_timeout_ms, const struct zk_tls *tls, struct zk **ret) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        int r;

        if (!hosts || !*hosts || !ret) return -EINVAL;
        if (tls && !(tls_path_ok(tls->ca) && tls_path_ok(tls->cert) && tls_path_ok(tls->key))) return -EINVAL;
        /* The level is process-wide in the library; set it once. */
        pthread_once(&once, set_library_log_level);

        zk = xnew(struct zk, 1);
        zk->efd = -1;
        pthread_mutex_init(&zk->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&zk->cond, &ca);
        pthread_condattr_destroy(&ca);
        zk->hosts = xstrdup(hosts);
        /* The library's form; a fourth field would be the key's password. */
        if (tls) zk->tls = xasprintf("%s,%s,%s", tls->ca, tls->cert, tls->key);
        zk->timeout_ms = session_timeout_ms > 0 ? session_timeout_ms : 10000;
        zk->next_id = 1;
        zk->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (zk->efd < 0) return negative_errno();

        r = handle_open(zk);
        if (r < 0) return r;
        *ret = TAKE_PTR(zk);
        return 0;
}

void zk_free(struct zk *zk) {
        if (!zk) return;
        /* Closing the session deletes our ephemerals: nothing left to release. */
        zk_release_queue_free(zk->releases);
        zk->releases = NULL;
        handle_close(zk);
        /* Nothing is called any more: drop whatever is queued or pending. */
        struct zk_call *c = zk->q_head, *next;
        for (; c; c = next) {
                next = c->q_next;
                if (c->linked) all_unlink(zk, c);
                call_free(c);
        }
        for (c = zk->all; c; c = next) {
                next = c->all_next;
                call_free(c);
        }
        free(zk->listeners);
        free(zk->hosts);
        free(zk->tls);
        if (zk->efd >= 0) close(zk->efd);
        pthread_cond_destroy(&zk->cond);
        pthread_mutex_destroy(&zk->mu);
        free(zk);
}

int zk_connect_wait(struct zk *zk, int timeout_ms) {
        struct timespec deadline;
        deadline_after(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
        for (;;) {
                pthread_mutex_lock(&zk->mu);
                bool connected = zk->connected, expired = zk->expired;
                int r = 0;
                if (!connected && !expired)
                        r = cond_wait_locked(zk, &deadline);
                connected = zk->connected;
                expired = zk->expired;
                pthread_mutex_unlock(&zk->mu);
                if (connected) return 0;
                if (expired) {
                        /* The queued EXPIRED still reaches the listeners; its
                         * handle id no longer matches, so it will not reopen twice. */
                        handle_close(zk);
                        int q = handle_open(zk);
                        if (q < 0) return q;
                        continue;
                }
                if (r == ETIMEDOUT) return -ETIMEDOUT;
        }
}

bool zk_is_connected(struct zk *zk) {
        pthread_mutex_lock(&zk->mu);
        bool c = zk->connected;
        pthread_mutex_unlock(&zk->mu);
        return c;
}

uint64_t zk_session_generation(struct zk *zk) {
        pthread_mutex_lock(&zk->mu);
        uint64_t g = zk->session_gen;
        pthread_mutex_unlock(&zk->mu);
        return g;
}

int zk_session_timeout(struct zk *zk) { return zk->zh ? zoo_recv_timeout(zk->zh) : 0; }

int zk_event_fd(struct zk *zk) { return zk->efd; }

int64_t zk_session_id(struct zk *zk) {
        const clientid_t *id = zk->zh && zk_is_connected(zk) ? zoo_client_id(zk->zh) : NULL;
        return id ? id->client_id : 0;
}

struct zk_release_queue *zk_releases(struct zk *zk) {
        if (!zk->releases) (void)zk_release_queue_new(zk, &zk->releases);
        return zk->releases;
}

/* ---------------------------------------------------------------- listeners */

void zk_add_state_listener(struct zk *zk, zk_state_cb cb, void *userdata) {
        for (size_t i = 0; i < zk->n_listeners; i++)
                if (zk->listeners[i].cb == cb && zk->listeners[i].userdata == userdata) return;
        zk->listeners = xrealloc(zk->listeners, (zk->n_listeners + 1) * sizeof *zk->listeners);
        zk->listeners[zk->n_listeners++] = (struct zk_listener){ cb, userdata };
}

void zk_set_state_cb(struct zk *zk, zk_state_cb cb, void *userdata) { zk_add_state_listener(zk, cb, userdata); }

static void listeners_compact(struct zk *zk) {
        size_t j = 0;
        for (size_t i = 0; i < zk->n_listeners; i++)
                if (zk->listeners[i].cb) zk->listeners[j++] = zk->listeners[i];
        zk->n_listeners = j;
}

void zk_remove_state_listener(struct zk *zk, zk_state_cb cb, void *userdata) {
        for (size_t i = 0; i < zk->n_listeners; i++)
                if (zk->listeners[i].cb == cb && zk->listeners[i].userdata == userdata)
                        zk->listeners[i].cb = NULL; /* compacted when no notify is running */
        if (!zk->notifying) listeners_compact(zk);
}

static void notify(struct zk *zk, enum zk_state s) {
        log_debug("zk: session %s", zk_state_to_string(s));
        zk->notifying++;
        /* Index loop: listeners may be added (realloc) or removed meanwhile. */
        for (size_t i = 0; i < zk->n_listeners; i++) {
                struct zk_listener l = zk->listeners[i];
                if (l.cb) l.cb(zk, s, l.userdata);
        }
        if (--zk->notifying == 0) listeners_compact(zk);
}

/* ---------------------------------------------------------------- async ops */

static struct zk_call *op_new(struct zk *zk, enum op_type op, const char *path, zk_result_cb cb, void *userdata) {
        struct zk_call *c = xnew(struct zk_call, 1);
        c->zk = zk;
        c->kind = CALL_OP;
        c->op = op;
        c->path = xstrdup(path);
        c->cb = cb;
        c->userdata = userdata;
        return c;
}

static struct zk_call *watch_new(struct zk *zk, zk_watch_cb wcb, void *userdata) {
        struct zk_call *w = xnew(struct zk_call, 1);
        w->zk = zk;
        w->kind = CALL_WATCH;
        w->wcb = wcb;
        w->userdata = userdata;
        return w;
}

/* Issue (or re-issue, for makepath steps) C on the current handle. */
static void op_issue(struct zk *zk, struct zk_call *c) {
        int zrc;

        c->r = 0;
        c->has_stat = false;
        if (!zk->zh) {
                zrc = ZINVALIDSTATE;
                goto fail;
        }
        /* Counted before issuing: the answer may come back before zoo_a*() returns. */
        pthread_mutex_lock(&zk->mu);
        zk->inflight++;
        if (c->op < _OP_MAX) zk->n_ops[c->op]++;
        zk->n_multi_ops += c->n_mops;
        pthread_mutex_unlock(&zk->mu);
        switch (c->op) {
        case OP_GET:
                zrc = zoo_awget(zk->zh, c->path, c->watch ? watch_fired : NULL, c->watch, data_done, c);
                break;
        case OP_EXISTS:
                zrc = zoo_awexists(zk->zh, c->path, c->watch ? watch_fired : NULL, c->watch, stat_done, c);
                break;
        case OP_CHILDREN:
                zrc = zoo_awget_children2(zk->zh, c->path, c->watch ? watch_fired : NULL, c->watch, children_done,
                                          c);
                break;
        case OP_SET:
                zrc = zoo_aset(zk->zh, c->path, c->data ? c->data : "", (int)c->len, c->version, stat_done, c);
                break;
        case OP_CREATE:
                if (c->mp_cur > 0) {
                        /* an ancestor: persistent, empty data, as kazoo's ensure_path */
                        _cleanup_free_ char *p = xstrndup(c->path, c->mp_cur);
                        zrc = zoo_acreate2(zk->zh, p, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, create_done, c);
                } else
                        zrc = zoo_acreate2(zk->zh, c->path, c->data ? c->data : "", (int)c->len,
                                           &ZOO_OPEN_ACL_UNSAFE, create_mode(c->flags), create_done, c);
                break;
        case OP_DELETE:
                zrc = zoo_adelete(zk->zh, c->path, c->version, void_done, c);
                break;
        case OP_MULTI:
                zrc = zoo_amulti(zk->zh, (int)c->n_mops, c->mops, c->mres, multi_done, c);
                break;
        default:
                zrc = ZBADARGUMENTS;
        }
        if (zrc == ZOK) return;
        inflight_done(zk);
fail:
        /* The library will not call us: report through the queue all the same. */
        c->r = zk_errno(zrc);
        if (c->watch) c->watch->abandoned = true;
        enqueue(zk, c);
}

static int op_start(struct zk *zk, struct zk_call *c, zk_watch_cb wcb) {
        pthread_mutex_lock(&zk->mu);
        if (wcb) {
                c->watch = watch_new(zk, wcb, c->userdata);
                c->watch->id = zk->next_id++;
                c->watch->arming_op = c;
                all_link(zk, c->watch);
        }
        all_link(zk, c);
        pthread_mutex_unlock(&zk->mu);
        op_issue(zk, c);
        return 0;
}

int zk_aget(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        return op_start(zk, op_new(zk, OP_GET, path, cb, userdata), watch);
}

int zk_aexists(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        return op_start(zk, op_new(zk, OP_EXISTS, path, cb, userdata), watch);
}

int zk_aget_children(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        return op_start(zk, op_new(zk, OP_CHILDREN, path, cb, userdata), watch);
}

static void op_set_data(struct zk_call *c, const void *data, size_t len) {
        c->data = xmalloc(len + 1);
        if (len) memcpy(c->data, data, len);
        c->data[len] = '\0';
        c->len = len;
}

int zk_aset(struct zk *zk, const char *path, const void *data, size_t len, int version, zk_result_cb cb,
            void *userdata) {
        if (len > ZK_DATA_MAX) return -EFBIG;
        struct zk_call *c = op_new(zk, OP_SET, path, cb, userdata);
        op_set_data(c, data, len);
        c->version = version;
        return op_start(zk, c, NULL);
}

int zk_acreate(struct zk *zk, const char *path, const void *data, size_t len, unsigned flags, zk_result_cb cb,
               void *userdata) {
        if (len > ZK_DATA_MAX) return -EFBIG;
        if (!path || path[0] != '/') return -EINVAL;
        struct zk_call *c = op_new(zk, OP_CREATE, path, cb, userdata);
        op_set_data(c, data, len);
        c->flags = flags;
        return op_start(zk, c, NULL);
}

int zk_adelete(struct zk *zk, const char *path, int version, zk_result_cb cb, void *userdata) {
        struct zk_call *c = op_new(zk, OP_DELETE, path, cb, userdata);
        c->version = version;
        return op_start(zk, c, NULL);
}

int zk_amulti(struct zk *zk, const struct zk_multi_op *ops, size_t n, zk_result_cb cb, void *userdata) {
        if (n == 0 || n > 64) return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!ops[i].path || ops[i].path[0] != '/' || ops[i].len > ZK_DATA_MAX ||
                    (ops[i].kind != ZK_MULTI_DELETE && ops[i].kind != ZK_MULTI_SET &&
                     ops[i].kind != ZK_MULTI_CHECK && ops[i].kind != ZK_MULTI_CREATE) ||
                    (ops[i].flags & ZK_MAKEPATH))
                        return -EINVAL;
        struct zk_call *c = op_new(zk, OP_MULTI, ops[0].path, cb, userdata);
        c->n_mops = n;
        c->mops = xnew(zoo_op_t, n);
        c->mres = xnew(zoo_op_result_t, n);
        c->mstats = xnew(struct Stat, n);
        c->mpaths = xnew(char *, n);
        c->mdata = xnew(char *, n);
        c->mcreated = xnew(char *, n);
        for (size_t i = 0; i < n; i++) {
                c->mpaths[i] = xstrdup(ops[i].path);
                switch (ops[i].kind) {
                case ZK_MULTI_DELETE:
                        zoo_delete_op_init(&c->mops[i], c->mpaths[i], ops[i].version);
                        break;
                case ZK_MULTI_SET:
                        c->mdata[i] = xmalloc(ops[i].len + 1);
                        if (ops[i].len) memcpy(c->mdata[i], ops[i].data, ops[i].len);
                        zoo_set_op_init(&c->mops[i], c->mpaths[i], c->mdata[i], (int)ops[i].len, ops[i].version,
                                        &c->mstats[i]);
                        break;
                case ZK_MULTI_CHECK:
                        zoo_check_op_init(&c->mops[i], c->mpaths[i], ops[i].version);
                        break;
                case ZK_MULTI_CREATE: {
                        size_t sz = strlen(ops[i].path) + 32; /* room for a sequence suffix */
                        c->mdata[i] = xmalloc(ops[i].len + 1);
                        if (ops[i].len) memcpy(c->mdata[i], ops[i].data, ops[i].len);
                        c->mcreated[i] = xnew(char, sz);
                        zoo_create_op_init(&c->mops[i], c->mpaths[i], c->mdata[i], (int)ops[i].len,
                                           &ZOO_OPEN_ACL_UNSAFE, create_mode(ops[i].flags), c->mcreated[i], (int)sz);
                        break;
                }
                }
        }
        return op_start(zk, c, NULL);
}

void zk_cancel(struct zk *zk, void *userdata) {
        if (!userdata) return; /* fire-and-forget calls have no callback to mute */
        pthread_mutex_lock(&zk->mu);
        for (struct zk_call *c = zk->by_ud[ud_bucket(userdata)]; c; c = c->ud_next)
                if (c->userdata == userdata && !c->sync_waiter) c->cancelled = true;
        pthread_mutex_unlock(&zk->mu);
}

/* Length of the parent of the first LEN bytes of PATH; 0 when that is the root. */
static size_t parent_len(const char *path, size_t len) {
        while (len > 0 && path[len - 1] != '/') len--;
        return len > 0 ? len - 1 : 0;
}

/* Makepath: walk up on ENOENT, down on success/EEXIST, until the target is
 * created. Returns true when C was re-issued (no user callback yet). */
static bool makepath_step(struct zk *zk, struct zk_call *c) {
        if (c->op != OP_CREATE || !(c->flags & ZK_MAKEPATH) || c->cancelled) return false;
        if (c->mp_cur == 0 && c->r != -ENOENT) return false; /* the target: done */
        if (++c->mp_steps > 64) return false;

        size_t cur = c->mp_cur ? c->mp_cur : strlen(c->path);
        if (c->r == -ENOENT) {
                size_t up = parent_len(c->path, cur);
                if (up == 0) return false; /* the chroot itself is missing */
                c->mp_cur = up;
        } else if (c->r == 0 || c->r == -EEXIST) {
                size_t full = strlen(c->path), next = cur + 1;
                while (next < full && c->path[next] != '/') next++;
                c->mp_cur = next >= full ? 0 : next;
        } else
                return false;
        free(c->created);
        c->created = NULL;
        c->queued = false;
        op_issue(zk, c);
        return true;
}

static void dispatch_op(struct zk *zk, struct zk_call *c) {
        if (makepath_step(zk, c)) return;

        pthread_mutex_lock(&zk->mu);
        all_unlink(zk, c);
        struct zk_call *w = c->watch;
        bool registered = w && !w->abandoned;
        uint64_t wid = w ? w->id : 0;
        if (w && w->abandoned && !w->queued) {
                all_unlink(zk, w);
                call_free(w);
        } else if (w)
                w->arming_op = NULL;
        c->watch = NULL;
        bool cancelled = c->cancelled;
        pthread_mutex_unlock(&zk->mu);

        if (c->cb && !cancelled) {
                struct zk_stat st;
                if (c->has_stat) stat_from(&st, &c->stat);
                struct zk_result res = {
                        .r = c->r,
                        .path = c->path,
                        .data = c->r == 0 ? c->data : NULL,
                        .len = c->r == 0 ? c->len : 0,
                        .stat = c->has_stat && c->r == 0 ? &st : NULL,
                        .children = c->children,
                        .n_children = c->n_children,
                        .created_path = c->created,
                        .multi_failed = c->r < 0 ? c->mfailed : 0,
                        .watch_registered = registered,
                        .watch_id = registered ? wid : 0,
                };
                c->cb(zk, &res, c->userdata);
        }
        call_free(c);
}

static void dispatch_watch(struct zk *zk, struct zk_call *w) {
        pthread_mutex_lock(&zk->mu);
        all_unlink(zk, w);
        bool cancelled = w->cancelled;
        pthread_mutex_unlock(&zk->mu);

        int t = w->ev_type;
        enum zk_event e = t == ZOO_CREATED_EVENT   ? ZK_EVENT_CREATED
                          : t == ZOO_DELETED_EVENT ? ZK_EVENT_DELETED
                          : t == ZOO_CHANGED_EVENT ? ZK_EVENT_CHANGED
                          : t == ZOO_CHILD_EVENT   ? ZK_EVENT_CHILD
                                                   : _ZK_EVENT_INVALID;
        if (w->wcb && !cancelled && e >= 0) {
                struct zk_watch_event ev = { .type = e, .path = w->ev_path, .id = w->id };
                w->wcb(zk, &ev, w->userdata);
        }
        call_free(w);
}

static void dispatch_state(struct zk *zk, struct zk_call *c) {
        pthread_mutex_lock(&zk->mu);
        bool current = c->hid == zk->hid;
        pthread_mutex_unlock(&zk->mu);

        if (c->state == ZK_STATE_EXPIRED) {
                if (current) {
                        handle_close(zk);
                        int r = handle_open(zk);
                        if (r < 0) log_debug_errno(r, "zk: cannot open a new session: %m");
                }
                notify(zk, ZK_STATE_EXPIRED); /* even when zk_connect_wait already reopened */
        } else if (current)
                notify(zk, c->state);
        free(c);
}

void zk_dispatch(struct zk *zk) {
        uint64_t v;
        ssize_t n = read(zk->efd, &v, sizeof v);
        (void)n;

        pthread_mutex_lock(&zk->mu);
        struct zk_call *batch = zk->q_head;
        zk->q_head = zk->q_tail = NULL;
        pthread_mutex_unlock(&zk->mu);

        while (batch) {
                struct zk_call *c = batch;
                batch = c->q_next;
                c->q_next = NULL;
                switch (c->kind) {
                case CALL_OP: dispatch_op(zk, c); break;
                case CALL_WATCH: dispatch_watch(zk, c); break;
                case CALL_STATE: dispatch_state(zk, c); break;
                }
        }
}

/* ---------------------------------------------------------------- sync helpers */

int zk_get(struct zk *zk, const char *path, char **ret_data, size_t *ret_len, struct zk_stat *ret_stat) {
        int cap = 4096;
        if (!zk->zh) return -EKEYEXPIRED;
        /* The node may grow between reads; a few rounds settle it. */
        for (int round = 0; round < 4; round++) {
                _cleanup_free_ char *buf = xmalloc((size_t)cap + 1);
                int n = cap;
                struct Stat st;
                count_sync(zk, OP_GET);
                int zrc = zoo_get(zk->zh, path, 0, buf, &n, &st);
                if (zrc != ZOK) return zk_errno(zrc);
                if (st.dataLength > ZK_DATA_MAX) return -EFBIG;
                if (st.dataLength > cap) {
                        cap = st.dataLength;
                        continue;
                }
                if (n < 0) n = 0;
                buf[n] = '\0';
                if (ret_stat) stat_from(ret_stat, &st);
                if (ret_len) *ret_len = (size_t)n;
                if (ret_data)
                        *ret_data = TAKE_PTR(buf);
                return 0;
        }
        return -EAGAIN;
}

int zk_set(struct zk *zk, const char *path, const void *data, size_t len, int version, struct zk_stat *ret_stat) {
        struct Stat st;
        if (len > ZK_DATA_MAX) return -EFBIG;
        if (!zk->zh) return -EKEYEXPIRED;
        count_sync(zk, OP_SET);
        int zrc = zoo_set2(zk->zh, path, data ? data : "", (int)len, version, &st);
        if (zrc != ZOK) return zk_errno(zrc);
        if (ret_stat) stat_from(ret_stat, &st);
        return 0;
}

static int create_once(struct zk *zk, const char *path, const void *data, size_t len, int mode, char **ret_path) {
        size_t cap = strlen(path) + 32; /* room for the sequence suffix */
        _cleanup_free_ char *buf = xmalloc(cap);
        if (!zk->zh) return -EKEYEXPIRED;
        count_sync(zk, OP_CREATE);
        int zrc = zoo_create(zk->zh, path, data ? data : "", (int)len, &ZOO_OPEN_ACL_UNSAFE, mode, buf, (int)cap);
        if (zrc != ZOK) return zk_errno(zrc);
        if (ret_path) *ret_path = TAKE_PTR(buf);
        return 0;
}

static char *parent_of(const char *path) {
        size_t n = parent_len(path, strlen(path));
        return n == 0 ? NULL : xstrndup(path, n);
}

int zk_ensure_path(struct zk *zk, const char *path) {
        if (!path || path[0] != '/') return -EINVAL;
        if (path[1] == '\0') return 0;
        int r = create_once(zk, path, "", 0, ZOO_PERSISTENT, NULL);
        if (r == -ENOENT) {
                _cleanup_free_ char *parent = parent_of(path);
                if (!parent) return r;
                r = zk_ensure_path(zk, parent);
                if (r < 0) return r;
                r = create_once(zk, path, "", 0, ZOO_PERSISTENT, NULL);
        }
        return r == -EEXIST ? 0 : r;
}

int zk_create(struct zk *zk, const char *path, const void *data, size_t len, unsigned flags, char **ret_path) {
        if (!path || path[0] != '/') return -EINVAL;
        if (len > ZK_DATA_MAX) return -EFBIG;
        int r = create_once(zk, path, data, len, create_mode(flags), ret_path);
        if (r == -ENOENT && (flags & ZK_MAKEPATH)) {
                _cleanup_free_ char *parent = parent_of(path);
                if (!parent) return r;
                r = zk_ensure_path(zk, parent);
                if (r < 0) return r;
                r = create_once(zk, path, data, len, create_mode(flags), ret_path);
        }
        return r;
}

int zk_delete(struct zk *zk, const char *path, int version) {
        if (!zk->zh) return -EKEYEXPIRED;
        count_sync(zk, OP_DELETE);
        return zk_errno(zoo_delete(zk->zh, path, version));
}

int zk_exists(struct zk *zk, const char *path, struct zk_stat *ret_stat) {
        struct Stat st;
        if (!zk->zh) return -EKEYEXPIRED;
        count_sync(zk, OP_EXISTS);
        int zrc = zoo_exists(zk->zh, path, 0, &st);
        if (zrc == ZNONODE) return 0;
        if (zrc != ZOK) return zk_errno(zrc);
        if (ret_stat) stat_from(ret_stat, &st);
        return 1;
}

int zk_get_children(struct zk *zk, const char *path, char ***ret_children, size_t *ret_n) {
        struct String_vector sv = { 0 };
        if (!zk->zh) return -EKEYEXPIRED;
        count_sync(zk, OP_CHILDREN);
        int zrc = zoo_get_children(zk->zh, path, 0, &sv);
        if (zrc != ZOK) return zk_errno(zrc);
        size_t n;
        char **v = strv_from(&sv, &n);
        deallocate_String_vector(&sv);
        if (ret_n) *ret_n = n;
        if (ret_children)
                *ret_children = v;
        else
                zk_strv_free(v);
        return 0;
}

int zk_delete_recursive(struct zk *zk, const char *path) {
        /* A child may appear meanwhile (a lock contender): retry a few times. */
        for (int round = 0; round < 5; round++) {
                char **children = NULL;
                int r = zk_get_children(zk, path, &children, NULL);
                if (r == -ENOENT) return 0;
                if (r < 0) return r;
                for (char **p = children; *p && r >= 0; p++) {
                        _cleanup_free_ char *child = xasprintf("%s/%s", strcmp(path, "/") == 0 ? "" : path, *p);
                        r = zk_delete_recursive(zk, child);
                }
                zk_strv_free(children);
                if (r < 0) return r;
                r = zk_delete(zk, path, -1);
                if (r == 0 || r == -ENOENT) return 0;
                if (r != -ENOTEMPTY) return r;
        }
        return -ENOTEMPTY;
}

int zk_wait_change(struct zk *zk, const char *path, int timeout_ms) {
        struct timespec deadline;
        struct Stat st;
        if (!zk->zh) return -EKEYEXPIRED;
        if (timeout_ms >= 0) deadline_after(&deadline, timeout_ms);

        struct zk_call *w = watch_new(zk, NULL, NULL);
        w->sync_waiter = true;
        pthread_mutex_lock(&zk->mu);
        all_link(zk, w);
        uint64_t seq0 = zk->state_seq;
        pthread_mutex_unlock(&zk->mu);

        count_sync(zk, OP_EXISTS);
        int zrc = zoo_wexists(zk->zh, path, watch_fired, w, &st);
        pthread_mutex_lock(&zk->mu);
        if (zrc != ZOK) {
                if (zrc == ZNONODE) /* an exists watch stays set; the library or close frees it */
                        w->abandoned = true;
                else {
                        all_unlink(zk, w);
                        call_free(w);
                }
                pthread_mutex_unlock(&zk->mu);
                return zrc == ZNONODE ? 1 : zk_errno(zrc);
        }
        int r = 0;
        while (!w->fired && zk->state_seq == seq0) {
                int e = cond_wait_locked(zk, timeout_ms >= 0 ? &deadline : NULL);
                if (e == ETIMEDOUT) {
                        r = -ETIMEDOUT;
                        break;
                }
        }
        if (w->fired) {
                all_unlink(zk, w);
                call_free(w);
                r = 0;
        } else
                w->abandoned = true;
        pthread_mutex_unlock(&zk->mu);
        return r;
}

/* Synchronous calls count as the asynchronous ones do. */
static void count_sync(struct zk *zk, enum op_type op) {
        pthread_mutex_lock(&zk->mu);
        zk->n_ops[op]++;
        pthread_mutex_unlock(&zk->mu);
}

void zk_get_counts(struct zk *zk, struct zk_counts *ret) {
        pthread_mutex_lock(&zk->mu);
        *ret = (struct zk_counts){ .get = zk->n_ops[OP_GET], .exists = zk->n_ops[OP_EXISTS],
                                   .children = zk->n_ops[OP_CHILDREN], .set = zk->n_ops[OP_SET],
                                   .create = zk->n_ops[OP_CREATE], .del = zk->n_ops[OP_DELETE],
                                   .multi = zk->n_ops[OP_MULTI], .multi_ops = zk->n_multi_ops,
                                   .watch_events = zk->n_watch_events };
        pthread_mutex_unlock(&zk->mu);
}

unsigned zk_pending(struct zk *zk) {
        pthread_mutex_lock(&zk->mu);
        unsigned n = zk->inflight;
        pthread_mutex_unlock(&zk->mu);
        return n;
}
