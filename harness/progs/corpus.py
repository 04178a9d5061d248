"""The tree's own selftests as a corpus: which program files upstream judges with test_loader.

Why read prog_tests/ and not just progs/: only the files a `prog_tests/*.c` runs through
`RUN_TESTS(name)` (test_progs.h) or `RUN(name)` (prog_tests/verifier.c's
`run_tests_aux` without a callback) have their whole verdict in their `__success` /
`__failure` / `__msg` annotations. Every other `progs/*.c` is loaded, attached and
checked by C code in its prog_tests file; judging it by annotations alone would call
programs that expect a setup we do not do "passed" or "failed" for no reason. Those
files are listed with what drives them, never judged.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.progs.makeflags import SELFTESTS
from harness.progs.source_ids import strip_comments

# RUN_TESTS(name) anywhere; RUN(name) in verifier.c; run_tests_aux("name", ..., callback)
_RUN_TESTS = re.compile(r"\bRUN_TESTS\(\s*(\w+)\s*\)")
_RUN = re.compile(r"\bRUN\(\s*(\w+)\s*\)")
_RUN_AUX = re.compile(r'\brun_tests_aux\(\s*"(\w+)"\s*,\s*\w+\s*,\s*(\w+)\s*\)')
_RUN_STATEMENT = re.compile(r"\b(?:RUN_TESTS|RUN)\(\s*\w+\s*\)\s*;")
# `if (test__start_subtest("name"))` (and an opening brace) right before a RUN_TESTS
_GUARD = re.compile(r'\bif\s*\(\s*test__start_subtest\(\s*"([^"]*)"\s*\)\s*\)\s*\{?\s*\Z')
_SKEL = re.compile(r'#include\s+"(\w+)\.(?:l?skel|subskel)\.h"')
# every void function with a body; test_progs registers those the Makefile's sed for
# tests.h picks: `^void (serial_)?test_<name>((void)?)` at the start of a line
_FUNCTION = re.compile(r"^(static\s+)?(?:(?:inline|noinline|__\w+)\s+)*void\s+(\w+)\s*"
                       r"\(([^)]*)\)\s*\{", re.M)
_REGISTERED = re.compile(r"(?:serial_)?test_([a-zA-Z0-9_]+)")


@dataclass(frozen=True)
class Entry:
    """One program file of the corpus: `progs/<name>.c` and what runs it upstream."""

    name: str
    source: Path
    driver: str  # "prog_tests/verifier.c:177 RUN(verifier_arena)", "prog_tests/x.c", ""
    judged: bool  # run through test_loader with nothing but the annotations
    reason: str = ""  # why not judged
    test: str = ""  # the test_progs test that runs it (`-t` name), for judged entries
    # the test function does nothing but RUN/RUN_TESTS: `test_progs -a <test>` runs only
    # test_loader programs (a mixed test attaches, runs traffic, ... in subtests of its own)
    whole_test: bool = True
    # the subtest a RUN_TESTS sits under (`if (test__start_subtest("negative"))
    # RUN_TESTS(x);`): test_progs runs x's programs only when that subtest is allowed too
    guard: str = ""

    def describe(self) -> str:
        if self.judged:
            return f"{self.name}: test_loader ({self.driver})"
        return f"{self.name}: not judged: {self.reason}"


@dataclass
class Corpus:
    """Every `progs/*.c` of a tree, judged (test_loader) or listed with why not."""

    tree: Path
    entries: list[Entry] = field(default_factory=list)

    @property
    def judged(self) -> list[Entry]:
        return [e for e in self.entries if e.judged]

    @property
    def not_judged(self) -> list[Entry]:
        return [e for e in self.entries if not e.judged]

    def select(self, pattern: str | None) -> Corpus:
        """The entries whose name matches the glob `pattern` (all when None)."""
        if not pattern:
            return self
        return Corpus(self.tree, [e for e in self.entries if fnmatch.fnmatch(e.name, pattern)])


def _text(path: Path) -> str:
    return strip_comments(path.read_text(errors="replace"))


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def discover(tree: Path) -> Corpus:
    """Read the tree's prog_tests/*.c and sort every progs/*.c into judged or not."""
    selftests = tree / SELFTESTS
    progs, prog_tests = selftests / "progs", selftests / "prog_tests"
    if not progs.is_dir() or not prog_tests.is_dir():
        raise FileNotFoundError(f"{selftests}: no progs/ and prog_tests/ (not a kernel tree?)")
    runs: dict[str, str] = {}  # name -> where test_loader runs it
    tests: dict[str, tuple[str, bool]] = {}  # name -> (its test, that test is runs only)
    guards: dict[str, str] = {}  # name -> the subtest its RUN_TESTS is under
    callbacks: dict[str, str] = {}  # name -> where it runs with a C callback
    skel_users: dict[str, list[str]] = {}  # name -> prog_tests files that open its skeleton
    for driver in sorted(prog_tests.glob("*.c")):
        text = _text(driver)
        rel = f"prog_tests/{driver.name}"
        functions = _functions(text)
        for m in _RUN_TESTS.finditer(text):
            if not _in_define(text, m.start()):
                runs.setdefault(m.group(1), f"{rel}:{_line(text, m.start())} RUN_TESTS")
                test, whole, guard = _placement(text, functions, m.start())
                tests.setdefault(m.group(1), (test, whole))
                if guard:
                    guards.setdefault(m.group(1), guard)
        if driver.name == "verifier.c":
            for m in _RUN.finditer(text):
                if not _in_define(text, m.start()):
                    runs.setdefault(m.group(1), f"{rel}:{_line(text, m.start())} RUN")
                    test, whole, _guard = _placement(text, functions, m.start())
                    tests.setdefault(m.group(1), (test, whole))
            for m in _RUN_AUX.finditer(text):
                if m.group(2) != "NULL":
                    callbacks[m.group(1)] = f"{rel}:{_line(text, m.start())} {m.group(2)}()"
        for m in _SKEL.finditer(text):
            skel_users.setdefault(m.group(1), []).append(rel)
    corpus = Corpus(tree)
    for source in sorted(progs.glob("*.c")):
        name = source.name.removesuffix(".c")
        if name in callbacks:
            corpus.entries.append(Entry(name, source, callbacks[name], False,
                                        f"needs the setup callback {callbacks[name]}"))
        elif name in runs:
            test, whole = tests[name]
            corpus.entries.append(Entry(name, source, runs[name], True, test=test,
                                        whole_test=whole, guard=guards.get(name, "")))
        elif name in skel_users:
            users = ", ".join(skel_users[name][:3])
            corpus.entries.append(Entry(name, source, users, False,
                                        f"driven by {users}, not by its annotations"))
        else:
            corpus.entries.append(Entry(name, source, "", False,
                                        "no prog_tests file opens it (built for another "
                                        "object or a test program)"))
    return corpus


@dataclass(frozen=True)
class _Function:
    """A void function of a prog_tests file: where its body is, whether test_progs runs it
    as a test (and as which), whether it does nothing but RUN/RUN_TESTS."""

    name: str
    body: int  # just after its opening brace
    end: int  # just after its closing brace
    test: str  # the test_progs test it is, "" for a helper
    runs_only: bool


def _functions(text: str) -> list[_Function]:
    out = []
    for m in _FUNCTION.finditer(text):
        registered = _REGISTERED.fullmatch(m.group(2))
        is_test = (not m.group(1) and registered is not None
                   and m.group(3).strip() in ("", "void"))
        end = _body_end(text, m.end())
        out.append(_Function(m.group(2), m.end(), end,
                             registered.group(1) if is_test and registered else "",
                             _runs_only(text, m.end(), end)))
    return out


def _placement(text: str, functions: list[_Function], pos: int) -> tuple[str, bool, str]:
    """(test, runs only, guard subtest) of a RUN_TESTS at `pos`: the test function it is
    in, or, in a helper (`static void test_failure(void)`), the test that calls the
    helper, under the subtest that guards the call (`if (test__start_subtest("failure"))
    test_failure();`): that test does other things too."""
    inside = [f for f in functions if f.body <= pos < f.end]
    if not inside:
        return "", False, ""
    fn = inside[-1]
    if fn.test:
        return fn.test, fn.runs_only, _guard_before(text, pos)
    seen = {fn.name}
    callees = [fn]
    for _depth in range(4):  # helpers calling helpers, a few levels up at most
        callers = []
        for callee in callees:
            call = re.compile(rf"\b{re.escape(callee.name)}\s*\(")
            for caller in functions:
                m = call.search(text, caller.body, caller.end)
                if m is None or caller.name in seen:
                    continue
                if caller.test:
                    return caller.test, False, _guard_before(text, m.start())
                seen.add(caller.name)
                callers.append(caller)
        callees = callers
    return "", False, ""


def _guard_before(text: str, pos: int) -> str:
    guard = _GUARD.search(text, max(0, pos - 200), pos)
    return guard.group(1) if guard else ""


def _body_end(text: str, body: int) -> int:
    """Just past the brace that closes the body opened just before `body`."""
    depth, end = 1, body
    while depth and end < len(text):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    return end


def _runs_only(text: str, body: int, end: int) -> bool:
    """Whether the body text[body:end-1] holds nothing but RUN_TESTS(x); / RUN(x);."""
    return not _RUN_STATEMENT.sub("", text[body:end - 1]).strip()


def _in_define(text: str, pos: int) -> bool:
    """Whether `pos` is on a `#define` line (the RUN/RUN_TESTS macros themselves)."""
    start = text.rfind("\n", 0, pos) + 1
    return text[start:pos].lstrip().startswith("#define")
