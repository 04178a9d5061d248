"""Put a built kernel on a board and prove the board runs it.

kexec (the default): the image goes over SFTP, `kexec -s -l` loads it with the board's
command line (the inventory's `cmdline`, else the running kernel's), and a detached
`kexec -e` jumps to it. A hook (`deploy = "scripts/flash.sh {image} {modules}"`) runs on
this host instead, followed by the board's power cycle. Either way the SSH target then
reconnects with backoff within the board's boot_timeout until a new boot id answers (it
really rebooted; each try is a fresh connection), then checks `uname -r` against the
build's release and the SHA-256 of /sys/kernel/btf/vmlinux against the build's .BTF.
A board that came back running anything else is an infrastructure error (DeployFailed),
never a silent pass over the wrong kernel. Modules are not installed: the suite loads
bpf_testmod.ko from its work dir, and the board's own /lib/modules is left alone.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.btf.load import btf_bytes
from harness.kbuild.artifacts import BuildArtifacts
from harness.targets.base import BOOT_ID, TargetIdentity
from harness.targets.ssh import BoardUnreachable, SshTarget

HOOK_TIMEOUT = 600.0
PROBE_TIMEOUT = 3.0  # a kernel that is going away stops answering; no need to wait long
KEXEC_DELAY = 0.5  # lets the detaching SSH command return before the kernel goes


class DeployFailed(BoardUnreachable):
    """The board did not end up running the build: kexec refused it, the hook failed,
    it did not come back, or it came back on another kernel. An infra error."""


@dataclass(frozen=True)
class Deployment:
    """What a deploy did and how long each part took."""

    identity: TargetIdentity
    method: str  # "kexec" or the hook command
    upload_seconds: float
    reboot_seconds: float  # from the jump (or power cycle) to SSH answering again


def build_btf_sha256(vmlinux: Path | str) -> str:
    """SHA-256 of the build's .BTF: the bytes a kernel serves at /sys/kernel/btf/vmlinux."""
    return hashlib.sha256(btf_bytes(vmlinux)).hexdigest()


def _say_nothing(_line: str) -> None:
    pass


def deploy(target: SshTarget, build: BuildArtifacts,
           say: Callable[[str], None] = _say_nothing) -> Deployment:
    """Boot `build` on the connected board `target` and verify it (module docstring)."""
    board = target.board
    expected = build_btf_sha256(build.vmlinux)
    before = target.ask(f"cat {BOOT_ID}", timeout=board.command_timeout).strip()
    started = time.monotonic()
    if board.deploy == "kexec":
        remote = f"{target.workdir}/{build.boot_image.name}"
        say(f"{board.name}: uploading {build.boot_image.name} "
            f"({build.boot_image.stat().st_size // 1024} KiB)")
        target.put(build.boot_image, remote, timeout=board.command_timeout)
        upload = time.monotonic() - started
        line = (f"--command-line={shlex.quote(board.cmdline)}" if board.cmdline
                else "--reuse-cmdline")
        loaded = target.run(f"kexec -s -l {shlex.quote(remote)} {line}",
                            timeout=board.command_timeout)
        if loaded.rc != 0:
            detail = (loaded.err.strip() or loaded.out.strip() or "no output").splitlines()
            raise DeployFailed(f"board {board.name}: kexec -s -l refused the image "
                               f"(rc {loaded.rc}): {detail[-1][:200]}")
        say(f"{board.name}: kexec into {build.kernel_release}")
        jumped = time.monotonic()
        target.detach(f"sleep {KEXEC_DELAY}; kexec -e")
        method = "kexec"
    else:
        upload, jumped, method = _run_hook(target, build), time.monotonic(), board.deploy
    target.reconnect(board.boot_timeout, why=method, ready=lambda: _new_boot(target, before))
    reboot = time.monotonic() - jumped
    identity = target.identity(timeout=board.command_timeout)
    if identity.btf_sha256 != expected or identity.release != build.kernel_release:
        raise DeployFailed(
            f"board {board.name} came back on another kernel after {method}: "
            f"{identity.release} BTF {identity.btf_sha256[:12]}, the build is "
            f"{build.kernel_release} BTF {expected[:12]}")
    say(f"{board.name}: running {identity.release}, BTF {expected[:12]} "
        f"(back in {reboot:.1f} s)")
    return Deployment(identity, method, upload, reboot)


def _run_hook(target: SshTarget, build: BuildArtifacts) -> float:
    """The board's deploy hook on this host, then its power cycle; seconds taken."""
    board = target.board
    started = time.monotonic()
    command = board.deploy.format(image=shlex.quote(str(build.boot_image)),
                                  modules=shlex.quote(str(build.modules_dir)))
    cycle = board.power_cycle or (board.reboot if board.reboot != "ssh" else None)
    if cycle is None:
        raise DeployFailed(f"board {board.name}: a deploy hook needs power_cycle "
                           "(or a reboot command) to boot what it wrote")
    for what, line in (("deploy hook", command), ("power cycle", cycle)):
        try:
            proc = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True,
                                  timeout=HOOK_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise DeployFailed(f"board {board.name}: {what} did not finish within "
                               f"{HOOK_TIMEOUT:g} s") from None
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
            raise DeployFailed(f"board {board.name}: {what} failed "
                               f"(rc {proc.returncode}): {tail[-1][:200]}")
    return time.monotonic() - started


def _new_boot(target: SshTarget, before: str) -> bool:
    """True once the board answering is not the boot we left (kexec'd or power cycled):
    reconnect() asks this on each new connection, and the wait ends on a new boot id."""
    try:
        return target.ask(f"cat {BOOT_ID}", timeout=PROBE_TIMEOUT).strip() != before
    except BoardUnreachable:
        return False
