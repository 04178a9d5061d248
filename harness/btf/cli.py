"""`harness btf ...`: copy (round trip) and dump; `kfuncs`/`diff` register alongside."""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.btf.dump import dump
from harness.btf.load import load, write_atomic

# Modules adding `harness btf <cmd>`: each exposes register(sub) taking the btf
# sub-subparsers (like harness/cli.py's STAGE_MODULES); missing ones are skipped.
BTF_COMMAND_MODULES = (
    "harness.btf.cli_kfuncs",
    "harness.btf.cli_diff",
)


def cmd_copy(args: argparse.Namespace) -> int:
    btf = load(args.input, base=args.base)
    write_atomic(args.output, btf.to_bytes())
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    btf = load(args.file, base=args.base)
    out = sys.stdout.buffer
    out.write(dump(btf))
    out.flush()
    return 0


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
                       "(atomically). Unmodified input comes out byte for byte.")
    p.add_argument("input")
    p.add_argument("output")
    _add_base(p)
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser("dump", help="list types like `bpftool btf dump file X format raw`")
    p.add_argument("file")
    _add_base(p)
    p.set_defaults(func=cmd_dump)

    for name in BTF_COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
