"""A loopback lab board: a QEMU guest that stands in for real hardware on this machine.

What the SSH target, deploy and the lab tooling need from a board, made of real parts:
the guest boots a built kernel (virtme-ng, this host's root shared read-only) and runs
this host's OpenSSH server as root, reached through QEMU's user-mode network with a
`hostfwd` on 127.0.0.1 only; its console (the kernel's serial output and the boot
script's) is appended to a file a console command tails; power on/off/cycle are shell
commands (`python3 -m harness.targets.loopback on DIR`) that start or kill that QEMU, a
stand-in PDU. `create()` writes the keys, the sshd config and a lab.toml that describes
the board exactly as a real one would be described, so everything above it goes through
lab.toml + SSH and never learns that the board is a guest.

The kernel needs a NIC and kexec (kconfigs/board.config); the root needs sshd and
kexec-tools (scripts/setup.sh). x86_64 only: an arm64 guest cannot boot on this host's
root and the cached arm64 tree has no sshd.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.arch import X86_64, lookup
from harness.procs import group_members, signal_group
from harness.targets import procs
from harness.targets.base import BOOT_ID
from harness.targets.errors import TargetSetupError
from harness.targets.vng import BootSpec, ensure_udev, ensure_vng, vng_command

SSHD = Path("/usr/sbin/sshd")
STATE_FILE = "board.json"
BANNER_TIMEOUT = 2.0
BOARD_FRAGMENT = Path(__file__).resolve().parents[2] / "kconfigs" / "board.config"


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ssh_banner(port: int, host: str = "127.0.0.1", timeout: float = BANNER_TIMEOUT) -> bool:
    """True if an SSH server answers on host:port with its banner."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def sshd_config(*, port: int, listen: str, host_key: Path, authorized_keys: Path,
                pid_file: Path, set_env: str = "SHLVL=1") -> str:
    """An sshd_config that accepts only the keys in `authorized_keys`.

    SHLVL=1 in the session's environment: bash, the login shell of each command, then
    skips ~/.bashrc (this host's runs `pyenv init`, 80 ms a command)."""
    return "\n".join([
        f"SetEnv {set_env}",
        f"Port {port}",
        f"ListenAddress {listen}",
        f'HostKey "{host_key}"',
        f'PidFile "{pid_file}"',
        f'AuthorizedKeysFile "{authorized_keys}"',
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp",
        "X11Forwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "",
    ])


def keygen(path: Path, comment: str, passphrase: str = "") -> Path:
    """A new ed25519 key at `path` (and `path`.pub), passphrase-less unless given."""
    proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C",
                           comment, "-f", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise TargetSetupError(f"ssh-keygen failed: {proc.stderr.strip()}")
    return path


def public_key(path: Path) -> str:
    """`type base64` of a key's .pub file, without its comment."""
    kind, blob = Path(f"{path}.pub").read_text().split()[:2]
    return f"{kind} {blob}"


@dataclass(frozen=True)
class LoopbackBoard:
    """One board's state dir and what it was created with (saved as board.json)."""

    dir: Path
    name: str
    arch: str
    kernel: Path  # the image the board boots at power-on (its "flash")
    port: int
    marker: str  # procs.MARKER_ENV value of this board's QEMU processes
    memory: str = "1G"
    boot_timeout: float = 120.0
    key_passphrase_env: str | None = None  # the variable's name only, never its value

    @property
    def host_key(self) -> Path:
        return self.dir / "host_key"

    @property
    def client_key(self) -> Path:
        return self.dir / "client_key"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def events_log(self) -> Path:
        """One line per boot of the board's script: `BOOT_ID sshd on NIC, RELEASE`."""
        return self.dir / "events.log"

    @property
    def lab_toml(self) -> Path:
        return self.dir / "lab.toml"

    @property
    def pid_file(self) -> Path:
        return self.dir / "vng.pid"

    def power_command(self, verb: str) -> str:
        """The shell command the inventory runs to power the board `verb` (on/off/cycle)."""
        return shlex.join([sys.executable, "-m", "harness.targets.loopback", verb,
                           str(self.dir)])

    def save(self) -> None:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        tmp = self.dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(self.dir / STATE_FILE)


def load(state_dir: Path | str) -> LoopbackBoard:
    """The board whose state dir is `state_dir` (made by create())."""
    path = Path(state_dir) / STATE_FILE
    try:
        data = json.loads(path.read_text())
        return LoopbackBoard(**{**data, "dir": Path(data["dir"]), "kernel": Path(data["kernel"])})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TargetSetupError(f"{path}: not a loopback board state file ({exc})") from None


def create(state_dir: Path | str, kernel: Path | str, *, name: str = "loopback",
           arch: str = X86_64.name, port: int | None = None, memory: str = "1G",
           boot_timeout: float = 120.0,
           key_passphrase_env: str | None = None) -> LoopbackBoard:
    """Write a new board's keys, sshd config, state and lab.toml into `state_dir`.

    key_passphrase_env: the client key gets the passphrase this environment variable
    holds, and lab.toml names the variable (as a lab would), never the value."""
    if lookup(arch) is not X86_64 or not X86_64.is_host:
        raise TargetSetupError(f"a loopback board boots on this host's root: {X86_64.name} "
                               f"on an {X86_64.name} host only, not {arch}")
    if not SSHD.is_file():
        raise TargetSetupError(f"{SSHD} is not installed (scripts/setup.sh: openssh-server)")
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    passphrase = ""
    if key_passphrase_env is not None:
        if not os.environ.get(key_passphrase_env):
            raise TargetSetupError(f"{key_passphrase_env} (key_passphrase_env) is not set")
        passphrase = os.environ[key_passphrase_env]
    board = LoopbackBoard(state, name, X86_64.name, Path(kernel).resolve(),
                          port or free_port(), uuid.uuid4().hex, memory, boot_timeout,
                          key_passphrase_env)
    for key in (board.host_key, board.client_key):
        for path in (key, Path(f"{key}.pub")):
            path.unlink(missing_ok=True)
    keygen(board.host_key, f"{name}-host")
    keygen(board.client_key, f"{name}-client", passphrase)
    (state / "authorized_keys").write_text(public_key(board.client_key) + "\n")
    config = state / "sshd_config"
    config.write_text(sshd_config(port=22, listen="0.0.0.0", host_key=board.host_key,
                                  authorized_keys=state / "authorized_keys",
                                  pid_file=Path("/run/sshd-loopback.pid")))
    config.chmod(0o600)
    board.save()
    board.lab_toml.write_text(inventory_text(board))
    return board


def inventory_text(board: LoopbackBoard) -> str:
    """lab.toml for the board, as a lab would write it for real hardware."""
    lines = [
        "# A loopback board (harness/targets/loopback.py): a QEMU guest behind 127.0.0.1.",
        "[[board]]",
        f'name = "{board.name}"',
        f'arch = "{board.arch}"',
        'host = "127.0.0.1"',
        f"port = {board.port}",
        'user = "root"',
        f"key = {json.dumps(str(board.client_key))}",
        f'host_key = "{public_key(board.host_key)}"',
        f"console = {json.dumps(shlex.join(['tail', '-n', '0', '-F', str(board.console_log)]))}",
        f"power_on = {json.dumps(board.power_command('on'))}",
        f"power_off = {json.dumps(board.power_command('off'))}",
        f"power_cycle = {json.dumps(board.power_command('cycle'))}",
        f"reboot = {json.dumps(board.power_command('cycle'))}",
        'deploy = "kexec"',
        f"kconfig = [{json.dumps(str(BOARD_FRAGMENT))}]",
        # a TCG guest's sshd on a loaded 2-core host took over 5 s to send its banner
        "connect_timeout = 15",
        f"boot_timeout = {board.boot_timeout:g}",
        'tags = ["loopback", "tcg"]',
        *([f'key_passphrase_env = "{board.key_passphrase_env}"']
          if board.key_passphrase_env else []),
        "",
    ]
    return "\n".join(lines)


def boot_script(board: LoopbackBoard) -> str:
    """What the guest runs after virtme-ng's init: bring the NIC up, serve SSH, stay up.

    QEMU's user network hands out 10.0.2.15 with the host at 10.0.2.2. A kexec'd kernel
    reuses the command line, so virtme-ng's init runs this again after a deploy. If sshd
    dies the board stays up without it (a board whose sshd crashed). Its own lines go
    to events.log in the state dir, not to the console, where vng's two streams mix."""
    config = board.dir / "sshd_config"
    events = shlex.quote(str(board.events_log))
    return "; ".join([
        "ip link set lo up",
        "nic=$(ls /sys/class/net | grep -v '^lo$' | head -n1)",
        'ip link set "$nic" up',
        'ip addr add 10.0.2.15/24 dev "$nic"',
        "ip route add default via 10.0.2.2",
        "mkdir -p /run/sshd",
        # virtme-ng's /etc overlay locks root ("!"), and sshd without PAM refuses a
        # locked account even for a key; "*" means no password, key logins allowed.
        # (virtme-ng bind-mounts the file: rewrite it in place, sed -i cannot rename)
        "shadow=$(sed 's/^root:[^:]*:/root:*:/' /etc/shadow)",
        "printf '%s\\n' \"$shadow\" > /etc/shadow",
        f'echo "$(cat {BOOT_ID}) sshd on $nic, $(uname -r)" >> {events}',
        f"{SSHD} -D -e -f {shlex.quote(str(config))}",
        f'echo "$(cat {BOOT_ID}) sshd exited rc=$?" >> {events}',
        "while :; do sleep 3600; done",
    ])


def boot_spec(board: LoopbackBoard) -> BootSpec:
    forward = f"hostfwd=tcp:127.0.0.1:{board.port}-:22"
    return BootSpec(
        arch=board.arch, kernel=board.kernel, root=None, memory=board.memory,
        rwdirs=(str(board.dir),),
        extra_qemu_opts=("-netdev", f"user,id=board0,{forward}",
                         "-device", "virtio-net-pci,netdev=board0"),
    )


def _pid(board: LoopbackBoard) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(board.pid_file.read_text())
    return None


def running(board: LoopbackBoard) -> bool:
    """True while the board's QEMU (or the vng that starts it) is alive."""
    pid = _pid(board)
    alive_group = pid is not None and bool(group_members(pid))
    return alive_group or bool(procs.guest_processes(board.marker))


def power_on(board: LoopbackBoard) -> None:
    """Start the board's guest in the background, detached from this process (a PDU
    outlet stays on after the PDU command returns); a no-op if it is on."""
    if running(board):
        return
    if not board.kernel.is_file():
        raise TargetSetupError(f"board {board.name}: kernel image {board.kernel} is gone")
    ensure_udev()
    argv = vng_command(boot_spec(board), boot_script(board), vng=ensure_vng())
    env = dict(os.environ, **{procs.MARKER_ENV: board.marker})
    with open(board.console_log, "ab") as console:
        console.write(f"\n=== power on {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        console.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console,
                                stderr=console, env=env, cwd="/", start_new_session=True)
    board.pid_file.write_text(f"{proc.pid}\n")


def power_off(board: LoopbackBoard) -> None:
    """Cut the power: kill the guest's processes at once, as an outlet would."""
    pid = _pid(board)
    if pid is not None:
        signal_group(pid, signal.SIGKILL)
    procs.kill_tree(pid, board.marker)
    board.pid_file.unlink(missing_ok=True)
    with contextlib.suppress(OSError), open(board.console_log, "ab") as console:
        console.write(f"\n=== power off {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())


def wait_ssh(board: LoopbackBoard, timeout: float | None = None) -> float:
    """Seconds until the board's sshd answers; TargetSetupError after `timeout`."""
    start = time.monotonic()
    deadline = start + (board.boot_timeout if timeout is None else timeout)
    while time.monotonic() < deadline:
        if ssh_banner(board.port):
            return time.monotonic() - start
        if not running(board):
            break
        time.sleep(0.3)
    tail = board.console_log.read_text(errors="replace").strip().splitlines()[-2:] \
        if board.console_log.is_file() else []
    raise TargetSetupError(f"board {board.name}: no SSH on 127.0.0.1:{board.port} "
                           f"({'QEMU exited' if not running(board) else 'timed out'}); "
                           f"console: {' | '.join(tail) or '(empty)'}")


def flash(board: LoopbackBoard, image: Path) -> LoopbackBoard:
    """Write `image` to the board's "flash": the kernel it boots at the next power-on,
    as a deploy hook writes an SD card or eMMC (copied, so a rebuilt image in the build
    cache does not change what the board boots)."""
    if not image.is_file():
        raise TargetSetupError(f"board {board.name}: no kernel image {image} to flash")
    stored = board.dir / "flash" / image.name
    stored.parent.mkdir(exist_ok=True)
    tmp = stored.with_name(f".{image.name}.tmp")
    shutil.copyfile(image, tmp)
    tmp.replace(stored)
    flashed = dataclasses.replace(board, kernel=stored)
    flashed.save()
    return flashed


def main(argv: list[str] | None = None) -> int:
    """`python3 -m harness.targets.loopback on|off|cycle|status|flash DIR [IMAGE]`: the
    stand-in PDU, and the stand-in for a deploy hook's flashing tool."""
    parser = argparse.ArgumentParser(prog="python3 -m harness.targets.loopback",
                                     description="power a loopback board, or flash it")
    parser.add_argument("verb", choices=("on", "off", "cycle", "status", "flash"))
    parser.add_argument("dir", type=Path, help="the board's state dir (from create())")
    parser.add_argument("image", type=Path, nargs="?", help="flash: the kernel image")
    args = parser.parse_args(argv)
    try:
        board = load(args.dir)
        if args.verb == "flash":
            if args.image is None:
                parser.error("flash needs an IMAGE")
            flash(board, args.image)
        if args.verb in ("off", "cycle"):
            power_off(board)
        if args.verb in ("on", "cycle"):
            power_on(board)
        if args.verb == "status":
            print("on" if running(board) else "off")
    except TargetSetupError as exc:
        print(f"loopback: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
