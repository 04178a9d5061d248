#!/usr/bin/env bash
# Idempotent machine setup for the kfunc BTF harness on Debian 12+.
# Installs the system packages the harness drives (kernel build deps, arm64
# cross gcc, QEMU, clang, mmdebstrap, udev, openssh-server, kexec-tools) and the Python
# package itself. Safe to run again: it skips what is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
stamp_dir=${HARNESS_CACHE:-$HOME/.cache/kfunc-harness}
mkdir -p "$stamp_dir"

APT_PACKAGES=(
  build-essential flex bison bc cpio kmod rsync xz-utils zstd lz4 git patch
  libelf-dev libssl-dev libdw-dev zlib1g-dev libcap-dev pkg-config
  dwarves ccache bpftool cmake
  gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross
  qemu-system-x86 qemu-system-arm qemu-utils chromium-headless-shell
  clang llvm lld
  mmdebstrap debootstrap busybox-static
  udev openssh-server openssh-client kexec-tools
  python3-venv
)

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -q
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# virtme-ng needs a running udev on the host, else guest output is lost.
if ! pgrep -x systemd-udevd >/dev/null 2>&1 && [ -x /lib/systemd/systemd-udevd ]; then
  sudo_ /lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || true
fi

py=${PYTHON:-python3}
if ! "$py" -c 'import harness, virtme_ng, pexpect, paramiko, elftools, xdist' >/dev/null 2>&1 \
   || [ "$here/pyproject.toml" -nt "$stamp_dir/.pip-stamp" ]; then
  echo "setup: installing the harness and its Python dependencies"
  "$py" -m pip install -q -e "$here[test]"
  touch "$stamp_dir/.pip-stamp"
fi
# pyenv only sees new console scripts (harness) after a rehash
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi

# The JUnit schema Jenkins and GitLab read (Surefire's junit-10.xsd): the matrix report
# tests validate against it. pytest keeps a copy in its sdist only, so fetch that sdist
# from PyPI once and keep the one file.
xsd="$stamp_dir/xsd/junit-10.xsd"
if [ ! -s "$xsd" ]; then
  echo "setup: fetching junit-10.xsd (from pytest's sdist on PyPI)"
  tmp=$(mktemp -d)
  "$py" -m pip download -q --no-binary :all: --no-deps "pytest==8.3.4" -d "$tmp"
  mkdir -p "$(dirname "$xsd")"
  tar --no-same-owner -xzf "$tmp"/pytest-8.3.4.tar.gz -C "$tmp" pytest-8.3.4/testing/example_scripts/junit-10.xsd
  mv "$tmp"/pytest-8.3.4/testing/example_scripts/junit-10.xsd "$xsd.tmp" && mv "$xsd.tmp" "$xsd"
  rm -rf "$tmp"
fi
