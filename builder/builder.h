/* builder.h — the one daemon struct of poold-builder. */
#pragma once

#include <stdbool.h>
#include <time.h>

struct config;
struct loop;
struct loop_io;
struct loop_timer;
struct zk;
struct component;
struct daemon_pidfile;
struct daemon_ready;
struct bw;

struct builder {
        /* command line */
        const char *config_path;
        const char *secure_path;
        const char *pidfile_path;
        const char *logfile_path;
        bool foreground;
        bool debug;
        int build_workers;
        int upload_workers;

        /* state */
        struct config *config;
        struct timespec config_mtime, secure_mtime;
        char *zk_hosts;                 /* as connected; a change needs a restart */
        char hostname[256];
        char builder_id[37];            /* contents of <images-dir>/builder_id.txt */
        struct loop *loop;
        struct zk *zk;
        struct loop_io *zk_io;
        struct loop_timer *reload_timer;
        struct component *component;
        struct daemon_pidfile *pidfile;
        struct daemon_ready *ready;     /* detached parent waits until we register */
        struct bw *bw;                  /* builds, uploads, cleanup (bw.h) */
        int exit_code;
};

/* Read <images-dir>/builder_id.txt, creating it with a new uuid4 on first
 * start as Nodepool does, so builds stay attributed across restarts.
 * Returns 0 and fills ret_id, or -errno. */
int builder_id_load(const char *images_dir, char ret_id[static 37]);
