/* pool.c — providers and provider-pool workers.
 *
 * DESIGN. One struct launcher_provider per configured provider (the driver instance, shared
 * by its pools) and one struct pool per provider-pool, each registered as a
 * `pool` component (protocol.md §1.7) so Zuul and other launchers see it and a
 * request fails once every registered pool declined. On reload a provider whose
 * configuration is unchanged keeps its driver and pools (pointers repointed into
 * the new config); a changed or removed one is retired: its components go away at
 * once, the objects stay until stop so in-flight launches finish safely. A
 * provider's driver kind (struct pool_driver) is chosen here, once, when it is
 * opened; nothing else asks which driver a provider has. */
#include <string.h>

#include "alloc.h"
#include "json_util.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"

static json_t *labels_json(const struct config_pool *cpool) {
        json_t *a = json_util_must(json_array());
        for (size_t i = 0; i < cpool->n_labels; i++)
                json_array_append_new(a, json_util_must(json_string(cpool->labels[i].name)));
        /* Static pools offer their nodes' labels (each once). */
        for (size_t i = 0; i < cpool->n_nodes; i++)
                for (size_t k = 0; k < cpool->nodes[i].labels.n; k++) {
                        const char *name = cpool->nodes[i].labels.items[k];
                        bool dup = false;
                        for (size_t j = 0; j < json_array_size(a) && !dup; j++)
                                dup = strcmp(json_string_value(json_array_get(a, j)), name) == 0;
                        if (!dup) json_array_append_new(a, json_util_must(json_string(name)));
                }
        return a;
}

static void pool_component_update(struct pool *p) {
        json_t *v;
        component_set(p->component, "name", v = json_string(p->name));
        json_decref(v);
        component_set(p->component, "provider_name", v = json_string(p->provider_name));
        json_decref(v);
        component_set(p->component, "id", v = json_string(p->id));
        json_decref(v);
        component_set(p->component, "supported_labels", v = labels_json(p->cpool));
        json_decref(v);
        component_set(p->component, "priority", v = json_integer(p->cpool->priority));
        json_decref(v);
        component_set(p->component, "paused", v = json_boolean(p->paused));
        json_decref(v);
        component_set_state(p->component, p->paused ? "paused" : "running");
}

static struct pool *pool_new(struct launcher *l, struct launcher_provider *pv, const struct config_provider *cp,
                             const struct config_pool *cpool) {
        struct pool *p = xnew(struct pool, 1);
        char hex[33] = "00000000000000000000000000000000";
        (void)model_uuid4_hex(hex);
        p->l = l;
        p->prov = pv;
        p->cp = cp;
        p->cpool = cpool;
        p->provider_name = xstrdup(cp->name);
        p->name = xstrdup(cpool->name);
        p->id = xasprintf("%s-PoolWorker.%s-%s-%s", l->hostname, cp->name, cpool->name, hex);
        int r = component_new(l->zk, "pool", l->hostname, POOLD_VERSION, &p->component);
        if (r >= 0) {
                pool_component_update(p);
                r = component_register(p->component);
        }
        if (r < 0) log_error_errno(r, "pool %s: cannot register its component: %m", p->id);
        else log_info("pool %s registered", p->id);
        return p;
}

static void pool_retire(struct pool *p) {
        if (p->retired) return;
        p->retired = true;
        if (p->component) {
                int r = component_unregister(p->component);
                if (r < 0) log_warning_errno(r, "pool %s: cannot unregister: %m", p->id);
        }
        component_free(p->component);
        p->component = NULL;
        p->cp = NULL;
        p->cpool = NULL;
        log_info("pool %s retired", p->id);
}

void pools_sync(struct launcher *l) {
        const struct config *cfg = l->cfg;
        /* Providers: keep unchanged ones, retire others. */
        for (size_t i = 0; i < l->n_provs; i++) {
                struct launcher_provider *pv = l->provs[i];
                if (pv->retired) continue;
                const struct config_provider *ncp = config_find_provider(cfg, pv->name);
                if (ncp && pv->cp && config_provider_equal(pv->cp, ncp)) {
                        pv->cp = (struct config_provider *)ncp;
                        continue;
                }
                pv->retired = true;
                pv->cp = NULL;
                owners_launch_lease_release(pv);
                for (size_t k = 0; k < l->n_pools; k++)
                        if (l->pools[k]->prov == pv) pool_retire(l->pools[k]);
        }
        for (size_t i = 0; i < cfg->n_providers; i++) {
                const struct config_provider *cp = &cfg->providers[i];
                struct launcher_provider *pv = prov_by_name(l, cp->name);
                if (pv) {
                        /* Repoint surviving pools into the new config. */
                        for (size_t k = 0; k < l->n_pools; k++) {
                                struct pool *p = l->pools[k];
                                if (p->prov != pv || p->retired) continue;
                                p->cp = cp;
                                p->cpool = config_find_pool(cp, p->name);
                        }
                        continue;
                }
                pv = xnew(struct launcher_provider, 1);
                pv->l = l;
                pv->name = xstrdup(cp->name);
                pv->cp = (struct config_provider *)cp;
                pv->drv = pool_driver_for(cp->driver);
                pv->opened = pv->drv->open(pv) >= 0;
                l->provs = xrealloc(l->provs, (l->n_provs + 1) * sizeof *l->provs);
                l->provs[l->n_provs++] = pv;
                if (!pv->opened) continue;
                for (size_t k = 0; k < cp->n_pools; k++) {
                        l->pools = xrealloc(l->pools, (l->n_pools + 1) * sizeof *l->pools);
                        l->pools[l->n_pools++] = pool_new(l, pv, cp, &cp->pools[k]);
                        (void)quota_ready(l->pools[l->n_pools - 1]); /* fetch the quota before requests come */
                }
        }
}

const struct pool_driver *pool_driver_for(enum config_driver d) {
        /* Any other driver is a cloud one: its open says whether provider_ops has it. */
        return d == CONFIG_DRIVER_STATIC       ? &pool_driver_static
               : d == CONFIG_DRIVER_METASTATIC ? &pool_driver_metastatic
                                               : &pool_driver_cloud;
}

void pools_drivers_sync(struct launcher *l) {
        if (!caches_synced(l)) return;
        _cleanup_(owners_freep) struct owners *o = NULL;
        for (size_t i = 0; i < l->n_provs; i++) {
                struct launcher_provider *pv = l->provs[i];
                if (pv->retired || !pv->cp || !pv->opened || !pv->drv->sync) continue;
                if (!o) o = owners_snapshot(l);
                pv->drv->sync(pv, o);
        }
}

void pools_forget_requests(struct launcher *l) {
        for (size_t i = 0; i < l->n_provs; i++)
                if (l->provs[i]->drv->forget_requests) l->provs[i]->drv->forget_requests(l->provs[i]);
}

void pools_free_all(struct launcher *l) {
        for (size_t i = 0; i < l->n_pools; i++) {
                struct pool *p = l->pools[i];
                pool_retire(p);
                free(p->provider_name);
                free(p->name);
                free(p->id);
                free(p->pause_reason);
                free(p);
        }
        free(l->pools);
        l->pools = NULL;
        l->n_pools = 0;
        for (size_t i = 0; i < l->n_provs; i++) {
                owners_launch_lease_release(l->provs[i]);
                l->provs[i]->drv->close(l->provs[i]);
                free(l->provs[i]->down_reason);
                provider_strv_free(l->provs[i]->azs, l->provs[i]->n_azs);
                free(l->provs[i]->name);
                free(l->provs[i]);
        }
        free(l->provs);
        l->provs = NULL;
        l->n_provs = 0;
}

bool pool_has_label(const struct pool *p, const char *label) {
        if (!p->cpool) return false;
        return p->prov->drv->has_label(p, label);
}

const struct config_pool_label *pool_find_label(const struct pool *p, const char *label) {
        if (!p->cpool) return NULL;
        for (size_t i = 0; i < p->cpool->n_labels; i++)
                if (strcmp(p->cpool->labels[i].name, label) == 0) return &p->cpool->labels[i];
        return NULL;
}

void pool_set_paused(struct pool *p, bool paused, const char *reason) {
        if (p->paused == paused) {
                /* Still paused, maybe for another reason now (the web app shows it). */
                if (paused && reason && (!p->pause_reason || strcmp(p->pause_reason, reason) != 0)) {
                        free(p->pause_reason);
                        p->pause_reason = xstrdup(reason);
                        log_info("pool %s paused: %s", p->id, reason);
                }
                return;
        }
        p->paused = paused;
        free(p->pause_reason);
        p->pause_reason = xstrdup(reason);
        if (paused) log_info("pool %s paused: %s", p->id, reason ? reason : "at quota");
        else log_info("pool %s unpaused", p->id);
        if (p->component) {
                pool_component_update(p);
                int r = component_update(p->component);
                if (r < 0) log_warning_errno(r, "pool %s: cannot update its component: %m", p->id);
        }
}

struct pool *pool_by_id(struct launcher *l, const char *id) {
        for (size_t i = 0; i < l->n_pools; i++)
                if (!l->pools[i]->retired && strcmp(l->pools[i]->id, id) == 0) return l->pools[i];
        return NULL;
}

struct launcher_provider *prov_by_name(struct launcher *l, const char *name) {
        for (size_t i = 0; i < l->n_provs; i++)
                if (!l->provs[i]->retired && strcmp(l->provs[i]->name, name) == 0) return l->provs[i];
        return NULL;
}

bool pools_all_declined(struct launcher *l, char *const *declined_by) {
        for (size_t i = 0; i < l->n_pools; i++)
                if (!l->pools[i]->retired && l->pools[i]->component &&
                    !model_strv_contains(declined_by, l->pools[i]->id))
                        return false;
        size_t n = 0;
        json_t **comps = caches_pool_components(l, &n);
        bool all = true;
        for (size_t i = 0; i < n; i++) {
                const char *id = json_string_value(json_object_get(comps[i], "id"));
                if (id && !model_strv_contains(declined_by, id)) all = false;
                json_decref(comps[i]);
        }
        free(comps);
        return all;
}

const char *pools_foreign_label(struct launcher *l, char *const *labels) {
        for (size_t i = 0; labels && labels[i]; i++)
                if (config_label_foreign_only(l->cfg, labels[i])) return labels[i];
        return NULL;
}
