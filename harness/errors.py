"""The one error family the CLI turns into a one-line message and an exit code."""


class HarnessError(Exception):
    """A user-facing failure: printed as one line, never as a traceback."""

    exit_code = 1


class UsageError(HarnessError):
    """Bad input from the user (unknown release, broken file, bad flag)."""

    exit_code = 2
