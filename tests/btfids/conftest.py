"""Fixtures for the resolve_btfids tests: the C tools of both trees, runners, inputs.

The C tools are the oracles: 7.3's from the suite's x86_64 build (made on first
request), 7.2's built once from Debian's 7.2 source into the harness cache (a
small -j1 tool build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cache import cache_root
from harness.kbuild.artifacts import BuildArtifacts

CACHE = cache_root()
PY_TOOL = [sys.executable, "-m", "harness.btfids"]


@pytest.fixture(scope="session")
def c73(x86_build: BuildArtifacts) -> Path:
    """The 7.3 tree's C resolve_btfids as the pipeline built it (HARNESS_BTFIDS_C73 wins)."""
    env = os.environ.get("HARNESS_BTFIDS_C73")
    return Path(env) if env else x86_build.resolve_btfids


@dataclass
class Run:
    """One tool run on its own copy of the ELF: exit status, stderr, outputs."""

    returncode: int
    stderr: str
    elf: Path

    def output(self, suffix: str) -> bytes | None:
        p = Path(f"{self.elf}{suffix}")
        return p.read_bytes() if p.exists() else None

    def outputs(self) -> dict[str, bytes | None]:
        return {s: self.output(s) for s in (".BTF", ".BTF_ids", ".BTF.base")}

    def leftovers(self) -> list[str]:
        """Output or temporary files next to the ELF."""
        return sorted(p.name for p in self.elf.parent.iterdir() if p != self.elf
                      and p.name.startswith(self.elf.name))


def run_tool(cmd: list[str] | Path, elf: Path, workdir: Path, args: list[str],
             *, link: bool = False, env: dict[str, str] | None = None) -> Run:
    """Run a resolve_btfids (C or Python) on a copy (or link) of `elf` in `workdir`
    (`env`: variables to set for it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    dest = workdir / elf.name
    if link:
        dest.symlink_to(elf.resolve())
    else:
        shutil.copyfile(elf, dest)
    argv = [str(cmd)] if isinstance(cmd, Path) else list(cmd)
    proc = subprocess.run([*argv, *args, str(dest)], capture_output=True, text=True,
                          env={**os.environ, **env} if env else None)
    return Run(proc.returncode, proc.stderr, dest)


@pytest.fixture
def tools(c73: Path) -> dict[str, list[str] | Path]:
    return {"c": c73, "py": PY_TOOL}
