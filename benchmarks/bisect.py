"""Benchmark: what one bisect step costs, by tool and by predicate kind.

Why: a bisect is only worth running if a step costs a tool build plus seconds, not a
kernel build. This times the parts of real steps on a fixed 7.2 x86_64 kernel (pahole
1.32, the tree's C resolve_btfids; built once through the cache):

- a pahole commit step (dwarves v1.26 and 72e88f2) cold (the tool is built, the BTF stage
  replayed) and with the tool build cached (stage replayed), and fully cached;
- a resolve_btfids commit step (the 7.2 -> 7.3 test history) cold and cached (7.3's tool
  refuses this 7.2 kernel, "inconsistent flags across BTF ID sets": the step is judged
  bad from its failed stage, which still times the build and the replay);
- the judge time of each predicate kind on a finished step: btf:, btf1:, cmd:, run:
  (run: relinks the kernel with the step's pahole through the build cache and boots it).

"Cold" removes those commits' entries from the cache's bisect sections first (only
those). Needs ../shared/bisect/{dwarves,libbpf}.bundle or HARNESS_DWARVES_REPO /
HARNESS_LIBBPF_REPO, and the Debian 7.2/7.3 sources (fetched into the cache).

    python benchmarks/bisect.py [--no-run]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import session  # noqa: E402
from harness.bisect import history, tools  # noqa: E402
from harness.bisect.predicates import RunPredicate, StepFiles, parse  # noqa: E402
from harness.bisect.steps import (  # noqa: E402
    Btfids,
    StepRun,
    btfids_for,
    hold_kernel,
    run_step,
)
from harness.cache import cache_root  # noqa: E402
from harness.kbuild import sources  # noqa: E402
from harness.kbuild.build import BuildRequest  # noqa: E402

SHARED = ROOT.parent / "shared" / "bisect"
PREDICATE = "btf:kfunc(bpf_wq_init) and func(bpf_wq_set_callback_impl)"


def _forget(kind: str, commit: str, kernel_key: str) -> None:
    """Drop one commit's tool build and its step dirs from the bisect cache."""
    root = cache_root() / "bisect"
    shutil.rmtree(root / kind / commit, ignore_errors=True)
    (root / kind / f"{commit}.failed.log").unlink(missing_ok=True)
    for step in (root / "steps" / kernel_key).glob(f"*{commit}*"):
        if step.is_dir():
            shutil.rmtree(step)


def _forget_steps(commit: str, kernel_key: str) -> None:
    for step in (cache_root() / "bisect" / "steps" / kernel_key).glob(f"*{commit}*"):
        if step.is_dir():
            shutil.rmtree(step)


def _row(label: str, step: StepRun) -> None:
    tool, stage, judge = step.tool_seconds, step.stage_seconds, step.judge_seconds
    total = tool + stage + judge
    share = f"{100 * tool / total:5.1f} %" if total else "    -"
    print(f"{label:44s} {tool:7.1f} {stage:7.1f} {judge:7.1f} {total:7.1f}   {share:>7}  "
          f"{step.outcome}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-run", action="store_true", help="skip the run: predicate")
    args = parser.parse_args()
    dwarves = Path(os.environ.get("HARNESS_DWARVES_REPO", SHARED / "dwarves.bundle"))
    libbpf = Path(os.environ.get("HARNESS_LIBBPF_REPO", SHARED / "libbpf.bundle"))
    request = BuildRequest(arch="x86_64", kernel="7.2", btfids="c")
    artifacts = session.build(request, quiet=True)
    kernel = hold_kernel(artifacts)
    btfids = btfids_for("c", artifacts)
    predicates = [parse(PREDICATE)]
    repo, lib = history.open_repo(dwarves), history.open_repo(libbpf)

    print(f"kernel {artifacts.kernel_release} x86_64, {os.cpu_count()} cpus; "
          f"seconds per step part")
    print(f"{'step':44s} {'tool':>7} {'stage':>7} {'judge':>7} {'total':>7}   "
          "tool share  outcome")
    finished = None
    for rev in ("v1.26", "72e88f2"):
        commit = history.resolve(repo, rev)
        _forget("pahole", commit, kernel.key)
        cold = run_step(kernel, tools.pahole_at(repo, commit, lib), btfids, predicates)
        _row(f"pahole {rev}, cold", cold)
        _forget_steps(commit, kernel.key)
        warm = run_step(kernel, tools.pahole_at(repo, commit, lib), btfids, predicates)
        _row(f"pahole {rev}, tool cached", warm)
        again = run_step(kernel, tools.pahole_at(repo, commit, lib), btfids, predicates)
        _row(f"pahole {rev}, step cached", again)
        finished = again

    from tests.helpers.btfids_history import make_history  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        commits = make_history(Path(tmp) / "linux", sources.from_debian("7.2").path,
                               sources.from_debian("7.3").path)
        pahole = tools.pahole_release("1.32")
        for label, commit in (("7.2", commits[0]), ("7.3", commits[3])):
            _forget("btfids", commit, kernel.key)
            for state in ("cold", "tool cached"):
                if state == "tool cached":
                    _forget_steps(commit, kernel.key)
                tool, seconds = tools.btfids_at(Path(tmp) / "linux", commit)
                step = run_step(kernel, pahole, Btfids((str(tool),), f"c-{commit}",
                                                       str(tool), seconds), predicates)
                _row(f"resolve_btfids {label} commit, {state}", step)

    assert finished is not None
    print()
    print(f"{'predicate kind (judge only, on a finished step)':44s} {'seconds':>7}")
    files: StepFiles = finished.files
    kinds = [("btf: (final BTF)", parse(PREDICATE)),
             ("btf1: (pahole output)", parse("btf1:kfunc(bpf_wq_init)")),
             ("cmd: (a shell command)", parse('cmd:test -s "$HARNESS_BTF"'))]
    if not args.no_run:
        run = parse("run:wq.c")
        assert isinstance(run, RunPredicate)
        kinds.append(("run: (relink if new, boot, judge wq.c)", run.bind(request)))
    for label, predicate in kinds:
        fresh = StepFiles(files.work, files.elf, files.btf1, files.btf, files.btf_ids,
                          files.pahole, files.btfids)
        start = time.monotonic()
        outcome, _detail = predicate.judge(fresh)
        print(f"{label:44s} {time.monotonic() - start:7.1f}   {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
