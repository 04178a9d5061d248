"""pytest plugin: the --arch option shared by the harness's test suites."""

from __future__ import annotations

import pytest

from harness.arch import arch_list
from harness.errors import UsageError


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kfunc-harness")
    group.addoption(
        "--arch",
        default="x86_64",
        help="comma-separated target architectures (x86_64,arm64); default x86_64",
    )


@pytest.fixture(scope="session")
def arches(request: pytest.FixtureRequest) -> list[str]:
    value = request.config.getoption("--arch")
    try:
        return [a.name for a in arch_list(value)]
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
