/* provider.h — cloud provider drivers behind one table of functions.
 *
 * A provider is one configured cloud (nodepool.yaml `providers[]` entry). The
 * launcher opens it with provider_open() from plain parameters (filled from the
 * config; this module knows nothing of config structs) and calls the ops.
 *
 * Threading contract: every op is a BLOCKING call meant to run on one of the
 * launcher's worker threads. Ops are thread-safe: any number of them may run
 * concurrently on the same provider instance. Only provider_close() must not
 * race with other ops (call it after the workers are done).
 *
 * Errors: ops return 0 or a negative errno. Every op takes `char **reterr_msg`
 * (may be NULL): on failure it receives a human-readable, caller-freed message
 * (e.g. libvirt's own error text) for the launcher to log; it is untouched on
 * success and never contains credentials. Significant codes:
 *   -ENOENT     the server/image does not exist (delete callers treat it as done)
 *   -EDQUOT     the cloud refused for quota/capacity: the launcher marks the node
 *               aborted, invalidates its quota cache and retries later
 *   -EOPNOTSUPP the driver (or this backend, e.g. libvirt's test driver) cannot
 *   -EHOSTDOWN  the cloud could not be reached (after the driver's retries):
 *               nothing was done; worth pausing and retrying later
 *   -EACCES     the cloud refused the provider's credentials (a configuration
 *               problem: pause, retry later, do not fail requests for it)
 *   others      real failures
 * Out-parameters named ret_* are set only on success. Every returned object has a
 * NULL-safe free function below. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Tags of a server poold-builder boots to check a new upload (not a node):
 * "<image>/<build>/<provider>/<upload>" and the builder's id. The launcher's
 * leak sweep leaves such servers to the builder, which deletes its own. */
#define PROVIDER_TAG_VERIFY "poold_verify"
#define PROVIDER_TAG_VERIFY_BUILDER "poold_verify_builder"

/* Borrowed key/value, for inputs (nothing is freed or modified). */
struct provider_kv {
        const char *key;
        const char *value;
};

/* Owned key/value, for outputs (freed with the object holding it). */
struct provider_tag {
        char *key;
        char *value;
};

enum provider_server_state {
        PROVIDER_SERVER_BUILDING,
        PROVIDER_SERVER_ACTIVE,
        PROVIDER_SERVER_ERROR,
        _PROVIDER_SERVER_STATE_MAX,
        _PROVIDER_SERVER_STATE_INVALID = -EINVAL,
};
const char *provider_server_state_to_string(enum provider_server_state s);
enum provider_server_state provider_server_state_from_string(const char *s);

/* What a node costs (node JSON `resources`). */
struct provider_resources {
        int cores;
        int ram_mib;
        int instances;
};

/* A server as the cloud sees it. Every string may be NULL when unknown. */
struct provider_server {
        char *external_id;                 /* cloud id; libvirt: domain name */
        enum provider_server_state state;
        char *interface_ip;                /* what Zuul connects to */
        char *public_ipv4, *private_ipv4, *public_ipv6;
        int connection_port;               /* 0 = unknown (22 implied) */
        char *az, *region, *host_id;
        struct provider_resources resources;
        char *fault;                       /* why it is in ERROR, as the cloud says (redacted), or NULL */
        /* Our own tags read back from the resource (list/get), e.g.
         * nodepool_provider_name, nodepool_pool_name, nodepool_node_id. */
        struct provider_tag *tags;
        size_t n_tags;
};
void provider_server_free(struct provider_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct provider_server *, provider_server_free);
/* Frees an array returned by ops.list (each element and the array). */
void provider_server_array_free(struct provider_server **v, size_t n);
/* Value of tag KEY or NULL. */
const char *provider_server_tag(const struct provider_server *s, const char *key);

struct provider_image {
        char *external_id;                 /* pass to create()/image_delete() */
        char *name;                        /* the name given at upload */
        char *format;                      /* qcow2, raw, ... */
        uint64_t size;                     /* bytes (capacity), 0 = unknown */
        struct provider_tag *tags;
        size_t n_tags;
};
void provider_image_free(struct provider_image *img);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct provider_image *, provider_image_free);
void provider_image_array_free(struct provider_image **v, size_t n);
const char *provider_image_tag(const struct provider_image *img, const char *key);

/* Cloud limits; -1 = unlimited. free_ram_mib is informational (host free memory
 * now): the launcher subtracts usage from the max_* itself. Volumes (OpenStack
 * with Cinder in its catalog): limits and the cloud's used totals, which the
 * launcher turns into unmanaged usage; -1 and 0 when the cloud has none. */
struct provider_limits {
        long long max_instances;
        long long max_cores;
        long long max_ram_mib;
        long long free_ram_mib;
        long long max_volumes;
        long long max_volume_gb;
        long long used_volumes;
        long long used_volume_gb;
};

struct provider_create_req {
        const char *node_id;               /* 10 digits */
        const char *hostname;              /* "np" + node_id */
        const char *label;
        const char *pool;                  /* pool name (config) */
        const char *image;                 /* external id of the uploaded image */
        int memory_mib;
        int vcpus;
        int disk_gib;                      /* 0 = the image's size */
        const char *az;                    /* availability zone to place it in; NULL = the cloud's choice */
        const struct provider_kv *tags;    /* tag the server with these (nodepool_* + any) */
        size_t n_tags;
};

enum provider_libvirt_domain_type {
        PROVIDER_LIBVIRT_DOMAIN_AUTO,      /* kvm iff the URI is qemu:// and kvm_probe() says KVM works */
        PROVIDER_LIBVIRT_DOMAIN_KVM,
        PROVIDER_LIBVIRT_DOMAIN_QEMU,
        _PROVIDER_LIBVIRT_DOMAIN_MAX,
        _PROVIDER_LIBVIRT_DOMAIN_INVALID = -EINVAL,
};

enum provider_libvirt_network_mode {
        PROVIDER_LIBVIRT_NET_USER,         /* slirp + ssh forward on 127.0.0.1:PORT */
        PROVIDER_LIBVIRT_NET_NETWORK,      /* a libvirt network; address from DHCP leases */
        _PROVIDER_LIBVIRT_NET_MAX,
        _PROVIDER_LIBVIRT_NET_INVALID = -EINVAL,
};

/* All strings are borrowed for the duration of provider_open() (copied). */
struct provider_libvirt_params {
        const char *uri;                   /* NULL = "qemu:///system" */
        enum provider_libvirt_domain_type domain_type;
        const char *storage_pool;          /* NULL = "poold" */
        const char *storage_pool_path;     /* dir pool created here if missing; NULL = /var/lib/poold/images */
        enum provider_libvirt_network_mode network_mode;
        const char *network;               /* network mode: NULL = "default" */
        int port_low, port_high;           /* user mode host ports; 0,0 = 22000..22999 */
        const char *console_dir;           /* serial console logs; NULL = storage_pool_path */
};

/* One pool label of an openstack provider: what create() needs beyond the
 * request (looked up by create_req.pool + create_req.label). Borrowed. */
struct provider_openstack_label {
        const char *pool;                  /* pool name */
        const char *label;                 /* label name */
        const char *diskimage;             /* diskimage name (for `groups`), or NULL */
        const char *cloud_image_id;        /* cloud-image: boot this image id ... */
        const char *cloud_image_name;      /* ... or the image of this name (when create_req.image is NULL) */
        const char *flavor_name;           /* at least one of flavor_name/min_ram */
        long long min_ram;                 /* MiB; 0 = choose by name only */
        const char *key_name;
        const char *userdata;              /* plain text; base64-encoded by the driver */
        int config_drive;                  /* -1 unset, 0 no, 1 yes */
        bool boot_from_volume;
        long long volume_size;             /* GB, for boot_from_volume */
        const char *const *networks;       /* names or ids; "none"/"auto" alone pass through */
        size_t n_networks;
        const char *const *security_groups;
        size_t n_security_groups;
        const struct provider_kv *instance_properties; /* extra server metadata */
        size_t n_instance_properties;
        bool auto_floating_ip;             /* the pool's auto-floating-ip */
};

struct provider_openstack_params {
        const char *cloud;                 /* clouds.yaml cloud name (required) */
        const char *region_name;           /* NULL = the cloud's */
        double rate;                       /* seconds between API calls, shared by all pools; 0 = none */
        long long image_upload_timeout;    /* seconds; 0 = 3600 */
        long long api_timeout;             /* seconds per API request; 0 = 60 */
        const struct provider_openstack_label *labels;
        size_t n_labels;
};

struct statsd;

struct provider_params {
        const char *name;                  /* provider name from the config (required) */
        const char *driver;                /* "libvirt", ... (required) */
        /* The daemon's statsd client for the driver's API-call metrics (NULL = none).
         * Borrowed: it must outlive the provider; drivers use it from any thread. */
        struct statsd *statsd;
        /* Driver-specific parameters: only the member named like the driver is read. */
        struct provider_libvirt_params libvirt;
        struct provider_openstack_params openstack;
};

struct provider;

struct provider_ops {
        const char *driver;
        /* Connect and prepare; on success *ret is a new instance. */
        int (*open)(const struct provider_params *params, struct provider **ret, char **reterr_msg);
        /* Free the instance and its driver state (NULL-safe). */
        void (*close)(struct provider *p);
        /* Create and boot a server; *ret_server describes it (state may be BUILDING).
         * -ENOENT: the image does not exist; -EEXIST: a server for this node id exists;
         * -EDQUOT: no capacity (e.g. host ports or memory exhausted). On failure
         * nothing is left behind. */
        int (*create)(struct provider *p, const struct provider_create_req *req,
                      struct provider_server **ret_server, char **reterr_msg);
        /* Current state and addresses; -ENOENT when gone. */
        int (*get)(struct provider *p, const char *external_id, struct provider_server **ret_server,
                   char **reterr_msg);
        /* Stop and remove a server with its storage and reservations. Idempotent:
         * returns -ENOENT when nothing was left to delete (callers treat it as success). */
        int (*delete)(struct provider *p, const char *external_id, char **reterr_msg);
        /* Every server of this provider (with tags), for leak detection; one array. */
        int (*list)(struct provider *p, struct provider_server ***ret_servers, size_t *ret_n,
                    char **reterr_msg);
        int (*quota)(struct provider *p, struct provider_limits *ret_limits, char **reterr_msg);
        /* Upload the local file LOCAL_PATH (FORMAT: qcow2, raw, ...) as image IMAGE_NAME
         * tagged with TAGS; *ret_external_id names it for create()/image_delete().
         * MD5 and SHA256 are the file's digests in lower-case hex (each may be NULL:
         * unknown), recorded where the cloud has a place for them (OpenStack: the
         * owner_specified.openstack.* properties openstacksdk sets); a driver
         * without one ignores them. -EEXIST if that upload exists already (never
         * overwritten). */
        int (*image_upload)(struct provider *p, const char *local_path, const char *format, const char *md5,
                            const char *sha256, const char *image_name, const struct provider_kv *tags,
                            size_t n_tags, char **ret_external_id, char **reterr_msg);
        /* Idempotent like delete: -ENOENT when already gone. */
        int (*image_delete)(struct provider *p, const char *external_id, char **reterr_msg);
        /* Every image this provider uploaded (with tags). */
        int (*image_list)(struct provider *p, struct provider_image ***ret_images, size_t *ret_n,
                          char **reterr_msg);
        /* Console output (optional: NULL op or -EOPNOTSUPP). */
        int (*console_log)(struct provider *p, const char *external_id, char **ret_text, char **reterr_msg);
        /* When get() first reports the server of POOL/LABEL ACTIVE, before it is scanned
         * and handed out (called again after a failure, so idempotent): make it
         * reachable where the cloud did not (OpenStack: a floating IP when the pool's
         * auto-floating-ip is set and the server has a private address only).
         * Updates SERVER's addresses in place. What it adds, delete() removes.
         * Optional (NULL: nothing to do). */
        int (*finish_create)(struct provider *p, const char *pool, const char *label, struct provider_server *server,
                             char **reterr_msg);
        /* The cloud's availability zones a server may be created in now (OpenStack:
         * the available ones Nova lists), for the launcher to choose one per
         * request when the pool names none. *ret_azs: N owned names
         * (provider_strv_free). Optional (NULL: the cloud has no zones). */
        int (*availability_zones)(struct provider *p, char ***ret_azs, size_t *ret_n, char **reterr_msg);
        /* Remove leaked network resources: with FLOATING_IPS, floating IPs attached
         * to no port; with PORT_INTERVAL > 0 (seconds), ports seen DOWN at two checks
         * more than PORT_INTERVAL apart (the driver remembers the last check; calls
         * in between do nothing for ports). *ret_fips / *ret_ports: how many were
         * deleted. Optional (NULL: the cloud has no such resources). */
        int (*cleanup_network)(struct provider *p, bool floating_ips, long long port_interval, size_t *ret_fips,
                               size_t *ret_ports, char **reterr_msg);
};

struct provider {
        const struct provider_ops *ops;
        char *name;                        /* provider name (owned) */
        void *data;                        /* driver-private state */
};

/* The driver table (defined in its own file). */
extern const struct provider_ops provider_libvirt_ops;
extern const struct provider_ops provider_openstack_ops;

/* Find the ops for DRIVER ("libvirt", ...); NULL if unknown. Any thread. */
const struct provider_ops *provider_ops_find(const char *driver);
/* Open a provider by params->driver. -EINVAL (with message) for an unknown driver
 * or missing name; otherwise what the driver's open returns. Any thread. */
int provider_open(const struct provider_params *params, struct provider **ret, char **reterr_msg);
/* Close (NULL-safe); no op may be running on P. */
void provider_close(struct provider *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct provider *, provider_close);

/* Helpers for drivers. */
/* Allocate a provider with OPS and a copy of NAME; data NULL. */
struct provider *provider_new(const struct provider_ops *ops, const char *name);
/* Store a formatted message in *reterr_msg (if non-NULL) and return -abs(r). */
int provider_error(char **reterr_msg, int r, const char *fmt, ...) _printf_(3, 4);
/* Deep-copy N borrowed tags into an owned array (NULL when n == 0). */
struct provider_tag *provider_tags_copy(const struct provider_kv *tags, size_t n);
void provider_tags_free(struct provider_tag *tags, size_t n);
/* Free N owned strings and their array (NULL-safe). */
void provider_strv_free(char **v, size_t n);
