/* test_redact.c — credentials never survive redact_text()/keystone_redact():
 * known secrets anywhere in the text (also as a JSON encoder escapes them,
 * and a token that contains the password), values of credential-named keys in
 * JSON, Python reprs, escaped JSON, headers and forms, cut-short text; and
 * the text around them, ordinary messages and URLs stay as they were. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "clouds_yaml.h"
#include "keystone.h"
#include "redact.h"

static void check(const char *in, const char *const *secrets, const char *want) {
        char *out = redact_text(in, secrets);
        assert_non_null(out);
        assert_string_equal(out, want);
        free(out);
}

static void test_known_secrets_replaced_everywhere(void **state) {
        const char *const secrets[] = { "hunter2", "", "gAAAAhunter2XYZ", NULL };
        check("HTTP 401: bad hunter2 (hunter2)hunter2", secrets, "HTTP 401: bad *** (***)***");
        /* The token holds the password: it goes whole, not as "gAAAA***XYZ". */
        check("token gAAAAhunter2XYZ.", secrets, "token ***.");
        check("", secrets, "");
        check("nothing secret here", NULL, "nothing secret here");
}

static void test_secret_as_json_escapes_it(void **state) {
        const char *const secrets[] = { "pa\"ss\\w\xc3\xb6rd/1", NULL };
        /* Python's json.dumps (ensure_ascii) and jansson's default encoding. */
        check("echo: pa\\\"ss\\\\w\\u00f6rd/1!", secrets, "echo: ***!");
        check("echo: pa\\\"ss\\\\w\xc3\xb6rd/1!", secrets, "echo: ***!");
        check("raw: pa\"ss\\w\xc3\xb6rd/1", secrets, "raw: ***");
}

static void test_json_credential_keys_masked_whatever_the_secret(void **state) {
        check("{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"alice\","
              "\"password\":\"never-told\"}}}}}",
              NULL,
              "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"alice\","
              "\"password\":\"***\"}}}}}");
        check("{\"application_credential\": {\"id\": \"ac1\", \"secret\": \"s\\\"x\"}, \"n\": 1}", NULL,
              "{\"application_credential\": {\"id\": \"ac1\", \"secret\": \"***\"}, \"n\": 1}");
        check("{\"X-Auth-Token\": \"gAAAAB\", \"auth_token\": null, \"token_count\": 5}", NULL,
              "{\"X-Auth-Token\": \"***\", \"auth_token\": ***, \"token_count\": ***}");
        /* A Keystone token body: the object is kept, only credential-named scalars inside go. */
        check("{\"token\": {\"methods\": [\"token\"], \"expires_at\": \"2030-01-01\"}}", NULL,
              "{\"token\": {\"methods\": [\"token\"], \"expires_at\": \"2030-01-01\"}}");
}

static void test_python_repr_escaped_json_headers_and_forms(void **state) {
        check("Invalid input: {'user': {'name': 'bob', 'password': 'p4ss'}}", NULL,
              "Invalid input: {'user': {'name': 'bob', 'password': '***'}}");
        check("message: \"{\\\"password\\\": \\\"p4ss\\\", \\\"name\\\": \\\"bob\\\"}\"", NULL,
              "message: \"{\\\"password\\\": \\\"***\\\", \\\"name\\\": \\\"bob\\\"}\"");
        check("headers: X-Auth-Token: gAAAAB123\r\nX-Subject-Token:abc Accept: */*", NULL,
              "headers: X-Auth-Token: ***\r\nX-Subject-Token:*** Accept: */*");
        check("body user=alice&password=p4ss&client_secret=zz;x=1", NULL,
              "body user=alice&password=***&client_secret=***;x=1");
}

static void test_cut_short_text_is_masked_to_its_end(void **state) {
        check("{\"password\": \"abcdef", NULL, "{\"password\": \"***");
        check("{'secret': 'abc", NULL, "{'secret': '***");
        check("password:", NULL, "password:");
}

static void test_ordinary_messages_and_urls_unchanged(void **state) {
        const char *const msgs[] = {
                "POST http://127.0.0.1:5000/v3/auth/tokens: Failed to connect to 127.0.0.1 port 5000",
                "cloud c: Keystone refused the credentials of alice (HTTP 401: The request you have made "
                "requires authentication.)",
                "{\"auth_type\": \"password\", \"methods\": [\"password\", \"token\"]}",
                "GET /servers/detail: compute: HTTP 403: Quota exceeded for instances: Requested 1, but already "
                "used 10 of 10 instances",
                "can't parse; don't retry",
        };
        for (size_t i = 0; i < ELEMENTSOF(msgs); i++)
                check(msgs[i], NULL, msgs[i]);
}

static void test_redact_msg_replaces_in_place_and_is_null_safe(void **state) {
        const char *const secrets[] = { "s3", NULL };
        char *m = xstrdup("a s3 b");
        redact_msg(&m, secrets);
        assert_string_equal(m, "a *** b");
        free(m);
        char *none = NULL;
        redact_msg(&none, secrets);
        assert_null(none);
        redact_msg(NULL, secrets);
        assert_null(redact_text(NULL, secrets));
}

static void test_keystone_redact_uses_the_clouds_secrets(void **state) {
        struct clouds_cloud pw = { .name = (char *)"c", .auth_url = (char *)"http://k/v3",
                                   .username = (char *)"alice", .password = (char *)"Pw-123",
                                   .interface = (char *)"public", .verify = true };
        struct keystone *k = keystone_new(&pw, 0);
        char *m = xstrdup("HTTP 401: echo {\"auth\": \"Pw-123\"} and Pw-123");
        keystone_redact(k, &m);
        assert_string_equal(m, "HTTP 401: echo {\"auth\": \"***\"} and ***");
        free(m);
        keystone_free(k);

        struct clouds_cloud ac = { .name = (char *)"c", .auth_url = (char *)"http://k/v3",
                                   .auth_type = CLOUDS_AUTH_APPLICATION_CREDENTIAL, .app_cred_id = (char *)"ac1",
                                   .app_cred_secret = (char *)"AppSecret", .interface = (char *)"public" };
        k = keystone_new(&ac, 0);
        m = xstrdup("ac1 sent AppSecret");
        keystone_redact(k, &m);
        assert_string_equal(m, "ac1 sent ***");
        free(m);
        keystone_free(k);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_secrets_replaced_everywhere),
                cmocka_unit_test(test_secret_as_json_escapes_it),
                cmocka_unit_test(test_json_credential_keys_masked_whatever_the_secret),
                cmocka_unit_test(test_python_repr_escaped_json_headers_and_forms),
                cmocka_unit_test(test_cut_short_text_is_masked_to_its_end),
                cmocka_unit_test(test_ordinary_messages_and_urls_unchanged),
                cmocka_unit_test(test_redact_msg_replaces_in_place_and_is_null_safe),
                cmocka_unit_test(test_keystone_redact_uses_the_clouds_secrets),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
