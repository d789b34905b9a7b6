/* model_node.h — Nodepool's Node record (/nodepool/nodes/<id>), protocol.md §1.5.
 *
 * A decoded node keeps the JSON object it came from (raw): node_to_json()
 * overlays the typed fields on it, so keys written by Zuul ("id", anything
 * newer) survive our rewrites. Any thread may use a node it owns; nodes are
 * not shared. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum node_state {
        NODE_STATE_BUILDING,
        NODE_STATE_TESTING,
        NODE_STATE_READY,
        NODE_STATE_IN_USE,
        NODE_STATE_USED,
        NODE_STATE_HOLD,
        NODE_STATE_DELETING,
        NODE_STATE_FAILED,
        NODE_STATE_INIT,
        NODE_STATE_ABORTED,
        NODE_STATE_DELETED,
        _NODE_STATE_MAX,
        _NODE_STATE_INVALID = -EINVAL,
};

const char *node_state_to_string(enum node_state s);   /* NULL when out of range */
enum node_state node_state_from_string(const char *s); /* _NODE_STATE_INVALID when unknown or NULL */

/* Strings: NULL = JSON null. strv fields are never NULL in a decoded node.
 * json_t fields are opaque values we carry (owned references, NULL = null). */
struct node {
        char *id;                 /* znode name, 10 digits; not part of the JSON */
        enum node_state state;
        double state_time;        /* MODEL_TIME_NONE = null */
        char *cloud;
        char *provider;
        char *pool;
        char **type;              /* labels; legacy plain string read as one label */
        char *allocated_to;       /* request id */
        char *az;
        char *region;
        char *public_ipv4;
        char *private_ipv4;
        char *public_ipv6;
        char *host_id;
        char *interface_ip;
        int connection_port;      /* from connection_port, else ssh_port, else 22 */
        json_t *connection_port_other; /* set instead when the value is not a port number (k8s dict, null) */
        char *image_id;           /* upload znode path or cloud image name */
        char *launcher;
        double created_time;
        json_t *external_id;      /* str or dict */
        char *hostname;
        char *comment;
        json_t *user_data;
        char *hold_job;
        char **host_keys;
        char *username;           /* read default "zuul" */
        char *connection_type;
        char *shell_type;
        bool hold_expiration_set; /* false = null */
        int64_t hold_expiration;  /* coerced to int as Nodepool does */
        json_t *resources;
        bool slot_set;
        int64_t slot;
        json_t *attributes;
        char *python_path;        /* read default null */
        char *tenant_name;
        json_t *driver_data;
        char *requestor;
        json_t *node_properties;
        json_t *raw;              /* the object as read (owned), NULL for a new node */
};

/* A new node with Nodepool's constructor defaults (state init, port 22,
 * empty type/host_keys, everything else null). id may be NULL. */
struct node *node_new(const char *id);
void node_free(struct node *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct node *, node_free);

/* Decode a node znode payload. id (may be NULL) is copied. Returns 0 and a
 * new node in *ret, or a negative errno with err->msg saying why (malformed
 * JSON, wrong types, unknown state, > MODEL_JSON_MAX bytes). Never aborts
 * on bad input. */
int node_from_json(const char *data, size_t len, const char *id, struct node **ret, struct model_error *err);

/* Encode as Nodepool's Node.toDict() writes it (every key, nulls included,
 * ssh_port = connection_port) on top of the keys read. Returns 0 and a
 * malloc'd NUL-terminated string (length in *ret_len if non-NULL), -EINVAL if
 * a string field is not UTF-8, -E2BIG above MODEL_JSON_MAX. */
int node_to_json(const struct node *n, char **ret, size_t *ret_len);

/* Set state and state_time = now, as Nodepool's state setter does. */
void node_set_state(struct node *n, enum node_state s);

/* Node ids are ZooKeeper sequence numbers: exactly 10 decimal digits. */
bool node_id_is_valid(const char *id);
