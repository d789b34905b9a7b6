/* test_cmd.c — the child-process helper: output, env, fds, timeout, exec errors, reaping. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "alloc.h"
#include "cmd.h"

static struct cmd *sh(const char *script) {
        struct cmd *c = cmd_new("sh");
        cmd_args(c, "-c", script, NULL);
        return c;
}

static void test_captures_stdout_and_stderr_separately_with_exit_code(void **state) {
        _cleanup_(cmd_freep) struct cmd *c = sh("echo out; echo err >&2; printf more; exit 3");
        cmd_capture_output(c, 1024);
        struct cmd_status st;
        assert_int_equal(cmd_run(c, &st), 0);
        assert_int_equal(st.outcome, CMD_EXITED);
        assert_int_equal(st.code, 3);
        assert_false(cmd_status_success(&st));
        assert_string_equal(dbuf_str(cmd_stdout(c)), "out\nmore");
        assert_string_equal(dbuf_str(cmd_stderr(c)), "err\n");
        assert_false(cmd_output_truncated(c, 1));
        assert_false(cmd_output_truncated(c, 2));
}

static void test_output_cap_holds_for_10MB_and_keeps_the_head(void **state) {
        _cleanup_(cmd_freep) struct cmd *c = sh("head -c 10485760 /dev/zero | tr '\\0' a; echo tail >&2");
        cmd_capture_output(c, 4096);
        struct cmd_status st;
        assert_int_equal(cmd_run(c, &st), 0);
        /* The writer is drained to the end, never killed by a full pipe. */
        assert_true(cmd_status_success(&st));
        const struct dbuf *out = cmd_stdout(c);
        assert_int_equal(out->len, 4096);
        assert_true(out->alloc <= 4097);
        for (size_t i = 0; i < out->len; i++) assert_int_equal(out->buf[i], 'a');
        assert_true(cmd_output_truncated(c, 1));
        assert_false(cmd_output_truncated(c, 2));
        assert_string_equal(dbuf_str(cmd_stderr(c)), "tail\n");
}

static void test_environment_is_clean_except_allowed_and_added_vars(void **state) {
        setenv("SECRET_TOKEN", "hunter2", 1);
        setenv("POOLD_PASSED", "yes", 1);
        setenv("HOME", "/home/tester", 1);
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("env");
        cmd_setenv(c, "FOO", "bar");
        cmd_setenv(c, "FOO", "baz"); /* replaces */
        cmd_pass_env(c, "POOLD_PASSED");
        cmd_pass_env(c, "POOLD_UNSET_VAR");
        cmd_capture_output(c, 4096);
        struct cmd_status st;
        assert_int_equal(cmd_run(c, &st), 0);
        assert_true(cmd_status_success(&st));
        assert_string_equal(dbuf_str(cmd_stdout(c)),
                            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                            "LC_ALL=C\n"
                            "HOME=/home/tester\n"
                            "FOO=baz\n"
                            "POOLD_PASSED=yes\n");
        assert_null(strstr(dbuf_str(cmd_stdout(c)), "SECRET_TOKEN"));
        unsetenv("SECRET_TOKEN");
}

static void test_child_sees_only_fds_012_and_explicitly_passed(void **state) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(null >= 0);
        int leaky = fcntl(null, F_DUPFD, 50); /* deliberately without FD_CLOEXEC */
        int passed = fcntl(null, F_DUPFD_CLOEXEC, 60);
        close(null);
        assert_int_equal(leaky, 50);
        assert_int_equal(passed, 60);
        _cleanup_(cmd_freep) struct cmd *c = sh("cd /proc/$$/fd && echo *");
        cmd_pass_fd(c, passed);
        cmd_capture_output(c, 4096);
        struct cmd_status st;
        assert_int_equal(cmd_run(c, &st), 0);
        assert_true(cmd_status_success(&st));
        char expect[64];
        /* 3 is the shell's own handle on the directory while it expands the glob. */
        snprintf(expect, sizeof expect, "0 1 2 3 %d\n", passed);
        assert_string_equal(dbuf_str(cmd_stdout(c)), expect);
        /* The passed fd keeps its CLOEXEC in the parent. */
        assert_true(fcntl(passed, F_GETFD) & FD_CLOEXEC);
        close(leaky);
        close(passed);
}

/* Reap the orphaned members of process group pgid (we are their subreaper);
 * each must have died from sig. Returns how many; asserts the group is gone. */
static int reap_group(pid_t pgid, int sig) {
        int n = 0, status;
        for (int i = 0; i < 200 && kill(-pgid, 0) == 0; i++) {
                pid_t p = waitpid(-pgid, &status, WNOHANG);
                if (p > 0) {
                        assert_true(WIFSIGNALED(status));
                        assert_int_equal(WTERMSIG(status), sig);
                        n++;
                } else
                        usleep(5000);
        }
        assert_int_equal(kill(-pgid, 0), -1);
        assert_int_equal(errno, ESRCH);
        return n;
}

static void test_timeout_kills_child_and_grandchildren_within_grace(void **state) {
        /* We are a subreaper (main), so the orphaned background sleep becomes ours to check. */
        _cleanup_(cmd_freep) struct cmd *c = sh("sleep 60 & echo $!; sleep 60");
        cmd_capture_output(c, 1024);
        cmd_set_timeout(c, 300);
        cmd_set_kill_grace(c, 200);
        struct cmd_status st;
        uint64_t t0 = loop_now_ms();
        assert_int_equal(cmd_run(c, &st), 0);
        uint64_t took = loop_now_ms() - t0;
        assert_int_equal(st.outcome, CMD_TIMED_OUT);
        assert_int_equal(st.code, SIGTERM);
        assert_true(took >= 300);
        assert_true(took < 300 + 200 + 500);
        pid_t grandchild = (pid_t)atoi(dbuf_str(cmd_stdout(c)));
        assert_true(grandchild > 0);
        /* Both sleeps died of the SIGTERM. Each was reaped either by sh (if it died
         * first) or, orphaned, by us: reap_group collects ours and asserts that
         * nothing of the group survives. */
        assert_true(reap_group(cmd_get_pid(c), SIGTERM) <= 2);
        assert_int_equal(kill(grandchild, 0), -1);
        assert_int_equal(errno, ESRCH);
}

static void test_timeout_escalates_to_sigkill_when_sigterm_ignored(void **state) {
        _cleanup_(cmd_freep) struct cmd *c = sh("trap '' TERM; sleep 60");
        cmd_set_timeout(c, 300);
        cmd_set_kill_grace(c, 150);
        struct cmd_status st;
        uint64_t t0 = loop_now_ms();
        assert_int_equal(cmd_run(c, &st), 0);
        uint64_t took = loop_now_ms() - t0;
        assert_int_equal(st.outcome, CMD_TIMED_OUT);
        assert_int_equal(st.code, SIGKILL);
        assert_true(took >= 450);
        assert_true(took < 450 + 500);
        /* sleep inherited the ignored SIGTERM: it too needed the SIGKILL. */
        assert_true(reap_group(cmd_get_pid(c), SIGKILL) <= 1);
}

static void test_exec_failure_is_a_clean_errno_not_exit_127(void **state) {
        struct cmd_status st = { .outcome = _CMD_OUTCOME_INVALID };
        _cleanup_(cmd_freep) struct cmd *a = cmd_new("poold-no-such-program");
        assert_int_equal(cmd_run(a, &st), -ENOENT);
        _cleanup_(cmd_freep) struct cmd *b = cmd_new("/nonexistent/dir/prog");
        assert_int_equal(cmd_run(b, &st), -ENOENT); /* reported by the child's execve */
        char path[] = "/tmp/test_cmd_noexec.XXXXXX";
        int fd = mkstemp(path); /* mode 0600: not executable */
        assert_true(fd >= 0);
        close(fd);
        _cleanup_(cmd_freep) struct cmd *d = cmd_new(path);
        assert_int_equal(cmd_run(d, &st), -EACCES);
        unlink(path);
        _cleanup_(cmd_freep) struct cmd *e = cmd_new("true");
        cmd_set_cwd(e, "/nonexistent/cwd");
        assert_int_equal(cmd_run(e, &st), -ENOENT);
        /* ret_status untouched on failure. */
        assert_int_equal(st.outcome, _CMD_OUTCOME_INVALID);
        assert_int_equal(cmd_start(e), -EALREADY);
}

static void test_exit_codes_and_signals_reported_despite_parent_signal_state(void **state) {
        /* A daemon blocks signals for signalfd and ignores SIGPIPE; the child must not inherit that. */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        struct sigaction ign = { .sa_handler = SIG_IGN }, oldsa;
        sigaction(SIGUSR2, &ign, &oldsa);

        struct cmd_status st;
        _cleanup_(cmd_freep) struct cmd *a = sh("exit 42");
        assert_int_equal(cmd_run(a, &st), 0);
        assert_int_equal(st.outcome, CMD_EXITED);
        assert_int_equal(st.code, 42);
        _cleanup_(cmd_freep) struct cmd *b = sh("kill -USR1 $$; sleep 5");
        assert_int_equal(cmd_run(b, &st), 0);
        assert_int_equal(st.outcome, CMD_SIGNALED);
        assert_int_equal(st.code, SIGUSR1);
        _cleanup_(cmd_freep) struct cmd *d = sh("kill -USR2 $$; sleep 5");
        assert_int_equal(cmd_run(d, &st), 0);
        assert_int_equal(st.outcome, CMD_SIGNALED);
        assert_int_equal(st.code, SIGUSR2);
        _cleanup_(cmd_freep) struct cmd *e = cmd_new("true");
        assert_int_equal(cmd_run(e, &st), 0);
        assert_true(cmd_status_success(&st));
        assert_string_equal(cmd_outcome_to_string(CMD_TIMED_OUT), "timed out");

        sigaction(SIGUSR2, &oldsa, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void test_input_is_fed_to_stdin_then_eof(void **state) {
        static const char in[] = "hello\0world";
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("cat");
        cmd_set_input(c, in, sizeof in - 1);
        cmd_capture_output(c, 1024);
        struct cmd_status st;
        assert_int_equal(cmd_run(c, &st), 0);
        assert_true(cmd_status_success(&st));
        assert_int_equal(cmd_stdout(c)->len, sizeof in - 1);
        assert_memory_equal(cmd_stdout(c)->buf, in, sizeof in - 1);

        /* More than any pipe buffer, while the child's output is pumped too. */
        size_t big = 1u << 20;
        _cleanup_free_ char *buf = xmalloc(big);
        memset(buf, 'x', big);
        _cleanup_(cmd_freep) struct cmd *w = sh("cat; echo done >&2");
        cmd_set_input(w, buf, big);
        cmd_capture_output(w, 2u << 20);
        assert_int_equal(cmd_run(w, &st), 0);
        assert_true(cmd_status_success(&st));
        assert_int_equal(cmd_stdout(w)->len, big);
        assert_string_equal(dbuf_str(cmd_stderr(w)), "done\n");

        /* A child that never reads: no SIGPIPE for us, a normal result. */
        _cleanup_(cmd_freep) struct cmd *t = cmd_new("true");
        cmd_set_input(t, buf, big);
        assert_int_equal(cmd_run(t, &st), 0);
        assert_true(cmd_status_success(&st));

        /* Without input, stdin is /dev/null: cat sees EOF at once. */
        _cleanup_(cmd_freep) struct cmd *n = cmd_new("cat");
        cmd_capture_output(n, 16);
        cmd_set_timeout(n, 5000);
        assert_int_equal(cmd_run(n, &st), 0);
        assert_true(cmd_status_success(&st));
        assert_int_equal(cmd_stdout(n)->len, 0);
}

static char *slurp(const char *path) {
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        char *s = xcalloc(1, 65536);
        size_t n = fread(s, 1, 65535, f);
        s[n] = '\0';
        fclose(f);
        return s;
}

static void test_log_fd_gets_both_streams_in_order(void **state) {
        char path[] = "/tmp/test_cmd_log.XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_int_equal(write(fd, "start\n", 6), 6);
        struct cmd_status st;
        _cleanup_(cmd_freep) struct cmd *c = sh("echo 1; echo 2 >&2; echo 3; echo 4 >&2");
        cmd_set_log_fd(c, fd);
        assert_int_equal(cmd_run(c, &st), 0);
        assert_true(cmd_status_success(&st));
        _cleanup_free_ char *s1 = slurp(path);
        assert_string_equal(s1, "start\n1\n2\n3\n4\n");

        /* Capture and log together: the parent copies into both. */
        _cleanup_(cmd_freep) struct cmd *d = sh("echo five; echo six >&2");
        cmd_set_log_fd(d, fd);
        cmd_capture_output(d, 64);
        assert_int_equal(cmd_run(d, &st), 0);
        _cleanup_free_ char *s2 = slurp(path);
        assert_non_null(strstr(s2, "five\n"));
        assert_non_null(strstr(s2, "six\n"));
        assert_string_equal(dbuf_str(cmd_stdout(d)), "five\n");
        assert_string_equal(dbuf_str(cmd_stderr(d)), "six\n");
        close(fd);
        unlink(path);
}

static void test_cwd_and_argf_reach_the_child(void **state) {
        _cleanup_(cmd_freep) struct cmd *c = sh("pwd; echo \"$0\"");
        cmd_argf(c, "arg-%d-%s", 7, "x y");
        cmd_set_cwd(c, "/usr");
        cmd_capture_output(c, 256);
        struct cmd_status st;
        assert_int_equal(cmd_run(c, &st), 0);
        assert_string_equal(dbuf_str(cmd_stdout(c)), "/usr\narg-7-x y\n");
}

/* ---------------------------------------------------------- async */

struct async_ctx {
        struct cmd_status st;
        char out[64];
        int calls;
        bool free_in_done;
};

static void on_done(struct cmd *c, const struct cmd_status *st, void *ud) {
        struct async_ctx *a = ud;
        a->st = *st;
        a->calls++;
        snprintf(a->out, sizeof a->out, "%s", dbuf_str(cmd_stdout(c)));
        if (a->free_in_done) cmd_free(c);
}

static void on_all_done(struct loop *l, struct loop_timer *t, void *ud) { loop_exit(l, 0); }

static void test_async_commands_complete_through_the_loop(void **state) {
        struct loop *l = NULL;
        assert_int_equal(loop_new(&l), 0);
        struct async_ctx ok = { .free_in_done = true }, slow = { 0 }, fed = { .free_in_done = true };
        struct cmd *a = sh("echo hi; exit 5");
        cmd_capture_output(a, 64);
        assert_int_equal(cmd_start_async(a, l, on_done, &ok), 0);
        _cleanup_(cmd_freep) struct cmd *b = cmd_new("sleep");
        cmd_arg(b, "60");
        cmd_set_timeout(b, 300);
        cmd_set_kill_grace(b, 200);
        assert_int_equal(cmd_start_async(b, l, on_done, &slow), 0);
        struct cmd *d = cmd_new("cat");
        cmd_set_input(d, "fed", 3);
        cmd_capture_output(d, 64);
        assert_int_equal(cmd_start_async(d, l, on_done, &fed), 0);
        struct cmd *e = cmd_new("poold-no-such-program");
        assert_int_equal(cmd_start_async(e, l, on_done, &fed), -ENOENT);
        cmd_free(e);

        uint64_t t0 = loop_now_ms();
        loop_add_timer(l, 900, false, on_all_done, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(ok.calls, 1);
        assert_int_equal(ok.st.outcome, CMD_EXITED);
        assert_int_equal(ok.st.code, 5);
        assert_string_equal(ok.out, "hi\n");
        assert_int_equal(fed.calls, 1);
        assert_string_equal(fed.out, "fed");
        assert_int_equal(slow.calls, 1);
        assert_int_equal(slow.st.outcome, CMD_TIMED_OUT);
        assert_true(loop_now_ms() - t0 >= 300);
        loop_free(l);
}

static void test_free_of_running_command_kills_and_reaps(void **state) {
        struct loop *l = NULL;
        assert_int_equal(loop_new(&l), 0);
        struct cmd *c = cmd_new("sleep");
        cmd_arg(c, "60");
        assert_int_equal(cmd_start(c), 0);
        pid_t pid = cmd_get_pid(c);
        assert_true(cmd_get_pidfd(c) >= 0);
        struct cmd *d = cmd_new("sleep");
        cmd_arg(d, "60");
        cmd_capture_output(d, 64);
        struct async_ctx never = { 0 };
        assert_int_equal(cmd_start_async(d, l, on_done, &never), 0);
        pid_t pid2 = cmd_get_pid(d);
        uint64_t t0 = loop_now_ms();
        cmd_free(c);
        cmd_free(d);
        assert_true(loop_now_ms() - t0 < 1000);
        assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        assert_int_equal(waitpid(pid2, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        assert_int_equal(never.calls, 0);
        loop_free(l);
}

/* Run last: every child of every test above was reaped (no zombies, no orphans). */
static void test_no_child_process_left_behind(void **state) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
        _cleanup_free_ char *s = slurp(path);
        if (*s) {
                char p2[64];
                snprintf(p2, sizeof p2, "/proc/%d/stat", atoi(s));
                _cleanup_free_ char *st = slurp(p2);
                print_message("left: %s\n", st);
        }
        assert_string_equal(s, "");
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

int main(void) {
        /* Orphaned grandchildren re-parent to us, so the tests can prove they died. */
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_captures_stdout_and_stderr_separately_with_exit_code),
                cmocka_unit_test(test_output_cap_holds_for_10MB_and_keeps_the_head),
                cmocka_unit_test(test_environment_is_clean_except_allowed_and_added_vars),
                cmocka_unit_test(test_child_sees_only_fds_012_and_explicitly_passed),
                cmocka_unit_test(test_timeout_kills_child_and_grandchildren_within_grace),
                cmocka_unit_test(test_timeout_escalates_to_sigkill_when_sigterm_ignored),
                cmocka_unit_test(test_exec_failure_is_a_clean_errno_not_exit_127),
                cmocka_unit_test(test_exit_codes_and_signals_reported_despite_parent_signal_state),
                cmocka_unit_test(test_input_is_fed_to_stdin_then_eof),
                cmocka_unit_test(test_log_fd_gets_both_streams_in_order),
                cmocka_unit_test(test_cwd_and_argf_reach_the_child),
                cmocka_unit_test(test_async_commands_complete_through_the_loop),
                cmocka_unit_test(test_free_of_running_command_kills_and_reaps),
                cmocka_unit_test(test_no_child_process_left_behind),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
