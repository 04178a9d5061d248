"""The resolve_btfids pipeline: read, transform, finalize, patch ids, write.

Why one orchestrating module: the order of the C tool's steps is part of its
output (ids are resolved *after* dedup, distill and sort, kfuncs are found
*before* them, warnings come out in a fixed order), so the steps are called
here exactly in main()'s order and nothing else decides it:

1. elf_collect: the ELF, its last `.BTF_ids` section and last symbol table;
2. symbols_collect (only when both exist);
3. load the BTF (`--btf FILE` or the ELF's `.BTF`) on `--btf_base`;
4. btf2btf for the profile (kfunc discovery, tags, implicit args, arena);
5. finalize: dedup (7.3), distill (`--distill_base` with a base), sort;
6. symbols_resolve and symbols_patch on the final BTF;
7. write `<elf>.BTF_ids`, `<elf>.BTF`, `<elf>.BTF.base`.

Nothing is written until every output is computed, and each file appears
by rename, so a failure never leaves a half-written output (the C tool's
earlier outputs from a previous run stay as they were, as with the C tool).

Known C-tool quirk kept: `--fatal_warnings` never changes the exit status
(main() has already set err to 0 when it tests the flag), in 7.2 and 7.3.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from harness.btf import Btf, BTFError, Func, FuncProto, Struct, Typedef, Union, kfunc_args
from harness.btf.kernel_rules import BOOT, RULES, Rules
from harness.btf.validate import check_kernel
from harness.btf.view_store import ViewStore
from harness.btfids import ids as btfids
from harness.btfids import kfuncs as kf
from harness.btfids import profiles, transform
from harness.btfids.elf import (
    BTF_IDS_SECTION,
    c_errors,
    open_elf,
    symbols_and_banner,
    write_section,
)
from harness.btfids.errors import BtfidsError
from harness.elf import ElfFile, kernel_version
from harness.kfunc_abi import BTF_SET8_KFUNCS, KF_IMPLICIT_ARGS, SET8_FLAGS, SET8_PAIRS, Kfunc

PATH_MAX = 4096
_KEY_OF = {Func: "funcs", Struct: "structs", Union: "unions", Typedef: "typedefs"}


@dataclass
class Options:
    """resolve_btfids' command line, plus the transformer's own switches."""

    elf: str
    btf: str | None = None
    base: str | None = None
    distill_base: bool = False
    fatal_warnings: bool = False
    verbose: int = 0
    profile: str | None = None
    discover: bool | None = None  # None: on when the BTF has no bpf_kfunc tags (7.2 profile)
    validate: bool = False  # full harness.btf.validate; off: libbpf's own sanity checks only
    per_arg_tags: bool = False  # emit bpf_kfunc_arg:/ret: decl tags (not upstream's; opt-in)
    arg_table: str | None = None  # kfunc-args.toml: per-argument flags neither source says
    kernel_check: bool = True  # refuse output BTF the tree's kernel would refuse at boot
    view_store: str | None = None  # where the kernel's view of --btf_base is kept (view_store)


@dataclass
class Log:
    """Where the C tool's pr_err/pr_info (always) and pr_debug (-v) lines go."""

    verbose: int = 0
    stream: object = None
    lines: list[str] = field(default_factory=list)
    warnings: int = 0

    def _emit(self, msg: str) -> None:
        self.lines.append(msg)
        out = self.stream if self.stream is not None else sys.stderr
        print(msg, file=out)  # type: ignore[arg-type]

    def warn(self, msg: str) -> None:
        self.warnings += 1
        self._emit(msg)

    def info(self, msg: str) -> None:
        self._emit(msg)

    def debug(self, msg: str) -> None:
        if self.verbose >= 1:
            self._emit(msg)

    @property
    def debug_fn(self) -> Callable[[str], None] | None:
        return self.debug if self.verbose >= 1 else None


@dataclass
class Result:
    """What a run computed: output files in write order, and what it found."""

    outputs: dict[str, bytes]
    profile: profiles.Profile
    profile_reason: str
    kfuncs: list[Kfunc]
    discovered: bool
    btf: Btf
    in_place: bytes | None = None  # .BTF_ids to write into the ELF itself (profile 6.12)


# ---- BTF input --------------------------------------------------------------------------

def _strerror(code: int) -> str:
    return os.strerror(code)


def load_btf(path: str, base: Btf | None, *, what: str = "", validate: bool = True,
             elf: ElfFile | None = None, boot_rules: Rules | None = None,
             views: ViewStore | None = None) -> Btf:
    """btf__parse_split(): raw BTF or an ELF's `.BTF`, with libbpf's errno wording on failure.
    `boot_rules`: read it under the kernel's boot-time rules when it passes them (the
    Btf keeps the kernel's view for check_kernel), as before when it does not; `views`
    (a base only) keeps that view between runs, so the next run skips the check."""
    label = f"FAILED: load {what}BTF from {path}"
    data = btf_data(path, label, elf)
    if boot_rules is not None:
        btf = _strict_read(data, base, boot_rules, views)
        if btf is not None:
            return btf
    try:
        btf = Btf.from_bytes(data, base, validate=validate)
        if not validate:
            sanity_check(btf)
        return btf
    except BTFError as exc:
        raise BtfidsError(f"{label}: {_strerror(errno.EINVAL)} ({exc})") from None


def _strict_read(data: bytes, base: Btf | None, rules: Rules,
                 views: ViewStore | None) -> Btf | None:
    """`data` read under `rules` as the kernel gets it at boot, None if they refuse it;
    a base's view comes from `views` when an earlier run kept it, and is kept otherwise."""
    if views is None or base is not None:
        with contextlib.suppress(BTFError):
            return Btf.from_bytes(data, base, strict=rules, how=BOOT)
        return None
    key = views.key(data, rules, BOOT)
    known = views.load(key)
    try:
        btf = Btf.from_bytes(data, None, strict=rules, how=BOOT, checked=known)
    except BTFError:
        return None
    if known is None:
        views.save(key, btf.kernel_views[btf.view_key(rules, BOOT)])
    return btf


def _load_base(opts: Options, profile: profiles.Profile) -> Btf:
    """--btf_base's BTF. Where the output will get the kernel's boot-time check, the base
    is read under those rules: the check of a module's split BTF needs the base as the
    kernel holds it, and the strict read's view spares re-encoding and re-checking the
    whole vmlinux BTF for it in every in-tree module's run (ttynull.ko: 0.54 -> 0.49 s),
    and with the view kept between runs (`views`) the check itself too (-> 0.22 s).
    With --distill_base (out-of-tree modules) the output is checked on the distilled
    base, but the kept view still spares libbpf's sanity check of the whole base
    (bpf_testmod.ko: 0.44-0.49 -> 0.39-0.42 s). A base the rules refuse is read as
    before, so the output's check reports it as it did."""
    strict = opts.kernel_check and profile.checker is not None
    views = ViewStore(opts.view_store) if strict and opts.view_store else None
    return load_btf(opts.base, None, what="base ", validate=opts.validate,
                    boot_rules=RULES[profile.checker] if strict else None,  # type: ignore[index]
                    views=views)


def btf_data(path: str, label: str, elf: ElfFile | None = None) -> bytes:
    """Raw BTF of `path` (or of the open `elf`): the file itself, or an ELF's `.BTF`."""
    if elf is not None:
        return _elf_btf(elf, label)
    try:
        with open(path, "rb") as f:
            # An ELF is mapped by open_elf: reading a 130 MB vmlinux whole only to find
            # its magic cost every module's run 0.08 s.
            magic = f.read(4)
            data = b"" if magic == b"\x7fELF" else magic + f.read()
    except OSError as exc:
        raise BtfidsError(f"{label}: {exc.strerror}") from None
    if magic == b"\x7fELF":
        with open_elf(path, writable_check=False) as e:
            return _elf_btf(e, label)
    if data[:2] not in (b"\x9f\xeb", b"\xeb\x9f"):
        raise BtfidsError(f"{label}: Unknown error 4003 (neither BTF nor ELF)")
    return data


def sanity_check(btf: Btf) -> None:
    """libbpf's btf_sanity_check() on load: ids and name offsets in range, FUNC -> FUNC_PROTO.

    Much cheaper than the library's full validation, and exactly what makes the
    C tool refuse a BTF on load; anything subtler is not checked by it either.
    """
    count = btf.type_count
    end = btf.strings.end_off
    for tid, t in btf.items():
        for ref in t.type_ids():
            if ref >= count or ref < 0:
                raise BTFError(f"type [{tid}] refers to type id {ref} (type count {count})")
        for off in t.str_offs():
            if off >= end:
                raise BTFError(f"type [{tid}] has string offset {off} past the strings ({end})")
        if type(t) is Func and type(btf[t.type]) is not FuncProto:
            raise BTFError(f"FUNC [{tid}] does not point to a FUNC_PROTO")


def _elf_btf(elf: ElfFile, label: str) -> bytes:
    sec = elf.last_section(".BTF")
    if sec is None:
        raise BtfidsError(f"{label}: {_strerror(errno.ENODATA)} (no .BTF section)")
    return bytes(elf.section_data(sec))


# ---- the pipeline -------------------------------------------------------------------------

def _named_types(btf: Btf) -> Callable[[], Iterator[tuple[int, str, str]]]:
    """(id, table, name) of every FUNC/STRUCT/UNION/TYPEDEF, base first, for symbols_resolve."""
    def gen() -> Iterator[tuple[int, str, str]]:
        key_of = _KEY_OF
        name = btf.name
        for tid, t in btf.all_items():
            key = key_of.get(type(t))
            if key is not None:
                yield tid, key, name(t)
    return gen


def _sets_have_kfuncs(tables: btfids.BtfIdTables, section: btfids.IdSection | None) -> bool:
    """Whether some set8 is flagged BTF_SET8_KFUNCS and lists at least one entry."""
    if section is None or not len(section):
        return False
    for entry in tables.sets.values():
        if entry.kind is not btfids.IdKind.SET8 or len(entry.addrs) != 1 or entry.value <= 0:
            continue
        off = section.offset_of(entry.addrs[0])
        if off + SET8_PAIRS <= len(section) and section.u32(off + SET8_FLAGS) & BTF_SET8_KFUNCS:
            return True
    return False


def transform_object(opts: Options, log: Log) -> Result:
    """Everything resolve_btfids computes for one ELF, without writing a byte."""
    with open_elf(opts.elf) as elf, c_errors():
        return _transform(opts, log, elf)


def _transform(opts: Options, log: Log, elf: ElfFile) -> Result:
    debug = log.debug_fn
    idsec = elf.last_section(BTF_IDS_SECTION)
    symtab = elf.symtab()
    resolve = idsec is not None and symtab is not None
    symbols, banner = (symbols_and_banner(elf, symtab, idsec.index if idsec else -1)
                       if symtab is not None else ([], None))
    section = None
    if idsec is not None:
        data = elf.section_data(idsec)
        if len(data):
            section = btfids.IdSection(data, idsec.addr, elf.endian)
            if debug and elf.endian != sys.byteorder:
                debug("bswap_32 .BTF_ids data from target to host endianness")
    if resolve:
        tables = btfids.collect(symbols, log.verbose, debug)
    else:
        tables = btfids.BtfIdTables()
        if debug:
            debug("Cannot find .BTF_ids or symbols sections, skip symbols resolution")

    profile, reason = profiles.choose(opts.profile, kernel_version(elf, banner))
    if debug:
        debug(f"profile {profile.name} ({reason})")

    if (not profile.btf2btf and opts.base and not opts.btf
            and elf.last_section(".BTF.base") is not None):
        # pahole >= 1.26 gives an out-of-tree module a distilled base; the C tool's libbpf
        # relocates the module's split BTF onto --btf_base (btf__relocate) before it
        # resolves. That relocation is not written here yet: refuse rather than resolve
        # IDs against the wrong base.
        raise BtfidsError(f"FAILED: {opts.elf} has a distilled .BTF.base: relocating its "
                          f"BTF onto {opts.base} (libbpf's btf__relocate) is not implemented "
                          f"in profile {profile.name}")
    base = None
    if opts.base:
        base = _load_base(opts, profile)
    btf = load_btf(opts.btf or opts.elf, base, validate=opts.validate,
                   elf=None if opts.btf else elf)

    found: list[Kfunc] = []
    discovered = False
    if profile.btf2btf:
        before = len(btf.types)
        found, discovered = _btf2btf(opts, log, profile, btf, tables, section)
        finalized = len(btf.types) == before and is_name_sorted(btf)
        if finalized and debug:
            debug("input BTF is already resolve_btfids output (sorted, nothing to add): "
                  "no dedup")
        btf = _finalize(opts, profile, btf, skip_dedup=finalized)

    outputs: dict[str, bytes] = {}
    in_place: bytes | None = None
    if resolve:
        log.warnings += btfids.resolve(tables, _named_types(btf), log.info)
        if section is None:
            # an empty .BTF_ids: every address is out of bounds, as in the C tool
            section = btfids.IdSection(b"", idsec.addr, elf.endian)  # type: ignore[union-attr]
        log.warnings += btfids.patch(tables, section, log.info, debug)
        if profile.in_place:
            in_place = section.to_target() if len(section) else None
        elif len(section):
            outputs[_out_path(opts.elf, BTF_IDS_SECTION)] = section.to_target()
        elif debug:
            debug(f"{opts.elf} has no BTF_ids data to dump")
    if profile.in_place:
        return Result(outputs, profile, reason, found, discovered, btf, in_place)
    outputs[_out_path(opts.elf, ".BTF")] = out = btf.to_bytes()
    if opts.kernel_check and profile.checker is not None:
        _kernel_check(opts, profile, btf, out, elf, base)
    if btf.base is not None and opts.distill_base and opts.base:
        outputs[_out_path(opts.elf, ".BTF.base")] = btf.base.to_bytes()
    return Result(outputs, profile, reason, found, discovered, btf)


def _kernel_check(opts: Options, profile: profiles.Profile, btf: Btf, out: bytes,
                  elf: ElfFile, in_base: Btf | None) -> None:
    """The kernel parses vmlinux and module BTF at boot (btf_parse_base/_module): refuse
    output it would refuse, and say whether the input (pahole's, split on `in_base`)
    already failed so."""
    rules = RULES[profile.checker]  # type: ignore[index]
    try:
        check_kernel(out, btf.base, rules=rules, how=BOOT)
        return
    except BTFError as exc:
        why = str(exc)
    try:
        data = btf_data(opts.btf or opts.elf, "input", None if opts.btf else elf)
        check_kernel(data, in_base, rules=rules, how=BOOT)
        blame = "the input BTF passes, so this tool's output broke it"
    except (BTFError, BtfidsError) as exc:
        blame = f"the input BTF already fails: {exc}"
    raise BtfidsError(f"FAILED: kernel {rules.name} would refuse the output BTF at boot: "
                      f"{why}; {blame} (--no-kernel-check writes it anyway)")


def _btf2btf(opts: Options, log: Log, profile: profiles.Profile, btf: Btf,
             tables: btfids.BtfIdTables,
             section: btfids.IdSection | None) -> tuple[list[Kfunc], bool]:
    """Find the kfuncs the profile's way and apply its edits (and, opted in, the
    per-argument tags); (kfuncs, discovered?)."""
    found, discovered = _profile_edits(opts, log, profile, btf, tables, section)
    if opts.per_arg_tags:
        try:
            table = kfunc_args.load_table(opts.arg_table) if opts.arg_table else None
            tags = transform.DeclTags(btf, kf.decl_tag_ids(btf))
            added = sum(transform.add_arg_tags(btf, k, tags, table) for k in found)
        except BTFError as exc:
            raise BtfidsError(f"FAILED: per-argument tags: {exc}") from None
        if log.debug_fn is not None:
            log.debug_fn(f"added {added} per-argument decl tags")
    return found, discovered


def _profile_edits(opts: Options, log: Log, profile: profiles.Profile, btf: Btf,
                   tables: btfids.BtfIdTables,
                   section: btfids.IdSection | None) -> tuple[list[Kfunc], bool]:
    """The edits the profile's own tool makes."""
    debug = log.debug_fn
    tag_ids = kf.decl_tag_ids(btf)
    if profile.kfuncs_from_sets:
        own = kf.FuncIndex(btf, own_only=True)
        found = kf.from_sets(tables, section, own, log.warn, tolerant=bool(opts.discover),
                             debug=debug)
        impl = own if profile.impl_lookup_own else kf.FuncIndex(btf, own_only=False)
        transform.btf2btf_73(btf, found, transform.DeclTags(btf, tag_ids), impl, debug)
        return found, False
    discover = opts.discover
    if discover is None:
        discover = not kf.has_kfunc_tags(btf) and _sets_have_kfuncs(tables, section)
        if discover:
            log.info(f"WARN: resolve_btfids: {opts.btf or opts.elf} has no bpf_kfunc decl tags "
                     "(pahole < 1.26?): finding kfuncs from BTF_SET8_KFUNCS sets")
    if discover:
        own = kf.FuncIndex(btf, own_only=True)
        found = kf.from_sets(tables, section, own, log.warn, tolerant=True, debug=debug)
        impl = own if profile.impl_lookup_own else kf.FuncIndex(btf, own_only=False)
        transform.btf2btf_73(btf, found, transform.DeclTags(btf, tag_ids), impl, debug)
        return found, True
    found = kf.from_decl_tags(btf, tag_ids, tables, section)
    if any(k.flags & KF_IMPLICIT_ARGS for k in found):
        transform.btf2btf_72(btf, found, transform.DeclTags(btf, tag_ids),
                             kf.FuncIndex(btf, own_only=False), debug)
    return found, False


def is_name_sorted(btf: Btf) -> bool:
    """Own types already in resolve_btfids' name order (what its sort leaves behind).

    pahole's output never is (it lists types in DWARF order), so together with
    "btf2btf added nothing" this recognises our own output, on which dedup
    would only reorder strings: skipping it makes a re-run byte-identical.
    """
    prev = b""
    name_off = 0
    get = btf.strings.get_bytes
    start = btf.strings.start_off
    for t in btf.types:
        off = t.name_off
        if off == name_off:
            continue
        name_off = off
        cur = (get(off) if off >= start else btf.str(off).encode("utf-8", "surrogateescape")
               ) if off else b""
        if cur < prev:
            return False
        prev = cur
    return True


def _finalize(opts: Options, profile: profiles.Profile, btf: Btf, *,
              skip_dedup: bool = False) -> Btf:
    """finalize_btf(): dedup (7.3), distill (--distill_base with a base), sort by name."""
    from harness.btf.sort import sort_by_name

    if profile.dedup and not skip_dedup:
        from harness.btf.dedup import dedup

        try:
            dedup(btf)
        except BTFError as exc:
            raise BtfidsError(f"FAILED to dedup BTF: {exc}") from None
    if btf.base is not None and opts.distill_base:
        from harness.btf.distill import distill_base

        try:
            _, btf = distill_base(btf)
        except BTFError as exc:
            raise BtfidsError(f"FAILED to distill base BTF: {exc}") from None
    try:
        sort_by_name(btf, profile.sort)
    except BTFError as exc:
        raise BtfidsError(f"FAILED: btf permute: {exc}") from None
    return btf


def _out_path(elf_path: str, suffix: str) -> str:
    path = elf_path + suffix
    if len(path.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        raise BtfidsError(f"Output path is too long: {elf_path}{suffix}")
    return path


def write_outputs(outputs: dict[str, bytes]) -> None:
    """Write every output to a temporary name first, then rename them all into place."""
    staged: list[tuple[str, str]] = []
    current = ""
    try:
        for path, data in outputs.items():
            current = path
            tmp = f"{path}.tmp{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for tmp, path in staged:
            current = path
            os.replace(tmp, path)
    except OSError:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise BtfidsError(f"Couldn't open {current} for writing") from None


def run(opts: Options, log: Log | None = None) -> Result:
    """resolve_btfids main(): compute, then write; BtfidsError on failure."""
    log = log or Log(opts.verbose)
    result = transform_object(opts, log)
    write_outputs(result.outputs)
    if result.in_place is not None:
        write_section(opts.elf, BTF_IDS_SECTION, result.in_place)
    if log.verbose:
        for path, data in result.outputs.items():
            log.debug(f"Dumped {len(data)} bytes of data to {path}")
    return result
