/* libvirt_xml.h — pure text functions of the libvirt driver: XML generation with
 * escaping, parsing our own instance metadata back, and the naming scheme of the
 * domains and volumes we create. No libvirt calls; any thread. */
#pragma once

#include <stdint.h>

#include "provider.h"

/* Namespace of our <metadata> element (domain metadata is how leaks are found). */
#define LVXML_NS "https://poold.dev/xmlns/instance/1.0"
#define LVXML_NS_PREFIX "poold"

/* XML-escape S for element text and attribute values (& < > " ' all escaped).
 * Characters XML 1.0 cannot carry at all (C0 controls other than TAB, LF, CR)
 * become '?'. Returns a new string (caller frees); NULL S gives "". */
char *lvxml_escape(const char *s);
/* Decode S[0..n): &amp; &lt; &gt; &quot; &apos; &#N; &#xH; (to UTF-8).
 * Returns 0 and a new string, or -EBADMSG on a malformed entity. */
int lvxml_unescape(const char *s, size_t n, char **ret);

/* A domain to define. Strings are borrowed; NULL optional strings are omitted. */
struct lvxml_domain {
        const char *name;            /* domain name */
        const char *type;            /* "qemu" or "kvm" */
        int memory_mib, vcpus;
        const char *storage_pool;    /* disk: <source pool= volume=> */
        const char *volume;
        const char *console_path;    /* serial console log file, optional */
        int user_port;               /* > 0: user-mode net, ssh forward 127.0.0.1:user_port -> 22 */
        const char *network;         /* user_port == 0: <interface type='network'> on this */
        /* Our metadata. */
        const char *provider, *pool, *node_id, *label, *hostname, *image;
        const struct provider_kv *tags;
        size_t n_tags;
};
/* Domain XML for D (caller frees). */
char *lvxml_domain_xml(const struct lvxml_domain *d);

/* Our metadata read back (virDomainGetMetadata output). Strings may be NULL. */
struct lvxml_instance {
        char *provider, *pool, *node_id, *label, *hostname, *image;
        int port, memory_mib, vcpus;
        struct provider_tag *tags;
        size_t n_tags;
};
/* Parse the <instance> element (any or no namespace prefix). Unknown child
 * elements are ignored. Returns 0, or -EBADMSG when XML is malformed. */
int lvxml_instance_parse(const char *xml, struct lvxml_instance **ret);
void lvxml_instance_free(struct lvxml_instance *inst);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct lvxml_instance *, lvxml_instance_free);

/* Volume XML: a plain volume of CAPACITY bytes in FORMAT, or a copy-on-write
 * overlay of BACKING_PATH (format BACKING_FORMAT). Caller frees. */
char *lvxml_volume_xml(const char *name, uint64_t capacity, const char *format);
char *lvxml_overlay_xml(const char *name, uint64_t capacity, const char *backing_path, const char *backing_format);
/* A `dir` storage pool at PATH. */
char *lvxml_dir_pool_xml(const char *name, const char *path);

/* Naming. Names are built from percent-encoded fields: bytes outside
 * [A-Za-z0-9_.-] (and a leading '.') become %XX, so '/', '@', '=', ':' and ','
 * never appear inside a field and names are valid file names. */
char *lvxml_name_encode(const char *s);
/* -EINVAL on a malformed %XX. */
int lvxml_name_decode(const char *s, size_t n, char **ret);

/* Domain name of node NODE_ID: "<enc(provider)>-np<node_id>"; the overlay volume
 * is that plus ".qcow2". Caller frees. */
char *lvxml_domain_name(const char *provider, const char *node_id);
/* If NAME is a domain name (or, with overlay set, an overlay volume name) of
 * PROVIDER, return 0 and the node id in *ret_node_id; -EINVAL otherwise. */
int lvxml_domain_name_parse(const char *name, const char *provider, bool overlay, char **ret_node_id);

/* Image volume name "<enc provider>@<enc name>@<enc format>[@<enc k>=<enc v>]...":
 * volumes carry no metadata in libvirt, so the upload's tags live in its name.
 * Returns 0, or -ENAMETOOLONG if it would exceed 255 bytes (a file name). */
int lvxml_image_volume_name(const char *provider, const char *image_name, const char *format,
                            const struct provider_kv *tags, size_t n_tags, char **ret);
struct lvxml_image_name {
        char *provider, *name, *format;
        struct provider_tag *tags;
        size_t n_tags;
};
/* Parse an image volume name; -EINVAL if VOL is not one. */
int lvxml_image_volume_parse(const char *vol, struct lvxml_image_name **ret);
void lvxml_image_name_free(struct lvxml_image_name *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct lvxml_image_name *, lvxml_image_name_free);
