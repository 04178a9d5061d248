"""The tool a bisect step runs: pahole built from a dwarves commit, or a pinned release.

A dwarves commit is exported with git archive, its `lib/bpf` submodule filled from a
libbpf repository at the commit the superproject pins, configured with cmake out of tree
and built statically (`BUILD_SHARED_LIBS=OFF`, so the binary needs no libdwarves.so next
to it). Binaries are cached by commit; a commit that does not build is cached as a
failure with its log, so a re-run skips it at once, as `git bisect skip` would.

On Debian bookworm (gcc 12, cmake 3.25, elfutils 0.188) every tag from v1.15 to master
builds this way in 5-15 s. v1.15 and v1.16 look for a separate libebl, which elfutils
folded into libdw in 0.178: pointing EBL_LIBRARY at libdw.so satisfies them, and later
tags ignore it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.bisect import history
from harness.cache import atomic_write, cache_dir, locked, staging_dir, touch_used
from harness.errors import HarnessError, UsageError
from harness.kbuild import toolchains
from harness.kbuild.toolchains import ToolchainError

LIBBPF_ENV = "HARNESS_LIBBPF_REPO"  # a libbpf clone or bundle (the tests' oracle uses it too)


class ToolBuildFailed(HarnessError):
    """The tool does not build at this commit: the step is skipped, not judged."""

    def __init__(self, message: str, log: Path) -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class StepTool:
    """A built tool for one candidate, with what the report says about it."""

    label: str  # commit id or release
    tool: toolchains.Tool
    build_seconds: float  # 0.0 when it came from the cache


def libbpf_repo(dwarves: Path, given: str | None) -> Path | None:
    """Where lib/bpf commits come from: --libbpf-repo, $HARNESS_LIBBPF_REPO, or the
    dwarves clone's own initialised submodule."""
    for candidate in (given, os.environ.get(LIBBPF_ENV)):
        if candidate:
            return history.open_repo(candidate)
    for inner in (dwarves / ".git/modules/lib/bpf", dwarves / "modules/lib/bpf"):
        if inner.is_dir():
            return inner
    return None


def _tail(log: Path, n: int = 1) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return " | ".join((errors or lines)[-n:])[:300] if lines else "no output"


def _cached_build(kind: str, commit: str, product: str,
                  build: Callable[[Path, Path], None]) -> tuple[Path, float]:
    """cache/bisect/<kind>/<commit>/<product>, made once by build(out_dir, log).

    A ToolBuildFailed from `build` is remembered as <commit>.failed.log, so the next run
    skips that commit without building it again; nothing half-built is ever published.
    """
    root = cache_dir("bisect", kind)
    final = root / commit
    failed = root / f"{commit}.failed.log"
    with locked(final):
        if (final / product).exists():
            touch_used(final)
            return final / product, 0.0
        if failed.exists():
            raise ToolBuildFailed(f"{product} does not build at {commit[:12]} (cached): "
                                  f"{_tail(failed)}", failed)
        start = time.monotonic()
        with staging_dir(final) as tmp:
            log = tmp / "build.log"
            try:
                build(tmp, log)
            except ToolBuildFailed as exc:
                if log.exists():
                    shutil.copyfile(log, failed)
                else:
                    failed.write_text(f"{exc}\n")
                raise ToolBuildFailed(str(exc), failed) from None
        return final / product, time.monotonic() - start


def pahole_at(dwarves: Path, commit: str, libbpf: Path | None, *, jobs: int = 2) -> StepTool:
    """pahole built from `commit` of the dwarves repository (cached by commit)."""
    binary, seconds = _cached_build(
        "pahole", commit, "pahole",
        lambda out, log: _build_pahole(dwarves, commit, libbpf, out, log, jobs))
    return StepTool(commit, _tool(binary, commit), seconds)


# What tools/bpf/resolve_btfids' Makefile reaches (libbpf, libsubcmd, tools headers, the
# build system, and bpf_doc.py, which libbpf's header generation runs).
BTFIDS_PATHS = ("tools/bpf/resolve_btfids", "tools/lib", "tools/include", "tools/arch",
                "tools/build", "tools/scripts", "scripts/bpf_doc.py")


def btfids_at(tree: Path, commit: str, *, jobs: int = 2) -> tuple[Path, float]:
    """The kernel tree's C resolve_btfids at `commit`, built alone (cached by commit),
    and the seconds its build took (0 from the cache)."""

    def build(out: Path, log: Path) -> None:
        present = [p for p in BTFIDS_PATHS if history.path_exists(tree, commit, p)]
        if "tools/bpf/resolve_btfids" not in present:
            raise ToolBuildFailed(f"no tools/bpf/resolve_btfids at {commit[:12]}", log)
        history.export(tree, commit, out / "src", paths=present)
        cmd = ["make", "-C", str(out / "src/tools/bpf/resolve_btfids"),
               f"OUTPUT={out / 'build'}/", f"-j{jobs}"]
        (out / "build").mkdir()
        _run_logged([cmd], log, f"resolve_btfids does not build at {commit[:12]}")
        made = out / "build/resolve_btfids"
        if not made.is_file():
            raise ToolBuildFailed(f"the build of {commit[:12]} made no resolve_btfids", log)
        shutil.copy2(made, out / "resolve_btfids")
        shutil.rmtree(out / "src")
        shutil.rmtree(out / "build")

    return _cached_build("btfids", commit, "resolve_btfids", build)


def python_btfids_at(repo: Path, commit: str) -> tuple[Path, float]:
    """This project's transformer as it was at `commit`: its `harness/` exported into the
    cache and run by a wrapper with that copy first on PYTHONPATH (`-P`: the caller's
    cwd, maybe a checkout with its own harness/, is not put before it)."""

    def build(out: Path, log: Path) -> None:
        if not history.path_exists(repo, commit, "harness/btfids/__main__.py"):
            log.write_text(f"no harness/btfids/__main__.py at {commit}\n")
            raise ToolBuildFailed(f"no Python resolve_btfids at {commit[:12]}", log)
        history.export(repo, commit, out, paths=["harness"])
        final = out.parent / commit
        wrapper = out / "resolve_btfids"
        wrapper.write_text(f"#!/bin/sh\n# harness.btfids at {commit}\n"
                           f"PYTHONPATH={shlex.quote(str(final))}"
                           "${PYTHONPATH:+:$PYTHONPATH} "
                           f'exec {shlex.quote(sys.executable)} -P -m harness.btfids "$@"\n')
        wrapper.chmod(0o755)
        log.write_text(f"exported harness/ at {commit}\n")

    return _cached_build("pybtfids", commit, "resolve_btfids", build)


def _run_logged(cmds: list[list[str]], log: Path, failure: str) -> None:
    """Run each command with its output appended to `log`; ToolBuildFailed on failure."""
    with open(log, "a") as handle:
        for cmd in cmds:
            handle.write(f"$ {' '.join(cmd)}\n")
            handle.flush()
            try:
                proc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT)
            except FileNotFoundError:
                raise ToolchainError(f"{cmd[0]} not found: building tools needs cmake, "
                                     "make and a C compiler (run scripts/setup.sh)") from None
            if proc.returncode:
                handle.close()
                raise ToolBuildFailed(f"{failure}: {_tail(log)}", log)


def _tool(binary: Path, commit: str) -> toolchains.Tool:
    version = toolchains.pahole_version(binary)
    return toolchains.Tool(binary, version, f"pahole {version} (dwarves {commit[:12]})")


def _build_pahole(dwarves: Path, commit: str, libbpf: Path | None, out: Path, log: Path,
           jobs: int) -> None:
    src, build = out / "src", out / "build"
    history.export(dwarves, commit, src)
    pinned = history.gitlink(dwarves, commit, "lib/bpf")
    if pinned:
        if libbpf is None:
            raise UsageError(f"dwarves {commit[:12]} pins lib/bpf at {pinned[:12]}: give "
                             f"--libbpf-repo (a libbpf clone or bundle) or ${LIBBPF_ENV}")
        try:
            history.export(libbpf, pinned, src / "lib/bpf")
        except history.HistoryError as exc:
            log.write_text(f"{exc}\n")
            raise ToolBuildFailed(f"lib/bpf {pinned[:12]} not in {libbpf}", log) from None
    _run_logged([
        ["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DBUILD_SHARED_LIBS=OFF", "-D__LIB=lib", *_ebl_library()],
        ["make", "-C", str(build), f"-j{jobs}", "pahole"],
    ], log, f"pahole does not build at {commit[:12]}")
    if not (build / "pahole").is_file():
        raise ToolBuildFailed(f"the build of {commit[:12]} made no pahole binary", log)
    shared = sorted(build.glob("*.so*"))
    if shared:  # old trees build libdwarves*.so whatever BUILD_SHARED_LIBS says
        (out / "lib").mkdir()
        for lib in shared:
            shutil.copy2(lib, out / "lib" / lib.name, follow_symlinks=True)
        shutil.copy2(build / "pahole", out / "pahole.bin")
        wrapper = out / "pahole"
        final = out.parent / commit
        lib, binary = shlex.quote(f"{final}/lib"), shlex.quote(f"{final}/pahole.bin")
        wrapper.write_text(f'#!/bin/sh\nLD_LIBRARY_PATH={lib}'
                           f'${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}} exec {binary} "$@"\n')
        wrapper.chmod(0o755)
    else:
        shutil.copy2(build / "pahole", out / "pahole")
    shutil.rmtree(src)
    shutil.rmtree(build)
    try:  # runs from the staging dir before it is published
        probe = subprocess.run([str(out / "pahole.bin" if shared else out / "pahole"),
                                "--version"], capture_output=True, text=True, timeout=30,
                               env=dict(os.environ, LD_LIBRARY_PATH=str(out / "lib")))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolBuildFailed(f"pahole built at {commit[:12]} does not run: {exc}",
                              log) from None
    if probe.returncode:
        with open(log, "a") as handle:
            handle.write(probe.stdout + probe.stderr)
        raise ToolBuildFailed(f"pahole built at {commit[:12]} does not run: "
                              f"{_tail(log)}", log)
    atomic_write(out / "commit", commit + "\n")


def _ebl_library() -> list[str]:
    """-DEBL_LIBRARY=<libdw.so> for old FindDWARF.cmake (see the module docstring)."""
    try:
        found = subprocess.run(["cc", "-print-file-name=libdw.so"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [f"-DEBL_LIBRARY={found}"] if os.path.isabs(found) else []


def pahole_release(version: str) -> StepTool:
    """A pinned Debian pahole release (fetched once, as `--pahole` does)."""
    if version not in toolchains.PAHOLE_RELEASES:
        known = ", ".join(toolchains.PAHOLE_RELEASES)
        raise UsageError(f"no pinned pahole {version} (known releases: {known})")
    return StepTool(version, toolchains.select_pahole(version), 0.0)
