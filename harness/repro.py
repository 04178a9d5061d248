"""`harness repro`: one program, one kernel, the verifier log exactly as the kernel wrote it.

What a developer pastes into a mailing-list reply: a header (kernel release and the
SHA-256 of its /sys/kernel/btf/vmlinux, arch, libbpf version, target, load flags), the
verdict against the program's own annotations, then the verifier log verbatim. The
kernel comes through the session layer (built or cached), so the same command on QEMU
and, once boards deploy kernels, on a board prints logs that can be compared line by
line.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.arch import arch_arg
from harness.errors import UsageError

_LIBBPF_VERSION = re.compile(r"^LIBBPF_(\d+\.\d+(?:\.\d+)?)\s*\{", re.M)


def libbpf_version(tree: Path) -> str:
    """The newest version section of the tree's tools/lib/bpf/libbpf.map (what the
    guest's libbpf.so was built from)."""
    try:
        text = (tree / "tools/lib/bpf/libbpf.map").read_text()
    except OSError:
        return "unknown"
    versions = [tuple(int(p) for p in v.split(".")) for v in _LIBBPF_VERSION.findall(text)]
    return ".".join(map(str, max(versions))) if versions else "unknown"


def flag_names(flags: int | None) -> str:
    from harness.progs.expectations import PROG_FLAGS  # noqa: PLC0415

    if not flags:
        return "none"
    names = [name for name, bit in PROG_FLAGS.items() if flags & bit]
    return " | ".join(names) or hex(flags)


@dataclass
class Repro:
    """One repro: the header facts and the judged programs."""

    header: dict[str, str]
    results: list[dict[str, object]] = field(default_factory=list)

    def format(self) -> str:
        out = [f"# {key}: {value}" for key, value in self.header.items()]
        for result in self.results:
            out.append(f"# program {result['object']}/{result['program']}: "
                       f"{result['verdict']} (expected {result['expected']})"
                       + (f": {result['reason']}" if result["reason"] else ""))
            out.append(f"# load flags: {flag_names(result['prog_flags'])}")  # type: ignore[arg-type]
            out += [f"# {line.rstrip()}" for line in result["libbpf_log"]]  # type: ignore[attr-defined]
            out.append(str(result["verifier_log"]).rstrip("\n"))
        return "\n".join(out)


def register(sub: argparse._SubParsersAction) -> None:
    from harness.kbuild.cli import add_build_options  # noqa: PLC0415 - kbuild is heavy
    from harness.progs.cli import add_board_options  # noqa: PLC0415

    repro = sub.add_parser(
        "repro", help="load one program on a built kernel and print its verifier log",
        description="Build the kernel (cached), boot it, load the program(s) of SOURCE and "
        "print a header (release, BTF hash, arch, libbpf, load flags), the verdict against "
        "the annotations and the verifier log as the kernel wrote it.")
    repro.add_argument("source", type=Path, metavar="SOURCE_OR_OBJ",
                       help="a BPF C source (selftest style) or an object built from one")
    repro.add_argument("--prog", help="only the program with this exact name")
    repro.add_argument("--arch", default=None, type=arch_arg,
                       help="x86_64 or arm64 (default x86_64, or the --board's)")
    add_build_options(repro)
    add_board_options(repro)
    repro.add_argument("--timeout", type=float, default=60.0, help="per-program timeout (s)")
    repro.add_argument("--json", action="store_true", help="print the repro as JSON")
    repro.set_defaults(func=cmd_repro)


def cmd_repro(args: argparse.Namespace) -> int:
    from harness import session  # noqa: PLC0415
    from harness.kbuild.cli import request_from_args  # noqa: PLC0415
    from harness.progs.cli import lab_board, target_for  # noqa: PLC0415
    from harness.progs.suite import run_arch  # noqa: PLC0415

    if not args.source.is_file():
        raise UsageError(f"no such BPF source: {args.source}")
    arch = args.arch or (lab_board(args.lab, args.board).arch if args.board else "x86_64")
    builds, target, options = target_for(args, [request_from_args(args, arch)])
    request = session.RunRequest(builds=tuple(builds), target=target,
                                 target_options=options, sources=(args.source,),
                                 only=args.prog, timeout=args.timeout)
    artifacts = session.build(request.builds[0], quiet=args.json)
    with session.open_for(request, artifacts) as target:
        ident = target.identity()
        run = run_arch(artifacts, [args.source], only=args.prog, timeout=args.timeout,
                       target=target)
    results = [r for r in run.results if args.prog is None or r.program == args.prog]
    if not results:
        raise UsageError(f"no program {args.prog!r} in {args.source}" if args.prog
                         else f"no programs in {args.source}")
    repro = Repro({
        "harness repro": str(args.source),
        "kernel": f"{ident.release} ({artifacts.arch})",
        "btf sha256": ident.btf_sha256,
        "libbpf": libbpf_version(Path(artifacts.source_tree)),
        "target": run.target,
        "toolchain": ", ".join(f"{artifacts.toolchain[k]}" if k == "pahole" else f"btfids {v}"
                               for k, v in artifacts.toolchain.items()
                               if k in ("pahole", "btfids")),
    }, [r.to_json() for r in results])
    if run.error:
        repro.header["run error"] = run.error
    print(json.dumps({"header": repro.header, "results": repro.results}, indent=2)
          if args.json else repro.format())
    return 1 if run.error or any(r.failed for r in results) else 0
