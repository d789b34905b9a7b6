/* bw_prov.c — the providers the builder uploads to.
 *
 * DESIGN. One struct upload_target per configured provider that manages images
 * (libvirt, openstack). Its parameters borrow from the config it came from,
 * which it keeps a reference to, so a reload cannot pull strings from under
 * a worker. The driver is opened lazily by the first
 * job that needs it, on its worker thread (opening may block), under a
 * mutex. On reload an unchanged provider is kept; a changed or removed one is
 * retired and freed when its last job is done. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bw.h"
#include "log.h"

/* NULL for a driver the builder cannot open (logged once by the caller). */
static struct upload_target *prov_new(struct bw *w, struct config *cfg, const struct config_provider *cp) {
        struct provider_params_owned params;
        if (provider_params_from_config(cp, &params) < 0) return NULL;
        /* API-call metrics (nodepool.task.*); w->statsd outlives every provider (bw_free). */
        params.params.statsd = w->statsd;
        struct upload_target *p = xnew(struct upload_target, 1);
        p->params = params;
        p->name = xstrdup(cp->name);
        p->canonical = xstrdup(cp->canonical);
        p->image_name_format = xstrdup(cp->image_name_format);
        p->post_upload_hook = xstrdup(cp->post_upload_hook);
        p->upload_timeout_ms = (uint64_t)(cp->image_upload_timeout > 0 ? cp->image_upload_timeout : 3600) * 1000;
        const char *ov = getenv("POOLD_UPLOAD_TIMEOUT_MS");
        if (ov && *ov) {
                char *end;
                unsigned long long v = strtoull(ov, &end, 10);
                if (!*end && v > 0) p->upload_timeout_ms = v;
        }
        pthread_mutex_init(&p->mu, NULL);
        p->cfg = config_ref(cfg);
        return p;
}

static void prov_free(struct upload_target *p) {
        if (!p) return;
        provider_close(p->p);
        pthread_mutex_destroy(&p->mu);
        provider_params_done(&p->params);
        config_free(p->cfg);
        free(p->name);
        free(p->canonical);
        free(p->image_name_format);
        free(p->post_upload_hook);
        free(p);
}

static void retire(struct bw *w, struct upload_target *p) {
        if (p->refs == 0) {
                prov_free(p);
                return;
        }
        w->retired = xrealloc(w->retired, (w->n_retired + 1) * sizeof *w->retired);
        w->retired[w->n_retired++] = p;
}

struct upload_target *bw_prov_find(struct bw *w, const char *name) {
        /* NULL entries: already kept by a bw_prov_sync in progress. */
        for (size_t i = 0; i < w->n_provs; i++)
                if (w->provs[i] && strcmp(w->provs[i]->name, name) == 0) return w->provs[i];
        return NULL;
}

void bw_prov_sync(struct bw *w) {
        struct config *c = w->b->config;
        struct upload_target **next = xnew(struct upload_target *, c->n_providers + 1);
        size_t n = 0;
        for (size_t i = 0; i < c->n_providers; i++) {
                const struct config_provider *cp = &c->providers[i];
                if (cp->driver == CONFIG_DRIVER_STATIC || cp->driver == CONFIG_DRIVER_METASTATIC) continue; /* manages no images */
                struct upload_target *old = bw_prov_find(w, cp->name);
                if (old && strcmp(old->canonical ? old->canonical : "", cp->canonical ? cp->canonical : "") == 0) {
                        next[n++] = old;
                        for (size_t k = 0; k < w->n_provs; k++)
                                if (w->provs[k] == old) w->provs[k] = NULL;
                        continue;
                }
                struct upload_target *p = prov_new(w, c, cp);
                if (p)
                        next[n++] = p;
                else if (cp->n_diskimages > 0 && !old)
                        log_warning("provider %s: driver %s: this builder cannot upload to it",
                                    cp->name, config_driver_to_string(cp->driver));
        }
        for (size_t k = 0; k < w->n_provs; k++)
                if (w->provs[k]) retire(w, w->provs[k]);
        free(w->provs);
        w->provs = next;
        w->n_provs = n;
}

struct upload_target *bw_prov_ref(struct upload_target *p) {
        p->refs++;
        return p;
}

void bw_prov_unref(struct bw *w, struct upload_target *p) {
        if (!p || --p->refs > 0) return;
        for (size_t i = 0; i < w->n_retired; i++)
                if (w->retired[i] == p) {
                        w->retired[i] = w->retired[--w->n_retired];
                        prov_free(p);
                        return;
                }
}

int bw_prov_get(struct upload_target *p, struct provider **ret, char **reterr_msg) {
        int r = 0;
        pthread_mutex_lock(&p->mu);
        if (!p->p) {
                r = provider_open(&p->params.params, &p->p, reterr_msg);
                if (r >= 0) log_info("provider %s opened (driver %s)", p->name, p->params.params.driver);
        }
        if (r >= 0) *ret = p->p;
        pthread_mutex_unlock(&p->mu);
        return r;
}

void bw_prov_free_all(struct bw *w) {
        for (size_t i = 0; i < w->n_provs; i++) prov_free(w->provs[i]);
        for (size_t i = 0; i < w->n_retired; i++) prov_free(w->retired[i]);
        free(w->provs);
        free(w->retired);
        w->provs = w->retired = NULL;
        w->n_provs = w->n_retired = 0;
}
