"""The matrix's progress: a line per cell (done/total, its current stage), then a line
with its outcome that stays.

Why two modes: on a terminal a sequential run of 36 cells should show where it is
without scrolling build chatter away (the line is rewritten in place); in a CI log, where
`\\r` is garbage, and whenever cells run in parallel (--jobs), each stage change is its
own line naming its cell, so a log shows how far every cell got before a runner died.
Cells report from worker threads: every write holds one lock.
"""

from __future__ import annotations

import shutil
import sys
import threading
from typing import TextIO

_CLEAR = "\r\x1b[K"


class Progress:
    """Where the matrix is: `[3/36] 7.2-pahole1.24-c-x86_64: build: kernel`."""

    def __init__(self, total: int, stream: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._shown = ""  # the live line now on screen, redrawn after a note

    def cell(self, number: int, cell_id: str) -> CellProgress:
        """The progress of cell `number`, announced as started."""
        handle = CellProgress(self, f"[{number}/{self.total}] {cell_id}")
        handle.stage("start")
        return handle

    def _stage(self, line: str) -> None:
        with self._lock:
            if self.live:
                width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
                self._shown = line if len(line) <= width else line[:width - 3] + "..."
                self.stream.write(_CLEAR + self._shown)
            else:
                self.stream.write(f"harness: matrix {line}\n")
            self.stream.flush()

    def _permanent(self, line: str, *, redraw: bool) -> None:
        with self._lock:
            self.stream.write((_CLEAR if self.live else "") + line + "\n")
            if self.live and redraw and self._shown:
                self.stream.write(self._shown)
            if not redraw:
                self._shown = ""
            self.stream.flush()


class CellProgress:
    """One cell's line: its stages, notes that stay, and its outcome."""

    def __init__(self, progress: Progress, prefix: str) -> None:
        self.progress = progress
        self.prefix = prefix

    def stage(self, text: str) -> None:
        """The cell's current stage: replaces the live line, or one log line."""
        self.progress._stage(f"{self.prefix}: {text}")

    def note(self, text: str) -> None:
        """A line that stays (a cell's note), above the live line."""
        self.progress._permanent(f"harness: {text}", redraw=True)

    def finish(self, text: str) -> None:
        """The cell's outcome, kept; the live line is gone until the next cell starts."""
        self.progress._permanent(f"harness: matrix {self.prefix}: {text}", redraw=False)
