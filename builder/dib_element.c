/* dib_element.c — element lookup and element-deps/element-provides expansion.
 *
 * DESIGN: mirrors diskimage_builder/element_dependencies.py
 * _expand_element_dependencies(): a FIFO of names; a popped name already
 * provided is skipped; otherwise its provides are recorded (a second provider
 * is an error) and its deps not yet seen nor provided are queued. Every name
 * seen is kept with the index of the element that first required it, so a
 * missing element can be reported with the chain that led to it. The result is
 * the seen names minus the provided ones. */
#include "dib_element.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dbuf.h"
#include "log.h"
#include "macro.h"

/* element-deps/-provides are tiny; anything bigger is not one. */
#define DIB_LIST_FILE_MAX (1024 * 1024)
/* Cap for generated text (messages, IMAGE_ELEMENT*); reached only by absurd inputs. */
#define DIB_TEXT_MAX (16u * 1024 * 1024)

size_t dib_strv_length(const char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

bool dib_strv_contains(const char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (strcmp(l[i], s) == 0)
                        return true;
        return false;
}

void dib_strv_free(char **l) {
        for (size_t i = 0; l && l[i]; i++)
                free(l[i]);
        free(l);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, dib_strv_free);

static void strv_push(char ***l, size_t *n, char *s) {
        *l = xrealloc(*l, (*n + 2) * sizeof(char *));
        (*l)[(*n)++] = s;
        (*l)[*n] = NULL;
}

char **dib_element_search_path(const char *elements_dir, const char *shipped_dir) {
        char **l = xnew(char *, 1);
        size_t n = 0;

        for (const char *p = elements_dir; p && *p;) {
                const char *colon = strchr(p, ':');
                size_t len = colon ? (size_t)(colon - p) : strlen(p);
                if (len > 0)
                        strv_push(&l, &n, xstrndup(p, len));
                p = colon ? colon + 1 : p + len;
        }
        if (shipped_dir && *shipped_dir)
                strv_push(&l, &n, xstrdup(shipped_dir));
        return l;
}

static bool element_name_valid(const char *name) {
        return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int dib_element_find(const char *const *search_path, const char *name, char **ret_path) {
        if (!element_name_valid(name))
                return -EINVAL;
        for (size_t i = 0; search_path && search_path[i]; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", search_path[i], name);
                struct stat st;

                if (stat(p, &st) < 0) {
                        if (errno == ENOENT || errno == ENOTDIR)
                                continue;
                        return negative_errno();
                }
                if (!S_ISDIR(st.st_mode))
                        continue; /* DIB only considers directories */
                char *real = realpath(p, NULL);
                if (!real)
                        return negative_errno();
                *ret_path = real;
                return 0;
        }
        return -ENOENT;
}

/* Read a newline list: whitespace-trimmed lines, blanks and '#' comments
 * skipped, duplicates dropped. A missing file is an empty list. */
static int read_name_list(const char *dir, const char *file, char ***ret) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, file);
        _cleanup_(dib_strv_freep) char **l = xnew(char *, 1);
        struct dbuf b = DBUF_INIT(DIB_LIST_FILE_MAX);
        size_t n = 0;

        int r = dbuf_read_file(&b, p);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(l);
                return 0;
        }
        if (r < 0) {
                dbuf_free(&b);
                return r;
        }

        char *save = NULL;
        for (char *line = strtok_r(b.buf ? b.buf : (char[]){ "" }, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *end = line + strlen(line);
                while (*line == ' ' || *line == '\t' || *line == '\r' || *line == '\v' || *line == '\f')
                        line++;
                while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\v' ||
                                      end[-1] == '\f'))
                        *--end = '\0';
                if (*line == '\0' || *line == '#' || dib_strv_contains((const char *const *)l, line))
                        continue;
                strv_push(&l, &n, xstrdup(line));
        }
        dbuf_free(&b);
        *ret = TAKE_PTR(l);
        return 0;
}

struct seen {
        char *name;
        ssize_t parent; /* index of the first element that required it; -1 = user-listed */
        bool loaded;
        struct dib_element el;
};

struct resolver {
        struct seen *v;
        size_t n;
        size_t *queue;
        size_t q_head, q_len;
        char **provided;
        char **provided_by; /* parallel to provided */
        size_t n_provided;
};

static ssize_t seen_find(const struct resolver *r, const char *name) {
        for (size_t i = 0; i < r->n; i++)
                if (strcmp(r->v[i].name, name) == 0)
                        return (ssize_t)i;
        return -1;
}

static size_t seen_add(struct resolver *r, const char *name, ssize_t parent) {
        r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
        r->v[r->n] = (struct seen){ .name = xstrdup(name), .parent = parent };
        return r->n++;
}

static void queue_push(struct resolver *r, size_t idx) {
        r->queue = xrealloc(r->queue, (r->q_len + 1) * sizeof(size_t));
        r->queue[r->q_len++] = idx;
}

static ssize_t provided_find(const struct resolver *r, const char *name) {
        for (size_t i = 0; i < r->n_provided; i++)
                if (strcmp(r->provided[i], name) == 0)
                        return (ssize_t)i;
        return -1;
}

static void element_done(struct dib_element *e) {
        free(e->name);
        free(e->path);
        dib_strv_free(e->deps);
        dib_strv_free(e->provides);
}

static void resolver_done(struct resolver *r) {
        for (size_t i = 0; i < r->n; i++) {
                free(r->v[i].name);
                element_done(&r->v[i].el);
        }
        free(r->v);
        free(r->queue);
        for (size_t i = 0; i < r->n_provided; i++) {
                free(r->provided[i]);
                free(r->provided_by[i]);
        }
        free(r->provided);
        free(r->provided_by);
}

static char *join(const char *const *l, const char *sep) {
        struct dbuf b = DBUF_INIT(DIB_TEXT_MAX);
        for (size_t i = 0; l && l[i]; i++)
                if (dbuf_adds(&b, i ? sep : "") < 0 || dbuf_adds(&b, l[i]) < 0)
                        break; /* over the cap: a truncated message is still useful */
        return dbuf_take(&b, NULL);
}

static char *missing_message(const struct resolver *r, size_t idx, const char *const *search_path) {
        struct dbuf b = DBUF_INIT(DIB_TEXT_MAX);
        _cleanup_free_ char *path = join(search_path, ":");
        int k = dbuf_addf(&b, "element '%s' ", r->v[idx].name);

        if (r->v[idx].parent < 0)
                k |= dbuf_adds(&b, "(listed in the diskimage)");
        else {
                k |= dbuf_adds(&b, "(required by ");
                /* Bounded by r->n: parents always have smaller indices. */
                for (ssize_t p = r->v[idx].parent; p >= 0; p = r->v[p].parent)
                        k |= dbuf_addf(&b, "%s'%s'", p == r->v[idx].parent ? "" : " <- ", r->v[p].name);
                k |= dbuf_adds(&b, ")");
        }
        k |= dbuf_addf(&b, " not found in ELEMENTS_PATH=%s", path);
        (void)k; /* over the cap: a truncated message is still useful */
        return dbuf_take(&b, NULL);
}

/* YAML plain scalars PyYAML would also leave unquoted; anything else single-quoted. */
static int yaml_add_scalar(struct dbuf *b, const char *s) {
        static const char *const special[] = { "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false",
                                               "False", "FALSE", "yes", "Yes", "YES", "no", "No", "NO",
                                               "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N", NULL };
        bool plain = !dib_strv_contains(special, s) && strchr("0123456789+-.", s[0]) == NULL;
        for (const char *c = s; plain && *c; c++)
                plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                        strchr("_-./", *c);
        if (plain)
                return dbuf_adds(b, s);
        int k = dbuf_adds(b, "'");
        for (const char *c = s; *c; c++)
                k |= *c == '\'' ? dbuf_adds(b, "''") : dbuf_add(b, c, 1);
        return k | dbuf_adds(b, "'");
}

static int cmp_element_name(const void *a, const void *b) {
        return strcmp((*(const struct dib_element *const *)a)->name, (*(const struct dib_element *const *)b)->name);
}

static int set_fill_exports(struct dib_element_set *set) {
        struct dbuf b = DBUF_INIT(DIB_TEXT_MAX);
        _cleanup_free_ const struct dib_element **sorted = xnew(const struct dib_element *, set->n_elements + 1);
        int k = 0;

        for (size_t i = 0; i < set->n_elements; i++) {
                k |= dbuf_adds(&b, i ? " " : "");
                k |= dbuf_adds(&b, set->elements[i].name);
                sorted[i] = &set->elements[i];
        }
        set->image_element = dbuf_take(&b, NULL);

        qsort(sorted, set->n_elements, sizeof(*sorted), cmp_element_name);
        for (size_t i = 0; i < set->n_elements; i++) {
                k |= yaml_add_scalar(&b, sorted[i]->name);
                k |= dbuf_adds(&b, ": ");
                k |= yaml_add_scalar(&b, sorted[i]->path);
                k |= dbuf_adds(&b, "\n");
        }
        if (set->n_elements == 0)
                k |= dbuf_adds(&b, "{}\n");
        set->image_element_yaml = dbuf_take(&b, NULL);
        return k < 0 ? -E2BIG : 0;
}

static int fail(char **errmsg, int r, char *msg) {
        log_debug("dib: %s", msg);
        if (errmsg)
                *errmsg = msg;
        else
                free(msg);
        return r;
}

int dib_elements_resolve(const char *const *search_path, const char *const *user_elements, unsigned flags,
                         struct dib_element_set **ret, char **errmsg) {
        struct resolver rs = {};
        int r;

        for (size_t i = 0; search_path && search_path[i]; i++) {
                struct stat st;
                if (stat(search_path[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
                        r = fail(errmsg, -ENOENT,
                                 xasprintf("ELEMENTS_PATH entry '%s' is not a directory", search_path[i]));
                        goto finish;
                }
        }

        for (size_t i = 0; user_elements && user_elements[i]; i++) {
                if (!element_name_valid(user_elements[i])) {
                        r = fail(errmsg, -EINVAL, xasprintf("invalid element name '%s'", user_elements[i]));
                        goto finish;
                }
                if (seen_find(&rs, user_elements[i]) < 0)
                        queue_push(&rs, seen_add(&rs, user_elements[i], -1));
        }

        while (rs.q_head < rs.q_len) {
                size_t idx = rs.queue[rs.q_head++];
                struct seen *s = &rs.v[idx];

                if (provided_find(&rs, s->name) >= 0)
                        continue;
                if (!element_name_valid(s->name)) {
                        r = fail(errmsg, -EINVAL,
                                 xasprintf("invalid element name '%s' in element-deps of '%s'", s->name,
                                           rs.v[s->parent].name));
                        goto finish;
                }
                r = dib_element_find(search_path, s->name, &s->el.path);
                if (r == -ENOENT) {
                        r = fail(errmsg, r, missing_message(&rs, idx, search_path));
                        goto finish;
                }
                if (r < 0) {
                        r = fail(errmsg, r, xasprintf("element '%s': lookup failed: %s", s->name, strerror(-r)));
                        goto finish;
                }
                s->el.name = xstrdup(s->name);
                s->loaded = true;
                r = read_name_list(s->el.path, "element-deps", &s->el.deps);
                if (r >= 0)
                        r = read_name_list(s->el.path, "element-provides", &s->el.provides);
                if (r < 0) {
                        r = fail(errmsg, r,
                                 xasprintf("element '%s' (%s): cannot read element-deps/element-provides: %s",
                                           s->name, s->el.path, strerror(-r)));
                        goto finish;
                }

                for (size_t j = 0; s->el.provides[j]; j++) {
                        ssize_t p = provided_find(&rs, s->el.provides[j]);
                        if (p >= 0) {
                                r = fail(errmsg, -EEXIST,
                                         xasprintf("'%s' is provided by both '%s' and '%s'", s->el.provides[j],
                                                   rs.provided_by[p], s->name));
                                goto finish;
                        }
                }
                for (size_t j = 0; s->el.provides[j]; j++) {
                        size_t n = rs.n_provided;
                        strv_push(&rs.provided, &n, xstrdup(s->el.provides[j]));
                        strv_push(&rs.provided_by, &rs.n_provided, xstrdup(s->name));
                }
                /* s may move when seen_add() reallocs: index from here on. */
                for (size_t j = 0; rs.v[idx].el.deps[j]; j++) {
                        const char *dep = rs.v[idx].el.deps[j];
                        if (seen_find(&rs, dep) >= 0)
                                continue;
                        bool is_provided = provided_find(&rs, dep) >= 0;
                        size_t d = seen_add(&rs, dep, (ssize_t)idx);
                        if (!is_provided)
                                queue_push(&rs, d);
                }
        }

        {
                struct dbuf msg = DBUF_INIT(DIB_TEXT_MAX);
                int k = 0;
                for (size_t i = 0; user_elements && user_elements[i]; i++) {
                        ssize_t p = provided_find(&rs, user_elements[i]);
                        bool dup = false;
                        for (size_t j = 0; j < i; j++)
                                dup = dup || strcmp(user_elements[j], user_elements[i]) == 0;
                        if (p < 0 || dup)
                                continue;
                        k |= dbuf_addf(&msg, "%selement '%s' is listed in the diskimage but already provided by '%s'",
                                       msg.len ? "; " : "", user_elements[i], rs.provided_by[p]);
                }
                (void)k; /* over the cap: a truncated message is still useful */
                if (msg.len > 0) {
                        r = fail(errmsg, -EEXIST, dbuf_take(&msg, NULL));
                        goto finish;
                }
                dbuf_free(&msg);
        }

        if ((flags & DIB_RESOLVE_REQUIRE_OS) && provided_find(&rs, "operating-system") < 0) {
                r = fail(errmsg, -ENOMSG,
                         xstrdup("no element provides 'operating-system': include an operating system element"));
                goto finish;
        }

        struct dib_element_set *set = xnew(struct dib_element_set, 1);
        set->elements = xnew(struct dib_element, rs.n + 1);
        for (size_t i = 0; i < rs.n; i++) {
                if (provided_find(&rs, rs.v[i].name) >= 0 || !rs.v[i].loaded)
                        continue;
                set->elements[set->n_elements++] = rs.v[i].el;
                rs.v[i].el = (struct dib_element){};
        }
        set->provided = xnew(char *, rs.n_provided + 1);
        for (size_t i = 0; i < rs.n_provided; i++)
                set->provided[i] = xstrdup(rs.provided[i]);
        set->search_path = xnew(char *, dib_strv_length(search_path) + 1);
        for (size_t i = 0; search_path && search_path[i]; i++)
                set->search_path[i] = xstrdup(search_path[i]);
        r = set_fill_exports(set);
        if (r < 0) {
                dib_element_set_free(set);
                r = fail(errmsg, r, xstrdup("element list too long for IMAGE_ELEMENT"));
                goto finish;
        }
        *ret = set;
        r = 0;
finish:
        resolver_done(&rs);
        return r;
}

const struct dib_element *dib_element_set_get(const struct dib_element_set *set, const char *name) {
        for (size_t i = 0; set && i < set->n_elements; i++)
                if (strcmp(set->elements[i].name, name) == 0)
                        return &set->elements[i];
        return NULL;
}

void dib_element_set_free(struct dib_element_set *set) {
        if (!set)
                return;
        for (size_t i = 0; i < set->n_elements; i++)
                element_done(&set->elements[i]);
        free(set->elements);
        dib_strv_free(set->provided);
        dib_strv_free(set->search_path);
        free(set->image_element);
        free(set->image_element_yaml);
        free(set);
}
