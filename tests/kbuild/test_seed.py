"""Seeding a build dir from a sibling built from another version of the tree.

Small real trees on disk: what matters here is which files count as changed and which
copied targets are deleted so make rebuilds them; the end-to-end check on a real
kernel is test_build.py's patch-series test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.kbuild import seed


def make_tree(root: Path) -> Path:
    (root / "kernel").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "kernel" / "a.c").write_text("int a;\n")
    (root / "kernel" / "b.c").write_text("int b;\n")
    (root / "include" / "h.h").write_text("#define H 1\n")
    (root / "include" / "gone.h").write_text("#define GONE 1\n")
    return root


def hardlink_copy(origin: Path, dest: Path) -> Path:
    shutil.copytree(origin, dest, copy_function=os.link)
    return dest


def replace(path: Path, text: str) -> None:
    """What `patch` does: a new file, not a write through the hardlink."""
    path.unlink()
    path.write_text(text)


def test_changed_sources_finds_edits_additions_and_removals(tmp_path: Path) -> None:
    origin = make_tree(tmp_path / "origin")
    copy = hardlink_copy(origin, tmp_path / "copy")
    replace(copy / "kernel" / "a.c", "int a = 1;\n")
    (copy / "kernel" / "new.c").write_text("int n;\n")
    (copy / "include" / "gone.h").unlink()
    changed = seed.changed_sources(origin, copy, retime=False)
    assert changed == {"kernel/a.c", "kernel/new.c", "include/gone.h"}
    assert (origin / "kernel" / "a.c").read_text() == "int a;\n"  # origin untouched


def test_identical_bytes_with_a_new_mtime_are_unchanged_and_retimed(tmp_path: Path) -> None:
    origin = make_tree(tmp_path / "origin")
    copy = tmp_path / "copy"
    shutil.copytree(origin, copy)  # own inodes, as a git checkout makes them
    os.utime(copy / "kernel" / "b.c", ns=(0, 10**18))
    replace(copy / "kernel" / "a.c", "int a = 2;\n")
    assert seed.changed_sources(origin, copy, retime=True) == {"kernel/a.c"}
    assert (copy / "kernel" / "b.c").stat().st_mtime_ns == \
        (origin / "kernel" / "b.c").stat().st_mtime_ns


def test_seeding_across_trees_repoints_and_invalidates(tmp_path: Path) -> None:
    old_tree = make_tree(tmp_path / "old-tree")
    new_tree = hardlink_copy(old_tree, tmp_path / "new-tree")
    replace(new_tree / "include" / "h.h", "#define H 2\n")
    sibling = tmp_path / "builds" / "sibling"
    (sibling / "kernel").mkdir(parents=True)
    (sibling / seed.SRCTREE_LINK).symlink_to(old_tree)
    for name, deps in (("a", ["kernel/a.c", "include/h.h"]), ("b", ["kernel/b.c"])):
        (sibling / "kernel" / f"{name}.o").write_bytes(b"\x7fELF")
        listed = " \\\n  ".join(f"{old_tree}/{dep}" for dep in deps)
        (sibling / "kernel" / f".{name}.o.cmd").write_text(
            f"savedcmd_kernel/{name}.o := gcc -I{old_tree}/include -c -o {sibling}/x\n"
            f"deps_kernel/{name}.o := \\\n  {listed}\n")
    dest = tmp_path / "builds" / "dest"
    report = seed.seed_build_dir(sibling, dest, new_tree)
    assert (report.changed_sources, report.invalidated) == (1, 1)
    assert not (dest / "kernel" / "a.o").exists()  # includes the changed header: rebuilt
    assert not (dest / "kernel" / ".a.o.cmd").exists()
    assert (dest / "kernel" / "b.o").exists()
    kept = (dest / "kernel" / ".b.o.cmd").read_text()
    assert str(old_tree) not in kept and str(sibling) not in kept
    assert f"-I{new_tree}/include" in kept and str(dest) in kept
    assert seed.srctree_of(dest) == new_tree
    assert (sibling / "kernel" / "a.o").exists()  # the sibling is only read
    assert not list(dest.parent.glob(".dest.seed-*"))
