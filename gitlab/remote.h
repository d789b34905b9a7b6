/* remote.h — how a job script runs on the node: one ssh session per stage.
 *
 * The stages of one job share one ssh connection (OpenSSH connection
 * multiplexing, the master socket in the job's directory): GitLab runs four
 * or more stages per job, and each new connection pays a key exchange (~2 s
 * on a TCG guest). The master stays up 60 s after the last stage and is
 * stopped by cleanup (remote_mux_stop()).
 *
 * ssh runs with no config file, BatchMode, the settings' key only, and
 * StrictHostKeyChecking=yes against a known_hosts made from the node's
 * host_keys (nothing else is trusted). The remote command is a small POSIX sh
 * wrapper (remote_wrapper()) that reads exactly the script's bytes from stdin
 * into a temporary file and runs it with bash in its own session, with stdin
 * on /dev/null (a command in the job that reads stdin cannot eat the rest of
 * the script). The ssh connection's stdin then stays open: when it closes
 * (ssh killed because the stage was cancelled, or the runner died) the
 * wrapper sends SIGTERM to the job's process group, so nothing of a cancelled
 * job keeps running on a node that outlives it (static nodes do).
 *
 * Exit status: the script's own, or 255 when ssh or the wrapper failed
 * (connection, host key, temporary file): infrastructure, not the job. */
#pragma once

#include <stddef.h>

struct cmd;
struct settings;
struct job_record;

/* Exit status ssh (and the wrapper) use for "could not run the script". */
#define REMOTE_SSH_FAILURE 255

/* The remote command for a script of SCRIPT_LEN bytes. Malloc'd. */
char *remote_wrapper(size_t script_len);
/* Append ssh's options and destination for the node in REC to CMD (whose
 * program is ssh), then REMOTE_COMMAND as the one remote argument. JOB_DIR
 * holds known_hosts and the multiplexing socket. */
void remote_ssh_args(struct cmd *cmd, const struct settings *s, const struct job_record *rec,
                     const char *job_dir, const char *remote_command);
/* The multiplexing socket's path in JOB_DIR, or NULL when that path is too
 * long for a unix socket (then every stage connects on its own). Malloc'd. */
char *remote_mux_path(const char *job_dir);
/* Stop JOB_DIR's multiplexing master if one runs (best effort, bounded wait). */
void remote_mux_stop(const char *job_dir);
