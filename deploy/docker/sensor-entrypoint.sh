#!/bin/sh
# Point /lib/modules/<node kernel>/build at the image's headers when the node provides none, then run peregrine.
set -eu
krel="$(uname -r)"
moddir="/lib/modules/$krel"
if [ ! -e "$moddir/build/include" ]; then
  arch="$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)"
  common="$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1)"
  mkdir -p "$moddir"
  ln -sfn "$arch" "$moddir/build"
  ln -sfn "$common" "$moddir/source"
fi
exec peregrine "$@"
