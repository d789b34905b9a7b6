/* dib_pkginstalls.c — package-installs.{json,yaml} parsing and squashing.
 *
 * DESIGN: libyaml's document loader gives a node tree with source marks, so
 * every complaint can point at file:line:column. The filtering rules are a
 * line-by-line port of package-installs-squash's collect_data(); see the
 * header for the list. Nothing here runs a package manager. */
#include "dib_pkginstalls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "alloc.h"
#include "dbuf.h"
#include "log.h"
#include "macro.h"

/* package-installs files are a few kilobytes; cap what we read. */
#define DIB_PKGFILE_MAX (4u * 1024 * 1024)

struct pctx {
        const char *path;
        const char *element;
        const struct dib_pkg_env *env;
        struct dib_pkginstalls *acc;
        yaml_document_t *doc;
        char **error;
};

static int perr(struct pctx *c, int r, const yaml_node_t *n, const char *fmt, ...) _printf_(4, 5);
static int perr(struct pctx *c, int r, const yaml_node_t *n, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        char *full = xasprintf("%s:%zu:%zu: %s", c->path, n ? n->start_mark.line + 1 : 1,
                               n ? n->start_mark.column + 1 : 1, msg ? msg : "error");
        log_debug("dib: %s", full);
        if (c->error)
                *c->error = full;
        else
                free(full);
        return r;
}

static const char *env_get(const char *const *envp, const char *key) {
        size_t len = strlen(key);
        for (size_t i = 0; envp && envp[i]; i++)
                if (strncmp(envp[i], key, len) == 0 && envp[i][len] == '=')
                        return envp[i] + len + 1;
        return NULL;
}

static const char *scalar(const yaml_node_t *n) {
        return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool is_null(const yaml_node_t *n) {
        if (!n)
                return true;
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *s = scalar(n);
        return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
               strcmp(s, "NULL") == 0;
}

/* Python truthiness for the shapes that can appear here. */
static bool is_falsy(const yaml_node_t *n) {
        if (is_null(n))
                return true;
        switch (n->type) {
        case YAML_SCALAR_NODE:
                return n->data.scalar.length == 0 ||
                       (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                        (strcmp(scalar(n), "false") == 0 || strcmp(scalar(n), "False") == 0 ||
                         strcmp(scalar(n), "0") == 0));
        case YAML_MAPPING_NODE:
                return n->data.mapping.pairs.start == n->data.mapping.pairs.top;
        case YAML_SEQUENCE_NODE:
                return n->data.sequence.items.start == n->data.sequence.items.top;
        default:
                return false;
        }
}

/* Value node for key in mapping m, or NULL; *present tells a null value from absence. */
static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *m, const char *key, bool *present) {
        if (present)
                *present = false;
        for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
                const char *k = scalar(yaml_document_get_node(doc, p->key));
                if (k && strcmp(k, key) == 0) {
                        if (present)
                                *present = true;
                        return yaml_document_get_node(doc, p->value);
                }
        }
        return NULL;
}

static struct dib_pkg_phase *phase_get(struct dib_pkginstalls *acc, const char *phase) {
        for (size_t i = 0; i < acc->n_phases; i++)
                if (strcmp(acc->phases[i].phase, phase) == 0)
                        return &acc->phases[i];
        acc->phases = xrealloc(acc->phases, (acc->n_phases + 1) * sizeof(*acc->phases));
        acc->phases[acc->n_phases] = (struct dib_pkg_phase){ .phase = xstrdup(phase) };
        return &acc->phases[acc->n_phases++];
}

static void pkg_push(struct dib_pkg **v, size_t *n, const char *name, const char *element) {
        *v = xrealloc(*v, (*n + 1) * sizeof(**v));
        (*v)[(*n)++] = (struct dib_pkg){ .name = xstrdup(name), .element = xstrdup(element) };
}

/* _is_arch_in_list(): split on ',' without trimming, exactly as DIB does. */
static bool arch_in_list(const char *list, const char *arch) {
        size_t alen = strlen(arch);
        for (const char *p = list;;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                if (len == alen && memcmp(p, arch, len) == 0)
                        return true;
                if (!comma)
                        return false;
                p = comma + 1;
        }
}

static bool is_word(char ch) {
        return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}
static bool is_space(char ch) {
        return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* One when: statement, as re.match(r"(?P<var>[\w]+)(\s*)(?P<op>=|!=)(\s*)(?P<val>.*)"). */
static int when_one(struct pctx *c, const char *pkg, const yaml_node_t *n, bool *ret) {
        const char *s = scalar(n);
        if (!s)
                return perr(c, -EINVAL, n, "package '%s': when: must be a string or a list of strings", pkg);

        const char *p = s;
        while (is_word(*p))
                p++;
        if (p == s)
                return perr(c, -EINVAL, n, "malformed when: statement '%s'", s);
        _cleanup_free_ char *var = xstrndup(s, (size_t)(p - s));
        while (is_space(*p))
                p++;
        bool neg;
        if (p[0] == '=')
                neg = false, p++;
        else if (p[0] == '!' && p[1] == '=')
                neg = true, p += 2;
        else
                return perr(c, -EINVAL, n, "malformed when: statement '%s'", s);
        while (is_space(*p))
                p++;
        /* `.*` stops at a newline; DIB's val is the rest of that line. */
        _cleanup_free_ char *val = xstrndup(p, strcspn(p, "\n"));

        const char *have = env_get(c->env->envp, var);
        if (!have)
                return perr(c, -ENOKEY, n, "when: variable '%s' is not set", var);
        *ret = neg ? strcmp(have, val) != 0 : strcmp(have, val) == 0;
        return 0;
}

static int when_eval(struct pctx *c, const char *pkg, yaml_node_t *w, bool *ret) {
        bool all = true;
        int r;

        if (is_null(w)) {
                *ret = true;
                return 0;
        }
        if (w->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *it = w->data.sequence.items.start; it < w->data.sequence.items.top; it++) {
                        bool one;
                        r = when_one(c, pkg, yaml_document_get_node(c->doc, *it), &one);
                        if (r < 0)
                                return r;
                        all = all && one;
                }
        } else {
                r = when_one(c, pkg, w, &all);
                if (r < 0)
                        return r;
        }
        *ret = all;
        return 0;
}

static int collect_param(struct pctx *c, const char *pkg, yaml_node_t *param) {
        bool has_uninstall, has_build_only, present;
        yaml_node_t *n;
        int r;

        if (param->type != YAML_MAPPING_NODE)
                return perr(c, -EBADMSG, param, "package '%s': parameters must be a mapping", pkg);

        const char *phase = "install.d";
        n = map_get(c->doc, param, "phase", &present);
        if (present) {
                if (!scalar(n) || is_null(n))
                        return perr(c, -EBADMSG, n ? n : param, "package '%s': phase must be a string", pkg);
                phase = scalar(n);
        }
        map_get(c->doc, param, "uninstall", &has_uninstall);
        map_get(c->doc, param, "build-only", &has_build_only);

        n = map_get(c->doc, param, "installtype", NULL);
        if (!is_null(n)) {
                if (!scalar(n))
                        return perr(c, -EBADMSG, n, "package '%s': installtype must be a string", pkg);
                _cleanup_free_ char *var = xasprintf("DIB_INSTALLTYPE_%s", c->element);
                for (char *q = var; *q; q++)
                        if (*q == '-')
                                *q = '_';
                const char *want = env_get(c->env->envp, var);
                if (!want)
                        want = env_get(c->env->envp, "DIB_DEFAULT_INSTALLTYPE");
                if (!want)
                        want = "source";
                if (strcmp(scalar(n), want) != 0) {
                        log_debug("dib: %s: skipping %s due to installtype", c->path, pkg);
                        return 0;
                }
        }

        yaml_node_t *arch = map_get(c->doc, param, "arch", NULL);
        yaml_node_t *not_arch = map_get(c->doc, param, "not-arch", NULL);
        bool has_arch = !is_falsy(arch), has_not_arch = !is_falsy(not_arch);
        if (has_arch && has_not_arch)
                return perr(c, -EINVAL, param, "package '%s': both arch and not-arch given", pkg);
        if ((has_arch && !scalar(arch)) || (has_not_arch && !scalar(not_arch)))
                return perr(c, -EBADMSG, has_arch ? arch : not_arch, "package '%s': arch must be a comma list", pkg);
        if (has_arch && !arch_in_list(scalar(arch), c->env->arch))
                return 0;
        if (has_not_arch && arch_in_list(scalar(not_arch), c->env->arch))
                return 0;

        n = map_get(c->doc, param, "dib_python_version", &present);
        if (present) {
                /* str(value): a null becomes "None", which no DIB_PYTHON_VERSION matches. */
                const char *v = is_null(n) ? "None" : scalar(n);
                if (!v)
                        return perr(c, -EBADMSG, n, "package '%s': dib_python_version must be a scalar", pkg);
                const char *have = env_get(c->env->envp, "DIB_PYTHON_VERSION");
                if (*v && strcmp(v, have ? have : "") != 0)
                        return 0;
        }

        bool when_ok;
        r = when_eval(c, pkg, map_get(c->doc, param, "when", NULL), &when_ok);
        if (r < 0)
                return r;
        if (!when_ok)
                return 0;

        struct dib_pkg_phase *ph = phase_get(c->acc, phase);
        if (has_build_only || !has_uninstall)
                pkg_push(&ph->install, &ph->n_install, pkg, c->element);
        if (has_build_only || has_uninstall)
                pkg_push(&ph->uninstall, &ph->n_uninstall, pkg, c->element);
        return 0;
}

static int collect(struct pctx *c, yaml_node_t *root) {
        int r;

        if (!root)
                return 0; /* empty file */
        if (root->type != YAML_MAPPING_NODE)
                return perr(c, -EBADMSG, root, "expected a mapping of package names");
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
                yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
                const char *pkg = scalar(k);

                if (!pkg || !*pkg)
                        return perr(c, -EBADMSG, k, "package names must be non-empty strings");
                if (is_falsy(v)) {
                        struct dib_pkg_phase *ph = phase_get(c->acc, "install.d");
                        pkg_push(&ph->install, &ph->n_install, pkg, c->element);
                        continue;
                }
                if (v->type == YAML_SEQUENCE_NODE) {
                        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
                             it++) {
                                r = collect_param(c, pkg, yaml_document_get_node(c->doc, *it));
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                if (v->type != YAML_MAPPING_NODE)
                        return perr(c, -EBADMSG, v, "package '%s': expected null, a mapping or a list of mappings",
                                    pkg);
                r = collect_param(c, pkg, v);
                if (r < 0)
                        return r;
        }
        return 0;
}

int dib_pkginstalls_parse_file(const char *path, const char *element, const struct dib_pkg_env *env,
                               struct dib_pkginstalls *acc, char **errmsg) {
        struct dbuf b = DBUF_INIT(DIB_PKGFILE_MAX);
        struct pctx c = { .path = path, .element = element, .env = env, .acc = acc, .error = errmsg };
        yaml_parser_t parser;
        yaml_document_t doc, extra;
        int r;

        r = dbuf_read_file(&b, path);
        if (r < 0) {
                dbuf_free(&b);
                if (errmsg)
                        *errmsg = xasprintf("%s: %s", path,
                                               r == -E2BIG ? "file too large" : strerror(-r));
                return r;
        }
        if (!yaml_parser_initialize(&parser))
                abort(); /* only fails on OOM; our policy is to abort */
        yaml_parser_set_input_string(&parser, (const unsigned char *)dbuf_str(&b), b.len);
        if (!yaml_parser_load(&parser, &doc)) {
                char *msg = xasprintf("%s:%zu:%zu: %s%s%s", path, parser.problem_mark.line + 1,
                                      parser.problem_mark.column + 1, parser.context ? parser.context : "",
                                      parser.context ? ": " : "", parser.problem ? parser.problem : "invalid YAML");
                log_debug("dib: %s", msg);
                if (errmsg)
                        *errmsg = msg;
                else
                        free(msg);
                yaml_parser_delete(&parser);
                dbuf_free(&b);
                return -EBADMSG;
        }
        c.doc = &doc;
        r = collect(&c, yaml_document_get_root_node(&doc));
        if (r >= 0) {
                /* yaml.safe_load() refuses a second document. */
                if (!yaml_parser_load(&parser, &extra)) {
                        r = perr(&c, -EBADMSG, NULL, "%s", parser.problem ? parser.problem : "invalid YAML");
                } else {
                        yaml_node_t *second = yaml_document_get_root_node(&extra);
                        if (second)
                                r = perr(&c, -EBADMSG, second, "expected a single document");
                        yaml_document_delete(&extra);
                }
        }
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        dbuf_free(&b);
        return r;
}

int dib_pkginstalls_squash(const struct dib_element_set *set, const struct dib_pkg_env *env,
                           struct dib_pkginstalls **ret, char **errmsg) {
        struct dib_pkginstalls *acc = xnew(struct dib_pkginstalls, 1);

        for (size_t i = 0; i < set->n_elements; i++)
                for (int t = 0; t < 2; t++) {
                        _cleanup_free_ char *p = xasprintf("%s/package-installs.%s", set->elements[i].path,
                                                           t == 0 ? "json" : "yaml");
                        if (access(p, F_OK) < 0)
                                continue;
                        int r = dib_pkginstalls_parse_file(p, set->elements[i].name, env, acc, errmsg);
                        if (r < 0) {
                                dib_pkginstalls_free(acc);
                                return r;
                        }
                }
        *ret = acc;
        return 0;
}

const struct dib_pkg_phase *dib_pkginstalls_phase(const struct dib_pkginstalls *p, const char *phase) {
        for (size_t i = 0; p && i < p->n_phases; i++)
                if (strcmp(p->phases[i].phase, phase) == 0)
                        return &p->phases[i];
        return NULL;
}

static void pkgs_free(struct dib_pkg *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i].name);
                free(v[i].element);
        }
        free(v);
}

void dib_pkginstalls_done(struct dib_pkginstalls *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_phases; i++) {
                free(p->phases[i].phase);
                pkgs_free(p->phases[i].install, p->phases[i].n_install);
                pkgs_free(p->phases[i].uninstall, p->phases[i].n_uninstall);
        }
        free(p->phases);
        *p = (struct dib_pkginstalls){};
}

void dib_pkginstalls_free(struct dib_pkginstalls *p) {
        dib_pkginstalls_done(p);
        free(p);
}
