"""The tree's selftests corpus (harness.progs.corpus): compile cost per object, cold and
cached, and the whole corpus judged in one boot per arch, with the verdict counts.

    python benchmarks/corpus.py [--arch x86_64 --arch arm64] [--glob 'verifier_*']
                                [--clang 21] [--kconfig selftests] [--no-run] [--reference]

Cold compiles add a nonce define (-D__HARNESS_BENCH_NONCE=...) so every object misses
the cache (it is keyed by the preprocessed source and flags) without emptying it; the
cached figure is the same call again. The run is `harness run --selftests`: one boot,
every test_loader program of the corpus, each file that does not compile its own error
result. With --reference the run is `harness selftests compare` instead: the same guest
then also runs the tree's own test_progs (built with the same clang) on the same tests,
and its wall time and the subtest-by-subtest agreement are reported next to ours.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
import uuid
from pathlib import Path

from harness.kbuild.build import Builder, BuildRequest, make_plan
from harness.kbuild.toolchains import DEFAULT_CLANG, select_clang
from harness.progs.compile import CompileError, compile_prog, toolchain_for
from harness.progs.corpus import discover
from harness.progs.suite import run_arch
from harness.session import RunRequest, compare_selftests


def compile_figures(artifacts: object, sources: list[Path], clang: str) -> dict[str, object]:
    tc = toolchain_for(artifacts, str(select_clang(clang).path))
    nonce = (f"-D__HARNESS_BENCH_NONCE={uuid.uuid4().hex}",)
    cold, cached, failed = [], [], 0
    for src in sources:
        started = time.monotonic()
        try:
            compile_prog(src, tc, nonce)
        except CompileError:
            failed += 1
            continue
        cold.append(time.monotonic() - started)
        started = time.monotonic()
        compile_prog(src, tc, nonce)
        cached.append(time.monotonic() - started)
    return {"objects": len(sources), "compile errors": failed,
            "cold compile, median s": round(statistics.median(cold), 3) if cold else None,
            "cold compile, total s": round(sum(cold), 1),
            "cached lookup, median s": round(statistics.median(cached), 3) if cached else None}


def run_figures(artifacts: object, sources: list[Path], clang: str) -> dict[str, object]:
    started = time.monotonic()
    run = run_arch(artifacts, sources, keep_going=True, clang=clang)
    wall = time.monotonic() - started
    verdicts = collections.Counter(r.verdict for r in run.results)
    loads = [r.time_ms for r in run.results if r.time_ms is not None]
    return {"wall s (one boot)": round(wall, 1), "boot s": run.boot_s, "suite s": run.suite_s,
            "results": len(run.results), **{f"verdict {k}": v for k, v in verdicts.items()},
            "load+run per program, median ms": round(statistics.median(loads), 1) if loads
            else None, "error": run.error}


def reference_figures(request: RunRequest) -> dict[str, object]:
    (comparison,) = compare_selftests(request)
    run = comparison.run
    verdicts = collections.Counter(r.verdict for r in run.results)
    both = [p for p in comparison.pairs if p.ours is not None and p.theirs is not None]
    theirs = collections.Counter(p.theirs.result for p in comparison.pairs if p.theirs)
    loads = [r.time_ms for r in run.results if r.time_ms is not None]
    return {"boot s": run.boot_s, "ours: suite s": run.suite_s,
            "ours: load+run per program, median ms": round(statistics.median(loads), 1)
            if loads else None,
            "test_progs: wall s": comparison.test_progs_s,
            **{f"ours: {k}": v for k, v in verdicts.items()},
            **{f"test_progs: {k}": v for k, v in theirs.items()},
            "subtests both judged": len(both),
            "agree": len(both) - len(comparison.disagreements),
            "only ours": sum(1 for p in comparison.pairs if p.theirs is None),
            "only test_progs": sum(1 for p in comparison.pairs if p.ours is None)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", default=None)
    parser.add_argument("--glob", default="*", help="corpus entries to use (default all)")
    parser.add_argument("--clang", default=DEFAULT_CLANG)
    parser.add_argument("--kconfig", action="append", default=[],
                        help="a --kconfig for the kernel (e.g. selftests)")
    parser.add_argument("--no-run", action="store_true", help="compile figures only")
    parser.add_argument("--reference", action="store_true",
                        help="run the tree's test_progs on the same tests in the same guest")
    args = parser.parse_args()
    for arch in args.arch or ["x86_64"]:
        build = BuildRequest(arch=arch, kconfigs=list(args.kconfig))
        artifacts = Builder(make_plan(build), quiet=True).build()
        corpus = discover(Path(artifacts.source_tree)).select(args.glob)
        sources = [e.source for e in corpus.judged]
        print(f"{arch}: {len(corpus.judged)} test_loader files judged, "
              f"{len(corpus.not_judged)} not judged; clang {select_clang(args.clang).version}",
              flush=True)
        for key, value in compile_figures(artifacts, sources, args.clang).items():
            print(f"  {key:34} {value}", flush=True)
        if args.reference:
            request = RunRequest(builds=(build,), selftests=args.glob, clang=args.clang)
            for key, value in reference_figures(request).items():
                print(f"  {key:34} {value}", flush=True)
        elif not args.no_run:
            for key, value in run_figures(artifacts, sources, args.clang).items():
                print(f"  {key:34} {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
