/* fake_provider.c — an in-process cloud for the launcher's unit tests (fake_provider.h).
 *
 * DESIGN. How the launcher gets it: this file defines provider_libvirt_ops,
 * the symbol shared/providers/provider.c's driver table points at for driver
 * `libvirt`. A test binary lists this object before libpool.a, so the linker
 * takes the symbol from here and never pulls provider_libvirt.o out of the
 * archive (a second definition would be a link error, not a silent mix). The
 * launcher then opens a config's `driver: libvirt` provider through the
 * normal path (config → provider_params → provider_open → the driver table)
 * and calls these ops on its worker threads like any driver's: no hook, flag
 * or special case in the launcher or libpool, nothing of this in the daemons.
 * Chosen over a registration hook in provider_ops_find() because that would
 * add mutable global state to every daemon for the sake of tests.
 *
 * State: one registry of clouds, keyed by provider name, behind one mutex
 * (test code; the launcher's workers and the test thread share it). */
#include "fake_provider.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "alloc.h"

#define FAKE_FAIL_MAX 8

struct fake_server {
        char *external_id;
        char *az;
        enum provider_server_state state;
        int cores, ram_mib;
        int volume_gb;                  /* > 0: it boots from a volume of this size */
        struct provider_tag *tags;
        size_t n_tags;
};

struct fake_image {
        char *external_id, *name;
        struct provider_tag *tags;
        size_t n_tags;
};

struct fake_cloud {
        char *name;
        bool open, hold_boot;
        unsigned seq;
        long long max_instances, max_cores, max_ram_mib;
        char **azs;
        size_t n_azs, next_az;
        long long max_volumes, max_volume_gb, used_volumes, used_volume_gb; /* used_*: by others */
        char *volume_label;             /* servers of this label boot from a volume of volume_label_gb */
        int volume_label_gb;
        /* Injected failures per op: a queue of (error, how many calls) runs. */
        struct fake_fail { int r; unsigned n; } fail[_FAKE_OP_MAX][FAKE_FAIL_MAX];
        size_t n_fail[_FAKE_OP_MAX];
        unsigned calls[_FAKE_OP_MAX];
        struct fake_server **servers;
        size_t n_servers;
        struct fake_image **images;
        size_t n_images;
        struct fake_cloud *next;
};

static pthread_mutex_t fake_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct fake_cloud *fake_clouds;

static void lock(void) { pthread_mutex_lock(&fake_mutex); }
static void unlock(void) { pthread_mutex_unlock(&fake_mutex); }

static struct fake_cloud *cloud_locked(const char *name) {
        for (struct fake_cloud *c = fake_clouds; c; c = c->next)
                if (strcmp(c->name, name) == 0) return c;
        struct fake_cloud *c = xnew(struct fake_cloud, 1);
        c->name = xstrdup(name);
        c->max_instances = c->max_cores = c->max_ram_mib = -1;
        c->max_volumes = c->max_volume_gb = -1;
        c->next = fake_clouds;
        fake_clouds = c;
        return c;
}

struct fake_cloud *fake_cloud(const char *name) {
        lock();
        struct fake_cloud *c = cloud_locked(name);
        unlock();
        return c;
}

static void server_free(struct fake_server *s) {
        free(s->external_id);
        free(s->az);
        provider_tags_free(s->tags, s->n_tags);
        free(s);
}

static void image_free(struct fake_image *img) {
        free(img->external_id);
        free(img->name);
        provider_tags_free(img->tags, img->n_tags);
        free(img);
}

void fake_clouds_free(void) {
        lock();
        while (fake_clouds) {
                struct fake_cloud *c = fake_clouds;
                fake_clouds = c->next;
                for (size_t i = 0; i < c->n_servers; i++) server_free(c->servers[i]);
                free(c->servers);
                for (size_t i = 0; i < c->n_images; i++) image_free(c->images[i]);
                free(c->images);
                provider_strv_free(c->azs, c->n_azs);
                free(c->name);
                free(c->volume_label);
                free(c);
        }
        unlock();
}

/* Count a call of OP; its injected failure (0 when none). Locked. */
static int call_locked(struct fake_cloud *c, enum fake_op op) {
        c->calls[op]++;
        if (c->n_fail[op] == 0) return 0;
        struct fake_fail *f = &c->fail[op][0];
        int r = f->r;
        if (--f->n == 0) memmove(f, f + 1, --c->n_fail[op] * sizeof *f);
        return r;
}

static const char *tag_of(const struct provider_tag *tags, size_t n, const char *key) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(tags[i].key, key) == 0) return tags[i].value;
        return NULL;
}

static ssize_t server_index_locked(struct fake_cloud *c, const char *external_id) {
        for (size_t i = 0; i < c->n_servers; i++)
                if (strcmp(c->servers[i]->external_id, external_id) == 0) return (ssize_t)i;
        return -1;
}

static struct fake_server *server_add_locked(struct fake_cloud *c, const struct provider_kv *tags, size_t n_tags,
                                             int cores, int ram_mib, enum provider_server_state state) {
        struct fake_server *s = xnew(struct fake_server, 1);
        s->external_id = xasprintf("fake-%s-%u", c->name, ++c->seq);
        s->state = state;
        s->cores = cores;
        s->ram_mib = ram_mib;
        s->tags = provider_tags_copy(tags, n_tags);
        s->n_tags = n_tags;
        c->servers = xrealloc(c->servers, (c->n_servers + 1) * sizeof *c->servers);
        c->servers[c->n_servers++] = s;
        return s;
}

static struct provider_server *server_copy(const struct fake_server *s) {
        struct provider_server *ps = xnew(struct provider_server, 1);
        ps->external_id = xstrdup(s->external_id);
        ps->state = s->state;
        /* Loopback: with host-key-checking off nothing connects; if a test turned it
         * on, the scan would stay on this machine. */
        ps->interface_ip = xstrdup("127.0.0.1");
        ps->private_ipv4 = xstrdup("127.0.0.1");
        ps->connection_port = 22;
        ps->region = xstrdup("fake-region");
        ps->az = xstrdup(s->az ? s->az : "fake-az");
        ps->resources = (struct provider_resources){ .cores = s->cores, .ram_mib = s->ram_mib, .instances = 1 };
        ps->n_tags = s->n_tags;
        ps->tags = xnew(struct provider_tag, s->n_tags ? s->n_tags : 1);
        for (size_t i = 0; i < s->n_tags; i++) {
                ps->tags[i].key = xstrdup(s->tags[i].key);
                ps->tags[i].value = xstrdup(s->tags[i].value);
        }
        return ps;
}

/* ---------------------------------------------------------------- the ops */

static int fake_open(const struct provider_params *params, struct provider **ret, char **reterr_msg) {
        lock();
        struct fake_cloud *c = cloud_locked(params->name);
        c->open = true;
        unlock();
        struct provider *p = provider_new(&provider_libvirt_ops, params->name);
        p->data = c;
        *ret = p;
        return 0;
}

static void fake_close(struct provider *p) {
        if (!p) return;
        struct fake_cloud *c = p->data;
        lock();
        c->open = false;
        unlock();
        free(p->name);
        free(p);
}

/* Does one more server of CORES/RAM fit the cloud's own limits? Locked. */
static bool fits_locked(const struct fake_cloud *c, int cores, int ram_mib) {
        long long n = 0, used_cores = 0, used_ram = 0;
        for (size_t i = 0; i < c->n_servers; i++, n++) {
                used_cores += c->servers[i]->cores;
                used_ram += c->servers[i]->ram_mib;
        }
        return (c->max_instances < 0 || n + 1 <= c->max_instances) &&
               (c->max_cores < 0 || used_cores + cores <= c->max_cores) &&
               (c->max_ram_mib < 0 || used_ram + ram_mib <= c->max_ram_mib);
}

static int fake_create(struct provider *p, const struct provider_create_req *req, struct provider_server **ret_server,
                       char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_CREATE);
        if (r < 0) {
                unlock();
                return provider_error(reterr_msg, r, "fake cloud %s: create of node %s refused (injected)", c->name,
                                      req->node_id);
        }
        for (size_t i = 0; i < c->n_servers; i++) {
                const char *nid = tag_of(c->servers[i]->tags, c->servers[i]->n_tags, "nodepool_node_id");
                if (nid && strcmp(nid, req->node_id) == 0) {
                        unlock();
                        return provider_error(reterr_msg, EEXIST, "fake cloud %s: node %s has a server", c->name,
                                              req->node_id);
                }
        }
        if (!fits_locked(c, req->vcpus, req->memory_mib)) {
                unlock();
                return provider_error(reterr_msg, EDQUOT, "fake cloud %s: over its own quota", c->name);
        }
        bool listed = !req->az || c->n_azs == 0;
        for (size_t i = 0; !listed && i < c->n_azs; i++) listed = strcmp(c->azs[i], req->az) == 0;
        if (!listed) {
                unlock();
                return provider_error(reterr_msg, EINVAL, "fake cloud %s: availability zone %s is not available",
                                      c->name, req->az);
        }
        struct fake_server *s = server_add_locked(c, req->tags, req->n_tags, req->vcpus, req->memory_mib,
                                                  c->hold_boot ? PROVIDER_SERVER_BUILDING : PROVIDER_SERVER_ACTIVE);
        if (req->az) s->az = xstrdup(req->az);
        else if (c->n_azs) s->az = xstrdup(c->azs[c->next_az++ % c->n_azs]);
        if (c->volume_label && req->label && strcmp(req->label, c->volume_label) == 0) s->volume_gb = c->volume_label_gb;
        *ret_server = server_copy(s);
        unlock();
        return 0;
}

static int fake_get(struct provider *p, const char *external_id, struct provider_server **ret_server,
                    char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_GET);
        ssize_t i = r < 0 ? -1 : server_index_locked(c, external_id);
        if (r >= 0 && i < 0) r = -ENOENT;
        if (r >= 0) *ret_server = server_copy(c->servers[i]);
        unlock();
        return r < 0 ? provider_error(reterr_msg, r, "fake cloud %s: get %s failed", c->name, external_id) : 0;
}

static int fake_delete(struct provider *p, const char *external_id, char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_DELETE);
        ssize_t i = r < 0 ? -1 : server_index_locked(c, external_id);
        if (r >= 0 && i < 0) r = -ENOENT;
        if (r >= 0) {
                server_free(c->servers[i]);
                memmove(&c->servers[i], &c->servers[i + 1], (c->n_servers - (size_t)i - 1) * sizeof *c->servers);
                c->n_servers--;
        }
        unlock();
        return r < 0 ? provider_error(reterr_msg, r, "fake cloud %s: delete %s failed", c->name, external_id) : 0;
}

static int fake_list(struct provider *p, struct provider_server ***ret_servers, size_t *ret_n, char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_LIST);
        if (r < 0) {
                unlock();
                return provider_error(reterr_msg, r, "fake cloud %s: list failed", c->name);
        }
        struct provider_server **v = xnew(struct provider_server *, c->n_servers + 1);
        for (size_t i = 0; i < c->n_servers; i++) v[i] = server_copy(c->servers[i]);
        *ret_n = c->n_servers;
        *ret_servers = v;
        unlock();
        return 0;
}

static int fake_quota(struct provider *p, struct provider_limits *ret_limits, char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_QUOTA);
        long long vols = c->used_volumes, gb = c->used_volume_gb;
        for (size_t i = 0; i < c->n_servers; i++)
                if (c->servers[i]->volume_gb > 0) {
                        vols++;
                        gb += c->servers[i]->volume_gb;
                }
        if (r >= 0)
                *ret_limits = (struct provider_limits){ .max_instances = c->max_instances, .max_cores = c->max_cores,
                                                        .max_ram_mib = c->max_ram_mib, .free_ram_mib = -1,
                                                        .max_volumes = c->max_volumes,
                                                        .max_volume_gb = c->max_volume_gb,
                                                        .used_volumes = vols,
                                                        .used_volume_gb = gb };
        unlock();
        return r < 0 ? provider_error(reterr_msg, r, "fake cloud %s: quota failed", c->name) : 0;
}

static ssize_t image_index_locked(struct fake_cloud *c, const char *external_id) {
        for (size_t i = 0; i < c->n_images; i++)
                if (strcmp(c->images[i]->external_id, external_id) == 0) return (ssize_t)i;
        return -1;
}

static void image_add_locked(struct fake_cloud *c, const char *external_id, const char *name,
                             const struct provider_kv *tags, size_t n_tags) {
        struct fake_image *img = xnew(struct fake_image, 1);
        img->external_id = xstrdup(external_id);
        img->name = xstrdup(name);
        img->tags = provider_tags_copy(tags, n_tags);
        img->n_tags = n_tags;
        c->images = xrealloc(c->images, (c->n_images + 1) * sizeof *c->images);
        c->images[c->n_images++] = img;
}

static int fake_image_upload(struct provider *p, const char *local_path, const char *format, const char *md5,
                             const char *sha256, const char *image_name, const struct provider_kv *tags,
                             size_t n_tags, char **ret_external_id, char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_IMAGE_UPLOAD);
        if (r >= 0 && image_index_locked(c, image_name) >= 0) r = -EEXIST;
        if (r >= 0) {
                image_add_locked(c, image_name, image_name, tags, n_tags);
                *ret_external_id = xstrdup(image_name);
        }
        unlock();
        return r < 0 ? provider_error(reterr_msg, r, "fake cloud %s: upload of %s failed", c->name, image_name) : 0;
}

static int fake_image_delete(struct provider *p, const char *external_id, char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_IMAGE_DELETE);
        ssize_t i = r < 0 ? -1 : image_index_locked(c, external_id);
        if (r >= 0 && i < 0) r = -ENOENT;
        if (r >= 0) {
                image_free(c->images[i]);
                memmove(&c->images[i], &c->images[i + 1], (c->n_images - (size_t)i - 1) * sizeof *c->images);
                c->n_images--;
        }
        unlock();
        return r < 0 ? provider_error(reterr_msg, r, "fake cloud %s: image delete %s failed", c->name, external_id)
                     : 0;
}

static int fake_image_list(struct provider *p, struct provider_image ***ret_images, size_t *ret_n,
                           char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_IMAGE_LIST);
        if (r < 0) {
                unlock();
                return provider_error(reterr_msg, r, "fake cloud %s: image list failed", c->name);
        }
        struct provider_image **v = xnew(struct provider_image *, c->n_images + 1);
        for (size_t i = 0; i < c->n_images; i++) {
                const struct fake_image *img = c->images[i];
                struct provider_image *pi = xnew(struct provider_image, 1);
                pi->external_id = xstrdup(img->external_id);
                pi->name = xstrdup(img->name);
                pi->format = xstrdup("qcow2");
                pi->n_tags = img->n_tags;
                pi->tags = xnew(struct provider_tag, img->n_tags ? img->n_tags : 1);
                for (size_t k = 0; k < img->n_tags; k++) {
                        pi->tags[k].key = xstrdup(img->tags[k].key);
                        pi->tags[k].value = xstrdup(img->tags[k].value);
                }
                v[i] = pi;
        }
        *ret_n = c->n_images;
        *ret_images = v;
        unlock();
        return 0;
}

static int fake_availability_zones(struct provider *p, char ***ret_azs, size_t *ret_n, char **reterr_msg) {
        struct fake_cloud *c = p->data;
        lock();
        int r = call_locked(c, FAKE_OP_AZS);
        if (r >= 0) {
                char **v = xnew(char *, c->n_azs + 1);
                for (size_t i = 0; i < c->n_azs; i++) v[i] = xstrdup(c->azs[i]);
                *ret_azs = v;
                *ret_n = c->n_azs;
        }
        unlock();
        return r < 0 ? provider_error(reterr_msg, r, "fake cloud %s: availability zones failed", c->name) : 0;
}

/* See DESIGN: the name is what makes the driver table pick these ops. */
const struct provider_ops provider_libvirt_ops = {
        .driver = "libvirt",
        .open = fake_open,
        .close = fake_close,
        .create = fake_create,
        .get = fake_get,
        .delete = fake_delete,
        .list = fake_list,
        .quota = fake_quota,
        .image_upload = fake_image_upload,
        .image_delete = fake_image_delete,
        .image_list = fake_image_list,
        .availability_zones = fake_availability_zones,
};

/* ---------------------------------------------------------------- controls */

void fake_cloud_fail(struct fake_cloud *c, enum fake_op op, int r, unsigned n) {
        if (n == 0) return;
        lock();
        if (c->n_fail[op] == FAKE_FAIL_MAX) abort(); /* a test asking too much: say so loudly */
        c->fail[op][c->n_fail[op]++] = (struct fake_fail){ r, n };
        unlock();
}

void fake_cloud_hold_boot(struct fake_cloud *c, bool hold) {
        lock();
        c->hold_boot = hold;
        unlock();
}

unsigned fake_cloud_boot_all(struct fake_cloud *c) {
        unsigned n = 0;
        lock();
        for (size_t i = 0; i < c->n_servers; i++)
                if (c->servers[i]->state == PROVIDER_SERVER_BUILDING) {
                        c->servers[i]->state = PROVIDER_SERVER_ACTIVE;
                        n++;
                }
        unlock();
        return n;
}

void fake_cloud_set_limits(struct fake_cloud *c, long long max_instances, long long max_cores, long long max_ram_mib) {
        lock();
        c->max_instances = max_instances;
        c->max_cores = max_cores;
        c->max_ram_mib = max_ram_mib;
        unlock();
}

void fake_cloud_set_azs(struct fake_cloud *c, const char *const *azs, size_t n) {
        lock();
        provider_strv_free(c->azs, c->n_azs);
        c->azs = xnew(char *, n + 1);
        for (size_t i = 0; i < n; i++) c->azs[i] = xstrdup(azs[i]);
        c->n_azs = n;
        unlock();
}

void fake_cloud_set_server_az(struct fake_cloud *c, const char *external_id, const char *az) {
        lock();
        ssize_t i = server_index_locked(c, external_id);
        if (i >= 0) {
                free(c->servers[i]->az);
                c->servers[i]->az = xstrdup(az);
        }
        unlock();
}

char *fake_cloud_server_az(struct fake_cloud *c, const char *external_id) {
        lock();
        ssize_t i = server_index_locked(c, external_id);
        char *az = i < 0 ? NULL : xstrdup(c->servers[i]->az ? c->servers[i]->az : "fake-az");
        unlock();
        return az;
}

void fake_cloud_set_volume_limits(struct fake_cloud *c, long long max_volumes, long long max_volume_gb,
                                  long long used_volumes, long long used_volume_gb) {
        lock();
        c->max_volumes = max_volumes;
        c->max_volume_gb = max_volume_gb;
        c->used_volumes = used_volumes;
        c->used_volume_gb = used_volume_gb;
        unlock();
}

void fake_cloud_set_volume_label(struct fake_cloud *c, const char *label, int volume_gb) {
        lock();
        free(c->volume_label);
        c->volume_label = xstrdup(label);
        c->volume_label_gb = volume_gb;
        unlock();
}

char *fake_cloud_add_server(struct fake_cloud *c, const char *provider, const char *node_id, int cores, int ram_mib) {
        struct provider_kv tags[] = {
                { "nodepool_provider_name", provider },
                { "nodepool_pool_name", "main" },
                { "nodepool_node_id", node_id },
        };
        lock();
        struct fake_server *s = server_add_locked(c, tags, provider && node_id ? ELEMENTSOF(tags) : 0, cores, ram_mib,
                                                  PROVIDER_SERVER_ACTIVE);
        char *id = xstrdup(s->external_id);
        unlock();
        return id;
}

void fake_cloud_add_image(struct fake_cloud *c, const char *external_id, const char *name, const char *key,
                          const char *value) {
        struct provider_kv tag = { key, value };
        lock();
        image_add_locked(c, external_id, name, &tag, key ? 1 : 0);
        unlock();
}

unsigned fake_cloud_calls(struct fake_cloud *c, enum fake_op op) {
        lock();
        unsigned n = c->calls[op];
        unlock();
        return n;
}

size_t fake_cloud_n_servers(struct fake_cloud *c) {
        lock();
        size_t n = c->n_servers;
        unlock();
        return n;
}

size_t fake_cloud_n_images(struct fake_cloud *c) {
        lock();
        size_t n = c->n_images;
        unlock();
        return n;
}

bool fake_cloud_has_server(struct fake_cloud *c, const char *external_id) {
        lock();
        bool has = server_index_locked(c, external_id) >= 0;
        unlock();
        return has;
}

char *fake_cloud_server_of_node(struct fake_cloud *c, const char *node_id) {
        char *id = NULL;
        lock();
        for (size_t i = 0; i < c->n_servers && !id; i++) {
                const char *nid = tag_of(c->servers[i]->tags, c->servers[i]->n_tags, "nodepool_node_id");
                if (nid && strcmp(nid, node_id) == 0) id = xstrdup(c->servers[i]->external_id);
        }
        unlock();
        return id;
}

bool fake_cloud_is_open(struct fake_cloud *c) {
        lock();
        bool open = c->open;
        unlock();
        return open;
}
