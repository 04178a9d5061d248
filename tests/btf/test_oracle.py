"""harness.btf.oracle: seeded mutators, our verdict, and the kernel's on known cases.

Disagreements overall are not asserted away (closing them is the validator's work);
what is pinned: the seeds load on both sides, the cases both must reject are rejected
by both, and harness.btf never fails on hostile input with anything but BTFError. For
split BTF: ids and offsets of mutants continue the base, the merge is laid out as the
kernel would see the pair, and split_header_verdict's wording is the kernel's. The
regression corpus (tests/btf/data/oracle) pins the host kernel's verdicts; that ours
matches them is expected to fail until the validator covers every rule (xfail).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.btf import Btf, oracle
from harness.btf.kinds import HEADER_LEN, HEADER_LEN_V1, Kind


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return oracle.seed_blobs()


@pytest.fixture(scope="module")
def kernel() -> None:
    why = oracle.kernel_unavailable()
    if why is not None:
        pytest.skip(why)


def _u32(blob: bytearray, off: int, value: int) -> None:
    struct.pack_into("<I", blob, off, value)


def _str_past_end(blob: bytes) -> bytes:
    lay = oracle.scan(blob)
    data = bytearray(blob)
    _u32(data, lay.records[0].off, lay.str_len + 10)  # INT "char": name past the strings
    return bytes(data)


def _type_past_end(blob: bytes) -> bytes:
    lay = oracle.scan(blob)
    ptr = next(r for r in lay.records if r.kind == Kind.PTR)
    data = bytearray(blob)
    _u32(data, ptr.off + 8, lay.nr_types + 5)
    return bytes(data)


def _hdr_len_too_small(blob: bytes) -> bytes:
    data = bytearray(blob)
    _u32(data, 4, 16)
    return bytes(data)


BOTH_REJECT = {"string offset past the end": _str_past_end,
               "type id past the end": _type_past_end,
               "hdr_len too small": _hdr_len_too_small}


def test_seeds_cover_every_kind_and_both_header_lengths(seeds) -> None:  # noqa: ANN001
    kinds = {r.kind for blob in seeds.values() for r in oracle.scan(blob).records}
    assert kinds == set(Kind) - {Kind.UNKN}
    assert {Btf.from_bytes(b).hdr_len for b in seeds.values()} == {HEADER_LEN, HEADER_LEN_V1}
    assert len(oracle.scan(seeds["kinds"]).records) >= 200
    for name, blob in seeds.items():
        assert oracle.ours(blob) == (True, ""), name


def test_mutate_is_deterministic_for_a_seed(seeds) -> None:  # noqa: ANN001
    blob = seeds["tiny"]
    first = [oracle.mutate(blob, random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    a, b = random.Random(11), random.Random(11)
    run_a = [oracle.mutate(blob, a) for _ in range(50)]
    assert run_a == [oracle.mutate(blob, b) for _ in range(50)]
    assert all(m != blob and label in oracle.MUTATORS for m, label in run_a)
    assert len({m for m, _ in run_a}) > 40


def test_every_mutator_applies_to_the_small_seeds(seeds) -> None:  # noqa: ANN001
    rng = random.Random(3)
    for name, blob in seeds.items():
        lay = oracle.scan(blob)
        for label, fn in oracle.MUTATORS.items():
            data = bytearray(blob)
            assert fn(data, lay, rng), (name, label)


def test_ours_never_crashes_on_mutants(seeds) -> None:  # noqa: ANN001
    """A few hundred mutants: ours() returns a verdict (a crash would raise here)."""
    labels = set()
    rejected = 0
    for name, blob in seeds.items():
        rng = random.Random(f"test:{name}")
        for _ in range(200 if name == "tiny" else 100):
            mutant, label = oracle.mutate(blob, rng)
            ok, reason = oracle.ours(mutant)
            labels.add(label)
            assert ok == (reason == "")
            rejected += not ok
    assert labels == set(oracle.MUTATORS)
    assert rejected > 100


def test_ours_rejects_the_known_bad_cases(seeds) -> None:  # noqa: ANN001
    for name, blob in seeds.items():
        for what, make in BOTH_REJECT.items():
            assert not oracle.ours(make(blob))[0], (name, what)
    assert "Invalid name_offset" in oracle.ours(_str_past_end(seeds["tiny"]))[1]
    assert "Invalid type_id" in oracle.ours(_type_past_end(seeds["tiny"]))[1]
    assert "Unsupported section found" in oracle.ours(_hdr_len_too_small(seeds["tiny"]))[1]


def test_categories_and_reason_keys() -> None:
    def outcome(ours_ok: bool, kernel_ok: bool) -> oracle.Outcome:
        return oracle.Outcome(ours_ok, "", kernel_ok, 0, "")

    assert outcome(True, True).category == oracle.AGREE_ACCEPT
    assert outcome(False, False).category == oracle.AGREE_REJECT
    assert outcome(True, False).category == oracle.WE_ACCEPT
    assert outcome(False, True).category == oracle.WE_REJECT
    assert oracle.our_key("type [7] at offset 0x6c: member 1: type id 99 >= type count 40") \
        == "member N: type id N >= type count N"
    assert oracle.kernel_key("[20] PTR (anon) type_id=20 Loop detected") == "PTR: Loop detected"
    assert oracle.kernel_key("\tx type_id=4 bitfield_size=255 bits_offset=0 Invalid member "
                             "bitfield_size") == "Invalid member bitfield_size"
    assert oracle.kernel_key("Unsupported magic") == "Unsupported magic"
    assert oracle.kernel_key("[28] FUNC_PROTO (anon) return=5 args=(self, 35 attr, vararg) "
                             "Invalid arg#3") == "FUNC_PROTO: Invalid arg#N"
    assert oracle.kernel_key("[9] FWD op-0 union Invalid name") == "FWD: Invalid name"


def test_kernel_accepts_the_seeds(seeds, kernel) -> None:  # noqa: ANN001
    for name, blob in seeds.items():
        out = oracle.compare(blob)
        assert out.category == oracle.AGREE_ACCEPT, (name, out)


@pytest.mark.parametrize("what", list(BOTH_REJECT))
def test_kernel_and_ours_both_reject(seeds, kernel, what: str) -> None:  # noqa: ANN001
    for name, blob in seeds.items():
        out = oracle.compare(BOTH_REJECT[what](blob))
        assert out.category == oracle.AGREE_REJECT, (name, out)
        assert out.kernel_reason and out.ours_reason


def test_compare_runs_on_mutants(seeds, kernel) -> None:  # noqa: ANN001
    """Every category is a verdict pair; no assertion on how many disagree."""
    rng = random.Random(5)
    cats = set()
    for _ in range(60):
        mutant, _label = oracle.mutate(seeds["tiny"], rng)
        out = oracle.compare(mutant)
        assert out.category in oracle.CATEGORIES
        assert out.kernel_ok == (out.kernel_reason == "loaded")
        cats.add(out.category)
    assert oracle.AGREE_REJECT in cats


# ---- split BTF ------------------------------------------------------------------------------

V1 = HEADER_LEN_V1  # the host (6.x) kernel's sizeof(struct btf_header); the rules below
# are checked against a fixed size so they hold without a kernel


@pytest.fixture(scope="module")
def split_seed() -> tuple[bytes, bytes]:
    return oracle.build_split_seed()


def _hdr(hdr_len: int = V1, type_len: int = 0, str_off: int = 0, str_len: int = 0,
         *, type_off: int = 0, magic: int = 0xEB9F, version: int = 1, flags: int = 0) -> bytes:
    head = struct.pack("<HBBI4I", magic, version, flags, hdr_len, type_off, type_len, str_off,
                       str_len)
    return head[:hdr_len] if hdr_len < V1 else head + bytes(hdr_len - V1)


def test_split_seed_ids_and_strings_continue_the_base(split_seed) -> None:  # noqa: ANN001
    base, split = split_seed
    start_id, str_base = oracle.base_offsets(base)
    blay, lay = oracle.scan(base), oracle.scan(split, start_id, str_base)
    assert start_id == len(blay.records) + 1 and str_base == blay.str_len
    assert lay.records[0].tid == start_id and lay.nr_types == start_id + len(lay.records)
    assert lay.str_len and split[lay.str_start] != 0  # split strings start with a name
    assert len(base) < 2048 and len(split) < 2048
    kinds = {r.kind for r in lay.records}
    assert kinds == set(Kind) - {Kind.UNKN}
    merged = oracle.merge_split(base, split, V1)
    mlay = oracle.scan(merged)
    assert mlay.hdr_len == V1 and mlay.type_off == 0 and mlay.str_off == mlay.type_len
    assert len(mlay.records) == len(blay.records) + len(lay.records)
    assert mlay.str_len == blay.str_len + lay.str_len
    assert merged[V1:V1 + blay.type_len] == base[blay.type_start:blay.type_start + blay.type_len]
    assert merged.endswith(split[lay.str_start:lay.str_start + lay.str_len])


def test_split_header_verdict_rules() -> None:
    def verdict(blob: bytes, size: int = V1) -> str | None:
        return oracle.split_header_verdict(blob, size)

    strs = b"name\0"
    ok = _hdr(str_off=0, str_len=len(strs)) + strs
    assert verdict(ok) is None
    assert verdict(_hdr()) is None  # a bare header: no "No data" for split BTF
    assert verdict(_hdr(8)) is None  # the kernel zero-fills the missing fields
    assert verdict(b"\x9f\xeb\x01") == "hdr_len not found"
    assert verdict(_hdr(V1 + 8)[:V1]) == "btf_header not found"
    assert verdict(_hdr(32)[:V1] + b"\1" + bytes(7)) == "Unsupported btf_header"
    assert verdict(_hdr(32)) is None  # zero header tail: fine
    assert verdict(_hdr(magic=0x9FEB)) == "Invalid magic"
    assert verdict(_hdr(version=2)) == "Unsupported version"
    assert verdict(_hdr(flags=1)) == "Unsupported flags"
    assert verdict(_hdr(str_off=0, str_len=5) + b"name!") == "Invalid string section"
    assert verdict(_hdr(str_off=4, str_len=5) + bytes(4) + strs) == "Unsupported section found"
    assert verdict(_hdr(type_len=8, str_off=4, str_len=5) + bytes(8) + b"x\0") \
        == "Section overlap found"
    assert verdict(_hdr(type_len=4, str_off=4, str_len=9) + bytes(4) + strs) \
        == "Total section length too long"
    assert verdict(_hdr(type_len=4, str_off=99, str_len=0) + bytes(4)) \
        == "Invalid section offset"
    assert verdict(_hdr(str_len=5) + strs + bytes(3)) == "Unsupported section found"
    first = _hdr(type_off=8, type_len=12, str_off=0, str_len=8) + b"abcdefg\0" + bytes(12)
    assert verdict(first) == "String section is not at the end"
    assert verdict(_hdr(32, type_off=8, type_len=12, str_len=8) + first[V1:], 32) is None
    assert verdict(first, 32) == "String section is not at the end"  # hdr_len < 32 on 7.x
    assert oracle.merge_split(b"", _hdr(flags=1), V1) is None


def test_mutate_split_picks_ids_past_the_base(split_seed) -> None:  # noqa: ANN001
    base, split = split_seed
    lay = oracle.scan(split, *oracle.base_offsets(base))
    rng = random.Random(9)
    for _ in range(50):
        data = bytearray(split)
        assert oracle.m_type_past_end(data, lay, rng)
        changed = [off for off in range(0, len(data), 4) if data[off:off + 4] != split[off:off + 4]]
        assert len(changed) == 1
        assert struct.unpack_from("<I", data, changed[0])[0] >= lay.nr_types
        data = bytearray(split)
        assert oracle.m_self_ref(data, lay, rng)
        value = [struct.unpack_from("<I", data, off)[0] for off in range(0, len(data), 4)
                 if data[off:off + 4] != split[off:off + 4]]
        assert not value or value[0] >= lay.start_id
    a, b = random.Random(4), random.Random(4)
    run_a = [oracle.mutate(split, a, base=base) for _ in range(30)]
    assert run_a == [oracle.mutate(split, b, base=base) for _ in range(30)]
    for label, fn in oracle.MUTATORS.items():
        assert fn(bytearray(split), lay, rng), label


def test_ours_split_never_crashes_on_split_mutants(split_seed) -> None:  # noqa: ANN001
    base, split = split_seed
    rng = random.Random("test:split")
    labels = set()
    for _ in range(200):
        mutant, label = oracle.mutate(split, rng, base=base)
        ok, reason = oracle.ours_split(base, mutant)
        labels.add(label)
        assert ok == (reason == "")
    assert len(labels) > 20


def test_split_header_verdict_matches_the_kernel(seeds, kernel) -> None:  # noqa: ANN001
    """On base blobs the kernel applies the same header rules plus the base-only ones, so
    a header mutant's log line is split_header_verdict's wherever that says anything."""
    size = oracle.host_header_size()
    header_lines = {"hdr_len not found", "btf_header not found", "Unsupported btf_header",
                    "Invalid magic", "Unsupported version", "Unsupported flags",
                    "Invalid section offset", "Unsupported section found",
                    "Section overlap found", "Total section length too long",
                    "String section is not at the end", "Invalid string section"}
    labels = ["hdr-len", "hdr-type-sec", "hdr-str-sec", "hdr-magic", "strings",
              "truncate-extend"]
    rng = random.Random(13)
    checked = 0
    for name, blob in seeds.items():
        lay = oracle.scan(blob)
        for _ in range(120):
            data = bytearray(blob)
            oracle.MUTATORS[rng.choice(labels)](data, lay, rng)
            mutant = bytes(data)
            ours = oracle.split_header_verdict(mutant, size)
            kernel = oracle.kernel_load(mutant).reason
            if ours is not None:
                assert kernel == ours, (name, mutant[:32].hex())
                checked += 1
            else:
                assert kernel not in header_lines - {"Invalid string section"}, \
                    (name, mutant[:32].hex(), kernel)
    assert checked > 100


def test_kernel_split_on_the_seed_and_crafted_cases(split_seed, kernel) -> None:  # noqa: ANN001
    base, split = split_seed
    assert oracle.kernel_split(base, split).loaded
    crafted = oracle.crafted_split_cases(base)
    for what in ("bare-header", "hdr-len-8", "no-strings", "strings-no-leading-nul"):
        assert oracle.kernel_split(base, crafted[what]).loaded, what
    assert oracle.kernel_split(base, crafted["strings-unterminated"]).reason \
        == "Invalid string section"
    assert oracle.kernel_split(base, crafted["strings-first"]).reason \
        == "String section is not at the end"
    # the merge reaches the type rules with the split's ids
    bad = bytearray(split)
    lay = oracle.scan(split, *oracle.base_offsets(base))
    ptr = next(r for r in lay.records if r.kind == Kind.PTR)
    _u32(bad, ptr.off + 8, ptr.tid)
    assert oracle.kernel_split(base, bytes(bad)).reason.startswith(f"[{ptr.tid}] PTR")


def test_compare_split_runs_on_mutants(split_seed, kernel) -> None:  # noqa: ANN001
    base, split = split_seed
    rng = random.Random(6)
    cats = set()
    for _ in range(60):
        mutant, _label = oracle.mutate(split, rng, base=base)
        out = oracle.compare_split(base, mutant)
        assert out.category in oracle.CATEGORIES
        assert out.kernel_ok == (out.kernel_reason == "loaded")
        cats.add(out.category)
    assert oracle.AGREE_REJECT in cats


def test_built_kernel_seeds_load(kernel) -> None:  # noqa: ANN001
    """The newest harness build's BTF, if any: module seeds are split with a real base."""
    build = oracle.find_build()
    if build is None:
        pytest.skip("no built kernel in the harness cache")
    triples = oracle.built_split_seeds(build)
    assert all(base and split for _, base, split in triples)
    small = [t for t in triples if len(t[1]) < 1 << 20]  # the distilled base: a cheap merge
    for name, base, split in small:
        lay = oracle.scan(split, *oracle.base_offsets(base))
        assert lay is not None and lay.records and lay.records[0].tid == lay.start_id > 1
        if oracle.kernel_load(base).loaded and oracle.split_header_verdict(split) is None:
            # a base the host loads, a split header it takes: the module's types load too
            assert oracle.kernel_split(base, split).loaded, name


# ---- the regression corpus (tests/btf/data/oracle) ------------------------------------------

CORPUS = Path(__file__).parent / "data" / "oracle"


@dataclass(frozen=True)
class Case:
    file: str
    kind: str
    base: str
    kernel: str
    log: str

    def blob(self) -> bytes:
        return (CORPUS / self.file).read_bytes()

    def base_blob(self) -> bytes | None:
        return (CORPUS / self.base).read_bytes() if self.kind == "split" else None


def _corpus() -> list[Case]:
    rows = [line.split("\t") for line in (CORPUS / "index.tsv").read_text().splitlines()
            if line and not line.startswith("#")]
    return [Case(*row) for row in rows]


def test_regression_corpus_is_small_and_varied() -> None:
    cases = _corpus()
    assert 30 <= len(cases) <= 80
    assert {c.kind for c in cases} == {"base", "split"}
    assert {c.kernel for c in cases} == {"accept", "reject"}
    assert len({oracle.kernel_key(c.log) for c in cases if c.kernel == "reject"}) >= 20
    for case in cases:
        assert len(case.blob()) <= 2048, case.file
        assert case.kind == "base" or len(case.base_blob()) <= 2048, case.file


def test_regression_cases_kernel_verdict_unchanged(kernel) -> None:  # noqa: ANN001
    changed = []
    for case in _corpus():
        base = case.base_blob()
        verdict = (oracle.kernel_load(case.blob()) if base is None
                   else oracle.kernel_split(base, case.blob()))
        got = "accept" if verdict.loaded else "reject"
        if got != case.kernel or oracle.kernel_key(verdict.reason) != oracle.kernel_key(case.log):
            changed.append(f"{case.file}: recorded {case.kernel} {case.log!r}, "
                           f"now {got} {verdict.reason!r}")
    assert not changed, "\n".join(changed)


def test_regression_cases_ours_matches_kernel() -> None:
    mismatches = []
    for case in _corpus():
        base = case.base_blob()
        try:
            ok, reason = (oracle.ours(case.blob()) if base is None
                          else oracle.ours_split(base, case.blob()))
        except Exception as exc:  # noqa: BLE001 - a crash is a mismatch to list, not an abort
            ok, reason = None, f"crash: {type(exc).__name__}: {exc}"
        if ok != (case.kernel == "accept"):
            mismatches.append(f"{case.file}: kernel {case.kernel} ({case.log}); "
                              f"ours {reason or 'accept'}")
    print(f"{len(mismatches)} regression cases where ours != kernel:")
    print("\n".join(mismatches))
    assert not mismatches, "\n".join(mismatches)


def test_regression_rejects_carry_the_kernels_words() -> None:
    """Each reject names the kernel's own log message (btf_verifier_log's last line), so a
    user can match it with what bpf(BPF_BTF_LOAD) or dmesg printed."""
    from harness.btf.kernel_rules import KernelReject

    checked = 0
    for case in _corpus():
        if case.kernel != "reject":
            continue
        base_blob = case.base_blob()
        base = None if base_blob is None else Btf.from_bytes(base_blob,
                                                             strict=oracle.HOST_RULES)
        with pytest.raises(KernelReject) as caught:
            Btf.from_bytes(case.blob(), base, strict=oracle.HOST_RULES)
        assert caught.value.reason in case.log, (case.file, caught.value.reason, case.log)
        checked += 1
    assert checked >= 40


def test_lenient_readers_finish_on_every_corpus_case() -> None:
    """dump, diff and kfuncs read what the kernel refuses (loops included) and either show
    it or stop with a BTFError: never hang, never crash."""
    from harness.btf.diff import diff_btf
    from harness.btf.dump import dump
    from harness.btf.errors import BTFError
    from harness.btf.kfuncs import find_kfuncs

    shown = 0
    for case in _corpus():
        base_blob = case.base_blob()
        try:
            base = None if base_blob is None else Btf.from_bytes(base_blob)
            btf = Btf.from_bytes(case.blob(), base)
        except BTFError:
            continue
        for job in (dump, lambda b: diff_btf(b, b), find_kfuncs):
            try:
                job(btf)
            except BTFError:
                continue
        shown += 1
    assert shown >= 20
