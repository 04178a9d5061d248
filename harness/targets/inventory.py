"""The lab inventory (lab.toml): boards reached over SSH, validated before anything runs.

A broken inventory is a one-line error naming the file, the board and the field, so a
nightly job fails at once rather than halfway through a suite.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.arch import ARCHES, lookup
from harness.errors import UsageError

SPELLINGS = tuple(s for a in ARCHES.values() for s in a.spellings)

_DEFAULTS = {"user": "root", "port": 22, "connect_timeout": 10, "command_timeout": 300}
_FIELDS = {"name", "arch", "host", "user", "port", "key", "console", "baud", "reboot",
           "connect_timeout", "command_timeout"}


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
    console: str | None
    baud: int
    reboot: str
    connect_timeout: float
    command_timeout: float


def _need(value: object, kind: type | tuple[type, ...], where: str) -> object:
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InventoryError(f"{where}: expected {names}, got {value!r}")
    return value


def load_inventory(path: str | Path) -> list[Board]:
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InventoryError(f"{path}: no such lab inventory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: not valid TOML: {exc}") from None
    defaults = dict(_DEFAULTS)
    defaults.update(_need(data.get("defaults", {}), dict, f"{path}: [defaults]"))
    boards_raw = _need(data.get("board", []), list, f"{path}: [[board]]")
    if not boards_raw:
        raise InventoryError(f"{path}: no [[board]] entries")
    boards: list[Board] = []
    for index, raw in enumerate(boards_raw, 1):
        where = f"{path}: board {index}"
        _need(raw, dict, where)
        merged = {**defaults, **raw}
        unknown = sorted(set(merged) - _FIELDS)
        if unknown:
            raise InventoryError(f"{where}: unknown field {unknown[0]!r}")
        for field in ("name", "arch", "host"):
            if field not in merged:
                raise InventoryError(f"{where}: missing {field!r}")
        name = str(_need(merged["name"], str, f"{where}: name"))
        where = f"{path}: board {name!r}"
        if str(merged["arch"]) not in SPELLINGS:
            raise InventoryError(f"{where}: arch {merged['arch']!r} is not one of "
                                 f"{', '.join(SPELLINGS)}")
        merged["arch"] = lookup(str(merged["arch"])).name
        port = int(_need(merged["port"], int, f"{where}: port"))  # type: ignore[arg-type]
        if not 0 < port < 65536:
            raise InventoryError(f"{where}: port {port} out of range")
        key = merged.get("key")
        boards.append(Board(
            name=name, arch=merged["arch"], host=str(_need(merged["host"], str, f"{where}: host")),
            user=str(_need(merged["user"], str, f"{where}: user")), port=port,
            key=Path(str(_need(key, str, f"{where}: key"))).expanduser() if key else None,
            console=merged.get("console"), baud=int(merged.get("baud", 115200)),
            reboot=str(merged.get("reboot", "ssh")),
            connect_timeout=float(_need(merged["connect_timeout"], (int, float),
                                        f"{where}: connect_timeout")),  # type: ignore[arg-type]
            command_timeout=float(_need(merged["command_timeout"], (int, float),
                                        f"{where}: command_timeout")),  # type: ignore[arg-type]
        ))
    names = [b.name for b in boards]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InventoryError(f"{path}: board name {duplicate!r} appears twice")
    return boards
