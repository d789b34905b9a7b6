/* config_yaml.h — libyaml events → a small position-marked tree (internal to config_*.c).
 *
 * Bounded: at most CNODE_MAX_NODES nodes (alias copies included, so hostile
 * input such as "billion laughs" stops at the limit) and CNODE_MAX_DEPTH
 * nesting. Anchors, aliases and `<<` merge keys behave as in PyYAML. Scalar values (not keys) get
 * %(NODEPOOL_x) environment substitution here, with errors at their position. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config_diag.h"

#define CNODE_MAX_NODES 50000
#define CNODE_MAX_DEPTH 64

enum cnode_type {
        CNODE_SCALAR,
        CNODE_MAP,
        CNODE_SEQ,
};

struct cnode {
        enum cnode_type type;
        unsigned line, column;          /* 1-based */
        char *value;                    /* scalars */
        bool plain;                     /* unquoted and untagged: may be null/bool/number */
        bool bad;                       /* already reported (bad alias, bad key): skip silently */
        struct cnode **children;        /* seq: items; map: key, value, key, value, ... */
        size_t n;
        size_t alloc;
};

/* Parse DATA (LEN bytes) into *ret (NULL for an empty stream). Diagnostics go to
 * DIAGS under NAME/FILE_INDEX. Returns 0 (the tree may still contain reported
 * problems, e.g. an unset environment variable) or -EINVAL on a syntax error or
 * a limit hit (*ret untouched). */
int cnode_parse(const char *name, unsigned file_index, const char *data, size_t len, struct cnode **ret,
                struct config_diags *diags);
void cnode_free(struct cnode *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cnode *, cnode_free);

static inline size_t cnode_map_size(const struct cnode *m) { return m->n / 2; }
static inline struct cnode *cnode_map_key(const struct cnode *m, size_t i) { return m->children[2 * i]; }
static inline struct cnode *cnode_map_value(const struct cnode *m, size_t i) { return m->children[2 * i + 1]; }
/* The value of KEY in mapping M (first occurrence), or NULL. */
struct cnode *cnode_get(const struct cnode *m, const char *key);
/* The key node of KEY in M (for positions), or NULL. */
struct cnode *cnode_get_key(const struct cnode *m, const char *key);
/* A plain scalar that YAML reads as null ("", "~", "null"). */
bool cnode_is_null(const struct cnode *n);
/* Canonical text of a subtree (mapping keys sorted, positions dropped); caller frees. */
char *cnode_canonical(const struct cnode *n);
