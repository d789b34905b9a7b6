"""poold-builder disk-image-create: the default node image from the shipped
elements, inspected with libguestfs; the stage cache on an unchanged rebuild
and after a change in one late element.

Cost (measured, 2 shared cores, TCG): the session's first build is ~11.5 min
with an empty stage cache (see image_fixture.py), ~20-70 s with a warm one;
the unchanged rebuild ~24 s; test_late_element_change_* ~70 s the first time
its changed finalise.d stage is built on a machine, seconds afterwards (the
changed element is deterministic, so its stage is cached too). Inspection
launches one libguestfs appliance (~20 s). Whole file: ~14 min cold, ~3 min warm.
"""
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from harness import SRCDIR
from image_fixture import built_image, guestfs_backend_settings, run_build  # noqa: F401 (fixture)

guestfs = pytest.importorskip("guestfs", reason="python3-guestfs (Debian package) is needed to inspect images")


@pytest.fixture(scope="module")
def image_fs(built_image):  # noqa: F811
    """The built qcow2, opened read-only in one libguestfs appliance for every check."""
    g = guestfs.GuestFS(python_return_dict=True)
    g.set_backend("direct")
    g.set_backend_settings(guestfs_backend_settings())
    g.add_drive_opts(built_image.path("qcow2"), format="qcow2", readonly=1)
    g.launch()
    g.mount_ro("/dev/sda1", "/")
    yield g
    g.umount_all()
    g.shutdown()
    g.close()


def test_build_writes_formats_and_checksums_that_verify(built_image):  # noqa: F811
    for fmt in ("qcow2", "raw"):
        path = built_image.path(fmt)
        assert os.path.getsize(path) > 0
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", path], check=True,
                                         capture_output=True, text=True).stdout)
        assert info["format"] == fmt
        assert info["virtual-size"] == 2 * 1024 ** 3  # DIB_IMAGE_SIZE default 2 GiB
        assert "backing-filename" not in info  # outputs are standalone, not overlays of the cache
        outdir, name = os.path.split(path)
        for tool, ext, digest_len in (("md5sum", "md5", 32), ("sha256sum", "sha256", 64)):
            with open("%s.%s" % (path, ext)) as f:
                line = f.read()
            assert re.fullmatch(r"[0-9a-f]{%d}  %s\n" % (digest_len, re.escape(name)), line), line
            subprocess.run([tool, "--status", "-c", "%s.%s" % (name, ext)], cwd=outdir, check=True)
    # the raw image's digest, computed here, is the one in the file
    h = hashlib.sha256()
    with open(built_image.path("raw"), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    with open(built_image.path("raw") + ".sha256") as f:
        assert f.read().split()[0] == h.hexdigest()


def test_build_log_names_stages_and_cache_outcomes(built_image):  # noqa: F811
    log = built_image.log
    assert "elements: debian-minimal vm openssh-server simple-init node-user growroot" in log
    stages = built_image.lines("]: cache ")
    assert len(stages) == 3, log  # root.d | extra-data.d install.d | finalise.d
    assert "build finished in" in log


def test_image_has_kernel_small_initramfs_and_grub(image_fs, built_image):  # noqa: F811
    g = image_fs
    boot = g.ls("/boot")
    kernels = [f for f in boot if f.startswith("vmlinuz-")]
    initrds = [f for f in boot if f.startswith("initrd.img-")]
    assert len(kernels) == 1 and len(initrds) == 1, boot
    # MODULES=list: a few MB, not the ~36 MB of MODULES=most
    assert g.filesize("/boot/" + initrds[0]) < 15 * 1024 * 1024
    cfg = g.cat("/boot/grub/grub.cfg")
    assert re.search(r"^\s*linux\s+/boot/%s .*console=ttyS0" % re.escape(kernels[0]), cfg, re.M), cfg
    assert g.is_file("/boot/grub/i386-pc/core.img")
    # GRUB's boot.img in the MBR (it carries the string "GRUB") and a boot signature
    with open(built_image.path("raw"), "rb") as f:
        mbr = f.read(512)
    assert b"GRUB" in mbr and mbr[510:512] == b"\x55\xaa"
    assert g.part_get_bootable("/dev/sda", 1)
    assert g.vfs_label("/dev/sda1") == "cloudimg-rootfs"
    assert g.vfs_type("/dev/sda1") == "ext4"
    fstab = g.cat("/etc/fstab")
    assert re.search(r"^LABEL=cloudimg-rootfs\s+/\s+ext4\s", fstab, re.M), fstab


def test_image_sshd_enabled_without_baked_host_keys(image_fs):
    g = image_fs
    assert g.is_file("/usr/sbin/sshd")
    wants = g.ls("/etc/systemd/system/multi-user.target.wants")
    assert "ssh.service" in wants and "ssh-keygen-firstboot.service" in wants, wants
    assert [f for f in g.ls("/etc/ssh") if f.startswith("ssh_host_")] == []
    unit = g.cat("/etc/systemd/system/ssh-keygen-firstboot.service")
    assert "Before=ssh.service" in unit and "ssh-keygen" in unit


def test_image_node_user_key_and_sudo(image_fs, built_image):  # noqa: F811
    g = image_fs
    pw = [l.split(":") for l in g.cat("/etc/passwd").splitlines()]
    zuul = [p for p in pw if p[0] == "zuul"]
    assert len(zuul) == 1
    uid, home = int(zuul[0][2]), zuul[0][5]
    with open(built_image.public_key) as f:
        want = f.read()
    ak = home + "/.ssh/authorized_keys"
    assert g.cat(ak) == want
    st = g.statns(ak)
    assert st["st_uid"] == uid and stat.S_IMODE(st["st_mode"]) == 0o600
    assert stat.S_IMODE(g.statns(home + "/.ssh")["st_mode"]) == 0o700
    assert g.cat("/etc/sudoers.d/90-node-user").strip() == "zuul ALL=(ALL) NOPASSWD:ALL"
    assert g.is_file("/usr/bin/sudo")
    shadow = [l.split(":") for l in g.cat("/etc/shadow").splitlines() if l.startswith("zuul:")]
    assert shadow[0][1].startswith("!")  # no password login


def test_image_networking_growroot_and_cleanup(image_fs):
    g = image_fs
    net = g.cat("/etc/systemd/network/80-poold-dhcp.network")
    assert "Name=en* eth*" in net and "DHCP=yes" in net
    wants = g.ls("/etc/systemd/system/multi-user.target.wants")
    assert "systemd-networkd.service" in wants and "poold-growroot.service" in wants, wants
    assert g.is_file("/usr/bin/growpart") and g.is_file("/sbin/resize2fs")
    assert g.cat("/etc/machine-id") == ""  # each node gets its own
    assert [f for f in g.ls("/var/lib/apt/lists") if f.endswith("_Packages")] == []  # build-time package lists gone
    assert not g.exists("/tmp/in_target.d")
    assert not g.exists("/usr/sbin/policy-rc.d")
    # apt in the image uses the host's mirror
    sources = g.cat("/etc/apt/sources.list.d/debian.sources")
    with open("/etc/apt/sources.list.d/debian.sources") as f:
        host_uris = re.findall(r"^URIs:\s*(\S+)", f.read(), re.M)
    assert host_uris and "URIs: %s" % host_uris[0] in sources


def test_rebuild_unchanged_is_all_cache_hits(built_image, tmp_path):  # noqa: F811
    res = run_build(tmp_path)
    assert res.returncode == 0, res.log[-3000:]
    assert len(res.lines("]: cache hit")) == 3, res.log
    assert res.lines("cache miss") == []
    assert "starting the libguestfs appliance" not in res.log
    # seconds, not minutes: converting two formats and checksumming them is all it does
    assert res.elapsed < 120, res.elapsed
    # the same stages give byte-identical images
    with open(built_image.path("raw") + ".sha256") as a, open(res.path("raw") + ".sha256") as b:
        assert a.read().split()[0] == b.read().split()[0]


def test_late_element_change_reruns_only_later_stages(built_image, tmp_path):  # noqa: F811
    # ELEMENTS_PATH is searched first: a copy of `vm` whose finalise.d hook differs.
    override = tmp_path / "elements"
    shutil.copytree(os.path.join(SRCDIR, "elements", "vm"), override / "vm", symlinks=True)
    hook = override / "vm" / "finalise.d" / "50-vm-bootloader"
    with open(hook, "a") as f:
        f.write("# changed by test_late_element_change_reruns_only_later_stages\n")
    out = tmp_path / "out"
    out.mkdir()
    res = run_build(out, formats=("qcow2",), elements_path=str(override))
    assert res.returncode == 0, res.log[-3000:]
    assert res.lines("stage 0 [root.d]: cache hit"), res.log
    assert res.lines("stage 1 [extra-data.d install.d]: cache hit"), res.log
    missed = res.lines("cache miss")
    # a repeated session finds this variant cached as well; the first run on a machine rebuilds finalise.d only
    assert missed in ([], [l for l in missed if "stage 2 [finalise.d]: cache miss" in l]), res.log
    assert len(missed) <= 1
    if missed:
        assert res.log.count("starting the libguestfs appliance") == 1
        assert "running finalise.d in the image" in res.log and "running install.d" not in res.log
    # the two images differ only where finalise.d ran: same kernel and user, new stage 2 key
    keys = re.findall(r"stage 2 \[finalise\.d\] key ([0-9a-f]{16})", res.log)
    base_keys = re.findall(r"stage 2 \[finalise\.d\] key ([0-9a-f]{16})", built_image.log)
    assert keys and base_keys and keys[0] != base_keys[0]
