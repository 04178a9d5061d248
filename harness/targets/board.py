"""A lab board as a target that runs the kernel it is given: hold the board, connect,
deploy the build and verify it (deploy.py), then behave as the SSH target.

This is what `harness run --board` and `harness repro --board` open through the
registry's `board` kind. The board lock (boardlock.py) is taken before anything touches
the board and released on every exit path, so one runner owns it from deploy to the
last verdict. deploy=False runs on whatever the board runs now: the identity (release,
BTF hash) is still read and reported, never checked against the build.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Self

from harness.kbuild.artifacts import BuildArtifacts
from harness.targets.base import TargetIdentity
from harness.targets.boardlock import BoardLock
from harness.targets.deploy import Deployment, deploy
from harness.targets.inventory import Board
from harness.targets.ssh import SshTarget

LOCK_TIMEOUT = 600.0  # a nightly job waits this long for a board another runner holds


def _say_nothing(_line: str) -> None:
    pass


class BoardTarget(SshTarget):
    """SshTarget plus the board lock and a deploy of `kernel` at start()."""

    def __init__(self, board: Board, kernel: BuildArtifacts | None, *, deploy: bool = True,
                 known_hosts: Path | None = None, lock_timeout: float = LOCK_TIMEOUT,
                 say: Callable[[str], None] = _say_nothing) -> None:
        super().__init__(board, known_hosts=known_hosts)
        self.kernel = kernel
        self.deploy_kernel = deploy and kernel is not None
        self.deployment: Deployment | None = None
        self.found: TargetIdentity | None = None  # what the board ran when we connected
        self._lock = BoardLock(board.name, purpose="harness run", timeout=lock_timeout)
        self._held = False
        self._say = say

    def start(self) -> Self:
        if not self._held:
            self._lock.acquire()
            self._held = True
        try:
            super().start()
            if self.found is None:
                self.found = self.identity(timeout=self.board.command_timeout)
            if self.deploy_kernel and self.deployment is None:
                assert self.kernel is not None
                self.deployment = deploy(self, self.kernel, self._say)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._held:
                self._lock.release()
                self._held = False
