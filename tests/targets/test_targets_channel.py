"""The framed protocol: exact binary payloads, noise kept apart, partial frames wait."""

from __future__ import annotations

import base64
import hashlib
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from harness.progs.runner import agent_warmup
from harness.targets.base import BTF_PATH, CommandResult, TargetIdentity, read_identity
from harness.targets.channel import (
    Frame,
    FrameParser,
    get_request,
    loop_script,
    put_request,
    run_request,
)
from harness.targets.qemu import _READ_IDENTITY, guest_warmup


def frame(nonce: str, req: int, rc: int, out: bytes, err: bytes, taint: int = 0) -> bytes:
    return f"\n@@{nonce} {req} {rc} {len(out)} {len(err)} {taint}\n".encode() + out + err


def test_frames_in_chunks_with_noise() -> None:
    parser = FrameParser("n0nce")
    payload = b"\x00\n@@n0nce 9 9 9 9 9\n\xff"  # looks like a header, but is payload
    data = b"junk" + frame("n0nce", 1, 3, payload, b"err") + frame("n0nce", 2, 0, b"", b"")
    buf = bytearray()
    frames = []
    for i in range(len(data)):
        buf += data[i : i + 1]
        got = parser.take(buf)
        if got:
            frames.append(got)
    assert [(f.req_id, f.rc, f.stdout, f.stderr) for f in frames] == [
        (1, 3, payload, b"err"),
        (2, 0, b"", b""),
    ]
    assert bytes(parser.noise) == b"junk"


def test_other_nonce_is_ignored() -> None:
    parser = FrameParser("mine")
    assert parser.take(bytearray(frame("other", 1, 0, b"x", b""))) is None


def test_requests_and_loop_fit_the_kernel_command_line() -> None:
    assert put_request(3, "/run/a b", b"\x00\x01", 0o755) == b"P 3 2 755\n/run/a b\n\x00\x01"
    assert get_request(4, "/x") == b"G 4\n/x\n"
    with pytest.raises(ValueError):
        put_request(5, "/a\nb", b"", 0o644)
    # vng base64-encodes the script into virtme.exec=; COMMAND_LINE_SIZE is 2048, and a
    # guest's /proc/cmdline was 1640 bytes long with 1088 of them the loop and the
    # agent's warm-up
    assert len(base64.b64encode(loop_script("0" * 16).encode())) < 1000
    warm = guest_warmup(agent_warmup())
    assert len(base64.b64encode(loop_script("0" * 16, warm).encode())) < 1250


class _HostLoop:
    """The real guest loop, run by a shell of this host with its scratch dir in tmp_path."""

    def __init__(self, shell: str, scratch: Path, warm: str = "") -> None:
        self.parser = FrameParser("n0nce")
        self.buf = bytearray()
        self.proc = subprocess.Popen([*shell.split(), "-c", loop_script("n0nce", warm)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=dict(os.environ, HW=str(scratch)))

    def answer(self, request: bytes = b"", timeout: float = 20.0) -> Frame:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if request:
            self.proc.stdin.write(request)
            self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while (frame := self.parser.take(self.buf)) is None:
            assert time.monotonic() < deadline, f"no frame; got {bytes(self.buf)!r}"
            select.select([self.proc.stdout], [], [], 0.5)
            self.buf += os.read(self.proc.stdout.fileno(), 65536)
        return frame


def test_the_warm_up_runs_beside_the_loop_with_a_second_cpu(tmp_path: Path) -> None:
    """`warm` runs in the background (this host has CPUs 0-1 online) and none of its
    output reaches the frames."""
    if Path("/sys/devices/system/cpu/online").read_text().strip() == "0":
        pytest.skip("one CPU online: the loop does not warm up")
    marker = tmp_path / "warmed"
    proc = subprocess.Popen(
        ["sh", "-c", loop_script("n0nce", f"echo noise; echo noise >&2; echo x >{marker}")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(os.environ, HW=str(tmp_path)))
    try:
        out, _ = proc.communicate(run_request(1, "echo answer"), timeout=20)
    finally:
        proc.kill()
    deadline = time.monotonic() + 10  # it runs in the background: it may end later
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "x\n"
    assert b"noise" not in out and b"answer" in out
    frames = FrameParser("n0nce")
    buf = bytearray(out)
    assert [f.req_id for f in iter(lambda: frames.take(buf), None)] == [0, 1]


@pytest.mark.parametrize("shell", ["sh", "busybox sh"])
def test_loop_serves_binary_puts_gets_and_commands(tmp_path: Path, shell: str) -> None:
    """The loop as the guest runs it, on this host: the frames, exact bytes, error paths."""
    if shell == "busybox sh" and not any(Path(d, "busybox").exists() for d in ("/bin", "/usr/bin")):
        pytest.skip("busybox not installed")
    loop = _HostLoop(shell, tmp_path / "w")
    try:
        assert loop.answer().req_id == 0
        blob = bytes(range(256)) * 300 + b"\n@@n0nce 9 9 9 9 9\n"
        dest = tmp_path / "a dir" / " spaced name"
        dest.parent.mkdir()
        put = loop.answer(put_request(1, str(dest), blob, 0o750))
        assert (put.req_id, put.rc) == (1, 0)
        assert dest.read_bytes() == blob and dest.stat().st_mode & 0o777 == 0o750
        got = loop.answer(get_request(2, str(dest)))
        assert (got.req_id, got.rc, got.stdout) == (2, 0, blob)
        bad = loop.answer(put_request(3, str(tmp_path / "missing" / "f"), b"x" * 5000, 0o644))
        assert bad.rc != 0 and bad.stderr  # its bytes were consumed: the next request works
        cmd = loop.answer(run_request(4, "cat; printf 'out\\0'; echo err >&2; exit 7"))
        assert (cmd.req_id, cmd.rc, cmd.stdout, cmd.stderr) == (4, 7, b"out\0", b"err\n")
        script = "x='  a\\\\b  '\n\n  printf '%s|' \"$x\"\nif true; then\n  exit 3\nfi\necho never"
        lines = loop.answer(run_request(5, script))
        assert (lines.rc, lines.stdout) == (3, b"  a\\\\b  |")
        missing = loop.answer(get_request(6, str(tmp_path / "nope")))
        assert missing.rc != 0 and b"nope" in missing.stderr
        taint = int(Path("/proc/sys/kernel/tainted").read_text())
        assert cmd.taint == taint
    finally:
        loop.proc.kill()
        loop.proc.wait()


@pytest.mark.parametrize("shell", ["sh", "busybox sh"])
def test_the_identity_is_hashed_once_as_the_loop_starts(tmp_path: Path, shell: str) -> None:
    """QemuTarget's warm-up writes the identity (this host's own BTF here); the read
    prints it without hashing again, and hashes when the file is absent or half written."""
    if shell == "busybox sh" and not any(Path(d, "busybox").exists() for d in ("/bin", "/usr/bin")):
        pytest.skip("busybox not installed")
    btf = Path(BTF_PATH)
    if not btf.exists() or Path("/sys/devices/system/cpu/online").read_text().strip() == "0":
        pytest.skip("no BTF, or one CPU online (the loop does not warm up)")
    expected = TargetIdentity(os.uname().release, hashlib.sha256(btf.read_bytes()).hexdigest())
    scratch = tmp_path / "w"
    loop = _HostLoop(shell, scratch, guest_warmup(""))
    try:
        assert loop.answer().req_id == 0
        cached = scratch / "identity"
        deadline = time.monotonic() + 20
        while not cached.exists() or not cached.read_text().endswith("ok\n"):
            assert time.monotonic() < deadline, "the warm-up wrote no identity"
            time.sleep(0.05)
        assert cached.read_text() == f"{expected.release}\n{expected.btf_sha256}  -\nok\n"
        # a complete file is printed as it is, not hashed again; a half-written one is not
        cached.write_text(f"{expected.release}\n{'ab' * 32}  -\nok\n")
        assert read_identity(_Loop(loop, 1), script=_READ_IDENTITY) == TargetIdentity(
            expected.release, "ab" * 32)
        cached.write_text(f"{expected.release}\n{'ab' * 20}")
        assert read_identity(_Loop(loop, 2), script=_READ_IDENTITY) == expected
        cached.write_text(f"{expected.release}\n{'ab' * 32}  -\n")
        assert read_identity(_Loop(loop, 3), script=_READ_IDENTITY) == expected
        cached.unlink()
        assert read_identity(_Loop(loop, 4), script=_READ_IDENTITY) == expected
    finally:
        loop.proc.kill()
        loop.proc.wait()


class _Loop:
    """read_identity's CommandProtocol over a _HostLoop: one request, its frame."""

    arch = "x86_64"

    def __init__(self, loop: _HostLoop, req_id: int) -> None:
        self.loop, self.req_id = loop, req_id

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        got = self.loop.answer(run_request(self.req_id, cmd), timeout)
        assert got.req_id == self.req_id
        return CommandResult(got.rc, got.stdout, got.stderr, 0.0)
