/* kvm_probe.h — can QEMU run guests under KVM on this host?
 *
 * A /dev/kvm that opens is not enough: on some hosts the device exists while
 * the CPU lacks vmx/svm, and QEMU then aborts ("failed to set MSR 0x10a") or
 * its guest hangs. The probe boots this host's kernel under KVM with no root
 * file system and counts KVM usable only when the kernel reaches its "cannot
 * mount root" panic and QEMU exits (panic=-1 with -no-reboot). The answer is
 * cached per boot in KVM_PROBE_CACHE, keyed by the boot id, the QEMU binary
 * and the kernel, so daemons and build children probe once. */
#pragma once

#include <stdbool.h>

#define KVM_PROBE_CACHE "/run/poold/kvm-probe"
/* A working KVM boots to the panic in about a second; TCG needs ~7 s. */
#define KVM_PROBE_TIMEOUT_MS 20000

/* Probe (or read the cached answer). *ret_usable says whether KVM works;
 * *ret_reason (caller frees) is one line saying why, for the log.
 * Returns 0, or -errno when the probe itself could not decide (then
 * *ret_usable is false and *ret_reason says why: callers fall back to TCG). */
int kvm_probe(bool *ret_usable, char **ret_reason);
