"""Fixtures for target tests: locate a built kernel, and prove no guest outlives a test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.cache import cache_root
from harness.targets import procs

SCRATCH_IMAGES = {
    "x86_64": ("scratch/x86", "arch/x86/boot/bzImage"),
    "arm64": ("scratch/arm64", "arch/arm64/boot/Image"),
}
ENV = {"x86_64": "HARNESS_TEST_KERNEL", "arm64": "HARNESS_TEST_KERNEL_ARM64"}


def _from_env(value: str) -> Any:
    """A path to a boot image, or to a BuildArtifacts JSON record (build pipeline output)."""
    path = Path(value)
    if path.suffix == ".json" and path.is_file():
        from harness.kbuild.artifacts import BuildArtifacts

        return BuildArtifacts.from_json(path.read_text())
    return path


def _scratch(arch: str) -> Path | None:
    build, image = SCRATCH_IMAGES[arch]
    root = cache_root() / build
    log = root / "build.log"
    if not (root / image).is_file():
        return None
    if log.is_file() and not log.read_text(errors="replace").rstrip().endswith("rc=0"):
        return None  # still building, or failed
    return root / image


def find_kernel(arch: str) -> Any:
    """The kernel to boot for `arch`, or skip with the reason."""
    value = os.environ.get(ENV[arch])
    if value:
        kernel = _from_env(value)
        image = Path(getattr(kernel, "boot_image", kernel))
        if not image.is_file():
            pytest.skip(f"{ENV[arch]}={value}: {image} does not exist")
        return kernel
    image = _scratch(arch)
    if image is None:
        build, rel = SCRATCH_IMAGES[arch]
        pytest.skip(
            f"no built {arch} kernel: set {ENV[arch]} (image or BuildArtifacts JSON) "
            f"or finish the build at {cache_root() / build / rel}"
        )
    return image


@pytest.fixture(scope="session")
def x86_kernel() -> Any:
    return find_kernel("x86_64")


@pytest.fixture(scope="session")
def arm64_kernel() -> Any:
    return find_kernel("arm64")


@pytest.fixture
def no_stray_guests():
    """Yield a checker; after the test, no qemu-system-*/virtiofsd may be left running.

    Processes our targets started are counted through their marker (must be 0). Beyond
    those, a leaked guest is an orphan: its vng and harness are gone, so its parent is
    PID 1. Other xdist workers' guests still have their vng as parent and do not count.
    """
    before = {pid for pid, _ in procs.guest_processes()}
    started: list[str] = []
    yield started
    for marker in started:
        assert procs.guest_processes(marker) == [], f"guest processes left for {marker}"
    orphans = [(pid, name) for pid, name in procs.guest_processes()
               if pid not in before and procs.parent_pid(pid) == 1]
    assert orphans == [], f"stray guest processes: {orphans}"

