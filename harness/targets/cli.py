"""`harness boot`: boot a kernel under QEMU and run one command (smoke test, debugging).

A panic or a hang ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.arch import arch_arg
from harness.targets.inventory import add_lab_option
from harness.targets.registry import open_target
from harness.targets.vng import GUEST_CPUS


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
    parser.add_argument("--cpus", type=int, default=GUEST_CPUS)
    parser.add_argument("--no-kvm", action="store_true", help="force TCG")
    parser.add_argument("--append", action="append", default=[], help="kernel cmdline option")
    parser.add_argument("--boot-timeout", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=60.0, help="command timeout (s)")
    parser.add_argument("command", nargs="?", default="uname -a", help="shell command")
    parser.set_defaults(func=_boot)

    lab = sub.add_parser("lab", help="the lab inventory: list boards, pin their host keys")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    listing = lab_sub.add_parser("list", help="the boards of the inventory")
    add_lab_option(listing)
    listing.add_argument("--json", action="store_true", help="print the boards as JSON")
    listing.set_defaults(func=_lab_list)
    trust = lab_sub.add_parser(
        "trust", help="pin the host key a board offers (prints its fingerprint)",
        description="Connect to BOARD, read the host key it offers and pin it in the "
        "board's known_hosts (its `known_hosts` key, else ~/.ssh/known_hosts). Check the "
        "fingerprint against the board's console (`ssh-keygen -lf /etc/ssh/ssh_host_*"
        "_key.pub`) before relying on it: after this, a changed key is refused.")
    trust.add_argument("board", help="a board name from the inventory")
    add_lab_option(trust)
    trust.add_argument("--replace", action="store_true",
                       help="replace a different key already pinned for the board")
    trust.set_defaults(func=_lab_trust)
    status = lab_sub.add_parser("status", help="who holds each board (machine-local locks)")
    add_lab_option(status)
    status.add_argument("--json", action="store_true", help="print the holders as JSON")
    status.set_defaults(func=_lab_status)


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



def _lab_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict  # noqa: PLC0415

    from harness.targets.inventory import load_inventory  # noqa: PLC0415

    boards = load_inventory(args.lab)
    if args.json:
        print(json.dumps([{k: (str(v) if isinstance(v, Path) else v)
                           for k, v in asdict(b).items() if k != "key_passphrase_env"}
                          for b in boards], indent=2))
        return 0
    for board in boards:
        tags = f"  [{', '.join(board.tags)}]" if board.tags else ""
        print(f"{board.name:16s} {board.arch:7s} {board.address}{tags}")
    return 0


def _lab_trust(args: argparse.Namespace) -> int:
    from harness.targets.inventory import find_board, load_inventory  # noqa: PLC0415
    from harness.targets.ssh import trust  # noqa: PLC0415

    board = find_board(load_inventory(args.lab), args.board)
    known = board.known_hosts or Path("~/.ssh/known_hosts").expanduser()
    print_fp, changed = trust(board, known, replace=args.replace)
    verb = "pinned in" if changed else "already pinned in"
    print(f"{board.name} ({board.host}:{board.port}) offers {print_fp}: {verb} {known}")
    return 0


def _lab_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict  # noqa: PLC0415

    from harness.targets.boardlock import holder, last_result  # noqa: PLC0415
    from harness.targets.inventory import load_inventory  # noqa: PLC0415

    rows = [(board, holder(board.name), last_result(board.name))
            for board in load_inventory(args.lab)]
    if args.json:
        print(json.dumps([{"board": b.name, "holder": asdict(h) if h else None,
                           "last": {"when": last[0], "summary": last[1]} if last else None}
                          for b, h, last in rows], indent=2))
        return 0
    for board, held, last in rows:
        state = "held by " + held.describe() if held else "free"
        when = (f"; last run {time.strftime('%Y-%m-%d %H:%M', time.localtime(last[0]))}: "
                f"{last[1]}") if last else ""
        print(f"{board.name:16s} {state}{when}")
    return 0
