"""One bisection engine for both tool commits and tool releases.

`harness bisect pahole|btfids` walks either git commits or released versions; both are just
an ordered list of labels (oldest first) and a predicate, so the search lives here once, with
no git and no kernel in it. A candidate that cannot be judged (the tool did not build) is a
``skip`` with `git bisect skip` semantics: its neighbours are tried instead, and when only
skipped candidates are left the answer is the honest list of suspects, not a guess.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from harness.errors import HarnessError

Outcome = Literal["good", "bad", "skip"]
OUTCOMES: tuple[Outcome, ...] = ("good", "bad", "skip")

Evaluate = Callable[[str], tuple[Outcome, str]]
OnStep = Callable[["StepRecord", int], None]


class BisectError(HarnessError):
    """The bisection cannot start or go on (bad candidate list, unjudgeable or equal ends)."""


@dataclass(frozen=True)
class StepRecord:
    """One judged candidate, kept so the CLI can show and --json can replay the walk."""

    number: int  # 1-based, in evaluation order
    candidate: str  # label
    position: int  # index in the candidate list
    outcome: Outcome
    seconds: float  # wall time of evaluate() for this step (0.0 when known beforehand)
    detail: str  # what evaluate() said, on one line


@dataclass
class BisectResult:
    """Where the outcome changed, and every step that led there."""

    candidates: list[str]
    old_outcome: Outcome  # outcome at candidates[0]
    new_outcome: Outcome  # outcome at candidates[-1]
    first_new: str | None  # first candidate showing new_outcome; None when skips hide it
    last_old: str | None  # the last candidate showing old_outcome just before it
    suspects: list[str]  # ambiguous: skipped candidates + the first new one; else [first_new]
    steps: list[StepRecord]

    @property
    def is_fix(self) -> bool:
        """True when the change went from bad to good: a fix was found, not a regression."""
        return self.old_outcome == "bad" and self.new_outcome == "good"

    @property
    def ambiguous(self) -> bool:
        """True when skipped candidates leave more than one possible first new candidate."""
        return self.first_new is None

    def to_json(self) -> dict[str, Any]:
        """Plain data for --json (and for from_json to rebuild)."""
        return {
            "candidates": list(self.candidates),
            "old_outcome": self.old_outcome,
            "new_outcome": self.new_outcome,
            "first_new": self.first_new,
            "last_old": self.last_old,
            "suspects": list(self.suspects),
            "is_fix": self.is_fix,
            "steps": [asdict(step) for step in self.steps],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BisectResult:
        """Rebuild a result from to_json() output (derived keys such as is_fix are ignored)."""
        return cls(
            candidates=list(data["candidates"]),
            old_outcome=data["old_outcome"],
            new_outcome=data["new_outcome"],
            first_new=data["first_new"],
            last_old=data["last_old"],
            suspects=list(data["suspects"]),
            steps=[StepRecord(**step) for step in data["steps"]],
        )


def max_steps(n: int) -> int:
    """ceil(log2(n)) + 2: the most steps endpoints + binary search take when nothing is skipped.

    (The search itself needs ceil(log2(n - 1)) steps over the n - 1 gaps; the bound is
    the simpler, slightly looser figure the CLI can print up front.)
    """
    if n < 1:
        raise ValueError(f"max_steps needs at least one candidate, got {n}")
    return _ceil_log2(n) + 2


def _ceil_log2(k: int) -> int:
    """ceil(log2(k)) for k >= 1, exact for any int (no float rounding)."""
    return (k - 1).bit_length()


def _remaining(lo: int, hi: int) -> int:
    """Worst-case binary-search steps left for the interval (lo, hi), skips aside."""
    return _ceil_log2(hi - lo) if hi - lo > 1 else 0


def _one_line(detail: object) -> str:
    """Collapse whatever evaluate() said to one line, so progress output stays one line a step."""
    return " ".join(str(detail).split())


def _near(mid: int, lo: int, hi: int) -> Iterator[int]:
    """Positions strictly inside (lo, hi), nearest to mid first: mid, mid+1, mid-1, mid+2, ..."""
    if lo < mid < hi:
        yield mid
    for distance in range(1, hi - lo):
        for pos in (mid + distance, mid - distance):
            if lo < pos < hi:
                yield pos


def bisect(
    candidates: Sequence[str],
    evaluate: Evaluate,
    *,
    on_step: OnStep | None = None,
    known: Mapping[str, tuple[Outcome, str]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BisectResult:
    """Find where the outcome changes between candidates[0] and candidates[-1].

    Endpoints are judged first (oldest, then newest); then a binary search that assumes a
    monotonic history. `known` outcomes are used instead of calling evaluate (still recorded,
    with seconds 0.0). Exceptions from evaluate or on_step propagate unchanged, so Ctrl-C
    stops at once. `clock` times evaluate() and exists for tests.
    """
    if isinstance(candidates, str):
        raise TypeError("candidates must be a sequence of labels, not one string")
    labels = list(candidates)
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise BisectError(f"candidate {label} is listed twice: labels must be unique")
        seen.add(label)
    if len(labels) < 2:
        raise BisectError(f"need at least two candidates to bisect, got {len(labels)}")

    known = known or {}
    steps: list[StepRecord] = []
    judged: dict[int, Outcome] = {}
    n = len(labels)

    def judge(pos: int) -> Outcome:
        """Judge one candidate (from `known` or evaluate) and record it as the next step."""
        label = labels[pos]
        if label in known:
            outcome, detail = known[label]
            seconds = 0.0
        else:
            start = clock()
            outcome, detail = evaluate(label)
            seconds = max(0.0, clock() - start)
        if outcome not in OUTCOMES:
            raise BisectError(
                f"the outcome for {label} is {outcome!r}: expected good, bad or skip"
            )
        steps.append(StepRecord(
            number=len(steps) + 1,
            candidate=label,
            position=pos,
            outcome=outcome,
            seconds=seconds,
            detail=_one_line(detail),
        ))
        judged[pos] = outcome
        return outcome

    def report(remaining: int) -> None:
        """Tell on_step about the step just recorded, once the interval reflects it."""
        if on_step is not None:
            on_step(steps[-1], remaining)

    lo, hi = 0, n - 1
    old = judge(lo)
    report(0 if old == "skip" else _remaining(lo, hi) + 1)  # + the newest endpoint, still due
    if old == "skip":
        raise BisectError(f"cannot judge the endpoint {labels[lo]}: {steps[-1].detail}")
    new = judge(hi)
    report(_remaining(lo, hi) if new not in ("skip", old) else 0)
    if new == "skip":
        raise BisectError(f"cannot judge the endpoint {labels[hi]}: {steps[-1].detail}")
    if old == new:
        raise BisectError(
            f"the predicate is {old} at both ends ({labels[lo]} and {labels[hi]}): "
            "nothing to bisect"
        )
    old_outcome, new_outcome = old, new

    def result(first_new: str | None, suspects: list[str]) -> BisectResult:
        return BisectResult(
            candidates=labels,
            old_outcome=old_outcome,
            new_outcome=new_outcome,
            first_new=first_new,
            last_old=labels[lo],
            suspects=suspects,
            steps=steps,
        )

    while hi - lo > 1:
        # Every judged (good/bad) candidate becomes lo or hi, so what is inside is either
        # untested or skipped: take the untested one nearest the middle.
        pos = next((p for p in _near((lo + hi) // 2, lo, hi) if p not in judged), None)
        if pos is None:  # all of (lo, hi) skipped: any of them, or hi, may be the first new
            suspects = [labels[p] for p in range(lo + 1, hi)] + [labels[hi]]
            return result(None, suspects)
        outcome = judge(pos)
        if outcome == old_outcome:
            lo = pos
        elif outcome == new_outcome:
            hi = pos
        report(_remaining(lo, hi))
    return result(labels[hi], [labels[hi]])
