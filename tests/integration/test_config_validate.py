"""`poolctl config-validate` on every config in tests/configs: exit codes and the
exact diagnostics (FILE:LINE:COL: error: message), all problems, in file order."""
import os
import subprocess

import pytest

from harness import SRCDIR, program

VALID = ["openstack", "static", "libvirt", "metastatic", "chains", "docs-example"]

FOREIGN = ["aws", "azure", "gce", "ibmvpc", "kubernetes", "openshift", "openshiftpods"]

# Valid configs whose only output is these warnings (after the "tests/configs/NAME.yaml:" prefix).
UNACTED = "is accepted for compatibility but poold does not act on it yet"
WARNINGS = {
    'all-keys': [
        # max-volumes, max-volume-gb (tenant 21-22, pool 90-91) and the tenant's custom 'gpus' (23)
        # are acted on: no warning. nodepool-id is still only accepted.
        "69:5: warning: 'nodepool-id' " + UNACTED + " (deprecated: Nodepool does not act on it either)",
    ],
    'static-max-servers': [
        "16:9: warning: 'max-servers' of a static pool only acts when it is 0 or less (the pool is then "
        "disabled, as in Nodepool); a positive value has no effect",
    ],
}


def foreign_warning(pos, provider, driver, diskimages=False):
    return ("%s: warning: provider '%s' uses driver '%s', which poold does not launch nodes for: requests for "
            "its labels are left to a launcher running beside poold on the same ZooKeeper (e.g. Nodepool's "
            "nodepool-launcher)%s" % (pos, provider, driver,
                                      "; poold-builder does not upload its diskimages" if diskimages else ""))


WARNINGS.update({
    'foreign-aws': [foreign_warning("17:5", "ec2-us-west-2", "aws", diskimages=True)],
    'foreign-azure': [foreign_warning("16:5", "azure-central", "azure", diskimages=True)],
    'foreign-gce': [foreign_warning("11:5", "gcloud-provider", "gce")],
    'foreign-ibmvpc': [foreign_warning("14:5", "ibmvpc", "ibmvpc", diskimages=True)],
    'foreign-kubernetes': [foreign_warning("12:5", "kubespray", "kubernetes")],
    'foreign-openshift': [foreign_warning("11:5", "openshift", "openshift")],
    'foreign-openshiftpods': [foreign_warning("10:5", "openshift-pods", "openshiftpods")],
})

# Exact diagnostics after the "tests/configs/NAME.yaml:" prefix, in order.
EXPECTED = {
    'bad-unknown-key': [
        "8:9: error: unknown key 'foo' in pool 'main' of provider 'p1'",
        "13:13: error: unknown key 'colour' in label 'l1' of pool 'main' of provider 'p1'",
    ],
    'bad-type': [
        "3:16: error: 'min-ready' in label 'l1': expected an integer, got 'lots'",
        "7:19: error: 'boot-timeout' in provider 'p1': expected an integer, got the quoted string '60'",
        "10:22: error: 'max-servers' in pool 'main' of provider 'p1': expected an integer, got 'abc'",
        "11:28: error: 'host-key-checking' in pool 'main' of provider 'p1': expected a boolean, got 'maybe'",
        "12:17: error: 'labels' in pool 'main' of provider 'p1': expected a list, got 'notalist'",
    ],
    'bad-missing': [
        "2:5: error: missing required key 'name' in label #1",
        "4:5: error: missing required key 'name' in diskimage #1",
        "6:5: error: missing required key 'cloud' in provider 'p1'",
        "10:13: error: missing required key 'name' in label #1 of pool 'main' of provider 'p1'",
        "10:13: error: label #1 of pool 'main' of provider 'p1' must have at least one of 'flavor-name' or 'min-ram'",
        "10:24: error: diskimage 'x' of label #1 of pool 'main' of provider 'p1' is not defined in the top-level diskimages",
        "12:5: error: missing required key 'host' in zookeeper-servers entry #1",
    ],
    'bad-dangling': [
        "11:15: error: diskimage 'ghost-image' of provider 'p1' is not defined in the top-level diskimages",
        "15:19: error: label 'unknown-label' in pool 'main' of provider 'p1' is not defined in the top-level labels",
        "18:24: error: diskimage 'other' of label 'known' of pool 'main' of provider 'p1' is not listed in the diskimages of provider 'p1'",
        "25:21: error: label 'missing' in node 'h1' of pool 'rack' of provider 's1' is not defined in the top-level labels",
    ],
    'bad-duplicates': [
        "3:11: error: duplicate label 'a' (first defined at line 2)",
        "6:11: error: duplicate diskimage 'img' (first defined at line 5)",
        "17:19: error: duplicate label 'a' in pool 'main' of provider 'p1' (first defined at line 15)",
        "19:15: error: duplicate pool 'main' in provider 'p1' (first defined at line 13)",
        "20:11: error: duplicate provider 'p1' (first defined at line 8)",
        "27:19: error: duplicate static node 'h' (username 'zuul', port 22) in provider 'p1'",
    ],
    'bad-syntax': [
        "6:10: error: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence started at line 5)",
    ],
    'bad-cycle': [
        '3:13: error: diskimage parent cycle: a -> b -> c -> a',
        '5:13: error: diskimage parent cycle: b -> c -> a -> b',
        '7:13: error: diskimage parent cycle: c -> a -> b -> c',
        "9:13: error: parent 'nowhere' of diskimage 'd' is not defined",
    ],
    'bad-many': [
        "2:9: error: 'port' in webapp: 99999 is not a TCP port",
        "3:1: error: unknown key 'unknown-top' in the top level",
        "4:20: error: 'zookeeper-timeout' in the top level: expected a number, got 'soon'",
        "11:15: error: diskimage 'nope' of provider 'os' is not defined in the top-level diskimages",
        "15:13: error: label 'l1' of pool 'main' of provider 'os' must have exactly one of 'diskimage' or 'cloud-image'",
        "15:13: error: label 'l1' of pool 'main' of provider 'os' must have at least one of 'flavor-name' or 'min-ram'",
        "16:24: error: diskimage 'nope' of label 'l1' of pool 'main' of provider 'os' is not defined in the top-level diskimages",
        "17:26: error: cloud-image 'also' of label 'l1' of pool 'main' of provider 'os' is not defined in the provider's cloud-images",
        "18:5: error: missing required key 'pools' in provider 'aws1'",
        foreign_warning("19:5", "aws1", "aws"),
        "22:5: error: unknown driver 'banana' of provider 'weird' (Nodepool's drivers are openstack, static, "
        "aws, azure, gce, ibmvpc, kubernetes, openshift, openshiftpods and metastatic; poold adds libvirt)",
        "23:5: error: missing required key 'network' in provider 'lv' (network-mode is 'network')",
        "26:17: error: 'port-range' in provider 'lv': expected a list of two port numbers [low, high]",
        "30:13: error: missing required key 'diskimage' in label 'l1' of pool 'main' of provider 'lv'",
    ],
    # An alias copies the anchored mapping, positions included.
    'bad-alias': [
        '4:5: error: alias *nowhere has no anchor before it',
    ],
    # A typo in a provider of each driver poold leaves to another launcher and in
    # a metastatic one, and the checks Nodepool's loader makes for them.
    'bad-foreign': [
        foreign_warning("6:5", "aws1", "aws"),
        "11:24: error: cloud-image 'ubuntu' of provider 'aws1' has both 'image-id' and 'image-filters'",
        "18:13: error: unknown key 'instance_type' in label 'l1' of pool 'main' of provider 'aws1'",
        "20:21: error: 'imdsv2' in label 'l1' of pool 'main' of provider 'aws1': expected one of 'required' or "
        "'optional', got 'require'",
        "22:26: error: cloud-image 'debian' of label 'l2' of pool 'main' of provider 'aws1' is not defined in "
        "the provider's cloud-images",
        foreign_warning("26:5", "az1", "azure"),
        "36:15: error: unknown key 'vm_size' in 'hardware-profile' of label 'l1' of pool 'main' of provider 'az1'",
        "36:15: error: missing required key 'vm-size' in 'hardware-profile' of label 'l1' of pool 'main' of "
        "provider 'az1'",
        "37:5: error: missing required key 'project' in provider 'gce1'",
        foreign_warning("38:5", "gce1", "gce"),
        "39:5: error: unknown key 'projet' in provider 'gce1'",
        "43:11: error: provider 'ibm_1': an ibmvpc provider name may not contain '_'",
        foreign_warning("44:5", "ibm_1", "ibmvpc"),
        "53:13: error: missing required key 'profile' in label 'l1' of pool 'main' of provider 'ibm_1'",
        "54:13: error: unknown key 'profle' in label 'l1' of pool 'main' of provider 'ibm_1'",
        foreign_warning("56:5", "k8s", "kubernetes"),
        "62:13: error: unknown key 'imagee' in label 'l1' of pool 'main' of provider 'k8s'",
        "65:13: error: unknown key 'image' in label 'l2' of pool 'main' of provider 'k8s' (not allowed with "
        "'spec')",
        foreign_warning("68:5", "os1", "openshift"),
        "70:5: error: unknown key 'max-project' in provider 'os1'",
        foreign_warning("73:5", "pods1", "openshiftpods"),
        "80:13: error: unknown key 'image-pull-secret' in label 'l1' of pool 'main' of provider 'pods1'",
        "86:13: error: missing required key 'backing-label' in label 'l1' of pool 'main' of provider 'meta'",
        "87:13: error: unknown key 'backing_label' in label 'l1' of pool 'main' of provider 'meta'",
        "88:19: error: label 'ghost' in pool 'main' of provider 'meta' is not defined in the top-level labels",
        "90:22: error: label 'ghost' of pool 'main' of provider 'meta': max-age must be at least "
        "min-retention-time",
        "93:28: error: label 'l2' of pool 'main' of provider 'meta': labels with backing-label 'l2' must have "
        "the same max-parallel-jobs (label 'ghost' has another)",
    ],
}


def validate(*args, env=None):
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("NODEPOOL_")}
    run_env.update(env or {})
    return subprocess.run([program("poolctl")] + list(args) + ["config-validate"], cwd=SRCDIR,
                          env=run_env, capture_output=True, text=True, timeout=60)


def diag_lines(stderr, path):
    return [l[len(path) + 1:] for l in stderr.splitlines()
            if l.startswith(path + ":") and not l.endswith("configuration is invalid")]


@pytest.mark.parametrize("name", VALID)
def test_valid_config_exits_0_silently(name):
    """A valid config (one per driver poold runs, chains, Nodepool's documented example) prints nothing, exit 0."""
    p = validate("-c", "tests/configs/%s.yaml" % name)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""


@pytest.mark.parametrize("name", sorted(WARNINGS))
def test_valid_config_warns_exactly(name):
    """A valid config using keys poold does not act on (every key, the docs example), a static pool's
    max-servers, or a provider of each driver poold leaves to another launcher (samples adapted from
    Nodepool's test fixtures) exits 0 and prints exactly one positioned warning per such occurrence."""
    path = "tests/configs/%s.yaml" % name
    p = validate("-c", path)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == ["%s:%s" % (path, w) for w in WARNINGS[name]]


def test_every_foreign_driver_has_a_sample():
    """Each driver poold leaves to another launcher has a valid sample in tests/configs."""
    assert sorted("foreign-" + d for d in FOREIGN) == sorted(w for w in WARNINGS if w.startswith("foreign-"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_config_reports_every_problem_exactly(name):
    """Each broken config exits 1 and prints exactly the expected positioned errors, in file order."""
    path = "tests/configs/%s.yaml" % name
    p = validate("-c", path)
    assert p.returncode == 1
    assert diag_lines(p.stderr, path) == EXPECTED[name]
    n = sum(": error: " in line for line in EXPECTED[name])
    assert p.stderr.splitlines()[-1] == "%s: %d error%s found, configuration is invalid" % (
        path, n, "" if n == 1 else "s")


def test_env_substitution_unset_variables_are_errors():
    """Unset NODEPOOL_ variables are errors at the scalar's position; set ones validate."""
    path = "tests/configs/env.yaml"
    p = validate("-c", path)
    assert p.returncode == 1
    assert diag_lines(p.stderr, path) == [
        "3:19: error: environment variable 'NODEPOOL_TEST_LISTEN' is not set",
        "5:11: error: environment variable 'NODEPOOL_TEST_ZK_HOST' is not set",
        "7:13: error: environment variable 'NODEPOOL_TEST_CHROOT' is not set",
    ]
    p = validate("-c", path, env={"NODEPOOL_TEST_LISTEN": "127.0.0.1", "NODEPOOL_TEST_ZK_HOST": "zk",
                                  "NODEPOOL_TEST_CHROOT": "c"})
    assert p.returncode == 0, p.stderr


def test_secure_file_merges_and_reports_with_its_own_name():
    """-s: a good secure file validates; errors in a bad one are reported under the secure file's name."""
    p = validate("-c", "tests/configs/secure-main.yaml", "-s", "tests/configs/secure.yaml")
    assert p.returncode == 0, p.stderr
    sec = "tests/configs/secure-bad.yaml"
    p = validate("-c", "tests/configs/secure-main.yaml", "-s", sec)
    assert p.returncode == 1
    assert diag_lines(p.stderr, sec) == [
        "2:5: error: missing required key 'host' in zookeeper-servers entry #1",
        "4:11: error: diskimage 'nosuch' is not defined in tests/configs/secure-main.yaml",
        "6:1: error: unknown key 'labels' in the top level of the secure file",
    ]


def test_zookeeper_tls_files_that_do_not_exist_are_positioned_errors():
    """zookeeper-tls naming missing files: one FILE:LINE:COL error per file, exit 1."""
    path = "tests/configs/zk-tls.yaml"
    p = validate("-c", path)
    assert p.returncode == 1
    assert diag_lines(p.stderr, path) == [
        "4:9: error: 'cert' in zookeeper-tls: cannot read '/etc/nodepool/zk.crt': No such file or directory",
        "5:8: error: 'key' in zookeeper-tls: cannot read '/etc/nodepool/zk.key': No such file or directory",
        "6:7: error: 'ca' in zookeeper-tls: cannot read '/etc/nodepool/ca.crt': No such file or directory",
    ]


def test_zookeeper_tls_with_readable_files_is_valid_also_from_the_secure_file(tmp_path):
    """zookeeper-tls with readable PEM files validates silently, in the main or
    the secure file; a missing one in the secure file is reported there."""
    from harness import TLSFiles
    tls = TLSFiles(str(tmp_path / "ca"))
    tls_yaml = "zookeeper-tls:\n  ca: %s\n  cert: %s\n  key: %s\n" % (tls.ca, tls.cert, tls.key)
    main = tmp_path / "nodepool.yaml"
    main.write_text("zookeeper-servers:\n  - host: zk\n" + tls_yaml)
    p = validate("-c", str(main))
    assert (p.returncode, p.stderr) == (0, "")
    main.write_text("zookeeper-servers:\n  - host: zk\n")
    secure = tmp_path / "secure.yaml"
    secure.write_text(tls_yaml)
    p = validate("-c", str(main), "-s", str(secure))
    assert (p.returncode, p.stderr) == (0, "")
    secure.write_text(tls_yaml.replace(tls.key, str(tmp_path / "nope.key")))
    p = validate("-c", str(main), "-s", str(secure))
    assert p.returncode == 1
    assert diag_lines(p.stderr, str(secure)) == [
        "4:8: error: 'key' in zookeeper-tls: cannot read '%s': No such file or directory" % (tmp_path / "nope.key")]


def test_missing_file_is_a_clear_error():
    """A missing config file names the file and the reason, exit 1."""
    p = validate("-c", "tests/configs/does-not-exist.yaml")
    assert p.returncode == 1
    assert p.stderr == ("tests/configs/does-not-exist.yaml: error: cannot read the file: "
                        "No such file or directory\n")


def test_shipped_sample_configs_are_valid(tmp_path):
    """Every sample under etc/ loads without errors, so the samples stay true to the loader."""
    import glob
    samples = sorted(glob.glob(os.path.join(SRCDIR, "etc", "*.yaml")))
    assert samples, "no sample configs under etc/"
    # poold-local.yaml takes its state dir and ZooKeeper port from these, and
    # its zookeeper-tls files from the state dir (poold-local makes them so).
    subprocess.run([os.path.join(SRCDIR, "tools", "zk-tls-ca.sh"), str(tmp_path / "tls")], check=True)
    env = dict(os.environ, NODEPOOL_STATE_DIR=str(tmp_path), NODEPOOL_ZK_PORT="2181")
    for path in samples:
        p = subprocess.run([program("poolctl"), "-c", path, "config-validate"],
                           capture_output=True, text=True, timeout=30, env=env)
        assert p.returncode == 0, "%s: %s" % (path, p.stderr)
        assert "error" not in p.stderr
