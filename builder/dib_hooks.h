/* dib_hooks.h — which diskimage-builder hooks run, in which order, where,
 * with which environment; and cache keys for build stages.
 *
 * Rules follow diskimage-builder's lib/common-functions generate_hooks() and
 * lib/dib-run-parts:
 * - every element's subdirectory (except tests/ and __pycache__/) is merged
 *   into one tree; the same regular-file name in the same subdirectory from
 *   two elements is fatal;
 * - a phase runs the executable regular files (symlinks followed) of its
 *   merged directory whose names match ^[0-9A-Za-z_-]+$; environment.d
 *   sources regular files matching ^[0-9A-Za-z_.-]+$ (executable or not);
 * - both are ordered as `LANG=C sort -n` orders names (dib_sort_n_compare()).
 * Files DIB silently ignores are reported in dib_hooks.warnings.
 *
 * Pure: reads the filesystem only, no globals, logs at debug. Any thread. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dib_element.h"
#include "digest.h"

enum dib_phase {
        DIB_PHASE_ROOT,         /* root.d */
        DIB_PHASE_EXTRA_DATA,   /* extra-data.d */
        DIB_PHASE_PRE_INSTALL,  /* pre-install.d */
        DIB_PHASE_INSTALL,      /* install.d */
        DIB_PHASE_POST_INSTALL, /* post-install.d */
        DIB_PHASE_POST_ROOT,    /* post-root.d */
        DIB_PHASE_BLOCK_DEVICE, /* block-device.d */
        DIB_PHASE_PRE_FINALISE, /* pre-finalise.d */
        DIB_PHASE_FINALISE,     /* finalise.d */
        DIB_PHASE_CLEANUP,      /* cleanup.d */
        DIB_PHASE_ENVIRONMENT,  /* environment.d: sourced before every phase, never run */
        _DIB_PHASE_MAX,
        _DIB_PHASE_INVALID = -EINVAL,
};

/* Where a phase's scripts execute. */
enum dib_phase_where {
        DIB_WHERE_OUTSIDE, /* on the host, against TARGET_ROOT / the block device */
        DIB_WHERE_INSIDE,  /* in the image (chroot; for poold: libguestfs) */
        DIB_WHERE_SOURCED, /* environment.d: sourced into every phase, both sides */
        _DIB_WHERE_MAX,
        _DIB_WHERE_INVALID = -EINVAL,
};

const char *dib_phase_to_string(enum dib_phase p);       /* "install.d"; NULL if out of range */
enum dib_phase dib_phase_from_string(const char *s);     /* _DIB_PHASE_INVALID if unknown */
enum dib_phase_where dib_phase_where(enum dib_phase p);  /* _DIB_WHERE_INVALID if out of range */
const char *dib_phase_where_to_string(enum dib_phase_where w); /* "outside"/"inside"/"sourced" */

/* `LANG=C sort -n` order of two names: GNU sort's numeric comparison of the
 * leading number (optional '-', digits, optional '.' fraction; no number = 0),
 * ties broken by byte comparison of the whole names. <0, 0, >0 like strcmp. */
int dib_sort_n_compare(const char *a, const char *b);

struct dib_hook {
        char *name;    /* file name inside the phase directory */
        char *path;    /* absolute: <element path>/<phase>/<name> */
        char *element; /* element it comes from */
        mode_t mode;   /* st_mode after following symlinks */
        bool runnable; /* dib-run-parts would run (environment.d: source) it */
};

struct dib_phase_hooks {
        struct dib_hook *files;          /* every regular file of the merged phase dir, sort -n order */
        size_t n_files;
        const struct dib_hook **scripts; /* the runnable subset of files, same order (points into files) */
        size_t n_scripts;
};

struct dib_hooks {
        struct dib_phase_hooks phase[_DIB_PHASE_MAX];
        struct dib_hook *top_files;  /* elements' top-level regular files (not *.pyc): element order, then name */
        size_t n_top_files;
        struct dib_hook *other_dirs; /* other subdirectories (bin/, static/, ...): name = dir name */
        size_t n_other_dirs;
        char **warnings;             /* NULL-terminated notes for the build log (skipped files) */
};

/* Collect the hooks of every element of set. On success sets *ret (free with
 * dib_hooks_free()) and returns 0. Returns -EEXIST with *errmsg naming the
 * file and both elements for a duplicate file name, other -errno for I/O
 * errors (message in *errmsg when errmsg is not NULL). */
int dib_hooks_collect(const struct dib_element_set *set, struct dib_hooks **ret, char **errmsg);
void dib_hooks_free(struct dib_hooks *hooks);

/* ---- environment ---------------------------------------------------------- */

struct dib_env {
        char **keys;    /* ordered; keys are unique */
        char **values;  /* parallel to keys */
        size_t n;
        char **ignored; /* NULL-terminated "KEY=VALUE" env-vars entries refused because the key is ours */
};

struct dib_env_params {
        const char *image_name;     /* IMAGE_NAME: output base path (required) */
        const char *diskimage_name; /* DIB_IMAGE_NAME (nodepool sets it), optional */
        const char *release;        /* DIB_RELEASE, optional */
        const char *arch;           /* ARCH; NULL -> "amd64" */
        const char *target_root;    /* TARGET_ROOT (required) */
        const char *tmp_build_dir;  /* TMP_BUILD_DIR (required) */
        const char *tmp_image_dir;  /* TMP_IMAGE_DIR (required) */
        const char *tmp_hooks_path; /* TMP_HOOKS_PATH; NULL -> <tmp_build_dir>/hooks */
        const char *tmp_mount_path; /* TMP_MOUNT_PATH; NULL -> <tmp_build_dir>/mnt */
        const char *const *image_types; /* formats, NULL-terminated; NULL/empty -> "qcow2" */
        const char *image_cache;    /* DIB_IMAGE_CACHE; NULL -> $HOME/.cache/image-create (HOME from host_environ, else /root) */
        const char *python_exec;    /* DIB_PYTHON_EXEC; NULL -> /usr/bin/python3 */
        const char *path;           /* PATH; NULL -> /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin */
        const struct dib_element_set *elements; /* IMAGE_ELEMENT, IMAGE_ELEMENT_YAML, ELEMENTS_PATH (required) */
        const char *const *env_vars;     /* the diskimage's env-vars as "KEY=VALUE", NULL-terminated, optional */
        const char *const *host_environ; /* host environment; its DIB_* entries pass through; optional */
};

/* Build the environment DIB gives hooks: defaults (ARCH, TARGET_ROOT, TMP_*,
 * IMAGE_*, DIB_RELEASE, DIB_IMAGE_CACHE, DIB_ROOT_LABEL=cloudimg-rootfs,
 * DIB_ROOT_FSTYPE=FS_TYPE=ext4, DIB_DEFAULT_INSTALLTYPE=package,
 * DIB_PYTHON_EXEC, DIB_PYTHON_VERSION=3, LC_ALL=C, PATH, ELEMENTS_PATH), then
 * host DIB_* entries, then env_vars, later ones replacing earlier values in
 * place. TARGET_ROOT, TMP_*, IMAGE_ELEMENT and IMAGE_ELEMENT_YAML are the
 * builder's: env_vars setting them are listed in ignored instead.
 * IMAGE_TYPES is space-separated (bash cannot export DIB's array).
 * Returns 0 and *ret (free with dib_env_free()), or -EINVAL with *errmsg
 * for a missing required parameter or a malformed env_vars entry. */
int dib_env_build(const struct dib_env_params *p, struct dib_env **ret, char **errmsg);
/* Value of key, or NULL. */
const char *dib_env_get(const struct dib_env *env, const char *key);
/* "KEY=VALUE" vector for execve(), NULL-terminated; free with dib_strv_free(). */
char **dib_env_to_envp(const struct dib_env *env);
void dib_env_free(struct dib_env *env);

/* ---- stage cache key ------------------------------------------------------ */

/* SHA-256 over one build stage's inputs, as 64 hex digits in ret_hex:
 * - parent_key (the previous stage's key; NULL or "" for the first stage),
 * - release (NULL distinct from ""), the env_vars ("KEY=VALUE", sorted first so
 *   their order does not matter),
 * - for each phase named in phases (NULL-terminated, e.g. "root.d"), in the
 *   order given: every file of the merged phase dir in hook order with its
 *   name, element, file type and permission bits and bytes,
 * - always: environment.d files, the elements' top-level files, and the whole
 *   content of their other subdirectories (bin/, static/, ...), since those
 *   can affect any phase.
 * File contents and modes are read now (not at collect time); mtimes, owners
 * and inode numbers are not part of the key. Returns 0, -EINVAL for an
 * unknown phase, or -errno if a file cannot be read (message in *errmsg
 * when errmsg is not NULL). */
int dib_stage_key(const struct dib_hooks *hooks, const char *const *phases, const char *const *env_vars,
                  const char *release, const char *parent_key, char ret_hex[SHA256_HEX_SIZE], char **errmsg);
