/* poold-builder — the image builder daemon.
 *
 * DESIGN: one event loop drives everything (design.md). This file is the
 * process shape: options, configuration (and its reload), the ZooKeeper
 * session, the `builder` component registration (protocol.md §1.7), pidfile,
 * detaching, and a clean stop on SIGTERM/SIGINT. Building and uploading
 * images are the bw_*.c modules (bw.h) driven from this loop. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "build.h"
#include "build_prune.h"
#include "builder.h"
#include "bw.h"
#include "component.h"
#include "config.h"
#include "daemon.h"
#include "kvm_probe.h"
#include "log.h"
#include "loop.h"
#include "service.h"
#include "zk.h"

#ifndef POOLD_VERSION
#define POOLD_VERSION "0.1.0"
#endif

static struct builder B;

static void usage(FILE *f) {
        fprintf(f,
                "usage: poold-builder [-c CONFIG] [-s SECURE] [-f] [-d] [-p PIDFILE] [-l LOGFILE]\n"
                "                     [--build-workers N] [--upload-workers N]\n"
                "                     [--stage-cache-max-age AGE] [--stage-cache-max-size SIZE]\n"
                "\n"
                "Build disk images from elements and upload them to every provider (Nodepool's\n"
                "nodepool-builder, reading the same nodepool.yaml).\n"
                "\n"
                "options:\n"
                "  -c, --config PATH      nodepool.yaml (default /etc/nodepool/nodepool.yaml)\n"
                "  -s, --secure PATH      secure.yaml merged into the configuration\n"
                "  -f, --foreground       do not detach\n"
                "  -d, --debug            do not detach; log debug messages to stderr\n"
                "  -p, --pidfile PATH     pidfile (default /var/run/nodepool/builder.pid when detached)\n"
                "  -l, --logfile PATH     log to PATH (reopened on SIGHUP) instead of stderr; a Python\n"
                "                         logging config (Nodepool's -l) is read for its file handler\n"
                "      --build-workers N  concurrent builds (default 1)\n"
                "      --upload-workers N concurrent uploads (default 4)\n"
                "      --stage-cache-max-age AGE\n"
                "                         the built-in disk-image-create prunes stage cache entries\n"
                "                         unused for longer (e.g. 14d, 36h; 0 = never; default\n"
                "                         $POOLD_STAGE_CACHE_MAX_AGE, else 14d)\n"
                "      --stage-cache-max-size SIZE\n"
                "                         ...and then the least recently used ones beyond SIZE (e.g.\n"
                "                         20G; 0 = no limit; default $POOLD_STAGE_CACHE_MAX_SIZE, else 20G)\n"
                "      --version          print the version and exit\n"
                "  -h, --help             show this help\n"
                "\n"
                "       poold-builder disk-image-create [...]   build one image (see its --help)\n"
                "       poold-builder prune-stage-cache [...]   prune the stage cache now (see its --help)\n"
                "       poold-builder kvm-probe                whether QEMU can use KVM here, and why:\n"
                "                                              prints 'kvm: REASON' or 'tcg: REASON'\n"
                "\n"
                "Signals: SIGTERM/SIGINT stop cleanly; SIGHUP reloads the configuration and\n"
                "reopens the log file. The configuration is also reloaded when it changes.\n");
}

/* Boots a kernel under KVM (kvm_probe.h): what builds and libvirt nodes will use. */
static int kvm_probe_main(void) {
        bool usable = false;
        _cleanup_free_ char *why = NULL;
        (void)kvm_probe(&usable, &why);
        printf("%s: %s\n", usable ? "kvm" : "tcg", why);
        return 0;
}

static int parse_args(int argc, char **argv) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "secure", required_argument, NULL, 's' },
                { "foreground", no_argument, NULL, 'f' },
                { "debug", no_argument, NULL, 'd' },
                { "pidfile", required_argument, NULL, 'p' },
                { "logfile", required_argument, NULL, 'l' },
                { "build-workers", required_argument, NULL, 'B' },
                { "upload-workers", required_argument, NULL, 'U' },
                { "stage-cache-max-age", required_argument, NULL, 'A' },
                { "stage-cache-max-size", required_argument, NULL, 'S' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        B.config_path = "/etc/nodepool/nodepool.yaml";
        B.build_workers = 1;
        B.upload_workers = 4;
        int c;
        while ((c = getopt_long(argc, argv, "c:s:fdp:l:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c': B.config_path = optarg; break;
                case 's': B.secure_path = optarg; break;
                case 'f': B.foreground = true; break;
                case 'd': B.foreground = B.debug = true; break;
                case 'p': B.pidfile_path = optarg; break;
                case 'l': B.logfile_path = optarg; break;
                case 'B':
                case 'U': {
                        char *end;
                        long n = strtol(optarg, &end, 10);
                        if (*end || n < 1 || n > 64) {
                                fprintf(stderr, "poold-builder: --%s must be 1..64\n",
                                        c == 'B' ? "build-workers" : "upload-workers");
                                return -EINVAL;
                        }
                        *(c == 'B' ? &B.build_workers : &B.upload_workers) = (int)n;
                        break;
                }
                case 'A':
                case 'S': {
                        /* Builds inherit our environment: that is how disk-image-create gets them. */
                        int64_t age;
                        uint64_t size;
                        int r = c == 'A' ? build_prune_parse_age(optarg, &age) : build_prune_parse_size(optarg, &size);
                        if (r < 0) {
                                fprintf(stderr, "poold-builder: --%s '%s' is not %s\n",
                                        c == 'A' ? "stage-cache-max-age" : "stage-cache-max-size", optarg,
                                        c == 'A' ? "an age (e.g. 14d, 36h, 0 for none)"
                                                 : "a size (e.g. 20G, 500M, 0 for none)");
                                return -EINVAL;
                        }
                        setenv(c == 'A' ? "POOLD_STAGE_CACHE_MAX_AGE" : "POOLD_STAGE_CACHE_MAX_SIZE", optarg, 1);
                        break;
                }
                case 'V': printf("poold-builder %s\n", POOLD_VERSION); exit(0);
                case 'h': usage(stdout); exit(0);
                default: usage(stderr); return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "poold-builder: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (!B.foreground && !B.pidfile_path) B.pidfile_path = "/var/run/nodepool/builder.pid";
        /* Checked now rather than failing every build later. */
        int64_t age;
        uint64_t size;
        _cleanup_free_ char *err = NULL;
        if (build_prune_limits_from_env(&age, &size, &err) < 0) {
                fprintf(stderr, "poold-builder: %s\n", err);
                return -EINVAL;
        }
        return 0;
}

/* The builder needs images-dir: Nodepool refuses to start without it too. */
static int check_config(const struct config *c) {
        if (!c->images_dir) return log_error_errno(EINVAL, "%s: images-dir is required by the builder", c->path);
        return 0;
}

static void reload_config(void) {
        struct config *c = NULL;
        log_info("configuration changed, reloading %s", B.config_path);
        if (service_config_load(B.config_path, B.secure_path, &c) < 0 || check_config(c) < 0) {
                log_error("keeping the previous configuration");
                config_free(c);
                return;
        }
        _cleanup_free_ char *hosts = config_zookeeper_hosts(c);
        if (strcmp(hosts, B.zk_hosts) != 0)
                log_warning("zookeeper-servers changed; restart poold-builder to use them");
        if (!config_zookeeper_tls_equal(B.config, c)) log_warning("zookeeper-tls changed; restart poold-builder to use it");
        config_free(B.config);
        B.config = c;
        bw_config_changed(B.bw);
}

static void on_reload_timer(struct loop *loop, struct loop_timer *t, void *ud) {
        bool changed = service_file_changed(B.config_path, &B.config_mtime);
        changed |= service_file_changed(B.secure_path, &B.secure_mtime);
        if (changed) reload_config();
}

static void on_signal(struct loop *loop, int signo, void *ud) {
        if (signo == SIGHUP) {
                log_reopen();
                reload_config();
                return;
        }
        log_info("received %s, stopping", strsignal(signo));
        loop_exit(loop, 0);
}

static void on_zk_state(struct zk *zk, enum zk_state state, void *ud) {
        log_info("ZooKeeper session %s", zk_state_to_string(state));
        /* The component re-registers itself after an expiry; only the first
         * connection needs us. */
        if (state == ZK_STATE_CONNECTED && !component_path(B.component)) {
                int r = component_register(B.component);
                if (r < 0) {
                        log_error_errno(r, "registering the builder component failed: %m");
                        return;
                }
                log_info("registered as %s", component_path(B.component));
                /* Only now is the builder visible to the cluster: let `poold-builder`
                 * (detached) return. */
                daemon_notify_ready(TAKE_PTR(B.ready));
        }
        if (state == ZK_STATE_CONNECTED) bw_start(B.bw);
}

static int setup(void) {
        int r;
        if (mkdir(B.config->images_dir, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "cannot create images-dir %s: %m", B.config->images_dir);
        r = builder_id_load(B.config->images_dir, B.builder_id);
        if (r < 0) return log_error_errno(r, "%s/builder_id.txt: %m", B.config->images_dir);

        r = loop_new(&B.loop);
        if (r < 0) return log_error_errno(r, "event loop: %m");
        int sigs[] = { SIGTERM, SIGINT, SIGHUP };
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                r = loop_add_signal(B.loop, sigs[i], on_signal, NULL, NULL);
                if (r < 0) return log_error_errno(r, "signal handler: %m");
        }
        signal(SIGPIPE, SIG_IGN);

        B.zk_hosts = config_zookeeper_hosts(B.config);
        struct zk_tls tls;
        r = zk_new(B.zk_hosts, (int)(B.config->zk_timeout * 1000), config_zookeeper_tls(B.config, &tls), &B.zk);
        if (r < 0) return log_error_errno(r, "ZooKeeper %s: %m", B.zk_hosts);
        r = service_zk_attach(B.loop, B.zk, &B.zk_io);
        if (r < 0) return log_error_errno(r, "ZooKeeper event fd: %m");

        service_hostname(B.hostname, sizeof B.hostname);
        r = component_new(B.zk, "builder", B.hostname, POOLD_VERSION, &B.component);
        if (r < 0) return log_error_errno(r, "builder component: %m");
        component_set_state(B.component, "running");
        r = bw_new(&B, &B.bw);
        if (r < 0) return r;
        zk_add_state_listener(B.zk, on_zk_state, NULL);

        service_file_changed(B.config_path, &B.config_mtime);
        service_file_changed(B.secure_path, &B.secure_mtime);
        B.reload_timer = loop_add_timer(B.loop, 1000, true, on_reload_timer, NULL);
        return 0;
}

static void teardown(void) {
        /* Builds are killed and recorded, uploads finish, while ZooKeeper is still up. */
        bw_free(TAKE_PTR(B.bw));
        if (B.component) {
                component_unregister(B.component);
                component_free(B.component);
        }
        loop_timer_cancel(B.reload_timer);
        loop_io_remove(B.zk_io);
        zk_free(B.zk);
        loop_free(B.loop);
        config_free(B.config);
        free(B.zk_hosts);
        daemon_pidfile_release(B.pidfile);
}

int main(int argc, char **argv) {
        if (argc > 1 && strcmp(argv[1], "disk-image-create") == 0) return dib_main(argc - 1, argv + 1);
        if (argc > 1 && strcmp(argv[1], "prune-stage-cache") == 0) return build_prune_main(argc - 1, argv + 1);
        if (argc == 2 && strcmp(argv[1], "kvm-probe") == 0) return kvm_probe_main();
        if (parse_args(argc, argv) < 0) return 2;
        log_setup("poold-builder", B.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);

        int r = service_config_load(B.config_path, B.secure_path, &B.config);
        if (r < 0 || check_config(B.config) < 0) {
                config_free(B.config);
                return 1;
        }
        r = service_start("poold-builder", B.logfile_path, B.foreground, B.pidfile_path, &B.ready, &B.pidfile);
        if (r < 0) {
                config_free(B.config);
                return 1;
        }

        r = setup();
        if (r < 0) {
                daemon_notify_failed(TAKE_PTR(B.ready), r);
                teardown();
                return 1;
        }
        log_info("poold-builder %s started (builder id %s, %d build / %d upload workers); "
                 "waiting for ZooKeeper at %s", POOLD_VERSION, B.builder_id, B.build_workers,
                 B.upload_workers, B.zk_hosts);

        B.exit_code = loop_run(B.loop);
        daemon_notify_failed(TAKE_PTR(B.ready), -ECANCELED); /* stopped before ever registering */
        teardown();
        log_info("poold-builder stopped");
        log_close();
        return B.exit_code < 0 ? 1 : B.exit_code;
}
