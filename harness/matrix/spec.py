"""The matrix file (matrix.toml): kernel x pahole x btfids x arch, expanded into cells.

Why: a nightly run for kfunc/BTF work is the product of kernel releases, pahole versions,
resolve_btfids implementations and arches, minus cells known to be pointless, plus a few
extra ones (a patched tree), each with its own settings and known outcomes. Writing that
down once, and refusing a broken file with one line naming the file, the entry and the
key before anything builds, keeps a nightly job from failing hours in. Nothing here runs.

    [axes]                  # all four keys; every value is checked against what builds
    kernel = ["6.12", "7.2", "7.3"]     # Debian releases (harness.kbuild.sources)
    pahole = ["1.24", "1.30", "1.32"]   # pinned releases or "system"
    btfids = ["c", "python"]
    arch = ["x86_64", "arm64"]          # any spelling harness.arch takes

    [defaults]              # per-cell settings before any override
    timeout = 60            # seconds per program
    programs = ["bpf_progs/*", "upstream:wq*"]
    kconfig = []            # fragments, relative to this file
    denylist = "ci/lists"   # BPF CI DENYLIST/ALLOWLIST[.arch] files, relative to this file
    clang = "21"            # BPF compiler: system, a pinned release (19, 21) or a path

    [[exclude]]             # drops product cells matching every key given
    kernel = "6.12"
    btfids = ["c"]          # a match value is one value or a list of alternatives

    [[include]]             # one more cell: every axis key, or tree (+ patches) for kernel
    tree = "../linux"
    patches = "series.mbox"
    pahole = "1.32"
    btfids = "python"
    arch = "x86_64"

    [[override]]            # later overrides win; kconfig fragments add up instead
    match = { arch = "arm64" }
    timeout = 120

    [[expect]]              # known outcomes the runner asserts
    match = { kernel = "7.2", pahole = "1.24", btfids = "c" }
    programs = "kfunc_implicit_args/*"
    verdict = "fail"        # pass, fail, skip or error (e.g. a source this tree cannot compile)
    message = ["incompatible with kernel", "wasn't resolved"]  # not for a pass: the
                            # real failure text must contain one (a string: just that one)
    reason = "why this is expected"

Cells come in product order (axes in file order, nested kernel, pahole, btfids, arch),
then includes in file order. Excludes apply to the product only: an include is explicit.
In a match table, `kernel` is a release or the name a tree cell carries (its directory's
name, "+<patches>" when patched).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from harness.arch import SPELLINGS, lookup
from harness.errors import UsageError
from harness.kbuild.sources import DEBIAN_RELEASES
from harness.kbuild.toolchains import (
    BTFIDS_CHOICES,
    CLANG_RELEASES,
    DEFAULT_CLANG,
    PAHOLE_RELEASES,
)
from harness.progs.lists import program_base

AXES = ("kernel", "pahole", "btfids", "arch")
VERDICTS = ("pass", "fail", "skip", "error")
PAHOLE_CHOICES = ("system", *PAHOLE_RELEASES)
DEFAULT_TIMEOUT = 60.0
_TABLES = ("axes", "defaults", "exclude", "include", "override", "expect")
_SETTINGS = ("timeout", "programs", "kconfig", "denylist", "clang")
_INCLUDE_KEYS = (*AXES, "tree", "patches")
_EXPECT_KEYS = ("match", "programs", "verdict", "message", "reason")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_PATCH_SUFFIX = re.compile(r"\.(patch|diff|mbox|series)$")


class MatrixError(UsageError):
    """The matrix file is missing, malformed or names something that cannot be built."""


@dataclass(frozen=True)
class Expect:
    """A known outcome for some programs of some cells, from one [[expect]] entry."""

    programs: tuple[str, ...]  # globs over "object/program"
    verdict: str  # pass / fail / skip / error
    messages: tuple[str, ...]  # the real failure text must contain one (none: no check)
    reason: str  # why this outcome is expected, for the report
    entry: str  # "expect 2": where it came from

    def covers(self, obj: str, program: str) -> bool:
        """Whether a run is covered; "obj/prog" covers its @variant runs too."""
        names = (f"{obj}/{program}", f"{obj}/{program_base(program)}")
        return any(fnmatchcase(name, pattern) for pattern in self.programs for name in names)

    def check(self, verdict: str, text: str) -> str | None:
        """None when an outcome meets this expectation, else why not (one line)."""
        if verdict != self.verdict:
            return f"{self.entry}: expected {self.verdict}, got {verdict} ({self.reason})"
        if self.messages and not any(message in text for message in self.messages):
            wanted = " or ".join(repr(message) for message in self.messages)
            return f"{self.entry}: {verdict} without {wanted} ({self.reason})"
        return None


@dataclass(frozen=True)
class Cell:
    """One kernel build and run: what to build it from, with what, for which arch."""

    kernel: str | None  # a Debian release, or None for a tree cell
    tree: Path | None
    patches: Path | None
    pahole: str
    btfids: str
    arch: str  # the harness's canonical name
    kconfigs: tuple[Path, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    programs: tuple[str, ...] = ()  # empty: the runner's default programs
    expects: tuple[Expect, ...] = ()
    denylist: Path | None = None  # a directory of BPF CI lists
    clang: str = DEFAULT_CLANG  # the BPF compiler (a --clang choice)

    @property
    def kernel_label(self) -> str:
        """The release, or a tree's directory name (+ its patch series' name)."""
        if self.kernel is not None:
            return self.kernel
        assert self.tree is not None
        label = self.tree.name
        if self.patches is not None:
            label += "+" + _PATCH_SUFFIX.sub("", self.patches.name)
        return label

    @property
    def id(self) -> str:
        """Stable and filename-safe: "7.3-pahole1.32-python-x86_64"."""
        pahole = "pahole-system" if self.pahole == "system" else f"pahole{self.pahole}"
        text = f"{self.kernel_label}-{pahole}-{self.btfids}-{self.arch}"
        return _UNSAFE.sub("_", text).lstrip(".")

    def axis(self, key: str) -> str:
        return self.kernel_label if key == "kernel" else str(getattr(self, key))

    def expect_for(self, obj: str, program: str) -> Expect | None:
        """The expectation for a run (the last [[expect]] covering it wins)."""
        return next((e for e in reversed(self.expects) if e.covers(obj, program)), None)


@dataclass(frozen=True)
class Matrix:
    path: Path
    cells: tuple[Cell, ...]

    def cell(self, cell_id: str) -> Cell:
        found = next((c for c in self.cells if c.id == cell_id), None)
        if found is None:
            raise MatrixError(f"{self.path}: no cell {cell_id!r}")
        return found


class _Reader:
    """Checks values and words errors as "<file>: <entry>: <key>: <problem>"."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent

    def fail(self, where: str, problem: str) -> MatrixError:
        return MatrixError(f"{self.path}: {where}: {problem}".replace("\n", " "))

    def table(self, value: object, where: str, allowed: Iterable[str]) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a table, got {value!r}")
        allowed = tuple(allowed)
        unknown = [key for key in value if key not in allowed]
        if unknown:
            raise self.fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(allowed)})")
        return value

    def entries(self, data: dict[str, object], name: str) -> list[object]:
        value = data.get(name, [])
        if not isinstance(value, list):
            raise self.fail(name, f"expected [[{name}]] entries")
        return value

    def string(self, value: object, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def strings(self, value: object, where: str) -> tuple[str, ...]:
        """One string or a list of them."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise self.fail(where, f"expected a string or a list of strings, got {value!r}")
        return tuple(self.string(item, where) for item in items)

    def axis_value(self, key: str, value: object, where: str,
                   trees: Iterable[str] = ()) -> str:
        """A checked axis value (an arch in its canonical name)."""
        text = self.string(value, f"{where}: {key}")
        if key == "kernel" and text not in DEBIAN_RELEASES and text not in trees:
            raise self.fail(f"{where}: kernel", f"unknown kernel release {text!r} (choose "
                            f"{', '.join(DEBIAN_RELEASES)}, or an include with tree = PATH)")
        if key == "pahole" and text not in PAHOLE_CHOICES:
            raise self.fail(f"{where}: pahole", f"unknown pahole {text!r} "
                            f"(choose {', '.join(PAHOLE_CHOICES)})")
        if key == "btfids" and text not in BTFIDS_CHOICES:
            raise self.fail(f"{where}: btfids", f"unknown btfids {text!r} "
                            f"(choose {', '.join(BTFIDS_CHOICES)})")
        if key == "arch":
            if text not in SPELLINGS:
                raise self.fail(f"{where}: arch", f"unknown arch {text!r} "
                                f"(choose {', '.join(SPELLINGS)})")
            return lookup(text).name
        return text

    def match(self, value: object, where: str, trees: Iterable[str]) -> dict[str, set[str]]:
        """A match table: axis key -> the values any of which it accepts."""
        table = self.table(value, where, AXES)
        return {key: {self.axis_value(key, item, where, trees)
                      for item in self.strings(raw, f"{where}: {key}")}
                for key, raw in table.items()}

    def path_of(self, value: object, where: str) -> Path:
        path = Path(self.string(value, where)).expanduser()
        return path if path.is_absolute() else self.base / path

    def timeout(self, value: object, where: str) -> float:
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value <= 0):
            raise self.fail(where, f"expected a positive number of seconds, got {value!r}")
        return float(value)

    def programs(self, value: object, where: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of program selectors, got {value!r}")
        programs = self.strings(value, where)
        bare = next((p for p in programs if p.startswith("upstream:")
                     and not p.removeprefix("upstream:").strip()), None)
        if bare is not None:
            raise self.fail(where, f"{bare!r} names no selftest")
        return programs

    def kconfigs(self, value: object, where: str) -> tuple[Path, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of fragments, got {value!r}")
        fragments = tuple(self.path_of(item, where) for item in value)
        missing = next((f for f in fragments if not f.is_file()), None)
        if missing is not None:
            raise self.fail(where, f"no such fragment {missing}")
        return fragments

    def clang(self, value: object, where: str) -> str:
        """A --clang choice: system, a pinned release or a path (relative to this file)."""
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected system, {', '.join(CLANG_RELEASES)} or a path, "
                            f"got {value!r}")
        if value == "system" or value in CLANG_RELEASES:
            return value
        path = self.path_of(value, where)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise self.fail(where, f"{path} is not an executable clang")
        return str(path)

    def lists_dir(self, value: object, where: str) -> Path:
        directory = self.path_of(value, where)
        if not directory.is_dir():
            raise self.fail(where, f"no such lists directory {directory}")
        return directory


@dataclass
class _Settings:
    """A cell's settings while overrides apply, in file order."""

    timeout: float
    programs: tuple[str, ...]
    kconfigs: tuple[Path, ...]
    denylist: Path | None = None
    clang: str = DEFAULT_CLANG


def _matches(cell: Cell, match: dict[str, set[str]]) -> bool:
    return all(cell.axis(key) in values for key, values in match.items())


def _product(reader: _Reader, data: dict[str, object]) -> list[Cell]:
    if "axes" not in data:
        return []
    axes = reader.table(data["axes"], "axes", AXES)
    values: dict[str, list[str]] = {}
    for key in AXES:
        if key not in axes:
            raise reader.fail("axes", f"missing {key!r}")
        raw = axes[key]
        if not isinstance(raw, list):
            raise reader.fail(f"axes: {key}", f"expected a list, got {raw!r}")
        if not raw:
            raise reader.fail(f"axes: {key}", "empty (a matrix needs at least one value)")
        values[key] = []
        for item in raw:
            value = reader.axis_value(key, item, "axes")
            if value in values[key]:
                raise reader.fail(f"axes: {key}", f"{item!r} repeats {value!r}")
            values[key].append(value)
    return [Cell(kernel=k, tree=None, patches=None, pahole=p, btfids=b, arch=a)
            for k, p, b, a in itertools.product(*(values[key] for key in AXES))]


def _include(reader: _Reader, raw: object, index: int) -> Cell:
    where = f"include {index}"
    entry = reader.table(raw, where, _INCLUDE_KEYS)
    if ("kernel" in entry) == ("tree" in entry):
        raise reader.fail(where, "needs 'kernel' or 'tree' (one of them)")
    for key in AXES[1:]:
        if key not in entry:
            raise reader.fail(where, f"missing {key!r}")
    if "patches" in entry and "tree" not in entry:
        raise reader.fail(f"{where}: patches", "patches apply to a tree (tree = PATH)")
    tree = patches = None
    if "tree" in entry:
        tree = reader.path_of(entry["tree"], f"{where}: tree")
        if not tree.is_dir():
            raise reader.fail(f"{where}: tree", f"no such directory {tree}")
        tree = tree.resolve()
    if "patches" in entry:
        patches = reader.path_of(entry["patches"], f"{where}: patches")
        if not patches.exists():
            raise reader.fail(f"{where}: patches", f"no such file or directory {patches}")
    kernel = (reader.axis_value("kernel", entry["kernel"], where)
              if "kernel" in entry else None)
    return Cell(kernel=kernel, tree=tree, patches=patches,
                pahole=reader.axis_value("pahole", entry["pahole"], where),
                btfids=reader.axis_value("btfids", entry["btfids"], where),
                arch=reader.axis_value("arch", entry["arch"], where))


def _expect(reader: _Reader, raw: object, index: int,
            trees: Iterable[str]) -> tuple[dict[str, set[str]], Expect]:
    where = f"expect {index}"
    entry = reader.table(raw, where, _EXPECT_KEYS)
    for key in ("programs", "verdict"):
        if key not in entry:
            raise reader.fail(where, f"missing {key!r}")
    verdict = reader.string(entry["verdict"], f"{where}: verdict")
    if verdict not in VERDICTS:
        raise reader.fail(f"{where}: verdict",
                          f"{verdict!r} is not one of {', '.join(VERDICTS)}")
    messages: tuple[str, ...] = ()
    if "message" in entry:
        messages = reader.strings(entry["message"], f"{where}: message")
        if verdict == "pass":
            raise reader.fail(f"{where}: message", "a pass has no failure message to match")
    reason = reader.string(entry["reason"], f"{where}: reason") if "reason" in entry else ""
    match = reader.match(entry.get("match", {}), f"{where}: match", trees)
    return match, Expect(programs=reader.strings(entry["programs"], f"{where}: programs"),
                         verdict=verdict, messages=messages, reason=reason, entry=where)


def _read(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MatrixError(f"{path}: no such matrix file") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise MatrixError(f"{path}: cannot read: {why}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{path}: not valid TOML: {exc}".replace("\n", " ")) from None


def load_matrix(path: str | Path) -> Matrix:
    """Parse, check and expand a matrix file; every problem is one MatrixError line."""
    path = Path(path).expanduser()
    data = _read(path)
    reader = _Reader(path)
    unknown = [key for key in data if key not in _TABLES]
    if unknown:
        raise MatrixError(f"{path}: unknown table {unknown[0]!r} "
                          f"(known: {', '.join(_TABLES)})")

    defaults = reader.table(data.get("defaults", {}), "defaults", _SETTINGS)
    timeout = (reader.timeout(defaults["timeout"], "defaults: timeout")
               if "timeout" in defaults else DEFAULT_TIMEOUT)
    programs = (reader.programs(defaults["programs"], "defaults: programs")
                if "programs" in defaults else ())
    kconfigs = (reader.kconfigs(defaults["kconfig"], "defaults: kconfig")
                if "kconfig" in defaults else ())
    denylist = (reader.lists_dir(defaults["denylist"], "defaults: denylist")
                if "denylist" in defaults else None)
    clang = (reader.clang(defaults["clang"], "defaults: clang")
             if "clang" in defaults else DEFAULT_CLANG)

    cells = _product(reader, data)
    for index, raw in enumerate(reader.entries(data, "exclude"), 1):
        where = f"exclude {index}"
        match = reader.match(raw, where, ())
        if not match:
            raise reader.fail(where, f"names no axis key ({', '.join(AXES)})")
        cells = [cell for cell in cells if not _matches(cell, match)]

    seen = {cell.id for cell in cells}
    for index, raw in enumerate(reader.entries(data, "include"), 1):
        cell = _include(reader, raw, index)
        if cell.id in seen:
            raise reader.fail(f"include {index}", f"duplicate cell {cell.id} "
                              "(already in the matrix)")
        seen.add(cell.id)
        cells.append(cell)
    if not cells:
        raise MatrixError(f"{path}: no cells (no [axes] product left and no [[include]])")
    trees = {cell.kernel_label for cell in cells if cell.tree is not None}

    settings = [_Settings(timeout, programs, kconfigs, denylist, clang) for _ in cells]
    for index, raw in enumerate(reader.entries(data, "override"), 1):
        where = f"override {index}"
        entry = reader.table(raw, where, ("match", *_SETTINGS))
        if not set(entry) - {"match"}:
            raise reader.fail(where, f"sets nothing ({', '.join(_SETTINGS)})")
        match = reader.match(entry.get("match", {}), f"{where}: match", trees)
        new_timeout = (reader.timeout(entry["timeout"], f"{where}: timeout")
                       if "timeout" in entry else None)
        new_programs = (reader.programs(entry["programs"], f"{where}: programs")
                        if "programs" in entry else None)
        extra = reader.kconfigs(entry.get("kconfig", []), f"{where}: kconfig")
        new_lists = (reader.lists_dir(entry["denylist"], f"{where}: denylist")
                     if "denylist" in entry else None)
        new_clang = reader.clang(entry["clang"], f"{where}: clang") if "clang" in entry else None
        for cell, setting in zip(cells, settings, strict=True):
            if not _matches(cell, match):
                continue
            if new_timeout is not None:
                setting.timeout = new_timeout
            if new_programs is not None:
                setting.programs = new_programs
            if new_lists is not None:
                setting.denylist = new_lists
            if new_clang is not None:
                setting.clang = new_clang
            # Fragments add up: an arch's and a kernel's extras both apply to a cell.
            setting.kconfigs = tuple(dict.fromkeys((*setting.kconfigs, *extra)))

    expects = [_expect(reader, raw, index, trees)
               for index, raw in enumerate(reader.entries(data, "expect"), 1)]
    final = []
    for cell, setting in zip(cells, settings, strict=True):
        final.append(Cell(
            kernel=cell.kernel, tree=cell.tree, patches=cell.patches, pahole=cell.pahole,
            btfids=cell.btfids, arch=cell.arch,
            kconfigs=setting.kconfigs, timeout=setting.timeout, programs=setting.programs,
            denylist=setting.denylist, clang=setting.clang,
            expects=tuple(e for match, e in expects if _matches(cell, match))))
    return Matrix(path, tuple(final))


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard I/N` (1-based) as (I, N); one-line UsageError otherwise."""
    index, slash, count = text.strip().partition("/")
    try:
        pair = (int(index), int(count)) if slash else None
    except ValueError:
        pair = None
    if pair is None or not 1 <= pair[0] <= pair[1]:
        raise UsageError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/3")
    return pair


def shard(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """Shard `index` of `count` (1-based): contiguous runs whose sizes differ by at most one.

    Contiguous rather than round-robin because cells next to each other share a kernel
    source (the product varies arch fastest), so a shard unpacks fewer trees and its
    builds can seed each other.
    """
    if not 1 <= index <= count:
        raise UsageError(f"--shard {index}/{count}: expected I/N with 1 <= I <= N")
    size, extra = divmod(len(cells), count)
    start = (index - 1) * size + min(index - 1, extra)
    end = start + size + (1 if index <= extra else 0)
    return list(cells[start:end])


def select(cells: Sequence[Cell], expr: str) -> list[Cell]:
    """`--cells FILTER`: `key=value[,key=value...]` over kernel/pahole/btfids/arch, all of
    which must match (a value may be a glob), or one glob over cell ids."""
    text = expr.strip()
    if not text:
        raise UsageError("--cells: empty filter")
    if "=" not in text:
        if "," in text:
            raise UsageError(f"--cells {expr!r}: a comma list takes key=value terms; "
                             "a plain filter is one glob over cell ids")
        chosen = [cell for cell in cells if fnmatchcase(cell.id, text)]
    else:
        terms: list[tuple[str, str]] = []
        for term in text.split(","):
            key, equals, value = (part.strip() for part in term.partition("="))
            if not equals or not value:
                raise UsageError(f"--cells {expr!r}: {term.strip()!r} is not key=value")
            if key not in AXES:
                raise UsageError(f"--cells {expr!r}: unknown key {key!r} "
                                 f"(choose {', '.join(AXES)})")
            if key == "arch" and value in SPELLINGS:
                value = lookup(value).name
            terms.append((key, value))
        chosen = [cell for cell in cells
                  if all(fnmatchcase(cell.axis(key), value) for key, value in terms)]
    if not chosen:
        sample = ", ".join(cell.id for cell in cells[:3])
        raise UsageError(f"--cells {expr!r} matches none of the {len(cells)} cells "
                         f"(e.g. {sample})")
    return chosen
