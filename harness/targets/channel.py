"""The guest command loop and the host side of its framed protocol.

Why not a shell on the serial console through pexpect: a tty echoes input, rewrites
line ends, caps canonical lines at 4096 bytes and interleaves kernel messages with
command output, so captured output is never exact. virtme-ng's script mode instead
gives the script its own virtio-serial ports (stdin, stdout, stderr), 8-bit clean with
flow control, while the kernel console goes to vng's stderr. A small POSIX-sh loop
(run through `vng --exec`) reads requests on stdin and answers on stdout with
length-prefixed frames, so one boot serves any number of commands and file transfers
and binary output survives. Scratch files live under /run (tmpfs), never on 9p.

Requests (host -> guest), one header line then an exact payload:
    R <id> <n>          then n bytes: a shell script to run with `sh`
    P <id> <n> <b64path> <mode>   then n bytes: file content to write
    G <id> <b64path>    read a file
Answer (guest -> host):
    \\n@@<nonce> <id> <rc> <n1> <n2> <taint>\\n then n1 + n2 bytes (stdout, stderr)
The frame with id 0 says the loop is up. `taint` is /proc/sys/kernel/tainted after the
request, so a WARN/Oops shows up even before its console lines have been flushed.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

# Kept short: vng puts it base64-encoded on the kernel command line (2048 bytes max).
_LOOP = r"""W=/run/harness;mkdir -p $W/s;cd $W/s;exec 2>$W/loop.err
t(){ cat /proc/sys/kernel/tainted 2>/dev/null||echo -1;}
f(){ printf '\n@@%s %s %s %s %s %s\n' {nonce} $1 $2 $(wc -c <$W/o) $(wc -c <$W/e) $(t)
cat $W/o $W/e;}
:>$W/o;:>$W/e;f 0 0
while read -r op id n p m;do :>$W/o;:>$W/e;case $op in
R)head -c $n >$W/c;sh $W/c >$W/o 2>$W/e </dev/null;f $id $?;;
P)head -c $n >$W/t;q=$(echo $p|base64 -d);cat $W/t 2>$W/e >"$q"&&chmod $m "$q" 2>$W/e;f $id $?;;
G)q=$(echo $n|base64 -d);cat "$q" >$W/o 2>$W/e;f $id $?;;
esac;done"""


def loop_script(nonce: str) -> str:
    """The guest-side loop, bound to this boot's frame nonce."""
    return _LOOP.replace("{nonce}", nonce)


def run_request(req_id: int, script: str) -> bytes:
    body = script.encode()
    return f"R {req_id} {len(body)}\n".encode() + body


def put_request(req_id: int, remote: str, data: bytes, mode: int) -> bytes:
    path = base64.b64encode(remote.encode()).decode()
    return f"P {req_id} {len(data)} {path} {mode:o}\n".encode() + data


def get_request(req_id: int, remote: str) -> bytes:
    path = base64.b64encode(remote.encode()).decode()
    return f"G {req_id} {path}\n".encode()


@dataclass(frozen=True)
class Frame:
    """One answer: request id, exit status, output bytes and the kernel taint after it."""

    req_id: int
    rc: int
    stdout: bytes
    stderr: bytes
    taint: int


class FrameParser:
    """Pull complete frames out of the guest's stdout stream; keep what is not a frame."""

    def __init__(self, nonce: str) -> None:
        self._header = re.compile(
            rb"\n@@" + nonce.encode() + rb" (\d+) (-?\d+) (\d+) (\d+) (-?\d+)\n"
        )
        self.noise = bytearray()

    def take(self, buf: bytearray) -> Frame | None:
        """Remove and return the first complete frame in `buf`, or None if none yet."""
        match = self._header.search(buf)
        if match is None:
            return None
        req_id, rc, n1, n2, taint = (int(g) for g in match.groups())
        start = match.end()
        if len(buf) < start + n1 + n2:
            return None
        self.noise += buf[: match.start()]
        out = bytes(buf[start : start + n1])
        err = bytes(buf[start + n1 : start + n1 + n2])
        del buf[: start + n1 + n2]
        return Frame(req_id, rc, out, err, taint)
