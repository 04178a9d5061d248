"""Targets by name: one place that maps `--target NAME` (and tests) to an implementation.

Factories import their module on first use, so naming `local` never loads QEMU code.
The target comes back unstarted: use it as a context manager or call start().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError
from harness.targets.base import Target

TargetFactory = Callable[..., Target]


def _qemu(kernel: Any, arch: str | None, **options: Any) -> Target:
    from harness.targets.qemu import QemuTarget

    if kernel is None:
        raise UsageError("the qemu target needs a kernel (build artifacts or a boot image)")
    return QemuTarget(kernel, arch, **options)


# Machine options a booted target takes and the host has no use for (warm: a command a
# booted guest runs in the background as it comes up, channel.loop_script).
_MACHINE_OPTIONS = frozenset({"memory", "cpus", "kvm", "boot_timeout", "root", "append",
                              "warm"})


def _local(kernel: Any, arch: str | None, **options: Any) -> Target:
    """The host itself; `kernel` and machine options are ignored (nothing boots)."""
    from harness.targets.local import LocalTarget

    unknown = set(options) - _MACHINE_OPTIONS
    if unknown:
        raise UsageError(f"the local target takes no {', '.join(sorted(unknown))}")
    return LocalTarget(arch)


@dataclass(frozen=True)
class TargetKind:
    """One registry entry. `boots_kernel`: the target runs the kernel it is given, so
    its verdicts judge that build (a QEMU guest, a board that is deployed to); the host
    (`local`) runs its own kernel and is only fit for protocol and runner tests."""

    factory: TargetFactory
    boots_kernel: bool
    summary: str


def _ssh(kernel: Any, arch: str | None, *, board: Any = None, **options: Any) -> Target:
    """A lab board over SSH (inventory.Board); the kernel is the board's own until
    deploy lands, so `kernel` must be None for now."""
    from harness.targets.ssh import SshTarget

    if board is None:
        raise UsageError("the ssh target needs a board from the lab inventory (board=)")
    if kernel is not None:
        raise UsageError("the ssh target cannot deploy a kernel yet: it runs the board's own")
    if arch is not None and arch != board.arch:
        raise UsageError(f"board {board.name!r} is {board.arch}, not {arch}")
    unknown = set(options) - {"known_hosts", "workdir"}
    if unknown:
        raise UsageError(f"the ssh target takes no {', '.join(sorted(unknown))}")
    return SshTarget(board, **options)


def _board(kernel: Any, arch: str | None, *, board: Any = None, deploy: bool = True,
           known_hosts: Any = None, say: Any = None, **options: Any) -> Target:
    """A lab board (inventory.Board) that gets `kernel` (BuildArtifacts) deployed at
    start(); deploy=False runs on the board's own kernel. Machine options are the
    board's hardware's, so they are ignored."""
    from harness.targets.board import BoardTarget

    if board is None:
        raise UsageError("the board target needs a board from the lab inventory (board=)")
    if kernel is not None and not hasattr(kernel, "vmlinux"):
        raise UsageError("a board is deployed from build artifacts, not a bare image")
    if arch is not None and arch != board.arch:
        raise UsageError(f"board {board.name!r} is {board.arch}, not {arch}")
    unknown = set(options) - _MACHINE_OPTIONS
    if unknown:
        raise UsageError(f"the board target takes no {', '.join(sorted(unknown))}")
    extra = {"say": say} if say is not None else {}
    return BoardTarget(board, kernel, deploy=deploy, known_hosts=known_hosts, **extra)


TARGETS: dict[str, TargetKind] = {
    "qemu": TargetKind(_qemu, True, "a QEMU guest booting the built kernel (virtme-ng)"),
    "local": TargetKind(_local, False, "this host, in a temp dir (no kernel of its own)"),
    # The raw SSH channel (protocol tests); runs use `board`, which deploys.
    "ssh": TargetKind(_ssh, False, "a lab board over SSH, running its own kernel"),
    "board": TargetKind(_board, True, "a lab board over SSH, deployed with the built "
                        "kernel (kexec or its hook) and verified by BTF hash"),
}


def kernel_targets() -> list[str]:
    """Names of the targets that boot the kernel they are given: what `--target` offers."""
    return [name for name, kind in TARGETS.items() if kind.boots_kernel]


def check_kernel_target(name: str) -> None:
    """UsageError unless `name` is a registered target that boots the given kernel."""
    kind = TARGETS.get(name)
    if kind is None or not kind.boots_kernel:
        why = f"({kind.summary}) does not boot it" if kind else "is not a known target"
        raise UsageError(f"target {name!r} {why}; a run needs one that boots the built "
                         f"kernel ({', '.join(kernel_targets())})")


def open_target(
    name: str, kernel: Any = None, arch: str | None = None, **options: Any
) -> Target:
    """An unstarted target of kind `name` for `kernel` (artifacts or a boot image)."""
    kind = TARGETS.get(name)
    if kind is None:
        known = ", ".join(sorted(TARGETS))
        raise UsageError(f"unknown target {name!r} (known: {known})")
    return kind.factory(kernel, arch, **options)
