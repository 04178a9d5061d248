"""Kconfig fragments: parse, merge in order, check that every requested symbol took.

Fragments are `CONFIG_X=y|m|n|value` and `# CONFIG_X is not set` lines; a later fragment
overrides an earlier one. After olddefconfig every requested symbol is compared with the
final .config, because Kconfig silently drops what it cannot satisfy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

PROJECT_KCONFIGS = Path(__file__).resolve().parent.parent.parent / "kconfigs"
STANDARD_FRAGMENTS = ("base", "vng", "hid", "{arch}", "trim")

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


class ConfigError(UsageError):
    """A fragment is malformed or names a symbol this tree does not have."""


@dataclass(frozen=True)
class Request:
    symbol: str  # without the CONFIG_ prefix
    value: str  # "y", "m", "n", a number or a quoted string
    origin: str  # fragment:line, for error messages


@dataclass(frozen=True)
class Fragment:
    name: str
    path: Path
    text: str


def standard_fragments(arch: str) -> list[Fragment]:
    """The project's fragments, in merge order, for `arch`."""
    fragments = []
    for template in STANDARD_FRAGMENTS:
        path = PROJECT_KCONFIGS / f"{template.format(arch=arch)}.config"
        fragments.append(Fragment(path.name, path, path.read_text()))
    return fragments


def user_fragment(spec: str) -> Fragment:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UsageError(f"--kconfig {spec}: no such file")
    return Fragment(path.name, path.resolve(), path.read_text(errors="replace"))


def parse_fragment(fragment: Fragment) -> list[Request]:
    requests = []
    for number, raw in enumerate(fragment.text.splitlines(), 1):
        line = raw.strip()
        origin = f"{fragment.name}:{number}"
        if not line:
            continue
        if match := _UNSET.match(line):
            requests.append(Request(match.group(1)[7:], "n", origin))
        elif match := _SET.match(line):
            requests.append(Request(match.group(1)[7:], match.group(2).strip(), origin))
        elif line.startswith("#"):
            continue
        else:
            raise ConfigError(f"{origin}: not a Kconfig assignment: {line[:60]!r}")
    return requests


def merge(fragments: list[Fragment]) -> dict[str, Request]:
    """Later fragments win; the result keeps the winning request with its origin."""
    merged: dict[str, Request] = {}
    for fragment in fragments:
        for request in parse_fragment(fragment):
            merged.pop(request.symbol, None)
            merged[request.symbol] = request
    return merged


def read_config(path: Path) -> dict[str, str]:
    """A .config as symbol -> value ("n" for `is not set`)."""
    return read_config_text(path.read_text(errors="replace"))


def read_config_text(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if match := _SET.match(line):
            values[match.group(1)[7:]] = match.group(2)
        elif match := _UNSET.match(line):
            values[match.group(1)[7:]] = "n"
    return values


def apply_requests(config: Path, requests: dict[str, Request]) -> None:
    """Rewrite `config` with the requests applied (olddefconfig settles the rest)."""
    lines = []
    for line in config.read_text(errors="replace").splitlines():
        match = _SET.match(line) or _UNSET.match(line)
        if match and match.group(1)[7:] in requests:
            continue
        lines.append(line)
    for request in requests.values():
        if request.value == "n":
            lines.append(f"# CONFIG_{request.symbol} is not set")
        else:
            lines.append(f"CONFIG_{request.symbol}={request.value}")
    config.write_text("\n".join(lines) + "\n")


def kconfig_symbols(tree: Path) -> set[str]:
    """Every symbol some Kconfig file of the tree declares (to catch typos by name)."""
    declared: set[str] = set()
    pattern = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)", re.M)
    for path in tree.rglob("Kconfig*"):
        if path.is_file() and "Documentation" not in path.parts:
            declared.update(pattern.findall(path.read_text(errors="replace")))
    return declared


def unknown_symbols(tree: Path, requests: dict[str, Request]) -> list[Request]:
    declared = kconfig_symbols(tree)
    return [r for r in requests.values() if r.symbol not in declared]


@dataclass(frozen=True)
class Drift:
    symbol: str
    wanted: str
    got: str
    origin: str

    def __str__(self) -> str:
        return f"CONFIG_{self.symbol} (wanted {self.wanted}, got {self.got}; {self.origin})"


def _normal(value: str) -> str:
    return value.strip('"') if value.startswith('"') else value


def drift(requests: dict[str, Request], final: dict[str, str]) -> list[Drift]:
    """Requested symbols whose final value differs from what was asked."""
    found = []
    for request in requests.values():
        got = final.get(request.symbol, "n")
        if _normal(got) != _normal(request.value):
            found.append(Drift(request.symbol, request.value,
                               "unset" if request.symbol not in final else got, request.origin))
    return found
