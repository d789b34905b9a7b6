/* stage_config.c — config_exec: what GitLab Runner should know before prepare. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "job.h"
#include "json_util.h"
#include "settings.h"
#include "stage.h"

#ifndef POOLD_VERSION
#define POOLD_VERSION "0.1.0"
#endif

int stage_config(const struct settings *s) {
        int build_failure, system_failure;
        job_exit_codes(&build_failure, &system_failure);
        _cleanup_(json_util_decrefp) json_t *o = json_util_must(json_object());
        json_t *driver = json_util_must(json_object());
        json_object_set_new(driver, "name", json_util_must(json_string("poold")));
        json_object_set_new(driver, "version", json_util_must(json_string(POOLD_VERSION)));
        json_object_set_new(o, "driver", driver);
        json_object_set_new(o, "builds_dir", json_util_must(json_string(s->builds_dir)));
        json_object_set_new(o, "cache_dir", json_util_must(json_string(s->cache_dir)));
        /* Every job has a node of its own. */
        json_object_set_new(o, "builds_dir_is_shared", json_false());
        json_t *env = json_util_must(json_object());
        const char *from = NULL;
        _cleanup_free_ char *label = job_resolve_label(s, &from);
        /* Resolved once here; prepare reads it back (a missing label is prepare's error to report). */
        if (label) json_object_set_new(env, "POOLD_GITLAB_LABEL", json_util_must(json_string(label)));
        json_object_set_new(o, "job_env", env);
        _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT);
        if (!text || printf("%s\n", text) < 0 || fflush(stdout) != 0) {
                fprintf(stderr, "poold-gitlab-executor: cannot write the configuration to stdout\n");
                return system_failure;
        }
        return 0;
}
