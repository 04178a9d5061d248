"""libbpf and bpftool: made per tree outside the build dirs, incrementally, and afresh
after an interrupted make; a series that leaves tools/ alone shares its tree's."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from harness.kbuild import patches
from harness.kbuild.build import Builder, BuildRequest, make_plan

pytestmark = pytest.mark.kernel


def logged_builder(tmp_path: Path, request: BuildRequest) -> Builder:
    builder = Builder(make_plan(request), quiet=True)
    builder.log = tmp_path / "build.log"
    builder.log.write_text("")
    return builder


def compiled(log: Path) -> list[str]:
    return [ln for ln in log.read_text().splitlines() if ln.startswith("  CC ")]


def append_line(tree: Path, rel: str, where: Path) -> Path:
    original = (tree / rel).read_text().splitlines(keepends=True)
    patch = where / f"{rel.replace('/', '_')}.patch"
    patch.write_text("".join(difflib.unified_diff(
        original, [*original, "/* harness test */\n"], f"a/{rel}", f"b/{rel}")))
    return patch


def test_unchanged_tools_are_not_made_again(tmp_path: Path) -> None:
    builder = logged_builder(tmp_path, BuildRequest())
    source = builder.prepared_source()
    first = builder._build_tools(source)  # made here if an older cache had none
    libbpf = first["libbpf_so"].resolve()
    stamp = libbpf.stat().st_mtime_ns
    builder.log.write_text("")
    again = builder._build_tools(source)
    assert again == first
    assert compiled(builder.log) == []  # every make ran, and found nothing to do
    assert libbpf.stat().st_mtime_ns == stamp
    assert (builder.tools_dir(source) / ".harness-complete").exists()


def test_unfinished_tools_dir_is_made_afresh(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    builder = logged_builder(tmp_path, BuildRequest())
    source = builder.prepared_source()
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))  # a tools dir of our own
    builder._build_tools(source)
    tools = builder.tools_dir(source)
    assert tools.is_relative_to(tmp_path)
    obj = next((tools / "libbpf-x86_64").rglob("btf.o"))
    obj.write_bytes(b"")  # what a killed compiler leaves: an object newer than its source
    (tools / ".harness-complete").unlink()  # as a make that never finished leaves it
    built = builder._build_tools(source)
    assert obj.stat().st_size > 0
    with open(built["libbpf_so"], "rb") as handle:
        assert ELFFile(handle)["e_machine"] == "EM_X86_64"


def test_series_shares_tools_unless_it_patches_them(tmp_path: Path) -> None:
    tree = make_plan(BuildRequest()).source.path
    origin = Builder(make_plan(BuildRequest()), quiet=True)
    base = origin.tools_dir(origin.plan.source)
    for rel, shared in (("kernel/bpf/helpers.c", True), ("tools/lib/bpf/libbpf.c", False),
                        ("kernel/bpf/disasm.c", False)):
        builder = Builder(make_plan(BuildRequest(patches=str(append_line(tree, rel,
                                                                         tmp_path)))))
        patched = patches.patched_source(builder.plan.source, builder.plan.patch_series)
        assert (builder.tools_dir(patched) == base) is shared, rel
        assert (builder.tools_tree(patched) == tree) is shared, rel
