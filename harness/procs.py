"""Child processes, started and stopped one way: make, QEMU/virtme-ng, mmdebstrap, probes.

Every child runs in its own process group (a terminal's Ctrl-C reaches only the harness,
which then stops each group deliberately), dies with the harness even when the harness
is killed by SIGKILL (PR_SET_PDEATHSIG through `setpriv --pdeathsig`, set in the child
by an exec rather than by a Python callback between fork and exec, which CPython calls
unsafe in a process that runs threads, as the kernel build does), and is stopped as a
whole group, signal by signal with a grace period, until no member is left. This is the
one module that signals process groups.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Most polite first: make turns SIGINT into a clean stop of its jobs.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
_SETPRIV = shutil.which("setpriv")


def die_with_parent(argv: Sequence[str]) -> list[str]:
    """`argv` run so that it gets SIGTERM when the harness dies (kept across its execs)."""
    if _SETPRIV is None:  # util-linux is essential on Debian; elsewhere, best effort
        return list(argv)
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *argv]


def spawn(argv: Sequence[str], *, with_harness: bool = True, **popen: Any) -> subprocess.Popen:
    """subprocess.Popen in a new session and process group, dying with the harness.

    `with_harness=False` for a child started from a thread that ends before the child
    should: the kernel sends the death signal when the *thread* that forked it exits."""
    if with_harness:
        argv = die_with_parent(argv)
    return subprocess.Popen(list(argv), start_new_session=True, **popen)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(name))
    return members


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_group(pgid: int, signals: Sequence[int] = (signal.SIGKILL,),
               grace: float = 5.0) -> bool:
    """Send each signal in turn to the group, waiting up to `grace` seconds after each
    for every member to be gone; True when none is left."""
    for sig in signals:
        if not signal_group(pgid, sig):
            return True
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return True
            time.sleep(0.02)
            if sig == signal.SIGKILL:  # a member forked after the first one: kill it too
                signal_group(pgid, sig)
    return not group_members(pgid)


def stop(proc: subprocess.Popen, signals: Sequence[int] = STOP_SIGNALS,
         grace: float = 10.0) -> None:
    """Stop a child started by spawn() and its whole group, then reap it."""
    kill_group(proc.pid, signals, grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
