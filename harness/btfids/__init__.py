"""A drop-in, pure-Python resolve_btfids with 7.2 and 7.3 behaviour.

kbuild runs it as `RESOLVE_BTFIDS` (`python -m harness.btfids`, same command
line as tools/bpf/resolve_btfids): it patches `.BTF_ids`, finds kfuncs,
rewrites their BTF (decl tags, KF_IMPLICIT_ARGS, arena attributes), dedups,
distills and sorts, and writes `<elf>.BTF`, `<elf>.BTF_ids` and
`<elf>.BTF.base` byte-identical to the tree's C tool.

Modules, one job each:

- `elf`: the C tool's wording over harness.elf, the kernel version, --patch_btfids;
- `ids`: the `.BTF_ids` section: symbols, sets, resolving, patching, byte order;
- `kfuncs`: which functions are kfuncs (decl tags, set8 sets, discovery);
- `transform`: the kfunc BTF edits;
- `profiles`: 7.2 vs 7.3 behaviour and how it is chosen;
- `resolve`: the pipeline in main()'s order, atomic outputs;
- `cli`: the command line; `differential`: C vs Python over build dirs.

Library use::

    from harness.btfids.resolve import Options, run, transform_object, Log
    result = transform_object(Options(elf="vmlinux", btf="vmlinux.BTF.1"), Log())
    result.outputs   # {path: bytes} that run() would write
"""
