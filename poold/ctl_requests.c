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
#include "log.h"
#include "model_request.h"
#include "table.h"
#include "zk.h"

enum { RC_ID, RC_PRIORITY, RC_STATE, RC_REQUESTOR, RC_NODE_TYPES, RC_NODES, RC_DECLINED_BY, RC_EVENT_ID, _RC_MAX };

static const struct table_column request_columns[_RC_MAX] = {
        [RC_ID] = { "id", "Request ID" },
        [RC_PRIORITY] = { "relative_priority", "Priority" },
        [RC_STATE] = { "state", "State" },
        [RC_REQUESTOR] = { "requestor", "Requestor" },
        [RC_NODE_TYPES] = { "node_types", "Node Types" },
        [RC_NODES] = { "nodes", "Nodes" },
        [RC_DECLINED_BY] = { "declined_by", "Declined By" },
        [RC_EVENT_ID] = { "event_id", "Event ID" },
};

int ctl_request_list(struct ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = { {} };
        if (getopt_long(argc, argv, "", opts, NULL) != -1 || optind < argc)
                return ctl_usage("request-list", "", "takes no arguments");

        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        char **ids = NULL;
        size_t n = 0;
        int r = ctl_children_sorted(zk, "/nodepool/requests", &ids, &n);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot list /nodepool/requests: %s\n", strerror(-r));
                return 1;
        }
        struct ctl_read *reads = xnew(struct ctl_read, n + 1);
        for (size_t i = 0; i < n; i++)
                reads[i] = (struct ctl_read){ .op = CTL_READ_GET, .path = xasprintf("/nodepool/requests/%s", ids[i]) };
        r = ctl_read_many(zk, reads, n);
        if (r < 0) {
                ctl_reads_free(reads, n);
                zk_strv_free(ids);
                fprintf(stderr, "poolctl: cannot read requests: %s\n", strerror(-r));
                return 1;
        }
        _cleanup_(table_freep) struct table *t = table_new(request_columns, _RC_MAX);
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
                table_add_row(t);
                table_set_str(t, RC_ID, req->id);
                table_set_int(t, RC_PRIORITY, (long long)req->relative_priority);
                table_set_str(t, RC_STATE, node_request_state_to_string(req->state));
                table_set_str(t, RC_REQUESTOR, req->requestor);
                table_set_strv(t, RC_NODE_TYPES, req->node_types);
                table_set_strv(t, RC_NODES, req->nodes);
                table_set_strv(t, RC_DECLINED_BY, req->declined_by);
                table_set_str(t, RC_EVENT_ID, req->event_id);
        }
        ctl_reads_free(reads, n);
        zk_strv_free(ids);
        return ctl_print_table(ctl, t);
}
