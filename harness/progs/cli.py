"""`harness progs ...`: inspect expectations, compile programs, run them on this host."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.progs.expectations import object_specs, spec_to_json
from harness.progs.results import table, to_json

_DEFAULT_ORACLE = Path("/root/.cache/kfunc-harness/oracle")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("progs", help="BPF programs: expectations, compile, run")
    sub = parser.add_subparsers(dest="progs_command", metavar="ACTION", required=True)

    exp = sub.add_parser("expectations", help="print the test_loader spec of each program")
    exp.add_argument("objects", nargs="+", type=Path)
    exp.add_argument("--arch", default="x86_64")
    exp.set_defaults(func=_expectations)

    comp = sub.add_parser("compile", help="compile BPF C sources (cached), print object paths")
    _toolchain_args(comp)
    comp.add_argument("sources", nargs="+", type=Path)
    comp.set_defaults(func=_compile)

    run = sub.add_parser("run-local", help="load objects (or .c sources) on this host (root)")
    _toolchain_args(run)
    run.add_argument("inputs", nargs="+", type=Path, help=".bpf.o objects or .c sources")
    run.add_argument("--libbpf", type=Path, default=_DEFAULT_ORACLE / "libbpf/libbpf.so")
    run.add_argument("--only", help="run programs whose name contains this")
    run.add_argument("--json", action="store_true", help="print result records as JSON")
    run.set_defaults(func=_run_local)


def _toolchain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="x86_64")
    p.add_argument("--vmlinux", type=Path, default=Path("/sys/kernel/btf/vmlinux"),
                   help="vmlinux ELF or raw BTF that vmlinux.h is generated from")
    p.add_argument("--tree", type=Path, default=Path("/tmp/linux-7.3"), help="kernel tree")
    p.add_argument("--bpftool", type=Path, default=_DEFAULT_ORACLE / "bpftool/bpftool")
    p.add_argument("--libbpf-headers", type=Path,
                   default=_DEFAULT_ORACLE / "libbpf/root/usr/include")


def _toolchain(args: argparse.Namespace):
    from harness.progs.compile import BpfToolchain, vmlinux_h  # noqa: PLC0415

    return BpfToolchain(args.arch, vmlinux_h(args.vmlinux, args.bpftool), args.libbpf_headers,
                        args.tree)


def _expectations(args: argparse.Namespace) -> int:
    out = []
    for obj in args.objects:
        specs = object_specs(obj, args.arch)
        out.append({"object": str(obj), "externs": specs.info.externs,
                    "programs": [spec_to_json(s) for s in specs.specs]})
    print(json.dumps(out, indent=2))
    return 0


def _compile(args: argparse.Namespace) -> int:
    from harness.progs.compile import compile_prog  # noqa: PLC0415

    tc = _toolchain(args)
    for src in args.sources:
        print(compile_prog(src, tc))
    return 0


def _run_local(args: argparse.Namespace) -> int:
    from harness.progs.compile import compile_prog  # noqa: PLC0415
    from harness.progs.runner import run_objects  # noqa: PLC0415

    objects = []
    tc = None
    for item in args.inputs:
        if item.suffix == ".c":
            tc = tc or _toolchain(args)
            objects.append(compile_prog(item, tc))
        else:
            objects.append(item)
    results = run_objects(objects, args.libbpf, arch=args.arch,
                          source_tree=args.tree if args.tree.is_dir() else None, only=args.only)
    print(to_json(results) if args.json else table(results))
    return 0 if all(r.verdict in ("pass", "skip") for r in results) else 1
