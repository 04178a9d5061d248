"""virtme-ng command lines per architecture, and the host preconditions vng needs.

Both architectures boot on a root tree given with --root (the host's own root only when
asked, x86_64 on an x86_64 host); arm64 under TCG gets `-cpu max` (vng's default
cortex-a57 lacks the LSE atomics the arm64 BPF JIT needs for some programs).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.arch import lookup
from harness.cache import atomic_write, cache_dir, touch_used
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
    vng_init: bool = False  # vng boots it with its own init even where ours would do


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


# COMMAND_LINE_SIZE on x86_64 and arm64: the kernel cuts a longer line short
KERNEL_CMDLINE_MAX = 2048
_EXEC_ARG = re.compile(r"virtme\.exec=`[^`]*`")
_RET_CHARDEV = re.compile(r"^(file,id=ret,path=)(.*)$")
DRY_RUN_TIMEOUT = 60.0


def own_init(spec: BootSpec) -> bool:
    """Whether `spec` boots on the harness's own init (qemu_command) rather than vng's:
    a cached tree (which holds it, see rootfs.install_init) and nothing that needs the rest of vng's
    init (--rwdir mounts, extra devices such as a loopback board's network)."""
    return spec.root is not None and spec.cache_root and not spec.rwdirs \
        and not spec.extra_qemu_opts and not spec.vng_init


class CommandLineTooLong(TargetSetupError):
    """The script does not fit the kernel's command line next to vng's parameters."""


def boot_command(spec: BootSpec, script: str, init: str | None, vng: str = "vng") -> list[str]:
    """argv that boots `spec` and runs `script`: QEMU on `init` (a path in the guest, given
    where own_init(spec)) when the script fits the kernel's command line, else vng (whose
    init takes a long script from a file it writes into the root tree)."""
    if init is not None:
        with contextlib.suppress(CommandLineTooLong):
            return qemu_command(spec, script, init, vng)
    return vng_command(spec, script, vng)


def qemu_command(spec: BootSpec, script: str, init: str, vng: str = "vng") -> list[str]:
    """argv of the QEMU that vng would run for `spec`, with `script` as its --exec script
    and `init` (a path in the guest) as the guest's init (guest/harness-init.sh says why).

    vng still decides the machine (devices, 9p root, script ports, console, kernel
    command line); its `--dry-run` output is taken once per spec and process, which also
    spares vng's own start-up (0.3-1 s of Python) on every boot after the first."""
    argv = list(_dry_run(spec, vng))
    idx = argv.index("-append")
    line = _EXEC_ARG.sub(lambda _: "virtme.exec=`"
                         + base64.b64encode(script.encode()).decode() + "`", argv[idx + 1])
    head, sep, _ = line.partition(" init=")
    if not sep:
        raise TargetSetupError(f"vng's kernel command line has no init=: {line[-200:]}")
    line = f"{head} init={init}"
    if len(line.encode()) >= KERNEL_CMDLINE_MAX:
        raise CommandLineTooLong(f"kernel command line of {len(line.encode())} bytes "
                                 f"(the kernel keeps {KERNEL_CMDLINE_MAX - 1})")
    argv[idx + 1] = line
    return argv


def clear_command_cache() -> None:
    """Forget the QEMU commands this process took from vng or the cache (the next boot
    reads its command from the cache dir, or runs vng --dry-run)."""
    _dry_run.cache_clear()


@functools.lru_cache(maxsize=16)
def _dry_run(spec: BootSpec, vng: str) -> tuple[str, ...]:
    """vng's QEMU argv for `spec`: from the cache dir when this vng gave it for this spec
    and kernel file before (sparing a one-shot run vng's start-up, 0.2-0.3 s), else asked."""
    exe = shutil.which(vng)
    key = _command_key(spec, exe) if exe else None
    path = cache_dir("vng-commands") / f"{key}.json" if key else None
    if path is not None:
        with contextlib.suppress(OSError, ValueError, TypeError):
            cached = json.loads(path.read_text())
            if (isinstance(cached, list) and all(isinstance(a, str) for a in cached)
                    and "-append" in cached and os.access(cached[0], os.X_OK)):
                touch_used(path)
                return tuple(cached)
    qemu = _ask_vng(spec, vng)
    if path is not None:
        atomic_write(path, json.dumps(qemu))
    return qemu


def _command_key(spec: BootSpec, exe: str) -> str | None:
    """What vng's answer depends on: the spec, which vng (its entry script is rewritten
    when virtme-ng is reinstalled) and the kernel file; None when one cannot be read."""
    try:
        vng_stat, kernel = os.stat(exe), os.stat(spec.kernel)
    except OSError:
        return None
    facts = [repr(spec), exe, vng_stat.st_mtime_ns, kernel.st_size, kernel.st_mtime_ns]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:24]


def _ask_vng(spec: BootSpec, vng: str) -> tuple[str, ...]:
    """vng --dry-run's QEMU argv for `spec` (a placeholder script), its script-status file
    (which vng creates and never removes on a dry run) replaced by /dev/null."""
    argv = vng_command(spec, "true", vng=vng)
    argv.insert(argv.index("--exec"), "--dry-run")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=DRY_RUN_TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetSetupError(f"vng --dry-run failed: {exc}") from None
    lines = [ln for ln in proc.stdout.splitlines() if "-append" in ln]
    if proc.returncode != 0 or len(lines) != 1:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise TargetSetupError(f"vng --dry-run gave no QEMU command (rc={proc.returncode}): "
                               f"{detail}")
    qemu = shlex.split(lines[0])
    for i, arg in enumerate(qemu):
        ret = _RET_CHARDEV.match(arg)
        if ret:
            with contextlib.suppress(OSError):
                if Path(ret.group(2)).name.startswith("virtme_ret"):
                    os.unlink(ret.group(2))
            qemu[i] = ret.group(1) + os.devnull
    return tuple(qemu)


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
