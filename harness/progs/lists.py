"""BPF CI's deny/allow lists (DENYLIST, DENYLIST.<uname -m>, ALLOWLIST), read unchanged.

Why: tools/testing/selftests/bpf keeps these files and BPF CI (libbpf/ci, vmtest) feeds
them to test_progs with -d/-a; reading the same files the same way lets a nightly run skip
what upstream already knows is broken, with no second list to keep in sync.

The format is test_progs' list-file format: one entry a line, `test` or `test/subtest`
(split at the first `/`), `#` starts a comment anywhere on a line, surrounding whitespace
and blank lines are ignored, and `*` is the only wildcard (test_progs' glob_match knows
no `?` or `[...]`, so those match themselves). Entries match whole names, not substrings.

How a result maps onto test_progs' names: test = the object stem ("wq"), subtest = the
program name without its "@variant" (and " @unpriv") suffix, so "wq/wq_tc_plain" also
covers "wq_tc_plain@rnd_hi32".

Decision, as test_progs applies -d and -a: a deny entry denies when its test pattern
matches and it names no subtest (the whole test) or its subtest pattern matches too; when
any allow entry exists, only results some allow entry matches the same way run. One
deliberate difference: test_progs merges entries whose test pattern is spelled the same,
so `foo` next to `foo/bar` (even from DENYLIST and DENYLIST.<arch>) narrows the whole-test
deny to `foo/bar`; here each entry stands on its own, as the files read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from harness.arch import lookup
from harness.errors import UsageError

DENY = "DENYLIST"
ALLOW = "ALLOWLIST"


def program_base(program: str) -> str:
    """The subtest name of a run: "prog@rnd_hi32" and "prog @unpriv" are both "prog"."""
    return program.split("@", 1)[0].rstrip()


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    # Only `*` is special, as in test_progs' glob_match; everything else is literal.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def glob_match(name: str, pattern: str) -> bool:
    """test_progs' glob: the whole name, `*` matches any run of characters."""
    return _glob(pattern).fullmatch(name) is not None


@dataclass(frozen=True)
class Entry:
    """One list line: a test pattern and an optional subtest pattern, with where it was."""

    test: str
    subtest: str | None  # None: the whole test
    text: str  # the entry as written (comment and whitespace stripped)
    source: str  # "DENYLIST.aarch64:12"

    def matches(self, test: str, subtest: str) -> bool:
        if not glob_match(test, self.test):
            return False
        return self.subtest is None or glob_match(subtest, self.subtest)

    def __str__(self) -> str:
        return f"{self.source}: {self.text}"


def parse_entries(text: str, name: str) -> tuple[Entry, ...]:
    """Entries of one list file's text; `name` is what a reason shows before ":line"."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        test, slash, subtest = spec.partition("/")
        entries.append(Entry(test, subtest if slash else None, spec, f"{name}:{number}"))
    return tuple(entries)


@dataclass(frozen=True)
class Lists:
    """The deny and allow entries in force for one arch, in file order."""

    deny: tuple[Entry, ...] = ()
    allow: tuple[Entry, ...] = ()
    allow_files: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, files: Mapping[str, str]) -> Lists:
        """Lists from {file name: text}: names starting DENYLIST deny, ALLOWLIST allow."""
        deny: list[Entry] = []
        allow: list[Entry] = []
        allow_files: list[str] = []
        for name, text in files.items():
            kind = Path(name).name
            if kind.startswith(DENY):
                deny += parse_entries(text, name)
            elif kind.startswith(ALLOW):
                allow += parse_entries(text, name)
                allow_files.append(name)
            else:
                raise UsageError(f"{name}: not a {DENY} or {ALLOW} file")
        return cls(tuple(deny), tuple(allow), tuple(allow_files))

    def decide(self, object_stem: str, program: str) -> tuple[bool, str | None]:
        """(runs, why not): the deny entry that matched, or that no allow entry did."""
        subtest = program_base(program)
        for entry in self.deny:
            if entry.matches(object_stem, subtest):
                return False, f"denied by {entry}"
        if self.allow and not any(e.matches(object_stem, subtest) for e in self.allow):
            return False, f"not in {', '.join(self.allow_files)}"
        return True, None

    def __bool__(self) -> bool:
        return bool(self.deny or self.allow)


def list_files(directory: Path, arch: str) -> tuple[Path, ...]:
    """The files BPF CI reads for an arch, in its order (the arch spelled as `uname -m`)."""
    uname = lookup(arch).uname
    return tuple(directory / name for name in
                 (DENY, f"{DENY}.{uname}", ALLOW, f"{ALLOW}.{uname}"))


def load_lists(directory: str | Path, arch: str) -> Lists:
    """The lists in `directory` for `arch` (any harness spelling); missing files are fine,
    a missing directory or an unreadable file is a one-line UsageError."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such lists directory")
    texts: dict[str, str] = {}
    for path in list_files(directory, arch):
        try:
            texts[str(path)] = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UsageError(f"{path}: cannot read: {why}") from None
    return Lists.parse(texts)
