"""The kernel's view of a base BTF, kept on disk between runs.

Why: kbuild runs resolve_btfids once per module, each time on the same vmlinux base,
and checking that base under the kernel's rules took ~0.07 s of a 0.28 s module run
(ttynull.ko on the minimal 7.3 x86_64 build), for an answer that never changes. The
view is a function of the base's bytes, the rules, how the kernel gets the BTF and the
checker's own code, so it is stored under a hash of those four and read back.

An entry that cannot be read is a miss (the view is worked out again and written over
it); writes go through a rename, so parallel module runs never read half an entry; the
store keeps its KEEP most recently used entries (a 130k-type vmlinux's view is ~6 MB).
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
from array import array
from pathlib import Path

from harness.btf import kernel_rules
from harness.btf.kernel_rules import KernelView, Rules
from harness.cache import atomic_write, touch_used

FORMAT = 1  # bump when the record's tuple changes
KEEP = 8
SUFFIX = ".view"


def _checker_identity() -> bytes:
    """The checker's source: an edited kernel_rules.py must not read views it did not make."""
    with open(kernel_rules.__file__, "rb") as f:
        return hashlib.sha256(f.read()).digest()


class ViewStore:
    """Views of base BTFs (no base of their own) in one directory, one file per key."""

    def __init__(self, root: str | os.PathLike[str], keep: int = KEEP):
        self.root = Path(root)
        self.keep = keep

    def key(self, data: bytes, rules: Rules, how: str) -> str:
        h = hashlib.sha256(f"{FORMAT}\0{rules.name}\0{how}\0".encode())
        h.update(_checker_identity())
        h.update(data)
        return h.hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.root / f"{key}{SUFFIX}"

    def load(self, key: str) -> KernelView | None:
        """The view stored under `key`, or None (absent or unreadable: a miss)."""
        path = self.path(key)
        try:
            record = marshal.loads(path.read_bytes())
            view = _from_record(record)
        except (OSError, EOFError, ValueError, TypeError):
            return None
        touch_used(path)
        return view

    def save(self, key: str, view: KernelView) -> None:
        """Keep `view` under `key`; a store that cannot be written is no store (the run
        goes on without it)."""
        if view.base is not None:
            raise ValueError("only a base BTF's view (one with no base) is stored")
        with contextlib.suppress(OSError):
            atomic_write(self.path(key), marshal.dumps(_to_record(view)))
            self._trim()

    def _trim(self) -> None:
        """Drop all but the `keep` most recently used entries."""
        entries = []
        for path in self.root.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):
                entries.append((path.stat().st_atime, path))
        entries.sort(reverse=True)
        for _, path in entries[self.keep:]:
            with contextlib.suppress(OSError):
                path.unlink()


def _to_record(view: KernelView) -> tuple:
    return (FORMAT, view.start_id, view.start_str_off, view.strings, view.kind, view.info,
            view.sot, view.pos, view.words.typecode, view.words.itemsize,
            view.words.tobytes(), view.resolved_ids, view.resolved_sizes)


def _from_record(record: object) -> KernelView:
    """A view from its record; ValueError or TypeError when it is not one this code wrote."""
    if not isinstance(record, tuple) or len(record) != 13 or record[0] != FORMAT:
        raise ValueError("not a kernel view record of this format")
    (_, start_id, start_str_off, strings, kind, info, sot, pos, typecode, itemsize, words,
     resolved_ids, resolved_sizes) = record
    fields = (kind, info, sot, pos)
    if not all(isinstance(f, list) and len(f) == len(kind) for f in fields) \
            or not isinstance(strings, bytes) or not isinstance(words, bytes):
        raise ValueError("kernel view record has a malformed field")
    table = array(typecode)
    if table.itemsize != itemsize:
        raise ValueError("kernel view record made on a machine with another word size")
    table.frombytes(words)
    return KernelView(start_id, start_str_off, strings, kind, info, sot, pos, table,
                      resolved_ids, resolved_sizes)
