#!/bin/sh
# tools/zkclient/build.sh VERSION PREFIX
#
# Builds the ZooKeeper C client WITH OpenSSL (zookeeper_init_ssl) from
# Debian's own source package, version VERSION, and installs its headers and
# static libraries into PREFIX (include/zookeeper/, lib/). Debian's binary
# libzookeeper-mt is built without TLS, and production Zuul runs ZooKeeper
# TLS-only, so poold links this build instead.
#
# Called by `make deps` (as root). A complete PREFIX is kept: its .complete
# stamp records the version and a hash of this recipe (this script and the
# patches next to it), and a second run with the same ones does nothing. Steps:
#   1. deb-src entries mirroring the deb entries of /etc/apt/sources.list.d/debian.sources
#   2. apt-get source zookeeper=VERSION (fails if apt does not offer exactly that version)
#   3. the C client's jute files, generated with Debian's zookeeper-jute.jar
#   4. the patches next to this script, in name order:
#      01-openssl3-fips-mode.patch       OpenSSL 3 removed FIPS_mode()
#      02-init2-ssl-log-callback.patch   zookeeper_init2_ssl(): zookeeper_init_ssl with a
#                                        log callback (as zookeeper_init2), without its leak
#   5. cmake -DWITH_OPENSSL=ON -DWANT_CPPUNIT=OFF (no SASL), static and position-independent
#      (Debian's gcc links PIE executables)
# Consumers compile with -I PREFIX/include -DHAVE_OPENSSL_H (the header's zsock_t
# layout depends on it) and link PREFIX/lib/libzookeeper.a libhashtable.a -lssl -lcrypto.
set -eu

die() { echo "build-zkclient: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: tools/zkclient/build.sh VERSION PREFIX"
version=$1
prefix=$2
here=$(cd "$(dirname "$0")" && pwd)
stamp="$version $(cat "$here/build.sh" "$here"/*.patch | sha256sum | cut -d' ' -f1)"
[ -f "$prefix/.complete" ] && [ "$(cat "$prefix/.complete")" = "$stamp" ] && exit 0

src_list=/etc/apt/sources.list.d/debian.sources
srcsrc_list=/etc/apt/sources.list.d/poold-deb-src.sources
jute_jar=/usr/share/java/zookeeper-jute.jar

[ "$(id -u)" -eq 0 ] || die "must run as root (it adds apt deb-src entries and writes $prefix)"
for tool in apt-get apt-cache dpkg-source patch cmake java cc nm; do
        command -v $tool >/dev/null || die "$tool is missing (make deps installs it)"
done
[ -r "$jute_jar" ] || die "$jute_jar is missing (Debian package libzookeeper-java)"

# --- 1. deb-src entries: the same URIs, suites, components and key as the deb ones
#        (deb822 debian.sources, or one-line /etc/apt/sources.list on older installs).
if ! apt-cache showsrc zookeeper 2>/dev/null | grep -q '^Package: zookeeper$'; then
        if [ ! -r "$src_list" ] && grep -q '^deb ' /etc/apt/sources.list 2>/dev/null; then
                echo "build-zkclient: adding deb-src lines in ${srcsrc_list%.sources}.list (from /etc/apt/sources.list)"
                sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"${srcsrc_list%.sources}.list"
                apt-get update -q || die "apt-get update failed"
        fi
fi
if ! apt-cache showsrc zookeeper 2>/dev/null | grep -q '^Package: zookeeper$'; then
        [ -r "$src_list" ] || die "$src_list not found: cannot derive the deb-src mirror"
        echo "build-zkclient: adding deb-src entries in $srcsrc_list (from $src_list)"
        awk 'BEGIN { RS = ""; ORS = "\n\n" }
             /(^|\n)Types:[^\n]*(^|[ \t])deb([ \t]|\n|$)/ {
                     out = ""
                     n = split($0, lines, "\n")
                     for (i = 1; i <= n; i++) {
                             if (lines[i] ~ /^#/) continue
                             if (lines[i] ~ /^Types:/) lines[i] = "Types: deb-src"
                             out = out lines[i] "\n"
                     }
                     printf "%s\n", out
             }' "$src_list" >"$srcsrc_list.tmp"
        grep -q '^Types: deb-src' "$srcsrc_list.tmp" || { rm -f "$srcsrc_list.tmp"; die "no deb entries in $src_list"; }
        mv "$srcsrc_list.tmp" "$srcsrc_list"
        apt-get update -q || die "apt-get update failed"
fi

# --- 2. the pinned source package
src_versions() {
        apt-cache showsrc zookeeper 2>/dev/null | awk '/^Package: zookeeper$/ { p = 1 } /^Version:/ && p { print $2; p = 0 }' | sort -u
}
have=$(src_versions)
if ! echo "$have" | grep -qxF "$version"; then
        apt-get update -q >/dev/null || die "apt-get update failed"
        have=$(src_versions)
fi
echo "$have" | grep -qxF "$version" ||
        die "Debian source zookeeper=$version is not available (apt offers: $(echo $have)); update the pin ZKC_VERSION in the Makefile"

work=$(mktemp -d /var/tmp/poold-zkclient.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
cd "$work"
echo "build-zkclient: apt-get source zookeeper=$version"
apt-get source -q --only-source "zookeeper=$version" >source.log 2>&1 || { cat source.log >&2; die "apt-get source failed"; }
srcdir=$(find . -mindepth 1 -maxdepth 1 -type d -name 'zookeeper-*' | head -1)
[ -n "$srcdir" ] || die "apt-get source unpacked no zookeeper-* directory"
cdir=$work/$srcdir/zookeeper-client/zookeeper-client-c
jute=$work/$srcdir/zookeeper-jute/src/main/resources/zookeeper.jute
[ -f "$cdir/CMakeLists.txt" ] && [ -f "$jute" ] || die "unexpected source layout in $srcdir"

# --- 3. jute → generated/zookeeper.jute.{c,h} (not shipped in the tarball)
mkdir -p "$cdir/generated"
(cd "$cdir/generated" && java -cp "$jute_jar" org.apache.jute.compiler.generated.Rcc -l c "$jute") ||
        die "jute code generation failed"
[ -f "$cdir/generated/zookeeper.jute.c" ] || die "jute did not write generated/zookeeper.jute.c"

# --- 4. our patches (they must apply exactly: a new version needs a look)
for p in "$here"/*.patch; do
        patch -d "$work/$srcdir" -p1 --forward --batch --quiet <"$p" || die "$(basename "$p") does not apply to $version"
done

# --- 5. build the static libraries, install next to PREFIX, then move into place
echo "build-zkclient: building the C client with OpenSSL"
cmake -S "$cdir" -B "$work/build" -DWITH_OPENSSL=ON -DWITH_CYRUS_SASL=OFF -DWANT_CPPUNIT=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON >cmake.log 2>&1 ||
        { tail -40 cmake.log >&2; die "cmake configure failed"; }
cmake --build "$work/build" -j2 --target zookeeper hashtable >build.log 2>&1 ||
        { tail -40 build.log >&2; die "build failed"; }
nm "$work/build/libzookeeper.a" 2>/dev/null | grep -q ' T zookeeper_init2_ssl$' ||
        die "libzookeeper.a has no zookeeper_init2_ssl (was OpenSSL found?)"
# Staged next to PREFIX so that the final rename is atomic.
stage=$prefix.new
rm -rf "$stage"
mkdir -p "$stage/include/zookeeper" "$stage/lib"
cp "$cdir/include/"*.h "$cdir/generated/zookeeper.jute.h" "$stage/include/zookeeper/"
cp "$work/build/libzookeeper.a" "$work/build/libhashtable.a" "$stage/lib/"
echo "$stamp" >"$stage/.complete"
rm -rf "$prefix"
mv "$stage" "$prefix"
echo "build-zkclient: ZooKeeper C client $version with OpenSSL in $prefix"
