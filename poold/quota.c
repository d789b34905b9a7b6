/* quota.c — pool limits, provider quota and tenant-resource-limits (protocol.md §4.2).
 *
 * DESIGN. Usage is never recounted here: caches.c keeps per-pool, per-provider
 * and per-tenant sums as nodes come and go. A provider's limits come from its
 * driver (ops.quota) together with ops.list on a worker, cached for 5 minutes
 * like Nodepool's quota cache; servers the list shows that are not nodes we
 * know (someone else's, or leaks) are "unmanaged" and reduce what we may use.
 * A stale cache keeps being used while a refresh runs; only -EDQUOT from the
 * cloud drops it (the pool then waits for fresh numbers) and backs off a
 * little, so a cloud that keeps refusing does not make us churn nodes.
 * Tenant limits count every node in ZooKeeper carrying the tenant's name.
 * The same job reads the cloud's availability zones (ops.availability_zones)
 * for requests of pools that name none: such a pool waits for them as for the
 * quota; a cloud that will not say has none (openstacksdk: an empty list).
 *
 * Volumes (issue 15): a boot-from-volume node costs a volume of its label's
 * volume-size (quota_label_cost); the cloud's own volume count (Cinder's used
 * totals) less our nodes' volumes is the volumes of others, which make a
 * request wait, never decline it, and are re-read every few seconds while one
 * waits on them (the count lags our deletes).
 * A cloud that cannot be reached or refuses our credentials (-EHOSTDOWN,
 * -EACCES, from any call) marks the provider down: quota_check() then says so,
 * so its pools pause and requests wait (none is failed for it), and the quota
 * call doubles as the probe, retried with back-off until the cloud answers. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"

#define QUOTA_CACHE_MS (5ULL * 60 * 1000)
/* Cinder's used totals lag our deletes (Nova deletes a node's volume after its
 * server): while a request waits on volumes the cloud counts as not ours, they
 * are read again this often rather than every 5 minutes. */
#define VOLUME_RECHECK_MS 5000ULL
#define QUOTA_BACKOFF_MS 2000
#define QUOTA_BACKOFF_MAX_MS 60000
#define DOWN_BACKOFF_MIN_MS 1000
#define DOWN_BACKOFF_MAX_MS 30000

struct quota_job {
        struct launcher *l;
        struct launcher_provider *pv;
        struct provider_limits limits;
        struct provider_server **servers;
        size_t n;
        int r;
        char *msg;
        bool azs_read;                  /* the driver has the op, and it was called */
        int azs_r;
        char **azs;
        size_t n_azs;
        char *azs_msg;
};

static void quota_work(void *ud) {
        struct quota_job *j = ud;
        struct provider *p = j->pv->provider;
        j->r = p->ops->quota ? p->ops->quota(p, &j->limits, &j->msg) : -EOPNOTSUPP;
        if (j->r == -EOPNOTSUPP) {
                j->limits = (struct provider_limits){ .max_instances = -1, .max_cores = -1, .max_ram_mib = -1,
                                                      .free_ram_mib = -1, .max_volumes = -1, .max_volume_gb = -1 };
                j->r = 0;
        }
        if (j->r >= 0 && p->ops->list) {
                free(j->msg);
                j->msg = NULL;
                int r = p->ops->list(p, &j->servers, &j->n, &j->msg);
                if (r < 0) j->n = 0; /* unmanaged usage unknown: count none */
                if (quota_cloud_down_error(r)) j->r = r; /* the probe failed after all */
        }
        if (!quota_cloud_down_error(j->r) && p->ops->availability_zones) {
                j->azs_read = true;
                j->azs_r = p->ops->availability_zones(p, &j->azs, &j->n_azs, &j->azs_msg);
                if (quota_cloud_down_error(j->azs_r)) j->r = j->azs_r;
        }
}

/* The zones read by J become PV's (none when the cloud would not say). */
static void azs_update(struct launcher_provider *pv, struct quota_job *j) {
        if (j->azs_read && j->azs_r < 0) {
                if (!pv->azs_known || pv->n_azs)
                        log_warning("provider %s: cannot list its availability zones (%s): the cloud places servers",
                                    pv->name, j->azs_msg ? j->azs_msg : strerror(-j->azs_r));
                j->n_azs = 0;
        }
        provider_strv_free(pv->azs, pv->n_azs);
        pv->azs = j->azs_r >= 0 ? TAKE_PTR(j->azs) : NULL;
        pv->n_azs = j->azs_r >= 0 ? j->n_azs : 0;
        pv->azs_known = true;
}

static void quota_done(void *ud, int status) {
        struct quota_job *j = ud;
        struct launcher *l = j->l;
        struct launcher_provider *pv = j->pv;
        pv->refs--;
        pv->quota_fetching = false;
        if (status >= 0 && quota_cloud_down_error(j->r) && !l->stopping) {
                quota_cloud_down(pv, j->r, j->msg);
        } else if (status >= 0 && j->r >= 0 && !l->stopping) {
                quota_cloud_up(pv);
                struct usage un = {};
                for (size_t i = 0; i < j->n; i++) {
                        const struct provider_server *s = j->servers[i];
                        const char *tp = provider_server_tag(s, "nodepool_provider_name");
                        const char *nid = provider_server_tag(s, "nodepool_node_id");
                        if (tp && strcmp(tp, pv->name) == 0 && nid && smap_get(&l->nodes, nid)) continue;
                        un.servers++;
                        un.cores += s->resources.cores;
                        un.ram += s->resources.ram_mib;
                }
                azs_update(pv, j);
                /* Volumes: the cloud's own count (Cinder's used totals) less what our
                 * nodes account for, so volumes of other users and unattached ones
                 * count too (Nodepool counts only volumes of unmanaged servers). A
                 * node still building may not have its volume yet: never below 0. */
                const struct usage *pu = caches_usage_prov(l, pv->name);
                un.volumes = MAX(0, (int64_t)j->limits.used_volumes - pu->volumes);
                un.volume_gb = MAX(0, (int64_t)j->limits.used_volume_gb - pu->volume_gb);
                pv->limits = j->limits;
                pv->unmanaged = un;
                pv->limits_valid = true;
                pv->limits_time_ms = loop_now_ms();
                log_debug("provider %s quota: instances %lld cores %lld ram %lld volumes %lld volume-gb %lld; "
                          "unmanaged %" PRId64 " servers %" PRId64 " volumes",
                          pv->name, j->limits.max_instances, j->limits.max_cores, j->limits.max_ram_mib,
                          j->limits.max_volumes, j->limits.max_volume_gb, un.servers, un.volumes);
                launcher_kick(l);
        } else if (!l->stopping) {
                log_warning("provider %s: cannot read its quota: %s", pv->name,
                            j->msg ? j->msg : strerror(-(status < 0 ? status : j->r)));
                if (j->azs_read) azs_update(pv, j); /* a pool ignoring the quota needs only these */
                /* Retry after the backoff rather than at every pass. */
                pv->backoff_until_ms = loop_now_ms() + QUOTA_BACKOFF_MS;
        }
        provider_server_array_free(j->servers, j->n);
        free(j->msg);
        provider_strv_free(j->azs, j->n_azs);
        free(j->azs_msg);
        free(j);
}

/* Start a refresh when the cache is missing or older than MAX_AGE_MS. */
static void refresh_older(struct launcher_provider *pv, struct launcher *l, uint64_t max_age_ms) {
        /* Unmanaged usage is "listed but not in the node cache": only meaningful once it is synced. */
        if (pv->quota_fetching || !pv->provider || !caches_synced(l)) return;
        uint64_t now = loop_now_ms();
        if (pv->down_r) {
                /* The probe: due at the back-off, whatever the cache says. */
                if (now < pv->down_retry_ms) return;
        } else {
                if (pv->limits_valid && now - pv->limits_time_ms < max_age_ms) return;
                if (!pv->limits_valid && now < pv->backoff_until_ms) return;
        }
        struct quota_job *j = xnew(struct quota_job, 1);
        j->l = l;
        j->pv = pv;
        pv->refs++;
        pv->quota_fetching = true;
        if (workq_submit(l->wq, quota_work, quota_done, j) < 0) {
                pv->refs--;
                pv->quota_fetching = false;
                free(j);
        }
}

static void refresh(struct launcher_provider *pv, struct launcher *l) { refresh_older(pv, l, QUOTA_CACHE_MS); }

static bool uses_provider_quota(const struct pool *p) {
        return p->prov->provider && p->prov->drv->provider_quota && p->cpool &&
               !p->cpool->ignore_provider_quota;
}

void quota_invalidate(struct launcher_provider *pv) {
        uint64_t now = loop_now_ms();
        /* Refused again after a back-off: the limits do not explain it (capacity
         * elsewhere, another user): wait longer each time rather than churn nodes. */
        if (now >= pv->backoff_until_ms)
                pv->capacity_backoff_ms = pv->capacity_backoff_ms ? MIN(pv->capacity_backoff_ms * 2, QUOTA_BACKOFF_MAX_MS)
                                                                  : QUOTA_BACKOFF_MS;
        pv->limits_valid = false;
        pv->backoff_until_ms = now + pv->capacity_backoff_ms;
        log_info("provider %s: quota cache invalidated (the cloud refused for capacity); backing off %llu ms",
                 pv->name, (unsigned long long)pv->capacity_backoff_ms);
}

void quota_capacity_ok(struct launcher_provider *pv) { pv->capacity_backoff_ms = 0; }

bool quota_cloud_down_error(int r) { return r == -EHOSTDOWN || r == -EACCES; }

void quota_cloud_down(struct launcher_provider *pv, int r, const char *msg) {
        struct launcher *l = pv->l;
        _cleanup_free_ char *reason = xasprintf("provider %s %s: %s", pv->name,
                                                r == -EACCES ? "refuses our credentials" : "is unreachable",
                                                msg ? msg : strerror(-r));
        bool changed = pv->down_r != r || !pv->down_reason || strcmp(pv->down_reason, reason) != 0;
        uint64_t now = loop_now_ms();
        /* Several calls may report the same outage: back off once per retry period. */
        if (!pv->down_r) pv->down_backoff_ms = DOWN_BACKOFF_MIN_MS;
        else if (now >= pv->down_retry_ms) pv->down_backoff_ms = MIN(pv->down_backoff_ms * 2, DOWN_BACKOFF_MAX_MS);
        if (now >= pv->down_retry_ms || !pv->down_r) pv->down_retry_ms = now + pv->down_backoff_ms;
        if (changed) {
                log_error("%s; its pools pause and retry (requests wait)", reason);
                free(pv->down_reason);
                pv->down_reason = TAKE_PTR(reason);
        } else {
                log_debug("%s (retrying in %llu ms)", reason, (unsigned long long)pv->down_backoff_ms);
        }
        pv->down_r = r;
        for (size_t i = 0; i < l->n_pools; i++)
                if (l->pools[i]->prov == pv && !l->pools[i]->retired)
                        pool_set_paused(l->pools[i], true, pv->down_reason);
}

void quota_cloud_up(struct launcher_provider *pv) {
        if (!pv->down_r) return;
        log_info("provider %s answers again: its pools resume", pv->name);
        pv->down_r = 0;
        free(pv->down_reason);
        pv->down_reason = NULL;
        pv->down_backoff_ms = 0;
        launcher_kick(pv->l);
}

uint64_t quota_cloud_retry_in_ms(const struct launcher_provider *pv) {
        uint64_t now = loop_now_ms();
        return pv->down_r && pv->down_retry_ms > now ? pv->down_retry_ms - now : 0;
}

static bool over(long long limit, int64_t used) { return limit >= 0 && used > limit; }

/* A request of P may need the cloud's zones (the pool names none). */
static bool needs_cloud_azs(const struct pool *p) {
        return p->prov->provider && p->prov->provider->ops->availability_zones && p->cpool &&
               p->cpool->availability_zones.n == 0;
}

bool quota_ready(struct pool *p) {
        if (p->prov->down_r) {
                refresh(p->prov, p->l); /* the probe, when due */
                return false;
        }
        bool quota = uses_provider_quota(p), azs = needs_cloud_azs(p);
        if (!quota && !azs) return true;
        refresh(p->prov, p->l);
        return (!quota || p->prov->limits_valid) && (!azs || p->prov->azs_known);
}

/* Set *RET_WHY and return V: quota_check's answers. */
static enum quota_verdict verdict(enum quota_verdict v, const char *why, const char **ret_why) {
        *ret_why = why;
        return v;
}

enum quota_verdict quota_check(struct pool *p, const struct config_pool_label *pl, char *buf, size_t sz,
                               const char **ret_why) {
        struct launcher *l = p->l;
        const struct config_pool *cp = p->cpool;
        const struct usage *u = caches_usage_pool(l, p->provider_name, p->name);
        const struct usage c = quota_label_cost(pl);
        if (cp->max_servers >= 0 && u->servers + 1 > cp->max_servers)
                return verdict(QUOTA_USAGE, "max-servers reached", ret_why);
        if (cp->max_cores >= 0 && u->cores + c.cores > cp->max_cores)
                return verdict(QUOTA_USAGE, "max-cores reached", ret_why);
        if (cp->max_ram >= 0 && u->ram + c.ram > cp->max_ram)
                return verdict(QUOTA_USAGE, "max-ram reached", ret_why);
        if (over(cp->max_volumes, u->volumes + c.volumes)) return verdict(QUOTA_USAGE, "max-volumes reached", ret_why);
        if (over(cp->max_volume_gb, u->volume_gb + c.volume_gb))
                return verdict(QUOTA_USAGE, "max-volume-gb reached", ret_why);
        if (p->cp->max_concurrency > 0) {
                unsigned active = 0;
                for (size_t i = 0; i < l->n_pools; i++)
                        if (l->pools[i]->prov == p->prov) active += l->pools[i]->active_launches;
                if (active >= p->cp->max_concurrency) return verdict(QUOTA_WAIT, "max-concurrency reached", ret_why);
        }
        struct launcher_provider *pv = p->prov;
        if (pv->down_r) {
                refresh(pv, l); /* the probe, when due */
                return verdict(QUOTA_WAIT, pv->down_reason ? pv->down_reason : "provider down", ret_why);
        }
        if (!uses_provider_quota(p)) return QUOTA_FITS;
        if (loop_now_ms() < pv->backoff_until_ms)
                return verdict(QUOTA_WAIT, "provider reported no capacity; backing off", ret_why);
        refresh(pv, l);
        if (!pv->limits_valid) return verdict(QUOTA_WAIT, "waiting for the provider's quota", ret_why);
        const struct usage *pu = caches_usage_prov(l, pv->name);
        const struct provider_limits *lim = &pv->limits;
        if (over(lim->max_instances, pu->servers + pv->unmanaged.servers + 1)) {
                snprintf(buf, sz, "provider quota reached: instances %" PRId64 " + %" PRId64 " unmanaged of %lld",
                         pu->servers, pv->unmanaged.servers, lim->max_instances);
                return verdict(QUOTA_USAGE, buf, ret_why);
        }
        if (over(lim->max_cores, pu->cores + pv->unmanaged.cores + c.cores)) {
                snprintf(buf, sz, "provider quota reached: cores %" PRId64 " + %" PRId64 " unmanaged of %lld",
                         pu->cores, pv->unmanaged.cores, lim->max_cores);
                return verdict(QUOTA_USAGE, buf, ret_why);
        }
        if (over(lim->max_ram_mib, pu->ram + pv->unmanaged.ram + c.ram)) {
                snprintf(buf, sz, "provider quota reached: ram %" PRId64 " + %" PRId64 " unmanaged of %lld MiB",
                         pu->ram, pv->unmanaged.ram, lim->max_ram_mib);
                return verdict(QUOTA_USAGE, buf, ret_why);
        }
        const char *vwhat = NULL;
        if (c.volumes && over(lim->max_volumes, pu->volumes + pv->unmanaged.volumes + c.volumes))
                vwhat = "volumes";
        else if (c.volume_gb && over(lim->max_volume_gb, pu->volume_gb + pv->unmanaged.volume_gb + c.volume_gb))
                vwhat = "volume-gb";
        if (!vwhat) return QUOTA_FITS;
        if (pv->unmanaged.volumes > 0 || pv->unmanaged.volume_gb > 0) refresh_older(pv, l, VOLUME_RECHECK_MS);
        bool gb = strcmp(vwhat, "volume-gb") == 0;
        snprintf(buf, sz, "provider quota reached: %s %" PRId64 " + %" PRId64 " unmanaged of %lld%s", vwhat,
                 gb ? pu->volume_gb : pu->volumes, gb ? pv->unmanaged.volume_gb : pv->unmanaged.volumes,
                 gb ? lim->max_volume_gb : lim->max_volumes, gb ? " GB" : "");
        return verdict(QUOTA_USAGE, buf, ret_why);
}

struct usage quota_label_cost(const struct config_pool_label *pl) {
        struct usage c = { .servers = 1, .cores = pl->vcpus, .ram = pl->memory };
        if (pl->boot_from_volume) {
                c.volumes = 1;
                c.volume_gb = pl->volume_size;
        }
        return c;
}

const char *quota_never_fits(struct pool *p, const struct usage *need, char *buf, size_t sz) {
        const struct config_pool *cp = p->cpool;
        if (cp->max_servers > 0 && need->servers > cp->max_servers) return "request is larger than max-servers";
        if (cp->max_cores > 0 && need->cores > cp->max_cores) return "request is larger than max-cores";
        if (cp->max_ram > 0 && need->ram > cp->max_ram) return "request is larger than max-ram";
        if (over(cp->max_volumes, need->volumes)) return "request is larger than max-volumes";
        if (over(cp->max_volume_gb, need->volume_gb)) return "request is larger than max-volume-gb";
        if (!uses_provider_quota(p)) return NULL;
        struct launcher_provider *pv = p->prov;
        refresh(pv, p->l);
        if (!pv->limits_valid) return NULL; /* checked again once known */
        const struct provider_limits *lim = &pv->limits;
        const struct usage *un = &pv->unmanaged;
        /* Volumes others use are not counted here: Cinder's totals include
         * volumes of our own deleted nodes for a while, so they only make a
         * request wait (quota_check), never decline it. */
        const char *what = over(lim->max_instances, need->servers + un->servers)     ? "instances"
                           : over(lim->max_cores, need->cores + un->cores)           ? "cores"
                           : over(lim->max_ram_mib, need->ram + un->ram)             ? "ram"
                           : over(lim->max_volumes, need->volumes)                   ? "volumes"
                           : over(lim->max_volume_gb, need->volume_gb)               ? "volume-gb"
                                                                                     : NULL;
        if (!what) return NULL;
        snprintf(buf, sz, "request is larger than the provider's quota (%s)", what);
        return buf;
}

/* As Nodepool's QuotaInformation over tenant limits: every configured key
 * minus the tenant's usage minus the request must stay >= 0; a key no label
 * of ours costs (another driver's quota code) is compared with usage alone. */
const char *quota_tenant_check(struct launcher *l, const char *tenant, const struct usage *need, char *buf,
                               size_t sz) {
        if (!tenant) return NULL;
        for (size_t i = 0; i < l->cfg->n_tenant_limits; i++) {
                const struct config_tenant_limit *t = &l->cfg->tenant_limits[i];
                if (strcmp(t->tenant_name, tenant) != 0) continue;
                const struct usage *u = caches_usage_tenant(l, tenant);
                const char *what = over(t->max_servers, u->servers + need->servers)            ? "max-servers"
                                   : over(t->max_cores, u->cores + need->cores)                ? "max-cores"
                                   : over(t->max_ram, u->ram + need->ram)                      ? "max-ram"
                                   : over(t->max_volumes, u->volumes + need->volumes)          ? "max-volumes"
                                   : over(t->max_volume_gb, u->volume_gb + need->volume_gb)    ? "max-volume-gb"
                                                                                               : NULL;
                for (size_t k = 0; !what && k < t->other.n; k++) {
                        const char *key = t->other.items[k].key;
                        long long lim = strtoll(t->other.items[k].value, NULL, 10);
                        if (over(lim, json_integer_value(json_object_get(u->other, key)) +
                                              json_integer_value(json_object_get(need->other, key))))
                                what = key;
                }
                if (!what) return NULL;
                snprintf(buf, sz, "tenant %s is at its %s limit (%" PRId64 " nodes, %" PRId64 " cores, %" PRId64
                         " MiB, %" PRId64 " volumes, %" PRId64 " volume GB in use)", tenant, what, u->servers,
                         u->cores, u->ram, u->volumes, u->volume_gb);
                return buf;
        }
        return NULL;
}
