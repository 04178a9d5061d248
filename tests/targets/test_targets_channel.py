"""The framed protocol: exact binary payloads, noise kept apart, partial frames wait."""

from __future__ import annotations

import base64

from harness.targets.channel import FrameParser, get_request, loop_script, put_request


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
    assert put_request(3, "/run/a b", b"\x00\x01", 0o755).startswith(
        b"P 3 2 " + base64.b64encode(b"/run/a b") + b" 755\n"
    )
    assert get_request(4, "/x") == b"G 4 " + base64.b64encode(b"/x") + b"\n"
    # vng base64-encodes the script into virtme.exec=; COMMAND_LINE_SIZE is 2048
    assert len(base64.b64encode(loop_script("0" * 16).encode())) < 1000
