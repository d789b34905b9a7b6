/* test_pool_driver.c — the driver table (poold/pool_driver.h): which table a
 * provider gets, and the answers the launcher core reads from it for a static
 * and a cloud pool (labels offered, why a request can never fit, min-ready,
 * launching, lease, quota, leaks, ages, deletes). Pools are built from a real
 * loaded configuration; nothing is opened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "config.h"
#include "launcher.h"
#include "model_image.h"
#include "model_request.h"
#include "pool_driver.h"

static const char *yaml = "labels: [{name: small}, {name: large}, {name: gpu}, {name: vm}, {name: big}]\n"
                          "diskimages: [{name: img, elements: [vm], metadata: {}}]\n"
                          "providers:\n"
                          "  - name: rack\n"
                          "    driver: static\n"
                          "    pools:\n"
                          "      - name: main\n"
                          "        nodes:\n"
                          "          - {name: h1, labels: [small, large], host-key-checking: false}\n"
                          "          - {name: h2, labels: small, host-key-checking: false}\n"
                          "  - name: virt\n"
                          "    driver: libvirt\n"
                          "    diskimages: [{name: img}]\n"
                          "    pools:\n"
                          "      - name: m\n"
                          "        max-servers: 2\n"
                          "        labels: [{name: vm, diskimage: img}]\n";

struct env {
        struct launcher l;
        struct config *cfg;
        struct launcher_provider stp, clp;
        struct pool st, cl;
};

static int setup(void **state) {
        struct env *e = xnew(struct env, 1);
        struct config_diags d = { 0 };
        int r = config_load_buffer("test.yaml", yaml, strlen(yaml), NULL, NULL, 0, &e->cfg, &d);
        if (r < 0) config_diags_print(&d, stderr);
        config_diags_clear(&d);
        assert_int_equal(r, 0);
        const struct config_provider *sc = config_find_provider(e->cfg, "rack");
        const struct config_provider *cc = config_find_provider(e->cfg, "virt");
        assert_non_null(sc);
        assert_non_null(cc);
        e->stp = (struct launcher_provider){ .l = &e->l, .name = "rack", .drv = pool_driver_for(sc->driver) };
        e->clp = (struct launcher_provider){ .l = &e->l, .name = "virt", .drv = pool_driver_for(cc->driver) };
        e->st = (struct pool){ .l = &e->l, .prov = &e->stp, .cp = sc, .cpool = &sc->pools[0],
                               .provider_name = "rack", .name = "main" };
        e->cl = (struct pool){ .l = &e->l, .prov = &e->clp, .cp = cc, .cpool = &cc->pools[0],
                               .provider_name = "virt", .name = "m" };
        *state = e;
        return 0;
}

static void upload_free(void *v) { image_upload_free(v); }
static void build_free(void *v) { image_build_free(v); }

static int teardown(void **state) {
        struct env *e = *state;
        smap_clear(&e->l.uploads, upload_free);
        smap_clear(&e->l.builds, build_free);
        config_free(e->cfg);
        free(e);
        return 0;
}

/* A request for TYPES (NULL-terminated), the decline reason P's driver gives (static or BUF). */
static const char *never_fits(struct pool *p, const char *const *types, char *buf, size_t sz) {
        _cleanup_(node_request_freep) struct node_request *rq = node_request_new("100-0000000001");
        for (; *types; types++) model_strv_push(&rq->node_types, *types);
        const char *why = p->prov->drv->never_fits(p, rq, buf, sz);
        return why;
}

/* Only the static driver gets the static table, metastatic its own; libvirt and OpenStack the cloud one. */
static void test_driver_chosen_by_config_driver(void **state) {
        assert_ptr_equal(pool_driver_for(CONFIG_DRIVER_STATIC), &pool_driver_static);
        assert_ptr_equal(pool_driver_for(CONFIG_DRIVER_METASTATIC), &pool_driver_metastatic);
        /* It launches (under the lease), has no instance to delete, no cloud quota, no leaks. */
        assert_non_null(pool_driver_metastatic.launch);
        assert_true(pool_driver_metastatic.launch_lease);
        assert_null(pool_driver_metastatic.delete_instance);
        assert_false(pool_driver_metastatic.provider_quota);
        assert_false(pool_driver_metastatic.leak_cleanup);
        assert_ptr_equal(pool_driver_for(CONFIG_DRIVER_LIBVIRT), &pool_driver_cloud);
        assert_ptr_equal(pool_driver_for(CONFIG_DRIVER_OPENSTACK), &pool_driver_cloud);
}

/* A static pool offers its nodes' labels, declines a label no node has (and
 * names it), never launches, needs no lease, and its nodes escape cloud quota,
 * leak listing, max-ready-age and instance deletes; ready nodes are checked. */
static void test_static_pool_answers(void **state) {
        struct env *e = *state;
        const struct pool_driver *d = e->st.prov->drv;
        char buf[256];
        assert_true(pool_has_label(&e->st, "small"));
        assert_true(pool_has_label(&e->st, "large"));
        assert_false(pool_has_label(&e->st, "gpu"));
        assert_false(pool_has_label(&e->st, "vm"));
        assert_null(never_fits(&e->st, (const char *[]){ "small", "large", NULL }, buf, sizeof buf));
        /* Two hosts of one slot each: three nodes can never be held at once. */
        assert_string_equal(never_fits(&e->st, (const char *[]){ "small", "large", "small", NULL }, buf, sizeof buf),
                            "3 nodes requested; the pool's hosts with those labels have 2 slots");
        assert_string_equal(never_fits(&e->st, (const char *[]){ "large", "large", NULL }, buf, sizeof buf),
                            "2 large nodes requested; the pool's hosts with that label have 1 slot");
        assert_string_equal(never_fits(&e->st, (const char *[]){ "small", "gpu", NULL }, buf, sizeof buf),
                            "label gpu is not on any static node of this pool");
        assert_true(d->minready_offers(&e->st, "large"));
        assert_false(d->minready_offers(&e->st, "gpu"));
        assert_null(d->launch);
        assert_false(d->launch_lease);
        assert_non_null(d->check_ready);
        assert_null(d->delete_instance);
        assert_false(d->provider_quota || d->leak_cleanup || d->max_ready_age);
        assert_non_null(d->sync);
}

/* A cloud pool offers its labels only, declines a missing label, a diskimage
 * label without a ready upload, and a request larger than max-servers; min-ready
 * waits for the upload. It launches under the lease, deletes servers, and obeys
 * quota, leaks and ages. */
static void test_cloud_pool_answers(void **state) {
        struct env *e = *state;
        const struct pool_driver *d = e->cl.prov->drv;
        char buf[256];
        assert_true(pool_has_label(&e->cl, "vm"));
        assert_false(pool_has_label(&e->cl, "small"));
        assert_string_equal(never_fits(&e->cl, (const char *[]){ "small", "vm", NULL }, buf, sizeof buf),
                            "label small is not in this pool");
        assert_string_equal(never_fits(&e->cl, (const char *[]){ "vm", NULL }, buf, sizeof buf),
                            "no ready upload of image img for label vm");
        assert_false(d->minready_offers(&e->cl, "vm"));

        /* A ready upload of a ready build of img for this provider. */
        struct image_build *b = image_build_new("0123456789abcdef0123456789abcdef");
        b->state = IMAGE_BUILD_STATE_READY;
        smap_put(&e->l.builds, NPZK_IMAGES "/img/builds/0123456789abcdef0123456789abcdef", b);
        struct image_upload *u = image_upload_new("0000000001");
        u->state = IMAGE_UPLOAD_STATE_READY;
        u->image_name = xstrdup("img");
        u->provider_name = xstrdup("virt");
        u->build_id = xstrdup("0123456789abcdef0123456789abcdef");
        u->external_id = xstrdup("ext-1");
        smap_put(&e->l.uploads, "upload-1", u);

        assert_null(never_fits(&e->cl, (const char *[]){ "vm", "vm", NULL }, buf, sizeof buf));
        assert_string_equal(never_fits(&e->cl, (const char *[]){ "vm", "vm", "vm", NULL }, buf, sizeof buf),
                            "request is larger than max-servers");
        assert_true(d->minready_offers(&e->cl, "vm"));
        assert_ptr_equal(d->launch, launch_start);
        assert_true(d->launch_lease);
        assert_null(d->check_ready);
        assert_non_null(d->delete_instance);
        assert_true(d->provider_quota && d->leak_cleanup && d->max_ready_age);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_driver_chosen_by_config_driver),
                cmocka_unit_test_setup_teardown(test_static_pool_answers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cloud_pool_answers, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
