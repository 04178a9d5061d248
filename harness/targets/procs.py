"""Process bookkeeping for guests: tag, find, count and kill everything a target started.

QEMU is a great-grandchild of the `vng` we spawn (vng -> virtme-run -> qemu, plus a
virtiofsd started through os.system), so killing one pid is not enough. Every target's
processes are started in a new session and carry an environment marker; cleanup kills the
process group and then anything still carrying the marker (a child that left the group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from harness.procs import signal_group

MARKER_ENV = "HARNESS_TARGET_ID"
GUEST_PROCESS_NAMES = ("qemu-system-", "virtiofsd")


def _comm_and_cmdline(pid: int) -> tuple[str, str] | None:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode("utf-8", "replace")
        )
    except OSError:
        return None
    return comm, cmdline


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ... (None if gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z"


def parent_pid(pid: int) -> int | None:
    """The parent's pid (1 for an orphan), None if the process is gone."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def marker_of(pid: int) -> str | None:
    """The target marker in a process's environment, if it carries one."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{MARKER_ENV}=".encode()
    for item in env.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def _has_marker(pid: int, marker: str) -> bool:
    return marker_of(pid) == marker


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]


def child_pids(pid: int) -> list[int]:
    """Live processes whose parent is `pid`."""
    return [p for p in _pids() if parent_pid(p) == pid]


def marked_pids(marker: str) -> list[int]:
    """Live (non-zombie) processes carrying this target's marker."""
    return [p for p in _pids() if _has_marker(p, marker) and not _is_zombie(p)]


def guest_processes(marker: str | None = None) -> list[tuple[int, str]]:
    """(pid, comm) of live qemu-system-* and virtiofsd processes, optionally one target's."""
    found = []
    for pid in _pids():
        names = _comm_and_cmdline(pid)
        if names is None or _is_zombie(pid):
            continue
        comm, cmdline = names
        argv0 = os.path.basename(cmdline.split(" ", 1)[0])
        if not any(comm.startswith(n) or argv0.startswith(n) for n in GUEST_PROCESS_NAMES):
            continue
        if marker is not None and not _has_marker(pid, marker):
            continue
        found.append((pid, comm))
    return found


def kill_tree(pgid: int | None, marker: str, grace: float = 0.0) -> None:
    """Kill the process group and every marked process; wait until none is left alive."""
    if grace > 0 and pgid is not None:
        signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and marked_pids(marker):
            time.sleep(0.05)
    for _ in range(50):
        if pgid is not None:
            signal_group(pgid, signal.SIGKILL)
        left = marked_pids(marker)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not left:
            return
        time.sleep(0.05)
