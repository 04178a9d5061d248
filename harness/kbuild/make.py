"""Run make with a progress bar and a full log; turn failures into one useful line."""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from harness import procs
from harness.errors import HarnessError

T = TypeVar("T")

# kbuild's quiet lines: "  CC      kernel/bpf/core.o"
_STEP = re.compile(r"^  ([A-Z][A-Z0-9_-]*)\s+(\S.*)$")


class MakeError(HarnessError):
    """make failed; the message carries the first error line and the log path."""


class Progress:
    """objects done / expected on one terminal line (plain lines every 10% otherwise)."""

    def __init__(self, label: str, expected: int, stream=sys.stderr) -> None:
        self.label = label
        self.expected = max(expected, 1)
        self.done = 0
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1

    def step(self, what: str) -> None:
        self.done += 1
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= 0.2:
                self._last_draw = now
                self._draw(what)
        else:
            decile = min(self.done * 10 // self.expected, 9)
            if decile > self._last_decile:
                self._last_decile = decile
                print(f"harness: {self.label}: {self.done}/{self.expected} objects "
                      f"({int(now - self.started)} s)", file=self.stream, flush=True)

    def _draw(self, what: str) -> None:
        shown = min(self.done, self.expected)
        width = 30
        filled = width * shown // self.expected
        bar = "#" * filled + "." * (width - filled)
        elapsed = int(time.monotonic() - self.started)
        line = f"\r{self.label} [{bar}] {self.done}/{self.expected} {elapsed:4d}s {what[:40]}"
        self.stream.write(line.ljust(100)[:120])
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()


def _first_error(lines: list[str]) -> str:
    for pattern in (r"No space left on device", r"error:", r"Error \d+", r"\*\*\*"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return lines[-1].strip() if lines else "no output"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`timeout`, CI runners and xdist stop us with SIGTERM: unwind like Ctrl-C so make's
    process group is stopped and the build lock released only after it is gone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Overlapped(Generic[T]):
    """Work that runs makes on a thread while the caller does something else.

    The makes run in their own process groups, out of the terminal's Ctrl-C, so each
    one registers here (run_make's `owner`) and cancel() can stop the one running.
    result() joins and re-raises the work's own error.
    """

    def __init__(self, work: Callable[[Overlapped[T]], T]) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._cancelled = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[Overlapped[T]], T]) -> None:
        try:
            self._value = work(self)
        except BaseException as error:  # handed to result()
            self._error = error

    def started(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._proc = proc
            cancelled = self._cancelled
        if cancelled:
            _stop(proc)

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def cancel(self) -> None:
        """Stop the running make and wait for the thread (its error is dropped)."""
        with self._lock:
            self._cancelled = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            _stop(proc)
        self._thread.join(timeout=60)


def run_make(cmd: list[str], log: Path, progress: Progress | None, cwd: Path,
             env: dict[str, str] | None = None, owner: Overlapped | None = None) -> int:
    """Run `cmd`, appending all output to `log`; returns the number of kbuild steps seen.

    On failure raises MakeError naming the first error line and the log. Ctrl-C stops
    make's whole process group before re-raising, so nothing keeps compiling; a make
    run for an Overlapped `owner` is stopped by its cancel().
    """
    steps = 0
    tail: deque[str] = deque(maxlen=400)
    with open(log, "a") as out, _sigterm_as_interrupt():
        out.write(f"$ {shlex.join(cmd)}\n")
        out.flush()
        proc = procs.spawn(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", env=env)
        if owner is not None:
            owner.started(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                tail.append(line.rstrip("\n"))
                match = _STEP.match(line)
                if match:
                    steps += 1
                    if progress:
                        progress.step(match.group(2))
            rc = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        finally:
            if progress:
                progress.close()
    if rc != 0:
        lines = list(tail)
        reason = _first_error(lines)
        if "No space left on device" in reason:
            reason = "disk full (No space left on device)"
        excerpt = "\n".join("    " + ln for ln in lines[-15:])
        raise MakeError(f"{cmd[0]} failed: {reason}\n  last lines:\n{excerpt}\n  full log: {log}")
    return steps


def _stop(proc: subprocess.Popen) -> None:
    """make's whole group: SIGINT (make stops its jobs cleanly), then TERM, then KILL."""
    procs.stop(proc)
