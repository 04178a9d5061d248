"""SshTarget against a private real sshd on this host (fast tier, no kernel).

The conformance suite runs on SshTarget as the `ssh` parameter of test_conformance.py;
these are the SSH-only cases: lab errors are one-line BoardUnreachable naming no secret,
and close() leaves nothing on the "board" (this host).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.targets.errors import CommandTimeout, TargetError, TargetGone, TargetSetupError
from harness.targets.ssh import BoardUnreachable, SshTarget
from tests.targets.sshd import PrivateSshd, free_port, keygen, public_key


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateSshd]:
    with PrivateSshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def shared_target(sshd: PrivateSshd) -> Iterator[SshTarget]:
    target = SshTarget(sshd.board(), known_hosts=sshd.known_hosts)
    try:
        yield target
    finally:
        target.close()
    assert target.processes() == []


# -- helpers ---------------------------------------------------------------------------


def _secrets(sshd: PrivateSshd, *keys: Path) -> list[str]:
    """The lines of each private key's body: none may show up in a message or repr."""
    lines = []
    for key in (sshd.client_key, sshd.host_key, *keys):
        lines += [line for line in key.read_text().splitlines()
                  if line and not line.startswith("-----")]
    return lines


def _no_secret(text: str, secrets: list[str]) -> None:
    assert "PRIVATE KEY" not in text
    for line in secrets:
        assert line not in text and line[:24] not in text


def _unreachable(sshd: PrivateSshd, target: SshTarget, *keys: Path) -> str:
    """start() fails with a one-line BoardUnreachable holding no secret; its text."""
    with pytest.raises(BoardUnreachable) as caught:
        target.start()
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message
    _no_secret(message, _secrets(sshd, *keys))
    _no_secret(repr(target), _secrets(sshd, *keys))
    with pytest.raises(TargetGone, match="not running"):
        target.run("true", timeout=5)
    target.close()
    return message


def _live(marker: str) -> list[int]:
    """Pids of this host's processes whose command line holds `marker` (zombies have
    none), this test's own pgrep excluded."""
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _gone(marker: str, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while _live(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _reap(marker: str) -> None:
    for pid in _live(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _sleep_marker() -> str:
    """A `sleep` argument unique to one test: `sleep 1000.<digits>`."""
    return f"1000.{uuid.uuid4().int % 10**12:012d}"


# -- lab errors: one line, BoardUnreachable, no secret ---------------------------------


def test_nothing_listening_is_unreachable(sshd: PrivateSshd) -> None:
    port = free_port()
    message = _unreachable(sshd, SshTarget(sshd.board(port=port), known_hosts=sshd.known_hosts))
    assert "refused" in message and f"127.0.0.1:{port}" in message


def test_a_failed_start_stops_its_console_reader(sshd: PrivateSshd, tmp_path: Path) -> None:
    """The console opens before the connection (to catch a board's last words); a start
    that fails must not leave that reader running."""
    feed = tmp_path / "serial.txt"
    feed.write_text("")
    board = sshd.board(port=free_port(), console=f"tail -n 0 -f {feed}")
    target = SshTarget(board, known_hosts=sshd.known_hosts, console_log=tmp_path / "c.log")
    with pytest.raises(BoardUnreachable, match="refused"):
        target.start()  # and no close(): a caller whose start() raised owns nothing to close
    readers = subprocess.run(["pgrep", "-f", f"tail -n 0 -f {feed}"], capture_output=True,
                             text=True).stdout.split()
    assert readers == []


def test_unknown_host_key_names_its_fingerprint(sshd: PrivateSshd, tmp_path: Path) -> None:
    offered = subprocess.run(["ssh-keygen", "-l", "-f", f"{sshd.host_key}.pub"],
                             capture_output=True, text=True, check=True).stdout.split()[1]
    assert offered.startswith("SHA256:")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    message = _unreachable(sshd, SshTarget(sshd.board(), known_hosts=empty))
    assert "unknown" in message and offered in message and str(empty) in message
    # No known_hosts given: ~/.ssh/known_hosts, which does not know this port's key.
    message = _unreachable(sshd, SshTarget(sshd.board()))
    assert offered in message


def test_changed_host_key_is_refused(sshd: PrivateSshd, tmp_path: Path) -> None:
    pinned = tmp_path / "known_hosts"  # pinned to another ed25519 key: the client's
    pinned.write_text(f"[127.0.0.1]:{sshd.port} {public_key(sshd.client_key)}\n")
    message = _unreachable(sshd, SshTarget(sshd.board(), known_hosts=pinned))
    assert "does not match" in message and "SHA256:" in message


def test_wrong_user_is_an_auth_failure(sshd: PrivateSshd) -> None:
    board = sshd.board(user="harness-no-such-user")
    message = _unreachable(sshd, SshTarget(board, known_hosts=sshd.known_hosts))
    assert f"authentication failed for harness-no-such-user@127.0.0.1:{sshd.port}" in message


def test_wrong_key_is_an_auth_failure(sshd: PrivateSshd, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_key")
    board = sshd.board(key=other)
    message = _unreachable(sshd, SshTarget(board, known_hosts=sshd.known_hosts), other)
    assert f"authentication failed for {board.user}@127.0.0.1:{sshd.port}" in message


def test_a_key_with_a_passphrase(sshd: PrivateSshd, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No passphrase given: a one-line setup error naming the file. Where the inventory
    names a variable holding it (key_passphrase_env), an unset variable and a wrong
    passphrase are setup errors too, and the right one logs in. No message or repr
    holds the passphrase."""
    secret = "harness-pass-phrase"
    locked = tmp_path / "locked_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", secret, "-f", str(locked)],
                   check=True, capture_output=True)
    with sshd.authorized_keys.open("a") as keys:
        keys.write(public_key(locked) + "\n")
    secrets = [secret, *_secrets(sshd, locked)]

    def refused(target: SshTarget, match: str) -> None:
        with pytest.raises(TargetSetupError, match=match) as caught:
            target.start()
        assert "\n" not in str(caught.value)
        _no_secret(str(caught.value) + repr(target), secrets)

    refused(SshTarget(sshd.board(key=locked), known_hosts=sshd.known_hosts),
            f"key file {locked} is passphrase-protected")
    board = sshd.board(key=locked, key_passphrase_env="HARNESS_TEST_KEY_PASS")
    monkeypatch.delenv("HARNESS_TEST_KEY_PASS", raising=False)
    refused(SshTarget(board, known_hosts=sshd.known_hosts), "HARNESS_TEST_KEY_PASS")
    monkeypatch.setenv("HARNESS_TEST_KEY_PASS", "not-the-pass-phrase")
    refused(SshTarget(board, known_hosts=sshd.known_hosts), "cannot decrypt")
    monkeypatch.setenv("HARNESS_TEST_KEY_PASS", secret)
    with SshTarget(board, known_hosts=sshd.known_hosts) as target:
        assert target.run("echo in", timeout=10).stdout == b"in\n"
        _no_secret(repr(target) + repr(board), secrets)


def test_a_host_key_pinned_on_the_board(sshd: PrivateSshd) -> None:
    with SshTarget(sshd.board(host_key=public_key(sshd.host_key))) as target:
        assert target.run("echo pinned", timeout=10).stdout == b"pinned\n"
    other = public_key(sshd.client_key)  # another ed25519 key
    message = _unreachable(sshd, SshTarget(sshd.board(host_key=other)))
    assert "does not match" in message and "host_key" in message and "SHA256:" in message


def test_a_dead_sshd_is_a_target_error_not_a_hang(tmp_path: Path) -> None:
    """sshd dies mid-command: that run() and the next raise a TargetError in time."""
    marker = _sleep_marker()
    with PrivateSshd(tmp_path) as server:
        target = SshTarget(server.board(), known_hosts=server.known_hosts).start()
        workdir = target.workdir
        try:
            assert target.run("echo up", timeout=10).stdout == b"up\n"
            caught: list[BaseException] = []

            def run() -> None:
                try:
                    target.run(f"sleep {marker}", timeout=20)
                except BaseException as exc:  # handed to the test
                    caught.append(exc)

            worker = threading.Thread(target=run)
            worker.start()
            time.sleep(0.5)
            start = time.monotonic()
            server.kill()
            worker.join(10)
            assert not worker.is_alive() and time.monotonic() - start < 10
            assert len(caught) == 1 and isinstance(caught[0], BoardUnreachable), caught
            assert "dropped" in str(caught[0])
            start = time.monotonic()
            with pytest.raises(TargetError) as after:
                target.run("true", timeout=10)
            assert isinstance(after.value, BoardUnreachable | TargetGone)
            assert time.monotonic() - start < 10
            _no_secret(str(after.value), _secrets(server))
        finally:
            target.close()
            _reap(marker)  # the "board" lost its sshd, not its processes or files
            shutil.rmtree(workdir, ignore_errors=True)
    with pytest.raises(TargetGone, match="not running"):
        target.run("true", timeout=5)


# -- commands and cleanup ------------------------------------------------------------


def test_repr_names_the_board_and_holds_no_secret(sshd: PrivateSshd) -> None:
    target = SshTarget(sshd.board(), known_hosts=sshd.known_hosts)
    assert "not running" in repr(target)
    with target:
        text = repr(target)
        assert "private-sshd" in text and f"127.0.0.1:{sshd.port}" in text
        _no_secret(text, _secrets(sshd))
    assert "not running" in repr(target)


def test_hang_kills_the_group_and_the_connection_stays_up(shared_target: SshTarget) -> None:
    target = shared_target.start()
    marker = _sleep_marker()
    try:
        with pytest.raises(CommandTimeout, match="hang.*process group [0-9]+ was killed"):
            target.run(f"sleep {marker} & (setsid sleep {marker} &); sleep {marker}",
                       timeout=1.0)
        assert _gone(marker, wait=1.0), "processes of the hung command are left"
        assert target.run("echo still", timeout=10).stdout == b"still\n"
    finally:
        _reap(marker)


def test_large_output_stdin_at_eof_and_signals(shared_target: SshTarget) -> None:
    target = shared_target.start()
    big = target.run("head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2; "
                     "head -c 1000000 /dev/zero", timeout=30)
    assert (len(big.stdout), len(big.stderr)) == (4_000_000, 2_000_000)
    assert target.run("cat", timeout=10).stdout == b""  # stdin is at EOF, not a hang
    killed = target.run("kill -9 $$", timeout=10)
    assert (killed.rc, killed.stderr) == (137, b"")


def test_login_shell_noise_is_not_command_output(tmp_path: Path) -> None:
    """A board whose login shell prints before every command (a chatty rc file): the
    output is still the command's alone, and a hang still finds its process group."""
    marker = _sleep_marker()
    with PrivateSshd(tmp_path, login_noise=True) as server, \
            SshTarget(server.board(), known_hosts=server.known_hosts) as target:
        try:
            result = target.run("printf out; printf err >&2; exit 4", timeout=10)
            assert (result.rc, result.stdout, result.stderr) == (4, b"out", b"err")
            with pytest.raises(CommandTimeout, match="process group [0-9]+ was killed"):
                target.run(f"sleep {marker}", timeout=0.5)
            assert _gone(marker, wait=1.0)
        finally:
            _reap(marker)


def test_close_removes_the_work_dir_and_kills_leftovers(sshd: PrivateSshd) -> None:
    """A background child, one in a new session elsewhere and one in the work dir whose
    tag was scrubbed: close() kills all three and removes the dir."""
    marker = _sleep_marker()
    target = SshTarget(sshd.board(), known_hosts=sshd.known_hosts).start()
    try:
        workdir = Path(target.workdir)
        assert workdir.is_dir() and workdir.name.startswith("harness-ssh.")
        assert target.run("pwd", timeout=10).out.strip() == str(workdir)
        target.run(f"sleep {marker} >/dev/null 2>&1 & "
                   f"(cd / && setsid sleep {marker} >/dev/null 2>&1 &); "
                   f"env -u HARNESS_SSH_TAG sleep {marker} >/dev/null 2>&1 &", timeout=10)
        deadline = time.monotonic() + 5
        while len(_live(marker)) != 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the subshell forks its setsid child and exits
        assert len(_live(marker)) == 3
        target.close()
        assert not workdir.exists()
        assert _gone(marker, wait=1.0), f"left after close: {_live(marker)}"
        target.close()
        with pytest.raises(TargetGone, match="not running"):
            target.run("true", timeout=5)
    finally:
        target.close()
        _reap(marker)


def test_a_given_work_dir_is_made_and_removed_or_kept(sshd: PrivateSshd,
                                                      tmp_path: Path) -> None:
    made = tmp_path / "made" / "here"
    with SshTarget(sshd.board(), known_hosts=sshd.known_hosts, workdir=str(made)) as target:
        assert target.run("pwd", timeout=10).out.strip() == str(made)
    assert not made.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine").write_text("x")
    with SshTarget(sshd.board(), known_hosts=sshd.known_hosts, workdir=str(kept)) as target:
        assert target.run("cat mine", timeout=10).stdout == b"x"
    assert (kept / "mine").read_text() == "x"


def test_lab_trust_pins_the_offered_key_once_and_refuses_a_change(
        sshd: PrivateSshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`harness lab trust` against the real sshd: pins, is idempotent, then the target
    connects with that file alone; a different pinned key is refused without --replace."""
    from harness.cli import main

    known = tmp_path / "lab_known_hosts"
    lab = tmp_path / "lab.toml"
    lab.write_text(f"[[board]]\nname = 'loop'\narch = 'x86_64'\nhost = '127.0.0.1'\n"
                   f"port = {sshd.port}\nuser = '{sshd.board().user}'\n"
                   f"key = '{sshd.client_key}'\nknown_hosts = 'lab_known_hosts'\n")
    assert main(["lab", "trust", "loop", "--lab", str(lab)]) == 0
    out = capsys.readouterr().out
    expected = subprocess.run(["ssh-keygen", "-lf", f"{sshd.host_key}.pub"],
                              capture_output=True, text=True, check=True).stdout.split()[1]
    assert f"offers {expected}: pinned in {known}" in out
    assert main(["lab", "trust", "loop", "--lab", str(lab)]) == 0
    assert "already pinned" in capsys.readouterr().out
    with SshTarget(sshd.board(known_hosts=known)) as target:
        assert target.run("echo trusted", timeout=10).stdout == b"trusted\n"
    other = keygen(tmp_path / "other_host_key")
    known.write_text(f"[127.0.0.1]:{sshd.port} {public_key(other)}\n")
    assert main(["lab", "trust", "loop", "--lab", str(lab)]) == 1
    err = capsys.readouterr().err
    assert "a changed host key (--replace if you know why)" in err and err.count("\n") == 1
    assert main(["lab", "trust", "loop", "--lab", str(lab), "--replace"]) == 0
    assert expected in capsys.readouterr().out
    assert main(["lab", "list", "--lab", str(lab), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "loop"


def test_a_panic_on_the_console_is_the_error_when_ssh_drops(tmp_path: Path) -> None:
    """The console (any command: here `tail -f` of a file standing in for the serial line)
    is logged from start(); when SSH drops while it shows a panic, run() raises that
    KernelPanic with the panic line, not BoardUnreachable. close() stops the console."""
    from harness.targets.errors import KernelPanic

    feed = tmp_path / "serial.txt"
    feed.write_text("[    0.000000] Booting Linux on physical CPU 0x0\n")
    log = tmp_path / "logs" / "console.log"
    marker = _sleep_marker()
    with PrivateSshd(tmp_path / "sshd") as server:
        board = server.board(console=f"tail -n +1 -f {feed}")
        target = SshTarget(board, known_hosts=server.known_hosts, console_log=log)
        try:
            target.start()
            assert target.run("echo up", timeout=10).stdout == b"up\n"

            def crash() -> None:
                time.sleep(0.5)
                with open(feed, "a") as serial:
                    serial.write("[   12.345678] Kernel panic - not syncing: Fatal exception\n"
                                 "[   12.345690] ---[ end Kernel panic - not syncing: Fatal "
                                 "exception ]---\n")
                time.sleep(0.5)
                server.kill()

            threading.Thread(target=crash).start()
            with pytest.raises(KernelPanic, match="not syncing: Fatal exception"):
                target.run(f"sleep {marker}", timeout=20)
            assert "Booting Linux" in target.console()
        finally:
            target.close()
            _reap(marker)  # the "board" lost its sshd, not its processes
    assert "Kernel panic - not syncing" in log.read_text()
    leftover = subprocess.run(["pgrep", "-f", f"tail -n \\+1 -f {feed}"],
                              capture_output=True, text=True).stdout
    assert leftover == ""


def test_a_board_behind_a_jump_host(sshd: PrivateSshd) -> None:
    """The jump is this same sshd (its key pinned in the same known_hosts): the board is
    reached over a direct-tcpip channel through it, and closing leaves no jump session."""
    board = sshd.board(jump=f"{sshd.board().user}@127.0.0.1:{sshd.port}")
    target = SshTarget(board, known_hosts=sshd.known_hosts)
    with target:
        assert target.run("echo via-jump", timeout=10).stdout == b"via-jump\n"
        assert target._jump is not None
    assert target._jump is None
    nobody_there = SshTarget(sshd.board(jump=f"127.0.0.1:{free_port()}"),
                         known_hosts=sshd.known_hosts)
    with pytest.raises(BoardUnreachable, match="via jump host 127.0.0.1:"):
        nobody_there.start()
