/* subsys.c — wiring of the launcher's subsystems (start, passes, stop).
 *
 * DESIGN. launcher.c knows only these entry points; each subsystem stays in
 * its own file and is called from here in a fixed order: the drivers' syncs
 * first (static registrations make nodes), requests (they take nodes), then
 * deletes (they free quota), then min-ready. */
#include "launcher.h"
#include "log.h"

static void on_cleanup(struct loop *loop, struct loop_timer *t, void *ud) {
        struct launcher *l = ud;
        cleanup_run(l);
        launcher_kick(l);
}

int launcher_subsystems_start(struct launcher *l) {
        pools_sync(l);
        int r = caches_start(l);
        if (r < 0) return r;
        l->cleanup_timer = loop_add_timer(l->loop, l->cleanup_interval_ms, true, on_cleanup, l);
        return 0;
}

void launcher_subsystems_stop(struct launcher *l) {
        if (l->cleanup_timer) loop_timer_cancel(l->cleanup_timer);
        l->cleanup_timer = NULL;
        requests_abort_all(l);
        launch_abort_all(l);
        delete_abort_all(l);
        cleanup_abort(l);
        minready_stop(l);
        reconcile_abort(l);
}

void launcher_subsystems_free(struct launcher *l) {
        caches_free(l);
        pools_free_all(l);
        zkrec_free(l);
        smap_clear(&l->held, NULL);
        smap_clear(&l->gone, NULL);
        smap_clear(&l->leak_seen, NULL);
        smap_clear(&l->leak_seen_next, NULL);
}

void launcher_run_passes(struct launcher *l) {
        /* Disconnected, every write would fail at once and kick the passes again:
         * they wait for CONNECTED (which kicks them). */
        if (!zk_is_connected(l->zk)) return;
        reconcile_pass(l);
        pools_drivers_sync(l);
        requests_pass(l);
        delete_pass(l);
        minready_pass(l);
}

void launcher_session_lost(struct launcher *l) {
        log_warning("ZooKeeper session expired: dropping every request we were handling");
        requests_abort_all(l);
        minready_stop(l); /* the leases died with the session */
        launch_forget_requests(l);
        pools_forget_requests(l);
        reconcile_abort(l);
        cleanup_abort(l);
}

void launcher_session_back(struct launcher *l) {
        zkrec_reconnected(l);
        reconcile_request(l);
}
