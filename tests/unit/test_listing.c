/* test_listing.c — shared/model/listing.c rows where poold adds to or mirrors
 * Nodepool: the State cell of a failed build that carries the builder's
 * back-off, the State cell of an upload the builder checks by booting it
 * and of a build whose uploads it checks, and Python's str() of user_data in
 * `list --detail`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "listing.h"
#include "model_image.h"

/* The state cell (text and JSON) of one dib-image-list row for B. */
static void state_of(struct image_build *b, bool paused, double now, char **ret_text, char **ret_json) {
        struct table *t = listing_dib_image_table();
        listing_dib_image_row(t, "debian", b, paused, NULL, 0, now);
        struct table_row *r = table_row_take(t);
        *ret_text = xstrdup(table_row_text(r, 4));
        table_row_unref(r);
        table_free(t);
        t = listing_dib_image_table();
        listing_dib_image_row(t, "debian", b, paused, NULL, 0, now);
        *ret_json = table_format_json(t);
        table_free(t);
}

/* The text says how many failures in a row and when the next attempt is;
 * the JSON state stays Nodepool's "failed"; paused still wins; a build
 * without poold's keys (Nodepool's) reads as before. */
static void test_dib_image_list_failed_state_text(void **state) {
        const double now = 1700000000;
        struct {
                const char *state;
                long long failures;
                double retry;
                bool paused;
                const char *text;
        } c[] = {
                { "failed", 3, now + 230, false, "failed (3 in a row; next in 4 min)" },
                { "failed", 1, now + 60, false, "failed (next in 60 s)" },
                { "failed", 5, now + 3 * 3600, false, "failed (5 in a row; next in 3.0 h)" },
                { "failed", 3, now - 10, false, "failed (3 in a row)" },
                { "failed", 1, now - 10, false, "failed" },
                { "failed", -1, NAN, false, "failed" },
                { "failed", 0, now, false, "failed" },
                { "failed", 3, now + 230, true, "paused" },
                { "ready", -1, NAN, false, "ready" },
        };
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
                struct image_build *b = image_build_new("0123456789abcdef0123456789abcdef");
                image_build_set_state(b, image_build_state_from_string(c[i].state));
                b->failures = c[i].failures;
                b->retry_time = c[i].retry;
                char *text = NULL, *json = NULL;
                state_of(b, c[i].paused, now, &text, &json);
                assert_string_equal(text, c[i].text);
                char *want = xasprintf("\"state\": \"%s\"", c[i].paused ? "paused" : c[i].state);
                assert_non_null(strstr(json, want));
                assert_null(strstr(json, "poold"));
                free(want);
                free(text);
                free(json);
                image_build_free(b);
        }
}

/* image-list's State text says what the builder's boot check of an upload is
 * doing or found (first line of the reason, bounded); the JSON state stays
 * Nodepool's; a record without poold_verify, or one whose verify state does
 * not match its Nodepool state, reads as before. */
static void test_image_list_verify_state_text(void **state) {
        const double now = 1700000000;
        struct {
                const char *state, *verify, *reason, *text;
        } c[] = {
                { "uploading", "checking", NULL, "uploading (verifying)" },
                { "ready", "passed", NULL, "ready (verified)" },
                { "failed", "failed", "ssh timeout\nconsole: ...", "failed (verify: ssh timeout)" },
                { "failed", "failed", NULL, "failed (verify: ?)" },
                { "failed", NULL, NULL, "failed" },
                { "ready", "checking", NULL, "ready" },
                { "deleting", "failed", "x", "deleting" },
        };
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
                struct image_upload *u = image_upload_new("0000000001");
                image_upload_set_state(u, image_upload_state_from_string(c[i].state));
                model_set_str(&u->verify_state, c[i].verify);
                model_set_str(&u->verify_reason, c[i].reason);
                struct table *t = listing_image_table();
                listing_image_row(t, u, now);
                char *json = table_format_json(t);
                struct table_row *r = table_row_take(t);
                assert_string_equal(table_row_text(r, 6), c[i].text);
                char *want = xasprintf("\"state\": \"%s\"", c[i].state);
                assert_non_null(strstr(json, want));
                free(want);
                free(json);
                table_row_unref(r);
                table_free(t);
                image_upload_free(u);
        }
        struct image_upload *u = image_upload_new("0000000001");
        image_upload_set_state(u, IMAGE_UPLOAD_STATE_FAILED);
        model_set_str(&u->verify_state, "failed");
        char long_reason[300];
        memset(long_reason, 'x', sizeof long_reason - 1);
        long_reason[sizeof long_reason - 1] = 0;
        model_set_str(&u->verify_reason, long_reason);
        struct table *t = listing_image_table();
        listing_image_row(t, u, now);
        struct table_row *r = table_row_take(t);
        assert_int_equal(strlen(table_row_text(r, 6)), strlen("failed (verify: )") + 80);
        table_row_unref(r);
        table_free(t);
        image_upload_free(u);
}

/* One upload of a build, for dib-image-list: PROVIDER, ID, Nodepool STATE, poold_verify VERIFY (or NULL). */
static struct image_upload *upload(const char *provider, const char *id, const char *state, const char *verify) {
        struct image_upload *u = image_upload_new(id);
        image_upload_set_state(u, image_upload_state_from_string(state));
        model_set_str(&u->provider_name, provider);
        model_set_str(&u->verify_state, verify);
        return u;
}

/* dib-image-list's State text says what the boot checks of the build's
 * uploads found, per provider by its newest checked upload: any failure
 * names the providers (at most three, then +N), a running check says
 * verifying, all passed says verified; uploads without a check (or whose
 * check does not match their state) add nothing, and a paused image or a
 * failed build with back-off keeps its own text. The JSON state stays
 * Nodepool's. */
static void test_dib_image_list_verify_state_text(void **state) {
        const double now = 1700000000;
        enum { MAXU = 6 };
        struct {
                const char *build;
                bool paused;
                struct { const char *prov, *id, *state, *verify; } u[MAXU];
                const char *text;
        } c[] = {
                { "ready", false, { { "a", "0000000001", "ready", NULL } }, "ready" },
                { "ready", false,
                  { { "a", "0000000001", "ready", "passed" }, { "b", "0000000001", "ready", "passed" } },
                  "ready (verified)" },
                { "ready", false, { { "a", "0000000001", "ready", "passed" }, { "b", "0000000001", "ready", NULL } },
                  "ready (verified)" },
                { "ready", false, { { "a", "0000000001", "uploading", "checking" } }, "ready (verifying)" },
                { "ready", false,
                  { { "a", "0000000001", "ready", "passed" }, { "b", "0000000001", "uploading", "checking" } },
                  "ready (verifying)" },
                { "ready", false,
                  { { "a", "0000000001", "failed", "failed" }, { "b", "0000000001", "ready", "passed" } },
                  "ready (verify failed on a)" },
                { "ready", false,
                  { { "a", "0000000001", "failed", "failed" }, { "b", "0000000002", "uploading", "checking" } },
                  "ready (verify failed on a; verifying)" },
                { "ready", false,
                  { { "a", "0000000001", "failed", "failed" }, { "b", "0000000001", "failed", "failed" },
                    { "c", "0000000001", "failed", "failed" }, { "d", "0000000001", "failed", "failed" },
                    { "e", "0000000001", "failed", "failed" } },
                  "ready (verify failed on a, b, c +2)" },
                /* A newer check of the same provider decides (sequence ids: longer is newer). */
                { "ready", false,
                  { { "a", "0000000001", "failed", "failed" }, { "a", "0000000002", "ready", "passed" } },
                  "ready (verified)" },
                { "ready", false,
                  { { "a", "9999999999", "ready", "passed" }, { "a", "10000000000", "failed", "failed" } },
                  "ready (verify failed on a)" },
                /* Deleting, or a verify state its Nodepool state contradicts: not counted. */
                { "ready", false,
                  { { "a", "0000000001", "deleting", "failed" }, { "b", "0000000001", "ready", "checking" } },
                  "ready" },
                { "ready", true, { { "a", "0000000001", "failed", "failed" } }, "paused (verify failed on a)" },
                { "ready", false, {}, "ready" },
        };
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
                struct image_build *b = image_build_new("0123456789abcdef0123456789abcdef");
                image_build_set_state(b, image_build_state_from_string(c[i].build));
                struct image_upload *ups[MAXU] = {};
                size_t n = 0;
                for (; n < MAXU && c[i].u[n].prov; n++)
                        ups[n] = upload(c[i].u[n].prov, c[i].u[n].id, c[i].u[n].state, c[i].u[n].verify);
                struct table *t = listing_dib_image_table();
                listing_dib_image_row(t, "debian", b, c[i].paused, ups, n, now);
                char *json = table_format_json(t);
                struct table_row *r = table_row_take(t);
                assert_string_equal(table_row_text(r, 4), c[i].text);
                char *want = xasprintf("\"state\": \"%s\"", c[i].paused ? "paused" : c[i].build);
                assert_non_null(strstr(json, want));
                assert_null(strstr(json, "verif"));
                free(want);
                free(json);
                table_row_unref(r);
                table_free(t);
                for (size_t k = 0; k < n; k++) image_upload_free(ups[k]);
                image_build_free(b);
        }
        /* A failed build's back-off text is not overridden. */
        struct image_build *b = image_build_new("0123456789abcdef0123456789abcdef");
        image_build_set_state(b, IMAGE_BUILD_STATE_FAILED);
        b->failures = 3;
        b->retry_time = NAN;
        struct image_upload *u = upload("a", "0000000001", "failed", "failed");
        struct table *t = listing_dib_image_table();
        listing_dib_image_row(t, "debian", b, false, &u, 1, now);
        struct table_row *r = table_row_take(t);
        assert_string_equal(table_row_text(r, 4), "failed (3 in a row)");
        table_row_unref(r);
        table_free(t);
        image_upload_free(u);
        image_build_free(b);
}

/* User Data and Driver Data print as Nodepool's tables do, with Python's
 * str() of what json.loads() gives (Zuul's dict, a metastatic JSON string):
 * quotes and escapes as repr(), True/False/None, floats that read back. */
static void test_user_data_is_python_str(void **state) {
        static const struct { const char *json, *text; } c[] = {
                { "{\"zuul_system\": \"abc\", \"project_name\": \"opendev.org/x\"}",
                  "{'zuul_system': 'abc', 'project_name': 'opendev.org/x'}" },
                { "[true, false, null, 1, 2.5, 1.0, 0.1]", "[True, False, None, 1, 2.5, 1.0, 0.1]" },
                { "{\"q\": \"it's\", \"b\": \"a\\\\b\\n\"}", "{'q': \"it's\", 'b': 'a\\\\b\\n'}" },
                { "\"{\\\"owner\\\": \\\"n1\\\"}\"", "{\"owner\": \"n1\"}" }, /* a string: str() is itself */
                { "{}", "{}" },
                { "null", "" },
        };
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
                json_error_t e;
                json_t *v = json_loads(c[i].json, JSON_DECODE_ANY, &e);
                assert_non_null(v);
                char *text = listing_python_text(v);
                assert_string_equal(text, c[i].text);
                free(text);
                json_decref(v);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_user_data_is_python_str),
                cmocka_unit_test(test_dib_image_list_failed_state_text),
                cmocka_unit_test(test_image_list_verify_state_text),
                cmocka_unit_test(test_dib_image_list_verify_state_text),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
