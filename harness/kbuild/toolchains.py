"""Pinned toolchains: which pahole, which resolve_btfids, which compilers — and their versions.

A pahole release is fetched from the Debian suite that ships it, unpacked with its own
libraries into the cache, and run through that folder's own dynamic loader, so bookworm
can run sid's pahole without touching the system.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.arch import host, lookup
from harness.cache import cache_dir, locked, staging_dir
from harness.errors import HarnessError, UsageError
from harness.kbuild.debian import PrivateApt, unpack_deb

# Debian suite and the packages (pahole and its shared libraries) for each pinned release.
_COMMON_LIBS = ["libc6", "zlib1g", "liblzma5", "libbz2-1.0", "libzstd1"]
PAHOLE_RELEASES: dict[str, tuple[str, list[str]]] = {
    "1.24": ("bookworm", ["pahole", "libdw1", "libelf1", "libbpf1", *_COMMON_LIBS]),
    "1.30": ("trixie", ["pahole", "libdw1t64", "libelf1t64", "libbpf1", *_COMMON_LIBS]),
    "1.32": ("sid", ["pahole", "libdwarves1", "libdw1t64", "libelf1t64", "libbpf1",
                     *_COMMON_LIBS]),
}
DEFAULT_PAHOLE = "1.32"

# clang/LLVM for BPF programs: release -> (suite of the LLVM packages, suite of the libraries
# they link). Only what `clang --target=bpf -c` runs is fetched: the driver (cc1 runs in the
# same process), libclang-cpp, libLLVM, the resource headers and their shared libraries.
_CLANG_LIBS = ["libc6", "libstdc++6", "libgcc-s1", "libffi8", "libedit2", "libz3-4", "libxml2",
               "libtinfo6", "libzstd1", "zlib1g", "liblzma5", "libbsd0", "libmd0"]
CLANG_RELEASES: dict[str, tuple[str, str, list[str]]] = {
    "19": ("bookworm", "bookworm", [*_CLANG_LIBS, "libicu72"]),
    "21": ("trixie-backports", "trixie", [*_CLANG_LIBS, "libicu76"]),
}
# The newest pinned clang the whole suite passes with on both arches (80/80 each, 7.3).
DEFAULT_CLANG = "21"
BTFIDS_CHOICES = ("c", "python")
DEFAULT_BTFIDS = "python"



class ToolchainError(HarnessError):
    """A tool the build needs is missing or unusable."""


@dataclass(frozen=True)
class Tool:
    """An executable kbuild is handed, with the version string that goes into cache keys."""

    path: Path
    version: str
    label: str


def _run_version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise ToolchainError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[:200]}")
    return proc.stdout.strip()


def pahole_version(path: Path) -> str:
    out = _run_version([str(path), "--version"])
    match = re.match(r"v?(\d+\.\d+)", out)
    if not match:
        raise ToolchainError(f"{path} --version printed {out!r}, not a pahole version")
    return match.group(1)


def _write_wrapper(path: Path, body: str) -> None:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


NATIVE_STAMP = ".native"  # in a tool's dir: its binary was given its own loader


def _patchelf() -> Path:
    """bookworm's patchelf, unpacked once into the toolchain cache (runs natively here)."""
    final = cache_dir("toolchains") / "patchelf"
    binary = final / "root/usr/bin/patchelf"
    if binary.exists():
        return binary
    deb = PrivateApt().download("patchelf", "bookworm")
    with locked(final):
        if not binary.exists():
            with staging_dir(final) as tmp:
                unpack_deb(deb, tmp / "root")
    return binary


def _make_native(final: Path, binary: str, loader: str, libpath: str) -> None:
    """Give `binary` the unpacked loader and library path itself (PT_INTERP, RUNPATH).

    Why: run through the loader, a tool's /proc/self/exe is the loader, and clang's driver
    re-executes /proc/self/exe for every job it does not run in-process (a multi-file
    compile, a link): the loader then takes `-cc1` for a program name. Patched, the tool
    is its own executable and runs the same with or without the wrapper."""
    target = (final / "root" / binary).resolve()
    try:
        subprocess.run([str(_patchelf()), "--set-interpreter", loader, "--set-rpath", libpath,
                        str(target)], check=True, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"patchelf {target}: {exc}") from None
    except subprocess.CalledProcessError as exc:
        raise ToolchainError(f"patchelf {target}: {exc.stderr.strip()[-200:]}") from None
    (final / NATIVE_STAMP).write_text(f"{loader}\n{libpath}\n")


def _unpack_tool(name: str, packages: list[tuple[str, str]], binary: str,
                 args: str = "", native: bool = False) -> Path:
    """Unpack Debian `packages` ((package, suite) pairs) once into the toolchain cache and
    return a wrapper that runs `binary` (a path inside them) through their own dynamic
    loader and libraries, so a newer suite's tool runs on this Debian untouched. `args`
    go before the caller's; `{root}` in them is where the packages were unpacked. With
    `native`, the binary itself is patched to use that loader (see _make_native)."""
    final = cache_dir("toolchains") / name
    wrapper = final / name.split("-")[0]
    if wrapper.exists() and (not native or (final / NATIVE_STAMP).exists()):
        return wrapper
    if wrapper.exists():  # unpacked by a harness that did not patch it yet
        with locked(final):
            if not (final / NATIVE_STAMP).exists():
                loader, libpath = _loader_and_libpath(final, final)
                _make_native(final, binary, loader, libpath)
                _write_native_wrapper(wrapper, final, name, packages, binary, args)
        return wrapper
    apt = PrivateApt()
    debs = [apt.download(pkg, suite) for pkg, suite in packages]
    with locked(final):
        if wrapper.exists():
            return wrapper
        with staging_dir(final) as tmp:
            for deb in debs:
                unpack_deb(deb, tmp / "root")
            loader, libpath = _loader_and_libpath(tmp, final)
            if native:
                _make_native(tmp, binary, loader, libpath)
                _write_native_wrapper(tmp / wrapper.name, final, name, packages, binary, args)
            else:
                suites = sorted({suite for _, suite in packages})
                _write_wrapper(
                    tmp / wrapper.name,
                    "#!/bin/sh\n"
                    f"# {name} from Debian {', '.join(suites)}, run through its own loader\n"
                    f"exec {loader} --library-path {libpath} {final}/root/{binary} "
                    f'{args.format(root=f"{final}/root")}"$@"\n',
                )
    return wrapper


def _loader_and_libpath(unpacked: Path, final: Path) -> tuple[str, str]:
    """The unpacked packages' dynamic loader and library dirs, as paths under `final`
    (where `unpacked` ends up)."""
    triplet = host().gnu_triplet
    lib_dirs = [d for d in (f"lib/{triplet}", f"usr/lib/{triplet}")
                if (unpacked / "root" / d).is_dir()]
    libpath = ":".join(f"{final}/root/{d}" for d in lib_dirs)
    loader = f"{final}/root/lib64/ld-linux-x86-64.so.2"
    if not (unpacked / "root/lib64/ld-linux-x86-64.so.2").exists():
        loader = f"{final}/root/usr/lib64/ld-linux-x86-64.so.2"
    return loader, libpath


def _write_native_wrapper(path: Path, final: Path, name: str,
                          packages: list[tuple[str, str]], binary: str, args: str) -> None:
    suites = sorted({suite for _, suite in packages})
    _write_wrapper(
        path,
        "#!/bin/sh\n"
        f"# {name} from Debian {', '.join(suites)}, patched to use its own loader\n"
        f'exec {final}/root/{binary} {args.format(root=f"{final}/root")}"$@"\n',
    )


def _fetch_pahole(release: str) -> Path:
    """Unpack pahole <release> and its libraries once; return the wrapper script."""
    suite, packages = PAHOLE_RELEASES[release]
    return _unpack_tool(f"pahole-{release}", [(p, suite) for p in packages], "usr/bin/pahole")


def select_pahole(choice: str) -> Tool:
    """`system`, a pinned release (1.24, 1.30, 1.32) or a path to a pahole binary."""
    if choice == "system":
        found = shutil.which("pahole")
        if not found:
            raise ToolchainError("no pahole on PATH (apt install dwarves, or use --pahole 1.32)")
        path = Path(found)
        version = pahole_version(path)
        return Tool(path, version, f"system pahole {version}")
    if choice in PAHOLE_RELEASES:
        path = _fetch_pahole(choice)
        version = pahole_version(path)
        if version != choice:
            raise ToolchainError(f"fetched pahole reports {version}, expected {choice}")
        return Tool(path, version, f"pahole {version} (Debian {PAHOLE_RELEASES[choice][0]})")
    path = _tool_path("pahole", choice, PAHOLE_RELEASES)
    version = pahole_version(path)
    return Tool(path, version, f"pahole {version} ({path})")


def _tool_path(tool: str, choice: str, releases: dict) -> Path:
    """A --<tool> choice that is neither system nor a pinned release: an executable path,
    or a one-line error listing the choices."""
    path = Path(choice).expanduser()
    if "/" in choice or path.exists():
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UsageError(f"--{tool} {choice}: not an executable file")
        return path.resolve()
    known = ", ".join(["system", *releases])
    raise UsageError(f"unknown {tool} {choice!r}: choose {known} or a path")


def clang_version(path: Path | str) -> str:
    """`clang --version`'s first line, e.g. "Debian clang version 21.1.8 (3~bpo13+2)"."""
    out = _run_version([str(path), "--version"])
    return out.splitlines()[0] if out else "unknown"


def _fetch_clang(release: str) -> Path:
    llvm_suite, lib_suite, libs = CLANG_RELEASES[release]
    llvm = [f"clang-{release}", f"libclang-cpp{release}", f"libllvm{release}",
            f"libclang-common-{release}-dev"]
    resource = f"usr/lib/llvm-{release}/lib/clang/{release}"
    # the driver finds its resource dir from its own path, which is the loader's here
    return _unpack_tool(f"clang-{release}",
                        [(p, llvm_suite) for p in llvm] + [(p, lib_suite) for p in libs],
                        f"usr/lib/llvm-{release}/bin/clang",
                        args=f"-resource-dir {{root}}/{resource} ", native=True)


def select_clang(choice: str) -> Tool:
    """The clang BPF programs are compiled with: `system`, a pinned Debian release
    (19: bookworm, 21: trixie-backports; BPF CI builds with LLVM 21) or a path."""
    if choice == "system":
        found = shutil.which("clang")
        if not found:
            raise ToolchainError("no clang on PATH (apt install clang, or use --clang 21)")
        version = clang_version(found)
        return Tool(Path(found), version, f"system {version}")
    if choice in CLANG_RELEASES:
        path = _fetch_clang(choice)
        version = clang_version(path)
        if f"clang version {choice}." not in version:
            raise ToolchainError(f"fetched clang reports {version!r}, expected {choice}.x")
        return Tool(path, version, f"{version} (Debian {CLANG_RELEASES[choice][0]})")
    path = _tool_path("clang", choice, CLANG_RELEASES)
    version = clang_version(path)
    return Tool(path, version, f"{version} ({path})")


PER_ARG_TAGS = ("--per-arg-tags",)  # the transformer's opt-in per-argument decl tags


def python_btfids_wrapper(args: tuple[str, ...] = ()) -> Path:
    """An executable kbuild can call as RESOLVE_BTFIDS that runs our transformer (with
    `args` of its own before kbuild's: kbuild passes RESOLVE_BTFIDS no options of ours)."""
    name = "resolve_btfids-python" + "".join(a.replace("--", "-") for a in args)
    wrapper = cache_dir("bin") / name
    # This checkout's package, whether or not (or wherever) the harness is pip-installed.
    checkout = shlex.quote(str(Path(__file__).resolve().parents[2]))
    extra = "".join(f"{shlex.quote(a)} " for a in args)
    body = (
        "#!/bin/sh\n"
        "# resolve_btfids drop-in: the harness's Python transformer\n"
        f'PYTHONPATH={checkout}${{PYTHONPATH:+:$PYTHONPATH}} exec {sys.executable} '
        f'-m harness.btfids {extra}"$@"\n'
    )
    if not wrapper.exists() or wrapper.read_text() != body:
        # per-process temp name: xdist workers planning their first builds race here
        tmp = wrapper.with_name(f".{wrapper.name}.tmp-{os.getpid()}")
        _write_wrapper(tmp, body)
        os.replace(tmp, wrapper)
    _fresh_bytecode()
    return wrapper


@functools.cache
def _fresh_bytecode() -> None:
    """Bring the harness package's .pyc files up to date before kbuild runs the wrapper.

    With PYTHONDONTWRITEBYTECODE set (as on CI machines), an edited module is compiled
    again by every resolve_btfids call of every build and bisect step (about 50 ms each
    for the BTF modules); compileall writes the .pyc regardless, and only what changed.
    """
    with contextlib.suppress(OSError):  # read-only checkout: compiled in memory, as before
        compileall.compile_dir(Path(__file__).resolve().parents[1], quiet=2)


def _harness_import_closure(start: list[Path]) -> list[Path]:
    """Every harness module `start` imports, transitively (read with ast, not executed)."""
    import ast

    package = Path(__file__).resolve().parent.parent  # .../harness
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        path = todo.pop().resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name == "harness" or name.startswith("harness."):
                    rel = Path(*name.split(".")[1:])
                    for candidate in (package / rel / "__init__.py",
                                      package / rel.with_suffix(".py")):
                        if candidate.is_file():
                            todo.append(candidate)
    return sorted(seen)


def btfids_identity(choice: str) -> str:
    """What the BTF stage's output depends on for this btfids choice (for cache keys).

    For the Python transformer: the source of every module it imports, so editing, say,
    `harness btf diff` does not invalidate every built kernel.
    """
    import hashlib

    if choice == "c":
        return "c"
    if choice == "python":
        package = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for src in _harness_import_closure(sorted((package / "btfids").glob("*.py"))):
            digest.update(str(src.relative_to(package)).encode() + b"\0" + src.read_bytes())
        return "python-" + digest.hexdigest()[:16]
    path = Path(choice).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise UsageError(f"--btfids {choice}: choose c, python or an executable path")
    return "path-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cross_compiler(arch: str) -> Tool:
    """The C compiler for `arch`; a missing cross gcc is a clear error, not a make failure."""
    prefix = lookup(arch).cross_prefix
    gcc = shutil.which(f"{prefix}gcc")
    if not gcc:
        raise ToolchainError(
            f"cross compiler {prefix}gcc not found (run scripts/setup.sh, or "
            f"apt install gcc-{prefix.rstrip('-').replace('_', '-')})"
        )
    version = _run_version([gcc, "-dumpfullversion"])
    return Tool(Path(gcc), version, f"{prefix}gcc {version}")


def ccache() -> Path | None:
    found = shutil.which("ccache")
    return Path(found) if found else None
