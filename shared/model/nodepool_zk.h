/* nodepool_zk.h — Nodepool's ZooKeeper schema in one place: every /nodepool
 * path, built from its parts and parsed back into them, and the decoder of
 * the /nodepool/images tree (protocol.md §1.3, §1.6, §1.7, §1.8).
 *
 * Why shared/model and not shared/zk: this is the data model's "where", as
 * model_*.c are its "what". It does no I/O (callers read ZooKeeper or their
 * cache and hand the znodes in), so it is pure, unit-tested without a server,
 * and zk/ stays free of Nodepool. Symbols carry the prefix npzk_ (NodePool
 * ZooKeeper).
 *
 * Builders return a malloc'd path (caller frees), never NULL, from the parts
 * as given: parts from ZooKeeper are one path component by construction;
 * check anything a user typed with npzk_name_ok() first. Any thread. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "model_image.h"

#define NPZK_ROOT "/nodepool"
#define NPZK_REQUESTS NPZK_ROOT "/requests"           /* <PPP>-<seq10>: NodeRequest */
#define NPZK_REQUEST_LOCKS NPZK_ROOT "/requests-lock" /* <request id>/: kazoo lock contenders */
#define NPZK_NODES NPZK_ROOT "/nodes"                 /* <seq10>: Node; <seq10>/lock/: its lock */
#define NPZK_IMAGES NPZK_ROOT "/images"               /* the image tree, below */
#define NPZK_COMPONENTS NPZK_ROOT "/components"       /* {launcher,builder,pool}/<host><seq10> */
#define NPZK_ELECTIONS NPZK_ROOT "/elections"         /* <name>/: kazoo Election (= Lock) */
#define NPZK_LAUNCHERS NPZK_ROOT "/launchers"         /* Nodepool ≤ 3.x; read by nobody now */
/* poold's own shared locks, <kind>/<name>[/<sub>]. Not Nodepool's (it ignores them). */
#define NPZK_POOLD_LOCKS NPZK_ROOT "/poold-locks"
/* The child of a record or directory that holds its kazoo lock contenders. */
#define NPZK_LOCK "lock"

/* NAME is one path component: non-empty, no '/', not "." or "..". */
bool npzk_name_ok(const char *name);

char *npzk_request_path(const char *id);
/* "/nodepool/requests/<PPP>-": create a sequence child here; PPP is the
 * priority zero-padded to 3 digits (protocol.md §1.4). */
char *npzk_request_prefix(int priority);
char *npzk_request_lock_path(const char *id);
char *npzk_node_path(const char *id);
char *npzk_node_lock_path(const char *id);
/* "<path>/lock": the lock of any record or directory. */
char *npzk_lock_path(const char *path);

char *npzk_image_path(const char *image);
char *npzk_image_pause_path(const char *image);
char *npzk_image_request_build_path(const char *image);
char *npzk_builds_path(const char *image);
/* <image>/builds/lock: the per-image build lock (one builder builds an image). */
char *npzk_build_lock_path(const char *image);
char *npzk_build_path(const char *image, const char *build_id);
char *npzk_providers_path(const char *image, const char *build_id);
char *npzk_provider_path(const char *image, const char *build_id, const char *provider);
/* .../providers/<p>/images: parent of the uploads (create sequence children here). */
char *npzk_uploads_path(const char *image, const char *build_id, const char *provider);
/* .../providers/<p>/images/lock: the upload lock of (build, provider). */
char *npzk_upload_lock_path(const char *image, const char *build_id, const char *provider);
char *npzk_upload_path(const char *image, const char *build_id, const char *provider, const char *upload_id);

char *npzk_component_dir(const char *kind);
/* "<dir>/<hostname>": create the component's ephemeral sequence znode here. */
char *npzk_component_prefix(const char *kind, const char *hostname);
char *npzk_election_path(const char *name);
/* NPZK_POOLD_LOCKS/KIND/NAME[/SUB] (SUB may be NULL). */
char *npzk_poold_lock_path(const char *kind, const char *name, const char *sub);

/* ---- parsing ---- */

enum npzk_kind {
        NPZK_REQUEST,           /* requests/<id> */
        NPZK_REQUEST_LOCK,      /* requests-lock/<id> */
        NPZK_NODE,              /* nodes/<id> */
        NPZK_NODE_LOCK,         /* nodes/<id>/lock */
        NPZK_IMAGE,             /* images/<image> */
        NPZK_IMAGE_PAUSE,       /* images/<image>/pause */
        NPZK_IMAGE_REQUEST,     /* images/<image>/request-build */
        NPZK_BUILDS,            /* images/<image>/builds */
        NPZK_BUILD_LOCK,        /* images/<image>/builds/lock */
        NPZK_BUILD,             /* .../builds/<build> */
        NPZK_BUILD_RECORD_LOCK, /* .../builds/<build>/lock */
        NPZK_PROVIDERS,         /* .../builds/<build>/providers */
        NPZK_PROVIDER,          /* .../providers/<provider> */
        NPZK_UPLOADS,           /* .../providers/<provider>/images */
        NPZK_UPLOAD_LOCK,       /* .../providers/<provider>/images/lock */
        NPZK_UPLOAD,            /* .../images/<upload> */
        NPZK_UPLOAD_RECORD_LOCK,/* .../images/<upload>/lock */
        _NPZK_KIND_MAX,
        _NPZK_KIND_INVALID = -EINVAL,
};

/* K is a path under NPZK_IMAGES. */
bool npzk_kind_in_image_tree(enum npzk_kind k);

/* A parsed path: the parts its kind has are set (malloc'd), the others NULL. */
struct npzk_path {
        enum npzk_kind kind;
        char *id;               /* request or node id */
        char *image, *build_id, *provider, *upload_id;
};

/* Parse PATH into *ret (npzk_path_done frees). -EINVAL when PATH is none of
 * the kinds above: not under /nodepool, a wrong depth or literal, an empty
 * or "."/".." part, a trailing '/', or NULL. A part named "lock" where an id
 * belongs is a lock, never an id. *ret untouched on failure. */
int npzk_path_parse(const char *path, struct npzk_path *ret);
void npzk_path_done(struct npzk_path *p);
/* The path of P (the inverse of npzk_path_parse); NULL for an invalid kind. */
char *npzk_path_format(const struct npzk_path *p);

/* ---- the /nodepool/images tree ---- */

/* One znode of the image tree, as read from ZooKeeper or a zk_cache. */
struct npzk_znode {
        const char *path;
        const char *data;               /* NULL: known to exist, not read */
        size_t len;
        int64_t ctime_ms;
        unsigned lock_contenders;       /* children of <path>/lock */
};

/* Decode the build or upload record of ZN. Returns its kind (NPZK_BUILD with
 * *ret_build, NPZK_UPLOAD with *ret_upload whose image_name, build_id and
 * provider_name are filled from the path; caller frees; a NULL pointer
 * leaves that kind undecoded), another kind (>= 0,
 * nothing decoded) for the tree's flags, directories and locks and for a
 * record without data (ZN->data NULL), -EINVAL for a path outside the tree,
 * -EBADMSG for a malformed record (empty data included; ERR says why when
 * not NULL). */
int npzk_image_record_decode(const struct npzk_znode *zn, struct image_build **ret_build,
                             struct image_upload **ret_upload, struct model_error *err);

struct npzk_upload {
        char *id, *path;
        char *data;                     /* the raw record; NULL: not read */
        size_t len;
        struct image_upload *u;         /* NULL: not read, empty or malformed */
        unsigned lock;                  /* contenders on <path>/lock */
};
struct npzk_provider {
        char *name;
        unsigned upload_lock;           /* contenders on .../providers/<p>/images/lock */
        struct npzk_upload *ups;
        size_t n;
};
struct npzk_build {
        char *id, *path;
        char *data;                     /* the raw record; NULL: not read */
        size_t len;
        struct image_build *b;          /* NULL: not read, empty or malformed */
        unsigned lock;                  /* contenders on <path>/lock */
        struct npzk_provider *provs;
        size_t n;
};
struct npzk_image {
        char *name;
        bool paused, requested;         /* the pause / request-build flags exist */
        double request_time;            /* ctime of request-build, seconds */
        unsigned build_lock;            /* contenders on <image>/builds/lock */
        struct npzk_build *builds;
        size_t n;
};
struct npzk_images {
        struct npzk_image *images;
        size_t n;
};

/* Put ZN into T, creating its ancestors' entries, and decode it with
 * npzk_image_record_decode(). A record added again replaces the first one.
 * Returns the kind (>= 0); -EINVAL for a path outside the tree (T
 * unchanged); -EBADMSG for a malformed record, which is kept with a NULL
 * decoded pointer so that nobody uses or deletes what they do not
 * understand (ERR says why). Logs nothing: callers decide how often to say so. */
int npzk_images_add(struct npzk_images *t, const struct npzk_znode *zn, struct model_error *err);
/* Sort images, builds, providers and uploads by name. */
void npzk_images_sort(struct npzk_images *t);
void npzk_images_done(struct npzk_images *t);
struct npzk_image *npzk_images_find(const struct npzk_images *t, const char *image);
struct npzk_provider *npzk_build_provider(const struct npzk_build *b, const char *provider);
