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
    for prog in ("poold", "poolctl", "poold-builder"):
        path = root / "bin" / prog
        assert os.access(path, os.X_OK), path
        v = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
        assert v.returncode == 0 and v.stdout.startswith(prog + " "), v
    assert (root / "share" / "poold" / "etc" / "nodepool.yaml").is_file()
    assert (root / "share" / "poold" / "elements").is_dir()
    # nothing escaped DESTDIR
    assert not os.path.exists("/opt/poold")
