"""Test expectations read from a BPF object's decl tags, with test_loader.c's rules.

``bpf_misc.h`` turns ``__success``, ``__msg("...")`` and friends into
``btf_decl_tag("comment:<__COUNTER__>:test_...")`` attributes on the program's
FUNC. ``test_loader.c:parse_test_spec`` sorts a program's tags with strverscmp
(compilers emit them in any order; the counter restores source order), drops
the ``comment:<n>:`` prefix and interprets the rest. This module does the same,
tag by tag and default by default, so an upstream selftest gets the verdict it
gets upstream. Kernels before the counter (6.x) wrote ``comment:test_...``
without a number and read tags in BTF order; such objects are read that way.

Everything is parsed; what the runner cannot do here (``__jited`` with no libLLVM
to disassemble the JIT image, ``__btf_func_path``, ...) is listed per run in
:attr:`Run.unsupported` so it is reported as a skip with its reason, never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UsageError
from harness.progs import jit_disasm
from harness.progs.matching import Pattern, PatternError, make_pattern
from harness.progs.objinfo import ObjectInfo, read_object
from harness.progs.strverscmp import strverscmp_key

# Magic retval constants (bpf_misc.h): POINTER_VALUE means "any value".
POINTER_VALUE = 0xBADCAFE
TEST_DATA_LEN = 64
INT_MIN = -(2**31)

# include/uapi/linux/bpf.h prog load flags, by the names __flag() accepts.
PROG_FLAGS = {
    "BPF_F_STRICT_ALIGNMENT": 1 << 0,
    "BPF_F_ANY_ALIGNMENT": 1 << 1,
    "BPF_F_TEST_RND_HI32": 1 << 2,
    "BPF_F_TEST_STATE_FREQ": 1 << 3,
    "BPF_F_SLEEPABLE": 1 << 4,
    "BPF_F_XDP_HAS_FRAGS": 1 << 5,
    "BPF_F_TEST_REG_INVARIANTS": 1 << 7,
}
BPF_F_TEST_RND_HI32 = PROG_FLAGS["BPF_F_TEST_RND_HI32"]

# __arch_* spellings -> our architecture names.
ARCHES = {
    "X86_64": "x86_64",
    "ARM64": "arm64",
    "RISCV64": "riscv64",
    "s390x": "s390x",
    "LOONGARCH": "loongarch64",
}

# test_loader's default log level when the test asks for none (env.verbosity NONE).
DEFAULT_LOG_LEVEL = 0

_COUNTER_PFX = re.compile(r"comment:\s*[+-]?\d+:")
_LEGACY_PFX = "comment:"

# Section prefixes libbpf maps to program types __linear_size accepts
# (SCHED_CLS, SCHED_ACT, CGROUP_SKB).
_SKB_SECTIONS = ("tc", "classifier", "action", "tcx/", "tc/", "netkit/", "cgroup_skb/",
                 "cgroup/skb")


class ExpectationError(UsageError):
    """An object whose expectations cannot be read at all (no BTF, unknown program)."""


@dataclass(frozen=True)
class Mode:
    """Expectations for one privilege mode (test_loader's ``struct test_subspec``)."""

    name: str  # "prog" or "prog @unpriv"
    description: str | None
    expect_failure: bool
    msgs: tuple[Pattern, ...]
    xlated: tuple[Pattern, ...]
    jited: tuple[Pattern, ...]
    stderr: tuple[Pattern, ...]
    stdout: tuple[Pattern, ...]
    retval: int
    execute: bool
    caps: int  # capability bits kept in unprivileged mode


@dataclass(frozen=True)
class Spec:
    """test_loader's ``struct test_spec`` for one program, for one target arch."""

    prog_name: str
    section: str
    arch: str  # the arch this spec was derived for (affects __jited collection)
    tags: tuple[str, ...]  # the tags as sorted and read
    legacy_tags: bool  # written as comment:test_... (no counter)
    valid: bool
    error: str | None  # why test_loader would fail this program (valid is False)
    priv: Mode | None
    unpriv: Mode | None
    log_level: int
    # __flag ops in order, applied to the kernel-probed testing flags: (clear, value).
    flag_ops: tuple[tuple[bool, int], ...]
    arches: frozenset[str] | None  # None: every arch
    load_modes: frozenset[str]  # subset of {"jited", "no_jited"}
    linear_size: int
    auxiliary: bool
    btf_custom_path: str | None
    btf_custom_func_path: str | None
    unknown_tags: tuple[str, ...] = ()  # test tags test_loader does not know (ignored there too)
    # Harness extensions (bpf_progs/harness_misc.h; test_loader ignores them):
    then_run: tuple[str, int, int] | None = None  # checker program, wanted retval, timeout ms
    hid: str | None = None  # HID scenario the agent drives through /dev/uhid after loading

    @property
    def runs(self) -> list[Run]:
        """The sub-tests test_loader would start for this program (none for auxiliaries)."""
        if not self.valid or self.auxiliary:
            return []
        out = []
        for mode in (self.priv, self.unpriv):
            if mode is not None:
                out.append(Run(self, mode, mode is self.unpriv))
        return out

    def static_flags(self, testing_flags: int) -> int:
        """Final prog flags given the kernel's testing flags (test_loader's prog_flags)."""
        flags = testing_flags
        for clear, value in self.flag_ops:
            flags = flags & ~value if clear else flags | value
        return flags


@dataclass(frozen=True)
class Run:
    """One sub-test: a program in one privilege mode."""

    spec: Spec
    mode: Mode
    unpriv: bool

    @property
    def name(self) -> str:
        return self.mode.name

    def unsupported(self, arch: str | None = None) -> list[str]:
        """Reasons this harness cannot judge the run (each becomes a skip reason)."""
        reasons: list[str] = []
        if self.mode.jited:  # test_loader skips these when it was built without LLVM
            why = jit_disasm.available(arch or self.spec.arch)
            if why is not None:
                reasons.append(f"__jited: {why}")
        if self.spec.btf_custom_func_path:  # test_loader rewrites the object's BTF with it
            reasons.append("__btf_func_path's BTF fix-up is not implemented")
        return reasons

    def arch_skip(self, arch: str) -> str | None:
        """test_loader skips a run whose __arch_* list lacks the target arch."""
        if self.spec.arches is not None and arch not in self.spec.arches:
            return f"__arch_* limits this program to {', '.join(sorted(self.spec.arches))}"
        return None


@dataclass
class ObjectSpecs:
    """Every program of one object with its spec, in libbpf's program order."""

    info: ObjectInfo
    specs: list[Spec] = field(default_factory=list)

    def spec(self, name: str) -> Spec:
        for spec in self.specs:
            if spec.prog_name == name:
                return spec
        raise KeyError(name)

    @property
    def has_struct_ops(self) -> bool:
        """A struct_ops program: executing any run attaches its map system-wide."""
        return any(spec.section.lstrip("?").startswith("struct_ops") for spec in self.specs)

    def auxiliaries(self, unpriv: bool) -> list[str]:
        """Programs test_loader also loads with every run of the given mode."""
        out = []
        for spec in self.specs:
            if not spec.valid or not spec.auxiliary:
                continue
            wanted = spec.unpriv if unpriv else spec.priv
            if wanted is not None:
                out.append(spec.prog_name)
        return out


def sort_tags(tags: list[str]) -> tuple[list[str], bool]:
    """Order tags as test_loader reads them; also say whether they are legacy-form.

    Counter-prefixed tags are sorted with strverscmp (``collect_decl_tags``).
    An object with only unnumbered ``comment:test_`` tags predates the counter;
    the loader of that era read them in BTF order, so that order is kept.
    """
    numbered = any(_COUNTER_PFX.match(t) for t in tags)
    legacy = any(t.startswith(_LEGACY_PFX) and not _COUNTER_PFX.match(t) for t in tags)
    if numbered or not legacy:
        return sorted(tags, key=strverscmp_key), False
    return list(tags), True


def _strip(tag: str, legacy: bool) -> str | None:
    m = _COUNTER_PFX.match(tag)
    if m:
        return tag[m.end() :]
    if legacy and tag.startswith(_LEGACY_PFX):
        return tag[len(_LEGACY_PFX) :]
    return None


def parse_int(text: str, what: str) -> int:
    """``strtol`` base 10 (or 16 after ``0x``) that must consume the string, cut to ``int``.

    Kept as loose as test_loader's: leading blanks and a sign are accepted,
    an empty string is 0, and the long result is truncated to 32 bits.
    """
    body, base = (text[2:], 16) if text.startswith("0x") else (text, 10)
    digit = "[0-9a-fA-F]" if base == 16 else "[0-9]"
    prefix = "(?:0[xX](?=[0-9a-fA-F]))?" if base == 16 else ""
    m = re.fullmatch(rf"[ \t\n\v\f\r]*([+-]?){prefix}({digit}+)", body)
    if m is None:
        if body == "":  # nothing converted and nothing left over
            return 0
        raise ValueError(f"failed to parse {what} from '{text}'")
    value = int(m.group(2), base)
    if m.group(1) == "-":
        value = -value
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"failed to parse {what} from '{text}'")  # ERANGE
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def _parse_retval(text: str, what: str) -> int:
    if text == "_INT_MIN":
        return INT_MIN
    return parse_int(text, what)


def _parse_caps(text: str) -> int:
    caps = 0
    for token in text.split("|"):
        if not token:
            continue
        if token.startswith("CAP_"):
            raise ValueError(f"define {token} constant in bpf_misc.h, failed to parse caps")
        m = re.match(r"[ \t]*([+-]?\d+)", token)
        value = int(m.group(1)) if m else 0
        if not value:
            raise ValueError("failed to parse caps test caps")
        caps |= 1 << value
    return caps


class _Acc:
    """Mutable per-mode state while tags are read."""

    def __init__(self) -> None:
        self.expect_failure = False
        self.msgs: list[Pattern] = []
        self.xlated: list[Pattern] = []
        self.jited: list[Pattern] = []
        self.stderr: list[Pattern] = []
        self.stdout: list[Pattern] = []
        self.retval = 0
        self.execute = False
        self.caps = 0
        # push_disasm_msg state: does the next pattern have to be on the next line?
        self.next_line = {"xlated": True, "jited": True, "stderr": True, "stdout": True}

    def push_disasm(self, kind: str, text: str) -> None:
        if text == "...":
            self.next_line[kind] = False
            return
        getattr(self, kind).append(make_pattern(text, on_next_line=self.next_line[kind]))
        self.next_line[kind] = True

    def freeze(self, name: str, description: str | None) -> Mode:
        return Mode(name, description, self.expect_failure, tuple(self.msgs), tuple(self.xlated),
                    tuple(self.jited), tuple(self.stderr), tuple(self.stdout), self.retval,
                    self.execute, self.caps)


_PRIV, _UNPRIV = 1, 2


def parse_spec(prog_name: str, section: str, tags: list[str], arch: str) -> Spec:
    """Derive one program's spec from its decl tags, as ``parse_test_spec`` does for ``arch``."""
    ordered, legacy = sort_tags(tags)
    priv, unpriv = _Acc(), _Acc()
    mode_mask = 0
    has_unpriv_result = has_unpriv_retval = False
    description: str | None = None
    log_level = DEFAULT_LOG_LEVEL
    flag_ops: list[tuple[bool, int]] = []
    arch_set: set[str] = set()
    collect_jit = False
    load_modes: frozenset[str] = frozenset()
    linear_size = 0
    auxiliary = False
    btf_path: str | None = None
    btf_func_path: str | None = None
    unknown: list[str] = []
    then_run: tuple[str, int, int] | None = None
    hid: str | None = None

    def invalid(reason: str) -> Spec:
        return Spec(prog_name, section, arch, tuple(ordered), legacy, False, reason, None, None,
                    log_level, tuple(flag_ops), None, frozenset(), 0, False, None, None,
                    tuple(unknown))

    for tag in ordered:
        s = _strip(tag, legacy)
        if s is None:
            continue
        try:
            if s.startswith("test_description="):
                description = s[len("test_description="):]
            elif s == "test_expect_failure":
                priv.expect_failure = True
                mode_mask |= _PRIV
            elif s == "test_expect_success":
                priv.expect_failure = False
                mode_mask |= _PRIV
            elif s == "test_expect_failure_unpriv":
                unpriv.expect_failure = True
                mode_mask |= _UNPRIV
                has_unpriv_result = True
            elif s == "test_expect_success_unpriv":
                unpriv.expect_failure = False
                mode_mask |= _UNPRIV
                has_unpriv_result = True
            elif s == "test_auxiliary":
                auxiliary = True
                mode_mask |= _PRIV
            elif s == "test_auxiliary_unpriv":
                auxiliary = True
                mode_mask |= _UNPRIV
            elif s.startswith("test_expect_msg="):
                priv.msgs.append(make_pattern(s[len("test_expect_msg="):]))
                mode_mask |= _PRIV
            elif s.startswith("test_expect_not_msg="):
                priv.msgs.append(make_pattern(s[len("test_expect_not_msg="):], negative=True))
                mode_mask |= _PRIV
            elif s.startswith("test_expect_msg_unpriv="):
                unpriv.msgs.append(make_pattern(s[len("test_expect_msg_unpriv="):]))
                mode_mask |= _UNPRIV
            elif s.startswith("test_expect_not_msg_unpriv="):
                unpriv.msgs.append(
                    make_pattern(s[len("test_expect_not_msg_unpriv="):], negative=True))
                mode_mask |= _UNPRIV
            elif s.startswith("test_jited="):
                if not arch_set:
                    return invalid("__jited used before __arch_*")
                if collect_jit:
                    priv.push_disasm("jited", s[len("test_jited="):])
                    mode_mask |= _PRIV
            elif s.startswith("test_jited_unpriv="):
                if not arch_set:
                    return invalid("__unpriv_jited used before __arch_*")
                if collect_jit:
                    unpriv.push_disasm("jited", s[len("test_jited_unpriv="):])
                    mode_mask |= _UNPRIV
            elif s.startswith("test_expect_xlated="):
                priv.push_disasm("xlated", s[len("test_expect_xlated="):])
                mode_mask |= _PRIV
            elif s.startswith("test_expect_xlated_unpriv="):
                unpriv.push_disasm("xlated", s[len("test_expect_xlated_unpriv="):])
                mode_mask |= _UNPRIV
            elif s.startswith("test_retval="):
                priv.retval = _parse_retval(s[len("test_retval="):], "__retval")
                priv.execute = True
                mode_mask |= _PRIV
            elif s.startswith("test_retval_unpriv="):
                unpriv.retval = _parse_retval(s[len("test_retval_unpriv="):], "__retval_unpriv")
                unpriv.execute = True
                mode_mask |= _UNPRIV
                has_unpriv_retval = True
            elif s.startswith("test_log_level="):
                log_level = parse_int(s[len("test_log_level="):], "test log level")
            elif s.startswith("test_prog_flags="):
                val = s[len("test_prog_flags="):]
                clear = val.startswith("!")
                if clear:
                    val = val[1:]
                value = PROG_FLAGS.get(val)
                if value is None:
                    value = parse_int(val, "test prog flags")
                flag_ops.append((clear, value))
            elif s.startswith("test_arch="):
                val = s[len("test_arch="):]
                if val not in ARCHES:
                    return invalid(f"bad arch spec: '{val}'")
                arch_set.add(ARCHES[val])
                collect_jit = ARCHES[val] == arch
                priv.next_line["jited"] = True
                unpriv.next_line["jited"] = True
            elif s.startswith("test_btf_path="):
                btf_path = s[len("test_btf_path="):]
            elif s.startswith("test_btf_func_path="):
                btf_func_path = s[len("test_btf_func_path="):]
            elif s.startswith("test_caps_unpriv="):
                unpriv.caps |= _parse_caps(s[len("test_caps_unpriv="):])
                mode_mask |= _UNPRIV
            elif s.startswith("load_mode="):
                val = s[len("load_mode="):]
                if val not in ("jited", "no_jited"):
                    return invalid(f"bad load spec: '{val}'")
                load_modes = frozenset({val})
            elif s.startswith("test_expect_stderr="):
                priv.push_disasm("stderr", s[len("test_expect_stderr="):])
            elif s.startswith("test_expect_stderr_unpriv="):
                unpriv.push_disasm("stderr", s[len("test_expect_stderr_unpriv="):])
            elif s.startswith("test_expect_stdout="):
                priv.push_disasm("stdout", s[len("test_expect_stdout="):])
            elif s.startswith("test_expect_stdout_unpriv="):
                unpriv.push_disasm("stdout", s[len("test_expect_stdout_unpriv="):])
            elif s.startswith("test_linear_size="):
                if not section.lstrip("?").startswith(_SKB_SECTIONS):
                    return invalid("__linear_size for unsupported program type")
                linear_size = parse_int(s[len("test_linear_size="):], "test linear size")
            elif s.startswith("harness_then_run="):
                parts = s[len("harness_then_run="):].split(",")
                if len(parts) not in (2, 3) or not parts[0]:
                    raise ValueError(f"bad harness_then_run: '{s}'")
                timeout = parse_int(parts[2], "timeout") if len(parts) == 3 else 2000
                then_run = (parts[0], _parse_retval(parts[1], "then_run retval"), timeout)
            elif s.startswith("harness_hid="):
                hid = s[len("harness_hid="):]
            elif s.startswith("test_") or s.startswith("load_"):
                unknown.append(s)
        except (ValueError, PatternError) as exc:
            return invalid(str(exc))

    if mode_mask == 0:
        mode_mask = _PRIV
    if not has_unpriv_result:
        unpriv.expect_failure = priv.expect_failure
    if not has_unpriv_retval:
        unpriv.retval = priv.retval
        unpriv.execute = priv.execute
    for kind in ("msgs", "xlated", "jited", "stderr", "stdout"):
        if not getattr(unpriv, kind):
            setattr(unpriv, kind, list(getattr(priv, kind)))

    priv_mode = priv.freeze(prog_name, description) if mode_mask & _PRIV else None
    unpriv_mode = (
        unpriv.freeze(f"{prog_name} @unpriv",
                      f"{description} @unpriv" if description is not None else None)
        if mode_mask & _UNPRIV else None
    )
    return Spec(
        prog_name=prog_name,
        section=section,
        arch=arch,
        tags=tuple(ordered),
        legacy_tags=legacy,
        valid=True,
        error=None,
        priv=priv_mode,
        unpriv=unpriv_mode,
        log_level=log_level,
        flag_ops=tuple(flag_ops),
        arches=frozenset(arch_set) if arch_set else None,
        load_modes=load_modes or frozenset({"jited", "no_jited"}),
        linear_size=linear_size,
        auxiliary=auxiliary,
        btf_custom_path=btf_path,
        btf_custom_func_path=btf_func_path,
        unknown_tags=tuple(unknown),
        then_run=then_run,
        hid=hid,
    )


def object_specs(obj: str | Path | ObjectInfo, arch: str) -> ObjectSpecs:
    """Specs of every program in a compiled object, for one target arch."""
    info = obj if isinstance(obj, ObjectInfo) else read_object(obj)
    if not info.has_btf:
        raise ExpectationError(f"{info.path}: BPF object has no BTF (compile with -g)")
    out = ObjectSpecs(info)
    for prog in info.programs:
        tags = info.func_tags.get(prog.name)
        if tags is None:
            fields = _invalid_fields(prog.name, prog.section, arch)
            fields["error"] = f"failed to find FUNC BTF type for '{prog.name}'"
            out.specs.append(Spec(**fields))  # type: ignore[arg-type]
            continue
        out.specs.append(parse_spec(prog.name, prog.section, tags, arch))
    return out


def _invalid_fields(name: str, section: str, arch: str) -> dict[str, object]:
    return dict(prog_name=name, section=section, arch=arch, tags=(), legacy_tags=False,
                valid=False, error=None, priv=None, unpriv=None, log_level=0, flag_ops=(),
                arches=None, load_modes=frozenset(), linear_size=0, auxiliary=False,
                btf_custom_path=None, btf_custom_func_path=None)


def spec_to_json(spec: Spec) -> dict[str, object]:
    """A plain-data view of a spec (for ``harness progs expectations`` and result records)."""

    def mode(m: Mode | None) -> dict[str, object] | None:
        if m is None:
            return None
        return {
            "name": m.name,
            "description": m.description,
            "expect": "failure" if m.expect_failure else "success",
            "msgs": [p.to_json() for p in m.msgs],
            "xlated": [p.to_json() for p in m.xlated],
            "jited": [p.to_json() for p in m.jited],
            "stderr": [p.to_json() for p in m.stderr],
            "stdout": [p.to_json() for p in m.stdout],
            "retval": m.retval if m.execute else None,
            "caps": m.caps,
        }

    return {
        "program": spec.prog_name,
        "section": spec.section,
        "arch": spec.arch,
        "valid": spec.valid,
        "error": spec.error,
        "legacy_tags": spec.legacy_tags,
        "auxiliary": spec.auxiliary,
        "log_level": spec.log_level,
        "flag_ops": [("!" if clear else "") + hex(v) for clear, v in spec.flag_ops],
        "arches": sorted(spec.arches) if spec.arches is not None else None,
        "load_modes": sorted(spec.load_modes),
        "linear_size": spec.linear_size,
        "btf_custom_path": spec.btf_custom_path,
        "btf_custom_func_path": spec.btf_custom_func_path,
        "unknown_tags": list(spec.unknown_tags),
        "then_run": list(spec.then_run) if spec.then_run else None,
        "hid": spec.hid,
        "priv": mode(spec.priv),
        "unpriv": mode(spec.unpriv),
    }
