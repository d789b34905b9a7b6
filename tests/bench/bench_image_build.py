#!/usr/bin/python3
"""Benchmark the built-in disk-image-create on the default image.

Run by hand as root (not part of make check), after `make programs`:
    /usr/bin/python3 tests/bench/bench_image_build.py [--cold] [--cache DIR]
Builds debian-minimal vm openssh-server simple-init node-user growroot as
qcow2 with checksums, the way poold-builder runs it, and prints the wall time
of a build from the given stage cache (--cold: an empty temporary cache, so
every stage runs), of an unchanged rebuild right after it, of a build after a
change in a late element (a copy of `vm` whose finalise.d hook differs, with a
fresh marker so its stage is never cached), and the image's size (file and
virtual). The accelerator printed is what `poold-builder kvm-probe` chose.
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
os.environ.setdefault("POOLD_BUILD", str(HERE.parent.parent / "build"))

from image_fixture import STAGE_CACHE, guestfs_backend_settings, run_build  # noqa: E402

SRCDIR = HERE.parent.parent


def image_info(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", path], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", action="store_true", help="start from an empty stage cache")
    ap.add_argument("--cache", default=STAGE_CACHE)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="poold-bench-image-")
    cache = os.path.join(work, "stages") if args.cold else args.cache
    accel = "TCG" if guestfs_backend_settings() else "KVM"
    try:
        os.makedirs(os.path.join(work, "a"))
        first = run_build(os.path.join(work, "a"), formats=("qcow2",), stage_cache=cache)
        if first.returncode != 0:
            raise SystemExit("build failed:\n" + "\n".join(first.log.splitlines()[-30:]))
        hits = len(first.lines("cache hit"))
        print("%s build (%s, %d cached stages): %.1f s" % ("cold" if args.cold else "first", accel, hits,
                                                         first.elapsed))
        os.makedirs(os.path.join(work, "b"))
        again = run_build(os.path.join(work, "b"), formats=("qcow2",), stage_cache=cache)
        if again.returncode != 0:
            raise SystemExit("rebuild failed:\n" + "\n".join(again.log.splitlines()[-30:]))
        print("unchanged rebuild: %.1f s (%d cache hits, %d misses)"
              % (again.elapsed, len(again.lines("cache hit")), len(again.lines("cache miss"))))
        # a late element changed: a copy of `vm` (searched first) with a marker no cache holds
        override = os.path.join(work, "elements")
        shutil.copytree(SRCDIR / "elements" / "vm", os.path.join(override, "vm"), symlinks=True)
        with open(os.path.join(override, "vm", "finalise.d", "50-vm-bootloader"), "a") as f:
            f.write("# bench_image_build late change %s\n" % os.path.basename(work))
        os.makedirs(os.path.join(work, "c"))
        late = run_build(os.path.join(work, "c"), formats=("qcow2",), elements_path=override, stage_cache=cache)
        if late.returncode != 0:
            raise SystemExit("late-change build failed:\n" + "\n".join(late.log.splitlines()[-30:]))
        print("late element changed (vm finalise.d): %.1f s (%d cache hits, %d misses)"
              % (late.elapsed, len(late.lines("cache hit")), len(late.lines("cache miss"))))
        info = image_info(again.path("qcow2"))
        print("image: qcow2 %.0f MiB on disk, %.1f GiB virtual"
              % (os.path.getsize(again.path("qcow2")) / 2**20, info["virtual-size"] / 2**30))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
