"""Find kernel splats in console text, so a run that triggers one fails with its lines.

Only the kernel's own report formats are matched (a user-space "WARNING: ..." from
virtme-ng or a test must not fail a run); the first matching line of a report names its
kind, and the report is collected up to the kernel's end marker or a line budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.targets.errors import KernelPanic, KernelSplat

# Most specific first: a lockdep report starts with "WARNING:", a KASAN one with "BUG:".
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rx))
    for kind, rx in (
        ("panic", r"Kernel panic - not syncing"),
        ("KASAN", r"BUG: KASAN: |KASAN: \S+ in "),
        (
            "lockdep",
            r"possible circular locking dependency detected|inconsistent lock state"
            r"|possible recursive locking detected|suspicious RCU usage",
        ),
        ("RCU stall", r"rcu: INFO: \w+ (self-)?detected stalls?|rcu: .*self-detected stall"),
        ("hung task", r"INFO: task \S.* blocked for more than \d+ seconds"),
        ("Oops", r"^Oops: |Internal error: Oops|^Oops\b"),
        ("BUG", r"^BUG: |kernel BUG at |watchdog: BUG: "),
        # 7.2+ (__warn_printk's new head): "WARNING: file.c:1043 at func+0x5/0x8 [mod],
        # CPU#0: comm/65"; before it: "WARNING: CPU: 0 PID: 65 at file.c:1043 func+0x5/0x8"
        ("WARNING", r"^WARNING: CPU: \d+ PID: \d+ at |^WARNING: .* at \S+:\d+"
                    r"|^WARNING: \S+:\d+ at \S+.*, CPU#\d+: "),
    )
)
# /proc/sys/kernel/tainted bits a splat sets: M (machine check), B (bad page), D (die:
# Oops/BUG), W (warning), L (soft lockup). Loading an out-of-tree or unsigned module sets
# O/E, which is no splat and must not cost a wait for one.
SPLAT_TAINT_MASK = (1 << 4) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 14)


def taint_means_splat(before: int, after: int) -> bool:
    """Did the kernel taint change in a way only a splat causes? (-1: unreadable)"""
    if before < 0 or after < 0:
        return False
    return bool(after & ~before & SPLAT_TAINT_MASK)

_TIMESTAMP = re.compile(r"^(<\d+>)?\[\s*\d+\.\d+\]\s?")
_END = re.compile(r"---\[ end (trace|Kernel panic)")
_CUT = "------------[ cut here ]------------"
_PID = re.compile(r"\bPID: (\d+)\b|\bCPU#\d+: \S+/(\d+)\b")
MAX_LINES = 80


@dataclass(frozen=True)
class Splat:
    """One kernel report: its kind ("panic", "Oops", ...), first line index and lines."""

    kind: str
    start: int
    lines: tuple[str, ...]

    @property
    def pid(self) -> int | None:
        """The task the report ran in: its "PID: N" (a BUG's or Oops's CPU line, a WARNING
        before 7.2) or 7.2+'s "CPU#0: comm/N"; None when it names none."""
        for line in self.lines:
            found = _PID.search(line)
            if found:
                return int(found.group(1) or found.group(2))
        return None

    @property
    def head(self) -> str:
        for line in self.lines:
            if _CUT not in line:
                return line.strip()
        return self.kind


def _kind_of(line: str) -> str | None:
    body = _TIMESTAMP.sub("", line.strip("\r"))
    for kind, rx in _KINDS:
        if rx.search(body):
            return kind
    return None


def find_splats(text: str) -> list[Splat]:
    """Every splat in `text`, in order; a report's own lines never start a second splat."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    splats: list[Splat] = []
    i = 0
    while i < len(lines):
        kind = _kind_of(lines[i])
        if kind is None:
            i += 1
            continue
        start = i - 1 if i > 0 and _CUT in lines[i - 1] else i
        end = i + 1
        while end < len(lines) and end - start < MAX_LINES:
            if _END.search(lines[end]):
                end += 1
                break
            if kind != "panic" and _kind_of(lines[end]) == "panic":
                break
            end += 1
        splats.append(Splat(kind, start, tuple(ln.rstrip("\r") for ln in lines[start:end])))
        i = end
    return splats


def unreported_taint(before: int, after: int, console: str, context: str = "") -> None:
    """Raise KernelSplat for a splat's taint with no report we recognise in the console:
    a kernel whose report format is new to us still fails the command, not passes it."""
    if taint_means_splat(before, after):
        tail = [line for line in console.splitlines() if line.strip()][-MAX_LINES:]
        raise KernelSplat("taint", tail, context=context,
                          head=f"kernel taint went {before:#x} -> {after:#x} with no report "
                          "the harness recognises (console tail attached)")


def check_console(text: str, context: str = "") -> None:
    """Raise KernelPanic (if any splat is a panic) or KernelSplat for the first splat."""
    splats = find_splats(text)
    if not splats:
        return
    lines = [line for s in splats for line in s.lines][: MAX_LINES * 2]
    panic = next((s for s in splats if s.kind == "panic"), None)
    if panic is not None:
        raise KernelPanic("panic", lines, context=context, head=panic.head)
    first = splats[0]
    raise KernelSplat(first.kind, lines, context=context, head=first.head)
