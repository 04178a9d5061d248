"""The lab inventory (lab.toml): boards reached over SSH, validated before anything runs.

A broken inventory is a one-line error naming the file, the board and the key, so a
nightly job fails at once rather than halfway through a suite. Secrets never live in the
file: a key's passphrase is named by the environment variable that holds it
(`key_passphrase_env`), and a `password` key is refused; a Board's repr shows no secret.

Host keys are pinned: `host_key` ("ssh-ed25519 AAAA...") on the board, or a lab-wide
`known_hosts` file (relative paths are relative to lab.toml); a board whose key is in
neither is refused when connecting, never trusted on first use.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.arch import SPELLINGS, lookup
from harness.errors import UsageError

_DEFAULTS: dict[str, object] = {"user": "root", "port": 22, "connect_timeout": 10,
                                "command_timeout": 300, "boot_timeout": 180,
                                "deploy": "kexec"}
_STRINGS = ("host", "user", "key", "console", "reboot", "host_key", "jump", "power_on",
            "power_off", "power_cycle", "deploy", "cmdline", "key_passphrase_env",
            "known_hosts")
_NUMBERS = ("connect_timeout", "command_timeout", "boot_timeout")
_FIELDS = {"name", "arch", "port", "baud", "tags", "kconfig", *_STRINGS, *_NUMBERS}
_SECRET_KEYS = {"password", "passphrase", "key_passphrase"}


class InventoryError(UsageError):
    """lab.toml is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Board:
    name: str
    arch: str
    host: str
    user: str
    port: int
    key: Path | None
    console: str | None  # a command pexpect drives (picocom, socat, conserver) or a tty
    baud: int
    reboot: str  # "ssh" (reboot over SSH) or a command that power-cycles the board
    connect_timeout: float
    command_timeout: float
    boot_timeout: float = 180.0
    host_key: str | None = None  # pinned "TYPE BASE64" public host key
    known_hosts: Path | None = None  # a pinned OpenSSH known_hosts file
    jump: str | None = None  # [user@]host[:port] of a jump host
    power_on: str | None = None
    power_off: str | None = None
    power_cycle: str | None = None
    deploy: str = "kexec"  # "kexec", or a hook command with {image} {modules}
    cmdline: str | None = None  # kexec command line (None: the running kernel's)
    tags: tuple[str, ...] = ()
    # Kconfig fragments a kernel built for this board merges after the project's
    # (its NIC, its console, kexec): what `harness run --board` builds with.
    kconfig: tuple[Path, ...] = ()
    key_passphrase_env: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def key_passphrase(self) -> str | None:
        """The key's passphrase from the named environment variable (None: no passphrase)."""
        if not self.key_passphrase_env:
            return None
        value = os.environ.get(self.key_passphrase_env)
        if value is None:
            raise InventoryError(f"board {self.name!r}: environment variable "
                                 f"{self.key_passphrase_env} (key_passphrase_env) is not set")
        return value


def _need(value: object, kind: type | tuple[type, ...], where: str) -> object:
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        shown = "a secret" if "password" in where or "passphrase" in where else repr(value)
        raise InventoryError(f"{where}: expected {names}, got {shown}")
    return value


def _path(value: object, base: Path, where: str) -> Path:
    path = Path(str(_need(value, str, where))).expanduser()
    return path if path.is_absolute() else base / path


def _board(merged: dict[str, object], path: Path, index: int) -> Board:
    where = f"{path}: board {index}"
    secret = sorted(set(merged) & _SECRET_KEYS)
    if secret:
        raise InventoryError(f"{where}: {secret[0]!r}: secrets do not belong in lab.toml; "
                             "use a key, with key_passphrase_env naming the variable that "
                             "holds its passphrase")
    unknown = sorted(set(merged) - _FIELDS)
    if unknown:
        raise InventoryError(f"{where}: unknown key {unknown[0]!r}")
    for key in ("name", "arch", "host"):
        if key not in merged:
            raise InventoryError(f"{where}: missing {key!r}")
    name = str(_need(merged["name"], str, f"{where}: name"))
    where = f"{path}: board {name!r}"
    for key in _STRINGS:
        if key in merged:
            _need(merged[key], str, f"{where}: {key}")
    numbers = {key: float(_need(merged[key], (int, float), f"{where}: {key}"))  # type: ignore[arg-type]
               for key in _NUMBERS}
    for key, value in numbers.items():
        if value <= 0:
            raise InventoryError(f"{where}: {key} must be positive, got {value:g}")
    if str(merged["arch"]) not in SPELLINGS:
        raise InventoryError(f"{where}: arch {merged['arch']!r} is not one of "
                             f"{', '.join(SPELLINGS)}")
    port = int(_need(merged["port"], int, f"{where}: port"))  # type: ignore[arg-type]
    if not 0 < port < 65536:
        raise InventoryError(f"{where}: port {port} out of range")
    tags = _need(merged.get("tags", []), list, f"{where}: tags")
    for tag in tags:  # type: ignore[union-attr]
        _need(tag, str, f"{where}: tags")
    fragments = [_path(f, path.parent, f"{where}: kconfig")
                 for f in _need(merged.get("kconfig", []), list, f"{where}: kconfig")]  # type: ignore[union-attr]
    missing = next((f for f in fragments if not f.is_file()), None)
    if missing is not None:
        raise InventoryError(f"{where}: kconfig: no such fragment {missing}")
    host_key = merged.get("host_key")
    if host_key is not None and len(str(host_key).split()) < 2:
        raise InventoryError(f"{where}: host_key must be 'TYPE BASE64' "
                             "(as `harness lab trust` prints it)")
    deploy = str(merged["deploy"])
    if deploy != "kexec" and "{image}" not in deploy:
        raise InventoryError(f"{where}: deploy is 'kexec' or a command using {{image}}")
    base = path.parent

    def text(key: str) -> str | None:
        return str(merged[key]) if key in merged else None

    return Board(
        name=name, arch=lookup(str(merged["arch"])).name, host=str(merged["host"]),
        user=str(merged["user"]), port=port,
        key=_path(merged["key"], base, f"{where}: key") if "key" in merged else None,
        console=text("console"), baud=int(_need(merged.get("baud", 115200), int,  # type: ignore[arg-type]
                                                f"{where}: baud")),
        reboot=str(merged.get("reboot", "ssh")),
        connect_timeout=numbers["connect_timeout"], command_timeout=numbers["command_timeout"],
        boot_timeout=numbers["boot_timeout"], host_key=text("host_key"),
        known_hosts=(_path(merged["known_hosts"], base, f"{where}: known_hosts")
                     if "known_hosts" in merged else None),
        jump=text("jump"), power_on=text("power_on"), power_off=text("power_off"),
        power_cycle=text("power_cycle"), deploy=deploy, cmdline=text("cmdline"),
        tags=tuple(str(t) for t in tags),  # type: ignore[union-attr]
        kconfig=tuple(fragments),
        key_passphrase_env=text("key_passphrase_env"),
    )


def load_inventory(path: str | Path) -> list[Board]:
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InventoryError(f"{path}: no such lab inventory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: not valid TOML: {exc}") from None
    defaults = dict(_DEFAULTS)
    defaults.update(_need(data.get("defaults", {}), dict, f"{path}: [defaults]"))  # type: ignore[arg-type]
    boards_raw = _need(data.get("board", []), list, f"{path}: [[board]]")
    if not boards_raw:
        raise InventoryError(f"{path}: no [[board]] entries")
    boards = [_board({**defaults, **_need(raw, dict, f"{path}: board {index}")},  # type: ignore[dict-item]
                     path, index)
              for index, raw in enumerate(boards_raw, 1)]  # type: ignore[arg-type]
    names = [b.name for b in boards]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InventoryError(f"{path}: board name {duplicate!r} appears twice")
    return boards


DEFAULT_LAB = "lab.toml"


def add_lab_option(parser: argparse.ArgumentParser, what: str = "the inventory") -> None:
    """`--lab FILE`, the same on every command that reads the inventory."""
    parser.add_argument("--lab", default=DEFAULT_LAB, metavar="FILE",
                        help=f"{what} (default ./{DEFAULT_LAB})")


def find_board(boards: list[Board], name: str) -> Board:
    for board in boards:
        if board.name == name:
            return board
    known = ", ".join(b.name for b in boards)
    raise InventoryError(f"no board {name!r} in the inventory (known: {known})")
