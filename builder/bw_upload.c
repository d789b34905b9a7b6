/* bw_upload.c — uploads of builds to providers (protocol.md §4.1 Upload).
 *
 * DESIGN. For every provider × diskimage it lists (not paused there): the
 * newest READY build of the image, if it has a local file in the provider's
 * format (provider_params_image_format: qcow2, or clouds.yaml's image_format
 * for OpenStack) and no READY upload to that provider, is uploaded. The
 * upload lock (.../builds/<b>/providers/<p>/images/lock, non-blocking) is
 * taken, the absence of a READY upload re-checked in ZooKeeper, the
 * `uploading` record created as a sequence node, and the blocking provider
 * call runs on the upload workq (--upload-workers threads): sha256 checked
 * against the .sha256 file, the .md5/.sha256 digests handed to the driver
 * (Glance records them as Nodepool's uploads do), then up to BW_UPLOAD_ATTEMPTS tries with a
 * doubling back-off, then the provider's post-upload-hook if any (see
 * run_hook). Back on the loop the record becomes `ready` (external
 * id/name, format) or `failed`. image-upload-timeout is enforced by a loop
 * timer: the record is failed and the lock released at once; a provider call
 * that still succeeds later has its image deleted (threads cannot be killed). */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bw.h"
#include "bw_plan.h"
#include "cmd.h"
#include "dbuf.h"
#include "digest.h"
#include "log.h"
#include "zk_lock.h"
#include "zk_update.h"

bool bw_upload_running(struct bw *w, const char *image, const char *build_id, const char *provider,
                       const char *upload_id) {
        if (bw_verify_running(w, image, build_id, provider, upload_id)) return true;
        for (struct bw_up *u = w->uploads; u; u = u->next)
                if (strcmp(u->image, image) == 0 && (!build_id || strcmp(u->build_id, build_id) == 0) &&
                    strcmp(u->provider, provider) == 0 && (!upload_id || strcmp(u->upload_id, upload_id) == 0))
                        return true;
        return false;
}

char *bw_upload_local_file(struct bw *w, const char *image, const char *build_id, const char *format) {
        char *f = xasprintf("%s/%s-%s.%s", w->b->config->images_dir, image, build_id, format);
        struct stat sb;
        if (stat(f, &sb) < 0 || !S_ISREG(sb.st_mode)) {
                free(f);
                return NULL;
        }
        return f;
}

static void up_unlink(struct bw *w, struct bw_up *u) {
        for (struct bw_up **p = &w->uploads; *p; p = &(*p)->next)
                if (*p == u) {
                        *p = u->next;
                        w->n_uploads--;
                        return;
                }
}

bool bw_upload_settled(const struct image_upload *u) {
        return u && (u->state == IMAGE_UPLOAD_STATE_READY ||
                     (u->state == IMAGE_UPLOAD_STATE_FAILED && u->verify_state && strcmp(u->verify_state, "failed") == 0));
}

static void up_free(struct bw *w, struct bw_up *u) {
        zk_lock_free(u->lock);
        loop_timer_cancel(u->timeout);
        bw_prov_unref(w, u->prov);
        for (size_t i = 0; i < u->n_tags; i++) {
                free((char *)u->tags[i].key);
                free((char *)u->tags[i].value);
        }
        free(u->tags);
        free(u->image);
        free(u->build_id);
        free(u->provider);
        free(u->upload_id);
        free(u->path);
        free(u->local_path);
        free(u->format);
        free(u->external_name);
        free(u->external_id);
        free(u->errmsg);
        free(u->verify_state);
        free(u->verify_reason);
        free(u->verify_log);
        free(u->verify_server);
        free(u);
}

void bw_upload_free(struct bw *w, struct bw_up *u) {
        up_free(w, u);
}

/* ---------------------------------------------------------------- worker */

/* The first word of PATH.EXT when it is LEN hex digits (lower-cased, caller
 * frees); NULL when the file is missing or holds something else. */
static char *read_digest(const char *path, const char *ext, size_t len) {
        _cleanup_free_ char *sumfile = xasprintf("%s.%s", path, ext);
        struct dbuf d = DBUF_INIT(4096);
        char *hex = NULL;
        if (dbuf_read_file(&d, sumfile) >= 0 && d.len >= len) {
                const char *t = dbuf_str(&d);
                bool ok = t[len] == '\0' || t[len] == ' ' || t[len] == '\t' || t[len] == '\n';
                for (size_t i = 0; ok && i < len; i++) ok = isxdigit((unsigned char)t[i]);
                if (ok) {
                        hex = xstrndup(t, len);
                        for (char *q = hex; *q; q++) *q = (char)tolower((unsigned char)*q);
                }
        }
        dbuf_free(&d);
        return hex;
}

/* First 64 characters of PATH.sha256 compared with the file's digest.
 * 0 when they match or there is no checksum file, -EBADMSG on mismatch. */
static int verify_sha256(const char *path, char **ret_msg) {
        _cleanup_free_ char *sumfile = xasprintf("%s.sha256", path);
        struct dbuf want = DBUF_INIT(4096);
        int r = dbuf_read_file(&want, sumfile);
        if (r == -ENOENT) return 0;
        if (r < 0 || want.len < 64) {
                dbuf_free(&want);
                *ret_msg = xasprintf("%s: unreadable checksum file", sumfile);
                return r < 0 ? r : -EBADMSG;
        }
        char hex[SHA256_HEX_SIZE];
        r = digest_sha256_file_hex(path, hex);
        if (r < 0) {
                dbuf_free(&want);
                *ret_msg = xasprintf("%s: %s", path, strerror(-r));
                return r;
        }
        if (strncmp(hex, dbuf_str(&want), 64) != 0) {
                *ret_msg = xasprintf("%s: sha256 %s does not match %s", path, hex, sumfile);
                r = -EBADMSG;
        }
        dbuf_free(&want);
        return r;
}

static bool sleep_unless_stopped(struct bw_up *u, uint64_t ms) {
        uint64_t end = loop_now_ms() + ms;
        while (loop_now_ms() < end) {
                if (atomic_load(u->stopping) || atomic_load(&u->abandoned)) return false;
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        return true;
}

extern char **environ;

/* Nodepool's UploadWorker._uploadImage runs post-upload-hook after a
 * successful upload as `HOOK PROVIDER EXTERNAL_ID LOCAL_PATH`, with the
 * builder's own environment, and on a non-zero exit (or when it cannot run)
 * deletes the uploaded image and records the upload FAILED; we do exactly
 * that (the delete is on the loop, in up_done). One difference: Nodepool
 * waits forever; here the hook gets what is left of image-upload-timeout
 * (at least a second) and is then killed as a failure. */
static void run_hook(struct bw_up *u) {
        const char *hook = u->prov->post_upload_hook;
        _cleanup_(cmd_freep) struct cmd *c = cmd_new(hook);
        cmd_args(c, u->provider, u->external_id, u->local_path, NULL);
        for (char **e = environ; e && *e; e++) {
                _cleanup_free_ char *name = xstrndup(*e, strcspn(*e, "="));
                cmd_pass_env(c, name);
        }
        cmd_capture_output(c, 64 * 1024);
        uint64_t now = loop_now_ms();
        cmd_set_timeout(c, u->deadline_ms > now + 1000 ? u->deadline_ms - now : 1000);
        log_info("upload %s: running post-upload-hook %s %s %s %s", u->upload_id, hook, u->provider,
                 u->external_id, u->local_path);
        struct cmd_status st;
        int r = cmd_run(c, &st);
        if (r >= 0 && cmd_status_success(&st)) {
                log_info("upload %s: post-upload-hook succeeded\nstdout:\n%s\nstderr:\n%s", u->upload_id,
                         dbuf_str(cmd_stdout(c)), dbuf_str(cmd_stderr(c)));
                return;
        }
        u->hook_failed = true;
        u->result = r < 0 ? r : -EIO;
        free(u->errmsg);
        if (r < 0)
                u->errmsg = xasprintf("post-upload-hook %s: cannot run it: %s", hook, strerror(-r));
        else
                u->errmsg = xasprintf("post-upload-hook %s: %s %d\nstdout:\n%s\nstderr:\n%s", hook,
                                      cmd_outcome_to_string(st.outcome), st.code, dbuf_str(cmd_stdout(c)),
                                      dbuf_str(cmd_stderr(c)));
}

static void up_work(void *ud) {
        struct bw_up *u = ud;
        u->result = verify_sha256(u->local_path, &u->errmsg);
        if (u->result < 0) return;
        _cleanup_free_ char *md5 = read_digest(u->local_path, "md5", 32);
        _cleanup_free_ char *sha256 = read_digest(u->local_path, "sha256", 64);
        struct provider *p = NULL;
        uint64_t delay = u->retry_ms;
        for (u->attempts = 1;; u->attempts++) {
                free(u->errmsg);
                u->errmsg = NULL;
                u->result = bw_prov_get(u->prov, &p, &u->errmsg);
                if (u->result >= 0)
                        u->result = p->ops->image_upload(p, u->local_path, u->format, md5, sha256, u->external_name,
                                                         u->tags, u->n_tags, &u->external_id, &u->errmsg);
                if (u->result >= 0) {
                        if (u->prov->post_upload_hook) run_hook(u);
                        return;
                }
                if (u->attempts >= BW_UPLOAD_ATTEMPTS) return;
                log_warning("upload %s of %s-%s to %s: attempt %d failed: %s; retrying in %llu ms", u->upload_id,
                            u->image, u->build_id, u->provider, u->attempts,
                            u->errmsg ? u->errmsg : strerror(-u->result), (unsigned long long)delay);
                if (!sleep_unless_stopped(u, delay)) return;
                delay *= 2;
        }
}

/* ---------------------------------------------------------------- loop */

struct store_edit {
        struct bw_up *u;
        enum image_upload_state state;
};

static int store_edit(struct zk_update_record *rec, void *ud) {
        const struct store_edit *c = ud;
        struct bw_up *u = c->u;
        _cleanup_(image_upload_freep) struct image_upload *up = NULL;
        struct model_error err = {};
        int r = image_upload_from_json(rec->data, rec->len, u->upload_id, &up, &err);
        if (r < 0) return r;
        image_upload_set_state(up, c->state);
        if (c->state == IMAGE_UPLOAD_STATE_READY || u->verify_state) {
                /* Also while checked: cleanup deletes the image with an abandoned record. */
                model_set_str(&up->external_id, u->external_id);
                model_set_str(&up->external_name, u->external_name);
                model_set_str(&up->format, u->format);
        }
        model_set_str(&up->verify_state, u->verify_state);
        model_set_str(&up->verify_reason, u->verify_reason);
        model_set_str(&up->verify_log, u->verify_log);
        model_set_str(&up->verify_server, u->verify_server);
        r = image_upload_to_json(up, &rec->new_data, &rec->new_len);
        return r < 0 ? r : ZK_UPDATE_WRITE;
}

/* Read-modify-write of the upload record (keeps keys we do not know), under
 * the upload lock we hold (kept). 0 or -errno. */
int bw_upload_store(struct bw *w, struct bw_up *u, enum image_upload_state state) {
        struct store_edit c = { .u = u, .state = state };
        struct zk_update_spec spec = {
                .path = u->path, .lock = TAKE_PTR(u->lock), .flags = ZK_UPDATE_KEEP_LOCK, .edit = store_edit,
                .userdata = &c,
        };
        int r = zk_update_run(w->b->zk, &spec, &u->lock);
        return MIN(r, 0);
}

static void failed(struct bw *w, struct bw_up *u, const char *why) {
        _cleanup_free_ char *key = xasprintf("%s/%s", u->image, u->provider);
        bw_backoff_set(&w->upload_backoff, key, loop_now_ms() + 12 * w->upload_retry_ms);
        log_error("upload %s of image %s-%s to %s failed: %s", u->upload_id, u->image, u->build_id, u->provider, why);
        int r = bw_upload_store(w, u, IMAGE_UPLOAD_STATE_FAILED);
        if (r < 0) log_warning_errno(r, "%s: cannot record the failure: %m", u->path);
}

static void up_done(void *ud, int status) {
        struct bw_up *u = ud;
        struct bw *w = u->w;
        if (status < 0) u->result = status;
        if (atomic_load(&u->abandoned)) {
                /* Timed out earlier and already recorded failed: drop what it made. */
                if (u->external_id) { /* also after a failed post-upload-hook */
                        log_info("upload %s finished after its timeout: deleting %s", u->upload_id, u->external_id);
                        bw_cleanup_delete_image(w, u->prov, u->external_id, NULL, NULL);
                }
                up_free(w, u);
                return;
        }
        up_unlink(w, u);
        statsd_builder_upload(w->statsd, u->image, u->provider, u->result >= 0, (double)(loop_now_ms() - u->start_ms));
        statsd_builder_upload_state(w->statsd, w->b->hostname, u->image, u->provider, 0);
        if (u->result >= 0 && bw_verify_wanted(w, u->image)) {
                if (!atomic_load(&w->stopping)) {
                        loop_timer_cancel(u->timeout); /* image-upload-timeout bounded the upload only */
                        u->timeout = NULL;
                        bw_verify_start(w, u); /* takes U over */
                        bw_wake(w);
                        return;
                }
                /* Never ready unchecked: deleted, the record failed (not by the check), uploaded again later. */
                log_info("upload %s: the builder stops before its check: deleting %s", u->upload_id, u->external_id);
                bw_cleanup_delete_image(w, u->prov, u->external_id, NULL, NULL);
                failed(w, u, "the builder stopped before the boot check");
        } else if (u->result >= 0) {
                int r = bw_upload_store(w, u, IMAGE_UPLOAD_STATE_READY);
                if (r < 0) {
                        /* The record vanished (deleted by an operator): the image is a leak now. */
                        log_warning_errno(r, "upload %s: cannot record %s as ready: %m; deleting it", u->path,
                                          u->external_id);
                        bw_cleanup_delete_image(w, u->prov, u->external_id, NULL, NULL);
                } else {
                        _cleanup_free_ char *key = xasprintf("%s/%s", u->image, u->provider);
                        free(smap_remove(&w->upload_backoff, key));
                        log_info("uploaded image %s-%s to %s as %s (upload %s, %d attempt%s)", u->image, u->build_id,
                                 u->provider, u->external_id, u->upload_id, u->attempts, u->attempts == 1 ? "" : "s");
                }
        } else {
                if (u->hook_failed) {
                        log_info("upload %s: post-upload-hook failed: deleting %s", u->upload_id, u->external_id);
                        bw_cleanup_delete_image(w, u->prov, u->external_id, NULL, NULL);
                }
                _cleanup_free_ char *why = xasprintf("%s (after %d attempt%s)",
                                                     u->errmsg ? u->errmsg : strerror(-u->result), u->attempts,
                                                     u->attempts == 1 ? "" : "s");
                failed(w, u, why);
        }
        zk_lock_release_async(u->lock);
        up_free(w, u);
        bw_wake(w);
}

static void on_timeout(struct loop *loop, struct loop_timer *t, void *ud) {
        struct bw_up *u = ud;
        struct bw *w = u->w;
        u->timeout = NULL; /* one-shot: freed by the loop */
        atomic_store(&u->abandoned, true);
        up_unlink(w, u);
        failed(w, u, "image-upload-timeout reached");
        zk_lock_release_async(u->lock);
        bw_wake(w);
}

static void add_tag(struct bw_up *u, const char *k, const char *v) {
        for (size_t i = 0; i < u->n_tags; i++)
                if (strcmp(u->tags[i].key, k) == 0) {
                        free((char *)u->tags[i].value);
                        u->tags[i].value = xstrdup(v);
                        return;
                }
        u->tags = xrealloc(u->tags, (u->n_tags + 1) * sizeof *u->tags);
        u->tags[u->n_tags++] = (struct provider_kv){ .key = xstrdup(k), .value = xstrdup(v ? v : "") };
}

/* Lock, re-check, create the record, queue the upload. The lock is ours. */
static void start(struct bw *w, struct upload_target *prov, const struct config_diskimage *d,
                  const struct config_provider_diskimage *pd, struct npzk_build *b, char *local,
                  const char *format, struct zk_lock *lock) {
        int r = bw_snap_read_has_ready_upload(w, d->name, b->id, prov->name);
        if (r != 0) {
                if (r < 0) log_warning_errno(r, "%s: cannot re-check uploads: %m", b->path);
                zk_lock_release_async(lock);
                zk_lock_free(lock);
                free(local);
                return;
        }
        struct bw_up *u = xnew(struct bw_up, 1);
        u->w = w;
        u->prov = bw_prov_ref(prov);
        u->lock = lock;
        u->local_path = local;
        u->image = xstrdup(d->name);
        u->build_id = xstrdup(b->id);
        u->provider = xstrdup(prov->name);
        u->format = xstrdup(format);
        u->retry_ms = w->upload_retry_ms;
        u->stopping = &w->stopping;
        atomic_init(&u->abandoned, false);
        r = bw_plan_image_name(prov->image_name_format, d->name, (long long)time(NULL), &u->external_name);
        if (r < 0) {
                log_error("provider %s: invalid image-name-format '%s'", prov->name, prov->image_name_format);
                zk_lock_release_async(u->lock);
                up_free(w, u);
                return;
        }

        _cleanup_(image_upload_freep) struct image_upload *rec = image_upload_new(NULL);
        image_upload_set_state(rec, IMAGE_UPLOAD_STATE_UPLOADING);
        model_set_str(&rec->username, b->b->username);
        model_set_str(&rec->python_path, b->b->python_path);
        model_set_str(&rec->shell_type, b->b->shell_type);
        _cleanup_free_ char *json = NULL, *dir = NULL, *seq = NULL, *created = NULL;
        size_t len = 0;
        r = image_upload_to_json(rec, &json, &len);
        if (r >= 0) {
                dir = npzk_uploads_path(d->name, b->id, prov->name); /* names checked by bw_upload_schedule */
                /* Nodepool creates "<dir>/" with sequence=True: the name is just the 10 digits. */
                seq = xasprintf("%s/", dir);
                r = zk_create(w->b->zk, seq, json, len, ZK_SEQUENCE | ZK_MAKEPATH, &created);
        }
        if (r < 0) {
                log_error_errno(r, "%s: cannot create the upload record: %m", b->path);
                zk_lock_release_async(u->lock);
                up_free(w, u);
                return;
        }
        u->path = xstrdup(created);
        u->upload_id = xstrdup(strrchr(created, '/') + 1);

        /* Tags: diskimage metadata, then the provider's meta, then ours. */
        for (size_t i = 0; i < d->metadata.n; i++) add_tag(u, d->metadata.items[i].key, d->metadata.items[i].value);
        for (size_t i = 0; pd && i < pd->meta.n; i++) add_tag(u, pd->meta.items[i].key, pd->meta.items[i].value);
        add_tag(u, "nodepool_build_id", b->id);
        add_tag(u, "nodepool_upload_id", u->upload_id);
        add_tag(u, "nodepool_provider_name", prov->name);

        u->deadline_ms = loop_now_ms() + prov->upload_timeout_ms;
        r = workq_submit(w->upload_wq, up_work, up_done, u);
        if (r < 0) {
                u->result = r;
                u->errmsg = xstrdup("upload queue full");
                failed(w, u, u->errmsg);
                zk_lock_release_async(u->lock);
                up_free(w, u);
                return;
        }
        u->next = w->uploads;
        w->uploads = u;
        w->n_uploads++;
        u->timeout = loop_add_timer(w->b->loop, prov->upload_timeout_ms, false, on_timeout, u);
        u->start_ms = loop_now_ms();
        statsd_builder_upload_state(w->statsd, w->b->hostname, u->image, u->provider, 2);
        log_info("uploading image %s-%s to %s as %s (upload %s)", u->image, u->build_id, u->provider,
                 u->external_name, u->upload_id);
}

void bw_upload_schedule(struct bw *w, struct bw_snap *s) {
        const struct config *c = w->b->config;
        for (size_t i = 0; i < w->n_provs; i++) {
                struct upload_target *prov = w->provs[i];
                const struct config_provider *cp = config_find_provider(c, prov->name);
                if (!cp) continue;
                _cleanup_free_ char *format = cp->n_diskimages ? provider_params_image_format(cp) : NULL;
                for (size_t k = 0; k < cp->n_diskimages; k++) {
                        if (w->n_uploads >= (size_t)w->b->upload_workers) return;
                        const struct config_provider_diskimage *pd = &cp->diskimages[k];
                        const struct config_diskimage *d = config_find_diskimage(c, pd->name);
                        if (pd->pause || !d || d->abstract) continue;
                        if (bw_upload_running(w, d->name, NULL, prov->name, NULL)) continue;
                        _cleanup_free_ char *key = xasprintf("%s/%s", d->name, prov->name);
                        if (bw_backoff_active(&w->upload_backoff, key)) continue;
                        struct npzk_image *im = bw_snap_image(s, d->name);
                        struct npzk_build *b = bw_snap_newest_ready(im);
                        if (!b || !model_strv_contains(b->b->formats, format)) continue;
                        /* Already uploaded, or being uploaded by someone holding the lock? */
                        struct npzk_provider *pr = bw_snap_prov(b, prov->name);
                        bool done = false;
                        for (size_t m = 0; pr && m < pr->n; m++) done |= bw_upload_settled(pr->ups[m].u);
                        if (done || (pr && pr->upload_lock > 0)) continue;
                        /* Only the builder that has the file can upload it. */
                        char *local = bw_upload_local_file(w, d->name, b->id, format);
                        if (!local) continue;

                        if (!npzk_name_ok(d->name) || !npzk_name_ok(prov->name)) {
                                free(local);
                                continue;
                        }
                        _cleanup_free_ char *lpath = npzk_upload_lock_path(d->name, b->id, prov->name);
                        struct zk_lock *lock = NULL;
                        int r = zk_lock_try_new(w->b->zk, lpath, NULL, &lock);
                        if (r != 1) {
                                if (r < 0) log_warning_errno(r, "%s: upload lock: %m", lpath);
                                free(local);
                                continue;
                        }
                        start(w, prov, d, pd, b, local, format, lock);
                }
        }
}

void bw_upload_stop_all(struct bw *w) {
        /* Workers see w->stopping and skip further retries; workq_free waits for
         * the calls in progress and runs up_done for each, recording the result. */
        for (struct bw_up *u = w->uploads; u; u = u->next) {
                loop_timer_cancel(u->timeout);
                u->timeout = NULL;
        }
}
