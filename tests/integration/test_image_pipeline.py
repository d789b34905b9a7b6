"""poold-builder disk-image-create's pipeline mechanics on a tiny image (bash
and a few tools copied from the host, no Debian install), so they are proven
in minutes rather than the quarter hour of a real node image:

- root.d builds the tree on the host; outside-phase files reach the image
  and TMP_HOOKS_PATH reaches /tmp/in_target.d; inside hooks see DIB's
  environment and the image's disk as IMAGE_BLOCK_DEVICE (the hooks check
  all of this themselves and fail the build otherwise);
- a failing inside hook fails the build with its exit code, a clear last
  error line, and leaves nothing half-made in the stage cache; stages before
  it stay cached.

- the stage cache is pruned at the end of a build, keeping what the next
  build of the same inputs needs.

Cost: four libguestfs appliance launches, ~3-4 min under TCG.
"""
import os
import re
import shutil
import subprocess
import textwrap
import time

import pytest

from harness import program

TOOLS = ["/bin/bash", "/bin/cat", "/bin/chmod", "/bin/rm", "/bin/mkdir", "/bin/ls", "/bin/test", "/bin/readlink"]

ROOT_D = textwrap.dedent("""\
    #!/bin/bash
    # A root tree with bash and a few tools from the host, and their libraries.
    set -eu
    for b in %s; do
        cp --parents -L "$b" "$TARGET_ROOT"
        for lib in $(ldd "$b" | grep -o '/[^ ]*'); do
            cp --parents -L "$lib" "$TARGET_ROOT"
        done
    done
    mkdir -p "$TARGET_ROOT"/{tmp,etc,usr/sbin,dev,proc,sys}
    echo tiny > "$TARGET_ROOT/etc/tiny-release"
    """) % " ".join(TOOLS)

EXTRA_DATA_D = textwrap.dedent("""\
    #!/bin/bash
    # Outside, after root.d: a file for the image and one for later hooks.
    set -eu
    mkdir -p "$TARGET_ROOT/etc"
    echo "from extra-data" > "$TARGET_ROOT/etc/from-extra-data"
    echo "handed over" > "$TMP_HOOKS_PATH/tiny-handover"
    """)

CHECK_HOOK = textwrap.dedent("""\
    #!/bin/bash
    # Inside: everything the earlier phases promised is here.
    set -eu
    trap 'echo "check failed: $BASH_COMMAND"' ERR
    test "$(cat /etc/tiny-release)" = tiny
    test "$(cat /etc/from-extra-data)" = "from extra-data"
    test "$(cat /tmp/in_target.d/tiny-handover)" = "handed over"
    test -b "$IMAGE_BLOCK_DEVICE"
    # ...and it is the image's disk (partitioned), not the appliance's own (which is not)
    test -d "/sys/block/${IMAGE_BLOCK_DEVICE##*/}/${IMAGE_BLOCK_DEVICE##*/}1"
    test "$DIB_RELEASE" = tinyrel
    test "$DIB_TINY_SETTING" = on
    test -n "$IMAGE_ELEMENT" -a -n "$TMP_HOOKS_PATH"
    test -x /usr/sbin/policy-rc.d   # services are kept from starting while hooks run
    echo "%s ran" >> /etc/tiny-hooks
    """)


def write(path, text, mode=0o755):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    el = root / "elements"
    write(str(el / "tiny-os" / "element-provides"), "operating-system\n", 0o644)
    write(str(el / "tiny-os" / "root.d" / "10-tiny"), ROOT_D)
    write(str(el / "tiny-os" / "extra-data.d" / "10-tiny"), EXTRA_DATA_D)
    write(str(el / "tiny-os" / "install.d" / "50-check"), CHECK_HOOK % "install.d")
    write(str(el / "tiny-os" / "finalise.d" / "50-check"), CHECK_HOOK % "finalise.d")
    return root


def build(root, name, elements_path, cache, formats="qcow2", env=None):
    env = dict(os.environ, ELEMENTS_PATH=elements_path, POOLD_STAGE_CACHE=str(cache), DIB_RELEASE="tinyrel",
               DIB_TINY_SETTING="on", LIBGUESTFS_BACKEND="direct", **(env or {}))
    out = str(root / name)
    proc = subprocess.run([program("poold-builder"), "disk-image-create", "-t", formats, "-o", out, "tiny-os"],
                          env=env, capture_output=True, text=True, timeout=1800)
    return proc, out


def test_tiny_image_hooks_see_phase_outputs_then_failure_keeps_cache_clean(tiny):
    cache = tiny / "cache"
    proc, out = build(tiny, "ok", str(tiny / "elements"), cache, formats="qcow2,vhd,vmdk")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    # every format qemu-img writes for us is what its name says
    for ext, fmt in (("qcow2", "qcow2"), ("vmdk", "vmdk")):
        info = subprocess.run(["qemu-img", "info", out + "." + ext], capture_output=True, text=True, check=True)
        assert "file format: %s" % fmt in info.stdout, info.stdout
    # a fixed VHD is the raw disk plus a 512-byte footer (qemu-img probes it as raw):
    # "conectix" cookie, disk type 2 = fixed, current size = the disk size
    with open(out + ".vhd", "rb") as f:
        f.seek(-512, os.SEEK_END)
        footer = f.read(512)
        size = f.tell() - 512
    assert footer[:8] == b"conectix"
    assert int.from_bytes(footer[60:64], "big") == 2
    assert int.from_bytes(footer[48:56], "big") == size == 2 * 1024 ** 3
    log = proc.stdout
    for phase in ("root.d", "extra-data.d", "install.d", "finalise.d"):
        assert "running %s" % phase in log, log
    assert "poold: running install.d/50-check" in log  # hook output streamed from the appliance
    assert log.count("cache miss") == 3 and os.path.getsize(out + ".qcow2") > 0

    # finalise.d hook replaced by one that fails: only that stage reruns, and fails.
    bad = tiny / "bad-elements"
    shutil.copytree(str(tiny / "elements"), str(bad), symlinks=True)
    write(str(bad / "tiny-os" / "finalise.d" / "50-check"), "#!/bin/bash\necho about to fail\nexit 3\n")
    before = set(os.listdir(str(cache)))
    proc, out = build(tiny, "bad", str(bad), cache)
    assert proc.returncode != 0
    log = proc.stdout
    assert "stage 0 [root.d]: cache hit" in log and "stage 1 [extra-data.d install.d]: cache hit" in log, log
    assert "stage 2 [finalise.d]: cache miss" in log
    assert "    about to fail" in log  # the hook's own output, from inside the image
    assert "poold: finalise.d/50-check failed with exit code 3" in log
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "disk-image-create: error: finalise.d failed in the image (see the hook output above): ")
    assert not os.path.exists(out + ".qcow2")
    after = set(os.listdir(str(cache)))
    new = after - before
    # only the failed stage's lock file is new: no disk, no entry, no temporary file
    assert all(n.endswith(".lock") for n in new), new
    assert not [n for n in after if ".tmp" in n]


INSTALL_HOOK = "#!/bin/bash\nset -eu\necho ran >> /etc/tiny-hooks\n"


def old_chain(cache, label, days):
    """A previous image version's entries: a disk, an overlay on it, their
    entries and a converted output, all last used DAYS ago."""
    import hashlib
    k1 = hashlib.sha256((label + "1").encode()).hexdigest()
    k2 = hashlib.sha256((label + "2").encode()).hexdigest()
    d1, d2 = k1 + "-0000000000000001.qcow2", k2 + "-0000000000000002.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(cache / d1), "64M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", d1, str(cache / d2)],
                   check=True, cwd=str(cache))
    (cache / (k1 + ".disk")).write_text(d1 + "\n")
    (cache / (k2 + ".disk")).write_text(d2 + "\n")
    out = "out-%s.qcow2" % hashlib.sha256(label.encode()).hexdigest()[:32]
    (cache / out).write_bytes(b"x" * 65536)
    names = [d1, d2, k1 + ".disk", k2 + ".disk", out]
    t = time.time() - days * 86400
    for n in names:
        os.utime(str(cache / n), (t, t))
    return names


def test_prune_after_a_build_keeps_what_the_next_build_needs(tiny):
    """disk-image-create prunes its stage cache at the end of a build: an
    older image version unused for longer than the age limit goes (logged,
    with the space freed), and what the build used stays even under a size
    limit it cannot meet, so the next build of the same inputs is all cache
    hits; prune-stage-cache --dry-run says what a stricter limit would take
    and removes nothing."""
    el = tiny / "prune-elements"
    write(str(el / "tiny-os" / "element-provides"), "operating-system\n", 0o644)
    write(str(el / "tiny-os" / "root.d" / "10-tiny"), ROOT_D)
    write(str(el / "tiny-os" / "install.d" / "50-mark"), INSTALL_HOOK)
    cache = tiny / "prune-cache"
    cache.mkdir()
    old = old_chain(cache, "previous version", 30)
    (cache / "notes.txt").write_text("not the cache's\n")

    env = {"POOLD_STAGE_CACHE_MAX_AGE": "14d", "POOLD_STAGE_CACHE_MAX_SIZE": "20G"}
    proc, out = build(tiny, "p1", str(el), cache, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    log = proc.stdout
    assert log.count("cache miss") == 2, log
    for n in (old[0], old[1], old[4]):
        assert "stage cache: pruned %s (" % n in log, log
        assert "unused for too long" in log
        assert not (cache / n).exists()
    assert re.search(r"stage cache: pruned 3 entries and \d+ leftover files, freed [0-9.]+ [KMG]iB; ", log), log
    assert (cache / "notes.txt").exists()

    # A size limit no cache can meet: this build's entries still stay ...
    strict = {"POOLD_STAGE_CACHE_MAX_AGE": "1s", "POOLD_STAGE_CACHE_MAX_SIZE": "1B"}
    proc, out = build(tiny, "p2", str(el), cache, env=strict)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    log = proc.stdout
    assert "stage 1 [install.d]: cache hit" in log and "cache miss" not in log, log
    assert "from the output cache" in log
    assert "stage cache: still above its size limit" in log and "stage cache: pruned" not in log, log
    # ... so the next build needs no appliance either.
    proc, out = build(tiny, "p3", str(el), cache, env=strict)
    assert proc.returncode == 0 and "cache miss" not in proc.stdout, proc.stdout[-4000:]

    before = sorted(os.listdir(str(cache)))
    dry = subprocess.run([program("poold-builder"), "prune-stage-cache", "--max-size", "1B", "--dry-run", str(cache)],
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "stage cache: would prune 3 entries" in dry.stdout, dry.stdout  # tarball, disk, output
    assert sorted(os.listdir(str(cache))) == before
