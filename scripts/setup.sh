#!/usr/bin/env bash
# Idempotent set-up for Peregrine on a Debian machine of this kind: installs only what is missing.
# Used by both README commands (run and test). Safe to call repeatedly; quiet when all is in place.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
KREL="$(uname -r)"
say() { echo "[setup] $*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    say "error: Peregrine's set-up installs Debian packages and loads eBPF: run it as root."; exit 1
  fi
}

PY="${PEREGRINE_PYTHON:-$(command -v python3.11 || command -v python3)}"
apt_missing=()
# gcc (and the interpreter's headers) build the C hot paths (schemas/batch_writer.c and batch_reader.c,
# processor/open_fields.c, sensor/record_decoder.c, ring_scan.c).
for pkg in python3-bpfcc bpfcc-tools linux-headers-amd64 rsyslog rsyslog-gnutls chromium containerd runc busybox-static containernetworking-plugins gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$pkg")
done
if ! "$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  apt_missing+=("python3-dev")
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  need_root
  say "installing Debian packages: ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${apt_missing[@]}" >/dev/null
  # rsyslog is a test peer, not a system service for us: keep the package's own daemon off.
  systemctl disable --now rsyslog >/dev/null 2>&1 || true
  # containerd is a test peer too (tests/sensor/test_container_runtime.py runs a private one per test module).
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi

# bcc compiles against kernel headers; the kernel here ships none, so Debian's are linked in.
# They are not the running kernel's: BPF code uses BTF-resolved offsets, never struct layouts from them.
MODDIR="/lib/modules/$KREL"
if [ ! -e "$MODDIR/build/include" ] || [ ! -e "$MODDIR/source/include" ]; then
  need_root
  hdr_arch="$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)"
  hdr_common="$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1)"
  if [ -z "$hdr_arch" ] || [ -z "$hdr_common" ]; then say "error: linux-headers-amd64 is installed but /usr/src has no headers"; exit 1; fi
  mkdir -p "$MODDIR"
  ln -sfn "$hdr_arch" "$MODDIR/build"
  ln -sfn "$hdr_common" "$MODDIR/source"
  say "linked $MODDIR/build -> $hdr_arch and source -> $hdr_common"
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# bcc's Python bindings come from Debian (pure Python over libbcc): expose only that package to the venv.
if [ ! -e "$SITE/bcc" ]; then
  ln -sfn /usr/lib/python3/dist-packages/bcc "$SITE/bcc"
fi

STAMP="$VENV/.peregrine-installed"
REQ="$ROOT/requirements.lock"
if [ ! -f "$STAMP" ] || [ "$REQ" -nt "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] \
   || [ "$ROOT/setup.py" -nt "$STAMP" ] \
   || [ -n "$(find "$ROOT/schemas" "$ROOT/sensor" "$ROOT/processor" -maxdepth 1 \( -name '*.c' -o -name '*.h' \) ! -name '*.bpf.c' -newer "$STAMP")" ]; then
  say "installing pinned Python dependencies"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT"
  "$VENV/bin/python" -c 'from schemas.codec import batch_reader, batch_writer; from sensor.decode import _record_decoder
from sensor.ringbuf import c_scan; from processor.event_fields import c_seed_open
assert batch_writer() == batch_reader() == "c" and _record_decoder and c_scan and c_seed_open' 2>/dev/null \
    || say "warning: the C hot paths did not build (no compiler or Python headers?): sensor and processor run, several times slower"
  touch "$STAMP"
fi
"$VENV/bin/python" -c 'import bcc' 2>/dev/null || { say "error: 'import bcc' fails in $VENV (python3-bpfcc missing?)"; exit 1; }

# crictl drives a private containerd's CRI plugin in the sensor tests (tests/sensor/test_cri.py), as kubelet would.
# Built from the Go module proxy with the machine's Go into the venv; the tests skip without it.
CRICTL_VERSION=v1.37.0
if [ ! -x "$VENV/bin/crictl" ] && command -v go >/dev/null 2>&1; then
  say "building crictl $CRICTL_VERSION (test peer)"
  GOBIN="$VENV/bin" go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" >/dev/null 2>&1 \
    || say "warning: crictl did not build; the CRI tests will be skipped"
fi
