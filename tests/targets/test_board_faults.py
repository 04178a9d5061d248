"""Lab faults on a loopback board, through `harness run --board` as a user runs it.

Each fault ends as one line on stderr naming the board, a non-zero exit within the
board's timeouts, the board lock released and no process of the run left behind (its
console reader included). Each test boots a board of its own: the faults break it.
Wrong/changed host keys and a wrong user or key are refused the same way against a
real sshd in tests/targets/test_ssh.py (fast tier).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.targets import loopback
from harness.targets.boardlock import holder
from harness.targets.errors import TargetError
from harness.targets.ssh import SshTarget
from tests.helpers.terminal import default_sigint
from tests.targets.loopback_fixtures import inventory_board, powered_board, unique_name

pytestmark = pytest.mark.guest
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def board(board_build: BuildArtifacts, tmp_path: Path) -> Iterator[loopback.LoopbackBoard]:
    with powered_board(tmp_path / "board", board_build, boot_timeout=60) as made:
        yield made


class _Run:
    """`python -m harness ARGS` in its own session, its output collected as it comes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT,
                                     text=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=default_sigint)
        self.out: list[str] = []
        self.err: list[str] = []
        self._pumps = [threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
                       for stream, sink in ((self.proc.stdout, self.out),
                                            (self.proc.stderr, self.err))]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.out):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {text!r} from harness: {self.out[-3:]} {self.err[-3:]}")
            time.sleep(0.1)

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"harness did not finish within {timeout:g} s")
        for pump in self._pumps:
            pump.join(timeout=5)
        err = "\n".join(self.err)
        assert "Traceback" not in err, err  # one line per failure, never a traceback
        return self.proc.returncode, err


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("harness: error:")]


def _left_behind(board: loopback.LoopbackBoard) -> list[str]:
    """Processes of ours still reading the board's console (the run's `tail -F`)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(board.console_log) in cmd and "tail" in cmd:
            found.append(f"{pid}: {cmd.strip()}")
    return found


def _run_on(board: loopback.LoopbackBoard, *extra: str) -> _Run:
    return _Run("run", "--board", board.name, "--lab", str(board.lab_toml), *extra)


def _clean(board: loopback.LoopbackBoard) -> None:
    assert holder(board.name) is None
    assert _left_behind(board) == []


def test_sshd_killed_mid_suite(board: loopback.LoopbackBoard) -> None:
    with SshTarget(inventory_board(board)) as target:
        target.detach("sleep 12; pkill -KILL -x sshd")
    started = time.monotonic()
    rc, err = _run_on(board, "--no-deploy").finish(timeout=120)
    assert rc == 1, err
    (line,) = _errors(err)
    print(line)  # for the record: pytest -rP shows it
    assert re.search(rf"BoardUnreachable: .*board {board.name}", line), line
    assert time.monotonic() - started < 90
    _clean(board)


def test_nothing_listening(board_build: BuildArtifacts, tmp_path: Path) -> None:
    made = loopback.create(tmp_path / "off", board_build.boot_image,  # never powered on
                           name=unique_name())
    started = time.monotonic()
    rc, err = _run_on(made, "--no-deploy").finish(timeout=60)
    assert rc == 1
    (line,) = _errors(err)
    print(line)  # for the record: pytest -rP shows it
    assert f"board {made.name}: SSH to 127.0.0.1:{made.port} failed" in line or \
        f"cannot reach 127.0.0.1:{made.port}" in line, line
    assert time.monotonic() - started < 30
    _clean(made)


def test_board_panics_during_a_program(board: loopback.LoopbackBoard) -> None:
    with SshTarget(inventory_board(board)) as target:
        target.detach("sleep 10; echo c > /proc/sysrq-trigger")
    rc, err = _run_on(board, "--no-deploy", "-v").finish(timeout=120)
    assert rc == 1
    (line,) = _errors(err)
    print(line)  # for the record: pytest -rP shows it
    assert "KernelPanic: kernel panic" in line and "sysrq" in line.lower(), line
    _clean(board)


def test_board_does_not_come_back_after_kexec(board: loopback.LoopbackBoard) -> None:
    """A command line without virtme-ng's script: the new kernel boots, sshd never runs."""
    with SshTarget(inventory_board(board)) as target:
        cmdline = target.run("cat /proc/cmdline").out.strip()
    silent = re.sub(r"virtme\.exec=`[^`]*`", "", cmdline)
    assert silent != cmdline
    text = board.lab_toml.read_text().replace("boot_timeout = 60", "boot_timeout = 20")
    board.lab_toml.write_text(text + f"cmdline = {json.dumps(silent)}\n")
    assert inventory_board(board).cmdline == silent
    started = time.monotonic()
    rc, err = _run_on(board).finish(timeout=180)
    assert rc == 1
    (line,) = _errors(err)
    print(line)  # for the record: pytest -rP shows it
    assert "did not come back within 20 s after kexec" in line, line
    assert time.monotonic() - started < 150
    _clean(board)


def test_ctrl_c_during_a_deploy(board: loopback.LoopbackBoard) -> None:
    run = _run_on(board)
    run.wait_for(f"{board.name}: kexec into", timeout=120)
    time.sleep(1.0)  # after the jump, while the board boots the new kernel
    os.killpg(run.proc.pid, signal.SIGINT)
    stopped = time.monotonic()
    rc, err = run.finish(timeout=60)
    assert rc == 128 + signal.SIGINT, err
    assert "harness: interrupted" in err
    assert time.monotonic() - stopped < 15
    _clean(board)


def test_no_secret_reaches_a_log(board_build: BuildArtifacts, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A board whose key has a passphrase (named in lab.toml by its variable): after a run
    on it, a failing and a timed-out command, and a refused login, no log or console
    file written meanwhile holds the passphrase or a line of a private key."""
    from harness.cache import cache_dir

    secret = f"pass-{os.urandom(8).hex()}"
    monkeypatch.setenv("LOOPBACK_KEY_PASS", secret)
    started = time.time()
    made = loopback.create(tmp_path / "board", board_build.boot_image,
                           key_passphrase_env="LOOPBACK_KEY_PASS", name=unique_name())
    loopback.power_on(made)
    try:
        loopback.wait_ssh(made)
        rc, err = _run_on(made, "--no-deploy", "--only", "implicit").finish(timeout=180)
        assert rc == 0, err
        with SshTarget(inventory_board(made)) as target:
            assert target.run("echo to stderr >&2; exit 3").rc == 3
            with pytest.raises(TargetError):
                target.run("sleep 30", timeout=1)
        monkeypatch.setenv("LOOPBACK_KEY_PASS", "wrong-" + secret[::-1])
        with pytest.raises(TargetError) as refused:
            SshTarget(inventory_board(made)).start()
        assert secret[::-1] not in str(refused.value)
    finally:
        loopback.power_off(made)
    keys = [line for key in (made.client_key, made.host_key)
            for line in key.read_text().splitlines() if line and "PRIVATE KEY" not in line]
    written = [p for p in [*made.dir.rglob("*"), *cache_dir("logs").rglob("*")]
               if p.is_file() and p.stat().st_mtime >= started
               and p not in (made.client_key, made.host_key)]
    assert made.console_log in written and any("console" in str(p) for p in written
                                               if p != made.console_log)
    for path in written:
        text = path.read_text(errors="replace")
        assert secret not in text, path
        assert not any(line in text for line in keys), path


def test_wrong_host_key_user_or_key(board: loopback.LoopbackBoard, tmp_path: Path) -> None:
    """The board answers, but not to us or not as pinned: each a one-line refusal."""
    pinned = board.lab_toml.read_text()
    other = loopback.keygen(tmp_path / "other", "not-the-board")
    cases = [
        (pinned.replace(loopback.public_key(board.host_key), loopback.public_key(other)),
         "does not match the pinned one"),
        (pinned.replace('user = "root"', 'user = "nobody"'), "authentication failed"),
        (pinned.replace(json.dumps(str(board.client_key)), json.dumps(str(other))),
         "authentication failed"),
    ]
    for text, needle in cases:
        board.lab_toml.write_text(text)
        started = time.monotonic()
        rc, err = _run_on(board, "--no-deploy").finish(timeout=60)
        assert rc == 1
        (line,) = _errors(err)
        print(line)  # for the record: pytest -rP shows it
        assert needle in line and "BoardUnreachable" in line, line
        assert time.monotonic() - started < 30
        _clean(board)
    board.lab_toml.write_text(pinned)
