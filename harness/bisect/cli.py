"""`harness bisect pahole|btfids`: which tool commit or release changed a kernel's BTF.

Handlers only parse, pick the candidates and how to get each one's tool, and print; the
kernel is built through session.build and every step goes through steps.run_step and
driver.run_bisect.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.arch import arch_arg
from harness.bisect import history, tools
from harness.errors import HarnessError, UsageError
from harness.kbuild import toolchains

if TYPE_CHECKING:  # the step machinery (BTF library, stage, predicates) loads on use
    from harness.bisect.predicates import Predicate
    from harness.bisect.steps import Btfids, FixedKernel, StepRun

THIS_REPO = Path(__file__).resolve().parents[2]  # this checkout, for `btfids --python`


def register(sub: argparse._SubParsersAction) -> None:
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
    pahole.add_argument("--libbpf-repo", metavar="PATH",
                        help="where dwarves' lib/bpf submodule commits come from (default: "
                        f"${tools.LIBBPF_ENV}, else the clone's own submodule)")
    _add_common(pahole, "with --repo: ")
    pahole.set_defaults(func=cmd_bisect_pahole)

    btfids = kinds.add_parser(
        "btfids", help="bisect resolve_btfids: a kernel tree's history, or this harness's",
        description="Build the kernel once (the build options below, cached; --pahole is "
        "the pahole every step runs), then for each commit build only that commit's "
        "tools/bpf/resolve_btfids (or, with --python, export this project's harness/ at "
        "it) and rerun the BTF stage on the kernel's .tmp_vmlinux1.")
    which = btfids.add_mutually_exclusive_group(required=True)
    which.add_argument("--repo", metavar="PATH",
                       help="a kernel git repository (clone, bare or bundle)")
    which.add_argument("--python", nargs="?", const=str(THIS_REPO), metavar="REPO",
                       help="bisect the Python transformer's history (default: this "
                       "checkout's repository)")
    _add_common(btfids, "")
    btfids.set_defaults(func=cmd_bisect_btfids)

    step = sub.add_parser(
        "bisect-step", help="judge one commit, for your own `git bisect run`",
        description="Build the tool at --rev (default HEAD) of --repo (default .), rerun "
        "the fixed kernel's BTF stage with it and judge --predicate. Exit 0 good, 1 bad, "
        "125 when the tool does not build (skip), 128 when the harness itself fails (git "
        "bisect run stops), e.g. `git bisect run harness bisect-step pahole --kernel 7.2 "
        "-p 'btf:kfunc(bpf_wq_init)'` in a dwarves checkout.")
    step_kinds = step.add_subparsers(dest="bisect_kind", metavar="TOOL", required=True)
    for name in ("pahole", "btfids"):
        kind = step_kinds.add_parser(name, help=f"one {name} commit")
        kind.add_argument("--rev", default="HEAD", help="the commit to judge (default HEAD)")
        if name == "pahole":
            kind.add_argument("--repo", default=".", metavar="PATH",
                              help="the dwarves repository (default .)")
            kind.add_argument("--libbpf-repo", metavar="PATH")
        else:
            which = kind.add_mutually_exclusive_group()
            which.add_argument("--repo", default=".", metavar="PATH",
                               help="the kernel repository (default .)")
            which.add_argument("--python", nargs="?", const=str(THIS_REPO), metavar="REPO")
        _add_common(kind, "", ranged=False)
        kind.set_defaults(func=cmd_bisect_step)


def _add_common(parser: argparse.ArgumentParser, rev_note: str, ranged: bool = True) -> None:
    from harness.kbuild.cli import add_build_options  # noqa: PLC0415 - kbuild is heavy

    if ranged:
        parser.add_argument("--good", metavar="REV", help=f"{rev_note}a good revision")
        parser.add_argument("--bad", metavar="REV", help=f"{rev_note}a bad revision")
        parser.add_argument("--find-fix", action="store_true",
                            help="the old end is bad: report the first good candidate")
    parser.add_argument("--predicate", "-p", action="append", required=True,
                        metavar="KIND:TEXT", help="btf:EXPR, btf1:EXPR, cmd:SHELL or "
                        "run:FILE.c (boots; repeatable; all must hold for good)")
    parser.add_argument("--arch", default="x86_64", type=arch_arg,
                        help="x86_64 (amd64) or arm64 (aarch64); default %(default)s")
    add_build_options(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


Step = Callable[["FixedKernel", "Btfids", "list[Predicate]", int, str], "StepRun"]


@dataclass
class _Plan:
    """What a bisect walks and how a candidate becomes a judged step."""

    candidates: list[str]
    what: str
    step: Step
    name_of: Callable[[str], str] = str
    subject_of: Callable[[str], str] | None = None


def _commit_range(repo: Path, args: argparse.Namespace) -> list[str]:
    """The commits from the old end to the new one; bad ends are one-line errors."""
    if not (args.good and args.bad):
        raise UsageError("a commit range needs --good REV and --bad REV")
    good, bad = history.resolve(repo, args.good), history.resolve(repo, args.bad)
    old, new = (bad, good) if args.find_fix else (good, bad)
    if not history.is_ancestor(repo, old, new):
        first, second = ("--bad", "--good") if args.find_fix else ("--good", "--bad")
        raise UsageError(f"{first} {old[:12]} is not an ancestor of {second} {new[:12]}"
                         + ("" if args.find_fix else
                            " (if the newer one is good, add --find-fix)"))
    return history.commits_between(repo, old, new)


def _git_names(plan: _Plan, repo: Path) -> _Plan:
    plan.name_of = lambda commit: history.describe(repo, commit)
    plan.subject_of = lambda commit: history.subject(repo, commit)
    return plan


def cmd_bisect_pahole(args: argparse.Namespace) -> int:
    if args.versions:
        if args.good or args.bad or args.libbpf_repo:
            raise UsageError("--good, --bad and --libbpf-repo go with --repo, not --versions")
        from harness.btfids.stage import version_number  # noqa: PLC0415

        versions = sorted(dict.fromkeys(v.strip() for v in args.versions.split(",")
                                        if v.strip()), key=version_number)
        if len(versions) < 2:
            raise UsageError("--versions needs at least two releases")
        for version in versions:
            if version not in toolchains.PAHOLE_RELEASES:
                raise UsageError(f"no pinned pahole {version} (known: "
                                 f"{', '.join(toolchains.PAHOLE_RELEASES)})")

        def release_step(kernel: FixedKernel, btfids: Btfids, predicates: list[Predicate],
                         jobs: int, label: str) -> StepRun:
            from harness.bisect.steps import run_step  # noqa: PLC0415

            return run_step(kernel, tools.pahole_release(label), btfids, predicates,
                            jobs=jobs)

        return _bisect(args, _Plan(versions, "pahole releases", release_step))
    repo = history.open_repo(args.repo)
    commits = _commit_range(repo, args)
    step = _pahole_commit_step(repo, tools.libbpf_repo(repo, args.libbpf_repo))
    return _bisect(args, _git_names(_Plan(commits, "pahole commits", step), repo))


def cmd_bisect_btfids(args: argparse.Namespace) -> int:
    python = args.python is not None
    repo = history.open_repo(args.python if python else args.repo)
    commits = _commit_range(repo, args)
    what = "Python resolve_btfids commits" if python else "resolve_btfids commits"
    step = _btfids_commit_step(repo, python, _fixed_pahole(args.pahole))
    return _bisect(args, _git_names(_Plan(commits, what, step), repo))


def _pahole_commit_step(repo: Path, libbpf: Path | None) -> Step:
    """A step whose pahole is built from the commit (the kernel's btfids is kept)."""

    def step(kernel: FixedKernel, btfids: Btfids, predicates: list[Predicate], jobs: int,
             commit: str) -> StepRun:
        from harness.bisect.steps import run_step  # noqa: PLC0415

        return run_step(kernel, tools.pahole_at(repo, commit, libbpf, jobs=jobs), btfids,
                        predicates, jobs=jobs)

    return step


def _btfids_commit_step(repo: Path, python: bool, pahole: tools.StepTool) -> Step:
    """A step whose resolve_btfids is the commit's (C, or this project's Python)."""

    def step(kernel: FixedKernel, _btfids: Btfids, predicates: list[Predicate], jobs: int,
             commit: str) -> StepRun:
        from harness.bisect.steps import Btfids, run_step  # noqa: PLC0415

        if python:
            tool, seconds = tools.python_btfids_at(repo, commit)
            step_btfids = Btfids((str(tool),), f"py-{commit}", str(tool), seconds)
        else:
            tool, seconds = tools.btfids_at(repo, commit, jobs=jobs)
            step_btfids = Btfids((str(tool),), f"c-{commit}", str(tool), seconds)
        return run_step(kernel, pahole, step_btfids, predicates, jobs=jobs)

    return step


def _fixed_pahole(choice: str) -> tools.StepTool:
    """The pahole every btfids step runs: a pinned release, or a binary by content."""
    if choice in toolchains.PAHOLE_RELEASES:
        return tools.pahole_release(choice)
    tool = toolchains.select_pahole(choice)
    digest = hashlib.sha256(tool.path.read_bytes()).hexdigest()[:16]
    return tools.StepTool(f"pahole-{digest}", tool, 0.0)


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass
class _Setup:
    """The fixed kernel and what every step shares, made once per command."""

    kernel: FixedKernel
    btfids: Btfids
    predicates: list[Predicate]
    jobs: int


def _setup(args: argparse.Namespace) -> _Setup:
    from harness import session  # noqa: PLC0415
    from harness.bisect.predicates import RunPredicate, parse  # noqa: PLC0415
    from harness.bisect.steps import btfids_for, hold_kernel  # noqa: PLC0415
    from harness.kbuild.cli import request_from_args  # noqa: PLC0415

    request = request_from_args(args, args.arch)
    # bad expressions fail before any build; run: predicates relink this kernel
    predicates = [p.bind(request) if isinstance(p, RunPredicate) else p
                  for p in (parse(text) for text in args.predicate)]
    artifacts = session.build(request, quiet=args.json)
    kernel = hold_kernel(artifacts)
    return _Setup(kernel, btfids_for(args.btfids, artifacts), predicates, args.jobs or 2)


def _bisect(args: argparse.Namespace, plan: _Plan) -> int:
    from harness.bisect.driver import run_bisect  # noqa: PLC0415

    say = (lambda _line: None) if args.json else _say
    setup = _setup(args)
    artifacts = setup.kernel.artifacts
    say(f"bisect: {len(plan.candidates)} {plan.what} on {artifacts.kernel_release} "
        f"{artifacts.arch} (.tmp_vmlinux1 held at {setup.kernel.elf})")
    report = run_bisect(
        plan.candidates,
        lambda label: plan.step(setup.kernel, setup.btfids, setup.predicates, setup.jobs,
                                label),
        what=plan.what, find_fix=args.find_fix, name_of=plan.name_of,
        subject_of=plan.subject_of,
        diff_raw=any(p.text.startswith("btf1:") for p in setup.predicates), say=say)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    return 0


# ---- harness bisect-step: one step, for a user's own `git bisect run` -------------------

EXIT = {"good": 0, "bad": 1, "skip": 125}
EXIT_ABORT = 128  # git bisect run stops on >= 128: the harness, not the commit, failed


def cmd_bisect_step(args: argparse.Namespace) -> int:
    """Judge the commit at --rev; exit as `git bisect run` expects."""
    try:
        if args.bisect_kind == "pahole":
            repo = history.open_repo(args.repo)
            step = _pahole_commit_step(repo, tools.libbpf_repo(repo, args.libbpf_repo))
        else:
            python = args.python is not None
            repo = history.open_repo(args.python if python else args.repo)
            step = _btfids_commit_step(repo, python, _fixed_pahole(args.pahole))
        commit = history.resolve(repo, args.rev)
        setup = _setup(args)
        try:
            run = step(setup.kernel, setup.btfids, setup.predicates, setup.jobs, commit)
        except tools.ToolBuildFailed as exc:
            print(f"bisect-step: {commit[:12]}: skip: {exc}", flush=True)
            return EXIT["skip"]
    except HarnessError as exc:
        print(f"harness: error: {exc} (aborting the bisect)", file=sys.stderr)
        return EXIT_ABORT
    line = f"{history.describe(repo, commit)}: {run.outcome}: {run.detail}"
    if args.json:
        print(json.dumps({"commit": commit, "outcome": run.outcome, "detail": run.detail,
                          "work": str(run.files.work)}))
    else:
        print(f"bisect-step: {line}", flush=True)
    return EXIT[run.outcome]
