/* webapp_internal.h — struct webapp, shared by the webapp*.c files only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "webapp.h"

struct MHD_Daemon;
struct loop_io;
struct loop_timer;
struct metrics;
struct statsd;
struct webapp_cached;

struct webapp {
        struct launcher *l;
        /* webapp.c: the HTTP server */
        struct MHD_Daemon *mhd;
        int port;
        struct loop_io *io;             /* MHD's epoll fd in our loop */
        struct loop_timer *mhd_timer;   /* MHD's connection timeouts */
        struct webapp_cached *cache;    /* rendered answers, 1 s like Nodepool (list) */
        unsigned n_cached;
        /* webapp_stats.c */
        struct loop_timer *stats_timer;
        struct statsd *statsd;
        struct metrics *metrics;
        char *last_gauges;              /* what was last sent to statsd (change detection) */
        uint64_t last_gauges_ms;
};
