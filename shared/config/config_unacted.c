/* config_unacted.c — the keys poold accepts for compatibility but does not act on.
 *
 * DESIGN: one table. A Nodepool file using these keys loads unchanged, and each
 * occurrence gets a positioned warning, so nothing is silently ignored. When
 * poold implements a key, delete its line here (and drop the warning from the
 * tests that expect it). Contexts are the schema ids of config_provider.c and
 * the names the hand-written parsers of config_load.c pass. */
#include <string.h>

#include "config_internal.h"

static const struct {
        const char *ctx;
        const char *key;
        const char *note;       /* appended to the message, or NULL */
} unacted[] = {
        { "openstack provider", "nodepool-id", " (deprecated: Nodepool does not act on it either)" },
};

void cfg_warn_unacted_key(struct cctx *c, const struct cnode *k, const char *ctx, const char *lookup) {
        if (!k || k->bad || k->type != CNODE_SCALAR) return;
        const char *key = lookup ? lookup : k->value;
        for (size_t i = 0; i < ELEMENTSOF(unacted); i++)
                if (strcmp(unacted[i].ctx, ctx) == 0 && strcmp(unacted[i].key, key) == 0) {
                        cfg_warning(c, k, "'%s' is accepted for compatibility but poold does not act on it yet%s",
                                    k->value, unacted[i].note ? unacted[i].note : "");
                        return;
                }
}

void cfg_warn_unacted(struct cctx *c, const struct cnode *m, const char *ctx) {
        for (size_t i = 0; m && m->type == CNODE_MAP && i < cnode_map_size(m); i++)
                cfg_warn_unacted_key(c, cnode_map_key(m, i), ctx, NULL);
}
