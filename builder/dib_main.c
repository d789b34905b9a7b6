/* dib_main.c — `poold-builder disk-image-create`: diskimage-builder's CLI
 * without diskimage-builder.
 *
 * DESIGN: elements are resolved and their hooks collected by builder/dib_*.
 * The phases with work are grouped into stages (build_plan.c): stage 0 runs
 * root.d on the host into a directory (TARGET_ROOT) and its result, the base
 * tree, is cached as a tarball; every later stage runs the outside phases
 * since the previous stage on the host — with TARGET_ROOT an empty directory
 * whose files are copied into the image afterwards — then its inside phase in
 * one libguestfs appliance (hooks under /tmp/in_target.d as in DIB), writing
 * to a qcow2 overlay of the previous stage's disk (the first one creates the
 * disk: MBR, one ext4 partition labelled DIB_ROOT_LABEL, the base tree
 * copied in). Each result is published in the stage cache under a key over
 * all its inputs, chained on the previous key, so a rebuild starts at the
 * first stage whose inputs changed; the outputs are converted from the last
 * stage's disk with qemu-img.
 *
 * Outside phases after root.d are not cached on their own: they run again
 * (on the host, quickly) whenever a later stage must be built, because DIB
 * hooks also hand files to later phases through TMP_HOOKS_PATH.
 * Every external program runs through shared/base/cmd.h. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "build.h"
#include "build_gfs.h"
#include "build_prune.h"
#include "build_rootfs.h"
#include "cmd.h"
#include "dbuf.h"
#include "digest.h"
#include "dib_element.h"
#include "dib_hooks.h"
#include "dib_pkginstalls.h"
#include "log.h"
#include "model.h"

extern char **environ;

#define DEFAULT_IMAGE_SIZE_GB "2"
#define IN_TARGET_DIR "/tmp/in_target.d"

struct dib_build {
        struct build_opts opts;
        char *elements_dir;
        char **search_path;
        struct dib_element_set *set;
        struct dib_hooks *hooks;
        struct dib_pkginstalls pkgs;
        struct dib_env *env;
        char **envp;
        char **key_env;
        struct build_plan *plan;
        const char *cache_dir;
        int64_t cache_max_age;    /* pruning limits (build_prune.h) */
        uint64_t cache_max_size;
        struct build_holds holds; /* cache files this build reads, held until it ends */
        char **keep;              /* cache file names this build used or made: never pruned after it */
        char *work;
        char *hooks_dir;
        char *hooks_tar;
        char *image_size; /* for qemu-img create, e.g. "2048M" */
        const char *root_label;
        struct timespec t0;
};

/* ---- log ------------------------------------------------------------------ */

static double elapsed(const struct timespec *since) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* One line on stdout (the build log), timestamped like DIB's, in one write. */
_printf_(1, 2) static void say(const char *fmt, ...) {
        struct timeval tv;
        struct tm tm;
        char ts[32];
        gettimeofday(&tv, NULL);
        localtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
        va_end(ap);
        _cleanup_free_ char *line = xasprintf("%s.%03d | %s\n", ts, (int)(tv.tv_usec / 1000), msg ? msg : fmt);
        fflush(stdout);
        size_t len = strlen(line);
        for (size_t off = 0; off < len;) {
                ssize_t w = write(STDOUT_FILENO, line + off, len - off);
                if (w <= 0) break;
                off += (size_t)w;
        }
}

/* ---- helpers ---------------------------------------------------------------- */

/* Process group of the child running now: cmd.h puts each child in its own
 * group, so a SIGTERM to ours (the daemon's build-timeout) must be passed on.
 * The one static of this module, for the signal handler. */
static volatile sig_atomic_t current_child_pgid;

static void on_term(int sig) {
        pid_t pg = current_child_pgid;
        if (pg > 0) kill(-pg, SIGTERM);
        signal(sig, SIG_DFL);
        raise(sig);
}

static int run_cmd(struct cmd *c, const char *what, char **errmsg) {
        struct cmd_status st;
        fflush(stdout);
        cmd_set_log_fd(c, STDOUT_FILENO);
        int r = cmd_start(c);
        if (r == 0) {
                current_child_pgid = cmd_get_pid(c);
                r = cmd_finish(c, &st);
                current_child_pgid = 0;
        }
        if (r < 0) {
                *errmsg = xasprintf("%s: cannot run: %s", what, strerror(-r));
                return r;
        }
        if (!cmd_status_success(&st)) {
                *errmsg = xasprintf("%s: %s %d", what, st.outcome == CMD_EXITED ? "exited with status" : "killed by signal",
                                    st.code);
                return -EIO;
        }
        return 0;
}

static int write_file(const char *path, const char *content, mode_t mode, char **errmsg) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        size_t len = strlen(content);
        if (fd < 0 || write(fd, content, len) != (ssize_t)len) {
                int r = negative_errno();
                *errmsg = xasprintf("%s: %s", path, strerror(-r));
                return r;
        }
        return 0;
}

static bool dir_exists(const char *p) {
        struct stat st;
        return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool dir_is_empty(const char *p) {
        DIR *d = opendir(p);
        if (!d) return true;
        bool empty = true;
        struct dirent *de;
        while (empty && (de = readdir(d)))
                empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
        closedir(d);
        return empty;
}

static int rm_rf(const char *path, char **errmsg) {
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("rm");
        cmd_args(c, "-rf", "--one-file-system", "--", path, NULL);
        return run_cmd(c, "rm -rf", errmsg);
}

static int make_dir(const char *path, char **errmsg) {
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                int r = negative_errno();
                *errmsg = xasprintf("cannot create %s: %s", path, strerror(-r));
                return r;
        }
        return 0;
}

static int tar_dir(const char *dir, const char *tar, char **errmsg) {
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("tar");
        cmd_args(c, "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-C", dir, "-cf", tar, ".", NULL);
        return run_cmd(c, "tar", errmsg);
}

/* The shipped elements: $POOLD_ELEMENTS_DIR, else next to the installed or
 * in-tree program, else the compile-time default. */
static char *find_elements_dir(void) {
        const char *env = getenv("POOLD_ELEMENTS_DIR");
        if (env && *env) return xstrdup(env);
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
                exe[n] = '\0';
                char *slash = strrchr(exe, '/');
                if (slash) *slash = '\0';
                const char *rel[] = { "../share/poold/elements", "../../elements" };
                for (size_t i = 0; i < ELEMENTSOF(rel); i++) {
                        _cleanup_free_ char *p = xasprintf("%s/%s", exe, rel[i]);
                        char real[PATH_MAX];
                        if (dir_exists(p) && realpath(p, real)) return xstrdup(real);
                }
        }
#ifdef POOLD_ELEMENTS_DIR
        if (dir_exists(POOLD_ELEMENTS_DIR)) return xstrdup(POOLD_ELEMENTS_DIR);
#endif
        return NULL;
}

/* "2" / "2.5" (GiB, like DIB_IMAGE_SIZE) -> "2048M"; NULL if not a positive number. */
static char *image_size_arg(const char *gb) {
        char *end;
        double v = strtod(gb, &end);
        if (end == gb || *end || !(v > 0) || v > 65536) return NULL;
        return xasprintf("%lldM", (long long)(v * 1024));
}

/* Work directories of builds that died (SIGKILL on build-timeout) are removed
 * by the next build: each holds the pid of its owner. */
static void reap_stale_workdirs(const char *tmp) {
        DIR *d = opendir(tmp);
        if (!d) return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, "poold-dib.", 10) != 0) continue;
                _cleanup_free_ char *pidf = xasprintf("%s/%s/owner.pid", tmp, de->d_name);
                struct dbuf b = DBUF_INIT(64);
                int r = dbuf_read_file(&b, pidf);
                long pid = r == 0 ? strtol(dbuf_str(&b), NULL, 10) : 0;
                dbuf_free(&b);
                if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH)) {
                        _cleanup_free_ char *p = xasprintf("%s/%s", tmp, de->d_name);
                        _cleanup_free_ char *err = NULL;
                        say("removing the work directory %s of a build that is gone", p);
                        (void)rm_rf(p, &err);
                }
        }
        closedir(d);
}

/* ---- setup ------------------------------------------------------------------ */

static bool env_passes(const char *e) {
        static const char *const drop[] = { "PWD=", "OLDPWD=", "SHLVL=", "_=", NULL };
        for (size_t i = 0; drop[i]; i++)
                if (strncmp(e, drop[i], strlen(drop[i])) == 0) return false;
        return strchr(e, '=') != NULL;
}

static int setup(struct dib_build *b, char **errmsg) {
        int r;
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp) tmp = "/var/tmp";

        b->elements_dir = find_elements_dir();
        if (!b->elements_dir) {
                *errmsg = xasprintf("cannot find the shipped elements: set POOLD_ELEMENTS_DIR");
                return -ENOENT;
        }
        b->search_path = dib_element_search_path(getenv("ELEMENTS_PATH"), b->elements_dir);
        r = dib_elements_resolve((const char *const *)b->search_path, (const char *const *)b->opts.elements,
                                 DIB_RESOLVE_REQUIRE_OS, &b->set, errmsg);
        if (r < 0) return r;
        say("elements: %s", b->set->image_element);
        r = dib_hooks_collect(b->set, &b->hooks, errmsg);
        if (r < 0) return r;
        for (size_t i = 0; b->hooks->warnings && b->hooks->warnings[i]; i++)
                say("warning: %s", b->hooks->warnings[i]);

        /* Work directory; its pid file lets a later build clean up after a killed one. */
        reap_stale_workdirs(tmp);
        b->work = xasprintf("%s/poold-dib.XXXXXX", tmp);
        if (!mkdtemp(b->work)) {
                r = negative_errno();
                *errmsg = xasprintf("cannot create a work directory in %s: %s", tmp, strerror(-r));
                free(b->work);
                b->work = NULL;
                return r;
        }
        {
                _cleanup_free_ char *pidf = xasprintf("%s/owner.pid", b->work);
                _cleanup_free_ char *pid = xasprintf("%d\n", (int)getpid());
                r = write_file(pidf, pid, 0644, errmsg);
                if (r < 0) return r;
        }
        b->hooks_dir = xasprintf("%s/hooks", b->work);
        _cleanup_free_ char *target = xasprintf("%s/target", b->work);
        _cleanup_free_ char *image_dir = xasprintf("%s/image", b->work);
        _cleanup_free_ char *mnt = xasprintf("%s/mnt", b->work);
        if ((r = make_dir(b->hooks_dir, errmsg)) < 0 || (r = make_dir(image_dir, errmsg)) < 0 ||
            (r = make_dir(mnt, errmsg)) < 0)
                return r;

        /* The environment hooks see: the host's (Nodepool puts the diskimage's
         * env-vars there), DIB's variables on top. */
        size_t n_env = dib_strv_length((const char *const *)environ);
        _cleanup_free_ const char **env_vars = xnew(const char *, n_env + 4);
        size_t n = 0;
        for (size_t i = 0; i < n_env; i++)
                if (env_passes(environ[i])) env_vars[n++] = environ[i];
        env_vars[n++] = b->opts.trace ? "DIB_DEBUG_TRACE=1" : "DIB_DEBUG_TRACE=0";
        if (b->opts.checksum) env_vars[n++] = "DIB_CHECKSUM=1";
        if (b->opts.no_tmpfs) env_vars[n++] = "DIB_NO_TMPFS=1";
        const char *types[_BUILD_FORMAT_MAX + 1] = {};
        for (size_t i = 0; i < b->opts.n_formats; i++)
                types[i] = build_format_to_string(b->opts.formats[i]);
        _cleanup_free_ char *image_name = NULL;
        {
                char real[PATH_MAX];
                _cleanup_free_ char *dir = xstrdup(b->opts.output_base);
                char *slash = strrchr(dir, '/');
                const char *base = slash ? slash + 1 : dir;
                if (slash) *slash = '\0';
                if (!realpath(slash ? (*dir ? dir : "/") : ".", real)) {
                        r = negative_errno();
                        *errmsg = xasprintf("output directory of %s: %s", b->opts.output_base, strerror(-r));
                        return r;
                }
                image_name = xasprintf("%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
        }
        struct dib_env_params p = {
                .image_name = image_name,
                .diskimage_name = getenv("DIB_IMAGE_NAME"),
                .release = getenv("DIB_RELEASE"),
                .target_root = target,
                .tmp_build_dir = b->work,
                .tmp_image_dir = image_dir,
                .tmp_hooks_path = b->hooks_dir,
                .tmp_mount_path = mnt,
                .image_types = types,
                .elements = b->set,
                .env_vars = env_vars,
                .host_environ = NULL,
        };
        r = dib_env_build(&p, &b->env, errmsg);
        if (r < 0) return r;
        b->envp = dib_env_to_envp(b->env);
        b->root_label = dib_env_get(b->env, "DIB_ROOT_LABEL");
        if (!b->root_label || !*b->root_label) b->root_label = "cloudimg-rootfs";

        struct dib_pkg_env pe = { .arch = "amd64", .envp = (const char *const *)b->envp };
        struct dib_pkginstalls *pk = NULL;
        r = dib_pkginstalls_squash(b->set, &pe, &pk, errmsg);
        if (r < 0) return r;
        b->pkgs = *pk;
        free(pk);

        const char *size = dib_env_get(b->env, "DIB_IMAGE_SIZE");
        if (!size || !*size) size = DEFAULT_IMAGE_SIZE_GB;
        b->image_size = image_size_arg(size);
        if (!b->image_size) {
                *errmsg = xasprintf("DIB_IMAGE_SIZE '%s' is not a size in GB", size);
                return -EINVAL;
        }

        b->key_env = build_key_env((const char *const *)environ);
        r = build_plan_new(b->hooks, &b->pkgs, (const char *const *)b->key_env, getenv("DIB_RELEASE"), &b->plan,
                           errmsg);
        if (r < 0) return r;

        r = build_prune_limits_from_env(&b->cache_max_age, &b->cache_max_size, errmsg);
        if (r < 0) return r;
        b->cache_dir = getenv("POOLD_STAGE_CACHE");
        if (!b->cache_dir || !*b->cache_dir) b->cache_dir = BUILD_DEFAULT_STAGE_CACHE;
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("mkdir");
        cmd_args(c, "-p", b->cache_dir, NULL);
        r = run_cmd(c, "mkdir -p POOLD_STAGE_CACHE", errmsg);
        if (r < 0) return r;

        /* Hooks are run from a merged copy of the elements, as in DIB. */
        for (size_t i = 0; i < b->set->n_elements; i++) {
                _cleanup_(cmd_freep) struct cmd *cp = cmd_new("cp");
                _cleanup_free_ char *src = xasprintf("%s/.", b->set->elements[i].path);
                cmd_args(cp, "-RL", "--preserve=mode,timestamps", src, b->hooks_dir, NULL);
                r = run_cmd(cp, "copying elements", errmsg);
                if (r < 0) return r;
        }
        return 0;
}

static void dib_build_done(struct dib_build *b) {
        if (b->work) {
                _cleanup_free_ char *err = NULL;
                if (rm_rf(b->work, &err) < 0) say("warning: could not remove %s: %s", b->work, err);
        }
        free(b->work);
        free(b->hooks_dir);
        free(b->hooks_tar);
        free(b->image_size);
        build_holds_release(&b->holds);
        model_strv_free(b->keep);
        build_plan_free(b->plan);
        dib_strv_free(b->key_env);
        dib_strv_free(b->envp);
        dib_env_free(b->env);
        dib_pkginstalls_done(&b->pkgs);
        dib_hooks_free(b->hooks);
        dib_element_set_free(b->set);
        dib_strv_free(b->search_path);
        free(b->elements_dir);
        build_opts_done(&b->opts);
}

/* ---- phases ----------------------------------------------------------------- */

static char *stage_phases(const struct build_stage *st) {
        struct dbuf d = DBUF_INIT(4096);
        for (size_t i = 0; i < st->n_phases; i++)
                if (dbuf_addf(&d, "%s%s", i ? " " : "", dib_phase_to_string(st->phases[i])) < 0) break;
        if (st->n_phases == 0 && dbuf_adds(&d, "(disk only)") < 0) {}
        return dbuf_take(&d, NULL);
}

/* Run an outside phase on the host with TARGET_ROOT=target_root. */
static int run_outside(struct dib_build *b, enum dib_phase ph, const char *target_root, char **errmsg) {
        struct build_runner_params rp = {
                .phase = ph,
                .hooks_dir = b->hooks_dir,
                .hooks = b->hooks,
                .inside = false,
                .trace = b->opts.trace,
        };
        _cleanup_free_ char *script = build_runner_script(&rp);
        _cleanup_free_ char *path = xasprintf("%s/run-%s.sh", b->work, dib_phase_to_string(ph));
        int r = write_file(path, script, 0755, errmsg);
        if (r < 0) return r;

        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        say("running %s on the host (TARGET_ROOT=%s)", dib_phase_to_string(ph), target_root);
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("/bin/bash");
        cmd_arg(c, path);
        for (size_t i = 0; i < b->env->n; i++)
                cmd_setenv(c, b->env->keys[i], b->env->values[i]);
        cmd_setenv(c, "TARGET_ROOT", target_root);
        cmd_set_cwd(c, b->work);
        _cleanup_free_ char *what = xasprintf("%s", dib_phase_to_string(ph));
        r = run_cmd(c, what, errmsg);
        if (r < 0) return r;
        say("%s done in %.1f s", dib_phase_to_string(ph), elapsed(&t));
        return 0;
}

/* `export K='v'` for the hooks inside the image: DIB's environment, with
 * the image's own PATH and HOME and the appliance's disk as the block device. */
static char *inside_env(struct dib_build *b, const char *device) {
        struct dbuf d = DBUF_INIT(SIZE_MAX);
        for (size_t i = 0; i < b->env->n; i++) {
                const char *k = b->env->keys[i];
                if (strcmp(k, "PATH") == 0 || strcmp(k, "HOME") == 0 || strcmp(k, "TMPDIR") == 0) continue;
                _cleanup_free_ char *q = build_shell_quote(b->env->values[i]);
                if (dbuf_addf(&d, "export %s=%s\n", k, q) < 0) abort();
        }
        _cleanup_free_ char *qd = build_shell_quote(device);
        if (dbuf_addf(&d, "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                          "export HOME=/root\nunset TMPDIR\nexport IMAGE_BLOCK_DEVICE=%s\n",
                      qd) < 0 ||
            /* libguestfs's device names are its own: the appliance kernel may
             * call the image's disk sdb (SCSI scan order). The disk under the
             * mounted root is the one hooks must use (grub-install). */
            dbuf_adds(&d, "poold_root_disk() {\n"
                          "  local id pid majmin r mnt rest p\n"
                          "  while read -r id pid majmin r mnt rest; do\n"
                          "    [ \"$mnt\" = / ] || continue\n"
                          "    p=$(readlink -f \"/sys/dev/block/$majmin\") || return 1\n"
                          "    [ -e \"$p/partition\" ] && p=${p%/*}\n"
                          "    [ -b \"/dev/${p##*/}\" ] || return 1\n"
                          "    echo \"/dev/${p##*/}\"\n"
                          "    return 0\n"
                          "  done < /proc/self/mountinfo\n"
                          "  return 1\n"
                          "}\n"
                          "if d=$(poold_root_disk 2>/dev/null); then export IMAGE_BLOCK_DEVICE=$d; fi\n"
                          "unset -f poold_root_disk; unset d\n") < 0)
                abort();
        return dbuf_take(&d, NULL);
}

static int run_inside(struct dib_build *b, struct build_gfs *gfs, enum dib_phase ph, char **errmsg) {
        const char *phase = dib_phase_to_string(ph);
        int r;
        /* Made per session: outside phases since the last one may have added files. */
        if (!b->hooks_tar) b->hooks_tar = xasprintf("%s/hooks.tar", b->work);
        r = tar_dir(b->hooks_dir, b->hooks_tar, errmsg);
        if (r < 0) return r;
        r = build_gfs_tar_in(gfs, b->hooks_tar, IN_TARGET_DIR, errmsg);
        if (r < 0) return r;

        _cleanup_free_ char *env = inside_env(b, build_gfs_device(gfs));
        struct build_runner_params rp = {
                .phase = ph,
                .hooks_dir = IN_TARGET_DIR,
                .hooks = b->hooks,
                .pkgs = dib_pkginstalls_phase(&b->pkgs, phase),
                .env_file = "/tmp/poold-env.sh",
                .inside = true,
                .trace = b->opts.trace,
        };
        _cleanup_free_ char *script = build_runner_script(&rp);
        /* The wrapper sends everything to the console, which build_gfs copies to our log. */
        _cleanup_free_ char *wrapper = xasprintf("exec </dev/null >/dev/console 2>&1\n"
                                                 "echo '" BUILD_GFS_MARK_BEGIN "'\n"
                                                 "rc=0\n/bin/bash /tmp/poold-run.sh || rc=$?\n"
                                                 "echo '" BUILD_GFS_MARK_END "'\n"
                                                 "exit $rc\n");
        _cleanup_free_ char *l_env = xasprintf("%s/inside-env.sh", b->work);
        _cleanup_free_ char *l_run = xasprintf("%s/inside-run.sh", b->work);
        _cleanup_free_ char *l_wrap = xasprintf("%s/inside-wrap.sh", b->work);
        if ((r = write_file(l_env, env, 0600, errmsg)) < 0 || (r = write_file(l_run, script, 0755, errmsg)) < 0 ||
            (r = write_file(l_wrap, wrapper, 0755, errmsg)) < 0)
                return r;
        if ((r = build_gfs_upload(gfs, l_env, "/tmp/poold-env.sh", errmsg)) < 0 ||
            (r = build_gfs_upload(gfs, l_run, "/tmp/poold-run.sh", errmsg)) < 0 ||
            (r = build_gfs_upload(gfs, l_wrap, "/tmp/poold-wrap.sh", errmsg)) < 0)
                return r;

        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        say("running %s in the image", phase);
        r = build_gfs_run(gfs, "/tmp/poold-wrap.sh", errmsg);
        if (r < 0) {
                _cleanup_free_ char *detail = TAKE_PTR(*errmsg);
                *errmsg = xasprintf("%s failed in the image (see the hook output above): %s", phase, detail);
                return r;
        }
        build_gfs_rm_rf(gfs, IN_TARGET_DIR);
        build_gfs_rm_rf(gfs, "/tmp/poold-env.sh");
        build_gfs_rm_rf(gfs, "/tmp/poold-run.sh");
        build_gfs_rm_rf(gfs, "/tmp/poold-wrap.sh");
        say("%s done in %.1f s", phase, elapsed(&t));
        return 0;
}

/* ---- stages ------------------------------------------------------------------ */

static int build_root_stage(struct dib_build *b, const struct build_stage *st, char **errmsg) {
        _cleanup_free_ char *target = xasprintf("%s/target", b->work);
        int r = make_dir(target, errmsg);
        if (r < 0) return r;
        r = run_outside(b, DIB_PHASE_ROOT, target, errmsg);
        if (r < 0) return r;
        if (dir_is_empty(target)) {
                *errmsg = xasprintf("root.d left TARGET_ROOT empty: no element created the root filesystem");
                return -ENOENT;
        }
        _cleanup_free_ char *tmp = build_cache_path(b->cache_dir, st->key, ".tar.tmp");
        _cleanup_free_ char *dst = build_cache_path(b->cache_dir, st->key, ".tar");
        say("storing the base tree in the cache");
        r = tar_dir(target, tmp, errmsg);
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        if (rename(tmp, dst) < 0) {
                r = negative_errno();
                *errmsg = xasprintf("%s: %s", dst, strerror(-r));
                unlink(tmp);
                return r;
        }
        /* The tree is in the tarball now; free the space before the appliance needs it. */
        _cleanup_free_ char *err = NULL;
        (void)rm_rf(target, &err);
        return 0;
}

/* The first stage's disk, qcow2 at out: the partition table and an ext4
 * filesystem holding the base tree, both made on the host (build_rootfs.h). */
static int make_first_disk(struct dib_build *b, const char *out, char **errmsg) {
        _cleanup_free_ char *tar = build_cache_path(b->cache_dir, b->plan->stages[0].key, ".tar");
        _cleanup_free_ char *tree = xasprintf("%s/rootfs", b->work);
        _cleanup_free_ char *raw = xasprintf("%s/rootfs.raw", b->work);
        _cleanup_free_ char *err = NULL;
        int r = make_dir(tree, errmsg);
        if (r < 0) return r;
        _cleanup_(cmd_freep) struct cmd *x = cmd_new("tar");
        cmd_args(x, "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-C", tree, "-xf", tar, NULL);
        r = run_cmd(x, "unpacking the base tree", errmsg);
        /* The tree's own mode becomes the image's "/": never make_dir's 0700. */
        if (r == 0 && chmod(tree, 0755) < 0) {
                r = negative_errno();
                *errmsg = xasprintf("%s: %s", tree, strerror(-r));
        }
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("qemu-img");
        cmd_args(c, "create", "-q", "-f", "raw", raw, b->image_size, NULL);
        if (r == 0) r = run_cmd(c, "qemu-img create", errmsg);
        struct stat s = { 0 };
        if (r == 0) {
                _cleanup_close_ int fd = open(raw, O_WRONLY | O_CLOEXEC);
                r = fd < 0 || fstat(fd, &s) < 0 ? negative_errno() : build_rootfs_write_mbr(fd, (uint64_t)s.st_size, 0x706f6f6c);
                if (r < 0) *errmsg = xasprintf("%s: writing the partition table: %s", raw, strerror(-r));
        }
        _cleanup_(cmd_freep) struct cmd *m = cmd_new("mke2fs");
        /* -F: the file holds a partition table, which mke2fs would otherwise ask about. */
        cmd_args(m, "-q", "-F", "-t", "ext4", "-L", b->root_label, "-d", tree, NULL);
        cmd_argf(m, "-Eoffset=%" PRIu64, BUILD_ROOTFS_PART_OFFSET);
        cmd_arg(m, raw);
        cmd_argf(m, "%" PRIu64 "k", ((uint64_t)s.st_size - BUILD_ROOTFS_PART_OFFSET) / 1024);
        if (r == 0) r = run_cmd(m, "mke2fs", errmsg);
        (void)rm_rf(tree, &err);
        _cleanup_(cmd_freep) struct cmd *q = cmd_new("qemu-img");
        cmd_args(q, "convert", "-q", "-f", "raw", "-O", "qcow2", raw, out, NULL);
        if (r == 0) r = run_cmd(q, "qemu-img convert", errmsg);
        unlink(raw);
        return r;
}

/* Stage i >= 1: outside phases on the host, then one appliance. */
static int build_stage(struct dib_build *b, size_t i, char **errmsg) {
        const struct build_stage *st = &b->plan->stages[i];
        _cleanup_free_ char *overlay = xasprintf("%s/target-%zu", b->work, i);
        int r = make_dir(overlay, errmsg);
        if (r < 0) return r;
        for (size_t k = 0; k < st->n_phases; k++)
                if (dib_phase_where(st->phases[k]) == DIB_WHERE_OUTSIDE) {
                        r = run_outside(b, st->phases[k], overlay, errmsg);
                        if (r < 0) return r;
                }
        bool first_disk = i == 1;
        bool files = !dir_is_empty(overlay);
        _cleanup_free_ char *parent = first_disk ? NULL : build_cache_disk(b->cache_dir, b->plan->stages[i - 1].key);
        if (!first_disk && !parent) {
                *errmsg = xasprintf("the previous stage's disk vanished from the cache");
                return -ENOENT;
        }
        if (!first_disk && !files && !st->has_inside) {
                /* Nothing changes in the image: the entry names the parent's disk. */
                const char *name = strrchr(parent, '/') + 1;
                r = build_cache_publish(b->cache_dir, st->key, name);
                if (r < 0) *errmsg = xasprintf("publishing stage %zu: %s", i, strerror(-r));
                return r;
        }

        _cleanup_free_ char *name = build_cache_new_disk_name(st->key);
        _cleanup_free_ char *disk = xasprintf("%s/%s", b->cache_dir, name);
        _cleanup_free_ char *tmp = xasprintf("%s.tmp", disk);
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (first_disk) {
                say("creating the disk (%s, MBR, ext4 labelled %s) from the base tree on the host", b->image_size,
                    b->root_label);
                r = make_first_disk(b, tmp, errmsg);
                if (r < 0) {
                        unlink(tmp);
                        return r;
                }
                say("disk made in %.1f s", elapsed(&t));
        } else {
                _cleanup_(cmd_freep) struct cmd *c = cmd_new("qemu-img");
                cmd_args(c, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", strrchr(parent, '/') + 1, tmp, NULL);
                r = run_cmd(c, "qemu-img create", errmsg);
                if (r < 0) return r;
        }

        clock_gettime(CLOCK_MONOTONIC, &t);
        say("starting the libguestfs appliance");
        struct build_gfs *gfs = NULL;
        r = build_gfs_open(tmp, b->opts.trace, &gfs, errmsg);
        if (r < 0) goto fail;
        say("appliance up in %.1f s", elapsed(&t));
        r = build_gfs_mount_root(gfs, errmsg);
        if (r < 0) goto fail;
        if (files) {
                _cleanup_free_ char *otar = xasprintf("%s/target-%zu.tar", b->work, i);
                say("copying the files outside phases put in TARGET_ROOT into the image");
                r = tar_dir(overlay, otar, errmsg);
                if (r == 0) r = build_gfs_tar_in(gfs, otar, "/", errmsg);
                if (r < 0) goto fail;
        }
        if (st->has_inside) {
                r = run_inside(b, gfs, st->phases[st->n_phases - 1], errmsg);
                if (r < 0) goto fail;
        }
        r = build_gfs_close(TAKE_PTR(gfs), errmsg);
        if (r < 0) goto fail;
        if (rename(tmp, disk) < 0) {
                r = negative_errno();
                *errmsg = xasprintf("%s: %s", disk, strerror(-r));
                goto fail;
        }
        r = build_cache_publish(b->cache_dir, st->key, name);
        if (r < 0) {
                *errmsg = xasprintf("publishing stage %zu: %s", i, strerror(-r));
                return r;
        }
        say("stage %zu stored as %s (appliance session %.1f s)", i, name, elapsed(&t));
        return 0;
fail:
        build_gfs_free(gfs);
        unlink(tmp);
        return r;
}

/* Outside phases of stages that are cached still run when a later stage is
 * built, for what they hand to later hooks through TMP_HOOKS_PATH; their
 * TARGET_ROOT output is already in the cached disk and is thrown away. */
static int replay_outside(struct dib_build *b, size_t upto, char **errmsg) {
        for (size_t i = 1; i < upto; i++) {
                const struct build_stage *st = &b->plan->stages[i];
                for (size_t k = 0; k < st->n_phases; k++) {
                        if (dib_phase_where(st->phases[k]) != DIB_WHERE_OUTSIDE) continue;
                        _cleanup_free_ char *scratch = xasprintf("%s/replay-%zu-%zu", b->work, i, k);
                        int r = make_dir(scratch, errmsg);
                        if (r < 0) return r;
                        r = run_outside(b, st->phases[k], scratch, errmsg);
                        if (r < 0) return r;
                }
        }
        return 0;
}

static bool stage_present(const struct dib_build *b, size_t i) {
        if (i == 0) return build_cache_has_tar(b->cache_dir, b->plan->stages[0].key);
        _cleanup_free_ char *d = build_cache_disk(b->cache_dir, b->plan->stages[i].key);
        return d != NULL;
}

/* Hold what later stages read from stage i's result (its disk and backing
 * chain; stage 0: the tarball), so no pruner removes it during the build.
 * -ENOENT when it is gone. */
static int hold_stage(struct dib_build *b, size_t i) {
        if (i == 0) {
                _cleanup_free_ char *tar = build_cache_path(b->cache_dir, b->plan->stages[0].key, ".tar");
                return build_cache_hold(&b->holds, tar);
        }
        _cleanup_free_ char *d = build_cache_hold_disk(&b->holds, b->cache_dir, b->plan->stages[i].key);
        return d ? 0 : -ENOENT;
}

/* The entry file of stage i, as a name in the cache directory. */
static char *stage_entry_name(const struct dib_build *b, size_t i) {
        return xasprintf("%s%s", b->plan->stages[i].key, i == 0 ? ".tar" : ".disk");
}

static int run_stages(struct dib_build *b, char **errmsg) {
        const struct build_plan *plan = b->plan;
        size_t first;
        int r;

        for (size_t i = 0; i < plan->n_stages; i++) {
                _cleanup_free_ char *e = stage_entry_name(b, i);
                model_strv_push(&b->keep, e);
        }
        /* A concurrent pruner may remove what we found between the look and the hold. */
        for (int tries = 0;; tries++) {
                first = build_cache_first_missing(b->cache_dir, plan);
                r = first > 0 ? hold_stage(b, first - 1) : 0;
                if (r == 0) break;
                if (r != -ENOENT || tries == 3) {
                        *errmsg = xasprintf("holding the cached stages in %s: %s", b->cache_dir, strerror(-r));
                        return r;
                }
        }

        say("stage cache %s: %zu stages", b->cache_dir, plan->n_stages);
        for (size_t i = 0; i < plan->n_stages; i++) {
                _cleanup_free_ char *ph = stage_phases(&plan->stages[i]);
                say("  stage %zu [%s] key %.16s", i, ph, plan->stages[i].key);
        }
        for (size_t i = 0; i < first; i++) {
                _cleanup_free_ char *ph = stage_phases(&plan->stages[i]);
                bool present = i == 0 ? build_cache_has_tar(b->cache_dir, plan->stages[0].key) : true;
                say("stage %zu [%s]: cache hit%s", i, ph, present ? "" : " (not needed: a later stage is cached)");
                /* A use, for the pruner's least-recently-used order. */
                _cleanup_free_ char *e = stage_entry_name(b, i);
                if (present) build_cache_touch(b->cache_dir, e);
        }
        if (first >= plan->n_stages) return 0;

        r = replay_outside(b, first, errmsg);
        if (r < 0) return r;
        for (size_t i = first; i < plan->n_stages; i++) {
                const struct build_stage *st = &plan->stages[i];
                _cleanup_free_ char *ph = stage_phases(st);
                bool had = stage_present(b, i);
                _cleanup_close_ int lock = -1;
                r = build_cache_lock(b->cache_dir, st->key, &lock);
                if (r < 0) {
                        *errmsg = xasprintf("locking stage %zu in %s: %s", i, b->cache_dir, strerror(-r));
                        return r;
                }
                /* Another build may have made it while we waited for the lock. */
                bool now = stage_present(b, i);
                if (now && !had && hold_stage(b, i) == 0) {
                        say("stage %zu [%s]: cache hit (built by a concurrent build)", i, ph);
                        continue;
                }
                build_cache_remove_tmp(b->cache_dir, st->key); /* a killed build's leftovers; we hold the lock */
                struct timespec t;
                clock_gettime(CLOCK_MONOTONIC, &t);
                say("stage %zu [%s]: cache miss, building", i, ph);
                r = st->root ? build_root_stage(b, st, errmsg) : build_stage(b, i, errmsg);
                if (r < 0) return r;
                /* Still under the key's lock, so no pruner can have taken it. */
                r = hold_stage(b, i);
                if (r < 0) {
                        *errmsg = xasprintf("holding stage %zu in %s: %s", i, b->cache_dir, strerror(-r));
                        return r;
                }
                say("stage %zu [%s] built in %.1f s", i, ph, elapsed(&t));
        }
        return 0;
}

/* ---- outputs ----------------------------------------------------------------- */

/* md5sum and sha256sum of file, run side by side (the file is read once
 * from disk, then from the page cache), written as <file>.md5 / .sha256. */
static int checksums(const char *file, char **errmsg) {
        static const char *const progs[2] = { "md5sum", "sha256sum" };
        static const char *const exts[2] = { "md5", "sha256" };
        struct cmd *c[2] = {};
        int r = 0;
        for (size_t i = 0; i < 2; i++) {
                c[i] = cmd_new(progs[i]);
                cmd_args(c[i], "--", file, NULL);
                cmd_capture_output(c[i], 64 * 1024);
        }
        for (size_t i = 0; i < 2 && r == 0; i++) {
                r = cmd_start(c[i]);
                if (r < 0) *errmsg = xasprintf("%s: cannot run: %s", progs[i], strerror(-r));
        }
        for (size_t i = 0; i < 2; i++) {
                struct cmd_status st;
                if (cmd_get_pid(c[i]) <= 0) continue;
                int k = cmd_finish(c[i], &st);
                if (r < 0) continue;
                if (k < 0 || !cmd_status_success(&st)) {
                        *errmsg = xasprintf("%s %s failed: %s", progs[i], file,
                                            k < 0 ? strerror(-k) : dbuf_str(cmd_stderr(c[i])));
                        r = k < 0 ? k : -EIO;
                        continue;
                }
                const char *out = dbuf_str(cmd_stdout(c[i]));
                _cleanup_free_ char *hex = xstrndup(out, strcspn(out, " \n"));
                _cleanup_free_ char *line = build_checksum_line(hex, file);
                if (!line) {
                        *errmsg = xasprintf("%s printed no digest for %s", progs[i], file);
                        r = -EIO;
                        continue;
                }
                _cleanup_free_ char *path = xasprintf("%s.%s", file, exts[i]);
                _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
                r = write_file(tmp, line, 0644, errmsg);
                if (r == 0 && rename(tmp, path) < 0) {
                        r = negative_errno();
                        *errmsg = xasprintf("%s: %s", path, strerror(-r));
                }
        }
        for (size_t i = 0; i < 2; i++)
                cmd_free(c[i]);
        return r;
}

/* Outputs are cached too, keyed by the last stage's disk file (a new file
 * each time that stage is built), the format and its options: an unchanged
 * rebuild links the converted files and reuses their digests instead of
 * converting and hashing gigabytes again. */
static char *output_cache_path(const struct dib_build *b, const char *disk, enum build_format f) {
        const char *compress = getenv("COMPRESS_IMAGE");
        _cleanup_free_ char *src = xasprintf("%s\n%s\n%s\n%s", disk, build_format_to_string(f),
                                              b->opts.qemu_img_options ? b->opts.qemu_img_options : "",
                                              compress ? compress : "");
        char hex[SHA256_HEX_SIZE];
        digest_sha256_hex(src, strlen(src), hex);
        return xasprintf("%s/out-%.32s.%s", b->cache_dir, hex, build_format_to_string(f));
}

/* Write <out>.<ext> naming OUT with the digest found in CACHED_SUM's first word. */
static int sum_from_cache(const char *cached_sum, const char *out, const char *ext, char **errmsg) {
        struct dbuf d = DBUF_INIT(4096);
        int r = dbuf_read_file(&d, cached_sum);
        if (r < 0) {
                dbuf_free(&d);
                return r;
        }
        const char *text = dbuf_str(&d);
        _cleanup_free_ char *hex = xstrndup(text, strcspn(text, " \n"));
        dbuf_free(&d);
        _cleanup_free_ char *line = build_checksum_line(hex, out);
        if (!line) return -EBADMSG;
        _cleanup_free_ char *path = xasprintf("%s.%s", out, ext);
        _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
        r = write_file(tmp, line, 0644, errmsg);
        if (r == 0 && rename(tmp, path) < 0) r = negative_errno();
        return r;
}

/* 1 when OUT (and its sums) came from the cache, 0 when not cached, <0 on error. */
static int output_from_cache(struct dib_build *b, const char *cached, const char *out, char **errmsg) {
        static const char *const exts[2] = { "md5", "sha256" };
        if (access(cached, R_OK) < 0) return 0;
        /* Held while we link and read it, so a pruner cannot take it half way. */
        if (build_cache_hold(&b->holds, cached) < 0) return 0;
        for (size_t i = 0; b->opts.checksum && i < 2; i++) {
                _cleanup_free_ char *sum = xasprintf("%s.%s", cached, exts[i]);
                if (access(sum, R_OK) < 0) return 0;
        }
        _cleanup_free_ char *tmp = xasprintf("%s.tmp", out);
        (void)unlink(tmp);
        if (link(cached, tmp) < 0) {
                if (errno != EXDEV) return 0;
                /* Another filesystem: copy, keeping holes (reflink where possible). */
                _cleanup_(cmd_freep) struct cmd *c = cmd_new("cp");
                cmd_args(c, "--reflink=auto", "--sparse=always", cached, tmp, NULL);
                int r = run_cmd(c, "cp", errmsg);
                if (r < 0) return r;
        }
        if (rename(tmp, out) < 0) {
                int r = negative_errno();
                unlink(tmp);
                *errmsg = xasprintf("%s: %s", out, strerror(-r));
                return r;
        }
        for (size_t i = 0; b->opts.checksum && i < 2; i++) {
                _cleanup_free_ char *sum = xasprintf("%s.%s", cached, exts[i]);
                int r = sum_from_cache(sum, out, exts[i], errmsg);
                if (r < 0) {
                        if (!*errmsg) *errmsg = xasprintf("%s: %s", sum, strerror(-r));
                        return r;
                }
        }
        build_cache_touch(b->cache_dir, strrchr(cached, '/') + 1); /* a use, for the pruner */
        return 1;
}

/* Keep OUT and its sums in the cache (best effort: a failure only costs speed). */
static void output_to_cache(const struct dib_build *b, const char *cached, const char *out) {
        static const char *const exts[2] = { "md5", "sha256" };
        for (size_t i = 0; b->opts.checksum && i < 2; i++) {
                _cleanup_free_ char *from = xasprintf("%s.%s", out, exts[i]);
                _cleanup_free_ char *to = xasprintf("%s.%s", cached, exts[i]);
                _cleanup_free_ char *tmp = xasprintf("%s.%d.tmp", to, (int)getpid());
                if (link(from, tmp) < 0 || rename(tmp, to) < 0) {
                        (void)unlink(tmp);
                        return;
                }
        }
        /* The image last: present image + sums means a complete entry. */
        _cleanup_free_ char *tmp = xasprintf("%s.%d.tmp", cached, (int)getpid());
        if (link(out, tmp) < 0 || rename(tmp, cached) < 0) (void)unlink(tmp);
}

static int write_outputs(struct dib_build *b, char **errmsg) {
        _cleanup_free_ char *disk = build_cache_disk(b->cache_dir, b->plan->stages[b->plan->n_stages - 1].key);
        if (!disk) {
                *errmsg = xasprintf("the last stage's disk is missing from the cache");
                return -ENOENT;
        }
        const char *compress = getenv("COMPRESS_IMAGE");
        for (size_t i = 0; i < b->opts.n_formats; i++) {
                enum build_format f = b->opts.formats[i];
                _cleanup_free_ char *out = build_output_path(b->opts.output_base, f);
                _cleanup_free_ char *tmp = xasprintf("%s.tmp", out);
                struct timespec t;
                clock_gettime(CLOCK_MONOTONIC, &t);
                _cleanup_free_ char *cached = output_cache_path(b, disk, f);
                model_strv_push(&b->keep, strrchr(cached, '/') + 1);
                int hit = output_from_cache(b, cached, out, errmsg);
                if (hit < 0) return hit;
                if (hit) {
                        say("wrote %s from the output cache in %.1f s", out, elapsed(&t));
                        continue;
                }
                _cleanup_(cmd_freep) struct cmd *c = cmd_new("qemu-img");
                cmd_args(c, "convert", "-f", "qcow2", NULL);
                switch (f) {
                case BUILD_FORMAT_QCOW2:
                        cmd_args(c, "-O", "qcow2", NULL);
                        if (compress && strcmp(compress, "1") == 0) cmd_arg(c, "-c");
                        if (b->opts.qemu_img_options) cmd_args(c, "-o", b->opts.qemu_img_options, NULL);
                        break;
                case BUILD_FORMAT_RAW: cmd_args(c, "-O", "raw", NULL); break;
                case BUILD_FORMAT_VHD: cmd_args(c, "-O", "vpc", "-o", "subformat=fixed,force_size", NULL); break;
                case BUILD_FORMAT_VMDK: cmd_args(c, "-O", "vmdk", NULL); break;
                default: abort();
                }
                cmd_args(c, disk, tmp, NULL);
                int r = run_cmd(c, "qemu-img convert", errmsg);
                if (r == 0 && rename(tmp, out) < 0) {
                        r = negative_errno();
                        *errmsg = xasprintf("%s: %s", out, strerror(-r));
                }
                if (r < 0) {
                        unlink(tmp);
                        return r;
                }
                struct stat sb;
                long long used = stat(out, &sb) == 0 ? (long long)sb.st_blocks * 512 / (1024 * 1024) : -1;
                say("wrote %s (%lld MiB on disk) in %.1f s", out, used, elapsed(&t));
                if (b->opts.checksum) {
                        r = checksums(out, errmsg);
                        if (r < 0) return r;
                        say("wrote %s.md5 and %s.sha256", out, out);
                }
                output_to_cache(b, cached, out);
        }
        return 0;
}

/* ---- pruning ------------------------------------------------------------------- */

/* Keep the cache within its limits once the build is over (failed or not):
 * what this build used is held or in b->keep, so it stays. */
static void prune_cache(struct dib_build *b) {
        struct build_prune_report rep;
        int64_t now = time(NULL);
        int r = build_cache_prune(b->cache_dir, (const char *const *)b->keep, now, b->cache_max_age,
                                  b->cache_max_size, false, &rep);
        if (r < 0) {
                say("warning: cannot prune the stage cache %s: %s", b->cache_dir, strerror(-r));
                return;
        }
        _cleanup_free_ char *text = build_prune_report_text(&rep, now, b->cache_max_age, b->cache_max_size, false);
        for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl) *nl = '\0';
                say("%s", line);
        }
        build_prune_report_done(&rep);
}

/* ---- main ---------------------------------------------------------------------- */

int dib_main(int argc, char **argv) {
        struct dib_build b = {};
        _cleanup_free_ char *err = NULL;
        clock_gettime(CLOCK_MONOTONIC, &b.t0);

        int r = build_opts_parse(argc, argv, &b.opts, &err);
        if (r < 0) {
                fprintf(stderr, "disk-image-create: error: %s\nTry 'poold-builder disk-image-create --help'.\n", err);
                return 2;
        }
        if (b.opts.help) {
                fputs(build_usage(), stdout);
                build_opts_done(&b.opts);
                return 0;
        }
        log_setup("disk-image-create", LOG_LEVEL_INFO);
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        signal(SIGHUP, on_term);
        /* libguestfs reads these from our environment. */
        setenv("LIBGUESTFS_BACKEND", getenv("LIBGUESTFS_BACKEND") ? getenv("LIBGUESTFS_BACKEND") : "direct", 1);
        if (b.opts.image_size) setenv("DIB_IMAGE_SIZE", b.opts.image_size, 1); /* hooks and keys see it */
        if (b.opts.trace) setenv("DIB_DEBUG_TRACE", "1", 1);

        say("disk-image-create: building %s", b.opts.output_base);
        r = setup(&b, &err);
        if (r == 0) r = run_stages(&b, &err);
        if (r == 0) r = write_outputs(&b, &err);
        if (r == 0) say("build finished in %.1f s", elapsed(&b.t0));
        else say("build failed after %.1f s", elapsed(&b.t0));
        if (b.cache_dir) prune_cache(&b);
        if (r < 0) {
                fflush(stdout);
                fprintf(stderr, "disk-image-create: error: %s\n", err ? err : strerror(-r));
        }
        dib_build_done(&b);
        return r < 0 ? 1 : 0;
}
