/* bw.h — the builder's work: builds, uploads and cleanup, recorded in
 * ZooKeeper as Nodepool's builder does (protocol.md §1.3, §1.6, §4.1).
 *
 * Modules (one .c each), all on the loop thread unless said otherwise:
 *   bw_main.c     start/stop, the /nodepool/images cache, when passes run
 *   bw_snap.c     the cache decoded into a tree (images → builds → providers → uploads)
 *   bw_build.c    build scheduling, the per-image build lock, the child process
 *   bw_upload.c   upload scheduling, upload locks, uploads on the workq
 *   bw_verify.c   the boot check of a new upload before it is ready (poold.verify)
 *   bw_cleanup.c  retention, deletion of builds/uploads/files, leaked images
 *   bw_prov.c     provider instances (opened lazily on worker threads)
 *   bw_plan.c     pure decisions (bw_plan.h)
 * The only public entry points are bw_new/bw_start/bw_config_changed/bw_free
 * (called from main.c); the rest is shared between the modules. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "builder.h"
#include "config.h"
#include "loop.h"
#include "model_image.h"
#include "nodepool_zk.h"
#include "provider.h"
#include "provider_params.h"
#include "smap.h"
#include "workq.h"
#include "zk.h"
#include "statsd.h"
#include "zk_cache.h"

#define BW_KEEP_BUILDS 2
#define BW_KEEP_UPLOADS 2
#define BW_UPLOAD_ATTEMPTS 3

struct bw;
struct bw_job;
struct bw_up;
struct bw_verify;
struct upload_target;

/* ---- public (main.c) ---- */

/* Create the work state for B (loop, zk, config are B's); nothing runs yet.
 * Reads POOLD_BUILDER_INTERVAL_MS (scheduling pass, 10 s),
 * POOLD_CLEANUP_INTERVAL_MS (cleanup and leak pass, 60 s),
 * POOLD_BUILD_RETRY_MS (wait after a failed build, 60 s, doubled after
 * each further failure in a row up to POOLD_BUILD_RETRY_MAX_MS, 1 h) and
 * POOLD_UPLOAD_RETRY_MS (first retry delay inside an upload, 5 s; then after
 * a failed upload 12x that before the next). POOLD_UPLOAD_TIMEOUT_MS
 * overrides image-upload-timeout (which the libvirt driver's schema lacks).
 * 0 or -errno (logged). */
int bw_new(struct builder *b, struct bw **ret);
/* Start watching /nodepool/images; passes begin once it is read. Call after
 * the ZooKeeper session first connects. Idempotent. */
void bw_start(struct bw *w);
/* B->config was replaced: re-match providers; a pass follows. */
void bw_config_changed(struct bw *w);
/* Stop: running builds are killed and recorded failed, running uploads are
 * waited for, locks released. NULL ok. */
void bw_free(struct bw *w);

/* ---- shared between the modules ---- */

/* A decoded view of the cache, rebuilt for every pass: nodepool_zk.h's image
 * tree (the one decoder every reader of /nodepool/images shares). Malformed
 * records are kept with a NULL decoded pointer so they are neither used nor
 * deleted. The builder calls the whole tree a snapshot (bw_snap_*). */
#define bw_snap npzk_images

/* A running build (bw_build.c). */
struct bw_job {
        struct bw_job *next;
        struct bw *w;
        char *image, *build_id, *path, *output_base, *log_path;
        char **formats;
        char *username, *python_path, *shell_type;
        bool requested;                 /* a request-build existed when it started */
        uint64_t prev_failures;         /* failed builds of the image in a row before this one */
        struct zk_lock *lock;
        struct cmd *cmd;
        int log_fd;
        uint64_t generation;            /* ZooKeeper session it started in */
        uint64_t start_ms;
};

/* A running upload (bw_upload.c). Fields below `worker` are written by the
 * worker thread and read by the loop only after the job is done. */
struct bw_up {
        struct bw_up *next;
        struct bw *w;
        struct upload_target *prov;
        char *image, *build_id, *provider, *upload_id, *path;
        char *local_path, *format, *external_name;
        struct provider_kv *tags;
        size_t n_tags;
        struct zk_lock *lock;
        struct loop_timer *timeout;
        atomic_bool abandoned;          /* timed out: the loop no longer waits for it */
        uint64_t retry_ms;
        uint64_t start_ms;              /* for the statsd upload timer */
        uint64_t deadline_ms;           /* image-upload-timeout, also bounds post-upload-hook */
        atomic_bool *stopping;
        /* worker */
        int result;
        int attempts;
        char *external_id;
        char *errmsg;
        bool hook_failed;               /* uploaded, then post-upload-hook failed */
        /* poold_verify written with the record when verify_state is set (bw_verify.c) */
        char *verify_state, *verify_reason, *verify_log, *verify_server;
};

struct bw {
        struct builder *b;
        struct zk_cache *cache;
        struct workq *upload_wq;        /* uploads */
        struct workq *misc_wq;          /* image list/delete for cleanup */
        struct loop_prepare *prepare;
        struct loop_timer *tick, *cleanup_timer;
        bool started, dirty;
        atomic_bool stopping;
        uint64_t interval_ms, cleanup_ms, build_retry_ms, build_retry_max_ms, upload_retry_ms;
        char *self_exe, *pkg_dir;

        struct bw_job *builds;          /* running here */
        size_t n_builds;
        struct bw_up *uploads;          /* running here (not abandoned) */
        size_t n_uploads;
        struct bw_verify *verifies;     /* uploads being checked by booting them */
        size_t n_verifies;
        unsigned leftover_lists;        /* leftover verify server list jobs in flight */
        struct upload_target **provs;         /* current providers */
        size_t n_provs;
        struct upload_target **retired;       /* replaced on reload, freed when unused */
        size_t n_retired;

        struct smap bad;                /* set: malformed record paths, logged once */
        struct smap build_backoff;      /* image -> uint64_t *: no build before (also recorded in ZooKeeper) */
        struct smap upload_backoff;     /* "<image>/<provider>" -> uint64_t *: no upload before */
        struct smap deleting;           /* set: upload paths with a cloud delete in flight */
        struct smap leak_seen;          /* set: "<provider>/<external id>" seen last pass */
        unsigned leak_lists;            /* list jobs in flight */
        struct statsd *statsd;          /* NULL unless STATSD_HOST/PORT are set */
        char *requests_sent;            /* the request-build images last sent as gauges ("a\nb\n"), or NULL */
        uint64_t requests_sent_ms;      /* when (loop_now_ms()) */
};

/* bw_main.c */
/* Back-off maps (key -> allocated uint64_t deadline; drop one with free(smap_remove())):
 * set or move KEY's deadline to UNTIL_MS. */
void bw_backoff_set(struct smap *m, const char *key, uint64_t until_ms);
/* True when KEY has a deadline still ahead; an expired entry is dropped. */
bool bw_backoff_active(struct smap *m, const char *key);
/* Ask for a scheduling pass before the loop sleeps. */
void bw_wake(struct bw *w);

/* bw_snap.c */
/* Decode the cache into *ret (bw_snap_done frees). Malformed records are
 * logged once per path. */
void bw_snap_load(struct bw *w, struct bw_snap *ret);
void bw_snap_done(struct bw_snap *s);
struct npzk_image *bw_snap_image(struct bw_snap *s, const char *name);
struct npzk_provider *bw_snap_prov(struct npzk_build *b, const char *provider);
/* The newest READY build of IMG (greatest state_time) or NULL. */
struct npzk_build *bw_snap_newest_ready(struct npzk_image *img);
/* The newest READY or FAILED build of IMG or NULL: a FAILED one means the
 * image is failing (its record carries the back-off). */
struct npzk_build *bw_snap_newest_finished(struct npzk_image *img);
/* What scheduling needs of an image's builds, read from ZooKeeper. */
struct bw_newest {
        bool have_ready;                /* a READY build exists */
        double ready_time;              /* the newest one's state_time */
        char **ready_formats;           /* ... and formats (caller frees) */
        bool failed;                    /* the newest READY-or-FAILED build failed */
        double failed_time;             /* its state_time, poold_failures, poold_retry_time */
        long long failures;
        double retry_time;
};
/* Read the builds of IMAGE straight from ZooKeeper (re-checks under a
 * lock): 0 and *ret (all false/empty when there are none), or -errno. */
int bw_snap_read_newest(struct bw *w, const char *image, struct bw_newest *ret);
/* Whether an upload of BUILD_ID to PROVIDER is settled (bw_upload_settled),
 * read from ZooKeeper. */
int bw_snap_read_has_ready_upload(struct bw *w, const char *image, const char *build_id, const char *provider);

/* bw_build.c */
void bw_build_schedule(struct bw *w, struct bw_snap *s);
bool bw_build_running(struct bw *w, const char *image, const char *build_id);
/* Kill every running build, record it failed, release its lock. */
void bw_build_stop_all(struct bw *w);

/* bw_upload.c */
void bw_upload_schedule(struct bw *w, struct bw_snap *s);
/* An upload of (image, build, provider) running here (upload_id NULL: any). */
bool bw_upload_running(struct bw *w, const char *image, const char *build_id, const char *provider,
                       const char *upload_id);
/* The local file of a build in FORMAT, or NULL if it is not here (malloc'd). */
char *bw_upload_local_file(struct bw *w, const char *image, const char *build_id, const char *format);
/* Abandon timed-out bookkeeping at stop (the workq waits for the workers). */
void bw_upload_stop_all(struct bw *w);
/* An upload that ends the build's uploading to its provider: READY, or FAILED
 * by the boot check (kept for inspection, that build is not uploaded again). */
bool bw_upload_settled(const struct image_upload *u);
/* Read-modify-write of U's record to STATE (external id/name/format when
 * READY or while checked, poold_verify from u->verify_*), under U's lock (kept). */
int bw_upload_store(struct bw *w, struct bw_up *u, enum image_upload_state state);
/* Free U (not linked in w->uploads): its lock is released by the caller first. */
void bw_upload_free(struct bw *w, struct bw_up *u);

/* bw_verify.c */
/* Whether IMAGE's uploads are checked by booting them (poold.verify). */
bool bw_verify_wanted(struct bw *w, const char *image);
/* Take over upload U, uploaded (u->external_id set) and holding its lock:
 * record it `uploading` + poold_verify checking, boot and check it, record it
 * ready or failed, release the lock, free U. */
void bw_verify_start(struct bw *w, struct bw_up *u);
/* A check of (image, build, provider[, upload]) running here (build_id/upload_id NULL: any). */
bool bw_verify_running(struct bw *w, const char *image, const char *build_id, const char *provider,
                       const char *upload_id);
/* End every check at stop (not as a verify failure); call before the workqs are freed. */
void bw_verify_stop_all(struct bw *w);
/* Delete verify servers this builder left behind (crash, stop) on every
 * provider uploading an image with poold.verify. */
void bw_verify_leftovers(struct bw *w);

/* bw_cleanup.c */
void bw_cleanup_pass(struct bw *w, struct bw_snap *s);
/* Start the leaked-image scan on every provider (results come back later). */
void bw_cleanup_leaks(struct bw *w);
/* Remove build and upload znodes without data that hold only an empty lock
 * directory (left by a lock taken just after their record was deleted). */
void bw_cleanup_empty_records(struct bw *w);
/* Delete cloud image EXTERNAL_ID (may be NULL: nothing in the cloud) of PROV
 * on the workq, then, if RECORD is set, that znode and everything below it.
 * LOCK (taken over, may be NULL) is released at the end. */
void bw_cleanup_delete_image(struct bw *w, struct upload_target *prov, const char *external_id, const char *record,
                             struct zk_lock *lock);

/* bw_prov.c: a provider as the builder uploads to it (its params, lazily opened
 * driver instance, upload settings). */
struct upload_target {
        char *name;
        char *canonical;                /* config text, to see a change on reload */
        char *image_name_format;
        char *post_upload_hook;         /* NULL: none */
        uint64_t upload_timeout_ms;     /* image-upload-timeout (POOLD_UPLOAD_TIMEOUT_MS overrides) */
        struct config *cfg;             /* a reference: params borrow from it across reloads */
        struct provider_params_owned params;
        pthread_mutex_t mu;
        struct provider *p;             /* opened on first use, under mu */
        unsigned refs;                  /* jobs using it */
};
/* Re-match w->provs to the config: unchanged ones stay, others are retired. */
void bw_prov_sync(struct bw *w);
struct upload_target *bw_prov_find(struct bw *w, const char *name);
/* Take/drop a reference for a job; dropping the last one of a retired
 * provider frees it. Loop thread. */
struct upload_target *bw_prov_ref(struct upload_target *p);
void bw_prov_unref(struct bw *w, struct upload_target *p);
/* The open driver instance, opening it if needed. Worker thread (blocking).
 * 0 and *ret (owned by P), or -errno with *reterr_msg. */
int bw_prov_get(struct upload_target *p, struct provider **ret, char **reterr_msg);
void bw_prov_free_all(struct bw *w);
