"""Start a new build directory from the closest existing one of the same lineage.

Each merged config gets its own build dir (builds/<compile key>), so a config change
would otherwise compile the whole kernel again: even with every object in ccache that
took 259 s here, because a changed autoconf.h defeats ccache's direct mode and every
file is preprocessed again. Kernel developers instead rebuild in place and let kbuild's
per-symbol dependencies (fixdep) recompile only the files that use a changed symbol.
This module gets that speed without giving up one dir per key: the new dir starts as
a copy of the sibling whose .config differs least (same source path, arch and compiler
= same lineage; among equals the latest built), and kbuild's incremental machinery does
the rest: fixdep for config symbols, timestamps for files edited in a --tree.

With O= kbuild runs in the build dir and names its own files relatively; only the
dependency and command files of the host tools (objtool, resolve_btfids, libbpf,
bpftool) and the generated top Makefile hold the dir's absolute path, and those are
rewritten so nothing points back into the sibling (which pruning may delete).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from harness.errors import HarnessError

LINEAGE_FILE = ".harness-lineage"


def _config_lines(path: Path) -> set[str]:
    try:
        return {ln for ln in path.read_text().splitlines() if ln.startswith("CONFIG_")}
    except OSError:
        return set()


def find_seed(builds_root: Path, lineage: str, config_text: str, exclude: Path) -> Path | None:
    """The finished sibling build dir of `lineage` whose .config is closest to `config_text`."""
    wanted = {ln for ln in config_text.splitlines() if ln.startswith("CONFIG_")}
    best: tuple[int, float, Path] | None = None
    for candidate in builds_root.iterdir():
        if candidate == exclude or not candidate.is_dir() or candidate.name.startswith("."):
            continue
        marker = candidate / LINEAGE_FILE
        try:
            if marker.read_text().strip() != lineage:
                continue
        except OSError:
            continue
        finished = candidate / ".harness-btf-stage"
        if not finished.exists():
            continue  # its last make did not finish: not a safe starting point
        distance = len(wanted ^ _config_lines(candidate / ".config"))
        key = (distance, -finished.stat().st_mtime, candidate)
        if best is None or key < best:
            best = key
    return best[2] if best else None


def _rewrite_paths(root: Path, old: str, new: str) -> int:
    """Point the copied dependency/command files at `root` instead of the sibling."""
    old_b, new_b = old.encode(), new.encode()
    changed = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not (name.endswith((".cmd", ".d")) or (name == "Makefile" and dirpath == str(root))):
                continue
            path = Path(dirpath, name)
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if old_b in data:
                stat = path.stat()
                path.write_bytes(data.replace(old_b, new_b))
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
                changed += 1
    return changed


def seed_build_dir(seed: Path, dest: Path) -> int:
    """Copy `seed` to `dest` (all or nothing) and rewrite its absolute paths; return files fixed.

    The copy goes to a temp name first: a half-copied file carries a new mtime, which make
    would trust, so an interrupted copy must never become `dest`.
    """
    tmp = dest.with_name(f".{dest.name}.seed-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        proc = subprocess.run(["cp", "-a", "--reflink=auto", f"{seed}/.", str(tmp)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["cp failed"])[-1]
            raise HarnessError(f"could not copy build dir {seed.name}: {detail}")
        fixed = _rewrite_paths(tmp, str(seed), str(dest))
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return fixed
