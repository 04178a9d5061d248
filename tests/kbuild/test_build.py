"""End to end on the real 7.3 tree: artifacts, cache reuse, BTF-stage-only rebuilds."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from harness.btf.load import btf_bytes
from harness.cache import locked
from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.build import Builder, BuildRequest, make_plan

pytestmark = pytest.mark.kernel


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


def test_config_change_starts_from_the_closest_sibling(x86_build: BuildArtifacts,
                                                       tmp_path: Path) -> None:
    """A new config copies the closest build dir; kbuild recompiles only what it touches."""
    fragment = tmp_path / "logbuf.config"
    fragment.write_text("CONFIG_LOG_BUF_SHIFT=16\n")
    builder = Builder(make_plan(BuildRequest(kconfigs=[str(fragment)])), quiet=True)
    source = builder.prepared_source()
    compile_key = builder.compile_key(source, "x86_64", builder.merged_config(source),
                                      builder.plan.compiler)
    build_dir = Path(x86_build.toolchain["build_dir"]).parent / compile_key
    published = x86_build.vmlinux.parent.parent / builder.full_key(compile_key)
    for stale in (published, build_dir):  # measure a real seeded build every run
        shutil.rmtree(stale, ignore_errors=True)
    try:
        changed = builder.build()
        log = builder.log.read_text() if builder.log else ""
        assert "# stage seed" in log and "$ make" in log
        compiled = [ln for ln in log.splitlines() if ln.startswith("  CC ")]
        assert 0 < len(compiled) < 40, compiled[:10]  # printk.c and friends, not 1,400
        assert any("kernel/printk/printk.o" in ln for ln in compiled)
        assert "CONFIG_LOG_BUF_SHIFT=16" in changed.config.read_text()
        dirs = re.compile(rb"/builds/([0-9a-f]{20})\b")
        own = {compile_key.encode()}
        leftovers = [p for p in build_dir.rglob("*.cmd")
                     if {m.group(1) for m in dirs.finditer(p.read_bytes())} - own]
        assert not leftovers, leftovers[:3]  # nothing points back into the sibling
        assert {".BTF", ".BTF_ids"} <= sections(changed.vmlinux)
    finally:
        shutil.rmtree(published, ignore_errors=True)
        shutil.rmtree(build_dir, ignore_errors=True)


def marker_series(tree: Path, rel: str, symbol: str, where: Path) -> Path:
    """A one-patch series that appends a global function named `symbol` to `rel`."""
    original = (tree / rel).read_text().splitlines(keepends=True)
    added = ["\n", f"noinline int {symbol}(void);\n",
             f"noinline int {symbol}(void) {{ return 42; }}\n"]
    diff = difflib.unified_diff(original, original + added, f"a/{rel}", f"b/{rel}")
    series = where / symbol
    series.mkdir()
    (series / f"0001-add-{symbol}.patch").write_text("".join(diff))
    return series


def symbols(vmlinux: Path) -> set[str]:
    out = subprocess.run(["nm", str(vmlinux)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines()}


def compiled_objects(log: str) -> set[str]:
    return {ln.split()[-1] for ln in log.splitlines() if ln.startswith("  CC ")}


def remove_locked(path: Path) -> None:
    with locked(path):
        shutil.rmtree(path, ignore_errors=True)


def test_patch_series_change_starts_from_the_last_build_of_the_tree(
        x86_build: BuildArtifacts, tmp_path: Path) -> None:
    """A series, then another: each build dir is seeded, and the file only the first series
    patched is recompiled from pristine bytes although its mtime is older than the seed's."""
    tree = make_plan(BuildRequest()).source.path
    builders = [Builder(make_plan(BuildRequest(patches=str(marker_series(
        tree, rel, symbol, tmp_path)))), quiet=True)
        for rel, symbol in (("kernel/bpf/helpers.c", "harness_marker_a"),
                            ("kernel/bpf/syscall.c", "harness_marker_b"))]
    made: list[Path] = []
    try:
        runs = []
        for builder in builders:
            source = builder.prepared_source()
            key = builder.compile_key(source, "x86_64", builder.merged_config(source),
                                      builder.plan.compiler)
            build_dir = Path(x86_build.toolchain["build_dir"]).parent / key
            published = x86_build.vmlinux.parent.parent / builder.full_key(key)
            made += [published, build_dir, source.path]
            for stale in (published, build_dir):  # a real seeded build every run
                remove_locked(stale)
            artifacts = builder.build()
            runs.append((build_dir, artifacts, builder.log.read_text() if builder.log else ""))
        (dir_a, built_a, log_a), (dir_b, built_b, log_b) = runs
        assert "harness_marker_a" in symbols(built_a.vmlinux)
        assert "kernel/bpf/helpers.o" in compiled_objects(log_a)
        assert len(compiled_objects(log_a)) < 40, sorted(compiled_objects(log_a))[:10]
        seeded_b = re.search(r"^# seeded from (\S+) ", log_b, re.M)
        assert seeded_b, log_b[:2000]
        assert {"harness_marker_b"} == {"harness_marker_a", "harness_marker_b"} & symbols(
            built_b.vmlinux)  # series A's function is gone: helpers.c was rebuilt pristine
        compiled_b = compiled_objects(log_b)
        assert "kernel/bpf/syscall.o" in compiled_b and len(compiled_b) < 40, sorted(compiled_b)
        if seeded_b.group(1) == str(dir_a):
            assert "kernel/bpf/helpers.o" in compiled_b
        tree_a = made[2]
        stale = [p for p in dir_b.rglob("*.cmd")
                 if str(dir_a).encode() in (data := p.read_bytes()) or str(tree_a).encode() in data]
        assert not stale, stale[:3]  # nothing names series A's build dir or tree
    finally:
        for path in made:
            remove_locked(path)


_ASK_FOR_KERNEL = """
import sys
from tests.helpers.kernels import build_kernel
artifacts = build_kernel("x86_64", btfids=sys.argv[1])
print(artifacts.cache_key)
"""


def test_two_workers_asking_for_one_new_kernel_build_it_once(x86_build: BuildArtifacts,
                                                            tmp_path: Path) -> None:
    """What two xdist workers do when both need a kernel nobody built yet: one builds, the
    other waits on the build lock, finds the record on re-checking, and makes nothing.

    The kernel is the default one with a resolve_btfids of its own (a wrapper around ours
    with a unique comment): a new cache key that costs a relink, not a kernel build.
    """
    import sys
    import uuid

    from harness.cache import cache_root
    from harness.kbuild.toolchains import python_btfids_wrapper

    btfids = tmp_path / "resolve_btfids"
    btfids.write_text(f"#!/bin/sh\n# build-once test {uuid.uuid4()}\n"
                      f'exec {python_btfids_wrapper()} "$@"\n')
    btfids.chmod(0o755)
    repo = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", _ASK_FOR_KERNEL, str(btfids)], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.pid, *p.communicate(timeout=1800)) for p in procs]
    keys = set()
    try:
        for proc, (_pid, out, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err[-2000:]
            keys.add(out.split()[-1])
        assert len(keys) == 1, keys
        logs = cache_root() / "logs"
        made = [pid for pid, _out, _err in results
                if any("$ make" in log.read_text(errors="replace")
                       for log in logs.glob(f"build-x86_64-*-{pid}.log"))]
        assert len(made) == 1, f"make ran in {len(made)} of the two processes"
    finally:
        for key in keys:  # a unique kernel nobody else will ask for: do not keep it
            entry = cache_root() / "artifacts" / key
            with locked(entry):
                shutil.rmtree(entry, ignore_errors=True)
