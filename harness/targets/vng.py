"""virtme-ng command lines per architecture, and the host preconditions vng needs.

Both architectures boot on a root tree given with --root (the host's own root only when
asked, x86_64 on an x86_64 host); arm64 under TCG gets `-cpu max` (vng's default
cortex-a57 lacks the LSE atomics the arm64 BPF JIT needs for some programs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.arch import lookup
from harness.targets.errors import TargetSetupError

UDEVD = "/lib/systemd/systemd-udevd"
# virtme-ng 1.42's own root mount options plus cache=loose. The kernel takes the last
# rootflags= and vng puts --append values after its own, so this replaces them.
CACHED_ROOTFLAGS = "rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"


# Two vCPUs by default: QEMU runs each in its own host thread even under TCG, and the agent
# runs a job per CPU (progs/agent.py --parallel 0). The x86_64 suite took 13.0 s with one
# and 9.8 s with two on this 2-core machine; the boot costs 0.06 s more.
GUEST_CPUS = 2


@dataclass(frozen=True)
class BootSpec:
    """Everything that decides how one guest boots (hashable, printable, reusable)."""

    arch: str
    kernel: Path
    root: Path | None = None  # None: the host's root (x86_64 on an x86_64 host only)
    # The root tree never changes while a guest runs (the cached Debian trees): the guest
    # may cache it (9p cache=loose). Without it every lookup, exec and page fault is a 9p
    # round trip: a TCG x86_64 boot-to-command took 4.3 s instead of 2.9-3.6 s, and a
    # command's round trip 0.15 s instead of 0.02 s.
    cache_root: bool = False
    memory: str = "1G"
    cpus: int = GUEST_CPUS
    kvm_cpu: str | None = None  # None: TCG (--disable-kvm); else the -cpu model KVM booted
    append: tuple[str, ...] = ()
    rwdirs: tuple[str, ...] = ()  # vng --rwdir values (guestpath=hostpath)
    extra_qemu_opts: tuple[str, ...] = field(default_factory=tuple)


def vng_command(spec: BootSpec, script: str, vng: str = "vng") -> list[str]:
    """argv for booting `spec` and running `script`, kernel console on stderr."""
    target = lookup(spec.arch)
    arch, on_host = target.name, target.is_host
    argv = [
        vng,
        "--run",
        str(spec.kernel),
        "--force-9p",
        "--verbose",
        "--memory",
        spec.memory,
        "--cpus",
        str(spec.cpus),
    ]
    qemu_opts: list[str] = list(spec.extra_qemu_opts)
    if not on_host:
        argv += ["--arch", arch]
    if spec.root is not None:
        if not Path(spec.root).is_dir():  # vng would otherwise download an Ubuntu chroot
            raise TargetSetupError(f"guest root {spec.root} is not a directory")
        argv += ["--root", str(spec.root)]
    elif not on_host:
        raise TargetSetupError(f"an {arch} guest needs a root filesystem (--root)")
    if spec.kvm_cpu is None or not on_host:
        argv.append("--disable-kvm")
        if target.tcg_cpu:
            qemu_opts = ["-cpu", target.tcg_cpu, *qemu_opts]
    elif spec.kvm_cpu != "host":
        qemu_opts = ["-cpu", spec.kvm_cpu, *qemu_opts]
    for item in spec.rwdirs:
        argv += ["--rwdir", item]
    if spec.cache_root and spec.root is not None:
        argv += ["--append", CACHED_ROOTFLAGS]
    for item in spec.append:
        argv += ["--append", item]
    argv += ["--exec", script]
    if qemu_opts:  # one "=" argument: argparse would take "-cpu" for an option of vng's
        argv.append("--qemu-opts=" + " ".join(qemu_opts))
    return argv


def udev_running() -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd-udevd":
                return True
        except OSError:
            continue
    return False


def ensure_udev() -> None:
    """Start systemd-udevd if it is not running: without it vng loses output and exits 255."""
    if udev_running():
        return
    if os.geteuid() != 0 or not os.access(UDEVD, os.X_OK):
        raise TargetSetupError(
            "systemd-udevd is not running (virtme-ng needs it); run scripts/setup.sh"
        )
    subprocess.run([UDEVD, "--daemon"], capture_output=True, timeout=30, check=False)
    for _ in range(50):
        if udev_running():
            return
        time.sleep(0.1)
    raise TargetSetupError(f"could not start {UDEVD} --daemon (virtme-ng needs udev)")


def ensure_vng(vng: str = "vng") -> str:
    path = shutil.which(vng)
    if path is None:
        raise TargetSetupError(f"{vng} not found (pip install virtme-ng==1.42)")
    return path
