"""BTF record shapes (harness.btf.kinds.SHAPES): every kind round-trips through the codec at
the size its shape declares, and the declared sizes are the kernel's, read from btf.h by a
C compiler (the host's uapi header, and the 7.3 tree's when its source is cached)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from harness.btf import kinds
from harness.btf import types as bt
from harness.btf.codec import decode_types, encode_header, encode_types, parse_header
from harness.btf.kinds import SHAPES, Kind
from harness.cache import cache_dir

# One record per kind, with entries where the kind has them and kind_flag where it means
# something, so every word of every shape is exercised.
SAMPLES: list[bt.BtfType] = [
    bt.Int(1, 4, 1, 0, 32),
    bt.Ptr(0, 1),
    bt.Array(0, 1, 1, 7),
    bt.Struct(2, 8, [bt.Member(3, 1, 0), bt.Member(4, 1, (5 << 24) | 32)], 1),
    bt.Union(5, 4, [bt.Member(3, 1, 0)]),
    bt.Enum(6, 4, [bt.EnumValue(7, 0xFFFFFFFF), bt.EnumValue(8, 1)], 1),
    bt.Fwd(9, 1),
    bt.Typedef(10, 1),
    bt.Volatile(0, 1),
    bt.Const(0, 1),
    bt.Restrict(0, 2),
    bt.Func(11, 14, 1),
    bt.FuncProto(0, 1, [bt.Param(12, 1), bt.Param(0, 2)]),
    bt.Var(13, 1, 1),
    bt.Datasec(14, 16, [bt.VarSecinfo(15, 0, 4), bt.VarSecinfo(15, 8, 8)]),
    bt.Float(16, 8),
    bt.DeclTag(17, 12, 1, 1),
    bt.TypeTag(18, 2, 1),
    bt.Enum64(19, 8, [bt.EnumValue(20, (1 << 63) | 5)], 1),
]


@pytest.mark.parametrize("endian", ["little", "big"])
def test_every_kind_round_trips_at_its_declared_size(endian: str) -> None:
    assert {t.kind for t in SAMPLES} == set(Kind) - {Kind.UNKN}
    for t in SAMPLES:
        raw = encode_types([t], endian)
        assert len(raw) == t.record_size() == 4 * kinds.record_words(t.kind, _entries(t)), t
        assert decode_types(raw, endian) == [t]
        word = int.from_bytes(raw[4:8], endian)
        assert word == t.info == kinds.info_word(t.kind, t.vlen, t.kflag), t
        shape = SHAPES[t.kind]
        assert shape.kflag or not t.kflag, t
        assert shape.vlen or not t.vlen, t


def test_entry_tuples_have_one_field_per_word() -> None:
    assert len(bt.Member._fields) == SHAPES[Kind.STRUCT].entry == SHAPES[Kind.UNION].entry
    assert len(bt.Param._fields) == SHAPES[Kind.FUNC_PROTO].entry
    assert len(bt.EnumValue._fields) == SHAPES[Kind.ENUM].entry
    assert len(bt.VarSecinfo._fields) == SHAPES[Kind.DATASEC].entry


def test_header_format_round_trips() -> None:
    for hdr_len in (kinds.HEADER_LEN_V1, kinds.HEADER_LEN):
        head = encode_header(hdr_len, "little", 24, 0, 5)
        assert len(head) == hdr_len
        hdr = parse_header(head + b"\0" * 24 + b"\0abc\0")
        assert (hdr.hdr_len, hdr.type_len, hdr.str_off, hdr.str_len) == (hdr_len, 24, 24, 5)


def _entries(t: bt.BtfType) -> int:
    return 0 if isinstance(t, bt.Func) else t.vlen


# what the kernel declares after struct btf_type, per kind: (struct once, struct per entry)
C_SHAPES: dict[Kind, tuple[str | None, str | None]] = {
    Kind.INT: ("__u32", None),
    Kind.ARRAY: ("struct btf_array", None),
    Kind.STRUCT: (None, "struct btf_member"),
    Kind.UNION: (None, "struct btf_member"),
    Kind.ENUM: (None, "struct btf_enum"),
    Kind.FUNC_PROTO: (None, "struct btf_param"),
    Kind.VAR: ("struct btf_var", None),
    Kind.DATASEC: (None, "struct btf_var_secinfo"),
    Kind.DECL_TAG: ("struct btf_decl_tag", None),
    Kind.ENUM64: (None, "struct btf_enum64"),
}


def _headers() -> list[Path]:
    found = [Path("/usr/include/linux/btf.h")]
    found += sorted(cache_dir("sources").glob("linux-source-7.3*/include/uapi/linux/btf.h"))
    return [h for h in found if h.is_file()]


@pytest.mark.parametrize("header", _headers(), ids=lambda h: str(h).split("/include/")[0])
def test_declared_sizes_are_the_kernels(header: Path, tmp_path: Path) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    text = header.read_text()
    (tmp_path / "linux").mkdir()
    shutil.copy(header, tmp_path / "linux" / "btf.h")
    probes = {"type": "sizeof(struct btf_type)", "header": "sizeof(struct btf_header)",
              "kind": "BTF_INFO_KIND(0xffffffffu)", "vlen": "BTF_INFO_VLEN(0xffffffffu)",
              "kflag": "BTF_INFO_KFLAG(0xffffffffu)"}
    if "struct btf_layout" in text:
        probes["layout"] = "sizeof(struct btf_layout)"
    for kind in Kind:
        once, each = C_SHAPES.get(kind, (None, None))
        probes[f"once.{kind.name}"] = f"sizeof({once})" if once else "0"
        probes[f"each.{kind.name}"] = f"sizeof({each})" if each else "0"
    for kind in Kind:
        if kind is not Kind.UNKN:
            probes[f"id.{kind.name}"] = f"BTF_KIND_{kind.name}"
    lines = "".join(f'  printf("{k} %lu\\n", (unsigned long)({v}));\n' for k, v in probes.items())
    src = tmp_path / "probe.c"
    src.write_text(f"#include <stdio.h>\n#include <linux/btf.h>\nint main(void) {{\n{lines}}}\n")
    subprocess.run([cc, "-I", str(tmp_path), "-o", str(tmp_path / "probe"), str(src)],
                   check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "probe")], check=True, capture_output=True, text=True)
    c = {k: int(v) for k, v in (line.split() for line in out.stdout.splitlines())}

    assert c["type"] == 4 * kinds.TYPE_WORDS
    # older headers give kind 5 bits and vlen 16; we read the newest (7.3) widths
    assert c["kind"] in (kinds.INFO_KIND_MASK, 0x1F) and c["kflag"] == 1
    assert c["vlen"] in (kinds.INFO_VLEN_MASK, 0xFFFF)
    if "layout" in c:
        assert (c["kind"], c["vlen"]) == (kinds.INFO_KIND_MASK, kinds.INFO_VLEN_MASK)
    want_header = kinds.HEADER_LEN if "layout" in c else kinds.HEADER_LEN_V1
    assert c["header"] == want_header
    if "layout" in c:
        assert c["layout"] == struct.calcsize("<" + kinds.LAYOUT_FORMAT)
    for kind in Kind:
        if kind is Kind.UNKN:
            continue
        assert c[f"id.{kind.name}"] == kind.value
        shape = SHAPES[kind]
        assert c[f"once.{kind.name}"] == 4 * shape.extra, kind.name
        assert c[f"each.{kind.name}"] == 4 * shape.entry, kind.name
