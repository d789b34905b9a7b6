/* zk_cache.c — see zk_cache.h.
 *
 * DESIGN. Entries live in a string map keyed by path (smap) and in a parent/child
 * tree (for cheap child-list diffs and subtree removal). Every async read
 * goes out with userdata = the cache and is matched back to its entry by
 * path, so nothing dangles when an entry goes away. Each entry remembers the
 * id of the data / child / lock-dir watch it has armed (WID_PENDING while the
 * arming read is in flight): a watch is only asked for when none is armed,
 * so re-syncs never pile up duplicate watches, and a firing whose id does not
 * match (left over from a removed-and-recreated node) is ignored. Only the
 * read that asked for a watch settles WID_PENDING (each callback comes in an
 * asking and a non-asking form): a re-sync read sent while a watch was armed
 * can be answered after that watch fired and a new one was asked for. */
#include "zk_cache.h"

#include <string.h>

#include "alloc.h"
#include "log.h"
#include "smap.h"

#define WID_PENDING UINT64_MAX

struct entry {
        struct zk_cache_node n;
        char *path;
        char *data;
        bool reported;
        bool muted;     /* zk_cache_mute(): the owner reports its writes (zk_cache_apply) */
        uint64_t data_wid, child_wid, lock_wid;
        struct entry *parent, *first_child, *next_sibling;
        bool seen;
};

struct zk_cache {
        struct zk *zk;
        char *root_path;
        int max_depth;
        unsigned flags;
        zk_cache_cb cb;
        void *userdata;
        zk_cache_synced_cb synced_cb;
        void *synced_userdata;

        struct entry *root;
        struct smap entries; /* path -> struct entry *, the root too */
        unsigned pending;
        bool started, synced;
};

static const char *const event_names[_ZK_CACHE_EVENT_MAX] = {
        [ZK_CACHE_ADDED] = "ADDED",
        [ZK_CACHE_UPDATED] = "UPDATED",
        [ZK_CACHE_REMOVED] = "REMOVED",
};

const char *zk_cache_event_to_string(enum zk_cache_event ev) {
        return ev >= 0 && ev < _ZK_CACHE_EVENT_MAX ? event_names[ev] : NULL;
}

/* ---------------------------------------------------------------- table */

static struct entry *lookup(struct zk_cache *c, const char *path) { return smap_get(&c->entries, path); }

static struct entry *entry_new(struct zk_cache *c, struct entry *parent, const char *path) {
        struct entry *e = xnew(struct entry, 1);
        e->path = xstrdup(path);
        e->data = xstrdup("");
        e->n.path = e->path;
        e->n.name = strrchr(e->path, '/') ? strrchr(e->path, '/') + 1 : e->path;
        e->n.depth = parent ? parent->n.depth + 1 : 0;
        e->n.data = e->data;
        e->parent = parent;
        if (parent) {
                e->next_sibling = parent->first_child;
                parent->first_child = e;
        }
        smap_put(&c->entries, e->path, e);
        return e;
}

/* Remove E and its subtree, children first, reporting what was reported. */
static void entry_remove(struct zk_cache *c, struct entry *e) {
        while (e->first_child) entry_remove(c, e->first_child);
        if (e->parent)
                for (struct entry **p = &e->parent->first_child; *p; p = &(*p)->next_sibling)
                        if (*p == e) {
                                *p = e->next_sibling;
                                break;
                        }
        smap_remove(&c->entries, e->path);
        if (e->reported && c->cb) c->cb(c, ZK_CACHE_REMOVED, &e->n, c->userdata);
        free(e->path);
        free(e->data);
        free(e);
}

/* ---------------------------------------------------------------- reads */

static void on_watch(struct zk *zk, const struct zk_watch_event *ev, void *userdata);

/* Each answer handler X exists as on_X (the read asked for no watch) and
 * on_X_w (it asked for one, and settles it). */
#define ANSWER_HANDLER(x)                                                                             \
        static void x##_done(struct zk_cache *c, const struct zk_result *res, bool asked);             \
        static void on_##x(struct zk *zk, const struct zk_result *res, void *ud) {                     \
                x##_done(ud, res, false);                                                                \
        }                                                                                                \
        static void on_##x##_w(struct zk *zk, const struct zk_result *res, void *ud) {                 \
                x##_done(ud, res, true);                                                                 \
        }
ANSWER_HANDLER(data)
ANSWER_HANDLER(children)
ANSWER_HANDLER(root_exists)
ANSWER_HANDLER(lock)
ANSWER_HANDLER(lock_exists)

/* Ask for a watch only when none is armed (or on its way). */
static zk_watch_cb want_watch(uint64_t *wid) {
        if (*wid) return NULL;
        *wid = WID_PENDING;
        return on_watch;
}

/* The answer of the read that ASKED for the watch decides what is armed. */
static void settle_watch(uint64_t *wid, const struct zk_result *res, bool asked) {
        if (asked && *wid == WID_PENDING) *wid = res->watch_registered ? res->watch_id : 0;
}

static void fetch_data(struct zk_cache *c, struct entry *e) {
        c->pending++;
        zk_watch_cb w = want_watch(&e->data_wid);
        zk_aget(c->zk, e->path, w, w ? on_data_w : on_data, c);
}

static void fetch_children(struct zk_cache *c, struct entry *e) {
        if (e->n.depth >= c->max_depth) return;
        c->pending++;
        zk_watch_cb w = want_watch(&e->child_wid);
        zk_aget_children(c->zk, e->path, w, w ? on_children_w : on_children, c);
}

static void fetch_lock(struct zk_cache *c, struct entry *e) {
        if (!(c->flags & ZK_CACHE_TRACK_LOCKS) || e == c->root) return;
        _cleanup_free_ char *p = xasprintf("%s/lock", e->path);
        c->pending++;
        zk_watch_cb w = want_watch(&e->lock_wid);
        zk_aget_children(c->zk, p, w, w ? on_lock_w : on_lock, c);
}

static void fetch_entry(struct zk_cache *c, struct entry *e) {
        if (e != c->root) fetch_data(c, e);
        fetch_children(c, e);
        fetch_lock(c, e);
}

static void read_done(struct zk_cache *c) {
        if (c->pending > 0) c->pending--;
        if (c->pending == 0 && !c->synced) {
                c->synced = true;
                if (c->synced_cb) c->synced_cb(c, c->synced_userdata);
        }
}

static void fetch_fn(const char *path, void *value, void *ud) {
        struct entry *e = value;
        e->muted = false; /* read again anyway; the owner's knowledge may be stale */
        fetch_entry(ud, e);
}

static void resync(struct zk_cache *c) {
        c->synced = false;
        c->pending++; /* hold "synced" until every read below is issued */
        smap_foreach(&c->entries, fetch_fn, c); /* fetches only send reads: the table stays as it is */
        read_done(c);
}

/* DATA (LEN bytes, NUL after them) with ST as E's, when newer than what is cached. */
static bool store(struct zk_cache *c, struct entry *e, const char *data, size_t len, const struct zk_stat *st) {
        if (e->reported && st->mzxid <= e->n.mzxid) return false; /* stale or unchanged (a re-sync read) */
        free(e->data);
        e->data = xmalloc(len + 1);
        memcpy(e->data, data, len);
        e->data[len] = '\0';
        e->n.data = e->data;
        e->n.len = len;
        e->n.version = st->version;
        e->n.mzxid = st->mzxid;
        e->n.ctime = st->ctime;
        e->n.mtime = st->mtime;
        enum zk_cache_event ev = e->reported ? ZK_CACHE_UPDATED : ZK_CACHE_ADDED;
        e->reported = true;
        if (c->cb) c->cb(c, ev, &e->n, c->userdata);
        return true;
}

static void data_done(struct zk_cache *c, const struct zk_result *res, bool asked) {
        struct entry *e = lookup(c, res->path);
        if (e) {
                settle_watch(&e->data_wid, res, asked);
                if (res->r == -ENOENT && e != c->root)
                        entry_remove(c, e);
                else if (res->r < 0)
                        log_debug_errno(res->r, "zk_cache: reading %s: %m (re-read on reconnect)", res->path);
                else
                        store(c, e, res->data, res->len, res->stat);
        }
        read_done(c);
}

static void children_done(struct zk_cache *c, const struct zk_result *res, bool asked) {
        struct entry *e = lookup(c, res->path);
        if (!e) goto done;
        settle_watch(&e->child_wid, res, asked);
        if (res->r == -ENOENT) {
                if (e != c->root) {
                        entry_remove(c, e);
                        goto done;
                }
                /* The root is missing: drop what we had, wait for it to appear. */
                while (e->first_child) entry_remove(c, e->first_child);
                c->pending++;
                zk_watch_cb w = want_watch(&e->data_wid);
                zk_aexists(c->zk, e->path, w, w ? on_root_exists_w : on_root_exists, c);
                goto done;
        }
        if (res->r < 0) {
                log_debug_errno(res->r, "zk_cache: listing %s: %m (re-read on reconnect)", res->path);
                goto done;
        }

        for (struct entry *x = e->first_child; x; x = x->next_sibling) x->seen = false;
        for (size_t i = 0; i < res->n_children; i++) {
                const char *name = res->children[i];
                if ((c->flags & ZK_CACHE_TRACK_LOCKS) && strcmp(name, "lock") == 0) continue;
                _cleanup_free_ char *p = xasprintf("%s/%s", strcmp(e->path, "/") == 0 ? "" : e->path, name);
                struct entry *x = lookup(c, p);
                if (!x) {
                        x = entry_new(c, e, p);
                        fetch_entry(c, x);
                }
                x->seen = true;
        }
        for (struct entry *x = e->first_child, *next; x; x = next) {
                next = x->next_sibling;
                if (!x->seen) entry_remove(c, x);
        }
done:
        read_done(c);
}

static void root_exists_done(struct zk_cache *c, const struct zk_result *res, bool asked) {
        settle_watch(&c->root->data_wid, res, asked);
        if (res->r == 0) fetch_children(c, c->root); /* created meanwhile */
        read_done(c);
}

static struct entry *lock_owner(struct zk_cache *c, const char *lock_path) {
        size_t n = strlen(lock_path);
        if (n < 6 || strcmp(lock_path + n - 5, "/lock") != 0) return NULL;
        _cleanup_free_ char *p = xstrndup(lock_path, n - 5);
        return lookup(c, p);
}

static void set_lock_count(struct zk_cache *c, struct entry *e, unsigned n) {
        if (e->n.lock_contenders == n) return;
        e->n.lock_contenders = n;
        if (e->reported && c->cb) c->cb(c, ZK_CACHE_UPDATED, &e->n, c->userdata);
}

static void lock_done(struct zk_cache *c, const struct zk_result *res, bool asked) {
        struct entry *e = lock_owner(c, res->path);
        if (!e) goto done;
        settle_watch(&e->lock_wid, res, asked);
        if (res->r == -ENOENT) {
                set_lock_count(c, e, 0);
                /* No lock dir yet: an exists watch tells when it appears. */
                c->pending++;
                zk_watch_cb w = want_watch(&e->lock_wid);
                zk_aexists(c->zk, res->path, w, w ? on_lock_exists_w : on_lock_exists, c);
        } else if (res->r == 0)
                set_lock_count(c, e, (unsigned)res->n_children);
done:
        read_done(c);
}

static void lock_exists_done(struct zk_cache *c, const struct zk_result *res, bool asked) {
        struct entry *e = lock_owner(c, res->path);
        if (e) {
                settle_watch(&e->lock_wid, res, asked);
                if (res->r == 0) {
                        /* Appeared meanwhile. The exists watch just armed only sees the
                         * directory itself (deleted or changed), not its children: list
                         * them with a children watch, which replaces it (a later firing of
                         * the exists watch carries a stale id and is ignored). */
                        e->lock_wid = 0;
                        fetch_lock(c, e);
                }
        }
        read_done(c);
}

static void unmute(struct zk_cache *c, struct entry *e) {
        e->muted = false;
        if (!e->data_wid) fetch_data(c, e); /* a firing was not followed: read and watch again */
}

static void on_watch(struct zk *zk, const struct zk_watch_event *ev, void *userdata) {
        struct zk_cache *c = userdata;
        struct entry *e = lookup(c, ev->path);
        if (e && ev->id == e->data_wid) {
                e->data_wid = 0;
                if (e == c->root)
                        fetch_children(c, e); /* the root's exists watch: it appeared */
                else if (ev->type == ZK_EVENT_DELETED)
                        /* Gone: a read would only say ENOENT. A node made again under
                         * the same name fires the parent's child watch (after this
                         * event), whose listing adds it anew. */
                        entry_remove(c, e);
                else if (!e->muted)
                        fetch_data(c, e);
                /* else: the owner's own write, which it reports (zk_cache_apply);
                 * no watch until zk_cache_unmute() */
                return;
        }
        if (e && ev->id == e->child_wid) {
                e->child_wid = 0;
                fetch_children(c, e);
                return;
        }
        e = (c->flags & ZK_CACHE_TRACK_LOCKS) ? lock_owner(c, ev->path) : NULL;
        if (e && ev->id == e->lock_wid) {
                e->lock_wid = 0;
                /* The lock changed hands (or someone queues for it): the owner's
                 * promise to report every write ends here. The data first: when
                 * the node is gone, its ENOENT drops the entry before the lock's. */
                if (e->muted) unmute(c, e);
                fetch_lock(c, e);
        }
        /* else: a watch left over from a removed entry */
}

static void forget_watches_fn(const char *path, void *value, void *ud) {
        struct entry *e = value;
        e->data_wid = e->child_wid = e->lock_wid = 0;
        e->muted = false;
}

static void on_state(struct zk *zk, enum zk_state s, void *userdata) {
        struct zk_cache *c = userdata;
        if (!c->started) return;
        if (s == ZK_STATE_EXPIRED) {
                /* Every watch died with the session. */
                smap_foreach(&c->entries, forget_watches_fn, NULL);
        } else if (s == ZK_STATE_CONNECTED)
                resync(c);
}

/* ---------------------------------------------------------------- public */

int zk_cache_new(struct zk *zk, const char *root, int max_depth, unsigned flags, zk_cache_cb cb, void *userdata,
                 struct zk_cache **ret) {
        if (!zk || !root || root[0] != '/' || max_depth < 1) return -EINVAL;
        size_t n = strlen(root);
        if (n > 1 && root[n - 1] == '/') return -EINVAL;
        struct zk_cache *c = xnew(struct zk_cache, 1);
        c->zk = zk;
        c->root_path = xstrdup(root);
        c->max_depth = max_depth;
        c->flags = flags;
        c->cb = cb;
        c->userdata = userdata;
        c->root = entry_new(c, NULL, root);
        zk_add_state_listener(zk, on_state, c);
        *ret = c;
        return 0;
}

void zk_cache_set_synced_cb(struct zk_cache *c, zk_cache_synced_cb cb, void *userdata) {
        c->synced_cb = cb;
        c->synced_userdata = userdata;
}

int zk_cache_start(struct zk_cache *c) {
        if (c->started) return -EALREADY;
        c->started = true;
        resync(c);
        return 0;
}

bool zk_cache_is_synced(struct zk_cache *c) { return c->started && c->synced; }

void zk_cache_free(struct zk_cache *c) {
        if (!c) return;
        zk_cancel(c->zk, c);
        zk_remove_state_listener(c->zk, on_state, c);
        c->cb = NULL; /* no REMOVED storm while tearing down */
        entry_remove(c, c->root);
        smap_clear(&c->entries, NULL); /* empty now: frees the buckets */
        free(c->root_path);
        free(c);
}

const char *zk_cache_root(struct zk_cache *c) { return c->root_path; }

const struct zk_cache_node *zk_cache_get(struct zk_cache *c, const char *path) {
        struct entry *e = lookup(c, path);
        return e && e != c->root && e->reported ? &e->n : NULL;
}

static void count_fn(const char *path, void *value, void *ud) {
        const struct entry *e = value;
        *(size_t *)ud += e->parent && e->reported; /* the root has no parent and is no node */
}

size_t zk_cache_size(struct zk_cache *c) {
        size_t n = 0;
        smap_foreach(&c->entries, count_fn, &n);
        return n;
}

struct foreach_ctx {
        void (*fn)(const struct zk_cache_node *node, void *userdata);
        void *userdata;
};

static void foreach_fn(const char *path, void *value, void *ud) {
        const struct entry *e = value;
        const struct foreach_ctx *f = ud;
        if (e->parent && e->reported) f->fn(&e->n, f->userdata);
}

void zk_cache_foreach(struct zk_cache *c, void (*fn)(const struct zk_cache_node *node, void *userdata),
                      void *userdata) {
        smap_foreach(&c->entries, foreach_fn, &(struct foreach_ctx){ fn, userdata });
}

/* A node at depth >= 1, or NULL. */
static struct entry *node_entry(struct zk_cache *c, const char *path) {
        struct entry *e = path ? lookup(c, path) : NULL;
        return e && e != c->root ? e : NULL;
}

int zk_cache_mute(struct zk_cache *c, const char *path) {
        struct entry *e = node_entry(c, path);
        if (!e) return -ENOENT;
        e->muted = true;
        return 0;
}

void zk_cache_unmute(struct zk_cache *c, const char *path) {
        struct entry *e = node_entry(c, path);
        if (e && e->muted) unmute(c, e);
}

int zk_cache_apply(struct zk_cache *c, const char *path, const char *data, size_t len, const struct zk_stat *stat) {
        struct entry *e = node_entry(c, path);
        if (!e || !stat) return -ENOENT;
        return store(c, e, data ? data : "", data ? len : 0, stat);
}
