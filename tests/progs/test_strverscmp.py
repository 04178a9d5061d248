"""strverscmp against glibc's, through ctypes."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.progs.strverscmp import strverscmp, strverscmp_key


@functools.cache
def _glibc():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    fn = libc.strverscmp
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    return fn


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


# Digits weighted heavily: the state machine is all about digit runs and zeroes.
version_text = st.text(alphabet="000123456789.:-abz~", max_size=12)
tagged = st.builds(lambda n, rest: f"comment:{n}:{rest}", st.integers(0, 10**6),
                   st.text(alphabet="test_msg=0123", max_size=8))


@given(version_text, version_text)
@settings(max_examples=3000)
def test_matches_glibc(a: str, b: str) -> None:
    assert sign(strverscmp(a, b)) == sign(_glibc()(a.encode(), b.encode()))


@given(st.binary(max_size=10).filter(lambda b: 0 not in b),
       st.binary(max_size=10).filter(lambda b: 0 not in b))
@settings(max_examples=2000)
def test_matches_glibc_on_bytes(a: bytes, b: bytes) -> None:
    assert sign(strverscmp(a, b)) == sign(_glibc()(a, b))


@given(st.lists(tagged, max_size=12))
def test_sorting_matches_glibc_order(tags: list[str]) -> None:
    ours = sorted(tags, key=strverscmp_key)
    theirs = sorted(tags, key=functools.cmp_to_key(
        lambda x, y: _glibc()(x.encode(), y.encode())))
    assert ours == theirs


@pytest.mark.parametrize(("a", "b", "want"), [
    ("comment:9:x", "comment:10:x", -1),     # counter order, not byte order
    ("comment:10:x", "comment:9:x", 1),
    ("a", "a", 0),
    ("000", "00", -1),                      # glibc manual's examples
    ("00", "01", -1),
    ("01", "010", -1),
    ("010", "09", -1),
    ("09", "0", -1),
    ("0", "1", -1),
    ("1", "9", -1),
    ("9", "10", -1),
    ("item#99", "item#100", -1),
    ("alpha1", "alpha001", 1),
    ("part1_f012", "part1_f01", 1),
    ("foo.009", "foo.0", -1),
])
def test_known_pairs(a: str, b: str, want: int) -> None:
    assert sign(strverscmp(a, b)) == want
    assert sign(_glibc()(a.encode(), b.encode())) == want
