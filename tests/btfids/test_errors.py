"""Bad inputs: one clear line on stderr, the C tool's exit status, no output file left.

Each case runs the C tool too (where it exists) and requires the same exit
status; the Python tool must also say what is wrong in a single line and
leave nothing next to the ELF (no half-written or temporary files).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.btfids.conftest import PY_TOOL, run_tool
from tests.helpers import synth


@pytest.fixture
def good(tmp_path: Path) -> tuple[Path, Path]:
    if not synth.have_assembler("x86_64", "little"):
        pytest.skip("no assembler")
    raw = tmp_path / "in.BTF.1"
    raw.write_bytes(synth.make_btf().to_bytes())
    return raw, synth.assemble(synth.default_asm(), tmp_path / "obj.o")


def _both(c73: Path, tmp: Path, elf: Path, args: list[str]):  # noqa: ANN202
    c = run_tool(c73, elf, tmp / "c", args)
    py = run_tool(PY_TOOL, elf, tmp / "py", args)
    return c, py


def _one_line(py) -> None:  # noqa: ANN001
    lines = py.stderr.strip().splitlines()
    assert len(lines) == 1, py.stderr
    assert "Traceback" not in py.stderr


@pytest.mark.parametrize("keep", [40, 200, -100])
def test_truncated_elf(tmp_path: Path, good, c73: Path, keep: int) -> None:  # noqa: ANN001
    """Deliberate difference: libelf sees no sections in an ELF whose section header table
    was cut off, so the C tool carries on as if there were no .BTF_ids and exits 0 having
    written <elf>.BTF; the Python tool refuses with its failure status (255)."""
    raw, obj = good
    cut = tmp_path / "cut.o"
    cut.write_bytes(obj.read_bytes()[:keep])
    c, py = _both(c73, tmp_path, cut, ["--btf", str(raw)])
    assert c.returncode in (0, 255)
    assert py.returncode == 255
    _one_line(py)
    assert py.leftovers() == []


def test_not_an_elf(tmp_path: Path, good, c73: Path) -> None:  # noqa: ANN001
    raw, _ = good
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world\n" * 10)
    c, py = _both(c73, tmp_path, junk, ["--btf", str(raw)])
    assert py.returncode == c.returncode == 255
    assert py.stderr == c.stderr  # "FAILED cannot get shdr str ndx"
    assert py.leftovers() == []


@pytest.mark.parametrize("cut", [10, 30, 200, -7])
def test_truncated_btf(tmp_path: Path, good, c73: Path, cut: int) -> None:  # noqa: ANN001
    raw, obj = good
    bad = tmp_path / "bad.BTF"
    bad.write_bytes(raw.read_bytes()[:cut])
    c, py = _both(c73, tmp_path, obj, ["--btf", str(bad)])
    assert py.returncode == c.returncode == 255
    _one_line(py)
    assert py.stderr.startswith(f"FAILED: load BTF from {bad}")
    assert py.leftovers() == c.leftovers() == []


def test_missing_btf_file(tmp_path: Path, good, c73: Path) -> None:  # noqa: ANN001
    _, obj = good
    c, py = _both(c73, tmp_path, obj, ["--btf", str(tmp_path / "nope")])
    assert py.returncode == c.returncode == 255
    assert py.stderr == c.stderr
    assert py.leftovers() == []


def test_missing_elf(tmp_path: Path, c73: Path) -> None:
    import subprocess

    args = [str(tmp_path / "missing.o")]
    c = subprocess.run([str(c73), *args], capture_output=True, text=True)
    py = subprocess.run([*PY_TOOL, *args], capture_output=True, text=True)
    assert (py.returncode, py.stderr) == (c.returncode, c.stderr)


def test_no_btf_ids_section(tmp_path: Path, good, c73: Path) -> None:  # noqa: ANN001
    """Not an error for the C tool (modules without BTF IDs): only <elf>.BTF is written."""
    raw, _ = good
    obj = synth.assemble(".section .rodata\n.long 1\n", tmp_path / "plain.o")
    c, py = _both(c73, tmp_path, obj, ["--btf", str(raw)])
    assert py.returncode == c.returncode == 0
    assert py.outputs() == c.outputs()
    assert py.output(".BTF_ids") is None


def test_patch_without_btf_ids_section(tmp_path: Path, c73: Path) -> None:
    if not synth.have_assembler("x86_64", "little"):
        pytest.skip("no assembler")
    obj = synth.assemble(".section .rodata\n.long 1\n", tmp_path / "plain.o")
    blob = tmp_path / "blob"
    blob.write_bytes(b"\0" * 8)
    c, py = _both(c73, tmp_path, obj, ["--patch_btfids", str(blob)])
    assert py.returncode == c.returncode == 255
    assert py.stderr.replace(str(tmp_path / "py"), "X") == c.stderr.replace(
        str(tmp_path / "c"), "X")
    assert (tmp_path / "py" / "plain.o").read_bytes() == obj.read_bytes()


def test_patch_size_mismatch(tmp_path: Path, good, c73: Path) -> None:  # noqa: ANN001
    _, obj = good
    blob = tmp_path / "blob"
    blob.write_bytes(b"\1" * 12)
    c, py = _both(c73, tmp_path, obj, ["--patch_btfids", str(blob)])
    assert py.returncode == c.returncode == 255
    assert "size mismatch" in py.stderr
    _one_line(py)
    assert (tmp_path / "py" / "obj.o").read_bytes() == obj.read_bytes()


def test_patch_identical_to_c(tmp_path: Path, good, c73: Path) -> None:  # noqa: ANN001
    raw, obj = good
    c = run_tool(c73, obj, tmp_path / "gen", ["--btf", str(raw)])
    blob = Path(f"{c.elf}.BTF_ids")
    cp, pp = _both(c73, tmp_path, obj, ["--patch_btfids", str(blob)])
    assert cp.returncode == pp.returncode == 0
    assert cp.elf.read_bytes() == pp.elf.read_bytes() != obj.read_bytes()


def test_set_symbol_too_large(tmp_path: Path, good, c73: Path) -> None:  # noqa: ANN001
    """A set8 whose symbol size claims entries past the section: the C tool reads out of
    bounds; the Python one refuses with one line and exit status 255, writing nothing."""
    raw, _ = good
    obj = synth.assemble(synth.default_asm(set8_size=4096), tmp_path / "big.o")
    py = run_tool(PY_TOOL, obj, tmp_path / "py", ["--btf", str(raw)])
    assert py.returncode == 255
    _one_line(py)
    assert "kfuncs_a" in py.stderr and "past the end of .BTF_ids" in py.stderr
    assert py.leftovers() == []


def test_set_symbol_too_small(tmp_path: Path, good, c73: Path) -> None:  # noqa: ANN001
    """A set8 symbol of 4 bytes (count -1): refused in one line, exit status 255."""
    raw, _ = good
    obj = synth.assemble(synth.default_asm(set8_size=4), tmp_path / "small.o")
    py = run_tool(PY_TOOL, obj, tmp_path / "py", ["--btf", str(raw)])
    assert py.returncode == 255
    _one_line(py)
    assert py.leftovers() == []


def test_bad_symbol_name(tmp_path: Path, good, c73: Path) -> None:  # noqa: ANN001
    raw, _ = good
    asm = synth.default_asm() + ".section .BTF_ids,\"a\"\n" + synth.btf_id("func", "x", 1) \
        .replace("__BTF_ID__func__x__1", "__BTF_ID__bogus__x__1")
    obj = synth.assemble(asm, tmp_path / "bogus.o")
    c, py = _both(c73, tmp_path, obj, ["--btf", str(raw)])
    assert py.returncode == c.returncode == 255
    assert py.stderr == c.stderr  # FAILED unsupported prefix bogus__x__1
    assert py.leftovers() == []


def test_usage(tmp_path: Path, c73: Path) -> None:
    import subprocess

    for args in ([], ["a", "b"], ["--bogus", "x"], ["-h"], ["x", "--btf", "y"]):
        c = subprocess.run([str(c73), *args], capture_output=True, text=True)
        py = subprocess.run([*PY_TOOL, *args], capture_output=True, text=True)
        assert py.returncode == c.returncode == 129, args
        assert "Usage: resolve_btfids" in py.stderr


def test_output_the_kernel_would_refuse(tmp_path: Path, good) -> None:  # noqa: ANN001
    """pahole output the 7.3 kernel refuses at boot (a struct named "bad name": its
    btf_struct_check_meta wants an identifier) passes libbpf's sanity check, so the C
    tool would write it; the transformer refuses, with the kernel's words and the blame
    on the input, unless told --no-kernel-check."""
    raw, obj = good
    btf = synth.make_btf()
    btf.add_struct("bad name", 4)
    raw.write_bytes(btf.to_bytes())
    py = run_tool(PY_TOOL, obj, tmp_path / "py", ["--profile", "7.3", "--btf", str(raw)])
    assert py.returncode == 255
    failed = [line for line in py.stderr.splitlines() if not line.startswith("WARN:")]
    assert len(failed) == 1 and "Traceback" not in py.stderr, py.stderr  # (the WARN is
    assert "kernel 7.3 would refuse the output BTF at boot" in py.stderr  # synth's symbol)
    assert "STRUCT: Invalid name" in py.stderr and "the input BTF already fails" in py.stderr
    assert py.leftovers() == []
    anyway = run_tool(PY_TOOL, obj, tmp_path / "anyway",
                      ["--profile", "7.3", "--no-kernel-check", "--btf", str(raw)])
    assert anyway.returncode == 0, anyway.stderr
    assert anyway.output(".BTF") is not None


@pytest.mark.parametrize("bad_base", [False, True])
def test_split_btf_on_a_base_the_kernel_checks(tmp_path: Path, good, bad_base: bool) -> None:  # noqa: ANN001
    """A module's split BTF on --btf_base: the base is read under the kernel's rules (its
    view serves the output's boot check) and the output is what --no-kernel-check
    writes; a base those rules refuse fails the run with the kernel's words, as the
    output's check always said it."""
    from harness.btf import Btf

    _, obj = good
    base = synth.make_btf()
    if bad_base:
        base.add_struct("bad name", 4)
    base_raw = tmp_path / "vmlinux.BTF"
    base_raw.write_bytes(base.to_bytes())
    split = Btf(base=Btf.from_bytes(base_raw.read_bytes()))
    mod = split.add_struct("mod_state", 8)
    split.add_field("a", 1, 0)
    split.add_ptr(mod)
    split_raw = tmp_path / "mod.BTF"
    split_raw.write_bytes(split.to_bytes())
    args = ["--profile", "7.3", "-b", str(base_raw), "--btf", str(split_raw)]
    cache = {"HARNESS_CACHE": str(tmp_path / "cache")}
    views = tmp_path / "cache" / "kernel-views"
    py = run_tool(PY_TOOL, obj, tmp_path / "py", args, env=cache)
    if bad_base:
        assert py.returncode == 255 and "Traceback" not in py.stderr, py.stderr
        assert "kernel 7.3 would refuse the output BTF at boot" in py.stderr
        assert "STRUCT: Invalid name" in py.stderr
        assert py.leftovers() == []
        assert not views.exists() or not any(views.iterdir())  # no view of a refused base
        return
    assert py.returncode == 0, py.stderr
    lenient = run_tool(PY_TOOL, obj, tmp_path / "lenient", ["--no-kernel-check", *args])
    assert lenient.returncode == 0, lenient.stderr
    assert py.output(".BTF") == lenient.output(".BTF") is not None
    assert py.output(".BTF_ids") == lenient.output(".BTF_ids")
    # the next module's run reads the base's view the first one kept; a damaged entry
    # is checked again and written over
    (entry,) = views.iterdir()
    kept = entry.read_bytes()
    os.utime(entry, (0, entry.stat().st_mtime))
    again = run_tool(PY_TOOL, obj, tmp_path / "again", args, env=cache)
    assert again.returncode == 0, again.stderr
    assert again.outputs() == py.outputs()
    assert entry.stat().st_atime > 0  # read (a use is recorded), not written again
    entry.write_bytes(kept[:100])
    damaged = run_tool(PY_TOOL, obj, tmp_path / "damaged", args, env=cache)
    assert damaged.returncode == 0 and "Traceback" not in damaged.stderr, damaged.stderr
    assert damaged.outputs() == py.outputs()
    assert [p.name for p in views.iterdir()] == [entry.name] and entry.read_bytes() == kept


def test_the_tool_keeps_views_in_the_harness_cache_or_nowhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import cache
    from harness.btfids import cli

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    assert cli._view_store() == str(tmp_path / "kernel-views")

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(cache, "cache_root", no_home)
    assert cli._view_store() is None
