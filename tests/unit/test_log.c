/* test_log.c — line format, level filtering, %m and *_errno returns, files, reopen, truncation. */
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "alloc.h"
#include "log.h"

static char dir[64]; /* "/tmp/test_log.XXXXXX" */
static char path[PATH_MAX];

static char *slurp(const char *p) {
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return xstrdup("");
        char *s = xcalloc(1, 65536);
        ssize_t n = read(fd, s, 65535);
        close(fd);
        s[n > 0 ? n : 0] = '\0';
        return s;
}

static void assert_matches(const char *s, const char *re) {
        regex_t rx;
        assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
        int r = regexec(&rx, s, 0, NULL, 0);
        regfree(&rx);
        if (r != 0) fail_msg("\"%s\" does not match /%s/", s, re);
}

/* Each test logs into a fresh file only (not stderr). */
static int setup_file(void **state) {
        snprintf(path, sizeof path, "%s/test.log", dir);
        unlink(path);
        log_setup("testcomp", LOG_LEVEL_DEBUG);
        return log_open_file(path, false);
}

static int teardown_file(void **state) {
        log_close();
        unlink(path);
        return 0;
}

static void test_line_has_utc_timestamp_level_and_component_prefix(void **state) {
        log_info("hello %d", 5);
        log_warning("careful");
        log_error("bad");
        log_debug("detail");
        _cleanup_free_ char *s = slurp(path);
        assert_matches(s, "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} INFO testcomp: hello 5\n"
                          "[-0-9: .]{23} WARNING testcomp: careful\n"
                          "[-0-9: .]{23} ERROR testcomp: bad\n"
                          "[-0-9: .]{23} DEBUG testcomp: detail\n$");
}

static void test_messages_below_the_level_are_dropped(void **state) {
        log_set_level(LOG_LEVEL_WARNING);
        assert_int_equal(log_get_level(), LOG_LEVEL_WARNING);
        log_debug("dropped debug");
        log_info("dropped info");
        log_warning("kept warning");
        log_error("kept error");
        /* An invalid level changes nothing. */
        log_set_level(_LOG_LEVEL_INVALID);
        assert_int_equal(log_get_level(), LOG_LEVEL_WARNING);
        _cleanup_free_ char *s = slurp(path);
        assert_null(strstr(s, "dropped"));
        assert_non_null(strstr(s, "WARNING testcomp: kept warning\n"));
        assert_non_null(strstr(s, "ERROR testcomp: kept error\n"));
}

static void test_errno_forms_print_percent_m_and_return_negative_error(void **state) {
        errno = EINTR;
        assert_int_equal(log_error_errno(-ENOENT, "open %s: %m", "/x"), -ENOENT);
        assert_int_equal(errno, EINTR); /* the caller's errno survives */
        assert_int_equal(log_warning_errno(EACCES, "positive %m"), -EACCES);
        assert_int_equal(log_info_errno(0, "no error"), 0);
        /* Filtered out, the return value is the same: "return log_debug_errno(r, ...)" works at any level. */
        log_set_level(LOG_LEVEL_ERROR);
        assert_int_equal(log_debug_errno(-EBUSY, "quiet %m"), -EBUSY);
        assert_int_equal(log_debug_errno(EBUSY, "quiet %m"), -EBUSY);
        _cleanup_free_ char *s = slurp(path);
        assert_non_null(strstr(s, "ERROR testcomp: open /x: No such file or directory\n"));
        assert_non_null(strstr(s, "WARNING testcomp: positive Permission denied\n"));
        assert_non_null(strstr(s, "INFO testcomp: no error\n"));
        assert_null(strstr(s, "quiet"));
}

static void test_reopen_after_rename_follows_logrotate(void **state) {
        char rotated[PATH_MAX + 8];
        snprintf(rotated, sizeof rotated, "%s.1", path);
        log_info("line one");
        assert_int_equal(rename(path, rotated), 0);
        log_info("line two"); /* still the old file until reopened */
        assert_int_equal(log_reopen(), 0);
        log_info("line three");
        _cleanup_free_ char *old = slurp(rotated);
        _cleanup_free_ char *cur = slurp(path);
        assert_non_null(strstr(old, "line one\n"));
        assert_non_null(strstr(old, "line two\n"));
        assert_null(strstr(old, "line three"));
        assert_null(strstr(cur, "line one"));
        assert_non_null(strstr(cur, "line three\n"));
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0007, 0); /* logs are not world-readable */
        unlink(rotated);
}

static void test_very_long_line_is_truncated_with_ellipsis_not_overflowing(void **state) {
        size_t big = 20000;
        _cleanup_free_ char *msg = xmalloc(big + 1);
        memset(msg, 'x', big);
        msg[big] = '\0';
        log_info("%s", msg);
        log_info("after");
        _cleanup_free_ char *s = slurp(path);
        char *nl = strchr(s, '\n');
        assert_non_null(nl);
        size_t line_len = (size_t)(nl - s) + 1;
        assert_true(line_len <= 4096);
        assert_true(line_len > 4000);
        assert_memory_equal(nl - 3, "...", 3);
        /* One line, then the next message intact. */
        assert_non_null(strstr(nl + 1, "INFO testcomp: after\n"));
}

static void test_level_names_round_trip(void **state) {
        for (int i = 0; i < _LOG_LEVEL_MAX; i++)
                assert_int_equal(log_level_from_string(log_level_to_string((enum log_level)i)), i);
        assert_int_equal(log_level_from_string("warn"), LOG_LEVEL_WARNING);
        assert_int_equal(log_level_from_string("Debug"), LOG_LEVEL_DEBUG);
        assert_int_equal(log_level_from_string("loud"), _LOG_LEVEL_INVALID);
        assert_int_equal(log_level_from_string(NULL), _LOG_LEVEL_INVALID);
        assert_null(log_level_to_string(_LOG_LEVEL_MAX));
}

/* Runs without setup_file: no file, so lines go to stderr (fd 2, captured here). */
static void test_without_file_or_with_also_stderr_lines_go_to_stderr(void **state) {
        char errpath[PATH_MAX];
        snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
        int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(efd >= 0);
        int saved = dup(2);
        assert_true(saved >= 0);
        assert_int_equal(dup2(efd, 2), 2);

        log_close();
        log_setup("errcomp", LOG_LEVEL_INFO);
        log_info("to stderr only");
        snprintf(path, sizeof path, "%s/both.log", dir);
        int r = log_open_file(path, true);
        log_info("to both");
        log_close();

        dup2(saved, 2);
        close(saved);
        close(efd);
        assert_int_equal(r, 0);
        _cleanup_free_ char *e = slurp(errpath);
        _cleanup_free_ char *f = slurp(path);
        assert_non_null(strstr(e, "INFO errcomp: to stderr only\n"));
        assert_non_null(strstr(e, "INFO errcomp: to both\n"));
        assert_null(strstr(f, "to stderr only"));
        assert_non_null(strstr(f, "INFO errcomp: to both\n"));
        unlink(errpath);
        unlink(path);
        /* A file that cannot be opened is reported, not ignored. */
        assert_int_equal(log_open_file("/nonexistent-dir/x.log", false), -ENOENT);
}

static int group_setup(void **state) {
        snprintf(dir, sizeof dir, "/tmp/test_log.XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state) { return rmdir(dir); }

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_line_has_utc_timestamp_level_and_component_prefix, setup_file,
                                                teardown_file),
                cmocka_unit_test_setup_teardown(test_messages_below_the_level_are_dropped, setup_file, teardown_file),
                cmocka_unit_test_setup_teardown(test_errno_forms_print_percent_m_and_return_negative_error,
                                                setup_file, teardown_file),
                cmocka_unit_test_setup_teardown(test_reopen_after_rename_follows_logrotate, setup_file,
                                                teardown_file),
                cmocka_unit_test_setup_teardown(test_very_long_line_is_truncated_with_ellipsis_not_overflowing,
                                                setup_file, teardown_file),
                cmocka_unit_test(test_level_names_round_trip),
                cmocka_unit_test(test_without_file_or_with_also_stderr_lines_go_to_stderr),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
