/* test_config.c — the config loader's typed result: defaults, diskimage chains,
 * env substitution, secure-file merge, ZooKeeper host string, provider equality,
 * that diagnostics carry exact positions in file order, providers of drivers
 * poold leaves to another launcher, and keys accepted but not acted on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "config.h"
#include "zk.h"

static char *path_of(const char *name) {
        const char *src = getenv("POOLD_SRCDIR");
        return xasprintf("%s/tests/configs/%s", src ? src : ".", name);
}

static struct config *load_ok(const char *name, const char *secure) {
        _cleanup_free_ char *p = path_of(name), *s = secure ? path_of(secure) : NULL;
        struct config_diags d = {};
        struct config *c = NULL;
        int r = config_load(p, s, &c, &d);
        if (r != 0) config_diags_print(&d, stderr);
        assert_int_equal(r, 0);
        config_diags_clear(&d);
        return c;
}

static struct config *load_str(const char *yaml, struct config_diags *d) {
        struct config *c = NULL;
        int r = config_load_buffer("mem.yaml", yaml, strlen(yaml), NULL, NULL, 0, &c, d);
        assert_true(r == 0 || r == -EINVAL);
        assert_true((r == 0) == (c != NULL));
        return c;
}

/* Nodepool's code defaults apply wherever a key is absent. */
static void test_defaults_match_nodepool_code(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("zookeeper-servers: [{host: zk}]\n"
                                    "labels: [{name: l}]\n"
                                    "diskimages: [{name: img}]\n"
                                    "providers:\n"
                                    "  - name: p\n"
                                    "    cloud: c\n"
                                    "    diskimages: [{name: img}]\n"
                                    "    pools:\n"
                                    "      - name: main\n"
                                    "        labels: [{name: l, diskimage: img, flavor-name: f}]\n"
                                    "  - {name: v, driver: libvirt, pools: [{name: m}]}\n"
                                    "  - name: s\n"
                                    "    driver: static\n"
                                    "    pools: [{name: r, nodes: [{name: h, labels: l}]}]\n",
                                    &d);
        config_diags_print(&d, stderr);
        assert_non_null(c);
        assert_int_equal(c->webapp_port, 8005);
        assert_string_equal(c->webapp_listen_address, "0.0.0.0");
        assert_string_equal(c->build_log_dir, "/var/log/nodepool/builds");
        assert_int_equal(c->build_log_retention, 7);
        assert_true(c->zk_timeout == 10.0);
        assert_int_equal(c->zk_servers[0].port, 2281);
        assert_int_equal(c->max_hold_age, 0);
        assert_int_equal(c->labels[0].min_ready, 0);
        const struct config_diskimage *di = config_find_diskimage(c, "img");
        assert_int_equal(di->rebuild_age, 86400);
        assert_int_equal(di->build_timeout, 28800);
        assert_string_equal(di->username, "zuul");
        assert_string_equal(di->python_path, "auto");
        assert_string_equal(di->dib_cmd, "disk-image-create");
        assert_int_equal(di->needed_formats.n, 1);
        assert_string_equal(di->needed_formats.items[0], "qcow2");

        const struct config_provider *p = config_find_provider(c, "p");
        assert_int_equal(p->driver, CONFIG_DRIVER_OPENSTACK);
        assert_int_equal(p->max_concurrency, CONFIG_UNLIMITED);
        assert_int_equal(p->priority, 100);
        assert_int_equal(p->boot_timeout, 60);
        assert_int_equal(p->launch_timeout, 3600);
        assert_int_equal(p->launch_retries, 3);
        assert_int_equal(p->image_upload_timeout, 3600);
        assert_true(p->rate == 1.0);
        assert_false(p->clean_floating_ips);
        assert_int_equal(p->port_cleanup_interval, 600);
        assert_string_equal(p->image_name_format, "{image_name}-{timestamp}");
        assert_string_equal(p->diskimages[0].connection_type, "ssh");
        assert_int_equal(p->diskimages[0].connection_port, 22);
        const struct config_pool *pool = config_find_pool(p, "main");
        assert_int_equal(pool->max_servers, CONFIG_UNLIMITED);
        assert_int_equal(pool->max_cores, CONFIG_UNLIMITED);
        assert_int_equal(pool->priority, 100);
        assert_true(pool->auto_floating_ip);
        assert_true(pool->host_key_checking);
        assert_int_equal(pool->labels[0].volume_size, 50);
        assert_false(pool->labels[0].boot_from_volume);
        assert_true(pool->labels[0].host_key_checking);

        const struct config_provider *v = config_find_provider(c, "v");
        assert_string_equal(v->uri, "qemu:///system");
        assert_string_equal(v->domain_type, "auto");
        assert_string_equal(v->storage_pool, "poold");
        assert_string_equal(v->storage_pool_path, "/var/lib/poold/images");
        assert_int_equal(v->network_mode, CONFIG_NETWORK_USER);
        assert_int_equal(v->port_range[0], 22000);
        assert_int_equal(v->port_range[1], 22999);
        assert_int_equal(v->boot_timeout, 120);
        assert_int_equal(v->launch_timeout, 600);

        const struct config_static_node *n = &config_find_provider(c, "s")->pools[0].nodes[0];
        assert_string_equal(n->username, "zuul");
        assert_string_equal(n->python_path, "auto");
        assert_int_equal(n->timeout, 5);
        assert_int_equal(n->connection_port, 22);
        assert_int_equal(n->max_parallel_jobs, 1);
        assert_true(n->host_key_checking);
        config_free(c);
        config_diags_clear(&d);
}

/* Every key of all-keys.yaml lands in its field; pool and label inheritance resolved. */
static void test_all_keys_parsed(void **state) {
        struct config *c = load_ok("all-keys.yaml", NULL);
        assert_int_equal(c->webapp_port, 8080);
        assert_int_equal(c->build_log_retention, -1);
        assert_true(c->zk_timeout == 30.5);
        assert_int_equal(c->max_hold_age, 86400);
        assert_int_equal(c->n_tenant_limits, 1);
        assert_int_equal(c->tenant_limits[0].max_volume_gb, 500);
        assert_string_equal(config_strmap_get(&c->tenant_limits[0].other, "gpus"), "2");
        assert_int_equal(config_find_label(c, "cloudy")->min_ready, -1);
        const struct config_diskimage *img = config_find_diskimage(c, "img");
        assert_string_equal(img->release, "22");
        assert_true(img->delete_after_upload);
        assert_int_equal(img->needed_formats.n, 2);     /* explicit formats win */
        const struct config_provider *os = config_find_provider(c, "os1");
        assert_int_equal(os->max_concurrency, 0);       /* 0 = handle no requests, kept */
        assert_true(os->rate == 0.5);
        assert_true(os->clean_floating_ips);
        assert_int_equal(os->diskimages[0].connection_port, 5986);      /* winrm default */
        assert_int_equal(os->diskimages[0].config_drive, 0);
        assert_string_equal(os->cloud_images[0].image_id, "0123-abcd");
        assert_int_equal(os->cloud_images[0].connection_port, 2022);
        const struct config_pool *p1 = &os->pools[0];
        assert_int_equal(p1->max_servers, 0);
        assert_int_equal(p1->max_volume_gb, 1000);
        assert_string_equal(config_strmap_get(&p1->node_attributes, "executor-zone"), "east");
        assert_int_equal(p1->priority, 10);
        assert_string_equal(p1->labels[0].networks.items[0], "net2");   /* label overrides pool */
        assert_string_equal(p1->labels[1].networks.items[0], "net1");   /* inherited from pool */
        assert_true(p1->labels[0].host_key_checking);
        assert_false(p1->labels[1].host_key_checking);                  /* inherited from pool */
        assert_string_equal(config_strmap_get(&p1->labels[0].dynamic_instance_properties, "tenant"),
                            "{request.tenant_name}");
        const struct config_static_node *n = &config_find_provider(c, "st1")->pools[0].nodes[0];
        assert_int_equal(n->host_keys.n, 2);
        assert_int_equal(n->connection_port, 2200);
        const struct config_provider *lv = config_find_provider(c, "lv1");
        assert_int_equal(lv->network_mode, CONFIG_NETWORK_NETWORK);
        assert_string_equal(lv->network, "default");
        assert_int_equal(lv->port_range[1], 30010);
        assert_int_equal(lv->pools[0].labels[0].memory, 4096);
        assert_int_equal(lv->pools[0].labels[0].boot_timeout, 240);
        assert_int_equal(lv->pools[0].labels[0].disk_size, 20);
        _cleanup_free_ char *hosts = config_zookeeper_hosts(c);
        assert_string_equal(hosts, "zk1.example.com:2181,[2001:db8::1]:2281/nodepool");
        config_free(c);
}

/* parent chains: elements appended root→leaf, env-vars merged, scalars overridden, abstract not inherited. */
static void test_diskimage_chain_flattened(void **state) {
        struct config *c = load_ok("chains.yaml", NULL);
        const struct config_diskimage *leaf = config_find_diskimage(c, "leaf");
        assert_int_equal(leaf->elements.n, 3);
        assert_string_equal(leaf->elements.items[0], "root-element");
        assert_string_equal(leaf->elements.items[1], "middle-element");
        assert_string_equal(leaf->elements.items[2], "leaf-element");
        assert_string_equal(config_strmap_get(&leaf->env_vars, "SHARED"), "leaf");
        assert_string_equal(config_strmap_get(&leaf->env_vars, "ROOT_ONLY"), "1");
        assert_string_equal(config_strmap_get(&leaf->env_vars, "LEAF_ONLY"), "1");
        assert_int_equal(leaf->rebuild_age, 100);
        assert_int_equal(leaf->build_timeout, 200);
        assert_string_equal(leaf->username, "leafuser");
        assert_false(leaf->abstract);
        assert_string_equal(leaf->parent, "middle");
        assert_true(config_find_diskimage(c, "middle")->abstract);
        assert_int_equal(config_find_diskimage(c, "middle")->elements.n, 2);
        config_free(c);
}

/* %(NODEPOOL_x) is replaced from the environment; other %(...) text is kept. */
static void test_env_substitution(void **state) {
        setenv("NODEPOOL_TEST_LISTEN", "127.0.0.2", 1);
        setenv("NODEPOOL_TEST_ZK_HOST", "zk.internal", 1);
        setenv("NODEPOOL_TEST_CHROOT", "root", 1);
        struct config *c = load_ok("env.yaml", NULL);
        assert_string_equal(c->webapp_listen_address, "127.0.0.2");
        assert_string_equal(c->zk_servers[0].host, "zk.internal");
        assert_string_equal(c->labels[0].name, "label-%(NOT_NODEPOOL_VAR)");
        _cleanup_free_ char *hosts = config_zookeeper_hosts(c);
        assert_string_equal(hosts, "zk.internal:2181/root/sub");
        config_free(c);
        unsetenv("NODEPOOL_TEST_ZK_HOST");
        struct config_diags d = {};
        _cleanup_free_ char *p = path_of("env.yaml");
        struct config *bad = NULL;
        assert_int_equal(config_load(p, NULL, &bad, &d), -EINVAL);
        assert_null(bad);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.items[0].line, 5);
        assert_int_equal(d.items[0].column, 11);
        assert_string_equal(d.items[0].message, "environment variable 'NODEPOOL_TEST_ZK_HOST' is not set");
        config_diags_clear(&d);
}

/* A quoted scalar made of a %(NODEPOOL_x) reference is typed by its value
 * ("%(" cannot start a plain YAML scalar); a literal quoted number stays an error. */
static void test_env_reference_typed_by_value(void **state) {
        setenv("NODEPOOL_TEST_PORT", "2999", 1);
        struct config_diags d = {};
        struct config *c = load_str("zookeeper-servers: [{host: zk, port: \"%(NODEPOOL_TEST_PORT)\"}]\n", &d);
        assert_non_null(c);
        assert_int_equal(c->zk_servers[0].port, 2999);
        config_free(c);
        setenv("NODEPOOL_TEST_PORT", "many", 1);
        c = load_str("zookeeper-servers: [{host: zk, port: \"%(NODEPOOL_TEST_PORT)\"}]\n", &d);
        assert_null(c);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.items[0].message, "'port' in zookeeper-servers entry #1: expected an integer, got 'many'");
        config_diags_clear(&d);
        c = load_str("zookeeper-servers: [{host: zk, port: \"2181\"}]\n", &d);
        assert_null(c);
        assert_int_equal(d.n, 1);
        config_diags_clear(&d);
        unsetenv("NODEPOOL_TEST_PORT");
}

/* An empty mapping (meta: {}) loads and canonicalises (regression: memcpy from NULL). */
static void test_empty_map_value(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("labels: [{name: l}]\n"
                                    "diskimages: [{name: img, elements: [vm], metadata: {}}]\n"
                                    "providers:\n"
                                    "  - name: p\n"
                                    "    driver: libvirt\n"
                                    "    diskimages: [{name: img}]\n"
                                    "    pools: [{name: main, node-attributes: {}, labels: [{name: l, diskimage: img}]}]\n",
                                    &d);
        assert_int_equal(d.n, 0);
        assert_non_null(c);
        assert_non_null(strstr(c->providers[0].canonical, "{}"));
        config_free(c);
}

/* The secure file replaces zookeeper-servers and merges diskimage env-vars by name. */
static void test_secure_merge(void **state) {
        struct config *c = load_ok("secure-main.yaml", "secure.yaml");
        assert_int_equal(c->n_zk_servers, 2);
        _cleanup_free_ char *hosts = config_zookeeper_hosts(c);
        assert_string_equal(hosts, "secret1.example.com:2281,secret2.example.com:2282");
        const struct config_diskimage *img = config_find_diskimage(c, "img");
        assert_string_equal(config_strmap_get(&img->env_vars, "SECRET_TOKEN"), "hunter2");
        assert_string_equal(config_strmap_get(&img->env_vars, "PUBLIC"), "overridden");
        config_free(c);
}

/* Diagnostics: exact positions, file order, all at once; errors in the secure file name it. */
static void test_diagnostics_positions_and_order(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("providers:\n"
                                    "  - name: p\n"
                                    "    driver: libvirt\n"
                                    "    bogus: 1\n"
                                    "labels:\n"
                                    "  - name: x\n"
                                    "    min-ready: many\n",
                                    &d);
        assert_null(c);
        assert_int_equal(d.n, 2);
        assert_int_equal(d.items[0].line, 4);
        assert_int_equal(d.items[0].column, 5);
        assert_string_equal(d.items[0].message, "unknown key 'bogus' in provider 'p'");
        assert_int_equal(d.items[1].line, 7);
        assert_int_equal(d.items[1].column, 16);
        assert_string_equal(d.items[1].message, "'min-ready' in label 'x': expected an integer, got 'many'");
        config_diags_clear(&d);

        _cleanup_free_ char *m = path_of("secure-main.yaml"), *s = path_of("secure-bad.yaml");
        assert_int_equal(config_load(m, s, &c, &d), -EINVAL);
        assert_int_equal(d.n, 3);
        for (size_t i = 0; i < d.n; i++) assert_string_equal(d.items[i].file, s);
        assert_int_equal(d.items[1].line, 4);
        config_diags_clear(&d);
}

/* zookeeper-tls: readable files load (relative paths made absolute against the
 * working directory) and reach zk_new() as struct zk_tls; a missing file, a
 * directory, a comma (the C client's separator) or a missing key is an error at
 * its position; without zookeeper-tls there is no TLS. */
static void test_zookeeper_tls_files_are_checked(void **state) {
        char dir[] = "/tmp/poold-test-tls-XXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *ca = xasprintf("%s/ca.pem", dir), *crt = xasprintf("%s/c.crt", dir),
                            *key = xasprintf("%s/c.key", dir), *cwd = getcwd(NULL, 0);
        const char *files[] = { ca, crt, key };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                FILE *f = fopen(files[i], "w");
                assert_non_null(f);
                fputs("-----BEGIN CERTIFICATE-----\n", f);
                fclose(f);
        }
        assert_int_equal(chdir(dir), 0);

        struct config_diags d = {};
        _cleanup_free_ char *yaml = xasprintf("zookeeper-servers: [{host: zk}]\n"
                                              "zookeeper-tls:\n  ca: %s\n  cert: c.crt\n  key: %s\n",
                                              ca, key);
        struct config *c = load_str(yaml, &d);
        assert_non_null(c);
        assert_int_equal(d.n, 0);
        struct zk_tls buf;
        const struct zk_tls *t = config_zookeeper_tls(c, &buf);
        assert_non_null(t);
        assert_string_equal(t->ca, ca);
        assert_string_equal(t->cert, crt);
        assert_string_equal(t->key, key);
        config_free(c);

        c = load_str("zookeeper-servers: [{host: zk}]\n"
                     "zookeeper-tls:\n  ca: missing.pem\n  cert: .\n  key: a,b\n",
                     &d);
        assert_null(c);
        assert_int_equal(d.n, 3);
        assert_int_equal(d.items[0].line, 3);
        assert_int_equal(d.items[0].column, 7);
        assert_string_equal(d.items[0].message,
                            "'ca' in zookeeper-tls: cannot read 'missing.pem': No such file or directory");
        assert_string_equal(d.items[1].message, "'cert' in zookeeper-tls: '.' is not a regular file");
        assert_string_equal(d.items[2].message,
                            "'key' in zookeeper-tls: 'a,b' has a comma, which the ZooKeeper C client cannot take");
        config_diags_clear(&d);

        c = load_str("zookeeper-tls:\n  ca: c.crt\n  cert: c.crt\n", &d);
        assert_null(c);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.items[0].message, "missing required key 'key' in zookeeper-tls");
        config_diags_clear(&d);

        c = load_str("zookeeper-servers: [{host: zk}]\n", &d);
        assert_non_null(c);
        assert_null(config_zookeeper_tls(c, &buf));
        config_free(c);

        assert_int_equal(chdir(cwd), 0);
        for (size_t i = 0; i < ELEMENTSOF(files); i++) unlink(files[i]);
        rmdir(dir);
}

/* Provider equality ignores key order/formatting but sees any value change. */
static void test_provider_equal(void **state) {
        struct config_diags d = {};
        struct config *a = load_str("providers: [{name: p, driver: static, priority: 5}]\n", &d);
        struct config *b = load_str("providers:\n  - driver: static\n    priority: 5\n    name: p\n", &d);
        struct config *x = load_str("providers: [{name: p, driver: static, priority: 6}]\n", &d);
        assert_int_equal(d.n, 0);
        assert_true(config_provider_equal(&a->providers[0], &b->providers[0]));
        assert_false(config_provider_equal(&a->providers[0], &x->providers[0]));
        config_free(a);
        config_free(b);
        config_free(x);
}

/* Hostile input: alias expansion ("billion laughs") stops at the node budget
 * with an error; deep nesting is bounded. */
static void test_hostile_yaml_bounded(void **state) {
        struct config_diags d = {};
        const char *laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n"
                             "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                             "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                             "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                             "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        assert_null(load_str(laughs, &d));
        assert_int_equal(d.n, 1);
        assert_non_null(strstr(d.items[0].message, "too many YAML nodes (more than 50000) expanding alias *d"));
        config_diags_clear(&d);

        size_t depth = 200;
        char *deep = xmalloc(2 * depth + 1);
        memset(deep, '[', depth);
        memset(deep + depth, ']', depth);
        deep[2 * depth] = 0;
        assert_null(load_str(deep, &d));
        assert_int_equal(d.n, 1);
        assert_string_equal(d.items[0].message, "nesting deeper than 64 levels");
        free(deep);
        config_diags_clear(&d);
}

/* Nodepool loads with PyYAML's safe_load: anchors, aliases and `<<` merge keys
 * work as there (explicit keys win, then earlier merged maps); a bad alias is
 * an error at its position. */
static void test_yaml_anchors_aliases_and_merge_keys(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("labels:\n"
                                    "  - &small {name: small, min-ready: 2}\n"
                                    "  - name: big\n"
                                    "    <<: *small\n"
                                    "  - {<<: [{name: tiny, min-ready: 7}, *small], max-ready-age: 60}\n"
                                    "providers:\n"
                                    "  - name: s\n"
                                    "    driver: static\n"
                                    "    pools:\n"
                                    "      - &pool {name: main, nodes: [{name: h1, labels: [small]}]}\n"
                                    "  - name: t\n"
                                    "    driver: static\n"
                                    "    pools: [*pool]\n",
                                    &d);
        assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_ERROR), 0);
        assert_non_null(c);
        assert_int_equal(c->n_labels, 3);
        assert_string_equal(c->labels[0].name, "small");
        assert_int_equal(c->labels[0].min_ready, 2);
        assert_string_equal(c->labels[1].name, "big"); /* explicit key wins over the merged one */
        assert_int_equal(c->labels[1].min_ready, 2);   /* merged */
        assert_string_equal(c->labels[2].name, "tiny"); /* the earlier merged map wins */
        assert_int_equal(c->labels[2].min_ready, 7);
        assert_int_equal(c->labels[2].max_ready_age, 60);
        assert_int_equal(c->n_providers, 2);
        assert_string_equal(c->providers[1].pools[0].name, "main");
        assert_int_equal(c->providers[1].pools[0].n_nodes, 1);
        config_free(c);
        config_diags_clear(&d);

        assert_null(load_str("labels: [*nowhere]\n", &d));
        assert_int_equal(d.n, 1);
        assert_int_equal(d.items[0].line, 1);
        assert_int_equal(d.items[0].column, 10);
        assert_string_equal(d.items[0].message, "alias *nowhere has no anchor before it");
        config_diags_clear(&d);

        assert_null(load_str("labels: [{name: a, <<: [x]}]\n", &d));
        assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_ERROR), 1);
        assert_string_equal(d.items[0].message, "merge key '<<' needs a mapping or a list of mappings");
        config_diags_clear(&d);
}

/* Load tests/configs/NAME into *ret; the diagnostics stay in D. */
static int load_file(const char *name, struct config **ret, struct config_diags *d) {
        _cleanup_free_ char *p = path_of(name);
        return config_load(p, NULL, ret, d);
}

/* A provider of a driver poold leaves to another launcher is kept apart, with
 * only its name, driver, pools and their labels, and gets exactly one warning. */
static void test_foreign_provider_kept_apart(void **state) {
        struct config_diags d = {};
        struct config *c = NULL;
        assert_int_equal(load_file("foreign-aws.yaml", &c, &d), 0);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.items[0].severity, CONFIG_SEVERITY_WARNING);
        assert_int_equal(d.items[0].line, 17);
        assert_int_equal(d.items[0].column, 5);
        assert_non_null(strstr(d.items[0].message, "provider 'ec2-us-west-2' uses driver 'aws'"));
        assert_int_equal(c->n_providers, 1);    /* only the static one runs in poold */
        assert_string_equal(c->providers[0].name, "rack");
        assert_null(config_find_provider(c, "ec2-us-west-2"));
        assert_int_equal(c->n_foreign_providers, 1);
        const struct config_foreign_provider *fp = &c->foreign_providers[0];
        assert_string_equal(fp->name, "ec2-us-west-2");
        assert_string_equal(fp->driver, "aws");
        assert_int_equal(fp->n_pools, 1);
        assert_string_equal(fp->pools[0].name, "main");
        assert_int_equal(fp->pools[0].labels.n, 4);
        assert_string_equal(fp->pools[0].labels.items[0], "ubuntu-jammy");
        assert_string_equal(fp->pools[0].labels.items[3], "dib-image");
        config_free(c);
        config_diags_clear(&d);
}

/* Every foreign driver's sample (adapted from Nodepool's fixtures) loads with one
 * warning and no error, and is recorded under its driver. */
static void test_every_foreign_driver_sample_loads(void **state) {
        static const char *const drivers[] = {
                "aws", "azure", "gce", "ibmvpc", "kubernetes", "openshift", "openshiftpods",
        };
        for (size_t i = 0; i < ELEMENTSOF(drivers); i++) {
                _cleanup_free_ char *name = xasprintf("foreign-%s.yaml", drivers[i]);
                struct config_diags d = {};
                struct config *c = NULL;
                int r = load_file(name, &c, &d);
                if (r != 0) config_diags_print(&d, stderr);
                assert_int_equal(r, 0);
                assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_ERROR), 0);
                assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_WARNING), 1);
                bool found = false;
                for (size_t k = 0; k < c->n_foreign_providers; k++)
                        found = found || strcmp(c->foreign_providers[k].driver, drivers[i]) == 0;
                assert_true(found);
                config_free(c);
                config_diags_clear(&d);
        }
}

/* config_label_served_by_poold / config_label_foreign_only over poold's own
 * providers (openstack labels, static nodes), foreign ones, both and neither. */
static void test_label_served_by_poold_or_foreign_only(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("labels: [{name: both}, {name: os-only}, {name: static-only}, {name: aws-only},\n"
                                    "         {name: k8s-only}, {name: nowhere}, {name: disabled}]\n"
                                    "providers:\n"
                                    "  - name: os\n"
                                    "    cloud: c\n"
                                    "    cloud-images: [{name: img}]\n"
                                    "    pools:\n"
                                    "      - name: main\n"
                                    "        labels:\n"
                                    "          - {name: both, cloud-image: img, min-ram: 1}\n"
                                    "          - {name: os-only, cloud-image: img, min-ram: 1}\n"
                                    "      - name: off\n"
                                    "        max-servers: 0\n"
                                    "        labels: [{name: disabled, cloud-image: img, min-ram: 1}]\n"
                                    "  - name: st\n"
                                    "    driver: static\n"
                                    "    pools: [{name: p, nodes: [{name: h, labels: static-only}]}]\n"
                                    "  - name: ec2\n"
                                    "    driver: aws\n"
                                    "    region-name: r\n"
                                    "    cloud-images: [{name: ami, image-id: ami-1, username: u}]\n"
                                    "    pools:\n"
                                    "      - name: main\n"
                                    "        labels:\n"
                                    "          - {name: both, cloud-image: ami, instance-type: t, key-name: k}\n"
                                    "          - {name: aws-only, cloud-image: ami, instance-type: t, key-name: k}\n"
                                    "  - name: k8s\n"
                                    "    driver: kubernetes\n"
                                    "    pools: [{name: main, labels: [{name: k8s-only, type: namespace}]}]\n",
                                    &d);
        if (!c) config_diags_print(&d, stderr);
        assert_non_null(c);
        assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_WARNING), 2);   /* one per foreign provider */
        assert_true(config_label_served_by_poold(c, "both"));
        assert_false(config_label_foreign_only(c, "both"));
        assert_true(config_label_served_by_poold(c, "os-only"));
        assert_false(config_label_foreign_only(c, "os-only"));
        assert_true(config_label_served_by_poold(c, "static-only"));
        assert_false(config_label_foreign_only(c, "static-only"));
        assert_true(config_label_served_by_poold(c, "disabled"));       /* configured, even if max-servers 0 */
        assert_false(config_label_served_by_poold(c, "aws-only"));
        assert_true(config_label_foreign_only(c, "aws-only"));
        assert_true(config_label_foreign_only(c, "k8s-only"));
        assert_false(config_label_served_by_poold(c, "nowhere"));       /* in no pool at all: poold's to decline */
        assert_false(config_label_foreign_only(c, "nowhere"));
        assert_false(config_label_foreign_only(c, "undefined"));
        assert_false(config_label_served_by_poold(NULL, "both"));
        assert_false(config_label_foreign_only(c, NULL));
        config_free(c);
        config_diags_clear(&d);

        /* metastatic is poold's own: its labels and their backing labels are poold's. */
        assert_int_equal(load_file("metastatic.yaml", &c, &d), 0);
        assert_true(config_label_served_by_poold(c, "user-label"));
        assert_false(config_label_foreign_only(c, "user-label"));
        assert_true(config_label_served_by_poold(c, "backing-label"));
        config_free(c);
        config_diags_clear(&d);
}

/* A metastatic provider (Nodepool's fixture) is parsed into a poold provider
 * with Nodepool's defaults: backing label, slots, grace and retention times. */
static void test_metastatic_provider_parsed_with_defaults(void **state) {
        struct config_diags d = {};
        struct config *c = NULL;
        assert_int_equal(load_file("metastatic.yaml", &c, &d), 0);
        assert_int_equal(c->n_foreign_providers, 0);
        const struct config_provider *p = config_find_provider(c, "meta-provider");
        assert_non_null(p);
        assert_int_equal(p->driver, CONFIG_DRIVER_METASTATIC);
        assert_string_equal(config_driver_to_string(p->driver), "metastatic");
        assert_int_equal(p->boot_timeout, 120);
        assert_int_equal(p->launch_timeout, 3600);
        assert_int_equal(p->n_pools, 1);
        const struct config_pool *pool = &p->pools[0];
        assert_int_equal(pool->max_servers, 10);
        assert_int_equal(pool->n_labels, 2);
        const struct config_pool_label *a = &pool->labels[0], *b = &pool->labels[1];
        assert_string_equal(a->name, "user-label");
        assert_string_equal(a->backing_label, "backing-label");
        assert_int_equal(a->max_parallel_jobs, 2);
        assert_int_equal(a->grace_time, 2);
        assert_int_equal(a->max_age, 300);
        assert_int_equal(a->min_retention_time, 0);
        assert_int_equal(a->vcpus, 0);
        assert_int_equal(a->memory, 0);
        assert_string_equal(b->backing_label, "backing-label-min-retention");
        assert_int_equal(b->max_parallel_jobs, 1);
        assert_int_equal(b->min_retention_time, 300);
        assert_int_equal(b->max_age, 0);
        config_free(c);
        config_diags_clear(&d);
}

/* A key poold accepts but does not act on (nodepool-id) is warned about once
 * per occurrence, at the key; the volume quota keys and a tenant's custom
 * resource key, which poold acts on, load silently and are stored. */
static void test_unacted_keys_warned_per_occurrence(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("labels: [{name: l}]\n"
                                    "providers:\n"
                                    "  - name: os\n"
                                    "    cloud: c\n"
                                    "    nodepool-id: x\n"
                                    "    cloud-images: [{name: img}]\n"
                                    "    pools:\n"
                                    "      - name: a\n"
                                    "        max-volumes: 5\n"
                                    "        max-volume-gb: 50\n"
                                    "        labels: [{name: l, cloud-image: img, min-ram: 1, key-name: k}]\n"
                                    "        auto-floating-ip: false\n"
                                    "  - name: os2\n"
                                    "    cloud: c\n"
                                    "    nodepool-id: y\n"
                                    "tenant-resource-limits:\n"
                                    "  - {tenant-name: t, max-servers: 3, max-volumes: 2, max-volume-gb: 9, gpus: 2}\n",
                                    &d);
        assert_non_null(c);
        assert_int_equal(d.n, 2);
        assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_WARNING), 2);
        assert_int_equal(d.items[0].line, 5);
        assert_int_equal(d.items[0].column, 5);
        assert_non_null(strstr(d.items[0].message,
                               "'nodepool-id' is accepted for compatibility but poold does not act on it yet"));
        assert_int_equal(d.items[1].line, 15);
        assert_int_equal(d.items[1].column, 5);
        assert_int_equal(config_find_pool(&c->providers[0], "a")->max_volumes, 5);
        assert_int_equal(config_find_pool(&c->providers[0], "a")->max_volume_gb, 50);
        assert_false(config_find_pool(&c->providers[0], "a")->auto_floating_ip);
        assert_int_equal(c->tenant_limits[0].max_servers, 3);
        assert_int_equal(c->tenant_limits[0].max_volumes, 2);
        assert_int_equal(c->tenant_limits[0].max_volume_gb, 9);
        assert_int_equal(c->tenant_limits[0].other.n, 1);
        assert_string_equal(c->tenant_limits[0].other.items[0].key, "gpus");
        assert_string_equal(c->tenant_limits[0].other.items[0].value, "2");
        config_free(c);
        config_diags_clear(&d);
}

/* Pool max-volumes / max-volume-gb of 0 are no limit, as in Nodepool (its
 * quota applies them only when truthy), with a warning at each key. */
static void test_pool_volume_limits_of_0_are_unlimited_as_in_nodepool(void **state) {
        (void)state;
        struct config_diags d = {};
        struct config *c = load_str("labels: [{name: l}]\n"
                                    "providers:\n"
                                    "  - name: os\n"
                                    "    cloud: c\n"
                                    "    cloud-images: [{name: img}]\n"
                                    "    pools:\n"
                                    "      - name: a\n"
                                    "        max-volumes: 0\n"
                                    "        max-volume-gb: 0\n"
                                    "        labels: [{name: l, cloud-image: img, min-ram: 1}]\n",
                                    &d);
        assert_non_null(c);
        assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_WARNING), 2);
        assert_int_equal(d.items[0].line, 8);
        assert_int_equal(d.items[0].column, 9);
        assert_non_null(strstr(d.items[0].message, "'max-volumes: 0' means no limit, as in Nodepool"));
        assert_int_equal(d.items[1].line, 9);
        assert_non_null(strstr(d.items[1].message, "'max-volume-gb: 0' means no limit"));
        assert_int_equal(config_find_pool(&c->providers[0], "a")->max_volumes, CONFIG_UNLIMITED);
        assert_int_equal(config_find_pool(&c->providers[0], "a")->max_volume_gb, CONFIG_UNLIMITED);
        config_free(c);
        config_diags_clear(&d);
}

/* The builder's keys poold acts on load silently and are stored:
 * post-upload-hook (OpenStack, and poold's libvirt driver), diskimage
 * delete-after-upload and keep-formats. */
static void test_builder_keys_acted_on_load_without_warning(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("labels: [{name: l}]\n"
                                    "diskimages:\n"
                                    "  - {name: img, delete-after-upload: true, keep-formats: [qcow2], formats: [qcow2, raw]}\n"
                                    "providers:\n"
                                    "  - name: os\n"
                                    "    cloud: c\n"
                                    "    post-upload-hook: /usr/local/bin/os-hook\n"
                                    "    diskimages: [{name: img}]\n"
                                    "  - name: lv\n"
                                    "    driver: libvirt\n"
                                    "    post-upload-hook: /usr/local/bin/lv-hook\n"
                                    "    diskimages: [{name: img}]\n",
                                    &d);
        assert_non_null(c);
        assert_int_equal(d.n, 0);
        const struct config_diskimage *di = config_find_diskimage(c, "img");
        assert_true(di->delete_after_upload);
        assert_int_equal(di->keep_formats.n, 1);
        assert_string_equal(di->keep_formats.items[0], "qcow2");
        assert_string_equal(config_find_provider(c, "os")->post_upload_hook, "/usr/local/bin/os-hook");
        assert_string_equal(config_find_provider(c, "lv")->post_upload_hook, "/usr/local/bin/lv-hook");
        config_free(c);
        config_diags_clear(&d);
}

/* Static pools take Nodepool's max-servers: ≤0 is stored as 0 (pool disabled),
 * a positive value is stored and warned about (it has no effect on a static pool). */
static void test_static_pool_max_servers(void **state) {
        struct config_diags d = {};
        struct config *c = NULL;
        assert_int_equal(load_file("static-max-servers.yaml", &c, &d), 0);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.items[0].severity, CONFIG_SEVERITY_WARNING);
        assert_int_equal(d.items[0].line, 16);
        const struct config_provider *p = config_find_provider(c, "rack");
        assert_int_equal(config_find_pool(p, "disabled")->max_servers, 0);
        assert_int_equal(config_find_pool(p, "main")->max_servers, 4);
        assert_int_equal(config_find_pool(p, "negative")->max_servers, 0);
        assert_int_equal(config_find_pool(p, "main")->n_nodes, 1);
        config_free(c);
        config_diags_clear(&d);
}

/* The table-driven reader keeps nested positions and names: a Kubernetes label
 * with a raw spec takes only the spec variant's keys; an env entry missing its
 * value is reported inside it. */
static void test_foreign_nested_errors(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("labels: [{name: a}, {name: b}]\n"
                                    "providers:\n"
                                    "  - name: k\n"
                                    "    driver: kubernetes\n"
                                    "    pools:\n"
                                    "      - name: main\n"
                                    "        labels:\n"
                                    "          - {name: a, type: pod, spec: {}, cpu: 1}\n"
                                    "          - {name: b, type: pod, env: [{name: X}], gpu: many}\n"
                                    "          - {name: a, type: namespace}\n",
                                    &d);
        assert_null(c);
        assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_ERROR), 4);
        const char *want[] = {
                "unknown key 'cpu' in label 'a' of pool 'main' of provider 'k' (not allowed with 'spec')",
                "missing required key 'value' in env entry 'X' of label 'b' of pool 'main' of provider 'k'",
                "'gpu' in label 'b' of pool 'main' of provider 'k': expected a number, got 'many'",
                "duplicate label 'a' in pool 'main' of provider 'k' (first defined at line 8)",
        };
        size_t k = 0;
        for (size_t i = 0; i < d.n; i++)
                if (d.items[i].severity == CONFIG_SEVERITY_ERROR) assert_string_equal(d.items[i].message, want[k++]);
        config_diags_clear(&d);
}

/* diskimages[].poold.verify: off when absent (Nodepool files unchanged), on
 * with defaults for an empty `verify:`, every key read and inherited by a
 * child, and a bad value reported at FILE:LINE:COL with the key's path. */
static void test_diskimage_poold_verify(void **state) {
        struct config_diags d = {};
        struct config *c = load_str("diskimages:\n"
                                    "  - name: plain\n"
                                    "  - name: bare\n"
                                    "    poold:\n"
                                    "      verify:\n"
                                    "  - name: base\n"
                                    "    abstract: true\n"
                                    "    username: zuul2\n"
                                    "    poold:\n"
                                    "      verify:\n"
                                    "        timeout: 120\n"
                                    "        username: root\n"
                                    "        private-key: /k/id\n"
                                    "        commands: [\"python3 --version\", \"true\"]\n"
                                    "  - name: child\n"
                                    "    parent: base\n",
                                    &d);
        assert_non_null(c);
        assert_int_equal(config_diags_count(&d, CONFIG_SEVERITY_ERROR), 0);
        const struct config_diskimage *plain = config_find_diskimage(c, "plain");
        assert_false(plain->verify.enabled);
        const struct config_diskimage *bare = config_find_diskimage(c, "bare");
        assert_true(bare->verify.enabled);
        assert_int_equal(bare->verify.timeout, 900);
        assert_null(bare->verify.username);
        assert_null(bare->verify.private_key);
        assert_int_equal(bare->verify.commands.n, 0);
        const struct config_diskimage *child = config_find_diskimage(c, "child");
        assert_true(child->verify.enabled);
        assert_int_equal(child->verify.timeout, 120);
        assert_string_equal(child->verify.username, "root");
        assert_string_equal(child->verify.private_key, "/k/id");
        assert_int_equal(child->verify.commands.n, 2);
        assert_string_equal(child->verify.commands.items[0], "python3 --version");
        config_free(c);
        config_diags_clear(&d);

        c = load_str("diskimages:\n"
                     "  - name: img\n"
                     "    poold:\n"
                     "      verify:\n"
                     "        timeout: soon\n"
                     "        command: [x]\n"
                     "  - name: img2\n"
                     "    poold: {verify: [1]}\n"
                     "  - name: img3\n"
                     "    poold: {verfy: {}}\n",
                     &d);
        assert_null(c);
        assert_int_equal(d.n, 4);
        assert_string_equal(d.items[0].file, "mem.yaml");
        assert_int_equal(d.items[0].line, 5);
        assert_int_equal(d.items[0].column, 18);
        assert_string_equal(d.items[0].message,
                            "'timeout' in 'verify' of 'poold' of diskimage 'img': expected an integer, got 'soon'");
        assert_int_equal(d.items[1].line, 6);
        assert_int_equal(d.items[1].column, 9);
        assert_string_equal(d.items[1].message, "unknown key 'command' in 'verify' of 'poold' of diskimage 'img'");
        assert_int_equal(d.items[2].line, 8);
        assert_string_equal(d.items[2].message, "'verify' in 'poold' of diskimage 'img2': expected a mapping, got a list");
        assert_int_equal(d.items[3].line, 10);
        assert_string_equal(d.items[3].message, "unknown key 'verfy' in 'poold' of diskimage 'img3'");
        config_diags_clear(&d);

        c = load_str("diskimages:\n  - name: img\n    poold: {verify: {timeout: 0}}\n", &d);
        assert_null(c);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.items[0].line, 3);
        config_diags_clear(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults_match_nodepool_code),
                cmocka_unit_test(test_yaml_anchors_aliases_and_merge_keys),
                cmocka_unit_test(test_all_keys_parsed),
                cmocka_unit_test(test_diskimage_chain_flattened),
                cmocka_unit_test(test_env_substitution),
                cmocka_unit_test(test_env_reference_typed_by_value),
                cmocka_unit_test(test_empty_map_value),
                cmocka_unit_test(test_secure_merge),
                cmocka_unit_test(test_diagnostics_positions_and_order),
                cmocka_unit_test(test_zookeeper_tls_files_are_checked),
                cmocka_unit_test(test_provider_equal),
                cmocka_unit_test(test_hostile_yaml_bounded),
                cmocka_unit_test(test_foreign_provider_kept_apart),
                cmocka_unit_test(test_every_foreign_driver_sample_loads),
                cmocka_unit_test(test_label_served_by_poold_or_foreign_only),
        cmocka_unit_test(test_metastatic_provider_parsed_with_defaults),
                cmocka_unit_test(test_unacted_keys_warned_per_occurrence),
                cmocka_unit_test(test_pool_volume_limits_of_0_are_unlimited_as_in_nodepool),
                cmocka_unit_test(test_builder_keys_acted_on_load_without_warning),
                cmocka_unit_test(test_static_pool_max_servers),
                cmocka_unit_test(test_foreign_nested_errors),
                cmocka_unit_test(test_diskimage_poold_verify),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
