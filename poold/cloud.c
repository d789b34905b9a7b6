/* cloud.c — the cloud driver kind (pool_driver.h) over shared/providers' provider_ops.
 *
 * DESIGN. Every cloud (libvirt, OpenStack, any later provider_ops driver) looks
 * the same to the launcher core: the pool's labels are its `labels`, new nodes
 * are launched by launch.c (ops create/get on the workq), deleting a node
 * deletes its server (ops delete), the cloud's quota applies (quota.c, ops
 * quota), its servers are listed for leaks (cleanup.c, ops list) and one
 * launcher at a time launches for it (owner.c, the launch lease). So this file
 * is only the table and the few answers that are not already a generic
 * module's. */
#include <string.h>

#include "launcher.h"
#include "log.h"
#include "pool_driver.h"
#include "provider_params.h"

static int cloud_open(struct launcher_provider *pv) {
        const struct config_provider *cp = pv->cp;
        struct provider_params_owned pp;
        if (provider_params_from_config(cp, &pp) < 0) {
                log_error("provider %s: driver %s is not supported by this launcher yet", cp->name,
                          config_driver_to_string(cp->driver));
                return -EOPNOTSUPP;
        }
        pp.params.statsd = pv->l->api_statsd;
        _cleanup_free_ char *msg = NULL;
        int r = provider_open(&pp.params, &pv->provider, &msg);
        provider_params_done(&pp);
        if (r < 0) return log_error_errno(r, "provider %s: cannot open: %s", cp->name, msg ? msg : "%m");
        log_info("provider %s opened (%s)", cp->name, cp->driver == CONFIG_DRIVER_OPENSTACK ? cp->cloud
                                                      : cp->uri ? cp->uri : "default uri");
        return 0;
}

static void cloud_close(struct launcher_provider *pv) {
        provider_close(pv->provider);
        pv->provider = NULL;
}

static bool cloud_has_label(const struct pool *p, const char *label) { return pool_find_label(p, label) != NULL; }

static const char *cloud_never_fits(struct pool *p, const struct node_request *rq, char *buf, size_t sz) {
        struct usage need = {};
        for (char **t = rq->node_types; *t; t++) {
                const struct config_pool_label *pl = pool_find_label(p, *t);
                if (!pl) {
                        snprintf(buf, sz, "label %s is not in this pool", *t);
                        return buf;
                }
                if (pl->diskimage && !caches_find_upload(p->l, pl->diskimage, p->provider_name, NULL)) {
                        snprintf(buf, sz, "no ready upload of image %s for label %s", pl->diskimage, *t);
                        return buf;
                }
                struct usage c = quota_label_cost(pl);
                need.servers++;
                need.cores += c.cores;
                need.ram += c.ram;
                need.volumes += c.volumes;
                need.volume_gb += c.volume_gb;
        }
        if (need.servers == 0) return NULL;
        return quota_never_fits(p, &need, buf, sz);
}

/* Worker thread: provider ops are thread-safe, and PV is kept by the caller's reference. */
static int cloud_delete_instance(struct launcher_provider *pv, const char *external_id, char **ret_msg) {
        int r = pv->provider->ops->delete(pv->provider, external_id, ret_msg);
        return r == -ENOENT ? 0 : r;
}

static bool cloud_minready_offers(struct pool *p, const char *label) {
        /* A diskimage label counts only once an upload of its image is ready. */
        const struct config_pool_label *pl = pool_find_label(p, label);
        return pl && (!pl->diskimage || caches_find_upload(p->l, pl->diskimage, p->provider_name, NULL));
}

const struct pool_driver pool_driver_cloud = {
        .name = "cloud",
        .open = cloud_open,
        .close = cloud_close,
        .has_label = cloud_has_label,
        .never_fits = cloud_never_fits,
        .launch = launch_start,
        .launch_lease = true,
        .check_ready = NULL,
        .delete_instance = cloud_delete_instance,
        .provider_quota = true,
        .leak_cleanup = true,
        .max_ready_age = true,
        .minready_offers = cloud_minready_offers,
        .sync = NULL,
        .forget_requests = NULL, /* launches are launch.c's: launch_forget_requests() */
};
