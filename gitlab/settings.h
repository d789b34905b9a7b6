/* settings.h — poold-gitlab-executor's own settings file (YAML).
 *
 * The file names the ZooKeeper ensemble poold serves, the label jobs get by
 * default, the SSH key the runner logs in to nodes with, timeouts and where
 * per-job state lives. Unknown keys and bad values are errors reported as
 * FILE:LINE:COL (config_diag.h); scalars get nodepool.yaml's %(NODEPOOL_x)
 * environment substitution. Loading is pure; any thread may read the result. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "config_diag.h"
#include "macro.h"
#include "zk.h"

#define SETTINGS_DEFAULT_PATH "/etc/poold/gitlab-executor.yaml"

struct settings {
        char *path;
        char *zk_hosts;                 /* "h1:p1,h2:p2/chroot" (required) */
        double zk_timeout;              /* session timeout, s: 10.0 */
        char *zk_tls_cert, *zk_tls_key, *zk_tls_ca; /* zookeeper-tls, as in nodepool.yaml; NULL: plaintext */
        char *label;                    /* default label; NULL: every job must name one */
        char *label_variable;           /* "POOLD_LABEL": read as CUSTOM_ENV_POOLD_LABEL */
        struct config_strv allowed_labels; /* empty: any label */
        int64_t priority;               /* 200, Zuul's "normal" precedence */
        char *tenant_name;              /* "gitlab" */
        char *requestor;                /* "gitlab-runner:<hostname>" */
        int64_t node_timeout;           /* s prepare waits for a node: 1800 */
        int64_t lock_timeout;           /* s to lock the node, as Zuul's executor: 30 */
        int64_t job_timeout;            /* s, when the job has no CI_JOB_TIMEOUT: 3600 */
        int64_t cleanup_grace;          /* s past the job timeout before the node is released anyway: 300 */
        bool watch_runner;              /* release when the runner process dies: true */
        char *state_dir;                /* "/var/lib/poold-gitlab-executor" */
        char *log_file;                 /* "<state-dir>/executor.log" */
        char *ssh_key;                  /* private key file (required) */
        int64_t ssh_connect_timeout;    /* s: 30 */
        char *builds_dir;               /* on the node: "/tmp/gitlab/builds" */
        char *cache_dir;                /* on the node: "/tmp/gitlab/cache" */
};

/* Load PATH. Problems (and warnings) go to DIAGS in file order. 0 and *ret
 * (caller frees) when there is no error; -EINVAL on errors, another -errno
 * when the file cannot be read (a diagnostic says so). */
int settings_load(const char *path, struct settings **ret, struct config_diags *diags);
/* The same from memory; NAME is used in diagnostics. */
int settings_load_buffer(const char *name, const char *data, size_t len, struct settings **ret,
                         struct config_diags *diags);
void settings_free(struct settings *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct settings *, settings_free);

/* True when LABEL may be requested (allowed-labels empty or listing it). */
bool settings_label_allowed(const struct settings *s, const char *label);

/* The zookeeper-tls of S for zk_new() (filled into BUF), or NULL for plaintext. */
const struct zk_tls *settings_zk_tls(const struct settings *s, struct zk_tls *buf);
