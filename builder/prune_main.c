/* prune_main.c — `poold-builder prune-stage-cache`: what every
 * disk-image-create run does at its end (build_prune.h), on demand, e.g.
 * after lowering the limits or to see what would go (--dry-run). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "build.h"
#include "build_prune.h"

static const char *usage_text(void) {
        return "usage: poold-builder prune-stage-cache [--max-age AGE] [--max-size SIZE] [--dry-run] [DIR]\n"
               "\n"
               "Remove the least recently used entries of the image stage cache DIR (default\n"
               "$POOLD_STAGE_CACHE, else " BUILD_DEFAULT_STAGE_CACHE "): first those unused for\n"
               "longer than AGE, then more until the cache takes at most SIZE. Entries a running\n"
               "build uses, and what they are built on, stay. disk-image-create does this at the\n"
               "end of every build.\n"
               "\n"
               "options:\n"
               "  --max-age AGE    e.g. 14d, 36h, 90m; 0 = no age limit\n"
               "                   (default $POOLD_STAGE_CACHE_MAX_AGE, else 14d)\n"
               "  --max-size SIZE  e.g. 20G, 500M; 0 = no size limit\n"
               "                   (default $POOLD_STAGE_CACHE_MAX_SIZE, else 20G)\n"
               "  --dry-run        only say what would be removed\n"
               "  -h, --help       this help\n";
}

int build_prune_main(int argc, char **argv) {
        static const struct option opts[] = {
                { "max-age", required_argument, NULL, 'a' },
                { "max-size", required_argument, NULL, 's' },
                { "dry-run", no_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ char *err = NULL;
        int64_t max_age;
        uint64_t max_size;
        if (build_prune_limits_from_env(&max_age, &max_size, &err) < 0) {
                fprintf(stderr, "prune-stage-cache: error: %s\n", err);
                return 2;
        }
        bool dry_run = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'a':
                        if (build_prune_parse_age(optarg, &max_age) < 0) {
                                fprintf(stderr, "prune-stage-cache: error: --max-age '%s' is not an age "
                                                "(e.g. 14d, 36h, 0 for none)\n", optarg);
                                return 2;
                        }
                        break;
                case 's':
                        if (build_prune_parse_size(optarg, &max_size) < 0) {
                                fprintf(stderr, "prune-stage-cache: error: --max-size '%s' is not a size "
                                                "(e.g. 20G, 500M, 0 for none)\n", optarg);
                                return 2;
                        }
                        break;
                case 'n': dry_run = true; break;
                case 'h': fputs(usage_text(), stdout); return 0;
                default: fputs(usage_text(), stderr); return 2;
                }
        }
        if (argc - optind > 1) {
                fprintf(stderr, "prune-stage-cache: error: one cache directory at most\n");
                return 2;
        }
        const char *dir = optind < argc ? argv[optind] : getenv("POOLD_STAGE_CACHE");
        if (!dir || !*dir) dir = BUILD_DEFAULT_STAGE_CACHE;

        struct build_prune_report rep;
        int64_t now = time(NULL);
        int r = build_cache_prune(dir, NULL, now, max_age, max_size, dry_run, &rep);
        if (r < 0) {
                fprintf(stderr, "prune-stage-cache: error: %s: %s\n", dir, strerror(-r));
                return 1;
        }
        _cleanup_free_ char *text = build_prune_report_text(&rep, now, max_age, max_size, dry_run);
        fputs(text, stdout);
        build_prune_report_done(&rep);
        return 0;
}
