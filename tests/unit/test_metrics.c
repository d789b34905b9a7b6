/* test_metrics.c — the Prometheus registry (poold/metrics.c) renders the
 * text exposition format 0.0.4: HELP/TYPE lines, label escaping, cumulative
 * histogram buckets with +Inf, _sum and _count, counter/gauge semantics, and
 * refuses bad names, kinds and values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static void test_counter_renders_help_type_and_accumulates(void **state) {
        struct metrics *m = metrics_new();
        assert_int_equal(metrics_declare(m, "poold_x_total", METRICS_COUNTER, "Things done.", NULL, 0), 0);
        const char *const lb[] = { "provider", "p1", NULL };
        assert_int_equal(metrics_add(m, "poold_x_total", lb, 1), 0);
        assert_int_equal(metrics_add(m, "poold_x_total", lb, 2.5), 0);
        assert_int_equal(metrics_add(m, "poold_x_total", NULL, 0), 0);
        double v;
        assert_int_equal(metrics_get(m, "poold_x_total", lb, &v), 0);
        assert_true(v == 3.5);
        char *s = metrics_render(m);
        assert_string_equal(s, "# HELP poold_x_total Things done.\n"
                               "# TYPE poold_x_total counter\n"
                               "poold_x_total{provider=\"p1\"} 3.5\n"
                               "poold_x_total 0\n");
        free(s);
        metrics_free(m);
}

static void test_counter_refuses_negative_and_nan_increments(void **state) {
        struct metrics *m = metrics_new();
        assert_int_equal(metrics_declare(m, "c", METRICS_COUNTER, "", NULL, 0), 0);
        assert_int_equal(metrics_add(m, "c", NULL, -1), -EINVAL);
        assert_int_equal(metrics_add(m, "c", NULL, NAN), -EINVAL);
        double v;
        assert_int_equal(metrics_get(m, "c", NULL, &v), -ENOENT); /* nothing was created */
        metrics_free(m);
}

static void test_gauge_is_set_not_added_and_zero_keeps_series(void **state) {
        struct metrics *m = metrics_new();
        assert_int_equal(metrics_declare(m, "g", METRICS_GAUGE, "A gauge.", NULL, 0), 0);
        const char *const a[] = { "state", "ready", NULL }, *const b[] = { "state", "building", NULL };
        assert_int_equal(metrics_set(m, "g", a, 5), 0);
        assert_int_equal(metrics_set(m, "g", a, 3), 0);
        assert_int_equal(metrics_set(m, "g", b, -2), 0);
        double v;
        assert_int_equal(metrics_get(m, "g", a, &v), 0);
        assert_true(v == 3);
        assert_int_equal(metrics_zero(m, "g"), 0);
        char *s = metrics_render(m);
        /* Zeroed series stay (a dashboard sees the drop to 0), in creation order. */
        assert_string_equal(s, "# HELP g A gauge.\n# TYPE g gauge\ng{state=\"ready\"} 0\ng{state=\"building\"} 0\n");
        free(s);
        assert_int_equal(metrics_zero(m, "nope"), -ENOENT);
        metrics_free(m);
}

static void test_label_values_and_help_are_escaped(void **state) {
        struct metrics *m = metrics_new();
        assert_int_equal(metrics_declare(m, "g", METRICS_GAUGE, "Back\\slash and\nnewline \"quoted\".", NULL, 0), 0);
        const char *const lb[] = { "a", "q\"uo\\te\nnl", "b", "", NULL };
        assert_int_equal(metrics_set(m, "g", lb, 1), 0);
        char *s = metrics_render(m);
        /* HELP escapes backslash and newline only; label values also the double quote. */
        assert_string_equal(s, "# HELP g Back\\\\slash and\\nnewline \"quoted\".\n"
                               "# TYPE g gauge\n"
                               "g{a=\"q\\\"uo\\\\te\\nnl\",b=\"\"} 1\n");
        free(s);
        metrics_free(m);
}

static void test_same_labels_address_the_same_series(void **state) {
        struct metrics *m = metrics_new();
        assert_int_equal(metrics_declare(m, "c", METRICS_COUNTER, "", NULL, 0), 0);
        const char *const x1[] = { "k", "v", NULL };
        const char *const x2[] = { "k", "v", NULL };
        const char *const y[] = { "k", "w", NULL };
        assert_int_equal(metrics_add(m, "c", x1, 1), 0);
        assert_int_equal(metrics_add(m, "c", x2, 1), 0);
        assert_int_equal(metrics_add(m, "c", y, 1), 0);
        char *s = metrics_render(m);
        assert_string_equal(s, "# HELP c \n# TYPE c counter\nc{k=\"v\"} 2\nc{k=\"w\"} 1\n");
        free(s);
        metrics_free(m);
}

static void test_histogram_buckets_are_cumulative_with_inf_sum_and_count(void **state) {
        struct metrics *m = metrics_new();
        const double buckets[] = { 0.125, 1, 10 };
        assert_int_equal(metrics_declare(m, "h_seconds", METRICS_HISTOGRAM, "Durations.", buckets, 3), 0);
        const char *const lb[] = { "provider", "p", NULL };
        /* Binary fractions, so the sum is exact; 0.125 lands in le="0.125": upper bounds are inclusive. */
        const double obs[] = { 0.0625, 0.125, 0.5, 4, 64 };
        for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) assert_int_equal(metrics_observe(m, "h_seconds", lb, obs[i]), 0);
        assert_int_equal(metrics_observe(m, "h_seconds", NULL, 2), 0);
        double count;
        assert_int_equal(metrics_get(m, "h_seconds", lb, &count), 0);
        assert_true(count == 5);
        char *s = metrics_render(m);
        assert_string_equal(s, "# HELP h_seconds Durations.\n"
                               "# TYPE h_seconds histogram\n"
                               "h_seconds_bucket{provider=\"p\",le=\"0.125\"} 2\n"
                               "h_seconds_bucket{provider=\"p\",le=\"1\"} 3\n"
                               "h_seconds_bucket{provider=\"p\",le=\"10\"} 4\n"
                               "h_seconds_bucket{provider=\"p\",le=\"+Inf\"} 5\n"
                               "h_seconds_sum{provider=\"p\"} 68.6875\n"
                               "h_seconds_count{provider=\"p\"} 5\n"
                               "h_seconds_bucket{le=\"0.125\"} 0\n"
                               "h_seconds_bucket{le=\"1\"} 0\n"
                               "h_seconds_bucket{le=\"10\"} 1\n"
                               "h_seconds_bucket{le=\"+Inf\"} 1\n"
                               "h_seconds_sum 2\n"
                               "h_seconds_count 1\n");
        free(s);
        metrics_free(m);
}

static void test_values_print_shortest_exact_and_special_spellings(void **state) {
        struct metrics *m = metrics_new();
        assert_int_equal(metrics_declare(m, "g", METRICS_GAUGE, "", NULL, 0), 0);
        const char *const a[] = { "v", "a", NULL }, *const b[] = { "v", "b", NULL }, *const c[] = { "v", "c", NULL },
                          *const d[] = { "v", "d", NULL }, *const e[] = { "v", "e", NULL };
        metrics_set(m, "g", a, 0.1);
        metrics_set(m, "g", b, 1.0 / 3);
        metrics_set(m, "g", c, INFINITY);
        metrics_set(m, "g", d, -INFINITY);
        metrics_set(m, "g", e, NAN);
        char *s = metrics_render(m);
        assert_non_null(strstr(s, "g{v=\"a\"} 0.1\n"));
        assert_non_null(strstr(s, "g{v=\"b\"} 0.33333333333333331\n")); /* 17 digits: reads back exactly */
        assert_non_null(strstr(s, "g{v=\"c\"} +Inf\n"));
        assert_non_null(strstr(s, "g{v=\"d\"} -Inf\n"));
        assert_non_null(strstr(s, "g{v=\"e\"} NaN\n"));
        free(s);
        metrics_free(m);
}

static void test_declare_refuses_bad_names_duplicates_and_unsorted_buckets(void **state) {
        struct metrics *m = metrics_new();
        const double up[] = { 1, 2 }, down[] = { 2, 1 }, same[] = { 1, 1 };
        assert_int_equal(metrics_declare(m, "", METRICS_GAUGE, "", NULL, 0), -EINVAL);
        assert_int_equal(metrics_declare(m, "9lives", METRICS_GAUGE, "", NULL, 0), -EINVAL);
        assert_int_equal(metrics_declare(m, "has-dash", METRICS_GAUGE, "", NULL, 0), -EINVAL);
        assert_int_equal(metrics_declare(m, "a:b_c9", METRICS_GAUGE, "", NULL, 0), 0); /* colons allowed in names */
        assert_int_equal(metrics_declare(m, "a:b_c9", METRICS_COUNTER, "", NULL, 0), -EEXIST);
        assert_int_equal(metrics_declare(m, "h1", METRICS_HISTOGRAM, "", NULL, 0), -EINVAL);
        assert_int_equal(metrics_declare(m, "h2", METRICS_HISTOGRAM, "", down, 2), -EINVAL);
        assert_int_equal(metrics_declare(m, "h3", METRICS_HISTOGRAM, "", same, 2), -EINVAL);
        assert_int_equal(metrics_declare(m, "h4", METRICS_HISTOGRAM, "", up, 2), 0);
        assert_int_equal(metrics_declare(m, "k", _METRICS_KIND_MAX, "", NULL, 0), -EINVAL);
        metrics_free(m);
}

static void test_wrong_kind_unknown_family_and_bad_labels_are_refused(void **state) {
        struct metrics *m = metrics_new();
        assert_int_equal(metrics_declare(m, "g", METRICS_GAUGE, "", NULL, 0), 0);
        assert_int_equal(metrics_add(m, "g", NULL, 1), -EINVAL);     /* a gauge is not a counter */
        assert_int_equal(metrics_observe(m, "g", NULL, 1), -EINVAL);
        assert_int_equal(metrics_set(m, "nope", NULL, 1), -ENOENT);
        const char *const odd[] = { "k", NULL };                       /* a key without value */
        const char *const colon[] = { "a:b", "v", NULL };              /* colons are not allowed in label names */
        const char *const digit[] = { "1a", "v", NULL };
        assert_int_equal(metrics_set(m, "g", odd, 1), -EINVAL);
        assert_int_equal(metrics_set(m, "g", colon, 1), -EINVAL);
        assert_int_equal(metrics_set(m, "g", digit, 1), -EINVAL);
        char *s = metrics_render(m);
        assert_string_equal(s, "# HELP g \n# TYPE g gauge\n"); /* no series was created by the refusals */
        free(s);
        metrics_free(m);
        metrics_free(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counter_renders_help_type_and_accumulates),
                cmocka_unit_test(test_counter_refuses_negative_and_nan_increments),
                cmocka_unit_test(test_gauge_is_set_not_added_and_zero_keeps_series),
                cmocka_unit_test(test_label_values_and_help_are_escaped),
                cmocka_unit_test(test_same_labels_address_the_same_series),
                cmocka_unit_test(test_histogram_buckets_are_cumulative_with_inf_sum_and_count),
                cmocka_unit_test(test_values_print_shortest_exact_and_special_spellings),
                cmocka_unit_test(test_declare_refuses_bad_names_duplicates_and_unsorted_buckets),
                cmocka_unit_test(test_wrong_kind_unknown_family_and_bad_labels_are_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
