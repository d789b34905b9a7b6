/* holder.h — the per-job process that holds the node's ZooKeeper lock.
 *
 * GitLab Runner runs every stage as a separate, short-lived process, but the
 * node lock (an ephemeral znode) lives only as long as the ZooKeeper session
 * that made it. So prepare forks a holder: it leaves the runner's process
 * group and session (setsid; stdio on /dev/null so the runner's output pipes
 * close when prepare exits), opens its own session, requests and locks the
 * node exactly as Zuul does (poolclient.h), and then waits for one of:
 *   - "release" on its control socket (cleanup, or a retried prepare): mark
 *     the node used, unlock, answer, exit;
 *   - the job's deadline (job timeout + cleanup-grace) passing: the same;
 *   - the runner process (prepare's parent) exiting, if watch-runner: the same;
 *   - prepare going away before the node was ready (its end of the report
 *     pipe closed), or SIGTERM/SIGINT: give the request or node back, exit.
 * Whatever happens, the lock cannot outlive the holder: if the holder itself
 * dies, ZooKeeper expires its session and the lock with it.
 *
 * Report pipe (holder → prepare), one line each: "i <text>" progress for the
 * job log, then "R" (the node is locked and in use) or "F <text>" (failed; the
 * holder has already cleaned up and exits). Control socket (job dir's
 * holder.sock, stream, one request line, one answer line): "status" →
 * "held <node-id>" | "waiting <request-id>" | "lost <why>"; "release" →
 * "released <what>". */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct settings;
struct job;

/* In the forked child: become the holder of job J, reporting on REPORT_FD
 * (owned) and, if RUNNER_PIDFD >= 0 (owned), releasing when that process
 * exits. Returns the process's exit code when the holder is done; the caller
 * returns it from main() so every resource is freed on the way out. */
int holder_main(const struct settings *s, const struct job *j, int report_fd, int runner_pidfd);

/* Client side: send REQUEST ("status", "release") to the holder of the job
 * in JOB_DIR and read its one-line answer (malloc'd, without the newline)
 * within TIMEOUT_MS. -ENOENT / -ECONNREFUSED when no holder listens there,
 * -ETIMEDOUT, other -errno. */
int holder_call(const char *job_dir, const char *request, int timeout_ms, char **ret_reply);
