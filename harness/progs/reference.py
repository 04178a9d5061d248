"""The tree's own test_progs, built for a kernel and run in the same guest: the reference.

Why: a harness that says "verifier_and/invalid and of negative number: pass" is trusted
when test_progs, built from the same tree with the same clang against the same kernel,
says OK for it in the same guest. :func:`build` runs the selftests Makefile's
``test_progs`` target in a scratch copy of the tree (the Makefile writes next to its
sources: the signing key, the test modules), with the kernel's uapi headers installed
beside it and ``BPF_STRICT_BUILD=0`` so a program that does not build is left out as
upstream's permissive build does, and ``SKIP_LLVM=1``: with LLVM's disassembler linked
in, test_progs needs libLLVM and libstdc++ the guests' root does not have (its __jited
tests then skip; ours judge them, so :func:`compare` lists those as ours alone). The
test modules are not rebuilt: the build's own bpf_testmod.ko (the one the harness's
agent loads) is placed next to test_progs.
:func:`verdicts` reads test_progs' own result lines (``#12/3 test/subtest:OK``): its
JSON summary lists failures only. :func:`compare` pairs them with ours.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.arch import lookup
from harness.cache import cache_dir, locked, staging_dir, touch_used
from harness.errors import HarnessError
from harness.kbuild.make import MakeError, run_make
from harness.progs.corpus import Corpus
from harness.progs.isolation import CrashQueue
from harness.progs.makeflags import SELFTESTS
from harness.progs.results import ProgResult
from harness.targets.base import console_text

GUEST_DIR = "/tmp/kfunc-harness-test_progs"  # where a guest sees test_progs' directory
CROSS_PACKAGES = ("libssl-dev", "libssl3")  # sign-file's libcrypto, beyond libbpf's
GUEST_ALLOWLIST = "/tmp/kfunc-harness-allow"  # the `-a @file` of each test_progs call
# "#512/3    verifier_and/invalid and of negative number:OK", "#7       align:SKIP"
_RESULT = re.compile(r"^#(\d+)(?:/(\d+))?\s+(.+):(OK|SKIP|FAIL)\s*$")
OURS = {"pass": "OK", "skip": "SKIP", "fail": "FAIL", "error": "FAIL"}
Say = Callable[[str], None]


class ReferenceError(HarnessError):
    """test_progs could not be built or run."""


@dataclass(frozen=True)
class Reference:
    """A built test_progs: the directory it runs in (objects and modules beside it)."""

    directory: Path
    log: Path
    clang: str  # the compiler's version line

    @property
    def test_progs(self) -> Path:
        return self.directory / "test_progs"


def build(artifacts: object, clang: str, clang_version: str, *,
          say: Say = lambda _line: None) -> Reference:
    """test_progs for `artifacts` (a BuildArtifacts) built with `clang` (cached)."""
    arch = lookup(artifacts.arch)  # type: ignore[attr-defined]
    tree = Path(artifacts.source_tree)  # type: ignore[attr-defined]
    key = hashlib.sha256("\0".join(["reference-v2", artifacts.cache_key,  # type: ignore[attr-defined]
                                    clang, clang_version]).encode()).hexdigest()[:20]
    final = cache_dir("reference") / key
    log = cache_dir("logs") / f"test_progs-{arch.name}-{key}.log"
    ref = Reference(final / "out", log, clang_version)
    if ref.test_progs.is_file():
        touch_used(final)
        return ref
    with locked(final):
        if ref.test_progs.is_file():
            return ref
        with staging_dir(final) as tmp:
            started = time.monotonic()
            say(f"harness: building {tree}'s test_progs for {arch.name} with {clang_version} "
                f"(log: {log})")
            log.write_text(f"# test_progs for {arch.name} from {tree}\n")
            copy = tmp / "tree"
            _scratch_tree(tree, copy)
            (tmp / "out").mkdir()
            make = ["make", f"ARCH={arch.kernel_arch}",
                    *([f"CROSS_COMPILE={arch.cross_prefix}"] if arch.cross_prefix else [])]
            cross = _cross_flags(arch.name) if arch.cross_prefix else []
            jobs = f"-j{os.cpu_count() or 2}"
            try:
                run_make([*make, "-s", "-C", str(copy), f"O={tmp / 'headers'}",
                          f"INSTALL_HDR_PATH={tmp / 'usr'}", "headers_install"],
                         log, None, tmp)
                # no O=: the permissive build then skips the test modules (the build's
                # bpf_testmod goes beside test_progs below) instead of rebuilding them
                run_make([*make, "-C", str(copy / SELFTESTS), jobs,
                          f"OUTPUT={tmp / 'out'}", f"CLANG={clang}",
                          f"VMLINUX_BTF={artifacts.vmlinux}",  # type: ignore[attr-defined]
                          f"KHDR_INCLUDES=-isystem {tmp / 'usr'}", "BPF_STRICT_BUILD=0",
                          "SKIP_LLVM=1", *cross, "test_progs"], log, None, tmp)
            except MakeError as exc:
                raise ReferenceError(f"building test_progs failed: {exc}") from None
            out = tmp / "out"
            if not (out / "test_progs").is_file():
                raise ReferenceError(f"the selftests build made no test_progs (log: {log})")
            testmod = artifacts.bpf_testmod  # type: ignore[attr-defined]
            if testmod is not None:
                shutil.copy2(testmod, out / "bpf_testmod.ko")
            shutil.rmtree(copy)  # the scratch tree is only for the build
            say(f"harness: test_progs built in {time.monotonic() - started:.0f} s")
    return ref


def _cross_flags(arch: str) -> list[str]:
    """Make variables for a cross build: libelf, zlib, zstd and libcrypto (sign-file, built
    beside test_progs) from the target's Debian packages; the target's pkg-config answers
    from there (the host tools the build makes ask HOSTPKG_CONFIG)."""
    from harness.kbuild.build import target_sysroot  # noqa: PLC0415 - fetches .debs

    sysroot = target_sysroot(arch, CROSS_PACKAGES)
    triplet = lookup(arch).gnu_triplet
    lib = sysroot / "usr/lib" / triplet
    ld = f"-L{lib} -Wl,-rpath-link,{lib}"
    pkg_config = (f"env PKG_CONFIG_SYSROOT_DIR={sysroot} "
                  f"PKG_CONFIG_LIBDIR={lib}/pkgconfig:{sysroot}/usr/share/pkgconfig pkg-config")
    return [f"EXTRA_CFLAGS=-I{sysroot}/usr/include",
            # libbpf's shared-library link reads LDFLAGS only (a host link skips the
            # aarch64 libraries with a warning)
            # no LIBELF_LIBS: it would reach the host's resolve_btfids link too
            f"EXTRA_LDFLAGS={ld}", f"LDFLAGS={ld}", f"PKG_CONFIG={pkg_config}"]


def _scratch_tree(tree: Path, copy: Path) -> None:
    """A hard-linked copy of `tree` (no space, seconds) whose selftests dir is a real
    copy: the Makefile writes there, and a write must never reach the cached tree."""
    try:
        subprocess.run(["cp", "-al", str(tree), str(copy)], check=True, capture_output=True,
                       text=True, timeout=600)
        shutil.rmtree(copy / SELFTESTS)
        shutil.copytree(tree / SELFTESTS, copy / SELFTESTS, symlinks=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ReferenceError(f"copying {tree} for the selftests build: {exc}") from None


@dataclass(frozen=True)
class Verdict:
    """One test_progs result line."""

    test: str
    subtest: str  # "" for a test without subtests
    result: str  # OK, SKIP, FAIL
    log: str = ""  # what test_progs printed for it (a failure's log comes before its line)


def verdicts(output: str) -> dict[tuple[str, str], Verdict]:
    """test_progs' result lines, by (test, subtest), each with the lines printed since
    the result line before it."""
    found: dict[tuple[str, str], Verdict] = {}
    pending: list[str] = []
    for line in output.splitlines():
        match = _RESULT.match(line.strip())
        if not match:
            pending.append(line)
            continue
        name = match.group(3)
        if match.group(2) is not None:
            test, _, subtest = name.partition("/")
        else:
            test, subtest = name, ""
        found[(test, subtest)] = Verdict(test, subtest, match.group(4), "\n".join(pending))
        pending = []
    return found


def subtest_name(result: ProgResult) -> str | None:
    """The test_loader subtest name of one of our results ("<description or program>",
    "... @unpriv"); None for the harness's own variants (@rnd_hi32, compile errors)."""
    base = result.program.removesuffix(" @unpriv")
    if "@" in base or base.startswith("("):
        return None
    if result.description:  # test_loader's own name, " @unpriv" included
        return result.description
    return result.program


@dataclass(frozen=True)
class Pair:
    """Our verdict and test_progs' for one subtest, or the one that exists."""

    test: str
    subtest: str
    ours: ProgResult | None
    theirs: Verdict | None
    # where test_progs printed no such subtest: its verdict on the whole test (a test that
    # skipped or failed in its C setup before it reached RUN_TESTS), else None
    theirs_test: str | None = None
    # why test_progs' verdict does not count: it skipped a __jited run it cannot judge
    unjudged: str | None = None

    @property
    def agrees(self) -> bool:
        if self.ours is None or self.theirs is None:
            return False
        if self.theirs.result == CRASH:  # both took the kernel down under it
            return self.ours.reason.startswith("the target died under this program")
        return OURS[self.ours.verdict] == self.theirs.result


@dataclass(frozen=True)
class Allowlist:
    """What test_progs is asked to run: `items` are batched (a crash re-runs one batch);
    `guards` name the subtest line a guarded program's RUN_TESTS needs beside it in the
    same call (`if (test__start_subtest("failure_tests")) test_failure();`)."""

    items: list[str]
    guards: dict[str, str]

    def lines(self, batch: list[str]) -> list[str]:
        """The `-a @file` lines of one batch: each needed guard before its programs."""
        out: dict[str, None] = {}
        for item in batch:
            if item in self.guards:
                out[self.guards[item]] = None
            out[item] = None
        return list(out)


def allowlist(corpus: Corpus, ours: Iterable[ProgResult]) -> Allowlist:
    """A test that does nothing but RUN_TESTS by its name; a mixed test by the
    `test/program` of each test_loader program we judged (and the subtest a RUN_TESTS sits
    under), so none of its own attach and traffic subtests run: they are not in the
    comparison, and kprobe_multi_test's took 7.3's kernel down."""
    entries = {e.name: e for e in corpus.judged}
    items: dict[str, None] = {}  # ordered set
    guards: dict[str, str] = {}
    for entry in corpus.judged:
        if entry.whole_test:
            items[entry.test] = None
    for result in ours:
        entry = entries.get(result.object)
        if entry is None or entry.whole_test or subtest_name(result) is None:
            continue
        item = f"{entry.test}/{result.program}"
        items[item] = None
        if entry.guard:
            guards[item] = f"{entry.test}/{entry.guard}"
    return Allowlist(list(items), guards)


def compare(ours: Iterable[ProgResult], theirs: dict[tuple[str, str], Verdict],
            corpus: Corpus, crashed: Iterable[str] = ()) -> list[Pair]:
    """Every subtest of the corpus' tests either side judged, ours paired with theirs; an
    allowlist item (a test, a test/program) test_progs crashed the kernel under gives each
    of our subtests it covers a CRASH."""
    test_of = {e.name: e.test for e in corpus.judged}
    crashed = set(crashed)
    pairs: dict[tuple[str, str], Pair] = {}
    for result in ours:
        test = test_of.get(result.object)
        name = subtest_name(result)
        if test is None or name is None:
            continue
        key = (test, name)
        theirs_one = theirs.get(key)
        if theirs_one is None and crashed & {test, f"{test}/{result.program}"}:
            theirs_one = Verdict(test, name, CRASH)
        unjudged = None
        if theirs_one is not None and theirs_one.result == "SKIP" and " jited" in \
                f" {result.expected}":
            theirs_one, unjudged = None, NO_LLVM
        whole = theirs.get((test, "")) if theirs_one is None and not unjudged else None
        pairs[key] = Pair(test, name, result, theirs_one, whole.result if whole else None,
                          unjudged)
    tests = set(test_of.values())
    guards = {(e.test, e.guard) for e in corpus.judged if e.guard}  # not test_loader's
    for key, verdict in theirs.items():
        if key not in pairs and verdict.test in tests and verdict.subtest and key not in guards:
            pairs[key] = Pair(key[0], key[1], None, verdict)
    return sorted(pairs.values(), key=lambda p: (p.test, p.subtest))


BATCH_TESTS = 24  # allowlist items per test_progs call: what one crash re-runs at most
NO_LLVM = "skips __jited: built with SKIP_LLVM=1"  # Pair.unjudged
CRASH = "CRASH"  # the verdict of a test under which test_progs took the kernel down


@dataclass
class ReferenceRun:
    """test_progs' verdicts over many calls, and the tests it crashed the kernel under."""

    verdicts: dict[tuple[str, str], Verdict]
    output: str
    crashed: dict[str, str]  # allowlist item -> the target error and the first splat
    restarts: int
    consoles: list[str]  # the console of each kernel test_progs took down


def run_isolated(tests: list[str], run_batch: Callable[[list[str]], str],
                 restart: Callable[[], None], *, batch: int = BATCH_TESTS,
                 max_restarts: int = 16, say: Say = lambda _line: None,
                 console: Callable[[], str] = lambda: "") -> ReferenceRun:
    """Run the allowlist items `tests` through test_progs in batches (`run_batch` returns
    its output or raises TargetError when the kernel dies); a batch the kernel dies under
    is restarted and halved until the item that kills it is alone, as ours are
    (isolation.py): a panic in upstream's own runner costs that item, not the comparison.
    The dead kernel's console (`console`) is kept and its first splat named."""
    from harness.targets.errors import TargetError  # noqa: PLC0415
    from harness.targets.splat import find_splats  # noqa: PLC0415

    queue = CrashQueue((tests[i:i + batch] for i in range(0, len(tests), batch)),
                       max_restarts)
    found: dict[tuple[str, str], Verdict] = {}
    outputs: list[str] = []
    crashed: dict[str, str] = {}
    consoles: list[str] = []
    for some in queue:
        since = len(console_text(console))
        try:
            output = run_batch(some)
        except TargetError as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            text = console_text(console)[since:]
            consoles.append(text)
            splats = find_splats(text)
            if splats:
                reason += f"; first splat: {splats[0].head[:200]}"
            say(f"harness: test_progs took the kernel down under one of {', '.join(some)}: "
                f"{reason[:160]}")
            if not queue.died():
                crashed.update({t: f"{reason} (not restarted again)"
                                for t in [*some, *queue.left()]})
                break
            restart()
            blamed = some[0] if len(some) == 1 else None  # no console marks: halve
            if blamed is not None:
                crashed[blamed] = reason
            queue.requeue(some, blamed)
            continue
        outputs.append(output)
        found.update(verdicts(output))
    return ReferenceRun(found, "".join(outputs), crashed, queue.deaths, consoles)
