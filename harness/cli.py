"""`harness` command line: one subcommand family per stage, errors as one line."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from harness.errors import HarnessError

# Each module exposes register(subparsers); a subcommand sets `func(args) -> int`.
STAGE_MODULES = (
    "harness.cache_cli",
    "harness.kbuild.cli",
    "harness.btf.cli",
    "harness.btfids.cli",
    "harness.targets.cli",
    "harness.progs.cli",
    "harness.bisect.cli",
    "harness.matrix.run",
    "harness.repro",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Build kernels whose kfunc BTF went through a Python resolve_btfids, "
        "boot them and judge selftest-style BPF programs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken verb module must not vanish from --help
            raise HarnessError(f"cannot load the verbs of {name}: "
                               f"{type(exc).__name__}: {exc}") from exc
        module.register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP (a `kill`, a CI job cancelled, a closed terminal): unwinds like
    Ctrl-C, so every open target is closed and its QEMU or deploy stopped on the way out
    (a default SIGTERM would end the interpreter there and leave the guest running)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _main(argv)
    except Terminated as exc:
        print(f"harness: terminated by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str] | None) -> int:
    try:
        parser = build_parser()
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
