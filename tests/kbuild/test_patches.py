"""Patch series on real trees: applied on a private copy, failures name patch and hunk."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.kbuild import patches, sources

TARGET = "kernel/bpf/helpers.c"


def make_patch(tree: Path, rel: str, old: str, new: str, tmp: Path, name: str) -> Path:
    """A real unified diff of `rel` with its first `old` replaced by `new`."""
    a = tmp / "a" / rel
    b = tmp / "b" / rel
    a.parent.mkdir(parents=True, exist_ok=True)
    b.parent.mkdir(parents=True, exist_ok=True)
    text = (tree / rel).read_text()
    assert old in text
    a.write_text(text)
    b.write_text(text.replace(old, new, 1))
    diff = subprocess.run(["diff", "-u", f"a/{rel}", f"b/{rel}"], cwd=tmp,
                          capture_output=True, text=True).stdout
    out = tmp / name
    out.write_text(diff)
    shutil.rmtree(tmp / "a")
    shutil.rmtree(tmp / "b")
    return out


@pytest.fixture(scope="module")
def debian_tree(debian_tree_73: sources.KernelSource) -> sources.KernelSource:
    return debian_tree_73


def test_series_applies_on_hardlinked_copy_leaving_source_alone(
        debian_tree: sources.KernelSource, tmp_path: Path) -> None:
    series = tmp_path / "series.d"
    series.mkdir()
    original = (debian_tree.path / TARGET).read_text()
    marker = f"/* harness test {os.getpid()} {tmp_path.name} */"
    make_patch(debian_tree.path, TARGET, "#include <linux/bpf.h>\n",
               f"#include <linux/bpf.h>\n{marker}\n", tmp_path, "0001-mark.patch")
    shutil.move(tmp_path / "0001-mark.patch", series / "0001-mark.patch")
    patched = patches.patched_tree(debian_tree, patches.read_series(str(series)),
                                   progress=False)
    assert patched.path != debian_tree.path
    assert marker in (patched.path / TARGET).read_text()
    assert (debian_tree.path / TARGET).read_text() == original  # links were broken, not written
    assert patched.identity.startswith(debian_tree.identity + "+patches-")
    again = patches.patched_tree(debian_tree, patches.read_series(str(series)), progress=False)
    assert again.path == patched.path


def test_failing_patch_names_patch_and_hunk(debian_tree: sources.KernelSource,
                                            tmp_path: Path) -> None:
    good = make_patch(debian_tree.path, TARGET, "#include <linux/bpf.h>\n",
                      "#include <linux/bpf.h>\n/* ok */\n", tmp_path, "0001-ok.patch")
    bad = tmp_path / "0002-stale.patch"
    bad.write_text(good.read_text().replace("#include <linux/bpf.h>",
                                            "#include <linux/not-there.h>"))
    series = tmp_path / "s"
    series.mkdir()
    for p in (good, bad):
        shutil.move(p, series / p.name)
    with pytest.raises(patches.PatchError) as info:
        patches.patched_tree(debian_tree, patches.read_series(str(series)), progress=False)
    message = str(info.value)
    assert "0002-stale.patch" in message and "does not apply" in message
    assert "Hunk #1 FAILED" in message and TARGET in message


@pytest.fixture(scope="module")
def git_tree(debian_tree: sources.KernelSource, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small git kernel tree made of real 7.3 files (enough to pass the tree check)."""
    root = tmp_path_factory.mktemp("gittree")
    for rel in ("Makefile", "Kconfig", "scripts/Makefile.build", "include/linux/btf_ids.h",
                "tools/bpf/resolve_btfids/main.c", TARGET):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(debian_tree.path / rel, root / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    return root


def _format_patch(tree: Path, edits: list[tuple[str, str]], out: Path) -> Path:
    """Commit edits on a throwaway branch and export them as one mbox."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tree)]
    subprocess.run([*git, "checkout", "-qb", "work"], check=True)
    for index, (old, new) in enumerate(edits):
        path = tree / TARGET
        path.write_text(path.read_text().replace(old, new, 1))
        subprocess.run([*git, "commit", "-qam", f"edit {index}"], check=True)
    mbox = subprocess.run([*git, "format-patch", "--stdout", f"HEAD~{len(edits)}"],
                          capture_output=True, text=True, check=True).stdout
    subprocess.run([*git, "checkout", "-q", "-"], check=True)
    subprocess.run([*git, "branch", "-qD", "work"], check=True)
    out.write_text(mbox)
    return out


def test_mbox_on_git_tree_via_git_am_without_touching_it(git_tree: Path, tmp_path: Path) -> None:
    mbox = _format_patch(git_tree, [("#include <linux/bpf.h>\n", "#include <linux/bpf.h>\n/*1*/\n"),
                                    ("/*1*/\n", "/*1*/\n/*2*/\n")], tmp_path / "s.mbox")
    head = subprocess.run(["git", "-C", str(git_tree), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout
    series = patches.read_series(str(mbox))
    assert len(series) == 2 and "edit 0" in series[0].name
    source = sources.from_tree(str(git_tree))
    patched = patches.patched_tree(source, series, progress=False)
    assert "/*1*/\n/*2*/" in (patched.path / TARGET).read_text()
    log = subprocess.run(["git", "-C", str(patched.path), "log", "--format=%s"],
                         capture_output=True, text=True).stdout.split("\n")
    assert log[:2] == ["edit 1", "edit 0"]
    for rel in ("Makefile", "include/linux/btf_ids.h"):  # clean files keep the origin's mtime
        assert (patched.path / rel).stat().st_mtime_ns == (git_tree / rel).stat().st_mtime_ns
    assert (patched.path / TARGET).stat().st_mtime_ns > (git_tree / TARGET).stat().st_mtime_ns
    assert subprocess.run(["git", "-C", str(git_tree), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout == head
    assert "/*1*/" not in (git_tree / TARGET).read_text()


def test_git_identity_follows_dirty_state(git_tree: Path) -> None:
    clean = sources.from_tree(str(git_tree)).identity
    path = git_tree / TARGET
    text = path.read_text()
    try:
        path.write_text(text + "\n/* dirty */\n")
        dirty = sources.from_tree(str(git_tree)).identity
    finally:
        path.write_text(text)
    assert clean.startswith("git-") and "dirty" not in clean
    assert "dirty" in dirty and dirty != clean
    assert sources.from_tree(str(git_tree)).identity == clean


def test_failing_mail_names_patch(git_tree: Path, tmp_path: Path) -> None:
    edit = ("#include <linux/bpf.h>\n", "#include <linux/bpf.h>\n/*x*/\n")
    mbox = _format_patch(git_tree, [edit], tmp_path / "x.mbox")
    stale = tmp_path / "stale.mbox"
    stale.write_text(mbox.read_text().replace(" #include <linux/bpf.h>", " #include <nope.h>"))
    source = sources.from_tree(str(git_tree))
    with pytest.raises(patches.PatchError, match=r"stale.mbox does not apply: .*helpers.c"):
        patches.patched_tree(source, patches.read_series(str(stale)), progress=False)


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    with pytest.raises(sources.UsageError, match="is not a kernel tree"):
        sources.from_tree(str(tmp_path))


@pytest.mark.parametrize(("rel", "shares_config"), [
    (TARGET, True),
    ("kernel/bpf/Kconfig", False),
    ("scripts/Kconfig.include", False),
    ("arch/x86/configs/tiny.config", False),
])
def test_series_outside_kconfig_inputs_shares_the_trees_config(
        debian_tree: sources.KernelSource, tmp_path: Path, rel: str,
        shares_config: bool) -> None:
    """No kconfig run for a series that cannot change how a .config resolves."""
    text = (debian_tree.path / rel).read_text()
    first = next(line for line in text.splitlines() if line.strip())
    patch = make_patch(debian_tree.path, rel, first, first + " ", tmp_path, "p.patch")
    series = patches.read_series(str(patch))
    assert patches.touched_paths(series) == {rel}
    copy = patches.patched_source(debian_tree, series)
    assert copy.identity != debian_tree.identity
    assert (copy.config_identity == debian_tree.identity) is shares_config
