/* fuzz_webapp_req.c — the web app's request parsing and the listing renderer
 * on arbitrary input, without a socket.
 *
 * Input: up to four fields separated by '\n' — URL path, node_id value,
 * fields value, Accept header (a missing field is absent, as a missing
 * query value or header is).
 * Proves: parsing never crashes, leaks or trips a sanitizer; a parse either
 * fails with -E2BIG/-ENOENT or yields a consistent request (a kind, a list
 * name for listings, a key naming kind, format and both values, no empty
 * values); too-long query values are always refused. The same bytes then go
 * through the fields filter and into table cells, and the pre-rendered row
 * path (table_row_take + table_format_rows_*) must print exactly what the
 * whole-table path prints. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "listing.h"
#include "table.h"
#include "webapp_req.h"

#define CHECK(cond)                                                                            \
        do {                                                                                   \
                if (!(cond)) {                                                                 \
                        fprintf(stderr, "fuzz_webapp_req: check failed: %s (line %d)\n", #cond, __LINE__); \
                        abort();                                                               \
                }                                                                              \
        } while (0)

static void check_rows_match_table(const char *fields, const char *cell_a, const char *cell_b) {
        static const struct table_column cols[] = { { "id", "ID" }, { "name", "Name" }, { "other", "Other" } };
        struct table *whole = table_new(cols, 3), *scratch = table_new(cols, 3);
        struct table_row *rows[3];
        const char *texts[3][3] = { { "1", cell_a, cell_b }, { cell_b, "x", cell_a }, { "", "", "" } };
        for (size_t r = 0; r < 3; r++) {
                struct table *ts[] = { whole, scratch };
                for (size_t k = 0; k < 2; k++) {
                        table_add_row(ts[k]);
                        for (size_t c = 0; c < 3; c++) table_set_str(ts[k], c, texts[r][c]);
                }
                rows[r] = table_row_take(scratch);
                CHECK(rows[r] != NULL);
        }
        if (fields) table_show_only(whole, fields);
        char *a = table_format_text(whole), *b = table_format_rows_text(whole, rows, 3, SIZE_MAX, NULL);
        CHECK(strcmp(a, b) == 0);
        free(a);
        free(b);
        /* The middle column as a dynamic one: same bytes when given the same texts. */
        const char *dyn[] = { cell_a, "x", "" };
        b = table_format_rows_text(whole, rows, 3, 1, dyn);
        a = table_format_text(whole);
        CHECK(strcmp(a, b) == 0);
        free(a);
        free(b);
        a = table_format_json(whole);
        b = table_format_rows_json(rows, 3);
        CHECK(strcmp(a, b) == 0);
        free(a);
        free(b);
        for (size_t r = 0; r < 3; r++) table_row_unref(rows[r]);
        table_free(whole);
        table_free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *buf = xmalloc(size + 1);
        memcpy(buf, data, size);
        buf[size] = 0;
        /* Embedded NULs end a field early, as they would a C string from MHD. */
        char *field[4] = {};
        char *p = buf;
        for (size_t i = 0; i < 4 && p; i++) {
                field[i] = p;
                p = strchr(p, '\n');
                if (p) *p++ = 0;
        }
        const char *url = field[0], *node_id = field[1], *fields = field[2], *accept = field[3];

        (void)webapp_wants_json(accept);
        struct webapp_req r = {};
        int ret = webapp_req_parse(url, node_id, fields, accept, &r);
        bool health = url && (strcmp(url, "/health") == 0 || strcmp(url, "/ready") == 0);
        if ((node_id && strlen(node_id) > WEBAPP_MAX_QUERY_VALUE) || (fields && strlen(fields) > WEBAPP_MAX_QUERY_VALUE))
                CHECK(ret == -E2BIG || health);
        if (ret < 0) {
                CHECK(ret == -E2BIG || ret == -ENOENT);
                CHECK(r.key == NULL);
        } else {
                CHECK(r.kind >= 0 && r.kind < _WEBAPP_KIND_MAX);
                CHECK(r.key != NULL);
                CHECK((r.kind == WEBAPP_LIST) == (r.list != NULL));
                CHECK(!r.node_id || *r.node_id);
                CHECK(!r.fields || *r.fields);
                if (r.kind == WEBAPP_LIST) {
                        CHECK(strncmp(r.key, r.list, strlen(r.list)) == 0);
                        CHECK(!r.node_id || strstr(r.key, r.node_id));
                        CHECK(!r.fields || strstr(r.key, r.fields));
                        /* A ".json" path always means JSON. */
                        size_t ul = strlen(url);
                        if (ul > 5 && strcmp(url + ul - 5, ".json") == 0) CHECK(r.json);
                }
        }
        webapp_req_done(&r);
        webapp_req_done(&r); /* idempotent on a cleared struct */

        check_rows_match_table(fields, url ? url : "", node_id ? node_id : "");
        free(buf);
        return 0;
}
