"""The matrix progress line: rewritten in place on a terminal, one line per stage in a log."""

from __future__ import annotations

import io

from harness.matrix.progress import Progress


def test_a_log_gets_one_line_per_stage() -> None:
    out = io.StringIO()
    progress = Progress(36, out, live=False).cell(3, "7.2-pahole1.24-c-x86_64")
    progress.stage("build: kernel")
    progress.note("7.2-pahole1.24-c-x86_64: upstream:x: not in this tree")
    progress.finish("pass (12 s): 80 pass")
    assert out.getvalue().splitlines() == [
        "harness: matrix [3/36] 7.2-pahole1.24-c-x86_64: start",
        "harness: matrix [3/36] 7.2-pahole1.24-c-x86_64: build: kernel",
        "harness: 7.2-pahole1.24-c-x86_64: upstream:x: not in this tree",
        "harness: matrix [3/36] 7.2-pahole1.24-c-x86_64: pass (12 s): 80 pass",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_terminal_line_is_rewritten_and_outcomes_stay() -> None:
    out = io.StringIO()
    progress = Progress(2, out, live=True).cell(1, "a")
    progress.stage("build: kernel")
    progress.note("a: a note")
    progress.finish("fail (3 s): 1 fail")
    text = out.getvalue()
    # What stays on screen: every permanent line, and nothing of the rewritten ones.
    screen: list[str] = []
    current = ""
    for chunk in text.split("\r\x1b[K"):  # a clear drops what was on the line
        *finished, current = chunk.split("\n")
        screen += finished
    assert screen == ["harness: a: a note", "harness: matrix [1/2] a: fail (3 s): 1 fail"]
    assert current == ""
    assert "[1/2] a: build: kernel" in text  # was shown, then replaced


def test_a_long_stage_is_cut_to_the_terminal(monkeypatch) -> None:  # noqa: ANN001
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((40, 20)))
    out = io.StringIO()
    progress = Progress(1, out, live=True).cell(1, "cell")
    progress.stage("x" * 100)
    last = out.getvalue().split("\r\x1b[K")[-1]
    assert len(last) == 39 and last.endswith("...")


def test_parallel_cells_write_whole_lines() -> None:
    """Cells reporting from threads at once: every line whole and naming its cell."""
    import threading

    out = io.StringIO()
    progress = Progress(8, out, live=False)

    def cell(number: int) -> None:
        handle = progress.cell(number, f"cell{number}")
        for stage in range(50):
            handle.stage(f"stage {stage}")
        handle.finish("pass")

    threads = [threading.Thread(target=cell, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 * 52
    for number in range(1, 9):
        mine = [ln for ln in lines if f"[{number}/8] cell{number}:" in ln]
        assert len(mine) == 52 and mine[-1].endswith(": pass")
