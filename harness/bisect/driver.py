"""A whole bisect: endpoints checked, steps run and logged, the answer and its BTF diff.

The engine decides which candidate to test; this runs each step (building its tool,
replaying the BTF stage, judging), turns a tool that does not build into a skip, checks
that the endpoints say what the user claimed (good at the old end for a regression,
bad there for `--find-fix`) before any other step, and writes the report and the BTF
diff between the last old-state step and the first new-state one into the cache's logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.bisect.engine import BisectError, BisectResult, Outcome, StepRecord, bisect
from harness.bisect.steps import StepRun
from harness.bisect.tools import ToolBuildFailed
from harness.btf.diff import diff_btf
from harness.btf.errors import BTFError
from harness.btf.load import load
from harness.cache import atomic_write, cache_dir

Say = Callable[[str], None]
DIFF_LINES_SHOWN = 40


@dataclass(frozen=True)
class StepLog:
    """One step as the report shows it."""

    candidate: str
    name: str  # `git describe` or the release
    outcome: Outcome
    detail: str
    tool_seconds: float
    stage_seconds: float
    judge_seconds: float
    cached: bool
    work: str  # the step's dir in the cache (BTF files, tool logs)


@dataclass
class Report:
    """The answer of one bisect, with every step and where its files are."""

    what: str  # "pahole commits", "pahole releases", ...
    find_fix: bool
    result: BisectResult
    steps: list[StepLog] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)
    diff: str = ""
    log_dir: Path | None = None

    @property
    def answer(self) -> str:
        word = "good" if self.find_fix else "bad"
        result = self.result
        if result.first_new is None:
            suspects = ", ".join(self._label(s) for s in result.suspects)
            return f"the first {word} one is among: {suspects} (the others could not be judged)"
        subject = self.subjects.get(result.first_new, "")
        return (f"first {word}: {self._label(result.first_new)}"
                + (f' "{subject}"' if subject else ""))

    def _label(self, candidate: str) -> str:
        name = self.names.get(candidate, candidate)
        return name if candidate.startswith(name) else f"{name} ({candidate[:12]})"

    def to_json(self) -> dict[str, object]:
        return {"what": self.what, "find_fix": self.find_fix, "answer": self.answer,
                "result": self.result.to_json(), "steps": [asdict(s) for s in self.steps],
                "names": self.names, "subjects": self.subjects, "diff": self.diff,
                "log_dir": str(self.log_dir) if self.log_dir else None}

    def format(self) -> str:
        lines = [f"{'step':>4}  {'candidate':28s} {'result':6s} {'tool s':>7} {'stage s':>7} "
                 f"{'judge s':>7}  detail"]
        for number, s in enumerate(self.steps, 1):
            tool = "cached" if s.cached and not s.tool_seconds else f"{s.tool_seconds:.1f}"
            lines.append(f"{number:>4}  {s.name[:28]:28s} {s.outcome:6s} {tool:>7} "
                         f"{s.stage_seconds:7.1f} {s.judge_seconds:7.1f}  {s.detail[:100]}")
        lines.append(self.answer)
        if self.diff:
            body = self.diff.splitlines()
            lines.append(f"BTF diff, last {'bad' if self.find_fix else 'good'} -> first "
                         f"{'good' if self.find_fix else 'bad'}: {body[-1].strip()}")
            lines += ["  " + ln for ln in body[:DIFF_LINES_SHOWN]]
            if len(body) > DIFF_LINES_SHOWN:
                lines.append(f"  ... {len(body) - DIFF_LINES_SHOWN} more lines in "
                             f"{self.log_dir}/diff.txt")
        if self.log_dir:
            lines.append(f"report: {self.log_dir}/report.json")
        return "\n".join(lines)


def run_bisect(candidates: list[str], step: Callable[[str], StepRun], *, what: str,
               find_fix: bool, name_of: Callable[[str], str] = str,
               subject_of: Callable[[str], str] | None = None, diff_raw: bool = False,
               say: Say = lambda _line: None) -> Report:
    """Bisect `candidates` (oldest first) with `step`; raise BisectError on bad ends.

    `name_of`/`subject_of` label a candidate for humans (asked only for tested ones).
    """
    names = _Names(name_of)
    runs: dict[str, StepRun] = {}
    logs: dict[str, StepLog] = {}
    expect_old: Outcome = "bad" if find_fix else "good"
    old_end, new_end = candidates[0], candidates[-1]

    def evaluate(label: str) -> tuple[Outcome, str]:
        name = names(label)
        say(f"bisect: testing {name} ...")
        try:
            run = step(label)
        except ToolBuildFailed as exc:
            logs[label] = StepLog(label, name, "skip", str(exc), 0.0, 0.0, 0.0, False,
                                  str(exc.log))
            return "skip", str(exc)
        runs[label] = run
        logs[label] = StepLog(label, name, run.outcome, run.detail, run.tool_seconds,
                              run.stage_seconds, run.judge_seconds, run.cached,
                              str(run.files.work))
        _check_end(label, run.outcome, run.detail)
        return run.outcome, run.detail

    def _check_end(label: str, outcome: Outcome, detail: str) -> None:
        if label == old_end and outcome not in (expect_old, "skip"):
            hint = ("drop --find-fix" if find_fix else
                    "if the newer end is the good one, add --find-fix")
            raise BisectError(f"the predicate is {outcome} at the old end "
                              f"{names(label)} ({detail}); expected "
                              f"{expect_old}: {hint}")
        if label == new_end and outcome == expect_old:
            raise BisectError(f"the predicate is {outcome} at both ends "
                              f"({names(old_end)} and "
                              f"{names(label)}): nothing to bisect")

    def on_step(record: StepRecord, remaining: int) -> None:
        log = logs.get(record.candidate)
        seconds = (f"tool {log.tool_seconds:.1f} s, stage {log.stage_seconds:.1f} s"
                   if log and not log.cached else "cached")
        say(f"bisect: [{record.number}, ~{remaining} left] {names(record.candidate)}"
            f": {record.outcome} ({seconds}): {record.detail[:120]}")

    result = bisect(candidates, evaluate, on_step=on_step)
    report = Report(what, find_fix, result, [logs[r.candidate] for r in result.steps],
                    {label: names(label) for label in logs})
    for label in {result.first_new, *result.suspects} - {None}:
        report.names[label] = names(label)
        if subject_of is not None:
            report.subjects[label] = subject_of(label)
    if result.first_new and result.last_old:
        report.diff = _diff(runs.get(result.last_old), runs.get(result.first_new), diff_raw)
    report.log_dir = _write_logs(report)
    return report


class _Names:
    """Human names of candidates, computed on first use (git describe is not free)."""

    def __init__(self, name_of: Callable[[str], str]) -> None:
        self._name_of = name_of
        self._known: dict[str, str] = {}

    def __call__(self, label: str) -> str:
        if label not in self._known:
            self._known[label] = self._name_of(label)
        return self._known[label]


def _diff(old: StepRun | None, new: StepRun | None, raw: bool) -> str:
    if old is None or new is None:
        return ""
    try:
        a = load(old.files.btf1 if raw else old.files.btf)
        b = load(new.files.btf1 if raw else new.files.btf)
    except (BTFError, OSError) as exc:
        return f"(no diff: {exc})"
    result = diff_btf(a, b)
    return "(no BTF difference)" if result.equal else result.format()


def _write_logs(report: Report) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    where = cache_dir("logs", "bisect") / stamp
    suffix = 1
    while where.exists():
        suffix += 1
        where = cache_dir("logs", "bisect") / f"{stamp}-{suffix}"
    where.mkdir(parents=True)
    report.log_dir = where
    atomic_write(where / "diff.txt", report.diff + "\n")
    atomic_write(where / "report.json", json.dumps(report.to_json(), indent=2) + "\n")
    return where


__all__ = ["BisectError", "Report", "StepLog", "run_bisect"]
