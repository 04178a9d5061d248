"""Run jobs on a target that may die under one of them: blame that job, restart, go on.

Why: the tree's selftests corpus is thousands of programs judged in one boot, and a
kernel splat, panic or hang under one of them must cost that program's result, not the
rest of the run. Jobs go to the agent in batches of a few objects, so a crash re-runs
only its own batch. The agent logs ``kfunc-harness: job ID pid N`` to the kernel log as
each job starts and ``kfunc-harness: done ID`` as it ends (agent.py --mark-console), so
the console names the jobs a splat came under. The agent runs a job per CPU at once: the
splat's PID picks one of them when it names the job's process; else (a splat in a
kworker, a softirq) those jobs run again alone, so the next splat names one. When no
console shows it (a board without a serial line, a crash before the first job), the
batch is halved until the job that kills the target is alone. Either way the target is
restarted (``Target.reboot``: a new guest, a board's power cycle) before the rest run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from harness.progs.agent import CONSOLE_DONE, CONSOLE_MARK
from harness.progs.judge import ERROR, describe
from harness.progs.results import ProgResult
from harness.progs.runner import Job
from harness.targets.base import Target, console_text
from harness.targets.errors import TargetError
from harness.targets.splat import find_splats

BATCH_OBJECTS = 24  # objects per agent call: what one crash re-runs at most
MAX_RESTARTS = 16  # then the target is taken to be broken, not one program
Progress = Callable[[str], None]


def no_verdict(job: Job, arch: str, reason: str) -> ProgResult:
    """The ERROR result of a job the target gave no verdict for."""
    return ProgResult(object=job.object_stem, program=job.name, arch=arch, verdict=ERROR,
                      expected=describe(job.run.mode) if job.run.spec.valid else "valid spec",
                      reason=reason)


def running_jobs(console: str, since: int = 0) -> list[str]:
    """The jobs the agent had started and not ended (its ``job ID pid N`` and ``done ID``
    marks) when the first splat in `console[since:]` came (a WARNING lets the batch run
    on and name later jobs), or at the end when no splat is there (a hang); only the one
    whose process the splat names, when it names one of theirs. When none was running
    (a splat after its job ended), the one started last; [] when the agent named none."""
    text = console[since:]
    splats = find_splats(text)
    if splats:
        text = "\n".join(text.splitlines()[:splats[0].start])
    running: dict[str, int | None] = {}
    last: list[str] = []
    for line in text.splitlines():
        at = line.find(CONSOLE_MARK)
        if at >= 0:
            job, _, pid = line[at + len(CONSOLE_MARK):].strip().partition(" pid ")
            if job:
                running[job] = int(pid) if pid.isdigit() else None
                last = [job]
            continue
        at = line.find(CONSOLE_DONE)
        if at >= 0:
            running.pop(line[at + len(CONSOLE_DONE):].strip(), None)
    pid = splats[0].pid if splats else None
    named = [job for job, job_pid in running.items() if pid is not None and job_pid == pid]
    return named or list(running) or last


def batches(jobs: Sequence[Job], objects: int = BATCH_OBJECTS) -> list[list[Job]]:
    """Consecutive jobs grouped so that each batch holds at most `objects` objects."""
    out: list[list[Job]] = []
    seen: set[object] = set()
    for job in jobs:
        if not out or (job.object not in seen and len(seen) >= objects):
            out.append([])
            seen = set()
        seen.add(job.object)
        out[-1].append(job)
    return out


Item = TypeVar("Item")


class CrashQueue(Generic[Item]):
    """The batches still to run, and what a target's death under one does to them.

    Both runners use it: ours (Isolated: jobs the console can name) and the tree's
    test_progs (reference.run_isolated: tests it cannot). The item a death is put on
    leaves its batch and the rest run again; one nobody is named for halves the batch
    until the item is alone. Past `max_restarts` deaths the target is taken to be
    broken, not one item.
    """

    def __init__(self, batches: Iterable[list[Item]], max_restarts: int) -> None:
        self.pending: deque[list[Item]] = deque(batches)
        self.max_restarts = max_restarts
        self.deaths = 0

    def __iter__(self) -> Iterator[list[Item]]:
        while self.pending:
            yield self.pending.popleft()

    def died(self) -> bool:
        """Count a death; False once there were more than max_restarts (give up)."""
        self.deaths += 1
        return self.deaths <= self.max_restarts

    def requeue(self, batch: list[Item], blamed: Item | None = None, *,
                again: bool = False) -> None:
        """After the restart: `batch` without the item the death was put on, or all of it
        once more (`again`: the items it ran beside now run alone), or its two halves."""
        if blamed is not None:
            rest = [item for item in batch if item is not blamed]
            if rest:
                self.pending.appendleft(rest)
        elif again or len(batch) < 2:
            self.pending.appendleft(batch)
        else:
            half = len(batch) // 2
            self.pending.appendleft(batch[half:])
            self.pending.appendleft(batch[:half])

    def left(self) -> list[Item]:
        """Every item not run yet, the queue emptied: a run given up."""
        items = [item for batch in self.pending for item in batch]
        self.pending.clear()
        return items


@dataclass
class Restart:
    """One time the target died under a batch: why, and whom it was blamed on."""

    reason: str  # the target error's one line
    blamed: str | None  # the job id, None while the batch was still being halved


@dataclass
class Isolated:
    """Runs jobs through `run` on `target`, restarting it after each crash (see module doc).

    `run` is the plain executor (runner.execute bound to the target): one result per
    job, in job order, or a TargetError when the target dies under them.
    """

    target: Target
    run: Callable[[list[Job]], list[ProgResult]]
    arch: str
    batch_objects: int = BATCH_OBJECTS
    max_restarts: int = MAX_RESTARTS
    progress: Progress | None = None
    restarts: list[Restart] = field(default_factory=list)
    consoles: list[str] = field(default_factory=list)  # each dead target's console
    fatal: str | None = None  # the target did not come back: the run's error

    def __call__(self, jobs: list[Job]) -> list[ProgResult]:
        results: dict[int, ProgResult] = {}
        index = {id(job): n for n, job in enumerate(jobs)}
        queue = CrashQueue(batches(jobs, self.batch_objects), self.max_restarts)
        total = len({job.object for job in jobs})
        done: set[object] = set()
        for batch in queue:
            if any(job.skip is None for job in batch):
                since = len(console_text(self.target.console))
                try:
                    got = self.run(batch)
                except TargetError as exc:
                    self._crashed(batch, exc, since, queue, results, index)
                    continue
            else:  # skipped on the host: nothing to send
                got = self.run(batch)
            for job, result in zip(batch, got, strict=True):
                results[index[id(job)]] = result
            done |= {job.object for job in batch}
            if self.progress is not None and len(jobs) > len(batch):
                self.progress(f"{self.arch}: {len(done)}/{total} objects judged"
                              + (f", {len(self.restarts)} restarts" if self.restarts else ""))
        return [results[n] for n in range(len(jobs))]

    def _crashed(self, batch: list[Job], exc: TargetError, since: int,
                 queue: CrashQueue[Job], results: dict[int, ProgResult],
                 index: dict[int, int]) -> None:
        """Blame a job (the console's marks, else halve the batch), restart, requeue."""
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        console = console_text(self.target.console)
        runnable = [job for job in batch if job.skip is None]
        named = running_jobs(console, since)
        suspects = [job for job in runnable if job.id in named]
        blamed = suspects[0] if len(suspects) == 1 else None
        if blamed is None and len(runnable) == 1:
            blamed = runnable[0]
        for job in suspects if blamed is None else ():
            job.alone = True
        self.consoles.append(console)
        self.restarts.append(Restart(reason, blamed.id if blamed is not None else None))
        if not queue.died():
            self._give_up(batch, queue, results, index, f"{reason} (the target died "
                          f"{len(self.restarts)} times; not restarted again)")
            return
        if self.progress is not None:
            self.progress(f"{self.arch}: target died ({reason}) under "
                          f"{blamed.id if blamed else f'one of {len(suspects or runnable)} jobs'}; "
                          "restarting it")
        try:
            self.target.reboot()
        except TargetError as again:
            self._give_up(batch, queue, results, index, f"{reason}; the restart failed: "
                          f"{type(again).__name__}: {again}".splitlines()[0])
            return
        if blamed is not None:
            results[index[id(blamed)]] = no_verdict(
                blamed, self.arch, f"the target died under this program: {reason}")
        queue.requeue(batch, blamed, again=bool(suspects))

    def _give_up(self, batch: list[Job], queue: CrashQueue[Job],
                 results: dict[int, ProgResult], index: dict[int, int], why: str) -> None:
        """No more restarts: every job not judged yet is an error, and so is the run."""
        self.fatal = why
        for job in [*batch, *queue.left()]:
            results[index[id(job)]] = no_verdict(job, self.arch, f"no verdict: {why}")
