"""Targets by name: one place that maps `--target NAME` (and tests) to an implementation.

Factories import their module on first use, so naming `local` never loads QEMU code.
The target comes back unstarted: use it as a context manager or call start().
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.errors import UsageError
from harness.targets.base import Target

TargetFactory = Callable[..., Target]


def _qemu(kernel: Any, arch: str | None, **options: Any) -> Target:
    from harness.targets.qemu import QemuTarget

    if kernel is None:
        raise UsageError("the qemu target needs a kernel (build artifacts or a boot image)")
    return QemuTarget(kernel, arch, **options)


# Machine options a booted target takes and the host has no use for.
_MACHINE_OPTIONS = frozenset({"memory", "cpus", "kvm", "boot_timeout", "root", "append"})


def _local(kernel: Any, arch: str | None, **options: Any) -> Target:
    """The host itself; `kernel` and machine options are ignored (nothing boots)."""
    from harness.targets.local import LocalTarget

    unknown = set(options) - _MACHINE_OPTIONS
    if unknown:
        raise UsageError(f"the local target takes no {', '.join(sorted(unknown))}")
    return LocalTarget(arch)


TARGETS: dict[str, TargetFactory] = {"qemu": _qemu, "local": _local}


def open_target(
    name: str, kernel: Any = None, arch: str | None = None, **options: Any
) -> Target:
    """An unstarted target of kind `name` for `kernel` (artifacts or a boot image)."""
    factory = TARGETS.get(name)
    if factory is None:
        known = ", ".join(sorted(TARGETS))
        raise UsageError(f"unknown target {name!r} (known: {known})")
    return factory(kernel, arch, **options)
