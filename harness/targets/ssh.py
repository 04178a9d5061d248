"""A board reached over SSH (paramiko): commands, files and identity on real hardware.

The board already runs the kernel under test; nothing boots here. start() connects,
checks the board's host key against a known_hosts file (an unknown or changed key is
refused, never learnt) and makes a private work dir on the board, the cwd of every
command and where relative remote paths resolve. Errors of the lab itself (nothing
listening, authentication refused, a host key mismatch, a dropped connection) raise
BoardUnreachable, so a report can tell them from the failures of the tests.

How a command runs. Every command gets its own SSH channel (no pty; stdin at EOF) and
runs through a small POSIX wrapper (_WRAPPER) that

* makes sure the command has a process group of its own: sshd already starts each
  session's shell with setsid(), so the wrapper is normally its group's leader; when it
  is not, it re-executes itself under `setsid` (which then does not fork);
* prints a header line on stdout and one on stderr (`@@<nonce>` and `@@<nonce> <pgid>`),
  so that anything the login shell's rc files print before it is dropped and the host
  learns the pgid on a side channel before the command writes a byte;
* exports HARNESS_SSH_TAG=<target id>.<command id> into the command's environment,
  which every process the command starts inherits, even one that leaves the process
  group (`setsid`, harness.targets.background) or changes directory;
* cds to the work dir and runs the command with /bin/sh -c as a child, so a command
  killed by a signal reports 128+N as a shell's $? would (paramiko drops exit-signal);
  the wrapper's own stderr goes to /dev/null then (the command's stderr is redirected
  in the subshell, not around the wait), so dash's "Killed" notice stays out of it.

A command that does not end within its timeout is killed from a second channel:
SIGKILL to its process group, then to every process still carrying its command tag,
until `kill -0 -PGID` (members that are only zombies waiting for their reaper do not
count) and the tag search find nothing; then CommandTimeout. The connection stays up.

close() kills, on the board, every process whose environment carries this target's tag
(whatever its group or session) and every process whose cwd is the work dir, repeating
until none is left, removes the work dir, and closes the connection. Note that, as with
ssh(1), a background child that keeps the command's stdout or stderr open holds run()
until it exits or the timeout; redirect its output (`cmd >/dev/null 2>&1 &`).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import hashlib
import logging
import posixpath
import select
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self, TypeVar

import paramiko

from harness.arch import lookup
from harness.cache import cache_dir
from harness.errors import HarnessError
from harness.targets.base import CommandResult, Lifecycle, TargetIdentity, read_identity
from harness.targets.errors import (
    CommandTimeout,
    RemoteFileError,
    TargetError,
    TargetGone,
    TargetSetupError,
)
from harness.targets.inventory import Board
from harness.targets.serial import SerialConsole
from harness.targets.splat import check_console

# paramiko's transport thread logs each failed handshake (a board still booting, slirp
# closing a forwarded port) with a traceback; without a handler of its own, Python's
# last-resort handler prints those to the user's terminal. Our errors say it in a line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

KEEPALIVE_SECONDS = 15
_CHUNK = 1 << 16
_TRANSFER_STEP = 1 << 20  # put/get check their deadline every MiB
_CLEANUP_TIMEOUT = 30.0  # cap on each best-effort cleanup command (kill, rm)
_TAG_ENV = "HARNESS_SSH_TAG"
T = TypeVar("T")

# $0 = this script (for the setsid re-exec), $1 work dir, $2 tag, $3 nonce, $4 command.
_WRAPPER = r"""g=
if read -r s </proc/$$/stat; then s=${s##*") "}; s=${s#* }; s=${s#* }; g=${s%% *}; fi
if [ "$g" != "$$" ] && [ -z "$HARNESS_SSH_SETSID" ] && command -v setsid >/dev/null; then
  HARNESS_SSH_SETSID=1; export HARNESS_SSH_SETSID
  exec setsid /bin/sh -c "$0" "$0" "$@"
fi
unset HARNESS_SSH_SETSID
[ "$g" = "$$" ] || g=-
printf '@@%s\n' "$3"; printf '@@%s %s\n' "$3" "$g" >&2
cd "$1" || exit 1
HARNESS_SSH_TAG=$2; export HARNESS_SSH_TAG
exec 3>&2 2>/dev/null
(exec /bin/sh -c "$4" 2>&3 3>&-)
exit "$?"
"""

# Shell functions for the kill scripts (run untagged, outside the work dir).
_KILL_LIB = r"""tagged() {  # pids whose environment holds "$1" (zombies have none)
  if printf 'a\0b\n' | grep -qzF b 2>/dev/null; then
    for f in $(grep -lszF "$1" /proc/[0-9]*/environ); do f=${f#/proc/}; echo "${f%/environ}"
    done
  else
    for f in /proc/[0-9]*/environ; do
      tr '\0' '\n' <"$f" 2>/dev/null | grep -qF "$1" && { f=${f#/proc/}; echo "${f%/environ}"; }
    done
  fi
}
in_dir() {  # pids whose cwd is "$1"
  for d in /proc/[0-9]*; do [ "$d/cwd" -ef "$1" ] && echo "${d#/proc/}"; done
}
group_alive() {  # a member of process group $1 that is not a zombie
  kill -0 -"$1" 2>/dev/null || return 1
  for f in /proc/[0-9]*/stat; do
    read -r s <"$f" 2>/dev/null || continue
    s=${s##*") "}; st=${s%% *}; s=${s#* }; s=${s#* }
    [ "${s%% *}" = "$1" ] && [ "$st" != Z ] && return 0
  done
  return 1
}
nap() { sleep 0.1 2>/dev/null || sleep 1; }
"""

# $1 pgid or "-", $2 the command's tag. rc 0: nothing of the command is left (it waits
# up to 50 x 0.1 s for killed processes to go).
_KILL_COMMAND = _KILL_LIB + r"""g=$1; case $g in *[!0-9]*|'') g=;; esac
i=0
while :; do
  [ -n "$g" ] && kill -KILL -"$g" 2>/dev/null
  left=
  for p in $(tagged "$2"); do [ "$p" = "$$" ] || { kill -KILL "$p" 2>/dev/null; left=1; }; done
  [ -n "$g" ] && group_alive "$g" && left=1
  [ -z "$left" ] && exit 0
  i=$((i + 1)); [ "$i" -ge 50 ] && exit 1
  nap
done
"""

# $1 the target's tag prefix, $2 the work dir, $3 "rm" to remove it afterwards.
_CLEANUP = _KILL_LIB + r"""i=0
while :; do
  left=
  for p in $(tagged "$1"); do [ "$p" = "$$" ] || { kill -KILL "$p" 2>/dev/null; left=1; }; done
  if [ -d "$2" ]; then
    for p in $(in_dir "$2"); do [ "$p" = "$$" ] || { kill -KILL "$p" 2>/dev/null; left=1; }; done
  fi
  [ -z "$left" ] && break
  i=$((i + 1)); [ "$i" -ge 50 ] && break
  nap
done
[ "$3" != rm ] || rm -rf -- "$2"
"""


_DROPPED_IN_AUTH = "No existing session"


class BoardUnreachable(TargetError):
    """The board cannot be reached or the SSH connection failed: nothing listening, a
    timeout, authentication refused, an unknown or changed host key, a dropped link.

    An infrastructure failure of the lab (network, credentials, the board being down),
    distinct from a test failure: the kernel under test was not judged.
    """


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


class _RejectUnknown(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, keeping the offered key for the error message."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise _UnknownHostKey(key)


class _Deadline(Exception):
    """Internal: a command's time ran out; carries the stderr seen so far."""

    def __init__(self, stderr: bytes) -> None:
        super().__init__("deadline")
        self.stderr = stderr


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's `ssh-keygen -l` fingerprint: SHA256:<unpadded base64>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@contextlib.contextmanager
def _closing_on_error(f: paramiko.SFTPFile) -> Iterator[None]:
    """Close a remote file when a transfer fails on the board's side; after a timeout
    or a broken session the whole SFTP session is dropped instead (no close round trip
    that would wait out the timeout again)."""
    try:
        yield
    except (TimeoutError, paramiko.SSHException, EOFError):
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            f.close()
        raise


def _in_time(deadline: float) -> None:
    """A transfer's steps check the clock: a stream without end (/dev/zero, a pipe)
    keeps the channel busy, so the per-recv socket timeout alone never fires."""
    if time.monotonic() > deadline:
        raise TimeoutError("transfer deadline")


def _one_line(remote: str) -> str:
    """The same rule the QEMU channel applies, so callers cannot rely on more here."""
    if "\n" in remote or not remote.strip():
        raise ValueError(f"remote path {remote!r} must be one non-empty line")
    return remote


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def _strip_header(data: bytes, header: bytes) -> tuple[bytes, bytes | None]:
    """(what follows the wrapper's header line, the rest of that line), or (data, None)
    when the header is not there. What precedes it (rc-file noise) is dropped."""
    if data.startswith(header):
        at = 0
    else:
        at = data.find(b"\n" + header)
        if at < 0:
            return data, None
        at += 1
    end = data.find(b"\n", at)
    if end < 0:
        return b"", data[at + len(header):]
    return data[end + 1:], data[at + len(header):end]


class SshTarget(Lifecycle):
    """A board from lab.toml reached over SSH; implements harness.targets.base.Target.

    known_hosts: an OpenSSH known_hosts file holding the board's key (`host` or
    `[host]:port` for a port other than 22); default the board's own known_hosts where
    the inventory has one, else ~/.ssh/known_hosts. A key pinned on the board
    (host_key "TYPE BASE64") counts too. A key pinned nowhere, or a different one, is
    refused (BoardUnreachable naming the offered key's SHA256 fingerprint, to pin after
    checking it): never trusted on first use. Authentication uses board.key alone when
    it is set (its passphrase, if any, from Board.key_passphrase(): the environment
    variable key_passphrase_env names), else ssh-agent and the default ~/.ssh keys.
    No secret reaches a repr, a log line of ours or an exception message.

    workdir: the commands' cwd on the board (made if missing and then removed by
    close(); an existing dir is kept); default a new `mktemp -d /tmp/harness-ssh.XXXXXX`,
    removed by close(). board.jump ([user@]host[:port]) is reached first, its key checked
    like the board's, and the board through a direct-tcpip channel over it.
    """

    def __init__(self, board: Board, *, known_hosts: Path | None = None,
                 workdir: str | None = None, console_log: Path | None = None) -> None:
        self.board = board
        self.console_log = console_log  # default: cache/logs/console/<board>-<time>.log
        self._serial: SerialConsole | None = None
        self.arch = lookup(board.arch).name
        self.known_hosts = (Path(known_hosts).expanduser() if known_hosts is not None
                            else None)
        self._wanted_workdir = workdir
        self.boot_seconds: float | None = None
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._dir: str | None = None
        self._remove_dir = False
        self._id = uuid.uuid4().hex
        # A session whose connection dropped: cleaned up after the next connect.
        self._stale: tuple[str, str | None, bool] | None = None
        self._jump: paramiko.SSHClient | None = None  # the jump host's connection, if any
        self._cancel = threading.Event()  # set by cancel(): a reconnect gives up
        self._connecting: paramiko.SSHClient | None = None  # a connect() in flight

    def __repr__(self) -> str:
        state = "connected" if self._connected() else "not running"
        return f"SshTarget({self.board.name!r}, {self._who()}, {state})"

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Connect and make the work dir; a no-op while connected. After a dropped
        connection this connects again (and cleans the old session up, best effort).
        A first start that fails stops the console reader it opened."""
        opened_here = self._serial is None
        try:
            return self._bring_up()
        except BaseException:
            if opened_here and self._serial is not None:
                self._serial.close()
                self._serial = None
            raise

    def _bring_up(self) -> Self:
        """start()'s work, kept apart so that reconnect() in a subclass whose start()
        does more (a deploy) only connects."""
        if self.board.console and self._serial is None:  # before anything can go wrong
            if self.console_log is None:
                stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
                self.console_log = cache_dir("logs", "console") / f"{self.board.name}-{stamp}.log"
            self._serial = SerialConsole(self.board.console, self.console_log).open()
        if self._connected():
            return self
        if self._client is not None:  # the connection dropped under us
            self._stale = (self._id, self._dir, self._remove_dir)
            self._disconnect()
            self._id = uuid.uuid4().hex
        started = time.monotonic()
        try:
            self._client = self._connect()
        except BoardUnreachable as exc:
            # sshd dropped the connection during auth (paramiko: "No existing session"),
            # as a loaded sshd does (MaxStartups): twice more, after a moment each
            if _DROPPED_IN_AUTH not in str(exc) or self._cancel.is_set():
                raise
            self._client = self._connect_again_after_drop()
        try:
            self._make_workdir()
        except BaseException:
            self._disconnect()
            raise
        self._started()
        if self._stale is not None:
            old_id, old_dir, remove = self._stale
            self._stale = None
            with contextlib.suppress(TargetError):
                self._cleanup_session(old_id, old_dir, remove)
        self.boot_seconds = time.monotonic() - started
        return self

    def close(self) -> None:
        """Kill what this target's commands left on the board (by tag and by cwd), remove
        the work dir, close the connection; best effort, never raises; safe twice."""
        if self._client is not None and self._connected():
            with contextlib.suppress(TargetError, OSError, paramiko.SSHException, EOFError):
                self._cleanup_session(self._id, self._dir, self._remove_dir)
        self._disconnect()
        self._id = uuid.uuid4().hex
        self._stale = None
        if self._serial is not None:
            self._serial.close()
            self._serial = None
        self._closed()

    def reboot(self) -> None:
        """close() then start(): a new connection and work dir. (For a real board this
        will become a power cycle through board.reboot; the kernel is not restarted yet.)"""
        self.close()
        self.start()

    def reconnect(self, timeout: float, why: str = "a reboot",
                  ready: Callable[[], bool] | None = None) -> float:
        """Connect again after `why` (a kexec, a power cycle), retrying with backoff until
        `timeout`; the seconds it took. A board whose console shows a panic meanwhile
        raises that KernelPanic; one that stays silent, BoardUnreachable. `ready`, asked
        on each new connection, tells the board we wait for from the one going away
        (a new boot id): each try is a fresh connection, so a link to a kernel that
        vanished mid-command never holds the wait up."""
        if self._client is not None:  # the old link: a dead board's TCP may look alive
            self._stale = (self._id, self._dir, self._remove_dir)
            self._disconnect()
            self._id = uuid.uuid4().hex
        start = time.monotonic()
        deadline = start + timeout
        pause = 0.5
        while True:
            if self._cancel.is_set():
                raise TargetGone(f"board {self.board.name}: cancelled while waiting for it "
                                 f"after {why}")
            try:
                self._bring_up()
                if ready is None or ready():
                    return time.monotonic() - start
                last = "it still runs the kernel from before"
                self._disconnect()
            except BoardUnreachable as exc:
                last = _first_line(str(exc))
                self._disconnect()
            self._splat_instead(f"after {why}")
            if time.monotonic() + pause > deadline:
                raise BoardUnreachable(f"board {self.board.name}: did not come back within "
                                       f"{timeout:g} s after {why} (last try: {last})")
            self._cancel.wait(pause)
            pause = min(pause * 1.5, 2.0)

    def ask(self, cmd: str, timeout: float) -> str:
        """stdout of a short harness query (`cat /proc/...`), run untagged outside the
        work dir: a hang is the link's (a kernel going away), so it raises
        BoardUnreachable and nothing is left to kill, unlike run()'s CommandTimeout."""
        rc, out, err = self._internal(cmd, timeout)
        if rc != 0:
            raise BoardUnreachable(f"board {self.board.name}: {cmd!r} failed (rc {rc}): "
                                   f"{_first_line(err.decode(errors='replace'))}")
        return out.decode(errors="replace")

    def cancel(self) -> None:
        """From another thread (Ctrl-C while start() runs there): a reconnect in progress
        gives up at once instead of waiting out the boot timeout: a connect in flight is
        closed under it, and so is a link to a board that is going away."""
        self._cancel.set()
        for client in (self._connecting, self._client):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def detach(self, script: str, timeout: float = 30.0) -> None:
        """Start `script` on the board in a session of its own and return at once: for a
        command that ends the connection (kexec -e, reboot). It is not tagged, so close()
        and a later session's cleanup leave it alone."""
        line = f"nohup setsid /bin/sh -c {shlex.quote(script)} </dev/null >/dev/null 2>&1 &"
        rc, _out, err = self._internal(line, timeout)
        if rc != 0:
            raise BoardUnreachable(f"board {self.board.name}: cannot start {script!r}: "
                                   f"{_first_line(err.decode(errors='replace'))}")

    @property
    def running(self) -> bool:
        return self._connected()

    @property
    def workdir(self) -> str:
        """The commands' cwd on the board, where relative remote paths resolve."""
        self._need_running()
        assert self._dir is not None
        return self._dir

    def processes(self) -> list[tuple[int, str]]:
        """Host processes this target started: none (paramiko runs in this process)."""
        return []

    # -- Target protocol -------------------------------------------------------------

    def console(self) -> str:
        """The serial console's text since start() (board.console), else ""."""
        return self._serial.text() if self._serial is not None else ""

    def _splat_instead(self, context: str) -> None:
        """A board that stopped answering may have said why on its console: raise that
        KernelPanic/KernelSplat rather than BoardUnreachable."""
        if self._serial is not None:
            time.sleep(0.5)  # the rest of the report is usually on its way
            check_console(self._serial.text(), context)

    def identity(self, timeout: float = 60.0) -> TargetIdentity:
        """The board's `uname -r` and BTF hash, computed by its own shell."""
        return read_identity(self, timeout)

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        transport = self._need_running()
        assert self._dir is not None
        tag = f"{self._id}.{uuid.uuid4().hex}"
        nonce = f"harness-{uuid.uuid4().hex}"
        start = time.monotonic()
        deadline = start + timeout
        try:
            rc, stdout, stderr = self._exchange(
                transport, self._wrap(self._dir, tag, nonce, cmd), deadline,
                f"command {cmd[:60]!r}")
        except _Deadline as hung:
            pgid = self._pgid(hung.stderr, nonce)
            gone = self._kill_command(pgid, tag)
            what = f"its process group {pgid}" if pgid else "its processes"
            fate = "killed" if gone else "SIGKILLed but still alive"
            raise CommandTimeout(
                f"hang: command {cmd[:60]!r} did not finish within {timeout:g} s on "
                f"{self.board.name}; {what} {'was' if pgid else 'were'} {fate}"
            ) from None
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                self._kill_command(None, tag)
            raise
        except BoardUnreachable:
            self._splat_instead(f"while running {cmd[:60]!r}")
            raise
        duration = time.monotonic() - start
        out, _ = _strip_header(stdout, f"@@{nonce}".encode())
        err, _ = _strip_header(stderr, f"@@{nonce} ".encode())
        return CommandResult(rc, out, err, duration)

    def put(self, local: Path | str, remote: str, timeout: float = 60.0) -> None:
        """Copy a host file in over SFTP, keeping its permission bits."""
        _one_line(remote)
        data = Path(local).read_bytes()
        mode = Path(local).stat().st_mode & 0o777

        def send(sftp: paramiko.SFTPClient, deadline: float) -> None:
            f = sftp.open(remote, "wb")
            with _closing_on_error(f):
                f.set_pipelined(True)
                for at in range(0, len(data), _TRANSFER_STEP):
                    f.write(data[at:at + _TRANSFER_STEP])
                    _in_time(deadline)
            f.close()  # waits for every write's answer
            sftp.chmod(remote, mode)

        self._sftp_call("put", remote, timeout, send)

    def get(self, remote: str, local: Path | str, timeout: float = 60.0) -> None:
        """Copy a board file out; a missing one raises RemoteFileError, writes nothing."""
        _one_line(remote)
        # sysfs and procfs answer a read with at most a page, so 32 KiB requests would
        # each come back short and be re-asked one by one (1300 round trips for the BTF):
        # ask for pages there. Elsewhere 4 KiB requests would cost more than they save.
        where = posixpath.normpath(posixpath.join(self._dir or "/", remote))
        chunk = 4096 if where.startswith(("/sys/", "/proc/")) else 32768

        def fetch(sftp: paramiko.SFTPClient, deadline: float) -> bytes:
            f = sftp.open(remote, "rb")
            data = bytearray()
            with _closing_on_error(f):
                size = f.stat().st_size or 0
                if size > 0:  # (readv of nothing leaves read() waiting for a prefetch)
                    for piece in f.readv([(o, min(chunk, size - o))
                                          for o in range(0, size, chunk)]):
                        data += piece  # pipelined requests up to the size stat() gave
                        _in_time(deadline)
                    f.seek(len(data))
                while piece := f.read(_TRANSFER_STEP):  # on to EOF: /proc says size 0
                    data += piece
                    _in_time(deadline)
            f.close()
            return bytes(data)

        data = self._sftp_call("get", remote, timeout, fetch)
        Path(local).write_bytes(data)

    # -- connection ----------------------------------------------------------------------

    def _who(self) -> str:
        host = f"[{self.board.host}]" if ":" in self.board.host else self.board.host
        return f"{self.board.user}@{host}:{self.board.port}"

    def _hostport(self) -> str:
        return self._who().split("@", 1)[1]

    def _connected(self) -> bool:
        if self._client is None:
            return False
        transport = self._client.get_transport()
        return transport is not None and transport.is_active()

    def _need_running(self) -> paramiko.Transport:
        if self._client is None:
            raise TargetGone(f"the SSH target {self.board.name} is not running "
                             "(start() or reboot() first)")
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise BoardUnreachable(f"the SSH connection to {self._who()} was lost "
                                   "(start() connects again)")
        return transport

    def _connect_again_after_drop(self, attempts: int = 2) -> paramiko.SSHClient:
        """_connect() after sshd dropped us during auth: up to `attempts` more tries,
        1 s then 2 s apart; the last one's error is raised."""
        for attempt in range(attempts - 1):
            time.sleep(1.0 + attempt)
            try:
                return self._connect()
            except BoardUnreachable as exc:
                if _DROPPED_IN_AUTH not in str(exc) or self._cancel.is_set():
                    raise
        time.sleep(float(attempts))
        return self._connect()

    def _connect(self) -> paramiko.SSHClient:
        board = self.board
        name = board.name
        key = board.key
        if key is not None and not Path(key).is_file():
            raise TargetSetupError(f"board {name}: key file {key} does not exist")
        passphrase = self._passphrase()
        wait = board.connect_timeout
        sock = self._through_jump(key, passphrase, wait) if board.jump else None
        client = paramiko.SSHClient()
        known = self._load_host_keys(client)
        client.set_missing_host_key_policy(_RejectUnknown())
        where = self._hostport()
        self._connecting = client
        try:
            if self._cancel.is_set():
                raise TargetGone(f"board {name}: cancelled")
            client.connect(
                board.host, port=board.port, username=board.user, sock=sock,
                key_filename=str(key) if key is not None else None, passphrase=passphrase,
                allow_agent=key is None, look_for_keys=key is None,
                timeout=wait, banner_timeout=wait, auth_timeout=wait, channel_timeout=wait,
            )
        except BaseException as exc:
            client.close()
            self._close_jump()
            if self._cancel.is_set():
                raise TargetGone(f"board {name}: cancelled while connecting") from None
            raise self._connect_error(exc, known, wait, where, passphrase) from None
        finally:
            self._connecting = None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(KEEPALIVE_SECONDS)
        return client

    def _load_host_keys(self, client: paramiko.SSHClient,
                        board: Board | None = None) -> Path | None:
        """Fill `client`'s known host keys: the known_hosts file (this target's, else
        the board's, else ~/.ssh/known_hosts if there is one) plus a key pinned on the
        board itself (board.host_key "TYPE BASE64", where the inventory has it).
        Returns the file used, for messages. `board`: another host to check the same way
        (the jump host)."""
        board = board or self.board
        known = self.known_hosts
        from_board = board.known_hosts
        if known is None and from_board:
            known = Path(from_board).expanduser()
        if known is None:
            default = Path("~/.ssh/known_hosts").expanduser()
            known = default if default.is_file() else None
        elif not known.is_file():
            raise TargetSetupError(f"board {board.name}: known_hosts file {known} "
                                   "does not exist")
        if known is not None:
            try:
                client.get_host_keys().load(str(known))
            except (OSError, paramiko.SSHException) as exc:
                raise TargetSetupError(f"board {board.name}: cannot read known_hosts "
                                       f"{known}: {_first_line(str(exc))}") from None
        pinned = board.host_key
        if pinned:
            try:
                kind, blob = str(pinned).split()[:2]
                host_key = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
            except (ValueError, TypeError, paramiko.SSHException):
                raise TargetSetupError(f"board {board.name}: host_key is not a public key "
                                       "(expected \"TYPE BASE64\")") from None
            client.get_host_keys().add(known_hosts_entry(board), host_key.get_name(), host_key)
        return known

    def _passphrase(self) -> str | None:
        """The key's passphrase where the inventory names one (Board.key_passphrase(),
        read from an environment variable); never stored, printed or put in a message."""
        try:
            return self.board.key_passphrase()
        except HarnessError as exc:  # the variable is not set: its name, not a value
            raise TargetSetupError(_first_line(str(exc))) from None

    def _connect_error(self, exc: BaseException, known: Path | None, wait: float,
                       where: str, passphrase: str | None) -> BaseException:
        """One line for a failed connect, naming no secret (no key contents, no
        passphrase, nothing from the key file)."""
        name = self.board.name
        if isinstance(exc, _UnknownHostKey):
            pin = (f"pin it in {known}" if known
                   else "pin it in a known_hosts file or the board's host_key")
            return BoardUnreachable(
                f"board {name}: host key of {where} is unknown: it offers "
                f"{exc.key.get_name()} {fingerprint(exc.key)}; check it and {pin}")
        if isinstance(exc, paramiko.BadHostKeyException):
            pins = [f"known_hosts {known}" if known else "",
                    "the board's host_key" if self.board.host_key else ""]
            return BoardUnreachable(
                f"board {name}: host key of {where} does not match the pinned one "
                f"({' / '.join(p for p in pins if p)}): it offers {exc.key.get_name()} "
                f"{fingerprint(exc.key)}, expected {fingerprint(exc.expected_key)}; "
                "a reinstalled board or someone in the middle: check it before re-pinning")
        if isinstance(exc, paramiko.PasswordRequiredException) or (
                passphrase is not None and self.board.key is not None
                and isinstance(exc, (paramiko.SSHException, ValueError))
                and not isinstance(exc, paramiko.AuthenticationException)
                and "key" in str(exc).lower()):
            if passphrase is None:
                return TargetSetupError(
                    f"board {name}: key file {self.board.key} is passphrase-protected and "
                    "no passphrase was given (name the environment variable holding it "
                    "with key_passphrase_env, or load the key into ssh-agent)")
            return TargetSetupError(
                f"board {name}: cannot decrypt key file {self.board.key} with the "
                "passphrase given (key_passphrase_env)")
        if isinstance(exc, paramiko.AuthenticationException) or (
                isinstance(exc, paramiko.SSHException)
                and "no authentication methods" in str(exc).lower()):
            how = (f"key file {self.board.key}" if self.board.key is not None
                   else "ssh-agent and default keys")
            return BoardUnreachable(
                f"board {name}: authentication failed for {self._who()} ({how})")
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            codes = {getattr(e, "errno", None) for e in exc.errors.values()}
            why = ("connection refused" if codes == {errno.ECONNREFUSED}
                   else _first_line(str(exc)))
            return BoardUnreachable(f"board {name}: cannot reach {where}: {why}")
        if isinstance(exc, socket.gaierror):
            return BoardUnreachable(f"board {name}: cannot resolve {self.board.host}: "
                                    f"{exc.strerror or exc}")
        if isinstance(exc, TimeoutError):
            return BoardUnreachable(f"board {name}: cannot reach {where}: connection "
                                    f"timed out after {wait:g} s")
        if isinstance(exc, OSError):
            return BoardUnreachable(f"board {name}: cannot reach {where}: "
                                    f"{exc.strerror or _first_line(str(exc))}")
        if isinstance(exc, (paramiko.SSHException, EOFError)):
            text = _first_line(str(exc)) or type(exc).__name__
            if "banner" in text.lower():
                text = f"no SSH banner within {wait:g} s ({text})"
            return BoardUnreachable(f"board {name}: SSH to {where} failed: {text}")
        return exc

    def _disconnect(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        self._dir = None
        self._remove_dir = False
        for thing in (sftp, client):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        self._close_jump()

    def _through_jump(self, key: Path | None, passphrase: str | None,
                      wait: float) -> paramiko.Channel:
        """A direct-tcpip channel to the board through board.jump ([user@]host[:port]),
        the jump host's key pinned like the board's, the board's key used for both."""
        board = self.board
        assert board.jump is not None
        user, _, rest = board.jump.rpartition("@")
        host, _, port_text = rest.partition(":")
        port = int(port_text) if port_text.isdigit() else 22
        jump = paramiko.SSHClient()
        via = Board(**{**dataclasses.asdict(board), "name": f"{board.name} (jump)",
                       "host": host, "port": port, "user": user or board.user, "jump": None})
        known = self._load_host_keys(jump, via)
        jump.set_missing_host_key_policy(_RejectUnknown())
        try:
            jump.connect(host, port=port, username=user or board.user,
                         key_filename=str(key) if key is not None else None,
                         passphrase=passphrase, allow_agent=key is None,
                         look_for_keys=key is None, timeout=wait, banner_timeout=wait,
                         auth_timeout=wait, channel_timeout=wait)
            transport = jump.get_transport()
            assert transport is not None
            channel = transport.open_channel("direct-tcpip", (board.host, board.port),
                                             ("127.0.0.1", 0), timeout=wait)
        except BaseException as exc:
            jump.close()
            error = self._connect_error(exc, known, wait, f"{host}:{port}", passphrase)
            raise type(error)(f"via jump host {board.jump}: {error}") from None
        self._jump = jump
        return channel

    def _close_jump(self) -> None:
        jump, self._jump = self._jump, None
        if jump is not None:
            with contextlib.suppress(Exception):
                jump.close()

    def _make_workdir(self) -> None:
        wanted = self._wanted_workdir
        if wanted is None:
            script, timeout = "mktemp -d /tmp/harness-ssh.XXXXXX", self.board.connect_timeout
        else:
            q = shlex.quote(wanted)
            script = (f"if [ -d {q} ]; then echo kept; else mkdir -p {q} && echo made; fi "
                      f"&& cd {q} && pwd")
            timeout = self.board.connect_timeout
        rc, out, err = self._internal(script, max(timeout, 10.0))
        lines = out.decode("utf-8", "replace").splitlines()
        if rc != 0 or not lines:
            detail = _first_line(err.decode("utf-8", "replace")) or f"rc {rc}"
            raise TargetSetupError(f"board {self.board.name}: cannot make a work dir: {detail}")
        if wanted is None:
            self._dir, self._remove_dir = lines[-1].strip(), True
        else:
            self._dir, self._remove_dir = lines[-1].strip(), lines[0] == "made"

    # -- commands --------------------------------------------------------------------------

    @staticmethod
    def _wrap(workdir: str, tag: str, nonce: str, cmd: str) -> str:
        """The line sshd hands the login shell: exec /bin/sh running _WRAPPER."""
        args = (_WRAPPER, _WRAPPER, workdir, tag, nonce, cmd)
        return "exec /bin/sh -c " + " ".join(shlex.quote(a) for a in args)

    @staticmethod
    def _pgid(stderr: bytes, nonce: str) -> int | None:
        _, rest = _strip_header(stderr, f"@@{nonce} ".encode())
        text = (rest or b"").decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None

    def _internal(self, script: str, timeout: float) -> tuple[int, bytes, bytes]:
        """Run a harness script (untagged, not in the work dir) through /bin/sh."""
        transport = self._need_running()
        try:
            return self._exchange(transport, "exec /bin/sh -c " + shlex.quote(script),
                                  time.monotonic() + timeout, "a harness command")
        except _Deadline:
            raise BoardUnreachable(f"board {self.board.name}: no answer from {self._who()} "
                                   f"within {timeout:g} s") from None

    def _exchange(self, transport: paramiko.Transport, line: str, deadline: float,
                  what: str) -> tuple[int, bytes, bytes]:
        """Exec `line` on a new channel; (rc, stdout, stderr) once it ended. _Deadline
        when the time runs out (the channel is closed then, the command not killed)."""
        chan = self._open(transport, line, deadline, what)
        out, err = bytearray(), bytearray()
        try:
            chan.shutdown_write()  # stdin at EOF, as /dev/null would be
            while not (chan.eof_received or chan.closed):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Deadline(bytes(err))
                select.select([chan], [], [], min(remaining, 1.0))
                self._drain(chan, out, err)
            self._drain(chan, out, err)
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise _Deadline(bytes(err))
            if chan.exit_status < 0 and self._link_died(transport):
                raise BoardUnreachable(
                    f"board {self.board.name}: the SSH connection to {self._who()} "
                    f"dropped during {what}")
            return chan.exit_status, bytes(out), bytes(err)
        finally:
            chan.close()

    @staticmethod
    def _link_died(transport: paramiko.Transport) -> bool:
        """True when the connection is gone. A channel closed without an exit status is
        either that or a wrapper killed by a signal; paramiko closes a dead link's
        channels a moment before it marks the transport inactive, hence the wait."""
        until = time.monotonic() + 1.0
        while transport.is_active():
            if time.monotonic() >= until:
                return False
            time.sleep(0.02)
        return True

    @staticmethod
    def _drain(chan: paramiko.Channel, out: bytearray, err: bytearray) -> None:
        while chan.recv_ready():
            out += chan.recv(_CHUNK)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(_CHUNK)

    def _open(self, transport: paramiko.Transport, line: str, deadline: float,
              what: str) -> paramiko.Channel:
        """A session channel executing `line`; a board that does not answer within the
        deadline (paramiko's exec request has no timeout of its own) is unreachable."""
        wait = max(0.1, deadline - time.monotonic())
        try:
            chan = transport.open_session(timeout=wait)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._channel_error(transport, what, exc) from None
        watchdog = threading.Timer(wait, chan.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            chan.exec_command(line)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            chan.close()
            raise self._channel_error(transport, what, exc) from None
        finally:
            watchdog.cancel()
        return chan

    def _channel_error(self, transport: paramiko.Transport, what: str,
                       exc: BaseException) -> BoardUnreachable:
        if not transport.is_active():
            return BoardUnreachable(f"board {self.board.name}: the SSH connection to "
                                    f"{self._who()} dropped before {what}")
        return BoardUnreachable(f"board {self.board.name}: cannot run {what} on "
                                f"{self._who()}: {_first_line(str(exc)) or 'no answer'}")

    def _kill_command(self, pgid: int | None, tag: str) -> bool:
        """SIGKILL a command's group and its tagged processes; True once none is left."""
        script = _KILL_COMMAND
        args = f"{pgid if pgid else '-'} {shlex.quote(tag)}"
        rc, _, _ = self._internal(f"set -- {args}\n{script}", _CLEANUP_TIMEOUT)
        return rc == 0

    def _cleanup_session(self, target_id: str, workdir: str | None, remove: bool) -> None:
        """Kill a session's leftovers (tag, cwd) and remove its work dir if it made it."""
        args = " ".join(shlex.quote(a) for a in (
            f"{_TAG_ENV}={target_id}.", workdir or "/nonexistent/harness-ssh",
            "rm" if remove and workdir else "keep"))
        self._internal(f"set -- {args}\n{_CLEANUP}", _CLEANUP_TIMEOUT)

    # -- files -------------------------------------------------------------------------

    def _sftp_call(self, verb: str, remote: str, timeout: float,
                   action: Callable[[paramiko.SFTPClient, float], T]) -> T:
        """`action(sftp, deadline)` on this target's SFTP session (opened on first use,
        cwd = the work dir), its failures mapped to the target errors. On a timeout or a
        broken session the session is dropped (the next call opens a new one)."""
        deadline = time.monotonic() + timeout
        transport = self._need_running()
        try:
            if self._sftp is None:
                sftp = paramiko.SFTPClient.from_transport(transport)
                if sftp is None:
                    raise paramiko.SSHException("the board offers no sftp subsystem")
                sftp.get_channel().settimeout(timeout)
                try:
                    sftp.chdir(self._dir)
                except BaseException:
                    sftp.close()
                    raise
                self._sftp = sftp
            self._sftp.get_channel().settimeout(timeout)
            return action(self._sftp, deadline)
        except TimeoutError:
            self._drop_sftp()
            raise CommandTimeout(f"hang: {verb} {remote} did not finish within {timeout:g} s "
                                 f"on {self.board.name}") from None
        except (paramiko.SSHException, EOFError) as exc:
            self._drop_sftp()
            if not transport.is_active():
                raise BoardUnreachable(f"board {self.board.name}: the SSH connection to "
                                       f"{self._who()} dropped during {verb} {remote}") from None
            raise RemoteFileError(f"{verb} {remote} failed: SFTP: "
                                  f"{_first_line(str(exc)) or type(exc).__name__}") from None
        except OSError as exc:
            raise RemoteFileError(f"{verb} {remote} failed: {exc.strerror or exc}") from None

    def _drop_sftp(self) -> None:
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()


# ---- pinning a board's host key (`harness lab trust`) ----------------------------------


def known_hosts_entry(board: Board) -> str:
    """The host field OpenSSH and paramiko use for this board: host, or [host]:port."""
    return board.host if board.port == 22 else f"[{board.host}]:{board.port}"


def offered_host_key(board: Board) -> paramiko.PKey:
    """The host key the board offers, read in the SSH handshake without logging in."""
    where = f"{board.host}:{board.port}"
    try:
        sock = socket.create_connection((board.host, board.port),
                                        timeout=board.connect_timeout)
    except OSError as exc:
        raise BoardUnreachable(f"board {board.name}: cannot connect to {where}: "
                               f"{exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=board.connect_timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise BoardUnreachable(f"board {board.name}: no SSH handshake with {where}: "
                               f"{_first_line(str(exc)) or type(exc).__name__}") from None
    finally:
        transport.close()


def trust(board: Board, known_hosts: Path, *, replace: bool = False) -> tuple[str, bool]:
    """Pin the key the board offers in `known_hosts` (made if missing): returns its
    fingerprint and whether the file changed. A different key already pinned for the
    board is refused unless `replace` (that is what a host key mismatch looks like)."""
    key = offered_host_key(board)
    entry = known_hosts_entry(board)
    keys = paramiko.HostKeys()
    if known_hosts.is_file():
        keys.load(str(known_hosts))
    pinned = keys.lookup(entry) or {}
    old = pinned.get(key.get_name())
    if old is not None and old == key:
        return fingerprint(key), False
    if pinned and not replace:
        have = ", ".join(f"{kind} {fingerprint(k)}" for kind, k in pinned.items())
        raise BoardUnreachable(
            f"board {board.name}: {known_hosts} pins {have} for {entry}, but it offers "
            f"{key.get_name()} {fingerprint(key)}: a changed host key (--replace if you "
            "know why)")
    if replace and entry in keys:
        del keys[entry]
    keys.add(entry, key.get_name(), key)
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    tmp = known_hosts.with_name(f".{known_hosts.name}.tmp")
    keys.save(str(tmp))
    tmp.replace(known_hosts)
    return fingerprint(key), True
