"""The program suite in real guests: one pytest test per program (sub-test) per arch.

Collection takes the kernel of every ``--arch`` (exported in
``HARNESS_TEST_KERNEL[_ARM64]``, else built through the suite-wide ``build_kernel``, a
cache hit after the first time) and compiles the sources against it, because the test
ids are the programs test_loader would run, and only the compiled objects' BTF says
which those are. A session that will not run guest tests (``--collect-only``,
``--no-kernel-build``, or ``-m`` deselecting ``guest``/``kernel``) builds nothing: it
collects one placeholder per arch instead. Then one guest per arch
per worker (session fixture) runs the whole suite once; each test reads its
own verdict. A failure shows the judge's reason, libbpf's lines, the verifier
log and an excerpt of the guest console; a guest that panics or hangs fails
every program of that arch with the reason.

With pytest-xdist, ``--dist loadgroup`` keeps each arch on one worker (one
VM per arch); plain ``-n N`` works too, every worker booting its own guests.
``--junitxml`` carries the same failure text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from harness.errors import HarnessError
from harness.progs.suite import ArchRun, job_test_id, run_arch, suite_jobs, suite_sources
from tests.helpers.kernels import KERNEL_ENV, build_kernel, exported_kernel, selected_arches

pytestmark = [pytest.mark.slow, pytest.mark.guest]


@dataclass(frozen=True)
class Case:
    arch: str
    test_id: str  # ProgResult.test_id, e.g. "wq/wq_tc_plain@rnd_hi32[x86_64]"
    setup_error: str | None = None


def _runs_guests(config: pytest.Config) -> bool:
    """Whether this session may select a guest test (and so may build at collection)."""
    if config.getoption("collectonly") or config.getoption("--no-kernel-build"):
        return False
    markexpr = config.getoption("markexpr")
    if not markexpr:
        return True
    from _pytest.mark.expression import Expression  # noqa: PLC0415 - pytest's own -m parser

    marks = {"guest", "kernel", "slow", "arm64"}
    return Expression.compile(markexpr).evaluate(lambda name, **_kw: name in marks)


def artifacts_for(arch: str, config: pytest.Config):  # noqa: ANN201 - BuildArtifacts | None
    """The kernel for `arch` when this session runs guests, else None (a placeholder)."""
    exported = exported_kernel(arch)
    if exported is not None or not _runs_guests(config):
        return exported
    return build_kernel(arch)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    params = []
    xdist = metafunc.config.pluginmanager.hasplugin("xdist")
    for arch in selected_arches(metafunc.config):
        group = pytest.mark.xdist_group(f"guest-{arch}") if xdist else ()
        try:
            artifacts = artifacts_for(arch, metafunc.config)
            if artifacts is None:
                params.append(pytest.param(
                    Case(arch, f"setup[{arch}]"), id=f"setup[{arch}]",
                    marks=pytest.mark.skip(
                        reason=f"no guest tests selected and no {KERNEL_ENV[arch]}")))
                continue
            jobs = suite_jobs(artifacts)
        except HarnessError as exc:
            # Reported as a failing test, not a collection error: other arches still run.
            params.append(pytest.param(Case(arch, f"setup[{arch}]", str(exc)),
                                       id=f"setup[{arch}]", marks=group))
            continue
        for job in jobs:
            tid = job_test_id(job, arch)
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

    def get(arch: str) -> ArchRun:
        if arch not in runs:
            artifacts = artifacts_for(arch, request.config)
            assert artifacts is not None  # collection made only skips then
            wanted = _selected_objects(request.session, arch)
            sources = [src for src in suite_sources(artifacts) if src.stem in wanted]
            runs[arch] = run_arch(artifacts, sources)
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
    record_property("verdict", result.verdict)
    record_property("expected", result.expected)
    if result.time_ms is not None:
        record_property("time_ms", result.time_ms)
    if result.verdict == "skip":
        pytest.skip(result.reason)
    if result.verdict != "pass":
        pytest.fail(f"{result.failure_text()}\n--- console ({case.arch}) ---\n"
                    f"{run.console_excerpt()}", pytrace=False)
