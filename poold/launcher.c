/* launcher.c — start/stop of the launcher, its ZooKeeper session, the
 * launcher component and configuration reloads.
 *
 * DESIGN. One loop thread owns everything. The ZooKeeper session's eventfd is
 * watched by the loop and drained with zk_dispatch(); cache events only mark
 * the launcher dirty, and a prepare hook runs the request, delete and
 * min-ready passes once per loop iteration (batching a burst of events into
 * one pass). A 1 s tick checks the config file's mtime like Nodepool; SIGHUP
 * forces a reload. A reload that fails validation keeps the old config. */
#include "launcher.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "service.h"
#include "statsd.h"
#include "webapp.h"

#define CONNECT_TIMEOUT_MS 60000
#define CONNECT_SLICE_MS 200

static void on_zk_fd(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct launcher *l = ud;
        zk_dispatch(l->zk);
}

static void on_zk_state(struct zk *zk, enum zk_state s, void *ud) {
        struct launcher *l = ud;
        log_info("ZooKeeper session %s", zk_state_to_string(s));
        if (s == ZK_STATE_EXPIRED) launcher_session_lost(l);
        if (s == ZK_STATE_SUSPENDED || s == ZK_STATE_EXPIRED) l->zk_was_down = true;
        if (s == ZK_STATE_CONNECTED && l->zk_was_down) launcher_session_back(l);
        launcher_kick(l);
}

static void file_mtime(const char *path, struct timespec *ret) {
        struct stat st;
        if (path && stat(path, &st) == 0)
                *ret = st.st_mtim;
        else
                *ret = (struct timespec){};
}

static bool ts_equal(const struct timespec *a, const struct timespec *b) {
        return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static void on_prepare(struct loop *loop, void *ud) {
        struct launcher *l = ud;
        if (!l->dirty || l->stopping) return;
        l->dirty = false;
        launcher_run_passes(l);
}

static void on_tick(struct loop *loop, struct loop_timer *t, void *ud) {
        struct launcher *l = ud;
        struct timespec m, s;
        file_mtime(l->config_path, &m);
        file_mtime(l->secure_path, &s);
        if (!ts_equal(&m, &l->config_mtime) || !ts_equal(&s, &l->secure_mtime)) {
                log_info("configuration file changed, reloading");
                launcher_reload(l);
        }
        if (l->lost_check_until_ms) {
                if (loop_now_ms() > l->lost_check_until_ms)
                        l->lost_check_until_ms = 0;
                else if (zk_is_connected(l->zk) && caches_synced(l))
                        cleanup_lost_requests(l);
        }
        launcher_kick(l);
}

void launcher_kick(struct launcher *l) { l->dirty = true; }

const char *launcher_hostname(struct launcher *l) { return l->hostname; }

void launcher_reload(struct launcher *l) {
        struct config_diags diags = {};
        struct config *cfg = NULL;
        /* Record the mtime first: a broken file is reported once, not every second. */
        file_mtime(l->config_path, &l->config_mtime);
        file_mtime(l->secure_path, &l->secure_mtime);
        int r = config_load(l->config_path, l->secure_path, &cfg, &diags);
        for (size_t i = 0; i < diags.n; i++) {
                const struct config_diag *d = &diags.items[i];
                log_internal(d->severity == CONFIG_SEVERITY_ERROR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING, 0,
                             "%s:%u:%u: %s: %s", d->file, d->line, d->column,
                             d->severity == CONFIG_SEVERITY_ERROR ? "error" : "warning", d->message);
        }
        config_diags_clear(&diags);
        if (r < 0) {
                log_error("new configuration %s is not valid; keeping the previous one", l->config_path);
                return;
        }
        _cleanup_free_ char *old_hosts = config_zookeeper_hosts(l->cfg);
        _cleanup_free_ char *new_hosts = config_zookeeper_hosts(cfg);
        if (!old_hosts || !new_hosts || strcmp(old_hosts, new_hosts) != 0)
                log_warning("zookeeper-servers changed; restart poold to use the new servers");
        if (!config_zookeeper_tls_equal(l->cfg, cfg))
                log_warning("zookeeper-tls changed; restart poold to use it");
        struct config *old = l->cfg;
        l->cfg = cfg;
        pools_sync(l);
        caches_reaccount(l);
        config_free(old);
        log_info("configuration reloaded");
        launcher_kick(l);
}

int launcher_start(struct launcher *l) {
        char host[256] = "localhost";
        if (gethostname(host, sizeof host - 1) < 0) log_warning_errno(errno, "gethostname: %m");
        l->hostname = xstrdup(host);
        file_mtime(l->config_path, &l->config_mtime);
        file_mtime(l->secure_path, &l->secure_mtime);
        const char *ci = getenv("POOLD_CLEANUP_INTERVAL_MS");
        l->cleanup_interval_ms = ci && atoll(ci) > 0 ? (uint64_t)atoll(ci) : 60000;

        int r = workq_new(l->loop, 4, 100000, &l->wq);
        if (r < 0) return log_error_errno(r, "cannot start worker threads: %m");
        /* The web app's client reports the same failure (stats_init). */
        (void)statsd_new_from_env(&l->api_statsd);

        _cleanup_free_ char *hosts = config_zookeeper_hosts(l->cfg);
        if (!hosts) {
                log_error("%s: no zookeeper-servers configured", l->config_path);
                return -EINVAL;
        }
        struct zk_tls tls;
        r = zk_new(hosts, (int)(l->cfg->zk_timeout * 1000), config_zookeeper_tls(l->cfg, &tls), &l->zk);
        if (r < 0) return log_error_errno(r, "cannot start a ZooKeeper session to %s: %m", hosts);
        zk_add_state_listener(l->zk, on_zk_state, l);
        r = loop_add_fd(l->loop, zk_event_fd(l->zk), EPOLLIN, on_zk_fd, l, &l->zk_io);
        if (r < 0) return log_error_errno(r, "cannot watch the ZooKeeper session: %m");
        /* In slices: SIGTERM is blocked for the loop's signalfd until the loop
         * runs, and a stop must not wait for an ensemble that does not answer. */
        for (int waited = 0;; waited += CONNECT_SLICE_MS) {
                r = zk_connect_wait(l->zk, CONNECT_SLICE_MS);
                if (r != -ETIMEDOUT || waited + CONNECT_SLICE_MS >= CONNECT_TIMEOUT_MS) break;
                if (service_stop_pending()) {
                        log_info("stop requested while waiting for ZooKeeper at %s", hosts);
                        return -ECANCELED;
                }
        }
        if (r < 0) return log_error_errno(r, "cannot connect to ZooKeeper at %s: %m", hosts);
        log_info("connected to ZooKeeper at %s", hosts);

        r = component_new(l->zk, "launcher", l->hostname, POOLD_VERSION, &l->component);
        if (r < 0) return log_error_errno(r, "cannot create the launcher component: %m");
        component_set_state(l->component, "running");
        r = component_register(l->component);
        if (r < 0) return log_error_errno(r, "cannot register the launcher component: %m");
        log_info("registered launcher component %s", component_path(l->component));

        r = launcher_subsystems_start(l);
        if (r < 0) return r;
        webapp_start(l);

        l->tick = loop_add_timer(l->loop, 1000, true, on_tick, l);
        l->prepare = loop_add_prepare(l->loop, on_prepare, l);
        launcher_kick(l);
        return 0;
}

void launcher_stop(struct launcher *l) {
        l->stopping = true;
        webapp_stop(l);
        if (l->tick) loop_timer_cancel(l->tick);
        l->tick = NULL;
        if (l->prepare) loop_prepare_remove(l->prepare);
        l->prepare = NULL;
        launcher_subsystems_stop(l);
        /* Finish running provider calls; their completions release what they hold. */
        workq_free(l->wq);
        l->wq = NULL;
        launcher_subsystems_free(l);
        statsd_free(l->api_statsd);
        l->api_statsd = NULL;
        if (l->component) {
                component_set_state(l->component, "stopped");
                int r = component_unregister(l->component);
                if (r < 0) log_warning_errno(r, "cannot unregister the launcher component: %m");
        }
        component_free(l->component);
        l->component = NULL;
        loop_io_remove(l->zk_io);
        l->zk_io = NULL;
        if (l->zk) zk_remove_state_listener(l->zk, on_zk_state, l);
        zk_free(l->zk);
        l->zk = NULL;
        config_free(l->cfg);
        l->cfg = NULL;
        free(l->hostname);
        l->hostname = NULL;
}
