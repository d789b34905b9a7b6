/* owner.c — which launcher does a piece of shared work.
 *
 * DESIGN. Several launchers may run on one config and one ZooKeeper; ZooKeeper
 * is all they share. Work that every launcher could do is split by rendezvous
 * hashing (rendezvous.h, as Zuul's launcher does) over the live pool workers of
 * the component registry (/nodepool/components/pool, ephemeral: a dead
 * launcher's pools vanish with its session), restricted to the pools that can
 * do the work (same provider, same label). The launcher whose pool scores
 * highest owns the key. Our own active pools always count, also before the
 * cache shows their components, so a lone launcher owns everything at once.
 * Views of the registry differ for a moment when a launcher comes or goes, so
 * two launchers may both believe they own a key: ownership is only ever used
 * to avoid duplicate work, never alone for safety — every decision it guards
 * is also protected by a ZooKeeper lock on the object, a shared lock, or a
 * version-checked write (see the DESIGN comments of static.c, minready.c and
 * cleanup.c). A launcher with two pools gets two tickets; that only skews the
 * split. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "rendezvous.h"

struct owner_pool {
        char *id, *provider;
        json_t *labels;                 /* supported_labels (a reference) or NULL */
        bool ours;
};

struct owners {
        struct owner_pool *v;
        size_t n;
        const char **ids;               /* scratch for owners_mine() */
};

static bool have(const struct owners *o, const char *id) {
        for (size_t i = 0; i < o->n; i++)
                if (strcmp(o->v[i].id, id) == 0) return true;
        return false;
}

static void add(struct owners *o, const char *id, const char *provider, json_t *labels, bool ours) {
        struct owner_pool *p = &o->v[o->n++];
        p->id = xstrdup(id);
        p->provider = provider ? xstrdup(provider) : NULL;
        p->labels = labels ? json_incref(labels) : NULL;
        p->ours = ours;
}

struct owners *owners_snapshot(struct launcher *l) {
        size_t nc = 0;
        json_t **comps = caches_pool_components(l, &nc);
        struct owners *o = xnew(struct owners, 1);
        o->v = xnew(struct owner_pool, nc + l->n_pools + 1);
        for (size_t i = 0; i < l->n_pools; i++) {
                struct pool *p = l->pools[i];
                if (p->retired || !p->component) continue;
                add(o, p->id, p->provider_name, component_get(p->component, "supported_labels"), true);
        }
        for (size_t i = 0; i < nc; i++) {
                const char *id = json_string_value(json_object_get(comps[i], "id"));
                if (id && !have(o, id))
                        add(o, id, json_string_value(json_object_get(comps[i], "provider_name")),
                            json_object_get(comps[i], "supported_labels"), false);
                json_decref(comps[i]);
        }
        free(comps);
        o->ids = xnew(const char *, o->n + 1);
        return o;
}

void owners_free(struct owners *o) {
        if (!o) return;
        for (size_t i = 0; i < o->n; i++) {
                free(o->v[i].id);
                free(o->v[i].provider);
                json_decref(o->v[i].labels);
        }
        free(o->v);
        free(o->ids);
        free(o);
}

static bool offers(const struct owner_pool *p, const char *label) {
        size_t i;
        json_t *v;
        if (!json_is_array(p->labels)) return false;
        json_array_foreach(p->labels, i, v)
                if (json_is_string(v) && strcmp(json_string_value(v), label) == 0) return true;
        return false;
}

bool owners_mine(const struct owners *o, const char *key, const char *provider, const char *label) {
        for (size_t i = 0; i < o->n; i++) {
                const struct owner_pool *p = &o->v[i];
                bool fits = (!provider || (p->provider && strcmp(p->provider, provider) == 0)) &&
                            (!label || offers(p, label));
                o->ids[i] = fits ? p->id : NULL;
        }
        long k = rendezvous_owner(o->ids, o->n, key);
        /* Nobody known can do it: doing it ourselves is safe (see DESIGN). */
        return k < 0 || o->v[k].ours;
}

char *owners_lock_path(const char *kind, const char *name) {
        /* Names come from the config: keep them one path component. */
        size_t n = strlen(name);
        char *esc = xnew(char, 3 * n + 2), *w = esc;
        if (name[0] == '.') *w++ = '%', *w++ = '2', *w++ = 'E', name++;
        for (const char *s = name; *s; s++) {
                if (*s == '/' || *s == '%') w += sprintf(w, "%%%02X", (unsigned char)*s);
                else *w++ = *s;
        }
        *w = 0;
        char *path = xasprintf(LAUNCHER_POOLD_LOCK_ROOT "/%s/%s", kind, esc);
        free(esc);
        return path;
}
