/* config_schema.c — typed, position-reporting accessors over the cnode tree. */
#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static void cfg_vreport(struct cctx *c, const struct cnode *at, enum config_severity sev, const char *fmt,
                        va_list ap) {
        if (!c->diags) return;
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0) return;
        config_diags_add(c->diags, c->file, c->file_index, at ? at->line : 0, at ? at->column : 0, sev, "%s", msg);
}

void cfg_error(struct cctx *c, const struct cnode *at, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        cfg_vreport(c, at, CONFIG_SEVERITY_ERROR, fmt, ap);
        va_end(ap);
}

void cfg_warning(struct cctx *c, const struct cnode *at, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        cfg_vreport(c, at, CONFIG_SEVERITY_WARNING, fmt, ap);
        va_end(ap);
}

const char *cfg_describe(const struct cnode *n, char *buf, size_t size) {
        if (n->type == CNODE_MAP) return "a mapping";
        if (n->type == CNODE_SEQ) return "a list";
        if (cnode_is_null(n)) return "null";
        /* Long values are cut: the message must stay one readable line. */
        const char *q = n->plain ? "" : "the quoted string ";
        if (strlen(n->value) > 60)
                snprintf(buf, size, "%s'%.57s...'", q, n->value);
        else
                snprintf(buf, size, "%s'%s'", q, n->value);
        return buf;
}

bool cfg_expect_map(struct cctx *c, const struct cnode *n, const char *what) {
        if (!n || n->bad) return false;
        if (n->type == CNODE_MAP) return true;
        char buf[100];
        cfg_error(c, n, "%s: expected a mapping, got %s", what, cfg_describe(n, buf, sizeof buf));
        return false;
}

void cfg_check_keys(struct cctx *c, const struct cnode *map, const char *const *keys, const char *where) {
        for (size_t i = 0; i < cnode_map_size(map); i++) {
                const struct cnode *k = cnode_map_key(map, i);
                if (k->bad || k->type != CNODE_SCALAR) continue;
                bool known = false;
                for (const char *const *p = keys; *p && !known; p++) known = strcmp(*p, k->value) == 0;
                if (!known) cfg_error(c, k, "unknown key '%s' in %s", k->value, where);
        }
}

bool cfg_require(struct cctx *c, const struct cnode *map, const char *key, const char *where) {
        if (cnode_get(map, key)) return true;
        cfg_error(c, map, "missing required key '%s' in %s", key, where);
        return false;
}

char *cfg_object_name(const struct cnode *map, const char *kind, size_t index) {
        const struct cnode *n = cnode_get(map, "name");
        if (n && n->type == CNODE_SCALAR && !n->bad && !cnode_is_null(n)) return xasprintf("%s '%s'", kind, n->value);
        return xasprintf("%s #%zu", kind, index + 1);
}

const struct cnode *cfg_list(struct cctx *c, const struct cnode *map, const char *key, const char *where) {
        const struct cnode *v = cnode_get(map, key);
        if (!v || v->bad || cnode_is_null(v)) return NULL;
        if (v->type == CNODE_SEQ) return v;
        char buf[100];
        cfg_error(c, v, "'%s' in %s: expected a list, got %s", key, where, cfg_describe(v, buf, sizeof buf));
        return NULL;
}

static int type_error(struct cctx *c, const struct cnode *v, const char *key, const char *where,
                      const char *expected) {
        char buf[100];
        cfg_error(c, v, "'%s' in %s: expected %s, got %s", key, where, expected, cfg_describe(v, buf, sizeof buf));
        return -EINVAL;
}

int cfg_str(struct cctx *c, const struct cnode *map, const char *key, const char *where, char **dst) {
        const struct cnode *v = cnode_get(map, key);
        if (!v) return 0;
        if (v->bad) return -EINVAL;
        if (v->type != CNODE_SCALAR || cnode_is_null(v)) return type_error(c, v, key, where, "a string");
        str_set(dst, v->value);
        return 1;
}

bool cfg_parse_int(const struct cnode *n, int64_t *ret) {
        if (n->type != CNODE_SCALAR || !n->plain || n->bad) return false;
        const char *s = n->value;
        if (!*s || isspace((unsigned char)*s)) return false;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end) return false;
        *ret = v;
        return true;
}

bool cfg_parse_bool(const struct cnode *n, bool *ret) {
        static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
        static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
        if (n->type != CNODE_SCALAR || !n->plain || n->bad) return false;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcmp(n->value, yes[i]) == 0) return *ret = true, true;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcmp(n->value, no[i]) == 0) return *ret = false, true;
        return false;
}

int cfg_int(struct cctx *c, const struct cnode *map, const char *key, const char *where, int64_t *dst) {
        const struct cnode *v = cnode_get(map, key);
        if (!v) return 0;
        if (v->bad) return -EINVAL;
        int64_t x;
        if (!cfg_parse_int(v, &x)) return type_error(c, v, key, where, "an integer");
        *dst = x;
        return 1;
}

int cfg_bool(struct cctx *c, const struct cnode *map, const char *key, const char *where, bool *dst) {
        const struct cnode *v = cnode_get(map, key);
        if (!v) return 0;
        if (v->bad) return -EINVAL;
        bool x;
        if (!cfg_parse_bool(v, &x)) return type_error(c, v, key, where, "a boolean");
        *dst = x;
        return 1;
}

int cfg_double(struct cctx *c, const struct cnode *map, const char *key, const char *where, double *dst) {
        const struct cnode *v = cnode_get(map, key);
        if (!v) return 0;
        if (v->bad) return -EINVAL;
        if (v->type == CNODE_SCALAR && v->plain && v->value[0] && !isspace((unsigned char)v->value[0])) {
                char *end;
                errno = 0;
                double x = strtod(v->value, &end);
                /* strtod also takes "nan"/"inf"/hex: only finite decimal numbers are sane here. */
                if (!errno && !*end && x == x && x < 1e300 && x > -1e300 && !strpbrk(v->value, "xXnN")) {
                        *dst = x;
                        return 1;
                }
        }
        return type_error(c, v, key, where, "a number");
}

int cfg_strv(struct cctx *c, const struct cnode *map, const char *key, const char *where, struct config_strv *dst,
             bool split_scalar) {
        const struct cnode *v = cnode_get(map, key);
        if (!v) return 0;
        if (v->bad) return -EINVAL;
        if (cnode_is_null(v)) {
                strv_clear(dst);
                return 1;
        }
        if (v->type == CNODE_SCALAR && split_scalar) {
                strv_clear(dst);
                const char *p = v->value;
                while (*p) {
                        while (*p && isspace((unsigned char)*p)) p++;
                        const char *e = p;
                        while (*e && !isspace((unsigned char)*e)) e++;
                        if (e > p) {
                                _cleanup_free_ char *w = xstrndup(p, (size_t)(e - p));
                                strv_add(dst, w);
                        }
                        p = e;
                }
                return 1;
        }
        if (v->type != CNODE_SEQ)
                return type_error(c, v, key, where, split_scalar ? "a string or a list of strings" : "a list of strings");
        int r = 1;
        struct config_strv tmp = {};
        for (size_t i = 0; i < v->n; i++) {
                const struct cnode *it = v->children[i];
                if (it->bad) {
                        r = -EINVAL;
                        continue;
                }
                if (it->type != CNODE_SCALAR || cnode_is_null(it)) {
                        char buf[100];
                        cfg_error(c, it, "'%s' in %s: expected a string item, got %s", key, where,
                                  cfg_describe(it, buf, sizeof buf));
                        r = -EINVAL;
                        continue;
                }
                strv_add(&tmp, it->value);
        }
        strv_clear(dst);
        *dst = tmp;
        return r;
}

int cfg_strmap(struct cctx *c, const struct cnode *map, const char *key, const char *where,
               struct config_strmap *dst) {
        const struct cnode *v = cnode_get(map, key);
        if (!v) return 0;
        if (v->bad) return -EINVAL;
        if (cnode_is_null(v)) return 1;
        if (v->type != CNODE_MAP) return type_error(c, v, key, where, "a mapping");
        int r = 1;
        /* Keys are unique within one mapping (the parser reports duplicates), so
         * filling an empty map needs no lookups: keeps huge maps linear. */
        bool fresh = dst->n == 0;
        for (size_t i = 0; i < cnode_map_size(v); i++) {
                const struct cnode *k = cnode_map_key(v, i), *val = cnode_map_value(v, i);
                if (k->bad || val->bad) {
                        r = -EINVAL;
                        continue;
                }
                if (val->type != CNODE_SCALAR) {
                        char buf[100];
                        cfg_error(c, val, "'%s' in '%s' of %s: expected a scalar value, got %s", k->value, key,
                                  where, cfg_describe(val, buf, sizeof buf));
                        r = -EINVAL;
                        continue;
                }
                const char *value = cnode_is_null(val) ? "" : val->value;
                if (fresh) {
                        dst->items = xrealloc(dst->items, (dst->n + 1) * sizeof *dst->items);
                        dst->items[dst->n++] = (struct config_kv){ .key = xstrdup(k->value), .value = xstrdup(value) };
                } else
                        strmap_set(dst, k->value, value);
        }
        return r;
}

void str_set(char **dst, const char *s) {
        char *n = xstrdup(s);
        free(*dst);
        *dst = n;
}

void strv_add(struct config_strv *v, const char *s) {
        v->items = xrealloc(v->items, (v->n + 1) * sizeof *v->items);
        v->items[v->n++] = xstrdup(s);
}

void strv_clear(struct config_strv *v) {
        for (size_t i = 0; i < v->n; i++) free(v->items[i]);
        free(v->items);
        *v = (struct config_strv){};
}

void strv_copy(struct config_strv *dst, const struct config_strv *src) {
        strv_clear(dst);
        for (size_t i = 0; i < src->n; i++) strv_add(dst, src->items[i]);
}

void strmap_set(struct config_strmap *m, const char *key, const char *value) {
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->items[i].key, key) == 0) {
                        str_set(&m->items[i].value, value);
                        return;
                }
        m->items = xrealloc(m->items, (m->n + 1) * sizeof *m->items);
        m->items[m->n++] = (struct config_kv){ .key = xstrdup(key), .value = xstrdup(value) };
}

void strmap_clear(struct config_strmap *m) {
        for (size_t i = 0; i < m->n; i++) {
                free(m->items[i].key);
                free(m->items[i].value);
        }
        free(m->items);
        *m = (struct config_strmap){};
}

void strmap_merge(struct config_strmap *dst, const struct config_strmap *src) {
        for (size_t i = 0; i < src->n; i++) strmap_set(dst, src->items[i].key, src->items[i].value);
}

bool config_strv_contains(const struct config_strv *v, const char *s) {
        for (size_t i = 0; i < v->n; i++)
                if (strcmp(v->items[i], s) == 0) return true;
        return false;
}

const char *config_strmap_get(const struct config_strmap *m, const char *key) {
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->items[i].key, key) == 0) return m->items[i].value;
        return NULL;
}
