/* test_table_rows.c — detached rows (table_row_take + table_format_rows_*)
 * print byte for byte what table_format_text()/table_format_json() print for
 * a whole table of the same rows: the web app's row cache relies on it to
 * serve listings identical to poolctl's. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "table.h"

static const struct table_column cols[] = {
        { "id", "ID" }, { "name", "Name" }, { "age", "Age" }, { "data", "Data" }, { "labels", "Labels" },
        { "t", "T" },
};
#define N_COLS (sizeof cols / sizeof cols[0])
#define AGE_COL 2

/* Row I of a varied listing: ASCII, UTF-8 (2-byte, wide, combining), empty
 * and NULL cells, nested JSON, reals, integers, string lists, and (when
 * MULTILINE) a cell with newlines every 7th row. AGE is the age cell's text. */
static void fill_row(struct table *t, size_t i, bool multiline, const char *age) {
        static const char *const names[] = { "plain", "ümlaut", "日本語", "e\xcc\x81", "", NULL, "quote\"back\\slash",
                                             "tab\there", "emoji 😀" };
        char id[32];
        snprintf(id, sizeof id, "%010zu", i);
        table_add_row(t);
        table_set_str(t, 0, id);
        const char *name = names[i % (sizeof names / sizeof names[0])];
        if (multiline && i % 7 == 3) name = "two\nlines";
        table_set_str(t, 1, name);
        table_set(t, AGE_COL, age, json_real(1700000000.25 + (double)i));
        json_t *data = json_pack("{s:i, s:[s, f], s:n}", "k", (int)i, "list", "x", 0.1 * (double)i, "none");
        char *data_text = json_dumps(data, JSON_COMPACT);
        table_set(t, 3, data_text, data);
        free(data_text);
        char *labels[] = { "debian", i % 2 ? "ubuntu" : NULL, NULL };
        table_set_strv(t, 4, labels);
        if (i % 3) table_set_int(t, 5, (long long)i * 1000003);
}

static char *age_text(size_t i) {
        char *s = NULL;
        if (asprintf(&s, "%02zu:%02zu:00:00", i / 24, i % 24) < 0) abort();
        return s;
}

/* REF gets rows 0..n with their real ages; ROWS are taken from a scratch table
 * whose age cells say "stale" (so the dynamic column must replace them). */
static void build(size_t n, bool multiline, struct table **ret_ref, struct table_row ***ret_rows, char ***ret_ages) {
        struct table *ref = table_new(cols, N_COLS);
        struct table *scratch = table_new(cols, N_COLS);
        struct table_row **rows = calloc(n + 1, sizeof *rows);
        char **ages = calloc(n + 1, sizeof *ages);
        for (size_t i = 0; i < n; i++) {
                ages[i] = age_text(i);
                fill_row(ref, i, multiline, ages[i]);
                fill_row(scratch, i, multiline, "stale");
                rows[i] = table_row_take(scratch);
                assert_non_null(rows[i]);
                assert_int_equal(table_n_rows(scratch), 0);
        }
        table_free(scratch);
        *ret_ref = ref;
        *ret_rows = rows;
        *ret_ages = ages;
}

static void destroy(size_t n, struct table *ref, struct table_row **rows, char **ages) {
        for (size_t i = 0; i < n; i++) {
                table_row_unref(rows[i]);
                free(ages[i]);
        }
        free(rows);
        free(ages);
        table_free(ref);
}

static void assert_same_text_and_json(struct table *ref, struct table_row **rows, char **ages, size_t n) {
        char *want = table_format_text(ref);
        char *got = table_format_rows_text(ref, rows, n, AGE_COL, (const char *const *)ages);
        assert_string_equal(got, want);
        free(want);
        free(got);
        want = table_format_json(ref);
        got = table_format_rows_json(rows, n);
        assert_string_equal(got, want);
        free(want);
        free(got);
}

static void test_rows_render_identical_to_whole_table_text_and_json(void **state) {
        for (size_t n = 0; n <= 40; n += 5) {
                struct table *ref;
                struct table_row **rows;
                char **ages;
                build(n, false, &ref, &rows, &ages);
                assert_same_text_and_json(ref, rows, ages, n);
                destroy(n, ref, rows, ages);
        }
}

static void test_multiline_rows_render_identical_to_whole_table(void **state) {
        struct table *ref;
        struct table_row **rows;
        char **ages;
        build(30, true, &ref, &rows, &ages);
        assert_same_text_and_json(ref, rows, ages, 30);
        destroy(30, ref, rows, ages);
}

static void test_hidden_and_fields_filtered_columns_render_identical(void **state) {
        struct table *ref;
        struct table_row **rows;
        char **ages;
        build(25, true, &ref, &rows, &ages);
        table_hide_column(ref, 3);
        assert_same_text_and_json(ref, rows, ages, 25);
        table_show_only(ref, "id,age,nosuch");
        assert_same_text_and_json(ref, rows, ages, 25);
        table_show_only(ref, "");
        assert_same_text_and_json(ref, rows, ages, 25);
        destroy(25, ref, rows, ages);
}

static void test_without_dynamic_column_rows_keep_their_own_texts(void **state) {
        struct table *ref = table_new(cols, N_COLS), *scratch = table_new(cols, N_COLS);
        struct table_row *rows[3];
        for (size_t i = 0; i < 3; i++) {
                fill_row(ref, i, false, "same");
                fill_row(scratch, i, false, "same");
                rows[i] = table_row_take(scratch);
        }
        char *want = table_format_text(ref);
        char *got = table_format_rows_text(ref, rows, 3, SIZE_MAX, NULL);
        assert_string_equal(got, want);
        free(want);
        free(got);
        /* A dynamic text wider than every other cell widens its column. */
        const char *const wide[] = { "a", "a much longer age text", "" };
        got = table_format_rows_text(ref, rows, 3, AGE_COL, wide);
        assert_non_null(strstr(got, "| a much longer age text |"));
        assert_non_null(strstr(got, "| Age                    |"));
        free(got);
        for (size_t i = 0; i < 3; i++) table_row_unref(rows[i]);
        table_free(ref);
        table_free(scratch);
}

static void test_take_from_empty_table_returns_null_and_row_text_is_bounded(void **state) {
        struct table *t = table_new(cols, N_COLS);
        assert_null(table_row_take(t));
        table_add_row(t); /* every cell unset: "" and null */
        struct table_row *r = table_row_take(t);
        assert_non_null(r);
        assert_string_equal(table_row_text(r, 0), "");
        assert_string_equal(table_row_text(r, N_COLS), "");
        assert_string_equal(table_row_text(NULL, 0), "");
        char *json = table_format_rows_json(&r, 1);
        assert_string_equal(json, "[{\"id\": null, \"name\": null, \"age\": null, \"data\": null, \"labels\": null, "
                                  "\"t\": null}]\n");
        free(json);
        table_row_unref(r);
        table_row_unref(NULL);
        table_free(t);
}

static void test_row_references_outlive_the_table_and_each_other(void **state) {
        struct table *t = table_new(cols, N_COLS);
        fill_row(t, 1, false, "x");
        struct table_row *r = table_row_take(t);
        table_free(t); /* the row owns its texts */
        struct table_row *r2 = table_row_ref(r);
        assert_ptr_equal(r2, r);
        table_row_unref(r);
        assert_string_equal(table_row_text(r2, 0), "0000000001"); /* ASan: still alive */
        table_row_unref(r2);
}

struct thread_job {
        struct table *ref;
        struct table_row **rows;
        char **ages;
        size_t n;
        char *text, *json;
};

static void *format_on_thread(void *ud) {
        struct thread_job *j = ud;
        j->text = table_format_rows_text(j->ref, j->rows, j->n, AGE_COL, (const char *const *)j->ages);
        j->json = table_format_rows_json(j->rows, j->n);
        /* The last references are dropped on this thread (the web app's worker does so). */
        for (size_t i = 0; i < j->n; i++) table_row_unref(j->rows[i]);
        return NULL;
}

static void test_rows_made_on_one_thread_format_and_free_on_another(void **state) {
        struct thread_job j = { .n = 50 };
        build(j.n, true, &j.ref, &j.rows, &j.ages);
        char *want_text = table_format_text(j.ref), *want_json = table_format_json(j.ref);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, format_on_thread, &j), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_string_equal(j.text, want_text);
        assert_string_equal(j.json, want_json);
        free(j.text);
        free(j.json);
        free(want_text);
        free(want_json);
        for (size_t i = 0; i < j.n; i++) free(j.ages[i]);
        free(j.rows);
        free(j.ages);
        table_free(j.ref);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rows_render_identical_to_whole_table_text_and_json),
                cmocka_unit_test(test_multiline_rows_render_identical_to_whole_table),
                cmocka_unit_test(test_hidden_and_fields_filtered_columns_render_identical),
                cmocka_unit_test(test_without_dynamic_column_rows_keep_their_own_texts),
                cmocka_unit_test(test_take_from_empty_table_returns_null_and_row_text_is_bounded),
                cmocka_unit_test(test_row_references_outlive_the_table_and_each_other),
                cmocka_unit_test(test_rows_made_on_one_thread_format_and_free_on_another),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
