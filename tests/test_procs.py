"""harness.procs: children in their own group, gone after a kill, a Ctrl-C, and after the
harness itself dies by SIGKILL (real processes, real signals)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import procs
from tests.helpers.terminal import default_sigint

ROOT = Path(__file__).resolve().parents[1]
# A child that forks a grandchild, and kills its whole group when it gets SIGTERM (as
# make and vng's QEMU do with theirs).
TREE = 'trap "kill -KILL 0" TERM; sleep 1000 & echo $!; wait'


def _gone(pgid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not procs.group_members(pgid):
            return True
        time.sleep(0.05)
    return False


def test_spawn_runs_in_its_own_group_with_a_parent_death_signal() -> None:
    script = ("import ctypes; v = ctypes.c_int(); "
              "ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(v.value)")  # PR_GET_PDEATHSIG
    proc = procs.spawn([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert int(out) == signal.SIGTERM
    sleeper = procs.spawn(["sleep", "1000"])
    assert os.getpgid(sleeper.pid) == sleeper.pid != os.getpgid(0)
    procs.stop(sleeper)
    assert sleeper.returncode is not None and procs.group_members(sleeper.pid) == []


def test_kill_group_takes_the_grandchild_too() -> None:
    proc = procs.spawn(["sh", "-c", "sleep 1000 & sleep 1000"])
    time.sleep(0.2)
    assert len(procs.group_members(proc.pid)) == 3  # sh and two sleeps
    assert procs.kill_group(proc.pid, (signal.SIGTERM, signal.SIGKILL), grace=2)
    proc.wait(timeout=5)
    assert procs.group_members(proc.pid) == []


def _harness_like(tmp_path: Path) -> subprocess.Popen:
    """A Python process standing in for the harness: spawns TREE, waits, and on Ctrl-C
    stops it as the harness's handlers do."""
    script = tmp_path / "harness_like.py"
    script.write_text(textwrap.dedent(f"""
        import subprocess, sys
        sys.path.insert(0, {str(ROOT)!r})
        from harness import procs
        child = procs.spawn(["sh", "-c", {TREE!r}], stdout=subprocess.PIPE, text=True)
        try:  # the pids are printed inside: a Ctrl-C right after them is handled too
            print(child.pid, child.stdout.readline().strip(), flush=True)
            child.wait()
        except KeyboardInterrupt:
            procs.stop(child)
            print("harness: interrupted", file=sys.stderr)
            sys.exit(130)
    """))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint)


def test_ctrl_c_stops_child_and_grandchild(tmp_path: Path) -> None:
    harness = _harness_like(tmp_path)
    assert harness.stdout is not None
    child, grandchild = map(int, harness.stdout.readline().split())
    os.killpg(harness.pid, signal.SIGINT)  # the terminal's Ctrl-C: the harness's group only
    _, err = harness.communicate(timeout=30)
    assert harness.returncode == 130 and "interrupted" in err
    assert _gone(child)
    assert not Path(f"/proc/{grandchild}").exists() or procs.group_members(child) == []


def test_sigkill_of_the_harness_still_stops_child_and_grandchild(tmp_path: Path) -> None:
    """No handler runs in a SIGKILLed harness: PR_SET_PDEATHSIG sends the child SIGTERM,
    and the child takes its group down."""
    harness = _harness_like(tmp_path)
    assert harness.stdout is not None
    child, _grandchild = map(int, harness.stdout.readline().split())
    assert len(procs.group_members(child)) == 2
    harness.kill()
    harness.wait(timeout=10)
    assert _gone(child), procs.group_members(child)


def test_one_module_signals_groups_and_none_uses_preexec_fn() -> None:
    sources = {p: p.read_text() for p in (ROOT / "harness").rglob("*.py")}
    assert [str(p.relative_to(ROOT)) for p, text in sources.items()
            if re.search(r"\bkillpg\(", text)] == ["harness/procs.py"]
    assert not [p for p, text in sources.items() if "preexec_fn" in text]


@pytest.mark.parametrize("argv", [["true"], ["sh", "-c", "exit 3"]])
def test_exit_status_is_the_commands(argv: list[str]) -> None:
    proc = procs.spawn(argv)
    assert proc.wait(timeout=10) == (0 if argv == ["true"] else 3)
