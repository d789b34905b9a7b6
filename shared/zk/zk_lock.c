/* zk_lock.c — see zk_lock.h.
 *
 * DESIGN. Mirrors kazoo.recipe.lock.Lock._inner_acquire: ensure L, create
 * our "<uuid>__lock__" ephemeral-sequential contender (after a connection
 * loss during create, first look for a child with our uuid prefix — the
 * create may have succeeded), list L, and either hold the lock (no smaller
 * contender), give up (non-blocking: delete our contender) or wait on the
 * predecessor with a watch and look again. The synchronous path is for CLI
 * code; zk_lock_try_async() runs the same steps as a small state machine of
 * async operations for the event loop. */
#include "zk_lock.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "model.h"
#include "zk_release.h"

#define NODE_NAME "__lock__"
#define RNODE_NAME "__rlock__"
#define SEQ_LEN 10
#define ASYNC_ATTEMPTS 3

enum async_step { STEP_NONE, STEP_CREATE_DIR, STEP_CREATE, STEP_FIND, STEP_LIST, STEP_GIVE_UP };

struct zk_lock {
        struct zk *zk;
        char *path;
        char *data;
        char *prefix;      /* "<uuid4 hex>__lock__" */
        char *create_path; /* path + "/" + prefix */
        char *node;        /* our contender's name, or NULL */
        bool create_tried; /* a create may have landed: look for our prefix first */
        bool held;
        uint64_t gen;      /* session generation the contender belongs to */

        enum async_step step;
        int attempts;
        zk_lock_cb cb;
        void *userdata;
        /* The listing sent right behind our create (one round trip for both);
         * &pipe is its userdata, so it is told apart from the other listings. */
        char pipe;
        unsigned pipe_sent, pipe_recv;  /* pipelined listings sent / answered */
        bool pipe_awaited;              /* our create is answered: the newest one decides */
        bool fresh;                     /* zk_lock_set_fresh(): directory and contender in one multi */
        /* zk_lock_set_fresh_write(): a write carried by the fresh multi */
        char *fw_path, *fw_data;
        size_t fw_len;
        int fw_version;
        enum zk_lock_write fw_state;
        struct zk_stat fw_stat;
        bool fw_has_stat;
};

/* ---------------------------------------------------------------- pure helpers */

static bool all_digits(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9') return false;
        return true;
}

static bool ends_with_at(const char *name, size_t end, const char *suffix) {
        size_t k = strlen(suffix);
        return end >= k && memcmp(name + end - k, suffix, k) == 0;
}

const char *zk_lock_contender_seq(const char *name, bool *ret_read) {
        if (!name) return NULL;
        size_t len = strlen(name);
        if (len < SEQ_LEN || !all_digits(name + len - SEQ_LEN, SEQ_LEN)) return NULL;
        /* The regex's optional '-' comes right before the ten digits. */
        size_t starts[2] = { len - SEQ_LEN, len - SEQ_LEN - 1 };
        for (int i = 0; i < 2; i++) {
                size_t s = starts[i];
                if (i == 1 && (len < SEQ_LEN + 1 || name[s] != '-')) continue;
                bool read;
                if (ends_with_at(name, s, NODE_NAME))
                        read = false;
                else if (ends_with_at(name, s, RNODE_NAME))
                        read = true;
                else
                        continue;
                if (ret_read) *ret_read = read;
                return name + s;
        }
        return NULL;
}

int zk_lock_seq_compare(const char *a, const char *b) {
        int c = strcmp(a, b);
        return c < 0 ? -1 : c > 0;
}

int zk_lock_find_predecessor(char *const *children, size_t n, const char *own, const char **ret_pred) {
        const char *own_seq = NULL;
        size_t own_idx = 0;
        for (size_t i = 0; i < n; i++)
                if (strcmp(children[i], own) == 0 && (own_seq = zk_lock_contender_seq(own, NULL))) {
                        own_idx = i;
                        break;
                }
        if (!own_seq) return -ENOENT;

        /* Python sorts stably by sequence: X is before us if its sequence is
         * smaller, or equal and it comes first in the listing. */
        const char *pred = NULL, *pred_seq = NULL;
        size_t pred_idx = 0;
        for (size_t i = 0; i < n; i++) {
                if (i == own_idx) continue;
                const char *s = zk_lock_contender_seq(children[i], NULL);
                if (!s) continue;
                int c = zk_lock_seq_compare(s, own_seq);
                if (c > 0 || (c == 0 && i > own_idx)) continue;
                int p = pred_seq ? zk_lock_seq_compare(s, pred_seq) : 1;
                if (p > 0 || (p == 0 && i > pred_idx)) {
                        pred = children[i];
                        pred_seq = s;
                        pred_idx = i;
                }
        }
        *ret_pred = pred;
        return 0;
}

static int contender_cmp(const void *a, const void *b) {
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        int c = zk_lock_seq_compare(zk_lock_contender_seq(x, NULL), zk_lock_contender_seq(y, NULL));
        /* qsort is not stable: fall back on the names for a total order. */
        return c ? c : strcmp(x, y);
}

size_t zk_lock_sort_contenders(char **names, size_t n) {
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
                if (zk_lock_contender_seq(names[i], NULL))
                        names[j++] = names[i];
                else
                        free(names[i]);
        }
        if (j < n) names[j] = NULL;
        qsort(names, j, sizeof *names, contender_cmp);
        return j;
}

/* ---------------------------------------------------------------- lock object */

int zk_lock_new(struct zk *zk, const char *path, const char *identifier, struct zk_lock **ret) {
        if (!zk || !path || path[0] != '/' || path[1] == '\0' || path[strlen(path) - 1] == '/') return -EINVAL;
        char u[33];
        int r = model_uuid4_hex(u);
        if (r < 0) return r;
        struct zk_lock *l = xnew(struct zk_lock, 1);
        l->zk = zk;
        l->path = xstrdup(path);
        l->data = xstrdup(identifier ? identifier : "");
        l->prefix = xasprintf("%s" NODE_NAME, u);
        l->create_path = xasprintf("%s/%s", path, l->prefix);
        *ret = l;
        return 0;
}

static char *child_path(struct zk_lock *l, const char *name) { return xasprintf("%s/%s", l->path, name); }

/* Hand our contender to the session's release queue, which deletes it for
 * sure (retried across reconnects); when a create of ours may have landed
 * unseen (its answer lost, or still in flight), the child with our uuid
 * prefix is looked for. Nothing to do once the session that made it ended. */
static void release_contender(struct zk_lock *l) {
        if (l->gen != zk_session_generation(l->zk)) return;
        if (l->node) {
                _cleanup_free_ char *p = child_path(l, l->node);
                zk_release_path(zk_releases(l->zk), p, l->gen);
        } else if (l->create_tried)
                zk_release_prefix(zk_releases(l->zk), l->path, l->prefix, l->gen);
}

void zk_lock_free(struct zk_lock *l) {
        if (!l) return;
        /* Only an attempt in flight can have a callback of ours outstanding. */
        if (l->step != STEP_NONE) zk_cancel(l->zk, l);
        if (l->pipe_recv != l->pipe_sent) zk_cancel(l->zk, &l->pipe);
        release_contender(l);
        free(l->path);
        free(l->data);
        free(l->prefix);
        free(l->create_path);
        free(l->node);
        free(l->fw_path);
        free(l->fw_data);
        free(l);
}

bool zk_lock_is_held(struct zk_lock *l) { return l->held && l->gen == zk_session_generation(l->zk); }

const char *zk_lock_node(struct zk_lock *l) { return l->node; }

const char *zk_lock_path(struct zk_lock *l) { return l->path; }

static const char *basename_of(const char *p) {
        const char *s = strrchr(p, '/');
        return s ? s + 1 : p;
}

static void forget_node(struct zk_lock *l) {
        free(l->node);
        l->node = NULL;
        l->held = false;
        l->create_tried = false;
}

/* Curator's trick: a child with our uuid prefix is our contender. */
static const char *find_own(struct zk_lock *l, char **children) {
        for (char **p = children; p && *p; p++)
                if (strncmp(*p, l->prefix, strlen(l->prefix)) == 0) return *p;
        return NULL;
}

/* A contender numbered 0000000000 is the first child ever made in its
 * directory (ZooKeeper numbers a sequential child by the parent's count of
 * child creations): no contender came before it, and every later one gets a
 * higher number, so it holds the lock without a listing. */
static bool first_ever(const char *node) {
        const char *seq = zk_lock_contender_seq(node, NULL);
        return seq && strcmp(seq, "0000000000") == 0;
}

/* ---------------------------------------------------------------- synchronous */

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline) {
        if (deadline < 0) return -1;
        int64_t left = deadline - now_ms();
        return left > 0 ? (int)MIN(left, (int64_t)INT32_MAX) : 0;
}

static bool retryable(int r) { return r == -ECONNRESET || r == -EAGAIN || r == -EKEYEXPIRED || r == -ETIMEDOUT; }

/* Wait for the session to come back before retrying (a new session after expiry). */
static int recover(struct zk_lock *l, int r, int64_t deadline) {
        if (r == -EKEYEXPIRED) forget_node(l); /* our ephemeral went with the session */
        int left = remaining(deadline);
        if (deadline >= 0 && left == 0) return -ETIMEDOUT;
        return zk_connect_wait(l->zk, left < 0 ? 3600 * 1000 : left);
}

/* Delete our contender after a failed attempt; best effort, as kazoo. */
static void cleanup_own(struct zk_lock *l) {
        int r = 0;
        if (!l->node && l->create_tried) {
                char **children = NULL;
                r = zk_get_children(l->zk, l->path, &children, NULL);
                if (r >= 0) {
                        const char *own = find_own(l, children);
                        if (own) l->node = xstrdup(own);
                } else if (r == -ENOENT)
                        r = 0;
                zk_strv_free(children);
        }
        if (l->node && r >= 0) {
                _cleanup_free_ char *p = child_path(l, l->node);
                r = zk_delete(l->zk, p, -1);
                if (r == -ENOENT) r = 0;
        }
        if (r < 0) {
                /* Not confirmed: the release queue keeps at it. */
                log_debug_errno(r, "zk_lock: cannot remove our contender in %s now: %m", l->path);
                release_contender(l);
        }
        forget_node(l);
}

static int attempt(struct zk_lock *l, bool blocking, int timeout_ms) {
        /* Non-blocking tries retry connection losses for a bounded time too. */
        int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
        if (!blocking) deadline = now_ms() + MAX(zk_session_timeout(l->zk), 10000);
        int r;

        if (l->held && zk_lock_is_held(l)) return -EBUSY;
        if (l->held) forget_node(l); /* held in a dead session */
        if (l->step != STEP_NONE) return -EBUSY;

        for (;;) {
                r = zk_ensure_path(l->zk, l->path);
                if (r < 0) goto retry;

                if (!l->node && l->create_tried) {
                        char **children = NULL;
                        r = zk_get_children(l->zk, l->path, &children, NULL);
                        if (r < 0) goto retry;
                        const char *own = find_own(l, children);
                        if (own) l->node = xstrdup(own);
                        zk_strv_free(children);
                }
                if (!l->node) {
                        _cleanup_free_ char *created = NULL;
                        l->create_tried = true;
                        l->gen = zk_session_generation(l->zk);
                        r = zk_create(l->zk, l->create_path, l->data, strlen(l->data), ZK_EPHEMERAL | ZK_SEQUENCE,
                                      &created);
                        if (r < 0) goto retry;
                        l->node = xstrdup(basename_of(created));
                        if (first_ever(l->node)) {
                                l->held = true;
                                return 1;
                        }
                }

                for (;;) {
                        char **children = NULL;
                        const char *pred = NULL;
                        r = zk_get_children(l->zk, l->path, &children, NULL);
                        if (r < 0) goto retry;
                        size_t n = 0;
                        while (children[n]) n++;
                        r = zk_lock_find_predecessor(children, n, l->node, &pred);
                        _cleanup_free_ char *pred_path = pred ? child_path(l, pred) : NULL;
                        zk_strv_free(children);
                        if (r == -ENOENT) { /* our contender vanished (session lost): start over */
                                forget_node(l);
                                break;
                        }
                        if (!pred_path) {
                                l->held = true;
                                return 1;
                        }
                        if (!blocking) {
                                cleanup_own(l);
                                return 0;
                        }
                        r = zk_wait_change(l->zk, pred_path, remaining(deadline));
                        if (r == -ETIMEDOUT) {
                                cleanup_own(l);
                                return -ETIMEDOUT;
                        }
                        if (r < 0) goto retry;
                }
                continue;
        retry:
                if (!retryable(r)) {
                        cleanup_own(l);
                        return r;
                }
                log_debug_errno(r, "zk_lock: %s: retrying after: %m", l->path);
                r = recover(l, r, deadline);
                if (r < 0) {
                        cleanup_own(l);
                        return r;
                }
        }
}

int zk_lock_try(struct zk_lock *l) { return attempt(l, false, -1); }

int zk_lock_try_new(struct zk *zk, const char *path, const char *identifier, struct zk_lock **ret) {
        struct zk_lock *l = NULL;
        int r = zk_lock_new(zk, path, identifier, &l);
        if (r < 0) return r;
        r = zk_lock_try(l);
        if (r != 1) {
                zk_lock_free(l);
                return r;
        }
        *ret = l;
        return 1;
}

int zk_lock_acquire(struct zk_lock *l, int timeout_ms) {
        int r = attempt(l, true, timeout_ms);
        return r > 0 ? 0 : r;
}

int zk_lock_release(struct zk_lock *l) {
        if (!l->node) {
                l->held = false;
                return 0;
        }
        _cleanup_free_ char *p = child_path(l, l->node);
        bool same_session = l->gen == zk_session_generation(l->zk);
        int r = same_session ? zk_delete(l->zk, p, -1) : 0;
        if (r == -ECONNRESET) { /* kazoo retries: the contender must go */
                int64_t deadline = now_ms() + MAX(zk_session_timeout(l->zk), 10000);
                while (r == -ECONNRESET && zk_connect_wait(l->zk, remaining(deadline)) == 0)
                        r = zk_delete(l->zk, p, -1);
        }
        if (r == -ENOENT || r == -EKEYEXPIRED) r = 0;
        if (r < 0) release_contender(l); /* the release queue keeps at it */
        forget_node(l);
        return r;
}

void zk_lock_forget(struct zk_lock *l) { forget_node(l); }

void zk_lock_release_async(struct zk_lock *l) {
        release_contender(l);
        forget_node(l);
}

/* ---------------------------------------------------------------- asynchronous */

static void async_result(struct zk *zk, const struct zk_result *res, void *userdata);

static void async_finish(struct zk_lock *l, int result) {
        l->step = STEP_NONE;
        if (l->cb) l->cb(l, result, l->userdata);
}

static void async_pipe_result(struct zk *zk, const struct zk_result *res, void *userdata);

static void async_create(struct zk_lock *l) {
        l->step = STEP_CREATE;
        l->create_tried = true;
        l->gen = zk_session_generation(l->zk);
        l->pipe_awaited = false;
        if (l->fresh) {
                /* L and our contender made together, atomically: ours is L's
                 * first child (0000000000) and holds the lock, no listing. */
                const struct zk_multi_op ops[] = {
                        { .kind = ZK_MULTI_CREATE, .path = l->path, .flags = ZK_PERSISTENT },
                        { .kind = ZK_MULTI_CREATE, .path = l->create_path, .data = l->data, .len = strlen(l->data),
                          .flags = ZK_EPHEMERAL | ZK_SEQUENCE },
                        { .kind = ZK_MULTI_SET, .path = l->fw_path, .data = l->fw_data, .len = l->fw_len,
                          .version = l->fw_version },
                };
                l->step = STEP_CREATE_DIR;
                zk_amulti(l->zk, ops, l->fw_path ? 3 : 2, async_result, l);
                return;
        }
        zk_acreate(l->zk, l->create_path, l->data, strlen(l->data), ZK_EPHEMERAL | ZK_SEQUENCE | ZK_MAKEPATH,
                   async_result, l);
        /* ZooKeeper answers a session in order: this listing sees our contender
         * (unless the create had to make the directory first: then it is listed again). */
        l->pipe_sent++;
        zk_aget_children(l->zk, l->path, NULL, async_pipe_result, &l->pipe);
}

static void async_list(struct zk_lock *l) {
        l->step = STEP_LIST;
        zk_aget_children(l->zk, l->path, NULL, async_result, l);
}

static void async_retry(struct zk_lock *l, int r) {
        if (++l->attempts >= ASYNC_ATTEMPTS || !retryable(r)) {
                /* Leave create_tried set: the next attempt looks for our prefix. */
                async_finish(l, r);
                return;
        }
        if (r == -EKEYEXPIRED) forget_node(l);
        if (l->create_tried && !l->node) {
                l->step = STEP_FIND;
                zk_aget_children(l->zk, l->path, NULL, async_result, l);
        } else if (!l->node)
                async_create(l);
        else {
                l->step = STEP_LIST;
                zk_aget_children(l->zk, l->path, NULL, async_result, l);
        }
}

static void async_result(struct zk *zk, const struct zk_result *res, void *userdata) {
        struct zk_lock *l = userdata;

        switch (l->step) {
        case STEP_CREATE_DIR:
                if (res->r < 0 && l->fw_path && res->multi_failed == 3) {
                        /* The write failed (changed, gone): nothing was made, no lock. */
                        l->fw_state = ZK_LOCK_WRITE_FAILED;
                        l->fresh = false;
                        l->create_tried = false;
                        return async_finish(l, res->r);
                }
                if (res->r == -EEXIST || res->r == -ENOENT) {
                        /* L exists (or its parent does not): nothing was made; the
                         * recipe's own way (create with makepath, then list), and
                         * the write is the caller's to make after it. */
                        l->fresh = false;
                        l->create_tried = false;
                        return async_create(l);
                }
                if (res->r < 0) return async_retry(l, res->r);
                if (l->fw_path) {
                        l->fw_state = ZK_LOCK_WRITE_APPLIED;
                        l->fw_has_stat = res->stat != NULL;
                        if (res->stat) l->fw_stat = *res->stat;
                }
                l->step = STEP_CREATE; /* our contender is made (0000000000): as its create's answer */
                /* fall through */
        case STEP_CREATE:
                if (res->r < 0) return async_retry(l, res->r);
                l->node = xstrdup(basename_of(res->created_path));
                if (first_ever(l->node)) { /* a listing sent behind it is ignored when answered */
                        l->held = true;
                        return async_finish(l, 1);
                }
                if (l->pipe_recv == l->pipe_sent) return async_list(l); /* answered before us (or none sent) */
                l->step = STEP_LIST;
                l->pipe_awaited = true;
                return;
        case STEP_FIND: {
                if (res->r < 0 && res->r != -ENOENT) return async_retry(l, res->r);
                const char *own = res->r == 0 ? find_own(l, res->children) : NULL;
                if (!own) return async_create(l);
                /* Still fresh: ours came from the multi (whose answer was lost), write and all. */
                if (l->fresh && l->fw_path) l->fw_state = ZK_LOCK_WRITE_APPLIED;
                l->node = xstrdup(own);
                l->step = STEP_LIST;
                zk_aget_children(zk, l->path, NULL, async_result, l);
                return;
        }
        case STEP_LIST: {
                const char *pred = NULL;
                if (res->r < 0) return async_retry(l, res->r);
                int r = zk_lock_find_predecessor(res->children, res->n_children, l->node, &pred);
                if (r == -ENOENT) {
                        forget_node(l);
                        return async_retry(l, -EAGAIN);
                }
                if (!pred) {
                        l->held = true;
                        return async_finish(l, 1);
                }
                l->step = STEP_GIVE_UP;
                _cleanup_free_ char *p = child_path(l, l->node);
                zk_adelete(zk, p, -1, async_result, l);
                return;
        }
        case STEP_GIVE_UP:
                if (res->r < 0 && res->r != -ENOENT) {
                        /* Keep the name so release/free delete it later. */
                        log_debug_errno(res->r, "zk_lock: cannot remove contender %s: %m", res->path);
                        l->step = STEP_NONE;
                        l->held = false;
                        if (l->cb) l->cb(l, res->r, l->userdata);
                        return;
                }
                forget_node(l);
                return async_finish(l, 0);
        default:
                return;
        }
}

static void async_pipe_result(struct zk *zk, const struct zk_result *res, void *userdata) {
        struct zk_lock *l = (struct zk_lock *)((char *)userdata - offsetof(struct zk_lock, pipe));
        l->pipe_recv++;
        /* Only the newest listing, and only once our create is in: it lists our contender
         * (answered in order after it) — else it is stale and STEP_CREATE lists again. */
        if (l->pipe_recv != l->pipe_sent || !l->pipe_awaited || l->step != STEP_LIST) return;
        l->pipe_awaited = false;
        if (res->r == 0 && !find_own(l, res->children)) {
                /* The directory was made after this listing (makepath): list again. */
                async_list(l);
                return;
        }
        async_result(zk, res, l);
}

void zk_lock_set_fresh(struct zk_lock *l) { l->fresh = true; }

void zk_lock_set_fresh_write(struct zk_lock *l, const char *path, const void *data, size_t len, int version) {
        l->fresh = true;
        free(l->fw_path);
        free(l->fw_data);
        l->fw_path = xstrdup(path);
        l->fw_data = xmalloc(len + 1);
        if (len) memcpy(l->fw_data, data, len);
        l->fw_len = len;
        l->fw_version = version;
        l->fw_state = ZK_LOCK_WRITE_NONE;
        l->fw_has_stat = false;
}

enum zk_lock_write zk_lock_fresh_write_state(const struct zk_lock *l, const struct zk_stat **ret_stat) {
        if (ret_stat) *ret_stat = l->fw_state == ZK_LOCK_WRITE_APPLIED && l->fw_has_stat ? &l->fw_stat : NULL;
        return l->fw_state;
}

int zk_lock_try_async(struct zk_lock *l, zk_lock_cb cb, void *userdata) {
        if (l->step != STEP_NONE) return -EBUSY;
        if (l->held && zk_lock_is_held(l)) return -EBUSY;
        if (l->held) forget_node(l);
        l->cb = cb;
        l->userdata = userdata;
        l->attempts = 0;
        if (l->node) { /* a leftover contender from a failed give-up: reuse it */
                l->step = STEP_LIST;
                zk_aget_children(l->zk, l->path, NULL, async_result, l);
        } else if (l->create_tried) {
                l->step = STEP_FIND;
                zk_aget_children(l->zk, l->path, NULL, async_result, l);
        } else
                async_create(l);
        return 0;
}

/* ---------------------------------------------------------------- inspection */

int zk_is_locked(struct zk *zk, const char *path) {
        size_t n = 0;
        int r = zk_get_children(zk, path, NULL, &n);
        if (r == -ENOENT) return 0;
        if (r < 0) return r;
        return n > 0;
}

int zk_lock_contenders(struct zk *zk, const char *path, char ***ret_names, char ***ret_identifiers, size_t *ret_n) {
        char **children = NULL;
        size_t n = 0;
        int r = zk_get_children(zk, path, &children, &n);
        if (r == -ENOENT) {
                children = xnew(char *, 1);
                n = 0;
        } else if (r < 0)
                return r;
        n = zk_lock_sort_contenders(children, n);

        char **names = xnew(char *, n + 1), **idents = xnew(char *, n + 1);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", path, children[i]);
                char *data = NULL;
                r = zk_get(zk, p, &data, NULL, NULL);
                if (r == -ENOENT) continue;
                if (r < 0) {
                        zk_strv_free(children);
                        zk_strv_free(names);
                        zk_strv_free(idents);
                        return r;
                }
                names[k] = xstrdup(children[i]);
                idents[k++] = data;
        }
        zk_strv_free(children);
        if (ret_names)
                *ret_names = names;
        else
                zk_strv_free(names);
        if (ret_identifiers)
                *ret_identifiers = idents;
        else
                zk_strv_free(idents);
        if (ret_n) *ret_n = k;
        return 0;
}
