/* listing.c — Nodepool's listing rows (see listing.h). Column keys are the
 * web app's JSON field names (NP:nodepool/status.py); headers the CLI's. */
#include "listing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "model_image.h"
#include "model_node.h"
#include "model_request.h"

static const struct table_column node_columns[_LISTING_NODE_MAX] = {
        [LISTING_NODE_ID] = { "id", "ID" },
        [LISTING_NODE_PROVIDER] = { "provider", "Provider" },
        [LISTING_NODE_LABEL] = { "label", "Label" },
        [LISTING_NODE_SERVER_ID] = { "server_id", "Server ID" },
        [LISTING_NODE_PUBLIC_IPV4] = { "public_ipv4", "Public IPv4" },
        [LISTING_NODE_IPV6] = { "ipv6", "IPv6" },
        [LISTING_NODE_STATE] = { "state", "State" },
        [LISTING_NODE_AGE] = { "age", "Age" },
        [LISTING_NODE_LOCKED] = { "locked", "Locked" },
        [LISTING_NODE_POOL] = { "pool", "Pool" },
        [LISTING_NODE_HOSTNAME] = { "hostname", "Hostname" },
        [LISTING_NODE_PRIVATE_IPV4] = { "private_ipv4", "Private IPv4" },
        [LISTING_NODE_AZ] = { "AZ", "AZ" },
        [LISTING_NODE_USERNAME] = { "username", "Username" },
        [LISTING_NODE_PORT] = { "connection_port", "Port" },
        [LISTING_NODE_LAUNCHER] = { "launcher", "Launcher" },
        [LISTING_NODE_ALLOCATED_TO] = { "allocated_to", "Allocated To" },
        [LISTING_NODE_HOLD_JOB] = { "hold_job", "Hold Job" },
        [LISTING_NODE_COMMENT] = { "comment", "Comment" },
        [LISTING_NODE_USER_DATA] = { "user_data", "User Data" },
        [LISTING_NODE_DRIVER_DATA] = { "driver_data", "Driver Data" },
};

char *listing_json_text(json_t *v) {
        if (!v || json_is_null(v)) return xstrdup("");
        if (json_is_string(v)) return xstrdup(json_string_value(v));
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        if (!s) return xstrdup("");
        char *out = xstrdup(s);
        free(s);
        return out;
}

void listing_set_opaque(struct table *t, size_t col, json_t *v) {
        _cleanup_free_ char *text = listing_json_text(v);
        table_set(t, col, text, v && !json_is_null(v) ? json_incref(v) : NULL);
}

/* repr() of a Python str: single quotes unless the text has ' and no ". */
static void py_repr_str(FILE *f, const char *s) {
        char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
        fputc(q, f);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '\\' || *p == (unsigned char)q) fprintf(f, "\\%c", *p);
                else if (*p == '\n') fputs("\\n", f);
                else if (*p == '\r') fputs("\\r", f);
                else if (*p == '\t') fputs("\\t", f);
                else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
                else fputc(*p, f);
        }
        fputc(q, f);
}

/* repr() of a Python float: the shortest form that reads back the same. */
static void py_repr_real(FILE *f, double d) {
        char buf[64];
        for (int prec = 1; prec <= 17; prec++) {
                snprintf(buf, sizeof buf, "%.*g", prec, d);
                if (strtod(buf, NULL) == d) break;
        }
        fputs(buf, f);
        if (!strpbrk(buf, ".eEn")) fputs(".0", f); /* 1.0, not 1 */
}

static void py_repr(FILE *f, json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT: {
                const char *k;
                json_t *x;
                bool first = true;
                fputc('{', f);
                json_object_foreach(v, k, x) {
                        if (!first) fputs(", ", f);
                        first = false;
                        py_repr_str(f, k);
                        fputs(": ", f);
                        py_repr(f, x);
                }
                fputc('}', f);
                break;
        }
        case JSON_ARRAY:
                fputc('[', f);
                for (size_t i = 0; i < json_array_size(v); i++) {
                        if (i) fputs(", ", f);
                        py_repr(f, json_array_get(v, i));
                }
                fputc(']', f);
                break;
        case JSON_STRING: py_repr_str(f, json_string_value(v)); break;
        case JSON_INTEGER: fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
        case JSON_REAL: py_repr_real(f, json_real_value(v)); break;
        case JSON_TRUE: fputs("True", f); break;
        case JSON_FALSE: fputs("False", f); break;
        case JSON_NULL: fputs("None", f); break;
        }
}

char *listing_python_text(json_t *v) {
        if (!v || json_is_null(v)) return xstrdup("");
        if (json_is_string(v)) return xstrdup(json_string_value(v)); /* str() of a str */
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f) abort();
        py_repr(f, v);
        fclose(f);
        return out;
}

void listing_set_python(struct table *t, size_t col, json_t *v) {
        _cleanup_free_ char *text = listing_python_text(v);
        table_set(t, col, text, v && !json_is_null(v) ? json_incref(v) : NULL);
}

void listing_set_int_age(struct table *t, size_t col, double when, double now) {
        if (isnan(when)) {
                table_set(t, col, "", NULL);
                return;
        }
        long long secs = (long long)when;
        _cleanup_free_ char *age = model_age_format(now, (double)secs);
        table_set(t, col, age, json_integer(secs));
}

struct table *listing_node_table(bool detail) {
        struct table *t = table_new(node_columns, _LISTING_NODE_MAX);
        if (!detail)
                for (size_t c = LISTING_NODE_POOL; c < _LISTING_NODE_MAX; c++) table_hide_column(t, c);
        return t;
}

void listing_node_row(struct table *t, const struct node *n, bool locked, double now) {
        table_add_row(t);
        table_set_str(t, LISTING_NODE_ID, n->id);
        table_set_str(t, LISTING_NODE_PROVIDER, n->provider);
        table_set_strv(t, LISTING_NODE_LABEL, n->type);
        listing_set_opaque(t, LISTING_NODE_SERVER_ID, n->external_id);
        table_set_str(t, LISTING_NODE_PUBLIC_IPV4, n->public_ipv4);
        table_set_str(t, LISTING_NODE_IPV6, n->public_ipv6);
        table_set_str(t, LISTING_NODE_STATE, node_state_to_string(n->state));
        _cleanup_free_ char *age = model_age_format(now, n->state_time);
        table_set(t, LISTING_NODE_AGE, age, isnan(n->state_time) ? NULL : json_real(n->state_time));
        table_set_str(t, LISTING_NODE_LOCKED, locked ? "locked" : "unlocked");
        table_set_str(t, LISTING_NODE_POOL, n->pool);
        table_set_str(t, LISTING_NODE_HOSTNAME, n->hostname);
        table_set_str(t, LISTING_NODE_PRIVATE_IPV4, n->private_ipv4);
        table_set_str(t, LISTING_NODE_AZ, n->az);
        table_set_str(t, LISTING_NODE_USERNAME, n->username);
        if (n->connection_port_other && !json_is_null(n->connection_port_other))
                table_set_str(t, LISTING_NODE_PORT, "redacted"); /* k8s drivers keep credentials there */
        else if (n->connection_port_other)
                table_set(t, LISTING_NODE_PORT, "", NULL);
        else
                table_set_int(t, LISTING_NODE_PORT, n->connection_port);
        table_set_str(t, LISTING_NODE_LAUNCHER, n->launcher);
        table_set_str(t, LISTING_NODE_ALLOCATED_TO, n->allocated_to);
        table_set_str(t, LISTING_NODE_HOLD_JOB, n->hold_job);
        table_set_str(t, LISTING_NODE_COMMENT, n->comment);
        /* Nodepool's table cells are Python's str() of the decoded value. */
        listing_set_python(t, LISTING_NODE_USER_DATA, n->user_data);
        listing_set_python(t, LISTING_NODE_DRIVER_DATA, n->driver_data);
}

struct table *listing_request_table(void) {
        static const struct table_column cols[] = {
                { "id", "Request ID" },     { "relative_priority", "Priority" }, { "state", "State" },
                { "requestor", "Requestor" }, { "node_types", "Node Types" },    { "nodes", "Nodes" },
                { "declined_by", "Declined By" }, { "event_id", "Event ID" },
        };
        return table_new(cols, ELEMENTSOF(cols));
}

void listing_request_row(struct table *t, const struct node_request *r) {
        table_add_row(t);
        table_set_str(t, 0, r->id);
        table_set_int(t, 1, (long long)r->relative_priority);
        table_set_str(t, 2, node_request_state_to_string(r->state));
        table_set_str(t, 3, r->requestor);
        table_set_strv(t, 4, r->node_types);
        table_set_strv(t, 5, r->nodes);
        table_set_strv(t, 6, r->declined_by);
        table_set_str(t, 7, r->event_id);
}

struct table *listing_dib_image_table(void) {
        static const struct table_column cols[] = { { "id", "ID" },           { "image", "Image" },
                                                    { "builder", "Builder" }, { "formats", "Formats" },
                                                    { "state", "State" },     { "age", "Age" } };
        return table_new(cols, ELEMENTSOF(cols));
}

/* A failed build's text state with poold's back-off: "failed (3 in a row;
 * next in 4 min)", "failed (next in 60 s)" after a first failure, without
 * the wait once it is over. NULL when there is nothing to add. */
static char *failed_text(const struct image_build *b, double now) {
        if (b->state != IMAGE_BUILD_STATE_FAILED || b->failures < 1) return NULL;
        _cleanup_free_ char *count = b->failures > 1 ? xasprintf("%lld in a row", (long long)b->failures) : NULL;
        _cleanup_free_ char *next = NULL;
        if (!isnan(b->retry_time) && b->retry_time > now) {
                double s = ceil(b->retry_time - now);
                next = s < 120 ? xasprintf("next in %.0f s", s)
                     : s < 2 * 3600 ? xasprintf("next in %.0f min", ceil(s / 60))
                     : xasprintf("next in %.1f h", s / 3600);
        }
        if (!count && !next) return NULL;
        return xasprintf("failed (%s%s%s)", count ? count : "", count && next ? "; " : "", next ? next : "");
}

/* The builder's boot check of an upload (poold_verify), counted only when the
 * record's Nodepool state agrees with it. */
enum verify_outcome { VERIFY_NONE, VERIFY_CHECKING, VERIFY_PASSED, VERIFY_FAILED };

static enum verify_outcome verify_outcome(const struct image_upload *u) {
        if (!u->verify_state) return VERIFY_NONE;
        if (u->state == IMAGE_UPLOAD_STATE_UPLOADING && strcmp(u->verify_state, "checking") == 0)
                return VERIFY_CHECKING;
        if (u->state == IMAGE_UPLOAD_STATE_READY && strcmp(u->verify_state, "passed") == 0) return VERIFY_PASSED;
        if (u->state == IMAGE_UPLOAD_STATE_FAILED && strcmp(u->verify_state, "failed") == 0) return VERIFY_FAILED;
        return VERIFY_NONE;
}

/* The State text of an upload the builder checks by booting it (poold_verify):
 * "uploading (verifying)", "ready (verified)", "failed (verify: <first line of
 * the reason, at most 80 bytes>)". NULL when there is nothing to add. */
static char *verify_text(const struct image_upload *u) {
        switch (verify_outcome(u)) {
        case VERIFY_CHECKING: return xstrdup("uploading (verifying)");
        case VERIFY_PASSED: return xstrdup("ready (verified)");
        case VERIFY_FAILED: {
                const char *r = u->verify_reason ? u->verify_reason : "?";
                int len = (int)MIN(strcspn(r, "\n"), (size_t)80);
                return xasprintf("failed (verify: %.*s)", len, r);
        }
        default: return NULL;
        }
}

/* Is upload id A newer than B? Sequence ids: longer is newer, then by text. */
static bool upload_newer(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        return la != lb ? la > lb : strcmp(a, b) > 0;
}

/* What a build's State text adds about the boot checks of its uploads: per
 * provider, its newest checked upload decides. "verify failed on a, b" (at
 * most three names, then "+N"), with "; verifying" when another provider's
 * check runs; "verifying"; "verified" when every checked provider passed.
 * NULL when no upload was checked. */
static char *build_verify_text(struct image_upload *const *ups, size_t n) {
        size_t checking = 0, passed = 0, failed = 0;
        char *names = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&names, &len);
        if (!f) abort();
        for (size_t i = 0; i < n; i++) {
                enum verify_outcome o = verify_outcome(ups[i]);
                if (o == VERIFY_NONE) continue;
                const char *prov = ups[i]->provider_name ? ups[i]->provider_name : "?";
                bool superseded = false;
                for (size_t j = 0; j < n && !superseded; j++)
                        superseded = j != i && verify_outcome(ups[j]) != VERIFY_NONE &&
                                     strcmp(ups[j]->provider_name ? ups[j]->provider_name : "?", prov) == 0 &&
                                     upload_newer(ups[j]->id, ups[i]->id);
                if (superseded) continue;
                if (o == VERIFY_CHECKING) checking++;
                else if (o == VERIFY_PASSED) passed++;
                else if (++failed <= 3) fprintf(f, "%s%s", failed > 1 ? ", " : "", prov);
        }
        fclose(f);
        _cleanup_free_ char *list = names;
        if (failed) {
                _cleanup_free_ char *more = failed > 3 ? xasprintf(" +%zu", failed - 3) : xstrdup("");
                return xasprintf("verify failed on %s%s%s", list, more, checking ? "; verifying" : "");
        }
        if (checking) return xstrdup("verifying");
        return passed ? xstrdup("verified") : NULL;
}

void listing_dib_image_row(struct table *t, const char *image, const struct image_build *b, bool paused,
                           struct image_upload *const *ups, size_t n_ups, double now) {
        _cleanup_free_ char *id = xasprintf("%s-%s", image, b->id);
        table_add_row(t);
        table_set_str(t, 0, id);
        table_set_str(t, 1, image);
        table_set_str(t, 2, b->builder);
        table_set_strv(t, 3, b->formats);
        const char *state = paused ? "paused" : image_build_state_to_string(b->state);
        _cleanup_free_ char *failed = paused ? NULL : failed_text(b, now);
        _cleanup_free_ char *verify = failed ? NULL : build_verify_text(ups, n_ups);
        _cleanup_free_ char *text = verify ? xasprintf("%s (%s)", state, verify) : NULL;
        if (failed || text) /* the JSON state stays Nodepool's */
                table_set(t, 4, failed ? failed : text, json_string(state));
        else
                table_set_str(t, 4, state);
        listing_set_int_age(t, 5, b->state_time, now);
}

struct table *listing_image_table(void) {
        static const struct table_column cols[] = {
                { "id", "Build ID" },
                { "upload_id", "Upload ID" },
                { "provider", "Provider" },
                { "image", "Image" },
                { "external_name", "Provider Image Name" },
                { "external_id", "Provider Image ID" },
                { "state", "State" },
                { "age", "Age" },
        };
        return table_new(cols, ELEMENTSOF(cols));
}

void listing_image_row(struct table *t, const struct image_upload *u, double now) {
        table_add_row(t);
        table_set_str(t, 0, u->build_id);
        table_set_str(t, 1, u->id);
        table_set_str(t, 2, u->provider_name);
        table_set_str(t, 3, u->image_name);
        table_set_str(t, 4, u->external_name);
        table_set_str(t, 5, u->external_id);
        _cleanup_free_ char *verify = verify_text(u);
        if (verify) /* the JSON state stays Nodepool's */
                table_set(t, 6, verify, json_string(image_upload_state_to_string(u->state)));
        else
                table_set_str(t, 6, image_upload_state_to_string(u->state));
        listing_set_int_age(t, 7, u->state_time, now);
}

struct table *listing_image_status_table(void) {
        static const struct table_column cols[] = { { "image", "Image" },
                                                    { "paused", "Paused" },
                                                    { "build_request", "Build Request" },
                                                    { "build_request_age", "Build Request Age" } };
        return table_new(cols, ELEMENTSOF(cols));
}

void listing_image_status_row(struct table *t, const char *image, bool paused, bool build_requested, bool building,
                              double request_ctime, double now) {
        table_add_row(t);
        table_set_str(t, 0, image);
        table_set(t, 1, paused ? "True" : "False", json_boolean(paused)); /* Python's bool */
        if (build_requested) {
                /* A request the builder has taken (build lock held) is "building". */
                table_set_str(t, 2, building ? "building" : "pending");
                listing_set_int_age(t, 3, request_ctime, now);
        }
}

struct table *listing_label_table(void) {
        static const struct table_column cols[] = { { "label", "Label" } };
        return table_new(cols, ELEMENTSOF(cols));
}

void listing_label_row(struct table *t, const char *label) {
        table_add_row(t);
        table_set_str(t, 0, label);
}
