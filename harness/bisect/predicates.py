"""What makes a bisect step good or bad, parsed from `--predicate KIND:TEXT`.

- `btf:EXPR` — an expression (harness.bisect.btf_expr) on the step's final BTF, the
  `.BTF` resolve_btfids writes and kbuild links into vmlinux;
- `btf1:EXPR` — the same on pahole's own output (`.BTF.1`, before resolve_btfids), for
  bisecting what pahole emits when resolve_btfids would mask it;
- `cmd:SHELL` — a shell command, `git bisect run` rules: 0 good, 125 skip, anything else
  bad; it gets the step's files in HARNESS_BTF, HARNESS_BTF1, HARNESS_BTF_IDS,
  HARNESS_ELF and HARNESS_STEP_DIR;
- `run:FILE.c` — relink the kernel with the step's tools through the normal build cache,
  boot it under QEMU and judge every program of FILE.c by its annotations: good when all
  pass. The only kind that boots; it needs the kernel's build request (`bind`).

Several predicates combine with AND: the step is bad when any is bad, skipped when any
skips and none is bad; cheap kinds run first, so a bad BTF never costs a boot.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from harness.bisect.btf_expr import BtfExpr
from harness.bisect.engine import Outcome
from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.load import load
from harness.errors import HarnessError, UsageError
from harness.kbuild.build import BuildRequest
from harness.progs.runner import BPF_PROGS_DIR

CMD_TIMEOUT = 600.0
SKIP_STATUS = 125


@dataclass
class StepFiles:
    """One step's BTF stage outputs; parsed BTF is kept so predicates share one parse."""

    work: Path
    elf: Path
    btf1: Path
    btf: Path
    btf_ids: Path
    pahole: Path | None = None  # the step's pahole (what a relink hands kbuild)
    btfids: str | None = None  # the step's resolve_btfids choice: c, python or a path
    _parsed: dict[Path, Btf] = field(default_factory=dict, repr=False)

    def parsed(self, path: Path) -> Btf:
        if path not in self._parsed:
            self._parsed[path] = load(path)
        return self._parsed[path]


class Predicate(Protocol):
    text: str

    def judge(self, step: StepFiles) -> tuple[Outcome, str]:
        """good/bad/skip and one line saying why."""
        ...


@dataclass(frozen=True)
class BtfPredicate:
    text: str
    expr: BtfExpr
    raw: bool  # True: pahole's .BTF.1; False: the final .BTF

    def judge(self, step: StepFiles) -> tuple[Outcome, str]:
        path = step.btf1 if self.raw else step.btf
        try:
            btf = step.parsed(path)
        except BTFError as exc:
            return "bad", f"{path.name} does not parse: {exc}"
        result = self.expr.evaluate(btf)
        return ("good" if result.value else "bad"), result.detail


@dataclass(frozen=True)
class CmdPredicate:
    text: str
    command: str
    timeout: float = CMD_TIMEOUT

    def judge(self, step: StepFiles) -> tuple[Outcome, str]:
        env = dict(os.environ, HARNESS_BTF=str(step.btf), HARNESS_BTF1=str(step.btf1),
                   HARNESS_BTF_IDS=str(step.btf_ids), HARNESS_ELF=str(step.elf),
                   HARNESS_STEP_DIR=str(step.work))
        log = step.work / "cmd.log"
        try:
            proc = subprocess.run(["/bin/sh", "-c", self.command], capture_output=True,
                                  env=env, timeout=self.timeout, cwd=step.work)
        except subprocess.TimeoutExpired:
            log.write_text(f"$ {self.command}\n(no exit within {self.timeout:g} s)\n")
            return "skip", f"cmd: did not finish within {self.timeout:g} s"
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        log.write_text(f"$ {self.command}\n{output}")
        last = output.strip().splitlines()
        said = f": {last[-1][:160]}" if last else ""
        if proc.returncode == 0:
            return "good", f"cmd: exit 0{said}"
        if proc.returncode == SKIP_STATUS:
            return "skip", f"cmd: exit 125 (skip){said}"
        return "bad", f"cmd: exit {proc.returncode}{said}"


@dataclass(frozen=True)
class RunPredicate:
    text: str
    source: Path
    build: BuildRequest | None = None  # the fixed kernel's request; set by bind()
    timeout: float = 60.0  # per program

    def bind(self, build: BuildRequest) -> RunPredicate:
        return replace(self, build=build)

    def judge(self, step: StepFiles) -> tuple[Outcome, str]:
        from harness import session  # noqa: PLC0415 - only a boot needs the session layer

        if self.build is None or step.pahole is None:
            raise UsageError(f"{self.text}: needs a kernel build request and the step's pahole")
        request = replace(self.build, pahole=str(step.pahole),
                          btfids=step.btfids or self.build.btfids)
        try:
            artifacts = session.build(request, quiet=True)
        except HarnessError as exc:
            return "bad", f"run: the kernel does not build with this tool: {exc}"
        run = session.judge(session.RunRequest(builds=(request,), sources=(self.source,),
                                               timeout=self.timeout), artifacts)
        name = self.source.name
        if run.error:
            return "bad", f"run:{name}: {run.error}"
        if not run.results:
            return "skip", f"run:{name}: no programs judged"
        failed = [r for r in run.results if r.failed]
        if not failed:
            return "good", f"run:{name}: {len(run.results)}/{len(run.results)} pass"
        first = failed[0]
        return "bad", (f"run:{name}: {len(failed)}/{len(run.results)} fail, first "
                       f"{first.program}: {first.reason[:120]}")


def parse(text: str) -> Predicate:
    """One `KIND:TEXT` predicate; an unknown kind or a bad expression is a UsageError."""
    kind, sep, body = text.partition(":")
    if not sep or not body.strip():
        raise UsageError(f"predicate {text!r}: write KIND:TEXT with KIND btf, btf1, cmd "
                         "or run")
    if kind in ("btf", "btf1"):
        return BtfPredicate(text, BtfExpr.parse(body), raw=kind == "btf1")
    if kind == "cmd":
        return CmdPredicate(text, body)
    if kind == "run":
        source = _program(body.strip())
        return RunPredicate(text, source)
    raise UsageError(f"predicate {text!r}: unknown kind {kind!r} (btf, btf1, cmd or run)")


def _program(name: str) -> Path:
    """A BPF C source: a path, or a name in the project's bpf_progs/."""
    for candidate in (Path(name), BPF_PROGS_DIR / name, BPF_PROGS_DIR / f"{name}.c"):
        if candidate.is_file():
            return candidate.resolve()
    raise UsageError(f"run:{name}: no such BPF source (a path, or a file of {BPF_PROGS_DIR})")


def needs_boot(predicate: Predicate) -> bool:
    return isinstance(predicate, RunPredicate)


def judge_all(predicates: list[Predicate], step: StepFiles) -> tuple[Outcome, str]:
    """AND of every predicate: bad wins, then skip; the details joined with '; '."""
    outcomes, details = [], []
    for predicate in sorted(predicates, key=needs_boot):  # boots last
        if "bad" in outcomes and needs_boot(predicate):
            break
        outcome, detail = predicate.judge(step)
        outcomes.append(outcome)
        details.append(detail)
    combined: Outcome = ("bad" if "bad" in outcomes else
                         "skip" if "skip" in outcomes else "good")
    return combined, "; ".join(details)
