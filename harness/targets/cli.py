"""`harness boot`: boot a kernel under QEMU and run one command (smoke test, debugging).

A panic or a hang ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from harness.arch import arch_arg
from harness.targets.registry import open_target


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("boot", help="boot a kernel under QEMU (virtme-ng) and run a command")
    image = parser.add_mutually_exclusive_group(required=True)
    image.add_argument("--image", help="the bzImage / Image file to boot")
    image.add_argument("--kernel", dest="old_kernel", metavar="IMAGE",
                       help="deprecated spelling of --image (elsewhere --kernel names a "
                       "release)")
    parser.add_argument("--arch", default=None, type=arch_arg,
                        help="x86_64 or arm64 (default: the image's, else the host's)")
    parser.add_argument("--json", action="store_true",
                        help="print rc, output and boot seconds as JSON")
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
    if args.old_kernel:
        print("harness: warning: `boot --kernel IMAGE` is deprecated, use --image",
              file=sys.stderr)
    target = open_target(
        "qemu", args.image or args.old_kernel, args.arch, root=args.root, memory=args.memory,
        cpus=args.cpus,
        kvm=False if args.no_kvm else None, boot_timeout=args.boot_timeout,
        append=args.append,
    )
    with target:
        result = target.run(args.command, timeout=args.timeout)
    if args.json:
        print(json.dumps({"rc": result.rc, "stdout": result.out, "stderr": result.err,
                          "boot_seconds": target.boot_seconds,
                          "seconds": round(result.duration, 3)}, indent=2))
        return result.rc
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    return result.rc

