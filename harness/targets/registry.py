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


def _local(kernel: Any, arch: str | None, **options: Any) -> Target:
    """The host itself; `kernel` is ignored (commands run on whatever the host runs)."""
    from harness.targets.local import LocalTarget

    return LocalTarget(arch, **options)


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
