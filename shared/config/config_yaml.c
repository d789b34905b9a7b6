/* config_yaml.c — libyaml event stream → struct cnode tree.
 *
 * DESIGN: the event API (not the document API) so we control memory: every
 * node is counted against CNODE_MAX_NODES, nesting against CNODE_MAX_DEPTH.
 * Anchors and aliases work as in PyYAML's safe_load (Nodepool's loader): an
 * alias is a deep copy of its anchored node, and each copied node counts
 * against the node budget, so a "billion laughs" document stops at the limit
 * with an error instead of expanding. Merge keys (`<<: *defaults`, or a list
 * of aliases) are applied when their mapping ends: keys written in the mapping
 * win, then earlier merged mappings over later ones. Duplicate mapping keys are
 * found by sorting each finished mapping's keys (O(n log n), safe for big maps). */
#include "config_yaml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "alloc.h"

void cnode_free(struct cnode *n) {
        if (!n) return;
        for (size_t i = 0; i < n->n; i++) cnode_free(n->children[i]);
        free(n->children);
        free(n->value);
        free(n);
}

struct anchor {
        char *name;
        struct cnode *node; /* owned by the tree */
};

struct parse_state {
        const char *name;
        unsigned file_index;
        struct config_diags *diags;
        size_t nodes;
        struct anchor *anchors; /* in definition order; a redefinition later wins */
        size_t n_anchors;
        struct cnode *dead;     /* a sequence holding merged-away `<<` pairs until the end */
};

#define perr(st, line, col, ...) \
        config_diags_add((st)->diags, (st)->name, (st)->file_index, (line), (col), CONFIG_SEVERITY_ERROR, __VA_ARGS__)

/* Replace every %(NODEPOOL_x) in S by the environment variable; unset → error.
 * *ret_resolved: S had references and all were set. */
static char *subst_env(struct parse_state *st, const char *s, unsigned line, unsigned col, bool *ret_resolved) {
        *ret_resolved = false;
        if (!strstr(s, "%(NODEPOOL_")) return xstrdup(s);
        bool resolved = true;
        char *out = NULL;
        size_t outlen = 0;
        FILE *f = open_memstream(&out, &outlen);
        if (!f) return xstrdup(s);
        const char *p = s;
        while (*p) {
                const char *q = strstr(p, "%(NODEPOOL_");
                if (!q) {
                        fputs(p, f);
                        break;
                }
                const char *nm = q + 2, *e = nm;
                while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') || *e == '_')
                        e++;
                fwrite(p, 1, (size_t)(q - p), f);
                if (*e != ')') {        /* not a reference after all: keep the text */
                        fwrite(q, 1, (size_t)(e - q), f);
                        p = e;
                        continue;
                }
                char *var = xstrndup(nm, (size_t)(e - nm));
                const char *v = getenv(var);
                if (v)
                        fputs(v, f);
                else {
                        perr(st, line, col, "environment variable '%s' is not set", var);
                        resolved = false;
                }
                free(var);
                p = e + 1;
        }
        fclose(f);
        *ret_resolved = resolved;
        return out ? out : xstrdup("");
}

static int key_cmp(const void *a, const void *b) {
        const struct cnode *x = *(struct cnode *const *)a, *y = *(struct cnode *const *)b;
        int r = strcmp(x->value, y->value);
        if (r) return r;
        if (x->line != y->line) return x->line < y->line ? -1 : 1;
        return x->column < y->column ? -1 : x->column > y->column;
}

static void check_duplicate_keys(struct parse_state *st, struct cnode *m) {
        size_t k = 0, np = cnode_map_size(m);
        if (np < 2) return;
        _cleanup_free_ struct cnode **keys = xnew(struct cnode *, np);
        for (size_t i = 0; i < np; i++) {
                struct cnode *key = cnode_map_key(m, i);
                if (key->type == CNODE_SCALAR && !key->bad) keys[k++] = key;
        }
        qsort(keys, k, sizeof *keys, key_cmp);
        for (size_t i = 1; i < k; i++)
                if (strcmp(keys[i - 1]->value, keys[i]->value) == 0)
                        perr(st, keys[i]->line, keys[i]->column, "duplicate key '%s' (first at line %u)",
                             keys[i]->value, keys[i - 1]->line);
}

static void anchor_add(struct parse_state *st, const unsigned char *name, struct cnode *node) {
        if (!name) return;
        st->anchors = xrealloc(st->anchors, (st->n_anchors + 1) * sizeof *st->anchors);
        st->anchors[st->n_anchors++] = (struct anchor){ .name = xstrdup((const char *)name), .node = node };
}

static struct cnode *anchor_find(const struct parse_state *st, const char *name) {
        for (size_t i = st->n_anchors; i-- > 0;)
                if (strcmp(st->anchors[i].name, name) == 0) return st->anchors[i].node;
        return NULL;
}

/* Deep copy of N, each node counted against the budget; NULL when it runs out. */
static struct cnode *copy_counted(struct parse_state *st, const struct cnode *n) {
        if (++st->nodes > CNODE_MAX_NODES) return NULL;
        struct cnode *c = xnew(struct cnode, 1);
        *c = (struct cnode){ .type = n->type, .line = n->line, .column = n->column, .plain = n->plain,
                             .bad = n->bad, .value = n->value ? xstrdup(n->value) : NULL };
        if (n->n) {
                c->children = xnew(struct cnode *, n->n);
                c->alloc = n->n;
        }
        for (size_t i = 0; i < n->n; i++) {
                struct cnode *k = copy_counted(st, n->children[i]);
                if (!k) {
                        cnode_free(c);
                        return NULL;
                }
                c->children[c->n++] = k;
        }
        return c;
}

static void child_add(struct cnode *parent, struct cnode *c) {
        if (parent->n == parent->alloc) {
                parent->alloc = parent->alloc ? parent->alloc * 2 : 8;
                parent->children = xrealloc(parent->children, parent->alloc * sizeof *parent->children);
        }
        parent->children[parent->n++] = c;
}

/* Copy the pairs of mapping FROM whose keys M lacks into M. FROM stays as it
 * is: an anchor may point at it. -E2BIG when the node budget runs out. */
static int merge_from(struct parse_state *st, struct cnode *m, const struct cnode *from) {
        for (size_t i = 0; i < cnode_map_size(from); i++) {
                const struct cnode *k = cnode_map_key(from, i);
                if (k->type != CNODE_SCALAR || k->bad || cnode_get_key(m, k->value)) continue;
                struct cnode *kc = copy_counted(st, k), *vc = kc ? copy_counted(st, cnode_map_value(from, i)) : NULL;
                if (!vc) {
                        cnode_free(kc);
                        return -E2BIG;
                }
                child_add(m, kc);
                child_add(m, vc);
        }
        return 0;
}

/* Apply and remove the `<<` keys of the finished mapping M. The removed pairs
 * are kept until the parse ends (st->dead), since anchors may point into them. */
static int apply_merge_keys(struct parse_state *st, struct cnode *m) {
        for (size_t i = 0; i < cnode_map_size(m);) {
                struct cnode *k = cnode_map_key(m, i), *v = cnode_map_value(m, i);
                if (k->type != CNODE_SCALAR || !k->plain || strcmp(k->value, "<<") != 0) {
                        i++;
                        continue;
                }
                /* Unlink the pair first, so merged keys are looked up among M's own. */
                memmove(&m->children[2 * i], &m->children[2 * i + 2], (m->n - 2 * i - 2) * sizeof *m->children);
                m->n -= 2;
                child_add(st->dead, k);
                child_add(st->dead, v);
                bool ok = v->type == CNODE_MAP || (v->type == CNODE_SEQ && v->n > 0);
                for (size_t j = 0; ok && v->type == CNODE_SEQ && j < v->n; j++)
                        ok = v->children[j]->type == CNODE_MAP;
                if (!ok) {
                        perr(st, v->line, v->column, "merge key '<<' needs a mapping or a list of mappings");
                        continue;
                }
                int r = 0;
                if (v->type == CNODE_MAP)
                        r = merge_from(st, m, v);
                else
                        for (size_t j = 0; j < v->n && r == 0; j++) r = merge_from(st, m, v->children[j]);
                if (r < 0) {
                        perr(st, k->line, k->column, "too many YAML nodes (more than %d) merging '<<'",
                             CNODE_MAX_NODES);
                        return r;
                }
        }
        return 0;
}

int cnode_parse(const char *name, unsigned file_index, const char *data, size_t len, struct cnode **ret,
                struct config_diags *diags) {
        struct parse_state st = { .name = name, .file_index = file_index, .diags = diags };
        yaml_parser_t parser;
        yaml_event_t ev;
        struct cnode *stack[CNODE_MAX_DEPTH + 1];
        size_t depth = 0;
        struct cnode *root = NULL;
        unsigned docs = 0;
        int r = 0;
        bool done = false;

        if (!yaml_parser_initialize(&parser)) return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
        st.dead = xnew(struct cnode, 1);
        st.dead->type = CNODE_SEQ;

        while (!done) {
                if (!yaml_parser_parse(&parser, &ev)) {
                        yaml_mark_t m = parser.error == YAML_READER_ERROR ? parser.mark : parser.problem_mark;
                        if (parser.context)
                                perr(&st, (unsigned)m.line + 1, (unsigned)m.column + 1,
                                     "YAML syntax error: %s (%s started at line %u)",
                                     parser.problem ? parser.problem : "unknown problem", parser.context,
                                     (unsigned)parser.context_mark.line + 1);
                        else
                                perr(&st, (unsigned)m.line + 1, (unsigned)m.column + 1, "YAML syntax error: %s",
                                     parser.problem ? parser.problem : "unknown problem");
                        r = -EINVAL;
                        break;
                }
                unsigned line = (unsigned)ev.start_mark.line + 1, col = (unsigned)ev.start_mark.column + 1;
                struct cnode *node = NULL;
                const unsigned char *anchor = NULL; /* valid until yaml_event_delete */
                bool complete = false;              /* an alias copy: nothing more arrives for it */
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (++docs > 1) {
                                perr(&st, line, col, "only one YAML document is allowed");
                                r = -EINVAL;
                                done = true;
                        }
                        break;
                case YAML_ALIAS_EVENT: {
                        const char *aname = (const char *)ev.data.alias.anchor;
                        struct cnode *target = anchor_find(&st, aname);
                        bool open = false;
                        for (size_t i = 0; target && i < depth; i++) open = open || stack[i] == target;
                        if (!target || open) {
                                perr(&st, line, col, open ? "alias *%s refers to a node that contains it"
                                                          : "alias *%s has no anchor before it", aname);
                                node = xnew(struct cnode, 1);
                                node->type = CNODE_SCALAR;
                                node->value = xstrdup("");
                                node->bad = true;
                                break;
                        }
                        node = copy_counted(&st, target);
                        if (!node) {
                                perr(&st, line, col, "too many YAML nodes (more than %d) expanding alias *%s",
                                     CNODE_MAX_NODES, aname);
                                r = -EINVAL;
                                done = true;
                                break;
                        }
                        st.nodes--; /* counted by the copy; counted again below */
                        complete = true;
                        break;
                }
                case YAML_SCALAR_EVENT: {
                        node = xnew(struct cnode, 1);
                        node->type = CNODE_SCALAR;
                        const char *tag = (const char *)ev.data.scalar.tag;
                        node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag;
                        _cleanup_free_ char *raw = xstrndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
                        struct cnode *parent = depth ? stack[depth - 1] : NULL;
                        bool is_key = parent && parent->type == CNODE_MAP && parent->n % 2 == 0;
                        bool resolved = false;
                        node->value = is_key ? TAKE_PTR(raw) : subst_env(&st, raw, line, col, &resolved);
                        /* "%(" cannot start a plain YAML scalar, so references
                         * must be quoted: type such a value by what it became
                         * (port: "%(NODEPOOL_ZK_PORT)" is an integer). */
                        if (resolved && !tag) node->plain = true;
                        anchor = ev.data.scalar.anchor;
                        break;
                }
                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT:
                        if (depth >= CNODE_MAX_DEPTH) {
                                perr(&st, line, col, "nesting deeper than %d levels", CNODE_MAX_DEPTH);
                                r = -EINVAL;
                                done = true;
                                break;
                        }
                        node = xnew(struct cnode, 1);
                        node->type = ev.type == YAML_MAPPING_START_EVENT ? CNODE_MAP : CNODE_SEQ;
                        anchor = ev.type == YAML_MAPPING_START_EVENT ? ev.data.mapping_start.anchor
                                                                     : ev.data.sequence_start.anchor;
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        if (depth > 0) {
                                depth--;
                                if (stack[depth]->type == CNODE_MAP) {
                                        check_duplicate_keys(&st, stack[depth]);
                                        if (apply_merge_keys(&st, stack[depth]) < 0) {
                                                r = -EINVAL;
                                                done = true;
                                        }
                                }
                        }
                        break;
                default:
                        break;
                }
                if (node) anchor_add(&st, anchor, node);
                yaml_event_delete(&ev);
                if (!node) continue;

                node->line = line;
                node->column = col;
                if (++st.nodes > CNODE_MAX_NODES) {
                        perr(&st, line, col, "too many YAML nodes (more than %d)", CNODE_MAX_NODES);
                        cnode_free(node);
                        r = -EINVAL;
                        break;
                }
                struct cnode *parent = depth ? stack[depth - 1] : NULL;
                if (parent) {
                        if (parent->type == CNODE_MAP && parent->n % 2 == 0 && node->type != CNODE_SCALAR) {
                                perr(&st, line, col, "mapping keys must be plain strings");
                                node->bad = true;
                        }
                        child_add(parent, node);
                } else if (!root) {
                        root = node;
                } else {
                        cnode_free(node);       /* unreachable with one document; be safe */
                        node = NULL;
                }
                if (node && node->type != CNODE_SCALAR && !complete) stack[depth++] = node;
        }
        yaml_parser_delete(&parser);
        for (size_t i = 0; i < st.n_anchors; i++) free(st.anchors[i].name);
        free(st.anchors);
        cnode_free(st.dead);
        if (r < 0) {
                cnode_free(root);
                return r;
        }
        *ret = root;
        return 0;
}

struct cnode *cnode_get_key(const struct cnode *m, const char *key) {
        if (!m || m->type != CNODE_MAP) return NULL;
        for (size_t i = 0; i < cnode_map_size(m); i++) {
                struct cnode *k = cnode_map_key(m, i);
                if (k->type == CNODE_SCALAR && !k->bad && strcmp(k->value, key) == 0) return k;
        }
        return NULL;
}

struct cnode *cnode_get(const struct cnode *m, const char *key) {
        if (!m || m->type != CNODE_MAP) return NULL;
        for (size_t i = 0; i < cnode_map_size(m); i++) {
                struct cnode *k = cnode_map_key(m, i);
                if (k->type == CNODE_SCALAR && !k->bad && strcmp(k->value, key) == 0) return cnode_map_value(m, i);
        }
        return NULL;
}

bool cnode_is_null(const struct cnode *n) {
        return n && n->type == CNODE_SCALAR && n->plain &&
               (n->value[0] == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
                strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0);
}

static void canon_scalar(FILE *f, const char *s, bool plain) {
        fputc(plain ? '\'' : '"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\'' || *s == '\\') fputc('\\', f);
                fputc(*s, f);
        }
        fputc(plain ? '\'' : '"', f);
}

static int pair_cmp(const void *a, const void *b) {
        const struct cnode *const *x = a, *const *y = b;
        const char *kx = x[0]->value ? x[0]->value : "", *ky = y[0]->value ? y[0]->value : "";
        return strcmp(kx, ky);
}

static void canon(FILE *f, const struct cnode *n) {
        switch (n->type) {
        case CNODE_SCALAR:
                canon_scalar(f, n->value, n->plain);
                break;
        case CNODE_SEQ:
                fputc('[', f);
                for (size_t i = 0; i < n->n; i++) {
                        if (i) fputc(',', f);
                        canon(f, n->children[i]);
                }
                fputc(']', f);
                break;
        case CNODE_MAP: {
                /* Sort (key, value) pairs by key on a copy; the tree stays in file order. */
                size_t np = cnode_map_size(n);
                _cleanup_free_ struct cnode **pairs = xnew(struct cnode *, 2 * np + 1);
                if (np) { /* an empty map has no children array: memcpy(NULL) is UB */
                        memcpy(pairs, n->children, 2 * np * sizeof *pairs);
                        qsort(pairs, np, 2 * sizeof *pairs, pair_cmp);
                }
                fputc('{', f);
                for (size_t i = 0; i < np; i++) {
                        if (i) fputc(',', f);
                        canon(f, pairs[2 * i]);
                        fputc(':', f);
                        canon(f, pairs[2 * i + 1]);
                }
                fputc('}', f);
                break;
        }
        }
}

char *cnode_canonical(const struct cnode *n) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f) return xstrdup("");
        if (n) canon(f, n);
        fclose(f);
        return out ? out : xstrdup("");
}
