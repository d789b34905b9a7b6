/* config_internal.h — schema helpers shared by the config_*.c files (not a public API).
 *
 * Every helper reports its own problems into the context's diagnostics with the
 * position of the offending node and a WHERE text naming the enclosing object
 * ("pool 'main' of provider 'p1'"). A context with diags == NULL is quiet. */
#pragma once

#include "config.h"
#include "config_yaml.h"

struct cctx {
        const char *file;
        unsigned file_index;
        struct config_diags *diags;
};

void cfg_error(struct cctx *c, const struct cnode *at, const char *fmt, ...) _printf_(3, 4);
void cfg_warning(struct cctx *c, const struct cnode *at, const char *fmt, ...) _printf_(3, 4);

/* "a mapping", "a list", "null" or "'text'" — for "expected X, got Y". */
const char *cfg_describe(const struct cnode *n, char *buf, size_t size);
/* True if N is a mapping; otherwise reports "WHAT: expected a mapping, got ..." (unless N is bad). */
bool cfg_expect_map(struct cctx *c, const struct cnode *n, const char *what);
/* Report every key of MAP not in the NULL-terminated KEYS as unknown in WHERE. */
void cfg_check_keys(struct cctx *c, const struct cnode *map, const char *const *keys, const char *where);
/* Report "missing required key" at MAP's position unless KEY is present; returns presence. */
bool cfg_require(struct cctx *c, const struct cnode *map, const char *key, const char *where);
/* "KIND 'name'" if MAP has a scalar name, else "KIND #INDEX+1"; caller frees. */
char *cfg_object_name(const struct cnode *map, const char *kind, size_t index);
/* The list at KEY of MAP (NULL if absent or null; reports non-lists). */
const struct cnode *cfg_list(struct cctx *c, const struct cnode *map, const char *key, const char *where);

/* Typed getters: 1 = set *dst, 0 = absent (dst untouched), -EINVAL = reported. */
int cfg_str(struct cctx *c, const struct cnode *map, const char *key, const char *where, char **dst);
int cfg_int(struct cctx *c, const struct cnode *map, const char *key, const char *where, int64_t *dst);
int cfg_bool(struct cctx *c, const struct cnode *map, const char *key, const char *where, bool *dst);
int cfg_double(struct cctx *c, const struct cnode *map, const char *key, const char *where, double *dst);
/* A list of strings (replaces *dst); with split_scalar a scalar is split on whitespace. */
int cfg_strv(struct cctx *c, const struct cnode *map, const char *key, const char *where, struct config_strv *dst,
             bool split_scalar);
/* A mapping of scalars, merged into *dst (later keys replace earlier ones). */
int cfg_strmap(struct cctx *c, const struct cnode *map, const char *key, const char *where,
               struct config_strmap *dst);
/* Value conversions for a scalar node already found. */
bool cfg_parse_int(const struct cnode *n, int64_t *ret);
bool cfg_parse_bool(const struct cnode *n, bool *ret);

void strv_add(struct config_strv *v, const char *s);
void strv_clear(struct config_strv *v);
void strv_copy(struct config_strv *dst, const struct config_strv *src);
void strmap_set(struct config_strmap *m, const char *key, const char *value);
void strmap_clear(struct config_strmap *m);
void strmap_merge(struct config_strmap *dst, const struct config_strmap *src);

/* Replace *dst by a copy of S (frees the old value). */
void str_set(char **dst, const char *s);

/* config_provider.c: parse `providers` (labels and diskimages already in CFG). */
void config_parse_providers(struct cctx *c, struct config *cfg, const struct cnode *list);
void config_provider_clear(struct config_provider *p);

/* zookeeper-tls: {ca, cert, key} of ROOT as Nodepool reads it: each a readable
 * regular file (made absolute), errors at their position. Absent: nothing set. */
void cfg_parse_zk_tls(struct cctx *c, const struct cnode *root, char **ca, char **cert, char **key);

/* Read the regular file PATH of at most MAX bytes, NUL-terminated (*ret, caller
 * frees). A problem is one diagnostic naming PATH; returns 0 or -errno. */
int cfg_read_file(const char *path, size_t max, char **ret, size_t *ret_len, struct config_diags *diags);

/* ------------------------------------------------------------------------
 * config_reader.c: one table-driven reader for a mapping of known keys.
 *
 * A schema lists every key an object may have, with its type (Nodepool's
 * voluptuous type), whether it is required, which keys exclude each other,
 * and optionally where the value is stored in a destination struct. cfg_read()
 * reports unknown keys, missing required keys, type errors, range errors and
 * exclusive/one-of violations, recurses into nested objects and lists of
 * objects, and warns for keys listed in the not-acted-on table (config_unacted.c). */

enum cfg_type {
        CFG_T_STR,              /* a non-null scalar (Nodepool: str) */
        CFG_T_INT,
        CFG_T_BOOL,
        CFG_T_TRISTATE,         /* a boolean stored as int: -1 (caller's "unset"), 0, 1 */
        CFG_T_NUMBER,           /* an integer or a decimal number (Nodepool: v.Any(int, float), float) */
        CFG_T_ENUM,             /* a string among .choices */
        CFG_T_STRV,             /* a list of strings */
        CFG_T_STR_OR_STRV,      /* a string (one item) or a list of strings */
        CFG_T_STR_OR_WORDS,     /* a string (split on whitespace) or a list of strings */
        CFG_T_STRMAP,           /* a mapping of scalars (stored as text) */
        CFG_T_INTMAP,           /* a mapping of integers (Nodepool: {str: int}); not stored */
        CFG_T_MAP,              /* any mapping (Nodepool: dict); not stored */
        CFG_T_LIST,             /* any list (Nodepool: list); not stored */
        CFG_T_OBJ,              /* a mapping read against .sub; not stored */
        CFG_T_OBJ_LIST,         /* a list of mappings read against .sub; not stored */
        CFG_T_STR_OR_OBJ,       /* a string, or a mapping read against .sub; not stored */
};

struct cfg_schema;

struct cfg_key {
        const char *name;
        enum cfg_type type;
        bool required;
        char group;                     /* non-zero: at most one key of the same group may be given */
        bool nullable;                  /* null is a valid value (left unset) */
        bool has_min;                   /* CFG_T_INT: value must be >= min */
        int64_t min;
        const char *const *choices;     /* CFG_T_ENUM, NULL-terminated */
        const struct cfg_schema *sub;   /* CFG_T_OBJ, CFG_T_OBJ_LIST, CFG_T_STR_OR_OBJ */
        bool store;                     /* the value goes to (char *)dst + off */
        size_t off;
};

struct cfg_schema {
        const char *id;                 /* context in the not-acted-on table ("openstack label"), or NULL */
        const char *kind;               /* item name in messages: "label" -> "label 'x' of ..." */
        bool unique_names;              /* list items must have distinct `name`s */
        const struct cfg_key *keys;     /* terminated by an entry with name NULL */
        const char *const *one_of;      /* NULL, or: at least one of these keys must be given */
        const char *variant_key;        /* when this key is given, the mapping is read against .variant */
        const struct cfg_schema *variant;
};

/* Table helpers: CFG_AT(struct, member) stores the value there; CFG_MIN(n) bounds an integer. */
#define CFG_AT(type_, member_) .store = true, .off = offsetof(type_, member_)
#define CFG_MIN(n_) .has_min = true, .min = (n_)

/* Read mapping M against S. WHERE names M in messages ("label 'x' of pool 'main'
 * of provider 'p'"). DST (may be NULL: validate only) receives the stored keys;
 * absent keys leave their field untouched, so the caller sets defaults first.
 * Returns the number of errors reported (0 = clean). */
unsigned cfg_read(struct cctx *c, const struct cnode *m, const struct cfg_schema *s, const char *where, void *dst);

/* ------------------------------------------------------------------------
 * config_unacted.c: keys poold accepts for compatibility but does not act on. */

/* Warn "'KEY' is accepted for compatibility but poold does not act on it yet"
 * at the key node of every key of mapping M listed for context CTX. */
void cfg_warn_unacted(struct cctx *c, const struct cnode *m, const char *ctx);
/* The same for one key node K of context CTX (LOOKUP: the table key to look up,
 * e.g. "<resource>" for a custom tenant resource; NULL = K's own text). */
void cfg_warn_unacted_key(struct cctx *c, const struct cnode *k, const char *ctx, const char *lookup);

/* config_foreign.c: true (and the provider is parsed into CFG->foreign_providers)
 * when DRIVER is one poold leaves to another launcher. */
bool config_foreign_driver(const char *driver);
void config_parse_foreign_provider(struct cctx *c, struct config *cfg, const struct cnode *m, const char *driver,
                                   const char *where);
void config_foreign_provider_clear(struct config_foreign_provider *p);
/* config_provider.c: report "label NAME in WHERE is not defined in the top-level labels" at AT. */
void config_check_label_defined(struct cctx *c, const struct config *cfg, const struct cnode *at, const char *name,
                                const char *where);
