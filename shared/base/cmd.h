/* cmd.h — the one way poold runs an external program (libvirt virCommand discipline).
 *
 * No shell, no system()/popen(): argv is built explicitly. The child gets a
 * clean environment (PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,
 * LC_ALL=C, HOME, plus what the caller adds), stdin from /dev/null unless given
 * input, stdout/stderr to /dev/null unless captured or logged, every fd but
 * 0/1/2 and explicitly passed ones closed, default signal
 * dispositions and an empty signal mask, its own process group. Output goes to
 * bounded buffers and/or a log fd. A timeout sends SIGTERM to the whole process
 * group, then SIGKILL after a grace period. The child is always reaped — on
 * every error path and by cmd_free() of a still-running command.
 *
 * A struct cmd is used by one thread at a time; cmd_run() may run on a worker
 * thread. Typical use:
 *
 *     _cleanup_(cmd_freep) struct cmd *c = cmd_new("qemu-img");
 *     cmd_args(c, "convert", "-O", "qcow2", src, dst, NULL);
 *     cmd_set_log_fd(c, build_log_fd);
 *     cmd_set_timeout(c, 600000);
 *     struct cmd_status st;
 *     r = cmd_run(c, &st);   // r < 0: could not run; else inspect st
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dbuf.h"
#include "loop.h"
#include "macro.h"

struct cmd;

enum cmd_outcome {
        CMD_EXITED,    /* code = exit status 0..255 */
        CMD_SIGNALED,  /* code = the signal that killed it */
        CMD_TIMED_OUT, /* code = the signal that killed it (SIGTERM, or SIGKILL after the grace),
                        * or its exit status if it exited by itself on SIGTERM */
        _CMD_OUTCOME_MAX,
        _CMD_OUTCOME_INVALID = -EINVAL,
};

struct cmd_status {
        enum cmd_outcome outcome;
        int code;
};

const char *cmd_outcome_to_string(enum cmd_outcome o);
/* True when the program exited with status 0. */
bool cmd_status_success(const struct cmd_status *st);

/* New command running prog (looked up in the child's PATH unless it contains '/'). */
struct cmd *cmd_new(const char *prog);
/* Kills (SIGKILL to the process group) and reaps a still-running child,
 * unregisters loop watches, frees everything. NULL is a no-op. */
void cmd_free(struct cmd *cmd);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cmd *, cmd_free);

/* Arguments after argv[0] (copied). cmd_args takes a NULL-terminated list. */
void cmd_arg(struct cmd *cmd, const char *arg);
void cmd_argf(struct cmd *cmd, const char *fmt, ...) _printf_(2, 3);
void cmd_args(struct cmd *cmd, ...) __attribute__((sentinel));

/* Set NAME=value in the child (replaces an earlier value of NAME). */
void cmd_setenv(struct cmd *cmd, const char *name, const char *value);
/* Copy NAME from this process's environment, if set there. */
void cmd_pass_env(struct cmd *cmd, const char *name);
/* Keep fd (not owned) open in the child under the same number. */
void cmd_pass_fd(struct cmd *cmd, int fd);
/* Feed these bytes (copied) to the child's stdin, then EOF. */
void cmd_set_input(struct cmd *cmd, const void *buf, size_t len);
/* The child's stdin is FD (not owned; the caller writes to its other end and
 * closes it when it wants the child to see EOF). Replaces cmd_set_input(). */
void cmd_set_stdin_fd(struct cmd *cmd, int fd);
/* Ask the kernel to send SIG to the child when this thread dies (Linux
 * PR_SET_PDEATHSIG), so the child, in its own process group, does not outlive
 * a parent killed with SIGKILL. 0 (the default) = no such signal. */
void cmd_set_parent_death_signal(struct cmd *cmd, int sig);
/* Capture stdout and stderr, each into its own buffer of at most max_bytes;
 * output beyond that is read and discarded (the first max_bytes are kept)
 * and cmd_output_truncated() says so. */
void cmd_capture_output(struct cmd *cmd, size_t max_bytes);
/* Append stdout and stderr (interleaved in the order written) to fd (not owned,
 * should be O_APPEND). Alone, the child writes to fd directly (exact order);
 * combined with capture, the parent copies each chunk as it reads it (order
 * between the two streams is then only as good as the reads). */
void cmd_set_log_fd(struct cmd *cmd, int fd);
void cmd_set_cwd(struct cmd *cmd, const char *dir);
/* Kill the child's process group ms after start (0 = no timeout, the default). */
void cmd_set_timeout(struct cmd *cmd, uint64_t ms);
/* Time between SIGTERM and SIGKILL on timeout (default 5000 ms). */
void cmd_set_kill_grace(struct cmd *cmd, uint64_t ms);

/* Run to completion. Returns 0 and *ret_status when the program ran (whatever
 * its outcome); -ENOENT when prog was not found, another -errno when it could
 * not be started (exec failure, bad cwd: the child's errno) or on internal
 * failure. Not reusable: a cmd runs once. */
int cmd_run(struct cmd *cmd, struct cmd_status *ret_status) _warn_unused_result_;

/* Start without waiting; same errors as cmd_run(). Then either cmd_finish()
 * (blocks) or cmd_start_async()'s loop integration. */
int cmd_start(struct cmd *cmd) _warn_unused_result_;
pid_t cmd_get_pid(const struct cmd *cmd);
/* A pidfd that polls readable when the child exits (-1 without pidfd support). */
int cmd_get_pidfd(const struct cmd *cmd);
/* Feed input, collect output, enforce the timeout until the child exits; reap it. */
int cmd_finish(struct cmd *cmd, struct cmd_status *ret_status) _warn_unused_result_;

/* Start and drive the child from loop (loop thread only): output pumped by
 * fd watches, timeout by timers. done runs once on the loop thread after the
 * child has been reaped; the cmd stays valid (read output, then cmd_free(),
 * which done may call). Returns as cmd_start(); done is not called on failure. */
typedef void (*cmd_done_fn)(struct cmd *cmd, const struct cmd_status *st, void *ud);
int cmd_start_async(struct cmd *cmd, struct loop *loop, cmd_done_fn done, void *ud) _warn_unused_result_;

/* Captured output (NUL-terminated, "" when none or not captured). */
const struct dbuf *cmd_stdout(const struct cmd *cmd);
const struct dbuf *cmd_stderr(const struct cmd *cmd);
/* True when stdout (fd 1) or stderr (fd 2) produced more than the cap. */
bool cmd_output_truncated(const struct cmd *cmd, int fd);
