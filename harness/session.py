"""One run, described as data and carried out by one set of functions.

request -> build (per arch, cached) -> target (by registry name) -> verdicts. `harness
run`, `harness progs watch` and the suite tests go through here; so will repro, bisect
and matrix: a bisect step calls :func:`build` alone (a BTF-stage swap, no boot), a
matrix cell is one :class:`RunRequest`. CLI handlers only parse, call and print.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.build import Builder, BuildRequest, make_plan
from harness.kbuild.toolchains import DEFAULT_CLANG
from harness.progs.corpus import discover
from harness.progs.lists import Lists, load_lists
from harness.progs.makeflags import DEFAULT_FLAVOR
from harness.progs.reference import Allowlist, Pair, Reference
from harness.progs.results import ProgResult
from harness.progs.runner import agent_warmup
from harness.progs.suite import ArchRun, run_arch, suite_sources
from harness.targets.base import Target
from harness.targets.registry import check_kernel_target, open_target
from harness.targets.vng import GUEST_CPUS

Say = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


@dataclass(frozen=True)
class RunRequest:
    """Everything a run needs: a kernel per arch, where to run it, what to judge."""

    builds: tuple[BuildRequest, ...]  # one per arch, built in this order
    target: str = "qemu"  # a harness.targets.registry name
    sources: tuple[Path, ...] = ()  # BPF C sources; empty: the suite of each build's tree
    only: str | None = None  # judge only programs whose name contains this
    timeout: float = 60.0  # per program (s)
    memory: str = "1G"
    cpus: int = GUEST_CPUS
    kvm: bool | None = None  # None: probe
    # Options of the target kind beyond the machine's (a board: board=, deploy=).
    target_options: Mapping[str, Any] = field(default_factory=dict)
    denylist: Path | None = None  # a directory of BPF CI DENYLIST/ALLOWLIST[.arch] files
    retry: bool = False  # run each failure once more; a pass then is reported flaky
    keep_going: bool = False  # a source that does not compile is its own error result
    clang: str = DEFAULT_CLANG  # BPF compiler: system, a pinned release (19, 21) or a path
    flavor: str = DEFAULT_FLAVOR  # the tree's test_progs flavor: default, no_alu32, cpuv4
    # The tree's own test_loader programs (progs.corpus) whose name matches this glob,
    # instead of `sources`; each file that does not compile is its own error result.
    selftests: str | None = None

    def __post_init__(self) -> None:
        if not self.builds:
            raise UsageError("a run needs at least one arch")
        check_kernel_target(self.target)
        for src in self.sources:
            if not Path(src).is_file():
                raise UsageError(f"no such BPF source: {src}")
        for arch in self.arches:  # a broken list is a one-line error before any build
            self.lists(arch)

    def lists(self, arch: str) -> Lists | None:
        """The deny/allow lists in force on `arch`, as BPF CI picks them."""
        return load_lists(self.denylist, arch) if self.denylist is not None else None

    @property
    def arches(self) -> list[str]:
        return [b.arch for b in self.builds]


@dataclass
class RunOutcome:
    """The per-arch runs of one request, in request order."""

    runs: list[ArchRun] = field(default_factory=list)

    @property
    def results(self) -> list[ProgResult]:
        return [r for run in self.runs for r in run.results]

    @property
    def errors(self) -> list[str]:
        return [f"{run.arch}: {run.error}" for run in self.runs if run.error]

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(r.failed for r in self.results)


def build(request: BuildRequest, *, quiet: bool = False,
          on_stage: Callable[[str], None] | None = None) -> BuildArtifacts:
    """Build one kernel (or take it from the cache); the build log path is printed.
    `on_stage` hears each build stage's name as it starts."""
    return Builder(make_plan(request), quiet=quiet, on_stage=on_stage).build()


def build_all(request: RunRequest, *, quiet: bool = False) -> dict[str, BuildArtifacts]:
    """Every arch's kernel, one after another: never two kernel builds at once."""
    return {b.arch: build(b, quiet=quiet) for b in request.builds}


def open_for(request: RunRequest, artifacts: BuildArtifacts) -> Target:
    """An unstarted target of the request's kind for `artifacts`."""
    return open_target(request.target, artifacts, artifacts.arch, memory=request.memory,
                       cpus=request.cpus, kvm=request.kvm, warm=agent_warmup(),
                       **request.target_options)


def sources_for(request: RunRequest, artifacts: BuildArtifacts) -> Sequence[Path]:
    if request.selftests is not None:
        corpus = discover(Path(artifacts.source_tree)).select(request.selftests)
        if not corpus.judged:
            raise UsageError(f"--selftests {request.selftests}: no test_loader program of "
                             f"{artifacts.source_tree} matches")
        return [e.source for e in corpus.judged]
    return list(request.sources) or suite_sources(artifacts)


def judge(request: RunRequest, artifacts: BuildArtifacts, *, say: Say = _quiet) -> ArchRun:
    """Boot a target for `artifacts`, run the request's programs, close it."""
    sources = sources_for(request, artifacts)
    board = request.target_options.get("board")
    if board is None:
        where = f"booting {artifacts.boot_image}"
    elif request.target_options.get("deploy", True):
        where = f"deploying {artifacts.boot_image.name} to board {board.name}"
    else:
        where = f"on board {board.name} as it runs now"
    say(f"harness: {artifacts.arch}: {where} and running {len(sources)} sources")
    run = run_arch(artifacts, sources, only=request.only, timeout=request.timeout,
                   memory=request.memory, cpus=request.cpus, kvm=request.kvm,
                   target_name=request.target, target_options=request.target_options,
                   lists=request.lists(artifacts.arch), retry=request.retry,
                   keep_going=request.keep_going or request.selftests is not None,
                   clang=request.clang, flavor=request.flavor,
                   progress=lambda line: say(f"harness: {line}"))
    if board is not None:
        from harness.targets.boardlock import record_result  # noqa: PLC0415

        record_result(board.name, run.summary())
    return run


def run(request: RunRequest, *, say: Say = _quiet, quiet_builds: bool = False) -> RunOutcome:
    """Build every arch first, then judge each on its own target."""
    builds = build_all(request, quiet=quiet_builds)
    outcome = RunOutcome()
    for arch in request.arches:
        outcome.runs.append(judge(request, builds[arch], say=say))
    return outcome


@dataclass
class Comparison:
    """One arch's corpus judged by us and by the tree's test_progs in the same guest."""

    run: ArchRun
    pairs: list[Pair]
    reference: Reference
    test_progs_s: float
    test_progs_output: str
    error: str | None = None  # test_progs gave no verdicts: why (ours still stand)
    crashed: dict[str, str] = field(default_factory=dict)  # items test_progs panicked under
    crash_log: Path | None = None  # the consoles of the kernels test_progs took down

    @property
    def disagreements(self) -> list[Pair]:
        return [p for p in self.pairs if p.ours is not None and p.theirs is not None
                and not p.agrees]


def _test_progs_batch(target: Target, scratch: Path, timeout: float, allowlist: Allowlist,
                      items: list[str]) -> str:
    """test_progs' output on the allowlist `items`, sent as a file: test_loader subtest
    names may hold commas, which `-a a,b` would split."""
    from harness.progs import reference  # noqa: PLC0415

    allow = scratch / "allow"
    allow.write_text("".join(f"{line}\n" for line in allowlist.lines(items)))
    target.put(allow, reference.GUEST_ALLOWLIST, timeout=timeout)
    return target.run(f"cd {reference.GUEST_DIR} && ./test_progs "
                      f"-a @{reference.GUEST_ALLOWLIST} 2>&1", timeout=timeout).out


def compare_selftests(request: RunRequest, *, say: Say = _quiet, timeout: float = 3600.0,
                      quiet_builds: bool = False) -> list[Comparison]:
    """Judge the request's --selftests corpus, then run the tree's own test_progs on the
    same tests in the same guest, per arch; pair the verdicts program by program.

    The guest sees test_progs' directory through a 9p share (QEMU targets only: a board
    would need the whole build copied over)."""
    from harness.kbuild.toolchains import select_clang  # noqa: PLC0415
    from harness.progs import reference  # noqa: PLC0415

    if request.selftests is None or request.target != "qemu":
        raise UsageError("compare needs --selftests [GLOB] on the qemu target")
    compiler = select_clang(request.clang)
    out = []
    for arch, artifacts in build_all(request, quiet=quiet_builds).items():
        ref = reference.build(artifacts, str(compiler.path), compiler.version, say=say)
        corpus = discover(Path(artifacts.source_tree)).select(request.selftests)
        # vng mounts a host dir outside the guest root at a guest path of our choosing
        options = {**request.target_options,
                   "rwdirs": (f"{reference.GUEST_DIR}={ref.directory}",)}
        with open_target(request.target, artifacts, arch, memory=request.memory,
                         cpus=request.cpus, kvm=request.kvm, **options) as target, \
                tempfile.TemporaryDirectory(prefix="kfunc-harness-allow-") as scratch:
            target.start()
            run = run_arch(artifacts, sources_for(request, artifacts), only=request.only,
                           timeout=request.timeout, target=target, target_name="qemu",
                           lists=request.lists(arch), keep_going=True, clang=request.clang,
                           flavor=request.flavor,
                           progress=lambda line: say(f"harness: {line}"))
            allow = reference.allowlist(corpus, run.results)
            say(f"harness: {arch}: running the tree's test_progs on "
                f"{len({i.partition('/')[0] for i in allow.items})} tests")
            started = time.monotonic()
            run_batch = functools.partial(_test_progs_batch, target, Path(scratch), timeout,
                                          allow)
            theirs = reference.run_isolated(allow.items, run_batch, target.reboot, say=say,
                                            console=target.console)
            took = round(time.monotonic() - started, 1)
        error = None if theirs.verdicts or theirs.crashed else (
            "test_progs printed no results: "
            f"{(theirs.output.strip().splitlines() or [''])[-1][:200]}")
        crash_log = None
        if theirs.consoles:
            crash_log = ref.log.with_name(f"{ref.log.stem}-crashes.log")
            crash_log.write_text("".join(f"===== kernel {n} test_progs took down =====\n"
                                         f"{text}\n"
                                         for n, text in enumerate(theirs.consoles, 1)))
        out.append(Comparison(run, reference.compare(run.results, theirs.verdicts, corpus,
                                                     theirs.crashed),
                              ref, took, theirs.output, error, theirs.crashed, crash_log))
    return out
