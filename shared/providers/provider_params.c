/* provider_params.c — config_provider → provider_params (see provider_params.h).
 *
 * DESIGN: strings and string lists are borrowed from the config (config_strv
 * items are already `char **`); only the openstack per-label table and its
 * metadata key/value arrays are allocated, because config_kv and provider_kv
 * differ in type. */
#include <ctype.h>
#include <string.h>

#include "alloc.h"
#include "clouds_yaml.h"
#include "provider_params.h"

static enum provider_libvirt_domain_type domain_type(const char *s) {
        if (s && strcmp(s, "kvm") == 0)
                return PROVIDER_LIBVIRT_DOMAIN_KVM;
        if (s && strcmp(s, "qemu") == 0)
                return PROVIDER_LIBVIRT_DOMAIN_QEMU;
        return PROVIDER_LIBVIRT_DOMAIN_AUTO;
}

static const struct config_provider_diskimage *prov_diskimage(const struct config_provider *cp, const char *name) {
        for (size_t i = 0; name && i < cp->n_diskimages; i++)
                if (strcmp(cp->diskimages[i].name, name) == 0)
                        return &cp->diskimages[i];
        return NULL;
}

static const struct config_cloud_image *cloud_image(const struct config_provider *cp, const char *name) {
        for (size_t i = 0; name && i < cp->n_cloud_images; i++)
                if (strcmp(cp->cloud_images[i].name, name) == 0)
                        return &cp->cloud_images[i];
        return NULL;
}

static void fill_openstack(const struct config_provider *cp, struct provider_params_owned *o) {
        size_t n = 0;
        for (size_t i = 0; i < cp->n_pools; i++)
                n += cp->pools[i].n_labels;
        o->os_labels = n ? xnew(struct provider_openstack_label, n) : NULL;
        o->n_os_labels = n;
        size_t k = 0;
        for (size_t i = 0; i < cp->n_pools; i++) {
                const struct config_pool *pool = &cp->pools[i];
                for (size_t j = 0; j < pool->n_labels; j++, k++) {
                        const struct config_pool_label *pl = &pool->labels[j];
                        struct provider_openstack_label *l = &o->os_labels[k];
                        l->pool = pool->name;
                        l->label = pl->name;
                        l->diskimage = pl->diskimage;
                        l->flavor_name = pl->flavor_name;
                        l->min_ram = pl->min_ram;
                        l->key_name = pl->key_name;
                        l->userdata = pl->userdata;
                        l->config_drive = -1;
                        l->boot_from_volume = pl->boot_from_volume;
                        l->volume_size = pl->volume_size;
                        l->networks = (const char *const *)pl->networks.items;
                        l->n_networks = pl->networks.n;
                        l->security_groups = (const char *const *)pool->security_groups.items;
                        l->n_security_groups = pool->security_groups.n;
                        l->auto_floating_ip = pool->auto_floating_ip;
                        const struct config_provider_diskimage *pd = prov_diskimage(cp, pl->diskimage);
                        if (pd)
                                l->config_drive = pd->config_drive;
                        const struct config_cloud_image *ci = cloud_image(cp, pl->cloud_image);
                        if (ci) {
                                l->config_drive = ci->config_drive;
                                l->cloud_image_id = ci->image_id;
                                /* A cloud image with neither key is looked up by its own name. */
                                l->cloud_image_name = ci->image_id ? NULL : ci->image_name ? ci->image_name : ci->name;
                        }
                        const struct config_strmap *ip = &pl->instance_properties;
                        if (ip->n) {
                                struct provider_kv *kv = xnew(struct provider_kv, ip->n);
                                for (size_t m = 0; m < ip->n; m++)
                                        kv[m] = (struct provider_kv){ ip->items[m].key, ip->items[m].value };
                                l->instance_properties = kv;
                                l->n_instance_properties = ip->n;
                        }
                }
        }
        o->params.openstack = (struct provider_openstack_params){
                .cloud = cp->cloud,
                .region_name = cp->region_name,
                .rate = cp->rate,
                .image_upload_timeout = cp->image_upload_timeout,
                .labels = o->os_labels,
                .n_labels = o->n_os_labels,
        };
}

int provider_params_from_config(const struct config_provider *cp, struct provider_params_owned *ret) {
        struct provider_params_owned o = { 0 };
        o.params.name = cp->name;
        switch (cp->driver) {
        case CONFIG_DRIVER_LIBVIRT:
                o.params.driver = "libvirt";
                o.params.libvirt = (struct provider_libvirt_params){
                        .uri = cp->uri,
                        .domain_type = domain_type(cp->domain_type),
                        .storage_pool = cp->storage_pool,
                        .storage_pool_path = cp->storage_pool_path,
                        .network_mode = cp->network_mode == CONFIG_NETWORK_NETWORK ? PROVIDER_LIBVIRT_NET_NETWORK
                                                                                   : PROVIDER_LIBVIRT_NET_USER,
                        .network = cp->network,
                        .port_low = (int)cp->port_range[0],
                        .port_high = (int)cp->port_range[1],
                };
                break;
        case CONFIG_DRIVER_OPENSTACK:
                o.params.driver = "openstack";
                fill_openstack(cp, &o);
                break;
        default:
                return -EOPNOTSUPP;
        }
        *ret = o;
        return 0;
}

void provider_params_done(struct provider_params_owned *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_os_labels; i++)
                free((void *)p->os_labels[i].instance_properties);
        free(p->os_labels);
        p->os_labels = NULL;
        p->n_os_labels = 0;
        p->params.openstack.labels = NULL;
        p->params.openstack.n_labels = 0;
}

char *provider_params_image_format(const struct config_provider *cp) {
        if (cp->driver != CONFIG_DRIVER_OPENSTACK || !cp->cloud)
                return xstrdup("qcow2");
        _cleanup_(clouds_cloud_freep) struct clouds_cloud *c = NULL;
        if (clouds_yaml_load(cp->cloud, cp->region_name, &c, NULL) < 0 || !c->image_format || !*c->image_format)
                return xstrdup("qcow2");
        /* It names files (<image>-<id>.<format>) and a dib -t argument: a format word only. */
        for (const char *q = c->image_format; *q; q++)
                if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_')
                        return xstrdup("qcow2");
        return xstrdup(c->image_format);
}
