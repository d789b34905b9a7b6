/* provider_openstack.h — the pure parts of the OpenStack driver, exposed for
 * unit tests (the driver itself is provider_openstack_ops in provider.h).
 *
 * Everything here decodes untrusted API bodies totally: a malformed body is
 * -EBADMSG with a message, never a crash or a partial result. Any thread. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "provider.h"

struct openstack_flavor {
        char *id, *name;
        int vcpus;
        long long ram_mib;
        long long disk_gb;
        bool disabled;
};
void openstack_flavors_free(struct openstack_flavor *v, size_t n);

/* Decode GET /flavors/detail. -EBADMSG if BODY is not such a document. */
int openstack_flavors_from_json(json_t *body, struct openstack_flavor **ret, size_t *ret_n, char **reterr_msg);

/* Nodepool's choice: with MIN_RAM > 0, the flavor with the least RAM ≥ MIN_RAM
 * (ties: fewer vcpus, then name) whose name contains FLAVOR_NAME when given;
 * else the flavor whose name or id equals FLAVOR_NAME. Disabled flavors never.
 * NULL when none fits. */
const struct openstack_flavor *openstack_flavor_choose(const struct openstack_flavor *v, size_t n,
                                                       const char *flavor_name, long long min_ram);

/* Decode GET /limits into *ret (-1 = unlimited; free_ram_mib = max − used, or
 * -1 when unlimited). -EBADMSG when absolute limits are missing. */
int openstack_limits_from_json(json_t *body, struct provider_limits *ret, char **reterr_msg);
/* Decode Cinder's GET /v3/{project}/limits into L's volume fields (max_* -1 =
 * unlimited; used_* the project's totals). -EBADMSG when malformed; L untouched then. */
int openstack_volume_limits_from_json(json_t *body, struct provider_limits *l, char **reterr_msg);

/* Decode GET /os-availability-zone into the names of the available zones
 * (openstacksdk's list_availability_zone_names; may be none). *RET: *RET_N
 * owned names (provider_strv_free). -EBADMSG when the list is missing. */
int openstack_azs_from_json(json_t *body, char ***ret, size_t *ret_n, char **reterr_msg);

/* Decode one Nova server object. REGION is copied into the result; FLAVORS
 * (may be empty) resolves resources when the server only names a flavor id.
 * Status DELETED/SOFT_DELETED is -ENOENT. Metadata becomes tags. */
int openstack_server_from_json(json_t *server, const char *region, const struct openstack_flavor *flavors,
                               size_t n_flavors, struct provider_server **ret, char **reterr_msg);

/* Decode GET /servers/detail (every server; unreadable ones are skipped only
 * when DELETED). -EBADMSG when the document is malformed. */
int openstack_servers_from_json(json_t *body, const char *region, const struct openstack_flavor *flavors,
                                size_t n_flavors, struct provider_server ***ret, size_t *ret_n, char **reterr_msg);

/* Decode one Glance v2 image: string properties that are not Glance's own
 * fields become tags (the `tags` list too, as "tag:<t>" = ""). */
int openstack_image_from_json(json_t *image, struct provider_image **ret, char **reterr_msg);

/* The POST /v2/images body for an upload by PROVIDER (new reference): NAME,
 * disk_format FORMAT (NULL = qcow2), container bare, private, tagged "nodepool";
 * TAGS as properties (those named like Glance's own fields are skipped), with
 * nodepool_provider_name = PROVIDER unless TAGS set it; and as openstacksdk's
 * create_image does, owner_specified.openstack.object = "images/<NAME>" and
 * .md5/.sha256 = MD5/SHA256 when each is a well-formed hex digest (else left
 * out; NULL = unknown). */
json_t *openstack_image_create_body(const char *provider, const char *image_name, const char *format,
                                    const char *md5, const char *sha256, const struct provider_kv *tags,
                                    size_t n_tags);

/* The Nova `networks` value for a label that names no network, from Neutron's
 * GET /networks list NETWORKS (its "networks" array) and whether the cloud
 * offers auto-allocated-topology: "auto" when the project has a network Nova
 * can choose (its own or shared; a bare external one is not) or can have one
 * allocated, or when NETWORKS is not an array (unknown: Nova decides); else
 * "none", since "auto" would be refused. Static string. */
const char *openstack_default_networks(json_t *networks, bool auto_allocation);

/* The id of the port in GET /v2.0/ports body PORTS (its "ports" array) that
 * holds fixed address ADDR (the port a floating IP for ADDR attaches to), or
 * NULL. Borrowed from PORTS. */
const char *openstack_port_for_address(json_t *ports, const char *addr);

/* Whether PORT (one object of GET /v2.0/ports) is one the port cleanup may
 * remove once seen DOWN twice: Nodepool's _filterComputePorts, a port with no
 * device owner or one owned by Nova ("compute:*"), never a router's or DHCP's. */
bool openstack_port_cleanable(json_t *port);

/* Map an API error response to -errno and a message "SERVICE: HTTP n: text":
 * 404 -ENOENT, 409 -EEXIST, 401 -EACCES, 403/413 with "quota" or "limit" in the
 * text -EDQUOT (Nova's quota refusal), other 403 -EPERM, other 4xx -EINVAL,
 * 5xx -EIO. BODY may be NULL or any text (JSON error documents are read). */
int openstack_error_from_response(const char *service, long status, const char *body, size_t len,
                                  char **ret_msg);

/* Standard base64 of DATA (caller frees). For Nova's user_data. */
char *openstack_base64(const char *data, size_t len);

/* The operation part of an API call's statsd name, as openstacksdk's
 * Proxy._extract_name makes it from the request URL's path (Nodepool's
 * nodepool.task.<provider>.<service>.<METHOD>.<name>): PROJECT_ID (may be
 * NULL) and "AUTH_<id>" segments and a ".json" suffix dropped; a path ending
 * in "detail" keeps its last two segments; else a leading "v<digit>…" version
 * segment is dropped and every other segment kept, a collection followed by
 * an id losing its plural 's' ("/servers/ID/action" -> "server_action"); a
 * path ending in "tokens" is "tokens"; none left is "discovery". Segments are
 * joined with '_', '.' and ':' in them made '_'. Caller frees. */
char *openstack_api_metric_name(const char *url, const char *project_id);
