/* test_daemon.c — pidfile locking and detach with a readiness handshake. */
#include <fcntl.h>
#include <limits.h>
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
#include "daemon.h"
#include "log.h"
#include "loop.h"

static char dir[PATH_MAX];

static char *tmp_path(const char *name) { return xasprintf("%s/%s", dir, name); }

static char *slurp(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return NULL;
        char *s = xcalloc(1, 4096);
        ssize_t n = read(fd, s, 4095);
        close(fd);
        if (n < 0) n = 0;
        s[n] = '\0';
        return s;
}

static void test_pidfile_holds_our_pid_and_second_acquire_gets_ebusy_with_holder(void **state) {
        _cleanup_free_ char *path = tmp_path("a.pid");
        struct daemon_pidfile *pf = NULL, *pf2 = NULL;
        pid_t holder = -1;
        assert_int_equal(daemon_pidfile_acquire(path, &pf, &holder), 0);
        assert_int_equal(holder, -1); /* untouched on success */
        _cleanup_free_ char *s = slurp(path);
        char expect[32];
        snprintf(expect, sizeof expect, "%d\n", (int)getpid());
        assert_string_equal(s, expect);

        /* Same process, another open: flock conflicts per open file description. */
        assert_int_equal(daemon_pidfile_acquire(path, &pf2, &holder), -EBUSY);
        assert_null(pf2);
        assert_int_equal(holder, getpid());

        /* Another process sees the same. */
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                struct daemon_pidfile *p = NULL;
                pid_t h = 0;
                int r = daemon_pidfile_acquire(path, &p, &h);
                _exit(r == -EBUSY && h == getppid() ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);

        daemon_pidfile_release(pf);
        assert_int_equal(access(path, F_OK), -1); /* removed on release */
        assert_int_equal(daemon_pidfile_acquire(path, &pf, NULL), 0);
        daemon_pidfile_release(pf);
}

static void test_stale_pidfile_of_dead_process_is_taken_over(void **state) {
        _cleanup_free_ char *path = tmp_path("stale.pid");
        pid_t dead = fork();
        assert_true(dead >= 0);
        if (dead == 0) _exit(0);
        assert_int_equal(waitpid(dead, NULL, 0), dead);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fprintf(f, "%d\n", (int)dead);
        fclose(f);

        struct daemon_pidfile *pf = NULL;
        assert_int_equal(daemon_pidfile_acquire(path, &pf, NULL), 0);
        _cleanup_free_ char *s = slurp(path);
        assert_int_equal(atoi(s), getpid());
        daemon_pidfile_release(pf);
}

static void test_lock_of_a_killed_holder_is_released(void **state) {
        _cleanup_free_ char *path = tmp_path("killed.pid");
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                struct daemon_pidfile *pf = NULL;
                char c = daemon_pidfile_acquire(path, &pf, NULL) == 0 ? 'y' : 'n';
                if (write(p[1], &c, 1) != 1) _exit(1);
                pause();
                _exit(0);
        }
        close(p[1]);
        char c = 0;
        assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);
        assert_int_equal(c, 'y');
        struct daemon_pidfile *pf = NULL;
        pid_t holder = 0;
        assert_int_equal(daemon_pidfile_acquire(path, &pf, &holder), -EBUSY);
        assert_int_equal(holder, child);
        kill(child, SIGKILL);
        assert_int_equal(waitpid(child, NULL, 0), child);
        assert_int_equal(daemon_pidfile_acquire(path, &pf, &holder), 0);
        daemon_pidfile_release(pf);
}

/* ---------------------------------------------------------- detach */

enum daemon_mode { DAEMON_READY, DAEMON_FAIL, DAEMON_DIE };

/* Fork a "poold -d" stand-in; returns its pid. Its stderr goes to errpath.
 * The daemon writes its facts to infopath, then reports per mode after 200 ms. */
static pid_t spawn_detacher(enum daemon_mode mode, const char *infopath, const char *errpath) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid > 0) return pid;

        int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (efd < 0 || dup2(efd, 2) < 0) _exit(99);
        log_setup("detach-test", LOG_LEVEL_INFO);
        struct daemon_ready *ready = NULL;
        if (daemon_detach(&ready) < 0) _exit(98);
        /* From here on: the daemon. */
        usleep(200000);
        char cwd[PATH_MAX], fd0[PATH_MAX] = "";
        if (!getcwd(cwd, sizeof cwd)) _exit(97);
        ssize_t n = readlink("/proc/self/fd/0", fd0, sizeof fd0 - 1);
        if (n > 0) fd0[n] = '\0';
        char info[3 * PATH_MAX];
        int len = snprintf(info, sizeof info, "%d %d %d %s %s\n", (int)getpid(), (int)getsid(0), (int)getpgrp(),
                           cwd, fd0);
        int ifd = open(infopath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (ifd < 0 || write(ifd, info, (size_t)len) != len) _exit(96);
        close(ifd);
        if (mode == DAEMON_READY) daemon_notify_ready(ready);
        else if (mode == DAEMON_FAIL) daemon_notify_failed(ready, -EADDRINUSE);
        else _exit(3);
        usleep(100000);
        _exit(0);
}

/* We are a subreaper: the detached daemon re-parents to us. Reap it. */
static void reap_daemon(pid_t pid) {
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
}

static void test_detach_parent_exits_zero_only_once_daemon_is_ready(void **state) {
        _cleanup_free_ char *info = tmp_path("ready.info");
        _cleanup_free_ char *err = tmp_path("ready.err");
        uint64_t t0 = loop_now_ms();
        pid_t p = spawn_detacher(DAEMON_READY, info, err);
        int status;
        assert_int_equal(waitpid(p, &status, 0), p);
        uint64_t took = loop_now_ms() - t0;
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(took >= 200); /* not before the daemon said ready */
        /* The daemon had written its facts before saying ready. */
        _cleanup_free_ char *s = slurp(info);
        assert_non_null(s);
        int dpid = 0, sid = 0, pgrp = 0;
        char cwd[PATH_MAX] = "", fd0[PATH_MAX] = "";
        assert_int_equal(sscanf(s, "%d %d %d %4095s %4095s", &dpid, &sid, &pgrp, cwd, fd0), 5);
        assert_true(dpid > 0 && dpid != p);
        assert_int_not_equal(sid, getsid(0)); /* a new session */
        assert_int_not_equal(sid, dpid);      /* but not its leader: no controlling tty ever */
        assert_string_equal(cwd, "/");
        assert_string_equal(fd0, "/dev/null");
        reap_daemon(dpid);
}

static void test_detach_reports_startup_failure_with_exit_one(void **state) {
        _cleanup_free_ char *info = tmp_path("fail.info");
        _cleanup_free_ char *err = tmp_path("fail.err");
        pid_t p = spawn_detacher(DAEMON_FAIL, info, err);
        int status;
        assert_int_equal(waitpid(p, &status, 0), p);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
        _cleanup_free_ char *e = slurp(err);
        assert_non_null(strstr(e, "daemon failed to start: Address already in use"));
        _cleanup_free_ char *s = slurp(info);
        reap_daemon(atoi(s));
}

static void test_detach_reports_daemon_dying_before_ready(void **state) {
        _cleanup_free_ char *info = tmp_path("die.info");
        _cleanup_free_ char *err = tmp_path("die.err");
        pid_t p = spawn_detacher(DAEMON_DIE, info, err);
        int status;
        assert_int_equal(waitpid(p, &status, 0), p);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
        _cleanup_free_ char *e = slurp(err);
        assert_non_null(strstr(e, "daemon exited before it was ready"));
        _cleanup_free_ char *s = slurp(info);
        reap_daemon(atoi(s));
}

static int setup(void **state) {
        snprintf(dir, sizeof dir, "/tmp/test_daemon.XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("rm");
        cmd_args(c, "-rf", "--", dir, NULL);
        struct cmd_status st;
        return cmd_run(c, &st) == 0 && cmd_status_success(&st) ? 0 : -1;
}

int main(void) {
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pidfile_holds_our_pid_and_second_acquire_gets_ebusy_with_holder),
                cmocka_unit_test(test_stale_pidfile_of_dead_process_is_taken_over),
                cmocka_unit_test(test_lock_of_a_killed_holder_is_released),
                cmocka_unit_test(test_detach_parent_exits_zero_only_once_daemon_is_ready),
                cmocka_unit_test(test_detach_reports_startup_failure_with_exit_one),
                cmocka_unit_test(test_detach_reports_daemon_dying_before_ready),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
