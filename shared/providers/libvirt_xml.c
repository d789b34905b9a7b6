/* libvirt_xml.c — XML and names for the libvirt driver, as pure functions.
 *
 * DESIGN: everything the libvirt driver sends as text is built here, every
 * caller-supplied string escaped, so it can be unit-tested (and fuzzed) without
 * libvirt. The metadata parser is deliberately small: it reads only the flat
 * <instance> element we write ourselves, as libxml2 serialises it back. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "libvirt_xml.h"

#define LVXML_NAME_MAX 255

char *lvxml_escape(const char *s) {
        size_t n = 0;
        if (!s)
                s = "";
        for (const char *c = s; *c; c++)
                n += 6; /* worst case "&quot;" */
        char *out = xmalloc(n + 1), *o = out;
        for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
                const char *e = NULL;
                switch (*c) {
                case '&': e = "&amp;"; break;
                case '<': e = "&lt;"; break;
                case '>': e = "&gt;"; break;
                case '"': e = "&quot;"; break;
                case '\'': e = "&apos;"; break;
                default: break;
                }
                if (e) {
                        size_t l = strlen(e);
                        memcpy(o, e, l);
                        o += l;
                } else if (*c < 0x20 && *c != '\t' && *c != '\n' && *c != '\r')
                        *o++ = '?';
                else
                        *o++ = (char)*c;
        }
        *o = 0;
        return out;
}

static size_t utf8_put(char *o, unsigned long cp) {
        if (cp < 0x80) {
                o[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (char)(0xC0 | (cp >> 6));
                o[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (char)(0xE0 | (cp >> 12));
                o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                o[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

int lvxml_unescape(const char *s, size_t n, char **ret) {
        /* Output never grows: the longest UTF-8 sequence (4) is shorter than "&#xN;"-style input. */
        _cleanup_free_ char *out = xmalloc(n + 1);
        char *o = out;
        size_t i = 0;
        while (i < n) {
                if (s[i] != '&') {
                        *o++ = s[i++];
                        continue;
                }
                const char *semi = memchr(s + i, ';', n - i);
                if (!semi)
                        return -EBADMSG;
                const char *ent = s + i + 1;
                size_t el = (size_t)(semi - ent);
                static const struct {
                        const char *name;
                        char c;
                } named[] = { { "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' } };
                bool done = false;
                for (size_t k = 0; k < ELEMENTSOF(named); k++)
                        if (el == strlen(named[k].name) && memcmp(ent, named[k].name, el) == 0) {
                                *o++ = named[k].c;
                                done = true;
                                break;
                        }
                if (!done) {
                        if (el < 2 || ent[0] != '#' || el > 10)
                                return -EBADMSG;
                        bool hex = ent[1] == 'x' || ent[1] == 'X';
                        size_t start = hex ? 2 : 1;
                        if (start >= el)
                                return -EBADMSG;
                        unsigned long cp = 0;
                        for (size_t k = start; k < el; k++) {
                                char c = ent[k];
                                int d;
                                if (c >= '0' && c <= '9')
                                        d = c - '0';
                                else if (hex && c >= 'a' && c <= 'f')
                                        d = c - 'a' + 10;
                                else if (hex && c >= 'A' && c <= 'F')
                                        d = c - 'A' + 10;
                                else
                                        return -EBADMSG;
                                cp = cp * (hex ? 16 : 10) + (unsigned long)d;
                                if (cp > 0x10FFFF)
                                        return -EBADMSG;
                        }
                        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                                return -EBADMSG;
                        o += utf8_put(o, cp);
                }
                i = (size_t)(semi - s) + 1;
        }
        *o = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

/* open_memstream only fails on OOM, which is fatal by policy. */
static FILE *mem_open(char **buf, size_t *len) {
        FILE *f = open_memstream(buf, len);
        if (!f)
                abort();
        return f;
}

/* Takes BUF by reference: fclose() is what stores the final pointer. */
static char *mem_close(FILE *f, char **buf) {
        if (fclose(f) != 0)
                abort();
        return *buf;
}

static void put_elem(FILE *f, const char *indent, const char *name, const char *value) {
        if (!value)
                return;
        _cleanup_free_ char *e = lvxml_escape(value);
        fprintf(f, "%s<" LVXML_NS_PREFIX ":%s>%s</" LVXML_NS_PREFIX ":%s>\n", indent, name, e, name);
}

char *lvxml_domain_xml(const struct lvxml_domain *d) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = mem_open(&buf, &len);
        _cleanup_free_ char *name = lvxml_escape(d->name), *type = lvxml_escape(d->type),
                            *spool = lvxml_escape(d->storage_pool), *vol = lvxml_escape(d->volume);

        fprintf(f, "<domain type='%s'%s>\n", type,
                d->user_port > 0 ? " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'" : "");
        fprintf(f, "  <name>%s</name>\n", name);
        fprintf(f, "  <metadata>\n    <" LVXML_NS_PREFIX ":instance xmlns:" LVXML_NS_PREFIX "='" LVXML_NS "'>\n");
        const char *in = "      ";
        put_elem(f, in, "provider", d->provider);
        put_elem(f, in, "pool", d->pool);
        put_elem(f, in, "node-id", d->node_id);
        put_elem(f, in, "label", d->label);
        put_elem(f, in, "hostname", d->hostname);
        put_elem(f, in, "image", d->image);
        fprintf(f, "%s<" LVXML_NS_PREFIX ":memory-mib>%d</" LVXML_NS_PREFIX ":memory-mib>\n", in, d->memory_mib);
        fprintf(f, "%s<" LVXML_NS_PREFIX ":vcpus>%d</" LVXML_NS_PREFIX ":vcpus>\n", in, d->vcpus);
        if (d->user_port > 0)
                fprintf(f, "%s<" LVXML_NS_PREFIX ":port>%d</" LVXML_NS_PREFIX ":port>\n", in, d->user_port);
        for (size_t i = 0; i < d->n_tags; i++) {
                _cleanup_free_ char *k = lvxml_escape(d->tags[i].key), *v = lvxml_escape(d->tags[i].value);
                fprintf(f, "%s<" LVXML_NS_PREFIX ":tag key='%s'>%s</" LVXML_NS_PREFIX ":tag>\n", in, k, v);
        }
        fprintf(f, "    </" LVXML_NS_PREFIX ":instance>\n  </metadata>\n");
        fprintf(f, "  <memory unit='MiB'>%d</memory>\n  <vcpu>%d</vcpu>\n", d->memory_mib, d->vcpus);
        fprintf(f, "  <os>\n    <type arch='x86_64'>hvm</type>\n    <boot dev='hd'/>\n  </os>\n");
        fprintf(f, "  <features><acpi/></features>\n");
        /* Under KVM the guest gets the host's CPU, as the KVM probe tested it. */
        if (strcmp(d->type, "kvm") == 0) fprintf(f, "  <cpu mode='host-passthrough'/>\n");
        fprintf(f, "  <on_poweroff>destroy</on_poweroff>\n  <on_crash>destroy</on_crash>\n");
        fprintf(f, "  <devices>\n");
        fprintf(f, "    <disk type='volume' device='disk'>\n"
                   "      <driver name='qemu' type='qcow2'/>\n"
                   "      <source pool='%s' volume='%s'/>\n"
                   "      <target dev='vda' bus='virtio'/>\n"
                   "    </disk>\n",
                spool, vol);
        if (d->console_path) {
                _cleanup_free_ char *cp = lvxml_escape(d->console_path);
                fprintf(f, "    <serial type='file'>\n      <source path='%s'/>\n"
                           "      <target port='0'/>\n    </serial>\n",
                        cp);
                fprintf(f, "    <console type='file'>\n      <source path='%s'/>\n"
                           "      <target type='serial' port='0'/>\n    </console>\n",
                        cp);
        }
        if (d->user_port <= 0) {
                _cleanup_free_ char *net = lvxml_escape(d->network ? d->network : "default");
                fprintf(f, "    <interface type='network'>\n      <source network='%s'/>\n"
                           "      <model type='virtio'/>\n    </interface>\n",
                        net);
        }
        fprintf(f, "  </devices>\n");
        if (d->user_port > 0)
                /* libvirt 9.0 has no XML for slirp port forwards; the explicit PCI
                 * address keeps it clear of the slots libvirt assigns. */
                fprintf(f, "  <qemu:commandline>\n"
                           "    <qemu:arg value='-netdev'/>\n"
                           "    <qemu:arg value='user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22'/>\n"
                           "    <qemu:arg value='-device'/>\n"
                           "    <qemu:arg value='virtio-net-pci,netdev=n0,addr=0x1f'/>\n"
                           "  </qemu:commandline>\n",
                        d->user_port);
        fprintf(f, "</domain>\n");
        return mem_close(f, &buf);
}

char *lvxml_volume_xml(const char *name, uint64_t capacity, const char *format) {
        _cleanup_free_ char *n = lvxml_escape(name), *fmt = lvxml_escape(format);
        return xasprintf("<volume>\n  <name>%s</name>\n  <capacity unit='bytes'>%llu</capacity>\n"
                         "  <target>\n    <format type='%s'/>\n  </target>\n</volume>\n",
                         n, (unsigned long long)capacity, fmt);
}

char *lvxml_overlay_xml(const char *name, uint64_t capacity, const char *backing_path, const char *backing_format) {
        _cleanup_free_ char *n = lvxml_escape(name), *bp = lvxml_escape(backing_path),
                            *bf = lvxml_escape(backing_format);
        return xasprintf("<volume>\n  <name>%s</name>\n  <capacity unit='bytes'>%llu</capacity>\n"
                         "  <target>\n    <format type='qcow2'/>\n  </target>\n"
                         "  <backingStore>\n    <path>%s</path>\n    <format type='%s'/>\n  </backingStore>\n"
                         "</volume>\n",
                         n, (unsigned long long)capacity, bp, bf);
}

char *lvxml_dir_pool_xml(const char *name, const char *path) {
        _cleanup_free_ char *n = lvxml_escape(name), *p = lvxml_escape(path);
        return xasprintf("<pool type='dir'>\n  <name>%s</name>\n"
                         "  <target>\n    <path>%s</path>\n  </target>\n</pool>\n",
                         n, p);
}

/* ---------------------------------------------------------------- metadata parser */

struct cursor {
        const char *p, *end;
};

static void skip_ws(struct cursor *c) {
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
                c->p++;
}

static bool name_char(char ch) {
        return ch && !strchr(" \t\r\n/>=<\"'", ch);
}

/* Reads an element name at c->p, returning its local part (prefix stripped). */
static int read_name(struct cursor *c, const char **ret, size_t *ret_len) {
        const char *s = c->p;
        while (c->p < c->end && name_char(*c->p))
                c->p++;
        if (c->p == s)
                return -EBADMSG;
        const char *colon = memchr(s, ':', (size_t)(c->p - s));
        const char *local = colon ? colon + 1 : s;
        *ret = local;
        *ret_len = (size_t)(c->p - local);
        return 0;
}

/* Reads a start tag after '<' up to '>' or '/>'. Returns the "key" attribute if any. */
static int read_start_tag(struct cursor *c, const char **ret_name, size_t *ret_len, char **ret_key,
                          bool *ret_empty) {
        _cleanup_free_ char *key = NULL;
        int r = read_name(c, ret_name, ret_len);
        if (r < 0)
                return r;
        for (;;) {
                skip_ws(c);
                if (c->p >= c->end)
                        return -EBADMSG;
                if (*c->p == '>') {
                        c->p++;
                        *ret_empty = false;
                        break;
                }
                if (*c->p == '/') {
                        if (c->p + 1 >= c->end || c->p[1] != '>')
                                return -EBADMSG;
                        c->p += 2;
                        *ret_empty = true;
                        break;
                }
                const char *an;
                size_t al;
                r = read_name(c, &an, &al);
                if (r < 0)
                        return r;
                skip_ws(c);
                if (c->p >= c->end || *c->p != '=')
                        return -EBADMSG;
                c->p++;
                skip_ws(c);
                if (c->p >= c->end || (*c->p != '"' && *c->p != '\''))
                        return -EBADMSG;
                char q = *c->p++;
                const char *vs = c->p;
                const char *ve = memchr(vs, q, (size_t)(c->end - vs));
                if (!ve)
                        return -EBADMSG;
                c->p = ve + 1;
                /* The namespace declaration's local name is the prefix; only our unprefixed "key" counts. */
                if (al == 3 && memcmp(an, "key", 3) == 0 && an[-1] != ':') {
                        free(key);
                        key = NULL;
                        r = lvxml_unescape(vs, (size_t)(ve - vs), &key);
                        if (r < 0)
                                return r;
                }
        }
        if (ret_key)
                *ret_key = TAKE_PTR(key);
        return 0;
}

static int parse_int(const char *s, int *ret) {
        char *e = NULL;
        errno = 0;
        long v = strtol(s, &e, 10);
        if (errno || e == s || *e || v < 0 || v > 1000000000)
                return -EINVAL;
        *ret = (int)v;
        return 0;
}

void lvxml_instance_free(struct lvxml_instance *inst) {
        if (!inst)
                return;
        free(inst->provider);
        free(inst->pool);
        free(inst->node_id);
        free(inst->label);
        free(inst->hostname);
        free(inst->image);
        provider_tags_free(inst->tags, inst->n_tags);
        free(inst);
}

static void set_str(char **field, char **value) {
        free(*field);
        *field = TAKE_PTR(*value);
}

int lvxml_instance_parse(const char *xml, struct lvxml_instance **ret) {
        if (!xml)
                return -EBADMSG;
        struct cursor c = { xml, xml + strlen(xml) };
        _cleanup_(lvxml_instance_freep) struct lvxml_instance *inst = xnew(struct lvxml_instance, 1);
        const char *n;
        size_t nl;
        bool empty;
        int r;

        skip_ws(&c);
        if (c.p + 5 <= c.end && memcmp(c.p, "<?xml", 5) == 0) {
                const char *e = strstr(c.p, "?>");
                if (!e)
                        return -EBADMSG;
                c.p = e + 2;
                skip_ws(&c);
        }
        if (c.p >= c.end || *c.p != '<')
                return -EBADMSG;
        c.p++;
        r = read_start_tag(&c, &n, &nl, NULL, &empty);
        if (r < 0)
                return r;
        if (nl != 8 || memcmp(n, "instance", 8) != 0)
                return -EBADMSG;
        if (!empty)
                for (;;) {
                        skip_ws(&c);
                        if (c.p + 1 >= c.end || *c.p != '<')
                                return -EBADMSG;
                        c.p++;
                        if (*c.p == '/') /* </instance> */
                                break;
                        _cleanup_free_ char *key = NULL, *text = NULL;
                        r = read_start_tag(&c, &n, &nl, &key, &empty);
                        if (r < 0)
                                return r;
                        if (empty)
                                text = xstrdup("");
                        else {
                                const char *ts = c.p;
                                const char *te = memchr(ts, '<', (size_t)(c.end - ts));
                                if (!te || te + 1 >= c.end || te[1] != '/')
                                        return -EBADMSG; /* nested elements are not ours */
                                r = lvxml_unescape(ts, (size_t)(te - ts), &text);
                                if (r < 0)
                                        return r;
                                c.p = te + 2;
                                const char *cn;
                                size_t cl;
                                r = read_name(&c, &cn, &cl);
                                if (r < 0)
                                        return r;
                                if (cl != nl || memcmp(cn, n, nl) != 0)
                                        return -EBADMSG;
                                skip_ws(&c);
                                if (c.p >= c.end || *c.p != '>')
                                        return -EBADMSG;
                                c.p++;
                        }
#define IS(s) (nl == strlen(s) && memcmp(n, s, nl) == 0)
                        if (IS("provider"))
                                set_str(&inst->provider, &text);
                        else if (IS("pool"))
                                set_str(&inst->pool, &text);
                        else if (IS("node-id"))
                                set_str(&inst->node_id, &text);
                        else if (IS("label"))
                                set_str(&inst->label, &text);
                        else if (IS("hostname"))
                                set_str(&inst->hostname, &text);
                        else if (IS("image"))
                                set_str(&inst->image, &text);
                        else if (IS("port") || IS("memory-mib") || IS("vcpus")) {
                                int v;
                                if (parse_int(text, &v) < 0)
                                        return -EBADMSG;
                                if (IS("port"))
                                        inst->port = v;
                                else if (IS("vcpus"))
                                        inst->vcpus = v;
                                else
                                        inst->memory_mib = v;
                        } else if (IS("tag")) {
                                if (!key)
                                        return -EBADMSG;
                                inst->tags = xrealloc(inst->tags, (inst->n_tags + 1) * sizeof(*inst->tags));
                                inst->tags[inst->n_tags].key = TAKE_PTR(key);
                                inst->tags[inst->n_tags].value = TAKE_PTR(text);
                                inst->n_tags++;
                        }
#undef IS
                }
        *ret = TAKE_PTR(inst);
        return 0;
}

/* ---------------------------------------------------------------- names */

static bool name_safe(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
               ch == '-' || ch == '.';
}

char *lvxml_name_encode(const char *s) {
        if (!s)
                s = "";
        char *out = xmalloc(strlen(s) * 3 + 1), *o = out;
        for (const char *c = s; *c; c++) {
                if (name_safe(*c) && !(c == s && *c == '.'))
                        *o++ = *c;
                else
                        o += sprintf(o, "%%%02X", (unsigned char)*c);
        }
        *o = 0;
        return out;
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

int lvxml_name_decode(const char *s, size_t n, char **ret) {
        _cleanup_free_ char *out = xmalloc(n + 1);
        char *o = out;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '%') {
                        if (!name_safe(s[i]))
                                return -EINVAL;
                        *o++ = s[i];
                        continue;
                }
                if (i + 2 >= n)
                        return -EINVAL;
                int h = hexval(s[i + 1]), l = h < 0 ? -1 : hexval(s[i + 2]);
                if (h < 0 || l < 0 || (h == 0 && l == 0))
                        return -EINVAL;
                *o++ = (char)(h * 16 + l);
                i += 2;
        }
        *o = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

char *lvxml_domain_name(const char *provider, const char *node_id) {
        _cleanup_free_ char *p = lvxml_name_encode(provider), *id = lvxml_name_encode(node_id);
        return xasprintf("%s-np%s", p, id);
}

int lvxml_domain_name_parse(const char *name, const char *provider, bool overlay, char **ret_node_id) {
        _cleanup_free_ char *p = lvxml_name_encode(provider);
        size_t pl = strlen(p), nl = strlen(name);
        if (overlay) {
                if (nl < 6 || strcmp(name + nl - 6, ".qcow2") != 0)
                        return -EINVAL;
                nl -= 6;
        }
        if (nl <= pl + 3 || memcmp(name, p, pl) != 0 || memcmp(name + pl, "-np", 3) != 0)
                return -EINVAL;
        const char *id = name + pl + 3;
        size_t il = nl - pl - 3;
        for (size_t i = 0; i < il; i++)
                if (id[i] < '0' || id[i] > '9')
                        return -EINVAL;
        *ret_node_id = xstrndup(id, il);
        return 0;
}

int lvxml_image_volume_name(const char *provider, const char *image_name, const char *format,
                            const struct provider_kv *tags, size_t n_tags, char **ret) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = mem_open(&buf, &len);
        _cleanup_free_ char *p = lvxml_name_encode(provider), *n = lvxml_name_encode(image_name),
                            *fmt = lvxml_name_encode(format);
        fprintf(f, "%s@%s@%s", p, n, fmt);
        for (size_t i = 0; i < n_tags; i++) {
                _cleanup_free_ char *k = lvxml_name_encode(tags[i].key), *v = lvxml_name_encode(tags[i].value);
                fprintf(f, "@%s=%s", k, v);
        }
        _cleanup_free_ char *name = mem_close(f, &buf);
        if (strlen(name) > LVXML_NAME_MAX)
                return -ENAMETOOLONG;
        *ret = TAKE_PTR(name);
        return 0;
}

void lvxml_image_name_free(struct lvxml_image_name *n) {
        if (!n)
                return;
        free(n->provider);
        free(n->name);
        free(n->format);
        provider_tags_free(n->tags, n->n_tags);
        free(n);
}

int lvxml_image_volume_parse(const char *vol, struct lvxml_image_name **ret) {
        _cleanup_(lvxml_image_name_freep) struct lvxml_image_name *in = xnew(struct lvxml_image_name, 1);
        const char *s = vol;
        int field = 0, r;
        for (;;) {
                const char *e = strchr(s, '@');
                size_t l = e ? (size_t)(e - s) : strlen(s);
                if (field < 3) {
                        char **dst = field == 0 ? &in->provider : field == 1 ? &in->name : &in->format;
                        if (l == 0)
                                return -EINVAL;
                        r = lvxml_name_decode(s, l, dst);
                        if (r < 0)
                                return r;
                } else {
                        const char *eq = memchr(s, '=', l);
                        if (!eq)
                                return -EINVAL;
                        _cleanup_free_ char *k = NULL, *v = NULL;
                        r = lvxml_name_decode(s, (size_t)(eq - s), &k);
                        if (r < 0)
                                return r;
                        r = lvxml_name_decode(eq + 1, l - (size_t)(eq - s) - 1, &v);
                        if (r < 0)
                                return r;
                        in->tags = xrealloc(in->tags, (in->n_tags + 1) * sizeof(*in->tags));
                        in->tags[in->n_tags].key = TAKE_PTR(k);
                        in->tags[in->n_tags].value = TAKE_PTR(v);
                        in->n_tags++;
                }
                field++;
                if (!e)
                        break;
                s = e + 1;
        }
        if (field < 3)
                return -EINVAL;
        *ret = TAKE_PTR(in);
        return 0;
}
