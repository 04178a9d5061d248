"""pytest plugin: the --arch option shared by the harness's test suites."""

from __future__ import annotations

import pytest

KNOWN_ARCHES = ("x86_64", "arm64")


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
    chosen = [a.strip() for a in value.split(",") if a.strip()]
    unknown = [a for a in chosen if a not in KNOWN_ARCHES]
    if unknown:
        raise pytest.UsageError(f"unknown --arch {','.join(unknown)}; known: {KNOWN_ARCHES}")
    return chosen
