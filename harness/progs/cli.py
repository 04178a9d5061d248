"""`harness run` (build, boot, judge the suite per arch) and `harness progs ...` (inspect,
compile, run on this host)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.arch import arch_arg, arch_list
from harness.cache import cache_root
from harness.errors import UsageError
from harness.progs.expectations import object_specs, spec_to_json
from harness.progs.results import table, to_json
from harness.targets.vng import GUEST_CPUS

if TYPE_CHECKING:
    from harness.progs.reference import Pair

_DEFAULT_ORACLE = cache_root() / "oracle"


class RunUsageError(UsageError):
    """A bad `harness run` option (unknown arch, missing source)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_run(subparsers)
    _register_selftests(subparsers)
    parser = subparsers.add_parser("progs", help="BPF programs: expectations, compile, run")
    sub = parser.add_subparsers(dest="progs_command", metavar="ACTION", required=True)

    exp = sub.add_parser("expectations", help="print the test_loader spec of each program")
    exp.add_argument("objects", nargs="+", type=Path)
    exp.add_argument("--arch", default="x86_64", type=arch_arg)
    exp.set_defaults(func=_expectations)

    comp = sub.add_parser("compile", help="compile BPF C sources (cached), print object paths")
    _toolchain_args(comp)
    comp.add_argument("--json", action="store_true", help="print source/object pairs as JSON")
    comp.add_argument("sources", nargs="+", type=Path)
    comp.set_defaults(func=_compile)

    run = sub.add_parser("run-local", help="load objects (or .c sources) on this host (root)")
    _toolchain_args(run)
    run.add_argument("inputs", nargs="+", type=Path, help=".bpf.o objects or .c sources")
    run.add_argument("--libbpf", type=Path, default=_DEFAULT_ORACLE / "libbpf/libbpf.so")
    run.add_argument("--only", help="run programs whose name contains this")
    run.add_argument("--json", action="store_true", help="print result records as JSON")
    run.set_defaults(func=_run_local)


    from harness.kbuild.cli import add_build_options  # noqa: PLC0415 - kbuild is heavy

    watch = sub.add_parser(
        "watch", help="boot once, re-judge BPF sources on every save (Ctrl-C stops)",
        description="Build (cached) and boot the kernel for --arch once, then compile and "
        "judge the given sources now and each time one of them changes, on the same guest. "
        "A guest that dies is booted again for the next round.")
    watch.add_argument("sources", nargs="+", type=Path, metavar="FILE.c")
    watch.add_argument("--arch", default="x86_64", type=arch_arg)
    add_build_options(watch)
    add_target_option(watch)
    add_clang_option(watch)
    watch.add_argument("--only", help="judge only programs whose name contains this")
    watch.add_argument("--timeout", type=float, default=60.0, help="per-program timeout (s)")
    watch.add_argument("-v", "--verbose", action="store_true",
                       help="print the verifier log of each failure")
    watch.set_defaults(func=_watch)


def _toolchain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="x86_64", type=arch_arg)
    p.add_argument("--vmlinux", type=Path, default=Path("/sys/kernel/btf/vmlinux"),
                   help="vmlinux ELF or raw BTF that vmlinux.h is generated from")
    p.add_argument("--tree", type=Path, default=None,
                   help="kernel tree whose selftests headers programs include")
    p.add_argument("--bpftool", type=Path, default=_DEFAULT_ORACLE / "bpftool/bpftool")
    p.add_argument("--libbpf-headers", type=Path,
                   default=_DEFAULT_ORACLE / "libbpf/root/usr/include")
    add_clang_option(p)


def add_clang_option(parser: argparse.ArgumentParser) -> None:
    """--clang/--flavor: which compiler builds the BPF programs and with which of the
    tree's test_progs flavors' flags (both head every result)."""
    from harness.kbuild.toolchains import CLANG_RELEASES, DEFAULT_CLANG  # noqa: PLC0415
    from harness.progs.makeflags import DEFAULT_FLAVOR  # noqa: PLC0415

    parser.add_argument("--clang", default=DEFAULT_CLANG, metavar="WHICH",
                        help="BPF compiler: system (clang on PATH), a pinned Debian release "
                        f"({', '.join(CLANG_RELEASES)}; fetched into the cache once) or a path "
                        f"(default: {DEFAULT_CLANG})")
    parser.add_argument("--flavor", default=DEFAULT_FLAVOR, metavar="NAME",
                        help="compile as the tree's test_progs flavor NAME does: default "
                        "(-mcpu=v3), no_alu32 (v2), cpuv4 (v4); flags from the tree's "
                        "selftests Makefile")


def _toolchain(args: argparse.Namespace):
    from harness.progs.compile import BpfToolchain, vmlinux_h  # noqa: PLC0415

    if args.tree is None or not args.tree.is_dir():
        raise RunUsageError("compiling BPF C needs --tree: a kernel tree with "
                            "tools/testing/selftests/bpf (e.g. from `harness build --json`)")
    from harness.kbuild.toolchains import select_clang  # noqa: PLC0415

    return BpfToolchain(args.arch, vmlinux_h(args.vmlinux, args.bpftool), args.libbpf_headers,
                        args.tree, str(select_clang(args.clang).path), args.flavor)


def _expectations(args: argparse.Namespace) -> int:
    out = []
    for obj in args.objects:
        specs = object_specs(obj, args.arch)
        out.append({"object": str(obj), "externs": specs.info.externs,
                    "programs": [spec_to_json(s) for s in specs.specs]})
    print(json.dumps(out, indent=2))
    return 0


def _register_selftests(subparsers: argparse._SubParsersAction) -> None:
    from harness.kbuild.cli import add_build_options  # noqa: PLC0415 - kbuild is heavy

    parser = subparsers.add_parser(
        "selftests", help="the tree's own test_loader programs: list them, compare our "
        "verdicts with its test_progs")
    sub = parser.add_subparsers(dest="selftests_command", metavar="ACTION", required=True)
    listing = sub.add_parser(
        "list", help="list the tree's test_loader programs and what drives the rest",
        description="Read the tree's tools/testing/selftests/bpf/prog_tests/*.c: the program "
        "files run through RUN_TESTS/RUN are what `harness run --selftests` judges; every "
        "other progs/*.c is listed with the prog_tests file that drives it (not judged).")
    listing.add_argument("pattern", nargs="?", default=None, metavar="GLOB",
                         help="only program files whose name matches (e.g. 'verifier_*')")
    add_build_options(listing)  # --tree/--kernel/--patches choose the tree (never built)
    listing.add_argument("--all", action="store_true", help="list the files not judged too")
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    listing.set_defaults(func=_selftests)

    compare = sub.add_parser(
        "compare", help="judge the corpus, then run the tree's test_progs on the same tests "
        "in the same guest, and print every program where the verdicts differ",
        description="Build the kernel (cached) and the tree's own test_progs with the same "
        "clang against it (cached), boot one guest per arch, judge the test_loader "
        "programs matching GLOB, run test_progs -a on their tests, and pair the verdicts "
        "subtest by subtest. Exit 1 on any disagreement.")
    compare.add_argument("pattern", nargs="?", default="*", metavar="GLOB",
                         help="program files whose name matches (default: all)")
    compare.add_argument("--arch", default="x86_64",
                         help="comma-separated: x86_64,arm64 (default %(default)s)")
    add_build_options(compare)
    add_clang_option(compare)
    compare.add_argument("--timeout", type=float, default=60.0,
                         help="per-program timeout (s)")
    compare.add_argument("--memory", default="1G", help="guest memory (default %(default)s)")
    compare.add_argument("--no-kvm", action="store_true", help="force TCG")
    compare.add_argument("--json", action="store_true", help="print the pairs as JSON")
    compare.set_defaults(func=_compare, only=None, cpus=GUEST_CPUS, target="qemu")


def _compare(args: argparse.Namespace) -> int:
    from harness import session  # noqa: PLC0415

    args.selftests = args.pattern
    request = run_request(args, parse_arches(args.arch), [])
    say = _quiet if args.json else _say
    comparisons = session.compare_selftests(request, say=say, quiet_builds=args.json)
    if args.json:
        print(json.dumps([{
            "arch": c.run.arch, "boot_s": c.run.boot_s, "suite_s": c.run.suite_s,
            "restarts": len(c.run.restarts), "test_progs_s": c.test_progs_s, "error": c.error,
            "test_progs_crashed": c.crashed,
            "crash_log": str(c.crash_log) if c.crash_log else None,
            "results": [r.to_json() for r in c.run.results],
            "pairs": [{"test": p.test, "subtest": p.subtest, "agrees": p.agrees,
                       "ours": p.ours.verdict if p.ours else None,
                       "theirs": p.theirs.result if p.theirs else None,
                       "theirs_log": p.theirs.log if p.theirs and not p.agrees else None,
                       "theirs_test": p.theirs_test, "unjudged": p.unjudged}
                      for p in c.pairs]} for c in comparisons], indent=2))
    for c in comparisons if not args.json else ():
        print(table(c.run.results))
        print(c.run.header())
        if c.error:
            print(f"{c.run.arch}: {c.error}")
        for item, why in c.crashed.items():
            print(f"  test_progs took the kernel down under {item}: {why[:300]}")
        if c.crash_log is not None:
            print(f"  the consoles of those kernels: {c.crash_log}")
        for pair in c.disagreements:
            print("\n".join(_disagreement(pair)))
        both = [p for p in c.pairs if p.ours is not None and p.theirs is not None]
        only_ours = sum(1 for p in c.pairs if p.theirs is None)
        only_theirs = sum(1 for p in c.pairs if p.ours is None)
        for line in _one_sided(c.pairs):
            print(line)
        print(f"{c.run.arch}: {len(both) - len(c.disagreements)}/{len(both)} subtests agree; "
              f"{only_ours} only ours, {only_theirs} only test_progs'; test_progs took "
              f"{c.test_progs_s:.0f} s (built at {c.reference.directory}, log "
              f"{c.reference.log})")
    return 1 if any(c.disagreements or c.error for c in comparisons) else 0


LOG_TAIL = 20  # lines of each side's log under a disagreement (--json has them whole)


def _disagreement(pair: Pair) -> list[str]:
    """One disagreement: both verdicts, our reason, and the tail of each side's log."""
    ours, theirs = pair.ours, pair.theirs
    assert ours is not None and theirs is not None
    out = [f"  {pair.test}/{pair.subtest}: ours {ours.verdict}, test_progs {theirs.result}"
           + (f" ({ours.reason[:120]})" if ours.reason else "")]
    for label, log in (("our verifier log", ours.verifier_log), ("test_progs' log", theirs.log)):
        lines = [ln for ln in log.splitlines() if ln.strip()][-LOG_TAIL:]
        if lines:
            out.append(f"    {label} (last {len(lines)} lines):")
            out += [f"      {ln}" for ln in lines]
    return out


def _one_sided(pairs: list[Pair], shown: int = 3) -> list[str]:
    """Subtests only one side judged, grouped by test: which test, how many, a few names
    (--json lists them all)."""
    lines = []
    for side, label in (("theirs", "only ours"), ("ours", "only test_progs'")):
        by_test: dict[str, list[Pair]] = {}
        for pair in pairs:
            if getattr(pair, side) is None:
                by_test.setdefault(pair.test, []).append(pair)
        for test, some in sorted(by_test.items()):
            names = [p.subtest for p in some]
            more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
            whole, unjudged = some[0].theirs_test, some[0].unjudged
            why = (f" [test_progs: the whole test {whole}, no such subtest]" if whole else
                   f" [test_progs {unjudged}]" if unjudged else "")
            lines.append(f"  {label}: {test} ({len(names)}){why}: "
                         f"{', '.join(names[:shown])}{more}")
    return lines


def _selftests(args: argparse.Namespace) -> int:
    from harness.kbuild.build import Builder, make_plan  # noqa: PLC0415
    from harness.kbuild.cli import request_from_args  # noqa: PLC0415
    from harness.progs.corpus import discover  # noqa: PLC0415

    plan = make_plan(request_from_args(args, "x86_64"))
    tree = Path(Builder(plan, quiet=True).prepared_source().path)  # fetched, never built
    corpus = discover(tree).select(args.pattern)
    if args.json:
        print(json.dumps([{"name": e.name, "source": str(e.source), "judged": e.judged,
                           "test": e.test,
                           "driver": e.driver, "reason": e.reason} for e in corpus.entries],
                         indent=2))
        return 0
    for entry in corpus.entries if args.all else corpus.judged:
        print(entry.describe())
    print(f"{tree}: {len(corpus.judged)} program files judged by test_loader, "
          f"{len(corpus.not_judged)} not judged (--all lists them with why)")
    return 0


def _compile(args: argparse.Namespace) -> int:
    from harness.progs.compile import compile_prog  # noqa: PLC0415

    tc = _toolchain(args)
    objects = [compile_prog(src, tc) for src in args.sources]
    if args.json:
        print(json.dumps([{"source": str(src), "object": str(obj)}
                          for src, obj in zip(args.sources, objects, strict=True)], indent=2))
    else:
        for obj in objects:
            print(obj)
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
    host_btf = Path("/sys/kernel/btf")  # the running kernel's, and a loaded bpf_testmod's
    kernel_files = [f for f in (host_btf / "vmlinux", host_btf / "bpf_testmod") if f.exists()]
    results = run_objects(objects, args.libbpf, arch=args.arch, kernel_files=kernel_files,
                          only=args.only)
    print(to_json(results) if args.json else table(results))
    return 0 if not any(r.failed for r in results) else 1


def _watch(args: argparse.Namespace) -> int:
    from harness import session  # noqa: PLC0415
    from harness.progs.watch import Round, watch  # noqa: PLC0415

    for src in args.sources:
        if not src.is_file():
            raise RunUsageError(f"no such BPF source: {src}")
    from harness.kbuild.toolchains import select_clang  # noqa: PLC0415

    request = run_request(args, [args.arch], args.sources)
    compiler = select_clang(args.clang)
    artifacts = session.build(request.builds[0])

    def report(result: Round) -> None:
        stamp = time.strftime("%H:%M:%S")
        if result.error:
            print(f"[{stamp}] {result.error}", flush=True)
        else:
            print(table(result.results))
            if args.verbose:
                for r in result.results:
                    if r.failed:
                        print(r.failure_text())
            bad = sum(r.failed for r in result.results)
            print(f"[{stamp}] {len(result.results) - bad}/{len(result.results)} ok, "
                  f"verdict in {result.seconds:.1f} s; waiting for a save (Ctrl-C stops)",
                  flush=True)

    print(f"harness: booting {artifacts.boot_image} ({args.arch}); programs built with "
          f"{compiler.version}", flush=True)
    with session.open_for(request, artifacts) as target:
        print(f"harness: guest up in {target.boot_seconds:.1f} s", flush=True)
        watch(artifacts, target, [s.resolve() for s in args.sources], report,
              only=args.only, timeout=args.timeout, clang=str(compiler.path),
              flavor=args.flavor)
    return 0


# ---- harness run --------------------------------------------------------------------

def _register_run(subparsers: argparse._SubParsersAction) -> None:
    from harness.kbuild.cli import add_build_options  # noqa: PLC0415 - kbuild is heavy

    run = subparsers.add_parser(
        "run", help="build (cached), boot and judge the BPF program suite per arch",
        description="Build the kernel for each arch (the artifact cache makes repeats "
        "cheap), boot it under QEMU, load every program of bpf_progs/ and the tree's "
        "kfunc_implicit_args.c, wq.c, wq_failures.c and arena_kfunc_jit.c (those it has: "
        "runner.TREE_SUITE), and print program x arch: verdict, expected, time. Exit 1 if "
        "any program failed.")
    run.add_argument("--arch", default=None,
                     help="comma-separated: x86_64,arm64 (default x86_64, or the --board's)")
    add_build_options(run)
    add_target_option(run)
    add_clang_option(run)
    run.add_argument("--prog", action="append", type=Path, default=[], metavar="FILE.c",
                     help="run only these BPF sources (repeatable; default: the suite)")
    run.add_argument("--selftests", nargs="?", const="*", metavar="GLOB",
                     help="judge the tree's own test_loader programs (those prog_tests/ runs "
                     "through RUN_TESTS/RUN) whose name matches GLOB (default all) instead of "
                     "the suite; a file that does not compile is that file's error result")
    run.add_argument("--only", help="run only programs whose name contains this")
    run.add_argument("--timeout", type=float, default=60.0, help="per-program timeout (s)")
    run.add_argument("--memory", default="1G", help="guest memory (default %(default)s)")
    run.add_argument("--cpus", type=int, default=GUEST_CPUS,
                     help="guest vCPUs; the agent runs a program per vCPU (default %(default)s)")
    run.add_argument("--no-kvm", action="store_true", help="force TCG")
    run.add_argument("--json", action="store_true", help="print result records as JSON")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print the verifier log and console excerpt of each failure")
    add_list_options(run)
    run.set_defaults(func=_run)


def add_list_options(parser: argparse.ArgumentParser, *, retry: bool = False) -> None:
    """--denylist/--retry: how run and matrix take BPF CI's lists and a second try."""
    parser.add_argument("--denylist", type=Path, metavar="DIR",
                        help="a directory of BPF CI lists (DENYLIST, DENYLIST.<uname -m>, "
                        "ALLOWLIST): denied programs are skips naming their entry")
    parser.add_argument("--retry", action=argparse.BooleanOptionalAction, default=retry,
                        help="run each failure once more; a pass then is reported as flaky "
                        f"(default {'on' if retry else 'off'})")


def add_target_option(parser: argparse.ArgumentParser) -> None:
    from harness.targets.registry import kernel_targets  # noqa: PLC0415

    names = kernel_targets()
    parser.add_argument("--target", default="qemu", choices=names,
                        help="where the built kernel runs (default %(default)s)")
    add_board_options(parser)


def parse_arches(text: str) -> list[str]:
    """`--arch x86_64,arm64` (any spelling) as harness names, in order."""
    return [a.name for a in arch_list(text)]


def run_request(args: argparse.Namespace, arches: list[str], sources: list[Path]):  # noqa: ANN201
    """The session request `harness run` / `progs watch` arguments describe."""
    from harness.kbuild.cli import request_from_args  # noqa: PLC0415
    from harness.session import RunRequest  # noqa: PLC0415

    builds, target, options = target_for(args, [request_from_args(args, a) for a in arches])
    return RunRequest(builds=tuple(builds), target=target, target_options=options,
                      sources=tuple(sources), only=args.only, timeout=args.timeout,
                      memory=getattr(args, "memory", "1G"), cpus=getattr(args, "cpus", GUEST_CPUS),
                      kvm=False if getattr(args, "no_kvm", False) else None,
                      denylist=getattr(args, "denylist", None),
                      retry=getattr(args, "retry", False), clang=args.clang,
                      flavor=args.flavor,
                      selftests=getattr(args, "selftests", None))


def add_board_options(parser: argparse.ArgumentParser) -> None:
    """--board/--lab/--no-deploy: run, watch and repro reach a lab board the same way."""
    from harness.targets.inventory import add_lab_option  # noqa: PLC0415
    parser.add_argument("--board", metavar="NAME",
                        help="run on this lab board (implies --target board): the kernel is "
                        "built with the board's kconfig, kexec'd and verified by BTF hash")
    add_lab_option(parser, "the lab inventory --board is read from")
    parser.add_argument("--no-deploy", action="store_true",
                        help="with --board: run on the kernel the board runs now")


def target_for(args: argparse.Namespace, builds: list):  # noqa: ANN201
    """(builds, target name, target options) for --target/--board: a board's builds get
    its kconfig fragments, and its arch must be the builds'."""
    if not getattr(args, "board", None):
        if getattr(args, "no_deploy", False):
            raise RunUsageError("--no-deploy goes with --board")
        return builds, getattr(args, "target", "qemu"), {}
    board = lab_board(args.lab, args.board)
    arches = [b.arch for b in builds]
    if arches != [board.arch]:
        raise RunUsageError(f"board {board.name!r} is {board.arch}: --arch "
                            f"{','.join(arches)} cannot run on it")
    builds = [dataclasses.replace(b, kconfigs=[*b.kconfigs, *map(str, board.kconfig)])
              for b in builds]
    return builds, "board", {"board": board, "deploy": not args.no_deploy,
                             "say": _quiet if getattr(args, "json", False) else _say}


def lab_board(lab: str | Path, name: str):  # noqa: ANN201 - inventory.Board
    """Board `name` of inventory `lab`, or a one-line InventoryError."""
    from harness.targets.inventory import find_board, load_inventory  # noqa: PLC0415

    return find_board(load_inventory(lab), name)


def _run(args: argparse.Namespace) -> int:
    from harness import session  # noqa: PLC0415

    default = lab_board(args.lab, args.board).arch if args.board else "x86_64"
    arches = parse_arches(args.arch or default)
    for src in args.prog:
        if not src.is_file():
            raise RunUsageError(f"no such BPF source: {src}")
    if args.selftests is not None and args.prog:
        raise RunUsageError("--selftests and --prog choose the sources two ways: give one")
    request = run_request(args, arches, args.prog)
    outcome = session.run(request, say=_quiet if args.json else _say, quiet_builds=args.json)
    results, runs, errors = outcome.results, outcome.runs, outcome.errors
    if args.json:
        print(to_json(results))
    else:
        print(table(results))
        for run in runs:
            print(run.header())
            timing = f"boot {run.boot_s} s, suite {run.suite_s} s" if run.suite_s else ""
            if timing:
                print(f"{run.arch}: {timing}")
            if run.flaky:
                print(f"{run.arch}: flaky (failed once, passed on retry): "
                      f"{', '.join(run.flaky)}")
        if args.verbose:
            for run in runs:
                for r in run.results:
                    if r.failed:
                        print()
                        print(r.failure_text())
                        print(f"--- console ({run.arch}) ---")
                        print(run.console_excerpt())
    for line in errors:
        print(f"harness: error: {line}", file=sys.stderr)
    return 1 if outcome.failed else 0


def _say(line: str) -> None:
    print(line, flush=True)


def _quiet(_line: str) -> None:
    pass
