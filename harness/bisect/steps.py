"""One bisect step: a fixed kernel, the step's tools, kbuild's BTF stage, the predicates.

The kernel is built once through the normal cache and held fixed: its `.tmp_vmlinux1` is
copied into the bisect cache (a later relink of the shared build dir cannot change it
under a running bisect). Each step replays the BTF stage on it (harness.btfids.stage)
with pahole flags derived from the tree's Makefile.btf for that step's pahole version,
and keeps its outputs in the cache by (kernel, pahole, resolve_btfids, their flags), so a
re-run of the same bisect judges every step again without running a tool.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.bisect.engine import Outcome
from harness.bisect.predicates import Predicate, StepFiles, judge_all
from harness.bisect.tools import StepTool
from harness.btfids.stage import (
    VMLINUX_INPUT,
    StageError,
    pahole_flags,
    replay,
    resolve_btfids_flags,
)
from harness.cache import atomic_write, cache_dir, locked, staging_dir, touch_used
from harness.errors import UsageError
from harness.kbuild import toolchains
from harness.kbuild.artifacts import BuildArtifacts

STAGE_ERROR_FILE = "stage-error"


@dataclass(frozen=True)
class FixedKernel:
    """The kernel every step shares: its build dir (for Makefile.btf and auto.conf) and
    a private copy of the ELF pahole reads."""

    artifacts: BuildArtifacts
    build_dir: Path
    elf: Path
    key: str

    @property
    def config(self) -> Path:
        """The kernel's own .config: Makefile.btf reads its options from here, not from
        the shared build dir's auto.conf (which follows the last relink)."""
        return self.artifacts.config


def hold_kernel(artifacts: BuildArtifacts) -> FixedKernel:
    """Copy the build's `.tmp_vmlinux1` into the bisect cache once (keyed by build dir)."""
    build_dir = Path(artifacts.toolchain.get("build_dir", ""))
    source = build_dir / VMLINUX_INPUT
    if not source.is_file():
        raise UsageError(f"{build_dir} has no {VMLINUX_INPUT}: the kernel needs "
                         "CONFIG_DEBUG_INFO_BTF and a harness build dir")
    final = cache_dir("bisect", "kernels") / build_dir.name
    elf = final / VMLINUX_INPUT
    with locked(final):
        if not elf.is_file():
            with locked(build_dir), staging_dir(final) as tmp:  # never mid-relink
                shutil.copyfile(source, tmp / VMLINUX_INPUT)
        touch_used(final)
    return FixedKernel(artifacts, build_dir, elf, build_dir.name)


@dataclass(frozen=True)
class Btfids:
    """The resolve_btfids a step runs: its command line and what identifies it in keys."""

    command: tuple[str, ...]
    identity: str
    label: str
    build_seconds: float = 0.0  # building it for this step (0 when cached or given)


def btfids_for(choice: str, artifacts: BuildArtifacts) -> Btfids:
    """`python` (this checkout's transformer), `c` (the kernel tree's own) or a path."""
    if choice == "python":
        return Btfids((str(toolchains.python_btfids_wrapper()),),
                      toolchains.btfids_identity("python"), "python")
    if choice == "c":
        tool = artifacts.resolve_btfids
        digest = hashlib.sha256(tool.read_bytes()).hexdigest()[:16]
        return Btfids((str(tool),), f"c-{digest}", "c")
    identity = toolchains.btfids_identity(choice)  # checks it is an executable
    return Btfids((str(Path(choice).expanduser().resolve()),), identity, choice)


@dataclass(frozen=True)
class StepRun:
    """What one step did, for the step log."""

    outcome: Outcome
    detail: str
    files: StepFiles
    tool_seconds: float  # building the step's tools (0 when cached)
    stage_seconds: float  # pahole + resolve_btfids (0 when cached)
    judge_seconds: float
    cached: bool


def _tool_key(tool: StepTool) -> str:
    if tool.label == tool.tool.version:  # a release
        return f"release-{tool.label}"
    return tool.label


def run_step(kernel: FixedKernel, tool: StepTool, btfids: Btfids,
             predicates: list[Predicate], *, jobs: int = 2) -> StepRun:
    """Replay the BTF stage with the step's pahole (cached) and judge it."""
    pahole_args = pahole_flags(kernel.build_dir, tool.tool.version, jobs, kernel.config)
    btfids_args = resolve_btfids_flags(kernel.build_dir, kernel.config)
    flags = hashlib.sha256("\0".join([*pahole_args, "|", *btfids_args]).encode())
    root = cache_dir("bisect", "steps", kernel.key)
    work = root / f"{_tool_key(tool)}-{btfids.identity}-{flags.hexdigest()[:8]}"
    cached = True
    stage_seconds = 0.0
    with locked(work):
        if not (work / "done").exists():
            cached = False
            start = time.monotonic()
            with staging_dir(work) as tmp:
                try:
                    replay(kernel.elf, tmp, pahole=tool.tool.path, pahole_args=pahole_args,
                           btfids=list(btfids.command), btfids_args=btfids_args)
                except StageError as exc:
                    # The tool ran and failed on this kernel: kbuild would fail too.
                    atomic_write(tmp / STAGE_ERROR_FILE, f"{exc}\n")
                atomic_write(tmp / "done", f"{tool.tool.label}\n{btfids.label}\n")
            stage_seconds = time.monotonic() - start
            # the staging dir was renamed: the ELF link inside it still points at the kernel
        touch_used(work)
    files = StepFiles(work=work, elf=work / "vmlinux", btf1=work / "vmlinux.BTF.1",
                      btf=work / "vmlinux.BTF", btf_ids=work / "vmlinux.BTF_ids",
                      pahole=tool.tool.path, btfids=btfids.label)
    start = time.monotonic()
    failure = work / STAGE_ERROR_FILE
    if failure.exists():
        outcome: Outcome = "bad"
        detail = f"BTF stage failed: {failure.read_text().strip()}"
    else:
        outcome, detail = judge_all(predicates, files)
    return StepRun(outcome, detail, files, tool.build_seconds + btfids.build_seconds,
                   stage_seconds,
                   time.monotonic() - start, cached)
