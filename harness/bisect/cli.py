"""`harness bisect pahole`: which pahole commit or release changed a fixed kernel's BTF."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from harness.bisect import history, tools
from harness.bisect.driver import Report, run_bisect
from harness.bisect.predicates import Predicate, RunPredicate, parse
from harness.bisect.steps import btfids_for, hold_kernel, run_step
from harness.btfids.stage import version_number
from harness.errors import UsageError
from harness.kbuild import toolchains
from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.build import BuildRequest


def register(sub: argparse._SubParsersAction) -> None:
    from harness.kbuild.cli import add_build_options  # noqa: PLC0415 - kbuild is heavy

    bisect = sub.add_parser("bisect", help="find the tool commit or release that changed "
                            "kernel BTF (the kernel is built once and held fixed)")
    kinds = bisect.add_subparsers(dest="bisect_kind", metavar="TOOL", required=True)
    pahole = kinds.add_parser(
        "pahole", help="bisect pahole: dwarves commits (--repo) or releases (--versions)",
        description="Build the kernel once (the build options below, cached), then for "
        "each candidate pahole rerun only kbuild's BTF stage on its .tmp_vmlinux1 (pahole "
        "with the flags the tree's Makefile.btf gives that pahole version, then "
        "resolve_btfids --btfids) and judge the result with --predicate. Without "
        "--find-fix the old end must be good and the first bad candidate is reported.")
    source = pahole.add_mutually_exclusive_group(required=True)
    source.add_argument("--repo", metavar="PATH",
                        help="a dwarves git repository (a clone, bare repo or bundle)")
    source.add_argument("--versions", metavar="V,V,...",
                        help=f"pinned Debian releases ({', '.join(toolchains.PAHOLE_RELEASES)})")
    pahole.add_argument("--good", metavar="REV", help="with --repo: a good revision")
    pahole.add_argument("--bad", metavar="REV", help="with --repo: a bad revision")
    pahole.add_argument("--libbpf-repo", metavar="PATH",
                        help="where dwarves' lib/bpf submodule commits come from (default: "
                        f"${tools.LIBBPF_ENV}, else the clone's own submodule)")
    pahole.add_argument("--predicate", "-p", action="append", required=True,
                        metavar="KIND:TEXT", help="btf:EXPR, btf1:EXPR, cmd:SHELL or "
                        "run:FILE.c (boots; repeatable; all must hold for good)")
    pahole.add_argument("--find-fix", action="store_true",
                        help="the old end is bad: report the first good candidate")
    pahole.add_argument("--arch", default="x86_64", choices=sorted(toolchains.KERNEL_ARCH))
    add_build_options(pahole)
    pahole.add_argument("--json", action="store_true", help="print the report as JSON")
    pahole.set_defaults(func=cmd_bisect_pahole)


def _predicates(texts: list[str]) -> list[Predicate]:
    return [parse(text) for text in texts]


def _say(line: str) -> None:
    print(line, flush=True)


def _kernel(request: BuildRequest, quiet: bool) -> BuildArtifacts:
    from harness import session  # noqa: PLC0415

    return session.build(request, quiet=quiet)


def cmd_bisect_pahole(args: argparse.Namespace) -> int:
    from harness.kbuild.cli import request_from_args  # noqa: PLC0415

    request = request_from_args(args, args.arch)
    # bad expressions fail before any build; run: predicates relink this kernel
    predicates = [p.bind(request) if isinstance(p, RunPredicate) else p
                  for p in _predicates(args.predicate)]
    jobs = args.jobs or 2
    step_tool: Callable[[str], tools.StepTool]
    if args.versions:
        if args.good or args.bad or args.libbpf_repo:
            raise UsageError("--good, --bad and --libbpf-repo go with --repo, not --versions")
        candidates = sorted(dict.fromkeys(v.strip() for v in args.versions.split(",")
                                          if v.strip()), key=version_number)
        if len(candidates) < 2:
            raise UsageError("--versions needs at least two releases")
        for version in candidates:
            if version not in toolchains.PAHOLE_RELEASES:
                raise UsageError(f"no pinned pahole {version} (known: "
                                 f"{', '.join(toolchains.PAHOLE_RELEASES)})")
        step_tool = tools.pahole_release
        what, name_of, subject_of = "pahole releases", str, None
    else:
        if not (args.good and args.bad):
            raise UsageError("--repo needs --good REV and --bad REV")
        repo = history.open_repo(args.repo)
        good, bad = history.resolve(repo, args.good), history.resolve(repo, args.bad)
        old, new = (bad, good) if args.find_fix else (good, bad)
        if not history.is_ancestor(repo, old, new):
            first, second = ("--bad", "--good") if args.find_fix else ("--good", "--bad")
            raise UsageError(f"{first} {old[:12]} is not an ancestor of {second} {new[:12]}"
                             + ("" if args.find_fix else
                                " (if the newer one is good, add --find-fix)"))
        candidates = history.commits_between(repo, old, new)
        libbpf = tools.libbpf_repo(repo, args.libbpf_repo)

        def step_tool(commit: str) -> tools.StepTool:
            return tools.pahole_at(repo, commit, libbpf, jobs=jobs)

        what = "pahole commits"

        def name_of(commit: str) -> str:
            return history.describe(repo, commit)

        def subject_of(commit: str) -> str:
            return history.subject(repo, commit)

    say = (lambda _line: None) if args.json else _say
    artifacts = _kernel(request, args.json)
    kernel = hold_kernel(artifacts)
    btfids = btfids_for(args.btfids, artifacts)
    say(f"bisect: {len(candidates)} {what} on {artifacts.kernel_release} {artifacts.arch} "
        f"(.tmp_vmlinux1 held at {kernel.elf}), resolve_btfids {btfids.label}")
    report: Report = run_bisect(
        candidates,
        lambda label: run_step(kernel, step_tool(label), btfids, predicates, jobs=jobs),
        what=what, find_fix=args.find_fix, name_of=name_of, subject_of=subject_of,
        diff_raw=any(p.text.startswith("btf1:") for p in predicates), say=say)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    return 0
