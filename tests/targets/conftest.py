"""Fixtures for target tests: locate a built kernel, and prove no guest outlives a test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.targets import procs
from tests.helpers.kernels import KERNEL_ENV, suite_kernel
from tests.targets.loopback_fixtures import board_build, loopback_board  # noqa: F401 - fixtures


def find_kernel(arch: str, config: pytest.Config) -> Any:
    """The kernel to boot for `arch`: HARNESS_TEST_KERNEL[_ARM64] (a boot image or an
    artifacts record), else the suite's kernel, built on first use."""
    value = os.environ.get(KERNEL_ENV[arch], "")
    if value and not value.endswith(".json"):
        image = Path(value)
        if not image.is_file():
            pytest.skip(f"{KERNEL_ENV[arch]}={value}: {image} does not exist")
        return image
    return suite_kernel(arch, config)


@pytest.fixture(scope="session")
def x86_kernel(pytestconfig: pytest.Config) -> Any:
    return find_kernel("x86_64", pytestconfig)


@pytest.fixture(scope="session")
def arm64_kernel(pytestconfig: pytest.Config) -> Any:
    return find_kernel("arm64", pytestconfig)


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

