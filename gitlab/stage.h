/* stage.h — the four programs GitLab Runner's custom executor runs, one per
 * stage, each a separate process of poold-gitlab-executor:
 *
 *   config   prints the JSON the runner reads: driver, builds_dir, cache_dir,
 *            job_env (POOLD_GITLAB_LABEL, the label this job will request)
 *   prepare  starts the job's holder (holder.h), which requests and locks a
 *            node as Zuul does; returns once the node is in use
 *   run      runs the runner's script for one sub-stage on the node over ssh
 *   cleanup  tells the holder to mark the node used and unlock it (or does
 *            it itself from node.json when the holder is gone)
 *
 * Each returns the process's exit code: 0, or the runner's
 * BUILD_FAILURE_EXIT_CODE (the job's own failure: its script failed, or it
 * asked for a label it may not have) or SYSTEM_FAILURE_EXIT_CODE (ours: no
 * node, ZooKeeper or ssh trouble). Progress goes to stdout and problems to
 * stderr: both end up in the job log (cleanup's in the runner's log). */
#pragma once

#include <stdio.h>

struct settings;

int stage_config(const struct settings *s);
int stage_prepare(const struct settings *s);
int stage_run(const struct settings *s, const char *script_path, const char *stage_name);
int stage_cleanup(const struct settings *s);

/* Give back what the job in JOB_DIR holds: ask its holder to release, or,
 * when no holder answers, delete its request and return its node (locking it
 * first, as the dead holder's session may still hold the lock until it
 * expires). Says what it did on OUT. 0 (also when there was nothing), or -errno. */
int stage_release_job(const struct settings *s, const char *job_dir, FILE *out);
