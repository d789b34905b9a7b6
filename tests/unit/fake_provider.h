/* fake_provider.h — an in-process cloud for the launcher's unit tests.
 *
 * fake_provider.c defines provider_libvirt_ops (see there why): a test binary
 * that links it gets, for every provider of driver `libvirt` in its config, a
 * cloud whose servers and images live in memory, plus controls for what a real
 * cloud does to a launcher: failing creates, slow boots, quota limits, servers
 * that are not ours, images. Never linked into a daemon.
 *
 * One cloud per provider name, made by fake_cloud() or when the launcher opens
 * the provider; it outlives close and reopen (as a real cloud outlives the
 * launcher) until fake_clouds_free(). Provider ops run on the launcher's worker
 * threads: every function here is thread-safe (one mutex), and returns copies
 * or counts, never pointers into the cloud. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "provider.h"

struct fake_cloud;

enum fake_op {
        FAKE_OP_CREATE,
        FAKE_OP_GET,
        FAKE_OP_DELETE,
        FAKE_OP_LIST,
        FAKE_OP_QUOTA,
        FAKE_OP_IMAGE_UPLOAD,
        FAKE_OP_IMAGE_DELETE,
        FAKE_OP_IMAGE_LIST,
        FAKE_OP_AZS,
        _FAKE_OP_MAX,
};

/* The cloud of provider NAME, made empty (unlimited, creates succeed, servers
 * ACTIVE at once) if there is none yet. Owned by the registry. */
struct fake_cloud *fake_cloud(const char *name);
/* Free every cloud (after the launcher closed its providers). */
void fake_clouds_free(void);

/* N calls of OP fail with R (negative errno, e.g. -EDQUOT, -EHOSTDOWN, -EIO)
 * and change nothing: the next N, or the N after those already set to fail
 * (queued, up to 8 runs per op). */
void fake_cloud_fail(struct fake_cloud *c, enum fake_op op, int r, unsigned n);
/* HOLD: servers created from now on stay BUILDING until fake_cloud_boot_all(). */
void fake_cloud_hold_boot(struct fake_cloud *c, bool hold);
/* Every BUILDING server becomes ACTIVE (get() reports it). Returns how many. */
unsigned fake_cloud_boot_all(struct fake_cloud *c);
/* What quota() reports; -1 = unlimited (the default). */
void fake_cloud_set_limits(struct fake_cloud *c, long long max_instances, long long max_cores, long long max_ram_mib);
/* The cloud's availability zones, as availability_zones() lists them (none by
 * default: a cloud that does not say, as a policy may hide Nova's list). A
 * create naming a zone the list lacks fails with -EINVAL (Nova's 400); with no
 * list any zone named is taken. A create naming none lands in the listed
 * zones in turn (a scheduler spreading servers), or in "fake-az". */
void fake_cloud_set_azs(struct fake_cloud *c, const char *const *azs, size_t n);
/* What quota() reports for volumes, as Cinder's limits: maxima (-1 = unlimited,
 * the default) and the project's used totals, which are USED_* (others'
 * volumes) plus the volumes of the cloud's own servers (set_volume_label). */
void fake_cloud_set_volume_limits(struct fake_cloud *c, long long max_volumes, long long max_volume_gb,
                                  long long used_volumes, long long used_volume_gb);
/* Servers created for LABEL from now on boot from a volume of VOLUME_GB (as the
 * launcher's boot-from-volume label): it counts in the used totals until the
 * server is deleted. */
void fake_cloud_set_volume_label(struct fake_cloud *c, const char *label, int volume_gb);
/* A server made behind the launcher's back (ACTIVE): with PROVIDER and NODE_ID
 * non-NULL tagged as the launcher tags its own (a leak when the node is unknown),
 * without them someone else's (unmanaged usage). Returns its external id
 * (caller frees). */
char *fake_cloud_add_server(struct fake_cloud *c, const char *provider, const char *node_id, int cores, int ram_mib);
/* An image image_list() reports, tagged KEY=VALUE (both may be NULL: untagged). */
void fake_cloud_add_image(struct fake_cloud *c, const char *external_id, const char *name, const char *key,
                          const char *value);

/* How many times OP was called (failed calls included). */
unsigned fake_cloud_calls(struct fake_cloud *c, enum fake_op op);
/* Servers and images the cloud holds now. */
size_t fake_cloud_n_servers(struct fake_cloud *c);
size_t fake_cloud_n_images(struct fake_cloud *c);
/* Move server EXTERNAL_ID to zone AZ (a test arranging a server in a zone it
 * cannot create there). */
void fake_cloud_set_server_az(struct fake_cloud *c, const char *external_id, const char *az);
/* The zone server EXTERNAL_ID is in, or NULL when there is no such server (caller frees). */
char *fake_cloud_server_az(struct fake_cloud *c, const char *external_id);
/* True when a server with EXTERNAL_ID exists. */
bool fake_cloud_has_server(struct fake_cloud *c, const char *external_id);
/* The external id of the server tagged nodepool_node_id=NODE_ID, or NULL (caller frees). */
char *fake_cloud_server_of_node(struct fake_cloud *c, const char *node_id);
/* True while the launcher has the provider open. */
bool fake_cloud_is_open(struct fake_cloud *c);
