/* test_table.c — the table renderer draws exactly what Python's PrettyTable
 * (align 'l') draws for the same rows, and the JSON form is json.dumps() of
 * the rows. Expected texts were produced by python3-prettytable 3.6. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "table.h"

static const struct table_column two[] = { { "id", "ID" }, { "name", "Name" } };

static void test_empty_table_prints_header_and_a_double_bottom_rule(void **state) {
        struct table *t = table_new(two, 2);
        char *s = table_format_text(t);
        assert_string_equal(s, "+----+------+\n"
                               "| ID | Name |\n"
                               "+----+------+\n"
                               "+----+------+\n");
        free(s);
        s = table_format_json(t);
        assert_string_equal(s, "[]\n");
        free(s);
        assert_int_equal(table_n_rows(t), 0);
        table_free(t);
}

static void test_columns_widen_to_longest_cell_counting_utf8_characters_not_bytes(void **state) {
        struct table *t = table_new(two, 2);
        table_add_row(t);
        table_set_str(t, 0, "1");
        table_set_str(t, 1, NULL); /* None shows as empty */
        table_add_row(t);
        table_set_str(t, 0, "ü€x"); /* 6 bytes, 3 columns */
        table_set_int(t, 1, 12);
        char *s = table_format_text(t);
        assert_string_equal(s, "+-----+------+\n"
                               "| ID  | Name |\n"
                               "+-----+------+\n"
                               "| 1   |      |\n"
                               "| ü€x | 12   |\n"
                               "+-----+------+\n");
        free(s);
        table_free(t);
}

static void test_east_asian_wide_characters_take_two_columns(void **state) {
        struct table *t = table_new(two, 2);
        table_add_row(t);
        table_set_str(t, 0, "日本");
        table_set_str(t, 1, "c");
        char *s = table_format_text(t);
        assert_string_equal(s, "+------+------+\n"
                               "| ID   | Name |\n"
                               "+------+------+\n"
                               "| 日本 | c    |\n"
                               "+------+------+\n");
        free(s);
        assert_int_equal(table_text_width("e\xcc\x81", 3), 1); /* e + combining acute */
        assert_int_equal(table_text_width("\xff" "a", 2), 2);  /* invalid byte counts as one */
        table_free(t);
}

static void test_multiline_cell_spans_lines_like_prettytable(void **state) {
        struct table *t = table_new(two, 2);
        table_add_row(t);
        table_set_str(t, 0, "a\nbb");
        table_set_str(t, 1, "c");
        char *s = table_format_text(t);
        assert_string_equal(s, "+----+------+\n"
                               "| ID | Name |\n"
                               "+----+------+\n"
                               "| a  | c    |\n"
                               "| bb |      |\n"
                               "+----+------+\n");
        free(s);
        table_free(t);
}

static void test_hidden_column_is_left_out_of_text_but_kept_in_json(void **state) {
        static const struct table_column cols[] = { { "id", "ID" }, { "age", "Age" }, { "labels", "Label" } };
        struct table *t = table_new(cols, 3);
        table_hide_column(t, 2);
        table_add_row(t);
        table_set_str(t, 0, "0000000001");
        table_set(t, 1, "00:00:01:00", json_real(1726000000.5));
        char *l[] = { "a", "b", NULL };
        table_set_strv(t, 2, l);
        char *s = table_format_text(t);
        assert_string_equal(s, "+------------+-------------+\n"
                               "| ID         | Age         |\n"
                               "+------------+-------------+\n"
                               "| 0000000001 | 00:00:01:00 |\n"
                               "+------------+-------------+\n");
        free(s);
        s = table_format_json(t);
        assert_string_equal(s, "[{\"id\": \"0000000001\", \"age\": 1726000000.5, \"labels\": [\"a\", \"b\"]}]\n");
        free(s);
        table_free(t);
}

static void test_json_escapes_non_ascii_and_keeps_unset_cells_null(void **state) {
        struct table *t = table_new(two, 2);
        table_add_row(t);
        table_set_str(t, 0, "ü");
        table_add_row(t);
        table_set(t, 0, "x", NULL);
        char *s = table_format_json(t);
        assert_string_equal(s, "[{\"id\": \"\\u00fc\", \"name\": null}, {\"id\": null, \"name\": null}]\n");
        free(s);
        table_free(t);
}

static void test_strv_is_comma_joined_in_text(void **state) {
        struct table *t = table_new(two, 2);
        table_add_row(t);
        char *l[] = { "ubuntu", "debian", NULL };
        table_set_strv(t, 0, l);
        table_set_strv(t, 1, NULL);
        char *s = table_format_text(t);
        assert_non_null(strstr(s, "| ubuntu,debian |      |\n"));
        free(s);
        s = table_format_json(t);
        assert_string_equal(s, "[{\"id\": [\"ubuntu\", \"debian\"], \"name\": []}]\n");
        free(s);
        table_free(t);
}

static void test_set_without_row_drops_value_without_leaking(void **state) {
        struct table *t = table_new(two, 2);
        table_set(t, 0, "x", json_string("x")); /* LeakSanitizer checks the reference is dropped */
        table_add_row(t);
        table_set(t, 5, "x", json_string("x")); /* out of range column */
        assert_int_equal(table_n_rows(t), 1);
        table_free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty_table_prints_header_and_a_double_bottom_rule),
                cmocka_unit_test(test_columns_widen_to_longest_cell_counting_utf8_characters_not_bytes),
                cmocka_unit_test(test_east_asian_wide_characters_take_two_columns),
                cmocka_unit_test(test_multiline_cell_spans_lines_like_prettytable),
                cmocka_unit_test(test_hidden_column_is_left_out_of_text_but_kept_in_json),
                cmocka_unit_test(test_json_escapes_non_ascii_and_keeps_unset_cells_null),
                cmocka_unit_test(test_strv_is_comma_joined_in_text),
                cmocka_unit_test(test_set_without_row_drops_value_without_leaking),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
