/* dib_element.h — diskimage-builder element lookup and dependency resolution.
 *
 * An element is a directory <dir>/<name> on a search path (ELEMENTS_PATH: the
 * config's colon-separated `elements-dir`, then poold's shipped elements/);
 * earlier directories override later ones. Resolution expands `element-deps`
 * breadth-first and drops elements named in another element's
 * `element-provides`, with diskimage-builder's rules
 * (diskimage_builder/element_dependencies.py).
 *
 * Differences from diskimage-builder, on purpose:
 * - `base` is NOT added automatically: poold ships no base element; list it
 *   (or its pieces) in the diskimage's elements if wanted.
 * - element-deps/-provides lines starting with '#' are comments.
 * - a name listed twice by the user counts once (DIB would report it as
 *   providing its own provides twice).
 * - the resulting order is deterministic: user-listed elements first, then
 *   dependencies in discovery order (DIB prints a Python set, i.e. any order;
 *   nothing in DIB depends on it — hook order comes from script names).
 *
 * Errors: every dib_* function that can fail for a reason the operator must
 * see takes `char **errmsg`; it is set (malloc'd, caller frees) only on
 * failure and only when not NULL — the opposite of ret_*, on purpose.
 *
 * Pure: reads the filesystem, never logs above debug, no globals. Any thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct dib_element {
        char *name;
        char *path;     /* realpath of the element directory */
        char **deps;    /* element-deps, NULL-terminated (never NULL) */
        char **provides; /* element-provides, NULL-terminated (never NULL) */
};

struct dib_element_set {
        struct dib_element *elements; /* resolved set, in the order described above */
        size_t n_elements;
        char **provided;          /* every name provided by a member, NULL-terminated */
        char **search_path;       /* copy of the directories searched, NULL-terminated */
        char *image_element;      /* IMAGE_ELEMENT: names, space-separated */
        char *image_element_yaml; /* IMAGE_ELEMENT_YAML: "name: path\n" lines, sorted by name like yaml.safe_dump */
};

enum {
        /* Fail unless some element provides "operating-system" (DIB always requires it). */
        DIB_RESOLVE_REQUIRE_OS = 1u << 0,
};

/* Build a search path: the entries of the colon-separated elements_dir (may
 * be NULL or empty; empty entries skipped) followed by shipped_dir (may be
 * NULL). Returns a NULL-terminated vector the caller frees with
 * dib_strv_free(); never fails. */
char **dib_element_search_path(const char *elements_dir, const char *shipped_dir);

/* Find element `name` on search_path (NULL-terminated). On success sets
 * *ret_path to a malloc'd realpath and returns 0. Returns -ENOENT if no
 * directory has it, -EINVAL for a name that is not a plain directory name
 * (empty, contains '/', "." or ".."); other -errno on I/O errors. */
int dib_element_find(const char *const *search_path, const char *name, char **ret_path);

/* Resolve user_elements (NULL-terminated) against search_path. flags: DIB_RESOLVE_*.
 * On success sets *ret (free with dib_element_set_free()) and returns 0.
 * On failure returns a negative errno and, if errmsg is not NULL, sets
 * *errmsg to a malloc'd one-line message for the build log:
 *   -ENOENT  element missing (the message names the element, the chain that
 *            required it, e.g. "element 'vm' (required by 'ubuntu' <- 'mybase')
 *            not found in ELEMENTS_PATH=/a:/b"), or a search path entry is not
 *            a directory;
 *   -EEXIST  a name provided by two elements, or a user-listed element that
 *            another element provides;
 *   -ENOMSG  DIB_RESOLVE_REQUIRE_OS given and nothing provides operating-system;
 *   -EINVAL  an invalid element name; other -errno for I/O errors. */
int dib_elements_resolve(const char *const *search_path, const char *const *user_elements, unsigned flags,
                         struct dib_element_set **ret, char **errmsg);

/* The member named `name`, or NULL. */
const struct dib_element *dib_element_set_get(const struct dib_element_set *set, const char *name);

void dib_element_set_free(struct dib_element_set *set);

/* Helpers for NULL-terminated string vectors used by the dib_* modules. */
size_t dib_strv_length(const char *const *l);
bool dib_strv_contains(const char *const *l, const char *s);
void dib_strv_free(char **l);
