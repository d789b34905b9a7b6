#!/bin/bash
# install.sh — install the Debian packages of the loopback OpenStack when missing.
# Idempotent: does nothing (fast) when every package is installed already.
# Why the tricks: policy-rc.d keeps Debian from starting the packaged daemons
# (we start our own on free ports); diverting update-initramfs avoids a
# 1-2 minute initramfs rebuild triggered by open-iscsi.
set -euo pipefail

PKGS=(keystone glance-api placement-api nova-api nova-conductor nova-scheduler python3-nova cinder-api
      neutron-api python3-neutron rabbitmq-server uwsgi-core uwsgi-plugin-python3 postgresql
      python3-psycopg2 python3-yaml qemu-utils)

missing=()
for p in "${PKGS[@]}"; do
        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
        echo "install.sh: need root to install: ${missing[*]}" >&2
        exit 1
fi

echo "install.sh: installing ${missing[*]}" >&2
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
fi
diverted=0
if ! dpkg-divert --list /usr/sbin/update-initramfs | grep -q .; then
        dpkg-divert --local --rename --add /usr/sbin/update-initramfs >/dev/null
        ln -sf /bin/true /usr/sbin/update-initramfs
        diverted=1
fi
cleanup() {
        if [ $diverted = 1 ]; then
                rm -f /usr/sbin/update-initramfs
                dpkg-divert --local --rename --remove /usr/sbin/update-initramfs >/dev/null
        fi
        [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
        return 0
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
fi
