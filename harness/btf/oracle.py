"""Differential check of harness.btf's validator against the kernel's own BTF checker.

Why: the validator should reject exactly what bpf(BPF_BTF_LOAD) rejects. The kernel's
rules live in kernel/bpf/btf.c; the only faithful statement of them is running it. This
module feeds the same (mostly hostile) blob to both and sorts the pair of verdicts:

    ours(blob)          -> (accepted, BTFError message): parse, then validate.check
    compare(blob)       -> Outcome: both verdicts, reasons and a category
    mutate(blob, rng)   -> (mutated blob, label): one seeded, mostly record-level mutation
    seed_blobs()        -> small, kernel-valid seeds built with harness.btf's builder
    ours_split, compare_split, merge_split, split_header_verdict, split_seeds: the same
                           for split BTF on a base (below)

Categories: "agree-accept", "agree-reject", "we-accept-kernel-rejects" (the validator
lets through what the kernel refuses: the bad one) and "we-reject-kernel-accepts".

Split BTF. BPF_BTF_LOAD takes no base: in the 7.3 tree's include/uapi/linux/bpf.h its
members are btf, btf_log_buf, btf_size, btf_log_size, btf_log_level, btf_log_true_size,
btf_flags and btf_token_fd; only module BTF, which the kernel parses itself
(btf_parse_module), gets a base. A split blob S on base B has ids from B's type count and
string offsets from B's str_len, exactly as if S's types and strings were appended to
B's. So `merge_split` writes that one base blob (v1 header, B's types then S's, B's
strings then S's) and the kernel's verdict on it stands for the type and string rules.
What the merge cannot carry is S's own header; btf_parse_module runs btf_parse_hdr (with
btf_check_sec_info) and btf_parse_str_sec on it with a base set, and
`split_header_verdict` mirrors those few rules with the kernel's wording:

    data shorter than 8 bytes                  "hdr_len not found"
    data shorter than hdr_len                  "btf_header not found"
    header bytes past struct btf_header set    "Unsupported btf_header"
    magic (host order) != 0xeb9f               "Invalid magic"
    version != 1                               "Unsupported version"
    flags != 0                                 "Unsupported flags"
    sections (types, strings; on 7.x with a 32-byte header also a non-empty layout)
    sorted by offset: an offset past the data  "Invalid section offset"
        a gap before a section or data after   "Unsupported section found"
        an overlap                             "Section overlap found"
        a section running past the data        "Total section length too long"
    strings not the last bytes (6.x always;    "String section is not at the end"
        7.x only for hdr_len < 32)
    str_len - 1 > 0xffffff or no final NUL     "Invalid string section"
        (unless str_len == 0)

and it applies none of the base-only ones: "No data" (a split may be a bare header),
an empty string section and a first string byte other than NUL are fine (the split's
strings continue the base's), and "No type found" is never reached. Module BTF also never
meets btf_parse_type_sec's "Unaligned type_off" (the merge always aligns it).

Where the merge is not the module path: btf_parse_module checks only the records'
metas (btf_check_all_metas) and the modifier chains, never btf_check_all_types (type
resolution: loops, member and DATASEC placement, FUNC_PROTO arguments), while
BPF_BTF_LOAD of the merge runs all of them; the merge therefore gives the BPF_BTF_LOAD
rules for base plus split, the ones the validator implements. Also: BTF_MAX_SIZE (16 MiB)
and the "Invalid string section" length limit apply to the merged total, not the split
alone; a split's layout section (7.x) is dropped; the distilled-base relocation of
out-of-tree modules (btf_relocate) is not modelled; the base is re-checked as part of the
merge (seeds use host-accepted bases).

Mutations parse the header and walk the type records with the declared per-kind shapes
(harness.btf.kinds), so most of them hit a meaningful field (a name offset, a type id, a
size, the info word); a few are raw byte flips. For split BTF only the split blob is
mutated; `scan`/`mutate` take the base so ids and string offsets start where the base
ends. benchmarks/btf_oracle.py drives it.
"""

from __future__ import annotations

import errno
import functools
import os
import random
import re
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kernel_check import KernelVerdict, kernel_load
from harness.btf.kernel_rules import rules_for
from harness.btf.kinds import (
    ENTRY_WORDS,
    FIXED_WORDS,
    HEADER_LEN,
    HEADER_LEN_V1,
    INFO_KIND_MASK,
    INFO_KIND_SHIFT,
    INFO_VLEN_MASK,
    INT_BOOL,
    INT_CHAR,
    INT_SIGNED,
    MAGIC,
    MAX_NAME_OFFSET,
    MAX_TYPE,
    NR_KINDS,
    Kind,
)
from harness.btf.load import btf_and_base_bytes, btf_bytes
from harness.cache import cache_root

AGREE_ACCEPT = "agree-accept"
AGREE_REJECT = "agree-reject"
WE_ACCEPT = "we-accept-kernel-rejects"
WE_REJECT = "we-reject-kernel-accepts"
CATEGORIES = (AGREE_ACCEPT, AGREE_REJECT, WE_ACCEPT, WE_REJECT)
VMLINUX = Path("/sys/kernel/btf/vmlinux")
# ours is judged by the rules of the kernel it is compared with: the running one
HOST_RULES = rules_for(os.uname().release)
_FOREIGN_MAGIC = struct.pack("<H" if sys.byteorder == "big" else ">H", MAGIC)


# ---- the two verdicts ------------------------------------------------------------------


def ours(blob: bytes) -> tuple[bool, str]:
    """Does harness.btf accept `blob` as base BTF; else the BTFError message.

    Any other exception is a crash of the library on hostile input and propagates.
    """
    if blob[:2] == _FOREIGN_MAGIC:  # BTF of the other byte order: the host cannot judge it
        return False, "not in the host's byte order (the host kernel: Invalid magic)"
    try:
        _read_fully(blob)
    except BTFError as exc:
        return False, str(exc)
    return True, ""


@dataclass(frozen=True)
class Outcome:
    """Both verdicts on one blob (the kernel's reason is its checker's last log line)."""

    ours_ok: bool
    ours_reason: str
    kernel_ok: bool
    kernel_errno: int
    kernel_reason: str
    ours_seconds: float = 0.0
    kernel_seconds: float = 0.0

    @property
    def category(self) -> str:
        if self.ours_ok == self.kernel_ok:
            return AGREE_ACCEPT if self.ours_ok else AGREE_REJECT
        return WE_ACCEPT if self.ours_ok else WE_REJECT

    @property
    def disagrees(self) -> bool:
        return self.ours_ok != self.kernel_ok


def _outcome(ours_verdict: Callable[[], tuple[bool, str]],
             kernel_verdict: Callable[[], KernelVerdict]) -> Outcome:
    """Time both verdicts; EPERM from the kernel says nothing about the blob: raise."""
    t0 = time.perf_counter()
    ok, reason = ours_verdict()
    t1 = time.perf_counter()
    verdict = kernel_verdict()
    t2 = time.perf_counter()
    if not verdict.loaded and verdict.errno == errno.EPERM:
        raise PermissionError(errno.EPERM, "BPF_BTF_LOAD refused (no CAP_BPF)")
    return Outcome(ok, reason, verdict.loaded, verdict.errno, verdict.reason, t1 - t0, t2 - t1)


def compare(blob: bytes) -> Outcome:
    """Run both checkers on `blob`.

    Raises PermissionError when the kernel refuses BPF_BTF_LOAD itself (EPERM: no
    CAP_BPF), since that says nothing about the blob; crashes of `ours` propagate.
    """
    return _outcome(lambda: ours(blob), lambda: kernel_load(blob))


def _read_fully(blob: bytes, base: Btf | None = None) -> Btf:
    """Read under the host's rules and decode every record, as any reader of it will
    (from_bytes leaves the decoding of a strictly checked BTF to first use)."""
    btf = Btf.from_bytes(blob, base, strict=HOST_RULES)
    _ = btf.types
    return btf


@functools.lru_cache(maxsize=4)
def _parsed_base(base_blob: bytes) -> Btf:
    """The base parsed once per seed: a vmlinux takes seconds, its mutants are many."""
    return _read_fully(base_blob)


def ours_split(base_blob: bytes, split_blob: bytes) -> tuple[bool, str]:
    """Does harness.btf accept `split_blob` as split BTF on `base_blob`; else why.

    A base harness.btf itself refuses gives (False, "base: ..."): every split on it is
    then refused, which the caller should see as such rather than as the split's fault.
    """
    try:
        base = _parsed_base(base_blob)
    except BTFError as exc:
        return False, f"base: {exc}"
    try:
        _read_fully(split_blob, base)
    except BTFError as exc:
        return False, str(exc)
    return True, ""


def kernel_split(base_blob: bytes, split_blob: bytes) -> KernelVerdict:
    """The kernel's verdict on split BTF: its split-header rules, else BPF_BTF_LOAD of the
    merge (see the module docstring for what that stands for)."""
    why = split_header_verdict(split_blob)
    if why is not None:
        return KernelVerdict(False, _HEADER_ERRNO.get(why, errno.EINVAL), why)
    merged = merge_split(base_blob, split_blob)
    assert merged is not None  # split_header_verdict passed: the header is readable
    return kernel_load(merged)


def compare_split(base_blob: bytes, split_blob: bytes) -> Outcome:
    """`compare` for split BTF: ours_split against kernel_split."""
    return _outcome(lambda: ours_split(base_blob, split_blob),
                    lambda: kernel_split(base_blob, split_blob))


def kernel_unavailable() -> str | None:
    """Why the kernel oracle cannot be used here (None when BPF_BTF_LOAD works)."""
    b = Btf()
    b.add_int("int", 4, INT_SIGNED)
    try:
        verdict = kernel_load(b.to_bytes())
    except OSError as exc:  # no bpf syscall number for this arch, no libc, ...
        return f"bpf(2) unusable: {exc}"
    if verdict.loaded:
        return None
    if verdict.errno == errno.EPERM:
        return "no CAP_BPF here: BPF_BTF_LOAD is refused"
    return f"BPF_BTF_LOAD of a one-INT BTF failed: {verdict.reason}"


_LOCATION = re.compile(r"^(type \[\d+\] )?(at offset 0x[0-9a-f]+)?: ")
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-f]*\d[0-9a-f]*\b")


def our_key(reason: str) -> str:
    """Our reason without its location and numbers: what groups like failures together."""
    return _NUMBER.sub("N", _LOCATION.sub("", reason))


def kernel_key(reason: str) -> str:
    """The kernel's last log line without type id, names, key=value details and numbers.

    Type lines are "[id] KIND name details... message" (btf_verifier_log_type): KIND and
    the message after the last key=value token are kept; btf_check_meta's own lines
    ("[id] Invalid name_offset:N") keep all but the id. Member and DATASEC entry lines
    ("\tname type_id=... message", "type_id=... offset=... message") keep the message.
    """
    tokens = reason.split()
    if (len(tokens) > 1 and re.fullmatch(r"\[\d+\]", tokens[0])
            and not re.fullmatch(r"[A-Z][A-Z0-9_]*", tokens[1])):
        # btf_check_meta's "[id] Invalid kind:N", "[id] Invalid name_offset:N", ...
        return _NUMBER.sub("N", " ".join(tokens[1:]))
    last_kv = max((i for i, tok in enumerate(tokens) if "=" in tok), default=-1)
    if tokens and re.fullmatch(r"\[\d+\]", tokens[0]) and len(tokens) > 2:
        message = " ".join(tokens[last_kv + 1:] if last_kv >= 0 else tokens[3:])
        if "args=(" in reason:  # FUNC_PROTO: "args=(a, 5 b, vararg) message"
            message = message.rpartition(")")[2].strip()
        if tokens[1] == "FWD":  # "[5] FWD name struct message"
            message = message.removeprefix("struct ").removeprefix("union ")
        return f"{tokens[1]}: {_NUMBER.sub('N', message)}"
    if last_kv >= 0:
        return _NUMBER.sub("N", " ".join(tokens[last_kv + 1:]))
    return _NUMBER.sub("N", " ".join(tokens))


# ---- the blob's layout, as a mutator needs it ------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One type record: its id, absolute byte offset, info bits and length in words."""

    tid: int
    off: int
    kind: int
    vlen: int
    kflag: int
    words: int

    @property
    def entries(self) -> int:
        """Absolute byte offset of the first vlen entry (or extra struct)."""
        return self.off + 4 * FIXED_WORDS[self.kind]


@dataclass(frozen=True, slots=True)
class Layout:
    """Header fields and type records of a blob (walked leniently: stops at damage).

    For split BTF `start_id` is the base's type count (the first record's id) and
    `str_base` the base's str_len (the logical offset of the first own string byte).
    """

    fmt: str
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int
    records: tuple[Record, ...]
    start_id: int = 1
    str_base: int = 0

    @property
    def type_start(self) -> int:
        return self.hdr_len + self.type_off

    @property
    def str_start(self) -> int:
        return self.hdr_len + self.str_off

    @property
    def str_end(self) -> int:
        """One past the last valid logical string offset (base strings included)."""
        return self.str_base + self.str_len

    @property
    def nr_types(self) -> int:
        """One past the last id (libbpf's btf__type_cnt), base types included."""
        return self.start_id + len(self.records)


@functools.lru_cache(maxsize=16)
def scan(blob: bytes, start_id: int = 1, str_base: int = 0) -> Layout | None:
    """Header and records of `blob`, or None without a readable header (cached: seeds
    are scanned once however many mutants they give). A split blob takes its base's type
    count and str_len (`base_offsets`), so mutators pick ids and offsets that mean what
    they say there."""
    if len(blob) < HEADER_LEN_V1:
        return None
    if blob[:2] == b"\x9f\xeb":
        fmt = "<"
    elif blob[:2] == b"\xeb\x9f":
        fmt = ">"
    else:
        return None
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(fmt + "5I", blob, 4)
    start = hdr_len + type_off
    end = min(start + type_len, len(blob))
    words = struct.Struct(fmt + "I")
    records = []
    pos = start
    while pos + 12 <= end:
        info = words.unpack_from(blob, pos + 4)[0]
        kind = (info >> INFO_KIND_SHIFT) & INFO_KIND_MASK
        if kind >= NR_KINDS:
            break
        vlen = info & INFO_VLEN_MASK
        n = FIXED_WORDS[kind] + ENTRY_WORDS[kind] * (0 if kind == Kind.FUNC else vlen)
        if pos + 4 * n > end:
            break
        records.append(Record(start_id + len(records), pos, kind, vlen, info >> 31, n))
        pos += 4 * n
    return Layout(fmt, hdr_len, type_off, type_len, str_off, str_len, tuple(records),
                  start_id, str_base)


def base_offsets(base: bytes | None) -> tuple[int, int]:
    """(start_id, str_base) of a split blob on `base`: (1, 0) for base BTF itself."""
    if base is None:
        return 1, 0
    lay = scan(base)
    if lay is None:
        raise ValueError("base BTF has no readable header")
    return lay.nr_types, lay.str_len


_ENTRY_KINDS = (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FUNC_PROTO,
                Kind.DATASEC)
_VLEN_KINDS = _ENTRY_KINDS + (Kind.FUNC,)
_REF_KINDS = (Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
              Kind.TYPE_TAG)
_SIZED_KINDS = (Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.DATASEC,
                Kind.FLOAT)
# kinds the kernel requires to be anonymous, and kinds that must have a name
_ANON_KINDS = (Kind.PTR, Kind.ARRAY, Kind.FUNC_PROTO, Kind.VOLATILE, Kind.CONST,
               Kind.RESTRICT)
_NAMED_KINDS = (Kind.INT, Kind.FWD, Kind.TYPEDEF, Kind.FUNC, Kind.VAR, Kind.DATASEC,
                Kind.FLOAT, Kind.DECL_TAG, Kind.TYPE_TAG)


def _entry_fields(rec: Record, word: int) -> list[int]:
    """Offsets of word `word` of each vlen entry of `rec`."""
    width = 4 * ENTRY_WORDS[rec.kind]
    if not width or rec.kind == Kind.FUNC:
        return []
    return [rec.entries + i * width + 4 * word for i in range(rec.vlen)]


def name_fields(rec: Record) -> list[int]:
    """Offsets of every string-offset field of `rec` (its name, member/param/value names)."""
    out = [rec.off]
    if rec.kind in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FUNC_PROTO):
        out += _entry_fields(rec, 0)
    return out


def type_fields(rec: Record) -> list[int]:
    """Offsets of every type-id field of `rec`."""
    kind = rec.kind
    if kind in _REF_KINDS or kind in (Kind.FUNC, Kind.VAR, Kind.DECL_TAG):
        return [rec.off + 8]
    if kind == Kind.FUNC_PROTO:
        return [rec.off + 8] + _entry_fields(rec, 1)
    if kind == Kind.ARRAY:
        return [rec.off + 12, rec.off + 16]
    if kind in (Kind.STRUCT, Kind.UNION):
        return _entry_fields(rec, 1)
    if kind == Kind.DATASEC:
        return _entry_fields(rec, 0)
    return []


# ---- mutators ------------------------------------------------------------------------------

Mutator = Callable[[bytearray, Layout, random.Random], bool]

INTERESTING_U32 = (0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 31, 32, 0x7F, 0x80, 0xFF, 0xFFFF,
                   0x00FFFFFF, 0x01000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)


def _get(data: bytearray, lay: Layout, off: int) -> int:
    return struct.unpack_from(lay.fmt + "I", data, off)[0]


def _put(data: bytearray, lay: Layout, off: int, value: int) -> None:
    struct.pack_into(lay.fmt + "I", data, off, value & 0xFFFFFFFF)


def _pick(rng: random.Random, lay: Layout, kinds: tuple[int, ...] | None = None,
          want: Callable[[Record], bool] | None = None) -> Record | None:
    """A random record of one of `kinds` passing `want`; sampled, not listed, so a
    vmlinux-sized blob costs no full pass per mutant."""
    recs = lay.records
    if not recs:
        return None
    for _ in range(64):
        rec = recs[rng.randrange(len(recs))]
        if (kinds is None or rec.kind in kinds) and (want is None or want(rec)):
            return rec
    found = [r for r in recs if (kinds is None or r.kind in kinds) and (want is None or want(r))]
    return rng.choice(found) if found else None


def _set_info(data: bytearray, lay: Layout, rec: Record, *, kind: int | None = None,
              vlen: int | None = None, kflag: int | None = None) -> None:
    info = _get(data, lay, rec.off + 4)
    k = (info >> INFO_KIND_SHIFT) & INFO_KIND_MASK if kind is None else kind
    v = info & INFO_VLEN_MASK if vlen is None else vlen
    f = info >> 31 if kflag is None else kflag
    _put(data, lay, rec.off + 4, (f << 31) | (k << INFO_KIND_SHIFT) | v)


def _other(rng: random.Random, choices: list[int], current: int) -> int:
    options = [c for c in choices if c != current]
    return rng.choice(options) if options else current ^ 1


def m_flip_type_bytes(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """1-4 random bytes of the type section."""
    lo, hi = lay.type_start, min(lay.type_start + lay.type_len, len(data))
    if hi <= lo:
        return False
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(lo, hi)] ^= rng.randrange(1, 256)
    return True


def m_flip_bytes(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """1-4 random bytes anywhere (header and strings included)."""
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
    return True


def m_hdr_len(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """hdr_len too small, unaligned, past the data, or pointing into the types."""
    choices = [0, 4, 8, 16, 20, 23, 25, 28, 31, 33, 36, 40, lay.hdr_len - 4, lay.hdr_len + 4,
               len(data) - 1, len(data), len(data) + 1, 0xFFFFFFFF]
    _put(data, lay, 4, _other(rng, choices, lay.hdr_len))
    return True


def m_hdr_type_sec(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """type_off / type_len out of range, unaligned or overlapping the strings."""
    if rng.random() < 0.4:
        choices = [1, 2, 4, 12, lay.type_len, lay.str_off, lay.type_off + 4, 0xFFFFFFFC]
        _put(data, lay, 8, _other(rng, choices, lay.type_off))
    else:
        choices = [0, 1, 12, lay.type_len - 4, lay.type_len - 1, lay.type_len + 4,
                   lay.type_len + lay.str_len, 0x7FFFFFFF, 0xFFFFFFFC]
        _put(data, lay, 12, _other(rng, choices, lay.type_len))
    return True


def m_hdr_str_sec(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """str_off / str_len out of range, overlapping the types, or leaving a gap."""
    if rng.random() < 0.5:
        choices = [0, 1, lay.str_off - 4, lay.str_off - 1, lay.str_off + 1, lay.str_off + 4,
                   lay.str_off + lay.str_len, 0xFFFFFFFF]
        _put(data, lay, 16, _other(rng, choices, lay.str_off))
    else:
        choices = [0, 1, lay.str_len - 1, lay.str_len + 1, lay.str_len + 4,
                   0x00FFFFFF + 1, 0x7FFFFFFF, 0xFFFFFFFF]
        _put(data, lay, 20, _other(rng, choices, lay.str_len))
    return True


def m_hdr_magic(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """Magic, version or flags changed."""
    which = rng.randrange(3)
    if which == 0:
        data[0:2] = rng.choice([b"\xeb\x9f" if lay.fmt == "<" else b"\x9f\xeb", b"\0\0"])
    else:
        data[1 + which] = _other(rng, [0, 1, 2, 0x80, 0xFF], data[1 + which])
    return True


def m_name_past_end(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A string offset at or past the end of the string section."""
    rec = _pick(rng, lay)
    if rec is None:
        return False
    end = lay.str_end
    value = rng.choice([end, end + 1, end + rng.randrange(2, 4096), 0x00FFFFFF, 0x01000000,
                        0xFFFFFFFF])
    _put(data, lay, rng.choice(name_fields(rec)), value)
    return True


def m_name_shift(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A string offset moved inside the section: the middle of a string, or its NUL."""
    rec = _pick(rng, lay)
    if rec is None or lay.str_len < 2:
        return False
    local = rng.randrange(0 if lay.str_base else 1, lay.str_len)
    _put(data, lay, rng.choice(name_fields(rec)), lay.str_base + local)
    return True


def m_name_invalid(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A non-identifier character written into a string some record names."""
    for _ in range(16):
        rec = _pick(rng, lay)
        if rec is None:
            return False
        off = _get(data, lay, rng.choice(name_fields(rec))) - lay.str_base
        start = lay.str_start + off
        if not 0 <= off < lay.str_len or start >= len(data) or not data[start]:
            continue  # empty, or (split BTF) a base string: not in this blob
        end = data.find(0, start)
        end = len(data) if end < 0 else end
        at = rng.choice([start, start, rng.randrange(start, end)])
        data[at] = rng.choice(b"- .:!@/\\\x01\x7f\xff0129")
        return True
    return False


def m_name_empty(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """Name offset 0 (the empty string) where a kind requires a name."""
    rec = _pick(rng, lay, _NAMED_KINDS + (Kind.ENUM, Kind.ENUM64),
                lambda r: r.kind not in (Kind.ENUM, Kind.ENUM64) or r.vlen > 0)
    if rec is None:
        return False
    fields = name_fields(rec)
    _put(data, lay, fields[0] if rec.kind in _NAMED_KINDS else rng.choice(fields[1:]), 0)
    return True


def m_name_added(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A valid name on a kind that must be anonymous (PTR, ARRAY, FUNC_PROTO, CV)."""
    rec = _pick(rng, lay, _ANON_KINDS)
    named = _pick(rng, lay, None, lambda r: _get(data, lay, r.off) != 0)
    if rec is None or named is None:
        return False
    _put(data, lay, rec.off, _get(data, lay, named.off))
    return True


def m_type_past_end(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A type id at or past the type count."""
    rec = _pick(rng, lay, None, lambda r: bool(type_fields(r)))
    if rec is None:
        return False
    n = lay.nr_types
    value = rng.choice([n, n + 1, n + rng.randrange(2, 1000), MAX_TYPE, MAX_TYPE + 1,
                        0x7FFFFFFF, 0xFFFFFFFF])
    _put(data, lay, rng.choice(type_fields(rec)), value)
    return True


def m_type_retarget(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A type id pointed at another existing type (void included): wrong-kind targets."""
    rec = _pick(rng, lay, None, lambda r: bool(type_fields(r)))
    if rec is None:
        return False
    _put(data, lay, rng.choice(type_fields(rec)), rng.randrange(lay.nr_types))
    return True


def m_self_ref(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A modifier/typedef/array/member/var referring to its own type."""
    rec = _pick(rng, lay, _REF_KINDS + (Kind.ARRAY, Kind.STRUCT, Kind.UNION, Kind.VAR),
                lambda r: bool(type_fields(r)))
    if rec is None:
        return False
    fields = type_fields(rec)
    field = fields[0] if rec.kind == Kind.ARRAY else rng.choice(fields)
    _put(data, lay, field, rec.tid)
    return True


def m_ref_cycle(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """Two modifiers/typedefs referring to each other, or a struct holding a typedef of
    itself."""
    a = _pick(rng, lay, _REF_KINDS + (Kind.STRUCT, Kind.UNION), lambda r: bool(type_fields(r)))
    b = _pick(rng, lay, _REF_KINDS)
    if a is None or b is None or a is b:
        return False
    _put(data, lay, rng.choice(type_fields(a)), b.tid)
    _put(data, lay, b.off + 8, a.tid)
    return True


def m_huge_vlen(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """vlen far beyond the records that follow."""
    rec = _pick(rng, lay, _ENTRY_KINDS)
    if rec is None:
        return False
    left = (lay.type_start + lay.type_len - rec.entries) // (4 * ENTRY_WORDS[rec.kind])
    _set_info(data, lay, rec, vlen=rng.choice([left + 1, 0xFFFF, 0x10000, 0x00FFFFFF]))
    return True


def m_vlen_change(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """vlen off by one or two (later records are then misread), or 0."""
    rec = _pick(rng, lay, _VLEN_KINDS)
    if rec is None:
        return False
    vlen = rng.choice([0, rec.vlen - 2, rec.vlen - 1, rec.vlen + 1, rec.vlen + 2])
    _set_info(data, lay, rec, vlen=max(0, vlen))
    return True


def m_unknown_kind(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """Kind bits set to UNKN or a kind past BTF_KIND_MAX."""
    rec = _pick(rng, lay)
    if rec is None:
        return False
    _set_info(data, lay, rec, kind=rng.choice([0, NR_KINDS, NR_KINDS + 1, 31, 0x40, 0x7F]))
    return True


def m_kind_change(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A record re-labelled as another known kind (the same words read another way)."""
    rec = _pick(rng, lay)
    if rec is None:
        return False
    _set_info(data, lay, rec, kind=_other(rng, list(range(1, NR_KINDS)), rec.kind))
    return True


def m_kflag_flip(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """kind_flag toggled."""
    rec = _pick(rng, lay)
    if rec is None:
        return False
    _set_info(data, lay, rec, kflag=rec.kflag ^ 1)
    return True


def m_size_change(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """The size word of a sized kind changed (too small, odd, zero, huge)."""
    rec = _pick(rng, lay, _SIZED_KINDS)
    if rec is None:
        return False
    size = _get(data, lay, rec.off + 8)
    choices = [0, 1, 2, 3, 5, 6, 7, 8, 9, 12, 15, 16, 17, 32, size - 1, size + 1, size * 2,
               size // 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
    _put(data, lay, rec.off + 8, _other(rng, choices, size))
    return True


def m_int_data(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """INT encoding, bit offset or bit count changed."""
    rec = _pick(rng, lay, (Kind.INT,))
    if rec is None:
        return False
    old = _get(data, lay, rec.off + 12)
    enc, off, bits = old >> 24, (old >> 16) & 0xFF, old & 0xFF
    which = rng.randrange(4)
    if which == 0:
        enc = _other(rng, [0, INT_SIGNED, INT_CHAR, INT_BOOL, INT_SIGNED | INT_CHAR,
                           INT_SIGNED | INT_BOOL, 8, 0xF], enc)
    elif which == 1:
        off = _other(rng, [0, 1, 7, 8, 31, 64, 127, 128, 255], off)
    elif which == 2:
        bits = _other(rng, [0, 1, 7, 9, 31, 33, 63, 65, 127, 128, 129, 255], bits)
    else:
        _put(data, lay, rec.off + 12, old | rng.choice([0x100, 0x8000, 0xF0000000]))
        return True
    _put(data, lay, rec.off + 12, (enc << 24) | (off << 16) | bits)
    return True


def m_member_offset(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A member's offset word: past the struct, unaligned, or a bitfield size in it."""
    rec = _pick(rng, lay, (Kind.STRUCT, Kind.UNION), lambda r: r.vlen > 0)
    if rec is None:
        return False
    field = rng.choice(_entry_fields(rec, 2))
    old = _get(data, lay, field)
    size = _get(data, lay, rec.off + 8)
    choices = [0, 1, 3, 7, 8 * size, 8 * size - 1, 8 * size + 8, old + 1, old + 8,
               old | (1 << 24), old | (33 << 24), old | (0xFF << 24), 0x00FFFFFF, 0xFFFFFFFF]
    _put(data, lay, field, _other(rng, choices, old))
    return True


def m_linkage(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """FUNC linkage (its vlen) or VAR linkage past the known values."""
    rec = _pick(rng, lay, (Kind.FUNC, Kind.VAR))
    if rec is None:
        return False
    value = rng.choice([0, 1, 2, 3, 4, 0xFF])
    if rec.kind == Kind.FUNC:
        _set_info(data, lay, rec, vlen=value)
    else:
        _put(data, lay, rec.off + 12, rng.choice([value, 0xFFFFFFFF]))
    return True


def m_decl_tag_idx(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """DECL_TAG component_idx below -1, at/after the target's vlen, or on a non-composite."""
    rec = _pick(rng, lay, (Kind.DECL_TAG,))
    if rec is None:
        return False
    _put(data, lay, rec.off + 12, rng.choice([-2, -1, 0, 1, 2, 3, 8, 0x7FFFFFFF, 0xFFFF]))
    return True


def m_datasec_info(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A DATASEC entry's offset or size: overlapping, past the section, zero."""
    rec = _pick(rng, lay, (Kind.DATASEC,), lambda r: r.vlen > 0)
    if rec is None:
        return False
    field = rng.choice(_entry_fields(rec, rng.choice([1, 2])))
    old = _get(data, lay, field)
    _put(data, lay, field, _other(rng, [0, 1, 3, old + 1, old - 1, old + 4096, 0xFFFFFFFF], old))
    return True


def m_strings(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """The string section loses its leading empty string or its final NUL."""
    first, last = lay.str_start, lay.str_start + lay.str_len - 1
    if not lay.str_len or last >= len(data):
        return False
    data[rng.choice([first, last])] = ord(rng.choice("aZ_"))
    return True


def m_truncate_extend(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """Bytes cut off the end, or trailing bytes appended."""
    if rng.random() < 0.5:
        del data[rng.randrange(len(data)):]
    else:
        data += bytes(rng.randint(1, 16)) if rng.random() < 0.5 else rng.randbytes(4)
    return True


MUTATORS: dict[str, Mutator] = {
    "flip-type-bytes": m_flip_type_bytes,
    "flip-bytes": m_flip_bytes,
    "hdr-len": m_hdr_len,
    "hdr-type-sec": m_hdr_type_sec,
    "hdr-str-sec": m_hdr_str_sec,
    "hdr-magic": m_hdr_magic,
    "name-past-end": m_name_past_end,
    "name-shift": m_name_shift,
    "name-invalid": m_name_invalid,
    "name-empty": m_name_empty,
    "name-added": m_name_added,
    "type-past-end": m_type_past_end,
    "type-retarget": m_type_retarget,
    "self-ref": m_self_ref,
    "ref-cycle": m_ref_cycle,
    "huge-vlen": m_huge_vlen,
    "vlen-change": m_vlen_change,
    "unknown-kind": m_unknown_kind,
    "kind-change": m_kind_change,
    "kflag-flip": m_kflag_flip,
    "size-change": m_size_change,
    "int-data": m_int_data,
    "member-offset": m_member_offset,
    "linkage": m_linkage,
    "decl-tag-idx": m_decl_tag_idx,
    "datasec-info": m_datasec_info,
    "strings": m_strings,
    "truncate-extend": m_truncate_extend,
}


def mutate(blob: bytes, rng: random.Random, *, base: bytes | None = None
           ) -> tuple[bytes, str]:
    """One mutation of `blob` chosen and shaped by `rng` (same rng state, same result).

    Returns the mutant and its label (a MUTATORS key). A mutator that finds nothing to
    work on (no DATASEC, say) passes to another; "flip-bytes" always applies. With `base`,
    `blob` is split BTF on it: only `blob` changes, ids and string offsets are read and
    written as the split sees them (from the base's type count and str_len).
    """
    if not blob:
        return bytes(rng.randbytes(rng.randint(1, 32))), "flip-bytes"
    lay = scan(blob, *base_offsets(base))
    labels = list(MUTATORS)
    first = rng.choice(labels)
    rest = [label for label in labels if label != first]
    rng.shuffle(rest)
    for label in [first, *rest]:
        if lay is None and label != "flip-bytes":
            continue
        data = bytearray(blob)
        if MUTATORS[label](data, lay or _NO_LAYOUT, rng) and bytes(data) != blob:
            return bytes(data), label
    data = bytearray(blob)
    data[rng.randrange(len(data))] ^= 0xFF
    return bytes(data), "flip-bytes"


_NO_LAYOUT = Layout("<", HEADER_LEN, 0, 0, 0, 0, ())


# ---- split BTF: its own header, and the merge ---------------------------------------------

ENOTSUPP = 524  # kernel-internal errno (include/linux/errno.h), what BPF_BTF_LOAD returns
_HEADER_ERRNO = {"Unsupported btf_header": errno.E2BIG, "Unsupported version": ENOTSUPP,
                 "Unsupported flags": ENOTSUPP}
BTF_MAGIC = 0xEB9F


@functools.cache
def host_header_size() -> int:
    """sizeof(struct btf_header) in the running kernel: 24 before the layout section, 32
    with it (7.x); which split-header rules apply depends on it.

    Probed once: a 32-byte header with layout_off set and layout_len 0 loads where the
    layout fields exist and is "Unsupported btf_header" where they do not. 24 when the
    kernel cannot be asked.
    """
    b = Btf(hdr_len=HEADER_LEN)
    b.add_int("int", 4, INT_SIGNED)
    data = bytearray(b.to_bytes())
    struct.pack_into("<I", data, HEADER_LEN_V1, 4)
    try:
        verdict = kernel_load(bytes(data))
    except OSError:
        return HEADER_LEN_V1
    return HEADER_LEN if verdict.loaded else HEADER_LEN_V1


def _kernel_header(blob: bytes, header_size: int) -> tuple[int, ...]:
    """The header as btf_parse_hdr holds it: min(hdr_len, sizeof) bytes copied over zeros,
    in host byte order: magic, version, flags, hdr_len, then the section words."""
    hdr_len = struct.unpack_from("=I", blob, 4)[0]
    raw = blob[:min(hdr_len, header_size)].ljust(header_size, b"\0")
    return struct.unpack_from("=HBBI" + "I" * ((header_size - 8) // 4), raw)


def _c_int(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _sec_cmp(x: tuple[int, int], y: tuple[int, int]) -> int:
    """btf_sec_info_cmp: (int)(x.off - y.off) ?: (int)(x.len - y.len), wrap-around kept."""
    return _c_int(x[0] - y[0]) or _c_int(x[1] - y[1])


def _sec_info_verdict(size: int, hdr_len: int, secs: list[tuple[int, int]]) -> str | None:
    """btf_check_sec_info on (offset, length) pairs in header order."""
    if len(secs) == 2:  # lib/sort.c's heapsort keeps the pair iff cmp(first, second) < 0
        secs = secs if _sec_cmp(secs[0], secs[1]) < 0 else [secs[1], secs[0]]
    else:  # the 7.x layout section: off by a wrapped comparison only at 2**31 apart
        secs = sorted(secs, key=functools.cmp_to_key(_sec_cmp))
    total, expected = 0, (size - hdr_len) & 0xFFFFFFFF
    for off, length in secs:
        if expected < off:
            return "Invalid section offset"
        if total < off:
            return "Unsupported section found"
        if total > off:
            return "Section overlap found"
        if expected - total < length:
            return "Total section length too long"
        total = (total + length) & 0xFFFFFFFF
    return None if expected == total else "Unsupported section found"


def split_header_verdict(split: bytes, header_size: int | None = None) -> str | None:
    """The kernel's log line if module BTF `split` fails btf_parse_hdr or btf_parse_str_sec
    (with a base set), else None: the rules the merge cannot carry (module docstring).

    `header_size` is sizeof(struct btf_header) of the kernel to mirror; default: the
    running one's (host_header_size).
    """
    hsz = header_size or host_header_size()
    size = len(split)
    if size < 8:
        return "hdr_len not found"
    hdr_len = struct.unpack_from("=I", split, 4)[0]
    if size < hdr_len:
        return "btf_header not found"
    if hdr_len > hsz and any(split[hsz:hdr_len]):
        return "Unsupported btf_header"
    magic, version, flags, hdr_len, *words = _kernel_header(split, hsz)
    if magic != BTF_MAGIC:
        return "Invalid magic"
    if version != 1:
        return "Unsupported version"
    if flags:
        return "Unsupported flags"
    # no "No data": a split BTF may be a bare header
    secs = [(words[0], words[1]), (words[2], words[3])]
    if hsz >= HEADER_LEN and hdr_len >= hsz and words[5]:
        secs.append((words[4], words[5]))
    why = _sec_info_verdict(size, hdr_len, secs)
    if why is not None:
        return why
    str_off, str_len = words[2], words[3]
    end = hdr_len + str_off + str_len
    if (hsz <= HEADER_LEN_V1 or hdr_len < hsz) and end != size:
        return "String section is not at the end"
    if not str_len:  # split BTF may have no strings of its own
        return None
    if str_len - 1 > MAX_NAME_OFFSET or split[end - 1]:
        return "Invalid string section"
    return None  # the first byte need not be NUL: the split's strings continue the base's


def merge_split(base: bytes, split: bytes, header_size: int | None = None) -> bytes | None:
    """One base blob equivalent to `split` on `base` for the type and string rules: a
    24-byte header, base types then split types, base strings then split strings.

    None when the kernel would refuse the split's own header (split_header_verdict says
    why: that verdict then stands). `base` must be readable BTF in host byte order.
    """
    hsz = header_size or host_header_size()
    if split_header_verdict(split, hsz) is not None:
        return None
    _, _, _, s_hdr, s_toff, s_tlen, s_soff, s_slen, *_ = _kernel_header(split, hsz)
    lay = scan(base)
    if lay is None or lay.fmt != ("<" if sys.byteorder == "little" else ">"):
        raise ValueError("base BTF without a readable header in host byte order")
    types = (base[lay.type_start:lay.type_start + lay.type_len]
             + split[s_hdr + s_toff:s_hdr + s_toff + s_tlen])
    strs = (base[lay.str_start:lay.str_start + lay.str_len]
            + split[s_hdr + s_soff:s_hdr + s_soff + s_slen])
    head = struct.pack("=HBBI4I", BTF_MAGIC, 1, 0, HEADER_LEN_V1, 0, len(types), len(types),
                       len(strs))
    return head + types + strs


# ---- seeds ---------------------------------------------------------------------------------


def build_seed(groups: int, *, hdr_len: int = HEADER_LEN, seed: int = 0,
               base: Btf | None = None, first_group: int = 0) -> Btf:
    """A kernel-valid BTF with every kind: INTs of each size and encoding, then `groups`
    varied blocks of ~30 types (numbered from `first_group`, which names them).

    A block: FLOAT, CV modifiers, TYPEDEF, TYPE_TAG (plain and attribute), ARRAY, FWD,
    ENUM (signed or not, each size), ENUM64, a STRUCT with a bitfield and a nested
    anonymous UNION, FUNC_PROTOs (named, unnamed and variadic parameters), a static or
    global FUNC (the kernel refuses extern ones), VARs, a DATASEC over them, DECL_TAGs on
    a struct, a member, a function and a parameter. `seed` varies sizes and counts.

    With `base` it is split BTF on it and also refers into the base (_refer_to_base).
    """
    rng = random.Random(seed)
    b = Btf(base, hdr_len=hdr_len)
    char = b.add_int("char", 1, INT_CHAR)
    b.add_int("_Bool", 1, INT_BOOL)
    u16 = b.add_int("unsigned short", 2)
    i32 = b.add_int("int", 4, INT_SIGNED)
    u32 = b.add_int("unsigned int", 4)
    i64 = b.add_int("long long", 8, INT_SIGNED)
    b.add_int("__int128", 16, INT_SIGNED)
    b.add_float("double", 8)
    for g in range(first_group, first_group + groups):
        flt_size = rng.choice([4, 8, 16])
        flt = b.add_float(f"float{g}", flt_size)
        td = b.add_typedef(f"t{g}", rng.choice([u16, i32, u32, i64]))
        tag = b.add_type_tag("user", b.add_const(b.add_volatile(td)))
        attr = b.add_type_attr(f"address_space({g % 3})", i32)
        p_tag = b.add_ptr(tag)
        p_attr = b.add_restrict(b.add_ptr(attr))
        nelems = rng.randint(0, 8)
        arr = b.add_array(u32, char, nelems)
        p_fwd = b.add_ptr(b.add_fwd(f"opaque{g}", g % 2))
        en = b.add_enum(f"e{g}", rng.choice([1, 2, 4, 8]))
        for v in range(rng.randint(0, 4)):
            b.add_enum_value(f"E{g}_{v}", -v if g % 2 else v)
        en64 = b.add_enum64(f"e64_{g}", 8, bool(g % 2))
        b.add_enum64_value(f"X{g}", 1 << 40)
        un = b.add_union(None, 8)
        b.add_field("a", i64, 0)
        b.add_field("b", flt if flt_size <= 8 else i32, 0)
        cb = b.add_func_proto(i32)  # a callback type: unnamed parameters are fine here
        b.add_func_param(None, p_attr)
        b.add_func_param(None, 0)
        p_cb = b.add_ptr(cb)
        st = b.add_struct(f"s{g}", 48)
        b.add_field("x", i32, 0)
        b.add_field("bits", u32, 32, rng.randint(1, 31))
        b.add_field("e", en, 64)
        b.add_field(None, un, 128)
        b.add_field("p", p_fwd, 192)
        b.add_field("name", arr, 256) if nelems else b.add_field("q", p_tag, 256)
        b.add_field("cb", p_cb, 320)
        p_st = b.add_ptr(st)
        proto = b.add_func_proto(i32 if g % 3 else 0)  # a FUNC's: parameters need names
        b.add_func_param("self", p_st)
        b.add_func_param("attr", p_attr)
        b.add_func_param("flags", en64)
        fn = b.add_func(f"fn{g}", g % 2, proto)  # the kernel refuses EXTERN (2)
        b.add_decl_tag("tagged", st)
        b.add_decl_tag("member", st, 1)
        b.add_decl_attr("noinline", fn)
        b.add_decl_tag("arg", fn, 0)
        v1 = b.add_var(f"v{g}", 1, st)
        v2 = b.add_var(f"w{g}", 0, i64)
        v3_type, v3_size = (p_st, 8) if rng.random() < 0.5 else (i32, 4)
        v3 = b.add_var(f"z{g}", 1, v3_type)
        b.add_datasec(f".data.{g}", 56 + v3_size)
        b.add_datasec_var_info(v1, 0, 48)
        b.add_datasec_var_info(v2, 48, 8)
        b.add_datasec_var_info(v3, 56, v3_size)
        b.add_decl_tag("section_var", v1)
    if base is not None:
        _refer_to_base(b, base)
    return b


def _refer_to_base(b: Btf, base: Btf) -> None:
    """Split types whose ids point below the split's first id: a typedef of, pointer to
    and struct holding a base struct, DECL_TAGs on it and its member, a FUNC taking it, a
    VAR of it in a DATASEC. Needs a base from build_seed (its "int" and "s0")."""
    b_int = base.find("int", Kind.INT)
    b_st = base.find("s0", Kind.STRUCT)
    td = b.add_typedef("base_int", b_int)
    p_st = b.add_ptr(b_st)
    st = b.add_struct("wraps_base", 56)
    b.add_field("inner", b_st, 0)
    b.add_field("n", td, 384)
    b.add_decl_tag("on_base", b_st)
    b.add_decl_tag("on_base_member", b_st, 2)
    p_wrap = b.add_ptr(st)
    proto = b.add_func_proto(b_int)
    b.add_func_param("p", p_st)
    b.add_func_param("w", p_wrap)
    b.add_func("split_fn", 0, proto)
    v = b.add_var("split_var", 1, b_st)
    b.add_datasec(".bss.split", 48)
    b.add_datasec_var_info(v, 0, 48)


def seed_blobs(*, vmlinux: bool = False, built: bool = False,
               build: Path | None = None) -> dict[str, bytes]:
    """Named seed blobs both checkers accept.

    "tiny": one block (~40 types, 24-byte header as pahole < 1.31 writes), where most
    mutations hit a field that matters; "kinds": ten varied blocks (a few hundred types,
    32-byte header). With `vmlinux`, the host's /sys/kernel/btf/vmlinux too (~5 MB:
    about a second per mutant on each side). With `built`, "built-vmlinux": the .BTF of
    a harness-built kernel (`build`, else the newest: find_build), if there is one.
    """
    out = {
        "tiny": build_seed(1, hdr_len=HEADER_LEN_V1).to_bytes(),
        "kinds": build_seed(10, seed=1).to_bytes(),
    }
    if vmlinux:
        out["vmlinux"] = VMLINUX.read_bytes()
    if built:
        out.update(built_seeds(build))
    return out


def build_split_seed(seed: int = 2) -> tuple[bytes, bytes]:
    """(base, split): the "tiny" seed as base, one more block as split BTF on it with
    references into the base; both under 2 KB, so their mutants can live in the repo."""
    base = build_seed(1, hdr_len=HEADER_LEN_V1)
    split = build_seed(1, seed=seed, base=base, first_group=1)
    return base.to_bytes(), split.to_bytes()


def split_seeds(*, built: bool = False, build: Path | None = None
                ) -> list[tuple[str, bytes, bytes]]:
    """(name, base, split) seeds: "split-tiny" (build_split_seed) and, with `built`, the
    module BTF of a harness-built kernel (built_split_seeds)."""
    base, split = build_split_seed()
    out = [("split-tiny", base, split)]
    if built:
        out += built_split_seeds(build)
    return out


def crafted_split_cases(base: bytes) -> dict[str, bytes]:
    """Hand-made split blobs on `base` (a build_seed base) for the split-header rules a
    random mutant rarely hits; the kernel's verdict on each is whatever kernel_split says.

    "bare-header": a 24-byte header and nothing else (no "No data" for split BTF);
    "hdr-len-8": an 8-byte header, all sections zero-length (the kernel zero-fills
    the missing fields); "no-strings": types named only with base strings, str_len 0;
    "strings-first": the string section before the types (not at the end);
    "strings-unterminated": no final NUL; "strings-no-leading-nul": the seed's own
    strings, whose first byte is a name, not NUL.
    """
    base_btf = Btf.from_bytes(base, validate=False)
    out = {"bare-header": struct.pack("<HBBI4I", BTF_MAGIC, 1, 0, HEADER_LEN_V1, 0, 0, 0, 0),
           "hdr-len-8": struct.pack("<HBBI", BTF_MAGIC, 1, 0, 8)}
    b = Btf(base_btf, hdr_len=HEADER_LEN_V1)
    b.add_typedef("int", b.add_ptr(base_btf.find("int", Kind.INT)))
    out["no-strings"] = b.to_bytes()
    b = Btf(base_btf, hdr_len=HEADER_LEN_V1)
    b.add_typedef("own_name", base_btf.find("int", Kind.INT))
    blob = b.to_bytes()
    lay = scan(blob)
    assert lay is not None
    types = blob[lay.type_start:lay.type_start + lay.type_len]
    strs = blob[lay.str_start:lay.str_start + lay.str_len]
    out["strings-no-leading-nul"] = blob
    out["strings-unterminated"] = blob[:-1] + b"x"
    out["strings-first"] = struct.pack("<HBBI4I", BTF_MAGIC, 1, 0, HEADER_LEN_V1, len(strs),
                                       len(types), 0, len(strs)) + strs + types
    return out


# ---- seeds from a kernel the harness built ---------------------------------------------


def find_build(root: Path | None = None) -> Path | None:
    """The newest kernel build dir (make O=, with a vmlinux) under the harness cache."""
    root = root if root is not None else cache_root() / "builds"
    try:
        dirs = [p.parent for p in root.glob("*/vmlinux") if p.is_file()]
    except OSError:
        return None
    return max(dirs, key=lambda d: (d / "vmlinux").stat().st_mtime, default=None)


def built_seeds(build: Path | None = None) -> dict[str, bytes]:
    """{"built-vmlinux": .BTF of the build's vmlinux}, or {} without one.

    Why beside /sys/kernel/btf/vmlinux: it comes from the tree the harness tests (a newer
    pahole, other configs). Whether the host kernel loads it is the caller's check.
    """
    build = build or find_build()
    if build is None:
        return {}
    try:
        return {"built-vmlinux": btf_bytes(build / "vmlinux")}
    except BTFError:
        return {}


def built_split_seeds(build: Path | None = None, *, max_size: int = 256 * 1024
                      ) -> list[tuple[str, bytes, bytes]]:
    """Module BTF of a build as (name, base, split): the largest module with a distilled
    .BTF.base (bpf_testmod: split on that small base) and the largest in-tree one (split
    on the build's vmlinux .BTF), each at most `max_size` bytes of .BTF."""
    build = build or find_build()
    if build is None:
        return []
    distilled: list[tuple[int, str, bytes, bytes]] = []
    in_tree: list[tuple[int, str, bytes]] = []
    for ko in sorted(build.rglob("*.ko")):
        try:
            split, dist_base = btf_and_base_bytes(ko)
        except BTFError:
            continue  # no .BTF (or not an ELF): nothing to seed
        if len(split) > max_size:
            continue
        if dist_base is not None:
            distilled.append((len(split), ko.stem, dist_base, split))
        else:
            in_tree.append((len(split), ko.stem, split))
    out = []
    if distilled:
        _, name, dist_base, split = max(distilled)
        out.append((f"built-{name}", dist_base, split))
    if in_tree:
        vmlinux = built_seeds(build).get("built-vmlinux")
        if vmlinux is not None:
            _, name, split = max(in_tree)
            out.append((f"built-{name}", vmlinux, split))
    return out
