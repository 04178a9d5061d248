"""Kconfig fragments: parse, merge in order, check that every requested symbol took.

Fragments are `CONFIG_X=y|m|n|value` and `# CONFIG_X is not set` lines; a later fragment
overrides an earlier one. After olddefconfig every requested symbol is compared with the
final .config, because Kconfig silently drops what it cannot satisfy.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

PROJECT_KCONFIGS = Path(__file__).resolve().parent.parent.parent / "kconfigs"
STANDARD_FRAGMENTS = ("base", "vng", "hid", "{arch}", "trim")
TRIM = "trim"  # pins off default-y symbols: left out under the tree's selftests config

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


class ConfigError(UsageError):
    """A fragment is malformed or names a symbol this tree does not have."""


@dataclass(frozen=True)
class Request:
    symbol: str  # without the CONFIG_ prefix
    value: str  # "y", "m", "n", a number or a quoted string
    origin: str  # fragment:line, for error messages
    advisory: bool = False  # from a tree's own fragment (see Fragment.advisory)


@dataclass(frozen=True)
class Fragment:
    name: str
    path: Path
    text: str
    # A tree's own fragment (its selftests config): a symbol the tree no longer has is
    # dropped and one that does not take is a warning, as the tree's merge_config.sh
    # treats them; in the project's fragments and the user's, both are errors.
    advisory: bool = False


def standard_fragments(arch: str, *, trimmed: bool = True) -> list[Fragment]:
    """The project's fragments, in merge order, for `arch`; without trim.config when
    not `trimmed` (a selftests kernel keeps the defaults, as BPF CI's olddefconfig does)."""
    fragments = []
    for template in STANDARD_FRAGMENTS:
        if template == TRIM and not trimmed:
            continue
        path = PROJECT_KCONFIGS / f"{template.format(arch=arch)}.config"
        fragments.append(Fragment(path.name, path, path.read_text()))
    return fragments


SELFTESTS = "selftests"  # --kconfig value: the tree's own BPF selftests config
SELFTESTS_DIR = Path("tools/testing/selftests/bpf")


def selftests_fragments(tree: Path, uname: str) -> list[Fragment]:
    """The tree's tools/testing/selftests/bpf/config, config.vm and config.<uname -m>, in
    the order BPF CI's vmtest merges them: what the tree's own selftests need of a kernel
    (LSM hooks, cgroups, net, ...)."""
    folder = tree / SELFTESTS_DIR
    if not (folder / "config").is_file():
        raise UsageError(f"--kconfig {SELFTESTS}: {folder / 'config'} does not exist in "
                         "this tree")
    paths = [folder / name for name in ("config", "config.vm", f"config.{uname}")]
    return [Fragment(f"selftests/{p.name}", p, p.read_text(errors="replace"), advisory=True)
            for p in paths if p.is_file()]


def user_fragments(spec: str, tree: Path, uname: str) -> list[Fragment]:
    """What one --kconfig names: a fragment file, or `selftests` (the tree's own)."""
    if spec == SELFTESTS and not Path(spec).is_file():
        return selftests_fragments(tree, uname)
    return [user_fragment(spec)]


def user_fragment(spec: str) -> Fragment:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UsageError(f"--kconfig {spec}: no such file")
    return Fragment(path.name, path.resolve(), path.read_text(errors="replace"))


def tiny_fragments(tree: Path, srcarch: str) -> list[Fragment]:
    """What `make tinyconfig` merges after its allnoconfig: the generic and the arch tiny.config."""
    paths = [tree / "kernel/configs/tiny.config", tree / f"arch/{srcarch}/configs/tiny.config"]
    return [Fragment(p.name, p, p.read_text(errors="replace")) for p in paths if p.is_file()]


def parse_fragment(fragment: Fragment) -> list[Request]:
    requests = []
    for number, raw in enumerate(fragment.text.splitlines(), 1):
        line = raw.strip()
        origin = f"{fragment.name}:{number}"
        if not line:
            continue
        if match := _UNSET.match(line):
            requests.append(Request(match.group(1)[7:], "n", origin, fragment.advisory))
        elif match := _SET.match(line):
            requests.append(Request(match.group(1)[7:], match.group(2).strip(), origin,
                                    fragment.advisory))
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


_ENTRY = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$")
_BLOCK_END = re.compile(r"^\s*(?:(?:menu)?config|choice|endchoice|menu|endmenu|if|endif|source|"
                        r"comment|osource|rsource)\b")
_PROMPT = re.compile(r"^\s*(?:(?:bool|tristate|string|int|hex)\s+[\"']|prompt\b)")


@dataclass(frozen=True)
class KconfigScan:
    """What the tree's Kconfig files declare, read without running Kconfig."""

    declared: frozenset[str]  # every symbol some Kconfig file declares
    settable: frozenset[str]  # those with a prompt somewhere (the rest follow defaults)
    choice_of: dict[str, str]  # a choice member -> "file:line" of its choice


@functools.lru_cache(maxsize=4)
def scan_kconfig(tree: Path) -> KconfigScan:
    declared: set[str] = set()
    settable: set[str] = set()
    choice_of: dict[str, str] = {}
    for path in tree.rglob("Kconfig*"):
        if not path.is_file() or "Documentation" in path.parts:
            continue
        current = None
        choices: list[str] = []
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if match := _ENTRY.match(line):
                current = match.group(1)
                declared.add(current)
                if choices:
                    choice_of.setdefault(current, choices[-1])
            elif _BLOCK_END.match(line):
                current = None
                word = line.split()[0]
                if word == "choice":
                    choices.append(f"{path.relative_to(tree)}:{number}")
                elif word == "endchoice" and choices:
                    choices.pop()
            elif current and _PROMPT.match(line):
                settable.add(current)
    return KconfigScan(frozenset(declared), frozenset(settable), choice_of)


def kconfig_symbols(tree: Path) -> tuple[set[str], set[str]]:
    """(declared, settable): every symbol some Kconfig file of the tree declares, and those
    with a prompt somewhere (a promptless symbol follows its default; no fragment sets it)."""
    scan = scan_kconfig(tree)
    return set(scan.declared), set(scan.settable)


def yield_to_tree(tree: Path, requests: dict[str, Request]) -> list[Request]:
    """Our requests for a choice in which the tree's own fragment picks another member
    (its DEBUG_INFO_DWARF4 over our DWARF5): theirs is merged over ours, so ours go."""
    choice_of = scan_kconfig(tree).choice_of
    picked = {choice_of[r.symbol]: r.symbol for r in requests.values()
              if r.advisory and r.value == "y" and r.symbol in choice_of}
    return [r for r in requests.values() if not r.advisory and r.symbol in choice_of
            and picked.get(choice_of[r.symbol], r.symbol) != r.symbol]


def unreachable_pins(tree: Path,
                     requests: dict[str, Request]) -> tuple[list[Request], list[Request]]:
    """(unknown, promptless pin-offs): requests for symbols the tree lacks, and pin-offs of
    symbols it sets by itself (wanted-on promptless ones are left to the drift check)."""
    declared, settable = kconfig_symbols(tree)
    unknown = [r for r in requests.values() if r.symbol not in declared]
    promptless = [r for r in requests.values()
                  if r.value == "n" and r.symbol in declared - settable]
    return unknown, promptless


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
