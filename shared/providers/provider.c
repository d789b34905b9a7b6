/* provider.c — driver registry and the object helpers every driver shares.
 *
 * DESIGN: the registry is a static table of driver vtables; adding a driver is
 * one line in provider_drivers[] plus its extern in provider.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "provider.h"

static const struct provider_ops *const provider_drivers[] = {
        &provider_libvirt_ops,
        &provider_openstack_ops,
};

static const char *const server_state_names[_PROVIDER_SERVER_STATE_MAX] = {
        [PROVIDER_SERVER_BUILDING] = "building",
        [PROVIDER_SERVER_ACTIVE] = "active",
        [PROVIDER_SERVER_ERROR] = "error",
};

const char *provider_server_state_to_string(enum provider_server_state s) {
        if (s < 0 || s >= _PROVIDER_SERVER_STATE_MAX)
                return NULL;
        return server_state_names[s];
}

enum provider_server_state provider_server_state_from_string(const char *s) {
        if (!s)
                return _PROVIDER_SERVER_STATE_INVALID;
        for (int i = 0; i < _PROVIDER_SERVER_STATE_MAX; i++)
                if (strcmp(server_state_names[i], s) == 0)
                        return i;
        return _PROVIDER_SERVER_STATE_INVALID;
}

const struct provider_ops *provider_ops_find(const char *driver) {
        if (!driver)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(provider_drivers); i++)
                if (strcmp(provider_drivers[i]->driver, driver) == 0)
                        return provider_drivers[i];
        return NULL;
}

int provider_open(const struct provider_params *params, struct provider **ret, char **reterr_msg) {
        if (!params || !params->name || !*params->name)
                return provider_error(reterr_msg, EINVAL, "provider name missing");
        const struct provider_ops *ops = provider_ops_find(params->driver);
        if (!ops)
                return provider_error(reterr_msg, EINVAL, "provider %s: unknown driver '%s'", params->name,
                                      params->driver ? params->driver : "(null)");
        return ops->open(params, ret, reterr_msg);
}

void provider_close(struct provider *p) {
        if (!p)
                return;
        p->ops->close(p);
}

struct provider *provider_new(const struct provider_ops *ops, const char *name) {
        struct provider *p = xnew(struct provider, 1);
        p->ops = ops;
        p->name = xstrdup(name);
        return p;
}

int provider_error(char **reterr_msg, int r, const char *fmt, ...) {
        r = r < 0 ? r : -r;
        if (r == 0)
                r = -EIO;
        if (reterr_msg) {
                va_list ap;
                char *m = NULL;
                va_start(ap, fmt);
                if (vasprintf(&m, fmt, ap) < 0)
                        abort(); /* OOM policy: abort, as xasprintf does */
                va_end(ap);
                *reterr_msg = m;
        }
        return r;
}

struct provider_tag *provider_tags_copy(const struct provider_kv *tags, size_t n) {
        if (n == 0)
                return NULL;
        struct provider_tag *t = xnew(struct provider_tag, n);
        for (size_t i = 0; i < n; i++) {
                t[i].key = xstrdup(tags[i].key ? tags[i].key : "");
                t[i].value = xstrdup(tags[i].value ? tags[i].value : "");
        }
        return t;
}

void provider_tags_free(struct provider_tag *tags, size_t n) {
        if (!tags)
                return;
        for (size_t i = 0; i < n; i++) {
                free(tags[i].key);
                free(tags[i].value);
        }
        free(tags);
}

void provider_strv_free(char **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static const char *tag_find(const struct provider_tag *tags, size_t n, const char *key) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(tags[i].key, key) == 0)
                        return tags[i].value;
        return NULL;
}

void provider_server_free(struct provider_server *s) {
        if (!s)
                return;
        free(s->external_id);
        free(s->interface_ip);
        free(s->public_ipv4);
        free(s->private_ipv4);
        free(s->public_ipv6);
        free(s->az);
        free(s->region);
        free(s->host_id);
        free(s->fault);
        provider_tags_free(s->tags, s->n_tags);
        free(s);
}

void provider_server_array_free(struct provider_server **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                provider_server_free(v[i]);
        free(v);
}

const char *provider_server_tag(const struct provider_server *s, const char *key) {
        return s ? tag_find(s->tags, s->n_tags, key) : NULL;
}

void provider_image_free(struct provider_image *img) {
        if (!img)
                return;
        free(img->external_id);
        free(img->name);
        free(img->format);
        provider_tags_free(img->tags, img->n_tags);
        free(img);
}

void provider_image_array_free(struct provider_image **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                provider_image_free(v[i]);
        free(v);
}

const char *provider_image_tag(const struct provider_image *img, const char *key) {
        return img ? tag_find(img->tags, img->n_tags, key) : NULL;
}
