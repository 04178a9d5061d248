"""Where a tree keeps bpf_testmod: test_kmods/ since 6.14, bpf_testmod/ alone in 6.12."""

from __future__ import annotations

from pathlib import Path

from harness.kbuild import build
from harness.kbuild.build import TESTMOD_DIRS, stage_testmod

find_testmod = build.testmod_dir  # not named test*: pytest would collect it


def tree_with(tmp_path: Path, *dirs: str) -> Path:
    for sub in dirs:
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "bpf_testmod.c").write_text("/* testmod */\n")
        (tmp_path / sub / "Makefile").write_text("obj-m += everything.o\n")
    return tmp_path


def test_newest_layout_first_then_the_612_one(tmp_path: Path) -> None:
    new, old = TESTMOD_DIRS
    assert find_testmod(tree_with(tmp_path / "a", new, old)) == tmp_path / "a" / new
    assert find_testmod(tree_with(tmp_path / "b", old)) == tmp_path / "b" / old
    assert find_testmod(tree_with(tmp_path / "c")) is None


def test_staged_copy_builds_bpf_testmod_alone(tmp_path: Path) -> None:
    src = find_testmod(tree_with(tmp_path / "t", TESTMOD_DIRS[1]))
    assert src is not None
    stage_testmod(src, tmp_path / "work")
    assert not (tmp_path / "work" / "Makefile").exists()
    assert (tmp_path / "work" / "Kbuild").read_text().startswith("obj-m += bpf_testmod.o\n")
    assert (tmp_path / "work" / "bpf_testmod.c").is_file()
