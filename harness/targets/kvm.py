"""Decide once per host whether KVM really boots a guest kernel, else fall back to TCG.

/dev/kvm existing proves nothing: on these hosts it is a PVM-based KVM where `-cpu host`
aborts on MSR 0x10a and other CPU models hang while the kernel decompresses (SeaBIOS
itself runs fine, so only a real kernel tells). The probe boots the given kernel without
a root filesystem and waits for the kernel to finish booting (it then panics on the
missing root, which with panic=-1 ends QEMU), under a hard timeout that kills QEMU's
process group. The verdict is cached per host kernel release and QEMU version.
"""

from __future__ import annotations

import json
import os
import platform
import re
import select
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.arch import X86_64
from harness.cache import atomic_write, cache_root, locked
from harness.procs import spawn
from harness.targets import procs

QEMU = X86_64.qemu_binary  # the probe boots x86_64 guests on x86_64 hosts only
# What vng passes with KVM ("host"), then the same CPU without the MSR that PVM rejects.
CPU_CANDIDATES = ("host", "host,-arch-capabilities")
# Lines that only a kernel past decompression and early init can print.
_BOOTED = re.compile(r"Kernel panic - not syncing|Run /\S+ as init|Freeing unused kernel")
_ALIVE = re.compile(r"Linux version \d")


@dataclass(frozen=True)
class KvmVerdict:
    """Whether KVM boots a kernel here; `cpu` is the -cpu model that did, `reason` why not."""

    usable: bool
    cpu: str | None
    reason: str
    seconds: float
    key: str
    cached: bool = False


def qemu_version(qemu: str = QEMU) -> str:
    """`QEMU emulator version 7.2.22 (...)` -> "7.2.22"; the probe's cache key needs it."""
    try:
        out = subprocess.run(
            [qemu, "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else "unknown"


def probe_key(qemu: str = QEMU) -> str:
    raw = f"{platform.release()}-qemu-{qemu_version(qemu)}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", raw)


def _cache_file(key: str) -> Path:
    return cache_root() / "kvm-probe" / f"{key}.json"


def _try_cpu(kernel: Path, cpu: str, timeout: float) -> tuple[bool, str]:
    """Boot `kernel` under KVM with `cpu`; (booted, one-line reason)."""
    marker = uuid.uuid4().hex
    argv = [
        QEMU,
        "-accel",
        "kvm",
        "-cpu",
        cpu,
        "-m",
        "256",
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 root=/dev/harness-none",
    ]
    env = dict(os.environ, **{procs.MARKER_ENV: marker})
    proc = spawn(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    output = b""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
                if _BOOTED.search(output.decode("utf-8", "replace")):
                    return True, f"-cpu {cpu} booted the kernel"
    finally:
        procs.kill_tree(proc.pid, marker)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    text = output.decode("utf-8", "replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    error = next((ln for ln in lines if "qemu-system" in ln and "error" in ln), None)
    if error:
        return False, f"-cpu {cpu}: QEMU aborted: {error.split(': ', 1)[-1]}"
    if not _ALIVE.search(text):
        return False, f"-cpu {cpu}: hung before the kernel printed anything ({timeout:.0f} s)"
    return False, f"-cpu {cpu}: hung during boot after: {lines[-1][:120]}"


def probe_kvm(
    kernel: Path | str | None = None, *, timeout: float = 10.0, refresh: bool = False
) -> KvmVerdict:
    """The cached verdict, or a fresh probe booting `kernel` (an x86_64 bzImage).

    Without a cached verdict and without a kernel to boot, KVM is reported unusable
    (uncached): TCG is the safe answer when nothing can prove KVM works.
    """
    start = time.monotonic()
    key = probe_key()
    path = _cache_file(key)
    if not refresh and path.is_file():
        data = json.loads(path.read_text())
        return KvmVerdict(**{**data, "cached": True})
    if not X86_64.is_host:
        return KvmVerdict(False, None, f"host is {platform.machine()}", 0.0, key)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        verdict = KvmVerdict(False, None, "no usable /dev/kvm", 0.0, key)
        atomic_write(path, json.dumps(asdict(verdict)))
        return verdict
    if kernel is None or not Path(kernel).is_file():
        return KvmVerdict(False, None, "not probed: no x86_64 kernel image to boot", 0.0, key)
    with locked(path):
        if not refresh and path.is_file():
            data = json.loads(path.read_text())
            return KvmVerdict(**{**data, "cached": True})
        reasons = []
        verdict = None
        for cpu in CPU_CANDIDATES:
            booted, reason = _try_cpu(Path(kernel), cpu, timeout)
            if booted:
                verdict = KvmVerdict(True, cpu, reason, time.monotonic() - start, key)
                break
            reasons.append(reason)
        if verdict is None:
            verdict = KvmVerdict(False, None, "; ".join(reasons), time.monotonic() - start, key)
        atomic_write(path, json.dumps(asdict(verdict)))
    return verdict
