"""Fixtures for the resolve_btfids tests: the C tools of both trees, runners, inputs.

The C tools are the oracles: 7.3's from a finished x86_64 build dir (the
scratch build, or any harness build of a 7.3 tree), 7.2's built once from the
7.2 source into the harness cache (a small -j1 tool build). Tests that need
one skip when it is not there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("HARNESS_CACHE", str(Path.home() / ".cache/kfunc-harness")))
SCRATCH_X86 = Path(os.environ.get("HARNESS_BUILT_X86", str(CACHE / "scratch/x86")))
PY_TOOL = [sys.executable, "-m", "harness.btfids"]


def _tree_version(build: Path) -> str | None:
    makefile = build / "source" / "Makefile"
    try:
        text = makefile.read_text()
    except OSError:
        return None
    vals = dict(line.split(" = ", 1) for line in text.splitlines()[:4] if " = " in line)
    return f"{vals.get('VERSION', '?')}.{vals.get('PATCHLEVEL', '?')}"


def build_dirs() -> list[Path]:
    """Finished build dirs (make O=) that hold a C resolve_btfids and a vmlinux."""
    out = []
    for cand in [SCRATCH_X86, *sorted((CACHE / "builds").glob("*"))]:
        if cand.is_dir() and (cand / "tools/bpf/resolve_btfids/resolve_btfids").exists() \
                and (cand / "vmlinux").exists():
            out.append(cand)
    return out


def _c73() -> Path | None:
    env = os.environ.get("HARNESS_BTFIDS_C73")
    if env:
        return Path(env)
    for build in build_dirs():
        if _tree_version(build) == "7.3":
            return build / "tools/bpf/resolve_btfids/resolve_btfids"
    return None


def _c72() -> Path | None:
    env = os.environ.get("HARNESS_BTFIDS_C72")
    if env:
        return Path(env)
    dest = CACHE / "btfids-oracle/7.2/resolve_btfids"
    if dest.exists():
        return dest
    trees = sorted((CACHE / "sources").glob("linux-source-7.2_*/tools/bpf/resolve_btfids"))
    trees = [t for t in trees if t.is_dir()]
    if not trees:
        return None
    out = dest.parent / "build"
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["make", "-C", str(trees[-1]), f"OUTPUT={out}/", "-j1"],
                          capture_output=True, text=True)
    if proc.returncode or not (out / "resolve_btfids").exists():
        return None
    shutil.copy2(out / "resolve_btfids", dest)
    return dest


@pytest.fixture(scope="session")
def c73() -> Path:
    tool = _c73()
    if tool is None or not tool.exists():
        pytest.skip("no 7.3 C resolve_btfids (no finished 7.3 build dir)")
    return tool


@pytest.fixture(scope="session")
def c72() -> Path:
    tool = _c72()
    if tool is None or not tool.exists():
        pytest.skip("no 7.2 C resolve_btfids (no 7.2 source to build it from)")
    return tool


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
             *, link: bool = False) -> Run:
    """Run a resolve_btfids (C or Python) on a copy (or link) of `elf` in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    dest = workdir / elf.name
    if link:
        dest.symlink_to(elf.resolve())
    else:
        shutil.copyfile(elf, dest)
    argv = [str(cmd)] if isinstance(cmd, Path) else list(cmd)
    proc = subprocess.run([*argv, *args, str(dest)], capture_output=True, text=True)
    return Run(proc.returncode, proc.stderr, dest)


@pytest.fixture
def tools(c73: Path) -> dict[str, list[str] | Path]:
    return {"c": c73, "py": PY_TOOL}
