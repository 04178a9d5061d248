"""Loopback board fixtures: a QEMU guest with sshd that the tests reach only through
the lab.toml it writes (harness/targets/loopback.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.targets import loopback, procs
from harness.targets.inventory import Board, find_board, load_inventory


def board_kernel(kernel_builder: Callable[..., BuildArtifacts]) -> BuildArtifacts:
    """The suite's x86_64 kernel with kconfigs/board.config (a NIC, kexec)."""
    return kernel_builder("x86_64", kconfigs=(str(loopback.BOARD_FRAGMENT),))


@pytest.fixture(scope="module")
def board_build(kernel_builder: Callable[..., BuildArtifacts]) -> BuildArtifacts:
    return board_kernel(kernel_builder)


@pytest.fixture(scope="module")
def loopback_board(board_build: BuildArtifacts,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[loopback.LoopbackBoard]:
    """A powered-on loopback board booting the board kernel; powered off afterwards, and
    none of its QEMU processes may outlive the module."""
    with powered_board(tmp_path_factory.mktemp("board"), board_build) as board:
        yield board


@contextlib.contextmanager
def powered_board(state_dir: Path, build: BuildArtifacts,
                  **options: Any) -> Iterator[loopback.LoopbackBoard]:
    """A new loopback board on `build`, on and answering SSH; off afterwards, and none
    of its QEMU processes may outlive it."""
    options.setdefault("name", unique_name())
    board = loopback.create(state_dir, build.boot_image, **options)
    loopback.power_on(board)
    try:
        loopback.wait_ssh(board)
        yield board
    finally:
        loopback.power_off(board)
    assert procs.guest_processes(board.marker) == []


def unique_name() -> str:
    """A board name of its own: the board lock is per name, machine-wide, and the other
    xdist worker's boards must not hold it (a shared "loopback" made one test see the
    other's run as the holder)."""
    return f"loopback-{uuid.uuid4().hex[:8]}"


def inventory_board(board: loopback.LoopbackBoard) -> Board:
    """The board as lab.toml describes it: what every test reaches it through."""
    return find_board(load_inventory(board.lab_toml), board.name)


def console_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.is_file() else []
