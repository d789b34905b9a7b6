/* keystone.c — Keystone v3 session (see keystone.h).
 *
 * DESIGN: the token and its catalog are cached under one mutex. A caller that
 * finds the token stale authenticates while holding the mutex, so concurrent
 * callers wait for that one request instead of each authenticating. A forced
 * re-auth (after a 401) is skipped when another thread already replaced the
 * token the caller used — recognised by comparing the token text. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "http.h"
#include "json_util.h"
#include "keystone.h"
#include "log.h"
#include "provider.h"
#include "redact.h"

#define KEYSTONE_RESPONSE_MAX (8u * 1024 * 1024) /* catalogs of big clouds are large */

struct keystone {
        struct clouds_cloud *cloud;
        long timeout_ms;
        pthread_mutex_t lock;
        char *token;           /* guarded by lock */
        char *prev_token;      /* the one it replaced (an answer may still quote it); guarded by lock */
        double expires;        /* epoch seconds */
        json_t *catalog;       /* guarded by lock */
        char *project_id;      /* the token's scope; guarded by lock */
};

static char *dup_or_null(const char *s) {
        return s ? xstrdup(s) : NULL;
}

static struct clouds_cloud *cloud_copy(const struct clouds_cloud *c) {
        struct clouds_cloud *n = xnew(struct clouds_cloud, 1);
        n->name = dup_or_null(c->name);
        n->path = dup_or_null(c->path);
        n->auth_type = c->auth_type;
        n->auth_url = dup_or_null(c->auth_url);
        n->username = dup_or_null(c->username);
        n->user_id = dup_or_null(c->user_id);
        n->password = dup_or_null(c->password);
        n->project_name = dup_or_null(c->project_name);
        n->project_id = dup_or_null(c->project_id);
        n->user_domain_name = dup_or_null(c->user_domain_name);
        n->user_domain_id = dup_or_null(c->user_domain_id);
        n->project_domain_name = dup_or_null(c->project_domain_name);
        n->project_domain_id = dup_or_null(c->project_domain_id);
        n->app_cred_id = dup_or_null(c->app_cred_id);
        n->app_cred_name = dup_or_null(c->app_cred_name);
        n->app_cred_secret = dup_or_null(c->app_cred_secret);
        n->region_name = dup_or_null(c->region_name);
        n->interface = dup_or_null(c->interface);
        n->image_format = dup_or_null(c->image_format);
        n->cacert = dup_or_null(c->cacert);
        n->verify = c->verify;
        n->warning = dup_or_null(c->warning);
        return n;
}

struct keystone *keystone_new(const struct clouds_cloud *cloud, long timeout_ms) {
        struct keystone *k = xnew(struct keystone, 1);
        k->cloud = cloud_copy(cloud);
        k->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
        pthread_mutex_init(&k->lock, NULL);
        return k;
}

void keystone_free(struct keystone *k) {
        if (!k)
                return;
        clouds_cloud_free(k->cloud);
        pthread_mutex_destroy(&k->lock);
        free(k->token);
        free(k->prev_token);
        free(k->project_id);
        if (k->catalog)
                json_decref(k->catalog);
        free(k);
}

void keystone_redact(struct keystone *k, char **msg) {
        if (!msg || !*msg)
                return;
        const struct clouds_cloud *c = k->cloud;
        pthread_mutex_lock(&k->lock);
        const char *secrets[] = { c->password, c->app_cred_secret, k->token, k->prev_token, NULL };
        /* NULL entries end the list early: compact them out. */
        const char *list[ELEMENTSOF(secrets)];
        size_t n = 0;
        for (size_t i = 0; i + 1 < ELEMENTSOF(secrets); i++)
                if (secrets[i])
                        list[n++] = secrets[i];
        list[n] = NULL;
        redact_msg(msg, list);
        pthread_mutex_unlock(&k->lock);
}

const struct clouds_cloud *keystone_cloud(const struct keystone *k) {
        return k->cloud;
}

/* {"name": N} or {"id": I} plus an optional domain the same way. */
static json_t *named(const char *id, const char *name, const char *dom_id, const char *dom_name) {
        json_t *o = json_util_must(json_object());
        if (id)
                json_object_set_new(o, "id", json_string(id));
        else if (name)
                json_object_set_new(o, "name", json_string(name));
        if (!id && (dom_id || dom_name)) {
                json_t *d = json_util_must(json_object());
                if (dom_id)
                        json_object_set_new(d, "id", json_string(dom_id));
                else
                        json_object_set_new(d, "name", json_string(dom_name));
                json_object_set_new(o, "domain", d);
        }
        return o;
}

json_t *keystone_auth_body(const struct clouds_cloud *c) {
        json_t *identity = json_util_must(json_object());
        if (c->auth_type == CLOUDS_AUTH_APPLICATION_CREDENTIAL) {
                json_t *ac = json_util_must(json_object());
                if (c->app_cred_id) {
                        json_object_set_new(ac, "id", json_string(c->app_cred_id));
                } else {
                        json_object_set_new(ac, "name", json_string(c->app_cred_name));
                        json_object_set_new(ac, "user", named(c->user_id, c->username, c->user_domain_id,
                                                              c->user_domain_name));
                }
                json_object_set_new(ac, "secret", json_string(c->app_cred_secret));
                json_object_set_new(identity, "methods", json_pack("[s]", "application_credential"));
                json_object_set_new(identity, "application_credential", ac);
                return json_pack("{s:{s:o}}", "auth", "identity", identity);
        }
        json_t *user = named(c->user_id, c->username, c->user_domain_id, c->user_domain_name);
        json_object_set_new(user, "password", json_string(c->password));
        json_object_set_new(identity, "methods", json_pack("[s]", "password"));
        json_object_set_new(identity, "password", json_pack("{s:o}", "user", user));
        json_t *auth = json_pack("{s:o}", "identity", identity);
        if (c->project_id || c->project_name)
                json_object_set_new(auth, "scope",
                                    json_pack("{s:o}", "project",
                                              named(c->project_id, c->project_name, c->project_domain_id,
                                                    c->project_domain_name)));
        return json_pack("{s:o}", "auth", auth);
}

char *keystone_tokens_url(const char *auth_url) {
        size_t n = strlen(auth_url);
        while (n > 0 && auth_url[n - 1] == '/')
                n--;
        bool versioned = (n >= 3 && strncmp(auth_url + n - 3, "/v3", 3) == 0) ||
                         (n >= 5 && strncmp(auth_url + n - 5, "/v3.0", 5) == 0);
        return xasprintf("%.*s%s/auth/tokens", (int)n, auth_url, versioned ? "" : "/v3");
}

int keystone_catalog_select(json_t *catalog, const char *type, const char *region, const char *interface,
                            char **ret_url) {
        if (!json_is_array(catalog) || !type || !interface)
                return -EINVAL;
        size_t i;
        json_t *svc;
        json_array_foreach(catalog, i, svc) {
                const char *t = json_string_value(json_object_get(svc, "type"));
                if (!t || strcmp(t, type) != 0)
                        continue;
                size_t j;
                json_t *ep;
                json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
                        const char *itf = json_string_value(json_object_get(ep, "interface"));
                        const char *url = json_string_value(json_object_get(ep, "url"));
                        const char *reg = json_string_value(json_object_get(ep, "region"));
                        const char *reg_id = json_string_value(json_object_get(ep, "region_id"));
                        if (!itf || !url || strcmp(itf, interface) != 0)
                                continue;
                        if (region && !(reg && strcmp(reg, region) == 0) && !(reg_id && strcmp(reg_id, region) == 0))
                                continue;
                        size_t n = strlen(url);
                        while (n > 0 && url[n - 1] == '/')
                                n--;
                        *ret_url = xstrndup(url, n);
                        return 0;
                }
        }
        return -ENOENT;
}

int keystone_parse_time(const char *s, double *ret) {
        if (!s)
                return -EINVAL;
        struct tm tm = { 0 };
        int consumed = 0;
        if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                   &tm.tm_sec, &consumed) != 6)
                return -EINVAL;
        if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
            tm.tm_min > 59 || tm.tm_sec > 60)
                return -EINVAL;
        double frac = 0;
        const char *p = s + consumed;
        if (*p == '.') {
                double scale = 0.1;
                for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                        frac += (*p - '0') * scale;
        }
        if (*p != 'Z' && strcmp(p, "+00:00") != 0 && *p != '\0')
                return -EINVAL;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        time_t t = timegm(&tm);
        if (t == (time_t)-1)
                return -EINVAL;
        *ret = (double)t + frac;
        return 0;
}

static double now_epoch(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Who is authenticating, for messages (never the secret). */
static const char *who(const struct clouds_cloud *c) {
        if (c->auth_type == CLOUDS_AUTH_APPLICATION_CREDENTIAL)
                return c->app_cred_id ? c->app_cred_id : c->app_cred_name;
        return c->username ? c->username : c->user_id;
}

/* Keystone's error text from {"error": {"message": ...}}, else NULL. */
static const char *error_text(json_t *body) {
        return json_string_value(json_object_get(json_object_get(body, "error"), "message"));
}

/* Authenticate; caller holds k->lock. */
static int authenticate(struct keystone *k, char **reterr_msg) {
        const struct clouds_cloud *c = k->cloud;
        json_t *body = keystone_auth_body(c);
        _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        _cleanup_free_ char *url = keystone_tokens_url(c->auth_url);
        struct http_request req = {
                .method = "POST", .url = url, .body = text, .body_len = strlen(text),
                .timeout_ms = k->timeout_ms, .max_response = KEYSTONE_RESPONSE_MAX,
                .cacert = c->cacert, .insecure = !c->verify, .capture_header = "X-Subject-Token",
        };
        struct http_response resp = { 0 };
        int r = http_request(&req, &resp, reterr_msg);
        explicit_bzero(text, strlen(text)); /* it held the secret */
        if (r < 0)
                return r;
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (resp.status == 401 || resp.status == 403) {
                const char *m = error_text(j);
                r = provider_error(reterr_msg, EACCES,
                                         "cloud %s: Keystone refused the credentials of %s (HTTP %ld%s%s)", c->name,
                                         who(c) ? who(c) : "?", resp.status, m ? ": " : "", m ? m : "");
                goto out;
        }
        if (resp.status != 201 && resp.status != 200) {
                const char *m = error_text(j);
                r = provider_error(reterr_msg, resp.status >= 500 ? EIO : EINVAL,
                                         "cloud %s: authentication failed: HTTP %ld%s%s", c->name, resp.status,
                                         m ? ": " : "", m ? m : "");
                goto out;
        }
        json_t *tok = json_object_get(j, "token");
        json_t *catalog = json_object_get(tok, "catalog");
        double exp = 0;
        if (!resp.header || !*resp.header || !json_is_array(catalog) ||
            keystone_parse_time(json_string_value(json_object_get(tok, "expires_at")), &exp) < 0) {
                r = provider_error(reterr_msg, EBADMSG,
                                         "cloud %s: malformed token response from %s (no token, catalog or expiry)",
                                         c->name, url);
                goto out;
        }
        free(k->prev_token);
        k->prev_token = TAKE_PTR(k->token);
        k->token = TAKE_PTR(resp.header);
        k->expires = exp;
        if (k->catalog)
                json_decref(k->catalog);
        k->catalog = json_incref(catalog);
        free(k->project_id);
        k->project_id = dup_or_null(json_string_value(json_object_get(json_object_get(tok, "project"), "id")));
        log_debug("keystone: cloud %s: authenticated as %s, token valid for %.0f s", c->name, who(c) ? who(c) : "?",
                  exp - now_epoch());
out:
        if (j)
                json_decref(j);
        http_response_done(&resp);
        return r;
}

static bool stale(const struct keystone *k) {
        return !k->token || k->expires - now_epoch() < KEYSTONE_EXPIRY_MARGIN;
}

int keystone_token(struct keystone *k, const char *rejected, char **ret_token, char **reterr_msg) {
        pthread_mutex_lock(&k->lock);
        int r = 0;
        bool force = rejected && k->token && strcmp(rejected, k->token) == 0;
        if (force || stale(k))
                r = authenticate(k, reterr_msg);
        if (r >= 0)
                *ret_token = xstrdup(k->token);
        pthread_mutex_unlock(&k->lock);
        return r;
}

int keystone_project_id(struct keystone *k, char **ret_id, char **reterr_msg) {
        pthread_mutex_lock(&k->lock);
        int r = 0;
        if (stale(k))
                r = authenticate(k, reterr_msg);
        if (r >= 0 && !k->project_id)
                r = provider_error(reterr_msg, ENOENT, "cloud %s: the token is scoped to no project", k->cloud->name);
        if (r >= 0)
                *ret_id = xstrdup(k->project_id);
        pthread_mutex_unlock(&k->lock);
        return r;
}

char *keystone_project_id_cached(struct keystone *k) {
        pthread_mutex_lock(&k->lock);
        char *id = k->project_id ? xstrdup(k->project_id) : NULL;
        pthread_mutex_unlock(&k->lock);
        return id;
}

int keystone_endpoint(struct keystone *k, const char *type, char **ret_url, char **reterr_msg) {
        pthread_mutex_lock(&k->lock);
        int r = 0;
        if (stale(k))
                r = authenticate(k, reterr_msg);
        if (r >= 0) {
                r = keystone_catalog_select(k->catalog, type, k->cloud->region_name, k->cloud->interface, ret_url);
                if (r < 0)
                        r = provider_error(reterr_msg, r, "cloud %s: no %s endpoint for interface %s%s%s",
                                                 k->cloud->name, type, k->cloud->interface,
                                                 k->cloud->region_name ? " in region " : "",
                                                 k->cloud->region_name ? k->cloud->region_name : "");
        }
        pthread_mutex_unlock(&k->lock);
        return r;
}
