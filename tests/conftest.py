"""Suite-wide fixtures: kernels built (or taken from the cache) by the real pipeline."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.build import Builder, BuildRequest, make_plan

_built: dict[tuple, BuildArtifacts] = {}


def build_kernel(arch: str = "x86_64", **options: object) -> BuildArtifacts:
    """Build through the harness pipeline; repeated calls hit the artifact cache."""
    key = (arch, tuple(sorted(options.items())))
    if key not in _built:
        request = BuildRequest(arch=arch, **options)  # type: ignore[arg-type]
        _built[key] = Builder(make_plan(request), quiet=True).build()
    return _built[key]


@pytest.fixture(scope="session")
def kernel_builder() -> Callable[..., BuildArtifacts]:
    return build_kernel


@pytest.fixture(scope="session")
def x86_build() -> BuildArtifacts:
    """The default kernel: 7.3, x86_64, pahole 1.32, the project's fragments."""
    return build_kernel("x86_64")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-kernel-build", action="store_true",
                     help="do not build kernels for the suite; tests needing one skip")


def pytest_configure(config: pytest.Config) -> None:
    """Build (or take from the cache) the kernels the suite runs on, before collection.

    Test modules find them through environment variables, so every suite (BTF, btfids,
    targets, progs) exercises kernels the pipeline built — in CI as on a laptop.
    """
    if config.getoption("--no-kernel-build") or config.getoption("--collect-only"):
        return
    arches = [a.strip() for a in config.getoption("--arch").split(",") if a.strip()]
    for arch in arches:
        env = "HARNESS_TEST_KERNEL" if arch == "x86_64" else "HARNESS_TEST_KERNEL_ARM64"
        if os.environ.get(env):
            continue
        if not os.environ.get("PYTEST_XDIST_WORKER"):
            print(f"harness tests: building the {arch} test kernel (a cache hit after the "
                  "first run)", file=sys.stderr, flush=True)
        try:
            artifacts = build_kernel(arch)
        except Exception as exc:  # noqa: BLE001 - one line, then stop the session
            pytest.exit(f"cannot build the {arch} test kernel: {exc}", returncode=3)
        record = artifacts.vmlinux.parent / "artifacts.json"
        os.environ[env] = str(record)
        if arch == "x86_64":
            os.environ.setdefault("HARNESS_BUILT_X86", artifacts.toolchain["build_dir"])
            os.environ.setdefault("HARNESS_VMLINUX", str(artifacts.vmlinux))
