"""A private, real OpenSSH server on 127.0.0.1 for SSH target tests.

PrivateSshd(tmp_dir) makes a host key and a client key (ed25519, no passphrase), an
authorized_keys, an sshd_config that listens on a free port of 127.0.0.1 only and
accepts nothing but that client key, and runs `/usr/sbin/sshd -D -e` until the `with`
block ends. The "board" it offers is this host, logged in as the current user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from harness.arch import host
from harness.procs import spawn
from harness.targets.inventory import Board
from harness.targets.loopback import free_port, public_key, sshd_config

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
READY_TIMEOUT = 10.0


def keygen(path: Path, comment: str = "harness-test") -> Path:
    """A new passphrase-less ed25519 key at `path` (and `path`.pub)."""
    keygen_bin = shutil.which("ssh-keygen")
    if keygen_bin is None:
        pytest.skip("ssh-keygen is not installed")
    subprocess.run([keygen_bin, "-q", "-t", "ed25519", "-N", "", "-C", comment,
                    "-f", str(path)], check=True, capture_output=True)
    return path


def _children(pid: int) -> list[int]:
    """Every descendant of `pid`, read from /proc."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
                parents[int(name)] = int(stat[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class PrivateSshd:
    """A real sshd for tests; see the module docstring. Attributes once started: port,
    client_key, host_key, known_hosts (pinning the host key as `[127.0.0.1]:PORT`)."""

    def __init__(self, tmp_dir: Path | str, *, login_noise: bool = False) -> None:
        self.dir = Path(tmp_dir)
        self.login_noise = login_noise
        self.port = 0
        self.client_key = self.dir / "client_key"
        self.host_key = self.dir / "host_key"
        self.known_hosts = self.dir / "known_hosts"
        self.authorized_keys = self.dir / "authorized_keys"
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        if not SSHD.is_file() or not os.access(SSHD, os.X_OK):
            pytest.skip(f"{SSHD} is not installed (openssh-server)")
        if shutil.which("ssh-keygen") is None:
            pytest.skip("ssh-keygen is not installed")
        self.dir.mkdir(parents=True, exist_ok=True)
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation chroot
        keygen(self.host_key, "harness-test-host")
        keygen(self.client_key, "harness-test-client")
        self.authorized_keys.write_text(public_key(self.client_key) + "\n")
        for _attempt in range(3):  # another process may take the free port first
            self.port = free_port()
            self._write_config()
            if self._launch():
                break
        else:
            raise RuntimeError(f"sshd did not come up: {self._log_tail()}")
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public_key(self.host_key)}\n")
        return self

    def board(self, **overrides: Any) -> Board:
        """An inventory Board for this server (the current user, the client key)."""
        board = Board(
            name="private-sshd", arch=host().name, host="127.0.0.1",
            user=pwd.getpwuid(os.getuid()).pw_name, port=self.port, key=self.client_key,
            console=None, baud=115200, reboot="ssh", connect_timeout=5.0,
            command_timeout=60.0,
        )
        return dataclasses.replace(board, **overrides)

    def kill(self) -> None:
        """SIGKILL the listener and every sshd process serving a connection: to the
        client, a board that died (its commands' processes are left alone)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        sessions = [p for p in _children(self.proc.pid) if _comm(p).startswith("sshd")]
        self.proc.kill()
        self.proc.wait()
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the listener and its connections' sshd processes, and wait for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            sessions = [p for p in _children(self.proc.pid) if _comm(p).startswith("sshd")]
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for pid in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.proc = None

    # -- internals -----------------------------------------------------------------------

    def _write_config(self) -> None:
        # SHLVL=1: bash, as the login shell sshd runs each command with, then skips
        # ~/.bashrc (this host's runs `pyenv init`, 80 ms a command). login_noise: a
        # BASH_ENV that prints to stdout and stderr before every command, as a chatty rc
        # file on a board would.
        env = "SHLVL=1"
        if self.login_noise:
            noise = self.dir / "noise.sh"
            noise.write_text("echo 'login noise on stdout'; echo 'login noise on stderr' >&2\n")
            env += f" BASH_ENV={noise}"
        self.config.write_text(sshd_config(
            port=self.port, listen="127.0.0.1", host_key=self.host_key,
            authorized_keys=self.authorized_keys, pid_file=self.dir / "sshd.pid", set_env=env))
        self.config.chmod(0o600)

    def _launch(self) -> bool:
        """Start sshd; True once it answers with an SSH banner, False if it exits."""
        with self.log.open("ab") as log:
            # In its own session, and SIGTERMed if the test process dies first.
            self.proc = spawn([str(SSHD), "-D", "-e", "-f", str(self.config)],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return True
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd on port {self.port} sent no banner within "
                           f"{READY_TIMEOUT:g} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "no log"
