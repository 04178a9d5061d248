"""Errors of the resolve_btfids drop-in, carrying the C tool's exit codes.

Why a separate family: kbuild only looks at the exit status, and the C tool
exits 255 for every failure (main() returns -1) and 129 for a bad command
line (parse-options' usage_with_options). A replacement must exit the same
way so `make` output and scripts that test `$?` behave identically.
"""

from __future__ import annotations

from harness.errors import HarnessError

# main() returns -1 on any failure: the shell sees 255.
EXIT_FAILURE = 255
# parse-options' usage_with_options() exits 129.
EXIT_USAGE = 129


class BtfidsError(HarnessError):
    """A failure of the transformer, printed as one line (the C tool's wording where it has one)."""

    exit_code = EXIT_FAILURE


class BtfidsUsageError(BtfidsError):
    """A bad command line: usage text and exit code 129, as parse-options does."""

    exit_code = EXIT_USAGE
