/* config_provider.c — providers[] for the openstack, static and libvirt drivers.
 *
 * DESIGN: one function per object level (provider, provider diskimage, cloud
 * image, pool, pool label, static node), each knowing its driver's key list.
 * Cross references (labels, diskimages, cloud images) are checked here, at the
 * referencing node's position; top-level labels/diskimages are parsed first. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_internal.h"

/* Nodepool drivers poold recognises but does not implement. */
static const char *const unsupported_drivers[] = {
        "aws", "gce", "azure", "kubernetes", "openshift", "openshiftpods", "metastatic", "ibmvpc", NULL,
};

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
        "launch-retries", "image-name-format", "diskimages", NULL,
};

static const char *const os_pool_keys[] = {
        "name", "max-servers", "max-cores", "max-ram", "max-volumes", "max-volume-gb", "ignore-provider-quota",
        "availability-zones", "networks", "security-groups", "auto-floating-ip", "host-key-checking",
        "node-attributes", "priority", "labels", NULL,
};
static const char *const static_pool_keys[] = { "name", "node-attributes", "priority", "nodes", NULL };
static const char *const lv_pool_keys[] = {
        "name", "max-servers", "max-cores", "max-ram", "host-key-checking", "node-attributes", "priority", "labels",
        NULL,
};

static const char *const os_label_keys[] = {
        "name", "diskimage", "cloud-image", "flavor-name", "min-ram", "key-name", "console-log",
        "boot-from-volume", "volume-size", "instance-properties", "dynamic-instance-properties", "userdata",
        "networks", "host-key-checking", NULL,
};
static const char *const lv_label_keys[] = {
        "name", "diskimage", "memory", "vcpus", "disk-size", "console-log", "host-key-checking", "boot-timeout",
        NULL,
};

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

static void parse_provider_diskimages(struct cctx *c, const struct config *cfg, struct config_provider *p,
                                      const struct cnode *list, const char *pwhere) {
        static const char *const os_keys[] = {
                "name", "pause", "config-drive", "meta", "connection-type", "connection-port", NULL,
        };
        static const char *const lv_keys[] = { "name", "pause", "connection-type", "connection-port", NULL };
        _cleanup_free_ char *suffix = xasprintf(" in %s", pwhere);
        p->diskimages = xnew(struct config_provider_diskimage, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("diskimage #%zu of %s", i + 1, pwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "diskimage", i);
                free(where);
                where = xasprintf("%s of %s", obj, pwhere);
                cfg_check_keys(c, m, p->driver == CONFIG_DRIVER_OPENSTACK ? os_keys : lv_keys, where);
                cfg_require(c, m, "name", where);
                struct config_provider_diskimage d = { .config_drive = -1, .connection_port = -1 };
                cfg_str(c, m, "name", where, &d.name);
                cfg_bool(c, m, "pause", where, &d.pause);
                bool cd;
                if (cfg_bool(c, m, "config-drive", where, &cd) > 0) d.config_drive = cd;
                cfg_strmap(c, m, "meta", where, &d.meta);
                d.connection_type = xstrdup("ssh");
                cfg_str(c, m, "connection-type", where, &d.connection_type);
                cfg_int(c, m, "connection-port", where, &d.connection_port);
                if (d.connection_port < 0) d.connection_port = strcmp(d.connection_type, "winrm") == 0 ? 5986 : 22;
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
        static const char *const keys[] = {
                "name", "image-id", "image-name", "config-drive", "username", "python-path", "shell-type",
                "connection-type", "connection-port", NULL,
        };
        _cleanup_free_ char *suffix = xasprintf(" in %s", pwhere);
        p->cloud_images = xnew(struct config_cloud_image, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("cloud-image #%zu of %s", i + 1, pwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "cloud-image", i);
                free(where);
                where = xasprintf("%s of %s", obj, pwhere);
                cfg_check_keys(c, m, keys, where);
                cfg_require(c, m, "name", where);
                struct config_cloud_image ci = {
                        .config_drive = -1,
                        .connection_port = -1,
                        .username = xstrdup("zuul"),
                        .python_path = xstrdup("auto"),
                        .connection_type = xstrdup("ssh"),
                };
                cfg_str(c, m, "name", where, &ci.name);
                cfg_str(c, m, "image-id", where, &ci.image_id);
                cfg_str(c, m, "image-name", where, &ci.image_name);
                if (ci.image_id && ci.image_name)
                        cfg_error(c, cnode_get(m, "image-name"), "%s has both 'image-id' and 'image-name'", where);
                bool cd;
                if (cfg_bool(c, m, "config-drive", where, &cd) > 0) ci.config_drive = cd;
                cfg_str(c, m, "username", where, &ci.username);
                cfg_str(c, m, "python-path", where, &ci.python_path);
                cfg_str(c, m, "shell-type", where, &ci.shell_type);
                cfg_str(c, m, "connection-type", where, &ci.connection_type);
                cfg_int(c, m, "connection-port", where, &ci.connection_port);
                if (ci.connection_port < 0)
                        ci.connection_port = strcmp(ci.connection_type, "winrm") == 0 ? 5986 : 22;
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

static void check_label_defined(struct cctx *c, const struct config *cfg, const struct cnode *at, const char *name,
                                const char *where) {
        if (!config_find_label(cfg, name))
                cfg_error(c, at, "label '%s' in %s is not defined in the top-level labels", name, where);
}

static void parse_pool_labels(struct cctx *c, const struct config *cfg, const struct config_provider *p,
                              struct config_pool *pool, const struct cnode *list, const char *poolwhere) {
        bool os = p->driver == CONFIG_DRIVER_OPENSTACK;
        _cleanup_free_ char *suffix = xasprintf(" in %s", poolwhere);
        pool->labels = xnew(struct config_pool_label, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("label #%zu of %s", i + 1, poolwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "label", i);
                free(where);
                where = xasprintf("%s of %s", obj, poolwhere);
                cfg_check_keys(c, m, os ? os_label_keys : lv_label_keys, where);
                cfg_require(c, m, "name", where);
                struct config_pool_label l = {
                        .host_key_checking = pool->host_key_checking,
                        .volume_size = 50,
                        .memory = 1024,
                        .vcpus = 1,
                        .boot_timeout = p->boot_timeout,
                };
                if (cfg_str(c, m, "name", where, &l.name) > 0) {
                        check_label_defined(c, cfg, cnode_get(m, "name"), l.name, poolwhere);
                        check_duplicate(c, list, i, "label", suffix);
                }
                cfg_bool(c, m, "host-key-checking", where, &l.host_key_checking);
                cfg_bool(c, m, "console-log", where, &l.console_log);
                int has_di = cfg_str(c, m, "diskimage", where, &l.diskimage);
                if (os) {
                        int has_ci = cfg_str(c, m, "cloud-image", where, &l.cloud_image);
                        if ((has_di != 0) == (has_ci != 0))
                                cfg_error(c, m, "%s must have exactly one of 'diskimage' or 'cloud-image'", where);
                        int has_flavor = cfg_str(c, m, "flavor-name", where, &l.flavor_name);
                        int has_ram = cfg_int(c, m, "min-ram", where, &l.min_ram);
                        if (has_flavor == 0 && has_ram == 0)
                                cfg_error(c, m, "%s must have at least one of 'flavor-name' or 'min-ram'", where);
                        cfg_str(c, m, "key-name", where, &l.key_name);
                        cfg_bool(c, m, "boot-from-volume", where, &l.boot_from_volume);
                        if (cfg_int(c, m, "volume-size", where, &l.volume_size) > 0)
                                check_range(c, m, "volume-size", where, l.volume_size, 1);
                        cfg_strmap(c, m, "instance-properties", where, &l.instance_properties);
                        cfg_strmap(c, m, "dynamic-instance-properties", where, &l.dynamic_instance_properties);
                        cfg_str(c, m, "userdata", where, &l.userdata);
                        strv_copy(&l.networks, &pool->networks);
                        cfg_strv(c, m, "networks", where, &l.networks, false);
                        if (has_ci > 0 && !provider_has_cloud_image(p, l.cloud_image))
                                cfg_error(c, cnode_get(m, "cloud-image"),
                                          "cloud-image '%s' of %s is not defined in the provider's cloud-images",
                                          l.cloud_image, where);
                } else {
                        if (has_di == 0) cfg_require(c, m, "diskimage", where);
                        if (cfg_int(c, m, "memory", where, &l.memory) > 0)
                                check_range(c, m, "memory", where, l.memory, 1);
                        if (cfg_int(c, m, "vcpus", where, &l.vcpus) > 0) check_range(c, m, "vcpus", where, l.vcpus, 1);
                        if (cfg_int(c, m, "disk-size", where, &l.disk_size) > 0)
                                check_range(c, m, "disk-size", where, l.disk_size, 0);
                        if (cfg_int(c, m, "boot-timeout", where, &l.boot_timeout) > 0)
                                check_range(c, m, "boot-timeout", where, l.boot_timeout, 1);
                }
                if (has_di > 0) {
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
        static const char *const keys[] = {
                "name", "labels", "username", "timeout", "host-key-checking", "host-key", "connection-type",
                "connection-port", "ssh-port", "shell-type", "python-path", "max-parallel-jobs", NULL,
        };
        pool->nodes = xnew(struct config_static_node, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("node #%zu of %s", i + 1, poolwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "node", i);
                free(where);
                where = xasprintf("%s of %s", obj, poolwhere);
                cfg_check_keys(c, m, keys, where);
                cfg_require(c, m, "name", where);
                cfg_require(c, m, "labels", where);
                struct config_static_node n = {
                        .username = xstrdup("zuul"),
                        .timeout = 5,
                        .host_key_checking = true,
                        .connection_type = xstrdup("ssh"),
                        .connection_port = 22,
                        .python_path = xstrdup("auto"),
                        .max_parallel_jobs = 1,
                };
                cfg_str(c, m, "name", where, &n.name);
                if (cfg_strv(c, m, "labels", where, &n.labels, true) > 0)
                        for (size_t k = 0; k < n.labels.n; k++)
                                check_label_defined(c, cfg, cnode_get(m, "labels"), n.labels.items[k], where);
                cfg_str(c, m, "username", where, &n.username);
                cfg_int(c, m, "timeout", where, &n.timeout);
                cfg_bool(c, m, "host-key-checking", where, &n.host_key_checking);
                /* host-key: one key (a string with spaces) or a list of keys. */
                const struct cnode *hk = cnode_get(m, "host-key");
                if (hk && hk->type == CNODE_SCALAR && !cnode_is_null(hk) && !hk->bad)
                        strv_add(&n.host_keys, hk->value);
                else
                        cfg_strv(c, m, "host-key", where, &n.host_keys, false);
                cfg_str(c, m, "connection-type", where, &n.connection_type);
                cfg_int(c, m, "ssh-port", where, &n.connection_port);       /* legacy name */
                cfg_int(c, m, "connection-port", where, &n.connection_port);
                cfg_str(c, m, "shell-type", where, &n.shell_type);
                cfg_str(c, m, "python-path", where, &n.python_path);
                if (cfg_int(c, m, "max-parallel-jobs", where, &n.max_parallel_jobs) > 0)
                        check_range(c, m, "max-parallel-jobs", where, n.max_parallel_jobs, 1);
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

static int64_t read_limit(struct cctx *c, const struct cnode *m, const char *key, const char *where) {
        int64_t v = CONFIG_UNLIMITED;
        if (cfg_int(c, m, key, where, &v) > 0) {
                if (strcmp(key, "max-servers") == 0) return v < 0 ? 0 : v;   /* ≤0 disables the pool */
                check_range(c, m, key, where, v, 0);
        }
        return v;
}

static void parse_pools(struct cctx *c, const struct config *cfg, struct config_provider *p,
                        const struct cnode *list, const char *pwhere) {
        const char *const *keys = p->driver == CONFIG_DRIVER_OPENSTACK ? os_pool_keys
                                  : p->driver == CONFIG_DRIVER_STATIC  ? static_pool_keys
                                                                       : lv_pool_keys;
        _cleanup_free_ char *suffix = xasprintf(" in %s", pwhere);
        p->pools = xnew(struct config_pool, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("pool #%zu of %s", i + 1, pwhere);
                if (!cfg_expect_map(c, m, where)) continue;
                _cleanup_free_ char *obj = cfg_object_name(m, "pool", i);
                free(where);
                where = xasprintf("%s of %s", obj, pwhere);
                cfg_check_keys(c, m, keys, where);
                cfg_require(c, m, "name", where);
                struct config_pool *pool = &p->pools[p->n_pools++];
                *pool = (struct config_pool){
                        .auto_floating_ip = true,
                        .host_key_checking = true,
                        .priority = p->priority,
                };
                if (cfg_str(c, m, "name", where, &pool->name) > 0) check_duplicate(c, list, i, "pool", suffix);
                pool->max_servers = read_limit(c, m, "max-servers", where);
                pool->max_cores = read_limit(c, m, "max-cores", where);
                pool->max_ram = read_limit(c, m, "max-ram", where);
                pool->max_volumes = read_limit(c, m, "max-volumes", where);
                pool->max_volume_gb = read_limit(c, m, "max-volume-gb", where);
                cfg_bool(c, m, "ignore-provider-quota", where, &pool->ignore_provider_quota);
                cfg_strv(c, m, "availability-zones", where, &pool->availability_zones, false);
                cfg_strv(c, m, "networks", where, &pool->networks, false);
                cfg_strv(c, m, "security-groups", where, &pool->security_groups, false);
                cfg_bool(c, m, "auto-floating-ip", where, &pool->auto_floating_ip);
                cfg_bool(c, m, "host-key-checking", where, &pool->host_key_checking);
                cfg_strmap(c, m, "node-attributes", where, &pool->node_attributes);
                cfg_int(c, m, "priority", where, &pool->priority);
                const struct cnode *l;
                if (p->driver == CONFIG_DRIVER_STATIC) {
                        if ((l = cfg_list(c, m, "nodes", where))) parse_static_nodes(c, cfg, p, pool, l, where);
                } else if ((l = cfg_list(c, m, "labels", where)))
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
}

void config_parse_providers(struct cctx *c, struct config *cfg, const struct cnode *list) {
        cfg->providers = xnew(struct config_provider, list->n);
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
                if (dname) {
                        drv = config_driver_from_string(dname);
                        if (drv < 0) {
                                bool known = false;
                                for (const char *const *u = unsupported_drivers; *u && !known; u++)
                                        known = strcmp(*u, dname) == 0;
                                const struct cnode *at = cnode_get_key(m, "driver");
                                if (known)
                                        cfg_error(c, at, "driver '%s' of %s is not supported by poold", dname, where);
                                else
                                        cfg_error(c, at, "unknown driver '%s' of %s (poold supports openstack, "
                                                  "static and libvirt)", dname, where);
                                continue;
                        }
                }
                cfg_check_keys(c, m,
                               drv == CONFIG_DRIVER_OPENSTACK ? openstack_keys
                               : drv == CONFIG_DRIVER_STATIC  ? static_keys
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
                check_range(c, m, "launch-retries", where, p->launch_retries, 0);
                const struct cnode *l;
                if (drv != CONFIG_DRIVER_STATIC && (l = cfg_list(c, m, "diskimages", where)))
                        parse_provider_diskimages(c, cfg, p, l, where);
                if (drv == CONFIG_DRIVER_OPENSTACK && (l = cfg_list(c, m, "cloud-images", where)))
                        parse_cloud_images(c, p, l, where);
                if ((l = cfg_list(c, m, "pools", where))) parse_pools(c, cfg, p, l, where);
        }
}
