"""Shared inputs for BTF tests: real blobs from this machine and the built kernel."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cache import cache_root
from harness.kbuild.artifacts import BuildArtifacts
from tests.helpers import libbpf_oracle, testdata
from tests.helpers.libbpf_build import LibbpfBuildError

SYSFS = Path("/sys/kernel/btf")

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
    """libbpf.so at the pinned commit whose BTF layout support matches the 7.3 tree."""
    try:
        return libbpf_oracle.libbpf()
    except LibbpfBuildError as exc:
        pytest.fail(f"libbpf oracle: {exc}", pytrace=False)


@pytest.fixture(scope="session", params=[
    "debian", pytest.param("tree", marks=pytest.mark.kernel(needs="x86_build: its bpftool"))])
def bpftool_path(request: pytest.FixtureRequest) -> Path:
    """Two oracles: Debian's bpftool (scripts/setup.sh installs it; the fast tier) and the
    one the pipeline built from the 7.3 tree (knows the newest BTF; the kernel tier)."""
    if request.param == "tree":
        return request.getfixturevalue("x86_build").bpftool
    found = shutil.which("bpftool") or shutil.which("bpftool", path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail("no bpftool: scripts/setup.sh installs Debian's", pytrace=False)
    return Path(found)


@pytest.fixture(scope="session")
def vmlinux_73_raw() -> bytes:
    """Real 7.3 kernel BTF with kfunc tags, checked in (tests/helpers/testdata.py)."""
    return testdata.vmlinux_73()


def modules_of(build: Path) -> list[Path]:
    return sorted(p for p in build.rglob("*.ko") if p.is_file())


@pytest.fixture(scope="session")
def built_vmlinux(x86_build: BuildArtifacts) -> Path:
    """The suite's 7.3 x86_64 vmlinux as published (a copy no relink touches)."""
    return x86_build.vmlinux


@pytest.fixture(scope="session")
def c_btfids_73(x86_build: BuildArtifacts) -> Path:
    """The 7.3 tree's C resolve_btfids, as the pipeline built it (the oracle)."""
    return x86_build.resolve_btfids


@pytest.fixture(autouse=True)
def _build_dirs_settled(request: pytest.FixtureRequest):
    """Hold every build dir's lock while a kernel test reads it: under xdist another worker
    may be relinking one (the pipeline removes vmlinux first), which is not a BTF bug.
    Tests that read no build (the fast tier) never wait on a build in progress."""
    import contextlib

    from harness.cache import locked

    if request.node.get_closest_marker("kernel") is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        builds = cache_root() / "builds"
        if builds.is_dir():
            for build in sorted(p for p in builds.iterdir() if p.is_dir()):
                stack.enter_context(locked(build))
        yield
