"""`harness cache show|prune`: the cache is every stage's, so its verbs live at the top."""

from __future__ import annotations

import argparse
import json

from harness import cache

# Sections pruned by least recent use; the rest are small or fetched once.
PRUNED = ("artifacts", "builds", "trees", "tools", "rootfs", "progs",
          "bisect/steps", "bisect/kernels", "bisect/pahole")


def register(sub: argparse._SubParsersAction) -> None:
    cache_cmd = sub.add_parser("cache", help="inspect or prune the harness cache")
    cache_sub = cache_cmd.add_subparsers(dest="cache_command", required=True)
    show = cache_sub.add_parser("show", help="sizes of the cache's sections")
    show.add_argument("--json", action="store_true", help="print the sizes as JSON")
    show.set_defaults(func=cmd_cache_show)
    prune = cache_sub.add_parser("prune", help="drop least recently used builds")
    prune.add_argument("--keep", default="20G", help="size to keep per section (default 20G)")
    prune.add_argument("--json", action="store_true", help="print what was removed as JSON")
    prune.set_defaults(func=cmd_cache_prune)


def parse_size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def cmd_cache_show(args: argparse.Namespace) -> int:
    root = cache.cache_root()
    sizes = ({p.name: cache.dir_size(p) for p in sorted(root.iterdir()) if p.is_dir()}
             if root.is_dir() else {})
    if args.json:
        print(json.dumps({"root": str(root), "bytes": sizes}, indent=2))
        return 0
    print(f"cache: {root}")
    for name, size in sizes.items():
        print(f"  {name:12s} {size / 2**30:7.2f} GiB")
    return 0


def cmd_cache_prune(args: argparse.Namespace) -> int:
    keep = parse_size(args.keep)
    removed = [str(path) for section in PRUNED for path in cache.prune(section, keep)]
    if args.json:
        print(json.dumps({"kept_per_section": keep, "removed": removed}, indent=2))
    else:
        for path in removed:
            print(f"removed {path}")
        print(f"kept at most {args.keep} per section")
    return 0
