"""Long commands on any target: started in the background, read while they run.

`run()` returns when a command ends, which is wrong for a test_progs run of many minutes
or a `dmesg -w` kept open while programs load: a user wants the lines as they come. This
builds that on the CommandProtocol alone (a POSIX shell, `setsid`, `tail`), so a QEMU
guest, the host and an SSH board get it the same way and no channel has to stream.

The command runs in its own session on the target, its stdout and stderr go to files in
a private dir there, and its exit status lands in `rc` when it ends; each poll() returns
the bytes written since the last one. kill() stops the whole process group.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable

from harness.targets.base import CommandProtocol, CommandResult
from harness.targets.errors import CommandTimeout, TargetError

OnOutput = Callable[[bytes, bytes], None]

# Where the command's files live on the target; $TMPDIR is honoured where it is set.
_DIR_TEMPLATE = '"${TMPDIR:-/tmp}/harness-bg.XXXXXX"'
# The launcher creates out/err first, so a poll that runs before the command does finds
# them empty rather than missing. The wrapper runs in the new session: the command, then
# its status written atomically (rc.tmp -> rc), so a reader that sees `rc` sees all output.
_WRAPPER = (
    'sh -c "$1" >"$2/out" 2>"$2/err" </dev/null; '
    'echo $? >"$2/rc.tmp"; mv "$2/rc.tmp" "$2/rc"'
)


class BackgroundCommand:
    """One command left running on `shell`'s target; see the module docstring."""

    def __init__(self, shell: CommandProtocol, cmd: str, *, timeout: float = 30.0) -> None:
        self.shell = shell
        self.cmd = cmd
        self._timeout = timeout  # for each short control command (poll, kill)
        self._stdout = bytearray()
        self._stderr = bytearray()
        self.rc: int | None = None
        self.killed = False
        self._start = time.monotonic()
        launch = (
            f"d=$(mktemp -d {_DIR_TEMPLATE}) && : >\"$d/out\" && : >\"$d/err\" || exit 1; "
            f"setsid sh -c {shlex.quote(_WRAPPER)} harness-bg {shlex.quote(cmd)} \"$d\" "
            ">/dev/null 2>&1 </dev/null & "
            'echo "$d $!"'
        )
        result = shell.run(launch, timeout=timeout)
        fields = result.out.split()
        if result.rc != 0 or len(fields) != 2 or not fields[1].isdigit():
            detail = (result.err.strip() or result.out.strip() or "no output").splitlines()[-1]
            raise TargetError(f"cannot start background command {cmd[:60]!r}: {detail[:200]}")
        self.dir, self.pid = fields[0], int(fields[1])

    @property
    def done(self) -> bool:
        return self.rc is not None or self.killed

    @property
    def stdout(self) -> bytes:
        """Everything the command wrote to stdout so far."""
        return bytes(self._stdout)

    @property
    def stderr(self) -> bytes:
        return bytes(self._stderr)

    def poll(self) -> tuple[bytes, bytes]:
        """New (stdout, stderr) bytes since the last poll; sets `rc` once it has ended.

        The end is checked before reading, so the poll that sees it ended also reads the
        last bytes.
        """
        if self.done:
            return b"", b""
        d = shlex.quote(self.dir)
        script = (
            f"test -e {d}/rc; ended=$?; "
            f"tail -c +{len(self._stdout) + 1} {d}/out; "
            f"tail -c +{len(self._stderr) + 1} {d}/err >&2; "
            "exit $ended"
        )
        result = self.shell.run(script, timeout=self._timeout)
        self._stdout += result.stdout
        self._stderr += result.stderr
        if result.rc == 0:
            status = self.shell.run(f"cat {d}/rc", timeout=self._timeout).out.strip()
            self.rc = int(status) if status.isdigit() else -1
        return result.stdout, result.stderr

    def wait(self, timeout: float, on_output: OnOutput | None = None,
             interval: float = 0.2) -> CommandResult:
        """Poll until the command ends (passing new output to `on_output`) and return
        its result; past `timeout` seconds kill it and raise CommandTimeout."""
        deadline = time.monotonic() + timeout
        pause = interval
        while True:
            out, err = self.poll()
            if on_output is not None and (out or err):
                on_output(out, err)
            if self.done:
                break
            if time.monotonic() >= deadline:
                self.kill()
                raise CommandTimeout(
                    f"hang: background command {self.cmd[:60]!r} did not finish within "
                    f"{timeout:g} s; its process group was killed"
                )
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = pause * 2 if not (out or err) else interval
            pause = min(pause, 2.0)
        return self.result()

    def result(self) -> CommandResult:
        """What the command produced so far, with its exit status (-9 when killed)."""
        rc = -9 if self.rc is None else self.rc
        return CommandResult(rc, self.stdout, self.stderr, time.monotonic() - self._start)

    def kill(self) -> None:
        """Stop the command and every process it started; safe to call twice."""
        if self.done:
            return
        self.shell.run(f"kill -KILL -{self.pid} 2>/dev/null; true", timeout=self._timeout)
        self.poll()  # a command that ended just before the kill keeps its status
        if self.rc is None:
            self.killed = True

    def cleanup(self) -> None:
        """Kill the command if it still runs and remove its files on the target."""
        self.kill()
        self.shell.run(f"rm -rf {shlex.quote(self.dir)}", timeout=self._timeout)


def spawn(shell: CommandProtocol, cmd: str, *, timeout: float = 30.0) -> BackgroundCommand:
    """Start `cmd` in the background on the target behind `shell` (see the module)."""
    return BackgroundCommand(shell, cmd, timeout=timeout)
