"""pytest plugin (entry point `kfunc_harness`): BPF programs as pytest items, a
`harness_target` fixture, and the --arch/--board options the harness's own suites share.

Why: a kernel developer's CI already speaks pytest (JUnit, -k, xdist, its own tests); the
harness should be one more plugin there, not a second runner. With `--kfunc-harness` (or
`-p kfunc_harness`), every program x arch x target becomes an item named as test_progs
would plus where it ran: `wq/wq_tc_plain[x86_64-qemu]`. Collection reads the ids from the
C sources (harness.progs.source_ids), so it never builds; the first item of an arch
builds its kernel (cached), boots one target for this worker and runs every selected
program of that arch in it; each item then reads its own verdict. A failure's text is
the judge's reason, libbpf's lines, the verifier log and the console's tail, so
`--junitxml` carries them. Under xdist, plain `-n N` is turned into `--dist loadgroup`
with one group per arch: one VM per arch, each on its own worker.

Options: --arch, --kernel/--tree/--patches, --pahole, --btfids, --board/--lab,
--denylist, --prog FILE.c (default: the harness suite: bpf_progs/ and the tree's
kfunc_implicit_args.c, wq.c, wq_failures.c and arena_kfunc_jit.c). Run with no test
paths, only the program items are collected; with paths, those tests too (they may use
`harness_target`).

`--board NAME` (with `--lab FILE`) runs on that lab board instead of a QEMU guest: the
kernel is built with the board's kconfig and deployed, as `harness run --board` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.arch import arch_list
from harness.errors import HarnessError, UsageError
from harness.kbuild.toolchains import DEFAULT_CLANG
from harness.targets.inventory import DEFAULT_LAB

if TYPE_CHECKING:
    from harness.kbuild.artifacts import BuildArtifacts
    from harness.kbuild.build import BuildRequest
    from harness.progs.suite import ArchRun
    from harness.targets.base import CommandResult, Target

PLUGIN = "kfunc_harness"
DEFAULT_ARCH = "x86_64"
_RUNTIME = pytest.StashKey["Runtime"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kfunc-harness")
    group.addoption("--kfunc-harness", action="store_true", dest="kfunc_harness",
                    help="collect every BPF program x arch x target as a test item "
                    "(as -p kfunc_harness does)")
    group.addoption(
        "--arch",
        default=DEFAULT_ARCH,
        help=f"comma-separated target architectures (x86_64,arm64); default {DEFAULT_ARCH} "
        "(a --board's own arch with --board)",
    )
    group.addoption("--kernel", dest="harness_kernel", metavar="RELEASE",
                    help="Debian kernel release to build (default 7.3)")
    group.addoption("--tree", dest="harness_tree", metavar="DIR",
                    help="a kernel tree to build instead of a release")
    group.addoption("--patches", dest="harness_patches", metavar="DIR|MBOX",
                    help="a patch series applied to --tree or the release first")
    group.addoption("--pahole", dest="harness_pahole", default=None, metavar="VERSION",
                    help="pahole: a pinned release (1.24, 1.30, 1.32), system or a path")
    group.addoption("--btfids", dest="harness_btfids", default=None, metavar="c|python|PATH",
                    help="resolve_btfids: the tree's C tool, ours, or a path")
    group.addoption("--clang", dest="harness_clang", default=DEFAULT_CLANG, metavar="WHICH",
                    help="BPF compiler: system, a pinned Debian release (19, 21) or a path "
                    f"(default {DEFAULT_CLANG})")
    group.addoption("--denylist", dest="harness_denylist", default=None, metavar="DIR",
                    help="BPF CI lists (DENYLIST, DENYLIST.<uname -m>, ALLOWLIST): denied "
                    "programs are skipped naming their entry")
    group.addoption("--prog", dest="harness_prog", action="append", default=[],
                    metavar="FILE.c", help="judge these BPF sources (repeatable; default "
                    "the harness suite)")
    group.addoption("--board", default=None, metavar="NAME",
                    help="run the program suite on this lab board instead of QEMU")
    group.addoption("--lab", default=DEFAULT_LAB, metavar="FILE",
                    help=f"the lab inventory --board is read from (default ./{DEFAULT_LAB})")


def items_enabled(config: pytest.Config) -> bool:
    """--kfunc-harness, or the plugin named with -p (it is always loaded as an entry
    point, so -p alone would otherwise change nothing)."""
    if config.getoption("kfunc_harness", default=False):
        return True
    plugins = getattr(config.known_args_namespace, "plugins", None) or []
    return PLUGIN in plugins or "harness.pytest_plugin" in plugins


def board_option(config: pytest.Config):  # noqa: ANN201 - inventory.Board | None
    """The --board of this session from its --lab inventory, or None."""
    name = config.getoption("--board")
    if not name:
        return None
    from harness.targets.inventory import find_board, load_inventory  # noqa: PLC0415

    try:
        return find_board(load_inventory(config.getoption("--lab")), name)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def selected_arches(config: pytest.Config) -> list[str]:
    """--arch as harness names (a --board's arch when --arch was left at its default)."""
    board = board_option(config)
    if board is not None and config.getoption("--arch") == DEFAULT_ARCH:
        return [board.arch]
    return arch_option(config)


def arch_option(config: pytest.Config) -> list[str]:
    """--arch as harness names; a bad spelling is pytest's usage error."""
    try:
        return [a.name for a in arch_list(config.getoption("--arch"))]
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kfunc_harness: a BPF program item of kfunc_harness")
    if not items_enabled(config):
        return
    runtime = Runtime(config)
    config.stash[_RUNTIME] = runtime
    # -n N alone means --dist load: every worker would boot every arch. Group by arch
    # instead (an explicit --dist is the user's).
    explicit = any(a == "--dist" or a.startswith(("--dist=", "-d")) for a in
                   config.invocation_params.args)
    if getattr(config.option, "dist", "no") == "load" and not explicit:
        config.option.dist = "loadgroup"


def pytest_unconfigure(config: pytest.Config) -> None:
    runtime = config.stash.get(_RUNTIME, None)
    if runtime is not None:
        runtime.close()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Program items alone when no test path was given (not the rootdir's testpaths)."""
    if items_enabled(config) and config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, which must see these too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not items_enabled(config):
        return
    runtime = config.stash[_RUNTIME]
    before = len(items)
    for arch in runtime.arches:
        label = runtime.label(arch)
        try:
            ids = runtime.collect_ids(arch)
        except (HarnessError, OSError) as exc:
            # One failing item, not a collection error: the other arches still run.
            items.append(ProgramItem.from_parent(
                session, name=f"setup[{arch}-{label}]", nodeid=f"{PLUGIN}::setup[{arch}-"
                f"{label}]", arch=arch, test_id="", setup_error=str(exc)))
            continue
        for test_id in ids:
            name = f"{test_id}[{arch}-{label}]"
            items.append(ProgramItem.from_parent(session, name=name,
                                                 nodeid=f"{PLUGIN}::{name}",
                                                 arch=arch, test_id=test_id))
    # Reported as collected, as a module's items are ("collected N items").
    config.hook.pytest_collectreport(report=pytest.CollectReport(
        PLUGIN, "passed", None, items[before:]))


class ProgramItem(pytest.Item):
    """One program run (test_loader sub-test) on one arch and target."""

    def __init__(self, *, arch: str, test_id: str, setup_error: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arch = arch
        self.test_id = test_id  # "wq/wq_tc_plain@rnd_hi32"
        self.setup_error = setup_error
        self.add_marker(pytest.mark.kfunc_harness)
        self.add_marker(pytest.mark.xdist_group(f"{PLUGIN}-{arch}"))

    @property
    def stem(self) -> str:
        return self.test_id.split("/", 1)[0]

    def runtest(self) -> None:
        if self.setup_error:
            pytest.fail(f"{self.arch}: cannot collect the programs: {self.setup_error}",
                        pytrace=False)
        from harness.progs.suite import COMPILE  # noqa: PLC0415 - heavy for collection

        run = self.config.stash[_RUNTIME].run_for(self.arch, self.session)
        results = run.by_id()
        result = results.get(f"{self.test_id}[{self.arch}]")
        if result is None:
            result = results.get(f"{self.stem}/{COMPILE}[{self.arch}]")
        if result is None:
            pytest.fail(f"{self.test_id}: no result (run error: {run.error})\n"
                        f"--- console ({self.arch}) ---\n{run.console_excerpt()}",
                        pytrace=False)
        self.user_properties += [("target", run.header()), ("verdict", result.verdict),
                                 ("expected", result.expected)]
        if result.time_ms is not None:
            self.user_properties.append(("time_ms", result.time_ms))
        if result.verdict == "skip":
            pytest.skip(result.reason)
        if result.verdict != "pass":
            pytest.fail(f"{result.failure_text()}\n--- console ({self.arch}) ---\n"
                        f"{run.console_excerpt()}", pytrace=False)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return PLUGIN, None, self.name


@dataclass
class Runtime:
    """This process's (xdist worker's) kernels, targets and program runs, one per arch."""

    config: pytest.Config
    built: dict[str, BuildArtifacts] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    runs: dict[str, ArchRun] = field(default_factory=dict)

    @property
    def arches(self) -> list[str]:
        return selected_arches(self.config)

    def label(self, arch: str) -> str:
        board = board_option(self.config)
        return "qemu" if board is None else board.name

    def request(self, arch: str) -> BuildRequest:
        from harness.kbuild.build import BuildRequest  # noqa: PLC0415 - kbuild is heavy

        opt = self.config.getoption
        request = BuildRequest(arch=arch, kernel=opt("harness_kernel"),
                               tree=opt("harness_tree"), patches=opt("harness_patches"))
        if opt("harness_pahole"):
            request.pahole = opt("harness_pahole")
        if opt("harness_btfids"):
            request.btfids = opt("harness_btfids")
        board = board_option(self.config)
        if board is not None:
            if board.arch != arch:
                raise UsageError(f"--board {board.name} is {board.arch}, not {arch}")
            request.kconfigs = [str(f) for f in board.kconfig]
        return request

    def sources(self, tree: Path) -> list[Path]:
        from harness.progs.runner import default_sources  # noqa: PLC0415

        chosen = [Path(p).expanduser().resolve() for p in self.config.getoption("harness_prog")]
        for path in chosen:
            if not path.is_file():
                raise UsageError(f"--prog {path}: no such BPF source")
        return chosen or default_sources(tree)

    def collect_ids(self, arch: str) -> list[str]:
        """The sub-test ids of `arch`, read from the sources of the tree to be built
        (fetched and patched, never built)."""
        from harness.kbuild.build import Builder, make_plan  # noqa: PLC0415
        from harness.progs.source_ids import (  # noqa: PLC0415
            declared_implicit_kfuncs,
            source_job_ids,
        )

        tree = Path(Builder(make_plan(self.request(arch)), quiet=True).prepared_source().path)
        implicit = declared_implicit_kfuncs(tree)
        return [jid for src in self.sources(tree) for jid in source_job_ids(src, implicit)]

    def artifacts(self, arch: str) -> BuildArtifacts:
        if arch not in self.built:
            from harness import session  # noqa: PLC0415

            self.built[arch] = session.build(self.request(arch), quiet=True)
        return self.built[arch]

    def target(self, arch: str) -> Target:
        """This worker's started target for `arch` (booted or deployed once)."""
        if arch not in self.targets:
            from harness.targets.registry import open_target  # noqa: PLC0415

            board = board_option(self.config)
            artifacts = self.artifacts(arch)
            if board is None:
                target = open_target("qemu", artifacts, arch)
            else:
                target = open_target("board", artifacts, arch, board=board)
            target.start()
            self.targets[arch] = target
        return self.targets[arch]

    def run_for(self, arch: str, session: pytest.Session) -> ArchRun:
        """The selected programs of `arch`, run once in this worker's target."""
        if arch not in self.runs:
            from harness.progs.lists import load_lists  # noqa: PLC0415
            from harness.progs.suite import ArchRun, run_arch  # noqa: PLC0415

            wanted = {item.stem for item in session.items
                      if isinstance(item, ProgramItem) and item.arch == arch}
            try:
                artifacts = self.artifacts(arch)
                sources = [s for s in self.sources(Path(artifacts.source_tree))
                           if s.name.removesuffix(".c").removesuffix(".bpf") in wanted]
                denylist = self.config.getoption("harness_denylist")
                lists = load_lists(denylist, arch) if denylist else None
                target = self.target(arch)
            except HarnessError as exc:
                run = ArchRun(arch, error=f"{type(exc).__name__}: {exc}")
            else:
                run = run_arch(artifacts, sources, target=target, lists=lists,
                               keep_going=True, target_name=self.label(arch),
                               clang=self.config.getoption("harness_clang"))
            self.runs[arch] = run
        return self.runs[arch]

    def close(self) -> None:
        for target in self.targets.values():
            with contextlib.suppress(Exception):  # closing every target matters more
                target.close()
        self.targets.clear()


class HarnessTarget:
    """What `harness_target` gives a test: a started target with its kernel, shared with
    the program items of this worker."""

    def __init__(self, runtime: Runtime, arch: str) -> None:
        self.runtime = runtime
        self.arch = arch

    @property
    def artifacts(self) -> BuildArtifacts:
        return self.runtime.artifacts(self.arch)

    @property
    def target(self) -> Target:
        return self.runtime.target(self.arch)

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        """A shell command on the target."""
        return self.target.run(cmd, timeout=timeout)

    def judge(self, *sources: str | Path, only: str | None = None,
              timeout: float = 60.0) -> ArchRun:
        """Compile `sources` for this kernel, load and judge them on the running target
        as `harness run` would; `.by_id()` keys results as "obj/prog[arch]"."""
        from harness.progs.suite import run_arch  # noqa: PLC0415

        return run_arch(self.artifacts, [Path(s) for s in sources], target=self.target,
                        only=only, timeout=timeout, target_name=self.runtime.label(self.arch),
                        clang=self.runtime.config.getoption("harness_clang"))

    def console(self) -> str:
        return self.target.console()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness_arch" in metafunc.fixturenames:
        arches = selected_arches(metafunc.config)
        board = board_option(metafunc.config)
        label = "qemu" if board is None else board.name
        metafunc.parametrize("harness_arch", arches, ids=[f"{a}-{label}" for a in arches],
                             scope="session")


@pytest.fixture(scope="session")
def _harness_runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    runtime = request.config.stash.get(_RUNTIME, None)
    if runtime is not None:
        yield runtime
        return
    runtime = Runtime(request.config)  # harness_target without --kfunc-harness
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def harness_target(_harness_runtime: Runtime, harness_arch: str) -> HarnessTarget:
    """A started target per selected arch (QEMU, or --board), booted once per worker."""
    try:
        _harness_runtime.target(harness_arch)
    except HarnessError as exc:
        pytest.fail(f"{harness_arch}: no target: {exc}", pytrace=False)
    return HarnessTarget(_harness_runtime, harness_arch)


@pytest.fixture(scope="session")
def lab_board(request: pytest.FixtureRequest):  # noqa: ANN201 - inventory.Board | None
    return board_option(request.config)


@pytest.fixture(scope="session")
def arches(request: pytest.FixtureRequest) -> list[str]:
    return arch_option(request.config)
