"""The matrix's progress: one live line per cell (done/total, its current stage), then a
line with its outcome that stays.

Why two modes: on a terminal a nightly run of 36 cells should show where it is without
scrolling build chatter away (the line is rewritten in place); in a CI log, where `\\r`
is garbage, each stage change is its own line, so a log shows how far a cell got before
a runner was killed.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

_CLEAR = "\r\x1b[K"


class Progress:
    """Where the matrix is: `[3/36] 7.2-pahole1.24-c-x86_64: build: kernel`."""

    def __init__(self, total: int, stream: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.prefix = ""
        self._shown = ""  # the live line now on screen, redrawn after a note

    def start(self, number: int, cell_id: str) -> None:
        self.prefix = f"[{number}/{self.total}] {cell_id}"
        self.stage("start")

    def stage(self, text: str) -> None:
        """The cell's current stage: replaces the live line, or one log line."""
        line = f"{self.prefix}: {text}"
        if self.live:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            self._shown = line if len(line) <= width else line[:width - 3] + "..."
            self.stream.write(_CLEAR + self._shown)
        else:
            self.stream.write(f"harness: matrix {line}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (a cell's note), above the live line."""
        self._permanent(f"harness: {text}")
        if self.live and self._shown:
            self.stream.write(self._shown)
            self.stream.flush()

    def finish(self, text: str) -> None:
        """The cell's outcome, kept; the live line is gone until the next cell starts."""
        self._permanent(f"harness: matrix {self.prefix}: {text}")
        self._shown = ""

    def _permanent(self, line: str) -> None:
        self.stream.write((_CLEAR if self.live else "") + line + "\n")
        self.stream.flush()
