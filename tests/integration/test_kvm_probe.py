"""The KVM probe decides by booting, and its verdict matches what QEMU really does here.

Machines of this kind differ: no /dev/kvm, a /dev/kvm whose KVM cannot run QEMU
(no vmx/svm: QEMU aborts on MSR 0x10a, or its guest hangs), or a working KVM.
Each test checks the probe's answer against an independent boot done here."""
import glob
import os
import subprocess

import pytest

from harness import program

CACHE = "/run/poold/kvm-probe"


def probe():
    p = subprocess.run([program("poold-builder"), "kvm-probe"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    verdict, _, reason = p.stdout.strip().partition(": ")
    assert verdict in ("kvm", "tcg"), p.stdout
    assert reason, p.stdout
    return verdict, reason


def kernel_boots(accel):
    """Boot /boot's kernel with no root under ACCEL; True when it reaches its panic."""
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    assert kernels, "linux-image-amd64 (a make deps package) provides /boot/vmlinuz-*"
    args = ["qemu-system-x86_64", "-machine", "accel=" + accel, "-m", "128", "-display", "none",
            "-nodefaults", "-no-reboot", "-serial", "stdio", "-kernel", kernels[-1],
            "-append", "console=ttyS0 panic=-1 loglevel=1"]
    if accel == "kvm":
        args[3:3] = ["-cpu", "host"]
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return p.returncode == 0 and "Kernel panic" in p.stdout


def test_probe_verdict_matches_an_independent_kvm_boot():
    """'kvm' only when a kernel really boots under KVM here; 'tcg' only when it does not."""
    if os.path.exists(CACHE):
        os.unlink(CACHE)
    verdict, reason = probe()
    kvm_works = os.path.exists("/dev/kvm") and kernel_boots("kvm")
    assert verdict == ("kvm" if kvm_works else "tcg"), (verdict, reason)
    if not os.path.exists("/dev/kvm"):
        assert "/dev/kvm" in reason


def test_probe_is_cached_for_the_boot_and_agrees_with_itself():
    """The second probe reads the per-boot cache instead of booting QEMU again."""
    first = probe()
    if not os.path.exists("/dev/kvm"):
        pytest.skip("no /dev/kvm: nothing is booted, nothing to cache")
    second = probe()
    assert second[0] == first[0]
    assert "probed earlier this boot" in second[1]


def test_tcg_fallback_boots_the_same_kernel():
    """Where the probe says tcg, the fallback itself works: the kernel boots in software."""
    verdict, _ = probe()
    if verdict == "kvm":
        pytest.skip("KVM works here; TCG is not the fallback in use")
    assert kernel_boots("tcg")
