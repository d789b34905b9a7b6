/* poold-gitlab-executor — GitLab Runner's custom executor on poold's node pool.
 *
 * A GitLab job gets a warm node from the pool exactly as a Zuul job does:
 * one binary, one sub-command per custom executor stage (stage.h). */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config_diag.h"
#include "job.h"
#include "log.h"
#include "settings.h"
#include "stage.h"

#ifndef POOLD_VERSION
#define POOLD_VERSION "0.1.0"
#endif

static void usage(FILE *f) {
        fprintf(f,
                "usage: poold-gitlab-executor [-c SETTINGS] config|prepare|cleanup\n"
                "       poold-gitlab-executor [-c SETTINGS] run SCRIPT STAGE\n"
                "\n"
                "GitLab Runner's custom executor for a poold (Nodepool-compatible) node pool: each\n"
                "job gets a ready node of its label from the pool, as a Zuul job does, runs its\n"
                "scripts there over ssh, and gives the node back (used) at cleanup.\n"
                "\n"
                "stages (as [runners.custom] in GitLab Runner's config.toml calls them):\n"
                "  config           print the runner's JSON (driver, builds_dir, cache_dir, job_env)\n"
                "  prepare          request a node (label: CI/CD variable named by label-variable,\n"
                "                   else the settings' label), lock it, mark it in-use\n"
                "  run SCRIPT STAGE run SCRIPT on the node over ssh; exit 0, BUILD_FAILURE_EXIT_CODE\n"
                "                   when the script fails, SYSTEM_FAILURE_EXIT_CODE when ssh does\n"
                "  cleanup          mark the node used and unlock it (poold deletes it)\n"
                "\n"
                "options:\n"
                "  -c, --config PATH   settings file (default %s)\n"
                "      --version       print the version and exit\n"
                "  -h, --help          show this help\n"
                "\n"
                "The job is named by CUSTOM_ENV_CI_JOB_ID; its state lives in the settings'\n"
                "state-dir. See the README section \"GitLab CI jobs on pool nodes\".\n",
                SETTINGS_DEFAULT_PATH);
}

/* The runner gives us stdin from /dev/null, but a closed 0, 1 or 2 would make
 * the next open() land there and turn a ZooKeeper socket into "stdout". */
static void ensure_std_fds(void) {
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0) {
                        int n = open("/dev/null", O_RDWR);
                        if (n >= 0 && n != fd) {
                                dup2(n, fd);
                                close(n);
                        }
                }
}

int main(int argc, char **argv) {
        const char *config_path = SETTINGS_DEFAULT_PATH;
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int build_failure, system_failure;
        ensure_std_fds();
        job_exit_codes(&build_failure, &system_failure);
        /* Progress lines reach the job log as they happen, not at exit. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        log_setup("poold-gitlab-executor", LOG_LEVEL_WARNING);

        int c;
        while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c': config_path = optarg; break;
                case 'V': printf("poold-gitlab-executor %s\n", POOLD_VERSION); return 0;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return system_failure;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return system_failure;
        }
        const char *stage = argv[optind];
        int nargs = argc - optind - 1;
        bool is_run = strcmp(stage, "run") == 0;
        bool known = is_run || strcmp(stage, "config") == 0 || strcmp(stage, "prepare") == 0 ||
                     strcmp(stage, "cleanup") == 0;
        if (!known || nargs != (is_run ? 2 : 0)) {
                fprintf(stderr, "poold-gitlab-executor: %s\n",
                        !known ? "unknown stage" : is_run ? "run takes SCRIPT and STAGE" : "unexpected arguments");
                usage(stderr);
                return system_failure;
        }

        struct config_diags diags = {};
        _cleanup_(settings_freep) struct settings *s = NULL;
        int r = settings_load(config_path, &s, &diags);
        config_diags_print(&diags, stderr);
        config_diags_clear(&diags);
        if (r < 0) {
                fprintf(stderr, "poold-gitlab-executor: cannot load settings %s\n", config_path);
                return system_failure;
        }

        if (strcmp(stage, "config") == 0) return stage_config(s);
        if (strcmp(stage, "prepare") == 0) return stage_prepare(s);
        if (is_run) return stage_run(s, argv[optind + 1], argv[optind + 2]);
        return stage_cleanup(s);
}
