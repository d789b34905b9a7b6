/* webapp_req.c — request parsing for the web app (see webapp_req.h).
 *
 * DESIGN. Kept apart from the HTTP server so the parts a remote client
 * controls can be fuzzed without a socket. Inputs are already bounded by
 * libmicrohttpd's per-connection memory limit (request line and headers);
 * query values are bounded again here because they become cache keys. */
#include "webapp_req.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "macro.h"

static const char *const LISTS[] = { "image-list",   "dib-image-list", "image-status", "node-list",
                                     "request-list", "label-list",     "pool-list" };

/* The q of the most specific Accept range matching TYPE ("text/plain"), or -1 if none does. */
static double accept_q(const char *accept, const char *type) {
        double best_q = -1;
        int best_spec = -1;
        const char *slash = strchr(type, '/');
        size_t major_len = (size_t)(slash - type);
        for (const char *p = accept; p && *p;) {
                size_t n = strcspn(p, ",");
                _cleanup_free_ char *item = xstrndup(p, n);
                p += n;
                if (*p == ',') p++;
                /* range[;params] */
                char *semi = strchr(item, ';');
                double q = 1;
                if (semi) {
                        *semi = 0;
                        for (char *par = semi + 1; par && *par;) {
                                while (*par == ' ' || *par == '\t') par++;
                                if (par[0] == 'q' && par[1] == '=') q = strtod(par + 2, NULL);
                                par = strchr(par, ';');
                                if (par) par++;
                        }
                }
                char *range = item;
                while (*range == ' ' || *range == '\t') range++;
                size_t rl = strlen(range);
                while (rl > 0 && (range[rl - 1] == ' ' || range[rl - 1] == '\t')) range[--rl] = 0;
                int spec;
                if (strcasecmp(range, type) == 0)
                        spec = 2;
                else if (rl == major_len + 2 && strncasecmp(range, type, major_len) == 0 &&
                         strcmp(range + major_len, "/*") == 0)
                        spec = 1;
                else if (strcmp(range, "*/*") == 0)
                        spec = 0;
                else
                        continue;
                if (spec > best_spec) {
                        best_spec = spec;
                        best_q = q;
                }
        }
        return best_q;
}

bool webapp_wants_json(const char *accept) {
        if (!accept || !*accept) return false;
        static const char *const offers[] = { "text/html", "text/plain", "application/json" };
        double best = 0;
        size_t best_i = SIZE_MAX;
        for (size_t i = 0; i < ELEMENTSOF(offers); i++) {
                double q = accept_q(accept, offers[i]);
                if (q > best) {
                        best = q;
                        best_i = i;
                }
        }
        return best_i == 2;
}

void webapp_req_done(struct webapp_req *r) {
        if (!r) return;
        free(r->node_id);
        free(r->fields);
        free(r->key);
        *r = (struct webapp_req){};
}

int webapp_req_parse(const char *url, const char *node_id, const char *fields, const char *accept,
                     struct webapp_req *ret) {
        if (!url || !*url) url = "/";
        if (strcmp(url, "/health") == 0) {
                *ret = (struct webapp_req){ .kind = WEBAPP_HEALTH, .key = xstrdup("health") };
                return 0;
        }
        if (strcmp(url, "/ready") == 0) {
                *ret = (struct webapp_req){ .kind = WEBAPP_READY, .key = xstrdup("ready") };
                return 0;
        }
        if ((node_id && strlen(node_id) > WEBAPP_MAX_QUERY_VALUE) || (fields && strlen(fields) > WEBAPP_MAX_QUERY_VALUE))
                return -E2BIG;
        if (node_id && !*node_id) node_id = NULL;
        if (fields && !*fields) fields = NULL;

        const char *name = url[0] == '/' ? url + 1 : url;
        size_t nl = strlen(name);
        bool json = false;
        if (nl > 5 && strcmp(name + nl - 5, ".json") == 0) {
                json = true;
                nl -= 5;
        }
        if (!json) json = webapp_wants_json(accept);

        struct webapp_req r = { .json = json };
        const char *kind_name = NULL;
        if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
                r.kind = WEBAPP_PAGE;
                kind_name = "page";
        } else if (strcmp(url, "/metrics") == 0) {
                r.kind = WEBAPP_METRICS;
                kind_name = "metrics";
        } else {
                for (size_t i = 0; i < ELEMENTSOF(LISTS); i++)
                        if (strlen(LISTS[i]) == nl && strncmp(name, LISTS[i], nl) == 0) {
                                r.kind = WEBAPP_LIST;
                                r.list = kind_name = LISTS[i];
                        }
        }
        if (!kind_name) return -ENOENT;
        r.node_id = node_id ? xstrdup(node_id) : NULL;
        r.fields = fields ? xstrdup(fields) : NULL;
        /* Length-prefixed values: node_id "a|b" and node_id "a" with fields "b|" must not share a key. */
        r.key = xasprintf("%s|%d|%zu:%s|%zu:%s", kind_name, json, node_id ? strlen(node_id) : 0, node_id ? node_id : "",
                          fields ? strlen(fields) : 0, fields ? fields : "");
        *ret = r;
        return 0;
}
