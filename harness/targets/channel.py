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
    R <id> <n>          then n lines: a shell script, run in a subshell of the loop
    P <id> <n> <mode>   then the path on a line of its own, then n bytes: file content
    G <id>              then the path on a line of its own: read that file
Answer (guest -> host):
    \\n@@<nonce> <id> <rc> <n1> <n2> <taint>\\n then n1 + n2 bytes (stdout, stderr)
The frame with id 0 says the loop is up. `taint` is /proc/sys/kernel/tainted after the
request, so a WARN/Oops shows up even before its console lines have been flushed.

Every exec costs 40-110 ms on a TCG guest, so the loop keeps them few: a command's
script arrives as lines the shell's own `read` takes and runs sourced in a subshell
(a fork, no exec); a put's bytes need `head`; every answer costs one `wc` and one `cat`;
everything else is a shell builtin. /usr/local/sbin comes first in PATH: the
cached guest roots put busybox-static's applets there (no dynamic loader to emulate).
Paths travel raw on their own line (no newline in a remote path); a put lands in a
scratch file first, so a destination that cannot be written still consumes its bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kept short: vng puts it base64-encoded on the kernel command line (2048 bytes max).
# HW overrides the scratch dir (tests run the loop on the host). A sysctl file answers
# only a read at offset 0, so `read` gets the taint without its newline and fails: hence
# ${x:--1}, not ||.
_SETUP = r"""W=${HW:-/run/harness};mkdir -p $W/s;cd $W/s;exec 2>$W/loop.err
PATH=/usr/local/sbin:$PATH;export PATH"""
_SERVE = r"""
f(){ i=$1;r=$2;x=;read -r x </proc/sys/kernel/tainted;x=${x:--1};set -- $(wc -c $W/o $W/e)
printf '\n@@%s %s %s %s %s %s\n' {nonce} $i $r $1 $3 $x;cat $W/o $W/e;}
:>$W/o;:>$W/e;f 0 0
while read -r op id n m;do :>$W/o;:>$W/e;case $op in
R)i=0;while [ $i -lt $n ];do IFS= read -r l;printf '%s\n' "$l";i=$((i+1));done >$W/c
(. $W/c) >$W/o 2>$W/e </dev/null;f $id $?;;
P)IFS= read -r q;head -c $n >$W/t;cat $W/t 2>$W/e >"$q"&&chmod $m "$q" 2>$W/e;f $id $?;;
G)IFS= read -r q;cat "$q" >$W/o 2>$W/e;f $id $?;;
esac;done"""


# The loop's scratch dir as the scripts it runs (and `warm`) see it: a shell variable.
SCRATCH = "$W"

# `warm`, in the background as the loop starts, on a guest with a second CPU online only
# (with one it would hold up the first commands); after _SETUP, whose $W and PATH it uses
_WARM = ("\nread -r c </sys/devices/system/cpu/online;"
         "case $c in *[-,]*)({warm})</dev/null >/dev/null 2>&1 &;;esac")


def loop_script(nonce: str, warm: str = "") -> str:
    """The guest-side loop, bound to this boot's frame nonce. `warm`: a command that
    reads in what the first commands will need (progs' agent: python3 and its modules
    over 9p) while the host is still busy sending them."""
    return (_SETUP + (_WARM.replace("{warm}", warm) if warm else "")
            + _SERVE.replace("{nonce}", nonce))


def run_request(req_id: int, script: str) -> bytes:
    body = script.removesuffix("\n") + "\n"
    lines = body.count("\n")
    return f"R {req_id} {lines}\n".encode() + body.encode()


def _one_line(remote: str) -> str:
    if "\n" in remote or not remote.strip():
        raise ValueError(f"remote path {remote!r} must be one non-empty line")
    return remote


def put_request(req_id: int, remote: str, data: bytes, mode: int) -> bytes:
    return f"P {req_id} {len(data)} {mode:o}\n{_one_line(remote)}\n".encode() + data


def get_request(req_id: int, remote: str) -> bytes:
    return f"G {req_id}\n{_one_line(remote)}\n".encode()


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
