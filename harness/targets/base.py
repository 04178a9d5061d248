"""The transport-neutral target protocol: what QEMU guests and SSH boards both offer.

The program runner only talks to this protocol, so a board reached over SSH can replace
a QEMU guest without the runner knowing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable


@dataclass(frozen=True)
class CommandResult:
    """One finished command: exit status, raw output and wall time seen by the host."""

    rc: int
    stdout: bytes
    stderr: bytes
    duration: float

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def out(self) -> str:
        """stdout decoded for humans (invalid UTF-8 replaced, never raised)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


@runtime_checkable
class Target(Protocol):
    """A machine that runs commands and moves files; closing it releases everything.

    Every call has a hard timeout; a hang or a kernel splat raises a TargetError subclass
    (CommandTimeout, KernelPanic, KernelSplat, ...), never blocks forever.
    """

    arch: str

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        """Run `cmd` through the target's POSIX shell; raise on hang or splat, not on rc."""
        ...

    def put(self, local: Path | str, remote: str, timeout: float = 60.0) -> None:
        """Copy a host file to `remote` on the target (parent directory must exist)."""
        ...

    def get(self, remote: str, local: Path | str, timeout: float = 60.0) -> None:
        """Copy a target file to `local` on the host."""
        ...

    def console(self) -> str:
        """Kernel console text seen so far (for splat reports and failure excerpts)."""
        ...

    def reboot(self) -> None:
        """Start over from a fresh boot; the command channel is usable again afterwards."""
        ...

    def close(self) -> None:
        """Stop the target and everything started for it; safe to call twice."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
