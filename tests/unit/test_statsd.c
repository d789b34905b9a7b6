/* test_statsd.c — the statsd client (shared/base/statsd.c) against a real UDP
 * socket on loopback: python-statsd's line formats, pipelining into
 * datagrams of at most 512 bytes without splitting a line, the prefix, name
 * escaping, the environment switch and the builder's Nodepool names. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "statsd.h"

struct listener {
        int fd;
        char port[16];
};

static int setup(void **state) {
        struct listener *l = calloc(1, sizeof *l);
        l->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(l->fd >= 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof a), 0);
        socklen_t len = sizeof a;
        assert_int_equal(getsockname(l->fd, (struct sockaddr *)&a, &len), 0);
        snprintf(l->port, sizeof l->port, "%u", ntohs(a.sin_port));
        *state = l;
        return 0;
}

static int teardown(void **state) {
        struct listener *l = *state;
        close(l->fd);
        free(l);
        return 0;
}

/* The next datagram (malloc'd, NUL-terminated), or NULL if none comes within TIMEOUT_MS. */
static char *recv_dgram(struct listener *l, int timeout_ms, size_t *ret_len) {
        struct pollfd p = { .fd = l->fd, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) != 1) return NULL;
        char *buf = calloc(1, 70000);
        ssize_t n = recv(l->fd, buf, 65536, 0);
        assert_true(n >= 0);
        if (ret_len) *ret_len = (size_t)n;
        return buf;
}

static struct statsd *client(struct listener *l, const char *prefix) {
        struct statsd *s = NULL;
        assert_int_equal(statsd_new("127.0.0.1", l->port, prefix, &s), 0);
        assert_non_null(s);
        return s;
}

static void test_line_formats_follow_python_statsd(void **state) {
        struct listener *l = *state;
        struct statsd *s = client(l, NULL);
        statsd_gauge(s, "nodepool.nodes.ready", 5);
        statsd_incr(s, "nodepool.launch.ready", 1);
        statsd_timing(s, "nodepool.launch.provider.p.ready", 1234.5);
        statsd_gauge(s, "neg", -3);
        assert_null(recv_dgram(l, 50, NULL)); /* pipelined: nothing before the flush */
        statsd_flush(s);
        char *d = recv_dgram(l, 2000, NULL);
        assert_non_null(d);
        assert_string_equal(d, "nodepool.nodes.ready:5|g\n"
                               "nodepool.launch.ready:1|c\n"
                               "nodepool.launch.provider.p.ready:1234.500000|ms\n"
                               "neg:-3|g");
        free(d);
        assert_int_equal(statsd_sent(s), 1);
        statsd_flush(s); /* nothing buffered: no empty datagram */
        assert_null(recv_dgram(l, 50, NULL));
        assert_int_equal(statsd_sent(s), 1);
        statsd_free(s);
}

static void test_lines_pack_into_datagrams_of_at_most_512_bytes_never_split(void **state) {
        struct listener *l = *state;
        struct statsd *s = client(l, NULL);
        char want[8192] = "";
        for (int i = 0; i < 100; i++) {
                char name[64];
                snprintf(name, sizeof name, "nodepool.label.label-%03d.nodes.ready", i);
                statsd_gauge(s, name, i);
                char line[96];
                snprintf(line, sizeof line, "%s%s:%d|g", i ? "\n" : "", name, i);
                strcat(want, line);
        }
        statsd_flush(s);
        char got[8192] = "";
        size_t n_dgrams = 0, len;
        char *d;
        while ((d = recv_dgram(l, 200, &len))) {
                assert_true(len <= STATSD_MAX_DATAGRAM);
                assert_true(len > 0 && d[0] != '\n' && d[len - 1] != '\n');
                if (n_dgrams++) strcat(got, "\n");
                strncat(got, d, len);
                /* Every datagram holds whole lines: name:value|g each. */
                for (char *line = strtok(d, "\n"); line; line = strtok(NULL, "\n"))
                        assert_non_null(strstr(line, "|g"));
                free(d);
        }
        assert_string_equal(got, want); /* nothing lost, nothing reordered */
        assert_true(n_dgrams >= 8); /* ~4,100 bytes of lines */
        assert_int_equal(statsd_sent(s), n_dgrams);
        statsd_free(s);
}

static void test_exactly_512_bytes_fit_one_datagram_and_one_more_spills(void **state) {
        struct listener *l = *state;
        struct statsd *s = client(l, NULL);
        /* Two lines of 255 and 256 bytes joined by '\n' make 512. */
        char a[256], b[257];
        memset(a, 'a', sizeof a);
        a[255 - 4] = 0; /* + ":1|c" = 255 */
        memset(b, 'b', sizeof b);
        b[256 - 4] = 0; /* 256 */
        statsd_incr(s, a, 1);
        statsd_incr(s, b, 1);
        statsd_flush(s);
        size_t len;
        char *d = recv_dgram(l, 2000, &len);
        assert_non_null(d);
        assert_int_equal(len, 512);
        free(d);
        b[256 - 3] = 0;
        b[256 - 4] = 'b'; /* 257 bytes: 255 + 1 + 257 > 512 */
        statsd_incr(s, a, 1);
        statsd_incr(s, b, 1);
        statsd_flush(s);
        d = recv_dgram(l, 2000, &len);
        assert_int_equal(len, 255);
        free(d);
        d = recv_dgram(l, 2000, &len);
        assert_int_equal(len, 257);
        free(d);
        statsd_free(s);
}

static void test_a_line_longer_than_a_datagram_goes_alone_after_the_buffer(void **state) {
        struct listener *l = *state;
        struct statsd *s = client(l, NULL);
        statsd_incr(s, "small", 1);
        char big[700];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        statsd_gauge(s, big, 7);
        statsd_incr(s, "after", 2);
        statsd_free(s); /* free flushes what is left */
        size_t len;
        char *d = recv_dgram(l, 2000, &len);
        assert_string_equal(d, "small:1|c");
        free(d);
        d = recv_dgram(l, 2000, &len);
        assert_int_equal(len, 699 + strlen(":7|g"));
        free(d);
        d = recv_dgram(l, 2000, &len);
        assert_string_equal(d, "after:2|c");
        free(d);
}

static void test_prefix_is_prepended_with_a_dot(void **state) {
        struct listener *l = *state;
        struct statsd *s = client(l, "site1");
        statsd_incr(s, "nodepool.launch.ready", 1);
        statsd_free(s);
        char *d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "site1.nodepool.launch.ready:1|c");
        free(d);
        s = client(l, ""); /* empty prefix = none */
        statsd_incr(s, "x", 1);
        statsd_free(s);
        d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "x:1|c");
        free(d);
}

static void test_names_cannot_break_the_line_syntax(void **state) {
        struct listener *l = *state;
        struct statsd *s = client(l, "p:x");
        statsd_incr(s, "a:b|c@d\nforged:1|c\re", 3);
        statsd_free(s);
        char *d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "p_x.a_b_c_d_forged_1_c_e:3|c");
        free(d);
}

static void test_key_escape_replaces_dots_and_colons(void **state) {
        char *e = statsd_key_escape("zuul.example.org:tenant");
        assert_string_equal(e, "zuul_example_org_tenant");
        free(e);
        e = statsd_key_escape(NULL);
        assert_string_equal(e, "");
        free(e);
}

static void test_null_client_calls_are_noops(void **state) {
        statsd_gauge(NULL, "x", 1);
        statsd_incr(NULL, "x", 1);
        statsd_timing(NULL, "x", 1);
        statsd_flush(NULL);
        statsd_builder_build(NULL, "img", 0, 1);
        assert_int_equal(statsd_sent(NULL), 0);
        statsd_free(NULL);
}

static void test_environment_enables_statsd_like_nodepool(void **state) {
        struct listener *l = *state;
        unsetenv("STATSD_HOST");
        unsetenv("STATSD_PORT");
        unsetenv("STATSD_PREFIX");
        struct statsd *s = (struct statsd *)1;
        assert_int_equal(statsd_new_from_env(&s), 0);
        assert_null(s); /* neither set: off */
        setenv("STATSD_PORT", l->port, 1); /* host defaults to localhost */
        setenv("STATSD_PREFIX", "pre", 1);
        assert_int_equal(statsd_new_from_env(&s), 0);
        assert_non_null(s);
        statsd_incr(s, "n", 1);
        statsd_free(s);
        char *d = recv_dgram(l, 2000, NULL);
        /* localhost may resolve to ::1 first; the listener is IPv4, so accept a miss only if nothing came. */
        if (d) assert_string_equal(d, "pre.n:1|c");
        free(d);
        setenv("STATSD_HOST", "127.0.0.1", 1);
        assert_int_equal(statsd_new_from_env(&s), 0);
        statsd_incr(s, "n", 2);
        statsd_free(s);
        d = recv_dgram(l, 2000, NULL);
        assert_non_null(d);
        assert_string_equal(d, "pre.n:2|c");
        free(d);
        setenv("STATSD_HOST", "no such host.invalid", 1);
        assert_true(statsd_new_from_env(&s) < 0);
        unsetenv("STATSD_HOST");
        unsetenv("STATSD_PORT");
        unsetenv("STATSD_PREFIX");
}

static void test_builder_metrics_have_nodepool_names(void **state) {
        struct listener *l = *state;
        struct statsd *s = client(l, NULL);
        statsd_builder_build(s, "debian", 1, 2500);
        char *d = recv_dgram(l, 2000, NULL);
        assert_non_null(d);
        assert_true(strncmp(d, "nodepool.dib_image_build.debian.status.rc:1|g\n"
                               "nodepool.dib_image_build.debian.status.duration:2500.000000|ms\n"
                               "nodepool.dib_image_build.debian.status.last_build:", 113) == 0);
        assert_non_null(strstr(d, "|g"));
        free(d);
        statsd_builder_build_backoff(s, "debian", 3, 1700000240);
        d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "nodepool.dib_image_build.debian.status.consecutive_failures:3|g\n"
                               "nodepool.dib_image_build.debian.status.next_attempt:1700000240|g");
        free(d);
        statsd_builder_image_size(s, "debian", "qcow2", 1048576);
        d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "nodepool.dib_image_build.debian.qcow2.size:1048576|g");
        free(d);
        statsd_builder_upload(s, "debian", "cloud1", true, 10);
        d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "nodepool.image_update.debian.cloud1:10.000000|ms\nnodepool.image_update.debian.cloud1:1|c");
        free(d);
        statsd_builder_upload(s, "debian", "cloud1", false, 10); /* failed: nothing, as Nodepool */
        assert_null(recv_dgram(l, 100, NULL));
        const char *images[] = { "debian", "fedora" };
        bool requested[] = { true, false };
        statsd_builder_build_requests(s, images, requested, 2);
        d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "nodepool.image.debian.image_build_requests:1|g\n"
                               "nodepool.image.fedora.image_build_requests:0|g\n"
                               "nodepool.image_build_requests:1|g");
        free(d);
        statsd_builder_build_state(s, "b1", "debian", 1);
        d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "nodepool.builder.b1.image.debian.build.state:1|g");
        free(d);
        statsd_builder_upload_state(s, "b1", "debian", "cloud1", 2);
        d = recv_dgram(l, 2000, NULL);
        assert_string_equal(d, "nodepool.builder.b1.image.debian.provider.cloud1.upload.state:2|g");
        free(d);
        statsd_free(s);
}

struct sender {
        struct statsd *s;
        int id;
};

static void *send_many(void *arg) {
        struct sender *t = arg;
        char name[32];
        snprintf(name, sizeof name, "thread%d.call", t->id);
        for (int i = 0; i < 200; i++) {
                statsd_incr(t->s, name, 1);
                if (i % 50 == 0) statsd_flush(t->s);
        }
        statsd_flush(t->s);
        return NULL;
}

/* Provider drivers report API calls from several worker threads through one
 * client: every line arrives whole, in datagrams of at most 512 bytes, none lost. */
static void test_threads_share_one_client_without_losing_or_tearing_lines(void **state) {
        struct listener *l = *state;
        int big = 1 << 20;
        (void)setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        struct statsd *s = client(l, NULL);
        pthread_t th[4];
        struct sender t[4];
        for (int i = 0; i < 4; i++) {
                t[i] = (struct sender){ s, i };
                assert_int_equal(pthread_create(&th[i], NULL, send_many, &t[i]), 0);
        }
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        int counts[4] = { 0 };
        size_t len;
        char *d;
        while ((d = recv_dgram(l, 200, &len))) {
                assert_true(len <= STATSD_MAX_DATAGRAM);
                for (char *line = strtok(d, "\n"); line; line = strtok(NULL, "\n")) {
                        int id = -1;
                        char tail[8] = "";
                        assert_int_equal(sscanf(line, "thread%d.call:1|%7s", &id, tail), 2);
                        assert_string_equal(tail, "c");
                        assert_true(id >= 0 && id < 4);
                        counts[id]++;
                }
                free(d);
        }
        for (int i = 0; i < 4; i++) assert_int_equal(counts[i], 200);
        statsd_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_line_formats_follow_python_statsd, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lines_pack_into_datagrams_of_at_most_512_bytes_never_split, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_exactly_512_bytes_fit_one_datagram_and_one_more_spills, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_a_line_longer_than_a_datagram_goes_alone_after_the_buffer, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_prefix_is_prepended_with_a_dot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_names_cannot_break_the_line_syntax, setup, teardown),
                cmocka_unit_test_setup_teardown(test_threads_share_one_client_without_losing_or_tearing_lines, setup,
                                                teardown),
                cmocka_unit_test(test_key_escape_replaces_dots_and_colons),
                cmocka_unit_test(test_null_client_calls_are_noops),
                cmocka_unit_test_setup_teardown(test_environment_enables_statsd_like_nodepool, setup, teardown),
                cmocka_unit_test_setup_teardown(test_builder_metrics_have_nodepool_names, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
