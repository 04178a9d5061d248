"""`harness boot`: boot a kernel under QEMU and run one command (smoke test, debugging).

A panic or a hang ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from harness.targets.registry import open_target


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("boot", help="boot a kernel under QEMU (virtme-ng) and run a command")
    parser.add_argument("--kernel", required=True, help="bzImage / Image to boot")
    parser.add_argument("--arch", default=None, help="x86_64 (default: host) or arm64")
    parser.add_argument("--root", default=None,
                        help="guest root tree (default: cached Debian tree; 'host': this host's /)")
    parser.add_argument("--memory", default="1G")
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--no-kvm", action="store_true", help="force TCG")
    parser.add_argument("--append", action="append", default=[], help="kernel cmdline option")
    parser.add_argument("--boot-timeout", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=60.0, help="command timeout (s)")
    parser.add_argument("command", nargs="?", default="uname -a", help="shell command")
    parser.set_defaults(func=_boot)


def _boot(args: argparse.Namespace) -> int:
    target = open_target(
        "qemu", args.kernel, args.arch, root=args.root, memory=args.memory, cpus=args.cpus,
        kvm=False if args.no_kvm else None, boot_timeout=args.boot_timeout,
        append=args.append,
    )
    with target:
        result = target.run(args.command, timeout=args.timeout)
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    return result.rc

