"""libbpf (built from libbpf's history at a pinned commit) through ctypes: a test ORACLE.

    lib = libbpf()                      # builds libbpf.so once (LibbpfBuildError if it can't)
    b = lib.new_empty()                 # or lib.new(raw_bytes, base=other)
    b.add_int("int", 4, 1)              # any btf__add_* as a method, str -> char *
    b.call("btf__dedup", None)          # any other btf__* taking struct btf * first
    raw = b.raw_data()                  # bytes of btf__raw_data()

Functions not declared in _SIGNATURES can be declared with `lib.declare(name, restype, argtypes)`.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from tests.helpers.libbpf_build import build_libbpf

_P = ctypes.c_void_p
_S = ctypes.c_char_p
_I = ctypes.c_int
_U32 = ctypes.c_uint32
_SZ = ctypes.c_size_t

# name -> (restype, argtypes after the leading struct btf *)
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "btf__add_str": (_I, [_S]),
    "btf__find_str": (_I, [_S]),
    "btf__add_int": (_I, [_S, _SZ, _I]),
    "btf__add_float": (_I, [_S, _SZ]),
    "btf__add_ptr": (_I, [_I]),
    "btf__add_array": (_I, [_I, _I, _U32]),
    "btf__add_struct": (_I, [_S, _U32]),
    "btf__add_union": (_I, [_S, _U32]),
    "btf__add_field": (_I, [_S, _I, _U32, _U32]),
    "btf__add_enum": (_I, [_S, _U32]),
    "btf__add_enum_value": (_I, [_S, ctypes.c_int64]),
    "btf__add_enum64": (_I, [_S, _U32, ctypes.c_bool]),
    "btf__add_enum64_value": (_I, [_S, ctypes.c_uint64]),
    "btf__add_fwd": (_I, [_S, _I]),
    "btf__add_typedef": (_I, [_S, _I]),
    "btf__add_volatile": (_I, [_I]),
    "btf__add_const": (_I, [_I]),
    "btf__add_restrict": (_I, [_I]),
    "btf__add_type_tag": (_I, [_S, _I]),
    "btf__add_type_attr": (_I, [_S, _I]),
    "btf__add_func": (_I, [_S, _I, _I]),
    "btf__add_func_proto": (_I, [_I]),
    "btf__add_func_param": (_I, [_S, _I]),
    "btf__add_var": (_I, [_S, _I, _I]),
    "btf__add_datasec": (_I, [_S, _U32]),
    "btf__add_datasec_var_info": (_I, [_I, _U32, _U32]),
    "btf__add_decl_tag": (_I, [_S, _I, _I]),
    "btf__add_decl_attr": (_I, [_S, _I, _I]),
    "btf__add_type": (_I, [_P, _P]),
    "btf__add_btf": (_I, [_P]),
    "btf__type_cnt": (_U32, []),
    "btf__dedup": (_I, [_P]),
    "btf__type_by_id": (_P, [_U32]),
}


class BtfNewOpts(ctypes.Structure):
    """struct btf_new_opts."""

    _fields_ = [("sz", ctypes.c_size_t), ("base_btf", ctypes.c_void_p),
                ("add_layout", ctypes.c_bool)]


class LibbpfError(RuntimeError):
    pass


class Libbpf:
    def __init__(self, path: Path):
        self.so = ctypes.CDLL(str(path))
        self.path = path
        self.declare("btf__new", _P, [_P, _U32])
        self.declare("btf__new_split", _P, [_P, _U32, _P])
        self.declare("btf__new_empty", _P, [])
        self.declare("btf__new_empty_split", _P, [_P])
        self.declare("btf__new_empty_opts", _P, [ctypes.POINTER(BtfNewOpts)])
        self.declare("btf__free", None, [_P])
        self.declare("btf__raw_data", _P, [_P, ctypes.POINTER(_U32)])
        self.declare("libbpf_get_error", ctypes.c_long, [_P])
        for name, (res, args) in _SIGNATURES.items():
            self.declare(name, res, [_P, *args])

    def declare(self, name: str, restype: object, argtypes: list[object]) -> None:
        fn = getattr(self.so, name)
        fn.restype = restype
        fn.argtypes = argtypes

    def _wrap(self, ptr: int | None, what: str, keep: list[object] | None = None) -> OracleBtf:
        if not ptr or self.so.libbpf_get_error(ptr):
            raise LibbpfError(f"{what} failed")
        return OracleBtf(self, ptr, keep or [])

    def new_empty(self, base: OracleBtf | None = None) -> OracleBtf:
        if base is None:
            return self._wrap(self.so.btf__new_empty(), "btf__new_empty")
        return self._wrap(self.so.btf__new_empty_split(base.ptr), "btf__new_empty_split", [base])

    def new_empty_layout(self, base: OracleBtf | None = None) -> OracleBtf:
        """btf__new_empty_opts(.add_layout = true): BTF with a kind layout section."""
        opts = BtfNewOpts(ctypes.sizeof(BtfNewOpts), base.ptr if base else None, True)
        ptr = self.so.btf__new_empty_opts(ctypes.byref(opts))
        return self._wrap(ptr, "btf__new_empty_opts", [base] if base else [])

    def new(self, data: bytes, base: OracleBtf | None = None) -> OracleBtf:
        buf = ctypes.create_string_buffer(data, len(data))
        if base is None:
            return self._wrap(self.so.btf__new(buf, len(data)), "btf__new")
        ptr = self.so.btf__new_split(buf, len(data), base.ptr)
        return self._wrap(ptr, "btf__new_split", [base])


class OracleBtf:
    """A struct btf *; methods add_x(...) call btf__add_x(btf, ...)."""

    def __init__(self, lib: Libbpf, ptr: int, keep: list[object]):
        self.lib = lib
        self.ptr = ptr
        self._keep = keep  # keep base objects alive

    def __del__(self) -> None:
        if getattr(self, "ptr", None):
            self.lib.so.btf__free(self.ptr)
            self.ptr = 0

    def call(self, name: str, *args: object) -> int:
        conv = [a.encode() if isinstance(a, str) else a for a in args]
        conv = [a.ptr if isinstance(a, OracleBtf) else a for a in conv]
        ret = getattr(self.lib.so, name)(self.ptr, *conv)
        if isinstance(ret, int) and ret < 0:
            raise LibbpfError(f"{name}{args} returned {ret}")
        return ret

    def __getattr__(self, attr: str):  # noqa: ANN204
        if attr.startswith("add_") or attr in ("find_str", "type_cnt", "dedup"):
            return lambda *args: self.call(f"btf__{attr}", *args)
        raise AttributeError(attr)

    def raw_data(self) -> bytes:
        size = _U32()
        p = self.lib.so.btf__raw_data(self.ptr, ctypes.byref(size))
        if not p:
            raise LibbpfError("btf__raw_data failed")
        return ctypes.string_at(p, size.value)


_CACHED: list[Libbpf] = []


def libbpf() -> Libbpf:
    """The oracle library, built on first use (tests/helpers/libbpf_build.py)."""
    if not _CACHED:
        _CACHED.append(Libbpf(build_libbpf()))
    return _CACHED[0]
