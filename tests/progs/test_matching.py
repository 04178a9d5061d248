"""test_loader's message matching rules, on hand-made logs."""

from __future__ import annotations

import pytest

from harness.progs.matching import PatternError, assemble_ere, ere_to_python, make_pattern, validate

LOG = """0: R1=ctx() R10=fp0
; asm volatile ("r0 = 1;") @ prog.c:10
0: (b7) r0 = 1                        ; R0_w=1
1: (79) r1 = *(u64 *)(r10 +8)
invalid read from stack R10 off=8 size=8
processed 2 insns (limit 1000000)
"""


def pats(*texts: str, negative: tuple[int, ...] = ()) -> list:
    return [make_pattern(t, negative=i in negative) for i, t in enumerate(texts)]


def test_positive_in_order() -> None:
    assert validate(LOG, pats("(b7) r0 = 1", "invalid read from stack")).ok


def test_positive_out_of_order_fails() -> None:
    report = validate(LOG, pats("invalid read from stack", "(b7) r0 = 1"))
    assert not report.ok
    assert report.details[-1].startswith("EXPECTED")


def test_regex_part() -> None:
    assert validate(LOG, pats("{{[0-9]+}}: (79) r1 = *(u64 *)(r10 +8)")).ok
    assert not validate(LOG, pats("{{[a-z]+}}: (79)")).ok


def test_negative_only_between_neighbours() -> None:
    # "R0_w=1" sits before the first positive: not in the span after it.
    assert validate(LOG, pats("(79) r1", "R0_w=1", negative=(1,))).ok
    assert not validate(LOG, pats("(b7) r0", "R10", "processed", negative=(1,))).ok


def test_negative_run_uses_first_pattern_like_test_loader() -> None:
    # test_loader searches every member of a run of negatives with the first one.
    report = validate(LOG, pats("(b7) r0", "absent", "invalid read", negative=(1, 2)))
    assert report.ok


def test_on_next_line() -> None:
    text = "a 1\nb 2\nc 3\n"
    consecutive = [make_pattern("a 1", on_next_line=True), make_pattern("b 2", on_next_line=True)]
    assert validate(text, consecutive).ok
    gap = [make_pattern("a 1", on_next_line=True), make_pattern("c 3", on_next_line=True)]
    report = validate(text, gap)
    assert not report.ok and report.details[-2].startswith("WRONG LINE")
    relaxed = [make_pattern("a 1", on_next_line=True), make_pattern("c 3", on_next_line=False)]
    assert validate(text, relaxed).ok


def test_multiline_regex_with_backreference() -> None:
    text = "Attempted lock   = 0xabc\nTotal held locks = 1\nHeld lock[ 0] = 0xabc\n"
    pattern = make_pattern("{{Attempted lock   = (0x[0-9a-fA-F]+)\nTotal held locks = 1\n"
                           "Held lock\\[ 0\\] = \\1}}")
    assert validate(text, [pattern]).ok


def test_caret_anchors_at_search_start() -> None:
    # regexec on a pointer into the log: ^ matches where the search starts.
    text = "xx foo bar"
    assert validate(text, [make_pattern("foo"), make_pattern("{{^ bar}}")]).ok


def test_ere_translation() -> None:
    assert assemble_ere("a.b{{[0-9]+}}(c)") == r"a\.b[0-9]+\(c\)"
    assert ere_to_python("[^a]") == "[^\\na]"
    assert ere_to_python("[[:digit:]]+") == "[0-9]+"
    assert ere_to_python("[]a]") == "[\\]a]"
    with pytest.raises(PatternError):
        make_pattern("open {{ regex")
