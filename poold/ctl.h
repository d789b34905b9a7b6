/* ctl.h — the poolctl command table; each subcommand lives in poold/ctl_<topic>.c.
 *
 * A subcommand is int fn(struct ctl *ctl, int argc, char **argv): argv[0] is the
 * subcommand name, the rest its own arguments (parse them with getopt_long,
 * optind reset to 1 by the dispatcher). It returns the process exit code:
 * 0 success, 1 failure the user must act on (e.g. invalid config), 2 usage error. */
#pragma once

#include <stdbool.h>

struct ctl {
        const char *config_path;   /* -c, default /etc/nodepool/nodepool.yaml */
        const char *secure_path;   /* -s, may be NULL */
        bool json;                 /* --json: machine-readable output */
        bool debug;                /* --debug */
};

struct ctl_command {
        const char *name;
        int (*run)(struct ctl *ctl, int argc, char **argv);
        const char *args;          /* usage synopsis of the arguments */
        const char *help;          /* one line */
};

int ctl_config_validate(struct ctl *ctl, int argc, char **argv);
