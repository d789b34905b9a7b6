/* json_util.h — small jansson helpers for decoding untrusted records totally
 * (typed getters that report, never abort) and for overlaying known fields
 * onto a record read earlier so unknown keys survive a rewrite.
 *
 * Getter contract: obj is a JSON object; on success *ret is set (strings are
 * malloc'd copies the caller frees, opaque values carry a new reference) and
 * 0 is returned; on a type mismatch -EINVAL is returned, err names the key,
 * and *ret is untouched. Any thread may call these on values it owns. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Parse data[0..len) as one JSON object: rejects len > MODEL_JSON_MAX,
 * non-objects, nesting deeper than MODEL_JSON_MAX_DEPTH, and syntax errors
 * (-EINVAL, -E2BIG); *ret gets a new reference. */
int json_util_parse_object(const char *data, size_t len, json_t **ret, struct model_error *err);

/* Missing -> copy of def (may be NULL); null -> NULL; string -> copy (strings
 * holding NUL bytes are rejected); anything else -> -EINVAL. */
int json_util_get_str(json_t *obj, const char *key, const char *def, char **ret, struct model_error *err);
/* Missing/null -> empty strv; array of strings -> strv; else -EINVAL. */
int json_util_get_strv(json_t *obj, const char *key, char ***ret, struct model_error *err);
/* Missing/null -> MODEL_TIME_NONE; any JSON number -> double; else -EINVAL. */
int json_util_get_time(json_t *obj, const char *key, double *ret, struct model_error *err);
/* Missing -> def; integer -> value; else -EINVAL. */
int json_util_get_int(json_t *obj, const char *key, int64_t def, int64_t *ret, struct model_error *err);
/* Missing -> *ret_set = false; null -> false; integer -> true + value; else -EINVAL. */
int json_util_get_opt_int(json_t *obj, const char *key, bool *ret_set, int64_t *ret, struct model_error *err);
/* Missing -> def; true/false -> value; else -EINVAL. */
int json_util_get_bool(json_t *obj, const char *key, bool def, bool *ret, struct model_error *err);
/* Any value, kept as is (new reference); missing -> NULL. Never fails. */
json_t *json_util_get_opaque(json_t *obj, const char *key);

/* Setters overlay one key on obj (existing keys keep their position).
 * -EINVAL when a string is not valid UTF-8; allocation failure aborts. */
int json_util_set_str(json_t *obj, const char *key, const char *s);             /* NULL -> null */
int json_util_set_strv(json_t *obj, const char *key, char *const *l);           /* NULL -> [] */
/* NAN -> null. An existing number with the same value is left alone so an
 * integer written by someone else stays an integer. */
void json_util_set_time(json_t *obj, const char *key, double t);
void json_util_set_int(json_t *obj, const char *key, int64_t v);
void json_util_set_opt_int(json_t *obj, const char *key, bool set, int64_t v);  /* !set -> null */
void json_util_set_bool(json_t *obj, const char *key, bool v);
void json_util_set_opaque(json_t *obj, const char *key, json_t *v);             /* NULL -> null; borrows v */

/* A fresh object to overlay on: a shallow copy of raw (NULL -> empty object). */
json_t *json_util_overlay_base(json_t *raw);

/* Serialize obj (key order preserved, doubles round-trip exactly) into a
 * malloc'd NUL-terminated string; -E2BIG above MODEL_JSON_MAX. */
int json_util_dump(json_t *obj, char **ret, size_t *ret_len);

/* Abort on NULL from a jansson constructor that can only fail on OOM. */
json_t *json_util_must(json_t *v);

/* For _cleanup_(json_util_decrefp). */
static inline void json_util_decrefp(json_t **p) {
        if (*p) json_decref(*p);
}
