/* test_openstack.c — the pure parts of the OpenStack driver: clouds.yaml
 * selection and file lookup, the Keystone auth body, catalog endpoint
 * selection and token times, flavor choice, quota decoding, server/image
 * decoding (malformed bodies are clean errors), error mapping, and
 * provider_params_from_config. The driver against a real OpenStack is
 * covered by tests/integration/test_openstack*.py. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "clouds_yaml.h"
#include "config.h"
#include "keystone.h"
#include "provider_openstack.h"
#include "provider_params.h"

static const char CLOUDS[] =
        "clouds:\n"
        "  pw:\n"
        "    auth:\n"
        "      auth_url: http://127.0.0.1:5000/v3\n"
        "      username: alice\n"
        "      password: s3cret\n"
        "      project_name: ci\n"
        "    region_name: RegionOne\n"
        "    interface: internalURL\n"
        "    identity_api_version: 3\n"
        "    verify: false\n"
        "    cacert: /etc/ca.pem\n"
        "    image_format: raw\n"
        "  multi:\n"
        "    auth:\n"
        "      auth_url: http://k:5000\n"
        "      username: bob\n"
        "      domain_name: corp\n"
        "      project_name: p\n"
        "    regions: [east, {name: west}]\n"
        "  app:\n"
        "    auth_type: v3applicationcredential\n"
        "    auth:\n"
        "      auth_url: http://k:5000/v3\n"
        "      application_credential_id: ac1\n"
        "      application_credential_secret: topsecret\n"
        "  tok:\n"
        "    auth_type: token\n"
        "    auth: {auth_url: http://k/v3, token: x}\n"
        "  v2:\n"
        "    identity_api_version: 2\n"
        "    auth: {auth_url: http://k/v2.0, username: a, password: b}\n";

static const char SECURE[] = "clouds:\n  multi:\n    auth:\n      password: from-secure\n";

static struct clouds_cloud *parse(const char *cloud, const char *region, int expect_r) {
        struct clouds_cloud *c = NULL;
        char *msg = NULL;
        int r = clouds_yaml_parse("clouds.yaml", CLOUDS, strlen(CLOUDS), SECURE, strlen(SECURE), cloud, region, &c,
                                  &msg);
        assert_int_equal(r, expect_r);
        if (r < 0) {
                assert_non_null(msg);
                assert_null(strstr(msg, "s3cret"));
                assert_null(strstr(msg, "topsecret"));
                assert_null(c);
        }
        free(msg);
        return c;
}

/* A password cloud is read with every supported key; "internalURL" means internal. */
static void test_clouds_password(void **state) {
        (void)state;
        struct clouds_cloud *c = parse("pw", NULL, 0);
        assert_int_equal(c->auth_type, CLOUDS_AUTH_PASSWORD);
        assert_string_equal(c->auth_url, "http://127.0.0.1:5000/v3");
        assert_string_equal(c->username, "alice");
        assert_string_equal(c->password, "s3cret");
        assert_string_equal(c->project_name, "ci");
        assert_string_equal(c->user_domain_name, "Default");
        assert_string_equal(c->project_domain_name, "Default");
        assert_string_equal(c->region_name, "RegionOne");
        assert_string_equal(c->interface, "internal");
        assert_string_equal(c->cacert, "/etc/ca.pem");
        assert_string_equal(c->image_format, "raw");
        assert_false(c->verify);
        clouds_cloud_free(c);
}

/* secure.yaml values are merged in; regions[] gives the default region and
 * limits the provider's region-name; domain_name defaults both domains. */
static void test_clouds_secure_and_regions(void **state) {
        (void)state;
        struct clouds_cloud *c = parse("multi", NULL, 0);
        assert_string_equal(c->password, "from-secure");
        assert_string_equal(c->region_name, "east");
        assert_string_equal(c->user_domain_name, "corp");
        assert_string_equal(c->project_domain_name, "corp");
        assert_string_equal(c->interface, "public");
        assert_string_equal(c->image_format, "qcow2");
        assert_true(c->verify);
        clouds_cloud_free(c);
        c = parse("multi", "west", 0);
        assert_string_equal(c->region_name, "west");
        clouds_cloud_free(c);
        assert_null(parse("multi", "north", -ENOENT));
}

/* Application credentials, and the refusals: unknown cloud, unsupported auth
 * type, identity v2, missing password — messages never carry secrets. */
static void test_clouds_appcred_and_errors(void **state) {
        (void)state;
        struct clouds_cloud *c = parse("app", NULL, 0);
        assert_int_equal(c->auth_type, CLOUDS_AUTH_APPLICATION_CREDENTIAL);
        assert_string_equal(c->app_cred_id, "ac1");
        assert_string_equal(c->app_cred_secret, "topsecret");
        clouds_cloud_free(c);
        assert_null(parse("nope", NULL, -ENOENT));
        assert_null(parse("tok", NULL, -EINVAL));
        assert_null(parse("v2", NULL, -EINVAL));

        const char *nopw = "clouds:\n  x:\n    auth: {auth_url: http://k, username: u}\n";
        char *msg = NULL;
        assert_int_equal(clouds_yaml_parse("c", nopw, strlen(nopw), NULL, 0, "x", NULL, &c, &msg), -EINVAL);
        assert_non_null(strstr(msg, "password"));
        free(msg);
        msg = NULL;
        const char *bad = "clouds: [unclosed\n";
        assert_int_equal(clouds_yaml_parse("c", bad, strlen(bad), NULL, 0, "x", NULL, &c, &msg), -EINVAL);
        free(msg);
}

static void write_file(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        fchmod(fd, mode);
        close(fd);
}

/* The search order: $OS_CLIENT_CONFIG_FILE, then ./clouds.yaml, then
 * ~/.config/openstack/; a group-readable file loads with a warning. */
static void test_clouds_find_and_load(void **state) {
        (void)state;
        char tmp[] = "/tmp/test-clouds-XXXXXX";
        assert_non_null(mkdtemp(tmp));
        char cwd[4096];
        assert_non_null(getcwd(cwd, sizeof cwd));
        _cleanup_free_ char *home = xasprintf("%s/home", tmp), *cfgdir = xasprintf("%s/home/.config", tmp),
                            *osdir = xasprintf("%s/home/.config/openstack", tmp),
                            *homefile = xasprintf("%s/clouds.yaml", osdir), *work = xasprintf("%s/work", tmp),
                            *workfile = xasprintf("%s/clouds.yaml", work), *envfile = xasprintf("%s/env.yaml", tmp);
        mkdir(home, 0700);
        mkdir(cfgdir, 0700);
        mkdir(osdir, 0700);
        mkdir(work, 0700);
        const char *one = "clouds:\n  c: {auth: {auth_url: http://home, username: u, password: p}}\n";
        write_file(homefile, one, 0600);
        setenv("HOME", home, 1);
        unsetenv("OS_CLIENT_CONFIG_FILE");
        unsetenv("OS_CLIENT_SECURE_FILE");
        assert_int_equal(chdir(work), 0);

        char *p = NULL;
        assert_int_equal(clouds_yaml_find("clouds", &p), 0);
        assert_string_equal(p, homefile);
        free(p);
        struct clouds_cloud *c = NULL;
        char *msg = NULL;
        assert_int_equal(clouds_yaml_load("c", NULL, &c, &msg), 0);
        assert_string_equal(c->auth_url, "http://home");
        assert_null(c->warning);
        clouds_cloud_free(c);

        write_file(workfile, "clouds:\n  c: {auth: {auth_url: http://work, username: u, password: p}}\n", 0644);
        assert_int_equal(clouds_yaml_load("c", NULL, &c, &msg), 0);
        assert_string_equal(c->auth_url, "http://work");
        assert_non_null(c->warning); /* 0644 holds a password */
        assert_non_null(strstr(c->warning, "0644"));
        clouds_cloud_free(c);

        write_file(envfile, "clouds:\n  c: {auth: {auth_url: http://env, username: u, password: p}}\n", 0600);
        setenv("OS_CLIENT_CONFIG_FILE", envfile, 1);
        assert_int_equal(clouds_yaml_load("c", NULL, &c, &msg), 0);
        assert_string_equal(c->auth_url, "http://env");
        clouds_cloud_free(c);
        setenv("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml", 1);
        assert_int_equal(clouds_yaml_load("c", NULL, &c, &msg), -ENOENT);
        assert_non_null(msg);
        free(msg);
        unsetenv("OS_CLIENT_CONFIG_FILE");

        assert_int_equal(chdir(cwd), 0);
        unlink(envfile);
        unlink(workfile);
        unlink(homefile);
        rmdir(work);
        rmdir(osdir);
        rmdir(cfgdir);
        rmdir(home);
        rmdir(tmp);
}

/* The auth body: project-scoped password auth, and an application credential
 * by id (no scope: the credential has its own). */
static void test_keystone_auth_body(void **state) {
        (void)state;
        struct clouds_cloud *c = parse("pw", NULL, 0);
        json_t *b = keystone_auth_body(c);
        json_t *user = json_object_get(json_object_get(json_object_get(json_object_get(b, "auth"), "identity"),
                                                       "password"),
                                       "user");
        assert_string_equal(json_string_value(json_object_get(user, "name")), "alice");
        assert_string_equal(json_string_value(json_object_get(user, "password")), "s3cret");
        assert_string_equal(json_string_value(json_object_get(json_object_get(user, "domain"), "name")), "Default");
        json_t *proj = json_object_get(json_object_get(json_object_get(b, "auth"), "scope"), "project");
        assert_string_equal(json_string_value(json_object_get(proj, "name")), "ci");
        json_decref(b);
        clouds_cloud_free(c);

        c = parse("app", NULL, 0);
        b = keystone_auth_body(c);
        json_t *id = json_object_get(json_object_get(b, "auth"), "identity");
        assert_string_equal(json_string_value(json_array_get(json_object_get(id, "methods"), 0)),
                            "application_credential");
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(id, "application_credential"), "id")), "ac1");
        assert_null(json_object_get(json_object_get(b, "auth"), "scope"));
        json_decref(b);
        clouds_cloud_free(c);
}

static void test_keystone_tokens_url(void **state) {
        (void)state;
        const char *cases[][2] = {
                { "http://k:5000", "http://k:5000/v3/auth/tokens" },
                { "http://k:5000/", "http://k:5000/v3/auth/tokens" },
                { "http://k:5000/v3", "http://k:5000/v3/auth/tokens" },
                { "http://k/identity/v3/", "http://k/identity/v3/auth/tokens" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *u = keystone_tokens_url(cases[i][0]);
                assert_string_equal(u, cases[i][1]);
                free(u);
        }
}

/* Endpoint selection by type, interface and region (name or id); no match is
 * -ENOENT; a non-catalog is -EINVAL. */
static void test_keystone_catalog(void **state) {
        (void)state;
        json_t *cat = json_loads(
                "[{\"type\":\"identity\",\"endpoints\":[{\"interface\":\"public\",\"region\":\"R1\",\"url\":\"http://k\"}]},"
                " {\"type\":\"compute\",\"endpoints\":["
                "   {\"interface\":\"public\",\"region\":\"R1\",\"region_id\":\"R1\",\"url\":\"http://n1/v2.1/\"},"
                "   {\"interface\":\"internal\",\"region\":\"R1\",\"url\":\"http://n1-int/v2.1\"},"
                "   {\"interface\":\"public\",\"region_id\":\"R2\",\"url\":\"http://n2/v2.1\"}]}]",
                0, NULL);
        assert_non_null(cat);
        char *u = NULL;
        assert_int_equal(keystone_catalog_select(cat, "compute", "R1", "public", &u), 0);
        assert_string_equal(u, "http://n1/v2.1");
        free(u);
        assert_int_equal(keystone_catalog_select(cat, "compute", "R1", "internal", &u), 0);
        assert_string_equal(u, "http://n1-int/v2.1");
        free(u);
        assert_int_equal(keystone_catalog_select(cat, "compute", "R2", "public", &u), 0);
        assert_string_equal(u, "http://n2/v2.1");
        free(u);
        assert_int_equal(keystone_catalog_select(cat, "compute", NULL, "public", &u), 0);
        assert_string_equal(u, "http://n1/v2.1");
        free(u);
        assert_int_equal(keystone_catalog_select(cat, "compute", "R3", "public", &u), -ENOENT);
        assert_int_equal(keystone_catalog_select(cat, "image", "R1", "public", &u), -ENOENT);
        json_t *notcat = json_object();
        assert_int_equal(keystone_catalog_select(notcat, "compute", NULL, "public", &u), -EINVAL);
        json_decref(notcat);
        json_decref(cat);
}

static void test_keystone_time(void **state) {
        (void)state;
        double t = 0;
        assert_int_equal(keystone_parse_time("1970-01-02T00:00:01.500000Z", &t), 0);
        assert_true(t > 86401.49 && t < 86401.51);
        assert_int_equal(keystone_parse_time("2024-02-29T23:59:59Z", &t), 0);
        assert_true(t == 1709251199.0);
        assert_int_equal(keystone_parse_time("2024-13-01T00:00:00Z", &t), -EINVAL);
        assert_int_equal(keystone_parse_time("yesterday", &t), -EINVAL);
        assert_int_equal(keystone_parse_time("2024-01-01T00:00:00+05:00", &t), -EINVAL);
        assert_int_equal(keystone_parse_time(NULL, &t), -EINVAL);
}

static const char FLAVORS[] =
        "{\"flavors\":["
        "{\"id\":\"1\",\"name\":\"m1.tiny\",\"ram\":512,\"vcpus\":1,\"disk\":1},"
        "{\"id\":\"2\",\"name\":\"m1.small\",\"ram\":2048,\"vcpus\":1,\"disk\":20},"
        "{\"id\":\"3\",\"name\":\"m1.medium\",\"ram\":4096,\"vcpus\":2,\"disk\":40},"
        "{\"id\":\"4\",\"name\":\"c1.small\",\"ram\":2048,\"vcpus\":4,\"disk\":20},"
        "{\"id\":\"5\",\"name\":\"m1.huge-off\",\"ram\":3000,\"vcpus\":1,\"OS-FLV-DISABLED:disabled\":true}]}";

/* Nodepool's flavor rules: min-ram → least RAM that fits (ties: fewer vcpus),
 * filtered by name substring; flavor-name alone → exact name or id; disabled
 * flavors never; nothing fitting → NULL. */
static void test_flavor_choice(void **state) {
        (void)state;
        json_t *j = json_loads(FLAVORS, 0, NULL);
        struct openstack_flavor *v = NULL;
        size_t n = 0;
        assert_int_equal(openstack_flavors_from_json(j, &v, &n, NULL), 0);
        assert_int_equal(n, 5);
        assert_string_equal(openstack_flavor_choose(v, n, NULL, 1000)->name, "m1.small");
        assert_string_equal(openstack_flavor_choose(v, n, NULL, 2048)->name, "m1.small");
        assert_string_equal(openstack_flavor_choose(v, n, "c1", 1000)->name, "c1.small");
        assert_string_equal(openstack_flavor_choose(v, n, NULL, 2049)->name, "m1.medium"); /* not the disabled one */
        assert_null(openstack_flavor_choose(v, n, NULL, 8192));
        assert_string_equal(openstack_flavor_choose(v, n, "m1.tiny", 0)->id, "1");
        assert_string_equal(openstack_flavor_choose(v, n, "3", 0)->name, "m1.medium");
        assert_null(openstack_flavor_choose(v, n, "m1", 0)); /* by name alone: exact */
        assert_null(openstack_flavor_choose(v, n, "m1.huge-off", 0));
        openstack_flavors_free(v, n);
        json_decref(j);

        char *msg = NULL;
        j = json_loads("{\"flavors\":[{\"id\":\"1\",\"name\":\"x\",\"ram\":\"512\",\"vcpus\":1}]}", 0, NULL);
        assert_int_equal(openstack_flavors_from_json(j, &v, &n, &msg), -EBADMSG);
        assert_non_null(msg);
        free(msg);
        json_decref(j);
}

/* Cinder's /limits: maxima copied (-1 = unlimited), the project's used totals
 * kept; Nova's limits alone mean no volume limit; malformed is -EBADMSG with
 * the limits left as they were. */
static void test_volume_limits(void **state) {
        (void)state;
        json_t *j = json_loads("{\"limits\":{\"rate\":[],\"absolute\":{\"maxTotalVolumes\":10,"
                               "\"maxTotalVolumeGigabytes\":-1,\"totalVolumesUsed\":3,\"totalGigabytesUsed\":60,"
                               "\"maxTotalSnapshots\":10}}}", 0, NULL);
        struct provider_limits l;
        json_t *nova = json_loads("{\"limits\":{\"absolute\":{\"maxTotalInstances\":10,\"maxTotalCores\":20,"
                                  "\"maxTotalRAMSize\":51200}}}", 0, NULL);
        assert_int_equal(openstack_limits_from_json(nova, &l, NULL), 0);
        assert_int_equal(l.max_volumes, -1);
        assert_int_equal(l.max_volume_gb, -1);
        assert_int_equal(openstack_volume_limits_from_json(j, &l, NULL), 0);
        assert_int_equal(l.max_instances, 10);
        assert_int_equal(l.max_volumes, 10);
        assert_int_equal(l.max_volume_gb, -1);
        assert_int_equal(l.used_volumes, 3);
        assert_int_equal(l.used_volume_gb, 60);
        json_decref(j);
        char *msg = NULL;
        j = json_loads("{\"limits\":{\"absolute\":{\"maxTotalVolumes\":\"x\",\"maxTotalVolumeGigabytes\":1}}}", 0,
                       NULL);
        assert_int_equal(openstack_volume_limits_from_json(j, &l, &msg), -EBADMSG);
        assert_non_null(msg);
        assert_int_equal(l.max_volumes, 10);
        free(msg);
        json_decref(j);
        json_decref(nova);
}

/* /limits: values copied, negative = unlimited, free RAM = max − used;
 * missing or mistyped limits are -EBADMSG. */
static void test_quota_math(void **state) {
        (void)state;
        json_t *j = json_loads("{\"limits\":{\"absolute\":{\"maxTotalInstances\":10,\"maxTotalCores\":-1,"
                               "\"maxTotalRAMSize\":51200,\"totalRAMUsed\":1024}}}",
                               0, NULL);
        struct provider_limits l;
        assert_int_equal(openstack_limits_from_json(j, &l, NULL), 0);
        assert_int_equal(l.max_instances, 10);
        assert_int_equal(l.max_cores, -1);
        assert_int_equal(l.max_ram_mib, 51200);
        assert_int_equal(l.free_ram_mib, 50176);
        json_decref(j);
        j = json_loads("{\"limits\":{\"absolute\":{\"maxTotalInstances\":-1,\"maxTotalCores\":4,"
                       "\"maxTotalRAMSize\":-1}}}",
                       0, NULL);
        assert_int_equal(openstack_limits_from_json(j, &l, NULL), 0);
        assert_int_equal(l.max_instances, -1);
        assert_int_equal(l.free_ram_mib, -1);
        json_decref(j);
        char *msg = NULL;
        j = json_loads("{\"limits\":{\"absolute\":{\"maxTotalInstances\":\"ten\"}}}", 0, NULL);
        assert_int_equal(openstack_limits_from_json(j, &l, &msg), -EBADMSG);
        free(msg);
        json_decref(j);
        j = json_loads("{\"limits\":{}}", 0, NULL);
        assert_int_equal(openstack_limits_from_json(j, &l, NULL), -EBADMSG);
        json_decref(j);
}

/* The cloud's availability zones (GET /os-availability-zone): available ones
 * only, as openstacksdk's list_availability_zone_names; an empty list is no
 * zone at all; a body without the list is -EBADMSG. */
static void test_availability_zones_decode(void **state) {
        (void)state;
        json_t *j = json_loads("{\"availabilityZoneInfo\":["
                               "{\"zoneName\":\"nova\",\"zoneState\":{\"available\":true},\"hosts\":null},"
                               "{\"zoneName\":\"down\",\"zoneState\":{\"available\":false},\"hosts\":null},"
                               "{\"zoneState\":{\"available\":true}},"
                               "{\"zoneName\":\"az2\",\"zoneState\":{\"available\":true}}]}",
                               0, NULL);
        char **v = NULL;
        size_t n = 0;
        assert_int_equal(openstack_azs_from_json(j, &v, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_string_equal(v[0], "nova");
        assert_string_equal(v[1], "az2");
        provider_strv_free(v, n);
        json_decref(j);
        j = json_loads("{\"availabilityZoneInfo\":[]}", 0, NULL);
        assert_int_equal(openstack_azs_from_json(j, &v, &n, NULL), 0);
        assert_int_equal(n, 0);
        provider_strv_free(v, n);
        json_decref(j);
        char *msg = NULL;
        j = json_loads("{\"zones\":[]}", 0, NULL);
        assert_int_equal(openstack_azs_from_json(j, &v, &n, &msg), -EBADMSG);
        assert_non_null(msg);
        free(msg);
        json_decref(j);
}

static const char SERVERS[] =
        "{\"servers\":["
        "{\"id\":\"a\",\"status\":\"ACTIVE\",\"hostId\":\"h1\",\"OS-EXT-AZ:availability_zone\":\"nova\","
        " \"flavor\":{\"vcpus\":2,\"ram\":4096,\"original_name\":\"m1.medium\"},"
        " \"metadata\":{\"nodepool_node_id\":\"0000000001\",\"nodepool_provider_name\":\"p\",\"n\":5},"
        " \"addresses\":{\"net\":[{\"addr\":\"10.0.0.5\",\"version\":4,\"OS-EXT-IPS:type\":\"fixed\"},"
        "                        {\"addr\":\"2001:db8::5\",\"version\":6,\"OS-EXT-IPS:type\":\"fixed\"},"
        "                        {\"addr\":\"203.0.113.7\",\"version\":4,\"OS-EXT-IPS:type\":\"floating\"}]}},"
        "{\"id\":\"b\",\"status\":\"BUILD\",\"flavor\":{\"id\":\"2\"},\"metadata\":{},"
        " \"addresses\":{\"priv\":[{\"addr\":\"192.168.1.9\",\"version\":4}]}},"
        "{\"id\":\"c\",\"status\":\"ERROR\",\"fault\":{\"code\":500,\"message\":\"Build aborted: quota\"}},"
        "{\"id\":\"d\",\"status\":\"DELETED\"}]}";

/* Server decoding: state, addresses (floating = public, RFC 1918 = private,
 * interface_ip prefers public), az, host, flavor resources (embedded or from
 * the flavor table), string metadata as tags; DELETED ones are skipped. */
static void test_servers_decode(void **state) {
        (void)state;
        json_t *fj = json_loads(FLAVORS, 0, NULL);
        struct openstack_flavor *fl = NULL;
        size_t nf = 0;
        assert_int_equal(openstack_flavors_from_json(fj, &fl, &nf, NULL), 0);
        json_t *j = json_loads(SERVERS, 0, NULL);
        assert_non_null(j);
        struct provider_server **v = NULL;
        size_t n = 0;
        assert_int_equal(openstack_servers_from_json(j, "R1", fl, nf, &v, &n, NULL), 0);
        assert_int_equal(n, 3);
        assert_string_equal(v[0]->external_id, "a");
        assert_int_equal(v[0]->state, PROVIDER_SERVER_ACTIVE);
        assert_string_equal(v[0]->public_ipv4, "203.0.113.7");
        assert_string_equal(v[0]->private_ipv4, "10.0.0.5");
        assert_string_equal(v[0]->public_ipv6, "2001:db8::5");
        assert_string_equal(v[0]->interface_ip, "203.0.113.7");
        assert_string_equal(v[0]->az, "nova");
        assert_string_equal(v[0]->host_id, "h1");
        assert_string_equal(v[0]->region, "R1");
        assert_int_equal(v[0]->resources.cores, 2);
        assert_int_equal(v[0]->resources.ram_mib, 4096);
        assert_string_equal(provider_server_tag(v[0], "nodepool_node_id"), "0000000001");
        assert_null(provider_server_tag(v[0], "n")); /* not a string: not a tag */
        assert_int_equal(v[1]->state, PROVIDER_SERVER_BUILDING);
        assert_string_equal(v[1]->private_ipv4, "192.168.1.9");
        assert_string_equal(v[1]->interface_ip, "192.168.1.9");
        assert_null(v[1]->public_ipv4);
        assert_int_equal(v[1]->resources.ram_mib, 2048);
        assert_int_equal(v[2]->state, PROVIDER_SERVER_ERROR);
        assert_string_equal(v[2]->fault, "Build aborted: quota"); /* why, for the launcher */
        assert_null(v[0]->fault);
        provider_server_array_free(v, n);
        json_decref(j);
        json_decref(fj);
        openstack_flavors_free(fl, nf);
}

/* Malformed documents are -EBADMSG with a message and nothing leaked (ASan):
 * not an object list, a server without id, metadata that is not an object. */
static void test_servers_malformed(void **state) {
        (void)state;
        const char *bad[] = {
                "{\"servers\":{}}",
                "{}",
                "{\"servers\":[{\"id\":\"a\",\"status\":\"ACTIVE\"},{\"status\":\"ACTIVE\"}]}",
                "{\"servers\":[{\"id\":\"a\",\"status\":\"ACTIVE\",\"metadata\":[1]}]}",
                "{\"servers\":[{\"id\":5,\"status\":\"ACTIVE\"}]}",
                "{\"servers\":[7]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *j = json_loads(bad[i], 0, NULL);
                assert_non_null(j);
                struct provider_server **v = NULL;
                size_t n = 0;
                char *msg = NULL;
                assert_int_equal(openstack_servers_from_json(j, NULL, NULL, 0, &v, &n, &msg), -EBADMSG);
                assert_non_null(msg);
                assert_null(v);
                free(msg);
                json_decref(j);
        }
}

/* Glance images: properties that are not Glance's own fields become tags, the
 * tags list becomes "tag:<t>"; a non-list tags field is -EBADMSG. */
static void test_image_decode(void **state) {
        (void)state;
        json_t *j = json_loads("{\"id\":\"i1\",\"name\":\"debian-1\",\"disk_format\":\"qcow2\",\"size\":1024,"
                               "\"status\":\"active\",\"tags\":[\"nodepool\"],\"nodepool_build_id\":\"7\","
                               "\"visibility\":\"private\",\"min_ram\":0}",
                               0, NULL);
        struct provider_image *img = NULL;
        assert_int_equal(openstack_image_from_json(j, &img, NULL), 0);
        assert_string_equal(img->external_id, "i1");
        assert_string_equal(img->name, "debian-1");
        assert_string_equal(img->format, "qcow2");
        assert_int_equal(img->size, 1024);
        assert_string_equal(provider_image_tag(img, "nodepool_build_id"), "7");
        assert_non_null(provider_image_tag(img, "tag:nodepool"));
        assert_null(provider_image_tag(img, "status"));
        assert_null(provider_image_tag(img, "visibility"));
        provider_image_free(img);
        json_decref(j);
        j = json_loads("{\"id\":\"i1\",\"tags\":\"nodepool\"}", 0, NULL);
        char *msg = NULL;
        assert_int_equal(openstack_image_from_json(j, &img, &msg), -EBADMSG);
        free(msg);
        json_decref(j);
}

/* API errors: Nova's quota refusal is -EDQUOT; 404/409/401/other 4xx/5xx map
 * as documented; the message carries the service's own text (JSON or HTML). */
static void test_error_mapping(void **state) {
        (void)state;
        char *m = NULL;
        const char *quota = "{\"forbidden\": {\"code\": 403, \"message\": \"Quota exceeded for instances: "
                            "Requested 1, but already used 2 of 2 instances\"}}";
        assert_int_equal(openstack_error_from_response("compute", 403, quota, strlen(quota), &m), -EDQUOT);
        assert_non_null(strstr(m, "Quota exceeded for instances"));
        free(m);
        const char *over = "{\"overLimit\": {\"code\": 413, \"message\": \"Maximum number of ports exceeded\"}}";
        assert_int_equal(openstack_error_from_response("compute", 413, over, strlen(over), &m), -EINVAL);
        free(m);
        const char *policy = "{\"forbidden\": {\"message\": \"Policy doesn't allow os_compute_api to be performed.\"}}";
        assert_int_equal(openstack_error_from_response("compute", 403, policy, strlen(policy), &m), -EPERM);
        free(m);
        const char *html = "<html><body><h1>409 Conflict</h1>\nImage already\tuploaded</body></html>";
        assert_int_equal(openstack_error_from_response("image", 409, html, strlen(html), &m), -EEXIST);
        assert_non_null(strstr(m, "409 Conflict Image already uploaded"));
        free(m);
        assert_int_equal(openstack_error_from_response("compute", 404, NULL, 0, &m), -ENOENT);
        free(m);
        assert_int_equal(openstack_error_from_response("identity", 401, "x", 1, &m), -EACCES);
        free(m);
        assert_int_equal(openstack_error_from_response("compute", 400, "{", 1, &m), -EINVAL);
        free(m);
        assert_int_equal(openstack_error_from_response("compute", 503, "", 0, NULL), -EIO);
}

/* The Glance create body carries Nodepool's properties, the "nodepool" tag and
 * openstacksdk's owner_specified.openstack.{object,md5,sha256}; malformed
 * digests and Glance's own field names are left out, never sent. */
static void test_image_create_body(void **state) {
        (void)state;
        const char *md5 = "0123456789abcdef0123456789abcdef";
        const char *sha = "ab000000000000000000000000000000000000000000000000000000000000cd";
        const struct provider_kv tags[] = { { "team", "ci" }, { "nodepool_build_id", "0001" },
                                            { "status", "active" }, { "nodepool_provider_name", "os1" } };
        json_t *b = openstack_image_create_body("prov", "debian-1700000000", "raw", md5, sha, tags, 4);
        assert_string_equal(json_string_value(json_object_get(b, "name")), "debian-1700000000");
        assert_string_equal(json_string_value(json_object_get(b, "disk_format")), "raw");
        assert_string_equal(json_string_value(json_object_get(b, "container_format")), "bare");
        assert_string_equal(json_string_value(json_object_get(b, "visibility")), "private");
        assert_string_equal(json_string_value(json_array_get(json_object_get(b, "tags"), 0)), "nodepool");
        assert_string_equal(json_string_value(json_object_get(b, "team")), "ci");
        assert_string_equal(json_string_value(json_object_get(b, "nodepool_build_id")), "0001");
        assert_null(json_object_get(b, "status"));
        assert_string_equal(json_string_value(json_object_get(b, "nodepool_provider_name")), "os1");
        assert_string_equal(json_string_value(json_object_get(b, "owner_specified.openstack.md5")), md5);
        assert_string_equal(json_string_value(json_object_get(b, "owner_specified.openstack.sha256")), sha);
        assert_string_equal(json_string_value(json_object_get(b, "owner_specified.openstack.object")),
                            "images/debian-1700000000");
        json_decref(b);
        /* Unknown digests and a digest that is not hex of the right length are omitted;
         * the provider name is added when the tags lack it; qcow2 is the default format. */
        b = openstack_image_create_body("prov", "x", NULL, "0123",
                                        "zz00000000000000000000000000000000000000000000000000000000000000", NULL, 0);
        assert_string_equal(json_string_value(json_object_get(b, "disk_format")), "qcow2");
        assert_string_equal(json_string_value(json_object_get(b, "nodepool_provider_name")), "prov");
        assert_null(json_object_get(b, "owner_specified.openstack.md5"));
        assert_null(json_object_get(b, "owner_specified.openstack.sha256"));
        assert_string_equal(json_string_value(json_object_get(b, "owner_specified.openstack.object")), "images/x");
        json_decref(b);
}

/* The builder's format per provider: clouds.yaml image_format for openstack
 * (qcow2 when unset, unreadable, or not a plain format word), qcow2 for libvirt. */
static void test_params_image_format(void **state) {
        (void)state;
        char path[] = "/tmp/test-os-fmt-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        const char *y = "clouds:\n"
                        "  rawc: {image_format: raw, auth: {auth_url: 'http://k/v3', username: u, password: p}}\n"
                        "  dflt: {auth: {auth_url: 'http://k/v3', username: u, password: p}}\n"
                        "  evil: {image_format: '../x', auth: {auth_url: 'http://k/v3', username: u, password: p}}\n";
        assert_int_equal(write(fd, y, strlen(y)), (ssize_t)strlen(y));
        close(fd);
        setenv("OS_CLIENT_CONFIG_FILE", path, 1);
        const char *np = "labels:\n  - name: s\n"
                         "diskimages:\n  - name: d\n    elements: [e]\n"
                         "providers:\n"
                         "  - {name: a, cloud: rawc, diskimages: [{name: d}]}\n"
                         "  - {name: b, cloud: dflt, diskimages: [{name: d}]}\n"
                         "  - {name: c, cloud: evil, diskimages: [{name: d}]}\n"
                         "  - {name: m, cloud: missing, diskimages: [{name: d}]}\n"
                         "  - {name: l, driver: libvirt, uri: 'test:///default', diskimages: [{name: d}]}\n";
        struct config *cfg = NULL;
        struct config_diags diags = { 0 };
        int r = config_load_buffer("nodepool.yaml", np, strlen(np), NULL, NULL, 0, &cfg, &diags);
        if (r < 0)
                config_diags_print(&diags, stderr);
        assert_int_equal(r, 0);
        config_diags_clear(&diags);
        const char *want[][2] = { { "a", "raw" }, { "b", "qcow2" }, { "c", "qcow2" }, { "m", "qcow2" },
                                  { "l", "qcow2" } };
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                char *f = provider_params_image_format(config_find_provider(cfg, want[i][0]));
                assert_string_equal(f, want[i][1]);
                free(f);
        }
        config_free(cfg);
        unsetenv("OS_CLIENT_CONFIG_FILE");
        unlink(path);
}

/* The floating IP goes to the port holding the server's private address;
 * none matches, or a malformed body, gives NULL (no floating IP), never a crash. */
static void test_port_for_address(void **state) {
        (void)state;
        json_t *ports = json_loads("{\"ports\":[{\"id\":\"p1\",\"fixed_ips\":[{\"ip_address\":\"10.0.0.5\"}]},"
                                   "{\"id\":\"p2\",\"fixed_ips\":[{\"ip_address\":\"fd00::5\"},"
                                   "{\"ip_address\":\"10.0.1.7\"}]}]}", 0, NULL);
        assert_non_null(ports);
        assert_string_equal(openstack_port_for_address(ports, "10.0.0.5"), "p1");
        assert_string_equal(openstack_port_for_address(ports, "10.0.1.7"), "p2");
        assert_null(openstack_port_for_address(ports, "10.0.0.6"));
        assert_null(openstack_port_for_address(ports, NULL));
        json_t *bad = json_loads("{\"ports\":[{\"fixed_ips\":[{\"ip_address\":\"10.0.0.5\"}]},7,{\"id\":1}]}", 0, NULL);
        assert_null(openstack_port_for_address(bad, "10.0.0.5"));
        assert_null(openstack_port_for_address(NULL, "10.0.0.5"));
        json_decref(ports);
        json_decref(bad);
}

/* Port cleanup candidates as Nodepool's _filterComputePorts: no owner or Nova's,
 * never a router's or DHCP's. */
static void test_port_cleanable(void **state) {
        (void)state;
        const char *yes[] = { "{}", "{\"device_owner\":null}", "{\"device_owner\":\"\"}",
                              "{\"device_owner\":\"compute:nova\"}" };
        const char *no[] = { "{\"device_owner\":\"network:router_interface\"}",
                             "{\"device_owner\":\"network:dhcp\"}", "{\"device_owner\":5}" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                json_t *j = json_loads(yes[i], 0, NULL);
                assert_true(openstack_port_cleanable(j));
                json_decref(j);
        }
        for (size_t i = 0; i < ELEMENTSOF(no); i++) {
                json_t *j = json_loads(no[i], 0, NULL);
                assert_false(openstack_port_cleanable(j));
                json_decref(j);
        }
}

/* A label without networks: "auto" when Nova has a network to pick (own or
 * shared) or can allocate one; "none" on a cloud with neither (where "auto"
 * is refused), a bare external network not counting; unknown stays "auto". */
static void test_default_networks(void **state) {
        (void)state;
        json_t *none = json_loads("[]", 0, NULL);
        json_t *own = json_loads("[{\"id\":\"n1\",\"shared\":false,\"router:external\":false}]", 0, NULL);
        json_t *shared_ext = json_loads("[{\"id\":\"n1\",\"shared\":true,\"router:external\":true}]", 0, NULL);
        json_t *ext = json_loads("[{\"id\":\"n1\",\"shared\":false,\"router:external\":true}]", 0, NULL);
        assert_string_equal(openstack_default_networks(none, false), "none");
        assert_string_equal(openstack_default_networks(none, true), "auto");
        assert_string_equal(openstack_default_networks(ext, false), "none");
        assert_string_equal(openstack_default_networks(own, false), "auto");
        assert_string_equal(openstack_default_networks(shared_ext, false), "auto");
        assert_string_equal(openstack_default_networks(NULL, false), "auto");
        json_decref(none);
        json_decref(own);
        json_decref(shared_ext);
        json_decref(ext);
}

/* API-call metric names as openstacksdk's Proxy._extract_name makes them
 * (the last part of Nodepool's nodepool.task.<provider>.<service>.<METHOD>.<name>):
 * version segment dropped, a collection before an id singular, "detail" kept
 * with its collection, the project id and ".json" dropped, '.' made '_'. */
static void test_api_metric_name(void **state) {
        (void)state;
        static const char *const cases[][3] = {
                { "http://127.0.0.1:8774/v2.1/servers", NULL, "servers" },
                { "http://127.0.0.1:8774/v2.1/servers/detail?limit=5", NULL, "servers_detail" },
                { "http://127.0.0.1:8774/v2.1/servers/0b3c-11/action", NULL, "server_action" },
                { "http://127.0.0.1:8774/v2.1/servers/0b3c-11", NULL, "server" },
                { "http://127.0.0.1:8774/v2.1/servers/0b3c-11/os-interface", NULL, "server_os-interface" },
                { "http://127.0.0.1:8774/v2.1/flavors/detail", NULL, "flavors_detail" },
                { "http://127.0.0.1:8774/v2.1/limits", NULL, "limits" },
                { "http://127.0.0.1:8774/v2.1/abc123/servers", "abc123", "servers" },
                { "http://127.0.0.1:8774/v1/AUTH_abc123/os-availability-zone", "abc123", "os-availability-zone" },
                { "http://127.0.0.1:9696/v2.0/ports.json", NULL, "ports" },
                { "http://127.0.0.1:9696/v2.0/floatingips/ff-1", NULL, "floatingip" },
                { "http://127.0.0.1:9292/v2/images/77/file", NULL, "image_file" },
                { "http://127.0.0.1:9292/v2/images?tag=nodepool", NULL, "images" },
                { "http://127.0.0.1:9292/v2/schemas/image", NULL, "schema" },
                { "http://127.0.0.1:5000/v3/auth/tokens", NULL, "tokens" },
                { "http://127.0.0.1:8774/compute/v2.1/servers", NULL, "compute_servers" },
                { "http://127.0.0.1:8774/", NULL, "discovery" },
                { "http://127.0.0.1:8774", NULL, "discovery" },
                { "http://127.0.0.1:8774/v2.1/os-ext.x:y", NULL, "os-ext_x_y" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *n = openstack_api_metric_name(cases[i][0], cases[i][1]);
                if (strcmp(n, cases[i][2]) != 0) fail_msg("%s -> %s, expected %s", cases[i][0], n, cases[i][2]);
                free(n);
        }
}

static void test_base64(void **state) {
        (void)state;
        const char *cases[][2] = { { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
                                   { "#cloud-config\n", "I2Nsb3VkLWNvbmZpZwo=" } };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *b = openstack_base64(cases[i][0], strlen(cases[i][0]));
                assert_string_equal(b, cases[i][1]);
                free(b);
        }
}

static const char NODEPOOL_YAML[] =
        "labels:\n  - name: small\n  - name: cloudy\n"
        "diskimages:\n  - name: debian\n    elements: [debian-minimal]\n"
        "providers:\n"
        "  - name: os1\n"
        "    cloud: mycloud\n"
        "    region-name: RegionTwo\n"
        "    rate: 0.25\n"
        "    image-upload-timeout: 120\n"
        "    diskimages:\n      - name: debian\n        config-drive: true\n"
        "    cloud-images:\n      - name: cimg\n        image-name: Cirros\n"
        "    pools:\n"
        "      - name: main\n"
        "        availability-zones: [az1, az2]\n"
        "        networks: [net1]\n"
        "        security-groups: [sg1]\n"
        "        labels:\n"
        "          - name: small\n"
        "            diskimage: debian\n"
        "            min-ram: 512\n"
        "            flavor-name: m1\n"
        "            key-name: k1\n"
        "            userdata: '#cloud-config'\n"
        "            instance-properties: {a: b, c: d}\n"
        "          - name: cloudy\n"
        "            cloud-image: cimg\n"
        "            flavor-name: m1.small\n"
        "            networks: [other]\n"
        "  - name: lv\n"
        "    driver: libvirt\n"
        "    uri: test:///default\n"
        "    domain-type: qemu\n"
        "    diskimages:\n      - name: debian\n"
        "    pools:\n      - name: p\n        labels:\n          - name: small\n            diskimage: debian\n";

/* provider_params_from_config maps every openstack key the driver reads (per
 * label: flavor, image, networks with pool fallback, AZs, metadata, config
 * drive) and the libvirt keys; static providers are -EOPNOTSUPP. */
static void test_params_from_config(void **state) {
        (void)state;
        struct config *cfg = NULL;
        struct config_diags diags = { 0 };
        int r = config_load_buffer("nodepool.yaml", NODEPOOL_YAML, strlen(NODEPOOL_YAML), NULL, NULL, 0, &cfg, &diags);
        if (r < 0)
                config_diags_print(&diags, stderr);
        assert_int_equal(r, 0);
        config_diags_clear(&diags);

        struct provider_params_owned o;
        assert_int_equal(provider_params_from_config(config_find_provider(cfg, "os1"), &o), 0);
        const struct provider_openstack_params *op = &o.params.openstack;
        assert_string_equal(o.params.driver, "openstack");
        assert_string_equal(o.params.name, "os1");
        assert_string_equal(op->cloud, "mycloud");
        assert_string_equal(op->region_name, "RegionTwo");
        assert_true(op->rate == 0.25);
        assert_int_equal(op->image_upload_timeout, 120);
        assert_int_equal(op->n_labels, 2);
        const struct provider_openstack_label *l = &op->labels[0];
        assert_string_equal(l->pool, "main");
        assert_string_equal(l->label, "small");
        assert_string_equal(l->diskimage, "debian");
        assert_string_equal(l->flavor_name, "m1");
        assert_int_equal(l->min_ram, 512);
        assert_string_equal(l->key_name, "k1");
        assert_string_equal(l->userdata, "#cloud-config");
        assert_int_equal(l->config_drive, 1);
        assert_int_equal(l->n_networks, 1);
        assert_string_equal(l->networks[0], "net1");
        assert_int_equal(l->n_security_groups, 1);
        assert_int_equal(l->n_instance_properties, 2);
        assert_string_equal(l->instance_properties[1].key, "c");
        assert_string_equal(l->instance_properties[1].value, "d");
        l = &op->labels[1];
        assert_null(l->diskimage);
        assert_string_equal(l->cloud_image_name, "Cirros");
        assert_null(l->cloud_image_id);
        assert_string_equal(l->networks[0], "other");
        assert_int_equal(l->config_drive, -1);
        provider_params_done(&o);

        assert_int_equal(provider_params_from_config(config_find_provider(cfg, "lv"), &o), 0);
        assert_string_equal(o.params.driver, "libvirt");
        assert_string_equal(o.params.libvirt.uri, "test:///default");
        assert_int_equal(o.params.libvirt.domain_type, PROVIDER_LIBVIRT_DOMAIN_QEMU);
        provider_params_done(&o);
        config_free(cfg);

        const char *st = "labels:\n  - name: s\nproviders:\n  - name: st\n    driver: static\n    pools:\n"
                         "      - name: p\n        nodes:\n          - name: h1\n            labels: s\n";
        assert_int_equal(config_load_buffer("s.yaml", st, strlen(st), NULL, NULL, 0, &cfg, NULL), 0);
        assert_int_equal(provider_params_from_config(config_find_provider(cfg, "st"), &o), -EOPNOTSUPP);
        config_free(cfg);
}

/* open() reads clouds.yaml but contacts nothing: a cloud that is down still
 * opens; an unknown cloud name is a clear -ENOENT. */
static void test_open_is_lazy(void **state) {
        (void)state;
        char path[] = "/tmp/test-os-open-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        const char *y = "clouds:\n  down: {auth: {auth_url: 'http://127.0.0.1:1/v3', username: u, password: p}}\n";
        assert_int_equal(write(fd, y, strlen(y)), (ssize_t)strlen(y));
        close(fd);
        setenv("OS_CLIENT_CONFIG_FILE", path, 1);
        struct provider_params pp = { .name = "p", .driver = "openstack", .openstack = { .cloud = "down" } };
        struct provider *p = NULL;
        char *msg = NULL;
        assert_int_equal(provider_open(&pp, &p, &msg), 0);
        /* Connection refused everywhere: after the retries, -EHOSTDOWN with the URL. */
        struct provider_limits l;
        assert_int_equal(p->ops->quota(p, &l, &msg), -EHOSTDOWN);
        assert_non_null(strstr(msg, "127.0.0.1:1"));
        free(msg);
        msg = NULL;
        provider_close(p);
        pp.openstack.cloud = "missing";
        assert_int_equal(provider_open(&pp, &p, &msg), -ENOENT);
        assert_non_null(strstr(msg, "missing"));
        free(msg);
        unsetenv("OS_CLIENT_CONFIG_FILE");
        unlink(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clouds_password),
                cmocka_unit_test(test_clouds_secure_and_regions),
                cmocka_unit_test(test_clouds_appcred_and_errors),
                cmocka_unit_test(test_clouds_find_and_load),
                cmocka_unit_test(test_keystone_auth_body),
                cmocka_unit_test(test_keystone_tokens_url),
                cmocka_unit_test(test_keystone_catalog),
                cmocka_unit_test(test_keystone_time),
                cmocka_unit_test(test_flavor_choice),
                cmocka_unit_test(test_quota_math),
                cmocka_unit_test(test_availability_zones_decode),
                cmocka_unit_test(test_volume_limits),
                cmocka_unit_test(test_servers_decode),
                cmocka_unit_test(test_servers_malformed),
                cmocka_unit_test(test_image_decode),
                cmocka_unit_test(test_error_mapping),
                cmocka_unit_test(test_base64),
                cmocka_unit_test(test_api_metric_name),
                cmocka_unit_test(test_default_networks),
                cmocka_unit_test(test_port_for_address),
                cmocka_unit_test(test_port_cleanable),
                cmocka_unit_test(test_image_create_body),
                cmocka_unit_test(test_params_image_format),
                cmocka_unit_test(test_params_from_config),
                cmocka_unit_test(test_open_is_lazy),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
