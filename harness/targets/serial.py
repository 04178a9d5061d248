"""A board's serial console, through whatever command reaches it, driven by pexpect.

Labs reach consoles many ways (`picocom -b 1500000 /dev/ttyUSB0`, `socat - TCP:host:port`,
conserver's `console NAME`), so the inventory gives a command and this runs it on a pty,
copies every byte into a per-run console log from the moment it opens (before a deploy,
so a board that dies while booting still leaves its last words), and keeps the text for
splat scans: a board whose SSH drops while its console prints a panic is reported as
that panic, with the report's lines.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pexpect

from harness.procs import kill_group
from harness.targets.errors import TargetSetupError
from harness.targets.splat import Splat, find_splats


class SerialConsole:
    """`with SerialConsole(board.console, log):` captures until closed; text() any time."""

    def __init__(self, command: str, log: Path) -> None:
        self.command = command
        self.log = log
        self._child: pexpect.spawn | None = None
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def open(self) -> SerialConsole:
        if self._child is not None:
            return self
        self.log.parent.mkdir(parents=True, exist_ok=True)
        try:
            # pexpect's child is a session leader on its own pty: kill_group reaches it all
            self._child = pexpect.spawn("/bin/sh", ["-c", self.command], timeout=None)
        except (pexpect.ExceptionPexpect, OSError) as exc:
            raise TargetSetupError(f"cannot open the console ({self.command}): {exc}") from None
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        return self

    def _pump(self) -> None:
        child = self._child
        assert child is not None
        with open(self.log, "ab") as sink:
            while True:
                try:
                    chunk = child.read_nonblocking(65536, timeout=0.2)
                except pexpect.TIMEOUT:
                    continue
                except (pexpect.EOF, OSError, ValueError):
                    return
                sink.write(chunk)
                sink.flush()
                with self._lock:
                    self._buffer.extend(chunk)

    def text(self) -> str:
        """Everything the console printed since open(), pty line endings made plain."""
        with self._lock:
            return self._buffer.decode("utf-8", "replace").replace("\r\n", "\n")

    def splats(self) -> list[Splat]:
        return find_splats(self.text())

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.isalive()

    def close(self) -> None:
        """Stop the console command (its whole session) and flush the log; safe twice."""
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill_group(child.pid, grace=2.0)
        with contextlib.suppress(Exception):
            child.close(force=True)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> SerialConsole:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
