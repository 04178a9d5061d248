"""Byte-identity with the C tools on small assembled objects: both byte orders, both classes.

A big-endian aarch64 object exercises the .BTF_ids byte swapping on a
little-endian host; i386 the 32-bit symbol layout; the kfunc sets cover
implicit args (new and legacy `_impl`), arena flags and `__arena` names,
fastcall, a kfunc in two sets, a plain set8, a sorted set and an unresolved
BTF_ID (same warning text expected).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.btfids.conftest import PY_TOOL, run_tool
from tests.helpers import synth

TARGETS = [("x86_64", "little"), ("arm64", "big"), ("i386", "little"), ("arm64", "little")]


def _inputs(tmp: Path, arch: str, endian: str, profile: str, **asm_kw) -> tuple[Path, Path]:
    if not synth.have_assembler(arch, endian):
        pytest.skip(f"no assembler for {arch} {endian}")
    btf = synth.make_btf(endian, kfunc_tags=profile == "7.2")
    raw = tmp / "in.BTF.1"
    raw.write_bytes(btf.to_bytes())
    version = {"7.3": "7.3.4", "next": "7.3.4", "7.2": "7.2.13", "6.12": "6.12.117"}[profile]
    obj = synth.assemble(synth.default_asm(version=version, **asm_kw), tmp / "obj.o", arch,
                         endian)
    return raw, obj


@pytest.mark.kernel  # compares with the trees' C resolve_btfids (c73/c72)
@pytest.mark.parametrize(("arch", "endian"), TARGETS)
@pytest.mark.parametrize("profile", ["7.3", "7.2", "next"])
def test_identical_to_c(tmp_path: Path, arch: str, endian: str, profile: str,
                        request: pytest.FixtureRequest) -> None:
    """`next` (the newest upstream tool) is held to 7.3's C tool: upstream's last kfunc
    change, the __arena suffixes, is in 7.3 (profiles.py)."""
    c_tool = request.getfixturevalue("c72" if profile == "7.2" else "c73")
    raw, obj = _inputs(tmp_path, arch, endian, profile)
    c = run_tool(c_tool, obj, tmp_path / "c", ["--btf", str(raw)])
    forced = ["--profile", profile] if profile == "next" else []
    py = run_tool(PY_TOOL, obj, tmp_path / "py", ["--btf", str(raw), *forced])
    assert (py.returncode, py.stderr) == (c.returncode, c.stderr)
    assert py.outputs() == c.outputs()
    assert c.output(".BTF_ids") is not None


@pytest.mark.kernel  # compares with the 6.12 tree's C resolve_btfids
# Not big-endian: 6.12's libbpf refuses non-native BTF whose header is longer than 24
# bytes ("unsupported header length 32"), which our reader accepts (a known difference).
@pytest.mark.parametrize(("arch", "endian"), [t for t in TARGETS if t[1] == "little"])
def test_612_patches_the_elf_in_place_like_c(tmp_path: Path, arch: str, endian: str,
                                             c612: Path) -> None:
    """Before 7.0 the tool wrote .BTF_ids into the ELF and nothing else (a 6.12 tree's
    link-vmlinux.sh runs it and moves on): the same bytes, the same stderr, no files."""
    raw, obj = _inputs(tmp_path, arch, endian, "6.12")
    c = run_tool(c612, obj, tmp_path / "c", ["--btf", str(raw)])
    py = run_tool(PY_TOOL, obj, tmp_path / "py", ["--btf", str(raw)])
    assert (py.returncode, py.stderr) == (c.returncode, c.stderr)
    patched = c.elf.read_bytes()
    assert patched != obj.read_bytes()  # the C tool did resolve something
    assert py.elf.read_bytes() == patched
    assert sorted(p.name for p in (tmp_path / "py").iterdir()) == [obj.name]


@pytest.mark.kernel  # compares with the trees' C resolve_btfids (c73/c72)
@pytest.mark.parametrize("profile", ["7.3", "7.2"])
def test_profile_detected_from_banner(tmp_path: Path, profile: str,
                                      request: pytest.FixtureRequest) -> None:
    """No --profile: the version in linux_banner picks it; forcing the other one differs."""
    c_tool = request.getfixturevalue("c73" if profile == "7.3" else "c72")
    raw, obj = _inputs(tmp_path, "x86_64", "little", profile)
    c = run_tool(c_tool, obj, tmp_path / "c", ["--btf", str(raw)])
    other = "7.2" if profile == "7.3" else "7.3"
    forced = run_tool(PY_TOOL, obj, tmp_path / "f", ["--btf", str(raw), "--profile", other])
    assert forced.output(".BTF") != c.output(".BTF")


def test_inconsistent_flags_fail_like_c(tmp_path: Path, c73: Path) -> None:
    raw, obj = _inputs(tmp_path, "x86_64", "little", "7.3", sleepable_conflict=True)
    c = run_tool(c73, obj, tmp_path / "c", ["--btf", str(raw)])
    py = run_tool(PY_TOOL, obj, tmp_path / "py", ["--btf", str(raw)])
    assert c.returncode == py.returncode == 255
    first_c_line = c.stderr.splitlines()[0]
    assert "kfunc bpf_sleepy has inconsistent flags across BTF ID sets: 0x20 != 0x0" in first_c_line
    assert py.stderr.splitlines() == [first_c_line]
    assert py.leftovers() == c.leftovers() == []


def test_discover_tolerates_flags_that_do_not_change_btf(tmp_path: Path, c73: Path) -> None:
    """--discover-kfuncs: a KF_SLEEPABLE-only difference is a warning naming both words, and
    the BTF is what the C tool writes when the sets agree."""
    raw, obj = _inputs(tmp_path, "x86_64", "little", "7.3", sleepable_conflict=True)
    py = run_tool(PY_TOOL, obj, tmp_path / "py", ["--btf", str(raw), "--discover-kfuncs"])
    assert py.returncode == 0
    assert "kfunc bpf_sleepy has inconsistent flags" in py.stderr
    assert "0x20 != 0x0" in py.stderr
    (tmp_path / "ok").mkdir()
    raw2, obj2 = _inputs(tmp_path / "ok", "x86_64", "little", "7.3")
    c = run_tool(c73, obj2, tmp_path / "c", ["--btf", str(raw2)])
    assert py.output(".BTF") == c.output(".BTF")


def test_72_discovery_without_pahole_tags(tmp_path: Path, c72: Path, c73: Path) -> None:
    """7.2 tree, pahole < 1.26 (no bpf_kfunc tags): the C tool silently leaves the implicit-arg
    kfuncs alone; the Python one discovers them from the sets and rewrites them."""
    if not synth.have_assembler("x86_64", "little"):
        pytest.skip("no assembler")
    raw = tmp_path / "in.BTF.1"
    raw.write_bytes(synth.make_btf("little", kfunc_tags=False).to_bytes())
    obj = synth.assemble(synth.default_asm(version="7.2.13"), tmp_path / "obj.o")
    c = run_tool(c72, obj, tmp_path / "c", ["--btf", str(raw)])
    py = run_tool(PY_TOOL, obj, tmp_path / "py", ["--btf", str(raw)])
    assert c.returncode == py.returncode == 0
    assert "no bpf_kfunc decl tags" in py.stderr
    from harness.btf import Btf, Kind

    def funcs(blob: bytes) -> dict[str, int]:
        b = Btf.from_bytes(blob)
        return {b.name(t): len(b[t.type].params) for t in b.types if t.kind == Kind.FUNC}

    cf, pf = funcs(c.output(".BTF")), funcs(py.output(".BTF"))
    assert "bpf_wq_set_callback_impl" not in cf
    assert pf["bpf_wq_set_callback"] == 2 and pf["bpf_wq_set_callback_impl"] == 3
    # the same kfunc prototypes as 7.3's C tool gives for the same sets
    c3 = run_tool(c73, obj, tmp_path / "c3", ["--btf", str(raw)])
    assert funcs(c3.output(".BTF")) == pf
