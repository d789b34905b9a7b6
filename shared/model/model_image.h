/* model_image.h — Nodepool's ImageBuild and ImageUpload records
 * (protocol.md §1.6); the paths they live at are nodepool_zk.h's.
 *
 * Decoded records keep the JSON they came from (raw), so rewrites keep keys
 * we do not know. Any thread may use a record it owns. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "model.h"

enum image_build_state {
        IMAGE_BUILD_STATE_BUILDING,
        IMAGE_BUILD_STATE_READY,
        IMAGE_BUILD_STATE_DELETING,
        IMAGE_BUILD_STATE_FAILED,
        _IMAGE_BUILD_STATE_MAX,
        _IMAGE_BUILD_STATE_INVALID = -EINVAL,
};

enum image_upload_state {
        IMAGE_UPLOAD_STATE_UPLOADING,
        IMAGE_UPLOAD_STATE_READY,
        IMAGE_UPLOAD_STATE_DELETING,
        IMAGE_UPLOAD_STATE_FAILED,
        _IMAGE_UPLOAD_STATE_MAX,
        _IMAGE_UPLOAD_STATE_INVALID = -EINVAL,
};

const char *image_build_state_to_string(enum image_build_state s);     /* NULL when out of range */
enum image_build_state image_build_state_from_string(const char *s);   /* _INVALID when unknown/NULL */
const char *image_upload_state_to_string(enum image_upload_state s);
enum image_upload_state image_upload_state_from_string(const char *s);

struct image_build {
        char *id;                 /* build id: 32 hex (uuid4) or legacy 10 digits; not in the JSON */
        enum image_build_state state;
        double state_time;        /* MODEL_TIME_NONE = null */
        char *builder;            /* hostname; key omitted when NULL */
        char *builder_id;         /* key omitted when NULL */
        char **formats;           /* never NULL; written sorted, comma-joined, omitted when empty */
        char *username;           /* read default "zuul" */
        char *python_path;        /* read default "/usr/bin/python2" */
        char *shell_type;
        /* poold's own keys on a failed build (Nodepool ignores unknown keys):
         * "poold_failures", failed builds of the image in a row, this one
         * included, and "poold_retry_time", when a builder tries again. A
         * value of the wrong type reads as absent. */
        int64_t failures;         /* -1 = absent */
        double retry_time;        /* MODEL_TIME_NONE = absent */
        json_t *raw;
};

struct image_upload {
        char *id;                 /* upload id (10 digits); not in the JSON */
        char *build_id;           /* from the path, filled by the caller; not in the JSON */
        char *provider_name;      /* likewise */
        char *image_name;         /* likewise */
        enum image_upload_state state;
        double state_time;
        char *external_id;        /* cloud image id */
        char *external_name;
        char *format;
        char *username;           /* read default "zuul" */
        char *python_path;        /* read default "/usr/bin/python2" */
        char *shell_type;
        /* poold's own key "poold_verify" (Nodepool ignores unknown keys), set
         * when the builder boots the upload to check it (diskimages[].poold.verify):
         * {"state": "checking" while the record stays uploading, "passed" once
         * ready, "failed" once failed; "reason": why it failed; "log": the check's
         * log file on the builder; "server": the server booted}. Absent, or not
         * an object: all NULL; a member of the wrong type reads as NULL. */
        char *verify_state, *verify_reason, *verify_log, *verify_server;
        json_t *raw;
};

/* New records with Nodepool's constructor defaults (state building/uploading,
 * nulls, no formats). id may be NULL. */
struct image_build *image_build_new(const char *id);
void image_build_free(struct image_build *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct image_build *, image_build_free);
struct image_upload *image_upload_new(const char *id);
void image_upload_free(struct image_upload *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct image_upload *, image_upload_free);

/* Decode/encode; same contracts as node_from_json()/node_to_json() (model_node.h). */
int image_build_from_json(const char *data, size_t len, const char *id, struct image_build **ret,
                          struct model_error *err);
int image_build_to_json(const struct image_build *b, char **ret, size_t *ret_len);
int image_upload_from_json(const char *data, size_t len, const char *id, struct image_upload **ret,
                           struct model_error *err);
int image_upload_to_json(const struct image_upload *u, char **ret, size_t *ret_len);

void image_build_set_state(struct image_build *b, enum image_build_state s);   /* state_time = now */
void image_upload_set_state(struct image_upload *u, enum image_upload_state s);
