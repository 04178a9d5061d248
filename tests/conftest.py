"""Suite-wide fixtures: kernels and pinned toolchains, made only when a test asks.

Nothing builds at configure or collection time (``--collect-only`` never builds). A
test that requests one of KERNEL_FIXTURES — directly or through another fixture — is
marked ``kernel`` here, so ``-m "not kernel and not guest"`` (scripts/check) selects
the tests that need no kernel build, no kernel source and no toolchain download.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cache import cache_root, locked
from harness.kbuild.artifacts import BuildArtifacts
from tests.helpers import kernels

# The fixtures that build a kernel, unpack kernel sources or fetch a pinned toolchain; a
# fixture built on one of these (x86_build_dir, built_vmlinux, toolchain_73...) is found
# through item.fixturenames, which holds every fixture a test reaches.
KERNEL_FIXTURES = frozenset({
    "kernel_builder", "x86_build", "arm64_build", "pahole_132", "debian_tree_73", "c72", "c612",
    "x86_kernel", "arm64_kernel",  # tests/targets: a boot image (or HARNESS_TEST_KERNEL)
})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-kernel-build", action="store_true",
                     help="never build a kernel; tests that need one skip")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that (transitively) uses a kernel fixture; guest implies kernel;
    a test or parameter named for arm64 is marked arm64 too."""
    for item in items:
        uses = KERNEL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses:  # what the test needs, for reports: item.get_closest_marker("kernel").kwargs
            item.add_marker(pytest.mark.kernel(needs=", ".join(sorted(uses))))
        elif item.get_closest_marker("guest"):
            item.add_marker(pytest.mark.kernel(needs="a guest"))
        if "arm64" in item.name and item.get_closest_marker("kernel"):
            item.add_marker(pytest.mark.arm64)


def pytest_runtest_setup(item: pytest.Item) -> None:
    kernels.current_test = item


def _no_build(config: pytest.Config) -> bool:
    return bool(config.getoption("--no-kernel-build"))


@pytest.fixture(scope="session")
def kernel_builder(pytestconfig: pytest.Config) -> Callable[..., BuildArtifacts]:
    """build_kernel(arch, **BuildRequest options) for tests that need other kernels."""
    kernels.require_kernel_mark("kernel builds")
    if _no_build(pytestconfig):
        pytest.skip("--no-kernel-build")
    return kernels.build_kernel


@pytest.fixture(scope="session")
def x86_build(pytestconfig: pytest.Config) -> BuildArtifacts:
    """The default kernel: 7.3, x86_64, pahole 1.32, Python btfids, the project's fragments."""
    return kernels.suite_kernel("x86_64", pytestconfig)


@pytest.fixture(scope="session")
def arm64_build(pytestconfig: pytest.Config) -> BuildArtifacts:
    return kernels.suite_kernel("arm64", pytestconfig)


@pytest.fixture(scope="session")
def x86_build_dir(x86_build: BuildArtifacts) -> Path:
    """make's O= dir of the default x86_64 kernel (.tmp_vmlinux1, objects, C tools)."""
    return kernels.build_dir(x86_build)


@pytest.fixture(scope="session")
def pahole_132(pytestconfig: pytest.Config) -> Path:
    """The pinned pahole 1.32 (Debian sid's, fetched into the toolchain cache)."""
    from harness.kbuild import toolchains

    kernels.require_kernel_mark("the pinned pahole 1.32")
    if _no_build(pytestconfig):
        pytest.skip("--no-kernel-build: no pinned pahole download")
    return toolchains.select_pahole("1.32").path


@pytest.fixture(scope="session")
def debian_tree_73(pytestconfig: pytest.Config):  # noqa: ANN201 - sources.KernelSource
    """Debian's linux-source-7.3, fetched and unpacked into the cache once."""
    from harness.kbuild import sources

    kernels.require_kernel_mark("the 7.3 kernel source")
    if _no_build(pytestconfig):
        pytest.skip("--no-kernel-build: no kernel source download")
    return sources.from_debian("7.3")


def _build_c_btfids(release: str) -> Path:
    """A Debian release's C resolve_btfids, made once (-j1) from its source."""
    from harness.kbuild import sources

    dest = cache_root() / f"btfids-oracle/{release}/resolve_btfids"
    with locked(dest):
        if dest.exists():
            return dest
        tree = sources.from_debian(release).path / "tools/bpf/resolve_btfids"
        out = dest.parent / "build"
        out.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["make", "-C", str(tree), f"OUTPUT={out}/", "-j1"],
                              capture_output=True, text=True)
        if proc.returncode or not (out / "resolve_btfids").exists():
            pytest.fail(f"cannot build the {release} resolve_btfids: {proc.stderr[-500:]}",
                        pytrace=False)
        shutil.copy2(out / "resolve_btfids", dest)
    return dest


@pytest.fixture(scope="session")
def c72(pytestconfig: pytest.Config) -> Path:
    """The 7.2 tree's C resolve_btfids (HARNESS_BTFIDS_C72 wins)."""
    env = os.environ.get("HARNESS_BTFIDS_C72")
    if env:
        return Path(env)
    kernels.require_kernel_mark("the 7.2 kernel source")
    if pytestconfig.getoption("--no-kernel-build"):
        pytest.skip("--no-kernel-build: no 7.2 source download")
    return _build_c_btfids("7.2")


@pytest.fixture(scope="session")
def c612(pytestconfig: pytest.Config) -> Path:
    """The 6.12 tree's C resolve_btfids: the in-place tool before kbuild's --patch_btfids."""
    kernels.require_kernel_mark("the 6.12 kernel source")
    if pytestconfig.getoption("--no-kernel-build"):
        pytest.skip("--no-kernel-build: no 6.12 source download")
    return _build_c_btfids("6.12")
