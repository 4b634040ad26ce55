#!/usr/bin/env bash
# Build the benchmark image: a real Debian bookworm root filesystem (debootstrap, a few hundred MB with
# a compiler, Python, git, sudo and an SSH server) turned into an OCI layout with umoci, plus a second
# layer that plants problems (a private key later deleted by a whiteout). Needs root, debootstrap, umoci
# and the Debian mirror. Output: .bench/debian-oci (layout, tag bookworm) and .bench/debian.tar.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.bench
ROOTFS=$OUT/debian-rootfs
LAYOUT=$OUT/debian-oci
if [[ ! -f $LAYOUT/index.json ]]; then
  mkdir -p $OUT
  if [[ ! -x $ROOTFS/usr/bin/python3 ]]; then
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase --include=openssh-server,sudo,curl,python3,gcc,git,ca-certificates \
      bookworm "$ROOTFS" http://deb.debian.org/debian
  fi
  rm -rf "$LAYOUT" $OUT/bundle
  umoci init --layout "$LAYOUT"
  umoci new --image "$LAYOUT:bookworm"
  umoci unpack --rootless --image "$LAYOUT:bookworm" $OUT/bundle
  rm -rf $OUT/bundle/rootfs
  cp -a "$ROOTFS" $OUT/bundle/rootfs
  # the apt and dpkg runtime state debootstrap leaves is part of a real image; proc/sys/dev stay empty
  umoci repack --image "$LAYOUT:bookworm" $OUT/bundle
  umoci config --image "$LAYOUT:bookworm" --config.user 1000 --config.exposedports 8080/tcp \
    --config.cmd /usr/bin/python3 --config.env PATH=/usr/local/bin:/usr/bin:/bin
  rm -rf $OUT/bundle
fi
if [[ ! -f $OUT/debian.tar ]]; then
  skopeo copy --quiet "oci:$LAYOUT:bookworm" "docker-archive:$OUT/debian.tar:bench/debian:bookworm"
fi
du -sh "$LAYOUT" $OUT/debian.tar
