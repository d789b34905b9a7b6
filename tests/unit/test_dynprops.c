/* test_dynprops.c — dynamic-instance-properties formatted from a node request
 * with the text Python's str.format(request=...) gives in Nodepool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynprops.h"
#include "model.h"
#include "model_request.h"

static const char REQ[] = "{\"state\": \"requested\", \"node_types\": [\"small\", \"it's\"], \"requestor\": \"zuul-1\", "
                          "\"requestor_data\": {\"job\": \"tox\", \"n\": 3, \"deep\": {\"a\": [true, null, 1.5]}}, "
                          "\"relative_priority\": 2, \"event_id\": null, \"created_time\": 1700000000.0, "
                          "\"tenant_name\": \"t1\"}";

static struct node_request *req(void) {
        struct node_request *r = NULL;
        struct model_error err = { 0 };
        assert_int_equal(node_request_from_json(REQ, strlen(REQ), "100-0000000007", &r, &err), 0);
        return r;
}

static struct node_request *req_with_time(const char *t) {
        char buf[256];
        snprintf(buf, sizeof buf, "{\"state\": \"requested\", \"node_types\": [], \"created_time\": %s}", t);
        struct node_request *r = NULL;
        struct model_error err = { 0 };
        assert_int_equal(node_request_from_json(buf, strlen(buf), "100-1", &r, &err), 0);
        return r;
}

static void expect(const struct node_request *r, const char *fmt, const char *want) {
        char *out = NULL, *msg = NULL;
        assert_int_equal(dynprops_format(fmt, r, &out, &msg), 0);
        assert_string_equal(out, want);
        free(out);
        free(msg);
}

/* Every safe attribute prints as Python's str() of it; [KEY] indexes dicts and lists. */
static void test_attributes_print_as_python(void **state) {
        (void)state;
        struct node_request *r = req();
        expect(r, "plain", "plain");
        expect(r, "{request.id}", "100-0000000007");
        expect(r, "{{literal}} {request.requestor}/{request.tenant_name}", "{literal} zuul-1/t1");
        expect(r, "{request.labels}", "['small', \"it's\"]");
        expect(r, "{request.labels[1]}", "it's");
        expect(r, "{request.requestor_data[job]}-{request.requestor_data[n]}", "tox-3");
        expect(r, "{request.requestor_data[deep]}", "{'a': [True, None, 1.5]}");
        expect(r, "{request.event_id} {request.relative_priority}", "None 2");
        expect(r, "{request.created_time}", "1700000000.0");
        node_request_free(r);
        r = req_with_time("1733234567.125");
        expect(r, "{request.created_time}", "1733234567.125");
        node_request_free(r);
        r = req_with_time("1e16");
        expect(r, "{request.created_time}", "1e+16");
        node_request_free(r);
        r = req_with_time("0.00001");
        expect(r, "{request.created_time}", "1e-05");
        node_request_free(r);
}

/* What Python would raise on is an error with a message (the property is then left out). */
static void test_bad_fields_are_errors(void **state) {
        (void)state;
        struct node_request *r = req();
        const char *bad[] = { "{request.nope}", "{request.requestor_data[missing]}", "{other}", "{request.id!r}",
                              "{request.id:>5}", "{request.id", "a}b", "{request.labels[]}" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                char *out = NULL, *msg = NULL;
                assert_int_equal(dynprops_format(bad[i], r, &out, &msg), -EINVAL);
                assert_null(out);
                assert_non_null(msg);
                free(msg);
        }
        node_request_free(r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_attributes_print_as_python),
                cmocka_unit_test(test_bad_fields_are_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
