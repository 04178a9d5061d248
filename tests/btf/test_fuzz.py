"""Hostile input: mutated real BTF must raise BTFError and nothing else.

HARNESS_BTF_FUZZ_EXAMPLES sets the hypothesis example count (default 10,000);
each example mutates all five seeds (a clang-compiled object's BTF and a small
split BTF on it, in both byte orders, and a blob with the 7.3 kind layout
section), so a default run checks 50,000 blobs. Whatever parses must
also dump and write back to exactly the mutated input (the codec is lossless).
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.btf import Btf, BTFError
from harness.btf.dump import dump
from harness.btf.load import btf_bytes

EXAMPLES = int(os.environ.get("HARNESS_BTF_FUZZ_EXAMPLES", "10000"))

INTERESTING_U32 = [0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 31, 32, 0x7F, 0x80, 0xFF, 0xFFFF,
                   0x01000000, 0x04000003, 0x0D000002, 0x13000001, 0x80000000, 0x8C000000,
                   0x7FFFFFFF, 0xFFFFFFFF, 0x00FFFFFF, 0x14000000]


@pytest.fixture(scope="module")
def seeds(small_clang_obj: Path) -> list[tuple[bytes, Btf | None]]:
    raw = btf_bytes(small_clang_obj)
    base = Btf.from_bytes(raw)
    split = Btf(base)
    p = split.add_ptr(1)
    proto = split.add_func_proto(1)
    split.add_func_param("h", p)
    split.add_func_param(None, 0)
    fn = split.add_func("kf", 1, proto)
    split.add_decl_tag("bpf_kfunc", fn)
    split.add_struct("st", 8)
    split.add_field("a", 1, 0, 3)
    split.add_enum64("e", 8, True)
    split.add_enum64_value("V", -1)
    big = base.copy()
    big.endian = "big"
    big_split = split.copy()
    big_split.endian = "big"
    big_base = Btf.from_bytes(big.to_bytes())
    with_layout = Btf(add_layout=True)  # 7.3 header with a kind layout section
    i = with_layout.add_int("int", 4, 1)
    with_layout.add_struct("l", 4)
    with_layout.add_field("x", i, 0)
    return [(raw, None), (split.to_bytes(), base), (big.to_bytes(), None),
            (big_split.to_bytes(), big_base), (with_layout.to_bytes(), None)]


MUTATIONS = ("flip", "truncate", "header", "word", "extend")


def mutate(raw: bytes, kind: str, rnd: random.Random) -> bytes:
    """One mutation of a real blob; `rnd` (seeded from hypothesis) picks the details.

    A drawn integer seeds `rnd`, which keeps hypothesis' per-example cost low
    enough for 10,000 examples in a default run.
    """
    data = bytearray(raw)
    e = ">" if data[:2] == b"\xeb\x9f" else "<"
    hdr_len = struct.unpack_from(e + "I", data, 4)[0]
    if kind == "flip":
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
    elif kind == "truncate":
        del data[rnd.randrange(len(data)):]
    elif kind == "header":
        # magic/version/flags, hdr_len, type_off, type_len, str_off, str_len, layout_off/len
        # (the last two land in the first type of a 24-byte header)
        struct.pack_into(e + "I", data, 4 * rnd.randrange(8), rnd.choice(INTERESTING_U32))
    elif kind == "word":
        nwords = (len(data) - hdr_len) // 4
        for _ in range(rnd.randint(1, 3)):
            val = rnd.choice(INTERESTING_U32) if rnd.random() < 0.7 else rnd.getrandbits(32)
            struct.pack_into(e + "I", data, hdr_len + 4 * rnd.randrange(nwords), val)
    else:
        data += rnd.randbytes(rnd.randint(1, 16))
    return bytes(data)


def check_blob(data: bytes, base: Btf | None) -> None:
    try:
        btf = Btf.from_bytes(data, base)
    except BTFError:
        return
    assert btf.to_bytes() == data
    dump(btf)
    try:
        Btf.from_bytes(data, base, validate=False).to_bytes()
    except BTFError:
        pytest.fail("validate=False failed where validate=True passed")


def test_fuzz_mutated_blobs_raise_only_btferror(seeds) -> None:  # noqa: ANN001
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(MUTATIONS), seed=st.integers(0, (1 << 64) - 1))
    def run(kind: str, seed: int) -> None:
        # every example mutates each seed blob (LE/BE, base/split) the same way
        for raw, base in seeds:
            check_blob(mutate(raw, kind, random.Random(seed)), base)

    run()


def test_unvalidated_blobs_still_safe(seeds) -> None:  # noqa: ANN001
    """With validation off, dump/write of structurally sound but dangling BTF stays clean."""
    raw, _ = seeds[0]
    data = bytearray(raw)
    # point the second type's name (STRUCT 's', after a 12-byte PTR) past the strings
    hdr_len = struct.unpack_from("<I", data, 4)[0]
    struct.pack_into("<I", data, hdr_len + 12, 0xFFFFFF)
    with pytest.raises(BTFError, match=r"type \[2\] at offset 0x24: invalid name offset"):
        Btf.from_bytes(bytes(data))
    btf = Btf.from_bytes(bytes(data), validate=False)
    assert b"(invalid)" in dump(btf)
    assert btf.to_bytes() == bytes(data)
