"""The bisection engine on synthetic histories: no git, no kernels, no I/O."""

from __future__ import annotations

import json
from collections.abc import Collection

import pytest

from harness.bisect.engine import (
    BisectError,
    BisectResult,
    Outcome,
    StepRecord,
    bisect,
    max_steps,
)
from harness.errors import HarnessError


def labels(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


class History:
    """An evaluate() over c0..c{n-1} whose outcome flips at `first_new`; records every call."""

    def __init__(self, n: int, first_new: int, *, fix: bool = False,
                 skipped: Collection[int] = ()) -> None:
        self.before: Outcome = "bad" if fix else "good"
        self.after: Outcome = "good" if fix else "bad"
        self.first_new = first_new
        self.skipped = {f"c{i}" for i in skipped}
        self.calls: list[str] = []

    def __call__(self, label: str) -> tuple[Outcome, str]:
        self.calls.append(label)
        if label in self.skipped:
            return "skip", f"{label} did not build"
        outcome = self.after if int(label[1:]) >= self.first_new else self.before
        return outcome, f"{label} is {outcome}"


def ceil_log2(k: int) -> int:
    return (k - 1).bit_length()


# --- finding the change everywhere ------------------------------------------------------------


@pytest.mark.parametrize("fix", [False, True], ids=["regression", "fix"])
def test_every_position_for_n_up_to_40(fix: bool) -> None:
    """Brute force: any off-by-one in the interval handling shows up at some (n, position)."""
    for n in range(2, 41):
        for first in range(1, n):
            history = History(n, first, fix=fix)
            result = bisect(labels(n), history)
            where = f"n={n} first_new=c{first}"
            assert result.first_new == f"c{first}", where
            assert result.last_old == f"c{first - 1}", where
            assert result.suspects == [f"c{first}"], where
            assert result.is_fix is fix, where
            assert result.old_outcome == history.before
            assert result.new_outcome == history.after
            assert len(result.steps) <= max_steps(n), where
            # The real search needs no more than the n - 1 gaps call for.
            assert len(result.steps) <= ceil_log2(n - 1) + 2, where
            assert len(history.calls) == len(set(history.calls)) == len(result.steps), where
            assert [s.candidate for s in result.steps] == history.calls, where


def test_max_steps_values() -> None:
    """The bound the CLI prints up front: ceil(log2(n)) + 2, computed without float error."""
    assert [max_steps(n) for n in (1, 2, 3, 4, 5, 8, 9, 1024, 1025)] == [
        2, 3, 4, 4, 5, 5, 6, 12, 13,
    ]
    with pytest.raises(ValueError):
        max_steps(0)


def test_endpoints_first_then_middle_and_no_label_twice() -> None:
    """Endpoints must be judged before anything else: equal ends make the whole search moot."""
    history = History(16, 11)
    result = bisect(labels(16), history)
    assert history.calls[:3] == ["c0", "c15", "c7"]
    assert len(history.calls) == len(set(history.calls))
    assert [s.number for s in result.steps] == list(range(1, len(result.steps) + 1))
    assert all(result.candidates[s.position] == s.candidate for s in result.steps)
    assert result.steps[0].detail == "c0 is good"


def test_two_candidates_need_only_the_endpoints() -> None:
    history = History(2, 1)
    result = bisect(["v1.26", "v1.27"], lambda label: history(f"c{int(label[-1]) - 6}"))
    assert (result.last_old, result.first_new) == ("v1.26", "v1.27")
    assert len(result.steps) == 2


# --- skips -------------------------------------------------------------------------------------


def test_skipped_mid_tries_a_neighbour() -> None:
    """A mid that does not build is replaced by mid+1, like git bisect skip."""
    history = History(9, 6, skipped={4})
    result = bisect(labels(9), history)
    assert history.calls[:4] == ["c0", "c8", "c4", "c5"]
    assert result.first_new == "c6"
    assert result.last_old == "c5"
    assert result.suspects == ["c6"]
    assert result.steps[2].outcome == "skip"
    assert result.steps[2].detail == "c4 did not build"


def test_skip_alternates_around_mid() -> None:
    """The order after a skip is mid, mid+1, mid-1, mid+2, mid-2, ...: nearest to mid first."""
    skipped = set(range(1, 10)) - {2}
    history = History(11, 9, skipped=skipped)
    result = bisect(labels(11), history)
    assert history.calls == ["c0", "c10", "c5", "c6", "c4", "c7", "c3", "c8", "c2", "c9"]
    assert result.first_new is None
    assert result.last_old == "c2"
    assert result.suspects == [f"c{i}" for i in range(3, 11)]


def test_every_inside_candidate_skipped_gives_suspects() -> None:
    """With nothing judgeable inside, the answer is the list of suspects, not a guess."""
    history = History(5, 2, skipped={1, 2, 3})
    result = bisect(labels(5), history)
    assert result.first_new is None
    assert result.ambiguous
    assert result.last_old == "c0"
    assert result.suspects == ["c1", "c2", "c3", "c4"]
    assert sorted(history.calls) == ["c0", "c1", "c2", "c3", "c4"]


def test_skips_next_to_the_change_narrow_the_suspects() -> None:
    """Judged neighbours still shrink the suspect list to the skipped run plus the first new."""
    history = History(10, 5, skipped={3, 4, 5})
    result = bisect(labels(10), history)
    assert result.first_new is None
    assert result.last_old == "c2"
    assert result.suspects == ["c3", "c4", "c5", "c6"]


def test_skips_away_from_the_change_do_not_blur_it() -> None:
    history = History(20, 13, skipped={9, 10, 11})
    result = bisect(labels(20), history)
    assert (result.last_old, result.first_new) == ("c12", "c13")
    assert not result.ambiguous


# --- refusing to bisect ------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["good", "bad"])
def test_same_outcome_at_both_ends_raises_before_a_third_evaluate(outcome: Outcome) -> None:
    """Equal ends mean the change is not in the range: say so instead of building the middle."""
    calls: list[str] = []

    def evaluate(label: str) -> tuple[Outcome, str]:
        calls.append(label)
        return outcome, "same"

    with pytest.raises(BisectError) as info:
        bisect(["v1.26", "v1.265", "v1.27"], evaluate)
    assert str(info.value) == (
        f"the predicate is {outcome} at both ends (v1.26 and v1.27): nothing to bisect"
    )
    assert calls == ["v1.26", "v1.27"]


@pytest.mark.parametrize(("skipped", "calls"), [(0, 1), (3, 2)])
def test_skipped_endpoint_raises_naming_it(skipped: int, calls: int) -> None:
    """An endpoint that cannot be judged leaves no known side to bisect from."""
    history = History(4, 2, skipped={skipped})
    with pytest.raises(BisectError) as info:
        bisect(labels(4), history)
    assert str(info.value) == f"cannot judge the endpoint c{skipped}: c{skipped} did not build"
    assert len(history.calls) == calls


@pytest.mark.parametrize("candidates", [[], ["v1.27"], ["a", "b", "a"]])
def test_bad_candidate_lists_raise(candidates: list[str]) -> None:
    with pytest.raises(BisectError) as info:
        bisect(candidates, lambda label: pytest.fail("must not evaluate"))
    assert isinstance(info.value, HarnessError)
    assert "\n" not in str(info.value)


def test_unknown_outcome_raises() -> None:
    with pytest.raises(BisectError, match="'maybe'"):
        bisect(["a", "b"], lambda label: ("maybe", ""))  # type: ignore[arg-type, return-value]


# --- known outcomes, progress, interruption ----------------------------------------------------


def test_known_outcomes_are_not_evaluated_but_recorded() -> None:
    """A re-run from the cache must not rebuild what it already judged."""
    history = History(8, 5)
    known: dict[str, tuple[Outcome, str]] = {
        "c0": ("good", "cached good"), "c7": ("bad", "cached bad"), "c3": ("good", "marked"),
    }
    result = bisect(labels(8), history, known=known)
    assert not {"c0", "c7", "c3"} & set(history.calls)
    assert result.first_new == "c5"
    by_label = {s.candidate: s for s in result.steps}
    assert by_label["c0"] == StepRecord(1, "c0", 0, "good", 0.0, "cached good")
    assert by_label["c3"].seconds == 0.0 and by_label["c3"].detail == "marked"


def test_everything_known_never_evaluates() -> None:
    history = History(6, 4)
    known = {label: history(label) for label in labels(6)}
    history.calls.clear()

    def evaluate(label: str) -> tuple[Outcome, str]:
        raise AssertionError(f"evaluated {label}")

    result = bisect(labels(6), evaluate, known=known)
    assert (result.last_old, result.first_new) == ("c3", "c4")


def test_known_skip_at_an_endpoint_raises() -> None:
    with pytest.raises(BisectError, match="cannot judge the endpoint c0: no build"):
        bisect(labels(3), History(3, 1), known={"c0": ("skip", "no build")})


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_exception_from_evaluate_propagates(exc: type[BaseException]) -> None:
    """Ctrl-C during a build must stop the bisect at once, not be recorded as a skip."""
    raised = exc("stop")
    seen: list[int] = []
    history = History(10, 3)

    def evaluate(label: str) -> tuple[Outcome, str]:
        if len(history.calls) == 2:
            raise raised
        return history(label)

    with pytest.raises(exc) as info:
        bisect(labels(10), evaluate, on_step=lambda record, left: seen.append(record.number))
    assert info.value is raised
    assert seen == [1, 2]


def run_reporting(n: int, first: int) -> tuple[BisectResult, list[tuple[StepRecord, int]]]:
    reports: list[tuple[StepRecord, int]] = []
    result = bisect(labels(n), History(n, first),
                    on_step=lambda record, left: reports.append((record, left)))
    return result, reports


def test_on_step_estimates_bound_the_remaining_steps() -> None:
    """The progress line's estimate never promises fewer steps than are really left."""
    for n in range(2, 33):
        for first in range(1, n):
            result, reports = run_reporting(n, first)
            assert [r for r, _ in reports] == result.steps
            total = len(result.steps)
            for record, left in reports:
                assert left >= total - record.number, (n, first, record)
            assert reports[-1][1] == 0


def test_on_step_after_equal_ends_says_nothing_left() -> None:
    reports: list[int] = []
    with pytest.raises(BisectError):
        bisect(labels(5), lambda label: ("good", ""), on_step=lambda r, left: reports.append(left))
    assert reports == [ceil_log2(4) + 1, 0]


def test_seconds_time_each_evaluate() -> None:
    """seconds is the wall time of evaluate() alone, read from the injected clock."""
    ticks = iter([10.0, 12.5, 20.0, 20.25, 30.0, 31.0])
    result = bisect(labels(3), History(3, 1), clock=lambda: next(ticks))
    assert [s.seconds for s in result.steps] == [2.5, 0.25, 1.0]


def test_multi_line_detail_is_one_line() -> None:
    result = bisect(["a", "b"], lambda label: ("good" if label == "a" else "bad", "x\n  y\n"))
    assert [s.detail for s in result.steps] == ["x y", "x y"]


# --- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize("skipped", [set(), {3, 4, 5}])
def test_to_json_round_trips(skipped: set[int]) -> None:
    """--json output is plain data and rebuilds the same result."""
    result = bisect(labels(10), History(10, 5, fix=True, skipped=skipped))
    data = json.loads(json.dumps(result.to_json()))
    assert data == result.to_json()
    assert data["is_fix"] is True
    assert data["steps"][0] == {
        "number": 1, "candidate": "c0", "position": 0, "outcome": "bad",
        "seconds": result.steps[0].seconds, "detail": "c0 is bad",
    }
    assert BisectResult.from_json(data) == result
