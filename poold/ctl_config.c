/* ctl_config.c — `poolctl config-validate`: load nodepool.yaml (+ secure file) and
 * print every problem. Needs no ZooKeeper. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ctl.h"

int ctl_config_validate(struct ctl *ctl, int argc, char **argv) {
        if (argc > 1) {
                fprintf(stderr, "poolctl config-validate: unexpected argument '%s'\n", argv[1]);
                return 2;
        }
        struct config_diags diags = {};
        struct config *cfg = NULL;
        int r = config_load(ctl->config_path, ctl->secure_path, &cfg, &diags);
        config_diags_print(&diags, stderr);
        size_t errors = config_diags_count(&diags, CONFIG_SEVERITY_ERROR);
        config_diags_clear(&diags);
        config_free(cfg);
        if (r == -EINVAL) {
                fprintf(stderr, "%s: %zu error%s found, configuration is invalid\n", ctl->config_path, errors,
                        errors == 1 ? "" : "s");
                return 1;
        }
        if (r < 0) return 1;    /* unreadable file: already named by a diagnostic */
        return 0;
}
