"""`make install` honours PREFIX and DESTDIR and installs working programs."""
import os
import subprocess

from harness import SRCDIR


def test_make_install_honours_prefix_and_destdir(tmp_path):
    dest = tmp_path / "stage"
    p = subprocess.run(["make", "-s", "-C", SRCDIR, "SAN=1", "install",
                        "DESTDIR=%s" % dest, "PREFIX=/opt/poold"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    root = dest / "opt" / "poold"
    for prog in ("poold", "poolctl", "poold-builder", "poold-gitlab-executor"):
        path = root / "bin" / prog
        assert os.access(path, os.X_OK), path
        v = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
        assert v.returncode == 0 and v.stdout.startswith(prog + " "), v
    assert (root / "share" / "poold" / "etc" / "nodepool.yaml").is_file()
    assert (root / "share" / "poold" / "etc" / "gitlab" / "gitlab-executor.yaml").is_file()
    assert (root / "share" / "poold" / "elements").is_dir()
    # nothing escaped DESTDIR
    assert not os.path.exists("/opt/poold")


def _shim(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_make_up_builds_on_a_fresh_machine_and_installs_only_the_pools_packages(tmp_path):
    """`make up` on a machine without the -dev packages: its apt-get install runs
    before pkg-config is asked for the link flags, so the programs link in the
    same `make` (the Makefile once read pkg-config before `deps` had installed
    anything, and every jansson/libvirt/libcurl symbol was undefined). The
    packages asked for are the pool's, not the test tools' (no chromium)."""
    shims = tmp_path / "bin"
    shims.mkdir()
    installed = tmp_path / "installed"
    asked = tmp_path / "apt-get.args"
    # Until our apt-get "installs", nothing is installed and pkg-config knows nothing.
    _shim(shims / "dpkg-query", '[ -e %s ] && { printf "install ok installed"; exit 0; }\nexit 1\n' % installed)
    _shim(shims / "pkg-config", '[ -e %s ] || exit 1\nexec /usr/bin/pkg-config "$@"\n' % installed)
    _shim(shims / "apt-get", 'echo "$@" >> %s\n[ "$1" = install ] && touch %s\nexit 0\n' % (asked, installed))
    env = dict(os.environ, PATH="%s:%s" % (shims, os.environ["PATH"]))
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    build = tmp_path / "build"
    p = subprocess.run(["make", "-s", "-C", SRCDIR, "up-build", "BUILD=%s" % build, "OPT=-O0", "-j2"],
                       capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for prog in ("poold", "poolctl", "poold-builder"):
        v = subprocess.run([str(build / "bin" / prog), "--version"], capture_output=True, text=True, timeout=30)
        assert v.returncode == 0 and v.stdout.startswith(prog + " "), v
    install_line = [l for l in asked.read_text().splitlines() if l.startswith("install")]
    assert len(install_line) == 1, asked.read_text()
    pkgs = set(install_line[0].split())
    for needed in ("libvirt-daemon-system", "qemu-system-x86", "zookeeper", "libguestfs-dev", "debootstrap"):
        assert needed in pkgs, pkgs
    for test_only in ("chromium", "python3-pytest", "libcmocka-dev", "clang"):
        assert test_only not in pkgs, pkgs
