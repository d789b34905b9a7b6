/* model_image.c — ImageBuild/ImageUpload <-> JSON (paths: nodepool_zk.c).
 *
 * DESIGN: same overlay scheme as model_node.c. ImageBuild's toDict() omits
 * builder, builder_id and formats when unset, so the overlay deletes those
 * keys rather than writing null. */
#include "model_image.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "json_util.h"

static const char *const build_state_table[_IMAGE_BUILD_STATE_MAX] = {
        [IMAGE_BUILD_STATE_BUILDING] = "building",
        [IMAGE_BUILD_STATE_READY] = "ready",
        [IMAGE_BUILD_STATE_DELETING] = "deleting",
        [IMAGE_BUILD_STATE_FAILED] = "failed",
};

static const char *const upload_state_table[_IMAGE_UPLOAD_STATE_MAX] = {
        [IMAGE_UPLOAD_STATE_UPLOADING] = "uploading",
        [IMAGE_UPLOAD_STATE_READY] = "ready",
        [IMAGE_UPLOAD_STATE_DELETING] = "deleting",
        [IMAGE_UPLOAD_STATE_FAILED] = "failed",
};

static int table_lookup(const char *const *table, int n, const char *s) {
        if (!s) return -EINVAL;
        for (int i = 0; i < n; i++)
                if (strcmp(table[i], s) == 0) return i;
        return -EINVAL;
}

const char *image_build_state_to_string(enum image_build_state s) {
        return s >= 0 && s < _IMAGE_BUILD_STATE_MAX ? build_state_table[s] : NULL;
}

enum image_build_state image_build_state_from_string(const char *s) {
        return (enum image_build_state)table_lookup(build_state_table, _IMAGE_BUILD_STATE_MAX, s);
}

const char *image_upload_state_to_string(enum image_upload_state s) {
        return s >= 0 && s < _IMAGE_UPLOAD_STATE_MAX ? upload_state_table[s] : NULL;
}

enum image_upload_state image_upload_state_from_string(const char *s) {
        return (enum image_upload_state)table_lookup(upload_state_table, _IMAGE_UPLOAD_STATE_MAX, s);
}

struct image_build *image_build_new(const char *id) {
        struct image_build *b = xnew(struct image_build, 1);
        b->id = xstrdup(id);
        b->state = IMAGE_BUILD_STATE_BUILDING;
        b->state_time = MODEL_TIME_NONE;
        b->formats = model_strv_new();
        b->failures = -1;
        b->retry_time = MODEL_TIME_NONE;
        return b;
}

void image_build_free(struct image_build *b) {
        if (!b) return;
        free(b->id);
        free(b->builder);
        free(b->builder_id);
        model_strv_free(b->formats);
        free(b->username);
        free(b->python_path);
        free(b->shell_type);
        json_decref(b->raw);
        free(b);
}

struct image_upload *image_upload_new(const char *id) {
        struct image_upload *u = xnew(struct image_upload, 1);
        u->id = xstrdup(id);
        u->state = IMAGE_UPLOAD_STATE_UPLOADING;
        u->state_time = MODEL_TIME_NONE;
        return u;
}

void image_upload_free(struct image_upload *u) {
        if (!u) return;
        char **strs[] = { &u->id,       &u->build_id,      &u->provider_name, &u->image_name, &u->external_id,
                          &u->external_name, &u->format, &u->username,      &u->python_path, &u->shell_type,
                          &u->verify_state, &u->verify_reason, &u->verify_log, &u->verify_server };
        for (size_t i = 0; i < ELEMENTSOF(strs); i++) free(*strs[i]);
        json_decref(u->raw);
        free(u);
}

static int get_state(json_t *obj, const char *const *table, int n, const char *what, int *ret,
                     struct model_error *err) {
        _cleanup_free_ char *s = NULL;
        int r = json_util_get_str(obj, "state", NULL, &s, err);
        if (r < 0) return r;
        if (!s) return model_error_set(err, EINVAL, "key \"state\": missing");
        int st = table_lookup(table, n, s);
        if (st < 0) return model_error_set(err, EINVAL, "key \"state\": unknown %s state \"%.40s\"", what, s);
        *ret = st;
        return 0;
}

/* Python: formats = d['formats'].split(',') when non-empty (empty parts kept). */
static char **split_formats(const char *s) {
        char **l = model_strv_new();
        if (!s || !*s) return l;
        for (;;) {
                const char *c = strchr(s, ',');
                _cleanup_free_ char *part = xstrndup(s, c ? (size_t)(c - s) : strlen(s));
                model_strv_push(&l, part);
                if (!c) break;
                s = c + 1;
        }
        return l;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int image_build_from_json(const char *data, size_t len, const char *id, struct image_build **ret,
                          struct model_error *err) {
        _cleanup_(json_util_decrefp) json_t *obj = NULL;
        _cleanup_(image_build_freep) struct image_build *b = NULL;
        _cleanup_free_ char *formats = NULL;
        int r, st;

        r = json_util_parse_object(data, len, &obj, err);
        if (r < 0) return r;

        b = xnew(struct image_build, 1);
        b->id = xstrdup(id);
        if ((r = get_state(obj, build_state_table, _IMAGE_BUILD_STATE_MAX, "build", &st, err)) < 0) return r;
        b->state = (enum image_build_state)st;
        if ((r = json_util_get_time(obj, "state_time", &b->state_time, err)) < 0 ||
            (r = json_util_get_str(obj, "builder", NULL, &b->builder, err)) < 0 ||
            (r = json_util_get_str(obj, "builder_id", NULL, &b->builder_id, err)) < 0 ||
            (r = json_util_get_str(obj, "formats", NULL, &formats, err)) < 0 ||
            (r = json_util_get_str(obj, "username", "zuul", &b->username, err)) < 0 ||
            (r = json_util_get_str(obj, "python_path", "/usr/bin/python2", &b->python_path, err)) < 0 ||
            (r = json_util_get_str(obj, "shell_type", NULL, &b->shell_type, err)) < 0)
                return r;
        b->formats = split_formats(formats);
        /* Ours alone: a bad value must not make Nodepool's record unreadable. */
        json_t *f = json_object_get(obj, "poold_failures"), *t = json_object_get(obj, "poold_retry_time");
        b->failures = json_is_integer(f) && json_integer_value(f) >= 0 ? (int64_t)json_integer_value(f) : -1;
        b->retry_time = json_is_number(t) && isfinite(json_number_value(t)) ? json_number_value(t) : MODEL_TIME_NONE;
        b->raw = TAKE_PTR(obj);

        *ret = TAKE_PTR(b);
        return 0;
}

int image_build_to_json(const struct image_build *b, char **ret, size_t *ret_len) {
        _cleanup_(json_util_decrefp) json_t *o = json_util_overlay_base(b->raw);
        const char *state = image_build_state_to_string(b->state);
        int r = 0;

        if (!state) return -EINVAL;
        r |= json_util_set_str(o, "state", state);
        json_util_set_time(o, "state_time", b->state_time);
        /* toDict() writes these three only when set. */
        if (b->builder)
                r |= json_util_set_str(o, "builder", b->builder);
        else
                json_object_del(o, "builder");
        if (b->builder_id)
                r |= json_util_set_str(o, "builder_id", b->builder_id);
        else
                json_object_del(o, "builder_id");

        size_t n = model_strv_length(b->formats);
        if (n > 0) {
                _cleanup_free_ char **sorted = xnew(char *, n + 1);
                size_t total = 0;
                memcpy(sorted, b->formats, n * sizeof(char *));
                qsort(sorted, n, sizeof(char *), cmp_str);
                for (size_t i = 0; i < n; i++) total += strlen(sorted[i]) + 1;
                _cleanup_free_ char *joined = xmalloc(total);
                char *p = joined;
                for (size_t i = 0; i < n; i++) {
                        size_t l = strlen(sorted[i]);
                        memcpy(p, sorted[i], l);
                        p += l;
                        *p++ = i + 1 < n ? ',' : '\0';
                }
                r |= json_util_set_str(o, "formats", joined);
        } else {
                json_object_del(o, "formats");
        }
        r |= json_util_set_str(o, "username", b->username);
        r |= json_util_set_str(o, "python_path", b->python_path);
        r |= json_util_set_str(o, "shell_type", b->shell_type);
        if (r != 0) return -EINVAL;
        if (b->failures >= 0)
                json_util_set_int(o, "poold_failures", b->failures);
        else
                json_object_del(o, "poold_failures");
        if (!isnan(b->retry_time))
                json_util_set_time(o, "poold_retry_time", b->retry_time);
        else
                json_object_del(o, "poold_retry_time");

        return json_util_dump(o, ret, ret_len);
}

int image_upload_from_json(const char *data, size_t len, const char *id, struct image_upload **ret,
                           struct model_error *err) {
        _cleanup_(json_util_decrefp) json_t *obj = NULL;
        _cleanup_(image_upload_freep) struct image_upload *u = NULL;
        int r, st;

        r = json_util_parse_object(data, len, &obj, err);
        if (r < 0) return r;

        u = xnew(struct image_upload, 1);
        u->id = xstrdup(id);
        if ((r = get_state(obj, upload_state_table, _IMAGE_UPLOAD_STATE_MAX, "upload", &st, err)) < 0) return r;
        u->state = (enum image_upload_state)st;
        if ((r = json_util_get_time(obj, "state_time", &u->state_time, err)) < 0 ||
            (r = json_util_get_str(obj, "external_id", NULL, &u->external_id, err)) < 0 ||
            (r = json_util_get_str(obj, "external_name", NULL, &u->external_name, err)) < 0 ||
            (r = json_util_get_str(obj, "format", NULL, &u->format, err)) < 0 ||
            (r = json_util_get_str(obj, "username", "zuul", &u->username, err)) < 0 ||
            (r = json_util_get_str(obj, "python_path", "/usr/bin/python2", &u->python_path, err)) < 0 ||
            (r = json_util_get_str(obj, "shell_type", NULL, &u->shell_type, err)) < 0)
                return r;
        json_t *v = json_object_get(obj, "poold_verify");
        if (json_is_object(v)) {
                const char *keys[] = { "state", "reason", "log", "server" };
                char **dst[] = { &u->verify_state, &u->verify_reason, &u->verify_log, &u->verify_server };
                for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                        const char *t = json_string_value(json_object_get(v, keys[i]));
                        *dst[i] = t ? xstrdup(t) : NULL;
                }
        }
        u->raw = TAKE_PTR(obj);

        *ret = TAKE_PTR(u);
        return 0;
}

int image_upload_to_json(const struct image_upload *u, char **ret, size_t *ret_len) {
        _cleanup_(json_util_decrefp) json_t *o = json_util_overlay_base(u->raw);
        const char *state = image_upload_state_to_string(u->state);
        int r = 0;

        if (!state) return -EINVAL;
        r |= json_util_set_str(o, "state", state);
        json_util_set_time(o, "state_time", u->state_time);
        r |= json_util_set_str(o, "external_id", u->external_id);
        r |= json_util_set_str(o, "external_name", u->external_name);
        r |= json_util_set_str(o, "format", u->format);
        r |= json_util_set_str(o, "username", u->username);
        r |= json_util_set_str(o, "python_path", u->python_path);
        r |= json_util_set_str(o, "shell_type", u->shell_type);
        if (u->verify_state) {
                json_t *v = json_object();
                const char *keys[] = { "state", "reason", "log", "server" };
                const char *vals[] = { u->verify_state, u->verify_reason, u->verify_log, u->verify_server };
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (vals[i]) r |= json_object_set_new(v, keys[i], json_string(vals[i]));
                r |= json_object_set_new(o, "poold_verify", v);
        } else
                json_object_del(o, "poold_verify");
        if (r != 0) return -EINVAL;

        return json_util_dump(o, ret, ret_len);
}

void image_build_set_state(struct image_build *b, enum image_build_state s) {
        b->state = s;
        b->state_time = model_now();
}

void image_upload_set_state(struct image_upload *u, enum image_upload_state s) {
        u->state = s;
        u->state_time = model_now();
}
