"""`harness matrix FILE`: run the cells of a matrix file and write its reports.

Each cell is one session request (session.py): its kernel built (cached; builds run one
after another, never two at once), booted, its programs judged, then its [[expect]]s
checked against the real verdicts and messages. A build or boot that fails for tooling
reasons is the cell's infra error, apart from verdicts; a kernel that panics is a
verdict on that kernel. Reports (report.py) go to --out whole or not at all; the exit
status is 1 when a cell regressed or an expectation did not hold, 3 when only
infrastructure failed, else 0. Each failure runs once more (--no-retry: not): one that
then passes is reported as flaky, never hidden. A cell's deny/allow lists (BPF CI's
files, the matrix file's `denylist` or --denylist) turn programs into skips naming the
entry. --jobs K runs K cells at once (builds still one at a time).
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from pathlib import Path

from harness.errors import HarnessError, UsageError
from harness.kbuild.build import BuildRequest
from harness.matrix.breadth import compare, load_baseline, try_btf_facts
from harness.matrix.outputs import write_reports
from harness.matrix.progress import CellProgress, Progress
from harness.matrix.report import CellOutcome, baseline_records, everything_reported
from harness.matrix.spec import Cell, load_matrix, parse_shard, select, shard
from harness.progs.cli import add_list_options

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = "upstream:"
SELFTEST_PROGS = "tools/testing/selftests/bpf/progs"
# Errors of the machinery, not of the kernel under test: the cell is not judged.
INFRA_ERRORS = ("BootTimeout", "BootFailed", "BoardUnreachable", "DeployFailed",
                "TargetSetupError", "RootfsBuildError", "BoardBusy")


def build_request(cell: Cell) -> BuildRequest:
    return BuildRequest(arch=cell.arch, kernel=cell.kernel,
                        tree=str(cell.tree) if cell.tree else None,
                        patches=str(cell.patches) if cell.patches else None,
                        pahole=cell.pahole, btfids=cell.btfids,
                        kconfigs=[str(k) for k in cell.kconfigs])


def cell_sources(cell: Cell, tree: Path) -> tuple[list[Path], list[str]]:
    """The cell's programs: `bpf_progs/GLOB` from this project, `upstream:GLOB` from the
    tree's selftests (file stems), in the order the patterns name them; and a note for
    each `upstream:` pattern this tree lacks.

    An older kernel not having a newer selftest is a fact about that cell, shown in its
    report; one of our own patterns matching nothing is a typo, refused."""
    found: list[Path] = []
    notes: list[str] = []
    for pattern in cell.programs:
        if pattern.startswith(UPSTREAM):
            base, glob = tree / SELFTEST_PROGS, pattern[len(UPSTREAM):] + ".c"
        else:
            base, glob = REPO, pattern if pattern.endswith(".c") else pattern + ".c"
        matches = sorted(p for p in base.glob(glob) if p.is_file())
        if not matches and pattern.startswith(UPSTREAM):
            notes.append(f"{pattern}: not in this tree ({SELFTEST_PROGS}/{glob})")
        elif not matches:
            raise HarnessError(f"cell {cell.id}: program pattern {pattern!r} matches nothing "
                               f"under {base}")
        found += [m for m in matches if m not in found]
    return found, notes


def check_expects(cell: Cell, run: object) -> list[str]:
    """Each [[expect]] of the cell against the real results: one line per miss."""
    errors = []
    results = run.results  # type: ignore[attr-defined]
    for expect in cell.expects:
        covered = [r for r in results if expect.covers(r.object, r.program)]
        if not covered:
            errors.append(f"{expect.entry}: no program of the cell matched "
                          f"{', '.join(expect.programs)}")
        for result in covered:
            problem = expect.check(result.verdict, everything_reported(result))
            if problem is not None:
                errors.append(f"{result.object}/{result.program}: {problem}")
    return errors


def run_cell(cell: Cell, progress: CellProgress, *, retry: bool = True) -> CellOutcome:
    """Build, boot and judge one cell; never raises for the cell's own failures.

    Each failure is run once more (`retry`): one that then passes is listed as flaky."""
    from harness import session  # noqa: PLC0415 - kbuild/targets are heavy

    started = time.monotonic()
    request = build_request(cell)
    progress.stage("build")
    try:
        artifacts = session.build(request, quiet=True,
                                  on_stage=lambda name: progress.stage(f"build: {name}"))
        sources, notes = cell_sources(cell, Path(artifacts.source_tree))
    except HarnessError as exc:
        return CellOutcome(cell, None, infra_error=f"build: {exc}",
                           seconds=time.monotonic() - started)
    facts, why_not = try_btf_facts(artifacts.vmlinux)
    if why_not is not None:
        notes.append(why_not)
    for note in notes:
        progress.note(f"{cell.id}: {note}")
    progress.stage(f"boot and judge {len(sources)} sources")
    run_request = session.RunRequest(builds=(request,), sources=tuple(sources),
                                     timeout=cell.timeout, denylist=cell.denylist,
                                     retry=retry, keep_going=True, clang=cell.clang)
    try:
        run = session.judge(run_request, artifacts)
    except HarnessError as exc:  # e.g. two sources with one program name: no verdict
        return CellOutcome(cell, None, infra_error=f"run: {exc}", notes=notes,
                           seconds=time.monotonic() - started, btf_facts=facts)
    infra = None
    if run.error and run.error.split(":", 1)[0] in INFRA_ERRORS:
        infra = run.error
    outcome = CellOutcome(cell, run, infra_error=infra, seconds=time.monotonic() - started,
                          notes=notes, flaky=list(run.flaky), btf_facts=facts)
    if infra is None:
        outcome.expect_errors = check_expects(cell, run)
    return outcome


def run_cells(cells: list[Cell], *, jobs: int = 1, retry: bool = True) -> list[CellOutcome]:
    """Every cell's outcome, in matrix order, with up to `jobs` cells at once.

    Builds stay one at a time whatever `jobs` is (the kernel-build lock in kbuild): what
    runs side by side is one cell's boot and suite with another's build, or two guests.
    Workers are daemon threads the main thread waits on in short joins, so a Ctrl-C ends
    the run at once; the guests they started are process groups that die with the
    harness (procs.py).
    """
    progress = Progress(len(cells), live=None if jobs <= 1 else False)
    outcomes: list[CellOutcome | None] = [None] * len(cells)
    pending = iter(enumerate(cells))
    lock = threading.Lock()
    interrupted = threading.Event()  # a cell whose guest died under a Ctrl-C says nothing

    def worker() -> None:
        while True:
            with lock:
                index, cell = next(pending, (-1, None))
            if cell is None or interrupted.is_set():
                return
            handle = progress.cell(index + 1, cell.id)
            outcome = run_cell(cell, handle, retry=retry)
            if interrupted.is_set():
                return
            outcomes[index] = outcome
            handle.finish(f"{outcome.status} ({outcome.seconds:.0f} s): "
                          f"{outcome_detail(outcome)}")

    if jobs <= 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, daemon=True, name=f"matrix-{n}")
                   for n in range(min(jobs, len(cells)))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except KeyboardInterrupt:
            interrupted.set()
            raise
    return [outcome for outcome in outcomes if outcome is not None]


def outcome_detail(outcome: CellOutcome) -> str:
    """A cell's outcome in one line: why it has no verdict, the first expectation that
    failed, or its verdict counts."""
    if outcome.infra_error:
        return outcome.infra_error.splitlines()[0] if outcome.infra_error.strip() else "infra"
    if outcome.expect_errors:
        return outcome.expect_errors[0]
    return ", ".join(f"{n} {verdict}" for verdict, n in outcome.counts().items() if n) \
        or "no programs"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of cells, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    matrix = sub.add_parser(
        "matrix", help="run the cells of a matrix file (kernel x pahole x btfids x arch)",
        description="Build, boot and judge every cell of FILE (matrix.toml, nightly.toml), "
        "check its known outcomes, and write JUnit, a test_progs-style JSON summary, a "
        "markdown summary, an HTML report and a baseline to --out. Exit 1 on a regression, "
        "a broken expectation or (with --baseline) any change; 3 when only infrastructure "
        "failed.")
    matrix.add_argument("file", type=Path, help="the matrix file")
    matrix.add_argument("--shard", metavar="I/N", help="run the I-th of N equal shares")
    matrix.add_argument("--cells", metavar="FILTER",
                        help="key=value[,key=value] over kernel/pahole/btfids/arch, or a "
                        "glob over cell ids")
    matrix.add_argument("--out", type=Path, default=Path("matrix-out"),
                        help="report directory (default %(default)s)")
    matrix.add_argument("--list", action="store_true", help="print the cells and stop")
    matrix.add_argument("-j", "--jobs", type=_positive, default=1, metavar="K",
                        help="cells at once: boots and suites in parallel, builds still "
                        "one at a time (default 1)")
    matrix.add_argument("--baseline", type=Path, metavar="FILE",
                        help="a baseline.json of an earlier run: fail on any change of a "
                        "cell's status, verdicts or BTF facts, not on a known state")
    add_list_options(matrix, retry=True)  # a matrix file's denylist yields to it
    matrix.set_defaults(func=cmd_matrix)


def cmd_matrix(args: argparse.Namespace) -> int:
    cells = load_matrix(args.file).cells
    baseline = load_baseline(args.baseline) if args.baseline else None
    if args.denylist is not None:
        if not args.denylist.is_dir():
            raise UsageError(f"--denylist {args.denylist}: no such lists directory")
        cells = [dataclasses.replace(cell, denylist=args.denylist) for cell in cells]
    if args.cells:
        cells = select(cells, args.cells)
    if args.shard:
        cells = shard(cells, *parse_shard(args.shard))
    if args.list:
        for cell in cells:
            print(cell.id)
        return 0
    started = time.monotonic()
    outcomes = run_cells(cells, jobs=args.jobs, retry=args.retry)
    new_cells: list[str] = []
    if baseline is not None:
        changed, new_cells = compare(baseline, baseline_records(outcomes))
        for outcome in outcomes:
            outcome.changes = changed.get(outcome.cell.id, [])
    paths = write_reports(outcomes, args.out, title=f"harness matrix {args.file.name}")
    width = max((len(o.cell.id) for o in outcomes), default=4)
    for outcome in outcomes:
        print(f"{outcome.cell.id:{width}s}  {outcome.status:6s}  {outcome.seconds:6.0f} s  "
              f"{outcome_detail(outcome)}")
    statuses_seen = [o.status for o in outcomes]
    print(f"{len(outcomes)} cells in {time.monotonic() - started:.0f} s: " + ", ".join(
        f"{statuses_seen.count(s)} {s}" for s in ("pass", "fail", "expect", "infra")
        if s in statuses_seen))
    print(f"reports: {', '.join(str(p) for p in paths.values())}")
    statuses = {o.status for o in outcomes}
    if baseline is not None:
        changed_cells = [o for o in outcomes if o.changes]
        for outcome in changed_cells:
            print(f"changed against {args.baseline}: {outcome.cell.id}: "
                  f"{'; '.join(outcome.changes[:3])}"
                  + (f" (+{len(outcome.changes) - 3} more)" if len(outcome.changes) > 3 else ""))
        if new_cells:
            print(f"not in the baseline (no history yet): {', '.join(new_cells)}")
        if changed_cells:
            return 1
        return 3 if "infra" in statuses else 0
    if statuses & {"fail", "expect"}:
        return 1
    return 3 if "infra" in statuses else 0
