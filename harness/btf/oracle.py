"""Differential check of harness.btf's validator against the kernel's own BTF checker.

Why: the validator should reject exactly what bpf(BPF_BTF_LOAD) rejects. The kernel's
rules live in kernel/bpf/btf.c; the only faithful statement of them is running it. This
module feeds the same (mostly hostile) blob to both and sorts the pair of verdicts:

    ours(blob)          -> (accepted, BTFError message): parse, then validate.check
    compare(blob)       -> Outcome: both verdicts, reasons and a category
    mutate(blob, rng)   -> (mutated blob, label): one seeded, mostly record-level mutation
    seed_blobs()        -> small, kernel-valid seeds built with harness.btf's builder

Categories: "agree-accept", "agree-reject", "we-accept-kernel-rejects" (the validator
lets through what the kernel refuses: the bad one) and "we-reject-kernel-accepts".

Base BTF only: in the 7.3 tree's include/uapi/linux/bpf.h the BPF_BTF_LOAD member of
union bpf_attr is btf, btf_log_buf, btf_size, btf_log_size, btf_log_level,
btf_log_true_size, btf_flags and btf_token_fd, with no base-BTF fd; btf_parse() never
sets a base (only module BTF, which the kernel parses itself, gets vmlinux as base). So
split BTF cannot be checked through this syscall, and `ours` parses without a base.

Mutations parse the header and walk the type records with the declared per-kind shapes
(harness.btf.kinds), so most of them hit a meaningful field (a name offset, a type id, a
size, the info word); a few are raw byte flips. benchmarks/btf_oracle.py drives it.
"""

from __future__ import annotations

import errno
import functools
import random
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kernel_check import kernel_load
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
    MAX_TYPE,
    NR_KINDS,
    Kind,
)
from harness.btf.validate import check

AGREE_ACCEPT = "agree-accept"
AGREE_REJECT = "agree-reject"
WE_ACCEPT = "we-accept-kernel-rejects"
WE_REJECT = "we-reject-kernel-accepts"
CATEGORIES = (AGREE_ACCEPT, AGREE_REJECT, WE_ACCEPT, WE_REJECT)
VMLINUX = Path("/sys/kernel/btf/vmlinux")


# ---- the two verdicts ------------------------------------------------------------------


def ours(blob: bytes) -> tuple[bool, str]:
    """Does harness.btf accept `blob` as base BTF; else the BTFError message.

    Any other exception is a crash of the library on hostile input and propagates.
    """
    try:
        check(Btf.from_bytes(blob, validate=False))
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


def compare(blob: bytes) -> Outcome:
    """Run both checkers on `blob`.

    Raises PermissionError when the kernel refuses BPF_BTF_LOAD itself (EPERM: no
    CAP_BPF), since that says nothing about the blob; crashes of `ours` propagate.
    """
    t0 = time.perf_counter()
    ok, reason = ours(blob)
    t1 = time.perf_counter()
    verdict = kernel_load(blob)
    t2 = time.perf_counter()
    if not verdict.loaded and verdict.errno == errno.EPERM:
        raise PermissionError(errno.EPERM, "BPF_BTF_LOAD refused (no CAP_BPF)")
    return Outcome(ok, reason, verdict.loaded, verdict.errno, verdict.reason, t1 - t0, t2 - t1)


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
    the message after the last key=value token are kept. Member and DATASEC entry lines
    ("\tname type_id=... message", "type_id=... offset=... message") keep the message.
    """
    tokens = reason.split()
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
    """Header fields and type records of a blob (walked leniently: stops at damage)."""

    fmt: str
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int
    records: tuple[Record, ...]

    @property
    def type_start(self) -> int:
        return self.hdr_len + self.type_off

    @property
    def str_start(self) -> int:
        return self.hdr_len + self.str_off

    @property
    def nr_types(self) -> int:
        """One past the last id (libbpf's btf__type_cnt)."""
        return len(self.records) + 1


@functools.lru_cache(maxsize=16)
def scan(blob: bytes) -> Layout | None:
    """Header and records of `blob`, or None without a readable header (cached: seeds
    are scanned once however many mutants they give)."""
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
        records.append(Record(len(records) + 1, pos, kind, vlen, info >> 31, n))
        pos += 4 * n
    return Layout(fmt, hdr_len, type_off, type_len, str_off, str_len, tuple(records))


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
    end = lay.str_len
    value = rng.choice([end, end + 1, end + rng.randrange(2, 4096), 0x00FFFFFF, 0x01000000,
                        0xFFFFFFFF])
    _put(data, lay, rng.choice(name_fields(rec)), value)
    return True


def m_name_shift(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A string offset moved inside the section: the middle of a string, or its NUL."""
    rec = _pick(rng, lay)
    if rec is None or lay.str_len < 2:
        return False
    _put(data, lay, rng.choice(name_fields(rec)), rng.randrange(1, lay.str_len))
    return True


def m_name_invalid(data: bytearray, lay: Layout, rng: random.Random) -> bool:
    """A non-identifier character written into a string some record names."""
    for _ in range(16):
        rec = _pick(rng, lay)
        if rec is None:
            return False
        off = _get(data, lay, rng.choice(name_fields(rec)))
        start = lay.str_start + off
        if not 0 < off < lay.str_len or start >= len(data) or not data[start]:
            continue
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


def mutate(blob: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One mutation of `blob` chosen and shaped by `rng` (same rng state, same result).

    Returns the mutant and its label (a MUTATORS key). A mutator that finds nothing to
    work on (no DATASEC, say) passes to another; "flip-bytes" always applies.
    """
    if not blob:
        return bytes(rng.randbytes(rng.randint(1, 32))), "flip-bytes"
    lay = scan(blob)
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


# ---- seeds ---------------------------------------------------------------------------------


def build_seed(groups: int, *, hdr_len: int = HEADER_LEN, seed: int = 0) -> Btf:
    """A kernel-valid base BTF with every kind: INTs of each size and encoding, then
    `groups` varied blocks of ~30 types.

    A block: FLOAT, CV modifiers, TYPEDEF, TYPE_TAG (plain and attribute), ARRAY, FWD,
    ENUM (signed or not, each size), ENUM64, a STRUCT with a bitfield and a nested
    anonymous UNION, FUNC_PROTOs (named, unnamed and variadic parameters), a static or
    global FUNC (the kernel refuses extern ones), VARs, a DATASEC over them, DECL_TAGs on
    a struct, a member, a function and a parameter. `seed` varies sizes and counts.
    """
    rng = random.Random(seed)
    b = Btf(hdr_len=hdr_len)
    char = b.add_int("char", 1, INT_CHAR)
    b.add_int("_Bool", 1, INT_BOOL)
    u16 = b.add_int("unsigned short", 2)
    i32 = b.add_int("int", 4, INT_SIGNED)
    u32 = b.add_int("unsigned int", 4)
    i64 = b.add_int("long long", 8, INT_SIGNED)
    b.add_int("__int128", 16, INT_SIGNED)
    b.add_float("double", 8)
    for g in range(groups):
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
    return b


def seed_blobs(*, vmlinux: bool = False) -> dict[str, bytes]:
    """Named seed blobs both checkers accept.

    "tiny": one block (~40 types, 24-byte header as pahole < 1.31 writes), where most
    mutations hit a field that matters; "kinds": ten varied blocks (a few hundred types,
    32-byte header). With `vmlinux`, the host's /sys/kernel/btf/vmlinux too (~5 MB:
    about a second per mutant on each side).
    """
    out = {
        "tiny": build_seed(1, hdr_len=HEADER_LEN_V1).to_bytes(),
        "kinds": build_seed(10, seed=1).to_bytes(),
    }
    if vmlinux:
        out["vmlinux"] = VMLINUX.read_bytes()
    return out
