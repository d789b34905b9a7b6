/* static_nodes.h — the static driver's node registration (protocol.md §2.5) as
 * pure functions over data: config + the provider's nodes in ZooKeeper in,
 * a list of actions out. The launcher applies them (create a znode, lock and
 * rewrite, lock and set deleting) and plans again whenever the config, the
 * node cache or a scan result changes.
 *
 * Rules, as Nodepool's StaticNodeProvider: a host is identified by the tuple
 * (name, username, connection-port), which must be unique in the provider.
 * Each host owns max-parallel-jobs slots 0..n-1; every empty slot gets a READY
 * node. A node occupies the slot it names, or (legacy, no slot) the first
 * free one; nodes in building/deleting/deleted occupy nothing, so a slot whose
 * node is being deleted is registered again. Nodes beyond the slots and nodes
 * of hosts no longer configured are deregistered, but only when READY,
 * unallocated and unlocked — the others are left until they have been used.
 * READY unallocated unlocked nodes whose attributes differ from the config
 * are updated. All functions are pure; any thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "model_node.h"

#define STATIC_NODES_LAUNCHER "static driver"

enum static_nodes_action_kind {
        STATIC_NODES_REGISTER,   /* create action->node (a new READY node, no id) */
        STATIC_NODES_DEREGISTER, /* lock nodes[index] (non-blocking), re-read, if still READY set DELETING */
        STATIC_NODES_UPDATE,     /* lock nodes[index], re-read, static_nodes_apply_update(), store */
        _STATIC_NODES_ACTION_MAX,
        _STATIC_NODES_ACTION_INVALID = -EINVAL,
};
const char *static_nodes_action_to_string(enum static_nodes_action_kind k);

struct static_nodes_action {
        enum static_nodes_action_kind kind;
        const struct config_pool *pool;         /* REGISTER/UPDATE: the host's pool; else NULL */
        const struct config_static_node *host;  /* REGISTER/UPDATE: its config entry; else NULL */
        int64_t slot;                           /* REGISTER: the slot filled; else the node's position */
        size_t index;                           /* DEREGISTER/UPDATE: index into the input nodes */
        /* REGISTER: the complete node to store. UPDATE: the new values of the
         * managed attributes (type, username, connection_port/type, shell_type,
         * python_path, host_keys). Owned by the plan. NULL for DEREGISTER. */
        struct node *node;
        /* REGISTER/UPDATE: no scan result was given for a host that needs one
         * (ssh with host-key-checking: keys are the configured host-key so far;
         * other connection types: the port was not checked yet). */
        bool needs_scan;
};

/* A nodescan result for one host identity, as the launcher got it from keyscan. */
struct static_nodes_scan {
        const char *name;
        const char *username;
        int64_t port;
        int error;              /* 0, or < 0: unreachable — the host is then treated as failed */
        char *const *keys;      /* "<type> <base64>" list on success (may be empty for a port check) */
};

struct static_nodes_plan {
        struct static_nodes_action *actions;
        size_t n_actions;
        char **warnings;        /* NULL-terminated, never NULL: excess nodes, failed hosts */
};

/* -EEXIST when two static nodes of the provider (any pools) share (name,
 * username, connection-port); *error (optional) then gets a malloc'd message
 * naming them. 0 otherwise (also for a provider that is not static). */
int static_nodes_check_identities(const struct config_provider *provider, char **error);

/* Compute the actions for provider (driver static) given nodes[0..n_nodes)
 * from ZooKeeper (nodes of other providers are ignored; pointers are only
 * read during the call), locked[i] (NULL = none locked) and scans[0..n_scans)
 * (may be empty). A host whose scan failed, or whose configured host-key is
 * not among its scanned keys, gets no register/update and its nodes are
 * deregistered (Nodepool: the host failed its check). For a host name that is
 * an IP literal public_ipv4/public_ipv6 is set; for a DNS name the caller
 * fills it in before storing if it wants it.
 * Returns 0 and *ret_plan (free with static_nodes_plan_free()), -EEXIST for a
 * duplicate identity (see static_nodes_check_identities(); *error set), or
 * -EINVAL when the provider is not static. */
int static_nodes_plan(const struct config_provider *provider, const struct node *const *nodes, const bool *locked,
                      size_t n_nodes, const struct static_nodes_scan *scans, size_t n_scans,
                      struct static_nodes_plan **ret_plan, char **error);
void static_nodes_plan_free(struct static_nodes_plan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct static_nodes_plan *, static_nodes_plan_free);

/* Copy an UPDATE action's managed attributes onto target (the node re-read
 * under its lock); other fields, including unknown JSON keys, are kept. */
void static_nodes_apply_update(const struct static_nodes_action *a, struct node *target);

/* True when a node may be deregistered now: READY, unallocated and unlocked. */
bool static_nodes_may_deregister(const struct node *n, bool locked);

struct static_nodes_label_count {
        const char *label;      /* points into the config or a node: valid while both live */
        size_t ready;
};

/* Label quota of a static provider: for every label of its hosts (config
 * order, then labels only found on nodes), the number of READY unallocated
 * nodes of this provider carrying it. A request for a label waits until its
 * count is > 0 (static pools never pause). Returns the number of entries and
 * *ret (malloc'd array; caller frees). */
size_t static_nodes_label_quota(const struct config_provider *provider, const struct node *const *nodes,
                                size_t n_nodes, struct static_nodes_label_count **ret);
/* Count for label in a quota array; 0 when absent. */
size_t static_nodes_label_quota_get(const struct static_nodes_label_count *q, size_t n, const char *label);
