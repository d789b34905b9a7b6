/* clouds_yaml.h — the OpenStack client configuration (clouds.yaml + secure.yaml)
 * as openstacksdk users write it, reduced to what a Keystone v3 client needs.
 *
 * Files: clouds.yaml is the first of $OS_CLIENT_CONFIG_FILE, ./clouds.yaml,
 * ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml (".yml" also
 * accepted next to each); secure.yaml likewise ($OS_CLIENT_SECURE_FILE, same
 * directories), deep-merged over it (its values win). Supported: auth_type
 * `password` (also `v3password`) and `v3applicationcredential`; region_name or
 * regions[], interface, identity_api_version (3 only), image_format, cacert,
 * verify. Scalars get the config loader's %(NODEPOOL_x) substitution.
 *
 * Thread context: pure functions (clouds_yaml_load reads files and the
 * environment); results are plain owned structs. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

enum clouds_auth_type {
        CLOUDS_AUTH_PASSWORD,
        CLOUDS_AUTH_APPLICATION_CREDENTIAL,
        _CLOUDS_AUTH_MAX,
        _CLOUDS_AUTH_INVALID = -EINVAL,
};
const char *clouds_auth_type_to_string(enum clouds_auth_type t);
/* "password"/"v3password" and "v3applicationcredential"; NULL = password. */
enum clouds_auth_type clouds_auth_type_from_string(const char *s);

/* One selected cloud + region. Strings are NULL when not configured. */
struct clouds_cloud {
        char *name;
        char *path;                        /* the clouds.yaml it came from (or the buffer name) */
        enum clouds_auth_type auth_type;
        char *auth_url;
        char *username, *user_id, *password;
        char *project_name, *project_id;
        char *user_domain_name, *user_domain_id;       /* default: domain_name/domain_id, else "Default" */
        char *project_domain_name, *project_domain_id;
        char *app_cred_id, *app_cred_name, *app_cred_secret;
        char *region_name;                 /* the provider's region-name, else the cloud's */
        char *interface;                   /* "public" */
        char *image_format;                /* "qcow2" */
        char *cacert;
        bool verify;                       /* true */
        char *warning;                     /* a problem worth a warning (e.g. file mode), or NULL */
};
void clouds_cloud_free(struct clouds_cloud *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct clouds_cloud *, clouds_cloud_free);

/* Select cloud CLOUD (and REGION, may be NULL) from clouds.yaml text DATA and
 * optional secure.yaml text SECURE (may be NULL). NAME names DATA in messages.
 * Returns 0 and *ret; -ENOENT when the cloud is not defined or REGION is not
 * among its regions; -EINVAL for a syntax error, an unsupported auth type or
 * identity_api_version, or missing credentials. *reterr_msg (may be NULL) gets
 * a message without secrets on failure. */
int clouds_yaml_parse(const char *name, const char *data, size_t len, const char *secure, size_t secure_len,
                      const char *cloud, const char *region, struct clouds_cloud **ret, char **reterr_msg);

/* Path of the first existing file of KIND ("clouds" or "secure") in the search
 * order above; -ENOENT when there is none. HOME comes from the environment. */
int clouds_yaml_find(const char *kind, char **ret_path);

/* Find, read (capped at 1 MiB each) and parse as clouds_yaml_parse. A file
 * readable by group or others gets a `warning` (it holds credentials). */
int clouds_yaml_load(const char *cloud, const char *region, struct clouds_cloud **ret, char **reterr_msg);
