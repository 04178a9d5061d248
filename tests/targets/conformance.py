"""What every Target implementation must do, written once against a `target` fixture.

test_conformance.py imports these and provides `target`: one started target per
implementation, shared by these tests (the fixture starts it again if a test closed it
or a hang stopped it). A new transport (SSH board, ...) joins by adding a parameter
there. Besides the protocol, the suite uses `processes()`: the host processes the target
started that are still alive, which must be none after a hang and after close().
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from harness.targets.background import spawn
from harness.targets.base import (
    BTF_PATH,
    BootProtocol,
    CommandProtocol,
    ConsoleProtocol,
    FileTransferProtocol,
    Target,
    TargetIdentity,
)
from harness.targets.errors import CommandTimeout, RemoteFileError, TargetGone

HANG_TIMEOUT = 3.0


def test_implements_every_protocol(target: Target) -> None:
    for protocol in (CommandProtocol, FileTransferProtocol, BootProtocol, ConsoleProtocol,
                     Target):
        assert isinstance(target, protocol), protocol.__name__
    assert target.arch in ("x86_64", "arm64")
    assert isinstance(target.console(), str)


def test_exit_status_and_output_bytes_are_preserved(target: Target) -> None:
    # Not UTF-8 (\377, \200), a NUL, no trailing newline on stderr, and rc 3.
    result = target.run(r"printf 'out\377\000x\n'; printf 'err\200' >&2; exit 3", timeout=30)
    assert (result.rc, result.stdout, result.stderr) == (3, b"out\xff\x00x\n", b"err\x80")
    assert not result.ok and result.out == "out\ufffd\x00x\n"
    quiet = target.run("true", timeout=30)
    assert (quiet.rc, quiet.stdout, quiet.stderr) == (0, b"", b"")
    assert quiet.duration >= 0
    assert target.run("exit 255", timeout=30).rc == 255


def test_multi_line_commands_keep_their_quoting(target: Target) -> None:
    script = "x='a  b'\nprintf '%s|' \"$x\" \"it's\"\nif true; then\n  echo; fi"
    assert target.run(script, timeout=30).stdout == b"a  b|it's|\n"


def test_start_is_a_no_op_while_running(target: Target) -> None:
    """A second start() must not reboot: a file written before it is still there."""
    target.run("echo here > conformance-started", timeout=30)
    assert target.start() is target
    assert target.run("cat conformance-started", timeout=30).stdout == b"here\n"


def test_timeout_raises_and_leaves_a_usable_target(target: Target) -> None:
    """The hung command and its background child die; the target works again, either at
    once or (a target that stops on a hang, like QEMU) after saying so and a reboot."""
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="hang"):
        target.run("sleep 1000 & sleep 1000", timeout=HANG_TIMEOUT)
    took = time.monotonic() - start
    assert HANG_TIMEOUT <= took < HANG_TIMEOUT + 10
    assert target.processes() == []  # nothing of the hung command is left on the host
    try:
        after = target.run("true", timeout=30)
    except TargetGone as gone:
        assert "not running" in str(gone)
        target.reboot()
        after = target.run("true", timeout=30)
    assert after.rc == 0


def test_background_command_streams_output_while_it_runs(target: Target) -> None:
    """Output written before the command ends is read before it ends; its status and the
    whole output come back once it does."""
    target.run("rm -f conformance-go", timeout=30)
    job = spawn(target, "echo first; printf 'e\\377' >&2; "
                        "while [ ! -e conformance-go ]; do sleep 0.1; done; echo second; exit 7")
    seen = b""
    deadline = time.monotonic() + 30
    while b"first\n" not in seen and time.monotonic() < deadline:
        seen += job.poll()[0]
        time.sleep(0.1)
    assert seen == b"first\n" and not job.done
    target.run("touch conformance-go", timeout=30)
    chunks: list[tuple[bytes, bytes]] = []
    result = job.wait(30, on_output=lambda out, err: chunks.append((out, err)))
    assert (result.rc, result.stdout, result.stderr) == (7, b"first\nsecond\n", b"e\xff")
    assert b"second\n" in b"".join(out for out, _ in chunks)
    job.cleanup()
    assert target.run(f"test -e {job.dir}", timeout=30).rc == 1


def test_background_timeout_kills_the_whole_group(target: Target) -> None:
    job = spawn(target, "sleep 1000 & sleep 1000")
    with pytest.raises(CommandTimeout, match="background command"):
        job.wait(1.0)
    assert job.killed and job.result().rc == -9
    # Killed processes may be zombies for a moment, until their reaper runs.
    gone = target.run(f"for i in $(seq 50); do kill -0 -{job.pid} 2>/dev/null || exit 0; "
                      "sleep 0.1; done; exit 1", timeout=30)
    assert gone.rc == 0, f"process group {job.pid} still alive"
    job.cleanup()
    job.cleanup()


def test_put_get_round_trip_every_byte_value(target: Target, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 8 + b"\n\r\n" + bytes(reversed(range(256))) * 8 + b"\0"
    local = tmp_path / "blob.bin"
    local.write_bytes(blob)
    local.chmod(0o640)
    # A relative remote path resolves in the commands' cwd.
    target.put(local, "conformance-blob.bin", timeout=60)
    seen = target.run("wc -c < conformance-blob.bin; sha256sum < conformance-blob.bin; "
                      "stat -c %a conformance-blob.bin; pwd", timeout=30)
    size, digest, mode, cwd = seen.out.split("\n")[:4]
    assert int(size) == len(blob)
    assert digest.split()[0] == hashlib.sha256(blob).hexdigest()
    assert mode == "640"
    target.get(f"{cwd}/conformance-blob.bin", tmp_path / "back.bin", timeout=60)
    assert (tmp_path / "back.bin").read_bytes() == blob
    target.get("conformance-blob.bin", tmp_path / "back2.bin", timeout=60)
    assert (tmp_path / "back2.bin").read_bytes() == blob


def test_get_of_a_missing_path_is_a_target_error(target: Target, tmp_path: Path) -> None:
    """RemoteFileError naming the path (not FileNotFoundError, not TargetGone: the target
    is up); nothing written on the host, and the target is still usable."""
    with pytest.raises(RemoteFileError, match="conformance-missing/nothing"):
        target.get("/conformance-missing/nothing", tmp_path / "x", timeout=30)
    assert not (tmp_path / "x").exists()
    assert target.run("echo still", timeout=30).stdout == b"still\n"


def test_identity_matches_the_targets_own_btf(target: Target, tmp_path: Path) -> None:
    ident = target.identity(timeout=60)
    assert isinstance(ident, TargetIdentity)
    assert ident.release and ident.release == target.run("uname -r", timeout=30).out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", ident.btf_sha256)
    target.get(BTF_PATH, tmp_path / "vmlinux.btf", timeout=120)
    btf = (tmp_path / "vmlinux.btf").read_bytes()
    assert btf[:2] in (b"\x9f\xeb", b"\xeb\x9f")  # BTF magic, either byte order
    assert hashlib.sha256(btf).hexdigest() == ident.btf_sha256


def test_close_twice_is_safe_and_leaves_no_process(target: Target) -> None:
    target.run("sleep 1000 >/dev/null 2>&1 &", timeout=30)  # a child outliving its command
    target.close()
    target.close()
    assert target.processes() == []
    with pytest.raises(TargetGone):
        target.run("true", timeout=5)
