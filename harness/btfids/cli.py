"""resolve_btfids' command line, for `python -m harness.btfids` and `harness btfids`.

Why a hand-shaped argparse: kbuild calls `$(RESOLVE_BTFIDS) [flags] --btf F ELF`
and `--patch_btfids BLOB ELF`, so the drop-in must accept exactly what the C
tool's parse-options accepts (long options with `=` or a separate value,
unambiguous abbreviations, bundled short options, stopping at the first
non-option) and fail like it: usage on stderr, exit status 129.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from harness.btfids.errors import EXIT_USAGE, BtfidsError, BtfidsUsageError
from harness.btfids.profiles import PROFILES

USAGE = """\
 Usage: resolve_btfids [<options>] <ELF object>
    or: resolve_btfids --patch_btfids <.BTF_ids file> <ELF object>

    -b, --btf_base <file>
                          path of file providing base BTF
    -v, --verbose         be more verbose (show errors, etc)
        --btf <file>      path to a file with input BTF data
        --distill_base    distill --btf_base and emit .BTF.base section data
        --fatal_warnings  turn warnings into errors
        --patch_btfids <file>
                          path to .BTF_ids section data blob to patch into ELF file
        --profile <6.12|7.2|7.3|next>
                          behave as that tree's resolve_btfids (default: from the ELF)
        --discover-kfuncs find kfuncs from BTF_SET8_KFUNCS sets on any tree, tolerating
                          flag differences that do not change BTF
"""


class _Parser(argparse.ArgumentParser):
    """argparse that fails the parse-options way (usage + exit 129)."""

    def error(self, message: str) -> NoReturn:
        raise BtfidsUsageError(f"\n{USAGE}\n  Error: {message}\n")

    def print_help(self, file: object = None) -> None:  # noqa: ARG002 - parse-options prints usage
        sys.stderr.write(f"\n{USAGE}\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        sys.exit(EXIT_USAGE if status == 0 else status)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of resolve_btfids (and our two), on any parser."""
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("--btf", metavar="FILE")
    parser.add_argument("-b", "--btf_base", metavar="FILE")
    parser.add_argument("--fatal_warnings", action=argparse.BooleanOptionalAction,
                        default=False)
    parser.add_argument("--distill_base", action=argparse.BooleanOptionalAction,
                        default=False)
    parser.add_argument("--patch_btfids", metavar="BLOB")
    parser.add_argument("--profile", choices=tuple(PROFILES),
                        help="behave as that tree's resolve_btfids (default: from the ELF's "
                        "kernel version, then kbuild's VERSION/PATCHLEVEL, then 7.3)")
    parser.add_argument("--discover-kfuncs", dest="discover", default=None,
                        action=argparse.BooleanOptionalAction,
                        help="find kfuncs from BTF_SET8_KFUNCS sets even where the tree's "
                        "tool would not (default: when the BTF has no bpf_kfunc tags, 7.2)")
    parser.add_argument("--per-arg-tags", action="store_true",
                        help="also emit per-argument kfunc flags as bpf_kfunc_arg:<flag> "
                        "decl tags (not upstream's; docs/per-arg-flags.md)")
    parser.add_argument("--arg-table", metavar="TOML",
                        help="kfunc-args.toml: per-argument flags neither the KF_* flags nor "
                        "the parameter names say (with --per-arg-tags)")
    parser.add_argument("--no-kernel-check", dest="kernel_check", action="store_false",
                        help="write output BTF even when the tree's kernel would refuse it "
                        "at boot (checked by default where the tree's btf.c is modelled: 7.3)")
    # PARSE_OPT_STOP_AT_NON_OPTION: everything from the first operand on is operands
    parser.add_argument("objects", nargs=argparse.REMAINDER, metavar="ELF")


def _view_store() -> str | None:
    """Where a --btf_base's kernel view is kept between runs: the harness cache's
    kernel-views/, or nowhere when there is no cache to find (no HOME, as kbuild's
    environment could have); the tool then checks the base every run, as before."""
    from harness.cache import cache_root

    try:
        return str(cache_root() / "kernel-views")
    except (RuntimeError, KeyError):
        return None


def execute(args: argparse.Namespace) -> int:
    """Run what the parsed command line asks for; BtfidsError on failure."""
    from harness.btf.codec import gc_paused
    from harness.btfids import resolve
    from harness.btfids.elf import patch_section

    objects = list(args.objects)
    if objects and objects[0] == "--":
        objects = objects[1:]
    if len(objects) != 1:
        raise BtfidsUsageError(f"\n{USAGE}")
    elf = objects[0]
    if args.patch_btfids:
        patch_section(elf, args.patch_btfids)
        return 0
    opts = resolve.Options(
        elf=elf, btf=args.btf, base=args.btf_base, distill_base=args.distill_base,
        fatal_warnings=args.fatal_warnings, verbose=args.verbose, profile=args.profile,
        discover=args.discover, per_arg_tags=args.per_arg_tags or bool(args.arg_table),
        arg_table=args.arg_table, kernel_check=args.kernel_check,
        view_store=_view_store(),
    )
    # One pause for the whole run instead of one per phase: at the end of each phase the
    # collector walked every type object still alive (~70 ms of a 0.7 s vmlinux run);
    # after the run they are freed by reference counting (BTF objects hold no cycles)
    with gc_paused():
        resolve.run(opts)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.btfids`: the C tool's messages, bare, and its exit codes."""
    parser = _Parser(prog="resolve_btfids", add_help=True, allow_abbrev=True)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
        return execute(args)
    except BtfidsError as exc:
        text = str(exc)
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback, for kbuild logs
        if os.environ.get("HARNESS_BTFIDS_TRACEBACK"):
            raise
        print(f"resolve_btfids: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 255


def register(subparsers: argparse._SubParsersAction) -> None:
    """`harness btfids ...`: the same command line as a harness subcommand."""
    p = subparsers.add_parser(
        "btfids", help="resolve_btfids drop-in: patch .BTF_ids, transform kfunc BTF",
        description="The Python resolve_btfids: same options, outputs and exit codes as the "
        "C tool of the kernel tree (profile 7.2 or 7.3).")
    add_arguments(p)
    p.set_defaults(func=execute)
