/* Unit tests for the builder's pure decisions (builder/bw_plan.c): Nodepool's
 * disk-image-create command line and environment, when a build is due,
 * retention, cloud image names, which images-dir files belong to a build, and
 * the back-off of an image whose builds keep failing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "alloc.h"
#include "bw_plan.h"
#include "model.h"

static void assert_strv(char **v, const char *const *want) {
        size_t i = 0;
        for (; want[i]; i++) {
                assert_non_null(v[i]);
                assert_string_equal(v[i], want[i]);
        }
        assert_null(v[i]);
}

static void test_argv_is_nodepools_with_qcow2_compat_and_sorted_formats(void **state) {
        char *formats[] = { "raw", "qcow2", NULL };
        char *elements[] = { "debian-minimal", "vm simple-init", NULL };
        struct bw_plan_build p = { .dib_cmd = "/opt/dib/bin/disk-image-create --fake", .self_exe = "/usr/bin/pb",
                                   .formats = formats, .output_base = "/img/debian-abc", .elements = elements };
        char **v = NULL;
        assert_int_equal(bw_plan_build_argv(&p, &v), 0);
        const char *want[] = { "/opt/dib/bin/disk-image-create", "--fake", "-x", "-t", "qcow2,raw", "--checksum",
                               "--no-tmpfs", "--qemu-img-options", "compat=0.10", "-o", "/img/debian-abc",
                               "debian-minimal", "vm", "simple-init", NULL };
        assert_strv(v, want);
        model_strv_free(v);
}

static void test_argv_default_dib_cmd_runs_the_builtin_and_no_compat_without_qcow2(void **state) {
        char *formats[] = { "raw", NULL };
        char *elements[] = { "vm", NULL };
        struct bw_plan_build p = { .dib_cmd = "disk-image-create", .self_exe = "/usr/sbin/poold-builder",
                                   .formats = formats, .output_base = "/i/x-1", .elements = elements };
        char **v = NULL;
        assert_int_equal(bw_plan_build_argv(&p, &v), 0);
        const char *want[] = { "/usr/sbin/poold-builder", "disk-image-create", "-x", "-t", "raw", "--checksum",
                               "--no-tmpfs", "-o", "/i/x-1", "vm", NULL };
        assert_strv(v, want);
        model_strv_free(v);
}

static void test_argv_expands_pkg_dir_and_rejects_bad_commands(void **state) {
        char *formats[] = { "qcow2", NULL };
        char *none[] = { NULL };
        struct bw_plan_build p = { .dib_cmd = "%p/../fake-image-create 'a b'", .pkg_dir = "/usr/lib/pd",
                                   .formats = formats, .output_base = "/o", .elements = none };
        char **v = NULL;
        assert_int_equal(bw_plan_build_argv(&p, &v), 0);
        assert_string_equal(v[0], "/usr/lib/pd/../fake-image-create");
        assert_string_equal(v[1], "a b");
        model_strv_free(v);
        p.dib_cmd = "dib 'unterminated";
        assert_int_equal(bw_plan_build_argv(&p, &v), -EINVAL);
        p.dib_cmd = "   ";
        assert_int_equal(bw_plan_build_argv(&p, &v), -EINVAL);
        p.dib_cmd = "dib";
        p.formats = none;
        assert_int_equal(bw_plan_build_argv(&p, &v), -EINVAL);
}

static void test_split_words_quotes_and_escapes_like_shlex(void **state) {
        char **v = NULL;
        assert_int_equal(bw_plan_split_words("  a \"b c\" 'd \"e' f\\ g h\"\\\"\" ", &v), 0);
        const char *want[] = { "a", "b c", "d \"e", "f g", "h\"", NULL };
        assert_strv(v, want);
        model_strv_free(v);
        assert_int_equal(bw_plan_split_words("\"open", &v), -EINVAL);
}

static void test_env_order_release_optional_and_username_overridable(void **state) {
        char *k[] = { "DIB_DEV_USER_USERNAME", "FOO" }, *val[] = { "admin", "1" };
        char **e = bw_plan_build_env("debian", NULL, "/i/debian-1", NULL, "zuul", k, val, 2);
        const char *want[] = { "DIB_IMAGE_NAME=debian", "DIB_IMAGE_FILENAME=/i/debian-1",
                               "DIB_DEV_USER_USERNAME=admin", "FOO=1", NULL };
        assert_strv(e, want);
        model_strv_free(e);
        e = bw_plan_build_env("debian", "12", "/i/debian-1", "/el", "zuul", NULL, NULL, 0);
        const char *want2[] = { "DIB_RELEASE=12", "DIB_IMAGE_NAME=debian", "DIB_IMAGE_FILENAME=/i/debian-1",
                                "ELEMENTS_PATH=/el", "DIB_DEV_USER_USERNAME=zuul", NULL };
        assert_strv(e, want2);
        model_strv_free(e);
}

static void test_needs_build_when_missing_old_or_lacking_a_format(void **state) {
        char *have[] = { "qcow2", NULL }, *need1[] = { "qcow2", NULL }, *need2[] = { "qcow2", "raw", NULL };
        assert_true(bw_plan_needs_build(false, 0, NULL, need1, 86400, 1000));
        assert_false(bw_plan_needs_build(true, 1000, have, need1, 86400, 1000 + 86399));
        assert_true(bw_plan_needs_build(true, 1000, have, need1, 86400, 1000 + 86400));
        assert_true(bw_plan_needs_build(true, 1000, have, need2, 86400, 1001));
}

static void test_keep_newest_ready_only(void **state) {
        double t[] = { 5, 9, 7, 10, 8 };
        bool ready[] = { true, true, true, false, true }, keep[5];
        bw_plan_keep_newest(t, ready, 5, 2, keep);
        bool want[] = { false, true, false, false, true };
        assert_memory_equal(keep, want, sizeof want);
        bw_plan_keep_newest(t, ready, 0, 2, keep);
        bool one_ready[] = { false, false, true, false, false };
        bw_plan_keep_newest(t, one_ready, 5, 2, keep);
        bool want1[] = { false, false, true, false, false };
        assert_memory_equal(keep, want1, sizeof want1);
}

static void test_image_name_format(void **state) {
        char *s = NULL;
        assert_int_equal(bw_plan_image_name(NULL, "debian", 1700000000, &s), 0);
        assert_string_equal(s, "debian-1700000000");
        free(s);
        assert_int_equal(bw_plan_image_name("np-{image_name}-{{x}}-{timestamp}", "d", 5, &s), 0);
        assert_string_equal(s, "np-d-{x}-5");
        free(s);
        assert_int_equal(bw_plan_image_name("{image_name}-{build_id}", "d", 5, &s), -EINVAL);
        assert_int_equal(bw_plan_image_name("{image_name", "d", 5, &s), -EINVAL);
}

static void test_parse_output_names(void **state) {
        char *im = NULL, *id = NULL;
        const char *hex = "0123456789abcdef0123456789abcdef";
        char name[128];
        snprintf(name, sizeof name, "ubuntu-jammy-%s.qcow2.sha256", hex);
        assert_true(bw_plan_parse_output(name, &im, &id));
        assert_string_equal(im, "ubuntu-jammy");
        assert_string_equal(id, hex);
        free(im);
        free(id);
        assert_true(bw_plan_parse_output("debian-0000000012.d", &im, &id));
        assert_string_equal(im, "debian");
        assert_string_equal(id, "0000000012");
        free(im);
        free(id);
        assert_false(bw_plan_parse_output("builder_id.txt", &im, &id));
        assert_false(bw_plan_parse_output("debian-123.qcow2", &im, &id));
        assert_false(bw_plan_parse_output("debian-0000000012x", &im, &id));
        snprintf(name, sizeof name, "debian-%s.log", hex);
        assert_true(bw_plan_is_log_of(name, "debian"));
        assert_false(bw_plan_is_log_of(name, "deb"));
        snprintf(name, sizeof name, "debian-%s.qcow2", hex);
        assert_false(bw_plan_is_log_of(name, "debian"));
}

/* A boot check's log is named after its upload and told apart from build
 * logs, image files and other names in build-log-dir (so the builder's
 * cleanup removes only those); its known_hosts leftover counts as one. */
static void test_verify_log_name_and_match(void **state) {
        const char *hex = "0123456789abcdef0123456789abcdef";
        char *name = bw_plan_verify_log_name("ubuntu-jammy", hex, "lv-1", "0000000003");
        char want[128];
        snprintf(want, sizeof want, "ubuntu-jammy-%s.verify-lv-1-0000000003.log", hex);
        assert_string_equal(name, want);
        assert_true(bw_plan_is_verify_log(name));
        snprintf(want, sizeof want, "%s.known_hosts", name);
        assert_true(bw_plan_is_verify_log(want));
        free(name);
        static const char *const no[] = { "ubuntu-jammy-0123456789abcdef0123456789abcdef.log",
                                           "ubuntu-jammy-0123456789abcdef0123456789abcdef.qcow2",
                                           "ubuntu-jammy-0123456789abcdef0123456789abcdef.verify-.log",
                                           "ubuntu-jammy-0123456789abcdef0123456789abcdef.verify-lv-1-3.txt",
                                           "ubuntu-jammy-0123.verify-lv-1-3.log",
                                           "x.verify-lv-1-3.log",
                                           "builder_id.txt" };
        for (size_t i = 0; i < ELEMENTSOF(no); i++) assert_false(bw_plan_is_verify_log(no[i]));
        assert_true(bw_plan_is_verify_log("debian-0000000012.verify-p-0000000001.log"));
}

static void test_prune_logs_keeps_newest(void **state) {
        double mt[] = { 3, 1, 4, 2 };
        bool drop[4];
        bw_plan_prune_logs(mt, 4, 2, false, drop);
        bool want[] = { false, true, false, true };
        assert_memory_equal(drop, want, sizeof want);
        bw_plan_prune_logs(mt, 4, 0, false, drop); /* at least one is kept */
        bool want0[] = { true, true, false, true };
        assert_memory_equal(drop, want0, sizeof want0);
        bw_plan_prune_logs(mt, 4, 1, true, drop);
        bool none[] = { false, false, false, false };
        assert_memory_equal(drop, none, sizeof none);
}

/* 1 min doubling to the cap; the cap never goes below the first wait; no failure, no wait. */
static void test_retry_delay_doubles_to_the_cap(void **state) {
        const uint64_t want[] = { 0, 60000, 120000, 240000, 480000, 960000, 1920000, 3600000, 3600000 };
        for (uint64_t n = 0; n < ELEMENTSOF(want); n++)
                assert_int_equal(bw_plan_retry_delay_ms(n, 60000, 3600000), want[n]);
        assert_int_equal(bw_plan_retry_delay_ms(1000, 60000, 3600000), 3600000); /* no overflow */
        assert_int_equal(bw_plan_retry_delay_ms(3, 500, 100), 500);
}

/* The failure state read from the newest finished build, with and without
 * poold's keys, and when a request-build resets it. */
static void test_failure_state_and_backing_off(void **state) {
        struct bw_plan_failure f = { .failures = 99 };
        assert_false(bw_plan_failure_of(false, 1000, 3, 1240, 60000, 3600000, &f));
        assert_int_equal(f.failures, 99); /* untouched */
        /* a build the builder stopped after no failure: nothing to wait for */
        assert_false(bw_plan_failure_of(true, 1000, 0, 1000, 60000, 3600000, &f));

        assert_true(bw_plan_failure_of(true, 1000, 3, 1240, 60000, 3600000, &f));
        assert_int_equal(f.failures, 3);
        assert_true(f.failed_time == 1000 && f.retry_time == 1240);
        assert_true(bw_plan_backing_off(&f, false, 0, 1239));
        assert_false(bw_plan_backing_off(&f, false, 0, 1240));
        assert_true(bw_plan_backing_off(&f, true, 900, 1100));   /* request older than the failure */
        assert_false(bw_plan_backing_off(&f, true, 1001, 1100)); /* poolctl image-build after it */

        /* Nodepool's record (no poold keys): one failure, waiting from its state_time */
        assert_true(bw_plan_failure_of(true, 1000, -1, NAN, 60000, 3600000, &f));
        assert_int_equal(f.failures, 1);
        assert_true(f.retry_time == 1060);
        /* count without a time: the wait for that count */
        assert_true(bw_plan_failure_of(true, 1000, 4, NAN, 60000, 3600000, &f));
        assert_true(f.retry_time == 1480);
}

static void test_duration_text(void **state) {
        const struct {
                uint64_t ms;
                const char *s;
        } c[] = { { 300, "0.3 s" }, { 45000, "45 s" }, { 60000, "60 s" }, { 120000, "2 min" },
                  { 3600000, "60 min" }, { 9000000, "2.5 h" } };
        for (size_t i = 0; i < ELEMENTSOF(c); i++) {
                char *t = bw_plan_duration_text(c[i].ms);
                assert_string_equal(t, c[i].s);
                free(t);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_argv_is_nodepools_with_qcow2_compat_and_sorted_formats),
                cmocka_unit_test(test_verify_log_name_and_match),
                cmocka_unit_test(test_argv_default_dib_cmd_runs_the_builtin_and_no_compat_without_qcow2),
                cmocka_unit_test(test_argv_expands_pkg_dir_and_rejects_bad_commands),
                cmocka_unit_test(test_split_words_quotes_and_escapes_like_shlex),
                cmocka_unit_test(test_env_order_release_optional_and_username_overridable),
                cmocka_unit_test(test_needs_build_when_missing_old_or_lacking_a_format),
                cmocka_unit_test(test_keep_newest_ready_only),
                cmocka_unit_test(test_image_name_format),
                cmocka_unit_test(test_parse_output_names),
                cmocka_unit_test(test_prune_logs_keeps_newest),
                cmocka_unit_test(test_retry_delay_doubles_to_the_cap),
                cmocka_unit_test(test_failure_state_and_backing_off),
                cmocka_unit_test(test_duration_text),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
