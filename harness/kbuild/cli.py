"""`harness build` and `harness cache`: the build pipeline's command line."""

from __future__ import annotations

import argparse
import json
import shlex

from harness import cache
from harness.arch import arch_list
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
                        help="an extra Kconfig fragment, merged after the project's "
                        "(repeatable); 'selftests': the tree's tools/testing/selftests/bpf "
                        "config, config.vm and config.<arch>, for --selftests runs")
    parser.add_argument("--pahole", default=toolchains.DEFAULT_PAHOLE,
                        help="system, 1.24, 1.30, 1.32 or a path (default %(default)s)")
    parser.add_argument("--btfids", default=toolchains.DEFAULT_BTFIDS,
                        help="resolve_btfids kbuild runs: c, python or a path "
                        "(default %(default)s)")
    parser.add_argument("--per-arg-tags", action="store_true",
                        help="the Python resolve_btfids also emits per-argument kfunc flags "
                        "as bpf_kfunc_arg: decl tags (docs/per-arg-flags.md)")
    parser.add_argument("--allow-config-drift", action="store_true",
                        help="build even if requested Kconfig symbols did not take")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="make -j (default: cpus)")
    parser.add_argument("--no-ccache", action="store_true", help="compile without ccache")


def request_from_args(args: argparse.Namespace, arch: str) -> BuildRequest:
    request = BuildRequest(arch=arch, tree=args.tree, kernel=args.kernel, patches=args.patches,
                           kconfigs=args.kconfig, pahole=args.pahole, btfids=args.btfids,
                           allow_config_drift=args.allow_config_drift,
                           use_ccache=not args.no_ccache,
                           per_arg_tags=getattr(args, "per_arg_tags", False))
    if args.jobs:
        request.jobs = args.jobs
    return request


def register(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser("build", help="build a kernel whose BTF stage the harness controls")
    build.add_argument("--arch", default="x86_64",
                       help="x86_64, arm64 or a comma list, built one after another "
                       "(default %(default)s)")
    add_build_options(build)
    build.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    build.add_argument("--json", action="store_true", help="print the artifact paths as JSON")
    build.set_defaults(func=cmd_build)



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
    """One build per --arch entry, one after another (never two kernel builds at once)."""
    arches = [a.name for a in arch_list(args.arch)]
    results = [_build_one(args, arch) for arch in arches]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return 0


def _build_one(args: argparse.Namespace, arch: str) -> dict[str, object]:
    plan = make_plan(request_from_args(args, arch))
    builder = Builder(plan, quiet=args.json)
    if args.dry_run:
        return _dry_run(plan, builder, args.json)
    artifacts = builder.build()
    if not args.json:
        print(f"boot image: {artifacts.boot_image}")
        print(f"vmlinux:    {artifacts.vmlinux}")
        if artifacts.bpf_testmod:
            print(f"testmod:    {artifacts.bpf_testmod}")
        print(f"log:        {artifacts.log}")
    return json.loads(artifacts.to_json())


def _dry_run(plan: BuildPlan, builder: Builder, as_json: bool) -> dict[str, object]:
    """The plan (and, without patches, the keys) as text or as a JSON-ready dict."""
    source = builder.prepared_source() if not plan.patch_series else None
    keys: dict[str, str | None] = {"build_dir": None, "cache_key": None}
    if source is not None:
        text = builder.merged_config(source)
        key = builder.compile_key(source, plan.arch, text, plan.compiler)
        keys = {"build_dir": str(cache.cache_root() / "builds" / key),
                "cache_key": builder.full_key(key)}
    if not as_json:
        print_plan(plan, builder)
        if keys["cache_key"]:
            print(f"build dir: {keys['build_dir']}")
            print(f"cache key: {keys['cache_key']}")
        else:
            print("cache key: known once the patches are applied (not done in --dry-run)")
    tree = (patches.patched_source(plan.source, plan.patch_series) if plan.patch_series
            else plan.source)
    return {"arch": plan.arch, "source": plan.source.description,
            "source_path": str(plan.source.path),
            "patches": [p.name for p in plan.patch_series],
            "fragments": [str(f.path) for f in plan.fragments],
            "toolchain": plan.toolchain_report(),
            "make": plan.kernel_make(tree.path, cache.cache_root() / "builds" / "<key>"),
            **keys}
