"""A fake in-process target: commands run in this host's shell in a private temp dir.

It exists so runner and session code can be tested in the fast tier without a kernel:
it keeps the Target contract (exact exit status and output bytes, a per-command timeout
that raises CommandTimeout, put/get, identity, close safe twice) but boots nothing.
Output goes to files, not pipes, and only the shell is waited for, as in the QEMU
guest's command loop: a command's background children do not hold its answer back.
Every process carries this target's marker (procs.MARKER_ENV), so close() and
processes() find them even after they leave the command's process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Self

from harness.arch import host, lookup
from harness.procs import kill_group, spawn
from harness.targets import procs
from harness.targets.base import CommandResult, Lifecycle, TargetIdentity, read_identity
from harness.targets.errors import CommandTimeout, RemoteFileError, TargetGone


def _one_line(remote: str) -> str:
    """The same rule the QEMU channel applies, so callers cannot rely on more here."""
    if "\n" in remote or not remote.strip():
        raise ValueError(f"remote path {remote!r} must be one non-empty line")
    return remote


class LocalTarget(Lifecycle):
    """This host as a target, confined to a temp dir; implements harness.targets.base.Target.

    arch: reported architecture (default: the host's). Nothing is isolated but the cwd
    and HOME: commands run as this user on this kernel.
    """

    def __init__(self, arch: str | None = None) -> None:
        self.arch = lookup(arch).name if arch else host().name
        self._dir: Path | None = None
        self._marker = uuid.uuid4().hex
        self.boot_seconds: float | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Make the private dir (a new, empty one after close()); no-op when running."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="harness-local-"))
            self._started()
            self.boot_seconds = 0.0  # nothing boots: the host is already up
        return self

    def close(self) -> None:
        """Kill every process this target started and remove its dir; safe twice."""
        procs.kill_tree(None, self._marker)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._closed()

    def reboot(self) -> None:
        """Nothing to reboot; starts the target again if it was closed."""
        self.start()

    @property
    def running(self) -> bool:
        return self._dir is not None

    @property
    def workdir(self) -> Path:
        """The commands' cwd and HOME, where relative remote paths resolve."""
        if self._dir is None:
            raise TargetGone("the local target is not running (start() or reboot() first)")
        return self._dir

    def processes(self) -> list[tuple[int, str]]:
        """(pid, comm) of processes this target started that are still alive."""
        found = []
        for pid in procs.marked_pids(self._marker):
            with contextlib.suppress(OSError):
                found.append((pid, Path(f"/proc/{pid}/comm").read_text().strip()))
        return found

    # -- Target protocol ---------------------------------------------------------------

    def console(self) -> str:
        return ""

    def identity(self, timeout: float = 60.0) -> TargetIdentity:
        """This host's `uname -r` and BTF hash (computed by its own shell, as on a board)."""
        return read_identity(self, timeout)

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        workdir = self.workdir
        env = dict(os.environ, HOME=str(workdir), **{procs.MARKER_ENV: self._marker})
        start = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = spawn(
                ["/bin/sh", "-c", cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env=env,
            )
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                proc.wait()
                raise CommandTimeout(
                    f"hang: command {cmd[:60]!r} did not finish within {timeout:g} s; "
                    "its process group was killed"
                ) from None
            except BaseException:  # Ctrl-C while waiting: leave nothing running
                kill_group(proc.pid)
                proc.wait()
                raise
            duration = time.monotonic() - start
            out.seek(0)
            err.seek(0)
            return CommandResult(rc, out.read(), err.read(), duration)

    def put(self, local: Path | str, remote: str, timeout: float = 60.0) -> None:
        """Copy a host file in, keeping its permission bits (as the QEMU channel does)."""
        data = Path(local).read_bytes()
        mode = Path(local).stat().st_mode & 0o777
        dest = self._resolve(remote)
        try:
            dest.write_bytes(data)
            dest.chmod(mode)
        except OSError as exc:
            raise RemoteFileError(f"put {remote} failed: {exc.strerror or exc}") from None

    def get(self, remote: str, local: Path | str, timeout: float = 60.0) -> None:
        try:
            data = self._resolve(remote).read_bytes()
        except OSError as exc:
            raise RemoteFileError(f"get {remote} failed: {exc.strerror or exc}") from None
        Path(local).write_bytes(data)

    # -- internals -----------------------------------------------------------------------

    def _resolve(self, remote: str) -> Path:
        return self.workdir / _one_line(remote)  # an absolute remote replaces workdir
