"""End to end on the real 7.3 tree: artifacts, cache reuse, BTF-stage-only rebuilds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from harness.btf.load import btf_bytes
from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.build import Builder, BuildRequest, make_plan

pytestmark = pytest.mark.kernel_build


def sections(path: Path) -> set[str]:
    with open(path, "rb") as handle:
        return {s.name for s in ELFFile(handle).iter_sections()}


def machine(path: Path) -> str:
    with open(path, "rb") as handle:
        return ELFFile(handle)["e_machine"]


def test_default_build_has_every_artifact(x86_build: BuildArtifacts) -> None:
    a = x86_build
    assert a.arch == "x86_64" and a.kernel_release == "7.3.4"
    assert a.boot_image.name == "bzImage" and a.boot_image.stat().st_size > 1_000_000
    assert {".BTF", ".BTF_ids"} <= sections(a.vmlinux)
    modules = sorted(p.name for p in a.modules_dir.glob("*.ko"))
    assert "ttynull.ko" in modules  # CONFIG_NULL_TTY=m
    assert ".BTF" in sections(a.modules_dir / "ttynull.ko")
    assert a.bpf_testmod is not None
    assert {".BTF", ".BTF.base"} <= sections(a.bpf_testmod)  # distilled: out-of-tree
    assert machine(a.libbpf_so) == "EM_X86_64"
    assert (a.libbpf_headers / "bpf" / "libbpf.h").is_file()
    version = subprocess.run([str(a.bpftool), "version"], capture_output=True, text=True)
    assert version.returncode == 0 and "libbpf" in version.stdout
    assert machine(a.resolve_btfids) == "EM_X86_64"
    assert "CONFIG_DEBUG_INFO_BTF=y" in a.config.read_text()
    assert "pahole 1.32" in a.toolchain["pahole"]
    assert BuildArtifacts.from_json((a.vmlinux.parent / "artifacts.json").read_text()) == a


def test_unchanged_rebuild_is_a_cache_hit(x86_build: BuildArtifacts) -> None:
    builder = Builder(make_plan(BuildRequest()), quiet=True)
    again = builder.build()
    assert again == x86_build
    assert builder.log is not None
    assert "$ make" not in builder.log.read_text()  # make was never started


def test_pahole_swap_relinks_without_recompiling(x86_build: BuildArtifacts) -> None:
    builder = Builder(make_plan(BuildRequest(pahole="1.30")), quiet=True)
    swapped = builder.build()
    assert swapped.cache_key != x86_build.cache_key
    assert swapped.toolchain["build_dir"] == x86_build.toolchain["build_dir"]
    assert "pahole 1.30" in swapped.toolchain["pahole"]
    log = builder.log.read_text() if builder.log else ""
    if "$ make" in log:  # not already cached by an earlier run
        compiled = [ln for ln in log.splitlines() if ln.startswith("  CC ")]
        relinked = [ln for ln in log.splitlines() if ln.strip().startswith(("LD ", "BTF "))]
        assert len(compiled) < 40, compiled[:10]
        assert any(".tmp_vmlinux" in ln or "vmlinux.unstripped" in ln for ln in relinked)
    assert {".BTF", ".BTF_ids"} <= sections(swapped.vmlinux)
    # the BTF stage really ran again: 1.32 writes the kind layout section, 1.30 does not
    assert btf_bytes(swapped.vmlinux) != btf_bytes(x86_build.vmlinux)
