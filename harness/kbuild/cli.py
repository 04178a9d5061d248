"""`harness build` and `harness cache`: the build pipeline's command line."""

from __future__ import annotations

import argparse
import json
import shlex

from harness import cache
from harness.arch import arch_arg
from harness.kbuild import patches, toolchains
from harness.kbuild.build import Builder, BuildPlan, BuildRequest, make_plan
from harness.kbuild.sources import DEBIAN_RELEASES


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that starts from a kernel build (build, run, ...)."""
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--tree", metavar="PATH", help="a kernel tree (git or unpacked); "
                     "never modified")
    src.add_argument("--kernel", metavar="RELEASE",
                     help="a Debian linux-source release fetched into the cache "
                     f"({', '.join(DEBIAN_RELEASES)}; default 7.3)")
    parser.add_argument("--patches", metavar="DIR|MBOX", help="a patch series to apply first")
    parser.add_argument("--kconfig", metavar="FILE", action="append", default=[],
                        help="an extra Kconfig fragment, merged after the project's (repeatable)")
    parser.add_argument("--pahole", default=toolchains.DEFAULT_PAHOLE,
                        help="system, 1.24, 1.30, 1.32 or a path (default %(default)s)")
    parser.add_argument("--btfids", default=toolchains.DEFAULT_BTFIDS,
                        help="resolve_btfids kbuild runs: c, python or a path "
                        "(default %(default)s)")
    parser.add_argument("--allow-config-drift", action="store_true",
                        help="build even if requested Kconfig symbols did not take")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="make -j (default: cpus)")
    parser.add_argument("--no-ccache", action="store_true", help="compile without ccache")


def request_from_args(args: argparse.Namespace, arch: str) -> BuildRequest:
    request = BuildRequest(arch=arch, tree=args.tree, kernel=args.kernel, patches=args.patches,
                           kconfigs=args.kconfig, pahole=args.pahole, btfids=args.btfids,
                           allow_config_drift=args.allow_config_drift,
                           use_ccache=not args.no_ccache)
    if args.jobs:
        request.jobs = args.jobs
    return request


def register(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser("build", help="build a kernel whose BTF stage the harness controls")
    build.add_argument("--arch", default="x86_64", type=arch_arg,
                       help="target architecture (default %(default)s)")
    add_build_options(build)
    build.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    build.add_argument("--json", action="store_true", help="print the artifact paths as JSON")
    build.set_defaults(func=cmd_build)

    cache_cmd = sub.add_parser("cache", help="inspect or prune the harness cache")
    cache_sub = cache_cmd.add_subparsers(dest="cache_command", required=True)
    show = cache_sub.add_parser("show", help="sizes of the cache's sections")
    show.set_defaults(func=cmd_cache_show)
    prune = cache_sub.add_parser("prune", help="drop least recently used builds")
    prune.add_argument("--keep", default="20G", help="size to keep per section (default 20G)")
    prune.set_defaults(func=cmd_cache_prune)


def print_plan(plan: BuildPlan, builder: Builder) -> None:
    print(f"source:    {plan.source.description}")
    print(f"           {plan.source.path}")
    for index, patch in enumerate(plan.patch_series, 1):
        print(f"patch {index:3d}: {patch.name}")
    print("fragments: " + " ".join(str(f.path) for f in plan.fragments))
    for name, value in plan.toolchain_report().items():
        print(f"{name + ':':10s} {value}")
    tree = (patches.patched_source(plan.source, plan.patch_series) if plan.patch_series
            else plan.source)
    if plan.patch_series:
        print(f"patched:   {tree.path}")
    print(f"config:    cache key {builder.config_key(tree)} (over tinyconfig)")
    print(f"tools:     {builder.tools_dir(tree)} (libbpf, bpftool)")
    build_dir = cache.cache_root() / "builds" / "<key>"
    print("make:      " + shlex.join(plan.kernel_make(tree.path, build_dir)))


def cmd_build(args: argparse.Namespace) -> int:
    plan = make_plan(request_from_args(args, args.arch))
    builder = Builder(plan, quiet=args.json)
    if args.dry_run:
        print_plan(plan, builder)
        source = builder.prepared_source() if not plan.patch_series else None
        if source is not None:
            text = builder.merged_config(source)
            key = builder.compile_key(source, plan.arch, text, plan.compiler)
            print(f"build dir: {cache.cache_root() / 'builds' / key}")
            print(f"cache key: {builder.full_key(key)}")
        else:
            print("cache key: known once the patches are applied (not done in --dry-run)")
        return 0
    artifacts = builder.build()
    if args.json:
        print(artifacts.to_json())
    else:
        print(f"boot image: {artifacts.boot_image}")
        print(f"vmlinux:    {artifacts.vmlinux}")
        if artifacts.bpf_testmod:
            print(f"testmod:    {artifacts.bpf_testmod}")
        print(f"log:        {artifacts.log}")
    return 0


def _parse_size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def cmd_cache_show(args: argparse.Namespace) -> int:
    root = cache.cache_root()
    print(f"cache: {root}")
    if root.is_dir():
        for section in sorted(p for p in root.iterdir() if p.is_dir()):
            print(f"  {section.name:12s} {cache.dir_size(section) / 2**30:7.2f} GiB")
    return 0


def cmd_cache_prune(args: argparse.Namespace) -> int:
    keep = _parse_size(args.keep)
    for section in ("artifacts", "builds", "trees", "tools", "rootfs", "progs",
                    "bisect/steps", "bisect/kernels", "bisect/pahole"):
        for removed in cache.prune(section, keep):
            print(f"removed {removed}")
    print(json.dumps({"kept_per_section": keep}))
    return 0
