"""Matching expected messages against a verifier log or a BPF stream, as test_loader.c does.

``__msg``/``__not_msg``/``__stderr``/``__stdout`` patterns are verbatim text with
``{{...}}`` parts that are POSIX extended regular expressions, compiled with
``REG_EXTENDED | REG_NEWLINE``. test_loader matches positive patterns in
sequence (each search starts where the previous match ended), checks negative
patterns only in the span between the positive neighbours, and for stream /
disassembly patterns requires consecutive lines unless ``...`` came between.
The verdict of an upstream selftest depends on those details, so they are kept,
including one quirk noted in :func:`validate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.errors import HarnessError


class PatternError(HarnessError):
    """An expectation pattern that test_loader would refuse too (bad regex, open ``{{``)."""


# test_loader's escape set for verbatim text inside an ERE.
_ERE_SPECIALS = set(".[]\\()*+?{}|^$")
# test_loader assembles the ERE in a 256-byte buffer and fails when it overflows.
_REGEX_BUF = 256

_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v",
    "blank": " \\t",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "xdigit": "0-9A-Fa-f",
    "cntrl": "\\x00-\\x1f\\x7f",
    "print": "\\x20-\\x7e",
    "graph": "\\x21-\\x7e",
}


@dataclass(frozen=True)
class Pattern:
    """One expected (or, when ``negative``, forbidden) message."""

    text: str  # as written in the annotation
    negative: bool = False
    on_next_line: bool = False  # stream/disassembly patterns: must match on the next line
    regex: str | None = field(default=None, compare=False)  # Python re source when text has {{

    @property
    def is_regex(self) -> bool:
        return self.regex is not None

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "negative": self.negative, "on_next_line": self.on_next_line}


def make_pattern(text: str, *, negative: bool = False, on_next_line: bool = False) -> Pattern:
    """Build a pattern the way ``__push_msg`` does: a regex only when ``{{`` appears."""
    regex = ere_to_python(assemble_ere(text)) if "{{" in text else None
    if regex is not None:
        try:
            re.compile(regex, re.MULTILINE)
        except re.error as exc:
            raise PatternError(f"regex in {text!r} does not compile: {exc}") from None
    return Pattern(text, negative, on_next_line, regex)


def assemble_ere(pattern: str) -> str:
    """Turn ``text{{re}}text`` into one ERE: verbatim parts escaped (``compile_regex``)."""
    out: list[str] = []
    size = 0
    i = 0
    in_regex = False
    data = pattern
    while i < len(data):
        if size >= _REGEX_BUF - 2:
            raise PatternError(f"regexp too long: {pattern!r}")
        if not in_regex and data.startswith("{{", i):
            in_regex = True
            i += 2
            continue
        if in_regex and data.startswith("}}", i):
            in_regex = False
            i += 2
            continue
        ch = data[i]
        if not in_regex and ch in _ERE_SPECIALS:
            out.append("\\" + ch)
            size += 2
        else:
            out.append(ch)
            size += len(ch.encode())
        i += 1
    if in_regex:
        raise PatternError(f"regexp has open '{{{{' but no closing '}}}}': {pattern!r}")
    return "".join(out)


def ere_to_python(ere: str) -> str:
    """Translate a POSIX ERE (with REG_NEWLINE) into Python ``re`` syntax.

    Differences handled: bracket expressions (backslash is literal inside them,
    ``[:class:]`` names, a leading ``]`` is literal, and under REG_NEWLINE a
    negated list never matches a newline); everything outside brackets is
    already spelled the same way in both dialects. POSIX picks the longest
    leftmost match and Python the first alternative: only match *ends* of
    alternations can differ, which test_loader's patterns do not rely on.
    """
    out: list[str] = []
    i = 0
    n = len(ere)
    while i < n:
        ch = ere[i]
        if ch == "\\" and i + 1 < n:
            out.append(ere[i : i + 2])
            i += 2
        elif ch == "[":
            end, body = _bracket(ere, i)
            out.append(body)
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _bracket(ere: str, start: int) -> tuple[int, str]:
    i = start + 1
    negate = False
    if i < len(ere) and ere[i] == "^":
        negate = True
        i += 1
    items: list[str] = []
    first = True
    while i < len(ere):
        ch = ere[i]
        if ch == "]" and not first:
            body = "".join(items)
            if negate:
                return i + 1, "[^\\n" + body + "]"
            return i + 1, "[" + body + "]"
        first = False
        if ere.startswith("[:", i):
            close = ere.find(":]", i + 2)
            if close < 0:
                raise PatternError(f"unterminated character class in {ere!r}")
            name = ere[i + 2 : close]
            if name not in _POSIX_CLASSES:
                raise PatternError(f"unknown character class [:{name}:] in {ere!r}")
            items.append(_POSIX_CLASSES[name])
            i = close + 2
            continue
        if ch in "\\[]^":
            items.append("\\" + ch)
        else:
            items.append(ch)
        i += 1
    raise PatternError(f"unterminated bracket expression in {ere!r}")


def _match(pattern: Pattern, log: str, pos: int) -> tuple[int, int] | None:
    """Find ``pattern`` in ``log[pos:]``; (start, end) in ``log`` or None.

    Regexes search the remaining text as a new string, as ``regexec`` on a
    pointer into the log does: ``^`` matches at ``pos`` itself.
    """
    if pattern.regex is None:
        found = log.find(pattern.text, pos)
        if found < 0:
            return None
        return found, found + len(pattern.text)
    m = re.compile(pattern.regex, re.MULTILINE).search(log[pos:])
    if m is None:
        return None
    return pos + m.start(), pos + m.end()


@dataclass
class MatchReport:
    """Outcome of matching a list of patterns against one text."""

    ok: bool
    # One line per pattern up to the first failure, test_loader style:
    # "MATCHED    SUBSTR: '...'", "EXPECTED    REGEX: '...'", "UNEXPECTED ..." or "WRONG LINE".
    details: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(d for d in self.details if not d.startswith("MATCHED"))


def validate(text: str, patterns: list[Pattern]) -> MatchReport:
    """Check ``patterns`` against ``text`` with test_loader's ``validate_msgs`` rules.

    Quirk kept on purpose: for a run of consecutive negative patterns
    test_loader searches the span with the *first* negative pattern of the run
    for every member (its inner loop reuses ``msg``), so later members of the
    run are not checked. Keeping it gives upstream selftests their upstream
    verdicts.
    """
    cnt = len(patterns)
    starts: list[int | None] = [None] * cnt
    ends: list[int | None] = [None] * cnt
    lines = [0] * cnt

    # Positive patterns, sequentially.
    pos = 0
    prev_start = 0
    line = 0
    for i, pat in enumerate(patterns):
        if pat.negative:
            continue
        found = _match(pat, text, pos)
        if found is not None:
            line += text.count("\n", prev_start, found[0])
            starts[i], ends[i] = found
            lines[i] = line
            prev_start = found[0]
            pos = found[1]

    # Negative patterns, inside the span between positive neighbours.
    span_start = 0
    i = 0
    while i < cnt:
        pat = patterns[i]
        if not pat.negative:
            end_i = ends[i]
            span_start = end_i if end_i else span_start
            i += 1
            continue
        span_end = len(text)
        nxt = i + 1
        while nxt < cnt:
            if not patterns[nxt].negative:
                nxt_start = starts[nxt]
                # An unmatched positive neighbour leaves a NULL end in C: nothing fits.
                span_end = nxt_start if nxt_start is not None else -1
                break
            nxt += 1
        for j in range(i, nxt):
            found = _match(pat, text, span_start)
            if found is not None and found[1] <= span_end:
                starts[j], ends[j] = found
        i = nxt

    details: list[str] = []
    prev: int | None = None
    for i, pat in enumerate(patterns):
        kind = " REGEX" if pat.is_regex else "SUBSTR"
        no_match = not pat.negative and starts[i] is None
        wrong_line = (
            not pat.negative
            and pat.on_next_line
            and prev is not None
            and lines[prev] + 1 != lines[i]
        )
        unexpected = pat.negative and starts[i] is not None
        if no_match or wrong_line or unexpected:
            if wrong_line:
                status = "WRONG LINE"
            elif no_match:
                status = "EXPECTED  "
            else:
                status = "UNEXPECTED"
            details.append(f"{status} {kind}: {pat.text!r}")
            if wrong_line and prev is not None:
                details.append(
                    f"expecting match at line {lines[prev] + 1}, actual match is at line {lines[i]}"
                )
            return MatchReport(False, details)
        details.append(f"MATCHED    {kind}: {pat.text!r}")
        if not pat.negative:
            prev = i
    return MatchReport(True, details)
