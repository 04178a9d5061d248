"""The whole program suite on one built kernel: plan, boot, run, keep what a report needs.

`harness run` and the pytest suite (tests/progs/test_suite_guest.py) both go
through here, so they judge the same jobs the same way: :func:`suite_jobs`
compiles the sources for a build and plans the sub-tests (what pytest turns
into test ids at collection), :func:`run_arch` boots one guest, runs them all
in it, and returns the results with the guest's console. A boot failure, a
kernel splat or a hang under a program costs that program's result: the target
is restarted and the rest are judged (progs/isolation.py). A boot failure does not
raise out of :func:`run_arch`: it becomes the run's ``error`` and every program
without a verdict gets an ERROR result with that reason, so one arch's broken
kernel never hides another arch's table.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.kbuild.toolchains import DEFAULT_CLANG
from harness.progs.agent import CONSOLE_DONE, CONSOLE_MARK
from harness.progs.compile import CompileError
from harness.progs.isolation import Isolated, Progress, Restart, no_verdict
from harness.progs.lists import Lists
from harness.progs.makeflags import DEFAULT_FLAVOR, SELFTESTS
from harness.progs.results import ProgResult
from harness.progs.runner import (
    Job,
    agent_warmup,
    default_sources,
    error_job,
    execute,
    kernel_files_of,
    kernel_implicit_kfuncs,
    plan,
    testmod_of,
)
from harness.targets.base import BootProtocol, Target, TargetIdentity
from harness.targets.vng import GUEST_CPUS

COMPILE = "(compile)"  # the program name a source's compile error is reported under
# Console lines worth showing next to a failing program, newest last.
CONSOLE_EXCERPT_LINES = 40


@dataclass
class ArchRun:
    """One arch's suite run: its results, the guest console, and what went wrong if anything."""

    arch: str
    results: list[ProgResult] = field(default_factory=list)
    console: str = ""
    error: str | None = None  # boot failure, splat, hang: the run did not finish
    boot_s: float | None = None
    suite_s: float | None = None
    target: str = ""  # "qemu", "board NAME"
    identity: TargetIdentity | None = None  # what the target ran: release, BTF hash
    flaky: list[str] = field(default_factory=list)  # test ids that passed only on retry
    clang: str = ""  # the compiler's version line, e.g. "Debian clang version 21.1.8 (...)"
    flavor: str = DEFAULT_FLAVOR  # the tree's test_progs flavor the programs were built as
    restarts: list[Restart] = field(default_factory=list)  # each time a program killed it

    def header(self) -> str:
        """`x86_64 on board rk: 7.3.4, BTF sha256 cc9c3dc16c49..., Debian clang version
        21.1.8`: what was judged where, compiled by what."""
        where = f"{self.arch} on {self.target or 'an unknown target'}"
        parts = [] if self.identity is None else [
            self.identity.release, f"BTF sha256 {self.identity.btf_sha256}"]
        if self.clang:
            parts.append(self.clang)
        if self.flavor != DEFAULT_FLAVOR:
            parts.append(f"flavor {self.flavor}")
        return f"{where}: {', '.join(parts)}" if parts else where

    def summary(self) -> str:
        """`80 pass` / `78 pass, 2 fail` / `error: ...`: the run in one line."""
        if self.error:
            return f"error: {self.error}"
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.verdict] = counts.get(result.verdict, 0) + 1
        return ", ".join(f"{n} {verdict}" for verdict, n in counts.items()) or "no programs"

    def by_id(self) -> dict[str, ProgResult]:
        return {r.test_id: r for r in self.results}

    def console_excerpt(self, lines: int = CONSOLE_EXCERPT_LINES) -> str:
        return console_excerpt(self.console, lines)


# overlayfs: every 9p boot; the agent's per-job marks (a splat's own lines say enough)
_NOISE = re.compile(r"^(?:\[\s*\d+\.\d+\]\s*)?(?:overlayfs: |" + re.escape(CONSOLE_MARK) + "|"
                    + re.escape(CONSOLE_DONE) + ")")


def console_excerpt(console: str, lines: int = CONSOLE_EXCERPT_LINES) -> str:
    """The console's last lines, without the overlayfs chatter every 9p boot prints."""
    kept = [ln for ln in console.splitlines() if ln.strip() and not _NOISE.match(ln)]
    return "\n".join(kept[-lines:])


def suite_sources(artifacts: Any, extra: Iterable[str | Path] = ()) -> list[Path]:
    """Our bpf_progs plus the tree's three selftests, plus any extra sources."""
    return default_sources(Path(artifacts.source_tree)) + [Path(p) for p in extra]


def suite_jobs(artifacts: Any, sources: Sequence[str | Path] | None = None, *,
               only: str | None = None, keep_going: bool = False,
               clang: str = DEFAULT_CLANG, flavor: str = DEFAULT_FLAVOR) -> list[Job]:
    """Compile C sources (cached) and plan: the sub-tests a run on ``artifacts`` will
    report.

    A source that does not compile raises CompileError (the developer's own program:
    theirs to fix first), or with ``keep_going`` becomes that file's one ERROR result
    named "<stem>/(compile)": a matrix cell on an older kernel whose vmlinux.h lacks a
    newer kfunc judges every other file all the same. `clang` is a --clang choice
    (system, a pinned release such as 21, or a path); `flavor` a test_progs flavor of the
    tree's Makefile (default, no_alu32, cpuv4).
    """
    from harness.kbuild.toolchains import select_clang  # noqa: PLC0415 - fetches pinned clangs
    from harness.progs.compile import compile_prog, toolchain_for  # noqa: PLC0415 - clang paths

    sources = list(sources) if sources is not None else suite_sources(artifacts)
    tc = toolchain_for(artifacts, str(select_clang(clang).path), flavor)
    implicit = kernel_implicit_kfuncs(kernel_files_of(artifacts))
    jobs: list[Job] = []
    for src in sources:
        # A built object (.o, e.g. from the tree's own selftests build) is taken as it
        # is: its test_loader annotations are in its BTF.
        try:
            obj = Path(src) if str(src).endswith(".o") else compile_prog(src, tc)
        except CompileError as exc:
            if not keep_going:
                raise
            stem = Path(src).name.removesuffix(".c").removesuffix(".bpf")
            jobs.append(error_job(Path(src), stem, COMPILE, f"error: {exc}"))
            continue
        jobs += plan([obj], artifacts.arch, implicit_kfuncs=implicit, only=only)
    return [_with_btf_object(job, tc) for job in jobs]


def _with_btf_object(job: Job, tc: Any) -> Job:
    """A __btf_path job with its BTF object: test_progs finds `btf__x.bpf.o` beside it,
    built from the tree's progs/btf__x.c; here it is compiled like the program."""
    from harness.progs.compile import compile_prog  # noqa: PLC0415

    name = job.run.spec.btf_custom_path
    if job.skip is not None or not name:
        return job
    source = Path(tc.source_tree) / SELFTESTS / "progs" / (name.removesuffix(".bpf.o") + ".c")
    try:
        return replace(job, btf_object=compile_prog(source, tc))
    except CompileError as exc:
        return replace(job, skip=f"error: __btf_path {name}: {exc}")


def apply_lists(jobs: list[Job], lists: Lists | None) -> list[Job]:
    """Jobs a deny/allow list rules out become skips naming the entry, as test_progs -d/-a
    report them; the rest are unchanged."""
    if not lists:
        return jobs
    kept = []
    for job in jobs:
        runs, why = lists.decide(job.object_stem, job.name)
        kept.append(job if runs or job.skip is not None else replace(job, skip=why))
    return kept


def retry_failures(jobs: list[Job], results: list[ProgResult], run: Callable[
        [list[Job]], list[ProgResult]]) -> tuple[list[ProgResult], list[str]]:
    """Run each failed job once more; a pass on retry replaces the failure and is listed
    as flaky (never hidden), a second failure stands as the first one was.

    Why: a nightly run over many cells on TCG guests meets one-off timeouts; BPF CI
    retries a failing test once too. Only fail/error verdicts are retried: a skip is a
    decision, not an accident.
    """
    # execute() returns one result per job, in job order.
    failed = [(n, job) for n, (job, result) in enumerate(zip(jobs, results, strict=True))
              if result.verdict not in ("pass", "skip") and job.skip is None]
    if not failed:
        return results, []
    again = run([job for _, job in failed])
    merged, flaky = list(results), []
    for (index, _job), second in zip(failed, again, strict=True):
        if second.verdict == "pass":
            merged[index] = second
            flaky.append(second.test_id)
    return merged, flaky


def job_test_id(job: Job, arch: str) -> str:
    """The id a job's result will carry (ProgResult.test_id), known before any boot."""
    return f"{job.object_stem}/{job.name}[{arch}]"


class _Boot:
    """target.start() on a thread; wait() re-raises its error (BootTimeout, KernelPanic...).

    `done` is an Event, not Thread.join/is_alive: CPython 3.11 marks a thread stopped
    when a Ctrl-C interrupts join() on it (bpo-45274's fix), so after a Ctrl-C both would
    say "finished" about a boot (a board's deploy) that is still running."""

    def __init__(self, target: BootProtocol) -> None:
        self.target = target
        self.error: BaseException | None = None
        self.seconds: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self.target.start()
        except BaseException as exc:  # noqa: BLE001 - handed to wait()
            self.error = exc
        finally:
            self.seconds = round(time.monotonic() - started, 2)
            self.done.set()

    def wait(self) -> None:
        while not self.done.wait(0.5):
            pass
        if self.error is not None:
            raise self.error


def run_arch(artifacts: Any, sources: Sequence[str | Path] | None = None, *,
             only: str | None = None, timeout: float = 60.0, memory: str = "1G",
             cpus: int = GUEST_CPUS, kvm: bool | None = None, boot_timeout: float = 180.0,
             target: Target | None = None, target_name: str = "qemu",
             target_options: Mapping[str, Any] | None = None,
             lists: Lists | None = None, retry: bool = False,
             keep_going: bool = False, clang: str = DEFAULT_CLANG,
             flavor: str = DEFAULT_FLAVOR, progress: Progress | None = None) -> ArchRun:
    """Boot ``artifacts`` (unless a running ``target`` is given), run the suite, collect.

    Compile errors and bad expectations raise (they are the user's to fix);
    what happens inside the guest is reported in the returned run. ``lists`` (BPF CI's
    deny/allow lists) turn programs into skips; ``retry`` runs each failure once more;
    ``keep_going`` reports a source that does not compile as that file's error result;
    ``clang`` picks the compiler (a --clang choice); ``progress`` hears how far a long
    run is and every restart after a crash.
    """
    from harness.kbuild.toolchains import select_clang  # noqa: PLC0415 - fetches pinned clangs
    from harness.targets.registry import open_target  # noqa: PLC0415

    arch = artifacts.arch
    sources = list(sources) if sources is not None else suite_sources(artifacts)
    compiler = select_clang(clang)  # a bad --clang fails before anything boots
    clang = str(compiler.path)
    out = ArchRun(arch, clang=compiler.version, flavor=flavor)
    own = target is None
    booting: _Boot | None = None
    jobs: list[Job] | None = None
    isolated: Isolated | None = None
    try:
        if own:  # the guest boots while the sources compile: an edit costs the longer only
            target = open_target(target_name, artifacts, arch, memory=memory, cpus=cpus,
                                 kvm=kvm, boot_timeout=boot_timeout, warm=agent_warmup(),
                                 **(target_options or {}))
            booting = _Boot(target)
        # compile errors raise: user's to fix
        jobs = apply_lists(suite_jobs(artifacts, sources, only=only, keep_going=keep_going,
                                      clang=clang, flavor=flavor), lists)
        if booting is not None:
            booting.wait()
            out.boot_s = booting.seconds
        board = getattr(target, "board", None)
        out.target = f"board {board.name}" if board is not None else target_name
        t1 = time.monotonic()
        def run(some: list[Job]) -> list[ProgResult]:
            return execute(some, artifacts.libbpf_so, target, timeout=timeout,
                           module=testmod_of(artifacts))

        isolated = Isolated(target, run, arch, progress=progress)
        out.results = isolated(jobs)
        if retry and isolated.fatal is None:
            out.results, out.flaky = retry_failures(jobs, out.results, isolated)
        out.error = isolated.fatal
        out.suite_s = round(time.monotonic() - t1, 2)
        # after the programs, not before: a guest hashes its BTF while they run
        # (QemuTarget.identity); one that stayed dead still reports why, without it
        try:
            out.identity = target.identity(
                timeout=timeout if out.error is None else min(timeout, 10.0))
        except HarnessError:
            if out.error is None:
                raise
    except CompileError:
        raise
    except HarnessError as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        if booting is not None:
            if not booting.done.is_set():  # interrupted: a board's deploy stops waiting
                getattr(target, "cancel", lambda: None)()
            while not booting.done.wait(0.5):  # never close a target still starting
                pass
        if target is not None:
            try:
                out.console = target.console()
            except Exception:  # noqa: BLE001 - a dead guest still gets its report
                out.console = ""
            if isolated is not None and isolated.restarts:
                out.restarts = isolated.restarts
                out.console = restarted_console(isolated.consoles, isolated.restarts,
                                                out.console)
            if own:
                target.close()
    if out.error is not None:
        if jobs is None:
            jobs = apply_lists(suite_jobs(artifacts, sources, only=only,
                                          keep_going=keep_going, clang=clang,
                                          flavor=flavor), lists)
        seen = {r.test_id for r in out.results}
        for job in jobs:
            if job_test_id(job, arch) not in seen:
                out.results.append(no_verdict(job, arch, f"no verdict: {out.error}"))
    return out


def restarted_console(dead: list[str], restarts: list[Restart], last: str) -> str:
    """Every boot's console in order, each dead one followed by why it was restarted."""
    parts = []
    for console, restart in zip(dead, restarts, strict=True):
        blamed = f" under {restart.blamed}" if restart.blamed else ""
        parts.append(f"{console.rstrip()}\n----- harness: the target died{blamed} "
                     f"({restart.reason}); restarted -----\n")
    return "".join(parts) + last
