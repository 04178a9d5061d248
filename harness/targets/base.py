"""The transport-neutral target protocols: what QEMU guests, SSH boards and fakes offer.

Small separate protocols (commands, file transfer, boot/identity, console), as labgrid
splits its drivers, so a caller can ask for only what it uses and a new transport can be
checked piece by piece; `Target` composes all four and is what the program runner takes,
so a board reached over SSH can replace a QEMU guest without the runner knowing.
"""

from __future__ import annotations

import atexit
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from harness.targets.errors import TargetError


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


@dataclass(frozen=True)
class TargetIdentity:
    """Which kernel a target runs: `uname -r` and the SHA-256 of its /sys/kernel/btf/vmlinux.

    A rebuilt kernel keeps its release string but not its BTF, so the hash is what tells
    two builds apart (the BTF is what the verifier checks kfunc calls against).
    """

    release: str
    btf_sha256: str


BTF_PATH = "/sys/kernel/btf/vmlinux"
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # new at every boot, kexec included
# Computed on the target with its own shell and sha256sum, so a board needs nothing else.
# rc 3 = no BTF file (kept apart from a missing sha256sum or a failing uname).
_IDENTITY_SCRIPT = (
    f"uname -r || exit 1; [ -e {BTF_PATH} ] || exit 3; sha256sum < {BTF_PATH}"
)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def identity_scripts(path: str) -> tuple[str, str]:
    """(precompute, read): a target with a spare CPU hashes its BTF once as it comes up
    and writes the identity's lines to `path`; the read prints them with shell builtins
    (no exec) when the file ends in its `ok` line, and computes them as
    read_identity does when it does not (not written yet, half written, no spare CPU).
    Under TCG the hash and its two execs cost 0.16 s of a fresh guest's 2.6 s."""
    precompute = f"({_IDENTITY_SCRIPT}&&echo ok)>{path}"
    read = (f"{{ read -r a;read -r b;read -r c;}} 2>/dev/null <{path};"
            f"[ \"$c\" = ok ]&&printf '%s\\n%s\\n' \"$a\" \"$b\"||({_IDENTITY_SCRIPT})")
    return precompute, read


def read_identity(target: CommandProtocol, timeout: float = 60.0,
                  script: str = _IDENTITY_SCRIPT) -> TargetIdentity:
    """A target's identity through its own command channel (one command, parsed here).
    `script`: identity_scripts()'s read where the target precomputes it."""
    result = target.run(script, timeout=timeout)
    if result.rc == 3:
        raise TargetError(
            f"target has no {BTF_PATH} (kernel built without CONFIG_DEBUG_INFO_BTF?)"
        )
    lines = result.out.splitlines()
    digest = lines[1].split()[0] if len(lines) > 1 and lines[1].split() else ""
    if result.rc != 0 or not lines[0].strip() or not _SHA256_HEX.fullmatch(digest):
        detail = (result.err.strip() or result.out.strip() or "no output").splitlines()[-1]
        raise TargetError(
            f"cannot read the target's identity (uname -r, sha256sum {BTF_PATH}): "
            f"rc {result.rc}: {detail[:200]}"
        )
    return TargetIdentity(release=lines[0].strip(), btf_sha256=digest)


@runtime_checkable
class CommandProtocol(Protocol):
    """Runs shell commands: the one thing every target must do."""

    arch: str

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        """Run `cmd` through the target's POSIX shell; raise on hang or splat, not on rc.

        A hang raises CommandTimeout; whether the target survives it is the
        implementation's (QEMU stops the guest: reboot() or start() again). For a long
        command whose output is wanted as it comes, harness.targets.background.spawn().
        """
        ...


@runtime_checkable
class FileTransferProtocol(Protocol):
    """Moves whole files; a relative remote path is relative to the commands' cwd."""

    def put(self, local: Path | str, remote: str, timeout: float = 60.0) -> None:
        """Copy a host file to `remote` on the target (parent directory must exist)."""
        ...

    def get(self, remote: str, local: Path | str, timeout: float = 60.0) -> None:
        """Copy a target file to `local` on the host; a missing `remote` raises a
        TargetError subclass naming it, and the target stays usable."""
        ...


@runtime_checkable
class RemoteShell(CommandProtocol, FileTransferProtocol, Protocol):
    """Commands and files: all the program runner needs of a started target."""


@runtime_checkable
class BootProtocol(Protocol):
    """Brings a target up and down; says which kernel it runs."""

    boot_seconds: float | None  # how long the last start() took; None before one

    def start(self) -> Self:
        """Bring the target up; a no-op when it is up, a fresh start after close()."""
        ...

    def identity(self, timeout: float = 60.0) -> TargetIdentity:
        """The running kernel's release and BTF hash (see TargetIdentity)."""
        ...

    def close(self) -> None:
        """Stop the target and everything started for it; safe to call twice."""
        ...

    def processes(self) -> list[tuple[int, str]]:
        """(pid, name) of host processes still running for this target (leak checks)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class ConsoleProtocol(Protocol):
    """Kernel console text, for splat reports and failure excerpts."""

    def console(self) -> str:
        """Kernel console text seen so far ("" where there is none to see)."""
        ...


def console_text(console: Callable[[], str]) -> str:
    """What `console` (a target's console method) returns, or "" once the target is dead:
    blame and crash reports read it after the failure that may have taken it down."""
    try:
        return console()
    except Exception:  # noqa: BLE001 - a dead target's console may be gone
        return ""


@runtime_checkable
class Target(CommandProtocol, FileTransferProtocol, BootProtocol, ConsoleProtocol, Protocol):
    """A machine that runs commands and moves files; closing it releases everything.

    Every call has a hard timeout; a hang or a kernel splat raises a TargetError subclass
    (CommandTimeout, KernelPanic, KernelSplat, ...), never blocks forever.
    """

    def reboot(self) -> None:
        """Start over from a fresh boot; the command channel is usable again afterwards."""
        ...


_LIVE: weakref.WeakSet[Lifecycle] = weakref.WeakSet()


@atexit.register
def _close_live_targets() -> None:
    """No guest or process outlives the harness, whatever path the interpreter exits by."""
    for target in list(_LIVE):
        target.close()


class Lifecycle:
    """What every implementation shares: `with` starts and closes, and a started target
    is closed at interpreter exit. Subclasses call _started()/_closed() and define
    start() and close()."""

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _started(self) -> None:
        _LIVE.add(self)

    def _closed(self) -> None:
        _LIVE.discard(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
