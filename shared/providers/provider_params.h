/* provider_params.h — struct provider_params from a loaded provider config.
 *
 * The one place that maps nodepool.yaml's provider model (config.h) onto the
 * drivers' plain parameters (provider.h), so the launcher and poolctl open
 * providers the same way. Any thread. */
#pragma once

#include "config.h"
#include "provider.h"

/* Storage behind a struct provider_params filled from a config: the strings
 * are borrowed from the config (keep it alive while the params are used); the
 * arrays built here are freed by provider_params_done. */
struct provider_params_owned {
        struct provider_params params;
        struct provider_openstack_label *os_labels;
        size_t n_os_labels;
};

/* Fill *ret from CP (any driver). -EOPNOTSUPP for a driver that has no
 * provider_ops (static: nothing to open). *ret is valid until
 * provider_params_done(ret) and while the config lives. */
int provider_params_from_config(const struct config_provider *cp, struct provider_params_owned *ret);
void provider_params_done(struct provider_params_owned *p);

/* The disk format the builder builds and uploads for CP (caller frees): the
 * selected clouds.yaml cloud's image_format for an openstack provider (read
 * from the files clouds_yaml_load finds, so call it where blocking on a small
 * file read is fine), "qcow2" for every other driver. Never fails: when
 * clouds.yaml cannot be read it is the driver's default "qcow2" (opening the
 * provider then reports the real error). Any thread. */
char *provider_params_image_format(const struct config_provider *cp);
