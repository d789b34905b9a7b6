/* statsdtool — send the builder's statsd metrics (shared/base/statsd.h) from the
 * command line, configured from STATSD_HOST/STATSD_PORT/STATSD_PREFIX like
 * the daemons, so integration tests can check the wire lines.
 *
 *   statsdtool build IMAGE RC DURATION_MS
 *   statsdtool size IMAGE EXT BYTES
 *   statsdtool upload IMAGE PROVIDER OK(0|1) DURATION_MS
 *   statsdtool build-state HOST IMAGE STATE
 *   statsdtool upload-state HOST IMAGE PROVIDER STATE
 *   statsdtool many N          N gauges "poold.test.<i>" (datagram packing)
 *
 * Exit: 0 sent, 1 statsd not configured or unusable, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "statsd.h"

int main(int argc, char **argv) {
        if (argc < 2) goto usage;
        struct statsd *s = NULL;
        int r = statsd_new_from_env(&s);
        if (r < 0 || !s) {
                fprintf(stderr, "statsdtool: statsd not configured (%s)\n", r < 0 ? strerror(-r) : "no STATSD_*");
                return 1;
        }
        const char *cmd = argv[1];
        if (strcmp(cmd, "build") == 0 && argc == 5)
                statsd_builder_build(s, argv[2], atoi(argv[3]), atof(argv[4]));
        else if (strcmp(cmd, "size") == 0 && argc == 5)
                statsd_builder_image_size(s, argv[2], argv[3], atoll(argv[4]));
        else if (strcmp(cmd, "upload") == 0 && argc == 6)
                statsd_builder_upload(s, argv[2], argv[3], atoi(argv[4]) != 0, atof(argv[5]));
        else if (strcmp(cmd, "build-state") == 0 && argc == 5)
                statsd_builder_build_state(s, argv[2], argv[3], atoi(argv[4]));
        else if (strcmp(cmd, "upload-state") == 0 && argc == 6)
                statsd_builder_upload_state(s, argv[2], argv[3], argv[4], atoi(argv[5]));
        else if (strcmp(cmd, "many") == 0 && argc == 3) {
                for (int i = 0; i < atoi(argv[2]); i++) {
                        char *name = xasprintf("poold.test.%d", i);
                        statsd_gauge(s, name, i);
                        free(name);
                }
        } else {
                statsd_free(s);
                goto usage;
        }
        statsd_free(s); /* flushes */
        return 0;
usage:
        fprintf(stderr, "usage: statsdtool build|size|upload|build-state|upload-state|many ARGS...\n");
        return 2;
}
