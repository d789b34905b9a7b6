/* config.h — nodepool.yaml (+ optional secure.yaml) loaded into typed structs.
 *
 * Schema: Nodepool's (docs/protocol.md §2) for the top level, labels, diskimages
 * and the openstack, static and metastatic drivers, plus poold's own libvirt
 * driver. Every default below is Nodepool's code default. Providers of Nodepool's
 * other drivers (aws, azure, gce, ibmvpc, kubernetes, openshift, openshiftpods)
 * are validated against Nodepool's schema for their driver and kept
 * apart, in foreign_providers: poold leaves their requests to a launcher running
 * beside it. Keys poold accepts but does not act on yet get a warning each
 * (the table in config_unacted.c). "Unlimited" is CONFIG_UNLIMITED (-1),
 * never a huge number. Diagnostics are returned (struct config_diags), never logged.
 *
 * Thread context: loading is pure (no globals); a loaded struct config is
 * immutable and may be read from any thread. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config_diag.h"

#define CONFIG_UNLIMITED (-1)

struct config_strv {                    /* ordered list of strings */
        char **items;
        size_t n;
};

struct config_kv {
        char *key;
        char *value;                    /* scalar value as written (after %(NODEPOOL_x) substitution) */
};

struct config_strmap {                  /* ordered string -> string map, keys unique */
        struct config_kv *items;
        size_t n;
};

struct config_label {
        char *name;
        int64_t min_ready;              /* 0; -1 = disabled */
        int64_t max_ready_age;          /* seconds, 0 = forever */
};

/* diskimages[].poold.verify: boot one server from every new upload and check
 * it before the upload is marked ready (poold's own key, namespaced under
 * `poold` so Nodepool's schema stays as it is). */
struct config_diskimage_verify {
        bool enabled;                   /* `poold: verify:` present (false: uploads are ready at once) */
        int64_t timeout;                /* seconds for boot + ssh + commands, 900 */
        char *username;                 /* NULL: the diskimage's username */
        char *private_key;              /* NULL: ssh's own default keys */
        struct config_strv commands;    /* run over ssh, each must exit 0; empty: boot + ssh only */
};

struct config_diskimage {               /* parent chain already flattened */
        char *name;
        bool abstract;                  /* never built; only a parent */
        char *parent;                   /* NULL if none */
        struct config_strv elements;    /* appended root → leaf */
        struct config_strmap env_vars;  /* merged root → leaf, then secure file */
        struct config_strv formats;     /* explicit `formats` (may be empty) */
        struct config_strv keep_formats;
        bool delete_after_upload;       /* false */
        char *release;                  /* NULL or DIB_RELEASE */
        int64_t rebuild_age;            /* 86400 */
        int64_t build_timeout;          /* 28800 */
        bool pause;                     /* false */
        char *dib_cmd;                  /* "disk-image-create" */
        char *username;                 /* "zuul" */
        char *python_path;              /* "auto" */
        char *shell_type;               /* NULL */
        struct config_strmap metadata;
        struct config_diskimage_verify verify;
        /* Formats to build: `formats` if given, else the union of what the
         * providers using this image upload (openstack qcow2, libvirt qcow2). */
        struct config_strv needed_formats;
};

enum config_driver {
        CONFIG_DRIVER_OPENSTACK,
        CONFIG_DRIVER_STATIC,
        CONFIG_DRIVER_LIBVIRT,
        CONFIG_DRIVER_METASTATIC,       /* nodes carved out of backing nodes of another label */
        _CONFIG_DRIVER_MAX,
        _CONFIG_DRIVER_INVALID = -EINVAL,
};
const char *config_driver_to_string(enum config_driver d);
enum config_driver config_driver_from_string(const char *s);

/* providers[].diskimages[] (openstack and libvirt). */
struct config_provider_diskimage {
        char *name;                     /* a top-level diskimage */
        bool pause;                     /* false: do not upload */
        int config_drive;               /* openstack; -1 unset, else 0/1 */
        struct config_strmap meta;      /* openstack: image properties */
        char *connection_type;          /* "ssh" */
        int64_t connection_port;        /* 22, or 5986 for winrm */
};

/* providers[].cloud-images[] (openstack). */
struct config_cloud_image {
        char *name;
        char *image_id;                 /* at most one of image_id/image_name; */
        char *image_name;               /* neither: the cloud image is called `name` */
        int config_drive;               /* -1 unset */
        char *username;                 /* "zuul" */
        char *python_path;              /* "auto" */
        char *shell_type;
        char *connection_type;          /* "ssh" */
        int64_t connection_port;        /* 22 / 5986 */
};

struct config_pool_label {
        char *name;                     /* a top-level label */
        char *diskimage;                /* openstack: exactly one of diskimage/cloud_image; libvirt: required */
        char *cloud_image;
        bool host_key_checking;         /* resolved: label value, else the pool's */
        bool console_log;               /* false */
        /* openstack */
        char *flavor_name;              /* at least one of flavor_name/min_ram */
        int64_t min_ram;                /* 0 = unset */
        char *key_name;
        bool boot_from_volume;          /* false */
        int64_t volume_size;            /* 50 GB */
        struct config_strmap instance_properties;
        struct config_strmap dynamic_instance_properties;
        char *userdata;
        struct config_strv networks;    /* resolved: label value, else the pool's */
        /* libvirt */
        int64_t memory;                 /* MiB, 1024 */
        int64_t vcpus;                  /* 1 */
        int64_t disk_size;              /* GiB, 0 = image size */
        int64_t boot_timeout;           /* resolved: label value, else the provider's */
        /* metastatic */
        char *backing_label;            /* required: the label of the backing nodes */
        int64_t max_parallel_jobs;      /* 1: nodes (slots) per backing node */
        int64_t grace_time;             /* 60 s: an idle backing node is kept this long */
        int64_t min_retention_time;     /* 0 s: a backing node is kept at least this long */
        int64_t max_age;                /* 0 = none; older backing nodes take no new node */
};

struct config_static_node {
        char *name;                     /* host name or IP */
        struct config_strv labels;
        char *username;                 /* "zuul" */
        int64_t timeout;                /* 5 s */
        bool host_key_checking;         /* true */
        struct config_strv host_keys;
        char *connection_type;          /* "ssh" */
        int64_t connection_port;        /* 22 (legacy key ssh-port) */
        char *shell_type;
        char *python_path;              /* "auto" */
        int64_t max_parallel_jobs;      /* 1 */
};

struct config_pool {
        char *name;
        int64_t max_servers;            /* CONFIG_UNLIMITED; 0 = pool disabled (config ≤0); static pools too */
        int64_t max_cores;              /* CONFIG_UNLIMITED */
        int64_t max_ram;                /* CONFIG_UNLIMITED, MiB */
        int64_t max_volumes;            /* CONFIG_UNLIMITED (openstack) */
        int64_t max_volume_gb;          /* CONFIG_UNLIMITED (openstack) */
        bool ignore_provider_quota;     /* false */
        struct config_strv availability_zones;
        struct config_strv networks;
        struct config_strv security_groups;
        bool auto_floating_ip;          /* true */
        bool host_key_checking;         /* true */
        struct config_strmap node_attributes;
        int64_t priority;               /* resolved: pool value, else the provider's */
        struct config_pool_label *labels;   /* openstack, libvirt */
        size_t n_labels;
        struct config_static_node *nodes;   /* static */
        size_t n_nodes;
};

enum config_network_mode {
        CONFIG_NETWORK_USER,            /* slirp + 127.0.0.1 port forward */
        CONFIG_NETWORK_NETWORK,         /* a libvirt network */
};

struct config_provider {
        char *name;
        enum config_driver driver;      /* default openstack */
        int64_t max_concurrency;        /* CONFIG_UNLIMITED; 0 = handle no requests */
        int64_t priority;               /* 100, lower wins */
        int64_t boot_timeout;           /* openstack 60, libvirt 120 */
        int64_t launch_timeout;         /* openstack 3600, libvirt 600 */
        int64_t launch_retries;         /* 3 */
        char *image_name_format;        /* "{image_name}-{timestamp}" */
        struct config_provider_diskimage *diskimages;
        size_t n_diskimages;
        struct config_pool *pools;
        size_t n_pools;
        /* openstack */
        char *cloud;                    /* required */
        char *region_name;
        int64_t image_upload_timeout;   /* 3600 */
        double rate;                    /* 1.0 s between API calls */
        bool clean_floating_ips;        /* false (code default) */
        int64_t port_cleanup_interval;  /* 600; 0 disables */
        char *post_upload_hook;         /* also libvirt; run by the builder after each upload */
        char *nodepool_id;              /* deprecated */
        struct config_cloud_image *cloud_images;
        size_t n_cloud_images;
        /* libvirt */
        char *uri;                      /* "qemu:///system" */
        char *domain_type;              /* "auto" | "kvm" | "qemu" */
        char *storage_pool;             /* "poold" */
        char *storage_pool_path;        /* "/var/lib/poold/images" */
        enum config_network_mode network_mode;   /* user */
        char *network;                  /* required iff network_mode == NETWORK */
        int64_t port_range[2];          /* {22000, 22999} */
        /* Canonical text of the provider's YAML subtree, for config_provider_equal(). */
        char *canonical;
};

/* A provider poold does not launch for: its labels are served by another
 * launcher on the same ZooKeeper (e.g. Nodepool's own). Only what the request
 * path needs to know is kept. */
struct config_foreign_pool {
        char *name;
        struct config_strv labels;      /* the pool's label names, in file order */
};

struct config_foreign_provider {
        char *name;
        char *driver;                   /* Nodepool's driver name, e.g. "aws" */
        struct config_foreign_pool *pools;
        size_t n_pools;
};

struct config_zk_server {
        char *host;
        int64_t port;                   /* 2281 (Nodepool code default) */
        char *chroot;                   /* NULL or "/path" */
};

struct config_tenant_limit {
        char *tenant_name;
        int64_t max_servers, max_cores, max_ram, max_volumes, max_volume_gb;  /* CONFIG_UNLIMITED */
        struct config_strmap other;     /* further "<resource>: int" keys, values as decimal text */
};

struct config {
        unsigned refs;                  /* config_ref/config_free; 1 when loaded (atomic) */
        char *path;                     /* the file it was loaded from */
        int64_t webapp_port;            /* 8005 */
        char *webapp_listen_address;    /* "0.0.0.0" */
        char *elements_dir;
        char *images_dir;
        char *build_log_dir;            /* "/var/log/nodepool/builds" */
        int64_t build_log_retention;    /* 7; -1 = keep all */
        struct config_zk_server *zk_servers;
        size_t n_zk_servers;
        char *zk_tls_cert, *zk_tls_key, *zk_tls_ca; /* zookeeper-tls: all three or none */
        double zk_timeout;              /* 10.0 s */
        struct config_label *labels;
        size_t n_labels;
        struct config_diskimage *diskimages;
        size_t n_diskimages;
        struct config_provider *providers;      /* the ones poold launches for */
        size_t n_providers;
        struct config_foreign_provider *foreign_providers;      /* served by another launcher */
        size_t n_foreign_providers;
        int64_t max_hold_age;           /* seconds; 0 = infinite (config ≤0 or absent) */
        struct config_tenant_limit *tenant_limits;
        size_t n_tenant_limits;
};

/* Load PATH and, if SECURE_PATH is non-NULL, merge the secure file into it.
 * Every problem (and warning) found is appended to DIAGS (may be NULL), in file
 * order. Returns 0 and sets *ret (caller frees with config_free) when there is
 * no error (warnings allowed); -EINVAL when there are errors (*ret untouched);
 * another -errno when a file cannot be read (a diagnostic names it). */
int config_load(const char *path, const char *secure_path, struct config **ret, struct config_diags *diags);

/* Same from memory; NAME is used in diagnostics and as config->path. SECURE may
 * be NULL (secure_name is then ignored). Never reads the filesystem. */
int config_load_buffer(const char *name, const char *data, size_t len,
                       const char *secure_name, const char *secure, size_t secure_len,
                       struct config **ret, struct config_diags *diags);

/* Drop one reference; the last frees. NULL is a no-op. */
void config_free(struct config *c);
/* Another reference (any thread), so a worker can keep borrowed pointers into
 * C across a reload; returns C. */
struct config *config_ref(struct config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free);

/* Lookups by name; NULL if absent. Pointers stay valid until config_free. */
const struct config_label *config_find_label(const struct config *c, const char *name);
const struct config_diskimage *config_find_diskimage(const struct config *c, const char *name);
const struct config_provider *config_find_provider(const struct config *c, const char *name);
const struct config_pool *config_find_pool(const struct config_provider *p, const char *name);

/* libzookeeper host string "h1:p1,[v6]:p2/chroot" (xmalloc'd, caller frees);
 * NULL when no zookeeper-servers are configured. */
char *config_zookeeper_hosts(const struct config *c);
/* zookeeper-tls as zk_new() takes it, pointing into C: BUF filled and returned,
 * or NULL without zookeeper-tls (plaintext). */
struct zk_tls;
const struct zk_tls *config_zookeeper_tls(const struct config *c, struct zk_tls *buf);
/* Same zookeeper-tls (both none, or the same three paths)? */
bool config_zookeeper_tls_equal(const struct config *a, const struct config *b);

/* True when two providers have the same name, driver and configuration text
 * (key order and formatting ignored), so a reload can keep it running. It does
 * not compare the top-level labels/diskimages the provider refers to. */
bool config_provider_equal(const struct config_provider *a, const struct config_provider *b);

/* True when a pool of a provider poold runs (openstack, libvirt, static) lists
 * LABEL, whatever that pool's max-servers. */
bool config_label_served_by_poold(const struct config *c, const char *label);
/* True when LABEL is served only by providers of drivers poold leaves to another
 * launcher (at least one such pool lists it, and no pool of poold's does): a
 * request for it is not poold's to decline or fail. */
bool config_label_foreign_only(const struct config *c, const char *label);

bool config_strv_contains(const struct config_strv *v, const char *s);
const char *config_strmap_get(const struct config_strmap *m, const char *key);
