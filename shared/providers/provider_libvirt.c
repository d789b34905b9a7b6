/* provider_libvirt.c — the libvirt provider driver.
 *
 * DESIGN
 * - One virConnect per provider instance; libvirt connections are thread-safe,
 *   so ops run concurrently on worker threads. The only shared driver state is
 *   the host-port reservation bitmap, under `lock`.
 * - A node is a persistent domain "<enc(provider)>-np<node id>" (provider name
 *   percent-encoded, see libvirt_xml.h) so two providers on one host never
 *   collide. Its disk is a qcow2 overlay volume "<domain>.qcow2" in the storage
 *   pool backed by the uploaded image volume (copy-on-write: instant, ~200 KB).
 *   The external id is the domain name.
 * - Everything we create is tagged: domains carry <poold:instance> metadata
 *   (provider, pool, node id, label, port, caller tags); image volumes cannot
 *   carry metadata in libvirt, so their tags are encoded in the volume name.
 *   list()/image_list() find our resources by that, for leak cleanup. An overlay
 *   left without its domain (crash between the two steps) is listed too, as an
 *   ERROR server, so the leak sweep deletes it.
 * - User-mode networking: each node gets a host port from [port_low, port_high]
 *   forwarded to its port 22 on 127.0.0.1 (qemu:commandline; libvirt 9.0 has no
 *   XML for it). A port is free when no domain of ours holds it (bitmap, rebuilt
 *   from domain metadata at open) and a bind() on 127.0.0.1 succeeds. An
 *   exhausted range is -EDQUOT (capacity, the launcher retries later).
 * - libvirt's test:///default driver (in-memory, shared by all connections of
 *   the process) accepts the same domain XML but ignores qemu:commandline and
 *   cannot stream volume contents (virStorageVolUpload is unsupported): there
 *   image_upload creates the volume with the file's size and skips the bytes,
 *   and console_log returns -EOPNOTSUPP. */
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "kvm_probe.h"
#include "libvirt_xml.h"
#include "log.h"
#include "provider.h"

#define LV_CONSOLE_MAX (64 * 1024)   /* console_log returns at most the last 64 KiB */

struct lv {
        virConnectPtr conn;
        char *uri, *storage_pool, *pool_path, *network, *console_dir, *host;
        const char *domain_type;
        bool user_net, is_test, local;
        int port_low, port_high;

        pthread_mutex_t lock;        /* guards the fields below */
        unsigned char *port_held;    /* one byte per port in the range */
        int port_next;               /* round-robin start, spreads reuse of ports */
};

/* domain-type auto: KVM only where a probe boot shows it works (kvm_probe.h).
 * A remote hypervisor cannot be probed from here; libvirt's own capability
 * answer is all there is. Logged once per provider, with the reason. */
static const char *lv_auto_domain_type(const char *provider, const char *uri) {
        if (strncmp(uri, "qemu", 4) != 0) return "qemu";
        if (!strstr(uri, ":///")) {
                log_info("libvirt provider %s: domain type kvm: %s is remote, cannot probe it; set domain-type: qemu "
                         "if its KVM does not work", provider, uri);
                return "kvm";
        }
        bool usable = false;
        _cleanup_free_ char *why = NULL;
        (void)kvm_probe(&usable, &why);
        log_info("libvirt provider %s: domain type %s: %s", provider, usable ? "kvm" : "qemu (TCG)", why);
        return usable ? "kvm" : "qemu";
}

static struct lv *LV(struct provider *p) {
        return p->data;
}

static void lv_silent_error(void *userdata, virErrorPtr err) {
        /* libvirt prints every error to stderr by default; we return them instead. */
}

/* Map the calling thread's last libvirt error to -errno and a message "WHAT: text". */
static int lv_error(char **reterr_msg, int fallback, const char *what) {
        virErrorPtr e = virGetLastError();
        int r = fallback;
        if (e && (e->domain == VIR_FROM_RPC || e->code == VIR_ERR_NO_CONNECT || e->code == VIR_ERR_RPC) &&
            e->code != VIR_ERR_AUTH_FAILED && e->code != VIR_ERR_AUTH_CANCELLED)
                r = EHOSTDOWN; /* libvirtd went away or is not there: the cloud is down (provider.h) */
        else if (e)
                switch (e->code) {
                case VIR_ERR_NO_DOMAIN:
                case VIR_ERR_NO_STORAGE_VOL:
                case VIR_ERR_NO_STORAGE_POOL:
                case VIR_ERR_NO_NETWORK:
                        r = ENOENT;
                        break;
                case VIR_ERR_NO_SUPPORT:
                        r = EOPNOTSUPP;
                        break;
                case VIR_ERR_NO_MEMORY:
                        r = ENOMEM;
                        break;
                case VIR_ERR_AUTH_FAILED:
                case VIR_ERR_AUTH_CANCELLED:
                case VIR_ERR_ACCESS_DENIED:
                        r = EACCES;
                        break;
                case VIR_ERR_SYSTEM_ERROR:
                        if (e->int1 > 0)
                                r = e->int1; /* libvirt stores errno there for system errors */
                        /* A file the hypervisor cannot open is a failed launch, not
                         * refused credentials (-EACCES pauses the provider's pools). */
                        if (r == EACCES || r == EPERM) r = EIO;
                        break;
                default:
                        break;
                }
        const char *m = virGetLastErrorMessage();
        r = provider_error(reterr_msg, r, "%s: %s", what, m ? m : "unknown libvirt error");
        virResetLastError();
        return r;
}

static int lv_last_code(void) {
        virErrorPtr e = virGetLastError();
        return e ? e->code : VIR_ERR_OK;
}

/* ---------------------------------------------------------------- ports */

static bool port_bindable(int port) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        int one = 1;
        /* QEMU's slirp sets SO_REUSEADDR too, so a port in TIME_WAIT is usable. */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        return bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
}

static void port_mark(struct lv *lv, int port, bool held) {
        if (port < lv->port_low || port > lv->port_high)
                return;
        pthread_mutex_lock(&lv->lock);
        lv->port_held[port - lv->port_low] = held;
        pthread_mutex_unlock(&lv->lock);
}

static int port_reserve(struct lv *lv, int *ret_port) {
        int n = lv->port_high - lv->port_low + 1, r = -EDQUOT;
        pthread_mutex_lock(&lv->lock);
        for (int i = 0; i < n; i++) {
                int idx = (lv->port_next + i) % n;
                if (lv->port_held[idx] || !port_bindable(lv->port_low + idx))
                        continue;
                lv->port_held[idx] = 1;
                lv->port_next = (idx + 1) % n;
                *ret_port = lv->port_low + idx;
                r = 0;
                break;
        }
        pthread_mutex_unlock(&lv->lock);
        return r;
}

/* ---------------------------------------------------------------- helpers */

static char *overlay_name(const char *domain) {
        return xasprintf("%s.qcow2", domain);
}

static char *console_path(struct lv *lv, const char *domain) {
        return lv->console_dir ? xasprintf("%s/%s.log", lv->console_dir, domain) : NULL;
}

static bool valid_node_id(const char *id) {
        if (!id || !*id || strlen(id) > 32)
                return false;
        for (const char *c = id; *c; c++)
                if (*c < '0' || *c > '9')
                        return false;
        return true;
}

static void tags_add(struct provider_tag **tags, size_t *n, const char *key, const char *value) {
        if (!value)
                return;
        for (size_t i = 0; i < *n; i++)
                if (strcmp((*tags)[i].key, key) == 0)
                        return;
        *tags = xrealloc(*tags, (*n + 1) * sizeof(**tags));
        (*tags)[*n].key = xstrdup(key);
        (*tags)[*n].value = xstrdup(value);
        (*n)++;
}

static enum provider_server_state state_from_libvirt(int st) {
        switch (st) {
        case VIR_DOMAIN_RUNNING:
        case VIR_DOMAIN_BLOCKED:
                return PROVIDER_SERVER_ACTIVE;
        case VIR_DOMAIN_NOSTATE:
        case VIR_DOMAIN_PAUSED:
                return PROVIDER_SERVER_BUILDING;
        default: /* shutdown, shutoff, crashed, pmsuspended: not usable */
                return PROVIDER_SERVER_ERROR;
        }
}

/* Our metadata of DOM, or -ENODATA if it has none (not ours). */
static int domain_instance(virDomainPtr dom, struct lvxml_instance **ret) {
        char *xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, LVXML_NS, 0);
        if (!xml) {
                virResetLastError();
                return -ENODATA;
        }
        int r = lvxml_instance_parse(xml, ret);
        free(xml);
        return r;
}

/* Build the server description from what we know; takes nothing. */
static struct provider_server *server_new(struct lv *lv, const char *name, const struct lvxml_instance *inst,
                                          enum provider_server_state state) {
        struct provider_server *s = xnew(struct provider_server, 1);
        s->external_id = xstrdup(name);
        s->state = state;
        s->host_id = xstrdup(lv->host);
        s->resources.instances = 1;
        if (inst) {
                s->resources.cores = inst->vcpus;
                s->resources.ram_mib = inst->memory_mib;
                if (inst->port > 0) {
                        s->interface_ip = xstrdup("127.0.0.1");
                        s->public_ipv4 = xstrdup("127.0.0.1");
                        s->connection_port = inst->port;
                }
                for (size_t i = 0; i < inst->n_tags; i++)
                        tags_add(&s->tags, &s->n_tags, inst->tags[i].key, inst->tags[i].value);
                /* The leak sweep keys on these; make sure they are there whatever the caller tagged. */
                tags_add(&s->tags, &s->n_tags, "nodepool_provider_name", inst->provider);
                tags_add(&s->tags, &s->n_tags, "nodepool_pool_name", inst->pool);
                tags_add(&s->tags, &s->n_tags, "nodepool_node_id", inst->node_id);
        }
        return s;
}

/* Network mode: the first lease address, if any yet. */
static void server_fill_addresses(virDomainPtr dom, struct provider_server *s) {
        virDomainInterfacePtr *ifaces = NULL;
        int n = virDomainInterfaceAddresses(dom, &ifaces, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0);
        if (n < 0) {
                virResetLastError();
                return;
        }
        for (int i = 0; i < n; i++) {
                for (unsigned j = 0; j < ifaces[i]->naddrs; j++) {
                        virDomainIPAddressPtr a = &ifaces[i]->addrs[j];
                        if (a->type == VIR_IP_ADDR_TYPE_IPV4 && !s->private_ipv4)
                                s->private_ipv4 = xstrdup(a->addr);
                        else if (a->type == VIR_IP_ADDR_TYPE_IPV6 && !s->public_ipv6)
                                s->public_ipv6 = xstrdup(a->addr);
                }
                virDomainInterfaceFree(ifaces[i]);
        }
        free(ifaces);
        if (!s->interface_ip && (s->private_ipv4 || s->public_ipv6))
                s->interface_ip = xstrdup(s->private_ipv4 ? s->private_ipv4 : s->public_ipv6);
}

static int domain_server(struct lv *lv, virDomainPtr dom, bool want_addresses, struct provider_server **ret,
                         char **reterr_msg) {
        _cleanup_(lvxml_instance_freep) struct lvxml_instance *inst = NULL;
        const char *name = virDomainGetName(dom);
        int st, reason;
        if (virDomainGetState(dom, &st, &reason, 0) < 0)
                return lv_error(reterr_msg, EIO, name);
        (void)domain_instance(dom, &inst);
        struct provider_server *s = server_new(lv, name, inst, state_from_libvirt(st));
        if (!lv->user_net)
                s->connection_port = 22; /* the guest's own sshd, reached directly */
        if (!lv->user_net && want_addresses && s->state == PROVIDER_SERVER_ACTIVE) {
                server_fill_addresses(dom, s);
                if (!s->interface_ip)
                        s->state = PROVIDER_SERVER_BUILDING; /* running, but no address to reach it yet */
        }
        *ret = s;
        return 0;
}

/* ---------------------------------------------------------------- connection */

/* The connection, reopened when libvirtd went away (restart, crash): without
 * this, every call after a libvirtd restart failed with "client socket is
 * closed" until poold restarted. Returns a referenced connection the caller
 * closes (lv_conn_putp), or NULL with libvirt's error set while the daemon
 * cannot be reached. Worker threads share lv->conn; each call holds its own
 * reference, so a swap never frees a connection another thread is using. */
static virConnectPtr lv_conn_get(struct lv *lv) {
        pthread_mutex_lock(&lv->lock);
        if (!lv->conn || virConnectIsAlive(lv->conn) != 1) {
                virConnectPtr fresh = virConnectOpen(lv->uri);
                if (!fresh) {
                        pthread_mutex_unlock(&lv->lock);
                        return NULL;
                }
                if (lv->conn) {
                        log_info("libvirt: reconnected to %s", lv->uri);
                        virConnectClose(lv->conn);
                }
                lv->conn = fresh;
        }
        virConnectPtr c = lv->conn;
        virConnectRef(c);
        pthread_mutex_unlock(&lv->lock);
        return c;
}

static void lv_conn_putp(virConnectPtr *c) {
        if (*c) virConnectClose(*c);
}

#define LV_CONN(lv, reterr_msg)                                                            \
        _cleanup_(lv_conn_putp) virConnectPtr conn = lv_conn_get(lv);                       \
        if (!conn) return lv_error(reterr_msg, EHOSTDOWN, (lv)->uri)

/* ---------------------------------------------------------------- open/close */

/* The <target><path> of POOL's definition, or NULL. */
static char *pool_target_path(virStoragePoolPtr pool) {
        _cleanup_free_ char *xml = virStoragePoolGetXMLDesc(pool, 0);
        if (!xml) {
                virResetLastError();
                return NULL;
        }
        const char *t = strstr(xml, "<target>");
        const char *a = t ? strstr(t, "<path>") : NULL;
        const char *b = a ? strstr(a, "</path>") : NULL;
        return b ? xstrndup(a + 6, (size_t)(b - a - 6)) : NULL;
}

/* A pool of this name left by an earlier run that pointed elsewhere (a state
 * directory since removed) would fail to start forever. An inactive one is
 * undefined, to be defined afresh at the configured path (1). An active one
 * holds live volumes: it is used where it is, with a warning (0). */
static int lv_pool_check_path(struct lv *lv, virStoragePoolPtr pool) {
        _cleanup_free_ char *have = pool_target_path(pool);
        if (!have || strcmp(have, lv->pool_path) == 0) return 0;
        if (virStoragePoolIsActive(pool) == 1) {
                log_warning("libvirt: storage pool %s is active at %s, not at the configured %s; using it there",
                            lv->storage_pool, have, lv->pool_path);
                return 0;
        }
        log_info("libvirt: storage pool %s was defined at %s; redefining it at %s", lv->storage_pool, have,
                 lv->pool_path);
        if (virStoragePoolUndefine(pool) < 0) virResetLastError();
        return 1;
}

static int lv_ensure_pool(struct lv *lv, char **reterr_msg) {
        virStoragePoolPtr pool = virStoragePoolLookupByName(lv->conn, lv->storage_pool);
        int r = 0;
        if (pool) {
                if (lv_pool_check_path(lv, pool) > 0) {
                        virStoragePoolFree(pool);
                        pool = NULL;
                }
        }
        if (!pool) {
                if (lv_last_code() != VIR_ERR_NO_STORAGE_POOL && lv_last_code() != VIR_ERR_OK)
                        return lv_error(reterr_msg, EIO, lv->storage_pool);
                virResetLastError();
                _cleanup_free_ char *xml = lvxml_dir_pool_xml(lv->storage_pool, lv->pool_path);
                pool = virStoragePoolDefineXML(lv->conn, xml, 0);
                if (!pool)
                        return lv_error(reterr_msg, EIO, "defining storage pool");
                /* Build = mkdir for a dir pool; it may exist already. */
                if (virStoragePoolBuild(pool, VIR_STORAGE_POOL_BUILD_NEW) < 0)
                        virResetLastError();
                (void)virStoragePoolSetAutostart(pool, 1);
                log_debug("libvirt: defined storage pool %s at %s", lv->storage_pool, lv->pool_path);
        }
        int active = virStoragePoolIsActive(pool);
        if (active == 0 && virStoragePoolCreate(pool, 0) < 0)
                r = lv_error(reterr_msg, EIO, "starting storage pool");
        else if (active < 0)
                r = lv_error(reterr_msg, EIO, "storage pool state");
        virStoragePoolFree(pool);
        return r;
}

static int lv_list(struct provider *p, struct provider_server ***ret_servers, size_t *ret_n, char **reterr_msg);

static void lv_close(struct provider *p) {
        if (!p)
                return;
        struct lv *lv = LV(p);
        if (lv) {
                if (lv->conn)
                        virConnectClose(lv->conn);
                free(lv->uri);
                free(lv->storage_pool);
                free(lv->pool_path);
                free(lv->network);
                free(lv->console_dir);
                free(lv->host);
                free(lv->port_held);
                pthread_mutex_destroy(&lv->lock);
                free(lv);
        }
        free(p->name);
        free(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct provider *, lv_close);

static int lv_open(const struct provider_params *params, struct provider **ret, char **reterr_msg) {
        const struct provider_libvirt_params *lp = &params->libvirt;
        _cleanup_(lv_closep) struct provider *p = provider_new(&provider_libvirt_ops, params->name);
        struct lv *lv = xnew(struct lv, 1);
        p->data = lv;
        pthread_mutex_init(&lv->lock, NULL);

        lv->uri = xstrdup(lp->uri ? lp->uri : "qemu:///system");
        lv->storage_pool = xstrdup(lp->storage_pool ? lp->storage_pool : "poold");
        lv->pool_path = xstrdup(lp->storage_pool_path ? lp->storage_pool_path : "/var/lib/poold/images");
        lv->network = xstrdup(lp->network ? lp->network : "default");
        lv->user_net = lp->network_mode == PROVIDER_LIBVIRT_NET_USER;
        lv->is_test = strncmp(lv->uri, "test:", 5) == 0;
        /* Console files are only readable by us when the hypervisor runs on this host. */
        lv->local = !lv->is_test && strstr(lv->uri, ":///");
        lv->console_dir = lv->is_test ? NULL : xstrdup(lp->console_dir ? lp->console_dir : lv->pool_path);
        lv->port_low = lp->port_low > 0 ? lp->port_low : 22000;
        lv->port_high = lp->port_high > 0 ? lp->port_high : 22999;
        if (lv->port_low > lv->port_high || lv->port_high > 65535)
                return provider_error(reterr_msg, EINVAL, "provider %s: bad port range %d-%d", params->name,
                                      lv->port_low, lv->port_high);
        lv->port_held = xcalloc((size_t)(lv->port_high - lv->port_low + 1), 1);

        switch (lp->domain_type) {
        case PROVIDER_LIBVIRT_DOMAIN_KVM:
                lv->domain_type = "kvm";
                break;
        case PROVIDER_LIBVIRT_DOMAIN_QEMU:
                lv->domain_type = "qemu";
                break;
        case PROVIDER_LIBVIRT_DOMAIN_AUTO:
                lv->domain_type = lv_auto_domain_type(params->name, lv->uri);
                break;
        default:
                return provider_error(reterr_msg, EINVAL, "provider %s: bad domain type", params->name);
        }
        if (lp->network_mode != PROVIDER_LIBVIRT_NET_USER && lp->network_mode != PROVIDER_LIBVIRT_NET_NETWORK)
                return provider_error(reterr_msg, EINVAL, "provider %s: bad network mode", params->name);

        if (virInitialize() < 0)
                return lv_error(reterr_msg, EIO, "virInitialize");
        /* Process-wide: stop libvirt printing errors to stderr; callers log our messages. */
        virSetErrorFunc(NULL, lv_silent_error);
        lv->conn = virConnectOpen(lv->uri);
        if (!lv->conn)
                return lv_error(reterr_msg, ECONNREFUSED, lv->uri);
        char *h = virConnectGetHostname(lv->conn);
        if (h) {
                lv->host = xstrdup(h);
                free(h);
        } else
                virResetLastError();

        int r = lv_ensure_pool(lv, reterr_msg);
        if (r < 0)
                return r;

        /* Re-reserve the ports of our existing domains (a restarted launcher). */
        struct provider_server **v = NULL;
        size_t n = 0;
        r = lv_list(p, &v, &n, reterr_msg);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                port_mark(lv, v[i]->connection_port, true);
        provider_server_array_free(v, n);

        log_debug("libvirt: provider %s open on %s (type %s, pool %s, %s networking)", p->name, lv->uri,
                  lv->domain_type, lv->storage_pool, lv->user_net ? "user" : "network");
        *ret = TAKE_PTR(p);
        return 0;
}

/* ---------------------------------------------------------------- servers */

/* Format of a volume from its XML (<target><format type='X'/>), for images not uploaded by us. */
static char *volume_format(virStorageVolPtr vol) {
        char *xml = virStorageVolGetXMLDesc(vol, 0);
        if (!xml) {
                virResetLastError();
                return xstrdup("raw");
        }
        char *res = NULL, *t = strstr(xml, "<target>");
        char *f = t ? strstr(t, "<format type='") : NULL;
        if (f) {
                f += strlen("<format type='");
                char *e = strchr(f, '\'');
                if (e)
                        res = xstrndup(f, (size_t)(e - f));
        }
        free(xml);
        return res ? res : xstrdup("raw");
}

static int lv_create(struct provider *p, const struct provider_create_req *req, struct provider_server **ret_server,
                     char **reterr_msg) {
        struct lv *lv = LV(p);
        virStoragePoolPtr pool = NULL;
        virStorageVolPtr img = NULL, ovl = NULL;
        virDomainPtr dom = NULL;
        _cleanup_free_ char *name = NULL, *ovname = NULL, *fmt = NULL, *img_path = NULL, *cpath = NULL,
                            *vxml = NULL, *dxml = NULL;
        _cleanup_(lvxml_image_name_freep) struct lvxml_image_name *iname = NULL;
        int port = 0, r;
        LV_CONN(lv, reterr_msg);

        if (!req || !valid_node_id(req->node_id) || !req->image || req->memory_mib <= 0 || req->vcpus <= 0 ||
            req->disk_gib < 0)
                return provider_error(reterr_msg, EINVAL, "invalid create request");

        name = lvxml_domain_name(p->name, req->node_id);
        ovname = overlay_name(name);

        /* Never redefine a live domain: DefineXML on an existing name would replace its config. */
        dom = virDomainLookupByName(conn, name);
        if (dom) {
                virDomainFree(dom);
                return provider_error(reterr_msg, EEXIST, "%s already exists", name);
        }
        virResetLastError();

        pool = virStoragePoolLookupByName(conn, lv->storage_pool);
        if (!pool)
                return lv_error(reterr_msg, EIO, lv->storage_pool);
        img = virStorageVolLookupByName(pool, req->image);
        if (!img) {
                r = lv_error(reterr_msg, EIO, "image volume");
                goto finish;
        }
        fmt = lvxml_image_volume_parse(req->image, &iname) >= 0 ? xstrdup(iname->format) : volume_format(img);
        virStorageVolInfo info;
        if (virStorageVolGetInfo(img, &info) < 0 || !(img_path = virStorageVolGetPath(img))) {
                r = lv_error(reterr_msg, EIO, "image volume");
                goto finish;
        }
        unsigned long long cap = (unsigned long long)req->disk_gib << 30;
        if (cap < info.capacity)
                cap = info.capacity; /* an overlay cannot be smaller than its backing image */

        if (lv->user_net) {
                r = port_reserve(lv, &port);
                if (r < 0) {
                        r = provider_error(reterr_msg, r, "no free host port in %d-%d", lv->port_low,
                                           lv->port_high);
                        goto finish;
                }
        }

        /* An overlay without a domain is a leftover of a crashed launch of this node id. */
        ovl = virStorageVolLookupByName(pool, ovname);
        if (ovl) {
                (void)virStorageVolDelete(ovl, 0);
                virStorageVolFree(ovl);
                ovl = NULL;
        }
        virResetLastError();
        vxml = lvxml_overlay_xml(ovname, cap, img_path, fmt);
        ovl = virStorageVolCreateXML(pool, vxml, 0);
        if (!ovl) {
                r = lv_error(reterr_msg, EIO, "creating overlay volume");
                goto finish;
        }

        cpath = console_path(lv, name);
        struct lvxml_domain d = {
                .name = name, .type = lv->domain_type, .memory_mib = req->memory_mib, .vcpus = req->vcpus,
                .storage_pool = lv->storage_pool, .volume = ovname, .console_path = cpath,
                .user_port = port, .network = lv->network,
                .provider = p->name, .pool = req->pool, .node_id = req->node_id, .label = req->label,
                .hostname = req->hostname, .image = req->image, .tags = req->tags, .n_tags = req->n_tags,
        };
        dxml = lvxml_domain_xml(&d);
        dom = virDomainDefineXML(conn, dxml);
        if (!dom) {
                r = lv_error(reterr_msg, EIO, "defining domain");
                goto finish;
        }
        if (virDomainCreate(dom) < 0) {
                r = lv_error(reterr_msg, EIO, "starting domain");
                if (r == -ENOMEM)
                        r = -EDQUOT; /* the host cannot fit the guest now: capacity, retry later */
                (void)virDomainUndefine(dom);
                goto finish;
        }
        r = domain_server(lv, dom, true, ret_server, reterr_msg);
        if (r < 0) {
                (void)virDomainDestroy(dom);
                (void)virDomainUndefine(dom);
        }
finish:
        if (r < 0) {
                if (ovl)
                        (void)virStorageVolDelete(ovl, 0);
                if (port > 0)
                        port_mark(lv, port, false);
                virResetLastError();
        }
        if (dom)
                virDomainFree(dom);
        if (ovl)
                virStorageVolFree(ovl);
        if (img)
                virStorageVolFree(img);
        virStoragePoolFree(pool);
        return r;
}

static int lv_get(struct provider *p, const char *external_id, struct provider_server **ret_server,
                  char **reterr_msg) {
        struct lv *lv = LV(p);
        LV_CONN(lv, reterr_msg);
        virDomainPtr dom = virDomainLookupByName(conn, external_id);
        if (!dom)
                return lv_error(reterr_msg, EIO, external_id);
        int r = domain_server(lv, dom, true, ret_server, reterr_msg);
        virDomainFree(dom);
        return r;
}

static int lv_delete(struct provider *p, const char *external_id, char **reterr_msg) {
        struct lv *lv = LV(p);
        _cleanup_free_ char *node_id = NULL, *ovname = NULL, *cpath = NULL;
        bool found = false;
        int r = 0;
        LV_CONN(lv, reterr_msg);

        /* Only ever touch our own resources, whatever id we are handed. */
        if (!external_id || lvxml_domain_name_parse(external_id, p->name, false, &node_id) < 0)
                return provider_error(reterr_msg, EPERM, "%s is not a server of provider %s",
                                      external_id ? external_id : "(null)", p->name);

        virDomainPtr dom = virDomainLookupByName(conn, external_id);
        if (dom) {
                _cleanup_(lvxml_instance_freep) struct lvxml_instance *inst = NULL;
                found = true;
                if (domain_instance(dom, &inst) < 0 || !inst->provider || strcmp(inst->provider, p->name) != 0) {
                        virDomainFree(dom);
                        return provider_error(reterr_msg, EPERM, "%s is not tagged as ours", external_id);
                }
                if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0 &&
                    lv_last_code() != VIR_ERR_OPERATION_INVALID)
                        r = lv_error(reterr_msg, EIO, "destroying domain");
                virResetLastError();
                if (r == 0 && virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                                                  VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                                                  VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) < 0) {
                        /* Drivers without managed save/snapshots (e.g. test) reject those flags. */
                        int code = lv_last_code();
                        if (code == VIR_ERR_INVALID_ARG || code == VIR_ERR_NO_SUPPORT) {
                                virResetLastError();
                                if (virDomainUndefine(dom) < 0 && lv_last_code() != VIR_ERR_NO_DOMAIN)
                                        r = lv_error(reterr_msg, EIO, "undefining domain");
                        } else if (code != VIR_ERR_NO_DOMAIN)
                                r = lv_error(reterr_msg, EIO, "undefining domain");
                }
                virDomainFree(dom);
                if (r < 0)
                        return r;
                if (inst->port > 0)
                        port_mark(lv, inst->port, false);
        } else if (lv_last_code() != VIR_ERR_NO_DOMAIN)
                return lv_error(reterr_msg, EIO, external_id);
        virResetLastError();

        ovname = overlay_name(external_id);
        virStoragePoolPtr pool = virStoragePoolLookupByName(conn, lv->storage_pool);
        if (!pool)
                return lv_error(reterr_msg, EIO, lv->storage_pool);
        virStorageVolPtr vol = virStorageVolLookupByName(pool, ovname);
        if (vol) {
                found = true;
                if (virStorageVolDelete(vol, 0) < 0 && lv_last_code() != VIR_ERR_NO_STORAGE_VOL)
                        r = lv_error(reterr_msg, EIO, "deleting overlay volume");
                virStorageVolFree(vol);
        } else if (lv_last_code() != VIR_ERR_NO_STORAGE_VOL)
                r = lv_error(reterr_msg, EIO, ovname);
        virResetLastError();
        virStoragePoolFree(pool);
        if (r < 0)
                return r;

        cpath = console_path(lv, external_id);
        if (cpath && lv->local)
                (void)unlink(cpath);
        if (!found)
                return provider_error(reterr_msg, ENOENT, "%s: already gone", external_id);
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int lv_list(struct provider *p, struct provider_server ***ret_servers, size_t *ret_n, char **reterr_msg) {
        struct lv *lv = LV(p);
        virDomainPtr *doms = NULL;
        virStorageVolPtr *vols = NULL;
        struct provider_server **v = NULL;
        char **names = NULL;
        size_t n = 0, nn = 0;
        int nd, nv = 0, r = 0;
        LV_CONN(lv, reterr_msg);

        /* One call for all domains; only names carrying our prefix cost a metadata read. */
        nd = virConnectListAllDomains(conn, &doms, 0);
        if (nd < 0)
                return lv_error(reterr_msg, EIO, "listing domains");
        virStoragePoolPtr pool = virStoragePoolLookupByName(conn, lv->storage_pool);
        if (!pool || (nv = virStoragePoolListAllVolumes(pool, &vols, 0)) < 0) {
                r = lv_error(reterr_msg, EIO, "listing volumes");
                nv = 0;
                goto finish;
        }
        v = xnew(struct provider_server *, (size_t)nd + (size_t)nv + 1);
        names = xnew(char *, (size_t)nd + 1);
        for (int i = 0; i < nd; i++) {
                _cleanup_free_ char *id = NULL;
                const char *dn = virDomainGetName(doms[i]);
                if (lvxml_domain_name_parse(dn, p->name, false, &id) < 0)
                        continue;
                names[nn++] = xstrdup(dn);
                struct provider_server *s = NULL;
                if (domain_server(lv, doms[i], false, &s, NULL) < 0) {
                        virResetLastError(); /* vanished meanwhile */
                        continue;
                }
                /* A name that looks like ours but lacks our tags is not ours. */
                const char *tp = provider_server_tag(s, "nodepool_provider_name");
                if (!tp || strcmp(tp, p->name) != 0) {
                        provider_server_free(s);
                        continue;
                }
                v[n++] = s;
        }
        qsort(names, nn, sizeof(char *), cmp_str);
        for (int i = 0; i < nv; i++) {
                _cleanup_free_ char *id = NULL, *dn = NULL;
                const char *vn = virStorageVolGetName(vols[i]);
                if (lvxml_domain_name_parse(vn, p->name, true, &id) < 0)
                        continue;
                dn = xstrndup(vn, strlen(vn) - strlen(".qcow2"));
                if (bsearch(&dn, names, nn, sizeof(char *), cmp_str))
                        continue;
                /* An orphaned overlay: report it so the leak sweep deletes it by its id. */
                struct lvxml_instance inst = { .provider = p->name, .node_id = id };
                v[n++] = server_new(lv, dn, &inst, PROVIDER_SERVER_ERROR);
        }
        *ret_servers = TAKE_PTR(v);
        *ret_n = n;
finish:
        for (int i = 0; i < nd; i++)
                virDomainFree(doms[i]);
        free(doms);
        for (int i = 0; i < nv; i++)
                virStorageVolFree(vols[i]);
        free(vols);
        for (size_t i = 0; i < nn; i++)
                free(names[i]);
        free(names);
        if (pool)
                virStoragePoolFree(pool);
        provider_server_array_free(v, n);
        return r;
}

static int lv_quota(struct provider *p, struct provider_limits *ret_limits, char **reterr_msg) {
        struct lv *lv = LV(p);
        LV_CONN(lv, reterr_msg);
        virNodeInfo ni;
        if (virNodeGetInfo(conn, &ni) < 0)
                return lv_error(reterr_msg, EIO, "node info");
        unsigned long long free_b = virNodeGetFreeMemory(conn);
        if (free_b == 0)
                virResetLastError();
        /* Totals, not free memory: the launcher subtracts its own nodes' usage itself. */
        *ret_limits = (struct provider_limits){
                .max_instances = lv->user_net ? lv->port_high - lv->port_low + 1 : -1,
                .max_cores = ni.cpus,
                .max_ram_mib = (long long)(ni.memory / 1024),
                .free_ram_mib = free_b ? (long long)(free_b >> 20) : -1,
                .max_volumes = -1,
                .max_volume_gb = -1,
        };
        return 0;
}

/* ---------------------------------------------------------------- images */

static int upload_source(virStreamPtr st, char *data, size_t nbytes, void *opaque) {
        int fd = *(int *)opaque;
        ssize_t k;
        do
                k = read(fd, data, nbytes);
        while (k < 0 && errno == EINTR);
        return (int)k;
}

/* MD5/SHA256 are ignored: a storage volume has no place for them. */
static int lv_image_upload(struct provider *p, const char *local_path, const char *format, const char *md5,
                           const char *sha256, const char *image_name, const struct provider_kv *tags, size_t n_tags,
                           char **ret_external_id, char **reterr_msg) {
        struct lv *lv = LV(p);
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *vname = NULL, *xml = NULL;
        virStoragePoolPtr pool = NULL;
        virStorageVolPtr vol = NULL;
        virStreamPtr st = NULL;
        struct stat sb;
        int r;
        LV_CONN(lv, reterr_msg);

        if (!local_path || !format || !*format || !image_name || !*image_name)
                return provider_error(reterr_msg, EINVAL, "invalid upload request");
        fd = open(local_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &sb) < 0)
                return provider_error(reterr_msg, errno, "%s: %m", local_path);
        if (!S_ISREG(sb.st_mode) || sb.st_size == 0)
                return provider_error(reterr_msg, EINVAL, "%s: not a non-empty regular file", local_path);
        r = lvxml_image_volume_name(p->name, image_name, format, tags, n_tags, &vname);
        if (r < 0)
                return provider_error(reterr_msg, r, "image %s: name with tags too long for a volume", image_name);

        r = lv_ensure_pool(lv, reterr_msg);
        if (r < 0)
                return r;
        pool = virStoragePoolLookupByName(conn, lv->storage_pool);
        if (!pool)
                return lv_error(reterr_msg, EIO, lv->storage_pool);
        vol = virStorageVolLookupByName(pool, vname);
        if (vol) {
                /* Never overwrite an upload (it may back running nodes). */
                virStorageVolFree(vol);
                vol = NULL;
                r = provider_error(reterr_msg, EEXIST, "%s exists", vname);
                goto finish;
        }
        virResetLastError();
        /* A raw container of exactly the file's size: the bytes (whatever format) overwrite it whole. */
        xml = lvxml_volume_xml(vname, (uint64_t)sb.st_size, lv->is_test ? format : "raw");
        vol = virStorageVolCreateXML(pool, xml, 0);
        if (!vol) {
                r = lv_last_code() == VIR_ERR_STORAGE_VOL_EXIST ? provider_error(reterr_msg, EEXIST, "%s exists", vname)
                                                                 : lv_error(reterr_msg, EIO, "creating image volume");
                goto finish;
        }
        st = virStreamNew(conn, 0);
        if (!st) {
                r = lv_error(reterr_msg, EIO, "virStreamNew");
                goto finish;
        }
        if (virStorageVolUpload(vol, st, 0, (unsigned long long)sb.st_size, 0) < 0) {
                if (lv->is_test && lv_last_code() == VIR_ERR_NO_SUPPORT) {
                        /* The test driver keeps volumes as metadata only; nothing to stream. */
                        log_debug("libvirt: %s: upload unsupported by the test driver, volume created empty", vname);
                        virResetLastError();
                        r = 0;
                } else
                        r = lv_error(reterr_msg, EIO, "starting upload");
                goto finish;
        }
        if (virStreamSendAll(st, upload_source, &fd) < 0) {
                /* SendAll has aborted the stream itself. */
                r = lv_error(reterr_msg, EIO, "streaming image");
                goto finish;
        }
        if (virStreamFinish(st) < 0) {
                r = lv_error(reterr_msg, EIO, "finishing upload");
                goto finish;
        }
        r = 0;
finish:
        if (st)
                virStreamFree(st);
        if (vol) {
                if (r < 0)
                        (void)virStorageVolDelete(vol, 0);
                virStorageVolFree(vol);
        }
        virResetLastError();
        virStoragePoolFree(pool);
        if (r >= 0)
                *ret_external_id = TAKE_PTR(vname);
        return r;
}

static int lv_image_delete(struct provider *p, const char *external_id, char **reterr_msg) {
        struct lv *lv = LV(p);
        _cleanup_(lvxml_image_name_freep) struct lvxml_image_name *in = NULL;
        int r = 0;
        LV_CONN(lv, reterr_msg);
        if (!external_id || lvxml_image_volume_parse(external_id, &in) < 0 || strcmp(in->provider, p->name) != 0)
                return provider_error(reterr_msg, EPERM, "%s is not an image of provider %s",
                                      external_id ? external_id : "(null)", p->name);
        virStoragePoolPtr pool = virStoragePoolLookupByName(conn, lv->storage_pool);
        if (!pool)
                return lv_error(reterr_msg, EIO, lv->storage_pool);
        virStorageVolPtr vol = virStorageVolLookupByName(pool, external_id);
        if (!vol)
                r = lv_error(reterr_msg, EIO, external_id);
        else {
                if (virStorageVolDelete(vol, 0) < 0)
                        r = lv_error(reterr_msg, EIO, "deleting image volume");
                virStorageVolFree(vol);
        }
        virStoragePoolFree(pool);
        return r;
}

static int lv_image_list(struct provider *p, struct provider_image ***ret_images, size_t *ret_n, char **reterr_msg) {
        struct lv *lv = LV(p);
        virStorageVolPtr *vols = NULL;
        LV_CONN(lv, reterr_msg);
        virStoragePoolPtr pool = virStoragePoolLookupByName(conn, lv->storage_pool);
        if (!pool)
                return lv_error(reterr_msg, EIO, lv->storage_pool);
        int nv = virStoragePoolListAllVolumes(pool, &vols, 0);
        virStoragePoolFree(pool);
        if (nv < 0)
                return lv_error(reterr_msg, EIO, "listing volumes");
        struct provider_image **v = xnew(struct provider_image *, (size_t)nv + 1);
        size_t n = 0;
        for (int i = 0; i < nv; i++) {
                _cleanup_(lvxml_image_name_freep) struct lvxml_image_name *in = NULL;
                const char *vn = virStorageVolGetName(vols[i]);
                if (lvxml_image_volume_parse(vn, &in) >= 0 && strcmp(in->provider, p->name) == 0) {
                        struct provider_image *img = xnew(struct provider_image, 1);
                        virStorageVolInfo info;
                        img->external_id = xstrdup(vn);
                        img->name = TAKE_PTR(in->name);
                        img->format = TAKE_PTR(in->format);
                        img->tags = TAKE_PTR(in->tags);
                        img->n_tags = in->n_tags;
                        in->n_tags = 0;
                        if (virStorageVolGetInfo(vols[i], &info) == 0)
                                img->size = info.capacity;
                        else
                                virResetLastError();
                        v[n++] = img;
                }
                virStorageVolFree(vols[i]);
        }
        free(vols);
        *ret_images = v;
        *ret_n = n;
        return 0;
}

static int lv_console_log(struct provider *p, const char *external_id, char **ret_text, char **reterr_msg) {
        struct lv *lv = LV(p);
        _cleanup_free_ char *node_id = NULL, *path = NULL;
        if (!lv->local || !lv->console_dir)
                return provider_error(reterr_msg, EOPNOTSUPP, "console logs need a local hypervisor");
        if (!external_id || lvxml_domain_name_parse(external_id, p->name, false, &node_id) < 0)
                return provider_error(reterr_msg, EPERM, "%s is not a server of provider %s",
                                      external_id ? external_id : "(null)", p->name);
        path = console_path(lv, external_id);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) < 0)
                return provider_error(reterr_msg, errno, "%s: %m", path);
        off_t start = sb.st_size > LV_CONSOLE_MAX ? sb.st_size - LV_CONSOLE_MAX : 0;
        _cleanup_free_ char *buf = xmalloc(LV_CONSOLE_MAX + 1);
        ssize_t k = pread(fd, buf, LV_CONSOLE_MAX, start);
        if (k < 0)
                return provider_error(reterr_msg, errno, "%s: %m", path);
        buf[k] = 0;
        *ret_text = TAKE_PTR(buf);
        return 0;
}

const struct provider_ops provider_libvirt_ops = {
        .driver = "libvirt",
        .open = lv_open,
        .close = lv_close,
        .create = lv_create,
        .get = lv_get,
        .delete = lv_delete,
        .list = lv_list,
        .quota = lv_quota,
        .image_upload = lv_image_upload,
        .image_delete = lv_image_delete,
        .image_list = lv_image_list,
        .console_log = lv_console_log,
};
