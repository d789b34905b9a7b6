/* fuzz_model.c — every record decoder on arbitrary bytes.
 *
 * Proves: decoding never crashes, leaks or trips a sanitizer; a successful
 * decode always re-encodes; the encoding decodes again; and encoding is
 * stable (encode(decode(encode(x))) == encode(x)). Also runs the pure
 * helpers (request ids, upload paths) on the input as a string. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "model.h"
#include "model_image.h"
#include "model_node.h"
#include "model_request.h"
#include "nodepool_zk.h"

#define CHECK(cond)                                                                  \
        do {                                                                         \
                if (!(cond)) {                                                       \
                        fprintf(stderr, "fuzz_model: check failed: %s (line %d)\n", #cond, __LINE__); \
                        abort();                                                     \
                }                                                                    \
        } while (0)

/* One record type: decode, encode, decode the encoding, encode again, compare. */
#define ROUNDTRIP(type, from, to, freefn, id)                                         \
        do {                                                                          \
                type *a = NULL, *b = NULL;                                            \
                struct model_error err;                                               \
                char *e1 = NULL, *e2 = NULL;                                          \
                size_t l1 = 0, l2 = 0;                                                \
                if (from((const char *)data, size, id, &a, &err) < 0) {               \
                        CHECK(a == NULL);                                             \
                        CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);         \
                        break;                                                        \
                }                                                                     \
                int r = to(a, &e1, &l1);                                              \
                /* Only oversize output may fail: decoded strings are valid UTF-8. */ \
                CHECK(r == 0 || r == -E2BIG);                                         \
                if (r == 0) {                                                         \
                        CHECK(strlen(e1) == l1);                                      \
                        CHECK(from(e1, l1, id, &b, &err) == 0);                       \
                        CHECK(to(b, &e2, &l2) == 0);                                  \
                        CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);                   \
                }                                                                     \
                free(e1);                                                             \
                free(e2);                                                             \
                freefn(a);                                                            \
                freefn(b);                                                            \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ROUNDTRIP(struct node, node_from_json, node_to_json, node_free, "0000000001");
        ROUNDTRIP(struct node_request, node_request_from_json, node_request_to_json, node_request_free,
                  "200-0000000001");
        ROUNDTRIP(struct image_build, image_build_from_json, image_build_to_json, image_build_free,
                  "0123456789abcdef0123456789abcdef");
        ROUNDTRIP(struct image_upload, image_upload_from_json, image_upload_to_json, image_upload_free, "0000000001");
        ROUNDTRIP(struct hold_request, hold_request_from_json, hold_request_to_json, hold_request_free, "0000000001");

        /* String helpers on the raw input (bounded so paths stay cheap). */
        if (size < 4096) {
                char *s = xstrndup((const char *)data, size);
                char *p = NULL, *q = NULL;
                struct npzk_path ref;
                if (node_request_id_parse(s, &p, &q) == 0) {
                        CHECK(strlen(p) == 3 && node_request_id_is_classic(s));
                        free(p);
                        free(q);
                }
                if (npzk_path_parse(s, &ref) == 0) {
                        char *back = npzk_path_format(&ref);
                        CHECK(back && strcmp(back, s) == 0);
                        free(back);
                        npzk_path_done(&ref);
                }
                (void)node_id_is_valid(s);
                free(s);
        }
        return 0;
}
