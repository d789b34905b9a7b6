/* minready.c — keep `min-ready` ready nodes per label (protocol.md §4.2).
 *
 * DESIGN. For each label with min-ready > 0 that one of our pools offers with an
 * image available, and no outstanding (requested/pending) min-ready request,
 * count READY unallocated nodes in the cache and create the missing number of
 * one-node ephemeral requests (priority 900, requestor NodePool:min-ready,
 * reuse false). Fulfilled and failed min-ready requests are deleted; the
 * delete pass then clears allocated_to on their nodes (request gone). Runs at
 * most every 500 ms and only on a synced cache. Never deletes nodes.
 *
 * Several launchers. Two launchers counting the same label at the same moment
 * would each create the missing requests, doubling the label's ready nodes. So
 * one launcher at a time decides for a label: the holder of its min-ready lease,
 * a kazoo lock (NPZK_POOLD_LOCKS/min-ready/<label>) kept while it
 * decides for the label (it dies with the holder's session, so a survivor takes
 * over). Who tries for a lease is the label's owner by rendezvous hashing over
 * the live pools offering it (owner.c), so labels spread over launchers and
 * non-owners send no lock attempts; a holder that is no longer the owner lets
 * go. The lease and not hashing alone makes it safe, because two launchers'
 * views of the registry differ for a moment whenever one comes or goes. The
 * new holder's cache may not yet show the requests its predecessor created
 * just before letting go: until a fresh listing of /nodepool/requests shows no
 * min-ready (900-) request the cache lacks, it creates nothing. The holder's
 * own creations count as outstanding until its cache shows them (a pass may
 * come before the watch does). Deleting finished min-ready requests is left to
 * every launcher: a delete of a finished request is idempotent (-ENOENT). */
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"
#include "zk_lock.h"

#define CREATED_TTL_MS 30000    /* a creation the cache never shows stops counting after this */

struct mr_created {
        char *label;
        uint64_t time_ms;
};

struct mr_scan {
        struct launcher *l;
        const char *label;
        bool outstanding;
        int64_t ready;
        char **finished;
        size_t n_finished;
};

static bool is_minready(const struct node_request *rq) {
        return rq->requestor && strcmp(rq->requestor, LAUNCHER_MINREADY_REQUESTOR) == 0;
}

static void req_fn(const char *key, void *value, void *ud) {
        struct mr_scan *s = ud;
        const struct node_request *rq = ((const struct creq *)value)->req;
        if (!is_minready(rq) || !model_strv_contains(rq->node_types, s->label)) return;
        if (rq->state == NODE_REQUEST_STATE_REQUESTED || rq->state == NODE_REQUEST_STATE_PENDING)
                s->outstanding = true;
}

static void node_fn(const char *key, void *value, void *ud) {
        struct mr_scan *s = ud;
        const struct node *n = ((const struct cnode *)value)->node;
        if (n->state != NODE_STATE_READY || !model_strv_contains(n->type, s->label)) return;
        /* Nodes of finished min-ready requests are about to be unallocated: count them. */
        const struct creq *cr = n->allocated_to ? smap_get(&s->l->requests, n->allocated_to) : NULL;
        if (!n->allocated_to || (!cr && !smap_get(&s->l->handlers, n->allocated_to)) || (cr && is_minready(cr->req)))
                s->ready++;
}

static void finished_fn(const char *key, void *value, void *ud) {
        struct mr_scan *s = ud;
        const struct node_request *rq = ((const struct creq *)value)->req;
        if (is_minready(rq) && (rq->state == NODE_REQUEST_STATE_FULFILLED || rq->state == NODE_REQUEST_STATE_FAILED))
                s->finished[s->n_finished++] = xstrdup(key);
}

static bool label_offered(struct launcher *l, const char *label) {
        for (size_t i = 0; i < l->n_pools; i++) {
                struct pool *p = l->pools[i];
                if (p->retired || !p->cpool || p->cpool->max_servers == 0) continue;
                if (p->prov->drv->minready_offers(p, label)) return true;
        }
        return false;
}

static void create_request(struct launcher *l, const char *label) {
        _cleanup_(node_request_freep) struct node_request *rq = node_request_new(NULL);
        rq->reuse = false;
        model_set_str(&rq->requestor, LAUNCHER_MINREADY_REQUESTOR);
        model_strv_push(&rq->node_types, label);
        rq->created_time = rq->state_time = model_now();
        char hex[33] = "";
        if (model_uuid4_hex(hex) >= 0) model_set_str(&rq->event_id, hex);
        _cleanup_free_ char *data = NULL, *path = NULL, *prefix = npzk_request_prefix(900);
        size_t len;
        if (node_request_to_json(rq, &data, &len) < 0) return;
        int r = zk_create(l->zk, prefix, data, len, ZK_EPHEMERAL | ZK_SEQUENCE | ZK_MAKEPATH, &path);
        if (r < 0) {
                log_warning_errno(r, "min-ready: cannot create a request for %s: %m", label);
                return;
        }
        log_info("min-ready: requested a %s node (%s)", label, path);
        struct mr_created *c = xnew(struct mr_created, 1);
        c->label = xstrdup(label);
        c->time_ms = loop_now_ms();
        smap_put(&l->minready_created, strrchr(path, '/') + 1, c);
}

static void created_free(void *v) {
        struct mr_created *c = v;
        if (!c) return;
        free(c->label);
        free(c);
}

struct created_scan {
        struct launcher *l;
        const char *label;
        bool outstanding;
};

void minready_request_seen(struct launcher *l, const char *id) {
        if (l->minready_created.n) created_free(smap_remove(&l->minready_created, id));
}

static void created_fn(const char *key, void *value, void *ud) {
        struct created_scan *s = ud;
        struct mr_created *c = value;
        /* The cache never showed it: something is badly wrong, do not wait for ever. */
        if (loop_now_ms() - c->time_ms > CREATED_TTL_MS) {
                created_free(smap_remove(&s->l->minready_created, key));
                return;
        }
        if (strcmp(c->label, s->label) == 0) s->outstanding = true;
}

/* True while we hold LABEL's lease (taken now if free). */
static bool lease_hold(struct launcher *l, const char *label) {
        struct zk_lock *lock = smap_get(&l->minready_leases, label);
        if (lock && zk_lock_is_held(lock)) return true;
        if (lock) {
                /* Lost with an expired session: take it again below. */
                smap_remove(&l->minready_leases, label);
                zk_lock_free(lock);
        }
        if (!zk_is_connected(l->zk)) return false; /* a call now would wait for ZooKeeper */
        _cleanup_free_ char *path = owners_lock_path("min-ready", label, NULL), *id = owners_lock_id(l);
        int r = zk_lock_try_new(l->zk, path, id, &lock);
        if (r != 1) {
                if (r < 0) log_debug_errno(r, "min-ready: lease of %s: %m", label);
                return false;
        }
        smap_put(&l->minready_leases, label, lock);
        smap_put(&l->minready_unchecked, label, (void *)1);
        log_info("min-ready: this launcher now keeps label %s ready", label);
        return true;
}

static void lease_release(void *v) {
        struct zk_lock *lock = v;
        zk_lock_release_async(lock);
        zk_lock_free(lock);
}

/* Every min-ready request in ZooKeeper now is in the cache: 1, 0 not yet, <0. */
static int predecessor_seen(struct launcher *l) {
        char **children = NULL;
        size_t n = 0;
        int r = zk_get_children(l->zk, NPZK_REQUESTS, &children, &n);
        if (r == -ENOENT) return 1;
        if (r < 0) return r;
        int seen = 1;
        for (size_t i = 0; i < n && seen; i++) {
                if (strncmp(children[i], "900-", 4) != 0 || smap_get(&l->requests, children[i])) continue;
                _cleanup_free_ char *path = npzk_request_path(children[i]);
                if (!smap_get(&l->bad_records, path)) seen = 0; /* a malformed one never shows */
        }
        zk_strv_free(children);
        return seen;
}

void minready_stop(struct launcher *l) {
        smap_clear(&l->minready_leases, lease_release);
        smap_clear(&l->minready_unchecked, NULL);
        smap_clear(&l->minready_created, created_free);
}

void minready_pass(struct launcher *l) {
        if (!caches_synced(l)) return;
        uint64_t now = loop_now_ms();
        if (now - l->last_minready_ms < 500) return;
        l->last_minready_ms = now;
        struct mr_scan fs = { .l = l, .finished = xnew(char *, l->requests.n + 1) };
        smap_foreach(&l->requests, finished_fn, &fs);
        for (size_t i = 0; i < fs.n_finished; i++) {
                _cleanup_free_ char *path = npzk_request_path(fs.finished[i]);
                int r = zk_delete(l->zk, path, -1);
                if (r < 0 && r != -ENOENT) log_warning_errno(r, "min-ready: cannot delete %s: %m", path);
                free(fs.finished[i]);
        }
        free(fs.finished);
        if (fs.n_finished > 0) return; /* count again once the cache saw the deletes */
        struct smap wanted = {};
        int checked = -1; /* predecessor_seen(), asked once per pass at most */
        _cleanup_(owners_freep) struct owners *o = owners_snapshot(l);
        for (size_t i = 0; i < l->cfg->n_labels; i++) {
                const struct config_label *lab = &l->cfg->labels[i];
                if (lab->min_ready <= 0 || !label_offered(l, lab->name)) continue;
                /* Rendezvous hashing picks who tries for the lease (no herd of
                 * lock attempts); the lease alone makes it safe. */
                if (!owners_mine(o, lab->name, NULL, NULL, lab->name)) continue;
                smap_put(&wanted, lab->name, (void *)1);
                if (!lease_hold(l, lab->name)) continue; /* the previous keeper has not let go yet */
                if (smap_get(&l->minready_unchecked, lab->name)) {
                        if (checked < 0) checked = zk_is_connected(l->zk) ? predecessor_seen(l) : 0;
                        if (checked != 1) continue;
                        smap_remove(&l->minready_unchecked, lab->name);
                }
                struct created_scan cs = { .l = l, .label = lab->name };
                smap_foreach(&l->minready_created, created_fn, &cs);
                if (cs.outstanding) continue;
                struct mr_scan s = { .l = l, .label = lab->name };
                smap_foreach(&l->requests, req_fn, &s);
                if (s.outstanding) continue;
                smap_foreach(&l->nodes, node_fn, &s);
                for (int64_t k = s.ready; k < lab->min_ready; k++) create_request(l, lab->name);
        }
        /* Labels we no longer keep ready (or another launcher owns now): let go. */
        size_t n;
        const char **keys = smap_keys(&l->minready_leases, &n);
        for (size_t i = 0; i < n; i++)
                if (!smap_get(&wanted, keys[i])) {
                        log_info("min-ready: no longer keeping label %s ready", keys[i]);
                        smap_remove(&l->minready_unchecked, keys[i]);
                        lease_release(smap_remove(&l->minready_leases, keys[i]));
                }
        free(keys);
        smap_clear(&wanted, NULL);
}
