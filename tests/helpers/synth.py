"""Small synthetic inputs for resolve_btfids: a BTF blob and an ELF assembled with binutils.

Why synthetic inputs next to real builds: they reach what real kernels rarely
show (a big-endian target, 32-bit ELF, sets with duplicate and unresolved
entries, legacy `_impl` functions, arena kfuncs, wrong set sizes) in
milliseconds, and both the C tool and the Python one can run on them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.btf import INT_SIGNED, Btf
from harness.kfunc_abi import (
    KF_ARENA_ARG2,
    KF_ARENA_RET,
    KF_FASTCALL,
    KF_IMPLICIT_ARGS,
    KF_SLEEPABLE,
)

ASSEMBLERS = {
    ("x86_64", "little"): ["as", "--64"],
    ("i386", "little"): ["as", "--32"],
    ("arm64", "little"): ["aarch64-linux-gnu-as", "-EL"],
    ("arm64", "big"): ["aarch64-linux-gnu-as", "-EB"],
}


def have_assembler(arch: str, endian: str) -> bool:
    return shutil.which(ASSEMBLERS[(arch, endian)][0]) is not None


def make_btf(endian: str = "little", *, kfunc_tags: bool = False) -> Btf:
    """BTF with kfuncs of every flavour the transformer edits, plus the BTF_ID targets."""
    b = Btf(endian=endian)
    i = b.add_int("int", 4, INT_SIGNED)
    aux = b.add_struct("bpf_prog_aux", 8)
    b.add_field("id", i, 0)
    meta = b.add_struct("btf_struct_meta", 4)
    b.add_field("x", i, 0)
    task = b.add_struct("task_struct", 4)
    b.add_field("pid", i, 0)
    b.add_typedef("pid_t", i)
    un = b.add_union("thread_union", 4)
    b.add_field("a", i, 0)
    p_aux = b.add_ptr(aux)
    p_meta = b.add_ptr(b.add_const(meta))
    p_int = b.add_ptr(i)
    p_task = b.add_ptr(task)
    funcs = {}

    def func(name: str, ret: int, params: list[tuple[str, int]]) -> int:
        proto = b.add_func_proto(ret)
        for pname, ptype in params:
            b.add_func_param(pname, ptype)
        fid = b.add_func(name, 1, proto)
        funcs[name] = fid
        return fid

    func("bpf_wq_set_callback", i, [("wq", p_int), ("flags", i), ("aux", p_aux)])
    func("bpf_obj_new", p_int, [("local_type_id", i), ("meta", p_meta)])
    func("bpf_legacy", i, [("x", i), ("aux", p_aux)])
    func("bpf_legacy_impl", i, [("x", i), ("aux", p_aux)])
    func("bpf_arena_alloc", p_int, [("p", p_int), ("q", p_int), ("r__arena", p_int)])
    func("bpf_fast", i, [("x", i)])
    func("bpf_sleepy", i, [("t", p_task)])
    func("vfs_close", i, [("t", p_task)])
    func("not_a_kfunc", i, [])
    b.add_decl_tag("some_tag", funcs["bpf_wq_set_callback"], -1)
    b.add_decl_attr("an_attr", funcs["bpf_wq_set_callback"], 1)
    if kfunc_tags:
        for name in ("bpf_wq_set_callback", "bpf_obj_new", "bpf_legacy", "bpf_arena_alloc",
                     "bpf_fast", "bpf_sleepy"):
            b.add_decl_tag("bpf_kfunc", funcs[name], -1)
    _ = (un, p_task)
    return b


def btf_id(kind: str, name: str, n: int, flags: int | None = None) -> str:
    sym = f"__BTF_ID__{kind}__{name}__{n}"
    extra = f".long {flags}\n" if flags is not None else ""
    return (f".local {sym}\n.type {sym}, STT_OBJECT\n.size {sym}, 4\n{sym}:\n.zero 4\n{extra}")


def set8(name: str, entries: list[tuple[str, int]], flags: int = 1, n0: int = 100,
         size: int | None = None) -> str:
    sym = f"__BTF_ID__set8__{name}"
    body = "".join(btf_id("func", fn, n0 + k, fl) for k, (fn, fl) in enumerate(entries))
    size_expr = str(size) if size is not None else f". - {sym}"
    return (f".local {sym}\n.type {sym}, STT_OBJECT\n{sym}:\n.zero 4\n.long {flags}\n"
            f"{body}.size {sym}, {size_expr}\n")


def set4(name: str, entries: list[tuple[str, str]], n0: int = 200) -> str:
    sym = f"__BTF_ID__set__{name}"
    body = "".join(btf_id(kind, nm, n0 + k) for k, (kind, nm) in enumerate(entries))
    return (f".local {sym}\n.type {sym}, STT_OBJECT\n{sym}:\n.zero 4\n{body}"
            f".size {sym}, . - {sym}\n")


def default_asm(*, set8_size: int | None = None, sleepable_conflict: bool = False,
                version: str | None = "7.3.4") -> str:
    """A .BTF_ids section like a kernel's: lists, a set, kfunc sets, a plain set8."""
    parts = [".section .BTF_ids,\"a\"\n"]
    parts.append(btf_id("struct", "task_struct", 1) + btf_id("func", "vfs_close", 2)
                 + btf_id("typedef", "pid_t", 3) + btf_id("union", "thread_union", 4)
                 + btf_id("struct", "task_struct", 5) + btf_id("func", "missing_func", 6))
    parts.append(set4("sorted_set", [("func", "vfs_close"), ("struct", "task_struct"),
                                     ("func", "bpf_fast"), ("typedef", "pid_t")]))
    parts.append(set8("kfuncs_a", [
        ("bpf_wq_set_callback", KF_IMPLICIT_ARGS),
        ("bpf_obj_new", KF_IMPLICIT_ARGS | 1),
        ("bpf_legacy", KF_IMPLICIT_ARGS),
        ("bpf_arena_alloc", KF_ARENA_RET | KF_ARENA_ARG2),
        ("bpf_fast", KF_FASTCALL),
        ("bpf_sleepy", 0),
    ], size=set8_size))
    parts.append(set8("kfuncs_b", [("bpf_sleepy", KF_SLEEPABLE if sleepable_conflict else 0),
                                   ("bpf_fast", KF_FASTCALL)], n0=300))
    parts.append(set8("not_kfuncs", [("vfs_close", 7), ("bpf_fast", 9)], flags=0, n0=400))
    if version:
        parts.append(f".section .rodata,\"a\"\n.globl linux_banner\n.type linux_banner, "
                     f"STT_OBJECT\nlinux_banner:\n.asciz \"Linux version {version} (synth)\"\n"
                     f".size linux_banner, . - linux_banner\n")
    return "".join(parts)


def assemble(asm: str, out: Path, arch: str = "x86_64", endian: str = "little") -> Path:
    src = out.with_suffix(".s")
    src.write_text(asm)
    subprocess.run([*ASSEMBLERS[(arch, endian)], "-o", str(out), str(src)], check=True,
                   capture_output=True)
    return out
