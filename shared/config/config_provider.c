/* config_provider.c — providers[] for the openstack, static, libvirt and metastatic drivers
 * (the other Nodepool drivers are in config_foreign.c).
 *
 * DESIGN: one function per object level (provider, provider diskimage, cloud
 * image, pool, pool label, static node); each reads its mapping against its
 * driver's schema table with cfg_read() and then finishes what a table cannot
 * say (defaults depending on other keys, cross references).
 * Cross references (labels, diskimages, cloud images) are checked here, at the
 * referencing node's position; top-level labels/diskimages are parsed first. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_internal.h"

static const char *const openstack_keys[] = {
        "name", "driver", "max-concurrency", "priority", "pools", "cloud", "region-name", "boot-timeout",
        "launch-timeout", "launch-retries", "image-upload-timeout", "rate", "image-name-format",
        "clean-floating-ips", "port-cleanup-interval", "post-upload-hook", "nodepool-id", "diskimages",
        "cloud-images", NULL,
};
static const char *const static_keys[] = { "name", "driver", "max-concurrency", "priority", "pools", NULL };
static const char *const libvirt_keys[] = {
        "name", "driver", "max-concurrency", "priority", "pools", "uri", "domain-type", "storage-pool",
        "storage-pool-path", "network-mode", "network", "port-range", "boot-timeout", "launch-timeout",
        "launch-retries", "image-name-format", "post-upload-hook", "diskimages", NULL,
};
static const char *const metastatic_keys[] = {
        "name", "driver", "max-concurrency", "priority", "pools", "boot-timeout", "launch-timeout", "launch-retries",
        NULL,
};

/* ---------------------------------------------------------------- schemas
 * Nodepool's voluptuous schemas (nodepool/driver/{openstack,static}/config.py)
 * and poold's libvirt driver, read by cfg_read(). Keys needing more than a
 * type check (limits, cross references, defaults that depend on other keys)
 * are finished by the parse_* functions below. */

#define PD(m) CFG_AT(struct config_provider_diskimage, m)
static const struct cfg_key os_diskimage_keys[] = {
        { .name = "name", .type = CFG_T_STR, .required = true, PD(name) },
        { .name = "pause", .type = CFG_T_BOOL, PD(pause) },
        { .name = "config-drive", .type = CFG_T_TRISTATE, PD(config_drive) },
        { .name = "meta", .type = CFG_T_STRMAP, PD(meta) },
        { .name = "connection-type", .type = CFG_T_STR, PD(connection_type) },
        { .name = "connection-port", .type = CFG_T_INT, PD(connection_port) },
        {},
};
static const struct cfg_key lv_diskimage_keys[] = {
        { .name = "name", .type = CFG_T_STR, .required = true, PD(name) },
        { .name = "pause", .type = CFG_T_BOOL, PD(pause) },
        { .name = "connection-type", .type = CFG_T_STR, PD(connection_type) },
        { .name = "connection-port", .type = CFG_T_INT, PD(connection_port) },
        {},
};
#undef PD
static const struct cfg_schema os_diskimage_schema = { .id = "openstack diskimage", .keys = os_diskimage_keys };
static const struct cfg_schema lv_diskimage_schema = { .id = "libvirt diskimage", .keys = lv_diskimage_keys };

#define CI(m) CFG_AT(struct config_cloud_image, m)
static const struct cfg_key cloud_image_keys[] = {
        { .name = "name", .type = CFG_T_STR, .required = true, CI(name) },
        { .name = "image-id", .type = CFG_T_STR, .group = 'i', CI(image_id) },
        { .name = "image-name", .type = CFG_T_STR, .group = 'i', CI(image_name) },
        { .name = "config-drive", .type = CFG_T_TRISTATE, CI(config_drive) },
        { .name = "username", .type = CFG_T_STR, CI(username) },
        { .name = "python-path", .type = CFG_T_STR, CI(python_path) },
        { .name = "shell-type", .type = CFG_T_STR, CI(shell_type) },
        { .name = "connection-type", .type = CFG_T_STR, CI(connection_type) },
        { .name = "connection-port", .type = CFG_T_INT, CI(connection_port) },
        {},
};
#undef CI
static const struct cfg_schema cloud_image_schema = { .id = "openstack cloud-image", .keys = cloud_image_keys };

#define PL(m) CFG_AT(struct config_pool_label, m)
static const struct cfg_key os_label_keys[] = {
        { .name = "name", .type = CFG_T_STR, .required = true, PL(name) },
        { .name = "diskimage", .type = CFG_T_STR, PL(diskimage) },
        { .name = "cloud-image", .type = CFG_T_STR, PL(cloud_image) },
        { .name = "flavor-name", .type = CFG_T_STR, PL(flavor_name) },
        { .name = "min-ram", .type = CFG_T_INT, PL(min_ram) },
        { .name = "key-name", .type = CFG_T_STR, PL(key_name) },
        { .name = "console-log", .type = CFG_T_BOOL, PL(console_log) },
        { .name = "boot-from-volume", .type = CFG_T_BOOL, PL(boot_from_volume) },
        { .name = "volume-size", .type = CFG_T_INT, CFG_MIN(1), PL(volume_size) },
        { .name = "instance-properties", .type = CFG_T_STRMAP, PL(instance_properties) },
        { .name = "dynamic-instance-properties", .type = CFG_T_STRMAP, PL(dynamic_instance_properties) },
        { .name = "userdata", .type = CFG_T_STR, PL(userdata) },
        { .name = "networks", .type = CFG_T_STRV, PL(networks) },
        { .name = "host-key-checking", .type = CFG_T_BOOL, PL(host_key_checking) },
        {},
};
static const struct cfg_key lv_label_keys[] = {
        { .name = "name", .type = CFG_T_STR, .required = true, PL(name) },
        { .name = "diskimage", .type = CFG_T_STR, .required = true, PL(diskimage) },
        { .name = "memory", .type = CFG_T_INT, CFG_MIN(1), PL(memory) },
        { .name = "vcpus", .type = CFG_T_INT, CFG_MIN(1), PL(vcpus) },
        { .name = "disk-size", .type = CFG_T_INT, CFG_MIN(0), PL(disk_size) },
        { .name = "console-log", .type = CFG_T_BOOL, PL(console_log) },
        { .name = "host-key-checking", .type = CFG_T_BOOL, PL(host_key_checking) },
        { .name = "boot-timeout", .type = CFG_T_INT, CFG_MIN(1), PL(boot_timeout) },
        {},
};
/* Nodepool's metastatic driver (nodepool/driver/metastatic/config.py). */
static const struct cfg_key meta_label_keys[] = {
        { .name = "name", .type = CFG_T_STR, .required = true, PL(name) },
        { .name = "backing-label", .type = CFG_T_STR, .required = true, PL(backing_label) },
        { .name = "max-parallel-jobs", .type = CFG_T_INT, CFG_MIN(1), PL(max_parallel_jobs) },
        { .name = "grace-time", .type = CFG_T_INT, CFG_MIN(0), PL(grace_time) },
        { .name = "min-retention-time", .type = CFG_T_INT, CFG_MIN(0), PL(min_retention_time) },
        { .name = "max-age", .type = CFG_T_INT, CFG_MIN(0), PL(max_age) },
        { .name = "host-key-checking", .type = CFG_T_BOOL, PL(host_key_checking) },
        {},
};
#undef PL
static const struct cfg_schema meta_label_schema = { .id = "metastatic label", .keys = meta_label_keys };
static const struct cfg_schema os_label_schema = { .id = "openstack label", .keys = os_label_keys };
static const struct cfg_schema lv_label_schema = { .id = "libvirt label", .keys = lv_label_keys };

#define SN(m) CFG_AT(struct config_static_node, m)
static const struct cfg_key static_node_keys[] = {
        { .name = "name", .type = CFG_T_STR, .required = true, SN(name) },
        { .name = "labels", .type = CFG_T_STR_OR_WORDS, .required = true, SN(labels) },
        { .name = "username", .type = CFG_T_STR, SN(username) },
        { .name = "timeout", .type = CFG_T_INT, SN(timeout) },
        { .name = "host-key-checking", .type = CFG_T_BOOL, SN(host_key_checking) },
        { .name = "host-key", .type = CFG_T_STR_OR_STRV, SN(host_keys) },
        { .name = "connection-type", .type = CFG_T_STR, SN(connection_type) },
        { .name = "ssh-port", .type = CFG_T_INT, SN(connection_port) },         /* legacy name; connection-port wins */
        { .name = "connection-port", .type = CFG_T_INT, SN(connection_port) },
        { .name = "shell-type", .type = CFG_T_STR, SN(shell_type) },
        { .name = "python-path", .type = CFG_T_STR, SN(python_path) },
        { .name = "max-parallel-jobs", .type = CFG_T_INT, CFG_MIN(1), SN(max_parallel_jobs) },
        {},
};
#undef SN
static const struct cfg_schema static_node_schema = { .id = "static node", .keys = static_node_keys };

/* max-servers is finished by parse_pools (≤0 disables the pool). */
#define PO(m) CFG_AT(struct config_pool, m)
#define POOL_COMMON_KEYS                                                                                      \
        { .name = "name", .type = CFG_T_STR, .required = true, PO(name) },                                    \
        { .name = "max-servers", .type = CFG_T_INT, PO(max_servers) },                                        \
        { .name = "node-attributes", .type = CFG_T_STRMAP, PO(node_attributes) },                             \
        { .name = "priority", .type = CFG_T_INT, PO(priority) }
static const struct cfg_key os_pool_keys[] = {
        POOL_COMMON_KEYS,
        { .name = "max-cores", .type = CFG_T_INT, CFG_MIN(0), PO(max_cores) },
        { .name = "max-ram", .type = CFG_T_INT, CFG_MIN(0), PO(max_ram) },
        { .name = "max-volumes", .type = CFG_T_INT, CFG_MIN(0), PO(max_volumes) },
        { .name = "max-volume-gb", .type = CFG_T_INT, CFG_MIN(0), PO(max_volume_gb) },
        { .name = "ignore-provider-quota", .type = CFG_T_BOOL, PO(ignore_provider_quota) },
        { .name = "availability-zones", .type = CFG_T_STRV, PO(availability_zones) },
        { .name = "networks", .type = CFG_T_STRV, PO(networks) },
        { .name = "security-groups", .type = CFG_T_STRV, PO(security_groups) },
        { .name = "auto-floating-ip", .type = CFG_T_BOOL, PO(auto_floating_ip) },
        { .name = "host-key-checking", .type = CFG_T_BOOL, PO(host_key_checking) },
        { .name = "labels", .type = CFG_T_LIST },
        {},
};
static const struct cfg_key static_pool_keys[] = {
        POOL_COMMON_KEYS,
        { .name = "nodes", .type = CFG_T_LIST },
        {},
};
static const struct cfg_key lv_pool_keys[] = {
        POOL_COMMON_KEYS,
        { .name = "max-cores", .type = CFG_T_INT, CFG_MIN(0), PO(max_cores) },
        { .name = "max-ram", .type = CFG_T_INT, CFG_MIN(0), PO(max_ram) },
        { .name = "host-key-checking", .type = CFG_T_BOOL, PO(host_key_checking) },
        { .name = "labels", .type = CFG_T_LIST },
        {},
};
static const struct cfg_key meta_pool_keys[] = {
        POOL_COMMON_KEYS,
        { .name = "host-key-checking", .type = CFG_T_BOOL, PO(host_key_checking) },
        { .name = "labels", .type = CFG_T_LIST, .required = true },
        {},
};
#undef POOL_COMMON_KEYS
#undef PO
static const struct cfg_schema os_pool_schema = { .id = "openstack pool", .keys = os_pool_keys };
static const struct cfg_schema static_pool_schema = { .id = "static pool", .keys = static_pool_keys };
static const struct cfg_schema lv_pool_schema = { .id = "libvirt pool", .keys = lv_pool_keys };
static const struct cfg_schema meta_pool_schema = { .id = "metastatic pool", .keys = meta_pool_keys };

/* True (and reports) if an earlier item of LIST already has M's name. */
static bool check_duplicate(struct cctx *c, const struct cnode *list, size_t i, const char *kind,
                            const char *where_suffix) {
        const struct cnode *n = cnode_get(list->children[i], "name");
        if (!n || n->type != CNODE_SCALAR || n->bad || cnode_is_null(n)) return false;
        for (size_t j = 0; j < i; j++) {
                const struct cnode *o = cnode_get(list->children[j], "name");
                if (o && o->type == CNODE_SCALAR && !o->bad && strcmp(o->value, n->value) == 0) {
                        cfg_error(c, n, "duplicate %s '%s'%s (first defined at line %u)", kind, n->value,
                                  where_suffix, o->line);
                        return true;
                }
        }
        return false;
}

static void check_range(struct cctx *c, const struct cnode *m, const char *key, const char *where, int64_t v,
                        int64_t min) {
        if (v < min)
                cfg_error(c, cnode_get(m, key), "'%s' in %s: must be at least %" PRId64 ", got %" PRId64, key, where,
                          min, v);
}

/* ------------------------------------------------------ provider diskimages */

static int64_t default_port(const char *connection_type) {
        return connection_type && strcmp(connection_type, "winrm") == 0 ? 5986 : 22;
}

static void parse_provider_diskimages(struct cctx *c, const struct config *cfg, struct config_provider *p,
                                      const struct cnode *list, const char *pwhere) {
        _cleanup_free_ char *suffix = xasprintf(" in %s", pwhere);
        p->diskimages = xnew(struct config_provider_diskimage, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("diskimage #%zu of %s", i + 1, pwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "diskimage", i);
                free(where);
                where = xasprintf("%s of %s", obj, pwhere);
                struct config_provider_diskimage d = {
                        .config_drive = -1,
                        .connection_port = -1,
                        .connection_type = xstrdup("ssh"),
                };
                cfg_read(c, m, p->driver == CONFIG_DRIVER_OPENSTACK ? &os_diskimage_schema : &lv_diskimage_schema,
                         where, &d);
                if (d.connection_port < 0) d.connection_port = default_port(d.connection_type);
                if (d.name) {
                        const struct config_diskimage *top = config_find_diskimage(cfg, d.name);
                        if (!top)
                                cfg_error(c, cnode_get(m, "name"),
                                          "diskimage '%s' of %s is not defined in the top-level diskimages", d.name,
                                          pwhere);
                        else if (top->abstract)
                                cfg_error(c, cnode_get(m, "name"),
                                          "diskimage '%s' of %s is abstract and cannot be uploaded", d.name, pwhere);
                        check_duplicate(c, list, i, "diskimage", suffix);
                }
                p->diskimages[p->n_diskimages++] = d;
        }
}

static void parse_cloud_images(struct cctx *c, struct config_provider *p, const struct cnode *list,
                               const char *pwhere) {
        _cleanup_free_ char *suffix = xasprintf(" in %s", pwhere);
        p->cloud_images = xnew(struct config_cloud_image, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("cloud-image #%zu of %s", i + 1, pwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "cloud-image", i);
                free(where);
                where = xasprintf("%s of %s", obj, pwhere);
                struct config_cloud_image ci = {
                        .config_drive = -1,
                        .connection_port = -1,
                        .username = xstrdup("zuul"),
                        .python_path = xstrdup("auto"),
                        .connection_type = xstrdup("ssh"),
                };
                cfg_read(c, m, &cloud_image_schema, where, &ci);
                if (ci.connection_port < 0) ci.connection_port = default_port(ci.connection_type);
                if (ci.name) check_duplicate(c, list, i, "cloud-image", suffix);
                p->cloud_images[p->n_cloud_images++] = ci;
        }
}

/* ------------------------------------------------------------ pool labels */

static bool provider_has_diskimage(const struct config_provider *p, const char *name) {
        for (size_t i = 0; i < p->n_diskimages; i++)
                if (p->diskimages[i].name && strcmp(p->diskimages[i].name, name) == 0) return true;
        return false;
}

static bool provider_has_cloud_image(const struct config_provider *p, const char *name) {
        for (size_t i = 0; i < p->n_cloud_images; i++)
                if (p->cloud_images[i].name && strcmp(p->cloud_images[i].name, name) == 0) return true;
        return false;
}

void config_check_label_defined(struct cctx *c, const struct config *cfg, const struct cnode *at, const char *name,
                                const char *where) {
        if (!config_find_label(cfg, name))
                cfg_error(c, at, "label '%s' in %s is not defined in the top-level labels", name, where);
}

/* Nodepool's metastatic loader: labels sharing a backing label (in any pool of
 * the provider) must agree on how it is shared; max-age is at least
 * min-retention-time. L is not in POOL yet. */
static void check_metastatic_label(struct cctx *c, const struct config_provider *p, const struct config_pool *pool,
                                   const struct config_pool_label *l, const struct cnode *m, const char *where) {
        if (l->max_age && l->max_age < l->min_retention_time)
                cfg_error(c, cnode_get(m, "max-age"), "%s: max-age must be at least min-retention-time", where);
        if (!l->backing_label) return;
        for (size_t q = 0; q <= (size_t)(pool - p->pools); q++) {
                const struct config_pool *op = &p->pools[q];
                for (size_t k = 0; k < op->n_labels; k++) {
                        const struct config_pool_label *o = &op->labels[k];
                        if (!o->backing_label || strcmp(o->backing_label, l->backing_label) != 0) continue;
                        const char *diff = o->max_parallel_jobs != l->max_parallel_jobs     ? "max-parallel-jobs"
                                           : o->grace_time != l->grace_time                 ? "grace-time"
                                           : o->min_retention_time != l->min_retention_time ? "min-retention-time"
                                           : o->max_age != l->max_age                       ? "max-age"
                                                                                            : NULL;
                        if (diff)
                                cfg_error(c, cnode_get(m, "backing-label"),
                                          "%s: labels with backing-label '%s' must have the same %s (label '%s' has "
                                          "another)",
                                          where, l->backing_label, diff, o->name ? o->name : "?");
                        return;
                }
        }
}

static void parse_pool_labels(struct cctx *c, const struct config *cfg, const struct config_provider *p,
                              struct config_pool *pool, const struct cnode *list, const char *poolwhere) {
        bool os = p->driver == CONFIG_DRIVER_OPENSTACK, meta = p->driver == CONFIG_DRIVER_METASTATIC;
        _cleanup_free_ char *suffix = xasprintf(" in %s", poolwhere);
        pool->labels = xnew(struct config_pool_label, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("label #%zu of %s", i + 1, poolwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "label", i);
                free(where);
                where = xasprintf("%s of %s", obj, poolwhere);
                struct config_pool_label l = {
                        .host_key_checking = pool->host_key_checking,
                        .volume_size = 50,
                        .memory = 1024,
                        .vcpus = 1,
                        .boot_timeout = p->boot_timeout,
                        .max_parallel_jobs = 1,
                        .grace_time = 60,
                };
                if (meta) {
                        /* A metastatic node costs one instance, nothing else (Nodepool's quota for it). */
                        l.memory = l.vcpus = 0;
                }
                if (os) strv_copy(&l.networks, &pool->networks);        /* the label's own replace them */
                cfg_read(c, m, os ? &os_label_schema : meta ? &meta_label_schema : &lv_label_schema, where, &l);
                if (meta) check_metastatic_label(c, p, pool, &l, m, where);
                if (l.name) {
                        config_check_label_defined(c, cfg, cnode_get(m, "name"), l.name, poolwhere);
                        check_duplicate(c, list, i, "label", suffix);
                }
                if (os) {
                        if (!cnode_get(m, "diskimage") == !cnode_get(m, "cloud-image"))
                                cfg_error(c, m, "%s must have exactly one of 'diskimage' or 'cloud-image'", where);
                        if (!cnode_get(m, "flavor-name") && !cnode_get(m, "min-ram"))
                                cfg_error(c, m, "%s must have at least one of 'flavor-name' or 'min-ram'", where);
                        if (l.cloud_image && !provider_has_cloud_image(p, l.cloud_image))
                                cfg_error(c, cnode_get(m, "cloud-image"),
                                          "cloud-image '%s' of %s is not defined in the provider's cloud-images",
                                          l.cloud_image, where);
                }
                if (l.diskimage) {
                        const struct cnode *at = cnode_get(m, "diskimage");
                        if (!config_find_diskimage(cfg, l.diskimage))
                                cfg_error(c, at, "diskimage '%s' of %s is not defined in the top-level diskimages",
                                          l.diskimage, where);
                        else if (!provider_has_diskimage(p, l.diskimage))
                                cfg_error(c, at, "diskimage '%s' of %s is not listed in the diskimages of provider '%s'",
                                          l.diskimage, where, p->name ? p->name : "?");
                }
                pool->labels[pool->n_labels++] = l;
        }
}

/* ------------------------------------------------------------ static nodes */

static void parse_static_nodes(struct cctx *c, const struct config *cfg, struct config_provider *p,
                               struct config_pool *pool, const struct cnode *list, const char *poolwhere) {
        pool->nodes = xnew(struct config_static_node, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("node #%zu of %s", i + 1, poolwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "node", i);
                free(where);
                where = xasprintf("%s of %s", obj, poolwhere);
                struct config_static_node n = {
                        .username = xstrdup("zuul"),
                        .timeout = 5,
                        .host_key_checking = true,
                        .connection_type = xstrdup("ssh"),
                        .connection_port = 22,
                        .python_path = xstrdup("auto"),
                        .max_parallel_jobs = 1,
                };
                cfg_read(c, m, &static_node_schema, where, &n);
                for (size_t k = 0; k < n.labels.n; k++)
                        config_check_label_defined(c, cfg, cnode_get(m, "labels"), n.labels.items[k], where);
                /* (name, username, port) identifies a static node across the whole provider. */
                if (n.name) {
                        bool dup = false;
                        for (size_t q = 0; q <= (size_t)(pool - p->pools) && !dup; q++) {
                                const struct config_pool *op = &p->pools[q];
                                size_t cnt = op == pool ? pool->n_nodes : op->n_nodes;
                                for (size_t k = 0; k < cnt && !dup; k++) {
                                        const struct config_static_node *o = &op->nodes[k];
                                        if (o->name && strcmp(o->name, n.name) == 0 &&
                                            strcmp(o->username, n.username) == 0 &&
                                            o->connection_port == n.connection_port) {
                                                cfg_error(c, cnode_get(m, "name"),
                                                          "duplicate static node '%s' (username '%s', port %" PRId64
                                                          ") in provider '%s'",
                                                          n.name, n.username, n.connection_port,
                                                          p->name ? p->name : "?");
                                                dup = true;
                                        }
                                }
                        }
                }
                pool->nodes[pool->n_nodes++] = n;
        }
}

/* ------------------------------------------------------------------ pools */

static void parse_pools(struct cctx *c, const struct config *cfg, struct config_provider *p,
                        const struct cnode *list, const char *pwhere) {
        const struct cfg_schema *schema = p->driver == CONFIG_DRIVER_OPENSTACK ? &os_pool_schema
                                          : p->driver == CONFIG_DRIVER_STATIC  ? &static_pool_schema
                                          : p->driver == CONFIG_DRIVER_METASTATIC ? &meta_pool_schema
                                                                                  : &lv_pool_schema;
        _cleanup_free_ char *suffix = xasprintf(" in %s", pwhere);
        p->pools = xnew(struct config_pool, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("pool #%zu of %s", i + 1, pwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "pool", i);
                free(where);
                where = xasprintf("%s of %s", obj, pwhere);
                struct config_pool *pool = &p->pools[p->n_pools++];
                *pool = (struct config_pool){
                        .max_servers = CONFIG_UNLIMITED,
                        .max_cores = CONFIG_UNLIMITED,
                        .max_ram = CONFIG_UNLIMITED,
                        .max_volumes = CONFIG_UNLIMITED,
                        .max_volume_gb = CONFIG_UNLIMITED,
                        .auto_floating_ip = true,
                        /* metastatic: the backing node was checked already (Nodepool's default) */
                        .host_key_checking = p->driver != CONFIG_DRIVER_METASTATIC,
                        .priority = p->priority,
                };
                cfg_read(c, m, schema, where, pool);
                if (pool->name) check_duplicate(c, list, i, "pool", suffix);
                if (pool->max_servers < 0 && cnode_get(m, "max-servers"))
                        pool->max_servers = 0;  /* ≤0 disables the pool, as in Nodepool */
                if (p->driver == CONFIG_DRIVER_STATIC && pool->max_servers > 0)
                        /* Nodepool's static handler declines for max-servers ≤ 0 only; its nodes are fixed. */
                        cfg_warning(c, cnode_get_key(m, "max-servers"),
                                    "'max-servers' of a static pool only acts when it is 0 or less (the pool is "
                                    "then disabled, as in Nodepool); a positive value has no effect");
                /* Nodepool limits volumes only when the value is truthy: 0 is no limit there. */
                if (pool->max_volumes == 0) {
                        pool->max_volumes = CONFIG_UNLIMITED;
                        cfg_warning(c, cnode_get_key(m, "max-volumes"),
                                    "'max-volumes: 0' means no limit, as in Nodepool; 1 or more limits volumes");
                }
                if (pool->max_volume_gb == 0) {
                        pool->max_volume_gb = CONFIG_UNLIMITED;
                        cfg_warning(c, cnode_get_key(m, "max-volume-gb"),
                                    "'max-volume-gb: 0' means no limit, as in Nodepool; 1 or more limits volumes");
                }
                const struct cnode *l = cnode_get(m, p->driver == CONFIG_DRIVER_STATIC ? "nodes" : "labels");
                if (!l || l->bad || l->type != CNODE_SEQ) continue;     /* a wrong type was reported */
                if (p->driver == CONFIG_DRIVER_STATIC)
                        parse_static_nodes(c, cfg, p, pool, l, where);
                else
                        parse_pool_labels(c, cfg, p, pool, l, where);
        }
}

/* -------------------------------------------------------------- providers */

void config_provider_clear(struct config_provider *p) {
        free(p->name);
        free(p->image_name_format);
        for (size_t i = 0; i < p->n_diskimages; i++) {
                free(p->diskimages[i].name);
                strmap_clear(&p->diskimages[i].meta);
                free(p->diskimages[i].connection_type);
        }
        free(p->diskimages);
        for (size_t i = 0; i < p->n_pools; i++) {
                struct config_pool *pool = &p->pools[i];
                free(pool->name);
                strv_clear(&pool->availability_zones);
                strv_clear(&pool->networks);
                strv_clear(&pool->security_groups);
                strmap_clear(&pool->node_attributes);
                for (size_t k = 0; k < pool->n_labels; k++) {
                        struct config_pool_label *l = &pool->labels[k];
                        free(l->name);
                        free(l->diskimage);
                        free(l->cloud_image);
                        free(l->flavor_name);
                        free(l->key_name);
                        strmap_clear(&l->instance_properties);
                        strmap_clear(&l->dynamic_instance_properties);
                        free(l->userdata);
                        strv_clear(&l->networks);
                        free(l->backing_label);
                }
                free(pool->labels);
                for (size_t k = 0; k < pool->n_nodes; k++) {
                        struct config_static_node *n = &pool->nodes[k];
                        free(n->name);
                        strv_clear(&n->labels);
                        free(n->username);
                        strv_clear(&n->host_keys);
                        free(n->connection_type);
                        free(n->shell_type);
                        free(n->python_path);
                }
                free(pool->nodes);
        }
        free(p->pools);
        free(p->cloud);
        free(p->region_name);
        free(p->post_upload_hook);
        free(p->nodepool_id);
        for (size_t i = 0; i < p->n_cloud_images; i++) {
                struct config_cloud_image *ci = &p->cloud_images[i];
                free(ci->name);
                free(ci->image_id);
                free(ci->image_name);
                free(ci->username);
                free(ci->python_path);
                free(ci->shell_type);
                free(ci->connection_type);
        }
        free(p->cloud_images);
        free(p->uri);
        free(p->domain_type);
        free(p->storage_pool);
        free(p->storage_pool_path);
        free(p->network);
        free(p->canonical);
}

static void parse_openstack(struct cctx *c, struct config_provider *p, const struct cnode *m, const char *where) {
        p->boot_timeout = 60;
        p->launch_timeout = 3600;
        p->image_upload_timeout = 3600;
        p->rate = 1.0;
        p->port_cleanup_interval = 600;
        cfg_require(c, m, "cloud", where);
        cfg_str(c, m, "cloud", where, &p->cloud);
        cfg_str(c, m, "region-name", where, &p->region_name);
        cfg_int(c, m, "boot-timeout", where, &p->boot_timeout);
        cfg_int(c, m, "launch-timeout", where, &p->launch_timeout);
        cfg_int(c, m, "launch-retries", where, &p->launch_retries);
        cfg_int(c, m, "image-upload-timeout", where, &p->image_upload_timeout);
        if (cfg_double(c, m, "rate", where, &p->rate) > 0 && p->rate < 0)
                cfg_error(c, cnode_get(m, "rate"), "'rate' in %s: must not be negative", where);
        cfg_str(c, m, "image-name-format", where, &p->image_name_format);
        cfg_bool(c, m, "clean-floating-ips", where, &p->clean_floating_ips);
        if (cfg_int(c, m, "port-cleanup-interval", where, &p->port_cleanup_interval) > 0)
                check_range(c, m, "port-cleanup-interval", where, p->port_cleanup_interval, 0);
        cfg_str(c, m, "post-upload-hook", where, &p->post_upload_hook);
        cfg_str(c, m, "nodepool-id", where, &p->nodepool_id);
        cfg_warn_unacted(c, m, "openstack provider");
}

static void parse_libvirt(struct cctx *c, struct config_provider *p, const struct cnode *m, const char *where) {
        p->boot_timeout = 120;
        p->launch_timeout = 600;
        p->uri = xstrdup("qemu:///system");
        p->domain_type = xstrdup("auto");
        p->storage_pool = xstrdup("poold");
        p->storage_pool_path = xstrdup("/var/lib/poold/images");
        p->port_range[0] = 22000;
        p->port_range[1] = 22999;
        cfg_str(c, m, "uri", where, &p->uri);
        if (cfg_str(c, m, "domain-type", where, &p->domain_type) > 0 && strcmp(p->domain_type, "auto") != 0 &&
            strcmp(p->domain_type, "kvm") != 0 && strcmp(p->domain_type, "qemu") != 0)
                cfg_error(c, cnode_get(m, "domain-type"), "'domain-type' in %s: expected auto, kvm or qemu, got '%s'",
                          where, p->domain_type);
        cfg_str(c, m, "storage-pool", where, &p->storage_pool);
        cfg_str(c, m, "storage-pool-path", where, &p->storage_pool_path);
        _cleanup_free_ char *mode = NULL;
        if (cfg_str(c, m, "network-mode", where, &mode) > 0) {
                if (strcmp(mode, "network") == 0)
                        p->network_mode = CONFIG_NETWORK_NETWORK;
                else if (strcmp(mode, "user") != 0)
                        cfg_error(c, cnode_get(m, "network-mode"),
                                  "'network-mode' in %s: expected user or network, got '%s'", where, mode);
        }
        int has_net = cfg_str(c, m, "network", where, &p->network);
        if (p->network_mode == CONFIG_NETWORK_NETWORK && has_net == 0)
                cfg_error(c, m, "missing required key 'network' in %s (network-mode is 'network')", where);
        else if (p->network_mode == CONFIG_NETWORK_USER && has_net > 0)
                cfg_error(c, cnode_get(m, "network"), "'network' in %s is only valid with network-mode 'network'",
                          where);
        const struct cnode *pr = cnode_get(m, "port-range");
        if (pr && !pr->bad) {
                int64_t lo, hi;
                if (pr->type != CNODE_SEQ || pr->n != 2 || !cfg_parse_int(pr->children[0], &lo) ||
                    !cfg_parse_int(pr->children[1], &hi))
                        cfg_error(c, pr, "'port-range' in %s: expected a list of two port numbers [low, high]", where);
                else if (lo < 1 || hi > 65535 || lo > hi)
                        cfg_error(c, pr, "'port-range' in %s: [%" PRId64 ", %" PRId64 "] is not a valid port range",
                                  where, lo, hi);
                else {
                        p->port_range[0] = lo;
                        p->port_range[1] = hi;
                }
        }
        cfg_int(c, m, "boot-timeout", where, &p->boot_timeout);
        cfg_int(c, m, "launch-timeout", where, &p->launch_timeout);
        cfg_int(c, m, "launch-retries", where, &p->launch_retries);
        cfg_str(c, m, "image-name-format", where, &p->image_name_format);
        /* poold's own driver: the builder runs the hook for any provider it uploads to. */
        cfg_str(c, m, "post-upload-hook", where, &p->post_upload_hook);
}

/* Nodepool's metastatic provider defaults (its config.py load()). */
static void parse_metastatic(struct cctx *c, struct config_provider *p, const struct cnode *m, const char *where) {
        p->boot_timeout = 120;
        p->launch_timeout = 3600;
        cfg_require(c, m, "pools", where);
        cfg_int(c, m, "boot-timeout", where, &p->boot_timeout);
        cfg_int(c, m, "launch-timeout", where, &p->launch_timeout);
        cfg_int(c, m, "launch-retries", where, &p->launch_retries);
}

void config_parse_providers(struct cctx *c, struct config *cfg, const struct cnode *list) {
        cfg->providers = xnew(struct config_provider, list->n);
        cfg->foreign_providers = xnew(struct config_foreign_provider, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("provider #%zu", i + 1);
                if (!cfg_expect_map(c, m, where)) continue;
                free(where);
                where = cfg_object_name(m, "provider", i);
                cfg_require(c, m, "name", where);
                check_duplicate(c, list, i, "provider", "");

                enum config_driver drv = CONFIG_DRIVER_OPENSTACK;
                _cleanup_free_ char *dname = NULL;
                if (cfg_str(c, m, "driver", where, &dname) < 0) continue;
                if (dname && config_foreign_driver(dname)) {
                        config_parse_foreign_provider(c, cfg, m, dname, where);
                        continue;
                }
                if (dname) {
                        drv = config_driver_from_string(dname);
                        if (drv < 0) {
                                cfg_error(c, cnode_get_key(m, "driver"),
                                          "unknown driver '%s' of %s (Nodepool's drivers are openstack, static, aws, "
                                          "azure, gce, ibmvpc, kubernetes, openshift, openshiftpods and metastatic; "
                                          "poold adds libvirt)",
                                          dname, where);
                                continue;
                        }
                }
                cfg_check_keys(c, m,
                               drv == CONFIG_DRIVER_OPENSTACK     ? openstack_keys
                               : drv == CONFIG_DRIVER_STATIC     ? static_keys
                               : drv == CONFIG_DRIVER_METASTATIC ? metastatic_keys
                                                                 : libvirt_keys,
                               where);
                struct config_provider *p = &cfg->providers[cfg->n_providers++];
                *p = (struct config_provider){
                        .driver = drv,
                        .max_concurrency = CONFIG_UNLIMITED,
                        .priority = 100,
                        .launch_retries = 3,
                        .image_name_format = xstrdup("{image_name}-{timestamp}"),
                        .canonical = cnode_canonical(m),
                };
                cfg_str(c, m, "name", where, &p->name);
                if (cfg_int(c, m, "max-concurrency", where, &p->max_concurrency) > 0 && p->max_concurrency < 0)
                        p->max_concurrency = CONFIG_UNLIMITED;
                cfg_int(c, m, "priority", where, &p->priority);
                if (drv == CONFIG_DRIVER_OPENSTACK)
                        parse_openstack(c, p, m, where);
                else if (drv == CONFIG_DRIVER_LIBVIRT)
                        parse_libvirt(c, p, m, where);
                else if (drv == CONFIG_DRIVER_METASTATIC)
                        parse_metastatic(c, p, m, where);
                check_range(c, m, "launch-retries", where, p->launch_retries, 0);
                const struct cnode *l;
                if ((drv == CONFIG_DRIVER_OPENSTACK || drv == CONFIG_DRIVER_LIBVIRT) &&
                    (l = cfg_list(c, m, "diskimages", where)))
                        parse_provider_diskimages(c, cfg, p, l, where);
                if (drv == CONFIG_DRIVER_OPENSTACK && (l = cfg_list(c, m, "cloud-images", where)))
                        parse_cloud_images(c, p, l, where);
                if ((l = cfg_list(c, m, "pools", where))) parse_pools(c, cfg, p, l, where);
        }
}
