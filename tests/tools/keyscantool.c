/* keyscantool — run one keyscan on an event loop and print the result, for
 * tests/integration/test_keyscan.py.
 *
 *   keyscantool [-t CONNECTION_TYPE] [-T TIMEOUT_MS] [-c CANCEL_AFTER_MS] [-v] HOST PORT
 *
 * Prints "status=<r> <ERRNAME>", "msg=<reason>", "elapsed_ms=<n>", then one
 * "key=<keytype> <base64>" line per key. Exit 0 on success, 1 when the scan
 * failed, 2 on usage errors, 3 when cancelled (-c) before it ended. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyscan.h"
#include "log.h"
#include "loop.h"

struct tool {
        struct loop *loop;
        struct keyscan *scan;
        uint64_t start_ms;
        int exit_code;
};

static void on_done(int error, char **keys, const char *msg, void *ud) {
        struct tool *t = ud;
        t->scan = NULL;
        printf("status=%d %s\n", error, error ? strerrorname_np(-error) : "OK");
        printf("msg=%s\n", msg);
        printf("elapsed_ms=%llu\n", (unsigned long long)(loop_now_ms() - t->start_ms));
        for (char **k = keys; k && *k; k++) printf("key=%s\n", *k);
        keyscan_strv_free(keys);
        fflush(stdout);
        t->exit_code = error ? 1 : 0;
        loop_exit(t->loop, 0);
}

static void on_cancel(struct loop *loop, struct loop_timer *timer, void *ud) {
        struct tool *t = ud;
        if (!t->scan) return;
        keyscan_cancel(t->scan);
        t->scan = NULL;
        printf("cancelled\nelapsed_ms=%llu\n", (unsigned long long)(loop_now_ms() - t->start_ms));
        fflush(stdout);
        t->exit_code = 3;
        loop_exit(loop, 0);
}

int main(int argc, char **argv) {
        const char *type = "ssh";
        uint64_t timeout_ms = 10000, cancel_ms = 0;
        int c;
        log_setup("keyscantool", LOG_LEVEL_WARNING);
        while ((c = getopt(argc, argv, "t:T:c:v")) != -1) {
                switch (c) {
                case 't': type = optarg; break;
                case 'T': timeout_ms = strtoull(optarg, NULL, 10); break;
                case 'c': cancel_ms = strtoull(optarg, NULL, 10); break;
                case 'v': log_set_level(LOG_LEVEL_DEBUG); break;
                default: return 2;
                }
        }
        if (argc - optind != 2) {
                fprintf(stderr, "usage: keyscantool [-t TYPE] [-T TIMEOUT_MS] [-c CANCEL_MS] [-v] HOST PORT\n");
                return 2;
        }
        struct tool t = { .exit_code = 2 };
        int r = loop_new(&t.loop);
        if (r < 0) return log_error_errno(r, "loop: %m"), 2;
        t.start_ms = loop_now_ms();
        r = keyscan_start(t.loop, argv[optind], atoi(argv[optind + 1]), timeout_ms, type, on_done, &t, &t.scan);
        if (r < 0) {
                log_error_errno(r, "keyscan_start: %m");
                loop_free(t.loop);
                return 2;
        }
        if (cancel_ms) loop_add_timer(t.loop, cancel_ms, false, on_cancel, &t);
        r = loop_run(t.loop);
        if (r < 0) log_error_errno(r, "loop: %m");
        keyscan_cancel(t.scan); /* only if the loop failed before the scan ended */
        loop_free(t.loop);
        return t.exit_code;
}
