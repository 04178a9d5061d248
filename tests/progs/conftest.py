"""Fixtures for the progs tests: the 7.3 tree, its libbpf/bpftool builds, compiled objects.

All of them come from the suite's x86_64 kernel build (tests/conftest.py's
``x86_build``), made on first request; ``HARNESS_TREE`` may name another 7.3 tree.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.progs.compile import BpfToolchain, compile_prog, vmlinux_h

HOST_BTF = Path("/sys/kernel/btf/vmlinux")
REPO = Path(__file__).resolve().parents[2]


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.fail(f"{p} is missing from the test kernel's build", pytrace=False)


@pytest.fixture(scope="session")
def tree_73(x86_build: BuildArtifacts) -> Path:
    """The 7.3 kernel tree the suite's kernel was built from (HARNESS_TREE overrides)."""
    return Path(os.environ.get("HARNESS_TREE", str(x86_build.source_tree)))


@pytest.fixture(scope="session")
def toolchain_73(x86_build: BuildArtifacts, tree_73: Path) -> BpfToolchain:
    """clang against the built 7.3 vmlinux.h and the tree's libbpf headers."""
    _need(tree_73, x86_build.bpftool, x86_build.libbpf_headers, x86_build.vmlinux)
    return BpfToolchain("x86_64", vmlinux_h(x86_build.vmlinux, x86_build.bpftool),
                        x86_build.libbpf_headers, tree_73)


@pytest.fixture(scope="session")
def toolchain_host(x86_build: BuildArtifacts, tree_73: Path) -> BpfToolchain:
    """The same, against the host kernel's BTF (for programs loaded on this machine)."""
    if not HOST_BTF.exists():
        pytest.skip(f"no {HOST_BTF}")
    _need(tree_73, x86_build.bpftool, x86_build.libbpf_headers)
    return BpfToolchain("x86_64", vmlinux_h(HOST_BTF, x86_build.bpftool),
                        x86_build.libbpf_headers, tree_73)


@pytest.fixture(scope="session")
def compiled_73(toolchain_73: BpfToolchain, tree_73: Path) -> dict[str, Path]:
    """name -> object for the tree's three selftests and our bpf_progs, against 7.3."""
    progs = tree_73 / "tools/testing/selftests/bpf/progs"
    out = {}
    for name in ("kfunc_implicit_args", "wq", "wq_failures"):
        out[name] = compile_prog(progs / f"{name}.c", toolchain_73)
    for src in sorted((REPO / "bpf_progs").glob("*.c")):
        out["ours/" + src.stem] = compile_prog(src, toolchain_73)
    return out


@pytest.fixture(scope="session")
def host_basic(toolchain_host: BpfToolchain) -> Path:
    return compile_prog(Path(__file__).with_name("data") / "host_basic.c", toolchain_host)


@pytest.fixture(scope="session")
def libbpf_so(x86_build: BuildArtifacts) -> Path:
    _need(x86_build.libbpf_so)
    return x86_build.libbpf_so


@pytest.fixture(scope="session")
def bpftool(x86_build: BuildArtifacts) -> Path:
    _need(x86_build.bpftool)
    return x86_build.bpftool


def can_load_bpf() -> bool:
    return os.geteuid() == 0 and HOST_BTF.exists()
