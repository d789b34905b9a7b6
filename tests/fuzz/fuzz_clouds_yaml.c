/* fuzz_clouds_yaml.c — clouds_yaml_parse on arbitrary clouds.yaml and
 * secure.yaml text.
 *
 * The input is split at the first "\n%%\n" into clouds.yaml and secure.yaml
 * (none: no secure.yaml); clouds "c", "pw", "app" are selected with and
 * without a region. Proves: parsing never crashes, leaks or trips a
 * sanitizer; a failure returns no result and a message; a success is the
 * cloud asked for, with an auth URL, an interface, an image format and a
 * known auth type. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clouds_yaml.h"

#define CHECK(cond)                                                                                    \
        do {                                                                                           \
                if (!(cond)) {                                                                         \
                        fprintf(stderr, "fuzz_clouds_yaml: check failed: %s (line %d)\n", #cond,      \
                                __LINE__);                                                             \
                        abort();                                                                       \
                }                                                                                      \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 64 * 1024)
                return 0;
        const char *text = (const char *)data;
        const char *sep = memmem(text, size, "\n%%\n", 4);
        size_t clen = sep ? (size_t)(sep - text) : size;
        const char *secure = sep ? sep + 4 : NULL;
        size_t slen = sep ? size - clen - 4 : 0;
        static const char *const clouds[] = { "c", "pw", "app" };
        static const char *const regions[] = { NULL, "r1" };
        for (size_t c = 0; c < 3; c++)
                for (size_t r = 0; r < 2; r++) {
                        struct clouds_cloud *cl = NULL;
                        char *msg = NULL;
                        int k = clouds_yaml_parse("fuzz.yaml", text, clen, secure, slen, clouds[c], regions[r], &cl,
                                                  &msg);
                        if (k < 0) {
                                CHECK(!cl && msg);
                                free(msg);
                                continue;
                        }
                        CHECK(cl->name && strcmp(cl->name, clouds[c]) == 0);
                        CHECK(cl->auth_url && cl->interface && cl->image_format);
                        CHECK(cl->auth_type >= 0 && cl->auth_type < _CLOUDS_AUTH_MAX);
                        free(msg);
                        clouds_cloud_free(cl);
                }
        return 0;
}
