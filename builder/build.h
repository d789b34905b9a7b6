/* build.h — poold-builder's image build pipeline (`disk-image-create`).
 *
 * `poold-builder disk-image-create` behaves like diskimage-builder's CLI and
 * is what the builder daemon runs for a diskimage. The pipeline and its stage
 * cache are described in builder/dib_main.c; this header holds the entry point
 * and the pure parts (options, stage plan and keys, hook runner scripts,
 * output names, checksum lines), which the unit tests exercise.
 *
 * Everything here is single-threaded: the subcommand is its own process. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "dib_hooks.h"
#include "dib_pkginstalls.h"
#include "digest.h"

/* Entry point of `poold-builder disk-image-create ARGS...`; argv[0] is
 * "disk-image-create". Returns the process exit code (0 = images written). */
int dib_main(int argc, char **argv);

/* ---- options -------------------------------------------------------------- */

enum build_format {
        BUILD_FORMAT_QCOW2,
        BUILD_FORMAT_RAW,
        BUILD_FORMAT_VHD,
        BUILD_FORMAT_VMDK,
        _BUILD_FORMAT_MAX,
        _BUILD_FORMAT_INVALID = -EINVAL,
};

const char *build_format_to_string(enum build_format f);  /* "qcow2"...; NULL if out of range */
enum build_format build_format_from_string(const char *s); /* _BUILD_FORMAT_INVALID if unsupported */

struct build_opts {
        bool help;
        bool trace;              /* -x */
        bool checksum;           /* --checksum */
        bool no_tmpfs;           /* --no-tmpfs (accepted; poold never uses tmpfs) */
        char *qemu_img_options;  /* --qemu-img-options: `-o` for the qcow2 conversion, or NULL */
        char *image_size;        /* --image-size GB (else DIB_IMAGE_SIZE), or NULL */
        char *output_base;       /* -o, with a trailing ".<requested format>" removed; default "image" */
        enum build_format formats[_BUILD_FORMAT_MAX]; /* -t, deduplicated, in the order given */
        size_t n_formats;        /* >= 1: qcow2 when -t is absent */
        char **elements;         /* operands, NULL-terminated, >= 1 unless help */
};

/* Parse `disk-image-create [options] ELEMENT...` (argv[0] is the subcommand
 * name; getopt state is reset, so it may be called repeatedly). On success
 * fills *ret (release with build_opts_done()) and returns 0. Returns -EINVAL
 * with *errmsg (malloc'd one-line message, caller frees) for an unknown
 * option, an unsupported format or architecture, or no element. */
int build_opts_parse(int argc, char **argv, struct build_opts *ret, char **errmsg);
void build_opts_done(struct build_opts *o);

/* Usage text (static). */
const char *build_usage(void);

/* "<base>.<ext>" for format f; caller frees. */
char *build_output_path(const char *base, enum build_format f);

/* One line of a .md5/.sha256 file in md5sum/sha256sum text format:
 * "<hex>  <basename of path>\n", so `sha256sum -c` works in the output
 * directory and Nodepool's "first 32/64 characters" rule finds the digest.
 * Returns NULL if hex is not all lowercase hex digits. Caller frees. */
char *build_checksum_line(const char *hex, const char *path);

/* ---- stage plan ----------------------------------------------------------- */

/* A stage is the unit of the cache: the phases it runs and the key of its
 * result. Stage 0 runs root.d and its result is the base tree (a tarball);
 * each later stage ends with one inside phase (run in one libguestfs
 * appliance) preceded by the outside phases since the previous stage; a last
 * stage may hold only outside phases (e.g. cleanup.d). Phases with nothing to
 * run (no script, no package) belong to no stage and no key. */
struct build_stage {
        enum dib_phase phases[_DIB_PHASE_MAX]; /* in DIB order */
        size_t n_phases;
        bool root;       /* stage 0: root.d on the host */
        bool has_inside; /* its last phase runs inside the image */
        char key[SHA256_HEX_SIZE];
};

struct build_plan {
        struct build_stage *stages;
        size_t n_stages;
};

/* True when phase p has something to run: runnable scripts, or (inside
 * phases) packages to install or remove. */
bool build_phase_has_work(const struct dib_hooks *hooks, const struct dib_pkginstalls *pkgs, enum dib_phase p);

/* Group the phases with work into stages and compute each stage's key:
 * dib_stage_key() over the stage's phases chained on the previous stage's
 * key, with the elements' README* and package-installs.* files left out of
 * the "always" part (README cannot change an image; package lists are
 * hashed per phase instead, so a package added to install.d does not
 * invalidate the base tree), then the stage's package lists folded in.
 * key_env: "KEY=VALUE" entries that define the build (see
 * build_key_env()). Returns 0 and *ret (free with build_plan_free()),
 * -ENOENT with *errmsg when no element has a root.d script, or
 * dib_stage_key()'s errors. */
int build_plan_new(const struct dib_hooks *hooks, const struct dib_pkginstalls *pkgs, const char *const *key_env,
                   const char *release, struct build_plan **ret, char **errmsg);
void build_plan_free(struct build_plan *plan);

/* The environment entries that are part of every stage key, from envp
 * ("KEY=VALUE", NULL-terminated): every DIB_* variable except those that
 * name one build rather than define it (DIB_IMAGE_NAME, DIB_IMAGE_FILENAME,
 * DIB_RELEASE — hashed separately —, DIB_DEBUG_TRACE, DIB_NO_TMPFS,
 * DIB_CHECKSUM, DIB_ARGS, DIB_ENV). A value that is an absolute path to a
 * regular file of at most 1 MiB adds an entry "KEY#sha256=<digest of the
 * file>", so e.g. a new authorized_keys file behind the same
 * DIB_DEV_USER_AUTHORIZED_KEYS path rebuilds. Sorted; free with
 * dib_strv_free(). */
char **build_key_env(const char *const *envp);

/* ---- hook runner ---------------------------------------------------------- */

struct build_runner_params {
        enum dib_phase phase;
        const char *hooks_dir;          /* merged hooks tree: <hooks_dir>/<phase>/<script> */
        const struct dib_hooks *hooks;
        const struct dib_pkg_phase *pkgs; /* packages for this phase, or NULL */
        const char *env_file;           /* file of `export K='v'` lines to source first, or NULL */
        bool inside;                    /* in the image: policy-rc.d, package installs allowed */
        bool trace;                     /* set -x */
};

/* A bash script that runs one phase as diskimage-builder's dib-run-parts
 * does: `set -eu -o pipefail`, source environment.d files, then run the
 * phase's scripts in `sort -n` order, printing "poold: running PHASE/NAME"
 * and the time each took, stopping at the first failure with
 * "poold: PHASE/NAME failed with exit code N" and that code. Packages from
 * package-installs are installed (then removed) with apt-get at the position
 * of a script named 01-package-installs, as DIB's package-installs element
 * does. Inside, a policy-rc.d keeps packages from starting services while it
 * runs. Caller frees. */
char *build_runner_script(const struct build_runner_params *p);

/* `'s'` with embedded single quotes escaped, for bash. Caller frees. */
char *build_shell_quote(const char *s);

/* ---- stage cache ---------------------------------------------------------- */

/* Files in the cache directory:
 *   <key>.tar            stage 0's result: the root tree after root.d
 *   <key>-<nonce>.qcow2  a disk: the first stage after root.d makes a full
 *                        qcow2, later stages overlays whose backing file is
 *                        the exact disk file they were built on (by name, so
 *                        the directory can move)
 *   <key>.disk           the stage's entry: the name of its result disk
 *                        (an outside-only stage that put no file in the image
 *                        names its parent's disk)
 *   <key>.lock           flock()ed while a build makes that entry
 * Files appear by rename(2) of complete files, so a killed build never leaves
 * a partial entry, and are never modified. A rebuilt stage gets a new disk
 * file, so an overlay can never end up on top of a different base than the
 * one it was made on: an entry is usable while its whole backing chain
 * exists. */

/* Where the cache is when POOLD_STAGE_CACHE is not set. */
#define BUILD_DEFAULT_STAGE_CACHE "/var/cache/poold/stages"

/* "<dir>/<key><suffix>"; caller frees. */
char *build_cache_path(const char *dir, const char *key, const char *suffix);
/* Whether stage 0's tarball <key>.tar exists. */
bool build_cache_has_tar(const char *dir, const char *key);
/* The disk of key's entry as a path, when the entry exists and every file of
 * its backing chain is present; else NULL. Caller frees. */
char *build_cache_disk(const char *dir, const char *key);
/* Index of the first stage that must be built: stages before it are usable
 * from the cache (the root tarball is needed only when stage 1 must be
 * built). plan->n_stages when the whole build is cached. */
size_t build_cache_first_missing(const char *dir, const struct build_plan *plan);
/* A fresh disk file name for key: "<key>-<16 hex digits>.qcow2". Caller frees. */
char *build_cache_new_disk_name(const char *key);
/* Publish key's entry naming disk_name (a file name in dir), atomically. Returns 0 or -errno. */
int build_cache_publish(const char *dir, const char *key, const char *disk_name);
/* The backing file name recorded in the qcow2 header of path ("" when none):
 * 0 and *ret (caller frees), -EBADMSG if path is not a qcow2 file, -errno. */
int build_qcow2_backing(const char *path, char **ret);
/* Remove temporary files a killed build left for key ("<key>*.tmp"); call
 * with key's lock held. */
void build_cache_remove_tmp(const char *dir, const char *key);
/* Take the exclusive lock of key's entry (blocks; says so on stdout when it
 * has to wait). The lock file may be removed by the pruner once the key has
 * no entry: the lock taken is always on the file that has the name. Returns
 * 0 and *ret_fd (close to release) or -errno. */
int build_cache_lock(const char *dir, const char *key, int *ret_fd);

/* Use of the cache, for the pruner (build_prune.h). */

/* Record a use of cache file NAME (a plain name in dir): its modification
 * time becomes now. Best effort. */
void build_cache_touch(const char *dir, const char *name);

/* Files a build reads, each held with a shared flock(2) until released. */
struct build_holds {
        int *fds;
        size_t n;
};
/* Hold the file at PATH (waits while a pruner is removing it). 0, -ENOENT
 * when it is gone (pruned meanwhile), or -errno. */
int build_cache_hold(struct build_holds *h, const char *path);
/* Hold the disk of key's entry and every file of its backing chain: its
 * path (caller frees) when all of it is there, else NULL with nothing new
 * held. */
char *build_cache_hold_disk(struct build_holds *h, const char *dir, const char *key);
void build_holds_release(struct build_holds *h);
