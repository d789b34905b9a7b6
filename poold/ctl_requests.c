/* ctl_requests.c — `poolctl request-list`: the node requests under
 * /nodepool/requests (protocol.md §1.4, §3.1), in znode name order, which is
 * priority then FIFO. Priority shows relative_priority, as Nodepool's does. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "ctl.h"
#include "listing.h"
#include "log.h"
#include "model_request.h"
#include "nodepool_zk.h"
#include "table.h"
#include "zk.h"

int ctl_request_list(struct ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = { {} };
        if (getopt_long(argc, argv, "", opts, NULL) != -1 || optind < argc)
                return ctl_usage("request-list", "", "takes no arguments");

        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        char **ids = NULL;
        size_t n = 0;
        int r = ctl_children_sorted(zk, NPZK_REQUESTS, &ids, &n);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot list " NPZK_REQUESTS ": %s\n", strerror(-r));
                return 1;
        }
        struct ctl_read *reads = xnew(struct ctl_read, n + 1);
        for (size_t i = 0; i < n; i++)
                reads[i] = (struct ctl_read){ .op = CTL_READ_GET, .path = npzk_request_path(ids[i]) };
        r = ctl_read_many(zk, reads, n);
        if (r < 0) {
                ctl_reads_free(reads, n);
                zk_strv_free(ids);
                fprintf(stderr, "poolctl: cannot read requests: %s\n", strerror(-r));
                return 1;
        }
        _cleanup_(table_freep) struct table *t = listing_request_table();
        for (size_t i = 0; i < n; i++) {
                if (reads[i].r == -ENOENT) continue; /* done and deleted meanwhile */
                if (reads[i].r < 0) {
                        log_warning("skipping request %s: %s", ids[i], strerror(-reads[i].r));
                        continue;
                }
                struct model_error err = {};
                _cleanup_(node_request_freep) struct node_request *req = NULL;
                if (node_request_from_json(reads[i].data, reads[i].len, ids[i], &req, &err) < 0) {
                        log_warning("skipping request %s: malformed record: %s", ids[i], err.msg);
                        continue;
                }
                listing_request_row(t, req);
        }
        ctl_reads_free(reads, n);
        zk_strv_free(ids);
        return ctl_print_table(ctl, t);
}
