"""The kernel's view of a base BTF kept between runs (harness.btf.view_store), on the real
7.3 vmlinux BTF: what is read back is what the checker makes, a strict read on it is the
same BTF, and what cannot be read back is a miss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.btf import Btf, view_store
from harness.btf.kernel_rules import BOOT, KERNEL_6_18, KERNEL_7_3, LOAD, check
from harness.btf.view_store import ViewStore


@pytest.fixture(scope="module")
def base_view(vmlinux_73_raw: bytes):  # noqa: ANN201 - a KernelView
    return check(vmlinux_73_raw, rules=KERNEL_7_3, how=BOOT)


def test_a_stored_view_reads_back_equal(tmp_path: Path, vmlinux_73_raw: bytes,
                                        base_view) -> None:  # noqa: ANN001
    store = ViewStore(tmp_path)
    key = store.key(vmlinux_73_raw, KERNEL_7_3, BOOT)
    assert store.load(key) is None
    store.save(key, base_view)
    assert store.load(key) == base_view
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.view"]  # no temp file left


def test_a_strict_read_on_a_stored_view_is_the_same_btf(tmp_path: Path,
                                                        vmlinux_73_raw: bytes,
                                                        base_view) -> None:  # noqa: ANN001
    store = ViewStore(tmp_path)
    key = store.key(vmlinux_73_raw, KERNEL_7_3, BOOT)
    store.save(key, base_view)
    known = store.load(key)
    read = Btf.from_bytes(vmlinux_73_raw, strict=KERNEL_7_3, how=BOOT, checked=known)
    fresh = Btf.from_bytes(vmlinux_73_raw, strict=KERNEL_7_3, how=BOOT)
    assert read.kernel_views == fresh.kernel_views
    assert read.to_bytes() == fresh.to_bytes() == vmlinux_73_raw
    assert [read[i] for i in (1, 500, len(read))] == [fresh[i] for i in (1, 500, len(read))]
    # a module's split BTF checked on either base gets the same view
    split = Btf(base=fresh)
    split.add_ptr(1)
    raw = split.to_bytes()
    on_read = Btf.from_bytes(raw, read, strict=KERNEL_7_3, how=BOOT)
    on_fresh = Btf.from_bytes(raw, fresh, strict=KERNEL_7_3, how=BOOT)
    assert on_read.kernel_views == on_fresh.kernel_views


def test_a_view_is_kept_per_bytes_rules_how_and_checker(vmlinux_73_raw: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = ViewStore("/nonexistent")
    key = store.key(vmlinux_73_raw, KERNEL_7_3, BOOT)
    changed = bytearray(vmlinux_73_raw)
    changed[-2] ^= 1  # a letter of the last string
    others = {store.key(bytes(changed), KERNEL_7_3, BOOT),
              store.key(vmlinux_73_raw, KERNEL_6_18, BOOT),
              store.key(vmlinux_73_raw, KERNEL_7_3, LOAD)}
    monkeypatch.setattr(view_store, "_checker_identity", lambda: b"an edited kernel_rules.py")
    others.add(store.key(vmlinux_73_raw, KERNEL_7_3, BOOT))
    assert key not in others and len(others) == 4


@pytest.mark.parametrize("entry", [b"", b"not marshal", b"\xe9\x00", "truncated", "other format"])
def test_an_unreadable_entry_is_a_miss(tmp_path: Path, vmlinux_73_raw: bytes, base_view,  # noqa: ANN001
                                       entry: bytes | str) -> None:
    store = ViewStore(tmp_path)
    key = store.key(vmlinux_73_raw, KERNEL_7_3, BOOT)
    store.save(key, base_view)
    whole = store.path(key).read_bytes()
    if entry == "truncated":
        entry = whole[:len(whole) // 2]
    elif entry == "other format":
        import marshal
        record = marshal.loads(whole)
        entry = marshal.dumps((view_store.FORMAT + 1, *record[1:]))
    store.path(key).write_bytes(entry)  # type: ignore[arg-type]
    assert store.load(key) is None
    store.save(key, base_view)  # written over
    assert store.load(key) == base_view


def test_the_store_keeps_its_most_recently_used_entries(tmp_path: Path, base_view) -> None:  # noqa: ANN001
    store = ViewStore(tmp_path, keep=2)
    for n, key in enumerate(("a", "b", "c")):
        store.save(key, base_view)
        os.utime(store.path(key), (1000 + n, 1000 + n))
    store.save("d", base_view)  # "a" and "b" are the oldest
    assert sorted(p.stem for p in tmp_path.iterdir()) == ["c", "d"]
    os.utime(store.path("c"), (10, 10))
    assert store.load("c") == base_view  # a use makes it recent again
    store.save("e", base_view)
    assert sorted(p.stem for p in tmp_path.iterdir()) == ["c", "e"]


def test_an_unwritable_store_is_no_store(tmp_path: Path, base_view) -> None:  # noqa: ANN001
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    store = ViewStore(blocker / "views")  # its parent is a file
    store.save("k", base_view)
    assert store.load("k") is None


def test_only_a_base_view_is_stored(tmp_path: Path, vmlinux_73_raw: bytes, base_view) -> None:  # noqa: ANN001
    base = Btf.from_bytes(vmlinux_73_raw, strict=KERNEL_7_3, how=BOOT)
    split = Btf(base=base)
    split.add_ptr(1)
    view = check(split.to_bytes(), base_view, rules=KERNEL_7_3, how=BOOT)
    with pytest.raises(ValueError, match="base BTF's view"):
        ViewStore(tmp_path).save("k", view)
    with pytest.raises(ValueError, match="has a base"):
        Btf.from_bytes(split.to_bytes(), base, strict=KERNEL_7_3, how=BOOT, checked=base_view)
