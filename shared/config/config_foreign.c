/* config_foreign.c — providers of the Nodepool drivers poold does not launch for.
 *
 * DESIGN: a site may keep aws, azure, gce, ibmvpc, kubernetes, openshift or
 * openshiftpods providers in the same nodepool.yaml and run a
 * launcher for them (e.g. Nodepool's own) beside poold on the same ZooKeeper.
 * Such a provider is validated against Nodepool's voluptuous schema for its
 * driver (nodepool/driver/<driver>/config.py, getSchema(), written here as
 * cfg_read() tables) plus the checks Nodepool's loader makes (labels defined at
 * the top level, image references, a few driver rules), so a typo is still a
 * FILE:LINE:COL error. It is then kept in config->foreign_providers with its
 * pools and their labels only, and one warning says poold leaves it alone. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_internal.h"

/* Table shorthands (voluptuous types): R = v.Required. */
#define STR(n) { .name = n, .type = CFG_T_STR }
#define STR_R(n) { .name = n, .type = CFG_T_STR, .required = true }
#define INT(n) { .name = n, .type = CFG_T_INT }
#define BOOL(n) { .name = n, .type = CFG_T_BOOL }
#define NUM(n) { .name = n, .type = CFG_T_NUMBER }
#define DICT(n) { .name = n, .type = CFG_T_MAP }
#define LIST(n) { .name = n, .type = CFG_T_LIST }
#define INTMAP(n) { .name = n, .type = CFG_T_INTMAP }
#define OBJS(n, sub_) { .name = n, .type = CFG_T_OBJ_LIST, .sub = &(sub_) }
#define OBJS_R(n, sub_) { .name = n, .type = CFG_T_OBJ_LIST, .required = true, .sub = &(sub_) }
/* ProviderConfig.getCommonSchemaDict(): `name` is required, but config_parse_providers checks that for every driver. */
#define PROVIDER_COMMON STR("name"), STR("driver"), INT("max-concurrency"), INT("priority")
/* ConfigPool.getCommonSchemaDict() */
#define POOL_COMMON INT("max-servers"), DICT("node-attributes"), INT("priority")
#define CONNECTION STR("connection-type"), INT("connection-port"), STR("python-path"), STR("shell-type")

/* ------------------------------------------------------------------ aws */

static const struct cfg_key aws_image_filter_keys[] = {
        STR("Name"), STR("name"),
        { .name = "Values", .type = CFG_T_STRV },
        { .name = "values", .type = CFG_T_STRV },
        {},
};
static const struct cfg_schema aws_image_filter = { .kind = "image filter", .keys = aws_image_filter_keys };
static const char *const aws_image_spec[] = { "image-id", "image-filters", NULL };
static const struct cfg_key aws_cloud_image_keys[] = {
        STR_R("name"), STR_R("username"),
        { .name = "image-id", .type = CFG_T_STR, .group = 's' },
        { .name = "image-filters", .type = CFG_T_OBJ_LIST, .group = 's', .sub = &aws_image_filter },
        CONNECTION, {},
};
static const struct cfg_schema aws_cloud_image = {
        .kind = "cloud-image", .unique_names = true, .keys = aws_cloud_image_keys, .one_of = aws_image_spec,
};
static const char *const aws_import_methods[] = { "snapshot", "ebs-direct", "image", NULL };
static const char *const aws_imds_support[] = { "v2.0", NULL };
static const struct cfg_key aws_diskimage_keys[] = {
        STR_R("name"), STR("username"), BOOL("pause"), CONNECTION, STR("architecture"), BOOL("ena-support"),
        INT("volume-size"), STR("volume-type"),
        { .name = "import-method", .type = CFG_T_ENUM, .choices = aws_import_methods },
        { .name = "imds-support", .type = CFG_T_ENUM, .nullable = true, .choices = aws_imds_support },
        INT("iops"), INT("throughput"), DICT("tags"), {},
};
static const struct cfg_schema aws_diskimage = {
        .kind = "diskimage", .unique_names = true, .keys = aws_diskimage_keys,
};
static const char *const aws_allocation_strategies[] = {
        "prioritized", "price-capacity-optimized", "capacity-optimized", "diversified", "lowest-price", NULL,
};
static const struct cfg_key aws_fleet_keys[] = {
        { .name = "instance-types", .type = CFG_T_LIST, .required = true },
        { .name = "allocation-strategy", .type = CFG_T_ENUM, .required = true, .choices = aws_allocation_strategies },
        {},
};
static const struct cfg_schema aws_fleet = { .keys = aws_fleet_keys };
static const struct cfg_key aws_iam_keys[] = {
        { .name = "name", .type = CFG_T_STR, .group = 'p' }, { .name = "arn", .type = CFG_T_STR, .group = 'p' }, {},
};
static const struct cfg_schema aws_iam = { .keys = aws_iam_keys };
static const char *const aws_imdsv2[] = { "required", "optional", NULL };
static const struct cfg_key aws_label_keys[] = {
        STR_R("name"),
        { .name = "cloud-image", .type = CFG_T_STR, .group = 'i' },
        { .name = "diskimage", .type = CFG_T_STR, .group = 'i' },
        { .name = "instance-type", .type = CFG_T_STR, .group = 't' },
        { .name = "fleet", .type = CFG_T_OBJ, .group = 't', .sub = &aws_fleet },
        STR_R("key-name"), BOOL("ebs-optimized"), STR("volume-type"), INT("volume-size"), INT("iops"),
        INT("throughput"), STR("userdata"),
        { .name = "iam-instance-profile", .type = CFG_T_OBJ, .sub = &aws_iam },
        DICT("tags"), DICT("dynamic-tags"), BOOL("use-spot"),
        { .name = "imdsv2", .type = CFG_T_ENUM, .nullable = true, .choices = aws_imdsv2 },
        BOOL("dedicated-host"), {},
};
static const struct cfg_schema aws_label = { .kind = "label", .unique_names = true, .keys = aws_label_keys };
static const struct cfg_key aws_pool_keys[] = {
        POOL_COMMON, STR_R("name"), OBJS_R("labels", aws_label), STR("security-group-id"), STR("subnet-id"),
        BOOL("public-ip-address"), BOOL("public-ipv4"), BOOL("public-ipv6"), BOOL("host-key-checking"),
        INT("max-cores"), INT("max-ram"), INTMAP("max-resources"), STR("availability-zone"), {},
};
static const struct cfg_schema aws_pool = { .kind = "pool", .unique_names = true, .keys = aws_pool_keys };
static const struct cfg_key aws_object_storage_keys[] = { STR_R("bucket-name"), {} };
static const struct cfg_schema aws_object_storage = { .keys = aws_object_storage_keys };
static const char *const aws_image_formats[] = { "ova", "vhd", "vhdx", "vmdk", "raw", NULL };
static const struct cfg_key aws_provider_keys[] = {
        PROVIDER_COMMON, OBJS_R("pools", aws_pool), STR_R("region-name"), NUM("rate"), STR("profile-name"),
        OBJS("cloud-images", aws_cloud_image), OBJS("diskimages", aws_diskimage), INT("boot-timeout"),
        INT("launch-timeout"), INT("launch-retries"),
        { .name = "object-storage", .type = CFG_T_OBJ, .sub = &aws_object_storage },
        { .name = "image-format", .type = CFG_T_ENUM, .choices = aws_image_formats },
        INT("image-import-timeout"), INT("max-servers"), INT("max-cores"), INT("max-ram"),
        INTMAP("max-resources"), STR("post-upload-hook"), {},
};
static const struct cfg_schema aws_provider = { .keys = aws_provider_keys };

/* ---------------------------------------------------------------- azure */

static const struct cfg_key azure_image_reference_keys[] = {
        STR_R("sku"), STR_R("publisher"), STR_R("version"), STR_R("offer"), {},
};
static const struct cfg_schema azure_image_reference = { .keys = azure_image_reference_keys };
static const struct cfg_key azure_image_filter_keys[] = { STR("location"), STR("name"), DICT("tags"), {} };
static const struct cfg_schema azure_image_filter = { .keys = azure_image_filter_keys };
static const struct cfg_key azure_gallery_image_keys[] = { STR_R("gallery-name"), STR_R("name"), STR("version"), {} };
static const struct cfg_schema azure_gallery_image = { .keys = azure_gallery_image_keys };
static const char *const azure_image_spec[] = {
        "image-reference", "image-id", "image-filter", "community-gallery-image", "shared-gallery-image", NULL,
};
static const struct cfg_key azure_cloud_image_keys[] = {
        STR_R("name"), STR_R("username"), STR("password"), BOOL("generate-password"), STR("key"),
        { .name = "image-reference", .type = CFG_T_OBJ, .group = 's', .sub = &azure_image_reference },
        { .name = "image-id", .type = CFG_T_STR, .group = 's' },
        { .name = "image-filter", .type = CFG_T_OBJ, .group = 's', .sub = &azure_image_filter },
        { .name = "community-gallery-image", .type = CFG_T_OBJ, .group = 's', .sub = &azure_gallery_image },
        { .name = "shared-gallery-image", .type = CFG_T_OBJ, .group = 's', .sub = &azure_gallery_image },
        CONNECTION, {},
};
static const struct cfg_schema azure_cloud_image = {
        .kind = "cloud-image", .unique_names = true, .keys = azure_cloud_image_keys, .one_of = azure_image_spec,
};
static const struct cfg_key azure_diskimage_keys[] = {
        STR_R("name"), STR("username"), STR("key"), BOOL("pause"), CONNECTION, DICT("tags"), {},
};
static const struct cfg_schema azure_diskimage = {
        .kind = "diskimage", .unique_names = true, .keys = azure_diskimage_keys,
};
static const struct cfg_key azure_hardware_profile_keys[] = { STR_R("vm-size"), {} };
static const struct cfg_schema azure_hardware_profile = { .keys = azure_hardware_profile_keys };
static const struct cfg_key azure_label_keys[] = {
        STR_R("name"), STR("cloud-image"), STR("diskimage"),
        { .name = "hardware-profile", .type = CFG_T_OBJ, .required = true, .sub = &azure_hardware_profile },
        DICT("tags"), DICT("dynamic-tags"), STR("user-data"), STR("custom-data"), INT("volume-size"), {},
};
static const struct cfg_schema azure_label = { .kind = "label", .unique_names = true, .keys = azure_label_keys };
static const struct cfg_key azure_pool_keys[] = {
        POOL_COMMON, STR_R("name"), OBJS_R("labels", azure_label), BOOL("ipv4"), BOOL("ipv6"),
        BOOL("public-ipv4"), BOOL("public-ipv6"), BOOL("use-internal-ip"), BOOL("host-key-checking"), {},
};
static const struct cfg_schema azure_pool = { .kind = "pool", .unique_names = true, .keys = azure_pool_keys };
static const struct cfg_key azure_network_keys[] = { STR("resource-group"), STR("network"), STR("subnet"), {} };
static const struct cfg_schema azure_network = { .keys = azure_network_keys };
static const struct cfg_key azure_provider_keys[] = {
        PROVIDER_COMMON, OBJS_R("pools", azure_pool), STR_R("location"), STR_R("resource-group"),
        STR_R("resource-group-location"), STR("subnet-id"),
        { .name = "network", .type = CFG_T_STR_OR_OBJ, .sub = &azure_network },
        OBJS("cloud-images", azure_cloud_image), OBJS("diskimages", azure_diskimage), STR_R("auth-path"),
        BOOL("ipv4"), BOOL("ipv6"), BOOL("public-ipv4"), BOOL("public-ipv6"), BOOL("use-internal-ip"),
        BOOL("host-key-checking"), STR("post-upload-hook"), NUM("rate"), INT("boot-timeout"),
        INT("launch-timeout"), INT("launch-retries"), STR("zuul-public-key"), {},
};
static const struct cfg_schema azure_provider = { .keys = azure_provider_keys };

/* ------------------------------------------------------------------ gce */

static const struct cfg_key gce_label_keys[] = {
        STR_R("name"), STR_R("cloud-image"), STR_R("instance-type"), STR("volume-type"), INT("volume-size"), {},
};
static const struct cfg_schema gce_label = { .kind = "label", .unique_names = true, .keys = gce_label_keys };
static const struct cfg_key gce_pool_keys[] = {
        POOL_COMMON, STR_R("name"), OBJS_R("labels", gce_label), BOOL("use-internal-ip"), {},
};
static const struct cfg_schema gce_pool = { .kind = "pool", .unique_names = true, .keys = gce_pool_keys };
/* The schema leaves `name` optional, but Nodepool's loader indexes the image by it. */
static const struct cfg_key gce_cloud_image_keys[] = {
        STR_R("name"), STR("connection-type"), INT("connection-port"), STR("shell-type"), STR("image-id"),
        STR("image-project"), STR("image-family"), STR("username"), STR("key"), STR("python-path"), {},
};
static const struct cfg_schema gce_cloud_image = {
        .kind = "cloud-image", .unique_names = true, .keys = gce_cloud_image_keys,
};
static const struct cfg_key gce_provider_keys[] = {
        PROVIDER_COMMON, OBJS_R("pools", gce_pool), STR_R("region"), STR_R("project"), STR_R("zone"),
        OBJS("cloud-images", gce_cloud_image), INT("boot-timeout"), INT("launch-timeout"), INT("launch-retries"),
        INT("rate-limit"), {},
};
static const struct cfg_schema gce_provider = { .keys = gce_provider_keys };

/* --------------------------------------------------------------- ibmvpc */

static const struct cfg_key ibmvpc_os_keys[] = {
        STR("architecture"), BOOL("dedicated-host-only"), STR("display-name"), STR("family"), STR("href"),
        STR("name"), STR("vendor"), STR("version"), {},
};
static const struct cfg_schema ibmvpc_os = { .keys = ibmvpc_os_keys };
static const struct cfg_key ibmvpc_image_filter_keys[] = {
        { .name = "operating-system", .type = CFG_T_OBJ, .sub = &ibmvpc_os }, STR("owner-type"), STR("status"), {},
};
static const struct cfg_schema ibmvpc_image_filter = { .keys = ibmvpc_image_filter_keys };
static const char *const ibmvpc_image_spec[] = { "image-href", "image-id", "image-name", "image-filter", NULL };
static const struct cfg_key ibmvpc_cloud_image_keys[] = {
        STR_R("name"), STR_R("username"), { .name = "keys", .type = CFG_T_STRV },
        { .name = "image-href", .type = CFG_T_STR, .group = 's' },
        { .name = "image-id", .type = CFG_T_STR, .group = 's' },
        { .name = "image-name", .type = CFG_T_STR, .group = 's' },
        { .name = "image-filter", .type = CFG_T_OBJ, .group = 's', .sub = &ibmvpc_image_filter },
        CONNECTION, {},
};
static const struct cfg_schema ibmvpc_cloud_image = {
        .kind = "cloud-image", .unique_names = true, .keys = ibmvpc_cloud_image_keys, .one_of = ibmvpc_image_spec,
};
static const struct cfg_key ibmvpc_diskimage_keys[] = {
        STR_R("name"), STR_R("operating-system"), BOOL("pause"), CONNECTION, {},
};
static const struct cfg_schema ibmvpc_diskimage = {
        .kind = "diskimage", .unique_names = true, .keys = ibmvpc_diskimage_keys,
};
static const struct cfg_key ibmvpc_label_keys[] = {
        STR_R("name"), STR("cloud-image"), STR("diskimage"), STR_R("profile"), STR("user-data"), {},
};
static const struct cfg_schema ibmvpc_label = { .kind = "label", .unique_names = true, .keys = ibmvpc_label_keys };
static const struct cfg_key ibmvpc_pool_keys[] = {
        POOL_COMMON, STR_R("name"), OBJS_R("labels", ibmvpc_label), STR("zone"), STR("subnet"),
        BOOL("public-ipv4"), BOOL("use-internal-ip"), BOOL("host-key-checking"), {},
};
static const struct cfg_schema ibmvpc_pool = { .kind = "pool", .unique_names = true, .keys = ibmvpc_pool_keys };
static const struct cfg_key ibmvpc_quota_keys[] = { INT("instances"), INT("cores"), INT("ram"), {} };
static const struct cfg_schema ibmvpc_quota = { .keys = ibmvpc_quota_keys };
static const struct cfg_key ibmvpc_object_storage_keys[] = {
        STR_R("instance-name"), STR_R("endpoint"), STR_R("bucket-name"), {},
};
static const struct cfg_schema ibmvpc_object_storage = { .keys = ibmvpc_object_storage_keys };
static const struct cfg_key ibmvpc_provider_keys[] = {
        PROVIDER_COMMON, OBJS_R("pools", ibmvpc_pool), STR_R("vpc"), STR_R("region"), STR("zone"), STR("subnet"),
        OBJS("cloud-images", ibmvpc_cloud_image), OBJS("diskimages", ibmvpc_diskimage),
        { .name = "quota", .type = CFG_T_OBJ, .sub = &ibmvpc_quota },
        BOOL("public-ipv4"), BOOL("use-internal-ip"), BOOL("host-key-checking"), STR("post-upload-hook"),
        NUM("rate"), INT("boot-timeout"), INT("launch-timeout"), INT("launch-retries"), STR("credentials-file"),
        { .name = "object-storage", .type = CFG_T_OBJ, .sub = &ibmvpc_object_storage },
        {},
};
static const struct cfg_schema ibmvpc_provider = { .keys = ibmvpc_provider_keys };

/* ------------------------------------------ kubernetes, openshift, openshiftpods */

static const struct cfg_key k8s_env_keys[] = { STR_R("name"), STR_R("value"), {} };
static const struct cfg_schema k8s_env = { .kind = "env entry", .keys = k8s_env_keys };
/* A label either describes the pod (…_from_nodepool) or gives a raw `spec` (…_from_user): v.Any(a, b). */
#define K8S_LABEL_BODY                                                                                       \
        STR("image-pull"), STR("python-path"), STR("shell-type"), INT("cpu"), INT("memory"), INT("storage"),  \
                INT("cpu-limit"), INT("memory-limit"), INT("storage-limit"), NUM("gpu"), STR("gpu-resource"),  \
                OBJS("env", k8s_env), DICT("node-selector"), BOOL("privileged"), STR("scheduler-name"),        \
                LIST("volumes"), LIST("volume-mounts"), DICT("labels"), DICT("dynamic-labels"),                \
                DICT("annotations"), INTMAP("extra-resources")
static const struct cfg_key k8s_label_user_keys[] = {
        STR_R("name"), STR_R("type"), { .name = "spec", .type = CFG_T_MAP, .required = true }, DICT("labels"),
        DICT("dynamic-labels"), DICT("annotations"), {},
};
static const struct cfg_schema k8s_label_user = {
        .kind = "label", .unique_names = true, .keys = k8s_label_user_keys,
};
static const struct cfg_key k8s_label_keys[] = { STR_R("name"), STR_R("type"), STR("image"), K8S_LABEL_BODY, {} };
static const struct cfg_schema k8s_label = {
        .kind = "label", .unique_names = true, .keys = k8s_label_keys, .variant_key = "spec",
        .variant = &k8s_label_user,
};
static const struct cfg_key openshift_label_keys[] = {
        STR_R("name"), STR_R("type"), STR("image"), LIST("image-pull-secrets"), K8S_LABEL_BODY, {},
};
static const struct cfg_schema openshift_label = {
        .kind = "label", .unique_names = true, .keys = openshift_label_keys, .variant_key = "spec",
        .variant = &k8s_label_user,
};
static const struct cfg_key pods_label_user_keys[] = {
        STR_R("name"), { .name = "spec", .type = CFG_T_MAP, .required = true }, DICT("labels"), DICT("dynamic-labels"),
        DICT("annotations"), {},
};
static const struct cfg_schema pods_label_user = {
        .kind = "label", .unique_names = true, .keys = pods_label_user_keys,
};
static const struct cfg_key pods_label_keys[] = {
        STR_R("name"), STR_R("image"), LIST("image-pull-secrets"), K8S_LABEL_BODY, {},
};
static const struct cfg_schema pods_label = {
        .kind = "label", .unique_names = true, .keys = pods_label_keys, .variant_key = "spec",
        .variant = &pods_label_user,
};
#define K8S_POOL_BODY                                                                                        \
        POOL_COMMON, STR_R("name"), INT("max-cores"), INT("max-ram"), INTMAP("max-resources"),               \
                INT("default-label-cpu"), INT("default-label-memory"), INT("default-label-storage"),          \
                INT("default-label-cpu-limit"), INT("default-label-memory-limit"),                           \
                INT("default-label-storage-limit"), INTMAP("default-label-extra-resources")
static const struct cfg_key k8s_pool_keys[] = { K8S_POOL_BODY, OBJS_R("labels", k8s_label), {} };
static const struct cfg_schema k8s_pool = { .kind = "pool", .unique_names = true, .keys = k8s_pool_keys };
static const struct cfg_key openshift_pool_keys[] = { K8S_POOL_BODY, OBJS_R("labels", openshift_label), {} };
static const struct cfg_schema openshift_pool = { .kind = "pool", .unique_names = true, .keys = openshift_pool_keys };
static const struct cfg_key pods_pool_keys[] = { K8S_POOL_BODY, OBJS_R("labels", pods_label), {} };
static const struct cfg_schema pods_pool = { .kind = "pool", .unique_names = true, .keys = pods_pool_keys };
#define K8S_LIMITS INT("max-cores"), INT("max-ram"), INTMAP("max-resources")
static const struct cfg_key k8s_provider_keys[] = {
        PROVIDER_COMMON, OBJS_R("pools", k8s_pool), STR("context"), INT("launch-retries"), INT("max-servers"),
        K8S_LIMITS, {},
};
static const struct cfg_schema k8s_provider = { .keys = k8s_provider_keys };
static const struct cfg_key openshift_provider_keys[] = {
        PROVIDER_COMMON, OBJS_R("pools", openshift_pool), STR_R("context"), INT("launch-retries"),
        INT("max-projects"), K8S_LIMITS, {},
};
static const struct cfg_schema openshift_provider = { .keys = openshift_provider_keys };
static const struct cfg_key pods_provider_keys[] = {
        PROVIDER_COMMON, OBJS_R("pools", pods_pool), STR_R("context"), INT("launch-retries"), INT("max-pods"),
        K8S_LIMITS, {},
};
static const struct cfg_schema pods_provider = { .keys = pods_provider_keys };

/* ------------------------------------------------------------ drivers */

static void check_aws(struct cctx *c, const struct cnode *m, const char *where);
static void check_ibmvpc(struct cctx *c, const struct cnode *m, const char *where);

static const struct foreign_driver {
        const char *name;
        const struct cfg_schema *schema;
        bool images;            /* labels refer to the provider's cloud-images/diskimages by name */
        void (*check)(struct cctx *c, const struct cnode *m, const char *where);
} drivers[] = {
        { .name = "aws", .schema = &aws_provider, .images = true, .check = check_aws },
        { .name = "azure", .schema = &azure_provider, .images = true },
        { .name = "gce", .schema = &gce_provider, .images = true },
        { .name = "ibmvpc", .schema = &ibmvpc_provider, .images = true, .check = check_ibmvpc },
        { .name = "kubernetes", .schema = &k8s_provider },
        { .name = "openshift", .schema = &openshift_provider },
        { .name = "openshiftpods", .schema = &pods_provider },
};

static const struct foreign_driver *find_driver(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(drivers); i++)
                if (strcmp(drivers[i].name, name) == 0) return &drivers[i];
        return NULL;
}

bool config_foreign_driver(const char *driver) { return find_driver(driver) != NULL; }

/* ------------------------------------------------ quiet tree accessors
 * cfg_read() has reported every type problem; these read what it accepted. */

static const char *scalar(const struct cnode *m, const char *key) {
        const struct cnode *v = m && m->type == CNODE_MAP ? cnode_get(m, key) : NULL;
        return v && v->type == CNODE_SCALAR && !v->bad && !cnode_is_null(v) ? v->value : NULL;
}

static const struct cnode *seq(const struct cnode *m, const char *key) {
        const struct cnode *v = m && m->type == CNODE_MAP ? cnode_get(m, key) : NULL;
        return v && v->type == CNODE_SEQ && !v->bad ? v : NULL;
}

static bool list_has_name(const struct cnode *list, const char *name) {
        for (size_t i = 0; list && i < list->n; i++) {
                const char *n = scalar(list->children[i], "name");
                if (n && strcmp(n, name) == 0) return true;
        }
        return false;
}

static bool flag(const struct cnode *m, const char *key) {
        const struct cnode *v = m && m->type == CNODE_MAP ? cnode_get(m, key) : NULL;
        bool b = false;
        return v && cfg_parse_bool(v, &b) && b;
}

/* "label 'x' of pool 'p' of provider 'a'" for item I of LIST; caller frees. */
static char *item_where(const struct cnode *list, size_t i, const char *kind, const char *where) {
        _cleanup_free_ char *obj = cfg_object_name(list->children[i], kind, i);
        return xasprintf("%s of %s", obj, where);
}

/* ------------------------------------------------------ loader checks */

/* Nodepool's loader: pool labels are top-level labels; image references resolve. */
static void check_references(struct cctx *c, const struct config *cfg, const struct foreign_driver *d,
                             const struct cnode *m, const char *where) {
        const struct cnode *dimages = seq(m, "diskimages"), *cimages = seq(m, "cloud-images");
        for (size_t i = 0; dimages && i < dimages->n; i++) {
                const char *n = scalar(dimages->children[i], "name");
                if (n && !config_find_diskimage(cfg, n))
                        cfg_error(c, cnode_get(dimages->children[i], "name"),
                                  "diskimage '%s' of %s is not defined in the top-level diskimages", n, where);
        }
        const struct cnode *pools = seq(m, "pools");
        for (size_t i = 0; pools && i < pools->n; i++) {
                const struct cnode *pool = pools->children[i];
                if (pool->type != CNODE_MAP) continue;
                _cleanup_free_ char *pw = item_where(pools, i, "pool", where);
                const struct cnode *labels = seq(pool, "labels");
                for (size_t k = 0; labels && k < labels->n; k++) {
                        const struct cnode *l = labels->children[k];
                        const char *name = scalar(l, "name");
                        if (name) config_check_label_defined(c, cfg, cnode_get(l, "name"), name, pw);
                        if (!d->images) continue;
                        _cleanup_free_ char *lw = item_where(labels, k, "label", pw);
                        const char *ci = scalar(l, "cloud-image"), *di = scalar(l, "diskimage");
                        if (ci && !list_has_name(cimages, ci))
                                cfg_error(c, cnode_get(l, "cloud-image"),
                                          "cloud-image '%s' of %s is not defined in the provider's cloud-images", ci,
                                          lw);
                        if (di && !list_has_name(dimages, di))
                                cfg_error(c, cnode_get(l, "diskimage"),
                                          "diskimage '%s' of %s is not listed in the diskimages of %s", di, lw, where);
                }
        }
}

static void check_aws(struct cctx *c, const struct cnode *m, const char *where) {
        const struct cnode *dimages = seq(m, "diskimages");
        for (size_t i = 0; dimages && i < dimages->n; i++) {
                const struct cnode *d = dimages->children[i];
                const char *imds = scalar(d, "imds-support"), *method = scalar(d, "import-method");
                if (imds && strcmp(imds, "v2.0") == 0 && method && strcmp(method, "image") == 0) {
                        _cleanup_free_ char *dw = item_where(dimages, i, "diskimage", where);
                        cfg_error(c, cnode_get(d, "imds-support"),
                                  "%s: imds-support v2.0 needs import-method 'snapshot' or 'ebs-direct'", dw);
                }
        }
        const struct cnode *pools = seq(m, "pools");
        for (size_t i = 0; pools && i < pools->n; i++) {
                const struct cnode *pool = pools->children[i], *labels = seq(pool, "labels");
                _cleanup_free_ char *pw = item_where(pools, i, "pool", where);
                for (size_t k = 0; labels && k < labels->n; k++) {
                        const struct cnode *l = labels->children[k];
                        if (!flag(l, "dedicated-host")) continue;
                        _cleanup_free_ char *lw = item_where(labels, k, "label", pw);
                        if (flag(l, "use-spot"))
                                cfg_error(c, cnode_get(l, "use-spot"), "%s: spot instances cannot use dedicated hosts",
                                          lw);
                        if (!scalar(pool, "availability-zone"))
                                cfg_error(c, cnode_get(l, "dedicated-host"),
                                          "%s: dedicated-host needs the pool's availability-zone", lw);
                }
        }
}

static void check_ibmvpc(struct cctx *c, const struct cnode *m, const char *where) {
        const char *name = scalar(m, "name");
        if (name && strchr(name, '_'))
                cfg_error(c, cnode_get(m, "name"), "%s: an ibmvpc provider name may not contain '_'", where);
        const struct cnode *pools = seq(m, "pools");
        for (size_t i = 0; pools && i < pools->n; i++) {
                const struct cnode *pool = pools->children[i];
                if (pool->type != CNODE_MAP) continue;
                _cleanup_free_ char *pw = item_where(pools, i, "pool", where);
                const char *pname = scalar(pool, "name");
                if (pname && pname[0] == '_')
                        cfg_error(c, cnode_get(pool, "name"), "%s: an ibmvpc pool name may not start with '_'", pw);
                /* Nodepool's loader reads these unconditionally. */
                if (!cnode_get(pool, "max-servers")) cfg_require(c, pool, "max-servers", pw);
                if (!scalar(pool, "zone") && !scalar(m, "zone"))
                        cfg_error(c, pool, "%s needs 'zone', in the pool or in the provider", pw);
                if (!scalar(pool, "subnet") && !scalar(m, "subnet"))
                        cfg_error(c, pool, "%s needs 'subnet', in the pool or in the provider", pw);
        }
}

/* --------------------------------------------------------------- parse */

void config_parse_foreign_provider(struct cctx *c, struct config *cfg, const struct cnode *m, const char *driver,
                                   const char *where) {
        const struct foreign_driver *d = find_driver(driver);
        if (!d) return;
        cfg_read(c, m, d->schema, where, NULL);
        check_references(c, cfg, d, m, where);
        if (d->check) d->check(c, m, where);

        const char *name = scalar(m, "name");
        cfg_warning(c, cnode_get_key(m, "driver"),
                    "%s uses driver '%s', which poold does not launch nodes for: requests for its labels are left to a launcher "
                    "running beside poold on the same ZooKeeper (e.g. Nodepool's nodepool-launcher)%s",
                    where, d->name,
                    seq(m, "diskimages") && seq(m, "diskimages")->n ? "; poold-builder does not upload its diskimages"
                                                                    : "");
        if (!name) return;
        struct config_foreign_provider *fp = &cfg->foreign_providers[cfg->n_foreign_providers++];
        *fp = (struct config_foreign_provider){ .name = xstrdup(name), .driver = xstrdup(d->name) };
        const struct cnode *pools = seq(m, "pools");
        fp->pools = xnew(struct config_foreign_pool, pools ? pools->n : 0);
        for (size_t i = 0; pools && i < pools->n; i++) {
                const char *pname = scalar(pools->children[i], "name");
                if (!pname) continue;
                struct config_foreign_pool *fpool = &fp->pools[fp->n_pools++];
                fpool->name = xstrdup(pname);
                const struct cnode *labels = seq(pools->children[i], "labels");
                for (size_t k = 0; labels && k < labels->n; k++) {
                        const char *ln = scalar(labels->children[k], "name");
                        if (ln && !config_strv_contains(&fpool->labels, ln)) strv_add(&fpool->labels, ln);
                }
        }
}

void config_foreign_provider_clear(struct config_foreign_provider *p) {
        free(p->name);
        free(p->driver);
        for (size_t i = 0; i < p->n_pools; i++) {
                free(p->pools[i].name);
                strv_clear(&p->pools[i].labels);
        }
        free(p->pools);
}
