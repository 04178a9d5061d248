"""Compile selftest-style BPF C programs against a built kernel, cached by content.

The flags are the tree's own: tools/testing/selftests/bpf/Makefile is asked for them
(makeflags.py: TRUNNER_BPF_CFLAGS, the build rule's -O2/--target/-mcpu, per-source
extras) for the chosen test_progs flavor (default, no_alu32, cpuv4), so the tree's
programs compile as its test_progs builds them, -Werror included. What the Makefile
takes from its own scratch dir comes from the build instead: ``vmlinux.h`` generated
from the *built* kernel's BTF with the tree's bpftool (bookworm's bpftool 7.1 drops
members of 7.x structs) and libbpf's headers from the tree's tools build. Programs
outside the tree also get the selftests' progs/ directory (``bpf_misc.h``).

Objects are cached under ``<cache>/progs/obj/<key>/`` where the key hashes the
preprocessed source (so every header's content counts), the flags and the
compiler version: an edit anywhere recompiles, nothing else does. Finding the key
costs a preprocess (~50 ms a source); ``<cache>/progs/memo/`` keeps each key with the
files the preprocess read and their mtime and size (ccache's direct mode), so a source
none of whose inputs changed skips it: a suite run's eight sources cost a booting guest
0.4 s of the host's CPU before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.cache import atomic_write, cache_dir, locked, touch_used
from harness.elf import ElfError, ElfFile, is_elf
from harness.errors import HarnessError
from harness.progs.makeflags import DEFAULT_FLAVOR, SELFTESTS, SelftestsFlags, selftests_flags


class CompileError(HarnessError):
    """clang or bpftool failed on a program or a vmlinux (first error line shown)."""


@dataclass(frozen=True)
class BpfToolchain:
    """Everything a compile needs besides the source."""

    arch: str
    vmlinux_h_dir: Path  # holds vmlinux.h
    libbpf_headers: Path  # holds bpf/bpf_helpers.h ...
    source_tree: Path  # kernel tree (read-only): selftests headers and tools/include
    clang: str = "clang"
    flavor: str = DEFAULT_FLAVOR  # a test_progs flavor of the tree's Makefile

    def flags_for(self, src: Path) -> list[str]:
        """What clang gets besides `-c src -o obj`: the tree's flags for `src` in this
        flavor, with this build's vmlinux.h and libbpf headers."""
        derived = _derived(self.source_tree, self.arch, self.clang)
        flags = derived.command_flags(self.flavor, src, self.source_tree,
                                      (self.vmlinux_h_dir, self.libbpf_headers))
        return [*flags, f"-I{self.source_tree / SELFTESTS / 'progs'}"]


@functools.lru_cache(maxsize=16)
def _derived(tree: Path, arch: str, clang: str) -> SelftestsFlags:
    return selftests_flags(tree, arch, clang, clang_version(clang))


@functools.cache
def clang_version(clang: str) -> str:
    """The compiler's `--version` line: part of every compiled object's cache key."""
    from harness.kbuild.toolchains import ToolchainError  # noqa: PLC0415
    from harness.kbuild.toolchains import clang_version as version_line  # noqa: PLC0415

    try:
        return version_line(clang)
    except ToolchainError as exc:
        raise CompileError(str(exc)) from None


def _btf_digest(vmlinux: Path) -> str:
    """Hash of the BTF alone: a relink that keeps BTF keeps vmlinux.h."""
    try:
        if not is_elf(vmlinux):
            return hashlib.sha256(vmlinux.read_bytes()).hexdigest()
        with ElfFile(vmlinux) as elf:
            sec = elf.first_section(".BTF")
            if sec is None:
                raise CompileError(f"{vmlinux} has no .BTF section (CONFIG_DEBUG_INFO_BTF?)")
            return hashlib.sha256(elf.section_data(sec)).hexdigest()
    except OSError as exc:
        raise CompileError(f"cannot read {vmlinux}: {exc.strerror}") from None
    except ElfError as exc:
        raise CompileError(str(exc)) from None


def vmlinux_h(vmlinux: str | Path, bpftool: str | Path) -> Path:
    """Directory holding ``vmlinux.h`` for this kernel's BTF (ELF vmlinux or raw/sysfs BTF)."""
    vmlinux = Path(vmlinux)
    key = hashlib.sha256(f"{_btf_digest(vmlinux)}:{Path(bpftool).resolve()}".encode())
    entry = cache_dir("progs", "vmlinux-h") / key.hexdigest()[:24]
    header = entry / "vmlinux.h"
    with locked(entry):
        if header.is_file():
            touch_used(entry)
            return entry
        try:
            proc = subprocess.run([str(bpftool), "btf", "dump", "file", str(vmlinux), "format",
                                   "c"], capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CompileError(f"bpftool failed: {exc}") from None
        if proc.returncode != 0 or not proc.stdout:
            msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise CompileError(f"bpftool btf dump {vmlinux}: {msg[-1] if msg else 'failed'}")
        atomic_write(header, proc.stdout)
    return entry


def compile_prog(src: str | Path, tc: BpfToolchain, extra_cflags: tuple[str, ...] = ()) -> Path:
    """Compile one ``.c`` to a BPF object; return the cached object's path."""
    src = Path(src).resolve()
    if not src.is_file():
        raise CompileError(f"no such BPF source: {src}")
    flags = tc.flags_for(src) + list(extra_cflags)
    memo = cache_dir("progs", "memo") / (hashlib.sha256("\0".join(
        [clang_version(tc.clang), tc.clang, *flags, str(src)]).encode()).hexdigest()[:24]
        + ".json")
    key = _remembered_key(memo)
    obj_name = src.stem + ".bpf.o"
    if key is None or not (cache_dir("progs", "obj") / key / obj_name).is_file():
        key = _preprocessed_key(src, tc, flags, memo)
    entry = cache_dir("progs", "obj") / key
    obj = entry / obj_name
    with locked(entry):
        if obj.is_file():
            touch_used(entry)
            return obj
        entry.mkdir(parents=True, exist_ok=True)
        tmp = entry / f".{obj.name}.tmp"
        proc = subprocess.run([tc.clang, *flags, "-c", str(src), "-o", str(tmp)],
                              capture_output=True, timeout=300)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise CompileError(f"{src.name}: {_first_error(proc.stderr)}")
        tmp.replace(obj)
        if proc.stderr:
            atomic_write(entry / "warnings.txt", proc.stderr)
    return obj


def _preprocessed_key(src: Path, tc: BpfToolchain, flags: list[str], memo: Path) -> str:
    """The object's cache key from the preprocessed source; remember it in `memo` with
    the files clang read, unless one of them changed while it ran."""
    started = time.time_ns()
    with tempfile.TemporaryDirectory(prefix="harness-deps-") as tmp:
        deps = Path(tmp) / "deps"
        pre = subprocess.run([tc.clang, *flags, "-E", "-P", "-MD", "-MF", str(deps), str(src)],
                             capture_output=True, timeout=300)
        if pre.returncode != 0:
            raise CompileError(f"{src.name}: {_first_error(pre.stderr)}")
        inputs = _dependencies(deps.read_text()) if deps.is_file() else None
    digest = hashlib.sha256()
    for part in (clang_version(tc.clang), " ".join(flags), src.name):
        digest.update(part.encode() + b"\0")
    digest.update(pre.stdout)
    key = digest.hexdigest()[:24]
    stats = [_stat(path) for path in inputs or ()]
    if inputs and all(st is not None and st[0] < started for st in stats):
        atomic_write(memo, json.dumps({"key": key, "inputs": [
            [path, *st] for path, st in zip(inputs, stats, strict=True)]}))
    return key


def _dependencies(makefile_rule: str) -> list[str] | None:
    """The prerequisites of clang's -MD rule, None if a path needs make's escapes."""
    body = makefile_rule.replace("\\\n", " ")
    _, _, prerequisites = body.partition(": ")
    if "\\" in prerequisites or "$$" in prerequisites:
        return None
    return shlex.split(prerequisites) or None


def _stat(path: str) -> tuple[int, int] | None:
    """(mtime in ns, size) of an input, None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _remembered_key(memo: Path) -> str | None:
    """The key `memo` holds while every file it lists is as it was, else None."""
    try:
        record = json.loads(memo.read_text())
        inputs = record["inputs"]
        key = record["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for path, mtime_ns, size in inputs:
        if _stat(path) != (mtime_ns, size):
            return None
    return str(key)


def _first_error(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").splitlines()
    for line in lines:
        if "error:" in line:
            return line.strip()
    return lines[-1].strip() if lines else "compiler failed"


def toolchain_for(artifacts: object, clang: str = "clang",
                  flavor: str = DEFAULT_FLAVOR) -> BpfToolchain:
    """A toolchain from a ``harness.kbuild.artifacts.BuildArtifacts``."""
    arch = artifacts.arch  # type: ignore[attr-defined]
    header_dir = vmlinux_h(artifacts.vmlinux, artifacts.bpftool)  # type: ignore[attr-defined]
    return BpfToolchain(arch, header_dir, artifacts.libbpf_headers,  # type: ignore[attr-defined]
                        artifacts.source_tree, clang, flavor)  # type: ignore[attr-defined]
