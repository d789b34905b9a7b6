/* cleanup.c — the periodic cleanup (protocol.md §4.2 CleanupWorker).
 *
 * DESIGN. Every cleanup interval (60 s; POOLD_CLEANUP_INTERVAL_MS for tests):
 * reset lost requests (pending, nobody holds the request lock: allocated
 * nodes are unallocated — init/building ones become garbage for the delete
 * pass — and the request goes back to `requested`); delete request-lock dirs
 * older than 8 h whose request is gone; mark READY unallocated nodes older than
 * their label's max-ready-age and HOLD nodes past hold_expiration/max-hold-age
 * as `deleting`; and list each provider's servers on the workq: a server tagged
 * with our provider name whose node id is unknown, seen in two consecutive
 * passes, is deleted (leak), unless it is poold-builder's boot check of an
 * upload (PROVIDER_TAG_VERIFY: the builder deletes those); with clean-floating-ips / port-cleanup-interval,
 * the driver also removes unattached floating IPs and ports DOWN at two checks
 * an interval apart (Nodepool's _cleanupLeakedPorts; the driver keeps the state).
 *
 * Several launchers run this on one ZooKeeper. Each piece of work is split by
 * rendezvous hashing over the live pools (owner.c) so that normally one
 * launcher does it, and each is also safe when two do it at once (ownership
 * views differ for a moment when a launcher comes or goes):
 *   lost requests (key: request id, any pool) — a dead launcher's request
 *     locks vanish with its session; whoever owns the request takes its lock
 *     without waiting, re-reads it and resets it only if still `pending`,
 *     writing with the read version; nodes are unallocated under their locks.
 *   stale request locks (key: request id) — only directories whose request is
 *     gone and that are older than 8 h; deleting one twice is harmless.
 *   max-ready-age, hold expiry (key: node id, pools of its provider) — under
 *     the node's lock, re-read, state checked, version-checked write.
 *   leaks (key: provider, pools of that provider) — only the owner lists the
 *     cloud, so one launcher deletes a leaked server (a second delete of the
 *     same server gets -ENOENT, which providers report as done); a launcher
 *     forgets what it saw of a provider it does not own, so a new owner needs
 *     two passes of its own.
 *   empty node znodes (key: node id) — deleting one twice is harmless. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"
#include "stats.h"
#include "zk_lock.h"
#include "zk_update.h"

#define LOCK_CLEANUP_MS (8ULL * 3600 * 1000)

/* A lost request's allocated node: unallocated; an INIT one becomes garbage. */
static int unallocate_edit(struct node *nd, void *ud) {
        model_set_str(&nd->allocated_to, NULL);
        if (nd->state == NODE_STATE_INIT) node_set_state(nd, NODE_STATE_DELETING);
        return ZK_UPDATE_WRITE;
}

struct reset {
        struct launcher *l;
        const char *id;
        bool writing;
};

/* Still `pending` under its lock: unallocate every node allocated to it that
 * nobody holds, then back to `requested`. */
static int reset_edit(struct zk_update_record *rec, void *ud) {
        struct reset *rs = ud;
        struct launcher *l = rs->l;
        _cleanup_(node_request_freep) struct node_request *rq = NULL;
        struct model_error err;
        if (node_request_from_json(rec->data, rec->len, rs->id, &rq, &err) < 0) {
                log_warning("malformed request %s: %s", rec->path, err.msg);
                return -EBADMSG;
        }
        if (rq->state != NODE_REQUEST_STATE_PENDING) return ZK_UPDATE_NO_WRITE;
        size_t n;
        const char **keys = smap_keys(&l->nodes, &n);
        for (size_t i = 0; i < n; i++) {
                struct cnode *cn = smap_get(&l->nodes, keys[i]);
                if (!cn || !cn->node->allocated_to || strcmp(cn->node->allocated_to, rs->id) != 0) continue;
                if (cn->lock_contenders > 0 || smap_get(&l->held, keys[i])) continue;
                (void)zkrec_node_update(l, keys[i], NULL, unallocate_edit, NULL);
        }
        free(keys);
        model_strv_free(rq->nodes);
        rq->nodes = model_strv_new();
        node_request_set_state(rq, NODE_REQUEST_STATE_REQUESTED);
        int r = node_request_to_json(rq, &rec->new_data, &rec->new_len);
        if (r < 0) return r;
        rs->writing = true;
        return ZK_UPDATE_WRITE;
}

/* Blocking (zk_update_run), like the rest of this pass: the node updates run
 * inside the request's, under its lock. */
static void reset_lost(struct launcher *l, const char *id) {
        _cleanup_free_ char *path = npzk_request_path(id), *lpath = npzk_request_lock_path(id);
        struct reset rs = { .l = l, .id = id };
        struct zk_update_spec spec = { .path = path, .lock_path = lpath, .edit = reset_edit, .userdata = &rs };
        int r = zk_update_run(l->zk, &spec, NULL);
        if (!rs.writing) return;
        if (r < 0) log_warning_errno(r, "request %s: cannot reset: %m", id);
        else log_info("request %s was lost by its launcher: reset to requested", id);
}

static void lost_requests(struct launcher *l, const struct owners *o) {
        size_t n;
        const char **keys = smap_keys(&l->requests, &n);
        char **pending = xnew(char *, n + 1);
        size_t np = 0;
        for (size_t i = 0; i < n; i++) {
                struct creq *cr = smap_get(&l->requests, keys[i]);
                if (cr->req->state == NODE_REQUEST_STATE_PENDING && !smap_get(&l->handlers, keys[i]) &&
                    owners_mine(o, keys[i], NULL, NULL, NULL))
                        pending[np++] = xstrdup(keys[i]);
        }
        free(keys);
        for (size_t i = 0; i < np; i++) {
                _cleanup_free_ char *lpath = npzk_request_lock_path(pending[i]);
                if (zk_is_locked(l->zk, lpath) == 0) reset_lost(l, pending[i]);
                free(pending[i]);
        }
        free(pending);
}

void cleanup_lost_requests(struct launcher *l) {
        _cleanup_(owners_freep) struct owners *o = owners_snapshot(l);
        lost_requests(l, o);
}

/* The request-lock sweep: one listing, then one exists per directory whose
 * request is gone, all asynchronous (thousands of lock directories pile up in
 * 8 h; a round trip each must not block the loop). At most one sweep runs. */
struct lock_sweep {
        struct launcher *l;
        unsigned pending;
        int64_t now_ms, age_ms;
};

static void sweep_put(struct lock_sweep *sw) {
        if (--sw->pending > 0) return;
        sw->l->lock_sweep = NULL;
        free(sw);
}

static void on_lockdir_stat(struct zk *zk, const struct zk_result *res, void *ud) {
        struct lock_sweep *sw = ud;
        struct launcher *l = sw->l;
        const char *id = strrchr(res->path, '/') + 1;
        if (res->r == 0 && res->stat && sw->now_ms - res->stat->mtime >= sw->age_ms &&
            !smap_get(&l->requests, id) && !smap_get(&l->handlers, id) && !smap_get(&l->accepting, id)) {
                /* Rare (once per directory, 8 h after its request went): a few round trips. */
                if (zk_delete_recursive(l->zk, res->path) >= 0) log_info("deleted stale request lock %s", res->path);
        }
        sweep_put(sw);
}

static void on_lockdirs(struct zk *zk, const struct zk_result *res, void *ud) {
        struct lock_sweep *sw = ud;
        struct launcher *l = sw->l;
        _cleanup_(owners_freep) struct owners *o = res->r == 0 && res->n_children ? owners_snapshot(l) : NULL;
        for (size_t i = 0; res->r == 0 && i < res->n_children; i++) {
                if (smap_get(&l->requests, res->children[i]) || !owners_mine(o, res->children[i], NULL, NULL, NULL))
                        continue;
                _cleanup_free_ char *path = npzk_request_lock_path(res->children[i]);
                sw->pending++;
                (void)zk_aexists(l->zk, path, NULL, on_lockdir_stat, sw);
        }
        sweep_put(sw);
}

static void stale_locks(struct launcher *l) {
        if (l->lock_sweep) return; /* the previous one is still going */
        struct lock_sweep *sw = xnew(struct lock_sweep, 1);
        sw->l = l;
        sw->pending = 1;
        sw->now_ms = (int64_t)(model_now() * 1000);
        /* POOLD_STALE_LOCK_AGE_MS shortens the 8 h (tests). */
        const char *age = getenv("POOLD_STALE_LOCK_AGE_MS");
        sw->age_ms = age && *age ? strtoll(age, NULL, 10) : (int64_t)LOCK_CLEANUP_MS;
        l->lock_sweep = sw;
        (void)zk_aget_children(l->zk, NPZK_REQUEST_LOCKS, NULL, on_lockdirs, sw);
}

void cleanup_abort(struct launcher *l) {
        if (!l->lock_sweep) return;
        zk_cancel(l->zk, l->lock_sweep);
        free(l->lock_sweep);
        l->lock_sweep = NULL;
}

struct expiry {
        enum node_state state;
};

static int expire_edit(struct node *n, void *ud) {
        const struct expiry *e = ud;
        if (n->state != e->state || (e->state == NODE_STATE_READY && n->allocated_to)) return ZK_UPDATE_NO_WRITE;
        node_set_state(n, NODE_STATE_DELETING);
        return ZK_UPDATE_WRITE;
}

/* Mark an unlocked node `deleting` under its lock if it is still in STATE
 * (blocking, like the rest of this pass). */
static void expire_node(struct launcher *l, const char *id, enum node_state state, const char *why) {
        struct expiry e = { .state = state };
        if (zkrec_node_update(l, id, NULL, expire_edit, &e) == 1) log_info("node %s: %s, deleting", id, why);
}

static void ages(struct launcher *l, const struct owners *o) {
        size_t n;
        const char **keys = smap_keys(&l->nodes, &n);
        double now = model_now();
        char **ready = xnew(char *, n + 1), **held = xnew(char *, n + 1);
        size_t nr = 0, nh = 0;
        for (size_t i = 0; i < n; i++) {
                const struct cnode *cn = smap_get(&l->nodes, keys[i]);
                const struct node *nd = cn->node;
                if (cn->lock_contenders > 0 || smap_get(&l->held, keys[i])) continue;
                struct launcher_provider *pv = nd->provider ? prov_by_name(l, nd->provider) : NULL;
                if (!pv || !owners_mine(o, keys[i], nd->provider, NULL, NULL)) continue;
                /* Static nodes never age out (their driver says): they are the configured machines themselves. */
                if (nd->state == NODE_STATE_READY && !nd->allocated_to && nd->type[0] && pv->drv->max_ready_age) {
                        const struct config_label *lab = config_find_label(l->cfg, nd->type[0]);
                        if (lab && lab->max_ready_age > 0 && now - nd->state_time > (double)lab->max_ready_age)
                                ready[nr++] = xstrdup(keys[i]);
                } else if (nd->state == NODE_STATE_HOLD) {
                        double age = now - nd->state_time;
                        bool expired = nd->hold_expiration_set && nd->hold_expiration > 0 &&
                                       age > (double)nd->hold_expiration;
                        expired |= l->cfg->max_hold_age > 0 && age > (double)l->cfg->max_hold_age;
                        if (expired) held[nh++] = xstrdup(keys[i]);
                }
        }
        free(keys);
        for (size_t i = 0; i < nr; i++) {
                expire_node(l, ready[i], NODE_STATE_READY, "older than max-ready-age");
                free(ready[i]);
        }
        for (size_t i = 0; i < nh; i++) {
                expire_node(l, held[i], NODE_STATE_HOLD, "hold expired");
                free(held[i]);
        }
        free(ready);
        free(held);
}

struct leak_job {
        struct launcher *l;
        struct launcher_provider *prov;
        struct provider_server **servers;
        size_t n;
        int r;
        bool abandoned;
};

static void leak_work(void *ud) {
        struct leak_job *j = ud;
        struct provider *p = j->prov->provider;
        j->r = p->ops->list(p, &j->servers, &j->n, NULL);
}

struct leak_del {
        struct launcher_provider *prov;
        char *external_id;
        int r;
};

static void leak_del_work(void *ud) {
        struct leak_del *d = ud;
        d->r = d->prov->provider->ops->delete(d->prov->provider, d->external_id, NULL);
}

static void leak_del_done(void *ud, int status) {
        struct leak_del *d = ud;
        if (status >= 0 && d->r >= 0) stats_leaked(d->prov->l, d->prov->name, "instances", 1);
        d->prov->refs--;
        free(d->external_id);
        free(d);
}

static void leak_done(void *ud, int status) {
        struct leak_job *j = ud;
        struct launcher *l = j->l;
        j->prov->refs--;
        if (status >= 0 && j->r >= 0 && !l->stopping) {
                for (size_t i = 0; i < j->n; i++) {
                        const struct provider_server *s = j->servers[i];
                        const char *tp = provider_server_tag(s, "nodepool_provider_name");
                        const char *nid = provider_server_tag(s, "nodepool_node_id");
                        if (!tp || strcmp(tp, j->prov->name) != 0 || !s->external_id) continue;
                        if (nid && smap_get(&l->nodes, nid)) continue;
                        /* poold-builder's boot check of an upload: the builder deletes its own. */
                        if (provider_server_tag(s, PROVIDER_TAG_VERIFY)) continue;
                        _cleanup_free_ char *key = xasprintf("%s/%s", j->prov->name, s->external_id);
                        if (smap_get(&l->leak_seen, key)) {
                                log_warning("leaked instance %s of provider %s (node %s unknown): deleting",
                                            s->external_id, j->prov->name, nid ? nid : "?");
                                struct leak_del *d = xnew(struct leak_del, 1);
                                d->prov = j->prov;
                                d->prov->refs++;
                                d->external_id = xstrdup(s->external_id);
                                if (workq_submit(l->wq, leak_del_work, leak_del_done, d) < 0) leak_del_done(d, -EAGAIN);
                        } else {
                                log_info("instance %s of provider %s has no node (%s): deleting it if still "
                                         "unknown at the next cleanup", s->external_id, j->prov->name, nid ? nid : "?");
                                smap_put(&l->leak_seen_next, key, (void *)1);
                        }
                }
                /* Only what was seen in this pass counts as "seen once" for the next. */
                const char **keys;
                size_t nk;
                keys = smap_keys(&l->leak_seen, &nk);
                for (size_t i = 0; i < nk; i++)
                        if (strncmp(keys[i], j->prov->name, strlen(j->prov->name)) == 0 &&
                            keys[i][strlen(j->prov->name)] == '/')
                                smap_remove(&l->leak_seen, keys[i]);
                free(keys);
                keys = smap_keys(&l->leak_seen_next, &nk);
                for (size_t i = 0; i < nk; i++) smap_put(&l->leak_seen, keys[i], (void *)1);
                free(keys);
                smap_clear(&l->leak_seen_next, NULL);
        }
        provider_server_array_free(j->servers, j->n);
        free(j);
}

/* Forget which of PV's servers we saw once (we do not own its leak pass now). */
static void leak_forget(struct launcher *l, const struct launcher_provider *pv) {
        size_t nk, len = strlen(pv->name);
        const char **keys = smap_keys(&l->leak_seen, &nk);
        for (size_t i = 0; i < nk; i++)
                if (strncmp(keys[i], pv->name, len) == 0 && keys[i][len] == '/') smap_remove(&l->leak_seen, keys[i]);
        free(keys);
}

/* Leaked floating IPs and ports (clean-floating-ips, port-cleanup-interval). */
struct net_job {
        struct launcher_provider *prov;
        bool fips;
        long long port_interval;
        size_t n_fips, n_ports;
        int r;
        char *msg;
};

static void net_work(void *ud) {
        struct net_job *j = ud;
        struct provider *p = j->prov->provider;
        j->r = p->ops->cleanup_network(p, j->fips, j->port_interval, &j->n_fips, &j->n_ports, &j->msg);
}

static void net_done(void *ud, int status) {
        struct net_job *j = ud;
        if (status >= 0 && j->r < 0)
                log_warning("provider %s: cleanup of leaked floating IPs and ports: %s", j->prov->name,
                            j->msg ? j->msg : strerror(-j->r));
        if (status >= 0) {
                if (j->n_fips) log_info("provider %s: deleted %zu leaked floating IP(s)", j->prov->name, j->n_fips);
                if (j->n_ports) log_info("provider %s: deleted %zu leaked DOWN port(s)", j->prov->name, j->n_ports);
                stats_leaked(j->prov->l, j->prov->name, "floatingips", j->n_fips);
                stats_leaked(j->prov->l, j->prov->name, "ports", j->n_ports);
        }
        j->prov->refs--;
        free(j->msg);
        free(j);
}

static void net_leaks(struct launcher *l, struct launcher_provider *pv) {
        if (!pv->cp || !pv->provider->ops->cleanup_network ||
            (!pv->cp->clean_floating_ips && pv->cp->port_cleanup_interval <= 0))
                return;
        struct net_job *j = xnew(struct net_job, 1);
        j->prov = pv;
        j->fips = pv->cp->clean_floating_ips;
        j->port_interval = pv->cp->port_cleanup_interval;
        pv->refs++;
        if (workq_submit(l->wq, net_work, net_done, j) < 0) {
                pv->refs--;
                free(j);
        }
}

static void leaks(struct launcher *l, const struct owners *o) {
        for (size_t i = 0; i < l->n_provs; i++) {
                struct launcher_provider *pv = l->provs[i];
                if (pv->retired || !pv->drv->leak_cleanup || !pv->provider) continue;
                if (!owners_mine(o, pv->name, pv->name, NULL, NULL)) {
                        leak_forget(l, pv);
                        continue;
                }
                struct leak_job *j = xnew(struct leak_job, 1);
                j->l = l;
                j->prov = pv;
                pv->refs++;
                if (workq_submit(l->wq, leak_work, leak_done, j) < 0) {
                        pv->refs--;
                        free(j);
                }
                net_leaks(l, pv);
        }
}

struct empty_scan {
        const struct owners *owners;
        char **v;
        size_t n, cap;
};

static void empty_fn(const struct zk_cache_node *zn, void *ud) {
        struct empty_scan *e = ud;
        if (zn->depth != 1 || zn->len != 0 || zn->lock_contenders > 0) return;
        if (!owners_mine(e->owners, zn->name, NULL, NULL, NULL)) return;
        if (e->n == e->cap) {
                e->cap = e->cap ? e->cap * 2 : 8;
                e->v = xrealloc(e->v, e->cap * sizeof *e->v);
        }
        e->v[e->n++] = xstrdup(zn->path);
}

/* Node znodes without data (re-created by a late lock attempt): remove. */
static void empty_nodes(struct launcher *l, const struct owners *o) {
        struct empty_scan e = { .owners = o };
        zk_cache_foreach(l->node_cache, empty_fn, &e);
        for (size_t i = 0; i < e.n; i++) {
                if (zk_delete_recursive(l->zk, e.v[i]) >= 0) log_debug("removed empty node znode %s", e.v[i]);
                free(e.v[i]);
        }
        free(e.v);
}

void cleanup_run(struct launcher *l) {
        if (!caches_synced(l) || l->stopping || !zk_is_connected(l->zk)) return;
        _cleanup_(owners_freep) struct owners *o = owners_snapshot(l);
        lost_requests(l, o);
        stale_locks(l);
        ages(l, o);
        empty_nodes(l, o);
        leaks(l, o);
}
