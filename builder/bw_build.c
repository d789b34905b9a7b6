/* bw_build.c — build scheduling and the build child process (protocol.md §4.1).
 *
 * DESIGN. For every buildable diskimage (not abstract, with formats, not
 * paused in the config or by a /pause znode) a build is due when a
 * request-build znode exists or when the newest READY build is missing, older
 * than rebuild-age, or lacks a needed format. The per-image build lock
 * (/nodepool/images/<img>/builds/lock, kazoo recipe, non-blocking) is taken
 * and the decision re-checked against ZooKeeper before the `building` record
 * is created, so several builders share the work and never build one image
 * twice at once; the lock is held for the whole build. The build itself is a
 * child process (dib-cmd, or this program's built-in disk-image-create)
 * driven by the loop through cmd_start_async: output straight into the build
 * log, build-timeout enforced by cmd, never waited for. At most
 * --build-workers run at once.
 *
 * An image whose builds keep failing backs off: the Nth failure in a row
 * waits POOLD_BUILD_RETRY_MS doubled N-1 times, at most
 * POOLD_BUILD_RETRY_MAX_MS. The count and the time of the next attempt are
 * written into the failed build record (poold_failures, poold_retry_time;
 * Nodepool ignores unknown keys) and cleanup keeps that record while it is
 * the image's newest finished build, so every builder, a restarted one, and
 * poolctl see the same back-off. A READY build ends it; a request-build
 * made after the last failure (`poolctl image-build`) skips the wait and
 * starts the count again. A build the builder itself stopped (shutdown,
 * lost ZooKeeper session) is recorded failed without counting. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "bw.h"
#include "bw_plan.h"
#include "cmd.h"
#include "log.h"
#include "zk_lock.h"

extern char **environ;

bool bw_build_running(struct bw *w, const char *image, const char *build_id) {
        for (struct bw_job *j = w->builds; j; j = j->next)
                if (strcmp(j->image, image) == 0 && (!build_id || strcmp(j->build_id, build_id) == 0)) return true;
        return false;
}

static void job_unlink(struct bw *w, struct bw_job *job) {
        for (struct bw_job **p = &w->builds; *p; p = &(*p)->next)
                if (*p == job) {
                        *p = job->next;
                        w->n_builds--;
                        return;
                }
}

static void job_free(struct bw_job *j) {
        if (!j) return;
        cmd_free(j->cmd);
        if (j->log_fd >= 0) close(j->log_fd);
        zk_lock_free(j->lock);
        free(j->image);
        free(j->build_id);
        free(j->path);
        free(j->output_base);
        free(j->log_path);
        model_strv_free(j->formats);
        free(j->username);
        free(j->python_path);
        free(j->shell_type);
        free(j);
}

/* The record as Nodepool's builder writes it (ImageBuild.toDict); a failed
 * one also carries the back-off (FAILURES, RETRY_TIME). */
static int write_record(struct bw *w, struct bw_job *j, enum image_build_state state, bool create, uint64_t failures,
                        double retry_time) {
        _cleanup_(image_build_freep) struct image_build *b = image_build_new(j->build_id);
        image_build_set_state(b, state);
        model_set_str(&b->builder, w->b->hostname);
        model_set_str(&b->builder_id, w->b->builder_id);
        model_set_str(&b->username, j->username);
        model_set_str(&b->python_path, j->python_path);
        model_set_str(&b->shell_type, j->shell_type);
        if (state == IMAGE_BUILD_STATE_READY) {
                model_strv_free(b->formats);
                b->formats = model_strv_copy(j->formats);
        }
        if (state == IMAGE_BUILD_STATE_FAILED) {
                b->failures = (int64_t)failures;
                b->retry_time = retry_time;
        }
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        int r = image_build_to_json(b, &json, &len);
        if (r < 0) return r;
        if (create) return zk_create(w->b->zk, j->path, json, len, ZK_MAKEPATH, NULL);
        return zk_set(w->b->zk, j->path, json, len, -1, NULL);
}

static void log_line(int fd, const char *fmt, ...) _printf_(2, 3);
static void log_line(int fd, const char *fmt, ...) {
        if (fd < 0) return;
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0) s = NULL;
        va_end(ap);
        if (s && write(fd, s, strlen(s)) < 0) log_debug_errno(errno, "build log write: %m");
}

/* Keep build-log-retention logs of IMAGE (Nodepool prunes before each build). */
static void prune_logs(const struct config *c, const char *image) {
        if (c->build_log_retention < 0) return;
        DIR *d = opendir(c->build_log_dir);
        if (!d) return;
        char **names = model_strv_new();
        double *mt = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!bw_plan_is_log_of(de->d_name, image)) continue;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode)) continue;
                model_strv_push(&names, de->d_name);
                mt = xrealloc(mt, (n + 1) * sizeof *mt);
                mt[n++] = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
        }
        _cleanup_free_ bool *drop = xnew(bool, n + 1);
        bw_plan_prune_logs(mt, n, c->build_log_retention, false, drop);
        for (size_t i = 0; i < n; i++)
                if (drop[i]) {
                        if (unlinkat(dirfd(d), names[i], 0) < 0)
                                log_warning_errno(errno, "cannot prune build log %s: %m", names[i]);
                        else
                                log_debug("pruned build log %s/%s", c->build_log_dir, names[i]);
                }
        closedir(d);
        free(mt);
        model_strv_free(names);
}

static int mkdir_p(const char *path) {
        _cleanup_free_ char *p = xstrdup(path);
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = '\0';
                        if (mkdir(p, 0755) < 0 && errno != EEXIST) return -errno;
                        *s = '/';
                }
        if (mkdir(p, 0755) < 0 && errno != EEXIST) return -errno;
        return 0;
}

/* COUNTS: the failure is the image's (not a stop or a lost session), so it
 * adds to the back-off. */
static void finish(struct bw *w, struct bw_job *j, bool ok, const char *why, bool counts) {
        struct zk *zk = w->b->zk;
        uint64_t failures = ok ? 0 : j->prev_failures + (counts ? 1 : 0);
        uint64_t delay = ok || !counts ? 0
                                       : bw_plan_retry_delay_ms(failures, w->build_retry_ms, w->build_retry_max_ms);
        double retry_time = model_now() + (double)delay / 1000.0;
        if (delay) bw_backoff_set(&w->build_backoff, j->image, loop_now_ms() + delay);
        else free(smap_remove(&w->build_backoff, j->image));
        statsd_builder_build_state(w->statsd, w->b->hostname, j->image, 0);
        statsd_builder_build_backoff(w->statsd, j->image, (long long)failures, delay ? (long long)retry_time : 0);
        int r = write_record(w, j, ok ? IMAGE_BUILD_STATE_READY : IMAGE_BUILD_STATE_FAILED, false, failures,
                             retry_time);
        if (r < 0) log_error_errno(r, "build %s-%s: cannot record the result: %m", j->image, j->build_id);
        if (ok) {
                for (size_t i = 0; j->formats[i]; i++) {
                        _cleanup_free_ char *f = xasprintf("%s.%s", j->output_base, j->formats[i]);
                        struct stat sb;
                        if (stat(f, &sb) == 0)
                                statsd_builder_image_size(w->statsd, j->image, j->formats[i],
                                                          (long long)sb.st_blocks * 512);
                }
                log_info("built image %s-%s (%s) in %llu s", j->image, j->build_id, j->output_base,
                         (unsigned long long)((loop_now_ms() - j->start_ms) / 1000));
                if (j->prev_failures > 0)
                        log_info("image %s built after %llu failed build%s in a row: back-off over", j->image,
                                 (unsigned long long)j->prev_failures, j->prev_failures == 1 ? "" : "s");
                if (j->requested) {
                        /* Nodepool removes the request after a successful build only. */
                        _cleanup_free_ char *req = npzk_image_request_build_path(j->image);
                        r = zk_delete(zk, req, -1);
                        if (r < 0 && r != -ENOENT) log_warning_errno(r, "cannot remove %s: %m", req);
                }
        } else {
                log_error("build of image %s-%s failed: %s (log: %s)", j->image, j->build_id, why, j->log_path);
                if (delay) {
                        _cleanup_free_ char *d = bw_plan_duration_text(delay);
                        log_warning("image %s failed %llu time%s in a row; next attempt in %s", j->image,
                                    (unsigned long long)failures, failures == 1 ? "" : "s", d);
                }
        }
        zk_lock_release_async(j->lock);
        job_unlink(w, j);
        job_free(j);
        bw_wake(w);
}

static void on_done(struct cmd *cmd, const struct cmd_status *st, void *ud) {
        struct bw_job *j = ud;
        struct bw *w = j->w;
        /* Python's Popen.returncode: negative signal number when killed. */
        int code = st->outcome == CMD_EXITED ? st->code : -st->code;
        if (st->outcome == CMD_TIMED_OUT) log_line(j->log_fd, "Build timeout for image %s, build %s\n", j->image,
                                                   j->build_id);
        log_line(j->log_fd, "Exit code: %d\n", code);

        _cleanup_free_ char *why = NULL;
        bool lost = false;
        if (st->outcome == CMD_TIMED_OUT)
                why = xstrdup("build-timeout reached, killed");
        else if (!cmd_status_success(st))
                why = xasprintf("%s %d", st->outcome == CMD_SIGNALED ? "killed by signal" : "exit code", st->code);
        else if ((lost = zk_session_generation(w->b->zk) != j->generation))
                why = xstrdup("ZooKeeper session lost during the build");
        else
                for (size_t i = 0; j->formats[i]; i++) {
                        _cleanup_free_ char *f = xasprintf("%s.%s", j->output_base, j->formats[i]);
                        struct stat sb;
                        if (stat(f, &sb) < 0 || !S_ISREG(sb.st_mode)) {
                                why = xasprintf("%s was not produced", f);
                                break;
                        }
                }
        statsd_builder_build(w->statsd, j->image, why ? (code ? code : 1) : 0, (double)(loop_now_ms() - j->start_ms));
        finish(w, j, !why, why, !lost);
}

/* Formats to build: the diskimage's `formats` plus what every provider that
 * uses it uploads (qcow2 for libvirt; clouds.yaml's image_format for OpenStack). No duplicates. */
static char **formats_for(const struct config *c, const struct config_diskimage *d) {
        char **v = model_strv_new();
        for (size_t i = 0; i < d->formats.n; i++)
                if (!model_strv_contains(v, d->formats.items[i])) model_strv_push(&v, d->formats.items[i]);
        for (size_t i = 0; i < c->n_providers; i++) {
                const struct config_provider *cp = &c->providers[i];
                if (cp->driver == CONFIG_DRIVER_STATIC) continue;
                for (size_t k = 0; k < cp->n_diskimages; k++)
                        if (strcmp(cp->diskimages[k].name, d->name) == 0) {
                                _cleanup_free_ char *f = provider_params_image_format(cp);
                                if (!model_strv_contains(v, f)) model_strv_push(&v, f);
                        }
        }
        return v;
}

/* Run the build; on error the job is finished (failed) here. */
static void run(struct bw *w, struct bw_job *j, const struct config_diskimage *d) {
        const struct config *c = w->b->config;
        _cleanup_free_ char *why = NULL, *line = NULL;
        char **argv = NULL;
        int r;

        struct bw_plan_build p = {
                .dib_cmd = d->dib_cmd ? d->dib_cmd : BW_PLAN_BUILTIN_DIB,
                .self_exe = w->self_exe,
                .pkg_dir = w->pkg_dir,
                .formats = j->formats,
                .output_base = j->output_base,
        };
        /* config_strv is not NULL-terminated: copy it. */
        char **elements = model_strv_new();
        for (size_t i = 0; i < d->elements.n; i++) model_strv_push(&elements, d->elements.items[i]);
        p.elements = elements;
        r = bw_plan_build_argv(&p, &argv);
        model_strv_free(elements);
        if (r < 0) {
                why = xasprintf("invalid dib-cmd '%s'", p.dib_cmd);
                goto fail;
        }

        char **keys = xnew(char *, d->env_vars.n + 1), **vals = xnew(char *, d->env_vars.n + 1);
        for (size_t i = 0; i < d->env_vars.n; i++) {
                keys[i] = d->env_vars.items[i].key;
                vals[i] = d->env_vars.items[i].value;
        }
        char **env = bw_plan_build_env(d->name, d->release, j->output_base, c->elements_dir, d->username, keys,
                                       vals, d->env_vars.n);
        free(keys);
        free(vals);

        j->cmd = cmd_new(argv[0]);
        for (size_t i = 1; argv[i]; i++) cmd_arg(j->cmd, argv[i]);
        /* Nodepool passes its own environment along (os.environ.copy()). */
        for (char **e = environ; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                if (!eq) continue;
                _cleanup_free_ char *k = xstrndup(*e, (size_t)(eq - *e));
                cmd_setenv(j->cmd, k, eq + 1);
        }
        for (size_t i = 0; env[i]; i++) {
                char *eq = strchr(env[i], '=');
                *eq = '\0';
                cmd_setenv(j->cmd, env[i], eq + 1);
        }
        model_strv_free(env);
        cmd_set_log_fd(j->cmd, j->log_fd);
        if (d->build_timeout > 0) cmd_set_timeout(j->cmd, (uint64_t)d->build_timeout * 1000);

        for (size_t i = 0; argv[i]; i++) {
                char *n = xasprintf("%s%s%s", line ? line : "", line ? " " : "", argv[i]);
                free(line);
                line = n;
        }
        log_info("building image %s-%s: %s (log %s)", j->image, j->build_id, line, j->log_path);
        r = cmd_start_async(j->cmd, w->b->loop, on_done, j);
        model_strv_free(argv);
        if (r < 0) {
                why = xasprintf("cannot run %s: %s", p.dib_cmd, strerror(-r));
                log_line(j->log_fd, "%s\nExit code: %d\n", why, r == -ENOENT ? 127 : 126);
                goto fail;
        }
        return;
fail:
        finish(w, j, false, why, true);
}

static void start(struct bw *w, const struct config_diskimage *d, struct zk_lock *lock, bool requested,
                  uint64_t prev_failures) {
        const struct config *c = w->b->config;
        char hex[33];
        int r = model_uuid4_hex(hex);
        if (r < 0) {
                log_error_errno(r, "no build id: %m");
                zk_lock_release_async(lock);
                zk_lock_free(lock);
                return;
        }
        struct bw_job *j = xnew(struct bw_job, 1);
        j->w = w;
        j->log_fd = -1;
        j->lock = lock;
        j->image = xstrdup(d->name);
        j->build_id = xstrdup(hex);
        j->requested = requested;
        j->prev_failures = prev_failures;
        j->generation = zk_session_generation(w->b->zk);
        j->start_ms = loop_now_ms();
        statsd_builder_build_state(w->statsd, w->b->hostname, j->image, 1);
        j->username = xstrdup(d->username);
        j->python_path = xstrdup(d->python_path);
        j->shell_type = xstrdup(d->shell_type);
        j->formats = formats_for(c, d);
        j->output_base = xasprintf("%s/%s-%s", c->images_dir, d->name, hex);
        j->log_path = xasprintf("%s/%s-%s.log", c->build_log_dir, d->name, hex);
        j->path = npzk_build_path(d->name, hex); /* the name was checked by bw_build_schedule */
        r = write_record(w, j, IMAGE_BUILD_STATE_BUILDING, true, 0, MODEL_TIME_NONE);
        if (r < 0) {
                log_error_errno(r, "image %s: cannot create the build record: %m", d->name);
                zk_lock_release_async(j->lock);
                job_free(j);
                return;
        }
        j->next = w->builds;
        w->builds = j;
        w->n_builds++;

        r = mkdir_p(c->build_log_dir);
        if (r >= 0) {
                prune_logs(c, d->name);
                j->log_fd = open(j->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
                if (j->log_fd < 0) r = -errno;
        }
        if (r < 0) {
                _cleanup_free_ char *why = xasprintf("cannot open build log %s: %s", j->log_path, strerror(-r));
                finish(w, j, false, why, true);
                return;
        }
        run(w, j, d);
}

/* Whether IMAGE's newest finished build failed, and its back-off (*ret). */
static bool failure_of(struct bw *w, bool failed, double state_time, long long failures, double retry_time,
                       struct bw_plan_failure *ret) {
        return bw_plan_failure_of(failed, state_time, failures, retry_time, w->build_retry_ms, w->build_retry_max_ms,
                                  ret);
}

void bw_build_schedule(struct bw *w, struct bw_snap *s) {
        const struct config *c = w->b->config;
        double now = model_now();
        for (size_t i = 0; i < c->n_diskimages && w->n_builds < (size_t)w->b->build_workers; i++) {
                const struct config_diskimage *d = &c->diskimages[i];
                if (d->abstract || d->pause) continue;
                if (bw_build_running(w, d->name, NULL)) continue;
                if (!npzk_name_ok(d->name)) continue; /* not usable as a znode name */
                struct npzk_image *im = bw_snap_image(s, d->name);
                if (im && im->paused) continue;
                bool requested = im && im->requested;
                double request_time = im ? im->request_time : 0;
                /* Backing off: the failed record says until when (any builder may have written it). */
                struct npzk_build *nf = bw_snap_newest_finished(im);
                struct bw_plan_failure f;
                bool failing = nf && failure_of(w, nf->b->state == IMAGE_BUILD_STATE_FAILED, nf->b->state_time,
                                                (long long)nf->b->failures, nf->b->retry_time, &f);
                if (failing && bw_plan_backing_off(&f, requested, request_time, now)) continue;
                bool reset = failing && requested && request_time > f.failed_time;
                /* The same wait kept here, for when the record could not be written. */
                if (!reset && bw_backoff_active(&w->build_backoff, d->name)) continue;
                struct npzk_build *nr = bw_snap_newest_ready(im);
                char **needed = formats_for(c, d);
                if (!needed[0]) {
                        /* Nodepool: a diskimage with no formats is not built. */
                        model_strv_free(needed);
                        continue;
                }
                bool due = requested || bw_plan_needs_build(nr != NULL, nr ? nr->b->state_time : 0,
                                                            nr ? nr->b->formats : NULL, needed, d->rebuild_age, now);
                if (!due || (im && im->build_lock > 0)) {
                        model_strv_free(needed);
                        continue;
                }

                _cleanup_free_ char *lpath = npzk_build_lock_path(d->name);
                struct zk_lock *lock = NULL;
                int r = zk_lock_try_new(w->b->zk, lpath, NULL, &lock);
                if (r != 1) {
                        if (r < 0) log_warning_errno(r, "image %s: build lock: %m", d->name);
                        model_strv_free(needed);
                        continue;
                }
                /* Re-check with what ZooKeeper says now: another builder may have just finished. */
                _cleanup_free_ char *ppath = npzk_image_pause_path(d->name);
                _cleanup_free_ char *rpath = npzk_image_request_build_path(d->name);
                struct zk_stat rst = {};
                struct bw_newest nw = {};
                int paused = zk_exists(w->b->zk, ppath, NULL);
                int req = paused == 0 ? zk_exists(w->b->zk, rpath, &rst) : 0;
                r = paused == 0 && req >= 0 ? bw_snap_read_newest(w, d->name, &nw) : -EIO;
                double req_time = req == 1 ? (double)rst.ctime / 1000.0 : 0;
                failing = r >= 0 && failure_of(w, nw.failed, nw.failed_time, nw.failures, nw.retry_time, &f);
                due = r >= 0 &&
                      (req == 1 || bw_plan_needs_build(nw.have_ready, nw.ready_time, nw.ready_formats, needed,
                                                       d->rebuild_age, model_now())) &&
                      !(failing && bw_plan_backing_off(&f, req == 1, req_time, model_now()));
                model_strv_free(nw.ready_formats);
                model_strv_free(needed);
                if (!due) {
                        zk_lock_release_async(lock);
                        zk_lock_free(lock);
                        continue;
                }
                reset = failing && req == 1 && req_time > f.failed_time;
                if (reset)
                        log_info("manual build request for image %s: "
                                 "back-off after %llu failed build%s in a row reset",
                                 d->name, (unsigned long long)f.failures, f.failures == 1 ? "" : "s");
                else if (req == 1)
                        log_info("manual build request for image %s", d->name);
                start(w, d, lock, req == 1, failing && !reset ? f.failures : 0);
        }
}

void bw_build_stop_all(struct bw *w) {
        while (w->builds) {
                struct bw_job *j = w->builds;
                /* cmd_free kills the process group and reaps it. */
                cmd_free(TAKE_PTR(j->cmd));
                log_line(j->log_fd, "Build interrupted: poold-builder stopping\nExit code: %d\n", -SIGKILL);
                finish(w, j, false, "poold-builder stopping", false);
        }
}
