/* Unit tests for shared/model/nodepool_zk.c: every path of Nodepool's schema
 * is built as protocol.md §1.3 lays it out and parses back into the same
 * parts; bad paths are refused; the image-tree decoder keeps malformed
 * records undecoded (never used, never a crash) and ignores paths outside
 * the tree. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nodepool_zk.h"

#define BUILD "0123456789abcdef0123456789abcdef"
#define UP "/nodepool/images/ubuntu/builds/" BUILD "/providers/vexx/images"

/* Parse PATH, check its kind and parts (NULL: absent), format it back to PATH. */
static void check_round_trip(const char *path, enum npzk_kind kind, const char *id, const char *image,
                             const char *build, const char *provider, const char *upload) {
        struct npzk_path p;
        assert_int_equal(npzk_path_parse(path, &p), 0);
        assert_int_equal(p.kind, kind);
#define PART(f, v)                                        \
        do {                                              \
                if (v)                                    \
                        assert_string_equal(p.f, v);      \
                else                                      \
                        assert_null(p.f);                 \
        } while (0)
        PART(id, id);
        PART(image, image);
        PART(build_id, build);
        PART(provider, provider);
        PART(upload_id, upload);
#undef PART
        char *back = npzk_path_format(&p);
        assert_string_equal(back, path);
        free(back);
        npzk_path_done(&p);
        assert_null(p.image);
}

/* The builders produce Nodepool's exact paths (what Zuul and nodepool-builder read). */
static void test_builders_match_the_schema(void **state) {
        struct {
                char *got;
                const char *want;
        } c[] = {
                { npzk_request_path("200-0000000001"), "/nodepool/requests/200-0000000001" },
                { npzk_request_prefix(7), "/nodepool/requests/007-" },
                { npzk_request_prefix(900), "/nodepool/requests/900-" },
                { npzk_request_lock_path("200-0000000001"), "/nodepool/requests-lock/200-0000000001" },
                { npzk_node_path("0000000042"), "/nodepool/nodes/0000000042" },
                { npzk_node_lock_path("0000000042"), "/nodepool/nodes/0000000042/lock" },
                { npzk_lock_path("/nodepool/x"), "/nodepool/x/lock" },
                { npzk_image_path("ubuntu"), "/nodepool/images/ubuntu" },
                { npzk_image_pause_path("ubuntu"), "/nodepool/images/ubuntu/pause" },
                { npzk_image_request_build_path("ubuntu"), "/nodepool/images/ubuntu/request-build" },
                { npzk_builds_path("ubuntu"), "/nodepool/images/ubuntu/builds" },
                { npzk_build_lock_path("ubuntu"), "/nodepool/images/ubuntu/builds/lock" },
                { npzk_build_path("ubuntu", BUILD), "/nodepool/images/ubuntu/builds/" BUILD },
                { npzk_providers_path("ubuntu", BUILD), "/nodepool/images/ubuntu/builds/" BUILD "/providers" },
                { npzk_provider_path("ubuntu", BUILD, "vexx"),
                  "/nodepool/images/ubuntu/builds/" BUILD "/providers/vexx" },
                { npzk_uploads_path("ubuntu", BUILD, "vexx"), UP },
                { npzk_upload_lock_path("ubuntu", BUILD, "vexx"), UP "/lock" },
                { npzk_upload_path("ubuntu", BUILD, "vexx", "0000000001"), UP "/0000000001" },
                { npzk_component_dir("pool"), "/nodepool/components/pool" },
                { npzk_component_prefix("launcher", "host1"), "/nodepool/components/launcher/host1" },
                { npzk_election_path("stats"), "/nodepool/elections/stats" },
                { npzk_poold_lock_path("min-ready", "small", NULL), "/nodepool/poold-locks/min-ready/small" },
                { npzk_poold_lock_path("launch", "p", "q"), "/nodepool/poold-locks/launch/p/q" },
        };
        for (size_t i = 0; i < ELEMENTSOF(c); i++) {
                assert_string_equal(c[i].got, c[i].want);
                free(c[i].got);
        }
}

/* Every parseable kind goes path -> parts -> the same path. */
static void test_parse_round_trips_every_kind(void **state) {
        check_round_trip("/nodepool/requests/200-0000000001", NPZK_REQUEST, "200-0000000001", NULL, NULL, NULL,
                         NULL);
        check_round_trip("/nodepool/requests-lock/200-0000000001", NPZK_REQUEST_LOCK, "200-0000000001", NULL, NULL,
                         NULL, NULL);
        check_round_trip("/nodepool/nodes/0000000042", NPZK_NODE, "0000000042", NULL, NULL, NULL, NULL);
        check_round_trip("/nodepool/nodes/0000000042/lock", NPZK_NODE_LOCK, "0000000042", NULL, NULL, NULL, NULL);
        check_round_trip("/nodepool/images/ubuntu", NPZK_IMAGE, NULL, "ubuntu", NULL, NULL, NULL);
        check_round_trip("/nodepool/images/ubuntu/pause", NPZK_IMAGE_PAUSE, NULL, "ubuntu", NULL, NULL, NULL);
        check_round_trip("/nodepool/images/ubuntu/request-build", NPZK_IMAGE_REQUEST, NULL, "ubuntu", NULL, NULL,
                         NULL);
        check_round_trip("/nodepool/images/ubuntu/builds", NPZK_BUILDS, NULL, "ubuntu", NULL, NULL, NULL);
        check_round_trip("/nodepool/images/ubuntu/builds/lock", NPZK_BUILD_LOCK, NULL, "ubuntu", NULL, NULL, NULL);
        check_round_trip("/nodepool/images/ubuntu/builds/" BUILD, NPZK_BUILD, NULL, "ubuntu", BUILD, NULL, NULL);
        /* Legacy builds have 10-digit sequence ids; both coexist (protocol.md §1.6). */
        check_round_trip("/nodepool/images/ubuntu/builds/0000000007", NPZK_BUILD, NULL, "ubuntu", "0000000007",
                         NULL, NULL);
        check_round_trip("/nodepool/images/ubuntu/builds/" BUILD "/lock", NPZK_BUILD_RECORD_LOCK, NULL, "ubuntu",
                         BUILD, NULL, NULL);
        check_round_trip("/nodepool/images/ubuntu/builds/" BUILD "/providers", NPZK_PROVIDERS, NULL, "ubuntu", BUILD,
                         NULL, NULL);
        check_round_trip("/nodepool/images/ubuntu/builds/" BUILD "/providers/vexx", NPZK_PROVIDER, NULL, "ubuntu",
                         BUILD, "vexx", NULL);
        check_round_trip(UP, NPZK_UPLOADS, NULL, "ubuntu", BUILD, "vexx", NULL);
        check_round_trip(UP "/lock", NPZK_UPLOAD_LOCK, NULL, "ubuntu", BUILD, "vexx", NULL);
        check_round_trip(UP "/0000000001", NPZK_UPLOAD, NULL, "ubuntu", BUILD, "vexx", "0000000001");
        check_round_trip(UP "/0000000001/lock", NPZK_UPLOAD_RECORD_LOCK, NULL, "ubuntu", BUILD, "vexx",
                         "0000000001");
}

/* Anything else is refused, and the output is left alone. */
static void test_parse_refuses_bad_paths(void **state) {
        static const char *const bad[] = {
                "",
                "ubuntu-cloud-22.04",                         /* a cloud image name in a node's image_id */
                "/nodepool",                                  /* not deep enough */
                "/nodepool/",
                "/nodepool/nodes",
                "/nodepool/images",
                "/zuul/nodes/nodes/0000000001",               /* not /nodepool */
                "/nodepoolx/nodes/0000000001",
                "nodepool/nodes/0000000001",                  /* relative */
                "/nodepool/nodes/0000000001/",                /* trailing slash: an empty part */
                "/nodepool//nodes/0000000001",
                "/nodepool/nodes//lock",
                "/nodepool/images//builds",
                "/nodepool/images/ubuntu/builds//providers",
                "/nodepool/nodes/0000000001/lock/x",          /* too deep */
                "/nodepool/requests/200-0000000001/lock",
                "/nodepool/requests-lock/200-0000000001/x",
                "/nodepool/nodes/0000000001/locks",           /* wrong literal */
                "/nodepool/nodes/lock",                       /* "lock" is never an id */
                "/nodepool/images/lock",
                "/nodepool/images/ubuntu/builds/lock/providers",
                "/nodepool/images/ubuntu/build/" BUILD,
                "/nodepool/images/ubuntu/paused",
                "/nodepool/images/ubuntu/builds/" BUILD "/provider/vexx/images/1",
                "/nodepool/images/ubuntu/builds/" BUILD "/providers/vexx/image/1",
                "/nodepool/images/ubuntu/builds/" BUILD "/providers/lock",
                "/nodepool/images/ubuntu/builds/" BUILD "/providers/vexx/images/lock/lock",
                UP "/0000000001/lock/x",
                UP "/0000000001/x",
                "/nodepool/images/ubuntu/builds/../providers/vexx/images/1", /* dot parts */
                "/nodepool/images/./builds",
                "/nodepool/nodes/..",
                "/nodepool/launchers/x",                      /* built, not parsed */
                "/nodepool/components/pool/host0000000001",
                "/nodepool/a/b/c/d/e/f/g/h/i/j/k/l",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct npzk_path p = { .kind = NPZK_NODE, .id = (char *)"untouched" };
                if (npzk_path_parse(bad[i], &p) != -EINVAL) fail_msg("accepted: \"%s\"", bad[i]);
                assert_string_equal(p.id, "untouched");
        }
        struct npzk_path p;
        assert_int_equal(npzk_path_parse(NULL, &p), -EINVAL);
        struct npzk_path invalid = { .kind = _NPZK_KIND_INVALID };
        assert_null(npzk_path_format(&invalid));
}

static void test_name_ok(void **state) {
        assert_true(npzk_name_ok("ubuntu-jammy"));
        assert_true(npzk_name_ok("..."));
        assert_false(npzk_name_ok(NULL));
        assert_false(npzk_name_ok(""));
        assert_false(npzk_name_ok("."));
        assert_false(npzk_name_ok(".."));
        assert_false(npzk_name_ok("a/b"));
}

/* ---------------------------------------------------------------- the image tree */

#define BUILD_JSON "{\"state\": \"ready\", \"state_time\": 1700000000.5, \"formats\": \"qcow2,raw\"}"
#define UPLOAD_JSON "{\"state\": \"ready\", \"state_time\": 1700000100.0, \"external_id\": \"img-1\"}"

static int add(struct npzk_images *t, const char *path, const char *data, unsigned locks) {
        struct npzk_znode zn = { .path = path, .data = data, .len = data ? strlen(data) : 0,
                                 .ctime_ms = 1700000000123, .lock_contenders = locks };
        struct model_error err = { .msg = "" };
        int r = npzk_images_add(t, &zn, &err);
        if (r == -EBADMSG) assert_true(err.msg[0] != 0); /* says why */
        return r;
}

/* znodes in any order (a cache walk has none) make one tree; flags, lock
 * counts and the parts of uploads come from the paths. */
static void test_tree_from_znodes_in_any_order(void **state) {
        struct npzk_images t = {};
        assert_int_equal(add(&t, UP "/0000000002", UPLOAD_JSON, 1), NPZK_UPLOAD);
        assert_int_equal(add(&t, "/nodepool/images/ubuntu/builds/" BUILD, BUILD_JSON, 0), NPZK_BUILD);
        assert_int_equal(add(&t, UP "/0000000001", NULL, 0), NPZK_UPLOAD); /* listed, not read */
        assert_int_equal(add(&t, UP, NULL, 2), NPZK_UPLOADS);
        assert_int_equal(add(&t, "/nodepool/images/ubuntu/request-build", NULL, 0), NPZK_IMAGE_REQUEST);
        assert_int_equal(add(&t, "/nodepool/images/ubuntu/builds", NULL, 1), NPZK_BUILDS);
        assert_int_equal(add(&t, "/nodepool/images/debian", NULL, 0), NPZK_IMAGE);
        assert_int_equal(add(&t, "/nodepool/images/debian/pause", NULL, 0), NPZK_IMAGE_PAUSE);
        assert_int_equal(add(&t, "/nodepool/images/ubuntu/builds/lock", NULL, 0), NPZK_BUILD_LOCK);
        npzk_images_sort(&t);

        assert_int_equal(t.n, 2);
        struct npzk_image *deb = npzk_images_find(&t, "debian"), *ub = npzk_images_find(&t, "ubuntu");
        assert_ptr_equal(deb, &t.images[0]);
        assert_true(deb->paused && !deb->requested && deb->n == 0);
        assert_true(!ub->paused && ub->requested);
        assert_true(ub->request_time > 1700000000.1 && ub->request_time < 1700000000.2);
        assert_int_equal(ub->build_lock, 1);
        assert_int_equal(ub->n, 1);
        struct npzk_build *b = &ub->builds[0];
        assert_string_equal(b->path, "/nodepool/images/ubuntu/builds/" BUILD);
        assert_non_null(b->b);
        assert_int_equal(b->b->state, IMAGE_BUILD_STATE_READY);
        assert_string_equal(b->data, BUILD_JSON);
        struct npzk_provider *p = npzk_build_provider(b, "vexx");
        assert_non_null(p);
        assert_null(npzk_build_provider(b, "other"));
        assert_int_equal(p->upload_lock, 2);
        assert_int_equal(p->n, 2);
        assert_string_equal(p->ups[0].id, "0000000001");
        assert_null(p->ups[0].u);
        assert_null(p->ups[0].data);
        assert_string_equal(p->ups[1].path, UP "/0000000002");
        assert_int_equal(p->ups[1].lock, 1);
        struct image_upload *u = p->ups[1].u;
        assert_non_null(u);
        assert_string_equal(u->image_name, "ubuntu");
        assert_string_equal(u->build_id, BUILD);
        assert_string_equal(u->provider_name, "vexx");
        assert_string_equal(u->external_id, "img-1");

        /* A record read again replaces the first. */
        assert_int_equal(add(&t, UP "/0000000001", UPLOAD_JSON, 0), NPZK_UPLOAD);
        assert_non_null(p->ups[0].u);
        npzk_images_done(&t);
        assert_int_equal(t.n, 0);
}

/* Malformed records are kept with no decoded record (so nobody uses or
 * deletes them); paths outside the tree change nothing; nothing crashes. */
static void test_tree_keeps_malformed_records_undecoded(void **state) {
        static const char *const bad_data[] = {
                "",                                    /* empty: e.g. re-created by a lock's ensure_path */
                "not json",
                "[]",
                "{\"state\": \"exploded\"}",
                "{\"state\": 7}",
                "{\"state\": \"ready\", \"state_time\": \"yesterday\"}",
                "{\"state\": \"ready\"",
        };
        struct npzk_images t = {};
        for (size_t i = 0; i < ELEMENTSOF(bad_data); i++) {
                assert_int_equal(add(&t, "/nodepool/images/ubuntu/builds/" BUILD, bad_data[i], 0), -EBADMSG);
                assert_int_equal(add(&t, UP "/0000000001", bad_data[i], 0), -EBADMSG);
        }
        assert_int_equal(t.n, 1);
        struct npzk_build *b = &t.images[0].builds[0];
        assert_null(b->b);
        assert_non_null(b->data); /* kept raw, e.g. for export */
        assert_int_equal(b->n, 1);
        assert_int_equal(b->provs[0].n, 1);
        assert_null(b->provs[0].ups[0].u);

        /* A good record after a bad one decodes, and a bad one after a good one drops the decode. */
        assert_int_equal(add(&t, "/nodepool/images/ubuntu/builds/" BUILD, BUILD_JSON, 0), NPZK_BUILD);
        assert_non_null(b->b);
        assert_int_equal(add(&t, "/nodepool/images/ubuntu/builds/" BUILD, "{", 0), -EBADMSG);
        assert_null(b->b);

        static const char *const outside[] = {
                "/nodepool/nodes/0000000001",
                "/nodepool/requests/200-0000000001",
                "/nodepool/images/ubuntu/builds/" BUILD "/junk",
                "/nodepool/images/ubuntu/unknown",
                "/nodepool/images/ubuntu/builds/" BUILD "/providers/vexx/images/1/2",
                "/nodepool/images//builds",
                "/elsewhere",
        };
        for (size_t i = 0; i < ELEMENTSOF(outside); i++) {
                if (add(&t, outside[i], BUILD_JSON, 0) != -EINVAL) fail_msg("accepted: \"%s\"", outside[i]);
        }
        assert_int_equal(t.n, 1);
        assert_int_equal(t.images[0].n, 1);
        npzk_images_done(&t);
}

/* The record decoder alone (what the launcher's cache uses per event). */
static void test_record_decode(void **state) {
        struct image_build *b = NULL;
        struct image_upload *u = NULL;
        struct model_error err;
        struct npzk_znode zn = { .path = UP "/0000000003", .data = UPLOAD_JSON, .len = strlen(UPLOAD_JSON) };
        assert_int_equal(npzk_image_record_decode(&zn, &b, &u, &err), NPZK_UPLOAD);
        assert_null(b);
        assert_string_equal(u->id, "0000000003");
        assert_string_equal(u->provider_name, "vexx");
        image_upload_free(u);
        u = NULL;

        zn.data = NULL; /* a removal: the kind, nothing decoded */
        assert_int_equal(npzk_image_record_decode(&zn, &b, &u, &err), NPZK_UPLOAD);
        assert_null(u);
        zn = (struct npzk_znode){ .path = "/nodepool/images/ubuntu/pause", .data = "", .len = 0 };
        assert_int_equal(npzk_image_record_decode(&zn, &b, &u, &err), NPZK_IMAGE_PAUSE);
        zn = (struct npzk_znode){ .path = "/nodepool/images/ubuntu/builds/" BUILD, .data = "{}", .len = 2 };
        assert_int_equal(npzk_image_record_decode(&zn, &b, &u, &err), -EBADMSG);
        assert_null(b);
        zn = (struct npzk_znode){ .path = "/nodepool/images/ubuntu/builds/" BUILD, .data = BUILD_JSON,
                                  .len = strlen(BUILD_JSON) };
        assert_int_equal(npzk_image_record_decode(&zn, NULL, &u, &err), NPZK_BUILD); /* not asked for: skipped */
        assert_null(u);
        zn = (struct npzk_znode){ .path = "/nodepool/nodes/0000000001", .data = "{}", .len = 2 };
        assert_int_equal(npzk_image_record_decode(&zn, &b, &u, &err), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builders_match_the_schema),
                cmocka_unit_test(test_parse_round_trips_every_kind),
                cmocka_unit_test(test_parse_refuses_bad_paths),
                cmocka_unit_test(test_name_ok),
                cmocka_unit_test(test_tree_from_znodes_in_any_order),
                cmocka_unit_test(test_tree_keeps_malformed_records_undecoded),
                cmocka_unit_test(test_record_decode),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
