/* config_reader.c — the table-driven reader behind every object schema.
 *
 * DESIGN: a schema (config_internal.h) is Nodepool's voluptuous schema for one
 * object written as a table. cfg_read() walks a mapping once: unknown keys,
 * required keys, then every present key in table order (type check, store,
 * range, recursion, not-acted-on warning), then exclusive groups and one-of
 * rules. Messages are the ones the hand-written parsers used, so the same
 * problem reads the same whichever driver it is found in. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_internal.h"

static const struct cfg_key *find_key(const struct cfg_schema *s, const char *name) {
        for (const struct cfg_key *k = s->keys; k->name; k++)
                if (strcmp(k->name, name) == 0) return k;
        return NULL;
}

/* "'a', 'b' or 'c'"; caller frees. */
static char *join_choices(const char *const *v) {
        size_t n = 0;
        while (v[n]) n++;
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f) return xstrdup("?");
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s'%s'", i == 0 ? "" : i + 1 == n ? " or " : ", ", v[i]);
        fclose(f);
        return out;
}

static unsigned type_error(struct cctx *c, const struct cnode *v, const char *key, const char *where,
                           const char *expected) {
        char buf[100];
        cfg_error(c, v, "'%s' in %s: expected %s, got %s", key, where, expected, cfg_describe(v, buf, sizeof buf));
        return 1;
}

static unsigned read_obj_list(struct cctx *c, const struct cnode *m, const struct cfg_key *k, const char *where) {
        const struct cnode *list = cfg_list(c, m, k->name, where);
        if (!list) {
                const struct cnode *v = cnode_get(m, k->name);
                return v && !v->bad && !cnode_is_null(v) ? 1 : 0;
        }
        unsigned errs = 0;
        const char *kind = k->sub->kind ? k->sub->kind : k->name;
        _cleanup_free_ char *suffix = xasprintf(" in %s", where);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *it = list->children[i];
                _cleanup_free_ char *iw = xasprintf("%s #%zu of %s", kind, i + 1, where);
                if (!cfg_expect_map(c, it, iw)) {
                        errs += !it->bad;
                        continue;
                }
                _cleanup_free_ char *obj = cfg_object_name(it, kind, i);
                free(iw);
                iw = xasprintf("%s of %s", obj, where);
                errs += cfg_read(c, it, k->sub, iw, NULL);
                if (k->sub->unique_names) {
                        const struct cnode *n = cnode_get(it, "name");
                        if (n && n->type == CNODE_SCALAR && !n->bad && !cnode_is_null(n))
                                for (size_t j = 0; j < i; j++) {
                                        const struct cnode *o = list->children[j]->type == CNODE_MAP
                                                                        ? cnode_get(list->children[j], "name")
                                                                        : NULL;
                                        if (o && o->type == CNODE_SCALAR && !o->bad &&
                                            strcmp(o->value, n->value) == 0) {
                                                cfg_error(c, n, "duplicate %s '%s'%s (first defined at line %u)",
                                                          kind, n->value, suffix, o->line);
                                                errs++;
                                                break;
                                        }
                                }
                }
        }
        return errs;
}

/* Check (and store) the value of key K, present in M. Returns the errors reported. */
static unsigned read_key(struct cctx *c, const struct cnode *m, const struct cfg_key *k, const char *where,
                         void *dst) {
        const struct cnode *v = cnode_get(m, k->name);
        if (!v || v->bad) return 0;     /* a bad node was reported when it was parsed */
        void *field = dst && k->store ? (char *)dst + k->off : NULL;
        if (k->nullable && cnode_is_null(v)) return 0;
        switch (k->type) {
        case CFG_T_STR: {
                char *tmp = NULL;
                if (cfg_str(c, m, k->name, where, &tmp) < 0) return 1;
                if (field) {
                        free(*(char **)field);
                        *(char **)field = tmp;
                } else
                        free(tmp);
                return 0;
        }
        case CFG_T_INT: {
                int64_t x;
                if (cfg_int(c, m, k->name, where, &x) < 0) return 1;
                if (k->has_min && x < k->min) {
                        cfg_error(c, v, "'%s' in %s: must be at least %" PRId64 ", got %" PRId64, k->name, where,
                                  k->min, x);
                        return 1;
                }
                if (field) *(int64_t *)field = x;
                return 0;
        }
        case CFG_T_BOOL:
        case CFG_T_TRISTATE: {
                bool x;
                if (cfg_bool(c, m, k->name, where, &x) < 0) return 1;
                if (field && k->type == CFG_T_BOOL) *(bool *)field = x;
                if (field && k->type == CFG_T_TRISTATE) *(int *)field = x;
                return 0;
        }
        case CFG_T_NUMBER: {
                double x;
                if (cfg_double(c, m, k->name, where, &x) < 0) return 1;
                if (field) *(double *)field = x;
                return 0;
        }
        case CFG_T_ENUM: {
                if (v->type == CNODE_SCALAR && !cnode_is_null(v))
                        for (const char *const *ch = k->choices; *ch; ch++)
                                if (strcmp(*ch, v->value) == 0) {
                                        if (field) str_set((char **)field, v->value);
                                        return 0;
                                }
                _cleanup_free_ char *list = join_choices(k->choices);
                _cleanup_free_ char *exp = xasprintf("one of %s", list);
                return type_error(c, v, k->name, where, exp);
        }
        case CFG_T_STRV:
        case CFG_T_STR_OR_WORDS: {
                struct config_strv tmp = {};
                int r = cfg_strv(c, m, k->name, where, &tmp, k->type == CFG_T_STR_OR_WORDS);
                if (field && r > 0) {
                        strv_clear((struct config_strv *)field);
                        *(struct config_strv *)field = tmp;
                } else
                        strv_clear(&tmp);
                return r < 0;
        }
        case CFG_T_STR_OR_STRV: {
                /* One string is one item (a host key has spaces in it). */
                if (v->type == CNODE_MAP) return type_error(c, v, k->name, where, "a string or a list of strings");
                struct config_strv tmp = {};
                int r = 1;
                if (v->type == CNODE_SCALAR && !cnode_is_null(v))
                        strv_add(&tmp, v->value);
                else
                        r = cfg_strv(c, m, k->name, where, &tmp, false);
                if (field && r > 0) {
                        strv_clear((struct config_strv *)field);
                        *(struct config_strv *)field = tmp;
                } else
                        strv_clear(&tmp);
                return r < 0;
        }
        case CFG_T_STRMAP: {
                struct config_strmap scratch = {};
                int r = cfg_strmap(c, m, k->name, where, field ? (struct config_strmap *)field : &scratch);
                strmap_clear(&scratch);
                return r < 0;
        }
        case CFG_T_INTMAP: {
                if (cnode_is_null(v)) return 0;
                if (v->type != CNODE_MAP) return type_error(c, v, k->name, where, "a mapping");
                unsigned errs = 0;
                for (size_t i = 0; i < cnode_map_size(v); i++) {
                        const struct cnode *key = cnode_map_key(v, i), *val = cnode_map_value(v, i);
                        int64_t x;
                        if (key->bad || val->bad || cfg_parse_int(val, &x)) continue;
                        char buf[100];
                        cfg_error(c, val, "'%s' in '%s' of %s: expected an integer, got %s", key->value, k->name,
                                  where, cfg_describe(val, buf, sizeof buf));
                        errs++;
                }
                return errs;
        }
        case CFG_T_MAP:
                return cnode_is_null(v) || v->type == CNODE_MAP ? 0 : type_error(c, v, k->name, where, "a mapping");
        case CFG_T_LIST:
                return cnode_is_null(v) || v->type == CNODE_SEQ ? 0 : type_error(c, v, k->name, where, "a list");
        case CFG_T_OBJ:
        case CFG_T_STR_OR_OBJ: {
                if (k->type == CFG_T_STR_OR_OBJ && v->type == CNODE_SCALAR && !cnode_is_null(v)) return 0;
                if (v->type != CNODE_MAP)
                        return type_error(c, v, k->name, where,
                                          k->type == CFG_T_OBJ ? "a mapping" : "a string or a mapping");
                _cleanup_free_ char *w = xasprintf("'%s' of %s", k->name, where);
                return cfg_read(c, v, k->sub, w, NULL);
        }
        case CFG_T_OBJ_LIST:
                return read_obj_list(c, m, k, where);
        }
        return 0;
}

unsigned cfg_read(struct cctx *c, const struct cnode *m, const struct cfg_schema *s, const char *where, void *dst) {
        const char *variant = s->variant_key && cnode_get(m, s->variant_key) ? s->variant_key : NULL;
        if (variant) s = s->variant;
        unsigned errs = 0;
        for (size_t i = 0; i < cnode_map_size(m); i++) {
                const struct cnode *k = cnode_map_key(m, i);
                if (k->bad || k->type != CNODE_SCALAR || find_key(s, k->value)) continue;
                if (variant)
                        cfg_error(c, k, "unknown key '%s' in %s (not allowed with '%s')", k->value, where, variant);
                else
                        cfg_error(c, k, "unknown key '%s' in %s", k->value, where);
                errs++;
        }
        for (const struct cfg_key *k = s->keys; k->name; k++)
                if (k->required && !cfg_require(c, m, k->name, where)) errs++;
        for (const struct cfg_key *k = s->keys; k->name; k++) {
                if (!cnode_get(m, k->name)) continue;
                errs += read_key(c, m, k, where, dst);
                if (s->id) cfg_warn_unacted_key(c, cnode_get_key(m, k->name), s->id, NULL);
        }
        /* Exclusive groups: the first given key of a group wins, each later one is reported. */
        for (const struct cfg_key *k = s->keys; k->name; k++) {
                if (!k->group || !cnode_get(m, k->name)) continue;
                for (const struct cfg_key *e = s->keys; e < k; e++)
                        if (e->group == k->group && cnode_get(m, e->name)) {
                                cfg_error(c, cnode_get(m, k->name), "%s has both '%s' and '%s'", where, e->name,
                                          k->name);
                                errs++;
                                break;
                        }
        }
        if (s->one_of) {
                bool any = false;
                for (const char *const *o = s->one_of; *o && !any; o++) any = cnode_get(m, *o) != NULL;
                if (!any) {
                        _cleanup_free_ char *list = join_choices(s->one_of);
                        cfg_error(c, m, "%s must have at least one of %s", where, list);
                        errs++;
                }
        }
        return errs;
}
