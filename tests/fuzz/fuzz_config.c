/* fuzz_config.c — the config loader must never crash, leak or blow up on any input.
 * The first half of the input is the main file, the rest (after a 0xff byte) the
 * optional secure file, so secure-file merging is fuzzed too. No environment needed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *sep = memchr(data, 0xff, size);
        size_t main_len = sep ? (size_t)(sep - data) : size;
        const char *secure = sep ? (const char *)sep + 1 : NULL;
        size_t secure_len = sep ? size - main_len - 1 : 0;
        struct config_diags diags = {};
        struct config *c = NULL;
        int r = config_load_buffer("fuzz.yaml", (const char *)data, main_len, "fuzz-secure.yaml", secure, secure_len,
                                   &c, &diags);
        if (r == 0) {
                /* Exercise the accessors on whatever was accepted. */
                char *hosts = config_zookeeper_hosts(c);
                free(hosts);
                for (size_t i = 0; i < c->n_providers; i++)
                        if (!config_provider_equal(&c->providers[i], &c->providers[i])) __builtin_trap();
                /* A label is never both poold's and foreign-only; foreign labels resolve.
                 * (The first 64 of each: the lookups are linear, the input may be huge.) */
                for (size_t i = 0; i < c->n_labels && i < 64; i++)
                        if (config_label_served_by_poold(c, c->labels[i].name) &&
                            config_label_foreign_only(c, c->labels[i].name))
                                __builtin_trap();
                for (size_t i = 0; i < c->n_foreign_providers; i++)
                        for (size_t k = 0; k < c->foreign_providers[i].n_pools; k++)
                                for (size_t j = 0; j < c->foreign_providers[i].pools[k].labels.n && j < 64; j++) {
                                        const char *l = c->foreign_providers[i].pools[k].labels.items[j];
                                        if (config_label_served_by_poold(c, l) == config_label_foreign_only(c, l))
                                                __builtin_trap();
                                }
                config_free(c);
        }
        config_diags_clear(&diags);
        return 0;
}
