"""Fixtures for the progs tests: the 7.3 tree, its libbpf/bpftool builds, compiled objects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.cache import cache_root
from harness.kbuild.artifacts import BuildArtifacts
from harness.progs.compile import BpfToolchain, compile_prog, vmlinux_h
from tests.conftest import build_kernel


def _pipeline_artifacts() -> BuildArtifacts | None:
    """The x86_64 kernel tests/conftest.py built (or took from the cache) for this session."""
    record = os.environ.get("HARNESS_TEST_KERNEL", "")
    if record.endswith(".json") and Path(record).is_file():
        return BuildArtifacts.from_json(Path(record).read_text())
    return None


_ART = _pipeline_artifacts()
_CACHE = cache_root()
SOURCES = Path(os.environ.get(
    "HARNESS_TREE",
    str(_ART.source_tree) if _ART else str(_CACHE / "sources/linux-source-7.3_7.3.4-1~bpo13+1")))
ORACLE = Path(os.environ.get("HARNESS_ORACLE", str(_CACHE / "oracle")))
# The pipeline's own libbpf/bpftool/vmlinux when a kernel was built for the session (CI);
# the hand-built oracle tools otherwise.
LIBBPF_SO = _ART.libbpf_so if _ART else ORACLE / "libbpf" / "libbpf.so"
LIBBPF_HEADERS = _ART.libbpf_headers if _ART else ORACLE / "libbpf" / "root" / "usr" / "include"
BPFTOOL = _ART.bpftool if _ART else ORACLE / "bpftool" / "bpftool"
# A built 7.3 vmlinux gives the right vmlinux.h for the tree's programs; the
# host's BTF (6.18) is the fallback and serves the host-only programs.
VMLINUX_73 = Path(os.environ.get("HARNESS_VMLINUX", str(_ART.vmlinux) if _ART else
                                 str(_CACHE / "scratch/x86/vmlinux")))
HOST_BTF = Path("/sys/kernel/btf/vmlinux")
REPO = Path(__file__).resolve().parents[2]
SELFTEST_PROGS = SOURCES / "tools/testing/selftests/bpf/progs"


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"{p} is missing (see tests/progs/conftest.py for how to build it)")


@pytest.fixture(scope="session")
def toolchain_73() -> BpfToolchain:
    _need(SOURCES, BPFTOOL, LIBBPF_HEADERS, VMLINUX_73)
    return BpfToolchain("x86_64", vmlinux_h(VMLINUX_73, BPFTOOL), LIBBPF_HEADERS, SOURCES)


@pytest.fixture(scope="session")
def toolchain_host() -> BpfToolchain:
    _need(SOURCES, BPFTOOL, LIBBPF_HEADERS, HOST_BTF)
    return BpfToolchain("x86_64", vmlinux_h(HOST_BTF, BPFTOOL), LIBBPF_HEADERS, SOURCES)


@pytest.fixture(scope="session")
def compiled_73(toolchain_73: BpfToolchain):
    """name -> object for the tree's three selftests and our bpf_progs, against 7.3."""
    out = {}
    for name in ("kfunc_implicit_args", "wq", "wq_failures"):
        out[name] = compile_prog(SELFTEST_PROGS / f"{name}.c", toolchain_73)
    for src in sorted((REPO / "bpf_progs").glob("*.c")):
        out["ours/" + src.stem] = compile_prog(src, toolchain_73)
    return out


@pytest.fixture(scope="session")
def host_basic(toolchain_host: BpfToolchain) -> Path:
    return compile_prog(Path(__file__).with_name("data") / "host_basic.c", toolchain_host)


@pytest.fixture(scope="session")
def libbpf_so() -> Path:
    _need(LIBBPF_SO)
    return LIBBPF_SO


@pytest.fixture(scope="session")
def bpftool() -> Path:
    _need(BPFTOOL)
    return BPFTOOL


def can_load_bpf() -> bool:
    return os.geteuid() == 0 and HOST_BTF.exists()


KERNEL_ENV = {"x86_64": "HARNESS_TEST_KERNEL", "arm64": "HARNESS_TEST_KERNEL_ARM64"}


def artifacts_for(arch: str, config: pytest.Config) -> BuildArtifacts | None:
    """The kernel tests/conftest.py built and exported for ``arch``, else build_kernel's.

    None when the session said --no-kernel-build and nothing was exported.
    """
    record = os.environ.get(KERNEL_ENV[arch], "")
    if record.endswith(".json") and Path(record).is_file():
        return BuildArtifacts.from_json(Path(record).read_text())
    if config.getoption("--no-kernel-build", default=False):
        return None
    return build_kernel(arch)
