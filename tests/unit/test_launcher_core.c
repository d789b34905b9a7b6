/* test_launcher_core.c — the launcher core (request.c, launch.c, quota.c,
 * minready.c, delete.c) on its real event loop, against a real ZooKeeper and
 * the in-process fake cloud (fake_provider.h).
 *
 * Run under tests/tools/with-zookeeper (make check-unit does), which starts one
 * ZooKeeper for this binary and exports its address in POOLD_TEST_ZK_HOSTS.
 * Each test gets its own chroot there, a nodepool.yaml with `driver: libvirt`
 * providers (the fake's ops, see fake_provider.c), a READY image upload, a
 * launcher started with launcher_start() and a ZooKeeper session of its own
 * that plays Zuul: it writes requests and reads records, and the assertions
 * are about those records and the fake cloud, never the launcher's internals.
 * The loop runs until a condition on ZooKeeper holds or a timeout passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "fake_provider.h"
#include "launcher.h"
#include "log.h"
#include "zk_lock.h"

#define WAIT_MS 30000           /* generous: ASan, two cores shared with other builds */
#define PROV_A "fake-a"
#define PROV_B "fake-b"

static struct zk *root_zk;      /* the whole server: makes and removes each test's chroot */
static char zk_host[64];
static int zk_port;
static unsigned chroot_seq;

struct env {
        char *dir, *config_path;
        char *chroot;
        struct zk *zk;          /* the test's own session, chrooted: "Zuul" */
        struct launcher *l;     /* NULL until env_launch() */
};

struct opts {
        int max_servers;        /* of each pool; 0 means 10 */
        int launch_retries;     /* 0 means 2 */
        int min_ready;          /* of label small */
        bool two_providers;     /* PROV_B too, its pool a worse priority than PROV_A's */
        const char *pool_az;    /* PROV_A's pool lists this one availability zone */
        /* Volume quota (set on the loaded config: the fake's libvirt schema has no
         * such keys): label large boots from a volume of bfv_gb GB when > 0. */
        int bfv_gb;
        int max_volumes, max_volume_gb; /* of PROV_A's pool; 0 = unlimited */
        const char *tenant_limits;      /* YAML of tenant-resource-limits, or NULL */
};

/* ---------------------------------------------------------------- ZooKeeper records */

static void write_image(struct env *e, const char *provider) {
        char now[32];
        snprintf(now, sizeof now, "%.3f", model_now());
        const char *build = "/nodepool/images/debian/builds/00000000000000000000000000000001";
        _cleanup_free_ char *bdata = xasprintf("{\"state\": \"ready\", \"state_time\": %s, \"builder\": \"b1\", "
                                               "\"formats\": \"qcow2\"}", now);
        int r = zk_create(e->zk, build, bdata, strlen(bdata), ZK_MAKEPATH, NULL);
        assert_true(r == 0 || r == -EEXIST);
        _cleanup_free_ char *up = xasprintf("%s/providers/%s/images/", build, provider);
        _cleanup_free_ char *udata = xasprintf("{\"state\": \"ready\", \"state_time\": %s, \"external_id\": "
                                               "\"debian-%s\", \"external_name\": \"debian\", \"format\": \"qcow2\", "
                                               "\"username\": \"zuul\", \"python_path\": \"/usr/bin/python3\", "
                                               "\"shell_type\": null}", now, provider);
        assert_int_equal(zk_create(e->zk, up, udata, strlen(udata), ZK_SEQUENCE | ZK_MAKEPATH, NULL), 0);
}

/* Create a request for LABELS (NULL-terminated) as Zuul does: ephemeral, sequenced. Caller frees the id. */
static char *request_new_tenant(struct env *e, bool reuse, const char *const *labels, const char *tenant) {
        _cleanup_(node_request_freep) struct node_request *rq = node_request_new(NULL);
        rq->reuse = reuse;
        model_set_str(&rq->tenant_name, tenant);
        model_set_str(&rq->requestor, "unit-test-zuul");
        for (const char *const *t = labels; *t; t++) model_strv_push(&rq->node_types, *t);
        rq->created_time = rq->state_time = model_now();
        _cleanup_free_ char *data = NULL, *path = NULL;
        size_t len;
        assert_int_equal(node_request_to_json(rq, &data, &len), 0);
        assert_int_equal(zk_create(e->zk, "/nodepool/requests/100-", data, len, ZK_EPHEMERAL | ZK_SEQUENCE | ZK_MAKEPATH,
                                   &path), 0);
        return xstrdup(strrchr(path, '/') + 1);
}

static char *request_new(struct env *e, bool reuse, const char *const *labels) {
        return request_new_tenant(e, reuse, labels, NULL);
}

static char *request_new1(struct env *e, bool reuse, const char *label) {
        const char *labels[] = { label, NULL };
        return request_new(e, reuse, labels);
}

/* The request ID as in ZooKeeper now, or NULL when gone. */
static struct node_request *request_read(struct env *e, const char *id) {
        _cleanup_free_ char *path = xasprintf("/nodepool/requests/%s", id), *data = NULL;
        size_t len;
        if (zk_get(e->zk, path, &data, &len, NULL) < 0) return NULL;
        struct node_request *rq = NULL;
        struct model_error err;
        assert_int_equal(node_request_from_json(data, len, id, &rq, &err), 0);
        return rq;
}

static struct node *node_read(struct env *e, const char *id, int32_t *ret_version) {
        _cleanup_free_ char *path = xasprintf("/nodepool/nodes/%s", id), *data = NULL;
        size_t len;
        struct zk_stat st;
        if (zk_get(e->zk, path, &data, &len, &st) < 0) return NULL;
        struct node *n = NULL;
        struct model_error err;
        assert_int_equal(node_from_json(data, len, id, &n, &err), 0);
        if (ret_version) *ret_version = st.version;
        return n;
}

/* Node ids in ZooKeeper now (zk_strv_free). */
static char **node_ids(struct env *e, size_t *ret_n) {
        char **v = NULL;
        size_t n = 0;
        int r = zk_get_children(e->zk, "/nodepool/nodes", &v, &n);
        if (r == -ENOENT) {
                v = xnew(char *, 1);
                n = 0;
        } else {
                assert_int_equal(r, 0);
        }
        *ret_n = n;
        return v;
}

/* Whether the registered pool component of PROVIDER says paused. */
static bool pool_paused(struct env *e, const char *provider) {
        char **v = NULL;
        size_t n = 0;
        bool paused = false;
        if (zk_get_children(e->zk, NPZK_COMPONENTS "/pool", &v, &n) < 0) return false;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = xasprintf(NPZK_COMPONENTS "/pool/%s", v[i]), *data = NULL;
                size_t len;
                if (zk_get(e->zk, path, &data, &len, NULL) < 0) continue;
                json_t *j = json_loadb(data, len, 0, NULL);
                const char *pn = json_string_value(json_object_get(j, "provider_name"));
                if (pn && strcmp(pn, provider) == 0) paused |= json_is_true(json_object_get(j, "paused"));
                json_decref(j);
        }
        zk_strv_free(v);
        return paused;
}

/* ---------------------------------------------------------------- running the loop */

typedef bool (*cond_fn)(struct env *e, const void *ud);

struct wait {
        struct env *e;
        cond_fn cond;
        const void *ud;
        uint64_t deadline;
        bool met;
};

static void on_check(struct loop *loop, struct loop_timer *t, void *ud) {
        struct wait *w = ud;
        if (w->cond && w->cond(w->e, w->ud)) {
                w->met = true;
                loop_exit(loop, 0);
        } else if (loop_now_ms() >= w->deadline) {
                loop_exit(loop, 0);
        }
}

/* Run the launcher's loop until COND holds (true) or TIMEOUT_MS passed (false);
 * COND NULL: just run for TIMEOUT_MS. */
static bool run_until(struct env *e, cond_fn cond, const void *ud, uint64_t timeout_ms) {
        if (cond && cond(e, ud)) return true;
        struct wait w = { .e = e, .cond = cond, .ud = ud, .deadline = loop_now_ms() + timeout_ms };
        struct loop_timer *t = loop_add_timer(e->l->loop, 20, true, on_check, &w);
        (void)loop_run(e->l->loop);
        loop_timer_cancel(t);
        return w.met;
}

struct req_state {
        const char *id;
        enum node_request_state state;
};

static bool cond_request_state(struct env *e, const void *ud) {
        const struct req_state *s = ud;
        _cleanup_(node_request_freep) struct node_request *rq = request_read(e, s->id);
        return rq && rq->state == s->state;
}

/* Run until request ID is in STATE; returns it as read then (caller frees). */
static struct node_request *wait_request(struct env *e, const char *id, enum node_request_state state) {
        struct req_state s = { id, state };
        bool met = run_until(e, cond_request_state, &s, WAIT_MS);
        struct node_request *rq = request_read(e, id);
        if (!met)
                fail_msg("request %s: not %s within %d ms (now %s)", id, node_request_state_to_string(state), WAIT_MS,
                         rq ? node_request_state_to_string(rq->state) : "gone");
        return rq;
}

struct cloud_calls {
        struct fake_cloud *c;
        enum fake_op op;
        unsigned n;
};

static bool cond_calls(struct env *e, const void *ud) {
        const struct cloud_calls *cc = ud;
        return fake_cloud_calls(cc->c, cc->op) >= cc->n;
}

static bool cond_no_nodes(struct env *e, const void *ud) {
        size_t n;
        char **v = node_ids(e, &n);
        zk_strv_free(v);
        return n == 0;
}

/* ---------------------------------------------------------------- per test */

static void write_config(struct env *e, const struct opts *o) {
        const char *provs[2] = { PROV_A, PROV_B };
        FILE *f = fopen(e->config_path, "w");
        assert_non_null(f);
        fprintf(f,
                "zookeeper-servers:\n"
                "  - host: %s\n"
                "    port: %d\n"
                "    chroot: %s\n"
                "zookeeper-timeout: 10.0\n"
                "webapp:\n"
                "  port: 0\n"
                "labels:\n"
                "  - name: small\n"
                "    min-ready: %d\n"
                "  - name: large\n"
                "diskimages:\n"
                "  - name: debian\n"
                "    elements: [debian-minimal]\n"
                "providers:\n",
                zk_host, zk_port, e->chroot, o->min_ready);
        for (int i = 0; i < (o->two_providers ? 2 : 1); i++)
                fprintf(f,
                        "  - name: %s\n"
                        "    driver: libvirt\n"
                        "    uri: test:///default\n"
                        "    launch-retries: %d\n"
                        "    diskimages:\n"
                        "      - name: debian\n"
                        "    pools:\n"
                        "      - name: main\n"
                        "        priority: %d\n"
                        "        max-servers: %d\n"
                        "        host-key-checking: false\n"
                        "        labels:\n"
                        "          - name: small\n"
                        "            diskimage: debian\n"
                        "            memory: 64\n"
                        "            vcpus: 1\n"
                        "          - name: large\n"
                        "            diskimage: debian\n"
                        "            memory: 256\n"
                        "            vcpus: 2\n",
                        provs[i], o->launch_retries > 0 ? o->launch_retries : 2, i + 1,
                        o->max_servers > 0 ? o->max_servers : 10);
        if (o->tenant_limits) fprintf(f, "tenant-resource-limits:\n%s", o->tenant_limits);
        assert_int_equal(fclose(f), 0);
}

static bool cond_synced(struct env *e, const void *ud) { return caches_synced(e->l); }

/* Start a launcher for options O (images for its providers written first). */
static void env_launch(struct env *e, const struct opts *o) {
        write_config(e, o);
        write_image(e, PROV_A);
        if (o->two_providers) write_image(e, PROV_B);
        struct launcher *l = xnew(struct launcher, 1);
        l->config_path = xstrdup(e->config_path);
        struct config_diags diags = {};
        int r = config_load(l->config_path, NULL, &l->cfg, &diags);
        for (size_t i = 0; i < diags.n; i++)
                print_error("%s:%u:%u: %s\n", diags.items[i].file, diags.items[i].line, diags.items[i].column,
                            diags.items[i].message);
        config_diags_clear(&diags);
        assert_int_equal(r, 0);
        if (o->pool_az) {
                /* A libvirt pool has no availability-zones key (the fake poses as
                 * libvirt): set what an openstack pool's line would give. */
                struct config_strv *azs = &l->cfg->providers[0].pools[0].availability_zones;
                assert_int_equal(azs->n, 0);
                azs->items = xnew(char *, 2);
                azs->items[0] = xstrdup(o->pool_az);
                azs->n = 1;
        }
        struct config_pool *pool = &l->cfg->providers[0].pools[0];
        if (o->bfv_gb > 0) {
                pool->labels[1].boot_from_volume = true;
                pool->labels[1].volume_size = o->bfv_gb;
        }
        if (o->max_volumes > 0) pool->max_volumes = o->max_volumes;
        if (o->max_volume_gb > 0) pool->max_volume_gb = o->max_volume_gb;
        assert_int_equal(loop_new(&l->loop), 0);
        e->l = l;
        assert_int_equal(launcher_start(l), 0);
        assert_true(run_until(e, cond_synced, NULL, WAIT_MS));
}

static int env_setup(void **state) {
        struct env *e = xnew(struct env, 1);
        char tmpl[] = "/tmp/poold-unit-launcher-XXXXXX";
        if (!mkdtemp(tmpl)) return -1;
        e->dir = xstrdup(tmpl);
        e->config_path = xasprintf("%s/nodepool.yaml", e->dir);
        e->chroot = xasprintf("/unit-launcher-%d-%u", (int)getpid(), ++chroot_seq);
        if (zk_create(root_zk, e->chroot, NULL, 0, ZK_PERSISTENT, NULL) < 0) return -1;
        _cleanup_free_ char *hosts = xasprintf("%s:%d%s", zk_host, zk_port, e->chroot);
        if (zk_new(hosts, 10000, NULL, &e->zk) < 0 || zk_connect_wait(e->zk, 30000) < 0) return -1;
        *state = e;
        return 0;
}

static int env_teardown(void **state) {
        struct env *e = *state;
        if (e->l) {
                launcher_stop(e->l);
                loop_free(e->l->loop);
                free(e->l->config_path);
                free(e->l);
        }
        fake_clouds_free();
        zk_free(e->zk);
        (void)zk_delete_recursive(root_zk, e->chroot);
        unlink(e->config_path);
        rmdir(e->dir);
        free(e->config_path);
        free(e->dir);
        free(e->chroot);
        free(e);
        return 0;
}

/* ---------------------------------------------------------------- tests */

/* The basic path: a one-node request is accepted, its node launched on the fake
 * cloud and written ready, and the request fulfilled with it. */
static void test_one_node_request_is_launched_and_fulfilled(void **state) {
        struct env *e = *state;
        env_launch(e, &(struct opts){});
        struct fake_cloud *c = fake_cloud(PROV_A);
        assert_true(fake_cloud_is_open(c));
        _cleanup_free_ char *id = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(model_strv_length(rq->nodes), 1);
        _cleanup_(node_freep) struct node *n = node_read(e, rq->nodes[0], NULL);
        assert_non_null(n);
        assert_int_equal(n->state, NODE_STATE_READY);
        assert_string_equal(n->allocated_to, id);
        assert_string_equal(n->provider, PROV_A);
        assert_string_equal(n->pool, "main");
        assert_string_equal(n->type[0], "small");
        assert_string_equal(n->interface_ip, "127.0.0.1");
        assert_true(json_is_string(n->external_id));
        assert_true(fake_cloud_has_server(c, json_string_value(n->external_id)));
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 1);
        assert_int_equal(fake_cloud_n_servers(c), 1);
}

struct node_unallocated {
        const char *id;
};

static bool cond_node_free(struct env *e, const void *ud) {
        const struct node_unallocated *u = ud;
        _cleanup_(node_freep) struct node *n = node_read(e, u->id, NULL);
        return n && n->state == NODE_STATE_READY && !n->allocated_to;
}

/* A ready, unallocated node of the label serves a reusing request: no launch. */
static void test_ready_node_is_reused_instead_of_launching(void **state) {
        struct env *e = *state;
        env_launch(e, &(struct opts){});
        struct fake_cloud *c = fake_cloud(PROV_A);
        _cleanup_free_ char *first = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq1 = wait_request(e, first, NODE_REQUEST_STATE_FULFILLED);
        _cleanup_free_ char *node_id = xstrdup(rq1->nodes[0]);
        /* The requestor goes away without using the node: the launcher unallocates it. */
        _cleanup_free_ char *path = xasprintf("/nodepool/requests/%s", first);
        assert_int_equal(zk_delete(e->zk, path, -1), 0);
        struct node_unallocated u = { node_id };
        assert_true(run_until(e, cond_node_free, &u, WAIT_MS));

        _cleanup_free_ char *second = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq2 = wait_request(e, second, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(model_strv_length(rq2->nodes), 1);
        assert_string_equal(rq2->nodes[0], node_id);
        _cleanup_(node_freep) struct node *n = node_read(e, node_id, NULL);
        assert_string_equal(n->allocated_to, second);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 1);
}

struct node_building {
        const char *request_id;
};

static bool cond_node_building_on_cloud(struct env *e, const void *ud) {
        const struct node_building *b = ud;
        size_t n;
        char **v = node_ids(e, &n);
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) {
                _cleanup_(node_freep) struct node *nd = node_read(e, v[i], NULL);
                found = nd && nd->state == NODE_STATE_BUILDING && nd->external_id && nd->allocated_to &&
                        strcmp(nd->allocated_to, b->request_id) == 0;
        }
        zk_strv_free(v);
        return found;
}

/* A server that takes time to boot: the node stays `building` (with its
 * server recorded) and the request pending until the cloud says ACTIVE. */
static void test_slow_boot_keeps_node_building_until_server_active(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_hold_boot(c, true);
        env_launch(e, &(struct opts){});
        _cleanup_free_ char *id = request_new1(e, true, "small");
        struct node_building b = { id };
        assert_true(run_until(e, cond_node_building_on_cloud, &b, WAIT_MS));
        /* Several polls later, still waiting on the cloud. */
        struct cloud_calls cc = { c, FAKE_OP_GET, fake_cloud_calls(c, FAKE_OP_GET) + 2 };
        assert_true(run_until(e, cond_calls, &cc, WAIT_MS));
        _cleanup_(node_request_freep) struct node_request *pending = request_read(e, id);
        assert_int_equal(pending->state, NODE_REQUEST_STATE_PENDING);
        assert_true(cond_node_building_on_cloud(e, &b));

        assert_int_equal(fake_cloud_boot_all(c), 1);
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        _cleanup_(node_freep) struct node *n = node_read(e, rq->nodes[0], NULL);
        assert_int_equal(n->state, NODE_STATE_READY);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 1);
}

/* -EDQUOT from the cloud is "no capacity now", not a failure: the node is
 * aborted, the request stays pending (never failed, never declined) and a new
 * node is launched once the capacity back-off is over. */
static void test_create_at_capacity_leaves_request_pending_and_retries(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_fail(c, FAKE_OP_CREATE, -EDQUOT, 1);
        env_launch(e, &(struct opts){ .launch_retries = 1 });
        _cleanup_free_ char *id = request_new1(e, true, "small");
        struct cloud_calls cc = { c, FAKE_OP_CREATE, 1 };
        assert_true(run_until(e, cond_calls, &cc, WAIT_MS));
        /* Inside the capacity back-off (2 s): refused once, waiting, not failed. */
        run_until(e, NULL, NULL, 100);
        _cleanup_(node_request_freep) struct node_request *waiting = request_read(e, id);
        assert_int_equal(waiting->state, NODE_REQUEST_STATE_PENDING);
        assert_int_equal(model_strv_length(waiting->declined_by), 0);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 1);

        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 2);
        assert_int_equal(model_strv_length(rq->declined_by), 0);
        /* Only the second node remains: the aborted one is deleted. */
        size_t n = 0;
        char **v = NULL;
        for (uint64_t end = loop_now_ms() + WAIT_MS; loop_now_ms() < end; run_until(e, NULL, NULL, 100)) {
                zk_strv_free(v);
                v = node_ids(e, &n);
                if (n == 1) break;
        }
        assert_int_equal(n, 1);
        assert_string_equal(v[0], rq->nodes[0]);
        zk_strv_free(v);
}

/* A failed create within launch-retries is retried by the same launch. */
static void test_create_failure_within_launch_retries_is_retried(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_fail(c, FAKE_OP_CREATE, -EIO, 1);
        env_launch(e, &(struct opts){ .launch_retries = 2 });
        _cleanup_free_ char *id = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 2);
        assert_int_equal(model_strv_length(rq->declined_by), 0);
        assert_int_equal(fake_cloud_n_servers(c), 1);
}

/* Creates failing through every launch-retry fail the node; the only pool
 * declines the request, and with every registered pool declined it fails.
 * The failed node is deleted. */
static void test_create_failing_for_good_fails_node_and_request(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_fail(c, FAKE_OP_CREATE, -EIO, 1000);
        env_launch(e, &(struct opts){ .launch_retries = 2 });
        _cleanup_free_ char *id = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FAILED);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 2);
        assert_int_equal(model_strv_length(rq->declined_by), 1);
        assert_non_null(strstr(rq->declined_by[0], "-PoolWorker." PROV_A "-main-"));
        assert_int_equal(model_strv_length(rq->nodes), 0);
        assert_true(run_until(e, cond_no_nodes, NULL, WAIT_MS));
        assert_int_equal(fake_cloud_n_servers(c), 0);
}

/* A launch failing for good in the preferred pool declines the request there
 * only: it goes back to `requested` and the next pool serves it. */
static void test_failed_launch_gives_request_to_the_next_pool(void **state) {
        struct env *e = *state;
        struct fake_cloud *a = fake_cloud(PROV_A), *b = fake_cloud(PROV_B);
        fake_cloud_fail(a, FAKE_OP_CREATE, -EIO, 1000);
        env_launch(e, &(struct opts){ .launch_retries = 1, .two_providers = true });
        _cleanup_free_ char *id = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(fake_cloud_calls(a, FAKE_OP_CREATE), 1);
        assert_int_equal(fake_cloud_calls(b, FAKE_OP_CREATE), 1);
        assert_int_equal(model_strv_length(rq->declined_by), 1);
        assert_non_null(strstr(rq->declined_by[0], "-PoolWorker." PROV_A "-main-"));
        _cleanup_(node_freep) struct node *n = node_read(e, rq->nodes[0], NULL);
        assert_string_equal(n->provider, PROV_B);
        assert_true(fake_cloud_has_server(b, json_string_value(n->external_id)));
}

/* A cloud that cannot be reached (-EHOSTDOWN) pauses the pool and the create
 * is tried again later without counting as an attempt: with launch-retries 2,
 * unreachable once and then failing once, the third create still runs. */
static void test_unreachable_cloud_is_retried_without_counting_an_attempt(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_fail(c, FAKE_OP_CREATE, -EHOSTDOWN, 1);
        fake_cloud_fail(c, FAKE_OP_CREATE, -EIO, 1);
        env_launch(e, &(struct opts){ .launch_retries = 2 });
        _cleanup_free_ char *id = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 3);
        assert_int_equal(model_strv_length(rq->declined_by), 0);
        assert_int_equal(fake_cloud_n_servers(c), 1);
}

static bool cond_pending_and_paused(struct env *e, const void *ud) {
        struct req_state s = { ud, NODE_REQUEST_STATE_PENDING };
        return cond_request_state(e, &s) && pool_paused(e, PROV_A);
}

/* A label no pool offers: every registered pool declines (without launching)
 * and the request fails. */
static void test_request_for_unknown_label_is_declined_and_fails(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        env_launch(e, &(struct opts){});
        _cleanup_free_ char *id = request_new1(e, true, "no-such-label");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FAILED);
        assert_int_equal(model_strv_length(rq->declined_by), 1);
        assert_non_null(strstr(rq->declined_by[0], "-PoolWorker." PROV_A "-main-"));
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 0);
        size_t n;
        char **v = node_ids(e, &n);
        zk_strv_free(v);
        assert_int_equal(n, 0);
}

/* A request withdrawn while its node boots: the launch completes, and the node
 * is left ready and unallocated (for the next request) rather than lost. */
static void test_request_withdrawn_while_booting_leaves_node_ready_for_reuse(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_hold_boot(c, true);
        env_launch(e, &(struct opts){});
        _cleanup_free_ char *id = request_new1(e, true, "small");
        struct node_building b = { id };
        assert_true(run_until(e, cond_node_building_on_cloud, &b, WAIT_MS));
        _cleanup_free_ char *path = xasprintf("/nodepool/requests/%s", id);
        assert_int_equal(zk_delete(e->zk, path, -1), 0);
        assert_int_equal(fake_cloud_boot_all(c), 1);
        size_t n = 0;
        char **ids = node_ids(e, &n);
        assert_int_equal(n, 1);
        struct node_unallocated u = { ids[0] };
        assert_true(run_until(e, cond_node_free, &u, WAIT_MS));
        zk_strv_free(ids);
        assert_int_equal(fake_cloud_n_servers(c), 1);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_DELETE), 0);
}

/* Zuul is done with the node of request ID (RQ as fulfilled): the node `used`
 * and the request removed, so the launcher deletes the node. */
static void release_request(struct env *e, const char *id, const struct node_request *rq) {
        int32_t ver;
        _cleanup_(node_freep) struct node *used = node_read(e, rq->nodes[0], &ver);
        node_set_state(used, NODE_STATE_USED);
        _cleanup_free_ char *data = NULL, *npath = xasprintf("/nodepool/nodes/%s", used->id);
        _cleanup_free_ char *rpath = xasprintf("/nodepool/requests/%s", id);
        size_t len;
        assert_int_equal(node_to_json(used, &data, &len), 0);
        assert_int_equal(zk_set(e->zk, npath, data, len, ver, NULL), 0);
        assert_int_equal(zk_delete(e->zk, rpath, -1), 0);
}

/* A pool at max-servers accepts a request and waits (paused, the request
 * pending) instead of declining it; when a node goes, it launches. */
static void test_pool_at_max_servers_waits_until_a_node_is_freed(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        env_launch(e, &(struct opts){ .max_servers = 1 });
        _cleanup_free_ char *first = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq1 = wait_request(e, first, NODE_REQUEST_STATE_FULFILLED);

        _cleanup_free_ char *second = request_new1(e, true, "small");
        assert_true(run_until(e, cond_pending_and_paused, second, WAIT_MS));
        run_until(e, NULL, NULL, 500);
        _cleanup_(node_request_freep) struct node_request *waiting = request_read(e, second);
        assert_int_equal(waiting->state, NODE_REQUEST_STATE_PENDING);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 1);

        /* Zuul is done with the first node: `used`, and its request removed. */
        release_request(e, first, rq1);

        _cleanup_(node_request_freep) struct node_request *rq2 = wait_request(e, second, NODE_REQUEST_STATE_FULFILLED);
        assert_string_not_equal(rq2->nodes[0], rq1->nodes[0]);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 2);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_DELETE), 1);
        assert_int_equal(fake_cloud_n_servers(c), 1);
}

struct ready_count {
        const char *label;
        size_t n;
};

/* Ready unallocated nodes of LABEL now (zk_strv_free). */
static char **ready_nodes(struct env *e, const char *label) {
        size_t n;
        char **v = node_ids(e, &n), **ready = model_strv_new();
        for (size_t i = 0; i < n; i++) {
                _cleanup_(node_freep) struct node *nd = node_read(e, v[i], NULL);
                if (nd && nd->state == NODE_STATE_READY && !nd->allocated_to && model_strv_contains(nd->type, label))
                        model_strv_push(&ready, v[i]);
        }
        zk_strv_free(v);
        return ready;
}

/* N ready unallocated nodes of the label, and no min-ready request (900-) left. */
static bool cond_min_ready_settled(struct env *e, const void *ud) {
        const struct ready_count *rc = ud;
        char **ready = ready_nodes(e, rc->label);
        size_t n_ready = model_strv_length(ready);
        model_strv_free(ready);
        char **reqs = NULL;
        size_t nr = 0, n_minready = 0;
        if (zk_get_children(e->zk, "/nodepool/requests", &reqs, &nr) < 0) nr = 0;
        for (size_t i = 0; i < nr; i++) n_minready += strncmp(reqs[i], "900-", 4) == 0;
        zk_strv_free(reqs);
        return n_ready == rc->n && n_minready == 0;
}

/* min-ready: the launcher requests the missing nodes itself (NodePool:min-ready
 * requests), removes those requests once fulfilled, and keeps N ready
 * unallocated nodes when one is taken. */
static void test_min_ready_requests_nodes_and_keeps_them_ready(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        env_launch(e, &(struct opts){ .min_ready = 2 });
        struct ready_count rc = { "small", 2 };
        assert_true(run_until(e, cond_min_ready_settled, &rc, WAIT_MS));
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 2);
        char **before = ready_nodes(e, "small");

        /* A request takes one of them; min-ready launches a replacement. */
        _cleanup_free_ char *id = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_true(model_strv_contains(before, rq->nodes[0]));
        model_strv_free(before);
        assert_true(run_until(e, cond_min_ready_settled, &rc, WAIT_MS));
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 3);
        /* Settled: nothing more is launched. */
        run_until(e, NULL, NULL, 1000);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 3);
        assert_true(cond_min_ready_settled(e, &rc));
}

static bool cond_node_gone(struct env *e, const void *ud) {
        _cleanup_free_ char *path = xasprintf("/nodepool/nodes/%s", (const char *)ud);
        return zk_exists(e->zk, path, NULL) == 0;
}

/* At max-servers, a request for a label with no ready node deletes the pool's
 * oldest unused ready node of another label to make room (Nodepool's
 * deleteOldestUnusedNode) — but never one someone holds locked: with the
 * oldest locked by "Zuul", the other one goes, and the request is fulfilled. */
static void test_at_quota_oldest_unlocked_ready_node_is_deleted_for_room(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        env_launch(e, &(struct opts){ .max_servers = 2, .min_ready = 2 });
        struct ready_count rc = { "small", 2 };
        assert_true(run_until(e, cond_min_ready_settled, &rc, WAIT_MS));
        char **ready = ready_nodes(e, "small");
        assert_int_equal(model_strv_length(ready), 2);
        _cleanup_(node_freep) struct node *n0 = node_read(e, ready[0], NULL);
        _cleanup_(node_freep) struct node *n1 = node_read(e, ready[1], NULL);
        bool first_older = n0->state_time <= n1->state_time;
        _cleanup_free_ char *oldest = xstrdup(first_older ? ready[0] : ready[1]);
        _cleanup_free_ char *newer = xstrdup(first_older ? ready[1] : ready[0]);
        model_strv_free(ready);

        _cleanup_free_ char *lpath = xasprintf("/nodepool/nodes/%s/lock", oldest);
        struct zk_lock *lock = NULL;
        assert_int_equal(zk_lock_try_new(e->zk, lpath, "zuul", &lock), 1);
        run_until(e, NULL, NULL, 300); /* the launcher's cache sees the lock (else its own try fails) */

        _cleanup_free_ char *id = request_new1(e, true, "large");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_true(cond_node_gone(e, newer));
        _cleanup_(node_freep) struct node *kept = node_read(e, oldest, NULL);
        assert_non_null(kept);
        assert_int_equal(kept->state, NODE_STATE_READY);
        _cleanup_(node_freep) struct node *got = node_read(e, rq->nodes[0], NULL);
        assert_true(model_strv_contains(got->type, "large"));
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_DELETE), 1);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 3);
        assert_int_equal(zk_lock_release(lock), 0);
        zk_lock_free(lock);
}

/* A request for several nodes gets one node per entry of node_types, in that
 * order, each launched with its label's size. */
static void test_multi_node_request_gets_every_node_in_order(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        env_launch(e, &(struct opts){});
        const char *labels[] = { "large", "small", "small", NULL };
        _cleanup_free_ char *id = request_new(e, true, labels);
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(model_strv_length(rq->nodes), 3);
        for (size_t i = 0; i < 3; i++) {
                _cleanup_(node_freep) struct node *n = node_read(e, rq->nodes[i], NULL);
                assert_non_null(n);
                assert_int_equal(n->state, NODE_STATE_READY);
                assert_string_equal(n->type[0], labels[i]);
                assert_string_equal(n->allocated_to, id);
                assert_true(fake_cloud_has_server(c, json_string_value(n->external_id)));
                json_t *cores = json_object_get(n->resources, "cores");
                assert_int_equal(json_integer_value(cores), strcmp(labels[i], "large") == 0 ? 2 : 1);
                for (size_t k = 0; k < i; k++) assert_string_not_equal(rq->nodes[k], rq->nodes[i]);
        }
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 3);
}

/* ---------------------------------------------------------------- availability zones */

/* The zone of the node ID as recorded, which must be the zone its server is in. */
static char *node_az(struct env *e, struct fake_cloud *c, const char *id) {
        _cleanup_(node_freep) struct node *n = node_read(e, id, NULL);
        assert_non_null(n);
        assert_non_null(n->az);
        _cleanup_free_ char *server_az = fake_cloud_server_az(c, json_string_value(n->external_id));
        assert_non_null(server_az);
        assert_string_equal(n->az, server_az);
        return xstrdup(n->az);
}

/* Every node of the fulfilled request ID is in one zone, returned. */
static char *request_az(struct env *e, struct fake_cloud *c, const char *id, size_t n_nodes) {
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(model_strv_length(rq->nodes), n_nodes);
        char *az = node_az(e, c, rq->nodes[0]);
        for (size_t i = 1; i < n_nodes; i++) {
                _cleanup_free_ char *other = node_az(e, c, rq->nodes[i]);
                if (strcmp(other, az) != 0)
                        fail_msg("request %s: node %s in %s, node %s in %s", id, rq->nodes[0], az, rq->nodes[i], other);
        }
        return az;
}

struct cached_az {
        const char *id, *az;
};

static bool cond_cached_az(struct env *e, const void *ud) {
        const struct cached_az *ca = ud;
        const struct cnode *cn = smap_get(&e->l->nodes, ca->id);
        return cn && cn->node->az && strcmp(cn->node->az, ca->az) == 0 && !cn->node->allocated_to;
}

/* A READY, unallocated node of LABEL whose server is in zone AZ (launched, then
 * server and record put there: the cloud need not offer AZ now, as after an
 * operator moved it); the launcher's cache has seen it. */
static char *ready_node_in(struct env *e, struct fake_cloud *c, const char *label, const char *az) {
        _cleanup_free_ char *rid = request_new1(e, true, label);
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, rid, NODE_REQUEST_STATE_FULFILLED);
        char *node_id = xstrdup(rq->nodes[0]);
        _cleanup_free_ char *rpath = xasprintf("/nodepool/requests/%s", rid);
        assert_int_equal(zk_delete(e->zk, rpath, -1), 0);
        struct node_unallocated u = { node_id };
        assert_true(run_until(e, cond_node_free, &u, WAIT_MS));
        int32_t version;
        _cleanup_(node_freep) struct node *n = node_read(e, node_id, &version);
        model_set_str(&n->az, az);
        fake_cloud_set_server_az(c, json_string_value(n->external_id), az);
        _cleanup_free_ char *data = NULL, *path = xasprintf("/nodepool/nodes/%s", node_id);
        size_t len;
        assert_int_equal(node_to_json(n, &data, &len), 0);
        assert_int_equal(zk_set(e->zk, path, data, len, version, NULL), 0);
        struct cached_az ca = { node_id, az };
        assert_true(run_until(e, cond_cached_az, &ca, WAIT_MS));
        return node_id;
}

static const char *const THREE_AZS[] = { "az1", "az2", "az3" };

/* Nodepool's chosen_az: the nodes of one request all go to one availability
 * zone of the cloud, although the cloud, left to itself, spreads servers over
 * its zones (the fake places them in turn). */
static void test_multi_node_request_gets_every_node_in_one_availability_zone(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_set_azs(c, THREE_AZS, 3);
        env_launch(e, &(struct opts){});
        const char *labels[] = { "small", "large", "small", NULL };
        for (int round = 0; round < 2; round++) {
                _cleanup_free_ char *id = request_new(e, true, labels);
                _cleanup_free_ char *az = request_az(e, c, id, 3);
                assert_true(strcmp(az, "az1") == 0 || strcmp(az, "az2") == 0 || strcmp(az, "az3") == 0);
        }
        assert_true(fake_cloud_calls(c, FAKE_OP_AZS) >= 1);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 6);
}

/* A ready node reused for a request fixes its zone: the node launched for the
 * rest of the request goes there too, also when the cloud lists no zones (a
 * policy may hide them), where the launcher would otherwise name none. */
static void test_reused_ready_node_fixes_the_zone_of_the_rest_of_the_request(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        env_launch(e, &(struct opts){});
        _cleanup_free_ char *ready = ready_node_in(e, c, "small", "az7");
        const char *labels[] = { "small", "large", NULL };
        _cleanup_free_ char *id = request_new(e, true, labels);
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_string_equal(rq->nodes[0], ready);
        _cleanup_free_ char *az = request_az(e, c, id, 2);
        assert_string_equal(az, "az7");
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 2);
}

/* Once a request's zone is chosen (here by its first node's launch), a ready
 * node in another zone is not reused for it: a new node is launched in the
 * chosen zone and the other one stays ready and free. */
static void test_ready_node_in_another_zone_is_not_reused_for_the_request(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        const char *const azs[] = { "az2" };
        fake_cloud_set_azs(c, azs, 1);
        env_launch(e, &(struct opts){});
        _cleanup_free_ char *other = ready_node_in(e, c, "small", "az1");
        const char *labels[] = { "large", "small", NULL };
        _cleanup_free_ char *id = request_new(e, true, labels);
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_string_not_equal(rq->nodes[1], other);
        _cleanup_free_ char *az = request_az(e, c, id, 2);
        assert_string_equal(az, "az2");
        _cleanup_(node_freep) struct node *n = node_read(e, other, NULL);
        assert_int_equal(n->state, NODE_STATE_READY);
        assert_null(n->allocated_to);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 3);
        /* A request that has no zone yet takes it, and its zone with it. */
        const char *one[] = { "small", NULL };
        _cleanup_free_ char *next = request_new(e, true, one);
        _cleanup_(node_request_freep) struct node_request *rq2 = wait_request(e, next, NODE_REQUEST_STATE_FULFILLED);
        assert_string_equal(rq2->nodes[0], other);
}

/* A pool's availability-zones restrict the choice: every request's nodes go
 * to the zone it lists, never to the cloud's others. */
static void test_pool_availability_zones_restrict_the_choice(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_set_azs(c, THREE_AZS, 3);
        env_launch(e, &(struct opts){ .pool_az = "az2" });
        const char *labels[] = { "small", "large", NULL };
        char *ids[4];
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) ids[i] = request_new(e, false, labels);
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                _cleanup_free_ char *az = request_az(e, c, ids[i], 2);
                assert_string_equal(az, "az2");
                free(ids[i]);
        }
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 8);
}

/* A cloud that will not list its zones (an error, as a policy may forbid it)
 * has none, as openstacksdk's empty list: requests are still served, no zone
 * is named (the fake would place a named one there) and each node records the
 * zone its server reports. */
static void test_cloud_without_a_zone_list_gets_no_zone_and_nodes_record_the_servers(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_fail(c, FAKE_OP_AZS, -EPERM, 1000);
        env_launch(e, &(struct opts){});
        const char *labels[] = { "small", "large", NULL };
        _cleanup_free_ char *id = request_new(e, true, labels);
        _cleanup_free_ char *az = request_az(e, c, id, 2);
        assert_string_equal(az, "fake-az");
        assert_true(fake_cloud_calls(c, FAKE_OP_AZS) >= 1);
}

struct server_gone {
        struct fake_cloud *c;
        const char *id;
};

static bool cond_server_gone(struct env *e, const void *ud) {
        const struct server_gone *g = ud;
        return !fake_cloud_has_server(g->c, g->id);
}

/* The cleanup deletes a server tagged as ours whose node ZooKeeper does not
 * know (a leak), and leaves someone else's server alone. */
static void test_leaked_server_is_deleted_and_foreign_one_kept(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        _cleanup_free_ char *leak = fake_cloud_add_server(c, PROV_A, "0000099999", 1, 64);
        _cleanup_free_ char *foreign = fake_cloud_add_server(c, NULL, NULL, 1, 64);
        setenv("POOLD_CLEANUP_INTERVAL_MS", "200", 1);
        env_launch(e, &(struct opts){});
        unsetenv("POOLD_CLEANUP_INTERVAL_MS");
        struct server_gone g = { c, leak };
        assert_true(run_until(e, cond_server_gone, &g, WAIT_MS));
        assert_true(fake_cloud_has_server(c, foreign));
        assert_int_equal(fake_cloud_n_servers(c), 1);
}

/* Servers that are not ours count against the cloud's quota: with room for
 * two instances and one foreign server, a second node waits for quota. */
static void test_unmanaged_servers_count_against_provider_quota(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_set_limits(c, 2, -1, -1);
        _cleanup_free_ char *foreign = fake_cloud_add_server(c, NULL, NULL, 1, 64);
        env_launch(e, &(struct opts){});
        _cleanup_free_ char *first = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq1 = wait_request(e, first, NODE_REQUEST_STATE_FULFILLED);
        _cleanup_free_ char *second = request_new1(e, true, "small");
        assert_true(run_until(e, cond_pending_and_paused, second, WAIT_MS));
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 1);
        assert_int_equal(fake_cloud_n_servers(c), 2);
}

static json_int_t resource(const struct node *n, const char *key) {
        return json_integer_value(json_object_get(n->resources, key));
}

/* A boot-from-volume node's record counts its volume as Nodepool writes it:
 * resources {cores, instances, ram, volumes: 1, volume-gb: volume-size}; a
 * node of a label without a volume has no volume keys. */
static void test_boot_from_volume_node_counts_its_volume_in_resources(void **state) {
        struct env *e = *state;
        env_launch(e, &(struct opts){ .bfv_gb = 20 });
        _cleanup_free_ char *big = request_new1(e, true, "large"), *small = request_new1(e, true, "small");
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, big, NODE_REQUEST_STATE_FULFILLED);
        _cleanup_(node_request_freep) struct node_request *rqs = wait_request(e, small, NODE_REQUEST_STATE_FULFILLED);
        _cleanup_(node_freep) struct node *n = node_read(e, rq->nodes[0], NULL);
        assert_int_equal(json_object_size(n->resources), 5);
        assert_int_equal(resource(n, "instances"), 1);
        assert_int_equal(resource(n, "cores"), 2);
        assert_int_equal(resource(n, "ram"), 256);
        assert_int_equal(resource(n, "volumes"), 1);
        assert_int_equal(resource(n, "volume-gb"), 20);
        _cleanup_(node_freep) struct node *ns = node_read(e, rqs->nodes[0], NULL);
        assert_int_equal(json_object_size(ns->resources), 3);
        assert_null(json_object_get(ns->resources, "volumes"));
}

/* With room for one boot-from-volume node (by O's pool volume limit or by the
 * cloud's): a first request is served, a second waits (pending, the pool
 * paused, no create), while a label without a volume is still served; when the
 * first node goes, the second is served. */
static void volume_limit_waits_then_serves(struct env *e, const struct opts *o) {
        struct fake_cloud *c = fake_cloud(PROV_A);
        env_launch(e, o);
        _cleanup_free_ char *first = request_new1(e, true, "large");
        _cleanup_(node_request_freep) struct node_request *rq1 = wait_request(e, first, NODE_REQUEST_STATE_FULFILLED);
        _cleanup_free_ char *second = request_new1(e, true, "large");
        assert_true(run_until(e, cond_pending_and_paused, second, WAIT_MS));
        run_until(e, NULL, NULL, 500);
        _cleanup_(node_request_freep) struct node_request *waiting = request_read(e, second);
        assert_int_equal(waiting->state, NODE_REQUEST_STATE_PENDING);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 1);

        release_request(e, first, rq1);
        _cleanup_(node_request_freep) struct node_request *rq2 = wait_request(e, second, NODE_REQUEST_STATE_FULFILLED);
        assert_string_not_equal(rq2->nodes[0], rq1->nodes[0]);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 2);
}

/* Pool max-volumes: 1 lets one boot-from-volume node live at a time. */
static void test_pool_max_volumes_waits_until_a_volume_node_goes(void **state) {
        volume_limit_waits_then_serves(*state, &(struct opts){ .bfv_gb = 20, .max_volumes = 1 });
}

/* Pool max-volume-gb: 30 holds one 20 GB volume, not two. */
static void test_pool_max_volume_gb_waits_until_a_volume_node_goes(void **state) {
        volume_limit_waits_then_serves(*state, &(struct opts){ .bfv_gb = 20, .max_volume_gb = 30 });
}

/* The cloud's volume limit (Cinder's maxTotalVolumes, less the volumes the
 * project uses that are not our nodes'): 3 allowed, 2 used by others. */
static void test_cloud_volume_limit_reached_waits_until_a_volume_node_goes(void **state) {
        fake_cloud_set_volume_label(fake_cloud(PROV_A), "large", 20);
        fake_cloud_set_volume_limits(fake_cloud(PROV_A), 3, -1, 2, 40);
        volume_limit_waits_then_serves(*state, &(struct opts){ .bfv_gb = 20 });
}

/* Same by gigabytes: 100 GB allowed, 70 used by others, 20 GB volumes. */
static void test_cloud_volume_gb_limit_reached_waits_until_a_volume_node_goes(void **state) {
        fake_cloud_set_volume_label(fake_cloud(PROV_A), "large", 20);
        fake_cloud_set_volume_limits(fake_cloud(PROV_A), -1, 100, 3, 70);
        volume_limit_waits_then_serves(*state, &(struct opts){ .bfv_gb = 20 });
}

/* Volumes someone else uses fill the cloud's limit: a boot-from-volume request
 * waits (it is not declined: the cloud's count also holds volumes of our own
 * deleted nodes for a while), and is served once they are gone, the cloud's
 * totals being read again while it waits. */
static void test_volumes_others_use_make_request_wait_until_they_are_gone(void **state) {
        struct env *e = *state;
        struct fake_cloud *c = fake_cloud(PROV_A);
        fake_cloud_set_volume_label(c, "large", 20);
        fake_cloud_set_volume_limits(c, 1, -1, 1, 20);
        env_launch(e, &(struct opts){ .bfv_gb = 20 });
        _cleanup_free_ char *id = request_new1(e, true, "large");
        assert_true(run_until(e, cond_pending_and_paused, id, WAIT_MS));
        run_until(e, NULL, NULL, 500);
        _cleanup_(node_request_freep) struct node_request *waiting = request_read(e, id);
        assert_int_equal(waiting->state, NODE_REQUEST_STATE_PENDING);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 0);
        fake_cloud_set_volume_limits(c, 1, -1, 0, 0);
        _cleanup_(node_request_freep) struct node_request *rq = wait_request(e, id, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(fake_cloud_calls(c, FAKE_OP_CREATE), 1);
}

/* A tenant at its max-volumes: its request for another boot-from-volume node
 * stays `requested` (deferred, as Nodepool), while its request without a volume
 * is served; when its volume node goes, the deferred request is served. */
static void test_tenant_max_volumes_defers_request_until_a_volume_node_goes(void **state) {
        struct env *e = *state;
        env_launch(e, &(struct opts){ .bfv_gb = 20, .tenant_limits = "  - {tenant-name: t1, max-volumes: 1}\n" });
        const char *large[] = { "large", NULL }, *small[] = { "small", NULL };
        _cleanup_free_ char *first = request_new_tenant(e, true, large, "t1");
        _cleanup_(node_request_freep) struct node_request *rq1 = wait_request(e, first, NODE_REQUEST_STATE_FULFILLED);
        _cleanup_free_ char *second = request_new_tenant(e, true, large, "t1");
        _cleanup_free_ char *plain = request_new_tenant(e, true, small, "t1");
        _cleanup_(node_request_freep) struct node_request *rqp = wait_request(e, plain, NODE_REQUEST_STATE_FULFILLED);
        run_until(e, NULL, NULL, 500);
        _cleanup_(node_request_freep) struct node_request *waiting = request_read(e, second);
        assert_int_equal(waiting->state, NODE_REQUEST_STATE_REQUESTED);
        release_request(e, first, rq1);
        _cleanup_(node_request_freep) struct node_request *rq2 = wait_request(e, second, NODE_REQUEST_STATE_FULFILLED);
}

/* A custom key of tenant-resource-limits caps that key of the tenant's nodes'
 * resources, as Nodepool's QuotaInformation does (e.g. another driver's quota
 * code): a node another launcher recorded with gpus: 2 puts tenant t1 (gpus: 1)
 * over its limit, so t1's requests wait while t2's are served; when the node
 * goes, t1's request is served. */
static void test_tenant_custom_resource_limit_defers_until_usage_drops(void **state) {
        struct env *e = *state;
        env_launch(e, &(struct opts){ .tenant_limits = "  - {tenant-name: t1, gpus: 1}\n" });
        _cleanup_(node_freep) struct node *other = node_new(NULL);
        node_set_state(other, NODE_STATE_IN_USE);
        model_set_str(&other->provider, "elsewhere");
        model_set_str(&other->pool, "gpu");
        model_set_str(&other->tenant_name, "t1");
        model_strv_push(&other->type, "gpu-node");
        other->resources = json_pack("{s:i, s:i, s:i, s:i}", "cores", 8, "instances", 1, "ram", 8192, "gpus", 2);
        _cleanup_free_ char *data = NULL, *path = NULL;
        size_t len;
        assert_int_equal(node_to_json(other, &data, &len), 0);
        assert_int_equal(zk_create(e->zk, "/nodepool/nodes/", data, len, ZK_SEQUENCE | ZK_MAKEPATH, &path), 0);
        const char *small[] = { "small", NULL };
        _cleanup_free_ char *t1 = request_new_tenant(e, true, small, "t1");
        _cleanup_free_ char *t2 = request_new_tenant(e, true, small, "t2");
        _cleanup_(node_request_freep) struct node_request *rq2 = wait_request(e, t2, NODE_REQUEST_STATE_FULFILLED);
        run_until(e, NULL, NULL, 500);
        _cleanup_(node_request_freep) struct node_request *waiting = request_read(e, t1);
        assert_int_equal(waiting->state, NODE_REQUEST_STATE_REQUESTED);
        assert_int_equal(zk_delete(e->zk, path, -1), 0);
        _cleanup_(node_request_freep) struct node_request *rq1 = wait_request(e, t1, NODE_REQUEST_STATE_FULFILLED);
}

int main(int argc, char **argv) {
        const char *hosts = getenv("POOLD_TEST_ZK_HOSTS");
        if (!hosts || sscanf(hosts, "%63[^:]:%d", zk_host, &zk_port) != 2) {
                fprintf(stderr, "test_launcher_core: POOLD_TEST_ZK_HOSTS (host:port) is not set; run it as\n"
                                "  tests/tools/with-zookeeper %s\n(make check-unit does)\n", argv[0]);
                return 1;
        }
        const char *lvl = getenv("POOLD_LOG_LEVEL");
        log_setup("test_launcher_core", lvl && log_level_from_string(lvl) >= 0 ? log_level_from_string(lvl)
                                                                                : LOG_LEVEL_WARNING);
        if (zk_new(hosts, 10000, NULL, &root_zk) < 0 || zk_connect_wait(root_zk, 30000) < 0) {
                fprintf(stderr, "test_launcher_core: cannot connect to ZooKeeper at %s\n", hosts);
                return 1;
        }
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
        const struct CMUnitTest tests[] = {
                T(test_one_node_request_is_launched_and_fulfilled),
                T(test_ready_node_is_reused_instead_of_launching),
                T(test_slow_boot_keeps_node_building_until_server_active),
                T(test_create_at_capacity_leaves_request_pending_and_retries),
                T(test_create_failure_within_launch_retries_is_retried),
                T(test_create_failing_for_good_fails_node_and_request),
                T(test_failed_launch_gives_request_to_the_next_pool),
                T(test_unreachable_cloud_is_retried_without_counting_an_attempt),
                T(test_request_for_unknown_label_is_declined_and_fails),
                T(test_request_withdrawn_while_booting_leaves_node_ready_for_reuse),
                T(test_pool_at_max_servers_waits_until_a_node_is_freed),
                T(test_min_ready_requests_nodes_and_keeps_them_ready),
                T(test_at_quota_oldest_unlocked_ready_node_is_deleted_for_room),
                T(test_multi_node_request_gets_every_node_in_order),
                T(test_multi_node_request_gets_every_node_in_one_availability_zone),
                T(test_reused_ready_node_fixes_the_zone_of_the_rest_of_the_request),
                T(test_ready_node_in_another_zone_is_not_reused_for_the_request),
                T(test_pool_availability_zones_restrict_the_choice),
                T(test_cloud_without_a_zone_list_gets_no_zone_and_nodes_record_the_servers),
                T(test_leaked_server_is_deleted_and_foreign_one_kept),
                T(test_unmanaged_servers_count_against_provider_quota),
                T(test_boot_from_volume_node_counts_its_volume_in_resources),
                T(test_pool_max_volumes_waits_until_a_volume_node_goes),
                T(test_pool_max_volume_gb_waits_until_a_volume_node_goes),
                T(test_cloud_volume_limit_reached_waits_until_a_volume_node_goes),
                T(test_cloud_volume_gb_limit_reached_waits_until_a_volume_node_goes),
                T(test_volumes_others_use_make_request_wait_until_they_are_gone),
                T(test_tenant_max_volumes_defers_request_until_a_volume_node_goes),
                T(test_tenant_custom_resource_limit_defers_until_usage_drops),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        zk_free(root_zk);
        log_close();
        return r;
}
