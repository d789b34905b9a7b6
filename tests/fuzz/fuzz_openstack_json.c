/* fuzz_openstack_json.c — the OpenStack driver's decoders of untrusted API
 * bodies on arbitrary bytes.
 *
 * Proves: openstack_{servers,image,limits,flavors}_from_json, the flavor
 * choice, keystone_catalog_select (on the document, its token.catalog and
 * catalog members), keystone_parse_time, openstack_default_networks and
 * openstack_error_from_response
 * never crash, leak or trip a sanitizer; a failed decode leaves no result
 * and gives a message; a successful one is internally consistent (ids set,
 * tags with keys and values, limits -1 or ≥ 0, a selected URL without a
 * trailing '/'). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "keystone.h"
#include "provider_openstack.h"

#define CHECK(cond)                                                                                    \
        do {                                                                                           \
                if (!(cond)) {                                                                         \
                        fprintf(stderr, "fuzz_openstack_json: check failed: %s (line %d)\n", #cond,   \
                                __LINE__);                                                             \
                        abort();                                                                       \
                }                                                                                      \
        } while (0)

static void check_image(json_t *j) {
        struct provider_image *img = NULL;
        char *msg = NULL;
        if (openstack_image_from_json(j, &img, &msg) < 0) {
                CHECK(!img && msg);
                free(msg);
                return;
        }
        CHECK(img->external_id);
        for (size_t i = 0; i < img->n_tags; i++)
                CHECK(img->tags[i].key && img->tags[i].value);
        (void)provider_image_tag(img, "nodepool_provider_name");
        provider_image_free(img);
}

static void check_catalog(json_t *cat) {
        static const char *const types[] = { "compute", "image", "network", "identity" };
        static const char *const regions[] = { NULL, "RegionOne", "" };
        static const char *const ifaces[] = { "public", "internal", "admin" };
        for (size_t t = 0; t < 4; t++)
                for (size_t r = 0; r < 3; r++)
                        for (size_t i = 0; i < 3; i++) {
                                char *url = NULL;
                                int k = keystone_catalog_select(cat, types[t], regions[r], ifaces[i], &url);
                                if (k < 0) {
                                        CHECK(!url && (k == -ENOENT || k == -EINVAL));
                                        continue;
                                }
                                size_t n = strlen(url);
                                CHECK(n == 0 || url[n - 1] != '/');
                                free(url);
                        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* Error bodies are any bytes; the status comes from the first byte. */
        long status = size ? 400 + (long)(data[0] % 200) : 500;
        char *msg = NULL;
        int r = openstack_error_from_response("compute", status, (const char *)data, size, &msg);
        CHECK(r < 0 && msg && strncmp(msg, "compute: HTTP ", 14) == 0);
        free(msg);

        json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!j)
                return 0;

        struct openstack_flavor *fl = NULL;
        size_t nf = 0;
        msg = NULL;
        if (openstack_flavors_from_json(j, &fl, &nf, &msg) < 0) {
                CHECK(!fl && msg);
                free(msg);
                fl = NULL;
                nf = 0;
        } else {
                const struct openstack_flavor *f = openstack_flavor_choose(fl, nf, NULL, 100);
                CHECK(!f || (f->ram_mib >= 100 && !f->disabled));
                f = openstack_flavor_choose(fl, nf, "m1", 0);
                CHECK(!f || !f->disabled);
        }

        struct provider_server **v = NULL;
        size_t n = 0;
        msg = NULL;
        if (openstack_servers_from_json(j, "R1", fl, nf, &v, &n, &msg) < 0) {
                CHECK(!v && msg);
                free(msg);
        } else {
                for (size_t i = 0; i < n; i++) {
                        CHECK(v[i]->external_id);
                        CHECK(v[i]->state >= 0 && v[i]->state < _PROVIDER_SERVER_STATE_MAX);
                        for (size_t t = 0; t < v[i]->n_tags; t++)
                                CHECK(v[i]->tags[t].key && v[i]->tags[t].value);
                }
                provider_server_array_free(v, n);
        }
        openstack_flavors_free(fl, nf);

        struct provider_limits l;
        msg = NULL;
        if (openstack_limits_from_json(j, &l, &msg) < 0) {
                CHECK(msg);
                free(msg);
        } else
                CHECK(l.max_instances >= -1 && l.max_cores >= -1 && l.max_ram_mib >= -1);

        check_image(j);
        json_t *imgs = json_object_get(j, "images"), *it;
        size_t i;
        json_array_foreach(imgs, i, it) check_image(it);

        const char *dn = openstack_default_networks(json_object_get(j, "networks"), false);
        CHECK(strcmp(dn, "auto") == 0 || strcmp(dn, "none") == 0);
        CHECK(strcmp(openstack_default_networks(json_object_get(j, "networks"), true), "auto") == 0);

        check_catalog(j);
        check_catalog(json_object_get(j, "catalog"));
        check_catalog(json_object_get(json_object_get(j, "token"), "catalog"));

        double t;
        const char *ts = json_string_value(json_object_get(json_object_get(j, "token"), "expires_at"));
        if (ts)
                (void)keystone_parse_time(ts, &t);
        if (json_is_string(j))
                (void)keystone_parse_time(json_string_value(j), &t);
        json_decref(j);
        return 0;
}
