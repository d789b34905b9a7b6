/* test_gitlab_executor.c — poold-gitlab-executor's pure parts: settings
 * (defaults, every error with its position), the job's label and exit codes
 * from GitLab Runner's environment, node.json round trip, known_hosts lines,
 * the request JSON Zuul would write, and the ssh command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../gitlab/job.h"
#include "../../gitlab/poolclient.h"
#include "../../gitlab/remote.h"
#include "../../gitlab/settings.h"
#include "cmd.h"

static struct settings *load(const char *text, struct config_diags *d) {
        struct settings *s = NULL;
        int r = settings_load_buffer("s.yaml", text, strlen(text), &s, d);
        return r < 0 ? NULL : s;
}

static char *diag_text(const struct config_diags *d) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        config_diags_print(d, f);
        fclose(f);
        return buf;
}

static void test_minimal_settings_get_the_documented_defaults(void **state) {
        struct config_diags d = {};
        struct settings *s = load("zookeeper-hosts: zk:2181/np\nssh-key: /k\n", &d);
        assert_non_null(s);
        assert_int_equal(d.n, 0);
        assert_string_equal(s->zk_hosts, "zk:2181/np");
        assert_true(s->zk_timeout == 10.0);
        assert_null(s->label);
        assert_string_equal(s->label_variable, "POOLD_LABEL");
        assert_int_equal(s->priority, 200);
        assert_string_equal(s->tenant_name, "gitlab");
        assert_true(strncmp(s->requestor, "gitlab-runner:", 14) == 0);
        assert_int_equal(s->node_timeout, 1800);
        assert_int_equal(s->lock_timeout, 30);
        assert_int_equal(s->job_timeout, 3600);
        assert_int_equal(s->cleanup_grace, 300);
        assert_true(s->watch_runner);
        assert_string_equal(s->state_dir, "/var/lib/poold-gitlab-executor");
        assert_string_equal(s->log_file, "/var/lib/poold-gitlab-executor/executor.log");
        assert_string_equal(s->builds_dir, "/tmp/gitlab/builds");
        assert_true(settings_label_allowed(s, "anything"));
        settings_free(s);
        config_diags_clear(&d);
}

static void test_every_settings_problem_is_reported_with_its_position(void **state) {
        struct config_diags d = {};
        struct settings *s = load("zookeeper-hosts: ''\n"
                                  "lable: x\n"
                                  "priority: 1000\n"
                                  "lock-timeout: 0\n"
                                  "state-dir: relative\n"
                                  "label-variable: 9BAD\n"
                                  "label: big\n"
                                  "allowed-labels: [small]\n"
                                  "zookeeper-tls: {cert: c, key: k, ca: a}\n",
                                  &d);
        assert_null(s);
        char *t = diag_text(&d);
        assert_non_null(strstr(t, "s.yaml:1:18: error: 'zookeeper-hosts' is empty"));
        assert_non_null(strstr(t, "s.yaml:2:1: error: unknown key 'lable' in the settings"));
        assert_non_null(strstr(t, "s.yaml:3:11: error: 'priority': 1000 is not in 0..999"));
        assert_non_null(strstr(t, "s.yaml:4:15: error: 'lock-timeout': 0 must be a positive"));
        assert_non_null(strstr(t, "s.yaml:5:12: error: 'state-dir': 'relative' must be an absolute path"));
        assert_non_null(strstr(t, "s.yaml:6:17: error: 'label-variable': '9BAD' is not a variable name"));
        assert_non_null(strstr(t, "s.yaml:7:8: error: 'label': 'big' is not in allowed-labels"));
        assert_non_null(strstr(t, "s.yaml:9:23: error: 'cert' in zookeeper-tls: cannot read 'c'"));
        assert_non_null(strstr(t, "error: missing required key 'ssh-key' in the settings"));
        free(t);
        config_diags_clear(&d);
}

static void test_label_comes_from_job_env_then_the_variable_then_the_default(void **state) {
        struct settings *s = load("zookeeper-hosts: zk:1\nssh-key: /k\nlabel: small\n"
                                  "label-variable: MY_LABEL\nallowed-labels: [small, big]\n",
                                  NULL);
        assert_non_null(s);
        unsetenv("POOLD_GITLAB_LABEL");
        unsetenv("CUSTOM_ENV_MY_LABEL");
        setenv("CUSTOM_ENV_CI_JOB_ID", "1234", 1);
        struct job *j = NULL;
        char *err = NULL;
        assert_int_equal(job_from_env(s, true, &j, &err), 0);
        assert_string_equal(j->label, "small");
        assert_string_equal(j->dir, "/var/lib/poold-gitlab-executor/job-1234");
        job_free(j);
        setenv("CUSTOM_ENV_MY_LABEL", "big", 1);
        assert_int_equal(job_from_env(s, true, &j, &err), 0);
        assert_string_equal(j->label, "big");
        job_free(j);
        setenv("POOLD_GITLAB_LABEL", "small", 1);
        assert_int_equal(job_from_env(s, true, &j, &err), 0);
        assert_string_equal(j->label, "small");
        job_free(j);
        setenv("POOLD_GITLAB_LABEL", "huge", 1);
        assert_int_equal(job_from_env(s, true, &j, &err), -EINVAL);
        assert_non_null(strstr(err, "not in this runner's allowed-labels"));
        free(err);
        unsetenv("POOLD_GITLAB_LABEL");
        unsetenv("CUSTOM_ENV_MY_LABEL");
        settings_free(s);
}

static void test_job_id_must_be_a_number_and_timeout_comes_from_ci_job_timeout(void **state) {
        struct settings *s = load("zookeeper-hosts: zk:1\nssh-key: /k\nlabel: small\n", NULL);
        struct job *j = NULL;
        char *err = NULL;
        const char *bad[] = { "", "../../etc", "12a", "123456789012345678901" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                setenv("CUSTOM_ENV_CI_JOB_ID", bad[i], 1);
                assert_int_equal(job_from_env(s, true, &j, &err), -EINVAL);
                free(err);
                err = NULL;
        }
        setenv("CUSTOM_ENV_CI_JOB_ID", "77", 1);
        setenv("CUSTOM_ENV_CI_JOB_TIMEOUT", "120", 1);
        assert_int_equal(job_from_env(s, true, &j, &err), 0);
        assert_int_equal(j->timeout_s, 120);
        job_free(j);
        setenv("CUSTOM_ENV_CI_JOB_TIMEOUT", "-5", 1);
        assert_int_equal(job_from_env(s, true, &j, &err), 0);
        assert_int_equal(j->timeout_s, 3600);
        job_free(j);
        unsetenv("CUSTOM_ENV_CI_JOB_TIMEOUT");
        settings_free(s);
}

static void test_exit_codes_follow_the_runner_and_fall_back_to_its_defaults(void **state) {
        int b, y;
        unsetenv("BUILD_FAILURE_EXIT_CODE");
        unsetenv("SYSTEM_FAILURE_EXIT_CODE");
        job_exit_codes(&b, &y);
        assert_int_equal(b, 1);
        assert_int_equal(y, 2);
        setenv("BUILD_FAILURE_EXIT_CODE", "17", 1);
        setenv("SYSTEM_FAILURE_EXIT_CODE", "nonsense", 1);
        job_exit_codes(&b, &y);
        assert_int_equal(b, 17);
        assert_int_equal(y, 2);
        unsetenv("BUILD_FAILURE_EXIT_CODE");
        unsetenv("SYSTEM_FAILURE_EXIT_CODE");
}

static void test_node_record_round_trips_and_a_malformed_one_is_refused(void **state) {
        char dir[] = "/tmp/pgx-unit-XXXXXX";
        assert_non_null(mkdtemp(dir));
        struct job_record in = { .job_id = "5", .label = "small", .request_id = "200-0000000001",
                                 .node_id = "0000000007", .provider = "p", .interface_ip = "::1",
                                 .connection_port = 2022, .username = "zuul", .holder_pid = 4242,
                                 .locked_time = 1000.5, .deadline = 4600.5 };
        assert_int_equal(job_record_write(dir, &in), 0);
        struct job_record *out = NULL;
        assert_int_equal(job_record_read(dir, &out), 0);
        assert_string_equal(out->request_id, "200-0000000001");
        assert_string_equal(out->node_id, "0000000007");
        assert_string_equal(out->interface_ip, "::1");
        assert_int_equal(out->connection_port, 2022);
        assert_int_equal(out->holder_pid, 4242);
        assert_true(out->deadline == 4600.5);
        job_record_free(out);
        char *p = job_path(dir, "node.json");
        FILE *f = fopen(p, "w");
        fputs("{\"connection_port\": \"22\"}", f);
        fclose(f);
        assert_int_equal(job_record_read(dir, &out), -EINVAL);
        free(p);
        assert_int_equal(job_dir_remove(dir), 0);
        assert_int_equal(access(dir, F_OK), -1);
        assert_int_equal(job_dir_remove(dir), 0); /* gone already: fine */
}

static void test_request_json_is_zuuls_with_the_gitlab_job_in_requestor_data(void **state) {
        struct settings *s = load("zookeeper-hosts: zk:1\nssh-key: /k\nrequestor: r1\ntenant-name: t1\n", NULL);
        struct job j = { .id = "99", .label = "small", .project = "g/p", .job_name = "test" };
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(pool_client_request_json(s, &j, &text, &len), 0);
        json_t *o = json_loads(text, 0, NULL);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "state")), "requested");
        assert_string_equal(json_string_value(json_array_get(json_object_get(o, "node_types"), 0)), "small");
        assert_int_equal(json_array_size(json_object_get(o, "nodes")), 0);
        assert_int_equal(json_array_size(json_object_get(o, "declined_by")), 0);
        assert_true(json_is_true(json_object_get(o, "reuse")));
        assert_string_equal(json_string_value(json_object_get(o, "requestor")), "r1");
        assert_string_equal(json_string_value(json_object_get(o, "tenant_name")), "t1");
        assert_true(json_is_number(json_object_get(o, "created_time")));
        assert_int_equal(strlen(json_string_value(json_object_get(o, "event_id"))), 32);
        json_t *rd = json_object_get(o, "requestor_data");
        assert_string_equal(json_string_value(json_object_get(rd, "gitlab_job_id")), "99");
        assert_string_equal(json_string_value(json_object_get(rd, "project_path")), "g/p");
        assert_true(json_is_null(json_object_get(o, "provider")));
        json_decref(o);
        free(text);
        settings_free(s);
}

static void test_wrapper_reads_exactly_the_script_length_and_fails_as_255(void **state) {
        char *w = remote_wrapper(1234);
        assert_non_null(strstr(w, "head -c 1234 "));
        assert_non_null(strstr(w, "-ne 1234 "));
        assert_non_null(strstr(w, "exit 255"));
        assert_non_null(strstr(w, "setsid bash"));
        free(w);
}

/* Run the wrapper with the local /bin/sh; INPUT on its stdin, which stays
 * open (as ssh's does) unless CLOSE_INPUT. */
static int run_wrapper(const char *w, const char *input, bool close_input, char **ret_out) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        assert_int_equal(write(p[1], input, strlen(input)), (ssize_t)strlen(input));
        if (close_input) {
                close(p[1]);
                p[1] = -1;
        }
        struct cmd *c = cmd_new("/bin/sh");
        cmd_args(c, "-c", w, NULL);
        cmd_set_stdin_fd(c, p[0]);
        cmd_capture_output(c, 4096);
        struct cmd_status st;
        assert_int_equal(cmd_run(c, &st), 0);
        assert_int_equal(st.outcome, CMD_EXITED);
        *ret_out = strdup(dbuf_str(cmd_stdout(c)));
        cmd_free(c);
        close(p[0]);
        if (p[1] >= 0) close(p[1]);
        return st.code;
}

static void test_the_wrapper_runs_a_script_and_returns_its_status_under_sh(void **state) {
        const char *script = "echo from-script; exit 7\n";
        char *w = remote_wrapper(strlen(script));
        char *out = NULL;
        assert_int_equal(run_wrapper(w, script, false, &out), 7);
        assert_string_equal(out, "from-script\n");
        free(out);
        /* Short input: the wrapper's own failure, 255, and the script did not run. */
        assert_int_equal(run_wrapper(w, "echo x", true, &out), REMOTE_SSH_FAILURE);
        assert_string_equal(out, "");
        free(out);
        free(w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal_settings_get_the_documented_defaults),
                cmocka_unit_test(test_every_settings_problem_is_reported_with_its_position),
                cmocka_unit_test(test_label_comes_from_job_env_then_the_variable_then_the_default),
                cmocka_unit_test(test_job_id_must_be_a_number_and_timeout_comes_from_ci_job_timeout),
                cmocka_unit_test(test_exit_codes_follow_the_runner_and_fall_back_to_its_defaults),
                cmocka_unit_test(test_node_record_round_trips_and_a_malformed_one_is_refused),
                cmocka_unit_test(test_request_json_is_zuuls_with_the_gitlab_job_in_requestor_data),
                cmocka_unit_test(test_wrapper_reads_exactly_the_script_length_and_fails_as_255),
                cmocka_unit_test(test_the_wrapper_runs_a_script_and_returns_its_status_under_sh),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
