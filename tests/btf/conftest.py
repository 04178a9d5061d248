"""Shared inputs for BTF tests: real blobs from this machine and the built kernel."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.cache import cache_root
from tests.helpers import libbpf_oracle

SYSFS = Path("/sys/kernel/btf")
BUILT_X86 = Path(os.environ.get("HARNESS_BUILT_X86", str(cache_root() / "scratch/x86")))

# A C file exercising every kind clang emits for BPF (bitfields, signed enums,
# enum64, decl/type tags, datasec, float, fwd, func pointers, arrays).
SAMPLE_C = r"""
#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))
typedef unsigned long long u64;
struct fwd_only;
union fwd_union;
enum small { S_NEG = -3, S_POS = 7 };
enum big { B_LARGE = 0x123456789ULL, B_ONE = 1 };
struct bits { unsigned a:3, b:5; int c; long long d:40; } __tag("s_tag");
union un { int i; float f; double d; char c[3]; };
struct holder {
    struct fwd_only *fw;
    union fwd_union *fu;
    int __ttag("user") *tagged;
    const volatile int cv;
    int *restrict rp;
    int (*fp)(int, char *);
    struct bits b[2][3];
    enum small s;
    enum big g;
    union un u;
    u64 q;
    char tail[];
} __tag("holder");
int glob_var __tag("var_tag") = 3;
static volatile int static_var;
float fl;
__attribute__((section(".maps"))) struct { int x; } map_like;
__attribute__((noinline)) __tag("fn") int func(struct holder *h __tag("arg"), int x)
{
    return h->b[0][1].c + x + h->s + (int)h->g + h->u.i + static_var;
}
int entry(void *ctx) { struct holder h = {}; return func(&h, 1) + glob_var + *(int *)&fl; }
"""


# A few types of each family only: the fuzz seed (small blobs mutate and parse fast).
SMALL_C = r"""
struct s { unsigned a:3; int b; enum { A = -1, B } e; } __attribute__((btf_decl_tag("t")));
int __attribute__((btf_type_tag("user"))) *gp;
int f(struct s *p) { return p->b + *gp; }
"""


def have_cmd(cmd: str) -> bool:
    from shutil import which

    return which(cmd) is not None


def _clang_bpf_object(tmp_path_factory: pytest.TempPathFactory, stem: str, source: str) -> Path:
    """Compile `source` with clang -target bpf -g -O2 into a fresh temp dir."""
    if not have_cmd("clang"):
        pytest.skip("clang not installed")
    d = tmp_path_factory.mktemp(f"clang_{stem}")
    src = d / f"{stem}.c"
    src.write_text(source)
    obj = d / f"{stem}.o"
    subprocess.run(["clang", "-target", "bpf", "-g", "-O2", "-c", str(src), "-o", str(obj)],
                   check=True, capture_output=True)
    return obj


@pytest.fixture(scope="session")
def clang_obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clang -target bpf -g -O2 object with varied BTF."""
    return _clang_bpf_object(tmp_path_factory, "sample", SAMPLE_C)


@pytest.fixture(scope="session")
def small_clang_obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _clang_bpf_object(tmp_path_factory, "small", SMALL_C)


@pytest.fixture(scope="session")
def oracle() -> libbpf_oracle.Libbpf:
    lib = libbpf_oracle.libbpf()
    if lib is None:
        pytest.skip("libbpf.so could not be built from the kernel tree")
    return lib


@pytest.fixture(scope="session")
def bpftool_path() -> Path:
    tool = libbpf_oracle.bpftool()
    if tool is None:
        pytest.skip("bpftool could not be built from the kernel tree")
    return tool


def built_kernel_ready() -> bool:
    """A finished scratch build (build.log ends in rc=0) or a pipeline build dir, which
    gets its .harness-btf-stage marker only after make succeeded."""
    if (BUILT_X86 / ".harness-btf-stage").exists() and (BUILT_X86 / "vmlinux").exists():
        return True
    log = BUILT_X86 / "build.log"
    try:
        return log.read_text(errors="replace").rstrip().endswith("rc=0")
    except OSError:
        return False


def built_modules() -> list[Path]:
    if not built_kernel_ready():
        return []
    return sorted(p for p in BUILT_X86.rglob("*.ko") if p.is_file())


BUILDS = Path(os.environ.get("HARNESS_BUILDS", str(cache_root() / "builds")))
_IMAGES = ("arch/x86/boot/bzImage", "arch/arm64/boot/Image")


def finished_build_dirs() -> list[Path]:
    """Kernel build dirs with a finished vmlinux: the scratch x86 build and the
    build pipeline's cache (a boot image newer than vmlinux marks a finished link)."""
    dirs = [BUILT_X86] if built_kernel_ready() and (BUILT_X86 / "vmlinux").exists() else []
    if BUILDS.is_dir():
        for d in sorted(BUILDS.iterdir()):
            vm = d / "vmlinux"
            if not d.is_dir() or not vm.exists():
                continue
            for img in _IMAGES:
                if (d / img).exists() and (d / img).stat().st_mtime >= vm.stat().st_mtime:
                    dirs.append(d)
                    break
    return dirs


def modules_of(build: Path) -> list[Path]:
    return sorted(p for p in build.rglob("*.ko") if p.is_file())


@pytest.fixture(autouse=True)
def _build_dirs_settled():
    """Hold every build dir's lock while a test reads it: under xdist another worker may
    be relinking one (the pipeline removes vmlinux first), which is not a BTF bug."""
    import contextlib

    from harness.cache import locked

    with contextlib.ExitStack() as stack:
        if BUILDS.is_dir():
            for build in sorted(p for p in BUILDS.iterdir() if p.is_dir()):
                stack.enter_context(locked(build))
        yield
