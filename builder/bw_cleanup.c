/* bw_cleanup.c — retention and deletion (protocol.md §4.1 Retention/cleanup).
 *
 * DESIGN. Every cleanup interval, from a snapshot of /nodepool/images:
 * - uploads: per (image, provider) the two newest READY uploads (across
 *   builds) and the newest one FAILED by its boot check (bw_verify.c, kept
 *   for inspection) stay; older READY ones, other FAILED ones, DELETING ones (also those
 *   marked by `poolctl image-delete`), unlocked UPLOADING ones (a crashed
 *   builder), uploads of DELETING/FAILED builds, and uploads to a provider
 *   that no longer lists the image are deleted: under the upload's own lock
 *   the record is set `deleting`, the cloud image deleted on the workq, then
 *   the znode removed.
 * - builds: the two newest READY builds per configured image stay (none of
 *   ours for an image removed from the config). An older READY build with no
 *   live upload is marked DELETING (as `poolctl dib-image-delete` does); a
 *   FAILED, DELETING or crashed BUILDING build of ours, once it has no
 *   uploads left, loses its local files and then its znode, except the
 *   image's newest finished build when it FAILED counting a failure: that
 *   record carries the image's build back-off (bw_build.c), so only its
 *   files go. An interrupted build is marked failed without counting. Other
 *   builders' files are theirs to remove.
 * - files in images-dir that belong to no build in ZooKeeper and to no build
 *   running here are removed.
 * - delete-after-upload: formats of READY builds uploaded everywhere are
 *   removed, except keep-formats (prune_formats).
 * - boot check logs (bw_verify.c keeps a failed check's log in
 *   build-log-dir): removed with their upload's record, and when no record
 *   names them and they are a day old (a record deleted elsewhere, a crash).
 * - leaked images: every provider's images carrying our tags
 *   (nodepool_provider_name, nodepool_build_id, nodepool_upload_id) whose
 *   upload ZooKeeper does not know, seen in two consecutive passes, are
 *   deleted. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bw.h"
#include "bw_plan.h"
#include "log.h"
#include "zk_lock.h"
#include "zk_update.h"

/* ---------------------------------------------------------------- cloud deletes */

struct del {
        struct bw *w;
        struct upload_target *prov;
        char *external_id, *record;
        char *verify_log;               /* removed with the record (NULL: none) */
        struct zk_lock *lock;
        int result;
        char *errmsg;
};

/* Remove the boot check log LOG (and a known_hosts left beside it). */
static void remove_verify_log(const char *log, const char *why) {
        _cleanup_free_ char *kh = xasprintf("%s.known_hosts", log);
        (void)unlink(kh);
        if (unlink(log) == 0) log_info("removed boot check log %s (%s)", log, why);
        else if (errno != ENOENT) log_warning_errno(errno, "cannot remove %s: %m", log);
}

static void del_work(void *ud) {
        struct del *d = ud;
        struct provider *p = NULL;
        d->result = bw_prov_get(d->prov, &p, &d->errmsg);
        if (d->result >= 0) d->result = p->ops->image_delete(p, d->external_id, &d->errmsg);
}

static void del_finish(struct del *d) {
        struct bw *w = d->w;
        if (d->result >= 0 || d->result == -ENOENT) {
                if (d->external_id) log_info("deleted image %s from provider %s", d->external_id, d->prov->name);
                if (d->record) {
                        int r = zk_delete_recursive(w->b->zk, d->record);
                        if (r < 0) log_warning_errno(r, "cannot delete %s: %m", d->record);
                        else log_info("deleted upload record %s", d->record);
                        if (r >= 0 && d->verify_log) remove_verify_log(d->verify_log, "its upload record is deleted");
                }
        } else
                log_warning("cannot delete image %s from provider %s: %s", d->external_id,
                            d->prov ? d->prov->name : "?", d->errmsg ? d->errmsg : strerror(-d->result));
        if (d->record) smap_remove(&w->deleting, d->record);
        /* The contender went with the record; otherwise this releases it. */
        zk_lock_free(d->lock);
        bw_prov_unref(w, d->prov);
        free(d->external_id);
        free(d->record);
        free(d->verify_log);
        free(d->errmsg);
        free(d);
        bw_wake(w);
}

static void del_done(void *ud, int status) {
        struct del *d = ud;
        if (status < 0) d->result = status;
        del_finish(d);
}

/* bw_cleanup_delete_image, and once RECORD is deleted VERIFY_LOG (taken, may be NULL) too. */
static void delete_image(struct bw *w, struct upload_target *prov, const char *external_id, const char *record,
                         struct zk_lock *lock, char *verify_log) {
        struct del *d = xnew(struct del, 1);
        d->w = w;
        d->verify_log = verify_log;
        d->prov = prov ? bw_prov_ref(prov) : NULL;
        d->external_id = xstrdup(external_id);
        d->record = xstrdup(record);
        d->lock = lock;
        if (record) smap_put(&w->deleting, record, NULL);
        if (!external_id || !prov) {
                /* Nothing in the cloud (the upload never got that far). */
                del_finish(d);
                return;
        }
        int r = workq_submit(w->misc_wq, del_work, del_done, d);
        if (r < 0) {
                d->result = r;
                del_finish(d);
        }
}

void bw_cleanup_delete_image(struct bw *w, struct upload_target *prov, const char *external_id, const char *record,
                             struct zk_lock *lock) {
        delete_image(w, prov, external_id, record, lock, NULL);
}

/* Where bw_verify.c keeps the boot check log of the upload at PATH (NULL: not an upload path). */
static char *verify_log_of(struct bw *w, const char *path) {
        struct npzk_path p;
        if (npzk_path_parse(path, &p) < 0) return NULL;
        char *log = NULL;
        if (p.kind == NPZK_UPLOAD) {
                _cleanup_free_ char *name = bw_plan_verify_log_name(p.image, p.build_id, p.provider, p.upload_id);
                log = xasprintf("%s/%s", w->b->config->build_log_dir, name);
        }
        npzk_path_done(&p);
        return log;
}

/* ---------------------------------------------------------------- uploads */

struct upload_del {
        struct bw *w;
        struct npzk_upload *up;
        struct upload_target *prov;
        const char *provider;
        struct image_upload *u;         /* as read under the lock */
        bool marking;                   /* the `deleting` write was wanted */
};

/* Under the upload's lock: may it go? Then `deleting`, unless it is already. */
static int delete_upload_edit(struct zk_update_record *rec, void *ud) {
        struct upload_del *c = ud;
        struct bw *w = c->w;
        if (rec->len == 0 || image_upload_from_json(rec->data, rec->len, c->up->id, &c->u, NULL) < 0)
                return -EBADMSG;
        if (c->u->state == IMAGE_UPLOAD_STATE_UPLOADING) {
                /* In progress unless nobody holds the upload lock of its directory. */
                struct npzk_path p;
                if (npzk_path_parse(c->up->path, &p) < 0) return -EINVAL;
                _cleanup_free_ char *dlock = npzk_upload_lock_path(p.image, p.build_id, p.provider);
                npzk_path_done(&p);
                if (zk_is_locked(w->b->zk, dlock) != 0) return -EBUSY;
        }
        if (c->u->external_id && !c->prov) {
                /* No way to reach that cloud from here. */
                log_debug("upload %s: provider %s not configured here; left alone", c->up->path, c->provider);
                return -EHOSTUNREACH;
        }
        if (c->u->state == IMAGE_UPLOAD_STATE_DELETING) return ZK_UPDATE_NO_WRITE;
        image_upload_set_state(c->u, IMAGE_UPLOAD_STATE_DELETING);
        c->marking = true;
        int r = image_upload_to_json(c->u, &rec->new_data, &rec->new_len);
        return r < 0 ? r : ZK_UPDATE_WRITE;
}

static void delete_upload(struct bw *w, struct npzk_upload *up, const char *provider, const char *why) {
        if (smap_contains(&w->deleting, up->path)) return;
        struct upload_del c = { .w = w, .up = up, .prov = bw_prov_find(w, provider), .provider = provider };
        _cleanup_free_ char *lpath = npzk_lock_path(up->path);
        struct zk_lock *lock = NULL;
        /* Re-read under the lock. */
        struct zk_update_spec spec = {
                .path = up->path, .lock_path = lpath, .flags = ZK_UPDATE_KEEP_LOCK, .edit = delete_upload_edit,
                .userdata = &c,
        };
        int r = zk_update_run(w->b->zk, &spec, &lock);
        _cleanup_(image_upload_freep) struct image_upload *u = c.u;
        if (r < 0) {
                if (c.marking) log_warning_errno(r, "%s: cannot mark deleting: %m", up->path);
                zk_lock_free(lock); /* released */
                return;
        }
        log_info("deleting upload %s (%s)", up->path, why);
        /* A checked upload's log goes with its record (named after the upload: the record's path is not trusted). */
        delete_image(w, c.prov, u->external_id, up->path, lock, u->verify_state ? verify_log_of(w, up->path) : NULL);
}

static bool image_in_provider(const struct config *c, const char *provider, const char *image) {
        const struct config_provider *cp = config_find_provider(c, provider);
        if (!cp) return true; /* unknown provider: not ours to judge */
        if (!config_find_diskimage(c, image)) return false;
        for (size_t i = 0; i < cp->n_diskimages; i++)
                if (strcmp(cp->diskimages[i].name, image) == 0) return true;
        return false;
}

static void cleanup_uploads(struct bw *w, struct npzk_image *im) {
        const struct config *c = w->b->config;
        /* Providers seen under any build of this image. */
        char **provs = model_strv_new();
        for (size_t j = 0; j < im->n; j++)
                for (size_t k = 0; k < im->builds[j].n; k++)
                        if (!model_strv_contains(provs, im->builds[j].provs[k].name))
                                model_strv_push(&provs, im->builds[j].provs[k].name);

        for (size_t p = 0; provs[p]; p++) {
                /* Every upload to this provider, across builds. */
                size_t n = 0;
                for (size_t j = 0; j < im->n; j++) {
                        struct npzk_provider *pr = bw_snap_prov(&im->builds[j], provs[p]);
                        n += pr ? pr->n : 0;
                }
                struct npzk_upload **ups = xnew(struct npzk_upload *, n + 1);
                struct npzk_build **bof = xnew(struct npzk_build *, n + 1);
                double *times = xnew(double, n + 1);
                bool *ready = xnew(bool, n + 1), *keep = xnew(bool, n + 1);
                size_t m = 0;
                for (size_t j = 0; j < im->n; j++) {
                        struct npzk_provider *pr = bw_snap_prov(&im->builds[j], provs[p]);
                        for (size_t k = 0; pr && k < pr->n; k++) {
                                ups[m] = &pr->ups[k];
                                bof[m] = &im->builds[j];
                                times[m] = ups[m]->u ? ups[m]->u->state_time : 0;
                                ready[m] = ups[m]->u && ups[m]->u->state == IMAGE_UPLOAD_STATE_READY;
                                m++;
                        }
                }
                bw_plan_keep_newest(times, ready, m, BW_KEEP_UPLOADS, keep);
                /* The newest upload that failed its boot check stays for inspection. */
                bool *vfailed = xnew(bool, m + 1), *keep_failed = xnew(bool, m + 1);
                for (size_t i = 0; i < m; i++)
                        vfailed[i] = ups[i]->u && ups[i]->u->state == IMAGE_UPLOAD_STATE_FAILED &&
                                     bw_upload_settled(ups[i]->u);
                bw_plan_keep_newest(times, vfailed, m, 1, keep_failed);
                bool listed = image_in_provider(c, provs[p], im->name);
                for (size_t i = 0; i < m; i++) {
                        struct image_upload *u = ups[i]->u;
                        struct image_build *b = bof[i]->b;
                        if (!u) continue; /* malformed: kept */
                        if (bw_upload_running(w, im->name, bof[i]->id, provs[p], ups[i]->id)) continue;
                        const char *why = NULL;
                        if (!listed) why = "image no longer in the provider";
                        else if (b && (b->state == IMAGE_BUILD_STATE_DELETING || b->state == IMAGE_BUILD_STATE_FAILED))
                                why = "its build is being deleted";
                        else if (u->state == IMAGE_UPLOAD_STATE_DELETING) why = "marked deleting";
                        else if (u->state == IMAGE_UPLOAD_STATE_FAILED && !keep_failed[i])
                                why = vfailed[i] ? "failed its boot check, a newer one did too" : "failed";
                        else if (u->state == IMAGE_UPLOAD_STATE_READY && !keep[i]) why = "older than the two newest";
                        else if (u->state == IMAGE_UPLOAD_STATE_UPLOADING && bw_snap_prov(bof[i], provs[p])->upload_lock == 0)
                                why = "upload abandoned";
                        if (why) delete_upload(w, ups[i], provs[p], why);
                }
                free(ups);
                free(bof);
                free(times);
                free(ready);
                free(keep);
                free(vfailed);
                free(keep_failed);
        }
        model_strv_free(provs);
}

/* ---------------------------------------------------------------- builds */

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
        if (remove(path) < 0) log_warning_errno(errno, "cannot remove %s: %m", path);
        return 0;
}

/* Remove every images-dir entry of build (image, build_id). */
static void remove_local_files(struct bw *w, const char *image, const char *build_id) {
        const char *dir = w->b->config->images_dir;
        DIR *d = opendir(dir);
        if (!d) return;
        struct dirent *de;
        char **victims = model_strv_new();
        while ((de = readdir(d))) {
                _cleanup_free_ char *im = NULL, *id = NULL;
                if (!bw_plan_parse_output(de->d_name, &im, &id)) continue;
                if (strcmp(im, image) == 0 && strcmp(id, build_id) == 0) model_strv_push(&victims, de->d_name);
        }
        closedir(d);
        for (size_t i = 0; victims[i]; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, victims[i]);
                (void)nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
        if (victims[0]) log_info("removed the local files of build %s-%s", image, build_id);
        model_strv_free(victims);
}

struct build_state {
        const char *id;
        enum image_build_state state;
};

static int build_state_edit(struct zk_update_record *rec, void *ud) {
        const struct build_state *c = ud;
        _cleanup_(image_build_freep) struct image_build *b = NULL;
        if (rec->len == 0 || image_build_from_json(rec->data, rec->len, c->id, &b, NULL) < 0) return -EBADMSG;
        if (b->state == c->state) return ZK_UPDATE_NO_WRITE;
        /* An interrupted build failed through no fault of its image: no back-off. */
        if (b->state == IMAGE_BUILD_STATE_BUILDING && c->state == IMAGE_BUILD_STATE_FAILED) b->failures = 0;
        image_build_set_state(b, c->state);
        int r = image_build_to_json(b, &rec->new_data, &rec->new_len);
        return r < 0 ? r : ZK_UPDATE_WRITE;
}

/* 0, -EBUSY (locked by someone else) or -errno. */
static int set_build_state(struct bw *w, struct npzk_build *br, enum image_build_state state) {
        _cleanup_free_ char *lpath = npzk_lock_path(br->path);
        struct build_state c = { .id = br->id, .state = state };
        struct zk_update_spec spec = { .path = br->path, .lock_path = lpath, .edit = build_state_edit, .userdata = &c };
        int r = zk_update_run(w->b->zk, &spec, NULL);
        return MIN(r, 0);
}

/* Delete build BR (ours, no uploads left): files, then the znode. */
static void delete_build(struct bw *w, struct npzk_image *im, struct npzk_build *br) {
        _cleanup_free_ char *lpath = npzk_lock_path(br->path);
        struct zk_lock *lock = NULL;
        if (zk_lock_try_new(w->b->zk, lpath, NULL, &lock) != 1) return;
        /* Re-check that no upload appeared meanwhile. */
        _cleanup_free_ char *pdir = npzk_providers_path(im->name, br->id);
        char **provs = NULL;
        size_t np = 0;
        bool uploads = false;
        int r = zk_get_children(w->b->zk, pdir, &provs, &np);
        for (size_t i = 0; r >= 0 && i < np && !uploads; i++) {
                _cleanup_free_ char *udir = npzk_uploads_path(im->name, br->id, provs[i]);
                char **ups = NULL;
                size_t nu = 0;
                if (zk_get_children(w->b->zk, udir, &ups, &nu) >= 0)
                        for (size_t k = 0; k < nu; k++) uploads |= strcmp(ups[k], NPZK_LOCK) != 0;
                zk_strv_free(ups);
        }
        zk_strv_free(provs);
        if ((r < 0 && r != -ENOENT) || uploads) {
                zk_lock_release_async(lock);
                zk_lock_free(lock);
                return;
        }
        remove_local_files(w, im->name, br->id);
        r = zk_delete_recursive(w->b->zk, br->path);
        if (r < 0) log_warning_errno(r, "cannot delete %s: %m", br->path);
        else log_info("deleted build %s-%s", im->name, br->id);
        zk_lock_free(lock);
}

static bool has_live_upload(struct npzk_build *br) {
        for (size_t k = 0; k < br->n; k++)
                for (size_t m = 0; m < br->provs[k].n; m++) {
                        struct image_upload *u = br->provs[k].ups[m].u;
                        if (!u || u->state == IMAGE_UPLOAD_STATE_READY || u->state == IMAGE_UPLOAD_STATE_UPLOADING)
                                return true; /* malformed counts as live: we do not know */
                }
        return false;
}

static bool has_any_upload(struct npzk_build *br) {
        for (size_t k = 0; k < br->n; k++)
                if (br->provs[k].n > 0) return true;
        return false;
}

static void cleanup_builds(struct bw *w, struct npzk_image *im) {
        const struct config_diskimage *d = config_find_diskimage(w->b->config, im->name);
        bool configured = d && !d->abstract;
        size_t n = im->n;
        double *times = xnew(double, n + 1);
        bool *ready = xnew(bool, n + 1), *keep = xnew(bool, n + 1);
        for (size_t j = 0; j < n; j++) {
                struct image_build *b = im->builds[j].b;
                times[j] = b ? b->state_time : 0;
                ready[j] = b && b->state == IMAGE_BUILD_STATE_READY;
        }
        bw_plan_keep_newest(times, ready, n, BW_KEEP_BUILDS, keep);
        /* poold_failures 0: stopped or interrupted, not failed by the image: no back-off to keep. */
        struct npzk_build *backoff = bw_snap_newest_finished(im);
        if (backoff && (backoff->b->state != IMAGE_BUILD_STATE_FAILED || backoff->b->failures == 0)) backoff = NULL;
        for (size_t j = 0; j < n; j++) {
                struct npzk_build *br = &im->builds[j];
                struct image_build *b = br->b;
                if (!b) continue; /* malformed: kept */
                bool ours = b->builder_id && strcmp(b->builder_id, w->b->builder_id) == 0;
                if (!configured && ours) keep[j] = false;
                if (bw_build_running(w, im->name, br->id)) continue;
                if (b->state == IMAGE_BUILD_STATE_BUILDING && im->build_lock > 0) continue; /* in progress */
                if (keep[j]) continue;
                switch (b->state) {
                case IMAGE_BUILD_STATE_READY:
                        if (has_live_upload(br)) break;
                        if (set_build_state(w, br, IMAGE_BUILD_STATE_DELETING) >= 0)
                                log_info("build %s-%s is past retention: deleting", im->name, br->id);
                        break;
                case IMAGE_BUILD_STATE_BUILDING:
                        /* Nobody holds the build lock: its builder died. */
                        if (!ours) break;
                        if (set_build_state(w, br, IMAGE_BUILD_STATE_FAILED) >= 0)
                                log_info("build %s-%s was interrupted: marked failed", im->name, br->id);
                        break;
                default:
                        /* FAILED / DELETING: uploads go first (cleanup_uploads), then files and znode. */
                        if (!ours || has_any_upload(br)) break;
                        if (br == backoff && configured) remove_local_files(w, im->name, br->id);
                        else delete_build(w, im, br);
                        break;
                }
        }
        free(times);
        free(ready);
        free(keep);
}

/* ---------------------------------------------------------------- delete-after-upload */

static bool provider_lists(const struct config_provider *cp, const char *image) {
        for (size_t i = 0; i < cp->n_diskimages; i++)
                if (strcmp(cp->diskimages[i].name, image) == 0) return true;
        return false;
}

/* Nodepool's BuildWorker._pruneLocalBuildFormats, for each READY build of a
 * diskimage with delete-after-upload: a local format goes (the image file and
 * its .md5/.sha256) unless keep-formats lists it or some provider listing the
 * image (paused too) has no READY upload of this build yet and uploads that
 * format. Each format is judged alone, as there. The build stays READY. */
static void prune_formats(struct bw *w, struct npzk_image *im) {
        const struct config *c = w->b->config;
        const struct config_diskimage *d = config_find_diskimage(c, im->name);
        if (!d || !d->delete_after_upload) return;
        for (size_t j = 0; j < im->n; j++) {
                struct npzk_build *br = &im->builds[j];
                if (!br->b || br->b->state != IMAGE_BUILD_STATE_READY) continue;
                char **keep = model_strv_new();
                for (size_t i = 0; i < d->keep_formats.n; i++) model_strv_push(&keep, d->keep_formats.items[i]);
                for (size_t i = 0; i < c->n_providers; i++) {
                        const struct config_provider *cp = &c->providers[i];
                        if (!provider_lists(cp, im->name)) continue;
                        struct npzk_provider *pr = bw_snap_prov(br, cp->name);
                        bool ready = false;
                        for (size_t m = 0; pr && m < pr->n; m++)
                                ready |= pr->ups[m].u && pr->ups[m].u->state == IMAGE_UPLOAD_STATE_READY;
                        if (ready) continue;
                        _cleanup_free_ char *fmt = provider_params_image_format(cp);
                        if (!model_strv_contains(keep, fmt)) model_strv_push(&keep, fmt);
                }
                for (char **f = br->b->formats; *f; f++) {
                        if (model_strv_contains(keep, *f)) continue;
                        static const char *const sfx[] = { "", ".md5", ".sha256" };
                        for (size_t k = 0; k < ELEMENTSOF(sfx); k++) {
                                _cleanup_free_ char *p = xasprintf("%s/%s-%s.%s%s", c->images_dir, im->name, br->id,
                                                                   *f, sfx[k]);
                                if (unlink(p) == 0)
                                        log_info("removed %s (delete-after-upload)", p);
                                else if (errno != ENOENT)
                                        log_warning_errno(errno, "cannot remove %s: %m", p);
                        }
                }
                model_strv_free(keep);
        }
}

/* ---------------------------------------------------------------- files */

static bool build_known(struct bw_snap *s, const char *image, const char *build_id) {
        struct npzk_image *im = bw_snap_image(s, image);
        for (size_t j = 0; im && j < im->n; j++)
                if (strcmp(im->builds[j].id, build_id) == 0) return true;
        return false;
}

static void cleanup_files(struct bw *w, struct bw_snap *s) {
        const char *dir = w->b->config->images_dir;
        DIR *d = opendir(dir);
        if (!d) return;
        char **victims = model_strv_new();
        struct dirent *de;
        while ((de = readdir(d))) {
                _cleanup_free_ char *im = NULL, *id = NULL;
                if (!bw_plan_parse_output(de->d_name, &im, &id)) continue;
                if (build_known(s, im, id) || bw_build_running(w, im, id)) continue;
                model_strv_push(&victims, de->d_name);
        }
        closedir(d);
        for (size_t i = 0; victims[i]; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, victims[i]);
                log_info("removing %s: its build is not in ZooKeeper", p);
                (void)nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
        model_strv_free(victims);
}

/* Boot check logs in build-log-dir (bw_plan_is_verify_log) that no upload
 * record in S names, by their name or their poold_verify log, and that are
 * BW_VERIFY_LOG_ORPHAN_S old: a fresher one may be a check just starting,
 * whose record does not name it yet. */
#define BW_VERIFY_LOG_ORPHAN_S (24 * 3600)

static void cleanup_verify_logs(struct bw *w, struct bw_snap *s) {
        const char *dir = w->b->config->build_log_dir;
        size_t dlen = strlen(dir);
        struct smap named = {};
        for (size_t i = 0; i < s->n; i++)
                for (size_t j = 0; j < s->images[i].n; j++) {
                        struct npzk_build *br = &s->images[i].builds[j];
                        for (size_t k = 0; k < br->n; k++)
                                for (size_t m = 0; m < br->provs[k].n; m++) {
                                        struct npzk_upload *up = &br->provs[k].ups[m];
                                        _cleanup_free_ char *name = bw_plan_verify_log_name(
                                                s->images[i].name, br->id, br->provs[k].name, up->id);
                                        smap_put(&named, name, NULL);
                                        const char *log = up->u ? up->u->verify_log : NULL;
                                        if (log && strncmp(log, dir, dlen) == 0 && log[dlen] == '/')
                                                smap_put(&named, log + dlen + 1, NULL);
                                }
                }
        DIR *d = opendir(dir);
        char **victims = model_strv_new();
        struct dirent *de;
        time_t now = time(NULL);
        while (d && (de = readdir(d))) {
                if (!bw_plan_is_verify_log(de->d_name)) continue;
                _cleanup_free_ char *log = xstrdup(de->d_name);
                char *kh = strstr(log, ".log.known_hosts");
                if (kh && kh[strlen(".log.known_hosts")] == 0) kh[strlen(".log")] = 0;
                if (smap_contains(&named, log)) continue;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) continue;
                if (now - st.st_mtime < BW_VERIFY_LOG_ORPHAN_S) continue;
                model_strv_push(&victims, de->d_name);
        }
        for (size_t i = 0; victims[i]; i++) {
                if (unlinkat(dirfd(d), victims[i], 0) == 0)
                        log_info("removed boot check log %s/%s (no upload record names it)", dir, victims[i]);
                else if (errno != ENOENT)
                        log_warning_errno(errno, "cannot remove %s/%s: %m", dir, victims[i]);
        }
        if (d) closedir(d);
        model_strv_free(victims);
        smap_clear(&named, NULL);
}

void bw_cleanup_pass(struct bw *w, struct bw_snap *s) {
        for (size_t i = 0; i < s->n; i++) {
                cleanup_uploads(w, &s->images[i]);
                cleanup_builds(w, &s->images[i]);
                prune_formats(w, &s->images[i]);
        }
        cleanup_files(w, s);
        cleanup_verify_logs(w, s);
}

/* ------------------------------------------------------- empty records */

/* A build or upload znode without data is never written by a builder (both
 * are created with their record); it is left when a lock was taken on a
 * record just deleted: the lock directory is made like kazoo's ensure_path,
 * which recreates the parent. Unlocked and holding nothing but its lock
 * directory, it is removed, instead of being skipped as malformed forever. */
struct empty_scan {
        char **paths;
};

static void empty_fn(const struct zk_cache_node *node, void *ud) {
        struct empty_scan *e = ud;
        if (node->len != 0 || node->lock_contenders != 0) return;
        struct npzk_path p = {};
        if (npzk_path_parse(node->path, &p) < 0) return;
        if (p.kind == NPZK_BUILD || p.kind == NPZK_UPLOAD) model_strv_push(&e->paths, node->path);
        npzk_path_done(&p);
}

static bool only_a_lock_dir(struct zk *zk, const char *path) {
        char **kids = NULL;
        size_t n = 0;
        if (zk_get_children(zk, path, &kids, &n) < 0) return false;
        bool ok = n == 0 || (n == 1 && strcmp(kids[0], NPZK_LOCK) == 0);
        zk_strv_free(kids);
        if (!ok || n == 0) return ok;
        _cleanup_free_ char *lock = npzk_lock_path(path);
        kids = NULL;
        if (zk_get_children(zk, lock, &kids, &n) < 0) return false;
        zk_strv_free(kids);
        return n == 0;
}

void bw_cleanup_empty_records(struct bw *w) {
        struct empty_scan e = { .paths = model_strv_new() };
        zk_cache_foreach(w->cache, empty_fn, &e);
        for (size_t i = 0; e.paths[i]; i++) {
                if (!only_a_lock_dir(w->b->zk, e.paths[i])) continue;
                int r = zk_delete_recursive(w->b->zk, e.paths[i]);
                if (r < 0 && r != -ENOENT) {
                        log_warning_errno(r, "%s: cannot remove the empty record: %m", e.paths[i]);
                        continue;
                }
                log_info("removed empty record %s (left by a lock taken after the record was deleted)", e.paths[i]);
                smap_remove(&w->bad, e.paths[i]);
        }
        model_strv_free(e.paths);
}

/* ---------------------------------------------------------------- leaks */

struct list_job {
        struct bw *w;
        struct upload_target *prov;
        struct provider_image **imgs;
        size_t n;
        int result;
        char *errmsg;
};

static void list_work(void *ud) {
        struct list_job *j = ud;
        struct provider *p = NULL;
        j->result = bw_prov_get(j->prov, &p, &j->errmsg);
        if (j->result >= 0) j->result = p->ops->image_list(p, &j->imgs, &j->n, &j->errmsg);
}

static bool upload_known(struct bw *w, struct bw_snap *s, const char *provider, const char *build_id,
                         const char *upload_id) {
        for (size_t i = 0; i < s->n; i++) {
                struct npzk_image *im = &s->images[i];
                for (size_t j = 0; j < im->n; j++) {
                        if (strcmp(im->builds[j].id, build_id) != 0) continue;
                        struct npzk_provider *pr = bw_snap_prov(&im->builds[j], provider);
                        for (size_t k = 0; pr && k < pr->n; k++)
                                if (strcmp(pr->ups[k].id, upload_id) == 0) return true;
                }
        }
        for (struct bw_up *u = w->uploads; u; u = u->next)
                if (strcmp(u->provider, provider) == 0 && strcmp(u->build_id, build_id) == 0 &&
                    u->upload_id && strcmp(u->upload_id, upload_id) == 0)
                        return true;
        return false;
}

struct forget_prefixed {
        struct smap *m;
        const char *prefix;
};

static void forget_prefixed_fn(const char *key, void *value, void *ud) {
        const struct forget_prefixed *f = ud;
        if (strncmp(key, f->prefix, strlen(f->prefix)) == 0) smap_remove(f->m, key);
}

static void put_fn(const char *key, void *value, void *ud) { smap_put(ud, key, value); }

static void list_done(void *ud, int status) {
        struct list_job *j = ud;
        struct bw *w = j->w;
        w->leak_lists--;
        if (status < 0) j->result = status;
        if (j->result < 0) {
                if (j->result != -ECANCELED)
                        log_warning("provider %s: cannot list images: %s", j->prov->name,
                                    j->errmsg ? j->errmsg : strerror(-j->result));
        } else if (!atomic_load(&w->stopping) && zk_cache_is_synced(w->cache)) {
                struct bw_snap s = {};
                bw_snap_load(w, &s);
                _cleanup_free_ char *prefix = xasprintf("%s/", j->prov->name);
                struct smap seen = {};
                for (size_t i = 0; i < j->n; i++) {
                        struct provider_image *img = j->imgs[i];
                        const char *pn = provider_image_tag(img, "nodepool_provider_name");
                        const char *bid = provider_image_tag(img, "nodepool_build_id");
                        const char *uid = provider_image_tag(img, "nodepool_upload_id");
                        if (!pn || !bid || !uid || strcmp(pn, j->prov->name) != 0) continue;
                        if (upload_known(w, &s, pn, bid, uid)) continue;
                        _cleanup_free_ char *key = xasprintf("%s%s", prefix, img->external_id);
                        if (smap_contains(&w->leak_seen, key)) {
                                log_info("provider %s: image %s (build %s, upload %s) is unknown to ZooKeeper: "
                                         "deleting the leak", pn, img->external_id, bid, uid);
                                bw_cleanup_delete_image(w, j->prov, img->external_id, NULL, NULL);
                        } else {
                                log_info("provider %s: image %s is unknown to ZooKeeper; deleting it if still "
                                         "so at the next pass", pn, img->external_id);
                                smap_put(&seen, key, NULL);
                        }
                }
                /* Replace this provider's entries by what was seen now. */
                smap_foreach(&w->leak_seen, forget_prefixed_fn,
                             &(struct forget_prefixed){ .m = &w->leak_seen, .prefix = prefix });
                smap_foreach(&seen, put_fn, &w->leak_seen);
                smap_clear(&seen, NULL);
                bw_snap_done(&s);
        }
        provider_image_array_free(j->imgs, j->n);
        bw_prov_unref(w, j->prov);
        free(j->errmsg);
        free(j);
}

void bw_cleanup_leaks(struct bw *w) {
        if (w->leak_lists > 0) return; /* the previous scan is still running */
        for (size_t i = 0; i < w->n_provs; i++) {
                struct list_job *j = xnew(struct list_job, 1);
                j->w = w;
                j->prov = bw_prov_ref(w->provs[i]);
                if (workq_submit(w->misc_wq, list_work, list_done, j) < 0) {
                        bw_prov_unref(w, j->prov);
                        free(j);
                        continue;
                }
                w->leak_lists++;
        }
}
