/* config_yaml.c — libyaml event stream → struct cnode tree.
 *
 * DESIGN: the event API (not the document API) so we control memory: every
 * node is counted against CNODE_MAX_NODES, nesting against CNODE_MAX_DEPTH,
 * and aliases are refused instead of expanded. Duplicate mapping keys are found
 * by sorting each finished mapping's keys (O(n log n), safe for big maps). */
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

struct parse_state {
        const char *name;
        unsigned file_index;
        struct config_diags *diags;
        size_t nodes;
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

static void child_add(struct cnode *parent, struct cnode *c) {
        if (parent->n == parent->alloc) {
                parent->alloc = parent->alloc ? parent->alloc * 2 : 8;
                parent->children = xrealloc(parent->children, parent->alloc * sizeof *parent->children);
        }
        parent->children[parent->n++] = c;
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
                case YAML_ALIAS_EVENT:
                        perr(&st, line, col, "YAML aliases are not supported");
                        node = xnew(struct cnode, 1);
                        node->type = CNODE_SCALAR;
                        node->value = xstrdup("");
                        node->bad = true;
                        break;
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
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        if (depth > 0) {
                                depth--;
                                if (stack[depth]->type == CNODE_MAP) check_duplicate_keys(&st, stack[depth]);
                        }
                        break;
                default:
                        break;
                }
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
                if (node && node->type != CNODE_SCALAR) stack[depth++] = node;
        }
        yaml_parser_delete(&parser);
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
