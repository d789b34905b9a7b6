/* main.c — poold: the launcher daemon's entry point.
 *
 * DESIGN. Parse options, set up logging, load the configuration once to fail
 * fast (every diagnostic printed, exit 1), detach with a readiness handshake
 * unless -f/-d, then run one event loop until SIGTERM/SIGINT. All state lives
 * in the one static struct launcher below; everything else gets a pointer. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "daemon.h"
#include "launcher.h"
#include "log.h"
#include "service.h"

static struct launcher the_launcher;

static void usage(FILE *f) {
        fprintf(f,
                "usage: poold -c CONFIG [-s SECURE] [-f] [-d] [-p PIDFILE] [-l LOGFILE]\n"
                "\n"
                "Launch and delete nodes for Zuul's node requests (Nodepool-compatible launcher).\n"
                "\n"
                "options:\n"
                "  -c, --config PATH   nodepool.yaml (default /etc/nodepool/nodepool.yaml)\n"
                "  -s, --secure PATH   secure.yaml with ZooKeeper credentials and secrets\n"
                "  -f, --foreground    do not detach\n"
                "  -d, --debug         foreground, debug logging to stderr\n"
                "  -p, --pidfile PATH  pid file (default none in foreground, /var/run/nodepool/launcher.pid)\n"
                "  -l, --logfile PATH  log file (default stderr in foreground); a Python logging\n"
                "                      config (Nodepool's -l) is read for its file handler, never written\n"
                "      --version       print the version and exit\n"
                "  -h, --help          show this help\n");
}

static void on_stop_signal(struct loop *loop, int signo, void *ud) {
        struct launcher *l = ud;
        log_info("received %s, stopping", strsignal(signo));
        l->stopping = true;
        loop_exit(loop, 0);
}

static void on_hup(struct loop *loop, int signo, void *ud) {
        struct launcher *l = ud;
        log_info("received SIGHUP, reloading the configuration");
        log_reopen();
        launcher_reload(l);
}

int main(int argc, char **argv) {
        struct launcher *l = &the_launcher;
        const char *config_path = "/etc/nodepool/nodepool.yaml", *secure_path = NULL;
        const char *pidfile = NULL, *logfile = NULL;
        bool foreground = false, debug = false;
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "secure", required_argument, NULL, 's' },
                { "foreground", no_argument, NULL, 'f' },
                { "debug", no_argument, NULL, 'd' },
                { "pidfile", required_argument, NULL, 'p' },
                { "logfile", required_argument, NULL, 'l' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "c:s:fdp:l:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c': config_path = optarg; break;
                case 's': secure_path = optarg; break;
                case 'f': foreground = true; break;
                case 'd': foreground = debug = true; break;
                case 'p': pidfile = optarg; break;
                case 'l': logfile = optarg; break;
                case 'V': printf("poold %s\n", POOLD_VERSION); return 0;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return 2;
        }
        const char *lvl = getenv("POOLD_LOG_LEVEL");
        enum log_level level = debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
        if (lvl && log_level_from_string(lvl) >= 0) level = log_level_from_string(lvl);
        log_setup("poold", level);

        /* Load once before detaching so a bad file fails in the foreground. */
        struct config *cfg = NULL;
        int r = service_config_load(config_path, secure_path, &cfg);
        if (r < 0) {
                log_error("%s: configuration is not valid", config_path);
                return 1;
        }
        if (!foreground && !pidfile) pidfile = "/var/run/nodepool/launcher.pid";
        struct daemon_ready *ready = NULL;
        struct daemon_pidfile *pf = NULL;
        r = service_start("poold", logfile, foreground, pidfile, &ready, &pf);
        if (r < 0) {
                config_free(cfg);
                return 1;
        }

        l->config_path = xstrdup(config_path);
        l->secure_path = xstrdup(secure_path);
        l->cfg = cfg;
        r = loop_new(&l->loop);
        if (r < 0) {
                log_error_errno(r, "cannot create the event loop: %m");
                goto out;
        }
        /* Signals before any thread exists (workq, ZooKeeper), so they inherit the mask. */
        if ((r = loop_add_signal(l->loop, SIGTERM, on_stop_signal, l, NULL)) < 0 ||
            (r = loop_add_signal(l->loop, SIGINT, on_stop_signal, l, NULL)) < 0 ||
            (r = loop_add_signal(l->loop, SIGHUP, on_hup, l, NULL)) < 0) {
                log_error_errno(r, "cannot set up signals: %m");
                goto out;
        }
        signal(SIGPIPE, SIG_IGN);
        r = launcher_start(l);
        if (r == -ECANCELED) {
                r = 0; /* a stop signal during start-up: a clean stop */
                goto out;
        }
        if (r < 0) goto out;
        daemon_notify_ready(ready);
        ready = NULL;
        log_info("poold %s started (config %s)", POOLD_VERSION, config_path);
        r = loop_run(l->loop);
        if (r > 0) r = 0;
out:
        if (ready) daemon_notify_failed(ready, r < 0 ? r : -EIO);
        launcher_stop(l);
        loop_free(l->loop);
        free(l->config_path);
        free(l->secure_path);
        daemon_pidfile_release(pf);
        log_info("poold stopped");
        log_close();
        return r < 0 ? 1 : 0;
}
