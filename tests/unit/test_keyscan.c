/* test_keyscan.c — keyscan's parsing, banner recognition and the state machine's
 * loop-only paths (argument checks, cancel, retry, non-SSH peers) on loopback. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyscan.h"
#include "loop.h"

#define ED "AAAAC3NzaC1lZDI1NTE5AAAAIGNBWjkxIGvDqwlYO5PiHR3n5PlTZ0oI/jnp0OUbwUVg"
#define EC "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBE8owfisuNlq9YeRfYz="
#define RSA "AAAAB3NzaC1yc2EAAAADAQABAAABAQDJ8wEn3hsfAP45uU/i2LO1e/DnsRe9NbRG50Clh4t7x5oiB"

static void test_parse_valid_lines_sorted_by_type(void **state) {
        char **keys = NULL;
        const char *out = "127.0.0.1 ssh-rsa " RSA "\n"
                          "127.0.0.1 ecdsa-sha2-nistp256 " EC "\n"
                          "127.0.0.1 ssh-ed25519 " ED "\n";
        assert_int_equal(keyscan_parse(out, &keys), 3);
        assert_string_equal(keys[0], "ssh-ed25519 " ED);
        assert_string_equal(keys[1], "ecdsa-sha2-nistp256 " EC);
        assert_string_equal(keys[2], "ssh-rsa " RSA);
        assert_null(keys[3]);
        keyscan_strv_free(keys);
}

static void test_parse_skips_comments_blank_and_garbage(void **state) {
        char **keys = NULL;
        const char *out = "# 127.0.0.1:22 SSH-2.0-OpenSSH_9.2p1 Debian-2\n"
                          "\n"
                          "   \n"
                          "garbage\n"
                          "host only-two-fields\n"
                          "host ssh-ed25519 not*base64!\n"
                          "host bad\x01type " ED "\n"
                          "host ssh-ed25519 AB=C\n" /* data after padding */
                          "127.0.0.1 ssh-ed25519 " ED "\r\n"
                          "127.0.0.1 ssh-ed25519 " ED "\n"; /* duplicate dropped */
        assert_int_equal(keyscan_parse(out, &keys), 1);
        assert_string_equal(keys[0], "ssh-ed25519 " ED);
        assert_null(keys[1]);
        keyscan_strv_free(keys);
}

static void test_parse_non_standard_port_host_format(void **state) {
        char **keys = NULL;
        const char *out = "[127.0.0.1]:2222 ssh-ed25519 " ED "\n[127.0.0.1]:2222 ssh-rsa " RSA;
        assert_int_equal(keyscan_parse(out, &keys), 2);
        assert_string_equal(keys[0], "ssh-ed25519 " ED);
        assert_string_equal(keys[1], "ssh-rsa " RSA); /* last line without newline still counts */
        keyscan_strv_free(keys);
}

static void test_parse_empty_and_null_give_empty_list(void **state) {
        char **keys = NULL;
        assert_int_equal(keyscan_parse("", &keys), 0);
        assert_non_null(keys);
        assert_null(keys[0]);
        keyscan_strv_free(keys);
        assert_int_equal(keyscan_parse(NULL, &keys), 0);
        assert_null(keys[0]);
        keyscan_strv_free(keys);
}

static void test_parse_unknown_types_follow_known_ones_in_input_order(void **state) {
        char **keys = NULL;
        const char *out = "h sk-ssh-ed25519@openssh.com " ED "\nh ssh-rsa " RSA "\nh ssh-dss " EC "\n";
        assert_int_equal(keyscan_parse(out, &keys), 3);
        assert_string_equal(keys[0], "ssh-rsa " RSA);
        assert_string_equal(keys[1], "sk-ssh-ed25519@openssh.com " ED);
        assert_string_equal(keys[2], "ssh-dss " EC);
        keyscan_strv_free(keys);
}

static int banner(const char *s) { return keyscan_banner_check(s, strlen(s)); }

static void test_banner_recognition(void **state) {
        assert_int_equal(banner("SSH-2.0-OpenSSH_9.2\r\n"), 1);
        assert_int_equal(banner("SSH-1.99-Cisco\r\n"), 1);
        assert_int_equal(banner("SSH-2.0-OpenSSH_9.2"), 0);  /* line not complete yet */
        assert_int_equal(banner("SS"), 0);                   /* could still be SSH */
        assert_int_equal(banner(""), 0);
        assert_int_equal(banner("SSH-1.5-old\r\n"), -EPROTO); /* SSH-1 only */
        assert_int_equal(banner("SSH-3"), -EPROTO);
        assert_int_equal(banner("HTTP/1.0 200 OK\r\n"), 0);   /* a pre-banner line is allowed … */
        assert_int_equal(banner("HTTP/1.0 200 OK\r\nSSH-2.0-x\r\n"), 1);
        assert_int_equal(keyscan_banner_check("SSH-2.0-a\0b\n", 12), -EPROTO);
}

static void test_banner_bounds(void **state) {
        char line[300];
        memset(line, 'x', sizeof line);
        assert_int_equal(keyscan_banner_check(line, sizeof line), -EPROTO); /* line over 255 bytes */
        char many[17 * 3 + 1] = "";
        for (int i = 0; i < 17; i++) strcat(many, "a\r\n");
        assert_int_equal(banner(many), -EPROTO); /* … but not 17 of them */
        assert_int_equal(keyscan_banner_check(many, KEYSCAN_BANNER_MAX + 1), -EPROTO);
}

static void test_connection_types_and_retryable_errors(void **state) {
        assert_true(keyscan_gathers_keys(NULL));
        assert_true(keyscan_gathers_keys("ssh"));
        assert_true(keyscan_gathers_keys("network_cli"));
        assert_false(keyscan_gathers_keys("winrm"));
        assert_false(keyscan_gathers_keys("kubectl"));
        assert_true(keyscan_error_is_retryable(-ECONNREFUSED));
        assert_true(keyscan_error_is_retryable(EHOSTUNREACH));
        assert_true(keyscan_error_is_retryable(-ETIMEDOUT));
        assert_false(keyscan_error_is_retryable(-EACCES));
        assert_false(keyscan_error_is_retryable(-EPROTO));
}

/* ------------------------------------------------------------ on a loop */

struct result {
        struct loop *loop;
        int calls;
        int error;
        size_t n_keys;
        char msg[256];
};

static void on_done(int error, char **keys, const char *msg, void *ud) {
        struct result *r = ud;
        r->calls++;
        r->error = error;
        r->n_keys = 0;
        for (char **k = keys; k && *k; k++) r->n_keys++;
        if (error == 0) assert_non_null(keys);
        else assert_null(keys);
        snprintf(r->msg, sizeof r->msg, "%s", msg);
        keyscan_strv_free(keys);
        loop_exit(r->loop, 0);
}

static void on_stop(struct loop *loop, struct loop_timer *t, void *ud) { loop_exit(loop, 1); }

/* A listening socket on 127.0.0.1; returns its fd and port. */
static int listener(int *ret_port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(fd, 8), 0);
        socklen_t len = sizeof a;
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

/* A port nobody listens on: bound, then closed. */
static int closed_port(void) {
        int port;
        close(listener(&port));
        return port;
}

static void test_start_rejects_bad_arguments_and_never_calls_back(void **state) {
        struct loop *loop;
        assert_int_equal(loop_new(&loop), 0);
        struct result r = { .loop = loop };
        struct keyscan *s = NULL;
        assert_int_equal(keyscan_start(loop, "127.0.0.1", 0, 1000, "ssh", on_done, &r, &s), -EINVAL);
        assert_int_equal(keyscan_start(loop, "127.0.0.1", 65536, 1000, "ssh", on_done, &r, &s), -EINVAL);
        assert_int_equal(keyscan_start(loop, "", 22, 1000, "ssh", on_done, &r, &s), -EINVAL);
        assert_int_equal(keyscan_start(loop, "127.0.0.1", 22, 0, "ssh", on_done, &r, &s), -EINVAL);
        assert_int_equal(keyscan_start(loop, "127.0.0.1", 22, 1000, "ssh", NULL, &r, &s), -EINVAL);
        assert_null(s);
        loop_free(loop);
        assert_int_equal(r.calls, 0);
}

static void test_callback_never_runs_inside_start_and_cancel_before_the_first_step(void **state) {
        struct loop *loop;
        assert_int_equal(loop_new(&loop), 0);
        struct result r = { .loop = loop };
        struct keyscan *s = NULL;
        /* Loopback refuses synchronously; still no callback from keyscan_start(). */
        assert_int_equal(keyscan_start(loop, "127.0.0.1", closed_port(), 50, "ssh", on_done, &r, &s), 0);
        assert_int_equal(r.calls, 0);
        keyscan_cancel(s);
        loop_add_timer(loop, 200, false, on_stop, NULL);
        assert_int_equal(loop_run(loop), 1); /* stopped by our timer: nothing fired */
        assert_int_equal(r.calls, 0);
        loop_free(loop);
}

static void on_cancel(struct loop *loop, struct loop_timer *t, void *ud) {
        keyscan_cancel(ud);
        loop_exit(loop, 2);
}

static void test_cancel_while_waiting_to_retry_frees_everything(void **state) {
        struct loop *loop;
        assert_int_equal(loop_new(&loop), 0);
        struct result r = { .loop = loop };
        struct keyscan *s = NULL;
        assert_int_equal(keyscan_start(loop, "127.0.0.1", closed_port(), 5000, "ssh", on_done, &r, &s), 0);
        loop_add_timer(loop, 300, false, on_cancel, s); /* after the first refusal */
        assert_int_equal(loop_run(loop), 2);
        assert_int_equal(r.calls, 0);
        loop_free(loop); /* LeakSanitizer checks that the cancel freed the scan */
}

static void test_closed_port_times_out_with_retries(void **state) {
        struct loop *loop;
        assert_int_equal(loop_new(&loop), 0);
        struct result r = { .loop = loop };
        uint64_t t0 = loop_now_ms();
        assert_int_equal(keyscan_start(loop, "127.0.0.1", closed_port(), 1200, "ssh", on_done, &r, NULL), 0);
        assert_int_equal(loop_run(loop), 0);
        uint64_t took = loop_now_ms() - t0;
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ETIMEDOUT);
        assert_true(took >= 1150 && took < 2500);
        assert_non_null(strstr(r.msg, "2 attempt(s)"));
        loop_free(loop);
}

static void on_accept_write(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) return;
        const char *what = ud;
        assert_int_equal(write(c, what, strlen(what)), (ssize_t)strlen(what));
        close(c);
}

static void scan_local_server(const char *send, const char *ctype, struct result *r) {
        struct loop *loop;
        assert_int_equal(loop_new(&loop), 0);
        r->loop = loop;
        int port, lfd = listener(&port);
        struct loop_io *io;
        assert_int_equal(loop_add_fd(loop, lfd, EPOLLIN, on_accept_write, (void *)send, &io), 0);
        assert_int_equal(keyscan_start(loop, "127.0.0.1", port, 3000, ctype, on_done, r, NULL), 0);
        assert_int_equal(loop_run(loop), 0);
        loop_io_remove(io);
        close(lfd);
        loop_free(loop);
}

static void test_http_server_is_eproto(void **state) {
        struct result r = { 0 };
        scan_local_server("HTTP/1.0 200 OK\r\n\r\n", "ssh", &r);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -EPROTO);
}

static void test_port_check_succeeds_without_keys(void **state) {
        struct result r = { 0 };
        scan_local_server("HTTP/1.0 200 OK\r\n\r\n", "winrm", &r);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.n_keys, 0);
}

static void test_known_hosts_lines_use_brackets_off_port_22_and_drop_forged_keys(void **state) {
        char *keys[] = { "ssh-ed25519 AAAA1", "ssh-rsa AAAA2\n[evil]:22 ssh-rsa X", "ecdsa-sha2-nistp256 AAAA3", NULL };
        char *t = keyscan_known_hosts_text("127.0.0.1", 2222, keys);
        assert_string_equal(t, "[127.0.0.1]:2222 ssh-ed25519 AAAA1\n[127.0.0.1]:2222 ecdsa-sha2-nistp256 AAAA3\n");
        free(t);
        t = keyscan_known_hosts_text("10.0.0.5", 22, keys);
        assert_string_equal(t, "10.0.0.5 ssh-ed25519 AAAA1\n10.0.0.5 ecdsa-sha2-nistp256 AAAA3\n");
        free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_hosts_lines_use_brackets_off_port_22_and_drop_forged_keys),
                cmocka_unit_test(test_parse_valid_lines_sorted_by_type),
                cmocka_unit_test(test_parse_skips_comments_blank_and_garbage),
                cmocka_unit_test(test_parse_non_standard_port_host_format),
                cmocka_unit_test(test_parse_empty_and_null_give_empty_list),
                cmocka_unit_test(test_parse_unknown_types_follow_known_ones_in_input_order),
                cmocka_unit_test(test_banner_recognition),
                cmocka_unit_test(test_banner_bounds),
                cmocka_unit_test(test_connection_types_and_retryable_errors),
                cmocka_unit_test(test_start_rejects_bad_arguments_and_never_calls_back),
                cmocka_unit_test(test_callback_never_runs_inside_start_and_cancel_before_the_first_step),
                cmocka_unit_test(test_cancel_while_waiting_to_retry_frees_everything),
                cmocka_unit_test(test_closed_port_times_out_with_retries),
                cmocka_unit_test(test_http_server_is_eproto),
                cmocka_unit_test(test_port_check_succeeds_without_keys),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
