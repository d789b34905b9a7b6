/* dynprops.c — see dynprops.h.
 *
 * DESIGN: the request's safe attributes become one JSON object, fields walk it
 * ([KEY] steps), and values print through a small Python str()/repr() of JSON
 * values, so what a job sees in its server metadata matches Nodepool's text. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dbuf.h"
#include "dynprops.h"

/* A capped buffer that remembers it overflowed (checked once at the end). */
struct out {
        struct dbuf d;
        bool too_big;
};

static void put(struct out *b, const char *s, size_t n) {
        if (dbuf_add(&b->d, s, n) < 0)
                b->too_big = true;
}

static void puts_(struct out *b, const char *s) {
        put(b, s, strlen(s));
}

/* Python's repr() of a str: single quotes unless it holds ' and no ". */
static void py_repr_str(struct out *b, const char *s) {
        char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
        put(b, &q, 1);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                char tmp[8];
                if (*p == '\\' || *p == (unsigned char)q) {
                        tmp[0] = '\\';
                        tmp[1] = (char)*p;
                        put(b, tmp, 2);
                } else if (*p == '\n')
                        puts_(b, "\\n");
                else if (*p == '\r')
                        puts_(b, "\\r");
                else if (*p == '\t')
                        puts_(b, "\\t");
                else if (*p < 0x20 || *p == 0x7f) {
                        snprintf(tmp, sizeof tmp, "\\x%02x", *p);
                        puts_(b, tmp);
                } else
                        put(b, (const char *)p, 1);
        }
        put(b, &q, 1);
}

/* Python's repr() of a float: the shortest text that reads back the same. */
static void py_float(struct out *b, double v) {
        char tmp[40];
        if (isnan(v)) {
                puts_(b, "nan");
                return;
        }
        if (isinf(v)) {
                puts_(b, v < 0 ? "-inf" : "inf");
                return;
        }
        int prec = 1;
        for (; prec < 17; prec++) {
                snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
                if (strtod(tmp, NULL) == v)
                        break;
        }
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        int exp = atoi(strchr(tmp, 'e') + 1);
        if (exp >= -4 && exp < 16) {
                /* Positional, as Python's repr between 1e-4 and 1e16. */
                snprintf(tmp, sizeof tmp, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, v);
                puts_(b, tmp);
                if (!strchr(tmp, '.'))
                        puts_(b, ".0");
                return;
        }
        puts_(b, tmp);
}

static void py_repr(struct out *b, json_t *v);

static void py_str(struct out *b, json_t *v) {
        if (json_is_string(v))
                puts_(b, json_string_value(v));
        else
                py_repr(b, v);
}

static void py_repr(struct out *b, json_t *v) {
        char tmp[32];
        size_t i;
        const char *k;
        json_t *e;
        switch (json_typeof(v)) {
        case JSON_STRING:
                py_repr_str(b, json_string_value(v));
                break;
        case JSON_INTEGER:
                snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                puts_(b, tmp);
                break;
        case JSON_REAL:
                py_float(b, json_real_value(v));
                break;
        case JSON_TRUE:
                puts_(b, "True");
                break;
        case JSON_FALSE:
                puts_(b, "False");
                break;
        case JSON_NULL:
                puts_(b, "None");
                break;
        case JSON_ARRAY:
                puts_(b, "[");
                json_array_foreach(v, i, e) {
                        if (i)
                                puts_(b, ", ");
                        py_repr(b, e);
                }
                puts_(b, "]");
                break;
        case JSON_OBJECT:
                puts_(b, "{");
                i = 0;
                json_object_foreach(v, k, e) {
                        if (i++)
                                puts_(b, ", ");
                        py_repr_str(b, k);
                        puts_(b, ": ");
                        py_repr(b, e);
                }
                puts_(b, "}");
                break;
        }
}

static json_t *str_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

/* Nodepool's NodeRequest.getSafeAttributes(). */
static json_t *safe_attributes(const struct node_request *rq) {
        json_t *labels = json_array();
        for (char **t = rq->node_types; t && *t; t++)
                json_array_append_new(labels, json_string(*t));
        json_t *a = json_object();
        json_object_set_new(a, "id", str_or_null(rq->id));
        json_object_set_new(a, "labels", labels);
        json_object_set_new(a, "requestor", str_or_null(rq->requestor));
        json_object_set(a, "requestor_data", rq->requestor_data ? rq->requestor_data : json_null());
        json_object_set_new(a, "relative_priority", json_integer(rq->relative_priority));
        json_object_set_new(a, "event_id", str_or_null(rq->event_id));
        json_object_set_new(a, "created_time", isnan(rq->created_time) ? json_null() : json_real(rq->created_time));
        json_object_set_new(a, "tenant_name", str_or_null(rq->tenant_name));
        return a;
}

static int fail(char **reterr_msg, const char *fmt, const char *what) _printf_(2, 0);
static int fail(char **reterr_msg, const char *fmt, const char *what) {
        if (reterr_msg)
                *reterr_msg = xasprintf(fmt, what);
        return -EINVAL;
}

/* One field (the text between the braces) into B. */
static int field(const char *f, json_t *attrs, struct out *b, char **reterr_msg) {
        if (strncmp(f, "request.", 8) != 0)
                return fail(reterr_msg, "field {%s}: only {request.ATTRIBUTE} is known", f);
        const char *p = f + 8;
        size_t n = strcspn(p, "[");
        _cleanup_free_ char *name = xstrndup(p, n);
        json_t *v = json_object_get(attrs, name);
        if (!*name || !v)
                return fail(reterr_msg, "field {%s}: the request has no such attribute", f);
        p += n;
        while (*p == '[') {
                const char *end = strchr(p, ']');
                if (!end || end == p + 1)
                        return fail(reterr_msg, "field {%s}: malformed [KEY]", f);
                _cleanup_free_ char *key = xstrndup(p + 1, (size_t)(end - p - 1));
                bool digits = strspn(key, "0123456789") == strlen(key);
                if (digits && json_is_array(v))
                        v = json_array_get(v, strtoul(key, NULL, 10));
                else
                        v = json_is_object(v) ? json_object_get(v, key) : NULL;
                if (!v)
                        return fail(reterr_msg, "field {%s}: no such key", f);
                p = end + 1;
        }
        if (*p)
                return fail(reterr_msg, "field {%s}: conversions, format specs and attributes of values are "
                                        "not supported", f);
        py_str(b, v);
        return 0;
}

int dynprops_format(const char *fmt, const struct node_request *rq, char **ret, char **reterr_msg) {
        struct out b = { .d = DBUF_INIT(64 * 1024) };
        json_t *attrs = safe_attributes(rq);
        int r = 0;
        for (const char *p = fmt; *p && r >= 0;) {
                if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
                        put(&b, p, 1);
                        p += 2;
                } else if (*p == '}') {
                        r = fail(reterr_msg, "single '}' in %s", fmt);
                } else if (*p == '{') {
                        const char *end = strchr(p, '}');
                        if (!end) {
                                r = fail(reterr_msg, "unclosed '{' in %s", fmt);
                                break;
                        }
                        _cleanup_free_ char *f = xstrndup(p + 1, (size_t)(end - p - 1));
                        r = field(f, attrs, &b, reterr_msg);
                        p = end + 1;
                } else {
                        size_t n = strcspn(p, "{}");
                        put(&b, p, n);
                        p += n;
                }
        }
        json_decref(attrs);
        if (r >= 0 && b.too_big)
                r = fail(reterr_msg, "%s: the result is too long", fmt);
        if (r >= 0)
                *ret = xstrdup(dbuf_str(&b.d));
        dbuf_free(&b.d);
        return r;
}
