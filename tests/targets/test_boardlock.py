"""Board locks: concurrent claimers never share a board; a killed holder's lock is taken
over; `harness lab status` names the holder (real processes, real flock)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.targets.boardlock import BoardBusy, BoardLock, holder, last_result, record_result

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _claimer(log: Path, hold: float, board: str = "loop") -> list[str]:
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from harness.targets.boardlock import BoardLock
        with BoardLock({board!r}, purpose="test", timeout=60, poll=0.01):
            start = time.monotonic()
            time.sleep({hold})
            with open({str(log)!r}, "a") as f:
                f.write(f"{{start}} {{time.monotonic()}}\\n")
    """)
    return [sys.executable, "-c", code]


def test_three_concurrent_claimers_never_share_the_board(tmp_path: Path) -> None:
    log = tmp_path / "held.txt"
    procs = [subprocess.Popen(_claimer(log, 0.3), env=os.environ.copy()) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    spans = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans


def test_a_killed_holders_lock_is_taken_over(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(_claimer(tmp_path / "never.txt", 1000), env=os.environ.copy())
    deadline = time.monotonic() + 30
    held = holder("loop")
    while (held is None or held.pid == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
        held = holder("loop")
    assert held is not None and held.pid == sleeper.pid and held.purpose == "test"
    with pytest.raises(BoardBusy, match=f"board loop is held by .*pid {sleeper.pid}"):
        BoardLock("loop", timeout=0.2).acquire()
    os.kill(sleeper.pid, signal.SIGKILL)
    sleeper.wait(timeout=10)
    assert holder("loop") is None  # its holder file is stale: the flock went with it
    with BoardLock("loop", purpose="after", timeout=5) as lock:
        now = holder("loop")
        assert now is not None and now.pid == os.getpid() and now.purpose == "after"
        assert lock.board == "loop"
    assert holder("loop") is None


def test_lab_status_names_the_holder(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    lab = tmp_path / "lab.toml"
    lab.write_text("[[board]]\nname='loop'\narch='x86_64'\nhost='127.0.0.1'\n"
                   "[[board]]\nname='spare'\narch='arm64'\nhost='127.0.0.2'\n")
    with BoardLock("loop", purpose="harness run"):
        assert main(["lab", "status", "--lab", str(lab)]) == 0
        out = capsys.readouterr().out
        assert "harness run" in out and f"pid {os.getpid()}" in out
        assert main(["lab", "status", "--lab", str(lab), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
    assert rows[0]["holder"]["pid"] == os.getpid() and rows[1]["holder"] is None
    assert rows[0]["last"] is None
    record_result("loop", "80 pass")
    assert main(["lab", "status", "--lab", str(lab)]) == 0
    assert "loop             free; last run " in capsys.readouterr().out
    assert last_result("loop")[1] == "80 pass"  # type: ignore[index]


def test_a_board_target_holds_the_lock_from_before_it_connects(tmp_path: Path) -> None:
    """A board another runner holds is BoardBusy before any connection is tried; one that
    cannot be reached leaves its lock free again."""
    from harness.targets.board import BoardTarget
    from harness.targets.inventory import load_inventory
    from harness.targets.ssh import BoardUnreachable
    from tests.targets.sshd import free_port

    lab = tmp_path / "lab.toml"
    lab.write_text(f"[[board]]\nname='loop'\narch='x86_64'\nhost='127.0.0.1'\n"
                   f"port={free_port()}\nconnect_timeout=2\n")
    (board,) = load_inventory(lab)
    with BoardLock("loop", purpose="other runner"), \
            pytest.raises(BoardBusy, match="held by .*other runner"):
        BoardTarget(board, None, lock_timeout=0).start()
    with pytest.raises(BoardUnreachable, match="connection refused"):
        BoardTarget(board, None, lock_timeout=0).start()
    assert holder("loop") is None
