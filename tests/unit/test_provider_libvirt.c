/* test_provider_libvirt.c — the libvirt provider driver against libvirt's
 * in-memory test:///default hypervisor (shared by every connection of this
 * process while one stays open: the tests keep a "witness" connection to check
 * what the driver did independently of the driver). */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "libvirt_xml.h"
#include "provider.h"

#define URI "test:///default"
#define POOL "default-pool"

struct fixture {
        virConnectPtr witness;
        char tmpdir[64];
        int port_low, port_high;
};

static struct fixture F;

static void silent(void *u, virErrorPtr e) {
}

/* A port range of N ports whose first port is bindable now. */
static int pick_port_range(int n) {
        for (int base = 30000 + (getpid() % 200) * 100; base < 60000; base += 997) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)base),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                int ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
                close(s);
                if (ok && base + n < 65535)
                        return base;
        }
        fail_msg("no free port range");
        return -1;
}

static int group_setup(void **state) {
        virSetErrorFunc(NULL, silent);
        F.witness = virConnectOpen(URI);
        if (!F.witness)
                return -1;
        strcpy(F.tmpdir, "/tmp/test_provider_libvirt.XXXXXX");
        if (!mkdtemp(F.tmpdir))
                return -1;
        F.port_low = pick_port_range(1000);
        F.port_high = F.port_low + 999;
        return 0;
}

static int group_teardown(void **state) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F.tmpdir);
        if (system(cmd) != 0)
                return -1;
        virConnectClose(F.witness);
        return 0;
}

static struct provider *open_named(const char *name, int low, int high) {
        struct provider_params params = {
                .name = name,
                .driver = "libvirt",
                .libvirt = { .uri = URI, .storage_pool = POOL, .storage_pool_path = "/" POOL,
                             .network_mode = PROVIDER_LIBVIRT_NET_USER, .port_low = low, .port_high = high },
        };
        struct provider *p = NULL;
        _cleanup_free_ char *err = NULL;
        int r = provider_open(&params, &p, &err);
        if (r < 0)
                fail_msg("provider_open: %d %s", r, err);
        return p;
}

static struct provider *open_p(void) {
        return open_named("lvtest", F.port_low, F.port_high);
}

/* Uploads a small qcow2 (qemu-img) or raw file; returns its external id. */
static char *upload_image(struct provider *p, const char *name, const char **ret_format) {
        char path[128], cmd[256];
        const char *format = "qcow2";
        snprintf(path, sizeof(path), "%s/%s.img", F.tmpdir, name);
        snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 '%s' 64M", path);
        if (system(cmd) != 0) {
                format = "raw";
                FILE *f = fopen(path, "w");
                assert_non_null(f);
                for (int i = 0; i < 4096; i++)
                        fputc(i & 0xff, f);
                fclose(f);
        }
        struct provider_kv tags[] = { { "nodepool_provider_name", "lvtest" }, { "nodepool_upload_id", "0000000001" } };
        char *id = NULL;
        _cleanup_free_ char *err = NULL;
        int r = p->ops->image_upload(p, path, format, NULL, NULL, name, tags, 2, &id, &err);
        if (r < 0)
                fail_msg("upload: %d %s", r, err);
        if (ret_format)
                *ret_format = format;
        return id;
}

static struct provider_create_req req_for(const char *node_id, const char *hostname, const char *image) {
        static const struct provider_kv tags[] = { { "nodepool_provider_name", "lvtest" },
                                                   { "nodepool_pool_name", "main" } };
        return (struct provider_create_req){ .node_id = node_id, .hostname = hostname, .label = "small",
                                             .pool = "main", .image = image, .memory_mib = 512, .vcpus = 2,
                                             .disk_gib = 1, .tags = tags, .n_tags = 2 };
}

static struct provider_server *create_ok(struct provider *p, const struct provider_create_req *req) {
        struct provider_server *s = NULL;
        _cleanup_free_ char *err = NULL;
        int r = p->ops->create(p, req, &s, &err);
        if (r < 0)
                fail_msg("create %s: %d %s", req->node_id, r, err);
        return s;
}

static bool volume_exists(const char *name) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(F.witness, POOL);
        assert_non_null(pool);
        virStorageVolPtr v = virStorageVolLookupByName(pool, name);
        virStoragePoolFree(pool);
        if (v)
                virStorageVolFree(v);
        virResetLastError();
        return v != NULL;
}

static int count_volumes(void) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(F.witness, POOL);
        virStorageVolPtr *vols = NULL;
        int n = virStoragePoolListAllVolumes(pool, &vols, 0);
        for (int i = 0; i < n; i++)
                virStorageVolFree(vols[i]);
        free(vols);
        virStoragePoolFree(pool);
        return n;
}

static int count_domains(void) {
        return virConnectNumOfDomains(F.witness) + virConnectNumOfDefinedDomains(F.witness);
}

/* A create returns an ACTIVE server reachable at 127.0.0.1:port with the requested resources. */
static void test_create_returns_active_with_address_and_resources(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_free_ char *img = upload_image(p, "base-a", NULL);
        struct provider_create_req req = req_for("0000000001", "np0000000001", img);
        _cleanup_(provider_server_freep) struct provider_server *s = create_ok(p, &req);
        assert_string_equal(s->external_id, "lvtest-np0000000001");
        assert_int_equal(s->state, PROVIDER_SERVER_ACTIVE);
        assert_string_equal(s->interface_ip, "127.0.0.1");
        assert_in_range(s->connection_port, F.port_low, F.port_high);
        assert_int_equal(s->resources.cores, 2);
        assert_int_equal(s->resources.ram_mib, 512);
        assert_int_equal(s->resources.instances, 1);
        assert_string_equal(provider_server_tag(s, "nodepool_node_id"), "0000000001");

        /* get() sees the same facts */
        _cleanup_(provider_server_freep) struct provider_server *g = NULL;
        assert_int_equal(p->ops->get(p, s->external_id, &g, NULL), 0);
        assert_int_equal(g->state, PROVIDER_SERVER_ACTIVE);
        assert_int_equal(g->connection_port, s->connection_port);
        assert_int_equal(p->ops->delete(p, s->external_id, NULL), 0);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
}

/* The domain carries our metadata (read back by libvirt itself) and its disk is a
 * qcow2 overlay volume backed by the image volume. */
static void test_create_tags_domain_and_creates_overlay(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_free_ char *img = upload_image(p, "base-b", NULL);
        struct provider_create_req req = req_for("0000000002", "np0000000002", img);
        _cleanup_(provider_server_freep) struct provider_server *s = create_ok(p, &req);

        virDomainPtr dom = virDomainLookupByName(F.witness, "lvtest-np0000000002");
        assert_non_null(dom);
        int st, reason;
        assert_int_equal(virDomainGetState(dom, &st, &reason, 0), 0);
        assert_int_equal(st, VIR_DOMAIN_RUNNING);
        char *meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, LVXML_NS, 0);
        assert_non_null(meta);
        assert_non_null(strstr(meta, "<provider>lvtest</provider>"));
        assert_non_null(strstr(meta, "<node-id>0000000002</node-id>"));
        assert_non_null(strstr(meta, "<label>small</label>"));
        assert_non_null(strstr(meta, "<pool>main</pool>"));
        assert_non_null(strstr(meta, "key=\"nodepool_pool_name\">main</"));
        free(meta);
        virDomainFree(dom);

        virStoragePoolPtr pool = virStoragePoolLookupByName(F.witness, POOL);
        virStorageVolPtr ov = virStorageVolLookupByName(pool, "lvtest-np0000000002.qcow2");
        assert_non_null(ov);
        char *vx = virStorageVolGetXMLDesc(ov, 0);
        _cleanup_free_ char *backing = xasprintf("<path>/" POOL "/%s</path>", img);
        assert_non_null(strstr(vx, "<backingStore>"));
        assert_non_null(strstr(vx, backing));
        assert_non_null(strstr(vx, "<capacity unit='bytes'>1073741824</capacity>")); /* disk_gib = 1 */
        free(vx);
        virStorageVolFree(ov);
        virStoragePoolFree(pool);

        assert_int_equal(p->ops->delete(p, s->external_id, NULL), 0);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
}

/* delete removes the domain and its overlay; a second delete says -ENOENT and get too. */
static void test_delete_removes_domain_and_overlay_idempotently(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_free_ char *img = upload_image(p, "base-c", NULL);
        struct provider_create_req req = req_for("0000000003", "np0000000003", img);
        _cleanup_(provider_server_freep) struct provider_server *s = create_ok(p, &req);
        assert_true(volume_exists("lvtest-np0000000003.qcow2"));

        assert_int_equal(p->ops->delete(p, s->external_id, NULL), 0);
        virDomainPtr dom = virDomainLookupByName(F.witness, s->external_id);
        assert_null(dom);
        virResetLastError();
        assert_false(volume_exists("lvtest-np0000000003.qcow2"));

        _cleanup_free_ char *err = NULL;
        assert_int_equal(p->ops->delete(p, s->external_id, &err), -ENOENT);
        assert_non_null(err);
        struct provider_server *g = NULL;
        assert_int_equal(p->ops->get(p, s->external_id, &g, NULL), -ENOENT);
        assert_null(g);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
}

/* delete refuses what is not ours: the test driver's own "test" domain survives. */
static void test_delete_refuses_foreign_domain(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_free_ char *err = NULL;
        assert_int_equal(p->ops->delete(p, "test", &err), -EPERM);
        assert_non_null(err);
        virDomainPtr dom = virDomainLookupByName(F.witness, "test");
        assert_non_null(dom);
        virDomainFree(dom);
}

static struct provider_server *find(struct provider_server **v, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i]->external_id, id) == 0)
                        return v[i];
        return NULL;
}

/* list reports our servers with their tags, including an overlay orphaned by a
 * crash, and ignores foreign domains: "test", another provider's, and one whose
 * name looks like ours but carries no tags. */
static void test_list_finds_ours_with_tags_and_ignores_foreign(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_(provider_closep) struct provider *other = open_named("other", F.port_low, F.port_high);
        _cleanup_free_ char *img = upload_image(p, "base-d", NULL);
        struct provider_create_req r1 = req_for("0000000011", "np0000000011", img);
        struct provider_create_req r2 = req_for("0000000012", "np0000000012", img);
        _cleanup_(provider_server_freep) struct provider_server *s1 = create_ok(p, &r1), *s2 = create_ok(p, &r2),
                                                                *so = create_ok(other, &r1);
        /* Same name pattern, no metadata. */
        virDomainPtr fake = virDomainDefineXML(F.witness, "<domain type='test'><name>lvtest-np0000000013</name>"
                                                          "<memory>1024</memory><os><type>hvm</type></os></domain>");
        assert_non_null(fake);
        /* Leftover overlay without its domain. */
        virStoragePoolPtr pool = virStoragePoolLookupByName(F.witness, POOL);
        _cleanup_free_ char *ox = lvxml_volume_xml("lvtest-np0000000014.qcow2", 1024, "qcow2");
        virStorageVolPtr orphan = virStorageVolCreateXML(pool, ox, 0);
        assert_non_null(orphan);

        struct provider_server **v = NULL;
        size_t n = 0;
        assert_int_equal(p->ops->list(p, &v, &n, NULL), 0);
        assert_int_equal(n, 3);
        struct provider_server *a = find(v, n, "lvtest-np0000000011");
        assert_non_null(a);
        assert_int_equal(a->state, PROVIDER_SERVER_ACTIVE);
        assert_string_equal(provider_server_tag(a, "nodepool_provider_name"), "lvtest");
        assert_string_equal(provider_server_tag(a, "nodepool_pool_name"), "main");
        assert_string_equal(provider_server_tag(a, "nodepool_node_id"), "0000000011");
        assert_int_equal(a->connection_port, s1->connection_port);
        assert_non_null(find(v, n, "lvtest-np0000000012"));
        struct provider_server *o = find(v, n, "lvtest-np0000000014");
        assert_non_null(o);
        assert_int_equal(o->state, PROVIDER_SERVER_ERROR);
        assert_string_equal(provider_server_tag(o, "nodepool_node_id"), "0000000014");
        assert_null(find(v, n, "test"));
        assert_null(find(v, n, "lvtest-np0000000013"));
        provider_server_array_free(v, n);

        /* The orphan is deletable by its id like any server. */
        assert_int_equal(p->ops->delete(p, "lvtest-np0000000014", NULL), 0);
        assert_false(volume_exists("lvtest-np0000000014.qcow2"));
        /* The untagged look-alike is refused, not destroyed. */
        assert_int_equal(p->ops->delete(p, "lvtest-np0000000013", NULL), -EPERM);
        assert_int_equal(virDomainUndefine(fake), 0);
        virDomainFree(fake);
        virStorageVolFree(orphan);
        virStoragePoolFree(pool);

        assert_int_equal(p->ops->delete(p, s1->external_id, NULL), 0);
        assert_int_equal(p->ops->delete(p, s2->external_id, NULL), 0);
        assert_int_equal(other->ops->delete(other, so->external_id, NULL), 0);
        assert_int_equal(p->ops->list(p, &v, &n, NULL), 0);
        assert_int_equal(n, 0);
        provider_server_array_free(v, n);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
}

/* Upload makes a tagged volume that image_list reports; image_delete removes it
 * (then -ENOENT), and another provider's image is neither listed nor deletable. */
static void test_upload_list_and_delete_image(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_(provider_closep) struct provider *other = open_named("other", F.port_low, F.port_high);
        const char *format = NULL;
        _cleanup_free_ char *id = upload_image(p, "debian-12", &format), *oid = upload_image(other, "foreign", NULL);
        assert_true(volume_exists(id));

        struct provider_image **v = NULL;
        size_t n = 0;
        assert_int_equal(p->ops->image_list(p, &v, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0]->external_id, id);
        assert_string_equal(v[0]->name, "debian-12");
        assert_string_equal(v[0]->format, format);
        assert_true(v[0]->size > 0);
        assert_string_equal(provider_image_tag(v[0], "nodepool_upload_id"), "0000000001");
        provider_image_array_free(v, n);

        /* Uploading the same name with the same tags again is refused, not overwritten. */
        char path[128];
        snprintf(path, sizeof(path), "%s/debian-12.img", F.tmpdir);
        struct provider_kv tags[] = { { "nodepool_provider_name", "lvtest" }, { "nodepool_upload_id", "0000000001" } };
        char *dup = NULL;
        assert_int_equal(p->ops->image_upload(p, path, format, NULL, NULL, "debian-12", tags, 2, &dup, NULL), -EEXIST);
        assert_null(dup);

        assert_int_equal(p->ops->image_delete(p, oid, NULL), -EPERM);
        assert_int_equal(p->ops->image_delete(p, id, NULL), 0);
        assert_false(volume_exists(id));
        assert_int_equal(p->ops->image_delete(p, id, NULL), -ENOENT);
        assert_int_equal(other->ops->image_delete(other, oid, NULL), 0);
}

/* Upload of a missing file fails with its errno and a message, creating nothing. */
static void test_upload_missing_file_fails_cleanly(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        int before = count_volumes();
        char *id = NULL, *err = NULL;
        assert_int_equal(p->ops->image_upload(p, "/nonexistent/x.qcow2", "qcow2", NULL, NULL, "x", NULL, 0, &id, &err),
                         -ENOENT);
        assert_null(id);
        assert_non_null(err);
        free(err);
        assert_int_equal(count_volumes(), before);
}

/* quota reports the hypervisor's CPUs and memory, and the port range as the instance cap. */
static void test_quota_reports_host_cpus_and_memory(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        virNodeInfo ni;
        assert_int_equal(virNodeGetInfo(F.witness, &ni), 0);
        struct provider_limits l;
        assert_int_equal(p->ops->quota(p, &l, NULL), 0);
        assert_int_equal(l.max_cores, ni.cpus);
        assert_int_equal(l.max_ram_mib, ni.memory / 1024);
        assert_int_equal(l.max_instances, F.port_high - F.port_low + 1);
        assert_true(l.free_ram_mib > 0);
}

/* Creating from a missing image fails with -ENOENT and leaves nothing behind. */
static void test_create_missing_image_fails_without_leftovers(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        int vols = count_volumes(), doms = count_domains();
        struct provider_create_req req = req_for("0000000021", "np0000000021", "lvtest@nope@qcow2");
        struct provider_server *s = NULL;
        char *err = NULL;
        assert_int_equal(p->ops->create(p, &req, &s, &err), -ENOENT);
        assert_null(s);
        assert_non_null(err);
        free(err);
        assert_int_equal(count_volumes(), vols);
        assert_int_equal(count_domains(), doms);
        req.node_id = "12ab";
        assert_int_equal(p->ops->create(p, &req, &s, NULL), -EINVAL);
}

/* A port someone listens on is skipped; when the range is used up create says -EDQUOT. */
static void test_busy_port_skipped_and_exhaustion_is_quota(void **state) {
        int low = pick_port_range(2);
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)low),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(ls, 1), 0);

        _cleanup_(provider_closep) struct provider *p = open_named("lvtest", low, low + 1);
        _cleanup_free_ char *img = upload_image(p, "base-e", NULL);
        struct provider_create_req r1 = req_for("0000000031", "np0000000031", img);
        struct provider_create_req r2 = req_for("0000000032", "np0000000032", img);
        _cleanup_(provider_server_freep) struct provider_server *s1 = create_ok(p, &r1);
        assert_int_equal(s1->connection_port, low + 1);
        struct provider_server *s2 = NULL;
        _cleanup_free_ char *err = NULL;
        int vols = count_volumes();
        assert_int_equal(p->ops->create(p, &r2, &s2, &err), -EDQUOT);
        assert_null(s2);
        assert_int_equal(count_volumes(), vols);

        /* Deleting frees the port for the next node. */
        assert_int_equal(p->ops->delete(p, s1->external_id, NULL), 0);
        _cleanup_(provider_server_freep) struct provider_server *s3 = create_ok(p, &r2);
        assert_int_equal(s3->connection_port, low + 1);
        assert_int_equal(p->ops->delete(p, s3->external_id, NULL), 0);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
        close(ls);
}

/* A reopened provider (launcher restart) does not hand out ports its existing domains hold. */
static void test_reopen_reserves_ports_of_existing_domains(void **state) {
        int low = pick_port_range(2);
        struct provider *p1 = open_named("lvtest", low, low + 1);
        _cleanup_free_ char *img = upload_image(p1, "base-f", NULL);
        struct provider_create_req r1 = req_for("0000000041", "np0000000041", img);
        struct provider_create_req r2 = req_for("0000000042", "np0000000042", img);
        _cleanup_(provider_server_freep) struct provider_server *s1 = create_ok(p1, &r1);
        provider_close(p1);

        _cleanup_(provider_closep) struct provider *p2 = open_named("lvtest", low, low + 1);
        _cleanup_(provider_server_freep) struct provider_server *s2 = create_ok(p2, &r2);
        assert_int_not_equal(s2->connection_port, s1->connection_port);
        assert_int_equal(p2->ops->delete(p2, s1->external_id, NULL), 0);
        assert_int_equal(p2->ops->delete(p2, s2->external_id, NULL), 0);
        assert_int_equal(p2->ops->image_delete(p2, img, NULL), 0);
}

/* Hostile label, pool and tag strings reach libvirt as well-formed XML and come back intact. */
static void test_hostile_strings_roundtrip_through_libvirt(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_free_ char *img = upload_image(p, "base-g", NULL);
        const char *evil = "</poold:tag><x a='1'>&amp;\"";
        struct provider_kv tags[] = { { "nodepool_provider_name", "lvtest" }, { evil, evil } };
        struct provider_create_req req = req_for("0000000051", "np0000000051", img);
        req.label = evil;
        req.pool = evil;
        req.tags = tags;
        req.n_tags = 2;
        _cleanup_(provider_server_freep) struct provider_server *s = create_ok(p, &req);
        struct provider_server **v = NULL;
        size_t n = 0;
        assert_int_equal(p->ops->list(p, &v, &n, NULL), 0);
        struct provider_server *l = find(v, n, s->external_id);
        assert_non_null(l);
        assert_string_equal(provider_server_tag(l, evil), evil);
        assert_string_equal(provider_server_tag(l, "nodepool_pool_name"), evil);
        provider_server_array_free(v, n);
        assert_int_equal(p->ops->delete(p, s->external_id, NULL), 0);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 200 create+delete cycles are fast and leave no domain, volume or port behind. */
static void test_200_create_delete_cycles_fast_and_clean(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_free_ char *img = upload_image(p, "base-h", NULL);
        int vols = count_volumes(), doms = count_domains();
        double t0 = now();
        for (int i = 0; i < 200; i++) {
                char id[16], host[20];
                snprintf(id, sizeof(id), "%010d", 1000 + i);
                snprintf(host, sizeof(host), "np%s", id);
                struct provider_create_req req = req_for(id, host, img);
                struct provider_server *s = create_ok(p, &req);
                assert_int_equal(p->ops->delete(p, s->external_id, NULL), 0);
                provider_server_free(s);
        }
        double dt = now() - t0;
        print_message("200 create+delete cycles: %.3f s\n", dt);
        assert_true(dt < 10.0); /* generous for ASan on a shared 2-core machine */
        assert_int_equal(count_volumes(), vols);
        assert_int_equal(count_domains(), doms);
        struct provider_limits l;
        assert_int_equal(p->ops->quota(p, &l, NULL), 0);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
}

struct worker {
        struct provider *p;
        const char *img;
        int base;
        int ports[10];
        int failures;
};

static void *create_worker(void *arg) {
        struct worker *w = arg;
        for (int i = 0; i < 10; i++) {
                char id[16], host[20];
                snprintf(id, sizeof(id), "%010d", w->base + i);
                snprintf(host, sizeof(host), "np%s", id);
                struct provider_create_req req = req_for(id, host, w->img);
                struct provider_server *s = NULL;
                if (w->p->ops->create(w->p, &req, &s, NULL) < 0) {
                        w->failures++;
                        continue;
                }
                w->ports[i] = s->connection_port;
                provider_server_free(s);
        }
        return NULL;
}

/* 4 threads creating concurrently on one provider all succeed with distinct host ports. */
static void test_concurrent_creates_get_distinct_ports(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        _cleanup_free_ char *img = upload_image(p, "base-i", NULL);
        struct worker w[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
                w[i] = (struct worker){ .p = p, .img = img, .base = 5000 + i * 100 };
                assert_int_equal(pthread_create(&t[i], NULL, create_worker, &w[i]), 0);
        }
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        int all[40], n = 0;
        for (int i = 0; i < 4; i++) {
                assert_int_equal(w[i].failures, 0);
                for (int j = 0; j < 10; j++)
                        all[n++] = w[i].ports[j];
        }
        for (int i = 0; i < n; i++) {
                assert_in_range(all[i], F.port_low, F.port_high);
                for (int j = i + 1; j < n; j++)
                        assert_int_not_equal(all[i], all[j]);
        }
        struct provider_server **v = NULL;
        size_t ns = 0;
        assert_int_equal(p->ops->list(p, &v, &ns, NULL), 0);
        assert_int_equal(ns, 40);
        for (size_t i = 0; i < ns; i++)
                assert_int_equal(p->ops->delete(p, v[i]->external_id, NULL), 0);
        provider_server_array_free(v, ns);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
}

/* The test driver keeps no console files: console_log says -EOPNOTSUPP. */
static void test_console_log_unsupported_on_test_driver(void **state) {
        _cleanup_(provider_closep) struct provider *p = open_p();
        char *text = NULL;
        assert_int_equal(p->ops->console_log(p, "lvtest-np0000000001", &text, NULL), -EOPNOTSUPP);
        assert_null(text);
}

/* The registry dispatches by driver name and rejects unknown drivers and missing names. */
static void test_registry_dispatch_and_rejects(void **state) {
        assert_ptr_equal(provider_ops_find("libvirt"), &provider_libvirt_ops);
        assert_null(provider_ops_find("nope"));
        struct provider_params params = { .name = "x", .driver = "nope" };
        struct provider *p = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL;
        assert_int_equal(provider_open(&params, &p, &err), -EINVAL);
        assert_non_null(strstr(err, "nope"));
        params.name = NULL;
        params.driver = "libvirt";
        assert_int_equal(provider_open(&params, &p, &err2), -EINVAL);
        assert_null(p);
        assert_string_equal(provider_server_state_to_string(PROVIDER_SERVER_ACTIVE), "active");
        assert_int_equal(provider_server_state_from_string("error"), PROVIDER_SERVER_ERROR);
        assert_int_equal(provider_server_state_from_string("bogus"), _PROVIDER_SERVER_STATE_INVALID);
}

/* Opening an unreachable URI fails with libvirt's reason in the message. */
static void test_open_bad_uri_reports_libvirt_message(void **state) {
        struct provider_params params = { .name = "x", .driver = "libvirt",
                                          .libvirt = { .uri = "bogus-driver:///nothing" } };
        struct provider *p = NULL;
        _cleanup_free_ char *err = NULL;
        assert_true(provider_open(&params, &p, &err) < 0);
        assert_null(p);
        assert_non_null(err);
        assert_non_null(strstr(err, "bogus-driver:///nothing: "));
}

/* Network mode attaches the domain to the named libvirt network, reports the
 * DHCP lease address as interface_ip with port 22, and sets no instance cap. */
static void test_network_mode_uses_lease_address(void **state) {
        struct provider_params params = {
                .name = "lvnet", .driver = "libvirt",
                .libvirt = { .uri = URI, .storage_pool = POOL, .network_mode = PROVIDER_LIBVIRT_NET_NETWORK,
                             .network = "default" },
        };
        _cleanup_(provider_closep) struct provider *p = NULL;
        assert_int_equal(provider_open(&params, &p, NULL), 0);
        _cleanup_free_ char *img = upload_image(p, "base-n", NULL);
        struct provider_create_req req = req_for("0000000071", "np0000000071", img);
        _cleanup_(provider_server_freep) struct provider_server *s = create_ok(p, &req);
        assert_int_equal(s->state, PROVIDER_SERVER_ACTIVE);
        assert_non_null(s->interface_ip);
        assert_string_equal(s->interface_ip, s->private_ipv4);
        assert_int_equal(s->connection_port, 22);

        virDomainPtr dom = virDomainLookupByName(F.witness, s->external_id);
        assert_non_null(dom);
        char *xml = virDomainGetXMLDesc(dom, 0);
        assert_non_null(strstr(xml, "<source network='default'"));
        assert_null(strstr(xml, "<poold:port>"));
        free(xml);
        virDomainFree(dom);

        struct provider_limits l;
        assert_int_equal(p->ops->quota(p, &l, NULL), 0);
        assert_int_equal(l.max_instances, -1);
        assert_int_equal(p->ops->delete(p, s->external_id, NULL), 0);
        assert_int_equal(p->ops->image_delete(p, img, NULL), 0);
}

static int read_file(const char *path, char **ret, size_t *ret_len) {
        FILE *f = fopen(path, "r");
        if (!f)
                return -errno;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *b = xmalloc((size_t)n + 1);
        size_t k = fread(b, 1, (size_t)n, f);
        fclose(f);
        *ret = b;
        *ret_len = k;
        return 0;
}

static int sink(virStreamPtr st, const char *data, size_t n, void *opaque) {
        FILE *f = opaque;
        return fwrite(data, 1, n, f) == n ? (int)n : -1;
}

/* Opt-in, needs a real libvirtd (set POOLD_LIBVIRT_TEST_URI, e.g. qemu:///session as
 * a normal user): the driver creates the dir pool, streams the image's exact bytes
 * into a volume, boots a node from a qcow2 overlay whose ssh forward listens on
 * 127.0.0.1:port, reads its console log, and removes everything again. */
static void test_real_libvirtd_upload_boot_and_forward(void **state) {
        const char *uri = getenv("POOLD_LIBVIRT_TEST_URI");
        if (!uri || !*uri)
                skip();
        char pooldir[128], img[160], back[160], cmd[512];
        snprintf(pooldir, sizeof(pooldir), "%s/pool", F.tmpdir);
        snprintf(img, sizeof(img), "%s/real.qcow2", F.tmpdir);
        snprintf(back, sizeof(back), "%s/download.bin", F.tmpdir);
        snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 '%s' 64M", img);
        assert_int_equal(system(cmd), 0);

        int low = pick_port_range(10);
        struct provider_params params = {
                .name = "lvreal", .driver = "libvirt",
                .libvirt = { .uri = uri, .storage_pool = "poold-unit-test", .storage_pool_path = pooldir,
                             .domain_type = PROVIDER_LIBVIRT_DOMAIN_QEMU, .network_mode = PROVIDER_LIBVIRT_NET_USER,
                             .port_low = low, .port_high = low + 9 },
        };
        _cleanup_(provider_closep) struct provider *p = NULL;
        _cleanup_free_ char *err = NULL, *id = NULL, *orig = NULL, *got = NULL, *console = NULL;
        if (provider_open(&params, &p, &err) < 0)
                fail_msg("open %s: %s", uri, err);
        struct provider_kv tags[] = { { "nodepool_upload_id", "0000000009" } };
        /* Digests are accepted and ignored (a volume has no place for them). */
        if (p->ops->image_upload(p, img, "qcow2", "d41d8cd98f00b204e9800998ecf8427e", NULL, "real", tags, 1, &id,
                                 &err) < 0)
                fail_msg("upload: %s", err);

        /* The volume holds exactly the file's bytes. */
        virConnectPtr c = virConnectOpen(uri);
        assert_non_null(c);
        virStoragePoolPtr pool = virStoragePoolLookupByName(c, "poold-unit-test");
        virStorageVolPtr vol = virStorageVolLookupByName(pool, id);
        assert_non_null(vol);
        virStreamPtr st = virStreamNew(c, 0);
        FILE *out = fopen(back, "w");
        assert_int_equal(virStorageVolDownload(vol, st, 0, 0, 0), 0);
        assert_int_equal(virStreamRecvAll(st, sink, out), 0);
        assert_int_equal(virStreamFinish(st), 0);
        fclose(out);
        virStreamFree(st);
        virStorageVolFree(vol);
        size_t ol, gl;
        assert_int_equal(read_file(img, &orig, &ol), 0);
        assert_int_equal(read_file(back, &got, &gl), 0);
        assert_int_equal(ol, gl);
        assert_memory_equal(orig, got, ol);

        struct provider_create_req req = req_for("0000000061", "np0000000061", id);
        _cleanup_(provider_server_freep) struct provider_server *s = NULL;
        if (p->ops->create(p, &req, &s, &err) < 0)
                fail_msg("create: %s", err);
        assert_int_equal(s->state, PROVIDER_SERVER_ACTIVE);
        /* QEMU's slirp forward listens on the allocated port. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->connection_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        close(fd);
        assert_int_equal(p->ops->console_log(p, s->external_id, &console, NULL), 0);

        assert_int_equal(p->ops->delete(p, s->external_id, NULL), 0);
        struct provider_server **v = NULL;
        size_t n = 0;
        assert_int_equal(p->ops->list(p, &v, &n, NULL), 0);
        assert_int_equal(n, 0);
        provider_server_array_free(v, n);
        assert_int_equal(p->ops->image_delete(p, id, NULL), 0);
        /* Leave the host as we found it. */
        virStoragePoolDestroy(pool);
        virStoragePoolUndefine(pool);
        virStoragePoolFree(pool);
        virConnectClose(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_registry_dispatch_and_rejects),
                cmocka_unit_test(test_open_bad_uri_reports_libvirt_message),
                cmocka_unit_test(test_create_returns_active_with_address_and_resources),
                cmocka_unit_test(test_create_tags_domain_and_creates_overlay),
                cmocka_unit_test(test_delete_removes_domain_and_overlay_idempotently),
                cmocka_unit_test(test_delete_refuses_foreign_domain),
                cmocka_unit_test(test_list_finds_ours_with_tags_and_ignores_foreign),
                cmocka_unit_test(test_upload_list_and_delete_image),
                cmocka_unit_test(test_upload_missing_file_fails_cleanly),
                cmocka_unit_test(test_quota_reports_host_cpus_and_memory),
                cmocka_unit_test(test_create_missing_image_fails_without_leftovers),
                cmocka_unit_test(test_busy_port_skipped_and_exhaustion_is_quota),
                cmocka_unit_test(test_reopen_reserves_ports_of_existing_domains),
                cmocka_unit_test(test_hostile_strings_roundtrip_through_libvirt),
                cmocka_unit_test(test_200_create_delete_cycles_fast_and_clean),
                cmocka_unit_test(test_concurrent_creates_get_distinct_ports),
                cmocka_unit_test(test_console_log_unsupported_on_test_driver),
                cmocka_unit_test(test_network_mode_uses_lease_address),
                cmocka_unit_test(test_real_libvirtd_upload_boot_and_forward),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
