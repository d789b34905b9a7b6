/* static_nodes.c — see static_nodes.h.
 *
 * DESIGN: mirrors Nodepool's StaticNodeProvider.getRegisteredNodes() and
 * syncNodeCount()/updateNodeFromConfig(): first every configured identity
 * gets a slot table of max-parallel-jobs entries, then nodes claim the slot
 * they name, then slot-less (legacy) and colliding nodes take the first free
 * slot or are appended past the end as excess. Walking the tables in config
 * order yields register (empty slot), deregister (past the end) and update
 * (attributes differ) actions; identities no longer configured are walked
 * last and only deregister. Nothing here talks to ZooKeeper or the network,
 * so the rules are tested exhaustively with plain structs. */
#include "static_nodes.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "keyscan.h"
#include "model.h"

#define SLOT_EMPTY SIZE_MAX

static inline void strv_freep(char ***l) { model_strv_free(*l); }

struct ident {
        const char *name;
        const char *username;
        int64_t port;
};

struct entry {
        struct ident id;
        const struct config_pool *pool;         /* NULL: not configured (any more) */
        const struct config_static_node *host;
        size_t *slots;                          /* node indexes, SLOT_EMPTY when free */
        size_t n_slots;
        size_t max;                             /* configured slots (n_slots may exceed it) */
};

static const char *const action_names[_STATIC_NODES_ACTION_MAX] = {
        [STATIC_NODES_REGISTER] = "register",
        [STATIC_NODES_DEREGISTER] = "deregister",
        [STATIC_NODES_UPDATE] = "update",
};

const char *static_nodes_action_to_string(enum static_nodes_action_kind k) {
        return k >= 0 && k < _STATIC_NODES_ACTION_MAX ? action_names[k] : NULL;
}

static bool streq_null(const char *a, const char *b) {
        if (!a || !b) return a == b;
        return strcmp(a, b) == 0;
}

/* Decoded nodes read a missing username as "zuul"; treat NULL the same. */
static const char *node_username(const struct node *n) { return n->username ? n->username : "zuul"; }

static bool ident_equal(const struct ident *a, const struct ident *b) {
        return streq_null(a->name, b->name) && streq_null(a->username, b->username) && a->port == b->port;
}

static struct ident host_ident(const struct config_static_node *h) {
        return (struct ident){ .name = h->name, .username = h->username ? h->username : "zuul",
                               .port = h->connection_port };
}

static struct ident node_ident(const struct node *n) {
        return (struct ident){ .name = n->hostname, .username = node_username(n), .port = n->connection_port };
}

static void strv_push_owned(char ***l, char *s) {
        model_strv_push(l, s);
        free(s);
}

int static_nodes_check_identities(const struct config_provider *provider, char **error) {
        for (size_t p = 0; p < provider->n_pools; p++)
                for (size_t i = 0; i < provider->pools[p].n_nodes; i++) {
                        struct ident a = host_ident(&provider->pools[p].nodes[i]);
                        /* Compare with every later host, in this pool and the following ones. */
                        for (size_t q = p; q < provider->n_pools; q++)
                                for (size_t j = q == p ? i + 1 : 0; j < provider->pools[q].n_nodes; j++) {
                                        struct ident b = host_ident(&provider->pools[q].nodes[j]);
                                        if (!ident_equal(&a, &b)) continue;
                                        if (error)
                                                *error = xasprintf("provider %s: static node (%s, %s, %lld) is "
                                                                   "configured twice (pools %s and %s)",
                                                                   provider->name, a.name, a.username,
                                                                   (long long)a.port, provider->pools[p].name,
                                                                   provider->pools[q].name);
                                        return -EEXIST;
                                }
                }
        return 0;
}

bool static_nodes_may_deregister(const struct node *n, bool locked) {
        return n->state == NODE_STATE_READY && !n->allocated_to && !locked;
}

/* ------------------------------------------------------------ plan building */

struct builder {
        const struct config_provider *provider;
        const struct node *const *nodes;
        const bool *locked;
        size_t n_nodes;
        struct entry *entries;
        size_t n_entries;
        struct static_nodes_plan *plan;
        size_t alloc_actions;
};

static struct entry *find_entry(struct builder *b, const struct ident *id) {
        for (size_t i = 0; i < b->n_entries; i++)
                if (ident_equal(&b->entries[i].id, id)) return &b->entries[i];
        return NULL;
}

static struct entry *add_entry(struct builder *b, struct ident id, const struct config_pool *pool,
                               const struct config_static_node *host, size_t max) {
        b->entries = xrealloc(b->entries, (b->n_entries + 1) * sizeof *b->entries);
        struct entry *e = &b->entries[b->n_entries++];
        *e = (struct entry){ .id = id, .pool = pool, .host = host, .max = max, .n_slots = max };
        e->slots = xnew(size_t, max ? max : 1);
        for (size_t s = 0; s < max; s++) e->slots[s] = SLOT_EMPTY;
        return e;
}

static void append_slot(struct entry *e, size_t node_index) {
        e->slots = xrealloc(e->slots, (e->n_slots + 1) * sizeof *e->slots);
        e->slots[e->n_slots++] = node_index;
}

static struct static_nodes_action *add_action(struct builder *b, enum static_nodes_action_kind kind) {
        struct static_nodes_plan *p = b->plan;
        if (p->n_actions == b->alloc_actions) {
                b->alloc_actions = b->alloc_actions ? 2 * b->alloc_actions : 8;
                p->actions = xrealloc(p->actions, b->alloc_actions * sizeof *p->actions);
        }
        struct static_nodes_action *a = &p->actions[p->n_actions++];
        *a = (struct static_nodes_action){ .kind = kind };
        return a;
}

/* Occupies nothing: being created by someone else, or on its way out. */
static bool node_ignored(const struct node *n) {
        return n->state == NODE_STATE_BUILDING || n->state == NODE_STATE_DELETING || n->state == NODE_STATE_DELETED;
}

static bool is_locked(const struct builder *b, size_t i) { return b->locked && b->locked[i]; }

static void deregister(struct builder *b, const struct entry *e, size_t slot) {
        size_t i = e->slots[slot];
        const struct node *n = b->nodes[i];
        if (!static_nodes_may_deregister(n, is_locked(b, i))) return; /* left until it has been used */
        struct static_nodes_action *a = add_action(b, STATIC_NODES_DEREGISTER);
        a->slot = (int64_t)slot;
        a->index = i;
}

static char **strv_from_config(const struct config_strv *v) {
        char **l = model_strv_new();
        for (size_t i = 0; i < v->n; i++) model_strv_push(&l, v->items[i]);
        return l;
}

/* The host keys a registration carries, as Nodepool's checkHost(): configured
 * keys when not checking, the scan's when checking (configured ⊆ scanned), none
 * for connection types without keys. Returns 0 and sets *ret_keys (a new strv)
 * and *ret_needs_scan, or -errno with *why when the host failed its check. */
static int host_keys_for(const struct config_static_node *h, const struct static_nodes_scan *scans, size_t n_scans,
                         char ***ret_keys, bool *ret_needs_scan, char **why) {
        bool gather = keyscan_gathers_keys(h->connection_type);
        if (gather && !h->host_key_checking) {
                *ret_keys = strv_from_config(&h->host_keys);
                *ret_needs_scan = false;
                return 0;
        }
        struct ident id = host_ident(h);
        const struct static_nodes_scan *sc = NULL;
        for (size_t i = 0; i < n_scans && !sc; i++) {
                struct ident sid = { .name = scans[i].name,
                                     .username = scans[i].username ? scans[i].username : "zuul",
                                     .port = scans[i].port };
                if (ident_equal(&id, &sid)) sc = &scans[i];
        }
        if (!sc) {
                /* Until scanned: the configured keys (ssh) or none (port check pending). */
                *ret_keys = gather ? strv_from_config(&h->host_keys) : model_strv_new();
                *ret_needs_scan = true;
                return 0;
        }
        if (sc->error < 0) {
                *why = xasprintf("scan failed (%s)", strerror(-sc->error));
                return sc->error;
        }
        if (!gather) {
                *ret_keys = model_strv_new();
                *ret_needs_scan = false;
                return 0;
        }
        for (size_t k = 0; k < h->host_keys.n; k++)
                if (!model_strv_contains(sc->keys, h->host_keys.items[k])) {
                        *why = xasprintf("host key mismatch: configured key %.40s... not offered",
                                         h->host_keys.items[k]);
                        return -EBADMSG;
                }
        *ret_keys = model_strv_copy(sc->keys);
        *ret_needs_scan = false;
        return 0;
}

/* The attributes a config entry decides, into n (managed fields only). */
static void fill_managed(struct node *n, const struct config_static_node *h, char *const *keys) {
        model_strv_free(n->type);
        n->type = model_strv_new();
        for (size_t i = 0; i < h->labels.n; i++) model_strv_push(&n->type, h->labels.items[i]);
        model_set_str(&n->username, h->username ? h->username : "zuul");
        n->connection_port = (int)h->connection_port;
        model_set_str(&n->connection_type, h->connection_type ? h->connection_type : "ssh");
        model_set_str(&n->shell_type, h->shell_type);
        model_set_str(&n->python_path, h->python_path);
        model_strv_free(n->host_keys);
        n->host_keys = model_strv_copy(keys);
}

static json_t *attributes_json(const struct config_pool *pool) {
        if (pool->node_attributes.n == 0) return NULL;
        json_t *o = json_object();
        for (size_t i = 0; i < pool->node_attributes.n; i++)
                json_object_set_new(o, pool->node_attributes.items[i].key,
                                    json_string(pool->node_attributes.items[i].value));
        return o;
}

static struct node *registration(const struct config_provider *provider, const struct config_pool *pool,
                                 const struct config_static_node *h, int64_t slot, char *const *keys) {
        struct node *n = node_new(NULL);
        node_set_state(n, NODE_STATE_READY);
        n->created_time = n->state_time;
        model_set_str(&n->provider, provider->name);
        model_set_str(&n->pool, pool->name);
        model_set_str(&n->launcher, STATIC_NODES_LAUNCHER);
        model_set_str(&n->hostname, h->name);
        model_set_str(&n->interface_ip, h->name);
        n->external_id = json_string(h->name);
        fill_managed(n, h, keys);
        /* Nodepool's set_node_ip() resolves the name; an IP literal needs no DNS. */
        unsigned char addr[16];
        if (inet_pton(AF_INET, h->name, addr) == 1)
                model_set_str(&n->public_ipv4, h->name);
        else if (inet_pton(AF_INET6, h->name, addr) == 1)
                model_set_str(&n->public_ipv6, h->name);
        n->attributes = attributes_json(pool);
        n->slot_set = true;
        n->slot = slot;
        return n;
}

static bool managed_equal(const struct node *a, const struct node *b) {
        return model_strv_equal(a->type, b->type) && streq_null(node_username(a), node_username(b)) &&
               a->connection_port == b->connection_port && streq_null(a->connection_type, b->connection_type) &&
               streq_null(a->shell_type, b->shell_type) && streq_null(a->python_path, b->python_path) &&
               model_strv_equal(a->host_keys, b->host_keys);
}

void static_nodes_apply_update(const struct static_nodes_action *a, struct node *target) {
        const struct node *src = a->node;
        model_strv_free(target->type);
        target->type = model_strv_copy(src->type);
        model_set_str(&target->username, src->username);
        target->connection_port = src->connection_port;
        json_decref(target->connection_port_other);
        target->connection_port_other = NULL;
        model_set_str(&target->connection_type, src->connection_type);
        model_set_str(&target->shell_type, src->shell_type);
        model_set_str(&target->python_path, src->python_path);
        model_strv_free(target->host_keys);
        target->host_keys = model_strv_copy(src->host_keys);
}

static void sync_host(struct builder *b, struct entry *e, const struct static_nodes_scan *scans, size_t n_scans) {
        _cleanup_(strv_freep) char **keys = NULL;
        bool needs_scan = false;
        _cleanup_free_ char *why = NULL;
        if (host_keys_for(e->host, scans, n_scans, &keys, &needs_scan, &why) < 0) {
                strv_push_owned(&b->plan->warnings,
                                xasprintf("static node (%s, %s, %lld): %s; deregistering its ready nodes", e->id.name,
                                          e->id.username, (long long)e->id.port, why));
                for (size_t s = 0; s < e->n_slots; s++)
                        if (e->slots[s] != SLOT_EMPTY) deregister(b, e, s);
                return;
        }
        for (size_t s = 0; s < e->n_slots; s++) {
                size_t i = e->slots[s];
                if (i == SLOT_EMPTY) {
                        struct static_nodes_action *a = add_action(b, STATIC_NODES_REGISTER);
                        a->pool = e->pool;
                        a->host = e->host;
                        a->slot = (int64_t)s;
                        a->node = registration(b->provider, e->pool, e->host, (int64_t)s, keys);
                        a->needs_scan = needs_scan;
                } else if (s >= e->max) {
                        deregister(b, e, s);
                } else {
                        const struct node *n = b->nodes[i];
                        /* Nodepool updates READY unallocated nodes only, under a non-blocking lock. */
                        if (n->state != NODE_STATE_READY || n->allocated_to || is_locked(b, i)) continue;
                        struct node *want = node_new(NULL);
                        /* Unscanned: keep the keys the node has rather than flip them back to the config's. */
                        fill_managed(want, e->host, needs_scan ? n->host_keys : keys);
                        if (managed_equal(want, n)) {
                                node_free(want);
                                continue;
                        }
                        struct static_nodes_action *a = add_action(b, STATIC_NODES_UPDATE);
                        a->pool = e->pool;
                        a->host = e->host;
                        a->slot = (int64_t)s;
                        a->index = i;
                        a->node = want;
                        a->needs_scan = needs_scan;
                }
        }
}

int static_nodes_plan(const struct config_provider *provider, const struct node *const *nodes, const bool *locked,
                      size_t n_nodes, const struct static_nodes_scan *scans, size_t n_scans,
                      struct static_nodes_plan **ret_plan, char **error) {
        if (provider->driver != CONFIG_DRIVER_STATIC) return -EINVAL;
        int r = static_nodes_check_identities(provider, error);
        if (r < 0) return r;

        struct builder b = { .provider = provider, .nodes = nodes, .locked = locked, .n_nodes = n_nodes };
        b.plan = xnew(struct static_nodes_plan, 1);
        b.plan->warnings = model_strv_new();

        for (size_t p = 0; p < provider->n_pools; p++)
                for (size_t i = 0; i < provider->pools[p].n_nodes; i++) {
                        const struct config_static_node *h = &provider->pools[p].nodes[i];
                        add_entry(&b, host_ident(h), &provider->pools[p], h,
                                  h->max_parallel_jobs > 0 ? (size_t)h->max_parallel_jobs : 0);
                }

        /* Nodes that name a free slot of their identity take it; the others wait. */
        size_t *unslotted = xnew(size_t, n_nodes ? n_nodes : 1);
        size_t n_unslotted = 0;
        for (size_t i = 0; i < n_nodes; i++) {
                const struct node *n = nodes[i];
                if (!streq_null(n->provider, provider->name) || node_ignored(n)) continue;
                struct ident id = node_ident(n);
                struct entry *e = find_entry(&b, &id);
                if (!e) e = add_entry(&b, id, NULL, NULL, 0);
                if (n->slot_set && n->slot >= 0 && (uint64_t)n->slot < e->n_slots && e->slots[n->slot] == SLOT_EMPTY)
                        e->slots[n->slot] = i;
                else
                        unslotted[n_unslotted++] = i;
        }
        /* Legacy slot-less nodes fill gaps; anything left over is excess. */
        for (size_t u = 0; u < n_unslotted; u++) {
                size_t i = unslotted[u];
                struct ident id = node_ident(nodes[i]);
                struct entry *e = find_entry(&b, &id);
                size_t s = 0;
                while (s < e->max && e->slots[s] != SLOT_EMPTY) s++;
                if (s < e->max) {
                        e->slots[s] = i;
                        continue;
                }
                if (e->host)
                        strv_push_owned(&b.plan->warnings,
                                        xasprintf("node %s: excess node of (%s, %s, %lld) tracked as slot %zu",
                                                  nodes[i]->id ? nodes[i]->id : "?", id.name, id.username,
                                                  (long long)id.port, e->n_slots));
                append_slot(e, i);
        }
        free(unslotted);

        for (size_t k = 0; k < b.n_entries; k++) {
                struct entry *e = &b.entries[k];
                if (e->host)
                        sync_host(&b, e, scans, n_scans);
                else
                        for (size_t s = 0; s < e->n_slots; s++) deregister(&b, e, s); /* host removed */
        }

        for (size_t k = 0; k < b.n_entries; k++) free(b.entries[k].slots);
        free(b.entries);
        *ret_plan = b.plan;
        return 0;
}

void static_nodes_plan_free(struct static_nodes_plan *p) {
        if (!p) return;
        for (size_t i = 0; i < p->n_actions; i++) node_free(p->actions[i].node);
        free(p->actions);
        model_strv_free(p->warnings);
        free(p);
}

/* ------------------------------------------------------------ label quota */

static struct static_nodes_label_count *quota_find(struct static_nodes_label_count *q, size_t n, const char *label) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(q[i].label, label) == 0) return &q[i];
        return NULL;
}

size_t static_nodes_label_quota(const struct config_provider *provider, const struct node *const *nodes,
                                size_t n_nodes, struct static_nodes_label_count **ret) {
        struct static_nodes_label_count *q = NULL;
        size_t n = 0;
        for (size_t p = 0; p < provider->n_pools; p++)
                for (size_t i = 0; i < provider->pools[p].n_nodes; i++) {
                        const struct config_strv *labels = &provider->pools[p].nodes[i].labels;
                        for (size_t l = 0; l < labels->n; l++) {
                                if (quota_find(q, n, labels->items[l])) continue;
                                q = xrealloc(q, (n + 1) * sizeof *q);
                                q[n++] = (struct static_nodes_label_count){ .label = labels->items[l] };
                        }
                }
        for (size_t i = 0; i < n_nodes; i++) {
                const struct node *nd = nodes[i];
                if (!streq_null(nd->provider, provider->name) || nd->state != NODE_STATE_READY || nd->allocated_to)
                        continue;
                for (char **t = nd->type; t && *t; t++) {
                        struct static_nodes_label_count *c = quota_find(q, n, *t);
                        if (!c) {
                                q = xrealloc(q, (n + 1) * sizeof *q);
                                c = &q[n++];
                                *c = (struct static_nodes_label_count){ .label = *t };
                        }
                        c->ready++;
                }
        }
        *ret = q;
        return n;
}

size_t static_nodes_label_quota_get(const struct static_nodes_label_count *q, size_t n, const char *label) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(q[i].label, label) == 0) return q[i].ready;
        return 0;
}
