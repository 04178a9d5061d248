"""`harness btf ...`: copy (round trip), dump, kfuncs and diff."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from harness.btf.btf import Btf
from harness.btf.dump import dump
from harness.btf.errors import BTFError
from harness.btf.kernel_rules import KERNEL_7_3, RULES, KernelReject, Rules, rules_for
from harness.btf.load import btf_bytes, load, write_atomic
from harness.btf.validate import check_kernel
from harness.elf import EM_BPF, ElfError, ElfFile


# Modules adding `harness btf <cmd>`: each exposes register(sub) taking the btf
# sub-subparsers (like harness/cli.py's STAGE_MODULES); missing ones are skipped.
def cmd_copy(args: argparse.Namespace) -> int:
    """Strict unless --lenient: what the chosen kernel would refuse is refused here too,
    on the way in and, when the bytes changed, on the way out."""
    rules = None if args.lenient else _rules(args.kernel)
    try:
        btf = load(args.input, base=args.base, strict=rules)
    except BTFError as exc:
        if isinstance(exc.__cause__, KernelReject) and _is_bpf_object(args.input):
            raise BTFError(f"{exc} (a BPF object's BTF is what libbpf fixes up before the "
                           "kernel sees it: --lenient reads it as it is)") from None
        raise
    out = btf.to_bytes()
    if rules is not None and btf.kernel_views and out != btf_bytes(args.input):
        check_kernel(out, btf.base, rules=rules)
    write_atomic(args.output, out)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    """Lenient unless --strict: shows what can be read, then notes a kernel reject."""
    rules = _rules(args.kernel)
    btf = load(args.file, base=args.base, strict=rules if args.strict else None)
    out = sys.stdout.buffer
    out.write(dump(btf))
    out.flush()
    if not args.strict:
        _kernel_note(args.file, btf, rules)
    return 0


def _is_bpf_object(path: str) -> bool:
    try:
        with ElfFile(path) as elf:
            return elf.e_machine == EM_BPF
    except (OSError, ElfError):
        return False


def _rules(name: str) -> Rules:
    """--kernel: a rules name from kernel_rules.RULES, or "host" for the running kernel."""
    if name == "host":
        return rules_for(os.uname().release)
    return RULES[name]


def _kernel_note(path: str, btf: Btf, rules: Rules) -> None:
    """Lenient readers still say when the kernel would refuse what they just showed."""
    try:
        check_kernel(btf.to_bytes(), btf.base, rules=rules)
    except BTFError as exc:
        print(f"harness: note: {path}: kernel {rules.name} would reject it: {exc}",
              file=sys.stderr)


def cmd_kfuncs(args: argparse.Namespace) -> int:
    """Every kfunc with its BPF-visible and kernel (_impl) prototypes, flags, tags, arena.

    With --lint: exit 1 when a kfunc's flags contradict its BTF (harness.btf.kfunc_lint).
    """
    import fnmatch

    from harness.btf.kfuncs import find_kfuncs, format_kfunc, is_elf, load_for_kfuncs, read_set8s

    btf = load_for_kfuncs(args.file, args.base)
    kfuncs = find_kfuncs(btf, read_set8s(args.file) if is_elf(args.file) else None)

    def wanted(name: str) -> bool:
        return not args.names or any(fnmatch.fnmatchcase(name, p) for p in args.names)

    if args.lint:
        from harness.btf.kfunc_lint import lint_kfuncs
        from harness.elf import kernel_version_of

        kernel = kernel_version_of(args.file) if is_elf(args.file) else None
        report = lint_kfuncs(btf, kfuncs, wanted, kernel)
        _emit(args.json, report.to_json, report.format)
        return 1 if report.findings else 0
    kfuncs = [k for k in kfuncs if wanted(k.name)]
    if args.json:
        json.dump([k.to_json() for k in kfuncs], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for k in kfuncs:
            print(format_kfunc(k))
        print(f"{len(kfuncs)} kfunc(s)")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """Exit 0 when A and B are semantically equal, 1 when not (2 on bad input)."""
    from harness.btf.diff import diff_btf, load_side

    rules = _rules(args.kernel)
    paths = (args.a, args.b)
    (a, ka), (b, kb) = (
        load_side(path, base, strict=rules if args.strict else None)
        for path, base in zip(paths, (args.base_a or args.base, args.base_b or args.base),
                              strict=True))
    result = diff_btf(a, b, ka, kb)
    _emit(args.json, result.to_json, result.format)
    if not args.strict:
        for path, btf in zip(paths, (a, b), strict=True):
            _kernel_note(path, btf, rules)
    return 0 if result.equal else 1


def _emit(as_json: bool, data: Callable[[], object], text: Callable[[], str]) -> None:
    """A command's result: JSON (indent 1) or its text form."""
    if as_json:
        json.dump(data(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(text())


def _add_kernel(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--kernel", choices=[*RULES, "host"], default=KERNEL_7_3.name,
                   help=f"{what} by this kernel's BTF checker (kernel/bpf/btf.c as of that "
                        "release; host: the running kernel's); default %(default)s")


def _add_base(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", "-B", metavar="BASE",
                   help="base BTF (vmlinux) for split BTF such as a module; "
                        "/sys/kernel/btf/<module> defaults to /sys/kernel/btf/vmlinux")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("btf", help="read, check, write and inspect BTF")
    sub = parser.add_subparsers(dest="btf_command", metavar="BTF_COMMAND", required=True)

    p = sub.add_parser("copy", help="parse, validate and write BTF back as raw BTF",
                       description="Read BTF from a raw file, an ELF's .BTF section or "
                       "/sys/kernel/btf/*, validate it and write it out as raw BTF "
                       "(atomically). Unmodified input comes out byte for byte. Strict by "
                       "default: BTF the kernel's checker would refuse (bpf(BPF_BTF_LOAD) "
                       "rules) is refused with the kernel's reason.")
    p.add_argument("input")
    p.add_argument("output")
    _add_base(p)
    _add_kernel(p, "refuse what is refused")
    p.add_argument("--lenient", action="store_true",
                   help="only refuse what cannot be read (BTF from a broken tool, to look at)")
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser("dump", help="list types like `bpftool btf dump file X format raw`",
                       description="List every type that can be read; a note on stderr says "
                       "when the kernel would refuse the BTF, and by which rule.")
    p.add_argument("file")
    _add_base(p)
    _add_kernel(p, "say what would be refused")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) what the kernel would refuse, instead of a note")
    p.set_defaults(func=cmd_dump)

    p = sub.add_parser("kfuncs", help="list kfuncs: prototypes, _impl, flags, tags, arena",
                       description="List every kfunc: FUNCs tagged bpf_kfunc and, for an ELF, "
                       "members of its BTF_SET8_KFUNCS sets in .BTF_ids (which also give the "
                       "KF_* flags). Shows the BPF-visible prototype as C, the kernel "
                       "prototype of <name>_impl where there is one, decl tags and "
                       "address_space(1) arena attributes. A module ELF with a .BTF.base "
                       "section is read on it.")
    p.add_argument("file", help="ELF (vmlinux, .ko), raw BTF or /sys/kernel/btf/*")
    p.add_argument("names", nargs="*", metavar="NAME", help="only kfuncs matching these globs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--lint", action="store_true",
                   help="check each kfunc's KF_* flags against its prototype and decl tags; "
                        "exit 1 on findings (rules needing flags are skipped without .BTF_ids)")
    _add_base(p)
    p.set_defaults(func=cmd_kfuncs)

    p = sub.add_parser("diff", help="semantic differences of two BTFs (exit 1 if different)",
                       description="Compare named types (by kind and name, described "
                       "without type ids) and kfunc prototypes, _impl, flags, tags and "
                       "arena attributes. Exit 0 when equal, 1 when different, 2 on bad input.")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_base(p)
    p.add_argument("--base-a", metavar="BASE", help="base BTF for A only")
    p.add_argument("--base-b", metavar="BASE", help="base BTF for B only")
    _add_kernel(p, "note (stderr) what would be refused")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) input the kernel would refuse, instead of a note")
    p.set_defaults(func=cmd_diff)

