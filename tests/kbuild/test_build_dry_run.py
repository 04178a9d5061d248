"""`harness build --dry-run` shows the whole plan and builds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cache import cache_root


@pytest.mark.kernel  # the plan fetches the 7.3 source and pahole 1.32
def test_dry_run_prints_plan_without_building(tmp_path: Path) -> None:
    extra = tmp_path / "extra.config"
    extra.write_text("CONFIG_LOG_BUF_SHIFT=15\n")
    before = set((cache_root() / "builds").glob("*")) if (cache_root() / "builds").exists() \
        else set()
    proc = subprocess.run([sys.executable, "-m", "harness", "build", "--dry-run", "--kconfig",
                           str(extra)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "source:    Debian linux-source-7.3 7.3.4" in out
    for fragment in ("base.config", "vng.config", "hid.config", "x86_64.config",
                     "trim.config", "extra.config"):
        assert fragment in out
    assert "pahole:    pahole 1.32 (Debian sid)" in out
    assert "make -C" in out and "bzImage modules" in out and "PAHOLE=" in out
    key_lines = [ln for ln in out.splitlines() if ln.startswith("cache key:")]
    assert len(key_lines) == 1 and len(key_lines[0].split()[-1]) == 20
    after = set((cache_root() / "builds").glob("*"))
    assert after - before == set()  # nothing was built
