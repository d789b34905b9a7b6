/* dib_pkginstalls.h — diskimage-builder's package-installs.yaml/.json,
 * squashed into per-phase install/uninstall lists.
 *
 * Semantics of elements/package-installs/bin/package-installs-squash:
 *   pkg: null | {phase, uninstall, build-only, installtype, arch, not-arch,
 *                dib_python_version, when}  | [ {...}, ... ]
 * - phase defaults to install.d;
 * - `uninstall` present (any value): uninstall only; `build-only` present:
 *   install and uninstall;
 * - installtype must equal DIB_INSTALLTYPE_<element, '-'->'_'> or else
 *   DIB_DEFAULT_INSTALLTYPE (default "source", as in the squash script);
 * - arch / not-arch: comma lists (entries not trimmed, like DIB) matched
 *   against ARCH; both given is an error;
 * - dib_python_version must equal DIB_PYTHON_VERSION when given;
 * - when: "VAR = val" / "VAR != val" (or a list, all must hold); VAR unset
 *   is an error.
 * Both .json and .yaml are read with libyaml (JSON is YAML flow syntax); DIB
 * reads .json then .yaml when both exist, and so do we.
 *
 * Pure: no globals, logs at debug only. Any thread. */
#pragma once

#include <stddef.h>

#include "dib_element.h"

struct dib_pkg {
        char *name;
        char *element; /* element whose package-installs file listed it */
};

struct dib_pkg_phase {
        char *phase; /* e.g. "install.d", "pre-install.d" */
        struct dib_pkg *install;
        size_t n_install;
        struct dib_pkg *uninstall;
        size_t n_uninstall;
};

struct dib_pkginstalls {
        struct dib_pkg_phase *phases; /* in order of first appearance */
        size_t n_phases;
};

/* Evaluation context. */
struct dib_pkg_env {
        const char *arch;          /* ARCH to match arch/not-arch against (e.g. "amd64"); required */
        const char *const *envp;   /* "KEY=VALUE", NULL-terminated: for when:, DIB_INSTALLTYPE_*,
                                    * DIB_DEFAULT_INSTALLTYPE, DIB_PYTHON_VERSION; may be NULL */
};

/* Parse one element's file (package-installs.yaml or .json) at path and add
 * its entries, as listed by `element`, to *acc (zero-initialised by the
 * caller, or from an earlier call). Returns 0, or a negative errno with
 * *errmsg (when errmsg is not NULL) set to "file:line:column: problem":
 *   -EBADMSG bad YAML or a wrong shape; -EINVAL a malformed when/arch;
 *   -ENOKEY a when: variable not set in envp; -errno on I/O errors. */
int dib_pkginstalls_parse_file(const char *path, const char *element, const struct dib_pkg_env *env,
                               struct dib_pkginstalls *acc, char **errmsg);

/* Squash the package-installs.json and .yaml of every element of set (in set
 * order). On success sets *ret (free with dib_pkginstalls_free()) and
 * returns 0; errors as dib_pkginstalls_parse_file(). */
int dib_pkginstalls_squash(const struct dib_element_set *set, const struct dib_pkg_env *env,
                           struct dib_pkginstalls **ret, char **errmsg);

/* The lists for phase (e.g. "install.d"), or NULL when nothing is listed for it. */
const struct dib_pkg_phase *dib_pkginstalls_phase(const struct dib_pkginstalls *p, const char *phase);

/* Frees the content of p (p itself is not freed); NULL ok. */
void dib_pkginstalls_done(struct dib_pkginstalls *p);
/* Frees p and its content; NULL ok. */
void dib_pkginstalls_free(struct dib_pkginstalls *p);
