"""pytest plugin: the --arch and --board options shared by the harness's test suites.

`--board NAME` (with `--lab FILE`) runs the program suite on that lab board instead of
a QEMU guest: the kernel is built with the board's kconfig, deployed and verified, as
`harness run --board` does; tests read the board through the `lab_board` fixture."""

from __future__ import annotations

import pytest

from harness.arch import arch_list
from harness.errors import UsageError
from harness.targets.inventory import DEFAULT_LAB


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kfunc-harness")
    group.addoption(
        "--arch",
        default="x86_64",
        help="comma-separated target architectures (x86_64,arm64); default x86_64",
    )
    group.addoption("--board", default=None, metavar="NAME",
                    help="run the program suite on this lab board instead of QEMU")
    group.addoption("--lab", default=DEFAULT_LAB, metavar="FILE",
                    help=f"the lab inventory --board is read from (default ./{DEFAULT_LAB})")


def board_option(config: pytest.Config):  # noqa: ANN201 - inventory.Board | None
    """The --board of this session from its --lab inventory, or None."""
    name = config.getoption("--board")
    if not name:
        return None
    from harness.targets.inventory import find_board, load_inventory  # noqa: PLC0415

    try:
        return find_board(load_inventory(config.getoption("--lab")), name)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def lab_board(request: pytest.FixtureRequest):  # noqa: ANN201 - inventory.Board | None
    return board_option(request.config)


@pytest.fixture(scope="session")
def arches(request: pytest.FixtureRequest) -> list[str]:
    value = request.config.getoption("--arch")
    try:
        return [a.name for a in arch_list(value)]
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
