/* launch.c — one launch state machine per node being built (no thread per launch).
 *
 * DESIGN. States: CREATE (workq: provider create) → POLL (workq: provider get,
 * re-armed by a timer until ACTIVE or launch-timeout) → SCAN (host-key-checking
 * only: keyscan.h on the loop, TCP retries then one handshake per key type,
 * bounded by boot-timeout and by what is left of launch-timeout, which like
 * Nodepool's state machine covers the whole attempt) → READY (node fields and
 * host_keys filled, written, handed back to the request handler with its lock). On an
 * error the partial server is deleted first (DELETE, waited for) and the
 * create retried until launch-retries attempts were made; then the node is
 * written `failed`. -EDQUOT from the cloud makes the node `aborted` (the
 * handler relaunches with a new node without counting a failure). The loop
 * thread owns the struct; a worker only reads the copied inputs and writes
 * the job outputs, and the done callback runs on the loop thread again. */
#include <string.h>

#include "alloc.h"
#include "dynprops.h"
#include "json_util.h"
#include "launcher.h"
#include "keyscan.h"
#include "log.h"
#include "stats.h"
#include "zk_lock.h"

#define POLL_MS 200
/* A cloud's server list may not show a server it has just accepted (Nova lists
 * from its cells): absent that early is "not yet visible", as Nodepool keeps
 * the created server's record until the list has it. */
#define POLL_ABSENT_GRACE_MS 30000

enum launch_state { LAUNCH_CREATE, LAUNCH_POLL, LAUNCH_SCAN, LAUNCH_DELETE, LAUNCH_DONE };

struct launch {
        struct launcher *l;
        struct pool *pool;
        struct launcher_provider *prov;
        struct node *node;
        struct zk_lock *lock;
        char *request_id;
        size_t slot;
        enum launch_state st;
        int attempt, max_attempts;
        uint64_t deadline_ms, launch_timeout_ms, boot_timeout_ms;
        bool host_key_checking;
        bool console_log;               /* the label's console-log */
        bool want_console;              /* the nodescan failed: fetch the console before deleting */
        struct loop_timer *timer;
        struct keyscan *scan;           /* LAUNCH_SCAN: the nodescan in flight */
        char **host_keys;               /* its result */
        bool in_job, abandoned;
        int fail_r;                     /* the error that made us delete the partial server */
        uint64_t started_ms;            /* for the launch duration metrics */
        uint64_t created_ms;            /* when the create of this attempt returned */
        /* inputs copied for the worker */
        char *label, *image, *upload_path, *pool_name, *hostname;
        char *az;                       /* the request's availability zone, every attempt; NULL = the cloud's */
        char *cloud;                    /* the node's `cloud` */
        char *connection_type;
        int connection_port;
        int memory, vcpus, disk;
        int volumes, volume_gb;         /* boot-from-volume: 1 and volume-size, else 0 */
        char *username, *python_path, *shell_type;
        json_t *attributes;
        struct provider_kv *props;      /* dynamic-instance-properties, formatted (owned strings) */
        size_t n_props;
        char *external_id;
        /* job outputs */
        int job_r;
        char *job_msg;
        char *console, *console_msg;    /* LAUNCH_DELETE after a nodescan failure */
        int console_r;
        struct provider_server *server;
        struct launch *prev, *next;
};

static void job_submit(struct launch *la);

static void launch_unlink(struct launch *la) {
        struct launcher *l = la->l;
        if (la->prev) la->prev->next = la->next;
        else if (l->launches == la) l->launches = la->next;
        if (la->next) la->next->prev = la->prev;
        la->prev = la->next = NULL;
}

static void launch_free(struct launch *la) {
        if (la->timer) loop_timer_cancel(la->timer);
        keyscan_cancel(la->scan);
        keyscan_strv_free(la->host_keys);
        if (la->pool->active_launches) la->pool->active_launches--;
        la->prov->refs--;
        if (la->lock) {
                zk_lock_release_async(la->lock);
                zk_lock_free(la->lock);
        }
        node_free(la->node);
        free(la->request_id);
        free(la->label);
        free(la->image);
        free(la->upload_path);
        free(la->pool_name);
        free(la->hostname);
        free(la->az);
        free(la->cloud);
        free(la->connection_type);
        free(la->username);
        free(la->python_path);
        free(la->shell_type);
        free(la->external_id);
        free(la->job_msg);
        free(la->console);
        free(la->console_msg);
        if (la->attributes) json_decref(la->attributes);
        for (size_t i = 0; i < la->n_props; i++) {
                free((char *)la->props[i].key);
                free((char *)la->props[i].value);
        }
        free(la->props);
        provider_server_free(la->server);
        free(la);
}

/* Hand the result to the handler and free. READY (taken over): the node's
 * `ready` record when its write is left to the handler. */
static void launch_finish_ready(struct launch *la, int result, char *ready, size_t ready_len) {
        struct launcher *l = la->l;
        la->st = LAUNCH_DONE;
        launch_unlink(la);
        struct zk_lock *lock = result == 0 ? TAKE_PTR(la->lock) : NULL;
        if (la->lock) {
                zk_lock_release_async(la->lock);
                zk_lock_free(la->lock);
                la->lock = NULL;
        }
        smap_remove(&l->held, la->node->id);
        if (result == 0) smap_put(&l->held, la->node->id, (void *)1);
        stats_launch_done(l, la->pool, la->node, la->request_id, result, loop_now_ms() - la->started_ms);
        _cleanup_free_ char *rid = xstrdup(la->request_id);
        size_t slot = la->slot;
        launch_free(la);
        if (ready)
                request_slot_ready(l, rid, slot, lock, ready, ready_len);
        else
                request_slot_done(l, rid, slot, result, lock);
}

static void launch_finish(struct launch *la, int result) { launch_finish_ready(la, result, NULL, 0); }

/* We hold the node's lock: write without waiting (ZooKeeper keeps the order). */
static void write_node(struct launch *la) { zkrec_node_write_async(la->l, la->node); }

static void fail(struct launch *la, int r) {
        if (r == -EDQUOT) {
                log_warning("node %s: provider %s is at capacity (%s): aborted, will relaunch", la->node->id,
                            la->prov->name, la->job_msg ? la->job_msg : "quota");
                node_set_state(la->node, NODE_STATE_ABORTED);
                quota_invalidate(la->prov);
        } else {
                log_error("node %s: launch failed after %d attempt(s): %s", la->node->id, la->attempt,
                          la->job_msg ? la->job_msg : strerror(-r));
                node_set_state(la->node, NODE_STATE_FAILED);
        }
        write_node(la);
        launch_finish(la, r);
}

static void work_fn(void *ud) {
        struct launch *la = ud;
        struct provider *p = la->prov->provider;
        free(la->job_msg);
        la->job_msg = NULL;
        provider_server_free(la->server);
        la->server = NULL;
        switch (la->st) {
        case LAUNCH_CREATE: {
                /* The request's properties first: ours must win over them. */
                _cleanup_free_ struct provider_kv *tags = xnew(struct provider_kv, la->n_props + 3);
                size_t nt = 0;
                for (size_t i = 0; i < la->n_props; i++) tags[nt++] = la->props[i];
                tags[nt++] = (struct provider_kv){ "nodepool_provider_name", la->prov->name };
                tags[nt++] = (struct provider_kv){ "nodepool_pool_name", la->pool_name };
                tags[nt++] = (struct provider_kv){ "nodepool_node_id", la->node->id };
                struct provider_create_req req = {
                        .node_id = la->node->id, .hostname = la->hostname, .label = la->label,
                        .pool = la->pool_name, .image = la->image, .memory_mib = la->memory, .vcpus = la->vcpus,
                        .disk_gib = la->disk, .az = la->az, .tags = tags, .n_tags = nt,
                };
                la->job_r = p->ops->create(p, &req, &la->server, &la->job_msg);
                break;
        }
        case LAUNCH_POLL:
                la->job_r = p->ops->get(p, la->external_id, &la->server, &la->job_msg);
                /* ACTIVE: the driver makes it reachable (a floating IP) before the nodescan. */
                if (la->job_r >= 0 && la->server->state == PROVIDER_SERVER_ACTIVE && p->ops->finish_create)
                        la->job_r = p->ops->finish_create(p, la->pool_name, la->label, la->server, &la->job_msg);
                break;
        case LAUNCH_DELETE:
                if (la->want_console) {
                        free(la->console);
                        free(la->console_msg);
                        la->console = la->console_msg = NULL;
                        la->console_r = p->ops->console_log
                                                ? p->ops->console_log(p, la->external_id, &la->console, &la->console_msg)
                                                : -EOPNOTSUPP;
                }
                la->job_r = p->ops->delete(p, la->external_id, &la->job_msg);
                if (la->job_r == -ENOENT) la->job_r = 0;
                break;
        case LAUNCH_SCAN:
        case LAUNCH_DONE:
                break;
        }
}

static void set_ready(struct launch *la) {
        if (!zk_lock_is_held(la->lock)) {
                /* The session ended meanwhile, and the node's lock with it: not ours to
                 * hand out. Left `building` and unlocked, the delete pass removes it
                 * (server included); its request was reset and is served anew. */
                log_warning("node %s: its lock went with the ZooKeeper session; not handing it out", la->node->id);
                launch_finish(la, -ENOLCK);
                return;
        }
        struct node *n = la->node;
        const struct provider_server *s = la->server;
        model_set_str(&n->cloud, la->cloud);
        model_set_str(&n->region, s->region);
        model_set_str(&n->az, s->az);
        model_set_str(&n->host_id, s->host_id);
        model_set_str(&n->interface_ip, s->interface_ip);
        model_set_str(&n->public_ipv4, s->public_ipv4);
        model_set_str(&n->private_ipv4, s->private_ipv4);
        model_set_str(&n->public_ipv6, s->public_ipv6);
        n->connection_port = s->connection_port > 0 ? s->connection_port : la->connection_port;
        model_set_str(&n->connection_type, la->connection_type);
        model_set_str(&n->username, la->username);
        model_set_str(&n->python_path, la->python_path);
        model_set_str(&n->shell_type, la->shell_type);
        model_set_str(&n->image_id, la->upload_path);
        model_set_str(&n->launcher, la->pool->id);
        model_set_str(&n->hostname, la->hostname);
        if (n->external_id) json_decref(n->external_id);
        n->external_id = json_util_must(json_string(la->external_id));
        if (n->resources) json_decref(n->resources);
        /* What the cloud gave (the flavor) when the driver says; else what was asked. */
        bool known = s->resources.cores > 0 || s->resources.ram_mib > 0;
        n->resources = json_pack("{s:i, s:i, s:i}", "cores", known ? s->resources.cores : la->vcpus, "instances", 1,
                                 "ram", known ? s->resources.ram_mib : la->memory);
        /* As Nodepool's quota_from_flavor: a boot-from-volume node holds its volume. */
        if (la->volumes) {
                json_object_set_new(n->resources, "volumes", json_integer(la->volumes));
                json_object_set_new(n->resources, "volume-gb", json_integer(la->volume_gb));
        }
        if (n->attributes) json_decref(n->attributes);
        n->attributes = json_incref(la->attributes);
        model_strv_free(n->host_keys);
        n->host_keys = model_strv_new();
        for (char **k = la->host_keys; k && *k; k++) model_strv_push(&n->host_keys, *k);
        node_set_state(n, NODE_STATE_READY);
        log_info("node %s ready (%s, %s:%d) in %d attempt(s)", n->id, la->external_id,
                 n->interface_ip ? n->interface_ip : "?", n->connection_port, la->attempt);
        /* `ready` goes to the handler, which writes it with the fulfilment (one
         * request) — unless an earlier write of ours is still unconfirmed: then
         * the write-behind queue keeps the order. */
        char *ready = NULL;
        size_t ready_len = 0;
        if (zkrec_node_write_pending(la->l, n->id) || node_to_json(n, &ready, &ready_len) < 0) {
                free(ready);
                ready = NULL;
                write_node(la);
        }
        launch_finish_ready(la, 0, ready, ready_len);
}

static void attempt_failed(struct launch *la, int r);

/* As Nodepool after a failed nodescan: the server's console, one log line per line. */
static void log_console(struct launch *la) {
        la->want_console = false;
        if (la->console_r == -EOPNOTSUPP) {
                log_debug("node %s: provider %s has no console log", la->node->id, la->prov->name);
                return;
        }
        if (la->console_r < 0) {
                log_warning("node %s: cannot get the console log of %s: %s", la->node->id, la->external_id,
                            la->console_msg ? la->console_msg : strerror(-la->console_r));
                return;
        }
        if (!la->console) return;
        log_info("node %s: console log from hostname %s:", la->node->id, la->hostname);
        char *save = NULL;
        for (char *line = strtok_r(la->console, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                size_t n = strlen(line);
                while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = '\0';
                log_info("node %s: console: %s", la->node->id, line);
        }
}

static void on_poll_timer(struct loop *loop, struct loop_timer *t, void *ud) {
        struct launch *la = ud;
        la->timer = NULL;
        if (la->st == LAUNCH_CREATE && (la->pool->retired || !la->pool->cpool || la->l->stopping)) {
                /* Waited for a cloud that was down, and the pool went meanwhile
                 * (e.g. its credentials were fixed by a reload): a new pool serves the request. */
                log_info("node %s: pool %s is gone; not launching", la->node->id, la->pool->id);
                node_set_state(la->node, NODE_STATE_ABORTED);
                write_node(la);
                launch_finish(la, -EAGAIN);
                return;
        }
        if (la->st == LAUNCH_SCAN) {
                /* launch-timeout bounds the whole attempt, nodescan included (Nodepool's state machine). */
                keyscan_cancel(la->scan);
                la->scan = NULL;
                free(la->job_msg);
                la->job_msg = xstrdup("launch-timeout exceeded during nodescan");
                la->want_console = la->console_log;
                attempt_failed(la, -ETIMEDOUT);
                return;
        }
        job_submit(la);
}

static void on_scan_done(int error, char **keys, const char *msg, void *ud) {
        struct launch *la = ud;
        la->scan = NULL; /* freed by keyscan after we return */
        if (la->timer) loop_timer_cancel(la->timer);
        la->timer = NULL;
        if (error < 0) {
                free(la->job_msg);
                la->job_msg = xasprintf("nodescan of %s:%d failed within boot-timeout: %s",
                                        la->server->interface_ip, la->server->connection_port > 0
                                                ? la->server->connection_port : la->connection_port,
                                        msg ? msg : strerror(-error));
                la->want_console = la->console_log;
                attempt_failed(la, error);
                return;
        }
        keyscan_strv_free(la->host_keys);
        la->host_keys = keys;
        set_ready(la);
}

/* The server is ACTIVE: nodescan (when host-key-checking) within boot-timeout, then ready. */
static void server_active(struct launch *la) {
        if (!la->host_key_checking) {
                set_ready(la);
                return;
        }
        const struct provider_server *s = la->server;
        int port = s->connection_port > 0 ? s->connection_port : la->connection_port;
        if (!s->interface_ip) {
                free(la->job_msg);
                la->job_msg = xstrdup("server has no address to scan");
                attempt_failed(la, -EADDRNOTAVAIL);
                return;
        }
        la->st = LAUNCH_SCAN;
        int r = keyscan_start(la->l->loop, s->interface_ip, port, la->boot_timeout_ms, la->connection_type,
                              on_scan_done, la, &la->scan);
        if (r < 0) {
                free(la->job_msg);
                la->job_msg = xasprintf("cannot scan %s:%d: %s", s->interface_ip, port, strerror(-r));
                attempt_failed(la, r);
                return;
        }
        uint64_t now = loop_now_ms();
        la->timer = loop_add_timer(la->l->loop, la->deadline_ms > now ? la->deadline_ms - now : 1, false,
                                   on_poll_timer, la);
        log_debug("node %s: scanning %s:%d (boot-timeout %llu ms)", la->node->id, s->interface_ip, port,
                  (unsigned long long)la->boot_timeout_ms);
}

/* The attempt failed with R: delete what was created, then retry or fail. */
static void attempt_failed(struct launch *la, int r) {
        if (r == -EDQUOT && !la->external_id) {
                fail(la, r);
                return;
        }
        la->fail_r = r;
        log_warning("node %s: launch attempt %d/%d failed: %s", la->node->id, la->attempt, la->max_attempts,
                    la->job_msg ? la->job_msg : strerror(-r));
        if (la->external_id) {
                la->st = LAUNCH_DELETE;
                job_submit(la);
                return;
        }
        if (la->attempt >= la->max_attempts) {
                fail(la, r);
                return;
        }
        la->st = LAUNCH_CREATE;
        job_submit(la);
}

/* The cloud is down or refuses us: the provider pauses its pools; this launch
 * keeps its node and tries the create again after the provider's back-off. */
static void cloud_down_wait(struct launch *la) {
        la->attempt--;
        quota_cloud_down(la->prov, la->job_r, la->job_msg);
        uint64_t ms = MAX(quota_cloud_retry_in_ms(la->prov), (uint64_t)POLL_MS);
        log_debug("node %s: create retried in %llu ms", la->node->id, (unsigned long long)ms);
        la->timer = loop_add_timer(la->l->loop, ms, false, on_poll_timer, la);
}

static void done_fn(void *ud, int status) {
        struct launch *la = ud;
        la->in_job = false;
        if (la->abandoned) {
                /* Stopping: nothing more to do; the lock goes with it. */
                launch_free(la);
                return;
        }
        if (status < 0) {
                la->job_r = status;
                fail(la, status);
                return;
        }
        switch (la->st) {
        case LAUNCH_CREATE:
                if (quota_cloud_down_error(la->job_r)) {
                        /* Nothing was created: not an attempt. Pause and try again later. */
                        cloud_down_wait(la);
                        return;
                }
                if (la->job_r < 0) {
                        attempt_failed(la, la->job_r);
                        return;
                }
                quota_capacity_ok(la->prov);
                free(la->external_id);
                la->external_id = xstrdup(la->server->external_id);
                if (la->node->external_id) json_decref(la->node->external_id);
                la->node->external_id = json_util_must(json_string(la->external_id));
                /* Record the server before waiting on it; an instant server is recorded by the
                 * ready write (a crash in between leaves a tagged server the leak sweep removes). */
                if (la->server->state != PROVIDER_SERVER_ACTIVE || la->host_key_checking) write_node(la);
                la->created_ms = loop_now_ms();
                la->deadline_ms = la->created_ms + la->launch_timeout_ms;
                /* fall through */
        case LAUNCH_POLL:
                if (quota_cloud_down_error(la->job_r) && la->st == LAUNCH_POLL) {
                        /* The server may well be booting: keep asking until launch-timeout. */
                        quota_cloud_down(la->prov, la->job_r, la->job_msg);
                        if (loop_now_ms() >= la->deadline_ms) {
                                attempt_failed(la, -ETIMEDOUT);
                                return;
                        }
                        la->timer = loop_add_timer(la->l->loop, MAX(quota_cloud_retry_in_ms(la->prov), POLL_MS),
                                                   false, on_poll_timer, la);
                        return;
                }
                if (la->job_r == -ENOENT && la->st == LAUNCH_POLL && loop_now_ms() < la->deadline_ms &&
                    loop_now_ms() - la->created_ms < POLL_ABSENT_GRACE_MS) {
                        log_debug("node %s: server %s not listed yet", la->node->id, la->external_id);
                        la->timer = loop_add_timer(la->l->loop, POLL_MS, false, on_poll_timer, la);
                        return;
                }
                if (la->job_r < 0 && la->st == LAUNCH_POLL) {
                        attempt_failed(la, la->job_r);
                        return;
                }
                la->st = LAUNCH_POLL;
                if (la->server->state == PROVIDER_SERVER_ACTIVE) {
                        server_active(la);
                        return;
                }
                if (la->server->state == PROVIDER_SERVER_ERROR) {
                        const char *f = la->server->fault;
                        free(la->job_msg);
                        la->job_msg = f ? xasprintf("server went to ERROR: %s", f) : xstrdup("server went to ERROR");
                        /* As Nodepool: a build the cloud refused for quota (e.g. Cinder's,
                         * for a boot-from-volume server) is a quota error, not a failure;
                         * Nodepool matches "exceeds"+"quota", which misses Nova's
                         * "...exceeded for quota 'volumes'". */
                        attempt_failed(la, f && strcasestr(f, "quota") && strcasestr(f, "exceed") ? -EDQUOT : -EIO);
                        return;
                }
                if (loop_now_ms() >= la->deadline_ms) {
                        free(la->job_msg);
                        la->job_msg = xstrdup("launch-timeout exceeded");
                        attempt_failed(la, -ETIMEDOUT);
                        return;
                }
                la->timer = loop_add_timer(la->l->loop, POLL_MS, false, on_poll_timer, la);
                return;
        case LAUNCH_DELETE:
                if (la->want_console) log_console(la);
                if (la->job_r < 0) {
                        /* Keep external_id: the delete worker retries with the failed node. */
                        log_error("node %s: cannot delete partial server %s: %s", la->node->id, la->external_id,
                                  la->job_msg ? la->job_msg : strerror(-la->job_r));
                        fail(la, la->fail_r);
                        return;
                }
                free(la->external_id);
                la->external_id = NULL;
                if (la->node->external_id) json_decref(la->node->external_id);
                la->node->external_id = NULL;
                if (la->attempt >= la->max_attempts || la->fail_r == -EDQUOT) {
                        fail(la, la->fail_r);
                        return;
                }
                la->st = LAUNCH_CREATE;
                job_submit(la);
                return;
        case LAUNCH_SCAN:
        case LAUNCH_DONE:
                return;
        }
}

static void job_submit(struct launch *la) {
        if (la->st == LAUNCH_CREATE) la->attempt++;
        int r = workq_submit(la->l->wq, work_fn, done_fn, la);
        if (r < 0) {
                log_error_errno(r, "node %s: cannot queue provider call: %m", la->node->id);
                fail(la, r);
                return;
        }
        la->in_job = true;
}

/* The provider's cloud-images entry of a cloud-image label, or NULL. */
static const struct config_cloud_image *cloud_image_of(const struct config_provider *cp,
                                                       const struct config_pool_label *pl) {
        for (size_t i = 0; pl->cloud_image && i < cp->n_cloud_images; i++)
                if (strcmp(cp->cloud_images[i].name, pl->cloud_image) == 0) return &cp->cloud_images[i];
        return NULL;
}

/* A label's dynamic-instance-properties for this request, as Nodepool: a
 * property that does not format is logged and left out. */
static void dynamic_properties(struct launch *la, const struct config_strmap *dp) {
        if (!dp->n) return;
        const struct creq *cr = la->request_id ? smap_get(&la->l->requests, la->request_id) : NULL;
        la->props = xnew(struct provider_kv, dp->n);
        for (size_t i = 0; i < dp->n; i++) {
                _cleanup_free_ char *v = NULL, *msg = NULL;
                int r = cr ? dynprops_format(dp->items[i].value, cr->req, &v, &msg) : -ENOENT;
                if (r < 0) {
                        log_error("node %s: dynamic instance property %s: %s", la->node->id, dp->items[i].key,
                                  msg ? msg : "the request is not known");
                        continue;
                }
                la->props[la->n_props++] = (struct provider_kv){ xstrdup(dp->items[i].key), TAKE_PTR(v) };
        }
}

void launch_start(struct pool *pool, struct node *n, struct zk_lock *lock, const char *request_id, size_t slot,
                  const char *az) {
        struct launcher *l = pool->l;
        struct launch *la = xnew(struct launch, 1);
        la->l = l;
        la->pool = pool;
        la->prov = pool->prov;
        la->prov->refs++;
        pool->active_launches++;
        la->node = n;
        la->lock = lock;
        la->request_id = xstrdup(request_id);
        la->slot = slot;
        la->st = LAUNCH_CREATE;
        la->started_ms = loop_now_ms();
        la->max_attempts = pool->cp->launch_retries > 0 ? (int)pool->cp->launch_retries : 1;
        la->launch_timeout_ms = (uint64_t)(pool->cp->launch_timeout > 0 ? pool->cp->launch_timeout : 600) * 1000;
        la->boot_timeout_ms = (uint64_t)(pool->cp->boot_timeout > 0 ? pool->cp->boot_timeout : 120) * 1000;
        la->label = xstrdup(n->type[0]);
        la->pool_name = xstrdup(pool->name);
        la->hostname = xasprintf("np%s", n->id);
        la->az = az ? xstrdup(az) : NULL;
        /* OpenStack: the clouds.yaml cloud name, as Nodepool (jobs see it as nodepool.cloud). */
        la->cloud = xstrdup(pool->cp->driver == CONFIG_DRIVER_OPENSTACK && pool->cp->cloud ? pool->cp->cloud
                                                                                            : la->prov->name);
        la->connection_type = xstrdup("ssh");
        la->connection_port = 22;
        la->attributes = json_object();
        for (size_t i = 0; i < pool->cpool->node_attributes.n; i++)
                json_object_set_new(la->attributes, pool->cpool->node_attributes.items[i].key,
                                    json_string(pool->cpool->node_attributes.items[i].value));
        const struct config_pool_label *pl = pool_find_label(pool, la->label);
        if (pl) {
                la->host_key_checking = pl->host_key_checking;
                dynamic_properties(la, &pl->dynamic_instance_properties);
                la->console_log = pl->console_log;
                if (pl->boot_timeout > 0) la->boot_timeout_ms = (uint64_t)pl->boot_timeout * 1000;
                la->memory = (int)pl->memory;
                la->vcpus = (int)pl->vcpus;
                la->disk = (int)pl->disk_size;
                struct usage cost = quota_label_cost(pl);
                la->volumes = (int)cost.volumes;
                la->volume_gb = (int)cost.volume_gb;
                for (size_t i = 0; pl->diskimage && i < pool->cp->n_diskimages; i++)
                        if (strcmp(pool->cp->diskimages[i].name, pl->diskimage) == 0) {
                                free(la->connection_type);
                                la->connection_type = xstrdup(pool->cp->diskimages[i].connection_type
                                                                      ? pool->cp->diskimages[i].connection_type
                                                                      : "ssh");
                                la->connection_port = (int)pool->cp->diskimages[i].connection_port;
                        }
                const char *upath = NULL;
                const struct image_upload *u =
                        pl->diskimage ? caches_find_upload(l, pl->diskimage, pool->provider_name, &upath) : NULL;
                if (u) {
                        la->image = xstrdup(u->external_id);
                        la->upload_path = xstrdup(upath);
                        la->username = xstrdup(u->username);
                        la->python_path = xstrdup(u->python_path);
                        la->shell_type = xstrdup(u->shell_type);
                }
                const struct config_cloud_image *ci = cloud_image_of(pool->cp, pl);
                if (ci) {
                        /* No upload: the driver resolves the label's cloud image (create_req.image NULL). */
                        la->upload_path = xstrdup(ci->name); /* the node's image_id, as Nodepool */
                        la->username = xstrdup(ci->username ? ci->username : "zuul");
                        la->python_path = xstrdup(ci->python_path ? ci->python_path : "auto");
                        la->shell_type = xstrdup(ci->shell_type);
                        free(la->connection_type);
                        la->connection_type = xstrdup(ci->connection_type ? ci->connection_type : "ssh");
                        if (ci->connection_port > 0) la->connection_port = (int)ci->connection_port;
                }
        }
        la->next = l->launches;
        if (l->launches) l->launches->prev = la;
        l->launches = la;
        if (!pl || (!la->image && !cloud_image_of(pool->cp, pl))) {
                free(la->job_msg);
                la->job_msg = xstrdup(!pl ? "label no longer in pool"
                                      : pl->cloud_image ? "cloud-image not configured in the provider"
                                                        : "no ready image upload");
                la->attempt = 1;
                fail(la, -ENOENT);
                return;
        }
        job_submit(la);
}

void launch_forget_requests(struct launcher *l) {
        for (struct launch *la = l->launches; la; la = la->next) {
                free(la->request_id);
                la->request_id = NULL;
        }
}

void launch_abort_all(struct launcher *l) {
        while (l->launches) {
                struct launch *la = l->launches;
                launch_unlink(la);
                smap_remove(&l->held, la->node->id);
                keyscan_cancel(la->scan);
                la->scan = NULL;
                if (la->in_job) {
                        la->abandoned = true; /* done_fn frees it */
                        continue;
                }
                launch_free(la);
        }
}
