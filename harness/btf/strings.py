"""The string section: kept as the original bytes until something is added.

Lookups follow libbpf's strset: the index holds only strings that start a
NUL-terminated entry when walking the section from its start, and the first
occurrence of a duplicate wins. Adding a string that is already indexed
returns the existing offset; otherwise the string is appended. So a table
that is never added to is written back byte for byte, and additions produce
the offsets libbpf would.
"""

from __future__ import annotations

from harness.btf.errors import BTFError


def encode_str(s: str | bytes) -> bytes:
    """str -> the bytes stored in BTF (UTF-8; surrogateescape keeps odd bytes)."""
    b = s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape")
    if b"\0" in b:
        raise BTFError(f"string {s!r} contains a NUL byte")
    return b


class StringTable:
    """One BTF object's own string section.

    Offsets passed in and out are *logical*: for split BTF they start at
    `start_off` (the base's total string size), as in the type records.
    """

    __slots__ = ("start_off", "_data", "_index", "_cache")

    def __init__(self, data: bytes | bytearray = b"\0", start_off: int = 0):
        self.start_off = start_off
        self._data: bytes | bytearray = bytes(data)
        self._index: dict[bytes, int] | None = None
        self._cache: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._data)

    @property
    def end_off(self) -> int:
        """First logical offset past this section."""
        return self.start_off + len(self._data)

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    def contains_offset(self, off: int) -> bool:
        return self.start_off <= off < self.start_off + len(self._data)

    def get_bytes(self, off: int) -> bytes:
        """The NUL-terminated string at logical offset `off`, without its NUL."""
        local = off - self.start_off
        data = self._data
        if local < 0 or local >= len(data):
            raise BTFError(f"string offset {off} outside the string section")
        end = data.find(b"\0", local)
        if end < 0:
            raise BTFError(f"string at offset {off} is not NUL-terminated")
        return bytes(data[local:end])

    def get(self, off: int) -> str:
        s = self._cache.get(off)
        if s is None:
            s = self.get_bytes(off).decode("utf-8", "surrogateescape")
            self._cache[off] = s
        return s

    def _build_index(self) -> dict[bytes, int]:
        index: dict[bytes, int] = {}
        off = self.start_off
        for s in bytes(self._data).split(b"\0")[:-1]:
            index.setdefault(s, off)
            off += len(s) + 1
        # a section not ending in NUL cannot be parsed; nothing to index beyond
        self._index = index
        return index

    def find(self, s: str | bytes) -> int | None:
        """Logical offset of an indexed copy of `s`, or None (libbpf's strset__find_str)."""
        index = self._index if self._index is not None else self._build_index()
        return index.get(encode_str(s))

    def add(self, s: str | bytes) -> int:
        """Offset of `s`, appending it if it is not indexed (libbpf's strset__add_str)."""
        b = encode_str(s)
        index = self._index if self._index is not None else self._build_index()
        off = index.get(b)
        if off is not None:
            return off
        if not isinstance(self._data, bytearray):
            self._data = bytearray(self._data)
        off = self.start_off + len(self._data)
        self._data += b + b"\0"
        index[b] = off
        return off

    def offsets(self) -> list[int]:
        """Logical offsets of every entry start, walking from the section's start."""
        out = []
        off = self.start_off
        for s in bytes(self._data).split(b"\0")[:-1]:
            out.append(off)
            off += len(s) + 1
        return out
