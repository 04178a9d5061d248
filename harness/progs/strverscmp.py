"""glibc's ``strverscmp`` in Python.

test_loader.c sorts a program's ``comment:<counter>:...`` decl tags with
strverscmp so that ``__COUNTER__`` values compare as numbers ("comment:9:" before
"comment:10:"), restoring source order for ``__msg`` sequences. Python has no
strverscmp, and a plain numeric sort key would differ from glibc on leading
zeroes and fractional parts, so the state machine is reproduced here exactly.
"""

from __future__ import annotations

import functools

# Character classes of the state machine: other, nonzero digit, zero.
_OTHER, _DIGIT, _ZERO = 0, 1, 2

# States: normal text, integral digits, fractional digits (after a leading zero
# followed by nonzero digits), leading zeroes only.
_NORMAL, _INTEGRAL, _FRACTION, _ZEROES = 0, 1, 2, 3

# Where a state goes on seeing a class of character while both strings agree.
_NEXT = {
    _NORMAL: (_NORMAL, _INTEGRAL, _ZEROES),
    _INTEGRAL: (_NORMAL, _INTEGRAL, _INTEGRAL),
    _FRACTION: (_NORMAL, _FRACTION, _FRACTION),
    _ZEROES: (_NORMAL, _FRACTION, _ZEROES),
}

_CMP = "cmp"  # the first differing bytes decide
_LEN = "len"  # the longer digit run wins, ties decided by the first difference

# Outcome at the first difference: [state][class of s1's char][class of s2's char].
_RESULT: dict[int, tuple[tuple[str | int, ...], ...]] = {
    _NORMAL: ((_CMP, _CMP, _CMP), (_CMP, _LEN, _CMP), (_CMP, _CMP, _CMP)),
    _INTEGRAL: ((_CMP, -1, -1), (1, _LEN, _LEN), (1, _LEN, _LEN)),
    _FRACTION: ((_CMP, _CMP, _CMP), (_CMP, _CMP, _CMP), (_CMP, _CMP, _CMP)),
    _ZEROES: ((_CMP, 1, 1), (-1, _CMP, _CMP), (-1, _CMP, _CMP)),
}


def _klass(byte: int) -> int:
    if byte == 0x30:
        return _ZERO
    if 0x31 <= byte <= 0x39:
        return _DIGIT
    return _OTHER


def _isdigit(byte: int) -> bool:
    return 0x30 <= byte <= 0x39


def strverscmp(a: str | bytes, b: str | bytes) -> int:
    """Compare like glibc's strverscmp: negative, zero or positive.

    Strings are compared as UTF-8 bytes (C strings); the sign matches glibc's,
    and for plain byte differences so does the magnitude (``c1 - c2``).
    """
    s1 = a.encode() if isinstance(a, str) else a
    s2 = b.encode() if isinstance(b, str) else b
    # A C string ends at its first NUL; append one so the walk stops there.
    s1 = s1.split(b"\0", 1)[0] + b"\0"
    s2 = s2.split(b"\0", 1)[0] + b"\0"

    i = 0
    c1, c2 = s1[0], s2[0]
    state = _NORMAL
    klass = _klass(c1)
    while c1 == c2:
        if c1 == 0:
            return 0
        state = _NEXT[state][klass]
        i += 1
        c1, c2 = s1[i], s2[i]
        klass = _klass(c1)

    outcome = _RESULT[state][klass][_klass(c2)]
    if outcome == _CMP:
        return c1 - c2
    if outcome == _LEN:
        # Both strings continue with digits from here; the longer run is larger.
        j = i + 1
        while _isdigit(s1[j]):
            if not _isdigit(s2[j]):
                return 1
            j += 1
        return -1 if _isdigit(s2[j]) else c1 - c2
    assert isinstance(outcome, int)
    return outcome


#: A ``sorted()`` key that orders like ``qsort(..., strverscmp)``.
strverscmp_key = functools.cmp_to_key(strverscmp)
