/* json_util.c — total decoding helpers and field overlay for records.
 *
 * DESIGN: every ZooKeeper record is decoded from untrusted bytes, so each
 * getter checks the JSON type and reports a short message instead of
 * asserting. Encoding overlays known fields onto a shallow copy of the object
 * we read, which is how keys written by Zuul (or a newer Nodepool) survive. */
#include "json_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

json_t *json_util_must(json_t *v) {
        if (!v) {
                /* jansson constructors fail only on OOM here: same policy as xmalloc. */
                static const char msg[] = "fatal: out of memory in jansson\n";
                if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) { /* nothing more to do */ }
                abort();
        }
        return v;
}

/* Depth of nesting, stopping early once past max (so the walk is bounded too). */
static bool depth_ok(json_t *v, unsigned depth) {
        if (depth > MODEL_JSON_MAX_DEPTH) return false;
        if (json_is_object(v)) {
                const char *k;
                json_t *c;
                json_object_foreach(v, k, c)
                        if (!depth_ok(c, depth + 1)) return false;
        } else if (json_is_array(v)) {
                size_t i;
                json_t *c;
                json_array_foreach(v, i, c)
                        if (!depth_ok(c, depth + 1)) return false;
        }
        return true;
}

int json_util_parse_object(const char *data, size_t len, json_t **ret, struct model_error *err) {
        json_error_t jerr;

        if (!data) return model_error_set(err, EINVAL, "no data");
        if (len > MODEL_JSON_MAX) return model_error_set(err, E2BIG, "record of %zu bytes exceeds %d", len, MODEL_JSON_MAX);
        if (len == 0) return model_error_set(err, EINVAL, "empty record");

        /* ALLOW_NUL: Python may write "\u0000" inside opaque values; typed
         * string getters reject it where we would need a C string. */
        json_t *v = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
        if (!v) return model_error_set(err, EINVAL, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                                       jerr.text);
        if (!json_is_object(v)) {
                json_decref(v);
                return model_error_set(err, EINVAL, "record is not a JSON object");
        }
        if (!depth_ok(v, 0)) {
                json_decref(v);
                return model_error_set(err, EINVAL, "record nested deeper than %d", MODEL_JSON_MAX_DEPTH);
        }
        *ret = v;
        return 0;
}

static const char *type_name(json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "object";
        case JSON_ARRAY: return "array";
        case JSON_STRING: return "string";
        case JSON_INTEGER: return "integer";
        case JSON_REAL: return "float";
        case JSON_TRUE:
        case JSON_FALSE: return "boolean";
        case JSON_NULL: return "null";
        }
        return "unknown";
}

static int wrong_type(struct model_error *err, const char *key, const char *want, json_t *got) {
        return model_error_set(err, EINVAL, "key \"%s\": expected %s, got %s", key, want, type_name(got));
}

/* A JSON string usable as a C string (no embedded NUL). */
static bool is_c_string(json_t *v) {
        return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

int json_util_get_str(json_t *obj, const char *key, const char *def, char **ret, struct model_error *err) {
        json_t *v = json_object_get(obj, key);

        if (!v) {
                *ret = xstrdup(def);
                return 0;
        }
        if (json_is_null(v)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v)) return wrong_type(err, key, "string", v);
        if (!is_c_string(v)) return model_error_set(err, EINVAL, "key \"%s\": string contains NUL", key);
        *ret = xstrdup(json_string_value(v));
        return 0;
}

int json_util_get_strv(json_t *obj, const char *key, char ***ret, struct model_error *err) {
        json_t *v = json_object_get(obj, key), *e;
        size_t i;

        if (!v || json_is_null(v)) {
                *ret = model_strv_new();
                return 0;
        }
        if (!json_is_array(v)) return wrong_type(err, key, "list of strings", v);
        json_array_foreach(v, i, e)
                if (!is_c_string(e))
                        return model_error_set(err, EINVAL, "key \"%s\": element %zu is not a string", key, i);

        char **l = xnew(char *, json_array_size(v) + 1);
        json_array_foreach(v, i, e)
                l[i] = xstrdup(json_string_value(e));
        *ret = l;
        return 0;
}

int json_util_get_time(json_t *obj, const char *key, double *ret, struct model_error *err) {
        json_t *v = json_object_get(obj, key);

        if (!v || json_is_null(v)) {
                *ret = MODEL_TIME_NONE;
                return 0;
        }
        if (!json_is_number(v)) return wrong_type(err, key, "number", v);
        *ret = json_number_value(v);
        return 0;
}

int json_util_get_int(json_t *obj, const char *key, int64_t def, int64_t *ret, struct model_error *err) {
        json_t *v = json_object_get(obj, key);

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v)) return wrong_type(err, key, "integer", v);
        *ret = json_integer_value(v);
        return 0;
}

int json_util_get_opt_int(json_t *obj, const char *key, bool *ret_set, int64_t *ret, struct model_error *err) {
        json_t *v = json_object_get(obj, key);

        if (!v || json_is_null(v)) {
                *ret_set = false;
                *ret = 0;
                return 0;
        }
        if (!json_is_integer(v)) return wrong_type(err, key, "integer or null", v);
        *ret_set = true;
        *ret = json_integer_value(v);
        return 0;
}

int json_util_get_bool(json_t *obj, const char *key, bool def, bool *ret, struct model_error *err) {
        json_t *v = json_object_get(obj, key);

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_boolean(v)) return wrong_type(err, key, "boolean", v);
        *ret = json_is_true(v);
        return 0;
}

json_t *json_util_get_opaque(json_t *obj, const char *key) {
        return json_incref(json_object_get(obj, key));
}

static json_t *str_value(const char *s) {
        if (!s) return json_util_must(json_null());
        /* json_string() fails on invalid UTF-8 as well as OOM; tell them apart. */
        json_t *v = json_string(s);
        return v;
}

int json_util_set_str(json_t *obj, const char *key, const char *s) {
        json_t *v = str_value(s);
        if (!v) return -EINVAL;
        json_object_set_new(obj, key, v);
        return 0;
}

int json_util_set_strv(json_t *obj, const char *key, char *const *l) {
        json_t *a = json_util_must(json_array());

        for (size_t i = 0; l && l[i]; i++) {
                json_t *v = str_value(l[i]);
                if (!v) {
                        json_decref(a);
                        return -EINVAL;
                }
                json_array_append_new(a, v);
        }
        json_object_set_new(obj, key, a);
        return 0;
}

void json_util_set_time(json_t *obj, const char *key, double t) {
        json_t *cur = json_object_get(obj, key);

        if (isnan(t)) {
                json_object_set_new(obj, key, json_util_must(json_null()));
                return;
        }
        if (cur && json_is_number(cur) && json_number_value(cur) == t) return;
        if (isinf(t)) {
                /* JSON has no infinity; null is the only faithful-enough value. */
                json_object_set_new(obj, key, json_util_must(json_null()));
                return;
        }
        json_object_set_new(obj, key, json_util_must(json_real(t)));
}

void json_util_set_int(json_t *obj, const char *key, int64_t v) {
        json_object_set_new(obj, key, json_util_must(json_integer(v)));
}

void json_util_set_opt_int(json_t *obj, const char *key, bool set, int64_t v) {
        if (set)
                json_util_set_int(obj, key, v);
        else
                json_object_set_new(obj, key, json_util_must(json_null()));
}

void json_util_set_bool(json_t *obj, const char *key, bool v) {
        json_object_set_new(obj, key, json_util_must(json_boolean(v)));
}

void json_util_set_opaque(json_t *obj, const char *key, json_t *v) {
        json_object_set(obj, key, v ? v : json_null());
}

json_t *json_util_overlay_base(json_t *raw) {
        /* Shallow: only top-level keys are replaced, nested values are shared. */
        return json_util_must(raw ? json_copy(raw) : json_object());
}

int json_util_dump(json_t *obj, char **ret, size_t *ret_len) {
        /* Precision 17 makes every double round-trip; Python's repr is shorter
         * but parses to the same value. */
        size_t need = json_dumpb(obj, NULL, 0, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (need == 0) return -EINVAL;
        if (need > MODEL_JSON_MAX) return -E2BIG;

        char *buf = xmalloc(need + 1);
        size_t n = json_dumpb(obj, buf, need, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (n != need) {
                free(buf);
                return -EINVAL;
        }
        buf[n] = '\0';
        *ret = buf;
        if (ret_len) *ret_len = n;
        return 0;
}
