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
