"""Kernels the tests run on, built on first request through the harness's own pipeline.

Nothing here runs at import or collection: a test gets a kernel by asking for one of
the fixtures in tests/conftest.py, which call these. Repeated requests in one process
return the same record, and the build cache's lock makes two xdist workers asking for
the same kernel build it once. ``HARNESS_TEST_KERNEL`` (x86_64) and
``HARNESS_TEST_KERNEL_ARM64`` may name the ``artifacts.json`` of a kernel built
elsewhere; it is then used instead of building.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.build import Builder, BuildRequest, make_plan

KERNEL_ENV = {"x86_64": "HARNESS_TEST_KERNEL", "arm64": "HARNESS_TEST_KERNEL_ARM64"}

_built: dict[tuple, BuildArtifacts] = {}
# The test being set up (tests/conftest.py's pytest_runtest_setup), for require_kernel_mark.
current_test: pytest.Item | None = None


def require_kernel_mark(what: str) -> None:
    """Fail a test that reaches a kernel, its source or a pinned download unmarked:
    the fast tier (-m "not kernel") would otherwise start a build nobody asked for."""
    item = current_test
    if item is not None and item.get_closest_marker("kernel") is None:
        pytest.fail(f"{item.nodeid} needs {what} but is not marked kernel "
                    "(use a kernel fixture or @pytest.mark.kernel)", pytrace=False)


def build_kernel(arch: str = "x86_64", **options: object) -> BuildArtifacts:
    """Build through the harness pipeline; repeated calls hit the artifact cache."""
    key = (arch, tuple(sorted(options.items())))
    if key not in _built:
        request = BuildRequest(arch=arch, **options)  # type: ignore[arg-type]
        _built[key] = Builder(make_plan(request), quiet=True).build()
    return _built[key]


def exported_kernel(arch: str) -> BuildArtifacts | None:
    """The kernel HARNESS_TEST_KERNEL[_ARM64] names, when it names an artifacts record."""
    record = os.environ.get(KERNEL_ENV[arch], "")
    if record.endswith(".json") and Path(record).is_file():
        return BuildArtifacts.from_json(Path(record).read_text())
    return None


def default_kernel(arch: str) -> BuildArtifacts:
    """The suite's kernel for `arch`: 7.3, pahole 1.32, Python btfids, the project's
    fragments (or the exported one)."""
    return exported_kernel(arch) or build_kernel(arch)


def build_dir(artifacts: BuildArtifacts) -> Path:
    """make's O= dir of a build (.tmp_vmlinux1, objects, the tree's C resolve_btfids)."""
    return Path(artifacts.toolchain["build_dir"])


def suite_kernel(arch: str, config: pytest.Config) -> BuildArtifacts:
    """The default kernel for `arch`, built on first use, for fixtures and tests.

    Skips under --no-kernel-build (unless exported) and for an arch --arch does not
    select; a failed build fails the asking test with one line (the log has the rest).
    """
    exported = exported_kernel(arch)
    if exported is not None:
        return exported
    require_kernel_mark(f"the {arch} kernel build")
    if config.getoption("--no-kernel-build", default=False):
        pytest.skip(f"--no-kernel-build and no {KERNEL_ENV[arch]}")
    if arch not in selected_arches(config):
        pytest.skip(f"--arch does not select {arch}")
    try:
        return build_kernel(arch)
    except Exception as exc:  # noqa: BLE001 - one line names the cause
        pytest.fail(f"cannot build the {arch} test kernel: {exc}", pytrace=False)


def selected_arches(config: pytest.Config) -> list[str]:
    return [a.strip() for a in config.getoption("--arch").split(",") if a.strip()]
