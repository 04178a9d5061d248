"""Start a new build directory from the closest existing one of the same lineage.

Each merged config and each patch series gets its own build dir (builds/<compile key>),
so a change would otherwise compile the whole kernel again: even with every object in
ccache that took 259 s here, because a changed autoconf.h or source path defeats
ccache's direct mode and every file is preprocessed again. Kernel developers instead
rebuild in place and let kbuild recompile only what changed. This module gets that
speed without giving up one dir per key: the new dir starts as a copy of the sibling
whose .config differs least (same lineage = same tree of origin, arch and compiler;
among equals the latest built), and kbuild's incremental machinery does the rest:
fixdep for config symbols, timestamps for files edited in a --tree.

With O= kbuild runs in the build dir and names its own files relatively, but every
source file, include path and host-tool dependency carries the source tree's absolute
path, and the generated top Makefile carries the dir's own. Both are rewritten, so
nothing points back into the sibling (which pruning may delete) and the saved commands
match what make will run. When the sibling was built from another source tree (the
unpatched origin, or a copy with another patch series), the files whose bytes differ
between the two trees are found and every target whose dependency list names one is
deleted, so make rebuilds exactly those: a patched file's mtime alone cannot be
trusted, since a file patched in the sibling's series but not in this one has its
older pristine mtime back.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

LINEAGE_FILE = ".harness-lineage"
SRCTREE_LINK = "source"  # kbuild's own record of the tree an O= dir was configured from


@dataclass(frozen=True)
class SeedReport:
    """What seeding did, for the build log."""

    rewritten: int  # dependency/command files repointed at the new dir and tree
    changed_sources: int  # files whose bytes differ between the two source trees
    invalidated: int  # targets deleted because they depend on one of those


def srctree_of(build_dir: Path) -> Path | None:
    """The source tree `build_dir` was last built from (kbuild refreshes the link every make)."""
    try:
        return Path(os.readlink(build_dir / SRCTREE_LINK))
    except OSError:
        return None


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
        srctree = srctree_of(candidate)
        if srctree is None or not srctree.is_dir():
            continue  # its tree was pruned: nothing to compare the new tree with
        distance = len(wanted ^ _config_lines(candidate / ".config"))
        key = (distance, -finished.stat().st_mtime, candidate)
        if best is None or key < best:
            best = key
    return best[2] if best else None


def _tree_stats(root: Path) -> dict[str, os.stat_result]:
    """Every non-directory under `root` (but .git) by relative path, not following links."""
    stats: dict[str, os.stat_result] = {}
    prefix = len(str(root)) + 1
    pending = [str(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != ".git":
                        pending.append(entry.path)
                elif not entry.name.startswith(".harness-"):
                    stats[entry.path[prefix:]] = entry.stat(follow_symlinks=False)
    return stats


def _same_stat(a: os.stat_result, b: os.stat_result) -> bool:
    """One inode (a hardlinked copy), or size and mtime equal: what make would call unchanged."""
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev) or (
        (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns))


def changed_sources(old: Path, new: Path, retime: bool) -> set[str]:
    """Relative paths whose bytes differ between two versions of one tree (or exist in one).

    Shared inodes (hardlinked copies) and equal size+mtime count as unchanged without
    reading; the rest are compared byte for byte. With `retime`, a file of `new` that
    turns out identical gets `old`'s mtime, so make does not rebuild from it: only for
    trees the harness owns (patched copies), never a user's tree.
    """
    old_stats = _tree_stats(old)
    changed: set[str] = set()
    for rel, st in _tree_stats(new).items():
        before = old_stats.pop(rel, None)
        if before is None:
            changed.add(rel)
        elif _same_stat(st, before):
            continue
        elif st.st_size == before.st_size and filecmp.cmp(old / rel, new / rel, shallow=False):
            if retime and st.st_nlink == 1 and not os.path.islink(new / rel):
                os.utime(new / rel, ns=(st.st_atime_ns, before.st_mtime_ns))
        else:
            changed.add(rel)
    changed.update(old_stats)  # gone from the new tree: whatever depended on them rebuilds
    return changed


def _target_of(dep_file: Path) -> Path:
    """The file a kbuild `.x.o.cmd` / tools `.x.o.d` / bpftool `x.d` records the deps of."""
    name = dep_file.name
    if name.endswith(".cmd"):
        return dep_file.with_name(name[1:-4] if name.startswith(".") else name[:-4])
    if name.startswith("."):
        return dep_file.with_name(name[1:-2])
    return dep_file.with_name(name[:-2] + ".o")


def _repoint(root: Path, renames: dict[str, str], new_srctree: str,
             changed: set[str]) -> tuple[int, int]:
    """Rewrite the copied dependency/command files; delete targets that name a changed file.

    Returns (files rewritten, targets invalidated). Deleting the target and its record
    makes make rebuild it whatever the timestamps say.
    """
    pairs = [(old.encode(), new.encode()) for old, new in renames.items() if old != new]
    in_tree = re.compile(re.escape(new_srctree.encode()) + rb"/([^\s:\\]+)")
    rewritten = invalidated = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            is_top_makefile = name == "Makefile" and dirpath == str(root)
            if not (name.endswith((".cmd", ".d")) or is_top_makefile):
                continue
            path = Path(dirpath, name)
            try:
                data = original = path.read_bytes()
            except OSError:
                continue
            for old_b, new_b in pairs:
                data = data.replace(old_b, new_b)
            if changed and not is_top_makefile and any(
                    m.group(1).decode(errors="replace") in changed
                    for m in in_tree.finditer(data)):
                _target_of(path).unlink(missing_ok=True)
                path.unlink()
                invalidated += 1
                continue
            if data != original:
                stat = path.stat()
                path.write_bytes(data)
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
                rewritten += 1
    return rewritten, invalidated


def seed_build_dir(seed: Path, dest: Path, srctree: Path, retime: bool = False) -> SeedReport:
    """Copy `seed` to `dest` (all or nothing), ready for a build from `srctree`.

    The copy goes to a temp name first: a half-copied file carries a new mtime, which make
    would trust, so an interrupted copy must never become `dest`.
    """
    seed_srctree = srctree_of(seed) or srctree
    changed: set[str] = set()
    if seed_srctree != srctree:
        changed = changed_sources(seed_srctree, srctree, retime)
    tmp = dest.with_name(f".{dest.name}.seed-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        proc = subprocess.run(["cp", "-a", "--reflink=auto", f"{seed}/.", str(tmp)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["cp failed"])[-1]
            raise HarnessError(f"could not copy build dir {seed.name}: {detail}")
        renames = {str(seed): str(dest), str(seed_srctree): str(srctree)}
        rewritten, invalidated = _repoint(tmp, renames, str(srctree), changed)
        (tmp / SRCTREE_LINK).unlink(missing_ok=True)
        (tmp / SRCTREE_LINK).symlink_to(srctree)
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return SeedReport(rewritten, len(changed), invalidated)
