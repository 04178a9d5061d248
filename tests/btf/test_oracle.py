"""harness.btf.oracle: seeded mutators, our verdict, and the kernel's on known cases.

Disagreements overall are not asserted away (closing them is the validator's work);
what is pinned: the seeds load on both sides, the cases both must reject are rejected
by both, and harness.btf never fails on hostile input with anything but BTFError.
"""

from __future__ import annotations

import random
import struct

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
    assert "invalid name offset" in oracle.ours(_str_past_end(seeds["tiny"]))[1]
    assert "references type id" in oracle.ours(_type_past_end(seeds["tiny"]))[1]
    assert "header length 16" in oracle.ours(_hdr_len_too_small(seeds["tiny"]))[1]


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
