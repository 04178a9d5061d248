"""The BTF stage replayed outside make reproduces kbuild's vmlinux BTF byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from harness.btfids.stage import (
    StageError,
    pahole_flags,
    replay,
    resolve_btfids_flags,
    version_number,
)
from harness.cache import locked
from harness.kbuild.artifacts import BuildArtifacts


def test_version_number() -> None:
    assert version_number("1.26") == 126
    assert version_number("v1.31") == 131
    with pytest.raises(StageError, match="not a pahole version"):
        version_number("1.2.3")


def test_flags_follow_the_pahole_version_through_the_trees_makefile(
        x86_build: BuildArtifacts, x86_build_dir: Path) -> None:
    """7.3's Makefile.btf: --btf_features (with -j) from 1.26, layout from 1.31; below
    1.26, -j only without KBUILD_BUILD_TIMESTAMP, which harness builds set."""
    old = pahole_flags(x86_build_dir, "1.24")
    assert "--btf_gen_floats" in old and not any(f.startswith("-j") for f in old)
    mid = pahole_flags(x86_build_dir, "1.26", jobs=2)
    assert any("decl_tag" in f for f in mid) and "--btf_features=layout" not in mid
    assert "-j2" in mid and "--btf_features=+reproducible_build" not in mid
    new = pahole_flags(x86_build_dir, "1.32", jobs=2)
    assert "--btf_features=layout" in new and "-j2" in new
    # The build's own .config (pahole 1.32), whatever pahole last relinked the shared dir.
    assert pahole_flags(x86_build_dir, config=x86_build.config) == pahole_flags(
        x86_build_dir, "1.32")


def test_replay_reproduces_the_linked_btf(x86_build_dir: Path, tmp_path: Path) -> None:
    """The build dir is shared by every pahole/btfids choice of its config (build.py):
    replay the stage of whichever build linked it last, read from the dir under its lock
    (.tmp_vmlinux1, its .config and .harness-btf-stage), against the vmlinux it made."""
    held, config = tmp_path / "held.tmp_vmlinux1", tmp_path / "config"
    with locked(x86_build_dir):  # other workers may relink this shared build dir
        shutil.copyfile(x86_build_dir / ".tmp_vmlinux1", held)
        shutil.copyfile(x86_build_dir / ".config", config)
        stage = json.loads((x86_build_dir / ".harness-btf-stage").read_text())
        with open(x86_build_dir / "vmlinux", "rb") as handle:
            linked = ELFFile(handle).get_section_by_name(".BTF").data()
    out = replay(held, tmp_path / "stage", pahole=Path(stage["pahole"]),
                 pahole_args=pahole_flags(x86_build_dir, jobs=2, config=config),
                 btfids=[stage["path"]],
                 btfids_args=resolve_btfids_flags(x86_build_dir, config))
    assert out.btf.read_bytes() == linked, f"last linked by {stage}"
    assert out.btf1.stat().st_size > 0 and out.btf_ids.stat().st_size > 0
    assert held.is_file() and (tmp_path / "stage/vmlinux").is_symlink()  # read, not replaced


def test_a_failing_tool_is_one_line_with_its_log(x86_build_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"pahole failed \(exit 1\)"):
        replay(x86_build_dir / ".tmp_vmlinux1", tmp_path, pahole=Path("/bin/false"),
               pahole_args=[], btfids=["true"], btfids_args=[])
    assert (tmp_path / "pahole.log").read_text().startswith("$ /bin/false -J")
