/* owner.c — which launcher does a piece of shared work.
 *
 * DESIGN. Several launchers may run on one config and one ZooKeeper; ZooKeeper
 * is all they share. Work that every launcher could do is split by rendezvous
 * hashing (rendezvous.h, as Zuul's launcher does) over the live pool workers of
 * the component registry (/nodepool/components/pool, ephemeral: a dead
 * launcher's pools vanish with its session), restricted to the pools that can
 * do the work (same provider, pool or label). The launcher whose pool scores
 * highest owns the key. Our own active pools always count, also before the
 * cache shows their components, so a lone launcher owns everything at once.
 * Views of the registry differ for a moment when a launcher comes or goes, so
 * two launchers may both believe they own a key: ownership is only ever used
 * to avoid duplicate work, never alone for safety — every decision it guards
 * is also protected by a ZooKeeper lock on the object, a shared lock, or a
 * version-checked write (see the DESIGN comments of static.c, minready.c,
 * cleanup.c and of the launch lease below). A launcher with two pools gets two tickets; that only skews the
 * split.
 *
 * Audit: every decision two launchers could both make, and what makes it safe.
 *   accept / decline a request   request lock, re-read, version-checked write
 *                                (request.c); failed only when every registered
 *                                pool declined
 *   reuse a ready node           node lock, re-read, version-checked write
 *   launch a new node (limits)   launch lease per cloud provider (below)
 *   delete a node, unallocate    node lock, re-read (delete.c)
 *   static registration          provider owner + shared registration lock +
 *                                fresh listing (static.c)
 *   static liveness failure      the node's lock, held since the reuse
 *   min-ready requests           lease per label (minready.c)
 *   lost requests, stale locks,  split by ownership; request or node lock,
 *   ages, leaks, empty znodes    re-read, or idempotent (cleanup.c)
 * Not covered: tenant-resource-limits count a tenant's nodes over all
 * providers, and different launchers may launch for different providers: two
 * can each let a tenant take the last node (Nodepool has the same race). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"
#include "rendezvous.h"
#include "zk_lock.h"

#define LEASE_RETRY_MS 200        /* a busy launch lease is tried again after this */

struct owner_pool {
        char *id, *provider, *pool;
        json_t *labels;                 /* supported_labels (a reference) or NULL */
        bool ours;
};

struct owners {
        struct owner_pool *v;
        size_t n;
        const char **ids;               /* scratch for owners_mine() */
};

static bool have(const struct owners *o, const char *id) {
        for (size_t i = 0; i < o->n; i++)
                if (strcmp(o->v[i].id, id) == 0) return true;
        return false;
}

static void add(struct owners *o, const char *id, const char *provider, const char *pool, json_t *labels,
                bool ours) {
        struct owner_pool *p = &o->v[o->n++];
        p->id = xstrdup(id);
        p->provider = provider ? xstrdup(provider) : NULL;
        p->pool = pool ? xstrdup(pool) : NULL;
        p->labels = labels ? json_incref(labels) : NULL;
        p->ours = ours;
}

struct owners *owners_snapshot(struct launcher *l) {
        size_t nc = 0;
        json_t **comps = caches_pool_components(l, &nc);
        struct owners *o = xnew(struct owners, 1);
        o->v = xnew(struct owner_pool, nc + l->n_pools + 1);
        for (size_t i = 0; i < l->n_pools; i++) {
                struct pool *p = l->pools[i];
                if (p->retired || !p->component) continue;
                add(o, p->id, p->provider_name, p->name, component_get(p->component, "supported_labels"), true);
        }
        for (size_t i = 0; i < nc; i++) {
                const char *id = json_string_value(json_object_get(comps[i], "id"));
                if (id && !have(o, id))
                        add(o, id, json_string_value(json_object_get(comps[i], "provider_name")),
                            json_string_value(json_object_get(comps[i], "name")),
                            json_object_get(comps[i], "supported_labels"), false);
                json_decref(comps[i]);
        }
        free(comps);
        o->ids = xnew(const char *, o->n + 1);
        return o;
}

void owners_free(struct owners *o) {
        if (!o) return;
        for (size_t i = 0; i < o->n; i++) {
                free(o->v[i].id);
                free(o->v[i].provider);
                free(o->v[i].pool);
                json_decref(o->v[i].labels);
        }
        free(o->v);
        free(o->ids);
        free(o);
}

static bool offers(const struct owner_pool *p, const char *label) {
        size_t i;
        json_t *v;
        if (!json_is_array(p->labels)) return false;
        json_array_foreach(p->labels, i, v)
                if (json_is_string(v) && strcmp(json_string_value(v), label) == 0) return true;
        return false;
}

static bool same(const char *want, const char *have) { return !want || (have && strcmp(want, have) == 0); }

bool owners_mine(const struct owners *o, const char *key, const char *provider, const char *pool, const char *label) {
        for (size_t i = 0; i < o->n; i++) {
                const struct owner_pool *p = &o->v[i];
                bool fits = same(provider, p->provider) && same(pool, p->pool) && (!label || offers(p, label));
                o->ids[i] = fits ? p->id : NULL;
        }
        long k = rendezvous_owner(o->ids, o->n, key);
        /* Nobody known can do it: doing it ourselves is safe (see DESIGN). */
        return k < 0 || o->v[k].ours;
}

static char *escape(const char *name) {
        size_t n = strlen(name);
        char *esc = xnew(char, 3 * n + 2), *w = esc;
        if (name[0] == '.') *w++ = '%', *w++ = '2', *w++ = 'E', name++;
        for (const char *s = name; *s; s++) {
                if (*s == '/' || *s == '%') w += sprintf(w, "%%%02X", (unsigned char)*s);
                else *w++ = *s;
        }
        *w = 0;
        return esc;
}

char *owners_lock_path(const char *kind, const char *name, const char *sub) {
        /* Names come from the config: keep each one path component. */
        _cleanup_free_ char *a = escape(name), *b = sub ? escape(sub) : NULL;
        return npzk_poold_lock_path(kind, a, b);
}

char *owners_lock_id(struct launcher *l) { return xasprintf("%s-%d", l->hostname, (int)getpid()); }

void owners_launch_lease_release(struct launcher_provider *pv) {
        pv->launch_ok = false;
        pv->lease_unchecked = false;
        if (!pv->lease) return;
        bool held = !pv->lease_pending;
        pv->lease_pending = false;
        if (held) zk_lock_release_async(pv->lease);
        zk_lock_free(pv->lease); /* cancels an attempt in flight */
        pv->lease = NULL;
        if (held) log_info("provider %s: no longer launching for it", pv->name);
}

static void on_lease(struct zk_lock *lock, int result, void *ud) {
        struct launcher_provider *pv = ud;
        pv->lease_pending = false;
        if (result == 1) {
                pv->lease_unchecked = true;
                log_info("provider %s: this launcher launches for it now", pv->name);
                launcher_kick(pv->l);
                return;
        }
        if (result < 0) log_debug_errno(result, "provider %s: launch lease: %m", pv->name);
        pv->lease = NULL;
        zk_lock_free(lock);
}

bool owners_declined_by_sibling(const struct owners *o, char *const *declined_by, const char *provider,
                                const char *pool) {
        for (size_t i = 0; i < o->n; i++) {
                const struct owner_pool *p = &o->v[i];
                if (!p->ours && same(provider, p->provider) && same(pool, p->pool) &&
                    model_strv_contains(declined_by, p->id))
                        return true;
        }
        return false;
}

/* Every node of PV in ZooKeeper now is in our cache: 1, 0 not yet, <0. */
static int nodes_seen(struct launcher *l, const char *provider) {
        char **children = NULL;
        size_t n = 0;
        int r = zk_get_children(l->zk, NPZK_NODES, &children, &n);
        if (r == -ENOENT) return 1;
        if (r < 0) return r;
        int seen = 1;
        for (size_t i = 0; i < n && seen; i++) {
                if (smap_get(&l->nodes, children[i]) || smap_get(&l->gone, children[i])) continue;
                _cleanup_free_ char *path = npzk_node_path(children[i]), *data = NULL;
                size_t len;
                struct node *nd = NULL;
                struct model_error err;
                /* Not in the cache: gone meanwhile, not a node, or not yet seen. */
                if (zk_get(l->zk, path, &data, &len, NULL) < 0 || len == 0 ||
                    node_from_json(data, len, children[i], &nd, &err) < 0)
                        continue;
                if (nd->provider && strcmp(nd->provider, provider) == 0) seen = 0;
                node_free(nd);
        }
        zk_strv_free(children);
        return seen;
}

/* DESIGN (launches). Whether one more node fits a pool (max-servers, cores,
 * ram, the cloud's quota, max-concurrency) is decided from the node cache.
 * Two launchers deciding for one provider at once each miss the other's
 * newest nodes, and together exceed the limits. So one launcher at a time
 * launches for a cloud provider: the holder of its launch lease
 * (NPZK_POOLD_LOCKS/launch/<provider>), tried for by the provider's
 * owner and let go by a launcher that no longer owns it. Other launchers'
 * pools of that provider still decline what they can never serve and reuse
 * ready nodes (under the node's lock), but accept nothing new, and give back
 * a request they hold that would need a new node (request.c: back to
 * `requested`, our pool id not added to declined_by). A new holder
 * launches only once its cache shows every node of the provider that
 * ZooKeeper has: the predecessor's creates were sent before its release. */
void owners_launch_lease_sync(struct launcher_provider *pv, const struct owners *o) {
        struct launcher *l = pv->l;
        if (!pv->drv->launch_lease) {
                pv->launch_ok = true;
                return;
        }
        if (pv->retired || !owners_mine(o, pv->name, pv->name, NULL, NULL)) {
                owners_launch_lease_release(pv);
                return;
        }
        if (pv->lease && !pv->lease_pending && !zk_lock_is_held(pv->lease)) {
                /* Lost with an expired session. */
                zk_lock_free(pv->lease);
                pv->lease = NULL;
        }
        pv->launch_ok = false;
        /* Asynchronous, and nothing while disconnected: the loop must not wait for ZooKeeper. */
        if (!pv->lease) {
                uint64_t now = loop_now_ms();
                if (now < pv->lease_next_ms || !zk_is_connected(l->zk)) return;
                pv->lease_next_ms = now + LEASE_RETRY_MS;
                _cleanup_free_ char *path = owners_lock_path("launch", pv->name, NULL), *id = owners_lock_id(l);
                if (zk_lock_new(l->zk, path, id, &pv->lease) < 0) return;
                if (zk_lock_try_async(pv->lease, on_lease, pv) < 0) {
                        zk_lock_free(pv->lease);
                        pv->lease = NULL;
                        return;
                }
                pv->lease_pending = true;
                return;
        }
        if (pv->lease_pending) return;
        if (pv->lease_unchecked && zk_is_connected(l->zk) && nodes_seen(l, pv->name) == 1) pv->lease_unchecked = false;
        pv->launch_ok = !pv->lease_unchecked;
}
