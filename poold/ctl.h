/* ctl.h — the poolctl command table; each subcommand lives in poold/ctl_<topic>.c.
 *
 * A subcommand is int fn(struct ctl *ctl, int argc, char **argv): argv[0] is the
 * subcommand name, the rest its own arguments (parse them with getopt_long,
 * optind reset by the dispatcher; options may follow operands). It returns the process exit code:
 * 0 success, 1 failure the user must act on (e.g. invalid config), 2 usage error. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- ZooKeeper subcommands (ctl_nodes.c, ctl_requests.c, ctl_images.c, ctl_data.c) ---- */
int ctl_list(struct ctl *ctl, int argc, char **argv);
int ctl_delete(struct ctl *ctl, int argc, char **argv);
int ctl_hold(struct ctl *ctl, int argc, char **argv);
int ctl_info(struct ctl *ctl, int argc, char **argv);
int ctl_erase(struct ctl *ctl, int argc, char **argv);
int ctl_request_list(struct ctl *ctl, int argc, char **argv);
int ctl_dib_image_list(struct ctl *ctl, int argc, char **argv);
int ctl_image_list(struct ctl *ctl, int argc, char **argv);
int ctl_alien_image_list(struct ctl *ctl, int argc, char **argv);
int ctl_image_status(struct ctl *ctl, int argc, char **argv);
int ctl_image_build(struct ctl *ctl, int argc, char **argv);
int ctl_image_delete(struct ctl *ctl, int argc, char **argv);
int ctl_dib_image_delete(struct ctl *ctl, int argc, char **argv);
int ctl_image_pause(struct ctl *ctl, int argc, char **argv);
int ctl_image_unpause(struct ctl *ctl, int argc, char **argv);
int ctl_export_image_data(struct ctl *ctl, int argc, char **argv);
int ctl_import_image_data(struct ctl *ctl, int argc, char **argv);

/* ---- shared helpers (ctl_common.c); all run on the main thread ---- */
struct config;
struct zk;
struct zk_stat;
struct table;

/* How long poolctl waits for ZooKeeper before giving up, at most. */
#define CTL_CONNECT_TIMEOUT_MS 10000

/* Load -c/-s. On failure the problems are printed to stderr and -errno
 * returned. *ret owned by the caller (config_free). */
int ctl_load_config(struct ctl *ctl, struct config **ret);
/* Load the config and connect to its zookeeper-servers, waiting at most
 * min(zookeeper-timeout, CTL_CONNECT_TIMEOUT_MS). Failures are reported on
 * stderr; returns 0 or -errno. Both results owned by the caller. */
int ctl_open(struct ctl *ctl, struct config **ret_config, struct zk **ret_zk);
/* Print T as text, or JSON under --json: the exit code (0, or 1 when stdout fails). */
int ctl_print_table(struct ctl *ctl, const struct table *t);
/* Usage error for subcommand NAME: message (may be NULL) + synopsis on stderr; returns 2. */
int ctl_usage(const char *name, const char *synopsis, const char *msg);

/* One read of a pipelined batch (ctl_read_many). Fill op and path; the rest
 * is the answer: r (0 or -errno, -ENOENT for a missing node), data/len for
 * CTL_READ_GET, stat (GET, EXISTS: r == 0 means it exists), children for
 * CTL_READ_CHILDREN (sorted). ctl_reads_free() frees paths and answers. */
enum ctl_read_op { CTL_READ_GET, CTL_READ_EXISTS, CTL_READ_CHILDREN };
struct ctl_read {
        enum ctl_read_op op;
        char *path;                /* owned */
        void *userdata;            /* the caller's, untouched */
        bool done;
        int r;
        char *data;
        size_t len;
        int32_t num_children;      /* GET, EXISTS */
        int64_t ctime_ms;          /* GET, EXISTS */
        char **children;           /* CHILDREN, NULL-terminated */
        size_t n_children;
};
/* Issue every read at once and wait for all answers (one round trip's worth
 * of latency instead of N). 0, or -ETIMEDOUT / -ECONNRESET if ZooKeeper stops
 * answering (then some reads are not done and keep r = that error). */
int ctl_read_many(struct zk *zk, struct ctl_read *reads, size_t n);
void ctl_reads_free(struct ctl_read *reads, size_t n);
/* Sorted children of PATH (none when it does not exist): 0 or -errno. */
int ctl_children_sorted(struct zk *zk, const char *path, char ***ret, size_t *ret_n);

/* ---- the /nodepool/images tree, read in one pipelined pass per level (ctl_images.c) ---- */
struct npzk_images;

/* Read the whole tree, decoded by nodepool_zk.h (sorted; the raw records are
 * kept for export; a malformed one is warned about and kept undecoded).
 * Vanishing znodes are skipped. 0 or -errno; free with npzk_images_done(). */
int ctl_images_load(struct zk *zk, struct npzk_images *ret);

/* Read the record at PATH for a command; WHAT names it in messages
 * ("build foo-123"). Returns 0 with the data, or 1 (the exit code) after
 * printing why: not found, or the ZooKeeper error. */
int ctl_get_record(struct zk *zk, const char *path, const char *what, char **ret_data, size_t *ret_len);
/* Store JSON at PATH (any version); 0, or 1 after printing the error. */
int ctl_put_record(struct zk *zk, const char *path, const char *json, size_t len);

