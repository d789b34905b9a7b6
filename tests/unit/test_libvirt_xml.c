/* test_libvirt_xml.c — the libvirt driver's pure text functions: escaping, the
 * domain/volume XML, our metadata parser and the naming scheme. No libvirt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "libvirt_xml.h"

static const char *HOSTILE = "a<b&c\"d'e>f</poold:tag>";

/* Every XML metacharacter is escaped, controls XML cannot carry become '?'. */
static void test_escape_metacharacters_and_controls(void **state) {
        _cleanup_free_ char *e = lvxml_escape("<a href=\"x\">&'</a>\x01\tok");
        assert_string_equal(e, "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;?\tok");
        _cleanup_free_ char *n = lvxml_escape(NULL);
        assert_string_equal(n, "");
}

/* Unescape inverts escape and decodes numeric references to UTF-8; bad entities fail. */
static void test_unescape_roundtrip_and_numeric_refs(void **state) {
        _cleanup_free_ char *e = lvxml_escape(HOSTILE), *u = NULL, *c = NULL;
        assert_int_equal(lvxml_unescape(e, strlen(e), &u), 0);
        assert_string_equal(u, HOSTILE);
        const char *refs = "&#x41;&#233;&#x20AC;&#128512;";
        assert_int_equal(lvxml_unescape(refs, strlen(refs), &c), 0);
        assert_string_equal(c, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        char *bad = NULL;
        assert_int_equal(lvxml_unescape("a&b", 3, &bad), -EBADMSG);
        assert_int_equal(lvxml_unescape("&bogus;", 7, &bad), -EBADMSG);
        assert_int_equal(lvxml_unescape("&#;", 3, &bad), -EBADMSG);
        assert_int_equal(lvxml_unescape("&#x110000;", 10, &bad), -EBADMSG);
        assert_int_equal(lvxml_unescape("&#0;", 4, &bad), -EBADMSG);
        assert_null(bad);
}

static char *instance_of(const char *xml) {
        const char *s = strstr(xml, "<poold:instance");
        const char *e = strstr(xml, "</poold:instance>");
        assert_non_null(s);
        assert_non_null(e);
        return xstrndup(s, (size_t)(e - s) + strlen("</poold:instance>"));
}

/* Hostile names and tags never appear raw in the domain XML, and our metadata
 * parser reads exactly the original values back. */
static void test_domain_xml_escapes_and_metadata_roundtrips(void **state) {
        struct provider_kv tags[] = { { "nodepool_node_id", "0000000042" }, { HOSTILE, HOSTILE }, { "empty", "" } };
        struct lvxml_domain d = {
                .name = "prov-np0000000042", .type = "qemu", .memory_mib = 512, .vcpus = 2,
                .storage_pool = "po'ol", .volume = "prov-np0000000042.qcow2", .console_path = "/var/log/<x>.log",
                .user_port = 22042, .provider = "prov&1", .pool = HOSTILE, .node_id = "0000000042",
                .label = "<label>", .hostname = "np0000000042", .image = "img@x", .tags = tags, .n_tags = 3,
        };
        _cleanup_free_ char *xml = lvxml_domain_xml(&d);
        assert_null(strstr(xml, HOSTILE));
        assert_null(strstr(xml, "<label>"));
        assert_non_null(strstr(xml, "<source pool='po&apos;ol' volume='prov-np0000000042.qcow2'/>"));
        assert_non_null(strstr(xml, "/var/log/&lt;x&gt;.log"));

        _cleanup_free_ char *inst_xml = instance_of(xml);
        _cleanup_(lvxml_instance_freep) struct lvxml_instance *inst = NULL;
        assert_int_equal(lvxml_instance_parse(inst_xml, &inst), 0);
        assert_string_equal(inst->provider, "prov&1");
        assert_string_equal(inst->pool, HOSTILE);
        assert_string_equal(inst->node_id, "0000000042");
        assert_string_equal(inst->label, "<label>");
        assert_string_equal(inst->hostname, "np0000000042");
        assert_string_equal(inst->image, "img@x");
        assert_int_equal(inst->port, 22042);
        assert_int_equal(inst->memory_mib, 512);
        assert_int_equal(inst->vcpus, 2);
        assert_int_equal(inst->n_tags, 3);
        assert_string_equal(inst->tags[1].key, HOSTILE);
        assert_string_equal(inst->tags[1].value, HOSTILE);
        assert_string_equal(inst->tags[2].value, "");
}

/* User mode forwards 127.0.0.1:PORT to 22 through qemu:commandline with the
 * explicit PCI address; network mode uses a libvirt network and no commandline. */
static void test_domain_xml_networking_modes(void **state) {
        struct lvxml_domain d = { .name = "n", .type = "kvm", .memory_mib = 1, .vcpus = 1, .storage_pool = "p",
                                  .volume = "v", .user_port = 23456, .provider = "p", .node_id = "1" };
        _cleanup_free_ char *user = lvxml_domain_xml(&d);
        assert_non_null(strstr(user, "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"));
        assert_non_null(strstr(user, "<qemu:arg value='user,id=n0,hostfwd=tcp:127.0.0.1:23456-:22'/>"));
        assert_non_null(strstr(user, "<qemu:arg value='virtio-net-pci,netdev=n0,addr=0x1f'/>"));
        assert_null(strstr(user, "<interface"));
        assert_null(strstr(user, "<serial")); /* no console path given */

        d.user_port = 0;
        d.network = "lab&net";
        _cleanup_free_ char *net = lvxml_domain_xml(&d);
        assert_non_null(strstr(net, "<source network='lab&amp;net'/>"));
        assert_null(strstr(net, "qemu:"));
        assert_null(strstr(net, "<poold:port>"));
}

/* The parser accepts libxml2's serialisation (no prefix, double quotes, empty
 * elements, character references) and ignores unknown elements. */
static void test_instance_parse_libxml2_form(void **state) {
        const char *xml = "<?xml version=\"1.0\"?>\n<instance>\n  <provider>p&amp;q</provider>\n"
                          "  <node-id>0000000007</node-id>\n  <future>x</future>\n"
                          "  <tag key=\"k&quot;1\">v&#233;</tag>\n  <tag key=\"e\"/>\n"
                          "  <port>2200</port>\n</instance>\n";
        _cleanup_(lvxml_instance_freep) struct lvxml_instance *inst = NULL;
        assert_int_equal(lvxml_instance_parse(xml, &inst), 0);
        assert_string_equal(inst->provider, "p&q");
        assert_string_equal(inst->node_id, "0000000007");
        assert_null(inst->pool);
        assert_int_equal(inst->port, 2200);
        assert_int_equal(inst->n_tags, 2);
        assert_string_equal(inst->tags[0].key, "k\"1");
        assert_string_equal(inst->tags[0].value, "v\xc3\xa9");
        assert_string_equal(inst->tags[1].key, "e");
        assert_string_equal(inst->tags[1].value, "");
}

/* Malformed or foreign metadata is rejected, not half-parsed. */
static void test_instance_parse_rejects_malformed(void **state) {
        const char *bad[] = {
                "",
                "<other><provider>x</provider></other>",
                "<instance><provider>x</pool></instance>",
                "<instance><provider><b>x</b></provider></instance>",
                "<instance><tag>no key</tag></instance>",
                "<instance><port>12ab</port></instance>",
                "<instance><provider>x</provider>",
                "<instance><provider a=b>x</provider></instance>",
                "<instance><provider>&nope;</provider></instance>",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct lvxml_instance *inst = NULL;
                assert_int_equal(lvxml_instance_parse(bad[i], &inst), -EBADMSG);
                assert_null(inst);
        }
}

/* Volume and pool XML escape names and paths and carry the backing store. */
static void test_volume_and_pool_xml(void **state) {
        _cleanup_free_ char *ov = lvxml_overlay_xml("a&b.qcow2", 1ULL << 30, "/p/<img>", "raw");
        assert_non_null(strstr(ov, "<name>a&amp;b.qcow2</name>"));
        assert_non_null(strstr(ov, "<capacity unit='bytes'>1073741824</capacity>"));
        assert_non_null(strstr(ov, "<backingStore>\n    <path>/p/&lt;img&gt;</path>\n    <format type='raw'/>"));
        _cleanup_free_ char *vol = lvxml_volume_xml("v", 123, "qcow2");
        assert_non_null(strstr(vol, "<capacity unit='bytes'>123</capacity>"));
        assert_non_null(strstr(vol, "<format type='qcow2'/>"));
        _cleanup_free_ char *pool = lvxml_dir_pool_xml("p'", "/var/lib/x");
        assert_non_null(strstr(pool, "<pool type='dir'>"));
        assert_non_null(strstr(pool, "<name>p&apos;</name>"));
        assert_non_null(strstr(pool, "<path>/var/lib/x</path>"));
}

/* Name encoding is reversible and keeps separators and path characters out. */
static void test_name_encoding_roundtrip(void **state) {
        const char *in = ".a/b@c=d%e f\xc3\xa9-_.x";
        _cleanup_free_ char *e = lvxml_name_encode(in), *d = NULL;
        assert_string_equal(e, "%2Ea%2Fb%40c%3Dd%25e%20f%C3%A9-_.x");
        assert_int_equal(lvxml_name_decode(e, strlen(e), &d), 0);
        assert_string_equal(d, in);
        char *bad = NULL;
        assert_int_equal(lvxml_name_decode("a%2", 3, &bad), -EINVAL);
        assert_int_equal(lvxml_name_decode("a%zz", 4, &bad), -EINVAL);
        assert_int_equal(lvxml_name_decode("a%00", 4, &bad), -EINVAL);
        assert_int_equal(lvxml_name_decode("a/b", 3, &bad), -EINVAL);
        assert_null(bad);
}

/* Domain and overlay names identify provider and node; other names are not ours. */
static void test_domain_names(void **state) {
        _cleanup_free_ char *n = lvxml_domain_name("my/prov", "0000000012"), *id = NULL, *id2 = NULL;
        assert_string_equal(n, "my%2Fprov-np0000000012");
        assert_int_equal(lvxml_domain_name_parse(n, "my/prov", false, &id), 0);
        assert_string_equal(id, "0000000012");
        assert_int_equal(lvxml_domain_name_parse("my%2Fprov-np0000000012.qcow2", "my/prov", true, &id2), 0);
        assert_string_equal(id2, "0000000012");
        char *x = NULL;
        assert_int_equal(lvxml_domain_name_parse(n, "my", false, &x), -EINVAL);
        assert_int_equal(lvxml_domain_name_parse("test", "my/prov", false, &x), -EINVAL);
        assert_int_equal(lvxml_domain_name_parse("my%2Fprov-np12a", "my/prov", false, &x), -EINVAL);
        assert_int_equal(lvxml_domain_name_parse("my%2Fprov-np", "my/prov", false, &x), -EINVAL);
        assert_int_equal(lvxml_domain_name_parse(n, "my/prov", true, &x), -EINVAL);
        assert_null(x);
}

/* Image volume names carry provider, name, format and tags, and parse back. */
static void test_image_volume_names(void **state) {
        struct provider_kv tags[] = { { "nodepool_upload_id", "0000000003" }, { "k=@", "v/%" } };
        _cleanup_free_ char *v = NULL;
        assert_int_equal(lvxml_image_volume_name("local", "debian-12.1", "qcow2", tags, 2, &v), 0);
        assert_string_equal(v, "local@debian-12.1@qcow2@nodepool_upload_id=0000000003@k%3D%40=v%2F%25");
        _cleanup_(lvxml_image_name_freep) struct lvxml_image_name *in = NULL;
        assert_int_equal(lvxml_image_volume_parse(v, &in), 0);
        assert_string_equal(in->provider, "local");
        assert_string_equal(in->name, "debian-12.1");
        assert_string_equal(in->format, "qcow2");
        assert_int_equal(in->n_tags, 2);
        assert_string_equal(in->tags[1].key, "k=@");
        assert_string_equal(in->tags[1].value, "v/%");

        struct lvxml_image_name *x = NULL;
        assert_int_equal(lvxml_image_volume_parse("plain.img", &x), -EINVAL);
        assert_int_equal(lvxml_image_volume_parse("a@b", &x), -EINVAL);
        assert_int_equal(lvxml_image_volume_parse("a@@qcow2", &x), -EINVAL);
        assert_int_equal(lvxml_image_volume_parse("a@b@raw@notag", &x), -EINVAL);
        assert_null(x);

        char longv[300];
        memset(longv, 'x', sizeof(longv) - 1);
        longv[sizeof(longv) - 1] = 0;
        struct provider_kv big[] = { { "k", longv } };
        char *y = NULL;
        assert_int_equal(lvxml_image_volume_name("local", "n", "raw", big, 1, &y), -ENAMETOOLONG);
        assert_null(y);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape_metacharacters_and_controls),
                cmocka_unit_test(test_unescape_roundtrip_and_numeric_refs),
                cmocka_unit_test(test_domain_xml_escapes_and_metadata_roundtrips),
                cmocka_unit_test(test_domain_xml_networking_modes),
                cmocka_unit_test(test_instance_parse_libxml2_form),
                cmocka_unit_test(test_instance_parse_rejects_malformed),
                cmocka_unit_test(test_volume_and_pool_xml),
                cmocka_unit_test(test_name_encoding_roundtrip),
                cmocka_unit_test(test_domain_names),
                cmocka_unit_test(test_image_volume_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
