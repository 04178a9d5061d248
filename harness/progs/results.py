"""Result records of program runs and their presentation (table, JSON).

One record per (object, program, mode, variant, arch): what the CLI table,
the pytest suite (one parametrized case per record) and the nightly JUnit
attach all read, so the verifier log and libbpf's messages travel with it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class ProgResult:
    """The verdict for one run of one program on one arch."""

    object: str  # object stem, e.g. "wq_failures"
    program: str  # run name: "prog", "prog @unpriv", "prog@rnd_hi32"
    arch: str
    verdict: str  # pass / fail / skip / error
    expected: str  # e.g. "success retval=5", "failure 2 msg"
    reason: str = ""
    time_ms: float | None = None  # load + test run on the target
    retval: int | None = None
    prog_flags: int | None = None
    verifier_log: str = ""
    libbpf_log: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    description: str | None = None

    @property
    def failed(self) -> bool:
        """A fail or an error: what makes a run exit 1 (skips and passes do not)."""
        return self.verdict in ("fail", "error")

    @property
    def test_id(self) -> str:
        return f"{self.object}/{self.program}[{self.arch}]"

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def failure_text(self, log_lines: int = 60) -> str:
        """What a failing test shows: the reason, libbpf's lines, the verifier log tail."""
        out = [f"{self.test_id}: {self.verdict}: {self.reason}"]
        out += self.details
        if self.libbpf_log:
            out.append("--- libbpf ---")
            out += [ln.rstrip() for ln in self.libbpf_log]
        if self.verifier_log:
            lines = self.verifier_log.rstrip().splitlines()
            out.append(f"--- verifier log (last {min(log_lines, len(lines))} of {len(lines)}) ---")
            out += lines[-log_lines:]
        return "\n".join(out)


def table(results: list[ProgResult]) -> str:
    """Program x arch table: verdict, expected, time (what `harness run` prints)."""
    arches = sorted({r.arch for r in results})
    rows: dict[tuple[str, str], dict[str, ProgResult]] = {}
    for r in results:
        rows.setdefault((r.object, r.program), {})[r.arch] = r
    name_w = max([len(f"{o}/{p}") for o, p in rows] + [7])
    head = f"{'program':<{name_w}}"
    for arch in arches:
        head += f"  {arch + ' verdict':<16} {'expected':<26} {'ms':>8}"
    lines = [head, "-" * len(head)]
    for (obj, prog), by_arch in rows.items():
        line = f"{obj + '/' + prog:<{name_w}}"
        for arch in arches:
            r = by_arch.get(arch)
            if r is None:
                line += f"  {'-':<16} {'':<26} {'':>8}"
                continue
            ms = f"{r.time_ms:.1f}" if r.time_ms is not None else ""
            line += f"  {r.verdict:<16} {r.expected[:26]:<26} {ms:>8}"
        lines.append(line)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    lines.append("")
    lines.append(", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    reasons = [r for r in results if r.verdict != "pass" and r.reason]
    if reasons:
        lines.append("")
        lines += [f"{r.test_id}: {r.verdict}: {r.reason}" for r in reasons]
    return "\n".join(lines)


def to_json(results: list[ProgResult]) -> str:
    return json.dumps([r.to_json() for r in results], indent=2)
