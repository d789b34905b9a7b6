/* job.h — one GitLab job as the executor sees it: what GitLab Runner passes in
 * the environment, and the job's directory under state-dir that ties the
 * stages (separate processes) together.
 *
 * GitLab Runner hands every stage the job's CI/CD variables prefixed with
 * CUSTOM_ENV_, plus BUILD_FAILURE_EXIT_CODE and SYSTEM_FAILURE_EXIT_CODE.
 * The job directory, <state-dir>/job-<CI_JOB_ID>/, holds:
 *   node.json    the record: request id, then node id and how to reach it
 *   known_hosts  the node's host_keys, for ssh's StrictHostKeyChecking
 *   holder.sock  the holder's control socket (holder.h)
 * Pure functions and file I/O only; any thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

struct settings;

/* GitLab Runner's documented defaults, used when its variables are absent. */
#define JOB_BUILD_FAILURE_DEFAULT 1
#define JOB_SYSTEM_FAILURE_DEFAULT 2

/* The exit codes GitLab Runner asked for (BUILD_FAILURE_EXIT_CODE,
 * SYSTEM_FAILURE_EXIT_CODE), falling back to its defaults when unset or bad. */
void job_exit_codes(int *ret_build_failure, int *ret_system_failure);

struct job {
        char *id;              /* CUSTOM_ENV_CI_JOB_ID: digits only */
        char *label;           /* resolved label */
        const char *label_from; /* "job_env", "variable NAME" or "runner default": for messages */
        char *dir;             /* <state-dir>/job-<id> */
        int64_t timeout_s;     /* CUSTOM_ENV_CI_JOB_TIMEOUT, else the settings' job-timeout */
        char *project;         /* CUSTOM_ENV_CI_PROJECT_PATH or NULL */
        char *job_name;        /* CUSTOM_ENV_CI_JOB_NAME or NULL */
        char *pipeline_id;     /* CUSTOM_ENV_CI_PIPELINE_ID or NULL */
        char *job_url;         /* CUSTOM_ENV_CI_JOB_URL or NULL */
};

/* Read the job from this process's environment. The label comes from
 * POOLD_GITLAB_LABEL (set by the config stage through job_env), else the job
 * variable named by label-variable, else the settings' label. With
 * need_label false a missing label is not an error (cleanup). Returns 0 and
 * *ret, or -EINVAL with *ret_error (malloc'd) saying what is wrong. */
int job_from_env(const struct settings *s, bool need_label, struct job **ret, char **ret_error);
void job_free(struct job *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct job *, job_free);

/* Only the label resolution of job_from_env(): NULL when there is none. */
char *job_resolve_label(const struct settings *s, const char **ret_from);

/* ---- the job directory ---- */

/* What node.json says. Strings may be NULL (not known yet). */
struct job_record {
        char *job_id;
        char *label;
        char *request_id;
        char *node_id;          /* set once the node is locked */
        char *provider;
        char *interface_ip;
        int connection_port;
        char *username;
        pid_t holder_pid;
        double locked_time;     /* when the node was locked; 0 before */
        double deadline;        /* when the holder gives the node back anyway; 0 before */
};
void job_record_free(struct job_record *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct job_record *, job_record_free);

/* Write node.json atomically (temporary file + rename). 0 or -errno. */
int job_record_write(const char *dir, const struct job_record *r);
/* Read node.json: 0, -ENOENT when absent, -EINVAL when malformed. */
int job_record_read(const char *dir, struct job_record **ret);

/* Write DIR/known_hosts atomically (keyscan_known_hosts_text's lines). 0 or -errno. */
int job_known_hosts_write(const char *dir, const char *ip, int port, char *const *host_keys);

/* DIR/NAME, malloc'd. */
char *job_path(const char *dir, const char *name);
/* Create the state dir (0700, parents too) if missing. 0 or -errno. */
int job_state_dir_ensure(const char *state_dir);
/* Remove the job directory and the files in it; a missing one is 0. */
int job_dir_remove(const char *dir);
