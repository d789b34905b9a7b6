/* provider_openstack.c — the OpenStack provider driver (Keystone v3, Nova,
 * Glance v2, Neutron for network names) on libcurl + jansson.
 *
 * DESIGN
 * - clouds.yaml selects the cloud (clouds_yaml.h); one Keystone session per
 *   provider (keystone.h) shared by every thread. open() contacts nothing, so a
 *   cloud that is down or refuses our credentials never stops the launcher from
 *   starting: the ops report it (-EHOSTDOWN / -EACCES) and are retried later.
 * - Every API call goes through os_request(): the `rate` limiter (one slot per
 *   `rate` seconds per provider, shared by all pools and threads), the token
 *   (re-authenticated once on a 401), retries with exponential back-off on 5xx
 *   and transport errors — for POST only when the connection was refused, since
 *   a POST that reached Nova may have created a server (leak cleanup finds
 *   those) — and the mapping of error responses to -errno. Each HTTP attempt
 *   is reported to the daemon's statsd client (provider_params.statsd) under
 *   the names openstacksdk gives it for Nodepool (report_call).
 * - Servers: ONE `GET /servers/detail` per provider serves every get() and
 *   list() for a second (cache under `lock`; a thread that finds a list in
 *   flight waits for it instead of issuing another). A server absent from a
 *   list fetched before our last create() triggers one refresh before -ENOENT.
 * - Flavors are cached for 5 minutes; network names are resolved via Neutron
 *   once per name.
 * - Nova microversion 2.47: the server embeds its flavor (vcpus, ram), and
 *   `networks` may be "none"/"auto" (2.37+). A label without networks gets
 *   "auto" (what openstacksdk sends) unless Neutron shows no network for the
 *   project and no usable auto-allocated-topology: then "none", which boots where
 *   "auto" would be refused (openstack_default_networks).
 * - Error messages quote the cloud's answers. They leave the driver only as
 *   an op's *reterr_msg, and every op in the table at the end passes its
 *   message through keystone_redact() (known secrets and tokens, values of
 *   credential-named keys): an answer that echoes our request (Keystone's
 *   auth body holds the password) never reaches a log or /pool-list. The
 *   driver's own debug lines carry no answer text; those with a URL (from
 *   the catalog) are redacted too. http.c's debug lines still show URLs.
 * - Ownership of resources is metadata: nodepool_provider_name,
 *   nodepool_pool_name, nodepool_node_id, groups (+ instance-properties) on
 *   servers; the same keys as image properties plus the tag "nodepool" on
 *   images, so leaks are found by listing. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "clouds_yaml.h"
#include "http.h"
#include "keystone.h"
#include "log.h"
#include "provider.h"
#include "provider_openstack.h"
#include "redact.h"
#include "statsd.h"

#define OS_COMPUTE_VERSION "2.47"
#define OS_LIST_TTL 1.0              /* seconds a server list serves get()/list() */
#define OS_FLAVOR_TTL 300.0
#define OS_LIST_MAX (32u * 1024 * 1024)
#define OS_ATTEMPTS 4                /* first try + 3 retries */
#define OS_DELETE_TIMEOUT 600.0      /* Nodepool's delete state machine timeout */
#define OS_IMAGE_TAG "nodepool"

/* ------------------------------------------------------------------ pure parts */

void openstack_flavors_free(struct openstack_flavor *v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++) {
                free(v[i].id);
                free(v[i].name);
        }
        free(v);
}

static int bad(char **reterr_msg, const char *fmt, const char *what) _printf_(2, 0);
static int bad(char **reterr_msg, const char *fmt, const char *what) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* callers pass literals; checked via _printf_ */
        return provider_error(reterr_msg, EBADMSG, fmt, what);
#pragma GCC diagnostic pop
}

int openstack_flavors_from_json(json_t *body, struct openstack_flavor **ret, size_t *ret_n, char **reterr_msg) {
        json_t *arr = json_object_get(body, "flavors");
        if (!json_is_array(arr))
                return bad(reterr_msg, "malformed %s response: no flavors array", "flavor list");
        size_t n = json_array_size(arr), k = 0;
        struct openstack_flavor *v = n ? xnew(struct openstack_flavor, n) : NULL;
        size_t i;
        json_t *f;
        json_array_foreach(arr, i, f) {
                const char *id = json_string_value(json_object_get(f, "id"));
                const char *name = json_string_value(json_object_get(f, "name"));
                json_t *ram = json_object_get(f, "ram"), *vcpus = json_object_get(f, "vcpus");
                if (!id || !name || !json_is_integer(ram) || !json_is_integer(vcpus)) {
                        openstack_flavors_free(v, k);
                        return bad(reterr_msg, "malformed %s entry (id, name, ram, vcpus)", "flavor");
                }
                v[k].id = xstrdup(id);
                v[k].name = xstrdup(name);
                v[k].ram_mib = json_integer_value(ram);
                v[k].vcpus = (int)json_integer_value(vcpus);
                v[k].disk_gb = json_integer_value(json_object_get(f, "disk"));
                v[k].disabled = json_is_true(json_object_get(f, "OS-FLV-DISABLED:disabled"));
                k++;
        }
        *ret = v;
        *ret_n = k;
        return 0;
}

const struct openstack_flavor *openstack_flavor_choose(const struct openstack_flavor *v, size_t n,
                                                       const char *flavor_name, long long min_ram) {
        const struct openstack_flavor *best = NULL;
        for (size_t i = 0; i < n; i++) {
                const struct openstack_flavor *f = &v[i];
                if (f->disabled)
                        continue;
                if (min_ram > 0) {
                        if (f->ram_mib < min_ram || (flavor_name && !strstr(f->name, flavor_name)))
                                continue;
                        if (!best || f->ram_mib < best->ram_mib ||
                            (f->ram_mib == best->ram_mib &&
                             (f->vcpus < best->vcpus ||
                              (f->vcpus == best->vcpus && strcmp(f->name, best->name) < 0))))
                                best = f;
                } else if (flavor_name && (strcmp(f->name, flavor_name) == 0 || strcmp(f->id, flavor_name) == 0)) {
                        return f;
                }
        }
        return best;
}

static long long limit_value(json_t *abs, const char *key, bool *ok) {
        json_t *v = json_object_get(abs, key);
        if (!json_is_integer(v)) {
                *ok = false;
                return -1;
        }
        long long x = json_integer_value(v);
        return x < 0 ? -1 : x;
}

int openstack_limits_from_json(json_t *body, struct provider_limits *ret, char **reterr_msg) {
        json_t *abs = json_object_get(json_object_get(body, "limits"), "absolute");
        if (!json_is_object(abs))
                return bad(reterr_msg, "malformed %s response: no limits.absolute", "limits");
        bool ok = true;
        struct provider_limits l = {
                .max_instances = limit_value(abs, "maxTotalInstances", &ok),
                .max_cores = limit_value(abs, "maxTotalCores", &ok),
                .max_ram_mib = limit_value(abs, "maxTotalRAMSize", &ok),
                .max_volumes = -1,
                .max_volume_gb = -1,
        };
        if (!ok)
                return bad(reterr_msg, "malformed %s response: maxTotalInstances/Cores/RAMSize must be integers",
                           "limits");
        json_t *used = json_object_get(abs, "totalRAMUsed");
        l.free_ram_mib = l.max_ram_mib < 0 ? -1 : l.max_ram_mib - (json_is_integer(used) ? json_integer_value(used) : 0);
        if (l.free_ram_mib < -1)
                l.free_ram_mib = 0;
        *ret = l;
        return 0;
}

int openstack_azs_from_json(json_t *body, char ***ret, size_t *ret_n, char **reterr_msg) {
        json_t *info = json_object_get(body, "availabilityZoneInfo");
        if (!json_is_array(info))
                return bad(reterr_msg, "malformed %s response: no availabilityZoneInfo list", "os-availability-zone");
        char **v = xnew(char *, json_array_size(info) + 1);
        size_t n = 0, i;
        json_t *z;
        json_array_foreach(info, i, z) {
                const char *name = json_string_value(json_object_get(z, "zoneName"));
                /* openstacksdk's list_availability_zone_names: available zones only. */
                if (name && *name && json_is_true(json_object_get(json_object_get(z, "zoneState"), "available")))
                        v[n++] = xstrdup(name);
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int openstack_volume_limits_from_json(json_t *body, struct provider_limits *l, char **reterr_msg) {
        json_t *abs = json_object_get(json_object_get(body, "limits"), "absolute");
        if (!json_is_object(abs))
                return bad(reterr_msg, "malformed %s response: no limits.absolute", "volume limits");
        bool ok = true;
        long long maxv = limit_value(abs, "maxTotalVolumes", &ok), maxgb = limit_value(abs, "maxTotalVolumeGigabytes", &ok);
        if (!ok)
                return bad(reterr_msg, "malformed %s response: maxTotalVolumes/VolumeGigabytes must be integers",
                           "volume limits");
        json_t *uv = json_object_get(abs, "totalVolumesUsed"), *ugb = json_object_get(abs, "totalGigabytesUsed");
        l->max_volumes = maxv;
        l->max_volume_gb = maxgb;
        l->used_volumes = json_is_integer(uv) ? MAX(0, json_integer_value(uv)) : 0;
        l->used_volume_gb = json_is_integer(ugb) ? MAX(0, json_integer_value(ugb)) : 0;
        return 0;
}

static bool ipv4_private(const char *a) {
        unsigned b[4];
        if (sscanf(a, "%u.%u.%u.%u", &b[0], &b[1], &b[2], &b[3]) != 4)
                return false;
        return b[0] == 10 || (b[0] == 172 && b[1] >= 16 && b[1] <= 31) || (b[0] == 192 && b[1] == 168) ||
               (b[0] == 100 && b[1] >= 64 && b[1] <= 127) || b[0] == 127 || (b[0] == 169 && b[1] == 254);
}

static void set_once(char **dst, const char *v) {
        if (!*dst && v && *v)
                *dst = xstrdup(v);
}

static void server_addresses(json_t *server, struct provider_server *s) {
        set_once(&s->public_ipv4, json_string_value(json_object_get(server, "accessIPv4")));
        set_once(&s->public_ipv6, json_string_value(json_object_get(server, "accessIPv6")));
        const char *net;
        json_t *addrs;
        /* Floating addresses first: they are the public ones. */
        for (int pass = 0; pass < 2; pass++)
                json_object_foreach(json_object_get(server, "addresses"), net, addrs) {
                        size_t i;
                        json_t *a;
                        json_array_foreach(addrs, i, a) {
                                const char *addr = json_string_value(json_object_get(a, "addr"));
                                const char *type = json_string_value(json_object_get(a, "OS-EXT-IPS:type"));
                                json_int_t ver = json_integer_value(json_object_get(a, "version"));
                                bool floating = type && strcmp(type, "floating") == 0;
                                if (!addr || floating != (pass == 0))
                                        continue;
                                if (ver == 6)
                                        set_once(&s->public_ipv6, addr);
                                else if (floating || !ipv4_private(addr))
                                        set_once(&s->public_ipv4, addr);
                                else
                                        set_once(&s->private_ipv4, addr);
                        }
                }
        set_once(&s->interface_ip, s->public_ipv4);
        set_once(&s->interface_ip, s->public_ipv6);
        set_once(&s->interface_ip, s->private_ipv4);
}

int openstack_server_from_json(json_t *server, const char *region, const struct openstack_flavor *flavors,
                               size_t n_flavors, struct provider_server **ret, char **reterr_msg) {
        const char *id = json_string_value(json_object_get(server, "id"));
        const char *status = json_string_value(json_object_get(server, "status"));
        if (!json_is_object(server) || !id || !status)
                return bad(reterr_msg, "malformed %s: id and status must be strings", "server");
        if (strcmp(status, "DELETED") == 0 || strcmp(status, "SOFT_DELETED") == 0)
                return provider_error(reterr_msg, ENOENT, "server %s is deleted", id);
        _cleanup_(provider_server_freep) struct provider_server *s = xnew(struct provider_server, 1);
        s->external_id = xstrdup(id);
        s->state = strcmp(status, "ACTIVE") == 0  ? PROVIDER_SERVER_ACTIVE
                   : strcmp(status, "ERROR") == 0 ? PROVIDER_SERVER_ERROR
                                                  : PROVIDER_SERVER_BUILDING;
        server_addresses(server, s);
        set_once(&s->az, json_string_value(json_object_get(server, "OS-EXT-AZ:availability_zone")));
        set_once(&s->host_id, json_string_value(json_object_get(server, "hostId")));
        set_once(&s->region, region);
        if (s->state == PROVIDER_SERVER_ERROR)
                set_once(&s->fault, json_string_value(json_object_get(json_object_get(server, "fault"), "message")));
        s->resources.instances = 1;
        json_t *fl = json_object_get(server, "flavor");
        if (json_is_integer(json_object_get(fl, "vcpus"))) {
                s->resources.cores = (int)json_integer_value(json_object_get(fl, "vcpus"));
                s->resources.ram_mib = (int)json_integer_value(json_object_get(fl, "ram"));
        } else {
                const char *fid = json_string_value(json_object_get(fl, "id"));
                for (size_t i = 0; fid && i < n_flavors; i++)
                        if (strcmp(flavors[i].id, fid) == 0) {
                                s->resources.cores = flavors[i].vcpus;
                                s->resources.ram_mib = (int)flavors[i].ram_mib;
                        }
        }
        json_t *md = json_object_get(server, "metadata");
        if (md && !json_is_object(md))
                return bad(reterr_msg, "malformed %s: metadata is not an object", "server");
        size_t n = json_object_size(md), k = 0;
        if (n) {
                s->tags = xnew(struct provider_tag, n);
                const char *key;
                json_t *val;
                json_object_foreach(md, key, val) {
                        if (!json_is_string(val))
                                continue;
                        s->tags[k].key = xstrdup(key);
                        s->tags[k].value = xstrdup(json_string_value(val));
                        k++;
                }
                s->n_tags = k;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int openstack_servers_from_json(json_t *body, const char *region, const struct openstack_flavor *flavors,
                                size_t n_flavors, struct provider_server ***ret, size_t *ret_n, char **reterr_msg) {
        json_t *arr = json_object_get(body, "servers");
        if (!json_is_array(arr))
                return bad(reterr_msg, "malformed %s response: no servers array", "server list");
        size_t n = json_array_size(arr), k = 0;
        struct provider_server **v = xnew(struct provider_server *, n ? n : 1);
        size_t i;
        json_t *sj;
        json_array_foreach(arr, i, sj) {
                int r = openstack_server_from_json(sj, region, flavors, n_flavors, &v[k], reterr_msg);
                if (r == -ENOENT) {
                        if (reterr_msg) {
                                free(*reterr_msg);
                                *reterr_msg = NULL;
                        }
                        continue;
                }
                if (r < 0) {
                        provider_server_array_free(v, k);
                        return r;
                }
                k++;
        }
        *ret = v;
        *ret_n = k;
        return 0;
}

/* Glance's own image fields: everything else in an image document is a property. */
static const char *const glance_fields[] = {
        "id", "name", "status", "visibility", "protected", "checksum", "owner", "size", "virtual_size",
        "min_ram", "min_disk", "created_at", "updated_at", "tags", "self", "file", "schema", "disk_format",
        "container_format", "locations", "direct_url", "os_hash_algo", "os_hash_value", "os_hidden", "stores",
};

static bool glance_field(const char *k) {
        for (size_t i = 0; i < ELEMENTSOF(glance_fields); i++)
                if (strcmp(glance_fields[i], k) == 0)
                        return true;
        return false;
}

int openstack_image_from_json(json_t *image, struct provider_image **ret, char **reterr_msg) {
        const char *id = json_string_value(json_object_get(image, "id"));
        if (!json_is_object(image) || !id)
                return bad(reterr_msg, "malformed %s: id must be a string", "image");
        json_t *tags = json_object_get(image, "tags");
        if (tags && !json_is_array(tags))
                return bad(reterr_msg, "malformed %s: tags is not a list", "image");
        _cleanup_(provider_image_freep) struct provider_image *img = xnew(struct provider_image, 1);
        img->external_id = xstrdup(id);
        set_once(&img->name, json_string_value(json_object_get(image, "name")));
        set_once(&img->format, json_string_value(json_object_get(image, "disk_format")));
        json_t *size = json_object_get(image, "size");
        img->size = json_is_integer(size) && json_integer_value(size) > 0 ? (uint64_t)json_integer_value(size) : 0;
        size_t cap = json_object_size(image) + json_array_size(tags), k = 0;
        img->tags = xnew(struct provider_tag, cap ? cap : 1);
        const char *key;
        json_t *val;
        json_object_foreach(image, key, val) {
                if (glance_field(key) || !json_is_string(val))
                        continue;
                img->tags[k].key = xstrdup(key);
                img->tags[k].value = xstrdup(json_string_value(val));
                k++;
        }
        size_t i;
        json_array_foreach(tags, i, val) {
                if (!json_is_string(val))
                        continue;
                img->tags[k].key = xasprintf("tag:%s", json_string_value(val));
                img->tags[k].value = xstrdup("");
                k++;
        }
        img->n_tags = k;
        *ret = TAKE_PTR(img);
        return 0;
}

/* True for a digest of exactly LEN lower- or upper-case hex digits. */
static bool hex_digest(const char *s, size_t len) {
        if (!s || strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

json_t *openstack_image_create_body(const char *provider, const char *image_name, const char *format,
                                    const char *md5, const char *sha256, const struct provider_kv *tags,
                                    size_t n_tags) {
        json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "name", image_name, "disk_format",
                                 format ? format : "qcow2", "container_format", "bare", "visibility", "private",
                                 "tags", OS_IMAGE_TAG);
        bool has_provider = false;
        for (size_t i = 0; i < n_tags; i++) {
                if (!tags[i].key || !tags[i].value || glance_field(tags[i].key))
                        continue; /* Glance refuses properties named like its own fields */
                has_provider |= strcmp(tags[i].key, "nodepool_provider_name") == 0;
                json_object_set_new(body, tags[i].key, json_string(tags[i].value));
        }
        if (!has_provider)
                json_object_set_new(body, "nodepool_provider_name", json_string(provider));
        /* Where openstacksdk's create_image (Nodepool's upload) records the digests:
         * Glance computes os_hash_* itself and refuses them from clients. */
        if (hex_digest(md5, 32))
                json_object_set_new(body, "owner_specified.openstack.md5", json_string(md5));
        if (hex_digest(sha256, 64))
                json_object_set_new(body, "owner_specified.openstack.sha256", json_string(sha256));
        char *object = xasprintf("images/%s", image_name);
        json_object_set_new(body, "owner_specified.openstack.object", json_string(object));
        free(object);
        return body;
}

/* The human text of an OpenStack error body: Nova {"<kind>": {"message": m}},
 * Keystone/Neutron {"error"|"NeutronError": {"message": m}}, else the text. */
static char *error_text(const char *body, size_t len) {
        if (!body || !len)
                return xstrdup("(no details)");
        json_t *j = json_loadb(body, len, 0, NULL);
        if (j) {
                const char *key;
                json_t *v;
                const char *m = NULL;
                json_object_foreach(j, key, v) {
                        m = json_string_value(json_object_get(v, "message"));
                        if (!m && strcmp(key, "message") == 0)
                                m = json_string_value(v);
                        if (m)
                                break;
                }
                char *out = m ? xstrdup(m) : NULL;
                json_decref(j);
                if (out)
                        return out;
        }
        /* Glance answers with text or HTML: keep one line, bounded, printable. */
        size_t n = MIN(len, (size_t)300), k = 0;
        char *out = xmalloc(n + 1);
        bool space = false;
        for (size_t i = 0; i < n; i++) {
                char c = body[i];
                if (c == '<') { /* skip tags */
                        while (i < n && body[i] != '>')
                                i++;
                        c = ' ';
                }
                if ((unsigned char)c < 0x20 || c == 0x7f || c == ' ') {
                        if (!space && k)
                                out[k++] = ' ';
                        space = true;
                        continue;
                }
                space = false;
                out[k++] = c;
        }
        while (k && out[k - 1] == ' ')
                k--;
        out[k] = '\0';
        return out;
}

const char *openstack_port_for_address(json_t *ports, const char *addr) {
        size_t i, k;
        json_t *port, *ip;
        json_array_foreach(json_object_get(ports, "ports"), i, port) {
                const char *id = json_string_value(json_object_get(port, "id"));
                json_array_foreach(json_object_get(port, "fixed_ips"), k, ip) {
                        const char *a = json_string_value(json_object_get(ip, "ip_address"));
                        if (id && a && addr && strcmp(a, addr) == 0)
                                return id;
                }
        }
        return NULL;
}

bool openstack_port_cleanable(json_t *port) {
        json_t *owner = json_object_get(port, "device_owner");
        if (!owner || json_is_null(owner))
                return true;
        const char *v = json_string_value(owner);
        return v && (!*v || strncmp(v, "compute:", 8) == 0);
}

int openstack_error_from_response(const char *service, long status, const char *body, size_t len,
                                  char **ret_msg) {
        _cleanup_free_ char *text = error_text(body, len);
        int r;
        if (status == 404)
                r = -ENOENT;
        else if (status == 409)
                r = -EEXIST;
        else if (status == 401)
                r = -EACCES;
        else if ((status == 403 || status == 413) && (strcasestr(text, "quota") || strcasestr(text, "limit")))
                r = -EDQUOT;
        else if (status == 403)
                r = -EPERM;
        else if (status >= 400 && status < 500)
                r = -EINVAL;
        else
                r = -EIO;
        if (ret_msg)
                *ret_msg = xasprintf("%s: HTTP %ld: %s", service, status, text);
        return r;
}

char *openstack_base64(const char *data, size_t len) {
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = xmalloc(4 * ((len + 2) / 3) + 1), *p = out;
        const unsigned char *d = (const unsigned char *)data;
        size_t i = 0;
        for (; i + 2 < len; i += 3) {
                *p++ = tbl[d[i] >> 2];
                *p++ = tbl[((d[i] & 3) << 4) | (d[i + 1] >> 4)];
                *p++ = tbl[((d[i + 1] & 15) << 2) | (d[i + 2] >> 6)];
                *p++ = tbl[d[i + 2] & 63];
        }
        if (i < len) {
                *p++ = tbl[d[i] >> 2];
                if (i + 1 < len) {
                        *p++ = tbl[((d[i] & 3) << 4) | (d[i + 1] >> 4)];
                        *p++ = tbl[(d[i + 1] & 15) << 2];
                } else {
                        *p++ = tbl[(d[i] & 3) << 4];
                        *p++ = '=';
                }
                *p++ = '=';
        }
        *p = '\0';
        return out;
}

static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);
        return n >= k && strcmp(s + n - k, suffix) == 0;
}

char *openstack_api_metric_name(const char *url, const char *project_id) {
        /* urlparse(url).path: after "scheme://netloc", up to '?' or '#'. */
        const char *start = url ? url : "", *sch = strstr(start, "://");
        if (sch) {
                start = strchr(sch + 3, '/');
                if (!start) start = "";
        }
        size_t path_len = strcspn(start, "?#");
        _cleanup_free_ char *path = xstrndup(start, path_len);
        char *pp = path[0] == '/' ? path + 1 : path;
        if (ends_with(pp, ".json")) pp[strlen(pp) - 5] = '\0';
        bool tokens = ends_with(pp, "tokens");
        _cleanup_free_ char *auth_pid = project_id ? xasprintf("AUTH_%s", project_id) : NULL;
        /* The path's segments, without the project's. */
        size_t n = 0, cap = 1;
        for (const char *c = pp; *c; c++) cap += *c == '/';
        _cleanup_free_ char **parts = xnew(char *, cap);
        for (char *seg = pp, *next;; seg = next + 1) {
                next = strchr(seg, '/');
                if (next) *next = '\0';
                if (!project_id || (strcmp(seg, project_id) != 0 && strcmp(seg, auth_pid) != 0)) parts[n++] = seg;
                if (!next) break;
        }
        _cleanup_free_ char **names = xnew(char *, n + 1);
        size_t nn = 0;
        if (n > 0 && strcmp(parts[n - 1], "detail") == 0) {
                for (size_t k = n >= 2 ? n - 2 : 0; k < n; k++) names[nn++] = parts[k];
        } else {
                size_t first = 0;
                if (n > 0 && parts[0][0] == 'v' && isdigit((unsigned char)parts[0][1])) first = 1;
                /* Every other segment (collection, id, sub-collection, ...); a
                 * collection followed by an id drops its plural 's'. */
                for (size_t k = first; k < n; k += 2) {
                        char *seg = parts[k];
                        size_t len = strlen(seg);
                        if (k + 1 < n && len > 0 && seg[len - 1] == 's' && !ends_with(seg, "is")) seg[len - 1] = '\0';
                        names[nn++] = seg;
                }
        }
        if (tokens) {
                names[0] = (char *)"tokens";
                nn = 1;
        }
        /* The names are pieces of PATH (split in place above), so its length bounds theirs with the '_'s. */
        char *out = xmalloc(path_len + nn + sizeof "discovery"), *o = out;
        for (size_t k = 0; k < nn; k++) {
                if (!names[k][0]) continue;
                if (o > out) *o++ = '_';
                for (const char *c = names[k]; *c; c++) *o++ = *c == '.' || *c == ':' ? '_' : *c;
        }
        if (o == out) o = stpcpy(out, "discovery");
        *o = '\0';
        return out;
}

/* ------------------------------------------------------------------ driver state */

struct os_label {
        char *pool, *label, *diskimage, *cloud_image_id, *cloud_image_name, *flavor_name, *key_name, *userdata;
        long long min_ram, volume_size;
        int config_drive;
        bool boot_from_volume;
        char **networks, **sgs;
        size_t n_networks, n_sgs;
        struct provider_tag *props;
        size_t n_props;
        bool auto_floating_ip;
};

struct os_net {
        char *name, *id;
};

struct os {
        char *name;
        struct keystone *ks;
        struct statsd *statsd;           /* borrowed from the daemon (provider_params); NULL = none */
        char *region;
        double rate;
        long long upload_timeout;
        long api_timeout_ms;
        struct os_label *labels;
        size_t n_labels;

        pthread_mutex_t rate_lock;
        double next_slot;                /* monotonic seconds; guarded by rate_lock */

        pthread_mutex_t lock;            /* guards everything below */
        pthread_cond_t cond;
        bool listing;                    /* a server list is in flight */
        struct provider_server **servers;
        size_t n_servers;
        bool have_list;
        double list_started;             /* monotonic time the cached list was requested */
        int list_r;                      /* result of the last list */
        char *list_msg;
        double last_create;              /* monotonic time the last successful create() got its answer */
        struct openstack_flavor *flavors;
        size_t n_flavors;
        double flavors_time;
        struct os_net *nets;
        size_t n_nets;
        const char *default_networks;    /* "auto"/"none" for labels without networks, or NULL */
        double default_networks_time;
        char *fip_net;                   /* network floating IPs come from; "" = none; NULL = not asked */
        double fip_net_time;
        char **down_ports;               /* port cleanup: ids seen DOWN at the last check */
        size_t n_down_ports;
        double last_port_check;          /* monotonic; 0 = never */
        bool net_cleaning;               /* a cleanup_network() runs: another one returns at once */
};

static struct os *OS(struct provider *p) {
        return p->data;
}

static double mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
        if (s <= 0)
                return;
        struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static char *dupn(const char *s) {
        return s ? xstrdup(s) : NULL;
}

static char **strv_copy(const char *const *v, size_t n) {
        char **out = xnew(char *, n + 1);
        for (size_t i = 0; i < n; i++)
                out[i] = xstrdup(v[i]);
        return out;
}

static void strv_free(char **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void os_free(struct os *o) {
        if (!o)
                return;
        free(o->name);
        keystone_free(o->ks);
        free(o->region);
        for (size_t i = 0; i < o->n_labels; i++) {
                struct os_label *l = &o->labels[i];
                free(l->pool);
                free(l->label);
                free(l->diskimage);
                free(l->cloud_image_id);
                free(l->cloud_image_name);
                free(l->flavor_name);
                free(l->key_name);
                free(l->userdata);
                strv_free(l->networks, l->n_networks);
                strv_free(l->sgs, l->n_sgs);
                provider_tags_free(l->props, l->n_props);
        }
        free(o->labels);
        provider_server_array_free(o->servers, o->n_servers);
        free(o->list_msg);
        openstack_flavors_free(o->flavors, o->n_flavors);
        for (size_t i = 0; i < o->n_nets; i++) {
                free(o->nets[i].name);
                free(o->nets[i].id);
        }
        free(o->nets);
        free(o->fip_net);
        strv_free(o->down_ports, o->n_down_ports);
        pthread_mutex_destroy(&o->rate_lock);
        pthread_mutex_destroy(&o->lock);
        pthread_cond_destroy(&o->cond);
        free(o);
}

static void rate_wait(struct os *o) {
        if (o->rate <= 0)
                return;
        pthread_mutex_lock(&o->rate_lock);
        double now = mono(), slot = MAX(now, o->next_slot);
        o->next_slot = slot + o->rate;
        pthread_mutex_unlock(&o->rate_lock);
        sleep_s(slot - now);
}

/* ------------------------------------------------------------------ API calls */

struct os_call {
        const char *service;             /* catalog type: compute, image, network */
        const char *method;
        const char *path;                /* after the endpoint ("/servers/detail"), or an absolute URL */
        json_t *body;                    /* borrowed; NULL = none */
        const char *upload_path;         /* PUT this file instead of a body */
        const char *content_type;
        long timeout_ms;                 /* 0 = the provider's API timeout */
        size_t max_response;             /* 0 = default */
};

/* Service base URL, with the API version Glance and Neutron catalogs omit. */
static int service_url(struct os *o, const char *service, char **ret, char **reterr_msg) {
        _cleanup_free_ char *url = NULL;
        int r = keystone_endpoint(o->ks, service, &url, reterr_msg);
        if (r < 0)
                return r;
        const char *suffix = strcmp(service, "image") == 0 ? "/v2" : strcmp(service, "network") == 0 ? "/v2.0" : "";
        size_t n = strlen(url), sn = strlen(suffix);
        if (sn && (n < sn || strcmp(url + n - sn, suffix) != 0))
                *ret = xasprintf("%s%s", url, suffix);
        else
                *ret = TAKE_PTR(url);
        return 0;
}

static bool transport_error(int r) {
        return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -ECONNRESET || r == -EHOSTUNREACH || r == -EIO;
}

/* Keystone unreachable (after retries) is the cloud being down, as for any API. */
static int auth_or_endpoint(struct os *o, int r, int attempt, double *backoff, char **reterr_msg) {
        if (!transport_error(r))
                return r;
        if (attempt < OS_ATTEMPTS) {
                log_debug("openstack %s: Keystone: %s (retrying in %.1f s)", o->name, strerror(-r), *backoff);
                if (reterr_msg) {
                        free(*reterr_msg);
                        *reterr_msg = NULL;
                }
                sleep_s(*backoff);
                *backoff = MIN(*backoff * 2, 4.0);
                return 0; /* retry */
        }
        return -EHOSTDOWN;
}

static bool transport_retryable(int r, const char *method) {
        if (r == -ECONNREFUSED)
                return true; /* nothing reached the server: safe for any method */
        if (strcmp(method, "POST") == 0)
                return false;
        return r == -ETIMEDOUT || r == -ECONNRESET || r == -EIO || r == -EHOSTUNREACH;
}

/* What openstacksdk sends for one HTTP request when Nodepool gives it
 * statsd_prefix nodepool.task.<provider> (its Proxy._report_stats_statsd):
 * KEY = nodepool.task.<provider>.<service>.<METHOD>.<name>; timer and counter
 * KEY.<status> (whole milliseconds), counter KEY.over_1000 above a second,
 * KEY.failed when no response came (STATUS 0), and KEY.attempted always.
 * Authentication is not reported: openstacksdk leaves it to keystoneauth. */
static void report_call(struct os *o, const char *service, const char *method, const char *url, long status,
                        double seconds) {
        if (!o->statsd)
                return;
        _cleanup_free_ char *pid = keystone_project_id_cached(o->ks);
        _cleanup_free_ char *name = openstack_api_metric_name(url, pid);
        _cleanup_free_ char *svc = statsd_key_escape(service);
        _cleanup_free_ char *key = xasprintf("nodepool.task.%s.%s.%s.%s", o->name, svc, method, name);
        long long ms = (long long)(seconds * 1000);
        if (status > 0) {
                _cleanup_free_ char *k = xasprintf("%s.%ld", key, status);
                statsd_timing(o->statsd, k, (double)ms);
                statsd_incr(o->statsd, k, 1);
                if (ms > 1000) {
                        _cleanup_free_ char *k2 = xasprintf("%s.over_1000", key);
                        statsd_incr(o->statsd, k2, 1);
                }
        } else {
                _cleanup_free_ char *k = xasprintf("%s.failed", key);
                statsd_incr(o->statsd, k, 1);
        }
        _cleanup_free_ char *k = xasprintf("%s.attempted", key);
        statsd_incr(o->statsd, k, 1);
        statsd_flush(o->statsd);
}

/* One API call with rate limit, token, retries. 0 (2xx) and *ret_json (may be
 * NULL for an empty body; NULL ret_json = not wanted); else -errno + message. */
static int os_request(struct os *o, const struct os_call *c, json_t **ret_json, char **reterr_msg) {
        _cleanup_free_ char *base = NULL, *url = NULL, *body = NULL, *token = NULL;
        int r;
        double backoff = 0.5;
        if (strncmp(c->path, "http://", 7) == 0 || strncmp(c->path, "https://", 8) == 0) {
                url = xstrdup(c->path);
        } else {
                for (int attempt = 1;; attempt++) {
                        r = service_url(o, c->service, &base, reterr_msg);
                        if (r >= 0)
                                break;
                        r = auth_or_endpoint(o, r, attempt, &backoff, reterr_msg);
                        if (r < 0)
                                return r;
                }
                url = xasprintf("%s%s", base, c->path);
        }
        if (c->body)
                body = json_dumps(c->body, JSON_COMPACT);
        const char *compute_hdrs[] = { "OpenStack-API-Version: compute " OS_COMPUTE_VERSION,
                                       "X-OpenStack-Nova-API-Version: " OS_COMPUTE_VERSION, NULL };
        const struct clouds_cloud *cloud = keystone_cloud(o->ks);
        bool reauthed = false;
        for (int attempt = 1;; attempt++) {
                if (!token) {
                        r = keystone_token(o->ks, NULL, &token, reterr_msg);
                        if (r < 0) {
                                r = auth_or_endpoint(o, r, attempt, &backoff, reterr_msg);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                }
                rate_wait(o);
                struct http_request req = {
                        .method = c->method, .url = url, .token = token,
                        .headers = strcmp(c->service, "compute") == 0 ? compute_hdrs : NULL,
                        .body = body, .body_len = body ? strlen(body) : 0,
                        .upload_path = c->upload_path, .content_type = c->content_type,
                        .timeout_ms = c->timeout_ms ? c->timeout_ms : o->api_timeout_ms,
                        .max_response = c->max_response, .cacert = cloud->cacert, .insecure = !cloud->verify,
                };
                struct http_response resp = { 0 };
                _cleanup_free_ char *msg = NULL;
                double t0 = mono();
                r = http_request(&req, &resp, &msg);
                report_call(o, c->service, c->method, url, r < 0 ? 0 : resp.status, mono() - t0);
                if (r < 0) {
                        if (attempt < OS_ATTEMPTS && transport_retryable(r, c->method) &&
                            !(c->upload_path && r == -ETIMEDOUT)) {
                                keystone_redact(o->ks, &msg); /* its URL may come from the catalog */
                                log_debug("openstack %s: %s (retrying in %.1f s)", o->name, msg, backoff);
                                sleep_s(backoff);
                                backoff = MIN(backoff * 2, 4.0);
                                continue;
                        }
                        /* The cloud cannot be reached: callers pause and retry later. */
                        if (r != -E2BIG && r != -ENOENT)
                                r = -EHOSTDOWN;
                        return provider_error(reterr_msg, r, "%s", msg ? msg : "request failed");
                }
                if (resp.status == 401 && !reauthed) {
                        /* Expired or revoked token: authenticate once more and repeat. */
                        http_response_done(&resp);
                        _cleanup_free_ char *old = TAKE_PTR(token);
                        r = keystone_token(o->ks, old, &token, reterr_msg);
                        if (r < 0)
                                return r;
                        reauthed = true;
                        attempt--;
                        continue;
                }
                if (http_status_retryable(resp.status) && attempt < OS_ATTEMPTS && strcmp(c->method, "POST") != 0 &&
                    !c->upload_path) {
                        _cleanup_free_ char *shown = xstrdup(url);
                        keystone_redact(o->ks, &shown);
                        log_debug("openstack %s: %s %s -> %ld (retrying in %.1f s)", o->name, c->method, shown,
                                  resp.status, backoff);
                        http_response_done(&resp);
                        sleep_s(backoff);
                        backoff = MIN(backoff * 2, 4.0);
                        continue;
                }
                if (resp.status < 200 || resp.status > 299) {
                        _cleanup_free_ char *m = NULL;
                        r = openstack_error_from_response(c->service, resp.status, resp.body, resp.body_len, &m);
                        http_response_done(&resp);
                        return provider_error(reterr_msg, r, "%s %s: %s", c->method, c->path, m);
                }
                if (ret_json) {
                        *ret_json = NULL;
                        if (resp.body_len) {
                                json_error_t jerr;
                                json_t *j = json_loadb(resp.body, resp.body_len, 0, &jerr);
                                if (!j || !json_is_object(j)) {
                                        if (j)
                                                json_decref(j);
                                        http_response_done(&resp);
                                        return provider_error(reterr_msg, EBADMSG, "%s %s: malformed JSON response%s%s",
                                                              c->method, c->path, j ? "" : ": ", j ? "" : jerr.text);
                                }
                                *ret_json = j;
                        }
                }
                http_response_done(&resp);
                return 0;
        }
}

/* ------------------------------------------------------------------ open/close */

static int os_open(const struct provider_params *params, struct provider **ret, char **reterr_msg) {
        const struct provider_openstack_params *op = &params->openstack;
        if (!op->cloud || !*op->cloud)
                return provider_error(reterr_msg, EINVAL, "provider %s: `cloud` is required", params->name);
        _cleanup_(clouds_cloud_freep) struct clouds_cloud *cloud = NULL;
        _cleanup_free_ char *msg = NULL;
        int r = clouds_yaml_load(op->cloud, op->region_name, &cloud, &msg);
        if (r < 0)
                return provider_error(reterr_msg, r, "provider %s: %s", params->name, msg);
        if (cloud->warning)
                /* The file is only read here: nobody else can tell the operator. */
                log_warning("provider %s: %s", params->name, cloud->warning);

        struct os *o = xnew(struct os, 1);
        o->name = xstrdup(params->name);
        o->api_timeout_ms = (long)(op->api_timeout > 0 ? op->api_timeout : 60) * 1000;
        o->ks = keystone_new(cloud, o->api_timeout_ms);
        o->statsd = params->statsd;
        o->region = dupn(cloud->region_name);
        o->rate = op->rate > 0 ? op->rate : 0;
        o->upload_timeout = op->image_upload_timeout > 0 ? op->image_upload_timeout : 3600;
        pthread_mutex_init(&o->rate_lock, NULL);
        pthread_mutex_init(&o->lock, NULL);
        pthread_cond_init(&o->cond, NULL);
        o->labels = op->n_labels ? xnew(struct os_label, op->n_labels) : NULL;
        o->n_labels = op->n_labels;
        for (size_t i = 0; i < op->n_labels; i++) {
                const struct provider_openstack_label *s = &op->labels[i];
                struct os_label *l = &o->labels[i];
                l->pool = dupn(s->pool);
                l->label = dupn(s->label);
                l->diskimage = dupn(s->diskimage);
                l->cloud_image_id = dupn(s->cloud_image_id);
                l->cloud_image_name = dupn(s->cloud_image_name);
                l->flavor_name = dupn(s->flavor_name);
                l->key_name = dupn(s->key_name);
                l->userdata = dupn(s->userdata);
                l->min_ram = s->min_ram;
                l->volume_size = s->volume_size;
                l->config_drive = s->config_drive;
                l->boot_from_volume = s->boot_from_volume;
                l->networks = strv_copy(s->networks, s->n_networks);
                l->n_networks = s->n_networks;
                l->sgs = strv_copy(s->security_groups, s->n_security_groups);
                l->n_sgs = s->n_security_groups;
                l->props = provider_tags_copy(s->instance_properties, s->n_instance_properties);
                l->n_props = s->n_instance_properties;
                l->auto_floating_ip = s->auto_floating_ip;
        }
        struct provider *p = provider_new(&provider_openstack_ops, params->name);
        p->data = o;
        log_debug("openstack %s: cloud %s (%s), region %s", o->name, cloud->name, cloud->path,
                  o->region ? o->region : "(any)");
        *ret = p;
        return 0;
}

static void os_close(struct provider *p) {
        if (!p)
                return;
        os_free(OS(p));
        free(p->name);
        free(p);
}

/* ------------------------------------------------------------------ flavors, networks, images */

/* Choose the flavor for L (copy of id, vcpus, ram). Refreshes the cache when
 * stale or when nothing fits (a flavor may have been added). */
static int choose_flavor(struct os *o, const struct os_label *l, char **ret_id, int *ret_vcpus, int *ret_ram,
                         char **reterr_msg) {
        for (int pass = 0; pass < 2; pass++) {
                pthread_mutex_lock(&o->lock);
                bool fresh = o->flavors && mono() - o->flavors_time < OS_FLAVOR_TTL;
                const struct openstack_flavor *f = NULL;
                if (fresh || pass == 1)
                        f = openstack_flavor_choose(o->flavors, o->n_flavors, l->flavor_name, l->min_ram);
                if (f) {
                        *ret_id = xstrdup(f->id);
                        *ret_vcpus = f->vcpus;
                        *ret_ram = (int)f->ram_mib;
                }
                pthread_mutex_unlock(&o->lock);
                if (f)
                        return 0;
                if (pass == 1)
                        break;
                json_t *j = NULL;
                struct os_call c = { .service = "compute", .method = "GET", .path = "/flavors/detail?is_public=None" };
                int r = os_request(o, &c, &j, reterr_msg);
                if (r < 0)
                        return r;
                struct openstack_flavor *v = NULL;
                size_t n = 0;
                r = openstack_flavors_from_json(j, &v, &n, reterr_msg);
                json_decref(j);
                if (r < 0)
                        return r;
                pthread_mutex_lock(&o->lock);
                openstack_flavors_free(o->flavors, o->n_flavors);
                o->flavors = v;
                o->n_flavors = n;
                o->flavors_time = mono();
                pthread_mutex_unlock(&o->lock);
        }
        if (l->min_ram > 0)
                return provider_error(reterr_msg, ENOENT, "no flavor with at least %lld MiB RAM%s%s%s", l->min_ram,
                                      l->flavor_name ? " and a name containing '" : "",
                                      l->flavor_name ? l->flavor_name : "", l->flavor_name ? "'" : "");
        return provider_error(reterr_msg, ENOENT, "no flavor named '%s'", l->flavor_name ? l->flavor_name : "");
}

static bool looks_like_uuid(const char *s) {
        size_t n = strlen(s);
        if (n != 36 && n != 32)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] == '-' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static char *url_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        char *out = xmalloc(3 * strlen(s) + 1), *p = out;
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.~", c)) {
                        *p++ = (char)c;
                } else {
                        *p++ = '%';
                        *p++ = hex[c >> 4];
                        *p++ = hex[c & 15];
                }
        }
        *p = '\0';
        return out;
}

static int network_id(struct os *o, const char *name, char **ret, char **reterr_msg) {
        if (looks_like_uuid(name)) {
                *ret = xstrdup(name);
                return 0;
        }
        pthread_mutex_lock(&o->lock);
        for (size_t i = 0; i < o->n_nets; i++)
                if (strcmp(o->nets[i].name, name) == 0) {
                        *ret = xstrdup(o->nets[i].id);
                        pthread_mutex_unlock(&o->lock);
                        return 0;
                }
        pthread_mutex_unlock(&o->lock);
        _cleanup_free_ char *esc = url_escape(name);
        _cleanup_free_ char *path = xasprintf("/networks?name=%s", esc);
        json_t *j = NULL;
        struct os_call c = { .service = "network", .method = "GET", .path = path };
        int r = os_request(o, &c, &j, reterr_msg);
        if (r < 0)
                return r;
        json_t *nets = json_object_get(j, "networks");
        const char *id = json_string_value(json_object_get(json_array_get(nets, 0), "id"));
        if (!id || json_array_size(nets) != 1) {
                r = provider_error(reterr_msg, json_array_size(nets) > 1 ? EINVAL : ENOENT,
                                   json_array_size(nets) > 1 ? "network name '%s' is ambiguous" : "no network '%s'",
                                   name);
                json_decref(j);
                return r;
        }
        pthread_mutex_lock(&o->lock);
        o->nets = xrealloc(o->nets, (o->n_nets + 1) * sizeof *o->nets);
        o->nets[o->n_nets++] = (struct os_net){ xstrdup(name), xstrdup(id) };
        pthread_mutex_unlock(&o->lock);
        *ret = xstrdup(id);
        json_decref(j);
        return 0;
}

const char *openstack_default_networks(json_t *networks, bool auto_allocation) {
        size_t i, usable = 0;
        json_t *n;
        json_array_foreach(networks, i, n) {
                /* Nova's "auto" picks among the project's own and shared networks, never a bare external one. */
                bool shared = json_is_true(json_object_get(n, "shared"));
                bool external = json_is_true(json_object_get(n, "router:external"));
                usable += shared || !external;
        }
        return usable || auto_allocation || !json_is_array(networks) ? "auto" : "none";
}

/* The `networks` value for a label that names none: "auto" unless this cloud
 * has no network to give and cannot allocate one (then "auto" is a 400 and
 * "none" boots), decided from Neutron and cached like the flavors. */
static int default_networks(struct os *o, const char **ret, char **reterr_msg) {
        pthread_mutex_lock(&o->lock);
        const char *v = o->default_networks && mono() - o->default_networks_time < OS_FLAVOR_TTL ? o->default_networks
                                                                                                   : NULL;
        pthread_mutex_unlock(&o->lock);
        if (v) {
                *ret = v;
                return 0;
        }
        /* Own message: a 404 here is an answer, not an error to report. */
        _cleanup_free_ char *msg = NULL;
        json_t *j = NULL;
        struct os_call c = { .service = "network", .method = "GET",
                             .path = "/networks?fields=id&fields=shared&fields=router:external" };
        int r = os_request(o, &c, &j, &msg);
        if (r == -ENOENT) {
                v = "auto"; /* no Neutron in the catalog: let Nova decide */
        } else if (r >= 0) {
                bool auto_allocation = true;
                if (strcmp(openstack_default_networks(json_object_get(j, "networks"), false), "none") == 0) {
                        struct os_call e = { .service = "network", .method = "GET",
                                             .path = "/extensions/auto-allocated-topology" };
                        r = os_request(o, &e, NULL, &msg);
                        auto_allocation = r >= 0;
                        if (r == -ENOENT)
                                r = 0;
                        /* Offered, and usable for us? Nova asks the same dry run before it
                         * accepts "auto" (409: no default external network or subnet pool). */
                        _cleanup_free_ char *project = NULL, *path = NULL;
                        if (auto_allocation && keystone_project_id(o->ks, &project, NULL) >= 0) {
                                path = xasprintf("/auto-allocated-topology/%s?fields=dry-run", project);
                                struct os_call d = { .service = "network", .method = "GET", .path = path };
                                free(msg);
                                msg = NULL;
                                r = os_request(o, &d, NULL, &msg);
                                auto_allocation = r >= 0;
                                if (r == -EEXIST || r == -ENOENT || r == -EPERM || r == -EINVAL)
                                        r = 0; /* an answer: not usable */
                        }
                }
                if (r >= 0)
                        v = openstack_default_networks(json_object_get(j, "networks"), auto_allocation);
                json_decref(j);
        }
        if (!v) {
                if (reterr_msg)
                        *reterr_msg = TAKE_PTR(msg);
                return r;
        }
        log_debug("openstack %s: labels without networks boot with networks=%s", o->name, v);
        pthread_mutex_lock(&o->lock);
        o->default_networks = v;
        o->default_networks_time = mono();
        pthread_mutex_unlock(&o->lock);
        *ret = v;
        return 0;
}

/* Image id of a cloud-image given by name. */
static int image_by_name(struct os *o, const char *name, char **ret, char **reterr_msg) {
        _cleanup_free_ char *esc = url_escape(name);
        _cleanup_free_ char *path = xasprintf("/images?name=%s", esc);
        json_t *j = NULL;
        struct os_call c = { .service = "image", .method = "GET", .path = path };
        int r = os_request(o, &c, &j, reterr_msg);
        if (r < 0)
                return r;
        const char *id = json_string_value(json_object_get(json_array_get(json_object_get(j, "images"), 0), "id"));
        r = id ? 0 : provider_error(reterr_msg, ENOENT, "no image named '%s'", name);
        if (id)
                *ret = xstrdup(id);
        json_decref(j);
        return r;
}

/* ------------------------------------------------------------------ servers */

static const struct os_label *find_label(struct os *o, const char *pool, const char *label) {
        for (size_t i = 0; i < o->n_labels; i++)
                if (o->labels[i].label && label && strcmp(o->labels[i].label, label) == 0 &&
                    (!pool || (o->labels[i].pool && strcmp(o->labels[i].pool, pool) == 0)))
                        return &o->labels[i];
        return NULL;
}

static struct provider_server *server_copy(const struct provider_server *s) {
        struct provider_server *c = xnew(struct provider_server, 1);
        *c = *s;
        c->external_id = dupn(s->external_id);
        c->interface_ip = dupn(s->interface_ip);
        c->public_ipv4 = dupn(s->public_ipv4);
        c->private_ipv4 = dupn(s->private_ipv4);
        c->public_ipv6 = dupn(s->public_ipv6);
        c->az = dupn(s->az);
        c->region = dupn(s->region);
        c->host_id = dupn(s->host_id);
        c->fault = dupn(s->fault);
        c->tags = NULL;
        c->n_tags = 0;
        if (s->n_tags) {
                c->tags = xnew(struct provider_tag, s->n_tags);
                for (size_t i = 0; i < s->n_tags; i++)
                        c->tags[i] = (struct provider_tag){ xstrdup(s->tags[i].key), xstrdup(s->tags[i].value) };
                c->n_tags = s->n_tags;
        }
        return c;
}

/* Make sure the cached list was requested at or after NOT_BEFORE (monotonic);
 * one list call at a time. Called and returns with o->lock held. */
static int refresh_list_locked(struct os *o, double not_before, char **reterr_msg) {
        for (;;) {
                if (o->have_list && o->list_started >= not_before)
                        return 0;
                if (!o->listing)
                        break;
                pthread_cond_wait(&o->cond, &o->lock);
                /* The list that just finished may have failed: report that, not loop. */
                if (o->list_r < 0 && o->list_started >= not_before)
                        return provider_error(reterr_msg, o->list_r, "%s", o->list_msg ? o->list_msg : "list failed");
        }
        o->listing = true;
        double started = mono();
        pthread_mutex_unlock(&o->lock);

        json_t *j = NULL;
        char *msg = NULL;
        struct provider_server **v = NULL;
        size_t n = 0;
        struct os_call c = { .service = "compute", .method = "GET", .path = "/servers/detail",
                             .max_response = OS_LIST_MAX };
        int r = os_request(o, &c, &j, &msg);
        if (r >= 0) /* no flavor table: microversion 2.47 embeds each server's flavor */
                r = openstack_servers_from_json(j, o->region, NULL, 0, &v, &n, &msg);
        if (j)
                json_decref(j);

        pthread_mutex_lock(&o->lock);
        o->listing = false;
        o->list_r = r;
        free(o->list_msg);
        o->list_msg = msg ? xstrdup(msg) : NULL;
        o->list_started = started;
        if (r >= 0) {
                provider_server_array_free(o->servers, o->n_servers);
                o->servers = v;
                o->n_servers = n;
                o->have_list = true;
        }
        pthread_cond_broadcast(&o->cond);
        if (r < 0)
                r = provider_error(reterr_msg, r, "%s", msg ? msg : "server list failed");
        free(msg);
        return r;
}

static int os_list(struct provider *p, struct provider_server ***ret_servers, size_t *ret_n, char **reterr_msg) {
        struct os *o = OS(p);
        pthread_mutex_lock(&o->lock);
        int r = refresh_list_locked(o, mono() - OS_LIST_TTL, reterr_msg);
        if (r >= 0) {
                struct provider_server **v = xnew(struct provider_server *, o->n_servers ? o->n_servers : 1);
                for (size_t i = 0; i < o->n_servers; i++)
                        v[i] = server_copy(o->servers[i]);
                *ret_servers = v;
                *ret_n = o->n_servers;
        }
        pthread_mutex_unlock(&o->lock);
        return r;
}

/* Look ID up in a list no older than the TTL; if absent from a list requested
 * before our last create, look once more in a newer one. */
static int os_get(struct provider *p, const char *external_id, struct provider_server **ret_server,
                  char **reterr_msg) {
        struct os *o = OS(p);
        if (!external_id)
                return provider_error(reterr_msg, EINVAL, "no server id");
        pthread_mutex_lock(&o->lock);
        int r = refresh_list_locked(o, mono() - OS_LIST_TTL, reterr_msg);
        for (int pass = 0; r >= 0; pass++) {
                for (size_t i = 0; i < o->n_servers; i++)
                        if (strcmp(o->servers[i]->external_id, external_id) == 0) {
                                *ret_server = server_copy(o->servers[i]);
                                pthread_mutex_unlock(&o->lock);
                                if ((*ret_server)->fault)
                                        keystone_redact(o->ks, &(*ret_server)->fault); /* the cloud's words */
                                return 0;
                        }
                if (pass > 0 || o->list_started > o->last_create)
                        break;
                r = refresh_list_locked(o, o->last_create + 1e-6, reterr_msg);
        }
        pthread_mutex_unlock(&o->lock);
        if (r < 0)
                return r;
        return provider_error(reterr_msg, ENOENT, "server %s does not exist", external_id);
}

static int metadata_add(json_t *md, const char *key, const char *value) {
        if (!key || !value)
                return 0;
        /* Nova: keys and values up to 255 characters. */
        if (strlen(key) > 255 || strlen(value) > 255)
                return -EINVAL;
        json_object_set_new(md, key, json_string(value));
        return 0;
}

static int os_create(struct provider *p, const struct provider_create_req *req, struct provider_server **ret_server,
                     char **reterr_msg) {
        struct os *o = OS(p);
        const struct os_label *l = find_label(o, req->pool, req->label);
        if (!l)
                return provider_error(reterr_msg, EINVAL, "label %s is not in pool %s of provider %s", req->label,
                                      req->pool ? req->pool : "?", o->name);
        _cleanup_free_ char *flavor = NULL, *image = NULL;
        int vcpus = 0, ram = 0, r;
        r = choose_flavor(o, l, &flavor, &vcpus, &ram, reterr_msg);
        if (r < 0)
                return r;
        if (req->image)
                image = xstrdup(req->image);
        else if (l->cloud_image_id)
                image = xstrdup(l->cloud_image_id);
        else if (l->cloud_image_name) {
                r = image_by_name(o, l->cloud_image_name, &image, reterr_msg);
                if (r < 0)
                        return r;
        } else
                return provider_error(reterr_msg, ENOENT, "label %s: no image to boot", req->label);

        json_t *md = json_object();
        _cleanup_free_ char *groups = xasprintf("%s,%s,%s", o->name, l->diskimage ? l->diskimage : image, l->label);
        r = metadata_add(md, "groups", groups);
        for (size_t i = 0; r >= 0 && i < l->n_props; i++)
                r = metadata_add(md, l->props[i].key, l->props[i].value);
        for (size_t i = 0; r >= 0 && i < req->n_tags; i++)
                r = metadata_add(md, req->tags[i].key, req->tags[i].value);
        if (r < 0) {
                json_decref(md);
                return provider_error(reterr_msg, r, "server metadata keys and values are limited to 255 characters");
        }
        json_t *server = json_pack("{s:s, s:s, s:o, s:i, s:i}", "name", req->hostname ? req->hostname : req->node_id,
                                   "flavorRef", flavor, "metadata", md, "min_count", 1, "max_count", 1);
        if (l->boot_from_volume) {
                json_object_set_new(server, "imageRef", json_string(""));
                json_object_set_new(server, "block_device_mapping_v2",
                                    json_pack("[{s:i, s:s, s:s, s:s, s:I, s:b}]", "boot_index", 0, "uuid", image,
                                              "source_type", "image", "destination_type", "volume", "volume_size",
                                              (json_int_t)(l->volume_size > 0 ? l->volume_size : 50),
                                              "delete_on_termination", 1));
        } else {
                json_object_set_new(server, "imageRef", json_string(image));
        }
        if (l->key_name)
                json_object_set_new(server, "key_name", json_string(l->key_name));
        if (l->userdata) {
                _cleanup_free_ char *b64 = openstack_base64(l->userdata, strlen(l->userdata));
                json_object_set_new(server, "user_data", json_string(b64));
        }
        if (l->config_drive > 0)
                json_object_set_new(server, "config_drive", json_true());
        if (req->az)
                json_object_set_new(server, "availability_zone", json_string(req->az));
        if (l->n_sgs) {
                json_t *sg = json_array();
                for (size_t i = 0; i < l->n_sgs; i++)
                        json_array_append_new(sg, json_pack("{s:s}", "name", l->sgs[i]));
                json_object_set_new(server, "security_groups", sg);
        }
        if (l->n_networks == 1 && (strcmp(l->networks[0], "none") == 0 || strcmp(l->networks[0], "auto") == 0)) {
                json_object_set_new(server, "networks", json_string(l->networks[0]));
        } else if (l->n_networks) {
                json_t *nets = json_array();
                for (size_t i = 0; i < l->n_networks; i++) {
                        _cleanup_free_ char *id = NULL;
                        r = network_id(o, l->networks[i], &id, reterr_msg);
                        if (r < 0) {
                                json_decref(nets);
                                json_decref(server);
                                return r;
                        }
                        json_array_append_new(nets, json_pack("{s:s}", "uuid", id));
                }
                json_object_set_new(server, "networks", nets);
        } else {
                /* 2.37+ requires a choice; "auto" is what older clients got implicitly. */
                const char *dflt = NULL;
                r = default_networks(o, &dflt, reterr_msg);
                if (r < 0) {
                        json_decref(server);
                        return r;
                }
                json_object_set_new(server, "networks", json_string(dflt));
        }
        json_t *body = json_pack("{s:o}", "server", server);

        json_t *resp = NULL;
        struct os_call c = { .service = "compute", .method = "POST", .path = "/servers", .body = body };
        r = os_request(o, &c, &resp, reterr_msg);
        json_decref(body);
        if (r < 0)
                return r;
        /* Taken when Nova has answered: a list started while the POST was in flight
         * may lack the server, and get() must then look again, not say -ENOENT. */
        pthread_mutex_lock(&o->lock);
        o->last_create = MAX(o->last_create, mono());
        pthread_mutex_unlock(&o->lock);
        const char *id = json_string_value(json_object_get(json_object_get(resp, "server"), "id"));
        if (!id) {
                json_decref(resp);
                return provider_error(reterr_msg, EBADMSG, "malformed create response: no server id");
        }
        struct provider_server *s = xnew(struct provider_server, 1);
        s->external_id = xstrdup(id);
        s->state = PROVIDER_SERVER_BUILDING;
        s->region = dupn(o->region);
        s->resources = (struct provider_resources){ .cores = vcpus, .ram_mib = ram, .instances = 1 };
        s->tags = NULL;
        json_decref(resp); /* `id` pointed into it: use the copy */
        log_debug("openstack %s: created server %s (flavor %s) for node %s", o->name, s->external_id, flavor,
                  req->node_id ? req->node_id : "?");
        *ret_server = s;
        return 0;
}

static int release_floating_ips(struct os *o, const char *id, char **reterr_msg);

static int os_delete(struct provider *p, const char *external_id, char **reterr_msg) {
        struct os *o = OS(p);
        if (!external_id)
                return provider_error(reterr_msg, EINVAL, "no server id");
        int r = release_floating_ips(o, external_id, reterr_msg);
        if (r < 0)
                return r;
        _cleanup_free_ char *esc = url_escape(external_id);
        _cleanup_free_ char *path = xasprintf("/servers/%s", esc);
        struct os_call c = { .service = "compute", .method = "DELETE", .path = path };
        r = os_request(o, &c, NULL, reterr_msg);
        if (r < 0)
                return r;
        /* Confirm it is gone, through the shared list (one call per second per provider). */
        double deadline = mono() + OS_DELETE_TIMEOUT;
        for (;;) {
                sleep_s(0.5);
                pthread_mutex_lock(&o->lock);
                r = refresh_list_locked(o, mono() - 0.25, reterr_msg);
                bool present = false;
                for (size_t i = 0; r >= 0 && i < o->n_servers; i++)
                        if (strcmp(o->servers[i]->external_id, external_id) == 0)
                                present = true;
                pthread_mutex_unlock(&o->lock);
                if (r < 0)
                        return r;
                if (!present)
                        return 0;
                if (mono() > deadline)
                        return provider_error(reterr_msg, ETIMEDOUT, "server %s still exists %.0f s after delete",
                                              external_id, OS_DELETE_TIMEOUT);
        }
}

/* Cinder's limits into L when the catalog has a block-storage endpoint
 * (openstacksdk's service type and its volumev3 alias); none: unlimited, as
 * Nodepool on EndpointNotFound. The endpoint may omit the project id (Cinder
 * 3.67+ accepts either): add it, which every Cinder version understands. */
static int os_volume_limits(struct os *o, struct provider_limits *l, char **reterr_msg) {
        l->max_volumes = l->max_volume_gb = -1;
        l->used_volumes = l->used_volume_gb = 0;
        _cleanup_free_ char *base = NULL, *project = NULL, *url = NULL;
        int r = -ENOENT;
        for (const char *const *t = (const char *const[]){ "block-storage", "volumev3", NULL }; *t && r == -ENOENT; t++)
                r = keystone_endpoint(o->ks, *t, &base, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return provider_error(reterr_msg, -EHOSTDOWN, "block-storage endpoint: %s", strerror(-r));
        size_t n = strlen(base);
        if (n >= 3 && strcmp(base + n - 3, "/v3") == 0) {
                r = keystone_project_id(o->ks, &project, reterr_msg);
                if (r < 0)
                        return r;
                url = xasprintf("%s/%s/limits", base, project);
        } else {
                url = xasprintf("%s/limits", base);
        }
        json_t *j = NULL;
        struct os_call c = { .service = "block-storage", .method = "GET", .path = url };
        r = os_request(o, &c, &j, reterr_msg);
        if (r < 0)
                return r;
        r = openstack_volume_limits_from_json(j, l, reterr_msg);
        if (j)
                json_decref(j);
        return r;
}

static int os_quota(struct provider *p, struct provider_limits *ret_limits, char **reterr_msg) {
        struct os *o = OS(p);
        json_t *j = NULL;
        struct os_call c = { .service = "compute", .method = "GET", .path = "/limits" };
        int r = os_request(o, &c, &j, reterr_msg);
        if (r < 0)
                return r;
        struct provider_limits l;
        r = openstack_limits_from_json(j, &l, reterr_msg);
        if (j)
                json_decref(j);
        if (r < 0)
                return r;
        r = os_volume_limits(o, &l, reterr_msg);
        if (r < 0)
                return r;
        *ret_limits = l;
        return 0;
}

static int os_availability_zones(struct provider *p, char ***ret_azs, size_t *ret_n, char **reterr_msg) {
        struct os *o = OS(p);
        json_t *j = NULL;
        struct os_call c = { .service = "compute", .method = "GET", .path = "/os-availability-zone" };
        int r = os_request(o, &c, &j, reterr_msg);
        if (r < 0)
                return r;
        r = openstack_azs_from_json(j, ret_azs, ret_n, reterr_msg);
        if (j)
                json_decref(j);
        return r;
}

static int os_console_log(struct provider *p, const char *external_id, char **ret_text, char **reterr_msg) {
        struct os *o = OS(p);
        _cleanup_free_ char *esc = url_escape(external_id);
        _cleanup_free_ char *path = xasprintf("/servers/%s/action", esc);
        json_t *body = json_pack("{s:{s:i}}", "os-getConsoleOutput", "length", 1000);
        json_t *j = NULL;
        struct os_call c = { .service = "compute", .method = "POST", .path = path, .body = body };
        int r = os_request(o, &c, &j, reterr_msg);
        json_decref(body);
        if (r < 0)
                return r;
        const char *out = json_string_value(json_object_get(j, "output"));
        if (!out) {
                if (j)
                        json_decref(j);
                return provider_error(reterr_msg, EBADMSG, "malformed console output response");
        }
        *ret_text = xstrdup(out);
        json_decref(j);
        return 0;
}

/* ------------------------------------------------------------------ floating IPs and ports
 *
 * As Nodepool (openstacksdk): a server with a private address only gets a
 * floating IP from the first external network on the port holding that address;
 * the floating IPs on a server's ports are deleted before the server, since
 * Neutron would only detach them. A cloud without Neutron, or without its L3
 * (router) extension, answers 404: it has no floating IPs, nothing to do. */

/* *ret: the network floating IPs come from, or NULL when the cloud has none.
 * Cached like the flavors. */
static int floating_network(struct os *o, char **ret, char **reterr_msg) {
        pthread_mutex_lock(&o->lock);
        bool fresh = o->fip_net && mono() - o->fip_net_time < OS_FLAVOR_TTL;
        if (fresh)
                *ret = *o->fip_net ? xstrdup(o->fip_net) : NULL;
        pthread_mutex_unlock(&o->lock);
        if (fresh)
                return 0;
        _cleanup_free_ char *msg = NULL;
        json_t *j = NULL;
        struct os_call c = { .service = "network", .method = "GET", .path = "/networks?router:external=true&fields=id" };
        int r = os_request(o, &c, &j, &msg);
        if (r < 0 && r != -ENOENT) {
                if (reterr_msg)
                        *reterr_msg = TAKE_PTR(msg);
                return r;
        }
        const char *id = j ? json_string_value(json_object_get(json_array_get(json_object_get(j, "networks"), 0), "id"))
                           : NULL;
        pthread_mutex_lock(&o->lock);
        free(o->fip_net);
        o->fip_net = xstrdup(id ? id : "");
        o->fip_net_time = mono();
        pthread_mutex_unlock(&o->lock);
        *ret = dupn(id);
        if (j)
                json_decref(j);
        return 0;
}

/* GET a Neutron list (PATH) into *ret; 0 with *ret NULL when Neutron or the
 * resource type is absent (404). */
static int neutron_list(struct os *o, const char *path, json_t **ret, char **reterr_msg) {
        _cleanup_free_ char *msg = NULL;
        struct os_call c = { .service = "network", .method = "GET", .path = path, .max_response = OS_LIST_MAX };
        json_t *j = NULL;
        int r = os_request(o, &c, &j, &msg);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0) {
                if (reterr_msg)
                        *reterr_msg = TAKE_PTR(msg);
                return r;
        }
        *ret = j;
        return 0;
}

static int neutron_delete(struct os *o, const char *what, const char *id, char **reterr_msg) {
        _cleanup_free_ char *esc = url_escape(id);
        _cleanup_free_ char *path = xasprintf("/%s/%s", what, esc);
        struct os_call c = { .service = "network", .method = "DELETE", .path = path };
        int r = os_request(o, &c, NULL, reterr_msg);
        return r == -ENOENT ? 0 : r;
}

static int server_ports(struct os *o, const char *server_id, json_t **ret, char **reterr_msg) {
        _cleanup_free_ char *esc = url_escape(server_id);
        _cleanup_free_ char *path = xasprintf("/ports?device_id=%s&fields=id&fields=fixed_ips", esc);
        return neutron_list(o, path, ret, reterr_msg);
}

static int os_finish_create(struct provider *p, const char *pool, const char *label, struct provider_server *s,
                            char **reterr_msg) {
        struct os *o = OS(p);
        const struct os_label *l = find_label(o, pool, label);
        if (!l || !l->auto_floating_ip || s->public_ipv4 || !s->private_ipv4)
                return 0;
        _cleanup_free_ char *net = NULL;
        int r = floating_network(o, &net, reterr_msg);
        if (r < 0 || !net)
                return r;
        json_t *ports = NULL;
        r = server_ports(o, s->external_id, &ports, reterr_msg);
        if (r < 0)
                return r;
        const char *port = openstack_port_for_address(ports, s->private_ipv4);
        if (!port) {
                log_debug("openstack %s: server %s has no port with %s: no floating IP", o->name, s->external_id,
                          s->private_ipv4);
                if (ports)
                        json_decref(ports);
                return 0;
        }
        _cleanup_free_ char *port_id = xstrdup(port), *addr = NULL;
        json_decref(ports);
        /* One there already (an earlier try, or the cloud's own): use it. */
        _cleanup_free_ char *q = xasprintf("/floatingips?port_id=%s&fields=floating_ip_address", port_id);
        json_t *fips = NULL;
        r = neutron_list(o, q, &fips, reterr_msg);
        if (r < 0)
                return r;
        if (!fips)
                return 0; /* no L3 extension */
        addr = dupn(json_string_value(
                json_object_get(json_array_get(json_object_get(fips, "floatingips"), 0), "floating_ip_address")));
        json_decref(fips);
        if (!addr) {
                json_t *body = json_pack("{s:{s:s, s:s, s:s}}", "floatingip", "floating_network_id", net, "port_id",
                                         port_id, "fixed_ip_address", s->private_ipv4);
                json_t *resp = NULL;
                struct os_call c = { .service = "network", .method = "POST", .path = "/floatingips", .body = body };
                r = os_request(o, &c, &resp, reterr_msg);
                json_decref(body);
                if (r < 0)
                        return r;
                addr = dupn(json_string_value(
                        json_object_get(json_object_get(resp, "floatingip"), "floating_ip_address")));
                if (resp)
                        json_decref(resp);
                if (!addr)
                        return provider_error(reterr_msg, EBADMSG, "malformed floating IP response: no address");
        }
        /* Not waiting for the floating IP to be ACTIVE (the L3 agent's NAT): the
         * nodescan that follows waits for the address to answer. */
        log_debug("openstack %s: server %s reachable at floating IP %s", o->name, s->external_id, addr);
        free(s->public_ipv4);
        s->public_ipv4 = xstrdup(addr);
        free(s->interface_ip);
        s->interface_ip = TAKE_PTR(addr);
        return 0;
}

/* Delete the floating IPs on the ports of server ID. */
static int release_floating_ips(struct os *o, const char *id, char **reterr_msg) {
        /* A server the (shared, recent) list shows without any address has no port to look at. */
        bool addressless = false;
        pthread_mutex_lock(&o->lock);
        int rl = refresh_list_locked(o, mono() - OS_LIST_TTL, NULL);
        for (size_t i = 0; rl >= 0 && i < o->n_servers; i++)
                if (strcmp(o->servers[i]->external_id, id) == 0)
                        addressless = !o->servers[i]->public_ipv4 && !o->servers[i]->private_ipv4 &&
                                      !o->servers[i]->public_ipv6;
        pthread_mutex_unlock(&o->lock);
        if (addressless)
                return 0;
        json_t *ports = NULL;
        int r = server_ports(o, id, &ports, reterr_msg);
        size_t i, k;
        json_t *port, *fip;
        json_array_foreach(json_object_get(ports, "ports"), i, port) {
                const char *pid = json_string_value(json_object_get(port, "id"));
                if (r < 0 || !pid)
                        continue;
                _cleanup_free_ char *esc = url_escape(pid);
                _cleanup_free_ char *q = xasprintf("/floatingips?port_id=%s&fields=id", esc);
                json_t *fips = NULL;
                r = neutron_list(o, q, &fips, reterr_msg);
                json_array_foreach(json_object_get(fips, "floatingips"), k, fip) {
                        const char *fid = json_string_value(json_object_get(fip, "id"));
                        if (r >= 0 && fid) {
                                r = neutron_delete(o, "floatingips", fid, reterr_msg);
                                if (r >= 0)
                                        log_debug("openstack %s: deleted floating IP %s of server %s", o->name, fid,
                                                  id);
                        }
                }
                if (fips)
                        json_decref(fips);
        }
        if (ports)
                json_decref(ports);
        return r;
}

/* Floating IPs attached to no port: deleted (openstacksdk's
 * delete_unattached_floating_ips, what Nodepool calls). */
static int clean_floating_ips(struct os *o, size_t *ret_n, char **reterr_msg) {
        json_t *j = NULL;
        int r = neutron_list(o, "/floatingips?fields=id&fields=port_id", &j, reterr_msg);
        size_t i, n = 0;
        json_t *fip;
        json_array_foreach(json_object_get(j, "floatingips"), i, fip) {
                const char *id = json_string_value(json_object_get(fip, "id"));
                const char *port = json_string_value(json_object_get(fip, "port_id"));
                if (r < 0 || !id || (port && *port))
                        continue;
                r = neutron_delete(o, "floatingips", id, reterr_msg);
                if (r >= 0) {
                        log_debug("openstack %s: deleted unattached floating IP %s", o->name, id);
                        n++;
                }
        }
        if (j)
                json_decref(j);
        *ret_n = n;
        return r;
}

/* Ids of the DOWN ports the cleanup may remove (*ret NULL-terminated). */
static int down_ports(struct os *o, char ***ret, size_t *ret_n, char **reterr_msg) {
        json_t *j = NULL;
        int r = neutron_list(o, "/ports?status=DOWN&fields=id&fields=device_owner", &j, reterr_msg);
        if (r < 0)
                return r;
        size_t i, n = 0;
        json_t *port;
        char **v = xnew(char *, json_array_size(json_object_get(j, "ports")) + 1);
        json_array_foreach(json_object_get(j, "ports"), i, port) {
                const char *id = json_string_value(json_object_get(port, "id"));
                if (id && openstack_port_cleanable(port))
                        v[n++] = xstrdup(id);
        }
        if (j)
                json_decref(j);
        *ret = v;
        *ret_n = n;
        return 0;
}

/* Nodepool's _cleanupLeakedPorts: the first call records the DOWN ports; a call
 * more than INTERVAL s after the last check deletes those DOWN then and now. */
static int clean_ports(struct os *o, long long interval, size_t *ret_n, char **reterr_msg) {
        *ret_n = 0;
        pthread_mutex_lock(&o->lock);
        bool first = o->last_port_check == 0, due = !first && mono() - o->last_port_check > (double)interval;
        pthread_mutex_unlock(&o->lock);
        if (!first && !due)
                return 0;
        char **now = NULL;
        size_t n_now = 0, removed = 0;
        int r = down_ports(o, &now, &n_now, reterr_msg);
        if (r < 0)
                return r;
        pthread_mutex_lock(&o->lock);
        char **before = o->down_ports;
        size_t n_before = o->n_down_ports;
        o->down_ports = NULL;
        o->n_down_ports = 0;
        pthread_mutex_unlock(&o->lock);
        for (size_t i = 0; i < n_now && r >= 0; i++)
                for (size_t k = 0; k < n_before; k++)
                        if (strcmp(now[i], before[k]) == 0) {
                                r = neutron_delete(o, "ports", now[i], reterr_msg);
                                if (r >= 0) {
                                        log_debug("openstack %s: removed DOWN port %s", o->name, now[i]);
                                        removed++;
                                }
                                break;
                        }
        strv_free(before, n_before);
        if (!first && r >= 0) {
                /* What is DOWN after the deletes, as Neutron says, starts the next round. */
                strv_free(now, n_now);
                now = NULL;
                r = down_ports(o, &now, &n_now, reterr_msg);
        }
        pthread_mutex_lock(&o->lock);
        if (r >= 0) {
                o->down_ports = now;
                o->n_down_ports = n_now;
                o->last_port_check = mono();
                now = NULL;
        }
        pthread_mutex_unlock(&o->lock);
        if (now)
                strv_free(now, n_now);
        *ret_n = removed;
        return r;
}

static int os_cleanup_network(struct provider *p, bool floating_ips, long long port_interval, size_t *ret_fips,
                              size_t *ret_ports, char **reterr_msg) {
        struct os *o = OS(p);
        size_t fips = 0, ports = 0;
        int r = 0;
        pthread_mutex_lock(&o->lock);
        bool busy = o->net_cleaning;
        o->net_cleaning = true;
        pthread_mutex_unlock(&o->lock);
        if (busy) {
                *ret_fips = *ret_ports = 0;
                return 0;
        }
        if (port_interval > 0)
                r = clean_ports(o, port_interval, &ports, reterr_msg);
        if (r >= 0 && floating_ips)
                r = clean_floating_ips(o, &fips, reterr_msg);
        pthread_mutex_lock(&o->lock);
        o->net_cleaning = false;
        pthread_mutex_unlock(&o->lock);
        *ret_fips = fips;
        *ret_ports = ports;
        return r;
}

/* ------------------------------------------------------------------ images */

static int image_get(struct os *o, const char *id, json_t **ret, char **reterr_msg) {
        _cleanup_free_ char *esc = url_escape(id);
        _cleanup_free_ char *path = xasprintf("/images/%s", esc);
        struct os_call c = { .service = "image", .method = "GET", .path = path };
        return os_request(o, &c, ret, reterr_msg);
}

static int os_image_delete(struct provider *p, const char *external_id, char **reterr_msg) {
        struct os *o = OS(p);
        _cleanup_free_ char *esc = url_escape(external_id);
        _cleanup_free_ char *path = xasprintf("/images/%s", esc);
        struct os_call c = { .service = "image", .method = "DELETE", .path = path };
        return os_request(o, &c, NULL, reterr_msg);
}

/* Every image tagged OS_IMAGE_TAG (following Glance's `next` pages); with
 * PROVIDER_ONLY, only those whose nodepool_provider_name is ours. */
static int images_list(struct os *o, const char *extra_query, struct provider_image ***ret, size_t *ret_n,
                       char **reterr_msg) {
        struct provider_image **v = NULL;
        size_t n = 0;
        _cleanup_free_ char *base = NULL;
        int r = service_url(o, "image", &base, reterr_msg);
        if (r < 0)
                return r;
        /* Glance's `next` is relative to the endpoint root (it starts with /v2/). */
        size_t blen = strlen(base);
        if (blen >= 3 && strcmp(base + blen - 3, "/v2") == 0)
                base[blen - 3] = '\0';
        char *url = xasprintf("%s/v2/images?tag=%s&limit=100%s", base, OS_IMAGE_TAG, extra_query ? extra_query : "");
        for (int page = 0; url && page < 1000; page++) {
                json_t *j = NULL;
                struct os_call c = { .service = "image", .method = "GET", .path = url, .max_response = OS_LIST_MAX };
                r = os_request(o, &c, &j, reterr_msg);
                free(url);
                url = NULL;
                if (r < 0)
                        break;
                json_t *arr = json_object_get(j, "images");
                if (!json_is_array(arr)) {
                        json_decref(j);
                        r = provider_error(reterr_msg, EBADMSG, "malformed image list: no images array");
                        break;
                }
                size_t i;
                json_t *im;
                json_array_foreach(arr, i, im) {
                        struct provider_image *img = NULL;
                        r = openstack_image_from_json(im, &img, reterr_msg);
                        if (r < 0)
                                break;
                        const char *owner = provider_image_tag(img, "nodepool_provider_name");
                        if (!owner || strcmp(owner, o->name) != 0) {
                                provider_image_free(img);
                                continue;
                        }
                        v = xrealloc(v, (n + 1) * sizeof *v);
                        v[n++] = img;
                }
                const char *next = json_string_value(json_object_get(j, "next"));
                if (r >= 0 && next && *next == '/')
                        url = xasprintf("%s%s", base, next);
                json_decref(j);
                if (r < 0)
                        break;
        }
        free(url);
        if (r < 0) {
                provider_image_array_free(v, n);
                return r;
        }
        *ret = v ? v : xnew(struct provider_image *, 1);
        *ret_n = n;
        return 0;
}

static int os_image_list(struct provider *p, struct provider_image ***ret_images, size_t *ret_n,
                         char **reterr_msg) {
        return images_list(OS(p), NULL, ret_images, ret_n, reterr_msg);
}

static int os_image_upload(struct provider *p, const char *local_path, const char *format, const char *md5,
                           const char *sha256, const char *image_name, const struct provider_kv *tags, size_t n_tags,
                           char **ret_external_id, char **reterr_msg) {
        struct os *o = OS(p);
        struct stat st;
        if (stat(local_path, &st) < 0)
                return provider_error(reterr_msg, errno, "cannot upload %s: %s", local_path, strerror(errno));

        /* Never overwrite: an upload of this name by us exists already? */
        _cleanup_free_ char *esc_name = url_escape(image_name);
        _cleanup_free_ char *q = xasprintf("&name=%s", esc_name);
        struct provider_image **existing = NULL;
        size_t n_existing = 0;
        int r = images_list(o, q, &existing, &n_existing, reterr_msg);
        if (r < 0)
                return r;
        provider_image_array_free(existing, n_existing);
        if (n_existing)
                return provider_error(reterr_msg, EEXIST, "image %s exists already in provider %s", image_name,
                                      o->name);

        json_t *body = openstack_image_create_body(o->name, image_name, format, md5, sha256, tags, n_tags);
        json_t *created = NULL;
        struct os_call c = { .service = "image", .method = "POST", .path = "/images", .body = body };
        r = os_request(o, &c, &created, reterr_msg);
        json_decref(body);
        if (r < 0)
                return r;
        const char *idp = json_string_value(json_object_get(created, "id"));
        if (!idp) {
                if (created)
                        json_decref(created);
                return provider_error(reterr_msg, EBADMSG, "malformed image create response: no id");
        }
        _cleanup_free_ char *id = xstrdup(idp);
        json_decref(created);

        double deadline = mono() + (double)o->upload_timeout;
        _cleanup_free_ char *path = xasprintf("/images/%s/file", id);
        struct os_call put = { .service = "image", .method = "PUT", .path = path, .upload_path = local_path,
                               .content_type = "application/octet-stream",
                               .timeout_ms = (long)(o->upload_timeout * 1000) };
        r = os_request(o, &put, NULL, reterr_msg);
        while (r >= 0) {
                json_t *img = NULL;
                r = image_get(o, id, &img, reterr_msg);
                if (r < 0)
                        break;
                const char *status = json_string_value(json_object_get(img, "status"));
                _cleanup_free_ char *st_copy = dupn(status);
                json_decref(img);
                if (st_copy && strcmp(st_copy, "active") == 0) {
                        log_debug("openstack %s: image %s (%s) active", o->name, id, image_name);
                        *ret_external_id = TAKE_PTR(id);
                        return 0;
                }
                if (!st_copy || strcmp(st_copy, "killed") == 0 || strcmp(st_copy, "deleted") == 0 ||
                    strcmp(st_copy, "pending_delete") == 0) {
                        r = provider_error(reterr_msg, EIO, "image %s went to status %s", id,
                                           st_copy ? st_copy : "(none)");
                        break;
                }
                if (mono() > deadline) {
                        r = provider_error(reterr_msg, ETIMEDOUT, "image %s not active after %lld s (status %s)", id,
                                           o->upload_timeout, st_copy);
                        break;
                }
                sleep_s(1.0);
        }
        /* Leave nothing behind (best effort; leak cleanup catches the rest). */
        (void)os_image_delete(p, id, NULL);
        return r;
}

/* ------------------------------------------------------------------ the ops: messages leave redacted */

/* The one way out for the driver's messages (Keystone's, Nova's, Glance's,
 * Neutron's words and ours): the launcher logs them, shows them on /pool-list,
 * poolctl and ostool print them. An answer that echoes our request must not
 * carry the credentials along (keystone_redact). */
static int redacted(struct provider *p, int r, char **reterr_msg) {
        if (r < 0 && reterr_msg)
                keystone_redact(OS(p)->ks, reterr_msg);
        return r;
}

static int op_open(const struct provider_params *params, struct provider **ret, char **reterr_msg) {
        int r = os_open(params, ret, reterr_msg);
        /* Nothing was sent yet: no secret is known to have reached the text, but a
         * clouds.yaml problem must not quote one. */
        if (r < 0 && reterr_msg)
                redact_msg(reterr_msg, NULL);
        return r;
}

static int op_create(struct provider *p, const struct provider_create_req *req, struct provider_server **ret_server,
                     char **reterr_msg) {
        return redacted(p, os_create(p, req, ret_server, reterr_msg), reterr_msg);
}

static int op_get(struct provider *p, const char *external_id, struct provider_server **ret_server,
                  char **reterr_msg) {
        return redacted(p, os_get(p, external_id, ret_server, reterr_msg), reterr_msg);
}

static int op_delete(struct provider *p, const char *external_id, char **reterr_msg) {
        return redacted(p, os_delete(p, external_id, reterr_msg), reterr_msg);
}

static int op_list(struct provider *p, struct provider_server ***ret_servers, size_t *ret_n, char **reterr_msg) {
        return redacted(p, os_list(p, ret_servers, ret_n, reterr_msg), reterr_msg);
}

static int op_quota(struct provider *p, struct provider_limits *ret_limits, char **reterr_msg) {
        return redacted(p, os_quota(p, ret_limits, reterr_msg), reterr_msg);
}

static int op_availability_zones(struct provider *p, char ***ret_azs, size_t *ret_n, char **reterr_msg) {
        return redacted(p, os_availability_zones(p, ret_azs, ret_n, reterr_msg), reterr_msg);
}

static int op_image_upload(struct provider *p, const char *local_path, const char *format, const char *md5,
                           const char *sha256, const char *image_name, const struct provider_kv *tags, size_t n_tags,
                           char **ret_external_id, char **reterr_msg) {
        return redacted(p, os_image_upload(p, local_path, format, md5, sha256, image_name, tags, n_tags,
                                           ret_external_id, reterr_msg),
                        reterr_msg);
}

static int op_image_delete(struct provider *p, const char *external_id, char **reterr_msg) {
        return redacted(p, os_image_delete(p, external_id, reterr_msg), reterr_msg);
}

static int op_image_list(struct provider *p, struct provider_image ***ret_images, size_t *ret_n,
                         char **reterr_msg) {
        return redacted(p, os_image_list(p, ret_images, ret_n, reterr_msg), reterr_msg);
}

static int op_console_log(struct provider *p, const char *external_id, char **ret_text, char **reterr_msg) {
        return redacted(p, os_console_log(p, external_id, ret_text, reterr_msg), reterr_msg);
}

static int op_finish_create(struct provider *p, const char *pool, const char *label, struct provider_server *server,
                            char **reterr_msg) {
        return redacted(p, os_finish_create(p, pool, label, server, reterr_msg), reterr_msg);
}

static int op_cleanup_network(struct provider *p, bool floating_ips, long long port_interval, size_t *ret_fips,
                              size_t *ret_ports, char **reterr_msg) {
        return redacted(p, os_cleanup_network(p, floating_ips, port_interval, ret_fips, ret_ports, reterr_msg),
                        reterr_msg);
}

const struct provider_ops provider_openstack_ops = {
        .driver = "openstack",
        .open = op_open,
        .close = os_close,
        .create = op_create,
        .get = op_get,
        .delete = op_delete,
        .list = op_list,
        .quota = op_quota,
        .image_upload = op_image_upload,
        .image_delete = op_image_delete,
        .image_list = op_image_list,
        .console_log = op_console_log,
        .finish_create = op_finish_create,
        .availability_zones = op_availability_zones,
        .cleanup_network = op_cleanup_network,
};
