/* reconcile.c — after a reconnect or a new session, what we believe we hold
 * against what ZooKeeper has.
 *
 * DESIGN. While the connection was down, answers were lost: a lock attempt may
 * have made a contender we never heard of, a release may not have reached the
 * server, a write may or may not have landed. Most of it is settled where it
 * happens (zk_release.h retries releases, zkrec.c lost node writes, request.c
 * a fulfilment it could not confirm, delete.c a znode delete). This is the net
 * under them, run once the caches are synced again after CONNECTED:
 *  - on a new session, the old one's locks are gone with it: launcher_session_lost
 *    dropped the work that held them (requests go back through the lost-request
 *    reset below; nodes are picked up by the passes again);
 *  - every lock directory that may hold a contender of ours that nobody in poold
 *    holds is listed (nodes whose cache shows contenders, every cached request),
 *    and a contender owned by our session whose node or request is not ours right
 *    now is deleted through the release queue;
 *  - then pending requests that nobody holds any more are reset to requested
 *    (cleanup_lost_requests), so the ones we were working on are served again.
 * Ownership is judged when each contender's owner is known, not when the sweep
 * starts, so a lock taken meanwhile is never mistaken for an orphan. At most
 * one sweep runs; a reconnect during it starts another afterwards. */
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "zk_release.h"

struct reconcile {
        struct launcher *l;
        unsigned pending;
        int64_t sid;
        uint64_t gen;
        unsigned removed;
};

void reconcile_request(struct launcher *l) { l->reconcile_wanted = true; }

void reconcile_abort(struct launcher *l) {
        if (!l->reconcile) return;
        zk_cancel(l->zk, l->reconcile);
        free(l->reconcile);
        l->reconcile = NULL;
}

static void sweep_put(struct reconcile *rc) {
        if (--rc->pending > 0) return;
        struct launcher *l = rc->l;
        if (rc->removed) log_warning("reconcile: removed %u lock contender(s) of ours that nobody held", rc->removed);
        l->reconcile = NULL;
        free(rc);
        /* Our stale contenders are on their way out: requests left pending by us are reset. */
        if (zk_is_connected(l->zk) && caches_synced(l)) cleanup_lost_requests(l);
        launcher_kick(l);
}

/* Is the lock whose contender is at PATH ours right now (held or being taken)? */
static bool lock_is_ours(struct launcher *l, const char *path) {
        const char *nodes = NPZK_NODES "/", *reqs = NPZK_REQUEST_LOCKS "/";
        if (strncmp(path, nodes, strlen(nodes)) == 0) {
                const char *id = path + strlen(nodes), *end = strchr(id, '/');
                _cleanup_free_ char *k = end ? xstrndup(id, (size_t)(end - id)) : NULL;
                return !k || smap_get(&l->held, k) || smap_get(&l->deleting, k) || smap_get(&l->unallocating, k);
        }
        if (strncmp(path, reqs, strlen(reqs)) == 0) {
                const char *id = path + strlen(reqs), *end = strchr(id, '/');
                _cleanup_free_ char *k = end ? xstrndup(id, (size_t)(end - id)) : NULL;
                return !k || smap_get(&l->handlers, k) || smap_get(&l->accepting, k) || smap_get(&l->declining, k);
        }
        return true; /* not a lock of ours to judge */
}

static void on_contender(struct zk *zk, const struct zk_result *res, void *ud) {
        struct reconcile *rc = ud;
        struct launcher *l = rc->l;
        if (res->r == 0 && res->stat && res->stat->ephemeral_owner == rc->sid &&
            zk_session_generation(zk) == rc->gen && !lock_is_ours(l, res->path)) {
                log_warning("reconcile: lock contender %s is ours but nobody holds it: removing it", res->path);
                zk_release_path(zk_releases(zk), res->path, rc->gen);
                rc->removed++;
        }
        sweep_put(rc);
}

static void on_lock_dir(struct zk *zk, const struct zk_result *res, void *ud) {
        struct reconcile *rc = ud;
        for (size_t i = 0; res->r == 0 && i < res->n_children; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", res->path, res->children[i]);
                rc->pending++;
                (void)zk_aexists(zk, p, NULL, on_contender, rc);
        }
        sweep_put(rc);
}

static void list_dir(struct reconcile *rc, char *path) {
        rc->pending++;
        (void)zk_aget_children(rc->l->zk, path, NULL, on_lock_dir, rc);
        free(path);
}

static void node_fn(const char *key, void *value, void *ud) {
        struct reconcile *rc = ud;
        const struct cnode *cn = value;
        if (cn->lock_contenders > 0 && !smap_get(&rc->l->held, key)) list_dir(rc, npzk_node_lock_path(key));
}

static void request_fn(const char *key, void *value, void *ud) {
        struct reconcile *rc = ud;
        struct launcher *l = rc->l;
        if (!smap_get(&l->handlers, key) && !smap_get(&l->accepting, key) && !smap_get(&l->declining, key))
                list_dir(rc, npzk_request_lock_path(key));
}

void reconcile_pass(struct launcher *l) {
        if (!l->reconcile_wanted || l->reconcile || !caches_synced(l)) return;
        int64_t sid = zk_session_id(l->zk);
        if (sid == 0) return;
        l->reconcile_wanted = false;
        struct reconcile *rc = xnew(struct reconcile, 1);
        rc->l = l;
        rc->sid = sid;
        rc->gen = zk_session_generation(l->zk);
        rc->pending = 1;
        l->reconcile = rc;
        log_info("reconcile: looking for lock contenders of ours that nobody holds (session 0x%llx)",
                 (unsigned long long)sid);
        smap_foreach(&l->nodes, node_fn, rc);
        smap_foreach(&l->requests, request_fn, rc);
        sweep_put(rc);
}
