"""Suite-wide fixtures: kernels built (or taken from the cache) by the real pipeline."""

from __future__ import annotations

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
