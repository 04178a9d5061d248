"""The real KVM probe: a definite verdict within its hard timeout, then cached."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness.targets.kvm import CPU_CANDIDATES, probe_kvm

pytestmark = [pytest.mark.slow, pytest.mark.guest]
PER_CPU_TIMEOUT = 10.0


def test_probe_gives_a_definite_answer_within_its_timeout(
    x86_kernel: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_stray_guests: list
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    image = Path(getattr(x86_kernel, "boot_image", x86_kernel))
    start = time.monotonic()
    verdict = probe_kvm(image, timeout=PER_CPU_TIMEOUT, refresh=True)
    took = time.monotonic() - start
    assert took <= PER_CPU_TIMEOUT * len(CPU_CANDIDATES) + 5
    assert isinstance(verdict.usable, bool) and verdict.reason and not verdict.cached
    if verdict.usable:
        assert verdict.cpu in CPU_CANDIDATES
    else:
        assert verdict.cpu is None
        # /dev/kvm here is PVM: both failure modes must be named, not guessed
        print(f"KVM unusable after {took:.1f} s: {verdict.reason}")

    again = time.monotonic()
    cached = probe_kvm(image)
    assert cached.cached and cached.usable == verdict.usable
    assert time.monotonic() - again < 2.0
    assert list((tmp_path / "kvm-probe").glob("*.json"))
