"""The program suite in real guests: one pytest test per program (sub-test) per arch.

Collection builds nothing: the test ids are the sub-tests test_loader would run, read
from the C sources (harness.progs.source_ids) — our bpf_progs/ and the 7.3 tree's three
selftests, so a session that runs guests fetches that tree's source (no build) to
collect. A session that will not run guest tests (``--collect-only``,
``--no-kernel-build``, or ``-m`` deselecting ``guest``/``kernel``) fetches nothing: it
collects one placeholder per arch. The first test of an arch builds its kernel (a cache
hit after the first time), compiles the sources and runs the whole suite in one guest
per worker; each test reads its own verdict, and a separate test checks that the ids
read from the sources are the ones the compiled objects give. A failure shows the
judge's reason, libbpf's lines, the verifier log and an excerpt of the guest console; a
guest that panics or hangs fails every program of that arch with the reason.

With pytest-xdist, ``--dist loadgroup`` keeps each arch on one worker (one
VM per arch); plain ``-n N`` works too, every worker booting its own guests.
``--junitxml`` carries the same failure text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import session
from harness.errors import HarnessError
from harness.kbuild.build import BuildRequest
from harness.progs.runner import default_sources
from harness.progs.source_ids import declared_implicit_kfuncs, source_job_ids
from harness.progs.suite import ArchRun, job_test_id, suite_jobs, suite_sources
from harness.pytest_plugin import board_option
from harness.session import RunRequest
from harness.targets.deploy import build_btf_sha256
from tests.helpers.kernels import (
    KERNEL_ENV,
    build_kernel,
    exported_kernel,
    selected_arches,
    suite_kernel,
)

pytestmark = [pytest.mark.slow, pytest.mark.guest]


@dataclass(frozen=True)
class Case:
    arch: str
    test_id: str  # ProgResult.test_id, e.g. "wq/wq_tc_plain@rnd_hi32[x86_64]"
    setup_error: str | None = None


def _runs_guests(config: pytest.Config) -> bool:
    """Whether this session may select a guest test (and so may fetch a tree to collect)."""
    if config.getoption("collectonly") or config.getoption("--no-kernel-build"):
        return False
    markexpr = config.getoption("markexpr")
    if not markexpr:
        return True
    from _pytest.mark.expression import Expression  # noqa: PLC0415 - pytest's own -m parser

    marks = {"guest", "kernel", "slow", "arm64"}
    return Expression.compile(markexpr).evaluate(lambda name, **_kw: name in marks)


def _suite_tree(arch: str) -> Path:
    """The tree whose selftests join the suite: the exported kernel's, else Debian's 7.3
    (what the suite's kernel is built from), fetched and unpacked, never built."""
    exported = exported_kernel(arch)
    if exported is not None:
        return Path(exported.source_tree)
    from harness.kbuild import sources  # noqa: PLC0415

    return sources.from_debian("7.3").path


def source_ids(arch: str) -> list[str]:
    """The test ids of `arch`, from the sources alone."""
    tree = _suite_tree(arch)
    implicit = declared_implicit_kfuncs(tree)
    return [f"{jid}[{arch}]" for src in default_sources(tree)
            for jid in source_job_ids(src, implicit)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "plan_arch" in metafunc.fixturenames:
        metafunc.parametrize("plan_arch", selected_arches(metafunc.config))
    if "case" not in metafunc.fixturenames:
        return
    params = []
    xdist = metafunc.config.pluginmanager.hasplugin("xdist")
    for arch in selected_arches(metafunc.config):
        group = pytest.mark.xdist_group(f"guest-{arch}") if xdist else ()
        if not _runs_guests(metafunc.config):
            params.append(pytest.param(
                Case(arch, f"setup[{arch}]"), id=f"setup[{arch}]",
                marks=pytest.mark.skip(reason=f"no guest tests selected ({KERNEL_ENV[arch]})")))
            continue
        try:
            ids = source_ids(arch)
        except (HarnessError, OSError) as exc:
            # Reported as a failing test, not a collection error: other arches still run.
            params.append(pytest.param(Case(arch, f"setup[{arch}]", str(exc)),
                                       id=f"setup[{arch}]", marks=group))
            continue
        for tid in ids:
            params.append(pytest.param(Case(arch, tid), id=tid, marks=group))
    metafunc.parametrize("case", params)


def _selected_objects(session: pytest.Session, arch: str) -> set[str]:
    """Object stems that have a selected test for ``arch`` (after -k/-m deselection)."""
    stems = set()
    for item in session.items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if isinstance(case, Case) and case.arch == arch and not case.setup_error:
            stems.add(case.test_id.split("/", 1)[0])
    return stems


@pytest.fixture(scope="session")
def arch_run(request: pytest.FixtureRequest) -> Callable[[str], ArchRun]:
    """arch -> the suite's run in one guest booted for this worker (at most once per arch).

    Only the sources with a selected test are compiled and run, so ``-k hid``
    costs one boot and the HID programs, not the whole suite.
    """
    runs: dict[str, ArchRun] = {}

    board = board_option(request.config)

    def get(arch: str) -> ArchRun:
        if arch not in runs:
            wanted = _selected_objects(request.session, arch)
            if board is None:
                artifacts = suite_kernel(arch, request.config)
                target, options, build = "qemu", {}, BuildRequest(arch=arch)
            else:  # --board: as `harness run --board` does (its kconfig, deployed)
                if arch != board.arch:
                    pytest.fail(f"--board {board.name} is {board.arch}, not {arch}",
                                pytrace=False)
                build = BuildRequest(arch=arch, kconfigs=[str(f) for f in board.kconfig])
                artifacts = build_kernel(arch, kconfigs=tuple(build.kconfigs))
                target, options = "board", {"board": board}
            sources = [src for src in suite_sources(artifacts) if src.stem in wanted]
            run_request = RunRequest(builds=(build,), sources=tuple(sources), target=target,
                                     target_options=options)
            run = runs[arch] = session.judge(run_request, artifacts)  # as `harness run` does
            # read after the programs, from the hash the guest made as it came up
            if run.error is None and (run.identity is None or run.identity.btf_sha256
                                      != build_btf_sha256(artifacts.vmlinux)):
                pytest.fail(f"{arch}: the run names another kernel: {run.identity}",
                            pytrace=False)
        return runs[arch]

    return get


def test_program(case: Case, arch_run: Callable[[str], ArchRun],
                 record_property: Callable[[str, object], None]) -> None:
    if case.setup_error:
        pytest.fail(f"{case.arch}: build or compile failed: {case.setup_error}", pytrace=False)
    run = arch_run(case.arch)
    result = run.by_id().get(case.test_id)
    if result is None:
        pytest.fail(f"{case.test_id}: no result (run error: {run.error})\n"
                    f"--- console ---\n{run.console_excerpt()}", pytrace=False)
    record_property("target", run.header())
    record_property("verdict", result.verdict)
    record_property("expected", result.expected)
    if result.time_ms is not None:
        record_property("time_ms", result.time_ms)
    if result.verdict == "skip":
        pytest.skip(result.reason)
    if result.verdict != "pass":
        pytest.fail(f"{result.failure_text()}\n--- console ({case.arch}) ---\n"
                    f"{run.console_excerpt()}", pytrace=False)


def test_ids_read_from_sources_are_the_compiled_plans(plan_arch: str,
                                                      request: pytest.FixtureRequest) -> None:
    """Collection's ids (C text) equal the compiled objects' sub-tests (their BTF tags)."""
    artifacts = suite_kernel(plan_arch, request.config)
    planned = {job_test_id(job, plan_arch) for job in suite_jobs(artifacts)}
    collected = set(source_ids(plan_arch))
    assert collected == planned, (f"only in the sources: {sorted(collected - planned)}; "
                                  f"only in the objects: {sorted(planned - collected)}")
