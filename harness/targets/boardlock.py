"""One runner per board at a time: processes, pytest-xdist workers and users of a machine.

The lock is `flock` on cache/locks/board-<name>.lock. The kernel releases it when its
holder dies, even by SIGKILL, so a stale lock of a killed runner is taken over without
any guessing about pids; a `.holder` file next to it (owner, pid, host, since, purpose)
is what `harness lab status` shows, and it is trusted only while the lock is held.

Several CI machines sharing one lab need a lock the board itself holds, since a flock on
one machine is invisible to another. The design (not built yet): the same claim made on
the board over SSH with `mkdir /run/harness-lock` (atomic) holding the same holder
fields, released with `rmdir`, and taken over when its holder's host says its pid is
gone or the claim is older than the board's longest run; labgrid's coordinator is the
alternative where a lab already runs one. This module is the machine-local half.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Self

from harness.cache import atomic_write, cache_dir
from harness.targets.errors import TargetError


class BoardBusy(TargetError):
    """Another runner holds the board (an infrastructure wait, not a test failure)."""


@dataclass(frozen=True)
class Holder:
    owner: str
    pid: int
    host: str
    since: float  # time.time() when it took the board
    purpose: str

    def describe(self) -> str:
        age = time.time() - self.since
        return (f"{self.owner} (pid {self.pid} on {self.host}, {self.purpose}) "
                f"for {age:.0f} s")


def _paths(board: str) -> tuple[Path, Path]:
    root = cache_dir("locks")
    return root / f"board-{board}.lock", root / f"board-{board}.holder"


class BoardLock:
    """`with BoardLock("rock5b", purpose="harness run"):` holds the board or raises
    BoardBusy naming the holder once `timeout` seconds have passed."""

    def __init__(self, board: str, *, purpose: str = "", timeout: float = 0.0,
                 poll: float = 0.2) -> None:
        self.board = board
        self.purpose = purpose
        self.timeout = timeout
        self.poll = poll
        self._handle: IO[str] | None = None

    def acquire(self) -> Self:
        lock_path, holder_path = _paths(self.board)
        handle = open(lock_path, "a+")  # noqa: SIM115 - held until release()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    held = holder(self.board)
                    who = held.describe() if held else "another runner"
                    raise BoardBusy(f"board {self.board} is held by {who}") from None
                time.sleep(self.poll)
        self._handle = handle
        me = Holder(getpass.getuser(), os.getpid(), socket.gethostname(), time.time(),
                    self.purpose or "harness")
        atomic_write(holder_path, json.dumps(asdict(me)))
        return self

    def release(self) -> None:
        if self._handle is None:
            return
        _, holder_path = _paths(self.board)
        holder_path.unlink(missing_ok=True)
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(board: str) -> Holder | None:
    """Who holds the board now (None when free: a holder file left by a killed runner
    does not count, since its flock went with it)."""
    lock_path, holder_path = _paths(board)
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # A new holder writes its file just after taking the lock: give it a moment.
            for _ in range(20):
                with contextlib.suppress(OSError, ValueError, TypeError):
                    return Holder(**json.loads(holder_path.read_text()))
                time.sleep(0.05)
            return Holder("unknown", 0, "?", time.time(), "?")
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _result_path(board: str) -> Path:
    return cache_dir("locks") / f"board-{board}.last"


def record_result(board: str, summary: str) -> None:
    """Note a run's outcome on `board` ("80 pass", "error: BoardUnreachable: ..."), for
    `harness lab status`; written whole or not at all."""
    text = json.dumps({"when": time.time(), "summary": summary, "host": socket.gethostname()})
    atomic_write(_result_path(board), (text + "\n").encode())


def last_result(board: str) -> tuple[float, str] | None:
    """(time.time() of the run, its summary) of the last run recorded on `board`."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(_result_path(board).read_text())
        return float(data["when"]), str(data["summary"])
    return None
