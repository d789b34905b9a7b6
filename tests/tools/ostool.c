/* ostool — drive the openstack provider driver from integration tests.
 *
 *   ostool [options] COMMAND [ARGS]
 *     create NODE_ID IMAGE_ID      create a server for label --label of pool --pool
 *     wait ID                      poll get() until ACTIVE/ERROR (prints the server)
 *     get ID | delete ID | list | quota | console ID
 *     azs                          availability_zones(): the cloud's zones
 *     upload FILE FORMAT NAME [K=V...]   image_upload; prints the external id
 *     image-list | image-delete ID
 *
 *   options: --cloud C --region R --provider NAME --pool P --label L
 *            --flavor-name F --min-ram N --network N (repeatable) --prop K=V (repeatable)
 *            --key-name K --userdata TEXT --config-drive --az Z (create: that zone) --rate S --upload-timeout S
 *            --calls N (create: N servers concurrently from N threads; quota: N calls in a row)
 *            --md5 HEX --sha256 HEX (upload: the file's digests, passed to image_upload)
 *            --get-after-create (create: each thread get()s its server at once, as the launcher does)
 *     poll ID SECONDS              get() every 100 ms (the driver's list cache serves them)
 *
 * Output is one JSON document on stdout; errors go to stderr with the
 * driver's message and exit status 1 (3 for -EDQUOT, 4 for -ENOENT,
 * 5 for -EACCES, 6 for -EEXIST) so tests can tell them apart. */
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "provider.h"

static int exit_code(int r) {
        switch (r) {
        case -EDQUOT: return 3;
        case -ENOENT: return 4;
        case -EACCES: return 5;
        case -EEXIST: return 6;
        default: return 1;
        }
}

static int fail(const char *what, int r, char *msg) {
        fprintf(stderr, "ostool: %s: %s (%s)\n", what, msg ? msg : "", strerror(-r));
        free(msg);
        return exit_code(r);
}

static json_t *server_json(const struct provider_server *s) {
        json_t *tags = json_object();
        for (size_t i = 0; i < s->n_tags; i++)
                json_object_set_new(tags, s->tags[i].key, json_string(s->tags[i].value));
        return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:i, s:i, s:o}", "id", s->external_id, "state",
                         provider_server_state_to_string(s->state), "interface_ip", s->interface_ip, "az", s->az,
                         "region", s->region, "host_id", s->host_id, "cores", s->resources.cores, "ram",
                         s->resources.ram_mib, "tags", tags);
}

static json_t *image_json(const struct provider_image *img) {
        json_t *tags = json_object();
        for (size_t i = 0; i < img->n_tags; i++)
                json_object_set_new(tags, img->tags[i].key, json_string(img->tags[i].value));
        return json_pack("{s:s, s:s?, s:s?, s:I, s:o}", "id", img->external_id, "name", img->name, "format",
                         img->format, "size", (json_int_t)img->size, "tags", tags);
}

static void print_json(json_t *j) {
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
}

struct create_job {
        struct provider *p;
        struct provider_create_req req;
        char hostname[64];
        /* node ids of tests are short; longer ones are cut */
        char node_id[48];
        struct provider_kv tags[3];
        int r;
        char *msg;
        struct provider_server *s;
        bool get_after;
        pthread_t th;
};

static void *create_thread(void *ud) {
        struct create_job *j = ud;
        j->r = j->p->ops->create(j->p, &j->req, &j->s, &j->msg);
        if (j->r >= 0 && j->get_after) {
                /* As the launcher does: the new server must be found at once. */
                struct provider_server *g = NULL;
                j->r = j->p->ops->get(j->p, j->s->external_id, &g, &j->msg);
                provider_server_free(g);
        }
        return NULL;
}

int main(int argc, char **argv) {
        const char *cloud = "poold", *region = NULL, *provider = "os", *pool = "main", *label = "small";
        const char *flavor = NULL, *key_name = NULL, *userdata = NULL, *md5 = NULL, *sha256 = NULL;
        const char *nets[16], *az = NULL;
        struct provider_kv props[16];
        size_t n_nets = 0, n_props = 0;
        long long min_ram = 0, upload_timeout = 0;
        double rate = 0;
        int config_drive = -1, calls = 1;
        bool get_after = false;
        static const struct option opts[] = {
                { "cloud", 1, 0, 'c' }, { "region", 1, 0, 'r' }, { "provider", 1, 0, 'P' }, { "pool", 1, 0, 'p' },
                { "label", 1, 0, 'l' }, { "flavor-name", 1, 0, 'f' }, { "min-ram", 1, 0, 'm' },
                { "network", 1, 0, 'n' }, { "prop", 1, 0, 'x' }, { "key-name", 1, 0, 'k' },
                { "userdata", 1, 0, 'u' }, { "config-drive", 0, 0, 'd' }, { "az", 1, 0, 'z' },
                { "rate", 1, 0, 'R' }, { "upload-timeout", 1, 0, 'T' }, { "calls", 1, 0, 'N' },
                { "md5", 1, 0, '5' }, { "sha256", 1, 0, '2' }, { "get-after-create", 0, 0, 'g' }, { 0 },
        };
        int c;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
                switch (c) {
                case 'c': cloud = optarg; break;
                case 'r': region = optarg; break;
                case 'P': provider = optarg; break;
                case 'p': pool = optarg; break;
                case 'l': label = optarg; break;
                case 'f': flavor = optarg; break;
                case 'm': min_ram = atoll(optarg); break;
                case 'n': if (n_nets < ELEMENTSOF(nets)) nets[n_nets++] = optarg; break;
                case 'z': az = optarg; break;
                case 'x': {
                        char *eq = strchr(optarg, '=');
                        if (!eq || n_props >= ELEMENTSOF(props)) return 2;
                        *eq = '\0';
                        props[n_props++] = (struct provider_kv){ optarg, eq + 1 };
                        break;
                }
                case 'k': key_name = optarg; break;
                case 'u': userdata = optarg; break;
                case 'd': config_drive = 1; break;
                case 'R': rate = atof(optarg); break;
                case 'T': upload_timeout = atoll(optarg); break;
                case 'N': calls = atoi(optarg); break;
                case '5': md5 = optarg; break;
                case '2': sha256 = optarg; break;
                case 'g': get_after = true; break;
                default: return 2;
                }
        }
        if (optind >= argc) {
                fprintf(stderr, "usage: ostool [options] COMMAND [ARGS]\n");
                return 2;
        }
        log_setup("ostool", getenv("OSTOOL_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING);
        const char *cmd = argv[optind];
        char **args = argv + optind + 1;
        int nargs = argc - optind - 1;

        struct provider_openstack_label lab = {
                .pool = pool, .label = label, .diskimage = "debian", .flavor_name = flavor, .min_ram = min_ram,
                .key_name = key_name, .userdata = userdata, .config_drive = config_drive,
                .networks = nets, .n_networks = n_nets,
                .instance_properties = props, .n_instance_properties = n_props,
        };
        struct provider_params params = {
                .name = provider, .driver = "openstack",
                .openstack = { .cloud = cloud, .region_name = region, .rate = rate,
                               .image_upload_timeout = upload_timeout, .labels = &lab, .n_labels = 1 },
        };
        _cleanup_(provider_closep) struct provider *p = NULL;
        char *msg = NULL;
        int r = provider_open(&params, &p, &msg);
        if (r < 0) return fail("open", r, msg);

        if (strcmp(cmd, "create") == 0 && nargs == 2) {
                if (calls < 1 || calls > 64) return 2;
                struct create_job *jobs = xnew(struct create_job, calls);
                for (int i = 0; i < calls; i++) {
                        struct create_job *j = &jobs[i];
                        if (calls > 1)
                                snprintf(j->node_id, sizeof j->node_id, "%.20s-%d", args[0], i);
                        else
                                snprintf(j->node_id, sizeof j->node_id, "%.30s", args[0]);
                        snprintf(j->hostname, sizeof j->hostname, "np%.40s", j->node_id);
                        j->tags[0] = (struct provider_kv){ "nodepool_provider_name", provider };
                        j->tags[1] = (struct provider_kv){ "nodepool_pool_name", pool };
                        j->tags[2] = (struct provider_kv){ "nodepool_node_id", j->node_id };
                        j->p = p;
                        j->get_after = get_after;
                        j->req = (struct provider_create_req){ .node_id = j->node_id, .hostname = j->hostname,
                                                               .label = label, .pool = pool, .az = az,
                                                               .image = strcmp(args[1], "-") ? args[1] : NULL,
                                                               .tags = j->tags, .n_tags = 3 };
                        pthread_create(&j->th, NULL, create_thread, j);
                }
                json_t *out = json_array();
                int worst = 0;
                char *worst_msg = NULL;
                for (int i = 0; i < calls; i++) {
                        pthread_join(jobs[i].th, NULL);
                        if (jobs[i].r < 0) {
                                if (!worst) {
                                        worst = jobs[i].r;
                                        worst_msg = jobs[i].msg;
                                        jobs[i].msg = NULL;
                                }
                                json_array_append_new(out, json_pack("{s:i, s:s?}", "error", jobs[i].r, "message",
                                                                     jobs[i].msg));
                        } else {
                                json_array_append_new(out, server_json(jobs[i].s));
                        }
                        free(jobs[i].msg);
                        provider_server_free(jobs[i].s);
                }
                free(jobs);
                print_json(out);
                if (worst) return fail("create", worst, worst_msg);
                return 0;
        }
        if (strcmp(cmd, "wait") == 0 && nargs == 1) {
                for (int i = 0; i < 600; i++) {
                        struct provider_server *s = NULL;
                        r = p->ops->get(p, args[0], &s, &msg);
                        if (r < 0) return fail("get", r, msg);
                        if (s->state != PROVIDER_SERVER_BUILDING || i == 599) {
                                print_json(server_json(s));
                                provider_server_free(s);
                                return 0;
                        }
                        provider_server_free(s);
                        usleep(200 * 1000);
                }
        }
        if (strcmp(cmd, "poll") == 0 && nargs == 2) {
                /* get() every 100 ms for SECONDS. */
                double secs = atof(args[1]);
                int done = 0;
                for (int i = 0; i < (int)(secs * 10); i++) {
                        struct provider_server *s = NULL;
                        r = p->ops->get(p, args[0], &s, &msg);
                        if (r < 0) return fail("get", r, msg);
                        provider_server_free(s);
                        done++;
                        usleep(100 * 1000);
                }
                print_json(json_pack("{s:i}", "calls", done));
                return 0;
        }
        if (strcmp(cmd, "get") == 0 && nargs == 1) {
                struct provider_server *s = NULL;
                r = p->ops->get(p, args[0], &s, &msg);
                if (r < 0) return fail("get", r, msg);
                print_json(server_json(s));
                provider_server_free(s);
                return 0;
        }
        if (strcmp(cmd, "delete") == 0 && nargs == 1) {
                r = p->ops->delete(p, args[0], &msg);
                if (r < 0) return fail("delete", r, msg);
                print_json(json_pack("{s:s}", "deleted", args[0]));
                return 0;
        }
        if (strcmp(cmd, "list") == 0 && nargs == 0) {
                struct provider_server **v = NULL;
                size_t n = 0;
                r = p->ops->list(p, &v, &n, &msg);
                if (r < 0) return fail("list", r, msg);
                json_t *a = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(a, server_json(v[i]));
                provider_server_array_free(v, n);
                print_json(a);
                return 0;
        }
        if (strcmp(cmd, "quota") == 0 && nargs == 0) {
                struct provider_limits l;
                for (int i = 0; i < calls; i++) {
                        r = p->ops->quota(p, &l, &msg);
                        if (r < 0) return fail("quota", r, msg);
                }
                print_json(json_pack("{s:I, s:I, s:I, s:I}", "instances", (json_int_t)l.max_instances, "cores",
                                     (json_int_t)l.max_cores, "ram", (json_int_t)l.max_ram_mib, "free_ram",
                                     (json_int_t)l.free_ram_mib));
                return 0;
        }
        if (strcmp(cmd, "azs") == 0 && nargs == 0) {
                char **v = NULL;
                size_t n = 0;
                r = p->ops->availability_zones(p, &v, &n, &msg);
                if (r < 0) return fail("azs", r, msg);
                json_t *out = json_array();
                for (size_t i = 0; i < n; i++) json_array_append_new(out, json_string(v[i]));
                provider_strv_free(v, n);
                print_json(out);
                return 0;
        }
        if (strcmp(cmd, "console") == 0 && nargs == 1) {
                char *text = NULL;
                r = p->ops->console_log(p, args[0], &text, &msg);
                if (r < 0) return fail("console", r, msg);
                print_json(json_pack("{s:s}", "console", text));
                free(text);
                return 0;
        }
        if (strcmp(cmd, "upload") == 0 && nargs >= 3) {
                struct provider_kv tags[32];
                size_t nt = 0;
                for (int i = 3; i < nargs && nt < ELEMENTSOF(tags); i++) {
                        char *eq = strchr(args[i], '=');
                        if (!eq) return 2;
                        *eq = '\0';
                        tags[nt++] = (struct provider_kv){ args[i], eq + 1 };
                }
                char *id = NULL;
                r = p->ops->image_upload(p, args[0], args[1], md5, sha256, args[2], tags, nt, &id, &msg);
                if (r < 0) return fail("upload", r, msg);
                print_json(json_pack("{s:s}", "id", id));
                free(id);
                return 0;
        }
        if (strcmp(cmd, "image-list") == 0 && nargs == 0) {
                struct provider_image **v = NULL;
                size_t n = 0;
                r = p->ops->image_list(p, &v, &n, &msg);
                if (r < 0) return fail("image-list", r, msg);
                json_t *a = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(a, image_json(v[i]));
                provider_image_array_free(v, n);
                print_json(a);
                return 0;
        }
        if (strcmp(cmd, "image-delete") == 0 && nargs == 1) {
                r = p->ops->image_delete(p, args[0], &msg);
                if (r < 0) return fail("image-delete", r, msg);
                print_json(json_pack("{s:s}", "deleted", args[0]));
                return 0;
        }
        fprintf(stderr, "ostool: unknown command or wrong arguments: %s\n", cmd);
        return 2;
}
