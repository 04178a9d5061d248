"""Target failures, each a HarnessError whose message is one line the CLI can print."""

from __future__ import annotations

from harness.errors import HarnessError


class TargetError(HarnessError):
    """Something went wrong reaching, booting or driving a target."""


class TargetSetupError(TargetError):
    """The host lacks what a target needs (udev, a kernel image, a root filesystem)."""


class RootfsBuildError(TargetError):
    """Building a guest root filesystem failed; nothing was cached."""


class BootFailed(TargetError):
    """The target stopped before its command channel came up (no splat seen)."""


class BootTimeout(TargetError):
    """The kernel did not reach userspace within the boot timeout: a hang."""


class CommandTimeout(TargetError):
    """A command did not finish within its timeout: a hang; the target was stopped."""


class RemoteFileError(TargetError):
    """A put or get failed on the target's side (a missing path, no permission): the
    target is still up and usable, unlike TargetGone."""


class TargetGone(TargetError):
    """The target is no longer running (it exited, was stopped, or never started)."""


class KernelSplat(TargetError):
    """The kernel reported a panic, Oops, BUG, WARNING, KASAN, lockdep, RCU stall or hung task.

    `kind` names the first splat, `lines` holds its console lines so reports can attach them.
    """

    def __init__(
        self, kind: str, lines: list[str], context: str = "", head: str | None = None
    ) -> None:
        self.kind = kind
        self.lines = list(lines)
        if head is None:
            head = self.lines[0].strip() if self.lines else kind
        where = f" {context}" if context else ""
        super().__init__(f"kernel {kind}{where}: {head}")


class KernelPanic(KernelSplat):
    """The kernel panicked: the target is dead."""
