/* bw_verify.c — an upload proven by booting it before it serves
 * (diskimages[].poold.verify; issue 11).
 *
 * DESIGN. When an upload of a diskimage with `poold: verify:` succeeds,
 * bw_upload.c hands its job here instead of recording it ready. The record
 * stays Nodepool's `uploading` (no launcher boots it) with the cloud image's
 * id and poold_verify {state: checking, server, log}, and the upload lock
 * stays held. Then, each step a short job on the misc workq or a loop
 * callback, never a wait on the loop:
 *   create   one server from the upload, like a node of the first pool label
 *            that uses the image on that provider (its size, its pool);
 *   boot     get() every VERIFY_POLL_MS until ACTIVE with an address;
 *   ssh      keyscan.h: the port answers with an SSH banner and host keys;
 *   commands each configured command through the `ssh` binary, checking the
 *            host against the scanned keys only (known_hosts written from
 *            them, StrictHostKeyChecking=yes), in order, each must exit 0;
 * all bounded by one timeout (poold.verify.timeout). The record then becomes
 * `ready` (poold_verify passed) or `failed` (poold_verify failed, with the
 * reason and the log path; the cloud image is kept for inspection, and
 * bw_upload_schedule does not upload that build there again), the lock is
 * released and the server deleted. The log (<build-log-dir>/<image>-<build>
 * .verify-<provider>-<upload>.log: steps, command output, the console on
 * failure) is kept only when the check failed, until bw_cleanup.c deletes
 * the failed upload's record (or finds the log orphaned a day later).
 *
 * The server is not a node: no ZooKeeper node record names it. Its tags
 * (PROVIDER_TAG_VERIFY, PROVIDER_TAG_VERIFY_BUILDER) tell the launcher's leak
 * sweep to leave it alone and let bw_verify_leftovers() find the ones this
 * builder left behind (a crash, a stop in the middle) and delete them. Its
 * node id is 19 digits ("9", the upload id, 8 digits of a hash of
 * image/build/provider), longer than any ZooKeeper sequence id, so it never
 * names a real node's server. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "bw.h"
#include "bw_plan.h"
#include "cmd.h"
#include "dbuf.h"
#include "keyscan.h"
#include "log.h"
#include "zk_lock.h"

#define VERIFY_POLL_MS 2000
#define VERIFY_OUTPUT_MAX (64 * 1024)

enum step { STEP_CREATE, STEP_BOOT, STEP_SSH, STEP_COMMANDS, STEP_DONE };
static const char *const step_names[] = { "creating the server", "waiting for the server to boot",
                                          "waiting for ssh", "running the commands", "done" };

struct bw_verify {
        struct bw_verify *next;
        struct bw *w;
        struct bw_up *u;                /* the upload (lock, provider, names, external id): ours */
        char *node_id, *hostname, *pool, *label, *tag_value;
        int memory, vcpus, disk;
        char *connection_type;
        int connection_port;
        char *username, *private_key;
        char **commands;
        size_t next_command;
        char *log_path, *known_hosts;
        int log_fd;
        enum step step;
        uint64_t start_ms, deadline_ms;
        struct loop_timer *deadline, *poll;
        struct keyscan *scan;
        struct cmd *cmd;
        bool in_flight;                 /* a workq job runs for us */
        bool timed_out;                 /* the deadline passed while a job ran */
        char *server_id;                /* the server's external id once created */
        char *reason;                   /* why the check failed, once it ended */
        char *host;
        int port;
        /* worker results */
        int wr;
        char *werr;
        struct provider_server *ws;
};

static void vlog(struct bw_verify *v, const char *fmt, ...) _printf_(2, 3);
static void vlog(struct bw_verify *v, const char *fmt, ...) {
        if (v->log_fd < 0) return;
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) >= 0)
                dprintf(v->log_fd, "[%7.1f s] %s\n", (double)(loop_now_ms() - v->start_ms) / 1000, msg);
        va_end(ap);
}

bool bw_verify_running(struct bw *w, const char *image, const char *build_id, const char *provider,
                       const char *upload_id) {
        for (struct bw_verify *v = w->verifies; v; v = v->next) {
                struct bw_up *u = v->u;
                if (strcmp(u->image, image) == 0 && (!build_id || strcmp(u->build_id, build_id) == 0) &&
                    strcmp(u->provider, provider) == 0 && (!upload_id || strcmp(u->upload_id, upload_id) == 0))
                        return true;
        }
        return false;
}

bool bw_verify_wanted(struct bw *w, const char *image) {
        const struct config_diskimage *d = config_find_diskimage(w->b->config, image);
        return d && d->verify.enabled;
}

static void v_unlink(struct bw *w, struct bw_verify *v) {
        for (struct bw_verify **p = &w->verifies; *p; p = &(*p)->next)
                if (*p == v) {
                        *p = v->next;
                        w->n_verifies--;
                        return;
                }
}

static void v_free(struct bw_verify *v) {
        loop_timer_cancel(v->deadline);
        loop_timer_cancel(v->poll);
        keyscan_cancel(v->scan);
        cmd_free(v->cmd);
        if (v->log_fd >= 0) close(v->log_fd);
        if (v->known_hosts) (void)unlink(v->known_hosts);
        if (v->u) bw_upload_free(v->w, v->u);
        free(v->node_id);
        free(v->hostname);
        free(v->pool);
        free(v->label);
        free(v->tag_value);
        free(v->connection_type);
        free(v->username);
        free(v->private_key);
        model_strv_free(v->commands);
        free(v->log_path);
        free(v->known_hosts);
        free(v->server_id);
        free(v->reason);
        free(v->host);
        free(v->werr);
        provider_server_free(v->ws);
        free(v);
}

/* ---------------------------------------------------------------- server deletion */

struct sdel {
        struct bw *w;
        struct upload_target *prov;
        char *server_id, *why;
        int r;
        char *err;
};

static void sdel_work(void *ud) {
        struct sdel *d = ud;
        struct provider *p = NULL;
        d->r = bw_prov_get(d->prov, &p, &d->err);
        if (d->r >= 0) d->r = p->ops->delete(p, d->server_id, &d->err);
}

static void sdel_done(void *ud, int status) {
        struct sdel *d = ud;
        if (status < 0) d->r = status;
        if (d->r >= 0 || d->r == -ENOENT)
                log_info("deleted verify server %s of provider %s (%s)", d->server_id, d->prov->name, d->why);
        else
                log_warning("cannot delete verify server %s of provider %s: %s; the next cleanup retries",
                            d->server_id, d->prov->name, d->err ? d->err : strerror(-d->r));
        bw_prov_unref(d->w, d->prov);
        free(d->server_id);
        free(d->why);
        free(d->err);
        free(d);
}

/* Delete server SERVER_ID of PROV on the misc workq (a failure is logged; the
 * leftover sweep retries). */
static void server_delete(struct bw *w, struct upload_target *prov, const char *server_id, const char *why) {
        struct sdel *d = xnew(struct sdel, 1);
        d->w = w;
        d->prov = bw_prov_ref(prov);
        d->server_id = xstrdup(server_id);
        d->why = xstrdup(why);
        if (workq_submit(w->misc_wq, sdel_work, sdel_done, d) < 0) sdel_done(d, -EAGAIN);
}

/* ---------------------------------------------------------------- the end */

static void finish(struct bw_verify *v, const char *reason);

/* Console output of a failed check goes to its log: what the boot said. */
static void console_work(void *ud) {
        struct bw_verify *v = ud;
        struct provider *p = NULL;
        free(v->werr);
        v->werr = NULL;
        v->wr = bw_prov_get(v->u->prov, &p, &v->werr);
        char *text = NULL;
        if (v->wr >= 0) v->wr = p->ops->console_log ? p->ops->console_log(p, v->server_id, &text, &v->werr) : -EOPNOTSUPP;
        if (v->wr >= 0 && v->log_fd >= 0) {
                dprintf(v->log_fd, "---- console of %s ----\n%s\n---- end of console ----\n", v->server_id, text);
        }
        free(text);
}

/* Record the outcome (v->reason NULL: passed) and release the upload lock. */
static void record(struct bw_verify *v) {
        struct bw *w = v->w;
        struct bw_up *u = v->u;
        const char *reason = v->reason;
        bool ok = !reason;
        double secs = (double)(loop_now_ms() - v->start_ms) / 1000;
        model_set_str(&u->verify_state, ok ? "passed" : "failed");
        model_set_str(&u->verify_reason, reason);
        if (ok) {
                model_set_str(&u->verify_log, NULL);
                if (v->log_fd >= 0) (void)unlink(v->log_path);
        }
        int r = bw_upload_store(w, u, ok ? IMAGE_UPLOAD_STATE_READY : IMAGE_UPLOAD_STATE_FAILED);
        if (r < 0) {
                /* The record vanished (deleted by an operator): the image is a leak now. */
                log_warning_errno(r, "upload %s: cannot record the verification: %m; deleting %s", u->path,
                                  u->external_id);
                bw_cleanup_delete_image(w, u->prov, u->external_id, NULL, NULL);
        } else if (ok)
                log_info("verified upload %s of image %s-%s to %s in %.0f s: ready", u->upload_id, u->image,
                         u->build_id, u->provider, secs);
        else
                log_error("upload %s of image %s-%s to %s failed verification after %.0f s: %s (log %s); the "
                          "previous ready upload keeps serving",
                          u->upload_id, u->image, u->build_id, u->provider, secs, reason, v->log_path);
        statsd_builder_verify(w->statsd, u->image, u->provider, ok, secs * 1000);
        zk_lock_release_async(u->lock);
}

static void console_done(void *ud, int status) {
        struct bw_verify *v = ud;
        struct bw *w = v->w;
        v->in_flight = false;
        if (status >= 0 && v->wr < 0 && v->wr != -EOPNOTSUPP)
                vlog(v, "no console output: %s", v->werr ? v->werr : strerror(-v->wr));
        record(v);
        server_delete(w, v->u->prov, v->server_id, "verification failed");
        v_unlink(w, v);
        v_free(v);
        bw_wake(w);
}

#define STOPPED_REASON "the builder stopped"

/* The check ends: REASON NULL passed, else why it failed. Records the result,
 * deletes the server, frees V. A check the builder stopped did not fail: its
 * record is failed without poold_verify, so cleanup deletes it and the build
 * is uploaded and checked again. */
static void finish(struct bw_verify *v, const char *reason) {
        struct bw *w = v->w;
        bool stopped = reason && strcmp(reason, STOPPED_REASON) == 0;
        if (v->in_flight && !stopped) {
                /* A job runs for us; its done callback ends the check. */
                v->timed_out = true;
                return;
        }
        loop_timer_cancel(v->deadline);
        v->deadline = NULL;
        loop_timer_cancel(v->poll);
        v->poll = NULL;
        keyscan_cancel(v->scan);
        v->scan = NULL;
        cmd_free(v->cmd);
        v->cmd = NULL;
        v->step = STEP_DONE;
        v->reason = xstrdup(reason);
        vlog(v, "%s", reason ? reason : "passed");
        if (stopped) {
                model_set_str(&v->u->verify_state, NULL);
                int r = bw_upload_store(w, v->u, IMAGE_UPLOAD_STATE_FAILED);
                if (r < 0) log_warning_errno(r, "%s: cannot record the stop: %m", v->u->path);
                zk_lock_release_async(v->u->lock);
                if (v->server_id) {
                        /* The workqs are shutting down: delete it here (the process is stopping
                         * anyway); whatever fails is a leftover the next start deletes. */
                        struct provider *p = NULL;
                        _cleanup_free_ char *err = NULL;
                        r = bw_prov_get(v->u->prov, &p, &err);
                        if (r >= 0) r = p->ops->delete(p, v->server_id, &err);
                        if (r < 0 && r != -ENOENT)
                                log_warning("cannot delete verify server %s: %s", v->server_id, err ? err : strerror(-r));
                        else
                                log_info("deleted verify server %s (%s)", v->server_id, STOPPED_REASON);
                }
                v_unlink(w, v);
                v_free(v);
                return;
        }
        if (reason && v->server_id) {
                /* Still listed meanwhile: its upload is busy, its server not a leftover. */
                v->in_flight = true;
                if (workq_submit(w->misc_wq, console_work, console_done, v) >= 0) return;
                v->in_flight = false;
        }
        record(v);
        if (v->server_id) server_delete(w, v->u->prov, v->server_id, reason ? "verification failed" : "verified");
        v_unlink(w, v);
        v_free(v);
        bw_wake(w);
}

static char *timeout_reason(struct bw_verify *v) {
        uint64_t s = (v->deadline_ms - v->start_ms) / 1000;
        if (v->step == STEP_SSH) return xasprintf("ssh timeout (no ssh after %llu s)", (unsigned long long)s);
        return xasprintf("timeout after %llu s %s", (unsigned long long)s, step_names[v->step]);
}

static void on_deadline(struct loop *loop, struct loop_timer *t, void *ud) {
        struct bw_verify *v = ud;
        v->deadline = NULL; /* one-shot: freed by the loop */
        _cleanup_free_ char *why = timeout_reason(v);
        finish(v, why);
}

/* A job came back: true when the check must end now (timed out meanwhile, or
 * the workq was shut down). */
static bool job_back(struct bw_verify *v, int status) {
        v->in_flight = false;
        if (status < 0 || atomic_load(&v->w->stopping)) {
                finish(v, STOPPED_REASON);
                return true;
        }
        if (v->timed_out) {
                _cleanup_free_ char *why = timeout_reason(v);
                finish(v, why);
                return true;
        }
        return false;
}

static uint64_t remaining_ms(struct bw_verify *v) {
        uint64_t now = loop_now_ms();
        return v->deadline_ms > now ? v->deadline_ms - now : 1;
}

/* ---------------------------------------------------------------- commands */

static void run_next_command(struct bw_verify *v);

static void on_command(struct cmd *c, const struct cmd_status *st, void *ud) {
        struct bw_verify *v = ud;
        const char *what = v->commands[v->next_command];
        v->cmd = NULL;
        if (!cmd_status_success(st)) {
                _cleanup_free_ char *why = st->outcome == CMD_TIMED_OUT
                        ? xasprintf("command '%s' timed out", what)
                        : xasprintf("command '%s' %s %d", what, st->outcome == CMD_EXITED ? "exited" : "killed by signal",
                                    st->code);
                cmd_free(c);
                finish(v, why);
                return;
        }
        vlog(v, "command '%s' succeeded", what);
        cmd_free(c);
        v->next_command++;
        run_next_command(v);
}

static void run_next_command(struct bw_verify *v) {
        if (!v->commands[v->next_command]) {
                finish(v, NULL);
                return;
        }
        const char *what = v->commands[v->next_command];
        struct cmd *c = cmd_new("ssh");
        cmd_args(c, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
                 "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30", NULL);
        cmd_arg(c, "-o");
        cmd_argf(c, "UserKnownHostsFile=%s", v->known_hosts);
        if (v->private_key) cmd_args(c, "-o", "IdentitiesOnly=yes", "-i", v->private_key, NULL);
        cmd_arg(c, "-p");
        cmd_argf(c, "%d", v->port);
        cmd_argf(c, "%s@%s", v->username, v->host);
        cmd_args(c, "--", what, NULL);
        if (v->log_fd >= 0) cmd_set_log_fd(c, v->log_fd);
        cmd_set_timeout(c, remaining_ms(v));
        cmd_set_kill_grace(c, 2000);
        vlog(v, "running '%s' as %s", what, v->username);
        int r = cmd_start_async(c, v->w->b->loop, on_command, v);
        if (r < 0) {
                cmd_free(c);
                _cleanup_free_ char *why = xasprintf("cannot run ssh: %s", strerror(-r));
                finish(v, why);
                return;
        }
        v->cmd = c;
}

/* known_hosts from the scanned keys only. */
static int write_known_hosts(struct bw_verify *v, char **keys) {
        v->known_hosts = xasprintf("%s.known_hosts", v->log_path);
        _cleanup_free_ char *text = keyscan_known_hosts_text(v->host, v->port, keys);
        FILE *f = fopen(v->known_hosts, "we");
        if (!f) return -errno;
        fputs(text, f);
        return fclose(f) == 0 ? 0 : -errno;
}

/* ---------------------------------------------------------------- ssh */

static void on_scanned(int error, char **keys, const char *msg, void *ud) {
        struct bw_verify *v = ud;
        v->scan = NULL; /* freed after this returns */
        if (error < 0) {
                _cleanup_free_ char *why = error == -ETIMEDOUT ? xasprintf("ssh timeout (%s)", msg ? msg : "no answer")
                                                                : xasprintf("ssh: %s", msg ? msg : strerror(-error));
                finish(v, why);
                return;
        }
        size_t n = 0;
        while (keys && keys[n]) n++;
        vlog(v, "ssh answers on %s:%d with %zu host key(s)", v->host, v->port, n);
        if (!v->commands || !v->commands[0] || n == 0) {
                keyscan_strv_free(keys);
                finish(v, NULL);
                return;
        }
        int r = write_known_hosts(v, keys);
        keyscan_strv_free(keys);
        if (r < 0) {
                _cleanup_free_ char *why = xasprintf("cannot write %s: %s", v->known_hosts, strerror(-r));
                finish(v, why);
                return;
        }
        v->step = STEP_COMMANDS;
        run_next_command(v);
}

static void start_scan(struct bw_verify *v, const struct provider_server *s) {
        v->host = xstrdup(s->interface_ip);
        v->port = s->connection_port > 0 ? s->connection_port : v->connection_port;
        v->step = STEP_SSH;
        vlog(v, "server %s is active at %s:%d; waiting for ssh", v->server_id, v->host, v->port);
        int r = keyscan_start(v->w->b->loop, v->host, v->port, remaining_ms(v), v->connection_type, on_scanned, v,
                              &v->scan);
        if (r < 0) {
                _cleanup_free_ char *why = xasprintf("cannot scan %s:%d: %s", v->host, v->port, strerror(-r));
                finish(v, why);
        }
}

/* ---------------------------------------------------------------- boot */

static void get_work(void *ud) {
        struct bw_verify *v = ud;
        struct provider *p = NULL;
        free(v->werr);
        v->werr = NULL;
        provider_server_free(v->ws);
        v->ws = NULL;
        v->wr = bw_prov_get(v->u->prov, &p, &v->werr);
        if (v->wr >= 0) v->wr = p->ops->get(p, v->server_id, &v->ws, &v->werr);
        if (v->wr >= 0 && v->ws->state == PROVIDER_SERVER_ACTIVE && p->ops->finish_create)
                v->wr = p->ops->finish_create(p, v->pool, v->label, v->ws, &v->werr);
}

static void poll_later(struct bw_verify *v);

/* After create or get: scan once ACTIVE with an address, fail on ERROR. */
static void look_at_server(struct bw_verify *v) {
        struct provider_server *s = v->ws;
        if (s->state == PROVIDER_SERVER_ERROR) {
                finish(v, "the server went to ERROR while booting");
                return;
        }
        if (s->state == PROVIDER_SERVER_ACTIVE && s->interface_ip) {
                start_scan(v, s);
                return;
        }
        poll_later(v);
}

static void get_done(void *ud, int status) {
        struct bw_verify *v = ud;
        if (job_back(v, status)) return;
        if (v->wr < 0) {
                _cleanup_free_ char *why = xasprintf("cannot read the server: %s",
                                                     v->werr ? v->werr : strerror(-v->wr));
                finish(v, why);
                return;
        }
        look_at_server(v);
}

static void on_poll(struct loop *loop, struct loop_timer *t, void *ud) {
        struct bw_verify *v = ud;
        v->poll = NULL;
        v->in_flight = true;
        if (workq_submit(v->w->misc_wq, get_work, get_done, v) < 0) {
                v->in_flight = false;
                finish(v, "work queue full");
        }
}

static void poll_later(struct bw_verify *v) {
        v->poll = loop_add_timer(v->w->b->loop, VERIFY_POLL_MS, false, on_poll, v);
}

static void create_work(void *ud) {
        struct bw_verify *v = ud;
        struct bw_up *u = v->u;
        struct provider *p = NULL;
        v->wr = bw_prov_get(u->prov, &p, &v->werr);
        if (v->wr < 0) return;
        const struct provider_kv tags[] = {
                { PROVIDER_TAG_VERIFY, v->tag_value },
                { PROVIDER_TAG_VERIFY_BUILDER, v->w->b->builder_id },
                { "nodepool_provider_name", u->provider },
                { "nodepool_pool_name", v->pool },
                { "nodepool_node_id", v->node_id },
        };
        struct provider_create_req req = {
                .node_id = v->node_id, .hostname = v->hostname, .label = v->label, .pool = v->pool,
                .image = u->external_id, .memory_mib = v->memory, .vcpus = v->vcpus, .disk_gib = v->disk,
                .tags = tags, .n_tags = ELEMENTSOF(tags),
        };
        v->wr = p->ops->create(p, &req, &v->ws, &v->werr);
        if (v->wr >= 0 && atomic_load(&v->w->stopping)) {
                /* Stopping: nobody is going to look at it. */
                (void)p->ops->delete(p, v->ws->external_id, NULL);
                v->wr = -ECANCELED;
        }
}

static void create_done(void *ud, int status) {
        struct bw_verify *v = ud;
        if (status >= 0 && v->wr >= 0) v->server_id = xstrdup(v->ws->external_id);
        if (job_back(v, status)) return;
        if (v->wr < 0) {
                _cleanup_free_ char *why = xasprintf("cannot create a server from the upload: %s",
                                                     v->werr ? v->werr : strerror(-v->wr));
                finish(v, why);
                return;
        }
        model_set_str(&v->u->verify_server, v->server_id);
        int r = bw_upload_store(v->w, v->u, IMAGE_UPLOAD_STATE_UPLOADING);
        if (r < 0) log_warning_errno(r, "%s: cannot record verify server %s: %m", v->u->path, v->server_id);
        vlog(v, "created server %s", v->server_id);
        v->step = STEP_BOOT;
        look_at_server(v);
}

/* ---------------------------------------------------------------- start */

/* The first pool label of PROVIDER that boots IMAGE, and its pool. */
static const struct config_pool_label *find_label(const struct config_provider *cp, const char *image,
                                                  const struct config_pool **ret_pool) {
        for (size_t i = 0; cp && i < cp->n_pools; i++)
                for (size_t k = 0; k < cp->pools[i].n_labels; k++) {
                        const struct config_pool_label *l = &cp->pools[i].labels[k];
                        if (l->diskimage && strcmp(l->diskimage, image) == 0) {
                                *ret_pool = &cp->pools[i];
                                return l;
                        }
                }
        return NULL;
}

static char *verify_node_id(const struct bw_up *u) {
        uint32_t h = 2166136261u; /* FNV-1a */
        _cleanup_free_ char *key = xasprintf("%s/%s/%s", u->image, u->build_id, u->provider);
        for (const char *c = key; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
        return xasprintf("9%s%08u", u->upload_id, h % 100000000u);
}

void bw_verify_start(struct bw *w, struct bw_up *u) {
        const struct config *c = w->b->config;
        const struct config_diskimage *d = config_find_diskimage(c, u->image);
        const struct config_provider *cp = config_find_provider(c, u->provider);
        const struct config_pool *pool = NULL;
        const struct config_pool_label *l = d ? find_label(cp, u->image, &pool) : NULL;
        if (!l) {
                /* Nothing here would boot it; a check cannot say more than the upload did. */
                log_warning("upload %s of image %s-%s to %s: no pool label of the provider boots the image: "
                            "not verified",
                            u->upload_id, u->image, u->build_id, u->provider);
                int r = bw_upload_store(w, u, IMAGE_UPLOAD_STATE_READY);
                if (r < 0) log_warning_errno(r, "%s: cannot record as ready: %m", u->path);
                zk_lock_release_async(u->lock);
                bw_upload_free(w, u);
                return;
        }
        const struct config_provider_diskimage *pd = NULL;
        for (size_t i = 0; i < cp->n_diskimages; i++)
                if (strcmp(cp->diskimages[i].name, u->image) == 0) pd = &cp->diskimages[i];

        struct bw_verify *v = xnew(struct bw_verify, 1);
        v->w = w;
        v->u = u;
        v->log_fd = -1;
        v->start_ms = loop_now_ms();
        v->deadline_ms = v->start_ms + (uint64_t)d->verify.timeout * 1000;
        v->node_id = verify_node_id(u);
        v->hostname = xasprintf("poold-verify-%s-%s-%s", u->image, u->build_id, u->upload_id);
        v->tag_value = xasprintf("%s/%s/%s/%s", u->image, u->build_id, u->provider, u->upload_id);
        v->pool = xstrdup(pool->name);
        v->label = xstrdup(l->name);
        v->memory = (int)l->memory;
        v->vcpus = (int)l->vcpus;
        v->disk = (int)l->disk_size;
        v->connection_type = xstrdup(pd && pd->connection_type ? pd->connection_type : "ssh");
        v->connection_port = pd && pd->connection_port > 0 ? (int)pd->connection_port : 22;
        v->username = xstrdup(d->verify.username ? d->verify.username : d->username);
        v->private_key = xstrdup(d->verify.private_key);
        v->commands = model_strv_new();
        for (size_t i = 0; i < d->verify.commands.n; i++) model_strv_push(&v->commands, d->verify.commands.items[i]);

        const char *dir = c->build_log_dir;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) log_warning_errno(errno, "cannot create %s: %m", dir);
        _cleanup_free_ char *log_name = bw_plan_verify_log_name(u->image, u->build_id, u->provider, u->upload_id);
        v->log_path = xasprintf("%s/%s", dir, log_name);
        v->log_fd = open(v->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (v->log_fd < 0) log_warning_errno(errno, "cannot open %s: %m", v->log_path);
        vlog(v, "verifying upload %s (%s) of image %s-%s to provider %s: boot like label %s of pool %s, timeout %lld s",
             u->upload_id, u->external_id, u->image, u->build_id, u->provider, v->label, v->pool,
             (long long)d->verify.timeout);

        model_set_str(&u->verify_state, "checking");
        model_set_str(&u->verify_log, v->log_path);
        int r = bw_upload_store(w, u, IMAGE_UPLOAD_STATE_UPLOADING);
        if (r < 0) {
                log_warning_errno(r, "upload %s: cannot record the check: %m; deleting %s", u->path, u->external_id);
                bw_cleanup_delete_image(w, u->prov, u->external_id, NULL, NULL);
                zk_lock_release_async(u->lock);
                v_free(v);
                return;
        }
        v->next = w->verifies;
        w->verifies = v;
        w->n_verifies++;
        v->deadline = loop_add_timer(w->b->loop, d->verify.timeout * 1000, false, on_deadline, v);
        log_info("verifying upload %s of image %s-%s to %s: booting a server like label %s (log %s)", u->upload_id,
                 u->image, u->build_id, u->provider, v->label, v->log_path);
        v->in_flight = true;
        if (workq_submit(w->misc_wq, create_work, create_done, v) < 0) {
                v->in_flight = false;
                finish(v, "work queue full");
        }
}

void bw_verify_stop_all(struct bw *w) {
        /* The checks end as failed ("the builder stopped"): their records are not
         * verify failures, so cleanup deletes them and the build is uploaded and
         * checked again later. Jobs in flight end them from their done callback
         * when workq_free() drains the queue. */
        struct bw_verify *next;
        for (struct bw_verify *v = w->verifies; v; v = next) {
                next = v->next;
                if (v->in_flight) continue;
                finish(v, STOPPED_REASON);
        }
}

/* ---------------------------------------------------------------- leftovers */

struct left_job {
        struct bw *w;
        struct upload_target *prov;
        struct provider_server **servers;
        size_t n;
        int r;
        char *err;
};

static void left_work(void *ud) {
        struct left_job *j = ud;
        struct provider *p = NULL;
        j->r = bw_prov_get(j->prov, &p, &j->err);
        if (j->r >= 0) j->r = p->ops->list(p, &j->servers, &j->n, &j->err);
}

static void left_done(void *ud, int status) {
        struct left_job *j = ud;
        struct bw *w = j->w;
        w->leftover_lists--;
        if (status >= 0 && j->r >= 0 && !atomic_load(&w->stopping)) {
                for (size_t i = 0; i < j->n; i++) {
                        const struct provider_server *s = j->servers[i];
                        const char *who = provider_server_tag(s, PROVIDER_TAG_VERIFY_BUILDER);
                        const char *what = provider_server_tag(s, PROVIDER_TAG_VERIFY);
                        if (!who || !what || strcmp(who, w->b->builder_id) != 0 || !s->external_id) continue;
                        bool mine = false;
                        for (struct bw_verify *v = w->verifies; v && !mine; v = v->next)
                                mine = v->server_id ? strcmp(v->server_id, s->external_id) == 0
                                                    : strcmp(v->tag_value, what) == 0;
                        if (mine) continue;
                        log_info("verify server %s (%s) of provider %s was left behind: deleting it", s->external_id,
                                 what, j->prov->name);
                        server_delete(w, j->prov, s->external_id, "left behind");
                }
        } else if (status >= 0 && j->r < 0)
                log_warning("provider %s: cannot list servers for leftover verify servers: %s", j->prov->name,
                            j->err ? j->err : strerror(-j->r));
        provider_server_array_free(j->servers, j->n);
        bw_prov_unref(w, j->prov);
        free(j->err);
        free(j);
}

/* Whether PROVIDER uploads an image checked by booting it (only those are
 * listed: a builder without poold.verify costs its clouds nothing more). */
static bool provider_verifies(struct bw *w, const char *provider) {
        const struct config_provider *cp = config_find_provider(w->b->config, provider);
        for (size_t i = 0; cp && i < cp->n_diskimages; i++)
                if (bw_verify_wanted(w, cp->diskimages[i].name)) return true;
        return false;
}

void bw_verify_leftovers(struct bw *w) {
        if (w->leftover_lists > 0) return;
        for (size_t i = 0; i < w->n_provs; i++) {
                if (!provider_verifies(w, w->provs[i]->name)) continue;
                struct left_job *j = xnew(struct left_job, 1);
                j->w = w;
                j->prov = bw_prov_ref(w->provs[i]);
                if (workq_submit(w->misc_wq, left_work, left_done, j) < 0) {
                        bw_prov_unref(w, j->prov);
                        free(j);
                        continue;
                }
                w->leftover_lists++;
        }
}
